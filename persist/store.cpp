/* store.cpp -- the durable store of named indexes: layout, manifests,
 * recovery, checkpoints, the StoredIndex proxy, and faissx_store_* (C API).
 *
 * ORDER OF A MUTATION (why "append, apply, then wait for durability").
 * A faiss index cannot undo an add in general (a flat index has no
 * remove-by-position that restores ids, an IVF list order changes), so the
 * proxy never applies a mutation it might have to take back, and never
 * acknowledges one that is not durable:
 *   1. under the index's write lock: validate what faiss would refuse
 *      (trained, dimension), append the record to the log (written, not yet
 *      synced), apply it to the in-memory index. If faiss throws anyway,
 *      the record is cut from the log again (undo_last) -- no later record
 *      exists, the lock is held -- and the call fails;
 *   2. release the lock, then wait until the record is durable under the
 *      policy (always: fsync, shared by every writer waiting at that moment
 *      -- group commit). Only then does the call return 0.
 * Readers may see a mutation before it is durable (as in Redis); a caller
 * never hears "done" before it is. If the fsync fails the call fails, but
 * its effect stays in memory: the log is poisoned, and before any further
 * mutation the store writes a snapshot from memory into a new segment, so
 * disk and memory agree again (a failed call may thus still take effect,
 * like a COMMIT whose outcome is unknown; an acknowledged one is never
 * lost). Replay applies records in sequence; one that faiss refuses at
 * replay was refused at run time too (step 1 cut it, unless a crash came
 * first) and is skipped with a note.
 *
 * CHECKPOINT: snapshot (temp, fsync, rename, dir fsync) of the in-memory
 * index covering the log's last sequence, a new empty segment, then the
 * manifest (same durable replace) naming both -- the commit point. The
 * previous generation is kept for repair; the one before it is deleted.
 * Training is not logged: train() checkpoints (and remembers its request
 * in the snapshot's table of applied requests, train_entry).
 *
 * BINARY INDEXES. An entry holds a faiss::Index or a faiss::IndexBinary
 * (Entry::inner / Entry::binner, exactly one set), the manifest says which
 * ("kind binary", manifest version 2), snapshots carry kind 2
 * (write_index_binary bytes) and the log uses REC_BIN_ADD(_WITH_IDS) for
 * adds; everything else -- ordering, group commit, checkpoints, recovery,
 * the memory of applied requests -- is shared. */
#include "persist/store.h"

#include "core/bridge.h"
#include "core/core.h"
#include "persist/bytes.h"
#include "persist/crc32c.h"
#include "persist/fileio.h"
#include "persist/snapshot.h"

#include <faiss/AutoTune.h>
#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/index_factory.h>
#include <faiss/impl/IDSelector.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <sys/file.h>
#include <sys/stat.h>
#include <tuple>
#include <unistd.h>

