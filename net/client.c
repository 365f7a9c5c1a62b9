/* client.c -- the client transport: a pool of NNG req0 sockets, one
 * context per call attempt, deadlines and retries (see client.h).
 *
 * A call has one request id and a deadline (its class's timeout, or the
 * thread's override). Each attempt opens a context on the next connected
 * socket, sends the request with the time left in the header's timeout_ms,
 * and waits at most attempt_timeout_ms for the reply. An attempt that timed
 * out or failed in transport is retried after a random backoff in
 * [0, min(cap, base * 2^(attempt-1))] while attempts and time remain. NNG
 * itself resends a request whose connection closed before the reply came
 * (req0 does so, whatever NNG_OPT_REQ_RESENDTIME says); its own timer-based
 * resend is off. Either way the copies carry the same request id, and the
 * server replays its reply to a retried mutation instead of running it
 * again.
 *
 * Threads: calls run on the caller's thread. NNG's threads run the pipe
 * callbacks (connection state) and the heartbeat aio's callback; neither
 * blocks. faissx starts no thread of its own, except a short-lived one
 * per close (below: NNG's close can hang). At process exit an atexit
 * handler closes every client's sockets, so NNG stops dialing and the
 * server sees the connections close. */
#include "net/client.h"
#include "net/nngbuf.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Log
 * ------------------------------------------------------------------------ */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FaissxLogCallback log_cb;
static void* log_user;
static atomic_int log_level = -1; /* -1: not yet read from the environment */

static int env_log_level(void) {
    static const char* const names[] = {"error", "warn", "info", "debug"};
    const char* v = getenv("FAISSX_CLIENT_LOG_LEVEL");
    for (int i = 0; v && i < 4; i++)
        if (!strcasecmp(v, names[i])) return i;
    return FAISSX_LOG_WARN;
}

void fx_log_set_level(int level) {
    atomic_store(&log_level, level < 0 ? 0 : level > 3 ? 3 : level);
}

void fx_log_set_callback(FaissxLogCallback cb, void* user) {
    pthread_mutex_lock(&log_mu);
    log_cb = cb;
    log_user = user;
    pthread_mutex_unlock(&log_mu);
}

void fx_clog(int level, const char* fmt, ...) {
    int max = atomic_load(&log_level);
    if (max < 0) {
        int want = env_log_level();
        atomic_compare_exchange_strong(&log_level, &max, want);
        max = atomic_load(&log_level);
    }
    if (level > max) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_mu);
    if (log_cb)
        log_cb((FaissxLogLevel)level, msg, log_user);
    else
        fprintf(stderr, "faissx: %s\n", msg);
    pthread_mutex_unlock(&log_mu);
}

/* ------------------------------------------------------------------------
 * The client
 * ------------------------------------------------------------------------ */

enum { HB_IDLE, HB_SLEEP, HB_SEND, HB_RECV };

typedef struct fx_sock {
    struct fx_client* c;
    nng_socket s;
    atomic_int pipes;    /* open connections of this socket (0 or 1) */
    atomic_uint last_pipe; /* id of the latest, for the heartbeat */
    atomic_int busy;     /* attempts waiting on it: it is not idle */
    _Atomic uint64_t last_reply_ms; /* its latest reply */
} fx_sock;

struct fx_client {
    fx_sock* socks;
    int nsock;
    char* url;
    char* key;
    _Atomic uint32_t timeout_ms[FAISSX_OP_CLASS_COUNT];
    uint32_t attempt_timeout_ms;
    int max_attempts;
    uint32_t backoff_base_ms, backoff_cap_ms;
    uint64_t client_id;
    _Atomic uint64_t next_id;
    _Atomic unsigned next_sock;
    atomic_int npipes;    /* over all sockets */
    atomic_int failed;    /* a call (or the dial) could not reach it */
    atomic_int reported;  /* the state last reported to the callback */
    atomic_int closed;
    atomic_int quiet;     /* no callbacks: still opening, or closing */
    _Atomic uint64_t last_reply_ms;

    /* heartbeat: one aio cycling SLEEP -> SEND -> RECV -> SLEEP */
    uint32_t heartbeat_ms;
    nng_aio* hb_timer;
    nng_aio* hb_io;
    nng_ctx hb_ctx;
    int hb_state;  /* only touched by the aio's callback */
    int hb_sock;
    uint64_t hb_sent_ms; /* when the ping went out */

    /* The server's limits (FX_OP_LIMITS), asked when first needed and
     * again after a connection closed (a restarted server may have other
     * limits): lim_state LIM_UNKNOWN, LIM_KNOWN (lim holds them) or
     * LIM_NONE (the server predates LIMITS); valid while !lim_stale. */
    pthread_mutex_t lim_mu;
    int lim_state;
    fx_limits lim;
    atomic_int lim_stale;
    atomic_uint pipe_closes; /* connections closed so far */

    struct fx_client* next; /* live clients, for the atexit handler */
};

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t random_id(void) {
    uint64_t v = 0;
    FILE* f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&v, sizeof v, 1, f) != 1) v = 0;
        fclose(f);
    }
    if (!v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
            ((uint64_t)getpid() << 16);
    }
    return v | 1;
}

/* ---- live clients and process exit ---- */

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static fx_client* live;
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

static int stop_client(fx_client* c);
static void free_client(fx_client* c);

/* Set when the exit handler gave up waiting for nng_close: the sockets may
 * still be in use by the thread stuck closing them, so free_client (run by
 * the static destructors after the handler) must not free them. */
static atomic_int exit_close_stuck;
static atomic_int exiting; /* the exit handler has run: for messages */

/* Closing in bounded time, at exit and at run time alike.
 *
 * NNG 1.5.2's nng_close can deadlock when it races with operations still
 * pending on the socket's contexts (nanomsg/nng#1543, #1813: the pipe
 * reaper waits for a task that never runs). So a close first refuses new
 * calls (stop_client) and gives the running ones a moment to end (their
 * replies are usually on the way), then closes the sockets on a helper
 * thread and waits for it for a bounded time. If NNG is stuck, the caller
 * goes on: at exit the process exits (the kernel closes the connections)
 * and nothing the stuck thread might touch is freed; at run time
 * (fx_client_close: a reconfiguration, faissx_remote_disable, the last
 * index of a connection freed) the helper thread owns the client and frees
 * it if nng_close ever returns. */
enum { CLOSE_DRAIN_MS = 500, CLOSE_WAIT_MS = 2000 };

typedef struct fx_closer {
    fx_client* one; /* closed then freed; NULL: every live client (exit) */
    atomic_int done;
    atomic_int refs; /* the helper thread's and the waiter's */
} fx_closer;

static void close_socks(fx_client* c) {
    for (int i = 0; i < c->nsock; i++) nng_close(c->socks[i].s);
}

static void closer_release(fx_closer* k) {
    if (atomic_fetch_sub(&k->refs, 1) != 1) return;
    if (k->one) free_client(k->one);
    free(k);
}

static void* closer_run(void* arg) {
    fx_closer* k = arg;
    if (k->one)
        close_socks(k->one);
    else /* live_mu is held by close_all_at_exit while it waits for us */
        for (fx_client* c = live; c; c = c->next) close_socks(c);
    atomic_store(&k->done, 1);
    closer_release(k);
    return NULL;
}

