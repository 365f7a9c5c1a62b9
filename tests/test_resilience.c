/* test_resilience.c -- the remote client under adversity: retried
 * mutations applied once (replies dropped by the server), deadlines that
 * travel with requests, a server killed and restarted under load, a
 * stopped server found by the heartbeat, local fallback, many threads on
 * one connection or a pool, exit with calls in flight, configuration. */
#include "common.h"
#include "server_fixture.h"

#include "net/client.h"
#include "net/proto.h"
#include "net/server.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
    /* Until the first copy runs (an HNSW add of 6000). A fixed 40 ms was
     * not always enough on a loaded machine: the hasty retry could come
     * first and run the add itself. */
    uint64_t w0 = mono_ms();
    size_t running;
    while ((running = fx_state_running_mutations(s)) == 0 &&
           mono_ms() - w0 < 60000)
        sleep_ms(2);
    cr_assert_eq(running, 1, "the first copy did not start within 60 s");
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

/* =======================================================================
 * A real server and the client library
 * ======================================================================= */

/* Options with every class's deadline `ms`. */
static void opts_for(FaissxClientOptions* o, const char* url, int ms) {
    faissx_client_options_init(o);
    o->url = url;
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++) o->timeout_ms[i] = ms;
}

/* opts_for, with retries and redials waiting from base_ms up to cap_ms. */
static void opts_backoff(FaissxClientOptions* o, const char* url, int ms,
                         int base_ms, int cap_ms) {
    opts_for(o, url, ms);
    o->backoff_base_ms = base_ms;
    o->backoff_cap_ms = cap_ms;
}

/* Starts srv with no extra arguments and connects with opts_backoff. */
static void start_connected(int ms, int base_ms, int cap_ms) {
    fxt_server_start(&srv, NULL);
    FaissxClientOptions o;
    opts_backoff(&o, srv.url, ms, base_ms, cap_ms);
    FXT_OK(faissx_configure_ex(&o));
}

/* The whole server log (fxt_server_log keeps only its start). */
static char* whole_log(const fxt_server* s) {
    FILE* f = fopen(s->log, "r");
    cr_assert(f, "no server log %s", s->log);
    size_t cap = 1 << 16, n = 0;
    char* buf = malloc(cap + 1);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int count_of(const char* hay, const char* needle) {
    int n = 0;
    for (const char* p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(retry, dropped_replies_are_applied_once, .fini = stop) {
    const char* args[] = {"--test-drop-replies", "3", NULL};
    fxt_server_start(&srv, args);
    FaissxClientOptions o;
    opts_backoff(&o, srv.url, 20000, 5, 20);
    o.attempt_timeout_ms = 200; /* a lost reply costs 200 ms */
    o.max_attempts = 6;
    FXT_OK(faissx_configure_ex(&o));

    enum { D = 8, NBATCH = 30, BS = 10, N = NBATCH * BS };
    float* x = fxt_uniform(N, D, 21);
    idx_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = 1000 + 7 * i;
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, "IDMap2,Flat", METRIC_L2));
    cr_assert(faissx_index_is_remote(ix));
    for (int b = 0; b < NBATCH; b++)
        FXT_OK(faiss_Index_add_with_ids(ix, BS, x + (size_t)b * BS * D,
                                        ids + b * BS));
    cr_assert_eq(faiss_Index_ntotal(ix), N, "ntotal %lld: a batch was "
                 "applied twice or lost", (long long)faiss_Index_ntotal(ix));

    /* Exactly the vectors and ids added, in order, once each. */
    FaissIndex* down = NULL;
    FXT_OK(faissx_index_download(ix, &down));
    idx_t* map = NULL;
    size_t nmap = 0;
    faiss_IndexIDMap2_id_map((FaissIndexIDMap2*)down, &map, &nmap);
    cr_assert_eq(nmap, (size_t)N);
    FXT_SAME(map, ids, sizeof ids);
    FaissIndexFlat* flat =
            faiss_IndexFlat_cast(faiss_IndexIDMap2_sub_index(
                    (FaissIndexIDMap2*)down));
    cr_assert_not_null(flat);
    float* xb = NULL;
    size_t nxb = 0;
    faiss_IndexFlat_xb(flat, &xb, &nxb);
    cr_assert_eq(nxb, (size_t)N * D);
    FXT_SAME(xb, x, sizeof(float) * N * D);

    /* Reads are retried too: every vector finds itself. */
    float dist[N];
    idx_t lab[N];
    FXT_OK(faiss_Index_search(ix, N, x, 1, dist, lab));
    FXT_SAME(lab, ids, sizeof ids);

    /* The server did drop replies (it logs each). */
    char* log = whole_log(&srv);
    int dropped = count_of(log, "dropping the reply");
    cr_assert(dropped >= NBATCH / 3, "only %d replies dropped:\n%s", dropped,
              log);
    free(log);
    faiss_Index_free(down);
    faiss_Index_free(ix);
    free(x);
}

/* A long request occupies the only worker; requests behind it whose
 * deadline passes are answered FAISSX_E_TIMEOUT on time, and not run. */
typedef struct {
    FaissIndex* ix;
    const float* x;
    int n;
    int rc;
    uint64_t ms;
} long_add;

static void* do_long_add(void* arg) {
    long_add* a = arg;
    uint64_t t0 = mono_ms();
    a->rc = faiss_Index_add(a->ix, a->n, a->x);
    a->ms = mono_ms() - t0;
    return NULL;
}

Test(deadline, busy_server_skips_expired_requests, .fini = stop) {
    const char* args[] = {"--workers", "1", NULL};
    fxt_server_start(&srv, args);
    FaissxClientOptions o;
    opts_for(&o, srv.url, 60000);
    FXT_OK(faissx_configure_ex(&o));
    FaissIndex *big = NULL, *small = NULL;
    FXT_OK(faiss_index_factory(&big, 32, "HNSW32", METRIC_L2));
    FXT_OK(faiss_index_factory(&small, 4, "Flat", METRIC_L2));
    long_add la = {big, NULL, 16000, -1, 0};
    float* x = fxt_uniform((size_t)la.n, 32, 5);
    la.x = x;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, do_long_add, &la), 0);
    /* Until the HNSW add occupies the only worker: a LIST with a 100 ms
     * deadline then times out (it answers at once while the worker is
     * free). A fixed 150 ms was a guess a loaded machine could outlast:
     * the small add below would then run before the big one and succeed.
     * The expired LISTs are skipped by the server like the add below. */
    int probe_old = faissx_set_thread_timeout(100);
    int probe_rc;
    uint64_t p0 = mono_ms();
    do {
        char** names = NULL;
        size_t nn = 0;
        probe_rc = faissx_index_list(&names, &nn);
        if (probe_rc == 0) {
            faissx_index_list_free(names, nn);
            sleep_ms(10);
        }
    } while (probe_rc == 0 && mono_ms() - p0 < 60000);
    cr_assert_eq(faissx_set_thread_timeout(probe_old), 100);
    cr_assert_eq(probe_rc, FAISSX_E_TIMEOUT,
                 "probing for the busy worker: %d %s", probe_rc,
                 probe_rc ? faiss_get_last_error() : "(the worker stayed free)");

    /* The add class's timeout: 150 ms. */
    FXT_OK(faissx_set_timeout(FAISSX_OP_ADD, 150));
    cr_assert_eq(faissx_get_timeout(FAISSX_OP_ADD), 150);
    float v[4] = {1, 2, 3, 4};
    uint64_t t0 = mono_ms();
    int rc = faiss_Index_add(small, 1, v);
    uint64_t add_ms = mono_ms() - t0;
    cr_assert_eq(rc, FAISSX_E_TIMEOUT, "add: %d %s", rc,
                 faiss_get_last_error());
    cr_assert(strstr(faiss_get_last_error(), "150 ms"), "%s",
              faiss_get_last_error());
    cr_assert(add_ms >= 140 && add_ms < 150 + 1000, "add returned after %llu ms",
              (unsigned long long)add_ms);

    /* A per-thread override, for a search (whose class says 60 s). */
    int old = faissx_set_thread_timeout(100);
    cr_assert_eq(old, 0);
    float dd[1];
    idx_t ll[1];
    t0 = mono_ms();
    rc = faiss_Index_search(small, 1, v, 1, dd, ll);
    uint64_t search_ms = mono_ms() - t0;
    cr_assert_eq(faissx_set_thread_timeout(old), 100);
    cr_assert_eq(rc, FAISSX_E_TIMEOUT, "search: %d %s", rc,
                 faiss_get_last_error());
    cr_assert(search_ms >= 90 && search_ms < 100 + 1000,
              "search returned after %llu ms",
              (unsigned long long)search_ms);

    pthread_join(t, NULL);
    cr_assert_eq(la.rc, 0, "long add failed: %s", faiss_get_last_error());
    cr_assert(la.ms > add_ms + search_ms + 150,
              "the long add took only %llu ms: it did not cover the test",
              (unsigned long long)la.ms);
    /* The expired add was not run when the worker got to it. */
    FXT_OK(faissx_set_timeout(FAISSX_OP_ADD, 60000));
    cr_assert_eq(faiss_Index_ntotal(small), 0, "the expired add ran");
    cr_assert_eq(faiss_Index_ntotal(big), la.n);
    faiss_Index_free(big);
    faiss_Index_free(small);
    free(x);
}

