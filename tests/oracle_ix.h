/* oracle_ix.h -- a faiss index built and driven from C++ directly, behind an
 * opaque handle, so a suite can replay a sequence of C API calls on the
 * reference side step by step (train, add, add_core, merge, ...).
 *
 * Implemented in oracle_ix_impl.hpp, which each oracle_NAME.cpp that needs
 * it includes exactly once (every suite links only its own oracle file).
 * Functions returning int give 0 on success and -1 on a C++ exception
 * (message in oix_last_error()); constructors return NULL on failure. */
#ifndef FXT_ORACLE_IX_H
#define FXT_ORACLE_IX_H

#include "oracle.h"

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct OIx OIx;

/* The message of the last oracle failure in this thread. */
const char* oix_last_error(void);

void oix_free(OIx* o);
idx_t oix_ntotal(const OIx* o);
int oix_is_trained(const OIx* o);
int oix_train(OIx* o, idx_t n, const float* x);
/* add, or add_with_ids when xids != NULL */
int oix_add(OIx* o, idx_t n, const float* x, const idx_t* xids);
int oix_search(const OIx* o, idx_t n, const float* x, idx_t k, float* D,
               idx_t* I);
int oix_reconstruct(const OIx* o, idx_t key, float* recons);
int oix_reconstruct_n(const OIx* o, idx_t i0, idx_t ni, float* recons);
int oix_sa_code_size(const OIx* o, size_t* size);
int oix_sa_encode(const OIx* o, idx_t n, const float* x, uint8_t* codes);
int oix_sa_decode(const OIx* o, idx_t n, const uint8_t* codes, float* x);

/* IVF only (faiss::IndexIVF underneath). */
int oix_set_nprobe(OIx* o, size_t nprobe);
int oix_add_core(OIx* o, idx_t n, const float* x, const idx_t* xids,
                 const idx_t* assign);
size_t oix_list_size(const OIx* o, size_t list_no);
int oix_list_ids(const OIx* o, size_t list_no, idx_t* ids);
int oix_make_direct_map(OIx* o, int on);

#ifdef __cplusplus
}

#include <faiss/Index.h>

/* The wrapped object (C++ side only). */
struct OIx {
    faiss::Index* index;
};
#endif

#endif
