/* Every op: forward against a plain reference, backward against central
   finite differences (ar_gradcheck), on small random shapes. */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

/* ---- gradient checks ------------------------------------------------------ */

typedef struct {
    int id;              /* case number */
    ar_params ps;
    ar_tensor *p[3];
    float R[4096];       /* fixed random projection: loss = sum(y * R) */
    float targets[64];
    float mask[64];
    float rmask[64];     /* [0,15): zero on row 1 of 3 rows of 5; [15,18): 1 0 1 */
    int ids[16];
} gc;

static ar_tensor *proj(ar_graph *g, gc *k, ar_tensor *y)
{
    return y ? ar_sum(g, ar_mul(g, y, ar_input(g, k->R, y->nd, y->shape)), AR_ALL) : NULL;
}

#define S(...) (int[]){__VA_ARGS__}

typedef struct {
    ar_op op;
    const char *what;
    int np, nd[3], shape[3][4];
    float lo, hi;        /* parameter init range */
} gc_case;

/* Shapes are small so every coordinate is checked. */
static const gc_case cases[] = {
    {AR_OP_MATMUL, "plain", 2, {2, 2}, {{3, 4}, {4, 5}}, -1, 1},
    {AR_OP_MATMUL, "trans_a", 2, {2, 2}, {{4, 3}, {4, 5}}, -1, 1},
    {AR_OP_MATMUL, "trans_b", 2, {2, 2}, {{3, 4}, {5, 4}}, -1, 1},
    {AR_OP_MATMUL, "trans_ab", 2, {2, 2}, {{4, 3}, {5, 4}}, -1, 1},
    {AR_OP_MATMUL, "batched", 2, {3, 3}, {{2, 3, 4}, {2, 4, 5}}, -1, 1},
    {AR_OP_MATMUL, "shared_b", 2, {3, 2}, {{2, 3, 4}, {4, 5}}, -1, 1},
    {AR_OP_MATMUL, "shared_b_trans_a", 2, {3, 2}, {{2, 4, 3}, {4, 5}}, -1, 1},
    {AR_OP_MATMUL, "4d_trans_b", 2, {4, 4}, {{2, 2, 3, 4}, {2, 2, 5, 4}}, -1, 1},
    {AR_OP_MATMUL, "shared_b_trans_b", 2, {3, 2}, {{2, 3, 4}, {5, 4}}, -1, 1},
    {AR_OP_MATMUL, "batched_trans_a", 2, {3, 3}, {{2, 4, 3}, {2, 4, 5}}, -1, 1},
    {AR_OP_LINEAR, "bias", 3, {2, 2, 1}, {{3, 4}, {5, 4}, {5}}, -1, 1},
    {AR_OP_LINEAR, "no_bias_3d", 2, {3, 2}, {{2, 3, 4}, {5, 4}}, -1, 1},
    {AR_OP_MASKED_LINEAR, "bias", 3, {2, 2, 1}, {{3, 6}, {5, 6}, {5}}, -1, 1},
    {AR_OP_MASKED_LINEAR, "strict_3d", 2, {3, 2}, {{2, 2, 6}, {5, 6}}, -1, 1},
    {AR_OP_CONV, "1d d1 s0", 3, {3, 3, 1}, {{2, 5, 3}, {4, 2, 3}, {4}}, -1, 1},
    {AR_OP_CONV, "1d d2 s1", 3, {3, 3, 1}, {{2, 7, 2}, {3, 3, 2}, {3}}, -1, 1},
    {AR_OP_CONV, "1d d3 s0", 2, {3, 3}, {{1, 8, 2}, {2, 2, 2}}, -1, 1},
    /* conv2d: "2d top left dilation taps" — mask A and B, the gated stacks'
       vertical, horizontal (A) and shifted 1x1 link, dilation 2 */
    {AR_OP_CONV, "2d 1 1 1 4", 3, {4, 4, 1}, {{2, 4, 5, 2}, {3, 3, 3, 2}, {3}}, -1, 1},
    {AR_OP_CONV, "2d 1 1 1 5", 2, {4, 4}, {{1, 4, 4, 3}, {2, 3, 3, 3}}, -1, 1},
    {AR_OP_CONV, "2d 1 1 1 0", 3, {4, 4, 1}, {{2, 4, 4, 2}, {3, 2, 3, 2}, {3}}, -1, 1},
    {AR_OP_CONV, "2d 0 2 1 2", 3, {4, 4, 1}, {{2, 3, 5, 2}, {2, 1, 3, 2}, {2}}, -1, 1},
    {AR_OP_CONV, "2d 1 0 1 0", 3, {4, 4, 1}, {{2, 4, 3, 3}, {2, 1, 1, 3}, {2}}, -1, 1},
    {AR_OP_CONV, "2d 2 2 2 0", 2, {4, 4}, {{1, 5, 5, 2}, {2, 2, 2, 2}}, -1, 1},
    {AR_OP_CONV, "2d 0 0 1 0", 3, {4, 4, 1}, {{2, 3, 4, 3}, {5, 1, 1, 3}, {5}}, -1, 1}, /* 1x1: x is the columns */
    {AR_OP_GATE, "", 1, {3}, {{2, 3, 6}}, -2, 2},
    {AR_OP_ADD, "same", 2, {2, 2}, {{3, 4}, {3, 4}}, -1, 1},
    {AR_OP_ADD, "row", 2, {2, 1}, {{3, 4}, {4}}, -1, 1},
    {AR_OP_ADD, "scalar", 2, {3, 1}, {{2, 3, 2}, {1}}, -1, 1},
    {AR_OP_SUB, "row", 2, {3, 2}, {{2, 3, 4}, {3, 4}}, -1, 1},
    {AR_OP_MUL, "same", 2, {2, 2}, {{3, 4}, {3, 4}}, -1, 1},
    {AR_OP_MUL, "row", 2, {2, 1}, {{3, 4}, {4}}, -1, 1},
    {AR_OP_SCALE, "", 1, {2}, {{3, 4}}, -1, 1},
    {AR_OP_SUM, "all", 1, {2}, {{3, 4}}, -1, 1},
    {AR_OP_SUM, "axis0", 1, {3}, {{3, 4, 2}}, -1, 1},
    {AR_OP_SUM, "axis1", 1, {3}, {{3, 4, 2}}, -1, 1},
    {AR_OP_MEAN, "axis2", 1, {3}, {{3, 4, 2}}, -1, 1},
    {AR_OP_MEAN, "all", 1, {2}, {{3, 4}}, -1, 1},
    {AR_OP_SIGMOID, "", 1, {2}, {{3, 4}}, -3, 3},
    {AR_OP_TANH, "", 1, {2}, {{3, 4}}, -2, 2},
    {AR_OP_RELU, "", 1, {2}, {{3, 4}}, -2, 2},
    {AR_OP_GELU, "", 1, {2}, {{3, 4}}, -3, 3},
    {AR_OP_SOFTPLUS, "", 1, {2}, {{3, 4}}, -3, 3},
    {AR_OP_EXP, "", 1, {2}, {{3, 4}}, -2, 1},
    {AR_OP_LOG, "", 1, {2}, {{3, 4}}, 0.5f, 3},
    {AR_OP_LOG_SIGMOID, "", 1, {2}, {{3, 4}}, -3, 3},
    {AR_OP_SOFTMAX, "", 1, {2}, {{3, 5}}, -2, 2},
    {AR_OP_LOG_SOFTMAX, "", 1, {3}, {{2, 3, 5}}, -2, 2},
    {AR_OP_LOGSUMEXP, "", 1, {2}, {{3, 5}}, -2, 2},
    {AR_OP_LAYERNORM, "gain_bias", 3, {2, 1, 1}, {{3, 6}, {6}, {6}}, -2, 2},
    {AR_OP_LAYERNORM, "plain", 1, {3}, {{2, 2, 5}}, -2, 2},
    {AR_OP_LAYERNORM, "bias_only", 2, {2, 1}, {{3, 6}, {6}}, -2, 2},
    {AR_OP_EMBEDDING, "", 1, {2}, {{6, 3}}, -1, 1},
    {AR_OP_SLICE, "axis0", 1, {2}, {{4, 3}}, -1, 1},
    {AR_OP_SLICE, "axis1", 1, {3}, {{2, 5, 3}}, -1, 1},
    {AR_OP_SLICE, "axis2", 1, {3}, {{2, 3, 5}}, -1, 1},
    {AR_OP_CONCAT, "axis0", 2, {2, 2}, {{2, 3}, {3, 3}}, -1, 1},
    {AR_OP_CONCAT, "axis1", 2, {3, 3}, {{2, 2, 3}, {2, 4, 3}}, -1, 1},
    {AR_OP_CONCAT, "axis2", 2, {3, 3}, {{2, 3, 2}, {2, 3, 4}}, -1, 1},
    {AR_OP_RESHAPE, "", 1, {3}, {{2, 3, 4}}, -1, 1},
    {AR_OP_PERMUTE, "0213", 1, {4}, {{2, 3, 2, 4}}, -1, 1},
    {AR_OP_PERMUTE, "210", 1, {3}, {{2, 3, 4}}, -1, 1},
    {AR_OP_ROPE, "", 1, {4}, {{2, 2, 3, 6}}, -1, 1},
    {AR_OP_MASKED_FILL, "", 1, {2}, {{3, 5}}, -1, 1},
    {AR_OP_MASKED_FILL, "2d_mask", 1, {3}, {{2, 3, 5}}, -1, 1},
    {AR_OP_SOFTMAX, "masked_rows", 1, {3}, {{2, 3, 5}}, -1, 1},
    {AR_OP_LOG_SOFTMAX, "masked_rows", 1, {3}, {{2, 3, 5}}, -1, 1},
    {AR_OP_LOGSUMEXP, "masked_rows", 1, {3}, {{2, 3, 5}}, -1, 1},
    {AR_OP_CAUSAL_SOFTMAX, "", 1, {4}, {{2, 2, 4, 4}}, -2, 2},
    {AR_OP_CAUSAL_SOFTMAX, "order", 1, {3}, {{2, 5, 5}}, -2, 2},
    {AR_OP_ATTENTION, "causal", 1, {3}, {{2, 5, 12}}, -1.5f, 1.5f},
    {AR_OP_ATTENTION, "order", 1, {3}, {{2, 5, 12}}, -1.5f, 1.5f},
    {AR_OP_ATTENTION, "rotary order", 1, {3}, {{1, 5, 12}}, -1.5f, 1.5f},
    {AR_OP_BCE_LOGITS, "", 1, {2}, {{3, 5}}, -3, 3},
    {AR_OP_BCE_LOGITS, "3d", 1, {3}, {{2, 2, 4}}, -3, 3},
    {AR_OP_CROSS_ENTROPY, "", 1, {3}, {{2, 3, 6}}, -2, 2},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))