/* A server killed under a client with a short per-thread deadline: every
 * search fails with a timeout or transport error (in its deadline, give or
 * take a loaded machine), and the requests NNG could not deliver are freed
 * (LSan checks this suite). The first search races the connection's
 * teardown; the later ones wait for a connection that never comes. */
Test(deadline, killed_server_short_thread_deadline, .fini = stop) {
    start_connected(20000, 5, 50);
    enum { KD = 8, KN = 100, KK = 5, ROUNDS = 6 };
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, KD, "Flat", METRIC_L2));
    cr_assert(faissx_index_is_remote(ix));
    float* xb = fxt_uniform(KN, KD, 11);
    FXT_OK(faiss_Index_add(ix, KN, xb));
    float dd[KK];
    idx_t ll[KK];
    FXT_OK(faiss_Index_search(ix, 1, xb, KK, dd, ll));
    cr_assert_eq(ll[0], 0);

    fxt_server_kill(&srv);
    int old = faissx_set_thread_timeout(300);
    for (int i = 0; i < ROUNDS; i++) {
        uint64_t t0 = mono_ms();
        int rc = faiss_Index_search(ix, 1, xb + (i + 1) * KD, KK, dd, ll);
        uint64_t ms = mono_ms() - t0;
        cr_assert(rc == FAISSX_E_TIMEOUT || rc == FAISSX_E_NET,
                  "search %d against a killed server: %d %s", i, rc,
                  faiss_get_last_error());
        cr_assert(strstr(faiss_get_last_error(), "search"), "%s",
                  faiss_get_last_error());
        if (rc == FAISSX_E_TIMEOUT)
            cr_assert(strstr(faiss_get_last_error(), "300 ms"), "%s",
                      faiss_get_last_error());
        /* Generous slack: only a call stuck far past its deadline fails. */
        cr_assert(ms < 300 + 5000, "search %d took %llu ms", i,
                  (unsigned long long)ms);
    }
    cr_assert_eq(faissx_set_thread_timeout(old), 300);
    faiss_Index_free(ix);
    free(xb);
}

/* Freeing an unnamed index waits at most FX_RELEASE_WAIT_MS for RELEASE,
 * not the admin deadline (20 s here): for a stopped server (connections up,
 * nothing answers) and for a killed one. Generous bound: 3x the wait. */
