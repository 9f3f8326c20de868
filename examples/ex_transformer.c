/* A character-level Transformer through the ar_model interface: train a
   little, evaluate, sample, save, load. Text enters as tokens: each byte
   seen in the file gets an id in [0, V), and one example is a window of
   D = 64 characters. The Transformer takes them as int tokens
   (ar_tfm_nll: position t predicts tokens[t] from the ones before it; the
   shift and the start token are inside) or, like every ar_model, as
   floats (ar_model_log_prob, ar_model_sample). Sampling: a prompt given as
   a prefix (opts.given/known), temperature and top-p; then the same by
   hand, one token at a time through the KV cache (ar_tfm_step and
   ar_sample_logits), as a streaming generator would.

   build: make .build/ex_transformer    run: .build/ex_transformer [text-file]    (default README.md) */
#define AR_IMPLEMENTATION
#include "../ar.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T 64      /* characters per example */
#define BATCH 32
#define N_EVAL 64 /* held-out windows, at most */
#define STEPS 200 /* a small file (the README) is learned by heart soon after */

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "README.md", *prompt = "The model ";
    static unsigned char text[1 << 20];
    static int id[256], tok[BATCH * T];
    static float xs[N_EVAL * T], lp[N_EVAL];
    static unsigned char known[2 * T];
    unsigned char byte[256];
    ar_model m, m2;
    ar_model_cfg cfg;
    ar_graph g;
    ar_rng rng;
    ar_optim opt = ar_optim_adamw(2e-3f, 0.01f);
    ar_sample_opts so;
    ar_tfm_cache c;
    float logits[256], scratch[3 * 256];
    size_t n, split, i;
    int V = 0, s, b, t, tk, n_eval;
    double nll = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    n = fread(text, 1, sizeof text, f);
    fclose(f);
    for (i = 0; i < 256; i++) id[i] = -1;
    for (i = 0; i < n; i++)
        if (id[text[i]] < 0) byte[V] = text[i], id[text[i]] = V++; /* the vocabulary: bytes seen */
    split = n * 9 / 10; /* the last tenth is held out */
    n_eval = (int)((n - split) / T) < N_EVAL ? (int)((n - split) / T) : N_EVAL;
    if (split < 8 * T + 1 || n_eval < 2) {
        fprintf(stderr, "%s: too short\n", path);
        return 1;
    }
    cfg = ar_model_default(AR_TRANSFORMER, 1, T); /* rotary positions, d 64, 4 heads, 2 layers */
    cfg.tfm.V = V;
    if (ar_model_init(&m, &cfg) != AR_OK || ar_graph_init(&g, 0) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    printf("%s: %zu bytes, %d distinct; %zu parameters\n", path, n, V, m.ps.total);
    ar_rng_seed(&rng, 1);
    for (s = 1; s <= STEPS; s++) { /* train on random windows */
        ar_tensor *loss;
        for (b = 0; b < BATCH; b++) {
            size_t at = ar_rng_below(&rng, (uint32_t)(split - T));
            for (t = 0; t < T; t++) tok[b * T + t] = id[text[at + t]];
        }
        ar_graph_reset(&g);
        loss = ar_scale(&g, ar_mean(&g, ar_tfm_nll(&m, &g, tok, BATCH, T), AR_ALL), 1.0f / T); /* per character */
        ar_params_zero_grad(&m.ps);
        if (ar_backward(&g, loss) != AR_OK) {
            fprintf(stderr, "%s\n", g.err);
            return 1;
        }
        ar_params_clip_grad_norm(&m.ps, 1.0);
        if (ar_optim_step(&opt, &m.ps) != AR_OK) {
            fprintf(stderr, "%s\n", m.ps.err);
            return 1;
        }
        if (s % 50 == 0) printf("step %d: %.3f nats/char\n", s, (double)loss->x[0]);
    }
    for (b = 0; b < n_eval; b++) /* evaluate on the held-out windows, as floats */
        for (t = 0; t < T; t++) xs[b * T + t] = (float)id[text[split + (size_t)b * T + t]];
    if (ar_model_log_prob(&m, xs, n_eval, lp) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (b = 0; b < n_eval; b++) nll -= lp[b];
    printf("held-out: %.3f nats/char over %d windows (uniform over the bytes seen: %.3f)\n", nll / (n_eval * T),
           n_eval, log((double)V));

    so = ar_sample_defaults(); /* sample: a prompt, then temperature 0.8 and top-p 0.9 */
    so.temperature = 0.8f;
    so.top_p = 0.9f;
    for (t = 0; t < 2 * T; t++) {
        known[t] = t % T < (int)strlen(prompt) && id[(unsigned char)prompt[t % T]] >= 0;
        xs[t] = known[t] ? (float)id[(unsigned char)prompt[t % T]] : 0;
    }
    so.given = xs;
    so.known = known;
    if (ar_model_sample(&m, 2, &so, &rng, xs) != AR_OK) {
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    for (b = 0; b < 2; b++, printf("|\n"))
        for (t = 0, printf("sample %d: |", b); t < T; t++) {
            unsigned char ch = byte[(int)xs[b * T + t]];
            putchar(ch == '\n' ? ' ' : ch);
        }

    if (ar_tfm_cache_init(&c, &m, 1) != AR_OK) { /* the same by hand, through the KV cache */
        fprintf(stderr, "%s\n", m.err);
        return 1;
    }
    printf("streamed: |");
    for (t = 0, tk = 0; t < T; t++) {
        if (ar_tfm_step(&m, &c, t ? &tk : NULL, logits) != AR_OK) break;
        tk = ar_sample_logits(logits, V, &so, &rng, scratch);
        if (tk < 0) break;
        putchar(byte[tk] == '\n' ? ' ' : byte[tk]);
    }
    printf("|\n");
    ar_tfm_cache_free(&c);

    if (ar_model_save(&m, "ex_transformer.safetensors") != AR_OK ||
        ar_model_load(&m2, "ex_transformer.safetensors") != AR_OK || ar_model_log_prob(&m2, xs, 1, lp) != AR_OK) {
        fprintf(stderr, "%s %s\n", m.err, m2.err);
        return 1;
    }
    printf("loaded ex_transformer.safetensors (V %d, %d layers): log p(sample 0) = %.3f\n", m2.cfg.tfm.V,
           m2.cfg.tfm.layers, (double)lp[0]);
    ar_model_free(&m2);
    ar_model_free(&m);
    ar_graph_free(&g);
    return 0;
}
