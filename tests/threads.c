/* A model is used by one thread at a time (it keeps scratch and MADE's
   current mask set), so each thread loads its OWN models from the same
   checkpoint bytes, then samples, evaluates and takes a training step
   concurrently with the other. Each must get exactly what a sequential run
   gets. Built with -fsanitize=thread, so a data race in ar.h (shared
   state behind separate objects) fails the run. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#define AR_IMPLEMENTATION
#include "../ar.h"

enum { N = 64, D = 20, NK = 3 };

typedef struct {
    const unsigned char *bytes[NK]; /* the checkpoints, shared read-only */
    size_t len[NK];
    uint64_t seed;
    float x[NK][N * D], lp[NK][N], lp_after[N];
    ar_status s;
    char err[AR_ERR_LEN];
} job;

static void *run(void *arg)
{
    job *j = (job *)arg;
    ar_model m[NK];
    ar_graph g;
    ar_rng r;
    ar_optim opt = ar_optim_adam(1e-2f);
    ar_sample_opts o = ar_sample_defaults();
    int k, loaded = 0;
    j->s = ar_graph_init(&g, 0);
    ar_rng_seed(&r, j->seed);
    for (k = 0; k < NK && j->s == AR_OK; k++, loaded++)
        if ((j->s = ar_model_load_mem(&m[k], j->bytes[k], j->len[k])) != AR_OK) memcpy(j->err, m[k].err, AR_ERR_LEN);
    /* sampling (MADE: each example draws one of its mask sets), then the
       log-probabilities of the samples */
    o.temperature = 0.8f;
    for (k = 0; k < NK && j->s == AR_OK; k++)
        if ((j->s = ar_model_sample(&m[k], N, &o, &r, j->x[k])) != AR_OK ||
            (j->s = ar_model_log_prob(&m[k], j->x[k], N, j->lp[k])) != AR_OK)
            memcpy(j->err, m[k].err, AR_ERR_LEN);
    /* a training step of the MADE on its own samples (a random mask set), then evaluation again */
    if (j->s == AR_OK) {
        ar_tensor *nll = ar_model_nll(&m[0], &g, j->x[0], N, &r);
        ar_params_zero_grad(&m[0].ps);
        if ((j->s = ar_backward(&g, ar_mean(&g, nll, AR_ALL))) != AR_OK) memcpy(j->err, g.err, AR_ERR_LEN);
        else if ((j->s = ar_optim_step(&opt, &m[0].ps)) != AR_OK) memcpy(j->err, m[0].ps.err, AR_ERR_LEN);
        else if ((j->s = ar_model_log_prob(&m[0], j->x[0], N, j->lp_after)) != AR_OK)
            memcpy(j->err, m[0].err, AR_ERR_LEN);
    }
    for (k = 0; k < loaded; k++) ar_model_free(&m[k]);
    ar_graph_free(&g);
    return NULL;
}

int main(void)
{
    static job seq[2], par[2];
    pthread_t th[2];
    ar_model m[NK];
    ar_model_cfg c[NK];
    unsigned char *bytes[NK];
    size_t len[NK];
    ar_rng r;
    int i, k, pass = 0, fail = 0;
    c[0] = ar_model_default(AR_MADE, D, 1);
    c[0].made.hidden[0] = 16;
    c[0].made.n_masks = 3;
    c[0].made.order_agnostic = 1;
    c[1] = ar_model_default(AR_NADE, D, 1);
    c[1].nade.H = 12;
    c[2] = ar_model_default(AR_RNADE, D, 1);
    c[2].nade.H = 8;
    c[2].nade.K = 3;
    ar_rng_seed(&r, 5);
    for (k = 0; k < NK; k++) {
        if (ar_model_init(&m[k], &c[k]) != AR_OK) {
            printf("FAIL threads/init %s: %s\n", ar_kind_name(c[k].kind), m[k].err);
            return 1;
        }
        for (i = 0; i < m[k].ps.n; i++) ar_init_uniform(m[k].ps.t[i], &r, -1, 1);
        if (ar_model_save_mem(&m[k], &bytes[k], &len[k]) != AR_OK) {
            printf("FAIL threads/save %s: %s\n", ar_kind_name(c[k].kind), m[k].err);
            return 1;
        }
        ar_model_free(&m[k]);
    }
    for (i = 0; i < 2; i++) {
        for (k = 0; k < NK; k++) {
            seq[i].bytes[k] = par[i].bytes[k] = bytes[k];
            seq[i].len[k] = par[i].len[k] = len[k];
        }
        seq[i].seed = par[i].seed = 100 + (uint64_t)i;
        run(&seq[i]);
    }
    for (i = 0; i < 2; i++) pthread_create(&th[i], NULL, run, &par[i]);
    for (i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (i = 0; i < 2; i++) {
        int ok = seq[i].s == AR_OK && par[i].s == AR_OK && !memcmp(seq[i].x, par[i].x, sizeof seq[i].x) &&
                 !memcmp(seq[i].lp, par[i].lp, sizeof seq[i].lp) &&
                 !memcmp(seq[i].lp_after, par[i].lp_after, sizeof seq[i].lp_after);
        /* the two seeds must give different samples, or the check above is empty */
        ok = ok && memcmp(seq[0].x, seq[1].x, sizeof seq[0].x) != 0;
        printf("%s threads/own_models_%d", ok ? "ok  " : "FAIL", i);
        if (seq[i].s != AR_OK || par[i].s != AR_OK)
            printf(": %s / %s", seq[i].s != AR_OK ? seq[i].err : "ok", par[i].s != AR_OK ? par[i].err : "ok");
        printf("\n");
        pass += ok;
        fail += !ok;
    }
    for (k = 0; k < NK; k++) ar_free(bytes[k]);
    printf("%d passed, %d failed\n", pass, fail);
    return fail != 0;
}
