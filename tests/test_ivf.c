/* test_ivf.c -- IndexIVF_c.h, IndexIVFFlat_c.h and SearchParametersIVF
 * (faissx.h) against faiss C++ (oracle_ivf.cpp). */
#include "common.h"
#include "oracle.h"
#include "oracle_ivf.h"
#include "oix_check.h"

#include <stdlib.h>

#define IX(p) ((FaissIndex*)(p))
#define IVF(p) ((FaissIndexIVF*)(p))

enum { D = 32, NB = 3000, NQ = 40, K = 10, NLIST = 32 };

/* NB base vectors followed by NQ queries from the same clustered
 * distribution (the base doubles as training set). */
static float* g_x;
static const float* g_xb;
static const float* g_xq;

static void data_init(void) {
    g_x = fxt_clustered(NB + NQ, D, 50, 0.05f, 42);
    g_xb = g_x;
    g_xq = g_x + (size_t)NB * D;
}

static void data_fini(void) {
    free(g_x);
    g_x = NULL;
}

TestSuite(ivf, .init = data_init, .fini = data_fini);

/* A trained (and filled, when nb > 0) IVFFlat owning a Flat quantizer of
 * the given metric, built through the C API. */
static FaissIndexIVFFlat* c_ivfflat(int metric, size_t nlist, idx_t nb) {
    FaissIndex* q = NULL;
    if (metric == METRIC_INNER_PRODUCT)
        FXT_OK(faiss_IndexFlatIP_new_with((FaissIndexFlatIP**)&q, D));
    else
        FXT_OK(faiss_IndexFlatL2_new_with((FaissIndexFlatL2**)&q, D));
    FaissIndexIVFFlat* ix = NULL;
    FXT_OK(faiss_IndexIVFFlat_new_with_metric(&ix, q, D, nlist, metric));
    faiss_IndexIVFFlat_set_own_fields(ix, 1);
    FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
    if (nb > 0) FXT_OK(faiss_Index_add(IX(ix), nb, g_xb));
    return ix;
}

/* The same on the C++ side. */
static OIx* o_ivfflat(int metric, size_t nlist, idx_t nb) {
    OIx* o = oix_ivfflat(D, metric, nlist);
    cr_assert(o != NULL, "%s", oix_last_error());
    OIX_OK(oix_train(o, NB, g_xb));
    if (nb > 0) OIX_OK(oix_add(o, nb, g_xb, NULL));
    return o;
}

/* Lists of both sides hold the same ids in the same order. */
static void same_lists(const FaissIndexIVF* c, const OIx* o) {
    size_t nlist = faiss_IndexIVF_nlist(c);
    size_t tot = 0;
    for (size_t l = 0; l < nlist; l++) {
        size_t n = faiss_IndexIVF_get_list_size(c, l);
        cr_assert_eq(n, oix_list_size(o, l), "list %zu size", l);
        tot += n;
        idx_t* a = malloc((n + 1) * sizeof(idx_t));
        idx_t* b = malloc((n + 1) * sizeof(idx_t));
        faiss_IndexIVF_invlists_get_ids(c, l, a);
        OIX_OK(oix_list_ids(o, l, b));
        FXT_SAME(a, b, n * sizeof(idx_t));
        free(a);
        free(b);
    }
    cr_assert_eq((idx_t)tot, faiss_Index_ntotal((const FaissIndex*)c));
    cr_assert_eq((idx_t)tot, oix_ntotal(o));
}

/* ---- construction, getters, search ---- */

Test(ivf, ivfflat_l2_matches_cpp_at_several_nprobe) {
    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FaissIndexIVFFlat* ix = NULL;
    FXT_OK(faiss_IndexIVFFlat_new_with(&ix, IX(q), D, NLIST));
    cr_assert_eq(faiss_IndexIVFFlat_nlist(ix), NLIST);
    cr_assert_eq(faiss_IndexIVFFlat_nprobe(ix), 1);
    cr_assert_eq(faiss_IndexIVFFlat_quantizer(ix), IX(q));
    cr_assert_eq(faiss_IndexIVFFlat_quantizer_trains_alone(ix), 0);
    cr_assert_eq(faiss_IndexIVFFlat_own_fields(ix), 0);
    cr_assert_eq(faiss_Index_metric_type(IX(ix)), METRIC_L2);
    cr_assert_eq(faiss_Index_d(IX(ix)), D);
    cr_assert_eq(faiss_Index_is_trained(IX(ix)), 0);
    faiss_IndexIVFFlat_set_own_fields(ix, 1);
    cr_assert_eq(faiss_IndexIVFFlat_own_fields(ix), 1);

    FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
    cr_assert_eq(faiss_Index_is_trained(IX(ix)), 1);
    cr_assert_eq(faiss_Index_ntotal(IX(q)), NLIST, "quantizer holds the centroids");
    FXT_OK(faiss_Index_add(IX(ix), NB, g_xb));
    cr_assert_eq(faiss_Index_ntotal(IX(ix)), NB);

    OIx* o = o_ivfflat(METRIC_L2, NLIST, NB);
    const size_t probes[] = {1, 3, 8, NLIST};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        faiss_IndexIVFFlat_set_nprobe(ix, probes[i]);
        cr_assert_eq(faiss_IndexIVFFlat_nprobe(ix), probes[i]);
        cr_assert_eq(faiss_IndexIVF_nprobe(IVF(ix)), probes[i]);
        OIX_OK(oix_set_nprobe(o, probes[i]));
        oix_same_search(IX(ix), o, NQ, g_xq, K);
    }
    /* nprobe beyond nlist is clamped by faiss, on both sides */
    faiss_IndexIVF_set_nprobe(IVF(ix), 5 * NLIST);
    OIX_OK(oix_set_nprobe(o, 5 * NLIST));
    oix_same_search(IX(ix), o, NQ, g_xq, K);
    oix_free(o);
    faiss_IndexIVFFlat_free(ix);
}

Test(ivf, ivfflat_ip_matches_cpp) {
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_INNER_PRODUCT, NLIST, NB);
    cr_assert_eq(faiss_Index_metric_type(IX(ix)), METRIC_INNER_PRODUCT);
    cr_assert_eq(faiss_Index_metric_type(faiss_IndexIVFFlat_quantizer(ix)),
                 METRIC_INNER_PRODUCT);
    OIx* o = o_ivfflat(METRIC_INNER_PRODUCT, NLIST, NB);
    const size_t probes[] = {1, 4, 16};
    for (size_t i = 0; i < 3; i++) {
        faiss_IndexIVFFlat_set_nprobe(ix, probes[i]);
        OIX_OK(oix_set_nprobe(o, probes[i]));
        oix_same_search(IX(ix), o, NQ, g_xq, K);
    }
    same_lists(IVF(ix), o);
    oix_free(o);
    faiss_IndexIVFFlat_free(ix);
}

