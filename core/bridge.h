/* bridge.h -- internal: the thin C++ skin between the C API and faiss.
 *
 * Every extern "C" entry point wraps its body in FX_TRY / FX_CATCH so no C++
 * exception crosses into C; validates its arguments with FX_REQUIRE (the
 * message names the function and the argument); and reaches faiss objects
 * through the checked casts below. Not installed; not API. */
#ifndef FX_BRIDGE_H
#define FX_BRIDGE_H

#include <faissx/faissx.h>

#include "core/threads.h"

#include <faiss/Index.h>
#include <faiss/IndexBinary.h>
#include <faiss/impl/FaissException.h>

#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

static_assert(sizeof(idx_t) == sizeof(faiss::Index::idx_t),
              "C idx_t and faiss idx_t must agree");
static_assert(std::is_signed<faiss::Index::idx_t>::value,
              "faiss idx_t must be signed");
static_assert(static_cast<int>(METRIC_L2) == faiss::METRIC_L2 &&
                      static_cast<int>(METRIC_INNER_PRODUCT) ==
                              faiss::METRIC_INNER_PRODUCT &&
                      static_cast<int>(METRIC_JensenShannon) ==
                              faiss::METRIC_JensenShannon,
              "C and C++ metric enums must agree");

#include <stdexcept>
#include <string>

namespace faiss {
struct IndexFlatCodes;
}

namespace fx {

using idx = faiss::Index::idx_t;

/* Thrown inside faissx (remote calls, server handlers) to carry a specific
 * FaissxError code through faiss's C++ call paths to the C boundary. */
struct Error : std::runtime_error {
    int code;
    Error(int code, const std::string& msg) : std::runtime_error(msg), code(code) {}
};

/* Record a failure for faiss_get_last_error(): "func: message". Returns
 * `code` so callers can `return fail(...)`. */
int fail(int code, const char* func, const char* fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Classify the exception being handled (call only inside a catch block),
 * record it, and return the matching FaissxError code. */
int handle_exception(const char* func);

/* Record an error from a function that cannot return a code (getters,
 * void functions). */
void note_error(int code, const char* func, const char* fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* True when all n values are finite; otherwise *bad is the first bad
 * position. */
bool all_finite(const float* x, size_t n, size_t* bad);

/* Copies n values, stopping at the first non-finite one (its position in
 * *bad, return false). */
bool copy_finite(float* dst, const float* src, size_t n, size_t* bad);

/* Whether ix is exactly a plain flat index (IndexFlat, IndexFlatL2 or
 * IndexFlatIP; not a subclass such as IndexFlat1D or a refine index). */
bool is_plain_flat(const faiss::Index* ix);

/* Appends n vectors of f->d floats to a plain flat index (code_size
 * d * 4), checking them while copying (one pass): false, with nothing
 * appended and the first bad position in *bad, when one is not finite.
 * faiss_Index_add's path for IndexFlat, and the server's shared-memory
 * add (net/handler.cpp). */
bool flat_append_finite(faiss::IndexFlatCodes* f, idx n, const float* x,
                        size_t* bad);

/* Huge pages for large index arrays (core/hugepages.cpp, docs/api.md
 * "Huge pages"); FAISSX_HUGEPAGES=0 turns both calls into plain ones. */
constexpr size_t kHugepagesMin = (size_t)32 << 20;
/* madvise(MADV_HUGEPAGE) the whole 2 MiB pages inside [p, p + n) when n is
 * at least kHugepagesMin; returns the bytes advised (0: none, or refused).
 * Placement only; never fails. */
size_t hugepages_advise(const void* p, size_t n);
/* v.reserve for `need` bytes, growing geometrically; a new buffer of
 * kHugepagesMin or more is advised before the old bytes are copied in, so
 * its pages are huge from their first touch. */
void reserve_huge(std::vector<uint8_t>& v, size_t need);
/* Before faiss appends n vectors to ix: reserve_huge the code array that
 * will grow (flat codes of any kind, an HNSW index's flat storage, through
 * IndexIDMap and IndexPreTransform). Does nothing for other indexes. */
void reserve_codes_for_add(faiss::Index* ix, idx n);
/* hugepages_advise on ix's flat code array (the one reserve_codes_for_add
 * finds), after it was filled by other means (faiss's reader): the
 * kernel's khugepaged then moves it to huge pages in the background. */
void hugepages_advise_codes(faiss::Index* ix);

/* The mutable/const faiss object behind a C handle. */
inline faiss::Index* index(FaissIndex* p) {
    return reinterpret_cast<faiss::Index*>(p);
}
inline const faiss::Index* index(const FaissIndex* p) {
    return reinterpret_cast<const faiss::Index*>(p);
}
inline faiss::IndexBinary* bindex(FaissIndexBinary* p) {
    return reinterpret_cast<faiss::IndexBinary*>(p);
}
inline const faiss::IndexBinary* bindex(const FaissIndexBinary* p) {
    return reinterpret_cast<const faiss::IndexBinary*>(p);
}

/* Checked downcast from a FaissIndex handle to a faiss subclass; NULL if the
 * handle is NULL or of another type. */
template <class T>
inline T* as(FaissIndex* p) {
    return p ? dynamic_cast<T*>(index(p)) : nullptr;
}
template <class T>
inline const T* as(const FaissIndex* p) {
    return p ? dynamic_cast<const T*>(index(p)) : nullptr;
}
template <class T>
inline T* asb(FaissIndexBinary* p) {
    return p ? dynamic_cast<T*>(bindex(p)) : nullptr;
}
template <class T>
inline const T* asb(const FaissIndexBinary* p) {
    return p ? dynamic_cast<const T*>(bindex(p)) : nullptr;
}

/* Wrap a faiss object pointer in its C handle type. */
template <class H, class T>
inline H* handle(T* p) {
    return reinterpret_cast<H*>(p);
}

/* Validate search/add shape arguments shared by many entry points. */
int check_vectors(const char* func, idx n, const float* x, int d,
                  const char* xname);

} // namespace fx

/* Entering the C API also applies the thread policy (core/threads.cpp). */
#define FX_TRY try { fx_threads_enter();
#define FX_CATCH                                   \
    }                                              \
    catch (...) {                                  \
        return fx::handle_exception(__func__);     \
    }

/* Same for functions that return void or a value: the error is recorded and
 * `ret` is returned. */
#define FX_CATCH_RET(ret)                          \
    }                                              \
    catch (...) {                                  \
        (void)fx::handle_exception(__func__);      \
        return ret;                                \
    }

