/* test_ext.c -- faissx.h: version, error codes and per-thread errors,
 * search with SearchParametersIVF, against faiss C++. */
#include "common.h"
#include "oracle.h"
#include "oracle_ext.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define ORC(call)                                                          \
    cr_assert_eq((call), 0, "oracle %s failed: %s%s", #call,               \
                 oracle_ext_error(), oracle_last_error())

/* ---- version ----------------------------------------------------------- */

Test(ext, version_matches_macros) {
    cr_assert_eq(faissx_version(), FAISSX_VERSION_MAJOR * 10000 +
                                           FAISSX_VERSION_MINOR * 100 +
                                           FAISSX_VERSION_PATCH);
    const char* s = faissx_version_string();
    cr_assert_not_null(s);
    cr_assert_str_eq(s, FAISSX_VERSION_STRING);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", FAISSX_VERSION_MAJOR,
             FAISSX_VERSION_MINOR, FAISSX_VERSION_PATCH);
    cr_assert_str_eq(s, buf);
    cr_assert_eq(faissx_version_string(), s, "not static storage");
    cr_assert_geq(FAISSX_VERSION_MINOR, 0);
    cr_assert_lt(FAISSX_VERSION_MINOR, 100);
    cr_assert_lt(FAISSX_VERSION_PATCH, 100);
}

Test(ext, faiss_version_is_the_linked_faiss) {
    const char* v = faiss_get_version();
    cr_assert_not_null(v);
    cr_assert_str_eq(v, oracle_faiss_version());
    cr_assert_str_eq(v, "1.7.3");
    cr_assert_eq(faiss_get_version(), v);
}

/* ---- error codes -------------------------------------------------------- */

static const int CODES[] = {
        FAISSX_OK,          FAISSX_E_UNKNOWN,    FAISSX_E_FAISS,
        FAISSX_E_STD,       FAISSX_E_INVALID,    FAISSX_E_NOMEM,
        FAISSX_E_IO,        FAISSX_E_UNSUPPORTED, FAISSX_E_AUTH,
        FAISSX_E_NOT_FOUND, FAISSX_E_PERMISSION, FAISSX_E_LIMIT,
        FAISSX_E_NET,       FAISSX_E_TIMEOUT,    FAISSX_E_EXISTS,
        FAISSX_E_PROTOCOL,  FAISSX_E_CANCELED,
};
#define NCODES (sizeof CODES / sizeof *CODES)

Test(ext, error_codes_extend_faiss) {
    cr_assert_eq(FAISSX_OK, OK);
    cr_assert_eq(FAISSX_E_UNKNOWN, UNKNOWN_EXCEPT);
    cr_assert_eq(FAISSX_E_FAISS, FAISS_EXCEPT);
    cr_assert_eq(FAISSX_E_STD, STD_EXCEPT);
    /* every failure code is negative and distinct */
    for (size_t i = 0; i < NCODES; i++) {
        if (CODES[i] != FAISSX_OK) cr_assert_lt(CODES[i], 0);
        for (size_t j = 0; j < i; j++)
            cr_assert_neq(CODES[i], CODES[j]);
    }
}

Test(ext, strerror_every_code) {
    const char* unknown = faissx_strerror(-3);
    cr_assert_not_null(unknown);
    cr_assert_neq(unknown[0], '\0');
    for (size_t i = 0; i < NCODES; i++) {
        const char* s = faissx_strerror(CODES[i]);
        cr_assert_not_null(s, "code %d", CODES[i]);
        cr_assert_neq(s[0], '\0', "code %d", CODES[i]);
        cr_assert_str_neq(s, unknown, "code %d has no text", CODES[i]);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(s, faissx_strerror(CODES[j]),
                              "codes %d and %d share a text", CODES[i],
                              CODES[j]);
        cr_assert_eq(faissx_strerror(CODES[i]), s, "not static");
    }
    cr_assert(strstr(faissx_strerror(FAISSX_E_INVALID), "invalid"));
    cr_assert(strstr(faissx_strerror(FAISSX_E_NOMEM), "memory"));
}

Test(ext, strerror_unknown_codes) {
    const char* unknown = faissx_strerror(-3);
    const int odd[] = {-3, 1, 2, 100, -1000, INT_MIN, INT_MAX, -18, -99};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        const char* s = faissx_strerror(odd[i]);
        cr_assert_not_null(s, "code %d", odd[i]);
        cr_assert_str_eq(s, unknown, "code %d", odd[i]);
    }
    /* every code in a wide range has some text */
    for (int c = -300; c <= 300; c++) {
        const char* s = faissx_strerror(c);
        cr_assert(s != NULL && s[0] != '\0', "code %d", c);
    }
}

/* ---- last error: code and per-thread message ---------------------------- */

