/* ar.h benchmark, C side: the machine's limits and the library's models,
   measured on the shapes of the published MNIST models. Every figure is the
   median over timed repeats after untimed warm-up runs.

   bench [--quick] [--json FILE]   the C side alone, as a table (no PyTorch)
   bench --serve                   one command per stdin line, one JSON line
                                   per answer; bench/run.py drives this and
                                   bench/peer.py (PyTorch) alternately
   bench --xcheck DIR              write checkpoints, inputs, ar.h's
                                   log-probabilities and MADE's labels to DIR
                                   for the PyTorch peer to reproduce

   Commands (--serve):  TASK MODEL ALGO BATCH THREADS REPS WARM [PLACES]
     info   - - 0 0 0 0              BLAS configuration
     sgemm  - - n T r w              square n^3 sgemm, GFLOP/s
     bw     - - 0 1 r w              memcpy of 256 MiB, GB/s (read + write)
     mlp    - step|raw 100 T r w     784-500-784 training step / its 5 sgemm
     train  M - 100 T r w            fwd + bwd + Adam, seconds per step
     sample M fast|naive B T r w [P] seconds per call drawing B samples
     perpos M fast|naive B T r w [P] seconds per sampled place, bins of 28
     tfm    - cache|naive B T r w N  seconds to generate N tokens per sequence
     tfm    - train B T r w 784      seconds per training step on B x 784 tokens
     tfmpos - cache|naive 1 T r w N  seconds per token, bins of 28 positions
     cnn    K cache|naive B T r w [P] seconds to sample B images (naive: the
                                    first P pixels, scaled by 784 / P)
     cnn    K train B T r w        seconds per training step on B images
     quit
   M is made | fvsbn | nade | rnade; K is pixelcnn | gated | wavenet, in
   the trainer's default shapes. "fast" is ar.h's own sampler; "naive"
   recomputes from scratch at every place: MADE D full passes through
   ar_made_logits, NADE/RNADE the O(H D^2) recomputation of the hidden
   activations (both written here, over ar.h's weights). PLACES < D times
   the naive MADE sampler over the first PLACES places only and scales the
   time by D / PLACES (every place costs the same full pass).

   Time per place inside ar.h's samplers is taken from BLAS call
   timestamps: this file routes ar.h's cblas_sgemm and cblas_sger through
   a hook that costs one branch unless a per-place run switched it on. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
static void bench_sgemm(const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                        const blasint M, const blasint N, const blasint K, const float alpha, const float *A,
                        const blasint lda, const float *B, const blasint ldb, const float beta, float *C,
                        const blasint ldc);
static void bench_sger(const enum CBLAS_ORDER o, const blasint M, const blasint N, const float alpha, const float *X,
                       const blasint incX, const float *Y, const blasint incY, float *A, const blasint lda);
#define cblas_sgemm bench_sgemm
#define cblas_sger bench_sger
#define AR_IMPLEMENTATION
#include "../ar.h"
#undef cblas_sgemm
#undef cblas_sger
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- BLAS hook: timestamps of the calls that end a place -------------------
   ar_made_sample ends each place with the output product(s) into the
   logit column (N == 1, beta == 1: V, then A when direct); ar_nade_sample
   with the rank-1 update of the running activation (sger). */
#define HOOK_MAX (1 << 16)
static struct { int on; int n; double t[HOOK_MAX]; } hook;

static void bench_sgemm(const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                        const blasint M, const blasint N, const blasint K, const float alpha, const float *A,
                        const blasint lda, const float *B, const blasint ldb, const float beta, float *C,
                        const blasint ldc)
{
    cblas_sgemm(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (hook.on == 1 && N == 1 && beta == 1.0f && hook.n < HOOK_MAX) hook.t[hook.n++] = now();
}

static void bench_sger(const enum CBLAS_ORDER o, const blasint M, const blasint N, const float alpha, const float *X,
                       const blasint incX, const float *Y, const blasint incY, float *A, const blasint lda)
{
    cblas_sger(o, M, N, alpha, X, incX, Y, incY, A, lda);
    if (hook.on == 2 && hook.n < HOOK_MAX) hook.t[hook.n++] = now();
}

/* ---- statistics ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define MAX_REPS 256

/* Median seconds per call of fn over `reps` timed runs after `warm` untimed ones. */
typedef void (*bench_fn)(void *ctx);
static double timeit(bench_fn fn, void *ctx, int warm, int reps)
{
    double t[MAX_REPS];
    int i;
    if (reps < 1) reps = 1;
    if (reps > MAX_REPS) reps = MAX_REPS;
    for (i = 0; i < warm; i++) fn(ctx);
    for (i = 0; i < reps; i++) {
        double t0 = now();
        fn(ctx);
        t[i] = now() - t0;
    }
    return median(t, reps);
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench: %s: %s\n", what, msg);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die("malloc", "out of memory");
    return p;
}

static float *randbuf(size_t n, ar_rng *r)
{
    float *p = (float *)xmalloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) p[i] = ar_rng_uniform(r) - 0.5f;
    return p;
}

/* ---- peak sgemm ------------------------------------------------------------- */

typedef struct { int n; float *A, *B, *C; } gemm_ctx;
static void run_gemm(void *c)
{
    gemm_ctx *g = (gemm_ctx *)c;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n, 1, g->A, g->n, g->B, g->n, 0, g->C, g->n);
}

static double sgemm_gflops(int n, int warm, int reps)
{
    gemm_ctx g;
    ar_rng r;
    double t;
    ar_rng_seed(&r, 2);
    g.n = n;
    g.A = randbuf((size_t)n * n, &r);
    g.B = randbuf((size_t)n * n, &r);
    g.C = randbuf((size_t)n * n, &r);
    t = timeit(run_gemm, &g, warm, reps);
    free(g.A); free(g.B); free(g.C);
    return 2.0 * n * n * n / t / 1e9;
}

