/* NADE: normalization, autoregressive property, gradients (against the
   naive O(HD^2) formulation built from generic ops), sampling, checkpoints. */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

static int make_nade(ar_nade *m, int D, int H, const int *order, uint64_t seed)
{
    ar_nade_cfg c = ar_nade_default(D);
    ar_rng r;
    int i;
    c.H = H;
    c.order = order;
    c.seed = seed;
    if (ar_nade_init(m, &c) != AR_OK) return 0;
    ar_rng_seed(&r, seed + 1000);
    for (i = 0; i < m->ps.n; i++) ar_init_uniform(m->ps.t[i], &r, -1.5f, 1.5f);
    return 1;
}

static void test_nade_normalization(void)
{
    static const int order[10] = {4, 9, 0, 2, 7, 1, 8, 3, 6, 5};
    ar_nade m;
    ar_graph g;
    int n = 1 << 10, i, d, k;
    float *x = (float *)malloc(sizeof(float) * (size_t)n * 10), *lp = (float *)malloc(sizeof(float) * (size_t)n);
    for (i = 0; i < n; i++)
        for (d = 0; d < 10; d++) x[i * 10 + d] = (float)((i >> d) & 1);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (k = 0; k < 2; k++) {
        double s = 0;
        CHECK(make_nade(&m, 10, 7, k ? order : NULL, 3 + k));
        ar_graph_reset(&g);
        CHECK(ar_nade_log_prob(&m, &g, x, n, lp) == AR_OK);
        for (i = 0; i < n; i++) s += exp((double)lp[i]);
        CHECK_MSG(fabs(s - 1) < 1e-5, "order %d: total probability %.9f", k, s);
        ar_nade_free(&m);
    }
    ar_graph_free(&g);
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
    ar_nade m;
    ar_graph g;
    ar_rng r;
    memset(known, 1, sizeof known);
    ar_rng_seed(&r, 5);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (k = 0; k < 2; k++) {
        CHECK(make_nade(&m, D, 6, k ? order : NULL, 40 + k));
        for (d = 0; d < D; d++) pos[m.order[d]] = d;
        for (d = 0; d < D; d++) x[d] = (float)ar_rng_bernoulli(&r, 0.5f);
        ar_graph_reset(&g);
        CHECK(ar_nade_sample(&m, &g, 1, &r, 1.0f, x, known, out, p) == AR_OK);
        CHECK(memcmp(out, x, sizeof x) == 0);
        for (j = 0; j < D; j++) {
            memcpy(x2, x, sizeof x);
            x2[j] = 1 - x2[j];
            ar_graph_reset(&g);
            CHECK(ar_nade_sample(&m, &g, 1, &r, 1.0f, x2, known, out, p2) == AR_OK);
            for (d = 0; d < D; d++) {
                if (pos[j] >= pos[d]) CHECK_MSG(p[d] == p2[d], "order %d: p(x_%d) moved with x_%d", k, d, j);
                else depends += p[d] != p2[d];
            }
        }
        ar_nade_free(&m);
    }
    CHECK(depends > 2 * D);
    ar_graph_free(&g);
}

typedef struct { ar_nade *m; float x[4 * 6]; } nade_ctx;
static ar_tensor *nade_loss(ar_graph *g, void *c)
{
    nade_ctx *k = (nade_ctx *)c;
    return ar_mean(g, ar_nade_nll(k->m, g, k->x, 4), AR_ALL);
}

/* The same NADE as generic ops, O(HD^2): a_t = c + (x masked to places < t) W. */
static ar_tensor *nade_naive_loss(ar_graph *g, void *c)
{
    nade_ctx *k = (nade_ctx *)c;
    ar_nade *m = k->m;
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
    ar_nade m;
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
        CHECK(ar_gradcheck(&g, &m.ps, nade_loss, &k, 1e-2f, &rel, &worst) == AR_OK);
        CHECK_MSG(rel < 3e-4, "finite differences: relative error %.3g in %s", rel, worst ? worst : "?");
        /* O(HD) backward == autodiff of the naive formulation */
        total = m.ps.total;
        fast = (float *)malloc(total * sizeof(float));
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
        ar_nade_free(&m);
    }
    ar_graph_free(&g);
}

static void test_nade_sampling_frequencies(void)
{
    enum { D = 3, N = 60000 };
    static float xs[N * D];
    float all[8 * D], lp[8];
    int counts[8] = {0}, i, d;
    ar_nade m;
    ar_graph g;
    ar_rng r;
    CHECK(make_nade(&m, D, 4, NULL, 60));
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (i = 0; i < 8; i++)
        for (d = 0; d < D; d++) all[i * D + d] = (float)((i >> d) & 1);
    CHECK(ar_nade_log_prob(&m, &g, all, 8, lp) == AR_OK);
    ar_rng_seed(&r, 61);
    CHECK(ar_nade_sample(&m, &g, N, &r, 1.0f, NULL, NULL, xs, NULL) == AR_OK);
    for (i = 0; i < N; i++) counts[(int)xs[i * D] | (int)xs[i * D + 1] << 1 | (int)xs[i * D + 2] << 2]++;
    for (i = 0; i < 8; i++) {
        double p = exp((double)lp[i]), f = (double)counts[i] / N;
        CHECK_MSG(fabs(f - p) < 5 * sqrt(p * (1 - p) / N) + 1e-4, "outcome %d: frequency %.4f, p %.4f", i, f, p);
    }
    ar_graph_free(&g);
    ar_nade_free(&m);
}

static void test_nade_checkpoint_and_errors(void)
{
    static const int order[5] = {1, 4, 0, 3, 2};
    const char *path = "/tmp/ar_test_nade.safetensors";
    float x[10] = {1, 0, 1, 1, 0, 0, 0, 1, 1, 1}, la[2], lb[2];
    ar_nade a, b;
    ar_made made;
    ar_graph g;
    ar_nade_cfg c = ar_nade_default(5);
    CHECK(make_nade(&a, 5, 3, order, 70));
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_nade_log_prob(&a, &g, x, 2, la) == AR_OK);
    CHECK(ar_nade_save(&a, path) == AR_OK);
    memset(&b, 0, sizeof b);
    CHECK_MSG(ar_nade_load(&b, path) == AR_OK, "%s", b.err);
    CHECK(b.cfg.H == 3 && b.cfg.order && memcmp(b.order, order, sizeof order) == 0);
    CHECK(ar_nade_log_prob(&b, &g, x, 2, lb) == AR_OK && memcmp(la, lb, sizeof la) == 0);
    memset(&made, 0, sizeof made);
    CHECK(ar_made_load(&made, path) == AR_ERR_FORMAT && strstr(made.err, "ar.model = nade"));
    remove(path);
    x[3] = 0.5f;
    ar_graph_reset(&g);
    CHECK(ar_nade_log_prob(&a, &g, x, 2, la) == AR_ERR_RANGE && strstr(g.err, "x[3]"));
    ar_nade_free(&b);
    c.H = 0;
    CHECK(ar_nade_init(&b, &c) == AR_ERR_ARG);
    ar_nade_free(&a);
    ar_graph_free(&g);
}

void tests_nade(void)
{
    t_run("nade/normalization", test_nade_normalization);
    t_run("nade/autoregressive_property", test_nade_autoregressive_property);
    t_run("nade/gradcheck", test_nade_gradients);
    t_run("nade/sampling_frequencies", test_nade_sampling_frequencies);
    t_run("nade/checkpoint_and_errors", test_nade_checkpoint_and_errors);
}
