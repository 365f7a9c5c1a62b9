/* test_binary.c -- IndexBinary_c.h and the binary constructors, factory and
 * clone of faissx.h, against the same binary indexes in faiss C++. */
#include "common.h"
#include "oracle_binary.h"

#include <stdlib.h>

#define ORB(call)                                                          \
    cr_assert_eq((call), 0, "oracle %s failed: %s", #call, obx_error())

/* A void or value-returning call failed: the last error names `func` and
 * contains `needle`. */
#define FXT_LAST_ERR(func, needle)                                          \
    do {                                                                    \
        const char* fxt_m_ = faiss_get_last_error();                        \
        cr_assert(fxt_m_ != NULL && strstr(fxt_m_, (func)) != NULL,         \
                  "no error recorded by %s (last: %s)", (func),             \
                  fxt_m_ ? fxt_m_ : "(none)");                              \
        cr_assert(strstr(fxt_m_, (needle)) != NULL,                         \
                  "message '%s' lacks '%s'", fxt_m_, (needle));             \
    } while (0)

static void reset_last_error(void) {
    cr_assert_neq(faiss_IndexBinaryFlat_new_with(NULL, 8), 0);
}

enum { BK_FACTORY, BK_FLAT, BK_IVF, BK_HASH, BK_HNSW };

typedef struct BKind {
    const char* factory; /* what the oracle builds */
    int ctor;            /* how the C side builds it */
    int p;               /* nlist, b or M */
} BKind;

static const BKind K_FLAT = {"BFlat", BK_FLAT, 0};
static const BKind K_IVF = {"BIVF16", BK_IVF, 16};
static const BKind K_HASH = {"BHash16", BK_HASH, 16};
static const BKind K_HNSW = {"BHNSW16", BK_HNSW, 16};

static const BKind KINDS[] = {
        {"BFlat", BK_FLAT, 0},         {"BIVF16", BK_IVF, 16},
        {"BHash16", BK_HASH, 16},      {"BHash24", BK_HASH, 24},
        {"BHNSW16", BK_HNSW, 16},      {"BHNSW4", BK_HNSW, 4},
        {"BFlat", BK_FACTORY, 0},      {"BIVF16", BK_FACTORY, 0},
        {"BHNSW8", BK_FACTORY, 0},     {"BHash20", BK_FACTORY, 0},
        {"BHash2x16", BK_FACTORY, 0},  {"BIVF8_HNSW8", BK_FACTORY, 0},
};
#define NKINDS (sizeof KINDS / sizeof *KINDS)

static FaissIndexBinary* make_c(const BKind* k, int d) {
    FaissIndexBinary* ix = NULL;
    switch (k->ctor) {
    case BK_FACTORY:
        FXT_OK(faiss_index_binary_factory(&ix, d, k->factory));
        break;
    case BK_FLAT:
        FXT_OK(faiss_IndexBinaryFlat_new_with((FaissIndexBinaryFlat**)&ix, d));
        break;
    case BK_IVF: {
        FaissIndexBinaryFlat* q = NULL;
        FXT_OK(faiss_IndexBinaryFlat_new_with(&q, d));
        FXT_OK(faissx_IndexBinaryIVF_new((FaissIndexBinaryIVF**)&ix,
                                         (FaissIndexBinary*)q, d, k->p));
        cr_assert_eq(faiss_IndexBinaryIVF_quantizer((FaissIndexBinaryIVF*)ix),
                     (FaissIndexBinary*)q);
        break;
    }
    case BK_HASH:
        FXT_OK(faissx_IndexBinaryHash_new(&ix, d, k->p));
        break;
    case BK_HNSW:
        FXT_OK(faissx_IndexBinaryHNSW_new(&ix, d, k->p));
        break;
    }
    cr_assert_not_null(ix);
    /* the remote-binary rerun: every constructor here makes a remote index */
    const char* srv = getenv("FAISSX_SERVER");
    cr_assert_eq(faissx_index_binary_is_remote(ix), srv && *srv,
                 "%s: remote = %d", k->factory,
                 faissx_index_binary_is_remote(ix));
    return ix;
}

static OBx* make_o(const BKind* k, int d) {
    OBx* o = obx_factory(k->factory, d);
    cr_assert_not_null(o, "oracle factory %s: %s", k->factory, obx_error());
    return o;
}

static void same_info(const FaissIndexBinary* ix, const OBx* o,
                      const char* what) {
    OBxInfo in;
    ORB(obx_info(o, &in));
    cr_assert_eq(faiss_IndexBinary_d(ix), in.d, "%s: d", what);
    cr_assert_eq(faiss_IndexBinary_is_trained(ix), in.is_trained,
                 "%s: is_trained", what);
    cr_assert_eq(faiss_IndexBinary_ntotal(ix), in.ntotal, "%s: ntotal", what);
    cr_assert_eq((int)faiss_IndexBinary_metric_type(ix), in.metric_type,
                 "%s: metric_type", what);
    cr_assert_eq(faiss_IndexBinary_verbose(ix), in.verbose, "%s: verbose",
                 what);
    FaissIndexBinaryIVF* ivf = faiss_IndexBinaryIVF_cast((FaissIndexBinary*)ix);
    cr_assert_eq(ivf != NULL, in.is_ivf, "%s: IVF cast", what);
    if (ivf) {
        cr_assert_eq(faiss_IndexBinaryIVF_nlist(ivf), in.nlist);
        cr_assert_eq(faiss_IndexBinaryIVF_nprobe(ivf), in.nprobe);
    }
    int ef = -1;
    int rc = faissx_IndexBinaryHNSW_get_efSearch(ix, &ef);
    cr_assert_eq(rc == 0, in.is_hnsw, "%s: HNSW accessor", what);
    if (in.is_hnsw) cr_assert_eq(ef, in.efSearch, "%s: efSearch", what);
}

static int needs_training(const BKind* k) {
    return strstr(k->factory, "BIVF") != NULL;
}

/* ---- the data --------------------------------------------------------- */

enum { D = 64, NB = 2000, NT = 2000, NQ = 20, K = 10 };

typedef struct Data {
    uint8_t *xt, *xb, *xq;
} Data;

static Data data(void) {
    Data s = {fxt_bytes(NT, D, 11), fxt_bytes(NB, D, 12), NULL};
    /* queries: perturbed database vectors (so hash and range searches find
     * something) */
    s.xq = fxt_bytes(NQ, D, 13);
    for (int i = 0; i < NQ; i++) {
        memcpy(s.xq + i * D / 8, s.xb + (i * 97) * D / 8, D / 8);
        s.xq[i * D / 8 + 7] ^= (uint8_t)(1u << (i % 8));
    }
    return s;
}

static void data_free(Data* s) {
    free(s->xt);
    free(s->xb);
    free(s->xq);
}

/* Built, trained (IVF) and filled on both sides, infos compared. */
static void build_both(const BKind* k, const Data* s, FaissIndexBinary** ix,
                       OBx** o) {
    *ix = make_c(k, D);
    *o = make_o(k, D);
    same_info(*ix, *o, k->factory);
    if (needs_training(k)) {
        cr_assert_not(faiss_IndexBinary_is_trained(*ix));
        FXT_OK(faiss_IndexBinary_train(*ix, NT, s->xt));
        ORB(obx_train(*o, NT, s->xt));
    }
    FXT_OK(faiss_IndexBinary_add(*ix, NB, s->xb));
    ORB(obx_add(*o, NB, s->xb, NULL));
    same_info(*ix, *o, k->factory);
}

static void same_search(const FaissIndexBinary* ix, const OBx* o,
                        const uint8_t* xq, idx_t nq, idx_t k,
                        const char* what) {
    int32_t* D1 = malloc(sizeof(int32_t) * nq * k);
    int32_t* D2 = malloc(sizeof(int32_t) * nq * k);
    idx_t* I1 = malloc(sizeof(idx_t) * nq * k);
    idx_t* I2 = malloc(sizeof(idx_t) * nq * k);
    FXT_OK(faiss_IndexBinary_search(ix, nq, xq, k, D1, I1));
    ORB(obx_search(o, nq, xq, k, D2, I2));
    cr_assert(memcmp(I1, I2, sizeof(idx_t) * nq * k) == 0,
              "%s: labels differ from C++", what);
    cr_assert(memcmp(D1, D2, sizeof(int32_t) * nq * k) == 0,
              "%s: distances differ from C++", what);
    free(D1);
    free(D2);
    free(I1);
    free(I2);
}

/* ---- construction and search ---------------------------------------- */

Test(binary, every_kind_searches_like_cpp) {
    Data s = data();
    for (size_t i = 0; i < NKINDS; i++) {
        const BKind* k = &KINDS[i];
        FaissIndexBinary* ix;
        OBx* o;
        build_both(k, &s, &ix, &o);
        same_search(ix, o, s.xq, NQ, K, k->factory);
        /* k larger than ntotal of a small query batch, k = 1 */
        same_search(ix, o, s.xq, 3, 1, k->factory);
        faiss_IndexBinary_free(ix);
        obx_free(o);
    }
    data_free(&s);
}

Test(binary, search_before_add_and_k_above_ntotal) {
    Data s = data();
    const BKind* ks[] = {&K_FLAT, &K_IVF, &K_HASH, &K_HNSW};
    for (size_t i = 0; i < 4; i++) {
        FaissIndexBinary* ix = make_c(ks[i], D);
        OBx* o = make_o(ks[i], D);
        if (needs_training(ks[i])) {
            FXT_OK(faiss_IndexBinary_train(ix, NT, s.xt));
            ORB(obx_train(o, NT, s.xt));
        }
        /* empty index: everything padded with -1 */
        same_search(ix, o, s.xq, NQ, K, ks[i]->factory);
        FXT_OK(faiss_IndexBinary_add(ix, 5, s.xb));
        ORB(obx_add(o, 5, s.xb, NULL));
        same_search(ix, o, s.xq, NQ, 8, ks[i]->factory);
        faiss_IndexBinary_free(ix);
        obx_free(o);
    }
    data_free(&s);
}

Test(binary, ivf_nprobe_nlist_quantizer_own_fields) {
    Data s = data();
    FaissIndexBinary* ix;
    OBx* o;
    build_both(&K_IVF, &s, &ix, &o);
    FaissIndexBinaryIVF* ivf = faiss_IndexBinaryIVF_cast(ix);
    cr_assert_eq((void*)ivf, (void*)ix);
    cr_assert_eq(faiss_IndexBinaryIVF_nlist(ivf), 16);
    cr_assert_eq(faiss_IndexBinaryIVF_own_fields(ivf), 1,
                 "faissx_IndexBinaryIVF_new takes the quantizer");
    FaissIndexBinary* q = faiss_IndexBinaryIVF_quantizer(ivf);
    cr_assert_not_null(q);
    cr_assert_eq(faiss_IndexBinary_ntotal(q), 16, "trained: 16 centroids");
    cr_assert_not_null(faiss_IndexBinaryFlat_cast(q));
    const size_t probes[] = {1, 3, 16, 100};
    for (size_t i = 0; i < 4; i++) {
        faiss_IndexBinaryIVF_set_nprobe(ivf, probes[i]);
        ORB(obx_set_nprobe(o, probes[i]));
        cr_assert_eq(faiss_IndexBinaryIVF_nprobe(ivf), probes[i]);
        same_search(ix, o, s.xq, NQ, K, "BIVF16 nprobe");
    }
    /* add_with_ids is supported by the IVF */
    idx_t ids[50];
    for (int i = 0; i < 50; i++) ids[i] = 100000 + 7 * i;
    FXT_OK(faiss_IndexBinary_add_with_ids(ix, 50, s.xt, ids));
    ORB(obx_add(o, 50, s.xt, ids));
    same_info(ix, o, "after add_with_ids");
    same_search(ix, o, s.xt, 20, K, "BIVF16 add_with_ids");

    /* own_fields = 0: the caller frees the quantizer */
    faiss_IndexBinaryIVF_set_own_fields(ivf, 0);
    cr_assert_eq(faiss_IndexBinaryIVF_own_fields(ivf), 0);
    faiss_IndexBinaryIVF_free(ivf);
    cr_assert_eq(faiss_IndexBinary_ntotal(q), 16);
    faiss_IndexBinary_free(q);
    obx_free(o);
    data_free(&s);
}

/* faissx_IndexBinary_search_with_params: per-call nprobe on a binary IVF
 * gives what faiss C++ gives with that nprobe set; the index keeps its
 * own (on a remote index the parameters travel with the request). */
Test(binary, search_with_params_ivf_nprobe) {
    Data s = data();
    FaissIndexBinary* ix;
    OBx* o;
    build_both(&K_IVF, &s, &ix, &o);
    FaissIndexBinaryIVF* ivf = faiss_IndexBinaryIVF_cast(ix);
    faiss_IndexBinaryIVF_set_nprobe(ivf, 2);
    int32_t D1[NQ * K], D2[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K];
    const size_t probes[] = {1, 3, 16, 100};
    for (size_t i = 0; i < 4; i++) {
        FaissSearchParametersIVF* sp = NULL;
        FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, probes[i], 0));
        FXT_OK(faissx_IndexBinary_search_with_params(
                ix, NQ, s.xq, K, (FaissSearchParameters*)sp, D1, I1));
        ORB(obx_set_nprobe(o, probes[i]));
        ORB(obx_search(o, NQ, s.xq, K, D2, I2));
        cr_assert(memcmp(I1, I2, sizeof I1) == 0, "nprobe %zu: labels",
                  probes[i]);
        cr_assert(memcmp(D1, D2, sizeof D1) == 0, "nprobe %zu: distances",
                  probes[i]);
        cr_assert_eq(faiss_IndexBinaryIVF_nprobe(ivf), 2,
                     "the index's nprobe is unchanged");
        faiss_SearchParametersIVF_free(sp);
    }
    /* max_codes: faiss stops after the list that reaches the bound, so
     * with 1 only the nearest list is scanned -- as with nprobe = 1 (no
     * list is empty here) */
    FaissSearchParametersIVF* one = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&one, NULL, 16, 1));
    FXT_OK(faissx_IndexBinary_search_with_params(
            ix, NQ, s.xq, K, (FaissSearchParameters*)one, D1, I1));
    ORB(obx_set_nprobe(o, 1));
    ORB(obx_search(o, NQ, s.xq, K, D2, I2));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    faiss_SearchParametersIVF_free(one);
    /* plain parameters without a selector, and NULL: a plain search */
    FaissSearchParameters* plain = NULL;
    FXT_OK(faiss_SearchParameters_new(&plain, NULL));
    ORB(obx_set_nprobe(o, 2));
    ORB(obx_search(o, NQ, s.xq, K, D2, I2));
    FXT_OK(faissx_IndexBinary_search_with_params(ix, NQ, s.xq, K, plain, D1,
                                                 I1));
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);
    FXT_OK(faissx_IndexBinary_search_with_params(ix, NQ, s.xq, K, NULL, D1,
                                                 I1));
    FXT_SAME(I1, I2, sizeof I1);
    faiss_SearchParameters_free(plain);
    faiss_IndexBinary_free(ix);
    obx_free(o);
    data_free(&s);
}

