/* bench.h -- the operations the benchmark times, once per side.
 *
 * bench_capi.c implements them through the FAISS C API (libfaissx);
 * bench_cpp.cpp implements the same operations by calling faiss C++
 * directly. The driver (bench_capi.c) only ever calls through a
 * bench_ops table, so both sides pay the same indirection. Every function
 * returns 0 on success; on failure it prints a message and returns -1. */
#ifndef FX_BENCH_H
#define FX_BENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bench_ops {
    const char* name;
    /* IndexFlatL2(d). */
    void* (*flat_new)(int d);
    /* IndexIVFFlat(IndexFlatL2(d), d, nlist), owning its quantizer. */
    void* (*ivf_new)(int d, size_t nlist);
    /* IndexHNSWFlat(d, M) ("HNSW<M>"). */
    void* (*hnsw_new)(int d, int M);
    int (*train)(void* ix, int64_t n, const float* x);
    int (*add)(void* ix, int64_t n, const float* x);
    int (*reset)(void* ix);
    int (*set_nprobe)(void* ix, size_t nprobe);
    int (*set_ef_search)(void* ix, int ef);
    int (*search)(void* ix, int64_t n, const float* x, int64_t k,
                  float* D, int64_t* I);
    void (*free_index)(void* ix);
} bench_ops;

/* The faiss C++ side (bench_cpp.cpp). */
extern const bench_ops bench_cpp_ops;

/* omp_set_num_threads(n) and openblas_set_num_threads(n); returns what
 * omp_get_max_threads() reports afterwards. */
int bench_set_threads(int n);

/* Description of the faiss build (compile options string). */
const char* bench_faiss_info(void);

#ifdef __cplusplus
}
#endif

#endif
