/* snapshot.h -- internal: the snapshot container around faiss index bytes
 * (layout in docs/format.md). The checksum is verified before faiss parses
 * a byte: faiss 1.7.3's read_index trusts its input. Not API. */
#ifndef FX_SNAPSHOT_H
#define FX_SNAPSHOT_H

#include <faiss/Index.h>
#include <faiss/IndexBinary.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fx {
namespace snap {

constexpr char MAGIC[9] = "FXSNAP\r\n";
/* 2: the payload starts with a section of store metadata (the memory of
 * applied requests); version 1 (faiss bytes only) is still read. */
constexpr uint32_t VERSION = 2;
constexpr uint32_t MIN_VERSION = 1;
constexpr uint32_t HEADER_SIZE = 64;
constexpr uint32_t KIND_INDEX = 1;  /* a faiss::Index (float vectors) */
constexpr uint32_t KIND_BINARY = 2; /* a faiss::IndexBinary (write_index_binary) */

struct Header {
    uint32_t version = VERSION;
    uint32_t kind = KIND_INDEX;
    int32_t d = 0;
    int32_t metric = 0;
    uint64_t seq = 0;     /* last log sequence number the snapshot includes */
    int64_t ntotal = 0;
    uint64_t payload_len = 0;
    uint32_t payload_crc = 0;
};

/* Durably writes a snapshot of `ix` covering log records up to `seq`
 * (temp file, fsync, rename, directory fsync), with `meta` (opaque to this
 * layer, at most 2^30 bytes) in its metadata section. Throws fx::Error
 * (FAISSX_E_IO) naming the path and errno text. */
void write(const std::string& path, const faiss::Index* ix, uint64_t seq,
           const std::vector<uint8_t>& meta = {});

/* write() for a binary index: kind KIND_BINARY, faiss::write_index_binary
 * bytes (d in bits, metric 0). */
void write_binary(const std::string& path, const faiss::IndexBinary* ix,
                  uint64_t seq, const std::vector<uint8_t>& meta = {});

/* Checks the container in memory: magic, version, kind, header checksum,
 * length and payload checksum. Never calls faiss. On success *h and
 * *payload (pointing into data) are set; otherwise *err says what is wrong. */
bool verify(const uint8_t* data, size_t n, Header* h, const uint8_t** payload,
            std::string* err);

/* verify() then faiss::read_index; checks the index agrees with the header
 * (d, metric, ntotal). Throws fx::Error(FAISSX_E_IO) with `what` (a path)
 * and the reason. The caller owns the result. *meta (if not NULL) gets the
 * metadata section (empty for a version-1 snapshot). */
faiss::Index* decode(const uint8_t* data, size_t n, const std::string& what,
                     Header* h, std::vector<uint8_t>* meta = nullptr);

/* Reads the file and decode()s it. */
faiss::Index* load(const std::string& path, Header* h,
                   std::vector<uint8_t>* meta = nullptr);

/* decode() and load() for a KIND_BINARY snapshot (faiss::read_index_binary).
 * A snapshot of the other kind is refused (FAISSX_E_IO) before faiss
 * parses it, by decode() too. */
faiss::IndexBinary* decode_binary(const uint8_t* data, size_t n,
                                  const std::string& what, Header* h,
                                  std::vector<uint8_t>* meta = nullptr);
faiss::IndexBinary* load_binary(const std::string& path, Header* h,
                                std::vector<uint8_t>* meta = nullptr);

} // namespace snap
} // namespace fx

#endif
