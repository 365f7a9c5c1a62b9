/* bench_recovery.c -- how long the durable store takes to recover an index
 * (faissx_store_open + faissx_store_open_index), as a ratio to reading the
 * same vector bytes from a plain file into fresh memory, in one run. See
 * docs/benchmarks.md, "Durable store: recovery".
 *
 *   bench_recovery [--dir DIR] [--n N] [--d D] [--batch B] [--reps R]
 *                  [--cold] [--quick]
 *
 * The index is a Flat of N vectors of dimension D, added in batches of B
 * (sync none: the adds are not what is measured). Rows, each the best of R:
 *   raw read      read(2) of an N*D*4-byte file into a fresh buffer (the
 *                 floor: disk or page cache, plus page faults on the
 *                 buffer);
 *   fault only    malloc + touching N*D*4 bytes (the page-fault share);
 *   from log      reopen after the adds: every vector is in the log and is
 *                 replayed (read, checksum, add);
 *   from snapshot reopen after a checkpoint: one snapshot is loaded
 *                 (read, checksum, faiss read_index), the log is empty.
 * Each reopen is checked: ntotal and the first and last vectors. With
 * --cold every file is dropped from the page cache before it is read
 * (posix_fadvise DONTNEED after fsync), so reads come from the disk;
 * without it they come from the page cache. DIR (default /tmp) must be
 * on the disk you care about. */
#define _GNU_SOURCE
#include "bench_util.h"
#include <faissx/faissx.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long g_n = 1000000;
static int g_d = 128, g_batch = 10000, g_reps = 3, g_cold = 0;

static void die(const char* what) {
    const char* e = faiss_get_last_error();
    fprintf(stderr, "bench_recovery: %s: %s\n", what, e ? e : "");
    exit(1);
}

/* Drops a file (or every file below a directory) from the page cache. */
static void drop_cache(const char* path) {
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR* d = opendir(path);
        if (!d) return;
        struct dirent* e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[2048];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            drop_cache(sub);
        }
        closedir(d);
        return;
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static double raw_read(const char* file, size_t bytes) {
    if (g_cold) drop_cache(file);
    double t0 = bench_now();
    int fd = open(file, O_RDONLY);
    if (fd < 0) die("open raw file");
    char* buf = malloc(bytes);
    size_t got = 0;
    while (got < bytes) {
        ssize_t r = read(fd, buf + got, bytes - got);
        if (r <= 0) die("read raw file");
        got += (size_t)r;
    }
    close(fd);
    double t = bench_now() - t0;
    if (buf[bytes - 1] == 42 && buf[0] == 42) putchar(' '); /* keep the read */
    free(buf);
    return t;
}

static double fault_only(size_t bytes) {
    double t0 = bench_now();
    char* buf = malloc(bytes);
    for (size_t i = 0; i < bytes; i += 4096) buf[i] = (char)i;
    buf[bytes - 1] = 1;
    double t = bench_now() - t0;
    free(buf);
    return t;
}

/* Reopens the store and its index; checks it; returns the seconds. */
static double reopen(const char* path, const float* x) {
    if (g_cold) drop_cache(path);
    double t0 = bench_now();
    FaissxStore* s = NULL;
    FaissIndex* ix = NULL;
    if (faissx_store_open(&s, path, NULL)) die("store_open");
    if (faissx_store_open_index(s, "r", &ix)) die("open_index");
    double t = bench_now() - t0;
    if (faiss_Index_ntotal(ix) != (idx_t)g_n) die("ntotal after recovery");
    float* v = malloc(sizeof(float) * g_d);
    if (faiss_Index_reconstruct(ix, 0, v) ||
        memcmp(v, x, sizeof(float) * g_d) != 0 ||
        faiss_Index_reconstruct(ix, g_n - 1, v) ||
        memcmp(v, x + (size_t)(g_n - 1) * g_d, sizeof(float) * g_d) != 0)
        die("recovered vectors differ");
    free(v);
    faiss_Index_free(ix);
    faissx_store_close(s);
    return t;
}

