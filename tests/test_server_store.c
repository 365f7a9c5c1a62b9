/* test_server_store.c -- faissx-server with --data-dir: named indexes in
 * the durable store (one store per tenant), driven through the ordinary C
 * API as a remote client. Restart after SIGTERM (checkpoint) and after
 * kill -9 (log replay) restores bit-identical indexes; kill -9 at random
 * moments under load loses no acknowledged write; tenants are separate on
 * disk; the data directory is locked and checked at start. */
#include "common.h"
#include "server_fixture.h"
#include "store_vec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

static fxt_server srv;
static char data_dir[512];

/* Starts a server on data_dir with extra flags (NULL-terminated, may be
 * NULL) and points the client at it. */
static void start_on_data(const char* const* extra) {
    const char* args[24];
    int n = 0;
    args[n++] = "--data-dir";
    args[n++] = data_dir;
    for (int i = 0; extra && extra[i] && n < 22; i++) args[n++] = extra[i];
    args[n] = NULL;
    fxt_server_start(&srv, args);
    FXT_OK(faissx_configure(srv.url, NULL, 20000));
}

static void fresh_data_dir(const char* name) {
    snprintf(data_dir, sizeof data_dir, "%s", fxt_tmp_path(name));
}

static void stop_server(void) {
    faissx_configure(NULL, NULL, 0);
    if (srv.pid > 0) fxt_server_stop(&srv);
}

