/* test_index.c -- the generic Index_c.h API on several index types (Flat
 * L2/IP, IVF16,Flat, SQ8, IDMap,Flat), each result compared bit for bit
 * with the same index built by faiss C++. */
#include "common.h"
#include "oracle.h"
#include "oracle_index.h"

#include <math.h>
#include <stdlib.h>

#define ORC(call)                                                          \
    cr_assert_eq((call), 0, "oracle %s failed: %s%s", #call,               \
                 oracle_last_error(), oracle_index_error())

/* ---- the indexes under test, built through the C API ----------------- */

typedef struct Kind {
    const char* factory; /* what faiss::index_factory builds in the oracle */
    int metric;
} Kind;

static const Kind K_FLAT = {"Flat", METRIC_L2};
static const Kind K_FLATIP = {"Flat", METRIC_INNER_PRODUCT};
static const Kind K_IVF = {"IVF16,Flat", METRIC_L2};
static const Kind K_IVFIP = {"IVF16,Flat", METRIC_INNER_PRODUCT};
static const Kind K_SQ8 = {"SQ8", METRIC_L2};
static const Kind K_IDMAP = {"IDMap,Flat", METRIC_L2};

/* The same index as faiss::index_factory(d, k->factory, k->metric), made
 * with the C constructors. */
static FaissIndex* make(const Kind* k, int d) {
    FaissIndex* ix = NULL;
    if (strcmp(k->factory, "Flat") == 0) {
        FXT_OK(faiss_IndexFlat_new_with(&ix, d, k->metric));
    } else if (strcmp(k->factory, "IVF16,Flat") == 0) {
        FaissIndex* q = NULL;
        if (k->metric == METRIC_L2)
            FXT_OK(faiss_IndexFlatL2_new_with(&q, d));
        else
            FXT_OK(faiss_IndexFlatIP_new_with(&q, d));
        FXT_OK(faiss_IndexIVFFlat_new_with_metric(&ix, q, d, 16, k->metric));
        faiss_IndexIVFFlat_set_own_fields(ix, 1);
    } else if (strcmp(k->factory, "SQ8") == 0) {
        FXT_OK(faiss_IndexScalarQuantizer_new_with(&ix, d, QT_8bit,
                                                   k->metric));
    } else if (strcmp(k->factory, "IDMap,Flat") == 0) {
        FaissIndex* sub = NULL;
        FXT_OK(faiss_IndexFlat_new_with(&sub, d, k->metric));
        FXT_OK(faiss_IndexIDMap_new(&ix, sub));
        faiss_IndexIDMap_set_own_fields(ix, 1);
    } else {
        cr_assert_fail("unknown kind %s", k->factory);
    }
    cr_assert(ix != NULL);
    return ix;
}

static int is_idmap(const Kind* k) {
    return strncmp(k->factory, "IDMap", 5) == 0;
}

/* Shared data: nb base vectors (also the training set), nq queries. */
typedef struct Data {
    int d;
    idx_t nb, nq, k;
    float *xb, *xq;
    idx_t* ids; /* external ids for IDMap: a scrambled permutation + 10^5 */
} Data;

static Data data(void) {
    Data D = {16, 2000, 20, 10, NULL, NULL, NULL};
    D.xb = fxt_clustered((size_t)D.nb, D.d, 40, 0.05f, 11);
    D.xq = fxt_clustered((size_t)D.nq, D.d, 40, 0.05f, 12);
    D.ids = malloc((size_t)D.nb * sizeof(idx_t));
    for (idx_t i = 0; i < D.nb; i++) D.ids[i] = 100000 + (i * 7919) % D.nb;
    return D;
}

static void data_free(Data* D) {
    free(D->xb);
    free(D->xq);
    free(D->ids);
}

/* Train (on xb) and fill an index of kind k. */
static FaissIndex* build(const Kind* k, const Data* D) {
    FaissIndex* ix = make(k, D->d);
    FXT_OK(faiss_Index_train(ix, D->nb, D->xb));
    cr_assert(faiss_Index_is_trained(ix));
    if (is_idmap(k))
        FXT_OK(faiss_Index_add_with_ids(ix, D->nb, D->xb, D->ids));
    else
        FXT_OK(faiss_Index_add(ix, D->nb, D->xb));
    cr_assert_eq(faiss_Index_ntotal(ix), D->nb);
    return ix;
}

static const idx_t* ids_of(const Kind* k, const Data* D) {
    return is_idmap(k) ? D->ids : NULL;
}

/* ---- getters ---------------------------------------------------------- */

static void check_getters(const Kind* k, int trained_at_birth) {
    const int d = 24;
    FaissIndex* ix = make(k, d);
    cr_assert_eq(faiss_Index_d(ix), d);
    cr_assert_eq(faiss_Index_is_trained(ix), trained_at_birth);
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    cr_assert_eq(faiss_Index_metric_type(ix), k->metric);
    cr_assert_eq(faiss_Index_verbose(ix), 0);
    faiss_Index_set_verbose(ix, 1);
    cr_assert_eq(faiss_Index_verbose(ix), 1);
    faiss_Index_set_verbose(ix, 0);
    cr_assert_eq(faiss_Index_verbose(ix), 0);

    float* x = fxt_uniform(700, d, 3);
    FXT_OK(faiss_Index_train(ix, 700, x));
    cr_assert_eq(faiss_Index_is_trained(ix), 1);
    cr_assert_eq(faiss_Index_ntotal(ix), 0, "train must not add");
    if (!is_idmap(k)) {
        FXT_OK(faiss_Index_add(ix, 300, x));
        FXT_OK(faiss_Index_add(ix, 400, x + 300 * d));
        cr_assert_eq(faiss_Index_ntotal(ix), 700);
    }
    cr_assert_eq(faiss_Index_d(ix), d);
    cr_assert_eq(faiss_Index_metric_type(ix), k->metric);
    faiss_Index_free(ix);
    free(x);
}

