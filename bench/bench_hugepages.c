/* bench_hugepages.c -- large flat indexes with and without transparent huge
 * pages (core/hugepages.cpp), as ratios measured in one run.
 *
 * Each round builds the same IndexFlatL2 (--n vectors, d = 128) twice, once
 * with FAISSX_HUGEPAGES=1 (the default: the code array is advised
 * MADV_HUGEPAGE before it is filled) and once with FAISSX_HUGEPAGES=0; the
 * order alternates between rounds. faissx reads the variable at each large
 * allocation, so the program switches it with setenv. Timed per setting:
 *
 *   add1      one faiss_Index_add of all n vectors
 *   add10     the same vectors in 10 adds (the array grows and moves)
 *   search    one batch of --nq queries, k = 10 (BLAS path)
 *   search16  --reps batches of 16 queries (the direct scan, memory bound)
 *   read      faiss_read_index_fname of the same index, written once
 *   rsearch16 search16 on the index just read
 *
 * Medians per setting are printed with the ratio on/off (below 1: huge
 * pages are faster), plus the process's AnonHugePages after each add, and
 * the labels of both settings must agree (exit status 1 otherwise).
 *
 *   bench_hugepages [--n N] [--nq Q] [--reps R] [--rounds R] [--quick]
 *                   [--verbose]
 *
 * Defaults: --n 100000 --nq 1000 --reps 20 --rounds 7 (docs/benchmarks.md,
 * "Huge pages"). --quick: --n 70000 --nq 50 --reps 2 --rounds 1. */
#define _GNU_SOURCE

#include "bench_util.h"

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faissx/faissx.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { D = 128, K = 10, NPHASE = 6, MAXROUNDS = 100 };
static const char* const phase_name[NPHASE] = {
        "add1", "add10", "search", "search16", "read", "rsearch16"};

static void die(const char* what) {
    const char* e = faiss_get_last_error();
    fprintf(stderr, "bench_hugepages: %s failed: %s\n", what, e ? e : "?");
    exit(2);
}

static float* uniform(size_t n, uint64_t seed) {
    float* x = malloc(n * D * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_hugepages: out of memory\n");
        exit(2);
    }
    uint64_t s = seed;
    for (size_t i = 0; i < n * D; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)(s >> 40) / (float)(1 << 24);
    }
    return x;
}

/* AnonHugePages of this process, kB (-1 when unreadable). */
static long anon_huge_kb(void) {
    FILE* f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "AnonHugePages:", 14)) kb = atol(line + 14);
    fclose(f);
    return kb;
}

static double search_small(FaissIndex* ix, const float* xq, int reps,
                           float* D16, idx_t* I16) {
    double t0 = bench_now();
    for (int r = 0; r < reps; r++)
        if (faiss_Index_search(ix, 16, xq + (size_t)(r % 4) * 16 * D, K, D16,
                               I16))
            die("search16");
    return bench_now() - t0;
}

