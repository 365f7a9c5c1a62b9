/*
 * faissx.h -- what the FAISS 1.7.3 C API has no word for.
 *
 * faissx implements every function declared in <faiss/c_api/...> (link with
 * -lfaiss_c or -lfaissx). This header adds:
 *   - the library version and a distinct error-code enum with faissx_strerror;
 *   - constructors for binary indexes (1.7.3 can only read them from disk)
 *     and a binary index factory;
 *   - search with per-call parameters and IDSelector combinators.
 * Where a later FAISS release added a C function for the same purpose, the
 * name and signature are upstream's (faiss_...), so code written for newer
 * FAISS compiles against faissx. Everything else is prefixed faissx_.
 * Anything not declared in a public header is not API.
 *
 * Error model: like FAISS, functions return int, 0 on success; on failure
 * a message is available through faiss_get_last_error() in the calling
 * thread until the next faiss/faissx call in that thread.
 *
 * Ownership: a pointer returned through an out-parameter of a *_new function
 * belongs to the caller, who releases it with the matching *_free function.
 * Every *_free accepts NULL.
 */
#ifndef FAISSX_H
#define FAISSX_H

#include <stddef.h>
#include <stdint.h>

#include <faiss/c_api/faiss_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/IndexBinary_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/IndexIVFFlat_c.h>
#include <faiss/c_api/IndexLSH_c.h>
#include <faiss/c_api/IndexPreTransform_c.h>
#include <faiss/c_api/IndexReplicas_c.h>
#include <faiss/c_api/IndexScalarQuantizer_c.h>
#include <faiss/c_api/IndexShards_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/VectorTransform_c.h>
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/clone_index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/utils/distances_c.h>

#include "faissx_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------ */

/** The faissx version as "MAJOR.MINOR.PATCH". Static storage; never free. */
const char* faissx_version_string(void);

/** The faissx version as MAJOR*10000 + MINOR*100 + PATCH. */
int faissx_version(void);

/** The version of the faiss C++ library faissx runs on ("1.7.3").
 *  Upstream name and signature (faiss >= 1.8 utils_c.h). Static storage. */
const char* faiss_get_version(void);

/* ------------------------------------------------------------------------
 * Errors
 *
 * Every faiss_* and faissx_* function that returns int returns 0 on success
 * or one of these negative codes. The first three values are FAISS's own
 * (FaissErrorCode in error_c.h); the rest are faissx's finer distinctions.
 * ------------------------------------------------------------------------ */
typedef enum FaissxError {
    FAISSX_OK = 0,
    FAISSX_E_UNKNOWN = -1,   /**< unknown exception (FAISS UNKNOWN_EXCEPT) */
    FAISSX_E_FAISS = -2,     /**< faiss refused the operation (FAISS_EXCEPT) */
    FAISSX_E_STD = -4,       /**< C++ standard exception (FAISS STD_EXCEPT) */
    FAISSX_E_INVALID = -5,   /**< an argument is invalid (NULL, k <= 0, NaN...) */
    FAISSX_E_NOMEM = -6,     /**< out of memory */
    FAISSX_E_IO = -7,        /**< file or stream error, corrupt file */
    FAISSX_E_UNSUPPORTED = -8, /**< the index type does not support this */
    FAISSX_E_AUTH = -9,      /**< missing or unknown API key */
    FAISSX_E_NOT_FOUND = -10, /**< no such index (or not yours) */
    FAISSX_E_PERMISSION = -11, /**< read-only key, or not allowed */
    FAISSX_E_LIMIT = -12,    /**< a server limit (k, batch, size) exceeded */
    FAISSX_E_NET = -13,      /**< cannot reach the server / transport error */
    FAISSX_E_TIMEOUT = -14,  /**< no reply within the timeout */
    FAISSX_E_EXISTS = -15,   /**< a named index with that name exists */
    FAISSX_E_PROTOCOL = -16, /**< malformed or unexpected message */
    FAISSX_E_CANCELED = -17, /**< cancelled (token or progress callback);
                                  the index is unchanged */
} FaissxError;

/** A static, human-readable description of a code. Never NULL. */
const char* faissx_strerror(int code);

/** The code of the most recent failed call in this thread (0 if no call
 *  has failed yet). A successful call does not reset it. */
int faissx_last_error_code(void);

/** Fills `space` with the parameter ranges faiss knows for `index` (nprobe,
 *  efSearch, ht, ...), as faiss::ParameterSpace::initialize does -- the
 *  1.7.3 C API cannot, so its ParameterSpace is otherwise always empty.
 *  Local indexes only (FAISSX_E_UNSUPPORTED for a remote one). */
int faissx_ParameterSpace_initialize(FaissParameterSpace* space,
                                     const FaissIndex* index);

/** Which distance kernels faiss's code runs in this process (docs/kernels.md):
 *  "avx512", "avx2" or "generic" when faissx's own kernels replace faiss's
 *  (chosen at the first distance computation from the CPU, or lowered by the
 *  environment variable FAISSX_SIMD=generic|avx2), "faiss" when the library
 *  was built without the substitution. A static string; never NULL. */
const char* faissx_simd_level(void);

/* ------------------------------------------------------------------------
 * Threads
 *
 * faiss runs its loops on OpenMP threads and its matrix products on
 * OpenBLAS's own threads. When both pools are as large as the machine they
 * oversubscribe it (a 1000-query Flat search over 1M vectors took 2.3x
 * longer on 2 cores). So, by default, faissx gives OpenMP the CPU count and
 * OpenBLAS one thread, and splits Flat batch searches across the OpenMP
 * threads; see docs/api.md, "Threads", and docs/benchmarks.md.
 *
 * The default policy leaves the pools alone when the program chose them:
 * OMP_NUM_THREADS, OPENBLAS_NUM_THREADS or GOTO_NUM_THREADS set in the
 * environment, or omp_set_num_threads / openblas_set_num_threads called
 * before the first faiss call (in that thread, for OpenMP). A setting made
 * with faissx_set_threads or FAISSX_THREADS is explicit and overrides all of
 * these. It is applied at each thread's next faiss or faissx call.
 * ------------------------------------------------------------------------ */

