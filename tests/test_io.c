/* Checkpoints (safetensors), model checkpoints through the generic loader
   (every kind, the version rule, 0.4 files, corrupted files), and IDX/MNIST
   reading, including bad files. */
#include <stdlib.h>
#include <string.h>
#include "../ar.h"
#include "test.h"

#define S(...) (int[]){__VA_ARGS__}

static int make_params(ar_params *ps, uint64_t seed)
{
    ar_rng r;
    ar_tensor *W, *b;
    ar_params_init(ps);
    W = ar_params_add(ps, "layer.W", 2, S(3, 4));
    b = ar_params_add(ps, "layer.b", 1, S(3));
    if (!W || !b || ar_params_alloc(ps) != AR_OK) return 0;
    ar_rng_seed(&r, seed);
    ar_init_normal(W, &r, 0, 1);
    ar_init_normal(b, &r, 0, 1);
    W->x[5] = -0.0f;
    b->x[1] = 1e-40f; /* denormal survives */
    return 1;
}

static void test_safetensors_roundtrip_bit_exact(void)
{
    ar_params a, b;
    ar_meta meta, got;
    unsigned char *buf;
    size_t len;
    uint64_t hlen = 0;
    int k;
    CHECK(make_params(&a, 1) && make_params(&b, 2));
    ar_meta_init(&meta);
    ar_meta_init(&got);
    CHECK(ar_meta_set(&meta, "model", "mlp") == AR_OK);
    CHECK(ar_meta_set(&meta, "quote\"and\\slash", "line\nbreak\ttab") == AR_OK);
    CHECK(ar_params_save_mem(&a, &meta, &buf, &len) == AR_OK);
    for (k = 0; k < 8; k++) hlen |= (uint64_t)buf[k] << (8 * k);
    CHECK(hlen % 8 == 0 && len == 8 + hlen + 15 * 4);
    CHECK(buf[8] == '{');
    CHECK(ar_params_load_mem(&b, buf, len, &got) == AR_OK);
    CHECK(memcmp(a.x, b.x, a.total * sizeof(float)) == 0);
    CHECK(!strcmp(ar_meta_get(&got, "model"), "mlp"));
    CHECK(!strcmp(ar_meta_get(&got, "quote\"and\\slash"), "line\nbreak\ttab"));
    CHECK(ar_meta_get(&got, "absent") == NULL);
    ar_meta_free(&meta);
    ar_meta_free(&got);
    ar_free(buf);
    ar_params_free(&a);
    ar_params_free(&b);
}

static void test_safetensors_file_roundtrip(void)
{
    ar_params a, b;
    const char *path = "/tmp/ar_test_ckpt.safetensors";
    FILE *f;
    CHECK(make_params(&a, 3) && make_params(&b, 4));
    CHECK(ar_params_save(&a, path, NULL) == AR_OK);
    f = fopen("/tmp/ar_test_ckpt.safetensors.tmp", "rb");
    CHECK(f == NULL); /* the temporary was renamed away */
    CHECK(ar_params_load(&b, path, NULL) == AR_OK);
    CHECK(memcmp(a.x, b.x, a.total * sizeof(float)) == 0);
    CHECK(ar_params_load(&b, "/nonexistent/dir/x.safetensors", NULL) == AR_ERR_IO && strstr(b.err, "cannot open"));
    CHECK(ar_params_save(&a, "/nonexistent/dir/x.safetensors", NULL) == AR_ERR_IO);
    remove(path);
    ar_params_free(&a);
    ar_params_free(&b);
}

/* Hand-written headers: accepted when valid, rejected with a message otherwise. */
static ar_status load_header(ar_params *ps, const char *json, size_t dlen, char *msg)
{
    size_t hl = strlen(json), len = 8 + hl + dlen, k;
    unsigned char *buf = (unsigned char *)calloc(1, len);
    ar_status s;
    for (k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(buf + 8, json, hl);
    for (k = 0; k < dlen; k++) buf[8 + hl + k] = (unsigned char)(k * 37);
    s = ar_params_load_mem(ps, buf, len, NULL);
    strcpy(msg, ps->err);
    free(buf);
    return s;
}

static void test_safetensors_rejects_bad_headers(void)
{
    static const struct { const char *json; size_t dlen; const char *msg; } bad[] = {
        {"[]", 60, "start with"},
        {"{\"layer.W\":{\"dtype\":\"F16\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}}", 60, "dtype F16"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[0,48]},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}}", 60, "another shape"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]}}", 48, "'layer.b' is missing"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]},"
         "\"extra\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[60,64]}}", 64, "not a parameter"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[40,52]}}", 60, "overlap"},
        /* overlapping spans that cover the data exactly: no hole, no byte left over */
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[40,52]}}", 52, "overlap"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[12,24]}}", 48, "overlap"},
        {"{\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
         "\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]}}", 48, "overlap"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}}", 64, "64 data bytes"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}}", 56, "outside the file"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]}}", 60, "listed twice"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}", 60, "expected '}'"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48],\"x\":1},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}}", 60, "unknown or repeated key"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,-4],\"data_offsets\":[0,48]}}", 60, "non-negative integer"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,99999999999999999999]}}", 60, "too large"},
        {"{\"__metadata__\":{\"a\":1}}", 60, "strings to strings"},
        {"{\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}} x", 60, "trailing bytes"},
        {"{\"lay\\qer\":1}", 60, "bad escape"},
        {"{\"layer.W", 60, "unterminated"},
    };
    ar_params ps, ref;
    char msg[AR_ERR_LEN];
    size_t i;
    CHECK(make_params(&ps, 5) && make_params(&ref, 5));
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ar_status s = load_header(&ps, bad[i].json, bad[i].dlen, msg);
        CHECK_MSG(s == AR_ERR_FORMAT, "case %zu: status %d", i, s);
        CHECK_MSG(strstr(msg, bad[i].msg) != NULL, "case %zu: message '%s' lacks '%s'", i, msg, bad[i].msg);
        CHECK_MSG(memcmp(ps.x, ref.x, ps.total * sizeof(float)) == 0, "case %zu: parameters modified", i);
    }
    /* a valid hand-written header, out of order, with spaces and padding */
    CHECK(load_header(&ps, " { \"layer.b\" : {\"data_offsets\":[0,12],\"shape\":[3],\"dtype\":\"F32\"} , "
                           "\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[12,60]}}   ",
                      60, msg) == AR_ERR_FORMAT); /* leading space: not a '{' */
    CHECK(load_header(&ps, "{ \"layer.b\" : {\"data_offsets\":[0,12],\"shape\":[3],\"dtype\":\"F32\"} , "
                           "\"layer.W\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[12,60]}}   ",
                      60, msg) == AR_OK);
    ar_params_free(&ps);
    ar_params_free(&ref);
}

