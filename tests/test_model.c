/* Every family through the one interface (ar_model), from a table of tiny
   configurations with random weights far from uniform (the joint's entropy
   60-85% of uniform's, checked):
     - exact normalization (RNADE: the density integrates to 1),
     - the autoregressive property, read from the sampler's conditionals,
     - sample frequencies against the model's own probabilities for every
       sampling option (temperature, greedy, top-k, top-p, completion,
       naive), chi-square over complete vectors,
     - save/load round trips, memory and files,
     - the error contract of ar.h at every call's edges,
   and core checks the older suite could not fail on (AdamW's decoupled
   decay, softmax without the max shift, layernorm's eps, ar_sample_logits
   at temperatures other than 1).

   The reference for every sampler test is computed from ar_model_log_prob
   alone: the joint over all L^D vectors gives each place's conditional as
   a ratio of prefix marginals, which is then tempered / truncated the way
   the options say. Nothing in the reference reads the model's internals,
   except MADE's per-mask orders (a mixture needs its components) and the
   RNADE reference density under sampling options (see there).

   Each of these bugs, put into a copy of ar.h, fails the tests named:
     AdamW's decay as L2 in the gradient         model/adamw_decoupled
     log-sum-exp without the max shift           model/softmax_large_scores, attention_large_scores
     layernorm 1/(sqrt(var) + eps)               model/layernorm_eps
     the Transformer's cached sampler not feeding its draws back
                                                 model/sample_* (tfm-*: conditionals and frequencies)
     temperature ignored or squared, in the shared draw or only in the
     draw (reported conditionals right)          model/sample_temperature/top_k/top_p/completion (chi-square),
                                                 model/sample_logits, model/rnade_sampling
     RNADE's sigma not scaled by sqrt(T)         model/rnade_sampling
     top-p not renormalized over top-k's set     model/sample_logits
     MADE's mask set drawn uniformly given known values
                                                 model/sample_completion
     the naive CNN path reusing stale logits     model/sample_* (naive = 1)
     a place seeing itself or a later one (PixelCNN mask A as B, the gated
     stack's link not shifted a row, WaveNet's first conv at t, attention
     one key too far, the order's mask ignored)  model/normalization, model/autoregressive, model/sample_* */
#include <float.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

/* Failure messages are cut to the runner's 512 bytes on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define MAXD 9
#define MAXL 3
#define MAXN 729 /* MAXL^6 = 3^6; binary models go up to 2^9 = 512 */
#define MAXK 3
#define MAXV 16 /* widest distribution tcond handles (ar_sample_logits tests) */
#define PI_D 3.14159265358979323846
#define P_FAIL 1e-4 /* a chi-square test fails below this p-value (fixed seeds) */

/* ==== the configurations =================================================== */

enum {
    C_MADE,        /* 2 hidden layers, 3 masks, order-agnostic, direct */
    C_MADE_ORD,    /* 3 connectivity masks sharing one custom order (exact completion) */
    C_FVSBN,       /* custom order */
    C_NADE,        /* custom order */
    C_RNADE_LOGIT, /* logit transform, natural order */
    C_RNADE_NONE,  /* no transform, custom order */
    C_TFM_ROPE,    /* rotary positions, V = 3 */
    C_TFM_LEARNED, /* learned positions, custom order, V = 3 */
    C_TFM_SIN,     /* sinusoidal positions, V = 2: a binary Transformer (P = 1) */
    C_PIXELCNN,    /* binary 3x3 */
    C_PIXELCNN3,   /* 3 levels, coordinates */
    C_GATED,       /* binary 3x3 */
    C_GATED3,      /* 3 levels */
    C_WAVENET,     /* binary 3x3 */
    C_WAVENET3,    /* 3 levels */
    NCFG
};

static const char *const cfg_name[NCFG] = {"made", "made-order", "fvsbn", "nade", "rnade-logit", "rnade-none",
                                           "tfm-rotary", "tfm-learned-order", "tfm-sinusoidal-binary", "pixelcnn",
                                           "pixelcnn-3", "gated", "gated-3", "wavenet", "wavenet-3"};

static const int ord2[2] = {1, 0};
static const int ord6[6] = {4, 1, 5, 0, 3, 2};
static const int ord7[7] = {6, 2, 0, 4, 1, 5, 3};
static const int ord8[8] = {3, 7, 0, 5, 1, 6, 2, 4};
static const int ord9[9] = {8, 0, 4, 2, 6, 1, 7, 3, 5};

/* Config i, and the half-width of the uniform weights that make its
   distribution clearly non-uniform without collapsing it onto a few vectors. */
static ar_model_cfg cfg_of(int i, float *scale)
{
    ar_model_cfg c;
    memset(&c, 0, sizeof c);
    *scale = 1.0f;
    switch (i) {
    case C_MADE:
        c = ar_model_default(AR_MADE, 2, 3);
        c.made.n_hidden = 2; c.made.hidden[0] = 10; c.made.hidden[1] = 9;
        c.made.direct = 1; c.made.n_masks = 3; c.made.order_agnostic = 1;
        *scale = 1.5f;
        break;
    case C_MADE_ORD:
        c = ar_model_default(AR_MADE, 1, 7);
        c.made.n_hidden = 2; c.made.hidden[0] = 8; c.made.hidden[1] = 6;
        c.made.direct = 0; c.made.n_masks = 3; c.made.order_agnostic = 0;
        c.order = ord7;
        *scale = 2.0f;
        break;
    case C_FVSBN:
        c = ar_model_default(AR_FVSBN, 3, 3);
        c.order = ord9;
        *scale = 1.5f;
        break;
    case C_NADE:
        c = ar_model_default(AR_NADE, 2, 4);
        c.nade.H = 6;
        c.order = ord8;
        *scale = 2.0f;
        break;
    case C_RNADE_LOGIT:
        c = ar_model_default(AR_RNADE, 1, 2);
        c.nade.H = 3; c.nade.K = 3; c.nade.transform = AR_TRANSFORM_LOGIT;
        *scale = 0.25f;
        break;
    case C_RNADE_NONE:
        c = ar_model_default(AR_RNADE, 2, 1);
        c.nade.H = 3; c.nade.K = 2; c.nade.transform = AR_TRANSFORM_NONE;
        c.order = ord2;
        *scale = 0.25f;
        break;
    case C_TFM_ROPE:
        c = ar_model_default(AR_TRANSFORMER, 2, 3);
        c.tfm.V = 3; c.tfm.d = 8; c.tfm.heads = 2; c.tfm.layers = 2; c.tfm.ffn = 16; c.tfm.pos = AR_POS_ROTARY;
        *scale = 1.2f;
        break;
    case C_TFM_LEARNED:
        c = ar_model_default(AR_TRANSFORMER, 1, 6);
        c.tfm.V = 3; c.tfm.d = 8; c.tfm.heads = 2; c.tfm.layers = 1; c.tfm.ffn = 8; c.tfm.pos = AR_POS_LEARNED;
        c.order = ord6;
        *scale = 1.25f;
        break;
    case C_TFM_SIN:
        c = ar_model_default(AR_TRANSFORMER, 2, 4);
        c.tfm.V = 2; c.tfm.d = 8; c.tfm.heads = 2; c.tfm.layers = 1; c.tfm.ffn = 8; c.tfm.pos = AR_POS_SINUSOIDAL;
        *scale = 1.7f;
        break;
    case C_PIXELCNN: case C_PIXELCNN3: case C_GATED: case C_GATED3: case C_WAVENET: case C_WAVENET3: {
        int three = i == C_PIXELCNN3 || i == C_GATED3 || i == C_WAVENET3;
        ar_kind k = i <= C_PIXELCNN3 ? AR_PIXELCNN : i <= C_GATED3 ? AR_GATED : AR_WAVENET;
        c = ar_model_default(k, three ? 2 : 3, 3);
        c.cnn.levels = three ? 3 : 1;
        c.cnn.channels = 4;
        c.cnn.layers = k == AR_PIXELCNN ? 1 : 2;
        c.cnn.kernel = 3; c.cnn.first_kernel = 3;
        c.cnn.dilations = 2;
        c.cnn.coords = i == C_PIXELCNN3;
        { /* from a scan of the joint's entropy: 60-80% of uniform's */
            static const float sc[6] = {0.9f, 1.2f, 1.3f, 0.8f, 3.0f, 1.3f};
            *scale = sc[i - C_PIXELCNN];
        }
        break;
    }
    }
    c.seed = 11 + (uint64_t)i;
    return c;
}

static int is_rnade(int i) { return i == C_RNADE_LOGIT || i == C_RNADE_NONE; }
static int has_naive(const ar_model *m) { return m->tfm || m->cnn; }

/* ==== fixtures: a model and its exact joint distribution ===================== */

typedef struct {
    int id;
    ar_model m;
    int D, L, P;          /* values per example; values per place (0: real); probs per place */
    int K;                /* components with their own joint and order (MADE: mask sets; else 1) */
    int n;                /* L^D vectors */
    float *X;             /* [n*D] every vector: dimension d is base-L digit d of the index */
    unsigned char *dig;   /* [n*D] the same digits */
    double *pk;           /* [K*n] each component's joint (MADE: ar_made_log_prob(k)) */
    double *p;            /* [n] the model's joint (ar_model_log_prob) */
    int ok[MAXK][MAXD];   /* each component's order: place t holds dimension ok[k][t] */
    double *M[MAXK][MAXD + 1]; /* prefix marginals of each component, see marg_build */
    int pw[MAXD + 1];     /* L^t */
} fx;

static void fx_free(fx *f)
{
    int k, t;
    ar_model_free(&f->m);
    free(f->X); free(f->dig); free(f->pk); free(f->p);
    for (k = 0; k < MAXK; k++)
        for (t = 0; t <= MAXD; t++) free(f->M[k][t]);
    memset(f, 0, sizeof *f);
}

static void randomize(ar_model *m, uint64_t seed, float scale)
{
    ar_rng r;
    int i;
    ar_rng_seed(&r, seed);
    for (i = 0; i < m->ps.n; i++) ar_init_uniform(m->ps.t[i], &r, -scale, scale);
}

/* M[k][t][code]: the joint of component k summed over the vectors whose
   first t places (in its order) hold the base-L digits of code (place s at
   L^s). The chain-rule conditional at place t is M[t+1] / M[t]. */
static int marg_build(fx *f, int k)
{
    int t, x;
    for (t = 0; t <= f->D; t++)
        if (!(f->M[k][t] = (double *)calloc((size_t)f->pw[t], sizeof(double)))) return 0;
    for (x = 0; x < f->n; x++) {
        int code = 0;
        for (t = 0; t <= f->D; t++) {
            f->M[k][t][code] += f->pk[(size_t)k * f->n + x];
            if (t < f->D) code += f->dig[(size_t)x * f->D + f->ok[k][t]] * f->pw[t];
        }
    }
    return 1;
}

/* log_prob of every vector into out (double). */
static ar_status all_log_probs(ar_model *m, const float *X, int n, double *out)
{
    float *lp = (float *)malloc((size_t)n * sizeof(float));
    ar_status s;
    int i;
    if (!lp) return AR_ERR_NOMEM;
    s = ar_model_log_prob(m, X, n, lp);
    for (i = 0; s == AR_OK && i < n; i++) out[i] = exp((double)lp[i]);
    free(lp);
    return s;
}

static int fx_setup(fx *f, int id, char *msg)
{
    ar_model_cfg c;
    float scale;
    int x, d, k, t;
    memset(f, 0, sizeof *f);
    c = cfg_of(id, &scale);
    memset(&f->m, 0xA5, sizeof f->m); /* init treats its struct as output only */
    if (ar_model_init(&f->m, &c) != AR_OK) {
        snprintf(msg, 512, "%s: init: %s", cfg_name[id], f->m.err);
        memset(&f->m, 0, sizeof f->m);
        return 0;
    }
    randomize(&f->m, 1000 + (uint64_t)id, scale);
    f->id = id;
    f->D = f->m.D;
    f->L = f->m.levels;
    f->P = f->L > 2 ? f->L : 1;
    f->K = f->m.made ? f->m.made->cfg.n_masks : 1;
    if (f->D > MAXD || f->L > MAXL || f->K > MAXK) {
        snprintf(msg, 512, "%s: D %d, levels %d, K %d out of the test's range", cfg_name[id], f->D, f->L, f->K);
        fx_free(f);
        return 0;
    }
    for (k = 0; k < f->K; k++)
        for (t = 0; t < f->D; t++)
            f->ok[k][t] = f->m.made ? f->m.made->orders[(size_t)k * f->D + t] : f->m.cfg.order ? f->m.cfg.order[t] : t;
    if (f->L == 0) return 1; /* RNADE: no enumeration */
    f->pw[0] = 1;
    for (t = 1; t <= f->D; t++) f->pw[t] = f->pw[t - 1] * f->L;
    f->n = f->pw[f->D];
    f->X = (float *)malloc((size_t)f->n * f->D * sizeof(float));
    f->dig = (unsigned char *)malloc((size_t)f->n * f->D);
    f->pk = (double *)malloc((size_t)f->K * f->n * sizeof(double));
    f->p = (double *)malloc((size_t)f->n * sizeof(double));
    if (!f->X || !f->dig || !f->pk || !f->p) { snprintf(msg, 512, "out of memory"); fx_free(f); return 0; }
    for (x = 0; x < f->n; x++)
        for (d = 0, t = x; d < f->D; d++, t /= f->L) {
            f->dig[(size_t)x * f->D + d] = (unsigned char)(t % f->L);
            f->X[(size_t)x * f->D + d] = (float)(t % f->L);
        }
    if (all_log_probs(&f->m, f->X, f->n, f->p) != AR_OK) {
        snprintf(msg, 512, "%s: log_prob: %s", cfg_name[id], f->m.err);
        fx_free(f);
        return 0;
    }
    for (k = 0; k < f->K; k++) {
        if (!f->m.made) {
            memcpy(f->pk, f->p, (size_t)f->n * sizeof(double));
        } else {
            float *lp = (float *)malloc((size_t)f->n * sizeof(float));
            ar_status s = lp ? ar_made_log_prob(&f->m, f->X, f->n, k, lp) : AR_ERR_NOMEM;
            for (x = 0; s == AR_OK && x < f->n; x++) f->pk[(size_t)k * f->n + x] = exp((double)lp[x]);
            free(lp);
            if (s != AR_OK) { snprintf(msg, 512, "%s: made_log_prob(%d): %s", cfg_name[id], k, f->m.err); fx_free(f); return 0; }
        }
        if (!marg_build(f, k)) { snprintf(msg, 512, "out of memory"); fx_free(f); return 0; }
    }
    return 1;
}

/* ==== the sampler's distribution, from the joint ============================== */

typedef struct {
    double T;                   /* temperature; 0: greedy */
    int top_k;                  /* 0: all */
    double top_p;               /* 0 or 1: all */
    const unsigned char *known; /* [D] or NULL */
    const float *given;         /* [D] */
} smode;

/* Smallest margin by which a reference decision (top-p cut, top-k or
   greedy choice) was made: a reference that hinges on a float rounding is
   no reference, and the tests say so instead of failing at random. */
static double ref_margin;

static void sort_desc(const double *r, int L, int *idx)
{
    int i, j;
    for (i = 0; i < L; i++) idx[i] = i;
    for (i = 1; i < L; i++)
        for (j = i; j > 0 && r[idx[j]] > r[idx[j - 1]]; j--) { int s = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = s; }
}

/* The distribution a sampler draws from at one place: the conditional c
   tempered (c^(1/T), renormalized; T = 0: the most likely value), then the
   top_k most likely kept, then the smallest set (most likely first) whose
   probability reaches top_p. */
