/* threads.cpp -- how many threads faiss may use, and keeping its two thread
 * pools from oversubscribing the cores.
 *
 * faiss parallelises with OpenMP and calls BLAS (Debian: OpenBLAS, pthread
 * variant, with its own pool). Left alone, both pools are as large as the
 * machine; faiss alternates between them (a Flat search of >= 20 queries:
 * sgemm, then an OpenMP loop over the results), and the idle pool's threads
 * spin while the other pool works. On 2 cores that made a 1000-query search
 * over 1M vectors slower than one thread each, and 2.3x slower than this
 * policy (docs/benchmarks.md, "Threads"). OMP_WAIT_POLICY and OpenBLAS's
 * spin time are read when those libraries load, before any code of ours
 * runs, so a library can only size the pools -- and cut a Flat batch so
 * that one parallel region does the whole search (flat_search_split).
 *
 * The policy: OpenMP gets the thread count T (faissx_set_threads,
 * FAISSX_THREADS, else OpenMP's own default, the CPU count), OpenBLAS gets
 * one thread. Only one pool is ever parallel, so the pools never add up to
 * more than T. It is applied lazily: every C API entry (FX_TRY) calls
 * fx_threads_enter(), which is one thread-local compare unless the setting
 * changed since the calling thread last looked. OpenMP's thread count is a
 * per-thread setting in libgomp (omp_set_num_threads changes the calling
 * thread only), hence the per-thread check; OpenBLAS's is process-wide.
 *
 * The default policy never overrides a choice the program made: with
 * OMP_NUM_THREADS, OPENBLAS_NUM_THREADS or GOTO_NUM_THREADS in the
 * environment it does nothing, and a pool whose size the program changed
 * (omp_set_num_threads / openblas_set_num_threads before its first faiss
 * call in that thread) keeps that size. faissx_set_threads(n) and
 * FAISSX_THREADS=n are explicit and override all of these. */
#include "core/bridge.h"
#include "core/core.h"
#include "net/client.h"

#include <faiss/IndexFlat.h>
#include <faiss/utils/distances.h>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <typeinfo>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <vector>

/* OpenBLAS's own entry points (its cblas.h declares them, but pulls in the
 * whole CBLAS). */
extern "C" void openblas_set_num_threads(int num_threads);
extern "C" int openblas_get_num_threads(void);

namespace {

enum Mode {
    HANDS_OFF, /* the environment sized the pools: leave them */
    AUTO,      /* T = OpenMP's default, BLAS 1 (untouched pools only) */
    FIXED,     /* faissx_set_threads(n) / FAISSX_THREADS=n: T = n, BLAS 1 */
};

/* Before main: the pool sizes the runtimes chose from the environment,
 * read before the program can change them. */
int boot_omp = 0;
int boot_blas = 0;

std::mutex mu;              /* guards everything below except gen */
std::once_flag init_once;
std::atomic<unsigned> gen{1}; /* bumped by every change of the setting */
Mode mode = HANDS_OFF;
Mode start_mode = HANDS_OFF; /* what faissx_set_threads(0) returns to */
int start_n = 0;
int want = 0;      /* OpenMP threads in AUTO and FIXED mode */
int blas_set = 0;  /* what we last gave openblas_set_num_threads (0: never) */

thread_local unsigned seen_gen = 0;
thread_local int omp_set_here = 0; /* what we last set in this thread */

__attribute__((constructor)) void record_boot_sizes() {
    boot_omp = omp_get_max_threads();
    boot_blas = openblas_get_num_threads();
}

/* FAISSX_THREADS: 0 <= n <= FAISSX_THREADS_MAX, or -1 (unset, empty or
 * invalid; invalid values are reported once through the log). */
int env_threads() {
    const char* v = std::getenv("FAISSX_THREADS");
    if (!v || !*v) return -1;
    char* end;
    errno = 0;
    long n = std::strtol(v, &end, 10);
    if (*end || errno || n < 0 || n > FAISSX_THREADS_MAX) {
        fx_clog(FAISSX_LOG_WARN,
                "FAISSX_THREADS='%s' ignored: expected a number of threads "
                "in 0..%d (0: the default)", v, FAISSX_THREADS_MAX);
        return -1;
    }
    return (int)n;
}

bool env_sized() {
    for (const char* v : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                          "GOTO_NUM_THREADS"}) {
        const char* s = std::getenv(v);
        if (s && *s) return true;
    }
    return false;
}

