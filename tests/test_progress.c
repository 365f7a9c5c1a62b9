/* test_progress.c -- progress reports and cancellation of long local calls
 * (faissx.h "Progress and cancellation"): reports are monotonic and reach
 * 100%; a cancelled call (callback return value, a token raised by another
 * thread, or raised before the call) fails with FAISSX_E_CANCELED and leaves
 * the index byte-for-byte as it was; a call with progress on gives the
 * same index as one without. */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define D 32
#define NT 6000

/* ---- what the callback saw ---- */
typedef struct Seen {
    int calls;
    int op;
    int64_t last_done, total;
    int monotonic;      /* done never decreased, total never changed */
    int64_t cancel_at;  /* return 1 once done >= cancel_at (-1: never) */
    int bad_eta;        /* an eta < 0 after done > 0, or NaN */
    /* cross-thread cancellation */
    atomic_int started;
    FaissxCancelToken* wait_for; /* block until this token is raised */
} Seen;

static void seen_init(Seen* s) {
    memset(s, 0, sizeof *s);
    s->monotonic = 1;
    s->cancel_at = -1;
    s->last_done = -1;
}

static int on_progress(const FaissxProgress* p, void* user) {
    Seen* s = user;
    if (s->calls > 0 && (p->done < s->last_done || p->total != s->total))
        s->monotonic = 0;
    if (p->done > p->total || p->total < 1) s->monotonic = 0;
    if (p->done > 0 && !(p->eta_s >= 0)) s->bad_eta = 1;
    s->calls++;
    s->op = p->op;
    s->last_done = p->done;
    s->total = p->total;
    if (s->wait_for && p->done >= 1) {
        atomic_store(&s->started, 1);
        for (int i = 0; i < 10000 && !faissx_cancel_token_is_cancelled(s->wait_for); i++)
            usleep(1000);
    }
    return s->cancel_at >= 0 && p->done >= s->cancel_at;
}

/* Per-test cleanup of the thread's settings (Criterion may reuse the
 * process between tests when run with --no-fork). */
static void clear_settings(void) {
    faissx_set_progress_callback(NULL, NULL);
    faissx_set_cancel_token(NULL);
}