int main(int argc, char** argv) {
    const char* dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) g_n = atol(argv[++i]);
        else if (!strcmp(argv[i], "--d") && i + 1 < argc) g_d = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) g_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cold")) g_cold = 1;
        else if (!strcmp(argv[i], "--quick")) { g_n = 20000; g_batch = 1000; g_reps = 1; }
        else {
            fprintf(stderr, "usage: bench_recovery [--dir DIR] [--n N] [--d D] "
                            "[--batch B] [--reps R] [--cold] [--quick]\n");
            return 2;
        }
    }
    if (g_n <= 0 || g_d <= 0 || g_batch <= 0 || g_reps <= 0 || g_n % g_batch) {
        fprintf(stderr, "bench_recovery: bad sizes (N must be a multiple of B)\n");
        return 2;
    }
    faissx_remote_disable();
    size_t bytes = sizeof(float) * (size_t)g_n * g_d;
    float* x = malloc(bytes);
    uint64_t h = 88172645463325252ull;
    for (size_t i = 0; i < (size_t)g_n * g_d; i++) {
        h ^= h << 13, h ^= h >> 7, h ^= h << 17;
        x[i] = (float)(h >> 40) / (float)(1 << 24);
    }
    char path[1024], raw[1100], cmd[2300];
    snprintf(path, sizeof path, "%s/fx-bench-recovery-%d", dir, (int)getpid());
    snprintf(raw, sizeof raw, "%s.raw", path);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", path, raw);
    if (system(cmd)) { /* fresh */ }

    /* The raw file: the same bytes, written once. */
    int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("create raw file");
    for (size_t off = 0; off < bytes;) {
        ssize_t w = write(fd, (char*)x + off, bytes - off);
        if (w <= 0) die("write raw file");
        off += (size_t)w;
    }
    fsync(fd);
    close(fd);

    /* The store: every vector in the log. */
    FaissxStoreOptions o;
    faissx_store_options_init(&o);
    o.sync = FAISSX_SYNC_NONE;
    o.snapshot_log_bytes = 0;
    FaissxStore* s = NULL;
    FaissIndex* ix = NULL;
    double t0 = bench_now();
    if (faissx_store_open(&s, path, &o)) die("store_open");
    if (faissx_store_create_index(s, "r", g_d, "Flat", METRIC_L2, &ix)) die("create");
    for (long b = 0; b < g_n / g_batch; b++)
        if (faiss_Index_add(ix, g_batch, x + (size_t)b * g_batch * g_d)) die("add");
    faiss_Index_free(ix);
    faissx_store_close(s);
    double t_fill = bench_now() - t0;

    printf("recovery: n=%ld d=%d (%.0f MiB of vectors) in %s, %s page cache, "
           "best of %d (filling the log took %.1f s)\n",
           g_n, g_d, bytes / 1048576.0, dir, g_cold ? "cold" : "warm", g_reps,
           t_fill);
    double best_raw = 1e30, best_fault = 1e30, best_log = 1e30, best_snap = 1e30;
    for (int r = 0; r < g_reps; r++) {
        double t = raw_read(raw, bytes);
        if (t < best_raw) best_raw = t;
        t = fault_only(bytes);
        if (t < best_fault) best_fault = t;
        t = reopen(path, x);
        if (t < best_log) best_log = t;
    }
    /* Checkpoint: the same index as one snapshot and an empty log. */
    if (faissx_store_open(&s, path, &o)) die("store_open");
    if (faissx_store_checkpoint(s, "r")) die("checkpoint");
    faissx_store_close(s);
    for (int r = 0; r < g_reps; r++) {
        double t = reopen(path, x);
        if (t < best_snap) best_snap = t;
    }
    printf("%-34s %10s %10s %8s\n", "", "seconds", "MiB/s", "x raw");
    struct { const char* name; double t; } rows[] = {
        {"raw read into fresh memory", best_raw},
        {"page faults alone (malloc+touch)", best_fault},
        {"recover from log (replay)", best_log},
        {"recover from snapshot", best_snap},
    };
    for (int i = 0; i < 4; i++)
        printf("%-34s %10.3f %10.0f %8.2f\n", rows[i].name, rows[i].t,
               bytes / 1048576.0 / rows[i].t, rows[i].t / best_raw);
    if (system(cmd)) { /* cleanup */ }
    free(x);
    return 0;
}
