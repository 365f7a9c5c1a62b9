/* test_clustering.c -- Clustering_c.h against faiss::Clustering and
 * faiss::kmeans_clustering (bit-identical centroids and objectives). */
#include "common.h"
#include "oracle_clustering.h"

#include <math.h>
#include <stdlib.h>

#define ORC(call)                                                          \
    cr_assert_eq((call), 0, "oracle %s failed: %s", #call,                 \
                 oracle_clustering_error())

static void same_params(const FaissClusteringParameters* a,
                        const FaissClusteringParameters* b) {
    cr_assert_eq(a->niter, b->niter);
    cr_assert_eq(a->nredo, b->nredo);
    cr_assert_eq(a->verbose, b->verbose);
    cr_assert_eq(a->spherical, b->spherical);
    cr_assert_eq(a->int_centroids, b->int_centroids);
    cr_assert_eq(a->update_index, b->update_index);
    cr_assert_eq(a->frozen_centroids, b->frozen_centroids);
    cr_assert_eq(a->min_points_per_centroid, b->min_points_per_centroid);
    cr_assert_eq(a->max_points_per_centroid, b->max_points_per_centroid);
    cr_assert_eq(a->seed, b->seed);
    cr_assert_eq(a->decode_block_size, b->decode_block_size);
}

/* The getters of a Clustering object reflect cp, d and k. */
static void getters_are(const FaissClustering* c, int d, int k,
                        const FaissClusteringParameters* cp) {
    FaissClusteringParameters g;
    g.niter = faiss_Clustering_niter(c);
    g.nredo = faiss_Clustering_nredo(c);
    g.verbose = faiss_Clustering_verbose(c);
    g.spherical = faiss_Clustering_spherical(c);
    g.int_centroids = faiss_Clustering_int_centroids(c);
    g.update_index = faiss_Clustering_update_index(c);
    g.frozen_centroids = faiss_Clustering_frozen_centroids(c);
    g.min_points_per_centroid = faiss_Clustering_min_points_per_centroid(c);
    g.max_points_per_centroid = faiss_Clustering_max_points_per_centroid(c);
    g.seed = faiss_Clustering_seed(c);
    g.decode_block_size = faiss_Clustering_decode_block_size(c);
    same_params(&g, cp);
    cr_assert_eq(faiss_Clustering_d(c), (size_t)d);
    cr_assert_eq(faiss_Clustering_k(c), (size_t)k);
}

Test(clustering, params_init_matches_cpp) {
    FaissClusteringParameters cp, ref;
    memset(&cp, 0x5a, sizeof cp);
    faiss_ClusteringParameters_init(&cp);
    ORC(oracle_cp_defaults(&ref));
    same_params(&cp, &ref);
    faiss_ClusteringParameters_init(NULL);
    cr_assert(strstr(faiss_get_last_error(), "NULL"));
}

Test(clustering, new_and_getters) {
    FaissClusteringParameters ref;
    ORC(oracle_cp_defaults(&ref));
    FaissClustering* c = NULL;
    FXT_OK(faiss_Clustering_new(&c, 12, 5));
    cr_assert_not_null(c);
    getters_are(c, 12, 5, &ref);
    float* cent = (float*)1;
    size_t n = 99;
    faiss_Clustering_centroids(c, &cent, &n);
    cr_assert_eq(n, 0, "no centroids before training");
    FaissClusteringIterationStats* st = (FaissClusteringIterationStats*)1;
    faiss_Clustering_iteration_stats(c, &st, &n);
    cr_assert_eq(n, 0);
    faiss_Clustering_free(c);

    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    cp.niter = 7;
    cp.nredo = 3;
    cp.verbose = 0;
    cp.spherical = 1;
    cp.int_centroids = 1;
    cp.update_index = 1;
    cp.frozen_centroids = 1;
    cp.min_points_per_centroid = 3;
    cp.max_points_per_centroid = 77;
    cp.seed = 4321;
    cp.decode_block_size = 999;
    FXT_OK(faiss_Clustering_new_with_params(&c, 9, 4, &cp));
    getters_are(c, 9, 4, &cp);
    faiss_Clustering_free(c);
    faiss_Clustering_free(NULL);
}

