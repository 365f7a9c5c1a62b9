/* test_errors.c -- the error model across the API: every refused call
 * returns non-zero with a message naming the problem, records the code for
 * faissx_last_error_code(), leaves the index as it was, and never crashes;
 * getters and void functions record an error instead; errors are
 * per-thread. */
#include "common.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

/* Put a known, unrelated message in the error slot, so that a later check
 * can tell whether a getter or void function recorded a new one. */
static void prime_error(void) {
    FaissIndexFlat* f = NULL;
    cr_assert_neq(faiss_IndexFlat_new_with(&f, -7, METRIC_L2), 0);
    cr_assert(strstr(faiss_get_last_error(), "-7"));
}

/* A void/value call recorded a fresh error containing `needle`. */
#define FXT_NOTED(needle)                                                  \
    do {                                                                   \
        const char* m_ = faiss_get_last_error();                           \
        cr_assert(m_ != NULL && strstr(m_, "-7") == NULL,                  \
                  "no new error was recorded (still '%s')", m_);           \
        cr_assert(strstr(m_, (needle)) != NULL, "message '%s' lacks '%s'", \
                  m_, (needle));                                           \
        cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);          \
    } while (0)

/* Asserts the call failed with `code`, and that the recorded code agrees. */
#define FXT_CODE(call, code, needle)                                       \
    do {                                                                   \
        int rc_ = (call);                                                  \
        cr_assert_eq(rc_, (code), "%s returned %d, expected %d (%s)",      \
                     #call, rc_, (code),                                   \
                     faiss_get_last_error() ? faiss_get_last_error() : "");\
        cr_assert_eq(faissx_last_error_code(), rc_);                       \
        cr_assert(strstr(faiss_get_last_error(), (needle)) != NULL,        \
                  "%s: '%s' lacks '%s'", #call, faiss_get_last_error(),    \
                  (needle));                                               \
    } while (0)

enum { D = 8, NB = 200 };

static FaissIndex* filled_flat(float** xb) {
    FaissIndexFlat* f = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&f, D, METRIC_L2));
    *xb = fxt_uniform(NB, D, 77);
    FXT_OK(faiss_Index_add(f, NB, *xb));
    return f;
}

static FaissIndex* untrained_ivf(void) {
    FaissIndexFlatL2* q = NULL;
    FaissIndexIVFFlat* ivf = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FXT_OK(faiss_IndexIVFFlat_new_with(&ivf, q, D, 4));
    faiss_IndexIVFFlat_set_own_fields(ivf, 1);
    return ivf;
}

/* ---- codes and messages ----------------------------------------------- */

Test(errors, no_error_before_any_failure) {
    cr_assert_null(faiss_get_last_error());
    cr_assert_eq(faissx_last_error_code(), 0);
    FaissIndexFlat* f = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&f, 4, METRIC_L2));
    cr_assert_null(faiss_get_last_error(), "success records nothing");
    cr_assert_eq(faissx_last_error_code(), 0);
    faiss_IndexFlat_free(f);
}

Test(errors, strerror_covers_every_code) {
    const int codes[] = {FAISSX_OK,      FAISSX_E_UNKNOWN, FAISSX_E_FAISS,
                         FAISSX_E_STD,   FAISSX_E_INVALID, FAISSX_E_NOMEM,
                         FAISSX_E_IO,    FAISSX_E_UNSUPPORTED};
    const size_t n = sizeof codes / sizeof *codes;
    for (size_t i = 0; i < n; i++) {
        const char* s = faissx_strerror(codes[i]);
        cr_assert_not_null(s);
        cr_assert_gt(strlen(s), 3);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(s, faissx_strerror(codes[j]),
                              "codes %d and %d share a description",
                              codes[i], codes[j]);
    }
    /* unknown codes still get a (generic) string */
    const char* u = faissx_strerror(12345);
    cr_assert_not_null(u);
    cr_assert_gt(strlen(u), 3);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_neq(u, faissx_strerror(codes[i]));
    cr_assert_not_null(faissx_strerror(-3));
    cr_assert_not_null(faissx_strerror(INT_MIN));
    /* FAISS's own codes keep their values */
    cr_assert_eq(FAISSX_E_UNKNOWN, UNKNOWN_EXCEPT);
    cr_assert_eq(FAISSX_E_FAISS, FAISS_EXCEPT);
    cr_assert_eq(FAISSX_E_STD, STD_EXCEPT);
    cr_assert_eq(FAISSX_OK, OK);
}

