/* test_remote_upload.c -- chunked upload of an index to a real faissx-server
 * (UPLOAD_BEGIN / CHUNK / COMMIT / ABORT): progress per chunk reaching the
 * total, cancellation that leaves nothing on the server, uploads larger than
 * the server's message limit, retries that never duplicate, the staging
 * limit per tenant, staging reclaimed when a client goes away or goes idle,
 * and every kind of bad chunk refused without damage; and the reverse,
 * chunked download (DOWNLOAD_BEGIN / CHUNK / END) with progress and
 * cancellation.
 *
 * The servers here take messages of at most 64 KiB, so a 1 MiB index
 * travels in about 16 chunks. Whether staging was released is checked
 * through the limit: each server lets a tenant stage less than two of the
 * uploads, so a leftover reservation makes the next upload fail. */
#include "common.h"
#include "server_fixture.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "net/client.h"
#include "net/proto.h"

#include <stdio.h>
#include <unistd.h>

#define D 32
#define NB 9000 /* 9000 x 32 floats: about 1.1 MiB of index bytes */
#define MSG "65536"
#define LIMIT (1536 * 1024) /* more than one upload, less than two */

static fxt_server srv;
static void stop(void) {
    faissx_set_progress_callback(NULL, NULL);
    faissx_set_cancel_token(NULL);
    faissx_configure(NULL, NULL, 0);
    fxt_server_stop(&srv);
}

static void start_with(const char* const* extra) {
    const char* args[32];
    int n = 0;
    const char* base[] = {"--auth-keys", "ka:alice,kb:bob,kr:alice:ro",
                          "--max-message-bytes", MSG,
                          "--max-upload-bytes", "1536k", NULL};
    for (int i = 0; base[i]; i++) args[n++] = base[i];
    for (int i = 0; extra && extra[i]; i++) args[n++] = extra[i];
    args[n] = NULL;
    fxt_server_start(&srv, args);
}
static void start(void) {
    start_with(NULL);
}

/* A local flat index of NB vectors and its serialized size. */
static FaissIndex* local_flat(float** xb_out, size_t* bytes) {
    float* xb = fxt_uniform(NB, D, 91);
    FaissIndex* loc = NULL;
    FXT_OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(loc, NB, xb));
    char* buf = NULL;
    size_t len = 0;
    FILE* f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    FXT_OK(faiss_write_index(loc, f));
    fclose(f);
    free(buf);
    cr_assert_gt(len, (size_t)16 * 65536, "the index spans many chunks");
    cr_assert_lt(len, (size_t)LIMIT);
    *bytes = len;
    *xb_out = xb;
    return loc;
}

/* Searches of loc and rem agree bit for bit. */
static void same_search(FaissIndex* loc, FaissIndex* rem, const float* xq) {
    float dl[10 * 5], dr[10 * 5];
    idx_t il[10 * 5], ir[10 * 5];
    FXT_OK(faiss_Index_search(loc, 10, xq, 5, dl, il));
    FXT_OK(faiss_Index_search(rem, 10, xq, 5, dr, ir));
    FXT_SAME(il, ir, sizeof il);
    FXT_SAME(dl, dr, sizeof dl);
    cr_assert_eq(faiss_Index_ntotal(rem), faiss_Index_ntotal(loc));
}

typedef struct Seen {
    int calls, op, monotonic;
    int64_t last_done, total;
    int64_t cancel_at;        /* -1: never */
    FaissxCancelToken* raise; /* raise this instead of returning 1 */
} Seen;

static void seen_init(Seen* s) {
    memset(s, 0, sizeof *s);
    s->monotonic = 1;
    s->cancel_at = -1;
    s->last_done = -1;
}

