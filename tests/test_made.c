/* MADE and FVSBN: exact normalization, the autoregressive property for every
   mask set, whole-model gradients, sampling frequencies, checkpoints. */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

/* Random weights of a visible size, so no property holds by accident. */
static void scramble(ar_made *m, uint64_t seed, float scale)
{
    ar_rng r;
    int i;
    ar_rng_seed(&r, seed);
    for (i = 0; i < m->ps.n; i++) ar_init_uniform(m->ps.t[i], &r, -scale, scale);
}

static ar_made_cfg cfg_of(int D, int nh, int h, int direct, int K, int oa, uint64_t seed)
{
    ar_made_cfg c = ar_made_default(D);
    int l;
    c.n_hidden = nh;
    for (l = 0; l < nh; l++) c.hidden[l] = h + l;
    c.direct = direct;
    c.n_masks = K;
    c.order_agnostic = oa;
    c.seed = seed;
    return c;
}

/* Sum of p(x) over all 2^D binary vectors. */
static double total_mass(ar_made *m, ar_graph *g)
{
    int D = m->cfg.D, n = 1 << D, i, d;
    float *x = (float *)malloc(sizeof(float) * (size_t)n * D), *lp = (float *)malloc(sizeof(float) * (size_t)n);
    double s = 0;
    for (i = 0; i < n; i++)
        for (d = 0; d < D; d++) x[i * D + d] = (float)((i >> d) & 1);
    ar_graph_reset(g);
    if (ar_made_log_prob(m, g, x, n, lp) != AR_OK) s = -1;
    for (i = 0; s >= 0 && i < n; i++) s += exp((double)lp[i]);
    free(x);
    free(lp);
    return s;
}

static void test_made_normalization(void)
{
    static const int order[10] = {3, 7, 0, 9, 1, 8, 2, 6, 4, 5};
    ar_made_cfg cfgs[5];
    ar_graph g;
    int i;
    cfgs[0] = ar_fvsbn_default(10);
    cfgs[1] = cfg_of(10, 1, 16, 0, 1, 0, 2);
    cfgs[2] = cfg_of(10, 2, 12, 1, 1, 0, 3);
    cfgs[2].order = order;
    cfgs[3] = cfg_of(10, 2, 12, 1, 4, 1, 4);  /* ensemble of 4 orderings and connectivities */
    cfgs[4] = cfg_of(10, 3, 9, 0, 3, 0, 5);   /* connectivity-agnostic, natural order */
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (i = 0; i < 5; i++) {
        ar_made m;
        double mass;
        CHECK_MSG(ar_made_init(&m, &cfgs[i]) == AR_OK, "cfg %d: %s", i, m.err);
        scramble(&m, 100 + i, 1.5f);
        mass = total_mass(&m, &g);
        CHECK_MSG(fabs(mass - 1) < 1e-5, "cfg %d: total probability %.9f", i, mass);
        ar_made_free(&m);
    }
    ar_graph_free(&g);
}

/* The ensemble over K sets is the log-mean-exp of the K single-set
   log-likelihoods, and needs the arena of one pass, not K: each pass hands
   its scratch back before the next. */
