/* server.c -- the faissx server's transport: NNG rep0 contexts feeding a
 * pool of worker threads, with a libuv loop for signals, timers and the
 * drain (see server.h; operators' view in docs/operations.md).
 *
 * Threads, and what each may do:
 *   NNG threads   run the aio and pipe callbacks. An aio callback records
 *                 the result, moves its slot to the next state and hands the
 *                 slot on: a request to the work queue (mutex + condition
 *                 variable), a retired slot to the loop (ready queue +
 *                 uv_async_send). It never runs faiss or the handler.
 *   workers       --workers threads of our own take requests off the work
 *                 queue, run fx_state_handle_req, i.e. faiss, with
 *                 --threads OpenMP threads and single-threaded BLAS
 *                 (faissx_set_threads), so at most workers x threads
 *                 threads compute at once, and start the reply send
 *                 themselves (nng_ctx_send is thread-safe).
 *   loop thread   owns every uv_* handle: signals, the reaper timer (its
 *                 work runs in libuv's pool), the drain, and counts the
 *                 slots that retired.
 *
 * This departs from DESIGN.md's "the loop runs each request as
 * uv_queue_work and the after-work callback sends the reply": that path
 * costs three thread hand-offs per request (NNG callback -> loop -> pool ->
 * loop) where this one costs one (NNG callback -> worker), which is most of
 * a single query's transport overhead (docs/benchmarks.md, "Remote vs
 * local"). libuv still owns everything that is not a request.
 *
 * A slot is one request in flight: an nng_ctx and its aio, cycling
 *   RECV --message--> WORK --reply built--> SEND --sent--> RECV
 * and ending in IDLE once the server drains. Slot states are guarded by
 * srv->mu, which is also held while a receive is armed or cancelled, so a
 * drain cannot miss a receive that is about to start. NNG never runs an
 * aio callback from inside nng_ctx_recv, nng_ctx_send or nng_aio_cancel
 * (completions are dispatched, or run after NNG dropped its own locks), so
 * holding mu across those calls cannot deadlock. */
#include "net/server.h"
#include "net/nngbuf.h"
#include "net/shm.h"
#include "core/threads.h"

#include <faissx/faissx.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <uv.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* fx_server_stop runs in signal handlers: its atomics must be lock-free. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic int must be lock-free");
_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2,
               "atomic pointers must be lock-free");

#define FX_LOG_ERROR 0
#define FX_LOG_WARN 1
#define FX_LOG_INFO 2
#define FX_LOG_DEBUG 3

/* An internal invariant broke: say where, then abort. */
#define FX_CHECK(cond)                                                         \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "faissx-server: %s:%d: invariant failed: %s\n",    \
                    __FILE__, __LINE__, #cond);                                \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------------
 * Logging: one line per event on stderr, text or JSON. Written with one
 * fwrite so lines from different threads do not interleave.
 * ------------------------------------------------------------------------ */

static int log_level = FX_LOG_INFO;
static int log_json = 0;
static const char* const level_names[] = {"error", "warn", "info", "debug"};

typedef struct line {
    char buf[2048];
    size_t len;
} line;

static void line_add(line* l, const char* fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void line_add(line* l, const char* fmt, ...) {
    if (l->len >= sizeof l->buf) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
    va_end(ap);
    if (n > 0) l->len += (size_t)n;
    if (l->len >= sizeof l->buf) l->len = sizeof l->buf - 1;
}

/* A JSON string literal, quotes included. */
static void line_json_str(line* l, const char* s) {
    line_add(l, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            line_add(l, "\\%c", c);
        else if (c < 0x20)
            line_add(l, "\\u%04x", c);
        else
            line_add(l, "%c", c);
    }
    line_add(l, "\"");
}

static void line_begin(line* l, int level) {
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + k, sizeof when - k, ".%03ldZ", ts.tv_nsec / 1000000);
    l->len = 0;
    if (log_json)
        line_add(l, "{\"ts\":\"%s\",\"level\":\"%s\"", when,
                 level_names[level]);
    else
        line_add(l, "%s %-5s ", when, level_names[level]);
}

static void line_end(line* l) {
    if (log_json) line_add(l, "}");
    if (l->len >= sizeof l->buf - 1) l->len = sizeof l->buf - 2;
    l->buf[l->len++] = '\n';
    fwrite(l->buf, 1, l->len, stderr);
}

