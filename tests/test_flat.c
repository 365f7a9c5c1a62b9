/* test_flat.c -- IndexFlat_c.h against faiss C++. */
#include "common.h"
#include "oracle.h"
#include "oracle_flat.h"

#include <math.h>
#include <stdlib.h>

#define ORCF(call)                                                         \
    cr_assert_eq((call), 0, "oracle %s failed: %s", #call,                 \
                 oracle_flat_error())

Test(flat, l2_search_matches_cpp) {
    const int d = 32;
    const idx_t nb = 2000, nq = 50, k = 10;
    float* xb = fxt_uniform(nb, d, 1);
    float* xq = fxt_uniform(nq, d, 2);
    FaissIndexFlatL2* ix = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&ix, d));
    FXT_OK(faiss_Index_add(ix, nb, xb));
    cr_assert_eq(faiss_Index_ntotal(ix), nb);
    float D[50 * 10], Dr[50 * 10];
    idx_t I[50 * 10], Ir[50 * 10];
    FXT_OK(faiss_Index_search(ix, nq, xq, k, D, I));
    cr_assert_eq(oracle_factory_search("Flat", d, METRIC_L2, 0, NULL, nb, xb,
                                       NULL, NULL, nq, xq, k, Dr, Ir),
                 0, "%s", oracle_last_error());
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    faiss_IndexFlatL2_free(ix);
    free(xb);
    free(xq);
}

/* ---- constructors, casts, getters ------------------------------------- */


/* The default constructors give what faiss's do (note: faiss's default
 * IndexFlatIP() has metric L2 -- faithful, and harmless with d = 0). */
static void check_default(FaissIndex* ix, int which) {
    int d = -1, metric = -1;
    ORCF(oracle_flat_defaults(which, &d, &metric));
    cr_assert_eq(faiss_Index_d(ix), d);
    cr_assert_eq(faiss_Index_metric_type(ix), metric);
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    cr_assert(faiss_Index_is_trained(ix));
}

Test(flat, constructors_defaults) {
    FaissIndexFlat* f = NULL;
    FXT_OK(faiss_IndexFlat_new(&f));
    check_default(f, 0);
    cr_assert_eq(faiss_Index_d(f), 0);
    faiss_IndexFlat_free(f);

    FaissIndexFlatIP* ip = NULL;
    FXT_OK(faiss_IndexFlatIP_new(&ip));
    check_default(ip, 1);
    cr_assert_eq(faiss_IndexFlatIP_cast(ip), ip);
    faiss_IndexFlatIP_free(ip);

    FaissIndexFlatL2* l2 = NULL;
    FXT_OK(faiss_IndexFlatL2_new(&l2));
    check_default(l2, 2);
    cr_assert_eq(faiss_Index_metric_type(l2), METRIC_L2);
    faiss_IndexFlatL2_free(l2);

    FaissIndexFlat1D* f1 = NULL;
    FXT_OK(faiss_IndexFlat1D_new(&f1));
    check_default(f1, 3);
    cr_assert_eq(faiss_Index_d(f1), 1);
    faiss_IndexFlat1D_free(f1);
}

Test(flat, constructors_with_args) {
    const int metrics[] = {METRIC_L2, METRIC_INNER_PRODUCT, METRIC_L1,
                           METRIC_Linf, METRIC_Canberra};
    for (size_t i = 0; i < sizeof metrics / sizeof *metrics; i++) {
        FaissIndexFlat* f = NULL;
        FXT_OK(faiss_IndexFlat_new_with(&f, 7, metrics[i]));
        cr_assert_eq(faiss_Index_d(f), 7);
        cr_assert_eq(faiss_Index_metric_type(f), metrics[i]);
        faiss_IndexFlat_free(f);
    }
    FaissIndexFlatIP* ip = NULL;
    FXT_OK(faiss_IndexFlatIP_new_with(&ip, 9));
    cr_assert_eq(faiss_Index_d(ip), 9);
    cr_assert_eq(faiss_Index_metric_type(ip), METRIC_INNER_PRODUCT);
    faiss_IndexFlatIP_free(ip);
    FaissIndexFlatL2* l2 = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&l2, 11));
    cr_assert_eq(faiss_Index_d(l2), 11);
    cr_assert_eq(faiss_Index_metric_type(l2), METRIC_L2);
    faiss_IndexFlatL2_free(l2);
}

