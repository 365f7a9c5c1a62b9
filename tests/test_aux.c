/* test_aux.c -- impl/AuxIndexStructures_c.h (range search results,
 * ID selectors, buffer lists, partial range results, distance computers)
 * and the faissx.h selector combinators, against faiss C++. */
#include "common.h"
#include "oracle.h"
#include "oracle_aux.h"

#include <math.h>
#include <stdlib.h>

#define ORC(call)                                                          \
    cr_assert_eq((call), 0, "oracle %s failed: %s%s", #call,               \
                 oracle_aux_error(), oracle_last_error())

/* The last error names `func` (messages are "func: text"). */
#define ERR_FROM(func)                                                     \
    cr_assert(faiss_get_last_error() &&                                    \
                      strstr(faiss_get_last_error(), func ":") != NULL,    \
              "last error '%s' is not from " func,                         \
              faiss_get_last_error() ? faiss_get_last_error() : "(none)")

/* ======================================================================
 * RangeSearchResult
 * ====================================================================== */

Test(aux, range_result_new_defaults) {
    FaissRangeSearchResult* r = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&r, 4));
    cr_assert_not_null(r);
    cr_assert_eq(faiss_RangeSearchResult_nq(r), 4);
    cr_assert_eq(faiss_RangeSearchResult_buffer_size(r),
                 oracle_rsr_buffer_size(4));
    size_t* lims = NULL;
    faiss_RangeSearchResult_lims(r, &lims);
    cr_assert_not_null(lims);
    for (int i = 0; i <= 4; i++) cr_assert_eq(lims[i], 0);
    idx_t* labels = (idx_t*)1;
    float* dis = (float*)1;
    faiss_RangeSearchResult_labels(r, &labels, &dis);
    cr_assert_null(labels);
    cr_assert_null(dis);
    faiss_RangeSearchResult_free(r);

    FXT_OK(faiss_RangeSearchResult_new_with(&r, 3, 1));
    faiss_RangeSearchResult_lims(r, &lims);
    cr_assert_not_null(lims);
    faiss_RangeSearchResult_free(r);

    FXT_OK(faiss_RangeSearchResult_new_with(&r, 3, 0));
    cr_assert_eq(faiss_RangeSearchResult_nq(r), 3);
    lims = (size_t*)1;
    faiss_RangeSearchResult_lims(r, &lims);
    cr_assert_null(lims, "alloc_lims = 0 leaves lims unallocated");
    FXT_ERR(faiss_RangeSearchResult_do_allocation(r), "lims");
    faiss_RangeSearchResult_free(r);

    FXT_OK(faiss_RangeSearchResult_new(&r, 0));
    cr_assert_eq(faiss_RangeSearchResult_nq(r), 0);
    faiss_RangeSearchResult_free(r);
    faiss_RangeSearchResult_free(NULL);
}

Test(aux, range_result_errors) {
    FaissRangeSearchResult* r = NULL;
    FXT_ERR(faiss_RangeSearchResult_new(NULL, 3), "NULL");
    FXT_ERR(faiss_RangeSearchResult_new(&r, -1), "nq");
    FXT_ERR(faiss_RangeSearchResult_new_with(&r, -2, 0), "nq");
    cr_assert_null(r);
    FXT_ERR(faiss_RangeSearchResult_do_allocation(NULL), "NULL");
    cr_assert_eq(faiss_RangeSearchResult_nq(NULL), 0);
    ERR_FROM("faiss_RangeSearchResult_nq");
    cr_assert_eq(faiss_RangeSearchResult_buffer_size(NULL), 0);
    ERR_FROM("faiss_RangeSearchResult_buffer_size");
    size_t* lims = (size_t*)1;
    faiss_RangeSearchResult_lims(NULL, &lims);
    cr_assert_null(lims);
    ERR_FROM("faiss_RangeSearchResult_lims");
    idx_t* labels = (idx_t*)1;
    float* dis = (float*)1;
    faiss_RangeSearchResult_labels(NULL, &labels, &dis);
    cr_assert_null(labels);
    cr_assert_null(dis);
    ERR_FROM("faiss_RangeSearchResult_labels");
}

/* Filling lims by hand and allocating, as a custom range search would. */
Test(aux, range_result_manual_allocation) {
    FaissRangeSearchResult* r = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&r, 3));
    size_t* lims = NULL;
    faiss_RangeSearchResult_lims(r, &lims);
    lims[0] = 2;
    lims[1] = 0;
    lims[2] = 3;
    FXT_OK(faiss_RangeSearchResult_do_allocation(r));
    faiss_RangeSearchResult_lims(r, &lims);
    const size_t want[] = {0, 2, 2, 5};
    FXT_SAME(lims, want, sizeof want);
    idx_t* labels = NULL;
    float* dis = NULL;
    faiss_RangeSearchResult_labels(r, &labels, &dis);
    cr_assert_not_null(labels);
    cr_assert_not_null(dis);
    for (int i = 0; i < 5; i++) { /* writable, 5 entries (ASan checks) */
        labels[i] = i;
        dis[i] = (float)i;
    }
    FXT_ERR(faiss_RangeSearchResult_do_allocation(r), "already");
    faiss_RangeSearchResult_free(r);
}

Test(aux, range_result_after_range_search_matches_cpp) {
    const int d = 8;
    const idx_t nb = 500, nq = 10;
    const float radius = 0.35f;
    float* xb = fxt_uniform(nb, d, 1);
    float* xq = fxt_uniform(nq, d, 2);
    FaissIndexFlatL2* ix = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&ix, d));
    FXT_OK(faiss_Index_add(ix, nb, xb));
    FaissRangeSearchResult* r = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&r, nq));
    FXT_OK(faiss_Index_range_search(ix, nq, xq, radius, r));
    cr_assert_eq(faiss_RangeSearchResult_nq(r), (size_t)nq);

    size_t *rl = NULL, *lims = NULL;
    idx_t *rlab = NULL, *labels = NULL;
    float *rdis = NULL, *dis = NULL;
    ORC(oracle_factory_range("Flat", d, METRIC_L2, 0, NULL, nb, xb, NULL, nq,
                             xq, radius, &rl, &rlab, &rdis));
    faiss_RangeSearchResult_lims(r, &lims);
    faiss_RangeSearchResult_labels(r, &labels, &dis);
    FXT_SAME(lims, rl, (nq + 1) * sizeof(size_t));
    cr_assert_gt(rl[nq], 0, "radius too small: no results");
    cr_assert_lt(rl[nq], (size_t)(nb * nq), "radius too large");
    FXT_SAME(labels, rlab, rl[nq] * sizeof(idx_t));
    FXT_SAME(dis, rdis, rl[nq] * sizeof(float));
    for (size_t i = 0; i < rl[nq]; i++) cr_assert_lt(dis[i], radius);
    free(rl);
    free(rlab);
    free(rdis);
    faiss_RangeSearchResult_free(r);
    faiss_IndexFlatL2_free(ix);
    free(xb);
    free(xq);
}