Test(ext, last_error_code_tracks_failures) {
    /* an invalid argument */
    FaissParameterSpace* ps = NULL;
    int rc = faiss_ParameterSpace_new(NULL);
    cr_assert_eq(rc, FAISSX_E_INVALID);
    cr_assert_eq(faissx_last_error_code(), rc);
    /* faiss refused the operation (a FaissException) */
    FXT_OK(faiss_ParameterSpace_new(&ps));
    FaissIndexFlatL2* flat = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&flat, 4));
    rc = faiss_ParameterSpace_set_index_parameter(ps, flat, "nprobe", 3);
    cr_assert_eq(rc, FAISSX_E_FAISS, "rc %d: %s", rc, faiss_get_last_error());
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_FAISS);
    cr_assert(strstr(faiss_get_last_error(), "nprobe"));
    /* an I/O error */
    FaissIndex* rd = NULL;
    rc = faiss_read_index_fname(fxt_tmp_path("does-not-exist.index"), 0,
                                &rd);
    cr_assert_eq(rc, FAISSX_E_IO, "rc %d: %s", rc, faiss_get_last_error());
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_IO);
    cr_assert(strstr(faiss_get_last_error(), "does-not-exist"));
    /* and back to an invalid argument, from a void function */
    faiss_fvec_renorm_L2(4, 2, NULL);
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    cr_assert(strstr(faiss_get_last_error(), "faiss_fvec_renorm_L2"));
    /* every code the library returned has a specific text */
    cr_assert_str_neq(faissx_strerror(FAISSX_E_IO), faissx_strerror(-3));
    faiss_IndexFlatL2_free(flat);
    faiss_ParameterSpace_free(ps);
}

typedef struct ThreadOut {
    pthread_barrier_t* barrier;
    int which;           /* 0 or 1: which error to provoke */
    int initial_code;    /* before any call in the thread */
    int had_message;     /* faiss_get_last_error() != NULL initially */
    int rc;
    int code;
    char msg[512];
} ThreadOut;

static void* thread_body(void* arg) {
    ThreadOut* o = arg;
    o->initial_code = faissx_last_error_code();
    o->had_message = faiss_get_last_error() != NULL;
    if (o->which == 0) {
        FaissRangeSearchResult* r = NULL;
        o->rc = faiss_RangeSearchResult_new(&r, -7);
    } else {
        FaissIDSelectorRange* s = NULL;
        o->rc = faiss_IDSelectorRange_new(&s, 9, 2);
    }
    /* both threads have failed before either reads its message */
    pthread_barrier_wait(o->barrier);
    o->code = faissx_last_error_code();
    const char* m = faiss_get_last_error();
    snprintf(o->msg, sizeof o->msg, "%s", m ? m : "");
    pthread_barrier_wait(o->barrier);
    return NULL;
}

Test(ext, last_error_is_per_thread) {
    /* the main thread's own error */
    int rc = faiss_ParameterSpace_new(NULL);
    cr_assert_neq(rc, 0);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", faiss_get_last_error());
    cr_assert(strstr(mine, "faiss_ParameterSpace_new"));

    pthread_barrier_t barrier;
    cr_assert_eq(pthread_barrier_init(&barrier, NULL, 2), 0);
    ThreadOut out[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].barrier = &barrier;
        out[i].which = i;
        cr_assert_eq(pthread_create(&th[i], NULL, thread_body, &out[i]), 0);
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);

    for (int i = 0; i < 2; i++) {
        cr_assert_eq(out[i].initial_code, 0, "thread %d inherited a code", i);
        cr_assert_eq(out[i].had_message, 0,
                     "thread %d inherited a message", i);
        cr_assert_eq(out[i].rc, FAISSX_E_INVALID);
        cr_assert_eq(out[i].code, FAISSX_E_INVALID);
    }
    cr_assert(strstr(out[0].msg, "faiss_RangeSearchResult_new"),
              "thread 0: '%s'", out[0].msg);
    cr_assert(strstr(out[0].msg, "IDSelectorRange") == NULL);
    cr_assert(strstr(out[1].msg, "faiss_IDSelectorRange_new"),
              "thread 1: '%s'", out[1].msg);
    cr_assert(strstr(out[1].msg, "RangeSearchResult") == NULL);
    /* the main thread's message survived */
    cr_assert_str_eq(faiss_get_last_error(), mine);
    cr_assert_eq(faissx_last_error_code(), rc);
}

/* ---- search with SearchParametersIVF ----------------------------------- */

enum { D = 16, NB = 1500, NQ = 12, K = 8 };

static FaissIndex* make_ivf(const float* xb) {
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, "IVF16,Flat", METRIC_L2));
    FXT_OK(faiss_Index_train(ix, NB, xb));
    FXT_OK(faiss_Index_add(ix, NB, xb));
    return ix;
}