/* The C construction is the one faiss's factory performs for "IVF64,Flat". */
Test(ivf, ivfflat_matches_factory_ivf64_flat) {
    const int metrics[] = {METRIC_L2, METRIC_INNER_PRODUCT};
    for (int m = 0; m < 2; m++) {
        FaissIndexIVFFlat* ix = c_ivfflat(metrics[m], 64, NB);
        faiss_IndexIVFFlat_set_nprobe(ix, 8);
        float D1[NQ * K], D2[NQ * K];
        idx_t I1[NQ * K], I2[NQ * K];
        FXT_OK(faiss_Index_search(IX(ix), NQ, g_xq, K, D1, I1));
        cr_assert_eq(oracle_factory_search("IVF64,Flat", D, metrics[m], NB,
                                           g_xb, NB, g_xb, NULL, "nprobe=8",
                                           NQ, g_xq, K, D2, I2),
                     0, "%s", oracle_last_error());
        FXT_SAME(I1, I2, sizeof I1);
        FXT_SAME(D1, D2, sizeof D1);
        faiss_IndexIVFFlat_free(ix);
    }
}

Test(ivf, default_constructor_and_casts) {
    FaissIndexIVFFlat* empty = NULL;
    FXT_OK(faiss_IndexIVFFlat_new(&empty));
    cr_assert(empty != NULL);
    cr_assert_eq(faiss_IndexIVFFlat_quantizer(empty), NULL);
    cr_assert_eq(faiss_IndexIVFFlat_cast(IX(empty)), empty);
    faiss_IndexIVFFlat_free(empty);

    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, 0);
    cr_assert_eq((void*)faiss_IndexIVF_cast(IX(ix)), (void*)ix);
    cr_assert_eq((void*)faiss_IndexIVFFlat_cast(IX(ix)), (void*)ix);
    /* the IndexIVF getters see the same object */
    cr_assert_eq(faiss_IndexIVF_nlist(IVF(ix)), NLIST);
    cr_assert_eq(faiss_IndexIVF_quantizer(IVF(ix)),
                 faiss_IndexIVFFlat_quantizer(ix));
    cr_assert_eq(faiss_IndexIVF_quantizer_trains_alone(IVF(ix)), 0);
    cr_assert_eq(faiss_IndexIVF_own_fields(IVF(ix)), 1);

    FaissIndex* flat = faiss_IndexIVFFlat_quantizer(ix);
    cr_assert_eq(faiss_IndexIVF_cast(flat), NULL);
    cr_assert_eq(faiss_IndexIVFFlat_cast(flat), NULL);
    cr_assert_eq(faiss_IndexIVF_cast(NULL), NULL);
    cr_assert_eq(faiss_IndexIVFFlat_cast(NULL), NULL);

    /* an IVF of another kind is an IndexIVF but not an IndexIVFFlat */
    FaissIndexFlatL2* q2 = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q2, D));
    FaissIndexIVFScalarQuantizer* sq = NULL;
    FXT_OK(faiss_IndexIVFScalarQuantizer_new_with(&sq, IX(q2), D, NLIST,
                                                  QT_8bit));
    faiss_IndexIVFScalarQuantizer_set_own_fields(sq, 1);
    cr_assert_eq((void*)faiss_IndexIVF_cast(IX(sq)), (void*)sq);
    cr_assert_eq(faiss_IndexIVFFlat_cast(IX(sq)), NULL);
    cr_assert_eq(faiss_IndexIVF_nlist(IVF(sq)), NLIST);
    faiss_IndexIVF_free(IVF(sq));
    faiss_IndexIVFFlat_free(ix);
}

/* ---- own_fields ---- */

Test(ivf, own_fields_one_frees_the_quantizer) {
    int destroyed = -1;
    FaissIndex* q = oracle_tracked_flat(D, METRIC_L2, &destroyed);
    cr_assert_eq(destroyed, 0);
    FaissIndexIVFFlat* ix = NULL;
    FXT_OK(faiss_IndexIVFFlat_new_with(&ix, q, D, NLIST));
    faiss_IndexIVFFlat_set_own_fields(ix, 7); /* any non-zero value */
    cr_assert_eq(faiss_IndexIVFFlat_own_fields(ix), 1);
    FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
    faiss_IndexIVFFlat_free(ix);
    cr_assert_eq(destroyed, 1, "own_fields=1: the IVF frees its quantizer");
}

Test(ivf, own_fields_zero_leaves_the_quantizer_to_the_caller) {
    int destroyed = -1;
    FaissIndex* q = oracle_tracked_flat(D, METRIC_L2, &destroyed);
    FaissIndexIVFFlat* ix = NULL;
    FXT_OK(faiss_IndexIVFFlat_new_with(&ix, q, D, NLIST));
    faiss_IndexIVF_set_own_fields(IVF(ix), 1);
    faiss_IndexIVF_set_own_fields(IVF(ix), 0);
    cr_assert_eq(faiss_IndexIVF_own_fields(IVF(ix)), 0);
    FXT_OK(faiss_Index_train(IX(ix), NB, g_xb));
    FXT_OK(faiss_Index_add(IX(ix), NB, g_xb));
    faiss_IndexIVF_free(IVF(ix));
    cr_assert_eq(destroyed, 0, "own_fields=0: the quantizer survives");
    /* still usable: it holds the trained centroids */
    cr_assert_eq(faiss_Index_ntotal(q), NLIST);
    float dis[NQ];
    idx_t lab[NQ];
    FXT_OK(faiss_Index_search(q, NQ, g_xq, 1, dis, lab));
    for (int i = 0; i < NQ; i++) cr_assert(lab[i] >= 0 && lab[i] < NLIST);
    faiss_Index_free(q);
    cr_assert_eq(destroyed, 1);
}

/* ---- merge_from ---- */

/* An empty IVFFlat whose own quantizer holds a copy of src's centroids. */
static FaissIndexIVFFlat* c_same_centroids(FaissIndexIVFFlat* src) {
    FaissIndex* sq = faiss_IndexIVFFlat_quantizer(src);
    size_t nlist = faiss_IndexIVFFlat_nlist(src);
    float* cent = malloc(nlist * D * sizeof(float));
    FXT_OK(faiss_Index_reconstruct_n(sq, 0, (idx_t)nlist, cent));
    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FXT_OK(faiss_Index_add(IX(q), (idx_t)nlist, cent));
    free(cent);
    FaissIndexIVFFlat* ix = NULL;
    FXT_OK(faiss_IndexIVFFlat_new_with(&ix, IX(q), D, nlist));
    faiss_IndexIVFFlat_set_own_fields(ix, 1);
    cr_assert_eq(faiss_Index_is_trained(IX(ix)), 1,
                 "a quantizer with nlist centroids needs no training");
    return ix;
}