/* Every truncation and every single-byte corruption of a valid file either
   loads or fails cleanly; a failed load leaves the parameters unchanged. */
static void test_safetensors_truncated_and_corrupted(void)
{
    ar_params a, b, ref;
    unsigned char *buf;
    size_t len, i;
    int ok = 0;
    CHECK(make_params(&a, 6) && make_params(&b, 7) && make_params(&ref, 7));
    CHECK(ar_params_save_mem(&a, NULL, &buf, &len) == AR_OK);
    for (i = 0; i < len; i++) {
        CHECK(ar_params_load_mem(&b, buf, i, NULL) == AR_ERR_FORMAT);
        CHECK(memcmp(b.x, ref.x, b.total * sizeof(float)) == 0);
    }
    for (i = 0; i < len; i++) {
        unsigned char *c = (unsigned char *)malloc(len);
        ar_status s;
        memcpy(c, buf, len);
        c[i] ^= 0x5a;
        s = ar_params_load_mem(&b, c, len, NULL);
        free(c);
        if (s == AR_OK) { ok++; memcpy(b.x, ref.x, b.total * sizeof(float)); continue; }
        CHECK(s == AR_ERR_FORMAT);
        CHECK(memcmp(b.x, ref.x, b.total * sizeof(float)) == 0);
    }
    CHECK(ok >= 60); /* flips in the data bytes load fine */
    ar_free(buf);
    ar_params_free(&a);
    ar_params_free(&b);
    ar_params_free(&ref);
}

static void test_meta_limits(void)
{
    ar_meta m;
    static char big[5000];
    char key[32];
    int i;
    ar_meta_init(&m);
    memset(big, 'v', sizeof big - 1);
    CHECK(ar_meta_set(&m, "", "v") == AR_ERR_ARG);
    CHECK(ar_meta_set(&m, "big", big) == AR_OK && strlen(ar_meta_get(&m, "big")) == sizeof big - 1);
    for (i = 1; i < AR_META_MAX; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK(ar_meta_set(&m, key, "v") == AR_OK);
    }
    CHECK(ar_meta_set(&m, "one_more", "v") == AR_ERR_RANGE);
    CHECK(ar_meta_set(&m, "k3", "replaced") == AR_OK && !strcmp(ar_meta_get(&m, "k3"), "replaced"));
    CHECK(m.n == AR_META_MAX);
    ar_meta_free(&m);
    CHECK(m.n == 0 && ar_meta_get(&m, "k3") == NULL);
}

/* ---- IDX ------------------------------------------------------------------ */

static size_t make_idx(unsigned char *buf, int n, int rows, int cols)
{
    size_t k, len = 16 + (size_t)n * rows * cols;
    int d, dims[3] = {n, rows, cols};
    buf[0] = 0; buf[1] = 0; buf[2] = 8; buf[3] = 3;
    for (d = 0; d < 3; d++) {
        buf[4 + 4 * d] = (unsigned char)(dims[d] >> 24);
        buf[5 + 4 * d] = (unsigned char)(dims[d] >> 16);
        buf[6 + 4 * d] = (unsigned char)(dims[d] >> 8);
        buf[7 + 4 * d] = (unsigned char)dims[d];
    }
    for (k = 16; k < len; k++) buf[k] = (unsigned char)((k * 31) & 0xff);
    return len;
}

static void test_idx_valid_and_invalid(void)
{
    static unsigned char buf[16 + 12 * 4 * 5];
    ar_idx idx;
    size_t len = make_idx(buf, 12, 4, 5);
    CHECK(ar_idx_load_mem(&idx, buf, len) == AR_OK);
    CHECK(idx.nd == 3 && idx.dims[0] == 12 && idx.dims[1] == 4 && idx.dims[2] == 5 && idx.n == 240);
    CHECK(idx.data[0] == buf[16] && idx.data[239] == buf[len - 1]);
    ar_idx_free(&idx);
    CHECK(ar_idx_load_mem(&idx, buf, len - 1) == AR_ERR_FORMAT && strstr(idx.err, "promises 240"));
    CHECK(ar_idx_load_mem(&idx, buf, 10) == AR_ERR_FORMAT && strstr(idx.err, "truncated"));
    buf[2] = 0x0d;
    CHECK(ar_idx_load_mem(&idx, buf, len) == AR_ERR_FORMAT && strstr(idx.err, "0x0d"));
    buf[2] = 8;
    buf[3] = 9;
    CHECK(ar_idx_load_mem(&idx, buf, len) == AR_ERR_FORMAT && strstr(idx.err, "9 dimensions"));
    buf[3] = 3;
    buf[0] = 1;
    CHECK(ar_idx_load_mem(&idx, buf, len) == AR_ERR_FORMAT && strstr(idx.err, "magic"));
    buf[0] = 0;
    buf[4] = 0xff; /* absurd first dimension */
    CHECK(ar_idx_load_mem(&idx, buf, len) == AR_ERR_FORMAT && strstr(idx.err, "dimension 0"));
    buf[4] = 0;
    buf[7] = 0; /* zero images */
    CHECK(ar_idx_load_mem(&idx, buf, len) == AR_ERR_FORMAT);
    CHECK(ar_idx_load_mem(&idx, NULL, 0) == AR_ERR_ARG);
    CHECK(ar_idx_load(&idx, "/nonexistent/file") == AR_ERR_IO && strstr(idx.err, "cannot open"));
}

