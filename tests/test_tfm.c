/* Transformer decoder: gradients, causality, exact normalization over all
   sequences, KV-cache decoding == full recomputation, the sampler. */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

static int make_tfm(ar_tfm *m, int V, int T, int d, int heads, int layers, int pos, uint64_t seed, float scale)
{
    ar_tfm_cfg c = ar_tfm_default(V, T);
    ar_rng r;
    int i;
    c.d = d; c.heads = heads; c.layers = layers; c.ffn = 2 * d + 1; c.pos = pos; c.seed = seed;
    if (ar_tfm_init(m, &c) != AR_OK) return 0;
    ar_rng_seed(&r, seed + 5);
    for (i = 0; i < m->ps.n; i++) /* visible weights, so nothing holds by accident */
        ar_init_uniform(m->ps.t[i], &r, -scale, scale);
    return 1;
}

typedef struct { ar_tfm *m; int in[2 * 4], tg[2 * 4]; } tfm_ctx;
static ar_tensor *tfm_loss(ar_graph *g, void *c)
{
    tfm_ctx *k = (tfm_ctx *)c;
    return ar_mean(g, ar_tfm_nll(k->m, g, k->in, k->tg, 2, 4), AR_ALL);
}

static void test_tfm_gradcheck(void)
{
    int p;
    for (p = 0; p < 3; p++) { /* learned, sinusoidal, rotary */
        ar_tfm m;
        ar_graph g;
        tfm_ctx k;
        double rel = 1;
        const char *worst = NULL;
        int i;
        CHECK(make_tfm(&m, 3, 5, 4, 2, 1, p, 7 + p, 0.8f)); /* one block: deeper ones drown small gradients in float noise */
        for (i = 0; i < 8; i++) { k.in[i] = (i * 5 + 1) % 3; k.tg[i] = (i * 7 + 2) % 3; }
        k.m = &m;
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        CHECK(ar_gradcheck(&g, &m.ps, tfm_loss, &k, 1e-2f, &rel, &worst) == AR_OK);
        /* each op is checked to 3e-4 on its own; through a whole block in
           float32 the finite differences bottom out near 4e-4 (the error
           halves when eps doubles: rounding, not a wrong gradient) */
        CHECK_MSG(rel < 1e-3, "pos %d: relative gradient error %.3g in %s", p, rel, worst ? worst : "?");
        ar_graph_free(&g);
        ar_tfm_free(&m);
    }
}

/* Logits at position t ignore tokens after t, and depend on those before. */
static void test_tfm_causal(void)
{
    enum { V = 5, T = 6 };
    int tok[T] = {1, 4, 0, 2, 3, 1}, t, j, depends = 0;
    ar_tfm m;
    ar_graph g;
    CHECK(make_tfm(&m, V, T, 8, 2, 2, AR_POS_LEARNED, 11, 0.6f));
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (j = 0; j < T; j++) {
        int tok2[T];
        ar_tensor *a, *b;
        memcpy(tok2, tok, sizeof tok);
        tok2[j] = (tok2[j] + 2) % V;
        ar_graph_reset(&g);
        a = ar_tfm_logits(&m, &g, tok, 1, T);
        b = ar_tfm_logits(&m, &g, tok2, 1, T);
        CHECK(a && b);
        for (t = 0; t < T; t++) {
            float diff = 0;
            int v;
            for (v = 0; v < V; v++) diff = fmaxf(diff, fabsf(a->x[t * V + v] - b->x[t * V + v]));
            if (j > t) CHECK_MSG(diff == 0, "logits at %d moved with token %d", t, j);
            else depends += diff > 1e-4f;
        }
    }
    CHECK(depends == T * (T + 1) / 2);
    ar_graph_free(&g);
    ar_tfm_free(&m);
}

/* Sum over all V^n sequences of p(x) = 1 (inputs: start token, then x shifted). */
static void test_tfm_normalization(void)
{
    enum { V = 3, n = 4, N = 81 };
    int in[N * n], tg[N * n], i, t;
    ar_tfm m;
    ar_graph g;
    ar_tensor *nll;
    double s = 0;
    CHECK(make_tfm(&m, V, n, 8, 2, 1, AR_POS_SINUSOIDAL, 13, 0.8f));
    for (i = 0; i < N; i++)
        for (t = 0, in[i * n] = 2; t < n; t++) {
            int x = (i / (t == 0 ? 1 : t == 1 ? 3 : t == 2 ? 9 : 27)) % 3;
            tg[i * n + t] = x;
            if (t + 1 < n) in[i * n + t + 1] = x;
        }
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    ar_graph_set_grad(&g, 0);
    nll = ar_tfm_nll(&m, &g, in, tg, N, n);
    CHECK(nll);
    for (i = 0; i < N; i++) s += exp(-(double)nll->x[i]);
    CHECK_MSG(fabs(s - 1) < 1e-5, "total probability %.9f", s);
    ar_graph_free(&g);
    ar_tfm_free(&m);
}