Test(ivf, merge_from_matches_cpp_and_single_index) {
    const idx_t n1 = 1800, n2 = NB - n1;
    FaissIndexIVFFlat* a = c_ivfflat(METRIC_L2, NLIST, n1);
    FaissIndexIVFFlat* b = c_same_centroids(a);
    FXT_OK(faiss_Index_add(IX(b), n2, g_xb + (size_t)n1 * D));
    FXT_OK(faiss_IndexIVF_merge_from(IVF(a), IVF(b), n1));
    cr_assert_eq(faiss_Index_ntotal(IX(a)), NB);
    cr_assert_eq(faiss_Index_ntotal(IX(b)), 0, "merge_from empties the source");

    OIx* oa = o_ivfflat(METRIC_L2, NLIST, n1);
    OIx* ob = oix_ivf_empty_clone(oa);
    cr_assert(ob != NULL, "%s", oix_last_error());
    OIX_OK(oix_add(ob, n2, g_xb + (size_t)n1 * D, NULL));
    OIX_OK(oix_merge(oa, ob, n1));
    faiss_IndexIVFFlat_set_nprobe(a, 4);
    OIX_OK(oix_set_nprobe(oa, 4));
    oix_same_search(IX(a), oa, NQ, g_xq, K);
    same_lists(IVF(a), oa);

    /* merging with add_id = n1 is the same as adding everything at once */
    OIx* all = o_ivfflat(METRIC_L2, NLIST, NB);
    OIX_OK(oix_set_nprobe(all, 4));
    oix_same_search(IX(a), all, NQ, g_xq, K);

    oix_free(all);
    oix_free(oa);
    oix_free(ob);
    faiss_IndexIVFFlat_free(a);
    faiss_IndexIVFFlat_free(b);
}

Test(ivf, merge_from_errors) {
    FaissIndexIVFFlat* a = c_ivfflat(METRIC_L2, NLIST, 100);
    FaissIndexIVFFlat* other = c_ivfflat(METRIC_L2, NLIST / 2, 100);
    FXT_ERR(faiss_IndexIVF_merge_from(IVF(a), IVF(a), 0), "itself");
    FXT_ERR(faiss_IndexIVF_merge_from(IVF(a), IVF(other), 0), "nlist");
    cr_assert_eq(faiss_Index_ntotal(IX(a)), 100);
    cr_assert_eq(faiss_Index_ntotal(IX(other)), 100);
    /* different centroids: faiss's compatibility check refuses */
    FaissIndexIVFFlat* c = NULL;
    {
        FaissIndexFlatL2* q = NULL;
        FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
        FXT_OK(faiss_IndexIVFFlat_new_with(&c, IX(q), D, NLIST));
        faiss_IndexIVFFlat_set_own_fields(c, 1);
        FXT_OK(faiss_Index_train(IX(c), NB / 2, g_xb + (size_t)NB / 2 * D));
    }
    FXT_ERR(faiss_IndexIVF_merge_from(IVF(a), IVF(c), 0),
            "coarse quantizers should be the same");
    FaissIndexFlatL2* flat = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&flat, D));
    FXT_ERR(faiss_IndexIVF_merge_from(IVF(a), IVF(flat), 0), "IndexIVF");
    FXT_ERR(faiss_IndexIVF_merge_from(NULL, IVF(a), 0), "NULL");
    faiss_IndexFlatL2_free(flat);
    faiss_IndexIVFFlat_free(a);
    faiss_IndexIVFFlat_free(c);
    faiss_IndexIVFFlat_free(other);
}

/* ---- copy_subset_to ---- */

Test(ivf, copy_subset_to_all_types_match_cpp) {
    FaissIndexIVFFlat* src = c_ivfflat(METRIC_L2, NLIST, NB);
    OIx* osrc = o_ivfflat(METRIC_L2, NLIST, NB);
    const struct {
        int type;
        idx_t a1, a2;
    } cases[] = {{0, 100, 900}, {1, 3, 1}, {2, 200, 300}, {0, 0, NB}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* target over the same (borrowed) quantizer */
        FaissIndexIVFFlat* dst = NULL;
        FXT_OK(faiss_IndexIVFFlat_new_with(
                &dst, faiss_IndexIVFFlat_quantizer(src), D, NLIST));
        cr_assert_eq(faiss_Index_is_trained(IX(dst)), 1);
        FXT_OK(faiss_IndexIVF_copy_subset_to(IVF(src), IVF(dst),
                                             cases[i].type, cases[i].a1,
                                             cases[i].a2));
        OIx* odst = oix_ivf_empty_clone(osrc);
        cr_assert(odst != NULL, "%s", oix_last_error());
        OIX_OK(oix_copy_subset(osrc, odst, cases[i].type, cases[i].a1,
                               cases[i].a2));
        cr_assert_gt(faiss_Index_ntotal(IX(dst)), 0, "case %zu", i);
        same_lists(IVF(dst), odst);
        faiss_IndexIVFFlat_set_nprobe(dst, 8);
        OIX_OK(oix_set_nprobe(odst, 8));
        oix_same_search(IX(dst), odst, NQ, g_xq, K);
        /* the ids copied obey the subset rule */
        if (cases[i].type != 2) {
            for (size_t l = 0; l < NLIST; l++) {
                size_t n = faiss_IndexIVF_get_list_size(IVF(dst), l);
                idx_t* ids = malloc((n + 1) * sizeof(idx_t));
                faiss_IndexIVF_invlists_get_ids(IVF(dst), l, ids);
                for (size_t j = 0; j < n; j++) {
                    if (cases[i].type == 0)
                        cr_assert(ids[j] >= cases[i].a1 &&
                                  ids[j] < cases[i].a2);
                    else
                        cr_assert_eq(ids[j] % cases[i].a1, cases[i].a2);
                }
                free(ids);
            }
        }
        oix_free(odst);
        faiss_IndexIVFFlat_free(dst);
    }
    cr_assert_eq(faiss_Index_ntotal(IX(src)), NB, "the source is unchanged");
    oix_free(osrc);
    faiss_IndexIVFFlat_free(src);
}

