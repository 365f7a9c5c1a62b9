/* index_binary.cpp -- IndexBinary_c.h, plus the binary constructors of
 * faissx.h (faiss 1.7.3's C API can only read binary indexes from disk). */
#include "core/core.h"

#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexBinaryHash.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/HNSW.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/Heap.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>
#include <cstdio>
#include <vector>
#include <limits>

namespace {

using bidx = faiss::IndexBinary::idx_t;

/* Binary indexes whose keys are positions 0..ntotal-1. */
bool positional(const faiss::IndexBinary* ix) {
    return dynamic_cast<const faiss::IndexBinaryFlat*>(ix) ||
           dynamic_cast<const faiss::IndexBinaryHNSW*>(ix);
}

int check_codes(const char* func, idx_t n, const uint8_t* x) {
    if (n < 0)
        return fx::fail(FAISSX_E_INVALID, func, "n must be >= 0 (got %lld)",
                        (long long)n);
    if (n > 0 && !x)
        return fx::fail(FAISSX_E_INVALID, func, "argument 'x' is NULL");
    return 0;
}

int check_bin_dim(const char* func, long long d) {
    if (int rc = fx::check_dim(func, d)) return rc;
    if (d % 8 != 0)
        return fx::fail(FAISSX_E_INVALID, func,
                        "binary dimension d must be a multiple of 8 (got "
                        "%lld)",
                        d);
    return 0;
}

template <class T>
T* bas(FaissIndexBinary* p) {
    return fx::asb<T>(p);
}

/* True when h is a binary durable-store handle (persist/store.h) whose
 * index is a T: the typed calls below then reach that index -- getters
 * read it, setters go through the store's log (durably), as for a float
 * store handle (core/core.h, stored_is). */
template <class T>
bool bstored_is(const void* h) {
    auto ix = reinterpret_cast<const faiss::IndexBinary*>(h);
    bool yes = false;
    if (ix && fx::store::is_stored(ix))
        fx::store::read_inner(ix, [&](const faiss::IndexBinary* in) {
            yes = dynamic_cast<const T*>(in) != nullptr;
        });
    return yes;
}

/* The error of a call that would hand out the internals of a store
 * handle's index (a change there would bypass the store's log). */
void note_stored_internals(const char* func, const char* what) {
    fx::note_error(FAISSX_E_UNSUPPORTED, func,
                   "the %s of an index in a durable store is not available "
                   "through its store handle (changes there would bypass "
                   "the store's log)",
                   what);
}

/* False when ix is known not to be trained. A remote index is not asked
 * first (another client may have trained it): the server makes the same
 * check and its refusal gets the local text (fx::handle_exception); a call
 * that succeeds marks the handle trained (docs/client.md, "Round trips"). */
bool trained_now(const faiss::IndexBinary* ix) {
    return ix->is_trained || fx::as_remote_bin(ix) != nullptr;
}

/* ntotal/is_trained of a remote index come from the server (other clients
 * write too); on failure the last known value stays, the error recorded. */
void sync_remote(const FaissIndexBinary* obj, const char* func) {
    if (auto r = fx::as_remote_bin(fx::bindex(obj))) {
        try {
            r->sync();
        } catch (...) {
            fx::handle_exception(func);
        }
    }
}

/* The remote index behind h if its server-side index has a `kind` bit. */
fx::RemoteIndexBinary* remote_kind(const void* h, int64_t kind) {
    auto ix = fx::bindex(static_cast<const FaissIndexBinary*>(h));
    return h && fx::remote_bin_is(ix, kind) ? fx::as_remote_bin(ix) : nullptr;
}

/* In remote mode, create the binary index `desc` on the server and return
 * from the calling constructor. */
#define FX_REMOTE_BCREATE(p_index, d, desc)                                  \
    do {                                                                    \
        std::shared_ptr<fx::Conn> fx_conn_;                                 \
        if (int fx_rc_ = fx::remote_conn(__func__, &fx_conn_)) return fx_rc_; \
        if (fx_conn_) {                                                     \
            FaissIndexBinary* fx_out_ = nullptr;                            \
            int fx_rc_ = fx::remote_bin_create(__func__, fx_conn_, nullptr, \
                                               (int)(d), (desc), &fx_out_); \
            if (fx_rc_ == 0)                                                \
                *(p_index) = reinterpret_cast<                              \
                        std::remove_reference_t<decltype(*(p_index))>>(fx_out_); \
            return fx_rc_;                                                  \
        }                                                                   \
    } while (0)

} // namespace

