/* Train an autoregressive model on binarized MNIST, report test NLL, write
   samples.

   train [--model made|fvsbn|nade|rnade|tfm|pixelcnn|gated|wavenet]
         [--epochs E] [--batch B] [--lr LR] [--lr-decay G] [--optim adam|adagrad]
         [--patience P] [--seed S] [--data DIR] [--out DIR] [--resume] [--max-steps N]
         and the model's own flags (--help lists them all)

   Trains on the 50k training split (Adam, or Adagrad), keeps the weights
   with the best validation NLL (with K > 1 MADE masks: under mask set 0, so
   epochs compare; checkpoint <out>/<model>.safetensors), stops after
   `patience` epochs without improvement, then reports the test NLL in nats
   per example and bits per dimension (for K > 1 masks: the ensemble over
   all K) and writes <out>/<model>-samples.png and <model>-probs.png (the
   conditional probabilities used while sampling; completions of the top
   half for the Transformer and the convolutional models, <model>-completions
   .png instead). The learning rate is multiplied by G after every epoch and
   halves after every 4 epochs without improvement. The whole training
   state (weights, Adam moments, learning rate, random streams, position in
   the epoch) goes to <model>-last.safetensors and <model>-last.opt
   .safetensors after every epoch but the last and when SIGINT/SIGTERM (or
   --max-steps N) stops the run after the current step (written under
   -next names, then renamed: a kill mid-save loses nothing); a run that
   completes removes them.
   --resume continues from that state bit for bit (with --lr, at that rate
   from there on), or, when there is none, starts from the best checkpoint
   with a fresh optimizer. A NaN/Inf loss or gradient stops the run with a
   message naming the step and the tensor, leaving the best checkpoint
   untouched.

   RNADE models real-valued MNIST: intensities dequantized with uniform
   noise, x = (pixel + u)/256, then y = logit(lambda + (1 - 2 lambda) x)
   with lambda = 1e-6. It is trained on y; reported is the log-density of x
   (the transform's log-determinant added back), in nats per example, and
   the bits per dimension this bounds for the 8-bit pixels. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, before any #include */
#define AR_IMPLEMENTATION
#include "../ar.h"
#include "util.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>

static volatile sig_atomic_t stop_requested; /* SIGINT/SIGTERM: save and leave */
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

/* RNG state <-> 64 hex digits, for the resume metadata */
static void rng_hex(const ar_rng *r, char *out)
{
    int i;
    for (i = 0; i < 4; i++) snprintf(out + 16 * i, 17, "%016llx", (unsigned long long)r->s[i]);
}
static int hex_rng(const char *s, ar_rng *r)
{
    int i;
    for (i = 0; s && strlen(s) == 64 && i < 4; i++) {
        char part[17], *end;
        memcpy(part, s + 16 * i, 16);
        part[16] = 0;
        r->s[i] = (uint64_t)strtoull(part, &end, 16);
        if (*end) return 0;
    }
    return i == 4;
}

/* A non-negative int from the resume metadata */
static int meta_int(const ar_meta *st, const char *key, int *out)
{
    const char *v = ar_meta_get(st, key);
    char *end;
    long x;
    if (!v || !*v) return 0;
    x = strtol(v, &end, 10);
    if (*end || x < 0 || x > INT_MAX) return 0;
    *out = (int)x;
    return 1;
}

/* The models share one shape of API; this picks the one being trained.
   The Transformer reads pixels as tokens 0/1 behind a start token 2. */
enum { M_MADE, M_NADE, M_TFM, M_CNN };
typedef struct { int kind; ar_made made; ar_nade nd; ar_tfm tf; ar_cnn cn; } ex_model;

static ar_params *m_params(ex_model *m)
{
    return m->kind == M_CNN ? &m->cn.ps : m->kind == M_TFM ? &m->tf.ps : m->kind == M_NADE ? &m->nd.ps : &m->made.ps;
}
static const char *m_err(ex_model *m)
{
    return m->kind == M_CNN ? m->cn.err : m->kind == M_TFM ? m->tf.err : m->kind == M_NADE ? m->nd.err : m->made.err;
}
static int m_D(ex_model *m)
{
    return m->kind == M_CNN ? m->cn.cfg.H * m->cn.cfg.W : m->kind == M_TFM ? m->tf.cfg.T
                            : m->kind == M_NADE ? m->nd.cfg.D : m->made.cfg.D;
}
static ar_tensor *m_nll(ex_model *m, ar_graph *g, const float *x, int N)
{
    if (m->kind == M_TFM) { /* tokens live in the arena until the next reset */
        int D = m->tf.cfg.T, *in = (int *)ar_graph_alloc(g, 2 * (size_t)N * D * sizeof(int)), *tg = in + (size_t)N * D;
        size_t k;
        if (!in) return NULL;
        for (k = 0; k < (size_t)N * D; k++) tg[k] = x[k] != 0;
        if (ar_tfm_inputs(&m->tf, tg, N, D, 2, in) != AR_OK) return NULL; /* shifted along the order */
        return ar_tfm_nll(&m->tf, g, in, tg, N, D);
    }
    if (m->kind == M_CNN) return ar_cnn_nll(&m->cn, g, x, N);
    return m->kind == M_NADE ? ar_nade_nll(&m->nd, g, x, N) : ar_made_nll(&m->made, g, x, N);
}
static ar_status m_log_prob(ex_model *m, ar_graph *g, const float *x, int N, float *out)
{
    if (m->kind == M_TFM || m->kind == M_CNN) {
        ar_tensor *nll;
        int n;
        ar_graph_set_grad(g, 0);
        nll = m_nll(m, g, x, N);
        ar_graph_set_grad(g, 1);
        if (!nll) return g->status;
        for (n = 0; n < N; n++) out[n] = -nll->x[n];
        return AR_OK;
    }
    return m->kind == M_NADE ? ar_nade_log_prob(&m->nd, g, x, N, out) : ar_made_log_prob(&m->made, g, x, N, out);
}
/* N samples into x; for the Transformer and the convolutional models the
   first n_given pixels of each come from given (completion); probs gets
   p(pixel = 1 | pixels before) where the model gives it. */
