/* test_cache.c -- the client's opt-in cache of remote search results and
 * reconstructed vectors (faissx_cache_*, docs/client.md "Caching"): hits
 * equal the server's answers and do not reach it; no result is staler
 * than this process's own writes; the byte bound, LRU order, TTL,
 * invalidation and counters; configuration errors. Every expected result
 * comes from a local index built the same way. */
#include "common.h"
#include "server_fixture.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static fxt_server srv;

static void start(void) {
    unsetenv("FAISSX_CACHE_MAX_BYTES");
    unsetenv("FAISSX_CACHE_TTL_MS");
    fxt_server_start(&srv, NULL);
}
static void stop(void) {
    faissx_set_thread_timeout(0);
    faissx_configure(NULL, NULL, 0);
    if (srv.pid > 0) fxt_server_stop(&srv);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static FaissxCacheStats stats(void) {
    FaissxCacheStats s;
    FXT_OK(faissx_cache_stats(&s));
    return s;
}

/* Cache on, counters zeroed. */
static void cache_on(int64_t max_bytes, int ttl_ms) {
    FXT_OK(faissx_cache_configure(max_bytes, ttl_ms));
    faissx_cache_reset_stats();
}

#define EXPECT_COUNTS(h, m)                                                 \
    do {                                                                    \
        FaissxCacheStats s_ = stats();                                      \
        cr_assert_eq(s_.hits, (uint64_t)(h), "hits %llu, expected %d",      \
                     (unsigned long long)s_.hits, (int)(h));                \
        cr_assert_eq(s_.misses, (uint64_t)(m), "misses %llu, expected %d",  \
                     (unsigned long long)s_.misses, (int)(m));              \
    } while (0)

typedef struct pair {
    FaissIndex* r;
    FaissIndex* l;
} pair;

/* A remote index built from a factory string, trained and filled, and a
 * local copy of it (downloaded, so reconfiguring -- which would reset the
 * cache's limits -- is not needed). */
static pair make_pair(int d, const char* factory, idx_t nb, const float* xb) {
    pair p = {NULL, NULL};
    FXT_OK(faiss_index_factory(&p.r, d, factory, METRIC_L2));
    cr_assert(faissx_index_is_remote(p.r));
    if (!faiss_Index_is_trained(p.r)) FXT_OK(faiss_Index_train(p.r, nb, xb));
    if (nb) FXT_OK(faiss_Index_add(p.r, nb, xb));
    FXT_OK(faissx_index_download(p.r, &p.l));
    cr_assert(!faissx_index_is_remote(p.l));
    return p;
}

static void free_pair(pair p) {
    faiss_Index_free(p.r);
    faiss_Index_free(p.l);
}

/* Searches both and asserts the remote answer equals the local one; the
 * remote result is left in D/I. */
static void search_same(pair p, idx_t n, const float* q, idx_t k, float* D,
                        idx_t* I) {
    float* dl = malloc(sizeof(float) * n * k);
    idx_t* il = malloc(sizeof(idx_t) * n * k);
    FXT_OK(faiss_Index_search(p.r, n, q, k, D, I));
    FXT_OK(faiss_Index_search(p.l, n, q, k, dl, il));
    FXT_SAME(I, il, sizeof(idx_t) * n * k);
    FXT_SAME(D, dl, sizeof(float) * n * k);
    free(dl);
    free(il);
}

/* ---------------------------------------------------------------------- */

Test(cache, off_by_default, .init = start, .fini = stop) {
    const int d = 8;
    float* xb = fxt_uniform(100, d, 1);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    faissx_cache_reset_stats();
    pair p = make_pair(d, "Flat", 100, xb);
    float D[5];
    idx_t I[5];
    float rec[8];
    for (int i = 0; i < 3; i++) {
        search_same(p, 1, xb, 5, D, I);
        FXT_OK(faiss_Index_reconstruct(p.r, 7, rec));
    }
    FaissxCacheStats s = stats();
    cr_assert_eq(s.max_bytes, 0);
    cr_assert_eq(s.ttl_ms, 0);
    cr_assert_eq(s.hits + s.misses + s.insertions + s.entries + s.bytes, 0,
                 "the cache is off unless configured");
    free_pair(p);
    free(xb);
}

Test(cache, hits_equal_the_servers_answers, .init = start, .fini = stop) {
    const int d = 16;
    const idx_t nb = 500, nq = 6, k = 5;
    float* xb = fxt_uniform(nb, d, 2);
    float* xq = fxt_uniform(nq, d, 3);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    pair p = make_pair(d, "Flat", nb, xb);
    float D0[30], D1[30];
    idx_t I0[30], I1[30];
    search_same(p, nq, xq, k, D0, I0); /* miss: the server's answer */
    EXPECT_COUNTS(0, 1);
    search_same(p, nq, xq, k, D1, I1); /* hit: the same bits */
    EXPECT_COUNTS(1, 1);
    FXT_SAME(D0, D1, sizeof D0);
    FXT_SAME(I0, I1, sizeof I0);
    /* another k, n or query is another entry */
    search_same(p, nq, xq, k - 1, D1, I1);
    search_same(p, nq - 1, xq, k, D1, I1);
    search_same(p, nq, xb, k, D1, I1);
    EXPECT_COUNTS(1, 4);
    cr_assert_eq(stats().entries, 4);

    /* reconstruct, reconstruct_n, and a batch (compute_distance_subset) */
    float r0[16], r1[16], rn0[10 * 16], rn1[10 * 16], rl[10 * 16];
    FXT_OK(faiss_Index_reconstruct(p.r, 42, r0));
    FXT_OK(faiss_Index_reconstruct(p.r, 42, r1));
    FXT_OK(faiss_Index_reconstruct(p.l, 42, rl));
    FXT_SAME(r0, rl, sizeof r0);
    FXT_SAME(r1, rl, sizeof r1);
    EXPECT_COUNTS(2, 5);
    FXT_OK(faiss_Index_reconstruct_n(p.r, 10, 10, rn0));
    FXT_OK(faiss_Index_reconstruct_n(p.r, 10, 10, rn1));
    FXT_OK(faiss_Index_reconstruct_n(p.l, 10, 10, rl));
    FXT_SAME(rn0, rl, sizeof rn0);
    FXT_SAME(rn1, rl, sizeof rn1);
    EXPECT_COUNTS(3, 6);
    float ds[2][6 * 5], dsl[6 * 5];
    for (int i = 0; i < 2; i++)
        FXT_OK(faiss_IndexFlat_compute_distance_subset(p.r, nq, xq, k, ds[i], I0));
    FXT_OK(faiss_IndexFlat_compute_distance_subset(p.l, nq, xq, k, dsl, I0));
    FXT_SAME(ds[0], dsl, sizeof dsl);
    FXT_SAME(ds[1], dsl, sizeof dsl);
    EXPECT_COUNTS(4, 7);
    FaissxCacheStats s = stats();
    cr_assert_eq(s.insertions, 7);
    cr_assert_eq(s.entries, 7);
    cr_assert_eq(s.evictions + s.expirations + s.invalidations, 0);
    cr_assert(s.bytes > 0 && s.bytes <= (uint64_t)s.max_bytes);
    /* errors are not cached: a bad key fails every time */
    FXT_ERR(faiss_Index_reconstruct(p.r, nb + 5, r0), "");
    FXT_ERR(faiss_Index_reconstruct(p.r, nb + 5, r0), "");
    free_pair(p);
    free(xb);
    free(xq);
}

/* How many requests of this op the server has logged (its access log, at
 * --log-level debug, writes a line before it sends each reply). */
static int server_ops(const char* op) {
    char needle[64];
    snprintf(needle, sizeof needle, "request op=%s ", op);
    FILE* f = fopen(srv.log, "r");
    cr_assert(f != NULL, "server log %s", srv.log);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static void start_debug_log(void) {
    unsetenv("FAISSX_CACHE_MAX_BYTES");
    unsetenv("FAISSX_CACHE_TTL_MS");
    const char* args[] = {"--log-level", "debug", NULL};
    fxt_server_start(&srv, args);
}

/* A hit does not go to the server: the server's access log counts every
 * request it answers; hits leave the count alone. */
Test(cache, a_hit_does_not_reach_the_server, .init = start_debug_log,
     .fini = stop) {
    const int d = 8;
    float* xb = fxt_uniform(200, d, 4);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    pair p = make_pair(d, "Flat", 200, xb);
    float D0[4 * 3], D1[4 * 3];
    idx_t I0[4 * 3], I1[4 * 3];
    int s0 = server_ops("search");
    search_same(p, 4, xb + 10 * d, 3, D0, I0); /* miss */
    cr_assert_eq(server_ops("search"), s0 + 1);
    for (int i = 0; i < 3; i++) { /* hits */
        FXT_OK(faiss_Index_search(p.r, 4, xb + 10 * d, 3, D1, I1));
        FXT_SAME(D0, D1, sizeof D0);
        FXT_SAME(I0, I1, sizeof I0);
    }
    cr_assert_eq(server_ops("search"), s0 + 1, "a hit reached the server");
    search_same(p, 4, xb + 20 * d, 3, D1, I1); /* another query: a miss */
    cr_assert_eq(server_ops("search"), s0 + 2);
    int r0 = server_ops("reconstruct_keys");
    float rec[8];
    FXT_OK(faiss_Index_reconstruct(p.r, 5, rec));
    FXT_OK(faiss_Index_reconstruct(p.r, 5, rec));
    cr_assert_eq(server_ops("reconstruct_keys"), r0 + 1);
    EXPECT_COUNTS(4, 3);
    /* with the cache off, every search is a request again */
    FXT_OK(faissx_cache_configure(0, 0));
    FXT_OK(faiss_Index_search(p.r, 4, xb + 10 * d, 3, D1, I1));
    FXT_OK(faiss_Index_search(p.r, 4, xb + 10 * d, 3, D1, I1));
    cr_assert_eq(server_ops("search"), s0 + 4);
    free_pair(p);
    free(xb);
}

/* With the server gone, a cached search still answers, from memory. (A
 * named index, whose handle sends nothing to the server when freed.) */
Test(cache, a_hit_answers_without_a_server, .init = start, .fini = stop) {
    const int d = 8;
    float* xb = fxt_uniform(200, d, 4);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    FaissIndex* ix = NULL;
    FXT_OK(faissx_index_create(&ix, "gone", d, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(ix, 200, xb));
    float D0[4 * 3], D1[4 * 3];
    idx_t I0[4 * 3], I1[4 * 3];
    FXT_OK(faiss_Index_search(ix, 4, xb + 10 * d, 3, D0, I0));
    cr_assert_eq(I0[0], 10);
    fxt_server_kill(&srv);
    FXT_OK(faiss_Index_search(ix, 4, xb + 10 * d, 3, D1, I1));
    FXT_SAME(D0, D1, sizeof D0);
    FXT_SAME(I0, I1, sizeof I0);
    EXPECT_COUNTS(1, 1);
    faiss_Index_free(ix);
    free(xb);
}

/* ---- a result is never older than this process's own last write ------- */

Test(cache, add_remove_reset_are_seen_at_once, .init = start, .fini = stop) {
    const int d = 8;
    const idx_t nb = 300, k = 4;
    float* xb = fxt_uniform(nb, d, 5);
    float* q = fxt_uniform(1, d, 6);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    pair p = make_pair(d, "Flat", nb, xb);
    float D[4], D2[4];
    idx_t I[4], I2[4];
    search_same(p, 1, q, k, D, I);
    search_same(p, 1, q, k, D, I); /* now cached */
    EXPECT_COUNTS(1, 1);
    /* add the query itself: it becomes the nearest neighbour */
    FXT_OK(faiss_Index_add(p.r, 1, q));
    FXT_OK(faiss_Index_add(p.l, 1, q));
    search_same(p, 1, q, k, D2, I2);
    cr_assert_eq(I2[0], nb, "the vector just added is found");
    cr_assert(memcmp(I, I2, sizeof I) != 0);
    EXPECT_COUNTS(1, 2);
    /* reconstruct sees it too */
    float rec[8];
    FXT_OK(faiss_Index_reconstruct(p.r, 0, rec));
    FXT_OK(faiss_Index_reconstruct(p.r, 0, rec));
    EXPECT_COUNTS(2, 3);
    /* remove it again */
    FaissIDSelectorRange* sel = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&sel, 0, 1));
    size_t nr;
    FXT_OK(faiss_Index_remove_ids(p.r, (FaissIDSelector*)sel, &nr));
    FXT_OK(faiss_Index_remove_ids(p.l, (FaissIDSelector*)sel, &nr));
    faiss_IDSelector_free((FaissIDSelector*)sel);
    search_same(p, 1, q, k, D2, I2);
    float rl[8];
    FXT_OK(faiss_Index_reconstruct(p.r, 0, rec));
    FXT_OK(faiss_Index_reconstruct(p.l, 0, rl));
    FXT_SAME(rec, rl, sizeof rec);
    cr_assert(memcmp(rec, xb, sizeof rec) != 0, "vector 0 was removed");
    EXPECT_COUNTS(2, 5);
    /* reset */
    FXT_OK(faiss_Index_reset(p.r));
    FXT_OK(faiss_Index_reset(p.l));
    search_same(p, 1, q, k, D2, I2);
    cr_assert_eq(I2[0], -1, "nothing left after reset");
    EXPECT_COUNTS(2, 6);
    cr_assert(stats().invalidations >= 3);
    free_pair(p);
    free(xb);
    free(q);
}

Test(cache, add_with_ids_and_failed_writes, .init = start, .fini = stop) {
    const int d = 8;
    float* xb = fxt_uniform(100, d, 7);
    float* q = fxt_uniform(1, d, 8);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    pair p = make_pair(d, "IDMap,Flat", 0, NULL);
    idx_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = 5000 + i;
    FXT_OK(faiss_Index_add_with_ids(p.r, 100, xb, ids));
    FXT_OK(faiss_Index_add_with_ids(p.l, 100, xb, ids));
    float D[3];
    idx_t I[3];
    search_same(p, 1, q, 3, D, I);
    search_same(p, 1, q, 3, D, I);
    EXPECT_COUNTS(1, 1);
    idx_t id = 777;
    FXT_OK(faiss_Index_add_with_ids(p.r, 1, q, &id));
    FXT_OK(faiss_Index_add_with_ids(p.l, 1, q, &id));
    search_same(p, 1, q, 3, D, I);
    cr_assert_eq(I[0], 777);
    EXPECT_COUNTS(1, 2);
    /* a write the server refuses still drops the entries (a failed write
     * may have been applied, as after a timeout) */
    search_same(p, 1, q, 3, D, I);
    EXPECT_COUNTS(2, 2);
    FXT_ERR(faiss_Index_add(p.r, 1, q), ""); /* IDMap needs ids */
    search_same(p, 1, q, 3, D, I);
    EXPECT_COUNTS(2, 3);
    free_pair(p);
    free(xb);
    free(q);
}

Test(cache, parameter_changes_are_seen_at_once, .init = start, .fini = stop) {
    const int d = 16;
    const idx_t nb = 2000, nq = 20, k = 5;
    float* xb = fxt_clustered(nb, d, 20, 0.1f, 9);
    float* xq = fxt_clustered(nq, d, 20, 0.1f, 10);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    pair p = make_pair(d, "IVF16,Flat", nb, xb);
    float D1[100], D16[100], D[100];
    idx_t I1[100], I16[100], I[100];
    faiss_IndexIVF_set_nprobe(faiss_IndexIVF_cast(p.r), 1);
    faiss_IndexIVF_set_nprobe(faiss_IndexIVF_cast(p.l), 1);
    search_same(p, nq, xq, k, D1, I1);
    search_same(p, nq, xq, k, D, I);
    EXPECT_COUNTS(1, 1);
    faiss_IndexIVF_set_nprobe(faiss_IndexIVF_cast(p.r), 16);
    faiss_IndexIVF_set_nprobe(faiss_IndexIVF_cast(p.l), 16);
    search_same(p, nq, xq, k, D16, I16);
    cr_assert(memcmp(I1, I16, sizeof I1) != 0,
              "nprobe 1 and 16 must differ for this test to mean anything");
    EXPECT_COUNTS(1, 2);
    /* through the ParameterSpace, back to 1 */
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, p.r, "nprobe", 1));
    FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, p.l, "nprobe", 1));
    search_same(p, nq, xq, k, D, I);
    FXT_SAME(I, I1, sizeof I);
    EXPECT_COUNTS(1, 3);
    FXT_OK(faiss_ParameterSpace_set_index_parameters(ps, p.r, "nprobe=16"));
    FXT_OK(faiss_ParameterSpace_set_index_parameters(ps, p.l, "nprobe=16"));
    search_same(p, nq, xq, k, D, I);
    FXT_SAME(I, I16, sizeof I);
    EXPECT_COUNTS(1, 4);
    faiss_ParameterSpace_free(ps);

    /* per-call parameters bypass the cache: not looked up, not stored */
    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, 1, 0));
    FaissxCacheStats before = stats();
    for (int i = 0; i < 2; i++) {
        FXT_OK(faiss_Index_search_with_params(p.r, nq, xq, k,
                                              (FaissSearchParameters*)sp, D, I));
        FXT_SAME(I, I1, sizeof I);
    }
    FaissxCacheStats after = stats();
    cr_assert_eq(after.hits, before.hits);
    cr_assert_eq(after.misses, before.misses);
    cr_assert_eq(after.insertions, before.insertions);
    faiss_SearchParameters_free((FaissSearchParameters*)sp);
    free_pair(p);
    free(xb);
    free(xq);
}