Test(index, getters_flat) {
    check_getters(&K_FLAT, 1);
    check_getters(&K_FLATIP, 1);
}
Test(index, getters_ivf) {
    check_getters(&K_IVF, 0);
    check_getters(&K_IVFIP, 0);
}
Test(index, getters_sq8) { check_getters(&K_SQ8, 0); }
Test(index, getters_idmap) { check_getters(&K_IDMAP, 1); }

/* ---- add / search ----------------------------------------------------- */

static void check_search(const Kind* k) {
    Data D = data();
    FaissIndex* ix = build(k, &D);
    size_t n = (size_t)(D.nq * D.k);
    float *Dc = malloc(n * sizeof(float)), *Do = malloc(n * sizeof(float));
    idx_t *Ic = malloc(n * sizeof(idx_t)), *Io = malloc(n * sizeof(idx_t));
    FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, Dc, Ic));
    ORC(oracle_factory_search(k->factory, D.d, k->metric, D.nb, D.xb, D.nb,
                              D.xb, ids_of(k, &D), NULL, D.nq, D.xq, D.k, Do,
                              Io));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    FXT_SAME(Dc, Do, n * sizeof(float));
    /* the results are real neighbours, not the -1 padding */
    for (size_t i = 0; i < n; i++) cr_assert_geq(Ic[i], 0);
    /* searching again gives the same answer */
    FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, Dc, Ic));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    FXT_SAME(Dc, Do, n * sizeof(float));
    /* small batches (below faiss's BLAS threshold of 20 queries, a
     * different code path for Flat) also match C++ */
    for (idx_t q = 0; q + 3 <= D.nq; q += 7) {
        FXT_OK(faiss_Index_search(ix, 3, D.xq + q * D.d, D.k, Dc, Ic));
        ORC(oracle_factory_search(k->factory, D.d, k->metric, D.nb, D.xb,
                                  D.nb, D.xb, ids_of(k, &D), NULL, 3,
                                  D.xq + q * D.d, D.k, Do, Io));
        FXT_SAME(Ic, Io, (size_t)(3 * D.k) * sizeof(idx_t));
        FXT_SAME(Dc, Do, (size_t)(3 * D.k) * sizeof(float));
    }
    /* n = 0 is a valid no-op */
    FXT_OK(faiss_Index_search(ix, 0, NULL, D.k, NULL, NULL));
    faiss_Index_free(ix);
    free(Dc), free(Do), free(Ic), free(Io);
    data_free(&D);
}

Test(index, search_flat_l2) { check_search(&K_FLAT); }
Test(index, search_flat_ip) { check_search(&K_FLATIP); }
Test(index, search_ivf_l2) { check_search(&K_IVF); }
Test(index, search_ivf_ip) { check_search(&K_IVFIP); }
Test(index, search_sq8) { check_search(&K_SQ8); }
Test(index, search_idmap) { check_search(&K_IDMAP); }

/* The same indexes made by faiss_index_factory: getters, training and
 * search as in C++. */
static void check_factory(const Kind* k, int trained_at_birth) {
    Data D = data();
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D.d, k->factory, k->metric));
    cr_assert_not_null(ix);
    cr_assert_eq(faiss_Index_d(ix), D.d);
    cr_assert_eq(faiss_Index_metric_type(ix), k->metric);
    cr_assert_eq(faiss_Index_is_trained(ix), trained_at_birth);
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    if (strncmp(k->factory, "IVF", 3) == 0) {
        cr_assert_not_null(faiss_IndexIVF_cast(ix));
        cr_assert_not_null(faiss_IndexIVFFlat_cast(ix));
        cr_assert_eq(faiss_IndexIVF_nlist(ix), 16);
        cr_assert_eq(faiss_IndexIVF_nprobe(ix), 1);
    }
    FXT_OK(faiss_Index_train(ix, D.nb, D.xb));
    cr_assert(faiss_Index_is_trained(ix));
    if (is_idmap(k))
        FXT_OK(faiss_Index_add_with_ids(ix, D.nb, D.xb, D.ids));
    else
        FXT_OK(faiss_Index_add(ix, D.nb, D.xb));
    cr_assert_eq(faiss_Index_ntotal(ix), D.nb);
    size_t n = (size_t)(D.nq * D.k);
    float *Dc = malloc(n * sizeof(float)), *Do = malloc(n * sizeof(float));
    idx_t *Ic = malloc(n * sizeof(idx_t)), *Io = malloc(n * sizeof(idx_t));
    FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, Dc, Ic));
    ORC(oracle_factory_search(k->factory, D.d, k->metric, D.nb, D.xb, D.nb,
                              D.xb, ids_of(k, &D), NULL, D.nq, D.xq, D.k, Do,
                              Io));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    FXT_SAME(Dc, Do, n * sizeof(float));
    /* and the hand-built twin answers the same */
    FaissIndex* twin = build(k, &D);
    FXT_OK(faiss_Index_search(twin, D.nq, D.xq, D.k, Dc, Ic));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    FXT_SAME(Dc, Do, n * sizeof(float));
    faiss_Index_free(twin);
    free(Dc), free(Do), free(Ic), free(Io);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, factory_ivf) { check_factory(&K_IVF, 0); }
