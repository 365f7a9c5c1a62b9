/* index_io.cpp -- index_io_c.h: reading and writing faiss index files.
 *
 * The C header's flags (FAISS_IO_FLAG_MMAP = 1, FAISS_IO_FLAG_READ_ONLY = 2)
 * are not faiss C++'s values (IO_FLAG_MMAP is 0x646f0008), so they are
 * translated here; upstream passed them through unchanged. */
#include "core/core.h"

#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexBinaryHash.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexLSH.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/IndexRefine.h>
#include <faiss/VectorTransform.h>
#include <faiss/index_io.h>
#include <faiss/invlists/OnDiskInvertedLists.h>

#include <cerrno>
#include <functional>
#include <memory>
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

/* ---- consistency of an index just read ---------------------------------
 *
 * faiss 1.7.3 checks little of what it reads: a flipped bit in a header
 * can give an index whose ntotal disagrees with its stored codes (the
 * IndexFlatCodes check multiplies ntotal * code_size and overflows), or a
 * wrapper whose d differs from the index it wraps. Searching such an index
 * reads out of bounds, so these are refused as corrupt files. */

bool metric_known(int m) {
    return (m >= faiss::METRIC_INNER_PRODUCT && m <= faiss::METRIC_Lp) ||
           (m >= faiss::METRIC_Canberra && m <= faiss::METRIC_JensenShannon);
}

/* n items of `size` bytes fill exactly `bytes`. */
bool fills(size_t bytes, faiss::Index::idx_t n, size_t size) {
    if (n < 0) return false;
    if (size == 0) return bytes == 0;
    return bytes % size == 0 && bytes / size == (size_t)n;
}

template <class IVF>
const char* check_lists(const IVF* ivf) {
    if (!ivf->invlists) return "IVF without inverted lists";
    if (ivf->invlists->nlist != ivf->nlist)
        return "inverted lists disagree with nlist";
    if (ivf->invlists->code_size != (size_t)ivf->code_size)
        return "inverted lists disagree with code_size";
    /* every stored vector is in one list (faiss counts vectors the
     * quantizer could not assign in ntotal, which a flat quantizer never
     * produces) */
    size_t sum = 0;
    for (size_t l = 0; l < ivf->nlist; l++) sum += ivf->invlists->list_size(l);
    if ((faiss::Index::idx_t)sum != ivf->ntotal)
        return "inverted list sizes disagree with ntotal";
    return nullptr;
}

template <class HNSWIndex>
const char* check_hnsw(const HNSWIndex* h) {
    if (!h->storage) return "HNSW without storage";
    if (h->storage->d != h->d || h->storage->ntotal != h->ntotal)
        return "HNSW storage disagrees with the index";
    if ((faiss::Index::idx_t)h->hnsw.levels.size() != h->ntotal ||
        (faiss::Index::idx_t)h->hnsw.offsets.size() != h->ntotal + 1)
        return "HNSW graph disagrees with ntotal";
    return nullptr;
}

/* The quantizer of a codec index agrees with the index's d and code_size
 * (both are stored twice in the file). */
const char* check_codec(const faiss::Index* ix, size_t code_size) {
    const faiss::Quantizer* q = nullptr;
    if (auto sq = dynamic_cast<const faiss::IndexScalarQuantizer*>(ix))
        q = &sq->sq;
    else if (auto pq = dynamic_cast<const faiss::IndexPQ*>(ix))
        q = &pq->pq;
    else if (auto ivq = dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(ix))
        q = &ivq->sq;
    else if (auto ivp = dynamic_cast<const faiss::IndexIVFPQ*>(ix))
        q = &ivp->pq;
    if (q && (q->d != (size_t)ix->d || q->code_size != code_size))
        return "quantizer disagrees with the index's d or code size";
    bool flat = dynamic_cast<const faiss::IndexFlat*>(ix) ||
                dynamic_cast<const faiss::IndexIVFFlat*>(ix);
    if (flat && code_size != (size_t)ix->d * sizeof(float))
        return "code size disagrees with d";
    if (auto lsh = dynamic_cast<const faiss::IndexLSH*>(ix)) {
        if (lsh->nbits <= 0 || code_size != (size_t)(lsh->nbits + 7) / 8)
            return "LSH code size disagrees with nbits";
        if (lsh->rotate_data &&
            (lsh->rrot.d_in != lsh->d || lsh->rrot.d_out != lsh->nbits))
            return "LSH rotation disagrees with d or nbits";
        if (!lsh->rotate_data && lsh->nbits > lsh->d)
            return "LSH nbits exceeds d without rotation";
        if (lsh->train_thresholds && lsh->is_trained &&
            lsh->thresholds.size() != (size_t)lsh->nbits)
            return "LSH thresholds disagree with nbits";
    }
    return nullptr;
}