/* Decoding with the KV cache gives the logits of the full forward pass at
   every position, batched and alone, for both position embeddings. */
static void test_tfm_cache_equals_full(void)
{
    enum { V = 7, T = 9, B = 3 };
    int tok[B * T], step[B], p, b, t, v;
    float lg[B * V];
    for (p = 0; p < 3; p++) {
        ar_tfm m;
        ar_graph g;
        ar_tfm_cache c, c1;
        ar_tensor *full;
        float worst = 0;
        CHECK(make_tfm(&m, V, T, 12, 3, 2, p, 17 + p, 0.4f));
        for (b = 0; b < B * T; b++) tok[b] = (b * 5 + 3) % V;
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        full = ar_tfm_logits(&m, &g, tok, B, T);
        CHECK(full && ar_tfm_cache_init(&c, &m, B) == AR_OK && ar_tfm_cache_init(&c1, &m, 1) == AR_OK);
        for (t = 0; t < T; t++) {
            for (b = 0; b < B; b++) step[b] = tok[b * T + t];
            CHECK(ar_tfm_step(&m, &c, step, lg) == AR_OK);
            for (b = 0; b < B; b++)
                for (v = 0; v < V; v++) worst = fmaxf(worst, fabsf(lg[b * V + v] - full->x[(b * T + t) * V + v]));
            CHECK(ar_tfm_step(&m, &c1, step + 1, lg) == AR_OK); /* sequence 1 alone */
            for (v = 0; v < V; v++) worst = fmaxf(worst, fabsf(lg[v] - full->x[(1 * T + t) * V + v]));
        }
        CHECK_MSG(worst < 2e-5f, "pos %d: cached and full logits differ by %g", p, (double)worst);
        CHECK(ar_tfm_step(&m, &c, step, lg) == AR_ERR_RANGE && strstr(m.err, "full"));
        step[0] = V;
        c.len = 0;
        CHECK(ar_tfm_step(&m, &c, step, lg) == AR_ERR_RANGE && strstr(m.err, "tokens[0]"));
        ar_tfm_cache_free(&c);
        ar_tfm_cache_free(&c1);
        ar_graph_free(&g);
        ar_tfm_free(&m);
    }
}

static void test_sampler(void)
{
    enum { V = 6, N = 60000 };
    float logits[V] = {1.0f, 3.0f, 0.5f, 2.0f, -1.0f, 2.5f}, scratch[2 * V], p[V];
    int counts[V], i, k, x;
    ar_sampler s;
    ar_rng r;
    double z = 0;
    ar_rng_seed(&r, 3);
    s.temperature = 0; s.top_k = 0; s.top_p = 0;
    CHECK(ar_sample_logits(logits, V, &s, &r, scratch) == 1); /* argmax */
    for (i = 0; i < V; i++) z += p[i] = expf(logits[i]);
    for (k = 0; k < 3; k++) { /* plain, top-k 3 ({1,5,3}), top-p 0.8 */
        double mass = 0;
        int allowed[V] = {1, 1, 1, 1, 1, 1};
        s.temperature = 1;
        s.top_k = k == 1 ? 3 : 0;
        s.top_p = k == 2 ? 0.8f : 0;
        if (k == 1) allowed[0] = allowed[2] = allowed[4] = 0;
        if (k == 2) { /* sorted: 3.0, 2.5, 2.0, 1.0 ...: cumulative reaches 0.8 at the third */
            double c = (p[1] + p[5]) / z;
            allowed[0] = allowed[2] = allowed[4] = 0;
            if (c >= 0.8) allowed[3] = 0;
        }
        for (i = 0; i < V; i++) mass += allowed[i] ? p[i] : 0;
        memset(counts, 0, sizeof counts);
        for (i = 0; i < N; i++) {
            x = ar_sample_logits(logits, V, &s, &r, scratch);
            CHECK(x >= 0 && x < V);
            counts[x]++;
        }
        for (i = 0; i < V; i++) {
            double q = allowed[i] ? p[i] / mass : 0, f = (double)counts[i] / N;
            CHECK_MSG(allowed[i] || counts[i] == 0, "case %d: token %d drawn outside the allowed set", k, i);
            CHECK_MSG(fabs(f - q) < 5 * sqrt(q * (1 - q) / N) + 1e-9, "case %d token %d: %.4f vs %.4f", k, i, f, q);
        }
    }
    CHECK(ar_sample_logits(logits, 0, &s, &r, scratch) == -1);
}