Test(index, factory_ivf_ip) { check_factory(&K_IVFIP, 0); }
Test(index, factory_sq8) { check_factory(&K_SQ8, 0); }
Test(index, factory_flat) { check_factory(&K_FLATIP, 1); }
Test(index, factory_idmap) { check_factory(&K_IDMAP, 1); }

Test(index, search_k_larger_than_ntotal_pads) {
    const int d = 8;
    float* x = fxt_uniform(5, d, 4);
    FaissIndex* ix = make(&K_FLAT, d);
    FXT_OK(faiss_Index_add(ix, 5, x));
    float Dc[2 * 8], Do[2 * 8];
    idx_t Ic[2 * 8], Io[2 * 8];
    FXT_OK(faiss_Index_search(ix, 2, x, 8, Dc, Ic));
    ORC(oracle_factory_search("Flat", d, METRIC_L2, 0, NULL, 5, x, NULL, NULL,
                              2, x, 8, Do, Io));
    FXT_SAME(Ic, Io, sizeof Ic);
    FXT_SAME(Dc, Do, sizeof Dc);
    cr_assert_eq(Ic[0], 0);
    cr_assert_eq(Ic[7], -1, "missing neighbours are labelled -1");
    faiss_Index_free(ix);
    free(x);
}

/* An empty index answers "nothing" (-1, and faiss's padding distance)
 * however many queries there are. faiss 1.7.3's IndexFlat leaves the
 * outputs unwritten for n >= 20 queries; the C API must not. */
static void check_empty(const Kind* k, idx_t nq) {
    const int d = 8;
    const idx_t kk = 4;
    float* xq = fxt_uniform((size_t)nq, d, 9);
    float* xt = fxt_uniform(1000, d, 10);
    FaissIndex* ix = make(k, d);
    FXT_OK(faiss_Index_train(ix, 1000, xt));
    size_t n = (size_t)(nq * kk);
    float* Dc = malloc(n * sizeof(float));
    idx_t* Ic = malloc(n * sizeof(idx_t));
    memset(Dc, 0x5a, n * sizeof(float)); /* not a padding value */
    memset(Ic, 0x5a, n * sizeof(idx_t));
    FXT_OK(faiss_Index_search(ix, nq, xq, kk, Dc, Ic));
    /* faiss's answer for one query (a path that does write the outputs) */
    float Do[4];
    idx_t Io[4];
    ORC(oracle_factory_search(k->factory, d, k->metric, 1000, xt, 0, NULL,
                              NULL, NULL, 1, xq, kk, Do, Io));
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(Ic[i], -1, "label %zu is %lld", i, (long long)Ic[i]);
        cr_assert_eq(Io[i % kk], -1);
        cr_assert(memcmp(&Dc[i], &Do[i % kk], sizeof(float)) == 0,
                  "distance %zu is %g, faiss pads with %g", i, Dc[i],
                  Do[i % kk]);
    }
    memset(Ic, 0x5a, n * sizeof(idx_t));
    FXT_OK(faiss_Index_assign(ix, nq, xq, Ic, kk));
    for (size_t i = 0; i < n; i++) cr_assert_eq(Ic[i], -1);
    FaissSearchParameters* sp = NULL;
    if (strncmp(k->factory, "IVF", 3) != 0) {
        FXT_OK(faiss_SearchParameters_new(&sp, NULL));
        memset(Ic, 0x5a, n * sizeof(idx_t));
        FXT_OK(faiss_Index_search_with_params(ix, nq, xq, kk, sp, Dc, Ic));
        for (size_t i = 0; i < n; i++) cr_assert_eq(Ic[i], -1);
        faiss_SearchParameters_free(sp);
    }
    free(Dc), free(Ic), free(xq), free(xt);
    faiss_Index_free(ix);
}

Test(index, search_empty_flat_l2) {
    check_empty(&K_FLAT, 1);
    check_empty(&K_FLAT, 25);
}
Test(index, search_empty_flat_ip) {
    check_empty(&K_FLATIP, 3);
    check_empty(&K_FLATIP, 64);
}
Test(index, search_empty_idmap) { check_empty(&K_IDMAP, 30); }
Test(index, search_empty_ivf) { check_empty(&K_IVF, 30); }
Test(index, search_empty_sq8) { check_empty(&K_SQ8, 30); }

Test(index, range_search_empty_flat) {
    const int d = 8;
    const idx_t nq = 25;
    float* xq = fxt_uniform(nq, d, 9);
    FaissIndex* ix = make(&K_FLAT, d);
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, nq));
    FXT_OK(faiss_Index_range_search(ix, nq, xq, 10.0f, res));
    size_t* lims = NULL;
    faiss_RangeSearchResult_lims(res, &lims);
    for (idx_t i = 0; i <= nq; i++) cr_assert_eq(lims[i], 0);
    faiss_RangeSearchResult_free(res);
    faiss_Index_free(ix);
    free(xq);
}

Test(index, add_with_ids_ivf) {
    Data D = data();
    FaissIndex* ix = make(&K_IVF, D.d);
    FXT_OK(faiss_Index_train(ix, D.nb, D.xb));
    FXT_OK(faiss_Index_add_with_ids(ix, D.nb, D.xb, D.ids));
    cr_assert_eq(faiss_Index_ntotal(ix), D.nb);
    size_t n = (size_t)(D.nq * D.k);
    float *Dc = malloc(n * sizeof(float)), *Do = malloc(n * sizeof(float));
    idx_t *Ic = malloc(n * sizeof(idx_t)), *Io = malloc(n * sizeof(idx_t));
    FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, Dc, Ic));
    ORC(oracle_factory_search("IVF16,Flat", D.d, METRIC_L2, D.nb, D.xb, D.nb,
                              D.xb, D.ids, NULL, D.nq, D.xq, D.k, Do, Io));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    FXT_SAME(Dc, Do, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        cr_assert(Ic[i] >= 100000 && Ic[i] < 100000 + D.nb,
                  "label %lld is not an external id", (long long)Ic[i]);
    faiss_Index_free(ix);
    free(Dc), free(Do), free(Ic), free(Io);
    data_free(&D);
}

