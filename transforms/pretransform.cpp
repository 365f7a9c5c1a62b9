/* pretransform.cpp -- IndexPreTransform_c.h: transforms chained in front of
 * an index. With own_fields set, freeing the IndexPreTransform frees the
 * wrapped index and every transform in the chain. */
#include "core/core.h"

#include <faiss/IndexPreTransform.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

namespace {
inline faiss::VectorTransform* vt(FaissVectorTransform* p) {
    return reinterpret_cast<faiss::VectorTransform*>(p);
}
} // namespace

extern "C" {

FX_INDEX_FREE(IndexPreTransform)
FX_DOWNCAST_R(IndexPreTransform, faiss::IndexPreTransform, FX_KIND_PRETRANSFORM)
FaissIndex* faiss_IndexPreTransform_index(const FaissIndexPreTransform* obj) {
    auto base = obj ? fx::index(reinterpret_cast<const FaissIndex*>(obj)) : nullptr;
    if (auto r = base ? fx::as_remote(base) : nullptr)
        return fx::child_of(__func__, r, FX_KIND_PRETRANSFORM);
    auto o = fx::as<faiss::IndexPreTransform>(reinterpret_cast<const FaissIndex*>(obj));
    FX_REQUIRE_RET(o != nullptr, nullptr,
                   "handle is NULL or not a faiss::IndexPreTransform");
    return reinterpret_cast<FaissIndex*>(o->index);
}
FX_OWN_FIELDS_R(IndexPreTransform, faiss::IndexPreTransform, FX_KIND_PRETRANSFORM)

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
    if (auto r = fx::as_remote(fx::index(index)))
        return fx::remote_wrap(
                __func__, r, FX_WRAP_PRETRANSFORM,
                [](fx_wbuf* w) { fx_w_array(w, nullptr, 0, 1); },
                reinterpret_cast<FaissIndex**>(p_index));
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
    // Over a remote index the transform is copied to the server with it;
    // the caller's transform stays the caller's (freed by own_fields only
    // for a local chain).
    if (auto r = fx::as_remote(fx::index(index))) {
        faiss::VectorIOWriter bytes;
        FX_TRY
        faiss::write_VectorTransform(vt(ltrans), &bytes);
        FX_CATCH
        int rc = fx::remote_wrap(
                __func__, r, FX_WRAP_PRETRANSFORM,
                [&](fx_wbuf* w) {
                    fx_w_array(w, bytes.data.data(), bytes.data.size(), 1);
                },
                reinterpret_cast<FaissIndex**>(p_index));
        if (rc == 0)
            fx::as_remote(fx::index(*p_index))
                    ->child_transforms.push_back(vt(ltrans));
        return rc;
    }
    FX_TRY
    *p_index = fx::handle<FaissIndexPreTransform>(static_cast<faiss::Index*>(
            new faiss::IndexPreTransform(vt(ltrans), fx::index(index))));
    return 0;
    FX_CATCH
}

int faiss_IndexPreTransform_prepend_transform(FaissIndexPreTransform* index,
                                              FaissVectorTransform* ltrans) {
    // A remote chain lives on the server: a copy of the transform goes
    // there (FX_COMP_PREPEND), and the caller's object joins the handle's
    // client-side transforms (trained with the chain, freed with it).
    if (auto r = fx::remote_of_kind(reinterpret_cast<FaissIndex*>(index),
                                    FX_KIND_PRETRANSFORM)) {
        FX_NOT_NULL(ltrans);
        FX_REQUIRE(vt(ltrans)->d_out == r->d,
                   "transform output dimension %d differs from the chain's "
                   "input dimension %d",
                   vt(ltrans)->d_out, r->d);
        FX_TRY
        faiss::VectorIOWriter bytes;
        faiss::write_VectorTransform(vt(ltrans), &bytes);
        r->child_transforms.reserve(r->child_transforms.size() + 1);
        r->prepend_transform(bytes.data);
        r->child_transforms.insert(r->child_transforms.begin(), vt(ltrans));
        return 0;
        FX_CATCH
    }
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
