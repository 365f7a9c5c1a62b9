/* cache.h -- internal: the client's opt-in LRU cache of remote search
 * results and reconstructed vectors (faissx_cache_* in faissx.h,
 * docs/client.md "Caching").
 *
 * An entry's key starts with the identity of the index it came from (server
 * URL + server-side handle: two handles to one named index share it), then
 * the call and every argument that decides its result. Each identity has a
 * generation; a write through this client bumps it and drops the identity's
 * entries before the write returns, and a miss stores its result only if
 * the generation it saw before asking the server is still current -- so no
 * reply that raced with a write is ever cached. One mutex guards it all. */
#ifndef FX_CACHE_H
#define FX_CACHE_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace fx {

struct RemoteIndex;

namespace cache {

/* What a miss saw, for put(). */
struct Ticket {
    uint64_t gen = 0; /* 0: do not store */
};

/* One piece of a value: results are copied to/from (ptr, len) segments. */
struct Seg {
    void* p;
    size_t len;
};

/* True when the cache is on (max bytes > 0); cheap (an atomic read). */
bool on();

/* True when an entry with a key and value of these sizes can be cached:
 * callers skip building keys for results too large to keep. */
bool fits(size_t key_bytes, size_t value_bytes);

/* The key prefix of r's identity: the server URL, NUL, the handle. */
std::string ident(const RemoteIndex* r);

/* Looks `key` (which starts with ident(r)) up. A hit copies the value into
 * the segments (whose total length must equal the stored length) and
 * returns true; a miss fills *t and returns false. */
bool get(const RemoteIndex* r, const std::string& key, const Seg* out,
         int nout, Ticket* t);

/* Stores the value made of the segments under `key`, unless the index was
 * written (or the cache cleared or reconfigured) since get() filled t. */
void put(const RemoteIndex* r, std::string&& key, const Seg* in, int nin,
         const Ticket& t);

/* A write through r was acknowledged or failed (it may have been applied):
 * drops r's entries -- every entry of r's server when r shares server-side
 * data with other handles (a composite or its child). Never throws. */
void wrote(const RemoteIndex* r) noexcept;

/* Drops every entry of the server at `url` (a named index was dropped). */
void wrote_server(const char* url) noexcept;

/* r is being freed: its entries and identity go, unless it is named (other
 * handles may share the identity). Never throws. */
void forget(const RemoteIndex* r) noexcept;

/* Drops every entry (outstanding misses are not stored). */
void clear_all() noexcept;

/* Validates cache limits; a FaissxError recorded for func, or 0. */
int check_limits(const char* func, int64_t max_bytes, int ttl_ms);

/* Applies the limits (validated by the caller); 0 bytes empties the cache
 * and turns it off. */
void configure(int64_t max_bytes, int ttl_ms);

} // namespace cache
} // namespace fx

#endif