Test(deadline, free_after_the_server_died_returns_quickly, .fini = stop) {
    start_connected(20000, 5, 50);
    FaissIndex *a = NULL, *b = NULL, *c = NULL;
    FaissIndexBinary *ba = NULL, *bb = NULL;
    FXT_OK(faiss_index_factory(&a, 8, "Flat", METRIC_L2));
    FXT_OK(faiss_index_factory(&b, 8, "Flat", METRIC_L2));
    FXT_OK(faiss_index_factory(&c, 8, "Flat", METRIC_L2));
    FXT_OK(faiss_index_binary_factory(&ba, 64, "BFlat"));
    FXT_OK(faiss_index_binary_factory(&bb, 64, "BFlat"));
    cr_assert(faissx_index_is_remote(a));
    cr_assert(faissx_index_binary_is_remote(ba));
    /* The server is up: a free is one quick round trip. */
    faiss_Index_free(c);

    kill(srv.pid, SIGSTOP);
    uint64_t t0 = mono_ms();
    faiss_Index_free(a);
    uint64_t ms_a = mono_ms() - t0;
    t0 = mono_ms();
    faiss_IndexBinary_free(ba);
    uint64_t ms_ba = mono_ms() - t0;
    kill(srv.pid, SIGCONT);
    cr_assert(ms_a < 3 * FX_RELEASE_WAIT_MS,
              "free with the server stopped took %llu ms",
              (unsigned long long)ms_a);
    cr_assert(ms_ba < 3 * FX_RELEASE_WAIT_MS,
              "binary free with the server stopped took %llu ms",
              (unsigned long long)ms_ba);

    fxt_server_kill(&srv);
    t0 = mono_ms();
    faiss_Index_free(b);
    uint64_t ms_b = mono_ms() - t0;
    t0 = mono_ms();
    faiss_IndexBinary_free(bb);
    uint64_t ms_bb = mono_ms() - t0;
    cr_assert(ms_b < 3 * FX_RELEASE_WAIT_MS,
              "free after the server was killed took %llu ms",
              (unsigned long long)ms_b);
    cr_assert(ms_bb < 3 * FX_RELEASE_WAIT_MS,
              "binary free after the server was killed took %llu ms",
              (unsigned long long)ms_bb);
    /* Other calls keep the full deadline: a list against the dead server
     * fails, but only once the class's (shortened here) deadline passed. */
    int old = faissx_set_thread_timeout(2 * FX_RELEASE_WAIT_MS);
    char** names = NULL;
    size_t n = 0;
    t0 = mono_ms();
    int rc = faissx_index_list(&names, &n);
    uint64_t ms_l = mono_ms() - t0;
    faissx_set_thread_timeout(old);
    cr_assert(rc == FAISSX_E_TIMEOUT || rc == FAISSX_E_NET, "%d %s", rc,
              faiss_get_last_error());
    if (rc == FAISSX_E_TIMEOUT)
        cr_assert(ms_l >= 2 * FX_RELEASE_WAIT_MS - 50,
                  "list gave up after %llu ms", (unsigned long long)ms_l);
}

/* A request that went out and whose connection then closed, reply never
 * sent: NNG owns it after the send and keeps it to resend on another
 * connection; the call's deadline passes and the request must be freed
 * (LSan checks this suite). Deterministic, unlike the killed server above:
 * a bare rep0 socket plays a server that takes each request, then hangs
 * up without answering. */
typedef struct Mute {
    nng_socket rep;
    atomic_int got; /* requests taken */
} Mute;

static void* mute_server(void* arg) {
    Mute* m = arg;
    nng_msg* req = NULL;
    if (nng_recvmsg(m->rep, &req, 0) == 0) {
        atomic_fetch_add(&m->got, 1);
        nng_msg_free(req);
    }
    nng_close(m->rep); /* the connection drops, no reply */
    return NULL;
}

Test(deadline, sent_request_whose_connection_drops_is_freed, .fini = stop) {
    for (int round = 0; round < 3; round++) {
        Mute m;
        atomic_init(&m.got, 0);
        nng_listener l;
        int port = 0;
        cr_assert_eq(nng_rep0_open(&m.rep), 0);
        cr_assert_eq(nng_listener_create(&l, m.rep, "tcp://127.0.0.1:0"), 0);
        cr_assert_eq(nng_listener_start(l, 0), 0);
        cr_assert_eq(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
        char url[64];
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
        FaissxClientOptions o;
        opts_backoff(&o, url, 5000, 5, 20);
        o.max_attempts = round + 1; /* 1: one attempt; more: retries too */
        FXT_OK(faissx_configure_ex(&o));
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, mute_server, &m), 0);
        int old = faissx_set_thread_timeout(300);
        char** names = NULL;
        size_t n = 0;
        int rc = faissx_index_list(&names, &n);
        faissx_set_thread_timeout(old);
        pthread_join(t, NULL);
        cr_assert(rc == FAISSX_E_TIMEOUT || rc == FAISSX_E_NET,
                  "round %d: %d %s", round, rc, faiss_get_last_error());
        cr_assert_eq(atomic_load(&m.got), 1, "the request went out");
        faissx_configure(NULL, NULL, 0);
    }
}

/* ---- server killed and restarted under load ---- */

static atomic_int seen_state[4];

static void on_state(FaissxConnState st, const char* url, void* user) {
    (void)url;
    (void)user;
    if ((int)st >= 0 && (int)st < 4) atomic_fetch_add(&seen_state[st], 1);
}

typedef struct {
    atomic_int* phase; /* 0 up, 1 down, 2 back, 3 stop */
    atomic_int ok[3], fail[3];
    int bad_code;
    uint64_t worst_ms;
    const float* q;
} loader;

enum { LD = 8, LNB = 200, CALL_MS = 800 };

