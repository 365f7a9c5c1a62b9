/* test_flat.c -- IndexFlat_c.h against faiss C++. */
#include "common.h"
#include "oracle.h"

#include <stdlib.h>

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
