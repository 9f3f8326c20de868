/* MADE and FVSBN through ar_model: exact normalization (mixture and every
   mask set), the autoregressive property for every mask set, whole-model
   gradients, sample frequencies against the model's own probabilities for
   every sampling option (mixtures included), completion, checkpoints that
   store their masks, and bad data. */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

/* Random weights of a visible size, so no property holds by accident. */
static void scramble(ar_model *m, uint64_t seed, float scale)
{
    ar_rng r;
    int i;
    ar_rng_seed(&r, seed);
    for (i = 0; i < m->ps.n; i++) ar_init_uniform(m->ps.t[i], &r, -scale, scale);
}

static ar_model_cfg cfg_of(int D, int nh, int h, int direct, int K, int oa, uint64_t seed)
{
    ar_model_cfg c = ar_model_default(AR_MADE, D, 1);
    int l;
    c.made.n_hidden = nh;
    for (l = 0; l < nh; l++) c.made.hidden[l] = h + l;
    c.made.direct = direct;
    c.made.n_masks = K;
    c.made.order_agnostic = oa;
    c.seed = seed;
    return c;
}

/* All 2^D binary vectors; bit d of the row index is x_d. */
float *t_all_binary(int D)
{
    int n = 1 << D, i, d;
    float *x = (float *)malloc(sizeof(float) * (size_t)n * D);
    for (i = 0; x && i < n; i++)
        for (d = 0; d < D; d++) x[i * D + d] = (float)((i >> d) & 1);
    return x;
}

int t_code_of(const float *x, int D)
{
    int d, c = 0;
    for (d = 0; d < D; d++) c |= (x[d] != 0) << d;
    return c;
}

/* p(x_d = 1 | prefix) = m1 / (m1 + m0) after the sampling options (binary:
   temperature divides the logit log m1 - log m0; top-k 1, or top-p reached
   by the likelier value alone, keep only that value; temperature 0 is
   greedy). */
double t_cond1(double m1, double m0, const ar_sample_opts *o)
{
    double p1;
    if (o->temperature == 0) return m1 > m0;
    p1 = 1 / (1 + exp((log(m0) - log(m1)) / o->temperature));
    if (o->top_k == 1) return p1 > 0.5;
    if (o->top_p > 0 && o->top_p < 1 && (p1 > 0.5 ? p1 : 1 - p1) >= o->top_p) return p1 > 0.5;
    return p1;
}

/* The distribution an autoregressive sampler under options o follows, from
   the exact joint p over all 2^D vectors and the order: each place's
   conditional is the ratio of prefix marginals, then the options apply.
   q[code] is added with weight w (mixtures). */
static void sampled_dist(const double *p, int D, const int *order, const ar_sample_opts *o, double w, double *q)
{
    int n = 1 << D, c, y, t;
    for (c = 0; c < n; c++) {
        double f = w;
        unsigned mask = 0;
        for (t = 0; t < D && f > 0; t++) {
            int d = order[t];
            double m1 = 0, m0 = 0, p1;
            for (y = 0; y < n; y++)
                if (((unsigned)y & mask) == ((unsigned)c & mask)) *((y >> d) & 1 ? &m1 : &m0) += p[y];
            p1 = t_cond1(m1, m0, o);
            f *= (c >> d) & 1 ? p1 : 1 - p1;
            mask |= 1u << d;
        }
        q[c] += f;
    }
}

/* The conditional p(x_order[t] = 1 | x's prefix) under options o, as above. */
static double cond_at(const double *p, int D, const int *order, int t, const float *x, const ar_sample_opts *o)
{
    int n = 1 << D, y, s, c = t_code_of(x, D), d = order[t];
    unsigned mask = 0;
    double m1 = 0, m0 = 0;
    for (s = 0; s < t; s++) mask |= 1u << order[s];
    for (y = 0; y < n; y++)
        if (((unsigned)y & mask) == ((unsigned)c & mask)) *((y >> d) & 1 ? &m1 : &m0) += p[y];
    return t_cond1(m1, m0, o);
}

/* Pearson's chi-square of counts (N draws) against probabilities q, over
   cells expected at least 5 times; the rest pooled (and checked against a
   Poisson bound when the pool is expected under 5 times; a cell of
   probability exactly 0 must stay empty). Returns the statistic over a
   threshold at about 1e-5 false alarms: <= 1 passes. */
