/* test_powerloss.c -- the embedded durable store after a simulated power
 * loss (powerloss.h: an I/O table that forgets what was not fsynced).
 *
 * Each round runs a workload on a fresh store -- create an index, add
 * batches of vectors with ids, checkpoint now and then (and automatically:
 * the log threshold is small) -- and loses power at a random mutating I/O
 * call, or at the end. The tree is then rewritten as the disk would hold
 * it: durable content plus a random prefix of the unsynced writes (or none
 * of them), and the store is reopened with the real I/O table:
 *   - under every policy it opens (a lost or torn tail is cut, never an
 *     error), every batch is there whole or not at all, the batches that
 *     are there are a prefix of those attempted, and the store takes new
 *     writes that survive a reopen;
 *   - under `always`, every acknowledged batch (and an acknowledged create)
 *     is there. */
#include "common.h"
#include "powerloss.h"
#include "store_vec.h"

#include "persist/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { BATCH = 20, NBATCH = 60 };

static FaissxStore* open_store(const char* dir, FaissxSyncPolicy sync,
                               int* rc) {
    FaissxStoreOptions o;
    faissx_store_options_init(&o);
    o.sync = sync;
    o.interval_ms = 3;
    o.snapshot_log_bytes = 6 << 10; /* automatic checkpoints too */
    FaissxStore* s = NULL;
    *rc = faissx_store_open(&s, dir, &o);
    return s;
}

static int add_batch(FaissIndex* ix, int b) {
    float x[BATCH * STORE_D];
    idx_t ids[BATCH];
    for (int i = 0; i < BATCH; i++) {
        ids[i] = (idx_t)b * BATCH + i;
        store_vec(ids[i], x + i * STORE_D);
    }
    return faiss_Index_add_with_ids(ix, BATCH, x, ids);
}

/* How many ids of batch b are stored exactly once at distance 0. */
static int present(FaissIndex* ix, int b) {
    float x[BATCH * STORE_D], D[BATCH * 2];
    idx_t I[BATCH * 2];
    for (int i = 0; i < BATCH; i++) store_vec((long long)b * BATCH + i, x + i * STORE_D);
    /* 16 queries at most per search: exact distances (no BLAS). */
    int found = 0;
    for (int c0 = 0; c0 < BATCH; c0 += 16) {
        int m = BATCH - c0 < 16 ? BATCH - c0 : 16;
        FXT_OK(faiss_Index_search(ix, m, x + c0 * STORE_D, 2, D + c0 * 2, I + c0 * 2));
    }
    for (int i = 0; i < BATCH; i++) {
        idx_t id = (idx_t)b * BATCH + i;
        if (I[2 * i] == id && D[2 * i] == 0.0f) found++;
        cr_assert(!(I[2 * i + 1] == id && D[2 * i + 1] == 0.0f),
                  "id %lld is stored twice", (long long)id);
    }
    return found;
}

struct outcome {
    int created; /* the create (or open) was acknowledged */
    int acked;   /* batches 0..acked-1 were acknowledged */
    long calls;  /* mutating I/O calls made */
};

/* The workload, power lost at mutating call crash_at (0: at the end). */
static struct outcome workload(const char* dir, FaissxSyncPolicy sync,
                               long crash_at) {
    struct outcome r = {0, 0, 0};
    pl_install(dir, crash_at);
    int rc;
    FaissxStore* s = open_store(dir, sync, &rc);
    FaissIndex* ix = NULL;
    if (rc == 0 &&
        faissx_store_create_index(s, "pl", STORE_D, "IDMap,Flat", METRIC_L2, &ix) == 0) {
        r.created = 1;
        for (int b = 0; b < NBATCH; b++) {
            if (add_batch(ix, b) != 0) break;
            r.acked = b + 1;
            if (b % 9 == 8 && faissx_store_checkpoint(s, NULL) != 0) break;
        }
    }
    cr_assert(rc == 0 || pl_crashed(), "store open failed without a crash: %s",
              faiss_get_last_error());
    cr_assert(pl_crashed() || r.acked == NBATCH,
              "a call failed without a crash: %s", faiss_get_last_error());
    pl_crash_now();
    r.calls = pl_calls();
    faiss_Index_free(ix);
    faissx_store_close(s); /* writes nothing any more: the power is off */
    return r;
}

/* Batches found after recovery (for the summary). */
static long g_survived;

