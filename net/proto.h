/* proto.h -- internal: the faissx wire protocol, version 1.
 *
 * docs/protocol.md is the prose specification; this header is its code.
 * The codec is pure (no I/O, no allocation beyond the writer's buffer) and
 * bounds-checks every read, so it can be fuzzed on its own.
 *
 * A message is a 40-byte header followed by `body_len` bytes of body. All
 * integers are little-endian. Every body field occupies a multiple of 8
 * bytes, so arrays inside a body that starts 8-aligned are 8-aligned too:
 *
 *   u64 / i64 / f64       8 bytes
 *   str                   u64 length, bytes, zero padding to 8
 *   array<T>              u64 count, count * sizeof(T) bytes, padding to 8
 *
 * A request body starts with the API key (a str, possibly empty), then the
 * operation's fields. A reply with status 0 carries the operation's result
 * fields; a reply with a negative status (a FaissxError) carries one str,
 * the error message. */
#ifndef FX_PROTO_H
#define FX_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FX_PROTO_MAGIC 0x58534146u /* "FASX" on the wire */
#define FX_PROTO_VERSION 1
#define FX_HDR_SIZE 40

/* Header flags. */
#define FX_FLAG_REPLY 0x1u
/* Requests: run as a job whose progress PROGRESS reports and CANCEL stops
 * (TRAIN, ADD, ADD_WITH_IDS; ignored on other ops). */
#define FX_FLAG_JOB 0x2u
/* Requests: the reply also carries the state (i64 ntotal, i64 is_trained)
 * of the indexes the call read or changed, so the client's cached state is
 * fresh without an INFO round trip: SEARCH appends h's state after D and I
 * (as of the search), MERGE_FROM and IVF COPY_SUBSET_TO append the other
 * index's state after h's; ignored on other ops. Servers that predate it
 * refuse the flag ("unknown header flags"): the client then asks INFO. */
#define FX_FLAG_STATE 0x4u