static void tcond(const double *c, int L, const smode *s, double *r)
{
    int v, j, idx[MAXV];
    double lmax = -INFINITY, tot = 0;
    if (s->T == 0) {
        sort_desc(c, L, idx);
        if (L > 1 && c[idx[0]] - c[idx[1]] < ref_margin) ref_margin = c[idx[0]] - c[idx[1]];
        for (v = 0; v < L; v++) r[v] = v == idx[0];
        return;
    }
    for (v = 0; v < L; v++)
        if (c[v] > 0 && log(c[v]) > lmax) lmax = log(c[v]);
    for (v = 0; v < L; v++) tot += r[v] = c[v] > 0 ? exp((log(c[v]) - lmax) / s->T) : 0;
    for (v = 0; v < L; v++) r[v] /= tot;
    if (s->top_k > 0 && s->top_k < L) {
        sort_desc(r, L, idx);
        if (r[idx[s->top_k - 1]] - r[idx[s->top_k]] < ref_margin) ref_margin = r[idx[s->top_k - 1]] - r[idx[s->top_k]];
        for (j = s->top_k, tot = 0; j < L; j++) r[idx[j]] = 0;
        for (v = 0; v < L; v++) tot += r[v];
        for (v = 0; v < L; v++) r[v] /= tot;
    }
    if (s->top_p > 0 && s->top_p < 1) {
        double cum = 0;
        sort_desc(r, L, idx);
        for (j = 0; j < L; j++) {
            cum += r[idx[j]];
            if (fabs(cum - s->top_p) < ref_margin) ref_margin = fabs(cum - s->top_p);
            if (cum >= s->top_p) break;
        }
        for (j = j + 1; j < L; j++) r[idx[j]] = 0;
        for (v = 0, tot = 0; v < L; v++) tot += r[v];
        for (v = 0; v < L; v++) r[v] /= tot;
    }
}

/* Component k's conditional at place t after the prefix `code`. 0 if the prefix has no mass. */
static int cond_at(const fx *f, int k, int t, int code, double *c)
{
    double tot = f->M[k][t][code];
    int v;
    if (!(tot > 0)) return 0;
    for (v = 0; v < f->L; v++) c[v] = f->M[k][t + 1][code + v * f->pw[t]] / tot;
    return 1;
}

/* q[x]: the probability that component k's sampler under s returns x. */
static void tdist_k(const fx *f, int k, const smode *s, double *q)
{
    int x, t;
    double c[MAXL], r[MAXL];
    for (x = 0; x < f->n; x++) {
        double pr = 1;
        int code = 0;
        for (t = 0; t < f->D && pr > 0; t++) {
            int d = f->ok[k][t], v = f->dig[(size_t)x * f->D + d];
            if (s->known && s->known[d]) {
                if (v != (int)s->given[d]) pr = 0;
            } else if (!cond_at(f, k, t, code, c)) {
                pr = 0;
            } else {
                tcond(c, f->L, s, r);
                pr *= r[v];
            }
            code += v * f->pw[t];
        }
        q[x] = pr;
    }
}

/* The model's sampler distribution: for a mixture (MADE, K > 1) each
   component weighted by the probability it gives the known values (1/K
   when nothing is known), which at temperature 1 with a known prefix is
   exactly the mixture's p(rest | known). */
static void tdist(const fx *f, const smode *s, double *q)
{
    double w[MAXK], wt = 0, *qk = (double *)malloc((size_t)f->n * sizeof(double));
    int k, x, d;
    for (k = 0; k < f->K; k++) {
        w[k] = 0;
        for (x = 0; x < f->n; x++) {
            int agree = 1;
            for (d = 0; s->known && d < f->D; d++)
                if (s->known[d] && f->dig[(size_t)x * f->D + d] != (int)s->given[d]) agree = 0;
            if (agree) w[k] += f->pk[(size_t)k * f->n + x];
        }
        wt += w[k];
    }
    for (x = 0; x < f->n; x++) q[x] = 0;
    for (k = 0; k < f->K; k++) {
        tdist_k(f, k, s, qk);
        for (x = 0; x < f->n; x++) q[x] += w[k] / wt * qk[x];
    }
    free(qk);
}

/* ==== chi-square ============================================================== */

/* Regularized upper incomplete gamma Q(a, x): series below a + 1, Lentz's
   continued fraction above (Numerical Recipes 6.2). */
static double gammq(double a, double x)
{
    double lg = lgamma(a), h;
    int i;
    if (x <= 0) return 1;
    if (x < a + 1) {
        double ap = a, del = 1 / a, sum = del;
        for (i = 0; i < 10000; i++) {
            ap += 1;
            del *= x / ap;
            sum += del;
            if (fabs(del) < fabs(sum) * 1e-15) break;
        }
        return 1 - sum * exp(-x + a * log(x) - lg);
    } else {
        double b = x + 1 - a, c = 1e300, d = 1 / b, an, del;
        h = d;
        for (i = 1; i < 10000; i++) {
            an = -i * (i - a);
            b += 2;
            d = an * d + b;
            if (fabs(d) < 1e-300) d = 1e-300;
            c = b + an / c;
            if (fabs(c) < 1e-300) c = 1e-300;
            d = 1 / d;
            del = d * c;
            h *= del;
            if (fabs(del - 1) < 1e-15) break;
        }
        return exp(-x + a * log(x) - lg) * h;
    }
}

/* Pearson's test of counts cnt[0..n) against N q. Cells expected below 5
   are pooled (and the pool, if itself below 5, joins the smallest cell).
   Returns the p-value (1 when there is a single cell), or -1 when a draw
   landed in a cell of probability 0. */
static double chi2_test(const double *q, const long *cnt, int n, long N, double *chi_out, int *df_out)
{
    double *E = (double *)malloc(((size_t)n + 1) * sizeof(double)), Ep = 0, chi = 0, pv;
    long *O = (long *)malloc(((size_t)n + 1) * sizeof(long)), Op = 0;
    int i, cells = 0, small = -1;
    for (i = 0; i < n; i++) {
        double e = (double)N * q[i];
        if (q[i] <= 0) {
            if (cnt[i] > 0) { free(E); free(O); *chi_out = INFINITY; *df_out = i; return -1; }
            continue;
        }
        if (e < 5) { Ep += e; Op += cnt[i]; continue; }
        E[cells] = e; O[cells] = cnt[i];
        if (small < 0 || e < E[small]) small = cells;
        cells++;
    }
    if (Ep > 0 || Op > 0) {
        if (Ep >= 5 || small < 0) { E[cells] = Ep; O[cells] = Op; cells++; }
        else { E[small] += Ep; O[small] += Op; }
    }
    for (i = 0; i < cells; i++) chi += (O[i] - E[i]) * (O[i] - E[i]) / E[i];
    *chi_out = chi;
    *df_out = cells - 1;
    pv = cells > 1 ? gammq(0.5 * (cells - 1), 0.5 * chi) : 1;
    free(E);
    free(O);
    return pv;
}

static void test_chi2_helper(void)
{
    /* Q(a, x) against known values: chi-square df 1 at 3.841 -> 0.05, df 10 at 23.209 -> 0.01,
       df 100 at 149.449 -> 0.001 */
    CHECK_NEAR(gammq(0.5, 3.841459 / 2), 0.05, 1e-6);
    CHECK_NEAR(gammq(5, 23.20925 / 2), 0.01, 1e-6);
    CHECK_NEAR(gammq(50, 149.4493 / 2), 0.001, 1e-6);
    CHECK_NEAR(gammq(3, 0.5), exp(-0.5) * (1 + 0.5 + 0.125), 1e-12);
}

/* ==== model/info ================================================================ */

static void test_info(void)
{
    int i, k, nfam;
    for (k = 0; k < AR_KIND_COUNT; k++) {
        const char *nm = ar_kind_name((ar_kind)k);
        CHECK_MSG(nm && ar_kind_parse(nm) == k, "kind %d", k);
    }
    CHECK(ar_kind_name((ar_kind)AR_KIND_COUNT) == NULL && ar_kind_name((ar_kind)-1) == NULL);
    CHECK(ar_kind_parse("bogus") == -1 && ar_kind_parse("") == -1 && ar_kind_parse(NULL) == -1);
    for (i = 0; i < NCFG; i++) {
        ar_model m;
        float s;
        ar_model_cfg c = cfg_of(i, &s);
        int want_levels = c.kind == AR_RNADE ? 0
                        : c.kind == AR_TRANSFORMER ? c.tfm.V
                        : c.kind >= AR_PIXELCNN && c.cnn.levels > 1 ? c.cnn.levels : 2;
        CHECK_MSG(ar_model_init(&m, &c) == AR_OK, "%s: %s", cfg_name[i], m.err);
        nfam = !!m.made + !!m.nade + !!m.tfm + !!m.cnn;
        CHECK_MSG(m.kind == c.kind && m.rows == c.rows && m.cols == c.cols && m.D == c.rows * c.cols &&
                      m.levels == want_levels && nfam == 1 && m.err[0] == 0 && m.ps.x && m.ps.n > 0,
                  "%s: kind %d rows %d cols %d D %d levels %d (want %d) families %d err '%s'", cfg_name[i],
                  (int)m.kind, m.rows, m.cols, m.D, m.levels, want_levels, nfam, m.err);
        CHECK_MSG((m.cfg.order == NULL) == (c.order == NULL) && (!c.order || m.cfg.order != c.order),
                  "%s: cfg.order must be the model's own copy", cfg_name[i]);
        for (k = 0; c.order && k < m.D; k++) CHECK(m.cfg.order[k] == c.order[k]);
        CHECK_MSG((ar_cnn_receptive_field(&m) > 0) == (m.cnn != NULL), "%s: receptive field %d", cfg_name[i],
                  ar_cnn_receptive_field(&m));
        ar_model_free(&m);
    }
}

/* ==== model/normalization ========================================================== */

static void test_normalization(void)
{
    int i, k, x;
    for (i = 0; i < NCFG; i++) {
        fx f;
        char msg[512];
        double s = 0, sk[MAXK] = {0}, H = 0;
        if (is_rnade(i)) continue; /* model/rnade_normalization */
        CHECK_MSG(fx_setup(&f, i, msg), "%s", msg);
        int K, D, L;
        for (x = 0; x < f.n; x++) {
            s += f.p[x];
            if (f.p[x] > 0) H -= f.p[x] * log(f.p[x]);
            for (k = 0; k < f.K; k++) sk[k] += f.pk[(size_t)k * f.n + x];
        }
        K = f.K; D = f.D; L = f.L;
        fx_free(&f);
        CHECK_MSG(fabs(s - 1) < 1e-4, "%s: total probability %.9f", cfg_name[i], s);
        for (k = 0; k < K; k++) CHECK_MSG(fabs(sk[k] - 1) < 1e-4, "%s: mask %d: total %.9f", cfg_name[i], k, sk[k]);
        /* the test is only as good as the weights: far from uniform, not a point mass */
        CHECK_MSG(H < 0.85 * D * log((double)L) && H > 0.3 * D * log((double)L), "%s: entropy %.3f of max %.3f",
                  cfg_name[i], H, D * log((double)L));
    }
}

/* The MADE mixture's log_prob is the log-mean-exp of its masks. */
static void test_made_mixture(void)
{
    fx f;
    char msg[512];
    int x, k, n, K;
    CHECK_MSG(fx_setup(&f, C_MADE, msg), "%s", msg);
    n = f.n;
    K = f.K;
    for (x = 0; x < f.n; x++) {
        double s = 0;
        for (k = 0; k < f.K; k++) s += f.pk[(size_t)k * f.n + x] / f.K;
        if (fabs(log(s) - log(f.p[x])) > 1e-4) break;
    }
    /* the masks must differ, or "mixture" tests nothing */
    for (k = 1; k < f.K; k++)
        if (memcmp(f.ok[k], f.ok[0], sizeof f.ok[0]) == 0) break;
    fx_free(&f);
    CHECK_MSG(x == n, "vector %d: mixture differs from the mean of the masks", x);
    CHECK_MSG(k == K, "order-agnostic masks %d and 0 share an order", k);
    {   /* k = -1 is the mixture, ar_model_log_prob */
        ar_model m;
        float s, xs[8 * MAXD], a[8], b[8];
        ar_model_cfg c = cfg_of(C_MADE, &s);
        CHECK(ar_model_init(&m, &c) == AR_OK);
        randomize(&m, 3, s);
        for (x = 0; x < 8 * m.D; x++) xs[x] = (float)((x * 5 + x / 3) % 2);
        CHECK(ar_made_log_prob(&m, xs, 8, -1, a) == AR_OK && ar_model_log_prob(&m, xs, 8, b) == AR_OK);
        CHECK(memcmp(a, b, sizeof a) == 0);
        ar_model_free(&m);
    }
}

/* An example's log_prob does not depend on the batch around it: each row
   alone, and the batch reversed, give the same numbers (1e-5; BLAS may
   block a batch differently). A kernel that mixes rows fails. */
static void test_log_prob_batch_independent(void)
{
    enum { N = 9 };
    int i, n, j;
    for (i = 0; i < NCFG; i++) {
        ar_model m;
        ar_rng r;
        float s, x[N * MAXD], xr[N * MAXD], lp[N], lr[N], one;
        ar_model_cfg c = cfg_of(i, &s);
        CHECK(ar_model_init(&m, &c) == AR_OK);
        randomize(&m, 1000 + (uint64_t)i, s);
        ar_rng_seed(&r, 81);
        for (n = 0; n < N * m.D; n++)
            x[n] = m.levels ? (float)ar_rng_below(&r, (uint32_t)m.levels) : 0.05f + 0.9f * ar_rng_uniform(&r);
        for (n = 0; n < N; n++)
            for (j = 0; j < m.D; j++) xr[(N - 1 - n) * m.D + j] = x[n * m.D + j];
        CHECK(ar_model_log_prob(&m, x, N, lp) == AR_OK && ar_model_log_prob(&m, xr, N, lr) == AR_OK);
        for (n = 0; n < N; n++) {
            CHECK(ar_model_log_prob(&m, x + n * m.D, 1, &one) == AR_OK);
            CHECK_MSG(fabs(one - lp[n]) <= 1e-5 * (1 + fabs(lp[n])) && fabs(lr[N - 1 - n] - lp[n]) <= 1e-5 * (1 + fabs(lp[n])),
                      "%s: example %d: %.7g in the batch, %.7g alone, %.7g reversed", cfg_name[i], n, lp[n], one,
                      lr[N - 1 - n]);
        }
        ar_model_free(&m);
    }
}

/* ==== sampling against the joint ===================================================== */

/* Index of a sampled row, or -1 if a value is not an integer in [0,L). */
static int row_index(const fx *f, const float *row)
{
    int d, idx = 0;
    for (d = f->D - 1; d >= 0; d--) {
        float v = row[d];
        if (!(v >= 0 && v < f->L && v == floorf(v))) return -1;
        idx = idx * f->L + (int)v;
    }
    return idx;
}

/* Does probs [D*P] of the row x match component k's sampler conditionals
   at every place (1e-4)? Known places report the distribution their value
   would have been drawn from (documented), so they are checked too.
   *where gets the first mismatch. */
static int probs_match(const fx *f, int k, const smode *s, const float *x, const float *probs, int *where)
{
    double c[MAXL], r[MAXL];
    int t, code = 0, v;
    for (t = 0; t < f->D; t++) {
        int d = f->ok[k][t], xv = (int)x[d];
        if (!cond_at(f, k, t, code, c)) { *where = d; return 0; }
        tcond(c, f->L, s, r);
        for (v = 0; v < f->P; v++) {
            double want = f->P == 1 ? r[1] : r[v];
            if (!(fabs(probs[(size_t)d * f->P + v] - want) <= 1e-4)) { *where = d; return 0; }
        }
        code += xv * f->pw[t];
    }
    return 1;
}

/* N draws under s (naive path or not) from seed: every value in its domain,
   known values kept, counts against the reference distribution by
   chi-square, the reported conditionals (probs) exact for the first rows.
   Returns 1 if all holds; x and probs [N*D], [N*D*P] keep the draws. */
