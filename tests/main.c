#include <stdlib.h>
#include <string.h>
#include "test.h"

int t_failed;
static int n_pass, n_fail;
static const char *filter;

void t_fail(const char *file, int line, const char *what)
{
    printf("    %s:%d: %s\n", file, line, what);
    t_failed = 1;
}

void t_run(const char *name, void (*fn)(void))
{
    if (filter && !strstr(name, filter)) return;
    t_failed = 0;
    t_alloc_fail_in = 0;
    fn();
    t_alloc_fail_in = 0;
    if (t_failed) n_fail++; else n_pass++;
    printf("%s %s\n", t_failed ? "FAIL" : "ok  ", name);
    fflush(stdout);
}

void tests_core(void);
void tests_ops(void);
void tests_optim(void);
void tests_io(void);
void tests_made(void);
void tests_nade(void);
void tests_rnade(void);
void tests_fuzz(void);
void tests_badinput(void);
void tests_tfm(void);
void tests_cnn(void);
void tests_model(void);
void tests_cxx(void);

int main(int argc, char **argv)
{
    if (argc > 1) filter = argv[1]; /* run only tests whose name contains it */
    tests_core();
    tests_ops();
    tests_optim();
    tests_io();
    tests_made();
    tests_nade();
    tests_rnade();
    tests_fuzz();
    tests_badinput();
    tests_tfm();
    tests_cnn();
    tests_model();
    tests_cxx();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