#define FX_BCAST(var, T, h)                                              \
    auto var = fx::asb<T>(reinterpret_cast<FaissIndexBinary*>(h));       \
    if (!var)                                                            \
        return fx::fail(FAISSX_E_INVALID, __func__,                      \
                        "argument '%s' is NULL or not a " #T, #h);

#define FX_BGETTER(cls, T, ty, name, expr)                               \
    ty faiss_##cls##_##name(const Faiss##cls* obj) {                     \
        auto o = fx::asb<T>(reinterpret_cast<const FaissIndexBinary*>(obj)); \
        FX_REQUIRE_RET(o != nullptr, (ty)0,                              \
                       "handle is NULL or not a " #T);                   \
        return (ty)(expr);                                               \
    }
#define FX_BSETTER(cls, T, ty, name, stmt)                               \
    void faiss_##cls##_set_##name(Faiss##cls* obj, ty val) {             \
        auto o = fx::asb<T>(reinterpret_cast<FaissIndexBinary*>(obj));   \
        FX_REQUIRE_RET(o != nullptr, , "handle is NULL or not a " #T);   \
        stmt;                                                            \
    }

extern "C" {

void faiss_IndexBinary_free(FaissIndexBinary* obj) {
    delete fx::bindex(obj);
}

FX_BGETTER(IndexBinary, faiss::IndexBinary, int, d, o->d)
int faiss_IndexBinary_is_trained(const FaissIndexBinary* obj) {
    FX_REQUIRE_RET(obj, 0, "handle is NULL or not a faiss::IndexBinary");
    sync_remote(obj, __func__);
    return fx::bindex(obj)->is_trained;
}

idx_t faiss_IndexBinary_ntotal(const FaissIndexBinary* obj) {
    FX_REQUIRE_RET(obj, 0, "handle is NULL or not a faiss::IndexBinary");
    sync_remote(obj, __func__);
    return fx::bindex(obj)->ntotal;
}

FX_BGETTER(IndexBinary, faiss::IndexBinary, FaissMetricType, metric_type,
           static_cast<FaissMetricType>(o->metric_type))
FX_BGETTER(IndexBinary, faiss::IndexBinary, int, verbose, o->verbose)
void faiss_IndexBinary_set_verbose(FaissIndexBinary* obj, int val) {
    FX_REQUIRE_RET(obj, , "handle is NULL or not a faiss::IndexBinary");
    if (auto r = fx::as_remote_bin(fx::bindex(obj))) {
        FX_TRY
        r->set_param("verbose", val != 0);
        return;
        FX_CATCH_RET()
    }
    fx::bindex(obj)->verbose = val != 0;
}

int faiss_IndexBinary_train(FaissIndexBinary* index, idx_t n,
                            const uint8_t* x) {
    FX_NOT_NULL(index);
    if (int rc = check_codes(__func__, n, x)) return rc;
    FX_TRY
    fx::bindex(index)->train(n, x);
    return 0;
    FX_CATCH
}

int faiss_IndexBinary_add(FaissIndexBinary* index, idx_t n,
                          const uint8_t* x) {
    FX_NOT_NULL(index);
    if (int rc = check_codes(__func__, n, x)) return rc;
    FX_REQUIRE(trained_now(fx::bindex(index)),
               "index is not trained: call faiss_IndexBinary_train first");
    FX_REQUIRE_WRITABLE(fx::bindex(index));
    FX_TRY
    fx::bindex(index)->add(n, x);
    return 0;
    FX_CATCH
}

int faiss_IndexBinary_add_with_ids(FaissIndexBinary* index, idx_t n,
                                   const uint8_t* x, const idx_t* xids) {
    FX_NOT_NULL(index);
    if (int rc = check_codes(__func__, n, x)) return rc;
    FX_REQUIRE(n == 0 || xids, "argument 'xids' is NULL");
    FX_REQUIRE(trained_now(fx::bindex(index)),
               "index is not trained: call faiss_IndexBinary_train first");
    FX_REQUIRE_WRITABLE(fx::bindex(index));
    FX_TRY
    fx::bindex(index)->add_with_ids(n, x, xids);
    return 0;
    FX_CATCH
}

int faiss_IndexBinary_search(const FaissIndexBinary* index, idx_t n,
                             const uint8_t* x, idx_t k, int32_t* distances,
                             idx_t* labels) {
    FX_NOT_NULL(index);
    if (int rc = check_codes(__func__, n, x)) return rc;
    if (int rc = fx::check_knn(__func__, n, k, distances, labels)) return rc;
    FX_REQUIRE(trained_now(fx::bindex(index)), "index is not trained");
    FX_TRY
    fx::bindex(index)->search(n, x, k, distances, labels);
    return 0;
    FX_CATCH
}

} // extern "C"

/* IndexBinaryHNSW::search with the call's efSearch and
 * check_relative_distance (faiss 1.7.3's refuses parameters): the same
 * graph walk per query, float distances rounded to int32 as faiss does. */
static void hnsw_search(const faiss::IndexBinaryHNSW* bh, idx_t n,
                        const uint8_t* x, idx_t k, int32_t* distances,
                        idx_t* labels,
                        const faiss::SearchParametersHNSW* params) {
    if (bh->ntotal == 0 || n == 0) { // nothing to walk: efSearch is moot
        bh->search(n, x, k, distances, labels);
        return;
    }
    std::vector<float> df((size_t)n * k);
    std::exception_ptr failed;
#pragma omp parallel
    {
        faiss::VisitedTable vt(bh->ntotal);
        std::unique_ptr<faiss::DistanceComputer> dis(
                bh->get_distance_computer());
#pragma omp for
        for (idx_t i = 0; i < n; i++) {
            try {
                float* d = df.data() + (size_t)i * k;
                idx_t* l = labels + (size_t)i * k;
                dis->set_query(reinterpret_cast<const float*>(
                        x + (size_t)i * bh->code_size));
                faiss::maxheap_heapify(k, d, l);
                bh->hnsw.search(*dis, (int)k, l, d, vt, params);
                faiss::maxheap_reorder(k, d, l);
            } catch (...) {
#pragma omp critical(fx_bhnsw)
                if (!failed) failed = std::current_exception();
            }
        }
    }
    if (failed) std::rethrow_exception(failed);
    for (size_t i = 0; i < (size_t)n * k; i++) {
        float v = std::round(df[i]);
        // faiss converts unfilled slots (FLT_MAX) as x86 does: INT32_MIN
        distances[i] = std::fabs(v) < 2147483648.0f
                ? (int32_t)v
                : std::numeric_limits<int32_t>::min();
    }
}

extern "C" {

int faissx_IndexBinary_search_with_params(const FaissIndexBinary* index,
                                          idx_t n, const uint8_t* x, idx_t k,
                                          const FaissSearchParameters* params,
                                          int32_t* distances, idx_t* labels) {
    FX_NOT_NULL(index);
    if (int rc = check_codes(__func__, n, x)) return rc;
    if (int rc = fx::check_knn(__func__, n, k, distances, labels)) return rc;
    const faiss::IndexBinary* ix = fx::bindex(index);
    auto p = reinterpret_cast<const faiss::SearchParameters*>(params);
    auto ivfp = dynamic_cast<const faiss::SearchParametersIVF*>(p);
    auto hnswp = dynamic_cast<const faiss::SearchParametersHNSW*>(p);
    if (p && p->sel)
        return fx::fail(FAISSX_E_UNSUPPORTED, __func__,
                        "ID selectors are not supported on binary indexes "
                        "(faiss 1.7.3's binary search cannot filter)");
    if (ivfp) {
        FX_REQUIRE(ivfp->quantizer_params == nullptr,
                   "quantizer search parameters are not supported on "
                   "binary indexes");
        FX_REQUIRE(ivfp->nprobe > 0, "nprobe must be > 0");
    }
    if (hnswp)
        FX_REQUIRE(hnswp->efSearch > 0, "efSearch must be > 0 (got %d)",
                   hnswp->efSearch);
    FX_REQUIRE(trained_now(ix), "index is not trained");
    if (fx::store::is_stored(ix)) { // the same call on the index behind it
        int rc = 0;
        FX_TRY
        fx::store::read_inner(ix, [&](const faiss::IndexBinary* in) {
            rc = faissx_IndexBinary_search_with_params(
                    reinterpret_cast<const FaissIndexBinary*>(in), n, x, k,
                    params, distances, labels);
        });
        return rc;
        FX_CATCH
    }
    // A remote index sends the parameters; the server comes back here.
    if (fx::as_remote_bin(ix)) {
        FX_TRY
        ix->search(n, x, k, distances, labels, p);
        return 0;
        FX_CATCH
    }
    if (hnswp) {
        auto bh = dynamic_cast<const faiss::IndexBinaryHNSW*>(ix);
        FX_REQUIRE(bh != nullptr,
                   "HNSW search parameters need an IndexBinaryHNSW (the "
                   "index is not one)");
        FX_TRY
        hnsw_search(bh, n, x, k, distances, labels, hnswp);
        return 0;
        FX_CATCH
    }
    if (!ivfp) { // nothing left to apply
        FX_TRY
        ix->search(n, x, k, distances, labels);
        return 0;
        FX_CATCH
    }
    auto ivf = dynamic_cast<const faiss::IndexBinaryIVF*>(ix);
    FX_REQUIRE(ivf != nullptr,
               "IVF search parameters need an IndexBinaryIVF (the index is "
               "not one)");
    FX_TRY
    // What IndexBinaryIVF::search does with its own nprobe, with the
    // call's: coarse assignment, then the lists with nprobe/max_codes.
    size_t nprobe = std::min(ivf->nlist, ivfp->nprobe);
    std::vector<idx_t> assign((size_t)n * nprobe);
    std::vector<int32_t> coarse((size_t)n * nprobe);
    ivf->quantizer->search(n, x, (idx_t)nprobe, coarse.data(), assign.data());
    faiss::IVFSearchParameters ip;
    ip.nprobe = nprobe;
    ip.max_codes = ivfp->max_codes;
    ivf->search_preassigned(n, x, k, assign.data(), coarse.data(), distances,
                            labels, false, &ip);
    return 0;
    FX_CATCH
}

int faiss_IndexBinary_range_search(const FaissIndexBinary* index, idx_t n,
                                   const uint8_t* x, int radius,
                                   FaissRangeSearchResult* result) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(result);
    if (int rc = check_codes(__func__, n, x)) return rc;
    auto res = reinterpret_cast<faiss::RangeSearchResult*>(result);
    FX_REQUIRE((idx_t)res->nq == n,
               "result was allocated for %zu queries, but n = %lld", res->nq,
               (long long)n);
    FX_REQUIRE(trained_now(fx::bindex(index)), "index is not trained");
    FX_TRY
    fx::bindex(index)->range_search(n, x, radius, res);
    return 0;
    FX_CATCH
}

int faiss_IndexBinary_assign(FaissIndexBinary* index, idx_t n,
                             const uint8_t* x, idx_t* labels, idx_t k) {
    FX_NOT_NULL(index);
    if (int rc = check_codes(__func__, n, x)) return rc;
    FX_REQUIRE(k > 0, "k must be > 0 (got %lld)", (long long)k);
    FX_REQUIRE(n == 0 || labels, "argument 'labels' is NULL");
    FX_REQUIRE(n == 0 || k <= std::numeric_limits<idx_t>::max() / n,
               "n * k overflows");
    FX_REQUIRE(trained_now(fx::bindex(index)), "index is not trained");
    FX_TRY
    fx::bindex(index)->assign(n, x, labels, k);
    return 0;
    FX_CATCH
}

int faiss_IndexBinary_reset(FaissIndexBinary* index) {
    FX_NOT_NULL(index);
    FX_TRY
    fx::bindex(index)->reset();
    return 0;
    FX_CATCH
}

int faiss_IndexBinary_remove_ids(FaissIndexBinary* index,
                                 const FaissIDSelector* sel,
                                 size_t* n_removed) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(sel);
    FX_REQUIRE_WRITABLE(fx::bindex(index));
    FX_TRY
    size_t r = fx::bindex(index)->remove_ids(
            *reinterpret_cast<const faiss::IDSelector*>(sel));
    if (n_removed) *n_removed = r;
    return 0;
    FX_CATCH
}

