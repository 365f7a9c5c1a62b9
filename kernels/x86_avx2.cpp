/* x86_avx2.cpp -- AVX2 + FMA kernels: the traits below, the kernels of
 * simd_kernels.h. Only functions marked FX_T carry the target attribute:
 * nothing else in this file (or in a header it includes) is compiled for
 * AVX2, so no inline function with AVX2 code can leak into the rest of the
 * program. Chosen at run time (kernels/dispatch.cpp). */
#include <immintrin.h>
#include <stdint.h>
#include <stddef.h>

#define FX_T __attribute__((target("avx2,fma")))

namespace {

const int32_t tail_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                0,  0,  0,  0,  0,  0,  0,  0};

struct Avx2 {
    using R = __m256;
    static constexpr size_t W = 8;
    static constexpr int L1_ACC = 2;

    FX_T static R zero() { return _mm256_setzero_ps(); }
    FX_T static R set1(float v) { return _mm256_set1_ps(v); }
    FX_T static R load(const float* p) { return _mm256_loadu_ps(p); }
    FX_T static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
    FX_T static __m256i mask(size_t n) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tail_masks + 8 - n));
    }
    FX_T static R load_part(const float* p, size_t n) {
        return _mm256_maskload_ps(p, mask(n));
    }
    FX_T static void store_part(float* p, size_t n, R v) {
        _mm256_maskstore_ps(p, mask(n), v);
    }
    FX_T static R add(R a, R b) { return _mm256_add_ps(a, b); }
    FX_T static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
    FX_T static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
    FX_T static R mul_add(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
    FX_T static R abs(R a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
    FX_T static R max(R a, R b) { return _mm256_max_ps(a, b); }
    FX_T static float hsum(R v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        return _mm_cvtss_f32(s);
    }
    FX_T static float hmax(R v) {
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
        return _mm_cvtss_f32(s);
    }
};

} // namespace

#include "kernels/simd_kernels.h"

namespace fx {
const KernelTable kernels_avx2 = kernel_table<Avx2>("avx2");
} // namespace fx
