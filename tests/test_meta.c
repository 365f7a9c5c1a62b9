/* test_meta.c -- MetaIndexes_c.h (IndexIDMap, IndexIDMap2), IndexShards_c.h
 * and IndexReplicas_c.h against faiss C++. */
#include "common.h"
#include "oracle.h"
#include "oracle_meta.h"

#include <malloc.h>
#include <math.h>
#include <stdlib.h>

#define ORCM(call)                                                         \
    cr_assert_eq((call), 0, "oracle %s failed: %s%s", #call,               \
                 oracle_last_error(), oracle_meta_error())

#if defined(__SANITIZE_ADDRESS__)
#define FXT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FXT_ASAN 1
#endif
#endif

/* Bytes currently allocated through malloc (heap + mmapped chunks). Used
 * to observe whether freeing a wrapper also freed what it wraps. Under
 * ASan the allocator is ASan's, mallinfo2 sees nothing, and ASan/LSan
 * check the same ownership rules (a double free or a leak fails the run),
 * so the byte counts are only asserted without it. */
static size_t heap_used(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

#define BIG_D 64
#define BIG_N 8192 /* 2 MiB of vectors */
#define BIG_BYTES ((size_t)BIG_D * BIG_N * sizeof(float))
#define SLACK ((size_t)256 * 1024)

static idx_t* seq_ids(idx_t n, idx_t base, idx_t step) {
    idx_t* ids = malloc((size_t)n * sizeof(idx_t));
    for (idx_t i = 0; i < n; i++) ids[i] = base + i * step;
    return ids;
}

/* ---- IndexIDMap ------------------------------------------------------- */

Test(meta, idmap_search_and_id_map) {
    const int d = 16;
    const idx_t nb = 1500, nq = 20, k = 10;
    float* xb = fxt_uniform(nb, d, 1);
    float* xq = fxt_uniform(nq, d, 2);
    /* distinct, unordered external ids */
    idx_t* ids = malloc(nb * sizeof(idx_t));
    for (idx_t i = 0; i < nb; i++) ids[i] = 5000000 + (i * 1031) % nb * 3;

    FaissIndexFlatL2* sub = NULL;
    FaissIndexIDMap* m = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&sub, d));
    FXT_OK(faiss_IndexIDMap_new(&m, sub));
    cr_assert_eq(faiss_IndexIDMap_own_fields(m), 0, "default: not owned");
    cr_assert_eq(faiss_IndexIDMap_sub_index(m), sub);
    cr_assert_eq(faiss_Index_d(m), d);
    cr_assert_eq(faiss_Index_metric_type(m), METRIC_L2);
    cr_assert(faiss_Index_is_trained(m));

    FXT_ERR(faiss_Index_add(m, nb, xb), "add_with_ids");
    cr_assert_eq(faiss_Index_ntotal(m), 0);
    FXT_OK(faiss_Index_add_with_ids(m, 1000, xb, ids));
    FXT_OK(faiss_Index_add_with_ids(m, nb - 1000, xb + 1000 * d, ids + 1000));
    cr_assert_eq(faiss_Index_ntotal(m), nb);
    cr_assert_eq(faiss_Index_ntotal(sub), nb, "vectors live in the sub-index");

    idx_t* map = NULL;
    size_t size = 0;
    faiss_IndexIDMap_id_map(m, &map, &size);
    cr_assert_eq(size, (size_t)nb);
    FXT_SAME(map, ids, nb * sizeof(idx_t));

    float D[20 * 10], Dr[20 * 10];
    idx_t I[20 * 10], Ir[20 * 10];
    FXT_OK(faiss_Index_search(m, nq, xq, k, D, I));
    ORCM(oracle_factory_search("IDMap,Flat", d, METRIC_L2, 0, NULL, nb, xb,
                               ids, NULL, nq, xq, k, Dr, Ir));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    /* the labels are the external ids of the sub-index's answer */
    float Ds[20 * 10];
    idx_t Is[20 * 10];
    FXT_OK(faiss_Index_search(sub, nq, xq, k, Ds, Is));
    for (idx_t i = 0; i < nq * k; i++) cr_assert_eq(I[i], ids[Is[i]]);
    FXT_SAME(D, Ds, sizeof D);

    faiss_Index_free(m);
    /* own_fields = 0: the sub-index is still ours, alive and intact */
    cr_assert_eq(faiss_Index_ntotal(sub), nb);
    FXT_OK(faiss_Index_search(sub, nq, xq, k, D, I));
    FXT_SAME(I, Is, sizeof I);
    faiss_IndexFlatL2_free(sub);
    free(xb), free(xq), free(ids);
}