/* Operations. Numbers are part of the protocol: never reuse one. */
enum fx_op {
    FX_OP_PING = 1,          /* -> u64 server version, str tenant
                                [, str shm socket path, u64 instance[2]]
                                (only from a server with --shm-socket) */
    FX_OP_CREATE = 2,        /* str name, i64 d, i64 metric, str description
                                -> index info (see below) */
    FX_OP_OPEN = 3,          /* str name -> index info */
    FX_OP_LIST = 4,          /* -> u64 count, count * (str name, i64 d,
                                i64 ntotal) */
    FX_OP_DROP = 5,          /* str name -> (nothing) */
    FX_OP_RELEASE = 6,       /* u64 handle -> (nothing) */
    FX_OP_INFO = 7,          /* u64 handle -> index info */
    FX_OP_TRAIN = 8,         /* u64 handle, i64 n, array<f32> x */
    FX_OP_ADD = 9,           /* u64 handle, i64 n, array<f32> x */
    FX_OP_ADD_WITH_IDS = 10, /* u64 handle, i64 n, array<f32> x,
                                array<i64> ids */
    FX_OP_SEARCH = 11,       /* u64 handle, i64 n, i64 k, array<f32> x
                                -> array<f32> D, array<i64> I */
    FX_OP_RANGE_SEARCH = 12, /* u64 handle, i64 n, f64 radius, array<f32> x
                                -> array<u64> lims, array<i64> I,
                                   array<f32> D */
    FX_OP_ASSIGN = 13,       /* u64 handle, i64 n, i64 k, array<f32> x
                                -> array<i64> I */
    FX_OP_RESET = 14,        /* u64 handle */
    FX_OP_REMOVE_IDS = 15,   /* u64 handle, selector -> u64 n_removed */
    FX_OP_RECONSTRUCT_N = 16, /* u64 handle, i64 i0, i64 ni
                                 -> array<f32> */
    FX_OP_RECONSTRUCT_KEYS = 17, /* u64 handle, array<i64> keys
                                    -> array<f32> */
    FX_OP_RESIDUAL = 18,     /* u64 handle, i64 n, array<f32> x,
                                array<i64> keys -> array<f32> */
    FX_OP_SA_CODE_SIZE = 19, /* u64 handle -> u64 */
    FX_OP_SA_ENCODE = 20,    /* u64 handle, i64 n, array<f32> x
                                -> array<u8> */
    FX_OP_SA_DECODE = 21,    /* u64 handle, i64 n, array<u8> codes
                                -> array<f32> */
    FX_OP_SET_PARAM = 22,    /* u64 handle, str name, f64 value */
    FX_OP_GET_PARAM = 23,    /* u64 handle, str name -> f64 */
    FX_OP_SERIALIZE = 24,    /* u64 handle -> array<u8> faiss index bytes */
    FX_OP_UPLOAD = 25,       /* str name, array<u8> faiss index bytes
                                -> index info */
    FX_OP_CLONE = 26,        /* u64 handle -> index info */
    FX_OP_MERGE_FROM = 27,   /* u64 handle, u64 other, i64 add_id */
    FX_OP_WRAP = 28,         /* u64 child, i64 wrap type, fields (below)
                                -> index info of the new composite */
    FX_OP_FETCH = 29,        /* u64 handle, str what, i64 arg
                                -> i64 elem size, array<u8> bytes */
    FX_OP_IVF = 30,          /* u64 handle, i64 ivf op, fields (below) */
    FX_OP_BINARY = 31,       /* i64 binary op, fields (below) */
    FX_OP_PROGRESS = 32,     /* u64 job request id -> i64 running, i64 op,
                                i64 done, i64 total, f64 elapsed seconds */
    FX_OP_CANCEL = 33,       /* u64 job request id -> i64 running */
    /* Chunked upload (docs/protocol.md, "Chunked upload"): the bytes are
     * staged on the server, per tenant and client, then parsed at once. */
    FX_OP_UPLOAD_BEGIN = 34, /* u64 total bytes, i64 kind (FX_UPLOAD_*)
                                -> u64 upload id, u64 max chunk bytes */
    FX_OP_UPLOAD_CHUNK = 35, /* u64 upload, u64 offset, array<u8> bytes
                                -> u64 bytes received */
    FX_OP_UPLOAD_COMMIT = 36, /* u64 upload, str name -> index info
                                 (binfo for FX_UPLOAD_BINARY) */
    FX_OP_UPLOAD_ABORT = 37, /* u64 upload -> (nothing) */
    /* Chunked download (docs/protocol.md, "Chunked download"). */
    FX_OP_DOWNLOAD_BEGIN = 38, /* u64 handle, i64 kind (FX_UPLOAD_*)
                                  -> u64 total bytes, u64 download id (0:
                                  all bytes are in this reply), u64 max
                                  chunk bytes, array<u8> first bytes */
    FX_OP_DOWNLOAD_CHUNK = 39, /* u64 download, u64 offset, u64 max bytes
                                  -> array<u8> bytes */
    FX_OP_DOWNLOAD_END = 40,   /* u64 download -> (nothing) */
    FX_OP_COMPOSITE = 41,    /* u64 handle, i64 composite op, fields (below) */
    /* Same-host add through a shared-memory ring (net/shm.h,
     * docs/protocol.md "Shared-memory add"): */
    FX_OP_ADD_STREAM = 42,   /* u64 handle, i64 n, i64 with_ids,
                                u64 token[2], u64 nslots,
                                u64 rows_per_slot, u64 slot_offset,
                                u64 slot_bytes -> state (as ADD) */
    /* The server's limits (docs/protocol.md, "Limits"), so a client can
     * refuse or split a request that would not fit instead of sending it;
     * any key may ask, no index involved. Later servers may append
     * fields: clients stop reading where they know. */
    FX_OP_LIMITS = 43,       /* -> u64 max_message_bytes, u64 max_k,
                                u64 max_batch */
    FX_OP_MAX_ = 44
};

