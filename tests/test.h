/* Minimal test runner: each test is a void function; CHECK stops it on the
   first failure. The run ends with the line "N passed, N failed". */
#ifndef AR_TEST_H
#define AR_TEST_H
#include <math.h>
#include <stdio.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

extern int t_failed;               /* set when the current test failed */
extern size_t t_alloc_count;       /* calls to AR_MALLOC/AR_REALLOC so far */
extern long t_alloc_fail_in;       /* >0: that many more allocations succeed, then all fail */
void t_fail(const char *file, int line, const char *what);
/* Shared by the binary-model tests (defined in test_made.c). */
struct ar_sample_opts;
float *t_all_binary(int D);                          /* all 2^D vectors, bit d of the row is x_d */
int t_code_of(const float *x, int D);               /* the row of x in t_all_binary */
double t_cond1(double m1, double m0, const struct ar_sample_opts *o); /* p(1) after the options */
double t_chi2_ratio(const int *counts, const double *q, int n, int N); /* chi-square / threshold */
void t_run(const char *name, void (*fn)(void));

#ifdef __cplusplus
}
#endif

#define CHECK(c)                                                   \
    do {                                                           \
        if (!(c)) { t_fail(__FILE__, __LINE__, #c); return; }      \
    } while (0)
#define CHECK_MSG(c, ...)                                          \
    do {                                                           \
        if (!(c)) {                                                \
            char t__m[512];                                        \
            snprintf(t__m, sizeof t__m, __VA_ARGS__);              \
            t_fail(__FILE__, __LINE__, t__m);                      \
            return;                                                \
        }                                                          \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                        \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, %s = %.9g, tol %g", \
              #a, (double)(a), #b, (double)(b), (double)(tol))

#endif
