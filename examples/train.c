/* Train an autoregressive model on MNIST, report test NLL, write samples.

   train [--model made|fvsbn|nade|rnade|tfm|pixelcnn|gated|wavenet] [the model's flags]
         [--epochs E] [--batch B] [--lr LR] [--lr-decay G] [--optim adam|adagrad] [--wd L2]
         [--patience P] [--seed S] [--data DIR] [--out DIR] [--resume] [--max-steps N]
         [--draft FILE [--draft-k K]]
   (--help lists every flag, its range and the models it is for)

   The model is built from the flags (ar_model_default, then the fields the
   flags name) and from then on used only through the ar_model interface,
   whatever its kind. Every flag is checked before any data is read: an
   unknown flag, a value that is not a number in its range, a flag of
   another model (e.g. --components with --model made: an error, not a
   warning, since a flag that silently does nothing looks like a result),
   or a configuration the model rejects stops the run with a message
   naming it (exit status 2). The last of repeated flags wins.

   Data: binarized MNIST (one Bernoulli draw per pixel, AR_MNIST_SEED) for
   the binary models; for the convolutional models with --levels L >= 2,
   the 8-bit intensities quantized to L values; for RNADE the intensities
   dequantized, x = (pixel + u)/256 with u ~ U[0,1) (fresh noise per
   training batch, fixed noise for validation and test), in [0,1]^D, which
   the model's logit transform maps to the real line. RNADE's NLL is of x,
   in nats per example, and its bits/dim are those it bounds for the 8-bit
   pixels, (nll + D ln 256) / (D ln 2).

   Trains on the 50k training split (Adam, or Adagrad), keeps the weights
   with the best validation NLL (ar_model_nll without gradients; MADE with
   K > 1 mask sets under set 0, so epochs compare; checkpoint
   <out>/<model>.safetensors), stops after `patience` epochs without
   improvement, then reports the test NLL (ar_model_log_prob: for K > 1
   masks the mixture of all K) in nats per example and bits per dimension,
   and writes <out>/<model>-samples.png, <model>-probs.png (the mean of each
   conditional the sampler drew from; not for RNADE's real data) and <model>-completions.png (the top
   half of 100 test digits given, the rest drawn); a Transformer with
   --draft samples them speculatively, the checkpoint FILE proposing K
   tokens per pass (the samples follow the Transformer all the same), and
   says how long it took and how many proposals stood. The learning rate is
   multiplied by G after every epoch and halves after every 4 epochs
   without improvement. The whole training state (weights, optimizer
   moments, learning rate, random streams, position in the epoch) goes to
   <model>-last.safetensors and <model>-last.opt.safetensors after every
   epoch but the last and when SIGINT/SIGTERM (or --max-steps N) stops the
   run after the current step (written under -next names, then renamed: a
   kill mid-save loses nothing); a run that completes removes them.
   --resume continues from that state bit for bit (with --lr, at that rate
   from there on), or, when there is none, starts from the best checkpoint
   with a fresh optimizer; either must hold the model the flags describe. A
   NaN/Inf loss or gradient stops the run with a message naming the step
   and the tensor, leaving the best checkpoint untouched. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, before any #include */
#define AR_IMPLEMENTATION
#include "../ar.h"
#include "util.h"
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>

static volatile sig_atomic_t stop_requested; /* SIGINT/SIGTERM: save and leave */
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

/* ---- flags ------------------------------------------------------------------ */

/* --model names, by kind (the library calls AR_TRANSFORMER "transformer"; both work) */
static const char *const model_names[AR_KIND_COUNT] = {"made",     "fvsbn", "nade",   "rnade",
                                                       "tfm", "pixelcnn", "gated", "wavenet"};
#define FOR(k) (1u << (k))
#define F_ALL 0xffu
#define F_NADES (FOR(AR_NADE) | FOR(AR_RNADE))
#define F_CNNS (FOR(AR_PIXELCNN) | FOR(AR_GATED) | FOR(AR_WAVENET))
#define F_SEQ (FOR(AR_MADE) | FOR(AR_FVSBN) | F_NADES | FOR(AR_TRANSFORMER)) /* the models with an order */

enum { T_INT, T_LONG, T_U64, T_REAL, T_STR, T_CHOICE, T_SET, T_LIST };
typedef struct {
    const char *name;
    int type;
    unsigned models; /* bit k: a flag of the model of kind k */
    double lo, hi;   /* numbers: the range (T_REAL: lo excluded if open); T_SET: the value set */
    int open;
    void *dst;       /* int, long, uint64_t, double, const char *, int (index), int, ar_made_cfg */
    const char *arg; /* T_CHOICE: "a|b|c"; else the value's name in --help */
    const char *help;
} flag;

typedef struct {
    ar_model_cfg cfg; /* the model's flags go straight in here */
    const char *model, *data, *out, *draft;
    int draft_k;
    int kind, epochs, batch, patience, optim, order, resume, eval_batch, lr_given;
    double lr, lr_decay, wd;
    long max_steps;
    flag f[40];
    int nf;
    char desc[512]; /* the model's flags and their values, for the log */
} settings;