static int client_idle(const fx_client* c) {
    for (int i = 0; i < c->nsock; i++)
        if (atomic_load(&c->socks[i].busy)) return 0;
    return 1;
}

/* Waits (bounded) until no attempt is running on `one`, or on any live
 * client when one is NULL (live_mu held). */
static void drain(const fx_client* one) {
    uint64_t t0 = mono_ms();
    for (;;) {
        int idle = 1;
        if (one)
            idle = client_idle(one);
        else
            for (const fx_client* c = live; c && idle; c = c->next)
                idle = client_idle(c);
        if (idle || mono_ms() - t0 >= CLOSE_DRAIN_MS) return;
        nng_msleep(2);
    }
}

/* Closes the sockets of `one` (then frees it) or of every live client,
 * on a helper thread, waiting at most CLOSE_WAIT_MS. Returns 1 when the
 * close finished in time, 0 when it was left to the helper thread. */
static int close_bounded(fx_client* one) {
    fx_closer* k = calloc(1, sizeof *k);
    if (!k) { /* no memory: close here, unbounded (the old way) */
        if (one) {
            close_socks(one);
            free_client(one);
        } else {
            for (fx_client* c = live; c; c = c->next) close_socks(c);
        }
        return 1;
    }
    k->one = one;
    atomic_init(&k->done, 0);
    atomic_init(&k->refs, 2);
    pthread_t t;
    pthread_attr_t a;
    int threaded = pthread_attr_init(&a) == 0;
    if (threaded) {
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        threaded = pthread_create(&t, &a, closer_run, k) == 0;
        pthread_attr_destroy(&a);
    }
    if (!threaded) {
        atomic_store(&k->refs, 1); /* no helper: run it here */
        closer_run(k);
        return 1;
    }
    uint64_t t0 = mono_ms();
    while (!atomic_load(&k->done) && mono_ms() - t0 < CLOSE_WAIT_MS)
        nng_msleep(2);
    int done = atomic_load(&k->done);
    closer_release(k);
    return done;
}

/* At exit: close every socket (calls still running fail at once, NNG stops
 * redialing, the server sees the connections close). The clients' memory
 * is freed by their owners (static destructors run after this). */
static void close_all_at_exit(void) {
    pthread_mutex_lock(&live_mu);
    atomic_store(&exiting, 1);
    for (fx_client* c = live; c; c = c->next) stop_client(c);
    drain(NULL);
    if (!close_bounded(NULL)) {
        atomic_store(&exit_close_stuck, 1);
        fx_clog(FAISSX_LOG_WARN, "closing the connections at exit did "
                "not finish (NNG); exiting anyway");
    }
    pthread_mutex_unlock(&live_mu);
}

static void register_atexit(void) {
    atexit(close_all_at_exit);
}

static void live_add(fx_client* c) {
    pthread_once(&atexit_once, register_atexit);
    pthread_mutex_lock(&live_mu);
    c->next = live;
    live = c;
    pthread_mutex_unlock(&live_mu);
}

