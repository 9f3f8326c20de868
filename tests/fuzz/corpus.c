/* Writes the seed corpus: valid files of each kind and a few corrupted
   ones, into <dir>/{safetensors,idx,model}/, and API programs for the
   api target into <dir>/api/. */
#define AR_IMPLEMENTATION
#include "targets.h"
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

/* A small model of kind k saved at tmp, then as model inputs. */
static void put_model(const char *dir, const char *name, const char *tmp, ar_model_cfg *c)
{
    ar_model m;
    if (ar_model_init(&m, c) != AR_OK || ar_model_save(&m, tmp) != AR_OK) {
        fprintf(stderr, "%s: %s\n", name, m.err);
        exit(1);
    }
    ar_model_free(&m);
    put_saved(dir, name, tmp);
}

/* API programs: 12-byte instructions, opcode then arguments (0: the
   ordinary choice; see fuzz_api). */
typedef struct { unsigned char b[64 * FZ_REC]; size_t n; } program;
static void ins(program *p, int op, int a0, int a1, int a2, int a3)
{
    unsigned char *r = p->b + p->n;
    if (p->n + FZ_REC > sizeof p->b) exit(1);
    memset(r, 0, FZ_REC);
    r[0] = (unsigned char)op; r[1] = (unsigned char)a0; r[2] = (unsigned char)a1;
    r[3] = (unsigned char)a2; r[4] = (unsigned char)a3;
    p->n += FZ_REC;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "corpus";
    char tmp[512];
    unsigned char *buf, idx[16 + 2 * 3 * 3];
    size_t len, i;
    ar_params ps;
    ar_meta meta;
    int s1[2] = {3, 4}, s2[1] = {3}, k;
    static const int order[6] = {5, 0, 4, 1, 3, 2};
    ar_model_cfg c;
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
    /* model checkpoints, small, of every kind */
    snprintf(tmp, sizeof tmp, "%s/.tmp.safetensors", dir);
    c = ar_model_default(AR_MADE, 2, 3);
    c.made.n_hidden = 2; c.made.hidden[0] = 5; c.made.hidden[1] = 4; c.made.direct = 1; c.made.n_masks = 2;
    c.order = order;
    put_model(dir, "made", tmp, &c);
    c = ar_model_default(AR_MADE, 1, 6);
    c.made.hidden[0] = 4; c.made.n_masks = 3; c.made.order_agnostic = 1;
    put_model(dir, "made-agnostic", tmp, &c);
    c = ar_model_default(AR_FVSBN, 1, 5);
    put_model(dir, "fvsbn", tmp, &c);
    c = ar_model_default(AR_NADE, 1, 5);
    c.nade.H = 3;
    put_model(dir, "nade", tmp, &c);
    c = ar_model_default(AR_RNADE, 1, 4);
    c.nade.H = 3; c.nade.K = 2;
    put_model(dir, "rnade", tmp, &c);
    c.nade.transform = AR_TRANSFORM_NONE;
    put_model(dir, "rnade-none", tmp, &c);
    c = ar_model_default(AR_TRANSFORMER, 1, 6);
    c.tfm.V = 3; c.tfm.d = 4; c.tfm.heads = 2; c.tfm.layers = 1; c.tfm.ffn = 5;
    put_model(dir, "transformer", tmp, &c);
    c.order = order; c.tfm.pos = AR_POS_LEARNED;
    put_model(dir, "transformer-order", tmp, &c);
    for (k = 0; k < 3; k++) {
        static const char *const names[3] = {"pixelcnn", "gated", "wavenet"};
        c = ar_model_default((ar_kind)(AR_PIXELCNN + k), 3, 4);
        c.cnn.channels = 2; c.cnn.layers = 1; c.cnn.first_kernel = 3; c.cnn.dilations = 2;
        c.cnn.levels = k == 1 ? 4 : 1;
        put_model(dir, names[k], tmp, &c);
    }
    remove(tmp);
    /* API programs: every call once on a model of each kind, then on the freed model */
    for (k = 0; k < AR_KIND_COUNT; k++) {
        program p;
        char name[32];
        p.n = 0;
        ins(&p, FZ_INIT, 0, k, 0, 0);
        ins(&p, FZ_NLL, 0, 0, 0, 0);
        ins(&p, FZ_BACKWARD, 0, 0, 0, 0);
        ins(&p, FZ_OPTIM, 0, 0, 0, 0);
        ins(&p, FZ_LOGPROB, 0, 0, 0, 0);
        ins(&p, FZ_SAMPLE, 0, 0, 0, 0);
        ins(&p, FZ_SAMPLE, 0, 0, 2, 1);       /* temperature 0.5, top-k 1 */
        ins(&p, FZ_SAVELOAD, 0, 1, 2, 0);     /* save slot 0, load into slot 1 */
        ins(&p, FZ_BIAS, 0, 0, 0, 0);
        ins(&p, FZ_SETMASK, 0, 1, 0, 0);
        ins(&p, FZ_MADELP, 0, 0, 0, 0);
        ins(&p, FZ_MADELOGITS, 0, 0, 0, 0);
        ins(&p, FZ_CACHEINIT, 0, 0, 0, 0);
        ins(&p, FZ_STEP, 0, 0, 0, 0);
        ins(&p, FZ_STEP, 0, 0, 0, 0);
        ins(&p, FZ_STEP, 1, 0, 0, 0);         /* slot 1: the loaded copy */
        ins(&p, FZ_TFMLOGITS, 0, 2, 0, 1);
        ins(&p, FZ_CNNLOGITS, 0, 0, 0, 0);
        ins(&p, FZ_SAMPLELOGITS, 0, 0, 0, 0);
        ins(&p, FZ_FREE, 0, 0, 0, 0);
        ins(&p, FZ_LOGPROB, 0, 0, 0, 0);      /* a freed model */
        ins(&p, FZ_STEP, 0, 0, 0, 0);         /* its cache */
        ins(&p, FZ_CACHEFREE, 0, 0, 0, 0);
        snprintf(name, sizeof name, "calls-%s", ar_kind_name((ar_kind)k));
        put(dir, "api", name, p.b, p.n);
    }
    { /* a cache of one transformer used with another */
        program p;
        p.n = 0;
        ins(&p, FZ_INIT, 0, AR_TRANSFORMER, 0, 0);
        ins(&p, FZ_INIT, 1, AR_TRANSFORMER, 1, 2);
        ins(&p, FZ_CACHEINIT, 0, 0, 0, 0);
        ins(&p, FZ_STEP, 1, 0, 0, 0);
        ins(&p, FZ_STEP, 0, 0, 0, 0);
        ins(&p, FZ_INIT, 0, AR_MADE, 0, 0);
        ins(&p, FZ_STEP, 0, 0, 0, 0);
        put(dir, "api", "cache-mismatch", p.b, p.n);
    }
    { /* graph ops on a few tensors */
        program p;
        int op;
        p.n = 0;
        ins(&p, FZ_GRAPHOP, 0, 0, 0, 1);
        ins(&p, FZ_GRAPHOP, 1, 0, 0, 2);
        for (op = 2; op < 34; op++) ins(&p, FZ_GRAPHOP, op, op % 8, (op + 1) % 8, op);
        ins(&p, FZ_RESET, 0, 0, 0, 0);
        put(dir, "api", "graph-ops", p.b, p.n);
    }
    return 0;
}