/* The index in faiss's file format (to compare states byte for byte). */
static uint8_t* bytes_of(const FaissIndex* ix, size_t* len) {
    const char* path = fxt_tmp_path("state.index");
    FXT_OK(faiss_write_index_fname(ix, path));
    FILE* f = fopen(path, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t* b = malloc(*len ? *len : 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void same_bytes(const FaissIndex* a, const FaissIndex* b) {
    size_t la, lb;
    uint8_t* x = bytes_of(a, &la);
    uint8_t* y = bytes_of(b, &lb);
    cr_assert_eq(la, lb, "serialized sizes differ (%zu vs %zu)", la, lb);
    FXT_SAME(x, y, la);
    free(x);
    free(y);
}

static void unchanged_since(const FaissIndex* ix, const uint8_t* before,
                            size_t len) {
    size_t l;
    uint8_t* now = bytes_of(ix, &l);
    cr_assert_eq(l, len, "index size changed (%zu -> %zu bytes)", len, l);
    cr_assert(memcmp(now, before, len) == 0, "index bytes changed");
    free(now);
}

static void same_search(const FaissIndex* a, const FaissIndex* b,
                        const float* q, int nq) {
    int k = 5;
    float* da = malloc(sizeof(float) * nq * k);
    float* db = malloc(sizeof(float) * nq * k);
    idx_t* ia = malloc(sizeof(idx_t) * nq * k);
    idx_t* ib = malloc(sizeof(idx_t) * nq * k);
    FXT_OK(faiss_Index_search(a, nq, q, k, da, ia));
    FXT_OK(faiss_Index_search(b, nq, q, k, db, ib));
    FXT_SAME(ia, ib, sizeof(idx_t) * nq * k);
    FXT_SAME(da, db, sizeof(float) * nq * k);
    free(da);
    free(db);
    free(ia);
    free(ib);
}

static FaissIndex* make(const char* desc) {
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, desc, METRIC_L2));
    return ix;
}

/* ---- train ---- */

static void train_reports_and_matches(const char* desc) {
    float* x = fxt_clustered(NT, D, 40, 0.1f, 11);
    FaissIndex* ref = make(desc);
    FaissIndex* ix = make(desc);
    FXT_OK(faiss_Index_train(ref, NT, x));

    Seen s;
    seen_init(&s);
    faissx_set_progress_callback(on_progress, &s);
    FXT_OK(faiss_Index_train(ix, NT, x));
    clear_settings();

    cr_assert_eq(s.op, FAISSX_PROGRESS_TRAIN);
    cr_assert(s.monotonic, "%s: progress went backwards", desc);
    cr_assert(!s.bad_eta, "%s: missing ETA", desc);
    cr_assert_eq(s.last_done, s.total, "%s: ended at %lld/%lld", desc,
                 (long long)s.last_done, (long long)s.total);
    cr_assert_gt(s.total, 1, "%s: train counts k-means iterations", desc);
    cr_assert_geq(s.calls, s.total + 1, "%s: one report per iteration", desc);
    cr_assert(faiss_Index_is_trained(ix));
    same_bytes(ix, ref);
    FXT_OK(faiss_Index_add(ref, NT, x));
    FXT_OK(faiss_Index_add(ix, NT, x));
    same_search(ix, ref, x, 50);
    faiss_Index_free(ref);
    faiss_Index_free(ix);
    free(x);
}

Test(progress, train_ivfflat_reaches_total) {
    train_reports_and_matches("IVF64,Flat");
}
Test(progress, train_ivfsq_reaches_total) {
    train_reports_and_matches("IVF64,SQ8");
}
Test(progress, train_ivfpq_reaches_total) {
    train_reports_and_matches("IVF32,PQ8x4np");
}

/* trained_first: train (and add to) the index before, so the cancelled
 * train is a retrain; types that train without k-means are one unit of
 * work, cancelled at its end (after the clone trained). */
static void train_cancel_by_callback(const char* desc, int trained_first,
                                     int one_unit) {
    float* x = fxt_clustered(NT, D, 40, 0.1f, 12);
    FaissIndex* ix = make(desc);
    if (trained_first) {
        FXT_OK(faiss_Index_train(ix, NT / 2, x + (size_t)(NT / 2) * D));
        FXT_OK(faiss_Index_add(ix, 500, x));
    }
    size_t len;
    uint8_t* before = bytes_of(ix, &len);

    Seen s;
    seen_init(&s);
    s.cancel_at = one_unit ? 1 : 2;
    faissx_set_progress_callback(on_progress, &s);
    int rc = faiss_Index_train(ix, NT, x);
    clear_settings();
    cr_assert_eq(rc, FAISSX_E_CANCELED, "%s: rc %d (%s)", desc, rc,
                 faiss_get_last_error());
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_CANCELED);
    cr_assert(strstr(faiss_get_last_error(), "cancelled by the progress callback"),
              "%s", faiss_get_last_error());
    cr_assert_str_eq(faissx_strerror(FAISSX_E_CANCELED), "cancelled");
    if (one_unit)
        cr_assert_eq(s.total, 1);
    else
        cr_assert_lt(s.last_done, s.total, "cancelled before the end");
    cr_assert_eq(faiss_Index_is_trained(ix), trained_first);
    unchanged_since(ix, before, len);

    // and the index still trains normally afterwards
    FXT_OK(faiss_Index_train(ix, NT, x));
    cr_assert(faiss_Index_is_trained(ix));
    free(before);
    faiss_Index_free(ix);
    free(x);
}

Test(progress, train_cancel_by_callback_ivfflat) {
    train_cancel_by_callback("IVF64,Flat", 0, 0);
}
Test(progress, train_cancel_by_callback_ivfsq) {
    train_cancel_by_callback("IVF64,SQ8", 0, 0);
}
Test(progress, train_cancel_by_callback_ivfpq_trained) {
    // retraining a trained IVFPQ with data: cancel keeps centroids and data
    // (a trained quantizer is not retrained: one unit, the PQ's training)
    train_cancel_by_callback("IVF32,PQ8x4np", 1, 1);
}
Test(progress, train_cancel_by_callback_value_types) {
    train_cancel_by_callback("SQ8", 0, 1);
    train_cancel_by_callback("SQ8", 1, 1);
    train_cancel_by_callback("PQ8x4np", 0, 1);
    train_cancel_by_callback("PQ8x4np", 1, 1);
    train_cancel_by_callback("LSHrt", 0, 1);
    train_cancel_by_callback("Flat", 1, 1);
}