/* SearchParametersHNSW on a binary HNSW (faiss 1.7.3's IndexBinaryHNSW
 * refuses parameters; faissx walks the graph as it does, passing them to
 * HNSW::search, as IndexHNSW::search does for float indexes). The walk is
 * faiss's: with the index's efSearch equal to the call's, the results are
 * faiss C++'s; the index's own efSearch is not changed by a call. HNSW
 * parameters on another binary index, or efSearch <= 0, are refused. */
Test(binary, search_with_params_hnsw_efsearch) {
    Data s = data();
    FaissIndexBinary* ix;
    OBx* o;
    build_both(&K_HNSW, &s, &ix, &o);
    int32_t D1[NQ * K], D2[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K];
    const int efs[] = {1, 5, 40, 200};
    for (size_t i = 0; i < 4; i++) {
        FaissSearchParametersHNSW* sp = NULL;
        FXT_OK(faiss_SearchParametersHNSW_new_with(&sp, NULL, efs[i]));
        FXT_OK(faissx_IndexBinaryHNSW_set_efSearch(ix, efs[i]));
        FXT_OK(faissx_IndexBinary_search_with_params(
                ix, NQ, s.xq, K, (FaissSearchParameters*)sp, D1, I1));
        ORB(obx_set_efSearch(o, efs[i]));
        ORB(obx_search(o, NQ, s.xq, K, D2, I2));
        cr_assert(memcmp(I1, I2, sizeof I1) == 0, "efSearch %d: labels",
                  efs[i]);
        cr_assert(memcmp(D1, D2, sizeof D1) == 0, "efSearch %d: distances",
                  efs[i]);
        /* a call with another efSearch leaves the index's alone */
        faiss_SearchParametersHNSW_set_efSearch(sp, efs[i] + 7);
        FXT_OK(faissx_IndexBinary_search_with_params(
                ix, NQ, s.xq, K, (FaissSearchParameters*)sp, D1, I1));
        int ef = 0;
        FXT_OK(faissx_IndexBinaryHNSW_get_efSearch(ix, &ef));
        cr_assert_eq(ef, efs[i], "the index's efSearch is unchanged");
        faiss_SearchParametersHNSW_free(sp);
    }
    FaissSearchParametersHNSW* sp = NULL;
    FXT_OK(faiss_SearchParametersHNSW_new(&sp));
    faiss_SearchParametersHNSW_set_efSearch(sp, 0);
    FXT_ERR(faissx_IndexBinary_search_with_params(
                    ix, NQ, s.xq, K, (FaissSearchParameters*)sp, D1, I1),
            "efSearch must be > 0");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    faiss_SearchParametersHNSW_set_efSearch(sp, 8);
    FaissIndexBinary* flat = make_c(&K_FLAT, D);
    FXT_ERR(faissx_IndexBinary_search_with_params(
                    flat, NQ, s.xq, K, (FaissSearchParameters*)sp, D1, I1),
            "IndexBinaryHNSW");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    faiss_IndexBinary_free(flat);
    faiss_SearchParametersHNSW_free(sp);
    faiss_IndexBinary_free(ix);
    obx_free(o);
    data_free(&s);
}