const char* check_index(const faiss::Index* ix) {
    if (!ix) return "missing sub-index";
    if (ix->d < 0 || ix->ntotal < 0) return "negative d or ntotal";
    if (!metric_known(ix->metric_type)) return "unknown metric type";
    if (auto fc = dynamic_cast<const faiss::IndexFlatCodes*>(ix)) {
        if (const char* w = check_codec(ix, fc->code_size)) return w;
    } else if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(ix)) {
        if (const char* w = check_codec(ix, ivf->code_size)) return w;
    }
    if (auto fc = dynamic_cast<const faiss::IndexFlatCodes*>(ix)) {
        if (!fills(fc->codes.size(), fc->ntotal, fc->code_size))
            return "stored codes disagree with ntotal";
    } else if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(ix)) {
        if (!ivf->quantizer || ivf->quantizer->d != ivf->d)
            return "IVF quantizer disagrees with the index";
        if (ivf->is_trained && ivf->quantizer->ntotal != (faiss::Index::idx_t)ivf->nlist)
            return "IVF quantizer size disagrees with nlist";
        if (const char* w = check_lists(ivf)) return w;
        return check_index(ivf->quantizer);
    } else if (auto im = dynamic_cast<const faiss::IndexIDMap*>(ix)) {
        if (!im->index || im->index->d != im->d ||
            im->index->ntotal != im->ntotal ||
            (faiss::Index::idx_t)im->id_map.size() != im->ntotal)
            return "IDMap disagrees with the index it maps";
        return check_index(im->index);
    } else if (auto pt = dynamic_cast<const faiss::IndexPreTransform*>(ix)) {
        if (!pt->index || pt->index->ntotal != pt->ntotal)
            return "pre-transform disagrees with its index";
        int din = pt->d;
        for (auto t : pt->chain) {
            if (!t || t->d_in != din)
                return "transform chain dimensions do not match";
            din = t->d_out;
        }
        if (din != pt->index->d)
            return "transform chain output differs from the index dimension";
        return check_index(pt->index);
    } else if (auto h = dynamic_cast<const faiss::IndexHNSW*>(ix)) {
        if (const char* w = check_hnsw(h)) return w;
        return check_index(h->storage);
    } else if (auto rf = dynamic_cast<const faiss::IndexRefine*>(ix)) {
        if (!rf->base_index || !rf->refine_index ||
            rf->base_index->d != rf->d || rf->refine_index->d != rf->d ||
            rf->base_index->ntotal != rf->ntotal ||
            rf->refine_index->ntotal != rf->ntotal)
            return "refine index disagrees with its parts";
        if (const char* w = check_index(rf->base_index)) return w;
        return check_index(rf->refine_index);
    }
    return nullptr;
}