/** Largest value faissx_set_threads and FAISSX_THREADS accept. */
#define FAISSX_THREADS_MAX 1024

/** faiss calls from now on, in every thread, run on n OpenMP threads, with
 *  OpenBLAS single-threaded. n = 0 returns to the setting the process
 *  started with (FAISSX_THREADS = n read at the first call, else the default
 *  policy). Fails with FAISSX_E_INVALID for n < 0 or n >
 *  FAISSX_THREADS_MAX, changing nothing. Thread-safe; a call already
 *  running keeps the count it started with. */
int faissx_set_threads(int n);

/** The number of OpenMP threads a faiss call made now from the calling
 *  thread would use (after applying the setting to this thread). */
int faissx_get_threads(void);

/* ------------------------------------------------------------------------
 * Remote mode
 *
 * When a server is configured -- by faissx_configure() or, at the first
 * index construction, by the environment variables FAISSX_SERVER (URL),
 * FAISSX_API_KEY and FAISSX_TIMEOUT_MS -- faiss_index_factory and the
 * constructors with a dimension (faiss_IndexFlatL2_new_with, ...) create the
 * index on the server, and every faiss_* call on it runs there. A program
 * becomes a remote client without code changes. See docs/remote.md for
 * which calls are supported on remote indexes.
 * ------------------------------------------------------------------------ */

/** Use the server at `url` (e.g. "tcp://127.0.0.1:45678"), authenticating
 *  with `api_key` (NULL or "" when the server has no keys), waiting at most
 *  `timeout_ms` for each reply (0: the default, 30000). Connects at once and
 *  fails with FAISSX_E_NET if the server cannot be reached. url = NULL
 *  returns to local mode. Indexes already created keep their home. */
int faissx_configure(const char* url, const char* api_key, int timeout_ms);

/** 1 when new indexes will be created on a server, 0 when locally. */
int faissx_is_remote(void);

/** Ignore FAISSX_SERVER and stay local (what faissx-server itself does). */
void faissx_remote_disable(void);

/** 1 if `index` lives on a server, 0 if it is a local faiss index. */
int faissx_index_is_remote(const FaissIndex* index);

/** Create a named index on the server, in your tenant's namespace
 *  (faiss_index_factory syntax for `description`). Names are 1-128
 *  characters from [A-Za-z0-9._-], not starting with '.'. Fails with
 *  FAISSX_E_EXISTS if the name is taken. Freeing the handle does not delete
 *  the index: faissx_index_drop does. */
int faissx_index_create(FaissIndex** p_index, const char* name, int d,
                        const char* description, FaissMetricType metric);

/** Open an existing named index (FAISSX_E_NOT_FOUND if none;
 *  FAISSX_E_INVALID if it is a binary index: faissx_index_binary_open). */
int faissx_index_open(FaissIndex** p_index, const char* name);

/** Names of your tenant's named indexes, sorted. *p_names is an array of
 *  *p_count malloc'd strings; release it with faissx_index_list_free. */
int faissx_index_list(char*** p_names, size_t* p_count);
void faissx_index_list_free(char** names, size_t count);

/** Delete a named index on the server. Handles to it become invalid. */
int faissx_index_drop(const char* name);

/** Copy a local index to the server (name NULL or "": an unnamed index that
 *  lives until freed; else a named one, FAISSX_E_EXISTS if taken). Sent in
 *  chunks with progress (FAISSX_PROGRESS_UPLOAD) and cancellation. A remote
 *  `local` fails with FAISSX_E_INVALID. *p_index is the remote handle;
 *  `local` is unchanged. */
int faissx_index_upload(const FaissIndex* local, const char* name,
                        FaissIndex** p_index);

/** A local copy of a remote index (or a clone of a local one). */
int faissx_index_download(const FaissIndex* index, FaissIndex** p_local);

/* ------------------------------------------------------------------------
 * Remote client: timeouts, retries, reconnection, pooling, fallback
 *
 * Every knob below also has a FAISSX_* environment variable (the table in
 * docs/client.md). A call to the server has a deadline, its operation
 * class's timeout: it never blocks longer, and the server does not start
 * work whose deadline passed while it was queued. Within the deadline the
 * client retries an attempt that got no reply (after attempt_timeout_ms)
 * or failed in transport, after an exponential backoff with full jitter;
 * a retry carries the same request id, and the server answers a retried
 * mutation with the reply it already sent, so an add is applied exactly
 * once. Expired calls fail with FAISSX_E_TIMEOUT. NNG redials a lost
 * connection by itself (same backoff); indexes, named handles and their
 * parameters live on the server and survive a reconnect.
 * ------------------------------------------------------------------------ */

/** Operation classes, each with its own timeout. */
typedef enum FaissxOpClass {
    FAISSX_OP_SEARCH = 0, /**< search, range_search, assign, reconstruct,
                               compute_residual, sa_encode/decode, reading
                               xb / id_map / inverted lists */
    FAISSX_OP_ADD = 1,    /**< add, add_with_ids, remove_ids, reset,
                               merge_from, IVF add_core/update_vectors/
                               copy_subset_to */
    FAISSX_OP_TRAIN = 2,  /**< train, IVF train_residual */
    FAISSX_OP_ADMIN = 3,  /**< everything else: create, open, list, drop,
                               free, parameters, upload, download, clone */
} FaissxOpClass;
#define FAISSX_OP_CLASS_COUNT 4