static void test_mnist_loader_split_and_binarize(void)
{
    static unsigned char tr[16 + 12 * 3 * 2], te[16 + 4 * 3 * 2];
    const char *dir = "/tmp/ar_test_mnist";
    char path[256];
    ar_mnist a, b, c;
    FILE *f;
    size_t k, ltr = make_idx(tr, 12, 3, 2), lte = make_idx(te, 4, 3, 2);
    int differ = 0;
    tr[16] = 0;
    tr[17] = 255;
    CHECK(system("mkdir -p /tmp/ar_test_mnist") == 0);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    f = fopen(path, "wb");
    CHECK(f && fwrite(tr, 1, ltr, f) == ltr);
    fclose(f);
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte", dir);
    f = fopen(path, "wb");
    CHECK(f && fwrite(te, 1, lte, f) == lte);
    fclose(f);
    CHECK(ar_mnist_load(&a, dir, 1, 9) == AR_OK);
    CHECK(a.n_train == 10 && a.n_valid == 2 && a.n_test == 4 && a.D == 6 && a.rows == 3);
    CHECK(a.train[0] == 0 && a.train[1] == 1);
    for (k = 0; k < 16 * 6; k++) CHECK(a.train[k] == 0 || a.train[k] == 1);
    CHECK(ar_mnist_load(&b, dir, 1, 9) == AR_OK);
    CHECK(memcmp(a.train, b.train, 16 * 6 * sizeof(float)) == 0); /* same seed, same data */
    CHECK(ar_mnist_load(&c, dir, 0, 9) == AR_OK);
    CHECK_NEAR(c.valid[0], tr[16 + 10 * 6] / 255.0, 1e-7);
    CHECK_NEAR(c.test[5], te[16 + 5] / 255.0, 1e-7);
    ar_mnist_free(&b);
    CHECK(ar_mnist_load(&b, dir, 1, 10) == AR_OK);
    for (k = 0; k < 16 * 6; k++) differ += a.train[k] != b.train[k];
    CHECK(differ > 0);
    ar_mnist_free(&a);
    ar_mnist_free(&b);
    ar_mnist_free(&c);
    CHECK(ar_mnist_load(&a, "/nonexistent", 1, 1) == AR_ERR_IO && strstr(a.err, "train-images"));
    CHECK(system("rm -rf /tmp/ar_test_mnist") == 0);
}

/* ---- model checkpoints: the generic loader, the version rule, 0.4 files ---- */

/* A call that must fail with status st and a message in o.err (cleared first). */
#define FAILS(call, st, o) ((o).err[0] = 0, (call) == (st) && (o).err[0])

/* A tiny model of every kind, with data it accepts (2 examples, at most
   2 * 16 values): the status of ar_model_init. Also used by test_core.c. */
ar_status t_tiny_model(ar_model *m, ar_kind kind, float *x);
ar_status t_tiny_model(ar_model *m, ar_kind kind, float *x)
{
    static const int ord4[4] = {2, 0, 3, 1};
    ar_model_cfg c;
    ar_status s;
    int i, D, L;
    switch (kind) {
    case AR_MADE:
        c = ar_model_default(kind, 1, 5);
        c.made.n_hidden = 2; c.made.hidden[0] = 6; c.made.hidden[1] = 4; c.made.direct = 1;
        c.made.n_masks = 3; c.made.order_agnostic = 1;
        break;
    case AR_FVSBN: c = ar_model_default(kind, 1, 4); c.order = ord4; break;
    case AR_NADE: c = ar_model_default(kind, 2, 2); c.nade.H = 3; c.order = ord4; break;
    case AR_RNADE: c = ar_model_default(kind, 1, 3); c.nade.H = 3; c.nade.K = 2; break;
    case AR_TRANSFORMER:
        c = ar_model_default(kind, 1, 4);
        c.tfm.V = 3; c.tfm.d = 8; c.tfm.heads = 2; c.tfm.layers = 1; c.tfm.ffn = 9; c.order = ord4;
        break;
    case AR_PIXELCNN: c = ar_model_default(kind, 3, 3); c.cnn.channels = 2; c.cnn.layers = 1; break;
    case AR_GATED:
        c = ar_model_default(kind, 2, 3);
        c.cnn.channels = 2; c.cnn.layers = 1; c.cnn.levels = 4; c.cnn.coords = 1;
        break;
    default: c = ar_model_default(kind, 1, 6); c.cnn.channels = 2; c.cnn.layers = 2; c.cnn.dilations = 2; break;
    }
    c.seed = 11 + kind;
    if ((s = ar_model_init(m, &c)) != AR_OK) return s;
    { /* visible weights */
        ar_rng r;
        ar_rng_seed(&r, 21 + kind);
        for (i = 0; i < m->ps.n; i++) ar_init_uniform(m->ps.t[i], &r, -0.5f, 0.5f);
    }
    D = m->D;
    L = m->levels;
    for (i = 0; i < 2 * D; i++) x[i] = L ? (float)((i * 7 + 1) % L) : 0.1f + 0.8f * (float)((i * 5) % 7) / 7;
    return AR_OK;
}

