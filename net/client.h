/* client.h -- internal: the client transport (NNG req0). One fx_client is
 * one configured server: a pool of NNG sockets (connections), safe to use
 * from many threads at once (each call runs on its own NNG context), with
 * deadlines, retries, connection state and an optional heartbeat (see
 * FaissxClientOptions in faissx.h and docs/client.md). */
#ifndef FX_CLIENT_H
#define FX_CLIENT_H

#include "net/proto.h"

#include <faissx/faissx.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_client fx_client;

/* A received reply: the body reader, and the message that owns it. */
typedef struct fx_reply {
    fx_rbuf r;
    void* msg; /* nng_msg*, released by fx_reply_free */
} fx_reply;

/* Connects to o->url with o's settings (validated by the caller), dialing
 * now so an unreachable server is reported here -- unless `background`,
 * when a failed dial leaves NNG dialing in the background and the client
 * starts in FAISSX_CONN_FAILED. Returns 0 or a FaissxError with the
 * message in err. */
int fx_client_open(const FaissxClientOptions* o, int background,
                   fx_client** out, char* err, size_t errsz);
/* Refuses new calls on c, waits up to 0.5 s for running ones, closes the
 * sockets (calls still pending fail) and frees c, returning within about
 * 2.5 s even when NNG's close hangs (a helper thread then finishes the
 * close and the free). Accepts NULL. */
void fx_client_close(fx_client* c);

const char* fx_client_url(const fx_client* c);
FaissxConnState fx_client_state(fx_client* c);
void fx_client_set_timeout(fx_client* c, int op_class, uint32_t ms);
uint32_t fx_client_timeout(const fx_client* c, int op_class);

/* The FaissxOpClass of an op (FX_OP_IVF: FAISSX_OP_ADMIN; the caller
 * knows better from the sub-op). */
int fx_op_class(int op);

/* Starts a request in w: header space and the API key. The bytes are
 * written into an nng_msg (net/nngbuf.h), which a call sends as it is when
 * no other attempt needs them. */
void fx_client_begin(fx_client* c, fx_wbuf* w);

/* Sends the request in w (op, of class op_class, or -1 for fx_op_class)
 * and waits for the reply, retrying within the deadline. On success
 * returns 0 and fills rep (release with fx_reply_free). On failure returns
 * a FaissxError and the message (server's or transport's) in err. */
int fx_client_call(fx_client* c, int op, int op_class, fx_wbuf* w,
                   fx_reply* rep, char* err, size_t errsz);
void fx_reply_free(fx_reply* rep);

/* A fresh request id of c, for a call whose id must be known before it is
 * sent (so that PROGRESS / CANCEL can name it). */
uint64_t fx_client_new_request_id(fx_client* c);
/* The calling thread's next fx_client_call uses this request id (0: a
 * fresh one) and these header flags (FX_FLAG_JOB), then forgets them. */
void fx_client_next_call_as(uint64_t request_id, uint32_t flags);

/* Writes a request's fields after the API key; returns 0, or non-zero to
 * give up (the call then fails with FAISSX_E_INVALID). */
typedef int (*fx_build_fn)(fx_wbuf* w, void* arg);

/* fx_client_call for a request that build(w, arg) writes into a fresh
 * message for every attempt, so no copy of it is kept for retries: the
 * vectors of an add are copied once, from the caller's array into the
 * message NNG sends. build must write the same bytes every time. */
int fx_client_call_build(fx_client* c, int op, int op_class,
                         fx_build_fn build, void* arg, fx_reply* rep,
                         char* err, size_t errsz);

/* A call that runs while its caller works: fx_client_call_start sends
 * its first attempt (on the calling thread, with the thread's
 * fx_client_next_call_as / _wait / timeout settings) and returns at once;
 * notify(notify_arg), if given, runs on an NNG thread when that attempt
 * ends (reply or failure) and must only signal. fx_client_call_finish
 * waits for it, retries within the deadline as fx_client_call does, fills
 * rep and frees the call; fx_client_call_abandon drops it (its reply, if
 * any, is discarded) and frees it. Build failures are returned by start
 * (no call then). build's arg must live until the call is freed. */
typedef struct fx_call fx_call;
int fx_client_call_start(fx_client* c, int op, int op_class,
                         fx_build_fn build, void* arg,
                         void (*notify)(void*), void* notify_arg,
                         fx_call** out, char* err, size_t errsz);
/* Whether the first attempt ended (never blocks): 0 not yet, 1 ended
 * (a reply, or a failure finish will not retry), 2 ended with a failure
 * finish will retry (the request may still be running on the server). */
int fx_client_call_ended(fx_call* k);
int fx_client_call_finish(fx_call* k, fx_reply* rep, char* err,
                          size_t errsz);
void fx_client_call_abandon(fx_call* k);

/* The calling thread's next fx_client_call gives up after ms (0: at its
 * deadline) when that is sooner than its deadline, while the request still
 * tells the server the full deadline (so a busy server runs it all the
 * same); then forgets it. RELEASE uses FX_RELEASE_WAIT_MS: freeing a
 * handle does not wait out the admin deadline for a server that died (it
 * reclaims a gone client's unnamed indexes itself). */
void fx_client_next_call_wait(uint32_t ms);
#define FX_RELEASE_WAIT_MS 1000

/* Whether the calling thread's last fx_client_call ended with the
 * server's reply (success or the server's error), not a transport
 * failure (then the request may or may not have run). */
int fx_client_last_from_server(void);

/* The server's limits (FX_OP_LIMITS; docs/protocol.md, "Limits"). */
typedef struct fx_limits {
    uint64_t max_message_bytes; /* a whole message, header included */
    uint64_t max_k;
    uint64_t max_batch;
} fx_limits;

/* A request larger than this is sent only once the limits of the
 * connection are known (one LIMITS call, cached until a connection
 * closes): one over the server's message limit fails at once with
 * FAISSX_E_LIMIT, unsent. Smaller requests go at once; one that then gets
 * no reply is checked against the limits afterwards. */
#define FX_LIMITS_ASK_BYTES ((uint64_t)64 << 10)
/* The server's smallest allowed --max-message-bytes: a request no larger
 * can never be over the limit. */
#define FX_LIMITS_MIN_MESSAGE 1024

/* The limits of c's server, asking it (LIMITS, with the deadline of
 * op_class) unless they are known from an earlier call on the current
 * connections. Returns 1 and fills *out when known, 0 when the server
 * does not say (it predates LIMITS) or could not be asked. */
int fx_client_limits(fx_client* c, int op_class, fx_limits* out);

/* Whether a request of `bytes` bytes (header included) for op fits the
 * server's message limit (asked as fx_client_limits does when bytes >
 * FX_LIMITS_ASK_BYTES): 0 when it fits or the limit is unknown, else
 * FAISSX_E_LIMIT with the message in err (naming op, the size, the limit
 * and what to do). For callers that know a request's size before
 * building it (an add of many vectors). */
int fx_client_check_size(fx_client* c, int op, uint64_t bytes, char* err,
                         size_t errsz);

/* Attempts (request messages sent) by every client of the process since
 * it started: a round-trip count for tests and benchmarks. */
uint64_t fx_client_round_trips(void);

/* The calling thread's timeout override (0 = none); returns the old one. */
int fx_client_thread_timeout(int ms);

/* Process-wide state-change callback and client log (faissx.h). */
void fx_client_set_state_callback(FaissxConnStateCallback cb, void* user);
void fx_log_set_callback(FaissxLogCallback cb, void* user);
void fx_log_set_level(int level);
void fx_clog(int level, const char* fmt, ...)
        __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
