/* generic.cpp -- portable kernels (any CPU): four independent partial sums
 * so the loop is not one long dependency chain; the compiler may vectorize
 * them with the baseline instruction set. */
#include "kernels/kernels.h"

#include <cmath>

namespace {

float L2sqr(const float* x, const float* y, size_t d) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        float t0 = x[i] - y[i], t1 = x[i + 1] - y[i + 1];
        float t2 = x[i + 2] - y[i + 2], t3 = x[i + 3] - y[i + 3];
        s0 += t0 * t0;
        s1 += t1 * t1;
        s2 += t2 * t2;
        s3 += t3 * t3;
    }
    for (; i < d; i++) {
        float t = x[i] - y[i];
        s0 += t * t;
    }
    return (s0 + s1) + (s2 + s3);
}

float inner_product(const float* x, const float* y, size_t d) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        s0 += x[i] * y[i];
        s1 += x[i + 1] * y[i + 1];
        s2 += x[i + 2] * y[i + 2];
        s3 += x[i + 3] * y[i + 3];
    }
    for (; i < d; i++)
        s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

float norm_L2sqr(const float* x, size_t d) {
    return inner_product(x, x, d);
}

float L1(const float* x, const float* y, size_t d) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        s0 += std::fabs(x[i] - y[i]);
        s1 += std::fabs(x[i + 1] - y[i + 1]);
        s2 += std::fabs(x[i + 2] - y[i + 2]);
        s3 += std::fabs(x[i + 3] - y[i + 3]);
    }
    for (; i < d; i++)
        s0 += std::fabs(x[i] - y[i]);
    return (s0 + s1) + (s2 + s3);
}

float Linf(const float* x, const float* y, size_t d) {
    float res = 0;
    for (size_t i = 0; i < d; i++)
        res = std::fmax(res, std::fabs(x[i] - y[i]));
    return res;
}

void L2sqr_ny(float* dis, const float* x, const float* y, size_t d,
              size_t ny) {
    for (size_t i = 0; i < ny; i++)
        dis[i] = L2sqr(x, y + i * d, d);
}

void inner_products_ny(float* ip, const float* x, const float* y, size_t d,
                       size_t ny) {
    for (size_t i = 0; i < ny; i++)
        ip[i] = inner_product(x, y + i * d, d);
}

void L2sqr_ny_y_transposed(float* dis, const float* x, const float* y,
                           const float* y_sqlen, size_t d, size_t d_offset,
                           size_t ny) {
    float x_sqlen = norm_L2sqr(x, d);
    for (size_t i = 0; i < ny; i++) {
        float dp = 0;
        for (size_t j = 0; j < d; j++)
            dp += x[j] * y[i + j * d_offset];
        dis[i] = x_sqlen + y_sqlen[i] - 2 * dp;
    }
}

void madd(size_t n, const float* a, float bf, const float* b, float* c) {
    for (size_t i = 0; i < n; i++)
        c[i] = a[i] + bf * b[i];
}

void add(size_t d, const float* a, const float* b, float* c) {
    for (size_t i = 0; i < d; i++)
        c[i] = a[i] + b[i];
}

void add_scalar(size_t d, const float* a, float b, float* c) {
    for (size_t i = 0; i < d; i++)
        c[i] = a[i] + b;
}

void sub(size_t d, const float* a, const float* b, float* c) {
    for (size_t i = 0; i < d; i++)
        c[i] = a[i] - b[i];
}

} // namespace

namespace fx {
const KernelTable kernels_generic = {
        "generic", L2sqr, inner_product, norm_L2sqr, L1, Linf,
        L2sqr_ny,  inner_products_ny,    L2sqr_ny_y_transposed,
        madd,      add,                  add_scalar, sub,
};
} // namespace fx