double t_chi2_ratio(const int *counts, const double *q, int n, int N)
{
    double chi = 0, pe = 0, thr;
    int po = 0, dof = -1, i, zero_hit = 0;
    for (i = 0; i < n; i++) {
        double e = q[i] * N;
        if (q[i] == 0 && counts[i]) zero_hit = 1;
        if (e >= 5) {
            chi += (counts[i] - e) * (counts[i] - e) / e;
            dof++;
        } else {
            pe += e;
            po += counts[i];
        }
    }
    if (zero_hit) return INFINITY;
    if (pe >= 5) {
        chi += (po - pe) * (po - pe) / pe;
        dof++;
    } else if (po > pe + 6 * sqrt(pe) + 6) {
        return INFINITY;
    }
    thr = dof > 0 ? dof + 5 * sqrt(2.0 * dof) + 12 : 12;
    return chi / thr;
}

/* exp(log p) of all 2^D vectors under mask set k (-1: the mixture). */
static int joint(ar_model *m, int k, double *p)
{
    int D = m->D, n = 1 << D, i;
    float *x = t_all_binary(D), *lp = (float *)malloc(sizeof(float) * (size_t)n);
    int ok = x && lp && ar_made_log_prob(m, x, n, k, lp) == AR_OK;
    for (i = 0; ok && i < n; i++) p[i] = exp((double)lp[i]);
    free(x);
    free(lp);
    return ok;
}

static void test_made_normalization(void)
{
    static const int order[10] = {3, 7, 0, 9, 1, 8, 2, 6, 4, 5};
    ar_model_cfg cfgs[5];
    int i, k, j, n = 1 << 10;
    float *x = t_all_binary(10), *lp = (float *)malloc(sizeof(float) * (size_t)n);
    CHECK(x && lp);
    cfgs[0] = ar_model_default(AR_FVSBN, 10, 1);
    cfgs[1] = cfg_of(10, 1, 16, 0, 1, 0, 2);
    cfgs[2] = cfg_of(10, 2, 12, 1, 1, 0, 3);
    cfgs[2].order = order;
    cfgs[3] = cfg_of(10, 2, 12, 1, 4, 1, 4); /* ensemble of 4 orderings and connectivities */
    cfgs[4] = cfg_of(10, 3, 9, 0, 3, 0, 5);  /* connectivity-agnostic, natural order */
    for (i = 0; i < 5; i++) {
        ar_model m;
        CHECK_MSG(ar_model_init(&m, &cfgs[i]) == AR_OK, "cfg %d: %s", i, m.err);
        CHECK(m.kind == (i ? AR_MADE : AR_FVSBN) && m.D == 10 && m.levels == 2 && m.made && !m.nade);
        scramble(&m, 100 + i, 1.5f);
        for (k = -1; k < m.cfg.made.n_masks; k++) { /* the mixture, then every mask set alone */
            double s = 0;
            ar_status st = k < 0 ? ar_model_log_prob(&m, x, n, lp) : ar_made_log_prob(&m, x, n, k, lp);
            CHECK_MSG(st == AR_OK, "cfg %d set %d: %s", i, k, m.err);
            for (j = 0; j < n; j++) s += exp((double)lp[j]);
            CHECK_MSG(fabs(s - 1) < 1e-5, "cfg %d set %d: total probability %.9f", i, k, s);
        }
        ar_model_free(&m);
    }
    free(x);
    free(lp);
}

/* ar_made_log_prob(k) is -nll under ar_made_set_mask(k); k = -1 and
   ar_model_log_prob are the log-mean-exp of the K single-set
   log-likelihoods; neither moves the current set; and the mixture needs
   the scratch of one pass, not K: after one pass over 2N examples sized the
   model's scratch, the K passes over N allocate nothing. */
