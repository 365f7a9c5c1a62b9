/* error.cpp -- the per-thread last error behind faiss_get_last_error(). */
#include "core/bridge.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexFlatCodes.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <typeinfo>

namespace {
thread_local std::string last_message;
thread_local int last_code = 0;

void vrecord(int code, const char* func, const char* fmt, va_list ap) {
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    last_code = code;
    try {
        last_message = std::string(func) + ": " + buf;
    } catch (...) {
        last_message.clear(); // out of memory: keep the code at least
    }
}
} // namespace

namespace fx {

int fail(int code, const char* func, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vrecord(code, func, fmt, ap);
    va_end(ap);
    return code;
}

void note_error(int code, const char* func, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vrecord(code, func, fmt, ap);
    va_end(ap);
}

/* The local text ("index is not trained...") inside a server's refusal
 * "server: op: func: index is not trained...", or NULL for another
 * error. */
static const char* untrained_refusal(const Error& e) {
    static const char kServer[] = "server: ", kText[] = "index is not trained";
    const char* m = e.what();
    if (e.code != FAISSX_E_INVALID ||
        std::strncmp(m, kServer, sizeof kServer - 1) != 0)
        return nullptr;
    m += sizeof kServer - 1;
    for (int names = 0; names < 3; names++) { // the op's, the function's
        size_t n = std::strspn(m, "abcdefghijklmnopqrstuvwxyz"
                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (n == 0 || m[n] != ':' || m[n + 1] != ' ') return nullptr;
        m += n + 2;
        if (!std::strncmp(m, kText, sizeof kText - 1)) return m;
    }
    return nullptr;
}

int handle_exception(const char* func) {
    try {
        throw;
    } catch (const Error& e) {
        // A call sent on a remote handle without asking first whether the
        // index is trained (core.h, trained_now): the server ran the C API
        // call and refused it as a local call does; record the local text,
        // not "func: server: op: its_func: index is not trained...".
        if (const char* t = untrained_refusal(e)) return fail(e.code, func, "%s", t);
        return fail(e.code, func, "%s", e.what());
    } catch (const faiss::FaissException& e) {
        return fail(FAISSX_E_FAISS, func, "%s", e.what());
    } catch (const std::bad_alloc&) {
        return fail(FAISSX_E_NOMEM, func, "out of memory");
    } catch (const std::exception& e) {
        return fail(FAISSX_E_STD, func, "%s", e.what());
    } catch (...) {
        return fail(FAISSX_E_UNKNOWN, func, "unknown exception");
    }
}

/* A float is NaN or +-inf exactly when its exponent bits are all ones.
 * Fixed-size blocks checked without branches let the compiler vectorize
 * this at -O2; it runs over every vector given to add/search, so it is on
 * the C API's hot path (see bench/, docs/benchmarks.md). */
/* Whether x[0..63] holds a NaN or an infinity. */
static bool block_has_nonfinite(const float* x) {
    uint32_t any = 0;
    for (size_t i = 0; i < 64; i++) {
        uint32_t u;
        std::memcpy(&u, x + i, sizeof u);
        any |= (~u & 0x7f800000u) == 0;
    }
    return any != 0;
}

bool all_finite(const float* x, size_t n, size_t* bad) {
    size_t i0 = 0;
    while (i0 + 64 <= n && !block_has_nonfinite(x + i0))
        i0 += 64;
    for (size_t i = i0; i < n; i++) {
        if (!std::isfinite(x[i])) {
            *bad = i;
            return false;
        }
    }
    return true;
}

bool copy_finite(float* dst, const float* src, size_t n, size_t* bad) {
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        std::memcpy(dst + i, src + i, 64 * sizeof(float));
        if (block_has_nonfinite(dst + i)) break; // the tail loop finds it
    }
    // The tail checks what was copied, not the source again: a source
    // that changes meanwhile (a shared-memory ring) cannot slip a value
    // past the check.
    for (; i < n; i++) {
        dst[i] = src[i];
        if (!std::isfinite(dst[i])) {
            *bad = i;
            return false;
        }
    }
    return true;
}

bool is_plain_flat(const faiss::Index* ix) {
    const std::type_info& t = typeid(*ix);
    return t == typeid(faiss::IndexFlat) || t == typeid(faiss::IndexFlatL2) ||
           t == typeid(faiss::IndexFlatIP);
}

bool flat_append_finite(faiss::IndexFlatCodes* f, idx n, const float* x,
                        size_t* bad) {
    size_t cnt = (size_t)n * (size_t)f->d, old = f->codes.size();
    reserve_huge(f->codes, old + cnt * sizeof(float));
    f->codes.resize(old + cnt * sizeof(float));
    if (!copy_finite(reinterpret_cast<float*>(f->codes.data() + old), x, cnt,
                     bad)) {
        f->codes.resize(old);
        return false;
    }
    f->ntotal += n;
    return true;
}
int check_vectors(const char* func, idx n, const float* x, int d,
                  const char* xname) {
    if (n < 0)
        return fail(FAISSX_E_INVALID, func, "n must be >= 0 (got %lld)",
                    (long long)n);
    if (n > 0 && x == nullptr)
        return fail(FAISSX_E_INVALID, func, "argument '%s' is NULL", xname);
    size_t bad;
    if (n > 0 && d > 0 && !all_finite(x, (size_t)n * (size_t)d, &bad))
        return fail(FAISSX_E_INVALID, func,
                    "%s contains a non-finite value (NaN or inf) at vector "
                    "%zu, component %zu",
                    xname, bad / (size_t)d, bad % (size_t)d);
    return 0;
}

} // namespace fx

