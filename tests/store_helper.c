/* store_helper.c -- a separate process for test_store.c's crash and lock
 * tests (forking a process that runs threads is fragile, so tests exec
 * this instead).
 *
 *   store_helper crash DIR BASE THREADS
 *       Opens the store at DIR (sync always, small checkpoint threshold),
 *       opens or creates index "crash" (IDMap,Flat, d = STORE_D) and adds
 *       batches from THREADS threads until killed. Thread t uses ids
 *       BASE + t * PER_THREAD + k. For each batch it prints
 *       "begin FIRST LAST" before the add and "ack FIRST LAST" after the
 *       add returned 0, flushing each line. Every 40th batch of thread 0
 *       also checkpoints.
 *   store_helper bcrash DIR BASE
 *       The same with one thread on binary index "bcrash" (BFlat,
 *       d = STORE_BD): faiss_IndexBinary_add of store_code(id) codes (a
 *       binary flat index has no add_with_ids; the test finds each code).
 *   store_helper lock DIR
 *       Tries to open the store: exit 0 if that fails because it is
 *       locked, 1 if it opened, 2 on another error. */
#include "store_vec.h"

#include <faissx/faissx.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static FaissxStore* g_store;
static FaissIndex* g_ix;
static FaissIndexBinary* g_bix;
static long long g_base;
static pthread_mutex_t g_out = PTHREAD_MUTEX_INITIALIZER;

static void say(const char* what, long long a, long long b) {
    pthread_mutex_lock(&g_out);
    printf("%s %lld %lld\n", what, a, b);
    fflush(stdout);
    pthread_mutex_unlock(&g_out);
}

static void* writer(void* arg) {
    long t = (long)arg;
    unsigned seed = (unsigned)(g_base * 7 + t + 1);
    long long next = g_base + t * STORE_PER_THREAD;
    long long end = next + STORE_PER_THREAD;
    float x[64 * STORE_D];
    uint8_t codes[64 * STORE_BD / 8];
    idx_t ids[64];
    for (int batch = 1;; batch++) {
        int n = 1 + (int)(rand_r(&seed) % 40);
        if (next + n > end) {
            pause(); // out of ids for this round: wait for the kill
            continue;
        }
        for (int i = 0; i < n; i++) {
            ids[i] = next + i;
            store_vec(ids[i], x + i * STORE_D);
            store_code(ids[i], codes + i * (STORE_BD / 8));
        }
        say("begin", next, next + n - 1);
        if (g_bix ? faiss_IndexBinary_add(g_bix, n, codes) != 0
                  : faiss_Index_add_with_ids(g_ix, n, x, ids) != 0) {
            fprintf(stderr, "store_helper: add failed: %s\n",
                    faiss_get_last_error());
            exit(3);
        }
        say("ack", next, next + n - 1);
        next += n;
        if (t == 0 && batch % 40 == 0 && faissx_store_checkpoint(g_store, NULL)) {
            fprintf(stderr, "store_helper: checkpoint failed: %s\n",
                    faiss_get_last_error());
            exit(3);
        }
    }
    return NULL;
}

int main(int argc, char** argv) {
    faissx_remote_disable();
    if (argc == 3 && !strcmp(argv[1], "lock")) {
        FaissxStore* s = NULL;
        if (faissx_store_open(&s, argv[2], NULL) == 0) {
            faissx_store_close(s);
            return 1;
        }
        return strstr(faiss_get_last_error(), "locked") ? 0 : 2;
    }
    if (argc == 5 && !strcmp(argv[1], "crash")) {
        FaissxStoreOptions o;
        faissx_store_options_init(&o);
        o.snapshot_log_bytes = 16 << 10; // checkpoints happen during crashes too
        if (faissx_store_open(&g_store, argv[2], &o)) goto fail;
        g_base = atoll(argv[3]);
        int threads = atoi(argv[4]);
        if (faissx_store_open_index(g_store, "crash", &g_ix) &&
            faissx_store_create_index(g_store, "crash", STORE_D, "IDMap,Flat",
                                      METRIC_L2, &g_ix))
            goto fail;
        pthread_t th[16];
        if (threads < 1 || threads > 16) return 2;
        for (long t = 0; t < threads; t++)
            pthread_create(&th[t], NULL, writer, (void*)t);
        for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
        return 0;
    fail:
        fprintf(stderr, "store_helper: %s\n", faiss_get_last_error());
        return 3;
    }
    if (argc == 4 && !strcmp(argv[1], "bcrash")) {
        FaissxStoreOptions o;
        faissx_store_options_init(&o);
        o.snapshot_log_bytes = 16 << 10;
        if (faissx_store_open(&g_store, argv[2], &o)) goto bfail;
        g_base = atoll(argv[3]);
        if (faissx_store_open_index_binary(g_store, "bcrash", &g_bix) &&
            faissx_store_create_index_binary(g_store, "bcrash", STORE_BD,
                                             "BFlat", &g_bix))
            goto bfail;
        writer((void*)0);
        return 0;
    bfail:
        fprintf(stderr, "store_helper: %s\n", faiss_get_last_error());
        return 3;
    }
    fprintf(stderr, "usage: store_helper crash DIR BASE THREADS | bcrash DIR "
                    "BASE | lock DIR\n");
    return 2;
}