static void ivf_params_match(const FaissIndex* ix, const float* xb,
                             const float* xq,
                             const FaissSearchParametersIVF* sp,
                             size_t nprobe, size_t max_codes,
                             const uint8_t* member) {
    float Dc[NQ * K], Dr[NQ * K];
    idx_t Ic[NQ * K], Ir[NQ * K];
    FXT_OK(faiss_Index_search_with_params(ix, NQ, xq, K,
                                          (const FaissSearchParameters*)sp,
                                          Dc, Ic));
    ORC(oracle_ivf_search_params("IVF16,Flat", D, NB, xb, NB, xb, nprobe,
                                 max_codes, member, NQ, xq, K, Dr, Ir));
    cr_assert(memcmp(Ic, Ir, sizeof Ic) == 0,
              "labels differ (nprobe %zu, max_codes %zu, sel %d)", nprobe,
              max_codes, member != NULL);
    cr_assert(memcmp(Dc, Dr, sizeof Dc) == 0,
              "distances differ (nprobe %zu, max_codes %zu, sel %d)",
              nprobe, max_codes, member != NULL);
    if (member)
        for (int i = 0; i < NQ * K; i++)
            cr_assert(Ic[i] == -1 || member[Ic[i]]);
}

Test(ext, search_params_ivf_nprobe_matches_cpp) {
    float* xb = fxt_clustered(NB, D, 24, 0.05f, 1);
    float* xq = fxt_clustered(NQ, D, 24, 0.05f, 2);
    FaissIndex* ix = make_ivf(xb);
    const size_t probes[] = {1, 3, 16};
    for (size_t i = 0; i < 3; i++) {
        FaissSearchParametersIVF* sp = NULL;
        FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, probes[i], 0));
        cr_assert_eq(faiss_SearchParametersIVF_nprobe(sp), probes[i]);
        ivf_params_match(ix, xb, xq, sp, probes[i], 0, NULL);
        faiss_SearchParametersIVF_free(sp);
    }
    /* per call: the index's own nprobe is untouched */
    cr_assert_eq(faiss_IndexIVF_nprobe(ix), 1);
    /* and the parameter matters on this data */
    float D1[NQ * K], D16[NQ * K];
    idx_t I1[NQ * K], I16[NQ * K];
    ORC(oracle_ivf_search_params("IVF16,Flat", D, NB, xb, NB, xb, 1, 0,
                                 NULL, NQ, xq, K, D1, I1));
    ORC(oracle_ivf_search_params("IVF16,Flat", D, NB, xb, NB, xb, 16, 0,
                                 NULL, NQ, xq, K, D16, I16));
    cr_assert(memcmp(I1, I16, sizeof I1) != 0, "nprobe has no effect here");
    faiss_Index_free(ix);
    free(xb);
    free(xq);
}

Test(ext, search_params_ivf_selector_and_max_codes_match_cpp) {
    float* xb = fxt_clustered(NB, D, 24, 0.05f, 3);
    float* xq = fxt_clustered(NQ, D, 24, 0.05f, 4);
    FaissIndex* ix = make_ivf(xb);
    FaissIDSelectorRange* range = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&range, 200, 900));
    FaissIDSelectorNot* notr = NULL;
    FXT_OK(faiss_IDSelectorNot_new(&notr, (const FaissIDSelector*)range));
    uint8_t member[NB];
    for (int i = 0; i < NB; i++) member[i] = i >= 200 && i < 900;

    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, (FaissIDSelector*)range,
                                              8, 0));
    cr_assert_eq(faiss_SearchParametersIVF_sel(sp),
                 (const FaissIDSelector*)range);
    ivf_params_match(ix, xb, xq, sp, 8, 0, member);
    /* setters change later searches */
    faiss_SearchParametersIVF_set_nprobe(sp, 2);
    cr_assert_eq(faiss_SearchParametersIVF_nprobe(sp), 2);
    ivf_params_match(ix, xb, xq, sp, 2, 0, member);
    faiss_SearchParametersIVF_set_max_codes(sp, 60);
    cr_assert_eq(faiss_SearchParametersIVF_max_codes(sp), 60);
    ivf_params_match(ix, xb, xq, sp, 2, 60, member);
    faiss_SearchParametersIVF_free(sp);

    /* the complement through a combinator */
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, (FaissIDSelector*)notr,
                                              16, 0));
    for (int i = 0; i < NB; i++) member[i] = !member[i];
    ivf_params_match(ix, xb, xq, sp, 16, 0, member);
    faiss_SearchParametersIVF_free(sp);

    /* max_codes alone */
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, 16, 40));
    ivf_params_match(ix, xb, xq, sp, 16, 40, NULL);
    faiss_SearchParametersIVF_free(sp);

    faiss_IDSelector_free((FaissIDSelector*)notr);
    faiss_IDSelector_free((FaissIDSelector*)range);
    faiss_Index_free(ix);
    free(xb);
    free(xq);
}

