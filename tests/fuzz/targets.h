/* Fuzz targets, shared by the libFuzzer driver (fuzz.c) and the unit test
   that replays saved inputs (test_fuzz.c). Each returns 0; a bug shows as
   a crash, a sanitizer report, or __builtin_trap on a broken invariant. */
#ifndef AR_FUZZ_TARGETS_H
#define AR_FUZZ_TARGETS_H
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../ar.h"

#ifndef FUZZ_CHECK
#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)
#endif

/* safetensors into a fixed model: a failed load must leave it untouched. */
static int fuzz_safetensors(const uint8_t *data, size_t size)
{
    ar_params ps;
    ar_meta meta;
    int s1[2] = {3, 4}, s2[1] = {3};
    float before[15];
    ar_status s;
    ar_params_init(&ps);
    ar_meta_init(&meta);
    ar_params_add(&ps, "layer.W", 2, s1);
    ar_params_add(&ps, "layer.b", 1, s2);
    if (ar_params_alloc(&ps) != AR_OK) return 0;
    memset(ps.x, 0x3f, ps.total * sizeof(float));
    memcpy(before, ps.x, sizeof before);
    s = ar_params_load_mem(&ps, data, size, &meta);
    FUZZ_CHECK(s == AR_OK || s == AR_ERR_FORMAT || s == AR_ERR_NOMEM);
    FUZZ_CHECK(s == AR_OK || (memcmp(before, ps.x, sizeof before) == 0 && ps.err[0] && meta.n == 0));
    ar_meta_free(&meta);
    ar_params_free(&ps);
    return 0;
}

static int fuzz_idx(const uint8_t *data, size_t size)
{
    ar_idx idx;
    ar_status s = ar_idx_load_mem(&idx, data, size);
    FUZZ_CHECK(s == AR_OK ? idx.data != NULL || idx.n == 0 : idx.data == NULL && idx.err[0]);
    if (s == AR_OK) FUZZ_CHECK(idx.n == size - 4 - 4 * (size_t)idx.nd);
    ar_idx_free(&idx);
    return 0;
}

/* x [n] holds valid data for m: values it accepts. */
static void fuzz_valid_data(const ar_model *m, ar_rng *r, float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        x[i] = m->levels ? (float)ar_rng_below(r, (uint32_t)m->levels) : 0.05f + 0.9f * ar_rng_uniform(r);
}

/* Weights of moderate size: real-valued samples of a model whose weights
   are near FLT_MAX (a corrupted file) may overflow to Inf by arithmetic. */
static int fuzz_moderate(const ar_model *m)
{
    size_t i;
    for (i = 0; i < m->ps.total; i++)
        if (!(fabsf(m->ps.x[i]) <= 1e3f)) return 0;
    return 1;
}

/* A sample x [n] is valid data for m (discrete: always; real: finite when
   the weights are moderate), and the given places kept. */
static int fuzz_valid_sample(const ar_model *m, const float *x, size_t n, const float *given, const unsigned char *known)
{
    size_t i;
    int moderate = m->levels || fuzz_moderate(m);
    for (i = 0; i < n; i++) {
        if (known && known[i] && x[i] != given[i]) return 0;
        if (m->levels ? !(x[i] >= 0 && x[i] < (float)m->levels && x[i] == floorf(x[i])) : moderate && !isfinite(x[i]))
            return 0;
    }
    return 1;
}

/* Model checkpoints of any kind through the one loader, into a struct of
   garbage (output only); then, if small, a likelihood and a sample. */
static int fuzz_model(const uint8_t *data, size_t size)
{
    ar_model m;
    ar_rng r;
    ar_status s;
    memset(&m, 0xAB, sizeof m);
    ar_rng_seed(&r, 1);
    s = ar_model_load_mem(&m, data, size);
    FUZZ_CHECK(s == AR_OK ? m.err[0] == 0 && m.ps.x != NULL : m.err[0] != 0 && m.ps.x == NULL);
    if (s == AR_OK && m.D <= 64 && m.ps.total <= 100000 && m.levels <= 256) {
        float x[2 * 64], lp[2], y[64], probs[64 * 256];
        ar_sample_opts o = ar_sample_defaults();
        fuzz_valid_data(&m, &r, x, 2 * (size_t)m.D);
        s = ar_model_log_prob(&m, x, 2, lp);
        FUZZ_CHECK(s == AR_OK ? m.err[0] == 0 : m.err[0] != 0);
        o.probs = probs;
        s = ar_model_sample(&m, 1, &o, &r, y);
        FUZZ_CHECK(s == AR_OK ? m.err[0] == 0 && fuzz_valid_sample(&m, y, (size_t)m.D, NULL, NULL) : m.err[0] != 0);
    }
    ar_model_free(&m); /* a failed load holds no model: free is fine */
    return 0;
}