Test(meta, idmap_casts) {
    FaissIndexFlatL2 *a = NULL, *b = NULL;
    FaissIndexIDMap* m = NULL;
    FaissIndexIDMap2* m2 = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&a, 4));
    FXT_OK(faiss_IndexFlatL2_new_with(&b, 4));
    FXT_OK(faiss_IndexIDMap_new(&m, a));
    FXT_OK(faiss_IndexIDMap2_new(&m2, b));
    cr_assert_eq(faiss_IndexIDMap_cast(m), m);
    cr_assert_eq(faiss_IndexIDMap_cast(m2), m2, "IDMap2 is an IDMap");
    cr_assert_null(faiss_IndexIDMap2_cast(m));
    cr_assert_eq(faiss_IndexIDMap2_cast(m2), m2);
    cr_assert_null(faiss_IndexIDMap_cast(a));
    cr_assert_null(faiss_IndexIDMap2_cast(a));
    cr_assert_null(faiss_IndexIDMap_cast(NULL));
    cr_assert_null(faiss_IndexIDMap2_cast(NULL));
    /* typed accessors on the wrong type: NULL/0 with an error, no crash */
    cr_assert_null(faiss_IndexIDMap_sub_index(a));
    cr_assert(strstr(faiss_get_last_error(), "IndexIDMap"));
    cr_assert_null(faiss_IndexIDMap2_sub_index(m));
    cr_assert(strstr(faiss_get_last_error(), "IndexIDMap2"));
    idx_t* map = (idx_t*)1;
    size_t size = 7;
    faiss_IndexIDMap_id_map(a, &map, &size);
    cr_assert_null(map);
    cr_assert_eq(size, 0);
    FXT_ERR(faiss_IndexIDMap2_construct_rev_map(m), "IndexIDMap2");
    cr_assert_eq(faiss_IndexIDMap_own_fields(a), 0);
    faiss_IndexIDMap_set_own_fields(a, 1);
    cr_assert(faiss_get_last_error() != NULL);
    faiss_IndexIDMap_set_own_fields(m, 1);
    faiss_IndexIDMap2_set_own_fields(m2, 1);
    cr_assert_eq(faiss_IndexIDMap_own_fields(m), 1);
    cr_assert_eq(faiss_IndexIDMap2_own_fields(m2), 1);
    faiss_Index_free(m);  /* frees a */
    faiss_Index_free(m2); /* frees b */
}

Test(meta, idmap_requires_empty_sub_index) {
    float x[4 * 3] = {0};
    FaissIndexFlatL2* sub = NULL;
    FaissIndexIDMap* m = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&sub, 4));
    FXT_OK(faiss_Index_add(sub, 3, x));
    FXT_ERR(faiss_IndexIDMap_new(&m, sub), "empty");
    cr_assert_null(m);
    FXT_ERR(faiss_IndexIDMap2_new(&m, sub), "empty");
    cr_assert_null(m);
    FXT_ERR(faiss_IndexIDMap_new(&m, NULL), "NULL");
    FXT_ERR(faiss_IndexIDMap_new(NULL, sub), "NULL");
    FXT_ERR(faiss_IndexIDMap2_new(&m, NULL), "NULL");
    faiss_IndexFlatL2_free(sub);
}

/* Freeing an IDMap with own_fields = 1 releases the sub-index; with 0 it
 * does not, and the caller frees it. */
static void check_idmap_ownership(int idmap2) {
    FXT_LOCAL_ONLY("measures this process's heap");
    float* x = fxt_uniform(BIG_N, BIG_D, 3);
    idx_t* ids = seq_ids(BIG_N, 10, 1);
    for (int own = 0; own <= 1; own++) {
        size_t base = heap_used();
        FaissIndexFlatL2* sub = NULL;
        FaissIndex* m = NULL;
        FXT_OK(faiss_IndexFlatL2_new_with(&sub, BIG_D));
        if (idmap2) {
            FXT_OK(faiss_IndexIDMap2_new(&m, sub));
            faiss_IndexIDMap2_set_own_fields(m, own);
            cr_assert_eq(faiss_IndexIDMap2_own_fields(m), own);
        } else {
            FXT_OK(faiss_IndexIDMap_new(&m, sub));
            faiss_IndexIDMap_set_own_fields(m, own);
            cr_assert_eq(faiss_IndexIDMap_own_fields(m), own);
        }
        FXT_OK(faiss_Index_add_with_ids(m, BIG_N, x, ids));
        size_t full = heap_used();
        faiss_Index_free(m);
        size_t after_map = heap_used();
        if (!own) {
            /* the vectors are still there and usable */
            cr_assert_eq(faiss_Index_ntotal(sub), BIG_N);
            float D;
            idx_t I;
            FXT_OK(faiss_Index_search(sub, 1, x + 77 * BIG_D, 1, &D, &I));
            cr_assert_eq(I, 77);
            faiss_IndexFlatL2_free(sub);
        }
        size_t after_all = heap_used();
#ifndef FXT_ASAN
        cr_assert_geq(full, base + BIG_BYTES, "the vectors were not counted");
        if (own)
            cr_assert_leq(after_map, base + SLACK,
                          "own_fields=1: freeing the map kept %zu bytes",
                          after_map - base);
        else
            cr_assert_geq(after_map, base + BIG_BYTES,
                          "own_fields=0: freeing the map freed the sub-index");
        cr_assert_leq(after_all, base + SLACK, "leak of %zu bytes",
                      after_all - base);
#else
        (void)base, (void)full, (void)after_map, (void)after_all;
#endif
    }
    free(x);
    free(ids);
}