Test(ext, search_params_ivf_defaults_and_casts) {
    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new(&sp));
    size_t np = 0, mc = 1;
    oracle_sp_ivf_defaults(&np, &mc);
    cr_assert_eq(faiss_SearchParametersIVF_nprobe(sp), np);
    cr_assert_eq(faiss_SearchParametersIVF_max_codes(sp), mc);
    cr_assert_null(faiss_SearchParametersIVF_sel(sp));
    cr_assert_eq(faiss_SearchParametersIVF_cast((FaissSearchParameters*)sp),
                 sp);
    FaissSearchParameters* plain = NULL;
    FXT_OK(faiss_SearchParameters_new(&plain, NULL));
    cr_assert_null(faiss_SearchParametersIVF_cast(plain));
    cr_assert_null(faiss_SearchParametersIVF_cast(NULL));
    /* IVF getters on a plain parameter set: 0 and an error */
    cr_assert_eq(faiss_SearchParametersIVF_nprobe(
                         (FaissSearchParametersIVF*)plain),
                 0);
    cr_assert(strstr(faiss_get_last_error(), "SearchParametersIVF"));
    cr_assert_eq(faiss_SearchParametersIVF_nprobe(NULL), 0);
    cr_assert(strstr(faiss_get_last_error(), "NULL"));
    FaissSearchParametersIVF* bad = NULL;
    FXT_ERR(faiss_SearchParametersIVF_new_with(&bad, NULL, 0, 0), "nprobe");
    cr_assert_null(bad);
    FXT_ERR(faiss_SearchParametersIVF_new(NULL), "NULL");
    FXT_ERR(faiss_SearchParameters_new(NULL, NULL), "NULL");
    faiss_SearchParameters_free(plain);
    faiss_SearchParametersIVF_free(sp);
    faiss_SearchParameters_free(NULL);
    faiss_SearchParametersIVF_free(NULL);
}

Test(ext, search_params_wrong_type_on_ivf_is_an_error) {
    float* xb = fxt_clustered(NB, D, 24, 0.05f, 5);
    float* xq = fxt_clustered(NQ, D, 24, 0.05f, 6);
    FaissIndex* ix = make_ivf(xb);
    FaissSearchParameters* plain = NULL;
    FXT_OK(faiss_SearchParameters_new(&plain, NULL));
    char ref[1024];
    ORC(oracle_ivf_wrong_params_message(ref, sizeof ref));
    float Dc[NQ * K];
    idx_t Ic[NQ * K];
    FXT_ERR(faiss_Index_search_with_params(ix, NQ, xq, K, plain, Dc, Ic),
            ref);
    cr_assert(strstr(faiss_get_last_error(),
                     "faiss_Index_search_with_params"));
    /* NULL parameters: the plain search */
    float Dr[NQ * K];
    idx_t Ir[NQ * K];
    FXT_OK(faiss_Index_search_with_params(ix, NQ, xq, K, NULL, Dc, Ic));
    FXT_OK(faiss_Index_search(ix, NQ, xq, K, Dr, Ir));
    FXT_SAME(Ic, Ir, sizeof Ic);
    FXT_SAME(Dc, Dr, sizeof Dc);
    /* argument checks */
    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, 4, 0));
    const FaissSearchParameters* p = (const FaissSearchParameters*)sp;
    FXT_ERR(faiss_Index_search_with_params(NULL, NQ, xq, K, p, Dc, Ic),
            "NULL");
    FXT_ERR(faiss_Index_search_with_params(ix, NQ, NULL, K, p, Dc, Ic),
            "NULL");
    FXT_ERR(faiss_Index_search_with_params(ix, NQ, xq, 0, p, Dc, Ic), "k");
    FXT_ERR(faiss_Index_search_with_params(ix, NQ, xq, K, p, NULL, Ic), "");
    FXT_ERR(faiss_Index_search_with_params(ix, NQ, xq, K, p, Dc, NULL), "");
    faiss_SearchParametersIVF_free(sp);
    faiss_SearchParameters_free(plain);
    faiss_Index_free(ix);
    free(xb);
    free(xq);
}

/* ---- search with SearchParametersHNSW ---------------------------------- */

static FaissIndex* make_hnsw(const char* factory, const float* xb,
                             const idx_t* ids) {
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, factory, METRIC_L2));
    if (ids)
        FXT_OK(faiss_Index_add_with_ids(ix, NB, xb, ids));
    else
        FXT_OK(faiss_Index_add(ix, NB, xb));
    return ix;
}

/* ix (an HNSW16 over xb, or an IDMap of one with ids[i] for position i)
 * searched with sp gives what faiss C++ gives with the same efSearch,
 * check_relative_distance and selector (member over positions). */
static void hnsw_params_match(const FaissIndex* ix, const idx_t* ids,
                              const float* xb, const float* xq,
                              const FaissSearchParametersHNSW* sp,
                              const uint8_t* member) {
    int ef = faiss_SearchParametersHNSW_efSearch(sp);
    int crd = faiss_SearchParametersHNSW_check_relative_distance(sp);
    float Dc[NQ * K], Dr[NQ * K];
    idx_t Ic[NQ * K], Ir[NQ * K];
    FXT_OK(faiss_Index_search_with_params(ix, NQ, xq, K,
                                          (const FaissSearchParameters*)sp,
                                          Dc, Ic));
    ORC(oracle_hnsw_search_params("HNSW16", D, NB, xb, ef, crd, member, NQ,
                                  xq, K, Dr, Ir));
    for (int i = 0; i < NQ * K; i++)
        if (ids && Ir[i] >= 0) Ir[i] = ids[Ir[i]];
    cr_assert(memcmp(Ic, Ir, sizeof Ic) == 0,
              "labels differ (efSearch %d, crd %d, sel %d, idmap %d)", ef,
              crd, member != NULL, ids != NULL);
    cr_assert(memcmp(Dc, Dr, sizeof Dc) == 0,
              "distances differ (efSearch %d, crd %d, sel %d, idmap %d)", ef,
              crd, member != NULL, ids != NULL);
}