static int sample_check(fx *f, const smode *s, int naive, int N, uint64_t seed, float *x, float *probs, char *msg)
{
    ar_sample_opts o = ar_sample_defaults();
    float *given = NULL;
    unsigned char *known = NULL;
    double *q = (double *)malloc((size_t)f->n * sizeof(double)), chi, pv;
    long *cnt = (long *)calloc((size_t)f->n, sizeof(long));
    ar_rng rng;
    ar_status st;
    int i, d, k, df, ok = 0, where = -1;
    o.temperature = (float)s->T;
    o.top_k = s->top_k;
    o.top_p = (float)s->top_p;
    o.naive = naive;
    o.probs = probs;
    if (s->known) {
        given = (float *)malloc((size_t)N * f->D * sizeof(float));
        known = (unsigned char *)malloc((size_t)N * f->D);
        for (i = 0; i < N; i++) {
            memcpy(given + (size_t)i * f->D, s->given, (size_t)f->D * sizeof(float));
            memcpy(known + (size_t)i * f->D, s->known, (size_t)f->D);
        }
        o.given = given;
        o.known = known;
    }
    ar_rng_seed(&rng, seed);
    strcpy(f->m.err, "stale");
    st = ar_model_sample(&f->m, N, &o, &rng, x);
    if (st != AR_OK) { snprintf(msg, 512, "sample: %s (%s)", ar_status_str(st), f->m.err); goto done; }
    if (f->m.err[0]) { snprintf(msg, 512, "a successful sample left err '%s'", f->m.err); goto done; }
    for (i = 0; i < N; i++) {
        int idx = row_index(f, x + (size_t)i * f->D);
        if (idx < 0) { snprintf(msg, 512, "row %d: a value outside [0,%d)", i, f->L); goto done; }
        for (d = 0; s->known && d < f->D; d++)
            if (s->known[d] && x[(size_t)i * f->D + d] != s->given[d]) {
                snprintf(msg, 512, "row %d: known dimension %d is %g, given %g", i, d, x[(size_t)i * f->D + d],
                         s->given[d]);
                goto done;
            }
        cnt[idx]++;
    }
    ref_margin = INFINITY;
    tdist(f, s, q);
    for (i = 0; i < N && i < 300; i++) {
        for (k = 0; k < f->K; k++)
            if (probs_match(f, k, s, x + (size_t)i * f->D, probs + (size_t)i * f->D * f->P, &where)) break;
        if (k == f->K) {
            snprintf(msg, 512, "row %d: probs at dimension %d = %g is not the %s conditional", i, where,
                     probs[((size_t)i * f->D + where) * f->P], f->K > 1 ? "mixture components'" : "model's");
            goto done;
        }
    }
    if (ref_margin < 1e-5) {
        snprintf(msg, 512, "reference ambiguous (margin %g): pick other weights", ref_margin);
        goto done;
    }
    pv = chi2_test(q, cnt, f->n, N, &chi, &df);
    if (pv < 0) {
        snprintf(msg, 512, "drew vector %d, which has probability 0 under these options", df);
        goto done;
    }
    if (pv < P_FAIL) {
        snprintf(msg, 512, "frequencies off: chi2 %.1f, df %d, p %.2g (N %d)", chi, df, pv, N);
        goto done;
    }
    ok = 1;
done:
    free(q); free(cnt); free(given); free(known);
    return ok;
}

/* s on every discrete config, and the naive path where there is one: the
   same draws from the same seed as the cached path, the same conditionals
   to 1e-4, so the cached path's chi-square covers it (it is checked on
   fewer draws, NAIVE_N, for time). known_prefix > 0: the first places of
   the order are given the values of the most likely vector. */
#define NAIVE_N 800
static int sample_all(const char *what, double T, int top_k, double top_p, int known_prefix, int N, char *msg)
{
    int i, t, ok = 1;
    for (i = 0; i < NCFG && ok; i++) {
        fx f;
        smode s;
        unsigned char kn[MAXD];
        float gv[MAXD];
        float *x, *px, *x2, *p2;
        size_t j;
        if (is_rnade(i)) continue;
        if (!fx_setup(&f, i, msg)) return 0;
        if ((top_k > 1 && f.L <= 2) || (known_prefix && i == C_MADE)) {
            /* top_k >= 2 is all of a binary value; an order-agnostic mixture
               has no prefix shared by its masks (known values are checked in
               model/contract_given) */
            fx_free(&f);
            continue;
        }
        memset(&s, 0, sizeof s);
        s.T = T; s.top_k = top_k; s.top_p = top_p;
        if (known_prefix) {
            int best = 0;
            for (j = 1; j < (size_t)f.n; j++)
                if (f.p[j] > f.p[best]) best = (int)j;
            memset(kn, 0, sizeof kn);
            for (t = 0; t < f.D; t++) gv[t] = f.X[(size_t)best * f.D + t];
            for (t = 0; t < known_prefix; t++) kn[f.ok[0][t]] = 1;
            s.known = kn;
            s.given = gv;
        }
        x = (float *)malloc((size_t)N * f.D * sizeof(float));
        px = (float *)malloc((size_t)N * f.D * f.P * sizeof(float));
        x2 = (float *)malloc((size_t)N * f.D * sizeof(float));
        p2 = (float *)malloc((size_t)N * f.D * f.P * sizeof(float));
        ok = sample_check(&f, &s, 0, N, 7000 + (uint64_t)i, x, px, msg);
        if (ok && has_naive(&f.m)) {
            int nn = N < NAIVE_N ? N : NAIVE_N;
            if (nn < N) ok = sample_check(&f, &s, 0, nn, 8000 + (uint64_t)i, x, px, msg);
            if (ok) ok = sample_check(&f, &s, 1, nn, 8000 + (uint64_t)i, x2, p2, msg);
            if (!ok) {
                char m2[512];
                snprintf(m2, sizeof m2, "naive: %s", msg);
                memcpy(msg, m2, 512);
            }
            for (j = 0; ok && j < (size_t)nn * f.D; j++)
                if (x[j] != x2[j]) {
                    snprintf(msg, 512, "naive = 1 drew another sample than naive = 0 from the same seed (row %d)",
                             (int)(j / f.D));
                    ok = 0;
                }
            for (j = 0; ok && j < (size_t)nn * f.D * f.P; j++)
                if (!(fabs(px[j] - p2[j]) <= 1e-4)) {
                    snprintf(msg, 512, "naive probs[%d] = %g, cached %g", (int)j, p2[j], px[j]);
                    ok = 0;
                }
        }
        if (!ok) {
            char m2[512];
            snprintf(m2, sizeof m2, "%s, %s: %s", cfg_name[i], what, msg);
            memcpy(msg, m2, 512);
        }
        free(x); free(px); free(x2); free(p2);
        fx_free(&f);
    }
    return ok;
}

#define SAMPLE_N 6000

static void test_sample_t1(void)
{
    char msg[512] = "";
    CHECK_MSG(sample_all("temperature 1", 1, 0, 0, 0, SAMPLE_N, msg), "%s", msg);
}

/* Tempered per place: c^(1/T). A sampler that ignored T, or tempered the
   probabilities instead of the logits, or tempered only the first place,
   is far off at these N. */
static void test_sample_temperature(void)
{
    char msg[512] = "";
    CHECK_MSG(sample_all("temperature 0.5", 0.5, 0, 0, 0, SAMPLE_N, msg), "%s", msg);
    CHECK_MSG(sample_all("temperature 2", 2, 0, 0, 0, SAMPLE_N, msg), "%s", msg);
}

/* Greedy is the argmax chain: every draw is the one vector (MADE's
   mixture: one of its masks' vectors); top_k = 1 is the same distribution. */
static void test_sample_greedy(void)
{
    char msg[512] = "";
    CHECK_MSG(sample_all("temperature 0", 0, 0, 0, 0, 200, msg), "%s", msg);
    CHECK_MSG(sample_all("top_k 1", 1, 1, 0, 0, 200, msg), "%s", msg);
    CHECK_MSG(sample_all("top_k 1, temperature 2", 2, 1, 0, 0, 200, msg), "%s", msg);
}

static void test_sample_top_k(void)
{
    char msg[512] = "";
    CHECK_MSG(sample_all("top_k 2", 1, 2, 0, 0, SAMPLE_N, msg), "%s", msg);
    CHECK_MSG(sample_all("top_k 2, temperature 0.5", 0.5, 2, 0, 0, SAMPLE_N, msg), "%s", msg);
}

static void test_sample_top_p(void)
{
    char msg[512] = "";
    CHECK_MSG(sample_all("top_p 0.6", 1, 0, 0.6, 0, SAMPLE_N, msg), "%s", msg);
    CHECK_MSG(sample_all("top_p 0.85, temperature 2", 2, 0, 0.85, 0, SAMPLE_N, msg), "%s", msg);
}

/* Completion: the first places of the order known -> p(rest | known). */
static void test_sample_completion(void)
{
    char msg[512] = "";
    CHECK_MSG(sample_all("known prefix 2", 1, 0, 0, 2, SAMPLE_N, msg), "%s", msg);
    CHECK_MSG(sample_all("known prefix 4, temperature 0.5", 0.5, 0, 0, 4, SAMPLE_N, msg), "%s", msg);
}

/* The draws do not depend on whether the conditionals are written out. */
static void test_sample_probs_optional(void)
{
    int i, naive;
    for (i = 0; i < NCFG; i++) {
        ar_model m;
        ar_rng r;
        ar_sample_opts o = ar_sample_defaults();
        float s, a[20 * MAXD], b[20 * MAXD], pr[20 * MAXD * MAXL];
        ar_model_cfg c = cfg_of(i, &s);
        CHECK_MSG(ar_model_init(&m, &c) == AR_OK, "%s", m.err);
        randomize(&m, 5, s);
        for (naive = 0; naive <= 1; naive++) {
            o.naive = naive;
            o.probs = NULL;
            o.temperature = 0.7f;
            ar_rng_seed(&r, 3);
            CHECK_MSG(ar_model_sample(&m, 20, &o, &r, a) == AR_OK, "%s: %s", cfg_name[i], m.err);
            o.probs = pr;
            ar_rng_seed(&r, 3);
            CHECK_MSG(ar_model_sample(&m, 20, &o, &r, b) == AR_OK, "%s: %s", cfg_name[i], m.err);
            CHECK_MSG(memcmp(a, b, sizeof(float) * 20 * m.D) == 0, "%s naive %d: probs changed the draws",
                      cfg_name[i], naive);
        }
        ar_model_free(&m);
    }
}

/* ==== model/autoregressive ============================================================ */

/* For each place t: known = everything but dimension d = order[t], so the
   sampler reports the model's conditional at d with every other value
   present; it must equal the chain-rule conditional of the joint given
   only the values before t (for some mask set of a mixture), and must not
   move when the values after t change. Both the cached and the naive
   path. A network that lets place t see a later value fails both. */
static int ar_check(fx *f, int naive, char *msg)
{
    enum { R = 6 };
    int D = f->D, P = f->P, N = R * D, r, t, i, j, k, where;
    float *given = (float *)malloc((size_t)N * D * sizeof(float)), *x = (float *)malloc((size_t)N * D * sizeof(float));
    float *pr = (float *)malloc((size_t)N * D * P * sizeof(float)), *pr2 = (float *)malloc((size_t)N * D * P * sizeof(float));
    unsigned char *known = (unsigned char *)malloc((size_t)N * D);
    ar_sample_opts o = ar_sample_defaults();
    ar_rng rng;
    smode s;
    int ok = 0;
    memset(&s, 0, sizeof s);
    s.T = 1;
    ar_rng_seed(&rng, 99);
    /* row r*D + t: random values, all known except dimension ok[0][t] */
    for (r = 0; r < R; r++)
        for (t = 0; t < D; t++) {
            i = r * D + t;
            for (j = 0; j < D; j++) {
                given[(size_t)i * D + j] = (float)ar_rng_below(&rng, (uint32_t)f->L);
                known[(size_t)i * D + j] = j != f->ok[0][t];
            }
        }
    o.given = given;
    o.known = known;
    o.probs = pr;
    o.naive = naive;
    ar_rng_seed(&rng, 5);
    if (ar_model_sample(&f->m, N, &o, &rng, x) != AR_OK) { snprintf(msg, 512, "sample: %s", f->m.err); goto done; }
    for (i = 0; i < N; i++) {
        unsigned char kn[MAXD];
        s.known = kn;
        s.given = x + (size_t)i * D;
        memcpy(kn, known + (size_t)i * D, (size_t)D);
        for (k = 0; k < f->K; k++)
            if (probs_match(f, k, &s, x + (size_t)i * D, pr + (size_t)i * D * P, &where)) break;
        if (k == f->K) {
            snprintf(msg, 512, "row %d: the conditional at dimension %d depends on more than the places before it",
                     i, where);
            goto done;
        }
    }
    /* the values after place t changed (in the first component's order) */
    for (r = 0; r < R; r++)
        for (t = 0; t < D; t++) {
            i = r * D + t;
            for (j = t + 1; j < D; j++) {
                float *v = given + (size_t)i * D + f->ok[0][j];
                *v = (float)(((int)*v + 1 + (int)ar_rng_below(&rng, (uint32_t)(f->L - 1))) % f->L);
            }
        }
    o.probs = pr2;
    ar_rng_seed(&rng, 5);
    if (ar_model_sample(&f->m, N, &o, &rng, x) != AR_OK) { snprintf(msg, 512, "sample: %s", f->m.err); goto done; }
    for (i = 0; f->K == 1 && i < N; i++) {
        int d = f->ok[0][i % D];
        for (j = 0; j < P; j++)
            if (!(fabs(pr[((size_t)i * D + d) * P + j] - pr2[((size_t)i * D + d) * P + j]) <= 1e-5)) {
                snprintf(msg, 512, "row %d: the conditional at place %d moved from %g to %g when later values changed",
                         i, i % D, pr[((size_t)i * D + d) * P + j], pr2[((size_t)i * D + d) * P + j]);
                goto done;
            }
    }
    ok = 1;
done:
    free(given); free(x); free(pr); free(pr2); free(known);
    return ok;
}

static void test_autoregressive(void)
{
    int i, naive;
    for (i = 0; i < NCFG; i++) {
        fx f;
        char msg[512];
        if (is_rnade(i)) continue; /* model/rnade_autoregressive */
        CHECK_MSG(fx_setup(&f, i, msg), "%s", msg);
        for (naive = 0; naive <= has_naive(&f.m); naive++) {
            int ok = ar_check(&f, naive, msg);
            if (!ok) fx_free(&f);
            CHECK_MSG(ok, "%s, naive %d: %s", cfg_name[i], naive, msg);
        }
        fx_free(&f);
    }
}

/* ==== model/nll: the training loss is -log_prob ========================================== */

static void test_nll_matches_log_prob(void)
{
    enum { N = 7 };
    int i, n, k;
    for (i = 0; i < NCFG; i++) {
        ar_model m;
        ar_graph g;
        float s, x[N * MAXD], lp[N];
        ar_model_cfg c = cfg_of(i, &s);
        ar_tensor *nll;
        ar_rng r;
        CHECK(ar_model_init(&m, &c) == AR_OK);
        randomize(&m, 8, s);
        ar_rng_seed(&r, 4);
        for (n = 0; n < N * m.D; n++)
            x[n] = m.levels ? (float)ar_rng_below(&r, (uint32_t)m.levels) : 0.05f + 0.9f * ar_rng_uniform(&r);
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        for (k = 0; k < (m.made ? m.made->cfg.n_masks : 1); k++) {
            if (m.made) CHECK(ar_made_set_mask(&m, k) == AR_OK && m.err[0] == 0);
            ar_graph_reset(&g);
            nll = ar_model_nll(&m, &g, x, N, NULL); /* MADE: the current mask set */
            CHECK_MSG(nll && nll->n == N, "%s: %s", cfg_name[i], m.err);
            CHECK(m.made ? ar_made_log_prob(&m, x, N, k, lp) == AR_OK : ar_model_log_prob(&m, x, N, lp) == AR_OK);
            for (n = 0; n < N; n++)
                CHECK_MSG(fabs(nll->x[n] + lp[n]) <= 1e-4 * (1 + fabs(lp[n])), "%s mask %d, example %d: nll %g, log_prob %g",
                          cfg_name[i], k, n, nll->x[n], lp[n]);
            /* and it trains: a gradient reaches the parameters */
            ar_params_zero_grad(&m.ps);
            CHECK_MSG(ar_backward(&g, ar_mean(&g, nll, AR_ALL)) == AR_OK, "%s: %s", cfg_name[i], g.err);
            CHECK_MSG(ar_params_grad_norm(&m.ps) > 0, "%s: zero gradient", cfg_name[i]);
        }
        ar_graph_free(&g);
        ar_model_free(&m);
    }
}

