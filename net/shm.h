/* shm.h -- internal: same-host streaming add through a shared-memory ring
 * (docs/protocol.md, "Shared-memory add"; docs/operations.md,
 * --shm-socket).
 *
 * A client on the server's host creates a sealed memfd (the region), hands
 * it to the server over a Unix socket (SCM_RIGHTS) and gets a random
 * 128-bit token. An ADD_STREAM request names the token: the server's
 * worker then consumes chunks of vectors from the region's ring while the
 * client fills the next slots, so the vectors are never copied into a
 * message. The client may write the region at any time: the server reads
 * every shared value once into a local and bounds it.
 *
 * Region layout (little-endian, host byte order: same host):
 *   0    u32 state      FX_SHM_IDLE / RUNNING / COMMITTED / ABORTED (CAS)
 *   4    u32 produced   chunks published by the client (futex word)
 *   8    u32 consumed   chunks the server has added (futex word)
 *   12   u32 reserved
 *   16   u64 stream id  the request id of the ADD_STREAM it belongs to
 *   24   u64 ntotal     the index's ntotal after the stream, stored by a
 *                       server with FX_SHM_FEAT_COMMIT before it commits
 *   64   u32 rows[FX_SHM_MAX_SLOTS]  rows of the chunk in each slot
 *   FX_SHM_HDR_BYTES..  slots, as the request describes them: slot i at
 *        slot_offset + i * slot_bytes holds rows_per_slot vectors (f32 for
 *        ADD_STREAM, uint8 codes of d / 8 bytes for the binary sub-op
 *        FX_BIN_ADD_STREAM) and, from FX_SHM_IDS_AT(rows_per_slot, bytes
 *        per vector), their i64 ids.
 * Chunk k goes in slot k % nslots. */
#ifndef FX_SHM_H
#define FX_SHM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FX_SHM_HELLO_MAGIC 0x4d534846u /* "FHSM" */
#define FX_SHM_VERSION 1
#define FX_SHM_HDR_BYTES 4096
#define FX_SHM_MAX_SLOTS 64
#define FX_SHM_MAX_BYTES ((uint64_t)256 << 20)
#define FX_SHM_MAX_REGIONS 64
#define FX_SHM_HANDSHAKE_MS 2000
#define FX_DEFAULT_SHM_STALL_MS 5000
/* The client's ring: 8 slots of 512 KiB (docs/benchmarks.md: smaller
 * chunks shorten the pipeline's fill and drain). */
#define FX_SHM_CLIENT_SLOTS 8
#define FX_SHM_CLIENT_SLOT_BYTES ((uint64_t)1 << 19)

/* Features in the answer's `features` word. COMMIT: before moving a
 * stream to COMMITTED the server stores the index's new ntotal in the
 * header, and it wakes futex waiters on `state` whenever it moves it, so
 * a client may take the state word as the outcome and collect the
 * ADD_STREAM reply later. */
#define FX_SHM_FEAT_COMMIT 1u
/* ntotal before a server with FX_SHM_FEAT_COMMIT stored it. */
#define FX_SHM_NO_NTOTAL UINT64_MAX

enum fx_shm_state {
    FX_SHM_IDLE = 0,
    FX_SHM_RUNNING = 1,
    FX_SHM_COMMITTED = 2,
    FX_SHM_ABORTED = 3,
};

typedef struct fx_shm_hdr {
    uint32_t state;
    uint32_t produced;
    uint32_t consumed;
    uint32_t reserved;
    uint64_t stream_id;
    uint64_t ntotal;
    uint8_t pad[32];
    uint32_t rows[FX_SHM_MAX_SLOTS];
} fx_shm_hdr;

/* Where a slot's ids start: after its vectors (row_bytes each),
 * 64-aligned; FX_SHM_IDS_OFFSET for f32 vectors of dimension d. */
#define FX_SHM_IDS_AT(rows, row_bytes)                                         \
    ((((uint64_t)(rows) * (uint64_t)(row_bytes)) + 63u) & ~(uint64_t)63u)
#define FX_SHM_IDS_OFFSET(rows, d) FX_SHM_IDS_AT(rows, (uint64_t)(d) * 4u)

/* The client's hello (16 bytes, with one fd in SCM_RIGHTS). */
typedef struct fx_shm_hello {
    uint32_t magic;
    uint32_t version;
    uint64_t reserved;
} fx_shm_hello;

/* The server's answer (256 bytes): status 0 or a negative FaissxError,
 * the features it offers, the region's token, the server's instance id, a
 * reason when refused. */
typedef struct fx_shm_answer {
    int32_t status;
    uint32_t features; /* FX_SHM_FEAT_* (0 from a server before them) */
    uint64_t token[2];
    uint64_t instance[2];
    char text[216];
} fx_shm_answer;

/* Futex wait on a u32 of a MAP_SHARED mapping (no FUTEX_PRIVATE_FLAG:
 * the other process waits/wakes on the same page): returns when *addr !=
 * expect, on a wake, or after timeout_ms. */
void fx_shm_futex_wait(uint32_t* addr, uint32_t expect, int timeout_ms);
void fx_shm_futex_wake(uint32_t* addr);