/* A checkpoint's metadata with one key set to val (NULL: removed), saved again. */
static ar_status edit_meta(ar_model *m, const unsigned char *buf, size_t len, const char *key, const char *val,
                           unsigned char **out, size_t *olen)
{
    ar_meta meta, ed;
    ar_status s;
    int i;
    ar_meta_init(&meta);
    ar_meta_init(&ed);
    if ((s = ar_params_load_mem(&m->ps, buf, len, &meta)) != AR_OK) return s; /* the same values */
    for (i = 0; i < meta.n && s == AR_OK; i++)
        if (strcmp(meta.key[i], key)) s = ar_meta_set(&ed, meta.key[i], meta.val[i]);
        else if (val) s = ar_meta_set(&ed, key, val);
    if (s == AR_OK && val && !ar_meta_get(&meta, key)) s = AR_ERR_ARG;
    if (s == AR_OK) s = ar_params_save_mem(&m->ps, &ed, out, olen);
    ar_meta_free(&meta);
    ar_meta_free(&ed);
    return s;
}

/* Every kind: save, load through the one generic call into a struct full
   of garbage (output only; this segfaulted before), the same kind,
   configuration and log-probs, the same bytes when saved again; files and
   buffers alike. */
static void test_model_roundtrip_every_kind(void)
{
    const char *path = "/tmp/ar_test_model.safetensors";
    int k;
    for (k = 0; k < AR_KIND_COUNT; k++) {
        ar_model a, b;
        float x[2 * 16], la[2], lb[2];
        unsigned char *ba, *bb;
        size_t na, nb;
        memset(&a, 0xAB, sizeof a);
        CHECK_MSG(t_tiny_model(&a, (ar_kind)k, x) == AR_OK, "%s: %s", ar_kind_name((ar_kind)k), a.err);
        CHECK(a.kind == (ar_kind)k && ar_kind_parse(ar_kind_name((ar_kind)k)) == k);
        CHECK_MSG(ar_model_log_prob(&a, x, 2, la) == AR_OK, "%s: %s", ar_kind_name((ar_kind)k), a.err);
        CHECK(ar_model_save(&a, path) == AR_OK && a.err[0] == 0);
        memset(&b, 0xAB, sizeof b);
        CHECK_MSG(ar_model_load(&b, path) == AR_OK, "%s: %s", ar_kind_name((ar_kind)k), b.err);
        CHECK(b.err[0] == 0 && b.kind == a.kind && b.D == a.D && b.rows == a.rows && b.cols == a.cols &&
              b.levels == a.levels && b.cfg.seed == a.cfg.seed && b.ps.total == a.ps.total);
        CHECK(memcmp(a.ps.x, b.ps.x, a.ps.total * sizeof(float)) == 0);
        CHECK((b.made != NULL) + (b.nade != NULL) + (b.tfm != NULL) + (b.cnn != NULL) == 1);
        CHECK(!a.cfg.order == !b.cfg.order && (!a.cfg.order || memcmp(a.cfg.order, b.cfg.order, a.D * sizeof(int)) == 0));
        CHECK(ar_model_log_prob(&b, x, 2, lb) == AR_OK && memcmp(la, lb, sizeof la) == 0);
        CHECK(ar_model_save_mem(&a, &ba, &na) == AR_OK && ar_model_save_mem(&b, &bb, &nb) == AR_OK);
        CHECK_MSG(na == nb && memcmp(ba, bb, na) == 0, "%s: a loaded model saves other bytes", ar_kind_name((ar_kind)k));
        ar_model_free(&b);
        memset(&b, 0xAB, sizeof b);
        CHECK(ar_model_load_mem(&b, ba, na) == AR_OK && ar_model_log_prob(&b, x, 2, lb) == AR_OK);
        CHECK(memcmp(la, lb, sizeof la) == 0);
        ar_model_free(&b);
        ar_model_free(&b); /* freed twice: fine */
        memset(&b, 0xAB, sizeof b);
        CHECK(FAILS(ar_model_load(&b, "/nonexistent/dir/m.safetensors"), AR_ERR_IO, b) && b.ps.x == NULL);
        ar_model_free(&b); /* a failed load holds no model */
        memset(&b, 0xAB, sizeof b);
        CHECK(FAILS(ar_model_load_mem(&b, ba, na - 1), AR_ERR_FORMAT, b) && b.ps.x == NULL);
        ar_model_free(&b);
        CHECK(FAILS(ar_model_save(&a, "/nonexistent/dir/m.safetensors"), AR_ERR_IO, a));
        ar_free(ba);
        ar_free(bb);
        ar_model_free(&a);
    }
    remove(path);
    CHECK(ar_kind_name((ar_kind)AR_KIND_COUNT) == NULL && ar_kind_name((ar_kind)-1) == NULL);
    CHECK(ar_kind_parse("cnn") == -1 && ar_kind_parse("") == -1 && ar_kind_parse(NULL) == -1);
}

/* Fields a kind does not use (another family's, WaveNet's dilations in a
   PixelCNN, the 2-D kernels in a WaveNet) may hold anything: whatever init
   accepts saves to a file that loads as the same model. */
