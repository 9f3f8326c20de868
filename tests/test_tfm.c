/* Transformer through ar_model: gradients, causality (natural and custom
   orders), exact normalization over all sequences, KV-cache decoding ==
   full recomputation, the KV cache's checks, the token sampler, and
   sampling: draws fed back, every sampling option and completion against
   the exact distribution worked out here from the model's conditionals.
   Also the shared helpers t_sample_rule and t_samples_match (test_cnn.c
   uses them). */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../ar.h"
#include "test.h"

/* A call that must fail with status st and a message in o.err (cleared first, so
   a stale message does not count). */
#define FAILS(call, st, o) ((o).err[0] = 0, (call) == (st) && (o).err[0])
/* The same for a call that builds on graph g: NULL, and g fails too. */
#define GFAILS(call, st, o, g) ((o).err[0] = 0, (call) == NULL && (g).status == (st) && (o).err[0] && (g).err[0])

/* ---- exact sampling distributions (also used by test_cnn.c) --------------- */

/* The distribution a sampler must draw from given logits [L], by the rule
   ar.h documents, in double: logits / temperature (0: all mass on the
   largest), keep the top_k most likely values, then of those the smallest
   set of most likely values whose probability, renormalized over the
   top_k, reaches top_p; renormalize. Returns
   how far the decision was from a tie (cumulative probability vs top_p,
   k-th vs (k+1)-th probability) where the tie decides a probability of
   1e-4 or more: a test whose margin is tiny cannot tell a right sampler
   from a wrong one, and must pick other settings. */
double t_sample_rule(const float *logits, int L, const ar_sample_opts *o, double *q);
double t_sample_rule(const float *logits, int L, const ar_sample_opts *o, double *q)
{
    int idx[512], i, j, keep = L, best = 0;
    double z = 0, mx = -INFINITY, cum = 0, margin = 1, zk = 0;
    if (L > 512) return -1;
    for (i = 0; i < L; i++)
        if (logits[i] > mx) { mx = logits[i]; best = i; }
    if (o->temperature == 0) {
        for (i = 0; i < L; i++) {
            q[i] = i == best;
            if (i != best) margin = fmin(margin, mx - logits[i]);
        }
        return margin;
    }
    for (i = 0; i < L; i++) z += q[i] = exp(((double)logits[i] - mx) / o->temperature);
    for (i = 0; i < L; i++) { q[i] /= z; idx[i] = i; }
    for (i = 1; i < L; i++) /* by probability, descending */
        for (j = i; j > 0 && q[idx[j - 1]] < q[idx[j]]; j--) { int t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t; }
    if (o->top_k > 0 && o->top_k < L) {
        keep = o->top_k;
        if (q[idx[keep - 1]] >= 1e-4) margin = fmin(margin, q[idx[keep - 1]] - q[idx[keep]]);
    }
    for (i = 0; i < keep; i++) zk += q[idx[i]];
    if (o->top_p > 0 && o->top_p < 1)
        for (i = 0; i < keep; i++) {
            cum += q[idx[i]] / zk; /* a near-tie here decides whether idx[i + 1] is kept */
            if (i + 1 < keep && q[idx[i + 1]] >= 1e-4) margin = fmin(margin, fabs(cum - o->top_p));
            if (cum >= o->top_p) { keep = i + 1; break; }
        }
    for (i = keep, z = 0; i < L; i++) q[idx[i]] = 0;
    for (i = 0; i < L; i++) z += q[i];
    for (i = 0; i < L; i++) q[i] /= z;
    return margin;
}

/* Wilson-Hilferty upper quantile of chi-square with df degrees of freedom
   at z standard deviations (z = 4.5: about 3e-6). */
static double chi2_bound(int df, double z)
{
    double a = 2.0 / (9.0 * df);
    return df * pow(1 - a + z * sqrt(a), 3);
}

/* Samples x [N*D] with values in [0,L) against the exact distribution of
   the sampler. cond [S*D*L], S = L^D sequences s = sum_d x_d L^d: the
   distribution at dimension d given the values of s before d in the
   model's order. Where known[n*D+d] is set, x must hold given[n*D+d]
   and nothing was drawn. Checks a chi-square over the S sequences (cells
   expected below 5 pooled), that no sequence of probability 0 appears,
   and that probs (if not NULL; P = L, or P = 1 for binary data: p(x=1))
   equals cond at every drawn place. 1 if all holds, else 0 and msg. */
int t_samples_match(const float *x, const float *probs, int N, int D, int L, int P, const double *cond,
                    const unsigned char *known, const float *given, char *msg, size_t cap);
int t_samples_match(const float *x, const float *probs, int N, int D, int L, int P, const double *cond,
                    const unsigned char *known, const float *given, char *msg, size_t cap)
{
    int S = 1, n, d, s, v, cells = 0, ok = 0, *code = NULL, *pw = NULL;
    double *expect = NULL, stat = 0, pool_e = 0, worst = 0;
    long *count = NULL, pool_c = 0;
    for (d = 0; d < D; d++) S *= L;
    expect = (double *)calloc((size_t)S, sizeof *expect);
    count = (long *)calloc((size_t)S, sizeof *count);
    code = (int *)malloc((size_t)N * sizeof *code);
    pw = (int *)malloc((size_t)D * sizeof *pw);
    if (!expect || !count || !code || !pw) { snprintf(msg, cap, "out of memory"); goto done; }
    for (d = 0, s = 1; d < D; d++, s *= L) pw[d] = s;
    for (n = 0; n < N; n++) { /* each sample's sequence, checked against its given values */
        for (d = 0, code[n] = 0; d < D; d++) {
            float xv = x[(size_t)n * D + d];
            if (!(xv >= 0 && xv < L && xv == (float)(int)xv)) {
                snprintf(msg, cap, "sample %d, dim %d: %g is not a value in [0,%d)", n, d, (double)xv, L);
                goto done;
            }
            if (known && known[(size_t)n * D + d] && xv != given[(size_t)n * D + d]) {
                snprintf(msg, cap, "sample %d, dim %d: %g, but %g was given", n, d, (double)xv,
                         (double)given[(size_t)n * D + d]);
                goto done;
            }
            code[n] += (int)xv * pw[d];
        }
        count[code[n]]++;
        for (s = 0; s < S; s++) { /* what sample n should be, given what it was given */
            double e = 1;
            for (d = 0; d < D && e > 0; d++) {
                int xd = s / pw[d] % L;
                if (known && known[(size_t)n * D + d]) e *= xd == (int)given[(size_t)n * D + d];
                else e *= cond[((size_t)s * D + d) * L + xd];
            }
            expect[s] += e;
        }
        for (d = 0; probs && d < D; d++) { /* the distribution it was drawn from */
            const double *c = cond + ((size_t)code[n] * D + d) * L;
            if (known && known[(size_t)n * D + d]) continue;
            for (v = 0; v < P; v++) {
                double want = P == 1 ? c[1] : c[v], got = probs[((size_t)n * D + d) * P + v];
                if (!(fabs(got - want) <= 1e-4)) {
                    snprintf(msg, cap, "sample %d, dim %d: probs[%d] = %.6g, the rule gives %.6g", n, d, v, got, want);
                    goto done;
                }
            }
        }
    }
    for (s = 0; s < S; s++) {
        if (expect[s] < 1e-9 * N) {
            if (count[s]) {
                snprintf(msg, cap, "sequence %d drawn %ld times, but its probability is 0", s, count[s]);
                goto done;
            }
        } else if (expect[s] < 5) {
            pool_e += expect[s];
            pool_c += count[s];
        } else {
            stat += (count[s] - expect[s]) * (count[s] - expect[s]) / expect[s];
            worst = fmax(worst, fabs(count[s] - expect[s]) / sqrt(expect[s]));
            cells++;
        }
    }
    if (pool_e >= 5) {
        stat += (pool_c - pool_e) * (pool_c - pool_e) / pool_e;
        cells++;
    } else if (pool_c > pool_e + 5 * sqrt(pool_e) + 5) {
        snprintf(msg, cap, "%ld samples among rare sequences expected %.2f times", pool_c, pool_e);
        goto done;
    }
    if (cells > 1 && stat > chi2_bound(cells - 1, 4.5)) {
        snprintf(msg, cap, "chi-square %.1f over %d cells (bound %.1f; worst cell %.1f sd)", stat, cells,
                 chi2_bound(cells - 1, 4.5), worst);
        goto done;
    }
    ok = 1;
done:
    free(expect); free(count); free(code); free(pw);
    return ok;
}

/* ---- models ------------------------------------------------------------------ */

static int make_tfm(ar_model *m, int V, int T, int d, int heads, int layers, int pos, uint64_t seed, float scale,
                    const int *order)
{
    ar_model_cfg c = ar_model_default(AR_TRANSFORMER, 1, T);
    ar_rng r;
    int i;
    c.tfm.V = V; c.tfm.d = d; c.tfm.heads = heads; c.tfm.layers = layers; c.tfm.ffn = 2 * d + 1; c.tfm.pos = pos;
    c.seed = seed;
    c.order = order;
    if (ar_model_init(m, &c) != AR_OK) return 0;
    ar_rng_seed(&r, seed + 5);
    for (i = 0; i < m->ps.n; i++) /* visible weights, so nothing holds by accident */
        ar_init_uniform(m->ps.t[i], &r, -scale, scale);
    return 1;
}

static int ipow(int b, int e)
{
    int r = 1;
    while (e-- > 0) r *= b;
    return r;
}

/* Sequence s of V^T as tokens: token at position t is digit t of s in base V. */
static void seq_tokens(int s, int V, int T, int *tok)
{
    int t;
    for (t = 0; t < T; t++, s /= V) tok[t] = s % V;
}

typedef struct { ar_model *m; int tok[2 * 5]; float x[2 * 5]; int whole; } tfm_ctx;
static ar_tensor *tfm_loss(ar_graph *g, void *c)
{
    tfm_ctx *k = (tfm_ctx *)c;
    if (k->whole) return ar_mean(g, ar_model_nll(k->m, g, k->x, 2, NULL), AR_ALL);
    return ar_mean(g, ar_tfm_nll(k->m, g, k->tok, 2, 4), AR_ALL);
}

static void test_tfm_gradcheck(void)
{
    static const int order[5] = {2, 4, 0, 3, 1};
    int p;
    for (p = 0; p < 4; p++) { /* learned, sinusoidal, rotary on 4 of 5 places; rotary, custom order, ar_model_nll */
        ar_model m;
        ar_graph g;
        tfm_ctx k;
        double rel = 1;
        const char *worst = NULL;
        int i;
        /* one block: deeper ones drown small gradients in float noise */
        CHECK(make_tfm(&m, 3, 5, 4, 2, 1, p < 3 ? p : AR_POS_ROTARY, 7 + p, 0.8f, p == 3 ? order : NULL));
        for (i = 0; i < 10; i++) { k.tok[i] = (i * 5 + 1) % 3; k.x[i] = (float)k.tok[i]; }
        k.m = &m;
        k.whole = p == 3;
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        CHECK(ar_gradcheck(&g, &m.ps, tfm_loss, &k, p == 2 ? 2e-2f : 1e-2f, &rel, &worst) == AR_OK);
        /* each op is checked to 3e-4 on its own; through a whole block in
           float32 the finite differences bottom out near 4e-4, and with
           rotary positions (whose qkv.W gradient is small) measured 7.9e-3,
           4.7e-3, 2.2e-3, 0.9e-3 at eps 2.5e-3 .. 2e-2: the error halves when
           eps doubles, rounding, not a wrong gradient (which gives 1e-1 and up) */
        CHECK_MSG(rel < 2e-3, "variant %d: relative gradient error %.3g in %s", p, rel, worst ? worst : "?");
        ar_graph_free(&g);
        ar_model_free(&m);
    }
}

/* The logits at position t predict tokens[t]: they move with every token
   before t and with none at or after t. */
