/* oracle.h -- faiss C++ called directly, as the reference the C API must
 * match bit for bit. Implemented in oracle*.cpp against the same libfaiss.a.
 * All functions return 0 on success, -1 on a C++ exception (message in
 * oracle_last_error()). */
#ifndef FXT_ORACLE_H
#define FXT_ORACLE_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* oracle_last_error(void);

/* Build faiss::index_factory(d, factory, metric); train on xt (nt may be 0:
 * no training); add xb (with ids when xids != NULL); apply `params` through
 * faiss::ParameterSpace (e.g. "nprobe=16,efSearch=64", NULL for none);
 * search the nq queries xq for k neighbours. */
int oracle_factory_search(const char* factory, int d, int metric,
                          idx_t nt, const float* xt,
                          idx_t nb, const float* xb, const idx_t* xids,
                          const char* params,
                          idx_t nq, const float* xq, idx_t k,
                          float* D, idx_t* I);

/* Same construction, then range_search with `radius`. Returns the result as
 * malloc'd arrays (*lims has nq+1 entries); the caller frees them. */
int oracle_factory_range(const char* factory, int d, int metric,
                         idx_t nt, const float* xt,
                         idx_t nb, const float* xb, const char* params,
                         idx_t nq, const float* xq, float radius,
                         size_t** lims, idx_t** labels, float** distances);

/* Same construction, then write the index to `path` (faiss::write_index). */
int oracle_factory_write(const char* factory, int d, int metric,
                         idx_t nt, const float* xt,
                         idx_t nb, const float* xb, const char* path);

/* Same construction, then reconstruct_n(0, nb) into recons (nb * d). */
int oracle_factory_reconstruct(const char* factory, int d, int metric,
                               idx_t nt, const float* xt,
                               idx_t nb, const float* xb, float* recons);

/* Same construction, then sa_encode of xq into codes (nq*sa_code_size). */
int oracle_factory_sa_encode(const char* factory, int d, int metric,
                             idx_t nt, const float* xt,
                             idx_t nq, const float* xq, uint8_t* codes,
                             size_t* code_size);

#ifdef __cplusplus
}
#endif

#endif