#define FX_REQUIRE(cond, ...)                                          \
    do {                                                               \
        if (!(cond))                                                   \
            return fx::fail(FAISSX_E_INVALID, __func__, __VA_ARGS__);  \
    } while (0)

#define FX_NOT_NULL(p) FX_REQUIRE((p) != nullptr, "argument '%s' is NULL", #p)

/* For void/value-returning functions. */
#define FX_REQUIRE_RET(cond, ret, ...)                                 \
    do {                                                               \
        if (!(cond)) {                                                 \
            fx::note_error(FAISSX_E_INVALID, __func__, __VA_ARGS__);   \
            return ret;                                                \
        }                                                              \
    } while (0)

/* Resolve a typed handle or fail with a message naming the expected type. */
#define FX_CAST(var, T, h)                                                  \
    auto var = fx::as<T>(h);                                                \
    if (!var) {                                                             \
        if (!(h))                                                           \
            return fx::fail(FAISSX_E_INVALID, __func__,                     \
                            "argument '%s' is NULL", #h);                   \
        return fx::fail(FAISSX_E_INVALID, __func__,                         \
                        "argument '%s' is not a " #T, #h);                  \
    }

#define FX_CAST_RET(var, T, h, ret)                                         \
    auto var = fx::as<T>(h);                                                \
    if (!var) {                                                             \
        if (!(h))                                                           \
            fx::note_error(FAISSX_E_INVALID, __func__,                      \
                           "argument '%s' is NULL", #h);                    \
        else                                                                \
            fx::note_error(FAISSX_E_INVALID, __func__,                      \
                           "argument '%s' is not a " #T, #h);               \
        return ret;                                                         \
    }

/* Getter/setter definitions over a checked cast. `T` is the faiss class,
 * `cls` the C API class name. A NULL or mistyped handle returns 0 (getter)
 * or does nothing (setter) and records an error. */
#define FX_GETTER(cls, T, ty, name, expr)                                  \
    ty faiss_##cls##_##name(const Faiss##cls* obj) {                       \
        auto o = fx::as<T>(reinterpret_cast<const FaissIndex*>(obj));      \
        FX_REQUIRE_RET(o != nullptr, (ty)0,                                \
                       "handle is NULL or not a " #T);                     \
        return (ty)(expr);                                                 \
    }
#define FX_SETTER(cls, T, ty, name, stmt)                                  \
    void faiss_##cls##_set_##name(Faiss##cls* obj, ty val) {               \
        auto o = fx::as<T>(reinterpret_cast<FaissIndex*>(obj));            \
        FX_REQUIRE_RET(o != nullptr, , "handle is NULL or not a " #T);     \
        stmt;                                                              \
    }
#define FX_DOWNCAST(cls, T)                                                \
    Faiss##cls* faiss_##cls##_cast(FaissIndex* index) {                    \
        return reinterpret_cast<Faiss##cls*>(                              \
                static_cast<faiss::Index*>(fx::as<T>(index)));             \
    }
#define FX_INDEX_FREE(cls)                                                 \
    void faiss_##cls##_free(Faiss##cls* obj) {                             \
        delete reinterpret_cast<faiss::Index*>(obj);                       \
    }

#endif /* FX_BRIDGE_H */