Test(index, add_with_ids_unsupported_on_flat) {
    Data D = data();
    FaissIndex* ix = make(&K_FLAT, D.d);
    FXT_ERR(faiss_Index_add_with_ids(ix, 10, D.xb, D.ids), "add_with_ids");
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    faiss_Index_free(ix);
    data_free(&D);
}

/* ---- range search ----------------------------------------------------- */

static void check_range(const Kind* k) {
    Data D = data();
    FaissIndex* ix = build(k, &D);
    /* a radius from the data: around the 5th neighbour of the queries */
    size_t n = (size_t)(D.nq * D.k);
    float* Dk = malloc(n * sizeof(float));
    idx_t* Ik = malloc(n * sizeof(idx_t));
    FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, Dk, Ik));
    double acc = 0;
    for (idx_t q = 0; q < D.nq; q++) acc += Dk[q * D.k + 4];
    float radius = (float)(acc / (double)D.nq);

    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, D.nq));
    FXT_OK(faiss_Index_range_search(ix, D.nq, D.xq, radius, res));
    cr_assert_eq(faiss_RangeSearchResult_nq(res), (size_t)D.nq);
    size_t* lims = NULL;
    idx_t* labels = NULL;
    float* dist = NULL;
    faiss_RangeSearchResult_lims(res, &lims);
    faiss_RangeSearchResult_labels(res, &labels, &dist);

    size_t *olims = NULL;
    idx_t* olabels = NULL;
    float* odist = NULL;
    ORC(oracle_factory_range(k->factory, D.d, k->metric, D.nb, D.xb, D.nb,
                             D.xb, NULL, D.nq, D.xq, radius, &olims, &olabels,
                             &odist));
    FXT_SAME(lims, olims, (size_t)(D.nq + 1) * sizeof(size_t));
    size_t tot = lims[D.nq];
    cr_assert_gt(tot, 0, "radius %g selects nothing", radius);
    cr_assert_lt(tot, (size_t)(D.nq * D.nb), "radius %g selects all", radius);
    FXT_SAME(labels, olabels, tot * sizeof(idx_t));
    FXT_SAME(dist, odist, tot * sizeof(float));
    /* every hit is within the radius */
    for (size_t i = 0; i < tot; i++) {
        if (k->metric == METRIC_L2)
            cr_assert_lt(dist[i], radius);
        else
            cr_assert_gt(dist[i], radius);
    }
    faiss_RangeSearchResult_free(res);
    free(olims), free(olabels), free(odist);
    free(Dk), free(Ik);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, range_search_flat_l2) { check_range(&K_FLAT); }
Test(index, range_search_flat_ip) { check_range(&K_FLATIP); }
Test(index, range_search_ivf) { check_range(&K_IVF); }

Test(index, range_search_unsupported_on_sq8) {
    Data D = data();
    FaissIndex* ix = build(&K_SQ8, &D);
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, D.nq));
    FXT_ERR(faiss_Index_range_search(ix, D.nq, D.xq, 1.0f, res), "range");
    faiss_RangeSearchResult_free(res);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, range_search_result_size_mismatch) {
    Data D = data();
    FaissIndex* ix = build(&K_FLAT, &D);
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, D.nq - 1));
    FXT_ERR(faiss_Index_range_search(ix, D.nq, D.xq, 1.0f, res), "queries");
    FXT_ERR(faiss_Index_range_search(ix, D.nq - 1, D.xq, NAN, res), "NaN");
    faiss_RangeSearchResult_free(res);
    faiss_Index_free(ix);
    data_free(&D);
}

/* ---- assign ----------------------------------------------------------- */

static void check_assign(const Kind* k) {
    Data D = data();
    FaissIndex* ix = build(k, &D);
    size_t n = (size_t)(D.nq * D.k);
    idx_t *Ic = malloc(n * sizeof(idx_t)), *Io = malloc(n * sizeof(idx_t));
    float* Do = malloc(n * sizeof(float));
    FXT_OK(faiss_Index_assign(ix, D.nq, D.xq, Ic, D.k));
    ORC(oracle_factory_search(k->factory, D.d, k->metric, D.nb, D.xb, D.nb,
                              D.xb, ids_of(k, &D), NULL, D.nq, D.xq, D.k, Do,
                              Io));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    /* k = 1: the first column */
    FXT_OK(faiss_Index_assign(ix, D.nq, D.xq, Ic, 1));
    for (idx_t q = 0; q < D.nq; q++) cr_assert_eq(Ic[q], Io[q * D.k]);
    free(Ic), free(Io), free(Do);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, assign_flat) { check_assign(&K_FLAT); }
Test(index, assign_ivf) { check_assign(&K_IVF); }

/* ---- reset ------------------------------------------------------------ */