/* ---- memory bandwidth: a large copy (read + write) ---------------------------- */

typedef struct { float *a, *b; size_t n; } copy_ctx;
static void run_copy(void *c)
{
    copy_ctx *k = (copy_ctx *)c;
    memcpy(k->b, k->a, k->n * sizeof(float));
}

static double bandwidth_gbs(int warm, int reps)
{
    copy_ctx cp;
    ar_rng r;
    double t;
    ar_rng_seed(&r, 3);
    cp.n = (size_t)64 << 20; /* 256 MiB */
    cp.a = randbuf(cp.n, &r);
    cp.b = (float *)xmalloc(cp.n * sizeof(float));
    memset(cp.b, 0, cp.n * sizeof(float)); /* fault the pages in before timing */
    t = timeit(run_copy, &cp, warm, reps);
    free(cp.a); free(cp.b);
    return 2.0 * (double)cp.n * sizeof(float) / t / 1e9;
}

/* ---- MLP training step: 784-500-784, sigmoid hidden, BCE, Adam ------------- */

typedef struct {
    int N, D, H;
    ar_params ps;
    ar_tensor *W1, *b1, *W2, *b2;
    ar_graph g;
    ar_optim opt;
    float *x;
    /* raw sgemm baseline buffers */
    float *h, *z, *dz, *dh, *dW1, *dW2;
} mlp_ctx;

static void mlp_step(void *c)
{
    mlp_ctx *m = (mlp_ctx *)c;
    int xs[2];
    ar_tensor *x, *h, *z, *loss;
    xs[0] = m->N; xs[1] = m->D;
    ar_graph_reset(&m->g);
    x = ar_input(&m->g, m->x, 2, xs);
    h = ar_sigmoid(&m->g, ar_linear(&m->g, x, m->W1, m->b1));
    z = ar_linear(&m->g, h, m->W2, m->b2);
    loss = ar_mean(&m->g, ar_bce_logits(&m->g, z, m->x), AR_ALL);
    ar_params_zero_grad(&m->ps);
    if (ar_backward(&m->g, loss) != AR_OK || ar_optim_step(&m->opt, &m->ps) != AR_OK) die("mlp step", m->g.err);
}

/* The five products a hand-written step needs: 2 forward, 3 backward. */
static void mlp_raw_sgemm(void *c)
{
    mlp_ctx *m = (mlp_ctx *)c;
    int N = m->N, D = m->D, H = m->H;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, H, D, 1, m->x, D, m->W1->x, D, 0, m->h, H);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, D, H, 1, m->h, H, m->W2->x, H, 0, m->z, D);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, H, N, 1, m->dz, D, m->h, H, 1, m->dW2, H);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, H, D, 1, m->dz, D, m->W2->x, H, 0, m->dh, H);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, D, N, 1, m->dh, H, m->x, D, 1, m->dW1, D);
}

static void mlp_init(mlp_ctx *m, int N, int D, int H)
{
    int s[2];
    size_t i;
    ar_rng r;
    ar_rng_seed(&r, 4);
    memset(m, 0, sizeof *m);
    m->N = N; m->D = D; m->H = H;
    ar_params_init(&m->ps);
    s[0] = H; s[1] = D; m->W1 = ar_params_add(&m->ps, "W1", 2, s);
    s[0] = H; m->b1 = ar_params_add(&m->ps, "b1", 1, s);
    s[0] = D; s[1] = H; m->W2 = ar_params_add(&m->ps, "W2", 2, s);
    s[0] = D; m->b2 = ar_params_add(&m->ps, "b2", 1, s);
    if (ar_params_alloc(&m->ps) != AR_OK || ar_graph_init(&m->g, 0) != AR_OK) die("mlp", "init failed");
    ar_init_xavier(m->W1, &r);
    ar_init_xavier(m->W2, &r);
    m->opt = ar_optim_adam(1e-3f);
    m->x = (float *)xmalloc((size_t)N * D * sizeof(float));
    for (i = 0; i < (size_t)N * D; i++) m->x[i] = (float)ar_rng_bernoulli(&r, 0.13f);
    m->h = randbuf((size_t)N * H, &r); m->z = randbuf((size_t)N * D, &r);
    m->dz = randbuf((size_t)N * D, &r); m->dh = randbuf((size_t)N * H, &r);
    m->dW1 = randbuf((size_t)H * D, &r); m->dW2 = randbuf((size_t)D * H, &r);
}

/* ---- the models ------------------------------------------------------------ */

enum { M_MADE, M_FVSBN, M_NADE, M_RNADE, M_COUNT };
static const char *model_name[M_COUNT] = {"made", "fvsbn", "nade", "rnade"};
#define BATCH 100  /* training batch */
#define SMAX 100   /* largest sampling batch */
#define PIX_P 0.13f /* pixel density of the random binary data */
#define RNADE_K 10

typedef struct {
    int kind, D, N, ready, nade;
    ar_made made;
    ar_nade nd;
    ar_graph g;
    ar_optim opt;
    ar_rng rng;
    float *x;          /* [N,D] training batch */
    float *xs;         /* [SMAX,D] samples */
    float *A, *O;      /* naive NADE scratch: [SMAX,H], [SMAX,P] */
    int B;             /* sampling batch of the current run */
    int places;        /* places the naive samplers draw (D, or fewer) */
    double *pp;        /* per-place seconds of the last naive run, or NULL */
} model_ctx;

static model_ctx models[M_COUNT];

static int find_model(const char *name)
{
    int k;
    for (k = 0; k < M_COUNT; k++)
        if (!strcmp(name, model_name[k])) return k;
    return -1;
}

/* Random data: Bernoulli(0.13) pixels for the binary models, N(0,1) for RNADE. */
static void fill_data(float *x, size_t n, int real, ar_rng *r)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = real ? ar_rng_normal(r) : (float)ar_rng_bernoulli(r, PIX_P);
}