Test(ivf, copy_subset_to_errors) {
    FaissIndexIVFFlat* src = c_ivfflat(METRIC_L2, NLIST, 500);
    FaissIndexIVFFlat* dst = NULL;
    FXT_OK(faiss_IndexIVFFlat_new_with(&dst, faiss_IndexIVFFlat_quantizer(src),
                                       D, NLIST));
    FXT_ERR(faiss_IndexIVF_copy_subset_to(IVF(src), IVF(dst), 3, 0, 10),
            "subset_type");
    FXT_ERR(faiss_IndexIVF_copy_subset_to(IVF(src), IVF(dst), -1, 0, 10),
            "subset_type");
    FXT_ERR(faiss_IndexIVF_copy_subset_to(IVF(src), IVF(dst), 1, 0, 0),
            "a1");
    FXT_ERR(faiss_IndexIVF_copy_subset_to(IVF(src), IVF(src), 0, 0, 10),
            "itself");
    FXT_ERR(faiss_IndexIVF_copy_subset_to(IVF(src), NULL, 0, 0, 10), "NULL");
    cr_assert_eq(faiss_Index_ntotal(IX(dst)), 0);
    /* a target with another number of lists */
    FaissIndexIVFFlat* small = c_ivfflat(METRIC_L2, NLIST / 2, 0);
    FXT_ERR(faiss_IndexIVF_copy_subset_to(IVF(src), IVF(small), 0, 0, 10),
            "nlist");
    faiss_IndexIVFFlat_free(small);
    faiss_IndexIVFFlat_free(dst);
    faiss_IndexIVFFlat_free(src);
}

/* ---- search_preassigned ---- */

Test(ivf, search_preassigned_equals_search) {
    enum { NP = 6 };
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, NB);
    faiss_IndexIVFFlat_set_nprobe(ix, NP);
    FaissIndex* q = faiss_IndexIVFFlat_quantizer(ix);
    float cdis[NQ * NP];
    idx_t assign[NQ * NP];
    FXT_OK(faiss_Index_search(q, NQ, g_xq, NP, cdis, assign));

    float D1[NQ * K], D2[NQ * K], D3[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K], I3[NQ * K];
    FXT_OK(faiss_Index_search(IX(ix), NQ, g_xq, K, D1, I1));
    FXT_OK(faiss_IndexIVF_search_preassigned(IVF(ix), NQ, g_xq, K, assign,
                                             cdis, D2, I2, 0));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);

    /* store_pairs: labels are (list << 32 | offset) pointing at the ids */
    FXT_OK(faiss_IndexIVF_search_preassigned(IVF(ix), NQ, g_xq, K, assign,
                                             cdis, D3, I3, 1));
    FXT_SAME(D1, D3, sizeof D1);
    for (int i = 0; i < NQ * K; i++) {
        if (I1[i] < 0) {
            cr_assert_eq(I3[i], -1);
            continue;
        }
        size_t list = (size_t)(I3[i] >> 32);
        size_t off = (size_t)(I3[i] & 0xffffffff);
        cr_assert_lt(list, NLIST);
        size_t n = faiss_IndexIVF_get_list_size(IVF(ix), list);
        cr_assert_lt(off, n);
        idx_t* ids = malloc(n * sizeof(idx_t));
        faiss_IndexIVF_invlists_get_ids(IVF(ix), list, ids);
        cr_assert_eq(ids[off], I1[i], "result %d", i);
        free(ids);
    }

    /* and equal to faiss C++'s search */
    OIx* o = o_ivfflat(METRIC_L2, NLIST, NB);
    OIX_OK(oix_set_nprobe(o, NP));
    OIX_OK(oix_search(o, NQ, g_xq, K, D3, I3));
    FXT_SAME(I2, I3, sizeof I2);
    FXT_SAME(D2, D3, sizeof D2);
    oix_free(o);
    faiss_IndexIVFFlat_free(ix);
}

/* faiss clamps nprobe to nlist in search_preassigned too: the caller passes
 * min(nprobe, nlist) list numbers per query, and no more are read. */
Test(ivf, search_preassigned_nprobe_above_nlist) {
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, NB);
    faiss_IndexIVFFlat_set_nprobe(ix, 3 * NLIST);
    FaissIndex* q = faiss_IndexIVFFlat_quantizer(ix);
    /* exactly NQ * NLIST entries, so ASan sees any over-read */
    float* cdis = malloc((size_t)NQ * NLIST * sizeof(float));
    idx_t* assign = malloc((size_t)NQ * NLIST * sizeof(idx_t));
    FXT_OK(faiss_Index_search(q, NQ, g_xq, NLIST, cdis, assign));
    float D1[NQ * K], D2[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K];
    FXT_OK(faiss_Index_search(IX(ix), NQ, g_xq, K, D1, I1));
    FXT_OK(faiss_IndexIVF_search_preassigned(IVF(ix), NQ, g_xq, K, assign,
                                             cdis, D2, I2, 0));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    /* nprobe 0: faiss refuses */
    faiss_IndexIVFFlat_set_nprobe(ix, 0);
    FXT_ERR(faiss_IndexIVF_search_preassigned(IVF(ix), NQ, g_xq, K, assign,
                                              cdis, D2, I2, 0),
            "nprobe > 0");
    FXT_ERR(faiss_Index_search(IX(ix), NQ, g_xq, K, D2, I2), "nprobe > 0");
    free(cdis);
    free(assign);
    faiss_IndexIVFFlat_free(ix);
}

Test(ivf, search_preassigned_errors) {
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, 500);
    faiss_IndexIVFFlat_set_nprobe(ix, 2);
    float cdis[2 * 2] = {0, 0, 0, 0};
    idx_t assign[2 * 2] = {0, 1, 2, NLIST};
    float Dd[2 * K];
    idx_t Ii[2 * K];
    FXT_ERR(faiss_IndexIVF_search_preassigned(IVF(ix), 2, g_xq, K, assign,
                                              cdis, Dd, Ii, 0),
            "outside");
    assign[3] = -7;
    FXT_ERR(faiss_IndexIVF_search_preassigned(IVF(ix), 2, g_xq, K, assign,
                                              cdis, Dd, Ii, 0),
            "-7");
    assign[3] = 3;
    FXT_ERR(faiss_IndexIVF_search_preassigned(IVF(ix), 2, g_xq, K, NULL,
                                              cdis, Dd, Ii, 0),
            "assign");
    FXT_ERR(faiss_IndexIVF_search_preassigned(IVF(ix), 2, g_xq, K, assign,
                                              NULL, Dd, Ii, 0),
            "centroid_dis");
    FXT_ERR(faiss_IndexIVF_search_preassigned(IVF(ix), 2, g_xq, 0, assign,
                                              cdis, Dd, Ii, 0),
            "k");
    /* -1 (no list) is accepted */
    assign[3] = -1;
    FXT_OK(faiss_IndexIVF_search_preassigned(IVF(ix), 2, g_xq, K, assign,
                                             cdis, Dd, Ii, 0));
    faiss_IndexIVFFlat_free(ix);
}

/* ---- lists, direct map, stats ---- */

