/* test_sq.c -- IndexScalarQuantizer_c.h (flat and IVF scalar quantizers)
 * against faiss C++ (oracle_sq.cpp). */
#include "common.h"
#include "oracle.h"
#include "oracle_sq.h"
#include "oix_check.h"

#include <stdlib.h>

#define IX(p) ((FaissIndex*)(p))

enum { D = 32, NB = 2000, NQ = 40, K = 10, NLIST = 16 };

static const FaissQuantizerType all_qt[] = {
        QT_8bit, QT_4bit, QT_8bit_uniform, QT_4bit_uniform,
        QT_fp16, QT_8bit_direct, QT_6bit};
#define NQT ((int)(sizeof all_qt / sizeof *all_qt))

/* NB base vectors then NQ queries, clustered, scaled to about [0, 255] so
 * that QT_8bit_direct sees meaningful values. */
static float* g_x;
static const float* g_xb;
static const float* g_xq;

static void data_init(void) {
    g_x = fxt_clustered(NB + NQ, D, 30, 0.05f, 7);
    for (size_t i = 0; i < (size_t)(NB + NQ) * D; i++) g_x[i] *= 200.0f;
    g_xb = g_x;
    g_xq = g_x + (size_t)NB * D;
}

static void data_fini(void) {
    free(g_x);
    g_x = NULL;
}

TestSuite(sq, .init = data_init, .fini = data_fini);

/* sa_encode / sa_decode of the queries agree with C++; returns the mean
 * squared reconstruction error. `stable`: re-encoding a decoded vector gives
 * it back (true of flat scalar quantizers; with IVF the decoded vector may
 * fall into another list). */
static double same_codec(const FaissIndex* c, const OIx* o, int stable) {
    size_t cs = 0, cso = 0;
    FXT_OK(faiss_Index_sa_code_size(c, &cs));
    OIX_OK(oix_sa_code_size(o, &cso));
    cr_assert_eq(cs, cso);
    cr_assert_gt(cs, 0);
    uint8_t* c1 = malloc(NQ * cs);
    uint8_t* c2 = malloc(NQ * cs);
    FXT_OK(faiss_Index_sa_encode(c, NQ, g_xq, c1));
    OIX_OK(oix_sa_encode(o, NQ, g_xq, c2));
    FXT_SAME(c1, c2, NQ * cs);
    float* r1 = malloc(NQ * D * sizeof(float));
    float* r2 = malloc(NQ * D * sizeof(float));
    FXT_OK(faiss_Index_sa_decode(c, NQ, c1, r1));
    OIX_OK(oix_sa_decode(o, NQ, c1, r2));
    FXT_SAME(r1, r2, NQ * D * sizeof(float));
    if (stable) {
        FXT_OK(faiss_Index_sa_encode(c, NQ, r1, c2));
        FXT_OK(faiss_Index_sa_decode(c, NQ, c2, r2));
        FXT_SAME(r1, r2, NQ * D * sizeof(float));
    }
    double err = 0;
    for (size_t i = 0; i < (size_t)NQ * D; i++) {
        double e = r1[i] - g_xq[i];
        err += e * e;
    }
    free(c1);
    free(c2);
    free(r1);
    free(r2);
    return err / (NQ * D);
}

static void same_trained(const FaissIndex* c, const OIx* o) {
    size_t n1 = 0, n2 = 0;
    cr_assert_eq(oracle_sq_trained(c, NULL, 0, &n1), 0);
    OIX_OK(oix_sq_trained(o, NULL, 0, &n2));
    cr_assert_eq(n1, n2);
    float* t1 = malloc((n1 + 1) * sizeof(float));
    float* t2 = malloc((n2 + 1) * sizeof(float));
    cr_assert_eq(oracle_sq_trained(c, t1, n1, &n1), 0);
    OIX_OK(oix_sq_trained(o, t2, n2, &n2));
    FXT_SAME(t1, t2, n1 * sizeof(float));
    free(t1);
    free(t2);
}

/* ---- IndexScalarQuantizer ---- */

