/* oix_check.h -- assertions shared by the suites that replay their C calls
 * on a faiss C++ twin (oracle_ix.h): IVF, SQ and LSH. */
#ifndef FXT_OIX_CHECK_H
#define FXT_OIX_CHECK_H

#include "common.h"
#include "oracle_ix.h"

#include <stdlib.h>

#define OIX_OK(call) \
    cr_assert_eq((call), 0, "%s: oracle failed: %s", #call, oix_last_error())

/* Search nq queries on the C handle and on its C++ twin: labels and
 * distances must be bit-identical. */
static inline void oix_same_search(const FaissIndex* c, const OIx* o,
                                   idx_t nq, const float* xq, idx_t k) {
    size_t nr = (size_t)nq * (size_t)k;
    float* D1 = malloc(nr * sizeof(float));
    float* D2 = malloc(nr * sizeof(float));
    idx_t* I1 = malloc(nr * sizeof(idx_t));
    idx_t* I2 = malloc(nr * sizeof(idx_t));
    FXT_OK(faiss_Index_search(c, nq, xq, k, D1, I1));
    OIX_OK(oix_search(o, nq, xq, k, D2, I2));
    FXT_SAME(I1, I2, nr * sizeof(idx_t));
    FXT_SAME(D1, D2, nr * sizeof(float));
    free(D1);
    free(D2);
    free(I1);
    free(I2);
}

#endif