/** Client settings. Fill with faissx_client_options_init (and optionally
 *  faissx_client_options_from_env) before setting fields; the struct may
 *  grow, reserved fields stay zero. Strings are copied by
 *  faissx_configure_ex. */
typedef struct FaissxClientOptions {
    const char* url;        /**< server URL; NULL = local mode [FAISSX_SERVER] */
    const char* api_key;    /**< NULL or "" without keys [FAISSX_API_KEY] */
    const char* tls_ca;     /**< CA file to verify a tls+tcp:// server; NULL:
                                 not verified [FAISSX_TLS_CA] */
    int timeout_ms[FAISSX_OP_CLASS_COUNT]; /**< deadline of one call, by
                                 FaissxOpClass; default 30000 each
                                 [FAISSX_TIMEOUT_MS sets all four;
                                 FAISSX_TIMEOUT_{SEARCH,ADD,TRAIN,ADMIN}_MS] */
    int attempt_timeout_ms; /**< an attempt without a reply after this long
                                 is retried (if the deadline allows); 0 = an
                                 attempt may use the whole deadline, so only
                                 transport failures are retried (default).
                                 A retried search runs again on the server;
                                 a retried mutation does not
                                 [FAISSX_ATTEMPT_TIMEOUT_MS] */
    int max_attempts;       /**< attempts per call, >= 1; default 3
                                 [FAISSX_RETRY_MAX_ATTEMPTS] */
    int backoff_base_ms;    /**< first retry waits up to this (random, "full
                                 jitter"), doubling per retry; also NNG's
                                 first redial interval. Default 50
                                 [FAISSX_RETRY_BASE_MS] */
    int backoff_cap_ms;     /**< the longest backoff and redial interval;
                                 default 2000 [FAISSX_RETRY_CAP_MS] */
    int pool_size;          /**< connections (NNG sockets) used round-robin,
                                 1..64; default 1 [FAISSX_POOL_SIZE] */
    int heartbeat_ms;       /**< ping an idle connection this often and drop
                                 it (so NNG redials) when the ping gets no
                                 reply within the same time; 0 = off
                                 (default) [FAISSX_HEARTBEAT_MS] */
    int fallback_local;     /**< 1: when the server is unreachable, index
                                 constructors create local indexes (with a
                                 warning) instead of failing; default 0
                                 [FAISSX_FALLBACK_LOCAL] */
    int cache_ttl_ms;       /**< a cached result older than this is not used;
                                 0 = no expiry (default). Other clients'
                                 writes become visible after it
                                 [FAISSX_CACHE_TTL_MS] */
    int64_t cache_max_bytes; /**< size bound of the client's cache of search
                                 results and reconstructed vectors; 0 = no
                                 cache (default) [FAISSX_CACHE_MAX_BYTES,
                                 which takes a K, M or G suffix] */
    int reserved[16];       /**< zero; room to grow */
} FaissxClientOptions;

/** Fills *opts with the built-in defaults (url NULL: local mode). */
void faissx_client_options_init(FaissxClientOptions* opts);

/** Overrides fields of *opts with the FAISSX_* variables that are set (an
 *  empty variable counts as unset). Fails with FAISSX_E_INVALID, naming
 *  the variable, on a malformed value; *opts is then partly updated. The
 *  strings stored in *opts point into the environment. */
int faissx_client_options_from_env(FaissxClientOptions* opts);

/** Configures the client (as faissx_configure, with every knob): connects
 *  at once, failing with FAISSX_E_NET if the server cannot be reached --
 *  unless opts->fallback_local, in which case it succeeds with a warning,
 *  new indexes are local, and NNG keeps dialing in the background (new
 *  indexes go to the server once it is reachable). opts->url NULL returns
 *  to local mode. Indexes already created keep their connection and its
 *  settings. faissx_configure(url, key, t) is this with
 *  faissx_client_options_from_env's settings and timeout t for every
 *  class (t = 0: the environment's or default timeouts). */
int faissx_configure_ex(const FaissxClientOptions* opts);

/** Changes the timeout of one operation class (ms > 0) for the current
 *  connection and later ones. */
int faissx_set_timeout(FaissxOpClass op_class, int timeout_ms);

/** The current timeout of an operation class (its default in local mode),
 *  or a negative FaissxError for an invalid class. */
int faissx_get_timeout(FaissxOpClass op_class);

/** Overrides the timeout of every request this thread sends, until called
 *  again; 0 removes the override. Returns the previous override (0 if
 *  none), so a scope can restore it:
 *      int old = faissx_set_thread_timeout(50);
 *      rc = faiss_Index_search(...);      // deadline 50 ms
 *      faissx_set_thread_timeout(old);
 *  A negative timeout_ms is refused (returns FAISSX_E_INVALID). */
int faissx_set_thread_timeout(int timeout_ms);

typedef enum FaissxConnState {
    FAISSX_CONN_NONE = 0,       /**< local mode: no server configured */
    FAISSX_CONN_CONNECTED = 1,  /**< at least one connection is up */
    FAISSX_CONN_CONNECTING = 2, /**< no connection; NNG is redialing */
    FAISSX_CONN_FAILED = 3,     /**< no connection, and the last call (or
                                     the initial dial) could not reach the
                                     server; NNG keeps redialing */
} FaissxConnState;

/** The state of the current configuration's connection. When only the
 *  environment configures the client, this connects first (as the first
 *  index construction would); a failed dial is FAISSX_CONN_FAILED. */
FaissxConnState faissx_connection_state(void);

