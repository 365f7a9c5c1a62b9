/* bench_threads.c -- Flat batch search under different OpenMP / OpenBLAS
 * thread settings, as ratios against the best setting in the same run.
 *
 * faiss's IndexFlat search of 20 or more queries alternates BLAS sgemm
 * (OpenBLAS's own thread pool) with OpenMP loops that keep the k best
 * results; when both pools are as large as the machine, the idle pool's
 * threads spin while the other one works and the search collapses. This
 * program measures one batch search (IndexFlatL2, --nq queries, k = 10)
 * under each setting listed in configs[] below.
 *
 * Thread pools read their environment once, when the runtime loads, so
 * every measurement runs in a fresh child process (this program re-executes
 * itself with --child and the setting's environment). The parent removes
 * OMP_*, GOMP_*, OPENBLAS_*, GOTO_NUM_THREADS and FAISSX_THREADS from the
 * children's environment first, so each setting starts from the same
 * state. Rounds interleave the settings (round r starts at setting r), the
 * median per setting is reported, and every setting must return the same
 * labels (exit status 1 otherwise).
 *
 *   bench_threads [--n N] [--nq Q] [--rounds R] [--only NAME,...]
 *
 * Defaults: --n 200000 --nq 1000 --rounds 3 (about a minute on 2 cores);
 * the documented run is --n 1000000 (docs/benchmarks.md, "Threads"). */
#define _GNU_SOURCE

#include "bench_util.h"

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faissx/faissx.h>

#include <omp.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;
/* OpenBLAS's own entry points (its cblas.h pulls in more than this). */
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);

enum { D = 128, K = 10 };

/* One setting: environment variables for the child ("NAME=VALUE" pairs,
 * "$N" in a value is replaced by the CPU count), and an optional
 * faissx_set_threads() call the child makes before building the index. */
typedef struct config {
    const char* name;
    const char* env[4];
    int set_threads; /* 0: no call; -1: the CPU count; else that value */
    const char* what;
} config;

static const config configs[] = {
    {"faissx-default", {NULL}, 0,
     "no variable set: faissx's default policy"},
    {"ompN-blasN", {"OMP_NUM_THREADS=$N", "OPENBLAS_NUM_THREADS=$N"}, 0,
     "both pools as large as the machine (what the runtimes do alone)"},
    {"ompN-blas1", {"OMP_NUM_THREADS=$N", "OPENBLAS_NUM_THREADS=1"}, 0,
     "OpenMP parallel, BLAS single-threaded"},
    {"omp1-blasN", {"OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=$N"}, 0,
     "BLAS parallel, OpenMP single-threaded"},
    {"omp1-blas1", {"OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1"}, 0,
     "one thread each"},
    {"passive-ompN-blasN",
     {"OMP_WAIT_POLICY=PASSIVE", "OMP_NUM_THREADS=$N",
      "OPENBLAS_NUM_THREADS=$N"},
     0, "both pools full size, idle OpenMP threads sleep"},
    {"passive-ompN-blas1",
     {"OMP_WAIT_POLICY=PASSIVE", "OMP_NUM_THREADS=$N",
      "OPENBLAS_NUM_THREADS=1"},
     0, "OpenMP parallel with idle threads asleep, BLAS single-threaded"},
    {"passive-timeout-ompN-blasN",
     {"OMP_WAIT_POLICY=PASSIVE", "OPENBLAS_THREAD_TIMEOUT=4",
      "OMP_NUM_THREADS=$N", "OPENBLAS_NUM_THREADS=$N"},
     0, "both full size, OpenMP passive, OpenBLAS sleeps after 2^4 cycles"},
    {"set-threads-N", {NULL}, -1,
     "faissx_set_threads(CPU count) called by the program"},
};
enum { NCONFIG = sizeof configs / sizeof configs[0] };

static void usage(FILE* f) {
    fprintf(f,
            "usage: bench_threads [--n N] [--nq Q] [--rounds R] "
            "[--only NAME,...]\n"
            "  --n N        database vectors (200000; documented run: "
            "1000000)\n"
            "  --nq Q       queries in the batch (1000)\n"
            "  --rounds R   measurements per setting (3); the median is "
            "reported\n"
            "  --only LIST  comma-separated setting names (default: all)\n"
            "settings:\n");
    for (int i = 0; i < NCONFIG; i++)
        fprintf(f, "  %-30s %s\n", configs[i].name, configs[i].what);
}

