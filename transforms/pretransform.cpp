/* pretransform.cpp -- IndexPreTransform_c.h: transforms chained in front of
 * an index. With own_fields set, freeing the IndexPreTransform frees the
 * wrapped index and every transform in the chain. */
#include "core/core.h"

#include <faiss/IndexPreTransform.h>
#include <faiss/VectorTransform.h>

namespace {
inline faiss::VectorTransform* vt(FaissVectorTransform* p) {
    return reinterpret_cast<faiss::VectorTransform*>(p);
}
} // namespace

extern "C" {

FX_INDEX_FREE(IndexPreTransform)
FX_DOWNCAST(IndexPreTransform, faiss::IndexPreTransform)
FX_GETTER(IndexPreTransform, faiss::IndexPreTransform, FaissIndex*, index,
          reinterpret_cast<FaissIndex*>(o->index))
FX_GETTER(IndexPreTransform, faiss::IndexPreTransform, int, own_fields,
          o->own_fields)
FX_SETTER(IndexPreTransform, faiss::IndexPreTransform, int, own_fields,
          o->own_fields = val != 0)

int faiss_IndexPreTransform_new(FaissIndexPreTransform** p_index) {
    FX_NOT_NULL(p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexPreTransform>(
            static_cast<faiss::Index*>(new faiss::IndexPreTransform()));
    return 0;
    FX_CATCH
}

int faiss_IndexPreTransform_new_with(FaissIndexPreTransform** p_index,
                                     FaissIndex* index) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(index);
    FX_TRY
    *p_index = fx::handle<FaissIndexPreTransform>(static_cast<faiss::Index*>(
            new faiss::IndexPreTransform(fx::index(index))));
    return 0;
    FX_CATCH
}

int faiss_IndexPreTransform_new_with_transform(
        FaissIndexPreTransform** p_index, FaissVectorTransform* ltrans,
        FaissIndex* index) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(ltrans);
    FX_NOT_NULL(index);
    FX_REQUIRE(vt(ltrans)->d_out == fx::index(index)->d,
               "transform output dimension %d differs from index dimension "
               "%d",
               vt(ltrans)->d_out, fx::index(index)->d);
    FX_TRY
    *p_index = fx::handle<FaissIndexPreTransform>(static_cast<faiss::Index*>(
            new faiss::IndexPreTransform(vt(ltrans), fx::index(index))));
    return 0;
    FX_CATCH
}

int faiss_IndexPreTransform_prepend_transform(FaissIndexPreTransform* index,
                                              FaissVectorTransform* ltrans) {
    FX_CAST(pt, faiss::IndexPreTransform, index);
    FX_NOT_NULL(ltrans);
    FX_REQUIRE(vt(ltrans)->d_out == pt->d,
               "transform output dimension %d differs from the chain's "
               "input dimension %d",
               vt(ltrans)->d_out, pt->d);
    FX_TRY
    pt->prepend_transform(vt(ltrans));
    return 0;
    FX_CATCH
}

} // extern "C"
