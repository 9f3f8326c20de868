/* RNADE (NADE with mixture-of-Gaussians heads) through ar_model: the density
   integrates to 1 (on the real plane, and on (0,1) with the logit
   transform, whose log-probability is the untransformed one of y plus the
   log-determinant), gradients, the autoregressive property, samples against
   the exact (tempered) conditionals, checkpoints, bad data. */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

enum { MAX_H = 16 };

static int make_rnade(ar_model *m, int D, int H, int K, uint64_t seed, int transform, const int *order)
{
    ar_model_cfg c = ar_model_default(AR_RNADE, D, 1);
    ar_nade *n;
    ar_rng r;
    int d, k;
    c.nade.H = H;
    c.nade.K = K;
    c.nade.transform = transform;
    c.order = order;
    c.seed = seed;
    if (ar_model_init(m, &c) != AR_OK) return 0;
    n = m->nade;
    ar_rng_seed(&r, seed + 7);
    ar_init_uniform(n->W, &r, -1, 1);
    ar_init_uniform(n->c, &r, -1, 1);
    ar_init_uniform(n->V, &r, -0.2f, 0.2f);
    ar_init_uniform(n->b, &r, -1.5f, 1.5f);
    for (d = 0; d < D; d++) /* log sigma in about [-1, 0]: all mass well inside the grids below */
        for (k = 0; k < K; k++) n->b->x[(size_t)d * 3 * K + 2 * K + k] = -1.0f + ar_rng_uniform(&r);
    return 1;
}

/* The logit transform as documented: y = logit(1e-6 + (1 - 2e-6) x), and
   log |dy/dx|. */
static double to_y(double x) { double u = 1e-6 + (1 - 2e-6) * x; return log(u / (1 - u)); }
static double logdet(double x) { double u = 1e-6 + (1 - 2e-6) * x; return log((1 - 2e-6) / (u * (1 - u))); }

/* The head of place t by hand from the documented recursion (a_1 = c,
   h = sigmoid(a), V_d h + b_d = K logits, K means, K log-sigmas,
   a += W_d y_d), in double, for the model-space values y. */
static void head(const ar_model *m, const double *y, int t, double *o)
{
    const ar_nade *n = m->nade;
    int H = n->cfg.H, K = n->cfg.K, s, h, j, d = n->order[t];
    double a[MAX_H];
    for (h = 0; h < H; h++) a[h] = n->c->x[h];
    for (s = 0; s < t; s++)
        for (h = 0; h < H; h++) a[h] += n->W->x[(size_t)n->order[s] * H + h] * y[n->order[s]];
    for (j = 0; j < 3 * K; j++) {
        double v = n->b->x[(size_t)d * 3 * K + j];
        for (h = 0; h < H; h++) v += n->V->x[((size_t)d * 3 * K + j) * H + h] / (1 + exp(-a[h]));
        o[j] = v;
    }
}

/* Mixture weights softmax(z / T) and scales sigma sqrt(T): the tempered head. */
static void tempered(const double *o, int K, double T, double *w, double *sd)
{
    double mx = -INFINITY, s = 0;
    int k;
    for (k = 0; k < K; k++) mx = o[k] > mx ? o[k] : mx;
    for (k = 0; k < K; k++) s += w[k] = exp((o[k] - mx) / T);
    for (k = 0; k < K; k++) {
        w[k] /= s;
        sd[k] = exp(o[2 * K + k]) * sqrt(T);
    }
}

static double head_logpdf(const double *o, int K, double y)
{
    double w[AR_NADE_MAX_K], sd[AR_NADE_MAX_K], p = 0;
    int k;
    tempered(o, K, 1, w, sd);
    for (k = 0; k < K; k++) {
        double e = (y - o[K + k]) / sd[k];
        p += w[k] * exp(-0.5 * e * e) / (sd[k] * sqrt(2 * 3.14159265358979323846));
    }
    return log(p);
}

static double head_cdf(const double *o, int K, double T, double y)
{
    double w[AR_NADE_MAX_K], sd[AR_NADE_MAX_K], F = 0;
    int k;
    tempered(o, K, T, w, sd);
    for (k = 0; k < K; k++) F += w[k] * 0.5 * erfc(-(y - o[K + k]) / (sd[k] * sqrt(2.0)));
    return F;
}