static int exists(const char* fmt, const char* a, const char* b) {
    char p[1024];
    snprintf(p, sizeof p, fmt, a, b);
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---- restart restores everything ---------------------------------------- */

enum { D = 16, NB = 1500, NQ = 12, K = 5 };

struct answers {
    float D[NQ * K];
    idx_t I[NQ * K];
    idx_t ntotal;
};

static void search(FaissIndex* ix, const float* xq, struct answers* a) {
    FXT_OK(faiss_Index_search(ix, NQ, xq, K, a->D, a->I));
    a->ntotal = faiss_Index_ntotal(ix);
}

static FaissIndex* open_named(const char* name) {
    FaissIndex* ix = NULL;
    FXT_OK(faissx_index_open(&ix, name));
    return ix;
}

static const char* const kNames[] = {"flat", "idmap", "ivf", "up"};
enum { NNAMES = 4 };

static void search_all(const float* xq, struct answers* out) {
    for (int i = 0; i < NNAMES; i++) {
        FaissIndex* ix = open_named(kNames[i]);
        search(ix, xq, &out[i]);
        faiss_Index_free(ix);
    }
}

static void expect_same(const struct answers* a, const struct answers* b,
                        const char* when) {
    for (int i = 0; i < NNAMES; i++) {
        cr_assert_eq(a[i].ntotal, b[i].ntotal, "%s: %s: ntotal %lld vs %lld",
                     when, kNames[i], (long long)a[i].ntotal,
                     (long long)b[i].ntotal);
        cr_assert(memcmp(a[i].I, b[i].I, sizeof a[i].I) == 0,
                  "%s: %s: labels differ", when, kNames[i]);
        cr_assert(memcmp(a[i].D, b[i].D, sizeof a[i].D) == 0,
                  "%s: %s: distances differ", when, kNames[i]);
    }
}

static void expect_names(const char* const* want, size_t nwant) {
    char** names = NULL;
    size_t n = 0;
    FXT_OK(faissx_index_list(&names, &n));
    cr_assert_eq(n, nwant, "%zu named indexes, expected %zu", n, nwant);
    for (size_t i = 0; i < n; i++) cr_assert_str_eq(names[i], want[i]);
    faissx_index_list_free(names, n);
}

Test(server_store, restart_restores_named_indexes_bit_identical,
     .fini = stop_server) {
    fresh_data_dir("restart");
    start_on_data(NULL);
    /* The start-up report follows the listener, which is what the fixture
     * waits for: the notice may still be on its way (seen under ASan with
     * three CPU burners: an empty log). */
    int noticed = 0;
    for (int i = 0; i < 6000 && !noticed; i++) { /* up to a minute */
        noticed = strstr(fxt_server_log(&srv),
                         "durable: named indexes are kept in") != NULL;
        if (!noticed) usleep(10000);
    }
    cr_assert(noticed, "no durable notice at start:\n%s", fxt_server_log(&srv));
    float* xb = fxt_clustered(NB, D, 20, 0.05f, 1);
    float* xq = fxt_clustered(NQ, D, 20, 0.05f, 2);
    FaissIndex* ix;

    FXT_OK(faissx_index_create(&ix, "flat", D, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(ix, NB / 2, xb));
    FXT_OK(faiss_Index_add(ix, NB / 2, xb + (size_t)(NB / 2) * D));
    faiss_Index_free(ix);

    FXT_OK(faissx_index_create(&ix, "idmap", D, "IDMap,Flat", METRIC_INNER_PRODUCT));
    idx_t* ids = malloc(sizeof(idx_t) * NB);
    for (int i = 0; i < NB; i++) ids[i] = 1000 + 3 * i;
    FXT_OK(faiss_Index_add_with_ids(ix, NB, xb, ids));
    FaissIDSelectorRange* sel = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&sel, 1000, 1300));
    size_t removed = 0;
    FXT_OK(faiss_Index_remove_ids(ix, (FaissIDSelector*)sel, &removed));
    cr_assert_eq(removed, 100);
    faiss_IDSelector_free((FaissIDSelector*)sel);
    faiss_Index_free(ix);

    FXT_OK(faissx_index_create(&ix, "ivf", D, "IVF16,Flat", METRIC_L2));
    FXT_OK(faiss_Index_train(ix, NB, xb));
    FXT_OK(faiss_Index_add(ix, NB, xb));
    /* A parameter change is logged too: the typed setter on the remote
     * handle travels as SET_PARAM to the stored index. */
    faiss_IndexIVF_set_nprobe((FaissIndexIVF*)ix, 5);
    cr_assert_eq(faiss_IndexIVF_nprobe((FaissIndexIVF*)ix), 5, "%s",
                 faiss_get_last_error());
    faiss_Index_free(ix);

    /* Upload with a name: into the store. */
    FaissIndex* loc = NULL;
    FXT_OK(faissx_configure(NULL, NULL, 0));
    FXT_OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(loc, 200, xb));
    FXT_OK(faissx_configure(srv.url, NULL, 20000));
    FXT_OK(faissx_index_upload(loc, "up", &ix));
    faiss_Index_free(ix);
    faiss_Index_free(loc);

    /* Unnamed indexes stay in memory: gone after a restart. */
    FaissIndex* anon = NULL;
    FXT_OK(faiss_index_factory(&anon, D, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(anon, 10, xb));
    /* A clone of a stored index is an unnamed in-memory index. */
    FaissIndex* clone = NULL;
    ix = open_named("ivf");
    FXT_OK(faiss_clone_index(ix, &clone));
    cr_assert_eq(faiss_Index_ntotal(clone), NB);
    faiss_Index_free(ix);

    struct answers before[NNAMES], after[NNAMES];
    search_all(xq, before);
    struct answers cl;
    search(clone, xq, &cl);
    FXT_SAME(cl.I, before[2].I, sizeof cl.I);
    FXT_SAME(cl.D, before[2].D, sizeof cl.D);
    faiss_Index_free(clone);
    faiss_Index_free(anon);

    /* 1. SIGTERM: drain, checkpoint, restart from snapshots. */
    faissx_configure(NULL, NULL, 0);
    fxt_server_stop(&srv);
    cr_assert(strstr(fxt_server_log(&srv), "checkpointed 4 stored index(es)"),
              "no checkpoint at stop:\n%s", fxt_server_log(&srv));
    start_on_data(NULL);
    cr_assert(strstr(fxt_server_log(&srv), "; 4 restored"), "%s",
              fxt_server_log(&srv));
    expect_names(kNames, NNAMES);
    search_all(xq, after);
    expect_same(before, after, "after SIGTERM + restart");
    ix = open_named("ivf");
    cr_assert_eq(faiss_IndexIVF_nprobe((FaissIndexIVF*)ix), 5,
                 "nprobe was not restored");
    faiss_Index_free(ix);
    cr_assert_eq(faiss_Index_ntotal(ix = open_named("idmap")), NB - 100);
    faiss_Index_free(ix);

    /* 2. More writes, then kill -9: the logs alone restore them. */
    ix = open_named("flat");
    FXT_OK(faiss_Index_add(ix, 100, xb));
    FXT_OK(faiss_Index_reset(ix));
    FXT_OK(faiss_Index_add(ix, 300, xb + 100 * D));
    faiss_Index_free(ix);
    ix = open_named("ivf");
    FXT_OK(faiss_Index_add(ix, 100, xb));
    faiss_IndexIVF_set_nprobe((FaissIndexIVF*)ix, 3);
    faiss_Index_free(ix);
    search_all(xq, before);
    cr_assert_eq(before[0].ntotal, 300);
    faissx_configure(NULL, NULL, 0);
    fxt_server_kill(&srv);
    start_on_data(NULL);
    search_all(xq, after);
    expect_same(before, after, "after kill -9 + restart");
    ix = open_named("ivf");
    cr_assert_eq(faiss_IndexIVF_nprobe((FaissIndexIVF*)ix), 3);
    faiss_Index_free(ix);

    /* 3. DROP is durable too. */
    FXT_OK(faissx_index_drop("up"));
    faissx_configure(NULL, NULL, 0);
    fxt_server_kill(&srv);
    start_on_data(NULL);
    const char* const left[] = {"flat", "idmap", "ivf"};
    expect_names(left, 3);
    FXT_ERR(faissx_index_open(&ix, "up"), "no index named");
    cr_assert(!exists("%s/tenants/default/%s", data_dir, "up"));
    free(ids);
    free(xb);
    free(xq);
}

/* An index created before a restart and trained after it trains exactly
 * like one that never left memory (the snapshot must keep what faiss's
 * file format forgets, e.g. IVF's k-means settings). */