Test(errors, codes_classify_the_failure) {
    float* xb;
    FaissIndex* f = filled_flat(&xb);
    idx_t ids[3] = {1, 2, 3};
    /* argument checks: INVALID */
    FXT_CODE(faiss_Index_add(f, -1, xb), FAISSX_E_INVALID, "n must be");
    cr_assert_str_eq(faissx_strerror(faissx_last_error_code()),
                     faissx_strerror(FAISSX_E_INVALID));
    /* faiss itself refusing: FAISS (faiss's message is passed through) */
    FXT_CODE(faiss_Index_add_with_ids(f, 3, xb, ids), FAISSX_E_FAISS,
             "not implemented");
    /* the message names the C function */
    cr_assert(strstr(faiss_get_last_error(), "faiss_Index_add_with_ids"));
    FaissIndexScalarQuantizer* sq = NULL;
    FXT_OK(faiss_IndexScalarQuantizer_new_with(&sq, D, QT_8bit, METRIC_L2));
    FXT_OK(faiss_Index_train(sq, NB, xb));
    FXT_OK(faiss_Index_add(sq, NB, xb));
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, 1));
    FXT_CODE(faiss_Index_range_search(sq, 1, xb, 0.5f, res), FAISSX_E_FAISS,
             "not implemented");
    FXT_OK(faiss_Index_reset(sq));
    FXT_CODE(faiss_Index_search(f, 1, xb, 0, NULL, NULL), FAISSX_E_INVALID,
             "k must be > 0");
    faiss_RangeSearchResult_free(res);
    faiss_Index_free(sq);
    faiss_Index_free(f);
    free(xb);
}

/* ---- NULL handles ----------------------------------------------------- */

Test(errors, null_index_int_functions) {
    float x[D] = {0}, dist[4], res[D];
    idx_t lab[4] = {0}, key = 0;
    size_t sz;
    uint8_t code[64];
    FaissRangeSearchResult* rsr = NULL;
    FaissIDSelectorRange* sel = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&rsr, 1));
    FXT_OK(faiss_IDSelectorRange_new(&sel, 0, 10));

    FXT_ERR(faiss_Index_train(NULL, 1, x), "NULL");
    FXT_ERR(faiss_Index_add(NULL, 1, x), "NULL");
    FXT_ERR(faiss_Index_add_with_ids(NULL, 1, x, lab), "NULL");
    FXT_ERR(faiss_Index_search(NULL, 1, x, 1, dist, lab), "NULL");
    FXT_ERR(faiss_Index_search_with_params(NULL, 1, x, 1, NULL, dist, lab),
            "NULL");
    FXT_ERR(faiss_Index_range_search(NULL, 1, x, 1.0f, rsr), "NULL");
    FXT_ERR(faiss_Index_assign(NULL, 1, x, lab, 1), "NULL");
    FXT_ERR(faiss_Index_reset(NULL), "NULL");
    FXT_ERR(faiss_Index_remove_ids(NULL, (FaissIDSelector*)sel, &sz), "NULL");
    FXT_ERR(faiss_Index_reconstruct(NULL, 0, res), "NULL");
    FXT_ERR(faiss_Index_reconstruct_n(NULL, 0, 1, res), "NULL");
    FXT_ERR(faiss_Index_compute_residual(NULL, x, res, 0), "NULL");
    FXT_ERR(faiss_Index_compute_residual_n(NULL, 1, x, res, &key), "NULL");
    FXT_ERR(faiss_Index_sa_code_size(NULL, &sz), "NULL");
    FXT_ERR(faiss_Index_sa_encode(NULL, 1, x, code), "NULL");
    FXT_ERR(faiss_Index_sa_decode(NULL, 1, code, res), "NULL");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);

    /* typed entry points */
    FXT_ERR(faiss_IndexFlat_compute_distance_subset(NULL, 1, x, 1, dist, lab),
            "NULL");
    FXT_ERR(faiss_IndexFlat1D_update_permutation(NULL), "NULL");
    FXT_ERR(faiss_IndexIDMap2_construct_rev_map(NULL), "NULL");
    FXT_ERR(faiss_IndexShards_add_shard(NULL, NULL), "NULL");
    FXT_ERR(faiss_IndexShards_remove_shard(NULL, NULL), "NULL");
    FXT_ERR(faiss_IndexReplicas_add_replica(NULL, NULL), "NULL");
    FXT_ERR(faiss_IndexReplicas_remove_replica(NULL, NULL), "NULL");
    FXT_ERR(faiss_IndexIVF_make_direct_map(NULL, 1), "NULL");
    FXT_ERR(faiss_IndexIVF_merge_from(NULL, NULL, 0), "NULL");
    FXT_ERR(faiss_IndexIVFFlat_add_core(NULL, 1, x, lab, lab), "NULL");
    FXT_ERR(faiss_IndexIDMap_new(NULL, NULL), "NULL");
    FXT_ERR(faiss_IndexRefineFlat_new(NULL, NULL), "NULL");

    faiss_RangeSearchResult_free(rsr);
    faiss_IDSelector_free((FaissIDSelector*)sel);
}