static void live_remove(fx_client* c) {
    pthread_mutex_lock(&live_mu);
    for (fx_client** p = &live; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    pthread_mutex_unlock(&live_mu);
}

/* ---- connection state ---- */

static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static FaissxConnStateCallback state_cb;
static void* state_user;

void fx_client_set_state_callback(FaissxConnStateCallback cb, void* user) {
    pthread_mutex_lock(&state_mu);
    state_cb = cb;
    state_user = user;
    pthread_mutex_unlock(&state_mu);
}

FaissxConnState fx_client_state(fx_client* c) {
    if (!c) return FAISSX_CONN_FAILED;
    if (atomic_load(&c->npipes) > 0) return FAISSX_CONN_CONNECTED;
    return atomic_load(&c->failed) ? FAISSX_CONN_FAILED
                                   : FAISSX_CONN_CONNECTING;
}

static const char* state_name(int s) {
    switch (s) {
    case FAISSX_CONN_CONNECTED: return "connected";
    case FAISSX_CONN_CONNECTING: return "connecting";
    case FAISSX_CONN_FAILED: return "failed";
    default: return "none";
    }
}

/* Reports a state change (if any) to the log and the callback, one at a
 * time (state_mu), so callbacks see changes in order. */
static void state_maybe_changed(fx_client* c) {
    /* While opening, the caller may hold locks a callback could want. */
    if (atomic_load(&c->quiet)) return;
    pthread_mutex_lock(&state_mu);
    int now = (int)fx_client_state(c);
    int before = atomic_exchange(&c->reported, now);
    if (now != before) {
        fx_clog(FAISSX_LOG_INFO, "%s: %s (was %s)", c->url, state_name(now),
                state_name(before));
        if (state_cb) state_cb((FaissxConnState)now, c->url, state_user);
    }
    pthread_mutex_unlock(&state_mu);
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void* arg) {
    fx_sock* s = arg;
    fx_client* c = s->c;
    unsigned id = (unsigned)nng_pipe_id(p);
    /* One dialer per socket: at most one pipe at a time. */
    if (ev == NNG_PIPE_EV_ADD_POST) {
        atomic_store(&s->last_pipe, id);
        atomic_fetch_add(&s->pipes, 1);
        atomic_fetch_add(&c->npipes, 1);
        atomic_store(&c->failed, 0);
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        /* REM_POST also comes for a pipe that never got to ADD_POST. */
        if (!atomic_compare_exchange_strong(&s->last_pipe, &id, 0u)) return;
        atomic_fetch_sub(&s->pipes, 1);
        atomic_store(&c->lim_stale, 1); /* its server may come back new */
        atomic_fetch_add(&c->pipe_closes, 1u);
        atomic_fetch_sub(&c->npipes, 1);
    } else {
        return;
    }
    state_maybe_changed(c);
}

/* ---- heartbeat (NNG threads) ---- */

static int build_ping(fx_client* c, nng_msg** out) {
    fx_wbuf w;
    fx_client_begin(c, &w);
    fx_hdr h;
    memset(&h, 0, sizeof h);
    h.op = FX_OP_PING;
    h.request_id = atomic_fetch_add(&c->next_id, 1);
    h.client_id = c->client_id;
    h.timeout_ms = c->heartbeat_ms;
    fx_w_finish(&w, &h);
    *out = fx_w_take_nng(&w);
    fx_w_free(&w);
    return *out ? 0 : NNG_ENOMEM;
}

/* Two aios: NNG 1.5 reports an expired receive as success (with no
 * message) on an aio that was last used for nng_sleep_aio, so the timer
 * and the ping each have their own. */
static void hb_sleep(fx_client* c) {
    c->hb_state = HB_SLEEP;
    nng_sleep_aio((nng_duration)c->heartbeat_ms, c->hb_timer);
}

/* The timer fired: ping the next connected socket if it has been idle. */
static void hb_timer_cb(void* arg) {
    fx_client* c = arg;
    int rv = nng_aio_result(c->hb_timer);
    if (atomic_load(&c->closed) || rv != 0) {
        c->hb_state = HB_IDLE;
        return; /* stopping */
    }
    if (mono_ms() - atomic_load(&c->last_reply_ms) < c->heartbeat_ms) {
        hb_sleep(c); /* calls got replies lately: nothing to check */
        return;
    }
    /* A connection with calls waiting is not idle: their deadlines watch
     * it, and a ping queued behind them on a busy server would be late
     * and drop a connection that works. */
    int i = -1;
    for (int k = 0; k < c->nsock; k++) {
        int j = (c->hb_sock + 1 + k) % c->nsock;
        if (atomic_load(&c->socks[j].pipes) > 0 &&
            atomic_load(&c->socks[j].busy) == 0) {
            i = j;
            break;
        }
    }
    nng_msg* m = NULL;
    if (i < 0 || nng_ctx_open(&c->hb_ctx, c->socks[i].s) != 0) {
        hb_sleep(c); /* nothing idle to check, or NNG is redialing */
        return;
    }
    if (build_ping(c, &m) != 0) {
        nng_ctx_close(c->hb_ctx);
        hb_sleep(c);
        return;
    }
    c->hb_sock = i;
    c->hb_sent_ms = mono_ms();
    c->hb_state = HB_SEND;
    nng_aio_set_msg(c->hb_io, m);
    nng_aio_set_timeout(c->hb_io, (nng_duration)c->heartbeat_ms);
    nng_ctx_send(c->hb_ctx, c->hb_io);
}

/* The ping's send or receive completed. */
static void hb_io_cb(void* arg) {
    fx_client* c = arg;
    int rv = nng_aio_result(c->hb_io);
    nng_msg* m = nng_aio_get_msg(c->hb_io);
    nng_aio_set_msg(c->hb_io, NULL);
    if (c->hb_state == HB_SEND && rv == 0) m = NULL; /* NNG's now */
    if (m) nng_msg_free(m);
    if (atomic_load(&c->closed) || rv == NNG_ECANCELED || rv == NNG_ECLOSED) {
        nng_ctx_close(c->hb_ctx);
        c->hb_state = HB_IDLE;
        return; /* stopping */
    }
    if (c->hb_state == HB_SEND && rv == 0) {
        c->hb_state = HB_RECV;
        nng_aio_set_timeout(c->hb_io, (nng_duration)c->heartbeat_ms);
        nng_ctx_recv(c->hb_ctx, c->hb_io);
        return;
    }
    nng_ctx_close(c->hb_ctx);
    fx_sock* hs = &c->socks[c->hb_sock];
    if (c->hb_state == HB_RECV && rv == 0 && m) {
        atomic_store(&c->last_reply_ms, mono_ms());
        atomic_store(&hs->last_reply_ms, mono_ms());
    } else if (c->hb_state == HB_RECV &&
               atomic_load(&hs->last_reply_ms) >= c->hb_sent_ms) {
        /* No pong, but a call got its reply on this connection since the
         * ping went out (the ping waited behind it): alive. */
    } else if (c->hb_state == HB_RECV) {
        /* A connection that answers nothing is dead (a half-open TCP
         * connection, a stopped server): close it and let NNG redial. */
        unsigned id = atomic_load(&hs->last_pipe);
        fx_clog(FAISSX_LOG_INFO,
                "%s: no reply to a heartbeat within %u ms (%s): dropping "
                "the connection", c->url, c->heartbeat_ms,
                rv ? nng_strerror(rv) : "timed out");
        if (id) {
            nng_pipe p = NNG_PIPE_INITIALIZER;
            p.id = id;
            nng_pipe_close(p);
        }
    }
    /* A failed send (no connection any more) just waits for the next. */
    hb_sleep(c);
}

/* ---- open / close ---- */

static int open_socket(fx_client* c, fx_sock* s, const FaissxClientOptions* o,
                       int flags) {
    int rv;
    if ((rv = nng_req0_open(&s->s)) != 0) return rv;
    /* NNG must not resend on a timer: the deadline and retries are ours. */
    nng_socket_set_ms(s->s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(s->s, NNG_OPT_RECONNMINT,
                      (nng_duration)c->backoff_base_ms);
    nng_socket_set_ms(s->s, NNG_OPT_RECONNMAXT,
                      (nng_duration)c->backoff_cap_ms);
    nng_socket_set_size(s->s, NNG_OPT_RECVMAXSZ, 0); /* replies: no cap */
    if ((rv = nng_pipe_notify(s->s, NNG_PIPE_EV_ADD_POST, pipe_cb, s)) != 0 ||
        (rv = nng_pipe_notify(s->s, NNG_PIPE_EV_REM_POST, pipe_cb, s)) != 0)
        return rv;
    if (strncmp(o->url, "tls+tcp://", 10) == 0) {
        nng_dialer d;
        nng_tls_config* cfg = NULL;
        if ((rv = nng_dialer_create(&d, s->s, o->url)) != 0) return rv;
        if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0)
            return rv;
        if (o->tls_ca && *o->tls_ca) {
            rv = nng_tls_config_ca_file(cfg, o->tls_ca);
            if (rv == 0)
                rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
        } else {
            rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_NONE);
        }
        if (rv == 0) rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
        nng_tls_config_free(cfg);
        if (rv == 0) rv = nng_dialer_start(d, flags);
        return rv;
    }
    return nng_dial(s->s, o->url, NULL, flags);
}

static void free_client(fx_client* c) {
    if (atomic_load(&exit_close_stuck)) return; /* see close_all_at_exit */
    if (c->hb_timer) nng_aio_free(c->hb_timer);
    if (c->hb_io) nng_aio_free(c->hb_io);
    pthread_mutex_destroy(&c->lim_mu);
    free(c->socks);
    free(c->url);
    free(c->key);
    free(c);
}