static int flag_table(settings *s)
{
    const flag f[] = {
        {"--model", T_STR, F_ALL, 0, 0, 0, &s->model, "NAME", "made|fvsbn|nade|rnade|tfm|pixelcnn|gated|wavenet"},
        {"--hidden", T_LIST, FOR(AR_MADE), 1, 1 << 20, 0, &s->cfg.made, "H[,H..]", "hidden layer sizes"},
        {"--hidden", T_INT, F_NADES, 1, 1 << 20, 0, &s->cfg.nade.H, "H", "hidden units"},
        {"--masks", T_INT, FOR(AR_MADE), 1, 4096, 0, &s->cfg.made.n_masks, "K", "mask sets (an ensemble if K > 1)"},
        {"--order-agnostic", T_SET, FOR(AR_MADE), 1, 0, 0, &s->cfg.made.order_agnostic, NULL,
         "a random ordering per mask set"},
        {"--direct", T_SET, FOR(AR_MADE), 1, 0, 0, &s->cfg.made.direct, NULL, "input-to-output weights (default)"},
        {"--no-direct", T_SET, FOR(AR_MADE), 0, 0, 0, &s->cfg.made.direct, NULL, "no input-to-output weights"},
        {"--components", T_INT, FOR(AR_RNADE), 1, AR_NADE_MAX_K, 0, &s->cfg.nade.K, "K", "Gaussians per dimension"},
        {"--d", T_INT, FOR(AR_TRANSFORMER), 1, 1 << 16, 0, &s->cfg.tfm.d, "D", "width"},
        {"--heads", T_INT, FOR(AR_TRANSFORMER), 1, 1 << 10, 0, &s->cfg.tfm.heads, "H", "attention heads"},
        {"--layers", T_INT, FOR(AR_TRANSFORMER), 1, AR_TFM_MAX_LAYERS, 0, &s->cfg.tfm.layers, "L", "blocks"},
        {"--ffn", T_INT, FOR(AR_TRANSFORMER), 1, 1 << 18, 0, &s->cfg.tfm.ffn, "F", "MLP width"},
        {"--pos", T_CHOICE, FOR(AR_TRANSFORMER), 0, 0, 0, &s->cfg.tfm.pos, "learned|sinusoidal|rotary", "positions"},
        {"--order", T_CHOICE, F_SEQ, 0, 0, 0, &s->order, "raster|zigzag|random", "the pixels' order"},
        {"--channels", T_INT, F_CNNS, 1, 1 << 12, 0, &s->cfg.cnn.channels, "F", "feature maps"},
        {"--layers", T_INT, F_CNNS, 0, AR_CNN_MAX_LAYERS - 1, 0, &s->cfg.cnn.layers, "L", "layers after the first"},
        {"--kernel", T_INT, FOR(AR_PIXELCNN) | FOR(AR_GATED), 1, 31, 0, &s->cfg.cnn.kernel, "K", "odd kernel size"},
        {"--first-kernel", T_INT, FOR(AR_PIXELCNN) | FOR(AR_GATED), 3, 31, 0, &s->cfg.cnn.first_kernel, "K",
         "odd first kernel size"},
        {"--dilations", T_INT, FOR(AR_WAVENET), 1, 20, 0, &s->cfg.cnn.dilations, "C", "dilations 1..2^(C-1)"},
        {"--coords", T_SET, F_CNNS, 1, 0, 0, &s->cfg.cnn.coords, NULL, "(row, col) input channels"},
        {"--levels", T_INT, F_CNNS, 1, 256, 0, &s->cfg.cnn.levels, "L", "1: binary; 2..256: 8-bit pixels in L levels"},
        {"--epochs", T_INT, F_ALL, 0, 1000000, 0, &s->epochs, "E", "at most E epochs (0: evaluate only)"},
        {"--batch", T_INT, F_ALL, 1, 50000, 0, &s->batch, "B", "examples per step"},
        {"--lr", T_REAL, F_ALL, 0, HUGE_VAL, 1, &s->lr, "LR", "learning rate"},
        {"--lr-decay", T_REAL, F_ALL, 0, 1, 1, &s->lr_decay, "G", "lr multiplier after each epoch"},
        {"--optim", T_CHOICE, F_ALL, 0, 0, 0, &s->optim, "adam|adagrad", "optimizer"},
        {"--wd", T_REAL, F_ALL, 0, HUGE_VAL, 0, &s->wd, "L2", "weight decay (L2, as torch.optim.Adam's)"},
        {"--patience", T_INT, F_ALL, 1, 1000000, 0, &s->patience, "P", "stop after P epochs without improvement"},
        {"--seed", T_U64, F_ALL, 0, 0, 0, &s->cfg.seed, "S", "weights, masks, shuffling, noise"},
        {"--data", T_STR, F_ALL, 0, 0, 0, &s->data, "DIR", "MNIST directory"},
        {"--out", T_STR, F_ALL, 0, 0, 0, &s->out, "DIR", "checkpoints and images"},
        {"--resume", T_SET, F_ALL, 1, 0, 0, &s->resume, NULL, "continue from <out>'s saved state"},
        {"--max-steps", T_LONG, F_ALL, 0, 1e15, 0, &s->max_steps, "N", "stop (and save) after N steps"},
        {"--draft", T_STR, FOR(AR_TRANSFORMER), 0, 0, 0, &s->draft, "FILE",
         "sample speculatively: a checkpoint (tfm, nade, made, fvsbn) proposes"},
        {"--draft-k", T_INT, FOR(AR_TRANSFORMER), 1, AR_TFM_MAX_STEP - 1, 0, &s->draft_k, "K",
         "tokens the draft proposes per pass (default 3)"},
    };
    memcpy(s->f, f, sizeof f);
    return s->nf = (int)(sizeof f / sizeof *f);
}

static void usage(settings *s, const char *prog)
{
    int i, k, n;
    printf("usage: %s [flags]; a flag that is not for the chosen --model is an error\n", prog);
    for (i = 0; i < s->nf; i++) {
        const flag *f = &s->f[i];
        printf("  %-16s %-26s %s", f->name, f->arg ? f->arg : "", f->help);
        for (k = n = 0; f->models != F_ALL && k < AR_KIND_COUNT; k++)
            if (f->models >> k & 1) printf(n++ ? ",%s" : "  [%s", model_names[k]);
        printf(f->models != F_ALL ? "]\n" : "\n");
    }
}

/* Choice i of "a|b|c" into out (len > 0) */
static void choice_name(const char *list, int i, char *out, size_t len)
{
    for (; i > 0 && strchr(list, '|'); i--) list = strchr(list, '|') + 1;
    snprintf(out, len, "%.*s", (int)strcspn(list, "|"), list);
}