Test(errors, null_out_pointers_of_constructors) {
    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FXT_ERR(faiss_IndexFlat_new(NULL), "NULL");
    FXT_ERR(faiss_IndexFlat_new_with(NULL, D, METRIC_L2), "NULL");
    FXT_ERR(faiss_IndexFlatIP_new(NULL), "NULL");
    FXT_ERR(faiss_IndexFlatIP_new_with(NULL, D), "NULL");
    FXT_ERR(faiss_IndexFlatL2_new(NULL), "NULL");
    FXT_ERR(faiss_IndexFlatL2_new_with(NULL, D), "NULL");
    FXT_ERR(faiss_IndexFlat1D_new(NULL), "NULL");
    FXT_ERR(faiss_IndexFlat1D_new_with(NULL, 1), "NULL");
    FXT_ERR(faiss_IndexRefineFlat_new(NULL, q), "NULL");
    FXT_ERR(faiss_IndexIDMap_new(NULL, q), "NULL");
    FXT_ERR(faiss_IndexIDMap2_new(NULL, q), "NULL");
    FXT_ERR(faiss_IndexShards_new(NULL, D), "NULL");
    FXT_ERR(faiss_IndexShards_new_with_options(NULL, D, 0, 1), "NULL");
    FXT_ERR(faiss_IndexReplicas_new(NULL, D), "NULL");
    FXT_ERR(faiss_IndexReplicas_new_with_options(NULL, D, 0), "NULL");
    FXT_ERR(faiss_IndexIVFFlat_new(NULL), "NULL");
    FXT_ERR(faiss_IndexIVFFlat_new_with(NULL, q, D, 4), "NULL");
    FXT_ERR(faiss_IndexScalarQuantizer_new(NULL), "NULL");
    FXT_ERR(faiss_SearchParameters_new(NULL, NULL), "NULL");
    FXT_ERR(faiss_RangeSearchResult_new(NULL, 1), "NULL");
    /* the quantizer was not taken by a failed constructor */
    cr_assert_eq(faiss_Index_d(q), D);
    faiss_IndexFlatL2_free(q);
}

Test(errors, null_index_getters_and_void_functions) {
    prime_error();
    cr_assert_eq(faiss_Index_d(NULL), 0);
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_eq(faiss_Index_is_trained(NULL), 0);
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_eq(faiss_Index_ntotal(NULL), 0);
    FXT_NOTED("NULL");
    prime_error();
    (void)faiss_Index_metric_type(NULL);
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_eq(faiss_Index_verbose(NULL), 0);
    FXT_NOTED("NULL");
    prime_error();
    faiss_Index_set_verbose(NULL, 1);
    FXT_NOTED("NULL");

    float* p = (float*)1;
    size_t size = 5;
    prime_error();
    faiss_IndexFlat_xb(NULL, &p, &size);
    FXT_NOTED("NULL");
    cr_assert_null(p);
    cr_assert_eq(size, 0);

    idx_t* ids = (idx_t*)1;
    prime_error();
    faiss_IndexIDMap_id_map(NULL, &ids, &size);
    FXT_NOTED("NULL");
    cr_assert_null(ids);
    prime_error();
    faiss_IndexIDMap2_id_map(NULL, &ids, &size);
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_null(faiss_IndexIDMap_sub_index(NULL));
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_null(faiss_IndexIDMap2_sub_index(NULL));
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_eq(faiss_IndexIDMap_own_fields(NULL), 0);
    FXT_NOTED("NULL");
    prime_error();
    faiss_IndexIDMap_set_own_fields(NULL, 1);
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_null(faiss_IndexShards_at(NULL, 0));
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_null(faiss_IndexReplicas_at(NULL, 0));
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_eq(faiss_IndexShards_successive_ids(NULL), 0);
    FXT_NOTED("NULL");
    prime_error();
    faiss_IndexShards_set_successive_ids(NULL, 0);
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_eq(faiss_IndexRefineFlat_k_factor(NULL), 0.0f);
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_eq(faiss_IndexIVF_nprobe(NULL), 0);
    FXT_NOTED("NULL");
    prime_error();
    faiss_IndexIVF_set_nprobe(NULL, 3);
    FXT_NOTED("NULL");
    prime_error();
    cr_assert_null(faiss_IndexIVF_quantizer(NULL));
    FXT_NOTED("NULL");

    /* casts of NULL are NULL (a cast is not an error) */
    cr_assert_null(faiss_IndexFlat_cast(NULL));
    cr_assert_null(faiss_IndexIVF_cast(NULL));
    cr_assert_null(faiss_IndexIDMap_cast(NULL));
}

Test(errors, free_functions_accept_null) {
    faiss_Index_free(NULL);
    faiss_IndexFlat_free(NULL);
    faiss_IndexFlatIP_free(NULL);
    faiss_IndexFlatL2_free(NULL);
    faiss_IndexFlat1D_free(NULL);
    faiss_IndexRefineFlat_free(NULL);
    faiss_IndexShards_free(NULL);
    faiss_IndexReplicas_free(NULL);
    faiss_IndexIVF_free(NULL);
    faiss_IndexIVFFlat_free(NULL);
    faiss_IndexScalarQuantizer_free(NULL);
    faiss_IndexIVFScalarQuantizer_free(NULL);
    faiss_RangeSearchResult_free(NULL);
    faiss_IDSelector_free(NULL);
    faiss_IDSelectorRange_free(NULL);
    faiss_SearchParameters_free(NULL);
    faiss_SearchParametersIVF_free(NULL);
    cr_assert_null(faiss_get_last_error(), "freeing NULL is not an error");
}