Test(meta, idmap_own_fields_frees_sub_index) { check_idmap_ownership(0); }
Test(meta, idmap2_own_fields_frees_sub_index) { check_idmap_ownership(1); }

/* ---- IndexIDMap2 ------------------------------------------------------ */

Test(meta, idmap2_reconstruct_by_external_id) {
    const int d = 8;
    const idx_t nb = 400;
    float* xb = fxt_uniform(nb, d, 4);
    idx_t* ids = seq_ids(nb, 1000, 7); /* 1000, 1007, ... */
    FaissIndexFlatL2* sub = NULL;
    FaissIndexIDMap2* m = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&sub, d));
    FXT_OK(faiss_IndexIDMap2_new(&m, sub));
    faiss_IndexIDMap2_set_own_fields(m, 1);
    cr_assert_eq(faiss_IndexIDMap2_sub_index(m), sub);
    FXT_OK(faiss_Index_add_with_ids(m, nb, xb, ids));

    idx_t* map = NULL;
    size_t size = 0;
    faiss_IndexIDMap2_id_map(m, &map, &size);
    cr_assert_eq(size, (size_t)nb);
    FXT_SAME(map, ids, nb * sizeof(idx_t));

    float v[8];
    for (idx_t i = 0; i < nb; i += 37) {
        FXT_OK(faiss_Index_reconstruct(m, ids[i], v));
        FXT_SAME(v, xb + i * d, sizeof v);
    }
    /* positions are not ids */
    FXT_ERR(faiss_Index_reconstruct(m, 3, v), "");
    FXT_ERR(faiss_Index_reconstruct(m, -1, v), "");

    /* rebuilding the reverse map keeps lookups valid */
    FXT_OK(faiss_IndexIDMap2_construct_rev_map(m));
    FXT_OK(faiss_Index_reconstruct(m, ids[nb - 1], v));
    FXT_SAME(v, xb + (nb - 1) * d, sizeof v);

    /* after removal the id is gone, the others still resolve */
    FaissIDSelectorRange* sel = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&sel, ids[10], ids[20]));
    size_t removed = 0;
    FXT_OK(faiss_Index_remove_ids(m, (FaissIDSelector*)sel, &removed));
    cr_assert_eq(removed, 10);
    cr_assert_eq(faiss_Index_ntotal(m), nb - 10);
    FXT_ERR(faiss_Index_reconstruct(m, ids[15], v), "");
    FXT_OK(faiss_Index_reconstruct(m, ids[25], v));
    FXT_SAME(v, xb + 25 * d, sizeof v);
    FXT_OK(faiss_Index_reconstruct(m, ids[5], v));
    FXT_SAME(v, xb + 5 * d, sizeof v);
    faiss_IDSelector_free((FaissIDSelector*)sel);

    /* a plain IDMap cannot reconstruct by id */
    FaissIndexFlatL2* sub1 = NULL;
    FaissIndexIDMap* m1 = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&sub1, d));
    FXT_OK(faiss_IndexIDMap_new(&m1, sub1));
    faiss_IndexIDMap_set_own_fields(m1, 1);
    FXT_OK(faiss_Index_add_with_ids(m1, nb, xb, ids));
    FXT_ERR(faiss_Index_reconstruct(m1, ids[0], v), "reconstruct");
    faiss_Index_free(m1);

    faiss_Index_free(m);
    free(xb), free(ids);
}

