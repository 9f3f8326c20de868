/* ar.h benchmark, C side: the machine's limits and the library's models,
   measured on the shapes of the published MNIST models. Every figure is the
   median over timed repeats after untimed warm-up runs.

   bench [--quick] [--json FILE]   the C side alone, as a table (no PyTorch)
   bench --serve [--spec DIR]      one command per stdin line, one JSON line
                                   per answer; bench/run.py drives this and
                                   bench/peer.py (PyTorch) alternately; the
                                   spec rows' checkpoints come from DIR
                                   (default .build/spec: make spec-models)
   bench --xcheck DIR              write checkpoints, inputs and ar.h's
                                   log-probabilities to DIR for the PyTorch
                                   peer to reproduce

   Commands (--serve):  TASK MODEL ALGO BATCH THREADS REPS WARM [PLACES]
     info   - - 0 0 0 0              BLAS configuration
     sgemm  - - n T r w              square n^3 sgemm, GFLOP/s
     bw     - - 0 1 r w              memcpy of 256 MiB, GB/s (read + write)
     mlp    - step|raw 100 T r w     784-500-784 training step / its 5 sgemm
     train  M - B T r w              fwd + bwd + Adam, seconds per step
     sample M fast|naive B T r w [P] seconds per call drawing B samples
     perpos M fast|naive B T r w [P] seconds per sampled place, bins of 28
     tfm    - cache|naive B T r w N  seconds to generate N tokens per sequence
     tfm    - train B T r w 784      seconds per training step on B x 784 tokens
     tfmpos - cache|naive 1 T r w N  seconds per token, bins of 28 positions
     cnn    K cache|naive B T r w [P] seconds to sample B images (naive: P
                                    pixels, scaled by 784 / P)
     cnn    K train B T r w        seconds per training step on B images
     rbw    - large|lm 0 T r w     read bandwidth, GB/s: a buffer summed by T
                                    threads (OpenMP; 1 without it), of 1 GiB
                                    or of the LM's weights read per step
     lm     - cache B T r w N       seconds to decode N positions of B
                                    sequences of the LM (B <= 128, N <= 256)
     lmpos  - cache 1 T r w N       the LM's seconds per token, bins of 16
                                    positions; N up to 2 x 256: past T where
                                    ar_tfm_step decodes on (else up to T)
     spec   DRAFT - B T r w K       seconds per ar_model_sample call drawing B
                                    MNIST images (784 binary pixels) from the
                                    trained target Transformer at temperature
                                    1, B <= 100: DRAFT none decodes it alone
                                    through its KV cache, tfm (a small
                                    Transformer) or nade proposes K (1..15)
                                    tokens per round for the target to verify
                                    (speculative sampling); with the accepted
                                    share of the proposed tokens over the
                                    timed calls. An error reply when a
                                    checkpoint of --spec DIR is missing
     quit
   M and K name a row of the model table below by its checkpoint name
   (ar_kind_name): made, fvsbn, nade, rnade, transformer, pixelcnn, gated,
   wavenet; run.py asks train/sample/perpos of the first four and cnn of
   the last three. Every model is built from the table's config and then
   used through ar_model only: one training step (ar_model_nll, ar_backward,
   ar_optim_step) and one sampler call (ar_model_sample) for all of them.
   "fast" ("cache") is ar.h's own sampler; "naive" recomputes from scratch
   at every place: the CNNs through ar_model_sample's reference path (a
   whole forward pass per drawn pixel), MADE/FVSBN as D full passes of
   ar_made_logits and NADE/RNADE as the O(H D^2) recomputation of the
   hidden activations (these two written here: ar.h has no naive path for
   them). P < D times the naive sampler over P places only and scales the
   time by D / P, for the models whose every place costs a full pass.
   The Transformer rows decode with the KV cache (ar_tfm_step) against
   ar_tfm_logits over the whole prefix for every new token. The LM rows
   decode at the shape of the smallest public language models (see
   "language-model decoding" below), against the read bandwidth and peak
   sgemm measured here: batch 1 streams every weight once per token,
   batches of 8 and more turn the same steps into products.

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
#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* BLAS threads, and OpenMP's for the loops ar.h may run in parallel itself. */
static void set_threads(int n)
{
    openblas_set_num_threads(n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

/* ---- BLAS hook: timestamps of the calls that may end a place ----------------
   ar.h's samplers end each place with a product into the place's output
   (an sgemm with N == 1 and beta == 1: MADE's, FVSBN's logit column) or a
   rank-1 update of the running activation (sger: NADE, RNADE). Both series
   are kept; per_place uses the one that has a whole number of calls per
   place, so no model kind is named here. */
#define HOOK_MAX (1 << 16)
static struct { int on, n[2]; double t[2][HOOK_MAX]; } hook;

static void bench_sgemm(const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                        const blasint M, const blasint N, const blasint K, const float alpha, const float *A,
                        const blasint lda, const float *B, const blasint ldb, const float beta, float *C,
                        const blasint ldc)
{
    cblas_sgemm(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (hook.on && N == 1 && beta == 1.0f && hook.n[0] < HOOK_MAX) hook.t[0][hook.n[0]++] = now();
}

static void bench_sger(const enum CBLAS_ORDER o, const blasint M, const blasint N, const float alpha, const float *X,
                       const blasint incX, const float *Y, const blasint incY, float *A, const blasint lda)
{
    cblas_sger(o, M, N, alpha, X, incX, Y, incY, A, lda);
    if (hook.on && hook.n[1] < HOOK_MAX) hook.t[1][hook.n[1]++] = now();
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

/* ---- read bandwidth: a buffer summed ----------------------------------------
   The rate a batch-1 decoder can stream its weights at: SUM_LANES
   independent sums, so the loop vectorizes and is bound by loads, not by
   the latency of one chain of adds; each thread sums its own contiguous
   part. Without OpenMP one thread reads. */
#define SUM_LANES 64

static float sum_part(const float *p, size_t n)
{
    float acc[SUM_LANES] = {0}, s = 0;
    size_t i, j;
    for (i = 0; i + SUM_LANES <= n; i += SUM_LANES)
        for (j = 0; j < SUM_LANES; j++) acc[j] += p[i + j];
    for (; i < n; i++) s += p[i];
    for (j = 0; j < SUM_LANES; j++) s += acc[j];
    return s;
}

typedef struct { float *a; size_t n; int threads; float sink; } sum_ctx;
static void run_sum(void *c)
{
    sum_ctx *k = (sum_ctx *)c;
    float s = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(k->threads) reduction(+ : s)
    {
        size_t i = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        s += sum_part(k->a + k->n * i / nt, k->n * (i + 1) / nt - k->n * i / nt);
    }
#else
    s = sum_part(k->a, k->n);
#endif
    k->sink += s; /* the sums are used: the loop stays */
}

/* GB/s summing `bytes` of floats with `threads` threads; *used: the threads
   that did. */
static double read_gbs(size_t bytes, int threads, int warm, int reps, int *used)
{
    sum_ctx k;
    size_t i;
    double t;
    k.n = bytes / sizeof(float);
    k.a = (float *)xmalloc(k.n * sizeof(float));
    for (i = 0; i < k.n; i++) k.a[i] = 1.0f; /* written: untouched pages would all read one zero page */
    k.sink = 0;
#ifdef _OPENMP
    k.threads = threads;
#else
    k.threads = 1;
    (void)threads;
#endif
    t = timeit(run_sum, &k, warm, reps);
    free(k.a);
    *used = k.threads;
    return (double)k.n * sizeof(float) / t / 1e9;
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

/* ---- the models: one table ---------------------------------------------------
   Every row is one model at the shape this bench has always measured (the
   trainer's MNIST shapes, 28 x 28), built as ar_model_default and then the
   row's shape function. The shape functions pin every size explicitly and
   undo what 0.5's defaults changed, so the figures stay comparable with
   0.4's bench and the PyTorch peer: MADE without direct connections (0.4's
   default; 0.5 adds them), RNADE on raw reals (the data here is N(0,1); 0.5
   defaults to the logit transform of data in (0,1)), the Transformer with
   learned positions (0.5 defaults to rotary) and V = 2 data tokens (0.4's
   bench had V = 3 with token 2 as the start; 0.5 keeps the start token,
   id V, inside the model: the same embedding of 3 rows, a head of 2). */
#define BATCH 100   /* training batch of the MADE/NADE rows */
#define SMAX 100    /* largest batch */
#define PIX_P 0.13f /* pixel density of the random binary data */

typedef struct bench_ctx bench_ctx;
typedef struct bench_row {
    ar_kind kind;                      /* the row's name is ar_kind_name(kind) */
    void (*shape)(ar_model_cfg *cfg);  /* the measured shape, from the defaults */
    void (*naive)(bench_ctx *c);       /* the reference sampler written here, or NULL:
                                          ar_model_sample's own (opts.naive = 1) */
    int flat;      /* every naive place costs the same (a full pass): P < D may time a part */
    int fresh;     /* a new random batch for every training step (as 0.4's CNN rows) */
    int table;     /* standalone table: 1 a MADE/NADE line, 2 an image-model line, 0 none */
} bench_row;

struct bench_ctx {
    const bench_row *row;
    ar_model m;
    ar_graph g;        /* training steps and the written-here naive samplers */
    ar_optim opt;
    ar_rng rng;
    float *x;          /* [SMAX,D] training batch (the first N rows) */
    float *xs;         /* [SMAX,D] samples */
    float *given;      /* [SMAX,D] zeros: the known part of a timed-in-part naive run */
    unsigned char *known;
    float *A, *O;      /* naive NADE scratch: [SMAX,H], [SMAX,P] */
    int N;             /* training batch of the current run */
    int B, naive;      /* sampling batch and path of the current run */
    int places;        /* places drawn (D, or fewer for a timed-in-part naive run) */
    int primed;        /* largest batch ar.h's naive path has run at (its scratch grown) */
    double *pp;        /* per-place seconds of the written-here naive run, or NULL */
};

static void shape_made(ar_model_cfg *c)
{
    c->made.n_hidden = 1;
    c->made.hidden[0] = 500;
    c->made.direct = 0; /* 0.4's default: no direct connections */
    c->made.n_masks = 1;
    c->made.order_agnostic = 0;
}

static void shape_fvsbn(ar_model_cfg *c)
{
    c->made.n_hidden = 0;
    c->made.direct = 1;
    c->made.n_masks = 1;
    c->made.order_agnostic = 0;
}

static void shape_nade(ar_model_cfg *c)
{
    c->nade.H = 500;
}

static void shape_rnade(ar_model_cfg *c)
{
    c->nade.H = 500;
    c->nade.K = 10;
    c->nade.transform = AR_TRANSFORM_NONE; /* 0.4's RNADE: reals as they are */
}

static void shape_tfm(ar_model_cfg *c)
{
    c->tfm.V = 2; /* data tokens; the start token is id 2, inside the model */
    c->tfm.d = 64;
    c->tfm.heads = 4;
    c->tfm.layers = 2;
    c->tfm.ffn = 256;
    c->tfm.pos = AR_POS_LEARNED; /* what 0.4 measured (0.5's default: rotary) */
}

static void shape_cnn(ar_model_cfg *c, int channels, int layers)
{
    c->cnn.levels = 1; /* binary pixels */
    c->cnn.channels = channels;
    c->cnn.layers = layers;
    c->cnn.kernel = 3;
    c->cnn.first_kernel = 7;
    c->cnn.dilations = 10;
    c->cnn.coords = 0;
}
static void shape_pixelcnn(ar_model_cfg *c) { shape_cnn(c, 64, 5); }
static void shape_gated(ar_model_cfg *c) { shape_cnn(c, 32, 6); }
static void shape_wavenet(ar_model_cfg *c) { shape_cnn(c, 32, 20); }

static void naive_passes(bench_ctx *c);
static void naive_recursion(bench_ctx *c);

static const bench_row ROWS[] = {
    {AR_MADE, shape_made, naive_passes, 1, 0, 1},
    {AR_FVSBN, shape_fvsbn, naive_passes, 1, 0, 1},
    {AR_NADE, shape_nade, naive_recursion, 0, 0, 1},
    {AR_RNADE, shape_rnade, naive_recursion, 0, 0, 1},
    {AR_TRANSFORMER, shape_tfm, NULL, 0, 0, 0},
    {AR_PIXELCNN, shape_pixelcnn, NULL, 1, 1, 2},
    {AR_GATED, shape_gated, NULL, 1, 1, 2},
    {AR_WAVENET, shape_wavenet, NULL, 1, 1, 2},
};
#define N_ROWS ((int)(sizeof ROWS / sizeof *ROWS))

static const bench_row *find_row(const char *name)
{
    int k = ar_kind_parse(name), i;
    for (i = 0; i < N_ROWS; i++)
        if ((int)ROWS[i].kind == k) return &ROWS[i];
    return NULL;
}

static ar_model_cfg row_cfg(const bench_row *r)
{
    ar_model_cfg cfg = ar_model_default(r->kind, 28, 28);
    r->shape(&cfg);
    return cfg;
}

/* Random data as the model reads it: N(0,1) reals for real-valued models
   (levels 0), else Bernoulli(0.13) values in {0,1} (pixels, or tokens of
   the V = 2 Transformer). */
static void fill_data(const ar_model *m, float *x, int N, ar_rng *r)
{
    size_t i, n = (size_t)N * m->D;
    for (i = 0; i < n; i++) x[i] = m->levels == 0 ? ar_rng_normal(r) : (float)ar_rng_bernoulli(r, PIX_P);
}

static void ctx_init(bench_ctx *c, const bench_row *r, const ar_model_cfg *cfg, uint64_t seed, float lr)
{
    size_t n;
    memset(c, 0, sizeof *c);
    c->row = r;
    if (ar_model_init(&c->m, cfg) != AR_OK) die("ar_model_init", c->m.err);
    if (ar_graph_init(&c->g, 0) != AR_OK) die("ar_graph_init", "out of memory");
    c->opt = ar_optim_adam(lr);
    ar_rng_seed(&c->rng, seed);
    n = (size_t)SMAX * c->m.D;
    c->x = (float *)xmalloc(n * sizeof(float));
    c->xs = (float *)xmalloc(n * sizeof(float));
    c->given = (float *)xmalloc(n * sizeof(float));
    c->known = (unsigned char *)xmalloc(n);
    memset(c->given, 0, n * sizeof(float));
    fill_data(&c->m, c->x, SMAX, &c->rng);
    c->N = BATCH;
}

static void ctx_free(bench_ctx *c)
{
    ar_model_free(&c->m);
    ar_graph_free(&c->g);
    free(c->x); free(c->xs); free(c->given); free(c->known); free(c->A); free(c->O);
    memset(c, 0, sizeof *c);
}

static bench_ctx *get_ctx(const bench_row *r)
{
    static bench_ctx *ctx[N_ROWS];
    int i = (int)(r - ROWS);
    if (!ctx[i]) {
        ar_model_cfg cfg = row_cfg(r);
        ctx[i] = (bench_ctx *)xmalloc(sizeof *ctx[i]);
        ctx_init(ctx[i], r, &cfg, 10 + (uint64_t)i, 1e-3f);
    }
    return ctx[i];
}

/* One training step of any model: forward, backward, Adam. Returns the loss
   (mean nll per example, nats). */
static float train_step_loss(bench_ctx *c)
{
    ar_tensor *loss;
    if (c->row->fresh) fill_data(&c->m, c->x, c->N, &c->rng);
    ar_graph_reset(&c->g);
    loss = ar_mean(&c->g, ar_model_nll(&c->m, &c->g, c->x, c->N, &c->rng), AR_ALL);
    ar_params_zero_grad(&c->m.ps);
    if (!loss || ar_backward(&c->g, loss) != AR_OK) die("training step", c->g.err);
    if (ar_optim_step(&c->opt, &c->m.ps) != AR_OK) die("optimizer step", c->m.ps.err);
    return loss->x[0];
}

static void train_step(void *c) { (void)train_step_loss((bench_ctx *)c); }

/* ar.h's sampler, cached or naive. A naive run over fewer places than D
   gives the rest as known, leading in the order: the reference path then
   makes one whole pass per drawn place and none for the known ones. */
static void sample_lib(bench_ctx *c)
{
    ar_sample_opts o = ar_sample_defaults();
    int D = c->m.D, n;
    o.naive = c->naive;
    if (c->places < D) {
        for (n = 0; n < c->B; n++) {
            memset(c->known + (size_t)n * D, 1, (size_t)(D - c->places));
            memset(c->known + (size_t)n * D + (D - c->places), 0, (size_t)c->places);
        }
        o.given = c->given;
        o.known = c->known;
    }
    if (ar_model_sample(&c->m, c->B, &o, &c->rng, c->xs) != AR_OK) die("ar_model_sample", c->m.err);
}

static void sample_run(void *p)
{
    bench_ctx *c = (bench_ctx *)p;
    if (c->naive && c->row->naive) c->row->naive(c);
    else sample_lib(c);
}

/* ar.h's naive path runs on the model's own scratch graph, which grows at
   its first whole pass of a batch size; 0.4's loop here ran on a graph the
   training rows had grown already. One untimed pass (one drawn place) first,
   so that run.py's unwarmed naive rows (scaled by D / P) time passes, not
   page faults. */
static void prime_naive(bench_ctx *c)
{
    int places = c->places;
    if (!c->naive || c->row->naive || c->B <= c->primed) return;
    c->places = 1;
    sample_lib(c);
    c->places = places;
    c->primed = c->B;
}

static float sigmoidf_(float a) { return 1.0f / (1.0f + expf(-a)); }

/* Naive MADE/FVSBN sampling: a full forward pass (ar_made_logits) per
   place. The bench's MADE rows have one mask set and the natural order,
   so place t is dimension t. */
static void naive_passes(bench_ctx *c)
{
    int D = c->m.D, B = c->B, shape[2], t, n;
    double t0 = now();
    shape[0] = B; shape[1] = D;
    memset(c->xs, 0, (size_t)B * D * sizeof(float));
    ar_graph_set_grad(&c->g, 0);
    for (t = 0; t < c->places; t++) {
        ar_tensor *lg;
        ar_graph_reset(&c->g);
        lg = ar_made_logits(&c->m, &c->g, ar_input(&c->g, c->xs, 2, shape));
        if (!lg) die("ar_made_logits", c->m.err);
        for (n = 0; n < B; n++)
            c->xs[(size_t)n * D + t] = (float)ar_rng_bernoulli(&c->rng, sigmoidf_(lg->x[(size_t)n * D + t]));
        if (c->pp) { double t1 = now(); c->pp[t] = t1 - t0; t0 = t1; }
    }
    ar_graph_set_grad(&c->g, 1);
}

/* A draw from a NADE-family head: Bernoulli logit (K = 0), or a mixture of
   K Gaussians from [logits, means, log-sigmas]. */
static float head_draw(int K, const float *o, ar_rng *r)
{
    float w[AR_NADE_MAX_K], mx = -INFINITY;
    int k, c;
    if (K == 0) return (float)ar_rng_bernoulli(r, sigmoidf_(o[0]));
    for (k = 0; k < K; k++) mx = o[k] > mx ? o[k] : mx;
    for (k = 0; k < K; k++) w[k] = expf(o[k] - mx);
    c = ar_rng_categorical(r, w, K);
    return o[K + c] + expf(o[2 * K + c]) * ar_rng_normal(r);
}

static const ar_tensor *weight(const bench_ctx *c, const char *name)
{
    const ar_tensor *t = ar_params_find(&c->m.ps, name);
    if (!t) die("naive NADE: no parameter named", name);
    return t;
}

/* Naive NADE/RNADE sampling: the hidden activation of every place
   recomputed from all earlier inputs, c + x_<t W_<t: O(H D^2). Reads the
   weights by their checkpoint names (W [D,H], c [H], V [D,P,H], b [D,P];
   P = 1 binary, 3K for K Gaussians); natural order, as the rows build it. */
static void naive_recursion(bench_ctx *c)
{
    const ar_tensor *W = weight(c, "W"), *cb = weight(c, "c"), *V = weight(c, "V"), *b = weight(c, "b");
    int D = c->m.D, B = c->B, H = (int)cb->n, P = (int)(b->n / (size_t)D), K = P > 1 ? P / 3 : 0, t, n;
    size_t k, BH = (size_t)B * H;
    double t0 = now();
    if (!c->A) {
        c->A = (float *)xmalloc((size_t)SMAX * H * sizeof(float));
        c->O = (float *)xmalloc((size_t)SMAX * P * sizeof(float));
    }
    memset(c->xs, 0, (size_t)B * D * sizeof(float));
    for (t = 0; t < c->places; t++) {
        for (n = 0; n < B; n++) memcpy(c->A + (size_t)n * H, cb->x, (size_t)H * sizeof(float));
        if (t > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, t, 1, c->xs, D, W->x, H, 1, c->A, H);
        for (k = 0; k < BH; k++) c->A[k] = sigmoidf_(c->A[k]);
        for (n = 0; n < B; n++) memcpy(c->O + (size_t)n * P, b->x + (size_t)t * P, (size_t)P * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, P, H, 1, c->A, H, V->x + (size_t)t * P * H, H, 1,
                    c->O, P);
        for (n = 0; n < B; n++) c->xs[(size_t)n * D + t] = head_draw(K, c->O + (size_t)n * P, &c->rng);
        if (c->pp) { double t1 = now(); c->pp[t] = t1 - t0; t0 = t1; }
    }
}

/* Seconds per place, median over reps, for the first 28 * bins places in
   bins of 28 (mean within a bin): from the written-here naive samplers'
   own clocks, or from the BLAS hook inside ar.h's sampler. Returns 0, or
   -1 when neither hook series had a whole number of calls per place. */
static int per_place(bench_ctx *c, int warm, int reps, int bins, double *out)
{
    int D = c->m.D, n = bins * 28, r, t, i;
    double *all = (double *)xmalloc((size_t)reps * D * sizeof(double)), *col = (double *)xmalloc(sizeof(double) * (size_t)reps);
    for (r = -warm; r < reps; r++) {
        double *row = all + (size_t)(r < 0 ? 0 : r) * D;
        if (c->naive && c->row->naive) {
            c->pp = row;
            c->row->naive(c);
            c->pp = NULL;
        } else {
            int stride = 0, s;
            const double *ts = NULL;
            double t0, end;
            hook.n[0] = hook.n[1] = 0;
            hook.on = 1;
            t0 = now();
            sample_lib(c);
            end = now();
            hook.on = 0;
            for (s = 1; s >= 0 && !stride; s--) /* the rank-1 updates, else the output products */
                if (hook.n[s] > 0 && hook.n[s] < HOOK_MAX && hook.n[s] % D == 0) {
                    stride = hook.n[s] / D;
                    ts = hook.t[s];
                }
            if (!stride) { free(all); free(col); return -1; }
            for (t = 0; t < D; t++) {
                double e = t == D - 1 ? end : ts[(t + 1) * stride - 1];
                row[t] = e - t0;
                t0 = e;
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

/* ---- Transformer decoding: KV cache against full recomputation -----------------
   The MNIST shape: 784 binary tokens (V = 2; the start token is inside the
   model), d 64, 4 heads, 2 layers, learned positions. "naive" reruns
   ar_tfm_logits over the whole prefix for every new token; "cache" is
   ar_tfm_step. Generates n tokens for B sequences (naive: B = 1); if
   stamps, the time after each token. */
static void tfm_generate(bench_ctx *c, int n, double *stamps)
{
    static int toks[784];
    ar_sample_opts o = ar_sample_defaults();
    float logits[SMAX * 2], scratch[3 * 2];
    int b, i, tok[SMAX], V = c->m.levels; /* levels = V for the Transformer */
    ar_tfm_cache kc;
    if (V > 2 || n > c->m.D) die("tfm", "the decoding rows are measured at V = 2, up to D tokens");
    if (c->naive && c->B != 1) die("tfm", "naive decoding is measured at batch 1");
    if (!c->naive && ar_tfm_cache_init(&kc, &c->m, c->B) != AR_OK) die("ar_tfm_cache_init", c->m.err);
    if (c->naive) ar_graph_set_grad(&c->g, 0);
    for (i = 0; i < n; i++) {
        const float *lg = logits;
        if (c->naive) { /* positions 0..i: the tokens drawn so far, and position i's own (not read) */
            ar_tensor *all;
            toks[i] = 0;
            ar_graph_reset(&c->g);
            if (!(all = ar_tfm_logits(&c->m, &c->g, toks, 1, i + 1))) die("ar_tfm_logits", c->m.err);
            lg = all->x + (size_t)i * V;
        } else if (ar_tfm_step(&c->m, &kc, i ? tok : NULL, logits) != AR_OK) {
            die("ar_tfm_step", c->m.err);
        }
        for (b = 0; b < c->B; b++)
            if ((tok[b] = ar_sample_logits(lg + b * V, V, &o, &c->rng, scratch)) < 0) die("tfm", "ar_sample_logits");
        if (c->naive) toks[i] = tok[0];
        if (stamps) stamps[i] = now();
    }
    if (c->naive) ar_graph_set_grad(&c->g, 1);
    else ar_tfm_cache_free(&kc);
}

static int tfm_n; /* tokens per sequence of the current decoding run */
static void tfm_run(void *ctx) { tfm_generate((bench_ctx *)ctx, tfm_n, NULL); }

/* ---- language-model decoding -------------------------------------------------
   The shape of the smallest public language models: V 32000, d 288, 6
   heads, 6 layers, ffn 768, T 256, rotary positions (the default), random
   weights from ar_model_init. A step reads every weight but the token
   table, of which it reads B rows: about 14M floats, 55 MB. Each step is
   fed the argmax of the one before (cheap and deterministic: the rows time
   ar_tfm_step, not a sampler). One model, and one cache kept for the last
   batch size (len = 0 restarts it), so a timed run allocates nothing. */
#define LM_T 256
#define LM_BMAX 128

typedef struct {
    ar_model m;
    ar_tfm_cache kc;
    float *logits;  /* [LM_BMAX,V] */
    int tok[LM_BMAX];
    size_t read;    /* floats a step reads: every parameter but the token table */
    size_t matmul;  /* weight-matrix elements a token multiplies: qkv, o, ffn1, ffn2, head */
} lm_ctx;

static lm_ctx *get_lm(void)
{
    static lm_ctx *lm;
    if (!lm) {
        ar_model_cfg cfg = ar_model_default(AR_TRANSFORMER, 1, LM_T);
        const ar_tfm *tf;
        int l;
        cfg.tfm.V = 32000;
        cfg.tfm.d = 288;
        cfg.tfm.heads = 6;
        cfg.tfm.layers = 6;
        cfg.tfm.ffn = 768;
        lm = (lm_ctx *)xmalloc(sizeof *lm);
        memset(lm, 0, sizeof *lm);
        if (ar_model_init(&lm->m, &cfg) != AR_OK) die("ar_model_init", lm->m.err);
        tf = lm->m.tfm;
        lm->read = lm->m.ps.total - tf->tok->n;
        lm->matmul = tf->Wout->n;
        for (l = 0; l < cfg.tfm.layers; l++)
            lm->matmul += tf->L[l].Wqkv->n + tf->L[l].Wo->n + tf->L[l].W1->n + tf->L[l].W2->n;
        lm->logits = (float *)xmalloc((size_t)LM_BMAX * cfg.tfm.V * sizeof(float));
    }
    return lm;
}

static int argmax(const float *x, int n)
{
    int i, k = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[k]) k = i;
    return k;
}

/* Decodes n positions of B sequences from an empty cache; if stamps, the
   time after each step. Returns the positions decoded: T when the step at
   len == T fails (an ar.h without generation past T). */
static int lm_decode(lm_ctx *lm, int B, int n, double *stamps)
{
    int i, b, V = lm->m.cfg.tfm.V;
    if (lm->kc.B != B) {
        ar_tfm_cache_free(&lm->kc);
        if (ar_tfm_cache_init(&lm->kc, &lm->m, B) != AR_OK) die("ar_tfm_cache_init", lm->m.err);
    }
    lm->kc.len = 0;
    for (i = 0; i < n; i++) {
        if (ar_tfm_step(&lm->m, &lm->kc, i ? lm->tok : NULL, lm->logits) != AR_OK) {
            if (i == LM_T) return i;
            die("ar_tfm_step", lm->m.err);
        }
        for (b = 0; b < B; b++) lm->tok[b] = argmax(lm->logits + (size_t)b * V, V);
        if (stamps) stamps[i] = now();
    }
    return n;
}

static int lm_B, lm_n; /* batch and positions of the current decoding run */
static void lm_run(void *ctx) { (void)lm_decode((lm_ctx *)ctx, lm_B, lm_n, NULL); }

/* ---- cross-check files ------------------------------------------------------
   <name>.safetensors: the checkpoint (ar_model_save: weights, configuration,
   MADE's orderings and connectivity labels), after 3 Adam steps from the
   seeded initialization; <name>-ref.safetensors: a fixed batch x and ar.h's
   log p(x) for it (ar_model_log_prob); index.json lists them. */
#define XN 16

typedef struct { const char *name; const char *row; int oa; int batch; float lr; } xcheck_case;
static const xcheck_case xcases[] = {
    {"made", "made", 0, BATCH, 1e-2f}, {"fvsbn", "fvsbn", 0, BATCH, 1e-2f},
    {"nade", "nade", 0, BATCH, 1e-2f}, {"rnade", "rnade", 0, BATCH, 1e-2f},
    {"made-oa2", "made", 1, BATCH, 1e-2f}, /* 2 hidden layers, random ordering, direct: the mask rules in full */
    {"pixelcnn", "pixelcnn", 0, 4, 1e-3f}, {"gated", "gated", 0, 4, 1e-3f}, {"wavenet", "wavenet", 0, 4, 1e-3f},
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

static void xcheck(const char *dir)
{
    size_t i;
    int first = 1, step;
    char path[1024];
    FILE *idx;
    snprintf(path, sizeof path, "%s/index.json", dir);
    if (!(idx = fopen(path, "w"))) die("xcheck", "cannot write index.json");
    fprintf(idx, "[");
    for (i = 0; i < sizeof xcases / sizeof *xcases; i++) {
        const xcheck_case *xc = &xcases[i];
        const bench_row *r = find_row(xc->row);
        ar_model_cfg cfg = row_cfg(r);
        bench_ctx c;
        ar_params ref;
        ar_tensor *tx, *tl;
        ar_meta meta;
        if (xc->oa) {
            cfg.made.n_hidden = 2;
            cfg.made.hidden[0] = cfg.made.hidden[1] = 300;
            cfg.made.direct = 1;
            cfg.made.order_agnostic = 1;
            cfg.seed = 7;
        }
        ctx_init(&c, r, &cfg, 1000 + i, xc->lr);
        c.N = xc->batch;
        for (step = 0; step < 3; step++) { /* move the weights (and biases) off their initial values */
            fill_data(&c.m, c.x, c.N, &c.rng);
            (void)train_step_loss(&c);
        }
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, xc->name);
        if (ar_model_save(&c.m, path) != AR_OK) die("xcheck save", c.m.err);
        ar_params_init(&ref);
        tx = ref_add(&ref, "x", XN, c.m.D);
        tl = ref_add(&ref, "logp", XN, 0);
        if (ar_params_alloc(&ref) != AR_OK) die("xcheck", ref.err);
        fill_data(&c.m, tx->x, XN, &c.rng);
        if (ar_model_log_prob(&c.m, tx->x, XN, tl->x) != AR_OK) die("xcheck log_prob", c.m.err);
        ar_meta_init(&meta);
        ar_meta_set(&meta, "model", ar_kind_name(c.m.kind));
        snprintf(path, sizeof path, "%s/%s-ref.safetensors", dir, xc->name);
        if (ar_params_save(&ref, path, &meta) != AR_OK) die("xcheck save", ref.err);
        fprintf(idx, "%s\n{\"name\":\"%s\",\"model\":\"%s\",\"checkpoint\":\"%s/%s.safetensors\",\"ref\":\"%s\"}",
                first ? "" : ",", xc->name, ar_kind_name(c.m.kind), dir, xc->name, path);
        first = 0;
        ar_meta_free(&meta);
        ar_params_free(&ref);
        ctx_free(&c);
    }
    fprintf(idx, "]\n");
    if (fclose(idx) != 0) die("xcheck", "cannot write index.json");
    printf("wrote %s/index.json\n", dir);
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

/* Writes the per-bin medians as {"bin":BIN,"places":..,"sec":[..]}. */
static void json_bins(FILE *f, int bin, int nb, const double *bins)
{
    int i;
    fprintf(f, "{\"bin\":%d,\"places\":%d,\"sec\":[", bin, nb * bin);
    for (i = 0; i < nb; i++) fprintf(f, "%s%.4e", i ? "," : "", bins[i]);
    fprintf(f, "]}");
}

/* OpenBLAS's generic kernel on a CPU with AVX-512: a line for the header
   (the bench does not set OPENBLAS_CORETYPE itself), else NULL. */
static const char *kernel_note(void)
{
    char line[8192];
    int avx512 = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && !avx512 && fgets(line, sizeof line, f))
        avx512 = !strncmp(line, "flags", 5) && strstr(line, " avx512f");
    if (f) fclose(f);
    return avx512 && !strcmp(openblas_get_corename(), "Prescott")
               ? "OpenBLAS runs its Prescott kernel on this AVX-512 CPU (it does not know the model); "
                 "OPENBLAS_CORETYPE=Cooperlake (or SkylakeX) selects the machine's real kernel"
               : NULL;
}

/* ---- speculative sampling -----------------------------------------------------
   Trained MNIST checkpoints from --spec DIR (default .build/spec; make
   spec-models trains them): the target Transformer (target.safetensors)
   and two drafts over the same 784 binary pixels in the same order, a
   small Transformer (small.safetensors) and NADE (nade.safetensors). One
   run is one ar_model_sample call drawing B images from the target at
   temperature 1: "none" decodes it alone, one token at a time through its
   KV cache; with a draft, the draft proposes K tokens per round and the
   target verifies them in one pass (the samples still follow the target).
   Each file is loaded once, at its first use; a missing or unreadable one
   is an error reply, not an exit. */
static const char *spec_dir = ".build/spec";

typedef struct {
    const char *file; /* name in spec_dir */
    int tried;
    ar_model m;       /* loaded if m.ps.x */
    char err[1400];   /* why not */
} spec_model;

/* "target", or the draft named "tfm" / "nade" ("none": NULL, no error) */
static spec_model *spec_get(const char *name)
{
    static spec_model sm[3] = {{.file = "target"}, {.file = "small"}, {.file = "nade"}};
    spec_model *s = !strcmp(name, "target") ? &sm[0] : !strcmp(name, "tfm") ? &sm[1] : !strcmp(name, "nade") ? &sm[2]
                                                                                                             : NULL;
    if (s && !s->tried) {
        char path[1100];
        FILE *f;
        s->tried = 1;
        snprintf(path, sizeof path, "%s/%s.safetensors", spec_dir, s->file);
        if (!(f = fopen(path, "rb"))) {
            snprintf(s->err, sizeof s->err, "missing %s", path);
        } else {
            fclose(f);
            if (ar_model_load(&s->m, path) != AR_OK) /* the message names the file, or is given its name */
                snprintf(s->err, sizeof s->err, "%s%s%s", strstr(s->m.err, path) ? "" : path,
                         strstr(s->m.err, path) ? "" : ": ", s->m.err);
        }
    }
    return s;
}

typedef struct {
    ar_model *target, *draft;
    int B, K;
    ar_rng rng;
    float *xs;              /* [B,D] */
    int64_t proposed, kept; /* summed over the runs since the last reset */
    ar_status st;
} spec_ctx;

static void spec_run(void *p)
{
    spec_ctx *s = (spec_ctx *)p;
    ar_sample_opts o = ar_sample_defaults();
    int64_t n[2] = {0, 0};
    if (s->st != AR_OK) return;
    if (s->draft) {
        o.draft = s->draft;
        o.draft_k = s->K;
        o.draft_counts = n;
    }
    s->st = ar_model_sample(s->target, s->B, &o, &s->rng, s->xs);
    s->proposed += n[0];
    s->kept += n[1];
}

/* spec DRAFT - B T r w K: one JSON object; error replies for a missing
   checkpoint or a refused call */
static void spec_command(FILE *f, const char *draft, int B, int warm, int reps, int K)
{
    static spec_ctx s;
    static int seeded;
    spec_model *tg = spec_get("target"), *dr = strcmp(draft, "none") ? spec_get(draft) : NULL;
    const char *why = NULL;
    double sec;
    int i;
    if (strcmp(draft, "none") && !dr) why = "DRAFT is none, tfm or nade";
    else if (!tg->m.ps.x) why = tg->err;
    else if (dr && !dr->m.ps.x) why = dr->err;
    else if (B < 1 || B > SMAX) why = "B must be in 1..100";
    else if (dr && (K < 1 || K >= AR_TFM_MAX_STEP)) why = "K must be in 1..15";
    if (why) {
        fprintf(f, "{\"error\":");
        json_str(f, why);
        fprintf(f, "}");
        return;
    }
    if (!seeded) { ar_rng_seed(&s.rng, 17); seeded = 1; }
    s.target = &tg->m;
    s.draft = dr ? &dr->m : NULL;
    s.B = B;
    s.K = K;
    s.st = AR_OK;
    s.xs = (float *)xmalloc((size_t)B * tg->m.D * sizeof(float));
    for (i = 0; i < warm; i++) spec_run(&s);
    s.proposed = s.kept = 0;
    sec = timeit(spec_run, &s, 0, reps);
    free(s.xs);
    if (s.st != AR_OK) {
        fprintf(f, "{\"error\":");
        json_str(f, s.target->err);
        fprintf(f, "}");
        return;
    }
    fprintf(f, "{\"sec\":%.6e,\"tokens\":%d,\"proposed\":%lld,\"accepted\":%lld,\"accept\":", sec, tg->m.D,
            (long long)s.proposed, (long long)s.kept);
    if (s.proposed) fprintf(f, "%.5f", (double)s.kept / (double)s.proposed);
    else fprintf(f, "null");
    fprintf(f, ",\"target_params\":%zu,\"draft_params\":%zu}", tg->m.ps.total, dr ? dr->m.ps.total : (size_t)0);
}

/* Runs one command; writes one JSON object (no newline) to f. 0 on success. */
static int command(const char *line, FILE *f)
{
    char task[32], model[32], algo[32];
    int batch = 0, threads = 0, reps = 0, warm = 0, places = 0, ok = 1, prev = openblas_get_num_threads();
    const bench_row *r;
    bench_ctx *c;
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
        fprintf(f, ",\"kernel_note\":");
        json_str(f, kernel_note() ? kernel_note() : "");
        fprintf(f, ",\"omp_wait_policy\":");
        json_str(f, getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "(unset)");
#ifdef _OPENMP
        fprintf(f, ",\"openmp\":%d}", _OPENMP);
#else
        fprintf(f, ",\"openmp\":0}");
#endif
        return 0;
    }
    /* "tfm -" and "tfmpos -" name the Transformer row; "cnn K" the model K */
    r = find_row(!strncmp(task, "tfm", 3) ? ar_kind_name(AR_TRANSFORMER) : model);
    if (threads > 0) set_threads(threads);
    if (!strcmp(task, "sgemm")) {
        fprintf(f, "{\"gflops\":%.4f}", sgemm_gflops(batch, warm, reps));
    } else if (!strcmp(task, "bw")) {
        fprintf(f, "{\"gbs\":%.4f}", bandwidth_gbs(warm, reps));
    } else if (!strcmp(task, "mlp")) {
        static mlp_ctx mlp;
        static int mlp_ready;
        if (!mlp_ready) { mlp_init(&mlp, BATCH, 784, 500); mlp_ready = 1; }
        fprintf(f, "{\"sec\":%.6e}", timeit(!strcmp(algo, "raw") ? mlp_raw_sgemm : mlp_step, &mlp, warm, reps));
    } else if (!strcmp(task, "rbw") && (!strcmp(algo, "large") || !strcmp(algo, "lm"))) {
        size_t bytes = !strcmp(algo, "lm") ? get_lm()->read * sizeof(float) : (size_t)1 << 30;
        int used;
        double gbs = read_gbs(bytes, threads > 0 ? threads : prev, warm, reps, &used);
        fprintf(f, "{\"gbs\":%.4f,\"bytes\":%zu,\"threads\":%d}", gbs, bytes, used);
    } else if (!strcmp(task, "lm") && batch >= 1 && batch <= LM_BMAX && places >= 1 && places <= LM_T) {
        lm_ctx *lm = get_lm();
        lm_B = batch;
        lm_n = places;
        fprintf(f, "{\"sec\":%.6e,\"tokens\":%d,\"read\":%zu,\"matmul\":%zu}", timeit(lm_run, lm, warm, reps),
                places, lm->read, lm->matmul);
    } else if (!strcmp(task, "lmpos") && batch >= 1 && batch <= LM_BMAX && places >= 1 && places <= 2 * LM_T) {
        /* median per bin of 16 positions over reps */
        static double st[2 * LM_T], bins[64][2 * LM_T / 16];
        double med[2 * LM_T / 16], v[64];
        int rr, i, nb = 0;
        lm_ctx *lm = get_lm();
        for (rr = 0; rr < warm; rr++) (void)lm_decode(lm, batch, places, NULL);
        for (rr = 0; rr < reps && rr < 64; rr++) {
            double t0 = now();
            nb = lm_decode(lm, batch, places, st) / 16;
            for (i = 0; i < nb; i++) bins[rr][i] = (st[16 * i + 15] - (i ? st[16 * i - 1] : t0)) / 16;
        }
        for (i = 0; i < nb; i++) {
            for (rr = 0; rr < reps && rr < 64; rr++) v[rr] = bins[rr][i];
            med[i] = median(v, rr);
        }
        json_bins(f, 16, nb, med);
    } else if (!strcmp(task, "spec")) {
        spec_command(f, model, batch, warm, reps, places);
    } else if (!r || batch < 1 || batch > SMAX) {
        ok = 0;
    } else if (!strcmp(task, "train") || (strcmp(task, "sample") && strcmp(task, "perpos") && !strcmp(algo, "train"))) {
        /* train M, tfm - train, cnn K train: one training step for every model */
        double v;
        float loss;
        c = get_ctx(r);
        c->N = batch;
        v = timeit(train_step, c, warm, reps);
        if (!strcmp(task, "tfm")) {
            fprintf(f, "{\"sec\":%.6e,\"tokens\":%d}", v, c->m.D);
        } else if (!strcmp(task, "cnn")) {
            fprintf(f, "{\"sec\":%.6e}", v);
        } else {
            loss = train_step_loss(c);
            fprintf(f, "{\"sec\":%.6e,\"loss\":%.4f}", v, isfinite(loss) ? (double)loss : -1.0);
        }
    } else if (!strcmp(task, "sample") || !strcmp(task, "perpos") || !strcmp(task, "cnn")) {
        c = get_ctx(r);
        c->B = batch;
        c->naive = !strcmp(algo, "naive");
        c->places = c->naive && c->row->flat && places >= 1 && places < c->m.D ? places : c->m.D;
        prime_naive(c);
        if (strcmp(task, "perpos")) {
            fprintf(f, "{\"sec\":%.6e,\"places\":%d}", timeit(sample_run, c, warm, reps) * c->m.D / c->places,
                    c->places);
        } else {
            double bins[64];
            int nb = c->places / 28;
            if (c->naive && !c->row->naive) fprintf(f, "{\"error\":\"per place: only the written-here naive samplers\"}");
            else if (nb > 64 || per_place(c, warm, reps, nb, bins) != 0)
                fprintf(f, "{\"error\":\"the BLAS hook did not see one boundary per place\"}");
            else json_bins(f, 28, nb, bins);
        }
    } else if ((!strcmp(task, "tfm") || !strcmp(task, "tfmpos")) && places >= 1 && places <= 784) {
        c = get_ctx(r);
        c->B = batch;
        c->naive = !strcmp(algo, "naive");
        tfm_n = places;
        if (!strcmp(task, "tfm")) {
            fprintf(f, "{\"sec\":%.6e,\"tokens\":%d}", timeit(tfm_run, c, warm, reps), places);
        } else { /* median per bin of 28 positions over reps */
            static double st[785], bins[64][28];
            double med[28];
            int rr, i, nb = places / 28;
            for (rr = 0; rr < warm; rr++) tfm_generate(c, places, NULL);
            for (rr = 0; rr < reps && rr < 64; rr++) {
                double t0 = now();
                tfm_generate(c, places, st);
                for (i = 0; i < nb; i++) bins[rr][i] = (st[28 * i + 27] - (i ? st[28 * i - 1] : t0)) / 28;
            }
            for (i = 0; i < nb; i++) {
                double v[64];
                for (rr = 0; rr < reps && rr < 64; rr++) v[rr] = bins[rr][i];
                med[i] = median(v, rr);
            }
            json_bins(f, 28, nb, med);
        }
    } else {
        ok = 0;
    }
    set_threads(prev);
    return ok ? 0 : -1;
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
    double p1, pT, bw, step, raw, rb[2][2]; /* read bandwidth [1 thread, T][1 GiB, the LM's weight size] */
    FILE *jf = json ? fopen(json, "w") : NULL;
    printf("ar.h %s bench (C side only)%s\n", ar_version(), quick ? " (quick)" : "");
    printf("OpenBLAS: %s | core %s | %d threads | OPENBLAS_CORETYPE=%s\n", openblas_get_config(),
           openblas_get_corename(), T, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");
    if (kernel_note()) printf("note: %s\n", kernel_note());
#ifdef _OPENMP
    printf("OpenMP %d | OMP_WAIT_POLICY=%s\n", _OPENMP,
           getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "(unset)");
#endif
    p1 = run_sec("sgemm - - 1024 1 5 2", "gflops");
    snprintf(cmd, sizeof cmd, "sgemm - - 1024 %d 5 2", T);
    pT = run_sec(cmd, "gflops");
    bw = run_sec("bw - - 0 1 5 1", "gbs");
    for (k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "rbw - large 0 %d 3 1", k ? T : 1);
        rb[k][0] = run_sec(cmd, "gbs");
        snprintf(cmd, sizeof cmd, "rbw - lm 0 %d 21 2", k ? T : 1);
        rb[k][1] = run_sec(cmd, "gbs");
    }
    snprintf(cmd, sizeof cmd, "mlp - raw 100 %d %d %d", T, r, w);
    raw = run_sec(cmd, "sec");
    snprintf(cmd, sizeof cmd, "mlp - step 100 %d %d %d", T, r, w);
    step = run_sec(cmd, "sec");
    printf("\n%-52s %14s\n", "measure", "value");
    printf("%-52s %9.1f GFLOP/s\n", "peak sgemm 1024^3, 1 thread", p1);
    printf("%-52s %9.1f GFLOP/s\n", "peak sgemm 1024^3, all threads", pT);
    printf("%-52s %9.1f GB/s\n", "memory bandwidth (memcpy 256 MiB, r+w)", bw);
    printf("%-52s %9.1f | %.1f GB/s (1 | all threads)\n", "read bandwidth, sum of 1 GiB", rb[0][0], rb[1][0]);
    printf("%-52s %9.1f | %.1f GB/s (1 | all threads)\n", "read bandwidth, sum of the LM's weight size", rb[0][1],
           rb[1][1]);
    printf("%-52s %9.3f ms\n", "MLP 784-500-784 N=100: raw sgemm x5", 1e3 * raw);
    printf("%-52s %9.3f ms (%.2fx raw sgemm)\n", "MLP 784-500-784 N=100: ar.h step (fwd+bwd+adam)", 1e3 * step,
           step / raw);
    if (jf) fprintf(jf, "{\"peak_sgemm_gflops_1t\":%.2f,\"peak_sgemm_gflops\":%.2f,\"bandwidth_gbs\":%.2f,"
                        "\"mlp_step_ms\":%.4f,\"mlp_raw_sgemm_ms\":%.4f", p1, pT, bw, 1e3 * step, 1e3 * raw);
    for (k = 0; k < N_ROWS; k++) { /* the MADE/NADE lines */
        const char *name = ar_kind_name(ROWS[k].kind);
        double tr, s1, s100;
        if (ROWS[k].table != 1) continue;
        snprintf(cmd, sizeof cmd, "train %s - 100 %d %d %d", name, T, quick ? 3 : 7, 1);
        tr = run_sec(cmd, "sec");
        snprintf(cmd, sizeof cmd, "sample %s fast 1 %d %d %d", name, T, r, w);
        s1 = run_sec(cmd, "sec");
        snprintf(cmd, sizeof cmd, "sample %s fast 100 %d %d %d", name, T, quick ? 3 : 5, 1);
        s100 = run_sec(cmd, "sec");
        printf("%-52s %9.0f examples/s train, %.0f | %.0f samples/s (batch 1 | 100)\n", name, 100 / tr, 1 / s1,
               100 / s100);
        if (jf) fprintf(jf, ",\"%s\":{\"train_ex_s\":%.2f,\"sample_b1_s\":%.2f,\"sample_b100_s\":%.2f}", name,
                        100 / tr, 1 / s1, 100 / s100);
    }
    for (k = 0; k < N_ROWS; k++) { /* the image-model lines */
        const char *name = ar_kind_name(ROWS[k].kind);
        double tr, c1, cB, n1;
        if (ROWS[k].table != 2) continue;
        snprintf(cmd, sizeof cmd, "cnn %s train 32 %d %d 1", name, T, quick ? 2 : 5);
        tr = run_sec(cmd, "sec");
        snprintf(cmd, sizeof cmd, "cnn %s cache 1 %d %d 1", name, T, quick ? 2 : 5);
        c1 = run_sec(cmd, "sec");
        snprintf(cmd, sizeof cmd, "cnn %s cache 32 %d %d 0", name, T, quick ? 1 : 3);
        cB = run_sec(cmd, "sec");
        snprintf(cmd, sizeof cmd, "cnn %s naive 1 %d %d 0 %d", name, T, quick ? 1 : 3, quick ? 8 : 28);
        n1 = run_sec(cmd, "sec");
        printf("%-52s %9.1f images/s train B=32; sample %.2f | %.1f images/s cached (B=1 | 32), %.4f naive B=1\n",
               name, 32 / tr, 1 / c1, 32 / cB, 1 / n1);
        if (jf) fprintf(jf, ",\"%s\":{\"train_img_s\":%.3f,\"cached_b1_img_s\":%.4f,\"cached_b32_img_s\":%.4f,"
                            "\"naive_b1_img_s\":%.5f}", name, 32 / tr, 1 / c1, 32 / cB, 1 / n1);
    }
    { /* the LM: batch 1 against the read bandwidth, larger batches against peak sgemm */
        const lm_ctx *lm = get_lm();
        int n = quick ? 32 : LM_T, B;
        double tps[5]; /* tokens/s: B = 1 at 1 and all threads, B = 8, 32, 128 at all */
        for (k = 0; k < 2; k++) {
            double gbs, goal = k ? 0.75 : 0.8;
            snprintf(cmd, sizeof cmd, "lm - cache 1 %d %d 1 %d", k ? T : 1, quick ? 2 : 3, n);
            tps[k] = n / run_sec(cmd, "sec");
            gbs = 4.0 * (double)lm->read * tps[k] / 1e9;
            printf("%-52s %9.1f tokens/s, %.1f GB/s of weights = %.0f%% of the 1 GiB read bandwidth [target %.0f%%: "
                   "%s], %.0f%% at the weight size\n", k ? "LM decode B=1, all threads" : "LM decode B=1, 1 thread",
                   tps[k], gbs, 100 * gbs / rb[k][0], 100 * goal, gbs >= goal * rb[k][0] ? "pass" : "FAIL",
                   100 * gbs / rb[k][1]);
        }
        for (B = 8, k = 2; B <= LM_BMAX; B *= 4, k++) { /* 2 flops per weight-matrix element; attention not counted */
            double gf;
            char label[64];
            snprintf(cmd, sizeof cmd, "lm - cache %d %d 1 0 %d", B, T, n);
            tps[k] = B * n / run_sec(cmd, "sec");
            gf = 2.0 * (double)lm->matmul * tps[k] / 1e9;
            snprintf(label, sizeof label, "LM decode B=%d, all threads", B);
            printf("%-52s %9.1f tokens/s, %.1f GFLOP/s in the weight products = %.0f%% of peak sgemm%s\n", label,
                   tps[k], gf, 100 * gf / pT,
                   B != 32 ? "" : gf >= 0.5 * pT ? " [target 50%: pass]" : " [target 50%: FAIL]");
        }
        printf("%-52s (d 288, 6 heads, 6 layers, ffn 768, V 32000; %d positions from an empty cache)\n", "", n);
        if (jf) fprintf(jf, ",\"read_gbs\":{\"large_1t\":%.2f,\"large\":%.2f,\"lm_1t\":%.2f,\"lm\":%.2f},"
                            "\"lm_tokens_s\":{\"b1_1t\":%.2f,\"b1\":%.2f,\"b8\":%.2f,\"b32\":%.2f,\"b128\":%.2f}",
                        rb[0][0], rb[1][0], rb[0][1], rb[1][1], tps[0], tps[1], tps[2], tps[3], tps[4]);
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
        else if (!strcmp(argv[i], "--spec") && i + 1 < argc) spec_dir = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--json FILE] | --serve [--spec DIR] | --xcheck DIR\n", argv[0]);
            return 2;
        }
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
