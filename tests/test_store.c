/* test_store.c -- the durable store (persist/, faissx_store_* in faissx.h):
 * round trips, recovery from torn and damaged files, injected I/O faults,
 * the lock, sync policies, and kill -9 crash rounds through store_helper. */
#include "common.h"
#include "store_vec.h"

#include "persist/crc32c.h"
#include "persist/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

/* ---- helpers ------------------------------------------------------------ */

static FaissxStore* open_store(const char* dir, FaissxSyncPolicy sync,
                               int repair) {
    FaissxStoreOptions o;
    faissx_store_options_init(&o);
    o.sync = sync;
    o.repair = repair;
    o.interval_ms = 10;
    FaissxStore* s = NULL;
    FXT_OK(faissx_store_open(&s, dir, &o));
    return s;
}

static uint8_t* slurp(const char* path, size_t* n) {
    FILE* f = fopen(path, "rb");
    cr_assert(f != NULL, "cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t* b = malloc((size_t)sz + 1);
    cr_assert(fread(b, 1, (size_t)sz, f) == (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void spit(const char* path, const uint8_t* b, size_t n) {
    FILE* f = fopen(path, "wb");
    cr_assert(f != NULL, "cannot write %s", path);
    cr_assert(fwrite(b, 1, n, f) == n);
    fclose(f);
}

/* The file the index's manifest names on line `key` ("snapshot", "log"). */
static void manifest_file(const char* dir, const char* name, const char* key,
                          char* out, size_t cap) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s/MANIFEST", dir, name);
    size_t n;
    char* m = (char*)slurp(p, &n);
    m[n] = 0;
    char pat[32];
    snprintf(pat, sizeof pat, "\n%s ", key);
    char* at = strstr(m, pat);
    cr_assert(at != NULL, "manifest lacks %s", key);
    at += strlen(pat);
    char* nl = strchr(at, '\n');
    snprintf(out, cap, "%s/%s/%.*s", dir, name, (int)(nl - at), at);
    free(m);
}

/* Copies a directory of plain files (an index directory). */
static void copy_dir(const char* from, const char* to) {
    mkdir(to, 0755);
    DIR* d = opendir(from);
    cr_assert(d != NULL);
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        size_t n;
        uint8_t* buf = slurp(a, &n);
        spit(b, buf, n);
        free(buf);
    }
    closedir(d);
}

static void remove_dir(const char* path) {
    DIR* d = opendir(path);
    if (!d) return;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char a[700];
        snprintf(a, sizeof a, "%s/%s", path, e->d_name);
        unlink(a);
    }
    closedir(d);
    rmdir(path);
}

/* Adds ids [first, first + n) with their store_vec vectors. */
static int add_ids(FaissIndex* ix, long long first, int n) {
    float* x = malloc(sizeof(float) * STORE_D * (size_t)n + 1);
    idx_t* ids = malloc(sizeof(idx_t) * (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        ids[i] = first + i;
        store_vec(first + i, x + (size_t)i * STORE_D);
    }
    int rc = faiss_Index_add_with_ids(ix, n, x, ids);
    free(x);
    free(ids);
    return rc;
}

/* How many of ids [first, first + n) are present exactly once (found at
 * distance 0, and not twice); fails the test on a duplicate. Queries go in
 * chunks of 16: below faiss's BLAS threshold (20) flat search computes
 * exact squared differences, so a stored vector is at distance exactly 0. */
static int count_present(FaissIndex* ix, long long first, int n) {
    enum { Q = 16 };
    float x[Q * STORE_D], D[Q * 2];
    idx_t I[Q * 2];
    int found = 0;
    for (int c0 = 0; c0 < n; c0 += Q) {
        int m = n - c0 < Q ? n - c0 : Q;
        for (int i = 0; i < m; i++) store_vec(first + c0 + i, x + i * STORE_D);
        FXT_OK(faiss_Index_search(ix, m, x, 2, D, I));
        for (int i = 0; i < m; i++) {
            long long id = first + c0 + i;
            if (I[2 * i] == id && D[2 * i] == 0.0f) found++;
            cr_assert(!(I[2 * i + 1] == id && D[2 * i + 1] == 0.0f),
                      "id %lld is stored twice", id);
        }
    }
    return found;
}

static FaissIndex* open_ix(FaissxStore* s, const char* name) {
    FaissIndex* ix = NULL;
    FXT_OK(faissx_store_open_index(s, name, &ix));
    return ix;
}

static char* report(FaissxStore* s) {
    char* r = NULL;
    FXT_OK(faissx_store_report(s, &r));
    return r;
}

/* ---- basics ------------------------------------------------------------- */

Test(store, crc32c_known_values) {
    cr_assert_eq(fx_crc32c(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(fx_crc32c(0, "", 0), 0u);
    uint8_t buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (uint8_t)(i * 37 + 11);
    uint32_t whole = fx_crc32c(0, buf, sizeof buf);
    for (size_t cut = 0; cut <= 1000; cut += 13) // every alignment, split anywhere
        cr_assert_eq(fx_crc32c(fx_crc32c(0, buf, cut), buf + cut, 1000 - cut),
                     whole);
    buf[500] ^= 4;
    cr_assert_neq(fx_crc32c(0, buf, sizeof buf), whole);
    /* The crc32-instruction path (where the CPU has one) and the tables
     * agree for every length and alignment, and when continued. */
    cr_assert_eq(fx_crc32c_portable(0, "123456789", 9), 0xE3069283u);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len + off <= sizeof buf; len += 1 + len / 7) {
            uint32_t a = fx_crc32c(0, buf + off, len);
            cr_assert_eq(a, fx_crc32c_portable(0, buf + off, len),
                         "offset %zu length %zu", off, len);
            cr_assert_eq(fx_crc32c(a, buf, 5), fx_crc32c_portable(a, buf, 5));
        }
}

/* Every operation through the store handle gives what the same operations
 * on a plain index give, and a reopened store gives identical results. */
Test(store, round_trip_matches_plain_index_and_survives_reopen) {
    const char* dir = fxt_tmp_path("rt");
    const int d = 16, nt = 500, nb = 300, nq = 20, k = 5;
    float* xt = fxt_clustered(nt, d, 8, 0.05f, 1);
    float* xb = fxt_clustered(nb, d, 8, 0.05f, 2);
    float* xq = fxt_clustered(nq, d, 8, 0.05f, 3);
    idx_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = 5000 + 3 * i;

    FaissIndex* plain = NULL;
    FXT_OK(faiss_index_factory(&plain, d, "IVF4,Flat", METRIC_L2));
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndex* ix = NULL;
    FXT_OK(faissx_store_create_index(s, "ivf", d, "IVF4,Flat", METRIC_L2, &ix));
    cr_assert(faissx_index_is_stored(ix));
    cr_assert(!faissx_index_is_stored(plain));
    cr_assert_eq(faiss_Index_d(ix), d);
    cr_assert(!faiss_Index_is_trained(ix));
    FXT_ERR(faiss_Index_add(ix, nb, xb), "not trained");

    FaissIndex* both[2] = {plain, ix};
    for (int w = 0; w < 2; w++) {
        FaissIndex* t = both[w];
        FXT_OK(faiss_Index_train(t, nt, xt));
        FXT_OK(faiss_Index_add(t, 200, xb));
        FXT_OK(faiss_Index_add_with_ids(t, 100, xb + 200 * d, ids));
        FaissIDSelectorRange* r = NULL;
        FXT_OK(faiss_IDSelectorRange_new(&r, 10, 40));
        size_t removed = 0;
        FXT_OK(faiss_Index_remove_ids(t, (FaissIDSelector*)r, &removed));
        cr_assert_eq(removed, 30);
        faiss_IDSelector_free((FaissIDSelector*)r);
        idx_t some[3] = {5000, 5003, 77};
        FaissIDSelectorBatch* b = NULL;
        FXT_OK(faiss_IDSelectorBatch_new(&b, 3, some));
        FXT_OK(faiss_Index_remove_ids(t, (FaissIDSelector*)b, &removed));
        cr_assert_eq(removed, 3);
        faiss_IDSelector_free((FaissIDSelector*)b);
    }
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, plain, "nprobe", 3));
    faiss_ParameterSpace_free(ps);
    FXT_OK(faissx_store_set_param(ix, "nprobe", 3));
    cr_assert_eq(faiss_Index_ntotal(ix), faiss_Index_ntotal(plain));

    float D[20 * 5], Dp[20 * 5], D2[20 * 5];
    idx_t I[20 * 5], Ip[20 * 5], I2[20 * 5];
    FXT_OK(faiss_Index_search(plain, nq, xq, k, Dp, Ip));
    FXT_OK(faiss_Index_search(ix, nq, xq, k, D, I));
    FXT_SAME(I, Ip, sizeof I);
    FXT_SAME(D, Dp, sizeof D);
    faiss_Index_free(ix);
    faissx_store_close(s);

    // Reopen: snapshot (written by train) + log replay.
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = open_ix(s, "ivf");
    cr_assert(faiss_Index_is_trained(ix));
    cr_assert_eq(faiss_Index_ntotal(ix), faiss_Index_ntotal(plain));
    FXT_OK(faiss_Index_search(ix, nq, xq, k, D2, I2));
    FXT_SAME(I2, I, sizeof I);
    FXT_SAME(D2, D, sizeof D);
    char* r = report(s);
    cr_assert_str_eq(r, "", "unexpected recovery report: %s", r);
    free(r);
    // Checkpoint, reopen: the snapshot alone.
    FXT_OK(faissx_store_checkpoint(s, NULL));
    faiss_Index_free(ix);
    faissx_store_close(s);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = open_ix(s, "ivf");
    FXT_OK(faiss_Index_search(ix, nq, xq, k, D2, I2));
    FXT_SAME(I2, I, sizeof I);
    FXT_SAME(D2, D, sizeof D);
    // reset is durable too
    FXT_OK(faiss_Index_reset(ix));
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    faiss_Index_free(ix);
    faissx_store_close(s);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = open_ix(s, "ivf");
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    cr_assert(faiss_Index_is_trained(ix));
    faiss_Index_free(ix);
    faissx_store_close(s);
    faiss_Index_free(plain);
    free(xt);
    free(xb);
    free(xq);
}

Test(store, list_drop_and_shared_handles) {
    const char* dir = fxt_tmp_path("ld");
    FaissxStore* s = open_store(dir, FAISSX_SYNC_NONE, 0);
    FaissIndex *a = NULL, *b = NULL, *a2 = NULL;
    FXT_OK(faissx_store_create_index(s, "b-2", 8, "IDMap,Flat", METRIC_L2, &b));
    FXT_OK(faissx_store_create_index(s, "a.1", 8, "IDMap,Flat", METRIC_L2, &a));
    FaissIndex* ip = NULL;
    FXT_OK(faissx_store_create_index(s, "ip", 8, "Flat", METRIC_INNER_PRODUCT, &ip));
    cr_assert_eq(faiss_Index_metric_type(ip), METRIC_INNER_PRODUCT);
    faiss_Index_free(ip);
    FXT_OK(faissx_store_drop(s, "ip"));
    char** names = NULL;
    size_t n = 0;
    FXT_OK(faissx_store_list(s, &names, &n));
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "a.1");
    cr_assert_str_eq(names[1], "b-2");
    faissx_store_list_free(names, n);
    // Two handles share one index.
    a2 = open_ix(s, "a.1");
    FXT_OK(add_ids(a, 0, 10));
    cr_assert_eq(faiss_Index_ntotal(a2), 10);
    faiss_Index_free(a); // freeing a handle does not delete the index
    cr_assert_eq(count_present(a2, 0, 10), 10);
    FXT_OK(faissx_store_drop(s, "a.1"));
    FXT_ERR(add_ids(a2, 10, 1), "was dropped");
    cr_assert_eq(count_present(a2, 0, 10), 10, "reads still work");
    FXT_ERR(faissx_store_open_index(s, "a.1", &a), "no index named 'a.1'");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_NOT_FOUND);
    FXT_OK(faissx_store_list(s, &names, &n));
    cr_assert_eq(n, 1);
    cr_assert_str_eq(names[0], "b-2");
    faissx_store_list_free(names, n);
    // The name is free again.
    FXT_OK(faissx_store_create_index(s, "a.1", 8, "Flat", METRIC_L2, &a));
    cr_assert_eq(faiss_Index_ntotal(a), 0);
    faiss_Index_free(a);
    faissx_store_close(s);
    FXT_ERR(add_ids(b, 0, 1), "is closed");
    faiss_Index_free(b);
    faiss_Index_free(a2);
}