namespace fx {
namespace store {

namespace {

[[noreturn]] void io_fail(const std::string& msg) {
    throw Error(FAISSX_E_IO, msg);
}

std::string errstr() { return std::strerror(errno); }

/* ---- manifest ---- */

struct Manifest {
    uint64_t gen = 0;   /* current snapshot/log generation */
    uint64_t prev = 0;  /* previous generation kept for repair (0: none) */
    int d = 0;
    int metric = 0;
    bool binary = false; /* a faiss::IndexBinary (manifest version 2) */
    std::string description;
};

std::string snap_name(uint64_t g) {
    char b[64];
    snprintf(b, sizeof b, "snap-%012llu.fxs", (unsigned long long)g);
    return b;
}
std::string wal_name(uint64_t g) {
    char b[64];
    snprintf(b, sizeof b, "wal-%012llu.fxl", (unsigned long long)g);
    return b;
}

std::string manifest_text(const Manifest& m) {
    // Float indexes keep version 1 (readable by every faissx); a binary
    // index needs version 2, which an older faissx refuses as malformed
    // rather than misreading.
    char b[512];
    snprintf(b, sizeof b,
             "faissx-manifest %d\ngeneration %llu\nsnapshot %s\nlog %s\n"
             "previous %llu\nd %d\nmetric %d\n%s",
             m.binary ? 2 : 1, (unsigned long long)m.gen,
             snap_name(m.gen).c_str(), wal_name(m.gen).c_str(),
             (unsigned long long)m.prev, m.d, m.metric,
             m.binary ? "kind binary\n" : "");
    std::string s = b;
    s += "description " + m.description + "\n";
    char c[32];
    snprintf(c, sizeof c, "crc32c %08x\n", fx_crc32c(0, s.data(), s.size()));
    return s + c;
}

void write_manifest(const std::string& idir, const Manifest& m) {
    std::string t = manifest_text(m);
    const void* parts[1] = {t.data()};
    size_t sizes[1] = {t.size()};
    std::string path = idir + "/MANIFEST";
    if (fx_write_file_durable(path.c_str(), parts, sizes, 1) != 0)
        io_fail("cannot write manifest '" + path + "': " + errstr());
}

/* Parses a manifest; false with *why. */
bool parse_manifest(const std::string& text, Manifest* m, std::string* why) {
    size_t crc_at = text.rfind("crc32c ");
    if (crc_at == std::string::npos || (crc_at > 0 && text[crc_at - 1] != '\n')) {
        *why = "no checksum line";
        return false;
    }
    unsigned crc = 0;
    if (sscanf(text.c_str() + crc_at, "crc32c %8x", &crc) != 1 ||
        crc != fx_crc32c(0, text.data(), crc_at)) {
        *why = "checksum mismatch";
        return false;
    }
    std::string body = text.substr(0, crc_at);
    unsigned long long gen, prev;
    char sn[64], wn[64], kind[16] = "";
    int n = 0;
    if (body.compare(0, 18, "faissx-manifest 1\n") == 0) {
        if (sscanf(body.c_str(),
                   "faissx-manifest 1\ngeneration %llu\nsnapshot %63s\nlog "
                   "%63s\nprevious %llu\nd %d\nmetric %d\ndescription %n",
                   &gen, sn, wn, &prev, &m->d, &m->metric, &n) != 6 ||
            n == 0) {
            *why = "malformed";
            return false;
        }
        m->binary = false;
    } else if (body.compare(0, 18, "faissx-manifest 2\n") == 0) {
        if (sscanf(body.c_str(),
                   "faissx-manifest 2\ngeneration %llu\nsnapshot %63s\nlog "
                   "%63s\nprevious %llu\nd %d\nmetric %d\nkind %15s\n"
                   "description %n",
                   &gen, sn, wn, &prev, &m->d, &m->metric, kind, &n) != 7 ||
            n == 0) {
            *why = "malformed";
            return false;
        }
        if (!std::strcmp(kind, "binary")) {
            m->binary = true;
        } else if (!std::strcmp(kind, "float")) {
            m->binary = false;
        } else {
            *why = "unknown index kind '" + std::string(kind) + "'";
            return false;
        }
    } else {
        *why = "malformed (not a version 1 or 2 manifest)";
        return false;
    }
    m->gen = gen;
    m->prev = prev;
    m->description = body.substr(n);
    if (!m->description.empty() && m->description.back() == '\n')
        m->description.pop_back();
    if (snap_name(gen) != sn || wal_name(gen) != wn || gen == 0 ||
        prev >= gen || m->d <= 0 || (m->binary && m->d % 8 != 0)) {
        *why = "inconsistent fields";
        return false;
    }
    return true;
}

Manifest read_manifest(const std::string& idir, const std::string& name) {
    std::string path = idir + "/MANIFEST";
    uint8_t* data = nullptr;
    size_t n = 0;
    if (fx_read_file(path.c_str(), &data, &n) != 0) {
        if (errno == ENOENT)
            throw Error(FAISSX_E_NOT_FOUND, "no index named '" + name + "'");
        io_fail("cannot read manifest '" + path + "': " + errstr());
    }
    std::string text(reinterpret_cast<char*>(data), n);
    free(data);
    Manifest m;
    std::string why;
    if (!parse_manifest(text, &m, &why))
        io_fail("corrupt manifest '" + path + "': " + why);
    return m;
}

/* Removes a directory of plain files (index directories have no
 * subdirectories). Best effort. */
void remove_tree(const std::string& path) {
    if (DIR* d = opendir(path.c_str())) {
        while (struct dirent* e = readdir(d)) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            fx_io()->unlink((path + "/" + e->d_name).c_str());
        }
        closedir(d);
    }
    rmdir(path.c_str());
}

struct Reporter {
    std::mutex mu;
    std::string text;
    void note(const std::string& line) {
        std::lock_guard<std::mutex> g(mu);
        text += line + "\n";
    }
};

} // namespace

/* ---- record payloads ---- */

namespace {

struct Buf {
    std::vector<uint8_t> b;
    void u32(uint32_t v) {
        size_t o = b.size();
        b.resize(o + 4);
        fx_put_u32(&b[o], v);
    }
    void u64(uint64_t v) {
        size_t o = b.size();
        b.resize(o + 8);
        fx_put_u64(&b[o], v);
    }
};

struct Rd {
    const uint8_t* p;
    size_t n;
    bool take(size_t k, const uint8_t** out) {
        if (n < k) return false;
        *out = p;
        p += k;
        n -= k;
        return true;
    }
    bool u32(uint32_t* v) {
        const uint8_t* q;
        if (!take(4, &q)) return false;
        *v = fx_get_u32(q);
        return true;
    }
    bool u64(uint64_t* v) {
        const uint8_t* q;
        if (!take(8, &q)) return false;
        *v = fx_get_u64(q);
        return true;
    }
};

constexpr uint32_t SEL_RANGE = 1, SEL_LIST = 2;

/* The selector as a log payload; throws for kinds that cannot be logged. */
std::vector<uint8_t> encode_selector(const faiss::IDSelector& s) {
    Buf b;
    if (auto r = dynamic_cast<const faiss::IDSelectorRange*>(&s)) {
        b.u32(SEL_RANGE);
        b.u32(r->assume_sorted ? 1 : 0);
        b.u64((uint64_t)r->imin);
        b.u64((uint64_t)r->imax);
        return b.b;
    }
    std::vector<idx> ids;
    if (auto a = dynamic_cast<const faiss::IDSelectorArray*>(&s)) {
        ids.assign(a->ids, a->ids + a->n);
    } else if (auto t = dynamic_cast<const faiss::IDSelectorBatch*>(&s)) {
        ids.assign(t->set.begin(), t->set.end());
        std::sort(ids.begin(), ids.end());
    } else if (auto m = dynamic_cast<const faiss::IDSelectorBitmap*>(&s)) {
        for (size_t i = 0; i < m->n * 8; i++)
            if (m->bitmap[i / 8] & (1u << (i % 8))) ids.push_back((idx)i);
    } else {
        throw Error(FAISSX_E_UNSUPPORTED,
                    "remove_ids on a stored index takes a range, batch, "
                    "array or bitmap selector (this kind cannot be logged)");
    }
    b.u32(SEL_LIST);
    b.u32(0);
    b.u64(ids.size());
    size_t o = b.b.size();
    b.b.resize(o + ids.size() * 8);
    for (size_t i = 0; i < ids.size(); i++) fx_put_u64(&b.b[o + 8 * i], (uint64_t)ids[i]);
    return b.b;
}

bool valid_param_value(double v) {
    return std::isfinite(v) && v >= 0 && v < 2147483648.0;
}

/* A REC_REMOVE_IDS payload as a selector; false with *why if malformed. */
bool decode_selector(const uint8_t* payload, size_t len,
                     std::unique_ptr<faiss::IDSelector>* out,
                     std::string* why) {
    Rd r{payload, len};
    uint32_t kind, flags;
    if (!r.u32(&kind) || !r.u32(&flags)) {
        *why = "remove_ids record: truncated";
        return false;
    }
    if (kind == SEL_RANGE) {
        uint64_t lo, hi;
        if (!r.u64(&lo) || !r.u64(&hi) || r.n != 0) {
            *why = "remove_ids record: bad range";
            return false;
        }
        out->reset(new faiss::IDSelectorRange((idx)lo, (idx)hi, flags & 1));
        return true;
    }
    uint64_t cnt;
    if (kind != SEL_LIST || !r.u64(&cnt) || cnt > r.n / 8 || cnt * 8 != r.n) {
        *why = "remove_ids record: bad selector";
        return false;
    }
    std::vector<idx> ids(cnt);
    for (size_t i = 0; i < cnt; i++) ids[i] = (idx)fx_get_u64(r.p + 8 * i);
    out->reset(new faiss::IDSelectorBatch(ids.size(), ids.data()));
    return true;
}

/* A REC_SET_PARAM payload; false with *why if malformed. */
bool decode_param(const uint8_t* payload, size_t len, std::string* pname,
                  double* v, std::string* why) {
    Rd r{payload, len};
    uint64_t bits;
    uint32_t nl;
    const uint8_t* name;
    if (!r.u64(&bits) || !r.u32(&nl) || nl == 0 || nl > 64 ||
        !r.take(nl, &name) || r.n != 0) {
        *why = "set_param record: malformed";
        return false;
    }
    std::memcpy(v, &bits, 8);
    pname->assign(reinterpret_cast<const char*>(name), nl);
    if (!valid_param_value(*v) || pname->find('\0') != std::string::npos) {
        *why = "set_param record: bad name or value";
        return false;
    }
    return true;
}

/* The search-time parameters a stored binary index can log (faiss's
 * ParameterSpace handles float indexes only). Throws for a name that
 * does not apply to ix. */
void set_binary_param(faiss::IndexBinary* ix, const std::string& name,
                      double v) {
    if (name == "nprobe") {
        if (auto ivf = dynamic_cast<faiss::IndexBinaryIVF*>(ix)) {
            if (v < 1)
                throw Error(FAISSX_E_INVALID, "nprobe must be >= 1");
            ivf->nprobe = (size_t)v;
            return;
        }
    } else if (name == "efSearch") {
        if (auto h = dynamic_cast<faiss::IndexBinaryHNSW*>(ix)) {
            if (v < 1)
                throw Error(FAISSX_E_INVALID, "efSearch must be >= 1");
            h->hnsw.efSearch = (int)v;
            return;
        }
    } else if (name == "verbose") {
        ix->verbose = v != 0;
        return;
    }
    throw Error(FAISSX_E_UNSUPPORTED,
                "cannot set parameter '" + name +
                        "' on this binary index (a stored binary index "
                        "takes nprobe (IVF), efSearch (HNSW), verbose)");
}

} // namespace

bool apply_record(faiss::Index* ix, uint16_t type, const uint8_t* payload,
                  size_t len, std::string* why, uint64_t* removed) {
    Rd r{payload, len};
    if (removed) *removed = 0;
    switch (type) {
    case wal::REC_ADD:
    case wal::REC_ADD_WITH_IDS: {
        uint64_t n;
        uint32_t d, pad;
        if (!r.u64(&n) || !r.u32(&d) || !r.u32(&pad) || (int)d != ix->d ||
            d == 0) {
            *why = "add record: bad header or dimension";
            return false;
        }
        size_t per = (size_t)d * 4 + (type == wal::REC_ADD_WITH_IDS ? 8 : 0);
        if (n > r.n / per || n * per != r.n) {
            *why = "add record: payload size does not match n";
            return false;
        }
        // Records start 8-byte aligned (docs/format.md), so the vectors
        // (payload + 16) are float-aligned and are read in place; a copy
        // only for a buffer that is not.
        std::vector<float> copy;
        const float* x = reinterpret_cast<const float*>(r.p);
        if ((uintptr_t)r.p % alignof(float) != 0) {
            copy.resize(n * d);
            if (n) std::memcpy(copy.data(), r.p, n * d * 4);
            x = copy.data();
        }
        if (type == wal::REC_ADD) {
            ix->add((idx)n, x);
        } else {
            std::vector<idx> ids(n);
            for (size_t i = 0; i < n; i++)
                ids[i] = (idx)fx_get_u64(r.p + n * d * 4 + 8 * i);
            ix->add_with_ids((idx)n, x, ids.data());
        }
        return true;
    }
    case wal::REC_REMOVE_IDS: {
        std::unique_ptr<faiss::IDSelector> sel;
        if (!decode_selector(payload, len, &sel, why)) return false;
        size_t k = ix->remove_ids(*sel);
        if (removed) *removed = k;
        return true;
    }
    case wal::REC_RESET:
        if (len != 0) {
            *why = "reset record: unexpected payload";
            return false;
        }
        ix->reset();
        return true;
    case wal::REC_SET_PARAM: {
        std::string pname;
        double v;
        if (!decode_param(payload, len, &pname, &v, why)) return false;
        faiss::ParameterSpace().set_index_parameter(ix, pname, v);
        return true;
    }
    default:
        *why = "unknown record type " + std::to_string(type);
        return false;
    }
}

bool apply_record_binary(faiss::IndexBinary* ix, uint16_t type,
                         const uint8_t* payload, size_t len, std::string* why,
                         uint64_t* removed) {
    Rd r{payload, len};
    if (removed) *removed = 0;
    switch (type) {
    case wal::REC_BIN_ADD:
    case wal::REC_BIN_ADD_WITH_IDS: {
        uint64_t n;
        uint32_t d, pad;
        if (!r.u64(&n) || !r.u32(&d) || !r.u32(&pad) || (int)d != ix->d ||
            d == 0 || d % 8 != 0) {
            *why = "binary add record: bad header or dimension";
            return false;
        }
        size_t per = (size_t)d / 8 + (type == wal::REC_BIN_ADD_WITH_IDS ? 8 : 0);
        if (n > r.n / per || n * per != r.n) {
            *why = "binary add record: payload size does not match n";
            return false;
        }
        if (type == wal::REC_BIN_ADD) {
            ix->add((idx)n, r.p);
        } else {
            std::vector<idx> ids(n);
            const uint8_t* at = r.p + n * (d / 8);
            for (size_t i = 0; i < n; i++) ids[i] = (idx)fx_get_u64(at + 8 * i);
            ix->add_with_ids((idx)n, r.p, ids.data());
        }
        return true;
    }
    case wal::REC_REMOVE_IDS: {
        std::unique_ptr<faiss::IDSelector> sel;
        if (!decode_selector(payload, len, &sel, why)) return false;
        size_t k = ix->remove_ids(*sel);
        if (removed) *removed = k;
        return true;
    }
    case wal::REC_RESET:
        if (len != 0) {
            *why = "reset record: unexpected payload";
            return false;
        }
        ix->reset();
        return true;
    case wal::REC_SET_PARAM: {
        std::string pname;
        double v;
        if (!decode_param(payload, len, &pname, &v, why)) return false;
        set_binary_param(ix, pname, v);
        return true;
    }
    default:
        *why = "record type " + std::to_string(type) +
               " is not one of a binary index";
        return false;
    }
}

/* ---- the memory of applied requests (EXACTLY ONCE, store.h) ---- */

namespace {

thread_local RequestTag* tl_tag = nullptr;

/* Outcome types that are not log record types (docs/format.md): a train
 * (not logged; remembered in the snapshot it writes) and the creation of
 * the index (remembered in its first snapshot). */
constexpr uint16_t OUT_TRAIN = 0x100;
constexpr uint16_t OUT_CREATE = 0x101;

/* What an index remembers of one applied, tagged mutation. */
struct Outcome {
    uint16_t type = 0;
    bool trained = false;
    int64_t ntotal = 0;
    uint64_t removed = 0;
};

/* The bounded table of (client, request) -> Outcome of one index. Updated
 * in log order, at run time and identically at replay, so recovery
 * rebuilds exactly the table the crashed process had for the records that
 * reached the log. Eviction: a client's oldest entry once it has
 * kAppliedPerClient, the oldest of all once there are kAppliedMax. */
class Applied {
public:
    const Outcome* find(uint64_t client, uint64_t request) const {
        auto it = map_.find(Key(client, request));
        return it == map_.end() ? nullptr : &it->second.out;
    }