static void model_init(model_ctx *m, int kind)
{
    const int D = 784;
    ar_status s;
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->D = D;
    m->N = BATCH;
    m->nade = kind == M_NADE || kind == M_RNADE;
    if (kind == M_MADE || kind == M_FVSBN) {
        ar_made_cfg cfg = kind == M_MADE ? ar_made_default(D) : ar_fvsbn_default(D);
        if ((s = ar_made_init(&m->made, &cfg)) != AR_OK) die("ar_made_init", m->made.err);
    } else {
        ar_nade_cfg cfg = kind == M_NADE ? ar_nade_default(D) : ar_rnade_default(D, RNADE_K);
        if ((s = ar_nade_init(&m->nd, &cfg)) != AR_OK) die("ar_nade_init", m->nd.err);
        m->A = (float *)xmalloc((size_t)SMAX * cfg.H * sizeof(float));
        m->O = (float *)xmalloc((size_t)SMAX * 3 * RNADE_K * sizeof(float));
    }
    if (ar_graph_init(&m->g, 0) != AR_OK) die("ar_graph_init", "out of memory");
    m->opt = ar_optim_adam(1e-3f);
    ar_rng_seed(&m->rng, 10 + (uint64_t)kind);
    m->x = (float *)xmalloc((size_t)m->N * D * sizeof(float));
    m->xs = (float *)xmalloc((size_t)SMAX * D * sizeof(float));
    fill_data(m->x, (size_t)m->N * D, kind == M_RNADE, &m->rng);
    m->ready = 1;
}

static model_ctx *get_model(int kind)
{
    if (!models[kind].ready) model_init(&models[kind], kind);
    return &models[kind];
}

static ar_params *model_params(model_ctx *m) { return m->nade ? &m->nd.ps : &m->made.ps; }

/* One training step: forward, backward, Adam. Returns the loss. */
static float train_step_loss(model_ctx *m)
{
    ar_tensor *nll, *loss;
    ar_graph_reset(&m->g);
    nll = m->nade ? ar_nade_nll(&m->nd, &m->g, m->x, m->N) : ar_made_nll(&m->made, &m->g, m->x, m->N);
    loss = ar_mean(&m->g, nll, AR_ALL);
    ar_params_zero_grad(model_params(m));
    if (!loss || ar_backward(&m->g, loss) != AR_OK) die("training step", m->g.err);
    if (ar_optim_step(&m->opt, model_params(m)) != AR_OK) die("optimizer step", model_params(m)->err);
    return loss->x[0];
}

static void train_step(void *c) { (void)train_step_loss((model_ctx *)c); }

static void sample_fast(void *c)
{
    model_ctx *m = (model_ctx *)c;
    ar_status s;
    ar_graph_reset(&m->g);
    s = m->nade ? ar_nade_sample(&m->nd, &m->g, m->B, &m->rng, 1.0f, NULL, NULL, m->xs, NULL)
                : ar_made_sample(&m->made, &m->g, m->B, &m->rng, 1.0f, NULL, NULL, m->xs, NULL);
    if (s != AR_OK) die("sampling", m->g.err);
}

static float sigmoidf_(float a) { return 1.0f / (1.0f + expf(-a)); }

/* A draw from a NADE-family head: Bernoulli logit (K = 0), or a mixture of
   K Gaussians from [logits, means, log-sigmas]. */
static float head_draw(int K, const float *o, ar_rng *r)
{
    float w[64], mx = -INFINITY;
    int k, c;
    if (K == 0) return (float)ar_rng_bernoulli(r, sigmoidf_(o[0]));
    for (k = 0; k < K; k++) mx = o[k] > mx ? o[k] : mx;
    for (k = 0; k < K; k++) w[k] = expf(o[k] - mx);
    c = ar_rng_categorical(r, w, K);
    return o[K + c] + expf(o[2 * K + c]) * ar_rng_normal(r);
}

/* Naive MADE/FVSBN sampling: a full forward pass per place. */
static void sample_naive_made(model_ctx *m)
{
    int D = m->D, B = m->B, shape[2], t, n;
    const int *ord = m->made.orders + (size_t)m->made.cur * D;
    double t0 = now();
    shape[0] = B; shape[1] = D;
    memset(m->xs, 0, (size_t)B * D * sizeof(float));
    for (t = 0; t < m->places; t++) {
        ar_tensor *lg;
        int d = ord[t];
        ar_graph_reset(&m->g);
        ar_graph_set_grad(&m->g, 0);
        lg = ar_made_logits(&m->made, &m->g, ar_input(&m->g, m->xs, 2, shape));
        if (!lg) die("ar_made_logits", m->g.err);
        for (n = 0; n < B; n++)
            m->xs[(size_t)n * D + d] = (float)ar_rng_bernoulli(&m->rng, sigmoidf_(lg->x[(size_t)n * D + d]));
        if (m->pp) { double t1 = now(); m->pp[t] = t1 - t0; t0 = t1; }
    }
    ar_graph_set_grad(&m->g, 1);
}

/* Naive NADE/RNADE sampling: the hidden activation of every place
   recomputed from all earlier inputs, c + x_<t W_<t: O(H D^2). */
static void sample_naive_nade(model_ctx *m)
{
    const ar_nade *nd = &m->nd;
    int D = m->D, B = m->B, H = nd->cfg.H, K = nd->cfg.K, P = K ? 3 * K : 1, t, n;
    size_t k, BH = (size_t)B * H;
    double t0 = now();
    for (t = 0; t < D; t++)
        if (nd->order[t] != t) die("naive NADE", "needs the natural order");
    memset(m->xs, 0, (size_t)B * D * sizeof(float));
    for (t = 0; t < m->places; t++) {
        for (n = 0; n < B; n++) memcpy(m->A + (size_t)n * H, nd->c->x, (size_t)H * sizeof(float));
        if (t > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, t, 1, m->xs, D, nd->W->x, H, 1, m->A, H);
        for (k = 0; k < BH; k++) m->A[k] = sigmoidf_(m->A[k]);
        for (n = 0; n < B; n++) memcpy(m->O + (size_t)n * P, nd->b->x + (size_t)t * P, (size_t)P * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, P, H, 1, m->A, H, nd->V->x + (size_t)t * P * H, H, 1,
                    m->O, P);
        for (n = 0; n < B; n++) m->xs[(size_t)n * D + t] = head_draw(K, m->O + (size_t)n * P, &m->rng);
        if (m->pp) { double t1 = now(); m->pp[t] = t1 - t0; t0 = t1; }
    }
}

