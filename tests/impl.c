/* The one translation unit with the implementation, built with a counting,
   failure-injecting allocator so tests can see every allocation. */
#include <stdlib.h>
#include "test.h"

size_t t_alloc_count;
long t_alloc_fail_in;

static int t_alloc_ok(void)
{
    t_alloc_count++;
    if (t_alloc_fail_in > 0 && --t_alloc_fail_in == 0) {
        t_alloc_fail_in = -1; /* from now on every allocation fails */
        return 0;
    }
    return t_alloc_fail_in >= 0;
}
static void *t_malloc(size_t n) { return t_alloc_ok() ? malloc(n) : NULL; }
static void *t_realloc(void *p, size_t n) { return t_alloc_ok() ? realloc(p, n) : NULL; }

#define AR_MALLOC(n) t_malloc(n)
#define AR_REALLOC(p, n) t_realloc(p, n)
#define AR_FREE(p) free(p)
#define AR_IMPLEMENTATION
#include "../ar.h"
