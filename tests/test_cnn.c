/* Convolutional models (PixelCNN, Gated PixelCNN, WaveNet) through
   ar_model: gradients, the autoregressive property and PixelCNN's blind
   spot by perturbation, WaveNet's receptive field, the gated model's reach
   at initialization, exact normalization over all images, sampling against
   the exact distribution under every option and with completion, cached
   sampling == naive sampling, checkpoints, bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

/* From test_tfm.c: the sampler's rule, and samples against exact distributions. */
double t_sample_rule(const float *logits, int L, const ar_sample_opts *o, double *q);
int t_samples_match(const float *x, const float *probs, int N, int D, int L, int P, const double *cond,
                    const unsigned char *known, const float *given, char *msg, size_t cap);

/* A call that must fail with status st and a message in o.err (cleared first). */
#define FAILS(call, st, o) ((o).err[0] = 0, (call) == (st) && (o).err[0])

static const char *const kinds[3] = {"pixelcnn", "gated", "wavenet"};

/* A small model (kind 0, 1, 2: PixelCNN, gated, WaveNet) with visible
   random weights (biases too), so nothing holds by accident. levels 1:
   binary pixels. */
static int make_cnn(ar_model *m, int kind, int H, int W, int levels, int F, int layers, int coords, uint64_t seed)
{
    ar_model_cfg c = ar_model_default((ar_kind)(AR_PIXELCNN + kind), H, W);
    ar_rng r;
    int i;
    c.cnn.levels = levels; c.cnn.channels = F; c.cnn.layers = layers; c.cnn.coords = coords;
    c.cnn.kernel = 3; c.cnn.first_kernel = 3; c.cnn.dilations = 2;
    c.seed = seed;
    if (ar_model_init(m, &c) != AR_OK) return 0;
    ar_rng_seed(&r, seed + 3);
    for (i = 0; i < m->ps.n; i++)
        if (m->ps.t[i]->nd == 1) ar_init_uniform(m->ps.t[i], &r, -0.3f, 0.3f);
    return 1;
}

static int outs(const ar_model *m) { return m->cfg.cnn.levels > 1 ? m->cfg.cnn.levels : 1; }
static int values(const ar_model *m) { return m->cfg.cnn.levels > 1 ? m->cfg.cnn.levels : 2; }

/* Largest change of the logits at pixel i when pixel j of x changes. */
static float dependence(ar_model *m, ar_graph *g, const float *x, int i, int j)
{
    int HW = m->D, P = outs(m), v;
    float *y = (float *)malloc((size_t)HW * sizeof(float)), d = 0;
    ar_tensor *a, *b;
    memcpy(y, x, (size_t)HW * sizeof(float));
    y[j] = (float)(((int)y[j] + 1) % values(m));
    ar_graph_reset(g);
    a = ar_cnn_logits(m, g, x, 1);
    b = ar_cnn_logits(m, g, y, 1);
    if (!a || !b) d = INFINITY;
    for (v = 0; a && b && v < P; v++) d = fmaxf(d, fabsf(a->x[i * P + v] - b->x[i * P + v]));
    free(y);
    return d;
}

typedef struct { ar_model *m; float x[2 * 12]; } cnn_ctx;
static ar_tensor *cnn_loss(ar_graph *g, void *c)
{
    cnn_ctx *k = (cnn_ctx *)c;
    return ar_mean(g, ar_model_nll(k->m, g, k->x, 2, NULL), AR_ALL);
}

static void test_cnn_gradcheck(void)
{
    int kind, levels;
    for (kind = 0; kind < 3; kind++)
        for (levels = 1; levels <= 3; levels += 2) {
            ar_model m;
            ar_graph g;
            cnn_ctx k;
            double rel = 1;
            const char *worst = NULL;
            int i;
            ar_rng r;
            CHECK(make_cnn(&m, kind, 3, 4, levels, 3, 2, levels == 3, 40 + kind));
            CHECK(m.kind == (ar_kind)(AR_PIXELCNN + kind) && m.D == 12 && m.rows == 3 && m.cols == 4 && m.cnn && !m.tfm);
            CHECK(m.levels == (levels == 1 ? 2 : levels));
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
            ar_model_free(&m);
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
            ar_model m;
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
            ar_model_free(&m);
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
        ar_model m;
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
        if (kind == 0) CHECK_MSG(spot == 0, "PixelCNN sees its blind spot (%g)", spot);
        else CHECK_MSG(spot > 1e-6f, "the gated model misses (y-1, x+2): %g", spot);
        ar_graph_free(&g);
        ar_model_free(&m);
    }
}