/* The index of v in "a|b|c", or -1 */
static int choice(const char *list, const char *v)
{
    size_t n = strlen(v);
    int i = 0;
    for (;;) {
        const char *bar = strchr(list, '|');
        size_t len = bar ? (size_t)(bar - list) : strlen(list);
        if (len == n && !strncmp(list, v, n)) return i;
        if (!bar) return -1;
        list = bar + 1;
        i++;
    }
}

/* Stores v (NULL for T_SET) as flag f says; 0 after printing why it cannot. */
static int set_flag(const flag *f, const char *v)
{
    long l;
    double d;
    if (f->type == T_SET) *(int *)f->dst = (int)f->lo;
    else if (f->type == T_STR && *v) *(const char **)f->dst = v;
    else if (f->type == T_U64 && ex_parse_u64(v, (uint64_t *)f->dst)) return 1;
    else if ((f->type == T_INT || f->type == T_LONG) && ex_parse_long(v, (long)f->lo, (long)f->hi, &l)) {
        if (f->type == T_INT) *(int *)f->dst = (int)l;
        else *(long *)f->dst = l;
    } else if (f->type == T_REAL && ex_parse_double(v, &d) && (f->open ? d > f->lo : d >= f->lo) && d <= f->hi) {
        *(double *)f->dst = d;
    } else if (f->type == T_CHOICE && choice(f->arg, v) >= 0) {
        *(int *)f->dst = choice(f->arg, v);
    } else if (f->type == T_LIST) { /* MADE's hidden sizes: 1..AR_MADE_MAX_HIDDEN numbers */
        ar_made_cfg *c = (ar_made_cfg *)f->dst;
        int n = 0, h[AR_MADE_MAX_HIDDEN];
        char part[32];
        const char *p = v;
        for (;;) {
            size_t len = strcspn(p, ",");
            if (n == AR_MADE_MAX_HIDDEN || len >= sizeof part) break;
            memcpy(part, p, len);
            part[len] = 0;
            if (!ex_parse_long(part, (long)f->lo, (long)f->hi, &l)) break;
            h[n++] = (int)l;
            if (!p[len]) {
                c->n_hidden = n;
                memcpy(c->hidden, h, sizeof(int) * n);
                return 1;
            }
            p += len + 1;
        }
        fprintf(stderr, "%s: '%s' is not 1 to %d whole numbers in [%.0f, %.0f] separated by commas\n", f->name, v,
                AR_MADE_MAX_HIDDEN, f->lo, f->hi);
        return 0;
    } else {
        if (f->type == T_REAL && f->hi == HUGE_VAL)
            fprintf(stderr, "%s: '%s' is not a number %s %g\n", f->name, v, f->open ? ">" : ">=", f->lo);
        else if (f->type == T_REAL)
            fprintf(stderr, "%s: '%s' is not a number in %s%g, %g]\n", f->name, v, f->open ? "(" : "[", f->lo, f->hi);
        else if (f->type == T_INT || f->type == T_LONG)
            fprintf(stderr, "%s: '%s' is not a whole number in [%.0f, %.0f]\n", f->name, v, f->lo, f->hi);
        else if (f->type == T_U64) fprintf(stderr, "%s: '%s' is not a whole number >= 0\n", f->name, v);
        else if (f->type == T_STR) fprintf(stderr, "%s: the value is empty\n", f->name);
        else fprintf(stderr, "%s: '%s' is not one of %s\n", f->name, v, f->arg);
        return 0;
    }
    return 1;
}

/* One pass over argv. apply = 0: checks that every flag is known and has
   its value, and notes --model; apply = 1: sets the flags of that model
   and rejects the others. 0 after printing why. */
static int walk_flags(settings *s, int argc, char **argv, int apply)
{
    int i, k;
    for (i = 1; i < argc; i++) {
        const flag *any = NULL, *f = NULL; /* a flag of that name; the one for this model */
        for (k = 0; k < s->nf; k++)
            if (!strcmp(argv[i], s->f[k].name)) {
                if (!any) any = &s->f[k];
                if (!f && s->f[k].models >> s->kind & 1) f = &s->f[k];
            }
        if (!any && strncmp(argv[i], "--", 2)) {
            fprintf(stderr, "unexpected argument '%s' (flags are --name value; --help lists them)\n", argv[i]);
            return 0;
        }
        if (!any) {
            fprintf(stderr, "unknown flag '%s'", argv[i]);
            for (k = 0; k < s->nf; k++) /* a typo such as --epoch */
                if (strlen(argv[i]) > 3 && !strncmp(argv[i], s->f[k].name, strlen(argv[i]))) {
                    fprintf(stderr, " (did you mean %s?)", s->f[k].name);
                    break;
                }
            fprintf(stderr, "; --help lists them\n");
            return 0;
        }
        if (apply && !f) {
            fprintf(stderr, "%s is not a flag of --model %s (--help says which models it is for)\n", argv[i], s->model);
            return 0;
        }
        if (any->type != T_SET && ++i == argc) {
            fprintf(stderr, "%s needs a value\n", argv[i - 1]);
            return 0;
        }
        if (!apply && any->dst == &s->model) s->model = argv[i];
        if (apply && !set_flag(f, f->type == T_SET ? NULL : argv[i])) return 0;
        if (apply && f->dst == &s->lr) s->lr_given = 1;
    }
    return 1;
}

/* The model's flags with their values (defaults included), from s->cfg */
static void describe(settings *s, char *buf, size_t len)
{
    int i, n = snprintf(buf, len, "%s", s->model), k;
    for (i = 0; i < s->nf && n > 0 && (size_t)n < len; i++) {
        const flag *f = &s->f[i];
        char *b = buf + n;
        size_t l = len - (size_t)n;
        if (f->models == F_ALL || !(f->models >> s->kind & 1)) continue;
        if (f->type == T_INT) n += snprintf(b, l, " %s %d", f->name, *(int *)f->dst);
        else if (f->type == T_SET && *(int *)f->dst == (int)f->lo) n += snprintf(b, l, " %s", f->name);
        else if (f->type == T_CHOICE) {
            char c[32];
            choice_name(f->arg, *(int *)f->dst, c, sizeof c);
            n += snprintf(b, l, " %s %s", f->name, c);
        } else if (f->type == T_LIST) {
            const ar_made_cfg *c = (const ar_made_cfg *)f->dst;
            for (k = 0; k < c->n_hidden && n > 0 && (size_t)n < len; k++)
                n += k ? snprintf(buf + n, len - (size_t)n, ",%d", c->hidden[k])
                       : snprintf(buf + n, len - (size_t)n, " %s %d", f->name, c->hidden[k]);
        }
    }
}