Test(binary, search_with_params_errors) {
    Data s = data();
    FaissIndexBinary *flat, *ivf;
    OBx *of, *oi;
    build_both(&K_FLAT, &s, &flat, &of);
    build_both(&K_IVF, &s, &ivf, &oi);
    int32_t D1[NQ * K];
    idx_t I1[NQ * K];
    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, 4, 0));
    FXT_ERR(faissx_IndexBinary_search_with_params(
                    flat, NQ, s.xq, K, (FaissSearchParameters*)sp, D1, I1),
            "IndexBinaryIVF");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
    faiss_SearchParametersIVF_set_nprobe(sp, 0);
    FXT_ERR(faissx_IndexBinary_search_with_params(
                    ivf, NQ, s.xq, K, (FaissSearchParameters*)sp, D1, I1),
            "nprobe must be > 0");
    faiss_SearchParametersIVF_free(sp);
    /* selectors: faiss 1.7.3's binary search cannot filter */
    FaissIDSelectorRange* r = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&r, 0, 100));
    FaissSearchParameters* ps = NULL;
    FXT_OK(faiss_SearchParameters_new(&ps, (FaissIDSelector*)r));
    FXT_ERR(faissx_IndexBinary_search_with_params(flat, NQ, s.xq, K, ps, D1,
                                                  I1),
            "selectors are not supported");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_UNSUPPORTED);
    FaissSearchParametersIVF* spi = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&spi, (FaissIDSelector*)r, 4,
                                              0));
    FXT_ERR(faissx_IndexBinary_search_with_params(
                    ivf, NQ, s.xq, K, (FaissSearchParameters*)spi, D1, I1),
            "selectors are not supported");
    /* the usual argument checks */
    FXT_ERR(faissx_IndexBinary_search_with_params(NULL, NQ, s.xq, K, NULL, D1,
                                                  I1),
            "NULL");
    FXT_ERR(faissx_IndexBinary_search_with_params(flat, NQ, NULL, K, NULL,
                                                  D1, I1),
            "NULL");
    FXT_ERR(faissx_IndexBinary_search_with_params(flat, NQ, s.xq, 0, NULL,
                                                  D1, I1),
            "k");
    /* an untrained IVF */
    FaissIndexBinary* fresh = make_c(&K_IVF, D);
    FXT_ERR(faissx_IndexBinary_search_with_params(fresh, NQ, s.xq, K, NULL,
                                                  D1, I1),
            "not trained");
    faiss_IndexBinary_free(fresh);
    faiss_SearchParametersIVF_free(spi);
    faiss_SearchParameters_free(ps);
    faiss_IDSelector_free((FaissIDSelector*)r);
    faiss_IndexBinary_free(flat);
    faiss_IndexBinary_free(ivf);
    obx_free(of);
    obx_free(oi);
    data_free(&s);
}

