/* test_remote_progress.c -- progress and cancellation of long calls on a
 * remote index (a real faissx-server): the server reports the running
 * job's progress (PROGRESS), a cancel (callback or token) stops the job on
 * the server (CANCEL) and leaves the index unchanged, and only the job's
 * own tenant and client can see or cancel it.
 *
 * The cancelled jobs are sized to run for seconds on the server (k-means
 * of 40,000 points into 1,024 lists; assigning 200,000 vectors to 1,024
 * lists) so that a cancel sent after the first progress report always
 * arrives while they run. */
#include "common.h"
#include "server_fixture.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "net/proto.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static fxt_server srv;
static const char* const keyed[] = {"--auth-keys", "ka:alice,kb:bob",
                                    "--workers", "4", NULL};
static void start(void) {
    fxt_server_start(&srv, keyed);
}
static void stop(void) {
    faissx_set_progress_callback(NULL, NULL);
    faissx_set_cancel_token(NULL);
    faissx_configure(NULL, NULL, 0);
    fxt_server_stop(&srv);
}

typedef struct Seen {
    int calls;
    int op;
    int64_t last_done, total;
    int monotonic;
    int64_t cancel_at; /* -1: never */
    FaissxCancelToken* raise; /* raise this token at cancel_at instead */
} Seen;

static void seen_init(Seen* s) {
    memset(s, 0, sizeof *s);
    s->monotonic = 1;
    s->cancel_at = -1;
    s->last_done = -1;
}

static int on_progress(const FaissxProgress* p, void* user) {
    Seen* s = user;
    if (s->calls > 0 && p->done < s->last_done) s->monotonic = 0;
    if (p->done > p->total || p->total < 1) s->monotonic = 0;
    s->calls++;
    s->op = p->op;
    s->last_done = p->done;
    s->total = p->total;
    if (s->cancel_at >= 0 && p->done >= s->cancel_at) {
        if (!s->raise) return 1;
        faissx_cancel_token_cancel(s->raise);
    }
    return 0;
}

#define D 32

Test(remote_progress, train_and_add_reach_total_same_as_local, .init = start,
     .fini = stop) {
    float* xt = fxt_clustered(6000, D, 40, 0.1f, 61);
    float* xb = fxt_clustered(20000, D, 40, 0.1f, 62);
    FaissIndex *loc = NULL, *rem = NULL;
    FXT_OK(faiss_index_factory(&loc, D, "IVF64,Flat", METRIC_L2));
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FXT_OK(faiss_index_factory(&rem, D, "IVF64,Flat", METRIC_L2));
    cr_assert(faissx_index_is_remote(rem));
    FXT_OK(faiss_Index_train(loc, 6000, xt));
    FXT_OK(faiss_Index_add(loc, 20000, xb));

    Seen s;
    seen_init(&s);
    faissx_set_progress_callback(on_progress, &s);
    FXT_OK(faiss_Index_train(rem, 6000, xt));
    cr_assert_eq(s.op, FAISSX_PROGRESS_TRAIN);
    cr_assert(s.monotonic);
    cr_assert_geq(s.calls, 2, "at least the start and the end");
    cr_assert_eq(s.last_done, s.total);
    seen_init(&s);
    FXT_OK(faiss_Index_add(rem, 20000, xb));
    faissx_set_progress_callback(NULL, NULL);
    cr_assert_eq(s.op, FAISSX_PROGRESS_ADD);
    cr_assert(s.monotonic);
    cr_assert_eq(s.last_done, s.total);

    // the job path (clone, counted k-means, sliced add) builds the same index
    float dl[20 * 5], dr[20 * 5];
    idx_t il[20 * 5], ir[20 * 5];
    FXT_OK(faiss_Index_search(loc, 20, xb, 5, dl, il));
    FXT_OK(faiss_Index_search(rem, 20, xb, 5, dr, ir));
    FXT_SAME(il, ir, sizeof il);
    FXT_SAME(dl, dr, sizeof dl);
    cr_assert_eq(faiss_Index_ntotal(rem), 20000);
    faiss_Index_free(loc);
    faiss_Index_free(rem);
    free(xt);
    free(xb);
}

/* A long k-means on the server, cancelled by the callback's return value
 * once the server reported the first iteration. */
Test(remote_progress, train_cancel_by_callback, .init = start, .fini = stop) {
    const int n = 40000;
    float* xt = fxt_clustered(n, D, 200, 0.1f, 63);
    FaissIndex* rem = NULL;
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FXT_OK(faiss_index_factory(&rem, D, "IVF1024,Flat", METRIC_L2));
    Seen s;
    seen_init(&s);
    s.cancel_at = 1;
    faissx_set_progress_callback(on_progress, &s);
    int rc = faiss_Index_train(rem, n, xt);
    faissx_set_progress_callback(NULL, NULL);
    cr_assert_eq(rc, FAISSX_E_CANCELED, "rc %d: %s", rc, faiss_get_last_error());
    cr_assert(strstr(faiss_get_last_error(), "cancelled; the index is unchanged"),
              "%s", faiss_get_last_error());
    cr_assert_gt(s.total, 1, "the server reported k-means iterations");
    cr_assert_lt(s.last_done, s.total);
    cr_assert(s.monotonic);
    cr_assert_not(faiss_Index_is_trained(rem), "still untrained");
    cr_assert_eq(faiss_Index_ntotal(rem), 0);
    faiss_Index_free(rem);
    free(xt);
}