/* The defaults for s->kind: the library's for the model, and these */
static void defaults(settings *s)
{
    /* per kind: batch and evaluation batch (attention over 784 places is memory-hungry) */
    static const int batch[AR_KIND_COUNT] = {100, 100, 100, 100, 16, 32, 32, 32};
    static const int eval_batch[AR_KIND_COUNT] = {500, 500, 500, 500, 8, 50, 50, 50};
    s->cfg = ar_model_default((ar_kind)s->kind, 28, 28);
    s->data = ".data/mnist";
    s->out = ".";
    s->epochs = 20;
    s->batch = batch[s->kind];
    s->eval_batch = eval_batch[s->kind];
    s->patience = 10;
    s->lr = 1e-3;
    s->lr_decay = 1;
    s->draft_k = 3;
    s->order = s->optim = 0;
}

static int kind_of(const char *name) { return !strcmp(name, "tfm") ? AR_TRANSFORMER : ar_kind_parse(name); }

/* Settings from argv: -1 to go on, else the exit status (0 for --help,
   2 for a bad flag). */
static int parse_settings(settings *s, int argc, char **argv)
{
    int k, help = 0;
    memset(s, 0, sizeof *s);
    flag_table(s);
    s->model = "made";
    for (k = 1; k < argc; k++) {
        help |= !strcmp(argv[k], "--help") || !strcmp(argv[k], "-h");
        if (k + 1 < argc && !strcmp(argv[k], "--model") && kind_of(argv[k + 1]) >= 0) s->model = argv[k + 1];
    }
    if (help) { /* whatever else is there */
        usage(s, argv[0]);
        s->kind = kind_of(s->model);
        defaults(s);
        describe(s, s->desc, sizeof s->desc);
        printf("defaults with --model %s: %s --epochs %d --batch %d --lr %g --patience %d --seed 1 --optim adam "
               "--data %s --out %s\n", s->model, s->desc, s->epochs, s->batch, s->lr, s->patience, s->data, s->out);
        return 0;
    }
    if (!walk_flags(s, argc, argv, 0)) return 2;
    if ((s->kind = kind_of(s->model)) < 0) {
        fprintf(stderr, "--model: '%s' is not one of %s\n", s->model, s->f[0].help);
        return 2;
    }
    defaults(s);
    if (!walk_flags(s, argc, argv, 1)) return 2;
    if (s->cfg.made.order_agnostic && s->order) {
        fprintf(stderr, "--order-agnostic draws an ordering per mask set: it excludes --order\n");
        return 2;
    }
    describe(s, s->desc, sizeof s->desc);
    return -1;
}

/* ---- the run ---------------------------------------------------------------- */

/* Where the training state lives: weights in w, the optimizer and the
   loop's position in o. A save writes both under the -next names first,
   then renames o into place before w, so a kill at any moment leaves either
   the old pair, or the new o with its weights in wnext (which the
   fingerprint in o tells apart). */
typedef struct { char w[1024], o[1024], wnext[1024], onext[1024]; } state_files;

typedef struct {
    settings s;
    ar_model m;
    ar_model draft;        /* --draft: loaded before any data is read */
    ar_graph g;
    ar_optim opt;
    ar_mnist data;
    ar_rng shuf, steprng;  /* the epochs' permutations; per-step noise and MADE's mask draws */
    int epoch, next, bad;  /* where training is: epoch, its next example; epochs without improvement */
    double best;           /* best validation NLL */
    long steps;            /* steps of this run (--max-steps) */
    float *xb;
    int *perm;
    state_files sf;
    char ckpt[1024];
} trainer;

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
    long v;
    if (!ex_parse_long(ar_meta_get(st, key), 0, INT_MAX, &v)) return 0;
    *out = (int)v;
    return 1;
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

/* Dimension at place t of a configuration's order */
static int place(const ar_model_cfg *c, int t) { return c->order ? c->order[t] : t; }

/* Loads the checkpoint at path into out (output only) if it holds the
   model the flags describe: the same kind, flags (as --help's), parameter
   shapes and order; else 1 with the reason in why. The checkpoint alone
   defines a model, so without this a resumed run with other flags would
   go on silently as the old model. 2 for another model, 1 for no model. */
static int load_like(trainer *t, ar_model *out, const char *path, char *why, size_t len)
{
    const ar_model *m = &t->m;
    ar_model_cfg flags = t->s.cfg;
    char desc[512];
    int k, same;
    if (ar_model_load(out, path) != AR_OK) {
        snprintf(why, len, "%s", out->err);
        return 1;
    }
    t->s.cfg = out->cfg; /* the file's configuration, described as the flags are */
    describe(&t->s, desc, sizeof desc);
    t->s.cfg = flags;
    same = out->kind == m->kind && out->D == m->D && out->levels == m->levels && out->ps.n == m->ps.n &&
           !strcmp(desc, t->s.desc);
    for (k = 0; same && k < m->ps.n; k++)
        same = !strcmp(m->ps.t[k]->name, out->ps.t[k]->name) && m->ps.t[k]->nd == out->ps.t[k]->nd &&
               !memcmp(m->ps.t[k]->shape, out->ps.t[k]->shape, sizeof(int) * (size_t)m->ps.t[k]->nd);
    if (!same)
        snprintf(why, len, "%s holds '%s' (%zu parameters), not the '%s' (%zu parameters) of these flags", path, desc,
                 out->ps.total, t->s.desc, m->ps.total);
    else {
        for (k = 0; same && k < m->D; k++) same = place(&m->cfg, k) == place(&out->cfg, k);
        if (!same) snprintf(why, len, "%s holds a %s in another order than --order asks", path, t->s.model);
    }
    if (!same) ar_model_free(out);
    return same ? 0 : 2;
}

