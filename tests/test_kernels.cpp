/* test_kernels.cpp -- faissx's distance kernels (kernels/, docs/kernels.md).
 *
 * 1. Every kernel at every level this CPU runs, against a plain reference
 *    (double precision for sums; exact float for element-wise kernels):
 *    d = 1..300, aligned and unaligned pointers, zeros, large (1e18) and
 *    tiny (1e-20) magnitudes, NaN and inf.
 * 2. End to end: the indexes built by kernels_oracle -- a program linked
 *    against libfaiss.a alone, running faiss's own generic kernels -- give
 *    the same search results here (our kernels) up to float rounding, and
 *    indexes built here have the same recall on the SIFT sample. */
#include <criterion/criterion.h>

extern "C" {
#include "common.h"
}
#include "kernels/kernels.h"

#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

const char* const all_levels[] = {"generic", "avx2", "avx512"};

uint64_t rng_state;
double urand() { /* [-1, 1) */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / (double)(1ull << 52) - 1.0;
}

/* |got - ref| within the rounding of a float sum of n terms whose
 * magnitudes add up to mag (relative part) plus one subnormal ulp per
 * operation; NaN and inf must match exactly; a sum beyond FLT_MAX may
 * overflow to inf. */
bool close(float got, double ref, double mag, size_t n) {
    if (std::isnan(ref))
        return std::isnan(got);
    if (std::isinf(ref))
        return got == (float)ref;
    double tol = (double)(n + 4) * 1.2e-7 * mag + (double)(3 * n + 4) * 1.5e-45;
    if (std::fabs(ref) + tol > FLT_MAX && std::isinf(got))
        return (got > 0) == (ref > 0);
    return std::fabs((double)got - ref) <= tol;
}

struct Ref {
    double v, mag;
};
Ref ref_L2(const float* x, const float* y, size_t d) {
    Ref r{0, 0};
    for (size_t i = 0; i < d; i++) {
        double t = (double)x[i] - (double)y[i];
        r.v += t * t;
    }
    r.mag = r.v;
    return r;
}
Ref ref_IP(const float* x, const float* y, size_t d) {
    Ref r{0, 0};
    for (size_t i = 0; i < d; i++) {
        r.v += (double)x[i] * (double)y[i];
        r.mag += std::fabs((double)x[i] * (double)y[i]);
    }
    return r;
}
Ref ref_L1(const float* x, const float* y, size_t d) {
    Ref r{0, 0};
    for (size_t i = 0; i < d; i++)
        r.v += std::fabs((double)x[i] - (double)y[i]);
    r.mag = r.v;
    return r;
}
/* faiss's fmax: NaN terms are skipped. The difference is rounded to float
 * as the kernels do; the max itself is exact. */
float ref_Linf(const float* x, const float* y, size_t d) {
    float r = 0;
    for (size_t i = 0; i < d; i++) {
        float t = std::fabs(x[i] - y[i]);
        if (t > r)
            r = t;
    }
    return r;
}

/* x and y: d floats starting `off` floats into their own buffers. */
struct Pair {
    std::vector<float> bx, by;
    float *x, *y;
    Pair(size_t d, size_t off, double scale) : bx(d + 16), by(d + 16) {
        x = bx.data() + off;
        y = by.data() + off;
        for (size_t i = 0; i < d; i++) {
            x[i] = (float)(urand() * scale);
            y[i] = (float)(urand() * scale);
        }
    }
};

