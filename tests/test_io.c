/* Checkpoints (safetensors) and IDX/MNIST reading, including bad files. */
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
    CHECK(ar_idx_load_mem(&idx, NULL, 0) == AR_ERR_FORMAT);
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

void tests_io(void)
{
    t_run("io/safetensors_roundtrip_bit_exact", test_safetensors_roundtrip_bit_exact);
    t_run("io/safetensors_file_roundtrip", test_safetensors_file_roundtrip);
    t_run("io/safetensors_rejects_bad_headers", test_safetensors_rejects_bad_headers);
    t_run("io/safetensors_truncated_and_corrupted", test_safetensors_truncated_and_corrupted);
    t_run("io/meta_limits", test_meta_limits);
    t_run("io/idx_valid_and_invalid", test_idx_valid_and_invalid);
    t_run("io/mnist_loader_split_and_binarize", test_mnist_loader_split_and_binarize);
}
