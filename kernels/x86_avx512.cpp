/* x86_avx512.cpp -- AVX-512F kernels: 16 floats per register, tails by
 * mask register (read nothing past the end). Same rules as x86_avx2.cpp. */

/* GCC 12's avx512fintrin.h trips -Wuninitialized in its own helpers
 * (_mm512_undefined_ps); not our code. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <stddef.h>

#define FX_T __attribute__((target("avx512f,avx2,fma")))

namespace {

struct Avx512 {
    using R = __m512;
    static constexpr size_t W = 16;
    static constexpr int L1_ACC = 2;

    FX_T static R zero() { return _mm512_setzero_ps(); }
    FX_T static R set1(float v) { return _mm512_set1_ps(v); }
    FX_T static R load(const float* p) { return _mm512_loadu_ps(p); }
    FX_T static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
    FX_T static __mmask16 mask(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
    FX_T static R load_part(const float* p, size_t n) {
        return _mm512_maskz_loadu_ps(mask(n), p);
    }
    FX_T static void store_part(float* p, size_t n, R v) {
        _mm512_mask_storeu_ps(p, mask(n), v);
    }
    FX_T static R add(R a, R b) { return _mm512_add_ps(a, b); }
    FX_T static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
    FX_T static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
    FX_T static R mul_add(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
    FX_T static R abs(R a) { return _mm512_abs_ps(a); }
    FX_T static R max(R a, R b) { return _mm512_max_ps(a, b); }
    FX_T static float hsum(R v) { return _mm512_reduce_add_ps(v); }
    FX_T static float hmax(R v) { return _mm512_reduce_max_ps(v); }
};

} // namespace

#include "kernels/simd_kernels.h"

namespace fx {
const KernelTable kernels_avx512 = kernel_table<Avx512>("avx512");
} // namespace fx

#pragma GCC diagnostic pop
