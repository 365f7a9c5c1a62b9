/* oracle_distances.cpp -- faiss C++ references behind oracle_distances.h. */
#include "oracle_distances.h"

#include <faiss/utils/distances.h>

extern "C" {

void oracle_pairwise_L2sqr(int64_t d, int64_t nq, const float* xq,
                           int64_t nb, const float* xb, float* dis,
                           int64_t ldq, int64_t ldb, int64_t ldd) {
    faiss::pairwise_L2sqr(d, nq, xq, nb, xb, dis, ldq, ldb, ldd);
}
void oracle_fvec_inner_products_ny(float* ip, const float* x, const float* y,
                                   size_t d, size_t ny) {
    faiss::fvec_inner_products_ny(ip, x, y, d, ny);
}
void oracle_fvec_L2sqr_ny(float* dis, const float* x, const float* y,
                          size_t d, size_t ny) {
    faiss::fvec_L2sqr_ny(dis, x, y, d, ny);
}
float oracle_fvec_norm_L2sqr(const float* x, size_t d) {
    return faiss::fvec_norm_L2sqr(x, d);
}
void oracle_fvec_norms_L2(float* norms, const float* x, size_t d,
                          size_t nx) {
    faiss::fvec_norms_L2(norms, x, d, nx);
}
void oracle_fvec_norms_L2sqr(float* norms, const float* x, size_t d,
                             size_t nx) {
    faiss::fvec_norms_L2sqr(norms, x, d, nx);
}
void oracle_fvec_renorm_L2(size_t d, size_t nx, float* x) {
    faiss::fvec_renorm_L2(d, nx, x);
}
int oracle_blas_threshold(void) {
    return faiss::distance_compute_blas_threshold;
}
int oracle_blas_query_bs(void) {
    return faiss::distance_compute_blas_query_bs;
}
int oracle_blas_database_bs(void) {
    return faiss::distance_compute_blas_database_bs;
}
int oracle_min_k_reservoir(void) {
    return faiss::distance_compute_min_k_reservoir;
}
void oracle_knn_L2sqr(const float* x, const float* y, size_t d, size_t nx,
                      size_t ny, size_t k, float* D, int64_t* I) {
    faiss::knn_L2sqr(x, y, d, nx, ny, k, D, I);
}

} // extern "C"