Test(meta, idmap2_search_matches_cpp) {
    const int d = 16;
    const idx_t nb = 1000, nq = 10, k = 5;
    float* xb = fxt_uniform(nb, d, 5);
    float* xq = fxt_uniform(nq, d, 6);
    idx_t* ids = seq_ids(nb, -500, 3); /* negative ids are ids too */
    FaissIndexFlatIP* sub = NULL;
    FaissIndexIDMap2* m = NULL;
    FXT_OK(faiss_IndexFlatIP_new_with(&sub, d));
    FXT_OK(faiss_IndexIDMap2_new(&m, sub));
    faiss_IndexIDMap2_set_own_fields(m, 1);
    FXT_OK(faiss_Index_add_with_ids(m, nb, xb, ids));
    float D[50], Dr[50];
    idx_t I[50], Ir[50];
    FXT_OK(faiss_Index_search(m, nq, xq, k, D, I));
    ORCM(oracle_factory_search("IDMap2,Flat", d, METRIC_INNER_PRODUCT, 0,
                               NULL, nb, xb, ids, NULL, nq, xq, k, Dr, Ir));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    faiss_Index_free(m);
    free(xb), free(xq), free(ids);
}

/* ---- IndexShards ------------------------------------------------------ */

static FaissIndex* flat(int d, int metric) {
    FaissIndexFlat* f = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&f, d, metric));
    return f;
}

Test(meta, shards_defaults_and_options) {
    FaissIndexShards* s = NULL;
    FXT_OK(faiss_IndexShards_new(&s, 12));
    cr_assert_eq(faiss_Index_d(s), 12);
    cr_assert_eq(faiss_Index_ntotal(s), 0);
    cr_assert_eq(faiss_IndexShards_own_fields(s), 0);
    cr_assert_eq(faiss_IndexShards_successive_ids(s), 1);
    faiss_IndexShards_set_successive_ids(s, 0);
    cr_assert_eq(faiss_IndexShards_successive_ids(s), 0);
    faiss_IndexShards_set_own_fields(s, 1);
    cr_assert_eq(faiss_IndexShards_own_fields(s), 1);
    faiss_IndexShards_free(s);

    FXT_OK(faiss_IndexShards_new_with_options(&s, 5, 1, 0));
    cr_assert_eq(faiss_Index_d(s), 5);
    cr_assert_eq(faiss_IndexShards_successive_ids(s), 0);
    faiss_IndexShards_free(s);

    FXT_ERR(faiss_IndexShards_new(&s, 0), "d");
    FXT_ERR(faiss_IndexShards_new(&s, -3), "d");
    FXT_ERR(faiss_IndexShards_new(NULL, 4), "NULL");
    faiss_IndexShards_free(NULL);
}

static void check_shards_prefilled(int metric, int threaded, int successive) {
    const int d = 16, ns = 3;
    const idx_t sizes[3] = {700, 500, 800}, nb = 2000, nq = 25, k = 10;
    float* xb = fxt_clustered(nb, d, 30, 0.05f, 7);
    float* xq = fxt_clustered(nq, d, 30, 0.05f, 8);
    FaissIndexShards* s = NULL;
    FXT_OK(faiss_IndexShards_new_with_options(&s, d, threaded, successive));
    FaissIndex* c[3];
    const float* p = xb;
    for (int i = 0; i < ns; i++) {
        c[i] = flat(d, metric);
        FXT_OK(faiss_Index_add(c[i], sizes[i], p));
        p += sizes[i] * d;
        FXT_OK(faiss_IndexShards_add_shard(s, c[i]));
        cr_assert_eq(faiss_IndexShards_at(s, i), c[i]);
    }
    cr_assert_eq(faiss_Index_ntotal(s), nb);
    cr_assert_eq(faiss_Index_metric_type(s), metric);
    float D[25 * 10], Dr[25 * 10];
    idx_t I[25 * 10], Ir[25 * 10];
    FXT_OK(faiss_Index_search(s, nq, xq, k, D, I));
    ORCM(oracle_shards_prefilled_search("Flat", d, metric, ns, sizes, xb,
                                        threaded, successive, nq, xq, k, Dr,
                                        Ir));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    if (successive) {
        /* successive ids over pre-filled shards: same as one flat index
         * (distances to rounding: BLAS blocks differ with the sizes) */
        ORCM(oracle_factory_search("Flat", d, metric, 0, NULL, nb, xb, NULL,
                                   NULL, nq, xq, k, Dr, Ir));
        for (idx_t i = 0; i < nq * k; i++) {
            cr_assert_eq(I[i], Ir[i]);
            cr_assert(fabsf(D[i] - Dr[i]) <= 1e-5f * (1 + fabsf(Dr[i])));
        }
    } else {
        for (idx_t i = 0; i < nq * k; i++)
            cr_assert(I[i] >= 0 && I[i] < 800, "label %lld is not local",
                      (long long)I[i]);
    }
    faiss_IndexShards_free(s);
    for (int i = 0; i < ns; i++) faiss_Index_free(c[i]);
    free(xb), free(xq);
}

