/* sq.cpp -- IndexScalarQuantizer_c.h: scalar quantizer, flat and IVF.
 *
 * Upstream 1.7.3 defines no faiss_IndexIVFScalarQuantizer_new and compiles
 * ..._new_with with C++ linkage; both are plain C functions here, with the
 * header's exact signatures. */
#include "core/core.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexScalarQuantizer.h>

namespace {
int check_qt(const char* func, int qt) {
    if (qt < QT_8bit || qt > QT_6bit)
        return fx::fail(FAISSX_E_INVALID, func,
                        "unknown quantizer type %d (expected %d..%d)", qt,
                        (int)QT_8bit, (int)QT_6bit);
    return 0;
}
using QT = faiss::ScalarQuantizer::QuantizerType;
static_assert((int)QT_6bit == (int)faiss::ScalarQuantizer::QT_6bit &&
                      (int)QT_fp16 == (int)faiss::ScalarQuantizer::QT_fp16,
              "quantizer type enums differ");
} // namespace

extern "C" {

int faiss_IndexScalarQuantizer_new(FaissIndexScalarQuantizer** p_index) {
    FX_NOT_NULL(p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexScalarQuantizer>(
            static_cast<faiss::Index*>(new faiss::IndexScalarQuantizer()));
    return 0;
    FX_CATCH
}

int faiss_IndexScalarQuantizer_new_with(FaissIndexScalarQuantizer** p_index,
                                        idx_t d, FaissQuantizerType qt,
                                        FaissMetricType metric) {
    FX_NOT_NULL(p_index);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    if (int rc = check_qt(__func__, fx::raw_enum(qt))) return rc;
    if (int rc = fx::check_metric(__func__, fx::raw_enum(metric))) return rc;
    FX_REMOTE_UPLOAD(p_index, new faiss::IndexScalarQuantizer(
                                      d, static_cast<QT>(qt),
                                      static_cast<faiss::MetricType>(metric)));
    FX_TRY
    *p_index = fx::handle<FaissIndexScalarQuantizer>(
            static_cast<faiss::Index*>(new faiss::IndexScalarQuantizer(
                    d, static_cast<QT>(qt),
                    static_cast<faiss::MetricType>(metric))));
    return 0;
    FX_CATCH
}

FX_DOWNCAST_R(IndexScalarQuantizer, faiss::IndexScalarQuantizer, FX_KIND_SQ)
FX_INDEX_FREE(IndexScalarQuantizer)

FX_DOWNCAST_R(IndexIVFScalarQuantizer, faiss::IndexIVFScalarQuantizer, FX_KIND_IVFSQ)
FX_INDEX_FREE(IndexIVFScalarQuantizer)

int faiss_IndexIVFScalarQuantizer_new(FaissIndexIVFScalarQuantizer** p_index) {
    FX_NOT_NULL(p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexIVFScalarQuantizer>(
            static_cast<faiss::Index*>(new faiss::IndexIVFScalarQuantizer()));
    return 0;
    FX_CATCH
}

int faiss_IndexIVFScalarQuantizer_new_with_metric(
        FaissIndexIVFScalarQuantizer** p_index, FaissIndex* quantizer,
        size_t d, size_t nlist, FaissQuantizerType qt, FaissMetricType metric,
        int encode_residual) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(quantizer);
    if (int rc = fx::check_dim(__func__, (long long)d)) return rc;
    if (int rc = check_qt(__func__, fx::raw_enum(qt))) return rc;
    if (int rc = fx::check_metric(__func__, fx::raw_enum(metric))) return rc;
    FX_REQUIRE(nlist > 0, "nlist must be > 0");
    FX_REQUIRE(fx::index(quantizer)->d == (int)d,
               "quantizer dimension %d differs from d = %zu",
               fx::index(quantizer)->d, d);
    // A remote quantizer makes a remote IVF on the quantizer's server.
    if (auto rq = fx::as_remote(fx::index(quantizer)))
        return fx::remote_wrap(
                __func__, rq, FX_WRAP_IVFSQ,
                [&](fx_wbuf* w) {
                    fx_w_i64(w, (int64_t)d);
                    fx_w_i64(w, (int64_t)nlist);
                    fx_w_i64(w, qt);
                    fx_w_i64(w, metric);
                    fx_w_i64(w, encode_residual != 0);
                },
                reinterpret_cast<FaissIndex**>(p_index));
    FX_TRY
    *p_index = fx::handle<FaissIndexIVFScalarQuantizer>(
            static_cast<faiss::Index*>(new faiss::IndexIVFScalarQuantizer(
                    fx::index(quantizer), d, nlist, static_cast<QT>(qt),
                    static_cast<faiss::MetricType>(metric),
                    encode_residual != 0)));
    return 0;
    FX_CATCH
}

int faiss_IndexIVFScalarQuantizer_new_with(
        FaissIndexIVFScalarQuantizer** p_index, FaissIndex* quantizer, idx_t d,
        size_t nlist, FaissQuantizerType qt) {
    if (d <= 0) return fx::check_dim(__func__, d);
    if (int rc = check_qt(__func__, fx::raw_enum(qt))) return rc;
    return faiss_IndexIVFScalarQuantizer_new_with_metric(
            p_index, quantizer, (size_t)d, nlist, qt, METRIC_L2, 1);
}

FX_GETTER_R(IndexIVFScalarQuantizer, faiss::IndexIVFScalarQuantizer, size_t,
            nlist, o->nlist, FX_KIND_IVFSQ, "nlist")
FX_GETTER_R(IndexIVFScalarQuantizer, faiss::IndexIVFScalarQuantizer, size_t,
            nprobe, o->nprobe, FX_KIND_IVFSQ, "nprobe")
FX_SETTER_R(IndexIVFScalarQuantizer, faiss::IndexIVFScalarQuantizer, size_t,
            nprobe, o->nprobe = val, FX_KIND_IVFSQ, "nprobe")
FaissIndex* faiss_IndexIVFScalarQuantizer_quantizer(
        const FaissIndexIVFScalarQuantizer* obj) {
    return fx::quantizer_of(__func__, reinterpret_cast<const FaissIndex*>(obj));
}
FX_OWN_FIELDS_R(IndexIVFScalarQuantizer, faiss::IndexIVFScalarQuantizer, FX_KIND_IVFSQ)

int faiss_IndexIVFScalarQuantizer_add_core(
        FaissIndexIVFScalarQuantizer* index, idx_t n, const float* x,
        const idx_t* xids, const idx_t* precomputed_idx) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index),
                                    FX_KIND_IVFSQ))
        return fx::remote_ivf_add_core(__func__, r, n, x, xids,
                                       precomputed_idx);
    FX_CAST(ivf, faiss::IndexIVFScalarQuantizer, index);
    return fx::ivf_add_core_checked(__func__, ivf, n, x, xids,
                                    precomputed_idx);
}

int faiss_IndexIVFScalarQuantizer_train_residual(
        FaissIndexIVFScalarQuantizer* index, idx_t n, const float* x) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index), FX_KIND_IVFSQ)) {
        if (int rc = fx::check_vectors(__func__, n, x, r->d, "x")) return rc;
        FX_TRY
        r->ivf_mutate(FX_IVF_TRAIN_RESIDUAL, [&](fx_wbuf* w) {
            fx_w_i64(w, n);
            fx_w_array(w, x, (uint64_t)n * r->d, sizeof(float));
        });
        return 0;
        FX_CATCH
    }
    FX_CAST(ivf, faiss::IndexIVFScalarQuantizer, index);
    if (int rc = fx::check_vectors(__func__, n, x, ivf->d, "x")) return rc;
    FX_REQUIRE(ivf->quantizer && ivf->quantizer->is_trained &&
                       ivf->quantizer->ntotal == (idx_t)ivf->nlist,
               "the coarse quantizer must be trained with nlist centroids "
               "first");
    FX_TRY
    ivf->train_residual(n, x);
    return 0;
    FX_CATCH
}

} // extern "C"
