/* oracle_binary.h -- a faiss C++ binary index behind an opaque handle, so
 * test_binary.c can replay its C API calls on the reference side. Functions
 * return 0, or -1 with the message in obx_error(); obx_factory returns NULL
 * on failure. */
#ifndef FXT_ORACLE_BINARY_H
#define FXT_ORACLE_BINARY_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct OBx OBx;

const char* obx_error(void);

/* faiss::index_binary_factory(d, desc) */
OBx* obx_factory(const char* desc, int d);
void obx_free(OBx* o);

typedef struct OBxInfo {
    int d, is_trained, metric_type, verbose;
    idx_t ntotal;
    int is_ivf;
    size_t nlist, nprobe;
    int is_hnsw, efSearch;
} OBxInfo;
int obx_info(const OBx* o, OBxInfo* info);

int obx_train(OBx* o, idx_t n, const uint8_t* x);
/* add, or add_with_ids when xids != NULL */
int obx_add(OBx* o, idx_t n, const uint8_t* x, const idx_t* xids);
int obx_search(const OBx* o, idx_t n, const uint8_t* x, idx_t k,
               int32_t* D, idx_t* I);
/* range_search; the result as malloc'd arrays (lims: n + 1 entries) */
int obx_range(const OBx* o, idx_t n, const uint8_t* x, int radius,
              size_t** lims, idx_t** labels, float** distances);
int obx_assign(const OBx* o, idx_t n, const uint8_t* x, idx_t* labels,
               idx_t k);
int obx_reset(OBx* o);
/* remove_ids with IDSelectorRange(imin, imax) or, when ids != NULL,
 * IDSelectorBatch(nids, ids) */
int obx_remove(OBx* o, idx_t imin, idx_t imax, size_t nids,
               const idx_t* ids, size_t* n_removed);
int obx_reconstruct(const OBx* o, idx_t key, uint8_t* recons);
int obx_reconstruct_n(const OBx* o, idx_t i0, idx_t ni, uint8_t* recons);
int obx_set_nprobe(OBx* o, size_t nprobe);
int obx_set_efSearch(OBx* o, int ef);

#ifdef __cplusplus
}
#endif

#endif