/** Called on every state change of any connection, with the server URL.
 *  It runs on an NNG thread (or the calling thread), one call at a time:
 *  keep it short; it may call faissx_connection_state but no function that
 *  talks to a server, nor faissx_set_connection_callback. */
typedef void (*FaissxConnStateCallback)(FaissxConnState state,
                                        const char* url, void* user);

/** Installs the state callback (NULL removes it). Once this returns, the
 *  previous callback is not running and will not be called again. */
void faissx_set_connection_callback(FaissxConnStateCallback cb, void* user);

typedef enum FaissxLogLevel {
    FAISSX_LOG_ERROR = 0,
    FAISSX_LOG_WARN = 1,  /**< default: falling back to local indexes */
    FAISSX_LOG_INFO = 2,  /**< connection state changes */
    FAISSX_LOG_DEBUG = 3, /**< every retry */
} FaissxLogLevel;

/** Where the client library's messages go: cb (NULL: stderr, one line per
 *  message prefixed "faissx: "). It may be called on any thread, also from
 *  inside a faissx call, one message at a time: it must not call faissx
 *  functions. Once this returns, the previous callback is not running and
 *  will not be called again. */
typedef void (*FaissxLogCallback)(FaissxLogLevel level, const char* message,
                                  void* user);
void faissx_set_log_callback(FaissxLogCallback cb, void* user);

/** Messages above `level` are dropped (default FAISSX_LOG_WARN, or
 *  FAISSX_CLIENT_LOG_LEVEL = error|warn|info|debug). */
void faissx_set_log_level(FaissxLogLevel level);

/* ------------------------------------------------------------------------
 * Client cache (opt-in): search results and reconstructed vectors of remote
 * indexes, kept in an LRU bounded by bytes, with an optional TTL
 * (docs/client.md, "Caching"). Off unless cache_max_bytes > 0.
 *
 * Cached: faiss_Index_search without per-call parameters (a batch is one
 * entry, keyed by the whole query block), faiss_Index_reconstruct,
 * _reconstruct_n and _reconstruct_batch. A key holds the index's identity
 * (server URL and server-side handle: handles to one named index share
 * it), n, k, d, the metric and the full query bytes. Consistency: every
 * write through this process (add, add_with_ids, remove_ids, reset, train,
 * merge_from, IVF add_core/update_vectors/..., setting a parameter such as
 * nprobe, dropping a named index) drops the index's entries before it
 * returns, so a search never sees a result older than the process's own
 * last acknowledged write. Writes by other processes are seen once the
 * TTL has passed (or after faissx_cache_invalidate).
 * ------------------------------------------------------------------------ */

/** Counters since the process started (or faissx_cache_reset_stats), and
 *  the current size. */
typedef struct FaissxCacheStats {
    uint64_t hits;          /**< answered from the cache */
    uint64_t misses;        /**< looked up, not found (or expired): the
                                 server answered */
    uint64_t insertions;    /**< results stored */
    uint64_t evictions;     /**< least recently used entries dropped to
                                 stay within max_bytes */
    uint64_t expirations;   /**< entries found older than the TTL (each also
                                 counts as a miss) */
    uint64_t invalidations; /**< entries dropped by writes, invalidation,
                                 clearing */
    uint64_t entries;       /**< entries now */
    uint64_t bytes;         /**< their size: keys, values, and ~160 bytes of
                                 bookkeeping each */
    int64_t max_bytes;      /**< the bound (0: off) */
    int ttl_ms;             /**< the TTL (0: none) */
    int reserved[7];
} FaissxCacheStats;

/** Changes the cache's limits at once, without reconnecting (until the
 *  next faissx_configure*, which applies its own). max_bytes 0 turns the
 *  cache off and empties it; a smaller bound evicts the least recently
 *  used entries. Negative values fail with FAISSX_E_INVALID. */
int faissx_cache_configure(int64_t max_bytes, int ttl_ms);

/** Fills *stats. Fails only for NULL. */
int faissx_cache_stats(FaissxCacheStats* stats);

/** Zeroes the counters (not entries, bytes or the limits). */
void faissx_cache_reset_stats(void);

/** Drops every entry. */
void faissx_cache_clear(void);

/** Drops the entries of one remote index (of every index on its server
 *  when it is part of a remote composite, which shares data with its
 *  children): use it when another process wrote to the index. A local
 *  index has none: returns 0. NULL fails with FAISSX_E_INVALID. */
int faissx_cache_invalidate(const FaissIndex* index);

/* ------------------------------------------------------------------------
 * Progress and cancellation
 *
 * Long calls -- faiss_Index_train, faiss_Index_add / _add_with_ids,
 * faiss_Clustering_train, faiss_kmeans_clustering, and their remote
 * counterparts -- report progress to a callback and can be cancelled, on
 * local and remote indexes alike. Both settings are per thread: they apply
 * to the calls the setting thread makes. A cancelled call fails with
 * FAISSX_E_CANCELED and leaves the index (or Clustering object) as it was
 * before the call, for the index types listed in docs/api.md ("Progress and
 * cancellation"); on other types a call can only be cancelled before it
 * starts, and once started it runs to the end (progress is still reported).
 * ------------------------------------------------------------------------ */

/** What a long call is doing. */
typedef enum FaissxProgressOp {
    FAISSX_PROGRESS_TRAIN = 1,      /**< units: k-means iterations */
    FAISSX_PROGRESS_ADD = 2,        /**< units: vectors added */
    FAISSX_PROGRESS_CLUSTERING = 3, /**< units: k-means iterations */
    FAISSX_PROGRESS_UPLOAD = 4,     /**< units: bytes on the server, plus a
                                         last one for the server reading and
                                         installing the index */
    FAISSX_PROGRESS_DOWNLOAD = 5,   /**< units: bytes received */
} FaissxProgressOp;