/* ==== RNADE: densities by numeric integration ============================================ */

/* RNADE's densities are integrated on a grid of cells in the model's own
   space y (no transform: y = x; logit: y = logit(1e-6 + (1 - 2e-6) x),
   bounded by +-13.8155 for x in [0,1]), midpoint rule with cells of 0.1: the
   integrand is a smooth Gaussian mixture, whose midpoint sums converge
   geometrically (error about exp(-2 pi^2 sigma^2 / h^2) < 1e-100 here). The
   configs' weights keep every sigma in [e^-1, e] and every mean in [-1, 1]
   (|o| <= scale (1 + H) = 1), so [-25, 25] (no transform) holds all but
   1e-15 of the mass, and logit's [-13.8, 13.8] all but 1e-6. Bins of the
   chi-square tests have edges on cell boundaries. */
typedef struct { double lo, h; int G; int logit; } grid;

static grid grid_of(const ar_model *m)
{
    grid g;
    g.logit = m->cfg.nade.transform == AR_TRANSFORM_LOGIT;
    g.h = 0.1;
    g.lo = g.logit ? -13.8 : -25.0;
    g.G = (int)floor(-2 * g.lo / g.h + 0.5);
    return g;
}

static double y_of_x(int logit, double x) { return logit ? log((1e-6 + (1 - 2e-6) * x) / (1 - 1e-6 - (1 - 2e-6) * x)) : x; }
static double x_of_y(int logit, double y) { return logit ? (1 / (1 + exp(-y)) - 1e-6) / (1 - 2e-6) : y; }
/* dx/dy: densities of x times this are densities of y */
static double dxdy(int logit, double y) { double s = 1 / (1 + exp(-y)); return logit ? s * (1 - s) / (1 - 2e-6) : 1; }

/* The bin of a y: edges -1.5, -0.5, 0.5, 1.5 (multiples of the cell width from lo). */
#define RB 5
static int ybin(double y) { return y < -1.5 ? 0 : y < -0.5 ? 1 : y < 0.5 ? 2 : y < 1.5 ? 3 : 4; }

/* The model's (or, with T > 0 and ref, the reference's) density on every
   cell of the 2-D grid into dens[G*G] (probability of the cell: density of y times h^2);
   dimension 0 varies slowest. */
static double rnade_ref(const ar_model *m, const double *x, const smode *s, double *mean, double *greedy);

static int grid_mass(ar_model *m, const grid *g, const smode *s, int ref, double *cell)
{
    float *x = (float *)malloc((size_t)g->G * 2 * sizeof(float)), *lp = (float *)malloc((size_t)g->G * sizeof(float));
    int i, j, ok = 1;
    for (i = 0; i < g->G && ok; i++) {
        double yi = g->lo + (i + 0.5) * g->h;
        for (j = 0; j < g->G; j++) {
            x[2 * j] = (float)x_of_y(g->logit, yi);
            x[2 * j + 1] = (float)x_of_y(g->logit, g->lo + (j + 0.5) * g->h);
        }
        if (!ref) ok = ar_model_log_prob(m, x, g->G, lp) == AR_OK;
        for (j = 0; j < g->G && ok; j++) {
            double yj = g->lo + (j + 0.5) * g->h, xx[2], l;
            xx[0] = x[2 * j];
            xx[1] = x[2 * j + 1];
            l = ref ? rnade_ref(m, xx, s, NULL, NULL) : lp[j];
            cell[(size_t)i * g->G + j] = exp(l) * dxdy(g->logit, yi) * dxdy(g->logit, yj) * g->h * g->h;
        }
    }
    free(x);
    free(lp);
    return ok;
}

/* An RNADE config with its weights. */
static int rnade_make(ar_model *m, int id)
{
    float s;
    ar_model_cfg c = cfg_of(id, &s);
    if (ar_model_init(m, &c) != AR_OK) return 0;
    randomize(m, 1000 + (uint64_t)id, s);
    return 1;
}

static void test_rnade_normalization(void)
{
    int id;
    for (id = C_RNADE_LOGIT; id <= C_RNADE_NONE; id++) {
        ar_model m;
        grid g;
        double *cell, tot = 0;
        size_t i;
        CHECK(rnade_make(&m, id));
        g = grid_of(&m);
        cell = (double *)malloc((size_t)g.G * g.G * sizeof(double));
        CHECK_MSG(grid_mass(&m, &g, NULL, 0, cell), "%s: %s", cfg_name[id], m.err);
        for (i = 0; i < (size_t)g.G * g.G; i++) tot += cell[i];
        free(cell);
        ar_model_free(&m);
        CHECK_MSG(fabs(tot - 1) < 1e-4, "%s: the density integrates to %.9f", cfg_name[id], tot);
    }
}

/* ---- the reference RNADE, for the sampler's options ---------------------------------------
   Temperature, top-k and top-p change the mixture's component weights (and
   T its widths: sigma sqrt(T)), which the density at T = 1 does not
   reveal, so the reference is computed from the weights (m->nade, the
   documented recursion: h = sigmoid(a), o = b_d + V_d h = K logits, K
   means, K log-sigmas, a += W_d y_d), the component weights through tcond
   like every discrete head. It is first checked to reproduce
   ar_model_log_prob at T = 1 (model/rnade_reference), so a misreading of
   the layout fails there, not silently later. s NULL: no options. */
#ifndef RNADE_FEEDS_Y
#define RNADE_FEEDS_Y 1 /* the recursion reads y_d (the transformed value); 0: x_d */
#endif
static double rnade_ref(const ar_model *m, const double *x, const smode *s, double *mean, double *greedy)
{
    double T = s ? s->T : 1;
    const ar_nade *n = m->nade;
    int H = n->cfg.H, K = n->cfg.K, P = 3 * K, D = m->D, logit = n->cfg.transform == AR_TRANSFORM_LOGIT, t, k, j;
    double a[64], lp = 0;
    for (j = 0; j < H; j++) a[j] = n->c->x[j];
    for (t = 0; t < D; t++) {
        int d = n->order[t], best = 0;
        double h[64], o[3 * AR_NADE_MAX_K], y = y_of_x(logit, x[d]), mz = -INFINITY, z = 0, ml = -INFINITY, sl = 0, mu = 0;
        double c[MAXV], w[MAXV];
        for (j = 0; j < H; j++) h[j] = 1 / (1 + exp(-a[j]));
        for (k = 0; k < P; k++) {
            o[k] = n->b->x[(size_t)d * P + k];
            for (j = 0; j < H; j++) o[k] += (double)n->V->x[((size_t)d * P + k) * H + j] * h[j];
        }
        for (k = 0; k < K; k++) {
            mz = fmax(mz, o[k]);
            if (o[k] > o[best]) best = k;
        }
        for (k = 0; k < K; k++) z += c[k] = exp(o[k] - mz);
        for (k = 0; k < K; k++) c[k] /= z;
        if (s) tcond(c, K, s, w);
        else memcpy(w, c, sizeof w);
        for (k = 0; k < K; k++) {
            double sg = exp(o[2 * K + k]) * sqrt(T), e = (y - o[K + k]) / sg;
            double l = log(w[k]) - log(sg) - 0.5 * log(2 * PI_D) - 0.5 * e * e;
            mu += w[k] * o[K + k];
            if (w[k] <= 0) continue;
            if (l > ml) { sl = sl * exp(ml - l) + 1; ml = l; } else sl += exp(l - ml);
        }
        lp += ml + log(sl);
        if (logit) lp += log((1 - 2e-6) / ((1e-6 + (1 - 2e-6) * x[d]) * (1 - 1e-6 - (1 - 2e-6) * x[d])));
        if (mean) mean[d] = mu;
        if (greedy) greedy[d] = x_of_y(logit, o[K + best]);
        for (j = 0; j < H; j++) a[j] += n->W->x[(size_t)d * H + j] * (RNADE_FEEDS_Y ? y : x[d]);
    }
    return lp;
}

static void test_rnade_reference(void)
{
    int id, i;
    for (id = C_RNADE_LOGIT; id <= C_RNADE_NONE; id++) {
        ar_model m;
        ar_rng r;
        float x[2 * 50], lp[50];
        CHECK(rnade_make(&m, id));
        ar_rng_seed(&r, 61);
        for (i = 0; i < 100; i++) x[i] = 0.01f + 0.98f * ar_rng_uniform(&r);
        CHECK(ar_model_log_prob(&m, x, 50, lp) == AR_OK);
        for (i = 0; i < 50; i++) {
            double xx[2];
            xx[0] = x[2 * i]; xx[1] = x[2 * i + 1];
            CHECK_MSG(fabs(rnade_ref(&m, xx, NULL, NULL, NULL) - lp[i]) < 1e-4, "%s: reference %.7f, log_prob %.7f",
                      cfg_name[id], rnade_ref(&m, xx, NULL, NULL, NULL), lp[i]);
        }
        ar_model_free(&m);
    }
}

/* Draws under s binned on the grid's bins (5 x 5 in y) against the bins'
   mass, from ar_model_log_prob with no options and from the reference
   otherwise; probs is the conditional mean (of y) under s. */
static int rnade_sample_check(ar_model *m, const smode *s, int N, uint64_t seed, char *msg)
{
    int plain = s->T == 1 && s->top_k == 0 && (s->top_p == 0 || s->top_p == 1);
    grid g = grid_of(m);
    double *cell = (double *)malloc((size_t)g.G * g.G * sizeof(double)), q[RB * RB] = {0}, chi, pv, tot = 0;
    long cnt[RB * RB] = {0};
    float *x = (float *)malloc((size_t)N * 2 * sizeof(float)), *pr = (float *)malloc((size_t)N * 2 * sizeof(float));
    ar_sample_opts o = ar_sample_defaults();
    ar_rng rng;
    int i, j, df, ok = 0;
    ref_margin = INFINITY;
    if (!grid_mass(m, &g, s, !plain, cell)) { snprintf(msg, 512, "log_prob: %s", m->err); goto done; }
    if (ref_margin < 1e-5) { snprintf(msg, 512, "reference ambiguous (margin %g)", ref_margin); goto done; }
    for (i = 0; i < g.G; i++)
        for (j = 0; j < g.G; j++) {
            q[ybin(g.lo + (i + 0.5) * g.h) * RB + ybin(g.lo + (j + 0.5) * g.h)] += cell[(size_t)i * g.G + j];
            tot += cell[(size_t)i * g.G + j];
        }
    if (fabs(tot - 1) > 1e-4) { snprintf(msg, 512, "the reference integrates to %.7f", tot); goto done; }
    o.temperature = (float)s->T;
    o.top_k = s->top_k;
    o.top_p = (float)s->top_p;
    o.probs = pr;
    ar_rng_seed(&rng, seed);
    if (ar_model_sample(m, N, &o, &rng, x) != AR_OK) { snprintf(msg, 512, "sample: %s", m->err); goto done; }
    for (i = 0; i < N; i++) {
        double mean[2], xx[2];
        if (!isfinite(x[2 * i]) || !isfinite(x[2 * i + 1]) ||
            (g.logit && (x[2 * i] < 0 || x[2 * i] > 1 || x[2 * i + 1] < 0 || x[2 * i + 1] > 1))) {
            snprintf(msg, 512, "row %d: (%g, %g) outside the domain", i, x[2 * i], x[2 * i + 1]);
            goto done;
        }
        cnt[ybin(y_of_x(g.logit, x[2 * i])) * RB + ybin(y_of_x(g.logit, x[2 * i + 1]))]++;
        /* probs: the conditional mean (in the model's space y) the draw came from */
        xx[0] = x[2 * i]; xx[1] = x[2 * i + 1];
        rnade_ref(m, xx, s, mean, NULL);
        for (j = 0; j < 2 && i < 200; j++)
            if (!(fabs(pr[2 * i + j] - mean[j]) <= 1e-4 * (1 + fabs(mean[j])))) {
                snprintf(msg, 512, "row %d: probs[%d] = %g, the conditional mean is %g", i, j, pr[2 * i + j], mean[j]);
                goto done;
            }
    }
    pv = chi2_test(q, cnt, RB * RB, N, &chi, &df);
    if (pv < P_FAIL) { snprintf(msg, 512, "chi2 %.1f, df %d, p %.2g", chi, df, pv); goto done; }
    ok = 1;
done:
    free(cell); free(x); free(pr);
    return ok;
}

/* Every option: temperature (component logits / T, sigma sqrt(T)), and
   top-k / top-p over the components (documented for RNADE: top_k = 1 is
   the most likely component's Gaussian, not greedy). */
static void test_rnade_sampling(void)
{
    static const struct { double T; int k; double p; } os[] = {{1, 0, 0}, {0.5, 0, 0}, {2, 0, 0}, {1, 1, 0},
                                                               {0.5, 2, 0}, {1, 0, 0.6}, {2, 0, 0.8}};
    int id, k;
    for (id = C_RNADE_LOGIT; id <= C_RNADE_NONE; id++)
        for (k = 0; k < (int)(sizeof os / sizeof os[0]); k++) {
            ar_model m;
            char msg[512];
            smode s;
            int ok;
            memset(&s, 0, sizeof s);
            s.T = os[k].T; s.top_k = os[k].k; s.top_p = os[k].p;
            CHECK(rnade_make(&m, id));
            ok = rnade_sample_check(&m, &s, 20000, 900 + (uint64_t)(id * 16 + k), msg);
            ar_model_free(&m);
            CHECK_MSG(ok, "%s, T %g top_k %d top_p %g: %s", cfg_name[id], s.T, s.top_k, s.top_p, msg);
        }
}

/* Greedy: every draw is the chain of the most likely components' means,
   whatever the rng (and top_k = 1 does not change that). */
static void test_rnade_greedy(void)
{
    int id, i, pass;
    for (id = C_RNADE_LOGIT; id <= C_RNADE_NONE; id++)
        for (pass = 0; pass < 2; pass++) {
            ar_model m;
            ar_rng r;
            ar_sample_opts o = ar_sample_defaults();
            float x[2 * 20];
            double want[2], xx[2];
            int t, d;
            CHECK(rnade_make(&m, id));
            o.temperature = 0;
            if (pass) o.top_k = 1;
            ar_rng_seed(&r, 3);
            CHECK_MSG(ar_model_sample(&m, 20, &o, &r, x) == AR_OK, "%s: %s", cfg_name[id], m.err);
            /* the chain: place t's greedy value given the greedy values before it */
            xx[0] = xx[1] = 0.5;
            for (t = 0; t < 2; t++) {
                d = m.nade->order[t];
                rnade_ref(&m, xx, NULL, NULL, want);
                xx[d] = want[d];
            }
            for (i = 0; i < 20; i++)
                for (d = 0; d < 2; d++)
                    CHECK_MSG(fabs(x[2 * i + d] - xx[d]) <= 1e-5 * (1 + fabs(xx[d])), "%s %s: row %d dim %d: %g, want %g",
                              cfg_name[id], pass ? "greedy, top_k 1" : "greedy", i, d, x[2 * i + d], xx[d]);
            ar_model_free(&m);
        }
}

/* The first place of the order known: the other dimension's draws follow
   p(x_b | x_a) = p(x_a, x_b) / integral of p(x_a, .), from log_prob. */