/* ======================================================================
 * ID selectors
 * ====================================================================== */

#define LO (-8)
#define HI 72
#define SPAN (HI - LO)

static void truth(const FaissIDSelector* s, uint8_t* out) {
    for (idx_t i = LO; i < HI; i++)
        out[i - LO] = faiss_IDSelector_is_member(s, i) ? 1 : 0;
}

static void same_truth(const FaissIDSelector* s, const uint8_t* want,
                       const char* what) {
    uint8_t got[SPAN];
    truth(s, got);
    for (int i = 0; i < SPAN; i++)
        cr_assert_eq(got[i], want[i], "%s: id %d is %s", what, i + LO,
                     got[i] ? "selected" : "not selected");
}

static const idx_t BATCH[] = {3, 5, 64, 7, 3, 1000, 41, 0, 33, -5};
#define NBATCH (sizeof BATCH / sizeof *BATCH)
static const uint8_t BITMAP[] = {0xa5, 0x0f, 0x00, 0xf0, 0x81, 0x3c};

Test(aux, selector_range_matches_cpp) {
    FaissIDSelectorRange* s = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&s, 10, 25));
    cr_assert_eq(faiss_IDSelectorRange_imin(s), 10);
    cr_assert_eq(faiss_IDSelectorRange_imax(s), 25);
    uint8_t want[SPAN];
    ORC(oracle_range_members(10, 25, LO, HI, want));
    same_truth((const FaissIDSelector*)s, want, "range");
    faiss_IDSelectorRange_free(s);

    /* empty and negative ranges */
    FXT_OK(faiss_IDSelectorRange_new(&s, 7, 7));
    ORC(oracle_range_members(7, 7, LO, HI, want));
    same_truth((const FaissIDSelector*)s, want, "empty range");
    faiss_IDSelector_free((FaissIDSelector*)s);
    FXT_OK(faiss_IDSelectorRange_new(&s, -5, 2));
    ORC(oracle_range_members(-5, 2, LO, HI, want));
    same_truth((const FaissIDSelector*)s, want, "negative range");
    faiss_IDSelectorRange_free(s);

    FXT_ERR(faiss_IDSelectorRange_new(&s, 9, 3), "imin");
    FXT_ERR(faiss_IDSelectorRange_new(NULL, 1, 3), "NULL");
    faiss_IDSelectorRange_free(NULL);
    faiss_IDSelector_free(NULL);
}

Test(aux, selector_batch_matches_cpp) {
    FaissIDSelectorBatch* s = NULL;
    FXT_OK(faiss_IDSelectorBatch_new(&s, NBATCH, BATCH));
    uint8_t want[SPAN];
    int nbits = -1;
    idx_t mask = -1;
    ORC(oracle_batch_members(NBATCH, BATCH, LO, HI, want, &nbits, &mask));
    cr_assert_eq(faiss_IDSelectorBatch_nbits(s), nbits);
    cr_assert_eq(faiss_IDSelectorBatch_mask(s), mask);
    same_truth((const FaissIDSelector*)s, want, "batch");
    cr_assert(faiss_IDSelector_is_member((const FaissIDSelector*)s, 1000));
    cr_assert(!faiss_IDSelector_is_member((const FaissIDSelector*)s, 1001));
    faiss_IDSelector_free((FaissIDSelector*)s);

    /* the empty batch */
    FXT_OK(faiss_IDSelectorBatch_new(&s, 0, NULL));
    ORC(oracle_batch_members(0, NULL, LO, HI, want, &nbits, &mask));
    cr_assert_eq(faiss_IDSelectorBatch_nbits(s), nbits);
    same_truth((const FaissIDSelector*)s, want, "empty batch");
    faiss_IDSelector_free((FaissIDSelector*)s);

    FXT_ERR(faiss_IDSelectorBatch_new(&s, 3, NULL), "indices");
    FXT_ERR(faiss_IDSelectorBatch_new(NULL, 3, BATCH), "NULL");
}

Test(aux, selector_typed_getters_check_the_type) {
    FaissIDSelectorRange* r = NULL;
    FaissIDSelectorBatch* b = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&r, 1, 5));
    FXT_OK(faiss_IDSelectorBatch_new(&b, NBATCH, BATCH));
    cr_assert_eq(faiss_IDSelectorRange_imin((FaissIDSelectorRange*)b), 0);
    ERR_FROM("faiss_IDSelectorRange_imin");
    cr_assert(strstr(faiss_get_last_error(), "IDSelectorRange"));
    cr_assert_eq(faiss_IDSelectorRange_imax((FaissIDSelectorRange*)b), 0);
    ERR_FROM("faiss_IDSelectorRange_imax");
    cr_assert_eq(faiss_IDSelectorBatch_nbits((FaissIDSelectorBatch*)r), 0);
    ERR_FROM("faiss_IDSelectorBatch_nbits");
    cr_assert(strstr(faiss_get_last_error(), "IDSelectorBatch"));
    cr_assert_eq(faiss_IDSelectorBatch_mask((FaissIDSelectorBatch*)r), 0);
    ERR_FROM("faiss_IDSelectorBatch_mask");
    cr_assert_eq(faiss_IDSelectorRange_imin(NULL), 0);
    ERR_FROM("faiss_IDSelectorRange_imin");
    cr_assert_eq(faiss_IDSelectorBatch_nbits(NULL), 0);
    ERR_FROM("faiss_IDSelectorBatch_nbits");
    cr_assert_eq(faiss_IDSelector_is_member(NULL, 3), 0);
    ERR_FROM("faiss_IDSelector_is_member");
    faiss_IDSelectorRange_free(r);
    faiss_IDSelector_free((FaissIDSelector*)b);
}

