/* simd_kernels.h -- internal: every kernel of fx::KernelTable written once,
 * over a vector-traits type V. generic.cpp, x86_avx2.cpp and x86_avx512.cpp
 * each define FX_T (their target attribute; empty for generic) and their
 * traits, then include this file: the kernels are compiled once per level,
 * in that file's anonymous namespace, and only with that file's target
 * attribute (nothing here is compiled for AVX elsewhere).
 *
 * V provides, all static and marked FX_T:
 *   R, W              the register type and its number of floats
 *   L1_ACC            accumulators of L1 (1, 2 or 4)
 *   zero set1 load store add sub mul abs
 *   mul_add(a, b, c)  a * b + c: fused at the AVX levels, two roundings in
 *                     generic (as faiss's scalar code)
 *   max(t, acc)       acc when either is NaN (x86 max semantics)
 *   hsum hmax         the horizontal sum and max of one register
 *   load_part store_part (W > 1 only) the first n (1..W-1) floats at p,
 *                     zeros after; touch nothing past p + n
 *
 * Summation order (the tests and docs/kernels.md rely on it): W and the
 * number of accumulators fix it. A reduction with NA accumulators adds
 * NA whole registers a step, one at a time into the first, the masked tail
 * into the second (the only one when NA == 1), then (a0 + a1) + (a2 + a3)
 * and the horizontal sum. The element-wise kernels round once per
 * operation, so their result is the same at every level. */
#ifndef FX_SIMD_KERNELS_H
#define FX_SIMD_KERNELS_H

#ifndef FX_T
#error "define FX_T (the level's target attribute) before including simd_kernels.h"
#endif

#include "kernels/kernels.h"

#include <type_traits>

