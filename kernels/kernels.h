/* kernels.h -- internal: faissx's own definitions of faiss's distance
 * kernels (the symbols of libfaiss.a's distances_simd.cpp.o), and the
 * run-time choice among their implementations. See docs/kernels.md.
 *
 * faiss's C++ code calls faiss::fvec_L2sqr & co.; kernels/dispatch.cpp
 * defines those symbols, so the static link resolves them here and never
 * loads faiss's generic (scalar) member. Each call goes through one table of
 * function pointers, chosen once per process from the CPU's features (or
 * FAISSX_SIMD). Not installed; not API. */
#ifndef FX_KERNELS_H
#define FX_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
#include <faiss/utils/distances.h>
#include <faiss/utils/utils.h>

/* The _ref functions are defined by faiss's distances_simd.cpp but declared
 * in no installed header: declared here with the same signatures. */
namespace faiss {
float fvec_L2sqr_ref(const float* x, const float* y, size_t d);
float fvec_inner_product_ref(const float* x, const float* y, size_t d);
float fvec_norm_L2sqr_ref(const float* x, size_t d);
float fvec_L1_ref(const float* x, const float* y, size_t d);
float fvec_Linf_ref(const float* x, const float* y, size_t d);
void fvec_L2sqr_ny_ref(float* dis, const float* x, const float* y, size_t d,
                       size_t ny);
void fvec_inner_products_ny_ref(float* ip, const float* x, const float* y,
                                size_t d, size_t ny);
size_t fvec_L2sqr_ny_nearest_ref(float* distances_tmp_buffer, const float* x,
                                 const float* y, size_t d, size_t ny);
void fvec_L2sqr_ny_y_transposed_ref(float* dis, const float* x, const float* y,
                                    const float* y_sqlen, size_t d,
                                    size_t d_offset, size_t ny);
size_t fvec_L2sqr_ny_nearest_y_transposed_ref(float* distances_tmp_buffer,
                                              const float* x, const float* y,
                                              const float* y_sqlen, size_t d,
                                              size_t d_offset, size_t ny);
} // namespace faiss

namespace fx {

/* One implementation of every kernel that depends on the instruction set.
 * The element-wise ones (madd, add, sub, the PQ tables) do one rounding per
 * element, so all levels give the same bits as faiss's scalar code; the
 * reductions (sums, dot products) differ from it by float rounding only. */
struct KernelTable {
    const char* name;
    float (*L2sqr)(const float* x, const float* y, size_t d);
    float (*inner_product)(const float* x, const float* y, size_t d);
    float (*norm_L2sqr)(const float* x, size_t d);
    float (*L1)(const float* x, const float* y, size_t d);
    float (*Linf)(const float* x, const float* y, size_t d);
    void (*L2sqr_ny)(float* dis, const float* x, const float* y, size_t d,
                     size_t ny);
    void (*inner_products_ny)(float* ip, const float* x, const float* y,
                              size_t d, size_t ny);
    /* dis[i] = |x|^2 + y_sqlen[i] - 2 <x, y[i + j * d_offset]_j> */
    void (*L2sqr_ny_y_transposed)(float* dis, const float* x, const float* y,
                                  const float* y_sqlen, size_t d,
                                  size_t d_offset, size_t ny);
    void (*madd)(size_t n, const float* a, float bf, const float* b, float* c);
    void (*add)(size_t d, const float* a, const float* b, float* c);
    void (*add_scalar)(size_t d, const float* a, float b, float* c);
    void (*sub)(size_t d, const float* a, const float* b, float* c);
};

extern const KernelTable kernels_generic;
#if defined(FX_KERNELS_X86)
extern const KernelTable kernels_avx2;   /* AVX2 + FMA */
extern const KernelTable kernels_avx512; /* AVX-512F (+ FMA) */
#endif

} // namespace fx
#endif /* __cplusplus */

#ifdef __cplusplus
extern "C" {
#endif

/* Switch every kernel to the named level ("generic", "avx2", "avx512") for
 * the whole process: 0, or -1 when the name is unknown or the CPU lacks the
 * level (nothing changes then). For tests and benchmarks. */
int fx_kernels_select(const char* level);

/* Whether this CPU can run the named level: 1 or 0. */
int fx_kernels_supported(const char* level);

/* Referenced from core/error.cpp so every static link that uses the C API
 * loads kernels/dispatch.cpp before libfaiss.a is scanned. */
extern const int fx_kernels_linked;

#ifdef __cplusplus
}
#endif

#endif