static int on_progress(const FaissxProgress* p, void* user) {
    Seen* s = user;
    if (s->calls > 0 && (p->done < s->last_done || p->total != s->total))
        s->monotonic = 0;
    if (p->done > p->total || p->total < 1) s->monotonic = 0;
    if (p->done > 0 && p->done < p->total && p->eta_s < 0) s->monotonic = 0;
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

/* Progress that cancels the next transfer once `at` bytes are done: the
 * callback returns 1, or (tok not NULL) raises tok, which is reset and
 * made the thread's token first. */
static void arm_cancel(Seen* s, int64_t at, FaissxCancelToken* tok) {
    seen_init(s);
    s->cancel_at = at;
    if (tok) {
        faissx_cancel_token_reset(tok);
        s->raise = tok;
        faissx_set_cancel_token(tok);
    }
    faissx_set_progress_callback(on_progress, s);
}

/* Clears what arm_cancel set; the transfer (its status rc and result out)
 * was cancelled, and its error says `nothing` ("nothing was uploaded"). */
static void disarm_cancelled(int rc, const void* out, const char* nothing) {
    faissx_set_progress_callback(NULL, NULL);
    faissx_set_cancel_token(NULL);
    cr_assert_eq(rc, FAISSX_E_CANCELED, "rc %d: %s", rc,
                 faiss_get_last_error());
    cr_assert_null(out);
    cr_assert(strstr(faiss_get_last_error(), nothing), "%s",
              faiss_get_last_error());
}

static int has_name(const char* name) {
    char** names = NULL;
    size_t n = 0;
    FXT_OK(faissx_index_list(&names, &n));
    int found = 0;
    for (size_t i = 0; i < n; i++) found |= strcmp(names[i], name) == 0;
    faissx_index_list_free(names, n);
    return found;
}

Test(remote_upload, progress_per_chunk_reaches_total, .init = start,
     .fini = stop) {
    float* xb;
    size_t bytes;
    FaissIndex* loc = local_flat(&xb, &bytes);
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    Seen s;
    seen_init(&s);
    faissx_set_progress_callback(on_progress, &s);
    FaissIndex* rem = NULL;
    FXT_OK(faissx_index_upload(loc, "up1", &rem));
    faissx_set_progress_callback(NULL, NULL);
    cr_assert_eq(s.op, FAISSX_PROGRESS_UPLOAD);
    cr_assert(s.monotonic, "done went back, total changed or no ETA");
    cr_assert_eq(s.total, (int64_t)bytes + 1, "bytes plus the commit");
    cr_assert_eq(s.last_done, s.total, "reached 100%%");
    /* start + one report per chunk (>= 16 of them) + the end */
    cr_assert_geq(s.calls, 2 + (int)(bytes / 65536), "%d reports", s.calls);
    same_search(loc, rem, xb);
    cr_assert(has_name("up1"));
    faiss_Index_free(rem);
    FXT_OK(faissx_index_drop("up1"));
    faiss_Index_free(loc);
    free(xb);
}

/* Larger than --max-message-bytes, with no progress wanted: the chunked
 * path still, and named and unnamed uploads both; the staging of each is
 * released (the limit holds less than two). */
Test(remote_upload, larger_than_message_limit_equals_local, .init = start,
     .fini = stop) {
    float* xb;
    size_t bytes;
    FaissIndex* loc = local_flat(&xb, &bytes);
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    for (int round = 0; round < 3; round++) {
        FaissIndex* rem = NULL;
        FXT_OK(faissx_index_upload(loc, round == 1 ? "big" : NULL, &rem));
        cr_assert(faissx_index_is_remote(rem));
        same_search(loc, rem, xb);
        faiss_Index_free(rem);
    }
    cr_assert(has_name("big"));
    FXT_OK(faissx_index_drop("big"));
    /* a constructor in remote mode uploads the same way (IndexLSH is
     * built locally and sent) */
    FaissIndex* lsh = NULL;
    FXT_OK(faiss_IndexLSH_new(&lsh, D, 64));
    cr_assert(faissx_index_is_remote(lsh));
    faiss_Index_free(lsh);
    faiss_Index_free(loc);
    free(xb);
}

static void cancel_test(int by_token) {
    float* xb;
    size_t bytes;
    FaissIndex* loc = local_flat(&xb, &bytes);
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FaissxCancelToken* tok = NULL;
    FXT_OK(faissx_cancel_token_new(&tok));
    Seen s;
    arm_cancel(&s, (int64_t)bytes / 3, by_token ? tok : NULL);
    FaissIndex* rem = NULL;
    int rc = faissx_index_upload(loc, "cancelled", &rem);
    disarm_cancelled(rc, rem, "nothing was uploaded");
    if (!by_token)
        cr_assert(strstr(faiss_get_last_error(), "progress callback"), "%s",
                  faiss_get_last_error());
    cr_assert(s.monotonic);
    cr_assert_geq(s.last_done, s.cancel_at);
    cr_assert_lt(s.last_done, (int64_t)bytes, "stopped mid-upload");
    cr_assert_not(has_name("cancelled"), "no index was created");
    /* nothing stays staged: the whole upload fits again */
    FXT_OK(faissx_index_upload(loc, "cancelled", &rem));
    same_search(loc, rem, xb);
    faiss_Index_free(rem);
    FXT_OK(faissx_index_drop("cancelled"));
    /* a raised token stops the next upload before it starts */
    faissx_cancel_token_cancel(tok);
    faissx_set_cancel_token(tok);
    FXT_ERR(faissx_index_upload(loc, "never", &rem), "before it started");
    faissx_set_cancel_token(NULL);
    cr_assert_not(has_name("never"));
    faissx_cancel_token_free(tok);
    faiss_Index_free(loc);
    free(xb);
}

Test(remote_upload, cancel_by_callback_leaves_nothing, .init = start,
     .fini = stop) {
    cancel_test(0);
}

Test(remote_upload, cancel_by_token_leaves_nothing, .init = start,
     .fini = stop) {
    cancel_test(1);
}

/* Every 3rd reply is dropped after the request ran: BEGIN, chunks and
 * COMMIT are retried, and the upload is applied exactly once (a second
 * COMMIT would fail "exists", a second BEGIN would leak a reservation that
 * the next upload cannot fit beside). */
Test(remote_upload, retries_never_duplicate) {
    const char* extra[] = {"--test-drop-replies", "3", NULL};
    start_with(extra);
    float* xb;
    size_t bytes;
    FaissIndex* loc = local_flat(&xb, &bytes);
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    o.url = srv.url;
    o.api_key = "ka";
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++) o.timeout_ms[i] = 20000;
    o.attempt_timeout_ms = 300;
    o.max_attempts = 8;
    o.backoff_base_ms = 5;
    o.backoff_cap_ms = 20;
    FXT_OK(faissx_configure_ex(&o));
    for (int round = 0; round < 2; round++) {
        const char* name = round ? "twice2" : "twice1";
        FaissIndex* rem = NULL;
        FXT_OK(faissx_index_upload(loc, name, &rem));
        same_search(loc, rem, xb);
        faiss_Index_free(rem);
        cr_assert(has_name(name));
        FXT_OK(faissx_index_drop(name));
    }
    faiss_Index_free(loc);
    free(xb);
    stop();
}

/* ---- the raw protocol ---------------------------------------------------- */

typedef struct Raw {
    nng_socket s;
    const char* key;
    uint64_t client;
} Raw;

static Raw raw_open(const char* key, uint64_t client) {
    Raw r = {.key = key, .client = client};
    cr_assert_eq(nng_req0_open(&r.s), 0);
    nng_socket_set_ms(r.s, NNG_OPT_RECVTIMEO, 30000);
    cr_assert_eq(nng_dial(r.s, srv.url, NULL, 0), 0);
    return r;
}

typedef struct Rep {
    fx_hdr h;
    fx_rbuf r;
    char* buf;
    size_t n;
    char err[1024];
} Rep;

/* Sends w (op, as r's key and client; rid 0 = the next one) and receives
 * the reply; returns its status, with the error text in rep->err. */
static int raw_call(Raw* r, fx_wbuf* w, int op, uint64_t rid, Rep* rep) {
    fx_hdr h = {0};
    h.op = (uint16_t)op;
    static uint64_t next = 1; /* unique across Raws: a (tenant, client,
                                 request id) repeat is a retry */
    h.request_id = rid ? rid : ++next;
    h.client_id = r->client;
    h.timeout_ms = 30000;
    fx_w_finish(w, &h);
    cr_assert(!w->oom);
    cr_assert_eq(nng_send(r->s, w->data, w->len, 0), 0);
    fx_w_free(w);
    memset(rep, 0, sizeof *rep);
    cr_assert_eq(nng_recv(r->s, &rep->buf, &rep->n, NNG_FLAG_ALLOC), 0);
    char why[128];
    cr_assert_eq(fx_hdr_decode((uint8_t*)rep->buf, rep->n, &rep->h, why,
                               sizeof why), 0, "%s", why);
    fx_r_init(&rep->r, (uint8_t*)rep->buf + FX_HDR_SIZE, rep->n - FX_HDR_SIZE);
    if (rep->h.status != 0)
        cr_assert_eq(fx_r_str(&rep->r, rep->err, sizeof rep->err - 1), 0);
    return rep->h.status;
}

static void rep_free(Rep* rep) {
    if (rep->buf) nng_free(rep->buf, rep->n);
    rep->buf = NULL;
}

static void raw_begin_w(Raw* r, fx_wbuf* w) {
    fx_w_init(w);
    fx_w_header_space(w);
    fx_w_str(w, r->key);
}