static const int rank5[5] = {2, 0, 4, 1, 3}; /* a generation order for the order cases */
static const int out5[5] = {3, 1, 5, 0, 3}, in6[6] = {2, 4, 1, 3, 3, 0}; /* masked linear labels, with ties */

static ar_tensor *gc_loss(ar_graph *g, void *ctx)
{
    gc *k = (gc *)ctx;
    const gc_case *c = &cases[k->id];
    ar_tensor *a = k->p[0], *b = k->p[1], *y = NULL;
    switch (c->op) {
    case AR_OP_MATMUL: {
        int ta = strstr(c->what, "trans_a") || !strcmp(c->what, "trans_ab");
        int tb = strstr(c->what, "trans_b") || !strcmp(c->what, "trans_ab");
        y = ar_matmul(g, a, b, ta, tb);
        break;
    }
    case AR_OP_LINEAR: y = ar_linear(g, a, b, k->p[2]); break;
    case AR_OP_MASKED_LINEAR: y = ar_masked_linear(g, a, b, k->p[2], out5, in6, c->what[0] == 's'); break;
    case AR_OP_CONV: {
        int t, l, d, n;
        if (c->what[0] == '1') y = ar_conv1d(g, a, b, k->p[2], c->what[4] - '0', c->what[7] - '0');
        else if (sscanf(c->what, "2d %d %d %d %d", &t, &l, &d, &n) == 4) y = ar_conv2d(g, a, b, k->p[2], t, l, d, n);
        break;
    }
    case AR_OP_GATE: y = ar_gate(g, a); break;
    case AR_OP_ADD: y = ar_add(g, a, b); break;
    case AR_OP_SUB: y = ar_sub(g, a, b); break;
    case AR_OP_MUL: y = ar_mul(g, a, b); break;
    case AR_OP_SCALE: y = ar_scale(g, a, -1.7f); break;
    case AR_OP_SUM:
    case AR_OP_MEAN: {
        int axis = !strcmp(c->what, "all") ? AR_ALL : c->what[4] - '0';
        y = c->op == AR_OP_SUM ? ar_sum(g, a, axis) : ar_mean(g, a, axis);
        break;
    }
    case AR_OP_SIGMOID: y = ar_sigmoid(g, a); break;
    case AR_OP_TANH: y = ar_tanh(g, a); break;
    case AR_OP_RELU: y = ar_relu(g, a); break;
    case AR_OP_GELU: y = ar_gelu(g, a); break;
    case AR_OP_SOFTPLUS: y = ar_softplus(g, a); break;
    case AR_OP_EXP: y = ar_exp(g, a); break;
    case AR_OP_LOG: y = ar_log(g, a); break;
    case AR_OP_LOG_SIGMOID: y = ar_log_sigmoid(g, a); break;
    case AR_OP_SOFTMAX:
    case AR_OP_LOG_SOFTMAX:
    case AR_OP_LOGSUMEXP:
        if (c->what[0]) /* -inf entries, and one row fully masked (row mask in rmask) */
            a = ar_masked_fill(g, ar_masked_fill(g, a, k->mask, 5, -INFINITY), k->rmask, 15, -INFINITY);
        y = c->op == AR_OP_SOFTMAX ? ar_softmax(g, a) : c->op == AR_OP_LOG_SOFTMAX ? ar_log_softmax(g, a)
                                                                                : ar_logsumexp(g, a);
        if (c->what[0] && c->op == AR_OP_LOG_SOFTMAX) /* keep -inf out of the projection */
            y = ar_masked_fill(g, ar_masked_fill(g, y, k->mask, 5, 0), k->rmask, 15, 0);
        if (c->what[0] && c->op == AR_OP_LOGSUMEXP) y = ar_masked_fill(g, y, k->rmask + 15, 3, 0);
        break;
    case AR_OP_CAUSAL_SOFTMAX: y = ar_causal_softmax_order(g, a, 0.7f, strstr(c->what, "order") ? rank5 : NULL); break;
    case AR_OP_ATTENTION: /* 2 heads of 2 */
        y = ar_attention(g, a, 2, 0.8f, strstr(c->what, "order") ? rank5 : NULL, !strncmp(c->what, "rotary", 6));
        break;
    case AR_OP_LAYERNORM:
        y = !strcmp(c->what, "bias_only") ? ar_layernorm(g, a, NULL, b, 1e-5f) : ar_layernorm(g, a, b, k->p[2], 1e-5f);
        break;
    case AR_OP_EMBEDDING: y = ar_embedding(g, a, k->ids, 2, S(2, 4)); break;
    case AR_OP_SLICE: y = c->what[4] == '0' ? ar_slice(g, a, 0, 1, 2) : ar_slice(g, a, c->what[4] - '0', 2, 3); break;
    case AR_OP_CONCAT: y = ar_concat(g, a, b, c->what[4] - '0'); break;
    case AR_OP_RESHAPE: y = ar_reshape(g, a, 2, S(4, 6)); break;
    case AR_OP_ROPE: y = ar_rope(g, a, 5); break;
    case AR_OP_PERMUTE: {
        int perm[4], i;
        for (i = 0; c->what[i]; i++) perm[i] = c->what[i] - '0';
        y = ar_permute(g, a, perm);
        break;
    }
    case AR_OP_MASKED_FILL: y = ar_masked_fill(g, a, k->mask, c->what[0] ? 15 : 5, -3.0f); break;
    case AR_OP_BCE_LOGITS: y = ar_bce_logits(g, a, k->targets); break;
    case AR_OP_CROSS_ENTROPY: y = ar_cross_entropy(g, a, k->ids); break;
    default: break;
    }
    return proj(g, k, y);
}

