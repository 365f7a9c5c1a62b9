/* oracle_flat.cpp -- faiss C++ references behind oracle_flat.h. */
#include "oracle_flat.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexRefine.h>
#include <faiss/index_factory.h>

#include <exception>
#include <memory>
#include <string>

namespace {
thread_local std::string err;
}

#define OTRY try {
#define OCATCH                                                             \
    }                                                                      \
    catch (const std::exception& e) {                                      \
        err = e.what();                                                    \
        return -1;                                                         \
    }

extern "C" {

const char* oracle_flat_error(void) {
    return err.c_str();
}

int oracle_flat_defaults(int which, int* d, int* metric) {
    OTRY
    std::unique_ptr<faiss::Index> ix;
    switch (which) {
    case 0: ix.reset(new faiss::IndexFlat()); break;
    case 1: ix.reset(new faiss::IndexFlatIP()); break;
    case 2: ix.reset(new faiss::IndexFlatL2()); break;
    default: ix.reset(new faiss::IndexFlat1D()); break;
    }
    *d = ix->d;
    *metric = ix->metric_type;
    return 0;
    OCATCH
}

int oracle_flat_distance_subset(int d, int metric, idx_t nb, const float* xb,
                                idx_t n, const float* x, idx_t k,
                                const idx_t* labels, float* D) {
    OTRY
    faiss::IndexFlat ix(d, static_cast<faiss::MetricType>(metric));
    ix.add(nb, xb);
    ix.compute_distance_subset(n, x, k, D, labels);
    return 0;
    OCATCH
}

int oracle_refine_flat_search(const char* base, int d, int metric, idx_t nt,
                              const float* xt, idx_t nb, const float* xb,
                              float k_factor, idx_t nq, const float* xq,
                              idx_t k, float* D, idx_t* I) {
    OTRY
    std::unique_ptr<faiss::Index> b(faiss::index_factory(
            d, base, static_cast<faiss::MetricType>(metric)));
    faiss::IndexRefineFlat r(b.get());
    r.k_factor = k_factor;
    if (nt > 0) r.train(nt, xt);
    r.add(nb, xb);
    r.search(nq, xq, k, D, I);
    return 0;
    OCATCH
}

int oracle_flat1d_search(int continuous_update, idx_t nb, const float* xb,
                         idx_t nq, const float* xq, idx_t k, float* D,
                         idx_t* I) {
    OTRY
    faiss::IndexFlat1D ix(continuous_update != 0);
    ix.add(nb, xb);
    if (!continuous_update) ix.update_permutation();
    ix.search(nq, xq, k, D, I);
    return 0;
    OCATCH
}

} // extern "C"
