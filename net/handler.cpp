/* handler.cpp -- fx_state: keys and tenants, the registry of indexes, and
 * the request handler of faissx-server (see server.h, docs/protocol.md).
 *
 * Every request is decoded with the bounds-checked codec, authenticated,
 * checked against the limits, and executed through faissx's own C API on
 * server-local indexes -- so the server validates exactly like the library
 * (NaN, k, dimensions, ...) and replies with the same messages.
 *
 * Concurrency: the registry has one mutex, held only to look entries up or
 * change the maps. Each entry has a reader/writer lock: searches share it,
 * mutations take it alone. An entry is reference counted (shared_ptr), so a
 * DROP while a search runs frees the index when the search finishes.
 *
 * Durable store (conf.data_dir, docs/operations.md): each tenant has its
 * own store (persist/store.h) in DIR/tenants/TENANT/, and the server's lock
 * is DIR/LOCK. Every named index then lives in its tenant's store: the
 * registry entry holds a store handle (a proxy that logs each mutation and
 * returns once it is durable), so every mutation below that goes through
 * the C API on h(e) is acknowledged only when durable. Operations that
 * would change a stored index behind the log's back (WRAP, MERGE_FROM, the
 * IVF-specific writes) are refused on it; reads the proxy does not forward
 * use the index behind it (target(), btarget() for a binary index). The
 * registry's named entries (float and binary) are
 * exactly the stores' indexes: they are all loaded at start, and named
 * CREATE/UPLOAD/DROP change store and registry together under store_mu.
 * Unnamed indexes stay in memory. */
#include "net/server.h"

#include "core/core.h"
#include "net/alloc_budget.h"
#include "net/dedupe.h"
#include "net/jobs.h"
#include "net/lock_probe.h"
#include "net/shm.h"
#include "persist/store.h"

#include <faiss/AutoTune.h>
#include <faiss/IndexAdditiveQuantizer.h>
#include <faiss/IndexAdditiveQuantizerFastScan.h>
#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFAdditiveQuantizer.h>
#include <faiss/IndexIVFAdditiveQuantizerFastScan.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexLSH.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexReplicas.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/IndexShards.h>
#include <faiss/VectorTransform.h>
#include <faiss/clone_index.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using idx = faiss::Index::idx_t;
using fx::Error;

constexpr size_t kMaxName = 128;
constexpr size_t kMaxNameRead = 1024; // longer: a malformed message
constexpr size_t kMaxDescription = 1024;
constexpr size_t kMaxKey = 256;
constexpr size_t kMaxParamName = 64;
constexpr int64_t kMaxDim = 1 << 20;

uint64_t now_ms() {
    return (uint64_t)std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
}

/* 64 random bits (from the time and pid if /dev/urandom fails: these
 * only keep numbers from one process apart from another's, they guard
 * nothing). */
uint64_t random_u64() {
    uint64_t v = 0;
    int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (::read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
        ::close(fd);
    }
    if (v == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
            ((uint64_t)getpid() << 40) ^ now_ms();
        v *= 0x9E3779B97F4A7C15ULL;
    }
    return v;
}

/* A random start for handle numbers: 43 random bits above 20 bits of
 * room (a million handles before they reach another start). */
uint64_t random_handle_base() {
    return ((random_u64() >> 21) << 20) | 1;
}

struct Key {
    std::string tenant;
    bool read_only = false;
};

struct Entry {
    uint64_t handle = 0;
    std::string tenant;
    std::string name; // empty: anonymous
    uint64_t client_id = 0;
    uint64_t conn_id = 0;
    // Entries whose faiss objects this one's index uses (the quantizer of
    // an IVF built by WRAP, ...). Declared before `index` so the composite
    // is destroyed first.
    std::vector<std::shared_ptr<Entry>> deps;
    std::vector<std::unique_ptr<faiss::VectorTransform>> transforms;
    std::unique_ptr<faiss::Index> index;
    // A binary index (FX_OP_BINARY) instead of `index`, which is then NULL.
    std::unique_ptr<faiss::IndexBinary> bindex;
    // Shared by a composite and its children: they are one data structure.
    std::shared_ptr<std::shared_mutex> mu = std::make_shared<std::shared_mutex>();
    bool orphan = false;
    bool stored = false; // `index` (or `bindex`) is a durable store handle
    // `index` points inside the composite in deps[0] (FX_COMP_INNER): the
    // composite owns it, this entry only names it.
    bool borrowed = false;
    ~Entry() {
        if (borrowed) (void)index.release();
    }
};
using EntryP = std::shared_ptr<Entry>;

/* A chunked upload being staged (docs/protocol.md, "Chunked upload"). Its
 * whole size is reserved against the tenant's limit at BEGIN; chunks fill
 * `bytes` in order; COMMIT parses them. */
struct Upload {
    uint64_t id = 0;
    std::string tenant;
    uint64_t client_id = 0;
    uint64_t conn_id = 0;
    int kind = FX_UPLOAD_INDEX;
    uint64_t total = 0;
    std::unique_ptr<uint8_t[]> bytes;
    std::mutex mu;         // held while a chunk is copied in
    uint64_t received = 0; // bytes [0, received) are in (under mu)
    std::atomic<uint64_t> last_ms{0}; // BEGIN or the latest chunk
    bool orphan = false;   // its client's connection closed (up_mu)
    // A download (DOWNLOAD_BEGIN) instead: the serialized index, whole.
    bool download = false;
    std::vector<uint8_t> out;
    uint64_t begin_rid = 0; // the BEGIN's request id (a retry reuses it)
};

} // namespace

struct fx_state {
    fx_server_conf conf;
    bool auth = false;
    std::unordered_map<std::string, Key> keys;
    fx::ReplyCache replies; // recent mutation replies, for retries
    fx::JobTable jobs;      // running TRAIN/ADD jobs (FX_FLAG_JOB)
    fx_shm_server* shm = nullptr; // ADD_STREAM regions (--shm-socket)
    std::unique_ptr<fx::LockProbe> probe; // --test-lock-probe (a testing aid)

    std::mutex mu;
    std::unordered_map<uint64_t, EntryP> by_handle;
    std::map<std::pair<std::string, std::string>, uint64_t> by_name;
    std::unordered_map<uint64_t, uint64_t> client_seen; // client -> ms
    std::unordered_map<uint64_t, uint64_t> client_conn; // client -> conn
    uint64_t next_handle = 1;

    // Unfinished chunked uploads (UPLOAD_BEGIN .. COMMIT/ABORT), by id;
    // up_mu guards the map and the per-tenant byte counts.
    std::mutex up_mu;
    std::unordered_map<uint64_t, std::shared_ptr<Upload>> uploads;
    std::map<std::string, uint64_t> staged; // tenant -> bytes reserved
    uint64_t next_upload = 1;

    // Durable store: empty data_dir = in-memory. store_mu guards `stores`
    // and serialises named CREATE/UPLOAD/DROP (store first, then registry).
    std::string data_dir;
    int lock_fd = -1;
    fx::store::Options store_opts;
    std::mutex store_mu;
    std::map<std::string, fx::store::Store*> stores; // tenant -> store
    std::map<std::string, size_t> report_seen;       // tenant -> bytes noted
    std::mutex notes_mu;
    std::string notes;

    ~fx_state() {
        // Handles first (they only borrow their store entries), then the
        // stores (each syncs its logs), then the lock.
        by_handle.clear();
        by_name.clear();
        for (auto& kv : stores) fx::store::close(kv.second);
        stores.clear();
        if (lock_fd >= 0) ::close(lock_fd);
    }
};

