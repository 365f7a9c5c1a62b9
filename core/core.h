/* core.h -- internal helpers shared by the core/ translation units. */
#ifndef FX_CORE_H
#define FX_CORE_H

#include "core/bridge.h"
#include "net/remote.h"
#include "persist/store.h"

#include <faiss/impl/IDSelector.h>

#include <cstring>

namespace faiss {
struct IndexIVF;
}

namespace fx {

/* True when the index addresses vectors by position 0..ntotal-1 (flat
 * codes, HNSW, NSG, refine, or a pre-transform over one), so a key outside
 * that range would read out of bounds inside faiss. */
bool positional(const faiss::Index* ix);

/* The remote index behind h if its server-side type has a `kind` bit;
 * NULL otherwise (local handles then fail their type check as usual). */
inline RemoteIndex* remote_of_kind(const FaissIndex* h, int64_t kind) {
    return h && remote_is(index(h), kind) ? as_remote(index(h)) : nullptr;
}

/* True when h is a durable-store handle (persist/store.h) whose index is a
 * T: typed getters and setters then reach that index (setters durably,
 * through the store's log, as ParameterSpace parameters). */
template <class T>
inline bool stored_is(const faiss::Index* h) {
    bool yes = false;
    if (h && store::is_stored(h))
        store::read_inner(h, [&](const faiss::Index* in) {
            yes = dynamic_cast<const T*>(in) != nullptr;
        });
    return yes;
}

/* False when ix is known not to be trained: a call checks it where a
 * local call does. Always true for a remote handle: the server makes the
 * same check, and its refusal gets the local text (handle_exception), so
 * the call is one round trip (docs/client.md, "Round trips"). */
bool trained_now(const faiss::Index* ix);
/* is_trained, refreshed from the server for a remote handle that says no. */
bool trained_asking(const faiss::Index* ix);

/* True when ix (or the index it wraps) has inverted lists mapped read-only
 * (read with FAISS_IO_FLAG_MMAP). faiss modifies lists inside OpenMP
 * regions, where its "read only" exception terminates the process, so
 * mutators must refuse such indexes first. Defined in persist/index_io.cpp. */
bool read_only_lists(const faiss::Index* ix);
bool read_only_lists(const faiss::IndexBinary* ix);

#define FX_REQUIRE_WRITABLE(ix)                                            \
    do {                                                                   \
        if (fx::read_only_lists(ix))                                       \
            return fx::fail(FAISSX_E_UNSUPPORTED, __func__,                \
                            "the index's inverted lists are mapped "       \
                            "read-only (read with FAISS_IO_FLAG_MMAP)");   \
    } while (0)

/* A batch search on a plain IndexFlat (L2 or IP) as nslices independent
 * searches of consecutive query slices, one per OpenMP thread, each with
 * single-threaded BLAS (core/threads.cpp): faiss alternates BLAS and OpenMP
 * on one batch, and whichever pool idles spins. Returns false (nothing
 * done) when it does not apply: another index type, too few queries for
 * each slice to take faiss's BLAS path, one thread, inside a parallel
 * region, or the program sized the pools itself. Same results. */
bool flat_search_split(const faiss::Index* ix, idx n, const float* x, idx k,
                       float* distances, idx* labels);

/* Fails unless key is valid for reconstruct-like calls on ix. */
int check_key(const char* func, const faiss::Index* ix, idx key);

/* Validates k and the output buffers of a k-NN search of n queries. */
int check_knn(const char* func, idx n, idx k, const void* distances,
              const void* labels);

/* The int value of an enum argument that came from C. C callers may pass
 * any int; reading it as the C++ enum type would be undefined when it is
 * out of the enum's range (UBSan: -fsanitize=enum), so copy the bits. */
template <class E>
inline int raw_enum(const E& e) {
    static_assert(sizeof(E) == sizeof(int), "enums are int-sized");
    int v;
    std::memcpy(&v, &e, sizeof v);
    return v;
}

/* Validates a metric value from C. */
int check_metric(const char* func, int metric);

/* Validates a dimension given to a constructor (1 .. INT_MAX). */
int check_dim(const char* func, long long d);

/* Selector combinators (faiss 1.7.3 only has IDSelectorNot); the operands
 * are borrowed. */
struct SelBinary : faiss::IDSelector {
    enum Op { AND, OR, XOR } op;
    const faiss::IDSelector* a;
    const faiss::IDSelector* b;
    SelBinary(Op op, const faiss::IDSelector* a, const faiss::IDSelector* b)
            : op(op), a(a), b(b) {}
    bool is_member(idx id) const override {
        switch (op) {
        case AND: return a->is_member(id) && b->is_member(id);
        case OR: return a->is_member(id) || b->is_member(id);
        default: return a->is_member(id) != b->is_member(id);
        }
    }
};

/* The quantizer handle of an IVF index: for a remote IVF, the client handle
 * it was built from (the same server object), else NULL with an error. */
FaissIndex* quantizer_of(const char* func, const FaissIndex* h);

/* The child handle a remote composite was built from, or NULL with an
 * error. */
FaissIndex* child_of(const char* func, RemoteIndex* r, int64_t kind);

/* add_core on a remote IVF index (FX_IVF_ADD_CORE); the server repeats
 * the list-number checks of ivf_add_core_checked. */
int remote_ivf_add_core(const char* func, RemoteIndex* r, idx_t n,
                        const float* x, const idx_t* xids,
                        const idx_t* precomputed_idx);

/* IVF add_core with its inputs validated (list numbers, finiteness). */
int ivf_add_core_checked(const char* func, faiss::IndexIVF* ivf, idx_t n,
                         const float* x, const idx_t* xids,
                         const idx_t* precomputed_idx);

} // namespace fx

