/* PixelCNN on binarized MNIST through the ar_model interface: train a
   little, evaluate, sample, save, load. Shows the receptive field, the two
   sampling paths (cached: each layer computed at the new pixel only;
   naive: the whole network per pixel, the reference) giving the same
   digits from the same random stream, and completing test digits from
   their top half.

   build: make .build/ex_pixelcnn    run: .build/ex_pixelcnn [mnist-dir] */
#define AR_IMPLEMENTATION
#include "../ar.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_TRAIN 6000 /* a small network and 6000 digits: about a minute */
#define N_EVAL 500
#define BATCH 32

static void show(const float *img, int n, int rows, int cols)
{
    int r, c, i;
    for (r = 0; r < rows; r++, putchar('\n'))
        for (i = 0; i < n; i++, printf("   "))
            for (c = 0; c < cols; c++) putchar(img[(i * rows + r) * cols + c] > 0.5f ? '#' : '.');
}

int main(int argc, char **argv)
{
    ar_mnist data;
    ar_model m, m2;
    ar_graph g;
    ar_rng rng, r1, r2;
    ar_optim opt = ar_optim_adam(1e-3f);
    ar_model_cfg cfg;
    ar_sample_opts so = ar_sample_defaults();
    static float lp[N_EVAL], x[3 * 784], xn[3 * 784];
    static unsigned char known[3 * 784];
    double nll = 0;
    int i;
    if (ar_mnist_load(&data, argc > 1 ? argv[1] : ".data/mnist", 1, AR_MNIST_SEED) != AR_OK) {
        fprintf(stderr, "%s\n", data.err);
        return 1;
    }
    cfg = ar_model_default(AR_PIXELCNN, data.rows, data.cols);
    cfg.cnn.channels = 32; /* smaller than the default 64 x 5 layers, for speed */
    cfg.cnn.layers = 3;
    cfg.cnn.coords = 1; /* (row/H, col/W) as two more inputs: the network knows where on the page it is */
    if (ar_model_init(&m, &cfg) != AR_OK || ar_model_init_bias(&m, data.train, data.n_train) != AR_OK ||
        ar_graph_init(&g, 0) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    printf("PixelCNN: %zu parameters, each output sees %d rows up\n", m.ps.total, ar_cnn_receptive_field(&m));
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
        if (i % (40 * BATCH) == 0) printf("step %3d  train NLL %.2f nats\n", i / BATCH, (double)loss->x[0]);
    }
    if (ar_model_log_prob(&m, data.test, N_EVAL, lp) != AR_OK) { /* evaluate */
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (i = 0; i < N_EVAL; i++) nll -= lp[i];
    printf("test NLL %.2f nats per digit\n", nll / N_EVAL);
    ar_rng_seed(&r1, 5); /* sample, cached and naive, from the same stream */
    r2 = r1;
    if (ar_model_sample(&m, 3, &so, &r1, x) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    so.naive = 1;
    if (ar_model_sample(&m, 3, &so, &r2, xn) != AR_OK) return 1;
    show(x, 3, data.rows, data.cols);
    printf("the naive path drew %s\n", memcmp(x, xn, sizeof x) ? "OTHER digits" : "the same digits");
    for (i = 0; i < 3 * data.D; i++) known[i] = i % data.D < data.D / 2; /* complete the top halves */
    so = ar_sample_defaults();
    so.given = data.test;
    so.known = known;
    if (ar_model_sample(&m, 3, &so, &rng, x) != AR_OK) return 1;
    printf("test digits completed from their top half:\n");
    show(x, 3, data.rows, data.cols);
    if (ar_model_save(&m, "ex_pixelcnn.safetensors") != AR_OK ||
        ar_model_load(&m2, "ex_pixelcnn.safetensors") != AR_OK || ar_model_log_prob(&m2, data.test, 1, lp) != AR_OK) {
        fprintf(stderr, "%s %s\n", m.err, m2.err);
        return 1;
    }
    printf("loaded ex_pixelcnn.safetensors (%s): log p(first test digit) = %.4f\n", ar_kind_name(m2.kind),
           (double)lp[0]);
    ar_model_free(&m2);
    ar_model_free(&m);
    ar_graph_free(&g);
    ar_mnist_free(&data);
    return 0;
}