Test(clustering, constructor_errors) {
    FaissClustering* c = NULL;
    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    FXT_ERR(faiss_Clustering_new(NULL, 8, 4), "NULL");
    FXT_ERR(faiss_Clustering_new(&c, 0, 4), "dimension");
    FXT_ERR(faiss_Clustering_new(&c, -3, 4), "dimension");
    FXT_ERR(faiss_Clustering_new(&c, 8, 0), "k must be");
    FXT_ERR(faiss_Clustering_new_with_params(&c, 8, 4, NULL), "NULL");
    cp.niter = 0;
    FXT_ERR(faiss_Clustering_new_with_params(&c, 8, 4, &cp), "niter");
    cp.niter = 10;
    cp.nredo = 0;
    FXT_ERR(faiss_Clustering_new_with_params(&c, 8, 4, &cp), "nredo");
    cr_assert_null(c);
    /* getters on NULL: 0 and an error */
    cr_assert_eq(faiss_Clustering_niter(NULL), 0);
    cr_assert(strstr(faiss_get_last_error(), "NULL"));
    cr_assert_eq(faiss_Clustering_k(NULL), 0);
    cr_assert_eq(faiss_ClusteringIterationStats_obj(NULL), 0.0f);
    cr_assert(strstr(faiss_get_last_error(), "NULL"));
    cr_assert_eq(faiss_ClusteringIterationStats_nsplit(NULL), 0);
    float* cent = (float*)1;
    size_t n = 7;
    faiss_Clustering_centroids(NULL, &cent, &n);
    cr_assert_null(cent);
    cr_assert_eq(n, 0);
    FaissClusteringIterationStats* st = (FaissClusteringIterationStats*)1;
    faiss_Clustering_iteration_stats(NULL, &st, &n);
    cr_assert_null(st);
    cr_assert_eq(n, 0);
}

/* Trains through the C API and compares everything deterministic with
 * faiss::Clustering trained on the same data with the same parameters. */
static void train_matches(int d, int k, idx_t n,
                          const FaissClusteringParameters* cp, int ip,
                          uint64_t seed) {
    float* x = fxt_clustered((size_t)n, d, k, 0.05f, seed);
    FaissClustering* c = NULL;
    FXT_OK(faiss_Clustering_new_with_params(&c, d, k, cp));
    FaissIndex* ix = NULL;
    if (ip)
        FXT_OK(faiss_IndexFlatIP_new_with(&ix, d));
    else
        FXT_OK(faiss_IndexFlatL2_new_with(&ix, d));
    FXT_OK(faiss_Clustering_train(c, n, x, ix));

    float* ref = malloc((size_t)k * d * sizeof(float));
    OracleIterStats rst[64];
    size_t rn = 0;
    idx_t rtotal = -1;
    ORC(oracle_clustering_train(d, k, cp, ip, n, x, ref, &rn, rst, 64,
                                &rtotal));

    float* cent = NULL;
    size_t size = 0;
    faiss_Clustering_centroids(c, &cent, &size);
    cr_assert_eq(size, (size_t)k * d);
    FXT_SAME(cent, ref, size * sizeof(float));
    /* the index holds the final centroids, as in C++ */
    cr_assert_eq(faiss_Index_ntotal(ix), rtotal);
    cr_assert_eq(rtotal, k);

    FaissClusteringIterationStats* st = NULL;
    size_t ns = 0;
    faiss_Clustering_iteration_stats(c, &st, &ns);
    cr_assert_eq(ns, rn);
    cr_assert_geq(ns, (size_t)cp->niter);
    cr_assert_not_null(st);
    /* the C API reaches the first element only (opaque handle) */
    cr_assert_eq(faiss_ClusteringIterationStats_obj(st), rst[0].obj);
    cr_assert_eq(faiss_ClusteringIterationStats_imbalance_factor(st),
                 rst[0].imbalance_factor);
    cr_assert_eq(faiss_ClusteringIterationStats_nsplit(st), rst[0].nsplit);
    cr_assert_geq(faiss_ClusteringIterationStats_time(st), 0.0);
    cr_assert_geq(faiss_ClusteringIterationStats_time_search(st), 0.0);
    cr_assert_geq(faiss_ClusteringIterationStats_imbalance_factor(st), 1.0);
    if (!ip && rn > 1 && rn <= 64)
        cr_assert_leq(rst[rn - 1].obj, rst[0].obj,
                      "k-means objective grew: %g -> %g", rst[0].obj,
                      rst[rn - 1].obj);

    free(ref);
    faiss_Index_free(ix);
    faiss_Clustering_free(c);
    free(x);
}

Test(clustering, train_l2_matches_cpp) {
    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    cp.niter = 12;
    cp.seed = 1234;
    train_matches(16, 8, 1000, &cp, 0, 1);
}

Test(clustering, train_stats_count_is_niter) {
    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    cp.niter = 9;
    cp.seed = 77;
    float* x = fxt_clustered(800, 8, 6, 0.1f, 11);
    FaissClustering* c = NULL;
    FXT_OK(faiss_Clustering_new_with_params(&c, 8, 6, &cp));
    FaissIndex* ix = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&ix, 8));
    FXT_OK(faiss_Clustering_train(c, 800, x, ix));
    FaissClusteringIterationStats* st = NULL;
    size_t ns = 0;
    faiss_Clustering_iteration_stats(c, &st, &ns);
    cr_assert_eq(ns, 9);
    cr_assert_gt(faiss_ClusteringIterationStats_obj(st), 0.0f);
    faiss_Index_free(ix);
    faiss_Clustering_free(c);
    free(x);
}

Test(clustering, train_redo_spherical_ip_matches_cpp) {
    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    cp.niter = 6;
    cp.nredo = 3;
    cp.spherical = 1;
    cp.seed = 99;
    train_matches(12, 5, 600, &cp, 1, 2);
}