static void test_rnade_completion(void)
{
    enum { N = 20000 };
    int id, i;
    for (id = C_RNADE_LOGIT; id <= C_RNADE_NONE; id++) {
        ar_model m;
        grid g;
        ar_rng r;
        ar_sample_opts o = ar_sample_defaults();
        float *x = (float *)malloc(2 * N * sizeof(float)), *gv = (float *)malloc(2 * N * sizeof(float)), *in, lp[1200];
        unsigned char *kn = (unsigned char *)malloc(2 * N);
        double q[RB] = {0}, tot = 0, chi, pv;
        long cnt[RB] = {0};
        int a, b, df;
        CHECK(rnade_make(&m, id));
        g = grid_of(&m);
        a = m.nade->order[0];
        b = 1 - a;
        in = (float *)malloc((size_t)g.G * 2 * sizeof(float));
        for (i = 0; i < g.G; i++) {
            in[2 * i + a] = 0.3f;
            in[2 * i + b] = (float)x_of_y(g.logit, g.lo + (i + 0.5) * g.h);
        }
        CHECK(g.G <= 1200 && ar_model_log_prob(&m, in, g.G, lp) == AR_OK);
        for (i = 0; i < g.G; i++) {
            double y = g.lo + (i + 0.5) * g.h, c = exp(lp[i]) * dxdy(g.logit, y) * g.h;
            q[ybin(y)] += c;
            tot += c;
        }
        for (i = 0; i < RB; i++) q[i] /= tot;
        for (i = 0; i < 2 * N; i++) {
            kn[i] = i % 2 == a;
            gv[i] = kn[i] ? 0.3f : NAN; /* unknown places are not read */
        }
        o.given = gv;
        o.known = kn;
        ar_rng_seed(&r, 71);
        CHECK_MSG(ar_model_sample(&m, N, &o, &r, x) == AR_OK, "%s: %s", cfg_name[id], m.err);
        for (i = 0; i < N; i++) {
            CHECK(x[2 * i + a] == 0.3f);
            cnt[ybin(y_of_x(g.logit, x[2 * i + b]))]++;
        }
        pv = chi2_test(q, cnt, RB, N, &chi, &df);
        free(x); free(gv); free(kn); free(in);
        ar_model_free(&m);
        CHECK_MSG(pv >= P_FAIL, "%s: chi2 %.1f, df %d, p %.2g", cfg_name[id], chi, df, pv);
    }
}

/* The conditional at the first place (its mean, in probs) must not change
   with the value at the second, which is known. */
static void test_rnade_autoregressive(void)
{
    enum { N = 8 };
    int id, i;
    for (id = C_RNADE_LOGIT; id <= C_RNADE_NONE; id++) {
        ar_model m;
        ar_rng r;
        ar_sample_opts o = ar_sample_defaults();
        float x[2 * N], gv[2 * N], pr[2 * N];
        unsigned char kn[2 * N];
        int a, b;
        CHECK(rnade_make(&m, id));
        a = m.nade->order[0];
        b = 1 - a;
        for (i = 0; i < N; i++) {
            gv[2 * i + a] = 0; kn[2 * i + a] = 0;
            gv[2 * i + b] = 0.05f + 0.9f * (float)i / N; kn[2 * i + b] = 1;
        }
        o.given = gv;
        o.known = kn;
        o.probs = pr;
        ar_rng_seed(&r, 72);
        CHECK_MSG(ar_model_sample(&m, N, &o, &r, x) == AR_OK, "%s: %s", cfg_name[id], m.err);
        for (i = 1; i < N; i++)
            CHECK_MSG(pr[2 * i + a] == pr[a], "%s: the first place's mean %g moved to %g when the later value changed",
                      cfg_name[id], pr[a], pr[2 * i + a]);
        ar_model_free(&m);
    }
}

/* ==== model/save_load ===================================================================== */

/* The model b must compute what a computes: same description, the same
   log_prob bit for bit (every mask set of a MADE too), the same draws and
   conditionals bit for bit from the same seed, and the same bytes when saved. */
static int same_model(ar_model *a, ar_model *b, char *msg)
{
    enum { N = 40 };
    float x[N * MAXD], la[N], lb[N], sa[N * MAXD], sb[N * MAXD], pa[N * MAXD * MAXL], pb[N * MAXD * MAXL];
    unsigned char *ba = NULL, *bb = NULL;
    size_t na = 0, nb = 0;
    ar_sample_opts o = ar_sample_defaults();
    ar_rng r;
    int n, k, ok = 0, P = a->levels > 2 ? a->levels : 1;
    if (b->kind != a->kind || b->D != a->D || b->rows != a->rows || b->cols != a->cols || b->levels != a->levels ||
        b->ps.total != a->ps.total || b->ps.n != a->ps.n) {
        snprintf(msg, 512, "loaded kind %d %dx%d levels %d, %zu weights; saved kind %d %dx%d levels %d, %zu",
                 (int)b->kind, b->rows, b->cols, b->levels, b->ps.total, (int)a->kind, a->rows, a->cols, a->levels,
                 a->ps.total);
        return 0;
    }
    if (memcmp(a->ps.x, b->ps.x, a->ps.total * sizeof(float))) { snprintf(msg, 512, "weights differ"); return 0; }
    ar_rng_seed(&r, 17);
    for (n = 0; n < N * a->D; n++)
        x[n] = a->levels ? (float)ar_rng_below(&r, (uint32_t)a->levels) : 0.02f + 0.96f * ar_rng_uniform(&r);
    if (ar_model_log_prob(a, x, N, la) != AR_OK || ar_model_log_prob(b, x, N, lb) != AR_OK) {
        snprintf(msg, 512, "log_prob: %s / %s", a->err, b->err);
        return 0;
    }
    if (memcmp(la, lb, sizeof la)) { snprintf(msg, 512, "log_prob differs: %.9g vs %.9g", la[0], lb[0]); return 0; }
    for (k = 0; a->made && k < a->made->cfg.n_masks; k++) {
        if (ar_made_log_prob(a, x, N, k, la) != AR_OK || ar_made_log_prob(b, x, N, k, lb) != AR_OK ||
            memcmp(la, lb, sizeof la)) {
            snprintf(msg, 512, "mask set %d: log_prob differs (masks or orderings not restored)", k);
            return 0;
        }
    }
    o.temperature = 0.8f;
    o.top_p = 0.95f;
    o.probs = pa;
    ar_rng_seed(&r, 23);
    if (ar_model_sample(a, N, &o, &r, sa) != AR_OK) { snprintf(msg, 512, "sample: %s", a->err); return 0; }
    o.probs = pb;
    ar_rng_seed(&r, 23);
    if (ar_model_sample(b, N, &o, &r, sb) != AR_OK) { snprintf(msg, 512, "sample: %s", b->err); return 0; }
    if (memcmp(sa, sb, sizeof(float) * N * a->D) || memcmp(pa, pb, sizeof(float) * N * a->D * P)) {
        snprintf(msg, 512, "samples differ from the same seed");
        return 0;
    }
    if (ar_model_save_mem(a, &ba, &na) != AR_OK || ar_model_save_mem(b, &bb, &nb) != AR_OK) {
        snprintf(msg, 512, "save_mem: %s / %s", a->err, b->err);
        goto done;
    }
    if (na != nb || memcmp(ba, bb, na)) { snprintf(msg, 512, "saving the loaded model gives other bytes"); goto done; }
    ok = 1;
done:
    ar_free(ba);
    ar_free(bb);
    return ok;
}

static void test_save_load_mem(void)
{
    int i;
    for (i = 0; i < NCFG; i++) {
        ar_model a, b;
        float s;
        ar_model_cfg c = cfg_of(i, &s);
        unsigned char *buf = NULL;
        size_t len = 0;
        char msg[512];
        int ok;
        CHECK(ar_model_init(&a, &c) == AR_OK);
        randomize(&a, 31, s);
        if (a.made && a.made->cfg.n_masks > 1) CHECK(ar_made_set_mask(&a, 1) == AR_OK);
        strcpy(a.err, "stale");
        CHECK_MSG(ar_model_save_mem(&a, &buf, &len) == AR_OK && buf && len > 8, "%s: %s", cfg_name[i], a.err);
        CHECK_MSG(a.err[0] == 0, "%s: save_mem left err '%s'", cfg_name[i], a.err);
        memset(&b, 0x5A, sizeof b); /* load treats its struct as output only */
        CHECK_MSG(ar_model_load_mem(&b, buf, len) == AR_OK, "%s: %s", cfg_name[i], b.err);
        CHECK(b.err[0] == 0);
        ar_free(buf);
        ok = same_model(&a, &b, msg);
        ar_model_free(&a);
        ar_model_free(&b);
        CHECK_MSG(ok, "%s: %s", cfg_name[i], msg);
    }
}

static void test_save_load_file(void)
{
    int i;
    for (i = 0; i < NCFG; i++) {
        ar_model a, b;
        float s;
        ar_model_cfg c = cfg_of(i, &s);
        char path[128], msg[512];
        FILE *fp;
        int ok;
        snprintf(path, sizeof path, "/tmp/ar_test_model_%s.safetensors", cfg_name[i]);
        CHECK(ar_model_init(&a, &c) == AR_OK);
        randomize(&a, 37, s);
        strcpy(a.err, "stale");
        CHECK_MSG(ar_model_save(&a, path) == AR_OK && a.err[0] == 0, "%s: %s", cfg_name[i], a.err);
        fp = fopen(path, "rb");
        CHECK_MSG(fp != NULL, "%s: no file", path);
        fclose(fp);
        memset(&b, 0xFF, sizeof b);
        CHECK_MSG(ar_model_load(&b, path) == AR_OK && b.err[0] == 0, "%s: %s", cfg_name[i], b.err);
        remove(path);
        ok = same_model(&a, &b, msg);
        ar_model_free(&a);
        ar_model_free(&b);
        CHECK_MSG(ok, "%s: %s", cfg_name[i], msg);
    }
}

static int patch(unsigned char *buf, size_t len, const char *key, const char *from, const char *to);

/* MADE's masks and orderings are stored, not rebuilt from the seed: a
   file whose seed was edited loads as the same model. */
static void test_made_checkpoint_self_contained(void)
{
    int i;
    for (i = C_MADE; i <= C_MADE_ORD; i++) {
        ar_model a, b;
        float s, x[40 * MAXD], la[40], lb[40];
        ar_model_cfg c = cfg_of(i, &s);
        unsigned char *buf = NULL;
        size_t len = 0;
        char from[32], to[32];
        int k, n;
        CHECK(ar_model_init(&a, &c) == AR_OK);
        randomize(&a, 59, s);
        CHECK(ar_model_save_mem(&a, &buf, &len) == AR_OK);
        snprintf(from, sizeof from, "\"%d\"", (int)c.seed);
        snprintf(to, sizeof to, "\"%d\"", (int)c.seed + 50); /* same length */
        CHECK(strlen(from) == strlen(to));
        CHECK_MSG(patch(buf, len, "\"seed\"", from, to), "%s: no seed in the metadata", cfg_name[i]);
        CHECK_MSG(ar_model_load_mem(&b, buf, len) == AR_OK, "%s: %s", cfg_name[i], b.err);
        CHECK(b.cfg.seed == c.seed + 50);
        for (n = 0; n < 40 * a.D; n++) x[n] = (float)((n * 7 + n / 5) % 2);
        for (k = 0; k < a.made->cfg.n_masks; k++) {
            CHECK(ar_made_log_prob(&a, x, 40, k, la) == AR_OK && ar_made_log_prob(&b, x, 40, k, lb) == AR_OK);
            CHECK_MSG(memcmp(la, lb, sizeof la) == 0, "%s: mask set %d changed with the seed", cfg_name[i], k);
            CHECK(memcmp(a.made->orders, b.made->orders, sizeof(int) * (size_t)a.D * a.made->cfg.n_masks) == 0);
        }
        ar_free(buf);
        ar_model_free(&a);
        ar_model_free(&b);
    }
}

/* ==== model/contract ========================================================================= */

/* What a failed call must leave as it was: the model's log_prob on a fixed
   batch (bitwise), MADE's current mask set. */
typedef struct {
    float x[4 * MAXD];
    float lp[4];
    int cur;
} snap;

static void good_batch(const ar_model *m, float *x, int N)
{
    int n;
    for (n = 0; n < N * m->D; n++) x[n] = m->levels ? (float)((n * 7 + 3) % m->levels) : 0.1f + 0.8f * (float)(n % 5) / 4;
}

static int snap_take(ar_model *m, snap *s)
{
    good_batch(m, s->x, 4);
    s->cur = m->made ? m->made->cur : 0;
    return ar_model_log_prob(m, s->x, 4, s->lp) == AR_OK;
}

static int snap_same(ar_model *m, const snap *s)
{
    float lp[4];
    if (m->made && m->made->cur != s->cur) return 0;
    return ar_model_log_prob(m, s->x, 4, lp) == AR_OK && memcmp(lp, s->lp, sizeof lp) == 0 && m->err[0] == 0;
}

/* Checks one failed call: the status, a message, the model unchanged (which
   also checks that the next successful call clears the message). */