    void add(uint64_t client, uint64_t request, const Outcome& o) {
        Key k(client, request);
        auto old = map_.find(k);
        if (old != map_.end()) { // ids reused with another type: replace
            per_client_[client].live--;
            map_.erase(old);
        }
        uint64_t serial = ++serial_;
        map_[k] = Slot{o, serial};
        order_.push_back({k, serial});
        auto& pc = per_client_[client];
        pc.q.push_back({request, serial});
        pc.live++;
        while (pc.live > kAppliedPerClient) pop_client_front(client, pc);
        while (map_.size() > kAppliedMax) pop_oldest();
        if (order_.size() > 2 * map_.size() + 64) compact();
    }

    size_t size() const { return map_.size(); }

    /* Oldest first: count, then per entry u64 client, u64 request, u16
     * type, u8 trained, u8 0, u32 0, i64 ntotal, u64 removed. */
    std::vector<uint8_t> encode() const {
        std::vector<uint8_t> b(8 + kEntry * map_.size());
        fx_put_u32(&b[0], (uint32_t)map_.size());
        fx_put_u32(&b[4], 0);
        size_t o = 8;
        for (auto& e : order_) {
            auto it = map_.find(e.first);
            if (it == map_.end() || it->second.serial != e.second) continue;
            const Outcome& v = it->second.out;
            fx_put_u64(&b[o], e.first.first);
            fx_put_u64(&b[o + 8], e.first.second);
            fx_put_u32(&b[o + 16], (uint32_t)v.type | (v.trained ? 1u << 16 : 0));
            fx_put_u32(&b[o + 20], 0);
            fx_put_u64(&b[o + 24], (uint64_t)v.ntotal);
            fx_put_u64(&b[o + 32], v.removed);
            o += kEntry;
        }
        return b;
    }

    /* Rebuilds from encode()'s bytes (empty: an empty table, as in a
     * version-1 snapshot); false if malformed. */
    bool decode(const std::vector<uint8_t>& b) {
        *this = Applied();
        if (b.empty()) return true;
        if (b.size() < 8) return false;
        uint64_t n = fx_get_u32(&b[0]);
        if (fx_get_u32(&b[4]) != 0 || n > kAppliedMax ||
            b.size() != 8 + n * kEntry)
            return false;
        for (size_t i = 0; i < n; i++) {
            const uint8_t* p = &b[8 + i * kEntry];
            uint32_t tw = fx_get_u32(p + 16);
            if ((tw >> 17) != 0 || fx_get_u32(p + 20) != 0) return false;
            Outcome o;
            o.type = (uint16_t)(tw & 0xFFFF);
            o.trained = (tw >> 16) & 1;
            o.ntotal = (int64_t)fx_get_u64(p + 24);
            o.removed = fx_get_u64(p + 32);
            add(fx_get_u64(p), fx_get_u64(p + 8), o);
        }
        return true;
    }

private:
    static constexpr size_t kEntry = 40;
    using Key = std::pair<uint64_t, uint64_t>;
    struct Slot {
        Outcome out;
        uint64_t serial;
    };
    struct Client {
        std::deque<std::pair<uint64_t, uint64_t>> q; // (request, serial)
        size_t live = 0;
    };

    bool is_live(const Key& k, uint64_t serial) const {
        auto it = map_.find(k);
        return it != map_.end() && it->second.serial == serial;
    }
    void pop_client_front(uint64_t client, Client& pc) {
        while (!pc.q.empty()) {
            auto f = pc.q.front();
            pc.q.pop_front();
            Key k(client, f.first);
            if (is_live(k, f.second)) {
                map_.erase(k);
                pc.live--;
                return;
            }
        }
    }
    void pop_oldest() {
        while (!order_.empty()) {
            auto f = order_.front();
            order_.pop_front();
            if (!is_live(f.first, f.second)) continue;
            map_.erase(f.first);
            auto pc = per_client_.find(f.first.first);
            // The oldest entry of all is its client's oldest live one.
            while (!pc->second.q.empty() &&
                   pc->second.q.front().second <= f.second)
                pc->second.q.pop_front();
            if (--pc->second.live == 0) per_client_.erase(pc);
            return;
        }
    }
    void compact() {
        std::deque<std::pair<Key, uint64_t>> keep;
        for (auto& e : order_)
            if (is_live(e.first, e.second)) keep.push_back(e);
        order_.swap(keep);
        for (auto it = per_client_.begin(); it != per_client_.end();) {
            auto& q = it->second.q;
            std::deque<std::pair<uint64_t, uint64_t>> kq;
            for (auto& f : q)
                if (is_live(Key(it->first, f.first), f.second)) kq.push_back(f);
            q.swap(kq);
            if (it->second.live == 0)
                it = per_client_.erase(it);
            else
                ++it;
        }
    }

    std::map<Key, Slot> map_;
    std::deque<std::pair<Key, uint64_t>> order_; // (key, serial), oldest first
    std::map<uint64_t, Client> per_client_;
    uint64_t serial_ = 0;
};

/* Splits a tagged record's payload; false with *why if too short. */
bool untag(uint16_t flags, const uint8_t** p, size_t* len, uint64_t* client,
           uint64_t* request) {
    *client = *request = 0;
    if (!(flags & wal::REC_FLAG_TAGGED)) return true;
    if (*len < wal::TAG_SIZE) return false;
    *client = fx_get_u64(*p);
    *request = fx_get_u64(*p + 8);
    *p += wal::TAG_SIZE;
    *len -= wal::TAG_SIZE;
    return true;
}

} // namespace

void set_request_tag(RequestTag* tag) { tl_tag = tag; }
RequestTag* request_tag() { return tl_tag; }

/* ---- recovery ---- */

namespace {

/* The index of an entry: a float one or a binary one (exactly one set). */
struct Held {
    std::unique_ptr<faiss::Index> f;
    std::unique_ptr<faiss::IndexBinary> b;
    bool empty() const { return !f && !b; }
    int64_t ntotal() const { return f ? f->ntotal : b->ntotal; }
    bool trained() const { return f ? f->is_trained : b->is_trained; }
    bool apply(uint16_t type, const uint8_t* p, size_t len, std::string* why,
               uint64_t* removed) {
        return f ? apply_record(f.get(), type, p, len, why, removed)
                 : apply_record_binary(b.get(), type, p, len, why, removed);
    }
    /* Loads a snapshot of the manifest's kind. */
    void load(const std::string& path, bool binary, snap::Header* h,
              std::vector<uint8_t>* meta) {
        f.reset();
        b.reset();
        if (binary)
            b.reset(snap::load_binary(path, h, meta));
        else
            f.reset(snap::load(path, h, meta));
    }
    void write(const std::string& path, uint64_t seq,
               const std::vector<uint8_t>& meta) const {
        if (f)
            snap::write(path, f.get(), seq, meta);
        else
            snap::write_binary(path, b.get(), seq, meta);
    }
};

struct Recovered {
    Held ix;
    uint64_t last_seq = 0;
    uint64_t wal_end = 0;        /* where appending resumes in the current log */
    bool rewrite = false;        /* recovered from damage: checkpoint at once */
    uint32_t wal_version = 0;    /* of the current log segment */
    Applied applied;             /* the memory of applied requests */
};

/* Replays a segment file into ix (records after `from_seq`). Cuts a torn
 * tail (or, with repair, mid-log damage) when `fix`; otherwise leaves the
 * file alone. Returns the scan. Throws on refusal. */
wal::Scan replay_segment(const std::string& path, Held* ix,
                         uint64_t from_seq, bool repair, bool fix,
                         Reporter* rep, const std::string& name,
                         Applied* applied) {
    uint8_t* data = nullptr;
    size_t n = 0;
    if (fx_read_file(path.c_str(), &data, &n) != 0)
        io_fail("cannot read log '" + path + "': " + errstr());
    std::unique_ptr<uint8_t, decltype(&std::free)> own(data, &std::free);
    wal::Scan s;
    uint64_t skipped = 0;
    wal::scan(data, n, &s,
              [&](uint16_t type, uint16_t flags, uint64_t seq,
                  const uint8_t* p, size_t len, std::string* why) {
                  uint64_t client, request;
                  if (!untag(flags, &p, &len, &client, &request)) {
                      *why = "tagged record shorter than its tag";
                      return false;
                  }
                  if (seq <= from_seq) return true; // inside the snapshot
                  try {
                      uint64_t removed = 0;
                      if (!ix->apply(type, p, len, why, &removed))
                          return false;
                      if (applied && (flags & wal::REC_FLAG_TAGGED)) {
                          Outcome o;
                          o.type = type;
                          o.trained = ix->trained();
                          o.ntotal = ix->ntotal();
                          o.removed = removed;
                          applied->add(client, request, o);
                      }
                      return true;
                  } catch (const Error& e) {
                      // refused at run time too (see the top of this file)
                      (void)e;
                  } catch (const faiss::FaissException&) {
                  }
                  skipped++;
                  return true;
              });
    if (skipped)
        rep->note("index '" + name + "': log " + path + ": " +
                  std::to_string(skipped) +
                  " record(s) that faiss refuses were skipped");
    if (!s.header_ok) {
        if (!repair)
            io_fail("corrupt log '" + path + "': " + s.problem +
                    " (open with repair to recreate it empty)");
        return s;
    }
    if (!s.bad) return s;
    std::string where = "offset " + std::to_string(s.good_end) + " (" +
                        s.problem + ")";
    if (s.valid_after > 0 && !repair)
        io_fail("corrupt log '" + path + "': bad record at " + where +
                " followed by " + std::to_string(s.valid_after) +
                " valid record(s); open with repair to truncate there "
                "(losing them)");
    uint64_t cut = s.file_size - s.good_end;
    if (fix) {
        int fd = fx_io()->open(path.c_str(), O_RDWR, 0);
        if (fd < 0 || fx_io()->ftruncate(fd, (off_t)s.good_end) != 0 ||
            fx_io()->fsync(fd) != 0) {
            int e = errno;
            if (fd >= 0) fx_io()->close(fd);
            errno = e;
            io_fail("cannot truncate log '" + path + "': " + errstr());
        }
        fx_io()->close(fd);
    }
    if (s.valid_after > 0)
        rep->note("index '" + name + "': repair: log " + path +
                  " truncated at " + where + ", dropping " +
                  std::to_string(cut) + " bytes with " +
                  std::to_string(s.valid_after) + " valid record(s)");
    else
        rep->note("index '" + name + "': log " + path + ": torn tail of " +
                  std::to_string(cut) + " bytes " + (fix ? "cut" : "found") +
                  " at " + where);
    return s;
}

Recovered recover(const std::string& idir, const std::string& name,
                  const Manifest& m, bool repair, bool fix, Reporter* rep) {
    Recovered out;
    std::string cur_snap = idir + "/" + snap_name(m.gen);
    std::string cur_wal = idir + "/" + wal_name(m.gen);
    snap::Header h;
    uint64_t base = 0;
    std::vector<uint8_t> meta;
    try {
        out.ix.load(cur_snap, m.binary, &h, &meta);
        base = h.seq;
        if (!out.applied.decode(meta))
            io_fail("corrupt snapshot '" + cur_snap +
                    "': malformed table of applied requests");
    } catch (const Error& e) {
        if (!repair)
            throw Error(e.code, std::string(e.what()) +
                                        " (open with repair to rebuild from "
                                        "the previous generation)");
        // Repair: the previous snapshot plus both logs, or for the first
        // generation an empty index from the description plus the log.
        if (m.prev) {
            std::string ps = idir + "/" + snap_name(m.prev);
            out.ix.load(ps, m.binary, &h, &meta);
            if (!out.applied.decode(meta))
                io_fail("corrupt snapshot '" + ps +
                        "': malformed table of applied requests");
            wal::Scan s = replay_segment(idir + "/" + wal_name(m.prev),
                                         &out.ix, h.seq, true, false,
                                         rep, name, &out.applied);
            base = s.last_seq;
        } else if (m.gen == 1 && !m.description.empty()) {
            out.ix.f.reset();
            out.ix.b.reset();
            if (m.binary)
                out.ix.b.reset(faiss::index_binary_factory(
                        m.d, m.description.c_str()));
            else
                out.ix.f.reset(faiss::index_factory(
                        m.d, m.description.c_str(),
                        (faiss::MetricType)m.metric));
            out.applied = Applied();
            base = 0;
        } else {
            throw Error(e.code, std::string(e.what()) +
                                        "; no previous generation to "
                                        "repair from");
        }
        rep->note("index '" + name + "': repair: snapshot " + cur_snap +
                  " is damaged (" + e.what() + "); rebuilt from the " +
                  (m.prev ? "previous generation" : "index description"));
        out.rewrite = true;
    }
    wal::Scan s = replay_segment(cur_wal, &out.ix, base, repair, fix,
                                 rep, name, &out.applied);
    out.wal_version = s.version;
    if (!s.header_ok) {
        out.rewrite = true;
        out.last_seq = base;
        rep->note("index '" + name + "': repair: log " + cur_wal +
                  " header is damaged; its records are lost");
        return out;
    }
    if (s.base_seq > base) {
        std::string msg = "log '" + cur_wal + "' starts after sequence " +
                          std::to_string(s.base_seq) +
                          " but the snapshot ends at " + std::to_string(base);
        if (!repair) io_fail(msg);
        rep->note("index '" + name + "': repair: " + msg);
        out.rewrite = true;
    }
    if (s.valid_after > 0) out.rewrite = true;
    out.last_seq = std::max(s.last_seq, base);
    out.wal_end = s.good_end;
    return out;
}

/* ---- the loaded index and its proxies ---- */

struct StoredIndex;
struct StoredBinaryIndex;

struct Entry {
    std::string name, dir;
    Options opts;
    std::shared_ptr<Reporter> rep;
    std::shared_mutex rw;            /* exclusive: mutations; shared: reads */
    std::unique_ptr<faiss::Index> inner;         /* a float index, or */
    std::unique_ptr<faiss::IndexBinary> binner;  /* a binary one */
    std::shared_ptr<wal::Wal> wal;
    Manifest man;
    uint64_t next_gen = 0;           /* generations already tried */
    bool closed = false, dropped = false;
    bool need_checkpoint = false;    /* memory is ahead of the files */
    std::string need_reason;
    std::mutex pmu;
    std::vector<StoredIndex*> proxies;
    std::vector<StoredBinaryIndex*> bproxies;
    Applied applied;                 /* under rw */

