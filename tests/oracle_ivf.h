/* oracle_ivf.h -- faiss C++ references for test_ivf.c (IndexIVF, IndexIVFFlat,
 * SearchParametersIVF). See oracle_ix.h for the generic index handle. */
#ifndef FXT_ORACLE_IVF_H
#define FXT_ORACLE_IVF_H

#include "oracle_ix.h"

#ifdef __cplusplus
extern "C" {
#endif

/* new IndexIVFFlat(new IndexFlatL2/IP(d), d, nlist, metric), owning its
 * quantizer -- the construction the C calls faiss_IndexFlat{L2,IP}_new_with
 * + faiss_IndexIVFFlat_new_with_metric perform. */
OIx* oix_ivfflat(int d, int metric, size_t nlist);

/* A copy of the IVF src (faiss::clone_index) emptied with reset(): same
 * trained quantizer, no vectors. */
OIx* oix_ivf_empty_clone(const OIx* src);

int oix_merge(OIx* dst, OIx* src, idx_t add_id);
int oix_copy_subset(const OIx* src, OIx* dst, int subset_type, idx_t a1,
                    idx_t a2);
int oix_update_vectors(OIx* o, int nv, const idx_t* idx, const float* v);
double oix_imbalance_factor(const OIx* o);

/* search with a faiss::SearchParametersIVF {nprobe, max_codes, sel} where
 * sel is IDSelectorRange(sel_lo, sel_hi) when sel_lo >= 0, else none. */
int oix_search_ivf_params(const OIx* o, idx_t n, const float* x, idx_t k,
                          size_t nprobe, size_t max_codes, idx_t sel_lo,
                          idx_t sel_hi, float* D, idx_t* I);

/* A faiss::IDSelectorRange(lo, hi) made in C++, as a C handle (so the IVF
 * suite does not depend on the AuxIndexStructures C calls). */
FaissIDSelector* oracle_selector_range(idx_t lo, idx_t hi);
void oracle_selector_free(FaissIDSelector* sel);

/* A faiss::IndexFlat(d, metric) as a C handle whose destructor sets
 * *destroyed = 1 (to observe own_fields). Free with faiss_Index_free. */
FaissIndex* oracle_tracked_flat(int d, int metric, int* destroyed);

/* The address of faiss::indexIVF_stats. */
const void* oracle_ivf_stats_address(void);

#ifdef __cplusplus
}
#endif

#endif
