/* cache.cpp -- the client's LRU cache of remote search results and
 * reconstructed vectors (cache.h), and faissx_cache_* (faissx.h).
 *
 * State: an LRU list of entries (front = most recently used), a hash map
 * from key to list position (the full key is compared, so a hash collision
 * is a miss, never a wrong answer), and one record per index identity with
 * its generation and the list of its entries, so a write drops exactly that
 * index's entries. Entry sizes count the key, the value and kOverhead. */
#include "net/cache.h"

#include "core/bridge.h"
#include "net/remote.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <list>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fx {
namespace cache {

namespace {

/* Bookkeeping per entry beyond key and value: list and map nodes, the
 * entry's fields. An estimate; it keeps many tiny entries honest. */
constexpr size_t kOverhead = 160;

struct Rec;
struct Entry {
    std::string key;
    std::vector<uint8_t> val;
    int64_t t_ms = 0;
    size_t bytes = 0;
    Rec* rec = nullptr;
    std::list<std::list<Entry>::iterator>::iterator in_rec;
};
using Lru = std::list<Entry>;

struct Rec {
    uint64_t gen = 0;
    size_t url_len = 0; // the identity is the url, NUL, 8 bytes of handle
    std::list<Lru::iterator> entries;
};

struct State {
    std::mutex mu;
    std::atomic<int64_t> max_bytes{0};
    int ttl_ms = 0;
    uint64_t next_gen = 0;
    Lru lru;
    std::unordered_map<std::string_view, Lru::iterator> by_key;
    std::unordered_map<std::string, Rec> recs; // node-based: Rec* stay valid
    uint64_t bytes = 0;
    uint64_t hits = 0, misses = 0, insertions = 0, evictions = 0,
             expirations = 0, invalidations = 0;
};

/* Never destroyed: index handles may be freed by other static destructors
 * at exit, after this translation unit's statics would be gone. */
State& st() {
    static State* s = new State();
    return *s;
}

int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch())
            .count();
}

const char* url_of(const RemoteIndex* r) {
    return r->conn && r->conn->c ? fx_client_url(r->conn->c) : "";
}

void remove_locked(State& s, Lru::iterator it) {
    s.bytes -= it->bytes;
    s.by_key.erase(std::string_view(it->key));
    it->rec->entries.erase(it->in_rec);
    s.lru.erase(it);
}

/* Makes every outstanding ticket of rec stale and drops its entries. */
void invalidate_locked(State& s, Rec& rec) {
    rec.gen = ++s.next_gen;
    while (!rec.entries.empty()) {
        remove_locked(s, rec.entries.front());
        s.invalidations++;
    }
}

void invalidate_server_locked(State& s, std::string_view url) {
    for (auto& kv : s.recs)
        if (kv.second.url_len == url.size() &&
            std::string_view(kv.first).substr(0, url.size()) == url)
            invalidate_locked(s, kv.second);
}

void evict_locked(State& s, uint64_t limit) {
    while (s.bytes > limit && !s.lru.empty()) {
        remove_locked(s, std::prev(s.lru.end()));
        s.evictions++;
    }
}

size_t total(const Seg* seg, int n) {
    size_t t = 0;
    for (int i = 0; i < n; i++) t += seg[i].len;
    return t;
}

} // namespace

bool on() {
    return st().max_bytes.load(std::memory_order_relaxed) > 0;
}

bool fits(size_t key_bytes, size_t value_bytes) {
    int64_t m = st().max_bytes.load(std::memory_order_relaxed);
    return m > 0 && key_bytes + value_bytes + kOverhead <= (uint64_t)m;
}

std::string ident(const RemoteIndex* r) {
    std::string id = url_of(r);
    id.push_back('\0');
    uint64_t h = r->handle;
    id.append(reinterpret_cast<const char*>(&h), sizeof h);
    return id;
}

static size_t ident_len(const RemoteIndex* r) {
    return std::strlen(url_of(r)) + 1 + sizeof(uint64_t);
}

bool get(const RemoteIndex* r, const std::string& key, const Seg* out,
         int nout, Ticket* t) {
    t->gen = 0;
    if (!on()) return false;
    State& s = st();
    size_t ilen = ident_len(r);
    std::lock_guard<std::mutex> g(s.mu);
    if (s.max_bytes.load() <= 0) return false;
    auto it = s.by_key.find(std::string_view(key));
    if (it != s.by_key.end()) {
        Lru::iterator e = it->second;
        if (s.ttl_ms > 0 && now_ms() - e->t_ms > s.ttl_ms) {
            remove_locked(s, e);
            s.expirations++;
        } else if (e->val.size() == total(out, nout)) {
            const uint8_t* p = e->val.data();
            for (int i = 0; i < nout; i++) {
                if (out[i].len) std::memcpy(out[i].p, p, out[i].len);
                p += out[i].len;
            }
            s.lru.splice(s.lru.begin(), s.lru, e);
            s.hits++;
            return true;
        } else {
            remove_locked(s, e); // cannot happen: sizes are in the key
        }
    }
    s.misses++;
    auto ins = s.recs.try_emplace(key.substr(0, ilen));
    Rec& rec = ins.first->second;
    if (ins.second) {
        rec.gen = ++s.next_gen;
        rec.url_len = ilen - 1 - sizeof(uint64_t);
    }
    t->gen = rec.gen;
    return false;
}