/* What a chunked upload holds. */
enum fx_upload_kind {
    FX_UPLOAD_INDEX = 0,  /* faiss index bytes (write_index) */
    FX_UPLOAD_BINARY = 1, /* faiss binary index bytes (write_index_binary) */
};

/* WRAP builds a composite over an existing (empty) index of the same
 * tenant; the two share one data structure on the server, as they would in
 * a local faiss program:
 *   FX_WRAP_IVFFLAT: i64 d, i64 nlist, i64 metric       (child = quantizer)
 *   FX_WRAP_IVFSQ:   i64 d, i64 nlist, i64 qtype, i64 metric,
 *                    i64 encode_residual                 (child = quantizer)
 *   FX_WRAP_IDMAP, FX_WRAP_IDMAP2, FX_WRAP_REFINE_FLAT: nothing
 *   FX_WRAP_PRETRANSFORM: array<u8> a faiss VectorTransform (may be empty) */
enum fx_wrap_type {
    FX_WRAP_IVFFLAT = 1,
    FX_WRAP_IVFSQ = 2,
    FX_WRAP_IDMAP = 3,
    FX_WRAP_IDMAP2 = 4,
    FX_WRAP_PRETRANSFORM = 5,
    FX_WRAP_REFINE_FLAT = 6,
};

/* FETCH returns a copy of an internal array as raw bytes (array<u8>,
 * elements of the announced size): "xb" (flat index vectors,
 * f32), "id_map" (IDMap ids, i64), "list_sizes" (IVF, u64 per list),
 * "list_ids" (IVF list `arg`, i64). */

/* IVF operations (FX_OP_IVF), after u64 handle, i64 op:
 *   FX_IVF_MAKE_DIRECT_MAP: i64 on                       -> state
 *   FX_IVF_IMBALANCE:                                    -> f64
 *   FX_IVF_SEARCH_PREASSIGNED: i64 n, i64 k, i64 store_pairs, array<f32> x,
 *        array<i64> assign (n*nprobe), array<f32> centroid_dis
 *                                                        -> array<f32> D, array<i64> I
 *   FX_IVF_ADD_CORE: i64 n, array<f32> x, i64 has_ids, array<i64> ids,
 *        array<i64> list numbers                         -> state
 *   FX_IVF_UPDATE_VECTORS: i64 n, array<i64> idx, array<f32> v -> state
 *   FX_IVF_COPY_SUBSET_TO: u64 other, i64 type, i64 a1, i64 a2 -> state
 *   FX_IVF_TRAIN_RESIDUAL: i64 n, array<f32> x           -> state */
enum fx_ivf_op {
    FX_IVF_MAKE_DIRECT_MAP = 1,
    FX_IVF_IMBALANCE = 2,
    FX_IVF_SEARCH_PREASSIGNED = 3,
    FX_IVF_ADD_CORE = 4,
    FX_IVF_UPDATE_VECTORS = 5,
    FX_IVF_COPY_SUBSET_TO = 6,
    FX_IVF_TRAIN_RESIDUAL = 7,
};

/* Composite operations (FX_OP_COMPOSITE), after u64 handle, i64 op:
 *   FX_COMP_PREPEND: array<u8> a faiss VectorTransform   -> index info of h
 *        (h must be an IndexPreTransform; the transform goes in front of
 *        its chain, so d becomes the transform's d_in)
 *   FX_COMP_INNER: i64 kind (one FX_KIND_* bit: PRETRANSFORM or IDMAP or
 *        IDMAP2 -> the wrapped index, IVF -> the quantizer, REFINE -> the
 *        base index)                                     -> index info of a
 *        new unnamed handle on that inner index (it shares the composite's
 *        data and lock; RELEASE frees the handle, not the inner index)
 *   FX_COMP_CHAIN: (h an IndexPreTransform)              -> u64 count,
 *        count * array<u8>: each transform of the chain, first applied
 *        first, in faiss's format (a copy of its current, e.g. trained,
 *        state) */
