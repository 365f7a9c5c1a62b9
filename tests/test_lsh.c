/* test_lsh.c -- IndexLSH_c.h against faiss C++ (oracle_lsh.cpp). */
#include "common.h"
#include "oracle_lsh.h"
#include "oix_check.h"

#include <stdlib.h>

#define IX(p) ((FaissIndex*)(p))

enum { D = 32, NB = 2000, NQ = 40, K = 10 };

static float* g_x;
static const float* g_xb;
static const float* g_xq;

static void data_init(void) {
    g_x = fxt_clustered(NB + NQ, D, 30, 0.1f, 99);
    /* LSH without trained thresholds splits at 0: centre the data */
    for (size_t i = 0; i < (size_t)(NB + NQ) * D; i++) g_x[i] -= 0.5f;
    g_xb = g_x;
    g_xq = g_x + (size_t)NB * D;
}

static void data_fini(void) {
    free(g_x);
    g_x = NULL;
}

TestSuite(lsh, .init = data_init, .fini = data_fini);

static void same_codec(const FaissIndex* c, const OIx* o, int nbits) {
    size_t cs = 0, cso = 0;
    FXT_OK(faiss_Index_sa_code_size(c, &cs));
    OIX_OK(oix_sa_code_size(o, &cso));
    cr_assert_eq(cs, cso);
    cr_assert_eq(cs, (size_t)(nbits + 7) / 8);
    uint8_t* c1 = malloc(NQ * cs);
    uint8_t* c2 = malloc(NQ * cs);
    FXT_OK(faiss_Index_sa_encode(c, NQ, g_xq, c1));
    OIX_OK(oix_sa_encode(o, NQ, g_xq, c2));
    FXT_SAME(c1, c2, NQ * cs);
    /* faiss decodes only nbits components when it neither rotates nor
     * keeps all d: faissx writes 0 in the others (the oracle's buffer
     * starts zeroed, the C one full of garbage) */
    float* r1 = malloc(NQ * D * sizeof(float));
    float* r2 = calloc(NQ * D, sizeof(float));
    memset(r1, 0x7f, NQ * D * sizeof(float));
    FXT_OK(faiss_Index_sa_decode(c, NQ, c1, r1));
    OIX_OK(oix_sa_decode(o, NQ, c1, r2));
    FXT_SAME(r1, r2, NQ * D * sizeof(float));
    free(c1);
    free(c2);
    free(r1);
    free(r2);
}

static void same_thresholds(const FaissIndex* c, const OIx* o) {
    size_t n1 = 0, n2 = 0;
    cr_assert_eq(oracle_lsh_thresholds(c, NULL, 0, &n1), 0);
    OIX_OK(oix_lsh_thresholds(o, NULL, 0, &n2));
    cr_assert_eq(n1, n2);
    float* t1 = malloc((n1 + 1) * sizeof(float));
    float* t2 = malloc((n2 + 1) * sizeof(float));
    cr_assert_eq(oracle_lsh_thresholds(c, t1, n1, &n1), 0);
    OIX_OK(oix_lsh_thresholds(o, t2, n2, &n2));
    FXT_SAME(t1, t2, n1 * sizeof(float));
    free(t1);
    free(t2);
}

Test(lsh, new_defaults_getters_and_search_match_cpp) {
    FaissIndexLSH* ix = NULL;
    FXT_OK(faiss_IndexLSH_new(&ix, D, 64));
    cr_assert_eq(faiss_IndexLSH_nbits(ix), 64);
    cr_assert_eq(faiss_IndexLSH_code_size(ix), 8);
    cr_assert_eq(faiss_IndexLSH_rotate_data(ix), 1, "C++ default: rotate");
    cr_assert_eq(faiss_IndexLSH_train_thresholds(ix), 0);
    cr_assert_eq(faiss_Index_is_trained(IX(ix)), 1);
    cr_assert_eq(faiss_Index_d(IX(ix)), D);
    FXT_OK(faiss_Index_add(IX(ix), NB, g_xb));
    cr_assert_eq(faiss_Index_ntotal(IX(ix)), NB);

    OIx* o = oix_lsh(D, 64, 1, 0);
    cr_assert(o != NULL, "%s", oix_last_error());
    OIX_OK(oix_add(o, NB, g_xb, NULL));
    oix_same_search(IX(ix), o, NQ, g_xq, K);
    same_codec(IX(ix), o, 64);

    /* a base vector finds a code at Hamming distance 0 */
    float Dd[5 * K];
    idx_t Ii[5 * K];
    FXT_OK(faiss_Index_search(IX(ix), 5, g_xb + 100 * D, K, Dd, Ii));
    for (int i = 0; i < 5; i++) cr_assert_eq(Dd[i * K], 0.0f);
    oix_free(o);
    faiss_IndexLSH_free(ix);
}

