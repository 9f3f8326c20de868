/* RNADE (NADE with mixture-of-Gaussians heads): the density integrates to 1,
   gradients, the autoregressive property, sampling moments, checkpoints. */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

static int make_rnade(ar_nade *m, int D, int H, int K, uint64_t seed)
{
    ar_nade_cfg c = ar_rnade_default(D, K);
    ar_rng r;
    int d, k;
    c.H = H;
    c.seed = seed;
    if (ar_nade_init(m, &c) != AR_OK) return 0;
    ar_rng_seed(&r, seed + 7);
    ar_init_uniform(m->W, &r, -1, 1);
    ar_init_uniform(m->c, &r, -1, 1);
    ar_init_uniform(m->V, &r, -0.2f, 0.2f);
    ar_init_uniform(m->b, &r, -1.5f, 1.5f);
    for (d = 0; d < D; d++) /* log sigma in about [-2, 1]: all mass well inside the grids below */
        for (k = 0; k < K; k++) m->b->x[(size_t)d * 3 * K + 2 * K + k] = -1.0f + ar_rng_uniform(&r);
    return 1;
}

/* Midpoint rule on [-20,20]^2: a smooth density decaying like a Gaussian,
   so the sum converges far faster than the step size suggests. */
static void test_rnade_density_integrates_to_one(void)
{
    enum { G = 480 };
    static float x[G * G * 2], lp[G * G];
    const double L = 20, h = 2 * L / G;
    ar_nade m;
    ar_graph g;
    int i, j, k;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (i = 0; i < G; i++)
        for (j = 0; j < G; j++) {
            x[2 * (i * G + j)] = (float)(-L + h * (i + 0.5));
            x[2 * (i * G + j) + 1] = (float)(-L + h * (j + 0.5));
        }
    for (k = 1; k <= 3; k += 2) {
        double s = 0;
        CHECK(make_rnade(&m, 2, 5, k, 10 + k));
        ar_graph_reset(&g);
        CHECK(ar_nade_log_prob(&m, &g, x, G * G, lp) == AR_OK);
        for (i = 0; i < G * G; i++) s += exp((double)lp[i]) * h * h;
        CHECK_MSG(fabs(s - 1) < 1e-4, "K=%d: integral %.7f", k, s);
        ar_nade_free(&m);
    }
    ar_graph_free(&g);
}

typedef struct { ar_nade *m; float x[5 * 3]; } rn_ctx;
static ar_tensor *rn_loss(ar_graph *g, void *c)
{
    rn_ctx *k = (rn_ctx *)c;
    return ar_mean(g, ar_nade_nll(k->m, g, k->x, 5), AR_ALL);
}

static void test_rnade_gradcheck(void)
{
    static const int order[3] = {2, 0, 1};
    ar_nade_cfg c = ar_rnade_default(3, 2);
    ar_nade m;
    ar_graph g;
    ar_rng r;
    rn_ctx k;
    double rel = 1;
    const char *worst = NULL;
    int i;
    c.H = 4;
    c.order = order;
    CHECK(ar_nade_init(&m, &c) == AR_OK);
    ar_rng_seed(&r, 3);
    for (i = 0; i < m.ps.n; i++) ar_init_uniform(m.ps.t[i], &r, -0.8f, 0.8f);
    for (i = 0; i < 15; i++) k.x[i] = ar_rng_normal(&r);
    k.m = &m;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_gradcheck(&g, &m.ps, rn_loss, &k, 1e-2f, &rel, &worst) == AR_OK);
    CHECK_MSG(rel < 3e-4, "relative gradient error %.3g in %s", rel, worst ? worst : "?");
    ar_graph_free(&g);
    ar_nade_free(&m);
}

/* E[x_d | x_<d] (reported while sampling with every input given) ignores
   inputs at later places. */
static void test_rnade_autoregressive_property(void)
{
    enum { D = 6 };
    static const int order[D] = {3, 5, 0, 4, 1, 2};
    ar_nade_cfg c = ar_rnade_default(D, 3);
    unsigned char known[D];
    float x[D], x2[D], e[D], e2[D], out[D];
    int pos[D], d, j, depends = 0;
    ar_nade m;
    ar_graph g;
    ar_rng r;
    c.H = 7;
    c.order = order;
    CHECK(ar_nade_init(&m, &c) == AR_OK);
    ar_rng_seed(&r, 4);
    ar_init_uniform(m.W, &r, -1, 1);
    ar_init_uniform(m.V, &r, -1, 1);
    for (d = 0; d < D; d++) pos[order[d]] = d;
    for (d = 0; d < D; d++) x[d] = ar_rng_normal(&r);
    memset(known, 1, sizeof known);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_nade_sample(&m, &g, 1, &r, 1.0f, x, known, out, e) == AR_OK);
    for (j = 0; j < D; j++) {
        memcpy(x2, x, sizeof x);
        x2[j] += 1.5f;
        ar_graph_reset(&g);
        CHECK(ar_nade_sample(&m, &g, 1, &r, 1.0f, x2, known, out, e2) == AR_OK);
        for (d = 0; d < D; d++) {
            if (pos[j] >= pos[d]) CHECK_MSG(e[d] == e2[d], "E[x_%d] moved with x_%d", d, j);
            else depends += fabsf(e[d] - e2[d]) > 1e-4f;
        }
    }
    CHECK(depends >= D);
    ar_graph_free(&g);
    ar_nade_free(&m);
}