/* At initialization a Gated PixelCNN of 9 layers at MNIST size must
   already carry a signal up its vertical stack: flipping one pixel 10 rows
   above moves the logit at (14, 14). Measured: 5e-3..1e-2 over 4 seeds;
   with the earlier init, U(+-1/sqrt(fan_in)), 2e-7..4e-7, and the model
   trained far slower. */
static void test_cnn_init_reach(void)
{
    enum { N = 29, HW = 784 };
    ar_model_cfg c = ar_model_default(AR_GATED, 28, 28);
    ar_model m;
    ar_graph g;
    ar_rng r;
    ar_tensor *lg;
    float *x = (float *)malloc(sizeof(float) * N * HW), far = 0;
    int j, o = 14 * 28 + 14;
    c.cnn.layers = 8;
    CHECK(x && ar_model_init(&m, &c) == AR_OK);
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
    ar_model_free(&m);
    free(x);
}

/* WaveNet's output at t sees exactly pixels t - rf .. t - 1, rf = 2 + sum of the dilations. */
static void test_cnn_receptive_field(void)
{
    enum { T = 40 };
    ar_model m, other;
    ar_model_cfg c = ar_model_default(AR_WAVENET, 1, T), oc = ar_model_default(AR_NADE, 1, 4);
    ar_graph g;
    float x[T];
    int j, t = T - 1, first = T, last = -1, rf;
    c.cnn.layers = 5;
    c.cnn.channels = 3;
    c.cnn.dilations = 3; /* 1 2 4 1 2 */
    c.seed = 9;
    CHECK(ar_model_init(&m, &c) == AR_OK);
    rf = ar_cnn_receptive_field(&m);
    CHECK_MSG(rf == 2 + 1 + 2 + 4 + 1 + 2, "receptive field %d", rf);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    ar_graph_set_grad(&g, 0);
    for (j = 0; j < T; j++) x[j] = (float)(j % 3 == 0);
    for (j = 0; j < T; j++)
        if (dependence(&m, &g, x, t, j) > 0) {
            first = j < first ? j : first;
            last = j > last ? j : last;
        }
    CHECK_MSG(first == t - rf && last == t - 1, "output %d sees %d..%d, expected %d..%d", t, first, last, t - rf, t - 1);
    oc.nade.H = 3;
    CHECK(ar_model_init(&other, &oc) == AR_OK);
    CHECK(ar_cnn_receptive_field(&other) == 0 && ar_cnn_receptive_field(NULL) == 0);
    ar_model_free(&other);
    ar_graph_free(&g);
    ar_model_free(&m);
}

/* Sum over all images of p(x) = 1 by ar_model_log_prob, which equals
   -ar_model_nll: 2^9 binary 3x3 images, 4^4 2x2 images with 4 levels, and
   256^2 1x2 images with 256 levels. */
