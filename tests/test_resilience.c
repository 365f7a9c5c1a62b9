/* test_resilience.c -- the remote client under adversity: retried
 * mutations applied once (replies dropped by the server), deadlines that
 * travel with requests, a server killed and restarted under load, a
 * stopped server found by the heartbeat, local fallback, many threads on
 * one connection or a pool, exit with calls in flight, configuration. */
#include "common.h"
#include "server_fixture.h"

#include "net/proto.h"
#include "net/server.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static fxt_server srv;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static uint64_t mono_ms(void) {
    return mono_ns() / 1000000u;
}
static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void stop(void) {
    faissx_set_connection_callback(NULL, NULL);
    faissx_set_log_callback(NULL, NULL);
    faissx_set_thread_timeout(0);
    faissx_configure(NULL, NULL, 0);
    if (srv.pid > 0) fxt_server_stop(&srv);
}

/* =======================================================================
 * The handler alone (fx_state): remembered replies and deadlines
 * ======================================================================= */

static fx_state* state_with(const char* keys) {
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.auth_keys = keys;
    fx_state* s = NULL;
    char err[256] = "";
    cr_assert_eq(fx_state_new(&c, &s, err, sizeof err), 0, "%s", err);
    return s;
}

/* A request: the API key, then fields written by the caller. */
static void req_begin(fx_wbuf* w, const char* key) {
    fx_w_init(w);
    fx_w_header_space(w);
    fx_w_str(w, key);
}

typedef struct {
    fx_wbuf bytes; /* the whole reply message */
    fx_hdr h;
    fx_rbuf body;
    char err[512];
} reply_t;

/* Sends w as op with these ids and deadline (recv_ns 0 = arrived now);
 * returns the reply status. w is kept, so it can be sent again. */
static int send_req(fx_state* s, fx_wbuf* w, int op, uint64_t client,
                    uint64_t rid, uint32_t timeout_ms, uint64_t recv_ns,
                    reply_t* out) {
    fx_hdr h = {0};
    h.op = (uint16_t)op;
    h.request_id = rid;
    h.client_id = client;
    h.timeout_ms = timeout_ms;
    fx_w_finish(w, &h);
    cr_assert(!w->oom);
    fx_req_info info = {7, recv_ns};
    fx_req_meta meta;
    fx_w_init(&out->bytes);
    fx_state_handle_req(s, w->data, w->len, &info, &out->bytes, &meta);
    char why[200];
    cr_assert_eq(fx_hdr_decode(out->bytes.data, out->bytes.len, &out->h, why,
                               sizeof why), 0, "%s", why);
    cr_assert_eq(out->h.request_id, rid);
    cr_assert_eq(out->h.client_id, client);
    cr_assert_eq(meta.status, out->h.status);
    fx_r_init(&out->body, out->bytes.data + FX_HDR_SIZE,
              out->bytes.len - FX_HDR_SIZE);
    out->err[0] = '\0';
    if (out->h.status != 0)
        cr_assert_eq(fx_r_str(&out->body, out->err, sizeof out->err - 1), 0);
    return out->h.status;
}

static void reply_free(reply_t* r) {
    fx_w_free(&r->bytes);
}

static uint64_t next_rid = 100;

static uint64_t h_create(fx_state* s, const char* key, uint64_t client,
                         const char* desc, int d) {
    fx_wbuf w;
    reply_t r;
    req_begin(&w, key);
    fx_w_str(&w, "");
    fx_w_i64(&w, d);
    fx_w_i64(&w, METRIC_L2);
    fx_w_str(&w, desc);
    cr_assert_eq(send_req(s, &w, FX_OP_CREATE, client, next_rid++, 5000, 0,
                          &r), 0, "%s", r.err);
    uint64_t h = 0;
    cr_assert_eq(fx_r_u64(&r.body, &h), 0);
    reply_free(&r);
    fx_w_free(&w);
    return h;
}

