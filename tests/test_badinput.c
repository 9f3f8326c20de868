/* Every public entry point given NULLs, zero/negative/overflowing sizes and
   absurd configurations: a status and a message, never a crash. */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

#define S(...) (int[]){__VA_ARGS__}

static void test_null_objects(void)
{
    ar_graph g;
    ar_params ps;
    ar_optim o = ar_optim_adam(1e-3f);
    ar_meta meta;
    ar_idx idx;
    ar_mnist mn;
    ar_made made;
    ar_nade nade;
    double rel;
    unsigned char *buf;
    size_t len;
    float x[4] = {0};
    CHECK(ar_graph_init(NULL, 0) == AR_ERR_ARG);
    ar_graph_free(NULL);
    ar_graph_reset(NULL);
    ar_graph_set_grad(NULL, 0);
    CHECK(ar_graph_alloc(NULL, 16) == NULL);
    CHECK(ar_input(NULL, x, 1, S(4)) == NULL && ar_zeros(NULL, 1, S(4)) == NULL);
    CHECK(ar_backward(NULL, NULL) == AR_ERR_ARG);
    CHECK(ar_matmul(NULL, NULL, NULL, 0, 0) == NULL && ar_sigmoid(NULL, NULL) == NULL);
    ar_params_init(NULL);
    CHECK(ar_params_add(NULL, "a", 1, S(1)) == NULL && ar_params_alloc(NULL) == AR_ERR_ARG);
    ar_params_free(NULL);
    ar_params_zero_grad(NULL);
    CHECK(ar_params_find(NULL, "a") == NULL && ar_params_check_finite(NULL) == AR_ERR_ARG);
    CHECK(ar_params_grad_norm(NULL) == 0 && ar_params_clip_grad_norm(NULL, 1) == 0);
    ar_fill(NULL, 1);
    CHECK(ar_optim_step(NULL, NULL) == AR_ERR_ARG && ar_optim_step(&o, NULL) == AR_ERR_ARG);
    CHECK(ar_optim_save(NULL, NULL, NULL, NULL, "x") == AR_ERR_ARG);
    CHECK(ar_optim_load(NULL, NULL, NULL, NULL, "x") == AR_ERR_ARG);
    ar_meta_init(&meta);
    CHECK(ar_meta_set(NULL, "a", "b") == AR_ERR_ARG && ar_meta_set(&meta, NULL, "b") == AR_ERR_ARG);
    CHECK(ar_meta_set(&meta, "a", NULL) == AR_ERR_ARG && ar_meta_get(NULL, "a") == NULL);
    ar_meta_free(NULL);
    CHECK(ar_params_save_mem(NULL, NULL, &buf, &len) == AR_ERR_ARG);
    CHECK(ar_params_load_mem(NULL, NULL, 0, NULL) == AR_ERR_ARG);
    ar_params_init(&ps); /* not allocated */
    CHECK(ar_params_save(&ps, "/tmp/x", NULL) == AR_ERR_ARG && strstr(ps.err, "not allocated"));
    CHECK(ar_params_load(&ps, "/tmp/x", NULL) == AR_ERR_ARG);
    CHECK(ar_idx_load(NULL, "x") == AR_ERR_ARG && ar_idx_load(&idx, NULL) == AR_ERR_ARG && idx.err[0]);
    ar_idx_free(NULL);
    CHECK(ar_mnist_load(NULL, "x", 1, 1) == AR_ERR_ARG && ar_mnist_load(&mn, NULL, 1, 1) == AR_ERR_ARG);
    ar_mnist_free(NULL);
    CHECK(ar_gradcheck(NULL, NULL, NULL, NULL, 1e-2f, &rel, NULL) == AR_ERR_ARG);
    CHECK(ar_made_init(NULL, NULL) == AR_ERR_ARG && ar_made_init(&made, NULL) == AR_ERR_ARG && made.err[0]);
    ar_made_free(NULL);
    CHECK(ar_made_set_mask(NULL, 0) == AR_ERR_ARG && ar_made_save(NULL, "x") == AR_ERR_ARG);
    CHECK(ar_made_load(NULL, "x") == AR_ERR_ARG && ar_made_load_mem(NULL, NULL, 0) == AR_ERR_ARG);
    CHECK(ar_nade_init(NULL, NULL) == AR_ERR_ARG && ar_nade_init(&nade, NULL) == AR_ERR_ARG && nade.err[0]);
    ar_nade_free(NULL);
    CHECK(ar_nade_save(NULL, "x") == AR_ERR_ARG && ar_nade_load(NULL, "x") == AR_ERR_ARG);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_made_nll(NULL, &g, x, 1) == NULL && g.status == AR_ERR_ARG && g.err[0]);
    ar_graph_reset(&g);
    CHECK(ar_nade_nll(NULL, &g, x, 1) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    CHECK(ar_made_log_prob(NULL, &g, x, 1, x) == AR_ERR_ARG && ar_nade_log_prob(NULL, &g, x, 1, NULL) == AR_ERR_ARG);
    CHECK(ar_made_sample(NULL, &g, 1, NULL, 1, NULL, NULL, x, NULL) == AR_ERR_ARG);
    CHECK(ar_nade_sample(NULL, &g, 1, NULL, 1, NULL, NULL, x, NULL) == AR_ERR_ARG);
    ar_graph_free(&g);
}

