/* bench_kernels.cpp -- faissx's distance kernels (docs/kernels.md) against
 * Debian's generic faiss kernels, in one run.
 *
 * The substitution happens at link time, so this file is built twice:
 * bench_kernels (with faissx: our kernels) and bench_kernels_faiss (linked
 * against libfaiss.a alone: faiss's own). bench_kernels is the driver: for
 * each point it runs `bench_kernels --point P` and `bench_kernels_faiss
 * --point P` as child processes, alternately (--reps times), and prints the
 * medians and their ratio.
 *
 *   bench_kernels [--n N] [--hnsw-n N] [--nq Q] [--reps R] [--quick]
 *                 [--baseline PATH] [--point flat|hnsw|ivf]
 *
 * Points (random uniform d=128 data for timing; recall on the SIFT sample,
 * ../shared/data/ngt-sift5k, with the same parameters scaled to 5k):
 *   flat  Flat N x 128 (default 100k) single-query latency, k=10; plus the
 *         time to stream the N x 128 floats once (memory-bandwidth bound)
 *   hnsw  HNSW32 build of --hnsw-n vectors (default 20k), then single-query
 *         latency at efSearch 64
 *   ivf   IVF1024,Flat on N vectors, single-query latency at nprobe 16
 *         (recall: IVF64 nprobe 1 on SIFT, the same probed fraction)
 * Everything runs on one thread (OpenMP and OpenBLAS). */
#include "bench_util.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>

#ifdef FXB_OURS
#include <faissx/faissx.h>
#endif

#include <omp.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

long long g_n = 100000, g_hnsw_n = 20000, g_nq = 200, g_reps = 1;
const int D = 128, K = 10;

std::vector<float> uniform(size_t n, uint64_t seed) {
    std::vector<float> v(n * D);
    for (float& f : v) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        f = (float)((z ^ (z >> 31)) >> 40) / (float)(1 << 24);
    }
    return v;
}

std::vector<float> fvecs(const char* name, size_t* n) {
    std::string path = std::string(FXB_DATA_DIR) + "/" + name;
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        std::perror(path.c_str());
        std::exit(2);
    }
    std::vector<float> out;
    int32_t dim;
    *n = 0;
    while (std::fread(&dim, 4, 1, f) == 1 && dim == D) {
        out.resize(out.size() + D);
        if (std::fread(out.data() + out.size() - D, 4, D, f) != D)
            std::exit(2);
        ++*n;
    }
    std::fclose(f);
    return out;
}

/* recall@1 and @10 of `index` (built by `build` on the SIFT sample). */
template <class Build>
void sift_recall(Build build, double* r1, double* r10) {
    size_t nb, nq;
    std::vector<float> xb = fvecs("sift5k_base.fvecs", &nb);
    std::vector<float> xq = fvecs("sift5k_query.fvecs", &nq);
    std::string gpath = std::string(FXB_DATA_DIR) + "/sift5k_groundtruth.ivecs";
    FILE* f = std::fopen(gpath.c_str(), "rb");
    if (!f)
        std::exit(2);
    std::vector<int32_t> gt;
    int32_t gd;
    while (std::fread(&gd, 4, 1, f) == 1) {
        gt.resize(gt.size() + gd);
        if (std::fread(gt.data() + gt.size() - gd, 4, gd, f) != (size_t)gd)
            std::exit(2);
    }
    std::fclose(f);
    std::unique_ptr<faiss::Index> index(build(nb, xb.data()));
    std::vector<float> Dd(nq * K);
    std::vector<faiss::Index::idx_t> I(nq * K);
    index->search(nq, xq.data(), K, Dd.data(), I.data());
    size_t h1 = 0, h10 = 0;
    for (size_t q = 0; q < nq; q++) {
        int32_t t = gt[q * gd];
        h1 += I[q * K] == t;
        for (int j = 0; j < K; j++)
            if (I[q * K + j] == t) {
                h10++;
                break;
            }
    }
    *r1 = (double)h1 / nq;
    *r10 = (double)h10 / nq;
}

/* Median single-query latency (seconds) over g_nq queries, after 5 warm-up
 * queries. */
