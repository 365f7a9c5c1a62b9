/* bench_store.c -- add throughput into a durable store (faissx_store_*)
 * under each sync policy, as a ratio to adding the same batches to a plain
 * in-memory index in the same run. See docs/benchmarks.md.
 *
 *   bench_store [--dir DIR] [--n N] [--d D] [--batch B] [--reps R] [--quick]
 *
 * Rows: memory (IDMap,Flat, no store), always x1 writer, always x8 writers
 * (group commit), interval (100 ms), none. Every row adds the same N
 * vectors in batches of B (the 8-writer row splits the batches among its
 * threads); each row is the best of R repetitions, each into a fresh
 * index. DIR (default /tmp) must be on the disk you care about. */
#include "bench_util.h"
#include <faissx/faissx.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_n = 100000, g_d = 128, g_batch = 1000, g_reps = 3;
static float* g_x;
static idx_t* g_ids;

static void die(const char* what) {
    fprintf(stderr, "bench_store: %s: %s\n", what, faiss_get_last_error());
    exit(1);
}

struct job {
    FaissIndex* ix;
    int t, nt;
};

static void* adder(void* p) {
    struct job* j = p;
    int nb = g_n / g_batch;
    for (int b = j->t; b < nb; b += j->nt)
        if (faiss_Index_add_with_ids(j->ix, g_batch, g_x + (size_t)b * g_batch * g_d,
                                     g_ids + (size_t)b * g_batch))
            die("add");
    return NULL;
}

/* Seconds to add everything with `threads` writers into ix. */
static double run_adds(FaissIndex* ix, int threads) {
    pthread_t th[64];
    struct job jobs[64];
    double t0 = bench_now();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){ix, t, threads};
        pthread_create(&th[t], NULL, adder, &jobs[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    return bench_now() - t0;
}

static double bench_memory(void) {
    double best = 1e30;
    for (int r = 0; r < g_reps; r++) {
        FaissIndex* ix = NULL;
        if (faiss_index_factory(&ix, g_d, "IDMap,Flat", METRIC_L2)) die("factory");
        double t = run_adds(ix, 1);
        if (t < best) best = t;
        faiss_Index_free(ix);
    }
    return best;
}

static double bench_store(const char* dir, FaissxSyncPolicy sync, int threads) {
    double best = 1e30;
    for (int r = 0; r < g_reps; r++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/fx-bench-store-%d", dir, (int)getpid());
        char cmd[1100];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
        if (system(cmd)) { /* fresh */ }
        FaissxStoreOptions o;
        faissx_store_options_init(&o);
        o.sync = sync;
        o.interval_ms = 100;
        o.snapshot_log_bytes = 0; // measure logging, not checkpoints
        FaissxStore* s = NULL;
        FaissIndex* ix = NULL;
        if (faissx_store_open(&s, path, &o)) die("store_open");
        if (faissx_store_create_index(s, "b", g_d, "IDMap,Flat", METRIC_L2, &ix))
            die("create_index");
        double t = run_adds(ix, threads);
        if (faiss_Index_ntotal(ix) != (idx_t)(g_n / g_batch) * g_batch) die("ntotal");
        if (t < best) best = t;
        faiss_Index_free(ix);
        faissx_store_close(s);
        if (system(cmd)) { /* cleanup */ }
    }
    return best;
}

int main(int argc, char** argv) {
    const char* dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) g_n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--d") && i + 1 < argc) g_d = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) g_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) { g_n = 4000; g_batch = 100; g_reps = 1; }
        else {
            fprintf(stderr, "usage: bench_store [--dir DIR] [--n N] [--d D] "
                            "[--batch B] [--reps R] [--quick]\n");
            return 2;
        }
    }
    if (g_n <= 0 || g_d <= 0 || g_batch <= 0 || g_batch > g_n || g_reps <= 0) {
        fprintf(stderr, "bench_store: bad sizes\n");
        return 2;
    }
    faissx_remote_disable();
    g_x = malloc(sizeof(float) * (size_t)g_n * g_d);
    g_ids = malloc(sizeof(idx_t) * (size_t)g_n);
    unsigned seed = 1;
    for (size_t i = 0; i < (size_t)g_n * g_d; i++) g_x[i] = (float)rand_r(&seed) / RAND_MAX;
    for (int i = 0; i < g_n; i++) g_ids[i] = i;
    printf("add throughput: n=%d d=%d batch=%d (%d adds), best of %d, store in %s\n",
           g_n, g_d, g_batch, g_n / g_batch, g_reps, dir);
    double mem = bench_memory();
    struct { const char* name; FaissxSyncPolicy sync; int threads; } rows[] = {
        {"always, 1 writer", FAISSX_SYNC_ALWAYS, 1},
        {"always, 8 writers", FAISSX_SYNC_ALWAYS, 8},
        {"interval 100 ms", FAISSX_SYNC_INTERVAL, 1},
        {"none", FAISSX_SYNC_NONE, 1},
    };
    double vec = (double)(g_n / g_batch) * g_batch;
    printf("%-20s %12s %14s %8s\n", "mode", "seconds", "vectors/s", "ratio");
    printf("%-20s %12.4f %14.0f %8.3f\n", "in-memory (no store)", mem, vec / mem, 1.0);
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        double t = bench_store(dir, rows[r].sync, rows[r].threads);
        printf("%-20s %12.4f %14.0f %8.3f\n", rows[r].name, t, vec / t, mem / t);
        fflush(stdout);
    }
    free(g_x);
    free(g_ids);
    return 0;
}