static void* load_loop(void* arg) {
    loader* l = arg;
    float dist[5 * 3];
    idx_t lab[5 * 3];
    int ph;
    while ((ph = atomic_load(l->phase)) != 3) {
        uint64_t t0 = mono_ms();
        FaissIndex* ix = NULL;
        int rc = faissx_index_open(&ix, "shared");
        if (rc == 0) rc = faiss_Index_search(ix, 3, l->q, 5, dist, lab);
        uint64_t ms = mono_ms() - t0;
        faiss_Index_free(ix);
        if (ms > l->worst_ms) l->worst_ms = ms;
        if (rc == 0) {
            atomic_fetch_add(&l->ok[ph], 1);
        } else {
            atomic_fetch_add(&l->fail[ph], 1);
            if (rc != FAISSX_E_TIMEOUT && rc != FAISSX_E_NET &&
                rc != FAISSX_E_NOT_FOUND)
                l->bad_code = rc;
            sleep_ms(10);
        }
    }
    return NULL;
}

static void make_shared(const float* xb) {
    FaissIndex* ix = NULL;
    uint64_t t0 = mono_ms();
    int rc;
    /* Right after a restart the client may still be redialing. */
    while ((rc = faissx_index_create(&ix, "shared", LD, "Flat",
                                     METRIC_L2)) != 0 &&
           mono_ms() - t0 < 30000)
        sleep_ms(50);
    cr_assert_eq(rc, 0, "cannot create the index: %s",
                 faiss_get_last_error());
    FXT_OK(faiss_Index_add(ix, LNB, xb));
    faiss_Index_free(ix);
}

static int wait_state(int want, int ms) {
    uint64_t t0 = mono_ms();
    while ((int)faissx_connection_state() != want) {
        if (mono_ms() - t0 > (uint64_t)ms) return 0;
        sleep_ms(10);
    }
    return 1;
}

/* Waits until both loaders have `n` calls of phase `ph` counted (ok for
 * phases 0 and 2, failures for phase 1), or ms pass. */
static int wait_counts(loader* l, int ph, int n, int ms) {
    uint64_t t0 = mono_ms();
    for (;;) {
        int done = 1;
        for (int i = 0; i < 2; i++)
            if (atomic_load(ph == 1 ? &l[i].fail[1] : &l[i].ok[ph]) < n)
                done = 0;
        if (done) return 1;
        if (mono_ms() - t0 > (uint64_t)ms) return 0;
        sleep_ms(10);
    }
}

enum { WAIT_MS = 30000 };

Test(reconnect, server_killed_and_restarted_under_load, .fini = stop) {
    start_connected(CALL_MS, 20, 200);
    faissx_set_connection_callback(on_state, NULL);
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_CONNECTED);
    float* xb = fxt_uniform(LNB, LD, 8);
    make_shared(xb);

    atomic_int phase;
    atomic_init(&phase, 0);
    loader l[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        memset(&l[i], 0, sizeof l[i]);
        l[i].phase = &phase;
        l[i].q = xb + i * 3 * LD;
        cr_assert_eq(pthread_create(&t[i], NULL, load_loop, &l[i]), 0);
    }
    /* Conditions, not sleeps: a loaded machine (CI runs on 2 cores) may
     * delay any step by seconds; each wait is bounded generously. */
    cr_assert(wait_counts(l, 0, 1, WAIT_MS), "no call before the kill: %d %d",
              atomic_load(&l[0].ok[0]), atomic_load(&l[1].ok[0]));
    fxt_server_kill(&srv);
    atomic_store(&phase, 1);
    cr_assert(wait_state(FAISSX_CONN_CONNECTING, WAIT_MS) ||
                      faissx_connection_state() == FAISSX_CONN_FAILED,
              "state %d after the kill", (int)faissx_connection_state());
    /* calls fail, each within its deadline */
    cr_assert(wait_counts(l, 1, 1, WAIT_MS), "no failure while down: %d %d",
              atomic_load(&l[0].fail[1]), atomic_load(&l[1].fail[1]));
    fxt_server_restart(&srv, NULL);
    atomic_store(&phase, 2);
    make_shared(xb); /* an in-memory server: the test re-creates it */
    wait_counts(l, 2, 5, WAIT_MS);
    atomic_store(&phase, 3);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);

    for (int i = 0; i < 2; i++) {
        cr_assert(atomic_load(&l[i].ok[0]) > 0,
                  "thread %d: no call before the kill", i);
        cr_assert(atomic_load(&l[i].fail[1]) > 0,
                  "thread %d: no failure while down", i);
        cr_assert(atomic_load(&l[i].ok[2]) >= 5,
                  "thread %d: %d calls after the restart", i,
                  atomic_load(&l[i].ok[2]));
        cr_assert_eq(l[i].bad_code, 0, "thread %d: unexpected code %d", i,
                     l[i].bad_code);
        /* open + search: two calls, each within CALL_MS; the slack is for
         * a loaded machine (a call that ignored its deadline would hang
         * for the 30 s default or forever). */
        cr_assert(l[i].worst_ms <= 2 * CALL_MS + 5000,
                  "thread %d: a call took %llu ms", i,
                  (unsigned long long)l[i].worst_ms);
    }
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_CONNECTED);
    cr_assert(atomic_load(&seen_state[FAISSX_CONN_CONNECTING]) +
                      atomic_load(&seen_state[FAISSX_CONN_FAILED]) > 0,
              "no disconnection reported");
    cr_assert(atomic_load(&seen_state[FAISSX_CONN_CONNECTED]) > 0,
              "no reconnection reported");
    free(xb);
}

