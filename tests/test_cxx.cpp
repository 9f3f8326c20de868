// The header used from C++: declarations only here, implementation in impl.c.
#include <cstring>
#include <vector>
#include "../ar.h"
#include "test.h"

static void test_cxx_train_step()
{
    ar_params ps;
    ar_graph g;
    ar_rng r;
    ar_params_init(&ps);
    int ws[2] = {2, 3}, xs[2] = {4, 3};
    ar_tensor *W = ar_params_add(&ps, "W", 2, ws);
    CHECK(W && ar_params_alloc(&ps) == AR_OK);
    ar_rng_seed(&r, 1);
    ar_init_xavier(W, &r);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    std::vector<float> x(12, 1.0f), y(8, 1.0f);
    ar_optim o = ar_optim_adam(0.1f);
    float first = 0, last = 0;
    for (int step = 0; step < 20; step++) {
        ar_graph_reset(&g);
        ar_tensor *z = ar_linear(&g, ar_input(&g, x.data(), 2, xs), W, NULL);
        ar_tensor *loss = ar_mean(&g, ar_bce_logits(&g, z, y.data()), AR_ALL);
        ar_params_zero_grad(&ps);
        CHECK(ar_backward(&g, loss) == AR_OK);
        CHECK(ar_optim_step(&o, &ps) == AR_OK);
        (step == 0 ? first : last) = loss->x[0];
    }
    CHECK(last < first);
    ar_graph_free(&g);
    ar_params_free(&ps);
}

extern "C" void tests_cxx(void)
{
    t_run("cxx/train_step", test_cxx_train_step);
}