static void test_made_ensemble_one_pass_arena(void)
{
    enum { N = 200, D = 64, K = 8 };
    ar_model_cfg c = cfg_of(D, 2, 1000, 1, K, 1, 7);
    static float x[2 * N * D], lp1[K][N];
    float lp[N], lpm[N], lpk[N], warm[2 * N];
    ar_model m;
    ar_graph g;
    size_t before;
    ar_rng r;
    int i, k;
    ar_rng_seed(&r, 9);
    for (i = 0; i < 2 * N * D; i++) x[i] = (float)ar_rng_bernoulli(&r, 0.3f);
    CHECK_MSG(ar_model_init(&m, &c) == AR_OK, "%s", m.err);
    scramble(&m, 11, 0.15f);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (k = 0; k < K; k++) {
        ar_tensor *nll;
        ar_graph_reset(&g);
        CHECK(ar_made_set_mask(&m, k) == AR_OK && m.made->cur == k);
        nll = ar_model_nll(&m, &g, x, N, NULL); /* no rng: the current set */
        CHECK_MSG(nll != NULL, "%s", g.err);
        for (i = 0; i < N; i++) lp1[k][i] = -nll->x[i];
        CHECK(ar_made_log_prob(&m, x, N, k, lpk) == AR_OK && m.made->cur == k);
        for (i = 0; i < N; i++)
            CHECK_MSG(fabs(lpk[i] - lp1[k][i]) <= 1e-4 + 2e-6 * fabs(lp1[k][i]),
                      "set %d example %d: log_prob %.7g, -nll %.7g", k, i, (double)lpk[i], (double)lp1[k][i]);
    }
    CHECK(ar_made_set_mask(&m, 3) == AR_OK);
    CHECK(ar_made_log_prob(&m, x, 2 * N, 0, warm) == AR_OK);
    before = t_alloc_count;
    CHECK_MSG(ar_made_log_prob(&m, x, N, -1, lp) == AR_OK, "%s", m.err);
    CHECK_MSG(t_alloc_count == before, "%zu allocations: %d passes over N did not fit the scratch of one over 2N",
              t_alloc_count - before, K);
    CHECK(m.made->cur == 3);
    CHECK(ar_model_log_prob(&m, x, N, lpm) == AR_OK && m.made->cur == 3 && m.err[0] == 0);
    CHECK(memcmp(lp, lpm, sizeof lp) == 0);
    for (i = 0; i < N; i++) {
        double mx = lp1[0][i], s = 0;
        for (k = 1; k < K; k++) mx = lp1[k][i] > mx ? lp1[k][i] : mx;
        for (k = 0; k < K; k++) s += exp(lp1[k][i] - mx);
        CHECK_MSG(fabs(lp[i] - (mx + log(s / K))) < 1e-3, "example %d: %.6f, expected %.6f", i, (double)lp[i],
                  mx + log(s / K));
    }
    ar_model_free(&m);
    ar_graph_free(&g);
}

/* Output at place t must not move when any input at place >= t changes, and
   must move for some input before it. Checked for every mask set. */
static void test_made_autoregressive_property(void)
{
    enum { D = 8 };
    static const int order[D] = {5, 1, 7, 0, 2, 6, 4, 3};
    ar_model_cfg cfgs[4];
    ar_graph g;
    ar_rng r;
    int i, k, d, j, n;
    cfgs[0] = ar_model_default(AR_FVSBN, D, 1);
    cfgs[0].order = order;
    cfgs[1] = cfg_of(D, 1, 20, 0, 3, 1, 7);
    cfgs[2] = cfg_of(D, 2, 20, 1, 2, 0, 8);
    cfgs[2].order = order;
    cfgs[3] = cfg_of(D, 3, 24, 1, 4, 1, 9);
    ar_rng_seed(&r, 77);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (i = 0; i < 4; i++) {
        ar_model m;
        CHECK_MSG(ar_model_init(&m, &cfgs[i]) == AR_OK, "cfg %d: %s", i, m.err);
        scramble(&m, 200 + i, 1.0f);
        for (k = 0; k < m.cfg.made.n_masks; k++) {
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
            CHECK_MSG(lg, "%s", g.err);
            for (d = 0; d < D; d++)
                for (j = 0; j < D; j++) {
                    float base = lg->x[d], pert = lg->x[(1 + d * D + j) * D + d];
                    /* BLAS may round rows of one product differently: allow 1e-5 */
                    if (m.made->pos[j] >= m.made->pos[d])
                        CHECK_MSG(fabsf(base - pert) <= 1e-5f * (1 + fabsf(base)),
                                  "cfg %d mask %d: logit %d moved when input %d changed", i, k, d, j);
                    else
                        depends += fabsf(base - pert) > 1e-3f;
                }
            CHECK_MSG(depends > D, "cfg %d mask %d: logits barely depend on earlier inputs (%d)", i, k, depends);
        }
        ar_model_free(&m);
    }
    ar_graph_free(&g);
}

typedef struct { ar_model *m; float x[6 * 5]; } made_ctx;
static ar_tensor *made_loss(ar_graph *g, void *c)
{
    made_ctx *k = (made_ctx *)c;
    return ar_mean(g, ar_model_nll(k->m, g, k->x, 6, NULL), AR_ALL);
}

/* Whole-model gradients, for one mask set and for a set other than 0 of an
   ensemble (nll without an rng uses the current set). */