Test(ext, search_params_hnsw_efsearch_matches_cpp) {
    float* xb = fxt_clustered(NB, D, 24, 0.05f, 7);
    float* xq = fxt_clustered(NQ, D, 24, 0.05f, 8);
    FaissIndex* ix = make_hnsw("HNSW16", xb, NULL);
    const int efs[] = {1, 8, 40, 200};
    for (size_t i = 0; i < 4; i++)
        for (int crd = 0; crd < 2; crd++) {
            FaissSearchParametersHNSW* sp = NULL;
            FXT_OK(faiss_SearchParametersHNSW_new_with(&sp, NULL, efs[i]));
            cr_assert_eq(faiss_SearchParametersHNSW_efSearch(sp), efs[i]);
            faiss_SearchParametersHNSW_set_check_relative_distance(sp, crd);
            cr_assert_eq(
                    faiss_SearchParametersHNSW_check_relative_distance(sp),
                    crd);
            hnsw_params_match(ix, NULL, xb, xq, sp, NULL);
            faiss_SearchParametersHNSW_free(sp);
        }
    /* per call: a plain search still uses the index's own efSearch */
    int ef0, crd0;
    oracle_sp_hnsw_defaults(&ef0, &crd0);
    float Dc[NQ * K], Dr[NQ * K];
    idx_t Ic[NQ * K], Ir[NQ * K];
    FXT_OK(faiss_Index_search(ix, NQ, xq, K, Dc, Ic));
    ORC(oracle_hnsw_search_params("HNSW16", D, NB, xb, ef0, crd0, NULL, NQ,
                                  xq, K, Dr, Ir));
    FXT_SAME(Ic, Ir, sizeof Ic);
    FXT_SAME(Dc, Dr, sizeof Dc);
    /* and efSearch matters on this data */
    float D1[NQ * K];
    idx_t I1[NQ * K];
    ORC(oracle_hnsw_search_params("HNSW16", D, NB, xb, 1, 1, NULL, NQ, xq, K,
                                  D1, I1));
    ORC(oracle_hnsw_search_params("HNSW16", D, NB, xb, 200, 1, NULL, NQ, xq,
                                  K, Dr, Ir));
    cr_assert(memcmp(D1, Dr, sizeof D1) != 0, "efSearch has no effect here");
    faiss_Index_free(ix);
    free(xb);
    free(xq);
}

Test(ext, search_params_hnsw_selector_and_idmap_match_cpp) {
    float* xb = fxt_clustered(NB, D, 24, 0.05f, 9);
    float* xq = fxt_clustered(NQ, D, 24, 0.05f, 10);
    uint8_t member[NB];
    idx_t ids[NB];
    for (int i = 0; i < NB; i++) {
        member[i] = i % 3 != 0;
        ids[i] = 1000 + 7 * (idx_t)i;
    }
    FaissIDSelectorBitmap* bm = NULL;
    uint8_t bits[NB / 8 + 1];
    memset(bits, 0, sizeof bits);
    for (int i = 0; i < NB; i++)
        if (member[i]) bits[i / 8] |= (uint8_t)(1u << (i % 8));
    FXT_OK(faiss_IDSelectorBitmap_new(&bm, sizeof bits, bits));
    FaissIndex* ix = make_hnsw("HNSW16", xb, NULL);
    FaissSearchParametersHNSW* sp = NULL;
    FXT_OK(faiss_SearchParametersHNSW_new_with(&sp, (FaissIDSelector*)bm,
                                               32));
    cr_assert_eq(faiss_SearchParametersHNSW_sel(sp),
                 (const FaissIDSelector*)bm);
    hnsw_params_match(ix, NULL, xb, xq, sp, member);
    faiss_SearchParametersHNSW_free(sp);
    faiss_Index_free(ix);

    /* IDMap over HNSW: the selector sees external ids */
    ix = make_hnsw("IDMap,HNSW16", xb, ids);
    size_t nsel = 0;
    idx_t* sel_ids = malloc(NB * sizeof(idx_t));
    for (int i = 0; i < NB; i++)
        if (member[i]) sel_ids[nsel++] = ids[i];
    FaissIDSelectorBatch* batch = NULL;
    FXT_OK(faiss_IDSelectorBatch_new(&batch, nsel, sel_ids));
    FXT_OK(faiss_SearchParametersHNSW_new_with(&sp, (FaissIDSelector*)batch,
                                               24));
    hnsw_params_match(ix, ids, xb, xq, sp, member);
    faiss_SearchParametersHNSW_free(sp);
    FXT_OK(faiss_SearchParametersHNSW_new_with(&sp, NULL, 64));
    hnsw_params_match(ix, ids, xb, xq, sp, NULL);
    faiss_SearchParametersHNSW_free(sp);
    faiss_IDSelector_free((FaissIDSelector*)batch);
    faiss_IDSelector_free((FaissIDSelector*)bm);
    free(sel_ids);
    faiss_Index_free(ix);
    free(xb);
    free(xq);
}