Test(server_store, train_after_restart_equals_local, .fini = stop_server) {
    fresh_data_dir("train");
    start_on_data(NULL);
    const int d = 12, nt = 1200, nq = 10, k = 4;
    float* xt = fxt_clustered(nt, d, 16, 0.05f, 5);
    float* xq = fxt_clustered(nq, d, 16, 0.05f, 6);
    const char* const facs[] = {"IVF8,Flat", "IVF8,SQ8", "PCA8,IVF4,Flat"};
    const FaissMetricType mets[] = {METRIC_L2, METRIC_INNER_PRODUCT, METRIC_L2};
    char name[16];
    for (int f = 0; f < 3; f++) {
        FaissIndex* ix = NULL;
        snprintf(name, sizeof name, "t%d", f);
        FXT_OK(faissx_index_create(&ix, name, d, facs[f], mets[f]));
        faiss_Index_free(ix);
    }
    faissx_configure(NULL, NULL, 0);
    fxt_server_kill(&srv);
    start_on_data(NULL);
    for (int f = 0; f < 3; f++) {
        FaissIndex *rem = NULL, *loc = NULL;
        snprintf(name, sizeof name, "t%d", f);
        rem = open_named(name);
        FXT_OK(faiss_Index_train(rem, nt, xt));
        FXT_OK(faiss_Index_add(rem, nt, xt));
        FXT_OK(faissx_configure(NULL, NULL, 0));
        FXT_OK(faiss_index_factory(&loc, d, facs[f], mets[f]));
        FXT_OK(faiss_Index_train(loc, nt, xt));
        FXT_OK(faiss_Index_add(loc, nt, xt));
        FXT_OK(faissx_configure(srv.url, NULL, 20000));
        float D1[10 * 4], D2[10 * 4];
        idx_t I1[10 * 4], I2[10 * 4];
        FXT_OK(faiss_Index_search(rem, nq, xq, k, D1, I1));
        FXT_OK(faiss_Index_search(loc, nq, xq, k, D2, I2));
        cr_assert(memcmp(I1, I2, sizeof I1) == 0, "%s: labels differ", facs[f]);
        cr_assert(memcmp(D1, D2, sizeof D1) == 0, "%s: distances differ", facs[f]);
        faiss_Index_free(rem);
        faiss_Index_free(loc);
    }
    free(xt);
    free(xq);
}

/* A named binary index lives in the store like a float one: every
 * acknowledged change survives kill -9, searches after the restart equal
 * a local index built with the same calls, and drop removes it for good. */
Test(server_store, binary_named_index_survives_kill9, .fini = stop_server) {
    fresh_data_dir("bin");
    start_on_data(NULL);
    enum { BD = 64, CS = 8, BT = 600, BN = 400, BQ = 10, BK = 5 };
    unsigned seed = 11;
    uint8_t* xt = malloc(BT * CS);
    uint8_t* xq = malloc(BQ * CS);
    for (int i = 0; i < BT * CS; i++) xt[i] = (uint8_t)(rand_r(&seed) >> 5);
    for (int i = 0; i < BQ * CS; i++) xq[i] = (uint8_t)(rand_r(&seed) >> 5);
    idx_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = 7000 + i;
    FaissIndexBinary* rem = NULL;
    FXT_OK(faissx_index_binary_create(&rem, "bivf", BD, "BIVF8"));
    FaissIndexBinary* flat = NULL;
    FXT_OK(faissx_index_binary_create(&flat, "bflat", BD, "BFlat"));
    cr_assert(exists("%s/tenants/default/%s/MANIFEST", data_dir, "bivf"));
    // The same calls on the server and (below) locally.
    FXT_OK(faiss_IndexBinary_train(rem, BT, xt));
    FXT_OK(faiss_IndexBinary_add(rem, BN - 100, xt));
    FXT_OK(faiss_IndexBinary_add_with_ids(rem, 100, xt + (BN - 100) * CS, ids));
    FaissIDSelectorRange* sel = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&sel, 20, 60));
    size_t removed = 0;
    FXT_OK(faiss_IndexBinary_remove_ids(rem, (FaissIDSelector*)sel, &removed));
    cr_assert_eq(removed, 40);
    FaissIndexBinaryIVF* civf = faiss_IndexBinaryIVF_cast(rem);
    cr_assert(civf != NULL, "%s", faiss_get_last_error());
    faiss_IndexBinaryIVF_set_nprobe(civf, 3); // logged: survives the kill
    cr_assert_eq(faiss_IndexBinaryIVF_nprobe(civf), 3);
    FXT_OK(faiss_IndexBinary_add(flat, BN, xt));
    FXT_OK(faiss_IndexBinary_reset(flat));
    FXT_OK(faiss_IndexBinary_add(flat, 50, xt));
    faiss_IndexBinary_free(rem);
    faiss_IndexBinary_free(flat);
    faissx_configure(NULL, NULL, 0);
    fxt_server_kill(&srv);
    start_on_data(NULL);

    FaissIndexBinary *loc = NULL, *locf = NULL;
    FXT_OK(faissx_index_binary_open(&rem, "bivf"));
    FXT_OK(faissx_index_binary_open(&flat, "bflat"));
    cr_assert(faiss_IndexBinary_is_trained(rem));
    FXT_OK(faissx_configure(NULL, NULL, 0));
    FXT_OK(faiss_index_binary_factory(&loc, BD, "BIVF8"));
    FXT_OK(faiss_IndexBinary_train(loc, BT, xt));
    FXT_OK(faiss_IndexBinary_add(loc, BN - 100, xt));
    FXT_OK(faiss_IndexBinary_add_with_ids(loc, 100, xt + (BN - 100) * CS, ids));
    FXT_OK(faiss_IndexBinary_remove_ids(loc, (FaissIDSelector*)sel, &removed));
    faiss_IndexBinaryIVF_set_nprobe(faiss_IndexBinaryIVF_cast(loc), 3);
    FXT_OK(faiss_index_binary_factory(&locf, BD, "BFlat"));
    FXT_OK(faiss_IndexBinary_add(locf, 50, xt));
    FXT_OK(faissx_configure(srv.url, NULL, 20000));
    cr_assert_eq(faiss_IndexBinary_ntotal(rem), faiss_IndexBinary_ntotal(loc));
    cr_assert_eq(faiss_IndexBinary_ntotal(flat), 50);
    int32_t D1[BQ * BK], D2[BQ * BK];
    idx_t I1[BQ * BK], I2[BQ * BK];
    FXT_OK(faiss_IndexBinary_search(rem, BQ, xq, BK, D1, I1));
    FXT_OK(faiss_IndexBinary_search(loc, BQ, xq, BK, D2, I2));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    FXT_OK(faiss_IndexBinary_search(flat, BQ, xq, BK, D1, I1));
    FXT_OK(faiss_IndexBinary_search(locf, BQ, xq, BK, D2, I2));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    // The stored index is served with its own class and parameters.
    FaissIndexBinaryIVF* rivf = faiss_IndexBinaryIVF_cast(rem);
    cr_assert(rivf != NULL, "%s", faiss_get_last_error());
    cr_assert_eq(faiss_IndexBinaryIVF_nprobe(rivf), 3);
    // Errors: a float open of a binary name, a binary create of a taken
    // name; neither changes anything.
    FaissIndex* f = NULL;
    FXT_ERR(faissx_index_open(&f, "bivf"), "binary");
    FaissIndexBinary* b2 = NULL;
    FXT_ERR(faissx_index_binary_create(&b2, "bflat", BD, "BFlat"), "exists");
    FXT_ERR(faissx_index_binary_create(&b2, "bad", 12, "BFlat"), "multiple of 8");
    cr_assert(!exists("%s/tenants/default/%s", data_dir, "bad"));
    // Drop removes it from disk; a restart does not bring it back.
    FXT_OK(faissx_index_drop("bflat"));
    cr_assert(!exists("%s/tenants/default/%s", data_dir, "bflat"));
    faissx_configure(NULL, NULL, 0);
    fxt_server_kill(&srv);
    start_on_data(NULL);
    const char* const want[] = {"bivf"};
    expect_names(want, 1);
    faiss_IDSelector_free((FaissIDSelector*)sel);
    faiss_IndexBinary_free(rem);
    faiss_IndexBinary_free(flat);
    faiss_IndexBinary_free(loc);
    faiss_IndexBinary_free(locf);
    free(xt);
    free(xq);
}