Test(ivf, list_sizes_ids_and_imbalance_match_cpp) {
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, NB);
    OIx* o = o_ivfflat(METRIC_L2, NLIST, NB);
    same_lists(IVF(ix), o); /* includes sum(list sizes) == ntotal */
    /* every id 0..NB-1 is in exactly one list */
    char* seen = calloc(NB, 1);
    for (size_t l = 0; l < NLIST; l++) {
        size_t n = faiss_IndexIVF_get_list_size(IVF(ix), l);
        idx_t* ids = malloc((n + 1) * sizeof(idx_t));
        faiss_IndexIVF_invlists_get_ids(IVF(ix), l, ids);
        for (size_t j = 0; j < n; j++) {
            cr_assert(ids[j] >= 0 && ids[j] < NB);
            cr_assert_eq(seen[ids[j]], 0);
            seen[ids[j]] = 1;
        }
        free(ids);
    }
    free(seen);
    double f = faiss_IndexIVF_imbalance_factor(IVF(ix));
    cr_assert(f >= 1.0, "imbalance factor %g", f);
    double fo = oix_imbalance_factor(o);
    cr_assert(memcmp(&f, &fo, sizeof f) == 0, "%g vs %g", f, fo);
    faiss_IndexIVF_print_stats(IVF(ix)); /* must not crash */
    oix_free(o);
    faiss_IndexIVFFlat_free(ix);
}

Test(ivf, direct_map_and_reconstruct) {
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, NB);
    float r[D], ro[D];
    FXT_ERR(faiss_Index_reconstruct(IX(ix), 5, r), "direct map");
    FXT_OK(faiss_IndexIVF_make_direct_map(IVF(ix), 1));
    OIx* o = o_ivfflat(METRIC_L2, NLIST, NB);
    OIX_OK(oix_make_direct_map(o, 1));
    const idx_t keys[] = {0, 5, 1234, NB - 1};
    for (int i = 0; i < 4; i++) {
        FXT_OK(faiss_Index_reconstruct(IX(ix), keys[i], r));
        OIX_OK(oix_reconstruct(o, keys[i], ro));
        FXT_SAME(r, ro, sizeof r);
        /* IVFFlat stores the vectors verbatim */
        FXT_SAME(r, g_xb + (size_t)keys[i] * D, sizeof r);
    }
    FXT_ERR(faiss_Index_reconstruct(IX(ix), NB, r), "invalid key");
    FXT_OK(faiss_IndexIVF_make_direct_map(IVF(ix), 0));
    FXT_ERR(faiss_Index_reconstruct(IX(ix), 5, r), "direct map");
    oix_free(o);
    faiss_IndexIVFFlat_free(ix);
}

Test(ivf, ivf_stats_count_queries) {
    FXT_LOCAL_ONLY("faiss_get_indexIVF_stats counts this process's searches");
    FaissIndexIVFStats* st = faiss_get_indexIVF_stats();
    cr_assert(st != NULL);
    cr_assert_eq((const void*)st, oracle_ivf_stats_address(),
                 "the stats are faiss's global indexIVF_stats");
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, NB);
    faiss_IndexIVFFlat_set_nprobe(ix, 4);
    OIx* o = o_ivfflat(METRIC_L2, NLIST, NB);
    OIX_OK(oix_set_nprobe(o, 4));

    faiss_IndexIVFStats_reset(st);
    cr_assert_eq(st->nq, 0);
    cr_assert_eq(st->nlist, 0);
    cr_assert_eq(st->ndis, 0);
    float Dd[NQ * K];
    idx_t Ii[NQ * K];
    FXT_OK(faiss_Index_search(IX(ix), NQ, g_xq, K, Dd, Ii));
    FaissIndexIVFStats c = *st;
    cr_assert_eq(c.nq, NQ, "nq counts queries (%zu)", c.nq);
    cr_assert_eq(c.nlist, (size_t)NQ * 4, "lists probed: %zu", c.nlist);
    cr_assert_gt(c.ndis, 0);
    FXT_OK(faiss_Index_search(IX(ix), 7, g_xq, K, Dd, Ii));
    cr_assert_eq(st->nq, NQ + 7, "stats accumulate");

    faiss_IndexIVFStats_init(st);
    cr_assert_eq(st->nq, 0);
    cr_assert_eq(st->ndis, 0);
    OIX_OK(oix_search(o, NQ, g_xq, K, Dd, Ii));
    cr_assert_eq(st->nq, c.nq);
    cr_assert_eq(st->nlist, c.nlist);
    cr_assert_eq(st->ndis, c.ndis);
    cr_assert_eq(st->nheap_updates, c.nheap_updates);

    /* init/reset on a caller's struct */
    FaissIndexIVFStats mine;
    memset(&mine, 0xff, sizeof mine);
    faiss_IndexIVFStats_init(&mine);
    cr_assert_eq(mine.nq, 0);
    cr_assert_eq(mine.nheap_updates, 0);
    cr_assert(mine.search_time == 0.0 && mine.quantization_time == 0.0);
    faiss_IndexIVFStats_reset(NULL); /* tolerated */
    oix_free(o);
    faiss_IndexIVFFlat_free(ix);
}

/* ---- add_core, update_vectors ---- */

Test(ivf, add_core_with_precomputed_lists_matches_cpp) {
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, 0);
    FaissIndex* q = faiss_IndexIVFFlat_quantizer(ix);
    idx_t* assign = malloc(NB * sizeof(idx_t));
    FXT_OK(faiss_Index_assign(q, NB, g_xb, assign, 1));
    FXT_OK(faiss_IndexIVFFlat_add_core(ix, NB, g_xb, NULL, assign));
    cr_assert_eq(faiss_Index_ntotal(IX(ix)), NB);
    /* same as faiss C++ adding normally (which assigns the same way) */
    OIx* o = o_ivfflat(METRIC_L2, NLIST, NB);
    same_lists(IVF(ix), o);
    faiss_IndexIVFFlat_set_nprobe(ix, 4);
    OIX_OK(oix_set_nprobe(o, 4));
    oix_same_search(IX(ix), o, NQ, g_xq, K);
    oix_free(o);

    /* with ids, and a deliberately different list assignment */
    FaissIndexIVFFlat* ix2 = c_ivfflat(METRIC_L2, NLIST, 0);
    idx_t* ids = malloc(NB * sizeof(idx_t));
    for (idx_t i = 0; i < NB; i++) {
        ids[i] = 100000 + 3 * i;
        assign[i] = (i * 7) % NLIST;
    }
    assign[10] = -1; /* -1: the vector is skipped */
    FXT_OK(faiss_IndexIVFFlat_add_core(ix2, NB, g_xb, ids, assign));
    OIx* o2 = o_ivfflat(METRIC_L2, NLIST, 0);
    OIX_OK(oix_add_core(o2, NB, g_xb, ids, assign));
    cr_assert_eq(faiss_Index_ntotal(IX(ix2)), oix_ntotal(o2));
    for (size_t l = 0; l < NLIST; l++)
        cr_assert_eq(faiss_IndexIVF_get_list_size(IVF(ix2), l),
                     oix_list_size(o2, l));
    faiss_IndexIVFFlat_set_nprobe(ix2, 3);
    OIX_OK(oix_set_nprobe(o2, 3));
    oix_same_search(IX(ix2), o2, NQ, g_xq, K);
    /* add_core through the IndexIVFScalarQuantizer call refuses an IVFFlat */
    FXT_ERR(faiss_IndexIVFScalarQuantizer_add_core(
                    (FaissIndexIVFScalarQuantizer*)ix2, 1, g_xb, NULL, assign),
            "IndexIVFScalarQuantizer");
    oix_free(o2);
    free(ids);
    free(assign);
    faiss_IndexIVFFlat_free(ix2);
    faiss_IndexIVFFlat_free(ix);
}

