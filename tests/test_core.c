/* Status strings, RNG, arena and allocation behaviour: no allocation after
   the first training step, out of memory at every allocation (an MLP on
   the core, and every model family through ar_model). */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

#define S(...) (int[]){__VA_ARGS__}

static void test_status_and_version(void)
{
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", AR_VERSION_MAJOR, AR_VERSION_MINOR, AR_VERSION_PATCH);
    CHECK(!strcmp(ar_version(), v));
    CHECK(!strcmp(ar_status_str(AR_OK), "ok"));
    CHECK(!strcmp(ar_status_str(AR_ERR_SHAPE), "shape mismatch"));
    CHECK(!strcmp(ar_status_str((ar_status)-99), "unknown status"));
    CHECK(!strcmp(ar_op_name(AR_OP_MATMUL), "matmul"));
    CHECK(!strcmp(ar_op_name(AR_OP_CROSS_ENTROPY), "cross_entropy"));
}

static void test_rng_reproducible(void)
{
    ar_rng a, b, c;
    int i, differ = 0;
    ar_rng_seed(&a, 7);
    ar_rng_seed(&b, 7);
    ar_rng_seed(&c, 8);
    for (i = 0; i < 1000; i++) {
        uint64_t x = ar_rng_u64(&a);
        CHECK(x == ar_rng_u64(&b));
        differ += x != ar_rng_u64(&c);
    }
    CHECK(differ > 990);
    ar_rng_seed(&a, 0); /* seed 0 is a valid seed */
    CHECK(ar_rng_u64(&a) != 0 || ar_rng_u64(&a) != 0);
}

static void test_rng_distributions(void)
{
    ar_rng r;
    double s = 0, ss = 0, su = 0;
    int i, n = 200000, ones = 0, counts[4] = {0}, below[3] = {0};
    float w[4] = {0.1f, 0, 0.6f, 0.3f};
    ar_rng_seed(&r, 123);
    for (i = 0; i < n; i++) {
        float z = ar_rng_normal(&r), u = ar_rng_uniform(&r);
        CHECK(u >= 0 && u < 1);
        s += z;
        ss += (double)z * z;
        su += u;
        ones += ar_rng_bernoulli(&r, 0.3f);
        counts[ar_rng_categorical(&r, w, 4)]++;
        below[ar_rng_below(&r, 3)]++;
    }
    /* 5 standard errors */
    CHECK_NEAR(s / n, 0, 5 / sqrt(n));
    CHECK_NEAR(ss / n, 1, 5 * sqrt(2.0 / n));
    CHECK_NEAR(su / n, 0.5, 5 * sqrt(1 / 12.0 / n));
    CHECK_NEAR((double)ones / n, 0.3, 5 * sqrt(0.21 / n));
    CHECK(counts[1] == 0);
    for (i = 0; i < 4; i++) CHECK_NEAR((double)counts[i] / n, w[i], 5 * sqrt(w[i] * (1 - w[i]) / n) + 1e-9);
    for (i = 0; i < 3; i++) CHECK_NEAR((double)below[i] / n, 1 / 3.0, 5 * sqrt(2 / 9.0 / n));
    CHECK(ar_rng_categorical(&r, w + 1, 1) == -1); /* no positive weight */
    CHECK(ar_rng_categorical(&r, w, 0) == -1);
    CHECK(ar_rng_bernoulli(&r, 0) == 0 && ar_rng_bernoulli(&r, 1) == 1);
}

static void test_rng_shuffle_is_permutation(void)
{
    ar_rng r;
    int a[100], seen[100] = {0}, i, moved = 0;
    ar_rng_seed(&r, 5);
    for (i = 0; i < 100; i++) a[i] = i;
    ar_rng_shuffle(&r, a, 100);
    for (i = 0; i < 100; i++) {
        CHECK(a[i] >= 0 && a[i] < 100 && !seen[a[i]]);
        seen[a[i]] = 1;
        moved += a[i] != i;
    }
    CHECK(moved > 80);
}

/* A 784-500-784 MLP step at batch 100: after the first step, steps allocate nothing. */
typedef struct { ar_params ps; ar_tensor *W1, *b1, *W2, *b2; float *x; int N, D, H; } mlp;