static void test_made_ensemble_one_pass_arena(void)
{
    enum { N = 40, D = 64, K = 8 };
    ar_made_cfg c = cfg_of(D, 2, 200, 1, K, 1, 7);
    static float x[N * D];
    float lp[N], lp1[K][N];
    ar_made m;
    ar_graph big, small;
    size_t pass = 0, before;
    ar_rng r;
    int i, k;
    ar_rng_seed(&r, 9);
    for (i = 0; i < N * D; i++) x[i] = (float)ar_rng_bernoulli(&r, 0.3f);
    CHECK_MSG(ar_made_init(&m, &c) == AR_OK, "%s", m.err);
    scramble(&m, 11, 0.3f);
    CHECK(ar_graph_init(&big, (size_t)64 << 20) == AR_OK); /* every pass fits its main block */
    ar_graph_set_grad(&big, 0);
    for (k = 0; k < K; k++) {
        ar_tensor *nll;
        ar_graph_reset(&big);
        CHECK(ar_made_set_mask(&m, k) == AR_OK);
        nll = ar_made_nll(&m, &big, x, N);
        CHECK(nll != NULL);
        for (i = 0; nll && i < N; i++) lp1[k][i] = -nll->x[i];
        if (big.used > pass) pass = big.used;
    }
    CHECK(ar_made_set_mask(&m, 3) == AR_OK);
    CHECK(ar_graph_init(&small, 2 * pass) == AR_OK);
    before = t_alloc_count;
    CHECK(ar_made_log_prob(&m, &small, x, N, lp) == AR_OK);
    CHECK_MSG(t_alloc_count == before, "%zu allocations: %d passes did not fit an arena of two",
              t_alloc_count - before, K);
    CHECK(m.cur == 3);
    for (i = 0; i < N; i++) {
        double mx = lp1[0][i], s = 0;
        for (k = 1; k < K; k++) mx = lp1[k][i] > mx ? lp1[k][i] : mx;
        for (k = 0; k < K; k++) s += exp(lp1[k][i] - mx);
        CHECK_MSG(fabs(lp[i] - (mx + log(s / K))) < 1e-3, "example %d: %.6f, expected %.6f", i, (double)lp[i],
                  mx + log(s / K));
    }
    ar_made_free(&m);
    ar_graph_free(&big);
    ar_graph_free(&small);
}

/* Output at place t must not move when any input at place >= t changes, and
   must move for some input before it. Checked for every mask set. */
static void test_made_autoregressive_property(void)
{
    enum { D = 8 };
    static const int order[D] = {5, 1, 7, 0, 2, 6, 4, 3};
    ar_made_cfg cfgs[4];
    ar_graph g;
    ar_rng r;
    int i, k, d, j, n;
    cfgs[0] = ar_fvsbn_default(D);
    cfgs[0].order = order;
    cfgs[1] = cfg_of(D, 1, 20, 0, 3, 1, 7);
    cfgs[2] = cfg_of(D, 2, 20, 1, 2, 0, 8);
    cfgs[2].order = order;
    cfgs[3] = cfg_of(D, 3, 24, 1, 4, 1, 9);
    ar_rng_seed(&r, 77);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (i = 0; i < 4; i++) {
        ar_made m;
        CHECK(ar_made_init(&m, &cfgs[i]) == AR_OK);
        scramble(&m, 200 + i, 1.0f);
        for (k = 0; k < m.cfg.n_masks; k++) {
            float x[(D * D + 1) * D];
            int xs[2] = {D * D + 1, D}, depends = 0;
            ar_tensor *lg;
            CHECK(ar_made_set_mask(&m, k) == AR_OK);
            for (d = 0; d < D; d++) x[d] = (float)ar_rng_bernoulli(&r, 0.5f);
            for (n = 1; n <= D * D; n++) { /* row 1 + d*D + j: x with input j flipped */
                memcpy(x + n * D, x, sizeof(float) * D);
                x[n * D + (n - 1) % D] = 1 - x[n * D + (n - 1) % D];
            }
            ar_graph_reset(&g);
            lg = ar_made_logits(&m, &g, ar_input(&g, x, 2, xs));
            CHECK(lg);
            for (d = 0; d < D; d++)
                for (j = 0; j < D; j++) {
                    float base = lg->x[d], pert = lg->x[(1 + d * D + j) * D + d];
                    /* BLAS may round rows of one product differently: allow 1e-5 */
                    if (m.pos[j] >= m.pos[d])
                        CHECK_MSG(fabsf(base - pert) <= 1e-5f * (1 + fabsf(base)),
                                  "cfg %d mask %d: logit %d moved when input %d changed", i, k, d, j);
                    else
                        depends += fabsf(base - pert) > 1e-3f;
                }
            CHECK_MSG(depends > D, "cfg %d mask %d: logits barely depend on earlier inputs (%d)", i, k, depends);
        }
        ar_made_free(&m);
    }
    ar_graph_free(&g);
}

typedef struct { ar_made *m; float x[6 * 5]; } made_ctx;
static ar_tensor *made_loss(ar_graph *g, void *c)
{
    made_ctx *k = (made_ctx *)c;
    return ar_mean(g, ar_made_nll(k->m, g, k->x, 6), AR_ALL);
}