int faiss_IndexBinary_reconstruct(const FaissIndexBinary* index, idx_t key,
                                  uint8_t* recons) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(recons);
    auto ix = fx::bindex(index);
    FX_REQUIRE(!positional(ix) || (key >= 0 && key < ix->ntotal),
               "key %lld out of range [0, %lld)", (long long)key,
               (long long)ix->ntotal);
    FX_TRY
    ix->reconstruct(key, recons);
    return 0;
    FX_CATCH
}

int faiss_IndexBinary_reconstruct_n(const FaissIndexBinary* index, idx_t i0,
                                    idx_t ni, uint8_t* recons) {
    FX_NOT_NULL(index);
    auto ix = fx::bindex(index);
    FX_REQUIRE(ni >= 0, "ni must be >= 0 (got %lld)", (long long)ni);
    FX_REQUIRE(ni == 0 || recons, "argument 'recons' is NULL");
    FX_REQUIRE(!positional(ix) || (i0 >= 0 && i0 <= ix->ntotal &&
                                   ni <= ix->ntotal - i0),
               "range [%lld, %lld) is outside [0, %lld)", (long long)i0,
               (long long)(i0 + ni), (long long)ix->ntotal);
    FX_TRY
    if (auto r = fx::as_remote_bin(ix)) { // one round trip; checked there
        r->reconstruct_n(i0, ni, recons);
        return 0;
    }
    /* faiss 1.7.3's IndexBinary::reconstruct_n and its IndexBinaryIVF
     * override both step through recons by d (bits) instead of code_size
     * (bytes), writing 8x past the caller's buffer: done here instead. */
    const size_t cs = ix->code_size;
    if (auto ivf = dynamic_cast<const faiss::IndexBinaryIVF*>(ix)) {
        FX_REQUIRE(ni == 0 || (i0 >= 0 && i0 + ni <= ix->ntotal),
                   "range [%lld, %lld) is outside [0, %lld)", (long long)i0,
                   (long long)(i0 + ni), (long long)ix->ntotal);
        for (size_t l = 0; l < ivf->nlist; l++) {
            size_t ls = ivf->invlists->list_size(l);
            faiss::InvertedLists::ScopedIds ids(ivf->invlists, l);
            for (size_t o = 0; o < ls; o++) {
                idx_t id = ids[o];
                if (id >= i0 && id < i0 + ni)
                    ivf->reconstruct_from_offset(l, o,
                                                 recons + (id - i0) * cs);
            }
        }
    } else {
        for (idx_t i = 0; i < ni; i++)
            ix->reconstruct(i0 + i, recons + (size_t)i * cs);
    }
    return 0;
    FX_CATCH
}