enum fx_comp_op {
    FX_COMP_PREPEND = 1,
    FX_COMP_INNER = 2,
    FX_COMP_CHAIN = 3,
};

/* Binary indexes (faiss::IndexBinary; vectors are n * code_size bytes,
 * code_size = d / 8) have their own operations (FX_OP_BINARY), after
 * i64 op; "binfo" is index info (below) with FX_KIND_BINARY set, d in bits:
 *   FX_BIN_CREATE: str name, i64 d, str description (binary factory
 *        string: "BFlat", "BIVF16", "BHNSW32", "BHash64", ...) -> binfo
 *   FX_BIN_WRAP_IVF: u64 quantizer (a binary index), i64 d, i64 nlist
 *                                                        -> binfo
 *   FX_BIN_INFO: u64 h                                   -> binfo
 *   FX_BIN_TRAIN, FX_BIN_ADD: u64 h, i64 n, array<u8> x  -> state
 *   FX_BIN_ADD_WITH_IDS: u64 h, i64 n, array<u8> x, array<i64> ids -> state
 *   FX_BIN_SEARCH: u64 h, i64 n, i64 k, array<u8> x
 *                                       -> array<i32> D, array<i64> I
 *   FX_BIN_RANGE_SEARCH: u64 h, i64 n, i64 radius, array<u8> x
 *                  -> array<u64> lims, array<i64> I, array<f32> D
 *   FX_BIN_RESET: u64 h                                  -> state
 *   FX_BIN_REMOVE_IDS: u64 h, selector        -> u64 n_removed, state
 *   FX_BIN_RECONSTRUCT_N: u64 h, i64 i0, i64 ni          -> array<u8>
 *   FX_BIN_RECONSTRUCT_KEYS: u64 h, array<i64> keys      -> array<u8>
 *   FX_BIN_SET_PARAM: u64 h, str name, f64 value         -> state
 *   FX_BIN_GET_PARAM: u64 h, str name                    -> f64
 *   FX_BIN_SERIALIZE: u64 h     -> array<u8> (faiss binary index bytes)
 *   FX_BIN_UPLOAD: str name, array<u8> faiss binary index bytes -> binfo
 *   FX_BIN_CLONE: u64 h                                  -> binfo
 *   FX_BIN_ADD_STREAM: ADD_STREAM's fields (u64 h, i64 n, i64 with_ids,
 *        u64 token[2], u64 nslots, u64 rows_per_slot, u64 slot_offset,
 *        u64 slot_bytes); slots hold codes                -> state
 * RELEASE, DROP, OPEN and LIST work on binary indexes too (OPEN answers
 * binfo); every other operation refuses a binary handle. */
enum fx_bin_op {
    FX_BIN_CREATE = 1,
    FX_BIN_WRAP_IVF = 2,
    FX_BIN_INFO = 3,
    FX_BIN_TRAIN = 4,
    FX_BIN_ADD = 5,
    FX_BIN_ADD_WITH_IDS = 6,
    FX_BIN_SEARCH = 7,
    FX_BIN_RANGE_SEARCH = 8,
    FX_BIN_RESET = 9,
    FX_BIN_REMOVE_IDS = 10,
    FX_BIN_RECONSTRUCT_N = 11,
    FX_BIN_RECONSTRUCT_KEYS = 12,
    FX_BIN_SET_PARAM = 13,
    FX_BIN_GET_PARAM = 14,
    FX_BIN_SERIALIZE = 15,
    FX_BIN_UPLOAD = 16,
    FX_BIN_CLONE = 17,
    FX_BIN_ADD_STREAM = 18,
    FX_BIN_MAX_ = 19
};

