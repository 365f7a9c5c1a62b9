/* oracle_autotune.cpp -- faiss C++ references behind oracle_autotune.h. */
#include "oracle_autotune.h"

#include <faiss/AutoTune.h>
#include <faiss/IndexHNSW.h>
#include <faiss/index_factory.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>

namespace {
thread_local std::string err;

void put(const std::string& s, char* name, size_t cap) {
    if (name && cap) std::snprintf(name, cap, "%s", s.c_str());
}
} // namespace

#define OTRY try {
#define OCATCH                                                             \
    }                                                                      \
    catch (const std::exception& e) {                                      \
        err = e.what();                                                    \
        return -1;                                                         \
    }

extern "C" {

const char* oracle_autotune_error(void) {
    return err.c_str();
}

int oracle_ps_fresh(size_t cno, size_t* ncomb, char* name, size_t cap) {
    OTRY
    faiss::ParameterSpace ps;
    *ncomb = ps.n_combinations();
    if (cno < *ncomb) put(ps.combination_name(cno), name, cap);
    return 0;
    OCATCH
}

int oracle_ps_initialized(const char* factory, int d, idx_t nt,
                          const float* xt, size_t cno, size_t* ncomb,
                          char* name, size_t cap) {
    OTRY
    std::unique_ptr<faiss::Index> ix(faiss::index_factory(d, factory));
    if (nt > 0) ix->train(nt, xt);
    faiss::ParameterSpace ps;
    ps.initialize(ix.get());
    *ncomb = ps.n_combinations();
    if (cno < *ncomb) put(ps.combination_name(cno), name, cap);
    return 0;
    OCATCH
}

int oracle_ps_initialize_handle(FaissParameterSpace* ps,
                                const FaissIndex* index) {
    OTRY
    reinterpret_cast<faiss::ParameterSpace*>(ps)->initialize(
            reinterpret_cast<const faiss::Index*>(index));
    return 0;
    OCATCH
}

int oracle_hnsw_efsearch(const FaissIndex* index, int* ef) {
    auto h = dynamic_cast<const faiss::IndexHNSW*>(
            reinterpret_cast<const faiss::Index*>(index));
    if (!h) {
        err = "not an IndexHNSW";
        return -1;
    }
    *ef = h->hnsw.efSearch;
    return 0;
}

} // extern "C"
