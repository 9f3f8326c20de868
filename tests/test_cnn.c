/* Convolutional models (PixelCNN, Gated PixelCNN, WaveNet): gradients,
   the autoregressive property and PixelCNN's blind spot by perturbation,
   WaveNet's receptive field, the gated model's reach at initialization,
   exact normalization over all images, cached sampling == naive sampling,
   checkpoints. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

static const char *const kinds[3] = {"pixelcnn", "gated", "wavenet"};

/* A small model with visible random weights (biases too), so nothing holds by accident. */
static int make_cnn(ar_cnn *m, int kind, int H, int W, int levels, int F, int layers, int coords, uint64_t seed)
{
    ar_cnn_cfg c = ar_cnn_default(kind, H, W, layers);
    ar_rng r;
    int i;
    c.levels = levels; c.channels = F; c.coords = coords; c.seed = seed;
    c.first_kernel = 3; c.dilations = 2;
    if (ar_cnn_init(m, &c) != AR_OK) return 0;
    ar_rng_seed(&r, seed + 3);
    for (i = 0; i < m->ps.n; i++)
        if (m->ps.t[i]->nd == 1) ar_init_uniform(m->ps.t[i], &r, -0.3f, 0.3f);
    return 1;
}

/* Largest change of the logits at pixel i when pixel j of x flips. */
static float dependence(ar_cnn *m, ar_graph *g, const float *x, int i, int j)
{
    int HW = m->cfg.H * m->cfg.W, P = m->cfg.levels > 1 ? m->cfg.levels : 1, v;
    float *y = (float *)malloc((size_t)HW * sizeof(float)), d = 0;
    ar_tensor *a, *b;
    memcpy(y, x, (size_t)HW * sizeof(float));
    y[j] = m->cfg.levels > 1 ? (float)(((int)y[j] + 1) % m->cfg.levels) : 1 - y[j];
    ar_graph_reset(g);
    a = ar_cnn_logits(m, g, x, 1);
    b = ar_cnn_logits(m, g, y, 1);
    if (!a || !b) d = INFINITY;
    for (v = 0; a && b && v < P; v++) d = fmaxf(d, fabsf(a->x[i * P + v] - b->x[i * P + v]));
    free(y);
    return d;
}

typedef struct { ar_cnn *m; float x[2 * 12]; } cnn_ctx;
static ar_tensor *cnn_loss(ar_graph *g, void *c)
{
    cnn_ctx *k = (cnn_ctx *)c;
    return ar_mean(g, ar_cnn_nll(k->m, g, k->x, 2), AR_ALL);
}

static void test_cnn_gradcheck(void)
{
    int kind, levels;
    for (kind = 0; kind < 3; kind++)
        for (levels = 1; levels <= 3; levels += 2) {
            ar_cnn m;
            ar_graph g;
            cnn_ctx k;
            double rel = 1;
            const char *worst = NULL;
            int i;
            ar_rng r;
            CHECK(make_cnn(&m, kind, 3, 4, levels, 3, 2, levels == 3, 40 + kind));
            ar_rng_seed(&r, 43 + kind);
            for (i = 0; i < m.ps.n; i++) ar_init_uniform(m.ps.t[i], &r, -0.8f, 0.8f);
            for (i = 0; i < 24; i++) k.x[i] = (float)((i * 7 + kind) % (levels == 1 ? 2 : 3));
            k.m = &m;
            CHECK(ar_graph_init(&g, 0) == AR_OK);
            CHECK(ar_gradcheck(&g, &m.ps, cnn_loss, &k, 3e-3f, &rel, &worst) == AR_OK);
            /* each op is checked to 3e-4 on its own (ops/gradcheck); through
               the whole model, float32 rounding of a loss near 13 nats over
               small steps, and ReLU kinks crossed by larger ones, leave
               differences up to about 1.5e-2; a wrongly wired layer gives
               errors of order 1 */
            CHECK_MSG(rel < 3e-2, "%s levels %d: relative gradient error %.3g in %s", kinds[kind], levels, rel,
                      worst ? worst : "?");
            ar_graph_free(&g);
            ar_cnn_free(&m);
        }
}

/* Logits at pixel i never move with pixel j >= i (raster order), for every
   kind, with coordinates and categorical pixels too. */