/* Deterministic uniform [0,1) floats (xorshift64*). */
static void fill(float* x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        x[i] = (float)((s * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
    }
}

static int die_faiss(const char* what) {
    const char* m = faiss_get_last_error();
    fprintf(stderr, "bench_threads: %s: %s\n", what, m ? m : "(no message)");
    return 1;
}

/* The child: build the index, search once, print the time and a checksum
 * of the labels on one line. */
static int child(long long n, long long nq, int set_threads) {
    if (set_threads && faissx_set_threads(set_threads))
        return die_faiss("faissx_set_threads");
    float* xb = malloc(sizeof(float) * (size_t)n * D);
    float* xq = malloc(sizeof(float) * (size_t)nq * D);
    float* dist = malloc(sizeof(float) * (size_t)nq * K);
    idx_t* lab = malloc(sizeof(idx_t) * (size_t)nq * K);
    if (!xb || !xq || !dist || !lab) {
        fprintf(stderr, "bench_threads: out of memory\n");
        return 1;
    }
    fill(xb, (size_t)n * D, 1);
    fill(xq, (size_t)nq * D, 2);
    FaissIndexFlatL2* ix = NULL;
    if (faiss_IndexFlatL2_new_with(&ix, D)) return die_faiss("new");
    if (faiss_Index_add((FaissIndex*)ix, n, xb))
        return die_faiss("add");
    /* Warm-up: 20 queries take the BLAS path and start both pools. */
    if (faiss_Index_search((FaissIndex*)ix, nq < 20 ? nq : 20, xq, K, dist,
                           lab))
        return die_faiss("search");
    double t0 = bench_now();
    if (faiss_Index_search((FaissIndex*)ix, nq, xq, K, dist, lab))
        return die_faiss("search");
    double t = bench_now() - t0;
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the labels */
    for (long long i = 0; i < nq * K; i++) {
        h ^= (uint64_t)lab[i];
        h *= 1099511628211ull;
    }
    printf("time=%.6f labels=%016" PRIx64 " omp=%d blas=%d\n", t, h,
           omp_get_max_threads(), openblas_get_num_threads());
    faiss_Index_free((FaissIndex*)ix);
    free(xb);
    free(xq);
    free(dist);
    free(lab);
    return 0;
}

static int cleared(const char* e) {
    static const char* const pre[] = {"OMP_", "GOMP_", "OPENBLAS_",
                                      "GOTO_NUM_THREADS=", "FAISSX_THREADS="};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (!strncmp(e, pre[i], strlen(pre[i]))) return 1;
    return 0;
}

/* Runs setting c in a child; *t and *h get its time and label checksum. */
static int run_child(const char* self, const config* c, int ncpu,
                     long long n, long long nq, double* t, uint64_t* h) {
    char* env[512];
    char bufs[4][128];
    int ne = 0;
    for (char** e = environ; *e && ne < 500; e++)
        if (!cleared(*e)) env[ne++] = *e;
    for (int i = 0; i < 4 && c->env[i]; i++) {
        const char* v = c->env[i];
        const char* dollar = strstr(v, "$N");
        if (dollar)
            snprintf(bufs[i], sizeof bufs[i], "%.*s%d", (int)(dollar - v), v,
                     ncpu);
        else
            snprintf(bufs[i], sizeof bufs[i], "%s", v);
        env[ne++] = bufs[i];
    }
    env[ne] = NULL;
    char sn[32], snq[32], sst[32];
    snprintf(sn, sizeof sn, "%lld", n);
    snprintf(snq, sizeof snq, "%lld", nq);
    snprintf(sst, sizeof sst, "%d", c->set_threads < 0 ? ncpu : c->set_threads);
    char* argv[] = {(char*)self, "--child", "--n", sn, "--nq", snq,
                    "--set-threads", sst, NULL};
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execve(self, argv, env);
        _exit(127);
    }
    close(fd[1]);
    char out[512];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fd[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)r;
    close(fd[0]);
    out[len] = '\0';
    int st;
    waitpid(pid, &st, 0);
    int omp = 0, blas = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
        sscanf(out, "time=%lf labels=%" SCNx64 " omp=%d blas=%d", t, h, &omp,
               &blas) != 4) {
        fprintf(stderr, "bench_threads: setting %s failed\n", c->name);
        return -1;
    }
    printf("  %-30s %8.3f s   (child saw OpenMP %d, OpenBLAS %d)\n", c->name,
           *t, omp, blas);
    fflush(stdout);
    return 0;
}

