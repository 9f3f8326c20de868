/* Two threads sampling from one shared model, each with its own RNG and
   graph, must get exactly what sequential runs get. Built with
   -fsanitize=thread, so a data race in ar.h fails the run. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#define AR_IMPLEMENTATION
#include "../ar.h"

enum { N = 64, D = 20 };

typedef struct {
    ar_made *made;
    ar_nade *nade;
    uint64_t seed;
    float x[N * D], y[N * D], lp[N];
    ar_status s;
} job;

static void *run(void *arg)
{
    job *j = (job *)arg;
    ar_graph g;
    ar_rng r;
    if ((j->s = ar_graph_init(&g, 0)) != AR_OK) return NULL;
    ar_rng_seed(&r, j->seed);
    j->s = ar_made_sample(j->made, &g, N, &r, 1.0f, NULL, NULL, j->x, NULL);
    ar_graph_reset(&g);
    if (j->s == AR_OK) j->s = ar_nade_sample(j->nade, &g, N, &r, 1.0f, NULL, NULL, j->y, NULL);
    ar_graph_reset(&g);
    if (j->s == AR_OK) j->s = ar_nade_log_prob(j->nade, &g, j->x, N, j->lp);
    ar_graph_free(&g);
    return NULL;
}

int main(void)
{
    static job seq[2], par[2];
    pthread_t th[2];
    ar_made made;
    ar_nade nade;
    ar_made_cfg mc = ar_made_default(D);
    ar_nade_cfg nc = ar_nade_default(D);
    ar_rng r;
    int i, pass = 0, fail = 0;
    mc.hidden[0] = 16;
    mc.direct = 1;
    nc.H = 12;
    if (ar_made_init(&made, &mc) != AR_OK || ar_nade_init(&nade, &nc) != AR_OK) return 1;
    ar_rng_seed(&r, 5);
    for (i = 0; i < made.ps.n; i++) ar_init_uniform(made.ps.t[i], &r, -1, 1);
    for (i = 0; i < nade.ps.n; i++) ar_init_uniform(nade.ps.t[i], &r, -1, 1);
    for (i = 0; i < 2; i++) {
        seq[i].made = par[i].made = &made;
        seq[i].nade = par[i].nade = &nade;
        seq[i].seed = par[i].seed = 100 + (uint64_t)i;
        run(&seq[i]);
    }
    for (i = 0; i < 2; i++) pthread_create(&th[i], NULL, run, &par[i]);
    for (i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (i = 0; i < 2; i++) {
        int ok = seq[i].s == AR_OK && par[i].s == AR_OK && !memcmp(seq[i].x, par[i].x, sizeof seq[i].x) &&
                 !memcmp(seq[i].y, par[i].y, sizeof seq[i].y) && !memcmp(seq[i].lp, par[i].lp, sizeof seq[i].lp);
        printf("%s threads/shared_model_%d\n", ok ? "ok  " : "FAIL", i);
        pass += ok;
        fail += !ok;
    }
    ar_made_free(&made);
    ar_nade_free(&nade);
    printf("%d passed, %d failed\n", pass, fail);
    return fail != 0;
}
