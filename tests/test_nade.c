/* NADE through ar_model: normalization, autoregressive property, gradients
   (against the naive O(HD^2) formulation built from generic ops), sample
   frequencies for every sampling option against the model's own exact
   joint, completion, checkpoints, bad data. */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

static int make_nade(ar_model *m, int D, int H, const int *order, uint64_t seed)
{
    ar_model_cfg c = ar_model_default(AR_NADE, D, 1);
    ar_rng r;
    int i;
    c.nade.H = H;
    c.order = order;
    c.seed = seed;
    if (ar_model_init(m, &c) != AR_OK) return 0;
    ar_rng_seed(&r, seed + 1000);
    for (i = 0; i < m->ps.n; i++) ar_init_uniform(m->ps.t[i], &r, -1.5f, 1.5f);
    return 1;
}

/* p(x_order[t] = 1 | x's prefix) under o, from the exact joint p over all
   2^D vectors: a ratio of prefix marginals. */
static double cond_at(const double *p, int D, const int *order, int t, int c, const ar_sample_opts *o)
{
    int n = 1 << D, y, s, d = order[t];
    unsigned mask = 0;
    double m1 = 0, m0 = 0;
    for (s = 0; s < t; s++) mask |= 1u << order[s];
    for (y = 0; y < n; y++)
        if (((unsigned)y & mask) == ((unsigned)c & mask)) *((y >> d) & 1 ? &m1 : &m0) += p[y];
    return t_cond1(m1, m0, o);
}

/* The distribution an autoregressive sampler under o follows. */
static void sampled_dist(const double *p, int D, const int *order, const ar_sample_opts *o, double *q)
{
    int c, t;
    for (c = 0; c < 1 << D; c++) {
        q[c] = 1;
        for (t = 0; t < D && q[c] > 0; t++) {
            double p1 = cond_at(p, D, order, t, c, o);
            q[c] *= (c >> order[t]) & 1 ? p1 : 1 - p1;
        }
    }
}

static void test_nade_normalization(void)
{
    static const int order[10] = {4, 9, 0, 2, 7, 1, 8, 3, 6, 5};
    ar_model m;
    int n = 1 << 10, i, k;
    float *x = t_all_binary(10), *lp = (float *)malloc(sizeof(float) * (size_t)n);
    CHECK(x && lp);
    for (k = 0; k < 2; k++) {
        double s = 0;
        CHECK(make_nade(&m, 10, 7, k ? order : NULL, 3 + k));
        CHECK(m.kind == AR_NADE && m.levels == 2 && m.D == 10 && m.nade && !m.made);
        CHECK_MSG(ar_model_log_prob(&m, x, n, lp) == AR_OK, "%s", m.err);
        for (i = 0; i < n; i++) s += exp((double)lp[i]);
        CHECK_MSG(fabs(s - 1) < 1e-5, "order %d: total probability %.9f", k, s);
        ar_model_free(&m);
    }
    free(x);
    free(lp);
}

/* The conditionals reported while sampling with every input given are
   p(x_d | x_<d): they must ignore inputs at later or equal places. */
static void test_nade_autoregressive_property(void)
{
    enum { D = 9 };
    static const int order[D] = {8, 2, 5, 0, 7, 1, 4, 6, 3};
    unsigned char known[D];
    float x[D], x2[D], p[D], p2[D], out[D];
    int pos[D], d, j, k, depends = 0;
    ar_sample_opts o = ar_sample_defaults();
    ar_model m;
    ar_rng r;
    memset(known, 1, sizeof known);
    ar_rng_seed(&r, 5);
    o.known = known;
    for (k = 0; k < 2; k++) {
        CHECK(make_nade(&m, D, 6, k ? order : NULL, 40 + k));
        for (d = 0; d < D; d++) pos[m.nade->order[d]] = d;
        for (d = 0; d < D; d++) x[d] = (float)ar_rng_bernoulli(&r, 0.5f);
        o.given = x;
        o.probs = p;
        CHECK_MSG(ar_model_sample(&m, 1, &o, &r, out) == AR_OK, "%s", m.err);
        CHECK(memcmp(out, x, sizeof x) == 0);
        for (j = 0; j < D; j++) {
            memcpy(x2, x, sizeof x);
            x2[j] = 1 - x2[j];
            o.given = x2;
            o.probs = p2;
            CHECK(ar_model_sample(&m, 1, &o, &r, out) == AR_OK);
            for (d = 0; d < D; d++) {
                if (pos[j] >= pos[d]) CHECK_MSG(p[d] == p2[d], "order %d: p(x_%d) moved with x_%d", k, d, j);
                else depends += p[d] != p2[d];
            }
        }
        ar_model_free(&m);
    }
    CHECK(depends > 2 * D);
}

