/* vector_transform.cpp -- VectorTransform_c.h: the transform family. */
#include "core/core.h"

#include <faiss/VectorTransform.h>

#include <cstdlib>

namespace {
inline faiss::VectorTransform* vt(FaissVectorTransform* p) {
    return reinterpret_cast<faiss::VectorTransform*>(p);
}
inline const faiss::VectorTransform* vt(const FaissVectorTransform* p) {
    return reinterpret_cast<const faiss::VectorTransform*>(p);
}
template <class T, class H>
inline const T* vt_as(const H* p) {
    return p ? dynamic_cast<const T*>(
                       reinterpret_cast<const faiss::VectorTransform*>(p))
             : nullptr;
}
template <class T, class H>
inline T* vt_as(H* p) {
    return p ? dynamic_cast<T*>(reinterpret_cast<faiss::VectorTransform*>(p))
             : nullptr;
}
template <class H, class T>
inline H* vt_handle(T* p) {
    return reinterpret_cast<H*>(static_cast<faiss::VectorTransform*>(p));
}
} // namespace

#define FX_VT_GETTER(cls, T, ty, name, expr)                               \
    ty faiss_##cls##_##name(const Faiss##cls* obj) {                       \
        auto o = vt_as<T>(obj);                                            \
        FX_REQUIRE_RET(o != nullptr, (ty)0, "handle is NULL or not a " #T); \
        return (ty)(expr);                                                 \
    }
#define FX_VT_SETTER(cls, T, ty, name, stmt)                               \
    void faiss_##cls##_set_##name(Faiss##cls* obj, ty val) {               \
        auto o = vt_as<T>(obj);                                            \
        FX_REQUIRE_RET(o != nullptr, , "handle is NULL or not a " #T);     \
        stmt;                                                              \
    }
#define FX_VT_FREE(cls)                                                    \
    void faiss_##cls##_free(Faiss##cls* obj) {                             \
        delete reinterpret_cast<faiss::VectorTransform*>(obj);             \
    }
#define FX_VT_NEW(cls, expr)                                               \
    FX_NOT_NULL(p_vt);                                                     \
    FX_TRY                                                                 \
    *p_vt = vt_handle<Faiss##cls>(expr);                                   \
    return 0;                                                              \
    FX_CATCH