Test(heartbeat, stopped_server_is_detected, .fini = stop) {
    fxt_server_start(&srv, NULL);
    FaissxClientOptions o;
    opts_backoff(&o, srv.url, 2000, 20, 200);
    o.heartbeat_ms = 100;
    FXT_OK(faissx_configure_ex(&o));
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_CONNECTED);
    /* Server-side state made before the disconnection. */
    enum { HD = 8, HN = 500, HQ = 10, HK = 4 };
    float* xb = fxt_clustered(HN, HD, 8, 0.1f, 40);
    FaissIndex* ivf = NULL;
    FXT_OK(faiss_index_factory(&ivf, HD, "IVF8,Flat", METRIC_L2));
    FXT_OK(faiss_Index_train(ivf, HN, xb));
    FXT_OK(faiss_Index_add(ivf, HN, xb));
    faiss_IndexIVF_set_nprobe(faiss_IndexIVF_cast(ivf), 3);
    float d1[HQ * HK], d2[HQ * HK];
    idx_t i1[HQ * HK], i2[HQ * HK];
    FXT_OK(faiss_Index_search(ivf, HQ, xb, HK, d1, i1));
    /* A stopped server keeps its TCP connections open but answers
     * nothing: only the heartbeat can tell. */
    kill(srv.pid, SIGSTOP);
    int lost = wait_state(FAISSX_CONN_CONNECTING, 30000);
    kill(srv.pid, SIGCONT);
    cr_assert(lost, "state %d 30 s after SIGSTOP",
              (int)faissx_connection_state());
    cr_assert(wait_state(FAISSX_CONN_CONNECTED, 15000),
              "not reconnected after SIGCONT (state %d)",
              (int)faissx_connection_state());
    /* The index, its parameters and its handle survived the reconnect. */
    cr_assert_eq(faiss_IndexIVF_nprobe(faiss_IndexIVF_cast(ivf)), 3);
    FXT_OK(faiss_Index_search(ivf, HQ, xb, HK, d2, i2));
    FXT_SAME(i1, i2, sizeof i1);
    FXT_SAME(d1, d2, sizeof d1);
    faiss_Index_free(ivf);
    free(xb);
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, 4, "Flat", METRIC_L2));
    cr_assert(faissx_index_is_remote(ix));
    faiss_Index_free(ix);
}

/* ---- graceful degradation ---- */

static pthread_mutex_t logs_mu = PTHREAD_MUTEX_INITIALIZER;
static char logs[8192];

static void on_log(FaissxLogLevel level, const char* msg, void* user) {
    (void)user;
    pthread_mutex_lock(&logs_mu);
    size_t n = strlen(logs);
    snprintf(logs + n, sizeof logs - n, "%d %s\n", (int)level, msg);
    pthread_mutex_unlock(&logs_mu);
}

static int logged(const char* needle) {
    pthread_mutex_lock(&logs_mu);
    int r = strstr(logs, needle) != NULL;
    pthread_mutex_unlock(&logs_mu);
    return r;
}

Test(fallback, unreachable_server_gives_local_indexes, .fini = stop) {
    /* A port nobody listens on: where a server just ran. */
    fxt_server_start(&srv, NULL);
    fxt_server_kill(&srv);
    faissx_set_log_callback(on_log, NULL);

    /* Off by default: an error. */
    FXT_ERR(faissx_configure(srv.url, NULL, 500), "cannot connect");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_NET);
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_NONE);

    FaissxClientOptions o;
    opts_backoff(&o, srv.url, 500, 20, 200);
    o.fallback_local = 1;
    FXT_OK(faissx_configure_ex(&o));
    cr_assert(logged("cannot connect"), "no warning: %s", logs);
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_FAILED);
    cr_assert_eq(faissx_is_remote(), 0);
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, 4, "Flat", METRIC_L2));
    cr_assert(!faissx_index_is_remote(ix));
    cr_assert(logged("created locally"), "no warning: %s", logs);
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float dd[2];
    idx_t ll[2];
    FXT_OK(faiss_Index_add(ix, 2, v));
    FXT_OK(faiss_Index_search(ix, 2, v, 1, dd, ll));
    cr_assert(ll[0] == 0 && ll[1] == 1);
    faiss_Index_free(ix);
    /* Named indexes need the server: they fail within their deadline. */
    char** names = NULL;
    size_t n = 0;
    uint64_t t0 = mono_ms();
    int rc = faissx_index_list(&names, &n);
    cr_assert(rc == FAISSX_E_TIMEOUT || rc == FAISSX_E_NET, "%d", rc);
    cr_assert(mono_ms() - t0 < 1500);

    /* The server comes up: NNG was dialing all along. */
    fxt_server_restart(&srv, NULL);
    cr_assert(wait_state(FAISSX_CONN_CONNECTED, 5000), "state %d",
              (int)faissx_connection_state());
    FXT_OK(faiss_index_factory(&ix, 4, "Flat", METRIC_L2));
    cr_assert(faissx_index_is_remote(ix));

    /* It goes away again: new indexes are local while it redials. */
    fxt_server_kill(&srv);
    cr_assert(wait_state(FAISSX_CONN_CONNECTING, 3000), "state %d",
              (int)faissx_connection_state());
    FaissIndex* ix2 = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with((FaissIndexFlatL2**)&ix2, 4));
    cr_assert(!faissx_index_is_remote(ix2));
    faiss_Index_free(ix2);
    uint64_t t1 = mono_ms();
    faiss_Index_free(ix); /* no server: freeing does not wait */
    cr_assert(mono_ms() - t1 < 500);
}

/* ---- many threads, one connection or a pool ---- */

enum { PD = 16, PNB = 2000, PNQ = 64, PK = 5, PTHREADS = 8, PITER = 40 };

typedef struct {
    FaissIndex* ix;
    const float* q;
    const float* D;
    const idx_t* I;
    int tid;
    atomic_int* wrong;
    atomic_int* failed;
} searcher;

