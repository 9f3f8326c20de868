/* Every public entry point given NULLs, zero/negative/overflowing sizes,
   absurd configurations, objects never initialized or already freed, bad
   sampling options and bad data: a status by the documented rule and a
   message in the documented place, never a crash. */
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
    ar_model m;
    ar_model_cfg cfg = ar_model_default(AR_MADE, 4, 1);
    ar_sample_opts so = ar_sample_defaults();
    ar_tfm_cache cache;
    ar_rng r;
    double rel;
    unsigned char *buf;
    size_t len;
    float x[4] = {0}, scratch[12];
    int tok[4] = {0};
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
    /* the model interface: a NULL model has nowhere for a message */
    CHECK(ar_model_init(NULL, NULL) == AR_ERR_ARG && ar_model_init(NULL, &cfg) == AR_ERR_ARG);
    memset(&m, 0xA5, sizeof m);
    CHECK(ar_model_init(&m, NULL) == AR_ERR_ARG && m.err[0] && m.ps.x == NULL);
    ar_model_free(&m);
    ar_model_free(NULL);
    CHECK(ar_model_load(NULL, "x") == AR_ERR_ARG && ar_model_load_mem(NULL, NULL, 0) == AR_ERR_ARG);
    memset(&m, 0xA5, sizeof m);
    CHECK(ar_model_load(&m, NULL) == AR_ERR_ARG && m.err[0] && m.ps.x == NULL);
    memset(&m, 0xA5, sizeof m);
    CHECK(ar_model_load_mem(&m, NULL, 10) == AR_ERR_ARG && m.err[0] && m.ps.x == NULL);
    memset(&m, 0xA5, sizeof m);
    CHECK(ar_model_load_mem(&m, (const unsigned char *)"", 0) != AR_OK && m.err[0] && m.ps.x == NULL);
    CHECK(ar_model_save(NULL, "x") == AR_ERR_ARG && ar_model_save_mem(NULL, &buf, &len) == AR_ERR_ARG);
    CHECK(ar_model_log_prob(NULL, x, 1, x) == AR_ERR_ARG && ar_model_init_bias(NULL, x, 1) == AR_ERR_ARG);
    ar_rng_seed(&r, 1);
    CHECK(ar_model_sample(NULL, 1, &so, &r, x) == AR_ERR_ARG);
    CHECK(ar_made_set_mask(NULL, 0) == AR_ERR_ARG && ar_made_log_prob(NULL, x, 1, 0, x) == AR_ERR_ARG);
    CHECK(ar_tfm_cache_init(NULL, NULL, 1) == AR_ERR_ARG && ar_tfm_step(NULL, NULL, NULL, NULL) == AR_ERR_ARG);
    CHECK(ar_tfm_cache_init(&cache, NULL, 1) == AR_ERR_ARG);
    ar_tfm_cache_free(NULL);
    CHECK(ar_cnn_receptive_field(NULL) == 0);
    CHECK(ar_sample_logits(NULL, 3, &so, &r, scratch) == -1 && ar_sample_logits(x, 3, NULL, &r, scratch) == -1);
    CHECK(ar_sample_logits(x, 3, &so, NULL, scratch) == -1 && ar_sample_logits(x, 3, &so, &r, NULL) == -1);
    CHECK(ar_sample_logits(x, 0, &so, &r, scratch) == -1);
    CHECK(ar_kind_name((ar_kind)-1) == NULL && ar_kind_name((ar_kind)AR_KIND_COUNT) == NULL);
    CHECK(ar_kind_parse(NULL) == -1 && ar_kind_parse("bogus") == -1 && ar_kind_parse("") == -1);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_model_nll(NULL, &g, x, 1, NULL) == NULL && g.status == AR_ERR_ARG && g.err[0]);
    ar_graph_reset(&g);
    CHECK(ar_made_logits(NULL, &g, ar_input(&g, x, 2, S(1, 4))) == NULL && g.status == AR_ERR_ARG && g.err[0]);
    ar_graph_reset(&g);
    CHECK(ar_tfm_logits(NULL, &g, tok, 1, 4) == NULL && g.status == AR_ERR_ARG && g.err[0]);
    ar_graph_reset(&g);
    CHECK(ar_tfm_nll(NULL, &g, tok, 1, 4) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    CHECK(ar_cnn_logits(NULL, &g, x, 1) == NULL && g.status == AR_ERR_ARG);
    ar_graph_free(&g);
}