void put(const RemoteIndex* r, std::string&& key, const Seg* in, int nin,
         const Ticket& t) {
    if (t.gen == 0) return;
    size_t vlen = total(in, nin);
    if (!fits(key.size(), vlen)) return;
    size_t ilen = ident_len(r);
    // Copy outside the lock; it is dropped if the ticket went stale.
    Entry e;
    e.val.resize(vlen);
    uint8_t* p = e.val.data();
    for (int i = 0; i < nin; i++) {
        if (in[i].len) std::memcpy(p, in[i].p, in[i].len);
        p += in[i].len;
    }
    e.bytes = key.size() + vlen + kOverhead;
    e.key = std::move(key);
    State& s = st();
    std::lock_guard<std::mutex> g(s.mu);
    int64_t m = s.max_bytes.load();
    if (m <= 0 || e.bytes > (uint64_t)m) return;
    auto rit = s.recs.find(e.key.substr(0, ilen));
    if (rit == s.recs.end() || rit->second.gen != t.gen) return;
    auto old = s.by_key.find(std::string_view(e.key));
    if (old != s.by_key.end()) remove_locked(s, old->second); // a racing miss
    e.t_ms = now_ms();
    e.rec = &rit->second;
    s.lru.push_front(std::move(e));
    Lru::iterator it = s.lru.begin();
    it->in_rec = it->rec->entries.insert(it->rec->entries.end(), it);
    s.by_key.emplace(std::string_view(it->key), it);
    s.bytes += it->bytes;
    s.insertions++;
    evict_locked(s, (uint64_t)m);
}

void wrote(const RemoteIndex* r) noexcept {
    if (!r) return;
    try {
        State& s = st();
        std::string id = ident(r);
        std::lock_guard<std::mutex> g(s.mu);
        if (r->linked) {
            invalidate_server_locked(s, std::string_view(id).substr(0, id.size() - 1 - sizeof(uint64_t)));
            return;
        }
        auto it = s.recs.find(id);
        if (it != s.recs.end()) invalidate_locked(s, it->second);
    } catch (...) {
        // Only std::string's allocation can throw: fall back to emptying
        // everything, which needs no memory.
        clear_all();
    }
}

void wrote_server(const char* url) noexcept {
    State& s = st();
    std::lock_guard<std::mutex> g(s.mu);
    invalidate_server_locked(s, url ? std::string_view(url) : std::string_view());
}

void forget(const RemoteIndex* r) noexcept {
    if (!r || r->named) return;
    try {
        State& s = st();
        std::string id = ident(r);
        std::lock_guard<std::mutex> g(s.mu);
        auto it = s.recs.find(id);
        if (it == s.recs.end()) return;
        invalidate_locked(s, it->second);
        s.recs.erase(it);
    } catch (...) {
        clear_all();
    }
}

void clear_all() noexcept {
    State& s = st();
    std::lock_guard<std::mutex> g(s.mu);
    for (auto& kv : s.recs) invalidate_locked(s, kv.second);
}

void configure(int64_t max_bytes, int ttl_ms) {
    State& s = st();
    std::lock_guard<std::mutex> g(s.mu);
    s.max_bytes.store(max_bytes);
    s.ttl_ms = ttl_ms;
    if (max_bytes <= 0) {
        for (auto& kv : s.recs) invalidate_locked(s, kv.second);
        s.recs.clear(); // outstanding tickets find no record: not stored
    } else {
        evict_locked(s, (uint64_t)max_bytes);
    }
}

int check_limits(const char* func, int64_t max_bytes, int ttl_ms) {
    if (max_bytes < 0)
        return fail(FAISSX_E_INVALID, func,
                    "cache_max_bytes must be >= 0 (0 = off; got %lld)",
                    (long long)max_bytes);
    if (ttl_ms < 0)
        return fail(FAISSX_E_INVALID, func,
                    "cache_ttl_ms must be >= 0 (0 = no expiry; got %d)",
                    ttl_ms);
    return 0;
}

} // namespace cache
} // namespace fx

extern "C" {

int faissx_cache_configure(int64_t max_bytes, int ttl_ms) {
    if (int rc = fx::cache::check_limits(__func__, max_bytes, ttl_ms))
        return rc;
    fx::cache::configure(max_bytes, ttl_ms);
    return 0;
}

int faissx_cache_stats(FaissxCacheStats* out) {
    FX_NOT_NULL(out);
    fx::cache::State& s = fx::cache::st();
    std::lock_guard<std::mutex> g(s.mu);
    std::memset(out, 0, sizeof *out);
    out->hits = s.hits;
    out->misses = s.misses;
    out->insertions = s.insertions;
    out->evictions = s.evictions;
    out->expirations = s.expirations;
    out->invalidations = s.invalidations;
    out->entries = s.lru.size();
    out->bytes = s.bytes;
    out->max_bytes = s.max_bytes.load();
    out->ttl_ms = s.ttl_ms;
    return 0;
}

void faissx_cache_reset_stats(void) {
    fx::cache::State& s = fx::cache::st();
    std::lock_guard<std::mutex> g(s.mu);
    s.hits = s.misses = s.insertions = s.evictions = s.expirations =
            s.invalidations = 0;
}

void faissx_cache_clear(void) {
    fx::cache::clear_all();
}

int faissx_cache_invalidate(const FaissIndex* index) {
    FX_NOT_NULL(index);
    if (auto r = fx::as_remote(fx::index(index))) fx::cache::wrote(r);
    return 0;
}

} // extern "C"