/* What every C API cast says of a handle: a bit per class. */
static int flat_casts(FaissIndex* ix) {
    return (faiss_IndexFlat_cast(ix) != NULL) |
           (faiss_IndexFlatL2_cast(ix) != NULL) << 1 |
           (faiss_IndexFlatIP_cast(ix) != NULL) << 2 |
           (faiss_IndexIDMap_cast(ix) != NULL) << 3;
}

/* faiss writes a plain IndexFlat (what "Flat" builds) under IndexFlatL2's or
 * IndexFlatIP's tag and read_index returns that subclass: a stored "Flat"
 * must still be a plain IndexFlat after a reopen, from a snapshot
 * (checkpoint) or from the one written at creation. */
Test(store, flat_keeps_its_class_across_reopen) {
    const char* dir = fxt_tmp_path("flatclass");
    const FaissMetricType metrics[2] = {METRIC_L2, METRIC_INNER_PRODUCT};
    for (int m = 0; m < 2; m++) {
        for (int ckpt = 0; ckpt < 2; ckpt++) {
            FaissxStore* s = open_store(dir, FAISSX_SYNC_NONE, 0);
            char name[16];
            snprintf(name, sizeof name, "f%d%d", m, ckpt);
            FaissIndex* ix = NULL;
            FXT_OK(faissx_store_create_index(s, name, STORE_D, "Flat",
                                             metrics[m], &ix));
            float x[20 * STORE_D];
            for (int i = 0; i < 20; i++) store_vec(i, x + i * STORE_D);
            FXT_OK(faiss_Index_add(ix, 20, x));
            if (ckpt) FXT_OK(faissx_store_checkpoint(s, name));
            int before = flat_casts(ix);
            cr_assert_eq(before, 1, "a fresh \"Flat\" is a plain IndexFlat");
            float q[STORE_D] = {0};
            float D0[3], D1[3];
            idx_t I0[3], I1[3];
            FXT_OK(faiss_Index_search(ix, 1, q, 3, D0, I0));
            faiss_Index_free(ix);
            faissx_store_close(s);
            s = open_store(dir, FAISSX_SYNC_NONE, 0);
            ix = open_ix(s, name);
            cr_assert_eq(flat_casts(ix), before,
                         "metric %d, checkpoint %d: casts were %#x, now %#x",
                         (int)metrics[m], ckpt, before, flat_casts(ix));
            cr_assert_eq(faiss_Index_metric_type(ix), metrics[m]);
            cr_assert_eq(faiss_Index_ntotal(ix), 20);
            FXT_OK(faiss_Index_search(ix, 1, q, 3, D1, I1));
            FXT_SAME(D0, D1, sizeof D0);
            FXT_SAME(I0, I1, sizeof I0);
            faiss_Index_free(ix);
            faissx_store_close(s);
        }
    }
}

Test(store, errors) {
    const char* dir = fxt_tmp_path("err");
    FaissxStore* s = NULL;
    FaissIndex* ix = NULL;
    FXT_ERR(faissx_store_open(&s, NULL, NULL), "'dir' is NULL");
    FXT_ERR(faissx_store_open(NULL, dir, NULL), "'out' is NULL");
    FaissxStoreOptions o;
    faissx_store_options_init(&o);
    cr_assert_eq(o.sync, FAISSX_SYNC_ALWAYS);
    o.sync = (FaissxSyncPolicy)7;
    FXT_ERR(faissx_store_open(&s, dir, &o), "unknown sync policy");
    faissx_store_options_init(&o);
    o.sync = FAISSX_SYNC_INTERVAL;
    o.interval_ms = 0;
    FXT_ERR(faissx_store_open(&s, dir, &o), "interval_ms");
    FXT_ERR(faissx_store_open(&s, "/nonexistent-dir/x/y", NULL), "cannot create store directory");
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    char long_name[140];
    memset(long_name, 'a', 129);
    long_name[129] = 0;
    const char* bad[] = {"", ".hidden", "a/b", "..", "a b", "LOCK", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        FXT_ERR(faissx_store_create_index(s, bad[i], 8, "Flat", METRIC_L2, &ix),
                "invalid index name");
    FXT_ERR(faissx_store_create_index(s, "x", 0, "Flat", METRIC_L2, &ix), "dimension");
    FXT_ERR(faissx_store_create_index(s, "x", 8, "Flat", (FaissMetricType)99, &ix), "metric");
    FXT_ERR(faissx_store_create_index(s, "x", 8, "NoSuchIndex", METRIC_L2, &ix), "");
    FXT_ERR(faissx_store_open_index(s, "x", &ix), "no index named 'x'");
    FXT_OK(faissx_store_create_index(s, "x", 8, "Flat", METRIC_L2, &ix));
    FaissIndex* ix2 = NULL;
    FXT_ERR(faissx_store_create_index(s, "x", 8, "Flat", METRIC_L2, &ix2), "exists");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_EXISTS);
    // add_with_ids on a Flat: faiss refuses, nothing is logged
    FXT_ERR(add_ids(ix, 0, 3), "");
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    // selectors that cannot be logged
    FaissIDSelectorRange* r = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&r, 0, 1));
    FaissIDSelectorNot* nt = NULL;
    FXT_OK(faiss_IDSelectorNot_new(&nt, (FaissIDSelector*)r));
    size_t removed;
    FXT_ERR(faiss_Index_remove_ids(ix, (FaissIDSelector*)nt, &removed), "cannot be logged");
    faiss_IDSelector_free((FaissIDSelector*)nt);
    faiss_IDSelector_free((FaissIDSelector*)r);
    FXT_ERR(faissx_store_set_param(ix, "nprobe", -1), "parameter value");
    FXT_ERR(faissx_store_set_param(ix, "nprobe", 1.0 / 0.0), "parameter value");
    FXT_ERR(faissx_store_set_param(ix, "no_such_param", 1), ""); // faiss refuses
    FaissIndex* plain = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with((FaissIndexFlatL2**)&plain, 8));
    FXT_ERR(faissx_store_set_param(plain, "nprobe", 1), "not a store handle");
    faiss_Index_free(plain);
    FXT_ERR(faissx_store_drop(s, "nope"), "no index named");
    FXT_ERR(faissx_store_checkpoint(s, "nope"), "no index named");
    FXT_ERR(faissx_store_list(s, NULL, &removed), "NULL");
    faiss_Index_free(ix);
    faissx_store_close(s);
    faissx_store_close(NULL);
    // After the failures above the index reopens clean and empty.
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = open_ix(s, "x");
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    char* rep = report(s);
    cr_assert_str_eq(rep, "");
    free(rep);
    faiss_Index_free(ix);
    faissx_store_close(s);
}

static int run_helper(char* const argv[], int* out_fd, pid_t* pid) {
    const char* bin = getenv("FAISSX_STORE_HELPER");
    cr_assert(bin != NULL, "FAISSX_STORE_HELPER is not set (run through meson test)");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int p[2] = {-1, -1};
    if (out_fd) {
        cr_assert(pipe(p) == 0);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_addclose(&fa, p[0]);
        posix_spawn_file_actions_addclose(&fa, p[1]);
    }
    int rc = posix_spawn(pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot run %s: %s", bin, strerror(rc));
    if (out_fd) {
        close(p[1]);
        *out_fd = p[0];
    }
    return 0;
}

static int helper_status(char* const argv[]) {
    pid_t pid;
    run_helper(argv, NULL, &pid);
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

Test(store, lock_file_keeps_out_a_second_opener) {
    const char* d = fxt_tmp_path("lock");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d);
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissxStore* s2 = NULL;
    FXT_ERR(faissx_store_open(&s2, dir, NULL), "is locked");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_PERMISSION);
    char* argv[] = {"store_helper", "lock", dir, NULL};
    cr_assert_eq(helper_status(argv), 0, "another process could open a locked store");
    faissx_store_close(s);
    cr_assert_eq(helper_status(argv), 1, "the lock outlived close");
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    faissx_store_close(s);
}

/* ---- recovery ----------------------------------------------------------- */

/* Record boundaries of a log segment (docs/format.md): starts[i] and the
 * end of its header + payload, ends[i]. Returns the count. */