/* ---- API sequences -----------------------------------------------------------
   The input is a program of 12-byte instructions: an opcode and 11 argument
   bytes, each 0 meaning the ordinary, valid choice. It drives tiny models
   of every family (three slots), two KV caches, a graph with a few tensors
   of its own and a parameter set, through the public calls with good and
   bad arguments: NULLs, sizes <= 0, NaN options, wrong kinds, freed
   models, caches of other models, graph ops on wrong shapes. Invariants:
   no crash or sanitizer report; a failing call leaves a message in the
   object's err (and success an empty one); samples are valid data. */

enum {
    FZ_INIT, FZ_FREE, FZ_NLL, FZ_BACKWARD, FZ_LOGPROB, FZ_SAMPLE, FZ_SAVELOAD, FZ_BIAS, FZ_SETMASK, FZ_MADELP,
    FZ_MADELOGITS, FZ_CACHEINIT, FZ_STEP, FZ_CACHEFREE, FZ_TFMLOGITS, FZ_CNNLOGITS, FZ_SAMPLELOGITS, FZ_GRAPHOP,
    FZ_OPTIM, FZ_RESET, FZ_NOPS
};
#define FZ_REC 12      /* bytes per instruction */
#define FZ_MAXOPS 64   /* instructions per input */
#define FZ_SLOTS 3
#define FZ_POOL 8      /* graph tensors kept until the next reset */
#define FZ_MAXEL 256   /* elements of a pooled tensor, and of every aux buffer */

typedef struct fz_block { struct fz_block *next; } fz_block;

typedef struct {
    ar_model m[FZ_SLOTS];
    ar_tfm_cache c[2];
    ar_graph g;
    ar_params ps;              /* a few parameters for graph ops and the optimizer */
    ar_tensor *pool[FZ_POOL];  /* graph tensors, valid until the next reset */
    ar_tensor *loss[FZ_SLOTS]; /* the last nll of each slot, valid until reset */
    fz_block *gdata;           /* data borrowed by the graph: freed at reset */
    ar_rng rng;
    int order[64];
    unsigned char *saved;      /* the last ar_model_save_mem */
    size_t nsaved;
} fz_state;

/* Memory that must live until the graph's next reset (ar_input data,
   labels, ids, masks, tokens): the graph borrows it. Zero-filled. */
static void *fz_gmem(fz_state *st, size_t bytes)
{
    fz_block *b = (fz_block *)calloc(1, sizeof(fz_block) + bytes + 16);
    if (!b) __builtin_trap();
    b->next = st->gdata;
    st->gdata = b;
    return (void *)(b + 1);
}

static void fz_reset(fz_state *st)
{
    int i;
    ar_graph_reset(&st->g);
    while (st->gdata) {
        fz_block *n = st->gdata->next;
        free(st->gdata);
        st->gdata = n;
    }
    for (i = 0; i < FZ_POOL; i++) st->pool[i] = NULL;
    for (i = 0; i < FZ_SLOTS; i++) st->loss[i] = NULL;
}

/* The message rule for a call on an object with error buffer err. */
#define FZ_MSG(s, err) FUZZ_CHECK((s) == AR_OK ? (err)[0] == 0 : (err)[0] != 0)
/* A graph op's result: NULL with a message, or a tensor on a healthy graph. */
#define FZ_GRAPH(t, g) FUZZ_CHECK((t) ? (g).status == AR_OK : (g).err[0] != 0 && (g).status != AR_OK)

static int fz_live(const ar_model *m) { return m->ps.x != NULL; }
/* Values per example and, for probs, per value, of a live model (else small stand-ins). */
static size_t fz_D(const ar_model *m) { return fz_live(m) ? (size_t)m->D : 16; }
static size_t fz_P(const ar_model *m) { return fz_live(m) && m->levels > 2 ? (size_t)m->levels : 1; }

static const int fz_Ns[8] = {2, 1, 3, 4, 0, -1, INT_MIN, 2};
static size_t fz_nbuf(int N) { return N > 0 ? (size_t)N : 1; }

/* Data for m: valid, or with one bad value, or NULL. */
static float *fz_data(fz_state *st, const ar_model *m, int N, int mode, int bad, size_t where, int graph)
{
    static const float bads[8] = {0.5f, -1, 2, 3, NAN, INFINITY, -INFINITY, 1e30f};
    size_t n = fz_nbuf(N) * fz_D(m);
    float *x;
    if (mode == 3) return NULL;
    x = graph ? (float *)fz_gmem(st, n * sizeof(float)) : (float *)malloc(n * sizeof(float));
    if (!x) __builtin_trap();
    if (fz_live(m)) fuzz_valid_data(m, &st->rng, x, n);
    else memset(x, 0, n * sizeof(float));
    if (mode == 1) x[where % n] = bads[bad & 7];
    if (mode == 2 && fz_live(m) && m->levels) x[where % n] = (float)m->levels;
    return x;
}