Test(meta, shards_prefilled_l2) { check_shards_prefilled(METRIC_L2, 0, 1); }
Test(meta, shards_prefilled_ip_threaded) {
    check_shards_prefilled(METRIC_INNER_PRODUCT, 1, 1);
}
Test(meta, shards_prefilled_local_ids) {
    check_shards_prefilled(METRIC_L2, 0, 0);
}
Test(meta, shards_prefilled_local_ids_threaded) {
    check_shards_prefilled(METRIC_L2, 1, 0);
}

/* An empty shard holds nothing: the answer is that of the other shards,
 * also for 20+ queries (where faiss 1.7.3's empty IndexFlat leaves its
 * output unwritten and IndexShards would merge zeros as hits). */
static void check_shards_with_empty(int successive, int threaded) {
    const int d = 16;
    const idx_t sizes[2] = {600, 400}, nb = 1000, nq = 25, k = 5;
    float* xb = fxt_uniform(nb, d, 17);
    float* xq = fxt_uniform(nq, d, 18);
    FaissIndexShards* s = NULL;
    FXT_OK(faiss_IndexShards_new_with_options(&s, d, threaded, successive));
    faiss_IndexShards_set_own_fields(s, 1);
    FaissIndex* a = flat(d, METRIC_L2);
    FaissIndex* b = flat(d, METRIC_L2);
    FXT_OK(faiss_Index_add(a, sizes[0], xb));
    FXT_OK(faiss_Index_add(b, sizes[1], xb + sizes[0] * d));
    FXT_OK(faiss_IndexShards_add_shard(s, flat(d, METRIC_L2))); /* empty */
    FXT_OK(faiss_IndexShards_add_shard(s, a));
    FXT_OK(faiss_IndexShards_add_shard(s, flat(d, METRIC_L2))); /* empty */
    FXT_OK(faiss_IndexShards_add_shard(s, b));
    cr_assert_eq(faiss_Index_ntotal(s), nb);
    float D[25 * 5], Dr[25 * 5];
    idx_t I[25 * 5], Ir[25 * 5];
    FXT_OK(faiss_Index_search(s, nq, xq, k, D, I));
    ORCM(oracle_shards_prefilled_search("Flat", d, METRIC_L2, 2, sizes, xb, 0,
                                        successive, nq, xq, k, Dr, Ir));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    for (idx_t i = 0; i < nq * k; i++) cr_assert_gt(D[i], 0.0f);
    faiss_IndexShards_free(s);
    free(xb), free(xq);
}

Test(meta, shards_with_empty_shards) { check_shards_with_empty(1, 0); }
Test(meta, shards_with_empty_shards_local_ids_threaded) {
    check_shards_with_empty(0, 1);
}

/* Children filled through their own handles after they were attached: the
 * composite's own ntotal (faiss updates it only when children are added
 * through it) still says 0, but faiss searches the children all the same,
 * and so must the library. */
Test(meta, shards_and_replicas_filled_after_attaching) {
    const int d = 16;
    const idx_t sizes[2] = {300, 200}, nb = 500, nq = 22, k = 5;
    float* xb = fxt_uniform(nb, d, 27);
    float* xq = fxt_uniform(nq, d, 28);
    FaissIndexShards* s = NULL;
    FaissIndexReplicas* r = NULL;
    FXT_OK(faiss_IndexShards_new(&s, d));
    FXT_OK(faiss_IndexReplicas_new(&r, d));
    FaissIndex *a = flat(d, METRIC_L2), *b = flat(d, METRIC_L2),
               *c = flat(d, METRIC_L2);
    FXT_OK(faiss_IndexShards_add_shard(s, a));
    FXT_OK(faiss_IndexShards_add_shard(s, b));
    FXT_OK(faiss_IndexReplicas_add_replica(r, c));
    FXT_OK(faiss_Index_add(a, sizes[0], xb));
    FXT_OK(faiss_Index_add(b, sizes[1], xb + sizes[0] * d));
    FXT_OK(faiss_Index_add(c, nb, xb));
    float D[22 * 5], Dr[22 * 5];
    idx_t I[22 * 5], Ir[22 * 5];
    FXT_OK(faiss_Index_search(s, nq, xq, k, D, I));
    ORCM(oracle_shards_prefilled_search("Flat", d, METRIC_L2, 2, sizes, xb, 0,
                                        1, nq, xq, k, Dr, Ir));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    FXT_OK(faiss_Index_search(r, nq, xq, k, D, I));
    FXT_OK(faiss_Index_search(c, nq, xq, k, Dr, Ir));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    faiss_IndexShards_free(s);
    faiss_IndexReplicas_free(r);
    faiss_Index_free(a);
    faiss_Index_free(b);
    faiss_Index_free(c);
    free(xb), free(xq);
}