static void test_tfm_causal(void)
{
    enum { V = 5, T = 6 };
    int tok[T] = {1, 4, 0, 2, 3, 1}, t, j, depends = 0;
    ar_model m;
    ar_graph g;
    CHECK(make_tfm(&m, V, T, 8, 2, 2, AR_POS_LEARNED, 11, 0.6f, NULL));
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (j = 0; j < T; j++) {
        int tok2[T];
        ar_tensor *a, *b;
        memcpy(tok2, tok, sizeof tok);
        tok2[j] = (tok2[j] + 2) % V;
        ar_graph_reset(&g);
        a = ar_tfm_logits(&m, &g, tok, 1, T);
        b = ar_tfm_logits(&m, &g, tok2, 1, T);
        CHECK_MSG(a && b, "%s", g.err);
        CHECK(a->nd == 3 && a->shape[0] == 1 && a->shape[1] == T && a->shape[2] == V);
        for (t = 0; t < T; t++) {
            float diff = 0;
            int v;
            for (v = 0; v < V; v++) diff = fmaxf(diff, fabsf(a->x[t * V + v] - b->x[t * V + v]));
            if (j >= t) CHECK_MSG(diff == 0, "logits at %d moved with token %d", t, j);
            else depends += diff > 1e-4f;
        }
    }
    CHECK_MSG(depends == T * (T - 1) / 2, "%d of %d earlier tokens seen", depends, T * (T - 1) / 2);
    ar_graph_free(&g);
    ar_model_free(&m);
}

/* Sum over all V^T sequences of p(x) = 1, by ar_tfm_nll, ar_model_nll and
   ar_model_log_prob, which agree; the nll of the first n < T tokens is
   the marginal of the whole sequences' probabilities. */
static void test_tfm_normalization(void)
{
    enum { V = 3, T = 4, N = 81, n = 2 };
    static int tok[N * T], pre[N * n];
    static float x[N * T], lp[N];
    double s = 0, s2 = 0, marg[9] = {0};
    int i;
    ar_model m;
    ar_graph g;
    ar_tensor *nll, *nll2, *nllp;
    CHECK(make_tfm(&m, V, T, 8, 2, 1, AR_POS_SINUSOIDAL, 13, 0.8f, NULL));
    CHECK(m.kind == AR_TRANSFORMER && m.D == T && m.levels == V && m.tfm && !m.made && !m.nade && !m.cnn);
    for (i = 0; i < N; i++) {
        int t;
        seq_tokens(i, V, T, tok + i * T);
        for (t = 0; t < T; t++) x[i * T + t] = (float)tok[i * T + t];
        for (t = 0; t < n; t++) pre[i * n + t] = tok[i * T + t];
    }
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    ar_graph_set_grad(&g, 0);
    nll = ar_tfm_nll(&m, &g, tok, N, T);
    nll2 = ar_model_nll(&m, &g, x, N, NULL);
    nllp = ar_tfm_nll(&m, &g, pre, N, n);
    CHECK_MSG(nll && nll2 && nllp, "%s", g.err);
    CHECK_MSG(ar_model_log_prob(&m, x, N, lp) == AR_OK, "%s", m.err);
    CHECK(m.err[0] == 0);
    for (i = 0; i < N; i++) {
        s += exp(-(double)nll->x[i]);
        s2 += exp((double)lp[i]);
        marg[i % 9] += exp(-(double)nll->x[i]);
        CHECK_NEAR(nll2->x[i], nll->x[i], 1e-5);
        CHECK_NEAR(lp[i], -nll->x[i], 1e-5);
    }
    CHECK_MSG(fabs(s - 1) < 1e-5 && fabs(s2 - 1) < 1e-5, "total probability %.9f, %.9f", s, s2);
    for (i = 0; i < 9; i++) CHECK_NEAR(exp(-(double)nllp->x[i]), marg[i], 1e-6);
    ar_graph_free(&g);
    ar_model_free(&m);
}

/* Decoding with the KV cache gives the logits of the full forward pass at
   every position, batched and alone, for every position embedding; the
   first step reads the start token alone; a full cache and a token out of
   range are refused with the cache unchanged (the logits are then unspecified). */
static void test_tfm_cache_equals_full(void)
{
    enum { V = 7, T = 9, B = 3 };
    int tok[B * T], step[B], p, b, t, v;
    float lg[B * V], lg1[V];
    for (p = 0; p < 3; p++) {
        ar_model m;
        ar_graph g;
        ar_tfm_cache c, c1;
        ar_tensor *full;
        float worst = 0;
        CHECK(make_tfm(&m, V, T, 12, 3, 2, p, 17 + p, 0.4f, NULL));
        for (b = 0; b < B * T; b++) tok[b] = (b * 5 + 3) % V;
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        full = ar_tfm_logits(&m, &g, tok, B, T);
        memset(&c, 0xAB, sizeof c); /* output only */
        memset(&c1, 0xAB, sizeof c1);
        CHECK(full && ar_tfm_cache_init(&c, &m, B) == AR_OK && ar_tfm_cache_init(&c1, &m, 1) == AR_OK);
        CHECK(c.B == B && c.len == 0 && c1.B == 1);
        for (t = 0; t < T; t++) {
            for (b = 0; b < B; b++) step[b] = t ? tok[b * T + t - 1] : -1;
            CHECK_MSG(ar_tfm_step(&m, &c, t ? step : NULL, lg) == AR_OK, "%s", m.err);
            CHECK(c.len == t + 1 && m.err[0] == 0);
            for (b = 0; b < B; b++)
                for (v = 0; v < V; v++) worst = fmaxf(worst, fabsf(lg[b * V + v] - full->x[(b * T + t) * V + v]));
            CHECK(ar_tfm_step(&m, &c1, t ? step + 1 : NULL, lg1) == AR_OK); /* sequence 1 alone */
            for (v = 0; v < V; v++) worst = fmaxf(worst, fabsf(lg1[v] - full->x[(1 * T + t) * V + v]));
            if (t == 0) /* the start token alone: the same logits for every sequence (up to BLAS's rounding) */
                for (v = 0; v < V; v++) CHECK(fabsf(lg[v] - lg[V + v]) < 1e-6f && fabsf(lg[v] - lg[2 * V + v]) < 1e-6f);
        }
        CHECK_MSG(worst < 2e-5f, "pos %d: cached and full logits differ by %g", p, (double)worst);
        if (p == AR_POS_ROTARY) /* the ring goes on past T (test_tfm_past_T); the others are full */
            CHECK(ar_tfm_step(&m, &c, step, lg) == AR_OK && c.len == T + 1);
        else
            CHECK(FAILS(ar_tfm_step(&m, &c, step, lg), AR_ERR_RANGE, m) && c.len == T);
        c.len = 0; /* restart */
        CHECK(ar_tfm_step(&m, &c, NULL, lg) == AR_OK && m.err[0] == 0 && c.len == 1);
        step[0] = V;
        CHECK(FAILS(ar_tfm_step(&m, &c, step, lg), AR_ERR_RANGE, m) && c.len == 1);
        step[0] = -1;
        CHECK(FAILS(ar_tfm_step(&m, &c, step, lg), AR_ERR_RANGE, m) && c.len == 1);
        CHECK(FAILS(ar_tfm_step(&m, &c, NULL, lg), AR_ERR_ARG, m) && c.len == 1); /* no tokens after step 0 */
        step[0] = 1;
        CHECK(FAILS(ar_tfm_step(&m, &c, step, NULL), AR_ERR_ARG, m) && c.len == 1);
        CHECK(FAILS(ar_tfm_step(&m, NULL, step, lg), AR_ERR_ARG, m));
        CHECK(ar_tfm_step(NULL, &c, step, lg) == AR_ERR_ARG);
        CHECK(ar_tfm_step(&m, &c, step, lg) == AR_OK && m.err[0] == 0 && c.len == 2);
        ar_tfm_cache_free(&c);
        ar_tfm_cache_free(&c);  /* freed twice: fine */
        CHECK(FAILS(ar_tfm_step(&m, &c, step, lg), AR_ERR_ARG, m)); /* a freed cache */
        ar_tfm_cache_free(&c1);
        ar_graph_free(&g);
        ar_model_free(&m);
    }
}

/* The model's forward pass in double, written out here from the weights:
   inputs [n] (V is the start token), position p attends to the positions
   p-W+1..p (a sliding window of W; W >= n is the plain causal model), with
   rotary angles of the absolute position. out [n,V]. */
static void ref_forward(const ar_model *m, const int *in, int n, int W, double *out)
{
    const ar_tfm *tf = m->tfm;
    int d = tf->cfg.d, H = tf->cfg.heads, dh = d / H, F = tf->cfg.ffn, V = tf->cfg.V, l, p, s, i, j, hd;
    double *x = (double *)calloc((size_t)n * d, sizeof(double)), *h = (double *)calloc((size_t)n * d, sizeof(double));
    double *qkv = (double *)calloc((size_t)n * 3 * d, sizeof(double)), *u = (double *)calloc((size_t)F, sizeof(double));
    double *w = (double *)calloc((size_t)n, sizeof(double)), *att = (double *)calloc((size_t)d, sizeof(double));
#define REF_LN(src, g, b, dst)                                                           \
    do {                                                                                 \
        double mu = 0, var = 0;                                                          \
        for (i = 0; i < d; i++) mu += (src)[i];                                          \
        mu /= d;                                                                         \
        for (i = 0; i < d; i++) var += ((src)[i] - mu) * ((src)[i] - mu);                \
        var /= d;                                                                        \
        for (i = 0; i < d; i++) (dst)[i] = ((src)[i] - mu) / sqrt(var + 1e-5) * (g)[i] + (b)[i]; \
    } while (0)
    for (p = 0; p < n; p++)
        for (i = 0; i < d; i++) x[(size_t)p * d + i] = tf->tok->x[(size_t)in[p] * d + i];
    for (l = 0; l < tf->cfg.layers; l++) {
        const ar_tfm_layer *L = &tf->L[l];
        for (p = 0; p < n; p++) {
            double *q = qkv + (size_t)p * 3 * d;
            REF_LN(x + (size_t)p * d, L->ln1g->x, L->ln1b->x, h + (size_t)p * d);
            for (j = 0; j < 3 * d; j++) {
                q[j] = L->bqkv->x[j];
                for (i = 0; i < d; i++) q[j] += L->Wqkv->x[(size_t)j * d + i] * h[(size_t)p * d + i];
            }
            for (j = 0; j < 2 * d; j += dh) /* rotate q and k of every head */
                for (i = 0; i < dh / 2; i++) {
                    double a = p * pow(10000.0, -2.0 * i / dh), c = cos(a), sn = sin(a), x0 = q[j + 2 * i], x1 = q[j + 2 * i + 1];
                    q[j + 2 * i] = x0 * c - x1 * sn;
                    q[j + 2 * i + 1] = x0 * sn + x1 * c;
                }
        }
        for (p = 0; p < n; p++) {
            for (hd = 0; hd < H; hd++) {
                double mx = -1e300, z = 0;
                int s0 = p - W + 1 > 0 ? p - W + 1 : 0;
                for (s = s0; s <= p; s++) {
                    w[s] = 0;
                    for (i = 0; i < dh; i++) w[s] += qkv[(size_t)p * 3 * d + hd * dh + i] * qkv[(size_t)s * 3 * d + d + hd * dh + i];
                    w[s] /= sqrt((double)dh);
                    mx = w[s] > mx ? w[s] : mx;
                }
                for (s = s0; s <= p; s++) z += (w[s] = exp(w[s] - mx));
                for (i = 0; i < dh; i++) {
                    att[hd * dh + i] = 0;
                    for (s = s0; s <= p; s++) att[hd * dh + i] += w[s] / z * qkv[(size_t)s * 3 * d + 2 * d + hd * dh + i];
                }
            }
            for (j = 0; j < d; j++) {
                double o = L->bo->x[j];
                for (i = 0; i < d; i++) o += L->Wo->x[(size_t)j * d + i] * att[i];
                h[(size_t)p * d + j] = o;
            }
        }
        for (p = 0; p < n; p++) {
            double *xp = x + (size_t)p * d, *hp = h + (size_t)p * d;
            for (j = 0; j < d; j++) xp[j] += hp[j];
            REF_LN(xp, L->ln2g->x, L->ln2b->x, hp);
            for (j = 0; j < F; j++) {
                double a = L->b1->x[j];
                for (i = 0; i < d; i++) a += L->W1->x[(size_t)j * d + i] * hp[i];
                u[j] = 0.5 * a * (1 + erf(a / sqrt(2.0)));
            }
            for (j = 0; j < d; j++) {
                double a = L->b2->x[j];
                for (i = 0; i < F; i++) a += L->W2->x[(size_t)j * F + i] * u[i];
                xp[j] += a;
            }
        }
    }
    for (p = 0; p < n; p++) {
        REF_LN(x + (size_t)p * d, tf->lnfg->x, tf->lnfb->x, h + (size_t)p * d);
        for (j = 0; j < V; j++) {
            double a = tf->bout->x[j];
            for (i = 0; i < d; i++) a += tf->Wout->x[(size_t)j * d + i] * h[(size_t)p * d + i];
            out[(size_t)p * V + j] = a;
        }
    }
#undef REF_LN
    free(x); free(h); free(qkv); free(u); free(w); free(att);
}