static void test_made_gradcheck(void)
{
    ar_made_cfg c = cfg_of(5, 2, 4, 1, 1, 1, 11);
    ar_made m;
    ar_graph g;
    ar_rng r;
    made_ctx k;
    double rel = 1;
    const char *worst = NULL;
    int i;
    CHECK(ar_made_init(&m, &c) == AR_OK);
    scramble(&m, 12, 1.0f);
    ar_rng_seed(&r, 13);
    k.m = &m;
    for (i = 0; i < 30; i++) k.x[i] = (float)ar_rng_bernoulli(&r, 0.5f);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_gradcheck(&g, &m.ps, made_loss, &k, 1e-2f, &rel, &worst) == AR_OK);
    CHECK_MSG(rel < 2e-3, "relative gradient error %.3g in %s", rel, worst ? worst : "?");
    ar_graph_free(&g);
    ar_made_free(&m);
}

/* Samples follow the model's own distribution (3 dims: all 8 outcomes), and
   the probabilities reported while sampling are the model's conditionals. */
static void test_made_sampling_frequencies(void)
{
    enum { D = 3, N = 60000 };
    static float xs[N * D], probs[N * D];
    float all[8 * D], lp[8];
    int counts[8] = {0}, i, d, shape[2] = {8, D};
    ar_made_cfg c = cfg_of(D, 2, 6, 1, 1, 1, 21);
    ar_made m;
    ar_graph g;
    ar_rng r;
    ar_tensor *lg;
    CHECK(ar_made_init(&m, &c) == AR_OK);
    scramble(&m, 22, 1.5f);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (i = 0; i < 8; i++)
        for (d = 0; d < D; d++) all[i * D + d] = (float)((i >> d) & 1);
    CHECK(ar_made_log_prob(&m, &g, all, 8, lp) == AR_OK);
    ar_graph_reset(&g);
    ar_rng_seed(&r, 23);
    CHECK(ar_made_sample(&m, &g, N, &r, 1.0f, NULL, NULL, xs, probs) == AR_OK);
    for (i = 0; i < N; i++) counts[(int)xs[i * D] | (int)xs[i * D + 1] << 1 | (int)xs[i * D + 2] << 2]++;
    for (i = 0; i < 8; i++) {
        double p = exp((double)lp[i]), f = (double)counts[i] / N;
        CHECK_MSG(fabs(f - p) < 5 * sqrt(p * (1 - p) / N) + 1e-4, "outcome %d: frequency %.4f, p %.4f", i, f, p);
    }
    ar_graph_reset(&g);
    lg = ar_made_logits(&m, &g, ar_input(&g, all, 2, shape));
    for (i = 0; i < 50; i++) { /* probs of sample i = sigmoid(logits of that x) */
        int code = (int)xs[i * D] | (int)xs[i * D + 1] << 1 | (int)xs[i * D + 2] << 2;
        for (d = 0; d < D; d++) CHECK_NEAR(probs[i * D + d], 1 / (1 + exp(-(double)lg->x[code * D + d])), 2e-6);
    }
    /* same seed, same samples; and given values are kept */
    {
        static float again[N * D];
        unsigned char known[4 * D] = {1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0};
        float given[4 * D] = {1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, out[4 * D];
        ar_graph_reset(&g);
        ar_rng_seed(&r, 23);
        CHECK(ar_made_sample(&m, &g, N, &r, 1.0f, NULL, NULL, again, NULL) == AR_OK);
        CHECK(memcmp(again, xs, sizeof xs) == 0);
        ar_graph_reset(&g);
        CHECK(ar_made_sample(&m, &g, 4, &r, 1.0f, given, known, out, NULL) == AR_OK);
        for (i = 0; i < 4 * D; i++) CHECK(!known[i] || out[i] == given[i]);
    }
    ar_graph_free(&g);
    ar_made_free(&m);
}

static void test_made_checkpoint_roundtrip(void)
{
    static const int order[6] = {2, 0, 5, 1, 4, 3};
    const char *path = "/tmp/ar_test_made.safetensors";
    ar_made_cfg c = cfg_of(6, 2, 7, 1, 3, 0, 31);
    ar_made a, b, fv;
    ar_graph g;
    float x[4 * 6], la[4], lb[4];
    int i;
    c.order = order;
    for (i = 0; i < 24; i++) x[i] = (float)((i * 7) % 3 == 0);
    CHECK(ar_made_init(&a, &c) == AR_OK);
    scramble(&a, 32, 1.0f);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_made_log_prob(&a, &g, x, 4, la) == AR_OK);
    CHECK(ar_made_save(&a, path) == AR_OK);
    memset(&b, 0, sizeof b);
    CHECK_MSG(ar_made_load(&b, path) == AR_OK, "%s", b.err);
    CHECK(b.cfg.n_hidden == 2 && b.cfg.hidden[1] == 8 && b.cfg.n_masks == 3 && b.cfg.direct == 1);
    CHECK(b.cfg.order && memcmp(b.cfg.order, order, sizeof order) == 0);
    ar_graph_reset(&g);
    CHECK(ar_made_log_prob(&b, &g, x, 4, lb) == AR_OK);
    CHECK(memcmp(la, lb, sizeof la) == 0);
    /* loading replaces a model of another configuration */
    c = ar_fvsbn_default(3);
    CHECK(ar_made_init(&fv, &c) == AR_OK);
    CHECK(ar_made_load(&fv, path) == AR_OK && fv.cfg.D == 6);
    ar_made_free(&fv);
    /* a failed load leaves the model as it was */
    {
        FILE *f = fopen(path, "r+b");
        CHECK(f && fseek(f, -3, SEEK_END) == 0 && fputc('x', f) != EOF && fclose(f) == 0);
        f = fopen(path, "ab");
        CHECK(f && fputc(0, f) != EOF && fclose(f) == 0); /* one byte too many */
    }
    CHECK(ar_made_load(&b, path) == AR_ERR_FORMAT && strstr(b.err, "data bytes"));
    ar_graph_reset(&g);
    CHECK(ar_made_log_prob(&b, &g, x, 4, lb) == AR_OK && memcmp(la, lb, sizeof la) == 0);
    CHECK(ar_made_load(&b, "/nonexistent.safetensors") == AR_ERR_IO);
    remove(path);
    ar_made_free(&a);
    ar_made_free(&b);
    ar_graph_free(&g);
}