static void* search_loop(void* arg) {
    searcher* s = arg;
    float dist[4 * PK];
    idx_t lab[4 * PK];
    for (int it = 0; it < PITER; it++) {
        int q0 = (s->tid * 7 + it * 3) % (PNQ - 4);
        if (faiss_Index_search(s->ix, 4, s->q + q0 * PD, PK, dist, lab)) {
            atomic_fetch_add(s->failed, 1);
            continue;
        }
        if (memcmp(lab, s->I + q0 * 4 * PK, sizeof lab) ||
            memcmp(dist, s->D + q0 * 4 * PK, sizeof dist))
            atomic_fetch_add(s->wrong, 1);
    }
    return NULL;
}

static void threads_against(int pool) {
    FaissxClientOptions o;
    opts_for(&o, srv.url, 20000);
    o.pool_size = pool;
    float* xb = fxt_uniform(PNB, PD, 31);
    float* xq = fxt_uniform(PNQ, PD, 32);
    /* The expected answer to each 4-query search the threads make (faiss
     * takes another code path for a batch of 20 queries or more). */
    static float D[(PNQ - 4) * 4 * PK];
    static idx_t I[(PNQ - 4) * 4 * PK];
    FaissIndex *loc = NULL, *rem = NULL;
    FXT_OK(faissx_configure(NULL, NULL, 0));
    FXT_OK(faiss_index_factory(&loc, PD, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(loc, PNB, xb));
    for (int q0 = 0; q0 < PNQ - 4; q0++)
        FXT_OK(faiss_Index_search(loc, 4, xq + q0 * PD, PK, D + q0 * 4 * PK,
                                  I + q0 * 4 * PK));
    FXT_OK(faissx_configure_ex(&o));
    FXT_OK(faiss_index_factory(&rem, PD, "Flat", METRIC_L2));
    cr_assert(faissx_index_is_remote(rem));
    FXT_OK(faiss_Index_add(rem, PNB, xb));
    atomic_int wrong, failed;
    atomic_init(&wrong, 0);
    atomic_init(&failed, 0);
    searcher s[PTHREADS];
    pthread_t t[PTHREADS];
    for (int i = 0; i < PTHREADS; i++) {
        s[i] = (searcher){rem, xq, D, I, i, &wrong, &failed};
        cr_assert_eq(pthread_create(&t[i], NULL, search_loop, &s[i]), 0);
    }
    for (int i = 0; i < PTHREADS; i++) pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&failed), 0, "pool %d: %d searches failed",
                 pool, atomic_load(&failed));
    cr_assert_eq(atomic_load(&wrong), 0, "pool %d: %d wrong results", pool,
                 atomic_load(&wrong));
    faiss_Index_free(loc);
    faiss_Index_free(rem);
    free(xb);
    free(xq);
}

/* threads_against(pool) on a server that logs every connection and
 * request: the client opened `pool` connections. Returns the whole log. */
static char* pool_run(int pool) {
    const char* args[] = {"--log-level", "debug", NULL};
    fxt_server_start(&srv, args);
    threads_against(pool);
    char* log = whole_log(&srv);
    int conns = count_of(log, " from 127.0.0.1:");
    cr_assert_eq(conns, pool, "%d connections for a pool of %d", conns, pool);
    return log;
}

Test(pool, threads_share_one_connection, .fini = stop) {
    free(pool_run(1));
}

Test(pool, a_pool_of_connections, .fini = stop) {
    char* log = pool_run(3);
    int searches = count_of(log, "request op=search");
    cr_assert_eq(searches, PTHREADS * PITER);
    free(log);
}

/* ---- process exit with calls in flight ---- */

Test(shutdown, exit_with_calls_in_flight_is_clean, .fini = stop) {
    fxt_server_start(&srv, NULL);
    const char* helper = getenv("FAISSX_RESILIENCE_HELPER");
    cr_assert(helper && *helper, "FAISSX_RESILIENCE_HELPER is not set");
    const char* out = fxt_tmp_path("helper.out");
    uint64_t t0 = mono_ms();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        /* The helper leaves its index to the exit on purpose. */
        setenv("LSAN_OPTIONS", "detect_leaks=0", 1);
        execl(helper, helper, "exit-under-load", srv.url, (char*)NULL);
        _exit(127);
    }
    /* The helper's calls have a 60 s deadline: an exit that waited for
     * them would take a minute, so a generous bound (for a loaded
     * machine) still tells it apart from a prompt exit. */
    int st = 0, done = 0;
    while (mono_ms() - t0 < 30000)
        if (waitpid(pid, &st, WNOHANG) == pid) {
            done = 1;
            break;
        } else {
            sleep_ms(10);
        }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    cr_assert(done, "the client did not exit within 30 s");
    char buf[4096] = "";
    FILE* f = fopen(out, "r");
    if (f) {
        buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
        fclose(f);
    }
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "client status 0x%x; output:\n%s", st, buf);
    cr_assert(strstr(buf, "exiting"), "output:\n%s", buf);
}

/* ---- configuration: environment and validation ---- */