double query_latency(const faiss::Index& index, const std::vector<float>& xq) {
    std::vector<double> t(g_nq);
    float dis[K];
    faiss::Index::idx_t lab[K];
    for (int i = 0; i < 5; i++)
        index.search(1, xq.data() + (size_t)i * D, K, dis, lab);
    for (long long i = 0; i < g_nq; i++) {
        double t0 = bench_now();
        index.search(1, xq.data() + (size_t)i * D, K, dis, lab);
        t[i] = bench_now() - t0;
    }
    return bench_median(t.data(), (int)g_nq);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) float stream_sum(const float* x, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    float r[8];
    _mm256_storeu_ps(r, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    float s = r[0] + r[1] + r[2] + r[3] + r[4] + r[5] + r[6] + r[7];
    for (; i < n; i++)
        s += x[i];
    return s;
}
#else
float stream_sum(const float* x, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < n; i++)
        s0 += x[i];
    return s0 + s1 + s2 + s3;
}
#endif

/* Time to read the database once (median of 9), the bound for a Flat
 * query that must read every vector. */
double stream_time(const std::vector<float>& xb) {
    std::vector<double> t(9);
    volatile float sink = 0;
    for (int r = 0; r < 9; r++) {
        double t0 = bench_now();
        sink = sink + stream_sum(xb.data(), xb.size());
        t[r] = bench_now() - t0;
    }
    return bench_median(t.data(), 9);
}

int run_point(const std::string& p) {
    std::vector<float> xq = uniform((size_t)g_nq + 5, 2);
    double r1 = 0, r10 = 0;
    if (p == "flat") {
        std::vector<float> xb = uniform((size_t)g_n, 1);
        faiss::IndexFlatL2 index(D);
        index.add(g_n, xb.data());
        double lat = query_latency(index, xq);
        double bound = stream_time(xb);
        sift_recall([](size_t n, const float* x) {
            auto* ix = new faiss::IndexFlatL2(D);
            ix->add(n, x);
            return ix;
        }, &r1, &r10);
        std::printf("%.9g %.4f %.4f %.9g\n", lat, r1, r10, bound);
    } else if (p == "hnsw") {
        std::vector<float> xb = uniform((size_t)g_hnsw_n, 1);
        faiss::IndexHNSWFlat index(D, 32);
        double t0 = bench_now();
        index.add(g_hnsw_n, xb.data());
        double build = bench_now() - t0;
        index.hnsw.efSearch = 64;
        double lat = query_latency(index, xq);
        sift_recall([](size_t n, const float* x) {
            auto* ix = new faiss::IndexHNSWFlat(D, 32);
            ix->add(n, x);
            ix->hnsw.efSearch = 64;
            return ix;
        }, &r1, &r10);
        std::printf("%.9g %.4f %.4f %.9g\n", lat, r1, r10, build);
    } else if (p == "ivf") {
        std::vector<float> xb = uniform((size_t)g_n, 1);
        long long nlist = g_n >= 100000 ? 1024 : g_n / 100;
        std::unique_ptr<faiss::Index> index(faiss::index_factory(
                D, ("IVF" + std::to_string(nlist) + ",Flat").c_str()));
        index->train(g_n, xb.data());
        index->add(g_n, xb.data());
        dynamic_cast<faiss::IndexIVF*>(index.get())->nprobe =
                nlist >= 1024 ? 16 : (nlist * 16 + 1023) / 1024;
        double lat = query_latency(*index, xq);
        sift_recall([](size_t n, const float* x) {
            faiss::Index* ix = faiss::index_factory(D, "IVF64,Flat");
            ix->train(n, x);
            ix->add(n, x);
            dynamic_cast<faiss::IndexIVF*>(ix)->nprobe = 1;
            return ix;
        }, &r1, &r10);
        std::printf("%.9g %.4f %.4f 0\n", lat, r1, r10);
    } else {
        std::fprintf(stderr, "unknown point %s\n", p.c_str());
        return 2;
    }
    return 0;
}

#ifdef FXB_OURS
struct Result {
    double v, r1, r10, extra;
};