Test(binary, casts_and_wrong_type_getters) {
    FaissIndexBinary* flat = make_c(&K_FLAT, D);
    FaissIndexBinary* ivf = make_c(&K_IVF, D);
    FaissIndexBinary* hnsw = make_c(&K_HNSW, D);
    cr_assert_eq((void*)faiss_IndexBinaryFlat_cast(flat), (void*)flat);
    cr_assert_null(faiss_IndexBinaryFlat_cast(ivf));
    cr_assert_null(faiss_IndexBinaryFlat_cast(hnsw));
    cr_assert_null(faiss_IndexBinaryFlat_cast(NULL));
    cr_assert_eq((void*)faiss_IndexBinaryIVF_cast(ivf), (void*)ivf);
    cr_assert_null(faiss_IndexBinaryIVF_cast(flat));
    cr_assert_null(faiss_IndexBinaryIVF_cast(NULL));

    reset_last_error();
    cr_assert_eq(faiss_IndexBinaryIVF_nlist((FaissIndexBinaryIVF*)flat), 0);
    FXT_LAST_ERR("faiss_IndexBinaryIVF_nlist", "IndexBinaryIVF");
    reset_last_error();
    faiss_IndexBinaryIVF_set_nprobe((FaissIndexBinaryIVF*)flat, 4);
    FXT_LAST_ERR("faiss_IndexBinaryIVF_set_nprobe", "IndexBinaryIVF");
    reset_last_error();
    cr_assert_null(faiss_IndexBinaryIVF_quantizer((FaissIndexBinaryIVF*)hnsw));
    FXT_LAST_ERR("faiss_IndexBinaryIVF_quantizer", "IndexBinaryIVF");
    reset_last_error();
    cr_assert_eq(faiss_IndexBinary_d(NULL), 0);
    FXT_LAST_ERR("faiss_IndexBinary_d", "NULL");
    reset_last_error();
    cr_assert_eq(faiss_IndexBinary_ntotal(NULL), 0);
    FXT_LAST_ERR("faiss_IndexBinary_ntotal", "NULL");

    /* verbose round-trips */
    faiss_IndexBinary_set_verbose(flat, 1);
    cr_assert_eq(faiss_IndexBinary_verbose(flat), 1);
    faiss_IndexBinary_set_verbose(flat, 0);
    cr_assert_eq(faiss_IndexBinary_verbose(flat), 0);

    faiss_IndexBinary_free(flat);
    faiss_IndexBinary_free(ivf);
    faiss_IndexBinary_free(hnsw);
    faiss_IndexBinary_free(NULL);
    faiss_IndexBinaryFlat_free(NULL);
    faiss_IndexBinaryIVF_free(NULL);
}

Test(binary, flat_default_constructor) {
    FaissIndexBinaryFlat* f = NULL;
    FXT_OK(faiss_IndexBinaryFlat_new(&f));
    OBx* o = make_o(&K_FLAT, 0 + 8);
    cr_assert_eq(faiss_IndexBinary_d((FaissIndexBinary*)f), 0);
    cr_assert_eq(faiss_IndexBinary_ntotal((FaissIndexBinary*)f), 0);
    OBxInfo in;
    ORB(obx_info(o, &in));
    cr_assert_eq(faiss_IndexBinary_is_trained((FaissIndexBinary*)f),
                 in.is_trained);
    cr_assert_eq((int)faiss_IndexBinary_metric_type((FaissIndexBinary*)f),
                 in.metric_type);
    faiss_IndexBinaryFlat_free(f);
    obx_free(o);
}