/* ---- shapes: k, n, d -------------------------------------------------- */

Test(errors, bad_k) {
    float* xb;
    FaissIndex* f = filled_flat(&xb);
    float dist[4];
    idx_t lab[4];
    FXT_CODE(faiss_Index_search(f, 1, xb, 0, dist, lab), FAISSX_E_INVALID,
             "k must be > 0");
    FXT_ERR(faiss_Index_search(f, 1, xb, -5, dist, lab), "k must be > 0");
    FXT_ERR(faiss_Index_search_with_params(f, 1, xb, 0, NULL, dist, lab),
            "k must be > 0");
    FXT_ERR(faiss_Index_assign(f, 1, xb, lab, 0), "k must be > 0");
    FXT_ERR(faiss_Index_assign(f, 1, xb, lab, -1), "k must be > 0");
    FXT_ERR(faiss_IndexFlat_compute_distance_subset(f, 1, xb, 0, dist, lab),
            "k must be > 0");
    /* n * k overflowing idx_t */
    FXT_ERR(faiss_Index_search(f, 4, xb, INT64_MAX / 2, dist, lab),
            "overflow");
    faiss_Index_free(f);
    free(xb);
}

Test(errors, negative_n) {
    float* xb;
    FaissIndex* f = filled_flat(&xb);
    float dist[4], r[D * 2];
    idx_t lab[4], keys[2] = {0, 1};
    uint8_t codes[D * 4 * 2];
    FXT_ERR(faiss_Index_add(f, -1, xb), "n must be >= 0");
    FXT_ERR(faiss_Index_train(f, -1, xb), "n must be >= 0");
    FXT_ERR(faiss_Index_search(f, -1, xb, 1, dist, lab), "n must be >= 0");
    FXT_ERR(faiss_Index_assign(f, -2, xb, lab, 1), "n must be >= 0");
    FXT_ERR(faiss_Index_compute_residual_n(f, -1, xb, r, keys),
            "n must be >= 0");
    FXT_ERR(faiss_Index_sa_encode(f, -1, xb, codes), "n must be >= 0");
    FXT_ERR(faiss_Index_sa_decode(f, -1, codes, r), "n must be >= 0");
    FXT_ERR(faiss_Index_reconstruct_n(f, 0, -1, r), "ni must be >= 0");
    FXT_ERR(faiss_IndexFlat_compute_distance_subset(f, -1, xb, 1, dist, lab),
            "n must be >= 0");
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, 1));
    FXT_ERR(faiss_Index_range_search(f, -1, xb, 1.0f, res), "n must be >= 0");
    faiss_RangeSearchResult_free(res);
    cr_assert_eq(faiss_Index_ntotal(f), NB);
    /* n = 0 is fine everywhere, with NULL buffers */
    FXT_OK(faiss_Index_add(f, 0, NULL));
    FXT_OK(faiss_Index_search(f, 0, NULL, 3, NULL, NULL));
    FXT_OK(faiss_Index_reconstruct_n(f, 0, 0, NULL));
    FXT_OK(faiss_Index_sa_encode(f, 0, NULL, NULL));
    cr_assert_eq(faiss_Index_ntotal(f), NB);
    faiss_Index_free(f);
    free(xb);
}

Test(errors, null_buffers_with_positive_n) {
    float* xb;
    FaissIndex* f = filled_flat(&xb);
    float dist[4], r[D];
    idx_t lab[4];
    FXT_ERR(faiss_Index_add(f, 1, NULL), "'x' is NULL");
    FXT_ERR(faiss_Index_train(f, 1, NULL), "'x' is NULL");
    FXT_ERR(faiss_Index_search(f, 1, NULL, 1, dist, lab), "'x' is NULL");
    FXT_ERR(faiss_Index_search(f, 1, xb, 1, NULL, lab), "distances");
    FXT_ERR(faiss_Index_search(f, 1, xb, 1, dist, NULL), "labels");
    FXT_ERR(faiss_Index_assign(f, 1, xb, NULL, 1), "labels");
    FXT_ERR(faiss_Index_reconstruct(f, 0, NULL), "recons");
    FXT_ERR(faiss_Index_reconstruct_n(f, 0, 1, NULL), "recons");
    FXT_ERR(faiss_Index_compute_residual(f, xb, NULL, 0), "residual");
    FXT_ERR(faiss_Index_compute_residual(f, NULL, r, 0), "'x' is NULL");
    FXT_ERR(faiss_Index_sa_code_size(f, NULL), "size");
    FXT_ERR(faiss_Index_range_search(f, 1, xb, 1.0f, NULL), "result");
    FXT_ERR(faiss_Index_remove_ids(f, NULL, NULL), "sel");
    cr_assert_eq(faiss_Index_ntotal(f), NB);
    faiss_Index_free(f);
    free(xb);
}