static int records(const uint8_t* b, size_t n, size_t* starts, size_t* ends,
                   int cap) {
    size_t off = 32;
    int c = 0;
    while (off + 24 <= n && c < cap) {
        uint32_t len = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
                       (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;
        starts[c] = off;
        ends[c] = off + 24 + len;
        c++;
        off += 24 + ((len + 7) & ~7u);
    }
    cr_assert_eq(off, n, "segment does not end at a record boundary");
    return c;
}

static const int kBatch[] = {2, 1, 3, 1, 2};
#define NBATCH 5

/* A store with index "t" holding batch i = ids [100 i, 100 i + kBatch[i])
 * in its log, optionally after a checkpoint that holds batch 0. */
static void make_logged(const char* dir, int checkpoint_after_first) {
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndex* ix = NULL;
    FXT_OK(faissx_store_create_index(s, "t", STORE_D, "IDMap,Flat", METRIC_L2, &ix));
    for (int i = 0; i < NBATCH; i++) {
        FXT_OK(add_ids(ix, 100 * i, kBatch[i]));
        if (i == 0 && checkpoint_after_first) FXT_OK(faissx_store_checkpoint(s, "t"));
    }
    faiss_Index_free(ix);
    faissx_store_close(s);
}

/* The float or the binary side of the tests that run on both: index "t"
 * of a store behind a void pointer, holding the batches of make_logged. */
typedef struct {
    void (*make_logged)(const char* dir, int checkpoint_after_first);
    int (*open)(FaissxStore* s, void** ix); /* "t"; status, for refusals */
    int (*add)(void* ix, long long first, int n);
    int (*count)(void* ix, long long first, int n); /* count_present */
    long long (*ntotal)(void* ix);
    void (*free)(void* ix);
} kind_t;

static void* kopen(const kind_t* k, FaissxStore* s) {
    void* ix = NULL;
    FXT_OK(k->open(s, &ix));
    return ix;
}

/* Number of leading batches present (each all or nothing), and total. */
static int kbatches_present(const kind_t* k, void* ix) {
    int present = 0;
    long long total = 0;
    for (int i = 0; i < NBATCH; i++) {
        int c = k->count(ix, 100 * i, kBatch[i]);
        cr_assert(c == 0 || c == kBatch[i], "batch %d partly present", i);
        if (c) {
            cr_assert_eq(present, i, "batch %d present after a missing one", i);
            present++;
            total += c;
        }
    }
    cr_assert_eq(k->ntotal(ix), total);
    return present;
}

static int f_open_t(FaissxStore* s, void** ix) {
    return faissx_store_open_index(s, "t", (FaissIndex**)ix);
}
static int f_add(void* ix, long long first, int n) { return add_ids(ix, first, n); }
static int f_count(void* ix, long long first, int n) {
    return count_present(ix, first, n);
}
static long long f_ntotal(void* ix) { return faiss_Index_ntotal(ix); }
static void f_free(void* ix) { faiss_Index_free(ix); }
static const kind_t kFloat = {make_logged, f_open_t, f_add, f_count, f_ntotal, f_free};

static int batches_present(FaissIndex* ix) {
    return kbatches_present(&kFloat, ix);
}

/* Cuts the log of make_logged's store at every byte of its last two
 * records: the complete records stay, a torn one is cut and reported. */
static void torn_tail_test(const kind_t* k, const char* tmpname, int every) {
    const char* base = fxt_tmp_path(tmpname);
    char dir[512], wal[700];
    snprintf(dir, sizeof dir, "%s", base);
    k->make_logged(dir, 0);
    manifest_file(dir, "t", "log", wal, sizeof wal);
    size_t n;
    uint8_t* full = slurp(wal, &n);
    size_t st[16], en[16];
    int nr = records(full, n, st, en, 16);
    cr_assert_eq(nr, NBATCH);
    for (size_t cut = st[nr - 2]; cut < n; cut++) {
        spit(wal, full, cut);
        FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
        void* ix = kopen(k, s);
        int complete = 0;
        for (int i = 0; i < nr; i++) complete += en[i] <= cut;
        cr_assert_eq(kbatches_present(k, ix), complete, "cut at %zu", cut);
        // Bytes of an incomplete record are a torn tail, cut and reported;
        // a cut at a record start (or inside the last record's padding) is
        // a clean end.
        int torn = complete < nr && cut > st[complete];
        char* r = report(s);
        if (torn)
            cr_assert(strstr(r, "torn tail") != NULL, "cut %zu: report '%s'", cut, r);
        else
            cr_assert_str_eq(r, "", "cut %zu is clean but reported '%s'", cut, r);
        free(r);
        // Every few offsets: the store takes new writes after the cut, and
        // the tail is gone for good (no second report).
        if (cut % every == 0) {
            long long before = k->ntotal(ix);
            FXT_OK(k->add(ix, 9000, 2));
            k->free(ix);
            faissx_store_close(s);
            s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
            ix = kopen(k, s);
            cr_assert_eq(k->count(ix, 9000, 2), 2);
            cr_assert_eq(k->ntotal(ix), before + 2);
            r = report(s);
            cr_assert_str_eq(r, "", "cut %zu reported twice: %s", cut, r);
            free(r);
        }
        k->free(ix);
        faissx_store_close(s);
    }
    free(full);
}

Test(store, torn_tail_cut_at_every_byte_of_the_last_records) {
    torn_tail_test(&kFloat, "torn", 9);
}

static void flip(const char* path, size_t byte, int bit) {
    size_t n;
    uint8_t* b = slurp(path, &n);
    cr_assert(byte < n);
    b[byte] ^= (uint8_t)(1u << bit);
    spit(path, b, n);
    free(b);
}

/* Opens "t" and expects failure mentioning `needle`; then with repair
 * expects success with `want` leading batches and a report with `rep`. */
static void krefused_then_repaired(const kind_t* k, const char* dir,
                                   const char* needle, int want,
                                   const char* rep) {
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    void* ix = NULL;
    FXT_ERR(k->open(s, &ix), needle);
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_IO);
    faissx_store_close(s);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 1);
    ix = kopen(k, s);
    cr_assert_eq(kbatches_present(k, ix), want);
    char* r = report(s);
    cr_assert(strstr(r, rep) != NULL, "report '%s' lacks '%s'", r, rep);
    free(r);
    FXT_OK(k->add(ix, 9000, 1));
    k->free(ix);
    faissx_store_close(s);
    // Repaired for good: opens without repair, nothing more to report.
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = kopen(k, s);
    cr_assert_eq(k->count(ix, 9000, 1), 1);
    r = report(s);
    cr_assert_str_eq(r, "");
    free(r);
    k->free(ix);
    faissx_store_close(s);
}

static void expect_refused_then_repaired(const char* dir, const char* needle,
                                         int want, const char* rep) {
    krefused_then_repaired(&kFloat, dir, needle, want, rep);
}

/* A bit flipped at each of the `nspots` offsets of the snapshot, then in
 * the middle of its payload and in its last byte, first as written at
 * creation, then after a checkpoint: refused, then repaired. */
static void flipped_snapshot_test(const kind_t* k, const char* tmpname,
                                  const size_t* spots, size_t nspots) {
    const char* base = fxt_tmp_path(tmpname);
    char dir[512], idir[600], saved[600], snap[700];
    snprintf(dir, sizeof dir, "%s", base);
    snprintf(idir, sizeof idir, "%s/t", dir);
    snprintf(saved, sizeof saved, "%s.saved", dir);
    for (int ck = 0; ck < 2; ck++) { // first generation, then after a checkpoint
        remove_dir(idir);
        k->make_logged(dir, ck);
        remove_dir(saved);
        copy_dir(idir, saved);
        manifest_file(dir, "t", "snapshot", snap, sizeof snap);
        size_t n;
        free(slurp(snap, &n));
        for (size_t i = 0; i < nspots + 2; i++) {
            size_t at = i < nspots ? spots[i]
                        : i == nspots ? 64 + (n - 64) / 2
                                      : n - 1;
            remove_dir(idir);
            copy_dir(saved, idir);
            flip(snap, at, (int)(i % 8));
            krefused_then_repaired(k, dir, "corrupt snapshot", NBATCH,
                                   "repair: snapshot");
        }
    }
}

Test(store, flipped_bits_in_snapshot_refuse_and_repair) {
    const size_t spots[] = {0, 9, 20, 33, 44, 50, 57, 62, 64};
    flipped_snapshot_test(&kFloat, "fs", spots, sizeof spots / sizeof *spots);
}

Test(store, flipped_bits_in_log_refuse_mid_damage_and_cut_a_bad_tail) {
    const char* base = fxt_tmp_path("fl");
    char dir[512], idir[600], saved[600], wal[700];
    snprintf(dir, sizeof dir, "%s", base);
    snprintf(idir, sizeof idir, "%s/t", dir);
    snprintf(saved, sizeof saved, "%s.saved", dir);
    make_logged(dir, 0);
    copy_dir(idir, saved);
    manifest_file(dir, "t", "log", wal, sizeof wal);
    size_t n;
    uint8_t* full = slurp(wal, &n);
    size_t st[16], en[16];
    int nr = records(full, n, st, en, 16);
    free(full);
    // A bad record followed by good ones: refused; repair keeps the prefix.
    for (int r = 0; r < nr - 1; r++) {
        size_t spots[] = {st[r], st[r] + 9, st[r] + 17, st[r] + 30, en[r] - 1};
        for (size_t i = 0; i < sizeof spots / sizeof *spots; i++) {
            remove_dir(idir);
            copy_dir(saved, idir);
            flip(wal, spots[i], 3);
            expect_refused_then_repaired(dir, "followed by", r, "repair: log");
        }
    }
    // Damage in the last record is indistinguishable from a torn write:
    // cut, reported, no repair needed.
    remove_dir(idir);
    copy_dir(saved, idir);
    flip(wal, st[nr - 1] + 30, 1);
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndex* ix = open_ix(s, "t");
    cr_assert_eq(batches_present(ix), nr - 1);
    char* r = report(s);
    cr_assert(strstr(r, "torn tail") != NULL, "report: %s", r);
    free(r);
    faiss_Index_free(ix);
    faissx_store_close(s);
    // Segment header: refused; repair keeps the snapshot (empty here).
    remove_dir(idir);
    copy_dir(saved, idir);
    flip(wal, 17, 0);
    expect_refused_then_repaired(dir, "segment header", 0, "header is damaged");
    // Manifest: refused, clearly.
    remove_dir(idir);
    copy_dir(saved, idir);
    char man[700];
    snprintf(man, sizeof man, "%s/MANIFEST", idir);
    flip(man, 40, 2);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FXT_ERR(faissx_store_open_index(s, "t", &ix), "corrupt manifest");
    faissx_store_close(s);
}

/* ---- injected I/O faults ------------------------------------------------ */

enum { OP_OPEN, OP_PWRITE, OP_SYNC, OP_TRUNC, OP_RENAME, OP_DIRSYNC, OP_N };
static const char* kOpName[OP_N] = {"open", "pwrite", "fsync", "ftruncate",
                                    "rename", "fsync_dir"};

static struct {
    int op;          /* which kind fails (-1: none) */
    int nth;         /* the nth call of that kind fails */
    int err;         /* errno it fails with */
    int count[OP_N]; /* calls seen */
    int fired;
    int slow_sync_us;
    int watching;      /* count the watched thread's fsyncs apart */
    pthread_t watched;
    int watched_syncs; /* fsyncs made on the watched thread */
} F = {-1, 0, 0, {0}, 0, 0, 0, 0, 0};
static pthread_mutex_t F_mu = PTHREAD_MUTEX_INITIALIZER;

static int should_fail(int op) {
    pthread_mutex_lock(&F_mu);
    if (op == OP_SYNC && F.watching && pthread_equal(pthread_self(), F.watched))
        F.watched_syncs++;
    int c = ++F.count[op];
    int hit = F.op == op && c == F.nth;
    if (hit) F.fired = 1;
    pthread_mutex_unlock(&F_mu);
    return hit;
}