static void test_model_roundtrip_ignored_fields(void)
{
    int k, v;
    for (k = 0; k < AR_KIND_COUNT; k++)
        for (v = 0; v < 2; v++) {
            ar_model_cfg c = ar_model_default((ar_kind)k, 2, 3);
            ar_model a, b;
            unsigned char *buf;
            size_t len;
            float x[2 * 6], la[2], lb[2];
            ar_rng r;
            int i;
            c.made.hidden[0] = 4; c.nade.H = 3; c.nade.K = 2;
            c.tfm.V = 3; c.tfm.d = 8; c.tfm.heads = 2; c.tfm.ffn = 8; c.tfm.layers = 1;
            c.cnn.channels = 2; c.cnn.layers = 1;
            if (k != AR_MADE && k != AR_FVSBN) {
                c.made.n_hidden = v ? -1 : 99; c.made.n_masks = v ? 0 : -3; c.made.direct = 7; c.made.hidden[0] = -5;
            }
            if (k != AR_NADE && k != AR_RNADE) { c.nade.H = -1; c.nade.K = v ? 99 : -1; c.nade.transform = 5; }
            if (k != AR_TRANSFORMER) {
                c.tfm.V = -1; c.tfm.d = 3; c.tfm.heads = 0; c.tfm.layers = 99; c.tfm.ffn = -2; c.tfm.pos = 7;
            }
            if (k < AR_PIXELCNN) {
                c.cnn.levels = v ? 0 : 70000; c.cnn.channels = -1; c.cnn.layers = 999; c.cnn.coords = 5;
            }
            if (k != AR_WAVENET) c.cnn.dilations = v ? -1 : 21;
            else { c.cnn.kernel = v ? -1 : 4; c.cnn.first_kernel = v ? 99 : 2; }
            if (ar_model_init(&a, &c) != AR_OK) continue; /* refusing them is fine too */
            ar_rng_seed(&r, 5);
            for (i = 0; i < 12; i++) x[i] = a.levels ? (float)ar_rng_below(&r, (uint32_t)a.levels) : 0.3f;
            {
                ar_status ss = ar_model_save_mem(&a, &buf, &len), sl = AR_ERR_ARG, s1 = AR_ERR_ARG, s2 = AR_ERR_ARG;
                char err[AR_ERR_LEN];
                memset(&b, 0xAB, sizeof b);
                if (ss == AR_OK) sl = ar_model_load_mem(&b, buf, len);
                memcpy(err, b.err, sizeof err);
                if (sl == AR_OK) {
                    s1 = ar_model_log_prob(&a, x, 2, la);
                    s2 = ar_model_log_prob(&b, x, 2, lb);
                }
                if (ss == AR_OK) ar_free(buf);
                ar_model_free(&a);
                ar_model_free(&b);
                CHECK_MSG(ss == AR_OK && sl == AR_OK, "%s (variant %d) saves a file it cannot load: %s",
                          ar_kind_name((ar_kind)k), v, err);
                CHECK(s1 == AR_OK && s2 == AR_OK && memcmp(la, lb, sizeof la) == 0);
            }
        }
}

/* Files that are not model checkpoints, or of no known kind. */
static void test_model_load_not_a_model(void)
{
    ar_params ps;
    ar_meta meta;
    ar_model m;
    unsigned char *buf;
    size_t len;
    CHECK(make_params(&ps, 1));
    ar_meta_init(&meta);
    CHECK(ar_params_save_mem(&ps, NULL, &buf, &len) == AR_OK);
    memset(&m, 0xAB, sizeof m); /* no ar.model, no ar.version: not a model (or of no known version) */
    CHECK((FAILS(ar_model_load_mem(&m, buf, len), AR_ERR_FORMAT, m) ||
           FAILS(ar_model_load_mem(&m, buf, len), AR_ERR_VERSION, m)) && m.ps.x == NULL);
    ar_free(buf);
    CHECK(ar_meta_set(&meta, "ar.model", "bogus") == AR_OK && ar_meta_set(&meta, "ar.version", ar_version()) == AR_OK);
    CHECK(ar_params_save_mem(&ps, &meta, &buf, &len) == AR_OK);
    CHECK(FAILS(ar_model_load_mem(&m, buf, len), AR_ERR_FORMAT, m) && strstr(m.err, "bogus"));
    ar_free(buf);
    CHECK(ar_meta_set(&meta, "ar.model", "optim") == AR_OK); /* an optimizer state file */
    CHECK(ar_params_save_mem(&ps, &meta, &buf, &len) == AR_OK);
    CHECK(FAILS(ar_model_load_mem(&m, buf, len), AR_ERR_FORMAT, m));
    ar_free(buf);
    CHECK(FAILS(ar_model_load_mem(&m, NULL, 10), AR_ERR_ARG, m) || FAILS(ar_model_load_mem(&m, NULL, 10), AR_ERR_FORMAT, m));
    CHECK(ar_model_load_mem(NULL, buf, len) == AR_ERR_ARG && ar_model_load(NULL, "x") == AR_ERR_ARG);
    CHECK(FAILS(ar_model_load(&m, NULL), AR_ERR_ARG, m));
    ar_model_free(&m);
    ar_meta_free(&meta);
    ar_params_free(&ps);
}

/* Version rule: MAJOR.MINOR.PATCH with this major and a minor no newer
   (while the major is 0, minor 4 or later). */