/* Decoding past T with rotary positions: the cache is a ring of the last T
   steps, so step t attends to steps t-T+1..t at every layer (sliding-window
   attention). Checked against ref_forward with a window of T for 3T+2
   steps, B sequences together and one alone; the first T steps are the
   plain model, and equal ar_tfm_logits too. Shapes: six heads and an odd
   ffn (the kernels' tails); products large enough to be split across
   threads when built with OpenMP; one layer, where a step past T equals a
   fresh pass over the window. len set back: undoing steps. Learned and
   sinusoidal positions and custom orders stop at T. */
static void test_tfm_past_T(void)
{
    static const struct { int V, T, d, heads, layers; } shape[3] = {{5, 6, 24, 6, 3}, {300, 5, 128, 4, 2}, {7, 4, 16, 2, 1}};
    static const int order[6] = {1, 0, 2, 3, 5, 4};
    enum { B = 3, S_MAX = 3 * 6 + 2 };
    int k, b, t, v;
    for (k = 0; k < 3; k++) {
        int V = shape[k].V, T = shape[k].T, S = 3 * T + 2;
        ar_model m;
        ar_graph g;
        ar_tfm_cache c, c1;
        ar_tensor *full;
        int tok[B * S_MAX], in[S_MAX], step[B];
        float *lg = (float *)malloc((size_t)B * V * sizeof(float)), *lg1 = (float *)malloc((size_t)V * sizeof(float));
        double *ref = (double *)malloc((size_t)B * S * V * sizeof(double)), worst = 0, worst_full = 0;
        CHECK(lg && lg1 && ref);
        CHECK(make_tfm(&m, V, T, shape[k].d, shape[k].heads, shape[k].layers, AR_POS_ROTARY, 40 + k, 0.7f, NULL));
        for (b = 0; b < B * S; b++) tok[b] = (b * 7 + b / 3 + 1) % V;
        for (b = 0; b < B; b++) {
            in[0] = V;
            for (t = 1; t < S; t++) in[t] = tok[b * S + t - 1];
            ref_forward(&m, in, S, T, ref + (size_t)b * S * V);
        }
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        {
            int first[B * 6];
            for (b = 0; b < B; b++) memcpy(first + b * T, tok + b * S, (size_t)T * sizeof(int));
            CHECK((full = ar_tfm_logits(&m, &g, first, B, T)) != NULL);
        }
        CHECK(ar_tfm_cache_init(&c, &m, B) == AR_OK && ar_tfm_cache_init(&c1, &m, 1) == AR_OK);
        for (t = 0; t < S; t++) {
            for (b = 0; b < B; b++) step[b] = t ? tok[b * S + t - 1] : 0;
            CHECK_MSG(ar_tfm_step(&m, &c, t ? step : NULL, lg) == AR_OK, "step %d: %s", t, m.err);
            CHECK(ar_tfm_step(&m, &c1, t ? step + 1 : NULL, lg1) == AR_OK && c.len == t + 1 && c1.len == t + 1);
            if (shape[k].layers == 1 && t >= T) { /* one layer: a fresh pass over the window, positions from 0 */
                double win[6 * 7];
                int wi[6];
                for (b = 0; b < T; b++) wi[b] = tok[S + t - T + b]; /* inputs of steps t-T+1..t, sequence 1 */
                ref_forward(&m, wi, T, T, win);
                for (v = 0; v < V; v++) worst = fmax(worst, fabs(lg1[v] - win[(T - 1) * V + v]));
            }
            for (b = 0; b < B; b++)
                for (v = 0; v < V; v++) {
                    double r = ref[((size_t)b * S + t) * V + v];
                    worst = fmax(worst, fabs(lg[b * V + v] - r));
                    if (b == 1) worst = fmax(worst, fabs(lg1[v] - r));
                    if (t < T) worst_full = fmax(worst_full, fabs(lg[b * V + v] - full->x[((size_t)b * T + t) * V + v]));
                }
        }
        CHECK_MSG(worst < 1e-4, "shape %d: steps and the sliding-window reference differ by %g", k, worst);
        CHECK_MSG(worst_full < 2e-5, "shape %d: the first T steps and ar_tfm_logits differ by %g", k, worst_full);
        ar_tfm_cache_free(&c);
        ar_tfm_cache_free(&c1);
        ar_graph_free(&g);
        ar_model_free(&m);
        free(lg); free(lg1); free(ref);
    }
    { /* len set back: any earlier step before the ring wraps, the last AR_TFM_MAX_STEP after */
        ar_model m;
        ar_tfm_cache c;
        float lg[4 * 40], again[4];
        int seq[40], v;
        char want[32];
        CHECK(make_tfm(&m, 4, 6, 8, 2, 2, AR_POS_ROTARY, 3, 0.7f, NULL));
        CHECK(ar_tfm_cache_init(&c, &m, 1) == AR_OK && c.slots == 6 + AR_TFM_MAX_STEP - 1);
        for (t = 0; t < 40; t++) seq[t] = (t * 5 + 2) % 4;
        for (t = 0; t < 4; t++) CHECK(ar_tfm_step(&m, &c, t ? seq + t - 1 : NULL, lg + 4 * t) == AR_OK);
        c.len = 5;
        CHECK(FAILS(ar_tfm_step(&m, &c, seq, again), AR_ERR_ARG, m) && c.len == 5); /* never taken */
        c.len = 2;
        CHECK(ar_tfm_step(&m, &c, seq + 1, again) == AR_OK && c.len == 3);
        for (v = 0; v < 4; v++) CHECK(again[v] == lg[4 * 2 + v]);
        c.len = 4;
        CHECK(FAILS(ar_tfm_step(&m, &c, seq, again), AR_ERR_ARG, m)); /* step 3 went with the undo */
        c.len = 3;
        for (t = 3; t < 40; t++) CHECK(ar_tfm_step(&m, &c, seq + t - 1, lg + 4 * t) == AR_OK);
        c.len = 40 - AR_TFM_MAX_STEP; /* wrapped: the last AR_TFM_MAX_STEP steps */
        CHECK(ar_tfm_step(&m, &c, seq + 39 - AR_TFM_MAX_STEP, again) == AR_OK);
        for (v = 0; v < 4; v++) CHECK(again[v] == lg[4 * (40 - AR_TFM_MAX_STEP) + v]);
        c.len = 39 - AR_TFM_MAX_STEP;
        sprintf(want, "0 or %d..%d", 40 - AR_TFM_MAX_STEP, 41 - AR_TFM_MAX_STEP);
        CHECK(FAILS(ar_tfm_step(&m, &c, seq + 10, again), AR_ERR_ARG, m) && strstr(m.err, want));
        c.len = -1;
        CHECK(FAILS(ar_tfm_step(&m, &c, seq, again), AR_ERR_ARG, m));
        c.len = 0;
        CHECK(ar_tfm_step(&m, &c, NULL, again) == AR_OK);
        for (v = 0; v < 4; v++) CHECK(again[v] == lg[v]);
        ar_tfm_cache_free(&c);
        ar_model_free(&m);
    }
    for (k = 0; k < 3; k++) { /* learned, sinusoidal, a custom order: a clear error at T */
        ar_model m;
        ar_tfm_cache c;
        float lg[4];
        int one = 1;
        CHECK(make_tfm(&m, 4, 6, 8, 2, 1, k == 2 ? AR_POS_ROTARY : k == 0 ? AR_POS_LEARNED : AR_POS_SINUSOIDAL, 7, 0.5f,
                       k == 2 ? order : NULL));
        CHECK(ar_tfm_cache_init(&c, &m, 1) == AR_OK);
        for (t = 0; t < 6; t++) CHECK(ar_tfm_step(&m, &c, t ? &one : NULL, lg) == AR_OK);
        CHECK(FAILS(ar_tfm_step(&m, &c, &one, lg), AR_ERR_RANGE, m) && c.len == 6 && strstr(m.err, "rotary"));
        ar_tfm_cache_free(&c);
        ar_model_free(&m);
    }
}

/* Built with OpenMP, decoding splits its products and attention over
   threads; every output is still computed whole by one thread, so the
   logits are the same bits at 1 and 2 threads (B = 1 and B = 3 take the
   threaded path, B = 6 goes to BLAS). */
static void test_tfm_threads_same_bits(void)
{
#ifdef _OPENMP
    enum { V = 300, T = 5, NB = 3 };
    static const int Bs[NB] = {1, 3, 6};
    int nt0 = omp_get_max_threads(), i, t, b, th;
    ar_model m;
    CHECK(make_tfm(&m, V, T, 128, 4, 2, AR_POS_ROTARY, 9, 0.3f, NULL));
    for (i = 0; i < NB; i++) {
        int B = Bs[i], tok[6];
        float *lg[2];
        for (th = 0; th < 2; th++) {
            ar_tfm_cache c;
            lg[th] = (float *)malloc((size_t)(T + 2) * B * V * sizeof(float));
            CHECK(lg[th] && ar_tfm_cache_init(&c, &m, B) == AR_OK);
            omp_set_num_threads(th + 1);
            for (t = 0; t < T + 2; t++) {
                for (b = 0; b < B; b++) tok[b] = (t * 31 + b * 7) % V;
                CHECK(ar_tfm_step(&m, &c, t ? tok : NULL, lg[th] + (size_t)t * B * V) == AR_OK);
            }
            ar_tfm_cache_free(&c);
        }
        omp_set_num_threads(nt0);
        CHECK_MSG(memcmp(lg[0], lg[1], (size_t)(T + 2) * B * V * sizeof(float)) == 0, "B = %d: logits differ", B);
        free(lg[0]); free(lg[1]);
    }
    ar_model_free(&m);
#endif
}

/* A cache records the model it was made for: another model (another width,
   length, vocabulary or kind, or the same struct re-initialized) is
   refused, never read past its buffers (under ASan this was a
   heap-buffer-overflow); absurd batch sizes fail with a message. */