static void fx_log(int level, const char* fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void fx_log(int level, const char* fmt, ...) {
    if (level > log_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    line l;
    line_begin(&l, level);
    if (log_json) {
        line_add(&l, ",\"msg\":");
        line_json_str(&l, msg);
    } else {
        line_add(&l, "%s", msg);
    }
    line_end(&l);
}

/* The shared-memory socket's thread logs through this. */
static void shm_log(int level, const char* msg) {
    fx_log(level, "%s", msg);
}

/* "1.2.3.4:5678", "[::1]:5678", or the transport's name. */
static void format_addr(const nng_sockaddr* sa, char* out, size_t n) {
    char ip[64];
    switch (sa->s_family) {
    case NNG_AF_INET: {
        const uint8_t* a = (const uint8_t*)&sa->s_in.sa_addr;
        const uint8_t* p = (const uint8_t*)&sa->s_in.sa_port;
        snprintf(out, n, "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3],
                 (unsigned)(p[0] << 8 | p[1]));
        return;
    }
    case NNG_AF_INET6: {
        const uint8_t* a = sa->s_in6.sa_addr;
        const uint8_t* p = (const uint8_t*)&sa->s_in6.sa_port;
        size_t k = 0;
        for (int i = 0; i < 16; i += 2)
            k += (size_t)snprintf(ip + k, sizeof ip - k, "%s%x",
                                  i ? ":" : "", (unsigned)(a[i] << 8 | a[i + 1]));
        snprintf(out, n, "[%s]:%u", ip, (unsigned)(p[0] << 8 | p[1]));
        return;
    }
    case NNG_AF_IPC: snprintf(out, n, "ipc:%s", sa->s_ipc.sa_path); return;
    case NNG_AF_INPROC: snprintf(out, n, "inproc"); return;
    default: snprintf(out, n, "?"); return;
    }
}

/* ------------------------------------------------------------------------
 * The server
 * ------------------------------------------------------------------------ */

enum { SLOT_IDLE, SLOT_RECV, SLOT_WORK, SLOT_SEND };

#define REFUSAL_WARN_MS 10000

typedef struct server server;

typedef struct slot {
    server* srv;
    nng_ctx ctx;
    nng_aio* aio;
    int state;         /* guarded by srv->mu */
    struct slot* next; /* ready queue link, guarded by srv->mu */
    nng_msg* msg;      /* WORK: the request, then the reply (or NULL) */
    uint64_t t_recv;   /* uv_hrtime() when the request arrived */
    uint64_t conn_id;
    fx_req_meta meta;
} slot;

struct server {
    const fx_server_conf* conf;
    fx_state* state;
    nng_socket sock;
    nng_listener listeners[FX_MAX_LISTEN];
    const char* urls[FX_MAX_LISTEN];
    int nlisten;
    nng_tls_config* tls;
    fx_shm_server* shm; /* --shm-socket, or NULL */
    slot* slots;
    int nslots;
    atomic_int npipes;
    atomic_int refusals;                  /* since the last warning */
    _Atomic(uint64_t) refusal_warned_ms;  /* when, uv_hrtime in ms */

    /* Loop thread only. */
    uv_loop_t loop;
    uv_async_t wake;
    uv_async_t stop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_timer_t reap_timer;
    uv_work_t reap_work;
    size_t reaped;
    size_t reaped_uploads;
    int reaping;
    int draining;
    int closing;
    int retired; /* slots that reached IDLE */

    atomic_uint replies; /* sent or dropped, for --test-drop-replies */
    pthread_t* workers;
    int nworkers; /* started */

    pthread_mutex_t mu;
    int stopping; /* guarded by mu */
    int quit;     /* guarded by mu: workers exit when the queue is empty */
    slot* ready_head;
    slot* ready_tail;
    pthread_cond_t work_cv; /* with mu: the work queue has a request */
    slot* work_head;        /* guarded by mu; linked through slot.next */
    slot* work_tail;
};

/* The running server, for fx_server_stop. stop_users counts callers inside
 * fx_server_stop, so teardown can wait for them before closing the handle
 * they might be signalling. */
static _Atomic(server*) running;
static atomic_int stop_users;
static atomic_int stop_asked;

void fx_server_stop(void) {
    atomic_fetch_add(&stop_users, 1);
    atomic_store(&stop_asked, 1);
    server* s = atomic_load(&running);
    if (s) uv_async_send(&s->stop); /* async-signal-safe */
    atomic_fetch_sub(&stop_users, 1);
}

/* ---- slots (NNG threads and loop thread) ---- */

/* Hands a retired slot to the loop thread. Called with mu held; uv_async_send is
 * called under mu too, so the loop cannot have torn down the wake handle:
 * it only does so after it has popped every retired slot. */
static void ready_push_locked(server* s, slot* sl) {
    sl->next = NULL;
    if (s->ready_tail)
        s->ready_tail->next = sl;
    else
        s->ready_head = sl;
    s->ready_tail = sl;
    uv_async_send(&s->wake);
}

/* Hands a request to the workers. Called with mu held. */
static void work_push_locked(server* s, slot* sl) {
    sl->next = NULL;
    if (s->work_tail)
        s->work_tail->next = sl;
    else
        s->work_head = sl;
    s->work_tail = sl;
    pthread_cond_signal(&s->work_cv);
}

static void rearm_or_retire_locked(server* s, slot* sl) {
    if (s->stopping) {
        sl->state = SLOT_IDLE;
        ready_push_locked(s, sl);
    } else {
        sl->state = SLOT_RECV;
        nng_ctx_recv(sl->ctx, sl->aio);
    }
}

/* The aio callback (an NNG thread): hand off and return. */
static void slot_cb(void* arg) {
    slot* sl = arg;
    server* s = sl->srv;
    int rv = nng_aio_result(sl->aio);

    pthread_mutex_lock(&s->mu);
    switch (sl->state) {
    case SLOT_RECV:
        if (rv == 0) {
            sl->msg = nng_aio_get_msg(sl->aio);
            nng_aio_set_msg(sl->aio, NULL);
            sl->t_recv = uv_hrtime();
            sl->state = SLOT_WORK;
            work_push_locked(s, sl);
        } else if (s->stopping || rv == NNG_ECLOSED) {
            sl->state = SLOT_IDLE;
            ready_push_locked(s, sl);
        } else {
            fx_log(FX_LOG_WARN, "receive failed: %s", nng_strerror(rv));
            nng_ctx_recv(sl->ctx, sl->aio);
        }
        break;
    case SLOT_SEND:
        if (rv != 0) {
            /* NNG gives the message back on failure. */
            nng_msg_free(nng_aio_get_msg(sl->aio));
            nng_aio_set_msg(sl->aio, NULL);
            fx_log(FX_LOG_WARN, "sending a reply failed: %s",
                   nng_strerror(rv));
        }
        rearm_or_retire_locked(s, sl);
        break;
    default: FX_CHECK(!"aio completion in an unexpected slot state");
    }
    pthread_mutex_unlock(&s->mu);
}

/* The reply message for a handled request. When the handler's reply is
 * incomplete (out of memory), a short error reply instead; NULL when even
 * that cannot be built (the client then times out). */
static nng_msg* reply_msg(fx_wbuf* r, const fx_req_meta* meta) {
    nng_msg* m = NULL;
    if (!r->oom && r->len >= FX_HDR_SIZE && (m = fx_w_take_nng(r)) != NULL)
        return m;
    fx_wbuf e;
    fx_hdr h;
    memset(&h, 0, sizeof h);
    h.op = (uint16_t)meta->op;
    h.flags = FX_FLAG_REPLY;
    h.request_id = meta->request_id;
    h.client_id = meta->client_id;
    h.status = FAISSX_E_NOMEM;
    fx_w_init_nng(&e);
    fx_w_header_space(&e);
    fx_w_str(&e, "faissx-server: out of memory while building the reply");
    fx_w_finish(&e, &h);
    m = fx_w_take_nng(&e);
    fx_w_free(&e);
    return m;
}

/* Worker: run the request, build the reply message. */
static void run_request(server* s, slot* sl) {
    nng_msg* req = sl->msg;
    fx_wbuf r;

    fx_threads_enter(); /* this worker: --threads (faissx_set_threads) */
    sl->conn_id = (uint64_t)nng_pipe_id(nng_msg_get_pipe(req));
    memset(&sl->meta, 0, sizeof sl->meta);
    /* The handler reads the request where it lies (array fields that are
     * not aligned for their type are copied there) and writes the reply
     * straight into the message that is sent. */
    fx_w_init_nng(&r);
    fx_req_info info = {sl->conn_id, sl->t_recv};
    fx_state_handle_req(s->state, nng_msg_body(req), nng_msg_len(req), &info,
                        &r, &sl->meta);
    nng_msg_free(req);
    sl->msg = reply_msg(&r, &sl->meta);
    fx_w_free(&r);
}

static void access_log(const slot* sl) {
    if (log_level < FX_LOG_DEBUG) return;
    char tenant[sizeof sl->meta.tenant];
    memcpy(tenant, sl->meta.tenant, sizeof tenant);
    tenant[sizeof tenant - 1] = '\0';
    double ms = (double)(uv_hrtime() - sl->t_recv) / 1e6;
    const char* op = fx_op_name(sl->meta.op);
    line l;
    line_begin(&l, FX_LOG_DEBUG);
    if (log_json) {
        line_add(&l, ",\"msg\":\"request\",\"op\":");
        line_json_str(&l, op);
        line_add(&l, ",\"tenant\":");
        line_json_str(&l, tenant);
        line_add(&l, ",\"status\":%d", sl->meta.status);
        if (sl->meta.status) {
            line_add(&l, ",\"error\":");
            line_json_str(&l, faissx_strerror(sl->meta.status));
        }
        line_add(&l,
                 ",\"ms\":%.3f,\"conn\":%" PRIu64 ",\"request_id\":%" PRIu64
                 ",\"client_id\":%" PRIu64,
                 ms, sl->conn_id, sl->meta.request_id, sl->meta.client_id);
    } else {
        line_add(&l, "request op=%s tenant=%s status=%d", op,
                 tenant[0] ? tenant : "-", sl->meta.status);
        if (sl->meta.status)
            line_add(&l, " error=\"%s\"", faissx_strerror(sl->meta.status));
        line_add(&l,
                 " ms=%.3f conn=%" PRIu64 " request_id=%" PRIu64
                 " client_id=%" PRIu64,
                 ms, sl->conn_id, sl->meta.request_id, sl->meta.client_id);
    }
    line_end(&l);
}

static void maybe_finish(server* s);

/* Worker: the request ran; send the reply. */
static void send_reply(server* s, slot* sl) {
    access_log(sl);
    int n = s->conf->test_drop_replies;
    if (sl->msg && n > 0 &&
        (atomic_fetch_add(&s->replies, 1) + 1) % (unsigned)n == 0) {
        fx_log(FX_LOG_WARN,
               "test: dropping the reply to request %" PRIu64 " of client %"
               PRIu64 " (--test-drop-replies %d)",
               sl->meta.request_id, sl->meta.client_id, n);
        nng_msg_free(sl->msg);
        sl->msg = NULL;
        pthread_mutex_lock(&s->mu);
        rearm_or_retire_locked(s, sl);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (sl->msg) {
        sl->state = SLOT_SEND;
        nng_aio_set_msg(sl->aio, sl->msg);
        sl->msg = NULL;
        nng_ctx_send(sl->ctx, sl->aio);
    } else {
        fx_log(FX_LOG_ERROR, "no memory for a reply: request %" PRIu64
                             " gets none", sl->meta.request_id);
        rearm_or_retire_locked(s, sl);
    }
    pthread_mutex_unlock(&s->mu);
}

/* A worker thread: requests until told to quit (after the drain). */
static void* worker_main(void* arg) {
    server* s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->work_head && !s->quit)
            pthread_cond_wait(&s->work_cv, &s->mu);
        slot* sl = s->work_head;
        if (!sl) break; /* quit, and nothing is queued */
        s->work_head = sl->next;
        if (!s->work_head) s->work_tail = NULL;
        pthread_mutex_unlock(&s->mu);
        run_request(s, sl);
        send_reply(s, sl);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Stops the workers (they finish what is queued) and waits for them. */
static void stop_workers(server* s) {
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->nworkers; i++) pthread_join(s->workers[i], NULL);
    s->nworkers = 0;
}

/* Loop thread: count the retired slots (wakeups coalesce). */
static void wake_cb(uv_async_t* h) {
    server* s = h->data;
    pthread_mutex_lock(&s->mu);
    slot* sl = s->ready_head;
    s->ready_head = s->ready_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (sl) {
        slot* next = sl->next;
        FX_CHECK(sl->state == SLOT_IDLE);
        s->retired++;
        sl = next;
    }
    maybe_finish(s);
}

/* ---- connections (NNG threads) ---- */

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void* arg) {
    server* s = arg;
    int id = nng_pipe_id(p);
    char addr[160] = "?";
    nng_sockaddr sa;
    if (log_level >= FX_LOG_WARN &&
        nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0)
        format_addr(&sa, addr, sizeof addr);

    if (ev == NNG_PIPE_EV_ADD_PRE) {
        int n = atomic_fetch_add(&s->npipes, 1) + 1;
        int max = s->conf->max_connections;
        if (max > 0 && n > max) {
            /* Refused clients redial every few hundred ms: warn once per
             * REFUSAL_WARN_MS, with the count of refusals in between. */
            uint64_t now = uv_hrtime() / 1000000;
            uint64_t last = atomic_load(&s->refusal_warned_ms);
            int quiet = atomic_fetch_add(&s->refusals, 1);
            if ((last == 0 || now - last >= REFUSAL_WARN_MS) &&
                atomic_compare_exchange_strong(&s->refusal_warned_ms, &last,
                                               now)) {
                atomic_fetch_sub(&s->refusals, quiet + 1);
                fx_log(FX_LOG_WARN,
                       "refusing connection %d from %s: already %d "
                       "connections (--max-connections %d); %d more "
                       "refused since the last warning",
                       id, addr, n - 1, max, quiet);
            } else {
                fx_log(FX_LOG_DEBUG, "refusing connection %d from %s", id,
                       addr);
            }
            nng_pipe_close(p); /* REM_POST follows and balances the count */
        } else {
            fx_log(FX_LOG_DEBUG, "connection %d from %s (%d open)", id, addr,
                   n);
        }
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        int n = atomic_fetch_sub(&s->npipes, 1) - 1;
        fx_state_conn_closed(s->state, (uint64_t)id);
        fx_log(FX_LOG_DEBUG, "connection %d closed (%d open)", id, n);
    }
}

/* ---- reaper, signals, drain (loop thread) ---- */

static void reap_work_cb(uv_work_t* w) {
    server* s = w->data;
    s->reaped = fx_state_reap(s->state, s->conf->orphan_grace_ms);
    s->reaped_uploads =
            fx_state_reap_uploads(s->state, s->conf->orphan_grace_ms);
}

static void reap_after_cb(uv_work_t* w, int status) {
    server* s = w->data;
    (void)status;
    s->reaping = 0;
    if (s->reaped)
        fx_log(FX_LOG_INFO,
               "freed %zu orphaned index(es) whose client did not come back "
               "within %" PRIu64 " ms",
               s->reaped, s->conf->orphan_grace_ms);
    if (s->reaped_uploads)
        fx_log(FX_LOG_INFO,
               "discarded %zu unfinished upload(s): their client went away "
               "or sent nothing for too long",
               s->reaped_uploads);
    maybe_finish(s);
}

/* fx_state_reap takes index locks and frees indexes: it runs in the work
 * pool so a long write can never stall the loop. */
static void reap_timer_cb(uv_timer_t* t) {
    server* s = t->data;
    if (s->reaping || s->draining) return;
    s->reaping = 1;
    s->reap_work.data = s;
    FX_CHECK(uv_queue_work(&s->loop, &s->reap_work, reap_work_cb,
                           reap_after_cb) == 0);
}

static void begin_drain(server* s, const char* why) {
    int busy = 0;
    s->draining = 1;
    uv_timer_stop(&s->reap_timer);
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    for (int i = 0; i < s->nslots; i++) {
        if (s->slots[i].state == SLOT_RECV)
            nng_aio_cancel(s->slots[i].aio);
        else if (s->slots[i].state != SLOT_IDLE)
            busy++;
    }
    pthread_mutex_unlock(&s->mu);
    fx_log(FX_LOG_INFO, "%s: stopping; waiting for %d request(s) in flight",
           why, busy);
    maybe_finish(s);
}

static void signal_cb(uv_signal_t* h, int signum) {
    server* s = h->data;
    const char* name = signum == SIGINT ? "SIGINT" : "SIGTERM";
    if (s->draining) {
        fx_log(FX_LOG_WARN, "second %s: exiting without waiting for "
                            "requests in flight", name);
        _exit(1);
    }
    begin_drain(s, name);
}

static void stop_cb(uv_async_t* h) {
    server* s = h->data;
    if (!s->draining) begin_drain(s, "stop requested");
}

/* Once every slot is idle (and no reaper runs), close the loop's handles;
 * uv_run then returns. */
static void maybe_finish(server* s) {
    if (!s->draining || s->closing || s->reaping || s->retired < s->nslots)
        return;
    s->closing = 1;
    atomic_store(&running, NULL);
    while (atomic_load(&stop_users) > 0) sched_yield();
    uv_close((uv_handle_t*)&s->wake, NULL);
    uv_close((uv_handle_t*)&s->stop, NULL);
    uv_close((uv_handle_t*)&s->sigint, NULL);
    uv_close((uv_handle_t*)&s->sigterm, NULL);
    uv_close((uv_handle_t*)&s->reap_timer, NULL);
}

/* ---- setup ---- */

/* Reads a whole (small) file into a NUL-terminated buffer. */
static char* read_text_file(const char* path, char* err, size_t errsz,
                            const char* flag) {
    FILE* f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "%s: cannot open '%s': %s", flag, path,
                 strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 20, n = 0; /* a PEM file of 1 MiB is already absurd */
    char* buf = malloc(cap + 1);
    if (buf) n = fread(buf, 1, cap + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > cap) {
        snprintf(err, errsz, "%s: cannot read '%s'%s", flag, path,
                 n > cap ? " (larger than 1 MiB)" : "");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int is_tls_url(const char* url) {
    return strncmp(url, "tls+", 4) == 0;
}

/* 1 when the PEM private key `key` belongs to the first certificate of
 * the PEM `cert`. */
static int cert_matches_key(const char* cert, const char* key) {
    mbedtls_x509_crt crt;
    mbedtls_pk_context pk;
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&pk);
    int ok = mbedtls_x509_crt_parse(&crt, (const unsigned char*)cert,
                                    strlen(cert) + 1) >= 0 &&
             crt.version != 0 &&
             mbedtls_pk_parse_key(&pk, (const unsigned char*)key,
                                  strlen(key) + 1, NULL, 0) == 0 &&
             mbedtls_pk_check_pair(&crt.pk, &pk) == 0;
    mbedtls_pk_free(&pk);
    mbedtls_x509_crt_free(&crt);
    return ok;
}

static int setup_tls(server* s, char* err, size_t errsz) {
    const fx_server_conf* c = s->conf;
    int rv;
    char* cert = read_text_file(c->tls_cert, err, errsz, "--tls-cert");
    if (!cert) return FAISSX_E_IO;
    char* key = read_text_file(c->tls_key, err, errsz, "--tls-key");
    if (!key) {
        free(cert);
        return FAISSX_E_IO;
    }
    if ((rv = nng_tls_config_alloc(&s->tls, NNG_TLS_MODE_SERVER)) != 0) {
        snprintf(err, errsz, "TLS: %s", nng_strerror(rv));
    } else if ((rv = nng_tls_config_own_cert(s->tls, cert, key, NULL)) != 0) {
        snprintf(err, errsz,
                 "--tls-cert '%s' / --tls-key '%s': not a usable PEM "
                 "certificate and matching private key: %s",
                 c->tls_cert, c->tls_key, nng_strerror(rv));
    }
    /* NNG takes a key that does not belong to the certificate, and every
     * handshake then fails; refuse it at start instead (NNG's TLS is
     * mbedtls, linked into the server). */
    if (rv == 0 && !cert_matches_key(cert, key)) {
        snprintf(err, errsz,
                 "--tls-key '%s' is not the private key of the certificate "
                 "in --tls-cert '%s' (the first one, for a chain)",
                 c->tls_key, c->tls_cert);
        rv = NNG_EINVAL;
    }
    /* Scrub the private key before freeing it. */
    memset(key, 0, strlen(key));
    free(key);
    free(cert);
    return rv ? FAISSX_E_INVALID : 0;
}

/* NNG counts the 4-byte request id REQ puts in front of our message. */
static size_t nng_max_size(const fx_server_conf* c) {
    return c->max_message_bytes + 4;
}

static int setup_nng(server* s, char* err, size_t errsz) {
    const fx_server_conf* c = s->conf;
    int rv, need_tls = 0;
    for (int i = 0; i < s->nlisten; i++) need_tls |= is_tls_url(s->urls[i]);
    if (need_tls && (!c->tls_cert || !c->tls_key)) {
        snprintf(err, errsz,
                 "a tls+tcp:// listener needs --tls-cert and --tls-key");
        return FAISSX_E_INVALID;
    }
    if (need_tls && (rv = setup_tls(s, err, errsz)) != 0) return rv;
    if (!need_tls && (c->tls_cert || c->tls_key))
        fx_log(FX_LOG_WARN, "--tls-cert/--tls-key given but no tls+tcp:// "
                            "listener: they are not used");

    if ((rv = nng_rep0_open(&s->sock)) != 0) {
        snprintf(err, errsz, "cannot open the NNG socket: %s",
                 nng_strerror(rv));
        return FAISSX_E_UNKNOWN;
    }
    /* Debian's NNG accepts messages of any size by default. */
    if ((rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ,
                                  nng_max_size(c))) != 0 ||
        (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, s)) !=
                0 ||
        (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s)) !=
                0) {
        snprintf(err, errsz, "cannot configure the NNG socket: %s",
                 nng_strerror(rv));
        return FAISSX_E_UNKNOWN;
    }
    for (int i = 0; i < s->nlisten; i++) {
        nng_listener* l = &s->listeners[i];
        const char* url = s->urls[i];
        const char* what = "cannot listen on";
        if ((rv = nng_listener_create(l, s->sock, url)) == 0) {
            what = "cannot configure";
            rv = nng_listener_set_size(*l, NNG_OPT_RECVMAXSZ,
                                       nng_max_size(c));
            if (rv == 0 && is_tls_url(url))
                rv = nng_listener_set_ptr(*l, NNG_OPT_TLS_CONFIG, s->tls);
            if (rv == 0) {
                what = "cannot listen on";
                rv = nng_listener_start(*l, 0);
            }
        }
        if (rv != 0) {
            snprintf(err, errsz, "%s %s: %s", what, url, nng_strerror(rv));
            return rv == NNG_EADDRINUSE ? FAISSX_E_IO : FAISSX_E_INVALID;
        }
    }
    for (int i = 0; i < s->nslots; i++) {
        slot* sl = &s->slots[i];
        sl->srv = s;
        sl->state = SLOT_IDLE;
        if ((rv = nng_aio_alloc(&sl->aio, slot_cb, sl)) != 0 ||
            (rv = nng_ctx_open(&sl->ctx, s->sock)) != 0) {
            snprintf(err, errsz, "cannot create NNG contexts: %s",
                     nng_strerror(rv));
            return FAISSX_E_NOMEM;
        }
    }
    return 0;
}