Test(flat, casts_follow_the_cpp_type) {
    FaissIndexFlat* f = NULL;
    FaissIndexFlatIP* ip = NULL;
    FaissIndexFlatL2* l2 = NULL;
    FaissIndexFlat1D* f1 = NULL;
    FaissIndexScalarQuantizer* sq = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&f, 8, METRIC_INNER_PRODUCT));
    FXT_OK(faiss_IndexFlatIP_new_with(&ip, 8));
    FXT_OK(faiss_IndexFlatL2_new_with(&l2, 8));
    FXT_OK(faiss_IndexFlat1D_new_with(&f1, 1));
    FXT_OK(faiss_IndexScalarQuantizer_new_with(&sq, 8, QT_8bit, METRIC_L2));

    /* every flat index is an IndexFlat, and the cast is the same handle */
    cr_assert_eq(faiss_IndexFlat_cast(f), f);
    cr_assert_eq(faiss_IndexFlat_cast(ip), ip);
    cr_assert_eq(faiss_IndexFlat_cast(l2), l2);
    cr_assert_eq(faiss_IndexFlat_cast(f1), f1);
    cr_assert_null(faiss_IndexFlat_cast(sq));
    cr_assert_null(faiss_IndexFlat_cast(NULL));

    /* the subclasses only from their own type (a plain IndexFlat with an
     * IP metric is not an IndexFlatIP in faiss) */
    cr_assert_eq(faiss_IndexFlatIP_cast(ip), ip);
    cr_assert_null(faiss_IndexFlatIP_cast(f));
    cr_assert_null(faiss_IndexFlatIP_cast(l2));
    cr_assert_null(faiss_IndexFlatIP_cast(NULL));
    cr_assert_eq(faiss_IndexFlatL2_cast(l2), l2);
    cr_assert_eq(faiss_IndexFlatL2_cast(f1), f1, "Flat1D is a FlatL2");
    cr_assert_null(faiss_IndexFlatL2_cast(ip));
    cr_assert_null(faiss_IndexFlatL2_cast(sq));
    cr_assert_eq(faiss_IndexFlat1D_cast(f1), f1);
    cr_assert_null(faiss_IndexFlat1D_cast(l2));
    cr_assert_null(faiss_IndexFlat1D_cast(NULL));
    cr_assert_null(faiss_IndexRefineFlat_cast(f));
    cr_assert_null(faiss_IndexRefineFlat_cast(NULL));

    faiss_IndexFlat_free(f);
    faiss_IndexFlatIP_free(ip);
    faiss_IndexFlatL2_free(l2);
    faiss_IndexFlat1D_free(f1);
    faiss_Index_free(sq);
    /* NULL is accepted by every destructor */
    faiss_IndexFlat_free(NULL);
    faiss_IndexFlatIP_free(NULL);
    faiss_IndexFlatL2_free(NULL);
    faiss_IndexFlat1D_free(NULL);
    faiss_IndexRefineFlat_free(NULL);
}

/* ---- xb --------------------------------------------------------------- */

Test(flat, xb_is_the_added_data) {
    FXT_LOCAL_ONLY("a remote xb is a client-side copy, not the live storage");
    const int d = 12;
    float* x = fxt_uniform(300, d, 5);
    FaissIndexFlat* f = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&f, d, METRIC_L2));
    float* p = (float*)1;
    size_t size = 99;
    faiss_IndexFlat_xb(f, &p, &size);
    cr_assert_eq(size, 0);
    FXT_OK(faiss_Index_add(f, 100, x));
    FXT_OK(faiss_Index_add(f, 200, x + 100 * d));
    faiss_IndexFlat_xb(f, &p, &size);
    cr_assert_eq(size, (size_t)300 * d);
    cr_assert_not_null(p);
    FXT_SAME(p, x, size * sizeof(float));
    /* it is the live storage: a search sees an edit through it */
    p[0] = 1000.0f;
    float D;
    idx_t I;
    float q[12];
    memcpy(q, p, sizeof q);
    FXT_OK(faiss_Index_search(f, 1, q, 1, &D, &I));
    cr_assert_eq(I, 0);
    cr_assert_eq(D, 0.0f);
    /* either out-parameter may be NULL */
    size = 0;
    faiss_IndexFlat_xb(f, NULL, &size);
    cr_assert_eq(size, (size_t)300 * d);
    p = NULL;
    faiss_IndexFlat_xb(f, &p, NULL);
    cr_assert_not_null(p);
    faiss_IndexFlat_free(f);
    free(x);
}