/* SEARCH and RANGE_SEARCH (and the binary SEARCH sub-op) may end with
 * search parameters:
 *   i64 type (FX_PARAMS_*), i64 has_selector, [selector], then
 *   for IVF: u64 nprobe, u64 max_codes;
 *   for HNSW: i64 efSearch (1..INT_MAX), i64 check_relative_distance.
 * A server that predates a type refuses it ("unknown search parameter
 * type N"); one that predates RANGE_SEARCH's parameters answers
 * "trailing bytes after the body". */
enum fx_params_type {
    FX_PARAMS_PLAIN = 1,
    FX_PARAMS_IVF = 2,
    FX_PARAMS_HNSW = 3
};

/* Mutations (TRAIN, ADD, ADD_WITH_IDS, RESET, MERGE_FROM, SET_PARAM) reply
 * with the index state after the call: i64 ntotal, i64 is_trained.
 * REMOVE_IDS replies u64 n_removed, then the same two fields.
 *
 * "index info", the reply to CREATE/OPEN/INFO/UPLOAD/CLONE:
 *   u64 handle, i64 d, i64 metric, i64 is_trained, i64 ntotal,
 *   i64 kind (FX_KIND_* bits), str description (faiss class name),
 *   i64 nlist, i64 nprobe, i64 code_size (the sizes a client needs to
 *   build SEARCH_PREASSIGNED/SA_DECODE requests without asking first;
 *   docs/protocol.md, "Index info sizes", gives their values for
 *   non-IVF indexes; older servers stop after
 *   the description)
 *
 * A selector (REMOVE_IDS) is i64 type followed by type-specific fields:
 *   FX_SEL_RANGE: i64 imin, i64 imax
 *   FX_SEL_BATCH: array<i64> ids
 *   FX_SEL_NOT:   selector
 *   FX_SEL_AND/OR/XOR: selector, selector
 *   FX_SEL_BITMAP: array<u8> bitmap
 * nested at most FX_SEL_MAX_DEPTH deep. */
enum fx_sel_type {
    FX_SEL_RANGE = 1,
    FX_SEL_BATCH = 2,
    FX_SEL_NOT = 3,
    FX_SEL_AND = 4,
    FX_SEL_OR = 5,
    FX_SEL_XOR = 6,
    FX_SEL_BITMAP = 7,
};
#define FX_SEL_MAX_DEPTH 8

/* What the server-side index is, so typed C calls (faiss_IndexIVF_cast,
 * ..._set_nprobe) can work on a remote handle. */
enum fx_kind {
    FX_KIND_FLAT = 1 << 0,
    FX_KIND_IVF = 1 << 1,
    FX_KIND_HNSW = 1 << 2,
    FX_KIND_IDMAP = 1 << 3,
    FX_KIND_IDMAP2 = 1 << 4,
    FX_KIND_PRETRANSFORM = 1 << 5,
    FX_KIND_SQ = 1 << 6,
    FX_KIND_LSH = 1 << 7,
    FX_KIND_IVFFLAT = 1 << 8,
    FX_KIND_IVFSQ = 1 << 9,
    FX_KIND_SHARDS = 1 << 10,
    FX_KIND_REPLICAS = 1 << 11,
    FX_KIND_REFINE = 1 << 12,
    FX_KIND_FLAT_L2 = 1 << 13,
    FX_KIND_FLAT_IP = 1 << 14,
    /* a faiss::IndexBinary; with FX_KIND_FLAT, FX_KIND_IVF or FX_KIND_HNSW
     * for IndexBinaryFlat, IndexBinaryIVF, IndexBinaryHNSW */
    FX_KIND_BINARY = 1 << 15,
};

typedef struct fx_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t op;
    uint32_t flags;
    uint32_t body_len;
    uint64_t request_id;
    uint64_t client_id;
    uint32_t timeout_ms; /* requests: how long the client waits; 0 = none */
    int32_t status;      /* replies: 0 or a negative FaissxError */
} fx_hdr;

/* Writes the 40-byte encoding of h to out. */
void fx_hdr_encode(const fx_hdr* h, uint8_t out[FX_HDR_SIZE]);