/* A configuration of a tiny model of any kind from a[0..9], sometimes broken. */
static void fz_cfg(fz_state *st, const uint8_t *a, ar_model_cfg *c)
{
    ar_kind kind = (ar_kind)(a[0] % AR_KIND_COUNT);
    int rows = 1 + a[1] % 3, cols = 1 + a[2] % 4, D = rows * cols, i;
    *c = ar_model_default(kind, rows, cols);
    c->seed = a[3];
    switch (kind) {
    case AR_MADE:
        c->made.n_hidden = a[4] % 3;
        for (i = 0; i < c->made.n_hidden; i++) c->made.hidden[i] = 1 + (a[5] >> (2 * i)) % 5;
        c->made.direct = a[6] & 1;
        c->made.n_masks = 1 + a[6] / 2 % 3;
        c->made.order_agnostic = a[6] / 8 % 2;
        break;
    case AR_FVSBN: break;
    case AR_NADE: c->nade.H = 1 + a[4] % 4; break;
    case AR_RNADE:
        c->nade.H = 1 + a[4] % 4;
        c->nade.K = 1 + a[5] % 3;
        c->nade.transform = a[6] % 2 ? AR_TRANSFORM_NONE : AR_TRANSFORM_LOGIT;
        break;
    case AR_TRANSFORMER:
        c->tfm.V = 2 + a[4] % 4;
        c->tfm.heads = 1 + a[5] % 2;
        c->tfm.d = c->tfm.heads * (2 + 2 * (a[5] / 2 % 2));
        c->tfm.layers = 1 + a[6] % 2;
        c->tfm.ffn = 1 + a[6] / 2 % 8;
        c->tfm.pos = a[6] / 16 % 3;
        break;
    default: {
        static const int levels[4] = {1, 2, 3, 5};
        c->cnn.levels = levels[a[4] % 4];
        c->cnn.channels = 1 + a[5] % 3;
        c->cnn.layers = a[5] / 4 % 3;
        c->cnn.kernel = 1 + 2 * (a[6] % 2);
        c->cnn.first_kernel = 3 + 2 * (a[6] / 2 % 2);
        c->cnn.dilations = 1 + a[6] / 4 % 3;
        c->cnn.coords = a[6] / 16 % 2;
    }
    }
    if (a[7] % 4 == 1 || a[7] % 4 == 2) { /* a custom order; 2: not a permutation */
        for (i = 0; i < D; i++) st->order[i] = i;
        ar_rng_shuffle(&st->rng, st->order, D);
        if (a[7] % 4 == 2) st->order[a[8] / 8 % D] = D > 1 ? st->order[(a[8] / 8 + 1) % D] : -1;
        c->order = st->order;
    }
    if (a[9] % 4 == 1) { /* a broken field */
        static const int vals[8] = {0, -1, INT_MIN, 2, 3, 17, 65537, 64};
        int v = vals[a[8] % 8], alt = a[8] & 64;
        switch (a[9] / 4 % 20) {
        /* sizes: overflowing or <= 0 only (a valid large size may rightly ask for gigabytes) */
        case 0: c->rows = alt ? 65536 : v <= 0 ? v : 0; c->cols = alt ? 65536 : c->cols; break;
        case 1: c->cols = alt ? INT_MAX : v <= 0 ? v : -1; c->rows = alt ? 2 : c->rows; break;
        case 2: c->made.n_hidden = alt ? AR_MADE_MAX_HIDDEN + 1 : v < 0 ? v : 0; break;
        case 3: c->made.hidden[0] = v < 2 ? v : 0; break;
        case 4: c->made.n_masks = v < 2 ? v : 0; break;
        case 5: c->nade.H = v < 2 ? v : 0; break;
        case 6: c->nade.K = alt ? AR_NADE_MAX_K + 1 : v < 2 ? v : 0; break;
        case 7: c->nade.transform = v; break;
        case 8: c->tfm.V = v < 2 ? v : 1; break;
        case 9: c->tfm.d = v < 4 ? v : 3; break;
        case 10: c->tfm.heads = v < 4 ? v : 3; break;
        case 11: c->tfm.layers = alt ? AR_TFM_MAX_LAYERS + 1 : v < 2 ? v : 0; break;
        case 12: c->tfm.ffn = v < 2 ? v : 0; break;
        case 13: c->tfm.pos = v < 4 ? v : 3; break;
        case 14: c->cnn.levels = alt ? 65537 : v < 2 ? v : 0; break;
        case 15: c->cnn.channels = v < 2 ? v : 0; break;
        case 16: c->cnn.layers = alt ? AR_CNN_MAX_LAYERS : v < 2 ? v : -1; break;
        case 17: c->cnn.kernel = alt ? 2 : v < 4 ? v : 33; break;
        case 18: c->cnn.dilations = alt ? 21 : v < 2 ? v : 0; break;
        default: c->kind = (ar_kind)(alt ? AR_KIND_COUNT : -1); break;
        }
    }
}