/** One progress report. done never decreases during a call and reaches
 *  total when the call succeeds. */
typedef struct FaissxProgress {
    int op;           /**< a FaissxProgressOp */
    int64_t done;     /**< units finished */
    int64_t total;    /**< units in the whole call (>= 1) */
    double elapsed_s; /**< seconds since the call started */
    double eta_s;     /**< estimated seconds left; < 0 while unknown */
} FaissxProgress;

/** Called on the thread that made the call, at its start (done = 0), after
 *  each unit of work (for a remote call: whenever the server reports
 *  progress, about every 100 ms) and at the end (done = total). Return 0
 *  to continue, non-zero to cancel the call. `p` is valid during the call
 *  only. The callback must not call faissx/faiss functions on the index
 *  being worked on. */
typedef int (*FaissxProgressCallback)(const FaissxProgress* p, void* user);

/** Installs the progress callback of the calling thread (NULL removes it). */
void faissx_set_progress_callback(FaissxProgressCallback cb, void* user);

/** A flag another thread can raise to cancel calls that use it. */
typedef struct FaissxCancelToken FaissxCancelToken;

/** A new, unraised token. *out belongs to the caller (faissx_cancel_token_free). */
int faissx_cancel_token_new(FaissxCancelToken** out);

/** Raises the token: the calls using it stop as soon as they can and fail
 *  with FAISSX_E_CANCELED; later calls using it fail at once until
 *  faissx_cancel_token_reset. Safe from any thread; accepts NULL. */
void faissx_cancel_token_cancel(FaissxCancelToken* token);

/** 1 if the token is raised, else 0 (0 for NULL). */
int faissx_cancel_token_is_cancelled(const FaissxCancelToken* token);

/** Lowers the token again. */
void faissx_cancel_token_reset(FaissxCancelToken* token);

/** Frees the token. No thread may still be using it (as its current token,
 *  faissx_set_cancel_token). Accepts NULL. */
void faissx_cancel_token_free(FaissxCancelToken* token);

/** Makes `token` the calling thread's token (NULL: none) for the calls it
 *  makes from now on, and returns the previous one, so a scope can
 *  restore it. The token is borrowed: it must outlive its use. */
FaissxCancelToken* faissx_set_cancel_token(FaissxCancelToken* token);

/* ------------------------------------------------------------------------
 * Search parameters (upstream names, faiss >= 1.7.4 C API)
 * ------------------------------------------------------------------------ */
FAISS_DECLARE_CLASS(SearchParameters)
FAISS_DECLARE_DESTRUCTOR(SearchParameters)

/** New search parameters restricting results to ids selected by `sel`
 *  (may be NULL: no restriction). `sel` is borrowed: it must outlive every
 *  search that uses these parameters; the caller frees both. */
int faiss_SearchParameters_new(FaissSearchParameters** p_sp,
                               FaissIDSelector* sel);

/** k-NN search with per-call parameters (`params` may be NULL). Supported
 *  by Flat, IVF, HNSW, IDMap (selector) indexes; others fail with a clear
 *  error. Same outputs as faiss_Index_search. */
int faiss_Index_search_with_params(const FaissIndex* index,
                                   idx_t n,
                                   const float* x,
                                   idx_t k,
                                   const FaissSearchParameters* params,
                                   float* distances,
                                   idx_t* labels);

FAISS_DECLARE_CLASS_INHERITED(SearchParametersIVF, SearchParameters)
FAISS_DECLARE_DESTRUCTOR(SearchParametersIVF)
/** Returns `sp` if it is an IVF parameter set, NULL otherwise. */
FaissSearchParametersIVF* faiss_SearchParametersIVF_cast(
        FaissSearchParameters* sp);
int faiss_SearchParametersIVF_new(FaissSearchParametersIVF** p_sp);
/** `sel` is borrowed (may be NULL); nprobe >= 1; max_codes 0 = unlimited. */
int faiss_SearchParametersIVF_new_with(FaissSearchParametersIVF** p_sp,
                                       FaissIDSelector* sel,
                                       size_t nprobe,
                                       size_t max_codes);
FAISS_DECLARE_GETTER(SearchParametersIVF, const FaissIDSelector*, sel)
FAISS_DECLARE_GETTER_SETTER(SearchParametersIVF, size_t, nprobe)
FAISS_DECLARE_GETTER_SETTER(SearchParametersIVF, size_t, max_codes)

/** HNSW search parameters (upstream names, faiss >= 1.8 C API): efSearch
 *  (> 0; faiss's default 16) and check_relative_distance (default 1) for
 *  one call of faiss_Index_search_with_params on an HNSW index (IndexHNSW
 *  and its Flat/SQ/PQ variants, also inside IDMap), locally or on a
 *  server: the results equal faiss C++'s search with the same parameters,
 *  and the index's own efSearch stays unchanged. Note that faiss 1.7.3's
 *  HNSW walk keeps the index's efSearch for its candidate queue, so a
 *  per-call efSearch is not the same as setting it on the index. A search with efSearch <= 0 (set through the
 *  setter) fails. Another index type refuses them or, like Flat, uses only
 *  the selector, as faiss does. `sel` is borrowed (may be NULL). Free with
 *  faiss_SearchParametersHNSW_free or faiss_SearchParameters_free. */
FAISS_DECLARE_CLASS_INHERITED(SearchParametersHNSW, SearchParameters)
FAISS_DECLARE_DESTRUCTOR(SearchParametersHNSW)
/** Returns `sp` if it is an HNSW parameter set, NULL otherwise. */
FaissSearchParametersHNSW* faiss_SearchParametersHNSW_cast(
        FaissSearchParameters* sp);
