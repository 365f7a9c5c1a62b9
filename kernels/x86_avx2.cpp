/* x86_avx2.cpp -- AVX2 + FMA kernels. Only the functions below carry the
 * target attribute: nothing else in this file (or in a header it includes)
 * is compiled for AVX2, so no inline function with AVX2 code can leak into
 * the rest of the program. Chosen at run time (kernels/dispatch.cpp). */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <stdint.h>

#define FX_T __attribute__((target("avx2,fma")))

namespace {

const int32_t tail_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                0,  0,  0,  0,  0,  0,  0,  0};

/* The first n (0..7) floats at p, zeros after; reads nothing past p + n. */
FX_T inline __m256 load_tail(const float* p, size_t n) {
    __m256i m = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(tail_masks + 8 - n));
    return _mm256_maskload_ps(p, m);
}

FX_T inline void store_tail(float* p, size_t n, __m256 v) {
    __m256i m = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(tail_masks + 8 - n));
    _mm256_maskstore_ps(p, m, v);
}

FX_T inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

FX_T inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

FX_T float L2sqr(const float* x, const float* y, size_t d) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8),
                                  _mm256_loadu_ps(y + i + 8));
        __m256 t2 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 16),
                                  _mm256_loadu_ps(y + i + 16));
        __m256 t3 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 24),
                                  _mm256_loadu_ps(y + i + 24));
        a0 = _mm256_fmadd_ps(t0, t0, a0);
        a1 = _mm256_fmadd_ps(t1, t1, a1);
        a2 = _mm256_fmadd_ps(t2, t2, a2);
        a3 = _mm256_fmadd_ps(t3, t3, a3);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        a0 = _mm256_fmadd_ps(t, t, a0);
    }
    if (i < d) {
        __m256 t = _mm256_sub_ps(load_tail(x + i, d - i), load_tail(y + i, d - i));
        a1 = _mm256_fmadd_ps(t, t, a1);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

FX_T float inner_product(const float* x, const float* y, size_t d) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8),
                             _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16),
                             _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24),
                             _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= d; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    if (i < d)
        a1 = _mm256_fmadd_ps(load_tail(x + i, d - i), load_tail(y + i, d - i), a1);
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

FX_T float norm_L2sqr(const float* x, size_t d) {
    return inner_product(x, x, d);
}

FX_T inline __m256 absdiff(__m256 a, __m256 b) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(a, b));
}

FX_T float L1(const float* x, const float* y, size_t d) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        a0 = _mm256_add_ps(a0, absdiff(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
        a1 = _mm256_add_ps(a1, absdiff(_mm256_loadu_ps(x + i + 8),
                                       _mm256_loadu_ps(y + i + 8)));
    }
    for (; i + 8 <= d; i += 8)
        a0 = _mm256_add_ps(a0, absdiff(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    if (i < d)
        a1 = _mm256_add_ps(a1, absdiff(load_tail(x + i, d - i), load_tail(y + i, d - i)));
    return hsum(_mm256_add_ps(a0, a1));
}

/* max(term, acc) returns acc when term is NaN: NaN terms are skipped, as
 * faiss's fmax does. */
FX_T float Linf(const float* x, const float* y, size_t d) {
    __m256 acc = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8)
        acc = _mm256_max_ps(absdiff(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)), acc);
    if (i < d)
        acc = _mm256_max_ps(absdiff(load_tail(x + i, d - i), load_tail(y + i, d - i)), acc);
    return hmax(acc);
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

/* Eight y vectors at a time: y[i..i+7 + j * d_offset] is contiguous. */
FX_T void L2sqr_ny_y_transposed(float* dis, const float* x, const float* y,
                                const float* y_sqlen, size_t d,
                                size_t d_offset, size_t ny) {
    const __m256 xs = _mm256_set1_ps(norm_L2sqr(x, d));
    const __m256 two = _mm256_set1_ps(2.0f);
    size_t i = 0;
    for (; i + 8 <= ny; i += 8) {
        __m256 dp = _mm256_setzero_ps();
        for (size_t j = 0; j < d; j++)
            dp = _mm256_fmadd_ps(_mm256_set1_ps(x[j]),
                                 _mm256_loadu_ps(y + i + j * d_offset), dp);
        __m256 r = _mm256_sub_ps(_mm256_add_ps(xs, _mm256_loadu_ps(y_sqlen + i)),
                                 _mm256_mul_ps(two, dp));
        _mm256_storeu_ps(dis + i, r);
    }
    if (i < ny) {
        size_t n = ny - i;
        __m256 dp = _mm256_setzero_ps();
        for (size_t j = 0; j < d; j++)
            dp = _mm256_fmadd_ps(_mm256_set1_ps(x[j]),
                                 load_tail(y + i + j * d_offset, n), dp);
        __m256 r = _mm256_sub_ps(_mm256_add_ps(xs, load_tail(y_sqlen + i, n)),
                                 _mm256_mul_ps(two, dp));
        store_tail(dis + i, n, r);
    }
}

/* Element-wise: a multiply then an add (no FMA), the same bits as faiss. */
FX_T void madd(size_t n, const float* a, float bf, const float* b, float* c) {
    const __m256 f = _mm256_set1_ps(bf);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(c + i, _mm256_add_ps(_mm256_loadu_ps(a + i),
                                              _mm256_mul_ps(f, _mm256_loadu_ps(b + i))));
    for (; i < n; i++)
        c[i] = a[i] + bf * b[i];
}

FX_T void add(size_t d, const float* a, const float* b, float* c) {
    size_t i = 0;
    for (; i + 8 <= d; i += 8)
        _mm256_storeu_ps(c + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < d; i++)
        c[i] = a[i] + b[i];
}

FX_T void add_scalar(size_t d, const float* a, float b, float* c) {
    const __m256 bv = _mm256_set1_ps(b);
    size_t i = 0;
    for (; i + 8 <= d; i += 8)
        _mm256_storeu_ps(c + i, _mm256_add_ps(_mm256_loadu_ps(a + i), bv));
    for (; i < d; i++)
        c[i] = a[i] + b;
}

FX_T void sub(size_t d, const float* a, const float* b, float* c) {
    size_t i = 0;
    for (; i + 8 <= d; i += 8)
        _mm256_storeu_ps(c + i, _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < d; i++)
        c[i] = a[i] - b[i];
}

} // namespace

namespace fx {
const KernelTable kernels_avx2 = {
        "avx2",   L2sqr, inner_product,      norm_L2sqr, L1, Linf,
        L2sqr_ny, inner_products_ny,         L2sqr_ny_y_transposed,
        madd,     add,   add_scalar,         sub,
};
} // namespace fx