/* Replaces the trainer's model with the one in path (load_like); 1 after printing why not */
static int adopt(trainer *t, const char *path, const char *context)
{
    ar_model lm;
    char why[1400];
    if (load_like(t, &lm, path, why, sizeof why)) {
        fprintf(stderr, "%s%s\n", context, why);
        return 1;
    }
    ar_model_free(&t->m);
    t->m = lm;
    return 0;
}

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
static int save_state(trainer *t, int epoch, int next, const ar_rng *shuffle)
{
    static const char *keys[] = {"epoch", "next", "batch", "bad"};
    int vals[4], k;
    ar_meta st;
    char num[64], hex[65];
    ar_status s = AR_OK;
    const state_files *f = &t->sf;
    vals[0] = epoch; vals[1] = next; vals[2] = t->s.batch; vals[3] = t->bad;
    ar_meta_init(&st);
    for (k = 0; k < 4 && !s; k++) {
        snprintf(num, sizeof num, "%d", vals[k]);
        s = ar_meta_set(&st, keys[k], num);
    }
    snprintf(num, sizeof num, "%.17g", t->best);
    if (!s) s = ar_meta_set(&st, "best", num);
    rng_hex(shuffle, hex);
    if (!s) s = ar_meta_set(&st, "shuffle_rng", hex);
    weights_hex(&t->m.ps, hex);
    if (!s) s = ar_meta_set(&st, "weights", hex);
    if (ar_params_check_finite(&t->m.ps) != AR_OK) {
        fprintf(stderr, "not saving the training state: %s\n", t->m.ps.err);
        s = AR_ERR_NUMERIC;
    } else if (s || ar_model_save(&t->m, f->wnext) != AR_OK ||
               ar_optim_save(&t->opt, &t->m.ps, &t->steprng, &st, f->onext) != AR_OK || rename(f->onext, f->o) != 0 ||
               rename(f->wnext, f->w) != 0) {
        fprintf(stderr, "could not save the training state: %s %s %s\n", t->m.err, t->m.ps.err, strerror(errno));
        s = AR_ERR_IO;
    }
    ar_meta_free(&st);
    return s != AR_OK;
}

/* Loads a saved training state into the trainer: model, optimizer, step
   RNG and the loop's position. Returns 0 if there is none (f->o absent), 1
   if loaded, 2 if loaded from a save that was cut short, -1 after printing
   why a state that is there cannot be used: never a silent restart. The
   weights are w, or wnext if a save was cut between its two renames; the
   optimizer's moments are loaded into the model that matched. */
static int load_state(trainer *t)
{
    const state_files *f = &t->sf;
    const char *cand[2], *b, *fp = NULL;
    char why[1400] = "";
    ar_meta st;
    ar_model lm;
    int saved_batch = t->s.batch, k;
    FILE *file = fopen(f->o, "rb");
    if (!file) return 0;
    fclose(file);
    cand[0] = f->w;
    cand[1] = f->wnext;
    ar_meta_init(&st);
    for (k = 0; k < 2; k++) {
        char hex[17];
        int r = load_like(t, &lm, cand[k], k && *why ? why + strlen(why) : why, sizeof why - strlen(why));
        if (r == 2) { /* not a weights file to skip: the run had other flags */
            fprintf(stderr, "--resume: %s; resume with that run's flags\n", why);
            ar_meta_free(&st);
            return -1;
        }
        if (r) {
            if (!k) strcat(why, "; "); /* the reason for w, then for wnext */
            continue;
        }
        if (ar_optim_load(&t->opt, &lm.ps, &t->steprng, &st, f->o) != AR_OK) {
            fprintf(stderr, "--resume: %s\n", lm.ps.err);
            ar_model_free(&lm);
            ar_meta_free(&st);
            return -1;
        }
        fp = ar_meta_get(&st, "weights"); /* absent in states saved by older trainers */
        weights_hex(&lm.ps, hex);
        if (!fp || !strcmp(fp, hex)) break;
        ar_model_free(&lm);
        snprintf(why + strlen(why), sizeof why - strlen(why), "%s: other weights%s", cand[k], k ? "" : "; ");
    }
    if (k == 2) {
        fprintf(stderr, "--resume: no weights in %s or %s match %s (%s); remove %s to start again from the best "
                "checkpoint\n", f->w, f->wnext, f->o, why, f->o);
        ar_meta_free(&st);
        return -1;
    }
    ar_model_free(&t->m);
    t->m = lm;
    if (!meta_int(&st, "epoch", &t->epoch) || !meta_int(&st, "next", &t->next) || !meta_int(&st, "bad", &t->bad) ||
        !(b = ar_meta_get(&st, "best")) || sscanf(b, "%lf", &t->best) != 1 ||
        !hex_rng(ar_meta_get(&st, "shuffle_rng"), &t->shuf) ||
        (ar_meta_get(&st, "batch") && !meta_int(&st, "batch", &saved_batch))) {
        fprintf(stderr, "--resume: %s lacks the training position (epoch, next, bad, best, shuffle_rng)\n", f->o);
        k = -1;
    } else if (saved_batch != t->s.batch) {
        fprintf(stderr, "--resume: the state in %s was saved with --batch %d, not %d\n", f->o, saved_batch,
                t->s.batch);
        k = -1;
    } else if (k == 1 && rename(f->wnext, f->w) != 0) { /* finish that save, or the next one could strand o */
        fprintf(stderr, "--resume: cannot rename %s to %s: %s\n", f->wnext, f->w, strerror(errno));
        k = -1;
    }
    ar_meta_free(&st);
    return k < 0 ? -1 : 1 + k;
}

/* x = (pixel + u)/256, u ~ U[0,1), for 8-bit pixels stored as pixel/255:
   data on [0,1] whose density bounds the pixels' probability. */
