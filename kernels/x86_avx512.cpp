/* x86_avx512.cpp -- AVX-512F kernels: 16 floats per register, the tail of
 * every loop a masked load (reads nothing past the end). Same structure and
 * same rules as x86_avx2.cpp. */
#include "kernels/kernels.h"

/* GCC 12's avx512fintrin.h trips -Wuninitialized in its own helpers
 * (_mm512_undefined_ps); not our code. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define FX_T __attribute__((target("avx512f,avx2,fma")))

namespace {

FX_T inline __mmask16 tail_mask(size_t n) { /* n in 0..15 */
    return static_cast<__mmask16>((1u << n) - 1u);
}

FX_T inline __m512 load_tail(const float* p, size_t n) {
    return _mm512_maskz_loadu_ps(tail_mask(n), p);
}

FX_T float L2sqr(const float* x, const float* y, size_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= d; i += 64) {
        __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i));
        __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16),
                                  _mm512_loadu_ps(y + i + 16));
        __m512 t2 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 32),
                                  _mm512_loadu_ps(y + i + 32));
        __m512 t3 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 48),
                                  _mm512_loadu_ps(y + i + 48));
        a0 = _mm512_fmadd_ps(t0, t0, a0);
        a1 = _mm512_fmadd_ps(t1, t1, a1);
        a2 = _mm512_fmadd_ps(t2, t2, a2);
        a3 = _mm512_fmadd_ps(t3, t3, a3);
    }
    for (; i + 16 <= d; i += 16) {
        __m512 t = _mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i));
        a0 = _mm512_fmadd_ps(t, t, a0);
    }
    if (i < d) {
        __m512 t = _mm512_sub_ps(load_tail(x + i, d - i), load_tail(y + i, d - i));
        a1 = _mm512_fmadd_ps(t, t, a1);
    }
    return _mm512_reduce_add_ps(
            _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

FX_T float inner_product(const float* x, const float* y, size_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= d; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16),
                             _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32),
                             _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48),
                             _mm512_loadu_ps(y + i + 48), a3);
    }
    for (; i + 16 <= d; i += 16)
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    if (i < d)
        a1 = _mm512_fmadd_ps(load_tail(x + i, d - i), load_tail(y + i, d - i), a1);
    return _mm512_reduce_add_ps(
            _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

FX_T float norm_L2sqr(const float* x, size_t d) {
    return inner_product(x, x, d);
}

FX_T inline __m512 absdiff(__m512 a, __m512 b) {
    return _mm512_abs_ps(_mm512_sub_ps(a, b));
}

FX_T float L1(const float* x, const float* y, size_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        a0 = _mm512_add_ps(a0, absdiff(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
        a1 = _mm512_add_ps(a1, absdiff(_mm512_loadu_ps(x + i + 16),
                                       _mm512_loadu_ps(y + i + 16)));
    }
    for (; i + 16 <= d; i += 16)
        a0 = _mm512_add_ps(a0, absdiff(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < d)
        a1 = _mm512_add_ps(a1, absdiff(load_tail(x + i, d - i), load_tail(y + i, d - i)));
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* max(term, acc) keeps acc when term is NaN (faiss's fmax semantics). */
FX_T float Linf(const float* x, const float* y, size_t d) {
    __m512 acc = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16)
        acc = _mm512_max_ps(absdiff(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)), acc);
    if (i < d)
        acc = _mm512_max_ps(absdiff(load_tail(x + i, d - i), load_tail(y + i, d - i)), acc);
    return _mm512_reduce_max_ps(acc);
}

FX_T void L2sqr_ny(float* dis, const float* x, const float* y, size_t d,
                   size_t ny) {
    for (size_t i = 0; i < ny; i++)
        dis[i] = L2sqr(x, y + i * d, d);
}

FX_T void inner_products_ny(float* ip, const float* x, const float* y,
                            size_t d, size_t ny) {
    for (size_t i = 0; i < ny; i++)
        ip[i] = inner_product(x, y + i * d, d);
}

FX_T void L2sqr_ny_y_transposed(float* dis, const float* x, const float* y,
                                const float* y_sqlen, size_t d,
                                size_t d_offset, size_t ny) {
    const __m512 xs = _mm512_set1_ps(norm_L2sqr(x, d));
    const __m512 two = _mm512_set1_ps(2.0f);
    for (size_t i = 0; i < ny; i += 16) {
        size_t n = ny - i < 16 ? ny - i : 16;
        __mmask16 m = n == 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n);
        __m512 dp = _mm512_setzero_ps();
        for (size_t j = 0; j < d; j++)
            dp = _mm512_fmadd_ps(_mm512_set1_ps(x[j]),
                                 _mm512_maskz_loadu_ps(m, y + i + j * d_offset), dp);
        __m512 r = _mm512_sub_ps(
                _mm512_add_ps(xs, _mm512_maskz_loadu_ps(m, y_sqlen + i)),
                _mm512_mul_ps(two, dp));
        _mm512_mask_storeu_ps(dis + i, m, r);
    }
}

/* Element-wise: a multiply then an add (no FMA), the same bits as faiss. */
FX_T void madd(size_t n, const float* a, float bf, const float* b, float* c) {
    const __m512 f = _mm512_set1_ps(bf);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
        __m512 r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i),
                                 _mm512_mul_ps(f, _mm512_maskz_loadu_ps(m, b + i)));
        _mm512_mask_storeu_ps(c + i, m, r);
    }
}

FX_T void add(size_t d, const float* a, const float* b, float* c) {
    for (size_t i = 0; i < d; i += 16) {
        __mmask16 m = d - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(d - i);
        _mm512_mask_storeu_ps(c + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i),
                                                      _mm512_maskz_loadu_ps(m, b + i)));
    }
}

FX_T void add_scalar(size_t d, const float* a, float b, float* c) {
    const __m512 bv = _mm512_set1_ps(b);
    for (size_t i = 0; i < d; i += 16) {
        __mmask16 m = d - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(d - i);
        _mm512_mask_storeu_ps(c + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), bv));
    }
}

FX_T void sub(size_t d, const float* a, const float* b, float* c) {
    for (size_t i = 0; i < d; i += 16) {
        __mmask16 m = d - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(d - i);
        _mm512_mask_storeu_ps(c + i, m, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
                                                      _mm512_maskz_loadu_ps(m, b + i)));
    }
}

} // namespace

namespace fx {
const KernelTable kernels_avx512 = {
        "avx512", L2sqr, inner_product,      norm_L2sqr, L1, Linf,
        L2sqr_ny, inner_products_ny,         L2sqr_ny_y_transposed,
        madd,     add,   add_scalar,         sub,
};
} // namespace fx

#pragma GCC diagnostic pop