/* Typed getters/setters that also work on a remote index whose
 * server-side type matches `kindbits` (the value travels as parameter
 * `pname`), and on a store handle whose index is a T (the setter logs
 * `pname` through the store, durably). */
#define FX_GETTER_R(cls, T, ty, name, expr, kindbits, pname)                 \
    ty faiss_##cls##_##name(const Faiss##cls* obj) {                        \
        auto base = fx::index(reinterpret_cast<const FaissIndex*>(obj));     \
        if (base && fx::remote_is(base, kindbits)) {                        \
            FX_TRY                                                          \
            return (ty)fx::as_remote(base)->get_param(pname);               \
            FX_CATCH_RET((ty)0)                                             \
        }                                                                   \
        if (fx::stored_is<T>(base)) {                                       \
            ty fx_v_ = (ty)0;                                               \
            fx::store::read_inner(base, [&](const faiss::Index* fx_in_) {   \
                auto o = dynamic_cast<const T*>(fx_in_);                    \
                fx_v_ = (ty)(expr);                                         \
            });                                                             \
            return fx_v_;                                                   \
        }                                                                   \
        auto o = fx::as<T>(reinterpret_cast<const FaissIndex*>(obj));       \
        FX_REQUIRE_RET(o != nullptr, (ty)0,                                 \
                       "handle is NULL or not a " #T);                      \
        return (ty)(expr);                                                  \
    }
#define FX_SETTER_R(cls, T, ty, name, stmt, kindbits, pname)                 \
    void faiss_##cls##_set_##name(Faiss##cls* obj, ty val) {                \
        auto base = fx::index(reinterpret_cast<FaissIndex*>(obj));           \
        if (base && fx::remote_is(base, kindbits)) {                        \
            FX_TRY                                                          \
            fx::as_remote(base)->set_param(pname, (double)val);             \
            return;                                                         \
            FX_CATCH_RET()                                                  \
        }                                                                   \
        if (fx::stored_is<T>(base)) {                                       \
            FX_TRY                                                          \
            fx::store::set_param(base, pname, (double)val);                 \
            return;                                                         \
            FX_CATCH_RET()                                                  \
        }                                                                   \
        auto o = fx::as<T>(reinterpret_cast<FaissIndex*>(obj));             \
        FX_REQUIRE_RET(o != nullptr, , "handle is NULL or not a " #T);      \
        stmt;                                                               \
    }