/* ---- constructors and typed accessors (faissx.h) ---- */

int faiss_IndexBinaryFlat_new(FaissIndexBinaryFlat** p_index) {
    FX_NOT_NULL(p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexBinaryFlat>(
            static_cast<faiss::IndexBinary*>(new faiss::IndexBinaryFlat()));
    return 0;
    FX_CATCH
}

int faiss_IndexBinaryFlat_new_with(FaissIndexBinaryFlat** p_index, idx_t d) {
    FX_NOT_NULL(p_index);
    if (int rc = check_bin_dim(__func__, d)) return rc;
    FX_REMOTE_BCREATE(p_index, d, "BFlat");
    FX_TRY
    *p_index = fx::handle<FaissIndexBinaryFlat>(
            static_cast<faiss::IndexBinary*>(new faiss::IndexBinaryFlat(d)));
    return 0;
    FX_CATCH
}

FaissIndexBinaryFlat* faiss_IndexBinaryFlat_cast(FaissIndexBinary* index) {
    if (remote_kind(index, FX_KIND_FLAT) ||
        bstored_is<faiss::IndexBinaryFlat>(index))
        return reinterpret_cast<FaissIndexBinaryFlat*>(index);
    return reinterpret_cast<FaissIndexBinaryFlat*>(static_cast<
            faiss::IndexBinary*>(bas<faiss::IndexBinaryFlat>(index)));
}

void faiss_IndexBinaryFlat_free(FaissIndexBinaryFlat* obj) {
    delete fx::bindex(obj);
}

FaissIndexBinaryIVF* faiss_IndexBinaryIVF_cast(FaissIndexBinary* index) {
    if (remote_kind(index, FX_KIND_IVF) ||
        bstored_is<faiss::IndexBinaryIVF>(index))
        return reinterpret_cast<FaissIndexBinaryIVF*>(index);
    return reinterpret_cast<FaissIndexBinaryIVF*>(static_cast<
            faiss::IndexBinary*>(bas<faiss::IndexBinaryIVF>(index)));
}

void faiss_IndexBinaryIVF_free(FaissIndexBinaryIVF* obj) {
    delete fx::bindex(obj);
}

/* The IVF getters/setters also work on a remote binary IVF: parameters
 * travel by name; the quantizer is the client handle the IVF was built
 * from; own_fields decides whether freeing the IVF frees that handle. On
 * a store handle the getters read the stored IVF and set_nprobe is a
 * logged parameter change (as faissx_store_set_param_binary). */
#define FX_BIVF_PARAM(name)                                              \
    size_t faiss_IndexBinaryIVF_##name(const FaissIndexBinaryIVF* obj) {  \
        if (auto r = remote_kind(obj, FX_KIND_IVF)) {                    \
            FX_TRY                                                       \
            return (size_t)r->get_param(#name);                          \
            FX_CATCH_RET(0)                                              \
        }                                                                \
        if (bstored_is<faiss::IndexBinaryIVF>(obj)) {                    \
            size_t v = 0;                                                \
            fx::store::read_inner(                                       \
                    reinterpret_cast<const faiss::IndexBinary*>(obj),    \
                    [&](const faiss::IndexBinary* in) {                  \
                        v = static_cast<const faiss::IndexBinaryIVF*>(   \
                                    in)->name;                           \
                    });                                                  \
            return v;                                                    \
        }                                                                \
        auto o = fx::asb<faiss::IndexBinaryIVF>(                         \
                reinterpret_cast<const FaissIndexBinary*>(obj));         \
        FX_REQUIRE_RET(o != nullptr, 0,                                  \
                       "handle is NULL or not a faiss::IndexBinaryIVF"); \
        return o->name;                                                  \
    }
FX_BIVF_PARAM(nlist)
FX_BIVF_PARAM(nprobe)

void faiss_IndexBinaryIVF_set_nprobe(FaissIndexBinaryIVF* obj, size_t val) {
    if (auto r = remote_kind(obj, FX_KIND_IVF)) {
        FX_TRY
        r->set_param("nprobe", (double)val);
        return;
        FX_CATCH_RET()
    }
    if (bstored_is<faiss::IndexBinaryIVF>(obj)) {
        FX_TRY
        fx::store::set_param(fx::bindex(reinterpret_cast<FaissIndexBinary*>(obj)),
                             "nprobe", (double)val);
        return;
        FX_CATCH_RET()
    }
    auto o = fx::asb<faiss::IndexBinaryIVF>(
            reinterpret_cast<FaissIndexBinary*>(obj));
    FX_REQUIRE_RET(o != nullptr, , "handle is NULL or not a "
                                   "faiss::IndexBinaryIVF");
    o->nprobe = val;
}

FaissIndexBinary* faiss_IndexBinaryIVF_quantizer(const FaissIndexBinaryIVF* obj) {
    if (auto r = remote_kind(obj, FX_KIND_IVF)) {
        FX_REQUIRE_RET(!r->children.empty(), nullptr,
                       "the quantizer of a remote binary IVF built from a "
                       "factory string lives only on the server");
        return fx::handle<FaissIndexBinary>(r->children[0]);
    }
    if (bstored_is<faiss::IndexBinaryIVF>(obj)) {
        note_stored_internals(__func__, "quantizer");
        return nullptr;
    }
    auto o = fx::asb<faiss::IndexBinaryIVF>(
            reinterpret_cast<const FaissIndexBinary*>(obj));
    FX_REQUIRE_RET(o != nullptr, nullptr,
                   "handle is NULL or not a faiss::IndexBinaryIVF");
    return reinterpret_cast<FaissIndexBinary*>(o->quantizer);
}

int faiss_IndexBinaryIVF_own_fields(const FaissIndexBinaryIVF* obj) {
    if (auto r = remote_kind(obj, FX_KIND_IVF))
        return r->children.empty() ? 1 : r->own_children;
    if (bstored_is<faiss::IndexBinaryIVF>(obj)) {
        fx::note_error(FAISSX_E_INVALID, __func__,
                       "own_fields does not apply to a store handle (the "
                       "store owns the index behind it)");
        return 0;
    }
    auto o = fx::asb<faiss::IndexBinaryIVF>(
            reinterpret_cast<const FaissIndexBinary*>(obj));
    FX_REQUIRE_RET(o != nullptr, 0,
                   "handle is NULL or not a faiss::IndexBinaryIVF");
    return o->own_fields;
}

void faiss_IndexBinaryIVF_set_own_fields(FaissIndexBinaryIVF* obj, int val) {
    if (auto r = remote_kind(obj, FX_KIND_IVF)) {
        r->own_children = val != 0;
        return;
    }
    if (bstored_is<faiss::IndexBinaryIVF>(obj)) {
        fx::note_error(FAISSX_E_INVALID, __func__,
                       "own_fields does not apply to a store handle (the "
                       "store owns the index behind it)");
        return;
    }
    auto o = fx::asb<faiss::IndexBinaryIVF>(
            reinterpret_cast<FaissIndexBinary*>(obj));
    FX_REQUIRE_RET(o != nullptr, , "handle is NULL or not a "
                                   "faiss::IndexBinaryIVF");
    o->own_fields = val != 0;
}

int faissx_IndexBinaryIVF_new(FaissIndexBinaryIVF** p_index,
                              FaissIndexBinary* quantizer, idx_t d,
                              size_t nlist) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(quantizer);
    if (int rc = check_bin_dim(__func__, d)) return rc;
    FX_REQUIRE(nlist > 0, "nlist must be > 0");
    FX_REQUIRE(fx::bindex(quantizer)->d == d,
               "quantizer dimension %d differs from d = %lld",
               fx::bindex(quantizer)->d, (long long)d);
    // Over a remote quantizer: built on its server, sharing it (as the
    // local IVF shares its quantizer object).
    if (auto rq = fx::as_remote_bin(fx::bindex(quantizer))) {
        FaissIndexBinary* out = nullptr;
        int rc = fx::remote_bin_wrap_ivf(__func__, rq, d, (int64_t)nlist, &out);
        if (rc == 0) *p_index = reinterpret_cast<FaissIndexBinaryIVF*>(out);
        return rc;
    }
    FX_TRY
    auto ivf = new faiss::IndexBinaryIVF(fx::bindex(quantizer), d, nlist);
    ivf->own_fields = true;
    *p_index = fx::handle<FaissIndexBinaryIVF>(
            static_cast<faiss::IndexBinary*>(ivf));
    return 0;
    FX_CATCH
}