Test(aux, selector_bitmap_matches_cpp) {
    FaissIDSelectorBitmap* s = NULL;
    FXT_OK(faiss_IDSelectorBitmap_new(&s, sizeof BITMAP, BITMAP));
    uint8_t want[SPAN];
    ORC(oracle_bitmap_members(sizeof BITMAP, BITMAP, LO, HI, want));
    same_truth((const FaissIDSelector*)s, want, "bitmap");
    /* the documented rule: bit i%8 of byte i/8, for i < 8n */
    for (idx_t i = LO; i < HI; i++) {
        int rule = i >= 0 && i < 8 * (idx_t)sizeof BITMAP &&
                   ((BITMAP[i / 8] >> (i % 8)) & 1);
        cr_assert_eq(want[i - LO], rule, "faiss bitmap rule at %ld",
                     (long)i);
    }
    faiss_IDSelector_free((FaissIDSelector*)s);
    /* fewer bytes: the tail is out of the set */
    FXT_OK(faiss_IDSelectorBitmap_new(&s, 2, BITMAP));
    ORC(oracle_bitmap_members(2, BITMAP, LO, HI, want));
    same_truth((const FaissIDSelector*)s, want, "bitmap(2)");
    faiss_IDSelector_free((FaissIDSelector*)s);
    FXT_OK(faiss_IDSelectorBitmap_new(&s, 0, NULL));
    ORC(oracle_bitmap_members(0, NULL, LO, HI, want));
    same_truth((const FaissIDSelector*)s, want, "bitmap(0)");
    faiss_IDSelector_free((FaissIDSelector*)s);
    FXT_ERR(faiss_IDSelectorBitmap_new(&s, 4, NULL), "bitmap");
    FXT_ERR(faiss_IDSelectorBitmap_new(NULL, 4, BITMAP), "NULL");
}

Test(aux, selector_not_matches_cpp) {
    FaissIDSelectorRange* r = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&r, 4, 40));
    FaissIDSelectorNot* n = NULL;
    FXT_OK(faiss_IDSelectorNot_new(&n, (const FaissIDSelector*)r));
    uint8_t want[SPAN];
    ORC(oracle_not_range_members(4, 40, LO, HI, want));
    same_truth((const FaissIDSelector*)n, want, "not(range)");
    FXT_ERR(faiss_IDSelectorNot_new(&n, NULL), "NULL");
    FXT_ERR(faiss_IDSelectorNot_new(NULL, (const FaissIDSelector*)r),
            "NULL");
    faiss_IDSelector_free((FaissIDSelector*)n);
    faiss_IDSelectorRange_free(r);
}

/* The operands used by the combinator tests, with faiss C++'s truth. */
typedef struct Operands {
    FaissIDSelectorRange* range;  /* [10, 50) */
    FaissIDSelectorBatch* batch;  /* BATCH */
    FaissIDSelectorBitmap* bitmap; /* BITMAP */
    uint8_t t_range[SPAN], t_batch[SPAN], t_bitmap[SPAN];
} Operands;

static void operands_init(Operands* o) {
    FXT_OK(faiss_IDSelectorRange_new(&o->range, 10, 50));
    FXT_OK(faiss_IDSelectorBatch_new(&o->batch, NBATCH, BATCH));
    FXT_OK(faiss_IDSelectorBitmap_new(&o->bitmap, sizeof BITMAP, BITMAP));
    int nbits;
    idx_t mask;
    ORC(oracle_range_members(10, 50, LO, HI, o->t_range));
    ORC(oracle_batch_members(NBATCH, BATCH, LO, HI, o->t_batch, &nbits,
                             &mask));
    ORC(oracle_bitmap_members(sizeof BITMAP, BITMAP, LO, HI, o->t_bitmap));
}

static void operands_free(Operands* o) {
    faiss_IDSelector_free((FaissIDSelector*)o->range);
    faiss_IDSelector_free((FaissIDSelector*)o->batch);
    faiss_IDSelector_free((FaissIDSelector*)o->bitmap);
}

#define SEL(x) ((const FaissIDSelector*)(x))

Test(aux, selector_combinators_truth_tables) {
    Operands o;
    operands_init(&o);
    FaissIDSelectorAnd* a = NULL;
    FaissIDSelectorOr* r = NULL;
    FaissIDSelectorXOr* x = NULL;
    FXT_OK(faiss_IDSelectorAnd_new(&a, SEL(o.range), SEL(o.bitmap)));
    FXT_OK(faiss_IDSelectorOr_new(&r, SEL(o.range), SEL(o.batch)));
    FXT_OK(faiss_IDSelectorXOr_new(&x, SEL(o.batch), SEL(o.bitmap)));
    uint8_t want[SPAN];
    for (int i = 0; i < SPAN; i++) want[i] = o.t_range[i] && o.t_bitmap[i];
    same_truth(SEL(a), want, "range AND bitmap");
    for (int i = 0; i < SPAN; i++) want[i] = o.t_range[i] || o.t_batch[i];
    same_truth(SEL(r), want, "range OR batch");
    for (int i = 0; i < SPAN; i++) want[i] = o.t_batch[i] != o.t_bitmap[i];
    same_truth(SEL(x), want, "batch XOR bitmap");

    /* composition: NOT(range AND bitmap) OR (batch XOR bitmap) */
    FaissIDSelectorNot* na = NULL;
    FaissIDSelectorOr* all = NULL;
    FXT_OK(faiss_IDSelectorNot_new(&na, SEL(a)));
    FXT_OK(faiss_IDSelectorOr_new(&all, SEL(na), SEL(x)));
    for (int i = 0; i < SPAN; i++)
        want[i] = !(o.t_range[i] && o.t_bitmap[i]) ||
                  (o.t_batch[i] != o.t_bitmap[i]);
    same_truth(SEL(all), want, "nested");
    /* x XOR x is empty, x AND x is x */
    FaissIDSelectorXOr* xx = NULL;
    FaissIDSelectorAnd* aa = NULL;
    FXT_OK(faiss_IDSelectorXOr_new(&xx, SEL(o.batch), SEL(o.batch)));
    FXT_OK(faiss_IDSelectorAnd_new(&aa, SEL(o.batch), SEL(o.batch)));
    memset(want, 0, sizeof want);
    same_truth(SEL(xx), want, "batch XOR batch");
    same_truth(SEL(aa), o.t_batch, "batch AND batch");

    FXT_ERR(faiss_IDSelectorAnd_new(&a, NULL, SEL(o.range)), "NULL");
    FXT_ERR(faiss_IDSelectorAnd_new(&a, SEL(o.range), NULL), "NULL");
    FXT_ERR(faiss_IDSelectorOr_new(&r, NULL, SEL(o.range)), "NULL");
    FXT_ERR(faiss_IDSelectorOr_new(NULL, SEL(o.range), SEL(o.range)),
            "NULL");
    FXT_ERR(faiss_IDSelectorXOr_new(&x, SEL(o.range), NULL), "NULL");

    faiss_IDSelector_free((FaissIDSelector*)aa);
    faiss_IDSelector_free((FaissIDSelector*)xx);
    faiss_IDSelector_free((FaissIDSelector*)all);
    faiss_IDSelector_free((FaissIDSelector*)na);
    faiss_IDSelector_free((FaissIDSelector*)x);
    faiss_IDSelector_free((FaissIDSelector*)r);
    faiss_IDSelector_free((FaissIDSelector*)a);
    operands_free(&o);
}