Test(meta, shards_add_distributes) {
    const int d = 16, ns = 3;
    const idx_t nb = 1000, nq = 20, k = 8;
    float* xb = fxt_uniform(nb, d, 9);
    float* xq = fxt_uniform(nq, d, 10);
    FaissIndexShards* s = NULL;
    FXT_OK(faiss_IndexShards_new(&s, d));
    faiss_IndexShards_set_own_fields(s, 1);
    for (int i = 0; i < ns; i++)
        FXT_OK(faiss_IndexShards_add_shard(s, flat(d, METRIC_L2)));
    FXT_OK(faiss_Index_add(s, nb, xb));
    cr_assert_eq(faiss_Index_ntotal(s), nb);
    idx_t ont[3];
    float D[20 * 8], Dr[20 * 8];
    idx_t I[20 * 8], Ir[20 * 8];
    ORCM(oracle_shards_add_search("Flat", d, METRIC_L2, ns, 0, 1, nb, xb,
                                  NULL, ont, nq, xq, k, Dr, Ir));
    idx_t sum = 0;
    for (int i = 0; i < ns; i++) {
        idx_t nt = faiss_Index_ntotal(faiss_IndexShards_at(s, i));
        cr_assert_eq(nt, ont[i], "shard %d holds %lld, C++ %lld", i,
                     (long long)nt, (long long)ont[i]);
        cr_assert_gt(nt, 0);
        sum += nt;
    }
    cr_assert_eq(sum, nb);
    FXT_OK(faiss_Index_search(s, nq, xq, k, D, I));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    faiss_IndexShards_free(s); /* own_fields: frees the shards */
    free(xb), free(xq);
}

Test(meta, shards_add_with_ids_over_idmaps) {
    const int d = 8, ns = 4;
    const idx_t nb = 800, nq = 15, k = 6;
    float* xb = fxt_uniform(nb, d, 11);
    float* xq = fxt_uniform(nq, d, 12);
    idx_t* ids = seq_ids(nb, 90000, -11);
    FaissIndexShards* s = NULL;
    FXT_OK(faiss_IndexShards_new_with_options(&s, d, 0, 0));
    faiss_IndexShards_set_own_fields(s, 1);
    for (int i = 0; i < ns; i++) {
        FaissIndexIDMap* m = NULL;
        FXT_OK(faiss_IndexIDMap_new(&m, flat(d, METRIC_L2)));
        faiss_IndexIDMap_set_own_fields(m, 1);
        FXT_OK(faiss_IndexShards_add_shard(s, m));
    }
    FXT_OK(faiss_Index_add_with_ids(s, nb, xb, ids));
    cr_assert_eq(faiss_Index_ntotal(s), nb);
    idx_t ont[4];
    float D[15 * 6], Dr[15 * 6];
    idx_t I[15 * 6], Ir[15 * 6];
    ORCM(oracle_shards_add_search("IDMap,Flat", d, METRIC_L2, ns, 0, 0, nb,
                                  xb, ids, ont, nq, xq, k, Dr, Ir));
    for (int i = 0; i < ns; i++)
        cr_assert_eq(faiss_Index_ntotal(faiss_IndexShards_at(s, i)), ont[i]);
    FXT_OK(faiss_Index_search(s, nq, xq, k, D, I));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    /* the ids went through: same answer as one IDMap over everything */
    ORCM(oracle_factory_search("IDMap,Flat", d, METRIC_L2, 0, NULL, nb, xb,
                               ids, NULL, nq, xq, k, Dr, Ir));
    FXT_SAME(D, Dr, sizeof D);
    for (idx_t i = 0; i < nq * k; i++) cr_assert_eq(I[i], Ir[i]);
    /* successive ids with explicit ids is a contradiction faiss refuses */
    faiss_IndexShards_set_successive_ids(s, 1);
    FXT_ERR(faiss_Index_add_with_ids(s, nb, xb, ids), "");
    faiss_IndexShards_free(s);
    free(xb), free(xq), free(ids);
}