int faiss_SearchParametersHNSW_new(FaissSearchParametersHNSW** p_sp);
int faiss_SearchParametersHNSW_new_with(FaissSearchParametersHNSW** p_sp,
                                        FaissIDSelector* sel,
                                        int efSearch);
FAISS_DECLARE_GETTER(SearchParametersHNSW, const FaissIDSelector*, sel)
FAISS_DECLARE_GETTER_SETTER(SearchParametersHNSW, int, efSearch)
FAISS_DECLARE_GETTER_SETTER(SearchParametersHNSW, int, check_relative_distance)

/** Range search with per-call parameters (`params` may be NULL: as
 *  faiss_Index_range_search), which faiss 1.7.3's C API has no call for:
 *  a selector (Flat, IVF, IDMap) and IVF nprobe/max_codes, as faiss C++'s
 *  range_search with the same parameters. Indexes without a range search
 *  (HNSW) fail as in faiss_Index_range_search. On a remote index the
 *  parameters travel with the request (a server that predates them
 *  answers FAISSX_E_PROTOCOL, "trailing bytes"). `params` is borrowed;
 *  `result` as for faiss_Index_range_search. */
int faissx_Index_range_search_with_params(const FaissIndex* index,
                                          idx_t n,
                                          const float* x,
                                          float radius,
                                          const FaissSearchParameters* params,
                                          FaissRangeSearchResult* result);

/* ------------------------------------------------------------------------
 * IDSelector combinators and bitmap (upstream names, faiss >= 1.8 C API).
 * Operands are borrowed: they must outlive the combinator.
 * ------------------------------------------------------------------------ */
FAISS_DECLARE_CLASS(IDSelectorNot)
int faiss_IDSelectorNot_new(FaissIDSelectorNot** p_sel,
                            const FaissIDSelector* sel);
FAISS_DECLARE_CLASS(IDSelectorAnd)
int faiss_IDSelectorAnd_new(FaissIDSelectorAnd** p_sel,
                            const FaissIDSelector* lhs_sel,
                            const FaissIDSelector* rhs_sel);
FAISS_DECLARE_CLASS(IDSelectorOr)
int faiss_IDSelectorOr_new(FaissIDSelectorOr** p_sel,
                           const FaissIDSelector* lhs_sel,
                           const FaissIDSelector* rhs_sel);
FAISS_DECLARE_CLASS(IDSelectorXOr)
int faiss_IDSelectorXOr_new(FaissIDSelectorXOr** p_sel,
                            const FaissIDSelector* lhs_sel,
                            const FaissIDSelector* rhs_sel);
/** Selects id i when bit (i % 8) of bitmap[i / 8] is set, for i < 8 * n.
 *  The bitmap is borrowed. */
FAISS_DECLARE_CLASS(IDSelectorBitmap)
int faiss_IDSelectorBitmap_new(FaissIDSelectorBitmap** p_sel,
                               size_t n,
                               const uint8_t* bitmap);
/* The selector handles above are all FaissIDSelector underneath: cast with
 * (FaissIDSelector*) to use them, and free with faiss_IDSelector_free. */

/* ------------------------------------------------------------------------
 * Auxiliary structures the 1.7.3 C API declares but cannot create or free.
 * ------------------------------------------------------------------------ */

/** A distance computer over `index`'s stored vectors (Flat, SQ, HNSW, ...;
 *  indexes without one fail). Use it with the faiss_DistanceComputer_*
 *  calls, which reject vector ids outside [0, ntotal at creation); free it
 *  with faiss_DistanceComputer_free before modifying or freeing the index. */
int faissx_Index_get_distance_computer(const FaissIndex* index,
                                       FaissDistanceComputer** p_dc);

/** Frees a partial result made by faiss_RangeSearchPartialResult_new (the
 *  RangeSearchResult it fills is not freed). Accepts NULL. */
void faissx_RangeSearchPartialResult_free(FaissRangeSearchPartialResult* obj);

/* ------------------------------------------------------------------------
 * Binary indexes: constructors (faiss 1.7.3's C API has none) and factory.
 * The returned indexes are used through the IndexBinary_c.h calls and freed
 * with faiss_IndexBinary_free. d is in bits and must be a multiple of 8.
 * ------------------------------------------------------------------------ */

/** Upstream name (faiss >= 1.8): builds what faiss 1.7.3 knows: "BFlat",
 *  "BIVF1024", "BIVF1024_HNSW32", "BHNSW32", "BHash64", "BHash2x32"
 *  (no "IDMap," wrappers in 1.7.3). */
int faiss_index_binary_factory(FaissIndexBinary** p_index,
                               int d,
                               const char* description);

FAISS_DECLARE_CLASS_INHERITED(IndexBinaryFlat, IndexBinary)
int faiss_IndexBinaryFlat_new(FaissIndexBinaryFlat** p_index);
int faiss_IndexBinaryFlat_new_with(FaissIndexBinaryFlat** p_index, idx_t d);
FaissIndexBinaryFlat* faiss_IndexBinaryFlat_cast(FaissIndexBinary* index);
FAISS_DECLARE_DESTRUCTOR(IndexBinaryFlat)

FAISS_DECLARE_CLASS_INHERITED(IndexBinaryIVF, IndexBinary)
FaissIndexBinaryIVF* faiss_IndexBinaryIVF_cast(FaissIndexBinary* index);
FAISS_DECLARE_DESTRUCTOR(IndexBinaryIVF)
FAISS_DECLARE_GETTER(IndexBinaryIVF, size_t, nlist)
FAISS_DECLARE_GETTER_SETTER(IndexBinaryIVF, size_t, nprobe)
FAISS_DECLARE_GETTER(IndexBinaryIVF, FaissIndexBinary*, quantizer)
FAISS_DECLARE_GETTER_SETTER(IndexBinaryIVF, int, own_fields)
/** Binary inverted file over `quantizer` (a binary index of dimension d,
 *  typically a BinaryFlat). The IVF takes ownership of the quantizer
 *  (own_fields = 1): free only the IVF. */
