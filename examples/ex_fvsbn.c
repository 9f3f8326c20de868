/* FVSBN (a logistic regression per pixel on the pixels before it) on
   binarized MNIST through the ar_model interface: train a little,
   evaluate, sample, save, load. Shows what the sampler reports: the
   conditionals p(x_d = 1 | x_<d) it drew from (opts.probs), greedy
   decoding (temperature 0), and completing the bottom half of a test digit
   from its top half (opts.given/known: a prefix of the order, so the
   completions are exact draws of p(bottom | top)).

   build: make .build/ex_fvsbn    run: .build/ex_fvsbn [mnist-dir] */
#define AR_IMPLEMENTATION
#include "../ar.h"
#include <stdio.h>
#include <stdlib.h>

#define N_TRAIN 50000
#define N_EVAL 1000
#define BATCH 100

static void show(const float *img, int n, int rows, int cols, int D) /* n images side by side */
{
    static const char shade[] = " .:-=+*#%@";
    int r, c, i;
    for (r = 0; r < rows; r++, putchar('\n'))
        for (i = 0; i < n; i++, printf("  "))
            for (c = 0; c < cols; c++) {
                float v = img[i * D + r * cols + c];
                putchar(shade[v <= 0 ? 0 : v >= 1 ? 9 : (int)(v * 9.999f)]);
            }
}

int main(int argc, char **argv)
{
    ar_mnist data;
    ar_model m, m2;
    ar_graph g;
    ar_rng rng;
    ar_optim opt = ar_optim_adam(2e-3f);
    ar_model_cfg cfg;
    ar_sample_opts so;
    static float lp[N_EVAL], x[3 * 784], probs[3 * 784];
    static unsigned char known[3 * 784];
    double nll = 0;
    int i;
    if (ar_mnist_load(&data, argc > 1 ? argv[1] : ".data/mnist", 1, AR_MNIST_SEED) != AR_OK) {
        fprintf(stderr, "%s\n", data.err);
        return 1;
    }
    cfg = ar_model_default(AR_FVSBN, data.rows, data.cols);
    if (ar_model_init(&m, &cfg) != AR_OK || ar_model_init_bias(&m, data.train, data.n_train) != AR_OK ||
        ar_graph_init(&g, 0) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    ar_rng_seed(&rng, 1);
    for (i = 0; i + BATCH <= N_TRAIN; i += BATCH) { /* train: one epoch */
        ar_tensor *loss;
        ar_graph_reset(&g);
        loss = ar_mean(&g, ar_model_nll(&m, &g, data.train + (size_t)i * data.D, BATCH, &rng), AR_ALL);
        ar_params_zero_grad(&m.ps);
        if (ar_backward(&g, loss) != AR_OK || ar_optim_step(&opt, &m.ps) != AR_OK) {
            fprintf(stderr, "%s %s\n", g.err, m.ps.err);
            return 1;
        }
    }
    if (ar_model_log_prob(&m, data.test, N_EVAL, lp) != AR_OK) { /* evaluate */
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (i = 0; i < N_EVAL; i++) nll -= lp[i];
    printf("test NLL %.2f nats per digit\n", nll / N_EVAL);

    so = ar_sample_defaults(); /* samples, and the conditionals they were drawn from */
    so.probs = probs;
    if (ar_model_sample(&m, 3, &so, &rng, x) != AR_OK) return 1;
    printf("three samples, then p(x_d = 1 | x_<d) as they were drawn:\n");
    show(x, 3, data.rows, data.cols, data.D);
    show(probs, 3, data.rows, data.cols, data.D);
    so.temperature = 0; /* greedy: the most likely value of each pixel in turn */
    so.probs = NULL;
    if (ar_model_sample(&m, 1, &so, &rng, x) != AR_OK) return 1;
    printf("greedy decoding:\n");
    show(x, 1, data.rows, data.cols, data.D);
    for (i = 0; i < 3 * data.D; i++) known[i] = i % data.D < data.D / 2; /* the top 14 rows */
    so = ar_sample_defaults();
    so.given = data.test;
    so.known = known;
    if (ar_model_sample(&m, 3, &so, &rng, x) != AR_OK) return 1;
    printf("the top halves of three test digits, completed:\n");
    show(x, 3, data.rows, data.cols, data.D);

    if (ar_model_save(&m, "ex_fvsbn.safetensors") != AR_OK || ar_model_load(&m2, "ex_fvsbn.safetensors") != AR_OK ||
        ar_model_log_prob(&m2, data.test, 1, lp) != AR_OK) {
        fprintf(stderr, "%s %s\n", m.err, m2.err);
        return 1;
    }
    printf("loaded ex_fvsbn.safetensors: log p(first test digit) = %.4f nats\n", (double)lp[0]);
    ar_model_free(&m2);
    ar_model_free(&m);
    ar_graph_free(&g);
    ar_mnist_free(&data);
    return 0;
}