static void check_reset(const Kind* k) {
    Data D = data();
    FaissIndex* ix = build(k, &D);
    size_t n = (size_t)(D.nq * D.k);
    float *D1 = malloc(n * sizeof(float)), *D2 = malloc(n * sizeof(float));
    idx_t *I1 = malloc(n * sizeof(idx_t)), *I2 = malloc(n * sizeof(idx_t));
    FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, D1, I1));
    FXT_OK(faiss_Index_reset(ix));
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    cr_assert(faiss_Index_is_trained(ix), "reset keeps the training");
    cr_assert_eq(faiss_Index_d(ix), D.d);
    FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, D2, I2));
    for (size_t i = 0; i < n; i++) cr_assert_eq(I2[i], -1);
    /* refill: the same index again */
    if (is_idmap(k))
        FXT_OK(faiss_Index_add_with_ids(ix, D.nb, D.xb, D.ids));
    else
        FXT_OK(faiss_Index_add(ix, D.nb, D.xb));
    FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, D2, I2));
    FXT_SAME(I1, I2, n * sizeof(idx_t));
    FXT_SAME(D1, D2, n * sizeof(float));
    free(D1), free(D2), free(I1), free(I2);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, reset_flat) { check_reset(&K_FLAT); }
Test(index, reset_ivf) { check_reset(&K_IVF); }
Test(index, reset_sq8) { check_reset(&K_SQ8); }
Test(index, reset_idmap) { check_reset(&K_IDMAP); }

/* ---- remove_ids ------------------------------------------------------- */

static FaissIDSelector* make_sel(OracleSel s) {
    if (s.ids) {
        FaissIDSelectorBatch* b = NULL;
        FXT_OK(faiss_IDSelectorBatch_new(&b, s.nids, s.ids));
        return (FaissIDSelector*)b;
    }
    FaissIDSelectorRange* r = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&r, s.imin, s.imax));
    return (FaissIDSelector*)r;
}

static void check_remove(const Kind* k, OracleSel s) {
    Data D = data();
    FaissIndex* ix = build(k, &D);
    FaissIDSelector* sel = make_sel(s);
    size_t removed = 12345, oremoved = 0;
    idx_t ontotal = 0;
    FXT_OK(faiss_Index_remove_ids(ix, sel, &removed));
    size_t n = (size_t)(D.nq * D.k);
    float *Dc = malloc(n * sizeof(float)), *Do = malloc(n * sizeof(float));
    idx_t *Ic = malloc(n * sizeof(idx_t)), *Io = malloc(n * sizeof(idx_t));
    FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, Dc, Ic));
    ORC(oracle_remove_search(k->factory, D.d, k->metric, D.nb, D.xb, D.nb,
                             D.xb, ids_of(k, &D), s, &oremoved, &ontotal,
                             D.nq, D.xq, D.k, Do, Io));
    cr_assert_gt(oremoved, 0, "the selector should remove something");
    cr_assert_eq(removed, oremoved);
    cr_assert_eq(faiss_Index_ntotal(ix), ontotal);
    cr_assert_eq(faiss_Index_ntotal(ix), D.nb - (idx_t)removed);
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    FXT_SAME(Dc, Do, n * sizeof(float));
    /* nothing removed is still returned (labels are positions after the
     * shift for Flat, so check by id only for IVF and IDMap) */
    if (strcmp(k->factory, "Flat") != 0)
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(faiss_IDSelector_is_member(sel, Ic[i]), 0,
                         "removed id %lld still found", (long long)Ic[i]);
    /* removing again removes nothing; n_removed may be NULL */
    FXT_OK(faiss_Index_remove_ids(ix, sel, &removed));
    if (strcmp(k->factory, "Flat") != 0) cr_assert_eq(removed, 0);
    FXT_OK(faiss_Index_remove_ids(ix, sel, NULL));
    faiss_IDSelector_free(sel);
    free(Dc), free(Do), free(Ic), free(Io);
    faiss_Index_free(ix);
    data_free(&D);
}

static const idx_t batch_pos[] = {0, 3, 17, 18, 500, 1999, 7, 1234, 5000};
static const idx_t batch_ext[] = {100000, 100003, 100017, 101999, 100777,
                                  42, 101000};

Test(index, remove_range_flat) {
    check_remove(&K_FLAT, (OracleSel){100, 700, 0, NULL});
}
Test(index, remove_batch_flat) {
    check_remove(&K_FLAT, (OracleSel){0, 0, 9, batch_pos});
}
Test(index, remove_range_ivf) {
    check_remove(&K_IVF, (OracleSel){100, 700, 0, NULL});
}
Test(index, remove_batch_ivf) {
    check_remove(&K_IVF, (OracleSel){0, 0, 9, batch_pos});
}
Test(index, remove_range_sq8) {
    check_remove(&K_SQ8, (OracleSel){1500, 2000, 0, NULL});
}
Test(index, remove_range_idmap) {
    check_remove(&K_IDMAP, (OracleSel){100500, 101200, 0, NULL});
}
Test(index, remove_batch_idmap) {
    check_remove(&K_IDMAP, (OracleSel){0, 0, 7, batch_ext});
}

Test(index, remove_everything_then_add) {
    Data D = data();
    FaissIndex* ix = build(&K_FLAT, &D);
    FaissIDSelector* sel = make_sel((OracleSel){0, D.nb, 0, NULL});
    size_t removed = 0;
    FXT_OK(faiss_Index_remove_ids(ix, sel, &removed));
    cr_assert_eq(removed, (size_t)D.nb);
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    FXT_OK(faiss_Index_add(ix, 10, D.xb));
    cr_assert_eq(faiss_Index_ntotal(ix), 10);
    faiss_IDSelector_free(sel);
    faiss_Index_free(ix);
    data_free(&D);
}

/* ---- reconstruct ------------------------------------------------------ */