int fx_client_open(const FaissxClientOptions* o, int background,
                   fx_client** out, char* err, size_t errsz) {
    fx_client* c = calloc(1, sizeof *c);
    int rv = 0, n = o->pool_size > 0 ? o->pool_size : 1;
    if (!c) {
        snprintf(err, errsz, "out of memory");
        return FAISSX_E_NOMEM;
    }
    pthread_mutex_init(&c->lim_mu, NULL);
    atomic_init(&c->lim_stale, 0);
    atomic_init(&c->pipe_closes, 0u);
    c->url = strdup(o->url);
    c->key = strdup(o->api_key ? o->api_key : "");
    c->socks = calloc((size_t)n, sizeof *c->socks);
    if (!c->url || !c->key || !c->socks) {
        free_client(c);
        snprintf(err, errsz, "out of memory");
        return FAISSX_E_NOMEM;
    }
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++)
        atomic_init(&c->timeout_ms[i],
                    o->timeout_ms[i] > 0 ? (uint32_t)o->timeout_ms[i] : 30000);
    c->attempt_timeout_ms = o->attempt_timeout_ms > 0
                                    ? (uint32_t)o->attempt_timeout_ms : 0;
    c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 1;
    c->backoff_base_ms = o->backoff_base_ms > 0 ? (uint32_t)o->backoff_base_ms : 1;
    c->backoff_cap_ms = o->backoff_cap_ms > (int)c->backoff_base_ms
                                ? (uint32_t)o->backoff_cap_ms
                                : c->backoff_base_ms;
    c->heartbeat_ms = o->heartbeat_ms > 0 ? (uint32_t)o->heartbeat_ms : 0;
    c->client_id = random_id();
    atomic_init(&c->next_id, 1);
    atomic_init(&c->next_sock, 0);
    atomic_init(&c->npipes, 0);
    atomic_init(&c->failed, 0);
    atomic_init(&c->reported, FAISSX_CONN_CONNECTING);
    atomic_init(&c->closed, 0);
    atomic_init(&c->quiet, 1);
    atomic_init(&c->last_reply_ms, mono_ms());
    c->nsock = n;
    for (int i = 0; i < n; i++) {
        c->socks[i].c = c;
        atomic_init(&c->socks[i].pipes, 0);
        atomic_init(&c->socks[i].last_pipe, 0u);
        atomic_init(&c->socks[i].busy, 0);
        atomic_init(&c->socks[i].last_reply_ms, 0);
    }

    /* Dial the first socket synchronously: an unreachable server is
     * reported now (or, in background mode, leaves NNG dialing). */
    int opened = 0;
    for (int i = 0; i < n; i++) {
        rv = open_socket(c, &c->socks[i], o, i == 0 ? 0 : NNG_FLAG_NONBLOCK);
        if (nng_socket_id(c->socks[i].s) > 0) opened = i + 1;
        if (rv != 0 && i == 0 && background &&
            (rv == NNG_ECONNREFUSED || rv == NNG_ETIMEDOUT ||
             rv == NNG_EUNREACHABLE || rv == NNG_ECONNRESET ||
             rv == NNG_ECONNSHUT || rv == NNG_ECONNABORTED)) {
            char why[160];
            snprintf(why, sizeof why, "%s", nng_strerror(rv));
            /* Keep dialing in the background. */
            nng_close(c->socks[0].s);
            rv = open_socket(c, &c->socks[0], o, NNG_FLAG_NONBLOCK);
            if (rv == 0) {
                atomic_store(&c->failed, 1);
                fx_clog(FAISSX_LOG_WARN,
                        "cannot connect to %s (%s): new indexes are "
                        "created locally until it is reachable",
                        o->url, why);
            }
        }
        if (rv != 0) break;
    }
    if (rv == 0 && c->heartbeat_ms &&
        (rv = nng_aio_alloc(&c->hb_timer, hb_timer_cb, c)) == 0 &&
        (rv = nng_aio_alloc(&c->hb_io, hb_io_cb, c)) == 0)
        hb_sleep(c);
    if (rv != 0) {
        snprintf(err, errsz, "cannot connect to %s: %s", o->url,
                 nng_strerror(rv));
        atomic_store(&c->closed, 1);
        for (int i = 0; i < opened; i++) nng_close(c->socks[i].s);
        free_client(c);
        return rv == NNG_ENOMEM ? FAISSX_E_NOMEM
               : rv == NNG_EINVAL || rv == NNG_EADDRINVAL ||
                                 rv == NNG_ENOTSUP
                       ? FAISSX_E_INVALID
                       : FAISSX_E_NET;
    }
    live_add(c);
    /* From here on, changes are reported (from NNG's threads: the caller
     * may hold locks). The state now is the starting point. */
    atomic_store(&c->quiet, 0);
    atomic_store(&c->reported, (int)fx_client_state(c));
    *out = c;
    return 0;
}

/* Refuses new calls, silences the callbacks and stops the heartbeat.
 * Returns 0 if the client was already closed. */
static int stop_client(fx_client* c) {
    atomic_store(&c->quiet, 1);
    if (atomic_exchange(&c->closed, 1)) return 0;
    /* Stopping waits for a running callback; a stopped aio starts nothing
     * new, so the cycle ends. */
    if (c->hb_timer) nng_aio_stop(c->hb_timer);
    if (c->hb_io) nng_aio_stop(c->hb_io);
    if (c->hb_timer) nng_aio_stop(c->hb_timer);
    return 1;
}

void fx_client_close(fx_client* c) {
    if (!c) return;
    live_remove(c);
    /* Already closed by the exit handler: only the memory is left. */
    if (!stop_client(c)) {
        free_client(c);
        return;
    }
    char url[256];
    snprintf(url, sizeof url, "%s", c->url);
    drain(c);
    if (!close_bounded(c)) /* c is the helper thread's now */
        fx_clog(FAISSX_LOG_WARN, "closing the connection to %s did not "
                "finish within %d ms (NNG); a helper thread goes on "
                "closing it", url, (int)CLOSE_WAIT_MS);
}

const char* fx_client_url(const fx_client* c) {
    return c->url;
}

void fx_client_set_timeout(fx_client* c, int op_class, uint32_t ms) {
    if (op_class >= 0 && op_class < FAISSX_OP_CLASS_COUNT)
        atomic_store(&c->timeout_ms[op_class], ms);
}

uint32_t fx_client_timeout(const fx_client* c, int op_class) {
    return atomic_load(&((fx_client*)c)->timeout_ms[op_class]);
}

int fx_op_class(int op) {
    switch (op) {
    case FX_OP_SEARCH:
    case FX_OP_RANGE_SEARCH:
    case FX_OP_ASSIGN:
    case FX_OP_RECONSTRUCT_N:
    case FX_OP_RECONSTRUCT_KEYS:
    case FX_OP_RESIDUAL:
    case FX_OP_SA_ENCODE:
    case FX_OP_SA_DECODE:
    case FX_OP_FETCH: return FAISSX_OP_SEARCH;
    case FX_OP_ADD:
    case FX_OP_ADD_WITH_IDS:
    case FX_OP_ADD_STREAM:
    case FX_OP_REMOVE_IDS:
    case FX_OP_RESET:
    case FX_OP_MERGE_FROM: return FAISSX_OP_ADD;
    case FX_OP_TRAIN: return FAISSX_OP_TRAIN;
    default: return FAISSX_OP_ADMIN;
    }
}

void fx_client_begin(fx_client* c, fx_wbuf* w) {
    fx_w_init_nng(w);
    fx_w_header_space(w);
    fx_w_str(w, c->key);
}

void fx_reply_free(fx_reply* rep) {
    if (rep && rep->msg) nng_msg_free((nng_msg*)rep->msg);
    if (rep) rep->msg = NULL;
}

/* ---- calls ---- */

static _Thread_local int thread_timeout_ms;
static _Thread_local uint64_t next_request_id;
static _Thread_local uint32_t next_flags;
static _Thread_local uint32_t next_wait_ms;
/* The calling thread's last call ended with a reply from the server. */
static _Thread_local int last_from_server;
/* Attempts sent by every client of the process (fx_client_round_trips). */
static _Atomic uint64_t round_trips;

uint64_t fx_client_new_request_id(fx_client* c) {
    return atomic_fetch_add(&c->next_id, 1);
}

void fx_client_next_call_as(uint64_t request_id, uint32_t flags) {
    next_request_id = request_id;
    next_flags = flags;
}

void fx_client_next_call_wait(uint32_t ms) {
    next_wait_ms = ms;
}

int fx_client_last_from_server(void) {
    return last_from_server;
}

uint64_t fx_client_round_trips(void) {
    return atomic_load(&round_trips);
}

int fx_client_thread_timeout(int ms) {
    int old = thread_timeout_ms;
    thread_timeout_ms = ms;
    return old;
}