static void test_model_version_rule(void)
{
    static const char *const bad[] = {"0.0.1", "9.0.0", "0.6.0", "x.y.z", "", "0.5", "0.5.0.1", "1.5.0", "0.3.9",
                                      "0.5.x", "-0.5.0", NULL /* absent */};
    static const char *const good[] = {"0.5.0", "0.5.17", "0.5.1"};
    int k;
    size_t i;
    for (k = 0; k < AR_KIND_COUNT; k++) {
        ar_model a, b;
        float x[2 * 16], la[2], lb[2];
        unsigned char *buf, *ed;
        size_t len, elen;
        CHECK(t_tiny_model(&a, (ar_kind)k, x) == AR_OK);
        CHECK(ar_model_log_prob(&a, x, 2, la) == AR_OK && ar_model_save_mem(&a, &buf, &len) == AR_OK);
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            CHECK(edit_meta(&a, buf, len, "ar.version", bad[i], &ed, &elen) == AR_OK);
            memset(&b, 0xAB, sizeof b);
            CHECK_MSG(FAILS(ar_model_load_mem(&b, ed, elen), AR_ERR_VERSION, b) && b.ps.x == NULL,
                      "%s, ar.version \"%s\": status and message '%s'", ar_kind_name((ar_kind)k),
                      bad[i] ? bad[i] : "(absent)", b.err);
            ar_free(ed);
        }
        for (i = 0; i < sizeof good / sizeof good[0]; i++) {
            CHECK(edit_meta(&a, buf, len, "ar.version", good[i], &ed, &elen) == AR_OK);
            memset(&b, 0xAB, sizeof b);
            CHECK_MSG(ar_model_load_mem(&b, ed, elen) == AR_OK, "%s, ar.version %s: %s", ar_kind_name((ar_kind)k),
                      good[i], b.err);
            CHECK(ar_model_log_prob(&b, x, 2, lb) == AR_OK && memcmp(la, lb, sizeof la) == 0);
            ar_model_free(&b);
            ar_free(ed);
        }
        /* checkpoints are self-contained: the seed in the file is not used
           to rebuild anything (MADE's masks and orderings are stored) */
        CHECK(edit_meta(&a, buf, len, "seed", "987654321", &ed, &elen) == AR_OK);
        memset(&b, 0xAB, sizeof b);
        CHECK_MSG(ar_model_load_mem(&b, ed, elen) == AR_OK, "%s: %s", ar_kind_name((ar_kind)k), b.err);
        CHECK_MSG(ar_model_log_prob(&b, x, 2, lb) == AR_OK && memcmp(la, lb, sizeof la) == 0,
                  "%s: another seed in the file loads another model", ar_kind_name((ar_kind)k));
        ar_model_free(&b);
        ar_free(ed);
        ar_free(buf);
        ar_model_free(&a);
    }
}

/* Every truncation and every single-byte change of a model checkpoint of
   each kind either loads or fails with a message, holding no model then;
   under the sanitizers nothing is read out of bounds. */
static void test_model_truncated_and_corrupted(void)
{
    int k;
    for (k = 0; k < AR_KIND_COUNT; k++) {
        ar_model a, b;
        float x[2 * 16], lp[2];
        unsigned char *buf, *c;
        size_t len, i;
        CHECK(t_tiny_model(&a, (ar_kind)k, x) == AR_OK);
        CHECK(ar_model_save_mem(&a, &buf, &len) == AR_OK);
        c = (unsigned char *)malloc(len);
        CHECK(c != NULL);
        for (i = 0; i < len; i += 1 + i / 64) { /* every byte of the header region, then sparser */
            memset(&b, 0xAB, sizeof b);
            CHECK_MSG(ar_model_load_mem(&b, buf, i) != AR_OK && b.err[0] && b.ps.x == NULL, "%s cut at %zu",
                      ar_kind_name((ar_kind)k), i);
            ar_model_free(&b);
        }
        for (i = 0; i < len; i += 1 + i / 256) {
            ar_status s;
            memcpy(c, buf, len);
            c[i] ^= 0x5a;
            memset(&b, 0xAB, sizeof b);
            s = ar_model_load_mem(&b, c, len);
            if (s == AR_OK) { /* a model it accepts works */
                s = ar_model_log_prob(&b, x, 2, lp);
                CHECK_MSG(s == AR_OK || b.err[0], "%s byte %zu: log_prob status %d, no message", ar_kind_name((ar_kind)k),
                          i, s);
            } else {
                CHECK_MSG(b.err[0] && b.ps.x == NULL, "%s byte %zu: status %d, message '%s'", ar_kind_name((ar_kind)k), i,
                          s, b.err);
            }
            ar_model_free(&b);
        }
        free(c);
        ar_free(buf);
        ar_model_free(&a);
    }
}

/* 0.4.1 checkpoints written by hand: the parameter names and shapes and
   the __metadata__ keys that 0.4 wrote, values from a fixed pattern. */
typedef struct { const char *name; int nd, shape[4]; } v04_param;
typedef struct {
    const char *meta; /* "key=value;..." (ar.version added) */
    int np;
    v04_param p[20];
} v04_file;

