/* dispatch.cpp -- the faiss:: distance kernels that faiss's own code calls
 * (every symbol of libfaiss.a's distances_simd.cpp.o), each forwarding to the
 * table chosen for this CPU; the scalar _ref versions; the choice itself.
 * See docs/kernels.md. */
#include "kernels/kernels.h"

#include <faissx/faissx.h>

#include <faiss/impl/FaissAssert.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

extern "C" {
const int fx_kernels_linked = 1;
}

namespace {

enum Level { GENERIC = 0, AVX2 = 1, AVX512 = 2, NLEVELS = 3 };
const char* const level_names[NLEVELS] = {"generic", "avx2", "avx512"};

bool cpu_has(int level) {
    switch (level) {
    case GENERIC:
        return true;
#if defined(FX_KERNELS_X86)
    case AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default:
        return false;
    }
}

const fx::KernelTable* table_of(int level) {
    switch (level) {
#if defined(FX_KERNELS_X86)
    case AVX2:
        return &fx::kernels_avx2;
    case AVX512:
        return &fx::kernels_avx512;
#endif
    default:
        return &fx::kernels_generic;
    }
}

int level_by_name(const char* s) {
    for (int l = 0; l < NLEVELS; l++)
        if (std::strcmp(s, level_names[l]) == 0)
            return l;
    return -1;
}

/* The best level this CPU runs, lowered by FAISSX_SIMD when that names a
 * lower one (an unknown name or a level above the CPU's is ignored). */
const fx::KernelTable* choose() {
    int best = GENERIC;
    for (int l = NLEVELS - 1; l > GENERIC; l--) {
        if (cpu_has(l)) {
            best = l;
            break;
        }
    }
    const char* env = std::getenv("FAISSX_SIMD");
    if (env != nullptr) {
        int want = level_by_name(env);
        if (want >= 0 && want < best)
            best = want;
    }
    return table_of(best);
}

/* Chosen at the first call (possibly during static initialisation, from any
 * thread): concurrent first calls compute the same table. */
std::atomic<const fx::KernelTable*> current{nullptr};

inline const fx::KernelTable& K() {
    const fx::KernelTable* t = current.load(std::memory_order_acquire);
    if (__builtin_expect(t == nullptr, 0)) {
        t = choose();
        current.store(t, std::memory_order_release);
    }
    return *t;
}

size_t argmin_strict(const float* v, size_t n) {
    size_t best = 0;
    float min_dis = HUGE_VALF;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < min_dis) {
            min_dis = v[i];
            best = i;
        }
    }
    return best;
}

} // namespace

extern "C" int fx_kernels_supported(const char* level) {
    int l = level ? level_by_name(level) : -1;
    return l >= 0 && cpu_has(l) ? 1 : 0;
}

extern "C" int fx_kernels_select(const char* level) {
    if (!fx_kernels_supported(level))
        return -1;
    current.store(table_of(level_by_name(level)), std::memory_order_release);
    return 0;
}

extern "C" const char* faissx_simd_level(void) {
    return K().name;
}