/* Decodes and validates a header at the start of a message of `len` bytes:
 * magic, version, known op, and body_len == len - 40. Returns 0, or a
 * negative FaissxError with a reason in err (errsz bytes). */
int fx_hdr_decode(const uint8_t* buf, size_t len, fx_hdr* h, char* err,
                  size_t errsz);

/* ---- writer: a growable buffer ---- */
typedef struct fx_wbuf {
    uint8_t* data;
    size_t len;
    size_t cap;
    int oom; /* sticky: an allocation failed, the buffer is incomplete */
    /* Where the bytes live. NULL: memory the writer mallocs. Else
     * store(w, cap) makes room for at least cap bytes, keeping the first
     * w->len, and returns the (new) data pointer, NULL when out of memory;
     * store(w, 0) releases the storage. store_ctx is the store's own state
     * (net/nngbuf.c keeps an nng_msg there, so a message is written where
     * NNG sends it from). */
    uint8_t* (*store)(struct fx_wbuf* w, size_t cap);
    void* store_ctx;
} fx_wbuf;

void fx_w_init(fx_wbuf* w);
/* Releases the storage; w is then as after fx_w_init. */
void fx_w_free(fx_wbuf* w);
/* Empties w (len 0, oom cleared) and keeps its storage. */
void fx_w_reset(fx_wbuf* w);
/* Makes room for n more bytes, so the next writes of up to n bytes do not
 * move the data (a hint: failure shows later as oom). */
void fx_w_reserve(fx_wbuf* w, size_t n);
/* Appends n raw bytes (e.g. a whole remembered message). */
void fx_w_bytes(fx_wbuf* w, const void* p, size_t n);
/* Reserve the header space so the body starts 8-aligned at offset 40. */
void fx_w_header_space(fx_wbuf* w);
void fx_w_u64(fx_wbuf* w, uint64_t v);
void fx_w_i64(fx_wbuf* w, int64_t v);
void fx_w_f64(fx_wbuf* w, double v);
void fx_w_str(fx_wbuf* w, const char* s);
void fx_w_strn(fx_wbuf* w, const char* s, size_t n);
void fx_w_array(fx_wbuf* w, const void* data, uint64_t count, size_t elem);
/* Reserve an array of count*elem bytes and return where to fill it in
 * (NULL when out of memory). The pointer is invalidated by later writes. */
void* fx_w_array_reserve(fx_wbuf* w, uint64_t count, size_t elem);
/* Fill in the header at the start of the buffer (body_len from w->len). */
void fx_w_finish(fx_wbuf* w, fx_hdr* h);

/* ---- reader: a bounds-checked cursor over a body ---- */
typedef struct fx_rbuf {
    const uint8_t* p;
    size_t len;
    size_t pos;
    const char* err; /* first failure, static text; NULL while fine */
} fx_rbuf;

void fx_r_init(fx_rbuf* r, const uint8_t* body, size_t len);
int fx_r_u64(fx_rbuf* r, uint64_t* v);
int fx_r_i64(fx_rbuf* r, int64_t* v);
/* An i64 that must lie in [lo, hi]. */
int fx_r_range(fx_rbuf* r, int64_t lo, int64_t hi, int64_t* v);
int fx_r_f64(fx_rbuf* r, double* v);
/* A string of at most maxlen bytes, copied NUL-terminated into out, which
 * has room for maxlen + 1 bytes. */
int fx_r_str(fx_rbuf* r, char* out, size_t maxlen);
/* An array of elem-byte items, at most max_count of them. *data points into
 * the message: aligned to 8 when the body is, else only as aligned as the
 * body (callers that need more copy it). */
int fx_r_array(fx_rbuf* r, size_t elem, uint64_t max_count,
               const void** data, uint64_t* count);
/* 0 when every byte of the body has been consumed. */
int fx_r_end(fx_rbuf* r);

const char* fx_op_name(int op);

#ifdef __cplusplus
}
#endif

#endif