Test(meta, shards_remove_and_at) {
    const int d = 4;
    float* x = fxt_uniform(30, d, 13);
    FaissIndexShards* s = NULL;
    FXT_OK(faiss_IndexShards_new(&s, d));
    FaissIndex *a = flat(d, METRIC_L2), *b = flat(d, METRIC_L2),
               *c = flat(d, METRIC_L2);
    FXT_OK(faiss_Index_add(a, 10, x));
    FXT_OK(faiss_Index_add(b, 20, x));
    FXT_OK(faiss_IndexShards_add_shard(s, a));
    FXT_OK(faiss_IndexShards_add_shard(s, b));
    cr_assert_eq(faiss_Index_ntotal(s), 30);

    /* refused: duplicate, self, other dimension, other metric, NULL */
    FXT_ERR(faiss_IndexShards_add_shard(s, a), "already");
    FXT_ERR(faiss_IndexShards_add_shard(s, s), "itself");
    FaissIndex* d8 = flat(8, METRIC_L2);
    FXT_ERR(faiss_IndexShards_add_shard(s, d8), "dimension");
    FaissIndex* ip = flat(d, METRIC_INNER_PRODUCT);
    FXT_ERR(faiss_IndexShards_add_shard(s, ip), "metric");
    FXT_ERR(faiss_IndexShards_add_shard(s, NULL), "NULL");
    FXT_ERR(faiss_IndexShards_add_shard(NULL, c), "NULL");
    FXT_ERR(faiss_IndexShards_add_shard(a, c), "IndexShards");
    cr_assert_eq(faiss_Index_ntotal(s), 30, "a failed add changes nothing");

    /* at(): in range only */
    cr_assert_eq(faiss_IndexShards_at(s, 0), a);
    cr_assert_eq(faiss_IndexShards_at(s, 1), b);
    cr_assert_null(faiss_IndexShards_at(s, 2));
    cr_assert(strstr(faiss_get_last_error(), "outside"));
    cr_assert_null(faiss_IndexShards_at(s, -1));
    cr_assert_null(faiss_IndexShards_at(NULL, 0));
    cr_assert_null(faiss_IndexShards_at(a, 0));

    /* remove: a non-member is an error; a member goes, ntotal follows */
    FXT_ERR(faiss_IndexShards_remove_shard(s, c), "not found");
    FXT_ERR(faiss_IndexShards_remove_shard(s, NULL), "NULL");
    FXT_OK(faiss_IndexShards_remove_shard(s, a));
    cr_assert_eq(faiss_Index_ntotal(s), 20);
    cr_assert_eq(faiss_IndexShards_at(s, 0), b);
    cr_assert_null(faiss_IndexShards_at(s, 1));
    /* not owned: a is still ours and intact */
    cr_assert_eq(faiss_Index_ntotal(a), 10);
    FXT_OK(faiss_IndexShards_add_shard(s, c));
    cr_assert_eq(faiss_IndexShards_at(s, 1), c);
    cr_assert_eq(faiss_Index_ntotal(s), 20);
    faiss_IndexShards_free(s);
    faiss_Index_free(a), faiss_Index_free(b), faiss_Index_free(c);
    faiss_Index_free(d8), faiss_Index_free(ip);
    free(x);
}

Test(meta, shards_own_fields_frees_children) {
    FXT_LOCAL_ONLY("measures this process's heap");
    float* x = fxt_uniform(BIG_N, BIG_D, 14);
    for (int own = 0; own <= 1; own++) {
        size_t base = heap_used();
        FaissIndexShards* s = NULL;
        FXT_OK(faiss_IndexShards_new(&s, BIG_D));
        faiss_IndexShards_set_own_fields(s, own);
        FaissIndex* a = flat(BIG_D, METRIC_L2);
        FaissIndex* b = flat(BIG_D, METRIC_L2);
        FXT_OK(faiss_IndexShards_add_shard(s, a));
        FXT_OK(faiss_IndexShards_add_shard(s, b));
        FXT_OK(faiss_Index_add(s, BIG_N, x));
        size_t full = heap_used();
        faiss_IndexShards_free(s);
        size_t after = heap_used();
        if (!own) {
            cr_assert_eq(faiss_Index_ntotal(a) + faiss_Index_ntotal(b), BIG_N);
            faiss_Index_free(a);
            faiss_Index_free(b);
        }
        size_t after_all = heap_used();
#ifndef FXT_ASAN
        cr_assert_geq(full, base + BIG_BYTES);
        if (own)
            cr_assert_leq(after, base + SLACK, "kept %zu bytes", after - base);
        else
            cr_assert_geq(after, base + BIG_BYTES);
        cr_assert_leq(after_all, base + SLACK);
#else
        (void)base, (void)full, (void)after, (void)after_all;
#endif
    }
    free(x);
}

/* ---- IndexReplicas ---------------------------------------------------- */

