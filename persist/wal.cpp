/* wal.cpp -- the write-ahead log.
 *
 * FORMAT
 *
 * An index's log is a sequence of segment files; the manifest names the
 * current one (docs/format.md). A segment starts with a 32-byte header:
 *
 *     0  8  magic "FXWAL\r\n1"
 *     8  4  format version (2; version 1 is still read)
 *    12  4  header size (32)
 *    16  8  base sequence: the first record is numbered base + 1
 *    24  4  reserved (0)
 *    28  4  CRC-32C of bytes 0..27
 *
 * followed by records, each starting at an 8-byte aligned offset:
 *
 *     0  4  payload length L (at most 2^30)
 *     4  2  record type
 *     6  2  flags: bit 0 = tagged (version 2 only; other bits 0)
 *     8  8  sequence number
 *    16  4  CRC-32C of header bytes 0..15 followed by the L payload bytes
 *    20  4  reserved (0)
 *    24  L  payload, then zero padding to a multiple of 8
 *
 * Integers are little-endian. Sequence numbers are consecutive across the
 * whole life of an index: a snapshot records the last sequence it includes,
 * and the segment started with it has that as its base. Payloads (encoded
 * and applied by store.cpp):
 *
 *   1 add           i64 n, i32 d, u32 0, n*d float32
 *   2 add_with_ids  i64 n, i32 d, u32 0, n*d float32, n i64 ids
 *   3 remove_ids    u32 selector (1 range, 2 id list), u32 flags, then
 *                   range: i64 imin, i64 imax (flags bit 0: assume_sorted);
 *                   list: i64 count, count i64 ids
 *   4 reset         (empty)
 *   5 set_param     f64 value, u32 name length, name bytes (no NUL)
 *
 * A tagged record's payload starts with the request that made it: u64
 * client id, u64 request id (16 bytes), then the payload above. The store
 * rebuilds from them its memory of applied requests, so that a client
 * retrying a mutation after a crash and restart gets the original answer
 * instead of a second application (store.cpp, "EXACTLY ONCE").
 *
 * Training is not logged: after a train the store writes a snapshot.
 *
 * RECOVERY
 *
 * Replay reads records in order and stops at the first bad one: short
 * header, length past the end of file, checksum mismatch, unexpected
 * sequence number, unknown type or a payload that does not decode. It then
 * looks for any valid record after that point (every 8-byte aligned offset
 * whose record checks out with a later sequence number). None: the bad
 * bytes are a torn tail -- a write cut short by a crash, never
 * acknowledged -- and are truncated and reported. Some: the log is damaged
 * in the middle and the index refuses to open unless repair is asked for,
 * which truncates at the bad record and reports how many records were
 * dropped.
 *
 * SYNC
 *
 * Appends are serialized by the store (one writer at a time holds the
 * index's write lock while it appends and applies). Durability is waited
 * for after that lock is released, so writers overlap their waits: under
 * `always` the first waiter becomes the leader and fdatasyncs everything
 * written so far; the others wait on a condition variable and return when
 * the leader's sync covers their record (group commit). `interval` leaves
 * syncing to a background thread every N ms; `none` to the kernel. A failed
 * fsync poisons the log (after one, Linux may have dropped the dirty pages
 * and reports success next time), and the store recovers by writing a
 * snapshot from memory into a fresh segment. */
#include "persist/wal.h"

#include "core/bridge.h"
#include "persist/bytes.h"
#include "persist/crc32c.h"
#include "persist/fileio.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <vector>