static void test_cnn_normalization(void)
{
    static const int shapes[3][3] = {{3, 3, 1}, {2, 2, 4}, {1, 2, 256}};
    int kind, s;
    for (kind = 0; kind < 3; kind++)
        for (s = 0; s < 3; s++) {
            ar_model m;
            ar_graph g;
            int H = shapes[s][0], W = shapes[s][1], L = shapes[s][2], HW = H * W, base = L > 1 ? L : 2;
            int n, N = 1, i, p, chunk = 4096;
            double total = 0, worst = 0;
            float *x, *lp;
            for (p = 0; p < HW; p++) N *= base;
            x = (float *)malloc((size_t)chunk * HW * sizeof(float));
            lp = (float *)malloc((size_t)chunk * sizeof(float));
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
                CHECK_MSG(ar_model_log_prob(&m, x, b, lp) == AR_OK, "%s", m.err);
                for (i = 0; i < b; i++) total += exp((double)lp[i]);
                if (n) continue;
                ar_graph_reset(&g); /* the training loss agrees (on the first chunk) */
                nll = ar_model_nll(&m, &g, x, b, NULL);
                CHECK_MSG(nll, "%s", g.err);
                for (i = 0; i < b; i++) worst = fmax(worst, fabs((double)lp[i] + nll->x[i]));
            }
            CHECK_MSG(fabs(total - 1) < 1e-5, "%s %dx%d levels %d: total probability %.9f", kinds[kind], H, W, L, total);
            CHECK_MSG(worst < 1e-4, "%s: log_prob and nll differ by %g", kinds[kind], worst);
            free(x);
            free(lp);
            ar_graph_free(&g);
            ar_model_free(&m);
        }
}

/* cond [S*D*L] for all S = L^D images (L values per pixel): the
   distribution the sampler must use at every pixel, from the model's
   logits of the image (pixel i sees only pixels before it) and the rule;
   *margin: the closest call to a tie at the pixels drawn (from `known` on). */
static int cnn_cond(ar_model *m, const ar_sample_opts *o, int known, double *cond, double *margin)
{
    int D = m->D, L = values(m), P = outs(m), S = 1, s, d, ok;
    float *x;
    ar_graph g;
    ar_tensor *lg;
    for (d = 0; d < D; d++) S *= L;
    x = (float *)malloc((size_t)S * D * sizeof(float));
    if (!x || ar_graph_init(&g, 0) != AR_OK) { free(x); return 0; }
    ar_graph_set_grad(&g, 0);
    for (s = 0; s < S; s++)
        for (d = 0; d < D; d++) x[s * D + d] = (float)(s / (int)pow(L, d) % L);
    lg = ar_cnn_logits(m, &g, x, S);
    ok = lg != NULL;
    *margin = 1;
    for (s = 0; ok && s < S; s++)
        for (d = 0; d < D; d++) {
            const float *l = lg->x + ((size_t)s * D + d) * P;
            float two[2];
            two[0] = 0;
            two[1] = l[0];
            double mg = t_sample_rule(P == 1 ? two : l, L, o, cond + ((size_t)s * D + d) * L);
            if (d >= known) *margin = fmin(*margin, mg);
        }
    ar_graph_free(&g);
    free(x);
    return ok;
}

/* Samples of each kind, binary and categorical (2 and 3 levels), against the exact
   distribution under temperature 1, 0.5, 2 and 0, top-k, top-p, and
   completion of the first pixels (p(rest | known prefix)); probs are the
   distributions drawn from; the cached and naive paths give the same
   samples and probs from the same seed. */