Test(ivf, add_core_errors) {
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, 0);
    idx_t assign[3] = {0, NLIST, 1};
    FXT_ERR(faiss_IndexIVFFlat_add_core(ix, 3, g_xb, NULL, assign), "outside");
    assign[1] = NLIST + 1000;
    FXT_ERR(faiss_IndexIVFFlat_add_core(ix, 3, g_xb, NULL, assign), "1032");
    assign[1] = -2;
    FXT_ERR(faiss_IndexIVFFlat_add_core(ix, 3, g_xb, NULL, assign), "outside");
    FXT_ERR(faiss_IndexIVFFlat_add_core(ix, 3, g_xb, NULL, NULL),
            "precomputed_idx");
    FXT_ERR(faiss_IndexIVFFlat_add_core(ix, 3, NULL, NULL, assign), "'x'");
    cr_assert_eq(faiss_Index_ntotal(IX(ix)), 0, "nothing was added");
    /* untrained */
    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FaissIndexIVFFlat* un = NULL;
    FXT_OK(faiss_IndexIVFFlat_new_with(&un, IX(q), D, NLIST));
    faiss_IndexIVFFlat_set_own_fields(un, 1);
    assign[1] = 1;
    FXT_ERR(faiss_IndexIVFFlat_add_core(un, 3, g_xb, NULL, assign),
            "not trained");
    FXT_ERR(faiss_IndexIVFFlat_add_core(NULL, 3, g_xb, NULL, assign), "NULL");
    faiss_IndexIVFFlat_free(un);
    faiss_IndexIVFFlat_free(ix);
}

Test(ivf, update_vectors_matches_cpp) {
    enum { NV = 25 };
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, NB);
    idx_t idx[NV];
    for (int i = 0; i < NV; i++) idx[i] = (idx_t)(i * 97 + 11) % NB;
    float* v = fxt_clustered(NV, D, 50, 0.05f, 4242);

    /* without a direct map faiss refuses */
    FXT_ERR(faiss_IndexIVFFlat_update_vectors(ix, NV, idx, v), "direct_map");
    FXT_OK(faiss_IndexIVF_make_direct_map(IVF(ix), 1));
    FXT_OK(faiss_IndexIVFFlat_update_vectors(ix, NV, idx, v));
    cr_assert_eq(faiss_Index_ntotal(IX(ix)), NB);

    OIx* o = o_ivfflat(METRIC_L2, NLIST, NB);
    OIX_OK(oix_make_direct_map(o, 1));
    OIX_OK(oix_update_vectors(o, NV, idx, v));
    same_lists(IVF(ix), o);
    faiss_IndexIVFFlat_set_nprobe(ix, 4);
    OIX_OK(oix_set_nprobe(o, 4));
    oix_same_search(IX(ix), o, NQ, g_xq, K);
    float r[D];
    for (int i = 0; i < NV; i++) {
        FXT_OK(faiss_Index_reconstruct(IX(ix), idx[i], r));
        FXT_SAME(r, v + (size_t)i * D, sizeof r);
    }
    /* the updated vectors are found as their own nearest neighbours */
    float dd[NV];
    idx_t ll[NV];
    FXT_OK(faiss_Index_search(IX(ix), NV, v, 1, dd, ll));
    for (int i = 0; i < NV; i++) cr_assert_eq(ll[i], idx[i]);

    idx_t bad[2] = {0, NB};
    FXT_ERR(faiss_IndexIVFFlat_update_vectors(ix, 2, bad, v), "outside");
    bad[1] = -1;
    FXT_ERR(faiss_IndexIVFFlat_update_vectors(ix, 2, bad, v), "outside");
    FXT_ERR(faiss_IndexIVFFlat_update_vectors(ix, 2, NULL, v), "idx");
    FXT_ERR(faiss_IndexIVFFlat_update_vectors(ix, -1, idx, v), "n must");
    oix_free(o);
    free(v);
    faiss_IndexIVFFlat_free(ix);
}

/* ---- SearchParametersIVF ---- */

Test(ivf, search_params_nprobe_override_equals_setting_nprobe) {
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, NB);
    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, 8, 0));
    cr_assert_eq(faiss_SearchParametersIVF_nprobe(sp), 8);
    cr_assert_eq(faiss_SearchParametersIVF_max_codes(sp), 0);
    cr_assert_eq(faiss_SearchParametersIVF_sel(sp), NULL);

    float D1[NQ * K], D2[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K];
    FXT_OK(faiss_Index_search_with_params(IX(ix), NQ, g_xq, K,
                                          (FaissSearchParameters*)sp, D1, I1));
    cr_assert_eq(faiss_IndexIVFFlat_nprobe(ix), 1, "index nprobe untouched");
    faiss_IndexIVFFlat_set_nprobe(ix, 8);
    FXT_OK(faiss_Index_search(IX(ix), NQ, g_xq, K, D2, I2));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    /* and the override really matters: nprobe 1 differs from 8 here */
    faiss_SearchParametersIVF_set_nprobe(sp, 1);
    cr_assert_eq(faiss_SearchParametersIVF_nprobe(sp), 1);
    FXT_OK(faiss_Index_search_with_params(IX(ix), NQ, g_xq, K,
                                          (FaissSearchParameters*)sp, D1, I1));
    cr_assert(memcmp(D1, D2, sizeof D1) != 0);
    OIx* o = o_ivfflat(METRIC_L2, NLIST, NB);
    OIX_OK(oix_search_ivf_params(o, NQ, g_xq, K, 1, 0, -1, -1, D2, I2));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);

    /* max_codes limits the scan, as in C++ */
    faiss_SearchParametersIVF_set_nprobe(sp, 16);
    faiss_SearchParametersIVF_set_max_codes(sp, 150);
    cr_assert_eq(faiss_SearchParametersIVF_max_codes(sp), 150);
    FXT_OK(faiss_Index_search_with_params(IX(ix), NQ, g_xq, K,
                                          (FaissSearchParameters*)sp, D1, I1));
    OIX_OK(oix_search_ivf_params(o, NQ, g_xq, K, 16, 150, -1, -1, D2, I2));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    oix_free(o);
    faiss_SearchParametersIVF_free(sp);
    faiss_IndexIVFFlat_free(ix);
}