static int gc_setup(gc *k, int id, ar_rng *rng)
{
    const gc_case *c = &cases[id];
    int i;
    size_t j;
    memset(k, 0, sizeof *k);
    k->id = id;
    ar_params_init(&k->ps);
    for (i = 0; i < c->np; i++) {
        char name[8] = {'p', (char)('0' + i), 0};
        k->p[i] = ar_params_add(&k->ps, name, c->nd[i], c->shape[i]);
        if (!k->p[i]) return 0;
    }
    if (ar_params_alloc(&k->ps) != AR_OK) return 0;
    for (i = 0; i < c->np; i++) {
        ar_init_uniform(k->p[i], rng, c->lo, c->hi);
        for (j = 0; c->op == AR_OP_RELU && j < k->p[i]->n; j++) /* keep away from the kink */
            if (fabsf(k->p[i]->x[j]) < 0.1f) k->p[i]->x[j] += 0.3f;
    }
    for (j = 0; j < sizeof k->R / sizeof k->R[0]; j++) k->R[j] = ar_rng_normal(rng);
    for (j = 0; j < 64; j++) {
        k->targets[j] = (float)(j % 3) * 0.5f; /* 0, 0.5, 1 */
        k->mask[j] = (float)(j % 5 != 2);
        k->rmask[j] = (float)(j < 5 || j >= 10);
    }
    k->rmask[16] = 0;
    for (j = 0; j < 16; j++) k->ids[j] = (int)((j * 7 + 3) % 6); /* repeats, all < 6 */
    return 1;
}