void check_pair(const char* level, const float* x, const float* y, size_t d,
                const char* what) {
    Ref r = ref_L2(x, y, d);
    float g = faiss::fvec_L2sqr(x, y, d);
    cr_assert(close(g, r.v, r.mag, d), "%s %s L2sqr d=%zu: %g vs %g", level, what, d,
              g, r.v);
    r = ref_IP(x, y, d);
    g = faiss::fvec_inner_product(x, y, d);
    cr_assert(close(g, r.v, r.mag, d), "%s %s inner_product d=%zu: %g vs %g", level,
              what, d, g, r.v);
    r = ref_IP(x, x, d);
    g = faiss::fvec_norm_L2sqr(x, d);
    cr_assert(close(g, r.v, r.mag, d), "%s %s norm_L2sqr d=%zu: %g vs %g", level,
              what, d, g, r.v);
    r = ref_L1(x, y, d);
    g = faiss::fvec_L1(x, y, d);
    cr_assert(close(g, r.v, r.mag, d), "%s %s L1 d=%zu: %g vs %g", level, what, d, g,
              r.v);
    float li = ref_Linf(x, y, d);
    g = faiss::fvec_Linf(x, y, d);
    cr_assert(g == li || (std::isnan(g) && std::isnan(li)),
              "%s %s Linf d=%zu: %g vs %g", level, what, d, g, li);
    /* The _ref versions: faiss's one-term-at-a-time code. */
    cr_assert(close(faiss::fvec_L2sqr_ref(x, y, d), ref_L2(x, y, d).v,
                    ref_L2(x, y, d).mag, d), "%s L2sqr_ref d=%zu", what, d);
    cr_assert(close(faiss::fvec_inner_product_ref(x, y, d), ref_IP(x, y, d).v,
                    ref_IP(x, y, d).mag, d), "%s inner_product_ref d=%zu", what, d);
    cr_assert(close(faiss::fvec_norm_L2sqr_ref(x, d), ref_IP(x, x, d).v,
                    ref_IP(x, x, d).mag, d), "%s norm_L2sqr_ref d=%zu", what, d);
    cr_assert(close(faiss::fvec_L1_ref(x, y, d), ref_L1(x, y, d).v,
                    ref_L1(x, y, d).mag, d), "%s L1_ref d=%zu", what, d);
    float lr = faiss::fvec_Linf_ref(x, y, d);
    cr_assert(lr == li || (std::isnan(lr) && std::isnan(li)), "%s Linf_ref d=%zu",
              what, d);
}

/* Element-wise kernels: one rounding per element, so exactly the bits of
 * the scalar expression (this file is built with -ffp-contract=off). */
void check_elementwise(const char* level, size_t n, size_t off, double scale) {
    Pair p(n, off, scale);
    std::vector<float> bc(n + 16), exp(n);
    float* c = bc.data() + (off ? 3 : 0);
    float bf = (float)urand() * 3;
    faiss::fvec_madd(n, p.x, bf, p.y, c);
    for (size_t i = 0; i < n; i++) {
        exp[i] = p.x[i] + bf * p.y[i];
        cr_assert(std::memcmp(&exp[i], &c[i], 4) == 0, "%s madd n=%zu i=%zu", level, n, i);
    }
    int am = faiss::fvec_madd_and_argmin(n, p.x, bf, p.y, c);
    float vmin = 1e20f;
    int imin = -1;
    for (size_t i = 0; i < n; i++) {
        cr_assert(std::memcmp(&exp[i], &c[i], 4) == 0, "%s madd_and_argmin n=%zu", level, n);
        if (exp[i] < vmin) {
            vmin = exp[i];
            imin = (int)i;
        }
    }
    cr_assert_eq(am, imin, "%s madd_and_argmin n=%zu: %d vs %d", level, n, am, imin);
    faiss::fvec_add(n, p.x, p.y, c);
    for (size_t i = 0; i < n; i++) {
        float e = p.x[i] + p.y[i];
        cr_assert(std::memcmp(&e, &c[i], 4) == 0, "%s add n=%zu", level, n);
    }
    faiss::fvec_add(n, p.x, bf, c);
    for (size_t i = 0; i < n; i++) {
        float e = p.x[i] + bf;
        cr_assert(std::memcmp(&e, &c[i], 4) == 0, "%s add scalar n=%zu", level, n);
    }
    faiss::fvec_sub(n, p.x, p.y, c);
    for (size_t i = 0; i < n; i++) {
        float e = p.x[i] - p.y[i];
        cr_assert(std::memcmp(&e, &c[i], 4) == 0, "%s sub n=%zu", level, n);
    }
    /* In place (c == a), as faiss allows. */
    std::vector<float> a(p.x, p.x + n);
    faiss::fvec_sub(n, a.data(), p.y, a.data());
    for (size_t i = 0; i < n; i++) {
        float e = p.x[i] - p.y[i];
        cr_assert(std::memcmp(&e, &a[i], 4) == 0, "%s sub in place n=%zu", level, n);
    }
    /* Nothing written past c[n - 1]. */
    for (size_t i = n; i < n + 16 - (off ? 3 : 0); i++)
        cr_assert_eq(c[i], 0.0f, "%s wrote past the end (n=%zu)", level, n);
}