Test(index, reconstruct_flat_is_exact) {
    Data D = data();
    FaissIndex* ix = build(&K_FLAT, &D);
    float* r = malloc((size_t)(D.nb * D.d) * sizeof(float));
    FXT_OK(faiss_Index_reconstruct_n(ix, 0, D.nb, r));
    FXT_SAME(r, D.xb, (size_t)(D.nb * D.d) * sizeof(float));
    FXT_OK(faiss_Index_reconstruct_n(ix, 1990, 10, r));
    FXT_SAME(r, D.xb + 1990 * D.d, (size_t)(10 * D.d) * sizeof(float));
    FXT_OK(faiss_Index_reconstruct_n(ix, D.nb, 0, r));
    for (idx_t key = 0; key < D.nb; key += 333) {
        FXT_OK(faiss_Index_reconstruct(ix, key, r));
        FXT_SAME(r, D.xb + key * D.d, (size_t)D.d * sizeof(float));
    }
    free(r);
    faiss_Index_free(ix);
    data_free(&D);
}

static void check_reconstruct_n(const Kind* k) {
    Data D = data();
    FaissIndex* ix = build(k, &D);
    size_t sz = (size_t)(D.nb * D.d);
    float *r = malloc(sz * sizeof(float)), *o = malloc(sz * sizeof(float));
    FXT_OK(faiss_Index_reconstruct_n(ix, 0, D.nb, r));
    ORC(oracle_factory_reconstruct(k->factory, D.d, k->metric, D.nb, D.xb,
                                   D.nb, D.xb, o));
    FXT_SAME(r, o, sz * sizeof(float));
    /* lossy but close */
    double err = 0;
    for (size_t i = 0; i < sz; i++) err += fabs(r[i] - D.xb[i]);
    cr_assert_lt(err / (double)sz, 0.01);
    /* a sub-range is the matching slice */
    FXT_OK(faiss_Index_reconstruct_n(ix, 100, 50, r));
    FXT_SAME(r, o + 100 * D.d, (size_t)(50 * D.d) * sizeof(float));
    free(r), free(o);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, reconstruct_n_sq8) { check_reconstruct_n(&K_SQ8); }
Test(index, reconstruct_n_ivf) { check_reconstruct_n(&K_IVF); }

Test(index, reconstruct_single_sq8) {
    Data D = data();
    FaissIndex* ix = build(&K_SQ8, &D);
    float* all = malloc((size_t)(D.nb * D.d) * sizeof(float));
    float* one = malloc((size_t)D.d * sizeof(float));
    ORC(oracle_factory_reconstruct("SQ8", D.d, METRIC_L2, D.nb, D.xb, D.nb,
                                   D.xb, all));
    for (idx_t key = 0; key < D.nb; key += 199) {
        FXT_OK(faiss_Index_reconstruct(ix, key, one));
        FXT_SAME(one, all + key * D.d, (size_t)D.d * sizeof(float));
    }
    free(all), free(one);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, reconstruct_ivf_needs_direct_map) {
    Data D = data();
    FaissIndex* ix = build(&K_IVF, &D);
    float* all = malloc((size_t)(D.nb * D.d) * sizeof(float));
    float* one = malloc((size_t)D.d * sizeof(float));
    FXT_ERR(faiss_Index_reconstruct(ix, 5, one), "direct map");
    FXT_OK(faiss_IndexIVF_make_direct_map(ix, 1));
    FXT_OK(faiss_Index_reconstruct_n(ix, 0, D.nb, all));
    for (idx_t key = 0; key < D.nb; key += 97) {
        FXT_OK(faiss_Index_reconstruct(ix, key, one));
        FXT_SAME(one, all + key * D.d, (size_t)D.d * sizeof(float));
        FXT_SAME(one, D.xb + key * D.d, (size_t)D.d * sizeof(float));
    }
    FXT_ERR(faiss_Index_reconstruct(ix, D.nb, one), "");
    FXT_ERR(faiss_Index_reconstruct(ix, -1, one), "");
    free(all), free(one);
    faiss_Index_free(ix);
    data_free(&D);
}

/* ---- residuals -------------------------------------------------------- */

static void check_residual(const Kind* k) {
    Data D = data();
    FaissIndex* ix = build(k, &D);
    const idx_t n = D.nq;
    idx_t* keys = malloc((size_t)n * sizeof(idx_t));
    for (idx_t i = 0; i < n; i++) keys[i] = (i * 131) % D.nb;
    size_t sz = (size_t)(n * D.d);
    float *r = malloc(sz * sizeof(float)), *o = malloc(sz * sizeof(float));
    FXT_OK(faiss_Index_compute_residual_n(ix, n, D.xq, r, keys));
    ORC(oracle_residual_n(k->factory, D.d, k->metric, D.nb, D.xb, D.nb, D.xb,
                          n, D.xq, keys, o));
    FXT_SAME(r, o, sz * sizeof(float));
    for (idx_t i = 0; i < n; i++) {
        float* one = malloc((size_t)D.d * sizeof(float));
        FXT_OK(faiss_Index_compute_residual(ix, D.xq + i * D.d, one, keys[i]));
        FXT_SAME(one, o + i * D.d, (size_t)D.d * sizeof(float));
        free(one);
    }
    if (strcmp(k->factory, "Flat") == 0) /* residual = x - xb[key] */
        for (idx_t i = 0; i < n; i++)
            for (int j = 0; j < D.d; j++)
                cr_assert_eq(r[i * D.d + j],
                             D.xq[i * D.d + j] - D.xb[keys[i] * D.d + j]);
    free(keys), free(r), free(o);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, compute_residual_flat) { check_residual(&K_FLAT); }
Test(index, compute_residual_sq8) { check_residual(&K_SQ8); }

