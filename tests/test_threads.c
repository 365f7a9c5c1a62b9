/* test_threads.c -- faissx_set_threads / faissx_get_threads, FAISSX_THREADS
 * and the default thread policy (core/threads.cpp, docs/api.md "Threads").
 *
 * This suite runs with OMP_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1 (like
 * every suite), i.e. in the "program chose its pools" state. The default
 * policy and FAISSX_THREADS are read once per process, so those tests run
 * threads_helper (FXT_THREADS_HELPER) in a child with a chosen
 * environment. */
#define _GNU_SOURCE
#include "common.h"
#include "oracle_threads.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);

TestSuite(threads, .timeout = 120);

/* ---- in this process ---------------------------------------------------- */

Test(threads, set_get_round_trip) {
    int start = faissx_get_threads();
    int blas_start = openblas_get_num_threads();
    FXT_OK(faissx_set_threads(3));
    cr_assert_eq(faissx_get_threads(), 3);
    cr_assert_eq(omp_get_max_threads(), 3);
    cr_assert_eq(openblas_get_num_threads(), 1, "BLAS must be serial");
    FXT_OK(faissx_set_threads(1));
    cr_assert_eq(faissx_get_threads(), 1);
    FXT_OK(faissx_set_threads(FAISSX_THREADS_MAX));
    cr_assert_eq(faissx_get_threads(), FAISSX_THREADS_MAX);
    /* 0: back to how the process started (here: the environment's 1). */
    FXT_OK(faissx_set_threads(0));
    cr_assert_eq(faissx_get_threads(), start);
    cr_assert_eq(omp_get_max_threads(), start);
    cr_assert_eq(openblas_get_num_threads(), blas_start);
}

Test(threads, bad_values_rejected_and_change_nothing) {
    FXT_OK(faissx_set_threads(2));
    FXT_ERR(faissx_set_threads(-1), "n must be 1..1024 threads, or 0");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    FXT_ERR(faissx_set_threads(FAISSX_THREADS_MAX + 1), "got 1025");
    FXT_ERR(faissx_set_threads(-2147483647 - 1), "faissx_set_threads");
    cr_assert_eq(faissx_get_threads(), 2);
    cr_assert_eq(openblas_get_num_threads(), 1);
}

typedef struct {
    pthread_barrier_t* go;
    int seen;
} waiter;

static void* wait_then_get(void* p) {
    waiter* w = p;
    pthread_barrier_wait(w->go);
    w->seen = faissx_get_threads();
    return NULL;
}

Test(threads, setting_reaches_other_threads) {
    /* A thread that exists before the change, and one created after. */
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    waiter before = {&go, 0}, after = {&go, 0};
    pthread_t t1, t2;
    cr_assert_eq(pthread_create(&t1, NULL, wait_then_get, &before), 0);
    FXT_OK(faissx_set_threads(3));
    pthread_barrier_wait(&go);
    pthread_join(t1, NULL);
    cr_assert_eq(before.seen, 3);
    pthread_barrier_destroy(&go);
    pthread_barrier_init(&go, NULL, 1);
    cr_assert_eq(pthread_create(&t2, NULL, wait_then_get, &after), 0);
    pthread_join(t2, NULL);
    cr_assert_eq(after.seen, 3);
    pthread_barrier_destroy(&go);
}

/* Searches Flat indexes through the C API with 1..4 threads and compares
 * with faiss C++ searching each batch in one call on one thread. From 64
 * queries on, faissx splits a batch across threads (core/threads.cpp); the
 * results must be bit-identical anyway, whatever the dimension, metric and
 * batch size (slice edges fall on different kernel tiles). */
static void same_as_faiss(int metric, int d) {
    enum { NB = 3000, K = 10, NQ = 400 };
    static const idx_t nqs[] = {5, 39, 41, 63, 64, 65, 100, 129, 200, 333, NQ};
    float* xb = fxt_uniform(NB, d, 11);
    float* xq = fxt_uniform(NQ, d, 12);
    float *d0 = malloc(sizeof(float) * NQ * K),
          *d1 = malloc(sizeof(float) * NQ * K);
    idx_t *i0 = malloc(sizeof(idx_t) * NQ * K),
          *i1 = malloc(sizeof(idx_t) * NQ * K);
    cr_assert(xb && xq && d0 && d1 && i0 && i1);
    FXT_OK(faissx_set_threads(1)); /* serial BLAS for the reference too */
    FaissIndexFlat* ix = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&ix, d, (FaissMetricType)metric));
    FXT_OK(faiss_Index_add((FaissIndex*)ix, NB, xb));
    for (size_t q = 0; q < sizeof nqs / sizeof nqs[0]; q++) {
        idx_t nq = nqs[q];
        omp_set_num_threads(1);
        cr_assert_eq(oracle_threads_flat_search(d, metric, NB, xb, nq, xq, K,
                                                d0, i0), 0, "%s",
                     oracle_threads_error());
        for (int threads = 1; threads <= 4; threads++) {
            FXT_OK(faissx_set_threads(threads));
            FXT_OK(faiss_Index_search((FaissIndex*)ix, nq, xq, K, d1, i1));
            for (idx_t j = 0; j < nq * K; j++)
                cr_assert(i0[j] == i1[j] &&
                                  memcmp(&d0[j], &d1[j], sizeof(float)) == 0,
                          "metric %d, d %d, %d threads, %lld queries: "
                          "result %lld differs: faiss %lld %.9g, C API "
                          "%lld %.9g", metric, d, threads, (long long)nq,
                          (long long)j, (long long)i0[j], d0[j],
                          (long long)i1[j], d1[j]);
        }
    }
    faiss_Index_free((FaissIndex*)ix);
    free(xb), free(xq), free(d0), free(d1), free(i0), free(i1);
}

