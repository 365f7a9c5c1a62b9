/* oracle_threads.cpp -- faiss C++ references behind oracle_threads.h. */
#include "oracle_threads.h"

#include <faiss/IndexFlat.h>

#include <exception>
#include <string>

namespace {
thread_local std::string err;
}

extern "C" {

const char* oracle_threads_error(void) {
    return err.c_str();
}

int oracle_threads_flat_search(int d, int metric, idx_t nb, const float* xb,
                               idx_t nq, const float* xq, idx_t k, float* D,
                               idx_t* I) {
    try {
        faiss::IndexFlat ix(d, static_cast<faiss::MetricType>(metric));
        ix.add(nb, xb);
        ix.search(nq, xq, k, D, I);
        return 0;
    } catch (const std::exception& e) {
        err = e.what();
        return -1;
    }
}

} // extern "C"