static int f_open(const char* p, int fl, mode_t m) {
    if (should_fail(OP_OPEN)) { errno = F.err; return -1; }
    return fx_fileio_default()->open(p, fl, m);
}
static ssize_t f_pwrite(int fd, const void* b, size_t n, off_t o) {
    if (should_fail(OP_PWRITE)) {
        if (F.err == ENOSPC && n > 1) {
            // Disk full mid-write: half lands, the rest is refused.
            ssize_t w = fx_fileio_default()->pwrite(fd, b, n / 2, o);
            F.nth++; // ... and the next write (the remainder) fails
            return w;
        }
        errno = F.err;
        return -1;
    }
    return fx_fileio_default()->pwrite(fd, b, n, o);
}
static ssize_t f_pread(int fd, void* b, size_t n, off_t o) {
    return fx_fileio_default()->pread(fd, b, n, o);
}
static int f_fsync(int fd) {
    if (F.slow_sync_us) usleep((useconds_t)F.slow_sync_us);
    if (should_fail(OP_SYNC)) { errno = F.err; return -1; }
    return fx_fileio_default()->fsync(fd);
}
static int f_fdatasync(int fd) {
    if (F.slow_sync_us) usleep((useconds_t)F.slow_sync_us);
    if (should_fail(OP_SYNC)) { errno = F.err; return -1; }
    return fx_fileio_default()->fdatasync(fd);
}
static int f_ftruncate(int fd, off_t l) {
    if (should_fail(OP_TRUNC)) { errno = F.err; return -1; }
    return fx_fileio_default()->ftruncate(fd, l);
}
static int f_close(int fd) { return fx_fileio_default()->close(fd); }
static int f_rename(const char* a, const char* b) {
    if (should_fail(OP_RENAME)) { errno = F.err; return -1; }
    return fx_fileio_default()->rename(a, b);
}
static int f_unlink(const char* p) { return fx_fileio_default()->unlink(p); }
static int f_fsync_dir(const char* d) {
    if (should_fail(OP_DIRSYNC)) { errno = F.err; return -1; }
    return fx_fileio_default()->fsync_dir(d);
}
static const fx_fileio kFaulty = {f_open, f_pwrite, f_pread, f_fsync,
                                  f_fdatasync, f_ftruncate, f_close,
                                  f_rename, f_unlink, f_fsync_dir};

static void arm(int op, int nth, int err) {
    pthread_mutex_lock(&F_mu);
    F.op = op;
    F.nth = nth;
    F.err = err;
    F.fired = 0;
    memset(F.count, 0, sizeof F.count);
    pthread_mutex_unlock(&F_mu);
}

/* For each kind of I/O call and each n, the nth such call fails during a
 * run of mutations and checkpoints. Each call either succeeds or fails
 * with a message naming the I/O error; once the fault clears the store
 * takes writes again, and after a reopen every acknowledged batch is there
 * exactly once (failed ones may or may not be -- never twice, never
 * partly). */
static void fault_loop(FaissxSyncPolicy sync, int err, const char* errtext) {
    const char* base = fxt_tmp_path("faults");
    char dir[512], idir[600];
    snprintf(dir, sizeof dir, "%s", base);
    snprintf(idir, sizeof idir, "%s/t", dir);
    fx_fileio_set(&kFaulty);
    int runs = 0;
    for (int op = 0; op < OP_N; op++) {
        for (int nth = 1;; nth++) {
            remove_dir(idir);
            arm(-1, 0, 0);
            FaissxStore* s = open_store(dir, sync, 0);
            FaissIndex* ix = NULL;
            FXT_OK(faissx_store_create_index(s, "t", STORE_D, "IDMap,Flat", METRIC_L2, &ix));
            FXT_OK(add_ids(ix, 0, 3));
            int acked[8] = {1, 0}, failed[8] = {0};
            arm(op, nth, err);
            for (int step = 1; step < 8; step++) {
                int rc = step == 4 ? faissx_store_checkpoint(s, "t")
                                   : add_ids(ix, 100 * step, step);
                if (rc == 0) {
                    acked[step] = step != 4;
                } else {
                    const char* m = faiss_get_last_error();
                    cr_assert(strstr(m, errtext) != NULL,
                              "%s #%d, step %d: message '%s' lacks '%s'",
                              kOpName[op], nth, step, m, errtext);
                    failed[step] = 1;
                }
            }
            int fired = F.fired;
            arm(-1, 0, 0); // the fault clears
            FXT_OK(add_ids(ix, 900, 2));
            faiss_Index_free(ix);
            faissx_store_close(s);
            s = open_store(dir, sync, 0);
            ix = open_ix(s, "t");
            long long total = 0;
            cr_assert_eq(count_present(ix, 0, 3), 3);
            cr_assert_eq(count_present(ix, 900, 2), 2);
            total = 5;
            for (int step = 1; step < 8; step++) {
                if (step == 4) continue;
                int c = count_present(ix, 100 * step, step);
                if (acked[step])
                    cr_assert_eq(c, step, "%s #%d: acknowledged step %d lost",
                                 kOpName[op], nth, step);
                else
                    cr_assert(c == 0 || c == step, "step %d partly present", step);
                total += c;
            }
            cr_assert_eq(faiss_Index_ntotal(ix), total, "%s #%d: stray vectors",
                         kOpName[op], nth);
            faiss_Index_free(ix);
            faissx_store_close(s);
            runs++;
            (void)failed;
            if (!fired) break; // fewer than nth calls of this kind: next kind
        }
    }
    fx_fileio_set(NULL);
    cr_assert(runs > 20, "the fault loop ran only %d times", runs);
}

Test(store, io_errors_never_lose_acknowledged_writes) {
    fault_loop(FAISSX_SYNC_ALWAYS, EIO, "Input/output error");
}

Test(store, disk_full_never_loses_acknowledged_writes) {
    fault_loop(FAISSX_SYNC_ALWAYS, ENOSPC, "No space left on device");
}

Test(store, io_errors_under_interval_and_none) {
    fault_loop(FAISSX_SYNC_INTERVAL, EIO, "Input/output error");
    fault_loop(FAISSX_SYNC_NONE, EIO, "Input/output error");
}

/* ---- sync policies ------------------------------------------------------ */

struct writer_arg {
    FaissIndex* ix;
    int t, batches;
};

static void* writer(void* p) {
    struct writer_arg* a = p;
    for (int b = 0; b < a->batches; b++)
        if (add_ids(a->ix, (long long)a->t * 100000 + b * 4, 4) != 0) return (void*)1;
    return NULL;
}

/* Eight writers under `always`: every add waits for an fsync, and writers
 * waiting together share one (fewer fsyncs than adds). */
Test(store, group_commit_shares_fsyncs) {
    const char* dir = fxt_tmp_path("gc");
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndex* ix = NULL;
    FXT_OK(faissx_store_create_index(s, "g", STORE_D, "IDMap,Flat", METRIC_L2, &ix));
    arm(-1, 0, 0);
    F.slow_sync_us = 3000; // a disk slow enough that writers pile up
    fx_fileio_set(&kFaulty);
    enum { T = 8, B = 25 };
    pthread_t th[T];
    struct writer_arg args[T];
    for (int t = 0; t < T; t++) {
        args[t] = (struct writer_arg){ix, t, B};
        pthread_create(&th[t], NULL, writer, &args[t]);
    }
    for (int t = 0; t < T; t++) {
        void* r;
        pthread_join(th[t], &r);
        cr_assert(r == NULL, "writer %d failed: %s", t, faiss_get_last_error());
    }
    int syncs = F.count[OP_SYNC];
    fx_fileio_set(NULL);
    F.slow_sync_us = 0;
    cr_assert(syncs >= 1 && syncs < T * B, "%d fsyncs for %d adds", syncs, T * B);
    faiss_Index_free(ix);
    faissx_store_close(s);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = open_ix(s, "g");
    cr_assert_eq(faiss_Index_ntotal(ix), T * B * 4);
    for (int t = 0; t < T; t++)
        cr_assert_eq(count_present(ix, (long long)t * 100000, B * 4), B * 4);
    faiss_Index_free(ix);
    faissx_store_close(s);
}

Test(store, interval_syncs_in_background_and_none_leaves_it_to_the_os) {
    const char* dir = fxt_tmp_path("pol");
    fx_fileio_set(&kFaulty);
    // none: adds never fsync
    arm(-1, 0, 0);
    FaissxStore* s = open_store(dir, FAISSX_SYNC_NONE, 0);
    FaissIndex* ix = NULL;
    FXT_OK(faissx_store_create_index(s, "p", STORE_D, "IDMap,Flat", METRIC_L2, &ix));
    arm(-1, 0, 0);
    for (int i = 0; i < 20; i++) FXT_OK(add_ids(ix, i * 10, 3));
    cr_assert_eq(F.count[OP_SYNC], 0, "sync none fsynced %d times", F.count[OP_SYNC]);
    faiss_Index_free(ix);
    faissx_store_close(s);
    // interval: adds return at once, a background thread fsyncs
    s = open_store(dir, FAISSX_SYNC_INTERVAL, 0);
    ix = open_ix(s, "p");
    arm(-1, 0, 0);
    /* The adding thread's own fsyncs: the background one may sync the add
     * (every 10 ms) before this thread, on a loaded machine, looks. */
    pthread_mutex_lock(&F_mu);
    F.watching = 1;
    F.watched = pthread_self();
    F.watched_syncs = 0;
    pthread_mutex_unlock(&F_mu);
    FXT_OK(add_ids(ix, 1000, 3));
    pthread_mutex_lock(&F_mu);
    int own_syncs = F.watched_syncs;
    F.watching = 0;
    pthread_mutex_unlock(&F_mu);
    cr_assert_eq(own_syncs, 0, "the add itself fsynced %d times", own_syncs);
    /* every 10 ms; a loaded machine may hold the thread back far longer */
    for (int w = 0; w < 6000 && F.count[OP_SYNC] == 0; w++) usleep(5000);
    cr_assert(F.count[OP_SYNC] >= 1, "no background fsync within 30 s");
    faiss_Index_free(ix);
    faissx_store_close(s);
    fx_fileio_set(NULL);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = open_ix(s, "p");
    cr_assert_eq(faiss_Index_ntotal(ix), 63);
    cr_assert_eq(count_present(ix, 1000, 3), 3);
    faiss_Index_free(ix);
    faissx_store_close(s);
}

Test(store, automatic_checkpoint_bounds_the_log) {
    const char* dir = fxt_tmp_path("auto");
    FaissxStoreOptions o;
    faissx_store_options_init(&o);
    o.snapshot_log_bytes = 4096;
    FaissxStore* s = NULL;
    FXT_OK(faissx_store_open(&s, dir, &o));
    FaissIndex* ix = NULL;
    FXT_OK(faissx_store_create_index(s, "a", STORE_D, "IDMap,Flat", METRIC_L2, &ix));
    for (int i = 0; i < 100; i++) FXT_OK(add_ids(ix, i * 10, 5));
    char wal[700];
    manifest_file(dir, "a", "log", wal, sizeof wal);
    struct stat st;
    cr_assert(stat(wal, &st) == 0);
    cr_assert(st.st_size <= 4096 + 512, "log is %lld bytes", (long long)st.st_size);
    cr_assert(strstr(wal, "wal-000000000001") == NULL, "never checkpointed");
    faiss_Index_free(ix);
    faissx_store_close(s);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = open_ix(s, "a");
    cr_assert_eq(faiss_Index_ntotal(ix), 500);
    for (int i = 0; i < 100; i++) cr_assert_eq(count_present(ix, i * 10, 5), 5);
    // Only the current and previous generation remain on disk.
    char idir[600];
    snprintf(idir, sizeof idir, "%s/a", dir);
    DIR* d = opendir(idir);
    int files = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) files += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, 5, "%d files in the index directory", files);
    faiss_Index_free(ix);
    faissx_store_close(s);
}