Test(lsh, options_all_combinations_match_cpp) {
    FXT_LOCAL_ONLY("reads the trained thresholds from the faiss object");
    const int nbits[] = {8, 20, 32, 48};
    for (int b = 0; b < 4; b++)
        for (int rot = 0; rot < 2; rot++)
            for (int thr = 0; thr < 2; thr++) {
                if (!rot && nbits[b] > D) continue; /* refused, see below */
                FaissIndexLSH* ix = NULL;
                FXT_OK(faiss_IndexLSH_new_with_options(&ix, D, nbits[b], rot,
                                                       thr));
                cr_assert_eq(faiss_IndexLSH_nbits(ix), nbits[b]);
                cr_assert_eq(faiss_IndexLSH_code_size(ix),
                             (nbits[b] + 7) / 8);
                cr_assert_eq(faiss_IndexLSH_rotate_data(ix), rot);
                cr_assert_eq(faiss_IndexLSH_train_thresholds(ix), thr);
                cr_assert_eq(faiss_Index_is_trained(IX(ix)), !thr);
                OIx* o = oix_lsh(D, nbits[b], rot, thr);
                cr_assert(o != NULL, "%s", oix_last_error());
                if (thr) {
                    float Dd[K];
                    idx_t Ii[K];
                    FXT_ERR(faiss_Index_add(IX(ix), NB, g_xb), "not trained");
                    FXT_ERR(faiss_Index_search(IX(ix), 1, g_xq, K, Dd, Ii),
                            "not trained");
                    FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
                    OIX_OK(oix_train(o, NB, g_xb));
                    cr_assert_eq(faiss_Index_is_trained(IX(ix)), 1);
                }
                same_thresholds(IX(ix), o);
                FXT_OK(faiss_Index_add(IX(ix), NB, g_xb));
                OIX_OK(oix_add(o, NB, g_xb, NULL));
                oix_same_search(IX(ix), o, NQ, g_xq, K);
                same_codec(IX(ix), o, nbits[b]);
                oix_free(o);
                faiss_IndexLSH_free(ix);
            }
}

Test(lsh, trained_thresholds_change_the_codes) {
    FXT_LOCAL_ONLY("reads the trained thresholds from the faiss object");
    /* shift the data off zero: trained thresholds follow it, fixed ones
     * (at 0) put every vector in the same bucket */
    float* x = malloc((size_t)NB * D * sizeof(float));
    for (size_t i = 0; i < (size_t)NB * D; i++) x[i] = g_xb[i] + 10.0f;
    FaissIndexLSH *fixed = NULL, *trained = NULL;
    FXT_OK(faiss_IndexLSH_new_with_options(&fixed, D, D, 0, 0));
    FXT_OK(faiss_IndexLSH_new_with_options(&trained, D, D, 0, 1));
    FXT_OK(faiss_Index_train(IX(trained), NB, x));
    uint8_t cf[2 * D / 8], ct[2 * D / 8];
    FXT_OK(faiss_Index_sa_encode(IX(fixed), 2, x, cf));
    FXT_OK(faiss_Index_sa_encode(IX(trained), 2, x, ct));
    cr_assert(memcmp(cf, cf + D / 8, D / 8) == 0,
                 "all-positive data: one bucket");
    cr_assert(memcmp(ct, ct + D / 8, D / 8) != 0,
              "trained thresholds separate the vectors");
    OIx* o = oix_lsh(D, D, 0, 1);
    OIX_OK(oix_train(o, NB, x));
    same_thresholds(IX(trained), o);
    oix_free(o);
    free(x);
    faiss_IndexLSH_free(fixed);
    faiss_IndexLSH_free(trained);
}

Test(lsh, casts_and_getters_on_other_types) {
    FaissIndexLSH* ix = NULL;
    FXT_OK(faiss_IndexLSH_new(&ix, D, 16));
    cr_assert_eq(faiss_IndexLSH_cast(IX(ix)), ix);
    FaissIndexFlatL2* flat = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&flat, D));
    cr_assert_eq(faiss_IndexLSH_cast(IX(flat)), NULL);
    cr_assert_eq(faiss_IndexLSH_cast(NULL), NULL);
    cr_assert_eq(faiss_IndexFlat_cast(IX(ix)), NULL);
    cr_assert_eq(faiss_IndexLSH_nbits((FaissIndexLSH*)flat), 0);
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    cr_assert(strstr(faiss_get_last_error(), "IndexLSH") != NULL);
    cr_assert_eq(faiss_IndexLSH_code_size(NULL), 0);
    cr_assert(strstr(faiss_get_last_error(), "NULL") != NULL);
    faiss_IndexFlatL2_free(flat);
    faiss_IndexLSH_free(ix);
    faiss_IndexLSH_free(NULL);
}

Test(lsh, constructor_errors) {
    FaissIndexLSH* ix = NULL;
    FXT_ERR(faiss_IndexLSH_new(&ix, 0, 16), "dimension");
    FXT_ERR(faiss_IndexLSH_new(&ix, -4, 16), "dimension");
    FXT_ERR(faiss_IndexLSH_new(&ix, D, 0), "nbits");
    FXT_ERR(faiss_IndexLSH_new(&ix, D, -8), "nbits");
    FXT_ERR(faiss_IndexLSH_new(NULL, D, 16), "NULL");
    /* more bits than dimensions need the rotation */
    FXT_ERR(faiss_IndexLSH_new_with_options(&ix, D, 2 * D, 0, 0), "nbits");
    cr_assert_eq(ix, NULL);
    FXT_OK(faiss_IndexLSH_new_with_options(&ix, D, 2 * D, 1, 0));
    OIx* o = oix_lsh(D, 2 * D, 1, 0);
    FXT_OK(faiss_Index_add(IX(ix), NB, g_xb));
    OIX_OK(oix_add(o, NB, g_xb, NULL));
    oix_same_search(IX(ix), o, NQ, g_xq, K);
    oix_free(o);
    faiss_IndexLSH_free(ix);
}
