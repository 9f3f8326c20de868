/* Writes the seed corpus: valid files of each kind and a few corrupted
   ones, into <dir>/{safetensors,idx,model}/. */
#define AR_IMPLEMENTATION
#include "../../ar.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(const char *dir, const char *kind, const char *name, const unsigned char *buf, size_t len)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s/%s", dir, kind, name);
    f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) { fprintf(stderr, "cannot write %s\n", path); exit(1); }
    fclose(f);
}

/* The file and two damaged copies: truncated, and a flipped byte in the header. */
static void put3(const char *dir, const char *kind, const char *name, unsigned char *buf, size_t len)
{
    char n[64];
    put(dir, kind, name, buf, len);
    snprintf(n, sizeof n, "%s-truncated", name);
    put(dir, kind, n, buf, len / 2);
    buf[len > 20 ? 20 : len - 1] ^= 0x41;
    snprintf(n, sizeof n, "%s-flipped", name);
    put(dir, kind, n, buf, len);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;
    if (!f) exit(1);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc((size_t)n);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) exit(1);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* The checkpoint just saved at tmp, and its damaged copies, as model inputs. */
static void put_saved(const char *dir, const char *name, const char *tmp)
{
    size_t len;
    unsigned char *buf = slurp(tmp, &len);
    put3(dir, "model", name, buf, len);
    free(buf);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "corpus";
    char tmp[512];
    unsigned char *buf, idx[16 + 2 * 3 * 3];
    size_t len, i;
    ar_params ps;
    ar_meta meta;
    int s1[2] = {3, 4}, s2[1] = {3}, order[6] = {5, 0, 4, 1, 3, 2};
    ar_made m;
    ar_made_cfg mc;
    ar_nade n;
    ar_nade_cfg nc;
    /* safetensors for the fuzz target's fixed parameters */
    ar_params_init(&ps);
    ar_params_add(&ps, "layer.W", 2, s1);
    ar_params_add(&ps, "layer.b", 1, s2);
    ar_params_alloc(&ps);
    ar_meta_init(&meta);
    ar_meta_set(&meta, "note", "seed");
    ar_params_save_mem(&ps, &meta, &buf, &len);
    put3(dir, "safetensors", "valid", buf, len);
    ar_free(buf);
    ar_meta_free(&meta);
    ar_params_free(&ps);
    /* IDX: 2 images of 3x3 */
    memset(idx, 0, sizeof idx);
    idx[2] = 8; idx[3] = 3; idx[7] = 2; idx[11] = 3; idx[15] = 3;
    for (i = 16; i < sizeof idx; i++) idx[i] = (unsigned char)(i * 29);
    put3(dir, "idx", "valid", idx, sizeof idx);
    /* model checkpoints, small */
    snprintf(tmp, sizeof tmp, "%s/.tmp.safetensors", dir);
    mc = ar_made_default(6);
    mc.n_hidden = 2; mc.hidden[0] = 5; mc.hidden[1] = 4; mc.direct = 1; mc.n_masks = 2; mc.order = order;
    ar_made_init(&m, &mc);
    ar_made_save(&m, tmp);
    ar_made_free(&m);
    put_saved(dir, "made", tmp);
    mc = ar_fvsbn_default(5);
    ar_made_init(&m, &mc);
    ar_made_save(&m, tmp);
    ar_made_free(&m);
    put_saved(dir, "fvsbn", tmp);
    nc = ar_rnade_default(4, 2);
    nc.H = 3;
    ar_nade_init(&n, &nc);
    ar_nade_save(&n, tmp);
    ar_nade_free(&n);
    put_saved(dir, "rnade", tmp);
    nc = ar_nade_default(5);
    nc.H = 3;
    ar_nade_init(&n, &nc);
    ar_nade_save(&n, tmp);
    ar_nade_free(&n);
    put_saved(dir, "nade", tmp);
    {
        ar_tfm t;
        ar_tfm_cfg tc = ar_tfm_default(3, 6);
        tc.d = 4; tc.heads = 2; tc.layers = 1; tc.ffn = 5;
        ar_tfm_init(&t, &tc);
        ar_tfm_save(&t, tmp);
        ar_tfm_free(&t);
        put_saved(dir, "transformer", tmp);
    }
    {
        static const int order[6] = {5, 0, 4, 1, 3, 2};
        ar_tfm t;
        ar_tfm_cfg tc = ar_tfm_default(3, 6);
        tc.d = 4; tc.heads = 2; tc.layers = 1; tc.ffn = 5; tc.order = order;
        ar_tfm_init(&t, &tc);
        ar_tfm_save(&t, tmp);
        ar_tfm_free(&t);
        put_saved(dir, "transformer-order", tmp);
    }
    {
        int k;
        for (k = 0; k < 3; k++) {
            static const char *const names[3] = {"pixelcnn", "gated", "wavenet"};
            ar_cnn c;
            ar_cnn_cfg cc = ar_cnn_default(k, 3, 4, 1);
            cc.channels = 2; cc.first_kernel = 3; cc.dilations = 2; cc.levels = k == 1 ? 4 : 1;
            ar_cnn_init(&c, &cc);
            ar_cnn_save(&c, tmp);
            ar_cnn_free(&c);
            put_saved(dir, names[k], tmp);
        }
    }
    remove(tmp);
    return 0;
}