Test(sq, every_quantizer_type_l2_and_ip_matches_cpp) {
    FXT_LOCAL_ONLY("reads the faiss object behind the handle");
    const int metrics[] = {METRIC_L2, METRIC_INNER_PRODUCT};
    for (int m = 0; m < 2; m++) {
        for (int t = 0; t < NQT; t++) {
            FaissIndexScalarQuantizer* ix = NULL;
            FXT_OK(faiss_IndexScalarQuantizer_new_with(&ix, D, all_qt[t],
                                                       metrics[m]));
            OIx* o = oix_sq(D, all_qt[t], metrics[m]);
            cr_assert(o != NULL, "%s", oix_last_error());
            cr_assert_eq(faiss_Index_metric_type(IX(ix)), metrics[m]);
            cr_assert_eq(faiss_Index_d(IX(ix)), D);
            cr_assert_eq(faiss_Index_is_trained(IX(ix)), oix_is_trained(o),
                         "qt %d", all_qt[t]);
            int qt, byres;
            size_t cs;
            cr_assert_eq(oracle_sq_fields(IX(ix), &qt, &cs, &byres), 0);
            cr_assert_eq(qt, (int)all_qt[t]);
            cr_assert_eq(byres, -1);

            FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
            OIX_OK(oix_train(o, NB, g_xb));
            cr_assert_eq(faiss_Index_is_trained(IX(ix)), 1);
            same_trained(IX(ix), o);
            FXT_OK(faiss_Index_add(IX(ix), NB, g_xb));
            OIX_OK(oix_add(o, NB, g_xb, NULL));
            cr_assert_eq(faiss_Index_ntotal(IX(ix)), NB);
            oix_same_search(IX(ix), o, NQ, g_xq, K);
            (void)same_codec(IX(ix), o, 1);

            float* r1 = malloc(20 * D * sizeof(float));
            float* r2 = malloc(20 * D * sizeof(float));
            FXT_OK(faiss_Index_reconstruct_n(IX(ix), 100, 20, r1));
            OIX_OK(oix_reconstruct_n(o, 100, 20, r2));
            FXT_SAME(r1, r2, 20 * D * sizeof(float));
            free(r1);
            free(r2);
            oix_free(o);
            faiss_IndexScalarQuantizer_free(ix);
        }
    }
}

Test(sq, reconstruction_error_orders_by_precision) {
    const FaissQuantizerType order[] = {QT_fp16, QT_8bit, QT_6bit, QT_4bit};
    double err[4];
    for (int t = 0; t < 4; t++) {
        FaissIndexScalarQuantizer* ix = NULL;
        FXT_OK(faiss_IndexScalarQuantizer_new_with(&ix, D, order[t],
                                                   METRIC_L2));
        FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
        OIx* o = oix_sq(D, order[t], METRIC_L2);
        OIX_OK(oix_train(o, NB, g_xb));
        err[t] = same_codec(IX(ix), o, 1);
        oix_free(o);
        faiss_IndexScalarQuantizer_free(ix);
    }
    cr_log_info("SQ mse: fp16 %g, 8bit %g, 6bit %g, 4bit %g", err[0], err[1],
                err[2], err[3]);
    for (int t = 0; t < 3; t++)
        cr_assert_lt(err[t], err[t + 1], "type %d vs %d", t, t + 1);
    cr_assert_lt(err[0], 1e-3, "fp16 is nearly exact");
}

Test(sq, default_constructor_and_casts) {
    FaissIndexScalarQuantizer* e = NULL;
    FXT_OK(faiss_IndexScalarQuantizer_new(&e));
    cr_assert(e != NULL);
    cr_assert_eq(faiss_IndexScalarQuantizer_cast(IX(e)), e);
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_cast(IX(e)), NULL);
    faiss_IndexScalarQuantizer_free(e);

    FaissIndexIVFScalarQuantizer* ie = NULL;
    FXT_OK(faiss_IndexIVFScalarQuantizer_new(&ie));
    cr_assert(ie != NULL);
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_cast(IX(ie)), ie);
    cr_assert_eq(faiss_IndexScalarQuantizer_cast(IX(ie)), NULL);
    cr_assert_eq((void*)faiss_IndexIVF_cast(IX(ie)), (void*)ie);
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_quantizer(ie), NULL);
    faiss_IndexIVFScalarQuantizer_free(ie);

    FaissIndexFlatL2* flat = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&flat, D));
    cr_assert_eq(faiss_IndexScalarQuantizer_cast(IX(flat)), NULL);
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_cast(IX(flat)), NULL);
    cr_assert_eq(faiss_IndexScalarQuantizer_cast(NULL), NULL);
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_cast(NULL), NULL);
    /* IVFSQ getters on a flat index: error, zero */
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_nlist(
                         (FaissIndexIVFScalarQuantizer*)flat),
                 0);
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    cr_assert(strstr(faiss_get_last_error(), "IndexIVFScalarQuantizer") !=
              NULL);
    faiss_IndexIVFScalarQuantizer_set_nprobe(
            (FaissIndexIVFScalarQuantizer*)flat, 4);
    cr_assert(strstr(faiss_get_last_error(), "IndexIVFScalarQuantizer") !=
              NULL);
    faiss_IndexFlatL2_free(flat);
    faiss_IndexScalarQuantizer_free(NULL);
    faiss_IndexIVFScalarQuantizer_free(NULL);
}

