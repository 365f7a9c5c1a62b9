/* oracle_lsh.cpp -- faiss C++ references for test_lsh.c. */
#include "oracle_lsh.h"
#include "oracle_ix_impl.hpp"

#include <faiss/IndexLSH.h>

#include <algorithm>

namespace {
int copy_thresholds(const faiss::Index* ix, float* out, size_t cap,
                    size_t* n) {
    OIX_TRY
    auto lsh = dynamic_cast<const faiss::IndexLSH*>(ix);
    if (!lsh) throw std::runtime_error("oracle: not an IndexLSH");
    *n = lsh->thresholds.size();
    std::copy_n(lsh->thresholds.begin(), std::min(cap, *n), out);
    return 0;
    OIX_CATCH
}
} // namespace

extern "C" {

OIx* oix_lsh(int d, int nbits, int rotate_data, int train_thresholds) {
    try {
        return oix_detail::wrap(new faiss::IndexLSH(
                d, nbits, rotate_data != 0, train_thresholds != 0));
    } catch (const std::exception& e) {
        oix_detail::err() = e.what();
        return nullptr;
    }
}

int oracle_lsh_thresholds(const FaissIndex* c_index, float* out, size_t cap,
                          size_t* n) {
    return copy_thresholds(reinterpret_cast<const faiss::Index*>(c_index),
                           out, cap, n);
}

int oix_lsh_thresholds(const OIx* o, float* out, size_t cap, size_t* n) {
    return copy_thresholds(o->index, out, cap, n);
}

} // extern "C"