static int64_t h_ntotal(fx_state* s, const char* key, uint64_t client,
                        uint64_t handle) {
    fx_wbuf w;
    reply_t r;
    req_begin(&w, key);
    fx_w_u64(&w, handle);
    cr_assert_eq(send_req(s, &w, FX_OP_INFO, client, next_rid++, 5000, 0,
                          &r), 0, "%s", r.err);
    uint64_t h;
    int64_t d, metric, trained, ntotal;
    cr_assert_eq(fx_r_u64(&r.body, &h), 0);
    cr_assert_eq(fx_r_i64(&r.body, &d) | fx_r_i64(&r.body, &metric) |
                         fx_r_i64(&r.body, &trained) |
                         fx_r_i64(&r.body, &ntotal), 0);
    reply_free(&r);
    fx_w_free(&w);
    return ntotal;
}

/* An ADD request of n vectors of dimension d (not sent). */
static void add_req(fx_wbuf* w, const char* key, uint64_t handle, int64_t n,
                    int d, uint64_t seed) {
    float* x = fxt_uniform((size_t)n, d, seed);
    req_begin(w, key);
    fx_w_u64(w, handle);
    fx_w_i64(w, n);
    fx_w_array(w, x, (uint64_t)n * (uint64_t)d, sizeof(float));
    free(x);
}

Test(dedupe, retried_mutation_is_applied_once) {
    fx_state* s = state_with(NULL);
    uint64_t ix = h_create(s, "", 1, "Flat", 4);
    fx_wbuf add;
    add_req(&add, "", ix, 3, 4, 1);
    reply_t a, b, c;
    cr_assert_eq(send_req(s, &add, FX_OP_ADD, 1, 42, 5000, 0, &a), 0);
    cr_assert_eq(send_req(s, &add, FX_OP_ADD, 1, 42, 4000, 0, &b), 0);
    /* The retry got the original reply, byte for byte, and ran once. */
    cr_assert_eq(a.bytes.len, b.bytes.len);
    FXT_SAME(a.bytes.data, b.bytes.data, a.bytes.len);
    cr_assert_eq(h_ntotal(s, "", 1, ix), 3);
    /* Another client's request 42 is another request. */
    cr_assert_eq(send_req(s, &add, FX_OP_ADD, 2, 42, 5000, 0, &c), 0);
    cr_assert_eq(h_ntotal(s, "", 1, ix), 6);
    /* Request id 0 means "not retried": never remembered. */
    reply_free(&c);
    cr_assert_eq(send_req(s, &add, FX_OP_ADD, 1, 0, 5000, 0, &c), 0);
    reply_free(&c);
    cr_assert_eq(send_req(s, &add, FX_OP_ADD, 1, 0, 5000, 0, &c), 0);
    cr_assert_eq(h_ntotal(s, "", 1, ix), 12);
    reply_free(&a);
    reply_free(&b);
    reply_free(&c);
    fx_w_free(&add);

    /* A retried CREATE does not make a second index. */
    size_t before = fx_state_index_count(s);
    fx_wbuf cr;
    req_begin(&cr, "");
    fx_w_str(&cr, "");
    fx_w_i64(&cr, 8);
    fx_w_i64(&cr, METRIC_L2);
    fx_w_str(&cr, "Flat");
    cr_assert_eq(send_req(s, &cr, FX_OP_CREATE, 1, 77, 5000, 0, &a), 0);
    cr_assert_eq(send_req(s, &cr, FX_OP_CREATE, 1, 77, 5000, 0, &b), 0);
    FXT_SAME(a.bytes.data, b.bytes.data, a.bytes.len);
    cr_assert_eq(fx_state_index_count(s), before + 1);
    reply_free(&a);
    reply_free(&b);
    fx_w_free(&cr);

    /* A failed mutation's retry gets the same error, without running. */
    fx_wbuf wrong;
    float three[3] = {1, 2, 3};
    req_begin(&wrong, "");
    fx_w_u64(&wrong, ix);
    fx_w_i64(&wrong, 2);
    fx_w_array(&wrong, three, 3, sizeof(float)); /* 2 x 4 expected */
    cr_assert_eq(send_req(s, &wrong, FX_OP_ADD, 1, 90, 5000, 0, &a),
                 FAISSX_E_INVALID);
    cr_assert_eq(send_req(s, &wrong, FX_OP_ADD, 1, 90, 5000, 0, &b),
                 FAISSX_E_INVALID);
    cr_assert_str_eq(a.err, b.err);
    FXT_SAME(a.bytes.data, b.bytes.data, a.bytes.len);
    reply_free(&a);
    reply_free(&b);
    fx_w_free(&wrong);
    fx_state_free(s);
}