/* The types trained without k-means report one unit, and train the same
 * through the clone as in place. */
static void train_one_unit_matches(const char* desc) {
    float* x = fxt_clustered(NT, D, 40, 0.1f, 15);
    FaissIndex* ref = make(desc);
    FaissIndex* ix = make(desc);
    FXT_OK(faiss_Index_train(ref, NT, x));
    Seen s;
    seen_init(&s);
    faissx_set_progress_callback(on_progress, &s);
    FXT_OK(faiss_Index_train(ix, NT, x));
    clear_settings();
    cr_assert_eq(s.total, 1, "%s", desc);
    cr_assert_eq(s.last_done, 1);
    cr_assert(s.monotonic);
    same_bytes(ix, ref);
    faiss_Index_free(ref);
    faiss_Index_free(ix);
    free(x);
}

Test(progress, train_value_types_match) {
    train_one_unit_matches("SQ8");
    train_one_unit_matches("PQ8x4np");
    train_one_unit_matches("LSHrt");
    train_one_unit_matches("Flat");
}

static void* canceller(void* arg) {
    Seen* s = arg;
    while (!atomic_load(&s->started))
        usleep(1000);
    faissx_cancel_token_cancel(s->wait_for);
    return NULL;
}

Test(progress, train_cancel_from_another_thread) {
    float* x = fxt_clustered(NT, D, 40, 0.1f, 13);
    FaissIndex* ix = make("IVF64,Flat");
    size_t len;
    uint8_t* before = bytes_of(ix, &len);
    FaissxCancelToken* tok = NULL;
    FXT_OK(faissx_cancel_token_new(&tok));

    Seen s;
    seen_init(&s);
    s.wait_for = tok; // the callback waits (mid-train) for the other thread
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, canceller, &s), 0);
    faissx_set_progress_callback(on_progress, &s);
    cr_assert_null(faissx_set_cancel_token(tok));
    FXT_ERR(faiss_Index_train(ix, NT, x), "cancelled; the index is unchanged");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_CANCELED);
    pthread_join(th, NULL);
    cr_assert_lt(s.last_done, s.total);
    cr_assert_not(faiss_Index_is_trained(ix));
    unchanged_since(ix, before, len);

    s.wait_for = NULL;
    // a raised token fails the next call at once...
    FXT_ERR(faiss_Index_train(ix, NT, x), "cancelled");
    // ...until it is reset
    faissx_cancel_token_reset(tok);
    cr_assert_not(faissx_cancel_token_is_cancelled(tok));
    FXT_OK(faiss_Index_train(ix, NT, x));
    cr_assert_eq(faissx_set_cancel_token(NULL), tok);
    clear_settings();
    faissx_cancel_token_free(tok);
    free(before);
    faiss_Index_free(ix);
    free(x);
}

/* A type train cannot undo (HNSW over flat storage has nothing to train,
 * PreTransform's chain can't be copied back): cancellable before it starts
 * only, and progress still ends at 100%. */
Test(progress, train_not_undoable_types) {
    float* x = fxt_clustered(NT, D, 40, 0.1f, 14);
    FaissIndex* ix = make("PCA16,IVF32,Flat");
    FaissxCancelToken* tok = NULL;
    FXT_OK(faissx_cancel_token_new(&tok));
    faissx_cancel_token_cancel(tok);
    faissx_set_cancel_token(tok);
    size_t len;
    uint8_t* before = bytes_of(ix, &len);
    FXT_ERR(faiss_Index_train(ix, NT, x), "cancelled");
    unchanged_since(ix, before, len);
    faissx_set_cancel_token(NULL);

    Seen s;
    seen_init(&s);
    s.cancel_at = 0; // asks at once (the start report): the call never starts
    faissx_set_progress_callback(on_progress, &s);
    FXT_ERR(faiss_Index_train(ix, NT, x), "progress callback");
    unchanged_since(ix, before, len);
    seen_init(&s);
    FXT_OK(faiss_Index_train(ix, NT, x));
    cr_assert_eq(s.last_done, s.total);
    cr_assert(s.monotonic);
    clear_settings();
    faissx_cancel_token_free(tok);
    free(before);
    faiss_Index_free(ix);
    free(x);
}