/* Every selector kind, with its membership over [0, nb) (nb <= HI). */
enum { NKIND = 8 };
static const char* const KIND_NAME[NKIND] = {
        "range", "batch", "bitmap", "not(range)",
        "range and bitmap", "range or batch", "batch xor bitmap",
        "not(range or batch)"};

static FaissIDSelector* make_kind(int kind, const Operands* o,
                                  FaissIDSelector** extra,
                                  uint8_t* member /* nb entries */,
                                  idx_t nb) {
    FaissIDSelector* s = NULL;
    *extra = NULL;
    for (idx_t i = 0; i < nb; i++) {
        int t_r = o->t_range[i - LO], t_b = o->t_batch[i - LO],
            t_m = o->t_bitmap[i - LO];
        switch (kind) {
        case 0: member[i] = t_r; break;
        case 1: member[i] = t_b; break;
        case 2: member[i] = t_m; break;
        case 3: member[i] = !t_r; break;
        case 4: member[i] = t_r && t_m; break;
        case 5: member[i] = t_r || t_b; break;
        case 6: member[i] = t_b != t_m; break;
        case 7: member[i] = !(t_r || t_b); break;
        }
    }
    switch (kind) {
    case 0:
        FXT_OK(faiss_IDSelectorRange_new((FaissIDSelectorRange**)&s, 10, 50));
        break;
    case 1:
        FXT_OK(faiss_IDSelectorBatch_new((FaissIDSelectorBatch**)&s, NBATCH,
                                         BATCH));
        break;
    case 2:
        FXT_OK(faiss_IDSelectorBitmap_new((FaissIDSelectorBitmap**)&s,
                                          sizeof BITMAP, BITMAP));
        break;
    case 3:
        FXT_OK(faiss_IDSelectorNot_new((FaissIDSelectorNot**)&s,
                                       SEL(o->range)));
        break;
    case 4:
        FXT_OK(faiss_IDSelectorAnd_new((FaissIDSelectorAnd**)&s,
                                       SEL(o->range), SEL(o->bitmap)));
        break;
    case 5:
        FXT_OK(faiss_IDSelectorOr_new((FaissIDSelectorOr**)&s, SEL(o->range),
                                      SEL(o->batch)));
        break;
    case 6:
        FXT_OK(faiss_IDSelectorXOr_new((FaissIDSelectorXOr**)&s,
                                       SEL(o->batch), SEL(o->bitmap)));
        break;
    case 7:
        FXT_OK(faiss_IDSelectorOr_new((FaissIDSelectorOr**)extra,
                                      SEL(o->range), SEL(o->batch)));
        FXT_OK(faiss_IDSelectorNot_new((FaissIDSelectorNot**)&s,
                                       SEL(*extra)));
        break;
    }
    return s;
}

static void search_with_selectors(int metric) {
    const int d = 8;
    const idx_t nb = HI, nq = 6, k = 12;
    float* xb = fxt_uniform(nb, d, 30);
    float* xq = fxt_uniform(nq, d, 31);
    FaissIndexFlat* ix = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&ix, d, metric));
    FXT_OK(faiss_Index_add(ix, nb, xb));
    Operands o;
    operands_init(&o);
    for (int kind = 0; kind < NKIND; kind++) {
        uint8_t member[HI];
        FaissIDSelector* extra = NULL;
        FaissIDSelector* s = make_kind(kind, &o, &extra, member, nb);
        FaissSearchParameters* sp = NULL;
        FXT_OK(faiss_SearchParameters_new(&sp, s));
        float D[6 * 12], Dr[6 * 12];
        idx_t I[6 * 12], Ir[6 * 12];
        FXT_OK(faiss_Index_search_with_params(ix, nq, xq, k, sp, D, I));
        ORC(oracle_flat_search_sel(d, metric, nb, xb, member, nq, xq, k, Dr,
                                   Ir));
        cr_assert(memcmp(I, Ir, sizeof I) == 0, "%s: labels differ",
                  KIND_NAME[kind]);
        cr_assert(memcmp(D, Dr, sizeof D) == 0, "%s: distances differ",
                  KIND_NAME[kind]);
        for (int i = 0; i < nq * k; i++)
            cr_assert(I[i] == -1 || member[I[i]], "%s: id %ld not selected",
                      KIND_NAME[kind], (long)I[i]);
        faiss_SearchParameters_free(sp);
        faiss_IDSelector_free(s);
        faiss_IDSelector_free(extra);
    }
    operands_free(&o);
    faiss_Index_free(ix);
    free(xb);
    free(xq);
}