/* Sampling options from a[0..4]: temperature, top-k, top-p, naive, completion. */
static void fz_opts(fz_state *st, const uint8_t *a, const ar_model *m, int N, ar_sample_opts *o, float **given,
                    unsigned char **known)
{
    static const float temps[8] = {1, 0, 0.5f, 2, NAN, -1, INFINITY, 1e-30f};
    static const float tops[8] = {0, 0.9f, 0.5f, 1, NAN, -0.1f, 1.5f, 1e-9f};
    static const int ks[8] = {0, 1, 2, 3, -1, 1000, INT_MIN, 0};
    size_t n = fz_nbuf(N) * fz_D(m), i;
    *o = ar_sample_defaults();
    o->temperature = temps[a[0] % 8];
    o->top_k = ks[a[1] % 8];
    o->top_p = tops[a[2] % 8];
    o->naive = a[3] % 3 == 1;
    *given = NULL;
    *known = NULL;
    if (a[4] % 5 == 0) return;
    *given = (float *)malloc(n * sizeof(float));
    *known = (unsigned char *)calloc(n, 1);
    if (!*given || !*known) __builtin_trap();
    if (fz_live(m)) fuzz_valid_data(m, &st->rng, *given, n);
    else memset(*given, 0, n * sizeof(float));
    for (i = 0; i < n; i++) /* 1: a prefix of 2 places per example; 2: random places */
        (*known)[i] = a[4] % 5 == 1 ? i % fz_D(m) < 2 : ar_rng_below(&st->rng, 3) == 0;
    if (a[4] % 5 == 3) (*given)[a[5] % n] = a[5] & 1 ? NAN : 0.5f; /* a bad given value (if known there) */
    o->given = a[4] % 5 == 4 ? NULL : *given; /* 4: known without given */
    o->known = *known;
}

/* One graph op on pooled tensors (or NULL), shapes and aux data from a. */
static void fz_graphop(fz_state *st, const uint8_t *a)
{
    ar_graph *g = &st->g;
    ar_tensor *x = st->pool[a[1] % FZ_POOL], *y = st->pool[a[2] % FZ_POOL], *t = NULL;
    ar_tensor *p = a[3] & 1 ? st->ps.t[a[3] / 2 % st->ps.n] : NULL;
    int shape[8], nd = a[4] % 5, i;
    int *ints = (int *)fz_gmem(st, (FZ_MAXEL + 8) * sizeof(int));
    float *fl = (float *)fz_gmem(st, (FZ_MAXEL + 8) * sizeof(float));
    for (i = 0; i < 8; i++) shape[i] = 1 + (a[5 + i % 4] >> (i / 4 * 2)) % 3;
    if (a[9] % 8 == 1) shape[a[9] / 8 % 4] = a[9] & 64 ? 0 : -1;
    for (i = 0; i < FZ_MAXEL + 8; i++) {
        ints[i] = (int)ar_rng_below(&st->rng, 4) - (a[10] % 8 == 1); /* sometimes -1: a bad label or id */
        fl[i] = ar_rng_uniform(&st->rng) * 2 - 1;
    }
    if (a[10] % 8 == 2) fl[a[10] / 8] = NAN;
    if (a[10] % 8 == 3) for (i = 0; i < FZ_MAXEL; i++) ints[i] = i; /* a permutation */
    if (!x && a[0] % 4 == 0) x = p;
    switch (a[0] % 34) {
    case 0: t = ar_input(g, fl, nd, shape); break; /* at most 81 values: fl holds more */
    case 1: t = ar_zeros(g, nd, shape); break;
    case 2: t = ar_matmul(g, x, y ? y : p, a[10] & 1, a[10] >> 1 & 1); break;
    case 3: t = ar_linear(g, x, p, a[10] & 1 ? y : NULL); break;
    case 4: t = ar_add(g, x, y ? y : p); break;
    case 5: t = ar_sub(g, x, y); break;
    case 6: t = ar_mul(g, x, y ? y : p); break;
    case 7: t = ar_scale(g, x, a[10] & 1 ? NAN : 0.5f); break;
    case 8: t = ar_sum(g, x, (int)(a[10] % 7) - 2); break;
    case 9: t = ar_mean(g, x, (int)(a[10] % 7) - 2); break;
    case 10: t = a[10] & 1 ? ar_sigmoid(g, x) : ar_tanh(g, x); break;
    case 11: t = a[10] & 1 ? ar_relu(g, x) : ar_gelu(g, x); break;
    case 12: t = a[10] & 1 ? ar_softplus(g, x) : ar_exp(g, x); break;
    case 13: t = a[10] & 1 ? ar_log(g, x) : ar_log_sigmoid(g, x); break;
    case 14: t = a[10] % 3 == 0 ? ar_softmax(g, x) : a[10] % 3 == 1 ? ar_log_softmax(g, x) : ar_logsumexp(g, x); break;
    case 15: t = ar_causal_softmax(g, x, 0.5f); break;
    case 16: t = ar_causal_softmax_order(g, x, 0.5f, a[10] & 1 ? ints : NULL); break;
    case 17: t = ar_attention(g, x, 1 + a[10] % 3, 0.5f, a[10] & 8 ? ints : NULL, a[10] >> 4 & 1); break;
    case 18: t = ar_layernorm(g, x, a[10] & 1 ? p : NULL, a[10] & 2 ? y : NULL, a[10] & 4 ? 0 : 1e-5f); break;
    case 19: t = ar_embedding(g, p ? p : x, ints, nd, shape); break;
    case 20: t = ar_slice(g, x, (int)(a[10] % 6) - 1, (int)(a[6] % 4) - 1, (int)(a[7] % 4) - 1); break;
    case 21: t = ar_concat(g, x, y, (int)(a[10] % 6) - 1); break;
    case 22: t = ar_reshape(g, x, nd, shape); break;
    case 23: { /* a permutation of the axes, or not */
        int perm[AR_MAX_DIM + 4];
        for (i = 0; i < AR_MAX_DIM + 4; i++) perm[i] = (i + a[10]) % (x ? (x->nd > 0 ? x->nd : 1) : 4);
        if (a[9] & 1) perm[0] = a[9] % 7 - 1;
        t = ar_permute(g, x, perm);
        break;
    }
    case 24: t = ar_rope(g, x, (int)(a[10] % 5) - 1); break;
    case 25: t = ar_masked_fill(g, x, fl, (size_t)(a[10] % 9), -1); break;
    case 26: t = ar_bce_logits(g, x, fl); break;
    case 27: t = ar_cross_entropy(g, x, ints); break;
    case 28: t = ar_conv2d(g, x, p ? p : y, a[10] & 1 ? y : NULL, (int)(a[6] % 4) - 1, (int)(a[7] % 4) - 1,
                           (int)(a[8] % 3), (int)(a[10] / 2 % 6) - 1); break;
    case 29: t = ar_conv1d(g, x, p ? p : y, a[10] & 1 ? y : NULL, (int)(a[8] % 3), (int)(a[10] / 2 % 4) - 1); break;
    case 30: t = ar_gate(g, x); break;
    case 31: t = ar_masked_linear(g, x, p ? p : y, a[10] & 1 ? y : NULL, ints, ints + FZ_MAXEL / 2, a[10] / 2 % 3); break;
    case 32: { /* a loss: backward through whatever it is (one element or not) */
        ar_status s;
        t = a[10] & 1 ? ar_sum(g, x, AR_ALL) : x;
        s = ar_backward(g, t);
        FUZZ_CHECK(s == AR_OK || g->err[0] != 0);
        return;
    }
    default: t = ar_input(g, NULL, nd, shape); break;
    }
    FZ_GRAPH(t, *g);
    if (t) {
        size_t m = 1;
        FUZZ_CHECK(t->nd >= 0 && t->nd <= AR_MAX_DIM);
        for (i = 0; i < t->nd; i++) m *= (size_t)t->shape[i];
        FUZZ_CHECK(m == t->n);
        if (t->n <= FZ_MAXEL) st->pool[a[10] / 16 % FZ_POOL] = t;
    }
}