typedef struct { ar_model *m; float x[4 * 6]; } nade_ctx;
static ar_tensor *nade_loss(ar_graph *g, void *c)
{
    nade_ctx *k = (nade_ctx *)c;
    return ar_mean(g, ar_model_nll(k->m, g, k->x, 4, NULL), AR_ALL);
}

/* The same NADE as generic ops, O(HD^2): a_t = c + (x masked to places < t) W. */
static ar_tensor *nade_naive_loss(ar_graph *g, void *c)
{
    nade_ctx *k = (nade_ctx *)c;
    ar_nade *m = k->m->nade;
    enum { N = 4, D = 6 };
    static float xs[N * D * D];
    int n, t, j, pos[D], shape[3] = {N, D, D};
    ar_tensor *a, *h, *z;
    for (t = 0; t < D; t++) pos[m->order[t]] = t;
    for (n = 0; n < N; n++) /* row (n, d): x_n with only the places before d kept */
        for (t = 0; t < D; t++)
            for (j = 0; j < D; j++) xs[(n * D + t) * D + j] = pos[j] < pos[t] ? k->x[n * D + j] : 0;
    a = ar_add(g, ar_matmul(g, ar_input(g, xs, 3, shape), m->W, 0, 0), m->c); /* [N,D,H] */
    h = ar_sigmoid(g, a);
    z = ar_add(g, ar_sum(g, ar_mul(g, h, m->V), 2), m->b); /* [N,D] */
    return ar_mean(g, ar_bce_logits(g, z, k->x), AR_ALL);
}

static void test_nade_gradients(void)
{
    static const int order[6] = {3, 0, 5, 2, 4, 1};
    ar_model m;
    ar_graph g;
    ar_rng r;
    nade_ctx k;
    double rel = 1;
    const char *worst = NULL;
    float *fast;
    size_t i, total;
    int o;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (o = 0; o < 2; o++) {
        ar_tensor *l;
        double diff = 0, norm = 0;
        CHECK(make_nade(&m, 6, 5, o ? order : NULL, 50 + o));
        ar_rng_seed(&r, 51);
        k.m = &m;
        for (i = 0; i < 24; i++) k.x[i] = (float)ar_rng_bernoulli(&r, 0.5f);
        CHECK_MSG(ar_gradcheck(&g, &m.ps, nade_loss, &k, 1e-2f, &rel, &worst) == AR_OK, "%s", g.err);
        CHECK_MSG(rel < 3e-4, "finite differences: relative error %.3g in %s", rel, worst ? worst : "?");
        /* O(HD) backward == autodiff of the naive formulation */
        total = m.ps.total;
        fast = (float *)malloc(total * sizeof(float));
        CHECK(fast);
        ar_graph_reset(&g);
        l = nade_loss(&g, &k);
        ar_params_zero_grad(&m.ps);
        CHECK(ar_backward(&g, l) == AR_OK);
        memcpy(fast, m.ps.g, total * sizeof(float));
        ar_graph_reset(&g);
        l = nade_naive_loss(&g, &k);
        CHECK_NEAR(l->x[0], nade_loss(&g, &k)->x[0], 1e-5);
        ar_params_zero_grad(&m.ps);
        CHECK(ar_backward(&g, l) == AR_OK);
        for (i = 0; i < total; i++) {
            diff += (fast[i] - m.ps.g[i]) * (fast[i] - m.ps.g[i]);
            norm += (double)fast[i] * fast[i];
        }
        free(fast);
        CHECK_MSG(sqrt(diff / norm) < 1e-5, "fast vs naive gradient: relative difference %.3g", sqrt(diff / norm));
        ar_model_free(&m);
    }
    ar_graph_free(&g);
}