Test(aux, selectors_in_search_with_params_l2_match_cpp) {
    search_with_selectors(METRIC_L2);
}

Test(aux, selectors_in_search_with_params_ip_match_cpp) {
    search_with_selectors(METRIC_INNER_PRODUCT);
}

Test(aux, selectors_in_remove_ids_match_cpp) {
    const int d = 4;
    const idx_t nb = HI;
    float* xb = fxt_uniform(nb, d, 40);
    float* rest = malloc(nb * d * sizeof(float));
    Operands o;
    operands_init(&o);
    for (int kind = 0; kind < NKIND; kind++) {
        uint8_t member[HI];
        FaissIDSelector* extra = NULL;
        FaissIDSelector* s = make_kind(kind, &o, &extra, member, nb);
        FaissIndexFlatL2* ix = NULL;
        FXT_OK(faiss_IndexFlatL2_new_with(&ix, d));
        FXT_OK(faiss_Index_add(ix, nb, xb));
        size_t nrem = 12345, rnrem = 0;
        idx_t rtotal = 0;
        FXT_OK(faiss_Index_remove_ids(ix, s, &nrem));
        ORC(oracle_flat_remove_sel(d, nb, xb, member, &rnrem, &rtotal, rest));
        cr_assert_eq(nrem, rnrem, "%s: removed %zu, C++ %zu",
                     KIND_NAME[kind], nrem, rnrem);
        size_t expect = 0;
        for (idx_t i = 0; i < nb; i++) expect += member[i];
        cr_assert_eq(nrem, expect, "%s", KIND_NAME[kind]);
        cr_assert_eq(faiss_Index_ntotal(ix), rtotal);
        float* p = NULL;
        size_t size = 0;
        faiss_IndexFlat_xb(ix, &p, &size);
        cr_assert_eq(size, (size_t)rtotal * d);
        cr_assert(size == 0 || memcmp(p, rest, size * sizeof(float)) == 0,
                  "%s: remaining vectors differ", KIND_NAME[kind]);
        faiss_IndexFlatL2_free(ix);
        faiss_IDSelector_free(s);
        faiss_IDSelector_free(extra);
    }
    operands_free(&o);
    free(rest);
    free(xb);
}

/* ======================================================================
 * BufferList
 * ====================================================================== */

Test(aux, bufferlist_matches_cpp) {
    const size_t bs = 4, n = 10;
    idx_t ids[10];
    float dis[10];
    for (size_t i = 0; i < n; i++) {
        ids[i] = 100 + (idx_t)i * 7;
        dis[i] = 0.25f * (float)i;
    }
    FaissBufferList* b = NULL;
    FXT_OK(faiss_BufferList_new(&b, bs));
    cr_assert_eq(faiss_BufferList_buffer_size(b), bs);
    size_t wp = 0, nbuf = 0;
    ORC(oracle_bufferlist(bs, 0, ids, dis, NULL, &wp, &nbuf, 0, 0, NULL,
                          NULL));
    cr_assert_eq(faiss_BufferList_wp(b), wp, "fresh wp %zu, C++ %zu",
                 faiss_BufferList_wp(b), wp);
    idx_t oi[10];
    float od[10];
    FXT_ERR(faiss_BufferList_copy_range(b, 0, 1, oi, od), "exceeds");

    for (size_t i = 0; i < n; i++) FXT_OK(faiss_BufferList_add(b, ids[i], dis[i]));
    idx_t ri[10];
    float rd[10];
    ORC(oracle_bufferlist(bs, n, ids, dis, NULL, &wp, &nbuf, 3, 5, ri, rd));
    cr_assert_eq(faiss_BufferList_wp(b), wp);
    FXT_OK(faiss_BufferList_copy_range(b, 3, 5, oi, od));
    FXT_SAME(oi, ri, 5 * sizeof(idx_t));
    FXT_SAME(od, rd, 5 * sizeof(float));
    /* all of it, across the three buffers */
    ORC(oracle_bufferlist(bs, n, ids, dis, NULL, &wp, &nbuf, 0, n, ri, rd));
    FXT_OK(faiss_BufferList_copy_range(b, 0, n, oi, od));
    FXT_SAME(oi, ri, sizeof oi);
    FXT_SAME(od, rd, sizeof od);
    FXT_SAME(oi, ids, sizeof oi);
    /* empty copies at the end are fine */
    FXT_OK(faiss_BufferList_copy_range(b, n, 0, NULL, NULL));
    /* past the end */
    FXT_ERR(faiss_BufferList_copy_range(b, 8, 3, oi, od), "exceeds");
    FXT_ERR(faiss_BufferList_copy_range(b, 0, n + 1, oi, od), "exceeds");
    FXT_ERR(faiss_BufferList_copy_range(b, n + 1, 0, oi, od), "exceeds");
    FXT_ERR(faiss_BufferList_copy_range(b, (size_t)-1, 2, oi, od),
            "exceeds");
    FXT_ERR(faiss_BufferList_copy_range(b, 0, 2, NULL, od), "NULL");
    FXT_ERR(faiss_BufferList_copy_range(b, 0, 2, oi, NULL), "NULL");
    faiss_BufferList_free(b);
    faiss_BufferList_free(NULL);
}

Test(aux, bufferlist_append_buffer_matches_cpp) {
    const size_t bs = 4, n = 6;
    idx_t ids[6] = {1, 2, 3, 4, 5, 6};
    float dis[6] = {.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f};
    /* three adds, a new buffer, three more */
    const uint8_t app[6] = {0, 0, 0, 1, 0, 0};
    FaissBufferList* b = NULL;
    FXT_OK(faiss_BufferList_new(&b, bs));
    for (size_t i = 0; i < n; i++) {
        if (app[i]) {
            FXT_OK(faiss_BufferList_append_buffer(b));
            cr_assert_eq(faiss_BufferList_wp(b), 0);
        }
        FXT_OK(faiss_BufferList_add(b, ids[i], dis[i]));
    }
    size_t wp = 0, nbuf = 0;
    idx_t ri[3], oi[3];
    float rd[3], od[3];
    /* the second buffer starts at linear position bs */
    ORC(oracle_bufferlist(bs, n, ids, dis, app, &wp, &nbuf, bs, 3, ri, rd));
    cr_assert_eq(faiss_BufferList_wp(b), wp);
    cr_assert_eq(nbuf, 2);
    FXT_OK(faiss_BufferList_copy_range(b, bs, 3, oi, od));
    FXT_SAME(oi, ri, sizeof oi);
    FXT_SAME(od, rd, sizeof od);
    FXT_SAME(oi, ids + 3, sizeof oi);
    FXT_ERR(faiss_BufferList_copy_range(b, bs, 4, oi, od), "exceeds");
    faiss_BufferList_free(b);
}