/* Streams this process's clients committed through shared memory,
 * stream attempts that fell back to an ordinary ADD, and streams the
 * client aborted for a cancellation (tests, benchmarks). */
uint64_t fx_shm_streams(void);
uint64_t fx_shm_fallbacks(void);
uint64_t fx_shm_cancels(void);

/* ---- server: the fd-passing socket ---- */
typedef struct fx_shm_server fx_shm_server;
typedef void (*fx_shm_log_fn)(int level, const char* msg);

/* Binds `path` (mode `mode`; a stale socket left by a dead server is
 * replaced) and starts the thread that takes regions. Returns 0 or a
 * FaissxError with the reason in err. */
int fx_shm_server_start(const char* path, unsigned mode, fx_shm_log_fn log,
                        fx_shm_server** out, char* err, size_t errsz);
/* Stops the thread, closes every connection, removes the socket file.
 * Regions still used by a stream are unmapped when it ends. NULL ok. */
void fx_shm_server_stop(fx_shm_server* s);
const char* fx_shm_server_path(const fx_shm_server* s);
void fx_shm_server_instance(const fx_shm_server* s, uint64_t out[2]);
/* Live regions (tests). */
size_t fx_shm_server_regions(fx_shm_server* s);

#ifdef __cplusplus
}

#include <memory>
#include <mutex>
#include <string>

struct fx_call;

namespace fx {
namespace shm {

struct Region;

/* The region of `token` for `tenant` (bound to the first tenant that uses
 * it); throws Error(FAISSX_E_INVALID, "unknown shared-memory region ...")
 * for an unknown, gone or another tenant's token. */
std::shared_ptr<Region> find(fx_shm_server* s, const uint64_t token[2],
                             const std::string& tenant);
uint8_t* base(Region& r);
uint64_t size(Region& r);
/* Claims the region for one stream (false: another stream uses it). */
bool claim(Region& r);
void release(Region& r);
/* Waits until chunk k is published (produced > k). Returns 1 when it is,
 * 0 when the stream stopped (state is not RUNNING, or the stream id
 * changed), -1 when the client's connection closed, -2 at until_ms. */
int wait_chunk(Region& r, uint32_t k, uint64_t stream_id, uint64_t until_ms);

/* Logs through the server's log (level 0 error .. 3 debug). */
void log(fx_shm_server* s, int level, const std::string& msg);

/* ---- client ---- */

/* An ADD_STREAM call in flight and the fields its retries rebuild. */
struct StreamCall {
    fx_call* call = nullptr;
    int64_t sub_op = 0; /* FX_BIN_ADD_STREAM (of FX_OP_BINARY), or 0 */
    uint64_t handle = 0;
    int64_t n = 0, with_ids = 0;
    uint64_t token[2] = {0, 0};
    uint64_t nslots = 0, rows = 0, slot_bytes = 0;
    StreamCall() = default;
    StreamCall(const StreamCall&) = delete;
    StreamCall& operator=(const StreamCall&) = delete;
    ~StreamCall(); /* abandons a call still set */
};

/* A connection's region: a sealed memfd mapped here and in the server,
 * FX_SHM_CLIENT_SLOTS slots of FX_SHM_CLIENT_SLOT_BYTES. The Unix socket
 * stays open while the region lives (its EOF tells the server it is
 * gone). One stream at a time: `use` is try-locked by an add. */
struct ClientRing {
    uint8_t* base = nullptr;
    uint64_t size = 0;
    int sock = -1;
    uint64_t token[2] = {0, 0};
    uint32_t nslots = FX_SHM_CLIENT_SLOTS;
    uint64_t slot_bytes = FX_SHM_CLIENT_SLOT_BYTES;
    uint32_t features = 0; /* the server's FX_SHM_FEAT_* */
    /* The last stream's call when the add returned on COMMITTED before its
     * reply: collected by the next stream (or dropped with the ring). */
    std::unique_ptr<StreamCall> prev;
    std::mutex use;
    ~ClientRing();
    fx_shm_hdr* hdr() { return reinterpret_cast<fx_shm_hdr*>(base); }
    /* Rows of row_bytes bytes a slot holds with their ids (0: none fit). */
    uint64_t rows_for(uint64_t row_bytes) const;
    uint8_t* slot(uint32_t i) {
        return base + FX_SHM_HDR_BYTES + (uint64_t)i * slot_bytes;
    }
};

/* Per connection (fx::Conn): state 0 untried, 1 ready, -1 off for good. */
struct ClientShm {
    std::mutex mu;
    int state = 0;
    std::unique_ptr<ClientRing> ring;
};

/* Makes a region and hands it to the server at `path`, checking that the
 * server there is `instance` (the one the NNG connection reached).
 * NULL with the reason in *why when anything fails. */
std::unique_ptr<ClientRing> open_ring(const char* path,
                                      const uint64_t instance[2],
                                      std::string* why);

/* Counts for fx_shm_streams / fx_shm_fallbacks / fx_shm_cancels. */
void count_stream();
void count_fallback();
void count_cancel();

} // namespace shm
} // namespace fx
#endif

#endif