    int64_t ntotal() const { return inner ? inner->ntotal : binner->ntotal; }
    bool trained() const {
        return inner ? inner->is_trained : binner->is_trained;
    }
    void refresh();
    void checkpoint_locked();
    void check_writable();
};

/* The C API checks keys against ntotal only for index types that address
 * vectors by position (fx::positional), which a proxy is not: check them
 * against the index behind it, or faiss reads past its arrays. */
void check_key_of(const faiss::Index* in, faiss::Index::idx_t key) {
    if (positional(in) && (key < 0 || key >= in->ntotal))
        throw Error(FAISSX_E_INVALID,
                    "key " + std::to_string(key) + " out of range [0, " +
                            std::to_string(in->ntotal) + ")");
}

struct StoredIndex : faiss::Index {
    std::shared_ptr<Entry> e;

    explicit StoredIndex(const std::shared_ptr<Entry>& en) : e(en) {
        d = e->inner->d;
        metric_type = e->inner->metric_type;
        metric_arg = e->inner->metric_arg;
        ntotal = e->inner->ntotal;
        is_trained = e->inner->is_trained;
        std::lock_guard<std::mutex> g(e->pmu);
        e->proxies.push_back(this);
    }
    ~StoredIndex() override {
        std::lock_guard<std::mutex> g(e->pmu);
        e->proxies.erase(std::find(e->proxies.begin(), e->proxies.end(), this));
    }

    void train(idx_t n, const float* x) override;
    void add(idx_t n, const float* x) override;
    void add_with_ids(idx_t n, const float* x, const idx_t* xids) override;
    void reset() override;
    size_t remove_ids(const faiss::IDSelector& sel) override;
    void merge_from(faiss::Index&, idx_t) override {
        throw Error(FAISSX_E_UNSUPPORTED,
                    "merge_from is not supported on a stored index");
    }

    void search(idx_t n, const float* x, idx_t k, float* distances,
                idx_t* labels,
                const faiss::SearchParameters* params = nullptr) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        e->inner->search(n, x, k, distances, labels, params);
    }
    void range_search(idx_t n, const float* x, float radius,
                      faiss::RangeSearchResult* result,
                      const faiss::SearchParameters* params = nullptr) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        e->inner->range_search(n, x, radius, result, params);
    }
    void reconstruct(idx_t key, float* recons) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        check_key_of(e->inner.get(), key);
        e->inner->reconstruct(key, recons);
    }
    void reconstruct_n(idx_t i0, idx_t ni, float* recons) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        if (ni > 0) {
            check_key_of(e->inner.get(), i0);
            check_key_of(e->inner.get(), i0 + ni - 1);
        }
        e->inner->reconstruct_n(i0, ni, recons);
    }
    void compute_residual(const float* x, float* residual,
                          idx_t key) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        check_key_of(e->inner.get(), key);
        e->inner->compute_residual(x, residual, key);
    }
    void compute_residual_n(idx_t n, const float* xs, float* residuals,
                            const idx_t* keys) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        for (idx_t i = 0; i < n; i++) check_key_of(e->inner.get(), keys[i]);
        e->inner->compute_residual_n(n, xs, residuals, keys);
    }
    size_t sa_code_size() const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        return e->inner->sa_code_size();
    }
    void sa_encode(idx_t n, const float* x, uint8_t* bytes) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        e->inner->sa_encode(n, x, bytes);
    }
    void sa_decode(idx_t n, const uint8_t* bytes, float* x) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        e->inner->sa_decode(n, bytes, x);
    }
};

/* A binary index behind a store handle: the counterpart of StoredIndex
 * (reads under the read lock, mutations through mutate_entry). */
struct StoredBinaryIndex : faiss::IndexBinary {
    std::shared_ptr<Entry> e;

    explicit StoredBinaryIndex(const std::shared_ptr<Entry>& en) : e(en) {
        d = e->binner->d;
        code_size = e->binner->code_size;
        metric_type = e->binner->metric_type;
        ntotal = e->binner->ntotal;
        is_trained = e->binner->is_trained;
        std::lock_guard<std::mutex> g(e->pmu);
        e->bproxies.push_back(this);
    }
    ~StoredBinaryIndex() override {
        std::lock_guard<std::mutex> g(e->pmu);
        e->bproxies.erase(
                std::find(e->bproxies.begin(), e->bproxies.end(), this));
    }

    void train(idx_t n, const uint8_t* x) override;
    void add(idx_t n, const uint8_t* x) override;
    void add_with_ids(idx_t n, const uint8_t* x, const idx_t* xids) override;
    void reset() override;
    size_t remove_ids(const faiss::IDSelector& sel) override;
    void merge_from(faiss::IndexBinary&, idx_t) override {
        throw Error(FAISSX_E_UNSUPPORTED,
                    "merge_from is not supported on a stored index");
    }

    void search(idx_t n, const uint8_t* x, idx_t k, int32_t* distances,
                idx_t* labels,
                const faiss::SearchParameters* params = nullptr) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        e->binner->search(n, x, k, distances, labels, params);
    }
    void range_search(idx_t n, const uint8_t* x, int radius,
                      faiss::RangeSearchResult* result,
                      const faiss::SearchParameters* params = nullptr) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        e->binner->range_search(n, x, radius, result, params);
    }
    void check_key(idx_t key) const {
        // The C API checks keys only for positional types, which a
        // proxy is not: check against the index behind it.
        const faiss::IndexBinary* in = e->binner.get();
        bool positional = dynamic_cast<const faiss::IndexBinaryFlat*>(in) ||
                          dynamic_cast<const faiss::IndexBinaryHNSW*>(in);
        if (positional && (key < 0 || key >= in->ntotal))
            throw Error(FAISSX_E_INVALID,
                        "key " + std::to_string(key) + " out of range [0, " +
                                std::to_string(in->ntotal) + ")");
    }
    void reconstruct(idx_t key, uint8_t* recons) const override {
        std::shared_lock<std::shared_mutex> l(e->rw);
        check_key(key);
        e->binner->reconstruct(key, recons);
    }
    void reconstruct_n(idx_t i0, idx_t ni, uint8_t* recons) const override {
        // Key by key: faiss 1.7.3's reconstruct_n steps by d, not
        // code_size (see binary/index_binary.cpp).
        std::shared_lock<std::shared_mutex> l(e->rw);
        for (idx_t i = 0; i < ni; i++) {
            check_key(i0 + i);
            e->binner->reconstruct(i0 + i, recons + i * code_size);
        }
    }
};