Test(aux, bufferlist_errors) {
    FaissBufferList* b = NULL;
    FXT_ERR(faiss_BufferList_new(&b, 0), "buffer_size");
    FXT_ERR(faiss_BufferList_new(NULL, 4), "NULL");
    FXT_ERR(faiss_BufferList_add(NULL, 1, 1.0f), "NULL");
    FXT_ERR(faiss_BufferList_append_buffer(NULL), "NULL");
    FXT_ERR(faiss_BufferList_copy_range(NULL, 0, 0, NULL, NULL), "NULL");
    cr_assert_eq(faiss_BufferList_wp(NULL), 0);
    ERR_FROM("faiss_BufferList_wp");
    cr_assert_eq(faiss_BufferList_buffer_size(NULL), 0);
    ERR_FROM("faiss_BufferList_buffer_size");
}

/* ======================================================================
 * RangeSearchPartialResult / RangeQueryResult
 * ====================================================================== */

/* Query 2 gets 3 results, query 0 none, query 3 four; 1 and 4 are never
 * started. */
#define P_NQ 5
static const idx_t P_QNOS[] = {2, 0, 3};
static const size_t P_COUNTS[] = {3, 0, 4};
static const float P_DIS[] = {0.5f, 0.25f, 1.0f, 3.0f, 2.0f, 2.5f, 0.125f};
static const idx_t P_IDS[] = {17, 4, 99, 8, 1234, 5, 61};
#define P_TOTAL 7
#define P_NQUERIES 3

/* Fills pr as faiss's range searches do, checking the getters. */
static void fill_partial(FaissRangeSearchPartialResult* pr) {
    size_t pos = 0;
    for (size_t j = 0; j < P_NQUERIES; j++) {
        /* a RangeQueryResult handle is only valid until the next
         * new_result (it points into a growing std::vector) */
        FaissRangeQueryResult* qr = NULL;
        FXT_OK(faiss_RangeSearchPartialResult_new_result(pr, P_QNOS[j], &qr));
        cr_assert_not_null(qr);
        cr_assert_eq(faiss_RangeQueryResult_qno(qr), P_QNOS[j]);
        cr_assert_eq(faiss_RangeQueryResult_nres(qr), 0);
        cr_assert_eq(faiss_RangeQueryResult_pres(qr), pr);
        for (size_t i = 0; i < P_COUNTS[j]; i++, pos++) {
            FXT_OK(faiss_RangeQueryResult_add(qr, P_DIS[pos], P_IDS[pos]));
            cr_assert_eq(faiss_RangeQueryResult_nres(qr), i + 1);
        }
    }
    cr_assert_eq(pos, P_TOTAL);
}

Test(aux, partial_result_finalize_matches_cpp) {
    FaissRangeSearchResult* r = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&r, P_NQ));
    FaissRangeSearchPartialResult* pr = NULL;
    FXT_OK(faiss_RangeSearchPartialResult_new(&pr, r));
    cr_assert_not_null(pr);
    cr_assert_eq(faiss_RangeSearchPartialResult_res(pr), r);
    fill_partial(pr);
    FXT_OK(faiss_RangeSearchPartialResult_finalize(pr));

    size_t rl[P_NQ + 1];
    idx_t rlab[P_TOTAL];
    float rdis[P_TOTAL];
    ORC(oracle_partial(P_NQ, P_NQUERIES, P_QNOS, P_COUNTS, P_DIS, P_IDS, rl,
                       rlab, rdis));
    size_t* lims = NULL;
    idx_t* labels = NULL;
    float* dis = NULL;
    faiss_RangeSearchResult_lims(r, &lims);
    faiss_RangeSearchResult_labels(r, &labels, &dis);
    FXT_SAME(lims, rl, sizeof rl);
    cr_assert_eq(lims[P_NQ], P_TOTAL);
    FXT_SAME(labels, rlab, sizeof rlab);
    FXT_SAME(dis, rdis, sizeof rdis);
    /* query 2's results are the first three adds */
    cr_assert_eq(lims[3] - lims[2], 3);
    FXT_SAME(labels + lims[2], P_IDS, 3 * sizeof(idx_t));

    /* finalize allocates: a second one is refused (faiss would call
     * std::terminate from inside its omp single region) */
    FXT_ERR(faiss_RangeSearchPartialResult_finalize(pr), "already");
    FXT_SAME(lims, rl, sizeof rl);
    faissx_RangeSearchPartialResult_free(pr);
    faiss_RangeSearchResult_free(r);
}

Test(aux, partial_result_set_lims_then_allocate) {
    FaissRangeSearchResult* r = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&r, P_NQ));
    FaissRangeSearchPartialResult* pr = NULL;
    FXT_OK(faiss_RangeSearchPartialResult_new(&pr, r));
    fill_partial(pr);
    FXT_OK(faiss_RangeSearchPartialResult_set_lims(pr));
    size_t* lims = NULL;
    faiss_RangeSearchResult_lims(r, &lims);
    /* per-query counts, not yet offsets */
    size_t rl[P_NQ + 1];
    idx_t rlab[P_TOTAL];
    float rdis[P_TOTAL];
    ORC(oracle_partial(P_NQ, P_NQUERIES, P_QNOS, P_COUNTS, P_DIS, P_IDS, rl,
                       rlab, rdis));
    for (int q = 0; q < P_NQ; q++)
        cr_assert_eq(lims[q], rl[q + 1] - rl[q], "count of query %d", q);
    FXT_OK(faiss_RangeSearchResult_do_allocation(r));
    faiss_RangeSearchResult_lims(r, &lims);
    FXT_SAME(lims, rl, sizeof rl);
    idx_t* labels = NULL;
    float* dis = NULL;
    faiss_RangeSearchResult_labels(r, &labels, &dis);
    cr_assert_not_null(labels);
    cr_assert_not_null(dis);
    faissx_RangeSearchPartialResult_free(pr);
    faiss_RangeSearchResult_free(r);
}