/* merge_from writes both indexes (faiss empties the source). */
Test(cache, merge_from_writes_both_sides, .init = start, .fini = stop) {
    const int d = 8;
    const idx_t nb = 400, k = 3;
    float* xb = fxt_clustered(2 * nb, d, 8, 0.1f, 11);
    float* q = fxt_clustered(4, d, 8, 0.1f, 12);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    pair a = make_pair(d, "IVF8,Flat", nb, xb);
    pair b = {NULL, NULL};
    FXT_OK(faiss_clone_index(a.r, &b.r));
    FXT_OK(faiss_clone_index(a.l, &b.l));
    FXT_OK(faiss_Index_reset(b.r));
    FXT_OK(faiss_Index_reset(b.l));
    FXT_OK(faiss_Index_add(b.r, nb, xb + nb * d));
    FXT_OK(faiss_Index_add(b.l, nb, xb + nb * d));
    float D[12];
    idx_t I[12];
    for (int i = 0; i < 2; i++) {
        search_same(a, 4, q, k, D, I);
        search_same(b, 4, q, k, D, I);
    }
    EXPECT_COUNTS(2, 2);
    FXT_OK(faiss_IndexIVF_merge_from(faiss_IndexIVF_cast(a.r),
                                     faiss_IndexIVF_cast(b.r), nb));
    FXT_OK(faiss_IndexIVF_merge_from(faiss_IndexIVF_cast(a.l),
                                     faiss_IndexIVF_cast(b.l), nb));
    search_same(a, 4, q, k, D, I);
    search_same(b, 4, q, k, D, I);
    cr_assert_eq(I[0], -1, "the source of a merge is empty");
    EXPECT_COUNTS(2, 4);
    free_pair(a);
    free_pair(b);
    free(xb);
    free(q);
}