/* Completion keeps the given prefix; the same seed gives the same samples. */
static void test_tfm_sample(void)
{
    enum { V = 3, T = 8, B = 4 };
    int out[B * T], again[B * T], prefix[B * 3], b, t;
    ar_tfm m;
    ar_tfm_cache c;
    ar_sampler s;
    ar_rng r;
    s.temperature = 1; s.top_k = 0; s.top_p = 0;
    CHECK(make_tfm(&m, V, T, 8, 2, 1, AR_POS_LEARNED, 23, 0.5f));
    CHECK(ar_tfm_cache_init(&c, &m, B) == AR_OK);
    for (b = 0; b < B * 3; b++) prefix[b] = b % 2;
    ar_rng_seed(&r, 1);
    CHECK(ar_tfm_sample(&m, &c, T, 2, prefix, 3, &s, &r, out) == AR_OK);
    ar_rng_seed(&r, 1);
    CHECK(ar_tfm_sample(&m, &c, T, 2, prefix, 3, &s, &r, again) == AR_OK);
    CHECK(memcmp(out, again, sizeof out) == 0);
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++) {
            CHECK(out[b * T + t] >= 0 && out[b * T + t] < V);
            if (t < 3) CHECK(out[b * T + t] == prefix[b * 3 + t]);
        }
    CHECK(ar_tfm_sample(&m, &c, T + 1, 2, NULL, 0, &s, &r, out) == AR_ERR_ARG && m.err[0]);
    ar_tfm_cache_free(&c);
    ar_tfm_free(&m);
}

static void test_tfm_checkpoint(void)
{
    const char *path = "/tmp/ar_test_tfm.safetensors";
    int tok[2 * 5] = {0, 1, 2, 1, 0, 2, 2, 1, 0, 1};
    ar_tfm a, b;
    ar_nade wrong;
    ar_graph g;
    ar_tensor *la, *lb;
    CHECK(make_tfm(&a, 3, 5, 8, 2, 2, AR_POS_SINUSOIDAL, 31, 0.3f));
    CHECK(ar_tfm_save(&a, path) == AR_OK);
    memset(&b, 0, sizeof b);
    memset(&wrong, 0, sizeof wrong);
    CHECK_MSG(ar_tfm_load(&b, path) == AR_OK, "%s", b.err);
    CHECK(b.cfg.layers == 2 && b.cfg.pos == AR_POS_SINUSOIDAL && b.cfg.d == 8);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    la = ar_tfm_logits(&a, &g, tok, 2, 5);
    lb = ar_tfm_logits(&b, &g, tok, 2, 5);
    CHECK(la && lb && memcmp(la->x, lb->x, la->n * sizeof(float)) == 0);
    CHECK(ar_nade_load(&wrong, path) == AR_ERR_FORMAT && strstr(wrong.err, "ar.model = transformer"));
    remove(path);
    ar_graph_free(&g);
    ar_tfm_free(&a);
    ar_tfm_free(&b);
}

/* A custom generation order through the attention mask: the logits at
   position q never move with the target at a position ranked at or after
   q, do move with earlier ones; the KV cache, stepping in that order, gives
   the full pass's logits; probabilities over all 3^4 sequences sum to 1;
   the sampler writes by position; the order survives a checkpoint. */