namespace {

/* ---- keys ---- */

bool valid_tenant(const std::string& t) {
    if (t.empty() || t.size() > 63 || t[0] == '.') return false;
    for (char c : t)
        if (!(isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.'))
            return false;
    return true;
}

/* "KEY:TENANT[:ro]" */
bool parse_key(const std::string& item, fx_state* s, std::string* why) {
    size_t c1 = item.find(':');
    if (c1 == std::string::npos || c1 == 0) {
        // The entry holds a secret: never echo it.
        *why = "expected KEY:TENANT[:ro] (the entry is not shown: it may "
               "contain a key)";
        return false;
    }
    std::string key = item.substr(0, c1), rest = item.substr(c1 + 1);
    Key k;
    size_t c2 = rest.find(':');
    if (c2 != std::string::npos) {
        std::string mode = rest.substr(c2 + 1);
        rest = rest.substr(0, c2);
        if (mode == "ro")
            k.read_only = true;
        else if (mode != "rw") {
            *why = "unknown key mode '" + mode + "' (expected ro or rw)";
            return false;
        }
    }
    if (key.size() > kMaxKey) {
        *why = "API key longer than 256 bytes";
        return false;
    }
    if (!valid_tenant(rest)) {
        *why = "invalid tenant name '" + rest +
               "' (1-63 characters of [A-Za-z0-9._-], not starting with '.')";
        return false;
    }
    if (s->keys.count(key)) {
        *why = "API key listed twice";
        return false;
    }
    k.tenant = rest;
    s->keys[key] = k;
    return true;
}

std::string trim(const std::string& x) {
    size_t a = x.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    size_t b = x.find_last_not_of(" \t\r\n");
    return x.substr(a, b - a + 1);
}

/* ---- registry ---- */

bool valid_name(const char* n) {
    size_t len = strlen(n);
    if (len == 0 || len > kMaxName || n[0] == '.') return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n[i];
        if (!(isalnum(c) || c == '_' || c == '-' || c == '.')) return false;
    }
    return true;
}

/* Names are optional (empty = unnamed); a given one must be valid. */
void check_name(const std::string& name) {
    if (!name.empty() && !valid_name(name.c_str()))
        throw Error(FAISSX_E_INVALID,
                    "invalid index name '" + name +
                            "' (1-128 characters of [A-Za-z0-9._-], not "
                            "starting with '.')");
}

/* The entry of `handle` in the tenant's namespace, of the wanted family
 * (float index, or binary index for FX_OP_BINARY). */
EntryP lookup_kind(fx_state* s, const std::string& tenant, uint64_t handle,
                   bool binary) {
    std::lock_guard<std::mutex> g(s->mu);
    auto it = s->by_handle.find(handle);
    // Another tenant's index is indistinguishable from a missing one.
    if (it == s->by_handle.end() || it->second->tenant != tenant)
        throw Error(FAISSX_E_NOT_FOUND,
                    "unknown index handle " + std::to_string(handle));
    if ((it->second->bindex != nullptr) != binary)
        throw Error(FAISSX_E_INVALID,
                    "index handle " + std::to_string(handle) +
                            (binary ? " is not a binary index"
                                    : " is a binary index (use the binary "
                                      "operations)"));
    return it->second;
}

EntryP lookup(fx_state* s, const std::string& tenant, uint64_t handle) {
    return lookup_kind(s, tenant, handle, false);
}

uint64_t insert(fx_state* s, EntryP e) {
    std::lock_guard<std::mutex> g(s->mu);
    if (!e->name.empty()) {
        auto key = std::make_pair(e->tenant, e->name);
        if (s->by_name.count(key))
            throw Error(FAISSX_E_EXISTS,
                        "an index named '" + e->name + "' already exists");
        s->by_name[key] = 0;
    }
    e->handle = s->next_handle++;
    s->by_handle[e->handle] = e;
    if (!e->name.empty()) s->by_name[{e->tenant, e->name}] = e->handle;
    return e->handle;
}

/* ---- durable store ---- */

bool durable(const fx_state* s) {
    return !s->data_dir.empty();
}

void note(fx_state* s, const std::string& line) {
    std::lock_guard<std::mutex> g(s->notes_mu);
    s->notes += line + "\n";
}

/* Copies what the tenant's store reported since the last call (recovery:
 * torn tails cut; failed automatic checkpoints) into the notes. Caller
 * holds s->store_mu. */
void take_report(fx_state* s, fx::store::Store* st, const std::string& tenant) {
    std::string r = fx::store::report(st);
    size_t& seen = s->report_seen[tenant];
    if (r.size() <= seen) return;
    std::string fresh = r.substr(seen);
    seen = r.size();
    size_t a = 0, b;
    while ((b = fresh.find('\n', a)) != std::string::npos) {
        note(s, "tenant '" + tenant + "': " + fresh.substr(a, b - a));
        a = b + 1;
    }
}

std::string tenant_dir(const fx_state* s, const std::string& tenant) {
    return s->data_dir + "/tenants/" + tenant;
}

/* The store of `tenant`, opened (and its directory created) on first use.
 * Caller holds s->store_mu. */
fx::store::Store* tenant_store(fx_state* s, const std::string& tenant) {
    auto it = s->stores.find(tenant);
    if (it != s->stores.end()) return it->second;
    // Tenant names were validated with the keys ([A-Za-z0-9._-], no
    // leading '.'); check again before the name becomes a path.
    if (!valid_tenant(tenant) || tenant.find('/') != std::string::npos)
        throw Error(FAISSX_E_INVALID, "tenant '" + tenant +
                                              "' cannot name a directory");
    fx::store::Store* st = fx::store::open(tenant_dir(s, tenant), s->store_opts);
    s->stores[tenant] = st;
    return st;
}

/* The faiss index an entry serves (ix: its index or bindex): for a stored
 * index the one behind the store handle, passed to f under the store's
 * read lock (for what the handle does not forward: class, typed fields,
 * serialisation, clone). */
template <class Ix, class F>
void target_of(Entry* e, Ix* ix, F f) {
    if (!e->stored) {
        f(ix);
        return;
    }
    fx::store::read_inner(ix, [&](const Ix* in) {
        f(const_cast<Ix*>(in)); // callers only read
    });
}

template <class F>
void target(Entry* e, F f) {
    target_of(e, e->index.get(), f);
}

template <class F>
void btarget(Entry* e, F f) {
    target_of(e, e->bindex.get(), f);
}

void refuse_stored(const Entry* e, const char* what) {
    if (e->stored)
        throw Error(FAISSX_E_UNSUPPORTED,
                    std::string(what) + " is not supported on index '" +
                            e->name +
                            "': it is kept in the durable store, and this "
                            "change could not be logged (CLONE it to get an "
                            "in-memory copy)");
}

/* Faiss index kind bits (proto.h fx_kind) for typed client calls. */
int64_t kind_of(const faiss::Index* ix) {
    int64_t k = 0;
    if (dynamic_cast<const faiss::IndexFlat*>(ix)) k |= FX_KIND_FLAT;
    if (dynamic_cast<const faiss::IndexFlatL2*>(ix)) k |= FX_KIND_FLAT_L2;
    if (dynamic_cast<const faiss::IndexFlatIP*>(ix)) k |= FX_KIND_FLAT_IP;
    if (dynamic_cast<const faiss::IndexIVF*>(ix)) k |= FX_KIND_IVF;
    if (dynamic_cast<const faiss::IndexIVFFlat*>(ix)) k |= FX_KIND_IVFFLAT;
    if (dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(ix))
        k |= FX_KIND_IVFSQ;
    if (dynamic_cast<const faiss::IndexHNSW*>(ix)) k |= FX_KIND_HNSW;
    if (dynamic_cast<const faiss::IndexIDMap*>(ix)) k |= FX_KIND_IDMAP;
    if (dynamic_cast<const faiss::IndexIDMap2*>(ix)) k |= FX_KIND_IDMAP2;
    if (dynamic_cast<const faiss::IndexPreTransform*>(ix))
        k |= FX_KIND_PRETRANSFORM;
    if (dynamic_cast<const faiss::IndexScalarQuantizer*>(ix)) k |= FX_KIND_SQ;
    if (dynamic_cast<const faiss::IndexLSH*>(ix)) k |= FX_KIND_LSH;
    if (dynamic_cast<const faiss::IndexShards*>(ix)) k |= FX_KIND_SHARDS;
    if (dynamic_cast<const faiss::IndexReplicas*>(ix)) k |= FX_KIND_REPLICAS;
    if (dynamic_cast<const faiss::IndexRefine*>(ix)) k |= FX_KIND_REFINE;
    return k;
}

std::string demangled(const char* n) {
    // Itanium mangling of faiss::X is "N5faiss<len>XE"; show X.
    std::string s = n;
    const std::string pre = "N5faiss";
    if (s.compare(0, pre.size(), pre) == 0) {
        size_t i = pre.size(), len = 0;
        while (i < s.size() && isdigit((unsigned char)s[i]))
            len = len * 10 + (size_t)(s[i++] - '0');
        if (i + len <= s.size()) return s.substr(i, len);
    }
    return s;
}

std::string class_name(const faiss::Index* ix) {
    return demangled(typeid(*ix).name());
}
std::string class_name(const faiss::IndexBinary* ix) {
    return demangled(typeid(*ix).name());
}

int64_t bkind_of(const faiss::IndexBinary* ix) {
    int64_t k = FX_KIND_BINARY;
    if (dynamic_cast<const faiss::IndexBinaryFlat*>(ix)) k |= FX_KIND_FLAT;
    if (dynamic_cast<const faiss::IndexBinaryIVF*>(ix)) k |= FX_KIND_IVF;
    if (dynamic_cast<const faiss::IndexBinaryHNSW*>(ix)) k |= FX_KIND_HNSW;
    return k;
}

/* --test-old-protocol (a testing aid): this worker answers as a server
 * that predates the index info sizes and FX_FLAG_STATE. */
thread_local bool t_old_protocol = false;

/* The sizes at the end of index info (docs/protocol.md, "Index info"):
 * they let a client size search_preassigned and sa_decode requests without
 * asking first; the server checks them again on each request. */
void write_info_sizes(fx_wbuf* w, int64_t nlist, int64_t nprobe,
                      int64_t code_size) {
    if (t_old_protocol) return;
    fx_w_i64(w, nlist);
    fx_w_i64(w, nprobe);
    fx_w_i64(w, code_size);
}

/* What index info says of the index an entry serves beyond the fields
 * its handle forwards. */
struct Described {
    int64_t kind = 0, nlist = 0, nprobe = 0, code_size = 0;
    std::string cls;
};

void describe(const faiss::Index* in, Described* o) {
    // A stored index shows the kind and class of the index it keeps.
    o->kind = kind_of(in);
    o->cls = class_name(in);
    if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(in)) {
        o->nlist = (int64_t)ivf->nlist;
        o->nprobe = (int64_t)ivf->nprobe;
    }
    try {
        o->code_size = (int64_t)in->sa_code_size();
    } catch (const std::exception&) {
        o->code_size = -1; // no standalone codec
    }
}

void describe(const faiss::IndexBinary* in, Described* o) {
    o->kind = bkind_of(in);
    o->cls = class_name(in);
    if (auto bivf = dynamic_cast<const faiss::IndexBinaryIVF*>(in)) {
        o->nlist = (int64_t)bivf->nlist;
        o->nprobe = (int64_t)bivf->nprobe;
    }
    o->code_size = in->code_size;
}

template <class Ix>
void write_info_of(fx_wbuf* w, Entry* e, Ix* ix) {
    Described o;
    target_of(e, ix, [&](Ix* in) { describe(in, &o); });
    fx_w_u64(w, e->handle);
    fx_w_i64(w, ix->d);
    fx_w_i64(w, ix->metric_type);
    fx_w_i64(w, ix->is_trained);
    fx_w_i64(w, ix->ntotal);
    fx_w_i64(w, o.kind);
    fx_w_str(w, o.cls.c_str());
    write_info_sizes(w, o.nlist, o.nprobe, o.code_size);
}

void write_info(fx_wbuf* w, Entry* e) {
    if (e->bindex)
        write_info_of(w, e, e->bindex.get());
    else
        write_info_of(w, e, e->index.get());
}

template <class Ix>
void write_state(fx_wbuf* w, const Ix* ix) {
    fx_w_i64(w, ix->ntotal);
    fx_w_i64(w, ix->is_trained);
}

/* The state after a change, read for a stored index from the index behind
 * its handle, under the store's lock (other writers may be changing it). */
void write_state_of(fx_wbuf* w, Entry* e) {
    // A retry the store recognised (fx::store::RequestTag): the state the
    // original produced, so the retry's reply is the original's.
    fx::store::RequestTag* t = e->stored ? fx::store::request_tag() : nullptr;
    if (t && t->hit) {
        fx_w_i64(w, t->ntotal);
        fx_w_i64(w, t->trained);
        return;
    }
    if (e->bindex)
        btarget(e, [&](faiss::IndexBinary* in) { write_state(w, in); });
    else
        target(e, [&](faiss::Index* in) { write_state(w, in); });
}

/* --test-lock-probe (a testing aid): this worker's probe (NULL: off) and
 * the op of its request, set per request by fx_state_handle_req. */
thread_local fx::LockProbe* t_probe = nullptr;
thread_local int t_op = 0;

/* An entry's lock, held for reading (shared) or writing (alone); through
 * the lock probe when --test-lock-probe is on (net/lock_probe.h). */
class EntryLock {
public:
    EntryLock() = default;
    EntryLock(Entry* e, bool write) { lock(e, write); }
    EntryLock(const EntryLock&) = delete;
    EntryLock& operator=(const EntryLock&) = delete;
    ~EntryLock() {
        if (!mu_) return;
        if (probe_)
            probe_->unlock(*mu_, write_);
        else if (write_)
            mu_->unlock();
        else
            mu_->unlock_shared();
    }
    void lock(Entry* e, bool write) {
        std::shared_ptr<std::shared_mutex> mu = e->mu; // kept alive
        if (t_probe) {
            std::string label = !e->name.empty()
                                        ? e->name
                                        : "handle-" + std::to_string(e->handle);
            t_probe->lock(*mu, write, label, t_op);
        } else if (write) {
            mu->lock();
        } else {
            mu->lock_shared();
        }
        mu_ = std::move(mu);
        write_ = write;
        probe_ = t_probe;
    }

private:
    std::shared_ptr<std::shared_mutex> mu_;
    bool write_ = false;
    fx::LockProbe* probe_ = nullptr;
};

/* The lock a change holds on its entry: an in-memory index is changed
 * alone; a stored one under the shared lock, because its handle
 * serialises changes itself and then waits for durability with its own
 * lock released -- so concurrent writers share fsyncs (group commit) and
 * searches are not held up by a disk. */
struct WriteLock {
    EntryLock alone;
    std::shared_lock<std::shared_mutex> shared;
    explicit WriteLock(Entry* e, bool stored_shares = true) {
        if (e->stored && stored_shares)
            shared = std::shared_lock<std::shared_mutex>(*e->mu);
        else
            alone.lock(e, true);
    }
};

/* The IVF or HNSW index inside wrappers, for nprobe/efSearch. */
faiss::Index* unwrap(faiss::Index* ix) {
    for (int depth = 0; ix && depth < 8; depth++) {
        if (auto p = dynamic_cast<faiss::IndexPreTransform*>(ix))
            ix = p->index;
        else if (auto m = dynamic_cast<faiss::IndexIDMap*>(ix))
            ix = m->index;
        else if (auto r = dynamic_cast<faiss::IndexRefine*>(ix))
            ix = r->base_index;
        else
            return ix;
    }
    return ix;
}

/* ---- request decoding helpers ---- */

struct Req {
    fx_state* s;
    fx_rbuf r;
    std::string tenant;
    bool read_only = false;
    uint64_t client_id = 0;
    uint64_t conn_id = 0;
    uint64_t request_id = 0;
    bool job = false; // FX_FLAG_JOB: report progress, honour CANCEL
    uint64_t deadline = 0; // ReplyCache::now_ms() clock; 0 = none
    bool state = false; // FX_FLAG_STATE: replies carry the indexes' state
    // Aligned copies of array fields that are not aligned in the message.
    std::vector<std::vector<uint64_t>> scratch;
};

void check(fx_rbuf* r) {
    if (r->err) throw Error(FAISSX_E_PROTOCOL, std::string("bad request: ") + r->err);
}

uint64_t rd_u64(Req& q) {
    uint64_t v;
    fx_r_u64(&q.r, &v);
    check(&q.r);
    return v;
}
int64_t rd_i64(Req& q) {
    int64_t v;
    fx_r_i64(&q.r, &v);
    check(&q.r);
    return v;
}
double rd_f64(Req& q) {
    double v;
    fx_r_f64(&q.r, &v);
    check(&q.r);
    return v;
}
std::string rd_str(Req& q, size_t maxlen) {
    std::vector<char> buf(maxlen + 1);
    fx_r_str(&q.r, buf.data(), maxlen);
    check(&q.r);
    return std::string(buf.data());
}
/* An array field of n elements of `elem` bytes, used where it lies in the
 * message when that is aligned for the element type, else copied into
 * the request's scratch space. Over TCP the body starts 4 bytes past an
 * 8-byte boundary (rep0 takes the 4-byte request id off the front), so
 * f32 and u8 arrays are used in place and i64 arrays (ids, keys) copied. */
const void* aligned(Req& q, const void* p, uint64_t n, size_t elem) {
    if (n == 0 || (uintptr_t)p % elem == 0) return p;
    size_t bytes = (size_t)n * elem; // the reader bounded it by the body
    q.scratch.emplace_back((bytes + 7) / 8);
    memcpy(q.scratch.back().data(), p, bytes);
    return q.scratch.back().data();
}

template <class T>
const T* rd_array(Req& q, uint64_t expect, const char* what) {
    const void* p;
    uint64_t n;
    fx_r_array(&q.r, sizeof(T), UINT64_MAX / sizeof(T), &p, &n);
    check(&q.r);
    if (n != expect)
        throw Error(FAISSX_E_INVALID,
                    std::string(what) + " has " + std::to_string(n) +
                            " elements, expected " + std::to_string(expect));
    static_assert(alignof(T) == sizeof(T), "arrays of scalars");
    return static_cast<const T*>(aligned(q, p, n, sizeof(T)));
}
void end(Req& q) {
    fx_r_end(&q.r);
    check(&q.r);
}

/* A name field: read up to kMaxNameRead bytes so that a too-long name gets
 * the "invalid index name" reply, not a protocol error. */
std::string rd_name(Req& q) {
    return rd_str(q, kMaxNameRead);
}

void need_write(Req& q) {
    if (q.read_only)
        throw Error(FAISSX_E_PERMISSION,
                    "this API key is read-only: writes are refused");
}

/* SET_PARAM (float or binary) changes the parameter every client of the
 * index sees (a handle is shared by all who OPEN the name), so it is a
 * write: a read-only key passes its nprobe with each search instead. */
void need_write_param(Req& q, const std::string& name) {
    if (q.read_only)
        throw Error(FAISSX_E_PERMISSION,
                    "this API key is read-only: SET_PARAM '" + name +
                            "' would change the index for every client "
                            "(pass search parameters with each search "
                            "instead)");
}

/* Refuses a batch of more than max_batch vectors. */
void check_batch(Req& q, int64_t n) {
    if (n > q.s->conf.max_batch)
        throw Error(FAISSX_E_LIMIT, "batch of " + std::to_string(n) +
                                            " vectors exceeds the server "
                                            "limit of " +
                                            std::to_string(q.s->conf.max_batch));
}

int64_t rd_n(Req& q) {
    int64_t n = rd_i64(q);
    if (n < 0) throw Error(FAISSX_E_INVALID, "n must be >= 0");
    check_batch(q, n);
    return n;
}

/* SEARCH's k (float or binary). */
int64_t rd_k(Req& q) {
    int64_t k = rd_i64(q);
    if (k <= 0)
        throw Error(FAISSX_E_INVALID, "k must be > 0 (got " + std::to_string(k) + ")");
    if (k > q.s->conf.max_k)
        throw Error(FAISSX_E_LIMIT, "k = " + std::to_string(k) +
                                            " exceeds the server limit of " +
                                            std::to_string(q.s->conf.max_k));
    return k;
}

/* The keys of RECONSTRUCT_KEYS (float or binary), at most max_batch. */
const idx* rd_keys(Req& q, uint64_t* n) {
    const void* p;
    fx_r_array(&q.r, 8, (uint64_t)q.s->conf.max_batch, &p, n);
    check(&q.r);
    return static_cast<const idx*>(aligned(q, p, *n, 8));
}

/* Refuses, before allocating it, a reply array of count*elem bytes that
 * cannot fit in a message (a small request must not make the server
 * allocate gigabytes only to fail). */
void reply_fits(Req& q, uint64_t count, size_t elem) {
    uint64_t lim = q.s->conf.max_message_bytes;
    if (elem && count > lim / elem)
        throw Error(FAISSX_E_LIMIT,
                    "reply of " + std::to_string(count) + " x " +
                            std::to_string(elem) +
                            " bytes would exceed the message limit");
}

/* Wraps a C API call made on a server-local index: a failure becomes an
 * Error with the library's own code and message. */
void api(int rc) {
    if (rc != 0) {
        const char* m = faiss_get_last_error();
        throw Error(rc, m ? m : "failed");
    }
}

FaissIndex* h(Entry* e) {
    return reinterpret_cast<FaissIndex*>(e->index.get());
}

std::unique_ptr<faiss::IDSelector> rd_selector(
        Req& q, int depth, std::vector<std::unique_ptr<faiss::IDSelector>>& keep) {
    if (depth > FX_SEL_MAX_DEPTH)
        throw Error(FAISSX_E_INVALID, "selector nested too deeply");
    int64_t type = rd_i64(q);
    switch (type) {
    case FX_SEL_RANGE: {
        int64_t a = rd_i64(q), b = rd_i64(q);
        if (a > b) throw Error(FAISSX_E_INVALID, "range selector imin > imax");
        return std::make_unique<faiss::IDSelectorRange>(a, b);
    }
    case FX_SEL_BATCH: {
        const void* p;
        uint64_t n;
        fx_r_array(&q.r, 8, (uint64_t)q.s->conf.max_batch, &p, &n);
        check(&q.r);
        return std::make_unique<faiss::IDSelectorBatch>(
                n, static_cast<const idx*>(aligned(q, p, n, 8)));
    }
    case FX_SEL_BITMAP: {
        const void* p;
        uint64_t n;
        fx_r_array(&q.r, 1, UINT64_MAX, &p, &n);
        check(&q.r);
        // The bitmap points into the request, which outlives the call.
        return std::make_unique<faiss::IDSelectorBitmap>(
                n, static_cast<const uint8_t*>(p));
    }
    case FX_SEL_NOT: {
        keep.push_back(rd_selector(q, depth + 1, keep));
        return std::make_unique<faiss::IDSelectorNot>(keep.back().get());
    }
    case FX_SEL_AND:
    case FX_SEL_OR:
    case FX_SEL_XOR: {
        keep.push_back(rd_selector(q, depth + 1, keep));
        auto a = keep.back().get();
        keep.push_back(rd_selector(q, depth + 1, keep));
        auto b = keep.back().get();
        auto op = type == FX_SEL_AND ? fx::SelBinary::AND
                : type == FX_SEL_OR  ? fx::SelBinary::OR
                                     : fx::SelBinary::XOR;
        return std::make_unique<fx::SelBinary>(op, a, b);
    }
    default:
        throw Error(FAISSX_E_INVALID,
                    "unknown selector type " + std::to_string(type));
    }
}

/* ---- operations ---- */

/* Registers the new entry e of q's tenant and client as `name` (empty:
 * unnamed) and replies with its index info. */
void insert_reply(Req& q, fx_wbuf* w, const EntryP& e,
                  const std::string& name = std::string()) {
    e->tenant = q.tenant;
    e->name = name;
    e->client_id = q.client_id;
    e->conn_id = q.conn_id;
    insert(q.s, e);
    std::shared_lock<std::shared_mutex> l(*e->mu);
    write_info(w, e.get());
}

/* A named CREATE/UPLOAD retried after a restart (its reply was lost): if
 * the tenant's store says this request created `name`, the entry that now
 * has the name (caller holds store_mu); otherwise NULL. */
EntryP created_by_this_request(Req& q, const std::string& name) {
    if (!fx::store::request_tag()) return nullptr;
    EntryP e;
    {
        std::lock_guard<std::mutex> g(q.s->mu);
        auto it = q.s->by_name.find({q.tenant, name});
        if (it == q.s->by_name.end()) return nullptr;
        e = q.s->by_handle.at(it->second);
    }
    if (!e->stored ||
        !fx::store::created_by_request(tenant_store(q.s, q.tenant),
                                       name.c_str()))
        return nullptr;
    return e;
}

/* Before a named CREATE/UPLOAD into the durable store (caller holds
 * store_mu): answers the retry of the request that made `name` as an index
 * of the same kind with that index's info and returns true; otherwise
 * refuses a name that is taken and returns false. */
bool answer_retry_or_claim(Req& q, fx_wbuf* w, const std::string& name,
                           bool binary) {
    if (EntryP done = created_by_this_request(q, name)) {
        if ((bool)done->bindex == binary) {
            std::shared_lock<std::shared_mutex> l(*done->mu);
            write_info(w, done.get());
            return true;
        }
    }
    std::lock_guard<std::mutex> g(q.s->mu);
    if (q.s->by_name.count({q.tenant, name}))
        throw Error(FAISSX_E_EXISTS,
                    "an index named '" + name + "' already exists");
    return false;
}

/* CREATE's (float or binary) name and dimension. */
void check_new(const std::string& name, int64_t d) {
    check_name(name);
    if (d <= 0 || d > kMaxDim)
        throw Error(FAISSX_E_INVALID,
                    "dimension must be in [1, " + std::to_string(kMaxDim) +
                            "] (got " + std::to_string(d) + ")");
}

void op_create(Req& q, fx_wbuf* w) {
    need_write(q);
    std::string name = rd_name(q);
    int64_t d = rd_i64(q), metric = rd_i64(q);
    std::string desc = rd_str(q, kMaxDescription);
    end(q);
    check_new(name, d);
    FaissIndex* ix = nullptr;
    std::unique_lock<std::mutex> sl;
    bool store = !name.empty() && durable(q.s);
    if (store) {
        sl = std::unique_lock<std::mutex>(q.s->store_mu);
        if (answer_retry_or_claim(q, w, name, false)) return;
    }
    fx::store::Store* st = store ? tenant_store(q.s, q.tenant) : nullptr;
    api(faiss_index_factory(&ix, (int)d, desc.c_str(),
                            (FaissMetricType)metric));
    auto e = std::make_shared<Entry>();
    if (store) {
        // The store takes the new index over (and frees it on failure).
        e->index.reset(fx::store::create_index_from(st, name.c_str(),
                                                    fx::index(ix),
                                                    desc.c_str()));
        e->stored = true;
    } else {
        e->index.reset(fx::index(ix));
    }
    insert_reply(q, w, e, name);
}

void op_open(Req& q, fx_wbuf* w) {
    std::string name = rd_name(q);
    end(q);
    EntryP e;
    {
        std::lock_guard<std::mutex> g(q.s->mu);
        auto it = q.s->by_name.find({q.tenant, name});
        if (it == q.s->by_name.end())
            throw Error(FAISSX_E_NOT_FOUND, "no index named '" + name + "'");
        e = q.s->by_handle.at(it->second);
    }
    std::shared_lock<std::shared_mutex> l(*e->mu);
    write_info(w, e.get());
}

void op_list(Req& q, fx_wbuf* w) {
    end(q);
    std::vector<EntryP> mine;
    {
        std::lock_guard<std::mutex> g(q.s->mu);
        auto it = q.s->by_name.lower_bound({q.tenant, ""});
        for (; it != q.s->by_name.end() && it->first.first == q.tenant; ++it)
            mine.push_back(q.s->by_handle.at(it->second));
    }
    fx_w_u64(w, mine.size());
    for (auto& e : mine) {
        std::shared_lock<std::shared_mutex> l(*e->mu);
        fx_w_str(w, e->name.c_str());
        fx_w_i64(w, e->bindex ? e->bindex->d : e->index->d);
        fx_w_i64(w, e->bindex ? e->bindex->ntotal : e->index->ntotal);
    }
}

void op_drop(Req& q, fx_wbuf*) {
    need_write(q);
    std::string name = rd_name(q);
    end(q);
    std::unique_lock<std::mutex> sl;
    if (durable(q.s)) sl = std::unique_lock<std::mutex>(q.s->store_mu);
    EntryP e;
    {
        std::lock_guard<std::mutex> g(q.s->mu);
        auto it = q.s->by_name.find({q.tenant, name});
        if (it != q.s->by_name.end()) e = q.s->by_handle.at(it->second);
    }
    if (!e) {
        // The retry of a DROP that happened before a restart: done.
        if (durable(q.s) && fx::store::request_tag() &&
            fx::store::dropped_by_request(tenant_store(q.s, q.tenant),
                                          name.c_str()))
            return;
        throw Error(FAISSX_E_NOT_FOUND, "no index named '" + name + "'");
    }
    if (e->stored) {
        fx::store::Store* st = tenant_store(q.s, q.tenant);
        try {
            fx::store::drop(st, name.c_str());
        } catch (...) {
            // A failure after the rename still dropped it (the store stops
            // listing it): the registry must follow the disk.
            auto names = fx::store::list(st);
            if (std::find(names.begin(), names.end(), name) != names.end())
                throw;
            std::lock_guard<std::mutex> g(q.s->mu);
            q.s->by_handle.erase(e->handle);
            q.s->by_name.erase({q.tenant, name});
            throw;
        }
    }
    std::lock_guard<std::mutex> g(q.s->mu);
    q.s->by_handle.erase(e->handle);
    q.s->by_name.erase({q.tenant, name});
}

void op_release(Req& q, fx_wbuf*) {
    need_write(q);
    uint64_t handle = rd_u64(q);
    end(q);
    std::lock_guard<std::mutex> g(q.s->mu);
    auto it = q.s->by_handle.find(handle);
    if (it == q.s->by_handle.end() || it->second->tenant != q.tenant)
        throw Error(FAISSX_E_NOT_FOUND,
                    "unknown index handle " + std::to_string(handle));
    if (it->second->name.empty()) q.s->by_handle.erase(it);
}

void op_info(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    end(q);
    std::shared_lock<std::shared_mutex> l(*e->mu);
    write_info(w, e.get());
}

/* While it lives, the calling worker's long calls report to (and are
 * cancelled through) the job (tenant, client, request id) of q. */
struct JobGuard {
    fx_state* s = nullptr;
    fx::JobTable::Key key;
    std::shared_ptr<fx::JobSink> sink;
    fx::JobSink* old = nullptr;
    explicit JobGuard(Req& q) {
        if (!q.job) return;
        s = q.s;
        key = fx::JobTable::Key(q.tenant, q.client_id, q.request_id);
        sink = s->jobs.start(key);
        old = fx::job_attach_sink(sink.get());
    }
    ~JobGuard() {
        if (!s) return;
        fx::job_attach_sink(old);
        s->jobs.finish(key);
    }
};

/* PROGRESS and CANCEL: u64 request id of a job of this tenant and client. */
void op_job(Req& q, fx_wbuf* w, int op) {
    uint64_t rid = rd_u64(q);
    end(q);
    fx::JobTable::Key k(q.tenant, q.client_id, rid);
    if (op == FX_OP_CANCEL) {
        fx_w_i64(w, q.s->jobs.cancel(k) ? 1 : 0);
        return;
    }
    auto sink = q.s->jobs.find(k);
    fx_w_i64(w, sink ? 1 : 0);
    fx_w_i64(w, sink ? sink->op.load() : 0);
    fx_w_i64(w, sink ? sink->done.load() : 0);
    fx_w_i64(w, sink ? sink->total.load() : 0);
    fx_w_f64(w, sink ? fx::now_s() - sink->t0 : 0.0);
}

/* TRAIN, ADD and ADD_WITH_IDS of either family: n vectors of `row`
 * elements of T (and n ids when with_ids), which apply(n, x, ids) gives
 * the index under its write lock; the reply is the new state. */
template <class T, class Apply>
void change_vectors(Req& q, fx_wbuf* w, Entry* e, uint64_t row,
                    bool with_ids, Apply apply) {
    int64_t n = rd_n(q);
    JobGuard job(q);
    WriteLock l(e); // a store handle serialises changes itself
    const T* x = rd_array<T>(q, (uint64_t)n * row, "x");
    const idx* ids = with_ids ? rd_array<idx>(q, (uint64_t)n, "ids") : nullptr;
    end(q);
    apply(n, x, ids);
    write_state_of(w, e);
}

/* REMOVE_IDS of either family: remove(sel, &removed) under the entry's
 * write lock; the reply is the count and the new state. */
template <class Remove>
void change_remove(Req& q, fx_wbuf* w, Entry* e, Remove remove) {
    std::vector<std::unique_ptr<faiss::IDSelector>> keep;
    auto sel = rd_selector(q, 0, keep);
    end(q);
    WriteLock l(e);
    size_t removed = 0;
    remove(reinterpret_cast<FaissIDSelector*>(sel.get()), &removed);
    fx_w_u64(w, removed);
    write_state_of(w, e);
}

void op_train_add(Req& q, fx_wbuf* w, int op) {
    need_write(q);
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    FaissIndex* H = h(e.get());
    change_vectors<float>(
            q, w, e.get(), e->index->d, op == FX_OP_ADD_WITH_IDS,
            [&](int64_t n, const float* x, const idx* ids) {
                if (op == FX_OP_TRAIN)
                    api(faiss_Index_train(H, n, x));
                else if (op == FX_OP_ADD)
                    api(faiss_Index_add(H, n, x));
                else
                    api(faiss_Index_add_with_ids(H, n, x, ids));
            });
}

/* ---- ADD_STREAM: add through a shared-memory ring (net/shm.h) ----
 *
 * Eligible: the IndexFlatCodes family whose add only appends codes (so the
 * rollback below is exact), alone or under an IndexIDMap; not a stored
 * index (its log takes one record per add request). The whole stream runs
 * under the index's write lock. */
faiss::IndexFlatCodes* stream_codes(faiss::Index* ix) {
    const std::type_info& t = typeid(*ix);
    if (fx::is_plain_flat(ix) || t == typeid(faiss::IndexScalarQuantizer) ||
        t == typeid(faiss::IndexPQ) || t == typeid(faiss::IndexLSH))
        return static_cast<faiss::IndexFlatCodes*>(ix);
    return nullptr;
}

/* Capacity for `more` elements after v's end, growing geometrically. */
template <class V>
void grow_for(V* v, size_t more) {
    size_t need = v->size() + more;
    if (need > v->capacity()) v->reserve(std::max(need, 2 * v->capacity()));
}

/* Puts the index back as it was before the stream unless dismissed:
 * `bytes` (an IndexFlatCodes' codes or an IndexBinaryFlat's xb) cut back
 * to old_bytes and `ntotal` to old_n, and an IDMap's id map likewise. */
template <class Map>
struct StreamUndo {
    std::vector<uint8_t>* bytes;
    size_t old_bytes;
    idx* ntotal;
    idx old_n;
    Map* map;
    size_t old_ids;
    idx old_map_n;
    bool armed = true;
    StreamUndo(std::vector<uint8_t>* b, idx* nt, Map* m)
            : bytes(b), old_bytes(b->size()), ntotal(nt), old_n(*nt), map(m),
              old_ids(m ? m->id_map.size() : 0),
              old_map_n(m ? m->ntotal : 0) {}
    ~StreamUndo() {
        if (!armed) return;
        bytes->resize(old_bytes);
        *ntotal = old_n;
        if (map) {
            map->id_map.resize(old_ids);
            map->ntotal = old_map_n;
        }
    }
};

/* Appends the r ids of a stream chunk (raw little-endian idx) to an
 * IDMap's id map, float or binary; StreamUndo cuts them back. */
template <class Map>
void stream_append_ids(Map* map, const uint8_t* ids, uint64_t r) {
    size_t at = map->id_map.size();
    map->id_map.resize(at + r);
    memcpy(map->id_map.data() + at, ids, r * sizeof(idx));
    map->ntotal += (idx)r;
}

/* The server ends the stream: RUNNING -> ABORTED, unless the client got
 * there first. */
void stream_abort(fx_shm_hdr* hd) {
    uint32_t want = FX_SHM_RUNNING;
    __atomic_compare_exchange_n(&hd->state, &want, (uint32_t)FX_SHM_ABORTED,
                                false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    fx_shm_futex_wake(&hd->consumed);
    fx_shm_futex_wake(&hd->state);
}

/* The fields of ADD_STREAM and of the binary FX_BIN_ADD_STREAM (whose
 * handle op_binary has read already). */
struct StreamReq {
    uint64_t handle = 0;
    int64_t n = 0, with_ids = 0;
    uint64_t token[2] = {0, 0};
    uint64_t nslots = 0, rows = 0, off = 0, sbytes = 0;
};

StreamReq rd_stream(Req& q, bool handle) {
    StreamReq sr;
    if (handle) sr.handle = rd_u64(q);
    sr.n = rd_n(q);
    sr.with_ids = rd_i64(q);
    sr.token[0] = rd_u64(q);
    sr.token[1] = rd_u64(q);
    sr.nslots = rd_u64(q);
    sr.rows = rd_u64(q);
    sr.off = rd_u64(q);
    sr.sbytes = rd_u64(q);
    end(q);
    if (sr.with_ids != 0 && sr.with_ids != 1)
        throw Error(FAISSX_E_INVALID, "with_ids must be 0 or 1");
    if (!q.s->shm)
        throw Error(FAISSX_E_UNSUPPORTED,
                    "this server takes no shared-memory regions (start it "
                    "with --shm-socket): use ADD");
    return sr;
}

void refuse_stored_stream(const Entry* e) {
    if (e->stored)
        throw Error(FAISSX_E_UNSUPPORTED,
                    "index '" + e->name + "' is kept in the durable store, "
                    "which logs each add request: use ADD");
}

/* Appends chunk rows (vectors x, and ids when the stream has them) to
 * the index; false with the element of a non-finite value in *bad. */
using StreamAppend = std::function<bool(const uint8_t* x, const uint8_t* ids,
                                        uint64_t rows, size_t* bad)>;

/* The ring part of a stream of either family, under the index's write
 * lock: bounds the layout (vectors of row_bytes bytes; `d` names them in
 * messages) against the region, claims it, checks its header, then
 * appends each chunk as it is published (begin() first, once), and
 * commits. Throws on anything else, after moving the state to ABORTED;
 * the caller's undo puts the index back. ntotal() is the index's ntotal
 * to publish at the commit. */
void stream_run(Req& q, const StreamReq& sr,
                const std::shared_ptr<fx::shm::Region>& rg, uint64_t row_bytes,
                int d, const std::function<void()>& begin,
                const StreamAppend& append,
                const std::function<idx()>& ntotal) {
    const uint64_t nslots = sr.nslots, rows = sr.rows, off = sr.off,
                   sbytes = sr.sbytes;
    const int64_t n = sr.n;
    // The ring, bounded against the region before anything is read.
    if (nslots < 1 || nslots > FX_SHM_MAX_SLOTS)
        throw Error(FAISSX_E_INVALID, "nslots must be in 1.." +
                                              std::to_string(FX_SHM_MAX_SLOTS));
    if (rows < 1 || rows > ((uint64_t)1 << 24))
        throw Error(FAISSX_E_INVALID, "rows_per_slot must be in 1..2^24");
    if (off < FX_SHM_HDR_BYTES || off % 64 || sbytes == 0 || sbytes % 64 ||
        off > FX_SHM_MAX_BYTES || sbytes > FX_SHM_MAX_BYTES)
        throw Error(FAISSX_E_INVALID,
                    "bad ring layout: slot_offset must be >= " +
                            std::to_string(FX_SHM_HDR_BYTES) +
                            " and slots a non-zero size, both multiples of "
                            "64 within the region limit");
    const uint64_t ids_at = FX_SHM_IDS_AT(rows, row_bytes);
    if (ids_at + (sr.with_ids ? rows * 8 : 0) > sbytes)
        throw Error(FAISSX_E_INVALID,
                    "a slot of " + std::to_string(sbytes) +
                            " bytes cannot hold " + std::to_string(rows) +
                            " vectors of dimension " + std::to_string(d));
    if (off + nslots * sbytes > fx::shm::size(*rg))
        throw Error(FAISSX_E_INVALID,
                    "the ring (" + std::to_string(off + nslots * sbytes) +
                            " bytes) does not fit in the region (" +
                            std::to_string(fx::shm::size(*rg)) + " bytes)");
    if (!fx::shm::claim(*rg))
        throw Error(FAISSX_E_INVALID,
                    "the shared-memory region is in use by another stream");
    struct Release {
        fx::shm::Region& r;
        bool held = true;
        void now() {
            if (held) fx::shm::release(r);
            held = false;
        }
        ~Release() { now(); }
    } release{*rg};
    uint8_t* base = fx::shm::base(*rg);
    auto hd = reinterpret_cast<fx_shm_hdr*>(base);
    uint64_t sid = __atomic_load_n(&hd->stream_id, __ATOMIC_ACQUIRE);
    uint32_t state0 = __atomic_load_n(&hd->state, __ATOMIC_ACQUIRE);
    if (sid == q.request_id && state0 == FX_SHM_ABORTED)
        throw Error(FAISSX_E_CANCELED, "the client aborted the stream "
                                       "before it started; nothing was added");
    if (sid != q.request_id || state0 != FX_SHM_RUNNING)
        throw Error(FAISSX_E_INVALID,
                    "the shared-memory region is not set up for this "
                    "stream (stream id or state)");

    fx::shm::log(q.s->shm, 3, "shm: stream add (request " +
                                      std::to_string(q.request_id) +
                                      ", tenant " + q.tenant + ") of " +
                                      std::to_string(n) + " vectors started");
    try {
        begin();
        int64_t done = 0;
        for (uint32_t k = 0; done < n; k++) {
            uint64_t t0 = fx::ReplyCache::now_ms();
            uint64_t until = t0 + q.s->conf.shm_stall_ms;
            if (q.deadline && q.deadline < until) until = q.deadline;
            int st = fx::shm::wait_chunk(*rg, k, q.request_id, until);
            if (st != 1) {
                stream_abort(hd);
                if (st == 0)
                    throw Error(FAISSX_E_CANCELED,
                                "the client aborted the stream after " +
                                        std::to_string(done) + " of " +
                                        std::to_string(n) +
                                        " vectors; nothing was added");
                if (st == -1)
                    throw Error(FAISSX_E_NET,
                                "the client's shared-memory region closed "
                                "mid-stream; nothing was added");
                throw Error(FAISSX_E_TIMEOUT,
                            "no chunk from the client within " +
                                    std::to_string(fx::ReplyCache::now_ms() - t0) +
                                    " ms (stalled after " + std::to_string(done) +
                                    " of " + std::to_string(n) +
                                    " vectors); nothing was added");
            }
            uint32_t slot = k % (uint32_t)nslots;
            // Read once: the client can change it at any moment.
            uint64_t r = __atomic_load_n(&hd->rows[slot], __ATOMIC_ACQUIRE);
            if (r == 0 || r > rows || (int64_t)r > n - done) {
                stream_abort(hd);
                throw Error(FAISSX_E_INVALID,
                            "bad chunk " + std::to_string(k) + ": " +
                                    std::to_string(r) + " rows (a slot holds " +
                                    std::to_string(rows) + ", " +
                                    std::to_string(n - done) +
                                    " remain); nothing was added");
            }
            const uint8_t* sp = base + off + (uint64_t)slot * sbytes;
            size_t bad = 0;
            if (!append(sp, sr.with_ids ? sp + ids_at : nullptr, r, &bad)) {
                stream_abort(hd);
                throw Error(FAISSX_E_INVALID,
                            "x contains a non-finite value (NaN or inf) at "
                            "vector " + std::to_string(done + (int64_t)(bad / d)) +
                                    ", component " + std::to_string(bad % d) +
                                    "; nothing was added");
            }
            done += (int64_t)r;
            __atomic_store_n(&hd->consumed, k + 1, __ATOMIC_RELEASE);
            fx_shm_futex_wake(&hd->consumed);
        }
        // The outcome, for a client that takes it from the header
        // (FX_SHM_FEAT_COMMIT) and collects this reply later: ntotal
        // first, then the state (release). The ring is let go before, so
        // the client's next stream, which may start as soon as it sees
        // the state, finds it free; nothing here reads the slots again.
        __atomic_store_n(&hd->ntotal, (uint64_t)ntotal(), __ATOMIC_RELAXED);
        release.now();
        uint32_t want = FX_SHM_RUNNING;
        if (!__atomic_compare_exchange_n(&hd->state, &want,
                                         (uint32_t)FX_SHM_COMMITTED, false,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            throw Error(FAISSX_E_CANCELED,
                        "the client aborted the stream at its end; nothing was "
                        "added");
        fx_shm_futex_wake(&hd->state);
        fx_shm_futex_wake(&hd->consumed);
    } catch (const std::exception& ex) {
        stream_abort(hd); // so the client stops filling the ring
        fx::shm::log(q.s->shm, 1, std::string("shm: stream add (request ") +
                                    std::to_string(q.request_id) + ", tenant " +
                                    q.tenant + ") rolled back: " + ex.what());
        throw;
    }
}

/* Capacity for the whole stream at once, so chunk appends do not move the
 * vectors again and again (a failed stream keeps only the capacity).
 * Bounded: the request is small whatever n it claims. */
template <class V>
void stream_reserve(V* v, int64_t n, uint64_t per) {
    if ((uint64_t)n * per <= ((uint64_t)1 << 30)) grow_for(v, (size_t)n * per);
}

void stream_check_ids(bool map, int64_t with_ids) {
    if ((with_ids != 0) != map)
        throw Error(FAISSX_E_UNSUPPORTED,
                    map ? "this index takes add_with_ids only: use ADD"
                        : "add_with_ids is not supported by this index: use "
                          "ADD_WITH_IDS");
}

void op_add_stream(Req& q, fx_wbuf* w) {
    need_write(q);
    StreamReq sr = rd_stream(q, true);
    EntryP e = lookup(q.s, q.tenant, sr.handle);
    refuse_stored_stream(e.get());
    auto rg = fx::shm::find(q.s->shm, sr.token, q.tenant);
    WriteLock l(e.get(), false);
    faiss::Index* ix = e->index.get();
    auto map = typeid(*ix) == typeid(faiss::IndexIDMap)
                       ? static_cast<faiss::IndexIDMap*>(ix) : nullptr;
    faiss::IndexFlatCodes* codes = stream_codes(map ? map->index : ix);
    if (!codes)
        throw Error(FAISSX_E_UNSUPPORTED,
                    "a shared-memory add is not supported on " +
                            class_name(ix) + ": use ADD");
    stream_check_ids(map != nullptr, sr.with_ids);
    if (!ix->is_trained || !codes->is_trained)
        throw Error(FAISSX_E_INVALID,
                    "index is not trained: call faiss_Index_train first");
    const int d = ix->d;
    StreamUndo<faiss::IndexIDMap> undo(&codes->codes, &codes->ntotal, map);
    std::vector<float> scratch; // non-flat codes: checked copy, then encode
    const bool flat = fx::is_plain_flat(codes);
    stream_run(
            q, sr, rg, (uint64_t)d * sizeof(float), d,
            [&] {
                // Grown as the vector itself grows (at least doubling):
                // reserving exactly the stream's end would move the whole
                // index on every stream, quadratic over a run of adds.
                if ((uint64_t)sr.n * codes->code_size <= ((uint64_t)1 << 30))
                    // Advised before the chunks fill it (core/hugepages.cpp).
                    fx::reserve_huge(codes->codes,
                                     codes->codes.size() +
                                             (size_t)sr.n * codes->code_size);
                if (map) stream_reserve(&map->id_map, sr.n, 1);
            },
            [&](const uint8_t* xb, const uint8_t* ids, uint64_t r,
                size_t* bad) {
                const float* x = reinterpret_cast<const float*>(xb);
                if (flat) {
                    if (!fx::flat_append_finite(codes, (idx)r, x, bad))
                        return false;
                } else {
                    scratch.resize((size_t)r * (size_t)d);
                    if (!fx::copy_finite(scratch.data(), x, scratch.size(),
                                         bad))
                        return false;
                    codes->add((idx)r, scratch.data());
                }
                if (map) stream_append_ids(map, ids, r);
                return true;
            },
            [&] { return ix->ntotal; });
    undo.armed = false;
    write_state_of(w, e.get());
}

/* FX_BIN_ADD_STREAM: ADD_STREAM of codes into an IndexBinaryFlat (alone
 * or under an IndexBinaryIDMap), whose add only appends them: the
 * rollback is exact. Codes need no check. */
void bin_add_stream(Req& q, fx_wbuf* w, const EntryP& e) {
    StreamReq sr = rd_stream(q, false);
    refuse_stored_stream(e.get());
    auto rg = fx::shm::find(q.s->shm, sr.token, q.tenant);
    WriteLock l(e.get(), false);
    faiss::IndexBinary* ix = e->bindex.get();
    auto map = typeid(*ix) == typeid(faiss::IndexBinaryIDMap)
                       ? static_cast<faiss::IndexBinaryIDMap*>(ix) : nullptr;
    faiss::IndexBinary* in = map ? map->index : ix;
    if (!in || typeid(*in) != typeid(faiss::IndexBinaryFlat))
        throw Error(FAISSX_E_UNSUPPORTED,
                    "a shared-memory add is not supported on " +
                            class_name(ix) + ": use ADD");
    auto flat = static_cast<faiss::IndexBinaryFlat*>(in);
    stream_check_ids(map != nullptr, sr.with_ids);
    const uint64_t cs = (uint64_t)flat->code_size; // d / 8
    StreamUndo<faiss::IndexBinaryIDMap> undo(&flat->xb, &flat->ntotal, map);
    stream_run(
            q, sr, rg, cs, ix->d,
            [&] {
                stream_reserve(&flat->xb, sr.n, cs);
                if (map) stream_reserve(&map->id_map, sr.n, 1);
            },
            [&](const uint8_t* x, const uint8_t* ids, uint64_t r, size_t*) {
                flat->xb.insert(flat->xb.end(), x, x + r * cs);
                flat->ntotal += (idx)r;
                if (map) stream_append_ids(map, ids, r);
                return true;
            },
            [&] { return ix->ntotal; });
    undo.armed = false;
    write_state_of(w, e.get());
}

/* Search parameters read from a request, with what they point to. */
struct SearchParams {
    std::unique_ptr<faiss::SearchParameters> params;
    std::vector<std::unique_ptr<faiss::IDSelector>> keep;
    std::unique_ptr<faiss::IDSelector> sel;
};

/* The optional trailing search parameters of SEARCH and FX_BIN_SEARCH
 * (none when the body ends here). */
void rd_search_params(Req& q, SearchParams* sp) {
    if (q.r.pos >= q.r.len) return;
    int64_t type = rd_i64(q);
    if (type == FX_PARAMS_IVF) {
        sp->params.reset(new faiss::SearchParametersIVF());
    } else if (type == FX_PARAMS_HNSW) {
        sp->params.reset(new faiss::SearchParametersHNSW());
    } else if (type == FX_PARAMS_PLAIN) {
        sp->params.reset(new faiss::SearchParameters());
    } else {
        throw Error(FAISSX_E_INVALID,
                    "unknown search parameter type " + std::to_string(type));
    }
    if (rd_i64(q)) {
        sp->sel = rd_selector(q, 0, sp->keep);
        sp->params->sel = sp->sel.get();
    }
    if (type == FX_PARAMS_IVF) {
        auto ivf = static_cast<faiss::SearchParametersIVF*>(sp->params.get());
        ivf->nprobe = rd_u64(q);
        ivf->max_codes = rd_u64(q); // faiss itself refuses nprobe 0
    }
    if (type == FX_PARAMS_HNSW) {
        auto hp = static_cast<faiss::SearchParametersHNSW*>(sp->params.get());
        int64_t ef = rd_i64(q), crd = rd_i64(q);
        if (ef <= 0 || ef > INT_MAX)
            throw Error(FAISSX_E_INVALID,
                        "efSearch must be in [1, " + std::to_string(INT_MAX) +
                                "] (got " + std::to_string(ef) + ")");
        hp->efSearch = (int)ef;
        hp->check_relative_distance = crd != 0;
    }
}

/* Reserves SEARCH's reply (float or binary): nk distances of type D, then
 * nk labels, at offsets *offD and *offI of w->data. */
template <class D>
void reserve_knn(fx_wbuf* w, uint64_t nk, size_t* offD, size_t* offI) {
    fx_w_reserve(w, 16 + nk * (sizeof(D) + sizeof(idx)) + 8);
    *offD = w->len + 8;
    if (!fx_w_array_reserve(w, nk, sizeof(D))) throw std::bad_alloc();
    *offI = w->len + 8;
    if (!fx_w_array_reserve(w, nk, sizeof(idx))) throw std::bad_alloc();
}

/* RANGE_SEARCH's reply (float or binary): lims, labels, distances. */
void write_range(fx_wbuf* w, const faiss::RangeSearchResult& res, int64_t n) {
    size_t tot = res.lims[n];
    static_assert(sizeof(size_t) == 8, "lims travel as u64");
    fx_w_array(w, res.lims, (uint64_t)n + 1, 8);
    fx_w_array(w, res.labels, tot, sizeof(idx));
    fx_w_array(w, res.distances, tot, sizeof(float));
}

void op_search(Req& q, fx_wbuf* w, bool labels_only) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    int64_t n = rd_n(q), k = rd_k(q);
    EntryLock l(e.get(), false);
    const float* x = rd_array<float>(q, (uint64_t)n * e->index->d, "x");
    // Optional trailing search parameters.
    SearchParams sp;
    if (!labels_only) rd_search_params(q, &sp);
    const std::unique_ptr<faiss::SearchParameters>& params = sp.params;
    end(q);
    uint64_t nk = (uint64_t)n * (uint64_t)k;
    reply_fits(q, nk, labels_only ? sizeof(idx) : sizeof(idx) + sizeof(float));
    if (labels_only) {
        auto I = static_cast<idx*>(fx_w_array_reserve(w, nk, sizeof(idx)));
        if (!I) throw std::bad_alloc();
        api(faiss_Index_assign(h(e.get()), n, x, I, k));
        return;
    }
    size_t offD, offI;
    reserve_knn<float>(w, nk, &offD, &offI);
    if (params)
        api(faiss_Index_search_with_params(
                h(e.get()), n, x, k,
                reinterpret_cast<const FaissSearchParameters*>(params.get()),
                reinterpret_cast<float*>(w->data + offD),
                reinterpret_cast<idx*>(w->data + offI)));
    else
        api(faiss_Index_search(h(e.get()), n, x, k,
                               reinterpret_cast<float*>(w->data + offD),
                               reinterpret_cast<idx*>(w->data + offI)));
    // The state the search saw (still under its lock): an IndexShards
    // over remote shards translates ids by it without asking INFO.
    if (q.state) target(e.get(), [&](faiss::Index* in) { write_state(w, in); });
}

void op_range(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    int64_t n = rd_n(q);
    double radius = rd_f64(q);
    EntryLock l(e.get(), false);
    const float* x = rd_array<float>(q, (uint64_t)n * e->index->d, "x");
    SearchParams sp; // optional trailing search parameters
    rd_search_params(q, &sp);
    end(q);
    faiss::RangeSearchResult res(n);
    api(faissx_Index_range_search_with_params(
            h(e.get()), n, x, (float)radius,
            reinterpret_cast<const FaissSearchParameters*>(sp.params.get()),
            reinterpret_cast<FaissRangeSearchResult*>(&res)));
    write_range(w, res, n);
}

void op_reset(Req& q, fx_wbuf* w) {
    need_write(q);
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    end(q);
    WriteLock l(e.get());
    api(faiss_Index_reset(h(e.get())));
    write_state_of(w, e.get());
}

void op_remove(Req& q, fx_wbuf* w) {
    need_write(q);
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    change_remove(q, w, e.get(), [&](FaissIDSelector* sel, size_t* removed) {
        api(faiss_Index_remove_ids(h(e.get()), sel, removed));
    });
}

void op_reconstruct_n(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    int64_t i0 = rd_i64(q);
    int64_t ni = rd_i64(q);
    end(q);
    std::shared_lock<std::shared_mutex> l(*e->mu);
    // The range check the library makes, before any limit, so a bad range
    // gets the same answer remotely as locally.
    const faiss::Index* ix = e->index.get();
    if (ni >= 0 && fx::positional(ix) &&
        !(i0 >= 0 && i0 <= ix->ntotal && ni <= ix->ntotal - i0))
        throw Error(FAISSX_E_INVALID,
                    "range of " + std::to_string(ni) + " vectors from " +
                            std::to_string(i0) + " is outside [0, " +
                            std::to_string(ix->ntotal) + ")");
    if (ni < 0) throw Error(FAISSX_E_INVALID, "ni must be >= 0");
    check_batch(q, ni);
    reply_fits(q, (uint64_t)ni * e->index->d, sizeof(float));
    auto out = static_cast<float*>(
            fx_w_array_reserve(w, (uint64_t)ni * e->index->d, sizeof(float)));
    if (!out && ni) throw std::bad_alloc();
    api(faiss_Index_reconstruct_n(h(e.get()), i0, ni, out));
}

void op_reconstruct_keys(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    uint64_t n;
    const idx* keys = rd_keys(q, &n);
    end(q);
    std::shared_lock<std::shared_mutex> l(*e->mu);
    int d = e->index->d;
    auto out = static_cast<float*>(fx_w_array_reserve(w, n * d, sizeof(float)));
    if (!out && n) throw std::bad_alloc();
    for (uint64_t i = 0; i < n; i++)
        api(faiss_Index_reconstruct(h(e.get()), keys[i], out + i * d));
}

void op_residual(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    int64_t n = rd_n(q);
    std::shared_lock<std::shared_mutex> l(*e->mu);
    int d = e->index->d;
    const float* x = rd_array<float>(q, (uint64_t)n * d, "x");
    const idx* keys = rd_array<idx>(q, (uint64_t)n, "keys");
    end(q);
    auto out = static_cast<float*>(fx_w_array_reserve(w, (uint64_t)n * d, sizeof(float)));
    if (!out && n) throw std::bad_alloc();
    api(faiss_Index_compute_residual_n(h(e.get()), n, x, out, keys));
}

void op_sa(Req& q, fx_wbuf* w, int op) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    std::shared_lock<std::shared_mutex> l(*e->mu);
    size_t cs = 0;
    if (op == FX_OP_SA_CODE_SIZE) {
        end(q);
        api(faiss_Index_sa_code_size(h(e.get()), &cs));
        fx_w_u64(w, cs);
        return;
    }
    int64_t n = rd_n(q);
    api(faiss_Index_sa_code_size(h(e.get()), &cs));
    int d = e->index->d;
    if (op == FX_OP_SA_ENCODE) {
        const float* x = rd_array<float>(q, (uint64_t)n * d, "x");
        end(q);
        auto out = static_cast<uint8_t*>(fx_w_array_reserve(w, (uint64_t)n * cs, 1));
        if (!out && n) throw std::bad_alloc();
        api(faiss_Index_sa_encode(h(e.get()), n, x, out));
    } else {
        const uint8_t* codes = rd_array<uint8_t>(q, (uint64_t)n * cs, "codes");
        end(q);
        auto out = static_cast<float*>(fx_w_array_reserve(w, (uint64_t)n * d, sizeof(float)));
        if (!out && n) throw std::bad_alloc();
        api(faiss_Index_sa_decode(h(e.get()), n, codes, out));
    }
}

void op_set_param(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    std::string name = rd_str(q, kMaxParamName);
    double v = rd_f64(q);
    end(q);
    need_write_param(q, name);
    if (!std::isfinite(v))
        throw Error(FAISSX_E_INVALID, "value of '" + name + "' is not finite");
    // (verbose is not logged: the handle's flag is changed alone.)
    WriteLock l(e.get(), name != "verbose");
    faiss::Index* ix = e->index.get();
    if (name == "verbose") {
        ix->verbose = v != 0;
    } else {
        try {
            if (e->stored) // logged, acknowledged once durable
                fx::store::set_param(ix, name.c_str(), v);
            else
                faiss::ParameterSpace().set_index_parameter(ix, name, v);
        } catch (const faiss::FaissException& ex) {
            std::string cls;
            target(e.get(), [&](faiss::Index* in) { cls = class_name(in); });
            // FAISSX_E_FAISS, as the same refusal is locally.
            throw Error(FAISSX_E_FAISS, "cannot set parameter '" + name +
                                                "' on " + cls + ": " +
                                                ex.what());
        }
    }
    write_state_of(w, e.get());
}

double get_param(faiss::Index* ix, const std::string& name);

void op_get_param(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    std::string name = rd_str(q, kMaxParamName);
    end(q);
    std::shared_lock<std::shared_mutex> l(*e->mu);
    double v = 0;
    target(e.get(), [&](faiss::Index* ix) { v = get_param(ix, name); });
    fx_w_f64(w, v);
}

double get_param(faiss::Index* ix, const std::string& name) {
    faiss::Index* in = unwrap(ix);
    double v;
    if (name == "verbose")
        v = ix->verbose;
    else if (name == "nprobe" && dynamic_cast<faiss::IndexIVF*>(in))
        v = (double)dynamic_cast<faiss::IndexIVF*>(in)->nprobe;
    else if (name == "nlist" && dynamic_cast<faiss::IndexIVF*>(in))
        v = (double)dynamic_cast<faiss::IndexIVF*>(in)->nlist;
    else if (name == "quantizer_trains_alone" && dynamic_cast<faiss::IndexIVF*>(in))
        v = dynamic_cast<faiss::IndexIVF*>(in)->quantizer_trains_alone;
    else if (name == "efSearch" && dynamic_cast<faiss::IndexHNSW*>(in))
        v = dynamic_cast<faiss::IndexHNSW*>(in)->hnsw.efSearch;
    else if (name == "efConstruction" && dynamic_cast<faiss::IndexHNSW*>(in))
        v = dynamic_cast<faiss::IndexHNSW*>(in)->hnsw.efConstruction;
    else if (name == "k_factor" && dynamic_cast<faiss::IndexRefine*>(ix))
        v = dynamic_cast<faiss::IndexRefine*>(ix)->k_factor;
    else if (name == "nbits" && dynamic_cast<faiss::IndexLSH*>(in))
        v = dynamic_cast<faiss::IndexLSH*>(in)->nbits;
    else if (name == "code_size" && dynamic_cast<faiss::IndexLSH*>(in))
        v = (double)dynamic_cast<faiss::IndexLSH*>(in)->code_size;
    else if (name == "rotate_data" && dynamic_cast<faiss::IndexLSH*>(in))
        v = dynamic_cast<faiss::IndexLSH*>(in)->rotate_data;
    else if (name == "train_thresholds" && dynamic_cast<faiss::IndexLSH*>(in))
        v = dynamic_cast<faiss::IndexLSH*>(in)->train_thresholds;
    else
        throw Error(FAISSX_E_UNSUPPORTED, "parameter '" + name +
                                                  "' is not readable on " +
                                                  class_name(ix));
    return v;
}

/* The faiss bytes of the index (float or binary) an entry serves, taken
 * under its read lock. */
std::vector<uint8_t> serialize_entry(Entry* e) {
    faiss::VectorIOWriter out;
    std::shared_lock<std::shared_mutex> l(*e->mu);
    if (e->bindex)
        btarget(e, [&](faiss::IndexBinary* ix) {
            faiss::write_index_binary(ix, &out);
        });
    else
        target(e, [&](faiss::Index* ix) { faiss::write_index(ix, &out); });
    return std::move(out.data);
}

/* SERIALIZE (float or binary): the bytes in one reply. */
void write_serialized(Req& q, fx_wbuf* w, Entry* e) {
    std::vector<uint8_t> bytes = serialize_entry(e);
    if (bytes.size() > q.s->conf.max_message_bytes)
        throw Error(FAISSX_E_LIMIT,
                    "serialized index (" + std::to_string(bytes.size()) +
                            " bytes) exceeds the message limit");
    fx_w_array(w, bytes.data(), bytes.size(), 1);
}

void op_serialize(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    end(q);
    write_serialized(q, w, e.get());
}

/* A faiss reader over bytes in memory (not copied: an upload may be
 * large). */
struct SpanReader : faiss::IOReader {
    const uint8_t* p;
    size_t n, pos = 0;
    SpanReader(const void* p, size_t n)
            : p(static_cast<const uint8_t*>(p)), n(n) {}
    size_t operator()(void* ptr, size_t size, size_t nitems) override {
        if (size == 0 || nitems == 0) return 0;
        size_t k = std::min((n - pos) / size, nitems);
        if (k) std::memcpy(ptr, p + pos, k * size);
        pos += k * size;
        return k;
    }
};

/* What read_index computes after reading and read_uploaded asks it to
 * skip (IO_FLAG_SKIP_PRECOMPUTE_TABLE), done once the bytes are known
 * good: tables whose size the index's parameters decide, not the bytes. */
void finish_tables(faiss::Index* ix, int depth = 0) {
    if (!ix || depth > 16) return;
    if (auto p = dynamic_cast<faiss::IndexPreTransform*>(ix))
        return finish_tables(p->index, depth + 1);
    if (auto m = dynamic_cast<faiss::IndexIDMap*>(ix))
        return finish_tables(m->index, depth + 1);
    if (auto r = dynamic_cast<faiss::IndexRefine*>(ix)) {
        finish_tables(r->base_index, depth + 1);
        return finish_tables(r->refine_index, depth + 1);
    }
    if (auto h = dynamic_cast<faiss::IndexHNSW*>(ix))
        return finish_tables(h->storage, depth + 1);
    auto rq_tables = [](faiss::ResidualQuantizer& rq) {
        if (rq.is_trained && rq.codebook_cross_products.empty() &&
            !(rq.train_type & faiss::ResidualQuantizer::Skip_codebook_tables))
            rq.compute_codebook_tables();
    };
    if (auto a = dynamic_cast<faiss::IndexResidualQuantizer*>(ix)) rq_tables(a->rq);
    if (auto a = dynamic_cast<faiss::ResidualCoarseQuantizer*>(ix)) rq_tables(a->rq);
    if (auto a = dynamic_cast<faiss::IndexResidualQuantizerFastScan*>(ix))
        rq_tables(a->rq);
    if (auto ivf = dynamic_cast<faiss::IndexIVF*>(ix)) {
        finish_tables(ivf->quantizer, depth + 1);
        if (auto a = dynamic_cast<faiss::IndexIVFResidualQuantizer*>(ix))
            rq_tables(a->rq);
        if (auto a = dynamic_cast<faiss::IndexIVFResidualQuantizerFastScan*>(ix))
            rq_tables(a->rq);
        // As read_index does for an IVFPQ (and IVFPQR).
        if (auto pq = dynamic_cast<faiss::IndexIVFPQ*>(ix)) {
            pq->use_precomputed_table = 0;
            if (pq->is_trained && pq->by_residual) pq->precompute_table();
        }
    }
}
void finish_tables(faiss::IndexBinary*) {}

/* The index in an UPLOAD body (float or binary), or FAISSX_E_IO naming
 * what the bytes failed to be.
 *
 * faiss 1.7.3's read_index allocates whatever sizes the bytes claim (a
 * vector size of 2^40 is resized before a byte of it is read) and leaks
 * the part it had built when it then fails; any write-key holder could
 * make the server allocate until it dies. So the parse runs under an
 * allocation budget (net/alloc_budget.h): no single allocation above 4x
 * the upload + 16 MiB, none that takes the parse's live allocations above
 * 8x + 64 MiB (legitimate parses stay far below: faiss allocates what the
 * bytes hold, plus reverse maps), and after a failed parse what it left
 * behind is freed. Tables sized by parameters rather than bytes (IVFPQ's
 * precomputed table) are computed after the parse, outside the budget. */
template <class T>
T* read_uploaded(const void* p, uint64_t n, const char* what) {
    constexpr size_t kMiB = (size_t)1 << 20;
    size_t one = n > (SIZE_MAX - 64 * kMiB) / 8 ? SIZE_MAX : 4 * n + 16 * kMiB;
    size_t total = n > (SIZE_MAX - 64 * kMiB) / 8 ? SIZE_MAX : 8 * n + 64 * kMiB;
    std::string failure;
    size_t refused = 0;
    T* out = nullptr;
    {
        fx::AllocBudget budget(one, total);
        try {
            SpanReader in(p, n);
            if constexpr (std::is_same_v<T, faiss::IndexBinary>)
                out = faiss::read_index_binary(&in);
            else
                out = faiss::read_index(&in,
                                        faiss::IO_FLAG_SKIP_PRECOMPUTE_TABLE);
        } catch (const std::exception& ex) {
            budget.drain(); // what is allocated from here on is kept
            refused = budget.refused();
            failure = ex.what();
        }
        if (out) {
            budget.keep();
            if constexpr (!std::is_same_v<T, faiss::IndexBinary>)
                fx::hugepages_advise_codes(out); // core/hugepages.cpp
        } else
            budget.release_leftovers(); // the exception is gone by now
    }
    if (!out) {
        if (refused)
            throw Error(FAISSX_E_IO,
                        std::string("uploaded bytes are not a readable ") +
                                what + ": they claim an allocation of " +
                                std::to_string(refused) + " bytes, more than "
                                "an upload of " + std::to_string(n) +
                                " bytes can hold (a corrupt or forged size "
                                "field)");
        throw Error(FAISSX_E_IO, std::string("uploaded bytes are not a "
                                             "readable ") + what + ": " +
                                         failure);
    }
    try {
        finish_tables(out);
    } catch (...) {
        delete out;
        throw;
    }
    return out;
}

faiss::Index* store_create(fx::store::Store* st, const std::string& name,
                           faiss::Index* ix, const char* description) {
    return fx::store::create_index_from(st, name.c_str(), ix, description);
}
faiss::IndexBinary* store_create(fx::store::Store* st, const std::string& name,
                                 faiss::IndexBinary* ix,
                                 const char* description) {
    return fx::store::create_index_binary_from(st, name.c_str(), ix,
                                               description);
}
void set_index(Entry* e, std::unique_ptr<faiss::Index> ix) {
    e->index = std::move(ix);
}
void set_index(Entry* e, std::unique_ptr<faiss::IndexBinary> ix) {
    e->bindex = std::move(ix);
}

/* Installs a new index (float or binary) as `name` of q's tenant (empty:
 * unnamed) and replies with its info. A named index on a durable server
 * goes into the tenant's store (which takes `ix` over, also when it
 * throws), under store_mu from the name check to the registry insert;
 * others stay in memory. With dep, the new entry shares dep's data
 * structure (and lock) and keeps it alive. */
template <class Ix>
void install_index(Req& q, fx_wbuf* w, std::unique_ptr<Ix> ix,
                   const std::string& name, EntryP dep = nullptr,
                   const char* description = nullptr) {
    auto e = std::make_shared<Entry>();
    if (dep) {
        e->deps.push_back(dep);
        e->mu = dep->mu; // one data structure, one lock
    }
    std::unique_lock<std::mutex> sl;
    if (!name.empty() && durable(q.s)) {
        sl = std::unique_lock<std::mutex>(q.s->store_mu);
        if (answer_retry_or_claim(q, w, name,
                                  std::is_same_v<Ix, faiss::IndexBinary>))
            return;
        ix.reset(store_create(tenant_store(q.s, q.tenant), name, ix.release(),
                              description));
        e->stored = true;
    }
    set_index(e.get(), std::move(ix));
    insert_reply(q, w, e, name);
}

/* Reads faiss index bytes and installs the index as `name` (empty:
 * unnamed) of q's tenant: UPLOAD, and COMMIT of a chunked upload. */
void install_uploaded(Req& q, fx_wbuf* w, const std::string& name,
                      const void* p, uint64_t n) {
    check_name(name);
    std::unique_ptr<faiss::Index> ix(
            read_uploaded<faiss::Index>(p, n, "faiss index"));
    // faiss's file format drops IndexIVF::cp (k-means parameters), and
    // read_index leaves the default-constructed ones (niter 25, never
    // spherical), while the real constructors set niter 10 and spherical
    // k-means for inner product. Restore the constructor's values, or
    // training the uploaded index would differ from training the original.
    if (auto ivf = dynamic_cast<faiss::IndexIVF*>(unwrap(ix.get()))) {
        faiss::Level1Quantizer ctor(nullptr, ivf->nlist);
        ivf->cp = ctor.cp;
        if (ivf->metric_type == faiss::METRIC_INNER_PRODUCT)
            ivf->cp.spherical = true;
    }
    install_index(q, w, std::move(ix), name);
}

/* A one-message UPLOAD (float or binary): str name, array<u8> the bytes;
 * installs them with `install` (install_uploaded or its binary twin). */
void upload_whole(Req& q, fx_wbuf* w,
                  void (*install)(Req&, fx_wbuf*, const std::string&,
                                  const void*, uint64_t)) {
    need_write(q);
    std::string name = rd_name(q);
    const void* p;
    uint64_t n;
    fx_r_array(&q.r, 1, UINT64_MAX, &p, &n);
    check(&q.r);
    end(q);
    install(q, w, name, p, n);
}

void op_upload(Req& q, fx_wbuf* w) {
    upload_whole(q, w, install_uploaded);
}

void install_uploaded_binary(Req& q, fx_wbuf* w, const std::string& name,
                             const void* p, uint64_t n);

/* ---- chunked upload ---- */

/* The largest chunk a CHUNK request may carry within the message limit:
 * the limit less the header, the longest API key, the fixed fields and
 * padding (512 bytes cover them). */
uint64_t max_chunk(const fx_state* s) {
    uint64_t lim = s->conf.max_message_bytes;
    return lim > 1024 ? (lim - 512) & ~(uint64_t)7 : 512;
}

std::string upload_unknown(uint64_t id) {
    return "unknown upload " + std::to_string(id) +
           " (never begun, already committed or aborted, discarded after "
           "its client went away or stayed idle, lost with a server "
           "restart, or begun by another client)";
}

std::string download_unknown(uint64_t id) {
    return "unknown download " + std::to_string(id) +
           " (never begun, already ended, discarded after its client went "
           "away or stayed idle, or begun by another client)";
}

/* The upload (or download) `id` of q's tenant and client. Another
 * tenant's or client's is indistinguishable from a missing one. */
std::shared_ptr<Upload> find_upload(Req& q, uint64_t id,
                                    bool download = false) {
    std::lock_guard<std::mutex> g(q.s->up_mu);
    auto it = q.s->uploads.find(id);
    if (it == q.s->uploads.end() || it->second->tenant != q.tenant ||
        it->second->client_id != q.client_id ||
        it->second->download != download)
        throw Error(FAISSX_E_NOT_FOUND, download ? download_unknown(id)
                                                 : upload_unknown(id));
    return it->second;
}

/* Removes upload `id` from the table (caller holds up_mu); its bytes stay
 * reserved until release_upload. */
std::shared_ptr<Upload> take_upload_locked(fx_state* s, uint64_t id) {
    auto it = s->uploads.find(id);
    if (it == s->uploads.end()) return nullptr;
    auto u = it->second;
    s->uploads.erase(it);
    return u;
}

/* Frees a taken upload's bytes and its reservation. */
void release_upload(fx_state* s, std::shared_ptr<Upload> u) {
    if (!u) return;
    {
        std::lock_guard<std::mutex> g(u->mu); // a chunk may be copying
        u->bytes.reset();
        std::vector<uint8_t>().swap(u->out);
    }
    std::lock_guard<std::mutex> g(s->up_mu);
    auto it = s->staged.find(u->tenant);
    if (it != s->staged.end()) {
        it->second -= std::min(it->second, u->total);
        if (it->second == 0) s->staged.erase(it);
    }
}

/* Reserves `total` bytes of q's tenant's staging for u and enters u in
 * the table (giving it an id), or throws FAISSX_E_LIMIT. */
void stage(Req& q, const std::shared_ptr<Upload>& u, const char* what) {
    fx_state* s = q.s;
    uint64_t limit = s->conf.max_upload_bytes, total = u->total;
    if (total > limit)
        throw Error(FAISSX_E_LIMIT,
                    std::string("a") + (what[0] == 'u' ? "n " : " ") + what +
                            " of " + std::to_string(total) +
                            " bytes exceeds the server's staging limit of " +
                            std::to_string(limit) +
                            " bytes per tenant (--max-upload-bytes)");
    std::lock_guard<std::mutex> g(s->up_mu);
    uint64_t& used = s->staged[q.tenant];
    size_t count = 0;
    for (auto& kv : s->uploads) count += kv.second->tenant == q.tenant;
    if (used > limit - total || count >= FX_MAX_UPLOADS_PER_TENANT) {
        std::string why =
                std::string("staging ") + (what[0] == 'u' ? "an " : "a ") +
                what + " of " + std::to_string(total) +
                " bytes would exceed this tenant's limit of " +
                (count >= FX_MAX_UPLOADS_PER_TENANT
                         ? std::to_string(FX_MAX_UPLOADS_PER_TENANT) +
                                   " unfinished uploads and downloads"
                         : std::to_string(limit) +
                                   " bytes (--max-upload-bytes)") +
                ": " + std::to_string(used) + " bytes are staged by " +
                std::to_string(count) +
                " unfinished upload(s) or download(s); finish or abort "
                "them, or wait until abandoned ones are discarded";
        if (used == 0) s->staged.erase(q.tenant);
        throw Error(FAISSX_E_LIMIT, why);
    }
    used += total; // reserved now, so concurrent BEGINs see it
    u->id = s->next_upload++;
    s->uploads[u->id] = u;
}

void op_upload_begin(Req& q, fx_wbuf* w) {
    need_write(q);
    uint64_t total = rd_u64(q);
    int64_t kind = rd_i64(q);
    end(q);
    if (kind != FX_UPLOAD_INDEX && kind != FX_UPLOAD_BINARY)
        throw Error(FAISSX_E_INVALID, "unknown upload kind " +
                                              std::to_string(kind) +
                                              " (0: index, 1: binary index)");
    if (total == 0)
        throw Error(FAISSX_E_INVALID,
                    "an upload of 0 bytes cannot hold an index");
    fx_state* s = q.s;
    auto u = std::make_shared<Upload>();
    u->tenant = q.tenant;
    u->client_id = q.client_id;
    u->conn_id = q.conn_id;
    u->kind = (int)kind;
    u->total = total;
    u->last_ms = now_ms();
    stage(q, u, "upload");
    u->bytes.reset(new (std::nothrow) uint8_t[total]);
    if (!u->bytes) {
        std::shared_ptr<Upload> t;
        {
            std::lock_guard<std::mutex> g(s->up_mu);
            t = take_upload_locked(s, u->id);
        }
        release_upload(s, t);
        throw Error(FAISSX_E_NOMEM, "no memory to stage an upload of " +
                                            std::to_string(total) + " bytes");
    }
    fx_w_u64(w, u->id);
    fx_w_u64(w, max_chunk(s));
}

/* Chunks are idempotent by offset: the one at the end of what was
 * received appends, a repeat of one already received (same offset, same
 * bytes: a retry) changes nothing, anything else is refused. */
void op_upload_chunk(Req& q, fx_wbuf* w) {
    need_write(q);
    uint64_t id = rd_u64(q), off = rd_u64(q);
    const void* p;
    uint64_t n;
    fx_r_array(&q.r, 1, UINT64_MAX, &p, &n);
    check(&q.r);
    end(q);
    auto u = find_upload(q, id);
    std::lock_guard<std::mutex> g(u->mu);
    if (!u->bytes) throw Error(FAISSX_E_NOT_FOUND, upload_unknown(id));
    std::string range = "chunk [" + std::to_string(off) + ", " +
                        std::to_string(off + n) + ") of upload " +
                        std::to_string(id);
    if (n == 0) throw Error(FAISSX_E_INVALID, range + " is empty");
    if (off > u->total || n > u->total - off)
        throw Error(FAISSX_E_INVALID,
                    range + " lies beyond its " + std::to_string(u->total) +
                            " bytes");
    if (off > u->received)
        throw Error(FAISSX_E_INVALID,
                    range + " would leave a gap: " +
                            std::to_string(u->received) +
                            " bytes are received, the next chunk starts "
                            "there");
    if (off < u->received) {
        if (n > u->received - off)
            throw Error(FAISSX_E_INVALID,
                        range + " overlaps the " +
                                std::to_string(u->received) +
                                " bytes already received (the next chunk "
                                "starts at " + std::to_string(u->received) +
                                ")");
        if (std::memcmp(u->bytes.get() + off, p, n) != 0)
            throw Error(FAISSX_E_INVALID,
                        range + " differs from the bytes already received "
                                "there");
    } else {
        std::memcpy(u->bytes.get() + off, p, n);
        u->received += n;
    }
    u->last_ms = now_ms();
    fx_w_u64(w, u->received);
}

void op_upload_commit(Req& q, fx_wbuf* w) {
    need_write(q);
    uint64_t id = rd_u64(q);
    std::string name = rd_name(q);
    end(q);
    check_name(name);
    std::shared_ptr<Upload> u;
    try {
        u = find_upload(q, id);
    } catch (const Error&) {
        // The upload is gone: committed, aborted, discarded, or lost with
        // a restart. A retry of the COMMIT that made a durable index (its
        // reply lost with the restart) gets that index's info, as a
        // retried named UPLOAD does; otherwise the client uploads again
        // (docs/protocol.md, "Chunked upload").
        if (!name.empty() && durable(q.s)) {
            std::lock_guard<std::mutex> sl(q.s->store_mu);
            if (EntryP done = created_by_this_request(q, name)) {
                std::shared_lock<std::shared_mutex> l(*done->mu);
                write_info(w, done.get());
                return;
            }
        }
        throw;
    }
    {
        std::lock_guard<std::mutex> g(u->mu);
        if (u->received < u->total)
            throw Error(FAISSX_E_INVALID,
                        "upload " + std::to_string(id) + " is incomplete: " +
                                std::to_string(u->received) + " of " +
                                std::to_string(u->total) +
                                " bytes received");
    }
    // Complete: it leaves the table now (a later chunk or commit is for an
    // unknown upload), and its bytes are freed once read, whatever the
    // outcome.
    {
        std::lock_guard<std::mutex> g(q.s->up_mu);
        if (!take_upload_locked(q.s, id))
            throw Error(FAISSX_E_NOT_FOUND, upload_unknown(id));
    }
    struct Release {
        fx_state* s;
        std::shared_ptr<Upload> u;
        ~Release() { release_upload(s, u); }
    } rel{q.s, u};
    if (u->kind == FX_UPLOAD_BINARY)
        install_uploaded_binary(q, w, name, u->bytes.get(), u->total);
    else
        install_uploaded(q, w, name, u->bytes.get(), u->total);
}

/* ---- chunked download ----
 * BEGIN serializes the index; when it fits in one reply it is all there
 * and nothing is kept, else it is staged (against the same per-tenant
 * limit as uploads) for CHUNK to read and END to drop. A retried BEGIN
 * (same request id) finds what its first copy staged. */
void op_download_begin(Req& q, fx_wbuf* w) {
    uint64_t handle = rd_u64(q);
    int64_t kind = rd_i64(q);
    end(q);
    if (kind != FX_UPLOAD_INDEX && kind != FX_UPLOAD_BINARY)
        throw Error(FAISSX_E_INVALID, "unknown download kind " +
                                              std::to_string(kind) +
                                              " (0: index, 1: binary index)");
    fx_state* s = q.s;
    uint64_t mc = max_chunk(s);
    std::shared_ptr<Upload> u;
    if (q.request_id) {
        std::lock_guard<std::mutex> g(s->up_mu);
        for (auto& kv : s->uploads) {
            Upload* v = kv.second.get();
            if (v->download && v->begin_rid == q.request_id &&
                v->tenant == q.tenant && v->client_id == q.client_id)
                u = kv.second;
        }
    }
    if (!u) {
        EntryP e = lookup_kind(s, q.tenant, handle, kind == FX_UPLOAD_BINARY);
        std::vector<uint8_t> bytes = serialize_entry(e.get());
        if (bytes.size() <= mc) { // all of it now, nothing staged
            fx_w_u64(w, bytes.size());
            fx_w_u64(w, 0);
            fx_w_u64(w, mc);
            fx_w_array(w, bytes.data(), bytes.size(), 1);
            return;
        }
        u = std::make_shared<Upload>();
        u->tenant = q.tenant;
        u->client_id = q.client_id;
        u->conn_id = q.conn_id;
        u->kind = (int)kind;
        u->download = true;
        u->begin_rid = q.request_id;
        u->total = u->received = bytes.size();
        u->out.swap(bytes);
        u->last_ms = now_ms();
        stage(q, u, "download");
    }
    u->last_ms = now_ms();
    std::lock_guard<std::mutex> g(u->mu); // END or the reaper may free it
    if (u->out.size() != u->total)
        throw Error(FAISSX_E_NOT_FOUND, download_unknown(u->id));
    fx_w_u64(w, u->total);
    fx_w_u64(w, u->id);
    fx_w_u64(w, mc);
    fx_w_array(w, u->out.data(), std::min<uint64_t>(mc, u->total), 1);
}

void op_download_chunk(Req& q, fx_wbuf* w) {
    uint64_t id = rd_u64(q), off = rd_u64(q), max = rd_u64(q);
    end(q);
    auto u = find_upload(q, id, true);
    std::lock_guard<std::mutex> g(u->mu); // END or the reaper may free it
    if (u->out.size() != u->total)
        throw Error(FAISSX_E_NOT_FOUND, download_unknown(id));
    if (off >= u->total)
        throw Error(FAISSX_E_INVALID,
                    "offset " + std::to_string(off) + " of download " +
                            std::to_string(id) + " is beyond its " +
                            std::to_string(u->total) + " bytes");
    uint64_t n = std::min(u->total - off, max_chunk(q.s));
    if (max) n = std::min(n, max);
    u->last_ms = now_ms();
    fx_w_array(w, u->out.data() + off, n, 1);
}

/* Ends a download; ending one that is not (any more) there is not an
 * error, so a retry is harmless. */
void op_download_end(Req& q, fx_wbuf* w) {
    (void)w;
    uint64_t id = rd_u64(q);
    end(q);
    std::shared_ptr<Upload> u;
    {
        std::lock_guard<std::mutex> g(q.s->up_mu);
        auto it = q.s->uploads.find(id);
        if (it != q.s->uploads.end() && it->second->download &&
            it->second->tenant == q.tenant &&
            it->second->client_id == q.client_id)
            u = take_upload_locked(q.s, id);
    }
    release_upload(q.s, u);
}

void op_upload_abort(Req& q, fx_wbuf* w) {
    (void)w;
    need_write(q);
    uint64_t id = rd_u64(q);
    end(q);
    find_upload(q, id); // tenant and client check
    std::shared_ptr<Upload> u;
    {
        std::lock_guard<std::mutex> g(q.s->up_mu);
        u = take_upload_locked(q.s, id);
    }
    if (!u) throw Error(FAISSX_E_NOT_FOUND, upload_unknown(id));
    release_upload(q.s, u);
}

/* Copies of a server-side index, through the C API (its checks and
 * messages). */
faiss::Index* clone_of(faiss::Index* ix) {
    FaissIndex* out = nullptr;
    api(faiss_clone_index(reinterpret_cast<FaissIndex*>(ix), &out));
    return fx::index(out);
}
faiss::IndexBinary* clone_of(faiss::IndexBinary* ix) {
    FaissIndexBinary* out = nullptr;
    api(faissx_clone_index_binary(reinterpret_cast<FaissIndexBinary*>(ix),
                                  &out));
    return fx::bindex(out);
}

/* CLONE (float or binary; ix: src's index or bindex): an unnamed
 * in-memory copy, also of a stored index. */
template <class Ix>
void clone_entry(Req& q, fx_wbuf* w, Entry* src, Ix* ix) {
    std::unique_ptr<Ix> out;
    {
        std::shared_lock<std::shared_mutex> l(*src->mu);
        target_of(src, ix, [&](Ix* in) { out.reset(clone_of(in)); });
    }
    install_index(q, w, std::move(out), "");
}

void op_clone(Req& q, fx_wbuf* w) {
    need_write(q);
    EntryP src = lookup(q.s, q.tenant, rd_u64(q));
    end(q);
    clone_entry(q, w, src.get(), src->index.get());
}

void op_merge(Req& q, fx_wbuf* w) {
    need_write(q);
    EntryP a = lookup(q.s, q.tenant, rd_u64(q));
    EntryP b = lookup(q.s, q.tenant, rd_u64(q));
    int64_t add_id = rd_i64(q);
    end(q);
    if (a == b) throw Error(FAISSX_E_INVALID, "cannot merge an index into itself");
    refuse_stored(a.get(), "merge_from");
    refuse_stored(b.get(), "merge_from (which empties the source)");
    // Lock in handle order so two opposite merges cannot deadlock.
    Entry* first = a->handle < b->handle ? a.get() : b.get();
    Entry* second = first == a.get() ? b.get() : a.get();
    std::unique_lock<std::shared_mutex> l1(*first->mu);
    std::unique_lock<std::shared_mutex> l2;
    if (second->mu != first->mu)
        l2 = std::unique_lock<std::shared_mutex>(*second->mu);
    try {
        a->index->merge_from(*b->index, add_id);
    } catch (const faiss::FaissException& ex) {
        throw Error(FAISSX_E_FAISS, ex.what());
    }
    write_state(w, a->index.get());
    if (q.state) write_state(w, b->index.get()); // merge_from emptied it
}

std::unique_ptr<faiss::VectorTransform> read_transform(const void* p,
                                                       uint64_t nbytes);

void op_wrap(Req& q, fx_wbuf* w) {
    need_write(q);
    EntryP child = lookup(q.s, q.tenant, rd_u64(q));
    int64_t type = rd_i64(q);
    // A wrapper would change the stored index through faiss, not its log.
    refuse_stored(child.get(), "wrapping");
    std::unique_lock<std::shared_mutex> l(*child->mu);
    faiss::Index* c = child->index.get();
    // faiss itself refuses what must be empty (an IDMap's sub-index); an
    // IVF may reuse a trained quantizer, as in a local program.
    std::unique_ptr<faiss::Index> comp;
    std::unique_ptr<faiss::VectorTransform> wrap_vt;
    switch (type) {
    case FX_WRAP_IVFFLAT:
    case FX_WRAP_IVFSQ: {
        int64_t d = rd_i64(q), nlist = rd_i64(q);
        int64_t qt = type == FX_WRAP_IVFSQ ? rd_i64(q) : 0;
        int64_t metric = rd_i64(q);
        int64_t resid = type == FX_WRAP_IVFSQ ? rd_i64(q) : 0;
        end(q);
        if (d != c->d)
            throw Error(FAISSX_E_INVALID, "quantizer dimension " +
                                                  std::to_string(c->d) +
                                                  " differs from d = " +
                                                  std::to_string(d));
        if (nlist <= 0 || nlist > (int64_t)1 << 30)
            throw Error(FAISSX_E_INVALID, "nlist must be in [1, 2^30]");
        if (fx::check_metric("wrap", (int)metric) != 0)
            throw Error(FAISSX_E_INVALID, "unknown metric type");
        if (type == FX_WRAP_IVFFLAT) {
            comp.reset(new faiss::IndexIVFFlat(
                    c, d, nlist, static_cast<faiss::MetricType>(metric)));
        } else {
            if (qt < 0 || qt > faiss::ScalarQuantizer::QT_6bit)
                throw Error(FAISSX_E_INVALID, "unknown quantizer type");
            comp.reset(new faiss::IndexIVFScalarQuantizer(
                    c, d, nlist,
                    static_cast<faiss::ScalarQuantizer::QuantizerType>(qt),
                    static_cast<faiss::MetricType>(metric), resid != 0));
        }
        break;
    }
    case FX_WRAP_IDMAP:
    case FX_WRAP_IDMAP2:
        end(q);
        if (c->ntotal != 0)
            throw Error(FAISSX_E_INVALID, "the wrapped index must be empty "
                                          "(ntotal = " + std::to_string(c->ntotal) + ")");
        if (type == FX_WRAP_IDMAP)
            comp.reset(new faiss::IndexIDMap(c));
        else
            comp.reset(new faiss::IndexIDMap2(c));
        break;
    case FX_WRAP_REFINE_FLAT:
        end(q);
        // faiss's IndexRefine constructor throws on a non-empty base after
        // IndexRefineFlat has allocated the refine index, leaking it.
        if (c->ntotal != 0)
            throw Error(FAISSX_E_INVALID, "the wrapped index must be empty "
                                          "(ntotal = " + std::to_string(c->ntotal) + ")");
        try {
            comp.reset(new faiss::IndexRefineFlat(c));
        } catch (const faiss::FaissException& ex) {
            throw Error(FAISSX_E_INVALID, ex.what());
        }
        break;
    case FX_WRAP_PRETRANSFORM: {
        std::unique_ptr<faiss::VectorTransform> keep_vt;
        const void* p;
        uint64_t nbytes;
        fx_r_array(&q.r, 1, UINT64_MAX, &p, &nbytes);
        check(&q.r);
        end(q);
        auto pt = std::make_unique<faiss::IndexPreTransform>(c);
        if (nbytes) {
            std::unique_ptr<faiss::VectorTransform> vt = read_transform(p, nbytes);
            if (vt->d_out != c->d)
                throw Error(FAISSX_E_INVALID, "transform output dimension "
                                              "differs from the index's");
            pt->prepend_transform(vt.get());
            // faiss's own_fields would free the child index too, so the
            // entry owns the transform instead.
            keep_vt = std::move(vt);
        }
        comp = std::move(pt);
        wrap_vt = std::move(keep_vt);
        break;
    }
    default:
        throw Error(FAISSX_E_INVALID, "unknown wrap type " + std::to_string(type));
    }
    auto e = std::make_shared<Entry>();
    e->deps.push_back(child);
    if (wrap_vt) e->transforms.push_back(std::move(wrap_vt));
    e->index = std::move(comp);
    e->mu = child->mu; // one data structure, one lock
    l.unlock();
    insert_reply(q, w, e);
}

/* ---- composites (FX_OP_COMPOSITE) ---- */

/* A VectorTransform from faiss bytes sent by a client. */
std::unique_ptr<faiss::VectorTransform> read_transform(const void* p,
                                                       uint64_t nbytes) {
    if (nbytes == 0) throw Error(FAISSX_E_INVALID, "empty transform");
    faiss::VectorIOReader in;
    in.data.assign(static_cast<const uint8_t*>(p),
                   static_cast<const uint8_t*>(p) + nbytes);
    std::unique_ptr<faiss::VectorTransform> vt;
    try {
        vt.reset(faiss::read_VectorTransform(&in));
    } catch (const std::exception& ex) {
        throw Error(FAISSX_E_IO, std::string("bad transform: ") + ex.what());
    }
    if (in.rp != in.data.size())
        throw Error(FAISSX_E_IO, "bad transform: trailing bytes");
    return vt;
}

faiss::IndexPreTransform* pretransform_of(Entry* e) {
    auto pt = dynamic_cast<faiss::IndexPreTransform*>(e->index.get());
    if (!pt)
        throw Error(FAISSX_E_INVALID,
                    "index handle " + std::to_string(e->handle) + " is a " +
                            class_name(e->index.get()) +
                            ", not an IndexPreTransform");
    return pt;
}

/* The inner index of a composite that the FX_KIND_* bit `kind` names. */
faiss::Index* inner_of(faiss::Index* ix, int64_t kind) {
    switch (kind) {
    case FX_KIND_PRETRANSFORM:
        if (auto p = dynamic_cast<faiss::IndexPreTransform*>(ix)) return p->index;
        break;
    case FX_KIND_IDMAP:
    case FX_KIND_IDMAP2:
        if (auto m = dynamic_cast<faiss::IndexIDMap*>(ix)) return m->index;
        break;
    case FX_KIND_IVF:
        if (auto v = dynamic_cast<faiss::IndexIVF*>(ix)) return v->quantizer;
        break;
    case FX_KIND_REFINE:
        if (auto r = dynamic_cast<faiss::IndexRefine*>(ix)) return r->base_index;
        break;
    default:
        throw Error(FAISSX_E_INVALID,
                    "unknown inner index kind " + std::to_string(kind));
    }
    throw Error(FAISSX_E_INVALID, "the index is a " + class_name(ix) +
                                          ", which has no inner index of "
                                          "kind " + std::to_string(kind));
}

void op_composite(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    int64_t op = rd_i64(q);
    switch (op) {
    case FX_COMP_PREPEND: {
        need_write(q);
        const void* p;
        uint64_t nbytes;
        fx_r_array(&q.r, 1, UINT64_MAX, &p, &nbytes);
        check(&q.r);
        end(q);
        // The store logs no chain change.
        refuse_stored(e.get(), "prepend_transform");
        std::unique_ptr<faiss::VectorTransform> vt = read_transform(p, nbytes);
        std::unique_lock<std::shared_mutex> l(*e->mu);
        faiss::IndexPreTransform* pt = pretransform_of(e.get());
        if (vt->d_out != pt->d)
            throw Error(FAISSX_E_INVALID,
                        "transform output dimension " +
                                std::to_string(vt->d_out) +
                                " differs from the chain's input dimension " +
                                std::to_string(pt->d));
        e->transforms.reserve(e->transforms.size() + 1);
        pt->prepend_transform(vt.get());
        // A chain with own_fields (factory, upload, clone) frees its
        // transforms itself; one built by WRAP leaves them to the entry.
        if (pt->own_fields)
            (void)vt.release();
        else
            e->transforms.push_back(std::move(vt));
        write_info(w, e.get());
        return;
    }
    case FX_COMP_INNER: {
        need_write(q); // a new handle, which only a writer may RELEASE
        int64_t kind = rd_i64(q);
        end(q);
        // A handle inside a stored index would change it behind its log.
        refuse_stored(e.get(), "a handle on an inner index");
        std::shared_lock<std::shared_mutex> l(*e->mu);
        faiss::Index* in = inner_of(e->index.get(), kind);
        if (!in)
            throw Error(FAISSX_E_INVALID, "the composite has no inner index");
        auto v = std::make_shared<Entry>();
        v->deps.push_back(e);
        v->index.reset(in);
        v->borrowed = true;
        v->mu = e->mu; // one data structure, one lock
        l.unlock();
        insert_reply(q, w, v);
        return;
    }
    case FX_COMP_CHAIN: {
        end(q);
        std::shared_lock<std::shared_mutex> l(*e->mu);
        std::vector<faiss::VectorIOWriter> bytes;
        uint64_t total = 0;
        target(e.get(), [&](faiss::Index* in) {
            auto pt = dynamic_cast<faiss::IndexPreTransform*>(in);
            if (!pt)
                throw Error(FAISSX_E_INVALID,
                            "index handle " + std::to_string(e->handle) +
                                    " is a " + class_name(in) +
                                    ", not an IndexPreTransform");
            bytes.resize(pt->chain.size());
            for (size_t i = 0; i < pt->chain.size(); i++) {
                faiss::write_VectorTransform(pt->chain[i], &bytes[i]);
                total += bytes[i].data.size() + 16;
            }
        });
        reply_fits(q, total, 1);
        fx_w_u64(w, bytes.size());
        for (auto& b : bytes) fx_w_array(w, b.data.data(), b.data.size(), 1);
        return;
    }
    default:
        throw Error(FAISSX_E_UNSUPPORTED,
                    "unknown composite operation " + std::to_string(op));
    }
}

void fetch(Req& q, fx_wbuf* w, faiss::Index* ix, const std::string& what,
           int64_t arg);

void op_fetch(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    std::string what = rd_str(q, 32);
    int64_t arg = rd_i64(q);
    end(q);
    std::shared_lock<std::shared_mutex> l(*e->mu);
    target(e.get(), [&](faiss::Index* ix) { fetch(q, w, ix, what, arg); });
}

void fetch(Req& q, fx_wbuf* w, faiss::Index* ix, const std::string& what,
           int64_t arg) {
    if (what == "xb") {
        auto f = dynamic_cast<faiss::IndexFlat*>(ix);
        if (!f) throw Error(FAISSX_E_UNSUPPORTED, "xb: not a flat index");
        reply_fits(q, f->codes.size(), 1);
        fx_w_i64(w, sizeof(float));
        fx_w_array(w, f->codes.data(), f->codes.size(), 1);
    } else if (what == "id_map") {
        auto m = dynamic_cast<faiss::IndexIDMap*>(ix);
        if (!m) throw Error(FAISSX_E_UNSUPPORTED, "id_map: not an IDMap index");
        reply_fits(q, m->id_map.size(), sizeof(idx));
        fx_w_i64(w, sizeof(idx));
        fx_w_array(w, m->id_map.data(), m->id_map.size() * sizeof(idx), 1);
    } else if (what == "list_sizes" || what == "list_ids") {
        auto ivf = dynamic_cast<faiss::IndexIVF*>(ix);
        if (!ivf) throw Error(FAISSX_E_UNSUPPORTED, what + ": not an IVF index");
        if (what == "list_sizes") {
            std::vector<uint64_t> sz(ivf->nlist);
            for (size_t i = 0; i < ivf->nlist; i++)
                sz[i] = ivf->invlists->list_size(i);
            fx_w_i64(w, 8);
            fx_w_array(w, sz.data(), sz.size() * 8, 1);
        } else {
            if (arg < 0 || (size_t)arg >= ivf->nlist)
                throw Error(FAISSX_E_INVALID,
                            "list_no " + std::to_string(arg) + " >= nlist " +
                                    std::to_string(ivf->nlist));
            size_t n = ivf->invlists->list_size(arg);
            faiss::InvertedLists::ScopedIds ids(ivf->invlists, arg);
            fx_w_i64(w, sizeof(idx));
            fx_w_array(w, ids.get(), n * sizeof(idx), 1);
        }
    } else {
        throw Error(FAISSX_E_UNSUPPORTED, "cannot fetch '" + what + "'");
    }
}

/* search_preassigned's assign or centroid_dis: n * np elements, np =
 * min(nprobe, nlist) of ivf now. */
template <class T>
const T* rd_probes(Req& q, int64_t n, size_t np, const faiss::IndexIVF* ivf,
                   const char* what) {
    const void* p;
    uint64_t c;
    fx_r_array(&q.r, sizeof(T), UINT64_MAX / sizeof(T), &p, &c);
    check(&q.r);
    if (c != (uint64_t)n * np) {
        std::string m = std::string(what) + " has " + std::to_string(c) +
                        " elements, expected n * min(nprobe, nlist) = " +
                        std::to_string(n) + " * " + std::to_string(np) +
                        " (nprobe " + std::to_string(ivf->nprobe) +
                        ", nlist " + std::to_string(ivf->nlist) + ")";
        if (n > 0 && c % (uint64_t)n == 0)
            m += ": the call was sized for nprobe " +
                 std::to_string(c / (uint64_t)n) +
                 "; nprobe was changed (by another client?) since this "
                 "client last read it: read it again "
                 "(faiss_IndexIVF_nprobe) and size assign by it";
        throw Error(FAISSX_E_INVALID, m);
    }
    return static_cast<const T*>(aligned(q, p, c, sizeof(T)));
}

/* The IVF operation `op` on ix (other_ix: COPY_SUBSET_TO's destination),
 * with the locks taken. */
void ivf_op(Req& q, fx_wbuf* w, int64_t op, faiss::Index* ix,
            faiss::Index* other_ix) {
    auto ivf = dynamic_cast<faiss::IndexIVF*>(ix);
    if (!ivf) throw Error(FAISSX_E_UNSUPPORTED, "not an IVF index");
    auto H = reinterpret_cast<FaissIndexIVF*>(ix);
    int d = ivf->d;
    switch (op) {
    case FX_IVF_MAKE_DIRECT_MAP: {
        int64_t on = rd_i64(q);
        end(q);
        api(faiss_IndexIVF_make_direct_map(H, on != 0));
        write_state(w, ivf);
        return;
    }
    case FX_IVF_IMBALANCE:
        end(q);
        fx_w_f64(w, faiss_IndexIVF_imbalance_factor(H));
        return;
    case FX_IVF_SEARCH_PREASSIGNED: {
        int64_t n = rd_n(q), k = rd_i64(q), store_pairs = rd_i64(q);
        if (k <= 0 || k > q.s->conf.max_k)
            throw Error(FAISSX_E_INVALID, "k out of range");
        size_t np = std::min(ivf->nprobe, ivf->nlist);
        const float* x = rd_array<float>(q, (uint64_t)n * d, "x");
        // The client sized assign by the nprobe it last saw (index info,
        // its own set or get): another client may have changed it since.
        const idx* assign = rd_probes<idx>(q, n, np, ivf, "assign");
        const float* cd = rd_probes<float>(q, n, np, ivf, "centroid_dis");
        end(q);
        uint64_t nk = (uint64_t)n * k;
        reply_fits(q, nk, 12);
        size_t offD = w->len + 8;
        if (!fx_w_array_reserve(w, nk, sizeof(float))) throw std::bad_alloc();
        size_t offI = w->len + 8;
        if (!fx_w_array_reserve(w, nk, sizeof(idx))) throw std::bad_alloc();
        api(faiss_IndexIVF_search_preassigned(
                H, n, x, k, assign, cd, reinterpret_cast<float*>(w->data + offD),
                reinterpret_cast<idx*>(w->data + offI), store_pairs != 0));
        return;
    }
    case FX_IVF_ADD_CORE: {
        int64_t n = rd_n(q);
        const float* x = rd_array<float>(q, (uint64_t)n * d, "x");
        int64_t has_ids = rd_i64(q);
        const idx* ids = rd_array<idx>(q, has_ids ? (uint64_t)n : 0, "ids");
        const idx* lists = rd_array<idx>(q, (uint64_t)n, "list numbers");
        end(q);
        api(fx::ivf_add_core_checked("add_core", ivf, n, x,
                                     has_ids ? ids : nullptr, lists));
        write_state(w, ivf);
        return;
    }
    case FX_IVF_UPDATE_VECTORS: {
        int64_t n = rd_n(q);
        const idx* ids = rd_array<idx>(q, (uint64_t)n, "idx");
        const float* v = rd_array<float>(q, (uint64_t)n * d, "v");
        end(q);
        auto flat = dynamic_cast<faiss::IndexIVFFlat*>(ivf);
        if (!flat) throw Error(FAISSX_E_UNSUPPORTED, "not an IVFFlat index");
        std::vector<idx> copy(ids, ids + n);
        api(faiss_IndexIVFFlat_update_vectors(
                reinterpret_cast<FaissIndexIVFFlat*>(ix), (int)n,
                copy.data(), v));
        write_state(w, ivf);
        return;
    }
    case FX_IVF_COPY_SUBSET_TO: {
        int64_t type = rd_i64(q), a1 = rd_i64(q), a2 = rd_i64(q);
        end(q);
        api(faiss_IndexIVF_copy_subset_to(
                H, reinterpret_cast<FaissIndexIVF*>(other_ix), (int)type,
                a1, a2));
        write_state(w, ivf);
        if (q.state) write_state(w, other_ix);
        return;
    }
    case FX_IVF_TRAIN_RESIDUAL: {
        int64_t n = rd_n(q);
        const float* x = rd_array<float>(q, (uint64_t)n * d, "x");
        end(q);
        auto sq = dynamic_cast<faiss::IndexIVFScalarQuantizer*>(ivf);
        if (!sq) throw Error(FAISSX_E_UNSUPPORTED, "not an IVFScalarQuantizer");
        api(faiss_IndexIVFScalarQuantizer_train_residual(
                reinterpret_cast<FaissIndexIVFScalarQuantizer*>(ix), n, x));
        write_state(w, ivf);
        return;
    }
    default:
        throw Error(FAISSX_E_UNSUPPORTED, "unknown IVF operation " + std::to_string(op));
    }
}

void op_ivf(Req& q, fx_wbuf* w) {
    EntryP e = lookup(q.s, q.tenant, rd_u64(q));
    int64_t op = rd_i64(q);
    bool writes = op != FX_IVF_IMBALANCE && op != FX_IVF_SEARCH_PREASSIGNED;
    if (writes) need_write(q);
    EntryP other;
    if (op == FX_IVF_COPY_SUBSET_TO) other = lookup(q.s, q.tenant, rd_u64(q));
    if (writes) refuse_stored(e.get(), "this IVF operation");
    if (other) refuse_stored(other.get(), "copy_subset_to");
    if (e->stored) { // the reads: on the index behind the store handle
        std::shared_lock<std::shared_mutex> rl(*e->mu);
        target(e.get(), [&](faiss::Index* in) { ivf_op(q, w, op, in, nullptr); });
        return;
    }
    std::shared_lock<std::shared_mutex> rl;
    std::unique_lock<std::shared_mutex> wl, wl2;
    if (other && other->mu != e->mu) {
        // Two indexes: lock in handle order, as MERGE_FROM does, so two
        // opposite copies cannot deadlock.
        Entry* first = e->handle < other->handle ? e.get() : other.get();
        Entry* second = first == e.get() ? other.get() : e.get();
        wl = std::unique_lock<std::shared_mutex>(*first->mu);
        wl2 = std::unique_lock<std::shared_mutex>(*second->mu);
    } else if (writes) {
        wl = std::unique_lock<std::shared_mutex>(*e->mu);
    } else {
        rl = std::shared_lock<std::shared_mutex>(*e->mu);
    }
    ivf_op(q, w, op, e->index.get(), other ? other->index.get() : nullptr);
}

/* ---- binary indexes (FX_OP_BINARY) ----
 * The same shape as the float operations above, on Entry::bindex, through
 * the IndexBinary C API (so validation and messages are the library's). */

bool binary_reads(int64_t op) {
    switch (op) {
    case FX_BIN_INFO: case FX_BIN_SEARCH: case FX_BIN_RANGE_SEARCH:
    case FX_BIN_RECONSTRUCT_N: case FX_BIN_RECONSTRUCT_KEYS:
    case FX_BIN_GET_PARAM: case FX_BIN_SERIALIZE:
        return true;
    default:
        return false;
    }
}

FaissIndexBinary* bh(Entry* e) {
    return reinterpret_cast<FaissIndexBinary*>(e->bindex.get());
}

void bin_create(Req& q, fx_wbuf* w) {
    need_write(q);
    std::string name = rd_name(q);
    int64_t d = rd_i64(q);
    std::string desc = rd_str(q, kMaxDescription);
    end(q);
    check_new(name, d);
    FaissIndexBinary* ix = nullptr;
    api(faiss_index_binary_factory(&ix, (int)d, desc.c_str()));
    install_index(q, w, std::unique_ptr<faiss::IndexBinary>(fx::bindex(ix)),
                  name, nullptr, desc.c_str());
}

void install_uploaded_binary(Req& q, fx_wbuf* w, const std::string& name,
                             const void* p, uint64_t n) {
    check_name(name);
    std::unique_ptr<faiss::IndexBinary> ix(
            read_uploaded<faiss::IndexBinary>(p, n, "faiss binary index"));
    install_index(q, w, std::move(ix), name);
}

void bin_upload(Req& q, fx_wbuf* w) {
    upload_whole(q, w, install_uploaded_binary);
}

/* faissx_IndexBinaryIVF_new over a remote quantizer: the IVF shares the
 * quantizer's server object (it does not own it: the quantizer's entry
 * does, and the IVF's entry keeps that alive). */
void bin_wrap_ivf(Req& q, fx_wbuf* w) {
    need_write(q);
    EntryP qe = lookup_kind(q.s, q.tenant, rd_u64(q), true);
    int64_t d = rd_i64(q), nlist = rd_i64(q);
    end(q);
    // The IVF would change the quantizer (training adds the centroids)
    // behind its handle's back.
    refuse_stored(qe.get(), "building an IVF over it");
    std::unique_ptr<faiss::IndexBinary> ivf;
    {
        std::unique_lock<std::shared_mutex> l(*qe->mu);
        faiss::IndexBinary* quant = qe->bindex.get();
        if (d <= 0 || d > kMaxDim || d % 8 != 0)
            throw Error(FAISSX_E_INVALID,
                        "binary dimension d must be a multiple of 8 in [8, " +
                                std::to_string(kMaxDim) + "] (got " +
                                std::to_string(d) + ")");
        if (nlist <= 0 || nlist > (int64_t)1 << 30)
            throw Error(FAISSX_E_INVALID, "nlist must be > 0 (and <= 2^30)");
        if (quant->d != d)
            throw Error(FAISSX_E_INVALID,
                        "quantizer dimension " + std::to_string(quant->d) +
                                " differs from d = " + std::to_string(d));
        ivf.reset(new faiss::IndexBinaryIVF(quant, (size_t)d, (size_t)nlist));
    }
    install_index(q, w, std::move(ivf), "", qe);
}

void bin_param(Req& q, fx_wbuf* w, Entry* e, bool set) {
    std::string name = rd_str(q, kMaxParamName);
    double v = set ? rd_f64(q) : 0;
    end(q);
    if (set) need_write_param(q, name);
    if (set && e->stored) {
        // Logged, acknowledged once durable (the store validates the name
        // against the index behind the handle).
        if (!std::isfinite(v))
            throw Error(FAISSX_E_INVALID,
                        "value of '" + name + "' is not finite");
        WriteLock l(e);
        fx::store::set_param(e->bindex.get(), name.c_str(), v);
        write_state_of(w, e);
        return;
    }
    if (set) {
        faiss::IndexBinary* ix = e->bindex.get();
        auto ivf = dynamic_cast<faiss::IndexBinaryIVF*>(ix);
        auto hnsw = dynamic_cast<faiss::IndexBinaryHNSW*>(ix);
        if (!std::isfinite(v))
            throw Error(FAISSX_E_INVALID,
                        "value of '" + name + "' is not finite");
        std::unique_lock<std::shared_mutex> l(*e->mu);
        if (name == "verbose") {
            ix->verbose = v != 0;
        } else if (name == "nprobe" && ivf) {
            if (v < 0 || v > 1e15)
                throw Error(FAISSX_E_INVALID, "nprobe out of range");
            ivf->nprobe = (size_t)v;
        } else if (name == "efSearch" && hnsw) {
            if (v < INT32_MIN || v > INT32_MAX)
                throw Error(FAISSX_E_INVALID, "efSearch out of range");
            api(faissx_IndexBinaryHNSW_set_efSearch(bh(e), (int)v));
        } else {
            throw Error(FAISSX_E_UNSUPPORTED, "cannot set parameter '" + name +
                                                      "' on " + class_name(ix));
        }
        write_state(w, ix);
        return;
    }
    std::shared_lock<std::shared_mutex> l(*e->mu);
    double out = 0;
    btarget(e, [&](faiss::IndexBinary* ix) {
        auto ivf = dynamic_cast<const faiss::IndexBinaryIVF*>(ix);
        auto hnsw = dynamic_cast<const faiss::IndexBinaryHNSW*>(ix);
        if (name == "verbose")
            out = ix->verbose;
        else if (name == "nprobe" && ivf)
            out = (double)ivf->nprobe;
        else if (name == "nlist" && ivf)
            out = (double)ivf->nlist;
        else if (name == "efSearch" && hnsw)
            out = hnsw->hnsw.efSearch;
        else
            throw Error(FAISSX_E_UNSUPPORTED, "parameter '" + name +
                                                      "' is not readable on " +
                                                      class_name(ix));
    });
    fx_w_f64(w, out);
}

void op_binary(Req& q, fx_wbuf* w) {
    int64_t op = rd_i64(q);
    switch (op) {
    case FX_BIN_CREATE: return bin_create(q, w);
    case FX_BIN_UPLOAD: return bin_upload(q, w);
    case FX_BIN_WRAP_IVF: return bin_wrap_ivf(q, w);
    default: break;
    }
    if (op <= 0 || op >= FX_BIN_MAX_)
        throw Error(FAISSX_E_UNSUPPORTED,
                    "unknown binary operation " + std::to_string(op));
    // SET_PARAM checks the key itself, to name the parameter.
    if (!binary_reads(op) && op != FX_BIN_SET_PARAM) need_write(q);
    EntryP e = lookup_kind(q.s, q.tenant, rd_u64(q), true);
    faiss::IndexBinary* ix = e->bindex.get();
    FaissIndexBinary* H = bh(e.get());
    // Fixed at construction: d / 8 for every binary index (faiss 1.7.3's
    // IndexBinaryIDMap leaves its code_size 0: d tells it).
    const uint64_t cs = (uint64_t)ix->d / 8;
    switch (op) {
    case FX_BIN_ADD_STREAM: return bin_add_stream(q, w, e);
    case FX_BIN_INFO: {
        end(q);
        std::shared_lock<std::shared_mutex> l(*e->mu);
        write_info(w, e.get());
        return;
    }
    case FX_BIN_TRAIN:
    case FX_BIN_ADD:
    case FX_BIN_ADD_WITH_IDS:
        return change_vectors<uint8_t>(
                q, w, e.get(), cs, op == FX_BIN_ADD_WITH_IDS,
                [&](int64_t n, const uint8_t* x, const idx* ids) {
                    if (op == FX_BIN_TRAIN)
                        api(faiss_IndexBinary_train(H, n, x));
                    else if (op == FX_BIN_ADD)
                        api(faiss_IndexBinary_add(H, n, x));
                    else
                        api(faiss_IndexBinary_add_with_ids(H, n, x, ids));
                });
    case FX_BIN_SEARCH: {
        int64_t n = rd_n(q), k = rd_k(q);
        const uint8_t* x = rd_array<uint8_t>(q, (uint64_t)n * cs, "x");
        SearchParams sp;
        rd_search_params(q, &sp);
        end(q);
        uint64_t nk = (uint64_t)n * (uint64_t)k;
        reply_fits(q, nk, sizeof(int32_t) + sizeof(idx));
        size_t offD, offI;
        reserve_knn<int32_t>(w, nk, &offD, &offI);
        std::shared_lock<std::shared_mutex> l(*e->mu);
        if (sp.params)
            api(faissx_IndexBinary_search_with_params(
                    H, n, x, k,
                    reinterpret_cast<const FaissSearchParameters*>(
                            sp.params.get()),
                    reinterpret_cast<int32_t*>(w->data + offD),
                    reinterpret_cast<idx*>(w->data + offI)));
        else
            api(faiss_IndexBinary_search(H, n, x, k,
                                         reinterpret_cast<int32_t*>(w->data + offD),
                                         reinterpret_cast<idx*>(w->data + offI)));
        return;
    }
    case FX_BIN_RANGE_SEARCH: {
        int64_t n = rd_n(q), radius = rd_i64(q);
        if (radius < INT32_MIN || radius > INT32_MAX)
            throw Error(FAISSX_E_INVALID, "radius out of range");
        const uint8_t* x = rd_array<uint8_t>(q, (uint64_t)n * cs, "x");
        end(q);
        faiss::RangeSearchResult res(n);
        {
            std::shared_lock<std::shared_mutex> l(*e->mu);
            api(faiss_IndexBinary_range_search(
                    H, n, x, (int)radius,
                    reinterpret_cast<FaissRangeSearchResult*>(&res)));
        }
        reply_fits(q, res.lims[n], sizeof(idx) + sizeof(float));
        write_range(w, res, n);
        return;
    }
    case FX_BIN_RESET: {
        end(q);
        WriteLock l(e.get());
        api(faiss_IndexBinary_reset(H));
        write_state_of(w, e.get());
        return;
    }
    case FX_BIN_REMOVE_IDS:
        return change_remove(
                q, w, e.get(), [&](FaissIDSelector* sel, size_t* removed) {
                    api(faiss_IndexBinary_remove_ids(H, sel, removed));
                });
    case FX_BIN_RECONSTRUCT_N: {
        int64_t i0 = rd_i64(q), ni = rd_i64(q);
        end(q);
        std::shared_lock<std::shared_mutex> l(*e->mu);
        check_batch(q, ni);
        if (ni <= 0) { // the library's answer (ni < 0: refused)
            api(faiss_IndexBinary_reconstruct_n(H, i0, ni, nullptr));
            fx_w_array(w, nullptr, 0, 1);
            return;
        }
        reply_fits(q, (uint64_t)ni * cs, 1);
        auto out = static_cast<uint8_t*>(
                fx_w_array_reserve(w, (uint64_t)ni * cs, 1));
        if (!out) throw std::bad_alloc();
        api(faiss_IndexBinary_reconstruct_n(H, i0, ni, out));
        return;
    }
    case FX_BIN_RECONSTRUCT_KEYS: {
        uint64_t n;
        const idx* keys = rd_keys(q, &n);
        end(q);
        reply_fits(q, n * cs, 1);
        auto out = static_cast<uint8_t*>(fx_w_array_reserve(w, n * cs, 1));
        if (!out && n) throw std::bad_alloc();
        std::shared_lock<std::shared_mutex> l(*e->mu);
        for (uint64_t i = 0; i < n; i++)
            api(faiss_IndexBinary_reconstruct(H, keys[i], out + i * cs));
        return;
    }
    case FX_BIN_SET_PARAM: return bin_param(q, w, e.get(), true);
    case FX_BIN_GET_PARAM: return bin_param(q, w, e.get(), false);
    case FX_BIN_SERIALIZE:
        end(q);
        return write_serialized(q, w, e.get());
    case FX_BIN_CLONE:
        end(q);
        return clone_entry(q, w, e.get(), ix);
    default:
        throw Error(FAISSX_E_UNSUPPORTED,
                    "unknown binary operation " + std::to_string(op));
    }
}

void dispatch(Req& q, int op, fx_wbuf* w) {
    switch (op) {
    case FX_OP_PING:
        end(q);
        fx_w_u64(w, (uint64_t)faissx_version());
        fx_w_str(w, q.tenant.c_str());
        if (q.s->shm) { // clients that predate it stop reading before
            uint64_t inst[2];
            fx_shm_server_instance(q.s->shm, inst);
            fx_w_str(w, fx_shm_server_path(q.s->shm));
            fx_w_u64(w, inst[0]);
            fx_w_u64(w, inst[1]);
        }
        return;
    case FX_OP_CREATE: return op_create(q, w);
    case FX_OP_OPEN: return op_open(q, w);
    case FX_OP_LIST: return op_list(q, w);
    case FX_OP_DROP: return op_drop(q, w);
    case FX_OP_RELEASE: return op_release(q, w);
    case FX_OP_INFO: return op_info(q, w);
    case FX_OP_TRAIN:
    case FX_OP_ADD:
    case FX_OP_ADD_WITH_IDS: return op_train_add(q, w, op);
    case FX_OP_SEARCH: return op_search(q, w, false);
    case FX_OP_ASSIGN: return op_search(q, w, true);
    case FX_OP_RANGE_SEARCH: return op_range(q, w);
    case FX_OP_RESET: return op_reset(q, w);
    case FX_OP_REMOVE_IDS: return op_remove(q, w);
    case FX_OP_RECONSTRUCT_N: return op_reconstruct_n(q, w);
    case FX_OP_RECONSTRUCT_KEYS: return op_reconstruct_keys(q, w);
    case FX_OP_RESIDUAL: return op_residual(q, w);
    case FX_OP_SA_CODE_SIZE:
    case FX_OP_SA_ENCODE:
    case FX_OP_SA_DECODE: return op_sa(q, w, op);
    case FX_OP_SET_PARAM: return op_set_param(q, w);
    case FX_OP_GET_PARAM: return op_get_param(q, w);
    case FX_OP_SERIALIZE: return op_serialize(q, w);
    case FX_OP_UPLOAD: return op_upload(q, w);
    case FX_OP_CLONE: return op_clone(q, w);
    case FX_OP_MERGE_FROM: return op_merge(q, w);
    case FX_OP_WRAP: return op_wrap(q, w);
    case FX_OP_FETCH: return op_fetch(q, w);
    case FX_OP_IVF: return op_ivf(q, w);
    case FX_OP_BINARY: return op_binary(q, w);
    case FX_OP_PROGRESS:
    case FX_OP_CANCEL: return op_job(q, w, op);
    case FX_OP_UPLOAD_BEGIN: return op_upload_begin(q, w);
    case FX_OP_UPLOAD_CHUNK: return op_upload_chunk(q, w);
    case FX_OP_UPLOAD_COMMIT: return op_upload_commit(q, w);
    case FX_OP_UPLOAD_ABORT: return op_upload_abort(q, w);
    case FX_OP_DOWNLOAD_BEGIN: return op_download_begin(q, w);
    case FX_OP_DOWNLOAD_CHUNK: return op_download_chunk(q, w);
    case FX_OP_DOWNLOAD_END: return op_download_end(q, w);
    case FX_OP_COMPOSITE: return op_composite(q, w);
    case FX_OP_ADD_STREAM: return op_add_stream(q, w);
    case FX_OP_LIMITS:
        // --test-old-protocol plays a server that predates the op: it
        // answers as such a server's decoder does.
        if (t_old_protocol)
            throw Error(FAISSX_E_UNSUPPORTED,
                        "unknown operation " + std::to_string(op));
        end(q);
        fx_w_u64(w, (uint64_t)q.s->conf.max_message_bytes);
        fx_w_u64(w, (uint64_t)q.s->conf.max_k);
        fx_w_u64(w, (uint64_t)q.s->conf.max_batch);
        return;
    default:
        throw Error(FAISSX_E_UNSUPPORTED, "unknown operation " + std::to_string(op));
    }
}

/* ---- opening the durable store at start ---- */

/* Creates (if needed) and locks data_dir, then restores the stores of the
 * tenants that have keys. Throws fx::Error with the reason. */
void open_data_dir(fx_state* s) {
    const std::string& dir = s->data_dir;
    struct stat st;
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        throw Error(FAISSX_E_IO, "cannot create data directory '" + dir +
                                         "': " + std::strerror(errno));
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw Error(FAISSX_E_IO, "data directory '" + dir +
                                         "' is not a directory");
    std::string lp = dir + "/LOCK";
    int fd = ::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        throw Error(FAISSX_E_IO, "data directory '" + dir +
                                         "' is not writable: cannot create " +
                                         lp + ": " + std::strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = {0};
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        ::close(fd);
        throw Error(FAISSX_E_PERMISSION,
                    "data directory '" + dir +
                            "' is in use by another faissx-server" +
                            (r > 0 ? " (pid " + std::string(pid) + ")" : ""));
    }
    s->lock_fd = fd;
    char pid[32];
    int pn = snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)pn, 0) != pn ||
        fsync(fd) != 0)
        throw Error(FAISSX_E_IO, "data directory '" + dir +
                                         "' is not writable: cannot write " +
                                         lp + ": " + std::strerror(errno));
    // On a case-insensitive file system "acme" and "ACME" would share a
    // directory: refuse rather than mix tenants or indexes.
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat((dir + "/lock").c_str(), &b) == 0 &&
        a.st_ino == b.st_ino && a.st_dev == b.st_dev)
        throw Error(FAISSX_E_INVALID,
                    "data directory '" + dir +
                            "' is on a case-insensitive file system: "
                            "names differing only in case would collide");
    std::string tdir = dir + "/tenants";
    if (mkdir(tdir.c_str(), 0755) != 0 && errno != EEXIST)
        throw Error(FAISSX_E_IO, "cannot create '" + tdir +
                                         "': " + std::strerror(errno));
    // Whose indexes to serve: the tenants that have a key (or "default").
    std::set<std::string> tenants;
    if (s->auth)
        for (auto& kv : s->keys) tenants.insert(kv.second.tenant);
    else
        tenants.insert("default");
    if (DIR* d = opendir(tdir.c_str())) {
        while (struct dirent* de = readdir(d)) {
            std::string t = de->d_name;
            if (t == "." || t == "..") continue;
            if (!valid_tenant(t))
                note(s, "ignored '" + tdir + "/" + t +
                                "': not a tenant name");
            else if (!tenants.count(t))
                note(s, "tenant '" + t +
                                "' has data but no API key: its indexes "
                                "are not served");
        }
        closedir(d);
    } else {
        throw Error(FAISSX_E_IO, "cannot read '" + tdir +
                                         "': " + std::strerror(errno));
    }
    for (const std::string& t : tenants) {
        std::string td = tenant_dir(s, t);
        if (stat(td.c_str(), &st) != 0) continue; // created on first CREATE
        fx::store::Store* store = tenant_store(s, t);
        for (const std::string& name : fx::store::list(store)) {
            auto e = std::make_shared<Entry>();
            try {
                faiss::Index* f = nullptr;
                faiss::IndexBinary* b = nullptr;
                fx::store::open_any(store, name.c_str(), &f, &b);
                e->index.reset(f);
                e->bindex.reset(b);
            } catch (const std::exception& ex) {
                take_report(s, store, t);
                throw Error(FAISSX_E_IO,
                            "cannot restore index '" + name + "' of tenant '" +
                                    t + "': " + ex.what() +
                                    ". Stop here and inspect it with "
                                    "faissx-check " + td +
                                    " (--repair to repair it)");
            }
            e->stored = true;
            e->tenant = t;
            e->name = name;
            insert(s, e);
        }
        take_report(s, store, t);
    }
}