/* Two handles to one named index share its entries and its writes. */
Test(cache, named_index_opened_twice_shares_one_identity, .init = start,
     .fini = stop) {
    const int d = 8;
    float* xb = fxt_uniform(100, d, 13);
    float* q = fxt_uniform(1, d, 14);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    FaissIndex *h1 = NULL, *h2 = NULL;
    FXT_OK(faissx_index_create(&h1, "shared", d, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(h1, 100, xb));
    FXT_OK(faissx_index_open(&h2, "shared"));
    float D1[3], D2[3];
    idx_t I1[3], I2[3];
    FXT_OK(faiss_Index_search(h1, 1, q, 3, D1, I1));
    FXT_OK(faiss_Index_search(h2, 1, q, 3, D2, I2));
    EXPECT_COUNTS(1, 1); /* the second handle hit the first's entry */
    FXT_SAME(I1, I2, sizeof I1);
    FXT_OK(faiss_Index_add(h2, 1, q));
    FXT_OK(faiss_Index_search(h1, 1, q, 3, D1, I1));
    EXPECT_COUNTS(1, 2);
    cr_assert_eq(I1[0], 100, "a write through one handle is seen through the other");
    cr_assert_eq(D1[0], 0.0f);
    /* freeing a named handle keeps the entries the other handle uses */
    faiss_Index_free(h2);
    FXT_OK(faiss_Index_search(h1, 1, q, 3, D2, I2));
    EXPECT_COUNTS(2, 2);
    /* dropping the index: the handle must not answer from the cache */
    FXT_OK(faissx_index_drop("shared"));
    FXT_ERR(faiss_Index_search(h1, 1, q, 3, D2, I2), "");
    faiss_Index_free(h1);
    free(xb);
    free(q);
}

/* A remote composite shares its child's data on the server: a write
 * through one is seen through the other. */
Test(cache, composite_and_child_share_writes, .init = start, .fini = stop) {
    const int d = 8;
    float* xb = fxt_uniform(50, d, 15);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    FaissIndex* child = NULL;
    FaissIndexIDMap* map = NULL;
    FXT_OK(faiss_index_factory(&child, d, "Flat", METRIC_L2));
    FXT_OK(faiss_IndexIDMap_new(&map, child));
    cr_assert(faissx_index_is_remote((FaissIndex*)map));
    float D[2];
    idx_t I[2];
    FXT_OK(faiss_Index_search(child, 1, xb, 2, D, I));
    FXT_OK(faiss_Index_search(child, 1, xb, 2, D, I));
    cr_assert_eq(I[0], -1);
    EXPECT_COUNTS(1, 1);
    idx_t ids[50];
    for (int i = 0; i < 50; i++) ids[i] = 100 + i;
    FXT_OK(faiss_Index_add_with_ids((FaissIndex*)map, 50, xb, ids));
    FXT_OK(faiss_Index_search(child, 1, xb, 2, D, I));
    cr_assert_eq(I[0], 0, "the child sees what was added through its IDMap");
    FXT_OK(faiss_Index_search((FaissIndex*)map, 1, xb, 2, D, I));
    cr_assert_eq(I[0], 100);
    EXPECT_COUNTS(1, 3);
    faiss_Index_free((FaissIndex*)map);
    faiss_Index_free(child);
    free(xb);
}

/* ---- bound, LRU order, TTL, invalidation -------------------------------- */

Test(cache, byte_bound_and_lru_order, .init = start, .fini = stop) {
    const int d = 8;
    float* xb = fxt_uniform(100, d, 16);
    float* q = fxt_uniform(6, d, 17); /* six single queries: A..F */
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    pair p = make_pair(d, "Flat", 100, xb);
    float D[5];
    idx_t I[5];
#define Q(i) search_same(p, 1, q + (i) * d, 5, D, I)
    Q(0);
    uint64_t e = stats().bytes; /* one entry's size; all six are alike */
    cr_assert(e > 0);
    faissx_cache_clear();
    /* room for three entries, not four */
    cache_on((int64_t)(3 * e + e / 2), 0);
    Q(0); Q(1); Q(2);          /* LRU order (newest first): 2 1 0 */
    EXPECT_COUNTS(0, 3);
    cr_assert_eq(stats().entries, 3);
    Q(0);                      /* hit: 0 2 1 */
    EXPECT_COUNTS(1, 3);
    Q(3);                      /* miss, evicts 1: 3 0 2 */
    FaissxCacheStats s = stats();
    cr_assert_eq(s.evictions, 1);
    cr_assert_eq(s.entries, 3);
    cr_assert(s.bytes <= (uint64_t)s.max_bytes);
    Q(0); Q(2); Q(3);          /* all hits: 3 2 0 */
    EXPECT_COUNTS(4, 4);
    Q(1);                      /* the evicted one misses, evicts 0: 1 3 2 */
    EXPECT_COUNTS(4, 5);
    cr_assert_eq(stats().evictions, 2);
    Q(0);                      /* miss, evicts 2: 0 1 3 */
    EXPECT_COUNTS(4, 6);
    cr_assert_eq(stats().evictions, 3);
    Q(3);                      /* hit */
    EXPECT_COUNTS(5, 6);
    /* shrinking the bound evicts the least recently used: 3 stays */
    FXT_OK(faissx_cache_configure((int64_t)(e + e / 2), 0));
    s = stats();
    cr_assert_eq(s.entries, 1);
    cr_assert_eq(s.evictions, 5);
    cr_assert(s.bytes <= (uint64_t)s.max_bytes);
    Q(3);
    EXPECT_COUNTS(6, 6);
    /* a result larger than the bound is not cached (nor counted) */
    float D6[6 * 5];
    idx_t I6[6 * 5];
    s = stats();
    search_same(p, 6, q, 5, D6, I6);
    search_same(p, 6, q, 5, D6, I6);
    FaissxCacheStats s2 = stats();
    cr_assert_eq(s2.insertions, s.insertions);
    cr_assert_eq(s2.hits + s2.misses, s.hits + s.misses);
    cr_assert_eq(s2.entries, 1);
#undef Q
    free_pair(p);
    free(xb);
    free(q);
}

Test(cache, ttl_expiry, .init = start, .fini = stop) {
    const int d = 8;
    float* xb = fxt_uniform(100, d, 18);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    pair p = make_pair(d, "Flat", 100, xb);
    float D[3];
    idx_t I[3];
    /* no TTL: an entry does not expire */
    search_same(p, 1, xb, 3, D, I);
    sleep_ms(120);
    search_same(p, 1, xb, 3, D, I);
    EXPECT_COUNTS(1, 1);
    /* a TTL of 50 ms: the entry, now over 100 ms old, has expired */
    FXT_OK(faissx_cache_configure(1 << 20, 50));
    search_same(p, 1, xb, 3, D, I);
    EXPECT_COUNTS(1, 2);
    FaissxCacheStats s = stats();
    cr_assert_eq(s.expirations, 1);
    cr_assert_eq(s.ttl_ms, 50);
    cr_assert_eq(s.entries, 1, "the fresh answer replaced it");
    /* a long TTL keeps it (the next lookup follows at once) */
    FXT_OK(faissx_cache_configure(1 << 20, 60000));
    search_same(p, 1, xb, 3, D, I);
    EXPECT_COUNTS(2, 2);
    /* and expires it again with a short one, for reconstruct too */
    float rec[8];
    FXT_OK(faiss_Index_reconstruct(p.r, 3, rec));
    FXT_OK(faissx_cache_configure(1 << 20, 50));
    sleep_ms(150);
    FXT_OK(faiss_Index_reconstruct(p.r, 3, rec));
    search_same(p, 1, xb, 3, D, I);
    EXPECT_COUNTS(2, 5);
    cr_assert_eq(stats().expirations, 3);
    FXT_SAME(rec, xb + 3 * d, sizeof rec);
    free_pair(p);
    free(xb);
}

Test(cache, invalidate_one_index_or_clear_all, .init = start, .fini = stop) {
    const int d = 8;
    float* xb = fxt_uniform(100, d, 19);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    cache_on(1 << 20, 0);
    pair a = make_pair(d, "Flat", 100, xb);
    pair b = make_pair(d, "Flat", 50, xb + 50 * d);
    float D[3];
    idx_t I[3];
    search_same(a, 1, xb, 3, D, I);
    search_same(b, 1, xb, 3, D, I);
    EXPECT_COUNTS(0, 2);
    FXT_OK(faissx_cache_invalidate(a.r));
    cr_assert_eq(stats().invalidations, 1);
    search_same(a, 1, xb, 3, D, I); /* miss */
    search_same(b, 1, xb, 3, D, I); /* hit */
    EXPECT_COUNTS(1, 3);
    faissx_cache_clear();
    FaissxCacheStats s = stats();
    cr_assert_eq(s.entries, 0);
    cr_assert_eq(s.bytes, 0);
    cr_assert_eq(s.invalidations, 3);
    search_same(a, 1, xb, 3, D, I);
    search_same(b, 1, xb, 3, D, I);
    EXPECT_COUNTS(1, 5);
    /* a local index has nothing cached; NULL is an error */
    FXT_OK(faissx_cache_invalidate(a.l));
    FXT_ERR(faissx_cache_invalidate(NULL), "NULL");
    FXT_ERR(faissx_cache_stats(NULL), "NULL");
    /* freeing an index frees its entries */
    faiss_Index_free(a.r);
    a.r = NULL;
    cr_assert_eq(stats().entries, 1);
    /* turning the cache off empties it */
    FXT_OK(faissx_cache_configure(0, 0));
    s = stats();
    cr_assert_eq(s.entries, 0);
    cr_assert_eq(s.bytes, 0);
    search_same(b, 1, xb, 3, D, I);
    EXPECT_COUNTS(1, 5);
    free_pair(a);
    free_pair(b);
    free(xb);
}

/* ---- configuration -------------------------------------------------------- */

Test(cache, bad_configuration_is_refused) {
    FXT_ERR(faissx_cache_configure(-1, 0), "max_bytes must be >= 0");
    FXT_ERR(faissx_cache_configure(1 << 20, -5), "cache_ttl_ms must be >= 0");
    cr_assert_eq(stats().max_bytes, 0, "a refused call changes nothing");
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    cr_assert_eq(o.cache_max_bytes, 0);
    cr_assert_eq(o.cache_ttl_ms, 0);
    o.cache_max_bytes = -7;
    FXT_ERR(faissx_configure_ex(&o), "cache_max_bytes");
    o.cache_max_bytes = 0;
    o.cache_ttl_ms = -1;
    FXT_ERR(faissx_configure_ex(&o), "cache_ttl_ms");
    const char* bad[] = {"abc", "-5", "12X", "1T", "1KB", "", NULL};
    for (int i = 0; bad[i]; i++) {
        if (!*bad[i]) continue; /* empty counts as unset */
        setenv("FAISSX_CACHE_MAX_BYTES", bad[i], 1);
        faissx_client_options_init(&o);
        FXT_ERR(faissx_client_options_from_env(&o), "FAISSX_CACHE_MAX_BYTES");
    }
    struct {
        const char* v;
        int64_t bytes;
    } good[] = {{"0", 0}, {"4096", 4096}, {"2k", 2048}, {"64M", 64 << 20},
                {"3G", (int64_t)3 << 30}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("FAISSX_CACHE_MAX_BYTES", good[i].v, 1);
        faissx_client_options_init(&o);
        FXT_OK(faissx_client_options_from_env(&o));
        cr_assert_eq(o.cache_max_bytes, good[i].bytes, "%s", good[i].v);
    }
    unsetenv("FAISSX_CACHE_MAX_BYTES");
    setenv("FAISSX_CACHE_TTL_MS", "-1", 1);
    FXT_ERR(faissx_client_options_from_env(&o), "FAISSX_CACHE_TTL_MS");
    setenv("FAISSX_CACHE_TTL_MS", "250", 1);
    FXT_OK(faissx_client_options_from_env(&o));
    cr_assert_eq(o.cache_ttl_ms, 250);
    unsetenv("FAISSX_CACHE_TTL_MS");
}

/* FAISSX_SERVER with FAISSX_CACHE_* configures the cache too, and
 * faissx_configure_ex applies its own settings. */
Test(cache, configured_by_environment_and_options, .init = start, .fini = stop) {
    setenv("FAISSX_SERVER", srv.url, 1);
    setenv("FAISSX_CACHE_MAX_BYTES", "1M", 1);
    setenv("FAISSX_CACHE_TTL_MS", "5000", 1);
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, 8, "Flat", METRIC_L2));
    cr_assert(faissx_index_is_remote(ix));
    FaissxCacheStats s = stats();
    cr_assert_eq(s.max_bytes, 1 << 20);
    cr_assert_eq(s.ttl_ms, 5000);
    float q[8] = {0}, D[1];
    idx_t I[1];
    FXT_OK(faiss_Index_search(ix, 1, q, 1, D, I));
    FXT_OK(faiss_Index_search(ix, 1, q, 1, D, I));
    EXPECT_COUNTS(1, 1);
    faiss_Index_free(ix);
    unsetenv("FAISSX_SERVER");
    unsetenv("FAISSX_CACHE_MAX_BYTES");
    unsetenv("FAISSX_CACHE_TTL_MS");
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    o.url = srv.url;
    o.cache_max_bytes = 12345;
    o.cache_ttl_ms = 77;
    FXT_OK(faissx_configure_ex(&o));
    s = stats();
    cr_assert_eq(s.max_bytes, 12345);
    cr_assert_eq(s.ttl_ms, 77);
    o.cache_max_bytes = 0;
    FXT_OK(faissx_configure_ex(&o));
    cr_assert_eq(stats().max_bytes, 0);
}