Test(threads, flat_l2_same_results_whatever_the_threads) {
    FXT_LOCAL_ONLY("compares thread settings of this process");
    for (int d = 4; d <= 260; d = d * 2 + 1)
        same_as_faiss(METRIC_L2, d);
}

Test(threads, flat_ip_same_results_whatever_the_threads) {
    FXT_LOCAL_ONLY("compares thread settings of this process");
    for (int d = 4; d <= 260; d = d * 2 + 1)
        same_as_faiss(METRIC_INNER_PRODUCT, d);
}

Test(threads, search_inside_a_parallel_region) {
    /* faissx does not split a batch inside the program's own parallel
     * region; each thread's search still gives faiss's results. */
    enum { D = 16, NB = 2000, NQ = 100, K = 5 };
    float* xb = fxt_uniform(NB, D, 21);
    float* xq = fxt_uniform(NQ, D, 22);
    float d0[NQ * K], d[2][NQ * K];
    idx_t i0[NQ * K], i[2][NQ * K];
    FXT_OK(faissx_set_threads(1)); /* serial BLAS for the reference too */
    cr_assert_eq(oracle_threads_flat_search(D, METRIC_L2, NB, xb, NQ, xq, K,
                                            d0, i0), 0);
    FaissIndexFlatL2* ix = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&ix, D));
    FXT_OK(faiss_Index_add((FaissIndex*)ix, NB, xb));
    FXT_OK(faissx_set_threads(2));
    int rc[2] = {-1, -1};
#pragma omp parallel num_threads(2)
    {
        int t = omp_get_thread_num();
        rc[t] = faiss_Index_search((FaissIndex*)ix, NQ, xq, K, d[t], i[t]);
    }
    for (int t = 0; t < 2; t++) {
        cr_assert_eq(rc[t], 0);
        FXT_SAME(i0, i[t], sizeof i0);
        FXT_SAME(d0, d[t], sizeof d0);
    }
    faiss_Index_free((FaissIndex*)ix);
    free(xb);
    free(xq);
}

/* ---- in a child with a chosen environment ------------------------------- */

typedef struct {
    int omp, blas, get, thread;
    char err[1024];
} helper_out;

/* Runs threads_helper with the parent's environment minus every thread
 * variable, plus `env` (NULL-terminated "NAME=VALUE"s), and `args`. */
static helper_out run_helper(const char* const* env, const char* const* args) {
    const char* bin = getenv("FXT_THREADS_HELPER");
    cr_assert(bin && *bin, "FXT_THREADS_HELPER is not set (tests/meson.build)");
    static const char* const drop[] = {"OMP_", "GOMP_", "OPENBLAS_",
                                       "GOTO_NUM_THREADS=", "FAISSX_THREADS="};
    const char* e[256];
    int ne = 0;
    for (char** p = environ; *p && ne < 200; p++) {
        int keep = 1;
        for (size_t j = 0; j < sizeof drop / sizeof drop[0]; j++)
            if (!strncmp(*p, drop[j], strlen(drop[j]))) keep = 0;
        if (keep) e[ne++] = *p;
    }
    for (int j = 0; env && env[j]; j++) e[ne++] = env[j];
    e[ne] = NULL;
    const char* argv[8] = {bin};
    int na = 1;
    for (int j = 0; args && args[j]; j++) argv[na++] = args[j];
    argv[na] = NULL;

    int out[2], err[2];
    cr_assert_eq(pipe(out), 0);
    cr_assert_eq(pipe(err), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        execve(bin, (char* const*)argv, (char* const*)e);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    helper_out h;
    memset(&h, 0, sizeof h);
    char buf[256] = "";
    FILE* fo = fdopen(out[0], "r");
    FILE* fe = fdopen(err[0], "r");
    size_t ebytes = fread(h.err, 1, sizeof h.err - 1, fe);
    h.err[ebytes] = '\0';
    cr_assert(fgets(buf, sizeof buf, fo) != NULL, "no output; stderr: %s",
              h.err);
    fclose(fo);
    fclose(fe);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "threads_helper failed: %s", h.err);
    cr_assert_eq(sscanf(buf, "omp=%d blas=%d get=%d thread=%d", &h.omp,
                        &h.blas, &h.get, &h.thread), 4, "output: %s", buf);
    return h;
}