/* With mu held: make the process-wide BLAS pool match the mode. */
void apply_blas() {
    int cur = openblas_get_num_threads();
    bool ours = cur == boot_blas || (blas_set && cur == blas_set);
    int target = mode == HANDS_OFF ? boot_blas : 1;
    if (mode == FIXED || (ours && cur != target)) {
        openblas_set_num_threads(target);
        blas_set = target;
    }
}

void init() {
    std::lock_guard<std::mutex> g(mu);
    if (boot_omp == 0) record_boot_sizes(); /* no constructor ran */
    int n = env_threads();
    if (n > 0) {
        start_mode = FIXED;
        start_n = n;
    } else {
        start_mode = env_sized() ? HANDS_OFF : AUTO;
        start_n = 0;
    }
    mode = start_mode;
    want = start_n > 0 ? start_n : boot_omp;
    apply_blas();
}

/* The slow path of fx_threads_enter. */
void apply_here() {
    std::call_once(init_once, init);
    unsigned g;
    Mode m;
    int n;
    {
        std::lock_guard<std::mutex> l(mu);
        g = gen.load(std::memory_order_relaxed);
        m = mode;
        n = want;
    }
    int cur = omp_get_max_threads();
    /* Untouched by the program: the default, or what we set last. */
    bool ours = cur == boot_omp || (omp_set_here && cur == omp_set_here);
    int target = m == HANDS_OFF ? boot_omp : n;
    if ((m == FIXED || ours) && cur != target) {
        omp_set_num_threads(target);
        omp_set_here = target;
    }
    seen_gen = g;
}

} // namespace

namespace fx {

bool flat_search_split(const faiss::Index* ix, idx n, const float* x, idx k,
                       float* distances, idx* labels) {
    if (!is_plain_flat(ix)) return false;
    if (ix->metric_type != faiss::METRIC_L2 &&
        ix->metric_type != faiss::METRIC_INNER_PRODUCT)
        return false;
    if (omp_in_parallel() || openblas_get_num_threads() != 1) return false;
    {
        std::lock_guard<std::mutex> l(mu);
        if (mode == HANDS_OFF) return false;
    }
    /* Slices start at multiples of 32 queries: OpenBLAS rounds a column
     * of the product differently depending on its position within the
     * kernel's tile, and on this kernel 32-aligned slices give bit-identical
     * results to the whole batch (tests/test_threads.c checks many shapes
     * against faiss). Every slice must also take faiss's BLAS path
     * (>= distance_compute_blas_threshold queries), as the whole batch
     * does, or its distances would be rounded differently. */
    const idx unit = 32;
    idx units = n / unit;
    idx thr = std::max<idx>(faiss::distance_compute_blas_threshold, 1);
    idx per_slice = (thr + unit - 1) / unit; /* units per slice, at least */
    idx nslices = std::min<idx>(omp_get_max_threads(), units / per_slice);
    if (nslices < 2 || n < thr) return false;
    std::vector<std::exception_ptr> errs((size_t)nslices);
#pragma omp parallel for num_threads((int)nslices) schedule(static, 1)
    for (idx s = 0; s < nslices; s++) {
        idx i0 = units * s / nslices * unit;
        idx i1 = s + 1 == nslices ? n : units * (s + 1) / nslices * unit;
        omp_set_num_threads(1); /* this thread's nested regions: serial */
        try {
            ix->search(i1 - i0, x + i0 * ix->d, k, distances + i0 * k,
                       labels + i0 * k);
        } catch (...) {
            errs[(size_t)s] = std::current_exception();
        }
    }
    for (auto& e : errs)
        if (e) std::rethrow_exception(e);
    return true;
}

} // namespace fx

extern "C" void fx_threads_enter(void) {
    if (seen_gen != gen.load(std::memory_order_acquire)) apply_here();
}

int faissx_set_threads(int n) {
    if (n < 0 || n > FAISSX_THREADS_MAX)
        return fx::fail(FAISSX_E_INVALID, __func__,
                        "n must be 1..%d threads, or 0 for the default "
                        "policy (got %d)", FAISSX_THREADS_MAX, n);
    std::call_once(init_once, init);
    {
        std::lock_guard<std::mutex> g(mu);
        if (n > 0) {
            mode = FIXED;
            want = n;
        } else {
            mode = start_mode;
            want = start_n > 0 ? start_n : boot_omp;
        }
        apply_blas();
        gen.fetch_add(1, std::memory_order_release);
    }
    apply_here();
    return 0;
}

int faissx_get_threads(void) {
    fx_threads_enter();
    return omp_get_max_threads();
}