/* What the durable store reported (recovery cut a torn tail, a tenant
 * directory without a key, ...), one warning per line. */
static void log_notes(server* s) {
    char* notes = fx_state_take_notes(s->state);
    if (!notes) return;
    for (char *line = notes, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) nl = line + strlen(line) - 1;
        else *nl = '\0';
        if (*line) fx_log(FX_LOG_WARN, "store: %s", line);
    }
    free(notes);
}

static void log_startup(server* s) {
    const fx_server_conf* c = s->conf;
    for (int i = 0; i < s->nlisten; i++) {
        int port = 0;
        if (nng_listener_get_int(s->listeners[i], NNG_OPT_TCP_BOUND_PORT,
                                 &port) == 0)
            fx_log(FX_LOG_INFO, "listening on %s (port %d)%s", s->urls[i],
                   port, is_tls_url(s->urls[i]) ? " with TLS" : "");
        else
            fx_log(FX_LOG_INFO, "listening on %s", s->urls[i]);
    }
    fx_log(FX_LOG_INFO,
           "workers=%d threads=%d (at most %d computing; %ld CPUs) "
           "in-flight=%d max-message-bytes=%zu "
           "max-connections=%d max-k=%" PRId64 " max-batch=%" PRId64
           " orphan-grace-ms=%" PRIu64 " max-upload-bytes=%" PRIu64
           " upload-idle-ms=%" PRIu64,
           c->workers, c->threads, c->workers * c->threads,
           sysconf(_SC_NPROCESSORS_ONLN), s->nslots, c->max_message_bytes,
           c->max_connections, c->max_k, c->max_batch, c->orphan_grace_ms,
           c->max_upload_bytes ? c->max_upload_bytes
                               : FX_DEFAULT_MAX_UPLOAD_BYTES,
           c->upload_idle_ms ? c->upload_idle_ms : FX_DEFAULT_UPLOAD_IDLE_MS);
    int keys = (c->auth_keys && *c->auth_keys) || (c->auth_file && *c->auth_file);
    fx_log(FX_LOG_INFO, "auth: %s", keys ? "on (API keys required)"
                                         : "off (no API keys configured)");
    if (c->test_drop_replies > 0)
        fx_log(FX_LOG_WARN, "test mode: one reply in %d is dropped "
                            "(--test-drop-replies); never use this in "
                            "production",
               c->test_drop_replies);
    if (c->test_old_protocol)
        fx_log(FX_LOG_WARN, "test mode: answering as a server without the "
                            "index info sizes and FX_FLAG_STATE "
                            "(--test-old-protocol)");
    if (c->test_lock_probe && *c->test_lock_probe)
        fx_log(FX_LOG_WARN, "test mode: index locks shown in '%s', and "
                            "searches and writes held inside them until "
                            "their file there is removed "
                            "(--test-lock-probe); never use this in "
                            "production",
               c->test_lock_probe);
    if (c->data_dir && *c->data_dir) {
        static const char* const pol[] = {"always", "interval", "none"};
        char extra[64] = "";
        if (c->sync == FAISSX_SYNC_INTERVAL)
            snprintf(extra, sizeof extra, " every %d ms", c->sync_interval_ms);
        fx_log(FX_LOG_INFO,
               "durable: named indexes are kept in %s (sync %s%s); %zu "
               "restored; checkpoint-log-bytes=%" PRIu64,
               c->data_dir,
               c->sync >= 0 && c->sync <= 2 ? pol[c->sync] : "?", extra,
               fx_state_stored_count(s->state), c->checkpoint_log_bytes);
    } else {
        fx_log(FX_LOG_INFO, "in-memory: indexes are not persisted");
    }
    if (s->shm)
        fx_log(FX_LOG_INFO, "shared-memory adds: socket %s (mode %04o), "
               "stall bound %" PRIu64 " ms", c->shm_socket,
               c->shm_socket_mode, c->shm_stall_ms);
    log_notes(s);
}

