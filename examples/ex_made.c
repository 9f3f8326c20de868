/* MADE on binarized MNIST through the ar_model interface: train a little,
   evaluate, sample, save, load. With K = 4 connectivity-agnostic mask sets
   the model is the equal mixture of K autoregressive models sharing their
   weights: training draws one set per batch (from the rng given to
   ar_model_nll), ar_model_log_prob scores the mixture, ar_made_log_prob
   one set.

   build: make .build/ex_made    run: .build/ex_made [mnist-dir]    (make data fetches MNIST) */
#define AR_IMPLEMENTATION
#include "../ar.h"
#include <stdio.h>
#include <stdlib.h>

#define N_TRAIN 20000 /* one pass over 20k digits: a minute's training, not a result */
#define N_EVAL 1000
#define BATCH 100

static double mean_nll(const float *lp, int n)
{
    double s = 0;
    int i;
    for (i = 0; i < n; i++) s -= lp[i];
    return s / n;
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
    static float lp[N_EVAL], x[3 * 784];
    int i, k, r, c;
    if (ar_mnist_load(&data, argc > 1 ? argv[1] : ".data/mnist", 1, AR_MNIST_SEED) != AR_OK) {
        fprintf(stderr, "%s\n", data.err);
        return 1;
    }
    cfg = ar_model_default(AR_MADE, data.rows, data.cols); /* 784-500-784 with direct connections */
    cfg.made.n_masks = 4;
    if (ar_model_init(&m, &cfg) != AR_OK || ar_model_init_bias(&m, data.train, data.n_train) != AR_OK ||
        ar_graph_init(&g, 0) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
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
        if (i % (50 * BATCH) == 0) printf("step %3d  train NLL %.2f nats\n", i / BATCH, (double)loss->x[0]);
    }
    for (k = 0; k < cfg.made.n_masks; k++) { /* evaluate: each mask set, then their mixture */
        if (ar_made_log_prob(&m, data.test, N_EVAL, k, lp) != AR_OK) break;
        printf("test NLL, mask set %d alone: %.2f nats\n", k, mean_nll(lp, N_EVAL));
    }
    if (ar_model_log_prob(&m, data.test, N_EVAL, lp) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    printf("test NLL of the mixture: %.2f nats (%d test digits)\n", mean_nll(lp, N_EVAL), N_EVAL);
    if (ar_model_sample(&m, 3, &so, &rng, x) != AR_OK) { /* sample: each draws its mask set */
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (r = 0; r < data.rows; r++, putchar('\n'))
        for (i = 0; i < 3; i++, printf("   "))
            for (c = 0; c < data.cols; c++) putchar(x[i * data.D + r * data.cols + c] > 0.5f ? '#' : '.');
    /* save and load: the file holds the weights, the configuration and every mask set */
    if (ar_model_save(&m, "ex_made.safetensors") != AR_OK || ar_model_load(&m2, "ex_made.safetensors") != AR_OK) {
        fprintf(stderr, "%s %s\n", m.err, m2.err);
        return 1;
    }
    if (ar_model_log_prob(&m2, data.test, N_EVAL, lp) != AR_OK) return 1;
    printf("loaded ex_made.safetensors (%s, %zu parameters): test NLL %.2f nats\n", ar_kind_name(m2.kind),
           m2.ps.total, mean_nll(lp, N_EVAL));
    ar_model_free(&m2);
    ar_model_free(&m);
    ar_graph_free(&g);
    ar_mnist_free(&data);
    return 0;
}