/* The next socket in turn, preferring connected ones. */
static fx_sock* pick_socket(fx_client* c) {
    unsigned start = atomic_fetch_add(&c->next_sock, 1);
    for (int k = 0; k < c->nsock; k++) {
        fx_sock* s = &c->socks[(start + (unsigned)k) % (unsigned)c->nsock];
        if (atomic_load(&s->pipes) > 0) return s;
    }
    return &c->socks[start % (unsigned)c->nsock];
}

/* One attempt: send msg (which it takes) on a new context of s, wait up
 * to wait_ms in all. */
static int attempt(fx_sock* s, nng_msg* msg, uint64_t wait_ms,
                   nng_msg** reply) {
    nng_ctx ctx;
    nng_aio* aio = NULL;
    uint64_t t0 = mono_ms();
    int rv = nng_ctx_open(&ctx, s->s);
    if (rv != 0) {
        nng_msg_free(msg);
        return rv;
    }
    if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) goto out;
    nng_aio_set_timeout(aio, (nng_duration)wait_ms);
    nng_aio_set_msg(aio, msg);
    msg = NULL; /* NNG's from here on, unless the send fails */
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) {
        /* Not sent (refused, timed out, canceled, closed): NNG hands the
         * request back in the aio, and freeing it is ours. Take it from
         * there, not from a pointer kept before the send. */
        msg = nng_aio_get_msg(aio);
        nng_aio_set_msg(aio, NULL);
        goto out;
    }
    uint64_t spent = mono_ms() - t0;
    if (spent >= wait_ms) {
        rv = NNG_ETIMEDOUT;
        goto out;
    }
    nng_aio_set_timeout(aio, (nng_duration)(wait_ms - spent));
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) == 0) {
        *reply = nng_aio_get_msg(aio);
        atomic_store(&s->last_reply_ms, mono_ms());
    }
out:
    if (msg) nng_msg_free(msg);
    if (aio) nng_aio_free(aio);
    nng_ctx_close(ctx); /* drops the request if it never went out */
    return rv;
}

/* Worth another attempt: no reply, or the connection failed. */
static int retryable(int rv) {
    return rv == NNG_ETIMEDOUT || rv == NNG_ECONNREFUSED ||
           rv == NNG_ECONNRESET || rv == NNG_ECONNSHUT ||
           rv == NNG_ECONNABORTED || rv == NNG_EUNREACHABLE;
}

/* The message for one attempt: w with its header (h) finished, built anew
 * by build() when there is one (the first attempt's message goes to NNG,
 * which frees it), else a copy of w -- or w's own message for the last
 * attempt. Returns 0, or a FaissxError with the reason in err. */
static int request_msg(fx_client* c, fx_wbuf* w, fx_build_fn build,
                       void* arg, fx_hdr* h, int last, nng_msg** out,
                       char* err, size_t errsz) {
    fx_wbuf b;
    *out = NULL;
    if (build) {
        fx_client_begin(c, &b);
        if (build(&b, arg) != 0) {
            fx_w_free(&b);
            snprintf(err, errsz, "cannot build the %s request",
                     fx_op_name(h->op));
            return FAISSX_E_INVALID;
        }
        w = &b;
    }
    int rc = 0;
    if (w->oom) {
        snprintf(err, errsz, "out of memory building the request");
        rc = FAISSX_E_NOMEM;
    } else if (w->len < FX_HDR_SIZE || w->len - FX_HDR_SIZE > UINT32_MAX) {
        snprintf(err, errsz, "request of %zu bytes is too large for one "
                 "message", w->len);
        rc = FAISSX_E_LIMIT;
    } else {
        fx_w_finish(w, h);
        if (build || last) *out = fx_w_take_nng(w);
        if (!*out && nng_msg_alloc(out, w->len) == 0)
            memcpy(nng_msg_body(*out), w->data, w->len);
        if (!*out) {
            snprintf(err, errsz, "out of memory building the request");
            rc = FAISSX_E_NOMEM;
        }
    }
    if (build) fx_w_free(&b);
    return rc;
}

/* One call: what its attempts share, and its first attempt when that runs
 * asynchronously (fx_client_call_start). */
struct fx_call {
    fx_client* c;
    int op;
    fx_wbuf* w;
    fx_build_fn build;
    void* arg;
    fx_hdr h;
    uint64_t deadline; /* told to the server */
    uint64_t wait_end; /* this call gives up then */
    uint32_t waited;
    int tries;
    uint64_t req_bytes; /* the request message's size (first attempt) */
    unsigned closes0;   /* c->pipe_closes when the call began */
    /* the asynchronous first attempt (fx_client_call_start) */
    int async;  /* 1 while it is started and not yet collected */
    fx_sock* s;
    nng_ctx ctx;
    nng_aio* aio;
    uint64_t t0, wait; /* the attempt's start and its time allowed */
    int phase;         /* 0 sending, 1 receiving, 2 ended (guarded by mu) */
    int rv;
    nng_msg* reply;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*notify)(void*);
    void* notify_arg;
};

/* A call's setup with the given id (0: a fresh one), flags and wait. */
static void call_setup(fx_call* k, fx_client* c, int op, int op_class,
                       fx_wbuf* w, fx_build_fn build, void* arg,
                       uint64_t want_id, uint32_t want_flags,
                       uint32_t want_wait) {
    memset(k, 0, sizeof *k);
    k->c = c;
    k->op = op;
    k->w = w;
    k->build = build;
    k->arg = arg;
    if (op_class < 0 || op_class >= FAISSX_OP_CLASS_COUNT)
        op_class = fx_op_class(op);
    uint32_t total = thread_timeout_ms > 0
                             ? (uint32_t)thread_timeout_ms
                             : atomic_load(&c->timeout_ms[op_class]);
    uint64_t start = mono_ms();
    k->deadline = start + total;
    /* The server is told `deadline`; this call gives up at `wait_end`. */
    k->waited = want_wait && want_wait < total ? want_wait : total;
    k->wait_end = start + k->waited;
    k->h.op = (uint16_t)op;
    k->h.request_id = want_id ? want_id : atomic_fetch_add(&c->next_id, 1);
    k->h.flags = want_flags;
    k->h.client_id = c->client_id;
    k->closes0 = atomic_load(&c->pipe_closes);
}

/* A call's setup with the calling thread's fx_client_next_call_as and
 * fx_client_next_call_wait settings, which it then forgets. */
static void call_init(fx_call* k, fx_client* c, int op, int op_class,
                      fx_wbuf* w, fx_build_fn build, void* arg) {
    uint64_t want_id = next_request_id; /* fx_client_next_call_as */
    uint32_t want_flags = next_flags;
    uint32_t want_wait = next_wait_ms; /* fx_client_next_call_wait */
    next_request_id = 0;
    next_flags = 0;
    next_wait_ms = 0;
    call_setup(k, c, op, op_class, w, build, arg, want_id, want_flags,
               want_wait);
}

/* Whether another attempt may start now; else *rv says why not. */
static int may_attempt(fx_call* k, int* rv) {
    if (atomic_load(&k->c->closed)) {
        *rv = NNG_ECLOSED;
        return 0;
    }
    if (mono_ms() >= k->wait_end) {
        *rv = NNG_ETIMEDOUT;
        return 0;
    }
    return 1;
}

static int check_fits(fx_call* k, char* err, size_t errsz);
static int late_limit(fx_call* k, int rv, char* err, size_t errsz);