/* Every kind by name, and back. */
static void test_kind_names(void)
{
    static const char *names[AR_KIND_COUNT] = {"made", "fvsbn", "nade", "rnade", "transformer",
                                               "pixelcnn", "gated", "wavenet"};
    int k;
    for (k = 0; k < AR_KIND_COUNT; k++) {
        CHECK_MSG(ar_kind_name((ar_kind)k) && !strcmp(ar_kind_name((ar_kind)k), names[k]), "kind %d", k);
        CHECK(ar_kind_parse(names[k]) == k);
    }
    CHECK(ar_kind_parse("MADE") == -1 || ar_kind_parse("MADE") == AR_MADE); /* case: either, not a crash */
    CHECK(ar_kind_parse("made ") == -1 && ar_kind_parse("mad") == -1);
}

/* A tiny model of each kind, D = 8 values (2 x 4 for the images). */
static ar_model_cfg tiny(ar_kind kind)
{
    ar_model_cfg c = ar_model_default(kind, 2, 4);
    c.made.hidden[0] = 6;
    c.nade.H = 5;
    c.nade.K = 2;
    c.nade.transform = AR_TRANSFORM_NONE;
    c.tfm.V = 3;
    c.tfm.d = 8;
    c.tfm.heads = 2;
    c.tfm.layers = 1;
    c.tfm.ffn = 16;
    c.cnn.channels = 4;
    c.cnn.layers = 1;
    c.cnn.kernel = 3;
    c.cnn.first_kernel = 3;
    c.cnn.dilations = 2;
    return c;
}

/* A model never initialized (zero-filled) or already freed: every call
   is AR_ERR_ARG with a message in m.err, or NULL with one in g.err. */
static void test_uninitialized_models(void)
{
    ar_model m;
    ar_graph g;
    ar_rng r;
    ar_tfm_cache c;
    ar_sample_opts so = ar_sample_defaults();
    float x[8] = {0}, out[8];
    unsigned char *buf = NULL;
    size_t len = 0;
    int pass, tok[8] = {0};
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    ar_rng_seed(&r, 2);
    for (pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            memset(&m, 0, sizeof m);
        } else {
            ar_model_cfg cfg = tiny(AR_MADE);
            CHECK(ar_model_init(&m, &cfg) == AR_OK);
            ar_model_free(&m);
            ar_model_free(&m); /* twice is fine */
        }
#define UNINIT(call)                                                        \
    do {                                                                    \
        m.err[0] = 0;                                                       \
        CHECK_MSG((call) == AR_ERR_ARG && m.err[0], "pass %d: %s", pass, #call); \
    } while (0)
        UNINIT(ar_model_log_prob(&m, x, 1, out));
        UNINIT(ar_model_sample(&m, 1, &so, &r, out));
        UNINIT(ar_model_init_bias(&m, x, 1));
        UNINIT(ar_model_save(&m, "/tmp/ar_test_uninit.safetensors"));
        UNINIT(ar_model_save_mem(&m, &buf, &len));
        UNINIT(ar_made_set_mask(&m, 0));
        UNINIT(ar_made_log_prob(&m, x, 1, -1, out));
        UNINIT(ar_tfm_cache_init(&c, &m, 1));
#undef UNINIT
        CHECK(buf == NULL);
        ar_graph_reset(&g);
        CHECK(ar_model_nll(&m, &g, x, 1, NULL) == NULL && g.status == AR_ERR_ARG && g.err[0]);
        ar_graph_reset(&g);
        CHECK(ar_made_logits(&m, &g, ar_input(&g, x, 2, S(1, 8))) == NULL && g.status == AR_ERR_ARG);
        ar_graph_reset(&g);
        CHECK(ar_tfm_logits(&m, &g, tok, 1, 8) == NULL && g.status == AR_ERR_ARG);
        ar_graph_reset(&g);
        CHECK(ar_cnn_logits(&m, &g, x, 1) == NULL && g.status == AR_ERR_ARG);
        CHECK(ar_cnn_receptive_field(&m) == 0);
    }
    ar_graph_free(&g);
}

/* init and load take their struct as output only: garbage in it changes
   nothing (0.4's loaders crashed on a stack struct not zero-filled). */