#define FX_DOWNCAST_R(cls, T, kindbits)                                      \
    Faiss##cls* faiss_##cls##_cast(FaissIndex* index) {                     \
        if (index && (fx::remote_is(fx::index(index), kindbits) ||          \
                      fx::stored_is<T>(fx::index(index))))                  \
            return reinterpret_cast<Faiss##cls*>(index);                    \
        return reinterpret_cast<Faiss##cls*>(                               \
                static_cast<faiss::Index*>(fx::as<T>(index)));              \
    }

/* In remote mode, create the index on the server from a factory string and
 * return from the calling constructor. */
#define FX_REMOTE_CREATE(p_index, d, desc, metric)                           \
    do {                                                                    \
        std::shared_ptr<fx::Conn> fx_conn_;                                 \
        if (int fx_rc_ = fx::remote_conn(__func__, &fx_conn_)) return fx_rc_; \
        if (fx_conn_) {                                                     \
            FaissIndex* fx_out_ = nullptr;                                  \
            int fx_rc_ = fx::remote_create(__func__, fx_conn_, nullptr,     \
                                           (int)(d), (desc), (metric),      \
                                           &fx_out_);                       \
            if (fx_rc_ == 0)                                                \
                *(p_index) = reinterpret_cast<std::remove_reference_t<decltype(*(p_index))>>(fx_out_); \
            return fx_rc_;                                                  \
        }                                                                   \
    } while (0)

/* own_fields getter/setter that also works on remote composites (where it
 * decides whether freeing the handle frees the client-side children). */
#define FX_OWN_FIELDS_R(cls, T, kindbits)                                    \
    int faiss_##cls##_own_fields(const Faiss##cls* obj) {                   \
        auto base = fx::index(reinterpret_cast<const FaissIndex*>(obj));     \
        if (auto r = base && fx::remote_is(base, kindbits)                  \
                             ? fx::as_remote(base) : nullptr)               \
            return r->children.empty() ? 1 : r->own_children;               \
        FX_REQUIRE_RET(!base || !fx::store::is_stored(base), 0,             \
                       "own_fields does not apply to a store handle (the "  \
                       "store owns the index behind it)");                  \
        auto o = fx::as<T>(reinterpret_cast<const FaissIndex*>(obj));       \
        FX_REQUIRE_RET(o != nullptr, 0, "handle is NULL or not a " #T);     \
        return o->own_fields;                                               \
    }                                                                       \
    void faiss_##cls##_set_own_fields(Faiss##cls* obj, int val) {           \
        auto base = fx::index(reinterpret_cast<FaissIndex*>(obj));           \
        if (auto r = base && fx::remote_is(base, kindbits)                  \
                             ? fx::as_remote(base) : nullptr) {             \
            r->own_children = val != 0;                                     \
            return;                                                         \
        }                                                                   \
        FX_REQUIRE_RET(!base || !fx::store::is_stored(base), ,              \
                       "own_fields does not apply to a store handle (the "  \
                       "store owns the index behind it)");                  \
        auto o = fx::as<T>(reinterpret_cast<FaissIndex*>(obj));             \
        FX_REQUIRE_RET(o != nullptr, , "handle is NULL or not a " #T);      \
        o->own_fields = val != 0;                                           \
    }

/* In remote mode, build `expr` (a new faiss::Index*) locally, send it to
 * the server, and return from the calling constructor. */
#define FX_REMOTE_UPLOAD(p_index, expr)                                      \
    do {                                                                    \
        std::shared_ptr<fx::Conn> fx_conn_;                                 \
        if (int fx_rc_ = fx::remote_conn(__func__, &fx_conn_)) return fx_rc_; \
        if (fx_conn_) {                                                     \
            FaissIndex* fx_out_ = nullptr;                                  \
            faiss::Index* fx_local_ = nullptr;                              \
            FX_TRY                                                          \
            fx_local_ = (expr);                                             \
            FX_CATCH                                                        \
            int fx_rc_ = fx::remote_upload_new(__func__, fx_conn_,          \
                                               fx_local_, &fx_out_);        \
            if (fx_rc_ == 0)                                                \
                *(p_index) = reinterpret_cast<                              \
                        std::remove_reference_t<decltype(*(p_index))>>(fx_out_); \
            return fx_rc_;                                                  \
        }                                                                   \
    } while (0)

#endif