void check_ny(const char* level, size_t d, size_t off) {
    const size_t ny = 1 + d % 19;
    std::vector<float> bx(d + 16), by(d * ny + 16), dis(ny + 1), dis2(ny + 1);
    float* x = bx.data() + off;
    float* y = by.data() + off;
    for (size_t i = 0; i < d; i++)
        x[i] = (float)urand();
    for (size_t i = 0; i < d * ny; i++)
        y[i] = (float)urand();
    faiss::fvec_L2sqr_ny(dis.data(), x, y, d, ny);
    for (size_t i = 0; i < ny; i++) {
        Ref r = ref_L2(x, y + i * d, d);
        cr_assert(close(dis[i], r.v, r.mag, d), "%s L2sqr_ny d=%zu i=%zu", level, d, i);
    }
    size_t nn = faiss::fvec_L2sqr_ny_nearest(dis2.data(), x, y, d, ny);
    cr_assert_lt(nn, ny);
    for (size_t i = 0; i < ny; i++)
        cr_assert(dis2[nn] <= dis2[i] && (i >= nn || dis2[i] > dis2[nn]),
                  "%s L2sqr_ny_nearest d=%zu: %zu is not the first minimum", level, d, nn);
    cr_assert_eq(faiss::fvec_L2sqr_ny_nearest_ref(dis2.data(), x, y, d, ny), nn);
    faiss::fvec_L2sqr_ny_ref(dis2.data(), x, y, d, ny);
    cr_assert(std::memcmp(dis.data(), dis2.data(), ny * 4) == 0);
    faiss::fvec_inner_products_ny(dis.data(), x, y, d, ny);
    for (size_t i = 0; i < ny; i++) {
        Ref r = ref_IP(x, y + i * d, d);
        cr_assert(close(dis[i], r.v, r.mag, d), "%s inner_products_ny d=%zu", level, d);
    }
    faiss::fvec_inner_products_ny_ref(dis2.data(), x, y, d, ny);
    cr_assert(std::memcmp(dis.data(), dis2.data(), ny * 4) == 0);

    /* Transposed: y[i + j * d_offset] is component j of vector i. */
    const size_t nt = 1 + (d * 7) % 37, d_offset = nt + d % 5;
    std::vector<float> byt(d * d_offset + 16), ysq(nt + 16), out(nt + 16, 0.f),
            out2(nt + 16);
    float* yt = byt.data() + off;
    for (size_t i = 0; i < d * d_offset; i++)
        yt[i] = (float)urand();
    std::vector<float> yi(d);
    for (size_t i = 0; i < nt; i++) {
        for (size_t j = 0; j < d; j++)
            yi[j] = yt[i + j * d_offset];
        ysq[i] = (float)ref_IP(yi.data(), yi.data(), d).v;
    }
    size_t tn = faiss::fvec_L2sqr_ny_nearest_y_transposed(out.data(), x, yt, ysq.data(),
                                                          d, d_offset, nt);
    cr_assert_lt(tn, nt);
    for (size_t i = 0; i < nt; i++) {
        for (size_t j = 0; j < d; j++)
            yi[j] = yt[i + j * d_offset];
        Ref r = ref_L2(x, yi.data(), d);
        /* |x|^2 + |y|^2 - 2<x,y>: rounding relative to the norms. */
        double mag = ref_IP(x, x, d).v + ysq[i] + 2 * ref_IP(x, yi.data(), d).mag;
        cr_assert(close(out[i], r.v, mag, d), "%s L2sqr_ny_nearest_y_transposed d=%zu i=%zu:"
                  " %g vs %g", level, d, i, out[i], r.v);
        cr_assert(out[tn] <= out[i] && (i >= tn || out[i] > out[tn]));
    }
    for (size_t i = nt; i < nt + 16; i++)
        cr_assert_eq(out[i], 0.f, "%s y_transposed wrote past the end", level);
    faiss::fvec_L2sqr_ny_y_transposed_ref(out2.data(), x, yt, ysq.data(), d, d_offset, nt);
    for (size_t i = 0; i < nt; i++) {
        for (size_t j = 0; j < d; j++)
            yi[j] = yt[i + j * d_offset];
        double mag = ref_IP(x, x, d).v + ysq[i] + 2 * ref_IP(x, yi.data(), d).mag;
        cr_assert(close(out2[i], ref_L2(x, yi.data(), d).v, mag, d));
    }
    cr_assert_eq(faiss::fvec_L2sqr_ny_nearest_y_transposed_ref(out2.data(), x, yt, ysq.data(),
                                                               d, d_offset, nt),
                 (size_t)(std::min_element(out2.begin(), out2.begin() + nt) - out2.begin()));
}

