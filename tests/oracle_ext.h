/* oracle_ext.h -- faiss C++ references for test_ext.c. Every function
 * returns 0, or -1 with the message in oracle_ext_error(). */
#ifndef FXT_ORACLE_EXT_H
#define FXT_ORACLE_EXT_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* oracle_ext_error(void);

/* "MAJOR.MINOR.PATCH" from faiss's own FAISS_VERSION_* macros. */
const char* oracle_faiss_version(void);

/* faiss's FaissException text for an error it raises itself (an IndexIVF
 * searched with the wrong parameter type); for message comparison. */
int oracle_ivf_wrong_params_message(char* buf, size_t cap);

/* A default faiss::SearchParametersIVF. */
void oracle_sp_ivf_defaults(size_t* nprobe, size_t* max_codes);

/* index_factory(d, factory, METRIC_L2) trained on xt, filled with xb,
 * searched with faiss::SearchParametersIVF{nprobe, max_codes, sel} where
 * sel is an IDSelectorBatch of {i < nb : member[i]} (member may be NULL:
 * no selector). */
int oracle_ivf_search_params(const char* factory, int d, idx_t nt,
                             const float* xt, idx_t nb, const float* xb,
                             size_t nprobe, size_t max_codes,
                             const uint8_t* member, idx_t nq,
                             const float* xq, idx_t k, float* D, idx_t* I);

/* A default faiss::SearchParametersHNSW. */
void oracle_sp_hnsw_defaults(int* efSearch, int* check_relative_distance);

/* index_factory(d, factory, METRIC_L2) filled with xb, searched with
 * faiss::SearchParametersHNSW{efSearch, check_relative_distance, sel}
 * (sel as in oracle_ivf_search_params). */
int oracle_hnsw_search_params(const char* factory, int d, idx_t nb,
                              const float* xb, int efSearch,
                              int check_relative_distance,
                              const uint8_t* member, idx_t nq,
                              const float* xq, idx_t k, float* D, idx_t* I);

/* index_factory(d, factory, METRIC_L2) trained on xt, filled with xb,
 * range_search'ed with faiss::SearchParametersIVF{nprobe, sel} when
 * nprobe > 0, else faiss::SearchParameters{sel} (sel as above). The
 * result as malloc'd arrays (*lims: nq + 1 entries); caller frees. */
int oracle_range_search_params(const char* factory, int d, idx_t nt,
                               const float* xt, idx_t nb, const float* xb,
                               size_t nprobe, const uint8_t* member,
                               idx_t nq, const float* xq, float radius,
                               size_t** lims, idx_t** labels,
                               float** distances);

#ifdef __cplusplus
}
#endif

#endif
