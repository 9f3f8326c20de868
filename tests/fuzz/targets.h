/* Fuzz targets, shared by the libFuzzer driver (fuzz.c) and the unit test
   that replays saved inputs (test_fuzz.c). Each returns 0; a bug shows as
   a crash, a sanitizer report, or __builtin_trap on a broken invariant. */
#ifndef AR_FUZZ_TARGETS_H
#define AR_FUZZ_TARGETS_H
#include <stdint.h>
#include <string.h>
#include "../../ar.h"

#ifndef FUZZ_CHECK
#define FUZZ_CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)
#endif

/* safetensors into a fixed model: a failed load must leave it untouched. */
static int fuzz_safetensors(const uint8_t *data, size_t size)
{
    ar_params ps;
    ar_meta meta;
    int s1[2] = {3, 4}, s2[1] = {3};
    float before[15];
    ar_status s;
    ar_params_init(&ps);
    ar_meta_init(&meta);
    ar_params_add(&ps, "layer.W", 2, s1);
    ar_params_add(&ps, "layer.b", 1, s2);
    if (ar_params_alloc(&ps) != AR_OK) return 0;
    memset(ps.x, 0x3f, ps.total * sizeof(float));
    memcpy(before, ps.x, sizeof before);
    s = ar_params_load_mem(&ps, data, size, &meta);
    FUZZ_CHECK(s == AR_OK || s == AR_ERR_FORMAT || s == AR_ERR_NOMEM);
    FUZZ_CHECK(s == AR_OK || (memcmp(before, ps.x, sizeof before) == 0 && ps.err[0] && meta.n == 0));
    ar_meta_free(&meta);
    ar_params_free(&ps);
    return 0;
}

static int fuzz_idx(const uint8_t *data, size_t size)
{
    ar_idx idx;
    ar_status s = ar_idx_load_mem(&idx, data, size);
    FUZZ_CHECK(s == AR_OK ? idx.data != NULL || idx.n == 0 : idx.data == NULL && idx.err[0]);
    if (s == AR_OK) FUZZ_CHECK(idx.n == size - 4 - 4 * (size_t)idx.nd);
    ar_idx_free(&idx);
    return 0;
}

/* Model checkpoints: made/fvsbn/nade/rnade/transformer/cnn, then a likelihood if small. */
static int fuzz_model(const uint8_t *data, size_t size)
{
    ar_made m;
    ar_nade n;
    ar_graph g;
    float x[64], lp[1];
    int i;
    memset(&m, 0, sizeof m);
    memset(&n, 0, sizeof n);
    for (i = 0; i < 64; i++) x[i] = (float)(i % 3 == 0);
    if (ar_graph_init(&g, 0) != AR_OK) return 0;
    if (ar_made_load_mem(&m, data, size) == AR_OK && m.cfg.D <= 64)
        FUZZ_CHECK(ar_made_log_prob(&m, &g, x, 1, lp) == AR_OK || g.status == AR_ERR_NOMEM);
    else
        FUZZ_CHECK(m.ps.x == NULL || m.cfg.D > 64);
    ar_graph_reset(&g);
    if (ar_nade_load_mem(&n, data, size) == AR_OK && n.cfg.D <= 64)
        FUZZ_CHECK(ar_nade_log_prob(&n, &g, x, 1, lp) == AR_OK || g.status == AR_ERR_NOMEM);
    ar_graph_reset(&g);
    {
        ar_tfm t;
        int tok[64] = {0};
        memset(&t, 0, sizeof t);
        if (ar_tfm_load_mem(&t, data, size) == AR_OK && t.cfg.T >= 4 && t.cfg.T <= 64) /* ordered: all T */
            FUZZ_CHECK(ar_tfm_logits(&t, &g, tok, 1, t.order ? t.cfg.T : 4) != NULL || g.status == AR_ERR_NOMEM);
        ar_tfm_free(&t);
    }
    ar_graph_reset(&g);
    {
        ar_cnn c;
        memset(&c, 0, sizeof c);
        if (ar_cnn_load_mem(&c, data, size) == AR_OK && c.cfg.H * c.cfg.W <= 64 && c.cfg.channels <= 64)
            FUZZ_CHECK(ar_cnn_nll(&c, &g, x, 1) != NULL || g.status == AR_ERR_NOMEM);
        ar_cnn_free(&c);
    }
    ar_made_free(&m);
    ar_nade_free(&n);
    ar_graph_free(&g);
    return 0;
}

#endif