void check_special(const char* level, size_t d) {
    /* Zeros: exactly 0. */
    std::vector<float> z(d + 1, 0.f), w(d + 1);
    cr_assert_eq(faiss::fvec_L2sqr(z.data(), z.data() + 1, d), 0.f);
    cr_assert_eq(faiss::fvec_inner_product(z.data(), z.data() + 1, d), 0.f);
    cr_assert_eq(faiss::fvec_L1(z.data(), z.data(), d), 0.f);
    cr_assert_eq(faiss::fvec_Linf(z.data(), z.data(), d), 0.f);
    /* One NaN or inf anywhere. */
    const float specials[] = {NAN, INFINITY, -INFINITY};
    for (float s : specials) {
        for (size_t pos : {(size_t)0, d / 2, d - 1}) {
            Pair p(d, 1, 1.0);
            p.x[pos] = s;
            check_pair(level, p.x, p.y, d, std::isnan(s) ? "NaN" : "inf");
            p.y[pos] = s; /* inf - inf = NaN */
            check_pair(level, p.x, p.y, d, std::isnan(s) ? "NaN,NaN" : "inf,inf");
        }
    }
    (void)w;
}

void check_level(const char* level) {
    cr_assert_eq(fx_kernels_select(level), 0, "cannot select %s", level);
    cr_assert_str_eq(faissx_simd_level(), level);
    rng_state = 42;
    const double scales[] = {1.0, 1e18, 1e-20};
    for (size_t d = 1; d <= 300; d++) {
        for (size_t off = 0; off <= 1; off++) {
            for (double sc : scales) {
                Pair p(d, off, sc);
                check_pair(level, p.x, p.y, d, sc == 1.0 ? "unit" : sc > 1 ? "large" : "tiny");
            }
            check_elementwise(level, d, off, 1.0);
            check_ny(level, d, off);
        }
        check_elementwise(level, d, 1, 1e18);
        check_special(level, d);
    }
}

