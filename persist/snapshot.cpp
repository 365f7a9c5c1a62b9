/* snapshot.cpp -- the snapshot container (see docs/format.md):
 *
 *   off size field
 *     0   8  magic "FXSNAP\r\n" (the CR LF catches text-mode mangling)
 *     8   4  format version (2; 1 is still read)
 *    12   4  header size (64)
 *    16   4  kind (1 = faiss::Index, 2 = faiss::IndexBinary)
 *    20   4  d (bits for a binary index)
 *    24   4  metric (faiss MetricType)
 *    28   4  flags (0)
 *    32   8  seq: the last log record the snapshot includes
 *    40   8  ntotal
 *    48   8  payload length in bytes
 *    56   4  CRC-32C of the payload
 *    60   4  CRC-32C of bytes 0..59
 *    64   -  payload
 * Payload, version 2: u32 metadata length M, u32 0, M bytes of metadata
 * (the store's memory of applied requests, store.cpp), zero padding to a
 * multiple of 8, then the faiss::write_index bytes (write_index_binary for
 * kind 2). Version 1: the faiss bytes alone (kind 1 only). All integers little-endian. */
#include "persist/snapshot.h"

#include "core/bridge.h"
#include "persist/bytes.h"
#include "persist/crc32c.h"
#include "persist/fileio.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <typeinfo>