Test(errors, bad_dimension) {
    FaissIndexFlat* f = NULL;
    FXT_CODE(faiss_IndexFlat_new_with(&f, 0, METRIC_L2), FAISSX_E_INVALID,
             "dimension");
    FXT_ERR(faiss_IndexFlat_new_with(&f, -1, METRIC_L2), "dimension");
    FXT_ERR(faiss_IndexFlat_new_with(&f, (idx_t)INT_MAX + 1, METRIC_L2),
            "dimension");
    FXT_ERR(faiss_IndexFlatIP_new_with(&f, 0), "dimension");
    FXT_ERR(faiss_IndexFlatL2_new_with(&f, -3), "dimension");
    FXT_ERR(faiss_IndexShards_new(&f, 0), "dimension");
    FXT_ERR(faiss_IndexReplicas_new(&f, -1), "dimension");
    FXT_ERR(faiss_IndexScalarQuantizer_new_with(&f, 0, QT_8bit, METRIC_L2),
            "dimension");
    cr_assert_null(f, "no index was returned by a failed constructor");
    /* an IVF whose quantizer has another dimension */
    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, 4));
    FXT_ERR(faiss_IndexIVFFlat_new_with(&f, q, 8, 2), "dimension");
    FXT_ERR(faiss_IndexIVFFlat_new_with(&f, q, 0, 2), "dimension");
    FXT_ERR(faiss_IndexIVFFlat_new_with(&f, q, 4, 0), "nlist");
    cr_assert_null(f);
    faiss_IndexFlatL2_free(q);
}

/* Invalid metrics are taken from inside the enum's value range (0..31):
 * converting a number outside it to the C++ enum parameter would be
 * undefined behaviour that UBSan reports. */
Test(errors, bad_metric) {
    FaissIndexFlat* f = NULL;
    FXT_CODE(faiss_IndexFlat_new_with(&f, D, (FaissMetricType)19),
             FAISSX_E_INVALID, "metric");
    FXT_ERR(faiss_IndexFlat_new_with(&f, D, (FaissMetricType)23), "metric");
    FXT_ERR(faiss_IndexFlat_new_with(&f, D, (FaissMetricType)5), "metric");
    FXT_ERR(faiss_IndexScalarQuantizer_new_with(&f, D, QT_8bit,
                                                (FaissMetricType)30),
            "metric");
    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FXT_ERR(faiss_IndexIVFFlat_new_with_metric(&f, q, D, 2,
                                               (FaissMetricType)7),
            "metric");
    cr_assert_null(f);
    faiss_IndexFlatL2_free(q);
}

/* ---- non-finite values ------------------------------------------------ */

static float* with_bad_value(const float* x, size_t n, size_t pos, float v) {
    float* y = malloc(n * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    y[pos] = v;
    return y;
}

Test(errors, non_finite_vectors_are_refused) {
    float* xb;
    FaissIndex* f = filled_flat(&xb);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    float dist[5 * 3];
    idx_t lab[5 * 3], ids[5] = {1, 2, 3, 4, 5};
    uint8_t codes[5 * D * 4];
    float r[5 * D];
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, 5));
    FaissIndexIDMap* m = NULL;
    FaissIndexFlatL2* sub = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&sub, D));
    FXT_OK(faiss_IndexIDMap_new(&m, sub));
    faiss_IndexIDMap_set_own_fields(m, 1);
    for (int b = 0; b < 3; b++) {
        /* the bad value is in the last vector: nothing may be added */
        float* y = with_bad_value(xb, 5 * D, 4 * D + 3, bad[b]);
        FXT_CODE(faiss_Index_add(f, 5, y), FAISSX_E_INVALID, "non-finite");
        cr_assert(strstr(faiss_get_last_error(), "vector 4"));
        cr_assert(strstr(faiss_get_last_error(), "component 3"));
        cr_assert_eq(faiss_Index_ntotal(f), NB);
        FXT_ERR(faiss_Index_add_with_ids(m, 5, y, ids), "non-finite");
        cr_assert_eq(faiss_Index_ntotal(m), 0);
        FXT_ERR(faiss_Index_train(f, 5, y), "non-finite");
        FXT_ERR(faiss_Index_search(f, 5, y, 3, dist, lab), "non-finite");
        FXT_ERR(faiss_Index_search_with_params(f, 5, y, 3, NULL, dist, lab),
                "non-finite");
        FXT_ERR(faiss_Index_assign(f, 5, y, lab, 3), "non-finite");
        FXT_ERR(faiss_Index_range_search(f, 5, y, 1.0f, res), "non-finite");
        FXT_ERR(faiss_Index_sa_encode(f, 5, y, codes), "non-finite");
        FXT_ERR(faiss_Index_compute_residual(f, y + 4 * D, r, 0),
                "non-finite");
        FXT_ERR(faiss_IndexFlat_compute_distance_subset(f, 5, y, 3, dist, lab),
                "non-finite");
        free(y);
    }
    /* an untrained IVF is not trained by a bad training set */
    FaissIndex* ivf = untrained_ivf();
    float* y = with_bad_value(xb, NB * D, 17, NAN);
    FXT_ERR(faiss_Index_train(ivf, NB, y), "non-finite");
    cr_assert_eq(faiss_Index_is_trained(ivf), 0);
    free(y);
    faiss_Index_free(ivf);
    faiss_Index_free(m);
    faiss_RangeSearchResult_free(res);
    faiss_Index_free(f);
    free(xb);
}