static int mlp_init(mlp *m, int N, int D, int H, ar_rng *r)
{
    int i;
    memset(m, 0, sizeof *m);
    m->N = N; m->D = D; m->H = H;
    ar_params_init(&m->ps);
    m->W1 = ar_params_add(&m->ps, "W1", 2, S(H, D));
    m->b1 = ar_params_add(&m->ps, "b1", 1, S(H));
    m->W2 = ar_params_add(&m->ps, "W2", 2, S(D, H));
    m->b2 = ar_params_add(&m->ps, "b2", 1, S(D));
    if (ar_params_alloc(&m->ps) != AR_OK) return 0;
    ar_init_xavier(m->W1, r);
    ar_init_xavier(m->W2, r);
    m->x = (float *)malloc(sizeof(float) * (size_t)N * D);
    for (i = 0; i < N * D; i++) m->x[i] = (float)ar_rng_bernoulli(r, 0.3f);
    return 1;
}

static ar_status mlp_step(mlp *m, ar_graph *g, ar_optim *o, float *loss_out)
{
    ar_tensor *x, *h, *z, *loss;
    ar_status s;
    ar_graph_reset(g);
    x = ar_input(g, m->x, 2, S(m->N, m->D));
    h = ar_sigmoid(g, ar_linear(g, x, m->W1, m->b1));
    z = ar_linear(g, h, m->W2, m->b2);
    loss = ar_mean(g, ar_bce_logits(g, z, m->x), AR_ALL);
    ar_params_zero_grad(&m->ps);
    if ((s = ar_backward(g, loss)) != AR_OK) return s;
    if (loss_out) *loss_out = loss->x[0];
    return ar_optim_step(o, &m->ps);
}

static void test_no_allocation_in_training_loop(void)
{
    mlp m;
    ar_graph g;
    ar_rng r;
    ar_optim o = ar_optim_adam(1e-3f);
    size_t before;
    float l0 = 0, l1 = 0;
    int i;
    ar_rng_seed(&r, 3);
    CHECK(mlp_init(&m, 100, 784, 500, &r));
    CHECK(ar_graph_init(&g, 4096) == AR_OK); /* deliberately tiny: must grow */
    CHECK(mlp_step(&m, &g, &o, &l0) == AR_OK); /* the arena grows once and keeps its blocks */
    before = t_alloc_count;
    for (i = 0; i < 5; i++) CHECK(mlp_step(&m, &g, &o, &l1) == AR_OK);
    CHECK_MSG(t_alloc_count == before, "%zu allocations in 5 steps", t_alloc_count - before);
    CHECK(l1 < l0);
    free(m.x);
    ar_params_free(&m.ps);
    ar_graph_free(&g);
    { /* MADE with a new mask set at every step: what a step keeps depends
         on the labels, the arena it needs must not */
        ar_model made;
        ar_model_cfg c = ar_model_default(AR_MADE, 8, 8);
        static float x[32 * 64];
        c.made.n_hidden = 2;
        c.made.hidden[0] = c.made.hidden[1] = 300;
        c.made.n_masks = 8;
        c.made.order_agnostic = 1;
        c.made.direct = 1;
        for (i = 0; i < 32 * 64; i++) x[i] = (float)ar_rng_bernoulli(&r, 0.4f);
        CHECK(ar_model_init(&made, &c) == AR_OK && ar_graph_init(&g, 4096) == AR_OK);
        for (i = 0; i < 17; i++) {
            ar_tensor *loss;
            if (i == 1) before = t_alloc_count;
            if (i < 9) CHECK(ar_made_set_mask(&made, i % 8) == AR_OK);
            ar_graph_reset(&g);
            /* the first 9 steps use the set chosen above, the rest draw one from r */
            loss = ar_mean(&g, ar_model_nll(&made, &g, x, 32, i < 9 ? NULL : &r), AR_ALL);
            ar_params_zero_grad(&made.ps);
            CHECK(ar_backward(&g, loss) == AR_OK && ar_optim_step(&o, &made.ps) == AR_OK);
        }
        CHECK_MSG(t_alloc_count == before, "MADE: %zu allocations in 16 steps over 8 mask sets",
                  t_alloc_count - before);
        ar_model_free(&made);
        ar_graph_free(&g);
    }
    { /* the extremes: a first step that keeps no weight, then all of them */
        static int none_out[200], all_out[200], in[300];
        ar_params ps;
        ar_tensor *W, *X;
        ar_params_init(&ps);
        W = ar_params_add(&ps, "W", 2, (int[]){200, 300});
        X = ar_params_add(&ps, "x", 2, (int[]){16, 300});
        CHECK(ar_params_alloc(&ps) == AR_OK && ar_graph_init(&g, 4096) == AR_OK);
        for (i = 0; i < 200; i++) all_out[i] = 1;
        for (i = 0; i < 4; i++) {
            ar_tensor *y;
            if (i == 1) before = t_alloc_count;
            ar_graph_reset(&g);
            y = ar_masked_linear(&g, X, W, NULL, i ? all_out : none_out, in, i == 0);
            CHECK(y && ar_backward(&g, ar_sum(&g, y, AR_ALL)) == AR_OK);
        }
        CHECK_MSG(t_alloc_count == before, "ar_masked_linear: %zu allocations after the first step",
                  t_alloc_count - before);
        ar_params_free(&ps);
        ar_graph_free(&g);
    }
}