/* Samples under every option (temperature 1, 0.5, 2, greedy, top-k 1 at
   1.5, top-p) follow the distribution derived from the model's exact joint
   (prefix marginals of exp(log_prob), tempered), and probs are those
   tempered conditionals for the drawn prefix. The tempered checks have
   power: temperature-1 frequencies would fail them by far (checked). */
static void test_nade_sampling_frequencies(void)
{
    enum { D = 4, N = 40000, NO = 6 };
    static const int order[D] = {1, 3, 0, 2};
    static float xs[N * D], probs[N * D];
    double p[1 << D], q[1 << D], q1[1 << D];
    float *all = t_all_binary(D), lp[1 << D];
    int counts[1 << D], i, t, oi;
    ar_sample_opts o[NO];
    ar_model m;
    ar_rng r;
    CHECK(all);
    CHECK(make_nade(&m, D, 5, order, 60));
    CHECK(ar_model_log_prob(&m, all, 1 << D, lp) == AR_OK);
    for (i = 0; i < 1 << D; i++) p[i] = exp((double)lp[i]);
    for (oi = 0; oi < NO; oi++) o[oi] = ar_sample_defaults();
    o[1].temperature = 0.5f;
    o[2].temperature = 2.0f;
    o[3].temperature = 0;
    o[4].temperature = 1.5f;
    o[4].top_k = 1;
    o[5].top_p = 0.7f;
    sampled_dist(p, D, order, &o[0], q1);
    for (oi = 0; oi < NO; oi++) {
        double ratio;
        sampled_dist(p, D, order, &o[oi], q);
        memset(counts, 0, sizeof counts);
        o[oi].probs = probs;
        ar_rng_seed(&r, 61 + (uint64_t)oi);
        CHECK_MSG(ar_model_sample(&m, N, &o[oi], &r, xs) == AR_OK, "options %d: %s", oi, m.err);
        for (i = 0; i < N; i++) counts[t_code_of(xs + i * D, D)]++;
        ratio = t_chi2_ratio(counts, q, 1 << D, N);
        CHECK_MSG(ratio <= 1, "options %d (T %g): chi-square %.2f times the threshold", oi, (double)o[oi].temperature,
                  ratio);
        if (oi > 0 && oi < 5) {
            ratio = t_chi2_ratio(counts, q1, 1 << D, N);
            CHECK_MSG(ratio > 10, "options %d: no power, %.2f against temperature 1", oi, ratio);
        }
        for (i = 0; i < 200; i++)
            for (t = 0; t < D; t++) {
                int d = order[t];
                double want = cond_at(p, D, order, t, t_code_of(xs + i * D, D), &o[oi]);
                CHECK_MSG(fabs(probs[i * D + d] - want) < 2e-5, "options %d, sample %d dim %d: probs %.7f, want %.7f",
                          oi, i, d, (double)probs[i * D + d], want);
            }
    }
    free(all);
    ar_model_free(&m);
}

/* A known prefix of the order: the rest follows p(rest | known). */
static void test_nade_completion(void)
{
    enum { D = 4, N = 40000 };
    static const int order[D] = {2, 0, 3, 1};
    static float xs[N * D], given[N * D];
    static unsigned char known[N * D];
    double p[1 << D], q[1 << D], z = 0;
    float *all = t_all_binary(D), lp[1 << D];
    int counts[1 << D] = {0}, i, c;
    ar_sample_opts o = ar_sample_defaults();
    ar_model m;
    ar_rng r;
    CHECK(all);
    CHECK(make_nade(&m, D, 5, order, 65));
    CHECK(ar_model_log_prob(&m, all, 1 << D, lp) == AR_OK);
    for (c = 0; c < 1 << D; c++) p[c] = exp((double)lp[c]);
    for (i = 0; i < N; i++) { /* x_2 = 0, x_0 = 1 */
        memset(known + i * D, 0, D);
        known[i * D + 2] = known[i * D + 0] = 1;
        given[i * D + 0] = 1;
        given[i * D + 1] = given[i * D + 2] = given[i * D + 3] = 0;
    }
    for (c = 0; c < 1 << D; c++) z += (c & 1) && !((c >> 2) & 1) ? p[c] : 0;
    for (c = 0; c < 1 << D; c++) q[c] = (c & 1) && !((c >> 2) & 1) ? p[c] / z : 0;
    o.given = given;
    o.known = known;
    ar_rng_seed(&r, 66);
    CHECK_MSG(ar_model_sample(&m, N, &o, &r, xs) == AR_OK, "%s", m.err);
    for (i = 0; i < N; i++) counts[t_code_of(xs + i * D, D)]++;
    CHECK_MSG(t_chi2_ratio(counts, q, 1 << D, N) <= 1, "chi-square %.2f times the threshold",
              t_chi2_ratio(counts, q, 1 << D, N));
    free(all);
    ar_model_free(&m);
}