namespace fx {
namespace wal {

namespace {

uint64_t pad8(uint64_t n) { return (n + 7) & ~uint64_t(7); }

[[noreturn]] void io_error(const std::string& what, const std::string& path,
                           int err) {
    throw Error(FAISSX_E_IO,
                what + " '" + path + "': " + std::strerror(err));
}

/* Checks the record at `off` and returns its total (padded) size, or 0
 * with *why set. Does not look at the sequence number. */
uint64_t check_record(const uint8_t* data, size_t n, uint64_t off,
                      std::string* why) {
    if (n - off < REC_HEADER) {
        *why = "incomplete record header (" + std::to_string(n - off) +
               " bytes)";
        return 0;
    }
    const uint8_t* h = data + off;
    uint32_t len = fx_get_u32(h);
    if (len > MAX_PAYLOAD) {
        *why = "record length " + std::to_string(len) + " is too large";
        return 0;
    }
    if (n - off - REC_HEADER < len) {
        *why = "record of " + std::to_string(len) +
               " payload bytes runs past the end of the file";
        return 0;
    }
    uint32_t crc = fx_crc32c(fx_crc32c(0, h, 16), h + REC_HEADER, len);
    if (crc != fx_get_u32(h + 16)) {
        *why = "record checksum mismatch";
        return 0;
    }
    uint64_t total = REC_HEADER + pad8(len);
    if (total > n - off) total = n - off; // padding of the final record may be cut
    return total;
}

} // namespace

void encode_segment_header(uint64_t base_seq, uint8_t* p) {
    std::memset(p, 0, SEG_HEADER);
    std::memcpy(p, MAGIC, 8);
    fx_put_u32(p + 8, VERSION);
    fx_put_u32(p + 12, SEG_HEADER);
    fx_put_u64(p + 16, base_seq);
    fx_put_u32(p + 28, fx_crc32c(0, p, 28));
}

void scan(const uint8_t* data, size_t n, Scan* s, const RecordFn& fn) {
    *s = Scan();
    s->file_size = n;
    if (n < SEG_HEADER || std::memcmp(data, MAGIC, 8) != 0 ||
        fx_get_u32(data + 28) != fx_crc32c(0, data, 28) ||
        fx_get_u32(data + 8) < MIN_VERSION || fx_get_u32(data + 8) > VERSION ||
        fx_get_u32(data + 12) != SEG_HEADER) {
        s->bad = true;
        s->problem = n < SEG_HEADER ? "segment header is truncated"
                                    : "segment header is corrupt";
        return;
    }
    s->header_ok = true;
    s->version = fx_get_u32(data + 8);
    s->base_seq = s->last_seq = fx_get_u64(data + 16);
    uint64_t off = SEG_HEADER;
    while (off < n) {
        std::string why;
        uint64_t total = check_record(data, n, off, &why);
        const uint8_t* h = data + off;
        if (total && fx_get_u64(h + 8) != s->last_seq + 1) {
            why = "record sequence " + std::to_string(fx_get_u64(h + 8)) +
                  " where " + std::to_string(s->last_seq + 1) +
                  " was expected";
            total = 0;
        }
        uint16_t flags = total ? (uint16_t)(fx_get_u32(h + 4) >> 16) : 0;
        if (total && (flags & ~REC_FLAG_TAGGED)) {
            why = "unknown record flags " + std::to_string(flags);
            total = 0;
        } else if (total && flags && s->version < 2) {
            why = "record flags in a version-1 segment";
            total = 0;
        } else if (total && (flags & REC_FLAG_TAGGED) &&
                   fx_get_u32(h) < TAG_SIZE) {
            why = "tagged record shorter than its tag";
            total = 0;
        }
        if (total && fn &&
            !fn(fx_get_u32(h + 4) & 0xFFFF, flags, fx_get_u64(h + 8),
                h + REC_HEADER, fx_get_u32(h), &why))
            total = 0;
        if (!total) {
            s->bad = true;
            s->problem = why;
            break;
        }
        s->last_seq++;
        s->nrecords++;
        off += total;
    }
    s->good_end = s->bad ? off : n;
    if (!s->bad) return;
    /* Anything valid later? Then this is not a torn tail. */
    for (uint64_t o = pad8(off + 1); o + REC_HEADER <= n; o += 8) {
        std::string why;
        uint64_t total = check_record(data, n, o, &why);
        if (total && fx_get_u64(data + o + 8) > s->last_seq) {
            s->valid_after++;
            o += total - 8;
        }
    }
}

/* ---- Wal ---- */

Wal::Wal(const std::string& path, int fd, uint64_t end, uint64_t last_seq,
         Sync sync, int interval_ms)
        : path_(path), fd_(fd), sync_(sync), interval_ms_(interval_ms),
          end_(end), synced_(end), last_seq_(last_seq) {
    if (sync_ == SYNC_INTERVAL) thread_ = std::thread([this] { background(); });
}

std::shared_ptr<Wal> Wal::create(const std::string& path, uint64_t base_seq,
                                 Sync sync, int interval_ms) {
    const fx_fileio* io = fx_io();
    int fd = io->open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0) io_error("cannot create log", path, errno);
    uint8_t hdr[SEG_HEADER];
    encode_segment_header(base_seq, hdr);
    char dir[4200];
    fx_dirname(path.c_str(), dir, sizeof dir);
    if (fx_pwrite_all(fd, hdr, SEG_HEADER, 0) != 0 || io->fsync(fd) != 0 ||
        io->fsync_dir(dir) != 0) {
        int e = errno;
        io->close(fd);
        io->unlink(path.c_str());
        io_error("cannot create log", path, e);
    }
    return std::shared_ptr<Wal>(
            new Wal(path, fd, SEG_HEADER, base_seq, sync, interval_ms));
}

std::shared_ptr<Wal> Wal::open_append(const std::string& path, uint64_t end,
                                      uint64_t last_seq, Sync sync,
                                      int interval_ms) {
    int fd = fx_io()->open(path.c_str(), O_RDWR, 0);
    if (fd < 0) io_error("cannot open log", path, errno);
    return std::shared_ptr<Wal>(
            new Wal(path, fd, end, last_seq, sync, interval_ms));
}

Wal::~Wal() {
    {
        std::lock_guard<std::mutex> g(mu_);
        stop_ = true;
    }
    stop_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    {
        // Best effort: a clean close leaves nothing to the kernel.
        std::unique_lock<std::mutex> l(mu_);
        while (syncing_) cv_.wait(l);
        if (!retired_ && !poisoned_ && synced_ < end_) fx_io()->fdatasync(fd_);
    }
    fx_io()->close(fd_);
}

uint64_t Wal::append(uint16_t type, const void* const* parts,
                     const size_t* sizes, int nparts, uint16_t flags) {
    uint64_t len = 0;
    for (int i = 0; i < nparts; i++) len += sizes[i];
    if (len > MAX_PAYLOAD)
        throw Error(FAISSX_E_LIMIT,
                    "mutation of " + std::to_string(len) +
                            " bytes exceeds the log record limit (2^30 "
                            "bytes): split the batch");
    std::unique_lock<std::mutex> l(mu_);
    if (poisoned_) throw Error(FAISSX_E_IO, poison_);
    uint64_t off = end_, seq = last_seq_ + 1;
    l.unlock();
    const fx_fileio* io = fx_io();
    if (tail_dirty_) {
        // An earlier failed write left bytes past end_: cut them first so
        // a shorter record cannot leave stale bytes behind it.
        if (io->ftruncate(fd_, (off_t)off) != 0)
            io_error("cannot append to log", path_, errno);
        tail_dirty_ = false;
    }
    uint8_t h[REC_HEADER] = {0};
    fx_put_u32(h, (uint32_t)len);
    fx_put_u32(h + 4, (uint32_t)type | (uint32_t)flags << 16);
    fx_put_u64(h + 8, seq);
    uint32_t crc = fx_crc32c(0, h, 16);
    for (int i = 0; i < nparts; i++) crc = fx_crc32c(crc, parts[i], sizes[i]);
    fx_put_u32(h + 16, crc);
    static const uint8_t zeros[8] = {0};
    // One buffer, one write: fewer syscalls for small records, and a
    // record is never interleaved with anything.
    std::vector<uint8_t> buf;
    buf.reserve(REC_HEADER + pad8(len));
    buf.insert(buf.end(), h, h + REC_HEADER);
    for (int i = 0; i < nparts; i++) {
        auto p = static_cast<const uint8_t*>(parts[i]);
        buf.insert(buf.end(), p, p + sizes[i]);
    }
    buf.insert(buf.end(), zeros, zeros + (pad8(len) - len));
    if (fx_pwrite_all(fd_, buf.data(), buf.size(), (off_t)off) != 0) {
        int e = errno;
        if (io->ftruncate(fd_, (off_t)off) != 0) tail_dirty_ = true;
        io_error("cannot append to log", path_, e);
    }
    l.lock();
    prev_end_ = end_;
    prev_seq_ = last_seq_;
    end_ = off + buf.size();
    last_seq_ = seq;
    return end_;
}

void Wal::undo_last() {
    std::unique_lock<std::mutex> l(mu_);
    uint64_t to = prev_end_;
    end_ = to;
    last_seq_ = prev_seq_;
    epoch_++; // a sync in flight must not count the new bytes at `to`
    if (synced_ > to) synced_ = to;
    l.unlock();
    if (fx_io()->ftruncate(fd_, (off_t)to) != 0) tail_dirty_ = true;
}

void Wal::sync_until(std::unique_lock<std::mutex>& l, uint64_t target) {
    while (synced_ < target && !retired_) {
        if (poisoned_) throw Error(FAISSX_E_IO, poison_);
        if (syncing_) {
            cv_.wait(l);
            continue;
        }
        syncing_ = true;
        uint64_t upto = end_, epoch = epoch_;
        l.unlock();
        int rc = fx_io()->fdatasync(fd_);
        int e = errno;
        l.lock();
        syncing_ = false;
        if (rc == 0) {
            if (epoch == epoch_ && upto > synced_) synced_ = upto;
        } else if (!retired_) {
            poisoned_ = true;
            poison_ = "cannot sync log '" + path_ + "': " + std::strerror(e);
        }
        cv_.notify_all();
    }
}

void Wal::commit(uint64_t ticket) {
    if (sync_ != SYNC_ALWAYS) return;
    std::unique_lock<std::mutex> l(mu_);
    sync_until(l, ticket);
}

void Wal::sync_all() {
    std::unique_lock<std::mutex> l(mu_);
    sync_until(l, end_);
}

void Wal::sync_recovered() {
    std::unique_lock<std::mutex> l(mu_);
    if (retired_ || poisoned_) return;
    while (syncing_) cv_.wait(l);
    l.unlock();
    int rc = fx_io()->fdatasync(fd_);
    int e = errno;
    l.lock();
    if (rc != 0 && !retired_) {
        poisoned_ = true;
        poison_ = "cannot sync log '" + path_ + "': " + std::strerror(e);
        throw Error(FAISSX_E_IO, poison_);
    }
}

void Wal::retire() {
    std::lock_guard<std::mutex> g(mu_);
    retired_ = true;
    cv_.notify_all();
}

bool Wal::poisoned() const {
    std::lock_guard<std::mutex> g(mu_);
    return poisoned_;
}

std::string Wal::poison_reason() const {
    std::lock_guard<std::mutex> g(mu_);
    return poison_;
}

uint64_t Wal::last_seq() const {
    std::lock_guard<std::mutex> g(mu_);
    return last_seq_;
}

uint64_t Wal::size() const {
    std::lock_guard<std::mutex> g(mu_);
    return end_;
}

void Wal::background() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
        stop_cv_.wait_for(l, std::chrono::milliseconds(interval_ms_));
        if (stop_ || retired_ || poisoned_) continue;
        if (synced_ < end_) {
            try {
                sync_until(l, end_);
            } catch (...) {
                // poisoned: the next append reports it
            }
        }
    }
}

} // namespace wal
} // namespace fx