/* Out of memory at every possible allocation: an error status, never a crash
   (leaks are caught by the sanitizer build). */
static void test_out_of_memory_everywhere(void)
{
    long k;
    int failures = 0;
    for (k = 1; k < 60; k++) {
        mlp m;
        ar_graph g;
        ar_rng r;
        ar_optim o = ar_optim_adam(1e-3f);
        ar_status s = AR_OK;
        ar_rng_seed(&r, 3);
        CHECK(mlp_init(&m, 4, 6, 5, &r));
        t_alloc_fail_in = k;
        if (ar_graph_init(&g, 64) == AR_OK) {
            s = mlp_step(&m, &g, &o, NULL);
            if (s == AR_OK) s = mlp_step(&m, &g, &o, NULL);
        } else {
            s = AR_ERR_NOMEM;
            memset(&g, 0, sizeof g);
        }
        t_alloc_fail_in = 0;
        if (s != AR_OK) {
            CHECK_MSG(s == AR_ERR_NOMEM, "k=%ld: status %d (%s)", k, s, g.err);
            failures++;
        }
        free(m.x);
        ar_params_free(&m.ps);
        ar_graph_free(&g);
    }
    CHECK(failures > 3);
}

/* N steps in one run == k steps, save (weights, optimizer, RNG), load into
   fresh objects, N-k steps: bit for bit. */