Test(ext, search_params_hnsw_defaults_casts_and_errors) {
    FaissSearchParametersHNSW* sp = NULL;
    FXT_OK(faiss_SearchParametersHNSW_new(&sp));
    int ef0, crd0;
    oracle_sp_hnsw_defaults(&ef0, &crd0);
    cr_assert_eq(faiss_SearchParametersHNSW_efSearch(sp), ef0);
    cr_assert_eq(faiss_SearchParametersHNSW_check_relative_distance(sp),
                 crd0);
    cr_assert_null(faiss_SearchParametersHNSW_sel(sp));
    FaissSearchParameters* base = (FaissSearchParameters*)sp;
    cr_assert_eq(faiss_SearchParametersHNSW_cast(base), sp);
    cr_assert_null(faiss_SearchParametersIVF_cast(base));
    FaissSearchParametersIVF* spi = NULL;
    FXT_OK(faiss_SearchParametersIVF_new(&spi));
    cr_assert_null(
            faiss_SearchParametersHNSW_cast((FaissSearchParameters*)spi));
    cr_assert_null(faiss_SearchParametersHNSW_cast(NULL));
    /* HNSW getters on IVF parameters or NULL: 0 and an error */
    cr_assert_eq(faiss_SearchParametersHNSW_efSearch(
                         (FaissSearchParametersHNSW*)spi),
                 0);
    cr_assert(strstr(faiss_get_last_error(), "SearchParametersHNSW"));
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    cr_assert_eq(faiss_SearchParametersHNSW_efSearch(NULL), 0);
    cr_assert(strstr(faiss_get_last_error(), "NULL"));
    faiss_SearchParametersHNSW_set_efSearch(NULL, 5);
    cr_assert(strstr(faiss_get_last_error(), "NULL"));
    cr_assert_null(faiss_SearchParametersHNSW_sel(NULL));
    /* bad values */
    FaissSearchParametersHNSW* bad = NULL;
    FXT_ERR(faiss_SearchParametersHNSW_new_with(&bad, NULL, 0), "efSearch");
    FXT_ERR(faiss_SearchParametersHNSW_new_with(&bad, NULL, -7),
            "efSearch must be > 0 (got -7)");
    cr_assert_null(bad);
    FXT_ERR(faiss_SearchParametersHNSW_new(NULL), "NULL");
    FXT_ERR(faiss_SearchParametersHNSW_new_with(NULL, NULL, 8), "NULL");

    float* xb = fxt_clustered(NB, D, 24, 0.05f, 11);
    FaissIndex* ix = make_hnsw("HNSW16", xb, NULL);
    float Dc[K], Dr[K];
    idx_t Ic[K], Ir[K];
    /* efSearch set to 0 or less afterwards: the search refuses it (faiss
     * would quietly search with k) */
    faiss_SearchParametersHNSW_set_efSearch(sp, 0);
    FXT_ERR(faiss_Index_search_with_params(ix, 1, xb, K, base, Dc, Ic),
            "efSearch must be > 0 (got 0)");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    faiss_SearchParametersHNSW_set_efSearch(sp, -1);
    FXT_ERR(faiss_Index_search_with_params(ix, 1, xb, K, base, Dc, Ic),
            "efSearch must be > 0 (got -1)");
    /* the index still answers as before */
    faiss_SearchParametersHNSW_set_efSearch(sp, 20);
    FXT_OK(faiss_Index_search_with_params(ix, 1, xb, K, base, Dc, Ic));
    ORC(oracle_hnsw_search_params("HNSW16", D, NB, xb, 20, crd0, NULL, 1, xb,
                                  K, Dr, Ir));
    FXT_SAME(Ic, Ir, sizeof Ic);
    cr_assert_eq(Ic[0], 0);
    /* IVF parameters on HNSW, HNSW parameters on IVF: refused by faiss */
    FXT_ERR(faiss_Index_search_with_params(
                    ix, 1, xb, K, (FaissSearchParameters*)spi, Dc, Ic),
            "");
    FaissIndex* ivf = make_ivf(xb);
    FXT_ERR(faiss_Index_search_with_params(ivf, 1, xb, K, base, Dc, Ic),
            "incorrect type");
    faiss_Index_free(ivf);
    faiss_Index_free(ix);
    free(xb);
    faiss_SearchParametersIVF_free(spi);
    faiss_SearchParametersHNSW_free(sp);
    faiss_SearchParametersHNSW_free(NULL);
}