static void sample_naive(void *c)
{
    model_ctx *m = (model_ctx *)c;
    if (m->nade) sample_naive_nade(m);
    else sample_naive_made(m);
}

/* Seconds per place, median over reps, for the first 28 * bins places in
   bins of 28 (mean within a bin). Returns 0, or -1 when the hook did not see one boundary per place. */
static int per_place(model_ctx *m, int naive, int warm, int reps, int bins, double *out)
{
    int D = m->D, n = bins * 28, r, t, i;
    double *all = (double *)xmalloc((size_t)reps * D * sizeof(double)), *col = (double *)xmalloc(sizeof(double) * (size_t)reps);
    for (r = -warm; r < reps; r++) {
        double *row = all + (size_t)(r < 0 ? 0 : r) * D;
        if (naive) {
            m->pp = row;
            sample_naive(m);
            m->pp = NULL;
        } else {
            int stride;
            double t0;
            hook.n = 0;
            hook.on = m->nade ? 2 : 1;
            t0 = now();
            sample_fast(m);
            hook.on = 0;
            if (hook.n >= HOOK_MAX) { free(all); free(col); return -1; }
            hook.t[hook.n] = now();
            stride = hook.n % D == 0 ? hook.n / D : 0;
            if (stride < 1) { free(all); free(col); return -1; }
            for (t = 0; t < D; t++) {
                double end = t == D - 1 ? hook.t[hook.n] : hook.t[(t + 1) * stride - 1];
                row[t] = end - t0;
                t0 = end;
            }
        }
    }
    for (i = 0; i < bins; i++) {
        int lo = i * n / bins, hi = (i + 1) * n / bins;
        double s = 0;
        for (t = lo; t < hi; t++) {
            for (r = 0; r < reps; r++) col[r] = all[(size_t)r * D + t];
            s += median(col, reps);
        }
        out[i] = s / (hi - lo);
    }
    free(all);
    free(col);
    return 0;
}

/* ---- convolutional models: cached sampling against full recomputation --------
   The trainer's default shapes on 28 x 28 binary images. "naive" runs
   ar_cnn_logits over the whole batch of images for every pixel (a warm
   arena, as ar_cnn_sample's reference path does within one call); "cache"
   is ar_cnn_sample, each layer computed at the new pixel only. */
static const char *cnn_name[3] = {"pixelcnn", "gated", "wavenet"};
typedef struct { ar_cnn m; ar_graph g; ar_optim opt; int B, places, naive; float *x; ar_rng r; } cnn_ctx;

static cnn_ctx *get_cnn(int kind)
{
    static cnn_ctx *c[3];
    if (!c[kind]) {
        ar_cnn_cfg cfg = ar_cnn_default(kind, 28, 28, kind == AR_CNN_WAVENET ? 20 : kind == AR_CNN_GATED ? 6 : 5);
        c[kind] = (cnn_ctx *)xmalloc(sizeof *c[kind]);
        memset(c[kind], 0, sizeof *c[kind]);
        if (ar_cnn_init(&c[kind]->m, &cfg) != AR_OK || ar_graph_init(&c[kind]->g, 0) != AR_OK) die("cnn", c[kind]->m.err);
        c[kind]->x = (float *)xmalloc(sizeof(float) * SMAX * 784);
        c[kind]->opt = ar_optim_adam(1e-3f);
        ar_rng_seed(&c[kind]->r, 11);
    }
    return c[kind];
}

static void cnn_sample(void *ctx)
{
    cnn_ctx *c = (cnn_ctx *)ctx;
    int p, n;
    memset(c->x, 0, sizeof(float) * (size_t)c->B * 784);
    if (!c->naive) {
        if (ar_cnn_sample(&c->m, c->B, 0, 1, &c->r, c->x, NULL) != AR_OK) die("cnn", c->m.err);
        return;
    }
    ar_graph_set_grad(&c->g, 0); /* the arena stays warm across calls */
    for (p = 0; p < c->places; p++) { /* a whole forward pass per pixel */
        ar_tensor *lg;
        ar_graph_reset(&c->g);
        if (!(lg = ar_cnn_logits(&c->m, &c->g, c->x, c->B))) die("cnn", c->g.err);
        for (n = 0; n < c->B; n++)
            c->x[(size_t)n * 784 + p] = (float)ar_rng_bernoulli(&c->r, 1 / (1 + expf(-lg->x[(size_t)n * 784 + p])));
    }
    ar_graph_set_grad(&c->g, 1);
}

static void cnn_train_step(void *ctx)
{
    cnn_ctx *c = (cnn_ctx *)ctx;
    ar_tensor *loss;
    fill_data(c->x, (size_t)c->B * 784, 0, &c->r);
    ar_graph_reset(&c->g);
    loss = ar_mean(&c->g, ar_cnn_nll(&c->m, &c->g, c->x, c->B), AR_ALL);
    ar_params_zero_grad(&c->m.ps);
    if (ar_backward(&c->g, loss) != AR_OK || ar_optim_step(&c->opt, &c->m.ps) != AR_OK) die("cnn", c->g.err);
}

/* ---- cross-check files ------------------------------------------------------
   <name>.safetensors: the checkpoint (ar_<model>_save), after 3 Adam steps
   from the seeded initialization; <name>-ref.safetensors: a fixed batch x,
   ar.h's log p(x) for it, and for MADE the ordering and connectivity
   labels (stored as float32; the peer builds the masks from them);
   index.json lists them. The convolutional
   models follow at the bench's shapes, after 3 steps at batch 4. */