Test(ivf, search_params_selector_restricts_results) {
    const idx_t lo = 500, hi = 1500;
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, NB);
    FaissIDSelector* sel = oracle_selector_range(lo, hi);
    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, sel, 6, 0));
    cr_assert_eq(faiss_SearchParametersIVF_sel(sp), sel);
    float D1[NQ * K], D2[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K];
    FXT_OK(faiss_Index_search_with_params(IX(ix), NQ, g_xq, K,
                                          (FaissSearchParameters*)sp, D1, I1));
    int found = 0;
    for (int i = 0; i < NQ * K; i++) {
        cr_assert(I1[i] == -1 || (I1[i] >= lo && I1[i] < hi), "id %lld",
                  (long long)I1[i]);
        found += I1[i] >= 0;
    }
    cr_assert_gt(found, NQ, "the selector leaves results");
    OIx* o = o_ivfflat(METRIC_L2, NLIST, NB);
    OIX_OK(oix_search_ivf_params(o, NQ, g_xq, K, 6, 0, lo, hi, D2, I2));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    oix_free(o);
    faiss_SearchParametersIVF_free(sp);
    oracle_selector_free(sel);
    faiss_IndexIVFFlat_free(ix);
}

Test(ivf, search_params_getters_setters_cast) {
    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new(&sp));
    cr_assert_eq(faiss_SearchParametersIVF_nprobe(sp), 1, "faiss's default");
    cr_assert_eq(faiss_SearchParametersIVF_max_codes(sp), 0);
    cr_assert_eq(faiss_SearchParametersIVF_sel(sp), NULL);
    faiss_SearchParametersIVF_set_nprobe(sp, 12);
    faiss_SearchParametersIVF_set_max_codes(sp, 1000);
    cr_assert_eq(faiss_SearchParametersIVF_nprobe(sp), 12);
    cr_assert_eq(faiss_SearchParametersIVF_max_codes(sp), 1000);
    cr_assert_eq(faiss_SearchParametersIVF_cast((FaissSearchParameters*)sp),
                 sp);

    FaissSearchParameters* plain = NULL;
    FXT_OK(faiss_SearchParameters_new(&plain, NULL));
    cr_assert_eq(faiss_SearchParametersIVF_cast(plain), NULL);
    cr_assert_eq(faiss_SearchParametersIVF_cast(NULL), NULL);
    /* IVF getters on a non-IVF parameter set fail */
    cr_assert_eq(
            faiss_SearchParametersIVF_nprobe((FaissSearchParametersIVF*)plain),
            0);
    cr_assert(strstr(faiss_get_last_error(), "SearchParametersIVF") != NULL);
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);

    FaissSearchParametersIVF* bad = NULL;
    FXT_ERR(faiss_SearchParametersIVF_new_with(&bad, NULL, 0, 0), "nprobe");
    cr_assert_eq(bad, NULL);
    FXT_ERR(faiss_SearchParametersIVF_new(NULL), "NULL");

    /* parameters of the wrong kind for an IVF index are refused */
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, 200);
    float Dd[K];
    idx_t Ii[K];
    FXT_ERR(faiss_Index_search_with_params(IX(ix), 1, g_xq, K, plain, Dd, Ii),
            "incorrect type");
    /* nprobe 0 set afterwards: refused by faiss, not a crash */
    faiss_SearchParametersIVF_set_nprobe(sp, 0);
    FXT_ERR(faiss_Index_search_with_params(IX(ix), 1, g_xq, K,
                                           (FaissSearchParameters*)sp, Dd, Ii),
            "nprobe must be > 0");
    faiss_IndexIVFFlat_free(ix);
    faiss_SearchParameters_free(plain);
    faiss_SearchParametersIVF_free(sp);
    faiss_SearchParametersIVF_free(NULL);
}

/* ---- recall on the SIFT sample ---- */

Test(ivf, sift_recall_nlist64_nprobe8) {
    size_t nb, nq, ngt;
    int d, dq, dgt;
    float* xb = fxt_load_fvecs("sift5k_base.fvecs", &nb, &d);
    float* xq = fxt_load_fvecs("sift5k_query.fvecs", &nq, &dq);
    int32_t* gt = fxt_load_ivecs("sift5k_groundtruth.ivecs", &ngt, &dgt);
    cr_assert_eq(d, dq);
    cr_assert_eq(nq, ngt);
    const int k = 10;

    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, d));
    FaissIndexIVFFlat* ix = NULL;
    FXT_OK(faiss_IndexIVFFlat_new_with(&ix, IX(q), (size_t)d, 64));
    faiss_IndexIVFFlat_set_own_fields(ix, 1);
    FXT_OK(faiss_Index_train(IX(ix), (idx_t)nb, xb));
    FXT_OK(faiss_Index_add(IX(ix), (idx_t)nb, xb));
    faiss_IndexIVFFlat_set_nprobe(ix, 8);
    float* D1 = malloc(nq * k * sizeof(float));
    float* D2 = malloc(nq * k * sizeof(float));
    idx_t* I1 = malloc(nq * k * sizeof(idx_t));
    idx_t* I2 = malloc(nq * k * sizeof(idx_t));
    FXT_OK(faiss_Index_search(IX(ix), (idx_t)nq, xq, k, D1, I1));
    double r10 = fxt_recall_at(I1, nq, k, gt, dgt, 10);
    double r1 = fxt_recall_at(I1, nq, k, gt, dgt, 1);
    cr_log_info("IVF64,Flat nprobe=8 on sift5k: R@1 %.3f R@10 %.3f", r1, r10);
    cr_assert_geq(r10, 0.95, "recall@10 %.3f", r10);

    OIx* o = oix_ivfflat(d, METRIC_L2, 64);
    cr_assert(o != NULL);
    OIX_OK(oix_train(o, (idx_t)nb, xb));
    OIX_OK(oix_add(o, (idx_t)nb, xb, NULL));
    OIX_OK(oix_set_nprobe(o, 8));
    OIX_OK(oix_search(o, (idx_t)nq, xq, k, D2, I2));
    FXT_SAME(I1, I2, nq * k * sizeof(idx_t));
    FXT_SAME(D1, D2, nq * k * sizeof(float));

    /* exhaustive probing finds the exact neighbour almost always */
    faiss_IndexIVFFlat_set_nprobe(ix, 64);
    FXT_OK(faiss_Index_search(IX(ix), (idx_t)nq, xq, k, D1, I1));
    double rall = fxt_recall_at(I1, nq, k, gt, dgt, 1);
    cr_assert_geq(rall, r1);
    cr_assert_geq(rall, 0.98, "nprobe=nlist R@1 %.3f", rall);

    oix_free(o);
    free(D1);
    free(D2);
    free(I1);
    free(I2);
    free(xb);
    free(xq);
    free(gt);
    faiss_IndexIVFFlat_free(ix);
}