Test(flat, xb_of_wrong_type_is_empty_with_error) {
    FaissIndexScalarQuantizer* sq = NULL;
    FXT_OK(faiss_IndexScalarQuantizer_new_with(&sq, 8, QT_8bit, METRIC_L2));
    float* p = (float*)1;
    size_t size = 99;
    faiss_IndexFlat_xb(sq, &p, &size);
    cr_assert_null(p);
    cr_assert_eq(size, 0);
    cr_assert(faiss_get_last_error() &&
              strstr(faiss_get_last_error(), "IndexFlat"));
    p = (float*)1;
    faiss_IndexFlat_xb(NULL, &p, &size);
    cr_assert_null(p);
    faiss_Index_free(sq);
}

/* ---- compute_distance_subset ------------------------------------------ */

static void check_distance_subset(int metric) {
    const int d = 20;
    const idx_t nb = 500, n = 15, k = 7;
    float* xb = fxt_uniform(nb, d, 21);
    float* x = fxt_uniform(n, d, 22);
    idx_t labels[15 * 7];
    for (idx_t i = 0; i < n * k; i++) labels[i] = (i * 37 + 11) % nb;
    FaissIndexFlat* f = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&f, d, metric));
    FXT_OK(faiss_Index_add(f, nb, xb));
    float D[15 * 7], Do[15 * 7];
    FXT_OK(faiss_IndexFlat_compute_distance_subset(f, n, x, k, D, labels));
    ORCF(oracle_flat_distance_subset(d, metric, nb, xb, n, x, k, labels, Do));
    FXT_SAME(D, Do, sizeof D);
    /* sanity: the value is the metric between the vectors */
    for (idx_t i = 0; i < n * k; i++) {
        const float* a = x + (i / k) * d;
        const float* b = xb + labels[i] * d;
        double s = 0;
        for (int j = 0; j < d; j++)
            s += metric == METRIC_L2 ? (a[j] - b[j]) * (a[j] - b[j])
                                     : a[j] * b[j];
        cr_assert(fabs(s - D[i]) < 1e-4 * (1 + fabs(s)));
    }
    /* a label outside [0, ntotal) is refused, nothing written */
    labels[5] = nb;
    FXT_ERR(faiss_IndexFlat_compute_distance_subset(f, n, x, k, D, labels),
            "labels[5]");
    labels[5] = -1;
    FXT_ERR(faiss_IndexFlat_compute_distance_subset(f, n, x, k, D, labels),
            "labels[5]");
    faiss_IndexFlat_free(f);
    free(xb);
    free(x);
}

Test(flat, compute_distance_subset_l2) { check_distance_subset(METRIC_L2); }
Test(flat, compute_distance_subset_ip) {
    check_distance_subset(METRIC_INNER_PRODUCT);
}

Test(flat, compute_distance_subset_wrong_type) {
    FaissIndexScalarQuantizer* sq = NULL;
    FXT_OK(faiss_IndexScalarQuantizer_new_with(&sq, 8, QT_8bit, METRIC_L2));
    float x[8] = {0}, D[1];
    idx_t l[1] = {0};
    FXT_ERR(faiss_IndexFlat_compute_distance_subset(sq, 1, x, 1, D, l),
            "IndexFlat");
    FXT_ERR(faiss_IndexFlat_compute_distance_subset(NULL, 1, x, 1, D, l),
            "NULL");
    faiss_Index_free(sq);
}

/* ---- IndexFlatIP search ------------------------------------------------ */

Test(flat, ip_search_matches_cpp) {
    const int d = 32;
    const idx_t nb = 1500, nq = 30, k = 8;
    float* xb = fxt_uniform(nb, d, 31);
    float* xq = fxt_uniform(nq, d, 32);
    FaissIndexFlatIP* ip = NULL;
    FaissIndexFlat* f = NULL;
    FXT_OK(faiss_IndexFlatIP_new_with(&ip, d));
    FXT_OK(faiss_IndexFlat_new_with(&f, d, METRIC_INNER_PRODUCT));
    FXT_OK(faiss_Index_add(ip, nb, xb));
    FXT_OK(faiss_Index_add(f, nb, xb));
    float D[30 * 8], D2[30 * 8], Dr[30 * 8];
    idx_t I[30 * 8], I2[30 * 8], Ir[30 * 8];
    FXT_OK(faiss_Index_search(ip, nq, xq, k, D, I));
    FXT_OK(faiss_Index_search(f, nq, xq, k, D2, I2));
    cr_assert_eq(oracle_factory_search("Flat", d, METRIC_INNER_PRODUCT, 0,
                                       NULL, nb, xb, NULL, NULL, nq, xq, k,
                                       Dr, Ir),
                 0, "%s", oracle_last_error());
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    FXT_SAME(I2, Ir, sizeof I);
    FXT_SAME(D2, Dr, sizeof D);
    /* inner product: best first means decreasing */
    for (idx_t q = 0; q < nq; q++)
        for (idx_t j = 1; j < k; j++)
            cr_assert_geq(D[q * k + j - 1], D[q * k + j]);
    faiss_IndexFlatIP_free(ip);
    faiss_IndexFlat_free(f);
    free(xb);
    free(xq);
}