/* BEGIN: the status; the id in *id. */
static int up_begin(Raw* r, uint64_t total, int64_t kind, uint64_t* id,
                    char* err) {
    fx_wbuf w;
    Rep rep;
    raw_begin_w(r, &w);
    fx_w_u64(&w, total);
    fx_w_i64(&w, kind);
    int st = raw_call(r, &w, FX_OP_UPLOAD_BEGIN, 0, &rep);
    if (st == 0) {
        uint64_t maxc;
        cr_assert_eq(fx_r_u64(&rep.r, id), 0);
        cr_assert_eq(fx_r_u64(&rep.r, &maxc), 0);
        cr_assert_eq(fx_r_end(&rep.r), 0);
        cr_assert_leq(maxc, 65536, "a chunk fits in a message");
        cr_assert_gt(maxc, 60000);
    }
    if (err) strcpy(err, rep.err);
    rep_free(&rep);
    return st;
}

/* CHUNK: the status; the received count in *got. */
static int up_chunk(Raw* r, uint64_t id, uint64_t off, const void* p,
                    uint64_t n, uint64_t* got, char* err) {
    fx_wbuf w;
    Rep rep;
    raw_begin_w(r, &w);
    fx_w_u64(&w, id);
    fx_w_u64(&w, off);
    fx_w_array(&w, p, n, 1);
    int st = raw_call(r, &w, FX_OP_UPLOAD_CHUNK, 0, &rep);
    if (st == 0) {
        cr_assert_eq(fx_r_u64(&rep.r, got), 0);
        cr_assert_eq(fx_r_end(&rep.r), 0);
    }
    if (err) strcpy(err, rep.err);
    rep_free(&rep);
    return st;
}

/* COMMIT with request id rid (0: a new one): the status; the handle. */
static int up_commit(Raw* r, uint64_t id, const char* name, uint64_t rid,
                     uint64_t* handle, char* err) {
    fx_wbuf w;
    Rep rep;
    raw_begin_w(r, &w);
    fx_w_u64(&w, id);
    fx_w_str(&w, name);
    int st = raw_call(r, &w, FX_OP_UPLOAD_COMMIT, rid, &rep);
    if (st == 0) cr_assert_eq(fx_r_u64(&rep.r, handle), 0);
    if (err) strcpy(err, rep.err);
    rep_free(&rep);
    return st;
}

static int up_abort(Raw* r, uint64_t id, char* err) {
    fx_wbuf w;
    Rep rep;
    raw_begin_w(r, &w);
    fx_w_u64(&w, id);
    int st = raw_call(r, &w, FX_OP_UPLOAD_ABORT, 0, &rep);
    if (st == 0) cr_assert_eq(fx_r_end(&rep.r), 0);
    if (err) strcpy(err, rep.err);
    rep_free(&rep);
    return st;
}