static void test_cnn_sample_frequencies(void)
{
    enum { N = 20000, NN = 200, MAXS = 729, MAXD = 6 };
    static const struct { int kind, H, W, levels, coords; } models[5] = { /* levels 2: a softmax over two */
        {0, 2, 2, 3, 0}, {1, 2, 3, 1, 1}, {2, 1, 4, 3, 0}, {2, 2, 3, 1, 0}, {0, 2, 3, 2, 1}};
    static const struct { float temp; int top_k; float top_p; int known; } cases[] = {
        {1, 0, 0, 0}, {0.5f, 0, 0, 0}, {2, 0, 0, 0}, {0, 0, 0, 0}, {1, 2, 0, 0}, {1, 0, 0.7f, 0},
        {1, 0, 0, 2}, {0.5f, 0, 0.8f, 3}, {1.5f, 2, 0.7f, 0},
    };
    static float x[N * MAXD], x2[NN * MAXD], probs[N * MAXD * 3], probs2[NN * MAXD * 3], given[N * MAXD];
    static float xs[MAXS * MAXD], lp[MAXS];
    static unsigned char known[N * MAXD];
    static double cond[MAXS * MAXD * 3];
    int mi;
    for (mi = 0; mi < 5; mi++) {
        ar_model m;
        int D, L, P, S = 1, s, d, n;
        size_t k;
        char msg[256];
        CHECK(make_cnn(&m, models[mi].kind, models[mi].H, models[mi].W, models[mi].levels, 4, 2, models[mi].coords,
                       200 + mi));
        { /* bolder weights: conditionals far from uniform */
            ar_rng r;
            int i;
            ar_rng_seed(&r, 300 + mi);
            for (i = 0; i < m.ps.n; i++) ar_init_uniform(m.ps.t[i], &r, -1.2f, 1.2f);
        }
        D = m.D; L = values(&m);
        P = m.levels > 2 ? m.levels : 1; /* probs: p(x = 1) for two values, else the distribution */
        for (d = 0; d < D; d++) S *= L;
        for (s = 0; s < S; s++)
            for (d = 0; d < D; d++) xs[s * D + d] = (float)(s / (int)pow(L, d) % L);
        CHECK(ar_model_log_prob(&m, xs, S, lp) == AR_OK);
        for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            ar_sample_opts o = ar_sample_defaults();
            ar_rng r;
            double margin;
            o.temperature = cases[k].temp; o.top_k = cases[k].top_k; o.top_p = cases[k].top_p;
            CHECK(cnn_cond(&m, &o, cases[k].known, cond, &margin));
            CHECK_MSG(margin > 1e-5, "%s model %d case %zu: settings too close to a tie (%g)", kinds[models[mi].kind],
                      mi, k, margin);
            if (k == 0) /* the logits' conditionals are the model's: their product is p(x) */
                for (s = 0; s < S; s++) {
                    double p = 1;
                    for (d = 0; d < D; d++) p *= cond[((size_t)s * D + d) * L + (int)xs[s * D + d]];
                    CHECK_NEAR(p, exp(lp[s]), 1e-5);
                }
            memset(known, 0, sizeof known);
            for (n = 0; n < N; n++)
                for (d = 0; d < cases[k].known; d++) {
                    known[n * D + d] = 1;
                    given[n * D + d] = (float)((n * 5 + d * 3 + n / 7) % L);
                }
            o.given = cases[k].known ? given : NULL;
            o.known = cases[k].known ? known : NULL;
            o.probs = probs;
            ar_rng_seed(&r, 500 + k);
            CHECK_MSG(ar_model_sample(&m, N, &o, &r, x) == AR_OK, "%s", m.err);
            CHECK(m.err[0] == 0);
            CHECK_MSG(t_samples_match(x, probs, N, D, L, P, cond, o.known, given, msg, sizeof msg),
                      "%s model %d case %zu (temperature %g, top-k %d, top-p %g, %d known): %s", kinds[models[mi].kind],
                      mi, k, cases[k].temp, cases[k].top_k, cases[k].top_p, cases[k].known, msg);
            ar_rng_seed(&r, 600 + k); /* the same seed and N: the same samples, cached or naive */
            CHECK_MSG(ar_model_sample(&m, NN, &o, &r, x) == AR_OK, "%s", m.err);
            o.naive = 1;
            o.probs = probs2;
            ar_rng_seed(&r, 600 + k);
            CHECK_MSG(ar_model_sample(&m, NN, &o, &r, x2) == AR_OK, "%s", m.err);
            CHECK_MSG(memcmp(x, x2, sizeof(float) * NN * D) == 0, "%s model %d case %zu: naive and cached samples differ",
                      kinds[models[mi].kind], mi, k);
            for (n = 0; n < NN * D * P; n++)
                if (!known[n / P]) CHECK_NEAR(probs[n], probs2[n], 1e-5);
        }
        ar_model_free(&m);
    }
}

/* The cached sampler draws the same images as full recomputation from the
   same seed, at a size where caching matters, with the same conditionals,
   and those are the model's own logits of the finished images; given
   pixels stay as they were. */
