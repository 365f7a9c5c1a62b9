/* distances.cpp -- utils/distances_c.h: batched distances and norms, and
 * faiss's global BLAS thresholds. These return void, so bad arguments are
 * reported through faiss_get_last_error() and the call does nothing. */
#include "core/core.h"

#include <faiss/utils/distances.h>

#define FX_VOID_REQUIRE(cond, ...) FX_REQUIRE_RET(cond, , __VA_ARGS__)

extern "C" {

void faiss_pairwise_L2sqr(int64_t d, int64_t nq, const float* xq, int64_t nb,
                          const float* xb, float* dis, int64_t ldq,
                          int64_t ldb, int64_t ldd) {
    FX_VOID_REQUIRE(d > 0 && nq >= 0 && nb >= 0,
                    "need d > 0, nq >= 0, nb >= 0 (got %lld, %lld, %lld)",
                    (long long)d, (long long)nq, (long long)nb);
    FX_VOID_REQUIRE(nq == 0 || nb == 0 || (xq && xb && dis),
                    "xq, xb and dis must not be NULL");
    FX_VOID_REQUIRE((ldq == -1 || ldq >= d) && (ldb == -1 || ldb >= d) &&
                            (ldd == -1 || ldd >= nb),
                    "leading dimensions must be -1 or >= the row length");
    FX_TRY
    faiss::pairwise_L2sqr(d, nq, xq, nb, xb, dis, ldq, ldb, ldd);
    FX_CATCH_RET()
}

void faiss_pairwise_L2sqr_with_defaults(int64_t d, int64_t nq,
                                        const float* xq, int64_t nb,
                                        const float* xb, float* dis) {
    faiss_pairwise_L2sqr(d, nq, xq, nb, xb, dis, -1, -1, -1);
}

void faiss_fvec_inner_products_ny(float* ip, const float* x, const float* y,
                                  size_t d, size_t ny) {
    FX_VOID_REQUIRE(ny == 0 || (ip && x && y), "ip, x and y must not be NULL");
    faiss::fvec_inner_products_ny(ip, x, y, d, ny);
}

void faiss_fvec_L2sqr_ny(float* dis, const float* x, const float* y,
                         size_t d, size_t ny) {
    FX_VOID_REQUIRE(ny == 0 || (dis && x && y),
                    "dis, x and y must not be NULL");
    faiss::fvec_L2sqr_ny(dis, x, y, d, ny);
}

float faiss_fvec_norm_L2sqr(const float* x, size_t d) {
    FX_REQUIRE_RET(d == 0 || x, 0.0f, "x is NULL");
    return faiss::fvec_norm_L2sqr(x, d);
}

void faiss_fvec_norms_L2(float* norms, const float* x, size_t d, size_t nx) {
    FX_VOID_REQUIRE(nx == 0 || (norms && x), "norms and x must not be NULL");
    faiss::fvec_norms_L2(norms, x, d, nx);
}

void faiss_fvec_norms_L2sqr(float* norms, const float* x, size_t d,
                            size_t nx) {
    FX_VOID_REQUIRE(nx == 0 || (norms && x), "norms and x must not be NULL");
    faiss::fvec_norms_L2sqr(norms, x, d, nx);
}

void faiss_fvec_renorm_L2(size_t d, size_t nx, float* x) {
    FX_VOID_REQUIRE(nx == 0 || x, "x is NULL");
    faiss::fvec_renorm_L2(d, nx, x);
}

void faiss_set_distance_compute_blas_threshold(int value) {
    faiss::distance_compute_blas_threshold = value;
}
int faiss_get_distance_compute_blas_threshold() {
    return faiss::distance_compute_blas_threshold;
}
void faiss_set_distance_compute_blas_query_bs(int value) {
    FX_VOID_REQUIRE(value > 0, "block size must be > 0 (got %d)", value);
    faiss::distance_compute_blas_query_bs = value;
}
int faiss_get_distance_compute_blas_query_bs() {
    return faiss::distance_compute_blas_query_bs;
}
void faiss_set_distance_compute_blas_database_bs(int value) {
    FX_VOID_REQUIRE(value > 0, "block size must be > 0 (got %d)", value);
    faiss::distance_compute_blas_database_bs = value;
}
int faiss_get_distance_compute_blas_database_bs() {
    return faiss::distance_compute_blas_database_bs;
}
void faiss_set_distance_compute_min_k_reservoir(int value) {
    FX_VOID_REQUIRE(value > 0, "min_k_reservoir must be > 0 (got %d)", value);
    faiss::distance_compute_min_k_reservoir = value;
}
int faiss_get_distance_compute_min_k_reservoir() {
    return faiss::distance_compute_min_k_reservoir;
}

} // extern "C"