#define FAILED(call, want, m, sn)                                                                                 \
    do {                                                                                                          \
        ar_status st__;                                                                                           \
        (m)->err[0] = 0;                                                                                          \
        st__ = (call);                                                                                            \
        CHECK_MSG(st__ == (want), "%s: %s gave %s, want %s (%s)", cfg_name[i], #call, ar_status_str(st__),       \
                  ar_status_str(want), (m)->err);                                                                 \
        CHECK_MSG((m)->err[0] != 0, "%s: %s failed with no message", cfg_name[i], #call);                         \
        CHECK_MSG(snap_same(m, sn), "%s: %s changed the model or did not clear err", cfg_name[i], #call);          \
    } while (0)

/* Bad pointers and sizes, for every call of the interface and every family. */
static void test_contract_args(void)
{
    int i;
    for (i = 0; i < NCFG; i++) {
        ar_model m;
        ar_graph g;
        snap sn;
        float s, x[4 * MAXD], out[4], keep[4 * MAXD];
        unsigned char *buf = NULL;
        size_t len = 0;
        ar_rng r, r0;
        ar_sample_opts o = ar_sample_defaults();
        ar_model_cfg c = cfg_of(i, &s);
        CHECK(ar_model_init(&m, &c) == AR_OK);
        randomize(&m, 41, s);
        CHECK(snap_take(&m, &sn));
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        good_batch(&m, x, 4);
        ar_rng_seed(&r, 1);
        r0 = r;
        out[0] = out[1] = out[2] = out[3] = 12345.0f;
        FAILED(ar_model_log_prob(&m, x, 0, out), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_log_prob(&m, x, -3, out), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_log_prob(&m, NULL, 4, out), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_log_prob(&m, x, 4, NULL), AR_ERR_ARG, &m, &sn);
        CHECK(out[0] == 12345.0f);
        memcpy(keep, x, sizeof x);
        FAILED(ar_model_sample(&m, 0, &o, &r, x), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_sample(&m, -1, &o, &r, x), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_sample(&m, 4, &o, NULL, x), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_sample(&m, 4, &o, &r, NULL), AR_ERR_ARG, &m, &sn);
        o.known = (const unsigned char *)"\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1";
        FAILED(ar_model_sample(&m, 4, &o, &r, x), AR_ERR_ARG, &m, &sn); /* known without given */
        o.known = NULL;
        CHECK_MSG(memcmp(keep, x, sizeof x) == 0 && memcmp(&r, &r0, sizeof r) == 0,
                  "%s: a failed sample wrote its output or advanced the rng", cfg_name[i]);
        {   /* N above the documented 2^20 (the buffer is big enough, so a missing check cannot corrupt memory) */
            float *big = (float *)malloc(((size_t)(1 << 20) + 1) * m.D * sizeof(float));
            CHECK(big != NULL);
            big[0] = -3;
            m.err[0] = 0;
            CHECK_MSG(ar_model_sample(&m, (1 << 20) + 1, &o, &r, big) == AR_ERR_ARG && m.err[0] && big[0] == -3,
                      "%s: N = 2^20 + 1 accepted", cfg_name[i]);
            free(big);
            CHECK(snap_same(&m, &sn) && memcmp(&r, &r0, sizeof r) == 0);
        }
        FAILED(ar_model_init_bias(&m, x, 0), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_init_bias(&m, NULL, 4), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_save_mem(&m, NULL, &len), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_save_mem(&m, &buf, NULL), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_save(&m, NULL), AR_ERR_ARG, &m, &sn);
        FAILED(ar_model_save(&m, "/nonexistent-dir/ar_test_model.safetensors"), AR_ERR_IO, &m, &sn);
        /* nll: NULL, the message in m and on the graph, the graph failed */
        {
            ar_tensor *t;
            m.err[0] = 0;
            ar_graph_reset(&g);
            t = ar_model_nll(&m, &g, x, 0, NULL);
            CHECK_MSG(!t && m.err[0] && g.status == AR_ERR_ARG && strcmp(g.err, m.err) == 0,
                      "%s: nll N = 0: status %d, m.err '%s', g.err '%s'", cfg_name[i], (int)g.status, m.err, g.err);
            CHECK(snap_same(&m, &sn));
            ar_graph_reset(&g);
            t = ar_model_nll(&m, &g, NULL, 2, &r);
            CHECK_MSG(!t && m.err[0] && g.status == AR_ERR_ARG, "%s: nll x NULL", cfg_name[i]);
            CHECK(snap_same(&m, &sn) && memcmp(&r, &r0, sizeof r) == 0);
            m.err[0] = 0;
            CHECK_MSG(ar_model_nll(&m, NULL, x, 2, NULL) == NULL && m.err[0], "%s: nll on a NULL graph", cfg_name[i]);
            CHECK(snap_same(&m, &sn));
            /* a sticky graph: nll on a failed graph returns NULL and keeps the first message */
            ar_graph_reset(&g);
            CHECK(ar_slice(&g, ar_input(&g, x, 1, (int[]){2}), 3, 0, 1) == NULL && g.status != AR_OK);
            {
                char first[AR_ERR_LEN];
                memcpy(first, g.err, sizeof first);
                CHECK(ar_model_nll(&m, &g, x, 2, NULL) == NULL && strcmp(first, g.err) == 0);
            }
            ar_graph_reset(&g);
            m.err[0] = 'x'; m.err[1] = 0;
            CHECK_MSG(ar_model_nll(&m, &g, x, 2, NULL) && m.err[0] == 0, "%s: a successful nll left err '%s'",
                      cfg_name[i], m.err);
        }
        /* family calls on the wrong family, out-of-range arguments */
        if (!m.made) {
            FAILED(ar_made_set_mask(&m, 0), AR_ERR_ARG, &m, &sn);
            FAILED(ar_made_log_prob(&m, x, 4, 0, out), AR_ERR_ARG, &m, &sn);
        } else {
            FAILED(ar_made_set_mask(&m, m.made->cfg.n_masks), AR_ERR_ARG, &m, &sn);
            FAILED(ar_made_set_mask(&m, -1), AR_ERR_ARG, &m, &sn);
            FAILED(ar_made_log_prob(&m, x, 4, m.made->cfg.n_masks, out), AR_ERR_ARG, &m, &sn);
            FAILED(ar_made_log_prob(&m, x, 4, -2, out), AR_ERR_ARG, &m, &sn);
            FAILED(ar_made_log_prob(&m, x, 4, 0, NULL), AR_ERR_ARG, &m, &sn);
        }
        if (!m.tfm) {
            ar_tfm_cache tc;
            memset(&tc, 0, sizeof tc);
            FAILED(ar_tfm_cache_init(&tc, &m, 1), AR_ERR_ARG, &m, &sn);
            ar_tfm_cache_free(&tc);
        }
        if (!m.cnn) {
            ar_graph_reset(&g);
            m.err[0] = 0;
            CHECK_MSG(ar_cnn_logits(&m, &g, x, 1) == NULL && m.err[0], "%s: cnn_logits on a non-CNN", cfg_name[i]);
        }
        /* NULL models: AR_ERR_ARG alone */
        CHECK(ar_model_log_prob(NULL, x, 1, out) == AR_ERR_ARG);
        CHECK(ar_model_sample(NULL, 1, &o, &r, x) == AR_ERR_ARG);
        CHECK(ar_model_save_mem(NULL, &buf, &len) == AR_ERR_ARG);
        CHECK(ar_model_save(NULL, "/tmp/ar_test_model_null") == AR_ERR_ARG);
        CHECK(ar_model_init_bias(NULL, x, 1) == AR_ERR_ARG);
        CHECK(ar_model_init(NULL, &c) == AR_ERR_ARG);
        CHECK(ar_model_load(NULL, "/tmp/ar_test_model_null") == AR_ERR_ARG);
        CHECK(ar_model_load_mem(NULL, (const unsigned char *)"x", 1) == AR_ERR_ARG);
        ar_model_free(NULL);
        /* and init_bias works on every family, clearing err */
        strcpy(m.err, "stale");
        good_batch(&m, x, 4);
        CHECK_MSG(ar_model_init_bias(&m, x, 4) == AR_OK && m.err[0] == 0, "%s: init_bias: %s", cfg_name[i], m.err);
        CHECK(ar_model_log_prob(&m, x, 4, out) == AR_OK && isfinite(out[0]) && isfinite(out[3]));
        ar_graph_free(&g);
        ar_model_free(&m);
    }
}

/* Sampler options out of range: AR_ERR_ARG, nothing drawn, nothing changed. */
static void test_contract_options(void)
{
    static const float bad_T[] = {NAN, INFINITY, -INFINITY, -1.0f, -1e-30f};
    static const float bad_p[] = {NAN, -0.1f, 1.5f, INFINITY, -INFINITY};
    int i, j;
    for (i = 0; i < NCFG; i++) {
        ar_model m;
        snap sn;
        float s, x[4 * MAXD], keep[4 * MAXD];
        ar_rng r, r0;
        ar_sample_opts o;
        ar_model_cfg c = cfg_of(i, &s);
        CHECK(ar_model_init(&m, &c) == AR_OK);
        randomize(&m, 43, s);
        CHECK(snap_take(&m, &sn));
        ar_rng_seed(&r, 2);
        r0 = r;
        for (j = 0; j < 4 * MAXD; j++) x[j] = keep[j] = -77.0f;
        for (j = 0; j < (int)(sizeof bad_T / sizeof bad_T[0]); j++) {
            o = ar_sample_defaults();
            o.temperature = bad_T[j];
            FAILED(ar_model_sample(&m, 4, &o, &r, x), AR_ERR_ARG, &m, &sn);
        }
        for (j = 0; j < (int)(sizeof bad_p / sizeof bad_p[0]); j++) {
            o = ar_sample_defaults();
            o.top_p = bad_p[j];
            FAILED(ar_model_sample(&m, 4, &o, &r, x), AR_ERR_ARG, &m, &sn);
        }
        o = ar_sample_defaults();
        o.top_k = -1;
        FAILED(ar_model_sample(&m, 4, &o, &r, x), AR_ERR_ARG, &m, &sn);
        o.top_k = INT_MIN;
        FAILED(ar_model_sample(&m, 4, &o, &r, x), AR_ERR_ARG, &m, &sn);
        o.top_k = 0;
        o.naive = 2; /* a flag: 0 or 1 */
        FAILED(ar_model_sample(&m, 4, &o, &r, x), AR_ERR_ARG, &m, &sn);
        o.naive = -1;
        FAILED(ar_model_sample(&m, 4, &o, &r, x), AR_ERR_ARG, &m, &sn);
        CHECK_MSG(memcmp(keep, x, sizeof x) == 0 && memcmp(&r, &r0, sizeof r) == 0,
                  "%s: a rejected option wrote the output or advanced the rng", cfg_name[i]);
        /* the edges that are fine: top_p 0 and 1 (all values), top_k above the levels, temperature 0 */
        o = ar_sample_defaults();
        o.top_p = 1; o.top_k = 1000;
        CHECK_MSG(ar_model_sample(&m, 4, &o, &r, x) == AR_OK && m.err[0] == 0, "%s: %s", cfg_name[i], m.err);
        o.top_p = 0; o.top_k = 0; o.temperature = 0;
        CHECK_MSG(ar_model_sample(&m, 4, &o, &r, x) == AR_OK && m.err[0] == 0, "%s: %s", cfg_name[i], m.err);
        ar_model_free(&m);
    }
}

/* Values outside the data's domain, in every call that reads data. */
static int bad_values(const ar_model *m, float *v, ar_status *want)
{
    int n = 0;
    if (m->levels == 0) {
        if (m->cfg.nade.transform == AR_TRANSFORM_LOGIT) {
            v[n] = 1.5f; want[n++] = AR_ERR_RANGE;
            v[n] = -0.25f; want[n++] = AR_ERR_RANGE;
        }
    } else {
        v[n] = (float)m->levels; want[n++] = AR_ERR_RANGE;
        v[n] = -1; want[n++] = AR_ERR_RANGE;
        v[n] = 0.5f; want[n++] = AR_ERR_RANGE;
        v[n] = 1e9f; want[n++] = AR_ERR_RANGE;
    }
    v[n] = NAN; want[n++] = AR_ERR_NUMERIC;
    v[n] = INFINITY; want[n++] = AR_ERR_NUMERIC;
    v[n] = -INFINITY; want[n++] = AR_ERR_NUMERIC;
    return n;
}

static void test_contract_data(void)
{
    int i, j, nb;
    for (i = 0; i < NCFG; i++) {
        ar_model m;
        ar_graph g;
        snap sn;
        float s, x[3 * MAXD], xs[3 * MAXD], keep[3 * MAXD], out[3], v[8];
        unsigned char known[3 * MAXD];
        ar_status want[8];
        ar_rng r, r0;
        ar_sample_opts o = ar_sample_defaults();
        ar_model_cfg c = cfg_of(i, &s);
        CHECK(ar_model_init(&m, &c) == AR_OK);
        randomize(&m, 47, s);
        CHECK(snap_take(&m, &sn));
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        nb = bad_values(&m, v, want);
        ar_rng_seed(&r, 9);
        r0 = r;
        for (j = 0; j < nb; j++) {
            int at = m.D + m.D - 1; /* example 1, the last dimension */
            ar_tensor *t;
            good_batch(&m, x, 3);
            x[at] = v[j];
            out[0] = out[1] = out[2] = -5.0f;
            FAILED(ar_model_log_prob(&m, x, 3, out), want[j], &m, &sn);
            CHECK_MSG(out[0] == -5.0f && out[1] == -5.0f && out[2] == -5.0f, "%s: failed log_prob wrote out",
                      cfg_name[i]);
            FAILED(ar_model_init_bias(&m, x, 3), want[j], &m, &sn);
            /* given values are data where known is set */
            memset(known, 0, sizeof known);
            known[at] = 1;
            o.given = x;
            o.known = known;
            for (at = 0; at < 3 * MAXD; at++) xs[at] = keep[at] = 99.0f;
            FAILED(ar_model_sample(&m, 3, &o, &r, xs), want[j], &m, &sn);
            CHECK_MSG(memcmp(xs, keep, sizeof xs) == 0 && memcmp(&r, &r0, sizeof r) == 0,
                      "%s: failed sample wrote its output or advanced the rng", cfg_name[i]);
            if (m.made) CHECK(ar_made_log_prob(&m, x, 3, 0, out) == want[j] && m.err[0]);
            ar_graph_reset(&g);
            m.err[0] = 0;
            t = ar_model_nll(&m, &g, x, 3, &r);
            CHECK_MSG(!t && m.err[0] && g.status == want[j], "%s: nll on value %g: graph status %d, '%s'",
                      cfg_name[i], v[j], (int)g.status, m.err);
            CHECK_MSG(snap_same(&m, &sn) && memcmp(&r, &r0, sizeof r) == 0, "%s: failed nll changed something",
                      cfg_name[i]);
            /* the same value where known is 0 is not read */
            known[m.D + m.D - 1] = 0;
            known[0] = 1;
            x[0] = m.levels ? 1.0f : 0.5f;
            CHECK_MSG(ar_model_sample(&m, 3, &o, &r, xs) == AR_OK && xs[0] == x[0], "%s: %s", cfg_name[i], m.err);
            r0 = r;
            o.given = NULL;
            o.known = NULL;
        }
        ar_graph_free(&g);
        ar_model_free(&m);
    }
}

/* Completion keeps every known value, wherever it is (not only a prefix),
   for every family, the order-agnostic mixture included. */
static void test_contract_given(void)
{
    enum { N = 50 };
    int i, j;
    for (i = 0; i < NCFG; i++) {
        ar_model m;
        float s, x[N * MAXD], gv[N * MAXD];
        unsigned char kn[N * MAXD];
        ar_rng r;
        ar_sample_opts o = ar_sample_defaults();
        ar_model_cfg c = cfg_of(i, &s);
        CHECK(ar_model_init(&m, &c) == AR_OK);
        randomize(&m, 53, s);
        ar_rng_seed(&r, 10);
        for (j = 0; j < N * m.D; j++) {
            kn[j] = (unsigned char)(ar_rng_below(&r, 3) == 0);
            gv[j] = m.levels ? (float)ar_rng_below(&r, (uint32_t)m.levels) : 0.05f + 0.9f * ar_rng_uniform(&r);
        }
        o.given = gv;
        o.known = kn;
        o.naive = has_naive(&m);
        CHECK_MSG(ar_model_sample(&m, N, &o, &r, x) == AR_OK, "%s: %s", cfg_name[i], m.err);
        for (j = 0; j < N * m.D; j++)
            CHECK_MSG(!kn[j] || x[j] == gv[j], "%s: known value %d is %g, given %g", cfg_name[i], j, x[j], gv[j]);
        ar_model_free(&m);
    }
}

/* Structs full of garbage in, zero-filled and freed models at every call. */
static void test_contract_structs(void)
{
    int i;
    for (i = 0; i < NCFG; i++) {
        ar_model m, z;
        ar_graph g;
        float s, x[2 * MAXD], out[2];
        unsigned char *buf = NULL;
        size_t len = 0;
        ar_rng r;
        ar_sample_opts o = ar_sample_defaults();
        ar_tfm_cache tc;
        ar_model_cfg c = cfg_of(i, &s);
        char path[128];
        int pass;
        snprintf(path, sizeof path, "/tmp/ar_test_model_g_%s.safetensors", cfg_name[i]);
        ar_rng_seed(&r, 1);
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        memset(&m, 0xC3, sizeof m);
        CHECK_MSG(ar_model_init(&m, &c) == AR_OK && m.err[0] == 0, "%s: init over garbage: %s", cfg_name[i], m.err);
        CHECK(ar_model_save_mem(&m, &buf, &len) == AR_OK);
        CHECK(ar_model_save(&m, path) == AR_OK);
        ar_model_free(&m);
        ar_model_free(&m); /* freed twice */
        memset(&m, 0xC3, sizeof m);
        CHECK_MSG(ar_model_load_mem(&m, buf, len) == AR_OK, "%s: load_mem over garbage: %s", cfg_name[i], m.err);
        ar_model_free(&m);
        memset(&m, 0x7F, sizeof m);
        CHECK_MSG(ar_model_load(&m, path) == AR_OK, "%s: load over garbage: %s", cfg_name[i], m.err);
        ar_model_free(&m);
        remove(path);
        /* a failed init over garbage holds no model, has a message, and frees */
        memset(&m, 0xC3, sizeof m);
        c.rows = 0;
        CHECK_MSG(ar_model_init(&m, &c) == AR_ERR_ARG && m.err[0] && m.ps.x == NULL, "%s: rows 0", cfg_name[i]);
        ar_model_free(&m);
        ar_model_free(&m);
        /* a failed load over garbage too */
        memset(&m, 0xC3, sizeof m);
        CHECK_MSG(ar_model_load_mem(&m, buf, len / 2) == AR_ERR_FORMAT && m.err[0] && m.ps.x == NULL,
                  "%s: truncated load: %s", cfg_name[i], m.err);
        ar_model_free(&m);
        ar_free(buf);
        /* zero-filled and freed models: every call AR_ERR_ARG with a message */
        c = cfg_of(i, &s);
        for (pass = 0; pass < 2; pass++) {
            const char *st = pass ? "freed" : "zero-filled";
            memset(&z, 0, sizeof z);
            if (pass) {
                CHECK(ar_model_init(&z, &c) == AR_OK);
                ar_model_free(&z);
            }
            memset(x, 0, sizeof x);
            z.err[0] = 0;
            CHECK_MSG(ar_model_log_prob(&z, x, 1, out) == AR_ERR_ARG && z.err[0], "%s %s: log_prob", cfg_name[i], st);
            z.err[0] = 0;
            CHECK_MSG(ar_model_sample(&z, 1, &o, &r, x) == AR_ERR_ARG && z.err[0], "%s %s: sample", cfg_name[i], st);
            z.err[0] = 0;
            ar_graph_reset(&g);
            CHECK_MSG(ar_model_nll(&z, &g, x, 1, NULL) == NULL && z.err[0] && g.status == AR_ERR_ARG, "%s %s: nll",
                      cfg_name[i], st);
            z.err[0] = 0;
            buf = NULL;
            CHECK_MSG(ar_model_save_mem(&z, &buf, &len) == AR_ERR_ARG && z.err[0] && !buf, "%s %s: save_mem",
                      cfg_name[i], st);
            z.err[0] = 0;
            CHECK_MSG(ar_model_save(&z, "/tmp/ar_test_model_zero.safetensors") == AR_ERR_ARG && z.err[0],
                      "%s %s: save", cfg_name[i], st);
            z.err[0] = 0;
            CHECK_MSG(ar_model_init_bias(&z, x, 1) == AR_ERR_ARG && z.err[0], "%s %s: init_bias", cfg_name[i], st);
            z.err[0] = 0;
            CHECK_MSG(ar_made_set_mask(&z, 0) == AR_ERR_ARG && z.err[0], "%s %s: made_set_mask", cfg_name[i], st);
            z.err[0] = 0;
            CHECK_MSG(ar_made_log_prob(&z, x, 1, 0, out) == AR_ERR_ARG && z.err[0], "%s %s: made_log_prob",
                      cfg_name[i], st);
            z.err[0] = 0;
            memset(&tc, 0, sizeof tc);
            CHECK_MSG(ar_tfm_cache_init(&tc, &z, 1) == AR_ERR_ARG && z.err[0], "%s %s: tfm_cache_init", cfg_name[i],
                      st);
            ar_tfm_cache_free(&tc);
            CHECK(ar_cnn_receptive_field(&z) == 0);
            ar_model_free(&z);
        }
        ar_graph_free(&g);
    }
    {
        ar_tfm_cache tc;
        memset(&tc, 0, sizeof tc);
        ar_tfm_cache_free(&tc);
        ar_tfm_cache_free(&tc);
        ar_tfm_cache_free(NULL);
    }
}

/* Configs init must refuse, each with AR_ERR_ARG and a message. */
static void test_contract_init_cfg(void)
{
    static const int dup[6] = {0, 1, 2, 2, 4, 5}, out_of[6] = {0, 1, 2, 3, 4, 6};
    ar_model_cfg bad[24];
    const char *what[24];
    int n = 0, j;
    float s;
#define BAD(i, stmt, w) do { bad[n] = cfg_of(i, &s); stmt; what[n++] = w; } while (0)
    BAD(C_MADE, bad[n].rows = 0, "rows 0");
    BAD(C_MADE, bad[n].cols = -2, "cols -2");
    BAD(C_MADE, bad[n].kind = (ar_kind)99, "kind 99");
    BAD(C_MADE, bad[n].kind = (ar_kind)-1, "kind -1");
    BAD(C_MADE, bad[n].order = dup, "order with a duplicate");
    BAD(C_MADE, bad[n].order = out_of, "order out of range");
    BAD(C_MADE, bad[n].made.n_masks = 0, "n_masks 0");
    BAD(C_MADE, bad[n].made.n_hidden = AR_MADE_MAX_HIDDEN + 1, "n_hidden too many");
    BAD(C_MADE, bad[n].made.hidden[1] = 0, "hidden 0");
    BAD(C_MADE, bad[n].made.direct = 2, "direct 2");
    BAD(C_NADE, bad[n].nade.H = 0, "H 0");
    BAD(C_RNADE_LOGIT, bad[n].nade.K = 0, "RNADE K 0");
    BAD(C_RNADE_LOGIT, bad[n].nade.K = AR_NADE_MAX_K + 1, "RNADE K too many");
    BAD(C_RNADE_LOGIT, bad[n].nade.transform = 7, "transform 7");
    BAD(C_TFM_ROPE, bad[n].tfm.heads = 3, "d not a multiple of heads");
    BAD(C_TFM_ROPE, bad[n].tfm.V = 0, "V 0");
    BAD(C_TFM_ROPE, bad[n].tfm.layers = AR_TFM_MAX_LAYERS + 1, "layers too many");
    BAD(C_TFM_ROPE, bad[n].tfm.pos = 5, "pos 5");
    BAD(C_PIXELCNN, bad[n].order = ord9, "an order for a CNN");
    BAD(C_PIXELCNN, bad[n].cnn.kernel = 4, "even kernel");
    BAD(C_PIXELCNN, bad[n].cnn.levels = 0, "levels 0");
    BAD(C_GATED, bad[n].cnn.channels = 0, "channels 0");
    BAD(C_WAVENET, bad[n].cnn.dilations = 0, "dilations 0");
    BAD(C_WAVENET, bad[n].cnn.layers = AR_CNN_MAX_LAYERS, "layers too many");
#undef BAD
    for (j = 0; j < n; j++) {
        ar_model m;
        ar_status st;
        memset(&m, 0xE1, sizeof m);
        st = ar_model_init(&m, &bad[j]);
        CHECK_MSG(st == AR_ERR_ARG && m.err[0] && m.ps.x == NULL, "%s: init gave %s, err '%s'", what[j],
                  ar_status_str(st), m.err);
        ar_model_free(&m);
    }
    {
        ar_model m;
        memset(&m, 0xE1, sizeof m);
        CHECK(ar_model_init(&m, NULL) == AR_ERR_ARG && m.err[0]);
        ar_model_free(&m);
    }
}

/* Replaces the first occurrence of `from` after `key` in buf (same length). */
static int patch(unsigned char *buf, size_t len, const char *key, const char *from, const char *to)
{
    size_t i, kl = strlen(key), fl = strlen(from);
    for (i = 0; i + kl <= len; i++)
        if (memcmp(buf + i, key, kl) == 0) break;
    for (i += kl; i + fl <= len; i++)
        if (memcmp(buf + i, from, fl) == 0) { memcpy(buf + i, to, fl); return 1; }
    return 0;
}

/* Files: missing, truncated, another version, another kind. */
static void test_contract_load(void)
{
    static const char *const bad_versions[] = {"9.5.0", "0.9.0", "x.y.z", "0.3.9", "1.5.0"};
    int i, j;
    char ver[32];
    snprintf(ver, sizeof ver, "%d.%d.%d", AR_VERSION_MAJOR, AR_VERSION_MINOR, AR_VERSION_PATCH);
    CHECK(strcmp(ver, ar_version()) == 0 && strlen(ver) == 5);
    for (i = 0; i < NCFG; i++) {
        ar_model m, b;
        float s;
        ar_model_cfg c = cfg_of(i, &s);
        unsigned char *buf = NULL, *cp;
        size_t len = 0, cut;
        ar_status st;
        CHECK(ar_model_init(&m, &c) == AR_OK);
        CHECK(ar_model_save_mem(&m, &buf, &len) == AR_OK);
        cp = (unsigned char *)malloc(len);
        memset(&b, 0, sizeof b);
        st = ar_model_load(&b, "/nonexistent-dir/none.safetensors");
        CHECK_MSG(st == AR_ERR_IO && b.err[0] && !b.ps.x, "%s: missing file: %s", cfg_name[i], ar_status_str(st));
        st = ar_model_load(&b, NULL);
        CHECK_MSG(st == AR_ERR_ARG && b.err[0], "%s: NULL path", cfg_name[i]);
        st = ar_model_load_mem(&b, NULL, 10);
        CHECK_MSG(st == AR_ERR_ARG && b.err[0], "%s: NULL buffer", cfg_name[i]);
        for (cut = 0; cut < len; cut += cut < 16 ? 1 : len / 7) {
            st = ar_model_load_mem(&b, buf, cut);
            CHECK_MSG(st != AR_OK && b.err[0] && !b.ps.x, "%s: %zu of %zu bytes loaded", cfg_name[i], cut, len);
            CHECK_MSG(cut == 0 || st == AR_ERR_FORMAT, "%s: %zu of %zu bytes: %s", cfg_name[i], cut, len,
                      ar_status_str(st));
        }
        for (j = 0; j < (int)(sizeof bad_versions / sizeof bad_versions[0]); j++) {
            memcpy(cp, buf, len);
            CHECK_MSG(patch(cp, len, "ar.version", ver, bad_versions[j]), "%s: no ar.version in the file", cfg_name[i]);
            st = ar_model_load_mem(&b, cp, len);
            CHECK_MSG(st == AR_ERR_VERSION && b.err[0] && !b.ps.x, "%s: version %s: %s (%s)", cfg_name[i],
                      bad_versions[j], ar_status_str(st), b.err);
        }
        /* an older patch release of this minor, and an older minor >= 4, are fine for the version rule */
        memcpy(cp, buf, len);
        CHECK(patch(cp, len, "ar.version", ver, "0.5.7"));
        st = ar_model_load_mem(&b, cp, len);
        CHECK_MSG(st == AR_OK, "%s: version 0.5.7: %s", cfg_name[i], b.err);
        ar_model_free(&b);
        /* an unknown kind */
        memcpy(cp, buf, len);
        {
            const char *kn = ar_kind_name(m.kind);
            char z[32];
            size_t k;
            for (k = 0; k < strlen(kn) && k < sizeof z - 1; k++) z[k] = 'z';
            z[k] = 0;
            CHECK(patch(cp, len, "ar.model", kn, z));
        }
        st = ar_model_load_mem(&b, cp, len);
        CHECK_MSG(st == AR_ERR_FORMAT && b.err[0] && !b.ps.x, "%s: unknown kind: %s", cfg_name[i], ar_status_str(st));
        free(cp);
        ar_free(buf);
        ar_model_free(&m);
    }
}

/* A KV cache records what it was made for: another model's cache is
   AR_ERR_ARG, never a buffer overflow; a full cache (positions other than
   rotary) is AR_ERR_RANGE. */
static void test_contract_cache(void)
{
    ar_model a, b;
    ar_tfm_cache ca;
    float s, logits[2 * 8];
    int tok[2] = {0, 1}, t;
    ar_model_cfg c = cfg_of(C_TFM_ROPE, &s), c2 = cfg_of(C_TFM_LEARNED, &s);
    c2.tfm.d = 16; c2.tfm.layers = 3; c2.cols = 8; c2.order = NULL;
    CHECK(ar_model_init(&a, &c) == AR_OK && ar_model_init(&b, &c2) == AR_OK);
    CHECK(ar_tfm_cache_init(&ca, &a, 2) == AR_OK && a.err[0] == 0);
    b.err[0] = 0;
    CHECK_MSG(ar_tfm_step(&b, &ca, NULL, logits) == AR_ERR_ARG && b.err[0], "another model's cache: %s", b.err);
    CHECK(ar_tfm_step(&a, &ca, NULL, logits) == AR_OK);
    CHECK_MSG(ar_tfm_step(&b, &ca, tok, logits) == AR_ERR_ARG && b.err[0], "another model's cache: %s", b.err);
    CHECK(ca.len == 1);
    tok[1] = 3; /* V = 3 */
    a.err[0] = 0;
    CHECK_MSG(ar_tfm_step(&a, &ca, tok, logits) == AR_ERR_RANGE && a.err[0] && ca.len == 1, "token 3: %s", a.err);
    tok[1] = 2;
    CHECK(ar_tfm_step(&a, &ca, NULL, logits) == AR_ERR_ARG && ca.len == 1); /* tokens needed after step 0 */
    CHECK(ar_tfm_step(&a, &ca, tok, NULL) == AR_ERR_ARG && ca.len == 1);
    for (t = 1; t < a.D; t++) CHECK_MSG(ar_tfm_step(&a, &ca, tok, logits) == AR_OK, "step %d: %s", t, a.err);
    CHECK_MSG(ar_tfm_step(&a, &ca, tok, logits) == AR_OK && ca.len == a.D + 1, "rotary, past T: %s", a.err);
    ar_tfm_cache_free(&ca);
    CHECK(ar_tfm_cache_init(&ca, &b, 2) == AR_OK); /* learned positions: full at T */
    for (t = 0; t < b.D; t++) CHECK_MSG(ar_tfm_step(&b, &ca, t ? tok : NULL, logits) == AR_OK, "step %d: %s", t, b.err);
    b.err[0] = 0;
    CHECK_MSG(ar_tfm_step(&b, &ca, tok, logits) == AR_ERR_RANGE && b.err[0] && ca.len == b.D, "full cache: %s", b.err);
    ar_tfm_cache_free(&ca);
    ar_tfm_cache_free(&ca);
    a.err[0] = 0;
    CHECK(ar_tfm_step(&a, &ca, tok, logits) == AR_ERR_ARG && a.err[0]); /* a freed cache */
    memset(&ca, 0xB7, sizeof ca);
    CHECK(ar_tfm_cache_init(&ca, &a, 0) == AR_ERR_ARG && a.err[0]);
    memset(&ca, 0xB7, sizeof ca);
    CHECK(ar_tfm_cache_init(&ca, &a, -4) == AR_ERR_ARG && a.err[0]);
    memset(&ca, 0xB7, sizeof ca);
    t = ar_tfm_cache_init(&ca, &a, 1000000000);
    /* a size argument too large (ARG), one whose bytes overflow (RANGE) or no memory: any, with a message */
    CHECK_MSG(t == AR_ERR_ARG || t == AR_ERR_RANGE || t == AR_ERR_NOMEM, "B = 1e9: %s", ar_status_str((ar_status)t));
    CHECK(a.err[0]);
    /* a cache whose init failed holds nothing (so freeing it in a cleanup path is safe) */
    CHECK_MSG(ca.k == NULL && ca.v == NULL && ca.work == NULL, "a failed cache init left garbage pointers");
    ar_tfm_cache_free(&ca);
    ar_model_free(&a);
    ar_model_free(&b);
}

/* ==== core checks the old suite could not fail ====================================== */

/* AdamW vs Adam with L2, several steps with nonzero gradients, against the
   closed forms in double. AdamW: x -= lr (mhat/(sqrt(vhat)+eps) + wd x);
   L2: the moments see g + wd x. Replacing the decoupled decay by L2 moves
   AdamW's x onto the L2 column, about 0.1 away here (checked below), where
   the tolerance is 1e-5. */
static void test_adamw_decoupled(void)
{
    enum { STEPS = 6 };
    static const double g_of[STEPS][2] = {{0.5, -2}, {-0.25, 1.5}, {0.75, 0.1}, {0.3, -0.4}, {-1, 2}, {0.2, 0.05}};
    ar_optim aw = ar_optim_adamw(0.05f, 0.4f), l2 = ar_optim_adam(0.05f);
    ar_params pa, pl;
    ar_tensor *a, *b;
    double xa[2] = {2, -1.5}, xl[2] = {2, -1.5}, ma[2] = {0}, va[2] = {0}, ml[2] = {0}, vl[2] = {0};
    double lr = 0.05, wd = 0.4, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    int s, j;
    l2.weight_decay = 0.4f;
    ar_params_init(&pa);
    ar_params_init(&pl);
    a = ar_params_add(&pa, "x", 1, (int[]){2});
    b = ar_params_add(&pl, "x", 1, (int[]){2});
    CHECK(ar_params_alloc(&pa) == AR_OK && ar_params_alloc(&pl) == AR_OK);
    a->x[0] = b->x[0] = 2; a->x[1] = b->x[1] = -1.5f;
    for (s = 1; s <= STEPS; s++) {
        for (j = 0; j < 2; j++) {
            double g = g_of[s - 1][j], d = g + wd * xl[j];
            a->g[j] = b->g[j] = (float)g;
            ma[j] = b1 * ma[j] + (1 - b1) * g;
            va[j] = b2 * va[j] + (1 - b2) * g * g;
            xa[j] -= lr * ((ma[j] / (1 - pow(b1, s))) / (sqrt(va[j] / (1 - pow(b2, s))) + eps) + wd * xa[j]);
            ml[j] = b1 * ml[j] + (1 - b1) * d;
            vl[j] = b2 * vl[j] + (1 - b2) * d * d;
            xl[j] -= lr * (ml[j] / (1 - pow(b1, s))) / (sqrt(vl[j] / (1 - pow(b2, s))) + eps);
        }
        CHECK(ar_optim_step(&aw, &pa) == AR_OK && ar_optim_step(&l2, &pl) == AR_OK);
        for (j = 0; j < 2; j++) {
            CHECK_NEAR(a->x[j], xa[j], 1e-5);
            CHECK_NEAR(b->x[j], xl[j], 1e-5);
        }
    }
    /* the two rules are far apart here, so the test tells them apart */
    CHECK_MSG(fabs(xa[0] - xl[0]) > 0.05 && fabs(xa[1] - xl[1]) > 0.05, "AdamW %g %g, L2 %g %g", xa[0], xa[1], xl[0],
              xl[1]);
    CHECK_NEAR(a->x[0] - b->x[0], xa[0] - xl[0], 2e-5);
    ar_params_free(&pa);
    ar_params_free(&pl);
}

/* softmax over keys j <= q of scale * x, with the max shift, in double */
static void ref_causal_softmax(const float *x, int T, double scale, const int *rank, double *y)
{
    int q, j;
    for (q = 0; q < T; q++) {
        double m = -INFINITY, s = 0;
        for (j = 0; j < T; j++)
            if (rank ? rank[j] <= rank[q] : j <= q) m = fmax(m, scale * x[q * T + j]);
        for (j = 0; j < T; j++) {
            int in = rank ? rank[j] <= rank[q] : j <= q;
            y[q * T + j] = in ? exp(scale * x[q * T + j] - m) : 0;
            s += y[q * T + j];
        }
        for (j = 0; j < T; j++) y[q * T + j] /= s;
    }
}

/* Scores of +-200: exp overflows (or every term underflows) in float
   without the max shift, so a missing shift gives Inf/NaN rows here, where
   the old tests' small scores did not notice. */
static void test_softmax_large_scores(void)
{
    enum { T = 7 };
    static const int rank[T] = {3, 0, 6, 1, 5, 2, 4};
    float x[2 * T * T];
    double y[T * T];
    ar_graph g;
    ar_rng r;
    int i, j, pass;
    ar_rng_seed(&r, 77);
    for (i = 0; i < 2 * T * T; i++) x[i] = 400 * ar_rng_uniform(&r) - 200;
    for (i = 0; i < T * T; i++) x[T * T + i] = -200 + ar_rng_uniform(&r); /* all scores near -200 */
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (pass = 0; pass < 4; pass++) {
        ar_tensor *in, *out;
        double sc = pass & 1 ? 0.5 : 1.0;
        const int *rk = pass >= 2 ? rank : NULL;
        ar_graph_reset(&g);
        in = ar_input(&g, x, 3, (int[]){2, T, T});
        out = rk ? ar_causal_softmax_order(&g, in, (float)sc, rk) : ar_causal_softmax(&g, in, (float)sc);
        CHECK_MSG(out, "%s", g.err);
        for (i = 0; i < 2; i++) {
            ref_causal_softmax(x + i * T * T, T, sc, rk, y);
            for (j = 0; j < T * T; j++)
                CHECK_MSG(isfinite(out->x[i * T * T + j]) && fabs(out->x[i * T * T + j] - y[j]) <= 1e-5,
                          "pass %d batch %d entry %d: %g vs %g", pass, i, j, out->x[i * T * T + j], y[j]);
        }
    }
    ar_graph_free(&g);
}

/* ar_attention with q.k scores of +-200 against a double reference. */
static void test_attention_large_scores(void)
{
    enum { B = 2, n = 6, H = 2, dh = 4, d = H * dh };
    static const int rank[n] = {2, 5, 0, 3, 1, 4};
    float qkv[B * n * 3 * d];
    ar_graph g;
    ar_rng r;
    int b, h, t, j, e, pass;
    ar_rng_seed(&r, 78);
    for (b = 0; b < B; b++)
        for (t = 0; t < n; t++)
            for (e = 0; e < 3 * d; e++) {
                float *v = qkv + ((size_t)b * n + t) * 3 * d + e;
                if (e < d) *v = (b == 0 ? 1 : -1) * (10 + 5 * ar_rng_uniform(&r)); /* q */
                else if (e < 2 * d) *v = (b == 0 ? 5 : 2.5f) * ar_rng_uniform(&r) + (b == 0 ? 0 : 2.5f); /* k */
                else *v = 2 * ar_rng_uniform(&r) - 1;
            }
    /* scale 1: batch 0 scores in [0, 300] (exp overflows in float), batch 1 in [-300, -100] (every exp
       underflows: 0/0) */
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (pass = 0; pass < 2; pass++) {
        const int *rk = pass ? rank : NULL;
        ar_tensor *out;
        double maxs = 0;
        ar_graph_reset(&g);
        out = ar_attention(&g, ar_input(&g, qkv, 3, (int[]){B, n, 3 * d}), H, 1.0f, rk, 0);
        CHECK_MSG(out, "%s", g.err);
        for (b = 0; b < B; b++)
            for (h = 0; h < H; h++)
                for (t = 0; t < n; t++) {
                    double s[n], m = -INFINITY, z = 0, o[dh] = {0};
                    const float *q = qkv + ((size_t)b * n + t) * 3 * d + h * dh;
                    for (j = 0; j < n; j++) {
                        const float *k = qkv + ((size_t)b * n + j) * 3 * d + d + h * dh;
                        s[j] = 0;
                        for (e = 0; e < dh; e++) s[j] += (double)q[e] * k[e];
                        if (fabs(s[j]) > maxs) maxs = fabs(s[j]);
                        if (rk ? rk[j] <= rk[t] : j <= t) m = fmax(m, s[j]);
                    }
                    for (j = 0; j < n; j++)
                        if (rk ? rk[j] <= rk[t] : j <= t) {
                            const float *v = qkv + ((size_t)b * n + j) * 3 * d + 2 * d + h * dh;
                            double w = exp(s[j] - m);
                            z += w;
                            for (e = 0; e < dh; e++) o[e] += w * v[e];
                        }
                    for (e = 0; e < dh; e++) {
                        float got = out->x[((size_t)b * n + t) * d + h * dh + e];
                        CHECK_MSG(isfinite(got) && fabs(got - o[e] / z) <= 1e-4, "pass %d b %d h %d t %d: %g vs %g",
                                  pass, b, h, t, got, o[e] / z);
                    }
                }
        CHECK_MSG(maxs > 150, "scores reach only %g", maxs);
    }
    ar_graph_free(&g);
}

/* Layernorm of a near-constant row (variance 1e-7 against eps 1e-5):
   (x - mean) / sqrt(var + eps). With eps outside the root, (x - mean) /
   (sqrt(var) + eps), the result is about 10 times larger. */
static void test_layernorm_eps(void)
{
    enum { R = 3, C = 16 };
    float x[R * C], gain[C], bias[C];
    ar_graph g;
    ar_rng r;
    int i, j, pass;
    ar_rng_seed(&r, 79);
    for (j = 0; j < C; j++) {
        double dev = (j % 2 ? 1 : -1) * sqrt(1e-7); /* mean 0, variance exactly 1e-7 */
        x[j] = (float)dev;
        x[C + j] = (float)(1.0 + dev);                 /* the same on an offset */
        x[2 * C + j] = ar_rng_normal(&r);              /* an ordinary row */
        gain[j] = 0.5f + ar_rng_uniform(&r);
        bias[j] = ar_rng_uniform(&r) - 0.5f;
    }
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (pass = 0; pass < 2; pass++) {
        ar_tensor *out, *gt = NULL, *bt = NULL;
        ar_graph_reset(&g);
        if (pass) {
            gt = ar_input(&g, gain, 1, (int[]){C});
            bt = ar_input(&g, bias, 1, (int[]){C});
        }
        out = ar_layernorm(&g, ar_input(&g, x, 2, (int[]){R, C}), gt, bt, 1e-5f);
        CHECK_MSG(out, "%s", g.err);
        for (i = 0; i < R; i++) {
            double mu = 0, var = 0;
            for (j = 0; j < C; j++) mu += x[i * C + j];
            mu /= C;
            for (j = 0; j < C; j++) var += (x[i * C + j] - mu) * (x[i * C + j] - mu);
            var /= C;
            if (i < 2) CHECK_MSG(var > 0.8e-7 && var < 1.2e-7, "row %d variance %g", i, var);
            for (j = 0; j < C; j++) {
                double want = (x[i * C + j] - mu) / sqrt(var + 1e-5) * (pass ? gain[j] : 1) + (pass ? bias[j] : 0);
                CHECK_MSG(fabs(out->x[i * C + j] - want) <= 2e-4, "pass %d row %d col %d: %.7g vs %.7g", pass, i, j,
                          out->x[i * C + j], want);
            }
        }
    }
    ar_graph_free(&g);
}

/* softmax(logits / T), then top-k, then top-p (tcond on softmax(logits)) */
static void ref_logits(const float *l, int V, const ar_sample_opts *o, double *p)
{
    double c[MAXV], mx = -INFINITY, s = 0;
    smode sm;
    int v;
    for (v = 0; v < V; v++) mx = fmax(mx, l[v]);
    for (v = 0; v < V; v++) s += c[v] = exp(l[v] - mx);
    for (v = 0; v < V; v++) c[v] /= s;
    memset(&sm, 0, sizeof sm);
    sm.T = o->temperature; sm.top_k = o->top_k; sm.top_p = o->top_p;
    tcond(c, V, &sm, p);
}

/* ar_sample_logits: frequencies at T = 0.5, 1, 2 and with top-k / top-p
   against softmax(logits / T) restricted to exactly the right set;
   scratch[0..V) is that distribution; bad options return -1. */
static void test_sample_logits(void)
{
    enum { V = 8, N = 40000 };
    static const float lg[V] = {2.0f, -1.0f, 0.5f, 1.2f, -3.0f, 0.0f, 1.7f, -0.4f};
    static const float big[V] = {1000.0f, 999.0f, 998.5f, -1000.0f, 997.0f, 990.0f, 999.5f, 0.0f};
    struct { float T; int k; float p; const float *l; } cs[] = {
        {1, 0, 0, lg}, {0.5f, 0, 0, lg}, {2, 0, 0, lg}, {0.7f, 3, 0, lg}, {1, 0, 0.6f, lg},
        {2, 0, 0.9f, lg}, {1.5f, 4, 0.8f, lg}, {1, 0, 0, big}, {0.25f, 0, 0, big}, {1, 1, 0, lg}};
    float scratch[3 * V];
    long cnt[V];
    double p[V], chi;
    ar_rng r;
    int c, i, v, df;
    for (c = 0; c < (int)(sizeof cs / sizeof cs[0]); c++) {
        ar_sample_opts o = ar_sample_defaults();
        double pv;
        o.temperature = cs[c].T; o.top_k = cs[c].k; o.top_p = cs[c].p;
        ref_logits(cs[c].l, V, &o, p);
        memset(cnt, 0, sizeof cnt);
        ar_rng_seed(&r, 300 + (uint64_t)c);
        for (i = 0; i < N; i++) {
            int k = ar_sample_logits(cs[c].l, V, &o, &r, scratch);
            CHECK_MSG(k >= 0 && k < V, "case %d: returned %d", c, k);
            cnt[k]++;
            if (i == 0)
                for (v = 0; v < V; v++)
                    CHECK_MSG(fabs(scratch[v] - p[v]) <= 1e-5 && (p[v] > 0) == (scratch[v] > 0),
                              "case %d: scratch[%d] = %g, want %g", c, v, scratch[v], p[v]);
        }
        pv = chi2_test(p, cnt, V, N, &chi, &df);
        CHECK_MSG(pv >= P_FAIL, "case %d (T %g, top_k %d, top_p %g): chi2 %g df %d p %g (-1: a value outside the set)",
                  c, cs[c].T, cs[c].k, cs[c].p, chi, df, pv);
    }
    /* greedy: the argmax, whatever the rng */
    {
        ar_sample_opts o = ar_sample_defaults();
        o.temperature = 0;
        ar_rng_seed(&r, 1);
        for (i = 0; i < 100; i++) CHECK(ar_sample_logits(lg, V, &o, &r, scratch) == 0);
    }
    /* -inf logits are never drawn */
    {
        float l2[4] = {-INFINITY, 0.0f, -INFINITY, 0.3f};
        ar_sample_opts o = ar_sample_defaults();
        o.temperature = 3;
        ar_rng_seed(&r, 2);
        for (i = 0; i < 1000; i++) {
            int k = ar_sample_logits(l2, 4, &o, &r, scratch);
            CHECK_MSG(k == 1 || k == 3, "drew %d", k);
        }
    }
    /* bad arguments */
    {
        static const float bT[] = {NAN, INFINITY, -1.0f};
        static const float bp[] = {NAN, -0.5f, 1.01f, INFINITY};
        ar_sample_opts o;
        ar_rng r0;
        float nl[3] = {0.0f, NAN, 1.0f};
        ar_rng_seed(&r, 3);
        r0 = r;
        for (i = 0; i < 3; i++) {
            o = ar_sample_defaults();
            o.temperature = bT[i];
            CHECK_MSG(ar_sample_logits(lg, V, &o, &r, scratch) == -1, "temperature %g accepted", bT[i]);
        }
        for (i = 0; i < 4; i++) {
            o = ar_sample_defaults();
            o.top_p = bp[i];
            CHECK_MSG(ar_sample_logits(lg, V, &o, &r, scratch) == -1, "top_p %g accepted", bp[i]);
        }
        o = ar_sample_defaults();
        o.top_k = -1;
        CHECK(ar_sample_logits(lg, V, &o, &r, scratch) == -1);
        o = ar_sample_defaults();
        CHECK(ar_sample_logits(nl, 3, &o, &r, scratch) == -1);
        CHECK(ar_sample_logits(lg, 0, &o, &r, scratch) == -1);
        CHECK(ar_sample_logits(NULL, V, &o, &r, scratch) == -1);
        CHECK(ar_sample_logits(lg, V, NULL, &r, scratch) == -1);
        CHECK(ar_sample_logits(lg, V, &o, NULL, scratch) == -1);
        CHECK(ar_sample_logits(lg, V, &o, &r, NULL) == -1);
        CHECK_MSG(memcmp(&r, &r0, sizeof r) == 0, "a rejected call advanced the rng");
    }
}

void tests_model(void)
{
    t_run("model/chi2_helper", test_chi2_helper);
    t_run("model/info", test_info);
    t_run("model/normalization", test_normalization);
    t_run("model/made_mixture", test_made_mixture);
    t_run("model/log_prob_batch_independent", test_log_prob_batch_independent);
    t_run("model/autoregressive", test_autoregressive);
    t_run("model/nll_is_minus_log_prob", test_nll_matches_log_prob);
    t_run("model/rnade_normalization", test_rnade_normalization);
    t_run("model/rnade_reference", test_rnade_reference);
    t_run("model/rnade_sampling", test_rnade_sampling);
    t_run("model/rnade_greedy", test_rnade_greedy);
    t_run("model/rnade_completion", test_rnade_completion);
    t_run("model/rnade_autoregressive", test_rnade_autoregressive);
    t_run("model/sample_t1", test_sample_t1);
    t_run("model/sample_temperature", test_sample_temperature);
    t_run("model/sample_greedy_top_k1", test_sample_greedy);
    t_run("model/sample_top_k", test_sample_top_k);
    t_run("model/sample_top_p", test_sample_top_p);
    t_run("model/sample_completion", test_sample_completion);
    t_run("model/sample_probs_optional", test_sample_probs_optional);
    t_run("model/save_load_mem", test_save_load_mem);
    t_run("model/save_load_file", test_save_load_file);
    t_run("model/made_checkpoint_self_contained", test_made_checkpoint_self_contained);
    t_run("model/contract_args", test_contract_args);
    t_run("model/contract_options", test_contract_options);
    t_run("model/contract_data", test_contract_data);
    t_run("model/contract_given", test_contract_given);
    t_run("model/contract_structs", test_contract_structs);
    t_run("model/contract_init_cfg", test_contract_init_cfg);
    t_run("model/contract_load", test_contract_load);
    t_run("model/contract_cache", test_contract_cache);
    t_run("model/adamw_decoupled", test_adamw_decoupled);
    t_run("model/softmax_large_scores", test_softmax_large_scores);
    t_run("model/attention_large_scores", test_attention_large_scores);
    t_run("model/layernorm_eps", test_layernorm_eps);
    t_run("model/sample_logits", test_sample_logits);
}