static ar_status m_sample(ex_model *m, ar_graph *g, int N, ar_rng *r, float *x, float *probs, const float *given,
                          int n_given)
{
    if (m->kind == M_TFM) {
        int D = m->tf.cfg.T, *tok = (int *)malloc(sizeof(int) * (size_t)N * D * 2), *pre = tok + (size_t)N * D;
        ar_sampler smp = {1.0f, 0, 0.0f};
        ar_tfm_cache c;
        ar_status s;
        size_t k;
        int n, t;
        if (!tok || ar_tfm_cache_init(&c, &m->tf, N) != AR_OK) { free(tok); return AR_ERR_NOMEM; }
        for (n = 0; n < N; n++)
            for (t = 0; t < n_given; t++) /* the given pixels of the first n_given steps */
                pre[(size_t)n * n_given + t] = given[(size_t)n * D + (m->tf.order ? m->tf.order[t] : t)] != 0;
        s = ar_tfm_sample(&m->tf, &c, D, 2, n_given ? pre : NULL, n_given, &smp, r, tok);
        for (k = 0; s == AR_OK && k < (size_t)N * D; k++) x[k] = (float)tok[k];
        ar_tfm_cache_free(&c);
        free(tok);
        return s;
    }
    if (m->kind == M_CNN) {
        ar_status s;
        size_t k;
        if (n_given) memcpy(x, given, sizeof(float) * (size_t)N * m_D(m));
        s = ar_cnn_sample(&m->cn, N, n_given, 1, r, x, probs);
        for (k = 0; s == AR_OK && probs && k < (size_t)N * m_D(m); k++) probs[k] = 1 / (1 + expf(-probs[k]));
        return s;
    }
    return m->kind == M_NADE ? ar_nade_sample(&m->nd, g, N, r, 1.0f, NULL, NULL, x, probs)
                             : ar_made_sample(&m->made, g, N, r, 1.0f, NULL, NULL, x, probs);
}
static ar_status m_save(ex_model *m, const char *path)
{
    if (m->kind == M_CNN) return ar_cnn_save(&m->cn, path);
    return m->kind == M_TFM ? ar_tfm_save(&m->tf, path) : m->kind == M_NADE ? ar_nade_save(&m->nd, path)
                                                                             : ar_made_save(&m->made, path);
}
static ar_status m_load(ex_model *m, const char *path)
{
    if (m->kind == M_CNN) return ar_cnn_load(&m->cn, path);
    return m->kind == M_TFM ? ar_tfm_load(&m->tf, path) : m->kind == M_NADE ? ar_nade_load(&m->nd, path)
                                                                             : ar_made_load(&m->made, path);
}
/* A fingerprint of the weights, stored with the optimizer state: a run
   killed between writing the two -last files is caught on resume instead
   of going on from a mixed state. */
