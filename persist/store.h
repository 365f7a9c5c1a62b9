/* store.h -- internal: the durable store of named indexes (docs/format.md).
 *
 * A store is a locked directory; each named index is a subdirectory with a
 * MANIFEST naming its current snapshot and log segment (and the previous
 * pair, kept for repair). Indexes are recovered when first opened and stay
 * loaded until the store is closed. Handles are proxies (StoredIndex) that
 * log each mutation and return only when it is durable under the policy.
 * The public C API (faissx_store_*, include/faissx/faissx.h) wraps this;
 * faissx-server uses it through either. Functions throw fx::Error. Not API. */
#ifndef FX_STORE_H
#define FX_STORE_H

#include "persist/wal.h"

#include <faiss/Index.h>
#include <faiss/IndexBinary.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace fx {
namespace store {

struct Options {
    wal::Sync sync = wal::SYNC_ALWAYS;
    int interval_ms = 100;             /* for SYNC_INTERVAL */
    uint64_t snapshot_log_bytes = 64u << 20; /* checkpoint past this log size; 0: never */
    bool repair = false;               /* cut mid-log damage, fall back past a bad snapshot */
};

struct Store;

/* True when `name` is a valid index name ([A-Za-z0-9._-], 1..128, no
 * leading '.'); otherwise *why says what is wrong. */
bool valid_name(const char* name, std::string* why);

/* Opens (creating the directory if needed) and locks a store. */
Store* open(const std::string& dir, const Options& opts);

/* Syncs and closes every loaded index, unlocks, frees. Live handles keep
 * answering reads; their mutations fail. Accepts NULL. */
void close(Store* s);

/* Creates a named index from a faiss factory string; returns a new handle
 * (the caller frees it; freeing does not delete the index). */
faiss::Index* create_index(Store* s, const char* name, int d,
                           const char* description, int metric);

/* Creates a named index holding `ix` (the store takes `ix` over, also
 * when it throws). `description` is the factory string `ix` was built
 * from, kept to rebuild a damaged first snapshot; NULL or "" for an index
 * that has none (an upload): such an index is checkpointed into a second
 * generation at once, so that repair can fall back to the first.
 * Returns a new handle, like create_index. */
faiss::Index* create_index_from(Store* s, const char* name, faiss::Index* ix,
                                const char* description);

/* A new handle to an existing index, recovering it on first open. Throws
 * FAISSX_E_INVALID if it is a binary index. */
faiss::Index* open_index(Store* s, const char* name);

/* BINARY INDEXES: the same, for a faiss::IndexBinary (d in bits, a
 * multiple of 8; faiss::index_binary_factory descriptions). */
faiss::IndexBinary* create_index_binary(Store* s, const char* name, int d,
                                        const char* description);
faiss::IndexBinary* create_index_binary_from(Store* s, const char* name,
                                             faiss::IndexBinary* ix,
                                             const char* description);
/* Throws FAISSX_E_INVALID if it is a float index. */
faiss::IndexBinary* open_index_binary(Store* s, const char* name);

/* Opens an index of either kind: sets *f or *b (the other NULL). */
void open_any(Store* s, const char* name, faiss::Index** f,
              faiss::IndexBinary** b);

/* Names of the indexes in the store, sorted. */
std::vector<std::string> list(Store* s);

/* Deletes an index; open handles stop accepting mutations. */
void drop(Store* s, const char* name);

/* Snapshot + new log segment for one loaded index, or all (name NULL). */
void checkpoint(Store* s, const char* name);

/* What recovery has reported so far (torn tails cut, repairs), one line
 * per event. */
std::string report(Store* s);

/* True when ix is a store handle. */
bool is_stored(const faiss::Index* ix);
bool is_stored(const faiss::IndexBinary* ix);

/* Calls f with the faiss index behind a store handle, under the index's
 * read lock: for reads the proxy does not forward (its class, typed
 * fields, serialisation, clone). f must not call back into the handle. */
void read_inner(const faiss::Index* stored,
                const std::function<void(const faiss::Index*)>& f);

void read_inner(const faiss::IndexBinary* stored,
                const std::function<void(const faiss::IndexBinary*)>& f);

/* Sets a search-time parameter (nprobe, efSearch, ... as
 * faiss::ParameterSpace names them) durably. The binary overload takes
 * nprobe (IVF), efSearch (HNSW) and verbose. */
void set_param(faiss::Index* stored, const char* name, double value);
void set_param(faiss::IndexBinary* stored, const char* name, double value);

/* Decodes one log record and applies it to `ix` (recovery and the fuzz
 * target). Returns false with *why for a malformed payload (corruption);
 * faiss exceptions from applying it propagate. `payload` excludes the
 * request tag of a tagged record. *removed (if not NULL) gets what a
 * remove_ids record removed (0 for the other types). */
bool apply_record(faiss::Index* ix, uint16_t type, const uint8_t* payload,
                  size_t len, std::string* why, uint64_t* removed = nullptr);
/* apply_record for a binary index's log. */
bool apply_record_binary(faiss::IndexBinary* ix, uint16_t type,
                         const uint8_t* payload, size_t len, std::string* why,
                         uint64_t* removed = nullptr);

/* EXACTLY ONCE ACROSS RESTARTS. A server sets a RequestTag on its thread
 * (set_request_tag) while it runs a client's mutation; the first logged
 * mutation of a store handle on that thread consumes it: if the index has
 * already applied that (client, request) with the same record type --
 * the client is retrying after a lost reply, maybe across a crash and
 * restart -- nothing is applied or logged and the tag gets hit = true and
 * the original outcome; otherwise the log record carries the tag. Each
 * index remembers the last kAppliedPerClient tags of each client and at
 * most kAppliedMax in all (oldest out first), rebuilt from the log at
 * recovery and carried in snapshots (docs/format.md). */
constexpr size_t kAppliedPerClient = 1024; /* as net/dedupe.h's kPerClient */
constexpr size_t kAppliedMax = 65536;

struct RequestTag {
    uint64_t client = 0, request = 0;
    bool used = false;     /* a mutation consumed it */
    bool hit = false;      /* it was a retry: nothing applied */
    int64_t ntotal = 0;    /* on hit: ntotal right after the original */
    bool trained = false;  /* on hit: is_trained after the original */
    uint64_t removed = 0;  /* on hit: what the original remove_ids removed */
};

/* CREATE / UPLOAD / DROP across restarts: a tagged create remembers its
 * request in the new index's first snapshot, a tagged drop in the
 * store's file of recent drops (written before the drop). These report
 * whether the thread's (unused) tag is the one that created / dropped
 * `name`; if so they consume it (used, hit; for a create also ntotal and
 * trained as they were) and the caller answers as the original did. */
bool created_by_request(Store* s, const char* name);
bool dropped_by_request(Store* s, const char* name);

/* Sets (or, with NULL, clears) the calling thread's tag. */
void set_request_tag(RequestTag* tag);
/* The calling thread's tag, or NULL. */
RequestTag* request_tag();

/* faissx-check: validates every index of the store at `dir` with the
 * recovery parser (snapshot checksums, log records, replay), printing one
 * line per finding to `out`. With repair, cuts torn tails and mid-log
 * damage and rewrites each damaged index as a fresh snapshot. Returns 0
 * when clean, 1 when only repairable problems were found (or all were
 * repaired), 2 on damage that was not repaired or cannot be. */
/* progress(done, total, name): about to check index `name` (done of total
 * checked so far); name NULL: about to print to `out` (or finished). */
using CheckProgress = void (*)(size_t done, size_t total, const char* name,
                               void* user);
int check(const std::string& dir, bool repair, FILE* out,
          CheckProgress progress = nullptr, void* user = nullptr);

} // namespace store
} // namespace fx

#endif