/* ---- state ------------------------------------------------------------ */

Test(errors, untrained_index) {
    float* xb = fxt_uniform(NB, D, 3);
    FaissIndex* ivf = untrained_ivf();
    float dist[3];
    idx_t lab[3] = {0, 1, 2};
    uint8_t codes[64];
    cr_assert_eq(faiss_Index_is_trained(ivf), 0);
    FXT_CODE(faiss_Index_add(ivf, NB, xb), FAISSX_E_INVALID, "not trained");
    FXT_ERR(faiss_Index_add_with_ids(ivf, 3, xb, lab), "not trained");
    FXT_ERR(faiss_Index_search(ivf, 1, xb, 3, dist, lab), "not trained");
    FXT_ERR(faiss_Index_assign(ivf, 1, xb, lab, 3), "not trained");
    FXT_ERR(faiss_Index_sa_encode(ivf, 1, xb, codes), "not trained");
    cr_assert_eq(faiss_Index_ntotal(ivf), 0);
    /* after training it works */
    FXT_OK(faiss_Index_train(ivf, NB, xb));
    FXT_OK(faiss_Index_add(ivf, NB, xb));
    cr_assert_eq(faiss_Index_ntotal(ivf), NB);

    FaissIndexScalarQuantizer* sq = NULL;
    FXT_OK(faiss_IndexScalarQuantizer_new_with(&sq, D, QT_8bit, METRIC_L2));
    FXT_ERR(faiss_Index_add(sq, NB, xb), "not trained");
    FXT_ERR(faiss_Index_search(sq, 1, xb, 3, dist, lab), "not trained");
    faiss_Index_free(sq);
    faiss_Index_free(ivf);
    free(xb);
}

Test(errors, wrong_type_for_typed_calls) {
    float* xb;
    FaissIndex* f = filled_flat(&xb);
    idx_t ids[2] = {0, 1};
    float x[D] = {0};
    /* IVF setters/getters on a Flat: no crash, 0, an error naming IVF */
    prime_error();
    faiss_IndexIVF_set_nprobe(f, 4);
    FXT_NOTED("IndexIVF");
    prime_error();
    cr_assert_eq(faiss_IndexIVF_nprobe(f), 0);
    FXT_NOTED("IndexIVF");
    prime_error();
    cr_assert_eq(faiss_IndexIVF_nlist(f), 0);
    FXT_NOTED("IndexIVF");
    prime_error();
    cr_assert_null(faiss_IndexIVF_quantizer(f));
    FXT_NOTED("IndexIVF");
    prime_error();
    faiss_IndexIVFFlat_set_nprobe(f, 4);
    FXT_NOTED("IndexIVFFlat");
    prime_error();
    faiss_IndexIVF_set_own_fields(f, 1);
    FXT_NOTED("IndexIVF");
    prime_error();
    cr_assert_eq(faiss_IndexIVF_get_list_size(f, 0), 0);
    FXT_NOTED("IndexIVF");
    prime_error();
    faiss_IndexShards_set_own_fields(f, 1);
    FXT_NOTED("IndexShards");
    prime_error();
    faiss_IndexRefineFlat_set_k_factor(f, 2.0f);
    FXT_NOTED("IndexRefineFlat");
    FXT_ERR(faiss_IndexIVF_make_direct_map(f, 1), "IndexIVF");
    FXT_ERR(faiss_IndexIVF_merge_from(f, f, 0), "IndexIVF");
    FXT_ERR(faiss_IndexIVFFlat_add_core(f, 1, x, ids, ids), "IndexIVFFlat");
    FXT_ERR(faiss_IndexIDMap2_construct_rev_map(f), "IndexIDMap2");
    FXT_ERR(faiss_IndexFlat1D_update_permutation(f), "IndexFlat1D");
    FXT_ERR(faiss_IndexShards_add_shard(f, f), "IndexShards");
    FXT_ERR(faiss_IndexReplicas_remove_replica(f, f), "IndexReplicas");
    cr_assert_null(faiss_IndexIVF_cast(f));
    cr_assert_null(faiss_IndexIVFFlat_cast(f));
    cr_assert_null(faiss_IndexIDMap_cast(f));
    /* and the flat index is untouched */
    cr_assert_eq(faiss_Index_ntotal(f), NB);
    cr_assert_eq(faiss_Index_d(f), D);

    /* the reverse: a Flat-only call on an IVF */
    FaissIndex* ivf = untrained_ivf();
    float dist[1];
    FXT_ERR(faiss_IndexFlat_compute_distance_subset(ivf, 1, x, 1, dist, ids),
            "IndexFlat");
    prime_error();
    float* p = (float*)1;
    size_t size = 1;
    faiss_IndexFlat_xb(ivf, &p, &size);
    FXT_NOTED("IndexFlat");
    cr_assert_null(p);
    faiss_Index_free(ivf);
    faiss_Index_free(f);
    free(xb);
}