/* ---- standalone codec ------------------------------------------------- */

static void check_codec(const Kind* k) {
    Data D = data();
    FaissIndex* ix = make(k, D.d);
    FXT_OK(faiss_Index_train(ix, D.nb, D.xb));
    size_t cs = 0, ocs = 0;
    FXT_OK(faiss_Index_sa_code_size(ix, &cs));
    ORC(oracle_factory_sa_encode(k->factory, D.d, k->metric, D.nb, D.xb, 0,
                                 NULL, NULL, &ocs));
    cr_assert_eq(cs, ocs);
    cr_assert_gt(cs, 0);
    size_t nc = (size_t)D.nq * cs;
    uint8_t *c = malloc(nc), *oc = malloc(nc);
    FXT_OK(faiss_Index_sa_encode(ix, D.nq, D.xq, c));
    ORC(oracle_factory_sa_encode(k->factory, D.d, k->metric, D.nb, D.xb,
                                 D.nq, D.xq, oc, &ocs));
    FXT_SAME(c, oc, nc);
    size_t sz = (size_t)(D.nq * D.d);
    float *x = malloc(sz * sizeof(float)), *ox = malloc(sz * sizeof(float));
    FXT_OK(faiss_Index_sa_decode(ix, D.nq, c, x));
    ORC(oracle_sa_decode(k->factory, D.d, k->metric, D.nb, D.xb, D.nq, oc,
                         ox));
    FXT_SAME(x, ox, sz * sizeof(float));
    double err = 0;
    for (size_t i = 0; i < sz; i++) err += fabs(x[i] - D.xq[i]);
    cr_assert_lt(err / (double)sz, 0.02, "decode(encode(x)) is far from x");
    /* the codec does not touch the index contents */
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    free(c), free(oc), free(x), free(ox);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, sa_codec_sq8) { check_codec(&K_SQ8); }
Test(index, sa_codec_flat) { check_codec(&K_FLAT); }
Test(index, sa_codec_ivf) { check_codec(&K_IVF); }

Test(index, sa_decode_rejects_bad_ivf_list_number) {
    Data D = data();
    FaissIndex* ix = make(&K_IVF, D.d);
    FXT_OK(faiss_Index_train(ix, D.nb, D.xb));
    size_t cs = 0;
    FXT_OK(faiss_Index_sa_code_size(ix, &cs));
    uint8_t* c = malloc(cs);
    FXT_OK(faiss_Index_sa_encode(ix, 1, D.xq, c));
    c[0] = 0xff; /* list 255+ of 16 (the list number comes first) */
    float* x = malloc((size_t)D.d * sizeof(float));
    FXT_ERR(faiss_Index_sa_decode(ix, 1, c, x), "list");
    free(c), free(x);
    faiss_Index_free(ix);
    data_free(&D);
}

/* ---- search with parameters ------------------------------------------ */

static void check_search_sel(const Kind* k, OracleSel s, size_t nprobe) {
    Data D = data();
    FaissIndex* ix = build(k, &D);
    FaissIDSelector* sel = make_sel(s);
    FaissSearchParameters* sp = NULL;
    if (strncmp(k->factory, "IVF", 3) == 0) {
        FaissSearchParametersIVF* spi = NULL;
        FXT_OK(faiss_SearchParametersIVF_new_with(&spi, sel, nprobe, 0));
        sp = (FaissSearchParameters*)spi;
    } else {
        FXT_OK(faiss_SearchParameters_new(&sp, sel));
    }
    size_t n = (size_t)(D.nq * D.k);
    float *Dc = malloc(n * sizeof(float)), *Do = malloc(n * sizeof(float));
    idx_t *Ic = malloc(n * sizeof(idx_t)), *Io = malloc(n * sizeof(idx_t));
    FXT_OK(faiss_Index_search_with_params(ix, D.nq, D.xq, D.k, sp, Dc, Ic));
    ORC(oracle_search_sel(k->factory, D.d, k->metric, D.nb, D.xb, D.nb, D.xb,
                          ids_of(k, &D), s, nprobe, D.nq, D.xq, D.k, Do, Io));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    FXT_SAME(Dc, Do, n * sizeof(float));
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        if (Ic[i] < 0) continue;
        found++;
        cr_assert(faiss_IDSelector_is_member(sel, Ic[i]),
                  "label %lld is not selected", (long long)Ic[i]);
    }
    cr_assert_gt(found, 0);
    /* the index itself is unchanged: a plain search is unfiltered */
    FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, Dc, Ic));
    FXT_OK(faiss_Index_search_with_params(ix, D.nq, D.xq, D.k, NULL, Do, Io));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    FXT_SAME(Dc, Do, n * sizeof(float));
    faiss_SearchParameters_free(sp);
    faiss_IDSelector_free(sel);
    free(Dc), free(Do), free(Ic), free(Io);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, search_with_params_range_flat) {
    check_search_sel(&K_FLAT, (OracleSel){200, 900, 0, NULL}, 0);
}
Test(index, search_with_params_batch_flat_ip) {
    check_search_sel(&K_FLATIP, (OracleSel){0, 0, 9, batch_pos}, 0);
}
Test(index, search_with_params_range_ivf) {
    check_search_sel(&K_IVF, (OracleSel){200, 900, 0, NULL}, 4);
}
Test(index, search_with_params_batch_ivf) {
    check_search_sel(&K_IVF, (OracleSel){0, 0, 9, batch_pos}, 16);
}

/* faissx.h promises selectors on IDMap (faiss 1.7.3 refuses any search
 * parameters there): the selector sees external ids. */