static void test_garbage_structs(void)
{
    const char *path = "/tmp/ar_test_garbage.safetensors";
    ar_kind k;
    for (k = AR_MADE; k < AR_KIND_COUNT; k = (ar_kind)(k + 1)) {
        ar_model_cfg cfg = tiny(k);
        ar_model a, b;
        float x[8] = {1, 0, 1, 1, 0, 0, 1, 0}, la[1], lb[1];
        if (k == AR_RNADE) x[0] = 0.25f;
        memset(&a, 0xA5, sizeof a);
        CHECK_MSG(ar_model_init(&a, &cfg) == AR_OK, "%s: %s", ar_kind_name(k), a.err);
        CHECK(a.kind == k && a.D == 8 && a.rows == 2 && a.cols == 4 && a.err[0] == 0);
        CHECK_MSG(ar_model_log_prob(&a, x, 1, la) == AR_OK, "%s: %s", ar_kind_name(k), a.err);
        CHECK(ar_model_save(&a, path) == AR_OK);
        memset(&b, 0x5A, sizeof b);
        CHECK_MSG(ar_model_load(&b, path) == AR_OK, "%s: %s", ar_kind_name(k), b.err);
        CHECK(b.kind == k && ar_model_log_prob(&b, x, 1, lb) == AR_OK && la[0] == lb[0]);
        ar_model_free(&b);
        memset(&b, 0x5A, sizeof b);
        CHECK(ar_model_load(&b, "/nonexistent/ar.safetensors") == AR_ERR_IO && b.err[0] && b.ps.x == NULL);
        ar_model_free(&b);
        ar_model_free(&a);
    }
    remove(path);
}

/* Sampling options out of range are AR_ERR_ARG for every family, with a
   message; ar_sample_logits returns -1 for them. */
static void test_bad_sample_options(void)
{
    ar_rng r;
    ar_kind k;
    float logits[3] = {0.1f, 2, -1}, scratch[9];
    ar_rng_seed(&r, 3);
    for (k = AR_MADE; k < AR_KIND_COUNT; k = (ar_kind)(k + 1)) {
        ar_model_cfg cfg = tiny(k);
        ar_model m;
        float out[2 * 8], given[2 * 8] = {0};
        unsigned char known[2 * 8] = {0};
        int i;
        CHECK_MSG(ar_model_init(&m, &cfg) == AR_OK, "%s: %s", ar_kind_name(k), m.err);
        for (i = 0; i < 9; i++) {
            ar_sample_opts o = ar_sample_defaults();
            switch (i) {
            case 0: o.temperature = NAN; break;
            case 1: o.temperature = -1; break;
            case 2: o.temperature = INFINITY; break;
            case 3: o.top_k = -1; break;
            case 4: o.top_p = NAN; break;
            case 5: o.top_p = -0.5f; break;
            case 6: o.top_p = 1.5f; break;
            case 7: o.known = known; break; /* known without given */
            default: o.naive = -3; break;   /* a flag: 0 or 1 */
            }
            m.err[0] = 0;
            CHECK_MSG(ar_model_sample(&m, 2, &o, &r, out) == AR_ERR_ARG && m.err[0], "%s: options %d, \"%s\"",
                      ar_kind_name(k), i, m.err);
            if (i < 7) CHECK_MSG(ar_sample_logits(logits, 3, &o, &r, scratch) == -1, "sample_logits, options %d", i);
        }
        {
            ar_sample_opts o = ar_sample_defaults();
            o.given = given;
            o.known = known;
            CHECK_MSG(ar_model_sample(&m, 2, &o, &r, out) == AR_OK && m.err[0] == 0, "%s: %s", ar_kind_name(k),
                      m.err);
        }
        ar_model_free(&m);
    }
    logits[1] = NAN;
    {
        ar_sample_opts o = ar_sample_defaults();
        CHECK(ar_sample_logits(logits, 3, &o, &r, scratch) == -1);
    }
}

/* Data is checked the same way in every family and every call that reads
   it: out of the domain AR_ERR_RANGE, NaN/Inf AR_ERR_NUMERIC, the example
   and the place in the message (example 5, place 6 here). */