Test(config, environment_sets_every_knob) {
    setenv("FAISSX_SERVER", "tcp://127.0.0.1:1", 1);
    setenv("FAISSX_API_KEY", "k", 1);
    setenv("FAISSX_TLS_CA", "/ca.pem", 1);
    setenv("FAISSX_TIMEOUT_MS", "700", 1);
    setenv("FAISSX_TIMEOUT_TRAIN_MS", "9000", 1);
    setenv("FAISSX_ATTEMPT_TIMEOUT_MS", "250", 1);
    setenv("FAISSX_RETRY_MAX_ATTEMPTS", "5", 1);
    setenv("FAISSX_RETRY_BASE_MS", "7", 1);
    setenv("FAISSX_RETRY_CAP_MS", "70", 1);
    setenv("FAISSX_POOL_SIZE", "4", 1);
    setenv("FAISSX_HEARTBEAT_MS", "1500", 1);
    setenv("FAISSX_FALLBACK_LOCAL", "yes", 1);
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    cr_assert(o.url == NULL && o.pool_size == 1 && o.max_attempts == 3 &&
              o.fallback_local == 0 && o.timeout_ms[0] == 30000);
    FXT_OK(faissx_client_options_from_env(&o));
    cr_assert_str_eq(o.url, "tcp://127.0.0.1:1");
    cr_assert_str_eq(o.api_key, "k");
    cr_assert_str_eq(o.tls_ca, "/ca.pem");
    cr_assert_eq(o.timeout_ms[FAISSX_OP_SEARCH], 700);
    cr_assert_eq(o.timeout_ms[FAISSX_OP_ADD], 700);
    cr_assert_eq(o.timeout_ms[FAISSX_OP_TRAIN], 9000);
    cr_assert_eq(o.timeout_ms[FAISSX_OP_ADMIN], 700);
    cr_assert_eq(o.attempt_timeout_ms, 250);
    cr_assert_eq(o.max_attempts, 5);
    cr_assert_eq(o.backoff_base_ms, 7);
    cr_assert_eq(o.backoff_cap_ms, 70);
    cr_assert_eq(o.pool_size, 4);
    cr_assert_eq(o.heartbeat_ms, 1500);
    cr_assert_eq(o.fallback_local, 1);

    /* Malformed values name the variable. */
    setenv("FAISSX_POOL_SIZE", "0", 1);
    FXT_ERR(faissx_client_options_from_env(&o), "FAISSX_POOL_SIZE");
    setenv("FAISSX_POOL_SIZE", "2", 1);
    setenv("FAISSX_FALLBACK_LOCAL", "perhaps", 1);
    FXT_ERR(faissx_client_options_from_env(&o), "FAISSX_FALLBACK_LOCAL");
    unsetenv("FAISSX_FALLBACK_LOCAL");
    /* The shared-memory add's variables have no option fields but are
     * checked the same way. */
    const char* shm_bad[] = {"sometimes", "2", "offf", NULL};
    for (int i = 0; shm_bad[i]; i++) {
        setenv("FAISSX_SHM", shm_bad[i], 1);
        FXT_ERR(faissx_client_options_from_env(&o), "FAISSX_SHM: expected");
    }
    setenv("FAISSX_SHM", "off", 1);
    FXT_OK(faissx_client_options_from_env(&o));
    unsetenv("FAISSX_SHM");
    const char* min_bad[] = {"lots", "-1", "12X", "1T", NULL};
    for (int i = 0; min_bad[i]; i++) {
        setenv("FAISSX_SHM_MIN_BYTES", min_bad[i], 1);
        FXT_ERR(faissx_client_options_from_env(&o), "FAISSX_SHM_MIN_BYTES");
    }
    setenv("FAISSX_SHM_MIN_BYTES", "512K", 1);
    FXT_OK(faissx_client_options_from_env(&o));
    unsetenv("FAISSX_SHM_MIN_BYTES");
    setenv("FAISSX_TIMEOUT_SEARCH_MS", "fast", 1);
    FXT_ERR(faissx_client_options_from_env(&o), "FAISSX_TIMEOUT_SEARCH_MS");
    /* ... also when the environment alone configures the client. */
    FaissIndex* ix = NULL;
    FXT_ERR(faiss_index_factory(&ix, 4, "Flat", METRIC_L2),
            "FAISSX_TIMEOUT_SEARCH_MS");
    cr_assert_null(ix);
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_FAILED);
}

Test(config, unreachable_server_from_the_environment) {
    /* Nothing listens on port 1. */
    setenv("FAISSX_SERVER", "tcp://127.0.0.1:1", 1);
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_FAILED);
    FaissIndex* ix = NULL;
    FXT_ERR(faiss_index_factory(&ix, 4, "Flat", METRIC_L2), "cannot connect");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_NET);
    /* With the fallback, the same is a local index. */
    setenv("FAISSX_FALLBACK_LOCAL", "1", 1);
    FXT_OK(faissx_configure(getenv("FAISSX_SERVER"), NULL, 0));
    FXT_OK(faiss_index_factory(&ix, 4, "Flat", METRIC_L2));
    cr_assert(!faissx_index_is_remote(ix));
    faiss_Index_free(ix);
}

Test(config, environment_configures_a_client, .fini = stop) {
    fxt_server_start(&srv, NULL);
    setenv("FAISSX_SERVER", srv.url, 1);
    setenv("FAISSX_TIMEOUT_SEARCH_MS", "1234", 1);
    setenv("FAISSX_POOL_SIZE", "2", 1);
    /* The environment is read, and the client connects, at the first
     * construction or state query. */
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_CONNECTED);
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, 4, "Flat", METRIC_L2));
    cr_assert(faissx_index_is_remote(ix));
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_CONNECTED);
    cr_assert_eq(faissx_get_timeout(FAISSX_OP_SEARCH), 1234);
    cr_assert_eq(faissx_get_timeout(FAISSX_OP_ADD), 30000);
    faiss_Index_free(ix);
}