void Entry::refresh() {
    std::lock_guard<std::mutex> g(pmu);
    for (auto p : proxies) {
        p->ntotal = ntotal();
        p->is_trained = trained();
    }
    for (auto p : bproxies) {
        p->ntotal = ntotal();
        p->is_trained = trained();
    }
}

void Entry::checkpoint_locked() {
    std::shared_ptr<wal::Wal> old = wal;
    uint64_t seq = old->last_seq();
    try {
        old->sync_all(); // keeps the previous generation whole, for repair
    } catch (...) {
        // the new snapshot covers it; the old log only serves repair
    }
    uint64_t g = std::max(man.gen, next_gen) + 1;
    next_gen = g;
    std::string sp = dir + "/" + snap_name(g), wp = dir + "/" + wal_name(g);
    std::shared_ptr<wal::Wal> nw;
    try {
        // The snapshot carries the memory of applied requests: a retry
        // that comes after this checkpoint is still recognised.
        if (inner)
            snap::write(sp, inner.get(), seq, applied.encode());
        else
            snap::write_binary(sp, binner.get(), seq, applied.encode());
        nw = wal::Wal::create(wp, seq, opts.sync, opts.interval_ms);
    } catch (...) {
        fx_io()->unlink(sp.c_str());
        fx_io()->unlink(wp.c_str());
        throw;
    }
    Manifest m2 = man;
    m2.prev = man.gen;
    m2.gen = g;
    try {
        write_manifest(dir, m2);
    } catch (const Error& ex) {
        // The rename may have happened: the files on disk may already name
        // generation g while our log is the old one. Refuse further writes
        // until a checkpoint succeeds (it will use a newer generation).
        need_checkpoint = true;
        need_reason = ex.what();
        throw;
    }
    old->retire();
    wal = nw;
    if (man.prev) {
        fx_io()->unlink((dir + "/" + snap_name(man.prev)).c_str());
        fx_io()->unlink((dir + "/" + wal_name(man.prev)).c_str());
    }
    man = m2;
    need_checkpoint = false;
    need_reason.clear();
}

void Entry::check_writable() {
    if (closed)
        throw Error(FAISSX_E_INVALID,
                    "the store holding index '" + name + "' is closed");
    if (dropped)
        throw Error(FAISSX_E_NOT_FOUND, "index '" + name + "' was dropped");
    if (need_checkpoint || wal->poisoned()) {
        std::string why = need_checkpoint ? need_reason : wal->poison_reason();
        try {
            checkpoint_locked();
        } catch (const Error& ex) {
            throw Error(FAISSX_E_IO, "index '" + name +
                                             "' cannot be written until a "
                                             "checkpoint succeeds (" + why +
                                             "); it failed: " + ex.what());
        }
        rep->note("index '" + name + "': recovered from a write failure (" +
                  why + ") by a checkpoint");
    }
}

/* apply() returns what remove_ids removed (0 for the others); so does
 * mutate_entry(), or on a recognised retry the original's count. */
template <class F>
uint64_t mutate_entry(const std::shared_ptr<Entry>& e, uint16_t type,
                      const void* const* parts, const size_t* sizes,
                      int nparts, F apply) {
    // The thread's request tag, if a server set one and no earlier
    // mutation of this request consumed it.
    RequestTag* tag = tl_tag && !tl_tag->used ? tl_tag : nullptr;
    if (tag) tag->used = true;
    std::shared_ptr<wal::Wal> w;
    uint64_t ticket, result = 0;
    {
        std::unique_lock<std::shared_mutex> l(e->rw);
        e->check_writable();
        w = e->wal;
        if (tag) {
            const Outcome* o = e->applied.find(tag->client, tag->request);
            if (o && o->type == type) {
                // A retry of a mutation this index applied (perhaps before
                // a crash): answer as the original did, apply nothing.
                tag->hit = true;
                tag->ntotal = o->ntotal;
                tag->trained = o->trained;
                tag->removed = o->removed;
                result = o->removed;
                ticket = w->size();
                l.unlock();
                w->commit(ticket); // the original is durable before we say so
                return result;
            }
        }
        uint8_t tagb[wal::TAG_SIZE];
        std::vector<const void*> tparts;
        std::vector<size_t> tsizes;
        uint16_t flags = 0;
        if (tag) {
            fx_put_u64(tagb, tag->client);
            fx_put_u64(tagb + 8, tag->request);
            tparts.push_back(tagb);
            tsizes.push_back(wal::TAG_SIZE);
            for (int i = 0; i < nparts; i++) {
                tparts.push_back(parts[i]);
                tsizes.push_back(sizes[i]);
            }
            parts = tparts.data();
            sizes = tsizes.data();
            nparts++;
            flags = wal::REC_FLAG_TAGGED;
        }
        ticket = w->append(type, parts, sizes, nparts, flags);
        idx before = e->ntotal();
        try {
            result = apply();
        } catch (...) {
            w->undo_last();
            // faiss validates before it modifies; if it changed something
            // anyway, make disk follow memory before the next write.
            if (e->ntotal() != before) {
                e->need_checkpoint = true;
                e->need_reason = "a failed mutation left partial changes";
            }
            e->refresh();
            throw;
        }
        if (tag) {
            Outcome o;
            o.type = type;
            o.trained = e->trained();
            o.ntotal = e->ntotal();
            o.removed = result;
            try {
                e->applied.add(tag->client, tag->request, o);
            } catch (const std::bad_alloc&) {
                // Applied and logged; only a retry of it in this process
                // would not be recognised (replay would remember it).
                e->rep->note("index '" + e->name +
                             "': out of memory remembering a request");
            }
        }
        e->refresh();
    }
    w->commit(ticket); // the acknowledgement waits for durability
    if (e->opts.snapshot_log_bytes && w->size() > e->opts.snapshot_log_bytes) {
        std::unique_lock<std::shared_mutex> l(e->rw);
        if (!e->closed && !e->dropped && e->wal == w) {
            try {
                e->checkpoint_locked();
            } catch (const std::exception& ex) {
                // The mutation is durable; the log just keeps growing.
                e->rep->note("index '" + e->name +
                             "': automatic checkpoint failed: " + ex.what());
            }
        }
    }
    return result;
}

void require_trained(const Entry* e) {
    if (!e->trained())
        throw Error(FAISSX_E_INVALID,
                    "index '" + e->name + "' is not trained: call " +
                            (e->inner ? "faiss_Index_train"
                                      : "faiss_IndexBinary_train") +
                            " first");
}


/* Training: apply, remember the request (if tagged), checkpoint -- the
 * snapshot makes both durable at once. A retry of a train that reached a
 * snapshot (EXACTLY ONCE, store.h) trains nothing and gets the original's
 * state. check_writable() first completes any checkpoint still owed, so a
 * train remembered in memory is durable before a retry hears "done". */
template <class F>
void train_entry(const std::shared_ptr<Entry>& e, F train) {
    RequestTag* tag = tl_tag && !tl_tag->used ? tl_tag : nullptr;
    if (tag) tag->used = true;
    std::unique_lock<std::shared_mutex> l(e->rw);
    e->check_writable();
    if (tag) {
        const Outcome* o = e->applied.find(tag->client, tag->request);
        if (o && o->type == OUT_TRAIN) {
            tag->hit = true;
            tag->ntotal = o->ntotal;
            tag->trained = o->trained;
            tag->removed = 0;
            return;
        }
    }
    train();
    e->need_checkpoint = true;
    e->need_reason = "trained, not yet snapshotted";
    if (tag) {
        Outcome o;
        o.type = OUT_TRAIN;
        o.trained = e->trained();
        o.ntotal = e->ntotal();
        e->applied.add(tag->client, tag->request, o);
    }
    e->refresh();
    e->checkpoint_locked();
}

/* The log records of an add, add_with_ids, reset and remove_ids have one
 * layout for both kinds of index (only the add record types differ), so
 * they are written here once; `apply` changes the index behind `e`. */
template <class F>
void log_add(const std::shared_ptr<Entry>& e, uint16_t type, idx_t n, int d,
             const void* x, size_t xbytes, const idx_t* xids, F apply) {
    require_trained(e.get());
    uint8_t h[16];
    fx_put_u64(h, (uint64_t)n);
    fx_put_u32(h + 8, (uint32_t)d);
    fx_put_u32(h + 12, 0);
    std::vector<uint8_t> ids(xids ? (size_t)n * 8 : 0);
    for (idx_t i = 0; xids && i < n; i++)
        fx_put_u64(&ids[i * 8], (uint64_t)xids[i]);
    const void* parts[3] = {h, x, ids.data()};
    size_t sizes[3] = {16, xbytes, ids.size()};
    mutate_entry(e, type, parts, sizes, xids ? 3 : 2, [&] {
        apply();
        return uint64_t(0);
    });
}

template <class F>
void log_reset(const std::shared_ptr<Entry>& e, F apply) {
    mutate_entry(e, wal::REC_RESET, nullptr, nullptr, 0, [&] {
        apply();
        return uint64_t(0);
    });
}

template <class F>
size_t log_remove_ids(const std::shared_ptr<Entry>& e,
                      const faiss::IDSelector& sel, F apply) {
    std::vector<uint8_t> p = encode_selector(sel);
    const void* parts[1] = {p.data()};
    size_t sizes[1] = {p.size()};
    return (size_t)mutate_entry(e, wal::REC_REMOVE_IDS, parts, sizes, 1,
                                [&] { return (uint64_t)apply(); });
}