static void test_made_gradcheck(void)
{
    ar_model_cfg cfgs[2];
    ar_graph g;
    ar_rng r;
    int i, j;
    cfgs[0] = cfg_of(5, 2, 4, 1, 1, 1, 11);
    cfgs[1] = cfg_of(5, 2, 4, 1, 3, 1, 14);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (j = 0; j < 2; j++) {
        ar_model m;
        made_ctx k;
        double rel = 1;
        const char *worst = NULL;
        CHECK(ar_model_init(&m, &cfgs[j]) == AR_OK);
        if (j) CHECK(ar_made_set_mask(&m, 2) == AR_OK);
        scramble(&m, 12, 1.0f);
        ar_rng_seed(&r, 13);
        k.m = &m;
        for (i = 0; i < 30; i++) k.x[i] = (float)ar_rng_bernoulli(&r, 0.5f);
        CHECK_MSG(ar_gradcheck(&g, &m.ps, made_loss, &k, 1e-2f, &rel, &worst) == AR_OK, "%s", g.err);
        CHECK_MSG(rel < 2e-3, "cfg %d: relative gradient error %.3g in %s", j, rel, worst ? worst : "?");
        ar_model_free(&m);
    }
    ar_graph_free(&g);
}

/* Samples of one mask set under every sampling option follow the
   distribution derived from the model's own exact joint (temperature 1,
   0.5, 2, greedy, top-k 1, top-p), and the reported probs are the
   conditionals of the drawn prefix under those options. Each check also
   shows it could fail: the samples are far from the untempered model. */
static void test_made_sampling_frequencies(void)
{
    enum { D = 4, N = 40000, NO = 6 };
    static const int order[D] = {2, 0, 3, 1};
    static float xs[N * D], probs[N * D], again[N * D];
    double p[1 << D], q[1 << D], q1[1 << D];
    int counts[1 << D], i, d, t, oi;
    ar_sample_opts o[NO];
    ar_model_cfg cfg = cfg_of(D, 2, 6, 1, 1, 0, 21);
    ar_model m;
    ar_rng r;
    cfg.order = order;
    CHECK(ar_model_init(&m, &cfg) == AR_OK);
    scramble(&m, 22, 1.5f);
    CHECK(joint(&m, 0, p));
    for (oi = 0; oi < NO; oi++) o[oi] = ar_sample_defaults();
    CHECK(o[0].temperature == 1 && o[0].top_k == 0 && (o[0].top_p == 0 || o[0].top_p == 1) && !o[0].given &&
          !o[0].known && !o[0].probs);
    o[1].temperature = 0.5f;
    o[2].temperature = 2.0f;
    o[3].temperature = 0;
    o[4].temperature = 1.5f;
    o[4].top_k = 1;
    o[5].top_p = 0.7f;
    memset(q1, 0, sizeof q1);
    sampled_dist(p, D, order, &o[0], 1, q1);
    for (oi = 0; oi < NO; oi++) {
        double ratio;
        memset(q, 0, sizeof q);
        memset(counts, 0, sizeof counts);
        sampled_dist(p, D, order, &o[oi], 1, q);
        o[oi].probs = probs;
        ar_rng_seed(&r, 23 + (uint64_t)oi);
        CHECK_MSG(ar_model_sample(&m, N, &o[oi], &r, xs) == AR_OK, "options %d: %s", oi, m.err);
        CHECK(m.err[0] == 0);
        for (i = 0; i < N; i++) counts[t_code_of(xs + i * D, D)]++;
        ratio = t_chi2_ratio(counts, q, 1 << D, N);
        CHECK_MSG(ratio <= 1, "options %d: chi-square %.2f times the threshold", oi, ratio);
        if (oi > 0 && oi < 5) {
            ratio = t_chi2_ratio(counts, q1, 1 << D, N);
            CHECK_MSG(ratio > 10, "options %d: no power, %.2f against temperature 1", oi, ratio);
        }
        for (i = 0; i < 200; i++)
            for (t = 0; t < D; t++) {
                double want = cond_at(p, D, order, t, xs + i * D, &o[oi]);
                d = order[t];
                CHECK_MSG(fabs(probs[i * D + d] - want) < 2e-5, "options %d, sample %d dim %d: probs %.7f, want %.7f",
                          oi, i, d, (double)probs[i * D + d], want);
            }
    }
    /* the same seed gives the same samples */
    ar_rng_seed(&r, 23);
    CHECK(ar_model_sample(&m, N, &o[0], &r, again) == AR_OK);
    ar_rng_seed(&r, 23);
    o[0].probs = NULL;
    CHECK(ar_model_sample(&m, N, &o[0], &r, xs) == AR_OK);
    CHECK(memcmp(again, xs, sizeof xs) == 0);
    ar_model_free(&m);
}

/* Completion: places known in a prefix of the order are kept, and the rest
   follow p(rest | known), here from the model's exact joint. Known places
   off the prefix are kept too. */