static void check_after(const char* dir, FaissxSyncPolicy sync,
                        const struct outcome* w, int keep, const char* what) {
    int rc;
    FaissxStore* s = open_store(dir, sync, &rc);
    cr_assert_eq(rc, 0, "%s: store does not open: %s", what, faiss_get_last_error());
    FaissIndex* ix = NULL;
    if (faissx_store_open_index(s, "pl", &ix) != 0) {
        cr_assert_eq(faissx_last_error_code(), FAISSX_E_NOT_FOUND,
                     "%s: index does not open: %s", what, faiss_get_last_error());
        cr_assert(!(sync == FAISSX_SYNC_ALWAYS && w->created),
                  "%s: the acknowledged create was lost", what);
        faissx_store_close(s);
        return;
    }
    int first_missing = -1, stored = 0;
    for (int b = 0; b < NBATCH; b++) {
        int c = present(ix, b);
        cr_assert(c == 0 || c == BATCH, "%s: batch %d partly present (%d)", what, b, c);
        if (c == 0 && first_missing < 0) first_missing = b;
        if (c == BATCH) {
            cr_assert(first_missing < 0, "%s: batch %d present after missing batch %d",
                      what, b, first_missing);
            cr_assert(b <= w->acked, "%s: batch %d present but never sent", what, b);
            stored++;
        }
    }
    cr_assert_eq(faiss_Index_ntotal(ix), (idx_t)stored * BATCH, "%s", what);
    g_survived += stored;
    if (sync == FAISSX_SYNC_ALWAYS)
        cr_assert(stored >= w->acked, "%s (keep %d): %d acknowledged batches, %d survived",
                  what, keep, w->acked, stored);
    /* Usable again: a new batch survives a clean reopen. */
    FXT_OK(add_batch(ix, NBATCH + 1));
    faiss_Index_free(ix);
    faissx_store_close(s);
    s = open_store(dir, sync, &rc);
    FXT_OK(rc);
    FXT_OK(faissx_store_open_index(s, "pl", &ix));
    cr_assert_eq(present(ix, NBATCH + 1), BATCH, "%s", what);
    cr_assert_eq(faiss_Index_ntotal(ix), (idx_t)(stored + 1) * BATCH, "%s", what);
    faiss_Index_free(ix);
    faissx_store_close(s);
}

static void rounds_for(FaissxSyncPolicy sync, const char* name, int nrounds) {
    char base[600], dir[700], what[160];
    snprintf(base, sizeof base, "%s", fxt_tmp_path(name));
    cr_assert(mkdir(base, 0755) == 0);
    /* How many mutating calls a whole run makes. */
    snprintf(dir, sizeof dir, "%s/dry", base);
    cr_assert(mkdir(dir, 0755) == 0);
    struct outcome full = workload(dir, sync, 0);
    cr_assert_eq(full.acked, NBATCH);
    pl_restore(0, 0);
    check_after(dir, sync, &full, 0, "power lost after the last call");
    unsigned seed = (unsigned)time(NULL);
    if (getenv("FAISSX_SOAK_SEED")) seed = (unsigned)atoi(getenv("FAISSX_SOAK_SEED"));
    int lost_total = 0;
    long acked_total = 0;
    g_survived = 0;
    for (int round = 0; round < nrounds; round++) {
        snprintf(dir, sizeof dir, "%s/r%d", base, round);
        cr_assert(mkdir(dir, 0755) == 0);
        long at = 1 + (long)(rand_r(&seed) % (unsigned)(full.calls + 5));
        struct outcome w = workload(dir, sync, at);
        int keep = round % 2;
        lost_total += pl_restore(keep, seed + (unsigned)round);
        snprintf(what, sizeof what, "%s round %d (seed %u): power lost at call %ld "
                 "of %ld, %d batches acknowledged", name, round, seed, at,
                 full.calls, w.acked);
        check_after(dir, sync, &w, keep, what);
        acked_total += w.acked;
    }
    cr_log_info("%s: %d rounds, %ld mutating calls per run, %ld batches "
                "acknowledged, %ld found after recovery, %d files lost "
                "unsynced writes", name, nrounds, full.calls, acked_total,
                g_survived, lost_total);
    /* The rounds must have exercised lost writes, not only clean stops. */
    cr_assert(lost_total > 0, "%s: no round lost an unsynced write", name);
}

static int nrounds(void) {
    const char* e = getenv("FAISSX_SOAK_ROUNDS");
    return e && atoi(e) > 0 ? atoi(e) : 40;
}

Test(powerloss, always_keeps_every_acknowledged_write, .timeout = 36000) {
    rounds_for(FAISSX_SYNC_ALWAYS, "always", nrounds());
}

Test(powerloss, interval_recovers_cleanly, .timeout = 36000) {
    rounds_for(FAISSX_SYNC_INTERVAL, "interval", nrounds());
}

Test(powerloss, none_recovers_cleanly, .timeout = 36000) {
    rounds_for(FAISSX_SYNC_NONE, "none", nrounds());
}

/* The model itself: an unsynced write is gone, a synced one stays, a
 * rename is undone until its directory is synced. */
Test(powerloss, model_forgets_what_was_not_synced) {
    char dir[600], a[700], b[700];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("model"));
    cr_assert(mkdir(dir, 0755) == 0);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    FILE* f = fopen(a, "w");
    fputs("old", f);
    fclose(f);
    pl_install(dir, 0);
    const fx_fileio* io = fx_io();
    int fd = io->open(a, O_RDWR, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(io->pwrite(fd, "NEW", 3, 0), 3);
    cr_assert_eq(io->fsync(fd), 0);
    cr_assert_eq(io->pwrite(fd, "+tail", 5, 3), 5);
    io->close(fd);
    fd = io->open(b, O_RDWR | O_CREAT, 0644);
    cr_assert_eq(io->pwrite(fd, "bbb", 3, 0), 3);
    cr_assert_eq(io->fsync(fd), 0);
    io->close(fd);
    cr_assert_eq(io->rename(b, a), 0); /* not followed by a directory sync */
    cr_assert_eq(pl_calls(), 7);
    pl_restore(0, 1);
    cr_assert_eq(fx_io(), fx_fileio_default());
    size_t n = 0;
    uint8_t* data = NULL;
    cr_assert_eq(fx_read_file(a, &data, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert(memcmp(data, "NEW", 3) == 0, "a holds %.*s", (int)n, (char*)data);
    free(data);
    cr_assert_eq(access(b, F_OK), -1, "b was never made durable in its directory");
}