Test(errors, reconstruct_out_of_range) {
    float* xb;
    FaissIndex* f = filled_flat(&xb);
    float r[D * 4];
    idx_t keys[2] = {0, NB};
    FXT_CODE(faiss_Index_reconstruct(f, NB, r), FAISSX_E_INVALID,
             "out of range");
    FXT_ERR(faiss_Index_reconstruct(f, -1, r), "out of range");
    FXT_ERR(faiss_Index_reconstruct(f, INT64_MAX, r), "out of range");
    FXT_ERR(faiss_Index_reconstruct_n(f, NB - 1, 2, r), "outside");
    FXT_ERR(faiss_Index_reconstruct_n(f, -1, 1, r), "outside");
    FXT_ERR(faiss_Index_reconstruct_n(f, 1, INT64_MAX, r), "outside");
    FXT_ERR(faiss_Index_compute_residual(f, xb, r, NB), "out of range");
    FXT_ERR(faiss_Index_compute_residual_n(f, 2, xb, r, keys),
            "out of range");
    FXT_OK(faiss_Index_reconstruct(f, NB - 1, r));
    FXT_SAME(r, xb + (NB - 1) * D, D * sizeof(float));

    /* also for a coded index */
    FaissIndexScalarQuantizer* sq = NULL;
    FXT_OK(faiss_IndexScalarQuantizer_new_with(&sq, D, QT_8bit, METRIC_L2));
    FXT_OK(faiss_Index_train(sq, NB, xb));
    FXT_OK(faiss_Index_add(sq, 10, xb));
    FXT_ERR(faiss_Index_reconstruct(sq, 10, r), "out of range");
    FXT_ERR(faiss_Index_reconstruct_n(sq, 8, 4, r), "outside");

    /* and an IVF (ids are not positions there: faiss checks) */
    FaissIndex* ivf = untrained_ivf();
    FXT_OK(faiss_Index_train(ivf, NB, xb));
    FXT_OK(faiss_Index_add(ivf, NB, xb));
    FXT_ERR(faiss_Index_reconstruct_n(ivf, NB - 1, 2, r), "");
    FXT_ERR(faiss_Index_reconstruct_n(ivf, -4, 2, r), "");
    FXT_OK(faiss_IndexIVF_make_direct_map(ivf, 1));
    FXT_ERR(faiss_Index_reconstruct(ivf, NB, r), "");
    FXT_ERR(faiss_Index_reconstruct(ivf, -1, r), "");
    FXT_OK(faiss_Index_reconstruct(ivf, NB - 1, r));
    FXT_SAME(r, xb + (NB - 1) * D, D * sizeof(float));
    faiss_Index_free(ivf);
    faiss_Index_free(sq);
    faiss_Index_free(f);
    free(xb);
}

Test(errors, refusal_leaves_the_index_unchanged) {
    float* xb;
    FaissIndex* f = filled_flat(&xb);
    float* xq = fxt_uniform(10, D, 78);
    float D0[10 * 5], D1[10 * 5];
    idx_t I0[10 * 5], I1[10 * 5];
    FXT_OK(faiss_Index_search(f, 10, xq, 5, D0, I0));

    float* bad = with_bad_value(xb, 50 * D, 49 * D, NAN);
    idx_t ids[50];
    for (int i = 0; i < 50; i++) ids[i] = i;
    FXT_ERR(faiss_Index_add(f, 50, bad), "non-finite");
    FXT_ERR(faiss_Index_add_with_ids(f, 50, xb, ids), "add_with_ids");
    FXT_ERR(faiss_Index_add(f, -3, xb), "n must be");
    FXT_ERR(faiss_Index_train(f, 50, bad), "non-finite");
    FXT_ERR(faiss_Index_remove_ids(f, NULL, NULL), "sel");
    FXT_ERR(faiss_Index_search(f, 10, xq, 0, D1, I1), "k must be");
    float r[D];
    FXT_ERR(faiss_Index_reconstruct(f, NB + 5, r), "out of range");

    cr_assert_eq(faiss_Index_ntotal(f), NB);
    FXT_OK(faiss_Index_search(f, 10, xq, 5, D1, I1));
    FXT_SAME(I0, I1, sizeof I0);
    FXT_SAME(D0, D1, sizeof D0);

    /* an IVF: a refused add (last row bad) adds none of the good rows */
    FaissIndex* ivf = untrained_ivf();
    FXT_OK(faiss_Index_train(ivf, NB, xb));
    FXT_OK(faiss_Index_add(ivf, NB, xb));
    FXT_OK(faiss_Index_search(ivf, 10, xq, 5, D0, I0));
    FXT_ERR(faiss_Index_add(ivf, 50, bad), "non-finite");
    cr_assert_eq(faiss_Index_ntotal(ivf), NB);
    size_t total = 0;
    for (size_t l = 0; l < 4; l++) total += faiss_IndexIVF_get_list_size(ivf, l);
    cr_assert_eq(total, (size_t)NB, "inverted lists grew on a refused add");
    FXT_OK(faiss_Index_search(ivf, 10, xq, 5, D1, I1));
    FXT_SAME(I0, I1, sizeof I0);
    FXT_SAME(D0, D1, sizeof D0);
    faiss_Index_free(ivf);
    free(bad);
    free(xq);
    faiss_Index_free(f);
    free(xb);
}