static double head_mean(const double *o, int K, double T)
{
    double w[AR_NADE_MAX_K], sd[AR_NADE_MAX_K], mu = 0;
    int k;
    tempered(o, K, T, w, sd);
    for (k = 0; k < K; k++) mu += w[k] * o[K + k];
    return mu;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov-Smirnov distance of u[n] from Uniform(0,1) (sorts u), over
   the critical value at about 1e-5 false alarms: <= 1 passes. */
static double ks_ratio(double *u, int n)
{
    double dmax = 0;
    int i;
    qsort(u, (size_t)n, sizeof *u, cmp_double);
    for (i = 0; i < n; i++) {
        double a = (i + 1.0) / n - u[i], b = u[i] - (double)i / n;
        dmax = a > dmax ? a : dmax;
        dmax = b > dmax ? b : dmax;
    }
    return dmax / sqrt(-0.5 * log(1e-5 / 2) / n);
}

/* Midpoint rule on [-20,20]^2: a smooth density decaying like a Gaussian,
   so the sum converges far faster than the step size suggests. */
static void test_rnade_density_integrates_to_one(void)
{
    enum { G = 480 };
    static float x[G * G * 2], lp[G * G];
    const double L = 20, h = 2 * L / G;
    ar_model m;
    int i, j, k;
    for (i = 0; i < G; i++)
        for (j = 0; j < G; j++) {
            x[2 * (i * G + j)] = (float)(-L + h * (i + 0.5));
            x[2 * (i * G + j) + 1] = (float)(-L + h * (j + 0.5));
        }
    for (k = 1; k <= 3; k += 2) {
        double s = 0;
        CHECK(make_rnade(&m, 2, 5, k, 10 + k, AR_TRANSFORM_NONE, NULL));
        CHECK(m.kind == AR_RNADE && m.levels == 0 && m.nade && m.cfg.nade.transform == AR_TRANSFORM_NONE);
        CHECK_MSG(ar_model_log_prob(&m, x, G * G, lp) == AR_OK, "%s", m.err);
        for (i = 0; i < G * G; i++) s += exp((double)lp[i]) * h * h;
        CHECK_MSG(fabs(s - 1) < 1e-4, "K=%d: integral %.7f", k, s);
        ar_model_free(&m);
    }
}

/* With the logit transform the density is of x on (0,1): in 1-D it
   integrates to 1 there (midpoint rule, fine enough for the steep ends). */
static void test_rnade_logit_integrates_to_one(void)
{
    enum { G = 200000 };
    static float x[G], lp[G];
    ar_model m;
    int i, k;
    for (i = 0; i < G; i++) x[i] = (float)((i + 0.5) / G);
    for (k = 1; k <= 3; k += 2) {
        double s = 0;
        CHECK(make_rnade(&m, 1, 4, k, 40 + k, AR_TRANSFORM_LOGIT, NULL));
        CHECK(m.cfg.nade.transform == AR_TRANSFORM_LOGIT && m.levels == 0);
        CHECK_MSG(ar_model_log_prob(&m, x, G, lp) == AR_OK, "%s", m.err);
        for (i = 0; i < G; i++) s += exp((double)lp[i]) / G;
        CHECK_MSG(fabs(s - 1) < 1e-4, "K=%d: integral over (0,1) %.7f", k, s);
        ar_model_free(&m);
    }
}

/* log p_logit(x) = log p_none(y) + sum_d log |dy_d/dx_d| for the same
   weights; and both match the recursion written out by hand. 0 and 1 are
   data too (the transform's 1e-6 margin is there for them). */
static void test_rnade_logit_is_untransformed_plus_logdet(void)
{
    enum { D = 3, N = 64 };
    static const int order[D] = {2, 0, 1};
    float x[N * D], y[N * D], la[N], lb[N];
    ar_model a, b;
    ar_rng r;
    int i, d, t;
    CHECK(make_rnade(&a, D, 6, 3, 90, AR_TRANSFORM_LOGIT, order));
    CHECK(make_rnade(&b, D, 6, 3, 91, AR_TRANSFORM_NONE, order));
    CHECK(a.ps.total == b.ps.total && a.ps.n == b.ps.n);
    memcpy(b.ps.x, a.ps.x, a.ps.total * sizeof(float));
    ar_rng_seed(&r, 92);
    for (i = 0; i < N * D; i++) x[i] = ar_rng_uniform(&r);
    x[0] = 0;
    x[1] = 1;
    x[5] = 1e-4f;
    x[6] = 0.9999f;
    for (i = 0; i < N * D; i++) y[i] = (float)to_y(x[i]);
    CHECK_MSG(ar_model_log_prob(&a, x, N, la) == AR_OK, "%s", a.err);
    CHECK_MSG(ar_model_log_prob(&b, y, N, lb) == AR_OK, "%s", b.err);
    for (i = 0; i < N; i++) {
        double ld = 0, ref = 0, yd[D], o[9];
        for (d = 0; d < D; d++) {
            ld += logdet(x[i * D + d]);
            yd[d] = y[i * D + d];
        }
        for (t = 0; t < D; t++) {
            head(&b, yd, t, o);
            ref += head_logpdf(o, 3, yd[order[t]]);
        }
        CHECK_MSG(isfinite(la[i]) && fabs(la[i] - (lb[i] + ld)) < 2e-4 * (1 + fabs(la[i])),
                  "example %d: logit model %.6f, untransformed %.6f + log-det %.6f", i, (double)la[i], (double)lb[i],
                  ld);
        CHECK_MSG(fabs(lb[i] - ref) < 2e-4 * (1 + fabs(ref)), "example %d: model %.6f, by hand %.6f", i,
                  (double)lb[i], ref);
    }
    ar_model_free(&a);
    ar_model_free(&b);
}

typedef struct { ar_model *m; float x[5 * 3]; } rn_ctx;
static ar_tensor *rn_loss(ar_graph *g, void *c)
{
    rn_ctx *k = (rn_ctx *)c;
    return ar_mean(g, ar_model_nll(k->m, g, k->x, 5, NULL), AR_ALL);
}

static void test_rnade_gradcheck(void)
{
    static const int order[3] = {2, 0, 1};
    ar_graph g;
    ar_rng r;
    int i, tr;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (tr = 0; tr < 2; tr++) {
        ar_model_cfg c = ar_model_default(AR_RNADE, 3, 1);
        ar_model m;
        rn_ctx k;
        double rel = 1;
        const char *worst = NULL;
        c.nade.H = 4;
        c.nade.K = 2;
        c.nade.transform = tr ? AR_TRANSFORM_LOGIT : AR_TRANSFORM_NONE;
        c.order = order;
        CHECK(ar_model_init(&m, &c) == AR_OK);
        ar_rng_seed(&r, 3);
        for (i = 0; i < m.ps.n; i++) ar_init_uniform(m.ps.t[i], &r, -0.8f, 0.8f);
        for (i = 0; i < 15; i++) k.x[i] = tr ? 0.05f + 0.9f * ar_rng_uniform(&r) : ar_rng_normal(&r);
        k.m = &m;
        CHECK_MSG(ar_gradcheck(&g, &m.ps, rn_loss, &k, 1e-2f, &rel, &worst) == AR_OK, "%s", g.err);
        CHECK_MSG(rel < 3e-4, "transform %d: relative gradient error %.3g in %s", tr, rel, worst ? worst : "?");
        ar_model_free(&m);
    }
    ar_graph_free(&g);
}

/* E[x_d | x_<d] (reported while sampling with every input given) ignores
   inputs at later places. */
static void test_rnade_autoregressive_property(void)
{
    enum { D = 6 };
    static const int order[D] = {3, 5, 0, 4, 1, 2};
    ar_model_cfg c = ar_model_default(AR_RNADE, D, 1);
    ar_sample_opts o = ar_sample_defaults();
    unsigned char known[D];
    float x[D], x2[D], e[D], e2[D], out[D];
    int pos[D], d, j, depends = 0;
    ar_model m;
    ar_rng r;
    c.nade.H = 7;
    c.nade.K = 3;
    c.nade.transform = AR_TRANSFORM_NONE;
    c.order = order;
    CHECK(ar_model_init(&m, &c) == AR_OK);
    ar_rng_seed(&r, 4);
    ar_init_uniform(m.nade->W, &r, -1, 1);
    ar_init_uniform(m.nade->V, &r, -1, 1);
    for (d = 0; d < D; d++) pos[order[d]] = d;
    for (d = 0; d < D; d++) x[d] = ar_rng_normal(&r);
    memset(known, 1, sizeof known);
    o.given = x;
    o.known = known;
    o.probs = e;
    CHECK_MSG(ar_model_sample(&m, 1, &o, &r, out) == AR_OK, "%s", m.err);
    CHECK(memcmp(out, x, sizeof x) == 0);
    for (j = 0; j < D; j++) {
        memcpy(x2, x, sizeof x);
        x2[j] += 1.5f;
        o.given = x2;
        o.probs = e2;
        CHECK(ar_model_sample(&m, 1, &o, &r, out) == AR_OK);
        for (d = 0; d < D; d++) {
            if (pos[j] >= pos[d]) CHECK_MSG(e[d] == e2[d], "E[x_%d] moved with x_%d", d, j);
            else depends += fabsf(e[d] - e2[d]) > 1e-4f;
        }
    }
    CHECK(depends >= D);
    ar_model_free(&m);
}

/* Sample moments against moments of the density integrated on a grid. */
static void test_rnade_sampling_moments(void)
{
    enum { G = 400, N = 100000 };
    static float grid[G * G * 2], lp[G * G], xs[N * 2];
    const double L = 20, h = 2 * L / G;
    double m1[2] = {0, 0}, m2[2] = {0, 0}, s1[2] = {0, 0}, s2[2] = {0, 0};
    ar_sample_opts o = ar_sample_defaults();
    ar_model m;
    ar_rng r;
    int i, j, d;
    CHECK(make_rnade(&m, 2, 5, 3, 20, AR_TRANSFORM_NONE, NULL));
    for (i = 0; i < G; i++)
        for (j = 0; j < G; j++) {
            grid[2 * (i * G + j)] = (float)(-L + h * (i + 0.5));
            grid[2 * (i * G + j) + 1] = (float)(-L + h * (j + 0.5));
        }
    CHECK(ar_model_log_prob(&m, grid, G * G, lp) == AR_OK);
    for (i = 0; i < G * G; i++)
        for (d = 0; d < 2; d++) {
            double p = exp((double)lp[i]) * h * h, v = grid[2 * i + d];
            m1[d] += p * v;
            m2[d] += p * v * v;
        }
    ar_rng_seed(&r, 21);
    CHECK_MSG(ar_model_sample(&m, N, &o, &r, xs) == AR_OK, "%s", m.err);
    for (i = 0; i < N; i++)
        for (d = 0; d < 2; d++) {
            s1[d] += xs[2 * i + d] / N;
            s2[d] += (double)xs[2 * i + d] * xs[2 * i + d] / N;
        }
    for (d = 0; d < 2; d++) {
        double var = m2[d] - m1[d] * m1[d];
        CHECK_MSG(fabs(s1[d] - m1[d]) < 5 * sqrt(var / N), "dim %d: sample mean %.4f, density mean %.4f", d, s1[d],
                  m1[d]);
        CHECK_MSG(fabs(s2[d] - m2[d]) < 0.02 * m2[d] + 0.01, "dim %d: E[x^2] %.4f vs %.4f", d, s2[d], m2[d]);
    }
    ar_model_free(&m);
}

/* Samples at temperature T follow the exact tempered conditionals
   (component weights softmax(z/T), sigmas times sqrt(T)): every place's
   probability integral transform F_T(x_d | drawn prefix) is uniform (KS),
   and probs are the tempered conditional means of the drawn prefix. The
   tempered checks have power (temperature-1 conditionals fail them). With
   the logit transform the same holds for y = logit(x). Greedy (T = 0)
   takes the mean of the likeliest component at every place. */
static void test_rnade_temperature(void)
{
    enum { D = 2, N = 40000, K = 3 };
    static const int order[D] = {1, 0};
    static const float temps[5] = {1.0f, 0.5f, 2.0f, 1.0f, 0.6f};
    static float xs[N * D], probs[N * D];
    static double u[D][N], u1[D][N];
    ar_rng r;
    int ti, i, t, k;
    for (ti = 0; ti < 5; ti++) {
        int logit = ti >= 3;
        ar_sample_opts o = ar_sample_defaults();
        double worst = 0, power = 0;
        ar_model m;
        CHECK(make_rnade(&m, D, 5, K, 80, logit ? AR_TRANSFORM_LOGIT : AR_TRANSFORM_NONE, order));
        o.temperature = temps[ti];
        o.probs = probs;
        ar_rng_seed(&r, 81 + (uint64_t)ti);
        CHECK_MSG(ar_model_sample(&m, N, &o, &r, xs) == AR_OK, "T %g: %s", (double)o.temperature, m.err);
        for (i = 0; i < N; i++) {
            double y[D], hd[3 * K];
            int d;
            for (d = 0; d < D; d++) {
                if (logit)
                    CHECK_MSG(xs[i * D + d] >= 0 && xs[i * D + d] <= 1, "logit sample %.9g", (double)xs[i * D + d]);
                y[d] = logit ? to_y(xs[i * D + d]) : xs[i * D + d];
            }
            for (t = 0; t < D; t++) {
                d = order[t];
                head(&m, y, t, hd);
                u[t][i] = head_cdf(hd, K, o.temperature, y[d]);
                u1[t][i] = head_cdf(hd, K, 1, y[d]);
                if (!logit && i < 200)
                    CHECK_MSG(fabs(probs[i * D + d] - head_mean(hd, K, o.temperature)) < 1e-4,
                              "T %g sample %d dim %d: probs %.6f, tempered mean %.6f", (double)o.temperature, i, d,
                              (double)probs[i * D + d], head_mean(hd, K, o.temperature));
            }
        }
        for (t = 0; t < D; t++) {
            double a = ks_ratio(u[t], N), b = ks_ratio(u1[t], N);
            worst = a > worst ? a : worst;
            power = b > power ? b : power;
        }
        CHECK_MSG(worst <= 1, "T %g%s: KS distance %.2f times the critical value", (double)o.temperature,
                  logit ? " (logit)" : "", worst);
        if (o.temperature != 1)
            CHECK_MSG(power > 3, "T %g: no power, KS %.2f against temperature 1", (double)o.temperature, power);
        /* greedy */
        if (!logit) {
            o.temperature = 0;
            o.probs = NULL;
            CHECK_MSG(ar_model_sample(&m, 50, &o, &r, xs) == AR_OK, "greedy: %s", m.err);
            for (i = 0; i < 50; i++) {
                double y[D], hd[3 * K];
                int best = 0;
                y[0] = xs[i * D];
                y[1] = xs[i * D + 1];
                for (t = 0; t < D; t++) {
                    head(&m, y, t, hd);
                    for (best = 0, k = 1; k < K; k++) best = hd[k] > hd[best] ? k : best;
                    CHECK_MSG(fabs(y[order[t]] - hd[K + best]) < 1e-4 * (1 + fabs(hd[K + best])),
                              "greedy sample %d place %d: %.6f, mean of the likeliest component %.6f", i, t,
                              y[order[t]], hd[K + best]);
                }
            }
        }
        ar_model_free(&m);
    }
}

/* With the logit transform, samples are data of the model: in [0,1] even
   where y lies far in a tail (a mean of +-20 here, where the inverse
   transform of a float sigmoid lands just outside), and the model's own
   log_prob takes them. */
static void test_rnade_logit_samples_are_data(void)
{
    enum { D = 2, K = 2, N = 1000 };
    static float xs[N * D], lp[N];
    ar_sample_opts o = ar_sample_defaults();
    ar_model m;
    ar_rng r;
    int i;
    CHECK(make_rnade(&m, D, 3, K, 95, AR_TRANSFORM_LOGIT, NULL));
    ar_fill(m.nade->V, 0);
    m.nade->b->x[0] = 5;           /* dim 0: component 0 nearly always, mean +20 */
    m.nade->b->x[K] = 20;
    m.nade->b->x[3 * K] = 5;       /* dim 1: component 0 nearly always, mean -20 */
    m.nade->b->x[3 * K + K] = -20;
    ar_rng_seed(&r, 96);
    CHECK_MSG(ar_model_sample(&m, N, &o, &r, xs) == AR_OK, "%s", m.err);
    for (i = 0; i < N * D; i++)
        CHECK_MSG(xs[i] >= 0 && xs[i] <= 1, "sample x[%d] = %.9g is outside [0,1]", i, (double)xs[i]);
    CHECK_MSG(ar_model_log_prob(&m, xs, N, lp) == AR_OK, "the model's own samples: %s", m.err);
    for (i = 0; i < N; i++) CHECK(isfinite(lp[i]));
    ar_model_free(&m);
}

static void test_rnade_checkpoint_and_errors(void)
{
    const char *path = "/tmp/ar_test_rnade.safetensors";
    float x[6] = {0.5f, -1, 2, 0, 0.25f, 3}, la[2], lb[2];
    float xl[6] = {0.5f, 0.1f, 0.9f, 0, 0.25f, 1};
    ar_model a, b;
    ar_model_cfg c = ar_model_default(AR_RNADE, 3, 1);
    int tr;
    CHECK(c.nade.transform == AR_TRANSFORM_LOGIT); /* the documented default */
    for (tr = 0; tr < 2; tr++) {
        float *d = tr ? xl : x;
        CHECK(make_rnade(&a, 3, 4, 2, 30, tr ? AR_TRANSFORM_LOGIT : AR_TRANSFORM_NONE, NULL));
        CHECK_MSG(ar_model_log_prob(&a, d, 2, la) == AR_OK, "%s", a.err);
        CHECK(isfinite(la[0]) && isfinite(la[1]));
        CHECK_MSG(ar_model_save(&a, path) == AR_OK, "%s", a.err);
        memset(&b, 0xA5, sizeof b);
        CHECK_MSG(ar_model_load(&b, path) == AR_OK, "%s", b.err);
        CHECK(b.kind == AR_RNADE && b.cfg.nade.K == 2 && b.cfg.nade.H == 4 && b.nade->V->nd == 3 &&
              b.nade->V->shape[1] == 6 && b.cfg.nade.transform == a.cfg.nade.transform);
        CHECK(ar_model_log_prob(&b, d, 2, lb) == AR_OK && memcmp(la, lb, sizeof la) == 0);
        ar_model_free(&b);
        remove(path);
        /* example 1, dimension 1 */
        d[4] = NAN;
        CHECK_MSG(ar_model_log_prob(&a, d, 2, la) == AR_ERR_NUMERIC && a.err[0], "%s", a.err);
        d[4] = INFINITY;
        CHECK(ar_model_log_prob(&a, d, 2, la) == AR_ERR_NUMERIC && a.err[0]);
        if (tr) {
            d[4] = 1.5f;
            CHECK_MSG(ar_model_log_prob(&a, d, 2, la) == AR_ERR_RANGE && a.err[0], "%s", a.err);
            d[4] = -0.25f;
            CHECK(ar_model_log_prob(&a, d, 2, la) == AR_ERR_RANGE && a.err[0]);
        }
        d[4] = 0.25f;
        CHECK(ar_model_log_prob(&a, d, 2, la) == AR_OK && a.err[0] == 0);
        ar_model_free(&a);
    }
    c.nade.K = AR_NADE_MAX_K + 1;
    CHECK(ar_model_init(&b, &c) == AR_ERR_ARG && strstr(b.err, "K") && b.ps.x == NULL);
    c.nade.K = 0;
    CHECK(ar_model_init(&b, &c) == AR_ERR_ARG && strstr(b.err, "K"));
    c.nade.K = 2;
    c.nade.transform = 7;
    CHECK(ar_model_init(&b, &c) == AR_ERR_ARG && strstr(b.err, "transform"));
}

void tests_rnade(void)
{
    t_run("rnade/density_integrates_to_one", test_rnade_density_integrates_to_one);
    t_run("rnade/logit_integrates_to_one", test_rnade_logit_integrates_to_one);
    t_run("rnade/logit_is_untransformed_plus_logdet", test_rnade_logit_is_untransformed_plus_logdet);
    t_run("rnade/gradcheck", test_rnade_gradcheck);
    t_run("rnade/autoregressive_property", test_rnade_autoregressive_property);
    t_run("rnade/sampling_moments", test_rnade_sampling_moments);
    t_run("rnade/temperature", test_rnade_temperature);
    t_run("rnade/logit_samples_are_data", test_rnade_logit_samples_are_data);
    t_run("rnade/checkpoint_and_errors", test_rnade_checkpoint_and_errors);
}