static void test_gradcheck_all_ops(void)
{
    ar_graph g;
    ar_rng rng;
    int id, covered[AR_OP_COUNT] = {0}, op;
    ar_rng_seed(&rng, 42);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (id = 0; id < N_CASES; id++) {
        gc k;
        double rel = 1;
        const char *worst = NULL;
        ar_status s;
        CHECK(gc_setup(&k, id, &rng));
        s = ar_gradcheck(&g, &k.ps, gc_loss, &k, 1e-2f, &rel, &worst);
        ar_params_free(&k.ps);
        CHECK_MSG(s == AR_OK, "%s/%s: status %d (%s)", ar_op_name(cases[id].op), cases[id].what, s, g.err);
        CHECK_MSG(rel < 3e-4, "%s/%s: relative gradient error %.3g in %s", ar_op_name(cases[id].op),
                  cases[id].what, rel, worst ? worst : "?");
        covered[cases[id].op] = 1;
    }
    /* An op added without a gradient check fails here. Model ops are
       checked with their models: nade in nade/gradcheck. */
    covered[AR_OP_NADE] = 1;
    for (op = 1; op < AR_OP_COUNT; op++)
        CHECK_MSG(covered[op], "op %s has no gradient check", ar_op_name((ar_op)op));
    ar_graph_free(&g);
}

/* The checker itself must notice a backward that is off by 10%: here the
   forward used for finite differences is 1.1x the one differentiated. */
static ar_tensor *skewed_loss(ar_graph *g, void *ctx)
{
    gc *k = (gc *)ctx;
    ar_tensor *y = g->grad ? k->p[0] : ar_scale(g, k->p[0], 1.1f);
    return proj(g, k, y);
}

static void test_gradcheck_detects_wrong_gradient(void)
{
    ar_graph g;
    ar_rng rng;
    gc k;
    double rel = 0;
    ar_rng_seed(&rng, 1);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(gc_setup(&k, 16, &rng)); /* one [3,4] parameter */
    CHECK(ar_gradcheck(&g, &k.ps, skewed_loss, &k, 1e-2f, &rel, NULL) == AR_OK);
    ar_params_free(&k.ps);
    ar_graph_free(&g);
    CHECK_MSG(rel > 2e-2, "relative error %.3g not detected", rel);
}

/* ---- forward values against plain references ---------------------------- */

static void test_matmul_forward(void)
{
    ar_graph g;
    float a[2 * 3 * 4], b[2 * 4 * 5], bt[2 * 5 * 4];
    int i, j, l, p;
    ar_tensor *y, *yt;
    for (i = 0; i < 24; i++) a[i] = (float)(i % 7) - 3;
    for (i = 0; i < 40; i++) b[i] = (float)(i % 5) * 0.5f - 1;
    for (p = 0; p < 2; p++)
        for (i = 0; i < 4; i++)
            for (j = 0; j < 5; j++) bt[p * 20 + j * 4 + i] = b[p * 20 + i * 5 + j];
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    y = ar_matmul(&g, ar_input(&g, a, 3, S(2, 3, 4)), ar_input(&g, b, 3, S(2, 4, 5)), 0, 0);
    yt = ar_matmul(&g, ar_input(&g, a, 3, S(2, 3, 4)), ar_input(&g, bt, 3, S(2, 5, 4)), 0, 1);
    CHECK(y && yt && y->nd == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 5);
    for (p = 0; p < 2; p++)
        for (i = 0; i < 3; i++)
            for (j = 0; j < 5; j++) {
                double s = 0;
                for (l = 0; l < 4; l++) s += a[p * 12 + i * 4 + l] * b[p * 20 + l * 5 + j];
                CHECK_NEAR(y->x[p * 15 + i * 5 + j], s, 1e-5);
                CHECK_NEAR(yt->x[p * 15 + i * 5 + j], s, 1e-5);
            }
    ar_graph_free(&g);
}

/* conv2d against its definition for each geometry the models use (masks A
   and B, the gated stacks' vertical and horizontal kernels, the shifted
   link, dilation), with NaN in the masked weights (never read), and the
   raster-order cut: mask A's output at p ignores inputs >= p, mask B's > p. */