namespace fx {
namespace snap {

namespace {

void encode_header(const Header& h, uint8_t* p) {
    std::memset(p, 0, HEADER_SIZE);
    std::memcpy(p, MAGIC, 8);
    fx_put_u32(p + 8, h.version);
    fx_put_u32(p + 12, HEADER_SIZE);
    fx_put_u32(p + 16, h.kind);
    fx_put_u32(p + 20, (uint32_t)h.d);
    fx_put_u32(p + 24, (uint32_t)h.metric);
    fx_put_u32(p + 28, 0);
    fx_put_u64(p + 32, h.seq);
    fx_put_u64(p + 40, (uint64_t)h.ntotal);
    fx_put_u64(p + 48, h.payload_len);
    fx_put_u32(p + 56, h.payload_crc);
    fx_put_u32(p + 60, fx_crc32c(0, p, 60));
}

/* The container around what `put` writes after the metadata section. */
template <class Put>
void write_container(const std::string& path, Header h,
                     const std::vector<uint8_t>& meta, Put put) {
    if (meta.size() > (1u << 30))
        throw Error(FAISSX_E_LIMIT, "snapshot metadata too large");
    faiss::VectorIOWriter w;
    size_t pre = 8 + ((meta.size() + 7) & ~size_t(7));
    w.data.resize(pre, 0);
    fx_put_u32(w.data.data(), (uint32_t)meta.size());
    if (!meta.empty()) std::memcpy(w.data.data() + 8, meta.data(), meta.size());
    put(&w);
    h.payload_len = w.data.size();
    h.payload_crc = fx_crc32c(0, w.data.data(), w.data.size());
    uint8_t hdr[HEADER_SIZE];
    encode_header(h, hdr);
    const void* parts[2] = {hdr, w.data.data()};
    size_t sizes[2] = {HEADER_SIZE, w.data.size()};
    if (fx_write_file_durable(path.c_str(), parts, sizes, 2) != 0)
        throw Error(FAISSX_E_IO, "cannot write snapshot '" + path +
                                         "': " + std::strerror(errno));
}

/* faiss 1.7.3 writes every IndexFlat with metric L2 or inner product under
 * the tag of IndexFlatL2 ("IxF2") or IndexFlatIP ("IxFI"), and read_index
 * builds that subclass: a plain IndexFlat (what the factory's "Flat"
 * builds) would come back as another class after a reopen, and the C API
 * casts (faiss_IndexFlatL2_cast, ...) would answer differently. Its own
 * tag "IxFl" is followed by the same fields (header, codes) and reads back
 * as a plain IndexFlat of the header's metric, so the top-level tag is
 * rewritten. (A plain IndexFlat nested inside a composite still reloads
 * as the subclass.) */
void keep_plain_flat(const faiss::Index* ix, std::vector<uint8_t>* bytes,
                     size_t at) {
    if (typeid(*ix) != typeid(faiss::IndexFlat)) return;
    uint32_t tag;
    if (bytes->size() < at + 4) return;
    std::memcpy(&tag, bytes->data() + at, 4);
    if (tag != faiss::fourcc("IxF2") && tag != faiss::fourcc("IxFI")) return;
    tag = faiss::fourcc("IxFl");
    std::memcpy(bytes->data() + at, &tag, 4);
}

} // namespace

void write(const std::string& path, const faiss::Index* ix, uint64_t seq,
           const std::vector<uint8_t>& meta) {
    Header h;
    h.kind = KIND_INDEX;
    h.d = ix->d;
    h.metric = (int32_t)ix->metric_type;
    h.seq = seq;
    h.ntotal = ix->ntotal;
    write_container(path, h, meta, [&](faiss::VectorIOWriter* w) {
        size_t at = w->data.size();
        faiss::write_index(ix, w);
        keep_plain_flat(ix, &w->data, at);
    });
}

void write_binary(const std::string& path, const faiss::IndexBinary* ix,
                  uint64_t seq, const std::vector<uint8_t>& meta) {
    Header h;
    h.kind = KIND_BINARY;
    h.d = ix->d;
    h.metric = (int32_t)ix->metric_type;
    h.seq = seq;
    h.ntotal = ix->ntotal;
    write_container(path, h, meta, [&](faiss::VectorIOWriter* w) {
        faiss::write_index_binary(ix, w);
    });
}

bool verify(const uint8_t* p, size_t n, Header* h, const uint8_t** payload,
            std::string* err) {
    if (n < HEADER_SIZE) {
        *err = "truncated snapshot header (" + std::to_string(n) +
               " bytes, need " + std::to_string(HEADER_SIZE) + ")";
        return false;
    }
    if (std::memcmp(p, MAGIC, 8) != 0) {
        *err = "not a faissx snapshot (bad magic)";
        return false;
    }
    if (fx_get_u32(p + 60) != fx_crc32c(0, p, 60)) {
        *err = "snapshot header checksum mismatch";
        return false;
    }
    h->version = fx_get_u32(p + 8);
    if (h->version < MIN_VERSION || h->version > VERSION) {
        *err = "unsupported snapshot format version " +
               std::to_string(h->version);
        return false;
    }
    if (fx_get_u32(p + 12) != HEADER_SIZE) {
        *err = "bad snapshot header size";
        return false;
    }
    h->kind = fx_get_u32(p + 16);
    if (h->kind != KIND_INDEX && h->kind != KIND_BINARY) {
        *err = "unknown snapshot kind " + std::to_string(h->kind);
        return false;
    }
    h->d = (int32_t)fx_get_u32(p + 20);
    h->metric = (int32_t)fx_get_u32(p + 24);
    h->seq = fx_get_u64(p + 32);
    h->ntotal = (int64_t)fx_get_u64(p + 40);
    h->payload_len = fx_get_u64(p + 48);
    h->payload_crc = fx_get_u32(p + 56);
    if (h->payload_len != n - HEADER_SIZE) {
        *err = "snapshot payload length " + std::to_string(h->payload_len) +
               " does not match the file (" + std::to_string(n - HEADER_SIZE) +
               " bytes after the header)";
        return false;
    }
    if (fx_crc32c(0, p + HEADER_SIZE, h->payload_len) != h->payload_crc) {
        *err = "snapshot payload checksum mismatch";
        return false;
    }
    if (h->d <= 0 || h->ntotal < 0) {
        *err = "snapshot header has an invalid dimension or count";
        return false;
    }
    *payload = p + HEADER_SIZE;
    return true;
}

/* faiss's file format drops IndexIVF::cp (the k-means settings): read_index
 * leaves default-constructed ones (25 iterations, never spherical) where
 * the constructors set 10 iterations and spherical k-means for inner
 * product. Put the constructor's values back, so that an index trained
 * after it was reloaded trains exactly as it would have in memory. */
static void restore_ivf_training(faiss::Index* ix) {
    for (int depth = 0; ix && depth < 8; depth++) {
        if (auto p = dynamic_cast<faiss::IndexPreTransform*>(ix))
            ix = p->index;
        else if (auto m = dynamic_cast<faiss::IndexIDMap*>(ix))
            ix = m->index;
        else if (auto r = dynamic_cast<faiss::IndexRefine*>(ix))
            ix = r->base_index;
        else
            break;
    }
    if (auto ivf = dynamic_cast<faiss::IndexIVF*>(ix)) {
        faiss::Level1Quantizer ctor(nullptr, ivf->nlist);
        ivf->cp = ctor.cp;
        if (ivf->metric_type == faiss::METRIC_INNER_PRODUCT)
            ivf->cp.spherical = true;
    }
}

/* faiss reads the payload in place (a VectorIOReader would copy it first:
 * for a large index, a second full copy and its page faults). */
struct SpanReader : faiss::IOReader {
    const uint8_t* p;
    size_t n, pos = 0;
    SpanReader(const uint8_t* data, size_t len) : p(data), n(len) {}
    size_t operator()(void* ptr, size_t size, size_t nitems) override {
        if (size == 0 || nitems == 0) return 0;
        size_t avail = (n - pos) / size;
        if (nitems > avail) nitems = avail;
        std::memcpy(ptr, p + pos, size * nitems);
        pos += size * nitems;
        return nitems;
    }
};

/* verify(), the kind check, and the metadata section: returns the faiss
 * bytes as a reader. */
static SpanReader open_payload(const uint8_t* data, size_t n,
                               const std::string& what, Header* h,
                               std::vector<uint8_t>* meta, uint32_t kind) {
    const uint8_t* payload = nullptr;
    std::string err;
    if (!verify(data, n, h, &payload, &err))
        throw Error(FAISSX_E_IO, "corrupt snapshot '" + what + "': " + err);
    if (h->kind != kind)
        throw Error(FAISSX_E_IO,
                    "snapshot '" + what + "' holds a " +
                            (h->kind == KIND_BINARY ? "binary" : "float") +
                            " index, not the " +
                            (kind == KIND_BINARY ? "binary" : "float") +
                            " index its store entry names");
    if (h->kind == KIND_BINARY && h->version < 2)
        throw Error(FAISSX_E_IO, "corrupt snapshot '" + what +
                                         "': a binary index in a version-1 "
                                         "snapshot");
    size_t skip = 0;
    if (meta) meta->clear();
    if (h->version >= 2) {
        uint64_t m = h->payload_len >= 8 ? fx_get_u32(payload) : UINT64_MAX;
        skip = 8 + ((m + 7) & ~uint64_t(7));
        if (m == UINT64_MAX || skip > h->payload_len)
            throw Error(FAISSX_E_IO, "corrupt snapshot '" + what +
                                             "': metadata section runs past "
                                             "the payload");
        if (meta) meta->assign(payload + 8, payload + 8 + m);
    }
    return SpanReader(payload + skip, h->payload_len - skip);
}

faiss::Index* decode(const uint8_t* data, size_t n, const std::string& what,
                     Header* h, std::vector<uint8_t>* meta) {
    SpanReader r = open_payload(data, n, what, h, meta, KIND_INDEX);
    std::unique_ptr<faiss::Index> ix(faiss::read_index(&r));
    if (ix->d != h->d || (int32_t)ix->metric_type != h->metric ||
        ix->ntotal != h->ntotal)
        throw Error(FAISSX_E_IO, "corrupt snapshot '" + what +
                                         "': index does not match its header");
    restore_ivf_training(ix.get());
    fx::hugepages_advise_codes(ix.get()); // core/hugepages.cpp
    return ix.release();
}

faiss::IndexBinary* decode_binary(const uint8_t* data, size_t n,
                                  const std::string& what, Header* h,
                                  std::vector<uint8_t>* meta) {
    SpanReader r = open_payload(data, n, what, h, meta, KIND_BINARY);
    std::unique_ptr<faiss::IndexBinary> ix(faiss::read_index_binary(&r));
    if (ix->d != h->d || (int32_t)ix->metric_type != h->metric ||
        ix->ntotal != h->ntotal || ix->d % 8 != 0)
        throw Error(FAISSX_E_IO, "corrupt snapshot '" + what +
                                         "': index does not match its header");
    // As for float IVF (restore_ivf_training): the binary IVF's k-means
    // settings are not in faiss's file; put its constructor's back.
    if (auto ivf = dynamic_cast<faiss::IndexBinaryIVF*>(ix.get())) {
        faiss::IndexBinaryFlat q(ivf->d);
        faiss::IndexBinaryIVF ctor(&q, ivf->d, 1);
        ivf->cp = ctor.cp;
    }
    return ix.release();
}

/* The file's bytes, then decoder(bytes, n). */
template <class T, class D>
static T* load_with(const std::string& path, D decoder) {
    uint8_t* data = nullptr;
    size_t n = 0;
    if (fx_read_file(path.c_str(), &data, &n) != 0)
        throw Error(FAISSX_E_IO, "cannot read snapshot '" + path +
                                         "': " + std::strerror(errno));
    std::unique_ptr<uint8_t, decltype(&std::free)> own(data, &std::free);
    return decoder(data, n);
}

faiss::Index* load(const std::string& path, Header* h,
                   std::vector<uint8_t>* meta) {
    return load_with<faiss::Index>(path, [&](const uint8_t* d, size_t n) {
        return decode(d, n, path, h, meta);
    });
}

faiss::IndexBinary* load_binary(const std::string& path, Header* h,
                                std::vector<uint8_t>* meta) {
    return load_with<faiss::IndexBinary>(path, [&](const uint8_t* d, size_t n) {
        return decode_binary(d, n, path, h, meta);
    });
}

} // namespace snap
} // namespace fx