static void test_cnn_cached_equals_naive(void)
{
    enum { H = 5, W = 6, HW = H * W, N = 3, GIVEN = 8 };
    int kind, variant;
    for (kind = 0; kind < 3; kind++)
        for (variant = 0; variant < 4; variant++) {
            ar_model m;
            ar_rng r1, r2;
            ar_sample_opts o = ar_sample_defaults();
            int levels = variant >= 2 ? 5 : 1, P = levels > 1 ? levels : 1, V = levels > 1 ? levels : 2, i, same = 1;
            float xa[N * HW], xb[N * HW], pa[N * HW * 5], pb[N * HW * 5], given[N * HW], worst = 0;
            unsigned char known[N * HW] = {0};
            ar_graph g;
            ar_tensor *lg;
            CHECK(make_cnn(&m, kind, H, W, levels, 5, 3, variant == 1, 80 + kind));
            for (i = 0; i < N * HW; i++) {
                given[i] = (float)((i * 3 + 1) % V);
                known[i] = i % HW < GIVEN;
            }
            if (variant == 3) { o.temperature = 0.7f; o.top_p = 0.9f; }
            o.given = given; o.known = known;
            ar_rng_seed(&r1, 123);
            ar_rng_seed(&r2, 123);
            o.probs = pa;
            CHECK_MSG(ar_model_sample(&m, N, &o, &r1, xa) == AR_OK, "%s", m.err);
            o.probs = pb;
            o.naive = 1;
            CHECK_MSG(ar_model_sample(&m, N, &o, &r2, xb) == AR_OK, "%s", m.err);
            for (i = 0; i < N * HW; i++) same &= xa[i] == xb[i];
            for (i = 0; i < N * HW * P; i++)
                if (!known[i / P]) worst = fmaxf(worst, fabsf(pa[i] - pb[i]));
            CHECK_MSG(same, "%s variant %d: cached and naive samples differ", kinds[kind], variant);
            CHECK_MSG(worst < 1e-5f, "%s variant %d: probs differ by %g", kinds[kind], variant, worst);
            for (i = 0; i < N * HW; i++)
                if (known[i]) CHECK(xa[i] == given[i]);
            /* at temperature 1 the probs are the model's distributions given the finished images */
            CHECK(ar_graph_init(&g, 0) == AR_OK);
            lg = ar_cnn_logits(&m, &g, xb, N);
            CHECK(lg != NULL && lg->n == (size_t)N * HW * P);
            for (i = 0, worst = 0; variant < 3 && i < N * HW; i++) {
                int v;
                double z = 0, mx = -INFINITY;
                if (known[i]) continue;
                if (P == 1) {
                    worst = fmaxf(worst, fabsf(pb[i] - 1.0f / (1.0f + expf(-lg->x[i]))));
                    continue;
                }
                for (v = 0; v < P; v++) mx = fmax(mx, lg->x[i * P + v]);
                for (v = 0; v < P; v++) z += exp(lg->x[i * P + v] - mx);
                for (v = 0; v < P; v++) worst = fmaxf(worst, (float)fabs(pb[i * P + v] - exp(lg->x[i * P + v] - mx) / z));
            }
            CHECK_MSG(worst < 1e-5f, "%s: sampler probs differ from the model's by %g", kinds[kind], worst);
            ar_graph_free(&g);
            ar_model_free(&m);
        }
}