/* ---- add ---- */

#define NA 20000

static FaissIndex* trained(const char* desc, const float* xt) {
    FaissIndex* ix = make(desc);
    FXT_OK(faiss_Index_train(ix, NT, xt));
    return ix;
}

static void add_reports_and_matches(const char* desc, int with_ids) {
    float* xt = fxt_clustered(NT, D, 40, 0.1f, 21);
    float* xa = fxt_clustered(NA, D, 40, 0.1f, 22);
    idx_t* ids = malloc(sizeof(idx_t) * NA);
    for (int i = 0; i < NA; i++) ids[i] = 1000000 + 7 * i;
    FaissIndex* ref = trained(desc, xt);
    FaissIndex* ix = trained(desc, xt);
    if (with_ids)
        FXT_OK(faiss_Index_add_with_ids(ref, NA, xa, ids));
    else
        FXT_OK(faiss_Index_add(ref, NA, xa));

    Seen s;
    seen_init(&s);
    faissx_set_progress_callback(on_progress, &s);
    if (with_ids)
        FXT_OK(faiss_Index_add_with_ids(ix, NA, xa, ids));
    else
        FXT_OK(faiss_Index_add(ix, NA, xa));
    clear_settings();
    cr_assert_eq(s.op, FAISSX_PROGRESS_ADD);
    cr_assert(s.monotonic);
    cr_assert(!s.bad_eta);
    cr_assert_eq(s.total, NA, "add counts vectors");
    cr_assert_eq(s.last_done, NA);
    cr_assert_gt(s.calls, 3, "%s: several reports during a large add", desc);
    cr_assert_eq(faiss_Index_ntotal(ix), NA);
    same_bytes(ix, ref);
    same_search(ix, ref, xa, 50);
    faiss_Index_free(ref);
    faiss_Index_free(ix);
    free(ids);
    free(xt);
    free(xa);
}

Test(progress, add_flat) { add_reports_and_matches("Flat", 0); }
Test(progress, add_ivfflat) { add_reports_and_matches("IVF64,Flat", 0); }
Test(progress, add_ivfpq) { add_reports_and_matches("IVF32,PQ8x4np", 0); }
Test(progress, add_sq) { add_reports_and_matches("SQ8", 0); }
Test(progress, add_idmap) { add_reports_and_matches("IDMap,Flat", 1); }
Test(progress, add_pq_lsh) {
    add_reports_and_matches("PQ8x4np", 0);
    add_reports_and_matches("LSHrt", 0);
}