#define EXPECT(call, code, needle)                                           \
    do {                                                                    \
        int st_ = (call);                                                   \
        cr_assert_eq(st_, (code), "%s: status %d (%s)", #call, st_, err);   \
        cr_assert(strstr(err, (needle)) != NULL, "%s: '%s' lacks '%s'",     \
                  #call, err, (needle));                                    \
    } while (0)

/* The serialized bytes of a local index. */
static uint8_t* index_bytes(FaissIndex* ix, size_t* n) {
    char* buf = NULL;
    FILE* f = open_memstream(&buf, n);
    cr_assert_not_null(f);
    FXT_OK(faiss_write_index(ix, f));
    fclose(f);
    return (uint8_t*)buf;
}

Test(remote_upload, bad_chunks_get_clear_errors_and_no_damage, .init = start,
     .fini = stop) {
    float* xb;
    size_t n;
    FaissIndex* loc = local_flat(&xb, &n);
    uint8_t* bytes = index_bytes(loc, &n);
    const uint64_t C = 60000;
    char err[1024];
    uint64_t id, got, h;
    Raw a = raw_open("ka", 0xA1), a2 = raw_open("ka", 0xA2),
        b = raw_open("kb", 0xA1), ro = raw_open("kr", 0xA1);

    EXPECT(up_begin(&a, 0, FX_UPLOAD_INDEX, &id, err), FAISSX_E_INVALID,
           "0 bytes");
    EXPECT(up_begin(&a, n, 7, &id, err), FAISSX_E_INVALID,
           "unknown upload kind 7");
    EXPECT(up_begin(&a, 2 * (uint64_t)LIMIT, FX_UPLOAD_INDEX, &id, err),
           FAISSX_E_LIMIT, "--max-upload-bytes");
    EXPECT(up_begin(&ro, n, FX_UPLOAD_INDEX, &id, err), FAISSX_E_PERMISSION,
           "read-only");
    cr_assert_eq(up_begin(&a, n, FX_UPLOAD_INDEX, &id, err), 0, "%s", err);
    /* the tenant's limit holds one such upload, not two; bob has his own */
    uint64_t id2, idb;
    EXPECT(up_begin(&a2, n, FX_UPLOAD_INDEX, &id2, err), FAISSX_E_LIMIT,
           "bytes are staged by 1 unfinished upload");
    cr_assert_eq(up_begin(&b, n, FX_UPLOAD_INDEX, &idb, err), 0, "%s", err);
    cr_assert_eq(up_abort(&b, idb, err), 0, "%s", err);

    cr_assert_eq(up_chunk(&a, id, 0, bytes, C, &got, err), 0, "%s", err);
    cr_assert_eq(got, C);
    /* a retry of a chunk already received: accepted, nothing changes */
    cr_assert_eq(up_chunk(&a, id, 0, bytes, C, &got, err), 0, "%s", err);
    cr_assert_eq(got, C);
    cr_assert_eq(up_chunk(&a, id, 100, bytes + 100, 50, &got, err), 0, "%s",
                 err);
    cr_assert_eq(got, C);
    EXPECT(up_chunk(&a, id, C + 8, bytes + C + 8, 100, &got, err),
           FAISSX_E_INVALID, "would leave a gap");
    EXPECT(up_chunk(&a, id, C - 8, bytes + C - 8, 100, &got, err),
           FAISSX_E_INVALID, "overlaps the 60000 bytes already received");
    uint8_t other[64];
    memcpy(other, bytes, sizeof other);
    other[3] ^= 1;
    EXPECT(up_chunk(&a, id, 0, other, sizeof other, &got, err),
           FAISSX_E_INVALID, "differs from the bytes already received");
    EXPECT(up_chunk(&a, id, C, bytes, 0, &got, err), FAISSX_E_INVALID,
           "is empty");
    EXPECT(up_chunk(&a, id, n - 10, bytes, 20, &got, err), FAISSX_E_INVALID,
           "lies beyond its");
    EXPECT(up_chunk(&a, id, UINT64_MAX - 4, bytes, 10, &got, err),
           FAISSX_E_INVALID, "lies beyond its");
    EXPECT(up_chunk(&a, id + 1000, C, bytes + C, 10, &got, err),
           FAISSX_E_NOT_FOUND, "unknown upload");
    /* another tenant, another client of the same tenant: as if unknown */
    EXPECT(up_chunk(&b, id, C, bytes + C, 10, &got, err), FAISSX_E_NOT_FOUND,
           "unknown upload");
    EXPECT(up_chunk(&a2, id, C, bytes + C, 10, &got, err), FAISSX_E_NOT_FOUND,
           "unknown upload");
    EXPECT(up_commit(&b, id, "x", 0, &h, err), FAISSX_E_NOT_FOUND,
           "unknown upload");
    EXPECT(up_abort(&a2, id, err), FAISSX_E_NOT_FOUND, "unknown upload");
    EXPECT(up_commit(&a, id, "early", 0, &h, err), FAISSX_E_INVALID,
           "is incomplete: 60000 of");
    EXPECT(up_commit(&a, id, ".bad", 0, &h, err), FAISSX_E_INVALID,
           "invalid index name");

    /* none of that hurt the upload: finish it, commit it */
    for (uint64_t off = C; off < n; off += C) {
        uint64_t m = n - off < C ? n - off : C;
        cr_assert_eq(up_chunk(&a, id, off, bytes + off, m, &got, err), 0,
                     "%s", err);
        cr_assert_eq(got, off + m);
    }
    const uint64_t crid = 990001;
    uint64_t h2;
    cr_assert_eq(up_commit(&a, id, "raw", crid, &h, err), 0, "%s", err);
    /* a retry of the commit (same request id) gets the same reply */
    cr_assert_eq(up_commit(&a, id, "raw", crid, &h2, err), 0, "%s", err);
    cr_assert_eq(h, h2);
    /* a new commit, a chunk or an abort of the finished upload */
    EXPECT(up_commit(&a, id, "raw2", 0, &h2, err), FAISSX_E_NOT_FOUND,
           "unknown upload");
    EXPECT(up_chunk(&a, id, 0, bytes, 8, &got, err), FAISSX_E_NOT_FOUND,
           "unknown upload");
    EXPECT(up_abort(&a, id, err), FAISSX_E_NOT_FOUND, "unknown upload");

    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FaissIndex* rem = NULL;
    FXT_OK(faissx_index_open(&rem, "raw"));
    same_search(loc, rem, xb);
    faiss_Index_free(rem);
    cr_assert_not(has_name("early"));
    cr_assert_not(has_name("raw2"));
    FXT_OK(faissx_index_drop("raw"));

    /* bytes that are not an index: a clear error, and the staging is
     * released with it */
    cr_assert_eq(up_begin(&a, n, FX_UPLOAD_INDEX, &id, err), 0, "%s", err);
    memset(bytes, 'z', n);
    for (uint64_t off = 0; off < n; off += C) {
        uint64_t m = n - off < C ? n - off : C;
        cr_assert_eq(up_chunk(&a, id, off, bytes + off, m, &got, err), 0,
                     "%s", err);
    }
    EXPECT(up_commit(&a, id, "junk", 0, &h, err), FAISSX_E_IO,
           "not a readable faiss index");
    cr_assert_not(has_name("junk"));
    cr_assert_eq(up_begin(&a, n, FX_UPLOAD_INDEX, &id, err), 0,
                 "the failed commit released its staging: %s", err);
    cr_assert_eq(up_abort(&a, id, err), 0, "%s", err);
    cr_assert_eq(up_begin(&a2, n, FX_UPLOAD_INDEX, &id, err), 0,
                 "the abort released its staging: %s", err);
    cr_assert_eq(up_abort(&a2, id, err), 0, "%s", err);

    nng_close(a.s);
    nng_close(a2.s);
    nng_close(b.s);
    nng_close(ro.s);
    free(bytes);
    faiss_Index_free(loc);
    free(xb);
}

/* A binary index through the same ops (kind 1): installed as a binary
 * index; float bytes under kind 1 are refused like any unreadable upload. */
Test(remote_upload, binary_kind_installs_a_binary_index, .init = start,
     .fini = stop) {
    FaissIndexBinary* bin = NULL;
    FXT_OK(faiss_index_binary_factory(&bin, 64, "BFlat"));
    uint8_t* codes = fxt_bytes(20000, 64, 93);
    FXT_OK(faiss_IndexBinary_add(bin, 20000, codes));
    char* buf = NULL;
    size_t n = 0;
    FILE* f = open_memstream(&buf, &n);
    cr_assert_not_null(f);
    FXT_OK(faiss_write_index_binary(bin, f));
    fclose(f);
    cr_assert_gt(n, (size_t)65536, "more than one chunk");
    const uint64_t C = 60000;
    char err[1024];
    uint64_t id, got, h;
    Raw a = raw_open("ka", 0xE1);
    cr_assert_eq(up_begin(&a, n, FX_UPLOAD_BINARY, &id, err), 0, "%s", err);
    for (uint64_t off = 0; off < n; off += C) {
        uint64_t m = n - off < C ? n - off : C;
        cr_assert_eq(up_chunk(&a, id, off, buf + off, m, &got, err), 0, "%s",
                     err);
    }
    fx_wbuf w;
    Rep rep;
    raw_begin_w(&a, &w);
    fx_w_u64(&w, id);
    fx_w_str(&w, "");
    cr_assert_eq(raw_call(&a, &w, FX_OP_UPLOAD_COMMIT, 0, &rep), 0, "%s",
                 rep.err);
    int64_t d, metric, trained, ntotal, kind;
    cr_assert_eq(fx_r_u64(&rep.r, &h), 0);
    cr_assert_eq(fx_r_i64(&rep.r, &d), 0);
    cr_assert_eq(fx_r_i64(&rep.r, &metric), 0);
    cr_assert_eq(fx_r_i64(&rep.r, &trained), 0);
    cr_assert_eq(fx_r_i64(&rep.r, &ntotal), 0);
    cr_assert_eq(fx_r_i64(&rep.r, &kind), 0);
    rep_free(&rep);
    cr_assert_eq(d, 64);
    cr_assert_eq(ntotal, 20000);
    cr_assert(kind & FX_KIND_BINARY, "kind 0x%llx", (long long)kind);

    /* float index bytes are no binary index */
    FaissIndex* loc = NULL;
    FXT_OK(faiss_index_factory(&loc, 8, "Flat", METRIC_L2));
    size_t fn;
    uint8_t* fbytes = index_bytes(loc, &fn);
    cr_assert_eq(up_begin(&a, fn, FX_UPLOAD_BINARY, &id, err), 0, "%s", err);
    cr_assert_eq(up_chunk(&a, id, 0, fbytes, fn, &got, err), 0, "%s", err);
    EXPECT(up_commit(&a, id, "", 0, &h, err), FAISSX_E_IO,
           "not a readable faiss binary index");
    nng_close(a.s);
    free(fbytes);
    faiss_Index_free(loc);
    free(buf);
    free(codes);
    faiss_IndexBinary_free(bin);
}

/* ---- faissx_index_binary_upload / _download --------------------------------- */

#define BD 256 /* bits: 32 bytes a vector */

/* A local binary flat index of n vectors and its serialized bytes (made
 * before faissx_configure: in remote mode the factory builds on the
 * server). */
static FaissIndexBinary* local_bflat(int n, uint64_t seed, uint8_t** codes,
                                     uint8_t** bytes, size_t* nbytes) {
    FaissIndexBinary* bin = NULL;
    FXT_OK(faiss_index_binary_factory(&bin, BD, "BFlat"));
    cr_assert_not(faissx_index_binary_is_remote(bin));
    *codes = fxt_bytes((size_t)n, BD, seed);
    FXT_OK(faiss_IndexBinary_add(bin, n, *codes));
    char* buf = NULL;
    FILE* f = open_memstream(&buf, nbytes);
    cr_assert_not_null(f);
    FXT_OK(faiss_write_index_binary(bin, f));
    fclose(f);
    *bytes = (uint8_t*)buf;
    return bin;
}

/* Searches of binary indexes loc and rem agree bit for bit. */
static void same_bsearch(FaissIndexBinary* loc, FaissIndexBinary* rem,
                         const uint8_t* xq) {
    int32_t dl[10 * 5], dr[10 * 5];
    idx_t il[10 * 5], ir[10 * 5];
    FXT_OK(faiss_IndexBinary_search(loc, 10, xq, 5, dl, il));
    FXT_OK(faiss_IndexBinary_search(rem, 10, xq, 5, dr, ir));
    FXT_SAME(il, ir, sizeof il);
    FXT_SAME(dl, dr, sizeof dl);
    cr_assert_eq(faiss_IndexBinary_ntotal(rem), faiss_IndexBinary_ntotal(loc));
}

/* The bytes faiss_write_index_binary writes for ix (a remote one: the
 * server's). */
static uint8_t* bindex_bytes(FaissIndexBinary* ix, size_t* n) {
    char* buf = NULL;
    FILE* f = open_memstream(&buf, n);
    cr_assert_not_null(f);
    FXT_OK(faiss_write_index_binary(ix, f));
    fclose(f);
    return (uint8_t*)buf;
}

Test(remote_upload, binary_upload_download_round_trip, .init = start,
     .fini = stop) {
    enum { NBIN = 36000 }; /* about 1.1 MiB: many chunks */
    uint8_t *codes, *bytes;
    size_t nbytes;
    FaissIndexBinary* loc = local_bflat(NBIN, 95, &codes, &bytes, &nbytes);
    cr_assert_gt(nbytes, (size_t)16 * 65536);
    cr_assert_lt(nbytes, (size_t)LIMIT);
    uint8_t *small_codes, *small_bytes;
    size_t small_n;
    FaissIndexBinary* small_loc =
            local_bflat(300, 96, &small_codes, &small_bytes, &small_n);
    FXT_OK(faissx_configure(srv.url, "ka", 0));

    /* named, chunked, with progress per chunk up to the total */
    Seen s;
    seen_init(&s);
    faissx_set_progress_callback(on_progress, &s);
    FaissIndexBinary* rem = NULL;
    FXT_OK(faissx_index_binary_upload(loc, "bup", &rem));
    faissx_set_progress_callback(NULL, NULL);
    cr_assert(faissx_index_binary_is_remote(rem));
    cr_assert_eq(s.op, FAISSX_PROGRESS_UPLOAD);
    cr_assert(s.monotonic);
    cr_assert_eq(s.total, (int64_t)nbytes + 1, "bytes plus the commit");
    cr_assert_eq(s.last_done, s.total);
    cr_assert_geq(s.calls, 2 + (int)(nbytes / 65536), "%d reports", s.calls);
    same_bsearch(loc, rem, codes);
    cr_assert(has_name("bup"));
    /* a second upload under the name: refused, nothing changed */
    FaissIndexBinary* dup = NULL;
    int rc = faissx_index_binary_upload(loc, "bup", &dup);
    cr_assert_eq(rc, FAISSX_E_EXISTS, "rc %d: %s", rc, faiss_get_last_error());
    cr_assert_null(dup);
    /* opened by name: the same index */
    FaissIndexBinary* op = NULL;
    FXT_OK(faissx_index_binary_open(&op, "bup"));
    same_bsearch(loc, op, codes);
    faiss_IndexBinary_free(op);

    /* downloaded in chunks with progress: the local index's bytes */
    seen_init(&s);
    faissx_set_progress_callback(on_progress, &s);
    FaissIndexBinary* back = NULL;
    FXT_OK(faissx_index_binary_download(rem, &back));
    faissx_set_progress_callback(NULL, NULL);
    cr_assert_not(faissx_index_binary_is_remote(back));
    cr_assert_eq(s.op, FAISSX_PROGRESS_DOWNLOAD);
    cr_assert(s.monotonic);
    cr_assert_eq(s.total, (int64_t)nbytes);
    cr_assert_eq(s.last_done, s.total);
    same_bsearch(loc, back, codes);
    size_t nb2;
    uint8_t* b2 = bindex_bytes(back, &nb2);
    cr_assert_eq(nb2, nbytes);
    FXT_SAME(b2, bytes, nbytes);
    free(b2);
    faiss_IndexBinary_free(back);
    /* of a local index: a local copy */
    FXT_OK(faissx_index_binary_download(loc, &back));
    cr_assert_not(faissx_index_binary_is_remote(back));
    same_bsearch(loc, back, codes);
    faiss_IndexBinary_free(back);
    faiss_IndexBinary_free(rem);
    FXT_OK(faissx_index_drop("bup"));

    /* unnamed ("" as NULL), large and small (one message) */
    for (int small = 0; small < 2; small++) {
        FaissIndexBinary* l2 = small ? small_loc : loc;
        FXT_OK(faissx_index_binary_upload(l2, small ? NULL : "", &rem));
        same_bsearch(l2, rem, small ? small_codes : codes);
        faiss_IndexBinary_free(rem);
    }
    faiss_IndexBinary_free(small_loc);
    free(small_codes);
    free(small_bytes);
    cr_assert_not(has_name(""));

    /* a binary IVF keeps its type, parameters and results */
    FaissIndexBinary* ivf = NULL;
    FXT_OK(faissx_configure(NULL, NULL, 0));
    FXT_OK(faiss_index_binary_factory(&ivf, BD, "BIVF16"));
    FXT_OK(faiss_IndexBinary_train(ivf, 4000, codes));
    FXT_OK(faiss_IndexBinary_add(ivf, 4000, codes));
    faiss_IndexBinaryIVF_set_nprobe(faiss_IndexBinaryIVF_cast(ivf), 4);
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FXT_OK(faissx_index_binary_upload(ivf, NULL, &rem));
    cr_assert_not_null(faiss_IndexBinaryIVF_cast(rem));
    cr_assert_eq(faiss_IndexBinaryIVF_nprobe(faiss_IndexBinaryIVF_cast(rem)),
                 4);
    /* nlist comes with the index info: no round trip */
    uint64_t t = fx_client_round_trips();
    cr_assert_eq(faiss_IndexBinaryIVF_nlist(faiss_IndexBinaryIVF_cast(rem)),
                 faiss_IndexBinaryIVF_nlist(faiss_IndexBinaryIVF_cast(ivf)));
    cr_assert_eq(fx_client_round_trips() - t, 0);
    same_bsearch(ivf, rem, codes);
    faiss_IndexBinary_free(rem);
    faiss_IndexBinary_free(ivf);
    faiss_IndexBinary_free(loc);
    free(codes);
    free(bytes);
}

static void binary_cancel_test(int by_token) {
    enum { NBIN = 36000 };
    uint8_t *codes, *bytes;
    size_t nbytes;
    FaissIndexBinary* loc = local_bflat(NBIN, 97, &codes, &bytes, &nbytes);
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FaissxCancelToken* tok = NULL;
    FXT_OK(faissx_cancel_token_new(&tok));
    Seen s;
    arm_cancel(&s, (int64_t)nbytes / 3, by_token ? tok : NULL);
    FaissIndexBinary* rem = NULL;
    int rc = faissx_index_binary_upload(loc, "bcancel", &rem);
    disarm_cancelled(rc, rem, "nothing was uploaded");
    cr_assert_lt(s.last_done, (int64_t)nbytes, "stopped mid-upload");
    cr_assert_not(has_name("bcancel"), "no index was created");
    /* nothing stays staged: the whole upload fits again */
    FXT_OK(faissx_index_binary_upload(loc, "bcancel", &rem));
    same_bsearch(loc, rem, codes);
    /* a download cancelled mid-way returns nothing */
    arm_cancel(&s, (int64_t)nbytes / 3, by_token ? tok : NULL);
    FaissIndexBinary* back = NULL;
    rc = faissx_index_binary_download(rem, &back);
    disarm_cancelled(rc, back, "nothing was returned");
    faiss_IndexBinary_free(rem);
    FXT_OK(faissx_index_drop("bcancel"));
    /* a raised token stops the next upload before it starts */
    faissx_cancel_token_cancel(tok);
    faissx_set_cancel_token(tok);
    FXT_ERR(faissx_index_binary_upload(loc, "bnever", &rem),
            "before it started");
    faissx_set_cancel_token(NULL);
    cr_assert_not(has_name("bnever"));
    faissx_cancel_token_free(tok);
    faiss_IndexBinary_free(loc);
    free(codes);
    free(bytes);
}

Test(remote_upload, binary_upload_cancel_by_callback, .init = start,
     .fini = stop) {
    binary_cancel_test(0);
}

Test(remote_upload, binary_upload_cancel_by_token, .init = start,
     .fini = stop) {
    binary_cancel_test(1);
}

Test(remote_upload, binary_upload_refusals, .init = start, .fini = stop) {
    uint8_t *codes, *bytes;
    size_t nbytes;
    /* over --max-upload-bytes (1536k): refused before any chunk, with a
     * clear error; nothing is left behind */
    FaissIndexBinary* big = local_bflat(52000, 98, &codes, &bytes, &nbytes);
    cr_assert_gt(nbytes, (size_t)LIMIT);
    free(codes);
    free(bytes);
    FaissIndexBinary* loc = local_bflat(36000, 99, &codes, &bytes, &nbytes);
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FaissIndexBinary* rem = NULL;
    int rc = faissx_index_binary_upload(big, "toobig", &rem);
    cr_assert_eq(rc, FAISSX_E_LIMIT, "rc %d: %s", rc, faiss_get_last_error());
    cr_assert(strstr(faiss_get_last_error(), "--max-upload-bytes"), "%s",
              faiss_get_last_error());
    cr_assert_null(rem);
    cr_assert_not(has_name("toobig"));
    faiss_IndexBinary_free(big);

    /* bad arguments */
    FXT_ERR(faissx_index_binary_upload(NULL, NULL, &rem), "");
    FXT_ERR(faissx_index_binary_upload(loc, NULL, NULL), "");
    FXT_ERR(faissx_index_binary_download(NULL, &rem), "");
    FXT_ERR(faissx_index_binary_download(loc, NULL), "");
    rc = faissx_index_binary_upload(loc, "bad name!", &rem);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(faiss_get_last_error(), "name"), "%s",
              faiss_get_last_error());
    cr_assert_null(rem);
    /* a remote index is copied on its server, not uploaded */
    FXT_OK(faissx_index_binary_upload(loc, NULL, &rem));
    FaissIndexBinary* again = NULL;
    FXT_ERR(faissx_index_binary_upload(rem, NULL, &again), "already remote");
    cr_assert_null(again);
    faiss_IndexBinary_free(rem);
    /* local mode: no server to upload to */
    FXT_OK(faissx_configure(NULL, NULL, 0));
    FXT_ERR(faissx_index_binary_upload(loc, NULL, &rem), "no server");

    /* bytes that are no binary index, staged as one: a clear error at
     * COMMIT, and nothing installed (truncated ones, and float ones) */
    char err[1024];
    uint64_t id, got, h;
    Raw a = raw_open("ka", 0xE7);
    size_t half = nbytes / 2;
    cr_assert_eq(up_begin(&a, half, FX_UPLOAD_BINARY, &id, err), 0, "%s",
                 err);
    for (uint64_t off = 0; off < half; off += 60000) {
        uint64_t m = half - off < 60000 ? half - off : 60000;
        cr_assert_eq(up_chunk(&a, id, off, bytes + off, m, &got, err), 0,
                     "%s", err);
    }
    EXPECT(up_commit(&a, id, "btrunc", 0, &h, err), FAISSX_E_IO,
           "not a readable faiss binary index");
    nng_close(a.s);
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    cr_assert_not(has_name("btrunc"));
    /* the failed upload's staging was released: a full one fits */
    FXT_OK(faissx_index_binary_upload(loc, NULL, &rem));
    same_bsearch(loc, rem, codes);
    faiss_IndexBinary_free(rem);
    faiss_IndexBinary_free(loc);
    free(codes);
    free(bytes);
}

/* A named binary upload to a server with a data directory is durable:
 * after a restart it opens by name with the same results; the handle made
 * by the upload reopens by name by itself. */
Test(remote_upload, binary_upload_to_a_durable_server, .fini = stop) {
    uint8_t *codes, *bytes;
    size_t nbytes;
    FaissIndexBinary* loc = local_bflat(36000, 101, &codes, &bytes, &nbytes);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("bup-store"));
    const char* extra[] = {"--data-dir", dir, NULL};
    start_with(extra);
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FaissIndexBinary* rem = NULL;
    FXT_OK(faissx_index_binary_upload(loc, "bdur", &rem));
    same_bsearch(loc, rem, codes);
    fxt_server_stop(&srv);
    const char* args[] = {"--auth-keys", "ka:alice,kb:bob,kr:alice:ro",
                          "--max-message-bytes", MSG,
                          "--max-upload-bytes", "1536k",
                          "--data-dir", dir, NULL};
    fxt_server_restart(&srv, args);
    same_bsearch(loc, rem, codes); /* the old handle reopens by name */
    FaissIndexBinary* op = NULL;
    FXT_OK(faissx_index_binary_open(&op, "bdur"));
    same_bsearch(loc, op, codes);
    faiss_IndexBinary_free(op);
    faiss_IndexBinary_free(rem);
    FXT_OK(faissx_index_drop("bdur"));
    faiss_IndexBinary_free(loc);
    free(codes);
    free(bytes);
}