static void dequantize(float *x, size_t n, ar_rng *r)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = (float)((floor(x[i] * 255.0 + 0.5) + ar_rng_uniform(r)) / 256.0);
}

/* MNIST as the model takes it (see the top of the file); 1 after printing why not */
static int load_data(trainer *t)
{
    ar_mnist *d = &t->data;
    /* quantized: a categorical model, or --levels 2 (a 2-way softmax, binary like --levels 1 but
       thresholded, not drawn); ar_model_default sets cnn.levels = 1 for every kind */
    int L = t->m.levels > 2 || t->s.cfg.cnn.levels == 2 ? t->m.levels : 0;
    float *part[3];
    int count[3], j;
    size_t k;
    ar_rng noise;
    if (ar_mnist_load(d, t->s.data, t->m.levels == 2 && !L, AR_MNIST_SEED) != AR_OK) {
        fprintf(stderr, "%s\n(run 'make data' to fetch MNIST)\n", d->err);
        return 1;
    }
    if (d->rows != t->m.rows || d->cols != t->m.cols) {
        fprintf(stderr, "%s: %dx%d images, not %dx%d\n", t->s.data, d->rows, d->cols, t->m.rows, t->m.cols);
        return 1;
    }
    part[0] = d->train, part[1] = d->valid, part[2] = d->test;
    count[0] = d->n_train, count[1] = d->n_valid, count[2] = d->n_test;
    ar_rng_seed(&noise, AR_MNIST_SEED);
    for (j = 0; j < 3; j++) {
        for (k = 0; L && k < (size_t)count[j] * d->D; k++)
            part[j][k] = floorf(floorf(part[j][k] * 255 + 0.5f) * L / 256);
        if (t->m.levels == 0 && j) /* real: fixed noise for validation and test, fresh noise per training batch */
            dequantize(part[j], (size_t)count[j] * d->D, &noise);
    }
    return 0;
}

/* Output biases at the marginals of the training data as the model sees
   it: for a real model dequantized (10k examples of it), since raw
   intensities have constant dimensions, which would set near-zero widths. */
static int init_bias(trainer *t)
{
    int n = t->m.levels || t->data.n_train < 10000 ? t->data.n_train : 10000, bad;
    size_t len = (size_t)n * t->m.D;
    float *x = t->m.levels ? t->data.train : (float *)malloc(sizeof(float) * len);
    ar_rng noise;
    if (!x) return 1;
    if (x != t->data.train) {
        memcpy(x, t->data.train, sizeof(float) * len);
        ar_rng_seed(&noise, t->s.cfg.seed + 5);
        dequantize(x, len, &noise);
    }
    if ((bad = ar_model_init_bias(&t->m, x, n) != AR_OK)) fprintf(stderr, "%s\n", t->m.err);
    if (x != t->data.train) free(x);
    return bad;
}

/* Mean NLL per example of n examples into *nll: the model's likelihood
   (ar_model_log_prob; MADE: the mixture of all mask sets) when full, else
   ar_model_nll without gradients (MADE: the current mask set). */
static int evaluate(trainer *t, const float *x, int n, int full, double *nll)
{
    int B = t->s.eval_batch, i, k;
    float *lp = (float *)malloc(sizeof(float) * (size_t)B);
    double total = 0;
    for (i = 0; lp && i < n; i += B) {
        int b = n - i < B ? n - i : B;
        const float *xi = x + (size_t)i * t->m.D;
        ar_tensor *l = NULL;
        if (full && ar_model_log_prob(&t->m, xi, b, lp) != AR_OK) break;
        if (!full) {
            ar_graph_reset(&t->g);
            ar_graph_set_grad(&t->g, 0);
            l = ar_model_nll(&t->m, &t->g, xi, b, NULL);
            ar_graph_set_grad(&t->g, 1);
            if (!l) break;
        }
        for (k = 0; k < b; k++) total += full ? -lp[k] : l->x[k];
    }
    free(lp);
    if (i < n) fprintf(stderr, "evaluation failed: %s\n", lp ? t->m.err : "out of memory");
    *nll = total / n;
    return i < n;
}

/* One epoch from example t->next: 1 when it ran to its end, 0 when a
   signal or --max-steps stopped it after a step (t->next: where to go on),
   -1 after printing why it failed. */
static int train_epoch(trainer *t, double *train, int *steps)
{
    int D = t->m.D, n = t->data.n_train, B = t->s.batch, i, k;
    double te = ex_now(), tick = te;
    for (i = 0; i < n; i++) t->perm[i] = i;
    ar_rng_shuffle(&t->shuf, t->perm, n);
    *train = 0;
    *steps = 0;
    for (i = t->next; i + B <= n; i += B) {
        ar_tensor *nll, *loss;
        for (k = 0; k < B; k++)
            memcpy(t->xb + (size_t)k * D, t->data.train + (size_t)t->perm[i + k] * D, sizeof(float) * D);
        if (t->m.levels == 0) dequantize(t->xb, (size_t)B * D, &t->steprng);
        ar_graph_reset(&t->g);
        nll = ar_model_nll(&t->m, &t->g, t->xb, B, &t->steprng);
        loss = ar_mean(&t->g, nll, AR_ALL);
        ar_params_zero_grad(&t->m.ps);
        if (ar_backward(&t->g, loss) != AR_OK) {
            fprintf(stderr, "epoch %d step %d failed: %s\n", t->epoch, *steps, t->g.err);
            return -1;
        }
        /* The loss every step; every weight and gradient every 64 steps
           (reading them all costs 8% of a big MADE step, and a NaN weight
           behind a ReLU can leave the loss finite) and before anything is
           saved, so no checkpoint holds a NaN. */
        if (!isfinite(loss->x[0]) || (*steps % 64 == 0 && ar_params_check_finite(&t->m.ps) != AR_OK)) {
            if (isfinite(loss->x[0])) fprintf(stderr, "epoch %d step %d: %s", t->epoch, *steps, t->m.ps.err);
            else fprintf(stderr, "epoch %d step %d: the loss is %g", t->epoch, *steps, (double)loss->x[0]);
            fprintf(stderr, "; stopping, %s is the last good checkpoint\n", t->ckpt);
            return -1;
        }
        if (ar_optim_step(&t->opt, &t->m.ps) != AR_OK) {
            fprintf(stderr, "%s\n", t->m.ps.err);
            return -1;
        }
        *train += loss->x[0];
        ++*steps;
        if (ex_now() - tick > 30) { /* long epochs: a progress line every 30 s */
            double rate = *steps * B / ((tick = ex_now()) - te); /* this run's examples: a resumed epoch started late */
            printf("  epoch %d: %3.0f%%  running train NLL %.2f  %.0f ex/s  epoch ETA %.0fs\n", t->epoch,
                   100.0 * (i + B) / n, *train / *steps, rate, (n - i - B) / rate);
            fflush(stdout);
        }
        if (stop_requested || (t->s.max_steps && ++t->steps >= t->s.max_steps)) {
            t->next = i + B;
            return 0;
        }
    }
    t->next = 0;
    return 1;
}