/* ---- range search with parameters ------------------------------------- */

/* faissx_Index_range_search_with_params on ix equals faiss C++'s
 * range_search with the same parameters (nprobe 0: plain ones). */
static void range_params_match(const FaissIndex* ix, const char* factory,
                               const float* xb, const float* xq,
                               float radius, const FaissSearchParameters* sp,
                               size_t nprobe, const uint8_t* member) {
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, NQ));
    FXT_OK(faissx_Index_range_search_with_params(ix, NQ, xq, radius, sp,
                                                 res));
    size_t *lc, *lr;
    idx_t *Ic, *Ir;
    float *Dc, *Dr;
    faiss_RangeSearchResult_lims(res, &lc);
    faiss_RangeSearchResult_labels(res, &Ic, &Dc);
    ORC(oracle_range_search_params(factory, D, NB, xb, NB, xb, nprobe, member,
                                   NQ, xq, radius, &lr, &Ir, &Dr));
    FXT_SAME(lc, lr, (NQ + 1) * sizeof(size_t));
    size_t tot = lr[NQ];
    cr_assert_gt(tot, 0, "%s: the radius finds something", factory);
    FXT_SAME(Ic, Ir, tot * sizeof(idx_t));
    FXT_SAME(Dc, Dr, tot * sizeof(float));
    if (member)
        for (size_t i = 0; i < tot; i++) cr_assert(member[Ic[i]]);
    free(lr);
    free(Ir);
    free(Dr);
    faiss_RangeSearchResult_free(res);
}

Test(ext, range_search_with_params_matches_cpp) {
    float* xb = fxt_clustered(NB, D, 24, 0.05f, 12);
    const float* xq = xb + 310 * D; /* base vectors inside the selection */
    const float radius = 0.08f;
    uint8_t member[NB];
    for (int i = 0; i < NB; i++) member[i] = i >= 300 && i < 1100;
    FaissIDSelectorRange* range = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&range, 300, 1100));

    /* Flat: the selector */
    FaissIndex* flat = NULL;
    FXT_OK(faiss_index_factory(&flat, D, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(flat, NB, xb));
    FaissSearchParameters* ps = NULL;
    FXT_OK(faiss_SearchParameters_new(&ps, (FaissIDSelector*)range));
    range_params_match(flat, "Flat", xb, xq, radius, ps, 0, member);
    /* NULL parameters: faiss_Index_range_search */
    range_params_match(flat, "Flat", xb, xq, radius, NULL, 0, NULL);

    /* IVF: nprobe alone, and with the selector */
    FaissIndex* ivf = make_ivf(xb);
    const size_t probes[] = {1, 4, 16};
    for (size_t i = 0; i < 3; i++) {
        FaissSearchParametersIVF* sp = NULL;
        FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, probes[i], 0));
        range_params_match(ivf, "IVF16,Flat", xb, xq, radius,
                           (FaissSearchParameters*)sp, probes[i], NULL);
        faiss_SearchParametersIVF_free(sp);
        FXT_OK(faiss_SearchParametersIVF_new_with(
                &sp, (FaissIDSelector*)range, probes[i], 0));
        range_params_match(ivf, "IVF16,Flat", xb, xq, radius,
                           (FaissSearchParameters*)sp, probes[i], member);
        faiss_SearchParametersIVF_free(sp);
    }
    cr_assert_eq(faiss_IndexIVF_nprobe(ivf), 1, "the index keeps its nprobe");

    /* IDMap over Flat: the selector sees external ids (faiss 1.7.3's
     * IndexIDMap refuses parameters): the same hits, translated */
    idx_t ids[NB];
    for (int i = 0; i < NB; i++) ids[i] = 5 * (idx_t)i + 2;
    FaissIndex* idm = NULL;
    FXT_OK(faiss_index_factory(&idm, D, "IDMap,Flat", METRIC_L2));
    FXT_OK(faiss_Index_add_with_ids(idm, NB, xb, ids));
    FaissIDSelectorRange* ext = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&ext, ids[300], ids[1100]));
    FaissSearchParameters* pe = NULL;
    FXT_OK(faiss_SearchParameters_new(&pe, (FaissIDSelector*)ext));
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, NQ));
    FXT_OK(faissx_Index_range_search_with_params(idm, NQ, xq, radius, pe,
                                                 res));
    size_t *lc, *lr;
    idx_t *Ic, *Ir;
    float *Dc, *Dr;
    faiss_RangeSearchResult_lims(res, &lc);
    faiss_RangeSearchResult_labels(res, &Ic, &Dc);
    ORC(oracle_range_search_params("Flat", D, NB, xb, NB, xb, 0, member, NQ,
                                   xq, radius, &lr, &Ir, &Dr));
    FXT_SAME(lc, lr, (NQ + 1) * sizeof(size_t));
    cr_assert_gt(lr[NQ], 0);
    for (size_t i = 0; i < lr[NQ]; i++) cr_assert_eq(Ic[i], ids[Ir[i]]);
    FXT_SAME(Dc, Dr, lr[NQ] * sizeof(float));
    free(lr);
    free(Ir);
    free(Dr);
    faiss_RangeSearchResult_free(res);

    faiss_SearchParameters_free(pe);
    faiss_IDSelector_free((FaissIDSelector*)ext);
    faiss_Index_free(idm);
    faiss_SearchParameters_free(ps);
    faiss_IDSelector_free((FaissIDSelector*)range);
    faiss_Index_free(ivf);
    faiss_Index_free(flat);
    free(xb);
}