/* ---- crash: kill -9 at random moments ----------------------------------- */

struct batch {
    long long first, last;
    int acked;
};

static int crash_rounds(void) {
    const char* e = getenv("FAISSX_SOAK_ROUNDS");
    return e && atoi(e) > 0 ? atoi(e) : 20;
}

Test(store, crash_kill9_loses_no_acknowledged_write, .timeout = 3600) {
    const char* base = fxt_tmp_path("crash");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", base);
    int rounds = crash_rounds();
    cr_assert(rounds * (long long)STORE_ROUND_IDS < (1 << 24), "too many rounds for exact float ids");
    unsigned seed = (unsigned)time(NULL);
    if (getenv("FAISSX_SOAK_SEED")) seed = (unsigned)atoi(getenv("FAISSX_SOAK_SEED"));
    long long ntotal = 0;
    int created = 0;
    struct batch* bs = malloc(sizeof *bs * 20000);
    for (int round = 0; round < rounds; round++) {
        char basestr[32], threads[8];
        snprintf(basestr, sizeof basestr, "%lld", (long long)round * STORE_ROUND_IDS);
        snprintf(threads, sizeof threads, "%d", 1 + round % 3);
        char* argv[] = {"store_helper", "crash", dir, basestr, threads, NULL};
        int fd;
        pid_t pid;
        run_helper(argv, &fd, &pid);
        // Random moment: sometimes during startup/recovery, mostly mid-writes.
        useconds_t wait = (useconds_t)(rand_r(&seed) % 4 == 0 ? rand_r(&seed) % 20000
                                                               : 20000 + rand_r(&seed) % 80000);
        usleep(wait);
        kill(pid, SIGKILL);
        int st;
        cr_assert(waitpid(pid, &st, 0) == pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "round %d: helper exited by itself (status %d)", round, st);
        FILE* f = fdopen(fd, "r");
        char line[128];
        int nb = 0;
        while (fgets(line, sizeof line, f)) {
            if (!strchr(line, '\n')) break; // cut mid-line: nothing more
            long long a, b;
            if (sscanf(line, "begin %lld %lld", &a, &b) == 2) {
                cr_assert(nb < 20000);
                bs[nb++] = (struct batch){a, b, 0};
            } else if (sscanf(line, "ack %lld %lld", &a, &b) == 2) {
                int found = 0;
                for (int i = nb - 1; i >= 0 && !found; i--)
                    if (bs[i].first == a) bs[i].acked = found = 1;
                cr_assert(found, "ack without begin: %s", line);
            }
        }
        fclose(f);
        FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
        FaissIndex* ix = NULL;
        if (faissx_store_open_index(s, "crash", &ix) != 0) {
            // killed before the index was ever created: nothing was acked
            cr_assert_eq(faissx_last_error_code(), FAISSX_E_NOT_FOUND,
                         "round %d: %s", round, faiss_get_last_error());
            cr_assert(!created, "round %d: the index disappeared", round);
            for (int i = 0; i < nb; i++) cr_assert(!bs[i].acked);
            faissx_store_close(s);
            continue;
        }
        long long expect = ntotal;
        for (int i = 0; i < nb; i++) {
            int n = (int)(bs[i].last - bs[i].first + 1);
            int c = count_present(ix, bs[i].first, n);
            if (bs[i].acked)
                cr_assert_eq(c, n, "round %d (seed %u): acknowledged ids %lld-%lld: "
                             "%d of %d present", round, seed, bs[i].first, bs[i].last, c, n);
            else
                cr_assert(c == 0 || c == n, "round %d: batch %lld-%lld partly present",
                          round, bs[i].first, bs[i].last);
            expect += c;
        }
        created = 1;
        ntotal = faiss_Index_ntotal(ix);
        cr_assert_eq(ntotal, expect, "round %d (seed %u): %lld vectors, expected %lld",
                     round, seed, ntotal, expect);
        faiss_Index_free(ix);
        faissx_store_close(s);
    }
    free(bs);
}

/* ---- faissx-check ------------------------------------------------------- */

/* Runs faissx-check with args, returns its exit status and output. */
static int run_check(const char* a1, const char* a2, char* out, size_t cap) {
    const char* bin = getenv("FAISSX_CHECK_BIN");
    cr_assert(bin != NULL, "FAISSX_CHECK_BIN is not set (run through meson test)");
    char* argv[] = {"faissx-check", (char*)a1, (char*)a2, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int p[2];
    cr_assert(pipe(p) == 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    pid_t pid;
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot run %s", bin);
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
    out[n] = 0;
    close(p[0]);
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid && WIFEXITED(st));
    return WEXITSTATUS(st);
}

Test(store, faissx_check_validates_and_repairs) {
    const char* base = fxt_tmp_path("chk");
    char dir[512], idir[600], saved[600], wal[700], out[8192];
    snprintf(dir, sizeof dir, "%s", base);
    snprintf(idir, sizeof idir, "%s/t", dir);
    snprintf(saved, sizeof saved, "%s.saved", dir);
    make_logged(dir, 1);
    copy_dir(idir, saved);
    cr_assert_eq(run_check(dir, NULL, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "t: ok, 9 vectors") != NULL, "%s", out);
    // While the store is open, the checker keeps out.
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    cr_assert_eq(run_check(dir, NULL, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "in use") != NULL, "%s", out);
    faissx_store_close(s);
    // Torn tail: reported (1) and left alone; --repair cuts it; then clean.
    manifest_file(dir, "t", "log", wal, sizeof wal);
    size_t n;
    uint8_t* full = slurp(wal, &n);
    spit(wal, full, n - 5);
    cr_assert_eq(run_check(dir, NULL, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "torn tail") != NULL && strstr(out, "repairable") != NULL, "%s", out);
    struct stat st;
    cr_assert(stat(wal, &st) == 0 && (size_t)st.st_size == n - 5, "check without --repair changed the log");
    cr_assert_eq(run_check("--repair", dir, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "repaired") != NULL, "%s", out);
    cr_assert_eq(run_check(dir, NULL, out, sizeof out), 0, "%s", out);
    free(full);
    // Mid-log damage: 2 (DAMAGED) until --repair.
    remove_dir(idir);
    copy_dir(saved, idir);
    size_t sts[16], ens[16];
    full = slurp(wal, &n);
    records(full, n, sts, ens, 16);
    free(full);
    flip(wal, sts[0] + 30, 2);
    cr_assert_eq(run_check(dir, NULL, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "DAMAGED") != NULL && strstr(out, "followed by") != NULL, "%s", out);
    cr_assert_eq(run_check("--repair", dir, out, sizeof out), 1, "%s", out);
    cr_assert_eq(run_check(dir, NULL, out, sizeof out), 0, "%s", out);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndex* ix = open_ix(s, "t");
    cr_assert_eq(count_present(ix, 0, kBatch[0]), kBatch[0], "the snapshot's batch survives");
    faiss_Index_free(ix);
    faissx_store_close(s);
}

/* The store's file of recent tagged drops (docs/format.md, "Exactly once
 * across restarts"), written here by hand: faissx-check reports it (ok,
 * or damaged -- repairable: the store ignores a damaged one), --repair
 * rewrites a damaged one empty, and the store's own parser agrees. */
typedef struct {
    uint8_t b[4096];
    size_t n;
} drops_t;

static void drops_begin(drops_t* f, uint32_t count) {
    memcpy(f->b, "FXDROP\r\n", 8);
    memcpy(f->b + 8, &count, 4);
    memset(f->b + 12, 0, 4);
    f->n = 16;
}
static void drops_add(drops_t* f, uint64_t client, uint64_t rid, const char* name) {
    uint32_t len = (uint32_t)strlen(name);
    memcpy(f->b + f->n, &client, 8);
    memcpy(f->b + f->n + 8, &rid, 8);
    memcpy(f->b + f->n + 16, &len, 4);
    memcpy(f->b + f->n + 20, name, len);
    f->n += 20 + len;
}
/* Appends the checksum and writes dir/.dropped. */
static void drops_write(drops_t* f, const char* dir) {
    uint32_t c = fx_crc32c(0, f->b, f->n);
    memcpy(f->b + f->n, &c, 4);
    char path[600];
    snprintf(path, sizeof path, "%s/.dropped", dir);
    spit(path, f->b, f->n + 4);
}

Test(store, faissx_check_reports_a_damaged_dropped_file) {
    char dir[512], path[600], out[8192];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("chkdrops"));
    snprintf(path, sizeof path, "%s/.dropped", dir);
    make_logged(dir, 1);
    /* no file yet: nothing to say about it */
    cr_assert_eq(run_check(dir, NULL, out, sizeof out), 0, "%s", out);
    cr_assert_null(strstr(out, ".dropped"), "%s", out);

    drops_t f;
    drops_begin(&f, 2);
    drops_add(&f, 7, 9, "gone");
    drops_add(&f, 7, 10, "old.one");
    drops_write(&f, dir);
    cr_assert_eq(run_check(dir, NULL, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, ".dropped: ok, 2 tagged drop(s)"), "%s", out);
    cr_assert(strstr(out, "t: ok, 9 vectors"), "%s", out);
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    char* r = report(s);
    cr_assert_str_eq(r, "", "the store disagrees with faissx-check: %s", r);
    free(r);
    faissx_store_close(s);

    /* damaged files: each is reported (1) and left alone */
    for (int k = 0; k < 7; k++) {
        const char* want = NULL;
        size_t len = 0;
        drops_begin(&f, 2);
        drops_add(&f, 7, 9, "gone");
        drops_add(&f, 7, 10, "old.one");
        switch (k) {
        case 0: /* a flipped byte */
            drops_write(&f, dir);
            f.b[20 + 1] ^= 1;
            len = f.n + 4;
            want = "checksum mismatch";
            break;
        case 1: /* cut short */
            drops_write(&f, dir);
            len = 10;
            want = "shorter than the 20 of an empty file";
            break;
        case 2:
            f.b[0] = 'X';
            drops_write(&f, dir);
            want = "bad magic";
            break;
        case 3: /* a name no index can have, checksum right */
            drops_begin(&f, 1);
            drops_add(&f, 7, 9, ".hidden");
            drops_write(&f, dir);
            want = "drop 1 of 1 names no valid index";
            break;
        case 4: /* a count larger than the store keeps */
            drops_begin(&f, 5000);
            drops_write(&f, dir);
            want = "5000 drops, more than the 1024 kept";
            break;
        case 5: /* a count larger than the entries */
            drops_begin(&f, 3);
            drops_add(&f, 7, 9, "gone");
            drops_write(&f, dir);
            want = "drop 2 of 3 runs past the end";
            break;
        default: /* bytes after the last entry */
            f.b[f.n++] = 0;
            drops_write(&f, dir);
            want = "1 bytes after the last drop";
            break;
        }
        if (len) spit(path, f.b, len);
        size_t before_n = 0;
        uint8_t* before = slurp(path, &before_n);
        cr_assert_eq(run_check(dir, NULL, out, sizeof out), 1, "case %d: %s", k, out);
        cr_assert(strstr(out, ".dropped: damaged (") && strstr(out, want) &&
                  strstr(out, "(repairable)"),
                  "case %d: no '%s' in:\n%s", k, want, out);
        cr_assert(strstr(out, "t: ok, 9 vectors"), "case %d: %s", k, out);
        size_t after_n = 0;
        uint8_t* after = slurp(path, &after_n);
        cr_assert(after_n == before_n && memcmp(before, after, after_n) == 0,
                  "case %d: faissx-check without --repair changed the file", k);
        free(before);
        free(after);
    }
    /* the store ignores it, with the same reason in its report */
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    r = report(s);
    cr_assert(strstr(r, "is damaged (1 bytes after the last drop)"), "%s", r);
    free(r);
    faissx_store_close(s);
    /* --repair rewrites it empty; then all is clean */
    cr_assert_eq(run_check("--repair", dir, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, ".dropped: repaired (rewritten empty)"), "%s", out);
    cr_assert_eq(run_check(dir, NULL, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, ".dropped: ok, 0 tagged drop(s)"), "%s", out);
    /* not a file at all: damaged, and not for faissx-check to replace */
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(mkdir(path, 0755), 0);
    cr_assert_eq(run_check("--repair", dir, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "not a regular file") && strstr(out, "remove it"), "%s", out);
    cr_assert_eq(rmdir(path), 0);
}

