/* oracle_flat.h -- faiss C++ references for test_flat.c. Every function
 * returns 0, or -1 with the message in oracle_flat_error(). */
#ifndef FXT_ORACLE_FLAT_H
#define FXT_ORACLE_FLAT_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* oracle_flat_error(void);

/* d and metric_type of a default-constructed faiss::IndexFlat (which = 0),
 * IndexFlatIP (1), IndexFlatL2 (2) or IndexFlat1D (3). */
int oracle_flat_defaults(int which, int* d, int* metric);

/* faiss::IndexFlat(d, metric) filled with xb, then
 * compute_distance_subset(n, x, k, D, labels). */
int oracle_flat_distance_subset(int d, int metric, idx_t nb, const float* xb,
                                idx_t n, const float* x, idx_t k,
                                const idx_t* labels, float* D);

/* faiss::IndexRefineFlat over index_factory(d, base, metric) with
 * k_factor, trained on xt, filled with xb, searched. */
int oracle_refine_flat_search(const char* base, int d, int metric, idx_t nt,
                              const float* xt, idx_t nb, const float* xb,
                              float k_factor, idx_t nq, const float* xq,
                              idx_t k, float* D, idx_t* I);

/* faiss::IndexFlat1D(continuous_update) filled with xb (calling
 * update_permutation when not continuous), searched. */
int oracle_flat1d_search(int continuous_update, idx_t nb, const float* xb,
                         idx_t nq, const float* xq, idx_t k, float* D,
                         idx_t* I);

#ifdef __cplusplus
}
#endif

#endif
