/* lsh.cpp -- IndexLSH_c.h: binary signatures of (rotated) vectors. */
#include "core/core.h"

#include <faiss/IndexLSH.h>

extern "C" {

FX_INDEX_FREE(IndexLSH)
FX_DOWNCAST_R(IndexLSH, faiss::IndexLSH, FX_KIND_LSH)
FX_GETTER_R(IndexLSH, faiss::IndexLSH, int, nbits, o->nbits, FX_KIND_LSH, "nbits")
FX_GETTER_R(IndexLSH, faiss::IndexLSH, int, code_size, o->code_size, FX_KIND_LSH, "code_size")
FX_GETTER_R(IndexLSH, faiss::IndexLSH, int, rotate_data, o->rotate_data, FX_KIND_LSH, "rotate_data")
FX_GETTER_R(IndexLSH, faiss::IndexLSH, int, train_thresholds,
            o->train_thresholds, FX_KIND_LSH, "train_thresholds")

int faiss_IndexLSH_new_with_options(FaissIndexLSH** p_index, idx_t d,
                                    int nbits, int rotate_data,
                                    int train_thresholds) {
    FX_NOT_NULL(p_index);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    FX_REQUIRE(nbits > 0, "nbits must be > 0 (got %d)", nbits);
    FX_REMOTE_UPLOAD(p_index, new faiss::IndexLSH(d, nbits, rotate_data != 0,
                                                  train_thresholds != 0));
    FX_TRY
    *p_index = fx::handle<FaissIndexLSH>(static_cast<faiss::Index*>(
            new faiss::IndexLSH(d, nbits, rotate_data != 0,
                                train_thresholds != 0)));
    return 0;
    FX_CATCH
}

int faiss_IndexLSH_new(FaissIndexLSH** p_index, idx_t d, int nbits) {
    return faiss_IndexLSH_new_with_options(p_index, d, nbits, 1, 0);
}

} // extern "C"