/* ---- IndexIVFScalarQuantizer ---- */

static FaissIndexIVFScalarQuantizer* c_ivfsq(int metric, FaissQuantizerType qt,
                                             int residual) {
    FaissIndex* q = NULL;
    if (metric == METRIC_INNER_PRODUCT)
        FXT_OK(faiss_IndexFlatIP_new_with((FaissIndexFlatIP**)&q, D));
    else
        FXT_OK(faiss_IndexFlatL2_new_with((FaissIndexFlatL2**)&q, D));
    FaissIndexIVFScalarQuantizer* ix = NULL;
    FXT_OK(faiss_IndexIVFScalarQuantizer_new_with_metric(
            &ix, q, D, NLIST, qt, (FaissMetricType)metric, residual));
    faiss_IndexIVFScalarQuantizer_set_own_fields(ix, 1);
    return ix;
}

Test(sq, ivfsq_new_with_defaults_to_residual_l2) {
    FXT_LOCAL_ONLY("reads the faiss object behind the handle");
    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FaissIndexIVFScalarQuantizer* ix = NULL;
    FXT_OK(faiss_IndexIVFScalarQuantizer_new_with(&ix, IX(q), D, NLIST,
                                                  QT_8bit));
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_nlist(ix), NLIST);
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_nprobe(ix), 1);
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_quantizer(ix), IX(q));
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_own_fields(ix), 0);
    cr_assert_eq(faiss_Index_metric_type(IX(ix)), METRIC_L2);
    cr_assert_eq(faiss_Index_is_trained(IX(ix)), 0);
    int qt, byres;
    size_t cs;
    cr_assert_eq(oracle_sq_fields(IX(ix), &qt, &cs, &byres), 0);
    cr_assert_eq(qt, QT_8bit);
    cr_assert_eq(byres, 1, "C++'s default: encode residuals");
    cr_assert_eq(cs, D);
    faiss_IndexIVFScalarQuantizer_set_own_fields(ix, 3);
    cr_assert_eq(faiss_IndexIVFScalarQuantizer_own_fields(ix), 1);

    FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
    FXT_OK(faiss_Index_add(IX(ix), NB, g_xb));
    OIx* o = oix_ivfsq(D, METRIC_L2, NLIST, QT_8bit, 1, NULL);
    cr_assert(o != NULL, "%s", oix_last_error());
    OIX_OK(oix_train(o, NB, g_xb));
    OIX_OK(oix_add(o, NB, g_xb, NULL));
    same_trained(IX(ix), o);
    const size_t probes[] = {1, 4, NLIST};
    for (int i = 0; i < 3; i++) {
        faiss_IndexIVFScalarQuantizer_set_nprobe(ix, probes[i]);
        cr_assert_eq(faiss_IndexIVFScalarQuantizer_nprobe(ix), probes[i]);
        cr_assert_eq(faiss_IndexIVF_nprobe((FaissIndexIVF*)ix), probes[i]);
        OIX_OK(oix_set_nprobe(o, probes[i]));
        oix_same_search(IX(ix), o, NQ, g_xq, K);
    }
    oix_free(o);
    faiss_IndexIVFScalarQuantizer_free(ix); /* frees q (own_fields) */
}