Test(dedupe, bounded_per_client_and_reads_not_kept) {
    fx_state* s = state_with(NULL);
    uint64_t ix = h_create(s, "", 5, "Flat", 4);
    size_t base = fx_state_remembered_replies(s); /* the CREATE */
    fx_wbuf add;
    add_req(&add, "", ix, 1, 4, 2);
    reply_t r;
    cr_assert_eq(send_req(s, &add, FX_OP_ADD, 5, 10, 5000, 0, &r), 0);
    reply_free(&r);
    cr_assert_eq(fx_state_remembered_replies(s), base + 1);

    /* Searches are not remembered: they are simply run again. */
    fx_wbuf q;
    float x[4] = {0, 0, 0, 0};
    req_begin(&q, "");
    fx_w_u64(&q, ix);
    fx_w_i64(&q, 1);
    fx_w_i64(&q, 1);
    fx_w_array(&q, x, 4, sizeof(float));
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(send_req(s, &q, FX_OP_SEARCH, 5, 500 + i, 5000, 0, &r),
                     0, "%s", r.err);
        reply_free(&r);
    }
    fx_w_free(&q);
    cr_assert_eq(fx_state_remembered_replies(s), base + 1);

    /* 1024 more mutations of this client push request 10 out. */
    for (int i = 0; i < 1024; i++) {
        fx_wbuf w;
        req_begin(&w, "");
        fx_w_u64(&w, ix);
        fx_w_str(&w, "verbose");
        fx_w_f64(&w, 0);
        cr_assert_eq(send_req(s, &w, FX_OP_SET_PARAM, 5, 1000 + i, 5000, 0,
                              &r), 0, "%s", r.err);
        reply_free(&r);
        fx_w_free(&w);
    }
    cr_assert_eq(fx_state_remembered_replies(s), 1024);
    cr_assert_eq(h_ntotal(s, "", 5, ix), 1);
    cr_assert_eq(send_req(s, &add, FX_OP_ADD, 5, 10, 5000, 0, &r), 0);
    reply_free(&r);
    cr_assert_eq(h_ntotal(s, "", 5, ix), 2, "a forgotten request runs again");
    fx_w_free(&add);
    fx_state_free(s);
}

Test(dedupe, tenants_do_not_share_replies) {
    fx_state* s = state_with("ka:alice,kb:bob");
    uint64_t ha = h_create(s, "ka", 9, "Flat", 4);
    uint64_t hb = h_create(s, "kb", 9, "Flat", 4);
    fx_wbuf wa, wb;
    add_req(&wa, "ka", ha, 2, 4, 4);
    add_req(&wb, "kb", hb, 3, 4, 5);
    reply_t r;
    cr_assert_eq(send_req(s, &wa, FX_OP_ADD, 9, 300, 5000, 0, &r), 0);
    reply_free(&r);
    /* Same client and request ids, another tenant: its own request. */
    cr_assert_eq(send_req(s, &wb, FX_OP_ADD, 9, 300, 5000, 0, &r), 0);
    reply_free(&r);
    cr_assert_eq(h_ntotal(s, "ka", 9, ha), 2);
    cr_assert_eq(h_ntotal(s, "kb", 9, hb), 3);
    fx_w_free(&wa);
    fx_w_free(&wb);
    fx_state_free(s);
}