#define XN 16

typedef struct { const char *name; int kind; int oa; } xcheck_case;
static const xcheck_case xcases[] = {
    {"made", M_MADE, 0}, {"fvsbn", M_FVSBN, 0}, {"nade", M_NADE, 0}, {"rnade", M_RNADE, 0},
    {"made-oa2", M_MADE, 1}, /* 2 hidden layers, random ordering, direct: the mask rules in full */
};

static ar_tensor *ref_add(ar_params *ps, const char *name, int d0, int d1)
{
    int s[2];
    ar_tensor *t;
    s[0] = d0; s[1] = d1;
    t = ar_params_add(ps, name, d1 ? 2 : 1, s);
    if (!t) die("xcheck", ps->err);
    return t;
}

/* Writes <dir>/<name>-ref.safetensors, frees ref, and lists the pair in index.json. */
static void ref_write(FILE *idx, const char *dir, const char *name, const char *model, ar_params *ref, int *first)
{
    char path[1024];
    ar_meta meta;
    ar_meta_init(&meta);
    ar_meta_set(&meta, "model", model);
    snprintf(path, sizeof path, "%s/%s-ref.safetensors", dir, name);
    if (ar_params_save(ref, path, &meta) != AR_OK) die("xcheck save", ref->err);
    fprintf(idx, "%s\n{\"name\":\"%s\",\"model\":\"%s\",\"checkpoint\":\"%s/%s.safetensors\",\"ref\":\"%s\"}",
            *first ? "" : ",", name, model, dir, name, path);
    *first = 0;
    ar_meta_free(&meta);
    ar_params_free(ref);
}

static void xcheck(const char *dir)
{
    size_t c;
    int i, first = 1;
    char path[1024];
    FILE *idx;
    snprintf(path, sizeof path, "%s/index.json", dir);
    if (!(idx = fopen(path, "w"))) die("xcheck", "cannot write index.json");
    fprintf(idx, "[");
    for (c = 0; c < sizeof xcases / sizeof *xcases; c++) {
        const xcheck_case *xc = &xcases[c];
        int D = 784, nade = xc->kind == M_NADE || xc->kind == M_RNADE, step;
        ar_made made;
        ar_nade nd;
        ar_graph g;
        ar_optim opt = ar_optim_adam(1e-2f);
        ar_rng r;
        ar_params ref, *ps;
        ar_tensor *tx, *tl;
        float *x = (float *)xmalloc((size_t)BATCH * D * sizeof(float));
        memset(&made, 0, sizeof made);
        memset(&nd, 0, sizeof nd);
        ar_rng_seed(&r, 1000 + c);
        if (nade) {
            ar_nade_cfg cfg = xc->kind == M_NADE ? ar_nade_default(D) : ar_rnade_default(D, RNADE_K);
            if (ar_nade_init(&nd, &cfg) != AR_OK) die("xcheck", nd.err);
            ps = &nd.ps;
        } else {
            ar_made_cfg cfg = xc->kind == M_MADE ? ar_made_default(D) : ar_fvsbn_default(D);
            if (xc->oa) {
                cfg.n_hidden = 2;
                cfg.hidden[0] = cfg.hidden[1] = 300;
                cfg.direct = 1;
                cfg.order_agnostic = 1;
                cfg.seed = 7;
            }
            if (ar_made_init(&made, &cfg) != AR_OK) die("xcheck", made.err);
            ps = &made.ps;
        }
        if (ar_graph_init(&g, 0) != AR_OK) die("xcheck", "out of memory");
        for (step = 0; step < 3; step++) { /* move the weights (and biases) off their initial values */
            ar_tensor *loss;
            fill_data(x, (size_t)BATCH * D, xc->kind == M_RNADE, &r);
            ar_graph_reset(&g);
            loss = ar_mean(&g, nade ? ar_nade_nll(&nd, &g, x, BATCH) : ar_made_nll(&made, &g, x, BATCH), AR_ALL);
            ar_params_zero_grad(ps);
            if (!loss || ar_backward(&g, loss) != AR_OK || ar_optim_step(&opt, ps) != AR_OK) die("xcheck", g.err);
        }
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, xc->name);
        if ((nade ? ar_nade_save(&nd, path) : ar_made_save(&made, path)) != AR_OK)
            die("xcheck save", nade ? nd.err : made.err);
        ar_params_init(&ref);
        tx = ref_add(&ref, "x", XN, D);
        tl = ref_add(&ref, "logp", XN, 0);
        if (!nade) {
            int L = made.cfg.n_hidden, l;
            char name[32];
            ref_add(&ref, "order", D, 0);
            ref_add(&ref, "pos", D, 0);
            for (l = 0; l < L; l++) {
                snprintf(name, sizeof name, "labels%d", l);
                ref_add(&ref, name, made.cfg.hidden[l], 0);
            }
        }
        if (ar_params_alloc(&ref) != AR_OK) die("xcheck", ref.err);
        fill_data(tx->x, tx->n, xc->kind == M_RNADE, &r);
        ar_graph_reset(&g);
        if ((nade ? ar_nade_log_prob(&nd, &g, tx->x, XN, tl->x) : ar_made_log_prob(&made, &g, tx->x, XN, tl->x)) != AR_OK)
            die("xcheck log_prob", g.err);
        if (!nade) { /* the peer builds the masks from these by the paper's rule */
            int L = made.cfg.n_hidden, l, u, off = 0;
            char name[32];
            for (i = 0; i < D; i++) {
                ar_params_find(&ref, "order")->x[i] = (float)made.orders[i];
                ar_params_find(&ref, "pos")->x[i] = (float)made.pos[i];
            }
            for (l = 0; l < L; l++) { /* one mask set: set 0's labels */
                const int *lab = made.labels + off;
                snprintf(name, sizeof name, "labels%d", l);
                for (u = 0; u < made.cfg.hidden[l]; u++) ar_params_find(&ref, name)->x[u] = (float)lab[u];
                off += made.cfg.hidden[l];
            }
        }
        ref_write(idx, dir, xc->name, model_name[xc->kind], &ref, &first);
        ar_graph_free(&g);
        ar_made_free(&made);
        ar_nade_free(&nd);
        free(x);
    }
    for (c = 0; c < 3; c++) { /* the convolutional models at the bench's shapes */
        cnn_ctx *cc = get_cnn((int)c);
        ar_params ref;
        ar_tensor *tx, *tl, *nll;
        cc->B = 4;
        for (i = 0; i < 3; i++) cnn_train_step(cc); /* weights off their initial values */
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, cnn_name[c]);
        if (ar_cnn_save(&cc->m, path) != AR_OK) die("xcheck save", cc->m.err);
        ar_params_init(&ref);
        tx = ref_add(&ref, "x", XN, 784);
        tl = ref_add(&ref, "logp", XN, 0);
        if (ar_params_alloc(&ref) != AR_OK) die("xcheck", ref.err);
        fill_data(tx->x, tx->n, 0, &cc->r);
        ar_graph_reset(&cc->g);
        if (!(nll = ar_cnn_nll(&cc->m, &cc->g, tx->x, XN))) die("xcheck nll", cc->g.err);
        for (i = 0; i < XN; i++) tl->x[i] = -nll->x[i];
        ref_write(idx, dir, cnn_name[c], cnn_name[c], &ref, &first);
    }
    fprintf(idx, "]\n");
    if (fclose(idx) != 0) die("xcheck", "cannot write index.json");
    printf("wrote %s/index.json\n", dir);
}