static void test_made_bad_input(void)
{
    static const int bad_order[4] = {0, 1, 1, 3};
    ar_made_cfg c = ar_made_default(4);
    ar_made m;
    ar_graph g;
    float x[8] = {0, 1, 0, 1, 1, 1, 2, 0}, out[8];
    c.order = bad_order;
    CHECK(ar_made_init(&m, &c) == AR_ERR_ARG && strstr(m.err, "permutation"));
    c = ar_made_default(0);
    CHECK(ar_made_init(&m, &c) == AR_ERR_ARG && strstr(m.err, "D = 0"));
    c = ar_made_default(4);
    c.n_hidden = 0;
    CHECK(ar_made_init(&m, &c) == AR_ERR_ARG && strstr(m.err, "direct"));
    c = ar_made_default(4);
    c.hidden[0] = -5;
    CHECK(ar_made_init(&m, &c) == AR_ERR_ARG && strstr(m.err, "hidden[0]"));
    c = ar_made_default(4);
    c.hidden[0] = 5;
    CHECK(ar_made_init(&m, &c) == AR_OK);
    CHECK(ar_made_set_mask(&m, 1) == AR_ERR_RANGE);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_made_log_prob(&m, &g, x, 2, out) == AR_ERR_RANGE && strstr(g.err, "targets[6]"));
    ar_graph_reset(&g);
    CHECK(ar_made_nll(&m, &g, x, 0) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    CHECK(ar_made_sample(&m, &g, 2, NULL, 1.0f, NULL, NULL, out, NULL) == AR_ERR_ARG);
    ar_graph_free(&g);
    ar_made_free(&m);
}

void tests_made(void)
{
    t_run("made/normalization", test_made_normalization);
    t_run("made/ensemble_one_pass_arena", test_made_ensemble_one_pass_arena);
    t_run("made/autoregressive_property", test_made_autoregressive_property);
    t_run("made/gradcheck", test_made_gradcheck);
    t_run("made/sampling_frequencies", test_made_sampling_frequencies);
    t_run("made/checkpoint_roundtrip", test_made_checkpoint_roundtrip);
    t_run("made/bad_input", test_made_bad_input);
}