/* ---- chunked download ------------------------------------------------------ */

/* DOWNLOAD_BEGIN of handle h: the status; total and id. */
static int dl_begin(Raw* r, uint64_t h, uint64_t* total, uint64_t* id,
                    char* err) {
    fx_wbuf w;
    Rep rep;
    raw_begin_w(r, &w);
    fx_w_u64(&w, h);
    fx_w_i64(&w, FX_UPLOAD_INDEX);
    int st = raw_call(r, &w, FX_OP_DOWNLOAD_BEGIN, 0, &rep);
    if (st == 0) {
        uint64_t mc;
        cr_assert_eq(fx_r_u64(&rep.r, total), 0);
        cr_assert_eq(fx_r_u64(&rep.r, id), 0);
        cr_assert_eq(fx_r_u64(&rep.r, &mc), 0);
    }
    if (err) strcpy(err, rep.err);
    rep_free(&rep);
    return st;
}

static int dl_call(Raw* r, int op, uint64_t id, uint64_t off, char* err) {
    fx_wbuf w;
    Rep rep;
    raw_begin_w(r, &w);
    fx_w_u64(&w, id);
    if (op == FX_OP_DOWNLOAD_CHUNK) {
        fx_w_u64(&w, off);
        fx_w_u64(&w, 0);
    }
    int st = raw_call(r, &w, op, 0, &rep);
    if (err) strcpy(err, rep.err);
    rep_free(&rep);
    return st;
}