static void test_made_completion(void)
{
    enum { D = 4, N = 40000 };
    static const int order[D] = {3, 1, 0, 2};
    static float xs[N * D], given[N * D];
    static unsigned char known[N * D];
    double p[1 << D], q[1 << D], z = 0;
    int counts[1 << D] = {0}, i, c;
    ar_model_cfg cfg = cfg_of(D, 1, 8, 1, 1, 0, 41);
    ar_sample_opts o = ar_sample_defaults();
    ar_model m;
    ar_rng r;
    cfg.order = order;
    CHECK(ar_model_init(&m, &cfg) == AR_OK);
    scramble(&m, 42, 1.5f);
    CHECK(joint(&m, 0, p));
    for (i = 0; i < N; i++) { /* x_3 = 1, x_1 = 0: the first two places */
        memset(known + i * D, 0, D);
        known[i * D + 3] = known[i * D + 1] = 1;
        given[i * D + 0] = given[i * D + 2] = 0;
        given[i * D + 3] = 1;
        given[i * D + 1] = 0;
    }
    for (c = 0; c < 1 << D; c++) z += ((c >> 3) & 1) && !((c >> 1) & 1) ? p[c] : 0;
    for (c = 0; c < 1 << D; c++) q[c] = ((c >> 3) & 1) && !((c >> 1) & 1) ? p[c] / z : 0;
    o.given = given;
    o.known = known;
    ar_rng_seed(&r, 43);
    CHECK_MSG(ar_model_sample(&m, N, &o, &r, xs) == AR_OK, "%s", m.err);
    for (i = 0; i < N; i++) counts[t_code_of(xs + i * D, D)]++;
    CHECK_MSG(t_chi2_ratio(counts, q, 1 << D, N) <= 1, "completion: chi-square %.2f times the threshold",
              t_chi2_ratio(counts, q, 1 << D, N));
    /* known places off the prefix: kept as given, whatever else happens */
    for (i = 0; i < 8 * D; i++) {
        known[i] = (unsigned char)(i % 3 == 0);
        given[i] = (float)((i / 3) & 1);
    }
    CHECK(ar_model_sample(&m, 8, &o, &r, xs) == AR_OK);
    for (i = 0; i < 8 * D; i++) CHECK(!known[i] || xs[i] == given[i]);
    ar_model_free(&m);
}

/* With K > 1 mask sets each example draws its set: the samples follow the
   mixture exp(ar_model_log_prob), at temperature 1 and (as the mixture of
   the K tempered samplers) at 0.5, and each example's probs are the
   conditionals of one of the K sets. Sampling from the current set only
   would fail the chi-square by far (checked). */
static void test_made_mixture_sampling(void)
{
    enum { D = 4, N = 40000, K = 4 };
    static float xs[N * D], probs[N * D];
    double p[1 << D], pk[K][1 << D], q[1 << D], qcur[1 << D];
    int counts[1 << D], i, c, k, t, ti;
    float *all = t_all_binary(D), lp[1 << D];
    ar_model_cfg cfg = cfg_of(D, 2, 10, 1, K, 1, 51);
    ar_model m;
    ar_rng r;
    CHECK(all);
    CHECK(ar_model_init(&m, &cfg) == AR_OK);
    scramble(&m, 52, 2.0f);
    CHECK(ar_model_log_prob(&m, all, 1 << D, lp) == AR_OK);
    for (c = 0; c < 1 << D; c++) p[c] = exp((double)lp[c]);
    for (k = 0; k < K; k++) CHECK(joint(&m, k, pk[k]));
    for (ti = 0; ti < 2; ti++) {
        ar_sample_opts o = ar_sample_defaults();
        double ratio;
        o.temperature = ti ? 0.5f : 1.0f;
        o.probs = probs;
        memset(q, 0, sizeof q);
        memset(qcur, 0, sizeof qcur);
        memset(counts, 0, sizeof counts);
        for (k = 0; k < K; k++) sampled_dist(pk[k], D, m.made->orders + k * D, &o, 1.0 / K, q);
        sampled_dist(pk[m.made->cur], D, m.made->orders + m.made->cur * D, &o, 1, qcur);
        if (!ti)
            for (c = 0; c < 1 << D; c++) CHECK_NEAR(q[c], p[c], 1e-5); /* the tempering code, checked at T = 1 */
        ar_rng_seed(&r, 53 + (uint64_t)ti);
        CHECK_MSG(ar_model_sample(&m, N, &o, &r, xs) == AR_OK, "%s", m.err);
        for (i = 0; i < N; i++) counts[t_code_of(xs + i * D, D)]++;
        ratio = t_chi2_ratio(counts, q, 1 << D, N);
        CHECK_MSG(ratio <= 1, "T %g: chi-square %.2f times the threshold", (double)o.temperature, ratio);
        ratio = t_chi2_ratio(counts, qcur, 1 << D, N);
        CHECK_MSG(ratio > 10, "T %g: no power against the current set alone (%.2f)", (double)o.temperature, ratio);
        for (i = 0; i < 300; i++) {
            int match = 0;
            for (k = 0; k < K && !match; k++) {
                const int *ord = m.made->orders + k * D;
                match = 1;
                for (t = 0; t < D && match; t++)
                    match = fabs(probs[i * D + ord[t]] - cond_at(pk[k], D, ord, t, xs + i * D, &o)) < 2e-5;
            }
            CHECK_MSG(match, "T %g, sample %d: probs are the conditionals of no mask set", (double)o.temperature, i);
        }
    }
    free(all);
    ar_model_free(&m);
}