static void test_bad_data_every_family(void)
{
    enum { N = 7, D = 8 };
    ar_kind k;
    ar_graph g;
    ar_rng r;
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    ar_rng_seed(&r, 4);
    for (k = AR_MADE; k < AR_KIND_COUNT; k = (ar_kind)(k + 1)) {
        ar_model_cfg cfg = tiny(k);
        ar_model m;
        float x[N * D], lp[N], out[N * D];
        unsigned char known[N * D];
        float bad[4];
        int nb = 0, i;
        CHECK_MSG(ar_model_init(&m, &cfg) == AR_OK, "%s: %s", ar_kind_name(k), m.err);
        CHECK(m.levels == (k == AR_RNADE ? 0 : k == AR_TRANSFORMER ? 3 : 2));
        if (m.levels) {
            bad[nb++] = 0.5f;
            bad[nb++] = (float)m.levels;
            bad[nb++] = -1;
        }
        bad[nb++] = NAN;
        for (i = 0; i < nb + 1; i++) {
            ar_status want, s;
            float v = i < nb ? bad[i] : INFINITY;
            memset(x, 0, sizeof x);
            x[5 * D + 6] = v;
            want = isfinite(v) ? AR_ERR_RANGE : AR_ERR_NUMERIC;
            s = ar_model_log_prob(&m, x, N, lp);
            CHECK_MSG(s == want && strstr(m.err, "5") && strstr(m.err, "6"), "%s log_prob x = %g: %d \"%s\"",
                      ar_kind_name(k), (double)v, (int)s, m.err);
            ar_graph_reset(&g);
            CHECK_MSG(ar_model_nll(&m, &g, x, N, &r) == NULL && g.status == want && strstr(m.err, "5") &&
                          strstr(m.err, "6"),
                      "%s nll x = %g: %d \"%s\"", ar_kind_name(k), (double)v, (int)g.status, m.err);
            s = ar_model_init_bias(&m, x, N);
            CHECK_MSG(s == want && m.err[0], "%s init_bias x = %g: %d \"%s\"", ar_kind_name(k), (double)v, (int)s,
                      m.err);
            {
                ar_sample_opts o = ar_sample_defaults();
                memset(known, 0, sizeof known);
                known[5 * D + 6] = 1;
                o.given = x;
                o.known = known;
                s = ar_model_sample(&m, N, &o, &r, out);
                CHECK_MSG(s == want && m.err[0], "%s given %g: %d \"%s\"", ar_kind_name(k), (double)v, (int)s, m.err);
            }
        }
        memset(x, 0, sizeof x);
        CHECK_MSG(ar_model_log_prob(&m, x, N, lp) == AR_OK && m.err[0] == 0, "%s: %s", ar_kind_name(k), m.err);
        ar_model_free(&m);
    }
    ar_graph_free(&g);
}

/* Calls of one family on another: AR_ERR_ARG (or NULL) with a message. */
static void test_wrong_family(void)
{
    ar_model_cfg cm = tiny(AR_MADE), cn = tiny(AR_NADE);
    ar_model made, nade;
    ar_graph g;
    ar_tfm_cache c;
    float x[8] = {0}, logits[8];
    int tok[8] = {0};
    CHECK(ar_model_init(&made, &cm) == AR_OK && ar_model_init(&nade, &cn) == AR_OK);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_made_set_mask(&nade, 0) == AR_ERR_ARG && nade.err[0]);
    CHECK(ar_tfm_cache_init(&c, &made, 1) == AR_ERR_ARG && made.err[0]);
    CHECK(ar_tfm_step(&made, &c, NULL, logits) == AR_ERR_ARG);
    CHECK(ar_tfm_logits(&made, &g, tok, 1, 8) == NULL && g.status == AR_ERR_ARG && g.err[0]);
    ar_graph_reset(&g);
    CHECK(ar_cnn_logits(&nade, &g, x, 1) == NULL && g.status == AR_ERR_ARG && g.err[0]);
    CHECK(ar_cnn_receptive_field(&made) == 0);
    ar_graph_free(&g);
    ar_model_free(&made);
    ar_model_free(&nade);
}