static void test_cnn_autoregressive(void)
{
    enum { H = 5, W = 6, HW = H * W };
    int kind, variant, i, j;
    for (kind = 0; kind < 3; kind++)
        for (variant = 0; variant < 2; variant++) {
            ar_cnn m;
            ar_graph g;
            float x[HW];
            int levels = variant ? 4 : 1, moved = 0, seen = 0;
            CHECK(make_cnn(&m, kind, H, W, levels, 4, 3, variant, 50 + kind));
            CHECK(ar_graph_init(&g, 0) == AR_OK);
            ar_graph_set_grad(&g, 0);
            for (i = 0; i < HW; i++) x[i] = (float)((i * 5 + 3) % (variant ? 4 : 2));
            for (j = 0; j < HW; j++)
                for (i = 0; i < HW; i++) {
                    float d = dependence(&m, &g, x, i, j);
                    if (j >= i) moved += d != 0;
                    else seen += d > 1e-6f;
                }
            CHECK_MSG(moved == 0, "%s levels %d: %d outputs depend on a later pixel", kinds[kind], levels, moved);
            CHECK_MSG(seen > HW, "%s: outputs see only %d earlier pixels", kinds[kind], seen);
            ar_graph_free(&g);
            ar_cnn_free(&m);
        }
}

/* Stacked masked 3x3 convs never see the pixel two columns right in the
   row above (the blind spot); the gated two-stack model does. */
static void test_cnn_blind_spot(void)
{
    enum { H = 6, W = 7, HW = H * W };
    int kind, y = 4, xx = 2, i = y * W + xx, k;
    float x[HW];
    for (kind = 0; kind < 2; kind++) {
        ar_cnn m;
        ar_graph g;
        float spot, left, above;
        CHECK(make_cnn(&m, kind, H, W, 1, 4, 3, 0, 60 + kind));
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        ar_graph_set_grad(&g, 0);
        for (k = 0; k < HW; k++) x[k] = (float)((k * 3 + 1) % 2);
        spot = dependence(&m, &g, x, i, (y - 1) * W + xx + 2);
        above = dependence(&m, &g, x, i, (y - 1) * W + xx + 1);
        left = dependence(&m, &g, x, i, i - 1);
        CHECK(above > 1e-6f && left > 1e-6f);
        if (kind == AR_CNN_PIXELCNN) CHECK_MSG(spot == 0, "PixelCNN sees its blind spot (%g)", spot);
        else CHECK_MSG(spot > 1e-6f, "the gated model misses (y-1, x+2): %g", spot);
        ar_graph_free(&g);
        ar_cnn_free(&m);
    }
}

/* At initialization the default Gated PixelCNN (9 layers, MNIST size) must
   already carry a signal up its vertical stack: flipping one pixel 10 rows
   above moves the logit at (14, 14). Measured: 5e-3..1e-2 over 4 seeds;
   with the earlier init, U(+-1/sqrt(fan_in)), 2e-7..4e-7, and the model
   trained far slower. */
static void test_cnn_init_reach(void)
{
    enum { N = 29, HW = 784 };
    ar_cnn_cfg c = ar_cnn_default(AR_CNN_GATED, 28, 28, 8);
    ar_cnn m;
    ar_graph g;
    ar_rng r;
    ar_tensor *lg;
    float *x = (float *)malloc(sizeof(float) * N * HW), far = 0;
    int j, o = 14 * 28 + 14;
    CHECK(x && ar_cnn_init(&m, &c) == AR_OK);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    ar_graph_set_grad(&g, 0);
    ar_rng_seed(&r, 5);
    for (j = 0; j < HW; j++) x[j] = (float)ar_rng_bernoulli(&r, 0.3f);
    for (j = 1; j < N; j++) { /* image j: pixel (4, j - 1) flipped */
        memcpy(x + (size_t)j * HW, x, sizeof(float) * HW);
        x[(size_t)j * HW + 4 * 28 + j - 1] = 1 - x[4 * 28 + j - 1];
    }
    lg = ar_cnn_logits(&m, &g, x, N);
    CHECK_MSG(lg, "%s", g.err);
    for (j = 1; lg && j < N; j++) far = fmaxf(far, fabsf(lg->x[(size_t)j * HW + o] - lg->x[o]));
    CHECK_MSG(far > 1e-3f, "a pixel 10 rows up moves the logit by only %g at initialization", far);
    ar_graph_free(&g);
    ar_cnn_free(&m);
    free(x);
}

/* WaveNet's output at t sees exactly pixels t - rf .. t - 1, rf = 2 + sum of the dilations. */
static void test_cnn_receptive_field(void)
{
    enum { T = 40 };
    ar_cnn m;
    ar_cnn_cfg c;
    ar_graph g;
    float x[T];
    int j, t = T - 1, first = T, last = -1, rf;
    c = ar_cnn_default(AR_CNN_WAVENET, 1, T, 5);
    c.channels = 3;
    c.dilations = 3; /* 1 2 4 1 2 */
    c.seed = 9;
    CHECK(ar_cnn_init(&m, &c) == AR_OK);
    rf = ar_cnn_receptive_field(&c);
    CHECK(rf == 2 + 1 + 2 + 4 + 1 + 2);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    ar_graph_set_grad(&g, 0);
    for (j = 0; j < T; j++) x[j] = (float)(j % 3 == 0);
    for (j = 0; j < T; j++)
        if (dependence(&m, &g, x, t, j) > 0) {
            first = j < first ? j : first;
            last = j > last ? j : last;
        }
    CHECK_MSG(first == t - rf && last == t - 1, "output %d sees %d..%d, expected %d..%d", t, first, last, t - rf, t - 1);
    ar_graph_free(&g);
    ar_cnn_free(&m);
}