Test(binary, hnsw_efsearch) {
    Data s = data();
    FaissIndexBinary* ix;
    OBx* o;
    build_both(&K_HNSW, &s, &ix, &o);
    const int efs[] = {1, 5, 40, 200};
    for (size_t i = 0; i < 4; i++) {
        FXT_OK(faissx_IndexBinaryHNSW_set_efSearch(ix, efs[i]));
        ORB(obx_set_efSearch(o, efs[i]));
        int ef = 0;
        FXT_OK(faissx_IndexBinaryHNSW_get_efSearch(ix, &ef));
        cr_assert_eq(ef, efs[i]);
        same_search(ix, o, s.xq, NQ, K, "BHNSW16 efSearch");
    }
    FXT_ERR(faissx_IndexBinaryHNSW_set_efSearch(ix, 0), "efSearch");
    FXT_ERR(faissx_IndexBinaryHNSW_set_efSearch(ix, -3), "efSearch");
    FXT_ERR(faissx_IndexBinaryHNSW_get_efSearch(ix, NULL), "NULL");
    FaissIndexBinary* flat = make_c(&K_FLAT, D);
    int ef = 0;
    FXT_ERR(faissx_IndexBinaryHNSW_set_efSearch(flat, 10), "IndexBinaryHNSW");
    FXT_ERR(faissx_IndexBinaryHNSW_get_efSearch(flat, &ef), "IndexBinaryHNSW");
    FXT_ERR(faissx_IndexBinaryHNSW_get_efSearch(NULL, &ef), "NULL");
    FXT_ERR(faissx_IndexBinaryHNSW_set_efSearch(NULL, 10), "NULL");
    faiss_IndexBinary_free(flat);
    faiss_IndexBinary_free(ix);
    obx_free(o);
    data_free(&s);
}

/* ---- range search, assign -------------------------------------------- */

Test(binary, range_search_matches_cpp) {
    Data s = data();
    const BKind* ks[] = {&K_FLAT, &K_IVF, &K_HASH};
    const int radii[] = {0, 3, 20};
    for (size_t i = 0; i < 3; i++) {
        FaissIndexBinary* ix;
        OBx* o;
        build_both(ks[i], &s, &ix, &o);
        if (needs_training(ks[i])) {
            faiss_IndexBinaryIVF_set_nprobe((FaissIndexBinaryIVF*)ix, 4);
            ORB(obx_set_nprobe(o, 4));
        }
        for (size_t r = 0; r < 3; r++) {
            FaissRangeSearchResult* res = NULL;
            FXT_OK(faiss_RangeSearchResult_new(&res, NQ));
            FXT_OK(faiss_IndexBinary_range_search(ix, NQ, s.xq, radii[r], res));
            size_t *lims, *olims;
            idx_t *labels, *olabels;
            float *dist, *odist;
            faiss_RangeSearchResult_lims(res, &lims);
            faiss_RangeSearchResult_labels(res, &labels, &dist);
            ORB(obx_range(o, NQ, s.xq, radii[r], &olims, &olabels, &odist));
            FXT_SAME(lims, olims, (NQ + 1) * sizeof(size_t));
            FXT_SAME(labels, olabels, lims[NQ] * sizeof(idx_t));
            FXT_SAME(dist, odist, lims[NQ] * sizeof(float));
            if (radii[r] >= 3)
                cr_assert_gt(lims[NQ], 0, "%s: radius %d finds nothing",
                             ks[i]->factory, radii[r]);
            faiss_RangeSearchResult_free(res);
            free(olims);
            free(olabels);
            free(odist);
        }
        /* the result must have been made for n queries */
        FaissRangeSearchResult* bad = NULL;
        FXT_OK(faiss_RangeSearchResult_new(&bad, NQ - 1));
        FXT_ERR(faiss_IndexBinary_range_search(ix, NQ, s.xq, 3, bad),
                "allocated for");
        FXT_ERR(faiss_IndexBinary_range_search(ix, NQ, s.xq, 3, NULL), "NULL");
        faiss_RangeSearchResult_free(bad);
        faiss_IndexBinary_free(ix);
        obx_free(o);
    }
    /* HNSW has no range search: faiss's refusal comes through */
    FaissIndexBinary* h;
    OBx* ho;
    build_both(&K_HNSW, &s, &h, &ho);
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, NQ));
    FXT_ERR(faiss_IndexBinary_range_search(h, NQ, s.xq, 3, res), "");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_FAISS);
    faiss_RangeSearchResult_free(res);
    faiss_IndexBinary_free(h);
    obx_free(ho);
    data_free(&s);
}

Test(binary, assign_matches_cpp) {
    Data s = data();
    const BKind* ks[] = {&K_FLAT, &K_IVF, &K_HNSW};
    idx_t L[NQ * 4], Lo[NQ * 4];
    for (size_t i = 0; i < 3; i++) {
        FaissIndexBinary* ix;
        OBx* o;
        build_both(ks[i], &s, &ix, &o);
        FXT_OK(faiss_IndexBinary_assign(ix, NQ, s.xq, L, 4));
        ORB(obx_assign(o, NQ, s.xq, Lo, 4));
        FXT_SAME(L, Lo, sizeof L);
        FXT_OK(faiss_IndexBinary_assign(ix, NQ, s.xq, L, 1));
        ORB(obx_assign(o, NQ, s.xq, Lo, 1));
        FXT_SAME(L, Lo, NQ * sizeof(idx_t));
        FXT_ERR(faiss_IndexBinary_assign(ix, NQ, s.xq, L, 0), "k must be");
        FXT_ERR(faiss_IndexBinary_assign(ix, NQ, s.xq, NULL, 1), "NULL");
        FXT_ERR(faiss_IndexBinary_assign(ix, NQ, NULL, L, 1), "NULL");
        faiss_IndexBinary_free(ix);
        obx_free(o);
    }
    data_free(&s);
}

/* ---- reset, remove_ids, reconstruct ---------------------------------- */

Test(binary, reset_then_add_again) {
    Data s = data();
    const BKind* ks[] = {&K_FLAT, &K_IVF, &K_HASH, &K_HNSW};
    for (size_t i = 0; i < 4; i++) {
        FaissIndexBinary* ix;
        OBx* o;
        build_both(ks[i], &s, &ix, &o);
        FXT_OK(faiss_IndexBinary_reset(ix));
        ORB(obx_reset(o));
        cr_assert_eq(faiss_IndexBinary_ntotal(ix), 0);
        same_info(ix, o, ks[i]->factory);
        same_search(ix, o, s.xq, NQ, K, "after reset");
        FXT_OK(faiss_IndexBinary_add(ix, 500, s.xb + 100 * D / 8));
        ORB(obx_add(o, 500, s.xb + 100 * D / 8, NULL));
        same_search(ix, o, s.xq, NQ, K, "after reset and add");
        faiss_IndexBinary_free(ix);
        obx_free(o);
    }
    FXT_ERR(faiss_IndexBinary_reset(NULL), "NULL");
    data_free(&s);
}

