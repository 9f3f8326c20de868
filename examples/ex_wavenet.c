/* A WaveNet-style model on 1-D signals through the ar_model interface:
   train a little, evaluate, sample, save, load. The data: sine waves of
   random frequency and phase, 128 steps quantized to 16 levels, an image
   of 1 row (WaveNet reads any image as one sequence). Dilations 1..64
   give each output the 129 steps before it. Completion: the first half
   of a test wave given, the model continues it.

   build: make .build/ex_wavenet    run: .build/ex_wavenet    (no data needed) */
#define AR_IMPLEMENTATION
#include "../ar.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define T 128
#define L 16
#define N 4096
#define N_TEST 256
#define BATCH 32

static void waves(ar_rng *r, float *x, int n)
{
    int i, t;
    for (i = 0; i < n; i++) {
        double w = 0.1 + 0.3 * ar_rng_uniform(r), ph = 6.283185307179586 * ar_rng_uniform(r);
        for (t = 0; t < T; t++) x[i * T + t] = (float)floor((L - 1) * (0.5 + 0.5 * sin(w * t + ph)) + 0.5);
    }
}

static void plot(const float *x) /* one wave, time across */
{
    int v, t;
    for (v = L - 1; v >= 0; v -= 2, putchar('\n'))
        for (t = 0; t < T; t++) putchar((int)x[t] / 2 == v / 2 ? '*' : t == T / 2 ? '|' : ' ');
}

int main(void)
{
    static float train[N * T], test[N_TEST * T], lp[N_TEST], x[T];
    static unsigned char known[T];
    ar_model m, m2;
    ar_graph g;
    ar_rng rng;
    ar_optim opt = ar_optim_adam(2e-3f);
    ar_model_cfg cfg = ar_model_default(AR_WAVENET, 1, T);
    ar_sample_opts so = ar_sample_defaults();
    double nll = 0;
    int i, epoch, t;
    ar_rng_seed(&rng, 3);
    waves(&rng, train, N);
    waves(&rng, test, N_TEST);
    cfg.cnn.levels = L;
    cfg.cnn.channels = 32;
    cfg.cnn.layers = 7;    /* after the first: 7 gated blocks, */
    cfg.cnn.dilations = 7; /* dilations 1, 2, .., 64 */
    if (ar_model_init(&m, &cfg) != AR_OK || ar_model_init_bias(&m, train, N) != AR_OK ||
        ar_graph_init(&g, 0) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    printf("WaveNet: %zu parameters, receptive field %d steps\n", m.ps.total, ar_cnn_receptive_field(&m));
    for (epoch = 1; epoch <= 3; epoch++) { /* train */
        double train_nll = 0;
        for (i = 0; i + BATCH <= N; i += BATCH) {
            ar_tensor *loss;
            ar_graph_reset(&g);
            loss = ar_mean(&g, ar_model_nll(&m, &g, train + (size_t)i * T, BATCH, &rng), AR_ALL);
            ar_params_zero_grad(&m.ps);
            if (ar_backward(&g, loss) != AR_OK || ar_optim_step(&opt, &m.ps) != AR_OK) {
                fprintf(stderr, "%s %s\n", g.err, m.ps.err);
                return 1;
            }
            train_nll += loss->x[0];
        }
        printf("epoch %d: train NLL %.2f nats per wave\n", epoch, train_nll / (N / BATCH));
    }
    if (ar_model_log_prob(&m, test, N_TEST, lp) != AR_OK) { /* evaluate */
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (i = 0; i < N_TEST; i++) nll -= lp[i];
    printf("test NLL %.2f nats per wave (uniform: %.2f)\n", nll / N_TEST, T * log((double)L));
    for (t = 0; t < T; t++) known[t] = t < T / 2; /* sample: continue the first half of a test wave */
    so.given = test;
    so.known = known;
    if (ar_model_sample(&m, 1, &so, &rng, x) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    printf("a test wave's first half, and the model's continuation:\n");
    plot(x);
    if (ar_model_save(&m, "ex_wavenet.safetensors") != AR_OK || ar_model_load(&m2, "ex_wavenet.safetensors") != AR_OK ||
        ar_model_log_prob(&m2, test, 1, lp) != AR_OK) {
        fprintf(stderr, "%s %s\n", m.err, m2.err);
        return 1;
    }
    printf("loaded ex_wavenet.safetensors (%s): log p(first test wave) = %.4f\n", ar_kind_name(m2.kind), (double)lp[0]);
    ar_model_free(&m2);
    ar_model_free(&m);
    ar_graph_free(&g);
    return 0;
}