static void test_resume_is_bit_identical(void)
{
    const char *wpath = "/tmp/ar_test_resume.safetensors", *opath = "/tmp/ar_test_resume.opt.safetensors";
    ar_optim kinds[4];
    int k, i;
    kinds[0] = ar_optim_adam(1e-2f);
    kinds[1] = ar_optim_sgd(0.1f, 0.9f);
    kinds[2] = ar_optim_adamw(1e-2f, 0.1f);
    kinds[3] = ar_optim_adagrad(1e-2f);
    for (k = 0; k < 4; k++) {
        mlp a, b;
        ar_graph g;
        ar_rng ra, rb;
        ar_optim oa = kinds[k], ob = kinds[k], oc = ar_optim_sgd(1, 0);
        ar_meta extra, got;
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        ar_rng_seed(&ra, 3);
        CHECK(mlp_init(&a, 8, 12, 6, &ra));
        for (i = 0; i < 6; i++) {
            CHECK(mlp_step(&a, &g, &oa, NULL) == AR_OK);
            ar_rng_u64(&ra); /* the run's own use of its RNG */
        }
        ar_rng_seed(&rb, 3);
        CHECK(mlp_init(&b, 8, 12, 6, &rb));
        for (i = 0; i < 3; i++) {
            CHECK(mlp_step(&b, &g, &ob, NULL) == AR_OK);
            ar_rng_u64(&rb);
        }
        ar_meta_init(&extra);
        ar_meta_init(&got);
        CHECK(ar_meta_set(&extra, "epoch", "3") == AR_OK);
        CHECK(ar_params_save(&b.ps, wpath, NULL) == AR_OK);
        CHECK_MSG(ar_optim_save(&ob, &b.ps, &rb, &extra, opath) == AR_OK, "%s", b.ps.err);
        free(b.x);
        ar_params_free(&b.ps);
        ar_rng_seed(&rb, 99); /* a different start, overwritten by the load */
        CHECK(mlp_init(&b, 8, 12, 6, &rb));
        memcpy(b.x, a.x, sizeof(float) * 8 * 12); /* the same data */
        CHECK(ar_params_load(&b.ps, wpath, NULL) == AR_OK);
        CHECK_MSG(ar_optim_load(&oc, &b.ps, &rb, &got, opath) == AR_OK, "%s", b.ps.err);
        CHECK(oc.kind == ob.kind && oc.step == 3 && oc.lr == ob.lr && !strcmp(ar_meta_get(&got, "epoch"), "3"));
        for (i = 0; i < 3; i++) {
            CHECK(mlp_step(&b, &g, &oc, NULL) == AR_OK);
            ar_rng_u64(&rb);
        }
        CHECK_MSG(memcmp(a.ps.x, b.ps.x, a.ps.total * sizeof(float)) == 0, "optimizer %d: weights differ", k);
        CHECK(memcmp(&ra, &rb, sizeof ra) == 0);
        /* a state of another model is refused, and nothing changes */
        free(b.x);
        ar_params_free(&b.ps);
        CHECK(mlp_init(&b, 8, 12, 5, &rb));
        oc = ar_optim_sgd(1, 0);
        CHECK(ar_optim_load(&oc, &b.ps, &rb, NULL, opath) == AR_ERR_FORMAT && oc.kind == AR_OPTIM_SGD &&
              b.ps.m == NULL && strstr(b.ps.err, "shape"));
        free(a.x); free(b.x);
        ar_params_free(&a.ps); ar_params_free(&b.ps);
        ar_meta_free(&extra); ar_meta_free(&got);
        ar_graph_free(&g);
    }
    { /* a state without moments (plain SGD) drops the live run's moments */
        mlp c;
        ar_graph g;
        ar_rng r;
        ar_optim sgd = ar_optim_sgd(0.1f, 0), adam = ar_optim_adam(0.1f);
        ar_rng_seed(&r, 4);
        CHECK(mlp_init(&c, 4, 6, 3, &r) && ar_graph_init(&g, 0) == AR_OK);
        CHECK(ar_optim_save(&sgd, &c.ps, NULL, NULL, opath) == AR_OK);
        CHECK(mlp_step(&c, &g, &adam, NULL) == AR_OK && c.ps.m && c.ps.v);
        CHECK(ar_optim_load(&adam, &c.ps, NULL, NULL, opath) == AR_OK);
        CHECK(adam.kind == AR_OPTIM_SGD && c.ps.m == NULL && c.ps.v == NULL);
        free(c.x);
        ar_params_free(&c.ps);
        ar_graph_free(&g);
    }
    remove(wpath);
    remove(opath);
}

static void test_graph_grad_off_records_nothing(void)
{
    ar_graph g;
    ar_params ps;
    ar_tensor *W, *y;
    float x[4] = {1, 2, 3, 4};
    ar_params_init(&ps);
    W = ar_params_add(&ps, "W", 2, S(3, 4));
    CHECK(W && ar_params_alloc(&ps) == AR_OK);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    ar_graph_set_grad(&g, 0);
    y = ar_linear(&g, ar_input(&g, x, 2, S(1, 4)), W, NULL);
    CHECK(y && g.ntape == 0 && !(y->flags & AR_F_GRAD));
    ar_graph_set_grad(&g, 1);
    y = ar_linear(&g, ar_input(&g, x, 2, S(1, 4)), W, NULL);
    CHECK(y && g.ntape == 1 && (y->flags & AR_F_GRAD));
    ar_graph_free(&g);
    ar_params_free(&ps);
}