/* The message and time allowed of the next attempt. Returns 0, or a
 * FaissxError with the reason in err. */
static int next_attempt(fx_call* k, nng_msg** req, uint64_t* wait, char* err,
                        size_t errsz) {
    fx_client* c = k->c;
    uint64_t now = mono_ms();
    uint64_t left = k->wait_end > now ? k->wait_end - now : 0;
    /* the server skips it after this */
    k->h.timeout_ms = (uint32_t)(k->deadline > now ? k->deadline - now : 0);
    int brc = request_msg(c, k->w, k->build, k->arg, &k->h,
                          k->tries + 1 >= c->max_attempts, req, err, errsz);
    if (brc != 0) return brc;
    if (k->tries == 0) {
        /* Nothing over the server's message limit is sent: NNG would drop
         * it unseen, and the call would wait out its deadline. */
        k->req_bytes = nng_msg_len(*req);
        if ((brc = check_fits(k, err, errsz)) != 0) {
            nng_msg_free(*req);
            *req = NULL;
            return brc;
        }
        now = mono_ms(); /* LIMITS may have taken some of the time */
        left = k->wait_end > now ? k->wait_end - now : 0;
        if (left == 0) {
            /* LIMITS took the call's time: this one's reply is lost */
            nng_msg_free(*req);
            *req = NULL;
            snprintf(err, errsz, "%s to %s: no reply within %u ms (asking "
                     "the server's limits took it all)", fx_op_name(k->op),
                     c->url, k->waited);
            return FAISSX_E_TIMEOUT;
        }
    }
    *wait = c->attempt_timeout_ms && c->attempt_timeout_ms < left
                    ? c->attempt_timeout_ms : left;
    k->tries++;
    atomic_fetch_add(&round_trips, 1);
    return 0;
}

/* Attempts until one gets a reply, fails for good, or time is up; *rv
 * holds the last attempt's result (k->tries > 0: an attempt already ran
 * with that result). Returns 0, or a FaissxError when a request message
 * cannot be built. */
static int call_attempts(fx_call* k, int* rvp, nng_msg** msg, char* err,
                         size_t errsz) {
    fx_client* c = k->c;
    int rv = *rvp;
    for (;;) {
        if (k->tries > 0) {
            if (rv == 0 || !retryable(rv) || k->tries >= c->max_attempts)
                break;
            uint64_t cap = c->backoff_base_ms;
            for (int i = 1; i < k->tries && cap < c->backoff_cap_ms; i++)
                cap *= 2;
            if (cap > c->backoff_cap_ms) cap = c->backoff_cap_ms;
            uint64_t pause = nng_random() % (cap + 1);
            if (mono_ms() + pause >= k->wait_end) {
                rv = NNG_ETIMEDOUT; /* no time left for another attempt */
                break;
            }
            fx_clog(FAISSX_LOG_DEBUG,
                    "%s: %s attempt %d failed (%s); retrying in %llu ms",
                    c->url, fx_op_name(k->op), k->tries, nng_strerror(rv),
                    (unsigned long long)pause);
            nng_msleep((nng_duration)pause);
        }
        if (!may_attempt(k, &rv)) break;
        nng_msg* req;
        uint64_t wait;
        int brc = next_attempt(k, &req, &wait, err, errsz);
        if (brc != 0) return brc;
        fx_sock* s = pick_socket(c);
        atomic_fetch_add(&s->busy, 1);
        rv = attempt(s, req, wait, msg);
        atomic_fetch_sub(&s->busy, 1);
    }
    *rvp = rv;
    return 0;
}

static int call_end(fx_call* k, int rv, nng_msg* msg, fx_reply* rep,
                    char* err, size_t errsz);

static int call(fx_client* c, int op, int op_class, fx_wbuf* w,
                fx_build_fn build, void* arg, fx_reply* rep, char* err,
                size_t errsz) {
    fx_call k;
    call_init(&k, c, op, op_class, w, build, arg);
    last_from_server = 0;
    rep->msg = NULL;
    int rv = NNG_ETIMEDOUT;
    nng_msg* msg = NULL;
    int brc = call_attempts(&k, &rv, &msg, err, errsz);
    if (brc != 0) return brc;
    return call_end(&k, rv, msg, rep, err, errsz);
}

int fx_client_call(fx_client* c, int op, int op_class, fx_wbuf* w,
                   fx_reply* rep, char* err, size_t errsz) {
    return call(c, op, op_class, w, NULL, NULL, rep, err, errsz);
}

int fx_client_call_build(fx_client* c, int op, int op_class,
                         fx_build_fn build, void* arg, fx_reply* rep,
                         char* err, size_t errsz) {
    return call(c, op, op_class, NULL, build, arg, rep, err, errsz);
}

/* ---- a call whose first attempt runs while the caller works ---- */

/* The first attempt's aio callback (an NNG thread): send done -> receive;
 * receive done (or any failure) -> ended, then notify. */
static void call_cb(void* arg) {
    fx_call* k = arg;
    int rv = nng_aio_result(k->aio);
    pthread_mutex_lock(&k->mu);
    if (k->phase == 0 && rv == 0) {
        uint64_t spent = mono_ms() - k->t0;
        if (spent < k->wait) {
            k->phase = 1;
            pthread_mutex_unlock(&k->mu);
            /* Unlocked: a stopped aio may complete (call this) at once. */
            nng_aio_set_timeout(k->aio, (nng_duration)(k->wait - spent));
            nng_ctx_recv(k->ctx, k->aio);
            return;
        }
        rv = NNG_ETIMEDOUT;
    } else if (k->phase == 0) {
        /* Not sent: NNG hands the request back, and freeing it is ours. */
        nng_msg_free(nng_aio_get_msg(k->aio));
        nng_aio_set_msg(k->aio, NULL);
    } else if (rv == 0) {
        k->reply = nng_aio_get_msg(k->aio);
        nng_aio_set_msg(k->aio, NULL);
        atomic_store(&k->s->last_reply_ms, mono_ms());
    }
    k->rv = rv;
    k->phase = 2;
    /* The attempt is over: a close need not wait for it. */
    atomic_fetch_sub(&k->s->busy, 1);
    void (*notify)(void*) = k->notify;
    void* narg = k->notify_arg;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    /* k stays valid: finish and abandon stop the aio (waiting for this
     * callback) before they free it. */
    if (notify) notify(narg);
}

int fx_client_call_start(fx_client* c, int op, int op_class,
                         fx_build_fn build, void* arg,
                         void (*notify)(void*), void* notify_arg,
                         fx_call** out, char* err, size_t errsz) {
    *out = NULL;
    fx_call* k = malloc(sizeof *k);
    if (!k) {
        snprintf(err, errsz, "out of memory starting a %s call",
                 fx_op_name(op));
        return FAISSX_E_NOMEM;
    }
    call_init(k, c, op, op_class, NULL, build, arg);
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    k->notify = notify;
    k->notify_arg = notify_arg;
    int rv;
    if (may_attempt(k, &rv)) {
        nng_msg* req = NULL;
        int brc = next_attempt(k, &req, &k->wait, err, errsz);
        if (brc != 0) {
            pthread_mutex_destroy(&k->mu);
            pthread_cond_destroy(&k->cv);
            free(k);
            return brc;
        }
        fx_sock* s = pick_socket(c);
        k->s = s;
        k->t0 = mono_ms();
        atomic_fetch_add(&s->busy, 1);
        if ((rv = nng_ctx_open(&k->ctx, s->s)) != 0) {
            nng_msg_free(req);
        } else if ((rv = nng_aio_alloc(&k->aio, call_cb, k)) != 0) {
            nng_msg_free(req);
            nng_ctx_close(k->ctx);
        } else {
            k->async = 1;
            nng_aio_set_timeout(k->aio, (nng_duration)k->wait);
            nng_aio_set_msg(k->aio, req);
            nng_ctx_send(k->ctx, k->aio);
        }
        if (!k->async) atomic_fetch_sub(&s->busy, 1);
    }
    if (!k->async) {
        /* Nothing in flight: finish decides (retries or the error). */
        k->rv = rv;
        k->phase = 2;
    }
    *out = k;
    return 0;
}