void error_reply(fx_wbuf* w, const fx_hdr& req, int code, const char* msg) {
    fx_w_reset(w);
    fx_w_header_space(w);
    fx_w_str(w, msg);
    fx_hdr r{};
    // An op this server does not know is answered as op 0.
    r.op = req.op < FX_OP_MAX_ ? req.op : 0;
    r.flags = FX_FLAG_REPLY;
    r.request_id = req.request_id;
    r.client_id = req.client_id;
    r.status = code;
    fx_w_finish(w, &r);
}

/* Whether a request's reply is remembered for its retries: every op that
 * may change something (reads are simply run again). FX_OP_IVF is both:
 * its sub-op, after the handle, decides. */
bool remembered(int op, const fx_rbuf& body) {
    switch (op) {
    case FX_OP_PING: case FX_OP_OPEN: case FX_OP_LIST: case FX_OP_INFO:
    case FX_OP_SEARCH: case FX_OP_RANGE_SEARCH: case FX_OP_ASSIGN:
    case FX_OP_RECONSTRUCT_N: case FX_OP_RECONSTRUCT_KEYS:
    case FX_OP_RESIDUAL: case FX_OP_SA_CODE_SIZE: case FX_OP_SA_ENCODE:
    case FX_OP_SA_DECODE: case FX_OP_GET_PARAM: case FX_OP_SERIALIZE:
    case FX_OP_FETCH: case FX_OP_PROGRESS: case FX_OP_CANCEL:
    case FX_OP_UPLOAD_CHUNK: // idempotent by offset; a reply per chunk
                             // would crowd out the ones that matter
    case FX_OP_DOWNLOAD_BEGIN: // a retry finds its staging by request id
    case FX_OP_DOWNLOAD_CHUNK: case FX_OP_DOWNLOAD_END:
    case FX_OP_LIMITS:
        return false;
    case FX_OP_IVF: {
        fx_rbuf r = body; // a copy: the handler reads the body again
        uint64_t h;
        int64_t sub = 0;
        fx_r_u64(&r, &h);
        fx_r_i64(&r, &sub);
        return sub != FX_IVF_IMBALANCE && sub != FX_IVF_SEARCH_PREASSIGNED;
    }
    case FX_OP_COMPOSITE: {
        fx_rbuf r = body;
        uint64_t h;
        int64_t sub = 0;
        fx_r_u64(&r, &h);
        fx_r_i64(&r, &sub);
        return sub != FX_COMP_CHAIN;
    }
    case FX_OP_BINARY: {
        fx_rbuf r = body;
        int64_t sub = 0;
        fx_r_i64(&r, &sub);
        return !binary_reads(sub);
    }
    default:
        return op > 0 && op < FX_OP_MAX_;
    }
}