/* What cannot be logged is refused on a stored index, with a reason; the
 * same calls work on an unnamed one. */
Test(server_store, unloggable_changes_are_refused, .fini = stop_server) {
    fresh_data_dir("refuse");
    start_on_data(NULL);
    const int d = 8;
    float* xb = fxt_uniform(300, d, 3);
    FaissIndex *st = NULL, *mem = NULL, *wrapped = NULL;
    FXT_OK(faissx_index_create(&st, "q", d, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(st, 100, xb));
    FXT_OK(faiss_index_factory(&mem, d, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(mem, 100, xb));
    /* WRAP: an IVF over a stored quantizer would change it behind its log. */
    FaissIndexIVFFlat* ivf = NULL;
    FXT_ERR(faiss_IndexIVFFlat_new_with(&ivf, st, d, 4), "durable store");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_UNSUPPORTED);
    /* MERGE in either direction (IVF: the C API's merge_from). */
    FaissIndex *sti = NULL, *memi = NULL;
    FXT_OK(faissx_index_create(&sti, "qi", d, "IVF4,Flat", METRIC_L2));
    FXT_OK(faiss_index_factory(&memi, d, "IVF4,Flat", METRIC_L2));
    FXT_OK(faiss_Index_train(sti, 300, xb));
    FXT_OK(faiss_Index_train(memi, 300, xb));
    FXT_OK(faiss_Index_add(sti, 50, xb));
    FXT_OK(faiss_Index_add(memi, 50, xb));
    FXT_ERR(faiss_IndexIVF_merge_from((FaissIndexIVF*)memi, (FaissIndexIVF*)sti, 0),
            "durable store");
    FXT_ERR(faiss_IndexIVF_merge_from((FaissIndexIVF*)sti, (FaissIndexIVF*)memi, 0),
            "durable store");
    cr_assert_eq(faiss_Index_ntotal(sti), 50);
    cr_assert_eq(faiss_Index_ntotal(memi), 50);
    /* IVF-specific writes too; reads work on the index behind the store. */
    FXT_ERR(faiss_IndexIVF_make_direct_map((FaissIndexIVF*)sti, 1),
            "durable store");
    cr_assert(faiss_IndexIVF_imbalance_factor((FaissIndexIVF*)sti) >= 1.0,
              "%s", faiss_get_last_error());
    faiss_Index_free(sti);
    faiss_Index_free(memi);
    /* remove_ids with a selector the log cannot express. */
    FaissIDSelectorRange* r = NULL;
    FaissIDSelectorNot* not = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&r, 0, 10));
    FXT_OK(faiss_IDSelectorNot_new(&not, (FaissIDSelector*)r));
    size_t nrem = 0;
    FXT_ERR(faiss_Index_remove_ids(st, (FaissIDSelector*)not, &nrem),
            "cannot be logged");
    cr_assert_eq(faiss_Index_ntotal(st), 100);
    faiss_IDSelector_free((FaissIDSelector*)not);
    faiss_IDSelector_free((FaissIDSelector*)r);
    /* Reconstructing a key out of range fails instead of reading past the
     * stored vectors. */
    float v[8];
    FXT_ERR(faiss_Index_reconstruct(st, 100, v), "out of range");
    FXT_OK(faiss_Index_reconstruct(st, 99, v));
    cr_assert(memcmp(v, xb + 99 * d, sizeof v) == 0);
    /* A stored pre-transform's chain and inner index: prepending would
     * change it behind its log, a handle on its inner index too. */
    FaissIndex* spt = NULL;
    FXT_OK(faissx_index_create(&spt, "pt", d, "PCA4,Flat", METRIC_L2));
    FaissRandomRotationMatrix* rr = NULL;
    FXT_OK(faiss_RandomRotationMatrix_new_with(&rr, 16, d));
    FXT_ERR(faiss_IndexPreTransform_prepend_transform(
                    (FaissIndexPreTransform*)spt, (FaissVectorTransform*)rr),
            "durable store");
    cr_assert_eq(faiss_Index_d(spt), d);
    cr_assert_null(faiss_IndexPreTransform_index((FaissIndexPreTransform*)spt));
    cr_assert(strstr(faiss_get_last_error(), "durable store"), "%s",
              faiss_get_last_error());
    faiss_RandomRotationMatrix_free(rr);
    faiss_Index_free(spt);
    /* Wrapping the unnamed index still works. */
    FXT_OK(faiss_index_factory(&wrapped, d, "Flat", METRIC_L2));
    FXT_OK(faiss_IndexIVFFlat_new_with(&ivf, wrapped, d, 4));
    faiss_Index_free((FaissIndex*)ivf);
    faiss_Index_free(wrapped);
    faiss_Index_free(st);
    faiss_Index_free(mem);
    free(xb);
}