static int fuzz_api(const uint8_t *data, size_t size)
{
    static fz_state st; /* large; one run at a time */
    size_t pc, nops = size / FZ_REC;
    int i;
    memset(&st, 0, sizeof st);
    ar_rng_seed(&st.rng, 12345);
    if (ar_graph_init(&st.g, 0) != AR_OK) return 0;
    ar_params_init(&st.ps);
    {
        int s1[2] = {3, 4}, s2[1] = {4}, s3[4] = {2, 3, 3, 2};
        ar_params_add(&st.ps, "W", 2, s1);
        ar_params_add(&st.ps, "b", 1, s2);
        ar_params_add(&st.ps, "K", 4, s3);
        if (ar_params_alloc(&st.ps) != AR_OK) { ar_graph_free(&st.g); return 0; }
        for (i = 0; i < st.ps.n; i++) ar_init_uniform(st.ps.t[i], &st.rng, -1, 1);
    }
    if (nops > FZ_MAXOPS) nops = FZ_MAXOPS;
    for (pc = 0; pc < nops; pc++) {
        const uint8_t *op = data + pc * FZ_REC, *a = op + 1;
        ar_model *m = &st.m[a[0] % FZ_SLOTS]; /* most ops: a[0] picks the model */
        ar_status s;
        switch (op[0] % FZ_NOPS) {
        case FZ_INIT: {
            ar_model_cfg c;
            fz_reset(&st); /* the graph may hold this model's parameters */
            ar_model_free(m);
            fz_cfg(&st, a + 1, &c);
            s = ar_model_init(m, &c);
            FZ_MSG(s, m->err);
            FUZZ_CHECK(s == AR_OK ? fz_live(m) : !fz_live(m));
            break;
        }
        case FZ_FREE:
            fz_reset(&st);
            ar_model_free(m);
            FUZZ_CHECK(!fz_live(m));
            break;
        case FZ_NLL: {
            int N = fz_Ns[a[1] % 8];
            float *x;
            ar_tensor *t;
            if (a[5] % 2) fz_reset(&st);
            x = fz_data(&st, m, N, a[2] % 4, a[3], a[4], 1);
            t = ar_model_nll(a[6] % 16 == 1 ? NULL : m, a[6] % 16 == 2 ? NULL : &st.g, x, N,
                             a[7] % 2 ? NULL : &st.rng);
            if (a[6] % 16 != 1) FUZZ_CHECK(t ? m->err[0] == 0 && t->n == (size_t)N : m->err[0] != 0);
            if (t) st.loss[a[0] % FZ_SLOTS] = t;
            break;
        }
        case FZ_BACKWARD: {
            ar_tensor *l = st.loss[a[0] % FZ_SLOTS];
            if (!l) break;
            if (a[1] % 2) ar_params_zero_grad(&m->ps);
            s = ar_backward(&st.g, ar_mean(&st.g, l, AR_ALL));
            FZ_MSG(s, st.g.err);
            break;
        }
        case FZ_LOGPROB: {
            int N = fz_Ns[a[1] % 8];
            float *x = fz_data(&st, m, N, a[2] % 4, a[3], a[4], 0), *out = (float *)malloc(fz_nbuf(N) * sizeof(float));
            if (!out) __builtin_trap();
            s = ar_model_log_prob(a[6] % 16 == 1 ? NULL : m, x, N, a[5] % 8 == 1 ? NULL : out);
            if (a[6] % 16 != 1) FZ_MSG(s, m->err);
            if (s == AR_OK && fz_live(m) && m->levels && fuzz_moderate(m))
                for (i = 0; i < N; i++) FUZZ_CHECK(!isnan(out[i]) && out[i] <= 1e-3f);
            free(x);
            free(out);
            break;
        }
        case FZ_SAMPLE: {
            int N = fz_Ns[a[1] % 8];
            ar_sample_opts o;
            float *given, *x, *probs;
            unsigned char *known;
            size_t n;
            fz_opts(&st, a + 2, m, N, &o, &given, &known);
            n = fz_nbuf(N) * fz_D(m);
            x = (float *)malloc(n * sizeof(float));
            probs = (float *)malloc(n * fz_P(m) * sizeof(float));
            if (!x || !probs) __builtin_trap();
            o.probs = a[8] % 2 ? NULL : probs;
            if (a[8] % 8 >= 4) { /* speculative: another slot (maybe freed, or of another kind) drafts */
                o.draft = &st.m[a[10] % FZ_SLOTS];
                o.draft_k = (int)(a[10] / FZ_SLOTS % 18) - 1;
            }
            s = ar_model_sample(a[9] % 16 == 1 ? NULL : m, N, a[9] % 16 == 2 ? NULL : &o, a[9] % 16 == 3 ? NULL : &st.rng,
                                a[9] % 16 == 4 ? NULL : x);
            if (a[9] % 16 != 1) FZ_MSG(s, m->err);
            if (s == AR_OK && fz_live(m)) {
                size_t D = (size_t)m->D, P = fz_P(m), j;
                FUZZ_CHECK(fuzz_valid_sample(m, x, (size_t)N * D, o.given, o.known));
                for (j = 0; o.probs && j < (size_t)N * D * P; j++)
                    if (!(o.known && o.known[j / P]))
                        FUZZ_CHECK(m->levels ? o.probs[j] >= 0 && o.probs[j] <= 1 : !fuzz_moderate(m) || isfinite(o.probs[j]));
                if (m->levels && fuzz_moderate(m)) { /* its own samples are likely data */
                    float *lp = (float *)malloc((size_t)N * sizeof(float));
                    if (!lp) __builtin_trap();
                    s = ar_model_log_prob(m, x, N, lp);
                    FUZZ_CHECK(s == AR_OK || (s == AR_ERR_NOMEM && m->err[0]));
                    for (i = 0; s == AR_OK && i < N; i++) FUZZ_CHECK(!isnan(lp[i]) && lp[i] <= 1e-3f);
                    free(lp);
                }
            }
            free(given); free(known); free(x); free(probs);
            break;
        }
        case FZ_SAVELOAD: {
            ar_model *dst = &st.m[a[1] % FZ_SLOTS];
            int fresh = 0;
            if (a[2] % 2 == 0 || !st.saved) { /* save */
                ar_free(st.saved);
                st.saved = NULL;
                s = ar_model_save_mem(m, a[3] % 16 == 1 ? NULL : &st.saved, &st.nsaved);
                FZ_MSG(s, m->err);
                if (s != AR_OK) st.saved = NULL;
                else FUZZ_CHECK(st.saved != NULL && st.nsaved > 0);
                if (s != AR_OK || a[2] % 4 == 0) break;
                fresh = 1;
            }
            { /* load, the bytes maybe changed or cut */
                unsigned char *b = (unsigned char *)malloc(st.nsaved);
                size_t len = st.nsaved;
                int same = a[4] % 4 == 0;
                if (!b) __builtin_trap();
                memcpy(b, st.saved, st.nsaved);
                if (a[4] % 4 == 1) b[((size_t)a[5] << 8 | a[6]) % len] ^= (unsigned char)(1 + a[7]);
                if (a[4] % 4 == 2) len = len * a[7] / 256;
                fz_reset(&st);
                if (dst == m) fresh = 0; /* loading over the model just saved: nothing to compare with */
                ar_model_free(dst);
                if (a[3] % 4 == 2) memset(dst, 0xAB, sizeof *dst); /* output only */
                s = ar_model_load_mem(dst, b, len);
                FZ_MSG(s, dst->err);
                FUZZ_CHECK(s == AR_OK ? fz_live(dst) : !fz_live(dst));
                if (same) FUZZ_CHECK(s == AR_OK || s == AR_ERR_NOMEM);
                if (s == AR_OK && same && fresh && fuzz_moderate(m)) { /* the same model */
                    float *x = fz_data(&st, m, 2, 0, 0, 0, 0), l1[2], l2[2];
                    ar_status s1 = ar_model_log_prob(m, x, 2, l1), s2 = ar_model_log_prob(dst, x, 2, l2);
                    FUZZ_CHECK(dst->kind == m->kind && dst->D == m->D && dst->levels == m->levels);
                    FUZZ_CHECK(s1 == s2 && (s1 != AR_OK || memcmp(l1, l2, sizeof l1) == 0));
                    free(x);
                }
                free(b);
            }
            break;
        }
        case FZ_BIAS: {
            int N = fz_Ns[a[1] % 8];
            float *x = fz_data(&st, m, N, a[2] % 4, a[3], a[4], 0);
            s = ar_model_init_bias(m, x, N);
            FZ_MSG(s, m->err);
            free(x);
            break;
        }
        case FZ_SETMASK:
            s = ar_made_set_mask(m, (int)(a[1] % 6) - 1);
            FZ_MSG(s, m->err);
            break;
        case FZ_MADELP: {
            int N = fz_Ns[a[1] % 8];
            float *x = fz_data(&st, m, N, a[2] % 4, a[3], a[4], 0), *out = (float *)malloc(fz_nbuf(N) * sizeof(float));
            if (!out) __builtin_trap();
            s = ar_made_log_prob(m, x, N, (int)(a[5] % 6) - 2, a[6] % 8 == 1 ? NULL : out);
            FZ_MSG(s, m->err);
            free(x);
            free(out);
            break;
        }
        case FZ_MADELOGITS: {
            int N = 1 + a[1] % 3, shape[2];
            float *x = fz_data(&st, m, N + 1, a[2] % 4 == 3 ? 0 : a[2] % 4, a[3], a[4], 1); /* room for N (D+1) */
            ar_tensor *in, *t;
            shape[0] = N;
            shape[1] = (int)fz_D(m) + (a[5] % 4 == 1);
            in = ar_input(&st.g, x, a[5] % 4 == 2 ? 1 : 2, shape);
            t = ar_made_logits(m, &st.g, a[5] % 4 == 3 ? NULL : in);
            FUZZ_CHECK(t ? m->err[0] == 0 : m->err[0] != 0);
            break;
        }
        case FZ_CACHEINIT: {
            static const int Bs[8] = {1, 2, 3, 0, -1, INT_MIN, 4, 1};
            ar_tfm_cache *c = &st.c[a[1] % 2];
            ar_tfm_cache_free(c);
            if (a[2] % 4 == 1) memset(c, 0xAB, sizeof *c); /* output only */
            s = ar_tfm_cache_init(c, m, Bs[a[3] % 8]);
            FZ_MSG(s, m->err);
            if (s != AR_OK) memset(c, 0, sizeof *c); /* init failed: nothing to free */
            break;
        }
        case FZ_STEP: {
            ar_tfm_cache *c = &st.c[a[1] % 2];
            int B = c->B > 0 && c->B <= 4 ? c->B : 4, V = fz_live(m) && m->levels > 0 ? m->levels : 8, *tok;
            int n = a[8] % 4 == 1 ? (int)(a[9] % 20) - 1 : 1, cnt = B * (n > 0 ? n : 1); /* ar_tfm_step_n */
            float *lg;
            tok = (int *)malloc((size_t)cnt * sizeof(int));
            lg = (float *)malloc((size_t)cnt * (size_t)V * sizeof(float));
            if (!tok || !lg) __builtin_trap();
            for (i = 0; i < cnt; i++) tok[i] = (int)ar_rng_below(&st.rng, (uint32_t)V);
            if (a[2] % 8 == 1) tok[a[3] % cnt] = a[3] & 1 ? V : -1;
            if (a[4] % 8 == 1) c->len = 0; /* restart */
            if (a[4] % 8 == 2) c->len = (int)(a[7] % 48) - 2; /* undo steps, or a len it never took */
            if (a[8] % 4 == 1)
                s = ar_tfm_step_n(m, a[5] % 16 == 1 ? NULL : c, n, a[2] % 8 == 2 ? NULL : tok, a[6] % 16 == 1 ? NULL : lg);
            else
                s = ar_tfm_step(m, a[5] % 16 == 1 ? NULL : c, a[2] % 8 == 2 ? NULL : tok, a[6] % 16 == 1 ? NULL : lg);
            FZ_MSG(s, m->err);
            if (s == AR_OK)
                for (i = 0; i < cnt * V; i++) FUZZ_CHECK(!isnan(lg[i]) || !fuzz_moderate(m));
            free(tok);
            free(lg);
            break;
        }
        case FZ_CACHEFREE:
            ar_tfm_cache_free(&st.c[a[1] % 2]);
            break;
        case FZ_TFMLOGITS: {
            int B = (int)(a[1] % 4) - 1, V = fz_live(m) && m->levels > 0 ? m->levels : 4;
            int n = a[3] % 2 && fz_live(m) ? m->D : (int)(a[2] % 6) - 1; /* whole sequences, or a length */
            size_t cnt = (size_t)(B > 0 ? B : 1) * (size_t)(n > 0 ? n : 1), j;
            int *tok = (int *)fz_gmem(&st, cnt * sizeof(int));
            ar_tensor *t;
            for (j = 0; j < cnt; j++) tok[j] = (int)ar_rng_below(&st.rng, (uint32_t)V);
            if (a[4] % 8 == 1) tok[a[5] % cnt] = a[5] & 1 ? V : -1;
            t = a[6] % 2 ? ar_tfm_nll(m, &st.g, tok, B, n) : ar_tfm_logits(m, &st.g, tok, B, n);
            FUZZ_CHECK(t ? m->err[0] == 0 : m->err[0] != 0);
            if (t && t->n <= FZ_MAXEL) st.pool[a[7] % FZ_POOL] = t;
            break;
        }
        case FZ_CNNLOGITS: {
            int N = fz_Ns[a[1] % 8];
            float *x = fz_data(&st, m, N, a[2] % 4, a[3], a[4], 1);
            ar_tensor *t = ar_cnn_logits(m, &st.g, x, N);
            FUZZ_CHECK(t ? m->err[0] == 0 : m->err[0] != 0);
            FUZZ_CHECK(ar_cnn_receptive_field(m) >= 0);
            if (t && t->n <= FZ_MAXEL) st.pool[a[5] % FZ_POOL] = t;
            break;
        }
        case FZ_SAMPLELOGITS: {
            static const int Vs[8] = {3, 1, 7, 300, 0, -1, 2, 3};
            float lg[300], scratch[900];
            ar_sample_opts o;
            float *given;
            unsigned char *known;
            int V = Vs[a[1] % 8], k;
            for (i = 0; i < 300; i++) lg[i] = (ar_rng_uniform(&st.rng) - 0.5f) * (float)(1 << (a[2] % 8));
            if (a[3] % 8 == 1) lg[a[4] % 3] = a[4] & 1 ? NAN : INFINITY;
            if (a[3] % 8 == 2) for (i = 0; i < 300; i++) lg[i] = -INFINITY;
            fz_opts(&st, a + 5, &st.m[0], 1, &o, &given, &known);
            k = ar_sample_logits(lg, V, &o, a[10] % 16 == 1 ? NULL : &st.rng, scratch);
            FUZZ_CHECK(k == -1 || (k >= 0 && k < V));
            free(given);
            free(known);
            break;
        }
        case FZ_GRAPHOP:
            fz_graphop(&st, a);
            break;
        case FZ_OPTIM: {
            ar_optim o = a[1] % 4 == 0 ? ar_optim_adam(1e-2f) : a[1] % 4 == 1 ? ar_optim_sgd(1e-2f, 0.9f)
                       : a[1] % 4 == 2 ? ar_optim_adamw(1e-2f, 0.1f) : ar_optim_adagrad(1e-2f);
            ar_params *ps = a[2] % 4 == 1 ? &st.ps : &m->ps;
            if (a[3] % 4 == 1) ar_params_clip_grad_norm(ps, 1.0);
            s = ar_optim_step(&o, ps);
            FZ_MSG(s, ps->err);
            break;
        }
        default:
            fz_reset(&st);
            break;
        }
    }
    fz_reset(&st);
    for (i = 0; i < 2; i++) ar_tfm_cache_free(&st.c[i]);
    for (i = 0; i < FZ_SLOTS; i++) ar_model_free(&st.m[i]);
    ar_free(st.saved);
    ar_params_free(&st.ps);
    ar_graph_free(&st.g);
    return 0;
}

#endif