/* ---- threads ---------------------------------------------------------------- */

enum { TD = 8, TNQ = 10, TK = 4, TITER = 150, TTHREADS = 4 };
typedef struct {
    FaissIndex* r;
    const float* q;
    const float* D;
    const idx_t* I;
    int seed;
    int bad;
} tjob;

static void* searcher(void* arg) {
    tjob* j = arg;
    unsigned s = (unsigned)j->seed;
    for (int it = 0; it < TITER; it++) {
        s = s * 1103515245u + 12345u;
        int i = (int)((s >> 16) % TNQ);
        float D[TK];
        idx_t I[TK];
        if (faiss_Index_search(j->r, 1, j->q + i * TD, TK, D, I) != 0 ||
            memcmp(D, j->D + i * TK, sizeof D) || memcmp(I, j->I + i * TK, sizeof I))
            j->bad++;
        if (j->seed == 0 && it % 10 == 0) faissx_cache_clear();
        if (j->seed == 1 && it % 15 == 0) faissx_cache_invalidate(j->r);
    }
    return NULL;
}

Test(cache, many_threads_one_cache, .init = start, .fini = stop) {
    float* xb = fxt_uniform(300, TD, 20);
    float* q = fxt_uniform(TNQ, TD, 21);
    FXT_OK(faissx_configure(srv.url, NULL, 0));
    /* a bound that holds about half the queries: evictions happen too */
    cache_on(5 * 400, 0);
    pair p = make_pair(TD, "Flat", 300, xb);
    float D[TNQ * TK];
    idx_t I[TNQ * TK];
    FXT_OK(faiss_Index_search(p.l, TNQ, q, TK, D, I));
    /* the expected single-query answers */
    float De[TNQ * TK];
    idx_t Ie[TNQ * TK];
    for (int i = 0; i < TNQ; i++)
        FXT_OK(faiss_Index_search(p.l, 1, q + i * TD, TK, De + i * TK, Ie + i * TK));
    faissx_cache_reset_stats();
    pthread_t th[TTHREADS];
    tjob jobs[TTHREADS];
    for (int t = 0; t < TTHREADS; t++) {
        jobs[t] = (tjob){p.r, q, De, Ie, t, 0};
        cr_assert_eq(pthread_create(&th[t], NULL, searcher, &jobs[t]), 0);
    }
    for (int t = 0; t < TTHREADS; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(jobs[t].bad, 0, "thread %d: %d wrong answers", t, jobs[t].bad);
    }
    FaissxCacheStats s = stats();
    cr_assert_eq(s.hits + s.misses, TTHREADS * TITER);
    cr_assert_gt(s.hits, 0);
    cr_assert(s.bytes <= (uint64_t)s.max_bytes);
    free_pair(p);
    free(xb);
    free(q);
}