static void test_conv2d_forward_and_masks(void)
{
    enum { H = 5, W = 6, Ci = 2, Co = 3 };
    static const int geo[7][6] = { /* kh kw top left dil taps */
        {3, 3, 1, 1, 1, 4}, {3, 3, 1, 1, 1, 5}, {2, 3, 1, 1, 1, 0}, {1, 2, 0, 1, 1, 1}, {1, 1, 1, 0, 1, 0},
        {2, 2, 2, 2, 2, 0}, {1, 1, 0, 0, 1, 0}};
    float x[H * W * Ci], Wt[Co * 9 * Ci], b[Co] = {0.1f, -0.2f, 0.3f};
    ar_graph g;
    int k, r, c, o, i, j, ch;
    for (i = 0; i < H * W * Ci; i++) x[i] = (float)((i * 7) % 5) - 2;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (k = 0; k < 7; k++) {
        int kh = geo[k][0], kw = geo[k][1], top = geo[k][2], left = geo[k][3], dil = geo[k][4];
        int taps = geo[k][5] ? geo[k][5] : kh * kw;
        ar_tensor *y;
        for (i = 0; i < Co * kh * kw * Ci; i++)
            Wt[i] = (i % (kh * kw * Ci)) / Ci >= taps ? NAN : (float)((i * 3) % 7) / 7 - 0.4f;
        ar_graph_reset(&g);
        y = ar_conv2d(&g, ar_input(&g, x, 4, S(1, H, W, Ci)), ar_input(&g, Wt, 4, S(Co, kh, kw, Ci)),
                      ar_input(&g, b, 1, S(Co)), top, left, dil, geo[k][5]);
        CHECK_MSG(y != NULL, "%s", g.err);
        for (r = 0; y && r < H; r++)
            for (c = 0; c < W; c++)
                for (o = 0; o < Co; o++) {
                    double s = b[o];
                    for (i = 0; i < kh; i++)
                        for (j = 0; j < kw; j++) {
                            int yy = r - top + i * dil, xx = c - left + j * dil;
                            if (i * kw + j >= taps || yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                            for (ch = 0; ch < Ci; ch++)
                                s += Wt[((o * kh + i) * kw + j) * Ci + ch] * x[(yy * W + xx) * Ci + ch];
                        }
                    CHECK_NEAR(y->x[(r * W + c) * Co + o], s, 1e-5);
                }
        if (k < 2) /* mask A (k = 0) and B (k = 1): output i never moves with input j > i (A: j >= i) */
            for (j = 0; y && j < H * W; j++) {
                float x2[H * W * Ci];
                ar_tensor *y2;
                int moved = 0, seen = 0;
                memcpy(x2, x, sizeof x);
                x2[j * Ci] += 1;
                y2 = ar_conv2d(&g, ar_input(&g, x2, 4, S(1, H, W, Ci)), ar_input(&g, Wt, 4, S(Co, kh, kw, Ci)),
                               ar_input(&g, b, 1, S(Co)), top, left, dil, geo[k][5]);
                CHECK(y2 != NULL);
                for (i = 0; y2 && i < H * W; i++)
                    for (o = 0; o < Co; o++) {
                        int differs = y2->x[i * Co + o] != y->x[i * Co + o];
                        if (j > i || (j == i && k == 0)) moved += differs;
                        else seen += differs;
                    }
                CHECK_MSG(moved == 0, "mask %c: input %d reaches %d outputs at or before it", k ? 'B' : 'A', j, moved);
                if (j == 2 * W + 2) CHECK(seen > 0); /* an interior pixel does reach later outputs */
            }
    }
    ar_graph_free(&g);
}

/* conv1d against its definition, the causal cut, and the receptive field of
   a dilated stack (1 + shift + sum (k-1) d_l) read off the gradient. */
/* ar_masked_linear against ar_linear on W * mask, values and gradients, over
   several row blocks: labels with ties, outputs that see nothing, both
   rules, a weight without gradient, and every output seeing nothing. */
static void test_masked_linear_against_dense(void)
{
    enum { R = 6, O = 100, IN = 70 };
    static float mask[O * IN], Rp[R * O];
    static int ol[O], il[IN];
    ar_graph g;
    ar_rng rng;
    int v;
    ar_rng_seed(&rng, 5);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (v = 0; v < 6; v++) {
        int strict = v & 1, wgrad = v < 4, i, o;
        ar_params ps[2];
        ar_tensor *x[2], *W[2], *b[2], *y[2];
        size_t j;
        for (o = 0; o < O; o++) ol[o] = v == 5 ? -1 : o % 9 == 4 ? -3 : (int)ar_rng_below(&rng, 20);
        for (i = 0; i < IN; i++) il[i] = (int)ar_rng_below(&rng, 20);
        for (o = 0; o < O; o++)
            for (i = 0; i < IN; i++) mask[o * IN + i] = (float)(ol[o] >= il[i] + strict);
        for (j = 0; j < R * O; j++) Rp[j] = ar_rng_normal(&rng);
        for (i = 0; i < 2; i++) {
            ar_params_init(&ps[i]);
            x[i] = ar_params_add(&ps[i], "x", 3, S(2, 3, IN));
            W[i] = ar_params_add(&ps[i], "W", 2, S(O, IN));
            b[i] = ar_params_add(&ps[i], "b", 1, S(O));
            CHECK(ar_params_alloc(&ps[i]) == AR_OK);
            ar_params_zero_grad(&ps[i]);
        }
        for (j = 0; j < ps[0].total; j++) ps[0].x[j] = ps[1].x[j] = ar_rng_uniform(&rng) * 2 - 1;
        ar_graph_reset(&g);
        for (i = 0; i < 2; i++) {
            ar_tensor *Wt = wgrad ? W[i] : ar_input(&g, W[i]->x, 2, W[i]->shape), *loss;
            y[i] = i ? ar_masked_linear(&g, x[i], Wt, b[i], ol, il, strict)
                     : ar_linear(&g, x[i], ar_mul(&g, Wt, ar_input(&g, mask, 2, S(O, IN))), b[i]);
            loss = ar_sum(&g, ar_mul(&g, y[i], ar_input(&g, Rp, 3, S(2, 3, O))), AR_ALL);
            CHECK_MSG(loss && ar_backward(&g, loss) == AR_OK, "%s", g.err);
        }
        for (j = 0; j < y[0]->n; j++) CHECK_NEAR(y[1]->x[j], y[0]->x[j], 1e-5);
        for (j = 0; j < ps[0].total; j++)
            CHECK_MSG(fabsf(ps[1].g[j] - ps[0].g[j]) <= 1e-5f, "variant %d: gradient %zu: %g vs %g", v, j,
                      (double)ps[1].g[j], (double)ps[0].g[j]);
        for (j = 0; j < (size_t)O * IN; j++) /* masked weights: exactly no gradient */
            if (!mask[j]) CHECK(W[1]->g[j] == 0);
        ar_graph_set_grad(&g, 0); /* inference keeps one block's buffer and writes y in place */
        y[1] = ar_masked_linear(&g, x[1], W[1], b[1], ol, il, strict);
        ar_graph_set_grad(&g, 1);
        CHECK(y[1] != NULL);
        for (j = 0; j < y[0]->n; j++) CHECK_NEAR(y[1]->x[j], y[0]->x[j], 1e-5);
        for (i = 0; i < 2; i++) ar_params_free(&ps[i]);
    }
    /* bad input */
    {
        float a[12] = {0};
        ar_tensor *X, *Wb;
        ar_graph_reset(&g);
        X = ar_input(&g, a, 2, S(2, 3));
        Wb = ar_input(&g, a, 2, S(4, 3));
        CHECK(ar_masked_linear(&g, X, Wb, NULL, NULL, il, 0) == NULL && g.status == AR_ERR_ARG && strstr(g.err, "out_label"));
        ar_graph_reset(&g);
        X = ar_input(&g, a, 2, S(2, 3));
        Wb = ar_input(&g, a, 2, S(4, 3));
        CHECK(ar_masked_linear(&g, X, Wb, NULL, ol, il, 2) == NULL && strstr(g.err, "strict = 2"));
        ar_graph_reset(&g);
        X = ar_input(&g, a, 2, S(2, 3));
        Wb = ar_input(&g, a, 2, S(3, 4));
        CHECK(ar_masked_linear(&g, X, Wb, NULL, ol, il, 0) == NULL && g.status == AR_ERR_SHAPE &&
              strstr(g.err, "need W [O,3]"));
    }
    ar_graph_free(&g);
}

static void test_conv1d_forward_and_causality(void)
{
    enum { T = 20, C = 2 };
    float x[T * C], W1[3 * 2 * C], W2[3 * 2 * 3], b1[3] = {0.5f, -1, 0.25f};
    ar_graph g;
    ar_params ps;
    ar_tensor *y, *px, *w1, *w2, *z;
    int t, i, c, o, first = T, last = -1;
    for (i = 0; i < T * C; i++) x[i] = (float)((i * 7) % 5) - 2;
    for (i = 0; i < 3 * 2 * C; i++) W1[i] = (float)((i * 3) % 7) / 7 - 0.4f;
    for (i = 0; i < 18; i++) W2[i] = (float)((i * 5) % 9) / 9 - 0.5f;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    y = ar_conv1d(&g, ar_input(&g, x, 3, S(1, T, C)), ar_input(&g, W1, 3, S(3, 2, C)), ar_input(&g, b1, 1, S(3)), 3, 1);
    CHECK(y && y->shape[2] == 3);
    for (t = 0; t < T; t++)
        for (o = 0; o < 3; o++) {
            double s = b1[o];
            for (i = 0; i < 2; i++) {
                int src = t - 1 - (1 - i) * 3;
                for (c = 0; src >= 0 && c < C; c++) s += W1[(o * 2 + i) * C + c] * x[src * C + c];
            }
            CHECK_NEAR(y->x[t * 3 + o], s, 1e-5);
        }
    /* two layers: kernel 2 dilation 2 with shift 1, then kernel 3 dilation 4 */
    ar_params_init(&ps);
    px = ar_params_add(&ps, "x", 3, S(1, T, C));
    w1 = ar_params_add(&ps, "w1", 3, S(3, 2, C));
    w2 = ar_params_add(&ps, "w2", 3, S(2, 3, 3));
    CHECK(ar_params_alloc(&ps) == AR_OK);
    memcpy(px->x, x, sizeof x);
    memcpy(w1->x, W1, sizeof W1);
    memcpy(w2->x, W2, sizeof W2);
    ar_graph_reset(&g);
    z = ar_conv1d(&g, ar_tanh(&g, ar_conv1d(&g, px, w1, NULL, 2, 1)), w2, NULL, 4, 0);
    z = ar_sum(&g, ar_slice(&g, z, 1, 15, 1), AR_ALL); /* output at t = 15 */
    ar_params_zero_grad(&ps);
    CHECK(ar_backward(&g, z) == AR_OK);
    for (t = 0; t < T; t++)
        if (px->g[t * C] != 0 || px->g[t * C + 1] != 0) {
            first = t < first ? t : first;
            last = t > last ? t : last;
        }
    /* sees x up to 15 - 1 and back (2-1)*2 + (3-1)*4 = 10 more steps */
    CHECK_MSG(last == 14 && first == 4, "output 15 sees inputs %d..%d, expected 4..14", first, last);
    ar_params_free(&ps);
    ar_graph_free(&g);
}

static void test_elementwise_forward(void)
{
    ar_graph g;
    float x[6] = {-20, -1, -0.5f, 0, 1, 30};
    ar_tensor *in, *y;
    int i;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    in = ar_input(&g, x, 1, S(6));
    y = ar_gelu(&g, in);
    CHECK_NEAR(y->x[4], 0.8413447460685429, 1e-6);
    CHECK_NEAR(y->x[1], -0.15865525393145707, 1e-6);
    y = ar_sigmoid(&g, in);
    CHECK_NEAR(y->x[0], 2.0611536e-9, 1e-12);
    CHECK(y->x[5] == 1.0f);
    y = ar_softplus(&g, in);
    CHECK_NEAR(y->x[5], 30, 1e-5); /* no overflow */
    CHECK_NEAR(y->x[0], 2.0611536e-9, 1e-12);
    y = ar_log_sigmoid(&g, in);
    CHECK_NEAR(y->x[0], -20, 1e-5);
    CHECK(isfinite(y->x[5]) && y->x[5] <= 0);
    y = ar_relu(&g, in);
    for (i = 0; i < 6; i++) CHECK(y->x[i] == (x[i] > 0 ? x[i] : 0));
    ar_graph_free(&g);
}

/* ar.h's own exp and log1p (vectorizable) against libm in double. */
static void test_exp_family_accuracy(void)
{
    enum { N = 40001 };
    static float x[N];
    ar_graph g;
    ar_tensor *in, *e, *sg, *sp;
    double worst_e = 0, worst_s = 0, worst_p = 0;
    float special[3] = {-INFINITY, NAN, 200};
    int i;
    for (i = 0; i < N; i++) x[i] = -100.0f + 200.0f * (float)i / (N - 1);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    in = ar_input(&g, x, 1, S(N));
    e = ar_exp(&g, in);
    sg = ar_sigmoid(&g, in);
    sp = ar_softplus(&g, in);
    CHECK(e && sg && sp);
    for (i = 0; i < N; i++) {
        double xe = exp((double)x[i]), xs = 1 / (1 + exp(-(double)x[i])), xp = log1p(exp((double)x[i]));
        if (x[i] > -87 && x[i] < 88) worst_e = fmax(worst_e, fabs(e->x[i] - xe) / xe);
        if (xs > 1e-37) worst_s = fmax(worst_s, fabs(sg->x[i] - xs) / xs);
        if (xp > 1e-37) worst_p = fmax(worst_p, fabs(sp->x[i] - xp) / xp);
    }
    CHECK_MSG(worst_e < 3e-7, "exp: worst relative error %.3g", worst_e);
    CHECK_MSG(worst_s < 3e-7, "sigmoid: worst relative error %.3g", worst_s);
    CHECK_MSG(worst_p < 3e-7, "softplus: worst relative error %.3g", worst_p);
    e = ar_exp(&g, ar_input(&g, special, 1, S(3)));
    CHECK(e->x[0] == 0 && isnan(e->x[1]) && e->x[2] > 1e38f);
    { /* GELU x Phi(x) and its slope Phi(x) + x phi(x), against erf in double */
        double worst_g = 0, worst_d = 0;
        ar_tensor *gl;
        ar_graph_reset(&g);
        in = ar_input(&g, x, 1, S(N));
        gl = ar_gelu(&g, in);
        CHECK(gl);
        for (i = 0; i < N; i++) {
            double v = x[i], ph = 0.5 * (1 + erf(v / sqrt(2.0)));
            worst_g = fmax(worst_g, fabs(gl->x[i] - v * ph) / fmax(1, fabs(v)));
        }
        for (i = 0; i < N; i += 7) { /* the slope through the backward pass of one element */
            ar_tensor *one;
            double v = x[i] / 10, ref = 0.5 * (1 + erf(v / sqrt(2.0))) + v * exp(-v * v / 2) / sqrt(2 * 3.14159265358979324);
            float xv = (float)v;
            ar_params ps;
            ar_params_init(&ps);
            one = ar_params_add(&ps, "x", 1, S(1));
            CHECK(one && ar_params_alloc(&ps) == AR_OK);
            one->x[0] = xv;
            ar_graph_reset(&g);
            CHECK(ar_backward(&g, ar_sum(&g, ar_gelu(&g, one), AR_ALL)) == AR_OK);
            worst_d = fmax(worst_d, fabs(one->g[0] - ref));
            ar_params_free(&ps);
        }
        CHECK_MSG(worst_g < 3e-7, "gelu: worst error %.3g (relative above |x| = 1)", worst_g);
        CHECK_MSG(worst_d < 3e-7, "gelu slope: worst error %.3g", worst_d);
    }
    ar_graph_free(&g);
}

/* causal softmax against its definition in double, natural and custom order */
static void test_causal_softmax_forward(void)
{
    enum { T = 6 };
    static const int rank[T] = {3, 0, 5, 1, 4, 2};
    float x[2 * T * T];
    ar_graph g;
    ar_rng r;
    int o, b, t, j;
    ar_rng_seed(&r, 5);
    for (j = 0; j < 2 * T * T; j++) x[j] = 4 * ar_rng_normal(&r);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    for (o = 0; o < 2; o++) {
        const int *rk = o ? rank : NULL;
        ar_tensor *y = ar_causal_softmax_order(&g, ar_input(&g, x, 3, S(2, T, T)), 0.6f, rk);
        CHECK(y);
        for (b = 0; b < 2; b++)
            for (t = 0; t < T; t++) {
                const float *xr = x + (b * T + t) * T;
                double z = 0;
                for (j = 0; j < T; j++)
                    if (rk ? rk[j] <= rk[t] : j <= t) z += exp(0.6 * xr[j]);
                for (j = 0; j < T; j++) {
                    double ref = (rk ? rk[j] <= rk[t] : j <= t) ? exp(0.6 * xr[j]) / z : 0;
                    CHECK_MSG(fabs(y->x[(b * T + t) * T + j] - ref) < 1e-6, "order %d, row %d, key %d: %g, want %g", o,
                              t, j, (double)y->x[(b * T + t) * T + j], ref);
                }
            }
    }
    ar_graph_free(&g);
}

static void test_softmax_family_forward(void)
{
    ar_graph g;
    float x[2][4] = {{1000, 1001, 999, -INFINITY}, {-INFINITY, -INFINITY, -INFINITY, -INFINITY}};
    ar_tensor *in, *sm, *lsm, *lse;
    double s = 0, ref = 1001 + log(exp(-1.0) + 1 + exp(-2.0));
    int j;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    in = ar_input(&g, &x[0][0], 2, S(2, 4));
    sm = ar_softmax(&g, in);
    lsm = ar_log_softmax(&g, in);
    lse = ar_logsumexp(&g, in);
    CHECK(sm && lsm && lse && lse->n == 2);
    for (j = 0; j < 4; j++) s += sm->x[j];
    CHECK_NEAR(s, 1, 1e-6);
    CHECK(sm->x[3] == 0);
    CHECK_NEAR(lse->x[0], ref, 1e-3);
    CHECK_NEAR(lsm->x[1], 1001 - ref, 1e-4);
    for (j = 0; j < 4; j++) CHECK(sm->x[4 + j] == 0); /* fully masked row */
    CHECK(lse->x[1] == -INFINITY);
    ar_graph_free(&g);
}

static void test_losses_forward(void)
{
    ar_graph g;
    float z[6] = {0.3f, -2, 5, 0, 1, -1}, t[6] = {1, 0, 1, 0, 0.5f, 1};
    int labels[2] = {2, 0};
    ar_tensor *in, *b, *ce;
    double ref0 = 0, ref1 = 0, lse;
    int j;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    in = ar_input(&g, z, 2, S(2, 3));
    b = ar_bce_logits(&g, in, t);
    ce = ar_cross_entropy(&g, in, labels);
    CHECK(b && ce && b->n == 2 && ce->n == 2);
    for (j = 0; j < 3; j++) {
        double p = 1 / (1 + exp(-z[j])), q = 1 / (1 + exp(-z[3 + j]));
        ref0 -= t[j] * log(p) + (1 - t[j]) * log(1 - p);
        ref1 -= t[3 + j] * log(q) + (1 - t[3 + j]) * log(1 - q);
    }
    CHECK_NEAR(b->x[0], ref0, 1e-5);
    CHECK_NEAR(b->x[1], ref1, 1e-5);
    lse = log(exp(0.3) + exp(-2.0) + exp(5.0));
    CHECK_NEAR(ce->x[0], lse - 5, 1e-5);
    lse = log(exp(0.0) + exp(1.0) + exp(-1.0));
    CHECK_NEAR(ce->x[1], lse - 0, 1e-5);
    ar_graph_free(&g);
}

static void test_layernorm_forward(void)
{
    ar_graph g;
    float x[8] = {1, 2, 3, 4, -10, 0, 10, 20};
    ar_tensor *y;
    int r, j;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    y = ar_layernorm(&g, ar_input(&g, x, 2, S(2, 4)), NULL, NULL, 1e-5f);
    CHECK(y);
    for (r = 0; r < 2; r++) {
        double m = 0, v = 0;
        for (j = 0; j < 4; j++) m += y->x[r * 4 + j] / 4;
        for (j = 0; j < 4; j++) v += (y->x[r * 4 + j] - m) * (y->x[r * 4 + j] - m) / 4;
        CHECK_NEAR(m, 0, 1e-6);
        CHECK_NEAR(v, 1, 1e-4);
    }
    ar_graph_free(&g);
}

static void test_shape_ops_forward(void)
{
    ar_graph g;
    float a[6] = {0, 1, 2, 3, 4, 5}, b[4] = {6, 7, 8, 9}, mask[3] = {1, 0, 1};
    float W[6] = {10, 11, 20, 21, 30, 31};
    int ids[3] = {2, 0, 2};
    ar_tensor *A, *c, *s, *e, *m, *p;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    A = ar_input(&g, a, 2, S(2, 3));
    p = ar_permute(&g, A, S(1, 0)); /* transpose */
    CHECK(p && p->shape[0] == 3 && p->shape[1] == 2 && p->x[0] == 0 && p->x[1] == 3 && p->x[2] == 1 && p->x[5] == 5);
    CHECK(ar_permute(&g, A, S(0, 0)) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    A = ar_input(&g, a, 2, S(2, 3));
    c = ar_concat(&g, A, ar_input(&g, b, 2, S(2, 2)), 1); /* [2,5] */
    CHECK(c && c->shape[1] == 5);
    CHECK(c->x[3] == 6 && c->x[4] == 7 && c->x[5] == 3 && c->x[9] == 9);
    s = ar_slice(&g, c, 1, 2, 2);
    CHECK(s && s->x[0] == 2 && s->x[1] == 6 && s->x[2] == 5 && s->x[3] == 8);
    e = ar_embedding(&g, ar_input(&g, W, 2, S(3, 2)), ids, 1, S(3));
    CHECK(e && e->shape[0] == 3 && e->shape[1] == 2 && e->x[0] == 30 && e->x[2] == 10 && e->x[5] == 31);
    m = ar_masked_fill(&g, A, mask, 3, -INFINITY);
    CHECK(m && m->x[0] == 0 && m->x[1] == -INFINITY && m->x[4] == -INFINITY && m->x[5] == 5);
    ar_graph_free(&g);
}

/* ---- bad input: clear status and message, no crash ---------------------- */

static void test_op_errors(void)
{
    ar_graph g;
    float a[12] = {0}, t[12] = {0};
    int labels[3] = {0, 1, 7}, ids[2] = {0, 5};
    ar_tensor *A, *B;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    A = ar_input(&g, a, 2, S(3, 4));
    B = ar_input(&g, a, 2, S(3, 4));
    CHECK(ar_matmul(&g, A, B, 0, 0) == NULL);
    CHECK(g.status == AR_ERR_SHAPE && strstr(g.err, "inner dims differ (4 vs 3)"));
    /* sticky: later ops return NULL and keep the first message */
    CHECK(ar_add(&g, A, B) == NULL && strstr(g.err, "ar_matmul"));
    ar_graph_reset(&g);
    CHECK(g.status == AR_OK && g.err[0] == 0);
    A = ar_input(&g, a, 2, S(3, 4));
    CHECK(ar_cross_entropy(&g, A, labels) == NULL && g.status == AR_ERR_RANGE && strstr(g.err, "labels[2] = 7"));
    ar_graph_reset(&g);
    A = ar_input(&g, a, 2, S(3, 4));
    t[5] = NAN;
    CHECK(ar_bce_logits(&g, A, t) == NULL && g.status == AR_ERR_NUMERIC && strstr(g.err, "targets[5]"));
    ar_graph_reset(&g);
    CHECK(ar_embedding(&g, ar_input(&g, a, 2, S(4, 3)), ids, 1, S(2)) == NULL && strstr(g.err, "ids[1] = 5"));
    ar_graph_reset(&g);
    CHECK(ar_input(&g, a, 2, S(3, -4)) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    CHECK(ar_input(&g, a, 5, S(1, 1, 1, 1, 1)) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    CHECK(ar_input(&g, a, 2, S(0x10000, 0x10000)) != NULL); /* 2^32 elements: borrowed, fine */
    CHECK(ar_zeros(&g, 4, S(0x10000, 0x10000, 0x10000, 0x10000)) == NULL && g.status == AR_ERR_RANGE);
    ar_graph_reset(&g);
    CHECK(ar_sigmoid(&g, NULL) == NULL && g.status == AR_ERR_ARG && strstr(g.err, "NULL"));
    ar_graph_reset(&g);
    A = ar_input(&g, a, 2, S(3, 4));
    CHECK(ar_slice(&g, A, 1, 3, 2) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    A = ar_input(&g, a, 2, S(3, 4));
    CHECK(ar_sum(&g, A, 2) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    A = ar_input(&g, a, 2, S(3, 4));
    CHECK(ar_reshape(&g, A, 2, S(5, 2)) == NULL && g.status == AR_ERR_SHAPE);
    ar_graph_reset(&g);
    A = ar_input(&g, a, 2, S(3, 4));
    CHECK(ar_backward(&g, ar_sum(&g, A, AR_ALL)) == AR_ERR_ARG && strstr(g.err, "does not depend"));
    ar_graph_reset(&g);
    CHECK(ar_backward(&g, ar_input(&g, a, 1, S(2))) == AR_ERR_SHAPE);
    ar_graph_free(&g);
}

void tests_ops(void)
{
    t_run("ops/gradcheck_all_ops", test_gradcheck_all_ops);
    t_run("ops/gradcheck_detects_wrong_gradient", test_gradcheck_detects_wrong_gradient);
    t_run("ops/matmul_forward", test_matmul_forward);
    t_run("ops/masked_linear_against_dense", test_masked_linear_against_dense);
    t_run("ops/conv1d_forward_and_causality", test_conv1d_forward_and_causality);
    t_run("ops/conv2d_forward_and_masks", test_conv2d_forward_and_masks);
    t_run("ops/elementwise_forward", test_elementwise_forward);
    t_run("ops/exp_family_accuracy", test_exp_family_accuracy);
    t_run("ops/softmax_family_forward", test_softmax_family_forward);
    t_run("ops/causal_softmax_forward", test_causal_softmax_forward);
    t_run("ops/losses_forward", test_losses_forward);
    t_run("ops/layernorm_forward", test_layernorm_forward);
    t_run("ops/shape_ops_forward", test_shape_ops_forward);
    t_run("ops/op_errors", test_op_errors);
}