int main(int argc, char** argv) {
    long long n = 200000, nq = 1000, rounds = 3, set_threads = 0;
    int is_child = 0;
    const char* only = NULL;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        long long* dst = !strcmp(a, "--n")              ? &n
                         : !strcmp(a, "--nq")           ? &nq
                         : !strcmp(a, "--rounds")       ? &rounds
                         : !strcmp(a, "--set-threads")  ? &set_threads
                                                        : NULL;
        if (dst) {
            if (i + 1 >= argc || bench_parse_ll(argv[++i], 0, dst)) {
                fprintf(stderr, "bench_threads: %s needs a number >= 0\n",
                        a);
                return 2;
            }
        } else if (!strcmp(a, "--child")) {
            is_child = 1;
        } else if (!strcmp(a, "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (n < K || nq < 1 || rounds < 1 || set_threads > INT_MAX) {
        fprintf(stderr, "bench_threads: need --n >= %d, --nq >= 1, "
                        "--rounds >= 1\n", K);
        return 2;
    }
    if (is_child) return child(n, nq, (int)set_threads);

    char self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        perror("bench_threads: /proc/self/exe");
        return 1;
    }
    self[sl] = '\0';
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int use[NCONFIG], nuse = 0;
    for (int i = 0; i < NCONFIG; i++) {
        if (only) {
            const char* p = strstr(only, configs[i].name);
            size_t l = strlen(configs[i].name);
            if (!p || (p != only && p[-1] != ',') ||
                (p[l] != '\0' && p[l] != ','))
                continue;
        }
        use[nuse++] = i;
    }
    if (nuse == 0) {
        fprintf(stderr, "bench_threads: --only matches no setting\n");
        return 2;
    }
    printf("Flat L2 batch search: %lld x %d database, %lld queries, k=%d; "
           "%d CPUs; N = %d; %lld rounds\n",
           n, D, nq, K, ncpu, ncpu, rounds);
    double* t = calloc((size_t)(NCONFIG * rounds), sizeof(double));
    uint64_t h0 = 0;
    int have_h = 0, mismatch = 0;
    for (long long r = 0; r < rounds; r++) {
        printf("round %lld\n", r + 1);
        for (int j = 0; j < nuse; j++) {
            int ci = use[(j + r) % nuse];
            uint64_t h;
            if (run_child(self, &configs[ci], ncpu, n, nq,
                          &t[ci * rounds + r], &h))
                return 1;
            if (have_h && h != h0) {
                fprintf(stderr, "bench_threads: %s returned different "
                                "labels\n", configs[ci].name);
                mismatch = 1;
            }
            h0 = h;
            have_h = 1;
        }
    }
    double best = 0, med[NCONFIG];
    int ibest = -1;
    for (int j = 0; j < nuse; j++) {
        int ci = use[j];
        med[ci] = bench_median(&t[ci * rounds], (int)rounds);
        if (ibest < 0 || med[ci] < best) best = med[ci], ibest = ci;
    }
    printf("\n| setting | median s | / best |\n|---|---|---|\n");
    for (int j = 0; j < nuse; j++) {
        int ci = use[j];
        printf("| %s | %.3f | %.2f |\n", configs[ci].name, med[ci],
               med[ci] / best);
    }
    printf("\nbest: %s; faissx-default / best = ", configs[ibest].name);
    if (!only || strstr(only, "faissx-default"))
        printf("%.2f (goal <= 1.2)\n", med[0] / best);
    else
        printf("(not measured)\n");
    printf("labels: %s\n", mismatch ? "DIFFER between settings" :
                                      "identical in every setting");
    free(t);
    return mismatch;
}