/* <model>-samples.png, -probs.png (the mean of each conditional drawn
   from) and -completions.png (the top half of test digits given) */
static void write_images(trainer *t, ar_rng *rng)
{
    ar_model *m = &t->m;
    int N = 100, D = m->D, P = m->levels > 2 ? m->levels : 1, v, which;
    size_t k, n = (size_t)N * D;
    float *x = (float *)malloc(sizeof(float) * n), *mean = (float *)malloc(sizeof(float) * n);
    float *probs = (float *)malloc(sizeof(float) * n * P), scale = m->levels > 2 ? 1.0f / (m->levels - 1) : 1;
    unsigned char *known = (unsigned char *)malloc(n);
    ar_sample_opts o = ar_sample_defaults();
    char png[1100];
    for (k = 0; known && k < n; k++) known[k] = (int)(k % D) < m->rows / 2 * m->cols;
    for (which = 0; which < 3 && x && mean && probs && known; which++) {
        const char *name = which == 0 ? "samples" : which == 1 ? "probs" : "completions";
        if (which == 1 && m->levels == 0) continue; /* real data: its means are in the model's own units */
        if (which != 1) { /* samples: their conditionals too; completions */
            int64_t counts[2] = {0, 0};
            double t0 = ex_now();
            o = ar_sample_defaults();
            o.probs = which == 0 ? probs : NULL;
            o.given = which == 2 ? t->data.test : NULL;
            o.known = which == 2 ? known : NULL;
            if (t->s.draft) {
                o.draft = &t->draft;
                o.draft_k = t->s.draft_k;
                o.draft_counts = counts;
            }
            if (ar_model_sample(m, N, &o, rng, x) != AR_OK) {
                fprintf(stderr, "sampling %s: %s\n", name, m->err);
                break;
            }
            if (t->s.draft)
                printf("%s: %d x %d values in %.1fs, speculative (k %d): %.1f%% of %lld proposals stood\n", name, N, D,
                       ex_now() - t0, o.draft_k, counts[0] ? 100.0 * counts[1] / counts[0] : 0.0, (long long)counts[0]);
        }
        for (k = 0; which == 1 && k < n; k++) /* the conditional means */
            for (mean[k] = P == 1 ? probs[k] : 0, v = 0; P > 1 && v < P; v++) mean[k] += v * probs[k * P + v];
        for (k = 0; k < n; k++) (which == 1 ? mean : x)[k] *= scale;
        snprintf(png, sizeof png, "%s/%s-%s.png", t->s.out, t->s.model, name);
        if (ex_write_grid(png, which == 1 ? mean : x, N, m->rows, m->cols, 10))
            fprintf(stderr, "cannot write %s\n", png);
        else
            printf("wrote %s\n", png);
    }
    if (!x || !mean || !probs || !known) fprintf(stderr, "no images: out of memory\n");
    free(x), free(mean), free(probs), free(known);
}