static int set_differs(const ar_model *a, const ar_model *b)
{
    int K = a->made->cfg.n_masks, D = a->D, units = 0, l;
    for (l = 0; l < a->made->cfg.n_hidden; l++) units += a->made->cfg.hidden[l];
    return memcmp(a->made->orders, b->made->orders, sizeof(int) * (size_t)K * D) != 0 ||
           memcmp(a->made->labels, b->made->labels, sizeof(int) * (size_t)K * units) != 0;
}

/* Save and load (file and memory, through the generic loader, into
   garbage-filled structs) keep the configuration, orderings and masks: the
   same log-probabilities bit for bit, for the mixture and every set. The
   masks are stored, not rebuilt from the seed: a file whose "seed" was
   edited loads the same model (while a model made with that seed differs). */
static void test_made_checkpoint_roundtrip(void)
{
    static const int order[6] = {2, 0, 5, 1, 4, 3};
    const char *path = "/tmp/ar_test_made.safetensors";
    ar_model_cfg c = cfg_of(6, 2, 7, 1, 3, 0, 31), c2;
    ar_model a, b, e, other;
    float x[4 * 6], la[4], lb[4];
    unsigned char *buf = NULL, *fbuf;
    size_t len = 0, flen, i, hlen;
    char *seed;
    FILE *f;
    int k;
    c.order = order;
    for (i = 0; i < 24; i++) x[i] = (float)((i * 7) % 3 == 0);
    CHECK(ar_model_init(&a, &c) == AR_OK);
    scramble(&a, 32, 1.0f);
    CHECK(ar_made_set_mask(&a, 2) == AR_OK);
    CHECK(ar_model_log_prob(&a, x, 4, la) == AR_OK);
    CHECK_MSG(ar_model_save(&a, path) == AR_OK, "%s", a.err);
    memset(&b, 0xA5, sizeof b); /* load treats its struct as output only */
    CHECK_MSG(ar_model_load(&b, path) == AR_OK, "%s", b.err);
    CHECK(b.err[0] == 0 && b.kind == AR_MADE && b.D == 6 && b.levels == 2 && b.made && !b.nade && !b.tfm && !b.cnn);
    CHECK(b.cfg.made.n_hidden == 2 && b.cfg.made.hidden[1] == 8 && b.cfg.made.n_masks == 3 && b.cfg.made.direct == 1);
    CHECK(b.cfg.order && b.cfg.order != order && memcmp(b.cfg.order, order, sizeof order) == 0);
    CHECK(!set_differs(&a, &b));
    CHECK(ar_model_log_prob(&b, x, 4, lb) == AR_OK && memcmp(la, lb, sizeof la) == 0);
    for (k = 0; k < 3; k++) {
        CHECK(ar_made_log_prob(&a, x, 4, k, la) == AR_OK && ar_made_log_prob(&b, x, 4, k, lb) == AR_OK);
        CHECK_MSG(memcmp(la, lb, sizeof la) == 0, "mask set %d differs after loading", k);
    }
    /* the file holds exactly the bytes save_mem makes */
    CHECK_MSG(ar_model_save_mem(&a, &buf, &len) == AR_OK && buf && len > 8, "%s", a.err);
    f = fopen(path, "rb");
    CHECK(f);
    fbuf = (unsigned char *)malloc(len + 1);
    flen = fbuf ? fread(fbuf, 1, len + 1, f) : 0;
    fclose(f);
    CHECK(flen == len && memcmp(fbuf, buf, len) == 0);
    free(fbuf);
    /* the seed edited in the metadata: the same model, masks and all */
    for (hlen = 0, i = 0; i < 8; i++) hlen |= (size_t)buf[i] << (8 * i);
    CHECK(hlen + 8 <= len);
    seed = NULL;
    for (i = 8; i + 8 < 8 + hlen; i++)
        if (!memcmp(buf + i, "\"seed\":\"", 8)) { seed = (char *)buf + i + 8; break; }
    CHECK_MSG(seed && seed[0] == '3' && seed[1] == '1' && seed[2] == '"', "no \"seed\":\"31\" in the header");
    seed[0] = '9'; /* 91 */
    memset(&e, 0x5A, sizeof e);
    CHECK_MSG(ar_model_load_mem(&e, buf, len) == AR_OK, "%s", e.err);
    CHECK(e.cfg.seed == 91 || e.cfg.seed == 31); /* either is honest; the masks are what matter */
    CHECK_MSG(!set_differs(&a, &e), "editing the seed changed the stored masks");
    CHECK(ar_model_log_prob(&e, x, 4, lb) == AR_OK && ar_model_log_prob(&a, x, 4, la) == AR_OK);
    CHECK(memcmp(la, lb, sizeof la) == 0);
    c2 = c;
    c2.seed = 91;
    CHECK(ar_model_init(&other, &c2) == AR_OK);
    CHECK_MSG(set_differs(&a, &other), "seed 91 gives the same masks: the check above proves nothing");
    ar_model_free(&other);
    ar_model_free(&e);
    ar_free(buf);
    /* a corrupt file: an error with a message, and no model */
    f = fopen(path, "r+b");
    CHECK(f && fseek(f, -3, SEEK_END) == 0 && fputc('x', f) != EOF && fclose(f) == 0);
    f = fopen(path, "ab");
    CHECK(f && fputc(0, f) != EOF && fclose(f) == 0); /* one byte too many */
    ar_model_free(&b);
    memset(&b, 0xA5, sizeof b);
    CHECK(ar_model_load(&b, path) == AR_ERR_FORMAT && b.err[0] && b.ps.x == NULL);
    ar_model_free(&b);
    memset(&b, 0xA5, sizeof b);
    CHECK(ar_model_load(&b, "/nonexistent.safetensors") == AR_ERR_IO && b.err[0] && b.ps.x == NULL);
    ar_model_free(&b);
    remove(path);
    ar_model_free(&a);
}