static void test_params_errors(void)
{
    ar_params ps;
    ar_params_init(&ps);
    CHECK(ar_params_add(&ps, "a", 2, S(2, 0)) == NULL && strstr(ps.err, "'a'"));
    CHECK(ar_params_add(&ps, "", 1, S(2)) == NULL);
    CHECK(ar_params_add(&ps, "a", 1, S(2)) != NULL);
    CHECK(ar_params_add(&ps, "a", 1, S(2)) == NULL && strstr(ps.err, "already exists"));
    CHECK(ar_params_add(&ps, "big", 4, S(0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff)) == NULL);
    CHECK(ar_params_alloc(&ps) == AR_OK);
    CHECK(ar_params_add(&ps, "late", 1, S(2)) == NULL && strstr(ps.err, "after ar_params_alloc"));
    CHECK(ar_params_alloc(&ps) == AR_ERR_ARG);
    ar_params_free(&ps);
    ar_params_init(&ps);
    CHECK(ar_params_alloc(&ps) == AR_ERR_ARG && strstr(ps.err, "no parameters"));
    ar_params_free(&ps);
}

/* ---- the model interface: allocation and out of memory, every family ---- */

/* From test_io.c: a tiny model of each kind and 2 examples it accepts. */
ar_status t_tiny_model(ar_model *m, ar_kind kind, float *x);

/* Training steps of every family allocate nothing after the first, and
   neither does ar_model_log_prob after its first call (its scratch is
   kept in the model). */
static void test_model_steps_allocate_nothing(void)
{
    int k;
    for (k = 0; k < AR_KIND_COUNT; k++) {
        ar_model m;
        ar_graph g;
        ar_rng r;
        ar_optim o = ar_optim_adam(1e-3f);
        float x[2 * 16], lp[2];
        size_t before = 0;
        int i;
        ar_rng_seed(&r, 7);
        CHECK(t_tiny_model(&m, (ar_kind)k, x) == AR_OK && ar_graph_init(&g, 4096) == AR_OK);
        for (i = 0; i < 6; i++) {
            ar_tensor *nll;
            if (i == 1) before = t_alloc_count;
            ar_graph_reset(&g);
            nll = ar_model_nll(&m, &g, x, 2, &r);
            ar_params_zero_grad(&m.ps);
            CHECK_MSG(nll && ar_backward(&g, ar_mean(&g, nll, AR_ALL)) == AR_OK && ar_optim_step(&o, &m.ps) == AR_OK,
                      "%s: %s", ar_kind_name((ar_kind)k), g.err);
        }
        CHECK_MSG(t_alloc_count == before, "%s: %zu allocations in 5 training steps", ar_kind_name((ar_kind)k),
                  t_alloc_count - before);
        CHECK(ar_model_log_prob(&m, x, 2, lp) == AR_OK);
        before = t_alloc_count;
        for (i = 0; i < 3; i++) CHECK(ar_model_log_prob(&m, x, 2, lp) == AR_OK);
        CHECK_MSG(t_alloc_count == before, "%s: %zu allocations in 3 calls of ar_model_log_prob",
                  ar_kind_name((ar_kind)k), t_alloc_count - before);
        ar_graph_free(&g);
        ar_model_free(&m);
    }
}

/* Out of memory at every allocation of a model's life (init, a training
   step, log-prob, sampling, the KV cache, save and load): each failing
   call says AR_ERR_NOMEM with a message, a failed init or load holds no
   model, nothing crashes, and (under the sanitizers) nothing leaks. */