static void test_cnn_checkpoint(void)
{
    const char *path = "/tmp/ar_test_cnn.safetensors";
    float x[2 * 20], la[2], lb[2];
    int kind, i;
    for (i = 0; i < 40; i++) x[i] = (float)((i * 7 + 2) % 3);
    for (kind = 0; kind < 3; kind++) {
        ar_model a, b;
        ar_tfm_cache c;
        unsigned char *ba, *bb;
        size_t na, nb;
        CHECK(make_cnn(&a, kind, 4, 5, 3, 4, 2, 1, 90 + kind));
        CHECK(ar_model_save(&a, path) == AR_OK && a.err[0] == 0);
        memset(&b, 0xAB, sizeof b); /* output only */
        CHECK_MSG(ar_model_load(&b, path) == AR_OK, "%s", b.err);
        CHECK(b.kind == (ar_kind)(AR_PIXELCNN + kind) && b.rows == 4 && b.cols == 5 && b.D == 20 && b.levels == 3 && b.cnn);
        CHECK(b.cfg.cnn.levels == 3 && b.cfg.cnn.coords == 1 && b.cfg.cnn.layers == 2 && b.cfg.cnn.channels == 4 &&
              b.cfg.seed == 90u + kind);
        /* the fields a kind ignores are kept as 0 */
        if (kind == 2) CHECK(b.cfg.cnn.dilations == 2 && b.cfg.cnn.kernel == 0 && b.cfg.cnn.first_kernel == 0);
        else CHECK(b.cfg.cnn.kernel == 3 && b.cfg.cnn.first_kernel == 3 && b.cfg.cnn.dilations == 0);
        CHECK(ar_model_log_prob(&a, x, 2, la) == AR_OK && ar_model_log_prob(&b, x, 2, lb) == AR_OK);
        CHECK(memcmp(la, lb, sizeof la) == 0);
        CHECK(ar_model_save_mem(&a, &ba, &na) == AR_OK && ar_model_save_mem(&b, &bb, &nb) == AR_OK);
        CHECK_MSG(na == nb && memcmp(ba, bb, na) == 0, "%s: a loaded model saves other bytes", kinds[kind]);
        ar_free(ba);
        ar_free(bb);
        memset(&c, 0, sizeof c);
        CHECK(FAILS(ar_tfm_cache_init(&c, &b, 1), AR_ERR_ARG, b)); /* not a transformer */
        ar_tfm_cache_free(&c);
        remove(path);
        ar_model_free(&a);
        ar_model_free(&b);
    }
}

static void test_cnn_bad_input(void)
{
    ar_model m;
    ar_model_cfg c = ar_model_default(AR_GATED, 4, 4);
    static const int order[16] = {1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    ar_graph g;
    ar_rng r;
    ar_sample_opts o = ar_sample_defaults(), bad;
    float x[16] = {0}, lp[1], given[16] = {0};
    unsigned char known[16] = {0};
    c.cnn.channels = 2;
    c.cnn.layers = 1;
    CHECK(ar_model_init(NULL, &c) == AR_ERR_ARG);
    CHECK(FAILS(ar_model_init(&m, NULL), AR_ERR_ARG, m));
    c.cnn.kernel = 4;
    memset(&m, 0xAB, sizeof m);
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m) && strstr(m.err, "kernel") && m.ps.x == NULL);
    c.cnn.kernel = 3;
    c.cnn.first_kernel = 2;
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m));
    c.cnn.first_kernel = 3;
    c.kind = (ar_kind)99;
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m));
    c.kind = AR_GATED;
    c.cnn.layers = AR_CNN_MAX_LAYERS;
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m));
    c.cnn.layers = 1;
    c.cnn.levels = 0;
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m));
    c.cnn.levels = 65537;
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m));
    c.cnn.levels = 1;
    c.cnn.coords = 2;
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m));
    c.cnn.coords = 0;
    c.order = order; /* CNNs generate in raster order only */
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m));
    c.order = NULL;
    c.rows = 0;
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m));
    c.rows = 65536; c.cols = 65536; /* D overflows an int */
    CHECK(ar_model_init(&m, &c) != AR_OK && m.err[0]);
    c.rows = 4; c.cols = 4;
    c.kind = AR_WAVENET;
    c.cnn.dilations = 21;
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m));
    c.cnn.dilations = 0;
    CHECK(FAILS(ar_model_init(&m, &c), AR_ERR_ARG, m));
    c.kind = AR_GATED;
    c.cnn.dilations = 2;
    memset(&m, 0xAB, sizeof m); /* output only */
    CHECK_MSG(ar_model_init(&m, &c) == AR_OK && m.err[0] == 0, "%s", m.err);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    x[5] = 0.5f;
    m.err[0] = 0;
    CHECK(ar_model_nll(&m, &g, x, 1, NULL) == NULL && g.status == AR_ERR_RANGE && m.err[0] && g.err[0]);
    CHECK(FAILS(ar_model_log_prob(&m, x, 1, lp), AR_ERR_RANGE, m));
    x[5] = 2;
    CHECK(FAILS(ar_model_log_prob(&m, x, 1, lp), AR_ERR_RANGE, m));
    x[5] = -1;
    CHECK(FAILS(ar_model_log_prob(&m, x, 1, lp), AR_ERR_RANGE, m));
    x[5] = NAN;
    CHECK(FAILS(ar_model_log_prob(&m, x, 1, lp), AR_ERR_NUMERIC, m));
    x[5] = INFINITY;
    CHECK(FAILS(ar_model_log_prob(&m, x, 1, lp), AR_ERR_NUMERIC, m));
    x[5] = 1;
    CHECK(ar_model_log_prob(&m, x, 1, lp) == AR_OK && m.err[0] == 0 && lp[0] < 0);
    CHECK(FAILS(ar_model_log_prob(&m, x, 0, lp), AR_ERR_ARG, m));
    CHECK(FAILS(ar_model_log_prob(&m, x, 1, NULL), AR_ERR_ARG, m));
    CHECK(FAILS(ar_model_log_prob(&m, NULL, 1, lp), AR_ERR_ARG, m));
    ar_graph_reset(&g);
    m.err[0] = 0;
    CHECK(ar_cnn_logits(&m, &g, NULL, 1) == NULL && g.status == AR_ERR_ARG && m.err[0]);
    ar_graph_reset(&g);
    m.err[0] = 0;
    CHECK(ar_cnn_logits(&m, &g, x, 0) == NULL && g.status == AR_ERR_ARG && m.err[0]);
    ar_rng_seed(&r, 1);