/* ---- Transformer decoding: KV cache against full recomputation -----------------
   The MNIST shape: 784 binary tokens behind a start token (V = 3), d 64,
   4 heads, 2 layers. "naive" reruns ar_tfm_logits over the whole prefix
   for every new token; "cache" is ar_tfm_step. */
typedef struct { ar_tfm m; ar_graph g; int B, n, naive; int toks[784]; float scratch[8]; ar_rng r; } tfm_ctx;

static tfm_ctx *get_tfm(void)
{
    static tfm_ctx *t;
    if (!t) {
        ar_tfm_cfg cfg = ar_tfm_default(3, 784);
        int i;
        t = (tfm_ctx *)xmalloc(sizeof *t);
        if (ar_tfm_init(&t->m, &cfg) != AR_OK || ar_graph_init(&t->g, 0) != AR_OK) die("tfm", t->m.err);
        ar_rng_seed(&t->r, 9);
        for (i = 0; i < t->m.ps.n; i++) ar_init_uniform(t->m.ps.t[i], &t->r, -0.1f, 0.1f);
        ar_graph_set_grad(&t->g, 0);
    }
    return t;
}

/* Generates n tokens for B sequences (naive: B = 1, its inputs kept in
   toks); if stamps, the time after each token. */
static void tfm_generate(tfm_ctx *t, double *stamps)
{
    ar_sampler smp = {1.0f, 0, 0.0f};
    float logits[SMAX * 3];
    int b, i, tok[SMAX];
    ar_tfm_cache c;
    if (t->naive && t->B != 1) die("tfm", "naive decoding is measured at batch 1");
    if (!t->naive && ar_tfm_cache_init(&c, &t->m, t->B) != AR_OK) die("tfm", "cache");
    for (b = 0; b < t->B; b++) tok[b] = 2; /* the start token */
    for (i = 0; i < t->n; i++) {
        const float *lg = logits;
        if (t->naive) { /* inputs: start, then the tokens drawn so far */
            ar_tensor *all;
            t->toks[i] = tok[0];
            ar_graph_reset(&t->g);
            all = ar_tfm_logits(&t->m, &t->g, t->toks, 1, i + 1);
            if (!all) die("tfm", t->g.err);
            memcpy(logits, all->x + (size_t)i * 3, 3 * sizeof(float));
        } else if (ar_tfm_step(&t->m, &c, tok, logits) != AR_OK) {
            die("tfm", t->m.err);
        }
        for (b = 0; b < t->B; b++) tok[b] = ar_sample_logits(lg + b * 3, 3, &smp, &t->r, t->scratch);
        if (stamps) stamps[i] = now();
    }
    if (!t->naive) ar_tfm_cache_free(&c);
}

static void tfm_run(void *ctx) { tfm_generate((tfm_ctx *)ctx, NULL); }

/* One training step on B sequences of 784 tokens (the trainer's shape). */
static void tfm_train_step(void *ctx)
{
    static int in[16 * 784], tg[16 * 784], ready;
    static ar_optim opt;
    tfm_ctx *t = (tfm_ctx *)ctx;
    ar_tensor *loss;
    int i;
    if (!ready) {
        for (i = 0; i < 16 * 784; i++) {
            tg[i] = ar_rng_bernoulli(&t->r, 0.13f);
            in[i] = i % 784 ? tg[i - 1] : 2;
        }
        opt = ar_optim_adam(1e-3f);
        ready = 1;
    }
    ar_graph_set_grad(&t->g, 1);
    ar_graph_reset(&t->g);
    loss = ar_mean(&t->g, ar_tfm_nll(&t->m, &t->g, in, tg, t->B, 784), AR_ALL);
    ar_params_zero_grad(&t->m.ps);
    if (ar_backward(&t->g, loss) != AR_OK || ar_optim_step(&opt, &t->m.ps) != AR_OK) die("tfm", t->g.err);
    ar_graph_set_grad(&t->g, 0);
}

