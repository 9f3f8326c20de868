/* RNADE on real-valued data through the ar_model interface: train a
   little, evaluate, sample, save, load. The data: 2-D points on a noisy
   ring (radius 1 +- 0.1), real numbers, so the model is a density and the
   log-likelihood can be positive. AR_TRANSFORM_NONE models the values as
   they are (the default logit transform is for data in [0,1], as
   examples/train.c's dequantized MNIST). The conditional p(y | x = 0) has
   two modes, y near +1 and -1: completing points whose x is given shows
   the mixture at work.

   build: make .build/ex_rnade    run: .build/ex_rnade    (no data needed) */
#define AR_IMPLEMENTATION
#include "../ar.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N 20000 /* training points */
#define N_TEST 2000
#define BATCH 100

static void ring(ar_rng *r, float *x, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        double a = 6.283185307179586 * ar_rng_uniform(r), rad = 1 + 0.1 * ar_rng_normal(r);
        x[2 * i] = (float)(rad * cos(a));
        x[2 * i + 1] = (float)(rad * sin(a));
    }
}

int main(void)
{
    static float train[2 * N], test[2 * N_TEST], lp[N_TEST], x[2 * N_TEST];
    static unsigned char known[2 * N_TEST];
    ar_model m, m2;
    ar_graph g;
    ar_rng rng;
    ar_optim opt = ar_optim_adam(3e-3f);
    ar_model_cfg cfg = ar_model_default(AR_RNADE, 1, 2); /* one example = 1 x 2 values */
    ar_sample_opts so = ar_sample_defaults();
    double ll = 0, rad = 0, rad2 = 0;
    int i, epoch, two_modes = 0;
    ar_rng_seed(&rng, 7);
    ring(&rng, train, N);
    ring(&rng, test, N_TEST);
    cfg.nade.H = 32;
    cfg.nade.K = 8;
    cfg.nade.transform = AR_TRANSFORM_NONE;
    if (ar_model_init(&m, &cfg) != AR_OK || ar_model_init_bias(&m, train, N) != AR_OK ||
        ar_graph_init(&g, 0) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (epoch = 0; epoch < 30; epoch++) /* train */
        for (i = 0; i + BATCH <= N; i += BATCH) {
            ar_tensor *loss;
            ar_graph_reset(&g);
            loss = ar_mean(&g, ar_model_nll(&m, &g, train + 2 * i, BATCH, &rng), AR_ALL);
            ar_params_zero_grad(&m.ps);
            if (ar_backward(&g, loss) != AR_OK || ar_optim_step(&opt, &m.ps) != AR_OK) {
                fprintf(stderr, "%s %s\n", g.err, m.ps.err);
                return 1;
            }
        }
    if (ar_model_log_prob(&m, test, N_TEST, lp) != AR_OK) { /* evaluate */
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (i = 0; i < N_TEST; i++) ll += lp[i];
    /* the true density is N(r; 1, 0.1) / (2 pi r): its log-likelihood is about -0.95 */
    printf("test log-likelihood %.3f nats per point\n", ll / N_TEST);
    if (ar_model_sample(&m, N_TEST, &so, &rng, x) != AR_OK) { /* sample */
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (i = 0; i < N_TEST; i++) {
        double r = sqrt((double)x[2 * i] * x[2 * i] + (double)x[2 * i + 1] * x[2 * i + 1]);
        rad += r / N_TEST;
        rad2 += r * r / N_TEST;
    }
    printf("samples: radius %.3f +- %.3f (data: 1 +- 0.1)\n", rad, sqrt(rad2 - rad * rad));
    for (i = 0; i < 2 * N_TEST; i++) { /* complete y given x = 0 */
        x[i] = 0;
        known[i] = i % 2 == 0;
    }
    so.given = x;
    so.known = known;
    if (ar_model_sample(&m, N_TEST, &so, &rng, x) != AR_OK) return 1;
    for (i = 0; i < N_TEST; i++) two_modes += fabsf(fabsf(x[2 * i + 1]) - 1) < 0.3f;
    printf("y given x = 0: %.0f%% of draws within 0.3 of +-1\n", 100.0 * two_modes / N_TEST);
    if (ar_model_save(&m, "ex_rnade.safetensors") != AR_OK || ar_model_load(&m2, "ex_rnade.safetensors") != AR_OK ||
        ar_model_log_prob(&m2, test, 1, lp) != AR_OK) { /* save, load */
        fprintf(stderr, "%s %s\n", m.err, m2.err);
        return 1;
    }
    printf("loaded ex_rnade.safetensors (%s, %d components): log p(first test point) = %.4f\n",
           ar_kind_name(m2.kind), m2.cfg.nade.K, (double)lp[0]);
    ar_model_free(&m2);
    ar_model_free(&m);
    ar_graph_free(&g);
    return 0;
}