static void add_cancel(const char* desc, int with_ids, int direct_map) {
    float* xt = fxt_clustered(NT, D, 40, 0.1f, 31);
    float* xa = fxt_clustered(NA, D, 40, 0.1f, 32);
    idx_t* ids = malloc(sizeof(idx_t) * NA);
    for (int i = 0; i < NA; i++) ids[i] = 5000000 + 3 * i;
    FaissIndex* ix = trained(desc, xt);
    if (direct_map)
        FXT_OK(faiss_IndexIVF_make_direct_map(faiss_IndexIVF_cast(ix), 1));
    // some data before, so "unchanged" covers existing lists
    if (with_ids)
        FXT_OK(faiss_Index_add_with_ids(ix, 1000, xt, ids + NA - 1000));
    else
        FXT_OK(faiss_Index_add(ix, 1000, xt));
    size_t len;
    uint8_t* before = bytes_of(ix, &len);
    float* q = xa + (size_t)100 * D;
    float dq0[50 * 5];
    idx_t iq0[50 * 5];
    FXT_OK(faiss_Index_search(ix, 50, q, 5, dq0, iq0));

    Seen s;
    seen_init(&s);
    s.cancel_at = NA / 2;
    faissx_set_progress_callback(on_progress, &s);
    int rc = with_ids ? faiss_Index_add_with_ids(ix, NA, xa, ids)
                      : faiss_Index_add(ix, NA, xa);
    clear_settings();
    cr_assert_eq(rc, FAISSX_E_CANCELED, "%s: rc %d (%s)", desc, rc,
                 faiss_get_last_error());
    cr_assert(strstr(faiss_get_last_error(), "unchanged"));
    cr_assert_geq(s.last_done, NA / 2, "cancelled mid-add");
    cr_assert_lt(s.last_done, NA, "cancelled mid-add");
    cr_assert_eq(faiss_Index_ntotal(ix), 1000);
    unchanged_since(ix, before, len);
    float dq1[50 * 5];
    idx_t iq1[50 * 5];
    FXT_OK(faiss_Index_search(ix, 50, q, 5, dq1, iq1));
    FXT_SAME(iq0, iq1, sizeof iq0);
    FXT_SAME(dq0, dq1, sizeof dq0);
    if (direct_map) { // the direct map is truncated too
        float r[D];
        FXT_OK(faiss_Index_reconstruct(ix, 999, r));
        cr_assert(faiss_Index_reconstruct(ix, 1000, r) != 0);
    }
    free(before);
    faiss_Index_free(ix);
    free(ids);
    free(xt);
    free(xa);
}

Test(progress, add_cancel_flat) { add_cancel("Flat", 0, 0); }
Test(progress, add_cancel_sq) { add_cancel("SQ8", 0, 0); }
Test(progress, add_cancel_ivfflat) { add_cancel("IVF64,Flat", 0, 0); }
Test(progress, add_cancel_ivfpq) { add_cancel("IVF32,PQ8x4np", 0, 0); }
Test(progress, add_cancel_ivf_direct_map) { add_cancel("IVF64,Flat", 0, 1); }
Test(progress, add_cancel_idmap) { add_cancel("IDMap,Flat", 1, 0); }
Test(progress, add_cancel_idmap_ivf) { add_cancel("IDMap,IVF64,Flat", 1, 0); }
Test(progress, add_cancel_pq_lsh) {
    add_cancel("PQ8x4np", 0, 0);
    add_cancel("LSHrt", 0, 0);
}

/* HNSW cannot remove what it linked: once started, an add runs to the end
 * (documented), still reporting progress. */
Test(progress, add_hnsw_runs_to_end) {
    float* xa = fxt_clustered(4000, D, 40, 0.1f, 41);
    FaissIndex* ix = make("HNSW8");
    Seen s;
    seen_init(&s);
    s.cancel_at = 1;
    faissx_set_progress_callback(on_progress, &s);
    FXT_OK(faiss_Index_add(ix, 4000, xa));
    clear_settings();
    cr_assert_eq(faiss_Index_ntotal(ix), 4000);
    cr_assert_eq(s.last_done, 4000);
    faiss_Index_free(ix);
    free(xa);
}

/* The settings are per thread: another thread's calls neither report to
 * this thread's callback nor see its token. */
typedef struct AddArg {
    FaissIndex* ix;
    const float* x;
    int rc;
} AddArg;

static void* add_elsewhere(void* arg) {
    AddArg* a = arg;
    a->rc = faiss_Index_add(a->ix, 2000, a->x);
    return NULL;
}

Test(progress, settings_are_per_thread) {
    FaissIndex* ix = make("Flat");
    float* xa = fxt_clustered(2000, D, 4, 0.1f, 5);
    FaissxCancelToken* tok = NULL;
    FXT_OK(faissx_cancel_token_new(&tok));
    faissx_cancel_token_cancel(tok);
    faissx_set_cancel_token(tok);
    Seen s;
    seen_init(&s);
    faissx_set_progress_callback(on_progress, &s);
    FXT_ERR(faiss_Index_add(ix, 1, xa), "cancelled");
    cr_assert_eq(s.calls, 1, "the start report, then the call stops");
    AddArg arg = {ix, xa, -1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, add_elsewhere, &arg), 0);
    pthread_join(th, NULL);
    cr_assert_eq(arg.rc, 0, "another thread's add is not cancelled");
    cr_assert_eq(s.calls, 1, "nor reported here");
    cr_assert_eq(faiss_Index_ntotal(ix), 2000);
    clear_settings();
    faissx_cancel_token_free(tok);
    faiss_Index_free(ix);
    free(xa);
}

