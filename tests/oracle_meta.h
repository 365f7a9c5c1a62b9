/* oracle_meta.h -- faiss C++ references for test_meta.c (IndexShards,
 * IndexReplicas). Every function returns 0, or -1 with the message in
 * oracle_meta_error(). */
#ifndef FXT_ORACLE_META_H
#define FXT_ORACLE_META_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* oracle_meta_error(void);

/* faiss::IndexShards(d, threaded, successive_ids) over nshards children
 * index_factory(d, child, metric); child i is filled with the next sizes[i]
 * rows of xb before it is attached. Then search. */
int oracle_shards_prefilled_search(const char* child, int d, int metric,
                                   int nshards, const idx_t* sizes,
                                   const float* xb, int threaded,
                                   int successive_ids, idx_t nq,
                                   const float* xq, idx_t k, float* D,
                                   idx_t* I);

/* Same shards, empty children attached first; xb then goes through the
 * shards: add_with_ids(nb, xb, xids) when xids != NULL, add otherwise.
 * Reports the children's ntotal (nshards entries) and searches. */
int oracle_shards_add_search(const char* child, int d, int metric,
                             int nshards, int threaded, int successive_ids,
                             idx_t nb, const float* xb, const idx_t* xids,
                             idx_t* child_ntotal, idx_t nq, const float* xq,
                             idx_t k, float* D, idx_t* I);

/* faiss::IndexReplicas(d, threaded) over nrep empty IndexFlat(d, metric)
 * children; xb is added through the replicas; then search. */
int oracle_replicas_search(int d, int metric, int nrep, int threaded,
                           idx_t nb, const float* xb, idx_t nq,
                           const float* xq, idx_t k, float* D, idx_t* I);

#ifdef __cplusplus
}
#endif

#endif