static void weights_hex(const ar_params *ps, char *out)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a over 32-bit words */
    size_t k;
    for (k = 0; k < ps->total; k++) {
        uint32_t u;
        memcpy(&u, ps->x + k, sizeof u);
        h = (h ^ u) * 0x100000001b3u;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* Whether the model's weights have the fingerprint fp (NULL: not known) */
static int weights_match(ex_model *m, const char *fp)
{
    char hex[17];
    weights_hex(m_params(m), hex);
    return !fp || !strcmp(fp, hex);
}

/* Where the training state lives: weights in w, the optimizer and the
   loop's position in o. A save writes both under the -next names first,
   then renames o into place before w, so a kill at any moment leaves either
   the old pair, or the new o with its weights in wnext (which the
   fingerprint in o tells apart). */
typedef struct { char w[1024], o[1024], wnext[1024], onext[1024]; } state_files;

static void state_files_of(state_files *f, const char *out, const char *model)
{
    snprintf(f->w, sizeof f->w, "%s/%s-last.safetensors", out, model);
    snprintf(f->o, sizeof f->o, "%s/%s-last.opt.safetensors", out, model);
    snprintf(f->wnext, sizeof f->wnext, "%s/%s-next.safetensors", out, model);
    snprintf(f->onext, sizeof f->onext, "%s/%s-next.opt.safetensors", out, model);
}

/* Saves the whole training state: weights; optimizer moments and step RNG;
   the loop's position (epoch, next example, epochs without improvement,
   best valid NLL, the shuffle RNG that draws that epoch's permutation), the
   batch size it counts in, and the weights' fingerprint. Resuming from it
   continues bit for bit. Returns nonzero after printing why it could not. */
static int save_state(ex_model *m, ar_optim *opt, ar_rng *steprng, const state_files *f, int epoch, int next,
                      int batch, int bad, double best, const ar_rng *shuffle)
{
    static const char *keys[] = {"epoch", "next", "batch", "bad"};
    int vals[4], k;
    ar_meta st;
    char num[64], hex[65];
    ar_status s = AR_OK;
    vals[0] = epoch; vals[1] = next; vals[2] = batch; vals[3] = bad;
    ar_meta_init(&st);
    for (k = 0; k < 4 && !s; k++) {
        snprintf(num, sizeof num, "%d", vals[k]);
        s = ar_meta_set(&st, keys[k], num);
    }
    snprintf(num, sizeof num, "%.17g", best);
    if (!s) s = ar_meta_set(&st, "best", num);
    rng_hex(shuffle, hex);
    if (!s) s = ar_meta_set(&st, "shuffle_rng", hex);
    weights_hex(m_params(m), hex);
    if (!s) s = ar_meta_set(&st, "weights", hex);
    if (ar_params_check_finite(m_params(m)) != AR_OK) {
        fprintf(stderr, "not saving the training state: %s\n", m_params(m)->err);
        s = AR_ERR_NUMERIC;
    } else if (s || m_save(m, f->wnext) != AR_OK || ar_optim_save(opt, m_params(m), steprng, &st, f->onext) != AR_OK ||
               rename(f->onext, f->o) != 0 || rename(f->wnext, f->w) != 0) {
        fprintf(stderr, "could not save the training state: %s %s %s\n", m_err(m), m_params(m)->err, strerror(errno));
        s = AR_ERR_IO;
    }
    ar_meta_free(&st);
    return s != AR_OK;
}

/* Loads a saved training state into m, opt, steprng and the loop's
   position. Returns 0 if there is none (f->o absent), 1 if loaded, 2 if
   loaded from a save that was cut short, -1 after printing why a state that
   is there cannot be used: never a silent restart. The weights are w, or
   wnext if a save was cut between its two renames; the optimizer is loaded
   after them (loading a model replaces its parameters, moments included). */
static int load_state(ex_model *m, ar_optim *opt, ar_rng *steprng, const state_files *f, int batch, int *epoch,
                      int *next, int *bad, double *best, ar_rng *shuffle)
{
    const char *cand[2], *b, *fp = NULL;
    ar_meta st;
    int saved_batch = batch, k;
    FILE *file = fopen(f->o, "rb");
    if (!file) return 0;
    fclose(file);
    cand[0] = f->w;
    cand[1] = f->wnext;
    ar_meta_init(&st);
    for (k = 0; k < 2; k++) {
        if (m_load(m, cand[k]) != AR_OK) continue;
        if (ar_optim_load(opt, m_params(m), steprng, &st, f->o) != AR_OK) {
            fprintf(stderr, "--resume: %s\n", m_params(m)->err);
            ar_meta_free(&st);
            return -1;
        }
        fp = ar_meta_get(&st, "weights"); /* absent in states saved by older trainers */
        if (weights_match(m, fp)) break;
    }
    if (k == 2) {
        fprintf(stderr, "--resume: no weights in %s or %s match %s (%s); remove %s to start again from the best "
                "checkpoint\n", f->w, f->wnext, f->o, m_err(m), f->o);
        ar_meta_free(&st);
        return -1;
    }
    if (!meta_int(&st, "epoch", epoch) || !meta_int(&st, "next", next) || !meta_int(&st, "bad", bad) ||
        !(b = ar_meta_get(&st, "best")) || sscanf(b, "%lf", best) != 1 ||
        !hex_rng(ar_meta_get(&st, "shuffle_rng"), shuffle) ||
        (ar_meta_get(&st, "batch") && !meta_int(&st, "batch", &saved_batch))) {
        fprintf(stderr, "--resume: %s lacks the training position (epoch, next, bad, best, shuffle_rng)\n", f->o);
        k = -1;
    } else if (saved_batch != batch) {
        fprintf(stderr, "--resume: the state in %s was saved with --batch %d, not %d\n", f->o, saved_batch, batch);
        k = -1;
    } else if (k == 1 && rename(f->wnext, f->w) != 0) { /* finish that save, or the next one could strand o */
        fprintf(stderr, "--resume: cannot rename %s to %s: %s\n", f->wnext, f->w, strerror(errno));
        k = -1;
    }
    ar_meta_free(&st);
    return k < 0 ? -1 : 1 + k;
}

/* ---- RNADE's data: dequantize, then logit ---------------------------------- */
#define LAMBDA 1e-6

/* y = logit(lambda + (1-2 lambda) (pixel + u)/256); returns log|dy/dx| summed. */
static double to_logit(const float *pix, float *y, size_t n, ar_rng *r)
{
    double logdet = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double x = (pix[i] * 255.0 + ar_rng_uniform(r)) / 256.0, s = LAMBDA + (1 - 2 * LAMBDA) * x;
        y[i] = (float)log(s / (1 - s));
        logdet += log(1 - 2 * LAMBDA) - log(s) - log(1 - s);
    }
    return logdet;
}