void StoredIndex::train(idx_t n, const float* x) {
    train_entry(e, [&] { e->inner->train(n, x); });
}

void StoredIndex::add(idx_t n, const float* x) {
    log_add(e, wal::REC_ADD, n, d, x, (size_t)n * d * sizeof(float), nullptr,
            [&] { e->inner->add(n, x); });
}

void StoredIndex::add_with_ids(idx_t n, const float* x, const idx_t* xids) {
    log_add(e, wal::REC_ADD_WITH_IDS, n, d, x, (size_t)n * d * sizeof(float),
            xids, [&] { e->inner->add_with_ids(n, x, xids); });
}

void StoredIndex::reset() {
    log_reset(e, [&] { e->inner->reset(); });
}

size_t StoredIndex::remove_ids(const faiss::IDSelector& sel) {
    return log_remove_ids(e, sel, [&] { return e->inner->remove_ids(sel); });
}

void StoredBinaryIndex::train(idx_t n, const uint8_t* x) {
    train_entry(e, [&] { e->binner->train(n, x); });
}

void StoredBinaryIndex::add(idx_t n, const uint8_t* x) {
    log_add(e, wal::REC_BIN_ADD, n, d, x, (size_t)n * code_size, nullptr,
            [&] { e->binner->add(n, x); });
}

void StoredBinaryIndex::add_with_ids(idx_t n, const uint8_t* x,
                                     const idx_t* xids) {
    log_add(e, wal::REC_BIN_ADD_WITH_IDS, n, d, x, (size_t)n * code_size, xids,
            [&] { e->binner->add_with_ids(n, x, xids); });
}

void StoredBinaryIndex::reset() {
    log_reset(e, [&] { e->binner->reset(); });
}

size_t StoredBinaryIndex::remove_ids(const faiss::IDSelector& sel) {
    return log_remove_ids(e, sel, [&] { return e->binner->remove_ids(sel); });
}

} // namespace

/* ---- the store ---- */

struct Store {
    std::string dir;
    Options opts;
    int lock_fd = -1;
    std::shared_ptr<Reporter> rep = std::make_shared<Reporter>();
    std::mutex mu;
    std::map<std::string, std::shared_ptr<Entry>> loaded;
    uint64_t drops = 0;
    /* The last kDropsKept tagged drops (client, request, name), oldest
     * first, as in the file DROPS_FILE (EXACTLY ONCE for DROP). */
    std::deque<std::tuple<uint64_t, uint64_t, std::string>> dropped;
};

namespace {

constexpr size_t kDropsKept = 1024;
constexpr const char* DROPS_FILE = ".dropped";
constexpr char DROPS_MAGIC[9] = "FXDROP\r\n";

using Drops = std::deque<std::tuple<uint64_t, uint64_t, std::string>>;

/* DROPS_FILE: magic, u32 count, u32 0, then per drop u64 client, u64
 * request, u32 name length, name bytes; then the CRC-32C of all before. */
std::vector<uint8_t> encode_drops(const Drops& drops) {
    std::vector<uint8_t> b(DROPS_MAGIC, DROPS_MAGIC + 8);
    b.resize(16);
    fx_put_u32(&b[8], (uint32_t)drops.size());
    fx_put_u32(&b[12], 0);
    for (auto& d : drops) {
        size_t o = b.size();
        const std::string& n = std::get<2>(d);
        b.resize(o + 20 + n.size());
        fx_put_u64(&b[o], std::get<0>(d));
        fx_put_u64(&b[o + 8], std::get<1>(d));
        fx_put_u32(&b[o + 16], (uint32_t)n.size());
        std::memcpy(&b[o + 20], n.data(), n.size());
    }
    size_t o = b.size();
    b.resize(o + 4);
    fx_put_u32(&b[o], fx_crc32c(0, b.data(), o));
    return b;
}

/* Parses the bytes of DROPS_FILE into *out (oldest first). False with
 * *why when they are not exactly what encode_drops writes (*out is then
 * empty). Shared by the store and faissx-check. */
bool parse_drops(const uint8_t* data, size_t n, Drops* out, std::string* why) {
    out->clear();
    auto bad = [&](const std::string& w) {
        out->clear();
        *why = w;
        return false;
    };
    if (n < 20) return bad(std::to_string(n) + " bytes, shorter than the "
                           "20 of an empty file");
    if (std::memcmp(data, DROPS_MAGIC, 8) != 0) return bad("bad magic");
    if (fx_get_u32(data + n - 4) != fx_crc32c(0, data, n - 4))
        return bad("checksum mismatch");
    size_t count = fx_get_u32(data + 8), at = 16;
    if (fx_get_u32(data + 12) != 0) return bad("reserved field is not 0");
    if (count > kDropsKept)
        return bad(std::to_string(count) + " drops, more than the " +
                   std::to_string(kDropsKept) + " kept");
    for (size_t i = 0; i < count; i++) {
        std::string entry = "drop " + std::to_string(i + 1) + " of " +
                            std::to_string(count);
        if (n - 4 - at < 20) return bad(entry + " runs past the end");
        uint32_t len = fx_get_u32(data + at + 16);
        if (len > n - 4 - at - 20) return bad(entry + " runs past the end");
        std::string name((const char*)data + at + 20, len), w;
        if (std::strlen(name.c_str()) != len)
            return bad(entry + ": its name holds a NUL byte");
        if (!valid_name(name.c_str(), &w))
            return bad(entry + " names no valid index: " + w);
        out->emplace_back(fx_get_u64(data + at), fx_get_u64(data + at + 8),
                          name);
        at += 20 + len;
    }
    if (at != n - 4)
        return bad(std::to_string(n - 4 - at) +
                   " bytes after the last drop");
    return true;
}

/* Reads DROPS_FILE (missing: nothing remembered; damaged: nothing, with
 * a note -- it only serves retries). */
void load_drops(Store* s, Reporter* rep) {
    std::string path = s->dir + "/" + DROPS_FILE;
    uint8_t* data = nullptr;
    size_t n = 0;
    if (fx_read_file(path.c_str(), &data, &n) != 0) return;
    std::unique_ptr<uint8_t, decltype(&std::free)> own(data, &std::free);
    std::string why;
    if (!parse_drops(data, n, &s->dropped, &why))
        rep->note("store: " + path + " is damaged (" + why + "); retries "
                  "of earlier drops will not be recognised");
}

} // namespace

bool valid_name(const char* name, std::string* why) {
    size_t n = name ? std::strlen(name) : 0;
    if (n == 0 || n > 128) {
        *why = "index names are 1-128 characters";
        return false;
    }
    if (name[0] == '.') {
        *why = "index names cannot start with '.'";
        return false;
    }
    if (!std::strcmp(name, "LOCK")) {
        *why = "'LOCK' is reserved (the store's lock file)";
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            *why = "index names may contain only [A-Za-z0-9._-]";
            return false;
        }
    }
    return true;
}

static void require_name(const char* name) {
    std::string why;
    if (!valid_name(name, &why))
        throw Error(FAISSX_E_INVALID, "invalid index name '" +
                                              std::string(name ? name : "") +
                                              "': " + why);
}

Store* open(const std::string& dir, const Options& opts) {
    if (opts.sync != wal::SYNC_ALWAYS && opts.sync != wal::SYNC_INTERVAL &&
        opts.sync != wal::SYNC_NONE)
        throw Error(FAISSX_E_INVALID, "unknown sync policy");
    if (opts.sync == wal::SYNC_INTERVAL && opts.interval_ms <= 0)
        throw Error(FAISSX_E_INVALID, "interval_ms must be > 0");
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        io_fail("cannot create store directory '" + dir + "': " + errstr());
    std::unique_ptr<Store> s(new Store());
    s->dir = dir;
    s->opts = opts;
    std::string lp = dir + "/LOCK";
    int fd = fx_io()->open(lp.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0) io_fail("cannot open lock file '" + lp + "': " + errstr());
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = {0};
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        fx_io()->close(fd);
        throw Error(FAISSX_E_PERMISSION,
                    "store '" + dir + "' is locked by another process" +
                            (r > 0 ? " (pid " + std::string(pid) + ")" : "") +
                            " or another open in this one");
    }
    char pid[32];
    int pn = snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if (fx_io()->ftruncate(fd, 0) == 0) fx_pwrite_all(fd, pid, (size_t)pn, 0);
    s->lock_fd = fd;
    load_drops(s.get(), s->rep.get());
    // Leftovers of interrupted creates and drops.
    if (DIR* d = opendir(dir.c_str())) {
        while (struct dirent* e = readdir(d))
            if (!strncmp(e->d_name, ".tmp-", 5) || !strncmp(e->d_name, ".drop-", 6))
                remove_tree(dir + "/" + e->d_name);
        closedir(d);
    }
    return s.release();
}

void close(Store* s) {
    if (!s) return;
    for (auto& kv : s->loaded) {
        Entry* e = kv.second.get();
        std::unique_lock<std::shared_mutex> l(e->rw);
        e->closed = true;
        try {
            e->wal->sync_all();
        } catch (...) {
        }
        e->wal.reset();
    }
    s->loaded.clear();
    if (s->lock_fd >= 0) fx_io()->close(s->lock_fd); // releases the flock
    delete s;
}