int fx_client_call_ended(fx_call* k) {
    pthread_mutex_lock(&k->mu);
    int ended = k->phase == 2;
    int again = ended && k->rv != 0 && retryable(k->rv) &&
                k->tries < k->c->max_attempts;
    pthread_mutex_unlock(&k->mu);
    return again ? 2 : ended;
}

/* Stops the first attempt (waiting for its callback), keeps its reply in
 * *msg (when it has one) and frees what the attempt used. */
static int call_collect(fx_call* k, nng_msg** msg) {
    if (!k->async) {
        *msg = NULL;
        return k->rv;
    }
    nng_aio_stop(k->aio); /* cancels a pending one; waits for call_cb */
    pthread_mutex_lock(&k->mu);
    if (k->phase != 2) { /* stopped before its callback ran */
        if (k->phase == 0) nng_msg_free(nng_aio_get_msg(k->aio));
        k->rv = NNG_ECANCELED;
        k->phase = 2;
        atomic_fetch_sub(&k->s->busy, 1);
    }
    pthread_mutex_unlock(&k->mu);
    nng_aio_free(k->aio);
    nng_ctx_close(k->ctx);
    k->async = 0;
    *msg = k->reply;
    k->reply = NULL;
    return k->rv;
}

static void call_free(fx_call* k) {
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
}

int fx_client_call_finish(fx_call* k, fx_reply* rep, char* err,
                          size_t errsz) {
    last_from_server = 0;
    rep->msg = NULL;
    pthread_mutex_lock(&k->mu);
    while (k->phase != 2) pthread_cond_wait(&k->cv, &k->mu);
    pthread_mutex_unlock(&k->mu);
    nng_msg* msg = NULL;
    int rv = call_collect(k, &msg);
    int brc = call_attempts(k, &rv, &msg, err, errsz);
    int ret = brc != 0 ? brc : call_end(k, rv, msg, rep, err, errsz);
    call_free(k);
    return ret;
}

void fx_client_call_abandon(fx_call* k) {
    if (!k) return;
    nng_msg* msg = NULL;
    (void)call_collect(k, &msg);
    if (msg) nng_msg_free(msg);
    call_free(k);
}

/* The end of a call: the transport's error, or the reply checked. */
static int call_end(fx_call* k, int rv, nng_msg* msg, fx_reply* rep,
                    char* err, size_t errsz) {
    fx_client* c = k->c;
    int op = k->op;
    int tries = k->tries;
    uint32_t waited = k->waited;
    fx_hdr h = k->h;
    if (rv != 0) {
        if (rv != NNG_ECLOSED && atomic_load(&c->npipes) == 0) {
            atomic_store(&c->failed, 1);
            state_maybe_changed(c);
        }
        if (rv != NNG_ECLOSED && late_limit(k, rv, err, errsz))
            return FAISSX_E_LIMIT;
        if (rv == NNG_ETIMEDOUT) {
            snprintf(err, errsz, "%s to %s: no reply within %u ms (%d "
                     "attempt%s%s)", fx_op_name(op), c->url, waited, tries,
                     tries == 1 ? "" : "s",
                     atomic_load(&c->npipes) ? ""
                                             : "; not connected");
            return FAISSX_E_TIMEOUT;
        }
        if (rv == NNG_ECLOSED) {
            snprintf(err, errsz, "%s to %s: the connection is closed (%s)",
                     fx_op_name(op), c->url,
                     atomic_load(&exiting)
                             ? "the process is exiting"
                             : "the client was reconfigured or disabled");
            return FAISSX_E_NET;
        }
        snprintf(err, errsz, "%s to %s failed: %s", fx_op_name(op), c->url,
                 nng_strerror(rv));
        return rv == NNG_ENOMEM ? FAISSX_E_NOMEM : FAISSX_E_NET;
    }
    atomic_store(&c->last_reply_ms, mono_ms());

    const uint8_t* body = nng_msg_body(msg);
    size_t len = nng_msg_len(msg);
    fx_hdr r;
    char why[200];
    int drc = fx_hdr_decode(body, len, &r, why, sizeof why);
    if (drc != 0 || !(r.flags & FX_FLAG_REPLY) ||
        r.request_id != h.request_id) {
        snprintf(err, errsz, "bad reply from %s: %s", c->url,
                 drc ? why : "not the reply to this request");
        nng_msg_free(msg);
        return FAISSX_E_PROTOCOL;
    }
    fx_r_init(&rep->r, body + FX_HDR_SIZE, len - FX_HDR_SIZE);
    last_from_server = 1;
    if (r.status != 0) {
        char m[1024];
        if (fx_r_str(&rep->r, m, sizeof m - 1) != 0)
            snprintf(m, sizeof m, "(no message)");
        snprintf(err, errsz, "server: %s", m);
        nng_msg_free(msg);
        return r.status < 0 ? r.status : FAISSX_E_PROTOCOL;
    }
    rep->msg = msg;
    return 0;
}

/* ------------------------------------------------------------------------
 * The server's limits (FX_OP_LIMITS)
 * ------------------------------------------------------------------------ */

enum { LIM_UNKNOWN, LIM_KNOWN, LIM_NONE };
/* After a call that got no reply because (it seems) its request was over
 * the limit: how long to wait for the connection to come back, and at
 * most how long LIMITS may take then. */
enum { LATE_CONNECT_MS = 1000, LATE_LIMITS_MS = 5000 };

/* The limits of c as last asked on its current connections. */
static int limits_cached(fx_client* c, fx_limits* out) {
    if (atomic_load(&c->lim_stale)) return LIM_UNKNOWN;
    pthread_mutex_lock(&c->lim_mu);
    int st = c->lim_state;
    *out = c->lim;
    pthread_mutex_unlock(&c->lim_mu);
    return st;
}

/* Asks the server LIMITS, giving up at wait_end (the server is told
 * deadline), and records the answer. Returns the state learned:
 * LIM_UNKNOWN when the question failed (transport, or an error such as a
 * refused key: the caller's own request then meets it). */