Test(errors, misuse_of_containers) {
    /* shards: at() out of range, removing a stranger */
    FaissIndexShards* s = NULL;
    FXT_OK(faiss_IndexShards_new(&s, D));
    FaissIndexFlatL2* a = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&a, D));
    prime_error();
    cr_assert_null(faiss_IndexShards_at(s, 0));
    FXT_NOTED("outside");
    FXT_CODE(faiss_IndexShards_remove_shard(s, a), FAISSX_E_FAISS,
             "not found");
    FXT_ERR(faiss_IndexShards_add_shard(s, s), "itself");
    faiss_IndexShards_free(s);
    faiss_IndexFlatL2_free(a);
}

/* ---- per-thread errors ------------------------------------------------ */

typedef struct ThreadArg {
    int d;               /* the bad dimension this thread asks for */
    pthread_barrier_t* b;
    char msg[256];       /* what this thread saw */
    int rc, code;
    int had_error_before;
} ThreadArg;

static void* thread_main(void* p) {
    ThreadArg* a = p;
    a->had_error_before = faiss_get_last_error() != NULL;
    FaissIndexFlat* f = NULL;
    a->rc = faiss_IndexFlat_new_with(&f, a->d, METRIC_L2);
    /* both threads have failed before either reads its message */
    pthread_barrier_wait(a->b);
    const char* m = faiss_get_last_error();
    snprintf(a->msg, sizeof a->msg, "%s", m ? m : "(null)");
    a->code = faissx_last_error_code();
    pthread_barrier_wait(a->b);
    return NULL;
}

Test(errors, last_error_is_per_thread) {
    /* the main thread has its own error first */
    FaissIndexFlat* f = NULL;
    FXT_ERR(faiss_IndexFlat_new_with(&f, D, (FaissMetricType)29), "29");
    char mine[256];
    snprintf(mine, sizeof mine, "%s", faiss_get_last_error());

    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 2);
    ThreadArg a1 = {.d = -111, .b = &b}, a2 = {.d = -222, .b = &b};
    pthread_t t1, t2;
    cr_assert_eq(pthread_create(&t1, NULL, thread_main, &a1), 0);
    cr_assert_eq(pthread_create(&t2, NULL, thread_main, &a2), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    pthread_barrier_destroy(&b);

    cr_assert_eq(a1.had_error_before, 0, "a new thread starts clean");
    cr_assert_eq(a2.had_error_before, 0, "a new thread starts clean");
    cr_assert_neq(a1.rc, 0);
    cr_assert_neq(a2.rc, 0);
    cr_assert(strstr(a1.msg, "-111") && !strstr(a1.msg, "-222"),
              "thread 1 saw '%s'", a1.msg);
    cr_assert(strstr(a2.msg, "-222") && !strstr(a2.msg, "-111"),
              "thread 2 saw '%s'", a2.msg);
    cr_assert_eq(a1.code, FAISSX_E_INVALID);
    cr_assert_eq(a2.code, FAISSX_E_INVALID);
    /* the main thread's message is intact */
    cr_assert_str_eq(faiss_get_last_error(), mine);
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
}

static void* faiss_error_thread(void* p) {
    ThreadArg* a = p;
    float x[D] = {0};
    idx_t id = 1;
    FaissIndexFlat* f = NULL;
    if (faiss_IndexFlat_new_with(&f, D, METRIC_L2) == 0) {
        a->rc = faiss_Index_add_with_ids(f, 1, x, &id); /* faiss throws */
        const char* m = faiss_get_last_error();
        snprintf(a->msg, sizeof a->msg, "%s", m ? m : "(null)");
        a->code = faissx_last_error_code();
        faiss_IndexFlat_free(f);
    }
    return NULL;
}

Test(errors, exceptions_in_threads_are_caught_there) {
    ThreadArg a = {0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, faiss_error_thread, &a), 0);
    pthread_join(t, NULL);
    cr_assert_eq(a.rc, FAISSX_E_FAISS);
    cr_assert_eq(a.code, FAISSX_E_FAISS);
    cr_assert(strstr(a.msg, "not implemented"), "thread saw '%s'", a.msg);
    cr_assert_null(faiss_get_last_error(), "the main thread saw nothing");
    cr_assert_eq(faissx_last_error_code(), 0);
}