/* ---- parameters --------------------------------------------------------- */

/* ParameterSpace and the typed IVF setters reach a store handle's index,
 * durably (each change is a logged set_param); getters and the downcast
 * see the index behind the handle. */
Test(store, parameter_space_and_typed_setters_are_durable) {
    const char* d0 = fxt_tmp_path("params");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d0);
    const int d = 8, nb = 600, nq = 10, k = 4;
    float* xb = fxt_clustered(nb, d, 12, 0.05f, 21);
    float* xq = fxt_clustered(nq, d, 12, 0.05f, 22);
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndex *ix = NULL, *loc = NULL, *flat = NULL;
    FXT_OK(faissx_store_create_index(s, "p", d, "IVF8,Flat", METRIC_L2, &ix));
    FXT_OK(faissx_store_create_index(s, "f", d, "Flat", METRIC_L2, &flat));
    FXT_OK(faiss_index_factory(&loc, d, "IVF8,Flat", METRIC_L2));
    FXT_OK(faiss_Index_train(ix, nb, xb));
    FXT_OK(faiss_Index_train(loc, nb, xb));
    FXT_OK(faiss_Index_add(ix, nb, xb));
    FXT_OK(faiss_Index_add(loc, nb, xb));
    FaissIndexIVF* ivf = faiss_IndexIVF_cast(ix);
    cr_assert(ivf != NULL, "a stored IVF does not downcast");
    cr_assert(faiss_IndexIVF_cast(flat) == NULL);
    cr_assert_eq(faiss_IndexIVF_nlist(ivf), 8);
    faiss_IndexIVF_set_nprobe(ivf, 3);
    cr_assert_eq(faiss_IndexIVF_nprobe(ivf), 3, "%s", faiss_get_last_error());
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, ix, "nprobe", 5));
    cr_assert_eq(faiss_IndexIVF_nprobe(ivf), 5);
    FXT_OK(faiss_ParameterSpace_set_index_parameters(ps, ix, "nprobe=6"));
    cr_assert_eq(faiss_IndexIVF_nprobe(ivf), 6);
    FXT_ERR(faiss_ParameterSpace_set_index_parameters(ps, ix, "nprobe"),
            "expected name=value");
    FXT_ERR(faiss_ParameterSpace_set_index_parameter(ps, ix, "no_such", 1), "no_such");
    FXT_ERR(faiss_ParameterSpace_set_index_parameter(ps, flat, "nprobe", 2), "nprobe");
    cr_assert_eq(faiss_IndexIVF_nprobe(ivf), 6);
    /* The parameter took effect: same answers as a local index. */
    FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, loc, "nprobe", 6));
    float D1[10 * 4], D2[10 * 4];
    idx_t I1[10 * 4], I2[10 * 4];
    FXT_OK(faiss_Index_search(ix, nq, xq, k, D1, I1));
    FXT_OK(faiss_Index_search(loc, nq, xq, k, D2, I2));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    faiss_Index_free(ix);
    faiss_Index_free(flat);
    faissx_store_close(s);
    /* Reopened (log replay, no checkpoint since training): still 6. */
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = open_ix(s, "p");
    cr_assert_eq(faiss_IndexIVF_nprobe(faiss_IndexIVF_cast(ix)), 6);
    FXT_OK(faiss_Index_search(ix, nq, xq, k, D1, I1));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    faiss_ParameterSpace_free(ps);
    faiss_Index_free(ix);
    faiss_Index_free(loc);
    faissx_store_close(s);
    free(xb);
    free(xq);
}

/* ---- binary indexes ----------------------------------------------------- */

/* Adds the codes of ids [first, first + n) (store_code). */
static int badd(FaissIndexBinary* ix, long long first, int n) {
    uint8_t* c = malloc((size_t)n * (STORE_BD / 8) + 1);
    for (int i = 0; i < n; i++) store_code(first + i, c + (size_t)i * (STORE_BD / 8));
    int rc = faiss_IndexBinary_add(ix, n, c);
    free(c);
    return rc;
}

/* How many of ids [first, first + n) have their code stored exactly once
 * (found at Hamming distance 0, and not a second time). */
static int bcount_present(FaissIndexBinary* ix, long long first, int n) {
    enum { Q = 16 };
    uint8_t c[Q * STORE_BD / 8];
    int32_t D[Q * 2];
    idx_t I[Q * 2];
    int found = 0;
    for (int c0 = 0; c0 < n; c0 += Q) {
        int m = n - c0 < Q ? n - c0 : Q;
        for (int i = 0; i < m; i++) store_code(first + c0 + i, c + i * (STORE_BD / 8));
        FXT_OK(faiss_IndexBinary_search(ix, m, c, 2, D, I));
        for (int i = 0; i < m; i++) {
            if (I[2 * i] >= 0 && D[2 * i] == 0) found++;
            cr_assert(!(I[2 * i + 1] >= 0 && D[2 * i + 1] == 0),
                      "code of id %lld is stored twice", first + c0 + i);
        }
    }
    return found;
}

static FaissIndexBinary* bopen_ix(FaissxStore* s, const char* name) {
    FaissIndexBinary* ix = NULL;
    FXT_OK(faissx_store_open_index_binary(s, name, &ix));
    return ix;
}

/* Random codes (n x cs bytes). */
static uint8_t* rand_codes(int n, int cs, unsigned seed) {
    uint8_t* c = malloc((size_t)n * cs);
    for (size_t i = 0; i < (size_t)n * cs; i++) c[i] = (uint8_t)(rand_r(&seed) >> 7);
    return c;
}

/* The typed binary calls reach a binary store handle's index, as the
 * float ones (faiss_IndexIVF_cast, ...) reach a float one: the downcasts
 * give the handle, the getters read the stored index, set_nprobe and
 * efSearch are logged parameter changes that survive a reopen (replay,
 * then a checkpoint), and the results equal a plain index with the same
 * settings. The quantizer and own_fields are refused with a clear error,
 * on float store handles too. */
static void last_error_has(const char* what) {
    const char* e = faiss_get_last_error();
    cr_assert(e && strstr(e, what), "last error '%s' lacks '%s'",
              e ? e : "(none)", what);
}