/* Every program using the C API links this file; through this reference it
 * also loads kernels/dispatch.cpp, so in a static link faiss's distance
 * kernels are already defined when libfaiss.a is scanned and its member
 * distances_simd.cpp.o is never loaded (docs/kernels.md). */
extern "C" const int fx_kernels_linked;
__attribute__((used)) static const int* const fx_kernels_pull = &fx_kernels_linked;

extern "C" {

const char* faiss_get_last_error() {
    return last_message.empty() ? nullptr : last_message.c_str();
}

int faissx_last_error_code(void) {
    return last_code;
}

const char* faissx_strerror(int code) {
    switch (code) {
    case FAISSX_OK: return "success";
    case FAISSX_E_UNKNOWN: return "unknown error";
    case FAISSX_E_FAISS: return "faiss refused the operation";
    case FAISSX_E_STD: return "C++ standard library error";
    case FAISSX_E_INVALID: return "invalid argument";
    case FAISSX_E_NOMEM: return "out of memory";
    case FAISSX_E_IO: return "I/O error or corrupt data";
    case FAISSX_E_UNSUPPORTED: return "operation not supported by this index";
    case FAISSX_E_AUTH: return "authentication failed (missing or unknown API key)";
    case FAISSX_E_NOT_FOUND: return "no such index";
    case FAISSX_E_PERMISSION: return "permission denied";
    case FAISSX_E_LIMIT: return "server limit exceeded";
    case FAISSX_E_NET: return "cannot reach the server";
    case FAISSX_E_TIMEOUT: return "timed out waiting for the server";
    case FAISSX_E_EXISTS: return "an index with that name already exists";
    case FAISSX_E_PROTOCOL: return "protocol error";
    case FAISSX_E_CANCELED: return "cancelled";
    default: return "unrecognised error code";
    }
}

const char* faissx_version_string(void) {
    return FAISSX_VERSION_STRING;
}

int faissx_version(void) {
    return FAISSX_VERSION_MAJOR * 10000 + FAISSX_VERSION_MINOR * 100 +
           FAISSX_VERSION_PATCH;
}

#define FX_STR2(x) #x
#define FX_STR(x) FX_STR2(x)
const char* faiss_get_version(void) {
    return FX_STR(FAISS_VERSION_MAJOR) "." FX_STR(FAISS_VERSION_MINOR) "." FX_STR(
            FAISS_VERSION_PATCH);
}

} // extern "C"
