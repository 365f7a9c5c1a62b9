/* oracle_distances.h -- faiss C++ references for test_distances.c: the
 * faiss:: functions of utils/distances.h called directly. */
#ifndef FXT_ORACLE_DISTANCES_H
#define FXT_ORACLE_DISTANCES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void oracle_pairwise_L2sqr(int64_t d, int64_t nq, const float* xq,
                           int64_t nb, const float* xb, float* dis,
                           int64_t ldq, int64_t ldb, int64_t ldd);
void oracle_fvec_inner_products_ny(float* ip, const float* x, const float* y,
                                   size_t d, size_t ny);
void oracle_fvec_L2sqr_ny(float* dis, const float* x, const float* y,
                          size_t d, size_t ny);
float oracle_fvec_norm_L2sqr(const float* x, size_t d);
void oracle_fvec_norms_L2(float* norms, const float* x, size_t d, size_t nx);
void oracle_fvec_norms_L2sqr(float* norms, const float* x, size_t d,
                             size_t nx);
void oracle_fvec_renorm_L2(size_t d, size_t nx, float* x);

/* faiss's globals as C++ sees them. */
int oracle_blas_threshold(void);
int oracle_blas_query_bs(void);
int oracle_blas_database_bs(void);
int oracle_min_k_reservoir(void);

/* faiss::knn_L2sqr (exhaustive k-NN through the same globals). */
void oracle_knn_L2sqr(const float* x, const float* y, size_t d, size_t nx,
                      size_t ny, size_t k, float* D, int64_t* I);

#ifdef __cplusplus
}
#endif

#endif