int fx_server_run(const fx_server_conf* c, char* err, size_t errsz) {
    server* s;
    int rv;

    if (!c || !err || errsz == 0) return FAISSX_E_INVALID;
    err[0] = '\0';
    if (c->nlisten < 0 || c->nlisten > FX_MAX_LISTEN) {
        snprintf(err, errsz, "at most %d listen URLs", FX_MAX_LISTEN);
        return FAISSX_E_INVALID;
    }
    if (c->workers < 1 || c->workers > 1024) {
        snprintf(err, errsz, "workers must be in 1..1024");
        return FAISSX_E_INVALID;
    }
    if (c->threads < 1 || c->threads > 256) {
        snprintf(err, errsz, "threads must be in 1..256");
        return FAISSX_E_INVALID;
    }
    if (c->max_message_bytes < FX_HDR_SIZE) {
        snprintf(err, errsz, "max_message_bytes is smaller than a header");
        return FAISSX_E_INVALID;
    }
    log_level = c->log_level < FX_LOG_ERROR   ? FX_LOG_ERROR
                : c->log_level > FX_LOG_DEBUG ? FX_LOG_DEBUG
                                              : c->log_level;
    log_json = c->log_json != 0;

    /* Each request: --threads OpenMP threads, BLAS single-threaded (the
     * library's thread policy, core/threads.cpp), whatever the environment
     * says; workers apply it before each request (run_request). */
    if (faissx_set_threads(c->threads) != 0) {
        snprintf(err, errsz, "%s", faiss_get_last_error());
        return FAISSX_E_INVALID;
    }
    /* The server's own faiss calls are local, whatever FAISSX_SERVER says. */
    faissx_remote_disable();
    /* libuv sizes its (process-wide) pool at the first uv_queue_work; only
     * the reaper uses it (requests run on our workers). */
    setenv("UV_THREADPOOL_SIZE", "1", 1);

    if (!(s = calloc(1, sizeof *s))) {
        snprintf(err, errsz, "out of memory");
        return FAISSX_E_NOMEM;
    }
    s->conf = c;
    s->nlisten = c->nlisten > 0 ? c->nlisten : 1;
    for (int i = 0; i < s->nlisten; i++)
        s->urls[i] = c->nlisten > 0 ? c->listen[i] : FX_DEFAULT_URL;
    s->nslots = c->workers * 2 < 4 ? 4 : c->workers * 2;
    atomic_init(&s->npipes, 0);
    atomic_init(&s->refusals, 0);
    atomic_init(&s->refusal_warned_ms, 0);
    atomic_init(&s->replies, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    s->slots = calloc((size_t)s->nslots, sizeof *s->slots);
    if (!s->slots) {
        snprintf(err, errsz, "out of memory");
        rv = FAISSX_E_NOMEM;
        goto out_nng;
    }
    if ((rv = fx_state_new(c, &s->state, err, errsz)) != 0) goto out_nng;
    /* The shared-memory socket first: it is ready when the port is. */
    if (c->shm_socket && *c->shm_socket) {
        if ((rv = fx_shm_server_start(c->shm_socket, c->shm_socket_mode,
                                      shm_log, &s->shm, err, errsz)) != 0)
            goto out_nng;
        fx_state_set_shm(s->state, s->shm);
    }
    if ((rv = setup_nng(s, err, errsz)) != 0) goto out_nng;
    if (!(s->workers = calloc((size_t)c->workers, sizeof *s->workers))) {
        snprintf(err, errsz, "out of memory");
        rv = FAISSX_E_NOMEM;
        goto out_nng;
    }
    for (int i = 0; i < c->workers; i++) {
        if ((rv = pthread_create(&s->workers[i], NULL, worker_main, s)) != 0) {
            snprintf(err, errsz, "cannot start worker threads: %s",
                     strerror(rv));
            rv = FAISSX_E_NOMEM;
            goto out_nng;
        }
        s->nworkers++;
    }

    /* From here on nothing fails. */
    FX_CHECK(uv_loop_init(&s->loop) == 0);
    FX_CHECK(uv_async_init(&s->loop, &s->wake, wake_cb) == 0);
    FX_CHECK(uv_async_init(&s->loop, &s->stop, stop_cb) == 0);
    FX_CHECK(uv_signal_init(&s->loop, &s->sigint) == 0);
    FX_CHECK(uv_signal_init(&s->loop, &s->sigterm) == 0);
    FX_CHECK(uv_timer_init(&s->loop, &s->reap_timer) == 0);
    s->wake.data = s->stop.data = s->sigint.data = s->sigterm.data =
            s->reap_timer.data = s;
    FX_CHECK(uv_signal_start(&s->sigint, signal_cb, SIGINT) == 0);
    FX_CHECK(uv_signal_start(&s->sigterm, signal_cb, SIGTERM) == 0);
    {
        /* faissx-server blocks them until here (server_main.c): a signal
         * that came while the server started is delivered now, to the
         * handlers above. */
        sigset_t stops;
        sigemptyset(&stops);
        sigaddset(&stops, SIGINT);
        sigaddset(&stops, SIGTERM);
        pthread_sigmask(SIG_UNBLOCK, &stops, NULL);
    }
    FX_CHECK(uv_timer_start(&s->reap_timer, reap_timer_cb, 1000, 1000) == 0);

    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nslots; i++) {
        s->slots[i].state = SLOT_RECV;
        nng_ctx_recv(s->slots[i].ctx, s->slots[i].aio);
    }
    pthread_mutex_unlock(&s->mu);

    log_startup(s);
    atomic_store(&stop_asked, 0);
    server* expected = NULL;
    if (!atomic_compare_exchange_strong(&running, &expected, s))
        FX_CHECK(!"fx_server_run: another server runs in this process");
    if (atomic_load(&stop_asked)) begin_drain(s, "stop requested");

    uv_run(&s->loop, UV_RUN_DEFAULT);
    FX_CHECK(uv_loop_close(&s->loop) == 0);
    stop_workers(s); /* every slot is idle: they wait for work */
    rv = 0;
    if (c->data_dir && *c->data_dir) {
        /* Drained: no request runs. A checkpoint now lets the next start
         * load snapshots instead of replaying logs. A failure loses
         * nothing (the logs are durable); say so and exit 1. */
        char cerr[512];
        size_t stored = fx_state_stored_count(s->state);
        if (fx_state_checkpoint(s->state, cerr, sizeof cerr) != 0) {
            fx_log(FX_LOG_ERROR, "checkpoint at stop failed: %s (the logs "
                                 "are intact: the next start replays them)",
                   cerr);
            snprintf(err, errsz, "checkpoint at stop failed: %s", cerr);
            rv = FAISSX_E_IO;
        } else {
            fx_log(FX_LOG_INFO, "checkpointed %zu stored index(es)", stored);
        }
        log_notes(s);
        fx_log(FX_LOG_INFO, "stopped; %zu named index(es) kept in %s, %zu "
                            "in-memory index(es) discarded",
               stored, c->data_dir, fx_state_index_count(s->state) - stored);
    } else {
        fx_log(FX_LOG_INFO, "stopped; %zu index(es) discarded (in-memory)",
               fx_state_index_count(s->state));
    }

out_nng:
    /* Closing the socket closes the listeners and connections (their
     * REM_POST callbacks still use s->state), then the aios can go. */
    if (nng_socket_id(s->sock) > 0) nng_close(s->sock);
    stop_workers(s);
    fx_shm_server_stop(s->shm);
    free(s->workers);
    for (int i = 0; s->slots && i < s->nslots; i++)
        if (s->slots[i].aio) nng_aio_free(s->slots[i].aio);
    if (s->tls) nng_tls_config_free(s->tls);
    fx_state_free(s->state);
    free(s->slots);
    pthread_cond_destroy(&s->work_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return rv;
}