Test(sq, ivfsq_new_with_metric_residual_and_not_match_cpp) {
    FXT_LOCAL_ONLY("reads the faiss object behind the handle");
    const int metrics[] = {METRIC_L2, METRIC_INNER_PRODUCT};
    const FaissQuantizerType qts[] = {QT_8bit, QT_4bit, QT_fp16, QT_6bit,
                                      QT_8bit_uniform};
    for (int m = 0; m < 2; m++)
        for (int t = 0; t < 5; t++)
            for (int res = 0; res < 2; res++) {
                FaissIndexIVFScalarQuantizer* ix =
                        c_ivfsq(metrics[m], qts[t], res);
                int qt, byres;
                size_t cs;
                cr_assert_eq(oracle_sq_fields(IX(ix), &qt, &cs, &byres), 0);
                cr_assert_eq(byres, res);
                cr_assert_eq(qt, (int)qts[t]);
                cr_assert_eq(faiss_Index_metric_type(IX(ix)), metrics[m]);
                FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
                FXT_OK(faiss_Index_add(IX(ix), NB, g_xb));
                faiss_IndexIVFScalarQuantizer_set_nprobe(ix, 4);

                OIx* o = oix_ivfsq(D, metrics[m], NLIST, qts[t], res, NULL);
                cr_assert(o != NULL, "%s", oix_last_error());
                OIX_OK(oix_train(o, NB, g_xb));
                OIX_OK(oix_add(o, NB, g_xb, NULL));
                OIX_OK(oix_set_nprobe(o, 4));
                same_trained(IX(ix), o);
                oix_same_search(IX(ix), o, NQ, g_xq, K);
                (void)same_codec(IX(ix), o, 0);
                oix_free(o);
                faiss_IndexIVFScalarQuantizer_free(ix);
            }
}

Test(sq, ivfsq_add_core_matches_cpp) {
    FaissIndexIVFScalarQuantizer* ix = c_ivfsq(METRIC_L2, QT_8bit, 1);
    FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
    idx_t* assign = malloc(NB * sizeof(idx_t));
    FXT_OK(faiss_Index_assign(faiss_IndexIVFScalarQuantizer_quantizer(ix), NB,
                              g_xb, assign, 1));
    FXT_OK(faiss_IndexIVFScalarQuantizer_add_core(ix, NB, g_xb, NULL,
                                                  assign));
    cr_assert_eq(faiss_Index_ntotal(IX(ix)), NB);
    OIx* o = oix_ivfsq(D, METRIC_L2, NLIST, QT_8bit, 1, NULL);
    OIX_OK(oix_train(o, NB, g_xb));
    OIX_OK(oix_add(o, NB, g_xb, NULL)); /* assigns the same way */
    for (size_t l = 0; l < NLIST; l++)
        cr_assert_eq(faiss_IndexIVF_get_list_size((FaissIndexIVF*)ix, l),
                     oix_list_size(o, l));
    faiss_IndexIVFScalarQuantizer_set_nprobe(ix, 3);
    OIX_OK(oix_set_nprobe(o, 3));
    oix_same_search(IX(ix), o, NQ, g_xq, K);

    /* with ids and explicit lists, replayed in C++ */
    FaissIndexIVFScalarQuantizer* ix2 = c_ivfsq(METRIC_L2, QT_4bit, 0);
    FXT_OK(faiss_Index_train(IX(ix2), NB, g_xb));
    idx_t* ids = malloc(NB * sizeof(idx_t));
    for (idx_t i = 0; i < NB; i++) {
        ids[i] = 5000 + i;
        assign[i] = (i * 5) % NLIST;
    }
    FXT_OK(faiss_IndexIVFScalarQuantizer_add_core(ix2, NB, g_xb, ids, assign));
    OIx* o2 = oix_ivfsq(D, METRIC_L2, NLIST, QT_4bit, 0, NULL);
    OIX_OK(oix_train(o2, NB, g_xb));
    OIX_OK(oix_add_core(o2, NB, g_xb, ids, assign));
    faiss_IndexIVFScalarQuantizer_set_nprobe(ix2, 2);
    OIX_OK(oix_set_nprobe(o2, 2));
    oix_same_search(IX(ix2), o2, NQ, g_xq, K);

    /* errors */
    assign[1] = NLIST;
    FXT_ERR(faiss_IndexIVFScalarQuantizer_add_core(ix2, 2, g_xb, NULL, assign),
            "outside");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_add_core(ix2, 2, g_xb, NULL, NULL),
            "precomputed_idx");
    FaissIndexIVFScalarQuantizer* un = c_ivfsq(METRIC_L2, QT_8bit, 1);
    assign[1] = 0;
    FXT_ERR(faiss_IndexIVFScalarQuantizer_add_core(un, 2, g_xb, NULL, assign),
            "not trained");
    cr_assert_eq(faiss_Index_ntotal(IX(un)), 0);
    cr_assert_eq(faiss_Index_ntotal(IX(ix2)), NB);

    faiss_IndexIVFScalarQuantizer_free(un);
    oix_free(o);
    oix_free(o2);
    free(ids);
    free(assign);
    faiss_IndexIVFScalarQuantizer_free(ix2);
    faiss_IndexIVFScalarQuantizer_free(ix);
}