/* ---- IndexRefineFlat -------------------------------------------------- */

static FaissIndex* sq4(int d) {
    FaissIndexScalarQuantizer* b = NULL;
    FXT_OK(faiss_IndexScalarQuantizer_new_with(&b, d, QT_4bit, METRIC_L2));
    return b;
}

Test(flat, refine_flat_matches_cpp) {
    const int d = 16;
    const idx_t nb = 2000, nq = 25, k = 10;
    float* xb = fxt_clustered(nb, d, 30, 0.05f, 41);
    float* xq = fxt_clustered(nq, d, 30, 0.05f, 42);
    FaissIndex* base = sq4(d);
    FaissIndexRefineFlat* r = NULL;
    FXT_OK(faiss_IndexRefineFlat_new(&r, base));
    cr_assert_eq(faiss_IndexRefineFlat_cast(r), r);
    cr_assert_eq(faiss_IndexRefineFlat_own_fields(r), 0);
    faiss_IndexRefineFlat_set_own_fields(r, 1);
    cr_assert_eq(faiss_IndexRefineFlat_own_fields(r), 1);
    cr_assert_eq(faiss_IndexRefineFlat_k_factor(r), 1.0f);
    faiss_IndexRefineFlat_set_k_factor(r, 4.0f);
    cr_assert_eq(faiss_IndexRefineFlat_k_factor(r), 4.0f);
    cr_assert_eq(faiss_Index_d(r), d);
    cr_assert_eq(faiss_Index_is_trained(r), 0, "SQ4 needs training");
    FXT_ERR(faiss_Index_add(r, nb, xb), "not trained");
    FXT_OK(faiss_Index_train(r, nb, xb));
    cr_assert(faiss_Index_is_trained(r));
    cr_assert(faiss_Index_is_trained(base));
    FXT_OK(faiss_Index_add(r, nb, xb));
    cr_assert_eq(faiss_Index_ntotal(r), nb);
    cr_assert_eq(faiss_Index_ntotal(base), nb, "add reaches the base");

    float D[25 * 10], Dr[25 * 10];
    idx_t I[25 * 10], Ir[25 * 10];
    FXT_OK(faiss_Index_search(r, nq, xq, k, D, I));
    cr_assert_eq(oracle_refine_flat_search("SQ4", d, METRIC_L2, nb, xb, nb,
                                           xb, 4.0f, nq, xq, k, Dr, Ir),
                 0, "%s", oracle_flat_error());
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    /* the refined distances are exact L2 distances to the stored vectors */
    for (idx_t i = 0; i < nq * k; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) {
            double t = xq[(i / k) * d + j] - xb[I[i] * d + j];
            s += t * t;
        }
        cr_assert(fabs(s - D[i]) < 1e-4 * (1 + s));
    }
    /* k_factor 1 is a different search, also equal to C++ */
    faiss_IndexRefineFlat_set_k_factor(r, 1.0f);
    FXT_OK(faiss_Index_search(r, nq, xq, k, D, I));
    cr_assert_eq(oracle_refine_flat_search("SQ4", d, METRIC_L2, nb, xb, nb,
                                           xb, 1.0f, nq, xq, k, Dr, Ir),
                 0, "%s", oracle_flat_error());
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);
    /* reconstruct comes from the exact refine storage */
    float v[16];
    FXT_OK(faiss_Index_reconstruct(r, 123, v));
    FXT_SAME(v, xb + 123 * d, sizeof v);
    faiss_IndexRefineFlat_free(r); /* own_fields: frees the base too */
    free(xb);
    free(xq);
}