Test(binary, remove_ids_matches_cpp) {
    Data s = data();
    idx_t batch[] = {0, 5, 97, 1999, 1500, 5, 123456};
    const BKind* ks[] = {&K_FLAT, &K_IVF};
    for (size_t i = 0; i < 2; i++) {
        FaissIndexBinary* ix;
        OBx* o;
        build_both(ks[i], &s, &ix, &o);
        FaissIDSelectorRange* range = NULL;
        FXT_OK(faiss_IDSelectorRange_new(&range, 100, 300));
        size_t nr = 0, nro = 0;
        FXT_OK(faiss_IndexBinary_remove_ids(ix, (FaissIDSelector*)range, &nr));
        ORB(obx_remove(o, 100, 300, 0, NULL, &nro));
        cr_assert_eq(nr, nro);
        cr_assert_eq(nr, 200);
        same_info(ix, o, "after range removal");
        same_search(ix, o, s.xq, NQ, K, "after range removal");
        FaissIDSelectorBatch* b = NULL;
        FXT_OK(faiss_IDSelectorBatch_new(&b, 7, batch));
        FXT_OK(faiss_IndexBinary_remove_ids(ix, (FaissIDSelector*)b, &nr));
        ORB(obx_remove(o, 0, 0, 7, batch, &nro));
        cr_assert_eq(nr, nro);
        same_info(ix, o, "after batch removal");
        same_search(ix, o, s.xq, NQ, K, "after batch removal");
        /* n_removed may be NULL */
        FXT_OK(faiss_IndexBinary_remove_ids(ix, (FaissIDSelector*)range, NULL));
        FXT_ERR(faiss_IndexBinary_remove_ids(ix, NULL, &nr), "NULL");
        faiss_IDSelector_free((FaissIDSelector*)range);
        faiss_IDSelector_free((FaissIDSelector*)b);
        faiss_IndexBinary_free(ix);
        obx_free(o);
    }
    /* HNSW cannot remove: faiss's refusal comes through */
    FaissIndexBinary* h = make_c(&K_HNSW, D);
    FXT_OK(faiss_IndexBinary_add(h, 10, s.xb));
    FaissIDSelectorRange* range = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&range, 0, 3));
    size_t nr = 99;
    FXT_ERR(faiss_IndexBinary_remove_ids(h, (FaissIDSelector*)range, &nr), "");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_FAISS);
    cr_assert_eq(faiss_IndexBinary_ntotal(h), 10);
    faiss_IDSelector_free((FaissIDSelector*)range);
    faiss_IndexBinary_free(h);
    data_free(&s);
}

Test(binary, reconstruct_matches_cpp) {
    Data s = data();
    const BKind* ks[] = {&K_FLAT, &K_HNSW};
    uint8_t r[D / 8], ro[D / 8];
    uint8_t* rn = malloc(NB * D / 8);
    uint8_t* rno = malloc(NB * D / 8);
    for (size_t i = 0; i < 2; i++) {
        FaissIndexBinary* ix;
        OBx* o;
        build_both(ks[i], &s, &ix, &o);
        const idx_t keys[] = {0, 1, 777, NB - 1};
        for (size_t j = 0; j < 4; j++) {
            FXT_OK(faiss_IndexBinary_reconstruct(ix, keys[j], r));
            ORB(obx_reconstruct(o, keys[j], ro));
            FXT_SAME(r, ro, sizeof r);
            FXT_SAME(r, s.xb + keys[j] * D / 8, sizeof r);
        }
        FXT_OK(faiss_IndexBinary_reconstruct_n(ix, 0, NB, rn));
        ORB(obx_reconstruct_n(o, 0, NB, rno));
        FXT_SAME(rn, rno, NB * D / 8);
        FXT_OK(faiss_IndexBinary_reconstruct_n(ix, 1990, 10, rn));
        FXT_SAME(rn, s.xb + 1990 * D / 8, 10 * D / 8);
        FXT_OK(faiss_IndexBinary_reconstruct_n(ix, NB, 0, NULL));
        /* exactly ni * d / 8 bytes are written (faiss 1.7.3's default
         * reconstruct_n strides by d and would overwrite the guard) */
        uint8_t guard[4 * D / 8 + 4 * D];
        memset(guard, 0xAA, sizeof guard);
        FXT_OK(faiss_IndexBinary_reconstruct_n(ix, 4, 4, guard));
        FXT_SAME(guard, s.xb + 4 * D / 8, 4 * D / 8);
        for (size_t g = 4 * D / 8; g < sizeof guard; g++)
            cr_assert_eq(guard[g], 0xAA, "byte %zu past the output written", g);
        /* out of range: refused before faiss reads out of bounds */
        FXT_ERR(faiss_IndexBinary_reconstruct(ix, NB, r), "out of range");
        FXT_ERR(faiss_IndexBinary_reconstruct(ix, -1, r), "out of range");
        FXT_ERR(faiss_IndexBinary_reconstruct_n(ix, NB - 5, 6, rn), "outside");
        FXT_ERR(faiss_IndexBinary_reconstruct_n(ix, -1, 2, rn), "outside");
        FXT_ERR(faiss_IndexBinary_reconstruct_n(ix, 0, -1, rn), "ni must be");
        FXT_ERR(faiss_IndexBinary_reconstruct(ix, 0, NULL), "NULL");
        FXT_ERR(faiss_IndexBinary_reconstruct_n(ix, 0, 2, NULL), "NULL");
        faiss_IndexBinary_free(ix);
        obx_free(o);
    }
    /* IVF: reconstruct needs a direct map (none by default); reconstruct_n
     * scans the lists */
    FaissIndexBinary* ivf;
    OBx* o;
    build_both(&K_IVF, &s, &ivf, &o);
    FXT_ERR(faiss_IndexBinary_reconstruct(ivf, 3, r), "");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_FAISS);
    cr_assert_neq(obx_reconstruct(o, 3, ro), 0, "C++ refuses too");
    FXT_OK(faiss_IndexBinary_reconstruct_n(ivf, 10, 100, rn));
    ORB(obx_reconstruct_n(o, 10, 100, rno));
    FXT_SAME(rn, rno, 100 * D / 8);
    FXT_SAME(rn, s.xb + 10 * D / 8, 100 * D / 8);
    uint8_t guard[4 * D / 8 + 4 * D];
    memset(guard, 0xAA, sizeof guard);
    FXT_OK(faiss_IndexBinary_reconstruct_n(ivf, 4, 4, guard));
    FXT_SAME(guard, s.xb + 4 * D / 8, 4 * D / 8);
    for (size_t g = 4 * D / 8; g < sizeof guard; g++)
        cr_assert_eq(guard[g], 0xAA, "IVF: byte %zu past the output written",
                     g);
    FXT_ERR(faiss_IndexBinary_reconstruct_n(ivf, NB - 5, 6, rn), "outside");
    FXT_ERR(faiss_IndexBinary_reconstruct_n(ivf, -1, 6, rn), "outside");
    faiss_IndexBinary_free(ivf);
    obx_free(o);
    /* Hash: no reconstruction at all */
    FaissIndexBinary* hash = make_c(&K_HASH, D);
    FXT_OK(faiss_IndexBinary_add(hash, 10, s.xb));
    FXT_ERR(faiss_IndexBinary_reconstruct(hash, 3, r), "");
    faiss_IndexBinary_free(hash);
    free(rn);
    free(rno);
    data_free(&s);
}