/* sum over all images of p(x) = 1: 2^9 binary 3x3 images, 4^4 2x2 images
   with 4 levels, and 256^2 1x2 images with 256 levels. */
static void test_cnn_normalization(void)
{
    static const int shapes[3][3] = {{3, 3, 1}, {2, 2, 4}, {1, 2, 256}};
    int kind, s;
    for (kind = 0; kind < 3; kind++)
        for (s = 0; s < 3; s++) {
            ar_cnn m;
            ar_graph g;
            int H = shapes[s][0], W = shapes[s][1], L = shapes[s][2], HW = H * W, base = L > 1 ? L : 2;
            int n, N = 1, i, p, chunk = 4096;
            double total = 0;
            float *x;
            for (p = 0; p < HW; p++) N *= base;
            x = (float *)malloc((size_t)chunk * HW * sizeof(float));
            CHECK(make_cnn(&m, kind, H, W, L, 3, 2, s == 1, 70 + kind + s));
            CHECK(ar_graph_init(&g, 0) == AR_OK);
            ar_graph_set_grad(&g, 0);
            for (n = 0; n < N; n += chunk) {
                int b = N - n < chunk ? N - n : chunk;
                ar_tensor *nll;
                for (i = 0; i < b; i++)
                    for (p = 0; p < HW; p++) {
                        int v = n + i, q;
                        for (q = 0; q < p; q++) v /= base;
                        x[i * HW + p] = (float)(v % base);
                    }
                ar_graph_reset(&g);
                nll = ar_cnn_nll(&m, &g, x, b);
                CHECK_MSG(nll, "%s", g.err);
                for (i = 0; nll && i < b; i++) total += exp(-(double)nll->x[i]);
            }
            CHECK_MSG(fabs(total - 1) < 1e-5, "%s %dx%d levels %d: total probability %.9f", kinds[kind], H, W, L, total);
            free(x);
            ar_graph_free(&g);
            ar_cnn_free(&m);
        }
}

/* The cached sampler draws the same images as full recomputation from the
   same seed, with the same logits; given pixels stay as they were. */
static void test_cnn_cached_equals_naive(void)
{
    enum { H = 5, W = 6, HW = H * W, N = 3, given = 8 };
    int kind, variant;
    for (kind = 0; kind < 3; kind++)
        for (variant = 0; variant < 3; variant++) {
            ar_cnn m;
            ar_rng r1, r2;
            int levels = variant == 2 ? 5 : 1, P = levels > 1 ? levels : 1, i, same = 1;
            float xa[N * HW], xb[N * HW], la[N * HW * 5], lb[N * HW * 5], worst = 0;
            ar_graph g;
            ar_tensor *lg;
            CHECK(make_cnn(&m, kind, H, W, levels, 5, 3, variant == 1, 80 + kind));
            for (i = 0; i < N * HW; i++) xa[i] = xb[i] = (float)((i * 3 + 1) % (levels > 1 ? levels : 2));
            ar_rng_seed(&r1, 123);
            ar_rng_seed(&r2, 123);
            CHECK_MSG(ar_cnn_sample(&m, N, given, 0, &r1, xa, la) == AR_OK, "%s", m.err);
            CHECK_MSG(ar_cnn_sample(&m, N, given, 1, &r2, xb, lb) == AR_OK, "%s", m.err);
            for (i = 0; i < N * HW; i++) same &= xa[i] == xb[i];
            for (i = 0; i < N * HW * P; i++) worst = fmaxf(worst, fabsf(la[i] - lb[i]));
            CHECK_MSG(same, "%s variant %d: cached and naive samples differ", kinds[kind], variant);
            CHECK_MSG(worst < 1e-5f, "%s variant %d: logits differ by %g", kinds[kind], variant, worst);
            for (i = 0; i < given; i++) CHECK(xa[HW + i] == (float)(((HW + i) * 3 + 1) % (levels > 1 ? levels : 2)));
            /* the sampler's logits are the model's logits of the finished images */
            CHECK(ar_graph_init(&g, 0) == AR_OK);
            lg = ar_cnn_logits(&m, &g, xb, N);
            CHECK(lg != NULL);
            for (i = 0, worst = 0; lg && i < N * HW * P; i++) worst = fmaxf(worst, fabsf(lg->x[i] - lb[i]));
            CHECK_MSG(worst < 1e-5f, "%s: sampler logits differ from the model's by %g", kinds[kind], worst);
            ar_graph_free(&g);
            ar_cnn_free(&m);
        }
}