int faissx_IndexBinaryHash_new(FaissIndexBinary** p_index, int d, int b) {
    FX_NOT_NULL(p_index);
    if (int rc = check_bin_dim(__func__, d)) return rc;
    FX_REQUIRE(b > 0 && b <= d && b <= 64, "b must be in [1, min(d, 64)] "
                                           "(got %d)", b);
    char desc[32];
    std::snprintf(desc, sizeof desc, "BHash%d", b);
    FX_REMOTE_BCREATE(p_index, d, desc);
    FX_TRY
    *p_index = fx::handle<FaissIndexBinary>(
            static_cast<faiss::IndexBinary*>(new faiss::IndexBinaryHash(d, b)));
    return 0;
    FX_CATCH
}

int faissx_IndexBinaryHNSW_new(FaissIndexBinary** p_index, int d, int M) {
    FX_NOT_NULL(p_index);
    if (int rc = check_bin_dim(__func__, d)) return rc;
    FX_REQUIRE(M > 0, "M must be > 0 (got %d)", M);
    char desc[32];
    std::snprintf(desc, sizeof desc, "BHNSW%d", M);
    FX_REMOTE_BCREATE(p_index, d, desc);
    FX_TRY
    *p_index = fx::handle<FaissIndexBinary>(
            static_cast<faiss::IndexBinary*>(new faiss::IndexBinaryHNSW(d, M)));
    return 0;
    FX_CATCH
}

