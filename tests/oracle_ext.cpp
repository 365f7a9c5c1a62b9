/* oracle_ext.cpp -- faiss C++ references behind oracle_ext.h. */
#include "oracle_ext.h"

#include <faiss/Index.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>

#include <cstdio>
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

} // extern "C"