Test(clustering, train_subsampled_matches_cpp) {
    /* n > k * max_points_per_centroid: faiss samples with the seed */
    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    cp.niter = 5;
    cp.max_points_per_centroid = 20;
    cp.min_points_per_centroid = 2;
    cp.seed = 5;
    train_matches(8, 10, 2000, &cp, 0, 3);
}

Test(clustering, train_int_centroids_matches_cpp) {
    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    cp.niter = 4;
    cp.int_centroids = 1;
    cp.update_index = 1;
    cp.seed = 8;
    /* scaled so integer rounding keeps the clusters apart */
    const int d = 6, k = 4;
    const idx_t n = 400;
    float* x = fxt_clustered((size_t)n, d, k, 0.05f, 4);
    for (idx_t i = 0; i < n * d; i++) x[i] *= 100.0f;
    FaissClustering* c = NULL;
    FXT_OK(faiss_Clustering_new_with_params(&c, d, k, &cp));
    FaissIndex* ix = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&ix, d));
    FXT_OK(faiss_Clustering_train(c, n, x, ix));
    float ref[6 * 4];
    OracleIterStats rst[8];
    size_t rn = 0;
    ORC(oracle_clustering_train(d, k, &cp, 0, n, x, ref, &rn, rst, 8, NULL));
    float* cent = NULL;
    size_t size = 0;
    faiss_Clustering_centroids(c, &cent, &size);
    cr_assert_eq(size, sizeof ref / sizeof *ref);
    FXT_SAME(cent, ref, sizeof ref);
    for (size_t i = 0; i < size; i++)
        cr_assert_eq(cent[i], rintf(cent[i]), "centroid not an integer");
    faiss_Index_free(ix);
    faiss_Clustering_free(c);
    free(x);
}

Test(clustering, train_errors) {
    const int d = 8, k = 4;
    float* x = fxt_uniform(100, d, 6);
    FaissClustering* c = NULL;
    FXT_OK(faiss_Clustering_new(&c, d, k));
    FaissIndex* ix = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&ix, d));
    FaissIndex* wrong = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&wrong, d + 1));

    FXT_ERR(faiss_Clustering_train(c, k - 1, x, ix), "at least");
    FXT_ERR(faiss_Clustering_train(c, 100, x, wrong), "dimension");
    FXT_ERR(faiss_Clustering_train(c, 100, NULL, ix), "NULL");
    FXT_ERR(faiss_Clustering_train(c, 100, x, NULL), "NULL");
    FXT_ERR(faiss_Clustering_train(NULL, 100, x, ix), "NULL");
    FXT_ERR(faiss_Clustering_train(c, -1, x, ix), "n must be");
    x[37 * d + 3] = NAN;
    FXT_ERR(faiss_Clustering_train(c, 100, x, ix), "non-finite");
    x[37 * d + 3] = INFINITY;
    FXT_ERR(faiss_Clustering_train(c, 100, x, ix), "non-finite");
    /* nothing happened */
    size_t size = 1;
    faiss_Clustering_centroids(c, NULL, &size);
    cr_assert_eq(size, 0);
    cr_assert_eq(faiss_Index_ntotal(ix), 0);

    faiss_Index_free(wrong);
    faiss_Index_free(ix);
    faiss_Clustering_free(c);
    free(x);
}

/* ---- kmeans_clustering ------------------------------------------------ */

Test(clustering, kmeans_matches_cpp) {
    const size_t d = 10, n = 1500, k = 12;
    float* x = fxt_clustered(n, (int)d, (int)k, 0.08f, 12);
    float cent[10 * 12], ref[10 * 12];
    float err = -1, rerr = -2;
    FXT_OK(faiss_kmeans_clustering(d, n, k, x, cent, &err));
    ORC(oracle_kmeans(d, n, k, x, ref, &rerr));
    FXT_SAME(cent, ref, sizeof cent);
    cr_assert(memcmp(&err, &rerr, sizeof err) == 0, "q_error %g vs C++ %g",
              err, rerr);
    cr_assert_gt(err, 0.0f);
    /* q_error is optional */
    float cent2[10 * 12];
    FXT_OK(faiss_kmeans_clustering(d, n, k, x, cent2, NULL));
    FXT_SAME(cent2, ref, sizeof cent2);
    free(x);
}

Test(clustering, kmeans_errors) {
    const size_t d = 4, n = 50;
    float* x = fxt_uniform(n, (int)d, 13);
    float cent[4 * 60];
    float err;
    FXT_ERR(faiss_kmeans_clustering(d, n, 51, x, cent, &err), "at least");
    FXT_ERR(faiss_kmeans_clustering(d, n, 0, x, cent, &err), "k must be");
    FXT_ERR(faiss_kmeans_clustering(0, n, 4, x, cent, &err), "dimension");
    FXT_ERR(faiss_kmeans_clustering(d, n, 4, NULL, cent, &err), "NULL");
    FXT_ERR(faiss_kmeans_clustering(d, n, 4, x, NULL, &err), "NULL");
    x[17] = NAN;
    FXT_ERR(faiss_kmeans_clustering(d, n, 4, x, cent, &err), "non-finite");
    free(x);
}