int faissx_IndexBinaryHNSW_set_efSearch(FaissIndexBinary* index, int ef) {
    if (auto r = remote_kind(index, FX_KIND_HNSW)) {
        FX_REQUIRE(ef > 0, "efSearch must be > 0 (got %d)", ef);
        FX_TRY
        r->set_param("efSearch", ef);
        return 0;
        FX_CATCH
    }
    if (bstored_is<faiss::IndexBinaryHNSW>(index)) { // logged, durable
        FX_REQUIRE(ef > 0, "efSearch must be > 0 (got %d)", ef);
        FX_TRY
        fx::store::set_param(fx::bindex(index), "efSearch", ef);
        return 0;
        FX_CATCH
    }
    FX_BCAST(h, faiss::IndexBinaryHNSW, index);
    FX_REQUIRE(ef > 0, "efSearch must be > 0 (got %d)", ef);
    h->hnsw.efSearch = ef;
    return 0;
}

int faissx_IndexBinaryHNSW_get_efSearch(const FaissIndexBinary* index,
                                        int* ef) {
    if (auto r = remote_kind(index, FX_KIND_HNSW)) {
        FX_NOT_NULL(ef);
        FX_TRY
        *ef = (int)r->get_param("efSearch");
        return 0;
        FX_CATCH
    }
    if (bstored_is<faiss::IndexBinaryHNSW>(index)) {
        FX_NOT_NULL(ef);
        fx::store::read_inner(fx::bindex(index),
                              [&](const faiss::IndexBinary* in) {
                                  *ef = static_cast<const faiss::IndexBinaryHNSW*>(
                                                in)->hnsw.efSearch;
                              });
        return 0;
    }
    auto h = fx::asb<faiss::IndexBinaryHNSW>(index);
    FX_REQUIRE(h, "argument 'index' is NULL or not a faiss::IndexBinaryHNSW");
    FX_NOT_NULL(ef);
    *ef = h->hnsw.efSearch;
    return 0;
}

} // extern "C"