/* Sample moments against moments of the density integrated on a grid. */
static void test_rnade_sampling_moments(void)
{
    enum { G = 400, N = 100000 };
    static float grid[G * G * 2], lp[G * G], xs[N * 2];
    const double L = 20, h = 2 * L / G;
    double m1[2] = {0, 0}, m2[2] = {0, 0}, s1[2] = {0, 0}, s2[2] = {0, 0};
    ar_nade m;
    ar_graph g;
    ar_rng r;
    int i, j, d;
    CHECK(make_rnade(&m, 2, 5, 3, 20));
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (i = 0; i < G; i++)
        for (j = 0; j < G; j++) {
            grid[2 * (i * G + j)] = (float)(-L + h * (i + 0.5));
            grid[2 * (i * G + j) + 1] = (float)(-L + h * (j + 0.5));
        }
    CHECK(ar_nade_log_prob(&m, &g, grid, G * G, lp) == AR_OK);
    for (i = 0; i < G * G; i++)
        for (d = 0; d < 2; d++) {
            double p = exp((double)lp[i]) * h * h, v = grid[2 * i + d];
            m1[d] += p * v;
            m2[d] += p * v * v;
        }
    ar_graph_reset(&g);
    ar_rng_seed(&r, 21);
    CHECK(ar_nade_sample(&m, &g, N, &r, 1.0f, NULL, NULL, xs, NULL) == AR_OK);
    for (i = 0; i < N; i++)
        for (d = 0; d < 2; d++) {
            s1[d] += xs[2 * i + d] / N;
            s2[d] += (double)xs[2 * i + d] * xs[2 * i + d] / N;
        }
    for (d = 0; d < 2; d++) {
        double var = m2[d] - m1[d] * m1[d];
        CHECK_MSG(fabs(s1[d] - m1[d]) < 5 * sqrt(var / N), "dim %d: sample mean %.4f, density mean %.4f", d, s1[d], m1[d]);
        CHECK_MSG(fabs(s2[d] - m2[d]) < 0.02 * m2[d] + 0.01, "dim %d: E[x^2] %.4f vs %.4f", d, s2[d], m2[d]);
    }
    ar_graph_free(&g);
    ar_nade_free(&m);
}

static void test_rnade_checkpoint_and_errors(void)
{
    const char *path = "/tmp/ar_test_rnade.safetensors";
    float x[6] = {0.5f, -1, 2, 0, 0.25f, 3}, la[2], lb[2];
    ar_nade a, b;
    ar_graph g;
    ar_nade_cfg c = ar_rnade_default(3, 4);
    CHECK(make_rnade(&a, 3, 4, 2, 30));
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_nade_log_prob(&a, &g, x, 2, la) == AR_OK);
    CHECK(ar_nade_save(&a, path) == AR_OK);
    memset(&b, 0, sizeof b);
    CHECK_MSG(ar_nade_load(&b, path) == AR_OK, "%s", b.err);
    CHECK(b.cfg.K == 2 && b.cfg.H == 4 && b.V->nd == 3 && b.V->shape[1] == 6);
    ar_graph_reset(&g);
    CHECK(ar_nade_log_prob(&b, &g, x, 2, lb) == AR_OK && memcmp(la, lb, sizeof la) == 0);
    remove(path);
    x[4] = NAN;
    ar_graph_reset(&g);
    CHECK(ar_nade_log_prob(&a, &g, x, 2, la) == AR_ERR_RANGE && strstr(g.err, "x[4]"));
    ar_nade_free(&b);
    c.K = AR_NADE_MAX_K + 1;
    CHECK(ar_nade_init(&b, &c) == AR_ERR_ARG && strstr(b.err, "K"));
    ar_nade_free(&a);
    ar_graph_free(&g);
}

void tests_rnade(void)
{
    t_run("rnade/density_integrates_to_one", test_rnade_density_integrates_to_one);
    t_run("rnade/gradcheck", test_rnade_gradcheck);
    t_run("rnade/autoregressive_property", test_rnade_autoregressive_property);
    t_run("rnade/sampling_moments", test_rnade_sampling_moments);
    t_run("rnade/checkpoint_and_errors", test_rnade_checkpoint_and_errors);
}