Test(config, invalid_options_are_refused) {
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    o.url = "tcp://127.0.0.1:1";
    o.pool_size = 0;
    FXT_ERR(faissx_configure_ex(&o), "pool_size");
    o.pool_size = 65;
    FXT_ERR(faissx_configure_ex(&o), "pool_size");
    o.pool_size = 1;
    o.timeout_ms[FAISSX_OP_TRAIN] = 0;
    FXT_ERR(faissx_configure_ex(&o), "timeout_ms[2]");
    o.timeout_ms[FAISSX_OP_TRAIN] = 10;
    o.max_attempts = 0;
    FXT_ERR(faissx_configure_ex(&o), "max_attempts");
    o.max_attempts = 2;
    o.backoff_cap_ms = 10;
    o.backoff_base_ms = 20;
    FXT_ERR(faissx_configure_ex(&o), "backoff_cap_ms");
    o.backoff_cap_ms = 20;
    o.attempt_timeout_ms = -1;
    FXT_ERR(faissx_configure_ex(&o), "attempt_timeout_ms");
    o.attempt_timeout_ms = 0;
    o.heartbeat_ms = -5;
    FXT_ERR(faissx_configure_ex(&o), "heartbeat_ms");
    o.heartbeat_ms = 0;
    o.fallback_local = 2;
    FXT_ERR(faissx_configure_ex(&o), "fallback_local");
    o.fallback_local = 0;
    o.reserved[3] = 1;
    FXT_ERR(faissx_configure_ex(&o), "reserved");
    FXT_ERR(faissx_configure_ex(NULL), "opts");
    FXT_ERR(faissx_configure(NULL, NULL, -1), "timeout_ms");

    FXT_ERR(faissx_set_timeout((FaissxOpClass)7, 10), "op_class");
    FXT_ERR(faissx_set_timeout(FAISSX_OP_SEARCH, 0), "timeout_ms");
    cr_assert_eq(faissx_get_timeout((FaissxOpClass)-1), FAISSX_E_INVALID);
    FXT_OK(faissx_set_timeout(FAISSX_OP_TRAIN, 4321));
    cr_assert_eq(faissx_get_timeout(FAISSX_OP_TRAIN), 4321);
    cr_assert_eq(faissx_get_timeout(FAISSX_OP_SEARCH), 30000);
    cr_assert_eq(faissx_set_thread_timeout(-1), FAISSX_E_INVALID);
    cr_assert(strstr(faiss_get_last_error(), "timeout_ms"));
    cr_assert_eq(faissx_set_thread_timeout(50), 0);
    cr_assert_eq(faissx_set_thread_timeout(0), 50);
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_NONE);
}

/* A server started by the fixture dies with the process that started it
 * (PR_SET_PDEATHSIG), so a test process that crashes or is killed by a
 * timeout leaves no server listening behind it. */
static int process_gone(pid_t pid) {
    char path[64], st[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE* f = fopen(path, "r");
    if (!f) return 1;
    size_t n = fread(st, 1, sizeof st - 1, f);
    fclose(f);
    st[n] = 0;
    const char* rp = strrchr(st, ')'); /* "pid (comm) S ..." */
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

Test(fixture, server_dies_with_the_process_that_started_it) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        close(p[0]);
        fxt_server s;
        fxt_server_start(&s, NULL);
        pid_t spid = s.pid;
        if (write(p[1], &spid, sizeof spid) != (ssize_t)sizeof spid) _exit(2);
        _exit(0); /* without stopping its server */
    }
    close(p[1]);
    pid_t spid = 0;
    ssize_t r = read(p[0], &spid, sizeof spid);
    close(p[0]);
    int st = 0;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert(r == (ssize_t)sizeof spid && spid > 0,
              "the child did not start a server (exit status %d)", st);
    int gone = 0;
    for (int i = 0; i < 250 && !(gone = process_gone(spid)); i++)
        usleep(20000);
    if (!gone) kill(spid, SIGKILL); /* no leftover even when failing */
    cr_assert(gone, "server %d still running 5 s after its starter exited",
              (int)spid);
}

/* Test servers take ports no other test process holds: every fixture
 * claims its ports in a shared directory (a file per port naming its
 * process), so a server restarted on its port cannot find it taken by
 * another suite's server. Here every port of the range but one is claimed
 * by a live process (the test runner): the server must get that one, and
 * the claim must name this process. */
Test(fixture, servers_take_ports_no_other_test_process_holds) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("port-claims"));
    cr_assert(mkdir(dir, 0700) == 0 || errno == EEXIST);
    cr_assert_eq(setenv("FXT_PORT_CLAIM_DIR", dir, 1), 0);
    int lo = 20000, hi = 32768;
    FILE* f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        cr_assert_eq(fscanf(f, "%d", &hi), 1);
        fclose(f);
    }
    cr_assert(hi - lo >= 1000, "unusual ip_local_port_range: %d", hi);
    /* The one left free: a port nothing listens on now. */
    int free_port = 0;
    for (int p = lo + 4321; p < hi && !free_port; p++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)p);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr*)&a, sizeof a) == 0) free_port = p;
        close(fd);
    }
    cr_assert(free_port > 0);
    char path[600], owner[32];
    int n = snprintf(owner, sizeof owner, "%d\n", (int)getppid());
    for (int p = lo; p < hi; p++) {
        if (p == free_port) continue;
        snprintf(path, sizeof path, "%s/%d", dir, p);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        cr_assert(fd >= 0 && write(fd, owner, (size_t)n) == n);
        close(fd);
    }
    fxt_server s;
    fxt_server_start(&s, NULL);
    int got = s.port;
    fxt_server_stop(&s);
    snprintf(path, sizeof path, "%s/%d", dir, free_port);
    char buf[32] = {0};
    f = fopen(path, "r");
    cr_assert(f != NULL, "no claim file for port %d", free_port);
    cr_assert(fgets(buf, sizeof buf, f) != NULL);
    fclose(f);
    cr_assert_eq(got, free_port, "the server took port %d, claimed by "
                 "another process (the free one was %d)", got, free_port);
    cr_assert_eq(atoi(buf), (int)getpid(), "claim names %s", buf);
    /* A stale claim (its process gone) is taken over: the port's file
     * names a pid that cannot exist; another process (this one holds the
     * port itself) must get the port. */
    f = fopen(path, "w");
    cr_assert(f != NULL);
    fprintf(f, "%d\n", 999999999);
    fclose(f);
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        fxt_server c;
        fxt_server_start(&c, NULL);
        int port = c.port;
        fxt_server_stop(&c);
        _exit(port == free_port ? 0 : 3);
    }
    int st = 0;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "a stale claim was not taken over (child status 0x%x)", st);
    for (int p = lo; p < hi; p++) {
        snprintf(path, sizeof path, "%s/%d", dir, p);
        unlink(path);
    }
}