/* PQ tables for 2-d sub-vectors: bit-identical to the scalar expression. */
void check_pq_dsub2(const char* level) {
    cr_assert_eq(fx_kernels_select(level), 0);
    rng_state = 7;
    for (size_t M : {1, 3, 4, 5, 9}) {
        for (size_t ksub : {8, 16, 64}) {
            size_t d = 2 * M, nx = 3;
            std::vector<float> cent(M * ksub * 2), x(nx * d), tab(nx * M * ksub);
            for (float& v : cent)
                v = (float)urand();
            for (float& v : x)
                v = (float)urand();
            for (bool ip : {false, true}) {
                faiss::compute_PQ_dis_tables_dsub2(d, ksub, cent.data(), nx, x.data(), ip,
                                                   tab.data());
                for (size_t i = 0; i < nx; i++)
                    for (size_t m = 0; m < M; m++)
                        for (size_t k = 0; k < ksub; k++) {
                            const float* c = &cent[(m * ksub + k) * 2];
                            const float* xi = &x[i * d + 2 * m];
                            float e;
                            if (ip) {
                                float p0 = xi[0] * c[0], p1 = xi[1] * c[1];
                                e = p0 + p1;
                            } else {
                                float t0 = xi[0] - c[0], t1 = xi[1] - c[1];
                                float p0 = t0 * t0, p1 = t1 * t1;
                                e = p0 + p1;
                            }
                            float g = tab[(i * M + m) * ksub + k];
                            cr_assert(std::memcmp(&e, &g, 4) == 0,
                                      "dsub2 M=%zu ksub=%zu ip=%d", M, ksub, ip);
                        }
            }
        }
    }
    std::vector<float> cent(12 * 2), x(4), tab(24);
    bool threw = false;
    try {
        faiss::compute_PQ_dis_tables_dsub2(4, 12, cent.data(), 1, x.data(), false,
                                           tab.data());
    } catch (const faiss::FaissException& e) {
        threw = std::strstr(e.what(), "ksub % 8 == 0") != nullptr;
    }
    cr_assert(threw, "ksub not a multiple of 8 must throw");
}

} // namespace

Test(kernels, levels_and_selection) {
    int n = 0;
    for (const char* l : all_levels)
        n += fx_kernels_supported(l);
    cr_assert_geq(n, 1);
    cr_assert_eq(fx_kernels_supported("generic"), 1);
    cr_assert_eq(fx_kernels_supported("sse9"), 0);
    cr_assert_eq(fx_kernels_supported(nullptr), 0);
    const char* before = faissx_simd_level();
    cr_assert_eq(fx_kernels_select("sse9"), -1);
    cr_assert_str_eq(faissx_simd_level(), before, "a failed select changed the level");
#if defined(__x86_64__)
    __builtin_cpu_init();
    cr_assert_eq(fx_kernels_supported("avx2"),
                 __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0);
    cr_assert_eq(fx_kernels_supported("avx512"),
                 __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") ? 1 : 0);
#endif
}

Test(kernels, every_kernel_every_level, .timeout = 300) {
    int ran = 0;
    for (const char* l : all_levels) {
        if (!fx_kernels_supported(l))
            continue;
        check_level(l);
        check_pq_dsub2(l);
        ran++;
    }
    cr_assert_geq(ran, 1);
    cr_log_info("levels checked: %d", ran);
}

/* ---- end to end --------------------------------------------------------- */

namespace {

struct Sift {
    float *xb = nullptr, *xq = nullptr;
    int32_t* gt = nullptr;
    size_t nb = 0, nq = 0, ngt = 0;
    int d = 0, dq = 0, gtd = 0;
    Sift() {
        xb = fxt_load_fvecs("sift5k_base.fvecs", &nb, &d);
        xq = fxt_load_fvecs("sift5k_query.fvecs", &nq, &dq);
        gt = fxt_load_ivecs("sift5k_groundtruth.ivecs", &ngt, &gtd);
    }
    ~Sift() {
        free(xb);
        free(xq);
        free(gt);
    }
};

const int K = 10;

void set_params(faiss::Index* index) {
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index))
        ivf->nprobe = 8;
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index))
        hnsw->hnsw.efSearch = 64;
}

std::string oracle_dir() {
    static std::string dir;
    if (dir.empty()) {
        const char* bin = std::getenv("FXT_KERNELS_ORACLE");
        cr_assert(bin != nullptr, "FXT_KERNELS_ORACLE is not set (run through meson test)");
        dir = fxt_tmp_path("oracle");
        cr_assert_eq(mkdir(dir.c_str(), 0700), 0);
        std::string cmd = std::string("'") + bin + "' '" + FXT_DATA_DIR + "' '" + dir + "'";
        cr_assert_eq(std::system(cmd.c_str()), 0, "%s failed", cmd.c_str());
    }
    return dir;
}