static const v04_file v04_files[] = {
    {"ar.model=made;D=5;hidden=4,3;direct=1;n_masks=3;order_agnostic=1;seed=7", 7,
     {{"W0", 2, {4, 5}}, {"b0", 1, {4}}, {"W1", 2, {3, 4}}, {"b1", 1, {3}}, {"V", 2, {5, 3}}, {"c", 1, {5}},
      {"A", 2, {5, 5}}}},
    {"ar.model=fvsbn;D=4;hidden=;direct=1;n_masks=1;order_agnostic=0;seed=3;order=2,0,3,1", 2,
     {{"c", 1, {4}}, {"A", 2, {4, 4}}}},
    {"ar.model=nade;D=4;H=3;K=0;seed=5;order=3,1,0,2", 4,
     {{"W", 2, {4, 3}}, {"c", 1, {3}}, {"V", 2, {4, 3}}, {"b", 1, {4}}}},
    {"ar.model=rnade;D=3;H=3;K=2;seed=6", 4,
     {{"W", 2, {3, 3}}, {"c", 1, {3}}, {"V", 3, {3, 6, 3}}, {"b", 2, {3, 6}}}},
    {"ar.model=cnn;kind=0;H=3;W=3;levels=1;channels=2;layers=1;kernel=3;first_kernel=3;dilations=1;coords=0;seed=1", 8,
     {{"l0.W", 4, {2, 3, 3, 1}}, {"l0.b", 1, {2}}, {"l1.W", 4, {2, 3, 3, 2}}, {"l1.b", 1, {2}},
      {"head1.W", 4, {2, 1, 1, 2}}, {"head1.b", 1, {2}}, {"head2.W", 4, {1, 1, 1, 2}}, {"head2.b", 1, {1}}}},
    {"ar.model=cnn;kind=1;H=2;W=3;levels=4;channels=2;layers=1;kernel=3;first_kernel=3;dilations=1;coords=1;seed=2", 18,
     {{"l0.v.W", 4, {4, 2, 3, 3}}, {"l0.v.b", 1, {4}}, {"l0.h.W", 4, {4, 1, 2, 3}}, {"l0.h.b", 1, {4}},
      {"l0.link.W", 4, {4, 1, 1, 4}}, {"l0.link.b", 1, {4}}, {"l1.v.W", 4, {4, 2, 3, 2}}, {"l1.v.b", 1, {4}},
      {"l1.h.W", 4, {4, 1, 2, 2}}, {"l1.h.b", 1, {4}}, {"l1.link.W", 4, {4, 1, 1, 4}}, {"l1.link.b", 1, {4}},
      {"l1.res.W", 4, {2, 1, 1, 2}}, {"l1.res.b", 1, {2}}, {"head1.W", 4, {2, 1, 1, 2}}, {"head1.b", 1, {2}},
      {"head2.W", 4, {4, 1, 1, 2}}, {"head2.b", 1, {4}}}},
    {"ar.model=cnn;kind=2;H=1;W=6;levels=1;channels=2;layers=2;kernel=3;first_kernel=3;dilations=2;coords=0;seed=3", 18,
     {{"l0.W", 4, {2, 1, 2, 1}}, {"l0.b", 1, {2}}, {"l1.W", 4, {4, 1, 2, 2}}, {"l1.b", 1, {4}},
      {"l1.res.W", 4, {2, 1, 1, 2}}, {"l1.res.b", 1, {2}}, {"l1.skip.W", 4, {2, 1, 1, 2}}, {"l1.skip.b", 1, {2}},
      {"l2.W", 4, {4, 1, 2, 2}}, {"l2.b", 1, {4}}, {"l2.res.W", 4, {2, 1, 1, 2}}, {"l2.res.b", 1, {2}},
      {"l2.skip.W", 4, {2, 1, 1, 2}}, {"l2.skip.b", 1, {2}}, {"head1.W", 4, {2, 1, 1, 2}}, {"head1.b", 1, {2}},
      {"head2.W", 4, {1, 1, 1, 2}}, {"head2.b", 1, {1}}}},
    {"ar.model=transformer;V=3;T=4;d=4;heads=2;layers=1;ffn=5;pos=0;seed=1", 18,
     {{"tok", 2, {3, 4}}, {"pos", 2, {4, 4}}, {"h0.ln1.g", 1, {4}}, {"h0.ln1.b", 1, {4}}, {"h0.qkv.W", 2, {12, 4}},
      {"h0.qkv.b", 1, {12}}, {"h0.o.W", 2, {4, 4}}, {"h0.o.b", 1, {4}}, {"h0.ln2.g", 1, {4}}, {"h0.ln2.b", 1, {4}},
      {"h0.mlp1.W", 2, {5, 4}}, {"h0.mlp1.b", 1, {5}}, {"h0.mlp2.W", 2, {4, 5}}, {"h0.mlp2.b", 1, {4}},
      {"lnf.g", 1, {4}}, {"lnf.b", 1, {4}}, {"head.W", 2, {3, 4}}, {"head.b", 1, {3}}}},
};
enum { V04_FILES = sizeof v04_files / sizeof v04_files[0] };

/* Two examples per file, D values each (reals for RNADE). */
static const float v04_x[V04_FILES][2][9] = {
    {{1, 0, 1, 1, 0}, {0, 1, 1, 0, 1}},
    {{1, 1, 0, 1}, {0, 0, 1, 0}},
    {{0, 1, 1, 0}, {1, 0, 1, 1}},
    {{0.25f, -0.75f, 1.5f}, {0.9f, 0.1f, 0.5f}},
    {{1, 0, 1, 1, 0, 0, 1, 1, 1}, {0, 0, 0, 1, 0, 1, 0, 1, 0}},
    {{0, 3, 1, 2, 2, 0}, {3, 3, 0, 1, 2, 1}},
    {{1, 0, 0, 1, 1, 0}, {0, 1, 1, 1, 0, 0}},
    {{0, 1, 1, 0}, {1, 1, 0, 0}},
};

/* The file as 0.4.1 wrote it, into *buf (ar_free). */
static ar_status v04_write(const v04_file *f, unsigned char **buf, size_t *len)
{
    ar_params ps;
    ar_meta meta;
    char kv[256], *p, *eq;
    size_t i;
    int k;
    ar_status s = AR_OK;
    ar_params_init(&ps);
    ar_meta_init(&meta);
    for (k = 0; k < f->np; k++)
        if (!ar_params_add(&ps, f->p[k].name, f->p[k].nd, f->p[k].shape)) s = AR_ERR_ARG;
    if (s == AR_OK) s = ar_params_alloc(&ps);
    for (i = 0; s == AR_OK && i < ps.total; i++) ps.x[i] = (float)((int)((i * 37 + 13) % 101) - 45) / 60.0f;
    snprintf(kv, sizeof kv, "%s", f->meta);
    for (p = kv; s == AR_OK && p && *p; p = eq) {
        char *end = strchr(p, ';');
        if (end) *end = 0;
        eq = strchr(p, '=');
        *eq = 0;
        s = ar_meta_set(&meta, p, eq + 1);
        eq = end ? end + 1 : NULL;
    }
    if (s == AR_OK) s = ar_meta_set(&meta, "ar.version", "0.4.1");
    if (s == AR_OK) s = ar_params_save_mem(&ps, &meta, buf, len);
    ar_meta_free(&meta);
    ar_params_free(&ps);
    return s;
}

