/* oracle.cpp -- the faiss C++ reference behind oracle.h. */
#include "oracle.h"

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/impl/AuxIndexStructures.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

static thread_local std::string oracle_err;

extern "C" const char* oracle_last_error(void) {
    return oracle_err.c_str();
}

static std::unique_ptr<faiss::Index> build(const char* factory, int d,
                                           int metric, idx_t nt,
                                           const float* xt, idx_t nb,
                                           const float* xb,
                                           const idx_t* xids,
                                           const char* params) {
    std::unique_ptr<faiss::Index> ix(faiss::index_factory(
            d, factory, static_cast<faiss::MetricType>(metric)));
    if (nt > 0) ix->train(nt, xt);
    if (nb > 0) {
        if (xids)
            ix->add_with_ids(nb, xb, xids);
        else
            ix->add(nb, xb);
    }
    if (params && *params) {
        faiss::ParameterSpace ps;
        ps.set_index_parameters(ix.get(), params);
    }
    return ix;
}

#define ORACLE_TRY try {
#define ORACLE_CATCH                  \
    }                                 \
    catch (const std::exception& e) { \
        oracle_err = e.what();        \
        return -1;                    \
    }

extern "C" int oracle_factory_search(const char* factory, int d, int metric,
                                     idx_t nt, const float* xt, idx_t nb,
                                     const float* xb, const idx_t* xids,
                                     const char* params, idx_t nq,
                                     const float* xq, idx_t k, float* D,
                                     idx_t* I) {
    ORACLE_TRY
    auto ix = build(factory, d, metric, nt, xt, nb, xb, xids, params);
    ix->search(nq, xq, k, D, I);
    return 0;
    ORACLE_CATCH
}

extern "C" int oracle_factory_range(const char* factory, int d, int metric,
                                    idx_t nt, const float* xt, idx_t nb,
                                    const float* xb, const char* params,
                                    idx_t nq, const float* xq, float radius,
                                    size_t** lims, idx_t** labels,
                                    float** distances) {
    ORACLE_TRY
    auto ix = build(factory, d, metric, nt, xt, nb, xb, nullptr, params);
    faiss::RangeSearchResult res(nq);
    ix->range_search(nq, xq, radius, &res);
    size_t tot = res.lims[nq];
    *lims = (size_t*)malloc((nq + 1) * sizeof(size_t));
    *labels = (idx_t*)malloc((tot + 1) * sizeof(idx_t));
    *distances = (float*)malloc((tot + 1) * sizeof(float));
    memcpy(*lims, res.lims, (nq + 1) * sizeof(size_t));
    memcpy(*labels, res.labels, tot * sizeof(idx_t));
    memcpy(*distances, res.distances, tot * sizeof(float));
    return 0;
    ORACLE_CATCH
}

extern "C" int oracle_factory_write(const char* factory, int d, int metric,
                                    idx_t nt, const float* xt, idx_t nb,
                                    const float* xb, const char* path) {
    ORACLE_TRY
    auto ix = build(factory, d, metric, nt, xt, nb, xb, nullptr, nullptr);
    faiss::write_index(ix.get(), path);
    return 0;
    ORACLE_CATCH
}

extern "C" int oracle_factory_reconstruct(const char* factory, int d,
                                          int metric, idx_t nt,
                                          const float* xt, idx_t nb,
                                          const float* xb, float* recons) {
    ORACLE_TRY
    auto ix = build(factory, d, metric, nt, xt, nb, xb, nullptr, nullptr);
    ix->reconstruct_n(0, nb, recons);
    return 0;
    ORACLE_CATCH
}

extern "C" int oracle_factory_sa_encode(const char* factory, int d,
                                        int metric, idx_t nt,
                                        const float* xt, idx_t nq,
                                        const float* xq, uint8_t* codes,
                                        size_t* code_size) {
    ORACLE_TRY
    auto ix = build(factory, d, metric, nt, xt, 0, nullptr, nullptr, nullptr);
    *code_size = ix->sa_code_size();
    if (codes) ix->sa_encode(nq, xq, codes);
    return 0;
    ORACLE_CATCH
}
