/* server.h -- internal: the faissx server, in two layers.
 *
 *   fx_state   what the server knows and does: API keys and tenants, the
 *              registry of indexes, limits, and the handler that turns one
 *              request message into one reply message (net/handler.cpp).
 *              Pure with respect to I/O, so tests and the fuzz target drive
 *              it directly. Thread-safe: many requests may be handled at
 *              once; readers of an index run in parallel, writers alone.
 *   transport  NNG rep0 contexts feeding worker threads that run handlers,
 *              a libuv loop for signals, timers and the drain
 *              (net/server.c), and the executable's flags
 *              (net/server_main.c). */
#ifndef FX_SERVER_H
#define FX_SERVER_H

#include "net/proto.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FX_MAX_LISTEN 8
#define FX_DEFAULT_URL "tcp://127.0.0.1:45678"

typedef struct fx_server_conf {
    const char* listen[FX_MAX_LISTEN]; /* NNG URLs; none => FX_DEFAULT_URL */
    int nlisten;
    const char* tls_cert;  /* PEM files for tls+tcp:// listeners */
    const char* tls_key;
    const char* auth_keys; /* "KEY:TENANT[:ro],..."; NULL = no auth */
    const char* auth_file; /* one KEY:TENANT[:ro] per line, # comments */
    int require_auth;      /* refuse to start without keys */
    int workers;           /* requests run at once (worker threads) */
    int threads;           /* OpenMP threads per request */
    size_t max_message_bytes;
    int max_connections;
    int64_t max_k;         /* largest k a search may ask for */
    int64_t max_batch;     /* most vectors in one request */
    int test_drop_replies; /* testing aid: drop every Nth reply after
                              running its request; 0 = never */
    int test_old_protocol; /* testing aid: answer as a server that
                              predates the index info sizes and
                              FX_FLAG_STATE (docs/operations.md) */
    const char* test_lock_probe; /* testing aid: a directory where index
                                    locks are shown and requests held
                                    (net/lock_probe.h); NULL or "": off */
    int log_level;         /* 0 error, 1 warn, 2 info, 3 debug */
    int log_json;
    uint64_t orphan_grace_ms; /* how long a closed connection's anonymous
                                 indexes (and unfinished uploads) wait for
                                 their client */
    uint64_t max_upload_bytes; /* bytes of unfinished chunked uploads a
                                  tenant may stage at once (0: default) */
    uint64_t upload_idle_ms;   /* an unfinished upload without a chunk for
                                  this long is discarded (0: default) */
    const char* data_dir;  /* durable store of named indexes; NULL or "":
                              in-memory only (docs/operations.md) */
    int sync;              /* FaissxSyncPolicy of the stores (default
                              FAISSX_SYNC_ALWAYS) */
    int sync_interval_ms;  /* for FAISSX_SYNC_INTERVAL */
    uint64_t checkpoint_log_bytes; /* checkpoint an index when its log
                                      passes this size; 0: never */
    const char* shm_socket; /* Unix socket taking same-host clients'
                               shared-memory regions (ADD_STREAM); NULL or
                               "": off (docs/operations.md) */
    unsigned shm_socket_mode; /* its file mode (default 0600) */
    uint64_t shm_stall_ms;    /* a stream with no chunk for this long is
                                 aborted and rolled back */
} fx_server_conf;

#define FX_DEFAULT_ORPHAN_GRACE_MS 30000
#define FX_DEFAULT_MAX_UPLOAD_BYTES ((uint64_t)1 << 30)
#define FX_DEFAULT_UPLOAD_IDLE_MS 600000
#define FX_MAX_UPLOADS_PER_TENANT 64
#define FX_DEFAULT_SYNC_INTERVAL_MS 100
#define FX_DEFAULT_CHECKPOINT_LOG_BYTES ((uint64_t)64 << 20)

/* Defaults for every field (as documented in docs/operations.md). */
void fx_server_conf_init(fx_server_conf* c);

typedef struct fx_state fx_state;

/* Builds the server state: parses keys (auth_keys and auth_file), applies
 * limits. With a data_dir, locks it and restores every named index of
 * every tenant that has a key (a damaged index stops the start: run
 * faissx-check). Returns 0, or a FaissxError with a message in err. */
int fx_state_new(const fx_server_conf* c, fx_state** out, char* err,
                 size_t errsz);
void fx_state_free(fx_state* s);

/* What a handled request was, for the access log. */
typedef struct fx_req_meta {
    int op;
    int status;          /* 0 or a negative FaissxError */
    char tenant[64];
    uint64_t request_id;
    uint64_t client_id;
} fx_req_meta;