static void check_idmap_sel(const char* sub, int metric, OracleSel s,
                            size_t nprobe) {
    Data D = data();
    FaissIndex *inner = NULL, *ix = NULL;
    if (strcmp(sub, "Flat") == 0) {
        FXT_OK(faiss_IndexFlat_new_with(&inner, D.d, metric));
    } else {
        inner = make(&K_IVF, D.d);
    }
    FXT_OK(faiss_IndexIDMap2_new(&ix, inner));
    faiss_IndexIDMap2_set_own_fields(ix, 1);
    FXT_OK(faiss_Index_train(ix, D.nb, D.xb));
    FXT_OK(faiss_Index_add_with_ids(ix, D.nb, D.xb, D.ids));
    FaissIDSelector* sel = make_sel(s);
    FaissSearchParameters* sp = NULL;
    if (nprobe) {
        FaissSearchParametersIVF* spi = NULL;
        FXT_OK(faiss_SearchParametersIVF_new_with(&spi, sel, nprobe, 0));
        sp = (FaissSearchParameters*)spi;
    } else {
        FXT_OK(faiss_SearchParameters_new(&sp, sel));
    }
    size_t n = (size_t)(D.nq * D.k);
    float *Dc = malloc(n * sizeof(float)), *Do = malloc(n * sizeof(float));
    idx_t *Ic = malloc(n * sizeof(idx_t)), *Io = malloc(n * sizeof(idx_t));
    FXT_OK(faiss_Index_search_with_params(ix, D.nq, D.xq, D.k, sp, Dc, Ic));
    ORC(oracle_idmap_search_sel(sub, D.d, metric, D.nb, D.xb, D.nb, D.xb,
                                D.ids, s, nprobe, D.nq, D.xq, D.k, Do, Io));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    FXT_SAME(Dc, Do, n * sizeof(float));
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        if (Ic[i] < 0) continue;
        found++;
        cr_assert(faiss_IDSelector_is_member(sel, Ic[i]),
                  "label %lld is not selected", (long long)Ic[i]);
    }
    cr_assert_gt(found, 0);
    /* parameters without a selector: the plain answer */
    FaissSearchParameters* none = NULL;
    FXT_OK(faiss_SearchParameters_new(&none, NULL));
    if (!nprobe) {
        FXT_OK(faiss_Index_search_with_params(ix, D.nq, D.xq, D.k, none, Dc,
                                              Ic));
        FXT_OK(faiss_Index_search(ix, D.nq, D.xq, D.k, Do, Io));
        FXT_SAME(Ic, Io, n * sizeof(idx_t));
        FXT_SAME(Dc, Do, n * sizeof(float));
    }
    faiss_SearchParameters_free(none);
    faiss_SearchParameters_free(sp);
    faiss_IDSelector_free(sel);
    free(Dc), free(Do), free(Ic), free(Io);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, search_with_params_idmap_flat_range) {
    check_idmap_sel("Flat", METRIC_L2, (OracleSel){100300, 101100, 0, NULL},
                    0);
}
Test(index, search_with_params_idmap_flat_ip_batch) {
    check_idmap_sel("Flat", METRIC_INNER_PRODUCT,
                    (OracleSel){0, 0, 7, batch_ext}, 0);
}
Test(index, search_with_params_idmap_ivf) {
    check_idmap_sel("IVF16,Flat", METRIC_L2,
                    (OracleSel){100000, 100900, 0, NULL}, 4);
}

Test(index, search_with_params_ivf_needs_ivf_params) {
    Data D = data();
    FaissIndex* ix = build(&K_IVF, &D);
    FaissSearchParameters* sp = NULL;
    FXT_OK(faiss_SearchParameters_new(&sp, NULL));
    float Dc[10];
    idx_t Ic[10];
    FXT_ERR(faiss_Index_search_with_params(ix, 1, D.xq, 10, sp, Dc, Ic),
            "incorrect type");
    faiss_SearchParameters_free(sp);
    faiss_Index_free(ix);
    data_free(&D);
}

Test(index, search_with_params_nprobe_overrides) {
    Data D = data();
    FaissIndex* ix = build(&K_IVF, &D);
    FaissSearchParametersIVF* sp = NULL;
    FXT_OK(faiss_SearchParametersIVF_new_with(&sp, NULL, 16, 0));
    size_t n = (size_t)(D.nq * D.k);
    float *Dc = malloc(n * sizeof(float)), *Do = malloc(n * sizeof(float));
    idx_t *Ic = malloc(n * sizeof(idx_t)), *Io = malloc(n * sizeof(idx_t));
    FXT_OK(faiss_Index_search_with_params(ix, D.nq, D.xq, D.k,
                                          (FaissSearchParameters*)sp, Dc, Ic));
    ORC(oracle_factory_search("IVF16,Flat", D.d, METRIC_L2, D.nb, D.xb, D.nb,
                              D.xb, NULL, "nprobe=16", D.nq, D.xq, D.k, Do,
                              Io));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    FXT_SAME(Dc, Do, n * sizeof(float));
    /* nprobe = nlist is exhaustive: same as Flat */
    ORC(oracle_factory_search("Flat", D.d, METRIC_L2, 0, NULL, D.nb, D.xb,
                              NULL, NULL, D.nq, D.xq, D.k, Do, Io));
    FXT_SAME(Ic, Io, n * sizeof(idx_t));
    /* the index's own nprobe is untouched */
    cr_assert_eq(faiss_IndexIVF_nprobe(ix), 1);
    faiss_SearchParametersIVF_free(sp);
    free(Dc), free(Do), free(Ic), free(Io);
    faiss_Index_free(ix);
    data_free(&D);
}