static void from_logit(float *v, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) v[i] = (float)((1 / (1 + exp(-(double)v[i])) - LAMBDA) / (1 - 2 * LAMBDA));
}

static float *m_out_bias(ex_model *m) { return m->kind == M_NADE ? m->nd.b->x : m->made.c->x; }

static double evaluate(ex_model *m, ar_graph *g, const float *x, int n, int batch, int ensemble)
{
    double total = 0;
    float *lp = (float *)malloc(sizeof(float) * (size_t)batch);
    int i, k;
    for (i = 0; i < n; i += batch) {
        int b = n - i < batch ? n - i : batch;
        ar_graph_reset(g);
        if (ensemble) {
            if (m_log_prob(m, g, x + (size_t)i * m_D(m), b, lp) != AR_OK) goto fail;
            for (k = 0; k < b; k++) total -= lp[k];
        } else {
            ar_tensor *nll;
            ar_graph_set_grad(g, 0);
            nll = m_nll(m, g, x + (size_t)i * m_D(m), b);
            ar_graph_set_grad(g, 1);
            if (!nll) goto fail;
            for (k = 0; k < b; k++) total += nll->x[k];
        }
    }
    free(lp);
    return total / n;
fail:
    fprintf(stderr, "evaluation failed: %s\n", g->err);
    exit(1);
}