static void test_tfm_cache_checks(void)
{
    enum { V = 4 };
    ar_model a, b, c, d, made;
    ar_model_cfg mc = ar_model_default(AR_MADE, 1, 4);
    ar_tfm_cache k, z;
    int tok[2] = {1, 2}, i;
    static float lg[2 * 64];
    static const int Bs[3] = {0, -1, 1000000000};
    CHECK(make_tfm(&a, V, 4, 8, 2, 1, AR_POS_ROTARY, 1, 0.5f, NULL));
    CHECK(make_tfm(&b, V, 4, 16, 2, 1, AR_POS_ROTARY, 2, 0.5f, NULL));  /* wider */
    CHECK(make_tfm(&c, V, 12, 8, 2, 1, AR_POS_ROTARY, 3, 0.5f, NULL));  /* longer */
    CHECK(make_tfm(&d, 9, 4, 8, 2, 2, AR_POS_LEARNED, 4, 0.5f, NULL));  /* more tokens, layers */
    mc.made.hidden[0] = 5;
    CHECK(ar_model_init(&made, &mc) == AR_OK);
    CHECK(ar_tfm_cache_init(&k, &a, 2) == AR_OK);
    CHECK(ar_tfm_step(&a, &k, NULL, lg) == AR_OK);
    CHECK(FAILS(ar_tfm_step(&b, &k, tok, lg), AR_ERR_ARG, b) && k.len == 1);
    CHECK(FAILS(ar_tfm_step(&c, &k, tok, lg), AR_ERR_ARG, c) && k.len == 1);
    CHECK(FAILS(ar_tfm_step(&d, &k, tok, lg), AR_ERR_ARG, d) && k.len == 1);
    CHECK(FAILS(ar_tfm_step(&made, &k, tok, lg), AR_ERR_ARG, made) && k.len == 1);
    CHECK(ar_tfm_step(&a, &k, tok, lg) == AR_OK && k.len == 2); /* still good for its own model */
    ar_tfm_cache_free(&k);
    CHECK(ar_tfm_cache_init(&k, &c, 2) == AR_OK); /* a long cache with a short model */
    CHECK(FAILS(ar_tfm_step(&a, &k, NULL, lg), AR_ERR_ARG, a) && k.len == 0);
    ar_tfm_cache_free(&k);
    /* the same struct, freed and made again wider: the cache's records differ */
    CHECK(ar_tfm_cache_init(&k, &a, 2) == AR_OK);
    ar_model_free(&a);
    CHECK(FAILS(ar_tfm_step(&a, &k, NULL, lg), AR_ERR_ARG, a)); /* a freed model */
    CHECK(make_tfm(&a, V, 4, 16, 4, 1, AR_POS_ROTARY, 1, 0.5f, NULL));
    CHECK(FAILS(ar_tfm_step(&a, &k, NULL, lg), AR_ERR_ARG, a) && k.len == 0);
    ar_tfm_cache_free(&k);
    memset(&z, 0, sizeof z); /* never initialized */
    CHECK(FAILS(ar_tfm_step(&a, &z, NULL, lg), AR_ERR_ARG, a));
    ar_tfm_cache_free(&z);
    for (i = 0; i < 3; i++) {
        memset(&k, 0, sizeof k);
        a.err[0] = 0;
        CHECK_MSG(ar_tfm_cache_init(&k, &a, Bs[i]) != AR_OK && a.err[0], "B = %d", Bs[i]);
        ar_tfm_cache_free(&k);
    }
    CHECK(FAILS(ar_tfm_cache_init(&k, &made, 1), AR_ERR_ARG, made));
    ar_tfm_cache_free(&k);
    CHECK(ar_tfm_cache_init(&k, NULL, 1) == AR_ERR_ARG);
    CHECK(FAILS(ar_tfm_cache_init(NULL, &a, 1), AR_ERR_ARG, a));
    ar_tfm_cache_free(NULL);
    /* past T: learned positions stop (rotary ones go on: test_tfm_past_T) */
    CHECK(ar_tfm_cache_init(&k, &d, 1) == AR_OK);
    for (i = 0; i < 4; i++) CHECK(ar_tfm_step(&d, &k, i ? tok : NULL, lg) == AR_OK);
    CHECK(FAILS(ar_tfm_step(&d, &k, tok, lg), AR_ERR_RANGE, d));
    ar_tfm_cache_free(&k);
    ar_model_free(&a); ar_model_free(&b); ar_model_free(&c); ar_model_free(&d); ar_model_free(&made);
}

/* The transformer-only calls on models of other kinds, and bad tokens. */
static void test_tfm_bad_calls(void)
{
    ar_model m, made;
    ar_model_cfg mc = ar_model_default(AR_MADE, 1, 4);
    ar_graph g;
    int tok[2 * 4] = {0, 1, 2, 0, 1, 1, 1, 1};
    float x[4] = {0, 1, 2, 1}, lp[1];
    static const int order[4] = {1, 3, 0, 2};
    mc.made.hidden[0] = 5;
    CHECK(ar_model_init(&made, &mc) == AR_OK);
    CHECK(make_tfm(&m, 3, 4, 8, 2, 1, AR_POS_LEARNED, 5, 0.5f, NULL));
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(GFAILS(ar_tfm_logits(&made, &g, tok, 1, 4), AR_ERR_ARG, made, g));
    ar_graph_reset(&g);
    CHECK(GFAILS(ar_tfm_nll(&made, &g, tok, 1, 4), AR_ERR_ARG, made, g));
    ar_graph_reset(&g);
    tok[5] = 3;
    CHECK(GFAILS(ar_tfm_logits(&m, &g, tok, 2, 4), AR_ERR_RANGE, m, g));
    ar_graph_reset(&g);
    tok[5] = -1;
    CHECK(GFAILS(ar_tfm_nll(&m, &g, tok, 2, 4), AR_ERR_RANGE, m, g));
    ar_graph_reset(&g);
    tok[5] = 1;
    CHECK(GFAILS(ar_tfm_logits(&m, &g, tok, 1, 5), AR_ERR_ARG, m, g)); /* n > T */
    ar_graph_reset(&g);
    CHECK(GFAILS(ar_tfm_logits(&m, &g, tok, 0, 4), AR_ERR_ARG, m, g));
    ar_graph_reset(&g);
    CHECK(GFAILS(ar_tfm_logits(&m, &g, tok, 1, 0), AR_ERR_ARG, m, g));
    ar_graph_reset(&g);
    CHECK(GFAILS(ar_tfm_logits(&m, &g, NULL, 1, 4), AR_ERR_ARG, m, g));
    ar_graph_reset(&g);
    CHECK(ar_tfm_logits(&m, &g, tok, 2, 3) != NULL && m.err[0] == 0); /* a prefix: fine, message cleared */
    /* data through the float interface */
    x[2] = 3;
    CHECK(FAILS(ar_model_log_prob(&m, x, 1, lp), AR_ERR_RANGE, m));
    x[2] = 1.5f;
    CHECK(FAILS(ar_model_log_prob(&m, x, 1, lp), AR_ERR_RANGE, m));
    x[2] = NAN;
    CHECK(FAILS(ar_model_log_prob(&m, x, 1, lp), AR_ERR_NUMERIC, m));
    x[2] = 2;
    CHECK(ar_model_log_prob(&m, x, 1, lp) == AR_OK && m.err[0] == 0 && lp[0] < 0);
    ar_model_free(&m);
    /* a custom order needs whole sequences */
    CHECK(make_tfm(&m, 3, 4, 8, 2, 1, AR_POS_LEARNED, 5, 0.5f, order));
    ar_graph_reset(&g);
    CHECK(GFAILS(ar_tfm_logits(&m, &g, tok, 1, 3), AR_ERR_ARG, m, g));
    ar_graph_free(&g);
    ar_model_free(&m);
    ar_model_free(&made);
}

/* ar_sample_logits: argmax at temperature 0, frequencies at temperatures 1,
   0.5 and 2 and with top-k, top-p and both, logits far from 0 (a softmax without
   the max shift overflows), the distribution it drew from left in
   scratch, and bad options refused. */
static void test_sampler(void)
{
    enum { V = 6, N = 60000 };
    float logits[V] = {1.0f, 3.0f, 0.5f, 2.0f, -1.0f, 2.5f}, big[V], scratch[3 * V];
    long counts[V];
    int i, k, x;
    ar_sample_opts s = ar_sample_defaults(), bad;
    ar_rng r;
    CHECK(s.temperature == 1 && s.top_k == 0 && s.top_p == 0 && !s.given && !s.known && !s.naive && !s.probs);
    ar_rng_seed(&r, 3);
    for (i = 0; i < V; i++) big[i] = logits[i] + 120; /* exp overflows float without the shift */
    s.temperature = 0;
    CHECK(ar_sample_logits(logits, V, &s, &r, scratch) == 1); /* argmax */
    CHECK(ar_sample_logits(big, V, &s, &r, scratch) == 1);
    for (k = 0; k < 9; k++) { /* plain; top-k 3 ({1,5,3}); top-p 0.8; temperature 0.5; 2 with top-k 2; 0.5 with
                                 top-p 0.6; top-k 3 then top-p 0.7 (of the three, renormalized); 2, top-k 4, top-p 0.5;
                                 top-k 2 then top-p 0.6: {1} renormalized over the two, {1,5} if not */
        static const float temp[9] = {1, 1, 1, 0.5f, 2, 0.5f, 1, 2, 1}, topp[9] = {0, 0, 0.8f, 0, 0, 0.6f, 0.7f, 0.5f, 0.6f};
        static const int topk[9] = {0, 3, 0, 0, 2, 0, 3, 4, 2};
        double q[V], margin;
        const float *lg = k & 1 ? big : logits;
        s = ar_sample_defaults();
        s.temperature = temp[k]; s.top_k = topk[k]; s.top_p = topp[k];
        margin = t_sample_rule(logits, V, &s, q);
        CHECK_MSG(margin > 1e-3, "case %d: settings too close to a tie (%g)", k, margin);
        memset(counts, 0, sizeof counts);
        for (i = 0; i < N; i++) {
            int v;
            x = ar_sample_logits(lg, V, &s, &r, scratch);
            CHECK(x >= 0 && x < V);
            counts[x]++;
            if (i == 0)
                for (v = 0; v < V; v++)
                    CHECK_MSG(fabs(scratch[v] - q[v]) < 1e-5, "case %d: scratch[%d] = %g, want %g", k, v, scratch[v], q[v]);
        }
        for (i = 0; i < V; i++) {
            double f = (double)counts[i] / N;
            CHECK_MSG(q[i] > 0 || counts[i] == 0, "case %d: token %d drawn outside the allowed set", k, i);
            CHECK_MSG(fabs(f - q[i]) < 5 * sqrt(q[i] * (1 - q[i]) / N) + 1e-9, "case %d token %d: %.4f vs %.4f", k, i,
                      f, q[i]);
        }
    }
    s = ar_sample_defaults();
    CHECK(ar_sample_logits(logits, 0, &s, &r, scratch) == -1);
    CHECK(ar_sample_logits(NULL, V, &s, &r, scratch) == -1);
    CHECK(ar_sample_logits(logits, V, NULL, &r, scratch) == -1);
    CHECK(ar_sample_logits(logits, V, &s, NULL, scratch) == -1);
    CHECK(ar_sample_logits(logits, V, &s, &r, NULL) == -1);
    bad = s; bad.temperature = NAN;
    CHECK(ar_sample_logits(logits, V, &bad, &r, scratch) == -1);
    bad = s; bad.temperature = -1;
    CHECK(ar_sample_logits(logits, V, &bad, &r, scratch) == -1);
    bad = s; bad.temperature = INFINITY;
    CHECK(ar_sample_logits(logits, V, &bad, &r, scratch) == -1);
    bad = s; bad.top_p = NAN;
    CHECK(ar_sample_logits(logits, V, &bad, &r, scratch) == -1);
    bad = s; bad.top_p = 1.5f;
    CHECK(ar_sample_logits(logits, V, &bad, &r, scratch) == -1);
    bad = s; bad.top_p = -0.1f;
    CHECK(ar_sample_logits(logits, V, &bad, &r, scratch) == -1);
    bad = s; bad.top_k = -1;
    CHECK(ar_sample_logits(logits, V, &bad, &r, scratch) == -1);
    big[2] = NAN;
    CHECK(ar_sample_logits(big, V, &s, &r, scratch) == -1);
    s.top_k = 100; /* more than V: all */
    CHECK(ar_sample_logits(logits, V, &s, &r, scratch) >= 0);
}

/* ---- sampling from the model -------------------------------------------------- */