int main(int argc, char **argv)
{
    static trainer t; /* static: big */
    settings *s = &t.s;
    double t0 = ex_now(), nll;
    ar_rng rng;
    int r, *order = NULL, k, finished = 0;
    if ((r = parse_settings(s, argc, argv)) >= 0) return r;
    if (s->order) { /* zigzag: rows alternate direction; random: a permutation from the seed */
        int R = s->cfg.rows, C = s->cfg.cols;
        if (!(order = (int *)malloc(sizeof(int) * (size_t)R * C))) return 1;
        for (k = 0; k < R * C; k++) order[k] = s->order == 1 ? k / C * C + (k / C % 2 ? C - 1 - k % C : k % C) : k;
        ar_rng_seed(&rng, s->cfg.seed + 4);
        if (s->order == 2) ar_rng_shuffle(&rng, order, R * C);
        s->cfg.order = order;
    }
    r = ar_model_init(&t.m, &s->cfg); /* checks the configuration before any data is read */
    free(order);
    s->cfg.order = NULL;
    if (r != AR_OK) {
        fprintf(stderr, "%s: %s\n", s->desc, t.m.err);
        return 2;
    }
    if (s->draft && ar_model_load(&t.draft, s->draft) != AR_OK) {
        fprintf(stderr, "--draft %s: %s\n", s->draft, t.draft.err);
        return 2;
    }
    if (s->draft && (t.draft.D != t.m.D || t.draft.levels != t.m.levels)) {
        fprintf(stderr, "--draft %s: a %s over %d values with %d levels; the model has %d values, %d levels\n", s->draft,
                ar_kind_name(t.draft.kind), t.draft.D, t.draft.levels, t.m.D, t.m.levels);
        return 2;
    }
    if (mkdir(s->out, 0777) != 0 && errno != EEXIST) { /* checkpoints go there: fail now, not after an epoch */
        fprintf(stderr, "cannot create the output directory '%s': %s\n", s->out, strerror(errno));
        return 1;
    }
    if (load_data(&t)) return 1;
    if (init_bias(&t)) return 1;
    t.opt = s->optim ? ar_optim_adagrad((float)s->lr) : ar_optim_adam((float)s->lr);
    t.opt.weight_decay = (float)s->wd; /* L2, as torch.optim.Adam's weight_decay */
    ar_rng_seed(&rng, s->cfg.seed + 1);
    ar_rng_seed(&t.shuf, s->cfg.seed + 2);
    ar_rng_seed(&t.steprng, s->cfg.seed + 3);
    t.epoch = 1;
    t.best = 1e30;
    snprintf(t.ckpt, sizeof t.ckpt, "%s/%s.safetensors", s->out, s->model);
    state_files_of(&t.sf, s->out, s->model);
    if (s->resume) {
        if ((r = load_state(&t)) < 0) return 1;
        if (r > 0) {
            if (s->lr_given) t.opt.lr = (float)s->lr; /* asked for: a new rate from here on */
            printf("resumed from %s%s at epoch %d, example %d (lr %g)\n", t.sf.w,
                   r == 2 ? " (its save was cut short)" : "", t.epoch, t.next, (double)t.opt.lr);
        } else if (adopt(&t, t.ckpt, "--resume: ")) {
            return 1;
        } else {
            printf("resumed from %s (weights only: no saved training state)\n", t.ckpt);
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    t.xb = (float *)malloc(sizeof(float) * (size_t)s->batch * t.m.D);
    t.perm = (int *)malloc(sizeof(int) * (size_t)t.data.n_train);
    if (!t.xb || !t.perm || ar_graph_init(&t.g, 0) != AR_OK) return 1;
    printf("%s: D=%d, %zu parameters", s->desc, t.m.D, t.m.ps.total);
    if (ar_cnn_receptive_field(&t.m)) printf(", receptive field %d", ar_cnn_receptive_field(&t.m));
    printf("; %d train / %d valid / %d test, batch %d, %s lr %g\n", t.data.n_train, t.data.n_valid, t.data.n_test,
           s->batch, t.opt.kind == AR_OPTIM_ADAGRAD ? "Adagrad" : "Adam", (double)t.opt.lr);
    for (k = t.epoch; t.epoch <= s->epochs && t.bad < s->patience; t.epoch++) {
        double te = ex_now(), train, valid;
        ar_rng epoch_rng = t.shuf; /* the permutation depends only on this state */
        int steps;
        if ((r = train_epoch(&t, &train, &steps)) < 0) return 1;
        if (r == 0) { /* interrupted: save where we are */
            if (save_state(&t, t.epoch, t.next, &epoch_rng)) return 1;
            printf("interrupted in epoch %d: saved %s and %s (continue with --resume)\n", t.epoch, t.sf.w, t.sf.o);
            return 130;
        }
        if (evaluate(&t, t.data.valid, t.data.n_valid, 0, &valid)) return 1;
        if (valid < t.best) {
            t.best = valid;
            t.bad = 0;
            if (ar_params_check_finite(&t.m.ps) != AR_OK || ar_model_save(&t.m, t.ckpt) != AR_OK) {
                fprintf(stderr, "not saving %s: %s%s\n", t.ckpt, t.m.ps.err, t.m.err);
                return 1;
            }
        } else if (++t.bad % 4 == 0) {
            t.opt.lr *= 0.5f; /* plateau: halve the step size */
        }
        t.opt.lr *= (float)s->lr_decay; /* saved with the optimizer state, so a resumed run keeps the schedule */
        printf("epoch %3d/%d  train %.2f  valid %.2f nats  (best %.2f)  %.0f ex/s  %.0fs elapsed, ETA %.0fs%s\n",
               t.epoch, s->epochs, steps ? train / steps : NAN, valid, t.best, steps * s->batch / (ex_now() - te),
               ex_now() - t0, (ex_now() - t0) / (t.epoch - k + 1) * (s->epochs - t.epoch), t.bad ? "" : "  [saved]");
        fflush(stdout);
        if (t.epoch == s->epochs || t.bad >= s->patience) { /* done: on to the test set, whatever the signals */
            finished = 1;
            break;
        }
        /* The state after every epoch: a run killed without a chance to
           save loses at most this epoch. */
        if (save_state(&t, t.epoch + 1, 0, &t.shuf)) return 1;
        if (stop_requested) { /* the signal came during validation */
            printf("interrupted after epoch %d: saved %s and %s (continue with --resume)\n", t.epoch, t.sf.w, t.sf.o);
            return 130;
        }
    }
    if (finished) { /* trained to the end: a later --resume starts afresh from the best weights */
        remove(t.sf.o); /* first: without it the weights are never read */
        remove(t.sf.w);
    } /* else (e.g. --resume --epochs 0 to evaluate) the state stays, to go on from later */
    if (t.best < 1e30 && adopt(&t, t.ckpt, "")) return 1; /* the best weights, if an epoch was validated */
    if (evaluate(&t, t.data.test, t.data.n_test, 1, &nll)) return 1;
    if (t.best == 1e30) t.best = NAN; /* no epoch ran (--epochs 0): nothing validated */
    if (t.m.levels == 0)
        printf("test log-likelihood %.2f nats per example of dequantized x in [0,1]^%d; %.4f bits/dim for 8-bit "
               "pixels (best valid NLL %.2f, %.0fs)\n", -nll, t.m.D, (nll + t.m.D * log(256.0)) / (t.m.D * log(2.0)),
               t.best, ex_now() - t0);
    else
        printf("test NLL %.2f nats per example, %.4f bits/dim (%s; best valid %.2f, %.0fs)\n", nll,
               nll / (t.m.D * log(2.0)), s->desc, t.best, ex_now() - t0);
    write_images(&t, &rng);
    free(t.xb), free(t.perm);
    ar_graph_free(&t.g);
    ar_model_free(&t.m);
    ar_model_free(&t.draft);
    ar_mnist_free(&t.data);
    return 0;
}
