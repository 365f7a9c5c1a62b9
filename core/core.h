/* core.h -- internal helpers shared by the core/ translation units. */
#ifndef FX_CORE_H
#define FX_CORE_H

#include "core/bridge.h"

namespace faiss {
struct IndexIVF;
}

namespace fx {

/* True when the index addresses vectors by position 0..ntotal-1 (flat
 * codes, HNSW, NSG, refine, or a pre-transform over one), so a key outside
 * that range would read out of bounds inside faiss. */
bool positional(const faiss::Index* ix);

/* Fails unless key is valid for reconstruct-like calls on ix. */
int check_key(const char* func, const faiss::Index* ix, idx key);

/* Validates k and the output buffers of a k-NN search of n queries. */
int check_knn(const char* func, idx n, idx k, const void* distances,
              const void* labels);

/* Validates a metric value from C. */
int check_metric(const char* func, int metric);

/* Validates a dimension given to a constructor (1 .. INT_MAX). */
int check_dim(const char* func, long long d);

/* IVF add_core with its inputs validated (list numbers, finiteness). */
int ivf_add_core_checked(const char* func, faiss::IndexIVF* ivf, idx_t n,
                         const float* x, const idx_t* xids,
                         const idx_t* precomputed_idx);

} // namespace fx

#endif
