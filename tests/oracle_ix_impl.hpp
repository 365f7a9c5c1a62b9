/* oracle_ix_impl.hpp -- the implementation of oracle_ix.h. Include it in
 * exactly one .cpp per test executable. */
#ifndef FXT_ORACLE_IX_IMPL_HPP
#define FXT_ORACLE_IX_IMPL_HPP

#include "oracle_ix.h"

#include <faiss/IndexIVF.h>
#include <faiss/invlists/InvertedLists.h>

#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

namespace oix_detail {

inline std::string& err() {
    static thread_local std::string e;
    return e;
}

inline faiss::IndexIVF* ivf(const OIx* o) {
    auto p = dynamic_cast<faiss::IndexIVF*>(o->index);
    if (!p) throw std::runtime_error("oracle: not an IndexIVF");
    return p;
}

inline OIx* wrap(faiss::Index* ix) {
    return new OIx{ix};
}

} // namespace oix_detail

#define OIX_TRY try {
#define OIX_CATCH                               \
    }                                           \
    catch (const std::exception& e) {           \
        oix_detail::err() = e.what();           \
        return -1;                              \
    }

extern "C" {

const char* oix_last_error(void) {
    return oix_detail::err().c_str();
}

void oix_free(OIx* o) {
    if (!o) return;
    delete o->index;
    delete o;
}

idx_t oix_ntotal(const OIx* o) {
    return o->index->ntotal;
}

int oix_is_trained(const OIx* o) {
    return o->index->is_trained;
}

int oix_train(OIx* o, idx_t n, const float* x) {
    OIX_TRY
    o->index->train(n, x);
    return 0;
    OIX_CATCH
}

int oix_add(OIx* o, idx_t n, const float* x, const idx_t* xids) {
    OIX_TRY
    if (xids)
        o->index->add_with_ids(n, x, xids);
    else
        o->index->add(n, x);
    return 0;
    OIX_CATCH
}

int oix_search(const OIx* o, idx_t n, const float* x, idx_t k, float* D,
               idx_t* I) {
    OIX_TRY
    o->index->search(n, x, k, D, I);
    return 0;
    OIX_CATCH
}

int oix_reconstruct(const OIx* o, idx_t key, float* recons) {
    OIX_TRY
    o->index->reconstruct(key, recons);
    return 0;
    OIX_CATCH
}

int oix_reconstruct_n(const OIx* o, idx_t i0, idx_t ni, float* recons) {
    OIX_TRY
    o->index->reconstruct_n(i0, ni, recons);
    return 0;
    OIX_CATCH
}

int oix_sa_code_size(const OIx* o, size_t* size) {
    OIX_TRY
    *size = o->index->sa_code_size();
    return 0;
    OIX_CATCH
}

int oix_sa_encode(const OIx* o, idx_t n, const float* x, uint8_t* codes) {
    OIX_TRY
    o->index->sa_encode(n, x, codes);
    return 0;
    OIX_CATCH
}

int oix_sa_decode(const OIx* o, idx_t n, const uint8_t* codes, float* x) {
    OIX_TRY
    o->index->sa_decode(n, codes, x);
    return 0;
    OIX_CATCH
}

int oix_set_nprobe(OIx* o, size_t nprobe) {
    OIX_TRY
    oix_detail::ivf(o)->nprobe = nprobe;
    return 0;
    OIX_CATCH
}

int oix_add_core(OIx* o, idx_t n, const float* x, const idx_t* xids,
                 const idx_t* assign) {
    OIX_TRY
    oix_detail::ivf(o)->add_core(n, x, xids, assign);
    return 0;
    OIX_CATCH
}

size_t oix_list_size(const OIx* o, size_t list_no) {
    return oix_detail::ivf(o)->get_list_size(list_no);
}

int oix_list_ids(const OIx* o, size_t list_no, idx_t* ids) {
    OIX_TRY
    auto iv = oix_detail::ivf(o);
    size_t n = iv->invlists->list_size(list_no);
    faiss::InvertedLists::ScopedIds s(iv->invlists, list_no);
    if (n) std::memcpy(ids, s.get(), n * sizeof(idx_t));
    return 0;
    OIX_CATCH
}

int oix_make_direct_map(OIx* o, int on) {
    OIX_TRY
    oix_detail::ivf(o)->make_direct_map(on != 0);
    return 0;
    OIX_CATCH
}

} // extern "C"

#endif
