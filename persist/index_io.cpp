/* index_io.cpp -- index_io_c.h: reading and writing faiss index files.
 *
 * The C header's flags (FAISS_IO_FLAG_MMAP = 1, FAISS_IO_FLAG_READ_ONLY = 2)
 * are not faiss C++'s values (IO_FLAG_MMAP is 0x646f0008), so they are
 * translated here; upstream passed them through unchanged. */
#include "core/core.h"

#include <faiss/index_io.h>

#include <cerrno>
#include <cstring>
#include <sys/stat.h>

namespace {

int translate_flags(const char* func, int io_flags, int* out) {
    const int known = FAISS_IO_FLAG_MMAP | FAISS_IO_FLAG_READ_ONLY |
                      faiss::IO_FLAG_ONDISK_SAME_DIR |
                      faiss::IO_FLAG_SKIP_IVF_DATA |
                      faiss::IO_FLAG_SKIP_PRECOMPUTE_TABLE;
    if (io_flags & ~known)
        return fx::fail(FAISSX_E_INVALID, func, "unknown io_flags bits 0x%x",
                        io_flags & ~known);
    int f = io_flags & ~(FAISS_IO_FLAG_MMAP | FAISS_IO_FLAG_READ_ONLY);
    if (io_flags & FAISS_IO_FLAG_MMAP) f |= faiss::IO_FLAG_MMAP;
    if (io_flags & FAISS_IO_FLAG_READ_ONLY) f |= faiss::IO_FLAG_READ_ONLY;
    *out = f;
    return 0;
}

/* A readable regular file, or a clear error (faiss's own message for a
 * missing file is a stack of internals). */
int check_readable(const char* func, const char* fname) {
    struct stat st;
    if (stat(fname, &st) != 0)
        return fx::fail(FAISSX_E_IO, func, "cannot open '%s': %s", fname,
                        std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fx::fail(FAISSX_E_IO, func, "'%s' is not a regular file",
                        fname);
    if (st.st_size == 0)
        return fx::fail(FAISSX_E_IO, func, "'%s' is empty", fname);
    return 0;
}

/* faiss reports truncated or corrupt files as FaissException; name them as
 * I/O errors so callers can tell them from bad arguments. */
int io_exception(const char* func) {
    int rc = fx::handle_exception(func);
    if (rc == FAISSX_E_FAISS || rc == FAISSX_E_STD) {
        const char* m = faiss_get_last_error();
        std::string msg = m ? m : "";
        return fx::fail(FAISSX_E_IO, func, "corrupt or unreadable index: %s",
                        msg.c_str());
    }
    return rc;
}

} // namespace

extern "C" {

/* A remote index is written as the faiss bytes of its server-side index,
 * so the file is readable by any faiss. */
static void write_remote(const fx::RemoteIndex* r, FILE* f) {
    std::vector<uint8_t> bytes = r->serialize();
    if (fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
        throw fx::Error(FAISSX_E_IO, std::string("write failed: ") +
                                             std::strerror(errno));
}

int faiss_write_index(const FaissIndex* idx, FILE* f) {
    FX_NOT_NULL(idx);
    FX_NOT_NULL(f);
    FX_TRY
    if (auto r = fx::as_remote(fx::index(idx)))
        write_remote(r, f);
    else
        faiss::write_index(fx::index(idx), f);
    if (fflush(f) != 0)
        return fx::fail(FAISSX_E_IO, __func__, "flush failed: %s",
                        std::strerror(errno));
    return 0;
    FX_CATCH
}

int faiss_write_index_fname(const FaissIndex* idx, const char* fname) {
    FX_NOT_NULL(idx);
    FX_NOT_NULL(fname);
    FX_TRY
    if (auto r = fx::as_remote(fx::index(idx))) {
        FILE* f = fopen(fname, "wb");
        if (!f)
            return fx::fail(FAISSX_E_IO, __func__, "cannot open '%s': %s",
                            fname, std::strerror(errno));
        try {
            write_remote(r, f);
        } catch (...) {
            fclose(f);
            throw;
        }
        if (fclose(f) != 0)
            return fx::fail(FAISSX_E_IO, __func__, "close of '%s' failed: %s",
                            fname, std::strerror(errno));
        return 0;
    }
    faiss::write_index(fx::index(idx), fname);
    return 0;
    } catch (...) {
        return io_exception(__func__);
    }
}

int faiss_read_index(FILE* f, int io_flags, FaissIndex** p_out) {
    FX_NOT_NULL(f);
    FX_NOT_NULL(p_out);
    int flags;
    if (int rc = translate_flags(__func__, io_flags, &flags)) return rc;
    try {
        *p_out = fx::handle<FaissIndex>(faiss::read_index(f, flags));
        return 0;
    } catch (...) {
        return io_exception(__func__);
    }
}

int faiss_read_index_fname(const char* fname, int io_flags,
                           FaissIndex** p_out) {
    FX_NOT_NULL(fname);
    FX_NOT_NULL(p_out);
    int flags;
    if (int rc = translate_flags(__func__, io_flags, &flags)) return rc;
    if (int rc = check_readable(__func__, fname)) return rc;
    try {
        *p_out = fx::handle<FaissIndex>(faiss::read_index(fname, flags));
        return 0;
    } catch (...) {
        return io_exception(__func__);
    }
}

int faiss_write_index_binary(const FaissIndexBinary* idx, FILE* f) {
    FX_NOT_NULL(idx);
    FX_NOT_NULL(f);
    FX_TRY
    faiss::write_index_binary(fx::bindex(idx), f);
    if (fflush(f) != 0)
        return fx::fail(FAISSX_E_IO, __func__, "flush failed: %s",
                        std::strerror(errno));
    return 0;
    FX_CATCH
}

int faiss_write_index_binary_fname(const FaissIndexBinary* idx,
                                   const char* fname) {
    FX_NOT_NULL(idx);
    FX_NOT_NULL(fname);
    try {
        faiss::write_index_binary(fx::bindex(idx), fname);
        return 0;
    } catch (...) {
        return io_exception(__func__);
    }
}

int faiss_read_index_binary(FILE* f, int io_flags, FaissIndexBinary** p_out) {
    FX_NOT_NULL(f);
    FX_NOT_NULL(p_out);
    int flags;
    if (int rc = translate_flags(__func__, io_flags, &flags)) return rc;
    try {
        *p_out = fx::handle<FaissIndexBinary>(
                faiss::read_index_binary(f, flags));
        return 0;
    } catch (...) {
        return io_exception(__func__);
    }
}

int faiss_read_index_binary_fname(const char* fname, int io_flags,
                                  FaissIndexBinary** p_out) {
    FX_NOT_NULL(fname);
    FX_NOT_NULL(p_out);
    int flags;
    if (int rc = translate_flags(__func__, io_flags, &flags)) return rc;
    if (int rc = check_readable(__func__, fname)) return rc;
    try {
        *p_out = fx::handle<FaissIndexBinary>(
                faiss::read_index_binary(fname, flags));
        return 0;
    } catch (...) {
        return io_exception(__func__);
    }
}

} // extern "C"