/* The Markov chain the test model learns: x_0 is 0, 1, 2 with probability
   0.5, 0.3, 0.2 (no near-ties for top-k and top-p to trip on), then the
   next token is (previous + 1) mod 3 with probability 0.85. */
static void chain(ar_rng *r, float *x, int D)
{
    int t;
    float u0 = ar_rng_uniform(r);
    x[0] = (float)(u0 < 0.5f ? 0 : u0 < 0.8f ? 1 : 2);
    for (t = 1; t < D; t++) {
        float u = ar_rng_uniform(r);
        x[t] = (float)(((int)x[t - 1] + (u < 0.85f ? 1 : u < 0.95f ? 2 : 0)) % 3);
    }
}

/* A transformer over 3 tokens, 3 places, trained on the chain so that
   each token depends strongly on the one before: a sampler that does not
   feed its draws back draws visibly wrong pairs. */
static int train_chain(ar_model *m, const int *order, uint64_t seed, char *msg)
{
    enum { V = 3, T = 3, N = 64 };
    ar_model_cfg c = ar_model_default(AR_TRANSFORMER, 1, T);
    ar_optim o = ar_optim_adam(1e-2f);
    ar_graph g;
    ar_rng r;
    float x[N * T], lp[27], pair[3][3] = {{0}};
    int i, s, ok = 1;
    c.tfm.V = V; c.tfm.d = 16; c.tfm.heads = 2; c.tfm.layers = 1; c.tfm.ffn = 32;
    c.order = order;
    c.seed = seed;
    if (ar_model_init(m, &c) != AR_OK || ar_graph_init(&g, 0) != AR_OK) { snprintf(msg, 256, "init: %.200s", m->err); return 0; }
    ar_rng_seed(&r, seed);
    for (s = 0; s < 300 && ok; s++) {
        ar_tensor *nll;
        for (i = 0; i < N; i++) chain(&r, x + i * T, T);
        ar_graph_reset(&g);
        nll = ar_model_nll(m, &g, x, N, &r);
        ar_params_zero_grad(&m->ps);
        ok = nll && ar_backward(&g, ar_mean(&g, nll, AR_ALL)) == AR_OK && ar_optim_step(&o, &m->ps) == AR_OK;
    }
    ar_graph_free(&g);
    if (!ok) { snprintf(msg, 256, "training: %.200s", m->err); return 0; }
    for (s = 0; s < 27; s++) { int t, tok[3]; seq_tokens(s, V, T, tok); for (t = 0; t < T; t++) x[s * T + t] = (float)tok[t]; }
    if (ar_model_log_prob(m, x, 27, lp) != AR_OK) { snprintf(msg, 256, "log_prob: %.200s", m->err); return 0; }
    for (s = 0; s < 27; s++) pair[s % 3][s / 3 % 3] += expf(lp[s]);
    for (i = 0; i < 3; i++) { /* p(x_1 = x_0 + 1 | x_0) */
        float p = pair[i][(i + 1) % 3] / (pair[i][0] + pair[i][1] + pair[i][2]);
        if (p < 0.7f) { snprintf(msg, 256, "p(x1 = %d | x0 = %d) = %.3f only: train longer", (i + 1) % 3, i, p); return 0; }
    }
    return 1;
}

/* cond [S*T*V] (S = V^T): the distribution the sampler must use at every
   position of every sequence, from the KV cache's logits (stepping in the
   model's order) and the rule; *margin: the closest call to a tie among
   the places drawn (the first `known` places of the order are given). */
static int tfm_cond(ar_model *m, const ar_sample_opts *o, int known, double *cond, double *margin, char *msg)
{
    int V = m->levels, T = m->D, S = ipow(V, T), s, t, ok = 1;
    const int *order = m->cfg.order;
    int *prev = (int *)malloc((size_t)S * sizeof(int));
    float *lg = (float *)malloc((size_t)S * V * sizeof(float));
    ar_tfm_cache c;
    *margin = 1;
    if (!prev || !lg || ar_tfm_cache_init(&c, m, S) != AR_OK) {
        snprintf(msg, 256, "cache: %.200s", m->err);
        free(prev); free(lg);
        return 0;
    }
    for (t = 0; t < T && ok; t++) {
        int pos = order ? order[t] : t;
        for (s = 0; s < S && t; s++) prev[s] = s / ipow(V, order ? order[t - 1] : t - 1) % V;
        if (ar_tfm_step(m, &c, t ? prev : NULL, lg) != AR_OK) { snprintf(msg, 256, "step: %.200s", m->err); ok = 0; }
        for (s = 0; s < S && ok; s++) {
            double mg = t_sample_rule(lg + (size_t)s * V, V, o, cond + ((size_t)s * T + pos) * V);
            if (t >= known) *margin = fmin(*margin, mg);
        }
    }
    ar_tfm_cache_free(&c);
    free(prev); free(lg);
    return ok;
}

/* Samples under every option against the exact distribution: draws fed
   back (pair frequencies of a strongly dependent model), temperature 1,
   0.5, 2 and 0 (greedy), top-k, top-p, completion of the first k places
   of the order (p(rest | prefix)); the cached and naive paths give the
   same samples from the same seed; probs are the distributions drawn from. */
static void sample_check(ar_model *m, const char *what)
{
    enum { N = 20000, T = 3, V = 3, S = 27, NN = 300 };
    static const struct { float temp; int top_k; float top_p; int known; } cases[] = {
        {1, 0, 0, 0}, {0.5f, 0, 0, 0}, {2, 0, 0, 0}, {0, 0, 0, 0}, {1, 2, 0, 0}, {1, 0, 0.75f, 0},
        {0.5f, 0, 0.9f, 0}, {1, 0, 0, 1}, {1, 0, 0, 2}, {0.5f, 2, 0, 1}, {1.5f, 2, 0.8f, 0},
    };
    static float x[N * T], x2[N * T], probs[N * T * V], probs2[N * T * V], given[N * T], xs[S * T], lp[S];
    static unsigned char known[N * T];
    static double cond[S * T * V];
    const int *order = m->cfg.order;
    char msg[256];
    size_t k;
    int n, t, s;
    for (s = 0; s < S; s++) { int tok[T]; seq_tokens(s, V, T, tok); for (t = 0; t < T; t++) xs[s * T + t] = (float)tok[t]; }
    CHECK(ar_model_log_prob(m, xs, S, lp) == AR_OK);
    for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ar_sample_opts o = ar_sample_defaults();
        ar_rng r;
        double margin;
        o.temperature = cases[k].temp; o.top_k = cases[k].top_k; o.top_p = cases[k].top_p;
        CHECK_MSG(tfm_cond(m, &o, cases[k].known, cond, &margin, msg), "%s", msg);
        CHECK_MSG(margin > 1e-5, "%s case %zu: settings too close to a tie (%g)", what, k, margin);
        if (k == 0) /* the cache's conditionals are the model's: their product is p(x) */
            for (s = 0; s < S; s++) {
                double p = 1;
                for (t = 0; t < T; t++) p *= cond[((size_t)s * T + t) * V + (int)xs[s * T + t]];
                CHECK_MSG(fabs(p - exp(lp[s])) < 1e-5, "%s: sequence %d: %g by the cache, %g by log_prob", what, s, p,
                          exp(lp[s]));
            }
        memset(known, 0, sizeof known);
        for (n = 0; n < N; n++)
            for (t = 0; t < cases[k].known; t++) { /* the first places of the order, varying per example */
                int pos = order ? order[t] : t;
                known[n * T + pos] = 1;
                given[n * T + pos] = (float)((n * 7 + t * 5 + n / 3) % V);
            }
        o.given = cases[k].known ? given : NULL;
        o.known = cases[k].known ? known : NULL;
        o.probs = probs;
        ar_rng_seed(&r, 100 + k);
        CHECK_MSG(ar_model_sample(m, N, &o, &r, x) == AR_OK, "%s case %zu: %s", what, k, m->err);
        CHECK(m->err[0] == 0);
        CHECK_MSG(t_samples_match(x, probs, N, T, V, V, cond, o.known, given, msg, sizeof msg),
                  "%s case %zu (temperature %g, top-k %d, top-p %g, %d known): %s", what, k, cases[k].temp,
                  cases[k].top_k, cases[k].top_p, cases[k].known, msg);
        /* the same seed and N: the same samples, cached or naive */
        ar_rng_seed(&r, 200 + k);
        CHECK_MSG(ar_model_sample(m, NN, &o, &r, x) == AR_OK, "%s", m->err);
        o.probs = probs2;
        o.naive = 1;
        ar_rng_seed(&r, 200 + k);
        CHECK_MSG(ar_model_sample(m, NN, &o, &r, x2) == AR_OK, "%s", m->err);
        CHECK_MSG(memcmp(x, x2, sizeof(float) * NN * T) == 0, "%s case %zu: naive and cached samples differ", what, k);
        for (n = 0; n < NN * T * V; n++)
            if (!known[n / V]) CHECK_NEAR(probs[n], probs2[n], 1e-5);
    }
}

/* check on the chain model, in the natural order and in the order 2,0,1. */
static void on_chains(void (*check)(ar_model *, const char *))
{
    static const int order[3] = {2, 0, 1};
    ar_model m;
    char msg[256];
    CHECK_MSG(train_chain(&m, NULL, 1, msg), "%s", msg);
    check(&m, "natural order");
    ar_model_free(&m);
    CHECK_MSG(train_chain(&m, order, 3, msg), "%s", msg);
    check(&m, "order 2,0,1");
    ar_model_free(&m);
}

static void test_tfm_sample(void) { on_chains(sample_check); }

/* ar_tfm_step_n: n tokens in one pass equal n single steps, before and
   past T (rotary: the ring), after undoing steps, for several sequences
   with the model's positions (rotary, learned, a custom order); and its
   argument checks, each leaving the cache as it was. */