Test(meta, replicas_defaults) {
    FaissIndexReplicas* r = NULL;
    FXT_OK(faiss_IndexReplicas_new(&r, 10));
    cr_assert_eq(faiss_Index_d(r), 10);
    cr_assert_eq(faiss_IndexReplicas_own_fields(r), 0);
    faiss_IndexReplicas_set_own_fields(r, 1);
    cr_assert_eq(faiss_IndexReplicas_own_fields(r), 1);
    faiss_IndexReplicas_free(r);
    FXT_OK(faiss_IndexReplicas_new_with_options(&r, 3, 0));
    cr_assert_eq(faiss_Index_d(r), 3);
    faiss_IndexReplicas_free(r);
    FXT_ERR(faiss_IndexReplicas_new(&r, 0), "d");
    FXT_ERR(faiss_IndexReplicas_new(NULL, 3), "NULL");
    faiss_IndexReplicas_free(NULL);
    /* the shards accessors refuse replicas and vice versa */
    FaissIndexShards* s = NULL;
    FXT_OK(faiss_IndexShards_new(&s, 3));
    FXT_OK(faiss_IndexReplicas_new(&r, 3));
    cr_assert_eq(faiss_IndexShards_own_fields(r), 0);
    cr_assert(strstr(faiss_get_last_error(), "IndexShards"));
    cr_assert_eq(faiss_IndexReplicas_own_fields(s), 0);
    cr_assert(strstr(faiss_get_last_error(), "IndexReplicas"));
    FaissIndex* f = flat(3, METRIC_L2);
    FXT_ERR(faiss_IndexReplicas_add_replica(s, f), "IndexReplicas");
    FXT_ERR(faiss_IndexShards_add_shard(r, f), "IndexShards");
    faiss_Index_free(f);
    faiss_IndexShards_free(s);
    faiss_IndexReplicas_free(r);
}

static void check_replicas(int metric, int threaded) {
    const int d = 16, nr = 3;
    const idx_t nb = 1200, nq = 31, k = 7;
    float* xb = fxt_uniform(nb, d, 15);
    float* xq = fxt_uniform(nq, d, 16);
    FaissIndexReplicas* r = NULL;
    FXT_OK(faiss_IndexReplicas_new_with_options(&r, d, threaded));
    FaissIndex* c[3];
    for (int i = 0; i < nr; i++) {
        c[i] = flat(d, metric);
        FXT_OK(faiss_IndexReplicas_add_replica(r, c[i]));
        cr_assert_eq(faiss_IndexReplicas_at(r, i), c[i]);
    }
    FXT_OK(faiss_Index_add(r, nb, xb));
    cr_assert_eq(faiss_Index_ntotal(r), nb);
    for (int i = 0; i < nr; i++)
        cr_assert_eq(faiss_Index_ntotal(c[i]), nb, "every replica has all");
    float D[31 * 7], Dr[31 * 7];
    idx_t I[31 * 7], Ir[31 * 7];
    FXT_OK(faiss_Index_search(r, nq, xq, k, D, I));
    ORCM(oracle_replicas_search(d, metric, nr, threaded, nb, xb, nq, xq, k, Dr,
                                Ir));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    /* replicas split the queries: the answer is one flat index's (the
     * distances to rounding: below 20 queries faiss skips BLAS) */
    ORCM(oracle_factory_search("Flat", d, metric, 0, NULL, nb, xb, NULL, NULL,
                               nq, xq, k, Dr, Ir));
    FXT_SAME(I, Ir, sizeof I);
    for (idx_t i = 0; i < nq * k; i++)
        cr_assert(fabsf(D[i] - Dr[i]) <= 1e-5f * (1 + fabsf(Dr[i])));

    /* remove one: still the same answer from the other two */
    float D3[31 * 7];
    memcpy(D3, D, sizeof D);
    FXT_OK(faiss_IndexReplicas_remove_replica(r, c[1]));
    cr_assert_eq(faiss_IndexReplicas_at(r, 1), c[2]);
    cr_assert_null(faiss_IndexReplicas_at(r, 2));
    FXT_OK(faiss_Index_search(r, nq, xq, k, D, I));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, D3, sizeof D);
    FXT_ERR(faiss_IndexReplicas_remove_replica(r, c[1]), "not found");
    FXT_ERR(faiss_IndexReplicas_add_replica(r, c[0]), "already");
    FXT_ERR(faiss_IndexReplicas_add_replica(r, r), "itself");
    FXT_ERR(faiss_IndexReplicas_add_replica(r, NULL), "NULL");
    faiss_IndexReplicas_free(r);
    for (int i = 0; i < nr; i++) faiss_Index_free(c[i]);
    free(xb), free(xq);
}

Test(meta, replicas_l2) { check_replicas(METRIC_L2, 0); }
Test(meta, replicas_ip_threaded) {
    check_replicas(METRIC_INNER_PRODUCT, 1);
}