/* Sizes: zero, negative, products that overflow, configurations too big to allocate. */
static void test_absurd_sizes(void)
{
    ar_graph g;
    ar_model m;
    ar_model_cfg mc = ar_model_default(AR_MADE, 1 << 20, 1);
    ar_model_cfg nc = ar_model_default(AR_NADE, 1 << 20, 1);
    float x[8] = {0};
    int ids[2] = {0, 0};
    ar_status s;
    mc.made.n_hidden = 8;
    for (int l = 0; l < 8; l++) mc.made.hidden[l] = 1 << 20; /* ~2^43 weights */
    CHECK(ar_model_init(&m, &mc) == AR_ERR_NOMEM && m.err[0] && m.ps.x == NULL);
    nc.nade.H = 1 << 20;
    CHECK(ar_model_init(&m, &nc) == AR_ERR_NOMEM && m.err[0]);
    mc = ar_model_default(AR_MADE, 4, 1);
    mc.made.n_masks = 0;
    CHECK(ar_model_init(&m, &mc) == AR_ERR_ARG && strstr(m.err, "n_masks"));
    mc.made.n_masks = 1;
    mc.made.n_hidden = AR_MADE_MAX_HIDDEN + 1;
    CHECK(ar_model_init(&m, &mc) == AR_ERR_ARG && strstr(m.err, "n_hidden"));
    nc = ar_model_default(AR_NADE, -3, 1);
    CHECK(ar_model_init(&m, &nc) == AR_ERR_ARG && strstr(m.err, "-3"));
    nc = ar_model_default(AR_NADE, 4, 0);
    CHECK(ar_model_init(&m, &nc) == AR_ERR_ARG && m.err[0]);
    nc = ar_model_default(AR_NADE, 1 << 16, 1 << 16); /* rows * cols overflows an int */
    s = ar_model_init(&m, &nc);
    CHECK_MSG((s == AR_ERR_ARG || s == AR_ERR_RANGE) && m.err[0], "%d \"%s\"", (int)s, m.err);
    nc = ar_model_default(AR_NADE, 4, 1);
    nc.kind = (ar_kind)99;
    CHECK(ar_model_init(&m, &nc) == AR_ERR_ARG && m.err[0]);
    nc = ar_model_default(AR_NADE, 4, 1);
    nc.order = S(0, 1, 2, 4);
    CHECK(ar_model_init(&m, &nc) == AR_ERR_ARG && strstr(m.err, "order"));
    nc = ar_model_default(AR_NADE, 4, 1);
    CHECK(ar_model_init(&m, &nc) == AR_OK);
    CHECK(ar_model_log_prob(&m, x, -1, x) == AR_ERR_ARG && m.err[0]);
    CHECK(ar_model_log_prob(&m, x, 0, x) == AR_ERR_ARG && m.err[0]);
    CHECK(ar_model_init_bias(&m, x, 0) == AR_ERR_ARG && m.err[0]);
    {
        ar_sample_opts o = ar_sample_defaults();
        ar_rng r;
        ar_rng_seed(&r, 1);
        CHECK(ar_model_sample(&m, -2, &o, &r, x) == AR_ERR_ARG && m.err[0]);
    }
    ar_model_free(&m);
    CHECK(ar_graph_init(&g, 0) == AR_OK);
    CHECK(ar_zeros(&g, 2, S(0, 5)) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    CHECK(ar_zeros(&g, 0, S(1)) == NULL && g.status == AR_ERR_ARG);
    ar_graph_reset(&g);
    CHECK(ar_zeros(&g, 3, S(0x40000000, 0x40000000, 16)) == NULL && g.status == AR_ERR_RANGE);
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

/* ar.version in a checkpoint, by the documented rule: this major, a minor
   from 4 up to this one, else AR_ERR_VERSION with a message. */
static void test_checkpoint_versions(void)
{
    static const char *const vers[] = {"0.5.0", "0.5.7", "0.6.0", "1.5.0", "0.3.2", "9.0.0", "x.y.z", "0.0.1",
                                       "0.5", ""};
    static const int ok[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    ar_model_cfg cfg = tiny(AR_NADE);
    ar_model a, b;
    unsigned char *buf = NULL, *ed;
    size_t len = 0, i, pos = 0, v, hlen = 0;
    const char *key = "\"ar.version\":\"";
    CHECK(ar_model_init(&a, &cfg) == AR_OK);
    CHECK(ar_model_save_mem(&a, &buf, &len) == AR_OK && buf);
    for (i = 8; i + strlen(key) < len && !pos; i++)
        if (!memcmp(buf + i, key, strlen(key))) pos = i + strlen(key);
    CHECK_MSG(pos && !memcmp(buf + pos, ar_version(), strlen(ar_version())) && buf[pos + strlen(ar_version())] == '"',
              "no \"ar.version\":\"%s\" in the header", ar_version());
    ed = (unsigned char *)malloc(len + 16);
    CHECK(ed);
    for (i = 0; i < 8; i++) hlen |= (size_t)buf[i] << (8 * i);
    CHECK(hlen + 8 <= len);
    for (v = 0; v < sizeof vers / sizeof *vers; v++) {
        /* a shorter version moves the rest of the header left and pads its
           end with spaces, so every data offset stays valid */
        size_t n = strlen(vers[v]);
        ar_status s;
        memcpy(ed, buf, len);
        memcpy(ed + pos, vers[v], n);
        ed[pos + n] = '"';
        memmove(ed + pos + n + 1, buf + pos + 6, 8 + hlen - (pos + 6));
        memset(ed + 8 + hlen - (5 - n), ' ', 5 - n);
        memset(&b, 0xA5, sizeof b);
        s = ar_model_load_mem(&b, ed, len);
        if (ok[v])
            CHECK_MSG(s == AR_OK, "version \"%s\": %d \"%s\"", vers[v], (int)s, b.err);
        else
            CHECK_MSG(s == AR_ERR_VERSION && b.err[0] && b.ps.x == NULL, "version \"%s\": %d \"%s\"", vers[v], (int)s,
                      b.err);
        ar_model_free(&b);
    }
    free(ed);
    ar_free(buf);
    ar_model_free(&a);
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
    float big[2] = {88.5f, 88.7f}, x[3] = {0, 1, 0};
    ar_model made, back;
    ar_model_cfg mc = ar_model_default(AR_MADE, 3, 1);
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
    /* a flag other than 0/1 once saved as "2" and then failed to load: now
       it is refused at init, naming the flag, and 1 survives a round trip */
    mc.made.direct = 2;
    CHECK(ar_model_init(&made, &mc) == AR_ERR_ARG && strstr(made.err, "direct") && made.ps.x == NULL);
    mc.made.direct = 1;
    mc.made.order_agnostic = -1;
    CHECK(ar_model_init(&made, &mc) == AR_ERR_ARG && strstr(made.err, "order_agnostic"));
    mc.made.order_agnostic = 0;
    CHECK(ar_model_init(&made, &mc) == AR_OK && made.cfg.made.direct == 1 && made.made->cfg.direct == 1);
    CHECK(ar_model_save(&made, "/tmp/ar_test_flags.safetensors") == AR_OK);
    memset(&back, 0, sizeof back);
    CHECK(ar_model_load(&back, "/tmp/ar_test_flags.safetensors") == AR_OK && back.cfg.made.direct == 1);
    remove("/tmp/ar_test_flags.safetensors");
    /* the model's message after a failure: the graph fails with it, stays
       sticky on the graph, and the next good call clears the model's */
    ar_graph_reset(&g);
    x[1] = 0.5f;
    CHECK(ar_model_nll(&made, &g, x, 1, NULL) == NULL && g.status == AR_ERR_RANGE && made.err[0]);
    CHECK(strstr(g.err, made.err) || strstr(made.err, g.err));
    x[1] = 1;
    CHECK(ar_model_nll(&made, &g, x, 1, NULL) == NULL && g.status == AR_ERR_RANGE); /* the graph stays failed */
    ar_graph_reset(&g);
    CHECK(ar_model_nll(&made, &g, x, 1, NULL) != NULL && made.err[0] == 0 && g.status == AR_OK);
    CHECK(ar_model_nll(&made, NULL, x, 1, NULL) == NULL && made.err[0]);
    ar_graph_free(&g);
    ar_model_free(&made);
    ar_model_free(&back);
}

void tests_badinput(void)
{
    t_run("badinput/null_objects", test_null_objects);
    t_run("badinput/kind_names", test_kind_names);
    t_run("badinput/uninitialized_models", test_uninitialized_models);
    t_run("badinput/garbage_structs", test_garbage_structs);
    t_run("badinput/bad_sample_options", test_bad_sample_options);
    t_run("badinput/bad_data_every_family", test_bad_data_every_family);
    t_run("badinput/wrong_family", test_wrong_family);
    t_run("badinput/absurd_sizes", test_absurd_sizes);
    t_run("badinput/checkpoint_versions", test_checkpoint_versions);
    t_run("badinput/review_regressions", test_review_regressions);
}