/* Handles one request message (header + body, as received) and writes the
 * complete reply message (header + body) into `reply`, which the caller
 * initialised with fx_w_init and frees. Never fails: malformed input gets an
 * error reply. `conn_id` identifies the connection the request came on. */
void fx_state_handle(fx_state* s, const uint8_t* msg, size_t len,
                     uint64_t conn_id, fx_wbuf* reply, fx_req_meta* meta);

/* Where and when a request arrived. */
typedef struct fx_req_info {
    uint64_t conn_id; /* the connection it came on */
    uint64_t recv_ns; /* CLOCK_MONOTONIC ns at arrival (uv_hrtime());
                         0 = now */
} fx_req_info;

/* fx_state_handle with the arrival time: a request whose deadline
 * (arrival + header timeout_ms) passed while it was queued is not run; it
 * gets FAISSX_E_TIMEOUT. A retried mutation (same tenant, client id and
 * request id) is not run again: it gets the original reply. */
void fx_state_handle_req(fx_state* s, const uint8_t* msg, size_t len,
                         const fx_req_info* info, fx_wbuf* reply,
                         fx_req_meta* meta);

/* How many mutation replies are remembered for retries (net/dedupe.h
 * bounds them), for tests. */
size_t fx_state_remembered_replies(fx_state* s);

/* How many mutations are running now under the retry bookkeeping (begun,
 * reply not yet recorded), for tests that must know a first copy runs. */
size_t fx_state_running_mutations(fx_state* s);

/* Bytes staged by the unfinished chunked uploads of `tenant` (NULL: of
 * all tenants), and how many uploads that is (in *count if not NULL). */
uint64_t fx_state_staged_bytes(fx_state* s, const char* tenant,
                               size_t* count);

/* The connection `conn_id` closed: the anonymous indexes and unfinished
 * uploads of the clients seen on it become orphans (named indexes are
 * never orphaned). */
void fx_state_conn_closed(fx_state* s, uint64_t conn_id);

/* Frees orphans whose client has not been seen for `grace_ms` (a client
 * that reconnects within the grace period keeps its indexes). Call it
 * periodically (the server does, every second). Returns how many were
 * freed. */
size_t fx_state_reap(fx_state* s, uint64_t grace_ms);
/* fx_state_reap as it would run later_ms from now (tests: forgetting
 * silent clients takes minutes). Beyond 1024 remembered clients, it also
 * forgets those silent for 4 * grace_ms + 10 min that own no unnamed
 * index. */
size_t fx_state_reap_later(fx_state* s, uint64_t grace_ms, uint64_t later_ms);
/* Number of clients the state remembers (last seen, latest connection). */
size_t fx_state_client_count(fx_state* s);

/* Discards unfinished uploads that are orphans whose client has not been
 * seen for `grace_ms`, or that got no chunk for the conf's upload_idle_ms
 * (the server calls it with fx_state_reap). Returns how many. */
size_t fx_state_reap_uploads(fx_state* s, uint64_t grace_ms);

struct fx_shm_server;
/* Serves ADD_STREAM from the regions of `shm` (NULL: no shared memory)
 * and advertises it in PING replies. Call before handling requests. */
void fx_state_set_shm(fx_state* s, struct fx_shm_server* shm);

/* Number of live indexes (all tenants), for logs and tests. */
size_t fx_state_index_count(fx_state* s);

/* Number of named indexes kept in the durable store (0 without one). */
size_t fx_state_stored_count(fx_state* s);

/* What happened to the durable store since the last call (restored
 * indexes' recovery reports: torn tails cut, ...; tenant directories
 * skipped), one line each; NULL when nothing. malloc'd: free() it. */
char* fx_state_take_notes(fx_state* s);

/* Checkpoints every stored index (snapshot + new empty log), so the next
 * start replays nothing. The server calls it after draining on
 * SIGINT/SIGTERM. Returns 0, or a FaissxError with the first failure in
 * err (the others are still attempted). No-op without a data_dir. */
int fx_state_checkpoint(fx_state* s, char* err, size_t errsz);

/* Runs the server until SIGINT/SIGTERM (then drains in-flight requests) or
 * fx_server_stop. Returns 0 on a clean stop, or a FaissxError with a message
 * in err (bind failure, bad TLS files, ...). */
int fx_server_run(const fx_server_conf* c, char* err, size_t errsz);

/* Asks a running fx_server_run to drain and return (async-signal-safe). */
void fx_server_stop(void);

#ifdef __cplusplus
}
#endif

#endif