/* ---- commands ---------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 32) fputc(*s, f);
    }
    fputc('"', f);
}

/* Runs one command; writes one JSON object (no newline) to f. 0 on success. */
static int command(const char *line, FILE *f)
{
    char task[32], model[32], algo[32];
    int batch = 0, threads = 0, reps = 0, warm = 0, places = 0, kind, prev = openblas_get_num_threads();
    double v;
    if (sscanf(line, "%31s %31s %31s %d %d %d %d %d", task, model, algo, &batch, &threads, &reps, &warm, &places) < 1)
        return -1;
    if (!strcmp(task, "info")) {
        fprintf(f, "{\"config\":");
        json_str(f, openblas_get_config());
        fprintf(f, ",\"corename\":");
        json_str(f, openblas_get_corename());
        fprintf(f, ",\"threads\":%d,\"coretype\":", openblas_get_num_threads());
        json_str(f, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");
        fprintf(f, ",\"version\":");
        json_str(f, ar_version());
        fprintf(f, "}");
        return 0;
    }
    if (threads > 0) openblas_set_num_threads(threads);
    kind = find_model(model);
    if (!strcmp(task, "sgemm")) {
        fprintf(f, "{\"gflops\":%.4f}", sgemm_gflops(batch, warm, reps));
    } else if (!strcmp(task, "bw")) {
        fprintf(f, "{\"gbs\":%.4f}", bandwidth_gbs(warm, reps));
    } else if (!strcmp(task, "mlp")) {
        static mlp_ctx mlp;
        static int mlp_ready;
        if (!mlp_ready) { mlp_init(&mlp, BATCH, 784, 500); mlp_ready = 1; }
        v = timeit(!strcmp(algo, "raw") ? mlp_raw_sgemm : mlp_step, &mlp, warm, reps);
        fprintf(f, "{\"sec\":%.6e}", v);
    } else if (!strcmp(task, "train") && kind >= 0) {
        model_ctx *m = get_model(kind);
        float loss;
        v = timeit(train_step, m, warm, reps);
        loss = train_step_loss(m);
        fprintf(f, "{\"sec\":%.6e,\"loss\":%.4f}", v, isfinite(loss) ? (double)loss : -1.0);
    } else if ((!strcmp(task, "sample") || !strcmp(task, "perpos")) && kind >= 0 && batch >= 1 && batch <= SMAX) {
        model_ctx *m = get_model(kind);
        int naive = !strcmp(algo, "naive");
        m->B = batch;
        m->places = naive && !m->nade && places >= 28 && places < m->D ? places : m->D;
        if (!strcmp(task, "sample")) {
            v = timeit(naive ? sample_naive : sample_fast, m, warm, reps) * m->D / m->places;
            fprintf(f, "{\"sec\":%.6e,\"places\":%d}", v, m->places);
        } else {
            double bins[28];
            int i, nb = m->places / 28;
            if (per_place(m, naive, warm, reps, nb, bins) != 0) {
                fprintf(f, "{\"error\":\"the BLAS hook did not see one boundary per place\"}");
            } else {
                fprintf(f, "{\"bin\":28,\"places\":%d,\"sec\":[", nb * 28);
                for (i = 0; i < nb; i++) fprintf(f, "%s%.4e", i ? "," : "", bins[i]);
                fprintf(f, "]}");
            }
        }
    } else if ((!strcmp(task, "tfm") || !strcmp(task, "tfmpos")) && batch >= 1 && batch <= SMAX && places >= 1 &&
               places <= 784) {
        tfm_ctx *t = get_tfm();
        t->B = batch;
        t->n = places;
        t->naive = !strcmp(algo, "naive");
        if (!strcmp(task, "tfm") && !strcmp(algo, "train")) {
            if (batch > 16) die("tfm", "training is measured at batch <= 16");
            fprintf(f, "{\"sec\":%.6e,\"tokens\":%d}", timeit(tfm_train_step, t, warm, reps), 784);
        } else if (!strcmp(task, "tfm")) {
            fprintf(f, "{\"sec\":%.6e,\"tokens\":%d}", timeit(tfm_run, t, warm, reps), places);
        } else { /* median per bin of 28 positions over reps */
            static double st[785], bins[64][28];
            int rr, i, nb = places / 28;
            for (rr = 0; rr < warm; rr++) tfm_generate(t, NULL);
            for (rr = 0; rr < reps && rr < 64; rr++) {
                double t0 = now();
                tfm_generate(t, st);
                for (i = 0; i < nb; i++) bins[rr][i] = (st[28 * i + 27] - (i ? st[28 * i - 1] : t0)) / 28;
            }
            fprintf(f, "{\"bin\":28,\"places\":%d,\"sec\":[", nb * 28);
            for (i = 0; i < nb; i++) {
                double v[64];
                for (rr = 0; rr < reps && rr < 64; rr++) v[rr] = bins[rr][i];
                fprintf(f, "%s%.4e", i ? "," : "", median(v, rr));
            }
            fprintf(f, "]}");
        }
    } else if (!strcmp(task, "cnn") && batch >= 1 && batch <= SMAX) {
        int k;
        cnn_ctx *c;
        for (k = 0; k < 3 && strcmp(model, cnn_name[k]); k++) continue;
        if (k == 3) {
            openblas_set_num_threads(prev);
            return -1;
        }
        c = get_cnn(k);
        c->B = batch;
        c->naive = !strcmp(algo, "naive");
        c->places = c->naive && places >= 1 && places < 784 ? places : 784;
        if (!strcmp(algo, "train")) fprintf(f, "{\"sec\":%.6e}", timeit(cnn_train_step, c, warm, reps));
        else fprintf(f, "{\"sec\":%.6e,\"places\":%d}", timeit(cnn_sample, c, warm, reps) * 784 / c->places, c->places);
    } else {
        openblas_set_num_threads(prev);
        return -1;
    }
    openblas_set_num_threads(prev);
    return 0;
}

/* ---- standalone: the C side as a table ---------------------------------------- */

static double run_sec(const char *cmd, const char *key)
{
    char buf[4096], *p;
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (!f) die("fmemopen", "failed");
    if (command(cmd, f) != 0) die("command", cmd);
    fclose(f);
    p = strstr(buf, key);
    return p ? atof(p + strlen(key) + 2) : NAN;
}

static int standalone(int quick, const char *json)
{
    int T = openblas_get_num_threads(), k, r = quick ? 3 : 11, w = quick ? 1 : 3;
    char cmd[128];
    double p1, pT, bw, step, raw;
    FILE *jf = json ? fopen(json, "w") : NULL;
    printf("ar.h %s bench (C side only)%s\n", ar_version(), quick ? " (quick)" : "");
    printf("OpenBLAS: %s | core %s | %d threads | OPENBLAS_CORETYPE=%s\n", openblas_get_config(),
           openblas_get_corename(), T, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");
    p1 = run_sec("sgemm - - 1024 1 5 2", "gflops");
    snprintf(cmd, sizeof cmd, "sgemm - - 1024 %d 5 2", T);
    pT = run_sec(cmd, "gflops");
    bw = run_sec("bw - - 0 1 5 1", "gbs");
    snprintf(cmd, sizeof cmd, "mlp - raw 100 %d %d %d", T, r, w);
    raw = run_sec(cmd, "sec");
    snprintf(cmd, sizeof cmd, "mlp - step 100 %d %d %d", T, r, w);
    step = run_sec(cmd, "sec");
    printf("\n%-52s %14s\n", "measure", "value");
    printf("%-52s %9.1f GFLOP/s\n", "peak sgemm 1024^3, 1 thread", p1);
    printf("%-52s %9.1f GFLOP/s\n", "peak sgemm 1024^3, all threads", pT);
    printf("%-52s %9.1f GB/s\n", "memory bandwidth (memcpy 256 MiB, r+w)", bw);
    printf("%-52s %9.3f ms\n", "MLP 784-500-784 N=100: raw sgemm x5", 1e3 * raw);
    printf("%-52s %9.3f ms (%.2fx raw sgemm)\n", "MLP 784-500-784 N=100: ar.h step (fwd+bwd+adam)", 1e3 * step,
           step / raw);
    if (jf) fprintf(jf, "{\"peak_sgemm_gflops_1t\":%.2f,\"peak_sgemm_gflops\":%.2f,\"bandwidth_gbs\":%.2f,"
                        "\"mlp_step_ms\":%.4f,\"mlp_raw_sgemm_ms\":%.4f", p1, pT, bw, 1e3 * step, 1e3 * raw);
    for (k = 0; k < M_COUNT; k++) {
        double tr, s1, s100;
        snprintf(cmd, sizeof cmd, "train %s - 100 %d %d %d", model_name[k], T, quick ? 3 : 7, 1);
        tr = run_sec(cmd, "sec");
        snprintf(cmd, sizeof cmd, "sample %s fast 1 %d %d %d", model_name[k], T, r, w);
        s1 = run_sec(cmd, "sec");
        snprintf(cmd, sizeof cmd, "sample %s fast 100 %d %d %d", model_name[k], T, quick ? 3 : 5, 1);
        s100 = run_sec(cmd, "sec");
        printf("%-52s %9.0f examples/s train, %.0f | %.0f samples/s (batch 1 | 100)\n", model_name[k], 100 / tr,
               1 / s1, 100 / s100);
        if (jf) fprintf(jf, ",\"%s\":{\"train_ex_s\":%.2f,\"sample_b1_s\":%.2f,\"sample_b100_s\":%.2f}", model_name[k],
                        100 / tr, 1 / s1, 100 / s100);
    }
    for (k = 0; k < 3; k++) {
        double tr, c1, cB, n1;
        snprintf(cmd, sizeof cmd, "cnn %s train 32 %d %d 1", cnn_name[k], T, quick ? 2 : 5);
        tr = run_sec(cmd, "sec");
        snprintf(cmd, sizeof cmd, "cnn %s cache 1 %d %d 1", cnn_name[k], T, quick ? 2 : 5);
        c1 = run_sec(cmd, "sec");
        snprintf(cmd, sizeof cmd, "cnn %s cache 32 %d %d 0", cnn_name[k], T, quick ? 1 : 3);
        cB = run_sec(cmd, "sec");
        snprintf(cmd, sizeof cmd, "cnn %s naive 1 %d %d 0 %d", cnn_name[k], T, quick ? 1 : 3, quick ? 8 : 28);
        n1 = run_sec(cmd, "sec");
        printf("%-52s %9.1f images/s train B=32; sample %.2f | %.1f images/s cached (B=1 | 32), %.4f naive B=1\n",
               cnn_name[k], 32 / tr, 1 / c1, 32 / cB, 1 / n1);
        if (jf) fprintf(jf, ",\"%s\":{\"train_img_s\":%.3f,\"cached_b1_img_s\":%.4f,\"cached_b32_img_s\":%.4f,"
                            "\"naive_b1_img_s\":%.5f}", cnn_name[k], 32 / tr, 1 / c1, 32 / cB, 1 / n1);
    }
    if (jf) { fprintf(jf, "}\n"); fclose(jf); }
    return 0;
}

int main(int argc, char **argv)
{
    int quick = 0, serve = 0, i;
    const char *json = NULL, *xdir = NULL;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--serve")) serve = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--xcheck") && i + 1 < argc) xdir = argv[++i];
        else { fprintf(stderr, "usage: %s [--quick] [--json FILE] | --serve | --xcheck DIR\n", argv[0]); return 2; }
    }
    if (xdir) { xcheck(xdir); return 0; }
    if (serve) {
        char line[512];
        while (fgets(line, sizeof line, stdin)) {
            if (!strncmp(line, "quit", 4)) break;
            if (command(line, stdout) != 0) printf("{\"error\":\"bad command\"}");
            printf("\n");
            fflush(stdout);
        }
        return 0;
    }
    return standalone(quick, json);
}
