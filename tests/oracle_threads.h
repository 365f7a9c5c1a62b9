/* oracle_threads.h -- faiss C++ references for test_threads.c. */
#ifndef FXT_ORACLE_THREADS_H
#define FXT_ORACLE_THREADS_H

#include <faiss/c_api/faiss_c.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* oracle_threads_error(void);

/* faiss::IndexFlat(d, metric) filled with xb and searched by faiss itself
 * in one call (its own OpenMP/BLAS code path, this thread's OpenMP
 * setting). 0, or -1 with the message in oracle_threads_error(). */
int oracle_threads_flat_search(int d, int metric, idx_t nb, const float* xb,
                               idx_t nq, const float* xq, idx_t k, float* D,
                               idx_t* I);

#ifdef __cplusplus
}
#endif

#endif