Test(aux, partial_result_errors) {
    FaissRangeSearchResult* r = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&r, 3));
    FaissRangeSearchPartialResult* pr = NULL;
    FXT_ERR(faiss_RangeSearchPartialResult_new(NULL, r), "NULL");
    FXT_ERR(faiss_RangeSearchPartialResult_new(&pr, NULL), "NULL");
    FXT_OK(faiss_RangeSearchPartialResult_new(&pr, r));
    FaissRangeQueryResult* qr = NULL;
    FXT_ERR(faiss_RangeSearchPartialResult_new_result(pr, 3, &qr), "outside");
    FXT_ERR(faiss_RangeSearchPartialResult_new_result(pr, -1, &qr),
            "outside");
    FXT_ERR(faiss_RangeSearchPartialResult_new_result(NULL, 0, &qr), "NULL");
    /* the same query started twice would overflow the labels in
     * finalize: refused */
    FXT_OK(faiss_RangeSearchPartialResult_new_result(pr, 1, &qr));
    FXT_OK(faiss_RangeQueryResult_add(qr, 1.0f, 10));
    FXT_OK(faiss_RangeQueryResult_add(qr, 2.0f, 11));
    FXT_OK(faiss_RangeSearchPartialResult_new_result(pr, 1, &qr));
    FXT_OK(faiss_RangeQueryResult_add(qr, 3.0f, 12));
    FXT_ERR(faiss_RangeSearchPartialResult_finalize(pr), "twice");
    FXT_ERR(faiss_RangeSearchPartialResult_set_lims(pr), "twice");
    idx_t* labels = (idx_t*)1;
    faiss_RangeSearchResult_labels(r, &labels, NULL);
    cr_assert_null(labels, "a refused finalize allocated");
    faissx_RangeSearchPartialResult_free(pr);
    faiss_RangeSearchResult_free(r);

    /* a result without lims cannot be finalized */
    FXT_OK(faiss_RangeSearchResult_new_with(&r, 2, 0));
    FXT_OK(faiss_RangeSearchPartialResult_new(&pr, r));
    FXT_OK(faiss_RangeSearchPartialResult_new_result(pr, 0, &qr));
    FXT_OK(faiss_RangeQueryResult_add(qr, 1.0f, 1));
    FXT_ERR(faiss_RangeSearchPartialResult_set_lims(pr), "lims");
    FXT_ERR(faiss_RangeSearchPartialResult_finalize(pr), "lims");
    faissx_RangeSearchPartialResult_free(pr);
    faiss_RangeSearchResult_free(r);

    FXT_ERR(faiss_RangeSearchPartialResult_finalize(NULL), "NULL");
    FXT_ERR(faiss_RangeSearchPartialResult_set_lims(NULL), "NULL");
    FXT_ERR(faiss_RangeQueryResult_add(NULL, 1.0f, 2), "NULL");
    cr_assert_eq(faiss_RangeQueryResult_qno(NULL), 0);
    ERR_FROM("faiss_RangeQueryResult_qno");
    cr_assert_eq(faiss_RangeQueryResult_nres(NULL), 0);
    ERR_FROM("faiss_RangeQueryResult_nres");
    cr_assert_null(faiss_RangeQueryResult_pres(NULL));
    ERR_FROM("faiss_RangeQueryResult_pres");
    cr_assert_null(faiss_RangeSearchPartialResult_res(NULL));
    ERR_FROM("faiss_RangeSearchPartialResult_res");
    faissx_RangeSearchPartialResult_free(NULL);
}

/* ======================================================================
 * DistanceComputer
 * ====================================================================== */

static void dc_matches(const char* factory, int metric) {
    const int d = 16;
    const idx_t nb = 600, nq = 3, nids = 6, npairs = 4;
    float* xb = fxt_clustered(nb, d, 10, 0.1f, 50);
    float* xq = fxt_uniform(nq, d, 51);
    const idx_t ids[6] = {0, 1, 77, 300, 598, 599};
    const idx_t pairs[8] = {0, 1, 5, 5, 599, 0, 123, 456};
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, d, factory, metric));
    FXT_OK(faiss_Index_train(ix, nb, xb));
    FXT_OK(faiss_Index_add(ix, nb, xb));
    FaissDistanceComputer* dc = NULL;
    FXT_OK(faissx_Index_get_distance_computer(ix, &dc));
    cr_assert_not_null(dc);

    float rq[3 * 6], rs[4], got[3 * 6], gs[4];
    ORC(oracle_dc(factory, d, metric, nb, xb, nq, xq, nids, ids, rq, npairs,
                  pairs, rs));
    for (idx_t q = 0; q < nq; q++) {
        FXT_OK(faiss_DistanceComputer_set_query(dc, xq + q * d));
        for (idx_t j = 0; j < nids; j++)
            FXT_OK(faiss_DistanceComputer_vector_to_query_dis(
                    dc, ids[j], &got[q * nids + j]));
    }
    for (idx_t p = 0; p < npairs; p++)
        FXT_OK(faiss_DistanceComputer_symmetric_dis(dc, pairs[2 * p],
                                                    pairs[2 * p + 1], &gs[p]));
    if (faissx_index_is_remote(ix)) {
        /* A proxy's distance computer is faiss's generic one: reconstructed
         * vectors through fvec_L2sqr, whose sum order (faissx's SIMD
         * kernels, docs/kernels.md) differs from SQ's own loop. */
        for (size_t i = 0; i < sizeof got / sizeof got[0]; i++)
            cr_assert(fabsf(got[i] - rq[i]) <= 1e-5f * (1 + fabsf(rq[i])),
                      "%s: query distance %zu: %g vs C++ %g", factory, i,
                      got[i], rq[i]);
        for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
            cr_assert(fabsf(gs[i] - rs[i]) <= 1e-5f * (1 + fabsf(rs[i])),
                      "%s: symmetric distance %zu: %g vs C++ %g", factory, i,
                      gs[i], rs[i]);
    } else {
        cr_assert(memcmp(got, rq, sizeof got) == 0,
                  "%s: query distances differ from C++", factory);
        cr_assert(memcmp(gs, rs, sizeof gs) == 0,
                  "%s: symmetric distances differ from C++", factory);
    }
    faiss_DistanceComputer_free(dc);
    faiss_Index_free(ix);
    free(xb);
    free(xq);
}