int faissx_IndexBinaryIVF_new(FaissIndexBinaryIVF** p_index,
                              FaissIndexBinary* quantizer,
                              idx_t d,
                              size_t nlist);

/** Multi-hash binary index on the first `b` bits of each code. */
int faissx_IndexBinaryHash_new(FaissIndexBinary** p_index, int d, int b);

/** HNSW graph over a binary flat storage, M links per node. */
int faissx_IndexBinaryHNSW_new(FaissIndexBinary** p_index, int d, int M);
/** efSearch of a binary HNSW index (errors if `index` is not one). */
int faissx_IndexBinaryHNSW_set_efSearch(FaissIndexBinary* index, int ef);
int faissx_IndexBinaryHNSW_get_efSearch(const FaissIndexBinary* index,
                                        int* ef);

/** k-NN search of a binary index with search parameters (faiss 1.7.3's
 *  binary indexes refuse them; faiss >= 1.8 has no C call for it either).
 *  On an IndexBinaryIVF, FaissSearchParametersIVF sets nprobe (> 0; capped
 *  at nlist) and max_codes for this call only: the results equal a search
 *  after faiss_IndexBinaryIVF_set_nprobe, and the index's own nprobe is
 *  unchanged. Plain FaissSearchParameters without a selector, or params
 *  NULL, search as faiss_IndexBinary_search. A selector is refused
 *  (FAISSX_E_UNSUPPORTED: faiss 1.7.3's binary search cannot filter), as
 *  are IVF parameters on another index type (FAISSX_E_INVALID). On a remote
 *  index the parameters travel with the request. `params` is borrowed. */
int faissx_IndexBinary_search_with_params(const FaissIndexBinary* index,
                                          idx_t n,
                                          const uint8_t* x,
                                          idx_t k,
                                          const FaissSearchParameters* params,
                                          int32_t* distances,
                                          idx_t* labels);

/** Like faiss_clone_index for a binary index. */
int faissx_clone_index_binary(const FaissIndexBinary* index,
                              FaissIndexBinary** p_out);

/** Create a named binary index on the server (binary factory syntax for
 *  `description`, as faiss_index_binary_factory; names as for
 *  faissx_index_create, and in the same namespace: faissx_index_list and
 *  faissx_index_drop see and delete it). On a server with a data
 *  directory it is durable like a named float index (kept in the store,
 *  mutations acknowledged once logged, reopened by name after a restart).
 *  Freeing the handle does not delete it. */
int faissx_index_binary_create(FaissIndexBinary** p_index, const char* name,
                               int d, const char* description);

/** 1 if `index` lives on a server, 0 if it is a local binary index. In
 *  remote mode the binary constructors that take a dimension, the binary
 *  factory and faissx_IndexBinaryIVF_new over a remote quantizer create
 *  the index on the server. */
int faissx_index_binary_is_remote(const FaissIndexBinary* index);

/** Open a named binary index (FAISSX_E_NOT_FOUND if none;
 *  FAISSX_E_INVALID if the name is a float index, which
 *  faissx_index_open opens -- and which refuses binary ones). */
int faissx_index_binary_open(FaissIndexBinary** p_index, const char* name);

/** Copy a local binary index to the server, as faissx_index_upload does a
 *  float one: name NULL (or "") gives an unnamed index that lives until
 *  freed, else a named one (FAISSX_E_EXISTS if the name is taken). Sent in
 *  chunks, so any size the server's --max-upload-bytes allows, with
 *  progress (FAISSX_PROGRESS_UPLOAD) and cancellation (the thread's
 *  callback or token): a cancelled or failed upload leaves nothing on the
 *  server. *p_index is the remote handle; `local` is unchanged. A remote
 *  `local` fails with FAISSX_E_INVALID (faissx_clone_index_binary copies
 *  it on its server). */
int faissx_index_binary_upload(const FaissIndexBinary* local,
                               const char* name,
                               FaissIndexBinary** p_index);

/** A local copy of a remote binary index, fetched in chunks with progress
 *  (FAISSX_PROGRESS_DOWNLOAD) and cancellation (or a copy of a local
 *  one), as faissx_index_download. */
int faissx_index_binary_download(const FaissIndexBinary* index,
                                 FaissIndexBinary** p_local);

/* ------------------------------------------------------------------------
 * Durable store
 *
 * A directory of named indexes that survive crashes: every mutation made
 * through a store handle (faiss_Index_add, _add_with_ids, _remove_ids,
 * _reset, _train, faissx_store_set_param, and the faiss_IndexBinary_*
 * counterparts on a binary store handle) is written to a write-ahead log
 * and the call returns only once it is durable under the sync policy.
 * Layout and file formats: docs/format.md. One process at a time: the
 * store directory is locked while open.
 * ------------------------------------------------------------------------ */

typedef enum FaissxSyncPolicy {
    FAISSX_SYNC_ALWAYS = 0,   /**< fsync before each mutation returns
                                   (concurrent writers share fsyncs) */
    FAISSX_SYNC_INTERVAL = 1, /**< fsync every interval_ms in the background:
                                   a crash loses at most that much */
    FAISSX_SYNC_NONE = 2,     /**< leave it to the OS (survives a process
                                   crash, not a power loss) */
} FaissxSyncPolicy;

