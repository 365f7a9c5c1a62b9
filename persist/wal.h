/* wal.h -- internal: the write-ahead log of an index's mutations (format
 * in prose at the top of wal.cpp and in docs/format.md). A Wal appends
 * framed records to one segment file and makes them durable under a sync
 * policy; scan() parses a segment for recovery and for faissx-check.
 * Not API. */
#ifndef FX_WAL_H
#define FX_WAL_H

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace fx {
namespace wal {

constexpr char MAGIC[9] = "FXWAL\r\n1";
/* Segment format version: 2 since records may carry a request tag
 * (REC_FLAG_TAGGED); version-1 segments (no flags) are still read. */
constexpr uint32_t VERSION = 2;
constexpr uint32_t MIN_VERSION = 1;
constexpr uint32_t SEG_HEADER = 32;   /* segment header size */
constexpr uint32_t REC_HEADER = 24;   /* record header size */
constexpr uint32_t MAX_PAYLOAD = 1u << 30;

/* Record types. */
enum : uint16_t {
    REC_ADD = 1,
    REC_ADD_WITH_IDS = 2,
    REC_REMOVE_IDS = 3,
    REC_RESET = 4,
    REC_SET_PARAM = 5,
    /* A binary index's add / add_with_ids (codes, not floats). A binary
     * index logs REC_REMOVE_IDS, REC_RESET and REC_SET_PARAM with the
     * float layouts. */
    REC_BIN_ADD = 6,
    REC_BIN_ADD_WITH_IDS = 7,
};

/* Record flags (header bytes 6-7). */
enum : uint16_t {
    /* The payload starts with a request tag: u64 client id, u64 request
     * id (the client's request that made the mutation), then the type's
     * payload. Only in version-2 segments. */
    REC_FLAG_TAGGED = 1,
};
constexpr uint32_t TAG_SIZE = 16;

enum Sync { SYNC_ALWAYS = 0, SYNC_INTERVAL = 1, SYNC_NONE = 2 };

/* What scan() found in a segment. */
struct Scan {
    uint32_t version = 0;    /* from the segment header */
    uint64_t base_seq = 0;   /* from the segment header */
    uint64_t last_seq = 0;   /* of the last good record (base_seq if none) */
    uint64_t nrecords = 0;   /* good records */
    uint64_t good_end = 0;   /* offset just past the last good record */
    uint64_t file_size = 0;
    bool header_ok = false;  /* segment header valid */
    bool bad = false;        /* bytes after good_end are not a valid record */
    uint64_t valid_after = 0; /* valid records found after the bad one:
                                 0 means a torn tail, >0 mid-log corruption */
    std::string problem;     /* what is wrong at good_end, when bad */
};

/* One good record: type, flags, seq, payload (with the tag, if flagged).
 * Return false to stop the scan there (the record then counts as bad,
 * with problem = *why). Unknown flags, or flags in a version-1 segment,
 * make a record bad before fn sees it. */
using RecordFn = std::function<bool(uint16_t type, uint16_t flags,
                                    uint64_t seq, const uint8_t* payload,
                                    size_t len, std::string* why)>;

/* Parses a segment held in memory, calling fn for each good record in
 * order. Records must have consecutive sequence numbers starting at
 * base_seq + 1. Stops at the first bad record and looks past it for valid
 * ones (see Scan::valid_after). */
void scan(const uint8_t* data, size_t n, Scan* out, const RecordFn& fn);

/* The segment header bytes for a new segment starting after base_seq. */
void encode_segment_header(uint64_t base_seq, uint8_t out[SEG_HEADER]);

class Wal {
public:
    /* Creates a new empty segment at `path` (header written and fsynced,
     * directory fsynced). Throws fx::Error(FAISSX_E_IO). */
    static std::shared_ptr<Wal> create(const std::string& path,
                                       uint64_t base_seq, Sync sync,
                                       int interval_ms);
    /* Opens an existing (recovered) segment for appending at `end`, the
     * last record having sequence `last_seq`. */
    static std::shared_ptr<Wal> open_append(const std::string& path,
                                            uint64_t end, uint64_t last_seq,
                                            Sync sync, int interval_ms);
    ~Wal();

    /* Appends one record (with `flags`) whose payload is the
     * concatenation of `nparts` buffers. Callers serialize append/undo (the store holds the index's
     * write lock). Returns a ticket for commit(). On a write error the
     * partial record is cut off and fx::Error(FAISSX_E_IO) is thrown. */
    uint64_t append(uint16_t type, const void* const* parts,
                    const size_t* sizes, int nparts, uint16_t flags = 0);

    /* Removes the record appended last (its apply failed). */
    void undo_last();

    /* Returns once the record with this ticket is durable under the
     * policy: `always` fsyncs (one fsync serves every writer waiting at
     * that moment: group commit), `interval` and `none` return at once.
     * Throws fx::Error(FAISSX_E_IO) if the log cannot be synced. */
    void commit(uint64_t ticket);

    /* Fsyncs everything appended so far (close, checkpoint). Throws. */
    void sync_all();

    /* Fsyncs the file now, even if everything is believed synced: after
     * recovery, records a crashed process wrote may still be only in the
     * page cache, and a retry is about to be answered from them. */
    void sync_recovered();

    /* The records of this segment are covered by a durable snapshot:
     * wake every commit() waiter as if synced, stop syncing. */
    void retire();

    /* True after a failed fsync or an unrecoverable write error: the page
     * cache can no longer be trusted, so the store must checkpoint from
     * memory before appending again. */
    bool poisoned() const;
    std::string poison_reason() const;

    uint64_t last_seq() const;
    uint64_t size() const;
    const std::string& path() const { return path_; }

private:
    Wal(const std::string& path, int fd, uint64_t end, uint64_t last_seq,
        Sync sync, int interval_ms);
    void sync_until(std::unique_lock<std::mutex>& l, uint64_t target);
    void background();

    std::string path_;
    int fd_;
    Sync sync_;
    int interval_ms_;
    mutable std::mutex mu_;
    std::condition_variable cv_;   /* synced_ advanced, or syncing ended */
    std::condition_variable stop_cv_;
    uint64_t end_;                 /* bytes written */
    uint64_t synced_;              /* bytes known durable */
    uint64_t last_seq_;
    uint64_t prev_end_ = 0, prev_seq_ = 0; /* before the last append */
    uint64_t epoch_ = 0;           /* bumped by undo_last */
    bool syncing_ = false;
    bool retired_ = false;
    bool stop_ = false;
    bool tail_dirty_ = false;      /* a failed write left bytes past end_ */
    bool poisoned_ = false;
    std::string poison_;
    std::thread thread_;
};

} // namespace wal
} // namespace fx

#endif