/* ---- tenants ------------------------------------------------------------- */

Test(server_store, tenants_are_separate_on_disk, .fini = stop_server) {
    fresh_data_dir("tenants");
    const char* const keys[] = {"--auth-keys", "ka:alpha,kb:beta", NULL};
    start_on_data(keys);
    float* xb = fxt_uniform(20, 8, 4);
    FaissIndex* ix = NULL;
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    FXT_OK(faissx_index_create(&ix, "same", 4, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(ix, 3, xb));
    faiss_Index_free(ix);
    FXT_OK(faissx_configure(srv.url, "kb", 20000));
    FXT_OK(faissx_index_create(&ix, "same", 8, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(ix, 5, xb));
    faiss_Index_free(ix);
    FXT_OK(faissx_index_create(&ix, "only-b", 8, "Flat", METRIC_L2));
    faiss_Index_free(ix);
    cr_assert(exists("%s/tenants/%s/same/MANIFEST", data_dir, "alpha"));
    cr_assert(exists("%s/tenants/%s/same/MANIFEST", data_dir, "beta"));
    cr_assert(!exists("%s/tenants/%s/only-b", data_dir, "alpha"));

    faissx_configure(NULL, NULL, 0);
    fxt_server_kill(&srv);
    start_on_data(keys);
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    ix = open_named("same");
    cr_assert_eq(faiss_Index_d(ix), 4);
    cr_assert_eq(faiss_Index_ntotal(ix), 3);
    faiss_Index_free(ix);
    FXT_ERR(faissx_index_open(&ix, "only-b"), "no index named");
    FXT_ERR(faissx_index_drop("only-b"), "no index named");
    FXT_OK(faissx_configure(srv.url, "kb", 20000));
    ix = open_named("same");
    cr_assert_eq(faiss_Index_d(ix), 8);
    cr_assert_eq(faiss_Index_ntotal(ix), 5);
    faiss_Index_free(ix);
    /* One tenant's drop leaves the other's index of the same name. */
    FXT_OK(faissx_index_drop("same"));
    cr_assert(!exists("%s/tenants/%s/same", data_dir, "beta"));
    cr_assert(exists("%s/tenants/%s/same/MANIFEST", data_dir, "alpha"));

    /* A tenant without a key any more: its data stays on disk, unserved,
     * and the server says so. */
    faissx_configure(NULL, NULL, 0);
    fxt_server_stop(&srv);
    const char* const only_a[] = {"--auth-keys", "ka:alpha", NULL};
    start_on_data(only_a);
    cr_assert(strstr(fxt_server_log(&srv),
                     "tenant 'beta' has data but no API key"),
              "%s", fxt_server_log(&srv));
    cr_assert(exists("%s/tenants/%s/only-b/MANIFEST", data_dir, "beta"));
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    ix = open_named("same");
    cr_assert_eq(faiss_Index_ntotal(ix), 3);
    faiss_Index_free(ix);
    free(xb);
}

/* ---- start-up checks ------------------------------------------------------ */

/* Runs the server with argv[1..] (NULL-terminated) expecting it to refuse
 * to start: returns its exit status, its stderr in out. With as_nobody
 * and root privileges, the server runs as uid/gid 65534. */
static int run_failing(const char* const* args, int as_nobody, char* out,
                       size_t cap) {
    const char* bin = getenv("FAISSX_SERVER_BIN");
    cr_assert(bin && *bin);
    const char* argv[16];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = "tcp://127.0.0.1:0";
    for (int i = 0; args[i] && n < 15; i++) argv[n++] = args[i];
    argv[n] = NULL;
    char log[600];
    snprintf(log, sizeof log, "%s", fxt_tmp_path("failing.log"));
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        unsetenv("FAISSX_SERVER");
        if (as_nobody && geteuid() == 0 &&
            (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(126);
        execv(bin, (char* const*)argv);
        _exit(127);
    }
    int st = 0;
    /* Up to a minute for it to fail (ASan's exit on a loaded machine is
     * slow); one still running then has started. */
    for (int i = 0; i < 6000 && waitpid(pid, &st, WNOHANG) == 0; i++)
        usleep(10000);
    if (kill(pid, 0) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        cr_assert_fail("the server started although it should not have");
    }
    FILE* f = fopen(log, "r");
    size_t k = f ? fread(out, 1, cap - 1, f) : 0;
    out[k] = '\0';
    if (f) fclose(f);
    cr_assert(WIFEXITED(st), "server died by a signal");
    return WEXITSTATUS(st);
}

Test(server_store, second_server_on_the_same_data_dir_fails,
     .fini = stop_server) {
    fresh_data_dir("locked");
    start_on_data(NULL);
    char out[4096];
    const char* const args[] = {"--data-dir", data_dir, NULL};
    cr_assert_eq(run_failing(args, 0, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "is in use by another faissx-server (pid "), "%s", out);
    /* The first server is unharmed and still owns its data. */
    FaissIndex* ix = NULL;
    FXT_OK(faissx_index_create(&ix, "still", 4, "Flat", METRIC_L2));
    faiss_Index_free(ix);
    /* Once it stops, the directory is free again. */
    faissx_configure(NULL, NULL, 0);
    fxt_server_stop(&srv);
    start_on_data(NULL);
    ix = open_named("still");
    faiss_Index_free(ix);
}

Test(server_store, unusable_data_dir_is_a_clear_error_at_start) {
    char out[4096], path[700], file[600];
    /* A regular file. */
    snprintf(file, sizeof file, "%s", fxt_tmp_path("a-file"));
    FILE* f = fopen(file, "w");
    cr_assert(f);
    fclose(f);
    const char* const a1[] = {"--data-dir", file, NULL};
    cr_assert_eq(run_failing(a1, 0, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "is not a directory"), "%s", out);
    /* Below a regular file. */
    snprintf(path, sizeof path, "%s/data", file);
    const char* const a2[] = {"--data-dir", path, NULL};
    cr_assert_eq(run_failing(a2, 0, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "cannot create data directory"), "%s", out);
    /* Not writable by the server's user (as root the server runs as
     * nobody for this, since root may write anywhere). */
    snprintf(path, sizeof path, "%s", fxt_tmp_path("readonly"));
    cr_assert(mkdir(path, 0555) == 0 || errno == EEXIST);
    cr_assert(chmod(path, 0555) == 0);
    char parent[700];
    snprintf(parent, sizeof parent, "%s", path);
    *strrchr(parent, '/') = '\0';
    cr_assert(chmod(parent, 0755) == 0); /* nobody may reach it */
    const char* const a3[] = {"--data-dir", path, NULL};
    cr_assert_eq(run_failing(a3, 1, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "is not writable"), "%s", out);
    /* Flags: a bad policy is a usage error (2). */
    const char* const a4[] = {"--data-dir", path, "--sync", "sometimes", NULL};
    cr_assert_eq(run_failing(a4, 0, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "expected always, interval or none"), "%s", out);
}

/* ---- damaged files ------------------------------------------------------ */

/* The log file of index `name` of tenant "default", from its manifest. */
static void log_of(const char* name, char* out, size_t cap) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tenants/default/%s/MANIFEST", data_dir, name);
    FILE* f = fopen(p, "r");
    cr_assert(f, "no manifest %s", p);
    char line[256], file[128] = "";
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "log %127s", file) == 1) break;
    fclose(f);
    cr_assert(file[0], "manifest names no log");
    snprintf(out, cap, "%s/tenants/default/%s/%s", data_dir, name, file);
}