/* ---- error paths ---- */

Test(ivf, constructor_errors) {
    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FaissIndexIVFFlat* ix = NULL;
    FXT_ERR(faiss_IndexIVFFlat_new_with(&ix, IX(q), D, 0), "nlist");
    FXT_ERR(faiss_IndexIVFFlat_new_with(&ix, IX(q), D + 1, NLIST),
            "dimension");
    FXT_ERR(faiss_IndexIVFFlat_new_with(&ix, IX(q), 0, NLIST), "dimension");
    FXT_ERR(faiss_IndexIVFFlat_new_with(&ix, NULL, D, NLIST), "quantizer");
    FXT_ERR(faiss_IndexIVFFlat_new_with(NULL, IX(q), D, NLIST), "p_index");
    FXT_ERR(faiss_IndexIVFFlat_new_with_metric(&ix, IX(q), D, NLIST,
                                               (FaissMetricType)77),
            "metric");
    FXT_ERR(faiss_IndexIVFFlat_new(NULL), "NULL");
    cr_assert_eq(ix, NULL, "no index on failure");
    faiss_IndexFlatL2_free(q);
}

Test(ivf, untrained_add_and_search_fail) {
    FaissIndexFlatL2* q = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&q, D));
    FaissIndexIVFFlat* ix = NULL;
    FXT_OK(faiss_IndexIVFFlat_new_with(&ix, IX(q), D, NLIST));
    faiss_IndexIVFFlat_set_own_fields(ix, 1);
    float Dd[K];
    idx_t Ii[K];
    FXT_ERR(faiss_Index_add(IX(ix), 10, g_xb), "not trained");
    FXT_ERR(faiss_Index_search(IX(ix), 1, g_xq, K, Dd, Ii), "not trained");
    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, 4, 0));
    FXT_ERR(faiss_Index_search_with_params(IX(ix), 1, g_xq, K,
                                           (FaissSearchParameters*)sp, Dd, Ii),
            "not trained");
    float cd[1] = {0};
    idx_t as[1] = {0};
    FXT_ERR(faiss_IndexIVF_search_preassigned(IVF(ix), 1, g_xq, K, as, cd, Dd,
                                              Ii, 0),
            "not trained");
    /* training on too few points for nlist centroids is refused by faiss */
    FXT_ERR(faiss_Index_train(IX(ix), NLIST - 1, g_xb), "training points");
    cr_assert_eq(faiss_Index_is_trained(IX(ix)), 0);
    cr_assert_eq(faiss_Index_ntotal(IX(ix)), 0);
    faiss_SearchParametersIVF_free(sp);
    faiss_IndexIVFFlat_free(ix);
}

Test(ivf, list_no_out_of_range) {
    FaissIndexIVFFlat* ix = c_ivfflat(METRIC_L2, NLIST, 500);
    cr_assert_eq(faiss_IndexIVF_get_list_size(IVF(ix), NLIST), 0);
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    cr_assert(strstr(faiss_get_last_error(), "list_no 32 >= nlist 32") != NULL,
              "%s", faiss_get_last_error());
    idx_t ids[4] = {-5, -5, -5, -5};
    faiss_IndexIVF_invlists_get_ids(IVF(ix), 1000, ids);
    cr_assert(strstr(faiss_get_last_error(), "list_no 1000") != NULL, "%s",
              faiss_get_last_error());
    cr_assert_eq(ids[0], -5, "output untouched");
    faiss_IndexIVF_invlists_get_ids(IVF(ix), 0, NULL);
    cr_assert(strstr(faiss_get_last_error(), "invlist") != NULL);
    faiss_IndexIVFFlat_free(ix);
}

Test(ivf, ivf_calls_on_a_non_ivf_index) {
    FaissIndexFlatL2* flat = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&flat, D));
    FXT_OK(faiss_Index_add(IX(flat), 100, g_xb));
    /* nprobe set on a non-IVF index: an error, not a write into it */
    faiss_IndexIVF_set_nprobe(IVF(flat), 16);
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    cr_assert(strstr(faiss_get_last_error(), "IndexIVF") != NULL, "%s",
              faiss_get_last_error());
    faiss_IndexIVFFlat_set_nprobe((FaissIndexIVFFlat*)flat, 16);
    cr_assert(strstr(faiss_get_last_error(), "IndexIVFFlat") != NULL);
    cr_assert_eq(faiss_IndexIVF_nprobe(IVF(flat)), 0);
    cr_assert_eq(faiss_IndexIVF_nlist(IVF(flat)), 0);
    cr_assert_eq(faiss_IndexIVF_quantizer(IVF(flat)), NULL);
    faiss_IndexIVF_set_own_fields(IVF(flat), 1);
    cr_assert_eq(faiss_IndexIVF_own_fields(IVF(flat)), 0);
    cr_assert_eq(faiss_Index_ntotal(IX(flat)), 100, "flat index unharmed");
    faiss_IndexIVF_set_nprobe(NULL, 3);
    cr_assert(strstr(faiss_get_last_error(), "NULL") != NULL);
    FXT_ERR(faiss_IndexIVF_make_direct_map(IVF(flat), 1), "IndexIVF");
    cr_assert_eq(faiss_IndexIVF_imbalance_factor(IVF(flat)), 0.0);
    cr_assert(strstr(faiss_get_last_error(), "IndexIVF") != NULL);
    faiss_IndexIVF_print_stats(IVF(flat)); /* records an error, no crash */
    idx_t a[1] = {0};
    FXT_ERR(faiss_IndexIVFFlat_add_core((FaissIndexIVFFlat*)flat, 1, g_xb,
                                        NULL, a),
            "IndexIVFFlat");
    FXT_ERR(faiss_IndexIVFFlat_update_vectors((FaissIndexIVFFlat*)flat, 1, a,
                                              g_xb),
            "IndexIVFFlat");
    float Dd[K];
    idx_t Ii[K];
    float cd[1] = {0};
    FXT_ERR(faiss_IndexIVF_search_preassigned(IVF(flat), 1, g_xq, K, a, cd,
                                              Dd, Ii, 0),
            "IndexIVF");
    faiss_IndexFlatL2_free(flat);
}