static void test_tfm_step_n(void)
{
    static const int order[6] = {3, 0, 5, 1, 4, 2};
    static const int chunks[] = {1, 2, 3, 4, 1, AR_TFM_MAX_STEP, 5, 3, 2, 7};
    enum { V = 4, T = 6, B = 3, S = 48 };
    int k;
    for (k = 0; k < 3; k++) {
        ar_model m;
        ar_tfm_cache one, many;
        int steps = k == 0 ? S : T, tok[B * S], in[B * AR_TFM_MAX_STEP], t, b, i, c, n;
        float *ref = (float *)malloc(sizeof(float) * B * S * V), lg[B * AR_TFM_MAX_STEP * V], l1[B * V];
        double worst = 0;
        CHECK(ref);
        CHECK(make_tfm(&m, V, T, 8, 2, 2, k == 1 ? AR_POS_LEARNED : AR_POS_ROTARY, 40 + k, 0.6f, k == 2 ? order : NULL));
        CHECK(ar_tfm_cache_init(&one, &m, B) == AR_OK && ar_tfm_cache_init(&many, &m, B) == AR_OK);
        for (i = 0; i < B * S; i++) tok[i] = (i * 7 + i / 5) % V;
        for (t = 0; t < steps; t++) { /* the reference: one step at a time */
            for (b = 0; b < B; b++) in[b] = t ? tok[b * S + t - 1] : 0;
            CHECK(ar_tfm_step(&m, &one, t ? in : NULL, l1) == AR_OK);
            for (b = 0; b < B; b++) memcpy(ref + ((size_t)b * S + t) * V, l1 + b * V, V * sizeof(float));
        }
        for (t = 0, c = 0; t < steps; t += n, c++) {
            n = chunks[c % 10];
            if (t < T && k == 0 && n > T - t && n > AR_TFM_MAX_STEP) n = T - t;
            if (k > 0 && n > T - t) n = T - t;
            if (n > steps - t) n = steps - t;
            for (b = 0; b < B; b++)
                for (i = 0; i < n; i++) in[b * n + i] = t + i ? tok[b * S + t + i - 1] : 99; /* step 0: not read */
            CHECK_MSG(ar_tfm_step_n(&m, &many, n, in, lg) == AR_OK, "shape %d, %d tokens at %d: %s", k, n, t, m.err);
            CHECK(many.len == t + n);
            for (b = 0; b < B; b++)
                for (i = 0; i < n * V; i++) worst = fmax(worst, fabs(lg[b * n * V + i] - ref[((size_t)b * S + t) * V + i]));
            if (c == 3 && n > 2) { /* undo all but the first, then take them again */
                int again[B * AR_TFM_MAX_STEP];
                for (b = 0; b < B; b++)
                    for (i = 0; i < n - 1; i++) again[b * (n - 1) + i] = in[b * n + i + 1];
                many.len = t + 1;
                CHECK(ar_tfm_step_n(&m, &many, n - 1, again, lg) == AR_OK);
                for (i = 0; i < (n - 1) * V; i++) worst = fmax(worst, fabs(lg[i] - ref[(size_t)(t + 1) * V + i]));
                many.len = t + n;
            }
        }
        CHECK_MSG(worst < 2e-5, "shape %d: n steps at once and one at a time differ by %g", k, worst);
        /* checks: nothing changes */
        many.len = 0; n = many.held;
        for (i = 0; i < B * 2; i++) in[i] = 1;
        CHECK(FAILS(ar_tfm_step_n(&m, &many, 0, in, lg), AR_ERR_ARG, m) && many.len == 0 && many.held == n);
        CHECK(FAILS(ar_tfm_step_n(&m, &many, -1, in, lg), AR_ERR_ARG, m));
        CHECK(FAILS(ar_tfm_step_n(&m, &many, 2, NULL, lg), AR_ERR_ARG, m));
        in[3] = V;
        CHECK(FAILS(ar_tfm_step_n(&m, &many, 2, in, lg), AR_ERR_RANGE, m) && strstr(m.err, "tokens[3]"));
        in[0] = in[2] = in[4] = -7; /* step 0's token is not read */
        in[1] = tok[0]; in[3] = tok[S]; in[5] = tok[2 * S];
        CHECK(ar_tfm_step_n(&m, &many, 2, in, lg) == AR_OK && many.len == 2);
        for (i = 0; i < 2 * V; i++) CHECK_NEAR(lg[i], ref[i], 2e-5);
        many.len = 0;
        CHECK(ar_tfm_step_n(&m, &many, 1, NULL, lg) == AR_OK);
        if (k == 0) {
            CHECK(FAILS(ar_tfm_step_n(&m, &many, AR_TFM_MAX_STEP + 1, tok, lg), AR_ERR_ARG, m) && many.len == 1);
        } else {
            CHECK(FAILS(ar_tfm_step_n(&m, &many, T, tok, lg), AR_ERR_ARG, m) && many.len == 1 && strstr(m.err, "1..5"));
            CHECK(ar_tfm_step_n(&m, &many, T - 1, tok, lg) == AR_OK && many.len == T);
            CHECK(FAILS(ar_tfm_step_n(&m, &many, 1, tok, lg), AR_ERR_RANGE, m)); /* full */
        }
        ar_tfm_cache_free(&one);
        ar_tfm_cache_free(&many);
        ar_model_free(&m);
        free(ref);
    }
}

/* A copy of m whose head is negated: its likely tokens are m's unlikely
   ones (an adversarial draft). */
static int adversary(ar_model *a, ar_model *m)
{
    unsigned char *buf;
    size_t len, i;
    int ok;
    if (ar_model_save_mem(m, &buf, &len) != AR_OK) return 0;
    ok = ar_model_load_mem(a, buf, len) == AR_OK;
    ar_free(buf);
    for (i = 0; ok && i < a->tfm->Wout->n; i++) a->tfm->Wout->x[i] *= -2;
    for (i = 0; ok && i < a->tfm->bout->n; i++) a->tfm->bout->x[i] *= -2;
    return ok;
}

/* The rule in double on exact tables, for N sequences of 3 places of 3
   values (natural order): p and q [S*T*V] as tfm_cond makes them; mutate
   = 1 redraws a refused value from p instead of max(0, p - q). The
   chi-square must tell the mutation from the rule. */
static void spec_simulate(const double *p, const double *q, int k, int mutate, ar_rng *r, int N, float *x)
{
    enum { T = 3, V = 3 };
    int n, v;
    for (n = 0; n < N; n++) {
        int xs[T], t = 0, code = 0, i, pw[T] = {1, 3, 9};
        while (t < T) {
            int kb = T - 1 - t < k ? T - 1 - t : k, y[T], c = code, stop = 0;
            for (i = 0; i < kb; i++) { /* proposals */
                const double *qi = q + ((size_t)c * T + t + i) * V;
                double u = ar_rng_uniform(r), cum = 0;
                for (v = 0; v < V - 1 && u >= (cum += qi[v]); v++) {}
                y[i] = v;
                c += v * pw[t + i];
            }
            for (i = 0, c = code; i <= kb && !stop; i++) {
                const double *pi = p + ((size_t)c * T + t + i) * V, *qi = q + ((size_t)c * T + t + i) * V;
                double w[V], z = 0, u, cum = 0;
                if (i < kb && ar_rng_uniform(r) * qi[y[i]] < pi[y[i]]) {
                    xs[t + i] = y[i];
                    c += y[i] * pw[t + i];
                    continue;
                }
                for (v = 0; v < V; v++) z += w[v] = i == kb || mutate ? pi[v] : fmax(0, pi[v] - qi[v]);
                u = ar_rng_uniform(r) * z;
                for (v = 0; v < V - 1 && u >= (cum += w[v]); v++) {}
                xs[t + i] = v;
                c += v * pw[t + i];
                stop = 1;
                t += i + 1;
            }
            if (!stop) t += kb + 1;
            code = c;
        }
        for (i = 0; i < T; i++) x[n * T + i] = (float)xs[i];
    }
}

/* Speculative sampling against the model's exact distribution: complete
   sequences by chi-square, for a good draft (trained on the same data), a
   bad one (random) and an adversarial one (the model's head negated), k =
   1..5, temperature, top-k, top-p and completion, with probs; at
   temperature 0 the samples are plain greedy decoding's; the same
   model as its own draft has every proposal stand. */
static void spec_check(ar_model *m, const char *what)
{
    enum { N = 20000, T = 3, V = 3, S = 27, NG = 200 };
    static const struct { float temp; int top_k; float top_p; int known; } cases[] = {
        {1, 0, 0, 0}, {0.5f, 0, 0, 0}, {1, 2, 0, 0}, {1, 0, 0.75f, 0}, {1.5f, 2, 0.8f, 0}, {1, 0, 0, 1},
    };
    static float x[N * T], x2[N * T], probs[N * T * V], given[N * T];
    static unsigned char known[N * T];
    static double cond[S * T * V];
    ar_model drafts[3];
    const int *order = m->cfg.order;
    char msg[256];
    size_t c;
    int d, n;
    CHECK_MSG(train_chain(&drafts[0], order, 2, msg), "%s", msg);
    CHECK(make_tfm(&drafts[1], V, T, 8, 2, 1, AR_POS_ROTARY, 9, 0.5f, order));
    CHECK(adversary(&drafts[2], m));
    for (n = 0; n < N; n++) given[n * T + (order ? order[0] : 0)] = (float)(n % V);
    for (d = 0; d < 3; d++)
        for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            ar_sample_opts o = ar_sample_defaults();
            ar_rng r;
            int64_t counts[2] = {-1, -1};
            double margin;
            o.temperature = cases[c].temp; o.top_k = cases[c].top_k; o.top_p = cases[c].top_p;
            CHECK_MSG(tfm_cond(m, &o, cases[c].known, cond, &margin, msg), "%s", msg);
            CHECK_MSG(margin > 1e-5, "%s case %zu: settings too close to a tie (%g)", what, c, margin);
            memset(known, 0, sizeof known);
            for (n = 0; cases[c].known && n < N; n++) known[n * T + (order ? order[0] : 0)] = 1;
            o.given = cases[c].known ? given : NULL;
            o.known = cases[c].known ? known : NULL;
            o.probs = probs;
            o.draft = &drafts[d];
            o.draft_k = 1 + (int)(c + d) % 5;
            o.draft_counts = counts;
            ar_rng_seed(&r, 300 + 10 * c + d);
            CHECK_MSG(ar_model_sample(m, N, &o, &r, x) == AR_OK && m->err[0] == 0, "%s: %s", what, m->err);
            CHECK_MSG(t_samples_match(x, probs, N, T, V, V, cond, o.known, given, msg, sizeof msg),
                      "%s, draft %d, k %d, case %zu (temperature %g, top-k %d, top-p %g, %d known): %s", what, d,
                      o.draft_k, c, cases[c].temp, cases[c].top_k, cases[c].top_p, cases[c].known, msg);
            CHECK_MSG((counts[0] > 0 || cases[c].known) && counts[1] >= 0 && counts[1] <= counts[0], "draft %d case %zu: %lld proposed, %lld stood",
                      d, c, (long long)counts[0], (long long)counts[1]);
            if (d == 2 && c == 0) CHECK_MSG(counts[1] < counts[0] / 2, "the adversary had %lld of %lld stand",
                                            (long long)counts[1], (long long)counts[0]);
        }
    for (d = 0; d < 4; d++) { /* greedy: the model's own choices, token for token */
        ar_sample_opts o = ar_sample_defaults();
        ar_rng r;
        o.temperature = 0;
        o.given = given;
        o.known = known;
        memset(known, 0, sizeof known);
        for (n = 0; n < NG; n += 2) known[n * T + (order ? order[0] : 0)] = 1;
        ar_rng_seed(&r, 1);
        CHECK(ar_model_sample(m, NG, &o, &r, x2) == AR_OK);
        o.draft = d < 3 ? &drafts[d] : m;
        o.draft_k = 2;
        CHECK_MSG(ar_model_sample(m, NG, &o, &r, x) == AR_OK, "%s", m->err);
        CHECK_MSG(memcmp(x, x2, sizeof(float) * NG * T) == 0, "%s, draft %d: greedy samples differ", what, d);
    }
    { /* the model as its own draft: everything stands */
        ar_sample_opts o = ar_sample_defaults();
        ar_rng r;
        int64_t counts[2];
        o.draft = m; o.draft_k = 2; o.draft_counts = counts;
        ar_rng_seed(&r, 5);
        CHECK(ar_model_sample(m, 1000, &o, &r, x) == AR_OK);
        CHECK_MSG(counts[1] >= counts[0] - 2, "%lld of %lld stood", (long long)counts[1], (long long)counts[0]);
    }
    if (!order) { /* the test tells the rule from a mutation: p, not max(0, p - q), after a refusal */
        static double q[S * T * V];
        ar_sample_opts o = ar_sample_defaults();
        ar_rng r;
        double margin;
        int mutate;
        CHECK(tfm_cond(m, &o, 0, cond, &margin, msg) && tfm_cond(&drafts[1], &o, 0, q, &margin, msg));
        for (mutate = 0; mutate < 2; mutate++) {
            ar_rng_seed(&r, 77);
            spec_simulate(cond, q, 2, mutate, &r, N, x);
            CHECK_MSG(t_samples_match(x, NULL, N, T, V, V, cond, NULL, NULL, msg, sizeof msg) == !mutate,
                      "the rule simulated %s: %s", mutate ? "with a mutation passes" : "fails", mutate ? "" : msg);
        }
    }
    for (d = 0; d < 3; d++) ar_model_free(&drafts[d]);
}

static void test_tfm_speculative(void) { on_chains(spec_check); }

/* Binary drafts for a Transformer over two tokens: NADE, MADE and FVSBN
   propose, the samples follow the Transformer exactly; and the draft's
   checks. */