/* ---- add_with_ids on types that do / do not support it ---------------- */

Test(binary, add_with_ids) {
    Data s = data();
    idx_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = 5000 + 3 * i;
    /* Hash keeps ids */
    FaissIndexBinary* h = make_c(&K_HASH, D);
    OBx* ho = make_o(&K_HASH, D);
    FXT_OK(faiss_IndexBinary_add_with_ids(h, 100, s.xb, ids));
    ORB(obx_add(ho, 100, s.xb, ids));
    same_search(h, ho, s.xb, 10, 3, "BHash16 with ids");
    faiss_IndexBinary_free(h);
    obx_free(ho);
    /* Flat and HNSW are positional: faiss refuses */
    const BKind* ks[] = {&K_FLAT, &K_HNSW};
    for (size_t i = 0; i < 2; i++) {
        FaissIndexBinary* ix = make_c(ks[i], D);
        FXT_ERR(faiss_IndexBinary_add_with_ids(ix, 100, s.xb, ids), "");
        cr_assert_eq(faissx_last_error_code(), FAISSX_E_FAISS);
        cr_assert_eq(faiss_IndexBinary_ntotal(ix), 0);
        faiss_IndexBinary_free(ix);
    }
    FaissIndexBinary* ivf = make_c(&K_IVF, D);
    FXT_OK(faiss_IndexBinary_train(ivf, NT, s.xt));
    FXT_ERR(faiss_IndexBinary_add_with_ids(ivf, 100, s.xb, NULL), "xids");
    FXT_OK(faiss_IndexBinary_add_with_ids(ivf, 0, NULL, NULL));
    faiss_IndexBinary_free(ivf);
    data_free(&s);
}

/* ---- clone ----------------------------------------------------------- */

Test(binary, clone_is_identical_and_independent) {
    Data s = data();
    for (size_t i = 0; i < NKINDS; i++) {
        const BKind* k = &KINDS[i];
        FaissIndexBinary* ix;
        OBx* o;
        build_both(k, &s, &ix, &o);
        FaissIndexBinary* c = NULL;
        FXT_OK(faissx_clone_index_binary(ix, &c));
        cr_assert_neq(c, ix);
        same_info(c, o, "clone");
        same_search(c, o, s.xq, NQ, K, k->factory);
        /* modifying the clone leaves the original as it was */
        FXT_OK(faiss_IndexBinary_add(c, 100, s.xt));
        cr_assert_eq(faiss_IndexBinary_ntotal(c), NB + 100);
        same_info(ix, o, "original after clone add");
        same_search(ix, o, s.xq, NQ, K, "original after clone add");
        FXT_OK(faiss_IndexBinary_reset(c));
        same_search(ix, o, s.xq, NQ, K, "original after clone reset");
        faiss_IndexBinary_free(c);
        same_search(ix, o, s.xq, NQ, K, "original after clone free");
        faiss_IndexBinary_free(ix);
        obx_free(o);
    }
    FaissIndexBinary* c = NULL;
    FXT_ERR(faissx_clone_index_binary(NULL, &c), "NULL");
    FaissIndexBinary* f = make_c(&K_FLAT, D);
    FXT_ERR(faissx_clone_index_binary(f, NULL), "NULL");
    faiss_IndexBinary_free(f);
    data_free(&s);
}

/* ---- errors ---------------------------------------------------------- */

