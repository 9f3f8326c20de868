/* Optimizers against hand computations, and training that converges. */
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

#define S(...) (int[]){__VA_ARGS__}

static void set2(ar_params *ps, ar_tensor **p, float x0, float x1, float g0, float g1)
{
    ar_params_init(ps);
    *p = ar_params_add(ps, "p", 1, S(2));
    ar_params_alloc(ps);
    (*p)->x[0] = x0; (*p)->x[1] = x1;
    (*p)->g[0] = g0; (*p)->g[1] = g1;
}

static void test_adam_matches_hand_computation(void)
{
    ar_params ps;
    ar_tensor *p;
    ar_optim o = ar_optim_adam(0.1f);
    double m, v, x = 1.0, g1 = 0.5, g2 = -0.25;
    set2(&ps, &p, 1.0f, -2.0f, 0.5f, 0.0f);
    CHECK(ar_optim_step(&o, &ps) == AR_OK);
    /* step 1: m = 0.1 g, v = 0.001 g^2, mhat = g, vhat = g^2 -> x -= lr * g/(|g|+eps) */
    m = 0.1 * g1;
    v = 0.001 * g1 * g1;
    x -= 0.1 * (m / 0.1) / (sqrt(v / 0.001) + 1e-8);
    CHECK_NEAR(p->x[0], x, 1e-6);
    CHECK_NEAR(p->x[1], -2.0, 1e-7); /* zero gradient: unchanged */
    p->g[0] = (float)g2;
    CHECK(ar_optim_step(&o, &ps) == AR_OK);
    m = 0.9 * m + 0.1 * g2;
    v = 0.999 * v + 0.001 * g2 * g2;
    x -= 0.1 * (m / (1 - 0.81)) / (sqrt(v / (1 - 0.999 * 0.999)) + 1e-8);
    CHECK_NEAR(p->x[0], x, 1e-6);
    CHECK(o.step == 2);
    ar_params_free(&ps);
}

static void test_adamw_and_l2(void)
{
    ar_params ps;
    ar_tensor *p;
    ar_optim o = ar_optim_adamw(0.1f, 0.5f), l2 = ar_optim_adam(0.1f);
    set2(&ps, &p, 2.0f, 0, 0, 0);
    p->g[1] = 1;
    CHECK(ar_optim_step(&o, &ps) == AR_OK);
    /* decoupled: x = x (1 - lr wd) - lr * sign(g) */
    CHECK_NEAR(p->x[0], 2.0 * (1 - 0.05), 1e-6);
    CHECK_NEAR(p->x[1], -0.1, 1e-6);
    ar_params_free(&ps);
    l2.weight_decay = 0.5f;
    set2(&ps, &p, 2.0f, 0, 0, 0);
    CHECK(ar_optim_step(&l2, &ps) == AR_OK);
    /* L2: effective gradient wd*x = 1 > 0, Adam's first step moves by lr */
    CHECK_NEAR(p->x[0], 1.9, 1e-6);
    ar_params_free(&ps);
}

/* Adagrad: v += g^2, x -= lr g / (sqrt(v) + eps); steps shrink as v grows. */
static void test_adagrad(void)
{
    ar_params ps;
    ar_tensor *p;
    ar_optim o = ar_optim_adagrad(0.5f);
    set2(&ps, &p, 1.0f, -2.0f, 3.0f, 4.0f);
    CHECK(ar_optim_step(&o, &ps) == AR_OK);
    CHECK_NEAR(p->x[0], 1 - 0.5, 1e-6);  /* 0.5 * 3 / 3 */
    CHECK_NEAR(p->x[1], -2 - 0.5, 1e-6); /* 0.5 * 4 / 4 */
    CHECK(ar_optim_step(&o, &ps) == AR_OK); /* same gradient: v = 2 g^2 */
    CHECK_NEAR(p->x[0], 0.5 - 0.5 / sqrt(2.0), 1e-6);
    ar_params_free(&ps);
    o.kind = (ar_optim_kind)9;
    set2(&ps, &p, 1.0f, 1.0f, 1.0f, 1.0f);
    CHECK(ar_optim_step(&o, &ps) == AR_ERR_ARG && strstr(ps.err, "kind"));
    ar_params_free(&ps);
}

static void test_sgd_momentum(void)
{
    ar_params ps;
    ar_tensor *p;
    ar_optim o = ar_optim_sgd(0.1f, 0.9f);
    set2(&ps, &p, 1.0f, 1.0f, 1.0f, -2.0f);
    CHECK(ar_optim_step(&o, &ps) == AR_OK);
    CHECK_NEAR(p->x[0], 0.9, 1e-7);
    CHECK_NEAR(p->x[1], 1.2, 1e-7);
    CHECK(ar_optim_step(&o, &ps) == AR_OK); /* buf = 0.9 buf + g */
    CHECK_NEAR(p->x[0], 0.9 - 0.1 * 1.9, 1e-6);
    CHECK_NEAR(p->x[1], 1.2 + 0.1 * 3.8, 1e-6);
    ar_params_free(&ps);
    o = ar_optim_sgd(-1, 0);
    set2(&ps, &p, 1, 1, 1, 1);
    CHECK(ar_optim_step(&o, &ps) == AR_ERR_ARG && strstr(ps.err, "lr"));
    ar_params_free(&ps);
}