const char* check_index(const faiss::IndexBinary* ix) {
    if (!ix) return "missing sub-index";
    if (ix->d < 0 || ix->d % 8 != 0 || ix->code_size != ix->d / 8 ||
        ix->ntotal < 0)
        return "inconsistent d, code_size or ntotal";
    if (auto f = dynamic_cast<const faiss::IndexBinaryFlat*>(ix)) {
        if (!fills(f->xb.size(), f->ntotal, f->code_size))
            return "stored codes disagree with ntotal";
    } else if (auto ivf = dynamic_cast<const faiss::IndexBinaryIVF*>(ix)) {
        if (!ivf->quantizer || ivf->quantizer->d != ivf->d)
            return "IVF quantizer disagrees with the index";
        if (ivf->is_trained && ivf->quantizer->ntotal != (faiss::Index::idx_t)ivf->nlist)
            return "IVF quantizer size disagrees with nlist";
        if (const char* w = check_lists(ivf)) return w;
        return check_index(ivf->quantizer);
    } else if (auto h = dynamic_cast<const faiss::IndexBinaryHNSW*>(ix)) {
        if (const char* w = check_hnsw(h)) return w;
        return check_index(h->storage);
    } else if (auto hs = dynamic_cast<const faiss::IndexBinaryHash*>(ix)) {
        if (hs->b <= 0 || hs->b > 64 || hs->b > hs->d || hs->nflip < 0)
            return "hash parameters disagree with d";
        size_t n = 0;
        for (const auto& l : hs->invlists) {
            if (!fills(l.second.vecs.size(), l.second.ids.size(),
                       hs->code_size))
                return "hash list codes disagree with its ids";
            n += l.second.ids.size();
        }
        if ((faiss::Index::idx_t)n != hs->ntotal)
            return "hash list sizes disagree with ntotal";
    } else if (auto mh = dynamic_cast<const faiss::IndexBinaryMultiHash*>(ix)) {
        if (!mh->storage || mh->storage->d != mh->d ||
            mh->storage->ntotal != mh->ntotal)
            return "multi-hash storage disagrees with the index";
        if (mh->b <= 0 || mh->nhash <= 0 || (size_t)mh->nhash != mh->maps.size() ||
            (long long)mh->nhash * mh->b > mh->d || mh->nflip < 0)
            return "multi-hash parameters disagree with d";
        for (const auto& m : mh->maps)
            for (const auto& l : m)
                for (auto id : l.second)
                    if (id < 0 || id >= mh->ntotal)
                        return "multi-hash id outside the storage";
        return check_index(mh->storage);
    } else if (auto im = dynamic_cast<const faiss::IndexBinaryIDMap*>(ix)) {
        if (!im->index || im->index->d != im->d ||
            im->index->ntotal != im->ntotal ||
            (faiss::Index::idx_t)im->id_map.size() != im->ntotal)
            return "IDMap disagrees with the index it maps";
        return check_index(im->index);
    }
    return nullptr;
}

/* faiss's reader sized and filled the codes before faissx could advise
 * them (core/hugepages.cpp): advised now, they move to huge pages in the
 * background. Binary indexes are left as they are. */
void advise_after_read(faiss::Index* ix) {
    fx::hugepages_advise_codes(ix);
}
void advise_after_read(faiss::IndexBinary*) {}

/* Hands a freshly read index to the caller, or refuses it as corrupt. */
template <class T, class H>
int deliver(const char* func, T* ix, H** p_out) {
    std::unique_ptr<T> owned(ix);
    if (const char* why = check_index(ix))
        return fx::fail(FAISSX_E_IO, func, "corrupt index: %s", why);
    advise_after_read(ix);
    *p_out = fx::handle<H>(owned.release());
    return 0;
}

/* The four readers share this: flags translated, a named file checked
 * first (fname NULL for a FILE*), faiss's reader run as read(flags), the
 * index checked and handed over; every failure is reported for func. */
template <class H, class Read>
int read_with(const char* func, const char* fname, int io_flags, H** p_out,
              Read read) {
    int flags = 0;
    if (int rc = translate_flags(func, io_flags, &flags)) return rc;
    if (fname)
        if (int rc = check_readable(func, fname)) return rc;
    try {
        return deliver(func, read(flags), p_out);
    } catch (...) {
        return io_exception(func);
    }
}

/* Writes through `write` into a file we open and close ourselves: faiss's
 * own writer ignores a failing fclose (a full disk then looks like
 * success). */
int write_path(const char* func, const char* fname,
               const std::function<void(FILE*)>& write) {
    FILE* f = fopen(fname, "wb");
    if (!f)
        return fx::fail(FAISSX_E_IO, func, "cannot open '%s' for writing: %s",
                        fname, std::strerror(errno));
    try {
        write(f);
    } catch (...) {
        fclose(f);
        return io_exception(func);
    }
    if (fclose(f) != 0)
        return fx::fail(FAISSX_E_IO, func, "writing '%s' failed: %s", fname,
                        std::strerror(errno));
    return 0;
}