/* A large add on the server, stopped by a token that the callback raises
 * (as another thread would), after the first slices. */
Test(remote_progress, add_cancel_by_token_leaves_index_unchanged,
     .init = start, .fini = stop) {
    const int nl = 1024, nb = 200000;
    float* xt = fxt_clustered(nl, D, 200, 0.1f, 64);
    float* xb = fxt_clustered(nb, D, 200, 0.1f, 65);
    FaissIndex* rem = NULL;
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FXT_OK(faiss_index_factory(&rem, D, "IVF1024,Flat", METRIC_L2));
    FXT_OK(faiss_Index_train(rem, nl, xt)); // n == nlist: no iterations
    FXT_OK(faiss_Index_add(rem, 1000, xb + (size_t)(nb - 1000) * D));
    float d0[20 * 5], d1[20 * 5];
    idx_t i0[20 * 5], i1[20 * 5];
    FXT_OK(faiss_Index_search(rem, 20, xb, 5, d0, i0));

    FaissxCancelToken* tok = NULL;
    FXT_OK(faissx_cancel_token_new(&tok));
    Seen s;
    seen_init(&s);
    s.cancel_at = 1;
    s.raise = tok;
    faissx_set_cancel_token(tok);
    faissx_set_progress_callback(on_progress, &s);
    int rc = faiss_Index_add(rem, nb, xb);
    faissx_set_progress_callback(NULL, NULL);
    faissx_set_cancel_token(NULL);
    cr_assert_eq(rc, FAISSX_E_CANCELED, "rc %d: %s", rc, faiss_get_last_error());
    cr_assert_eq(s.total, nb);
    cr_assert_lt(s.last_done, nb);
    cr_assert_eq(faiss_Index_ntotal(rem), 1000, "the slices added are removed");
    FXT_OK(faiss_Index_search(rem, 20, xb, 5, d1, i1));
    FXT_SAME(i0, i1, sizeof i0);
    FXT_SAME(d0, d1, sizeof d0);

    // a raised token stops the next call before it is sent
    faissx_set_cancel_token(tok);
    FXT_ERR(faiss_Index_add(rem, 10, xb), "cancelled");
    faissx_set_cancel_token(NULL);
    cr_assert_eq(faiss_Index_ntotal(rem), 1000);
    faissx_cancel_token_free(tok);
    faiss_Index_free(rem);
    free(xt);
    free(xb);
}

/* ---- tenant isolation, over the raw protocol ---- */

static void begin(fx_wbuf* w, const char* key) {
    fx_w_init(w);
    fx_w_header_space(w);
    fx_w_str(w, key);
}

static void finish(fx_wbuf* w, int op, uint64_t rid, uint64_t client,
                   uint32_t flags) {
    fx_hdr h = {0};
    h.op = (uint16_t)op;
    h.request_id = rid;
    h.client_id = client;
    h.flags = flags;
    h.timeout_ms = 60000;
    fx_w_finish(w, &h);
    cr_assert(!w->oom);
}

static nng_socket dial(void) {
    nng_socket s;
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 60000);
    cr_assert_eq(nng_dial(s, srv.url, NULL, 0), 0);
    return s;
}

/* Receives a reply: its header and a reader over its body (in *buf). */
static void recv_reply(nng_socket s, fx_hdr* h, fx_rbuf* r, char** buf,
                       size_t* n) {
    cr_assert_eq(nng_recv(s, buf, n, NNG_FLAG_ALLOC), 0);
    char err[128];
    cr_assert_eq(fx_hdr_decode((uint8_t*)*buf, *n, h, err, sizeof err), 0,
                 "%s", err);
    fx_r_init(r, (uint8_t*)*buf + FX_HDR_SIZE, *n - FX_HDR_SIZE);
}

/* PROGRESS or CANCEL of job rid of `client`, as `key`: the "running"
 * field of the reply. */
