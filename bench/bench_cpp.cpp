/* bench_cpp.cpp -- the reference side of the benchmark: the same operations
 * as bench_capi.c, calling faiss C++ directly (same libfaiss.a, same
 * binary). Exceptions are caught so they never cross into the C driver. */
#include "bench.h"

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/utils/utils.h>

#include <omp.h>

#include <cstdio>
#include <exception>
#include <string>

extern "C" void openblas_set_num_threads(int num_threads);
extern "C" char* openblas_get_config(void);

namespace {

faiss::Index* ix_of(void* p) {
    return static_cast<faiss::Index*>(p);
}

int report(const char* what, const std::exception& e) {
    std::fprintf(stderr, "faiss C++ %s: %s\n", what, e.what());
    return -1;
}

void* cpp_flat_new(int d) {
    try {
        return static_cast<faiss::Index*>(new faiss::IndexFlatL2(d));
    } catch (const std::exception& e) {
        report("IndexFlatL2", e);
        return nullptr;
    }
}

void* cpp_ivf_new(int d, size_t nlist) {
    try {
        auto q = new faiss::IndexFlatL2(d);
        auto ivf = new faiss::IndexIVFFlat(q, d, nlist);
        ivf->own_fields = true;
        return static_cast<faiss::Index*>(ivf);
    } catch (const std::exception& e) {
        report("IndexIVFFlat", e);
        return nullptr;
    }
}

void* cpp_hnsw_new(int d, int M) {
    try {
        return static_cast<faiss::Index*>(new faiss::IndexHNSWFlat(d, M));
    } catch (const std::exception& e) {
        report("IndexHNSWFlat", e);
        return nullptr;
    }
}

int cpp_train(void* ix, int64_t n, const float* x) {
    try {
        ix_of(ix)->train(n, x);
        return 0;
    } catch (const std::exception& e) {
        return report("train", e);
    }
}

int cpp_add(void* ix, int64_t n, const float* x) {
    try {
        ix_of(ix)->add(n, x);
        return 0;
    } catch (const std::exception& e) {
        return report("add", e);
    }
}

int cpp_reset(void* ix) {
    try {
        ix_of(ix)->reset();
        return 0;
    } catch (const std::exception& e) {
        return report("reset", e);
    }
}

int cpp_set_nprobe(void* ix, size_t nprobe) {
    auto ivf = dynamic_cast<faiss::IndexIVF*>(ix_of(ix));
    if (!ivf) {
        std::fprintf(stderr, "faiss C++ set_nprobe: not an IndexIVF\n");
        return -1;
    }
    ivf->nprobe = nprobe;
    return 0;
}

int cpp_set_ef_search(void* ix, int ef) {
    auto h = dynamic_cast<faiss::IndexHNSW*>(ix_of(ix));
    if (!h) {
        std::fprintf(stderr, "faiss C++ set_ef_search: not an IndexHNSW\n");
        return -1;
    }
    h->hnsw.efSearch = ef;
    return 0;
}

int cpp_search(void* ix, int64_t n, const float* x, int64_t k, float* D,
               int64_t* I) {
    try {
        ix_of(ix)->search(n, x, k, D, I);
        return 0;
    } catch (const std::exception& e) {
        return report("search", e);
    }
}

void cpp_free_index(void* ix) {
    delete ix_of(ix);
}

std::string faiss_info;

} // namespace

extern "C" {

const bench_ops bench_cpp_ops = {
        "faiss C++",   cpp_flat_new, cpp_ivf_new,       cpp_hnsw_new,
        cpp_train,     cpp_add,      cpp_reset,         cpp_set_nprobe,
        cpp_set_ef_search, cpp_search, cpp_free_index,
};

int bench_set_threads(int n) {
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return omp_get_max_threads();
}

const char* bench_faiss_info(void) {
    if (faiss_info.empty()) {
        faiss_info = "faiss " + std::to_string(FAISS_VERSION_MAJOR) + "." +
                std::to_string(FAISS_VERSION_MINOR) + "." +
                std::to_string(FAISS_VERSION_PATCH) + " (" +
                faiss::get_compile_options() + "); OpenBLAS " +
                openblas_get_config();
    }
    return faiss_info.c_str();
}

} // extern "C"