typedef struct FaissxStoreOptions {
    FaissxSyncPolicy sync;       /**< default FAISSX_SYNC_ALWAYS */
    int interval_ms;             /**< for FAISSX_SYNC_INTERVAL; default 100 */
    uint64_t snapshot_log_bytes; /**< checkpoint an index when its log grows
                                      past this; 0 = only on request.
                                      Default 64 MiB */
    int repair;                  /**< 1: open damaged indexes anyway, cutting
                                      a damaged log at the first bad record
                                      and rebuilding a bad snapshot from the
                                      previous generation (losses are in
                                      faissx_store_report). Default 0 */
    int reserved[8];             /**< zero; room to grow */
} FaissxStoreOptions;

/** Fills *opts with the defaults. Call it before setting fields. */
void faissx_store_options_init(FaissxStoreOptions* opts);

typedef struct FaissxStore FaissxStore;

/** Opens the store in directory `dir` (created if missing; its parent must
 *  exist) and locks it: another process (or another open in this one)
 *  fails with FAISSX_E_PERMISSION. `opts` may be NULL (defaults). *out
 *  belongs to the caller: release it with faissx_store_close. */
int faissx_store_open(FaissxStore** out, const char* dir,
                      const FaissxStoreOptions* opts);

/** Syncs and closes every index, unlocks and frees the store. Handles
 *  still open keep answering searches, but their mutations fail; free them
 *  with faiss_Index_free. Accepts NULL. */
void faissx_store_close(FaissxStore* store);

/** Creates a named index (faiss_index_factory syntax for `description`).
 *  Names are 1-128 characters from [A-Za-z0-9._-], not starting with '.'.
 *  FAISSX_E_EXISTS if the name is taken. *out is a new handle owned by the
 *  caller; faiss_Index_free releases the handle, not the index. */
int faissx_store_create_index(FaissxStore* store, const char* name, int d,
                              const char* description,
                              FaissMetricType metric, FaissIndex** out);

/** A new handle to an existing index (FAISSX_E_NOT_FOUND if none). The
 *  first open in a process recovers it: the snapshot is checked before it
 *  is read, the log replayed, a torn tail cut (see faissx_store_report);
 *  a damaged snapshot or log fails with FAISSX_E_IO unless opts.repair.
 *  Handles to the same index share one in-memory index. */
int faissx_store_open_index(FaissxStore* store, const char* name,
                            FaissIndex** out);

/** Creates a named binary index (faiss_index_binary_factory syntax for
 *  `description`; `d` in bits, a multiple of 8). Names are shared with
 *  float indexes: FAISSX_E_EXISTS if the name is taken by either kind.
 *  *out is a new handle owned by the caller; faiss_IndexBinary_free
 *  releases the handle, not the index. Its mutations (faiss_IndexBinary_
 *  add, _add_with_ids, _remove_ids, _reset, _train,
 *  faissx_store_set_param_binary) return only once durable, as for a
 *  float index. */
int faissx_store_create_index_binary(FaissxStore* store, const char* name,
                                     int d, const char* description,
                                     FaissIndexBinary** out);

/** A new handle to an existing binary index, recovered on first open as
 *  faissx_store_open_index does (FAISSX_E_NOT_FOUND if none,
 *  FAISSX_E_INVALID if `name` is a float index -- which
 *  faissx_store_open_index opens, and which refuses binary ones). */
int faissx_store_open_index_binary(FaissxStore* store, const char* name,
                                   FaissIndexBinary** out);

/** Names of the store's indexes, sorted: *names is an array of *count
 *  malloc'd strings; release it with faissx_store_list_free. */
int faissx_store_list(FaissxStore* store, char*** names, size_t* count);
void faissx_store_list_free(char** names, size_t count);

/** Deletes an index and its files. Open handles to it keep answering
 *  searches; their mutations fail with FAISSX_E_NOT_FOUND. */
int faissx_store_drop(FaissxStore* store, const char* name);

/** Writes a snapshot of index `name` (NULL: of every index opened since
 *  the store was) and starts a new, empty log. */
int faissx_store_checkpoint(FaissxStore* store, const char* name);

/** What recovery reported since the store was opened (torn tails cut,
 *  repairs, with file names and offsets), one event per line; "" when
 *  nothing happened. *text is malloc'd: release it with free(). */
int faissx_store_report(FaissxStore* store, char** text);

/** 1 if `index` is a store handle, else 0. */
int faissx_index_is_stored(const FaissIndex* index);

/** Sets a search-time parameter ("nprobe", "efSearch", ... as
 *  faiss_ParameterSpace_set_index_parameter names them) on a store handle,
 *  durably. faiss_ParameterSpace_set_index_parameter(s) and the typed
 *  setters (faiss_IndexIVF_set_nprobe, ...) do the same on a store handle;
 *  the typed getters and downcasts (faiss_IndexIVF_cast) see the index
 *  behind it. */
int faissx_store_set_param(FaissIndex* index, const char* name, double value);

/** 1 if `index` is a binary store handle, else 0. */
int faissx_index_binary_is_stored(const FaissIndexBinary* index);

/** faissx_store_set_param for a binary store handle: "nprobe" (an
 *  IndexBinaryIVF), "efSearch" (an IndexBinaryHNSW) or "verbose";
 *  FAISSX_E_UNSUPPORTED for a name that does not apply.
 *  faiss_IndexBinaryIVF_set_nprobe and faissx_IndexBinaryHNSW_set_efSearch
 *  do the same on a binary store handle; the typed getters and downcasts
 *  (faiss_IndexBinaryIVF_cast, ...) see the index behind it. */
int faissx_store_set_param_binary(FaissIndexBinary* index, const char* name,
                                  double value);

#ifdef __cplusplus
}
#endif

#endif /* FAISSX_H */