static int limits_fetch(fx_client* c, uint64_t deadline, uint64_t wait_end,
                        fx_limits* out) {
    pthread_mutex_lock(&c->lim_mu);
    c->lim_state = LIM_UNKNOWN;
    atomic_store(&c->lim_stale, 0); /* a close from here on: ask again */
    pthread_mutex_unlock(&c->lim_mu);
    int saved_from_server = last_from_server;
    fx_wbuf w;
    fx_client_begin(c, &w);
    fx_call q;
    call_setup(&q, c, FX_OP_LIMITS, FAISSX_OP_ADMIN, &w, NULL, NULL, 0, 0,
               0);
    uint64_t now = mono_ms();
    q.deadline = deadline;
    q.wait_end = wait_end;
    q.waited = (uint32_t)(wait_end > now ? wait_end - now : 0);
    int rv = NNG_ETIMEDOUT;
    nng_msg* msg = NULL;
    fx_reply rep;
    rep.msg = NULL;
    char e[512];
    int rc = call_attempts(&q, &rv, &msg, e, sizeof e);
    if (rc == 0) rc = call_end(&q, rv, msg, &rep, e, sizeof e);
    int answered = last_from_server;
    fx_w_free(&w);
    last_from_server = saved_from_server;
    int st = LIM_UNKNOWN;
    fx_limits l;
    if (rc == 0) {
        if (fx_r_u64(&rep.r, &l.max_message_bytes) == 0 &&
            fx_r_u64(&rep.r, &l.max_k) == 0 &&
            fx_r_u64(&rep.r, &l.max_batch) == 0 &&
            l.max_message_bytes >= FX_HDR_SIZE) /* later fields: ignored */
            st = LIM_KNOWN;
        else
            fx_clog(FAISSX_LOG_WARN, "%s: malformed reply to LIMITS; "
                    "the server's limits stay unknown", c->url);
        fx_reply_free(&rep);
    } else if (rc == FAISSX_E_UNSUPPORTED && answered) {
        st = LIM_NONE; /* a server that predates LIMITS */
    } else {
        fx_clog(FAISSX_LOG_DEBUG, "%s: cannot ask the server's limits: %s",
                c->url, e);
    }
    if (st == LIM_UNKNOWN) return st;
    pthread_mutex_lock(&c->lim_mu);
    c->lim_state = st;
    if (st == LIM_KNOWN) c->lim = l;
    pthread_mutex_unlock(&c->lim_mu);
    if (st == LIM_KNOWN) *out = l;
    return st;
}

/* The error of a request over the limit. */
static void limit_error(fx_client* c, int op, uint64_t bytes, uint64_t max,
                        char* err, size_t errsz) {
    snprintf(err, errsz, "%s request of %llu bytes is over the server's "
             "message limit of %llu bytes (faissx-server "
             "--max-message-bytes, %s): not sent, nothing applied; split "
             "the batch into smaller calls, or raise the server's "
             "--max-message-bytes", fx_op_name(op),
             (unsigned long long)bytes, (unsigned long long)max, c->url);
}

/* Before a call's first attempt: 0 when its request (k->req_bytes) may be
 * sent, else FAISSX_E_LIMIT with the message in err. A request larger
 * than FX_LIMITS_ASK_BYTES has the limits asked first (within the call's
 * own deadline); a smaller one is checked only against limits already
 * known. */
static int check_fits(fx_call* k, char* err, size_t errsz) {
    fx_client* c = k->c;
    if (k->op == FX_OP_LIMITS || k->req_bytes <= FX_LIMITS_MIN_MESSAGE)
        return 0;
    fx_limits lim;
    int st = limits_cached(c, &lim);
    if (st == LIM_UNKNOWN && k->req_bytes > FX_LIMITS_ASK_BYTES)
        st = limits_fetch(c, k->deadline, k->wait_end, &lim);
    if (st != LIM_KNOWN || k->req_bytes <= lim.max_message_bytes) return 0;
    limit_error(c, k->op, k->req_bytes, lim.max_message_bytes, err, errsz);
    last_from_server = 1; /* an answer: it did not run */
    return FAISSX_E_LIMIT;
}

/* After a call that got no reply (rv): the server drops a request over
 * its message limit unseen and closes the connection, so a request of
 * more than FX_LIMITS_MIN_MESSAGE bytes sent while the limits were not
 * known, during which a connection closed, is checked against the limits
 * (asked now, once the connection is back, briefly). Returns 1 with
 * FAISSX_E_LIMIT's message in err when it was over the limit. */
static int late_limit(fx_call* k, int rv, char* err, size_t errsz) {
    fx_client* c = k->c;
    if (k->op == FX_OP_LIMITS || k->req_bytes <= FX_LIMITS_MIN_MESSAGE ||
        atomic_load(&c->closed) ||
        atomic_load(&c->pipe_closes) == k->closes0)
        return 0;
    fx_limits lim;
    int st = limits_cached(c, &lim);
    if (st == LIM_UNKNOWN) {
        uint64_t t0 = mono_ms();
        while (atomic_load(&c->npipes) == 0 &&
               mono_ms() - t0 < LATE_CONNECT_MS)
            nng_msleep(5);
        if (atomic_load(&c->npipes) == 0) return 0; /* the server is gone */
        uint64_t total = thread_timeout_ms > 0
                                 ? (uint64_t)thread_timeout_ms
                                 : atomic_load(&c->timeout_ms[FAISSX_OP_ADMIN]);
        if (total > LATE_LIMITS_MS) total = LATE_LIMITS_MS;
        uint64_t now = mono_ms();
        st = limits_fetch(c, now + total, now + total, &lim);
    }
    if (st != LIM_KNOWN || k->req_bytes <= lim.max_message_bytes) return 0;
    int n = snprintf(err, errsz, "%s request of %llu bytes was over the "
                     "server's message limit of %llu bytes (faissx-server "
                     "--max-message-bytes, %s), so the server dropped it "
                     "unread (%s): nothing applied; split the batch into "
                     "smaller calls, or raise the server's "
                     "--max-message-bytes", fx_op_name(k->op),
                     (unsigned long long)k->req_bytes,
                     (unsigned long long)lim.max_message_bytes, c->url,
                     rv == NNG_ETIMEDOUT ? "the call got no reply"
                                         : nng_strerror(rv));
    (void)n;
    last_from_server = 1;
    return 1;
}

int fx_client_limits(fx_client* c, int op_class, fx_limits* out) {
    int st = limits_cached(c, out);
    if (st == LIM_UNKNOWN) {
        if (op_class < 0 || op_class >= FAISSX_OP_CLASS_COUNT)
            op_class = FAISSX_OP_ADMIN;
        uint64_t total = thread_timeout_ms > 0
                                 ? (uint64_t)thread_timeout_ms
                                 : atomic_load(&c->timeout_ms[op_class]);
        uint64_t now = mono_ms();
        st = limits_fetch(c, now + total, now + total, out);
    }
    return st == LIM_KNOWN;
}

int fx_client_check_size(fx_client* c, int op, uint64_t bytes, char* err,
                         size_t errsz) {
    if (bytes <= FX_LIMITS_MIN_MESSAGE) return 0;
    fx_limits lim;
    int st = limits_cached(c, &lim);
    if (st == LIM_UNKNOWN && bytes > FX_LIMITS_ASK_BYTES)
        st = fx_client_limits(c, fx_op_class(op), &lim) ? LIM_KNOWN
                                                        : LIM_NONE;
    if (st != LIM_KNOWN || bytes <= lim.max_message_bytes) return 0;
    limit_error(c, op, bytes, lim.max_message_bytes, err, errsz);
    return FAISSX_E_LIMIT;
}