static void test_nade_checkpoint_and_errors(void)
{
    static const int order[5] = {1, 4, 0, 3, 2};
    const char *path = "/tmp/ar_test_nade.safetensors";
    float x[10] = {1, 0, 1, 1, 0, 0, 0, 1, 1, 1}, la[2], lb[2];
    ar_model a, b;
    ar_graph g;
    ar_model_cfg c = ar_model_default(AR_NADE, 5, 1);
    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK(make_nade(&a, 5, 3, order, 70));
    CHECK(ar_model_log_prob(&a, x, 2, la) == AR_OK);
    CHECK_MSG(ar_model_save(&a, path) == AR_OK, "%s", a.err);
    memset(&b, 0xA5, sizeof b);
    CHECK_MSG(ar_model_load(&b, path) == AR_OK, "%s", b.err);
    CHECK(b.kind == AR_NADE && b.nade && !b.made && b.cfg.nade.H == 3 && b.cfg.order &&
          memcmp(b.cfg.order, order, sizeof order) == 0 && memcmp(b.nade->order, order, sizeof order) == 0);
    CHECK(ar_model_log_prob(&b, x, 2, lb) == AR_OK && memcmp(la, lb, sizeof la) == 0);
    ar_model_free(&b);
    CHECK(ar_model_save_mem(&a, &buf, &len) == AR_OK);
    memset(&b, 0x5A, sizeof b);
    CHECK_MSG(ar_model_load_mem(&b, buf, len) == AR_OK, "%s", b.err);
    CHECK(ar_model_log_prob(&b, x, 2, lb) == AR_OK && memcmp(la, lb, sizeof la) == 0);
    ar_model_free(&b);
    ar_free(buf);
    remove(path);
    /* MADE-only calls on a NADE */
    CHECK(ar_made_set_mask(&a, 0) == AR_ERR_ARG && a.err[0]);
    CHECK(ar_made_log_prob(&a, x, 2, 0, la) == AR_ERR_ARG && a.err[0]);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    {
        int xs[2] = {2, 5};
        CHECK(ar_made_logits(&a, &g, ar_input(&g, x, 2, xs)) == NULL && g.status == AR_ERR_ARG && g.err[0]);
    }
    /* data: 0.5 is not binary (example 1, dimension 3) */
    x[8] = 0.5f;
    CHECK_MSG(ar_model_log_prob(&a, x, 2, la) == AR_ERR_RANGE && strstr(a.err, "1") && strstr(a.err, "3"), "%s",
              a.err);
    ar_graph_reset(&g);
    CHECK(ar_model_nll(&a, &g, x, 2, NULL) == NULL && g.status == AR_ERR_RANGE && a.err[0]);
    x[8] = NAN;
    CHECK(ar_model_log_prob(&a, x, 2, la) == AR_ERR_NUMERIC && a.err[0]);
    x[8] = 1;
    CHECK(ar_model_log_prob(&a, x, 2, la) == AR_OK && a.err[0] == 0);
    ar_graph_free(&g);
    c.nade.H = 0;
    CHECK(ar_model_init(&b, &c) == AR_ERR_ARG && strstr(b.err, "H") && b.ps.x == NULL);
    ar_model_free(&a);
}

void tests_nade(void)
{
    t_run("nade/normalization", test_nade_normalization);
    t_run("nade/autoregressive_property", test_nade_autoregressive_property);
    t_run("nade/gradcheck", test_nade_gradients);
    t_run("nade/sampling_frequencies", test_nade_sampling_frequencies);
    t_run("nade/completion", test_nade_completion);
    t_run("nade/checkpoint_and_errors", test_nade_checkpoint_and_errors);
}