static int cpus(void) {
    cpu_set_t s;
    cr_assert_eq(sched_getaffinity(0, sizeof s, &s), 0);
    return CPU_COUNT(&s);
}

Test(threads, default_policy_openmp_all_cpus_blas_serial) {
    static const char* const raw[] = {"--raw", NULL};
    helper_out r = run_helper(NULL, raw); /* what the runtimes chose */
    helper_out h = run_helper(NULL, NULL);
    cr_assert_eq(r.omp, cpus(), "libgomp's default is the CPU count");
    cr_assert_eq(h.omp, r.omp, "OpenMP keeps its default size");
    cr_assert_eq(h.blas, 1, "OpenBLAS is serial by default (was %d)",
                 r.blas);
    cr_assert_eq(h.get, r.omp);
    cr_assert_eq(h.thread, r.omp);
    cr_assert_eq(h.err[0], '\0', "unexpected stderr: %s", h.err);
}

Test(threads, faissx_threads_env_honoured) {
    static const char* const three[] = {"FAISSX_THREADS=3", NULL};
    helper_out h = run_helper(three, NULL);
    cr_assert_eq(h.omp, 3);
    cr_assert_eq(h.get, 3);
    cr_assert_eq(h.thread, 3, "the setting reaches every thread");
    cr_assert_eq(h.blas, 1);
    /* Explicit: it wins over OpenMP's and OpenBLAS's own variables. */
    static const char* const over[] = {"FAISSX_THREADS=3", "OMP_NUM_THREADS=1",
                                       "OPENBLAS_NUM_THREADS=2", NULL};
    h = run_helper(over, NULL);
    cr_assert_eq(h.omp, 3);
    cr_assert_eq(h.thread, 3);
    cr_assert_eq(h.blas, 1);
    /* 0 means the default policy. */
    static const char* const zero[] = {"FAISSX_THREADS=0", NULL};
    h = run_helper(zero, NULL);
    cr_assert_eq(h.omp, cpus());
    cr_assert_eq(h.blas, 1);
    cr_assert_eq(h.err[0], '\0', "unexpected stderr: %s", h.err);
}

Test(threads, faissx_threads_env_invalid_is_reported_and_ignored) {
    static const char* const bad[][2] = {{"FAISSX_THREADS=abc", NULL},
                                         {"FAISSX_THREADS=-2", NULL},
                                         {"FAISSX_THREADS=1025", NULL},
                                         {"FAISSX_THREADS=4x", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        helper_out h = run_helper(bad[i], NULL);
        cr_assert(strstr(h.err, "ignored: expected a number of threads in "
                                "0..1024") != NULL,
                  "%s: stderr was '%s'", bad[i][0], h.err);
        cr_assert(strstr(h.err, bad[i][0] + strlen("FAISSX_THREADS=")),
                  "the message names the value: %s", h.err);
        cr_assert_eq(h.omp, cpus(), "%s: default policy applies", bad[i][0]);
        cr_assert_eq(h.blas, 1);
    }
}

Test(threads, environment_sizes_are_left_alone) {
    static const char* const blas2[] = {"OPENBLAS_NUM_THREADS=2", NULL};
    static const char* const raw[] = {"--raw", NULL};
    helper_out r = run_helper(blas2, raw);
    helper_out h = run_helper(blas2, NULL);
    cr_assert_eq(h.blas, r.blas, "OPENBLAS_NUM_THREADS is the user's choice");
    cr_assert_eq(h.omp, r.omp);
    static const char* const omp3[] = {"OMP_NUM_THREADS=3", NULL};
    r = run_helper(omp3, raw);
    h = run_helper(omp3, NULL);
    cr_assert_eq(h.omp, 3);
    cr_assert_eq(h.get, 3);
    cr_assert_eq(h.blas, r.blas, "OpenBLAS also reads OMP_NUM_THREADS");
}

Test(threads, program_chosen_sizes_are_left_alone) {
    /* Sizes the program set itself before its first faiss call differ
     * from the runtimes' defaults: the default policy keeps them. */
    static const char* const set[] = {"--omp", "3", "--blas", "3", NULL};
    static const char* const raw[] = {"--omp", "3", "--blas", "3", "--raw",
                                      NULL};
    helper_out r = run_helper(NULL, raw);
    helper_out h = run_helper(NULL, set);
    cr_assert_eq(h.omp, 3);
    cr_assert_eq(h.blas, r.blas);
    cr_assert_neq(r.blas, 1, "openblas_set_num_threads(3) did not take");
}