/* A Flat quantizer already holding NLIST centroids (the first vectors). */
static FaissIndex* preset_quantizer(void) {
    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FXT_OK(faiss_Index_add(IX(q), NLIST, g_xb));
    return IX(q);
}

Test(sq, train_residual_matches_cpp_and_train) {
    FXT_LOCAL_ONLY("reads the faiss object behind the handle");
    const FaissQuantizerType qts[] = {QT_8bit, QT_4bit_uniform, QT_6bit};
    for (int t = 0; t < 3; t++) {
        FaissIndexIVFScalarQuantizer* a = NULL;
        FXT_OK(faiss_IndexIVFScalarQuantizer_new_with(&a, preset_quantizer(),
                                                      D, NLIST, qts[t]));
        faiss_IndexIVFScalarQuantizer_set_own_fields(a, 1);
        FXT_OK(faiss_IndexIVFScalarQuantizer_train_residual(a, NB, g_xb));

        OIx* o = oix_ivfsq(D, METRIC_L2, NLIST, qts[t], 1, g_xb);
        cr_assert(o != NULL, "%s", oix_last_error());
        OIX_OK(oix_train_residual(o, NB, g_xb));
        same_trained(IX(a), o);

        /* faiss_Index_train on the same setup trains the same way (the
         * quantizer needs no k-means) and marks the index trained */
        FaissIndexIVFScalarQuantizer* b = NULL;
        FXT_OK(faiss_IndexIVFScalarQuantizer_new_with(&b, preset_quantizer(),
                                                      D, NLIST, qts[t]));
        faiss_IndexIVFScalarQuantizer_set_own_fields(b, 1);
        FXT_OK(faiss_Index_train(IX(b), NB, g_xb));
        cr_assert_eq(faiss_Index_is_trained(IX(b)), 1);
        same_trained(IX(b), o);
        OIX_OK(oix_train(o, NB, g_xb));
        FXT_OK(faiss_Index_add(IX(b), NB, g_xb));
        OIX_OK(oix_add(o, NB, g_xb, NULL));
        oix_same_search(IX(b), o, NQ, g_xq, K);
        oix_free(o);
        faiss_IndexIVFScalarQuantizer_free(a);
        faiss_IndexIVFScalarQuantizer_free(b);
    }
}

Test(sq, train_residual_errors) {
    /* the coarse quantizer holds no centroids yet */
    FaissIndexIVFScalarQuantizer* ix = c_ivfsq(METRIC_L2, QT_8bit, 1);
    FXT_ERR(faiss_IndexIVFScalarQuantizer_train_residual(ix, NB, g_xb),
            "coarse quantizer");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_train_residual(ix, NB, NULL), "'x'");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_train_residual(ix, -3, g_xb),
            "n must");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_train_residual(NULL, NB, g_xb),
            "NULL");
    FaissIndexFlatL2* flat = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&flat, D));
    FXT_ERR(faiss_IndexIVFScalarQuantizer_train_residual(
                    (FaissIndexIVFScalarQuantizer*)flat, NB, g_xb),
            "IndexIVFScalarQuantizer");
    faiss_IndexFlatL2_free(flat);
    faiss_IndexIVFScalarQuantizer_free(ix);
}

Test(sq, ivfsq_sa_decode_rejects_bad_list_numbers) {
    FaissIndexIVFScalarQuantizer* ix = c_ivfsq(METRIC_L2, QT_8bit, 1);
    FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
    size_t cs = 0;
    FXT_OK(faiss_Index_sa_code_size(IX(ix), &cs));
    cr_assert_eq(cs, 1 + D, "1-byte list number + 8-bit codes");
    uint8_t* codes = malloc(2 * cs);
    FXT_OK(faiss_Index_sa_encode(IX(ix), 2, g_xq, codes));
    cr_assert_lt(codes[0], NLIST);
    codes[cs] = NLIST + 3; /* second code names a list that does not exist */
    float out[2 * D];
    FXT_ERR(faiss_Index_sa_decode(IX(ix), 2, codes, out), "list");
    free(codes);
    faiss_IndexIVFScalarQuantizer_free(ix);
}