static void test_tfm_speculative_binary(void)
{
    enum { N = 20000, T = 4, V = 2, S = 16 };
    static const int order[T] = {1, 3, 0, 2};
    static float x[N * T], probs[N * T], given[N * T];
    static unsigned char known[N * T];
    static double cond[S * T * V];
    ar_model m, dr[3], other;
    ar_sample_opts o = ar_sample_defaults(), bad;
    ar_rng r;
    char msg[256];
    double margin;
    int d, n, i;
    for (i = 0; i < 2; i++) {
        const int *ord = i ? order : NULL;
        for (d = 0; d < 3; d++) {
            ar_model_cfg c = ar_model_default(d == 0 ? AR_NADE : d == 1 ? AR_MADE : AR_FVSBN, 1, T);
            size_t j;
            c.nade.H = 5; c.made.hidden[0] = 6; c.order = ord; c.seed = 20 + d;
            CHECK_MSG(ar_model_init(&dr[d], &c) == AR_OK, "%s", dr[d].err);
            ar_rng_seed(&r, 30 + d);
            for (j = 0; j < (size_t)dr[d].ps.n; j++) ar_init_uniform(dr[d].ps.t[j], &r, -1.5f, 1.5f);
        }
        CHECK(make_tfm(&m, V, T, 8, 2, 2, AR_POS_ROTARY, 12 + i, 0.8f, ord));
        for (d = 0; d < 3; d++) {
            int64_t counts[2];
            o = ar_sample_defaults();
            o.temperature = d == 1 ? 0.7f : 1;
            o.probs = probs;
            o.draft = &dr[d];
            o.draft_k = 2 + d;
            o.draft_counts = counts;
            memset(known, 0, sizeof known);
            if (d == 2) /* completion: the first place of the order given */
                for (n = 0; n < N; n++) { known[n * T + (ord ? ord[0] : 0)] = 1; given[n * T + (ord ? ord[0] : 0)] = (float)(n % 2); }
            o.known = d == 2 ? known : NULL;
            o.given = d == 2 ? given : NULL;
            CHECK_MSG(tfm_cond(&m, &o, d == 2, cond, &margin, msg), "%s", msg);
            ar_rng_seed(&r, 50 + d);
            CHECK_MSG(ar_model_sample(&m, N, &o, &r, x) == AR_OK, "%s", m.err);
            CHECK_MSG(t_samples_match(x, probs, N, T, V, 1, cond, o.known, given, msg, sizeof msg),
                      "order %d, %s draft: %s", i, ar_kind_name(dr[d].kind), msg);
            CHECK(counts[0] > 0 && counts[1] > 0 && counts[1] < counts[0]);
        }
        ar_model_free(&m);
        for (d = 0; d < 3; d++) ar_model_free(&dr[d]);
    }
    /* drafts that cannot propose, and options that do not go with one */
    CHECK(make_tfm(&m, V, T, 8, 2, 1, AR_POS_ROTARY, 3, 0.5f, NULL));
    o = ar_sample_defaults();
    o.draft_k = 2;
#define BAD_DRAFT(kind, rows, cols, tweak) do { ar_model_cfg c = ar_model_default(kind, rows, cols); tweak; \
        CHECK(ar_model_init(&other, &c) == AR_OK); bad = o; bad.draft = &other; \
        CHECK_MSG(FAILS(ar_model_sample(&m, 4, &bad, &r, x), AR_ERR_ARG, m), "%s", #kind); ar_model_free(&other); } while (0)
    BAD_DRAFT(AR_NADE, 1, T + 1, (void)0);          /* another D */
    BAD_DRAFT(AR_RNADE, 1, T, (void)0);             /* real values */
    BAD_DRAFT(AR_PIXELCNN, 2, 2, (void)0);          /* cannot step */
    BAD_DRAFT(AR_TRANSFORMER, 1, T, c.tfm.V = 3);   /* another vocabulary */
    { ar_model_cfg c = ar_model_default(AR_NADE, 1, T); c.order = order;    /* another order */
      CHECK(ar_model_init(&other, &c) == AR_OK); bad = o; bad.draft = &other;
      CHECK(FAILS(ar_model_sample(&m, 4, &bad, &r, x), AR_ERR_ARG, m) && strstr(m.err, "order")); ar_model_free(&other); }
    { ar_model_cfg c = ar_model_default(AR_NADE, 1, T);
      CHECK(ar_model_init(&other, &c) == AR_OK);
      bad = o; bad.draft = &other; bad.draft_k = 0;
      CHECK(FAILS(ar_model_sample(&m, 4, &bad, &r, x), AR_ERR_ARG, m));
      bad.draft_k = AR_TFM_MAX_STEP;
      CHECK(FAILS(ar_model_sample(&m, 4, &bad, &r, x), AR_ERR_ARG, m));
      bad.draft_k = 3; bad.naive = 1;
      CHECK(FAILS(ar_model_sample(&m, 4, &bad, &r, x), AR_ERR_ARG, m));
      bad.naive = 0;
      CHECK(FAILS(ar_model_sample(&other, 4, &bad, &r, x), AR_ERR_ARG, other) && strstr(other.err, "Transformer"));
      ar_model_free(&other);
      bad.draft = &other; /* freed */
      CHECK(FAILS(ar_model_sample(&m, 4, &bad, &r, x), AR_ERR_ARG, m)); }
#undef BAD_DRAFT
    ar_model_free(&m);
}

/* Sampling arguments: refused with a message (x after a failure is unspecified). */
static void test_tfm_sample_errors(void)
{
    enum { T = 4, N = 3 };
    ar_model m;
    ar_rng r;
    ar_sample_opts o = ar_sample_defaults(), bad;
    float x[N * T], given[N * T] = {0};
    unsigned char known[N * T] = {0};
    CHECK(make_tfm(&m, 3, T, 8, 2, 1, AR_POS_ROTARY, 3, 0.5f, NULL));
    ar_rng_seed(&r, 1);
#define BAD(st, ...) do { __VA_ARGS__; m.err[0] = 0; \
        CHECK_MSG(ar_model_sample(&m, N, &bad, &r, x) == (st) && m.err[0], "%s", #__VA_ARGS__); } while (0)
    BAD(AR_ERR_ARG, bad = o; bad.temperature = NAN);
    BAD(AR_ERR_ARG, bad = o; bad.temperature = -0.5f);
    BAD(AR_ERR_ARG, bad = o; bad.top_p = NAN);
    BAD(AR_ERR_ARG, bad = o; bad.top_p = 2);
    BAD(AR_ERR_ARG, bad = o; bad.top_k = -3);
    BAD(AR_ERR_ARG, bad = o; bad.known = known); /* known without given */
    known[5] = 1;
    given[5] = 3;
    BAD(AR_ERR_RANGE, bad = o; bad.known = known; bad.given = given);
    given[5] = NAN;
    BAD(AR_ERR_NUMERIC, bad = o; bad.known = known; bad.given = given);
    given[5] = 1;
    given[6] = NAN; /* not known: not read */
    bad = o; bad.known = known; bad.given = given;
    CHECK(ar_model_sample(&m, N, &bad, &r, x) == AR_OK && x[5] == 1 && m.err[0] == 0);
    CHECK(FAILS(ar_model_sample(&m, 0, &o, &r, x), AR_ERR_ARG, m));
    CHECK(FAILS(ar_model_sample(&m, -1, &o, &r, x), AR_ERR_ARG, m));
    CHECK(FAILS(ar_model_sample(&m, N, &o, NULL, x), AR_ERR_ARG, m));
    CHECK(FAILS(ar_model_sample(&m, N, &o, &r, NULL), AR_ERR_ARG, m));
    CHECK(ar_model_sample(NULL, N, &o, &r, x) == AR_ERR_ARG);
#undef BAD
    ar_model_free(&m);
    CHECK(FAILS(ar_model_sample(&m, N, &o, &r, x), AR_ERR_ARG, m)); /* a freed model */
}

static void test_tfm_checkpoint(void)
{
    const char *path = "/tmp/ar_test_tfm.safetensors";
    int tok[2 * 5] = {0, 1, 2, 1, 0, 2, 2, 1, 0, 1};
    ar_model a, b;
    ar_graph g;
    ar_tensor *la, *lb;
    unsigned char *ba, *bb;
    size_t na, nb;
    CHECK(make_tfm(&a, 3, 5, 8, 2, 2, AR_POS_SINUSOIDAL, 31, 0.3f, NULL));
    CHECK(ar_model_save(&a, path) == AR_OK && a.err[0] == 0);
    memset(&b, 0xAB, sizeof b); /* output only */
    CHECK_MSG(ar_model_load(&b, path) == AR_OK, "%s", b.err);
    CHECK(b.kind == AR_TRANSFORMER && b.D == 5 && b.levels == 3 && b.tfm && !b.made && !b.nade && !b.cnn);
    CHECK(b.cfg.tfm.layers == 2 && b.cfg.tfm.pos == AR_POS_SINUSOIDAL && b.cfg.tfm.d == 8 && b.cfg.tfm.V == 3 &&
          b.cfg.tfm.heads == 2 && b.cfg.tfm.ffn == 17 && b.cfg.seed == 31 && b.cfg.order == NULL);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    la = ar_tfm_logits(&a, &g, tok, 2, 5);
    lb = ar_tfm_logits(&b, &g, tok, 2, 5);
    CHECK(la && lb && memcmp(la->x, lb->x, la->n * sizeof(float)) == 0);
    CHECK(ar_model_save_mem(&a, &ba, &na) == AR_OK && ar_model_save_mem(&b, &bb, &nb) == AR_OK);
    CHECK_MSG(na == nb && memcmp(ba, bb, na) == 0, "a loaded model saves other bytes (%zu, %zu)", na, nb);
    ar_model_free(&b);
    memset(&b, 0xAB, sizeof b);
    CHECK(ar_model_load_mem(&b, ba, na) == AR_OK && b.kind == AR_TRANSFORMER);
    ar_free(ba);
    ar_free(bb);
    remove(path);
    ar_graph_free(&g);
    ar_model_free(&a);
    ar_model_free(&b);
}

/* A custom generation order through the attention mask: the logits at
   position q never move with the token at a position ranked at or after
   q, do move with earlier ones; the KV cache, stepping in that order, gives
   the full pass's logits; probabilities over all 3^6 sequences sum to 1;
   completion of the order's first places keeps them; the order survives a
   checkpoint; a non-permutation is refused. */
static void test_tfm_custom_order(void)
{
    enum { V = 3, T = 6, B = 2 };
    static const int order[T] = {3, 0, 5, 1, 4, 2};
    int rank[T], tok[B * T], tok2[B * T], step[B], q, j, t, b, v, p;
    float lg[B * V], worst = 0;
    const char *path = "/tmp/ar_test_tfm_order.safetensors";
    for (t = 0; t < T; t++) rank[order[t]] = t;
    for (p = 0; p < 3; p++) { /* learned, sinusoidal, rotary */
        ar_model m, m2;
        ar_model_cfg c;
        ar_tfm_cache cache;
        ar_graph g;
        ar_tensor *a, *full;
        ar_rng r;
        int depends = 0;
        CHECK(make_tfm(&m, V, T, 8, 2, 2, p, 3 + p, 0.6f, order));
        CHECK(m.cfg.order && m.cfg.order != order && memcmp(m.cfg.order, order, sizeof order) == 0); /* its own copy */
        for (t = 0; t < B * T; t++) tok[t] = (t * 5 + 1) % V;
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        ar_graph_set_grad(&g, 0);
        full = ar_tfm_logits(&m, &g, tok, B, T);
        CHECK_MSG(full != NULL, "%s", g.err);
        for (j = 0; j < T; j++) {
            memcpy(tok2, tok, sizeof tok);
            tok2[j] = (tok2[j] + 1) % V;
            a = ar_tfm_logits(&m, &g, tok2, B, T);
            CHECK(a != NULL);
            for (q = 0; q < T; q++) {
                float d = 0;
                for (v = 0; v < V; v++) d = fmaxf(d, fabsf(a->x[q * V + v] - full->x[q * V + v]));
                if (rank[j] >= rank[q]) CHECK_MSG(d == 0, "pos %d: logits at %d moved with token %d", p, q, j);
                else depends += d > 1e-5f;
            }
        }
        CHECK_MSG(depends == T * (T - 1) / 2, "pos %d: %d of %d earlier tokens seen", p, depends, T * (T - 1) / 2);
        CHECK(ar_tfm_cache_init(&cache, &m, B) == AR_OK);
        for (t = 0; t < T; t++) { /* step t: logits of position order[t], fed the token at order[t-1] */
            for (b = 0; b < B; b++) step[b] = t ? tok[b * T + order[t - 1]] : 0;
            CHECK(ar_tfm_step(&m, &cache, t ? step : NULL, lg) == AR_OK);
            for (b = 0; b < B; b++)
                for (v = 0; v < V; v++)
                    worst = fmaxf(worst, fabsf(lg[b * V + v] - full->x[(b * T + order[t]) * V + v]));
        }
        CHECK_MSG(worst < 2e-5f, "pos %d: cached and full logits differ by %g", p, (double)worst);
        { /* completion: the order's first two places are kept, by position */
            ar_sample_opts o = ar_sample_defaults();
            float x[B * T], given[B * T] = {0};
            unsigned char known[B * T] = {0};
            known[order[0]] = known[order[1]] = known[T + order[0]] = known[T + order[1]] = 1;
            given[order[0]] = 1; given[order[1]] = 0; given[T + order[0]] = 2; given[T + order[1]] = 2;
            o.given = given; o.known = known;
            ar_rng_seed(&r, 8 + p);
            CHECK(ar_model_sample(&m, B, &o, &r, x) == AR_OK);
            CHECK(x[order[0]] == 1 && x[order[1]] == 0 && x[T + order[0]] == 2 && x[T + order[1]] == 2);
        }
        { /* exact normalization over all 3^6 sequences */
            static int all[729 * T];
            static float xall[729 * T], lp[729];
            ar_tensor *nll;
            double total = 0, total2 = 0;
            for (b = 0; b < 729; b++) {
                seq_tokens(b, V, T, all + b * T);
                for (t = 0; t < T; t++) xall[b * T + t] = (float)all[b * T + t];
            }
            ar_graph_reset(&g);
            nll = ar_tfm_nll(&m, &g, all, 729, T);
            CHECK(nll != NULL && ar_model_log_prob(&m, xall, 729, lp) == AR_OK);
            for (b = 0; b < 729; b++) {
                total += exp(-(double)nll->x[b]);
                total2 += exp((double)lp[b]);
            }
            CHECK_MSG(fabs(total - 1) < 1e-5 && fabs(total2 - 1) < 1e-5, "pos %d: total probability %.9f, %.9f", p,
                      total, total2);
        }
        CHECK(ar_model_save(&m, path) == AR_OK);
        memset(&m2, 0xAB, sizeof m2);
        CHECK_MSG(ar_model_load(&m2, path) == AR_OK, "%s", m2.err);
        CHECK(m2.cfg.order && memcmp(m2.cfg.order, order, sizeof order) == 0);
        CHECK(m2.tfm && m2.tfm->order && memcmp(m2.tfm->order, order, sizeof order) == 0);
        remove(path);
        ar_model_free(&m2);
        c = m.cfg;
        c.order = (const int[T]){0, 1, 1, 2, 3, 4};
        memset(&m2, 0xAB, sizeof m2);
        CHECK(ar_model_init(&m2, &c) == AR_ERR_ARG && strstr(m2.err, "permutation") && m2.ps.x == NULL);
        c.order = (const int[T]){0, 1, 6, 2, 3, 4};
        CHECK(ar_model_init(&m2, &c) == AR_ERR_ARG && strstr(m2.err, "permutation"));
        ar_tfm_cache_free(&cache);
        ar_graph_free(&g);
        ar_model_free(&m);
    }
}

/* The fused ar_attention against the same attention built from unfused ops
   (slices, permutes, ar_rope, matmuls, ar_causal_softmax_order), value and
   gradient, at a length spanning several query blocks. */
static ar_tensor *att_unfused(ar_graph *g, ar_tensor *qkv, int H, const int *rank, int rotary)
{
    int B = qkv->shape[0], n = qkv->shape[1], d = qkv->shape[2] / 3, dh = d / H, i;
    int s4[4], s3[3], perm[4] = {0, 2, 1, 3};
    ar_tensor *p[3], *a;
    s4[0] = B; s4[1] = n; s4[2] = H; s4[3] = dh;
    s3[0] = B; s3[1] = n; s3[2] = d;
    for (i = 0; i < 3; i++) {
        p[i] = ar_permute(g, ar_reshape(g, ar_slice(g, qkv, 2, i * d, d), 4, s4), perm);
        if (rotary && i < 2) p[i] = ar_rope(g, p[i], 0);
    }
    a = ar_causal_softmax_order(g, ar_matmul(g, p[0], p[1], 0, 1), 1.0f / sqrtf((float)dh), rank);
    return ar_reshape(g, ar_permute(g, ar_matmul(g, a, p[2], 0, 0), perm), 3, s3);
}

static void test_attention_fused(void)
{
    enum { B = 2, N = 300, H = 2, DH = 4, NY = B * N * H * DH, NX = 3 * NY };
    static float R[NY], y0[NY], g0[NX];
    int rank[N], v, i;
    ar_params ps;
    ar_tensor *qkv;
    ar_graph g;
    ar_rng r;
    ar_rng_seed(&r, 21);
    ar_params_init(&ps);
    qkv = ar_params_add(&ps, "qkv", 3, (int[]){B, N, 3 * H * DH});
    CHECK(qkv && ar_params_alloc(&ps) == AR_OK);
    ar_init_uniform(qkv, &r, -2, 2);
    for (i = 0; i < NY; i++) R[i] = ar_rng_normal(&r);
    for (i = 0; i < N; i++) rank[i] = i;
    ar_rng_shuffle(&r, rank, N);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (v = 0; v < 4; v++) { /* causal, custom order, rotary, both */
        const int *rk = v & 1 ? rank : NULL;
        int rot = v >> 1, k;
        float dy = 0, dg = 0;
        for (k = 0; k < 2; k++) {
            ar_tensor *y;
            ar_graph_reset(&g);
            ar_params_zero_grad(&ps);
            y = k ? ar_attention(&g, qkv, H, 1.0f / sqrtf((float)DH), rk, rot) : att_unfused(&g, qkv, H, rk, rot);
            CHECK_MSG(y != NULL && y->n == NY, "variant %d: %s", v, g.err);
            CHECK(ar_backward(&g, ar_sum(&g, ar_mul(&g, y, ar_input(&g, R, 3, y->shape)), AR_ALL)) == AR_OK);
            for (i = 0; i < NY; i++) k ? (void)(dy = fmaxf(dy, fabsf(y->x[i] - y0[i]))) : (void)(y0[i] = y->x[i]);
            for (i = 0; i < NX; i++) k ? (void)(dg = fmaxf(dg, fabsf(qkv->g[i] - g0[i]))) : (void)(g0[i] = qkv->g[i]);
        }
        CHECK_MSG(dy < 1e-5f && dg < 1e-4f, "variant %d: fused and unfused differ by %g (value), %g (gradient)", v,
                  (double)dy, (double)dg);
    }
    CHECK(ar_attention(&g, qkv, 5, 1, NULL, 0) == NULL && strstr(g.err, "heads")); /* 3d = 24: not 3 x 5 heads */
    ar_graph_reset(&g);
    rank[0] = rank[1];
    CHECK(ar_attention(&g, qkv, H, 1, rank, 0) == NULL && strstr(g.err, "permutation"));
    ar_graph_free(&g);
    ar_params_free(&ps);
}

/* Attention with scores in the thousands (no test above gets past about
   10): a softmax without the max shift overflows to Inf/NaN here. Fused
   and unfused against a double-precision reference; gradients finite. */
static void test_attention_large_scores(void)
{
    enum { N = 7, H = 2, DH = 4, DM = H * DH };
    static const int rank[N] = {3, 0, 6, 1, 5, 2, 4};
    ar_params ps;
    ar_tensor *qkv;
    ar_graph g;
    ar_rng r;
    double ref[N * DM];
    float R[N * DM], scale = 0.5f;
    int v, i, t, j, h, e;
    ar_rng_seed(&r, 77);
    ar_params_init(&ps);
    qkv = ar_params_add(&ps, "qkv", 3, (int[]){1, N, 3 * DM});
    CHECK(qkv && ar_params_alloc(&ps) == AR_OK);
    ar_init_uniform(qkv, &r, -40, 40); /* |scale q.k| up to 3200 */
    for (i = 0; i < N * DM; i++) R[i] = ar_rng_normal(&r);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (v = 0; v < 4; v++) { /* fused, unfused; causal, custom order */
        const int *rk = v & 2 ? rank : NULL;
        ar_tensor *y;
        float worst = 0;
        for (h = 0; h < H; h++) /* the reference, with the shift, in double */
            for (t = 0; t < N; t++) {
                double sc[N], mx = -INFINITY, z = 0;
                for (j = 0; j < N; j++) {
                    const float *q = qkv->x + t * 3 * DM + h * DH, *k = qkv->x + j * 3 * DM + DM + h * DH;
                    int sees = rk ? rk[j] <= rk[t] : j <= t;
                    for (e = 0, sc[j] = 0; e < DH; e++) sc[j] += (double)q[e] * k[e];
                    sc[j] = sees ? sc[j] * scale : -INFINITY;
                    mx = fmax(mx, sc[j]);
                }
                for (j = 0; j < N; j++) z += sc[j] = exp(sc[j] - mx);
                for (e = 0; e < DH; e++) {
                    double o = 0;
                    for (j = 0; j < N; j++) o += sc[j] / z * qkv->x[j * 3 * DM + 2 * DM + h * DH + e];
                    ref[t * DM + h * DH + e] = o;
                }
            }
        ar_graph_reset(&g);
        ar_params_zero_grad(&ps);
        y = v & 1 ? att_unfused(&g, qkv, H, rk, 0) : ar_attention(&g, qkv, H, scale, rk, 0);
        CHECK_MSG(y != NULL, "variant %d: %s", v, g.err);
        for (i = 0; i < N * DM; i++) worst = fmaxf(worst, fabsf(y->x[i] - (float)ref[i]));
        CHECK_MSG(worst < 0.05f, "variant %d: attention differs from the reference by %g (values up to 40)", v,
                  (double)worst);
        CHECK(ar_backward(&g, ar_sum(&g, ar_mul(&g, y, ar_input(&g, R, 3, y->shape)), AR_ALL)) == AR_OK);
        for (i = 0; i < (int)qkv->n; i++) CHECK_MSG(isfinite(qkv->g[i]), "variant %d: gradient %d is %g", v, i, qkv->g[i]);
    }
    ar_graph_free(&g);
    ar_params_free(&ps);
}

void tests_tfm(void)
{
    t_run("tfm/attention_fused", test_attention_fused);
    t_run("tfm/attention_large_scores", test_attention_large_scores);
    t_run("tfm/gradcheck", test_tfm_gradcheck);
    t_run("tfm/causal", test_tfm_causal);
    t_run("tfm/normalization", test_tfm_normalization);
    t_run("tfm/cache_equals_full", test_tfm_cache_equals_full);
    t_run("tfm/past_T", test_tfm_past_T);
    t_run("tfm/threads_same_bits", test_tfm_threads_same_bits);
    t_run("tfm/cache_checks", test_tfm_cache_checks);
    t_run("tfm/bad_calls", test_tfm_bad_calls);
    t_run("tfm/sampler", test_sampler);
    t_run("tfm/sample", test_tfm_sample);
    t_run("tfm/sample_errors", test_tfm_sample_errors);
    t_run("tfm/step_n", test_tfm_step_n);
    t_run("tfm/speculative", test_tfm_speculative);
    t_run("tfm/speculative_binary", test_tfm_speculative_binary);
    t_run("tfm/checkpoint", test_tfm_checkpoint);
    t_run("tfm/custom_order", test_tfm_custom_order);
}