/* Sizes: zero, negative, products that overflow, configurations too big to allocate. */
static void test_absurd_sizes(void)
{
    ar_graph g;
    ar_made made;
    ar_nade nade;
    ar_made_cfg mc = ar_made_default(1 << 20);
    ar_nade_cfg nc = ar_nade_default(1 << 20);
    float x[8] = {0};
    int ids[2] = {0, 0};
    mc.n_hidden = 8;
    for (int l = 0; l < 8; l++) mc.hidden[l] = 1 << 20; /* ~2^43 weights */
    CHECK(ar_made_init(&made, &mc) == AR_ERR_NOMEM && made.err[0]);
    nc.H = 1 << 20;
    CHECK(ar_nade_init(&nade, &nc) == AR_ERR_NOMEM && nade.err[0]);
    mc = ar_made_default(4);
    mc.n_masks = 0;
    CHECK(ar_made_init(&made, &mc) == AR_ERR_ARG && strstr(made.err, "n_masks"));
    mc.n_masks = 1;
    mc.n_hidden = AR_MADE_MAX_HIDDEN + 1;
    CHECK(ar_made_init(&made, &mc) == AR_ERR_ARG && strstr(made.err, "n_hidden"));
    nc = ar_nade_default(-3);
    CHECK(ar_nade_init(&nade, &nc) == AR_ERR_ARG && strstr(nade.err, "D = -3"));
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_zeros(&g, 2, S(0, 5)) == NULL && g.status == AR_ERR_SHAPE);
    ar_graph_reset(&g);
    CHECK(ar_zeros(&g, 0, S(1)) == NULL && g.status == AR_ERR_SHAPE);
    ar_graph_reset(&g);
    CHECK(ar_zeros(&g, 3, S(0x40000000, 0x40000000, 16)) == NULL && g.status == AR_ERR_SHAPE);
    ar_graph_reset(&g);
    CHECK(ar_zeros(&g, 2, S(1 << 30, 1 << 30)) == NULL && g.status == AR_ERR_NOMEM); /* 4 EiB */
    ar_graph_reset(&g);
    CHECK(ar_embedding(&g, ar_input(&g, x, 2, S(2, 4)), ids, 1, S(-2)) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    CHECK(ar_masked_fill(&g, ar_input(&g, x, 2, S(2, 4)), x, 3, 0) == NULL && g.status == AR_ERR_SHAPE);
    ar_graph_reset(&g);
    CHECK(ar_layernorm(&g, ar_input(&g, x, 2, S(2, 4)), NULL, NULL, 0) == NULL && g.status == AR_ERR_ARG);
    ar_graph_free(&g);
}

/* Found in review: each of these once misbehaved. */
static ar_tensor *log_loss(ar_graph *g, void *c)
{
    ar_params *ps = (ar_params *)c;
    return ar_sum(g, ar_log(g, ps->t[0]), AR_ALL);
}

static void test_review_regressions(void)
{
    ar_graph g;
    ar_params ps;
    ar_tensor *p, *loss;
    double rel = 0;
    float big[2] = {88.5f, 88.7f};
    ar_made made, back;
    ar_made_cfg mc = ar_made_default(3);
    /* a huge arena hint must not wrap */
    CHECK(ar_graph_init(&g, (size_t)-1 - 8) == AR_ERR_RANGE && strstr(g.err, "too large"));
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_graph_alloc(&g, (size_t)-1 - 10) == NULL);
    CHECK(ar_zeros(&g, 3, S(16, 536870911, 536870913)) == NULL && g.status != AR_OK);
    ar_graph_reset(&g);
    /* exp near the top of the float range stays finite */
    loss = ar_exp(&g, ar_input(&g, big, 1, S(2)));
    CHECK(loss && isfinite(loss->x[0]) && fabs(loss->x[0] / exp(88.5) - 1) < 1e-6 && isfinite(loss->x[1]));
    /* backward twice on one graph: the same gradient, not a doubled one */
    ar_params_init(&ps);
    p = ar_params_add(&ps, "p", 1, S(2));
    CHECK(p && ar_params_alloc(&ps) == AR_OK);
    p->x[0] = 3;
    p->x[1] = 0.5f;
    ar_graph_reset(&g);
    loss = ar_sum(&g, ar_mul(&g, ar_scale(&g, p, 3), ar_scale(&g, p, 3)), AR_ALL); /* 9 p^2 */
    ar_params_zero_grad(&ps);
    CHECK(ar_backward(&g, loss) == AR_OK && p->g[0] == 54);
    ar_params_zero_grad(&ps);
    CHECK(ar_backward(&g, loss) == AR_OK && p->g[0] == 54);
    /* a NaN gradient never passes the gradient check */
    p->x[0] = -1;
    CHECK(ar_gradcheck(&g, &ps, log_loss, &ps, 1e-2f, &rel, NULL) == AR_OK && !(rel < 1));
    CHECK(g.grad == 1);
    ar_params_free(&ps);
    ar_graph_free(&g);
    /* flags other than 0/1 are normalized, and survive a save and load */
    mc.direct = 2;
    CHECK(ar_made_init(&made, &mc) == AR_OK && made.cfg.direct == 1);
    CHECK(ar_made_save(&made, "/tmp/ar_test_flags.safetensors") == AR_OK);
    memset(&back, 0, sizeof back);
    CHECK(ar_made_load(&back, "/tmp/ar_test_flags.safetensors") == AR_OK && back.cfg.direct == 1);
    remove("/tmp/ar_test_flags.safetensors");
    ar_made_free(&made);
    ar_made_free(&back);
}

void tests_badinput(void)
{
    t_run("badinput/null_objects", test_null_objects);
    t_run("badinput/absurd_sizes", test_absurd_sizes);
    t_run("badinput/review_regressions", test_review_regressions);
}