static std::shared_ptr<Entry> load_locked(Store* s, const std::string& name) {
    auto it = s->loaded.find(name);
    if (it != s->loaded.end()) return it->second;
    std::string idir = s->dir + "/" + name;
    Manifest m = read_manifest(idir, name);
    Recovered r = recover(idir, name, m, s->opts.repair, true, s->rep.get());
    auto e = std::make_shared<Entry>();
    e->name = name;
    e->dir = idir;
    e->opts = s->opts;
    e->rep = s->rep;
    e->man = m;
    e->next_gen = m.gen;
    e->inner = std::move(r.ix.f);
    e->binner = std::move(r.ix.b);
    e->applied = std::move(r.applied);
    // Files no manifest names: leftovers of interrupted checkpoints.
    if (DIR* d = opendir(idir.c_str())) {
        std::vector<std::string> keep = {"MANIFEST", snap_name(m.gen),
                                         wal_name(m.gen)};
        if (m.prev) {
            keep.push_back(snap_name(m.prev));
            keep.push_back(wal_name(m.prev));
        }
        while (struct dirent* de = readdir(d)) {
            std::string f = de->d_name;
            if (f == "." || f == "..") continue;
            if (std::find(keep.begin(), keep.end(), f) == keep.end()) {
                unsigned long long g = 0;
                if (sscanf(f.c_str(), "%*[a-z]-%12llu", &g) == 1 && g > e->next_gen)
                    e->next_gen = g; // never reuse a generation number
                fx_io()->unlink((idir + "/" + f).c_str());
            }
        }
        closedir(d);
    }
    // A version-1 log cannot hold tagged records (an older faissx would
    // misread them): start a generation in the current format at once.
    bool upgrade = r.wal_end && r.wal_version < wal::VERSION;
    if (r.rewrite || !r.wal_end || upgrade) {
        // Damaged files (or an old format): start a clean generation from
        // what was recovered.
        e->wal = wal::Wal::open_append(idir + "/" + wal_name(m.gen),
                                       r.wal_end ? r.wal_end : wal::SEG_HEADER,
                                       r.last_seq, s->opts.sync,
                                       s->opts.interval_ms);
        if (!r.wal_end) e->wal->retire(); // header damaged: never append to it
        std::unique_lock<std::shared_mutex> l(e->rw);
        e->checkpoint_locked();
    } else {
        e->wal = wal::Wal::open_append(idir + "/" + wal_name(m.gen), r.wal_end,
                                       r.last_seq, s->opts.sync,
                                       s->opts.interval_ms);
        // What a crashed process wrote may be only in the page cache; a
        // retry may be acknowledged from it (EXACTLY ONCE): make it durable.
        if (s->opts.sync == wal::SYNC_ALWAYS) e->wal->sync_recovered();
    }
    s->loaded[name] = e;
    return e;
}

/* Builds index directory `name` around `ix` (in .tmp-NAME, renamed into
 * place, store directory fsynced) and loads it. */
static std::shared_ptr<Entry> create_locked(Store* s, const char* name,
                                            Held ix,
                                            const std::string& description) {
    std::string idir = s->dir + "/" + name;
    struct stat st;
    if (stat(idir.c_str(), &st) == 0)
        throw Error(FAISSX_E_EXISTS, "an index named '" + std::string(name) +
                                             "' exists");
    std::string tmp = s->dir + "/.tmp-" + name;
    remove_tree(tmp);
    if (mkdir(tmp.c_str(), 0755) != 0)
        io_fail("cannot create '" + tmp + "': " + errstr());
    Manifest m;
    m.gen = 1;
    m.d = ix.f ? ix.f->d : ix.b->d;
    m.metric = (int)(ix.f ? ix.f->metric_type : ix.b->metric_type);
    m.binary = ix.b != nullptr;
    m.description = description;
    // A server's CREATE/UPLOAD: remembered in the first snapshot, so that
    // its retry after a restart is answered, not refused as "exists".
    Applied applied;
    if (RequestTag* tag = tl_tag && !tl_tag->used ? tl_tag : nullptr) {
        tag->used = true;
        Outcome o;
        o.type = OUT_CREATE;
        o.trained = ix.f ? ix.f->is_trained : ix.b->is_trained;
        o.ntotal = ix.f ? ix.f->ntotal : ix.b->ntotal;
        applied.add(tag->client, tag->request, o);
    }
    try {
        ix.write(tmp + "/" + snap_name(1), 0, applied.encode());
        wal::Wal::create(tmp + "/" + wal_name(1), 0, wal::SYNC_NONE, 0);
        write_manifest(tmp, m);
        if (fx_io()->rename(tmp.c_str(), idir.c_str()) != 0)
            io_fail("cannot rename '" + tmp + "': " + errstr());
    } catch (...) {
        remove_tree(tmp);
        throw;
    }
    if (fx_io()->fsync_dir(s->dir.c_str()) != 0)
        io_fail("cannot sync store directory '" + s->dir + "': " + errstr());
    auto e = std::make_shared<Entry>();
    e->name = name;
    e->dir = idir;
    e->opts = s->opts;
    e->rep = s->rep;
    e->man = m;
    e->next_gen = 1;
    e->inner = std::move(ix.f);
    e->binner = std::move(ix.b);
    e->applied = std::move(applied);
    e->wal = wal::Wal::open_append(idir + "/" + wal_name(1), wal::SEG_HEADER,
                                   0, s->opts.sync, s->opts.interval_ms);
    s->loaded[name] = e;
    return e;
}

/* What creating an index from a description requires (s->mu held for
 * the second). */
static void require_description(const char* description) {
    if (!description || std::strchr(description, '\n'))
        throw Error(FAISSX_E_INVALID, "invalid index description");
}

static void require_absent_locked(Store* s, const char* name) {
    struct stat st;
    if (stat((s->dir + "/" + name).c_str(), &st) == 0)
        throw Error(FAISSX_E_EXISTS, "an index named '" + std::string(name) +
                                             "' exists");
}

faiss::Index* create_index(Store* s, const char* name, int d,
                           const char* description, int metric) {
    require_name(name);
    require_description(description);
    std::lock_guard<std::mutex> g(s->mu);
    require_absent_locked(s, name);
    Held ix;
    ix.f.reset(faiss::index_factory(d, description, (faiss::MetricType)metric));
    return new StoredIndex(create_locked(s, name, std::move(ix), description));
}

/* create_index_from for either kind (ix: exactly one set). */
static std::shared_ptr<Entry> create_from(Store* s, const char* name, Held ix,
                                          const char* description) {
    require_name(name);
    if (ix.empty()) throw Error(FAISSX_E_INVALID, "no index to store");
    std::string desc = description ? description : "";
    if (desc.find('\n') != std::string::npos)
        throw Error(FAISSX_E_INVALID, "invalid index description");
    std::lock_guard<std::mutex> g(s->mu);
    std::shared_ptr<Entry> e = create_locked(s, name, std::move(ix), desc);
    if (desc.empty()) {
        // Generation 2 at once, so that generation 1 (the same data)
        // remains for repair: there is no description to rebuild from.
        std::unique_lock<std::shared_mutex> l(e->rw);
        try {
            e->checkpoint_locked();
        } catch (const std::exception& ex) {
            // The index exists and is whole; only the repair fallback is
            // missing until the next checkpoint.
            e->rep->note("index '" + e->name +
                         "': checkpoint after upload failed: " + ex.what());
        }
    }
    return e;
}

faiss::Index* create_index_from(Store* s, const char* name, faiss::Index* ix,
                                const char* description) {
    Held h;
    h.f.reset(ix);
    return new StoredIndex(create_from(s, name, std::move(h), description));
}

faiss::IndexBinary* create_index_binary_from(Store* s, const char* name,
                                             faiss::IndexBinary* ix,
                                             const char* description) {
    Held h;
    h.b.reset(ix);
    return new StoredBinaryIndex(create_from(s, name, std::move(h), description));
}

faiss::IndexBinary* create_index_binary(Store* s, const char* name, int d,
                                        const char* description) {
    require_name(name);
    require_description(description);
    if (d <= 0 || d % 8 != 0)
        throw Error(FAISSX_E_INVALID,
                    "binary dimension d must be a positive multiple of 8 "
                    "(got " + std::to_string(d) + ")");
    std::lock_guard<std::mutex> g(s->mu);
    require_absent_locked(s, name);
    Held ix;
    ix.b.reset(faiss::index_binary_factory(d, description));
    return new StoredBinaryIndex(
            create_locked(s, name, std::move(ix), description));
}

faiss::Index* open_index(Store* s, const char* name) {
    faiss::Index* f = nullptr;
    faiss::IndexBinary* b = nullptr;
    open_any(s, name, &f, &b);
    if (b) {
        delete b;
        throw Error(FAISSX_E_INVALID,
                    "index '" + std::string(name) +
                            "' is a binary index (open it with "
                            "faissx_store_open_index_binary)");
    }
    return f;
}

faiss::IndexBinary* open_index_binary(Store* s, const char* name) {
    faiss::Index* f = nullptr;
    faiss::IndexBinary* b = nullptr;
    open_any(s, name, &f, &b);
    if (f) {
        delete f;
        throw Error(FAISSX_E_INVALID,
                    "index '" + std::string(name) +
                            "' is not a binary index (open it with "
                            "faissx_store_open_index)");
    }
    return b;
}

void open_any(Store* s, const char* name, faiss::Index** f,
              faiss::IndexBinary** b) {
    require_name(name);
    std::lock_guard<std::mutex> g(s->mu);
    std::shared_ptr<Entry> e = load_locked(s, name);
    *f = nullptr;
    *b = nullptr;
    if (e->inner)
        *f = new StoredIndex(e);
    else
        *b = new StoredBinaryIndex(e);
}

