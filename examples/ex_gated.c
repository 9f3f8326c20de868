/* A Gated PixelCNN on MNIST with 4 gray levels through the ar_model
   interface: train a little, evaluate, sample, save, load. Pixels are
   categorical (cfg.cnn.levels = 4: values 0..3 as floats, a softmax per
   pixel); sampling keeps the 2 most likely levels of each pixel (top-k)
   and reports every conditional it drew from (opts.probs: 4 numbers per
   pixel), shown here as its mean.

   build: make .build/ex_gated    run: .build/ex_gated [mnist-dir] */
#define AR_IMPLEMENTATION
#include "../ar.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define L 4
#define N_TRAIN 4000
#define N_EVAL 500
#define BATCH 32

static void show(const float *img, int n, int rows, int cols) /* values in [0, L-1] */
{
    static const char shade[] = " .+#";
    int r, c, i;
    for (r = 0; r < rows; r++, putchar('\n'))
        for (i = 0; i < n; i++, printf("   "))
            for (c = 0; c < cols; c++) {
                int v = (int)(img[(i * rows + r) * cols + c] + 0.5f);
                putchar(shade[v < 0 ? 0 : v > L - 1 ? L - 1 : v]);
            }
}

int main(int argc, char **argv)
{
    ar_mnist data;
    ar_model m, m2;
    ar_graph g;
    ar_rng rng;
    ar_optim opt = ar_optim_adam(1e-3f);
    ar_model_cfg cfg;
    ar_sample_opts so = ar_sample_defaults();
    static float lp[N_EVAL], x[2 * 784], probs[2 * 784 * L], mean[2 * 784];
    double nll = 0;
    size_t k, n;
    int i, v;
    if (ar_mnist_load(&data, argc > 1 ? argv[1] : ".data/mnist", 0, 0) != AR_OK) { /* intensities in [0,1] */
        fprintf(stderr, "%s\n", data.err);
        return 1;
    }
    n = (size_t)data.n_train * data.D; /* 8-bit pixels into L levels */
    for (k = 0; k < n; k++) data.train[k] = floorf(floorf(data.train[k] * 255 + 0.5f) * L / 256);
    n = (size_t)data.n_test * data.D;
    for (k = 0; k < n; k++) data.test[k] = floorf(floorf(data.test[k] * 255 + 0.5f) * L / 256);
    cfg = ar_model_default(AR_GATED, data.rows, data.cols);
    cfg.cnn.levels = L;
    cfg.cnn.channels = 16; /* smaller than the default, for speed */
    cfg.cnn.layers = 3;
    if (ar_model_init(&m, &cfg) != AR_OK || ar_model_init_bias(&m, data.train, data.n_train) != AR_OK ||
        ar_graph_init(&g, 0) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    printf("Gated PixelCNN: %zu parameters, %d levels, receptive field %d rows\n", m.ps.total, m.levels,
           ar_cnn_receptive_field(&m));
    ar_rng_seed(&rng, 1);
    for (i = 0; i + BATCH <= N_TRAIN; i += BATCH) { /* train */
        ar_tensor *loss;
        ar_graph_reset(&g);
        loss = ar_mean(&g, ar_model_nll(&m, &g, data.train + (size_t)i * data.D, BATCH, &rng), AR_ALL);
        ar_params_zero_grad(&m.ps);
        if (ar_backward(&g, loss) != AR_OK || ar_optim_step(&opt, &m.ps) != AR_OK) {
            fprintf(stderr, "%s %s\n", g.err, m.ps.err);
            return 1;
        }
        if (i % (25 * BATCH) == 0) printf("step %3d  train NLL %.2f nats\n", i / BATCH, (double)loss->x[0]);
    }
    if (ar_model_log_prob(&m, data.test, N_EVAL, lp) != AR_OK) { /* evaluate */
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (i = 0; i < N_EVAL; i++) nll -= lp[i];
    printf("test NLL %.2f nats per digit (uniform: %.2f)\n", nll / N_EVAL, data.D * log((double)L));
    so.top_k = 2; /* sample */
    so.probs = probs;
    if (ar_model_sample(&m, 2, &so, &rng, x) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (k = 0; k < (size_t)2 * data.D; k++)
        for (mean[k] = 0, v = 0; v < L; v++) mean[k] += v * probs[k * L + v];
    printf("two samples, and the mean of each pixel's conditional:\n");
    show(x, 2, data.rows, data.cols);
    show(mean, 2, data.rows, data.cols);
    if (ar_model_save(&m, "ex_gated.safetensors") != AR_OK || ar_model_load(&m2, "ex_gated.safetensors") != AR_OK ||
        ar_model_log_prob(&m2, data.test, 1, lp) != AR_OK) {
        fprintf(stderr, "%s %s\n", m.err, m2.err);
        return 1;
    }
    printf("loaded ex_gated.safetensors (%s, %d levels): log p(first test digit) = %.4f\n", ar_kind_name(m2.kind),
           m2.levels, (double)lp[0]);
    ar_model_free(&m2);
    ar_model_free(&m);
    ar_graph_free(&g);
    ar_mnist_free(&data);
    return 0;
}