/* Bad configurations, bad data (0.5 included: MADE once took it and
   returned a number) and bad calls: a status by the documented rule and a
   message naming the culprit. */
static void test_made_bad_input(void)
{
    enum { D = 20, N = 40 };
    static const int bad_order[4] = {0, 1, 1, 3};
    static float x[N * D], out[N * D];
    float lp[N];
    ar_model_cfg c = ar_model_default(AR_MADE, 4, 1);
    ar_sample_opts o = ar_sample_defaults();
    ar_model m;
    ar_graph g;
    ar_rng r;
    int i;
    static const float bad[5] = {0.5f, 2.0f, -1.0f, NAN, INFINITY};
    c.order = bad_order;
    CHECK(ar_model_init(&m, &c) == AR_ERR_ARG && strstr(m.err, "order") && m.ps.x == NULL);
    c = ar_model_default(AR_MADE, 0, 1);
    CHECK(ar_model_init(&m, &c) == AR_ERR_ARG && m.err[0]);
    c = ar_model_default(AR_MADE, 4, 1);
    c.made.n_hidden = 0; /* that is AR_FVSBN */
    CHECK(ar_model_init(&m, &c) == AR_ERR_ARG && strstr(m.err, "hidden"));
    c = ar_model_default(AR_FVSBN, 4, 1);
    c.made.direct = 0; /* nothing left to model with */
    CHECK(ar_model_init(&m, &c) == AR_ERR_ARG && strstr(m.err, "direct"));
    c = ar_model_default(AR_MADE, 4, 1);
    c.made.hidden[0] = -5;
    CHECK(ar_model_init(&m, &c) == AR_ERR_ARG && strstr(m.err, "hidden[0]"));
    c = ar_model_default(AR_MADE, 4, 1);
    c.made.n_masks = 0;
    CHECK(ar_model_init(&m, &c) == AR_ERR_ARG && strstr(m.err, "n_masks"));
    c = ar_model_default(AR_MADE, D, 1);
    c.made.hidden[0] = 5;
    CHECK_MSG(ar_model_init(&m, &c) == AR_OK && m.err[0] == 0, "%s", m.err);
    CHECK(ar_made_set_mask(&m, 1) == AR_ERR_ARG && m.err[0]); /* an index argument: ARG */
    CHECK(ar_made_set_mask(&m, -1) == AR_ERR_ARG);
    CHECK(ar_made_set_mask(&m, 0) == AR_OK && m.err[0] == 0);
    CHECK(ar_made_log_prob(&m, x, N, 1, lp) == AR_ERR_ARG && m.err[0]);
    CHECK(ar_made_log_prob(&m, x, N, -2, lp) == AR_ERR_ARG);
    CHECK(ar_made_log_prob(&m, x, N, 0, NULL) == AR_ERR_ARG && m.err[0]);
    CHECK(ar_model_log_prob(&m, x, N, NULL) == AR_ERR_ARG && m.err[0]);
    CHECK(ar_model_log_prob(&m, x, 0, lp) == AR_ERR_ARG && m.err[0]);
    CHECK(ar_model_log_prob(&m, NULL, N, lp) == AR_ERR_ARG && m.err[0]);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    ar_rng_seed(&r, 1);
    for (i = 0; i < 5; i++) { /* example 37, dimension 11 */
        ar_status want = isfinite(bad[i]) ? AR_ERR_RANGE : AR_ERR_NUMERIC;
        ar_status s;
        memset(x, 0, sizeof x);
        x[37 * D + 11] = bad[i];
        s = ar_model_log_prob(&m, x, N, lp);
        CHECK_MSG(s == want && strstr(m.err, "37") && strstr(m.err, "11"), "x = %g: status %d, \"%s\"",
                  (double)bad[i], (int)s, m.err);
        s = ar_made_log_prob(&m, x, N, 0, lp);
        CHECK_MSG(s == want && strstr(m.err, "37") && strstr(m.err, "11"), "x = %g, set 0: status %d, \"%s\"",
                  (double)bad[i], (int)s, m.err);
        ar_graph_reset(&g);
        CHECK_MSG(ar_model_nll(&m, &g, x, N, NULL) == NULL && g.status == want && strstr(g.err, "37") &&
                      strstr(m.err, "37") && strstr(m.err, "11"),
                  "nll, x = %g: status %d, \"%.200s\" / \"%.200s\"", (double)bad[i], (int)g.status, g.err, m.err);
        s = ar_model_init_bias(&m, x, N);
        CHECK_MSG(s == want && strstr(m.err, "37") && strstr(m.err, "11"), "init_bias, x = %g: %d \"%s\"",
                  (double)bad[i], (int)s, m.err);
        /* given values are data too (read where known) */
        {
            static unsigned char known[N * D];
            memset(known, 0, sizeof known);
            known[37 * D + 11] = 1;
            o.given = x;
            o.known = known;
            s = ar_model_sample(&m, N, &o, &r, out);
            CHECK_MSG(s == want && strstr(m.err, "37") && strstr(m.err, "11"), "given %g: %d \"%s\"",
                      (double)bad[i], (int)s, m.err);
            o.given = NULL;
            o.known = NULL;
        }
    }
    /* success clears the message */
    memset(x, 0, sizeof x);
    CHECK(ar_model_log_prob(&m, x, N, lp) == AR_OK && m.err[0] == 0);
    ar_graph_reset(&g);
    CHECK(ar_model_nll(&m, &g, x, 0, NULL) == NULL && g.status == AR_ERR_ARG && m.err[0]);
    ar_graph_reset(&g);
    CHECK(ar_model_nll(&m, &g, x, N, NULL) != NULL && m.err[0] == 0);
    CHECK(ar_model_sample(&m, 2, &o, NULL, out) == AR_ERR_ARG && m.err[0]);
    CHECK(ar_model_sample(&m, 0, &o, &r, out) == AR_ERR_ARG && m.err[0]);
    CHECK(ar_model_sample(&m, 2, &o, &r, NULL) == AR_ERR_ARG && m.err[0]);
    CHECK(ar_model_sample(&m, 2, NULL, &r, out) == AR_OK || m.err[0]); /* NULL options: defaults or an error */
    ar_graph_free(&g);
    ar_model_free(&m);
}

void tests_made(void)
{
    t_run("made/normalization", test_made_normalization);
    t_run("made/ensemble_one_pass_arena", test_made_ensemble_one_pass_arena);
    t_run("made/autoregressive_property", test_made_autoregressive_property);
    t_run("made/gradcheck", test_made_gradcheck);
    t_run("made/sampling_frequencies", test_made_sampling_frequencies);
    t_run("made/completion", test_made_completion);
    t_run("made/mixture_sampling", test_made_mixture_sampling);
    t_run("made/checkpoint_roundtrip", test_made_checkpoint_roundtrip);
    t_run("made/bad_input", test_made_bad_input);
}