/* Their log-probs as ar.h 0.4.1 computed them (ar_made_log_prob,
   ar_nade_log_prob, -ar_cnn_nll). */
static const double v04_lp[V04_FILES - 1][2] = {
    {-2.84009528, -4.05518818}, {-3.90369272, -2.62086773}, {-2.57211065, -2.42621851}, {-4.46019602, -4.30400467},
    {-6.39785147, -6.10501385}, {-10.2077923, -8.33529186}, {-4.18137836, -4.21232367},
};

/* 0.4.1 checkpoints load (MADE rebuilding its masks from the seed, as 0.4
   did; RNADE without a transform, as 0.4 had none) and give 0.4's
   log-probs; saved again they are 0.5 files of the same model. A 0.4
   Transformer (its start token was a user token) fails with
   AR_ERR_VERSION and says why. */
static void test_model_loads_0_4(void)
{
    static const ar_kind kind[V04_FILES] = {AR_MADE, AR_FVSBN, AR_NADE, AR_RNADE, AR_PIXELCNN, AR_GATED, AR_WAVENET,
                                            AR_TRANSFORMER};
    static const int D[V04_FILES] = {5, 4, 4, 3, 9, 6, 6, 4};
    int f;
    for (f = 0; f < V04_FILES; f++) {
        ar_model m, m2;
        unsigned char *buf, *buf2;
        size_t len, len2;
        float x[18], lp[2], lp2[2];
        CHECK(v04_write(&v04_files[f], &buf, &len) == AR_OK);
        memset(&m, 0xAB, sizeof m);
        if (kind[f] == AR_TRANSFORMER) {
            CHECK_MSG(FAILS(ar_model_load_mem(&m, buf, len), AR_ERR_VERSION, m) && strstr(m.err, "0.4") &&
                      m.ps.x == NULL, "0.4 transformer: '%s'", m.err);
            ar_free(buf);
            continue;
        }
        CHECK_MSG(ar_model_load_mem(&m, buf, len) == AR_OK, "0.4 %s: %s", ar_kind_name(kind[f]), m.err);
        CHECK_MSG(m.kind == kind[f] && m.D == D[f], "0.4 file %d: kind %d, D %d", f, m.kind, m.D);
        if (kind[f] == AR_RNADE) CHECK(m.cfg.nade.transform == AR_TRANSFORM_NONE && m.cfg.nade.K == 2);
        if (kind[f] == AR_MADE) CHECK(m.cfg.made.n_masks == 3 && m.cfg.made.direct == 1 && m.cfg.made.n_hidden == 2);
        if (kind[f] == AR_FVSBN || kind[f] == AR_NADE) CHECK(m.cfg.order != NULL);
        if (kind[f] == AR_GATED) CHECK(m.rows == 2 && m.cols == 3 && m.cfg.cnn.levels == 4 && m.cfg.cnn.coords == 1);
        memcpy(x, v04_x[f][0], (size_t)D[f] * sizeof(float));
        memcpy(x + D[f], v04_x[f][1], (size_t)D[f] * sizeof(float));
        CHECK_MSG(ar_model_log_prob(&m, x, 2, lp) == AR_OK, "0.4 %s: %s", ar_kind_name(kind[f]), m.err);
        CHECK_MSG(fabs(lp[0] - v04_lp[f][0]) < 1e-4 && fabs(lp[1] - v04_lp[f][1]) < 1e-4,
                  "0.4 %s: log-probs %.7g %.7g, 0.4 computed %.7g %.7g", ar_kind_name(kind[f]), lp[0], lp[1],
                  v04_lp[f][0], v04_lp[f][1]);
        CHECK(ar_model_save_mem(&m, &buf2, &len2) == AR_OK);
        memset(&m2, 0xAB, sizeof m2);
        CHECK_MSG(ar_model_load_mem(&m2, buf2, len2) == AR_OK, "%s", m2.err);
        CHECK(ar_model_log_prob(&m2, x, 2, lp2) == AR_OK && memcmp(lp, lp2, sizeof lp) == 0);
        ar_free(buf);
        ar_free(buf2);
        ar_model_free(&m);
        ar_model_free(&m2);
    }
}

void tests_io(void)
{
    t_run("io/safetensors_roundtrip_bit_exact", test_safetensors_roundtrip_bit_exact);
    t_run("io/safetensors_file_roundtrip", test_safetensors_file_roundtrip);
    t_run("io/safetensors_rejects_bad_headers", test_safetensors_rejects_bad_headers);
    t_run("io/safetensors_truncated_and_corrupted", test_safetensors_truncated_and_corrupted);
    t_run("io/meta_limits", test_meta_limits);
    t_run("io/idx_valid_and_invalid", test_idx_valid_and_invalid);
    t_run("io/mnist_loader_split_and_binarize", test_mnist_loader_split_and_binarize);
    t_run("io/model_roundtrip_every_kind", test_model_roundtrip_every_kind);
    t_run("io/model_roundtrip_ignored_fields", test_model_roundtrip_ignored_fields);
    t_run("io/model_load_not_a_model", test_model_load_not_a_model);
    t_run("io/model_version_rule", test_model_version_rule);
    t_run("io/model_truncated_and_corrupted", test_model_truncated_and_corrupted);
    t_run("io/model_loads_0_4", test_model_loads_0_4);
}
