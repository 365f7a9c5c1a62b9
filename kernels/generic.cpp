/* generic.cpp -- portable kernels (any CPU): the kernels of simd_kernels.h
 * over one float per "register". Four independent partial sums keep the
 * loops from being one long dependency chain; the compiler may vectorize
 * them with the baseline instruction set. */
#include <cmath>
#include <stddef.h>

#define FX_T

namespace {

struct Scalar {
    using R = float;
    static constexpr size_t W = 1;
    static constexpr int L1_ACC = 4;

    static R zero() { return 0.0f; }
    static R set1(float v) { return v; }
    static R load(const float* p) { return *p; }
    static void store(float* p, R v) { *p = v; }
    static R add(R a, R b) { return a + b; }
    static R sub(R a, R b) { return a - b; }
    static R mul(R a, R b) { return a * b; }
    static R mul_add(R a, R b, R c) { return c + a * b; } /* two roundings */
    static R abs(R a) { return std::fabs(a); }
    static R max(R a, R b) { return a > b ? a : b; }
    static float hsum(R v) { return v; }
    static float hmax(R v) { return v; }
};

} // namespace

#include "kernels/simd_kernels.h"

namespace fx {
const KernelTable kernels_generic = kernel_table<Scalar>("generic");
} // namespace fx