Test(aux, distance_computer_flat_l2_matches_cpp) {
    dc_matches("Flat", METRIC_L2);
}
Test(aux, distance_computer_flat_ip_matches_cpp) {
    FXT_LOCAL_ONLY("a distance computer is a local object");
    dc_matches("Flat", METRIC_INNER_PRODUCT);
}
Test(aux, distance_computer_sq8_matches_cpp) {
    dc_matches("SQ8", METRIC_L2);
}
Test(aux, distance_computer_sq4_ip_matches_cpp) {
    FXT_LOCAL_ONLY("a distance computer is a local object");
    dc_matches("SQ4", METRIC_INNER_PRODUCT);
}
Test(aux, distance_computer_hnsw_matches_cpp) {
    dc_matches("HNSW8", METRIC_L2);
}

Test(aux, distance_computer_flat_values) {
    /* the exact squared L2 of a tiny case, against fvec_L2sqr_ny */
    const float xb[6] = {0, 0, 3, 4, 1, 1};
    const float q[2] = {1, 2};
    FaissIndexFlatL2* ix = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&ix, 2));
    FXT_OK(faiss_Index_add(ix, 3, xb));
    FaissDistanceComputer* dc = NULL;
    FXT_OK(faissx_Index_get_distance_computer(ix, &dc));
    FXT_OK(faiss_DistanceComputer_set_query(dc, q));
    float ref[3];
    faiss_fvec_L2sqr_ny(ref, q, xb, 2, 3);
    for (idx_t i = 0; i < 3; i++) {
        float v;
        FXT_OK(faiss_DistanceComputer_vector_to_query_dis(dc, i, &v));
        cr_assert_eq(v, ref[i]);
    }
    float s;
    FXT_OK(faiss_DistanceComputer_symmetric_dis(dc, 0, 1, &s));
    cr_assert_eq(s, 25.0f);
    faiss_DistanceComputer_free(dc);
    faiss_IndexFlatL2_free(ix);
}

Test(aux, distance_computer_errors) {
    FXT_LOCAL_ONLY("a distance computer is a local object");
    const int d = 8;
    const idx_t nb = 50;
    float* xb = fxt_uniform(nb, d, 60);
    FaissIndexFlatL2* ix = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&ix, d));
    FXT_OK(faiss_Index_add(ix, nb, xb));
    FaissDistanceComputer* dc = NULL;
    FXT_OK(faissx_Index_get_distance_computer(ix, &dc));
    float v = 42.0f;
    /* no query yet */
    FXT_ERR(faiss_DistanceComputer_vector_to_query_dis(dc, 0, &v), "query");
    cr_assert_eq(v, 42.0f);
    /* symmetric distances do not need one */
    FXT_OK(faiss_DistanceComputer_symmetric_dis(dc, 2, 3, &v));
    FXT_OK(faiss_DistanceComputer_set_query(dc, xb));
    FXT_OK(faiss_DistanceComputer_vector_to_query_dis(dc, 0, &v));
    cr_assert_eq(v, 0.0f);
    v = 42.0f;
    FXT_ERR(faiss_DistanceComputer_vector_to_query_dis(dc, -1, &v),
            "outside");
    FXT_ERR(faiss_DistanceComputer_vector_to_query_dis(dc, nb, &v),
            "outside");
    FXT_ERR(faiss_DistanceComputer_symmetric_dis(dc, 0, nb, &v), "outside");
    FXT_ERR(faiss_DistanceComputer_symmetric_dis(dc, -3, 0, &v), "outside");
    cr_assert_eq(v, 42.0f);
    FXT_ERR(faiss_DistanceComputer_vector_to_query_dis(dc, 0, NULL), "NULL");
    FXT_ERR(faiss_DistanceComputer_symmetric_dis(dc, 0, 1, NULL), "NULL");
    FXT_ERR(faiss_DistanceComputer_set_query(dc, NULL), "NULL");
    FXT_ERR(faiss_DistanceComputer_set_query(NULL, xb), "NULL");
    FXT_ERR(faiss_DistanceComputer_vector_to_query_dis(NULL, 0, &v), "NULL");
    FXT_ERR(faiss_DistanceComputer_symmetric_dis(NULL, 0, 1, &v), "NULL");
    faiss_DistanceComputer_free(dc);
    faiss_DistanceComputer_free(NULL);

    /* an index that has none */
    FaissIndex* lsh = NULL;
    FXT_OK(faiss_index_factory(&lsh, d, "LSH", METRIC_L2));
    FXT_OK(faiss_Index_train(lsh, nb, xb));
    FXT_OK(faiss_Index_add(lsh, nb, xb));
    dc = NULL;
    FXT_ERR(faissx_Index_get_distance_computer(lsh, &dc), "not implemented");
    cr_assert_null(dc);
    FXT_ERR(faissx_Index_get_distance_computer(NULL, &dc), "NULL");
    FXT_ERR(faissx_Index_get_distance_computer(ix, NULL), "NULL");
    faiss_Index_free(lsh);

    /* an empty index: every id is out of range */
    FaissIndexFlatL2* empty = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&empty, d));
    FXT_OK(faissx_Index_get_distance_computer(empty, &dc));
    FXT_OK(faiss_DistanceComputer_set_query(dc, xb));
    FXT_ERR(faiss_DistanceComputer_vector_to_query_dis(dc, 0, &v), "outside");
    faiss_DistanceComputer_free(dc);
    faiss_IndexFlatL2_free(empty);

    faiss_IndexFlatL2_free(ix);
    free(xb);
}