Test(store, binary_typed_ivf_calls_reach_the_stored_index) {
    const char* dir = fxt_tmp_path("btyped");
    const int d = 64, cs = 8, nt = 400, nb = 300, nq = 20, k = 5;
    uint8_t* xt = rand_codes(nt, cs, 11);
    uint8_t* xb = rand_codes(nb, cs, 12);
    uint8_t* xq = rand_codes(nq, cs, 13);
    FaissIndexBinary* plain = NULL;
    FXT_OK(faiss_index_binary_factory(&plain, d, "BIVF8"));
    FaissIndexBinaryIVF* pivf = faiss_IndexBinaryIVF_cast(plain);
    cr_assert_not_null(pivf);
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndexBinary *ix = NULL, *bflat = NULL, *hnsw = NULL;
    FXT_OK(faissx_store_create_index_binary(s, "bivf", d, "BIVF8", &ix));
    FXT_OK(faissx_store_create_index_binary(s, "bflat", d, "BFlat", &bflat));
    FXT_OK(faissx_store_create_index_binary(s, "bhnsw", d, "BHNSW16", &hnsw));
    FXT_OK(faiss_IndexBinary_train(plain, nt, xt));
    FXT_OK(faiss_IndexBinary_train(ix, nt, xt));
    FXT_OK(faiss_IndexBinary_add(plain, nb, xb));
    FXT_OK(faiss_IndexBinary_add(ix, nb, xb));
    FXT_OK(faiss_IndexBinary_add(hnsw, nb, xb));

    /* downcasts: the handle itself, for the stored index's type only */
    FaissIndexBinaryIVF* sivf = faiss_IndexBinaryIVF_cast(ix);
    cr_assert_eq((void*)sivf, (void*)ix, "a stored binary IVF does not downcast");
    cr_assert_null(faiss_IndexBinaryIVF_cast(bflat));
    cr_assert_null(faiss_IndexBinaryFlat_cast(ix));
    cr_assert_eq((void*)faiss_IndexBinaryFlat_cast(bflat), (void*)bflat);
    /* getters read the stored IVF */
    cr_assert_eq(faiss_IndexBinaryIVF_nlist(sivf), faiss_IndexBinaryIVF_nlist(pivf));
    cr_assert_eq(faiss_IndexBinaryIVF_nlist(sivf), 8);
    cr_assert_eq(faiss_IndexBinaryIVF_nprobe(sivf), faiss_IndexBinaryIVF_nprobe(pivf));

    /* nprobe 3 changes the plain index's answers (so the check below
     * shows that the setter reached the stored index) */
    int32_t D1[20 * 5], Dp[20 * 5], Dp1[20 * 5];
    idx_t I1[20 * 5], Ip[20 * 5], Ip1[20 * 5];
    FXT_OK(faiss_IndexBinary_search(plain, nq, xq, k, Dp1, Ip1));
    faiss_IndexBinaryIVF_set_nprobe(pivf, 3);
    FXT_OK(faiss_IndexBinary_search(plain, nq, xq, k, Dp, Ip));
    cr_assert(memcmp(Ip, Ip1, sizeof Ip) != 0 || memcmp(Dp, Dp1, sizeof Dp) != 0,
              "nprobe 1 and 3 give the same results: the test data prove nothing");
    faiss_IndexBinaryIVF_set_nprobe(sivf, 3);
    cr_assert_eq(faiss_IndexBinaryIVF_nprobe(sivf), 3, "%s", faiss_get_last_error());
    FXT_OK(faiss_IndexBinary_search(ix, nq, xq, k, D1, I1));
    FXT_SAME(I1, Ip, sizeof I1);
    FXT_SAME(D1, Dp, sizeof D1);
    /* the store refuses nprobe 0 (as faissx_store_set_param_binary) */
    faiss_IndexBinaryIVF_set_nprobe(sivf, 0);
    last_error_has("nprobe must be >= 1");
    cr_assert_eq(faiss_IndexBinaryIVF_nprobe(sivf), 3);
    /* internals are not handed out */
    cr_assert_null(faiss_IndexBinaryIVF_quantizer(sivf));
    last_error_has("quantizer of an index in a durable store");
    cr_assert_eq(faiss_IndexBinaryIVF_own_fields(sivf), 0);
    last_error_has("own_fields does not apply to a store handle");
    faiss_IndexBinaryIVF_set_own_fields(sivf, 0);
    last_error_has("own_fields does not apply to a store handle");
    /* a type that does not match is refused as on a plain handle */
    faiss_IndexBinaryIVF_set_nprobe((FaissIndexBinaryIVF*)bflat, 2);
    last_error_has("not a faiss::IndexBinaryIVF");
    /* HNSW: efSearch through the typed calls, durably too */
    FXT_OK(faissx_IndexBinaryHNSW_set_efSearch(hnsw, 48));
    int ef = 0;
    FXT_OK(faissx_IndexBinaryHNSW_get_efSearch(hnsw, &ef));
    cr_assert_eq(ef, 48);
    FXT_ERR(faissx_IndexBinaryHNSW_set_efSearch(hnsw, 0), "efSearch must be > 0");
    FXT_ERR(faissx_IndexBinaryHNSW_set_efSearch(ix, 8), "IndexBinaryHNSW");
    faiss_IndexBinary_free(ix);
    faiss_IndexBinary_free(bflat);
    faiss_IndexBinary_free(hnsw);
    faissx_store_close(s);

    for (int round = 0; round < 2; round++) { /* log replay, then snapshot */
        s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
        ix = bopen_ix(s, "bivf");
        hnsw = bopen_ix(s, "bhnsw");
        sivf = faiss_IndexBinaryIVF_cast(ix);
        cr_assert_not_null(sivf);
        cr_assert_eq(faiss_IndexBinaryIVF_nprobe(sivf), 3, "round %d", round);
        FXT_OK(faiss_IndexBinary_search(ix, nq, xq, k, D1, I1));
        FXT_SAME(I1, Ip, sizeof I1);
        FXT_SAME(D1, Dp, sizeof D1);
        ef = 0;
        FXT_OK(faissx_IndexBinaryHNSW_get_efSearch(hnsw, &ef));
        cr_assert_eq(ef, 48, "round %d", round);
        if (round == 0) FXT_OK(faissx_store_checkpoint(s, NULL));
        faiss_IndexBinary_free(ix);
        faiss_IndexBinary_free(hnsw);
        faissx_store_close(s);
    }

    /* the float store handle gives the same errors for the same calls */
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndex* fix = NULL;
    FXT_OK(faissx_store_create_index(s, "fivf", 8, "IVF4,Flat", METRIC_L2, &fix));
    FaissIndexIVF* fivf = faiss_IndexIVF_cast(fix);
    cr_assert_not_null(fivf);
    cr_assert_null(faiss_IndexIVF_quantizer(fivf));
    last_error_has("quantizer of an index in a durable store");
    cr_assert_eq(faiss_IndexIVF_own_fields(fivf), 0);
    last_error_has("own_fields does not apply to a store handle");
    faiss_IndexIVF_set_own_fields(fivf, 1);
    last_error_has("own_fields does not apply to a store handle");
    faiss_Index_free(fix);
    faissx_store_close(s);
    faiss_IndexBinary_free(plain);
    free(xt);
    free(xb);
    free(xq);
}

Test(store, binary_round_trip_matches_plain_index_and_survives_reopen) {
    const char* dir = fxt_tmp_path("brt");
    const int d = 64, cs = 8, nt = 400, nb = 300, nq = 20, k = 5;
    uint8_t* xt = rand_codes(nt, cs, 1);
    uint8_t* xb = rand_codes(nb, cs, 2);
    uint8_t* xq = rand_codes(nq, cs, 3);
    idx_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = 5000 + 3 * i;

    FaissIndexBinary* plain = NULL;
    FXT_OK(faiss_index_binary_factory(&plain, d, "BIVF4"));
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndexBinary* ix = NULL;
    FXT_OK(faissx_store_create_index_binary(s, "bivf", d, "BIVF4", &ix));
    cr_assert(faissx_index_binary_is_stored(ix));
    cr_assert(!faissx_index_binary_is_stored(plain));
    cr_assert_eq(faiss_IndexBinary_d(ix), d);
    cr_assert(!faiss_IndexBinary_is_trained(ix));
    FXT_ERR(faiss_IndexBinary_add(ix, nb, xb), "not trained");

    FaissIndexBinary* both[2] = {plain, ix};
    for (int w = 0; w < 2; w++) {
        FaissIndexBinary* t = both[w];
        FXT_OK(faiss_IndexBinary_train(t, nt, xt));
        FXT_OK(faiss_IndexBinary_add(t, 200, xb));
        FXT_OK(faiss_IndexBinary_add_with_ids(t, 100, xb + 200 * cs, ids));
        FaissIDSelectorRange* r = NULL;
        FXT_OK(faiss_IDSelectorRange_new(&r, 10, 40));
        size_t removed = 0;
        FXT_OK(faiss_IndexBinary_remove_ids(t, (FaissIDSelector*)r, &removed));
        cr_assert_eq(removed, 30);
        faiss_IDSelector_free((FaissIDSelector*)r);
        idx_t some[3] = {5000, 5003, 77};
        FaissIDSelectorBatch* b = NULL;
        FXT_OK(faiss_IDSelectorBatch_new(&b, 3, some));
        FXT_OK(faiss_IndexBinary_remove_ids(t, (FaissIDSelector*)b, &removed));
        cr_assert_eq(removed, 3);
        faiss_IDSelector_free((FaissIDSelector*)b);
    }
    faiss_IndexBinaryIVF_set_nprobe(faiss_IndexBinaryIVF_cast(plain), 3);
    FXT_OK(faissx_store_set_param_binary(ix, "nprobe", 3));
    cr_assert_eq(faiss_IndexBinary_ntotal(ix), faiss_IndexBinary_ntotal(plain));

    int32_t D[20 * 5], Dp[20 * 5], D2[20 * 5];
    idx_t I[20 * 5], Ip[20 * 5], I2[20 * 5];
    FXT_OK(faiss_IndexBinary_search(plain, nq, xq, k, Dp, Ip));
    FXT_OK(faiss_IndexBinary_search(ix, nq, xq, k, D, I));
    FXT_SAME(I, Ip, sizeof I);
    FXT_SAME(D, Dp, sizeof D);
    faiss_IndexBinary_free(ix);
    faissx_store_close(s);

    // Reopen: snapshot (written by train) + log replay, nprobe included.
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = bopen_ix(s, "bivf");
    cr_assert(faiss_IndexBinary_is_trained(ix));
    cr_assert_eq(faiss_IndexBinary_ntotal(ix), faiss_IndexBinary_ntotal(plain));
    FXT_OK(faiss_IndexBinary_search(ix, nq, xq, k, D2, I2));
    FXT_SAME(I2, I, sizeof I);
    FXT_SAME(D2, D, sizeof D);
    char* r = report(s);
    cr_assert_str_eq(r, "", "unexpected recovery report: %s", r);
    free(r);
    // Checkpoint, reopen: the snapshot alone.
    FXT_OK(faissx_store_checkpoint(s, NULL));
    faiss_IndexBinary_free(ix);
    faissx_store_close(s);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = bopen_ix(s, "bivf");
    FXT_OK(faiss_IndexBinary_search(ix, nq, xq, k, D2, I2));
    FXT_SAME(I2, I, sizeof I);
    FXT_SAME(D2, D, sizeof D);
    FXT_OK(faiss_IndexBinary_reset(ix));
    cr_assert_eq(faiss_IndexBinary_ntotal(ix), 0);
    faiss_IndexBinary_free(ix);
    faissx_store_close(s);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    ix = bopen_ix(s, "bivf");
    cr_assert_eq(faiss_IndexBinary_ntotal(ix), 0);
    cr_assert(faiss_IndexBinary_is_trained(ix));
    faiss_IndexBinary_free(ix);
    faissx_store_close(s);
    faiss_IndexBinary_free(plain);
    free(xt);
    free(xb);
    free(xq);
}