static int run_check(const char* opt, const char* dir, char* out, size_t cap) {
    const char* bin = getenv("FAISSX_CHECK_BIN");
    cr_assert(bin && *bin, "FAISSX_CHECK_BIN is not set");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s '%s' 2>&1", bin, opt, dir);
    FILE* p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* A torn log end is cut at start (and logged); damage in the middle of a
 * log stops the start with a message naming the index and faissx-check,
 * whose --repair lets the next start go through. */
Test(server_store, damaged_index_stops_the_start_until_repaired,
     .fini = stop_server) {
    fresh_data_dir("damaged");
    start_on_data(NULL);
    float* xb = fxt_uniform(30, 4, 9);
    FaissIndex* ix = NULL;
    FXT_OK(faissx_index_create(&ix, "y", 4, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(ix, 5, xb));
    faiss_Index_free(ix);
    FXT_OK(faissx_index_create(&ix, "x", 4, "Flat", METRIC_L2));
    for (int b = 0; b < 3; b++) FXT_OK(faiss_Index_add(ix, 10, xb + b * 10 * 4));
    faiss_Index_free(ix);
    faissx_configure(NULL, NULL, 0);
    fxt_server_kill(&srv); /* no checkpoint: the records stay in the log */

    char wal[1200], out[8192];
    log_of("x", wal, sizeof wal);
    FILE* f = fopen(wal, "ab");
    cr_assert(f);
    fwrite("\x10\0\0\0garbage!", 1, 12, f); /* a record cut short */
    fclose(f);
    start_on_data(NULL);
    cr_assert(strstr(fxt_server_log(&srv), "torn tail of 12 bytes cut"),
              "%s", fxt_server_log(&srv));
    ix = open_named("x");
    cr_assert_eq(faiss_Index_ntotal(ix), 30);
    faiss_Index_free(ix);
    faissx_configure(NULL, NULL, 0);
    fxt_server_kill(&srv);

    /* Flip a byte of the first record's payload: 2 valid records follow. */
    f = fopen(wal, "r+b");
    cr_assert(f);
    fseek(f, 32 + 24 + 20, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 32 + 24 + 20, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    const char* const args[] = {"--data-dir", data_dir, NULL};
    cr_assert_eq(run_failing(args, 0, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "cannot restore index 'x' of tenant 'default'"), "%s", out);
    cr_assert(strstr(out, "faissx-check"), "%s", out);

    char tdir[700];
    snprintf(tdir, sizeof tdir, "%s/tenants/default", data_dir);
    cr_assert_eq(run_check("", tdir, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "x: DAMAGED"), "%s", out);
    cr_assert(strstr(out, "y: ok, 5 vectors"), "%s", out);
    cr_assert_eq(run_check("--repair", tdir, out, sizeof out), 1, "%s", out);
    start_on_data(NULL);
    ix = open_named("x"); /* cut at the bad record: its batches are lost */
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    faiss_Index_free(ix);
    ix = open_named("y");
    cr_assert_eq(faiss_Index_ntotal(ix), 5);
    faiss_Index_free(ix);
    free(xb);
}

/* ---- kill -9 under load ----------------------------------------------------- */

struct batch {
    long long first, last;
    int acked;
};

static int rounds(void) {
    const char* e = getenv("FAISSX_SOAK_ROUNDS");
    return e && atoi(e) > 0 ? atoi(e) : 10;
}

/* Spawns a server_store_helper adding ids [first, first + count). */
static pid_t spawn_adder(long long first, long long count, unsigned seed,
                         int* out_fd) {
    const char* bin = getenv("FAISSX_SERVER_STORE_HELPER");
    cr_assert(bin && *bin, "FAISSX_SERVER_STORE_HELPER is not set");
    char a[32], c[32], s[32];
    snprintf(a, sizeof a, "%lld", first);
    snprintf(c, sizeof c, "%lld", count);
    snprintf(s, sizeof s, "%u", seed);
    char* argv[] = {"server_store_helper", "add", srv.url, "crash", a, c, s, NULL};
    int p[2];
    cr_assert(pipe(p) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    pid_t pid;
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot run %s: %s", bin, strerror(rc));
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

/* A helper's output so far: its "begin"/"ack" lines. */
typedef struct {
    int fd;
    char* buf;
    size_t len, cap;
    int eof;
} helper_out;

/* Appends what the helper has written to o->buf: what is there now, or
 * (all) everything up to its end. */
static void out_read(helper_out* o, int all) {
    while (!o->eof) {
        if (!all) {
            struct pollfd p = {o->fd, POLLIN, 0};
            if (poll(&p, 1, 0) <= 0) return;
        }
        if (o->cap - o->len < 4096) {
            o->cap = o->cap ? o->cap * 2 : 65536;
            o->buf = realloc(o->buf, o->cap);
            cr_assert(o->buf);
        }
        ssize_t n = read(o->fd, o->buf + o->len, o->cap - o->len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            o->eof = 1;
            return;
        }
        o->len += (size_t)n;
        o->buf[o->len] = '\0';
    }
}

static int out_has_ack(const helper_out* o) {
    return o->len && (!strncmp(o->buf, "ack ", 4) || strstr(o->buf, "\nack "));
}

/* Until one of the n helpers has had a batch acknowledged (a minute at
 * most: by then the server is not answering). */
static void wait_for_ack(helper_out* out, int n, int round) {
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int alive = 0;
        for (int h = 0; h < n; h++) {
            out_read(&out[h], 0);
            if (out_has_ack(&out[h])) return;
            alive |= !out[h].eof;
        }
        cr_assert(alive, "round %d: the helpers ended before any batch was "
                  "acknowledged", round);
        clock_gettime(CLOCK_MONOTONIC, &now);
        cr_assert(now.tv_sec - t0.tv_sec < 60, "round %d: no batch "
                  "acknowledged within 60 s of starting the helpers", round);
        usleep(5000);
    }
}

/* Reads a helper's "begin"/"ack" lines into bs (appending); returns the
 * new count. */
static int parse_batches(const helper_out* o, struct batch* bs, int nb,
                         int cap) {
    const char* line = o->buf;
    const char* end = o->buf + o->len;
    while (line && line < end) {
        const char* nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) break; /* cut mid-line */
        long long a, b;
        if (sscanf(line, "begin %lld %lld", &a, &b) == 2) {
            cr_assert(nb < cap);
            bs[nb++] = (struct batch){a, b, 0};
        } else if (sscanf(line, "ack %lld %lld", &a, &b) == 2) {
            int found = 0;
            for (int i = nb - 1; i >= 0 && !found; i--)
                if (bs[i].first == a) bs[i].acked = found = 1;
            cr_assert(found, "ack without begin: %.*s", (int)(nl - line), line);
        }
        line = nl + 1;
    }
    return nb;
}

/* How many of ids [first, first + n) are stored exactly once at distance
 * 0 (16 queries per search: below faiss's BLAS threshold flat search is
 * exact); fails on a duplicate. */
static int count_present(FaissIndex* ix, long long first, int n) {
    enum { Q = 16 };
    float x[Q * STORE_D], Dd[Q * 2];
    idx_t I[Q * 2];
    int found = 0;
    for (int c0 = 0; c0 < n; c0 += Q) {
        int m = n - c0 < Q ? n - c0 : Q;
        for (int i = 0; i < m; i++) store_vec(first + c0 + i, x + i * STORE_D);
        FXT_OK(faiss_Index_search(ix, m, x, 2, Dd, I));
        for (int i = 0; i < m; i++) {
            long long id = first + c0 + i;
            if (I[2 * i] == id && Dd[2 * i] == 0.0f) found++;
            cr_assert(!(I[2 * i + 1] == id && Dd[2 * i + 1] == 0.0f),
                      "id %lld is stored twice", id);
        }
    }
    return found;
}

Test(server_store, kill9_under_load_loses_no_acknowledged_write,
     .timeout = 36000, .fini = stop_server) {
    fresh_data_dir("kill9");
    int nrounds = rounds();
    cr_assert(nrounds * (long long)STORE_ROUND_IDS < (1 << 24),
              "too many rounds for exact float ids");
    unsigned seed = (unsigned)time(NULL);
    if (getenv("FAISSX_SOAK_SEED")) seed = (unsigned)atoi(getenv("FAISSX_SOAK_SEED"));
    /* Alternate policies: "always" must keep every acknowledged write;
     * so must "interval" and "none", since a process crash leaves the
     * page cache intact (power loss is tested in test_powerloss.c). */
    const char* const pol[] = {"always", "always", "interval", "none"};
    enum { CAP = 20000 };
    struct batch* bs = malloc(sizeof *bs * CAP);
    long long ntotal = 0, total_acked = 0;
    int created = 0, midload = 0;
    start_on_data(NULL);
    for (int round = 0; round < nrounds; round++) {
        int nhelpers = 1 + round % 2;
        pid_t pids[2];
        int fds[2];
        for (int h = 0; h < nhelpers; h++)
            pids[h] = spawn_adder((long long)round * STORE_ROUND_IDS +
                                          h * STORE_PER_THREAD,
                                  STORE_PER_THREAD, seed + (unsigned)round * 7 + h,
                                  &fds[h]);
        helper_out out[2];
        memset(out, 0, sizeof out);
        for (int h = 0; h < nhelpers; h++) out[h].fd = fds[h];
        /* Every fourth round while the helpers connect and create; the
         * others mid-load: a random while after the first acknowledged
         * batch. (A fixed 60-310 ms after starting the helpers found no
         * batch acknowledged in any round under ASan on a loaded
         * machine: the helpers were still starting.) */
        useconds_t wait;
        if (round % 4 == 0) {
            wait = (useconds_t)(rand_r(&seed) % 30000);
        } else {
            wait_for_ack(out, nhelpers, round);
            wait = (useconds_t)(rand_r(&seed) % 250000);
            midload++;
        }
        usleep(wait);
        fxt_server_kill(&srv);
        /* The helpers must be gone before the next server listens: a
         * client could otherwise resend its unacknowledged request. */
        int nb = 0;
        for (int h = 0; h < nhelpers; h++) {
            kill(pids[h], SIGKILL);
            waitpid(pids[h], NULL, 0);
            out_read(&out[h], 1);
            close(out[h].fd);
            nb = parse_batches(&out[h], bs, nb, CAP);
            free(out[h].buf);
        }
        const char* const args[] = {"--sync", pol[round % 4],
                                    "--checkpoint-log-bytes", "32k", NULL};
        faissx_configure(NULL, NULL, 0);
        start_on_data(args);
        FaissIndex* ix = NULL;
        if (faissx_index_open(&ix, "crash") != 0) {
            cr_assert_eq(faissx_last_error_code(), FAISSX_E_NOT_FOUND,
                         "round %d: %s", round, faiss_get_last_error());
            cr_assert(!created, "round %d: the index disappeared", round);
            for (int i = 0; i < nb; i++)
                cr_assert(!bs[i].acked, "round %d: acknowledged batch lost "
                          "with its index", round);
            continue;
        }
        created = 1;
        long long expect = ntotal;
        int acked = 0;
        for (int i = 0; i < nb; i++) {
            int n = (int)(bs[i].last - bs[i].first + 1);
            int c = count_present(ix, bs[i].first, n);
            if (bs[i].acked) {
                acked++;
                cr_assert_eq(c, n, "round %d (seed %u): acknowledged ids "
                             "%lld-%lld: %d of %d present", round, seed,
                             bs[i].first, bs[i].last, c, n);
            } else {
                cr_assert(c == 0 || c == n, "round %d: batch %lld-%lld partly "
                          "present", round, bs[i].first, bs[i].last);
            }
            expect += c;
        }
        ntotal = faiss_Index_ntotal(ix);
        cr_log_info("round %d (%s, %d client%s, killed after %u ms): %d of %d "
                    "batches acknowledged, %lld vectors", round,
                    pol[(round + 3) % 4], nhelpers, nhelpers > 1 ? "s" : "",
                    (unsigned)(wait / 1000), acked, nb, ntotal);
        cr_assert_eq(ntotal, expect, "round %d (seed %u): %lld vectors, "
                     "expected %lld", round, seed, ntotal, expect);
        faiss_Index_free(ix);
        total_acked += acked;
    }
    free(bs);
    /* The kills must have hit a server under load, not an idle one: each
     * mid-load round had a batch acknowledged before its kill (waited for
     * above), and found it stored. */
    cr_log_info("%d rounds: %lld batches acknowledged, %lld vectors stored",
                nrounds, total_acked, ntotal);
    cr_assert(total_acked >= midload,
              "only %lld batches were acknowledged in %d rounds (%d under "
              "load)", total_acked, nrounds, midload);
}