Test(binary, dimension_must_be_a_multiple_of_8) {
    FaissIndexBinary* ix = NULL;
    FXT_ERR(faiss_IndexBinaryFlat_new_with((FaissIndexBinaryFlat**)&ix, 12),
            "multiple of 8");
    FXT_ERR(faiss_IndexBinaryFlat_new_with((FaissIndexBinaryFlat**)&ix, 0),
            "");
    FXT_ERR(faiss_IndexBinaryFlat_new_with((FaissIndexBinaryFlat**)&ix, -8),
            "");
    FXT_ERR(faiss_IndexBinaryFlat_new_with(NULL, 8), "NULL");
    FXT_ERR(faiss_IndexBinaryFlat_new(NULL), "NULL");
    FXT_ERR(faissx_IndexBinaryHash_new(&ix, 20, 8), "multiple of 8");
    FXT_ERR(faissx_IndexBinaryHNSW_new(&ix, 7, 16), "multiple of 8");
    FXT_ERR(faiss_index_binary_factory(&ix, 9, "BFlat"), "multiple of 8");
    FXT_ERR(faiss_index_binary_factory(&ix, 0, "BFlat"), "");
    FaissIndexBinaryFlat* q = NULL;
    FXT_OK(faiss_IndexBinaryFlat_new_with(&q, 16));
    FXT_ERR(faissx_IndexBinaryIVF_new((FaissIndexBinaryIVF**)&ix,
                                      (FaissIndexBinary*)q, 12, 4),
            "multiple of 8");
    /* the quantizer must have the IVF's dimension */
    FXT_ERR(faissx_IndexBinaryIVF_new((FaissIndexBinaryIVF**)&ix,
                                      (FaissIndexBinary*)q, 32, 4),
            "quantizer dimension");
    FXT_ERR(faissx_IndexBinaryIVF_new((FaissIndexBinaryIVF**)&ix,
                                      (FaissIndexBinary*)q, 16, 0),
            "nlist");
    FXT_ERR(faissx_IndexBinaryIVF_new((FaissIndexBinaryIVF**)&ix, NULL, 16, 4),
            "NULL");
    cr_assert_null(ix, "no failed constructor may write its output");
    /* failed IVF construction does not take the quantizer */
    cr_assert_eq(faiss_IndexBinary_d((FaissIndexBinary*)q), 16);
    faiss_IndexBinaryFlat_free(q);
    /* other constructor parameters */
    FXT_ERR(faissx_IndexBinaryHash_new(&ix, 16, 0), "b must be");
    FXT_ERR(faissx_IndexBinaryHash_new(&ix, 16, 17), "b must be");
    FXT_ERR(faissx_IndexBinaryHash_new(&ix, 128, 65), "b must be");
    FXT_ERR(faissx_IndexBinaryHNSW_new(&ix, 16, 0), "M must be");
    FXT_ERR(faissx_IndexBinaryHash_new(NULL, 16, 8), "NULL");
    FXT_ERR(faissx_IndexBinaryHNSW_new(NULL, 16, 8), "NULL");
}

Test(binary, factory_strings) {
    /* what faiss 1.7.3's index_binary_factory accepts */
    const char* good[] = {"BFlat", "BIVF4", "BIVF4_HNSW8", "BHNSW8",
                          "BHash16", "BHash2x8"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        FaissIndexBinary* ix = NULL;
        FXT_OK(faiss_index_binary_factory(&ix, 32, good[i]));
        OBx* o = make_o(&(BKind){good[i], BK_FACTORY, 0}, 32);
        same_info(ix, o, good[i]);
        obx_free(o);
        faiss_IndexBinary_free(ix);
    }
    /* and what it does not: IDMap wrappers are not part of 1.7.3's binary
     * factory, neither are unknown or empty strings */
    const char* bad[] = {"IDMap,BFlat", "Flat", "BIVF", "BFlat2", "bflat",
                         "BLSH"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        FaissIndexBinary* ix = NULL;
        FXT_ERR(faiss_index_binary_factory(&ix, 32, bad[i]), "");
        cr_assert_null(ix);
        cr_assert_null(obx_factory(bad[i], 32), "C++ refuses %s too", bad[i]);
    }
    FaissIndexBinary* ix = NULL;
    FXT_ERR(faiss_index_binary_factory(&ix, 32, ""), "empty");
    FXT_ERR(faiss_index_binary_factory(&ix, 32, NULL), "NULL");
    FXT_ERR(faiss_index_binary_factory(NULL, 32, "BFlat"), "NULL");
}

Test(binary, usage_errors) {
    Data s = data();
    int32_t Dd[NQ * K];
    idx_t I[NQ * K];
    /* untrained IVF: add and search refused with a clear message */
    FaissIndexBinary* ivf = make_c(&K_IVF, D);
    cr_assert_not(faiss_IndexBinary_is_trained(ivf));
    FXT_ERR(faiss_IndexBinary_add(ivf, NB, s.xb), "not trained");
    FXT_ERR(faiss_IndexBinary_add_with_ids(ivf, 1, s.xb, I), "not trained");
    FXT_ERR(faiss_IndexBinary_search(ivf, NQ, s.xq, K, Dd, I), "not trained");
    FXT_ERR(faiss_IndexBinary_assign(ivf, NQ, s.xq, I, 1), "not trained");
    /* too few training points for 16 centroids */
    FXT_ERR(faiss_IndexBinary_train(ivf, 10, s.xt), "");
    cr_assert_not(faiss_IndexBinary_is_trained(ivf));
    FXT_ERR(faiss_IndexBinary_train(ivf, NT, NULL), "NULL");
    FXT_ERR(faiss_IndexBinary_train(ivf, -1, s.xt), "n must be");
    FXT_ERR(faiss_IndexBinary_train(NULL, NT, s.xt), "NULL");
    faiss_IndexBinary_free(ivf);

    FaissIndexBinary* f = make_c(&K_FLAT, D);
    FXT_OK(faiss_IndexBinary_add(f, NB, s.xb));
    FXT_ERR(faiss_IndexBinary_search(f, NQ, s.xq, 0, Dd, I), "k must be");
    FXT_ERR(faiss_IndexBinary_search(f, NQ, s.xq, -1, Dd, I), "k must be");
    FXT_ERR(faiss_IndexBinary_search(f, NQ, s.xq, K, NULL, I), "distances");
    FXT_ERR(faiss_IndexBinary_search(f, NQ, s.xq, K, Dd, NULL), "labels");
    FXT_ERR(faiss_IndexBinary_search(f, NQ, NULL, K, Dd, I), "NULL");
    FXT_ERR(faiss_IndexBinary_search(f, -1, s.xq, K, Dd, I), "n must be");
    FXT_ERR(faiss_IndexBinary_search(NULL, NQ, s.xq, K, Dd, I), "NULL");
    FXT_ERR(faiss_IndexBinary_add(f, -5, s.xb), "n must be");
    FXT_ERR(faiss_IndexBinary_add(f, 5, NULL), "NULL");
    FXT_ERR(faiss_IndexBinary_add(NULL, 5, s.xb), "NULL");
    cr_assert_eq(faiss_IndexBinary_ntotal(f), NB, "failed adds add nothing");
    /* n = 0 is a successful no-op */
    FXT_OK(faiss_IndexBinary_add(f, 0, NULL));
    FXT_OK(faiss_IndexBinary_search(f, 0, NULL, K, NULL, NULL));
    faiss_IndexBinary_free(f);
    data_free(&s);
}