/* ---- clustering ---- */

Test(progress, kmeans_reports_and_matches) {
    float* x = fxt_clustered(NT, D, 40, 0.1f, 51);
    int k = 40;
    float* c0 = malloc(sizeof(float) * k * D);
    float* c1 = malloc(sizeof(float) * k * D);
    float e0, e1;
    FXT_OK(faiss_kmeans_clustering(D, NT, k, x, c0, &e0));
    Seen s;
    seen_init(&s);
    faissx_set_progress_callback(on_progress, &s);
    FXT_OK(faiss_kmeans_clustering(D, NT, k, x, c1, &e1));
    clear_settings();
    cr_assert_eq(s.op, FAISSX_PROGRESS_CLUSTERING);
    cr_assert(s.monotonic);
    cr_assert_gt(s.total, 1);
    cr_assert_eq(s.last_done, s.total);
    FXT_SAME(c0, c1, sizeof(float) * k * D);
    cr_assert_eq(e0, e1);

    // cancelled: the output buffer is not written
    for (int i = 0; i < k * D; i++) c1[i] = -7.0f;
    seen_init(&s);
    s.cancel_at = 3;
    faissx_set_progress_callback(on_progress, &s);
    e1 = -7.0f;
    FXT_ERR(faiss_kmeans_clustering(D, NT, k, x, c1, &e1), "cancelled");
    clear_settings();
    for (int i = 0; i < k * D; i++) cr_assert_eq(c1[i], -7.0f);
    cr_assert_eq(e1, -7.0f);
    free(c0);
    free(c1);
    free(x);
}

Test(progress, clustering_train_cancel_keeps_state) {
    float* x = fxt_clustered(NT, D, 40, 0.1f, 52);
    FaissClustering* c = NULL;
    FaissClustering* ref = NULL;
    FXT_OK(faiss_Clustering_new(&c, D, 40));
    FXT_OK(faiss_Clustering_new(&ref, D, 40));
    FaissIndex* ix = make("Flat");
    FaissIndex* rix = make("Flat");

    Seen s;
    seen_init(&s);
    s.cancel_at = 4;
    faissx_set_progress_callback(on_progress, &s);
    FXT_ERR(faiss_Clustering_train(c, NT, x, ix), "cancelled");
    size_t sz = 1;
    float* cent = NULL;
    faiss_Clustering_centroids(c, &cent, &sz);
    cr_assert_eq(sz, 0, "centroids unchanged (none)");
    faiss_Clustering_iteration_stats(c, NULL, &sz);
    cr_assert_eq(sz, 0);
    cr_assert_eq(faiss_Index_ntotal(ix), 0);

    // with progress and to the end: the same as without
    seen_init(&s);
    FXT_OK(faiss_Clustering_train(c, NT, x, ix));
    clear_settings();
    cr_assert_eq(s.last_done, s.total);
    cr_assert_eq(s.total, (int64_t)faiss_Clustering_niter(c) * faiss_Clustering_nredo(c));
    FXT_OK(faiss_Clustering_train(ref, NT, x, rix));
    float* rc = NULL;
    size_t rsz = 0;
    faiss_Clustering_centroids(c, &cent, &sz);
    faiss_Clustering_centroids(ref, &rc, &rsz);
    cr_assert_eq(sz, rsz);
    FXT_SAME(cent, rc, sz * sizeof(float));
    same_bytes(ix, rix);
    faiss_Clustering_free(c);
    faiss_Clustering_free(ref);
    faiss_Index_free(ix);
    faiss_Index_free(rix);
    free(x);
}

Test(progress, token_api_null_safe) {
    FXT_ERR(faissx_cancel_token_new(NULL), "NULL");
    faissx_cancel_token_cancel(NULL);
    faissx_cancel_token_reset(NULL);
    faissx_cancel_token_free(NULL);
    cr_assert_eq(faissx_cancel_token_is_cancelled(NULL), 0);
}
