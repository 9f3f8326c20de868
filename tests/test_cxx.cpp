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

// The model interface from C++: train a small MADE on a fixed pattern until
// its nll falls, sample, and round-trip it through memory.
static void test_cxx_model()
{
    const int D = 6, N = 32;
    ar_model_cfg cfg = ar_model_default(AR_MADE, 2, 3);
    cfg.made.hidden[0] = 12;
    cfg.seed = 3;
    ar_model m;
    CHECK(ar_model_init(&m, &cfg) == AR_OK);
    CHECK(m.kind == AR_MADE && m.D == D && m.levels == 2 && ar_kind_parse(ar_kind_name(m.kind)) == AR_MADE);
    std::vector<float> x(N * D);
    for (int i = 0; i < N * D; i++) x[i] = (float)((i / D + i % D) % 2); // two alternating patterns
    ar_graph g;
    ar_rng r;
    ar_rng_seed(&r, 4);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_model_init_bias(&m, x.data(), N) == AR_OK);
    ar_optim opt = ar_optim_adam(0.05f);
    float first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        ar_graph_reset(&g);
        ar_tensor *loss = ar_mean(&g, ar_model_nll(&m, &g, x.data(), N, &r), AR_ALL);
        ar_params_zero_grad(&m.ps);
        CHECK(ar_backward(&g, loss) == AR_OK);
        CHECK(ar_optim_step(&opt, &m.ps) == AR_OK);
        (step == 0 ? first : last) = loss->x[0];
    }
    CHECK_MSG(last < 0.5f * first, "nll %g -> %g", (double)first, (double)last);
    ar_sample_opts so = ar_sample_defaults();
    std::vector<float> s(8 * D), p(8 * D);
    so.probs = p.data();
    CHECK(ar_model_sample(&m, 8, &so, &r, s.data()) == AR_OK);
    for (int i = 0; i < 8 * D; i++) CHECK((s[i] == 0 || s[i] == 1) && p[i] >= 0 && p[i] <= 1);
    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK(ar_model_save_mem(&m, &buf, &len) == AR_OK && buf && len > 8);
    ar_model back;
    CHECK(ar_model_load_mem(&back, buf, len) == AR_OK);
    ar_free(buf);
    std::vector<float> la(N), lb(N);
    CHECK(ar_model_log_prob(&m, x.data(), N, la.data()) == AR_OK);
    CHECK(ar_model_log_prob(&back, x.data(), N, lb.data()) == AR_OK);
    CHECK(std::memcmp(la.data(), lb.data(), N * sizeof(float)) == 0);
    CHECK(back.rows == 2 && back.cols == 3 && back.cfg.made.hidden[0] == 12);
    ar_model_free(&back);
    ar_model_free(&m);
    ar_graph_free(&g);
}

extern "C" void tests_cxx(void)
{
    t_run("cxx/train_step", test_cxx_train_step);
    t_run("cxx/model", test_cxx_model);
}