static int64_t job_call(nng_socket s, const char* key, int op, uint64_t client,
                        uint64_t rid, int64_t* done) {
    static uint64_t next = 1000;
    fx_wbuf w;
    begin(&w, key);
    fx_w_u64(&w, rid);
    finish(&w, op, ++next, client, 0);
    cr_assert_eq(nng_send(s, w.data, w.len, 0), 0);
    fx_w_free(&w);
    fx_hdr h;
    fx_rbuf r;
    char* buf;
    size_t n;
    recv_reply(s, &h, &r, &buf, &n);
    cr_assert_eq(h.status, 0, "%s failed: %d", fx_op_name(op), h.status);
    int64_t running, v;
    cr_assert_eq(fx_r_i64(&r, &running), 0);
    if (op == FX_OP_PROGRESS) {
        cr_assert_eq(fx_r_i64(&r, &v), 0);
        cr_assert_eq(fx_r_i64(&r, done), 0);
        cr_assert_eq(fx_r_i64(&r, &v), 0);
        double el;
        cr_assert_eq(fx_r_f64(&r, &el), 0);
    }
    cr_assert_eq(fx_r_end(&r), 0);
    nng_free(buf, n);
    return running;
}

Test(remote_progress, other_tenant_cannot_see_or_cancel, .init = start,
     .fini = stop) {
    const int n = 40000;
    const uint64_t client = 0xA11CE, rid = 77;
    float* xt = fxt_clustered(n, D, 200, 0.1f, 66);
    FaissIndex* rem = NULL;
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FXT_OK(faissx_index_create(&rem, "big", D, "IVF1024,Flat", METRIC_L2));

    nng_socket a = dial(), b = dial();
    // alice opens "big" and starts a long train as job `rid`
    fx_wbuf w;
    begin(&w, "ka");
    fx_w_str(&w, "big");
    finish(&w, FX_OP_OPEN, 1, client, 0);
    cr_assert_eq(nng_send(a, w.data, w.len, 0), 0);
    fx_w_free(&w);
    fx_hdr h;
    fx_rbuf r;
    char* buf;
    size_t len;
    recv_reply(a, &h, &r, &buf, &len);
    cr_assert_eq(h.status, 0);
    uint64_t handle;
    cr_assert_eq(fx_r_u64(&r, &handle), 0);
    nng_free(buf, len);

    begin(&w, "ka");
    fx_w_u64(&w, handle);
    fx_w_i64(&w, n);
    fx_w_array(&w, xt, (uint64_t)n * D, sizeof(float));
    finish(&w, FX_OP_TRAIN, rid, client, FX_FLAG_JOB);
    cr_assert_eq(nng_send(a, w.data, w.len, 0), 0);
    fx_w_free(&w);

    // wait until alice sees it running with an iteration done
    int64_t done = 0;
    int seen = 0;
    for (int i = 0; i < 600 && !(seen && done >= 1); i++) {
        seen = job_call(b, "ka", FX_OP_PROGRESS, client, rid, &done) == 1;
        usleep(50000);
    }
    cr_assert(seen && done >= 1, "the job never reported progress");
    // bob, even knowing the client id and request id, sees nothing and
    // cannot cancel it
    cr_assert_eq(job_call(b, "kb", FX_OP_PROGRESS, client, rid, &done), 0);
    cr_assert_eq(job_call(b, "kb", FX_OP_CANCEL, client, rid, &done), 0);
    // another client of alice's cannot either
    cr_assert_eq(job_call(b, "ka", FX_OP_CANCEL, client + 1, rid, &done), 0);
    cr_assert_eq(job_call(b, "ka", FX_OP_PROGRESS, client, rid, &done), 1,
                 "still running after the foreign cancels");
    // alice can
    cr_assert_eq(job_call(b, "ka", FX_OP_CANCEL, client, rid, &done), 1);
    recv_reply(a, &h, &r, &buf, &len);
    cr_assert_eq(h.request_id, rid);
    cr_assert_eq(h.status, FAISSX_E_CANCELED, "train reply status %d", h.status);
    nng_free(buf, len);
    // finished jobs are forgotten
    cr_assert_eq(job_call(b, "ka", FX_OP_PROGRESS, client, rid, &done), 0);
    cr_assert_not(faiss_Index_is_trained(rem));

    // a CANCEL that arrives before its job starts cancels it at the start
    cr_assert_eq(job_call(b, "ka", FX_OP_CANCEL, client, rid + 1, &done), 0);
    begin(&w, "ka");
    fx_w_u64(&w, handle);
    fx_w_i64(&w, 1024);
    fx_w_array(&w, xt, (uint64_t)1024 * D, sizeof(float));
    finish(&w, FX_OP_TRAIN, rid + 1, client, FX_FLAG_JOB);
    cr_assert_eq(nng_send(a, w.data, w.len, 0), 0);
    fx_w_free(&w);
    recv_reply(a, &h, &r, &buf, &len);
    cr_assert_eq(h.status, FAISSX_E_CANCELED);
    nng_free(buf, len);
    cr_assert_not(faiss_Index_is_trained(rem));

    nng_close(a);
    nng_close(b);
    faiss_Index_free(rem);
    FXT_OK(faissx_index_drop("big"));
    free(xt);
}