std::vector<std::string> list(Store* s) {
    std::vector<std::string> out;
    DIR* d = opendir(s->dir.c_str());
    if (!d) io_fail("cannot read store directory '" + s->dir + "': " + errstr());
    while (struct dirent* e = readdir(d)) {
        std::string why;
        if (!valid_name(e->d_name, &why)) continue;
        struct stat st;
        if (stat((s->dir + "/" + e->d_name + "/MANIFEST").c_str(), &st) == 0)
            out.push_back(e->d_name);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

void drop(Store* s, const char* name) {
    require_name(name);
    std::lock_guard<std::mutex> g(s->mu);
    std::string idir = s->dir + "/" + name;
    struct stat st;
    if (stat((idir + "/MANIFEST").c_str(), &st) != 0)
        throw Error(FAISSX_E_NOT_FOUND, "no index named '" + std::string(name) + "'");
    // A server's DROP: remembered (durably, before the drop itself) so
    // that its retry after a restart is answered, not refused as unknown.
    if (RequestTag* tag = tl_tag && !tl_tag->used ? tl_tag : nullptr) {
        tag->used = true;
        s->dropped.emplace_back(tag->client, tag->request, name);
        while (s->dropped.size() > kDropsKept) s->dropped.pop_front();
        std::vector<uint8_t> b = encode_drops(s->dropped);
        const void* parts[1] = {b.data()};
        size_t sizes[1] = {b.size()};
        std::string path = s->dir + "/" + DROPS_FILE;
        if (fx_write_file_durable(path.c_str(), parts, sizes, 1) != 0) {
            s->dropped.pop_back();
            io_fail("cannot write '" + path + "': " + errstr());
        }
    }
    auto it = s->loaded.find(name);
    if (it != s->loaded.end()) {
        Entry* e = it->second.get();
        std::unique_lock<std::shared_mutex> l(e->rw);
        e->dropped = true;
        e->wal->retire();
        e->wal.reset();
    }
    std::string gone = s->dir + "/.drop-" + name + "-" + std::to_string(++s->drops);
    if (fx_io()->rename(idir.c_str(), gone.c_str()) != 0)
        io_fail("cannot remove '" + idir + "': " + errstr());
    if (it != s->loaded.end()) s->loaded.erase(it);
    if (fx_io()->fsync_dir(s->dir.c_str()) != 0)
        io_fail("cannot sync store directory '" + s->dir + "': " + errstr());
    remove_tree(gone);
}

bool created_by_request(Store* s, const char* name) {
    RequestTag* tag = tl_tag && !tl_tag->used ? tl_tag : nullptr;
    if (!tag) return false;
    require_name(name);
    std::lock_guard<std::mutex> g(s->mu);
    struct stat st;
    if (stat((s->dir + "/" + name + "/MANIFEST").c_str(), &st) != 0)
        return false;
    std::shared_ptr<Entry> e = load_locked(s, name);
    std::shared_lock<std::shared_mutex> l(e->rw);
    const Outcome* o = e->applied.find(tag->client, tag->request);
    if (!o || o->type != OUT_CREATE) return false;
    tag->used = tag->hit = true;
    tag->ntotal = o->ntotal;
    tag->trained = o->trained;
    return true;
}

bool dropped_by_request(Store* s, const char* name) {
    RequestTag* tag = tl_tag && !tl_tag->used ? tl_tag : nullptr;
    if (!tag) return false;
    std::lock_guard<std::mutex> g(s->mu);
    for (auto& d : s->dropped)
        if (std::get<0>(d) == tag->client && std::get<1>(d) == tag->request &&
            std::get<2>(d) == name) {
            tag->used = tag->hit = true;
            return true;
        }
    return false;
}

void checkpoint(Store* s, const char* name) {
    std::lock_guard<std::mutex> g(s->mu);
    std::vector<std::shared_ptr<Entry>> todo;
    if (name) {
        require_name(name);
        todo.push_back(load_locked(s, name));
    } else {
        for (auto& kv : s->loaded) todo.push_back(kv.second);
    }
    for (auto& e : todo) {
        std::unique_lock<std::shared_mutex> l(e->rw);
        e->checkpoint_locked();
    }
}

std::string report(Store* s) {
    std::lock_guard<std::mutex> g(s->rep->mu);
    return s->rep->text;
}

bool is_stored(const faiss::Index* ix) {
    return dynamic_cast<const StoredIndex*>(ix) != nullptr;
}

bool is_stored(const faiss::IndexBinary* ix) {
    return dynamic_cast<const StoredBinaryIndex*>(ix) != nullptr;
}

/* The stored index behind `ix`, or an error if `ix` is not one. */
template <class Stored, class Ix>
Stored* stored_of(Ix* ix) {
    auto si = dynamic_cast<Stored*>(ix);
    if (!si) throw Error(FAISSX_E_INVALID, "the index is not a stored index");
    return si;
}

/* Checks, logs and applies a search parameter for either kind of index. */
template <class F>
void log_param(const std::shared_ptr<Entry>& e, const char* name,
               double value, F apply) {
    size_t nl = std::strlen(name);
    if (nl == 0 || nl > 64)
        throw Error(FAISSX_E_INVALID, "parameter names are 1-64 characters");
    if (!valid_param_value(value))
        throw Error(FAISSX_E_INVALID, "parameter value must be in [0, 2^31)");
    uint8_t h[12];
    uint64_t bits;
    std::memcpy(&bits, &value, 8);
    fx_put_u64(h, bits);
    fx_put_u32(h + 8, (uint32_t)nl);
    const void* parts[2] = {h, name};
    size_t sizes[2] = {12, nl};
    mutate_entry(e, wal::REC_SET_PARAM, parts, sizes, 2, [&] {
        apply();
        return uint64_t(0);
    });
}

void read_inner(const faiss::IndexBinary* ix,
                const std::function<void(const faiss::IndexBinary*)>& f) {
    auto si = stored_of<const StoredBinaryIndex>(ix);
    std::shared_lock<std::shared_mutex> l(si->e->rw);
    f(si->e->binner.get());
}

void set_param(faiss::IndexBinary* ix, const char* name, double value) {
    auto si = stored_of<StoredBinaryIndex>(ix);
    log_param(si->e, name, value,
              [&] { set_binary_param(si->e->binner.get(), name, value); });
}

void read_inner(const faiss::Index* ix,
                const std::function<void(const faiss::Index*)>& f) {
    auto si = stored_of<const StoredIndex>(ix);
    std::shared_lock<std::shared_mutex> l(si->e->rw);
    f(si->e->inner.get());
}

void set_param(faiss::Index* ix, const char* name, double value) {
    auto si = stored_of<StoredIndex>(ix);
    log_param(si->e, name, value, [&] {
        faiss::ParameterSpace().set_index_parameter(si->e->inner.get(), name,
                                                    value);
    });
}

namespace {

/* faissx-check of DROPS_FILE: absent is fine (no tagged drop yet);
 * damaged is repairable (1): the store ignores it (it only serves retries
 * of drops), and --repair replaces it with an empty one, which is what
 * the store would go on with. */
int check_drops(const std::string& dir, bool repair, FILE* out) {
    std::string path = dir + "/" + DROPS_FILE;
    struct stat st;
    bool regular = false;
    uint8_t* data = nullptr;
    size_t n = 0;
    Drops drops;
    std::string why;
    if (lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return 0;
        why = std::string("cannot stat: ") + std::strerror(errno);
    } else if (!(regular = S_ISREG(st.st_mode)))
        why = "not a regular file";
    else if (fx_read_file(path.c_str(), &data, &n) != 0)
        why = std::string("cannot read: ") + std::strerror(errno);
    else
        parse_drops(data, n, &drops, &why);
    std::free(data);
    if (why.empty()) {
        fprintf(out, "%s: ok, %zu tagged drop(s) remembered\n", DROPS_FILE,
                drops.size());
        return 0;
    }
    fprintf(out, "%s: damaged (%s): retries of earlier drops will not be "
            "recognised (%s)\n", DROPS_FILE, why.c_str(),
            regular ? "repairable" : "remove it");
    if (!regular) return 2; // not ours to replace
    if (!repair) return 1;
    std::vector<uint8_t> b = encode_drops(Drops());
    const void* parts[] = {b.data()};
    size_t sizes[] = {b.size()};
    if (fx_write_file_durable(path.c_str(), parts, sizes, 1) != 0) {
        fprintf(out, "%s: cannot rewrite: %s\n", DROPS_FILE,
                std::strerror(errno));
        return 2;
    }
    fprintf(out, "%s: repaired (rewritten empty)\n", DROPS_FILE);
    return 1;
}

} // namespace

int check(const std::string& dir, bool repair, FILE* out,
          CheckProgress progress, void* user) {
    int worst = 0;
    DIR* d = opendir(dir.c_str());
    if (!d) {
        fprintf(out, "%s: cannot read: %s\n", dir.c_str(), std::strerror(errno));
        return 2;
    }
    std::vector<std::string> names;
    while (struct dirent* e = readdir(d)) {
        std::string why;
        if (valid_name(e->d_name, &why)) names.push_back(e->d_name);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    // Take the store lock: checking a store in use would race its writers.
    std::string lp = dir + "/LOCK";
    int lfd = ::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(out, "%s: store is in use (locked): stop its owner first\n",
                dir.c_str());
        if (lfd >= 0) ::close(lfd);
        return 2;
    }
    for (size_t i = 0; i < names.size(); i++) {
        const std::string& name = names[i];
        std::string idir = dir + "/" + name;
        Reporter rep;
        if (progress) progress(i, names.size(), name.c_str(), user);
        try {
            Manifest m = read_manifest(idir, name);
            Recovered r = recover(idir, name, m, repair, repair, &rep);
            if (progress) progress(i, names.size(), nullptr, user);
            bool dirty = !rep.text.empty();
            if (repair && dirty) {
                // Rewrite as a clean generation, as an open with repair does.
                Store tmp;
                tmp.dir = dir;
                tmp.opts.repair = true;
                tmp.rep = std::make_shared<Reporter>();
                r.ix = Held();
                load_locked(&tmp, name);
                tmp.loaded.clear();
            }
            fprintf(out, "%s: ok, %lld vectors, d=%d, sequence %llu%s\n",
                    name.c_str(),
                    (long long)(r.ix.empty() ? -1 : r.ix.ntotal()), m.d,
                    (unsigned long long)r.last_seq,
                    dirty ? (repair ? " (repaired)" : " (repairable)") : "");
            if (dirty) worst = std::max(worst, 1);
            fputs(rep.text.c_str(), out);
        } catch (const std::exception& ex) {
            if (progress) progress(i, names.size(), nullptr, user);
            fputs(rep.text.c_str(), out);
            fprintf(out, "%s: DAMAGED: %s\n", name.c_str(), ex.what());
            worst = 2;
        }
        fflush(out);
    }
    if (progress) progress(names.size(), names.size(), nullptr, user);
    worst = std::max(worst, check_drops(dir, repair, out));
    ::close(lfd);
    return worst;
}

} // namespace store
} // namespace fx
