/* Replays every input the fuzzers ever crashed on (tests/fuzz/regress/),
   through the same target functions, so a fixed bug stays fixed. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include "test.h"

static int fuzz_failed;
#define FUZZ_CHECK(c) do { if (!(c)) fuzz_failed = 1; } while (0)
#include "fuzz/targets.h"

#ifndef AR_SOURCE_DIR
#define AR_SOURCE_DIR "."
#endif

static int replay(const char *kind, int (*target)(const uint8_t *, size_t), int *count)
{
    char dir[512], path[1024];
    DIR *d;
    struct dirent *e;
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regress/%s", AR_SOURCE_DIR, kind);
    if (!(d = opendir(dir))) return 0;
    while ((e = readdir(d))) {
        FILE *f;
        unsigned char *buf;
        long n;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!(f = fopen(path, "rb"))) continue;
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
        if (n >= 0 && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            fuzz_failed = 0;
            target(buf, (size_t)n);
            if (fuzz_failed) printf("    regression input %s fails again\n", path);
            (*count)++;
        }
        free(buf);
        fclose(f);
        if (fuzz_failed) break;
    }
    closedir(d);
    return !fuzz_failed;
}

static void test_fuzz_regressions(void)
{
    int count = 0;
    CHECK(replay("safetensors", fuzz_safetensors, &count));
    CHECK(replay("idx", fuzz_idx, &count));
    CHECK(replay("model", fuzz_model, &count));
    CHECK(replay("api", fuzz_api, &count));
    CHECK_MSG(count >= 1, "no regression inputs found under %s/tests/fuzz/regress", AR_SOURCE_DIR);
}

void tests_fuzz(void)
{
    t_run("fuzz/regressions", test_fuzz_regressions);
}