int main(int argc, char **argv)
{
    const char *model = ex_arg(argc, argv, "--model", "made"), *dir = ex_arg(argc, argv, "--data", ".data/mnist");
    const char *out = ex_arg(argc, argv, "--out", "."), *hidden = ex_arg(argc, argv, "--hidden", "500");
    int tfm = !strcmp(model, "tfm"), cnn = !strcmp(model, "pixelcnn") || !strcmp(model, "gated") || !strcmp(model, "wavenet");
    int eval_batch = tfm ? 8 : cnn ? 50 : 500; /* attention over 784 positions is memory-hungry */
    int epochs = (int)ex_num(argc, argv, "--epochs", 20), batch = (int)ex_num(argc, argv, "--batch", tfm ? 16 : cnn ? 32 : 100);
    int components = (int)ex_num(argc, argv, "--components", 10), real;
    int levels = (int)ex_num(argc, argv, "--levels", 1);
    double logdet_valid = 0, logdet_test = 0;
    int patience = (int)ex_num(argc, argv, "--patience", 10), n_masks = (int)ex_num(argc, argv, "--masks", 1);
    float lr = (float)ex_num(argc, argv, "--lr", 1e-3), wd = (float)ex_num(argc, argv, "--wd", 0);
    float lr_decay = (float)ex_num(argc, argv, "--lr-decay", 1);
    uint64_t seed = (uint64_t)ex_num(argc, argv, "--seed", 1);
    char ckpt[1024], png[1024];
    state_files sf;
    long max_steps = (long)ex_num(argc, argv, "--max-steps", 0), done_steps = 0;
    int start_epoch = 1, start_i = 0, finished = 0;
    ar_rng shuf, steprng, epoch_rng; /* shuffles; per-step noise and masks */
    ar_mnist data;
    ex_model m;
    ar_made_cfg cfg;
    ar_nade_cfg ncfg;
    ar_graph g;
    ar_optim opt;
    ar_rng rng;
    float *xb, *samples, *probs;
    int *perm, epoch, i, bad = 0, D;
    double best = 1e30, t0 = ex_now(), nll_test;
    if (ex_flag(argc, argv, "--help") ||
        (strcmp(model, "made") && strcmp(model, "fvsbn") && strcmp(model, "nade") && strcmp(model, "rnade") &&
         strcmp(model, "tfm") && !cnn)) {
        fprintf(stderr, "usage: %s [--model made|fvsbn|nade|rnade|tfm|pixelcnn|gated|wavenet] [--components K] [--hidden 500[,500]] [--masks K] [--order-agnostic] [--direct|--no-direct]\n"
                        "          [--d 64] [--heads 4] [--layers 2] [--ffn 256] [--pos learned|sinusoidal|rotary] [--order raster|zigzag|random] (tfm)\n"
                        "          [--channels F] [--layers L] [--kernel 3] [--first-kernel 7] [--dilations 10] [--coords] [--levels 1|2..256]\n"
                        "          (pixelcnn, gated, wavenet; levels > 1: 8-bit MNIST)\n"
                        "          [--epochs E] [--batch B] [--lr LR] [--lr-decay G] [--optim adam|adagrad] [--wd L2] [--patience P] [--seed S] [--data DIR] [--out DIR] [--resume] [--max-steps N]\n",
                argv[0]);
        return 2;
    }
    if (!(lr_decay > 0 && lr_decay <= 1)) {
        fprintf(stderr, "--lr-decay must be in (0, 1]: the learning rate is multiplied by it after every epoch\n");
        return 2;
    }
    real = !strcmp(model, "rnade");
    if (levels < 1 || levels > 256 || (levels > 1 && !cnn)) {
        fprintf(stderr, "--levels must be 1 (binary) or 2..256, and is for pixelcnn, gated and wavenet\n");
        return 2;
    }
    if (mkdir(out, 0777) != 0 && errno != EEXIST) { /* checkpoints go there: fail now, not after an epoch */
        fprintf(stderr, "cannot create the output directory '%s': %s\n", out, strerror(errno));
        return 1;
    }
    if (ar_mnist_load(&data, dir, !real && levels == 1, AR_MNIST_SEED) != AR_OK) {
        fprintf(stderr, "%s\n(run 'make data' to fetch MNIST)\n", data.err);
        return 1;
    }
    D = data.D;
    if (levels > 1) { /* 8-bit intensities, quantized to `levels` values */
        size_t k, n = (size_t)(data.n_train + data.n_valid + data.n_test) * D;
        for (k = 0; k < n; k++) data.train[k] = floorf(floorf(data.train[k] * 255 + 0.5f) * levels / 256);
    }
    if (real) { /* fixed noise for validation and test, fresh noise per training batch */
        ar_rng noise;
        ar_rng_seed(&noise, AR_MNIST_SEED);
        logdet_valid = to_logit(data.valid, data.valid, (size_t)data.n_valid * D, &noise) / data.n_valid;
        logdet_test = to_logit(data.test, data.test, (size_t)data.n_test * D, &noise) / data.n_test;
    }
    cfg = strcmp(model, "fvsbn") ? ar_made_default(D) : ar_fvsbn_default(D);
    if (!strcmp(model, "made")) {
        char *s = (char *)hidden, *end;
        cfg.n_hidden = 0;
        while (*s && cfg.n_hidden < AR_MADE_MAX_HIDDEN) {
            cfg.hidden[cfg.n_hidden++] = (int)strtol(s, &end, 10);
            s = *end == ',' ? end + 1 : end;
            if (end == s && *s) break;
        }
        cfg.direct = ex_flag(argc, argv, "--direct") && !ex_flag(argc, argv, "--no-direct");
        cfg.n_masks = n_masks;
        cfg.order_agnostic = ex_flag(argc, argv, "--order-agnostic");
    }
    cfg.seed = seed;
    ncfg = real ? ar_rnade_default(D, components) : ar_nade_default(D);
    ncfg.H = atoi(hidden);
    ncfg.seed = seed;
    memset(&m, 0, sizeof m);
    m.kind = cnn ? M_CNN : !strcmp(model, "tfm") ? M_TFM : !strcmp(model, "nade") || real ? M_NADE : M_MADE;
    snprintf(ckpt, sizeof ckpt, "%s/%s.safetensors", out, model);
    state_files_of(&sf, out, model);
    if (m.kind == M_TFM) {
        ar_tfm_cfg tc = ar_tfm_default(3, D);
        tc.d = (int)ex_num(argc, argv, "--d", tc.d);
        tc.heads = (int)ex_num(argc, argv, "--heads", tc.heads);
        tc.layers = (int)ex_num(argc, argv, "--layers", tc.layers);
        tc.ffn = (int)ex_num(argc, argv, "--ffn", tc.ffn);
        {
            const char *pos = ex_arg(argc, argv, "--pos", "learned");
            tc.pos = !strcmp(pos, "sinusoidal") ? AR_POS_SINUSOIDAL : !strcmp(pos, "rotary") ? AR_POS_ROTARY : AR_POS_LEARNED;
        }
        tc.seed = seed;
        {
            const char *ord = ex_arg(argc, argv, "--order", "raster");
            static int order[4096];
            int r, c, k = 0;
            ar_rng orng;
            if (D > 4096 || (strcmp(ord, "raster") && strcmp(ord, "zigzag") && strcmp(ord, "random"))) {
                fprintf(stderr, "--order must be raster, zigzag or random\n");
                return 2;
            }
            for (r = 0; r < data.rows; r++) /* zigzag: rows alternate direction */
                for (c = 0; c < data.cols; c++) order[k++] = r * data.cols + (r % 2 ? data.cols - 1 - c : c);
            if (!strcmp(ord, "random")) {
                for (k = 0; k < D; k++) order[k] = k;
                ar_rng_seed(&orng, seed + 4);
                ar_rng_shuffle(&orng, order, D);
            }
            if (strcmp(ord, "raster")) tc.order = order;
        }
        if (ar_tfm_init(&m.tf, &tc) != AR_OK) { fprintf(stderr, "%s\n", m.tf.err); return 1; }
    } else if (m.kind == M_CNN) {
        int kind = !strcmp(model, "pixelcnn") ? AR_CNN_PIXELCNN : !strcmp(model, "gated") ? AR_CNN_GATED : AR_CNN_WAVENET;
        ar_cnn_cfg cc = ar_cnn_default(kind, data.rows, data.cols, kind == AR_CNN_WAVENET ? 20 : kind == AR_CNN_GATED ? 6 : 5);
        cc.channels = (int)ex_num(argc, argv, "--channels", cc.channels);
        cc.layers = (int)ex_num(argc, argv, "--layers", cc.layers);
        cc.kernel = (int)ex_num(argc, argv, "--kernel", cc.kernel);
        cc.first_kernel = (int)ex_num(argc, argv, "--first-kernel", cc.first_kernel);
        cc.dilations = (int)ex_num(argc, argv, "--dilations", cc.dilations);
        cc.coords = ex_flag(argc, argv, "--coords");
        cc.levels = levels;
        cc.seed = seed;
        if (ar_cnn_init(&m.cn, &cc) != AR_OK) { fprintf(stderr, "%s\n", m.cn.err); return 1; }
    } else if ((m.kind == M_NADE ? ar_nade_init(&m.nd, &ncfg) : ar_made_init(&m.made, &cfg)) != AR_OK) {
        fprintf(stderr, "%s\n", m_err(&m));
        return 1;
    }
    if (m.kind == M_CNN && levels == 1) { /* one output bias for all pixels: the data's mean */
        double p = 0;
        size_t k;
        for (k = 0; k < (size_t)data.n_train * D; k++) p += data.train[k];
        p /= (double)data.n_train * D;
        m.cn.b2->x[0] = (float)log(p / (1 - p));
    } else if (m.kind == M_CNN) { /* the log-frequency of each level */
        size_t k;
        int v;
        for (v = 0; v < levels; v++) m.cn.b2->x[v] = 1;
        for (k = 0; k < (size_t)data.n_train * D; k++) m.cn.b2->x[(int)data.train[k]] += 1;
        for (v = 0; v < levels; v++) m.cn.b2->x[v] = logf(m.cn.b2->x[v] / ((float)data.n_train * D + levels));
    } else if (!real && m.kind != M_TFM) { /* output biases at the data's pixel marginals: training starts near 206 nats, not 543 */
        int d, k;
        for (d = 0; d < D; d++) {
            double p = 0;
            for (k = 0; k < data.n_train; k++) p += data.train[(size_t)k * D + d];
            p = (p + 1) / (data.n_train + 2);
            m_out_bias(&m)[d] = (float)log(p / (1 - p));
        }
    }
    {
        const char *o = ex_arg(argc, argv, "--optim", "adam");
        if (strcmp(o, "adam") && strcmp(o, "adagrad")) { fprintf(stderr, "--optim must be adam or adagrad\n"); return 2; }
        opt = !strcmp(o, "adagrad") ? ar_optim_adagrad(lr) : ar_optim_adam(lr);
    }
    opt.weight_decay = wd; /* L2, as torch.optim.Adam's weight_decay */
    ar_rng_seed(&rng, seed + 1);
    ar_rng_seed(&shuf, seed + 2);
    ar_rng_seed(&steprng, seed + 3);
    if (ex_flag(argc, argv, "--resume")) {
        int r = load_state(&m, &opt, &steprng, &sf, batch, &start_epoch, &start_i, &bad, &best, &shuf);
        if (r < 0) return 1;
        if (r > 0) {
            if (ex_arg(argc, argv, "--lr", NULL)) opt.lr = lr; /* asked for: a new rate from here on */
            printf("resumed from %s%s at epoch %d, example %d (lr %g)\n", sf.w, r == 2 ? " (its save was cut short)" : "",
                   start_epoch, start_i, (double)opt.lr);
        } else if (m_load(&m, ckpt) == AR_OK) {
            printf("resumed from %s (weights only: no saved training state)\n", ckpt);
        } else {
            fprintf(stderr, "--resume: %s\n", m_err(&m));
            return 1;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (ar_graph_init(&g, 0) != AR_OK) return 1;
    xb = (float *)malloc(sizeof(float) * (size_t)batch * D);
    perm = (int *)malloc(sizeof(int) * (size_t)data.n_train);
    if (m.kind == M_TFM)
        printf("tfm: %d tokens, d %d, %d heads, %d layers, ffn %d, %s positions\n", D, m.tf.cfg.d, m.tf.cfg.heads,
               m.tf.cfg.layers, m.tf.cfg.ffn,
               m.tf.cfg.pos == AR_POS_LEARNED ? "learned" : m.tf.cfg.pos == AR_POS_ROTARY ? "rotary" : "sinusoidal");
    if (m.kind == M_CNN)
        printf("%s: %d channels, %d layers after the first, receptive field %d %s%s\n", model, m.cn.cfg.channels,
               m.cn.cfg.layers, ar_cnn_receptive_field(&m.cn.cfg), m.cn.cfg.kind == AR_CNN_WAVENET ? "pixels" : "rows up",
               m.cn.cfg.coords ? ", coordinate channels" : "");
    printf("%s: D=%d hidden=%s masks=%d%s%s, %zu parameters, %d train / %d valid / %d test, batch %d, %s lr %g\n",
           model, D, m.kind == M_TFM || m.kind == M_CNN ? "-" : m.kind != M_MADE || cfg.n_hidden ? hidden : "-",
           m.kind != M_MADE ? 1 : cfg.n_masks,
           cfg.direct ? ", direct" : "",
           cfg.order_agnostic ? ", order-agnostic" : "", m_params(&m)->total, data.n_train, data.n_valid, data.n_test,
           batch, opt.kind == AR_OPTIM_ADAGRAD ? "Adagrad" : "Adam", (double)opt.lr);
    for (epoch = start_epoch; epoch <= epochs && bad < patience; epoch++) {
        double te = ex_now(), tick = te, train = 0, valid;
        int steps = 0;
        epoch_rng = shuf; /* the permutation depends only on this state */
        for (i = 0; i < data.n_train; i++) perm[i] = i;
        ar_rng_shuffle(&shuf, perm, data.n_train);
        for (i = epoch == start_epoch ? start_i : 0; i + batch <= data.n_train; i += batch, steps++) {
            ar_tensor *nll, *loss;
            int k;
            for (k = 0; k < batch; k++) {
                const float *src = data.train + (size_t)perm[i + k] * D;
                if (real) train -= to_logit(src, xb + (size_t)k * D, (size_t)D, &steprng) / batch;
                else memcpy(xb + (size_t)k * D, src, sizeof(float) * D);
            }
            if (m.kind == M_MADE && cfg.n_masks > 1)
                ar_made_set_mask(&m.made, (int)ar_rng_below(&steprng, (uint32_t)cfg.n_masks));
            ar_graph_reset(&g);
            nll = m_nll(&m, &g, xb, batch);
            loss = ar_mean(&g, nll, AR_ALL);
            ar_params_zero_grad(m_params(&m));
            if (ar_backward(&g, loss) != AR_OK) { fprintf(stderr, "step failed: %s\n", g.err); return 1; }
            /* The loss every step; every weight and gradient every 64 steps
               (reading them all costs 8% of a big MADE step, and a NaN
               weight behind a ReLU can leave the loss finite) and before
               anything is saved, so no checkpoint holds a NaN. */
            if (!isfinite(loss->x[0]) || (steps % 64 == 0 && ar_params_check_finite(m_params(&m)) != AR_OK)) {
                if (isfinite(loss->x[0])) fprintf(stderr, "epoch %d step %d: %s", epoch, steps, m_params(&m)->err);
                else fprintf(stderr, "epoch %d step %d: the loss is %g", epoch, steps, (double)loss->x[0]);
                fprintf(stderr, "; stopping, %s is the last good checkpoint\n", ckpt);
                return 1;
            }
            if (ar_optim_step(&opt, m_params(&m)) != AR_OK) { fprintf(stderr, "%s\n", m_params(&m)->err); return 1; }
            train += loss->x[0];
            if (ex_now() - tick > 30) { /* long epochs: a progress line every 30 s */
                double done = (double)(i + batch) / data.n_train, rate;
                tick = ex_now();
                rate = (steps + 1) * batch / (tick - te); /* this run's examples: a resumed epoch started late */
                printf("  epoch %d: %3.0f%%  running train NLL %.2f  %.0f ex/s  epoch ETA %.0fs\n", epoch, 100 * done,
                       train / (steps + 1), rate, (data.n_train - i - batch) / rate);
                fflush(stdout);
            }
            if (stop_requested || (max_steps && ++done_steps >= max_steps)) break;
        }
        if (i + batch <= data.n_train) { /* interrupted: save where we are */
            if (save_state(&m, &opt, &steprng, &sf, epoch, i + batch, batch, bad, best, &epoch_rng)) return 1;
            printf("interrupted in epoch %d: saved %s and %s (continue with --resume)\n", epoch, sf.w, sf.o);
            return 130;
        }
        if (m.kind == M_MADE && m.made.cfg.n_masks > 1) ar_made_set_mask(&m.made, 0); /* one fixed set: epochs compare */
        valid = evaluate(&m, &g, data.valid, data.n_valid, eval_batch, 0) - logdet_valid; /* NLL of x, not y */
        if (valid < best) {
            best = valid;
            bad = 0;
            if (ar_params_check_finite(m_params(&m)) != AR_OK) {
                fprintf(stderr, "not saving %s: %s\n", ckpt, m_params(&m)->err);
                return 1;
            }
            if (m_save(&m, ckpt) != AR_OK) { fprintf(stderr, "%s\n", m_err(&m)); return 1; }
        } else if (++bad % 4 == 0) {
            opt.lr *= 0.5f; /* plateau: halve the step size */
        }
        opt.lr *= lr_decay; /* saved with the optimizer state, so a resumed run keeps the schedule */
        printf("epoch %3d/%d  train %.2f  valid %.2f nats  (best %.2f)  %.0f ex/s  %.0fs elapsed, ETA %.0fs%s\n",
               epoch, epochs, steps ? train / steps : NAN, valid, best, steps * batch / (ex_now() - te),
               ex_now() - t0, (ex_now() - t0) / (epoch - start_epoch + 1) * (epochs - epoch), bad ? "" : "  [saved]");
        fflush(stdout);
        if (epoch == epochs || bad >= patience) { /* done: on to the test set, whatever the signals */
            finished = 1;
            break;
        }
        /* The state after every epoch: a run killed without a chance to
           save loses at most this epoch. */
        if (save_state(&m, &opt, &steprng, &sf, epoch + 1, 0, batch, bad, best, &shuf)) return 1;
        if (stop_requested) { /* the signal came during validation */
            printf("interrupted after epoch %d: saved %s and %s (continue with --resume)\n", epoch, sf.w, sf.o);
            return 130;
        }
    }
    if (finished) { /* trained to the end: a later --resume starts afresh from the best weights */
        remove(sf.o); /* first: without it the weights are never read */
        remove(sf.w);
    } /* else (e.g. --resume --epochs 0 to evaluate) the state stays, to go on from later */
    if (best < 1e30 && m_load(&m, ckpt) != AR_OK) { /* the best weights, if an epoch was validated */
        fprintf(stderr, "%s\n", m_err(&m));
        return 1;
    }
    nll_test = evaluate(&m, &g, data.test, data.n_test, eval_batch, 1) - logdet_test;
    if (best == 1e30) best = NAN; /* no epoch ran (--epochs 0): nothing validated */
    if (real)
        printf("test log-likelihood %.2f nats per example of dequantized x in [0,1]^%d; "
               "%.4f bits/dim for 8-bit pixels (best valid NLL %.2f, %.0fs)\n",
               -nll_test, D, (nll_test + D * log(256.0)) / (D * 0.69314718055994531), best, ex_now() - t0);
    else
        printf("test NLL %.2f nats per example, %.4f bits/dim (%s, %d mask%s, best valid %.2f, %.0fs)\n", nll_test,
               nll_test / (D * 0.69314718055994531), model, m.kind != M_MADE ? 1 : cfg.n_masks,
               m.kind == M_MADE && cfg.n_masks > 1 ? "s in the ensemble" : "", best, ex_now() - t0);
    samples = (float *)malloc(sizeof(float) * 100 * D);
    probs = (float *)malloc(sizeof(float) * 100 * D);
    ar_graph_reset(&g);
    if (m_sample(&m, &g, 100, &rng, samples, levels > 1 ? NULL : probs, NULL, 0) != AR_OK) {
        fprintf(stderr, "sampling: %s %s\n", g.err, m_err(&m));
        return 1;
    }
    if (m.kind == M_TFM || m.kind == M_CNN) { /* completion: the top half of 100 test digits given, the rest drawn */
        if (m_sample(&m, &g, 100, &rng, probs, NULL, data.test, D / 2) != AR_OK) {
            fprintf(stderr, "completion: %s\n", m_err(&m));
            return 1;
        }
    }
    if (real) {
        from_logit(samples, (size_t)100 * D);
        from_logit(probs, (size_t)100 * D);
    }
    if (levels > 1) { /* levels to [0,1] for the image */
        size_t k;
        for (k = 0; k < (size_t)100 * D; k++) {
            samples[k] /= (float)(levels - 1);
            probs[k] /= (float)(levels - 1);
        }
    }
    snprintf(png, sizeof png, "%s/%s-samples.png", out, model);
    if (ex_write_grid(png, samples, 100, data.rows, data.cols, 10)) fprintf(stderr, "cannot write %s\n", png);
    else printf("wrote %s\n", png);
    snprintf(png, sizeof png, "%s/%s-%s.png", out, model, m.kind == M_TFM || m.kind == M_CNN ? "completions" : "probs");
    if (ex_write_grid(png, probs, 100, data.rows, data.cols, 10)) fprintf(stderr, "cannot write %s\n", png);
    else printf("wrote %s\n", png);
    free(samples); free(probs); free(xb); free(perm);
    ar_graph_free(&g);
    ar_made_free(&m.made);
    ar_nade_free(&m.nd);
    ar_tfm_free(&m.tf);
    ar_cnn_free(&m.cn);
    ar_mnist_free(&data);
    return 0;
}
