/* oracle_aux.h -- faiss C++ references for test_aux.c. Every function
 * returns 0, or -1 with the message in oracle_aux_error(). */
#ifndef FXT_ORACLE_AUX_H
#define FXT_ORACLE_AUX_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* oracle_aux_error(void);

/* A new faiss::RangeSearchResult(nq): its buffer_size. */
size_t oracle_rsr_buffer_size(idx_t nq);

/* Membership (0/1) of ids lo..hi-1 in faiss's own selectors. */
int oracle_range_members(idx_t imin, idx_t imax, idx_t lo, idx_t hi,
                         uint8_t* out);
int oracle_not_range_members(idx_t imin, idx_t imax, idx_t lo, idx_t hi,
                             uint8_t* out);
/* Also reports IDSelectorBatch::nbits and mask. */
int oracle_batch_members(size_t n, const idx_t* ids, idx_t lo, idx_t hi,
                         uint8_t* out, int* nbits, idx_t* mask);
int oracle_bitmap_members(size_t n, const uint8_t* bitmap, idx_t lo,
                          idx_t hi, uint8_t* out);

/* faiss::IndexFlat(d, metric) holding xb, searched with SearchParameters
 * whose selector is a faiss::IDSelectorBatch of {i < nb : member[i]}. */
int oracle_flat_search_sel(int d, int metric, idx_t nb, const float* xb,
                           const uint8_t* member, idx_t nq, const float* xq,
                           idx_t k, float* D, idx_t* I);

/* faiss::IndexFlatL2(d) holding xb, remove_ids with the same kind of
 * selector: the number removed, the new ntotal and the remaining vectors
 * (rest must hold nb*d floats). */
int oracle_flat_remove_sel(int d, idx_t nb, const float* xb,
                           const uint8_t* member, size_t* nremoved,
                           idx_t* ntotal, float* rest);

/* faiss::BufferList(bs): `n` adds of (ids[i], dis[i]), with append_buffer
 * called before add number i when append_before[i] != 0 (may be NULL);
 * reports wp and the number of buffers, then copy_range(ofs, cnt). */
int oracle_bufferlist(size_t bs, size_t n, const idx_t* ids,
                      const float* dis, const uint8_t* append_before,
                      size_t* wp, size_t* nbuffers, size_t ofs, size_t cnt,
                      idx_t* out_ids, float* out_dis);

/* A faiss::RangeSearchResult(nq) filled through a
 * faiss::RangeSearchPartialResult as faiss's range searches do: for each
 * j < nqueries, new_result(qnos[j]) then counts[j] adds of the next
 * (dis, ids) pairs; then finalize(). Outputs lims (nq+1), labels and
 * distances (lims[nq] entries each). */
int oracle_partial(size_t nq, size_t nqueries, const idx_t* qnos,
                   const size_t* counts, const float* dis, const idx_t* ids,
                   size_t* lims, idx_t* labels, float* distances);

/* index_factory(d, factory, metric) trained on and filled with xb; its
 * get_distance_computer(): for each query q and id, qdis[q*nids + j] =
 * dc(ids[j]) after set_query(xq + q*d); sym[p] = symmetric_dis(pairs[2p],
 * pairs[2p+1]). */
int oracle_dc(const char* factory, int d, int metric, idx_t nb,
              const float* xb, idx_t nq, const float* xq, idx_t nids,
              const idx_t* ids, float* qdis, idx_t npairs,
              const idx_t* pairs, float* sym);

#ifdef __cplusplus
}
#endif

#endif