Test(store, binary_errors_leave_no_damage) {
    const char* dir = fxt_tmp_path("berr");
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndexBinary* bx = NULL;
    FaissIndex* fx = NULL;
    FXT_ERR(faissx_store_create_index_binary(s, "b", 12, "BFlat", &bx), "multiple of 8");
    FXT_ERR(faissx_store_create_index_binary(s, "b", 0, "BFlat", &bx), "dimension");
    FXT_ERR(faissx_store_create_index_binary(s, "a/b", 64, "BFlat", &bx), "invalid index name");
    FXT_ERR(faissx_store_create_index_binary(s, "b", 64, "NoSuchIndex", &bx), "");
    FXT_ERR(faissx_store_create_index_binary(NULL, "b", 64, "BFlat", &bx), "'store' is NULL");
    FXT_ERR(faissx_store_open_index_binary(s, "b", &bx), "no index named 'b'");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_NOT_FOUND);
    // Names are shared by both kinds; each open refuses the other kind.
    FXT_OK(faissx_store_create_index(s, "f", 8, "Flat", METRIC_L2, &fx));
    FXT_OK(faissx_store_create_index_binary(s, "b", STORE_BD, "BFlat", &bx));
    FaissIndexBinary* bx2 = NULL;
    FaissIndex* fx2 = NULL;
    FXT_ERR(faissx_store_create_index_binary(s, "f", 64, "BFlat", &bx2), "exists");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_EXISTS);
    FXT_ERR(faissx_store_create_index(s, "b", 8, "Flat", METRIC_L2, &fx2), "exists");
    FXT_ERR(faissx_store_open_index_binary(s, "f", &bx2), "not a binary index");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    FXT_ERR(faissx_store_open_index(s, "b", &fx2), "is a binary index");
    // Refused mutations are not logged.
    uint8_t codes[3 * STORE_BD / 8] = {0};
    idx_t ids[3] = {1, 2, 3};
    FXT_ERR(faiss_IndexBinary_add_with_ids(bx, 3, codes, ids), "");
    FXT_ERR(faissx_store_set_param_binary(bx, "nprobe", 2), "cannot set parameter");
    FXT_ERR(faissx_store_set_param_binary(bx, "nprobe", -1), "parameter value");
    FaissIndexBinary* plain = NULL;
    FXT_OK(faiss_index_binary_factory(&plain, 64, "BFlat"));
    FXT_ERR(faissx_store_set_param_binary(plain, "verbose", 1), "not a binary store handle");
    faiss_IndexBinary_free(plain);
    FXT_OK(badd(bx, 0, 3));
    uint8_t out[STORE_BD / 8], want[STORE_BD / 8];
    FXT_ERR(faiss_IndexBinary_reconstruct(bx, 3, out), "out of range");
    FXT_OK(faiss_IndexBinary_reconstruct(bx, 2, out));
    store_code(2, want);
    FXT_SAME(out, want, sizeof out);
    faiss_IndexBinary_free(bx);
    faiss_Index_free(fx);
    faissx_store_close(s);
    s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    bx = bopen_ix(s, "b");
    cr_assert_eq(faiss_IndexBinary_ntotal(bx), 3);
    cr_assert_eq(bcount_present(bx, 0, 3), 3);
    fx = open_ix(s, "f");
    cr_assert_eq(faiss_Index_ntotal(fx), 0);
    char* rep = report(s);
    cr_assert_str_eq(rep, "");
    free(rep);
    char** names = NULL;
    size_t n = 0;
    FXT_OK(faissx_store_list(s, &names, &n));
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "b");
    faissx_store_list_free(names, n);
    FXT_OK(faissx_store_drop(s, "b"));
    FXT_ERR(badd(bx, 10, 1), "was dropped");
    faiss_IndexBinary_free(bx);
    faiss_Index_free(fx);
    faissx_store_close(s);
}

/* A store with binary index "t" (BFlat) holding batch i = the codes of ids
 * [100 i, 100 i + kBatch[i]) in its log, optionally after a checkpoint. */
static void bmake_logged(const char* dir, int checkpoint_after_first) {
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndexBinary* ix = NULL;
    FXT_OK(faissx_store_create_index_binary(s, "t", STORE_BD, "BFlat", &ix));
    for (int i = 0; i < NBATCH; i++) {
        FXT_OK(badd(ix, 100 * i, kBatch[i]));
        if (i == 0 && checkpoint_after_first) FXT_OK(faissx_store_checkpoint(s, "t"));
    }
    faiss_IndexBinary_free(ix);
    faissx_store_close(s);
}

static int b_open_t(FaissxStore* s, void** ix) {
    return faissx_store_open_index_binary(s, "t", (FaissIndexBinary**)ix);
}
static int b_add(void* ix, long long first, int n) { return badd(ix, first, n); }
static int b_count(void* ix, long long first, int n) {
    return bcount_present(ix, first, n);
}
static long long b_ntotal(void* ix) { return faiss_IndexBinary_ntotal(ix); }
static void b_free(void* ix) { faiss_IndexBinary_free(ix); }
static const kind_t kBinary = {bmake_logged, b_open_t, b_add, b_count,
                               b_ntotal, b_free};

Test(store, binary_torn_tail_drops_only_the_torn_record) {
    torn_tail_test(&kBinary, "btorn", 7);
}

Test(store, binary_corrupt_snapshot_refused_then_repaired) {
    const size_t spots[] = {0, 16, 20, 40, 64};
    flipped_snapshot_test(&kBinary, "bfs", spots, sizeof spots / sizeof *spots);
    const char* base = fxt_tmp_path("bfs");
    char dir[512], idir[600], saved[600], snap[700];
    snprintf(dir, sizeof dir, "%s", base);
    snprintf(idir, sizeof idir, "%s/t", dir);
    snprintf(saved, sizeof saved, "%s.saved", dir);
    // A float snapshot where the manifest names a binary index: refused
    // before faiss parses it.
    remove_dir(idir);
    copy_dir(saved, idir); // as after the checkpoint, undamaged
    manifest_file(dir, "t", "snapshot", snap, sizeof snap);
    {
        FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
        FaissIndex* f = NULL;
        FXT_OK(faissx_store_create_index(s, "f", 8, "Flat", METRIC_L2, &f));
        faiss_Index_free(f);
        faissx_store_close(s);
        char fsnap[700];
        manifest_file(dir, "f", "snapshot", fsnap, sizeof fsnap);
        size_t n;
        uint8_t* b = slurp(fsnap, &n);
        spit(snap, b, n);
        free(b);
        s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
        FaissIndexBinary* ix = NULL;
        FXT_ERR(faissx_store_open_index_binary(s, "t", &ix), "holds a float index");
        faissx_store_close(s);
    }
}

Test(store, binary_crash_kill9_loses_no_acknowledged_write, .timeout = 1200) {
    const char* base = fxt_tmp_path("bcrash");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", base);
    int rounds = crash_rounds() / 2 + 1;
    unsigned seed = (unsigned)time(NULL);
    if (getenv("FAISSX_SOAK_SEED")) seed = (unsigned)atoi(getenv("FAISSX_SOAK_SEED"));
    long long ntotal = 0;
    int created = 0;
    struct batch* bs = malloc(sizeof *bs * 20000);
    for (int round = 0; round < rounds; round++) {
        char basestr[32];
        snprintf(basestr, sizeof basestr, "%lld", (long long)round * STORE_ROUND_IDS);
        char* argv[] = {"store_helper", "bcrash", dir, basestr, NULL};
        int fd;
        pid_t pid;
        run_helper(argv, &fd, &pid);
        useconds_t wait = (useconds_t)(rand_r(&seed) % 4 == 0 ? rand_r(&seed) % 20000
                                                               : 20000 + rand_r(&seed) % 80000);
        usleep(wait);
        kill(pid, SIGKILL);
        int st;
        cr_assert(waitpid(pid, &st, 0) == pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "round %d: helper exited by itself (status %d)", round, st);
        FILE* f = fdopen(fd, "r");
        char line[128];
        int nb = 0;
        while (fgets(line, sizeof line, f)) {
            if (!strchr(line, '\n')) break;
            long long a, b;
            if (sscanf(line, "begin %lld %lld", &a, &b) == 2) {
                cr_assert(nb < 20000);
                bs[nb++] = (struct batch){a, b, 0};
            } else if (sscanf(line, "ack %lld %lld", &a, &b) == 2) {
                cr_assert(nb > 0 && bs[nb - 1].first == a, "ack without begin: %s", line);
                bs[nb - 1].acked = 1;
            }
        }
        fclose(f);
        FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
        FaissIndexBinary* ix = NULL;
        if (faissx_store_open_index_binary(s, "bcrash", &ix) != 0) {
            cr_assert_eq(faissx_last_error_code(), FAISSX_E_NOT_FOUND,
                         "round %d: %s", round, faiss_get_last_error());
            cr_assert(!created, "round %d: the index disappeared", round);
            for (int i = 0; i < nb; i++) cr_assert(!bs[i].acked);
            faissx_store_close(s);
            continue;
        }
        long long expect = ntotal;
        for (int i = 0; i < nb; i++) {
            int n = (int)(bs[i].last - bs[i].first + 1);
            int c = bcount_present(ix, bs[i].first, n);
            if (bs[i].acked)
                cr_assert_eq(c, n, "round %d (seed %u): acknowledged ids %lld-%lld: "
                             "%d of %d present", round, seed, bs[i].first, bs[i].last, c, n);
            else
                cr_assert(c == 0 || c == n, "round %d: batch %lld-%lld partly present",
                          round, bs[i].first, bs[i].last);
            expect += c;
        }
        created = 1;
        ntotal = faiss_IndexBinary_ntotal(ix);
        cr_assert_eq(ntotal, expect, "round %d (seed %u): %lld codes, expected %lld",
                     round, seed, ntotal, expect);
        faiss_IndexBinary_free(ix);
        faissx_store_close(s);
    }
    free(bs);
}

/* Codes of tests/fixtures/store-v2-binary (its README). */
static void fixture_codes(uint8_t* c, int n, int off) {
    for (int i = 0; i < n * 4; i++) c[i] = (uint8_t)(37 * (i + off) + 11);
}

Test(store, binary_fixture_still_opens) {
    const char* src = getenv("FAISSX_FIXTURES");
    cr_assert(src != NULL, "FAISSX_FIXTURES is not set (run through meson test)");
    char from[700], dir[512], to[600];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("bfix"));
    mkdir(dir, 0755);
    snprintf(from, sizeof from, "%s/store-v2-binary/b1", src);
    snprintf(to, sizeof to, "%s/b1", dir);
    copy_dir(from, to);
    FaissxStore* s = open_store(dir, FAISSX_SYNC_ALWAYS, 0);
    FaissIndexBinary* ix = bopen_ix(s, "b1");
    char* r = report(s);
    cr_assert_str_eq(r, "", "report: %s", r);
    free(r);
    FaissIndexBinary* ref = NULL;
    FXT_OK(faiss_index_binary_factory(&ref, 32, "BIVF2"));
    uint8_t t[16 * 4], a[3 * 4], b[3 * 4];
    fixture_codes(t, 16, 0);
    fixture_codes(a, 3, 100);
    fixture_codes(b, 3, 200);
    idx_t ia[3] = {100, 101, 102}, ib[3] = {103, 104, 105};
    FXT_OK(faiss_IndexBinary_train(ref, 16, t));
    FXT_OK(faiss_IndexBinary_add_with_ids(ref, 3, a, ia));
    FXT_OK(faiss_IndexBinary_add_with_ids(ref, 3, b, ib));
    faiss_IndexBinaryIVF_set_nprobe(faiss_IndexBinaryIVF_cast(ref), 2);
    FaissIDSelectorRange* sel = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&sel, 101, 102));
    size_t n = 0;
    FXT_OK(faiss_IndexBinary_remove_ids(ref, (FaissIDSelector*)sel, &n));
    faiss_IDSelector_free((FaissIDSelector*)sel);
    cr_assert_eq(n, 1);
    cr_assert_eq(faiss_IndexBinary_ntotal(ix), 5);
    cr_assert(faiss_IndexBinary_is_trained(ix));
    uint8_t q[6 * 4];
    memcpy(q, a, sizeof a);
    memcpy(q + sizeof a, b, sizeof b);
    int32_t D1[6 * 6], D2[6 * 6];
    idx_t I1[6 * 6], I2[6 * 6];
    FXT_OK(faiss_IndexBinary_search(ix, 6, q, 6, D1, I1));
    FXT_OK(faiss_IndexBinary_search(ref, 6, q, 6, D2, I2));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    faiss_IndexBinary_free(ref);
    faiss_IndexBinary_free(ix);
    faissx_store_close(s);
}
