/* Helpers shared by the example programs: timing, strict parsing of
   command-line numbers, PNG grids (stb_image_write from Debian's
   libstb-dev). Not part of ar.h. */
#ifndef AR_EXAMPLES_UTIL_H
#define AR_EXAMPLES_UTIL_H
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime; must precede every #include */
#endif
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBIW_WINDOWS_UTF8 0
#include <stb/stb_image_write.h>

static double ex_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Strict numbers: the whole string is the number (no blanks, no trailing
   text, no empty string) and it is in range; 1 on success, 0 otherwise
   (*out untouched). strtol & co. alone accept " 12", "12abc" and "". */
static int ex_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    if (!s || !*s || !(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9'))) return 0;
    errno = 0;
    v = strtol(s, &end, 10);
    if (*end || errno || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}
static int ex_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!s || !(*s >= '0' && *s <= '9')) return 0; /* strtoull takes "-1" as 2^64-1 */
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end || errno) return 0;
    *out = (uint64_t)v;
    return 1;
}
static int ex_parse_double(const char *s, double *out) /* finite */
{
    char *end;
    double v;
    if (!s || !*s || !(*s == '-' || *s == '+' || *s == '.' || (*s >= '0' && *s <= '9'))) return 0;
    errno = 0;
    v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

/* n images of rows x cols values in [0,1] as a grid PNG, `per_row` across,
   1-pixel gray borders. Returns 0 on success. */
static int ex_write_grid(const char *path, const float *img, int n, int rows, int cols, int per_row)
{
    int gr = (n + per_row - 1) / per_row, W = per_row * (cols + 1) + 1, H = gr * (rows + 1) + 1, i, r, c, ok;
    unsigned char *px = (unsigned char *)malloc((size_t)W * H);
    if (!px) return -1;
    memset(px, 96, (size_t)W * H);
    for (i = 0; i < n; i++)
        for (r = 0; r < rows; r++)
            for (c = 0; c < cols; c++) {
                float v = img[(size_t)i * rows * cols + r * cols + c];
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                px[(size_t)(1 + (i / per_row) * (rows + 1) + r) * W + 1 + (i % per_row) * (cols + 1) + c] =
                    (unsigned char)(255.0f * v + 0.5f);
            }
    ok = stbi_write_png(path, W, H, 1, px, W);
    free(px);
    return ok ? 0 : -1;
}

#endif