namespace {

/* ---- reductions ------------------------------------------------------- */

template <class V> struct L2Op {
    using R = typename V::R;
    FX_T static R step(R acc, R x, R y) {
        R t = V::sub(x, y);
        return V::mul_add(t, t, acc);
    }
    FX_T static R join(R a, R b) { return V::add(a, b); }
    FX_T static float finish(R a) { return V::hsum(a); }
};

template <class V> struct IPOp : L2Op<V> {
    using R = typename V::R;
    FX_T static R step(R acc, R x, R y) { return V::mul_add(x, y, acc); }
};

template <class V> struct L1Op : L2Op<V> {
    using R = typename V::R;
    FX_T static R step(R acc, R x, R y) { return V::add(acc, V::abs(V::sub(x, y))); }
};

/* max(term, acc) keeps acc when the term is NaN: NaN terms are skipped, as
 * faiss's fmax does. */
template <class V> struct LinfOp {
    using R = typename V::R;
    FX_T static R step(R acc, R x, R y) { return V::max(V::abs(V::sub(x, y)), acc); }
    FX_T static R join(R a, R b) { return V::max(a, b); }
    FX_T static float finish(R a) { return V::hmax(a); }
};

template <class V, template <class> class Op, int NA>
FX_T float reduce(const float* x, const float* y, size_t d) {
    static_assert(NA == 1 || NA == 2 || NA == 4, "1, 2 or 4 accumulators");
    using R = typename V::R;
    constexpr size_t W = V::W;
    R a[NA];
    for (int k = 0; k < NA; k++)
        a[k] = V::zero();
    size_t i = 0;
    for (; i + NA * W <= d; i += NA * W) {
#pragma GCC unroll 4
        for (int k = 0; k < NA; k++)
            a[k] = Op<V>::step(a[k], V::load(x + i + k * W), V::load(y + i + k * W));
    }
    for (; i + W <= d; i += W)
        a[0] = Op<V>::step(a[0], V::load(x + i), V::load(y + i));
    constexpr int tail = NA > 1 ? 1 : 0;
    if constexpr (W > 1) {
        if (i < d)
            a[tail] = Op<V>::step(a[tail], V::load_part(x + i, d - i),
                                  V::load_part(y + i, d - i));
    }
    if constexpr (NA == 4)
        return Op<V>::finish(Op<V>::join(Op<V>::join(a[0], a[1]), Op<V>::join(a[2], a[3])));
    else if constexpr (NA == 2)
        return Op<V>::finish(Op<V>::join(a[0], a[1]));
    else
        return Op<V>::finish(a[0]);
}

template <class V> FX_T float L2sqr(const float* x, const float* y, size_t d) {
    return reduce<V, L2Op, 4>(x, y, d);
}

template <class V> FX_T float inner_product(const float* x, const float* y, size_t d) {
    return reduce<V, IPOp, 4>(x, y, d);
}

template <class V> FX_T float norm_L2sqr(const float* x, size_t d) {
    return inner_product<V>(x, x, d);
}

template <class V> FX_T float L1(const float* x, const float* y, size_t d) {
    return reduce<V, L1Op, V::L1_ACC>(x, y, d);
}

template <class V> FX_T float Linf(const float* x, const float* y, size_t d) {
    return reduce<V, LinfOp, 1>(x, y, d);
}

template <class V>
FX_T void L2sqr_ny(float* dis, const float* x, const float* y, size_t d, size_t ny) {
    for (size_t i = 0; i < ny; i++)
        dis[i] = L2sqr<V>(x, y + i * d, d);
}

template <class V>
FX_T void inner_products_ny(float* ip, const float* x, const float* y, size_t d,
                            size_t ny) {
    for (size_t i = 0; i < ny; i++)
        ip[i] = inner_product<V>(x, y + i * d, d);
}

/* ---- lane-wise kernels: whole registers, then one masked tail --------- */

/* A whole register's width as a type: f's whole-register calls compile to
 * plain loads and stores whether or not f is inlined. */
template <class V> using Whole = std::integral_constant<size_t, V::W>;

template <class V> FX_T typename V::R load_n(const float* p, Whole<V>) {
    return V::load(p);
}
template <class V> FX_T typename V::R load_n(const float* p, size_t n) {
    return V::load_part(p, n);
}
template <class V> FX_T void store_n(float* p, Whole<V>, typename V::R v) {
    V::store(p, v);
}
template <class V> FX_T void store_n(float* p, size_t n, typename V::R v) {
    V::store_part(p, n, v);
}

/* f(i, n) for the blocks [i, i + n) of [0, count): n is Whole<V> for whole
 * registers, then the remaining 1..W-1 lanes once. */
template <class V, class F> FX_T void each_block(size_t count, F f) {
    size_t i = 0;
    for (; i + V::W <= count; i += V::W)
        f(i, Whole<V>());
    if constexpr (V::W > 1) {
        if (i < count)
            f(i, count - i);
    }
}

/* dis[i] = |x|^2 + y_sqlen[i] - 2 <x, y[i + j * d_offset]_j>: W y vectors
 * at a time (their component j is contiguous). */
template <class V>
FX_T void L2sqr_ny_y_transposed(float* dis, const float* x, const float* y,
                                const float* y_sqlen, size_t d, size_t d_offset,
                                size_t ny) {
    using R = typename V::R;
    const R xs = V::set1(norm_L2sqr<V>(x, d));
    const R two = V::set1(2.0f);
    each_block<V>(ny, [&](size_t i, auto n) FX_T {
        R dp = V::zero();
        for (size_t j = 0; j < d; j++)
            dp = V::mul_add(V::set1(x[j]), load_n<V>(y + i + j * d_offset, n), dp);
        R r = V::sub(V::add(xs, load_n<V>(y_sqlen + i, n)), V::mul(two, dp));
        store_n<V>(dis + i, n, r);
    });
}

/* Element-wise: a multiply then an add (no FMA), the same bits as faiss. */
template <class V>
FX_T void madd(size_t n, const float* a, float bf, const float* b, float* c) {
    const typename V::R f = V::set1(bf);
    each_block<V>(n, [&](size_t i, auto m) FX_T {
        store_n<V>(c + i, m, V::add(load_n<V>(a + i, m), V::mul(f, load_n<V>(b + i, m))));
    });
}

template <class V> FX_T void add(size_t d, const float* a, const float* b, float* c) {
    each_block<V>(d, [&](size_t i, auto m) FX_T {
        store_n<V>(c + i, m, V::add(load_n<V>(a + i, m), load_n<V>(b + i, m)));
    });
}

template <class V> FX_T void add_scalar(size_t d, const float* a, float b, float* c) {
    const typename V::R bv = V::set1(b);
    each_block<V>(d, [&](size_t i, auto m) FX_T {
        store_n<V>(c + i, m, V::add(load_n<V>(a + i, m), bv));
    });
}

template <class V> FX_T void sub(size_t d, const float* a, const float* b, float* c) {
    each_block<V>(d, [&](size_t i, auto m) FX_T {
        store_n<V>(c + i, m, V::sub(load_n<V>(a + i, m), load_n<V>(b + i, m)));
    });
}

/* The table of one level; a constant expression, so the table is ready
 * before any static constructor can call a kernel. */
template <class V> constexpr fx::KernelTable kernel_table(const char* name) {
    return {name,           L2sqr<V>,    inner_product<V>,
            norm_L2sqr<V>,  L1<V>,       Linf<V>,
            L2sqr_ny<V>,    inner_products_ny<V>,
            L2sqr_ny_y_transposed<V>,
            madd<V>,        add<V>,      add_scalar<V>,
            sub<V>};
}

} // namespace

#endif