#define BAD(st, ...) do { __VA_ARGS__; \
        CHECK_MSG(FAILS(ar_model_sample(&m, 1, &bad, &r, x), st, m), "%s", #__VA_ARGS__); } while (0)
    BAD(AR_ERR_ARG, bad = o; bad.temperature = NAN);
    BAD(AR_ERR_ARG, bad = o; bad.temperature = -1);
    BAD(AR_ERR_ARG, bad = o; bad.top_p = NAN);
    BAD(AR_ERR_ARG, bad = o; bad.top_p = -0.5f);
    BAD(AR_ERR_ARG, bad = o; bad.top_k = -1);
    BAD(AR_ERR_ARG, bad = o; bad.known = known);
    known[5] = 1;
    given[5] = 0.5f;
    BAD(AR_ERR_RANGE, bad = o; bad.known = known; bad.given = given);
    given[5] = NAN;
    BAD(AR_ERR_NUMERIC, bad = o; bad.known = known; bad.given = given);
#undef BAD
    CHECK(FAILS(ar_model_sample(&m, 0, &o, &r, x), AR_ERR_ARG, m));
    CHECK(FAILS(ar_model_sample(&m, 1, &o, NULL, x), AR_ERR_ARG, m));
    CHECK(FAILS(ar_model_sample(&m, 1, &o, &r, NULL), AR_ERR_ARG, m));
    given[5] = 1;
    o.known = known; o.given = given;
    CHECK(ar_model_sample(&m, 1, &o, &r, x) == AR_OK && x[5] == 1 && m.err[0] == 0);
    ar_graph_free(&g);
    ar_model_free(&m);
    ar_model_free(&m);
    ar_model_free(NULL);
    CHECK(FAILS(ar_model_log_prob(&m, x, 1, lp), AR_ERR_ARG, m)); /* a freed model */
}

void tests_cnn(void)
{
    t_run("cnn/gradcheck", test_cnn_gradcheck);
    t_run("cnn/autoregressive", test_cnn_autoregressive);
    t_run("cnn/blind_spot", test_cnn_blind_spot);
    t_run("cnn/init_reach", test_cnn_init_reach);
    t_run("cnn/receptive_field", test_cnn_receptive_field);
    t_run("cnn/normalization", test_cnn_normalization);
    t_run("cnn/sample_frequencies", test_cnn_sample_frequencies);
    t_run("cnn/cached_equals_naive", test_cnn_cached_equals_naive);
    t_run("cnn/checkpoint", test_cnn_checkpoint);
    t_run("cnn/bad_input", test_cnn_bad_input);
}