static void test_tfm_custom_order(void)
{
    enum { V = 3, T = 6, B = 2 };
    static const int order[T] = {3, 0, 5, 1, 4, 2};
    int rank[T], tg[B * T], in[B * T], tg2[B * T], in2[B * T], step[B], q, j, t, b, v, p;
    float lg[B * V], worst = 0;
    const char *path = "/tmp/ar_test_tfm_order.safetensors";
    for (t = 0; t < T; t++) rank[order[t]] = t;
    for (p = 0; p < 3; p++) { /* learned, sinusoidal, rotary */
        ar_tfm m, m2;
        ar_tfm_cfg c;
        ar_tfm_cache cache;
        ar_graph g;
        ar_tensor *a, *full;
        ar_rng r;
        int depends = 0, out[B * T];
        c = ar_tfm_default(V, T);
        c.d = 8; c.heads = 2; c.layers = 2; c.ffn = 17; c.pos = p; c.order = order; c.seed = 3 + p;
        CHECK(ar_tfm_init(&m, &c) == AR_OK);
        CHECK(m.cfg.order != order && m.cfg.order[0] == 3); /* its own copy */
        ar_rng_seed(&r, 8 + p);
        for (t = 0; t < m.ps.n; t++) ar_init_uniform(m.ps.t[t], &r, -0.6f, 0.6f);
        for (t = 0; t < B * T; t++) tg[t] = (t * 5 + 1) % V;
        CHECK(ar_tfm_inputs(&m, tg, B, T, 2, in) == AR_OK);
        CHECK(in[3] == 2 && in[0] == tg[3] && in[5] == tg[0]); /* shifted along the order */
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        ar_graph_set_grad(&g, 0);
        full = ar_tfm_logits(&m, &g, in, B, T);
        CHECK(full != NULL);
        for (j = 0; full && j < T; j++) {
            memcpy(tg2, tg, sizeof tg);
            tg2[j] = (tg2[j] + 1) % V;
            CHECK(ar_tfm_inputs(&m, tg2, B, T, 2, in2) == AR_OK);
            a = ar_tfm_logits(&m, &g, in2, B, T);
            CHECK(a != NULL);
            for (q = 0; a && q < T; q++) {
                float d = 0;
                for (v = 0; v < V; v++) d = fmaxf(d, fabsf(a->x[q * V + v] - full->x[q * V + v]));
                if (rank[j] >= rank[q]) CHECK_MSG(d == 0, "pos %d: logits at %d moved with target %d", p, q, j);
                else depends += d > 1e-5f;
            }
        }
        CHECK_MSG(depends == T * (T - 1) / 2, "pos %d: %d of %d earlier targets seen", p, depends, T * (T - 1) / 2);
        CHECK(ar_tfm_cache_init(&cache, &m, B) == AR_OK);
        for (t = 0; full && t < T; t++) { /* step t feeds the input at position order[t] */
            for (b = 0; b < B; b++) step[b] = in[b * T + order[t]];
            CHECK(ar_tfm_step(&m, &cache, step, lg) == AR_OK);
            for (b = 0; b < B; b++)
                for (v = 0; v < V; v++)
                    worst = fmaxf(worst, fabsf(lg[b * V + v] - full->x[(b * T + order[t]) * V + v]));
        }
        CHECK_MSG(worst < 2e-5f, "pos %d: cached and full logits differ by %g", p, (double)worst);
        { /* the sampler: prefix in step order, out by position, the prefix's positions kept */
            ar_sampler smp = {1.0f, 0, 0.0f};
            int pre[B * 2] = {1, 0, 2, 2};
            CHECK(ar_tfm_sample(&m, &cache, T, 2, pre, 2, &smp, &r, out) == AR_OK);
            CHECK(out[order[0]] == 1 && out[order[1]] == 0 && out[T + order[0]] == 2 && out[T + order[1]] == 2);
        }
        { /* exact normalization over all 3^6 sequences */
            static int all[729 * T], allin[729 * T];
            ar_tensor *nll;
            double total = 0;
            for (b = 0; b < 729; b++)
                for (t = 0, q = b; t < T; t++, q /= 3) all[b * T + t] = q % 3;
            CHECK(ar_tfm_inputs(&m, all, 729, T, 2, allin) == AR_OK);
            ar_graph_reset(&g);
            nll = ar_tfm_nll(&m, &g, allin, all, 729, T);
            CHECK(nll != NULL);
            for (b = 0; nll && b < 729; b++) total += exp(-(double)nll->x[b]);
            CHECK_MSG(fabs(total - 1) < 1e-5, "pos %d: total probability %.9f", p, total);
        }
        CHECK(ar_tfm_save(&m, path) == AR_OK);
        memset(&m2, 0, sizeof m2);
        CHECK_MSG(ar_tfm_load(&m2, path) == AR_OK, "%s", m2.err);
        CHECK(m2.order && memcmp(m2.order, order, sizeof order) == 0);
        remove(path);
        ar_tfm_free(&m2);
        c.order = (const int[T]){0, 1, 1, 2, 3, 4};
        CHECK(ar_tfm_init(&m2, &c) == AR_ERR_ARG && strstr(m2.err, "permutation"));
        ar_tfm_cache_free(&cache);
        ar_graph_free(&g);
        ar_tfm_free(&m);
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

void tests_tfm(void)
{
    t_run("tfm/attention_fused", test_attention_fused);
    t_run("tfm/gradcheck", test_tfm_gradcheck);
    t_run("tfm/causal", test_tfm_causal);
    t_run("tfm/normalization", test_tfm_normalization);
    t_run("tfm/cache_equals_full", test_tfm_cache_equals_full);
    t_run("tfm/sampler", test_sampler);
    t_run("tfm/sample", test_tfm_sample);
    t_run("tfm/checkpoint", test_tfm_checkpoint);
    t_run("tfm/custom_order", test_tfm_custom_order);
}