Test(remote_upload, download_in_chunks_with_progress_and_cancel,
     .init = start, .fini = stop) {
    float* xb;
    size_t bytes;
    FaissIndex* loc = local_flat(&xb, &bytes);
    FXT_OK(faissx_configure(srv.url, "ka", 0));
    FaissIndex* rem = NULL;
    FXT_OK(faissx_index_upload(loc, "dl", &rem));

    /* bigger than a message: it comes back in chunks, with progress */
    Seen s;
    seen_init(&s);
    faissx_set_progress_callback(on_progress, &s);
    FaissIndex* back = NULL;
    FXT_OK(faissx_index_download(rem, &back));
    faissx_set_progress_callback(NULL, NULL);
    cr_assert_not(faissx_index_is_remote(back));
    cr_assert_eq(s.op, FAISSX_PROGRESS_DOWNLOAD);
    cr_assert(s.monotonic);
    cr_assert_eq(s.total, (int64_t)bytes);
    cr_assert_eq(s.last_done, s.total);
    cr_assert_geq(s.calls, 2 + (int)(bytes / 65536), "%d reports", s.calls);
    same_search(loc, back, xb);
    faiss_Index_free(back);
    /* faiss_write_index of the remote index: the local index's bytes */
    size_t n1, n2;
    uint8_t* b1 = index_bytes(loc, &n1);
    uint8_t* b2 = index_bytes(rem, &n2);
    cr_assert_eq(n1, n2);
    FXT_SAME(b1, b2, n1);
    free(b1);
    free(b2);

    /* cancelled mid-way: nothing returned, nothing left staged */
    seen_init(&s);
    s.cancel_at = (int64_t)bytes / 3;
    faissx_set_progress_callback(on_progress, &s);
    back = NULL;
    int rc = faissx_index_download(rem, &back);
    faissx_set_progress_callback(NULL, NULL);
    cr_assert_eq(rc, FAISSX_E_CANCELED, "rc %d: %s", rc,
                 faiss_get_last_error());
    cr_assert_null(back);
    cr_assert(strstr(faiss_get_last_error(),
                     "download cancelled by the progress callback; nothing "
                     "was returned"), "%s", faiss_get_last_error());
    cr_assert_lt(s.last_done, (int64_t)bytes);
    FaissIndex* again = NULL;
    FXT_OK(faissx_index_upload(loc, NULL, &again)); /* the limit fits it */
    faiss_Index_free(again);

    /* the raw ops: scoped to tenant and client, ends are idempotent */
    Raw a = raw_open("ka", 0xD1), a2 = raw_open("ka", 0xD2),
        b = raw_open("kb", 0xD1), ro = raw_open("kr", 0xD3);
    char err[1024];
    uint64_t total, id;
    uint64_t h = 0; /* the server-side handle, from OPEN's info */
    {
        fx_wbuf w;
        Rep rep;
        raw_begin_w(&a, &w);
        fx_w_str(&w, "dl");
        cr_assert_eq(raw_call(&a, &w, FX_OP_OPEN, 0, &rep), 0);
        cr_assert_eq(fx_r_u64(&rep.r, &h), 0);
        rep_free(&rep);
    }
    cr_assert_eq(dl_begin(&a, h, &total, &id, err), 0, "%s", err);
    cr_assert_eq(total, bytes);
    cr_assert_neq(id, 0, "staged: bigger than one reply");
    /* the tenant's staging holds one such download, not two */
    uint64_t id_ro;
    EXPECT(dl_begin(&ro, h, &total, &id_ro, err), FAISSX_E_LIMIT,
           "staging a download of");
    EXPECT(dl_call(&b, FX_OP_DOWNLOAD_CHUNK, id, 0, err), FAISSX_E_NOT_FOUND,
           "unknown download");
    EXPECT(dl_call(&a2, FX_OP_DOWNLOAD_CHUNK, id, 0, err), FAISSX_E_NOT_FOUND,
           "unknown download");
    EXPECT(dl_call(&a, FX_OP_UPLOAD_ABORT, id, 0, err), FAISSX_E_NOT_FOUND,
           "unknown upload"); /* a download is not an upload */
    EXPECT(dl_call(&a, FX_OP_DOWNLOAD_CHUNK, id, bytes, err),
           FAISSX_E_INVALID, "is beyond its");
    cr_assert_eq(dl_call(&a, FX_OP_DOWNLOAD_CHUNK, id, bytes - 1, err), 0,
                 "%s", err);
    /* bob's END of alice's download does nothing; hers ends it */
    cr_assert_eq(dl_call(&b, FX_OP_DOWNLOAD_END, id, 0, err), 0, "%s", err);
    cr_assert_eq(dl_call(&a, FX_OP_DOWNLOAD_CHUNK, id, 0, err), 0, "%s", err);
    cr_assert_eq(dl_call(&a, FX_OP_DOWNLOAD_END, id, 0, err), 0, "%s", err);
    cr_assert_eq(dl_call(&a, FX_OP_DOWNLOAD_END, id, 0, err), 0, "%s", err);
    EXPECT(dl_call(&a, FX_OP_DOWNLOAD_CHUNK, id, 0, err), FAISSX_E_NOT_FOUND,
           "unknown download");
    /* a retried BEGIN (same request id) gets the same download, not a
     * second staging (which the limit could not hold) */
    uint64_t ids[2];
    for (int i = 0; i < 2; i++) {
        fx_wbuf w;
        Rep rep;
        raw_begin_w(&a, &w);
        fx_w_u64(&w, h);
        fx_w_i64(&w, FX_UPLOAD_INDEX);
        cr_assert_eq(raw_call(&a, &w, FX_OP_DOWNLOAD_BEGIN, 880001, &rep), 0,
                     "%s", rep.err);
        cr_assert_eq(fx_r_u64(&rep.r, &total), 0);
        cr_assert_eq(fx_r_u64(&rep.r, &ids[i]), 0);
        rep_free(&rep);
    }
    cr_assert_neq(ids[0], 0);
    cr_assert_eq(ids[0], ids[1]);
    cr_assert_eq(dl_call(&a, FX_OP_DOWNLOAD_END, ids[0], 0, err), 0, "%s",
                 err);
    /* a read-only key may download too */
    cr_assert_eq(dl_begin(&ro, h, &total, &id_ro, err), 0, "%s", err);
    cr_assert_eq(dl_call(&ro, FX_OP_DOWNLOAD_END, id_ro, 0, err), 0, "%s",
                 err);
    EXPECT(dl_begin(&a, h + 999, &total, &id, err), FAISSX_E_NOT_FOUND,
           "unknown index handle");
    nng_close(a.s);
    nng_close(a2.s);
    nng_close(b.s);
    nng_close(ro.s);

    faiss_Index_free(rem);
    FXT_OK(faissx_index_drop("dl"));
    faiss_Index_free(loc);
    free(xb);
}

