/* ar.h benchmark: the machine's limits and the library's training step,
   measured in one run. Medians over repeated runs after warm-up.
   Usage: bench [--quick] [--json FILE] */
#define _POSIX_C_SOURCE 199309L
#define AR_IMPLEMENTATION
#include "../ar.h"
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

/* Median seconds per call of fn over `reps` timed runs after `warm` untimed ones. */
typedef void (*bench_fn)(void *ctx);
static double timeit(bench_fn fn, void *ctx, int warm, int reps)
{
    double t[64];
    int i;
    if (reps > 64) reps = 64;
    for (i = 0; i < warm; i++) fn(ctx);
    for (i = 0; i < reps; i++) {
        double t0 = now();
        fn(ctx);
        t[i] = now() - t0;
    }
    return median(t, reps);
}

static float *randbuf(size_t n, ar_rng *r)
{
    float *p = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) p[i] = ar_rng_uniform(r) - 0.5f;
    return p;
}

/* ---- peak sgemm ------------------------------------------------------------- */

typedef struct { int M, N, K; float *A, *B, *C; } gemm_ctx;
static void run_gemm(void *c)
{
    gemm_ctx *g = (gemm_ctx *)c;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->M, g->N, g->K, 1, g->A, g->K, g->B, g->N, 0, g->C, g->N);
}

static double sgemm_gflops(int n, ar_rng *r, int reps)
{
    gemm_ctx g;
    double t;
    g.M = g.N = g.K = n;
    g.A = randbuf((size_t)n * n, r);
    g.B = randbuf((size_t)n * n, r);
    g.C = randbuf((size_t)n * n, r);
    t = timeit(run_gemm, &g, 2, reps);
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
    if (ar_backward(&m->g, loss) != AR_OK || ar_optim_step(&m->opt, &m->ps) != AR_OK) {
        fprintf(stderr, "bench: %s\n", m->g.err);
        exit(1);
    }
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

static void mlp_init(mlp_ctx *m, int N, int D, int H, ar_rng *r)
{
    int s[2];
    size_t i;
    memset(m, 0, sizeof *m);
    m->N = N; m->D = D; m->H = H;
    ar_params_init(&m->ps);
    s[0] = H; s[1] = D; m->W1 = ar_params_add(&m->ps, "W1", 2, s);
    s[0] = H; m->b1 = ar_params_add(&m->ps, "b1", 1, s);
    s[0] = D; s[1] = H; m->W2 = ar_params_add(&m->ps, "W2", 2, s);
    s[0] = D; m->b2 = ar_params_add(&m->ps, "b2", 1, s);
    if (ar_params_alloc(&m->ps) != AR_OK || ar_graph_init(&m->g, 0) != AR_OK) { fprintf(stderr, "bench: init failed\n"); exit(1); }
    ar_init_xavier(m->W1, r);
    ar_init_xavier(m->W2, r);
    m->opt = ar_optim_adam(1e-3f);
    m->x = (float *)malloc((size_t)N * D * sizeof(float));
    for (i = 0; i < (size_t)N * D; i++) m->x[i] = (float)ar_rng_bernoulli(r, 0.13f);
    m->h = randbuf((size_t)N * H, r); m->z = randbuf((size_t)N * D, r);
    m->dz = randbuf((size_t)N * D, r); m->dh = randbuf((size_t)N * H, r);
    m->dW1 = randbuf((size_t)H * D, r); m->dW2 = randbuf((size_t)D * H, r);
}

static void mlp_free(mlp_ctx *m)
{
    free(m->x); free(m->h); free(m->z); free(m->dz); free(m->dh); free(m->dW1); free(m->dW2);
    ar_graph_free(&m->g);
    ar_params_free(&m->ps);
}

int main(int argc, char **argv)
{
    int quick = 0, reps, i;
    const char *json = NULL;
    ar_rng r;
    double peak, peak_small, bw, t_step, t_raw;
    copy_ctx cp;
    mlp_ctx m;
    FILE *f;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else { fprintf(stderr, "usage: %s [--quick] [--json FILE]\n", argv[0]); return 2; }
    }
    reps = quick ? 9 : 31;
    ar_rng_seed(&r, 1);
    printf("ar.h %s bench%s\n", ar_version(), quick ? " (quick)" : "");
    printf("OpenBLAS: %s | core %s | %d threads | OPENBLAS_CORETYPE=%s\n", openblas_get_config(),
           openblas_get_corename(), openblas_get_num_threads(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");

    peak = sgemm_gflops(1024, &r, quick ? 5 : 11);
    peak_small = sgemm_gflops(512, &r, reps);
    cp.n = (size_t)64 << 20; /* 256 MiB */
    cp.a = randbuf(cp.n, &r);
    cp.b = (float *)malloc(cp.n * sizeof(float));
    bw = 2.0 * cp.n * sizeof(float) / timeit(run_copy, &cp, 1, quick ? 3 : 7) / 1e9;
    free(cp.a); free(cp.b);

    mlp_init(&m, 100, 784, 500, &r);
    t_raw = timeit(mlp_raw_sgemm, &m, 5, reps);
    t_step = timeit(mlp_step, &m, 5, reps);
    /* alternate once more so drift in machine speed hits both sides */
    t_raw = 0.5 * (t_raw + timeit(mlp_raw_sgemm, &m, 2, reps));
    t_step = 0.5 * (t_step + timeit(mlp_step, &m, 2, reps));
    mlp_free(&m);

    printf("\n%-44s %12s\n", "measure", "value");
    printf("%-44s %9.1f GFLOP/s\n", "peak sgemm 1024^3", peak);
    printf("%-44s %9.1f GFLOP/s\n", "sgemm 512^3", peak_small);
    printf("%-44s %9.1f GB/s\n", "memory bandwidth (memcpy 256 MiB, r+w)", bw);
    printf("%-44s %9.3f ms\n", "MLP 784-500-784 N=100: raw sgemm x5", 1e3 * t_raw);
    printf("%-44s %9.3f ms\n", "MLP 784-500-784 N=100: ar.h step (fwd+bwd+adam)", 1e3 * t_step);
    printf("%-44s %9.3f x\n", "  step / raw sgemm", t_step / t_raw);
    printf("%-44s %9.1f GFLOP/s (%.0f%% of peak)\n", "  step achieved", 5 * 2.0 * 100 * 784 * 500 / t_step / 1e9,
           100 * (5 * 2.0 * 100 * 784 * 500 / t_step / 1e9) / peak);
    printf("%-44s %9.0f examples/s\n", "  training throughput", 100 / t_step);
    if (json && (f = fopen(json, "w"))) {
        fprintf(f, "{\"corename\":\"%s\",\"threads\":%d,\"peak_sgemm_gflops\":%.2f,\"bandwidth_gbs\":%.2f,"
                   "\"mlp_step_ms\":%.4f,\"mlp_raw_sgemm_ms\":%.4f,\"mlp_ratio\":%.4f}\n",
                openblas_get_corename(), openblas_get_num_threads(), peak, bw, 1e3 * t_step, 1e3 * t_raw,
                t_step / t_raw);
        fclose(f);
    }
    return 0;
}