namespace faiss {

/* ---- dispatched -------------------------------------------------------- */

float fvec_L2sqr(const float* x, const float* y, size_t d) {
    return K().L2sqr(x, y, d);
}

float fvec_inner_product(const float* x, const float* y, size_t d) {
    return K().inner_product(x, y, d);
}

float fvec_norm_L2sqr(const float* x, size_t d) {
    return K().norm_L2sqr(x, d);
}

float fvec_L1(const float* x, const float* y, size_t d) {
    return K().L1(x, y, d);
}

float fvec_Linf(const float* x, const float* y, size_t d) {
    return K().Linf(x, y, d);
}

void fvec_L2sqr_ny(float* dis, const float* x, const float* y, size_t d,
                   size_t ny) {
    K().L2sqr_ny(dis, x, y, d, ny);
}

void fvec_inner_products_ny(float* ip, const float* x, const float* y,
                            size_t d, size_t ny) {
    K().inner_products_ny(ip, x, y, d, ny);
}

size_t fvec_L2sqr_ny_nearest(float* distances_tmp_buffer, const float* x,
                             const float* y, size_t d, size_t ny) {
    K().L2sqr_ny(distances_tmp_buffer, x, y, d, ny);
    return argmin_strict(distances_tmp_buffer, ny);
}

size_t fvec_L2sqr_ny_nearest_y_transposed(float* distances_tmp_buffer,
                                          const float* x, const float* y,
                                          const float* y_sqlen, size_t d,
                                          size_t d_offset, size_t ny) {
    K().L2sqr_ny_y_transposed(distances_tmp_buffer, x, y, y_sqlen, d,
                              d_offset, ny);
    return argmin_strict(distances_tmp_buffer, ny);
}

void fvec_madd(size_t n, const float* a, float bf, const float* b, float* c) {
    K().madd(n, a, bf, b, c);
}

/* As faiss: the first index of the smallest c[i] below 1e20, else -1. */
int fvec_madd_and_argmin(size_t n, const float* a, float bf, const float* b,
                         float* c) {
    K().madd(n, a, bf, b, c);
    float vmin = 1e20f;
    int imin = -1;
    for (size_t i = 0; i < n; i++) {
        if (c[i] < vmin) {
            vmin = c[i];
            imin = static_cast<int>(i);
        }
    }
    return imin;
}

void fvec_add(size_t d, const float* a, const float* b, float* c) {
    K().add(d, a, b, c);
}

void fvec_add(size_t d, const float* a, float b, float* c) {
    K().add_scalar(d, a, b, c);
}

void fvec_sub(size_t d, const float* a, const float* b, float* c) {
    K().sub(d, a, b, c);
}

/* PQ distance tables for 2-d sub-vectors: M = d / 2 sub-quantizers of ksub
 * centroids (all_centroids is M x ksub x 2); dis_tables is nx x M x ksub.
 * One rounding per product and one per sum, as faiss computes it: the
 * result is bit-identical. Scalar: the compiler vectorizes the k loop. */
void compute_PQ_dis_tables_dsub2(size_t d, size_t ksub,
                                 const float* all_centroids, size_t nx,
                                 const float* x, bool is_inner_product,
                                 float* dis_tables) {
    FAISS_THROW_IF_NOT(ksub % 8 == 0);
    size_t M = d / 2;
    for (size_t i = 0; i < nx; i++) {
        const float* xi = x + i * d;
        for (size_t m = 0; m < M; m++) {
            const float x0 = xi[2 * m], x1 = xi[2 * m + 1];
            const float* c = all_centroids + m * ksub * 2;
            float* out = dis_tables + (i * M + m) * ksub;
            if (is_inner_product) {
                for (size_t k = 0; k < ksub; k++) {
                    float p0 = x0 * c[2 * k];
                    float p1 = x1 * c[2 * k + 1];
                    out[k] = p0 + p1;
                }
            } else {
                for (size_t k = 0; k < ksub; k++) {
                    float t0 = x0 - c[2 * k];
                    float t1 = x1 - c[2 * k + 1];
                    float p0 = t0 * t0;
                    float p1 = t1 * t1;
                    out[k] = p0 + p1;
                }
            }
        }
    }
}

/* ---- the scalar references (faiss's definitions: one term at a time) --- */

float fvec_L2sqr_ref(const float* x, const float* y, size_t d) {
    float res = 0;
    for (size_t i = 0; i < d; i++) {
        const float t = x[i] - y[i];
        res += t * t;
    }
    return res;
}

float fvec_inner_product_ref(const float* x, const float* y, size_t d) {
    float res = 0;
    for (size_t i = 0; i < d; i++)
        res += x[i] * y[i];
    return res;
}

float fvec_norm_L2sqr_ref(const float* x, size_t d) {
    double res = 0; /* faiss accumulates this one in double */
    for (size_t i = 0; i < d; i++)
        res += x[i] * x[i];
    return static_cast<float>(res);
}

float fvec_L1_ref(const float* x, const float* y, size_t d) {
    float res = 0;
    for (size_t i = 0; i < d; i++)
        res += std::fabs(x[i] - y[i]);
    return res;
}

/* fmax: a NaN term is skipped, as in faiss. */
float fvec_Linf_ref(const float* x, const float* y, size_t d) {
    float res = 0;
    for (size_t i = 0; i < d; i++)
        res = std::fmax(res, std::fabs(x[i] - y[i]));
    return res;
}

void fvec_L2sqr_ny_ref(float* dis, const float* x, const float* y, size_t d,
                       size_t ny) {
    for (size_t i = 0; i < ny; i++)
        dis[i] = fvec_L2sqr(x, y + i * d, d);
}

void fvec_inner_products_ny_ref(float* ip, const float* x, const float* y,
                                size_t d, size_t ny) {
    for (size_t i = 0; i < ny; i++)
        ip[i] = fvec_inner_product(x, y + i * d, d);
}

size_t fvec_L2sqr_ny_nearest_ref(float* distances_tmp_buffer, const float* x,
                                 const float* y, size_t d, size_t ny) {
    fvec_L2sqr_ny(distances_tmp_buffer, x, y, d, ny);
    return argmin_strict(distances_tmp_buffer, ny);
}

void fvec_L2sqr_ny_y_transposed_ref(float* dis, const float* x, const float* y,
                                    const float* y_sqlen, size_t d,
                                    size_t d_offset, size_t ny) {
    float x_sqlen = 0;
    for (size_t j = 0; j < d; j++)
        x_sqlen += x[j] * x[j];
    for (size_t i = 0; i < ny; i++) {
        float dp = 0;
        for (size_t j = 0; j < d; j++)
            dp += x[j] * y[i + j * d_offset];
        dis[i] = x_sqlen + y_sqlen[i] - 2 * dp;
    }
}

size_t fvec_L2sqr_ny_nearest_y_transposed_ref(float* distances_tmp_buffer,
                                              const float* x, const float* y,
                                              const float* y_sqlen, size_t d,
                                              size_t d_offset, size_t ny) {
    fvec_L2sqr_ny_y_transposed_ref(distances_tmp_buffer, x, y, y_sqlen, d,
                                   d_offset, ny);
    return argmin_strict(distances_tmp_buffer, ny);
}

} // namespace faiss