Test(deadline, expired_while_queued_is_not_run) {
    fx_state* s = state_with(NULL);
    uint64_t ix = h_create(s, "", 3, "Flat", 4);
    fx_wbuf add;
    add_req(&add, "", ix, 2, 4, 6);
    reply_t r;
    /* Arrived 300 ms ago with a 100 ms deadline: refused unrun. */
    uint64_t old = mono_ns() - 300u * 1000000u;
    cr_assert_eq(send_req(s, &add, FX_OP_ADD, 3, 1, 100, old, &r),
                 FAISSX_E_TIMEOUT);
    cr_assert(strstr(r.err, "not run") && strstr(r.err, "deadline"), "%s",
              r.err);
    reply_free(&r);
    cr_assert_eq(h_ntotal(s, "", 3, ix), 0);
    /* Same age, no deadline (timeout 0): runs. */
    cr_assert_eq(send_req(s, &add, FX_OP_ADD, 3, 2, 0, old, &r), 0);
    reply_free(&r);
    /* Fresh, 100 ms deadline: runs. */
    cr_assert_eq(send_req(s, &add, FX_OP_ADD, 3, 3, 100, mono_ns(), &r), 0);
    reply_free(&r);
    cr_assert_eq(h_ntotal(s, "", 3, ix), 4);
    fx_w_free(&add);
    fx_state_free(s);
}

/* A retry that arrives while its first copy still runs waits for that
 * copy's reply instead of running the request a second time. */
typedef struct {
    fx_state* s;
    fx_wbuf* w;
    uint64_t rid;
    uint32_t timeout;
    reply_t r;
    int status;
    uint64_t ms;
} req_job;

static void* run_job(void* arg) {
    req_job* j = arg;
    fx_wbuf copy; /* each thread finishes its own header */
    fx_w_init(&copy);
    copy.data = malloc(j->w->len);
    memcpy(copy.data, j->w->data, j->w->len);
    copy.len = copy.cap = j->w->len;
    uint64_t t0 = mono_ms();
    j->status = send_req(j->s, &copy, FX_OP_ADD, 11, j->rid, j->timeout, 0,
                         &j->r);
    j->ms = mono_ms() - t0;
    fx_w_free(&copy);
    return NULL;
}

Test(dedupe, retry_waits_for_the_running_copy) {
    fx_state* s = state_with(NULL);
    const int d = 32, n = 6000;
    uint64_t ix = h_create(s, "", 11, "HNSW32", d);
    fx_wbuf add;
    add_req(&add, "", ix, n, d, 7);
    req_job first;
    memset(&first, 0, sizeof first);
    first.s = s;
    first.w = &add;
    first.rid = 555;
    first.timeout = 60000;
    req_job retry = first, hasty = first;
    hasty.timeout = 30;
    pthread_t t1, t2, t3;
    cr_assert_eq(pthread_create(&t1, NULL, run_job, &first), 0);
    sleep_ms(40); /* the first copy is running (an HNSW add of 6000) */
    cr_assert_eq(pthread_create(&t2, NULL, run_job, &retry), 0);
    cr_assert_eq(pthread_create(&t3, NULL, run_job, &hasty), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    pthread_join(t3, NULL);
    cr_assert(first.ms > 200, "the add took only %llu ms: too fast to test",
              (unsigned long long)first.ms);
    cr_assert_eq(first.status, 0, "%s", first.r.err);
    cr_assert_eq(retry.status, 0, "%s", retry.r.err);
    FXT_SAME(first.r.bytes.data, retry.r.bytes.data, first.r.bytes.len);
    cr_assert_eq(hasty.status, FAISSX_E_TIMEOUT, "%d %s", hasty.status,
                 hasty.r.err);
    cr_assert(strstr(hasty.r.err, "still running"), "%s", hasty.r.err);
    cr_assert(hasty.ms < first.ms, "the hasty retry waited %llu ms",
              (unsigned long long)hasty.ms);
    cr_assert_eq(h_ntotal(s, "", 11, ix), n, "applied more than once");
    reply_free(&first.r);
    reply_free(&retry.r);
    reply_free(&hasty.r);
    fx_w_free(&add);
    fx_state_free(s);
}
