/* oracle_index.h -- faiss C++ references for test_index.c (Index_c.h calls
 * that oracle.h does not cover). Same conventions as oracle.h: an index is
 * built with faiss::index_factory(d, factory, metric), trained on xt when
 * nt > 0 and filled with xb; every function returns 0, or -1 with the
 * message in oracle_last_error(). */
#ifndef FXT_ORACLE_INDEX_H
#define FXT_ORACLE_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A selector description: a batch when ids != NULL (nids ids), otherwise
 * the range [imin, imax). */
/* The message of the last failed oracle_index call in this thread. */
const char* oracle_index_error(void);

typedef struct OracleSel {
    idx_t imin, imax;
    size_t nids;
    const idx_t* ids;
} OracleSel;

/* remove_ids(sel), then report the count, the new ntotal and the search of
 * xq (skipped when nq == 0). xb is added with the ids xids when not NULL. */
int oracle_remove_search(const char* factory, int d, int metric, idx_t nt,
                         const float* xt, idx_t nb, const float* xb,
                         const idx_t* xids, OracleSel sel, size_t* n_removed, idx_t* ntotal,
                         idx_t nq, const float* xq, idx_t k, float* D,
                         idx_t* I);

/* search with faiss::SearchParameters{sel} (SearchParametersIVF with
 * `nprobe` when the index is an IVF). */
int oracle_search_sel(const char* factory, int d, int metric, idx_t nt,
                      const float* xt, idx_t nb, const float* xb,
                      const idx_t* xids, OracleSel sel, size_t nprobe, idx_t nq,
                      const float* xq, idx_t k, float* D, idx_t* I);

/* The faiss C++ equivalent of a selector over external ids on an IDMap
 * (which faiss 1.7.3 refuses): index_factory(d, sub, metric) trained and
 * filled with xb, searched with a batch selector of the positions whose id
 * (xids) `sel` selects (SearchParametersIVF with nprobe for an IVF), the
 * labels then mapped through xids. */
int oracle_idmap_search_sel(const char* sub, int d, int metric, idx_t nt,
                            const float* xt, idx_t nb, const float* xb,
                            const idx_t* xids, OracleSel sel, size_t nprobe,
                            idx_t nq, const float* xq, idx_t k, float* D,
                            idx_t* I);

/* compute_residual_n(n, x, residuals, keys). */
int oracle_residual_n(const char* factory, int d, int metric, idx_t nt,
                      const float* xt, idx_t nb, const float* xb, idx_t n,
                      const float* x, const idx_t* keys, float* residuals);

/* sa_decode(n, codes, x) on the trained (empty) index. */
int oracle_sa_decode(const char* factory, int d, int metric, idx_t nt,
                     const float* xt, idx_t n, const uint8_t* codes,
                     float* x);

/* The centroids of an IVF's quantizer after training (nlist * d). */
int oracle_ivf_centroids(const char* factory, int d, int metric, idx_t nt,
                         const float* xt, float* centroids);

#ifdef __cplusplus
}
#endif

#endif
