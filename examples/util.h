/* Helpers shared by the example programs: timing, argument parsing, PNG
   grids (stb_image_write from Debian's libstb-dev). Not part of ar.h. */
#ifndef AR_EXAMPLES_UTIL_H
#define AR_EXAMPLES_UTIL_H
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime; must precede every #include */
#endif
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

/* "--name value" lookups (the last occurrence wins, so later flags
   override defaults); exit with a message on a malformed number. */
static const char *ex_arg(int argc, char **argv, const char *name, const char *def)
{
    int i;
    for (i = argc - 2; i >= 1; i--)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}
static int ex_flag(int argc, char **argv, const char *name)
{
    int i;
    for (i = 1; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}
static double ex_num(int argc, char **argv, const char *name, double def)
{
    const char *s = ex_arg(argc, argv, name, NULL);
    char *end;
    double v;
    if (!s) return def;
    v = strtod(s, &end);
    if (*end || end == s) {
        fprintf(stderr, "%s: '%s' is not a number\n", name, s);
        exit(2);
    }
    return v;
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
