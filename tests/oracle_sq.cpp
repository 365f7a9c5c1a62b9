/* oracle_sq.cpp -- faiss C++ references for test_sq.c. */
#include "oracle_sq.h"
#include "oracle_ix_impl.hpp"

#include <faiss/IndexFlat.h>
#include <faiss/IndexScalarQuantizer.h>

#include <algorithm>

namespace {

using QT = faiss::ScalarQuantizer::QuantizerType;

const faiss::ScalarQuantizer* sq_of(const faiss::Index* ix) {
    if (auto s = dynamic_cast<const faiss::IndexScalarQuantizer*>(ix))
        return &s->sq;
    if (auto s = dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(ix))
        return &s->sq;
    throw std::runtime_error("oracle: not a scalar quantizer index");
}

int copy_trained(const faiss::Index* ix, float* out, size_t cap, size_t* n) {
    OIX_TRY
    const auto& t = sq_of(ix)->trained;
    *n = t.size();
    std::copy_n(t.begin(), std::min(cap, t.size()), out);
    return 0;
    OIX_CATCH
}

} // namespace

extern "C" {

OIx* oix_sq(int d, int qt, int metric) {
    try {
        return oix_detail::wrap(new faiss::IndexScalarQuantizer(
                d, static_cast<QT>(qt),
                static_cast<faiss::MetricType>(metric)));
    } catch (const std::exception& e) {
        oix_detail::err() = e.what();
        return nullptr;
    }
}

OIx* oix_ivfsq(int d, int metric, size_t nlist, int qt, int by_residual,
               const float* centroids) {
    try {
        faiss::Index* q;
        if (metric == faiss::METRIC_INNER_PRODUCT)
            q = new faiss::IndexFlatIP(d);
        else
            q = new faiss::IndexFlatL2(d);
        if (centroids) q->add(nlist, centroids);
        auto ix = new faiss::IndexIVFScalarQuantizer(
                q, d, nlist, static_cast<QT>(qt),
                static_cast<faiss::MetricType>(metric), by_residual != 0);
        ix->own_fields = true;
        return oix_detail::wrap(ix);
    } catch (const std::exception& e) {
        oix_detail::err() = e.what();
        return nullptr;
    }
}

int oix_train_residual(OIx* o, idx_t n, const float* x) {
    OIX_TRY
    oix_detail::ivf(o)->train_residual(n, x);
    return 0;
    OIX_CATCH
}

int oix_sq_trained(const OIx* o, float* out, size_t cap, size_t* n) {
    return copy_trained(o->index, out, cap, n);
}

int oracle_sq_trained(const FaissIndex* c_index, float* out, size_t cap,
                      size_t* n) {
    return copy_trained(reinterpret_cast<const faiss::Index*>(c_index), out,
                        cap, n);
}

int oracle_sq_fields(const FaissIndex* c_index, int* qt, size_t* code_size,
                     int* by_residual) {
    OIX_TRY
    auto ix = reinterpret_cast<const faiss::Index*>(c_index);
    const faiss::ScalarQuantizer* sq = sq_of(ix);
    *qt = static_cast<int>(sq->qtype);
    *code_size = sq->code_size;
    auto ivf = dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(ix);
    *by_residual = ivf ? (int)ivf->by_residual : -1;
    return 0;
    OIX_CATCH
}

} // extern "C"