static void test_cnn_checkpoint(void)
{
    const char *path = "/tmp/ar_test_cnn.safetensors";
    float x[2 * 20];
    int kind, i;
    for (i = 0; i < 40; i++) x[i] = (float)((i * 7 + 2) % 3);
    for (kind = 0; kind < 3; kind++) {
        ar_cnn a, b;
        ar_tfm wrong;
        ar_graph g;
        ar_tensor *la, *lb;
        CHECK(make_cnn(&a, kind, 4, 5, 3, 4, 2, 1, 90 + kind));
        CHECK(ar_cnn_save(&a, path) == AR_OK);
        memset(&b, 0, sizeof b);
        memset(&wrong, 0, sizeof wrong);
        CHECK_MSG(ar_cnn_load(&b, path) == AR_OK, "%s", b.err);
        CHECK(b.cfg.kind == kind && b.cfg.levels == 3 && b.cfg.coords == 1 && b.cfg.layers == 2);
        CHECK(ar_graph_init(&g, 0) == AR_OK);
        la = ar_cnn_nll(&a, &g, x, 2);
        lb = ar_cnn_nll(&b, &g, x, 2);
        CHECK(la && lb && memcmp(la->x, lb->x, 2 * sizeof(float)) == 0);
        CHECK(ar_tfm_load(&wrong, path) == AR_ERR_FORMAT && strstr(wrong.err, "ar.model = cnn"));
        remove(path);
        ar_graph_free(&g);
        ar_cnn_free(&a);
        ar_cnn_free(&b);
    }
}

static void test_cnn_bad_input(void)
{
    ar_cnn m;
    ar_cnn_cfg c = ar_cnn_default(AR_CNN_GATED, 4, 4, 1);
    ar_graph g;
    ar_rng r;
    float x[16] = {0};
    c.channels = 2;
    CHECK(ar_cnn_init(NULL, &c) == AR_ERR_ARG);
    c.kernel = 4;
    CHECK(ar_cnn_init(&m, &c) == AR_ERR_ARG && strstr(m.err, "odd"));
    c.kernel = 3;
    c.kind = 7;
    CHECK(ar_cnn_init(&m, &c) == AR_ERR_ARG);
    c.kind = AR_CNN_GATED;
    c.layers = AR_CNN_MAX_LAYERS;
    CHECK(ar_cnn_init(&m, &c) == AR_ERR_ARG);
    c.layers = 1;
    CHECK(ar_cnn_init(&m, &c) == AR_OK);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    x[5] = 0.5f;
    CHECK(ar_cnn_nll(&m, &g, x, 1) == NULL && g.status == AR_ERR_ARG && strstr(g.err, "pixel 5"));
    ar_graph_reset(&g);
    CHECK(ar_cnn_logits(&m, &g, NULL, 1) == NULL && g.status == AR_ERR_ARG);
    ar_rng_seed(&r, 1);
    CHECK(ar_cnn_sample(&m, 1, 17, 1, &r, x, NULL) == AR_ERR_ARG);
    CHECK(ar_cnn_sample(&m, 1, 6, 1, &r, x, NULL) == AR_ERR_ARG && strstr(m.err, "pixel 5"));
    CHECK(ar_cnn_sample(&m, 0, 0, 1, &r, x, NULL) == AR_ERR_ARG);
    CHECK(ar_cnn_sample(&m, 1, 0, 1, NULL, x, NULL) == AR_ERR_ARG);
    CHECK(ar_cnn_sample(&m, 1, 0, 1, &r, x, NULL) == AR_OK);
    ar_graph_free(&g);
    ar_cnn_free(&m);
    ar_cnn_free(NULL);
}

void tests_cnn(void)
{
    t_run("cnn/gradcheck", test_cnn_gradcheck);
    t_run("cnn/autoregressive", test_cnn_autoregressive);
    t_run("cnn/blind_spot", test_cnn_blind_spot);
    t_run("cnn/init_reach", test_cnn_init_reach);
    t_run("cnn/receptive_field", test_cnn_receptive_field);
    t_run("cnn/normalization", test_cnn_normalization);
    t_run("cnn/cached_equals_naive", test_cnn_cached_equals_naive);
    t_run("cnn/checkpoint", test_cnn_checkpoint);
    t_run("cnn/bad_input", test_cnn_bad_input);
}