Test(flat, refine_flat_without_own_fields_leaves_base) {
    const int d = 8;
    float* x = fxt_uniform(300, d, 51);
    FaissIndex* base = sq4(d);
    FaissIndexRefineFlat* r = NULL;
    FXT_OK(faiss_IndexRefineFlat_new(&r, base));
    FXT_OK(faiss_Index_train(r, 300, x));
    FXT_OK(faiss_Index_add(r, 300, x));
    faiss_IndexRefineFlat_free(r);
    /* the base survives and is still usable */
    cr_assert_eq(faiss_Index_ntotal(base), 300);
    float D[3];
    idx_t I[3];
    FXT_OK(faiss_Index_search(base, 1, x, 3, D, I));
    faiss_Index_free(base);
    free(x);
}

Test(flat, refine_flat_errors) {
    const int d = 8;
    float* x = fxt_uniform(10, d, 52);
    FaissIndexRefineFlat* r = NULL;
    FXT_ERR(faiss_IndexRefineFlat_new(&r, NULL), "NULL");
    FXT_ERR(faiss_IndexRefineFlat_new(NULL, NULL), "NULL");
    /* faiss requires an empty base */
    FaissIndexFlatL2* full = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&full, d));
    FXT_OK(faiss_Index_add(full, 10, x));
    FXT_ERR(faiss_IndexRefineFlat_new(&r, full), "empty");
    cr_assert_null(r);
    /* getters/setters on another type: 0, an error, no crash */
    cr_assert_eq(faiss_IndexRefineFlat_k_factor(full), 0.0f);
    cr_assert(faiss_get_last_error() != NULL);
    faiss_IndexRefineFlat_set_k_factor(full, 3.0f);
    cr_assert(strstr(faiss_get_last_error(), "IndexRefineFlat"));
    cr_assert_eq(faiss_IndexRefineFlat_own_fields(NULL), 0);
    faiss_IndexRefineFlat_set_own_fields(NULL, 1);
    faiss_IndexFlatL2_free(full);
    free(x);
}

/* ---- IndexFlat1D ------------------------------------------------------ */

Test(flat, flat1d_update_permutation) {
    const idx_t nb = 1000, nq = 40, k = 6;
    float* xb = fxt_uniform(nb, 1, 61);
    float* xq = fxt_uniform(nq, 1, 62);
    float D[40 * 6], Dr[40 * 6];
    idx_t I[40 * 6], Ir[40 * 6];

    FaissIndexFlat1D* lazy = NULL;
    FXT_OK(faiss_IndexFlat1D_new_with(&lazy, 0));
    FXT_OK(faiss_Index_add(lazy, nb, xb));
    FXT_ERR(faiss_Index_search(lazy, nq, xq, k, D, I), "update_permutation");
    FXT_OK(faiss_IndexFlat1D_update_permutation(lazy));
    FXT_OK(faiss_Index_search(lazy, nq, xq, k, D, I));
    cr_assert_eq(oracle_flat1d_search(0, nb, xb, nq, xq, k, Dr, Ir), 0, "%s",
                 oracle_flat_error());
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);

    /* continuous update: no explicit call needed, same answer */
    FaissIndexFlat1D* eager = NULL;
    FXT_OK(faiss_IndexFlat1D_new_with(&eager, 1));
    FXT_OK(faiss_Index_add(eager, nb / 2, xb));
    FXT_OK(faiss_Index_add(eager, nb - nb / 2, xb + nb / 2));
    float D2[40 * 6];
    idx_t I2[40 * 6];
    FXT_OK(faiss_Index_search(eager, nq, xq, k, D2, I2));
    cr_assert_eq(oracle_flat1d_search(1, nb, xb, nq, xq, k, Dr, Ir), 0, "%s",
                 oracle_flat_error());
    FXT_SAME(I2, Ir, sizeof I2);
    FXT_SAME(D2, Dr, sizeof D2);
    /* the nearest point really is the nearest in 1D */
    for (idx_t q = 0; q < nq; q++) {
        float best = INFINITY;
        for (idx_t i = 0; i < nb; i++)
            best = fminf(best, fabsf(xb[i] - xq[q]));
        cr_assert_eq(fabsf(xb[I2[q * k]] - xq[q]), best);
    }
    FXT_ERR(faiss_IndexFlat1D_update_permutation(NULL), "NULL");
    FaissIndexFlatL2* l2 = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&l2, 1));
    FXT_ERR(faiss_IndexFlat1D_update_permutation(l2), "IndexFlat1D");
    faiss_IndexFlatL2_free(l2);
    faiss_IndexFlat1D_free(lazy);
    faiss_IndexFlat1D_free(eager);
    free(xb);
    free(xq);
}