bool run_child(const std::string& bin, const std::string& point, Result* r) {
    std::string cmd = "'" + bin + "' --point " + point + " --n " + std::to_string(g_n) +
                      " --hnsw-n " + std::to_string(g_hnsw_n) + " --nq " +
                      std::to_string(g_nq);
    FILE* p = popen(cmd.c_str(), "r");
    if (!p)
        return false;
    int got = std::fscanf(p, "%lf %lf %lf %lf", &r->v, &r->r1, &r->r10, &r->extra);
    return pclose(p) == 0 && got == 4;
}

std::string self_path() {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return "bench_kernels";
    buf[n] = 0;
    return buf;
}
#endif

} // namespace

int main(int argc, char** argv) {
    std::string point, baseline;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        long long* num = a == "--n"        ? &g_n
                         : a == "--hnsw-n" ? &g_hnsw_n
                         : a == "--nq"     ? &g_nq
                         : a == "--reps"   ? &g_reps
                                           : nullptr;
        if (num && i + 1 < argc && bench_parse_ll(argv[i + 1], 1, num) == 0) {
            i++;
        } else if (a == "--point" && i + 1 < argc) {
            point = argv[++i];
        } else if (a == "--baseline" && i + 1 < argc) {
            baseline = argv[++i];
        } else if (a == "--quick") {
            g_n = 5000;
            g_hnsw_n = 2000;
            g_nq = 20;
            g_reps = 1;
        } else {
            std::fprintf(stderr,
                         "usage: %s [--n N] [--hnsw-n N] [--nq Q] [--reps R] [--quick]"
                         " [--baseline PATH] [--point flat|hnsw|ivf]\n",
                         argv[0]);
            return 2;
        }
    }
    omp_set_num_threads(1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1); /* children: BLAS reads it at load */
    if (!point.empty())
        return run_point(point);
#ifndef FXB_OURS
    std::fprintf(stderr, "the baseline runs one --point; bench_kernels is the driver\n");
    return 2;
#else
    std::string self = self_path();
    if (baseline.empty())
        baseline = self + "_faiss";
    std::printf("faissx kernels: %s; baseline: %s (faiss's generic kernels)\n",
                faissx_simd_level(), baseline.c_str());
    std::printf("flat/ivf n=%lld, hnsw n=%lld, d=%d, %lld queries, %lld reps, 1 thread\n",
                g_n, g_hnsw_n, D, g_nq, g_reps);
    std::printf("%-24s %12s %12s %8s   %s\n", "point", "faissx", "faiss", "speedup",
                "recall@1/@10 faissx | faiss (SIFT 5k)");
    int bad = 0;
    for (const char* pt : {"flat", "ivf", "hnsw"}) {
        std::vector<double> ov, fv, oe, fe;
        Result o{}, f{};
        for (long long r = 0; r < g_reps; r++) {
            if (!run_child(self, pt, &o) || !run_child(baseline, pt, &f)) {
                std::fprintf(stderr, "%s: a child failed\n", pt);
                return 1;
            }
            ov.push_back(o.v);
            fv.push_back(f.v);
            oe.push_back(o.extra);
            fe.push_back(f.extra);
        }
        double om = bench_median(ov.data(), (int)g_reps), fm = bench_median(fv.data(), (int)g_reps);
        double oem = bench_median(oe.data(), (int)g_reps), fem = bench_median(fe.data(), (int)g_reps);
        char rec[96];
        std::snprintf(rec, sizeof rec, "%.3f/%.3f | %.3f/%.3f", o.r1, o.r10, f.r1, f.r10);
        std::string name = std::string(pt) + " query (us)";
        std::printf("%-24s %12.1f %12.1f %7.2fx   %s\n", name.c_str(), om * 1e6, fm * 1e6,
                    fm / om, rec);
        if (std::string(pt) == "flat")
            std::printf("%-24s %12.1f %12s %7.2f    (stream time / faissx query; goal >= 0.7)\n",
                        "flat bandwidth bound (us)", oem * 1e6, "", oem / om);
        if (std::string(pt) == "hnsw")
            std::printf("%-24s %12.2f %12.2f %7.2fx\n", "hnsw build (s)", oem, fem, fem / oem);
        if (o.r10 + 0.02 < f.r10)
            bad = 1;
    }
    if (bad)
        std::printf("recall of faissx's build is below faiss's\n");
    return bad;
#endif
}