/* Staging comes back when its client goes away (connection closed, not
 * back within --orphan-grace-ms) or sends nothing for --upload-idle-ms. */
static int begin_fits(Raw* r, uint64_t n) {
    uint64_t id;
    char err[1024];
    for (int i = 0; i < 600; i++) { /* a minute: a loaded machine is slow */
        int st = up_begin(r, n, FX_UPLOAD_INDEX, &id, err);
        if (st == 0) {
            cr_assert_eq(up_abort(r, id, err), 0, "%s", err);
            return 1;
        }
        cr_assert_eq(st, FAISSX_E_LIMIT, "%s", err);
        usleep(100000);
    }
    return 0;
}

Test(remote_upload, staging_reclaimed_when_client_leaves) {
    const char* extra[] = {"--orphan-grace-ms", "200", NULL};
    start_with(extra);
    const uint64_t n = LIMIT - 4096;
    char err[1024];
    uint64_t id, got;
    Raw a = raw_open("ka", 0xB1), other = raw_open("ka", 0xB2);
    cr_assert_eq(up_begin(&a, n, FX_UPLOAD_INDEX, &id, err), 0, "%s", err);
    uint8_t chunk[4096] = {1};
    cr_assert_eq(up_chunk(&a, id, 0, chunk, sizeof chunk, &got, err), 0, "%s",
                 err);
    uint64_t id2;
    EXPECT(up_begin(&other, n, FX_UPLOAD_INDEX, &id2, err), FAISSX_E_LIMIT,
           "staged");
    nng_close(a.s); /* the client is gone */
    cr_assert(begin_fits(&other, n), "the staging was never reclaimed");
    cr_assert(strstr(fxt_server_log(&srv), "discarded 1 unfinished upload"),
              "%s", fxt_server_log(&srv));
    nng_close(other.s);
    stop();
}

Test(remote_upload, staging_reclaimed_when_idle) {
    const char* extra[] = {"--upload-idle-ms", "300", NULL};
    start_with(extra);
    const uint64_t n = LIMIT - 4096;
    char err[1024];
    uint64_t id, got;
    Raw a = raw_open("ka", 0xC1);
    cr_assert_eq(up_begin(&a, n, FX_UPLOAD_INDEX, &id, err), 0, "%s", err);
    uint8_t chunk[4096] = {1};
    cr_assert_eq(up_chunk(&a, id, 0, chunk, sizeof chunk, &got, err), 0, "%s",
                 err);
    /* the client stays connected, but the upload idles */
    cr_assert(begin_fits(&a, n), "the idle upload was never discarded");
    EXPECT(up_chunk(&a, id, 4096, chunk, sizeof chunk, &got, err),
           FAISSX_E_NOT_FOUND, "unknown upload");
    nng_close(a.s);
    stop();
}