void same_results(const char* kind) {
    Sift s;
    std::string dir = oracle_dir();
    std::unique_ptr<faiss::Index> index(
            faiss::read_index((dir + "/" + kind + ".index").c_str()));
    set_params(index.get());
    std::vector<float> D(s.nq * K), Do(s.nq * K);
    std::vector<faiss::Index::idx_t> I(s.nq * K), Io(s.nq * K);
    index->search(s.nq, s.xq, K, D.data(), I.data());
    FILE* f = std::fopen((dir + "/" + kind + ".res").c_str(), "rb");
    cr_assert(f != nullptr);
    cr_assert_eq(std::fread(Do.data(), 4, Do.size(), f), Do.size());
    cr_assert_eq(std::fread(Io.data(), 8, Io.size(), f), Io.size());
    std::fclose(f);
    size_t differ = 0, ties = 0;
    for (size_t q = 0; q < s.nq; q++) {
        for (int j = 0; j < K; j++) {
            size_t at = q * K + j;
            float tol = 1e-5f * std::max(1.0f, std::fabs(Do[at]));
            cr_assert(std::fabs(D[at] - Do[at]) <= tol,
                      "%s q=%zu rank %d: distance %.9g, generic build %.9g", kind, q, j,
                      D[at], Do[at]);
            if (I[at] != Io[at]) {
                differ++;
                /* Only where the generic build itself has a (near) tie. */
                bool tie = (j > 0 && std::fabs(Do[at] - Do[at - 1]) <= tol) ||
                           (j + 1 < K && std::fabs(Do[at] - Do[at + 1]) <= tol);
                cr_assert(tie, "%s q=%zu rank %d: label %lld, generic build %lld (no tie)",
                          kind, q, j, (long long)I[at], (long long)Io[at]);
                ties++;
            }
        }
    }
    cr_log_info("%s: %zu of %zu labels differ, all at ties", kind, differ, D.size());
    (void)ties;
}

double recall(const faiss::Index::idx_t* I, const Sift& s, int at) {
    return fxt_recall_at(reinterpret_cast<const idx_t*>(I), s.nq, K, s.gt, s.gtd, at);
}

/* An index built here (our kernels) has the recall of the generic build's. */
void same_recall(const char* kind, const char* factory) {
    Sift s;
    std::string dir = oracle_dir();
    std::vector<float> D(s.nq * K);
    std::vector<faiss::Index::idx_t> I(s.nq * K), Io(s.nq * K);
    FILE* f = std::fopen((dir + "/" + kind + ".res").c_str(), "rb");
    cr_assert(f != nullptr);
    cr_assert_eq(std::fseek(f, (long)(s.nq * K * 4), SEEK_SET), 0);
    cr_assert_eq(std::fread(Io.data(), 8, Io.size(), f), Io.size());
    std::fclose(f);
    std::unique_ptr<faiss::Index> index(faiss::index_factory(s.d, factory));
    index->train(s.nb, s.xb);
    index->add(s.nb, s.xb);
    set_params(index.get());
    index->search(s.nq, s.xq, K, D.data(), I.data());
    for (int at : {1, 10}) {
        double ours = recall(I.data(), s, at), gen = recall(Io.data(), s, at);
        cr_log_info("%s recall@%d: %.4f here (%s), %.4f generic build", kind, at, ours,
                    faissx_simd_level(), gen);
        cr_assert(std::fabs(ours - gen) <= 0.02, "%s recall@%d: %.4f vs generic %.4f", kind,
                  at, ours, gen);
    }
    if (std::string(kind) == "Flat")
        cr_assert_gt(recall(I.data(), s, 1), 0.95);
}

} // namespace

TestSuite(kernels_e2e, .timeout = 300);

Test(kernels_e2e, search_same_as_generic_build) {
    same_results("Flat");
    same_results("IVF");
    same_results("HNSW");
}

Test(kernels_e2e, recall_same_as_generic_build) {
    same_recall("Flat", "Flat");
    same_recall("IVF", "IVF64,Flat");
    same_recall("HNSW", "HNSW32");
}