static void test_model_out_of_memory_everywhere(void)
{
    int k;
    for (k = 0; k < AR_KIND_COUNT; k++) {
        long fail;
        int failures = 0, done = 0;
        for (fail = 1; !done && fail < 5000; fail++) {
            ar_model m, m2;
            ar_graph g;
            ar_rng r;
            ar_optim o = ar_optim_adam(1e-3f);
            ar_sample_opts so = ar_sample_defaults();
            float x[2 * 16], lp[2], y[2 * 16], probs[2 * 16 * 4];
            unsigned char *buf = NULL;
            size_t len;
            ar_status s;
            const char *what = "init";
            ar_rng_seed(&r, 3);
            memset(&m, 0xAB, sizeof m);
            memset(&m2, 0, sizeof m2);
            memset(&g, 0, sizeof g);
            t_alloc_fail_in = fail;
            s = t_tiny_model(&m, (ar_kind)k, x);
            if (s != AR_OK) {
                CHECK_MSG(s == AR_ERR_NOMEM && m.err[0] && m.ps.x == NULL, "%s, allocation %ld: init status %d, '%s'",
                          ar_kind_name((ar_kind)k), fail, s, m.err);
                goto next;
            }
            if (ar_graph_init(&g, 0) != AR_OK) goto next;
            {
                ar_tensor *nll = ar_model_nll(&m, &g, x, 2, &r);
                what = "nll";
                if (!nll) { s = g.status; if (!(m.err[0] && g.err[0])) s = AR_ERR_ARG; goto check; }
                what = "backward";
                ar_params_zero_grad(&m.ps);
                if ((s = ar_backward(&g, ar_mean(&g, nll, AR_ALL))) != AR_OK) { if (!g.err[0]) s = AR_ERR_ARG; goto check; }
                what = "optim";
                if ((s = ar_optim_step(&o, &m.ps)) != AR_OK) { if (!m.ps.err[0]) s = AR_ERR_ARG; goto check; }
            }
            what = "log_prob";
            m.err[0] = 0;
            if ((s = ar_model_log_prob(&m, x, 2, lp)) != AR_OK) goto check_m;
            what = "sample";
            so.probs = probs;
            if ((s = ar_model_sample(&m, 2, &so, &r, y)) != AR_OK) goto check_m;
            if (k == AR_TRANSFORMER) {
                ar_tfm_cache c;
                float lg[2 * 3];
                memset(&c, 0, sizeof c);
                what = "cache";
                s = ar_tfm_cache_init(&c, &m, 2);
                if (s == AR_OK) s = ar_tfm_step(&m, &c, NULL, lg);
                ar_tfm_cache_free(&c);
                if (s != AR_OK) goto check_m;
            }
            what = "save";
            if ((s = ar_model_save_mem(&m, &buf, &len)) != AR_OK) goto check_m;
            what = "load";
            memset(&m2, 0xAB, sizeof m2);
            if ((s = ar_model_load_mem(&m2, buf, len)) != AR_OK) {
                CHECK_MSG(s == AR_ERR_NOMEM && m2.err[0] && m2.ps.x == NULL, "%s, allocation %ld: load status %d, '%s'",
                          ar_kind_name((ar_kind)k), fail, s, m2.err);
                memset(&m2, 0, sizeof m2);
                goto next;
            }
            goto next;
        check_m:
            if (!m.err[0]) s = AR_ERR_ARG; /* no message: reported below */
        check:
            CHECK_MSG(s == AR_ERR_NOMEM, "%s, allocation %ld: %s gave status %d ('%.150s' / '%.150s')", ar_kind_name((ar_kind)k),
                      fail, what, s, m.err, g.err);
        next:
            done = t_alloc_fail_in > 0; /* the failure was never reached: every path ran */
            failures += !done;
            t_alloc_fail_in = 0;
            ar_free(buf);
            ar_graph_free(&g);
            ar_model_free(&m2);
            if (s != AR_OK && what[0] == 'i') continue; /* init failed: no model */
            ar_model_free(&m);
        }
        CHECK_MSG(done && failures > 5, "%s: %d failures injected, finished %d", ar_kind_name((ar_kind)k), failures, done);
    }
}

void tests_core(void)
{
    t_run("core/status_and_version", test_status_and_version);
    t_run("core/rng_reproducible", test_rng_reproducible);
    t_run("core/rng_distributions", test_rng_distributions);
    t_run("core/rng_shuffle_is_permutation", test_rng_shuffle_is_permutation);
    t_run("core/no_allocation_in_training_loop", test_no_allocation_in_training_loop);
    t_run("core/out_of_memory_everywhere", test_out_of_memory_everywhere);
    t_run("core/model_steps_allocate_nothing", test_model_steps_allocate_nothing);
    t_run("core/model_out_of_memory_everywhere", test_model_out_of_memory_everywhere);
    t_run("core/resume_is_bit_identical", test_resume_is_bit_identical);
    t_run("core/graph_grad_off_records_nothing", test_graph_grad_off_records_nothing);
    t_run("core/params_errors", test_params_errors);
}