Test(ext, range_search_with_params_errors) {
    float* xb = fxt_clustered(NB, D, 24, 0.05f, 14);
    FaissIndex* ivf = make_ivf(xb);
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, 2));
    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, 4, 0));
    const FaissSearchParameters* p = (const FaissSearchParameters*)sp;
    FXT_ERR(faissx_Index_range_search_with_params(NULL, 2, xb, 1, p, res),
            "NULL");
    FXT_ERR(faissx_Index_range_search_with_params(ivf, 2, NULL, 1, p, res),
            "NULL");
    FXT_ERR(faissx_Index_range_search_with_params(ivf, 2, xb, 1, p, NULL),
            "'result' is NULL");
    FXT_ERR(faissx_Index_range_search_with_params(ivf, 3, xb, 1, p, res),
            "allocated for 2 queries");
    FXT_ERR(faissx_Index_range_search_with_params(ivf, 2, xb, NAN, p, res),
            "radius is NaN");
    /* parameters of the wrong kind: faiss's own refusal */
    FaissSearchParameters* plain = NULL;
    FXT_OK(faiss_SearchParameters_new(&plain, NULL));
    FXT_ERR(faissx_Index_range_search_with_params(ivf, 2, xb, 1, plain, res),
            "incorrect type");
    /* nprobe 0 set afterwards: refused, not a crash */
    faiss_SearchParametersIVF_set_nprobe(sp, 0);
    FXT_ERR(faissx_Index_range_search_with_params(ivf, 2, xb, 1, p, res),
            "nprobe must be > 0");
    /* HNSW: efSearch <= 0 is refused before anything; HNSW itself has no
     * range search in faiss 1.7.3, with or without parameters */
    FaissSearchParametersHNSW* sh = NULL;
    FXT_OK(faiss_SearchParametersHNSW_new(&sh));
    faiss_SearchParametersHNSW_set_efSearch(sh, 0);
    FaissIndex* hnsw = make_hnsw("HNSW16", xb, NULL);
    FXT_ERR(faissx_Index_range_search_with_params(
                    hnsw, 2, xb, 1, (FaissSearchParameters*)sh, res),
            "efSearch must be > 0");
    faiss_SearchParametersHNSW_set_efSearch(sh, 16);
    int rc1 = faissx_Index_range_search_with_params(
            hnsw, 2, xb, 1, (FaissSearchParameters*)sh, res);
    int rc2 = faiss_Index_range_search(hnsw, 2, xb, 1, res);
    cr_assert_neq(rc1, 0);
    cr_assert_neq(rc2, 0);
    /* after all that, the IVF still answers */
    faiss_SearchParametersIVF_set_nprobe(sp, 4);
    FXT_OK(faissx_Index_range_search_with_params(ivf, 2, xb, 0.01f, p, res));
    size_t* lims;
    faiss_RangeSearchResult_lims(res, &lims);
    cr_assert_geq(lims[1], 1, "the query vector finds itself");
    faiss_Index_free(hnsw);
    faiss_SearchParametersHNSW_free(sh);
    faiss_SearchParameters_free(plain);
    faiss_SearchParametersIVF_free(sp);
    faiss_RangeSearchResult_free(res);
    faiss_Index_free(ivf);
    free(xb);
}

/* faissx_ParameterSpace_initialize fills the space as faiss C++ does. */
Test(ext, parameter_space_initialize_enumerates) {
    FXT_LOCAL_ONLY("enumerating parameters needs the local faiss object");
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, 8, "IVF16,Flat", METRIC_L2));
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    cr_assert_eq(faiss_ParameterSpace_n_combinations(ps), 1);
    FXT_OK(faissx_ParameterSpace_initialize(ps, ix));
    size_t n = faiss_ParameterSpace_n_combinations(ps);
    cr_assert_gt(n, 1, "IVF16 has nprobe values to try");
    char name[128];
    FXT_OK(faiss_ParameterSpace_combination_name(ps, n - 1, name, sizeof name));
    cr_assert(strstr(name, "nprobe=") != NULL, "%s", name);
    FXT_OK(faiss_ParameterSpace_set_index_parameters_cno(ps, ix, n - 1));
    FXT_ERR(faissx_ParameterSpace_initialize(NULL, ix), "space");
    faiss_ParameterSpace_free(ps);
    faiss_Index_free(ix);
}