/* Replaces w's contents with a copy of a remembered reply. */
void copy_reply(fx_wbuf* w, const std::vector<uint8_t>& bytes) {
    fx_w_reset(w);
    fx_w_bytes(w, bytes.data(), bytes.size());
}

} // namespace

extern "C" {

void fx_server_conf_init(fx_server_conf* c) {
    memset(c, 0, sizeof *c);
    c->workers = 4;
    c->threads = 1;
    c->max_message_bytes = (size_t)256 << 20;
    c->max_connections = 256;
    c->max_k = 10000;
    c->max_batch = 10000000;
    c->log_level = 2;
    c->orphan_grace_ms = FX_DEFAULT_ORPHAN_GRACE_MS;
    c->max_upload_bytes = FX_DEFAULT_MAX_UPLOAD_BYTES;
    c->upload_idle_ms = FX_DEFAULT_UPLOAD_IDLE_MS;
    c->sync = FAISSX_SYNC_ALWAYS;
    c->sync_interval_ms = FX_DEFAULT_SYNC_INTERVAL_MS;
    c->checkpoint_log_bytes = FX_DEFAULT_CHECKPOINT_LOG_BYTES;
    c->shm_socket_mode = 0600;
    c->shm_stall_ms = FX_DEFAULT_SHM_STALL_MS;
}

int fx_state_new(const fx_server_conf* c, fx_state** out, char* err,
                 size_t errsz) {
    try {
        std::unique_ptr<fx_state> s(new fx_state());
        s->conf = *c;
        // Upload and download ids start at a random point (below 2^52), so
        // an id a client kept from before a restart -- a retried CHUNK or
        // COMMIT -- names nothing in the new process rather than another
        // upload of the same client.
        s->next_upload = (random_u64() >> 12) + 1;
        if (s->conf.max_k <= 0) s->conf.max_k = 10000;
        if (s->conf.max_batch <= 0) s->conf.max_batch = 10000000;
        if (s->conf.max_message_bytes == 0)
            s->conf.max_message_bytes = (size_t)256 << 20;
        if (s->conf.max_upload_bytes == 0)
            s->conf.max_upload_bytes = FX_DEFAULT_MAX_UPLOAD_BYTES;
        if (s->conf.upload_idle_ms == 0)
            s->conf.upload_idle_ms = FX_DEFAULT_UPLOAD_IDLE_MS;
        if (s->conf.shm_stall_ms == 0)
            s->conf.shm_stall_ms = FX_DEFAULT_SHM_STALL_MS;
        if (c->test_lock_probe && *c->test_lock_probe) {
            struct stat st;
            if (stat(c->test_lock_probe, &st) != 0 || !S_ISDIR(st.st_mode) ||
                access(c->test_lock_probe, W_OK | X_OK) != 0) {
                snprintf(err, errsz,
                         "--test-lock-probe: '%s' is not a writable "
                         "directory", c->test_lock_probe);
                return FAISSX_E_INVALID;
            }
            s->probe.reset(new fx::LockProbe(c->test_lock_probe));
        }
        std::string why;
        if (c->auth_keys && *c->auth_keys) {
            std::stringstream ss(c->auth_keys);
            std::string item;
            while (std::getline(ss, item, ','))
                if (!trim(item).empty() && !parse_key(trim(item), s.get(), &why)) {
                    snprintf(err, errsz, "--auth-keys: %s", why.c_str());
                    return FAISSX_E_INVALID;
                }
        }
        if (c->auth_file && *c->auth_file) {
            std::ifstream f(c->auth_file);
            if (!f) {
                snprintf(err, errsz, "--auth-file: cannot read '%s'",
                         c->auth_file);
                return FAISSX_E_IO;
            }
            std::string line;
            int lineno = 0;
            while (std::getline(f, line)) {
                lineno++;
                line = trim(line);
                if (line.empty() || line[0] == '#') continue;
                if (!parse_key(line, s.get(), &why)) {
                    snprintf(err, errsz, "%s:%d: %s", c->auth_file, lineno,
                             why.c_str());
                    return FAISSX_E_INVALID;
                }
            }
        }
        s->auth = !s->keys.empty();
        if (c->require_auth && !s->auth) {
            snprintf(err, errsz, "authentication is required but no API keys "
                     "were given (--auth-keys or --auth-file)");
            return FAISSX_E_AUTH;
        }
        // Handles start at a random point, so that a handle from before a
        // restart (or a reboot: the steady clock restarts with it) names
        // no index now. A client relies on that: an unknown handle makes it
        // reopen a named index by name and repeat the call (net/remote.cpp,
        // with_reopen); a handle that named another index would send the
        // retry there. (They are tenant-checked regardless.)
        s->next_handle = random_handle_base();
        if (c->data_dir && *c->data_dir) {
            if (c->sync != FAISSX_SYNC_ALWAYS &&
                c->sync != FAISSX_SYNC_INTERVAL && c->sync != FAISSX_SYNC_NONE) {
                snprintf(err, errsz, "unknown sync policy %d", c->sync);
                return FAISSX_E_INVALID;
            }
            if (c->sync == FAISSX_SYNC_INTERVAL && c->sync_interval_ms <= 0) {
                snprintf(err, errsz, "the sync interval must be > 0 ms");
                return FAISSX_E_INVALID;
            }
            s->data_dir = c->data_dir;
            while (s->data_dir.size() > 1 && s->data_dir.back() == '/')
                s->data_dir.pop_back();
            s->store_opts.sync = (fx::wal::Sync)c->sync;
            s->store_opts.interval_ms = c->sync_interval_ms;
            s->store_opts.snapshot_log_bytes = c->checkpoint_log_bytes;
            try {
                open_data_dir(s.get());
            } catch (const Error& e) {
                snprintf(err, errsz, "%s", e.what());
                return e.code;
            }
        }
        *out = s.release();
        return 0;
    } catch (const Error& e) {
        snprintf(err, errsz, "%s", e.what());
        return e.code;
    } catch (const std::exception& e) {
        snprintf(err, errsz, "%s", e.what());
        return FAISSX_E_NOMEM;
    }
}

void fx_state_free(fx_state* s) {
    delete s;
}

void fx_state_handle(fx_state* s, const uint8_t* msg, size_t len,
                     uint64_t conn_id, fx_wbuf* reply, fx_req_meta* meta) {
    fx_req_info info{};
    info.conn_id = conn_id;
    fx_state_handle_req(s, msg, len, &info, reply, meta);
}

void fx_state_handle_req(fx_state* s, const uint8_t* msg, size_t len,
                         const fx_req_info* info, fx_wbuf* reply,
                         fx_req_meta* meta) {
    uint64_t conn_id = info ? info->conn_id : 0;
    // The request's deadline, on ReplyCache::now_ms()'s clock (the
    // steady clock is CLOCK_MONOTONIC, as recv_ns is); 0 = none.
    uint64_t arrived = info && info->recv_ns ? info->recv_ns / 1000000
                                             : fx::ReplyCache::now_ms();
    bool remember = false;
    fx_hdr req{};
    char err[256];
    fx_req_meta m{};
    int rc = fx_hdr_decode(msg, len, &req, err, sizeof err);
    m.op = req.op;
    m.request_id = req.request_id;
    m.client_id = req.client_id;
    if (rc != 0) {
        error_reply(reply, req, rc, err);
        m.status = rc;
        if (meta) *meta = m;
        return;
    }
    if (req.flags & FX_FLAG_REPLY) {
        error_reply(reply, req, FAISSX_E_PROTOCOL, "a reply is not a request");
        m.status = FAISSX_E_PROTOCOL;
        if (meta) *meta = m;
        return;
    }
    t_old_protocol = s->conf.test_old_protocol != 0;
    t_probe = s->probe.get();
    t_op = req.op;
    uint32_t known = FX_FLAG_REPLY | FX_FLAG_JOB |
                     (t_old_protocol ? 0u : FX_FLAG_STATE);
    if (req.flags & ~known) { // reserved bits: 0
        snprintf(err, sizeof err, "unknown header flags 0x%x", req.flags);
        error_reply(reply, req, FAISSX_E_INVALID, err);
        m.status = FAISSX_E_INVALID;
        if (meta) *meta = m;
        return;
    }
    Req q;
    q.s = s;
    q.client_id = req.client_id;
    q.conn_id = conn_id;
    q.request_id = req.request_id;
    q.job = (req.flags & FX_FLAG_JOB) != 0;
    q.state = (req.flags & FX_FLAG_STATE) != 0;
    fx_r_init(&q.r, msg + FX_HDR_SIZE, len - FX_HDR_SIZE);
    fx_w_reset(reply);
    fx_w_header_space(reply);
    try {
        std::string key = rd_str(q, kMaxKey);
        if (s->auth) {
            auto it = s->keys.find(key);
            if (it == s->keys.end())
                throw Error(FAISSX_E_AUTH, key.empty()
                                                   ? "this server requires an API key"
                                                   : "unknown API key");
            q.tenant = it->second.tenant;
            q.read_only = it->second.read_only;
        } else {
            q.tenant = "default";
        }
        snprintf(m.tenant, sizeof m.tenant, "%s", q.tenant.c_str());
        {
            std::lock_guard<std::mutex> g(s->mu);
            s->client_seen[q.client_id] = now_ms();
            s->client_conn[q.client_id] = conn_id;
        }
        uint64_t deadline = req.timeout_ms ? arrived + req.timeout_ms : 0;
        q.deadline = deadline;
        uint64_t now = fx::ReplyCache::now_ms();
        if (deadline && now >= deadline)
            throw Error(FAISSX_E_TIMEOUT,
                        "not run: its deadline passed while it waited " +
                                std::to_string(now - arrived) +
                                " ms in the server's queue (the client "
                                "waits " + std::to_string(req.timeout_ms) +
                                " ms)");
        if (req.request_id != 0 && remembered(req.op, q.r)) {
            std::vector<uint8_t> old;
            int st = 0;
            switch (s->replies.begin(q.tenant, q.client_id, req.request_id,
                                     req.op, deadline, &old, &st)) {
            case fx::ReplyCache::REPLAY: // a retry: the original reply
                copy_reply(reply, old);
                m.status = st;
                if (meta) *meta = m;
                return;
            case fx::ReplyCache::EXPIRED:
                throw Error(FAISSX_E_TIMEOUT,
                            "a retry of a request that is still running, "
                            "and its deadline passed");
            case fx::ReplyCache::RUN: remember = true; break;
            }
        }
        // The durable store remembers which requests its logged mutations
        // came from, across restarts (persist/store.h, "EXACTLY ONCE").
        fx::store::RequestTag tag;
        struct TagScope {
            bool on;
            ~TagScope() {
                if (on) fx::store::set_request_tag(nullptr);
            }
        } tag_scope{remember && durable(s)};
        if (tag_scope.on) {
            tag.client = q.client_id;
            tag.request = req.request_id;
            fx::store::set_request_tag(&tag);
        }
        dispatch(q, req.op, reply);
        if (reply->oom) throw std::bad_alloc();
        if (reply->len > s->conf.max_message_bytes)
            throw Error(FAISSX_E_LIMIT,
                        "reply of " + std::to_string(reply->len) +
                                " bytes exceeds the message limit");
        fx_hdr r{};
        r.op = req.op;
        r.flags = FX_FLAG_REPLY;
        r.request_id = req.request_id;
        r.client_id = req.client_id;
        fx_w_finish(reply, &r);
        m.status = 0;
    } catch (...) {
        int code = fx::handle_exception(fx_op_name(req.op));
        const char* msg = faiss_get_last_error();
        error_reply(reply, req, code, msg ? msg : "failed");
        m.status = code;
    }
    if (remember) {
        // A request for an index that does not exist (an unknown handle:
        // e.g. from before a server restart) changed nothing: forget it,
        // so that the client may send it again to the reopened index.
        if (!reply->oom && reply->len >= FX_HDR_SIZE &&
            m.status != FAISSX_E_NOT_FOUND)
            s->replies.finish(q.tenant, q.client_id, req.request_id, req.op,
                              reply->data, reply->len, m.status);
        else
            s->replies.abandon(q.tenant, q.client_id, req.request_id);
    }
    if (meta) *meta = m;
}

void fx_state_set_shm(fx_state* s, fx_shm_server* shm) {
    s->shm = shm;
}

size_t fx_state_remembered_replies(fx_state* s) {
    return s->replies.entries();
}

size_t fx_state_running_mutations(fx_state* s) {
    return s->replies.running();
}

uint64_t fx_state_staged_bytes(fx_state* s, const char* tenant,
                               size_t* count) {
    std::lock_guard<std::mutex> g(s->up_mu);
    uint64_t bytes = 0;
    size_t n = 0;
    for (auto& kv : s->staged)
        if (!tenant || kv.first == tenant) bytes += kv.second;
    for (auto& kv : s->uploads)
        if (!tenant || kv.second->tenant == tenant) n++;
    if (count) *count = n;
    return bytes;
}

size_t fx_state_reap_uploads(fx_state* s, uint64_t grace_ms) {
    std::vector<std::shared_ptr<Upload>> dead;
    {
        std::lock_guard<std::mutex> g(s->mu); // client_seen, client_conn
        std::lock_guard<std::mutex> gu(s->up_mu);
        uint64_t now = now_ms();
        for (auto it = s->uploads.begin(); it != s->uploads.end();) {
            Upload* u = it->second.get();
            bool gone = false;
            if (u->orphan) {
                auto c = s->client_conn.find(u->client_id);
                auto seen = s->client_seen.find(u->client_id);
                if (c != s->client_conn.end() && c->second != u->conn_id) {
                    u->orphan = false; // back on another connection
                    u->conn_id = c->second;
                } else {
                    gone = seen == s->client_seen.end() ||
                           now - seen->second >= grace_ms;
                }
            }
            if (gone || now - std::min(now, u->last_ms.load()) >=
                                s->conf.upload_idle_ms) {
                dead.push_back(it->second);
                it = s->uploads.erase(it);
                continue;
            }
            ++it;
        }
    }
    for (auto& u : dead) release_upload(s, u);
    return dead.size();
}

void fx_state_conn_closed(fx_state* s, uint64_t conn_id) {
    std::lock_guard<std::mutex> g(s->mu);
    {
        std::lock_guard<std::mutex> gu(s->up_mu);
        for (auto& kv : s->uploads) {
            Upload* u = kv.second.get();
            auto c = s->client_conn.find(u->client_id);
            uint64_t latest = c == s->client_conn.end() ? u->conn_id
                                                        : c->second;
            if (latest == conn_id) {
                u->orphan = true;
                u->conn_id = conn_id;
            }
        }
    }
    for (auto& kv : s->by_handle) {
        Entry* e = kv.second.get();
        if (!e->name.empty()) continue;
        auto c = s->client_conn.find(e->client_id);
        // Orphaned when its client's latest connection is this one (the
        // client may have moved since it created the index); reap then
        // frees it unless the client shows up on another connection.
        uint64_t latest = c == s->client_conn.end() ? e->conn_id : c->second;
        if (latest == conn_id) {
            e->orphan = true;
            e->conn_id = conn_id;
        }
    }
}

size_t fx_state_reap(fx_state* s, uint64_t grace_ms) {
    return fx_state_reap_later(s, grace_ms, 0);
}

size_t fx_state_client_count(fx_state* s) {
    std::lock_guard<std::mutex> g(s->mu);
    return s->client_seen.size();
}

size_t fx_state_reap_later(fx_state* s, uint64_t grace_ms, uint64_t later_ms) {
    std::vector<EntryP> dead; // freed outside the registry lock
    {
        std::lock_guard<std::mutex> g(s->mu);
        uint64_t now = now_ms() + later_ms;
        // Forget clients silent for a long time that own no unnamed index,
        // so the per-client maps do not grow with every client ever seen.
        uint64_t forget_ms = grace_ms * 4 + 600000;
        if (s->client_seen.size() > 1024) {
            std::unordered_map<uint64_t, int> owners;
            for (auto& kv : s->by_handle)
                if (kv.second->name.empty()) owners[kv.second->client_id]++;
            for (auto it = s->client_seen.begin(); it != s->client_seen.end();) {
                if (now - it->second > forget_ms && !owners.count(it->first)) {
                    s->client_conn.erase(it->first);
                    it = s->client_seen.erase(it);
                } else {
                    ++it;
                }
            }
        }
        for (auto it = s->by_handle.begin(); it != s->by_handle.end();) {
            Entry* e = it->second.get();
            if (e->orphan) {
                auto c = s->client_conn.find(e->client_id);
                auto seen = s->client_seen.find(e->client_id);
                bool back = c != s->client_conn.end() && c->second != e->conn_id;
                if (back) {
                    // The client came back on another connection.
                    e->orphan = false;
                    e->conn_id = c->second;
                } else if (seen == s->client_seen.end() ||
                           now - seen->second >= grace_ms) {
                    dead.push_back(it->second);
                    it = s->by_handle.erase(it);
                    continue;
                }
            }
            ++it;
        }
    }
    return dead.size();
}

size_t fx_state_index_count(fx_state* s) {
    std::lock_guard<std::mutex> g(s->mu);
    return s->by_handle.size();
}

size_t fx_state_stored_count(fx_state* s) {
    std::lock_guard<std::mutex> g(s->mu);
    size_t n = 0;
    for (auto& kv : s->by_handle) n += kv.second->stored;
    return n;
}

char* fx_state_take_notes(fx_state* s) {
    {
        std::lock_guard<std::mutex> g(s->store_mu);
        for (auto& kv : s->stores) take_report(s, kv.second, kv.first);
    }
    std::lock_guard<std::mutex> g(s->notes_mu);
    if (s->notes.empty()) return nullptr;
    char* out = strdup(s->notes.c_str());
    if (out) s->notes.clear();
    return out;
}

int fx_state_checkpoint(fx_state* s, char* err, size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!durable(s)) return 0;
    int rc = 0;
    std::lock_guard<std::mutex> g(s->store_mu);
    for (auto& kv : s->stores) {
        try {
            fx::store::checkpoint(kv.second, nullptr);
        } catch (const std::exception& e) {
            if (rc == 0) {
                rc = fx::handle_exception("checkpoint");
                if (err && errsz)
                    snprintf(err, errsz, "tenant '%s': %s", kv.first.c_str(),
                             e.what());
            }
        }
    }
    return rc;
}

} // extern "C"