static void test_check_finite(void)
{
    ar_params ps;
    ar_tensor *p;
    set2(&ps, &p, 1, 2, 3, 4);
    CHECK(ar_params_check_finite(&ps) == AR_OK);
    p->g[1] = NAN;
    CHECK(ar_params_check_finite(&ps) == AR_ERR_NUMERIC && strstr(ps.err, "'p'") && strstr(ps.err, "gradient") &&
          strstr(ps.err, "element 1"));
    p->g[1] = 0;
    p->x[0] = -INFINITY;
    CHECK(ar_params_check_finite(&ps) == AR_ERR_NUMERIC && strstr(ps.err, "value at element 0"));
    ar_params_free(&ps);
    { /* long enough for the vectorized scan; extreme finite values pass */
        ar_params big;
        ar_tensor *w;
        size_t i;
        ar_params_init(&big);
        w = ar_params_add(&big, "w", 1, (int[]){1001});
        CHECK(w && ar_params_alloc(&big) == AR_OK);
        for (i = 0; i < w->n; i++) { w->x[i] = i % 2 ? FLT_MAX : -FLT_MAX; w->g[i] = i % 3 ? -0.0f : FLT_MIN / 4; }
        CHECK(ar_params_check_finite(&big) == AR_OK);
        w->g[777] = INFINITY;
        CHECK(ar_params_check_finite(&big) == AR_ERR_NUMERIC && strstr(big.err, "gradient at element 777"));
        w->g[777] = 0;
        w->x[1000] = NAN;
        CHECK(ar_params_check_finite(&big) == AR_ERR_NUMERIC && strstr(big.err, "value at element 1000"));
        ar_params_free(&big);
    }
}

static void test_clip_and_schedule(void)
{
    ar_params ps;
    ar_tensor *p;
    double n;
    set2(&ps, &p, 0, 0, 3, 4);
    CHECK_NEAR(ar_params_grad_norm(&ps), 5, 1e-9);
    n = ar_params_clip_grad_norm(&ps, 1.0);
    CHECK_NEAR(n, 5, 1e-9);
    CHECK_NEAR(p->g[0], 0.6, 1e-7);
    CHECK_NEAR(p->g[1], 0.8, 1e-7);
    n = ar_params_clip_grad_norm(&ps, 10.0); /* below the bound: untouched */
    CHECK_NEAR(p->g[1], 0.8, 1e-7);
    ar_params_free(&ps);
    CHECK_NEAR(ar_lr_cosine(0, 10, 110, 1, 0), 0.1, 1e-7);
    CHECK_NEAR(ar_lr_cosine(9, 10, 110, 1, 0), 1.0, 1e-7);
    CHECK_NEAR(ar_lr_cosine(60, 10, 110, 1, 0), 0.5, 1e-6);
    CHECK_NEAR(ar_lr_cosine(110, 10, 110, 1, 0.01f), 0.01, 1e-7);
    CHECK_NEAR(ar_lr_cosine(500, 10, 110, 1, 0.01f), 0.01, 1e-7);
}

/* Logistic regression on separable-ish synthetic data reaches the loss of the
   true model, with every optimizer. */
static void test_logistic_regression_converges(void)
{
    enum { N = 256, D = 5 };
    static float X[N * D], Y[N];
    float w_true[D] = {2, -1, 0.5f, 0, 3}, final[4];
    ar_rng r;
    int i, j, k, step;
    ar_optim opts[4];
    opts[0] = ar_optim_sgd(0.5f, 0.9f);
    opts[1] = ar_optim_adam(0.05f);
    opts[2] = ar_optim_adamw(0.05f, 1e-4f);
    opts[3] = ar_optim_adagrad(0.5f);
    ar_rng_seed(&r, 11);
    for (i = 0; i < N; i++) {
        float z = 0.5f;
        for (j = 0; j < D; j++) z += w_true[j] * (X[i * D + j] = ar_rng_normal(&r));
        Y[i] = (float)ar_rng_bernoulli(&r, 1 / (1 + expf(-z)));
    }
    for (k = 0; k < 4; k++) {
        ar_params ps;
        ar_graph g;
        ar_tensor *W, *b, *loss = NULL;
        ar_params_init(&ps);
        W = ar_params_add(&ps, "W", 2, S(1, D));
        b = ar_params_add(&ps, "b", 1, S(1));
        CHECK(ar_params_alloc(&ps) == AR_OK && ar_graph_init(&g, 0) == AR_OK);
        for (step = 0; step < 300; step++) {
            ar_graph_reset(&g);
            loss = ar_mean(&g, ar_bce_logits(&g, ar_linear(&g, ar_input(&g, X, 2, S(N, D)), W, b), Y), AR_ALL);
            ar_params_zero_grad(&ps);
            CHECK(ar_backward(&g, loss) == AR_OK);
            CHECK_MSG(ar_optim_step(&opts[k], &ps) == AR_OK, "%s", ps.err);
        }
        final[k] = loss->x[0];
        CHECK_MSG(fabsf(W->x[0] - 2) < 0.8f && fabsf(W->x[4] - 3) < 1.2f, "optimizer %d: w = %g %g", k,
                  (double)W->x[0], (double)W->x[4]);
        ar_graph_free(&g);
        ar_params_free(&ps);
    }
    for (k = 0; k < 4; k++) CHECK_MSG(final[k] < 0.35f, "optimizer %d: final loss %g", k, (double)final[k]);
}

void tests_optim(void)
{
    t_run("optim/adam_matches_hand_computation", test_adam_matches_hand_computation);
    t_run("optim/adamw_and_l2", test_adamw_and_l2);
    t_run("optim/sgd_momentum", test_sgd_momentum);
    t_run("optim/adagrad", test_adagrad);
    t_run("optim/check_finite", test_check_finite);
    t_run("optim/clip_and_schedule", test_clip_and_schedule);
    t_run("optim/logistic_regression_converges", test_logistic_regression_converges);
}