int main(int argc, char** argv) {
    long long n = 100000, nq = 1000, reps = 20, rounds = 7;
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verbose")) {
            verbose = 1;
            continue;
        }
        long long* dst = NULL;
        long long lo = 1;
        if (!strcmp(argv[i], "--quick")) {
            n = 70000, nq = 50, reps = 2, rounds = 1;
            continue;
        }
        if (!strcmp(argv[i], "--n")) dst = &n, lo = 16;
        else if (!strcmp(argv[i], "--nq")) dst = &nq, lo = 64;
        else if (!strcmp(argv[i], "--reps")) dst = &reps;
        else if (!strcmp(argv[i], "--rounds")) dst = &rounds;
        if (!dst || i + 1 >= argc || bench_parse_ll(argv[++i], lo, dst) ||
            (dst == &rounds && rounds > MAXROUNDS)) {
            fprintf(stderr, "usage: bench_hugepages [--n N>=16] [--nq Q>=64] "
                            "[--reps R] [--rounds 1..%d] [--quick] [--verbose]\n",
                    MAXROUNDS);
            return 2;
        }
    }
    float* xb = uniform((size_t)n, 1);
    float* xq = uniform((size_t)nq, 2);
    float* Dq = malloc((size_t)nq * K * sizeof(float));
    idx_t* Iq[2] = {malloc((size_t)nq * K * sizeof(idx_t)),
                    malloc((size_t)nq * K * sizeof(idx_t))};
    float D16[16 * K];
    idx_t I16[16 * K];
    if (!Dq || !Iq[0] || !Iq[1]) die("malloc");

    char path[] = "/tmp/bench_hugepages.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) die("mkstemp");
    close(fd);
    {
        FaissIndexFlat* w = NULL;
        if (faiss_IndexFlatL2_new_with(&w, D)) die("new");
        if (faiss_Index_add((FaissIndex*)w, n, xb)) die("add");
        if (faiss_write_index_fname((FaissIndex*)w, path)) die("write");
        faiss_Index_free((FaissIndex*)w);
    }

    static double t[2][NPHASE][MAXROUNDS];
    long huge_kb[2] = {0, 0};
    int mismatch = 0;
    printf("Flat L2, n=%lld d=%d, %lld queries (k=%d), %lld x 16 queries, "
           "%lld rounds; THP: ",
           n, D, nq, K, reps, rounds);
    fflush(stdout);
    if (system("cat /sys/kernel/mm/transparent_hugepage/enabled "
               "2>/dev/null || echo unavailable"))
        printf("\n");
    for (int r = 0; r < rounds; r++) {
        for (int j = 0; j < 2; j++) {
            int on = (r + j) % 2 == 0; /* rounds alternate which goes first */
            setenv("FAISSX_HUGEPAGES", on ? "1" : "0", 1);
            FaissIndexFlat* f = NULL;
            FaissIndex* ix;
            double t0;

            if (faiss_IndexFlatL2_new_with(&f, D)) die("new");
            ix = (FaissIndex*)f;
            t0 = bench_now();
            for (int p = 0; p < 10; p++) {
                long long a = n * p / 10, b = n * (p + 1) / 10;
                if (faiss_Index_add(ix, b - a, xb + (size_t)a * D))
                    die("add10");
            }
            t[on][1][r] = bench_now() - t0;
            faiss_Index_free(ix);

            if (faiss_IndexFlatL2_new_with(&f, D)) die("new");
            ix = (FaissIndex*)f;
            long before = anon_huge_kb();
            t0 = bench_now();
            if (faiss_Index_add(ix, n, xb)) die("add1");
            t[on][0][r] = bench_now() - t0;
            long grew = anon_huge_kb() - before;
            if (grew > huge_kb[on]) huge_kb[on] = grew;

            t0 = bench_now();
            if (faiss_Index_search(ix, nq, xq, K, Dq, Iq[on])) die("search");
            t[on][2][r] = bench_now() - t0;
            t[on][3][r] = search_small(ix, xq, (int)reps, D16, I16);
            faiss_Index_free(ix);

            t0 = bench_now();
            if (faiss_read_index_fname(path, 0, &ix)) die("read");
            t[on][4][r] = bench_now() - t0;
            t[on][5][r] = search_small(ix, xq, (int)reps, D16, I16);
            faiss_Index_free(ix);
        }
        if (verbose)
            for (int on = 1; on >= 0; on--) {
                printf("round %d %-3s", r, on ? "on" : "off");
                for (int p = 0; p < NPHASE; p++)
                    printf(" %s %.1f", phase_name[p], t[on][p][r] * 1e3);
                printf("\n");
            }
        if (memcmp(Iq[0], Iq[1], (size_t)nq * K * sizeof(idx_t)))
            mismatch = 1;
    }
    unsetenv("FAISSX_HUGEPAGES");
    unlink(path);

    printf("%-10s %12s %12s %10s\n", "phase", "on (ms)", "off (ms)",
           "on/off");
    for (int p = 0; p < NPHASE; p++) {
        double on = bench_median(t[1][p], (int)rounds) * 1e3;
        double off = bench_median(t[0][p], (int)rounds) * 1e3;
        printf("%-10s %12.2f %12.2f %10.3f\n", phase_name[p], on, off,
               on / off);
    }
    printf("AnonHugePages gained by add1: on %ld kB, off %ld kB\n",
           huge_kb[1], huge_kb[0]);
    printf("labels: %s\n", mismatch ? "DIFFER between settings"
                                    : "identical in both settings");
    free(xb);
    free(xq);
    free(Dq);
    free(Iq[0]);
    free(Iq[1]);
    return mismatch;
}
