/* oracle_ext.cpp -- faiss C++ references behind oracle_ext.h. */
#include "oracle_ext.h"

#include <faiss/Index.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/HNSW.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

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

#define OX_STR2(x) #x
#define OX_STR(x) OX_STR2(x)

extern "C" {

const char* oracle_ext_error(void) {
    return err.c_str();
}

const char* oracle_faiss_version(void) {
    return OX_STR(FAISS_VERSION_MAJOR) "." OX_STR(
            FAISS_VERSION_MINOR) "." OX_STR(FAISS_VERSION_PATCH);
}

int oracle_ivf_wrong_params_message(char* buf, size_t cap) {
    std::unique_ptr<faiss::Index> ix(faiss::index_factory(4, "IVF1,Flat"));
    float x[4] = {0, 0, 0, 0};
    ix->train(1, x);
    faiss::SearchParameters sp;
    float D;
    faiss::Index::idx_t I;
    try {
        ix->search(1, x, 1, &D, &I, &sp);
    } catch (const std::exception& e) {
        std::snprintf(buf, cap, "%s", e.what());
        return 0;
    }
    err = "faiss accepted plain SearchParameters on an IVF index";
    return -1;
}

void oracle_sp_ivf_defaults(size_t* nprobe, size_t* max_codes) {
    faiss::SearchParametersIVF sp;
    *nprobe = sp.nprobe;
    *max_codes = sp.max_codes;
}

int oracle_ivf_search_params(const char* factory, int d, idx_t nt,
                             const float* xt, idx_t nb, const float* xb,
                             size_t nprobe, size_t max_codes,
                             const uint8_t* member, idx_t nq,
                             const float* xq, idx_t k, float* D, idx_t* I) {
    OTRY
    std::unique_ptr<faiss::Index> ix(faiss::index_factory(d, factory));
    ix->train(nt, xt);
    ix->add(nb, xb);
    std::vector<faiss::Index::idx_t> ids;
    std::unique_ptr<faiss::IDSelectorBatch> sel;
    if (member) {
        for (idx_t i = 0; i < nb; i++)
            if (member[i]) ids.push_back(i);
        sel.reset(new faiss::IDSelectorBatch(ids.size(), ids.data()));
    }
    faiss::SearchParametersIVF sp;
    sp.nprobe = nprobe;
    sp.max_codes = max_codes;
    sp.sel = sel.get();
    ix->search(nq, xq, k, D, I, &sp);
    return 0;
    OCATCH
}

void oracle_sp_hnsw_defaults(int* efSearch, int* check_relative_distance) {
    faiss::SearchParametersHNSW sp;
    *efSearch = sp.efSearch;
    *check_relative_distance = sp.check_relative_distance;
}

} // extern "C"

/* IDSelectorBatch of {i < nb : member[i]}, or NULL. */
static faiss::IDSelectorBatch* member_sel(idx_t nb, const uint8_t* member) {
    if (!member) return nullptr;
    std::vector<faiss::Index::idx_t> ids;
    for (idx_t i = 0; i < nb; i++)
        if (member[i]) ids.push_back(i);
    return new faiss::IDSelectorBatch(ids.size(), ids.data());
}

extern "C" {

int oracle_hnsw_search_params(const char* factory, int d, idx_t nb,
                              const float* xb, int efSearch,
                              int check_relative_distance,
                              const uint8_t* member, idx_t nq,
                              const float* xq, idx_t k, float* D, idx_t* I) {
    OTRY
    std::unique_ptr<faiss::Index> ix(faiss::index_factory(d, factory));
    ix->add(nb, xb);
    std::unique_ptr<faiss::IDSelectorBatch> sel(member_sel(nb, member));
    faiss::SearchParametersHNSW sp;
    sp.efSearch = efSearch;
    sp.check_relative_distance = check_relative_distance != 0;
    sp.sel = sel.get();
    ix->search(nq, xq, k, D, I, &sp);
    return 0;
    OCATCH
}

int oracle_range_search_params(const char* factory, int d, idx_t nt,
                               const float* xt, idx_t nb, const float* xb,
                               size_t nprobe, const uint8_t* member,
                               idx_t nq, const float* xq, float radius,
                               size_t** lims, idx_t** labels,
                               float** distances) {
    OTRY
    std::unique_ptr<faiss::Index> ix(faiss::index_factory(d, factory));
    ix->train(nt, xt);
    ix->add(nb, xb);
    std::unique_ptr<faiss::IDSelectorBatch> sel(member_sel(nb, member));
    faiss::SearchParametersIVF spi;
    faiss::SearchParameters sp;
    spi.nprobe = nprobe;
    spi.sel = sp.sel = sel.get();
    faiss::RangeSearchResult res(nq);
    ix->range_search(nq, xq, radius, &res,
                     nprobe > 0 ? &spi : &sp);
    size_t tot = res.lims[nq];
    *lims = (size_t*)std::malloc((nq + 1) * sizeof(size_t));
    *labels = (idx_t*)std::malloc((tot + 1) * sizeof(idx_t));
    *distances = (float*)std::malloc((tot + 1) * sizeof(float));
    std::memcpy(*lims, res.lims, (nq + 1) * sizeof(size_t));
    std::memcpy(*labels, res.labels, tot * sizeof(idx_t));
    std::memcpy(*distances, res.distances, tot * sizeof(float));
    return 0;
    OCATCH
}

} // extern "C"