/* ---- error paths ---- */

Test(sq, constructor_errors) {
    FaissIndexScalarQuantizer* s = NULL;
    FXT_ERR(faiss_IndexScalarQuantizer_new_with(&s, D, (FaissQuantizerType)7,
                                                METRIC_L2),
            "quantizer type 7");
    FXT_ERR(faiss_IndexScalarQuantizer_new_with(&s, D, (FaissQuantizerType)-1,
                                                METRIC_L2),
            "quantizer type");
    FXT_ERR(faiss_IndexScalarQuantizer_new_with(&s, 0, QT_8bit, METRIC_L2),
            "dimension");
    FXT_ERR(faiss_IndexScalarQuantizer_new_with(&s, D, QT_8bit,
                                                (FaissMetricType)42),
            "metric");
    FXT_ERR(faiss_IndexScalarQuantizer_new_with(NULL, D, QT_8bit, METRIC_L2),
            "NULL");
    FXT_ERR(faiss_IndexScalarQuantizer_new(NULL), "NULL");
    cr_assert_eq(s, NULL);

    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FaissIndexIVFScalarQuantizer* iv = NULL;
    FXT_ERR(faiss_IndexIVFScalarQuantizer_new_with(&iv, IX(q), D, NLIST,
                                                   (FaissQuantizerType)99),
            "quantizer type 99");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_new_with(&iv, IX(q), D, 0, QT_8bit),
            "nlist");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_new_with(&iv, IX(q), D + 2, NLIST,
                                                   QT_8bit),
            "dimension");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_new_with(&iv, IX(q), -5, NLIST,
                                                   QT_8bit),
            "dimension");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_new_with(&iv, NULL, D, NLIST,
                                                   QT_8bit),
            "quantizer");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_new_with_metric(
                    &iv, IX(q), D, NLIST, (FaissQuantizerType)7, METRIC_L2, 1),
            "quantizer type");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_new_with_metric(
                    &iv, IX(q), D, 0, QT_8bit, METRIC_L2, 0),
            "nlist");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_new_with_metric(
                    &iv, IX(q), 2 * D, NLIST, QT_8bit, METRIC_L2, 0),
            "dimension");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_new_with_metric(
                    &iv, IX(q), D, NLIST, QT_8bit, (FaissMetricType)-3, 0),
            "metric");
    FXT_ERR(faiss_IndexIVFScalarQuantizer_new(NULL), "NULL");
    cr_assert_eq(iv, NULL);
    faiss_IndexFlatL2_free(q);
}

Test(sq, untrained_use_fails) {
    FaissIndexScalarQuantizer* s = NULL;
    FXT_OK(faiss_IndexScalarQuantizer_new_with(&s, D, QT_8bit, METRIC_L2));
    cr_assert_eq(faiss_Index_is_trained(IX(s)), 0);
    float Dd[K];
    idx_t Ii[K];
    uint8_t code[D];
    FXT_ERR(faiss_Index_add(IX(s), 10, g_xb), "not trained");
    FXT_ERR(faiss_Index_search(IX(s), 1, g_xq, K, Dd, Ii), "not trained");
    FXT_ERR(faiss_Index_sa_encode(IX(s), 1, g_xq, code), "not trained");
    /* NaN in the training data is refused before faiss sees it */
    float* bad = malloc(NB * D * sizeof(float));
    memcpy(bad, g_xb, NB * D * sizeof(float));
    bad[17 * D + 3] = 0.0f / 0.0f;
    FXT_ERR(faiss_Index_train(IX(s), NB, bad), "non-finite");
    cr_assert_eq(faiss_Index_is_trained(IX(s)), 0);
    free(bad);
    faiss_IndexScalarQuantizer_free(s);

    FaissIndexIVFScalarQuantizer* iv = c_ivfsq(METRIC_L2, QT_4bit, 1);
    FXT_ERR(faiss_Index_add(IX(iv), 10, g_xb), "not trained");
    FXT_ERR(faiss_Index_search(IX(iv), 1, g_xq, K, Dd, Ii), "not trained");
    faiss_IndexIVFScalarQuantizer_free(iv);
}