template <class IVF>
bool lists_read_only(const IVF* ivf) {
    auto od = dynamic_cast<const faiss::OnDiskInvertedLists*>(ivf->invlists);
    return od && od->read_only;
}

} // namespace

namespace fx {

bool read_only_lists(const faiss::Index* ix) {
    if (!ix) return false;
    if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(ix))
        return lists_read_only(ivf);
    if (auto im = dynamic_cast<const faiss::IndexIDMap*>(ix))
        return read_only_lists(im->index);
    if (auto pt = dynamic_cast<const faiss::IndexPreTransform*>(ix))
        return read_only_lists(pt->index);
    if (auto rf = dynamic_cast<const faiss::IndexRefine*>(ix))
        return read_only_lists(rf->base_index);
    return false;
}

bool read_only_lists(const faiss::IndexBinary* ix) {
    if (auto ivf = dynamic_cast<const faiss::IndexBinaryIVF*>(ix))
        return lists_read_only(ivf);
    if (auto im = dynamic_cast<const faiss::IndexBinaryIDMap*>(ix))
        return read_only_lists(im->index);
    return false;
}

} // namespace fx

/* A remote index is written as the faiss bytes of its server-side index,
 * so the file is readable by any faiss. */
template <class R>
static void write_remote(const R* r, FILE* f) {
    std::vector<uint8_t> bytes = r->serialize();
    if (fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
        throw fx::Error(FAISSX_E_IO, std::string("write failed: ") +
                                             std::strerror(errno));
}

/* A remote index to a file: its bytes come from the server first, so a
 * failing server leaves an existing file as it was; then the file is
 * written as a local index's is (write_path: the same errors, the same
 * texts). */
template <class R>
static int write_remote_path(const char* func, const char* fname, const R* r) {
    std::vector<uint8_t> bytes;
    try {
        bytes = r->serialize();
    } catch (...) {
        return io_exception(func);
    }
    return write_path(func, fname, [&](FILE* f) {
        if (fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
            throw fx::Error(FAISSX_E_IO, std::string("writing '") + fname +
                                                 "' failed: " +
                                                 std::strerror(errno));
    });
}

extern "C" {

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
    if (auto r = fx::as_remote(fx::index(idx)))
        return write_remote_path(__func__, fname, r);
    return write_path(__func__, fname, [&](FILE* f) {
        faiss::write_index(fx::index(idx), f);
    });
}

int faiss_read_index(FILE* f, int io_flags, FaissIndex** p_out) {
    FX_NOT_NULL(f);
    FX_NOT_NULL(p_out);
    return read_with(__func__, nullptr, io_flags, p_out,
                     [&](int fl) { return faiss::read_index(f, fl); });
}

int faiss_read_index_fname(const char* fname, int io_flags,
                           FaissIndex** p_out) {
    FX_NOT_NULL(fname);
    FX_NOT_NULL(p_out);
    return read_with(__func__, fname, io_flags, p_out,
                     [&](int fl) { return faiss::read_index(fname, fl); });
}

int faiss_write_index_binary(const FaissIndexBinary* idx, FILE* f) {
    FX_NOT_NULL(idx);
    FX_NOT_NULL(f);
    FX_TRY
    if (auto r = fx::as_remote_bin(fx::bindex(idx)))
        write_remote(r, f);
    else
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
    if (auto r = fx::as_remote_bin(fx::bindex(idx)))
        return write_remote_path(__func__, fname, r);
    return write_path(__func__, fname, [&](FILE* f) {
        faiss::write_index_binary(fx::bindex(idx), f);
    });
}

int faiss_read_index_binary(FILE* f, int io_flags, FaissIndexBinary** p_out) {
    FX_NOT_NULL(f);
    FX_NOT_NULL(p_out);
    return read_with(__func__, nullptr, io_flags, p_out,
                     [&](int fl) { return faiss::read_index_binary(f, fl); });
}

int faiss_read_index_binary_fname(const char* fname, int io_flags,
                                  FaissIndexBinary** p_out) {
    FX_NOT_NULL(fname);
    FX_NOT_NULL(p_out);
    return read_with(__func__, fname, io_flags, p_out, [&](int fl) {
        return faiss::read_index_binary(fname, fl);
    });
}

} // extern "C"