extern "C" {

/* ---- VectorTransform ---- */

FX_VT_FREE(VectorTransform)
FX_VT_GETTER(VectorTransform, faiss::VectorTransform, int, is_trained,
             o->is_trained)
FX_VT_GETTER(VectorTransform, faiss::VectorTransform, int, d_in, o->d_in)
FX_VT_GETTER(VectorTransform, faiss::VectorTransform, int, d_out, o->d_out)

int faiss_VectorTransform_train(FaissVectorTransform* t, idx_t n,
                                const float* x) {
    FX_NOT_NULL(t);
    if (int rc = fx::check_vectors(__func__, n, x, vt(t)->d_in, "x"))
        return rc;
    FX_TRY
    vt(t)->train(n, x);
    return 0;
    FX_CATCH
}

/* Unlike upstream (memory from C++ new[], which C cannot release), the
 * result is malloc'd: the caller frees it with free(). NULL on error. */
float* faiss_VectorTransform_apply(const FaissVectorTransform* t, idx_t n,
                                   const float* x) {
    FX_REQUIRE_RET(t, nullptr, "transform is NULL");
    FX_REQUIRE_RET(n > 0 && x, nullptr, "need n > 0 and x != NULL");
    FX_REQUIRE_RET(vt(t)->is_trained, nullptr, "transform is not trained");
    FX_TRY
    size_t sz = (size_t)n * (size_t)vt(t)->d_out;
    float* out = static_cast<float*>(std::malloc(sz * sizeof(float) + 1));
    if (!out) throw std::bad_alloc();
    try {
        vt(t)->apply_noalloc(n, x, out);
    } catch (...) {
        std::free(out);
        throw;
    }
    return out;
    FX_CATCH_RET(nullptr)
}

void faiss_VectorTransform_apply_noalloc(const FaissVectorTransform* t,
                                         idx_t n, const float* x, float* xt) {
    FX_REQUIRE_RET(t, , "transform is NULL");
    FX_REQUIRE_RET(n >= 0, , "n must be >= 0");
    FX_REQUIRE_RET(n == 0 || (x && xt), , "x and xt must not be NULL");
    FX_REQUIRE_RET(vt(t)->is_trained, , "transform is not trained");
    FX_TRY
    vt(t)->apply_noalloc(n, x, xt);
    FX_CATCH_RET()
}

void faiss_VectorTransform_reverse_transform(const FaissVectorTransform* t,
                                             idx_t n, const float* xt,
                                             float* x) {
    FX_REQUIRE_RET(t, , "transform is NULL");
    FX_REQUIRE_RET(n >= 0, , "n must be >= 0");
    FX_REQUIRE_RET(n == 0 || (x && xt), , "x and xt must not be NULL");
    FX_REQUIRE_RET(vt(t)->is_trained, , "transform is not trained");
    FX_TRY
    vt(t)->reverse_transform(n, xt, x);
    FX_CATCH_RET()
}

/* ---- LinearTransform ---- */

FX_VT_FREE(LinearTransform)

void faiss_LinearTransform_transform_transpose(const FaissLinearTransform* t,
                                               idx_t n, const float* y,
                                               float* x) {
    auto lt = vt_as<faiss::LinearTransform>(t);
    FX_REQUIRE_RET(lt, , "handle is NULL or not a LinearTransform");
    FX_REQUIRE_RET(n >= 0, , "n must be >= 0");
    FX_REQUIRE_RET(n == 0 || (x && y), , "x and y must not be NULL");
    FX_REQUIRE_RET(lt->is_trained, , "transform is not trained");
    FX_TRY
    lt->transform_transpose(n, y, x);
    FX_CATCH_RET()
}

void faiss_LinearTransform_set_is_orthonormal(FaissLinearTransform* t) {
    auto lt = vt_as<faiss::LinearTransform>(t);
    FX_REQUIRE_RET(lt, , "handle is NULL or not a LinearTransform");
    FX_TRY
    lt->set_is_orthonormal();
    FX_CATCH_RET()
}

FX_VT_GETTER(LinearTransform, faiss::LinearTransform, int, have_bias,
             o->have_bias)
FX_VT_GETTER(LinearTransform, faiss::LinearTransform, int, is_orthonormal,
             o->is_orthonormal)

/* ---- concrete transforms ---- */

FX_VT_FREE(RandomRotationMatrix)
int faiss_RandomRotationMatrix_new_with(FaissRandomRotationMatrix** p_vt,
                                        int d_in, int d_out) {
    FX_REQUIRE(d_in > 0 && d_out > 0, "d_in and d_out must be > 0");
    FX_VT_NEW(RandomRotationMatrix,
              new faiss::RandomRotationMatrix(d_in, d_out))
}

FX_VT_FREE(PCAMatrix)
int faiss_PCAMatrix_new_with(FaissPCAMatrix** p_vt, int d_in, int d_out,
                             float eigen_power, int random_rotation) {
    FX_REQUIRE(d_in > 0 && d_out > 0, "d_in and d_out must be > 0");
    FX_REQUIRE(d_out <= d_in, "d_out %d > d_in %d", d_out, d_in);
    FX_REQUIRE(std::isfinite(eigen_power), "eigen_power is not finite");
    FX_VT_NEW(PCAMatrix, new faiss::PCAMatrix(d_in, d_out, eigen_power,
                                              random_rotation != 0))
}
FX_VT_GETTER(PCAMatrix, faiss::PCAMatrix, float, eigen_power, o->eigen_power)
FX_VT_GETTER(PCAMatrix, faiss::PCAMatrix, int, random_rotation,
             o->random_rotation)

FX_VT_FREE(ITQMatrix)
int faiss_ITQMatrix_new_with(FaissITQMatrix** p_vt, int d) {
    FX_REQUIRE(d > 0, "d must be > 0");
    FX_VT_NEW(ITQMatrix, new faiss::ITQMatrix(d))
}

FX_VT_FREE(ITQTransform)
int faiss_ITQTransform_new_with(FaissITQTransform** p_vt, int d_in,
                                int d_out, int do_pca) {
    FX_REQUIRE(d_in > 0 && d_out > 0, "d_in and d_out must be > 0");
    FX_REQUIRE(do_pca || d_in == d_out,
               "without PCA, d_out (%d) must equal d_in (%d)", d_out, d_in);
    FX_VT_NEW(ITQTransform, new faiss::ITQTransform(d_in, d_out, do_pca != 0))
}
FX_VT_GETTER(ITQTransform, faiss::ITQTransform, int, do_pca, o->do_pca)

FX_VT_FREE(OPQMatrix)
int faiss_OPQMatrix_new_with(FaissOPQMatrix** p_vt, int d, int M, int d2) {
    FX_REQUIRE(d > 0 && M > 0, "d and M must be > 0");
    int dd = d2 == -1 ? d : d2;
    FX_REQUIRE(dd > 0 && dd % M == 0,
               "output dimension %d must be a positive multiple of M = %d",
               dd, M);
    FX_VT_NEW(OPQMatrix, new faiss::OPQMatrix(d, M, d2))
}
FX_VT_GETTER(OPQMatrix, faiss::OPQMatrix, int, verbose, o->verbose)
FX_VT_SETTER(OPQMatrix, faiss::OPQMatrix, int, verbose,
             o->verbose = val != 0)
FX_VT_GETTER(OPQMatrix, faiss::OPQMatrix, int, niter, o->niter)
FX_VT_SETTER(OPQMatrix, faiss::OPQMatrix, int, niter, o->niter = val)
FX_VT_GETTER(OPQMatrix, faiss::OPQMatrix, int, niter_pq, o->niter_pq)
FX_VT_SETTER(OPQMatrix, faiss::OPQMatrix, int, niter_pq, o->niter_pq = val)

FX_VT_FREE(RemapDimensionsTransform)
int faiss_RemapDimensionsTransform_new_with(
        FaissRemapDimensionsTransform** p_vt, int d_in, int d_out,
        int uniform) {
    FX_REQUIRE(d_in > 0 && d_out > 0, "d_in and d_out must be > 0");
    FX_VT_NEW(RemapDimensionsTransform,
              new faiss::RemapDimensionsTransform(d_in, d_out, uniform != 0))
}

FX_VT_FREE(NormalizationTransform)
int faiss_NormalizationTransform_new_with(FaissNormalizationTransform** p_vt,
                                          int d, float norm) {
    FX_REQUIRE(d > 0, "d must be > 0");
    FX_REQUIRE(std::isfinite(norm), "norm is not finite");
    FX_VT_NEW(NormalizationTransform,
              new faiss::NormalizationTransform(d, norm))
}
FX_VT_GETTER(NormalizationTransform, faiss::NormalizationTransform, float,
             norm, o->norm)

FX_VT_FREE(CenteringTransform)
int faiss_CenteringTransform_new_with(FaissCenteringTransform** p_vt, int d) {
    FX_REQUIRE(d > 0, "d must be > 0");
    FX_VT_NEW(CenteringTransform, new faiss::CenteringTransform(d))
}

} // extern "C"
