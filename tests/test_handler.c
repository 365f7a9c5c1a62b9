/* test_handler.c -- the server's request handler (fx_state, net/handler.cpp)
 * driven directly with wire messages: authentication and tenants, the
 * registry of named and unnamed indexes, limits, validation, every op's
 * results against a local faissx index fed the same data (bit-identical),
 * malformed input, and orphan reaping. No sockets are involved. */
#include "common.h"

#include "net/proto.h"
#include "net/server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define K_ALICE "k1"
#define K_BOB "k2"
#define K_RO "k3" /* alice, read-only */
#define KEYS "k1:alice,k2:bob,k3:alice:ro"
#define CLIENT 0xC11E47ull
#define CONN 1

/* ---- plumbing ----------------------------------------------------------- */

static fx_state* new_state(const char* keys, int64_t max_k,
                           int64_t max_batch) {
    /* The handler executes through the C API: make sure that is local
     * whatever the environment says (faissx-server does the same). */
    faissx_remote_disable();
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.auth_keys = keys;
    if (max_k) c.max_k = max_k;
    if (max_batch) c.max_batch = max_batch;
    fx_state* s = NULL;
    char err[256] = "";
    int rc = fx_state_new(&c, &s, err, sizeof err);
    cr_assert_eq(rc, 0, "fx_state_new: %s", err);
    cr_assert_not_null(s);
    return s;
}

/* A reply: status, header, the message it owns, a reader over its body
 * (positioned after the message for errors), the error text. */
typedef struct {
    int status;
    fx_hdr h;
    uint8_t* bytes;
    size_t len;
    fx_rbuf r;
    char err[2048];
    fx_req_meta meta;
} rep_t;

static void rep_free(rep_t* p) {
    free(p->bytes);
    memset(p, 0, sizeof *p);
}

/* Feeds raw bytes to the handler and checks the reply is well formed. */
static int send_raw(fx_state* s, const uint8_t* msg, size_t len,
                    uint64_t conn, rep_t* out) {
    memset(out, 0, sizeof *out);
    fx_wbuf reply;
    fx_w_init(&reply);
    out->meta.status = 12345;
    fx_state_handle(s, msg, len, conn, &reply, &out->meta);
    cr_assert(!reply.oom && reply.len >= FX_HDR_SIZE, "no reply message");
    out->bytes = reply.data; /* ours now */
    out->len = reply.len;
    char why[256] = "";
    int rc = fx_hdr_decode(out->bytes, out->len, &out->h, why, sizeof why);
    /* The reply to an unknown op repeats that op, which this end's decoder
     * refuses as unknown; everything else about it must be valid. */
    cr_assert(rc == 0 || (rc == FAISSX_E_UNSUPPORTED &&
                          out->h.magic == FX_PROTO_MAGIC &&
                          out->h.version == FX_PROTO_VERSION &&
                          out->h.body_len == out->len - FX_HDR_SIZE),
              "reply does not decode: %s", why);
    cr_assert_eq(out->h.flags, FX_FLAG_REPLY);
    out->status = out->h.status;
    cr_assert(out->status <= 0, "positive status %d", out->status);
    cr_assert_eq(out->meta.status, out->status, "meta.status %d vs %d",
                 out->meta.status, out->status);
    fx_r_init(&out->r, out->bytes + FX_HDR_SIZE, out->len - FX_HDR_SIZE);
    if (out->status != 0) {
        cr_assert_eq(fx_r_str(&out->r, out->err, sizeof out->err - 1), 0,
                     "error reply without a message");
        cr_assert_eq(fx_r_end(&out->r), 0, "error reply with extra bytes");
        cr_assert(out->err[0] != '\0', "empty error message");
    }
    return out->status;
}

static uint64_t g_rid = 1000;

/* Starts a request: header space and the API key. */
static void begin(fx_wbuf* w, const char* key) {
    fx_w_init(w);
    fx_w_header_space(w);
    fx_w_str(w, key);
}

/* Finishes w as a request for op and sends it (freeing w). */
static int call_as(fx_state* s, fx_wbuf* w, int op, uint64_t client,
                   uint64_t conn, rep_t* out) {
    fx_hdr h = {0};
    h.op = (uint16_t)op;
    h.request_id = ++g_rid;
    h.client_id = client;
    h.timeout_ms = 5000;
    fx_w_finish(w, &h);
    cr_assert(!w->oom);
    int st = send_raw(s, w->data, w->len, conn, out);
    fx_w_free(w);
    if (op > 0 && op < FX_OP_MAX_) {
        cr_assert_eq(out->h.op, op);
        cr_assert_eq(out->meta.op, op);
    }
    cr_assert_eq(out->h.request_id, h.request_id, "request id not echoed");
    cr_assert_eq(out->h.client_id, client, "client id not echoed");
    cr_assert_eq(out->meta.request_id, h.request_id);
    cr_assert_eq(out->meta.client_id, client);
    return st;
}

static int call(fx_state* s, fx_wbuf* w, int op, rep_t* out) {
    return call_as(s, w, op, CLIENT, CONN, out);
}

#define EXPECT_OK(st, rep)                                                 \
    cr_assert_eq((st), 0, "%s:%d: failed (%d): %s", __FILE__, __LINE__,    \
                 (rep).status, (rep).err)

#define EXPECT_ERR(st, rep, code, needle)                                  \
    do {                                                                   \
        int st_ = (st);                                                    \
        cr_assert_eq(st_, (code), "line %d: status %d, expected %d (%s)",  \
                     __LINE__, st_, (code), (rep).err);                    \
        cr_assert(strstr((rep).err, (needle)) != NULL,                     \
                  "line %d: message '%s' lacks '%s'", __LINE__, (rep).err, \
                  (needle));                                               \
    } while (0)

/* Reply-body readers that assert well-formedness. */
static uint64_t r_u64(rep_t* p) {
    uint64_t v = 0;
    cr_assert_eq(fx_r_u64(&p->r, &v), 0, "reply: %s", p->r.err);
    return v;
}
static int64_t r_i64(rep_t* p) {
    int64_t v = 0;
    cr_assert_eq(fx_r_i64(&p->r, &v), 0, "reply: %s", p->r.err);
    return v;
}
static const void* r_array(rep_t* p, size_t elem, uint64_t expect) {
    const void* d = NULL;
    uint64_t n = 0;
    cr_assert_eq(fx_r_array(&p->r, elem, UINT64_MAX, &d, &n), 0, "reply: %s",
                 p->r.err);
    cr_assert_eq(n, expect, "reply array has %llu elements, expected %llu",
                 (unsigned long long)n, (unsigned long long)expect);
    return d;
}
static void r_end(rep_t* p) {
    cr_assert_eq(fx_r_end(&p->r), 0, "reply: %s", p->r.err);
}

typedef struct {
    uint64_t handle;
    int64_t d, metric, is_trained, ntotal, kind;
    char cls[128];
    int64_t nlist, nprobe, code_size; /* the sizes at the end */
} info_t;

static void r_info(rep_t* p, info_t* i) {
    i->handle = r_u64(p);
    i->d = r_i64(p);
    i->metric = r_i64(p);
    i->is_trained = r_i64(p);
    i->ntotal = r_i64(p);
    i->kind = r_i64(p);
    cr_assert_eq(fx_r_str(&p->r, i->cls, sizeof i->cls - 1), 0);
    i->nlist = r_i64(p);
    i->nprobe = r_i64(p);
    i->code_size = r_i64(p);
    r_end(p);
}

/* ---- typed requests (asserting success) --------------------------------- */

static uint64_t create(fx_state* s, const char* key, const char* name, int d,
                       int metric, const char* desc, info_t* info) {
    fx_wbuf w;
    rep_t p;
    begin(&w, key);
    fx_w_str(&w, name);
    fx_w_i64(&w, d);
    fx_w_i64(&w, metric);
    fx_w_str(&w, desc);
    EXPECT_OK(call(s, &w, FX_OP_CREATE, &p), p);
    info_t i;
    r_info(&p, &i);
    cr_assert_eq(i.d, d);
    cr_assert_eq(i.metric, metric);
    if (info) *info = i;
    rep_free(&p);
    return i.handle;
}

static int req_info(fx_state* s, const char* key, uint64_t h, info_t* info,
                    rep_t* p) {
    fx_wbuf w;
    begin(&w, key);
    fx_w_u64(&w, h);
    int st = call(s, &w, FX_OP_INFO, p);
    if (st == 0 && info) r_info(p, info);
    return st;
}

static info_t info_of(fx_state* s, const char* key, uint64_t h) {
    rep_t p;
    info_t i;
    EXPECT_OK(req_info(s, key, h, &i, &p), p);
    rep_free(&p);
    return i;
}

/* TRAIN / ADD: h, n, x. Returns the status; on success checks the state
 * reply. */
static int req_vecs(fx_state* s, const char* key, int op, uint64_t h,
                    int64_t n, const float* x, uint64_t nx, rep_t* p) {
    fx_wbuf w;
    begin(&w, key);
    fx_w_u64(&w, h);
    fx_w_i64(&w, n);
    fx_w_array(&w, x, nx, sizeof(float));
    return call(s, &w, op, p);
}

static int64_t add(fx_state* s, const char* key, uint64_t h, int64_t n,
                   const float* x, int d) {
    rep_t p;
    EXPECT_OK(req_vecs(s, key, FX_OP_ADD, h, n, x, (uint64_t)n * d, &p), p);
    int64_t ntotal = r_i64(&p);
    cr_assert_eq(r_i64(&p), 1);
    r_end(&p);
    rep_free(&p);
    return ntotal;
}

static void train(fx_state* s, const char* key, uint64_t h, int64_t n,
                  const float* x, int d) {
    rep_t p;
    EXPECT_OK(req_vecs(s, key, FX_OP_TRAIN, h, n, x, (uint64_t)n * d, &p), p);
    r_i64(&p);
    cr_assert_eq(r_i64(&p), 1, "not trained after TRAIN");
    r_end(&p);
    rep_free(&p);
}

static int64_t add_ids(fx_state* s, const char* key, uint64_t h, int64_t n,
                       const float* x, int d, const idx_t* ids) {
    fx_wbuf w;
    rep_t p;
    begin(&w, key);
    fx_w_u64(&w, h);
    fx_w_i64(&w, n);
    fx_w_array(&w, x, (uint64_t)n * d, sizeof(float));
    fx_w_array(&w, ids, (uint64_t)n, sizeof(idx_t));
    EXPECT_OK(call(s, &w, FX_OP_ADD_WITH_IDS, &p), p);
    int64_t ntotal = r_i64(&p);
    r_i64(&p);
    r_end(&p);
    rep_free(&p);
    return ntotal;
}

/* SEARCH (or ASSIGN when D == NULL). */
static int req_search(fx_state* s, const char* key, int op, uint64_t h,
                      int64_t n, int64_t k, const float* x, uint64_t nx,
                      rep_t* p) {
    fx_wbuf w;
    begin(&w, key);
    fx_w_u64(&w, h);
    fx_w_i64(&w, n);
    fx_w_i64(&w, k);
    fx_w_array(&w, x, nx, sizeof(float));
    return call(s, &w, op, p);
}

static void search(fx_state* s, const char* key, uint64_t h, int64_t n,
                   int64_t k, const float* x, int d, float* D, idx_t* I) {
    rep_t p;
    EXPECT_OK(req_search(s, key, FX_OP_SEARCH, h, n, k, x, (uint64_t)n * d,
                         &p),
              p);
    const void* dd = r_array(&p, sizeof(float), (uint64_t)(n * k));
    const void* ii = r_array(&p, sizeof(idx_t), (uint64_t)(n * k));
    r_end(&p);
    memcpy(D, dd, sizeof(float) * n * k);
    memcpy(I, ii, sizeof(idx_t) * n * k);
    rep_free(&p);
}

static int req_handle(fx_state* s, const char* key, int op, uint64_t h,
                      rep_t* p) {
    fx_wbuf w;
    begin(&w, key);
    fx_w_u64(&w, h);
    return call(s, &w, op, p);
}

static int req_name(fx_state* s, const char* key, int op, const char* name,
                    rep_t* p) {
    fx_wbuf w;
    begin(&w, key);
    fx_w_str(&w, name);
    return call(s, &w, op, p);
}

static void set_param(fx_state* s, const char* key, uint64_t h,
                      const char* name, double v) {
    fx_wbuf w;
    rep_t p;
    begin(&w, key);
    fx_w_u64(&w, h);
    fx_w_str(&w, name);
    fx_w_f64(&w, v);
    EXPECT_OK(call(s, &w, FX_OP_SET_PARAM, &p), p);
    r_i64(&p);
    r_i64(&p);
    r_end(&p);
    rep_free(&p);
}

static int req_get_param(fx_state* s, const char* key, uint64_t h,
                         const char* name, double* v, rep_t* p) {
    fx_wbuf w;
    begin(&w, key);
    fx_w_u64(&w, h);
    fx_w_str(&w, name);
    int st = call(s, &w, FX_OP_GET_PARAM, p);
    if (st == 0) {
        cr_assert_eq(fx_r_f64(&p->r, v), 0);
        r_end(p);
    }
    return st;
}

/* SERIALIZE: the bytes, malloc'd. */
static uint8_t* serialize(fx_state* s, const char* key, uint64_t h,
                          size_t* len) {
    rep_t p;
    EXPECT_OK(req_handle(s, key, FX_OP_SERIALIZE, h, &p), p);
    const void* b;
    uint64_t n;
    cr_assert_eq(fx_r_array(&p.r, 1, UINT64_MAX, &b, &n), 0);
    r_end(&p);
    uint8_t* out = malloc(n ? n : 1);
    memcpy(out, b, n);
    *len = n;
    rep_free(&p);
    return out;
}

static int req_upload(fx_state* s, const char* key, const char* name,
                      const void* bytes, size_t len, info_t* info,
                      rep_t* p) {
    fx_wbuf w;
    begin(&w, key);
    fx_w_str(&w, name);
    fx_w_array(&w, bytes, len, 1);
    int st = call(s, &w, FX_OP_UPLOAD, p);
    if (st == 0 && info) r_info(p, info);
    return st;
}

static void ping_ok(fx_state* s, const char* key, uint64_t client,
                    uint64_t conn, const char* tenant) {
    fx_wbuf w;
    rep_t p;
    begin(&w, key);
    EXPECT_OK(call_as(s, &w, FX_OP_PING, client, conn, &p), p);
    cr_assert_eq(r_u64(&p), (uint64_t)faissx_version());
    char t[80];
    cr_assert_eq(fx_r_str(&p.r, t, sizeof t - 1), 0);
    r_end(&p);
    if (tenant) {
        cr_assert_str_eq(t, tenant);
        cr_assert_str_eq(p.meta.tenant, tenant);
    }
    rep_free(&p);
}

/* A local index built the same way, for bit-identical comparisons. */
static FaissIndex* local_index(int d, const char* desc, int metric) {
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, d, desc, (FaissMetricType)metric));
    cr_assert(!faissx_index_is_remote(ix));
    return ix;
}

/* ---- authentication and tenants ----------------------------------------- */

Test(handler, ping_returns_tenant) {
    fx_state* s = new_state(KEYS, 0, 0);
    ping_ok(s, K_ALICE, CLIENT, CONN, "alice");
    ping_ok(s, K_BOB, CLIENT, CONN, "bob");
    ping_ok(s, K_RO, CLIENT, CONN, "alice");
    fx_state_free(s);

    /* Without keys, every request (whatever key it carries) is the tenant
     * "default". */
    s = new_state(NULL, 0, 0);
    ping_ok(s, "", CLIENT, CONN, "default");
    ping_ok(s, "anything", CLIENT, CONN, "default");
    fx_state_free(s);
}

/* LIMITS: any key, read-only too, learns the server's limits; a bad key
 * does not; a server playing an old one refuses it as an unknown op. */
Test(handler, limits_for_any_key) {
    fx_state* s = new_state(KEYS, 77, 999);
    fx_server_conf dflt;
    fx_server_conf_init(&dflt);
    const char* keys[] = {K_ALICE, K_RO};
    for (int i = 0; i < 2; i++) {
        fx_wbuf w;
        rep_t p;
        uint64_t mm = 0, mk = 0, mb = 0;
        begin(&w, keys[i]);
        EXPECT_OK(call(s, &w, FX_OP_LIMITS, &p), p);
        cr_assert_eq(fx_r_u64(&p.r, &mm), 0);
        cr_assert_eq(fx_r_u64(&p.r, &mk), 0);
        cr_assert_eq(fx_r_u64(&p.r, &mb), 0);
        cr_assert_eq(fx_r_end(&p.r), 0, "LIMITS: more fields than known");
        cr_assert_eq(mm, (uint64_t)dflt.max_message_bytes);
        cr_assert_eq(mk, 77);
        cr_assert_eq(mb, 999);
        rep_free(&p);
    }
    fx_wbuf w;
    rep_t p;
    begin(&w, "k4");
    EXPECT_ERR(call(s, &w, FX_OP_LIMITS, &p), p, FAISSX_E_AUTH, "API key");
    rep_free(&p);
    begin(&w, K_RO);
    fx_w_u64(&w, 1);
    EXPECT_ERR(call(s, &w, FX_OP_LIMITS, &p), p, FAISSX_E_PROTOCOL,
               "trailing bytes");
    rep_free(&p);
    fx_state_free(s);

    faissx_remote_disable();
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.test_old_protocol = 1;
    char err[256] = "";
    cr_assert_eq(fx_state_new(&c, &s, err, sizeof err), 0, "%s", err);
    begin(&w, "");
    EXPECT_ERR(call(s, &w, FX_OP_LIMITS, &p), p, FAISSX_E_UNSUPPORTED,
               "unknown operation 43");
    rep_free(&p);
    fx_state_free(s);
}

Test(handler, auth_errors) {
    fx_state* s = new_state(KEYS, 0, 0);
    fx_wbuf w;
    rep_t p;
    begin(&w, "");
    EXPECT_ERR(call(s, &w, FX_OP_PING, &p), p, FAISSX_E_AUTH,
               "requires an API key");
    rep_free(&p);
    begin(&w, "k4");
    EXPECT_ERR(call(s, &w, FX_OP_PING, &p), p, FAISSX_E_AUTH,
               "unknown API key");
    cr_assert(strstr(p.err, "k4") == NULL, "the key is echoed: %s", p.err);
    rep_free(&p);
    /* A key is matched exactly: no prefix, case or whitespace games. */
    const char* near[] = {"k", "k1 ", " k1", "K1", "k1:alice", "k10"};
    for (size_t i = 0; i < sizeof near / sizeof *near; i++) {
        begin(&w, near[i]);
        EXPECT_ERR(call(s, &w, FX_OP_PING, &p), p, FAISSX_E_AUTH, "API key");
        rep_free(&p);
    }
    /* Authentication comes before anything else: a bad key creates
     * nothing, and a malformed op body is not even looked at. */
    begin(&w, "bad");
    fx_w_str(&w, "x");
    fx_w_i64(&w, 8);
    fx_w_i64(&w, METRIC_L2);
    fx_w_str(&w, "Flat");
    EXPECT_ERR(call(s, &w, FX_OP_CREATE, &p), p, FAISSX_E_AUTH, "");
    rep_free(&p);
    begin(&w, "bad");
    fx_w_u64(&w, 1); /* truncated SEARCH */
    EXPECT_ERR(call(s, &w, FX_OP_SEARCH, &p), p, FAISSX_E_AUTH, "");
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 0);
    fx_state_free(s);
}

Test(handler, create_open_list_drop) {
    fx_state* s = new_state(KEYS, 0, 0);
    info_t ix, iy, io;
    uint64_t hx = create(s, K_ALICE, "x", 8, METRIC_L2, "Flat", &ix);
    uint64_t hy = create(s, K_ALICE, "y", 4, METRIC_INNER_PRODUCT, "Flat",
                         &iy);
    uint64_t hu = create(s, K_ALICE, "", 8, METRIC_L2, "Flat", NULL);
    cr_assert(hx != hy && hx != hu && hy != hu);
    cr_assert_eq(fx_state_index_count(s), 3);
    cr_assert(ix.kind & FX_KIND_FLAT);
    cr_assert_eq(ix.ntotal, 0);
    cr_assert_eq(ix.is_trained, 1);
    cr_assert(strstr(ix.cls, "IndexFlat") == ix.cls, "class '%s'", ix.cls);

    float* x = fxt_uniform(10, 8, 1);
    cr_assert_eq(add(s, K_ALICE, hx, 10, x, 8), 10);

    rep_t p;
    EXPECT_OK(req_name(s, K_ALICE, FX_OP_OPEN, "x", &p), p);
    r_info(&p, &io);
    rep_free(&p);
    cr_assert_eq(io.handle, hx);
    cr_assert_eq(io.d, 8);
    cr_assert_eq(io.ntotal, 10);
    cr_assert_eq(io.kind, ix.kind);
    cr_assert_str_eq(io.cls, ix.cls);
    /* INFO says the same. */
    info_t ii = info_of(s, K_ALICE, hx);
    cr_assert_eq(ii.handle, io.handle);
    cr_assert_eq(ii.d, io.d);
    cr_assert_eq(ii.metric, io.metric);
    cr_assert_eq(ii.is_trained, io.is_trained);
    cr_assert_eq(ii.ntotal, io.ntotal);
    cr_assert_eq(ii.kind, io.kind);
    cr_assert_str_eq(ii.cls, io.cls);

    /* LIST: the named ones only, sorted by name. */
    fx_wbuf w;
    begin(&w, K_ALICE);
    EXPECT_OK(call(s, &w, FX_OP_LIST, &p), p);
    cr_assert_eq(r_u64(&p), 2);
    char name[200];
    cr_assert_eq(fx_r_str(&p.r, name, 128), 0);
    cr_assert_str_eq(name, "x");
    cr_assert_eq(r_i64(&p), 8);
    cr_assert_eq(r_i64(&p), 10);
    cr_assert_eq(fx_r_str(&p.r, name, 128), 0);
    cr_assert_str_eq(name, "y");
    cr_assert_eq(r_i64(&p), 4);
    cr_assert_eq(r_i64(&p), 0);
    r_end(&p);
    rep_free(&p);

    /* DROP: gone by name and by handle. */
    EXPECT_OK(req_name(s, K_ALICE, FX_OP_DROP, "x", &p), p);
    r_end(&p);
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 2);
    EXPECT_ERR(req_name(s, K_ALICE, FX_OP_OPEN, "x", &p), p,
               FAISSX_E_NOT_FOUND, "no index named 'x'");
    rep_free(&p);
    EXPECT_ERR(req_info(s, K_ALICE, hx, NULL, &p), p, FAISSX_E_NOT_FOUND,
               "unknown index handle");
    rep_free(&p);
    EXPECT_ERR(req_name(s, K_ALICE, FX_OP_DROP, "x", &p), p,
               FAISSX_E_NOT_FOUND, "no index named 'x'");
    rep_free(&p);
    /* The name can be reused. */
    uint64_t hx2 = create(s, K_ALICE, "x", 2, METRIC_L2, "Flat", NULL);
    cr_assert(hx2 != hx);
    begin(&w, K_ALICE);
    EXPECT_OK(call(s, &w, FX_OP_LIST, &p), p);
    cr_assert_eq(r_u64(&p), 2);
    rep_free(&p);
    free(x);
    fx_state_free(s);
}

Test(handler, names_are_per_tenant) {
    fx_state* s = new_state(KEYS, 0, 0);
    uint64_t ha = create(s, K_ALICE, "x", 8, METRIC_L2, "Flat", NULL);
    uint64_t hb = create(s, K_BOB, "x", 4, METRIC_L2, "Flat", NULL);
    cr_assert(ha != hb);
    rep_t p;
    info_t i;
    EXPECT_OK(req_name(s, K_ALICE, FX_OP_OPEN, "x", &p), p);
    r_info(&p, &i);
    rep_free(&p);
    cr_assert_eq(i.handle, ha);
    cr_assert_eq(i.d, 8);
    EXPECT_OK(req_name(s, K_BOB, FX_OP_OPEN, "x", &p), p);
    r_info(&p, &i);
    rep_free(&p);
    cr_assert_eq(i.handle, hb);
    cr_assert_eq(i.d, 4);
    /* A read-only key of alice's sees alice's index. */
    EXPECT_OK(req_name(s, K_RO, FX_OP_OPEN, "x", &p), p);
    r_info(&p, &i);
    rep_free(&p);
    cr_assert_eq(i.handle, ha);
    /* Each LIST shows one index. */
    fx_wbuf w;
    begin(&w, K_BOB);
    EXPECT_OK(call(s, &w, FX_OP_LIST, &p), p);
    cr_assert_eq(r_u64(&p), 1);
    rep_free(&p);
    /* Dropping bob's leaves alice's. */
    EXPECT_OK(req_name(s, K_BOB, FX_OP_DROP, "x", &p), p);
    rep_free(&p);
    cr_assert_eq(info_of(s, K_ALICE, ha).d, 8);
    fx_state_free(s);
}

/* Bob's requests on alice's indexes. Each reply is recorded; after alice
 * deletes them, the same requests must get byte-identical replies. */
typedef struct {
    int status;
    size_t len;
    uint8_t body[512];
} snap_t;

static void snap(snap_t* out, const rep_t* p) {
    out->status = p->status;
    out->len = p->len - FX_HDR_SIZE;
    cr_assert(out->len <= sizeof out->body);
    memcpy(out->body, p->bytes + FX_HDR_SIZE, out->len);
}

enum { NPROBES = 14 };

static void bob_probes(fx_state* s, uint64_t ha, uint64_t hu, uint64_t hb,
                       snap_t out[NPROBES]) {
    float x[8] = {0};
    idx_t ids[1] = {5};
    rep_t p;
    fx_wbuf w;
    int i = 0;
#define KEEP()                                                              \
    do {                                                                    \
        cr_assert(p.status < 0, "bob's probe %d succeeded", i);             \
        snap(&out[i++], &p);                                                \
        rep_free(&p);                                                       \
    } while (0)
    req_name(s, K_BOB, FX_OP_OPEN, "secret", &p);
    KEEP();
    req_name(s, K_BOB, FX_OP_DROP, "secret", &p);
    KEEP();
    req_info(s, K_BOB, ha, NULL, &p);
    KEEP();
    req_info(s, K_BOB, hu, NULL, &p);
    KEEP();
    req_search(s, K_BOB, FX_OP_SEARCH, ha, 1, 1, x, 8, &p);
    KEEP();
    req_handle(s, K_BOB, FX_OP_RELEASE, hu, &p);
    KEEP();
    req_handle(s, K_BOB, FX_OP_RELEASE, ha, &p);
    KEEP();
    req_vecs(s, K_BOB, FX_OP_ADD, ha, 1, x, 8, &p);
    KEEP();
    req_handle(s, K_BOB, FX_OP_SERIALIZE, ha, &p);
    KEEP();
    req_handle(s, K_BOB, FX_OP_CLONE, hu, &p);
    KEEP();
    req_handle(s, K_BOB, FX_OP_RESET, ha, &p);
    KEEP();
    begin(&w, K_BOB); /* merge alice's into bob's */
    fx_w_u64(&w, hb);
    fx_w_u64(&w, ha);
    fx_w_i64(&w, 0);
    call(s, &w, FX_OP_MERGE_FROM, &p);
    KEEP();
    begin(&w, K_BOB); /* bob's into alice's */
    fx_w_u64(&w, ha);
    fx_w_u64(&w, hb);
    fx_w_i64(&w, 0);
    call(s, &w, FX_OP_MERGE_FROM, &p);
    KEEP();
    begin(&w, K_BOB);
    fx_w_u64(&w, ha);
    fx_w_i64(&w, FX_SEL_BATCH);
    fx_w_array(&w, ids, 1, sizeof(idx_t));
    call(s, &w, FX_OP_REMOVE_IDS, &p);
    KEEP();
    cr_assert_eq(i, NPROBES);
#undef KEEP
}

Test(handler, other_tenants_index_looks_missing) {
    fx_state* s = new_state(KEYS, 0, 0);
    uint64_t ha = create(s, K_ALICE, "secret", 8, METRIC_L2, "Flat", NULL);
    uint64_t hu = create(s, K_ALICE, "", 8, METRIC_L2, "Flat", NULL);
    uint64_t hb = create(s, K_BOB, "mine", 8, METRIC_L2, "Flat", NULL);
    float* x = fxt_uniform(10, 8, 3);
    add(s, K_ALICE, ha, 10, x, 8);

    snap_t before[NPROBES], after[NPROBES];
    bob_probes(s, ha, hu, hb, before);
    for (int i = 0; i < NPROBES; i++)
        cr_assert(before[i].status == FAISSX_E_NOT_FOUND,
                  "probe %d: status %d", i, before[i].status);
    /* Nothing of alice's changed. */
    cr_assert_eq(fx_state_index_count(s), 3);
    cr_assert_eq(info_of(s, K_ALICE, ha).ntotal, 10);
    cr_assert_eq(info_of(s, K_ALICE, hu).ntotal, 0);

    /* Now make them truly missing and ask again. */
    rep_t p;
    EXPECT_OK(req_name(s, K_ALICE, FX_OP_DROP, "secret", &p), p);
    rep_free(&p);
    EXPECT_OK(req_handle(s, K_ALICE, FX_OP_RELEASE, hu, &p), p);
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 1);
    bob_probes(s, ha, hu, hb, after);
    for (int i = 0; i < NPROBES; i++) {
        cr_assert_eq(before[i].status, after[i].status, "probe %d", i);
        cr_assert_eq(before[i].len, after[i].len, "probe %d", i);
        cr_assert(memcmp(before[i].body, after[i].body, before[i].len) == 0,
                  "probe %d: reply differs from a missing index's", i);
    }
    free(x);
    fx_state_free(s);
}

Test(handler, read_only_key) {
    fx_state* s = new_state(KEYS, 0, 0);
    const int d = 8;
    uint64_t h = create(s, K_ALICE, "x", d, METRIC_L2, "IDMap,Flat", NULL);
    uint64_t h2 = create(s, K_ALICE, "y", d, METRIC_L2, "IDMap,Flat", NULL);
    float* x = fxt_uniform(20, d, 4);
    idx_t ids[20];
    for (int i = 0; i < 20; i++) ids[i] = 100 + i;
    add_ids(s, K_ALICE, h, 20, x, d, ids);
    size_t nbytes;
    uint8_t* bytes = serialize(s, K_ALICE, h, &nbytes);

    /* Reads work. */
    ping_ok(s, K_RO, CLIENT, CONN, "alice");
    rep_t p;
    EXPECT_OK(req_name(s, K_RO, FX_OP_OPEN, "x", &p), p);
    rep_free(&p);
    fx_wbuf w;
    begin(&w, K_RO);
    EXPECT_OK(call(s, &w, FX_OP_LIST, &p), p);
    rep_free(&p);
    float D[6], Dr[6];
    idx_t I[6], Ir[6];
    search(s, K_RO, h, 2, 3, x, d, D, I);
    search(s, K_ALICE, h, 2, 3, x, d, Dr, Ir);
    FXT_SAME(D, Dr, sizeof D);
    FXT_SAME(I, Ir, sizeof I);
    cr_assert_eq(I[0], 100);
    EXPECT_OK(req_search(s, K_RO, FX_OP_ASSIGN, h, 1, 2, x, d, &p), p);
    rep_free(&p);
    size_t nb2;
    uint8_t* b2 = serialize(s, K_RO, h, &nb2);
    cr_assert_eq(nb2, nbytes);
    free(b2);
    EXPECT_OK(req_info(s, K_RO, h, NULL, &p), p);
    rep_free(&p);
    double v = -1;
    EXPECT_OK(req_get_param(s, K_RO, h, "verbose", &v, &p), p);
    rep_free(&p);
    cr_assert_eq(v, 0);

    /* Writes are refused. */
#define RO_REFUSED(st)                                                      \
    do {                                                                    \
        EXPECT_ERR((st), p, FAISSX_E_PERMISSION, "read-only");              \
        rep_free(&p);                                                       \
    } while (0)
    RO_REFUSED(req_vecs(s, K_RO, FX_OP_ADD, h, 1, x, d, &p));
    RO_REFUSED(req_vecs(s, K_RO, FX_OP_TRAIN, h, 1, x, d, &p));
    begin(&w, K_RO);
    fx_w_u64(&w, h);
    fx_w_i64(&w, 1);
    fx_w_array(&w, x, d, sizeof(float));
    fx_w_array(&w, ids, 1, sizeof(idx_t));
    RO_REFUSED(call(s, &w, FX_OP_ADD_WITH_IDS, &p));
    begin(&w, K_RO);
    fx_w_str(&w, "z");
    fx_w_i64(&w, d);
    fx_w_i64(&w, METRIC_L2);
    fx_w_str(&w, "Flat");
    RO_REFUSED(call(s, &w, FX_OP_CREATE, &p));
    RO_REFUSED(req_name(s, K_RO, FX_OP_DROP, "x", &p));
    RO_REFUSED(req_handle(s, K_RO, FX_OP_RESET, h, &p));
    begin(&w, K_RO);
    fx_w_u64(&w, h);
    fx_w_i64(&w, FX_SEL_RANGE);
    fx_w_i64(&w, 0);
    fx_w_i64(&w, 1000);
    RO_REFUSED(call(s, &w, FX_OP_REMOVE_IDS, &p));
    RO_REFUSED(req_upload(s, K_RO, "", bytes, nbytes, NULL, &p));
    RO_REFUSED(req_handle(s, K_RO, FX_OP_CLONE, h, &p));
    begin(&w, K_RO);
    fx_w_u64(&w, h2);
    fx_w_u64(&w, h);
    fx_w_i64(&w, 0);
    RO_REFUSED(call(s, &w, FX_OP_MERGE_FROM, &p));
    /* SET_PARAM changes the index every client sees
     * (read_only_key_cannot_set_params) */
    begin(&w, K_RO);
    fx_w_u64(&w, h);
    fx_w_str(&w, "verbose");
    fx_w_f64(&w, 1);
    RO_REFUSED(call(s, &w, FX_OP_SET_PARAM, &p));
#undef RO_REFUSED
    /* Nothing changed. */
    cr_assert_eq(fx_state_index_count(s), 2);
    cr_assert_eq(info_of(s, K_ALICE, h).ntotal, 20);
    cr_assert_eq(info_of(s, K_ALICE, h2).ntotal, 0);
    free(bytes);
    free(x);
    fx_state_free(s);
}

/* ---- names -------------------------------------------------------------- */

Test(handler, invalid_names) {
    fx_state* s = new_state(KEYS, 0, 0);
    char long200[201], long129[130], long128[129];
    memset(long200, 'a', 200);
    long200[200] = 0;
    memset(long129, 'b', 129);
    long129[129] = 0;
    memset(long128, 'c', 128);
    long128[128] = 0;
    const char* bad[] = {"../x", "a/b", ".hidden", long200, long129, "sp ace",
                         "tab\t", "caf\xc3\xa9", "a:b", "x*"};
    uint64_t ref = create(s, K_ALICE, "ref", 4, METRIC_L2, "Flat", NULL);
    size_t nbytes;
    uint8_t* bytes = serialize(s, K_ALICE, ref, &nbytes);
    rep_t p;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fx_wbuf w;
        begin(&w, K_ALICE);
        fx_w_str(&w, bad[i]);
        fx_w_i64(&w, 4);
        fx_w_i64(&w, METRIC_L2);
        fx_w_str(&w, "Flat");
        EXPECT_ERR(call(s, &w, FX_OP_CREATE, &p), p, FAISSX_E_INVALID,
                   "invalid index name");
        rep_free(&p);
        EXPECT_ERR(req_upload(s, K_ALICE, bad[i], bytes, nbytes, NULL, &p),
                   p, FAISSX_E_INVALID, "invalid index name");
        rep_free(&p);
        /* No index can have such a name: OPEN and DROP fail. */
        cr_assert_lt(req_name(s, K_ALICE, FX_OP_OPEN, bad[i], &p), 0);
        rep_free(&p);
        cr_assert_lt(req_name(s, K_ALICE, FX_OP_DROP, bad[i], &p), 0);
        rep_free(&p);
    }
    cr_assert_lt(req_name(s, K_ALICE, FX_OP_OPEN, "", &p), 0);
    rep_free(&p);
    cr_assert_lt(req_name(s, K_ALICE, FX_OP_DROP, "", &p), 0);
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 1);
    /* The edges of the valid set. */
    create(s, K_ALICE, long128, 4, METRIC_L2, "Flat", NULL);
    create(s, K_ALICE, "a.b-c_D9", 4, METRIC_L2, "Flat", NULL);
    create(s, K_ALICE, "x.", 4, METRIC_L2, "Flat", NULL);
    /* An empty name is an unnamed index, not a name. */
    create(s, K_ALICE, "", 4, METRIC_L2, "Flat", NULL);
    fx_wbuf w;
    begin(&w, K_ALICE);
    EXPECT_OK(call(s, &w, FX_OP_LIST, &p), p);
    cr_assert_eq(r_u64(&p), 4);
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 5);
    free(bytes);
    fx_state_free(s);
}

Test(handler, duplicate_name) {
    fx_state* s = new_state(KEYS, 0, 0);
    uint64_t h = create(s, K_ALICE, "dup", 4, METRIC_L2, "Flat", NULL);
    size_t nbytes;
    uint8_t* bytes = serialize(s, K_ALICE, h, &nbytes);
    fx_wbuf w;
    rep_t p;
    begin(&w, K_ALICE);
    fx_w_str(&w, "dup");
    fx_w_i64(&w, 8);
    fx_w_i64(&w, METRIC_L2);
    fx_w_str(&w, "Flat");
    EXPECT_ERR(call(s, &w, FX_OP_CREATE, &p), p, FAISSX_E_EXISTS,
               "an index named 'dup' already exists");
    rep_free(&p);
    EXPECT_ERR(req_upload(s, K_ALICE, "dup", bytes, nbytes, NULL, &p), p,
               FAISSX_E_EXISTS, "already exists");
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 1);
    cr_assert_eq(info_of(s, K_ALICE, h).d, 4, "the original was replaced");
    /* Unnamed indexes never collide. */
    create(s, K_ALICE, "", 4, METRIC_L2, "Flat", NULL);
    create(s, K_ALICE, "", 4, METRIC_L2, "Flat", NULL);
    cr_assert_eq(fx_state_index_count(s), 3);
    free(bytes);
    fx_state_free(s);
}

/* ---- validation and limits ---------------------------------------------- */

Test(handler, wrong_array_lengths) {
    fx_state* s = new_state(KEYS, 0, 0);
    const int d = 8;
    uint64_t h = create(s, K_ALICE, "", d, METRIC_L2, "IDMap,Flat", NULL);
    uint64_t hf = create(s, K_ALICE, "", d, METRIC_L2, "Flat", NULL);
    float* x = fxt_uniform(10, d, 5);
    idx_t ids[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    add(s, K_ALICE, hf, 10, x, d);
    rep_t p;
    fx_wbuf w;
    /* x with 3*8-1 elements for n = 3: the dimension is wrong. */
    EXPECT_ERR(req_vecs(s, K_ALICE, FX_OP_ADD, hf, 3, x, 3 * d - 1, &p), p,
               FAISSX_E_INVALID, "x has 23 elements, expected 24");
    rep_free(&p);
    EXPECT_ERR(req_vecs(s, K_ALICE, FX_OP_ADD, hf, 3, x, 3 * d + 1, &p), p,
               FAISSX_E_INVALID, "x has 25 elements, expected 24");
    rep_free(&p);
    EXPECT_ERR(req_vecs(s, K_ALICE, FX_OP_TRAIN, hf, 2, x, 3 * d, &p), p,
               FAISSX_E_INVALID, "x has 24 elements, expected 16");
    rep_free(&p);
    EXPECT_ERR(req_search(s, K_ALICE, FX_OP_SEARCH, hf, 2, 1, x, 2 * d - 2,
                          &p),
               p, FAISSX_E_INVALID, "x has 14 elements, expected 16");
    rep_free(&p);
    EXPECT_ERR(req_search(s, K_ALICE, FX_OP_ASSIGN, hf, 1, 1, x, d + 8, &p),
               p, FAISSX_E_INVALID, "x has");
    rep_free(&p);
    begin(&w, K_ALICE);
    fx_w_u64(&w, h);
    fx_w_i64(&w, 3);
    fx_w_array(&w, x, 3 * d, sizeof(float));
    fx_w_array(&w, ids, 2, sizeof(idx_t));
    EXPECT_ERR(call(s, &w, FX_OP_ADD_WITH_IDS, &p), p, FAISSX_E_INVALID,
               "ids has 2 elements, expected 3");
    rep_free(&p);
    begin(&w, K_ALICE); /* RESIDUAL keys */
    fx_w_u64(&w, hf);
    fx_w_i64(&w, 2);
    fx_w_array(&w, x, 2 * d, sizeof(float));
    fx_w_array(&w, ids, 3, sizeof(idx_t));
    EXPECT_ERR(call(s, &w, FX_OP_RESIDUAL, &p), p, FAISSX_E_INVALID,
               "keys has 3 elements, expected 2");
    rep_free(&p);
    begin(&w, K_ALICE); /* SA_DECODE codes: code size is 4*d */
    fx_w_u64(&w, hf);
    fx_w_i64(&w, 2);
    fx_w_array(&w, x, 2 * 4 * d - 1, 1);
    EXPECT_ERR(call(s, &w, FX_OP_SA_DECODE, &p), p, FAISSX_E_INVALID,
               "codes has 63 elements, expected 64");
    rep_free(&p);
    begin(&w, K_ALICE);
    fx_w_u64(&w, hf);
    fx_w_i64(&w, 2);
    fx_w_f64(&w, 1.0);
    fx_w_array(&w, x, d, sizeof(float));
    EXPECT_ERR(call(s, &w, FX_OP_RANGE_SEARCH, &p), p, FAISSX_E_INVALID,
               "x has 8 elements, expected 16");
    rep_free(&p);
    cr_assert_eq(info_of(s, K_ALICE, hf).ntotal, 10);
    cr_assert_eq(info_of(s, K_ALICE, h).ntotal, 0);
    free(x);
    fx_state_free(s);
}

Test(handler, non_finite_vectors) {
    fx_state* s = new_state(KEYS, 0, 0);
    const int d = 4;
    uint64_t h = create(s, K_ALICE, "", d, METRIC_L2, "Flat", NULL);
    float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    add(s, K_ALICE, h, 3, x, d);
    x[6] = NAN;
    rep_t p;
    EXPECT_ERR(req_vecs(s, K_ALICE, FX_OP_ADD, h, 3, x, 12, &p), p,
               FAISSX_E_INVALID, "vector 1, component 2");
    cr_assert(strstr(p.err, "add") == p.err, "not prefixed with the op: %s",
              p.err);
    rep_free(&p);
    EXPECT_ERR(req_search(s, K_ALICE, FX_OP_SEARCH, h, 3, 1, x, 12, &p), p,
               FAISSX_E_INVALID, "non-finite");
    rep_free(&p);
    x[6] = -INFINITY;
    EXPECT_ERR(req_search(s, K_ALICE, FX_OP_ASSIGN, h, 3, 1, x, 12, &p), p,
               FAISSX_E_INVALID, "non-finite");
    rep_free(&p);
    EXPECT_ERR(req_vecs(s, K_ALICE, FX_OP_TRAIN, h, 3, x, 12, &p), p,
               FAISSX_E_INVALID, "non-finite");
    rep_free(&p);
    cr_assert_eq(info_of(s, K_ALICE, h).ntotal, 3);
    /* SET_PARAM values must be finite too. */
    fx_wbuf w;
    begin(&w, K_ALICE);
    fx_w_u64(&w, h);
    fx_w_str(&w, "verbose");
    fx_w_f64(&w, NAN);
    EXPECT_ERR(call(s, &w, FX_OP_SET_PARAM, &p), p, FAISSX_E_INVALID,
               "not finite");
    rep_free(&p);
    fx_state_free(s);
}

Test(handler, k_and_batch_limits) {
    fx_state* s = new_state(KEYS, 20, 50);
    const int d = 4;
    uint64_t h = create(s, K_ALICE, "", d, METRIC_L2, "Flat", NULL);
    float* x = fxt_uniform(60, d, 6);
    cr_assert_eq(add(s, K_ALICE, h, 50, x, d), 50);
    rep_t p;
    const int ops[2] = {FX_OP_SEARCH, FX_OP_ASSIGN};
    for (int o = 0; o < 2; o++) {
        EXPECT_ERR(req_search(s, K_ALICE, ops[o], h, 1, 0, x, d, &p), p,
                   FAISSX_E_INVALID, "k must be > 0");
        rep_free(&p);
        EXPECT_ERR(req_search(s, K_ALICE, ops[o], h, 1, -3, x, d, &p), p,
                   FAISSX_E_INVALID, "k must be > 0");
        rep_free(&p);
        EXPECT_ERR(req_search(s, K_ALICE, ops[o], h, 1, 21, x, d, &p), p,
                   FAISSX_E_LIMIT, "limit of 20");
        rep_free(&p);
        EXPECT_ERR(req_search(s, K_ALICE, ops[o], h, 1, INT64_MAX, x, d, &p),
                   p, FAISSX_E_LIMIT, "exceeds the server limit");
        rep_free(&p);
        EXPECT_OK(req_search(s, K_ALICE, ops[o], h, 1, 20, x, d, &p), p);
        rep_free(&p);
        EXPECT_ERR(req_search(s, K_ALICE, ops[o], h, 51, 1, x, 51 * d, &p),
                   p, FAISSX_E_LIMIT, "batch of 51 vectors");
        rep_free(&p);
        EXPECT_ERR(req_search(s, K_ALICE, ops[o], h, -1, 1, x, 0, &p), p,
                   FAISSX_E_INVALID, "n must be >= 0");
        rep_free(&p);
    }
    /* n over the limit is refused before the array is even looked at. */
    EXPECT_ERR(req_vecs(s, K_ALICE, FX_OP_ADD, h, 51, x, 51 * d, &p), p,
               FAISSX_E_LIMIT, "limit of 50");
    rep_free(&p);
    EXPECT_ERR(req_vecs(s, K_ALICE, FX_OP_ADD, h, INT64_MAX, x, 4, &p), p,
               FAISSX_E_LIMIT, "");
    rep_free(&p);
    fx_wbuf w;
    begin(&w, K_ALICE);
    fx_w_u64(&w, h);
    fx_w_i64(&w, 0);
    fx_w_i64(&w, 51);
    /* past ntotal: the library's range check answers first, as locally */
    EXPECT_ERR(call(s, &w, FX_OP_RECONSTRUCT_N, &p), p, FAISSX_E_INVALID,
               "outside");
    rep_free(&p);
    begin(&w, K_ALICE); /* ni within the limit but past ntotal */
    fx_w_u64(&w, h);
    fx_w_i64(&w, 40);
    fx_w_i64(&w, 20);
    EXPECT_ERR(call(s, &w, FX_OP_RECONSTRUCT_N, &p), p, FAISSX_E_INVALID,
               "outside");
    rep_free(&p);
    idx_t keys[51] = {0};
    begin(&w, K_ALICE);
    fx_w_u64(&w, h);
    fx_w_array(&w, keys, 51, sizeof(idx_t));
    cr_assert_lt(call(s, &w, FX_OP_RECONSTRUCT_KEYS, &p), 0);
    rep_free(&p);
    /* An empty search is fine. */
    EXPECT_OK(req_search(s, K_ALICE, FX_OP_SEARCH, h, 0, 5, x, 0, &p), p);
    r_array(&p, sizeof(float), 0);
    r_array(&p, sizeof(idx_t), 0);
    r_end(&p);
    rep_free(&p);
    cr_assert_eq(info_of(s, K_ALICE, h).ntotal, 50);
    free(x);
    fx_state_free(s);
}

Test(handler, unknown_handles) {
    fx_state* s = new_state(KEYS, 0, 0);
    uint64_t h = create(s, K_ALICE, "", 4, METRIC_L2, "Flat", NULL);
    float x[4] = {0};
    rep_t p;
    const uint64_t bad[] = {0, h + 1, h - 1, UINT64_MAX, 12345};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[64];
        snprintf(want, sizeof want, "unknown index handle %llu",
                 (unsigned long long)bad[i]);
        const int hops[] = {FX_OP_INFO,     FX_OP_RELEASE,  FX_OP_RESET,
                            FX_OP_SERIALIZE, FX_OP_CLONE,   FX_OP_SA_CODE_SIZE};
        for (size_t j = 0; j < sizeof hops / sizeof *hops; j++) {
            EXPECT_ERR(req_handle(s, K_ALICE, hops[j], bad[i], &p), p,
                       FAISSX_E_NOT_FOUND, want);
            rep_free(&p);
        }
        EXPECT_ERR(req_search(s, K_ALICE, FX_OP_SEARCH, bad[i], 1, 1, x, 4,
                              &p),
                   p, FAISSX_E_NOT_FOUND, want);
        rep_free(&p);
        EXPECT_ERR(req_vecs(s, K_ALICE, FX_OP_ADD, bad[i], 1, x, 4, &p), p,
                   FAISSX_E_NOT_FOUND, want);
        rep_free(&p);
    }
    cr_assert_eq(fx_state_index_count(s), 1);
    fx_state_free(s);
}

/* ---- malformed messages ------------------------------------------------- */

Test(handler, malformed_headers) {
    fx_state* s = new_state(KEYS, 0, 0);
    rep_t p;
    fx_wbuf w;
    /* Unknown ops: 0, the first unassigned one, the largest. The reply
     * carries op 0 (an op this server does not know is not echoed). */
    const int unknown[] = {0, FX_OP_MAX_, 0xffff};
    for (size_t i = 0; i < 3; i++) {
        begin(&w, K_ALICE);
        EXPECT_ERR(call(s, &w, unknown[i], &p), p, FAISSX_E_UNSUPPORTED,
                   "unknown operation");
        cr_assert_eq(p.h.op, 0, "reply op %d", p.h.op);
        rep_free(&p);
    }
    /* A reply sent as a request. */
    begin(&w, K_ALICE);
    fx_hdr h = {0};
    h.op = FX_OP_PING;
    h.flags = FX_FLAG_REPLY;
    fx_w_finish(&w, &h);
    EXPECT_ERR(send_raw(s, w.data, w.len, CONN, &p), p, FAISSX_E_PROTOCOL,
               "reply");
    rep_free(&p);
    /* The other flag bits are reserved: must be 0. */
    h.flags = 0x80;
    fx_w_finish(&w, &h);
    EXPECT_ERR(send_raw(s, w.data, w.len, CONN, &p), p, FAISSX_E_INVALID,
               "unknown header flags 0x80");
    rep_free(&p);

    uint8_t* m = malloc(w.len + 8);
    memcpy(m, w.data, w.len);
    h.flags = 0;
    fx_w_finish(&w, &h);
    memcpy(m, w.data, w.len);
    m[0] ^= 0xff;
    EXPECT_ERR(send_raw(s, m, w.len, CONN, &p), p, FAISSX_E_INVALID,
               "bad magic");
    rep_free(&p);
    memcpy(m, w.data, w.len);
    m[4] = 9;
    EXPECT_ERR(send_raw(s, m, w.len, CONN, &p), p, FAISSX_E_INVALID,
               "version");
    rep_free(&p);
    memcpy(m, w.data, w.len);
    m[12] += 8; /* body_len lies */
    EXPECT_ERR(send_raw(s, m, w.len, CONN, &p), p, FAISSX_E_INVALID, "body");
    rep_free(&p);
    /* Every message shorter than the full one, header not patched. */
    for (size_t l = 0; l < w.len; l++) {
        uint8_t* c = malloc(l ? l : 1);
        memcpy(c, w.data, l);
        cr_assert_lt(send_raw(s, c, l, CONN, &p), 0, "%zu bytes accepted",
                     l);
        rep_free(&p);
        free(c);
    }
    free(m);
    fx_w_free(&w);
    /* Still serving. */
    ping_ok(s, K_ALICE, CLIENT, CONN, "alice");
    fx_state_free(s);
}

/* One valid request per op, against a fixed set of indexes. */
typedef struct {
    fx_state* s;
    uint64_t a; /* named "base": Flat d=8, 20 vectors */
    uint64_t b; /* unnamed IDMap,Flat d=8, 20 vectors, ids 100.. */
    uint64_t c; /* unnamed Flat d=8, 10 vectors */
    uint8_t* bytes; /* SERIALIZE of a */
    size_t nbytes;
    float* x;
} fixture_t;

#define FD 8

static void fixture(fixture_t* f) {
    f->s = new_state(KEYS, 100, 1000);
    f->x = fxt_uniform(20, FD, 11);
    idx_t ids[20];
    for (int i = 0; i < 20; i++) ids[i] = 100 + i;
    f->a = create(f->s, K_ALICE, "base", FD, METRIC_L2, "Flat", NULL);
    f->b = create(f->s, K_ALICE, "", FD, METRIC_L2, "IDMap,Flat", NULL);
    f->c = create(f->s, K_ALICE, "", FD, METRIC_L2, "Flat", NULL);
    add(f->s, K_ALICE, f->a, 20, f->x, FD);
    add_ids(f->s, K_ALICE, f->b, 20, f->x, FD, ids);
    add(f->s, K_ALICE, f->c, 10, f->x, FD);
    f->bytes = serialize(f->s, K_ALICE, f->a, &f->nbytes);
}

static void fixture_free(fixture_t* f) {
    free(f->bytes);
    free(f->x);
    fx_state_free(f->s);
}

/* A selector exercising every type: or(and(range, not(batch)), bitmap). */
static void write_selector(fx_wbuf* w) {
    const idx_t batch[3] = {101, 102, 500};
    const uint8_t bitmap[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                0x05, 0, 0x80}; /* 104, 106, 127 */
    fx_w_i64(w, FX_SEL_OR);
    fx_w_i64(w, FX_SEL_AND);
    fx_w_i64(w, FX_SEL_RANGE);
    fx_w_i64(w, 100);
    fx_w_i64(w, 104);
    fx_w_i64(w, FX_SEL_NOT);
    fx_w_i64(w, FX_SEL_BATCH);
    fx_w_array(w, batch, 3, sizeof(idx_t));
    fx_w_i64(w, FX_SEL_BITMAP);
    fx_w_array(w, bitmap, 16, 1);
}

static void build_request(const fixture_t* f, int op, fx_wbuf* w) {
    const float* x = f->x;
    const idx_t keys[2] = {1, 3};
    begin(w, K_ALICE);
    switch (op) {
    case FX_OP_PING:
    case FX_OP_LIST: break;
    case FX_OP_CREATE:
        fx_w_str(w, "t1");
        fx_w_i64(w, FD);
        fx_w_i64(w, METRIC_INNER_PRODUCT);
        fx_w_str(w, "Flat");
        break;
    case FX_OP_OPEN:
    case FX_OP_DROP: fx_w_str(w, "base"); break;
    case FX_OP_RELEASE: fx_w_u64(w, f->c); break;
    case FX_OP_INFO:
    case FX_OP_RESET:
    case FX_OP_SA_CODE_SIZE:
    case FX_OP_SERIALIZE:
    case FX_OP_CLONE: fx_w_u64(w, f->a); break;
    case FX_OP_TRAIN:
    case FX_OP_ADD:
    case FX_OP_SA_ENCODE:
        fx_w_u64(w, f->a);
        fx_w_i64(w, 3);
        fx_w_array(w, x, 3 * FD, sizeof(float));
        break;
    case FX_OP_ADD_WITH_IDS:
        fx_w_u64(w, f->b);
        fx_w_i64(w, 2);
        fx_w_array(w, x, 2 * FD, sizeof(float));
        fx_w_array(w, keys, 2, sizeof(idx_t));
        break;
    case FX_OP_SEARCH:
    case FX_OP_ASSIGN:
        fx_w_u64(w, f->a);
        fx_w_i64(w, 2);
        fx_w_i64(w, 3);
        fx_w_array(w, x, 2 * FD, sizeof(float));
        break;
    case FX_OP_RANGE_SEARCH:
        fx_w_u64(w, f->a);
        fx_w_i64(w, 2);
        fx_w_f64(w, 0.5);
        fx_w_array(w, x, 2 * FD, sizeof(float));
        break;
    case FX_OP_REMOVE_IDS:
        fx_w_u64(w, f->b);
        write_selector(w);
        break;
    case FX_OP_RECONSTRUCT_N:
        fx_w_u64(w, f->a);
        fx_w_i64(w, 2);
        fx_w_i64(w, 5);
        break;
    case FX_OP_RECONSTRUCT_KEYS:
        fx_w_u64(w, f->a);
        fx_w_array(w, keys, 2, sizeof(idx_t));
        break;
    case FX_OP_RESIDUAL:
        fx_w_u64(w, f->a);
        fx_w_i64(w, 2);
        fx_w_array(w, x, 2 * FD, sizeof(float));
        fx_w_array(w, keys, 2, sizeof(idx_t));
        break;
    case FX_OP_SA_DECODE:
        fx_w_u64(w, f->a);
        fx_w_i64(w, 2);
        fx_w_array(w, x, 2 * FD * 4, 1);
        break;
    case FX_OP_SET_PARAM:
        fx_w_u64(w, f->a);
        fx_w_str(w, "verbose");
        fx_w_f64(w, 0);
        break;
    case FX_OP_GET_PARAM:
        fx_w_u64(w, f->a);
        fx_w_str(w, "verbose");
        break;
    case FX_OP_UPLOAD:
        fx_w_str(w, "up");
        fx_w_array(w, f->bytes, f->nbytes, 1);
        break;
    case FX_OP_MERGE_FROM:
        fx_w_u64(w, f->a);
        fx_w_u64(w, f->c);
        fx_w_i64(w, 0);
        break;
    default: cr_assert_fail("no request for op %d", op);
    }
}

/* The registry as seen from outside: index count and each ntotal. */
static void fingerprint(const fixture_t* f, int64_t out[4]) {
    out[0] = (int64_t)fx_state_index_count(f->s);
    out[1] = info_of(f->s, K_ALICE, f->a).ntotal;
    out[2] = info_of(f->s, K_ALICE, f->b).ntotal;
    out[3] = info_of(f->s, K_ALICE, f->c).ntotal;
}

Test(handler, truncated_bodies_every_op) {
    for (int op = FX_OP_PING; op <= FX_OP_MERGE_FROM; op++) {
        fixture_t f;
        fixture(&f);
        int64_t fp0[4], fp1[4];
        fingerprint(&f, fp0);
        fx_wbuf full;
        build_request(&f, op, &full);
        fx_hdr h = {0};
        h.op = (uint16_t)op;
        h.client_id = CLIENT;
        fx_w_finish(&full, &h);
        size_t blen = full.len - FX_HDR_SIZE;
        /* Every prefix of the body, with the header telling the truth
         * about its length, so the body reader is what must refuse it. */
        for (size_t cut = 0; cut < blen; cut++) {
            uint8_t* m = malloc(FX_HDR_SIZE + cut);
            memcpy(m, full.data, FX_HDR_SIZE + cut);
            fx_hdr t = h;
            t.magic = FX_PROTO_MAGIC;
            t.version = FX_PROTO_VERSION;
            t.body_len = (uint32_t)cut;
            fx_hdr_encode(&t, m);
            rep_t p;
            int st = send_raw(f.s, m, FX_HDR_SIZE + cut, CONN, &p);
            cr_assert_lt(st, 0, "%s: a %zu-byte prefix of the %zu-byte body "
                         "was accepted", fx_op_name(op), cut, blen);
            rep_free(&p);
            free(m);
        }
        fingerprint(&f, fp1);
        cr_assert_eq(memcmp(fp0, fp1, sizeof fp0), 0,
                     "%s: a truncated request changed the state",
                     fx_op_name(op));
        /* Trailing garbage: refused, nothing changes. */
        for (size_t extra = 1; extra <= 16; extra += 7) {
            uint8_t* m = calloc(1, full.len + extra);
            memcpy(m, full.data, full.len);
            fx_hdr t = h;
            t.magic = FX_PROTO_MAGIC;
            t.version = FX_PROTO_VERSION;
            t.body_len = (uint32_t)(blen + extra);
            fx_hdr_encode(&t, m);
            rep_t p;
            int st = send_raw(f.s, m, full.len + extra, CONN, &p);
            cr_assert_lt(st, 0, "%s: %zu trailing bytes accepted",
                         fx_op_name(op), extra);
            rep_free(&p);
            free(m);
        }
        fingerprint(&f, fp1);
        cr_assert_eq(memcmp(fp0, fp1, sizeof fp0), 0);
        /* The full request is valid (so the prefixes were meaningful). */
        rep_t p;
        int st = send_raw(f.s, full.data, full.len, CONN, &p);
        cr_assert_eq(st, 0, "%s: the valid request failed: %s",
                     fx_op_name(op), p.err);
        rep_free(&p);
        fx_w_free(&full);
        fixture_free(&f);
    }
}

/* ---- results against a local index -------------------------------------- */

static void compare_search(const char* desc, int metric, int train_n,
                           const char* param, double value) {
    fx_state* s = new_state(NULL, 0, 0);
    const int d = 16, nb = 700, nq = 12, k = 7;
    float* xb = fxt_clustered(nb, d, 10, 0.1f, 21);
    float* xq = fxt_clustered(nq, d, 10, 0.1f, 22);
    uint64_t h = create(s, "", "", d, metric, desc, NULL);
    FaissIndex* loc = local_index(d, desc, metric);
    if (train_n) {
        train(s, "", h, train_n, xb, d);
        FXT_OK(faiss_Index_train(loc, train_n, xb));
    }
    cr_assert_eq(add(s, "", h, nb, xb, d), nb);
    FXT_OK(faiss_Index_add(loc, nb, xb));
    if (param) {
        set_param(s, "", h, param, value);
        FaissParameterSpace* ps = NULL;
        FXT_OK(faiss_ParameterSpace_new(&ps));
        FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, loc, param,
                                                         value));
        faiss_ParameterSpace_free(ps);
    }
    float D[12 * 7], Dl[12 * 7];
    idx_t I[12 * 7], Il[12 * 7];
    search(s, "", h, nq, k, xq, d, D, I);
    FXT_OK(faiss_Index_search(loc, nq, xq, k, Dl, Il));
    FXT_SAME(I, Il, sizeof I);
    FXT_SAME(D, Dl, sizeof D);

    /* ASSIGN = the labels of a search. */
    rep_t p;
    EXPECT_OK(req_search(s, "", FX_OP_ASSIGN, h, nq, k, xq, nq * d, &p), p);
    const idx_t* A = r_array(&p, sizeof(idx_t), nq * k);
    FXT_OK(faiss_Index_assign(loc, nq, xq, Il, k));
    FXT_SAME(A, Il, sizeof Il);
    r_end(&p);
    rep_free(&p);

    /* RANGE_SEARCH, with a radius that catches some neighbours. */
    float radius = metric == METRIC_L2 ? D[3] : D[3 * k + 2];
    fx_wbuf w;
    begin(&w, "");
    fx_w_u64(&w, h);
    fx_w_i64(&w, nq);
    fx_w_f64(&w, radius);
    fx_w_array(&w, xq, nq * d, sizeof(float));
    int st = call(s, &w, FX_OP_RANGE_SEARCH, &p);
    FaissRangeSearchResult* res = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&res, nq));
    int lrc = faiss_Index_range_search(loc, nq, xq, radius, res);
    /* Some indexes (HNSW) have no range search: both sides refuse. */
    cr_assert_eq(st == 0, lrc == 0, "remote %d (%s), local %d (%s)", st,
                 p.err, lrc, lrc ? faiss_get_last_error() : "");
    if (st != 0) {
        faiss_RangeSearchResult_free(res);
        rep_free(&p);
        goto reconstruct;
    }
    size_t* lims;
    idx_t* labels;
    float* dist;
    faiss_RangeSearchResult_lims(res, &lims);
    faiss_RangeSearchResult_labels(res, &labels, &dist);
    const void* rl = r_array(&p, 8, nq + 1);
    FXT_SAME(rl, lims, (nq + 1) * sizeof(size_t));
    cr_assert_gt(lims[nq], 0, "radius caught nothing");
    const void* ri = r_array(&p, sizeof(idx_t), lims[nq]);
    const void* rd = r_array(&p, sizeof(float), lims[nq]);
    r_end(&p);
    FXT_SAME(ri, labels, lims[nq] * sizeof(idx_t));
    FXT_SAME(rd, dist, lims[nq] * sizeof(float));
    faiss_RangeSearchResult_free(res);
    rep_free(&p);

reconstruct:
    /* RECONSTRUCT_N agrees too (when the index has it). */
    begin(&w, "");
    fx_w_u64(&w, h);
    fx_w_i64(&w, 5);
    fx_w_i64(&w, 3);
    if (call(s, &w, FX_OP_RECONSTRUCT_N, &p) == 0) {
        float R[3 * 16];
        FXT_OK(faiss_Index_reconstruct_n(loc, 5, 3, R));
        FXT_SAME(r_array(&p, sizeof(float), 3 * d), R, sizeof R);
        r_end(&p);
    } else {
        float R[3 * 16];
        cr_assert_neq(faiss_Index_reconstruct_n(loc, 5, 3, R), 0,
                      "remote failed (%s), local did not", p.err);
    }
    rep_free(&p);
    free(xb);
    free(xq);
    faiss_Index_free(loc);
    fx_state_free(s);
}

Test(handler, search_flat_l2_matches_local) {
    compare_search("Flat", METRIC_L2, 0, NULL, 0);
}
Test(handler, search_flat_ip_matches_local) {
    compare_search("Flat", METRIC_INNER_PRODUCT, 0, NULL, 0);
}
Test(handler, search_ivf_matches_local) {
    compare_search("IVF16,Flat", METRIC_L2, 700, "nprobe", 4);
}
Test(handler, search_hnsw_sq_matches_local) {
    compare_search("HNSW8", METRIC_L2, 0, "efSearch", 24);
    compare_search("SQ8", METRIC_L2, 600, NULL, 0);
}

Test(handler, codec_and_residual_match_local) {
    fx_state* s = new_state(NULL, 0, 0);
    const int d = 8;
    float* x = fxt_uniform(200, d, 30);
    uint64_t h = create(s, "", "", d, METRIC_L2, "SQ8", NULL);
    FaissIndex* loc = local_index(d, "SQ8", METRIC_L2);
    train(s, "", h, 200, x, d);
    FXT_OK(faiss_Index_train(loc, 200, x));
    add(s, "", h, 50, x, d);
    FXT_OK(faiss_Index_add(loc, 50, x));
    rep_t p;
    EXPECT_OK(req_handle(s, "", FX_OP_SA_CODE_SIZE, h, &p), p);
    size_t cs = 0;
    FXT_OK(faiss_Index_sa_code_size(loc, &cs));
    cr_assert_eq(r_u64(&p), cs);
    r_end(&p);
    rep_free(&p);
    EXPECT_OK(req_vecs(s, "", FX_OP_SA_ENCODE, h, 5, x, 5 * d, &p), p);
    uint8_t codes[5 * 8];
    cr_assert(cs * 5 <= sizeof codes);
    FXT_OK(faiss_Index_sa_encode(loc, 5, x, codes));
    FXT_SAME(r_array(&p, 1, 5 * cs), codes, 5 * cs);
    rep_free(&p);
    fx_wbuf w;
    begin(&w, "");
    fx_w_u64(&w, h);
    fx_w_i64(&w, 5);
    fx_w_array(&w, codes, 5 * cs, 1);
    EXPECT_OK(call(s, &w, FX_OP_SA_DECODE, &p), p);
    float dec[5 * 8];
    FXT_OK(faiss_Index_sa_decode(loc, 5, codes, dec));
    FXT_SAME(r_array(&p, sizeof(float), 5 * d), dec, sizeof dec);
    rep_free(&p);
    const idx_t keys[3] = {7, 0, 49};
    begin(&w, "");
    fx_w_u64(&w, h);
    fx_w_array(&w, keys, 3, sizeof(idx_t));
    EXPECT_OK(call(s, &w, FX_OP_RECONSTRUCT_KEYS, &p), p);
    float rec[3 * 8];
    for (int i = 0; i < 3; i++)
        FXT_OK(faiss_Index_reconstruct(loc, keys[i], rec + i * d));
    FXT_SAME(r_array(&p, sizeof(float), 3 * d), rec, sizeof rec);
    rep_free(&p);
    begin(&w, "");
    fx_w_u64(&w, h);
    fx_w_i64(&w, 3);
    fx_w_array(&w, x + 10 * d, 3 * d, sizeof(float));
    fx_w_array(&w, keys, 3, sizeof(idx_t));
    EXPECT_OK(call(s, &w, FX_OP_RESIDUAL, &p), p);
    float resid[3 * 8];
    FXT_OK(faiss_Index_compute_residual_n(loc, 3, x + 10 * d, resid, keys));
    FXT_SAME(r_array(&p, sizeof(float), 3 * d), resid, sizeof resid);
    rep_free(&p);
    /* Out-of-range keys: the library's error. */
    const idx_t badk[1] = {50};
    begin(&w, "");
    fx_w_u64(&w, h);
    fx_w_array(&w, badk, 1, sizeof(idx_t));
    cr_assert_lt(call(s, &w, FX_OP_RECONSTRUCT_KEYS, &p), 0);
    rep_free(&p);
    free(x);
    faiss_Index_free(loc);
    fx_state_free(s);
}

/* ---- REMOVE_IDS selectors ----------------------------------------------- */

/* Removes with a wire selector (written by wsel) on a server IDMap index
 * and with the equivalent local selector on a local copy; compares the
 * count removed and the searches that follow. */
static void compare_remove(void (*wsel)(fx_wbuf*),
                           FaissIDSelector* (*lsel)(FaissIDSelector** keep)) {
    fx_state* s = new_state(NULL, 0, 0);
    const int d = 4, nb = 80;
    float* x = fxt_uniform(nb, d, 40);
    idx_t ids[80];
    for (int i = 0; i < nb; i++) ids[i] = i * 2; /* even ids 0..158 */
    uint64_t h = create(s, "", "", d, METRIC_L2, "IDMap,Flat", NULL);
    add_ids(s, "", h, nb, x, d, ids);
    FaissIndex* loc = local_index(d, "IDMap,Flat", METRIC_L2);
    FXT_OK(faiss_Index_add_with_ids(loc, nb, x, ids));

    fx_wbuf w;
    rep_t p;
    begin(&w, "");
    fx_w_u64(&w, h);
    wsel(&w);
    EXPECT_OK(call(s, &w, FX_OP_REMOVE_IDS, &p), p);
    uint64_t removed = r_u64(&p);
    int64_t ntotal = r_i64(&p);
    r_i64(&p);
    r_end(&p);
    rep_free(&p);

    FaissIDSelector* keep[8] = {0};
    FaissIDSelector* sel = lsel(keep);
    size_t lremoved = 0;
    FXT_OK(faiss_Index_remove_ids(loc, sel, &lremoved));
    cr_assert_eq(removed, lremoved);
    cr_assert_gt(removed, 0, "the selector removed nothing");
    cr_assert_lt(removed, (uint64_t)nb, "the selector removed everything");
    cr_assert_eq(ntotal, faiss_Index_ntotal(loc));
    faiss_IDSelector_free(sel);
    for (int i = 0; i < 8; i++)
        if (keep[i]) faiss_IDSelector_free(keep[i]);

    float D[10 * 5], Dl[10 * 5];
    idx_t I[10 * 5], Il[10 * 5];
    search(s, "", h, 10, 5, x, d, D, I);
    FXT_OK(faiss_Index_search(loc, 10, x, 5, Dl, Il));
    FXT_SAME(I, Il, sizeof I);
    FXT_SAME(D, Dl, sizeof D);
    free(x);
    faiss_Index_free(loc);
    fx_state_free(s);
}

static FaissIDSelector* l_range(idx_t a, idx_t b) {
    FaissIDSelectorRange* r = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&r, a, b));
    return (FaissIDSelector*)r;
}
static FaissIDSelector* l_batch(size_t n, const idx_t* ids) {
    FaissIDSelectorBatch* b = NULL;
    FXT_OK(faiss_IDSelectorBatch_new(&b, n, ids));
    return (FaissIDSelector*)b;
}
static const idx_t k_batch[5] = {0, 4, 5, 100, 1000};
static const uint8_t k_bitmap[5] = {0xff, 0x01, 0x00, 0xa5, 0x80};

static void w_range(fx_wbuf* w) {
    fx_w_i64(w, FX_SEL_RANGE);
    fx_w_i64(w, 10);
    fx_w_i64(w, 40);
}
static FaissIDSelector* s_range(FaissIDSelector** keep) {
    (void)keep;
    return l_range(10, 40);
}
static void w_batch(fx_wbuf* w) {
    fx_w_i64(w, FX_SEL_BATCH);
    fx_w_array(w, k_batch, 5, sizeof(idx_t));
}
static FaissIDSelector* s_batch(FaissIDSelector** keep) {
    (void)keep;
    return l_batch(5, k_batch);
}
static void w_bitmap(fx_wbuf* w) {
    fx_w_i64(w, FX_SEL_BITMAP);
    fx_w_array(w, k_bitmap, 5, 1);
}
static FaissIDSelector* s_bitmap(FaissIDSelector** keep) {
    (void)keep;
    FaissIDSelectorBitmap* b = NULL;
    FXT_OK(faiss_IDSelectorBitmap_new(&b, 5, k_bitmap));
    return (FaissIDSelector*)b;
}
static void w_not(fx_wbuf* w) {
    fx_w_i64(w, FX_SEL_NOT);
    w_range(w);
}
static FaissIDSelector* s_not(FaissIDSelector** keep) {
    keep[0] = l_range(10, 40);
    FaissIDSelectorNot* n = NULL;
    FXT_OK(faiss_IDSelectorNot_new(&n, keep[0]));
    return (FaissIDSelector*)n;
}
static int g_binop;
static void w_bin(fx_wbuf* w) {
    fx_w_i64(w, g_binop);
    fx_w_i64(w, FX_SEL_RANGE);
    fx_w_i64(w, 0);
    fx_w_i64(w, 60);
    w_bitmap(w);
}
static FaissIDSelector* s_bin(FaissIDSelector** keep) {
    keep[0] = l_range(0, 60);
    keep[1] = s_bitmap(NULL);
    FaissIDSelector* out = NULL;
    if (g_binop == FX_SEL_AND)
        FXT_OK(faiss_IDSelectorAnd_new((FaissIDSelectorAnd**)&out, keep[0],
                                       keep[1]));
    else if (g_binop == FX_SEL_OR)
        FXT_OK(faiss_IDSelectorOr_new((FaissIDSelectorOr**)&out, keep[0],
                                      keep[1]));
    else
        FXT_OK(faiss_IDSelectorXOr_new((FaissIDSelectorXOr**)&out, keep[0],
                                       keep[1]));
    return out;
}
/* not(and(batch, not(range))) nested: 4 levels. */
static void w_nested(fx_wbuf* w) {
    fx_w_i64(w, FX_SEL_NOT);
    fx_w_i64(w, FX_SEL_AND);
    w_batch(w);
    w_not(w);
}
static FaissIDSelector* s_nested(FaissIDSelector** keep) {
    keep[0] = l_batch(5, k_batch);
    keep[1] = s_not(keep + 2); /* uses keep[2] */
    FaissIDSelectorAnd* a = NULL;
    FXT_OK(faiss_IDSelectorAnd_new(&a, keep[0], keep[1]));
    keep[3] = (FaissIDSelector*)a;
    FaissIDSelectorNot* n = NULL;
    FXT_OK(faiss_IDSelectorNot_new(&n, keep[3]));
    return (FaissIDSelector*)n;
}

Test(handler, remove_ids_range) { compare_remove(w_range, s_range); }
Test(handler, remove_ids_batch) { compare_remove(w_batch, s_batch); }
Test(handler, remove_ids_bitmap) { compare_remove(w_bitmap, s_bitmap); }
Test(handler, remove_ids_not) { compare_remove(w_not, s_not); }
Test(handler, remove_ids_and_or_xor) {
    const int ops[3] = {FX_SEL_AND, FX_SEL_OR, FX_SEL_XOR};
    for (int i = 0; i < 3; i++) {
        g_binop = ops[i];
        compare_remove(w_bin, s_bin);
    }
}
Test(handler, remove_ids_nested) { compare_remove(w_nested, s_nested); }

Test(handler, remove_ids_bad_selectors) {
    fx_state* s = new_state(NULL, 0, 0);
    uint64_t h = create(s, "", "", 4, METRIC_L2, "IDMap,Flat", NULL);
    float* x = fxt_uniform(10, 4, 41);
    idx_t ids[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    add_ids(s, "", h, 10, x, 4, ids);
    fx_wbuf w;
    rep_t p;
    /* FX_SEL_MAX_DEPTH NOTs around a range are fine (removes the
     * complement twice over: an even count of NOTs is the range). */
    for (int depth = FX_SEL_MAX_DEPTH; depth <= FX_SEL_MAX_DEPTH + 1;
         depth++) {
        begin(&w, "");
        fx_w_u64(&w, h);
        for (int i = 0; i < depth; i++) fx_w_i64(&w, FX_SEL_NOT);
        fx_w_i64(&w, FX_SEL_RANGE);
        fx_w_i64(&w, 100);
        fx_w_i64(&w, 200);
        int st = call(s, &w, FX_OP_REMOVE_IDS, &p);
        if (depth == FX_SEL_MAX_DEPTH) {
            EXPECT_OK(st, p);
            cr_assert_eq(r_u64(&p), 0); /* 8 NOTs: ids in [100,200) */
        } else {
            EXPECT_ERR(st, p, FAISSX_E_INVALID, "nested too deeply");
        }
        rep_free(&p);
    }
    /* Much deeper: refused without recursing through it all. */
    begin(&w, "");
    fx_w_u64(&w, h);
    for (int i = 0; i < 100000; i++) fx_w_i64(&w, FX_SEL_NOT);
    EXPECT_ERR(call(s, &w, FX_OP_REMOVE_IDS, &p), p, FAISSX_E_INVALID,
               "nested too deeply");
    rep_free(&p);
    /* Binary selectors count depth on both sides. */
    begin(&w, "");
    fx_w_u64(&w, h);
    fx_w_i64(&w, FX_SEL_AND);
    fx_w_i64(&w, FX_SEL_RANGE);
    fx_w_i64(&w, 0);
    fx_w_i64(&w, 1);
    for (int i = 0; i < FX_SEL_MAX_DEPTH; i++) fx_w_i64(&w, FX_SEL_NOT);
    fx_w_i64(&w, FX_SEL_RANGE);
    fx_w_i64(&w, 0);
    fx_w_i64(&w, 1);
    EXPECT_ERR(call(s, &w, FX_OP_REMOVE_IDS, &p), p, FAISSX_E_INVALID,
               "nested too deeply");
    rep_free(&p);
    const int64_t badtypes[] = {0, 8, -1, INT64_MAX};
    for (size_t i = 0; i < 4; i++) {
        begin(&w, "");
        fx_w_u64(&w, h);
        fx_w_i64(&w, badtypes[i]);
        EXPECT_ERR(call(s, &w, FX_OP_REMOVE_IDS, &p), p, FAISSX_E_INVALID,
                   "unknown selector type");
        rep_free(&p);
    }
    begin(&w, "");
    fx_w_u64(&w, h);
    fx_w_i64(&w, FX_SEL_RANGE);
    fx_w_i64(&w, 5);
    fx_w_i64(&w, 4);
    EXPECT_ERR(call(s, &w, FX_OP_REMOVE_IDS, &p), p, FAISSX_E_INVALID,
               "imin > imax");
    rep_free(&p);
    /* Batch arrays are bounded by max_batch. */
    fx_state* s2 = new_state(NULL, 0, 3);
    uint64_t h2 = create(s2, "", "", 4, METRIC_L2, "IDMap,Flat", NULL);
    begin(&w, "");
    fx_w_u64(&w, h2);
    fx_w_i64(&w, FX_SEL_BATCH);
    fx_w_array(&w, ids, 4, sizeof(idx_t));
    cr_assert_lt(call(s2, &w, FX_OP_REMOVE_IDS, &p), 0);
    rep_free(&p);
    fx_state_free(s2);
    cr_assert_eq(info_of(s, "", h).ntotal, 10);
    free(x);
    fx_state_free(s);
}

/* ---- parameters ---------------------------------------------------------- */

Test(handler, set_get_param) {
    fx_state* s = new_state(NULL, 0, 0);
    const int d = 8;
    float* x = fxt_clustered(400, d, 8, 0.1f, 50);
    uint64_t h = create(s, "", "", d, METRIC_L2, "IVF8,Flat", NULL);
    train(s, "", h, 400, x, d);
    uint64_t hm = create(s, "", "", d, METRIC_L2, "IDMap,Flat", NULL);
    rep_t p;
    double v = -1;
    set_param(s, "", h, "nprobe", 5);
    EXPECT_OK(req_get_param(s, "", h, "nprobe", &v, &p), p);
    rep_free(&p);
    cr_assert_eq(v, 5);
    EXPECT_OK(req_get_param(s, "", h, "nlist", &v, &p), p);
    rep_free(&p);
    cr_assert_eq(v, 8);
    set_param(s, "", h, "verbose", 1);
    EXPECT_OK(req_get_param(s, "", h, "verbose", &v, &p), p);
    rep_free(&p);
    cr_assert_eq(v, 1);
    set_param(s, "", h, "verbose", 0);

    fx_wbuf w;
    begin(&w, "");
    fx_w_u64(&w, h);
    fx_w_str(&w, "no_such_param");
    fx_w_f64(&w, 1);
    EXPECT_ERR(call(s, &w, FX_OP_SET_PARAM, &p), p, FAISSX_E_FAISS,
               "cannot set parameter 'no_such_param'");
    rep_free(&p);
    EXPECT_ERR(req_get_param(s, "", h, "no_such_param", &v, &p), p,
               FAISSX_E_UNSUPPORTED, "not readable");
    rep_free(&p);
    EXPECT_ERR(req_get_param(s, "", hm, "nprobe", &v, &p), p,
               FAISSX_E_UNSUPPORTED, "'nprobe' is not readable");
    rep_free(&p);
    begin(&w, "");
    fx_w_u64(&w, hm);
    fx_w_str(&w, "nprobe");
    fx_w_f64(&w, 3);
    EXPECT_ERR(call(s, &w, FX_OP_SET_PARAM, &p), p, FAISSX_E_FAISS,
               "cannot set");
    rep_free(&p);
    /* A parameter name longer than the server reads. */
    char longname[100];
    memset(longname, 'n', 99);
    longname[99] = 0;
    EXPECT_ERR(req_get_param(s, "", h, longname, &v, &p), p,
               FAISSX_E_PROTOCOL, "too long");
    rep_free(&p);
    free(x);
    fx_state_free(s);
}

/* ---- serialize / upload / clone / merge ---------------------------------- */

Test(handler, serialize_upload_round_trip) {
    fx_state* s = new_state(KEYS, 0, 0);
    const int d = 16, nb = 500, nq = 8, k = 5;
    float* xb = fxt_clustered(nb, d, 8, 0.1f, 60);
    float* xq = fxt_clustered(nq, d, 8, 0.1f, 61);
    uint64_t h = create(s, K_ALICE, "orig", d, METRIC_L2, "IVF8,Flat", NULL);
    train(s, K_ALICE, h, nb, xb, d);
    add(s, K_ALICE, h, nb, xb, d);
    set_param(s, K_ALICE, h, "nprobe", 3);
    size_t nbytes;
    uint8_t* bytes = serialize(s, K_ALICE, h, &nbytes);

    /* The bytes are faiss's file format: identical to what a local index
     * built the same way writes. */
    FaissIndex* loc = local_index(d, "IVF8,Flat", METRIC_L2);
    FXT_OK(faiss_Index_train(loc, nb, xb));
    FXT_OK(faiss_Index_add(loc, nb, xb));
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, loc, "nprobe", 3));
    faiss_ParameterSpace_free(ps);
    const char* path = fxt_tmp_path("handler_ivf.faiss");
    FXT_OK(faiss_write_index_fname(loc, path));
    FILE* f = fopen(path, "rb");
    cr_assert_not_null(f);
    uint8_t* file = malloc(nbytes + 1);
    size_t got = fread(file, 1, nbytes + 1, f);
    fclose(f);
    cr_assert_eq(got, nbytes, "file %zu bytes, SERIALIZE %zu", got, nbytes);
    FXT_SAME(file, bytes, nbytes);
    free(file);

    info_t iu, in;
    rep_t p;
    EXPECT_OK(req_upload(s, K_ALICE, "", bytes, nbytes, &iu, &p), p);
    rep_free(&p);
    EXPECT_OK(req_upload(s, K_ALICE, "copy", bytes, nbytes, &in, &p), p);
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 3);
    cr_assert(iu.handle != h && in.handle != h && iu.handle != in.handle);
    cr_assert_eq(iu.d, d);
    cr_assert_eq(iu.ntotal, nb);
    cr_assert(iu.kind & FX_KIND_IVF);
    cr_assert_str_eq(iu.cls, "IndexIVFFlat");
    double v;
    EXPECT_OK(req_get_param(s, K_ALICE, iu.handle, "nprobe", &v, &p), p);
    rep_free(&p);
    cr_assert_eq(v, 3);
    /* The sizes at the end of the info are the index's, as faiss has them
     * for the same index built locally. */
    size_t lcs = 0;
    FXT_OK(faiss_Index_sa_code_size(loc, &lcs));
    FaissIndexIVF* livf = faiss_IndexIVF_cast(loc);
    cr_assert_eq(iu.nlist, (int64_t)faiss_IndexIVF_nlist(livf));
    cr_assert_eq(iu.nprobe, (int64_t)faiss_IndexIVF_nprobe(livf));
    cr_assert_eq(iu.code_size, (int64_t)lcs);

    float D0[40], D1[40], D2[40], Dl[40];
    idx_t I0[40], I1[40], I2[40], Il[40];
    search(s, K_ALICE, h, nq, k, xq, d, D0, I0);
    search(s, K_ALICE, iu.handle, nq, k, xq, d, D1, I1);
    search(s, K_ALICE, in.handle, nq, k, xq, d, D2, I2);
    FXT_OK(faiss_Index_search(loc, nq, xq, k, Dl, Il));
    FXT_SAME(I0, I1, sizeof I0);
    FXT_SAME(D0, D1, sizeof D0);
    FXT_SAME(I0, I2, sizeof I0);
    FXT_SAME(D0, D2, sizeof D0);
    FXT_SAME(I0, Il, sizeof I0);
    FXT_SAME(D0, Dl, sizeof D0);

    /* Garbage is refused and the server carries on. */
    const uint8_t junk[] = "this is not an index";
    EXPECT_ERR(req_upload(s, K_ALICE, "", junk, sizeof junk, NULL, &p), p,
               FAISSX_E_IO, "not a readable faiss index");
    rep_free(&p);
    EXPECT_ERR(req_upload(s, K_ALICE, "j", NULL, 0, NULL, &p), p,
               FAISSX_E_IO, "not a readable faiss index");
    rep_free(&p);
    /* A prefix of real bytes that ends inside the first field. (Longer
     * prefixes fail too, but faiss 1.7.3's read_index leaks the partly
     * read index then, which LSan would report.) */
    EXPECT_ERR(req_upload(s, K_ALICE, "", bytes, 3, NULL, &p), p,
               FAISSX_E_IO, "not a readable faiss index");
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 3);
    search(s, K_ALICE, iu.handle, nq, k, xq, d, D1, I1);
    FXT_SAME(D0, D1, sizeof D0);
    ping_ok(s, K_ALICE, CLIENT, CONN, "alice");

    free(bytes);
    free(xb);
    free(xq);
    faiss_Index_free(loc);
    fx_state_free(s);
}

Test(handler, clone) {
    fx_state* s = new_state(KEYS, 0, 0);
    const int d = 8;
    float* x = fxt_uniform(100, d, 70);
    uint64_t h = create(s, K_ALICE, "orig", d, METRIC_L2, "Flat", NULL);
    add(s, K_ALICE, h, 50, x, d);
    rep_t p;
    EXPECT_OK(req_handle(s, K_ALICE, FX_OP_CLONE, h, &p), p);
    info_t ic;
    r_info(&p, &ic);
    rep_free(&p);
    cr_assert(ic.handle != h);
    cr_assert_eq(ic.ntotal, 50);
    cr_assert_eq(ic.d, d);
    cr_assert_eq(fx_state_index_count(s), 2);
    /* The clone is unnamed: LIST still shows one. */
    fx_wbuf w;
    begin(&w, K_ALICE);
    EXPECT_OK(call(s, &w, FX_OP_LIST, &p), p);
    cr_assert_eq(r_u64(&p), 1);
    rep_free(&p);
    float D0[15], D1[15];
    idx_t I0[15], I1[15];
    search(s, K_ALICE, h, 3, 5, x + 60 * d, d, D0, I0);
    search(s, K_ALICE, ic.handle, 3, 5, x + 60 * d, d, D1, I1);
    FXT_SAME(D0, D1, sizeof D0);
    FXT_SAME(I0, I1, sizeof I0);
    /* Independent: adding to the clone leaves the original alone. */
    cr_assert_eq(add(s, K_ALICE, ic.handle, 50, x + 50 * d, d), 100);
    cr_assert_eq(info_of(s, K_ALICE, h).ntotal, 50);
    EXPECT_OK(req_handle(s, K_ALICE, FX_OP_RELEASE, ic.handle, &p), p);
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 1);
    free(x);
    fx_state_free(s);
}

Test(handler, merge_from_matches_local) {
    fx_state* s = new_state(NULL, 0, 0);
    const int d = 8, nb = 400, nq = 6, k = 5;
    float* xb = fxt_clustered(nb, d, 6, 0.1f, 80);
    /* Two IVF indexes sharing one trained quantizer (a clone). */
    uint64_t ha = create(s, "", "", d, METRIC_L2, "IVF8,Flat", NULL);
    train(s, "", ha, nb, xb, d);
    rep_t p;
    EXPECT_OK(req_handle(s, "", FX_OP_CLONE, ha, &p), p);
    info_t ib;
    r_info(&p, &ib);
    rep_free(&p);
    add(s, "", ha, 200, xb, d);
    add(s, "", ib.handle, 200, xb + 200 * d, d);
    fx_wbuf w;
    begin(&w, "");
    fx_w_u64(&w, ha);
    fx_w_u64(&w, ib.handle);
    fx_w_i64(&w, 200);
    EXPECT_OK(call(s, &w, FX_OP_MERGE_FROM, &p), p);
    cr_assert_eq(r_i64(&p), 400);
    cr_assert_eq(r_i64(&p), 1);
    r_end(&p);
    rep_free(&p);
    cr_assert_eq(info_of(s, "", ib.handle).ntotal, 0, "other not emptied");

    FaissIndex* la = local_index(d, "IVF8,Flat", METRIC_L2);
    FXT_OK(faiss_Index_train(la, nb, xb));
    FaissIndex* lb = NULL;
    FXT_OK(faiss_clone_index(la, &lb));
    FXT_OK(faiss_Index_add(la, 200, xb));
    FXT_OK(faiss_Index_add(lb, 200, xb + 200 * d));
    FXT_OK(faiss_IndexIVF_merge_from(faiss_IndexIVF_cast(la),
                                     faiss_IndexIVF_cast(lb), 200));
    set_param(s, "", ha, "nprobe", 8);
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, la, "nprobe", 8));
    faiss_ParameterSpace_free(ps);
    float D[30], Dl[30];
    idx_t I[30], Il[30];
    search(s, "", ha, nq, k, xb + 250 * d, d, D, I);
    FXT_OK(faiss_Index_search(la, nq, xb + 250 * d, k, Dl, Il));
    FXT_SAME(I, Il, sizeof I);
    FXT_SAME(D, Dl, sizeof D);
    cr_assert_eq(I[0], 250);

    /* Into itself: refused. Different dimension: faiss refuses. */
    begin(&w, "");
    fx_w_u64(&w, ha);
    fx_w_u64(&w, ha);
    fx_w_i64(&w, 0);
    EXPECT_ERR(call(s, &w, FX_OP_MERGE_FROM, &p), p, FAISSX_E_INVALID,
               "itself");
    rep_free(&p);
    uint64_t hx = create(s, "", "", 4, METRIC_L2, "Flat", NULL);
    begin(&w, "");
    fx_w_u64(&w, ha);
    fx_w_u64(&w, hx);
    fx_w_i64(&w, 0);
    EXPECT_ERR(call(s, &w, FX_OP_MERGE_FROM, &p), p, FAISSX_E_FAISS, "");
    rep_free(&p);
    cr_assert_eq(info_of(s, "", ha).ntotal, 400);
    free(xb);
    faiss_Index_free(la);
    faiss_Index_free(lb);
    fx_state_free(s);
}

/* ---- lifetime ------------------------------------------------------------ */

Test(handler, release) {
    fx_state* s = new_state(KEYS, 0, 0);
    uint64_t hu = create(s, K_ALICE, "", 4, METRIC_L2, "Flat", NULL);
    uint64_t hn = create(s, K_ALICE, "named", 4, METRIC_L2, "Flat", NULL);
    cr_assert_eq(fx_state_index_count(s), 2);
    rep_t p;
    EXPECT_OK(req_handle(s, K_ALICE, FX_OP_RELEASE, hu, &p), p);
    r_end(&p);
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 1);
    EXPECT_ERR(req_info(s, K_ALICE, hu, NULL, &p), p, FAISSX_E_NOT_FOUND,
               "unknown index handle");
    rep_free(&p);
    EXPECT_ERR(req_handle(s, K_ALICE, FX_OP_RELEASE, hu, &p), p,
               FAISSX_E_NOT_FOUND, "unknown index handle");
    rep_free(&p);
    /* Releasing a named index is a no-op: it lives until DROP. */
    EXPECT_OK(req_handle(s, K_ALICE, FX_OP_RELEASE, hn, &p), p);
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 1);
    cr_assert_eq(info_of(s, K_ALICE, hn).d, 4);
    EXPECT_OK(req_name(s, K_ALICE, FX_OP_OPEN, "named", &p), p);
    rep_free(&p);
    /* RELEASE is a write (a read-only key cannot own an unnamed index, so
     * it could only free someone else's). */
    uint64_t hu2 = create(s, K_ALICE, "", 4, METRIC_L2, "Flat", NULL);
    EXPECT_ERR(req_handle(s, K_RO, FX_OP_RELEASE, hu2, &p), p,
               FAISSX_E_PERMISSION, "read-only");
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), 2);
    fx_state_free(s);
}

/* Creates a Flat (d = 4) named `name` ("": unnamed) as `client` on
 * connection `conn`; returns its handle. */
static uint64_t create_as(fx_state* s, uint64_t client, uint64_t conn,
                          const char* name) {
    fx_wbuf w;
    rep_t p;
    info_t i;
    begin(&w, "");
    fx_w_str(&w, name);
    fx_w_i64(&w, 4);
    fx_w_i64(&w, METRIC_L2);
    fx_w_str(&w, "Flat");
    EXPECT_OK(call_as(s, &w, FX_OP_CREATE, client, conn, &p), p);
    r_info(&p, &i);
    rep_free(&p);
    return i.handle;
}

Test(handler, orphans_are_reaped) {
    fx_state* s = new_state(NULL, 0, 0);
    const uint64_t A = 0xA, B = 0xB, C = 0xC;
    rep_t p;
    uint64_t ua, na, ub, uc;
    ua = create_as(s, A, 1, "");
    na = create_as(s, A, 1, "keep");
    ub = create_as(s, B, 1, "");
    uc = create_as(s, C, 3, "");
    /* B also talks on connection 2: its latest connection. */
    ping_ok(s, "", B, 2, NULL);
    cr_assert_eq(fx_state_index_count(s), 4);

    /* Connection 1 closes: A's unnamed index goes, A's named one and B's
     * (B is still around on connection 2) stay. */
    fx_state_conn_closed(s, 1);
    cr_assert_eq(fx_state_reap(s, 0), 1);
    cr_assert_eq(fx_state_index_count(s), 3);
    EXPECT_ERR(req_info(s, "", ua, NULL, &p), p, FAISSX_E_NOT_FOUND, "");
    rep_free(&p);
    info_of(s, "", na);
    info_of(s, "", ub);
    info_of(s, "", uc);
    /* Reaping again frees nothing more. */
    cr_assert_eq(fx_state_reap(s, 0), 0);

    /* C's connection closes, C comes back on another within the grace
     * period: its index survives, and is tied to the new connection. */
    fx_state_conn_closed(s, 3);
    cr_assert_eq(fx_state_reap(s, 3600 * 1000), 0, "reaped within grace");
    ping_ok(s, "", C, 4, NULL);
    cr_assert_eq(fx_state_reap(s, 0), 0, "a returning client lost its index");
    info_of(s, "", uc);
    /* Closing an unrelated connection does nothing. */
    fx_state_conn_closed(s, 3);
    fx_state_conn_closed(s, 99);
    cr_assert_eq(fx_state_reap(s, 0), 0);
    /* Its new connection closes for good: now it goes. */
    fx_state_conn_closed(s, 4);
    cr_assert_eq(fx_state_reap(s, 0), 1);
    cr_assert_eq(fx_state_index_count(s), 2);
    /* B's connection 2 closes: B's index (created on 1) goes too. */
    fx_state_conn_closed(s, 2);
    fx_state_reap(s, 0);
    cr_assert_eq(fx_state_index_count(s), 1);
    info_of(s, "", na);
    fx_state_free(s);
}

/* The per-client maps do not grow with every client ever seen: beyond 1024
 * remembered clients, reap forgets those silent for 4 * grace + 10 min
 * that own no unnamed index (fx_state_reap_later stands in for the wait). */
Test(handler, silent_clients_are_forgotten) {
    fx_state* s = new_state(NULL, 0, 0);
    enum { N = 1100 };
    const uint64_t owner = 7, named_only = 8;
    for (uint64_t c = 1; c <= N; c++) ping_ok(s, "", c, 1 + c % 3, NULL);
    /* owner holds an unnamed index; named_only a named one (not its own:
     * named indexes belong to the tenant). */
    create_as(s, owner, 1 + owner % 3, "");
    create_as(s, named_only, 1 + named_only % 3, "kept");
    cr_assert_eq(fx_state_client_count(s), N);

    /* Not silent long enough (10 min + 4 * 1 s grace, minus 4 s). */
    cr_assert_eq(fx_state_reap_later(s, 1000, 600000), 0);
    cr_assert_eq(fx_state_client_count(s), N, "forgot clients too early");
    /* Long enough: all but the owner of the unnamed index go; no index. */
    cr_assert_eq(fx_state_reap_later(s, 1000, 610000), 0);
    cr_assert_eq(fx_state_client_count(s), 1, "%zu clients remembered",
                 fx_state_client_count(s));
    cr_assert_eq(fx_state_index_count(s), 2);
    /* Below the threshold nothing is pruned, however long the silence. */
    ping_ok(s, "", 5000, 9, NULL);
    cr_assert_eq(fx_state_reap_later(s, 1000, 3600 * 1000), 0);
    cr_assert_eq(fx_state_client_count(s), 2);
    /* The owner's connection closes: it is then reaped as an orphan (its
     * index freed) and, owning nothing, forgotten once there are many. */
    fx_state_conn_closed(s, 1 + owner % 3);
    cr_assert_eq(fx_state_reap_later(s, 1000, 2000), 1);
    cr_assert_eq(fx_state_index_count(s), 1);
    for (uint64_t c = 10001; c <= 10000 + N; c++) ping_ok(s, "", c, 4, NULL);
    cr_assert_eq(fx_state_reap_later(s, 1000, 610000), 0);
    cr_assert_eq(fx_state_client_count(s), 0);
    /* A forgotten client is served as a new one. */
    ping_ok(s, "", owner, 5, NULL);
    cr_assert_eq(fx_state_client_count(s), 1);
    fx_state_free(s);
}

/* Chunked upload staging: reserved in full at BEGIN, counted per tenant,
 * released by COMMIT, ABORT, the client going away (conn closed, reaped
 * after the grace) and, on a returning client, never. */
static uint64_t up_begin_as(fx_state* s, const char* key, uint64_t total,
                            uint64_t client, uint64_t conn) {
    fx_wbuf w;
    rep_t p;
    begin(&w, key);
    fx_w_u64(&w, total);
    fx_w_i64(&w, FX_UPLOAD_INDEX);
    EXPECT_OK(call_as(s, &w, FX_OP_UPLOAD_BEGIN, client, conn, &p), p);
    uint64_t id = r_u64(&p);
    r_u64(&p);
    r_end(&p);
    rep_free(&p);
    return id;
}

Test(handler, upload_staging_is_counted_and_reclaimed) {
    fx_state* s = new_state(KEYS, 0, 0);
    const uint64_t A = 0xA0, B = 0xB0;
    cr_assert_eq(fx_state_staged_bytes(s, NULL, NULL), 0);
    uint64_t a1 = up_begin_as(s, K_ALICE, 1000, A, 1);
    up_begin_as(s, K_ALICE, 24, A, 1);
    up_begin_as(s, K_BOB, 5000, B, 2);
    size_t n = 0;
    cr_assert_eq(fx_state_staged_bytes(s, "alice", &n), 1024);
    cr_assert_eq(n, 2);
    cr_assert_eq(fx_state_staged_bytes(s, "bob", &n), 5000);
    cr_assert_eq(fx_state_staged_bytes(s, NULL, &n), 6024);
    cr_assert_eq(n, 3);

    fx_wbuf w;
    rep_t p;
    begin(&w, K_ALICE);
    fx_w_u64(&w, a1);
    EXPECT_OK(call_as(s, &w, FX_OP_UPLOAD_ABORT, A, 1, &p), p);
    rep_free(&p);
    cr_assert_eq(fx_state_staged_bytes(s, "alice", &n), 24);
    cr_assert_eq(n, 1);

    /* A's connection closes, A comes back on another: kept. */
    fx_state_conn_closed(s, 1);
    ping_ok(s, K_ALICE, A, 3, NULL);
    cr_assert_eq(fx_state_reap_uploads(s, 0), 0);
    cr_assert_eq(fx_state_staged_bytes(s, "alice", NULL), 24);
    /* B goes away for good: its upload is discarded after the grace. */
    fx_state_conn_closed(s, 2);
    cr_assert_eq(fx_state_reap_uploads(s, 3600 * 1000), 0, "within grace");
    cr_assert_eq(fx_state_reap_uploads(s, 0), 1);
    cr_assert_eq(fx_state_staged_bytes(s, "bob", &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(fx_state_staged_bytes(s, NULL, NULL), 24);
    fx_state_free(s);
}

Test(handler, upload_idle_is_discarded) {
    faissx_remote_disable();
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.auth_keys = KEYS;
    c.upload_idle_ms = 1;
    fx_state* s = NULL;
    char err[256];
    cr_assert_eq(fx_state_new(&c, &s, err, sizeof err), 0, "%s", err);
    up_begin_as(s, K_ALICE, 100, CLIENT, CONN);
    cr_assert_eq(fx_state_staged_bytes(s, NULL, NULL), 100);
    usleep(5000);
    cr_assert_eq(fx_state_reap_uploads(s, 3600 * 1000), 1);
    cr_assert_eq(fx_state_staged_bytes(s, NULL, NULL), 0);
    fx_state_free(s);
}

/* ---- configuration -------------------------------------------------------- */

static void state_fails(const char* keys, const char* file, int require,
                        int code, const char* needle) {
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.auth_keys = keys;
    c.auth_file = file;
    c.require_auth = require;
    fx_state* s = (fx_state*)0x1;
    char err[512] = "";
    int rc = fx_state_new(&c, &s, err, sizeof err);
    cr_assert_eq(rc, code, "keys '%s': rc %d, expected %d (%s)",
                 keys ? keys : "(null)", rc, code, err);
    cr_assert(strstr(err, needle) != NULL, "keys '%s': '%s' lacks '%s'",
              keys ? keys : "(null)", err, needle);
    cr_assert_eq(s, (fx_state*)0x1, "output written on failure");
}

Test(handler, state_config_errors) {
    state_fails(NULL, NULL, 1, FAISSX_E_AUTH, "authentication is required");
    state_fails("", NULL, 1, FAISSX_E_AUTH, "no API keys");
    state_fails(" , ", NULL, 1, FAISSX_E_AUTH, "no API keys");
    state_fails("nokey", NULL, 0, FAISSX_E_INVALID, "expected KEY:TENANT");
    state_fails(":t", NULL, 0, FAISSX_E_INVALID, "expected KEY:TENANT");
    state_fails("k:", NULL, 0, FAISSX_E_INVALID, "invalid tenant name ''");
    state_fails("k:bad/tenant", NULL, 0, FAISSX_E_INVALID,
                "invalid tenant name 'bad/tenant'");
    state_fails("k:.t", NULL, 0, FAISSX_E_INVALID, "invalid tenant name");
    state_fails("k:t:xx", NULL, 0, FAISSX_E_INVALID,
                "unknown key mode 'xx'");
    state_fails("a:t,b:u,a:v", NULL, 0, FAISSX_E_INVALID, "listed twice");
    state_fails("k1:alice,bad", NULL, 0, FAISSX_E_INVALID, "--auth-keys");
    char longkey[400];
    memset(longkey, 'k', 300);
    strcpy(longkey + 300, ":t");
    state_fails(longkey, NULL, 0, FAISSX_E_INVALID, "longer than 256");
    char longt[100] = "k:";
    memset(longt + 2, 't', 64);
    longt[66] = 0;
    state_fails(longt, NULL, 0, FAISSX_E_INVALID, "invalid tenant name");
    state_fails(NULL, "/nonexistent/faissx-keys", 0, FAISSX_E_IO,
                "cannot read '/nonexistent/faissx-keys'");

    /* Accepted: explicit rw, whitespace around items, empty items. */
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.auth_keys = " a:t:rw , ,b:u:ro,";
    c.require_auth = 1;
    fx_state* s = NULL;
    char err[256] = "";
    cr_assert_eq(fx_state_new(&c, &s, err, sizeof err), 0, "%s", err);
    ping_ok(s, "a", CLIENT, CONN, "t");
    ping_ok(s, "b", CLIENT, CONN, "u");
    create(s, "a", "x", 4, METRIC_L2, "Flat", NULL);
    rep_t p;
    EXPECT_ERR(req_name(s, "b", FX_OP_DROP, "x", &p), p,
               FAISSX_E_PERMISSION, "");
    rep_free(&p);
    fx_state_free(s);
}

static const char* write_file(const char* base, const char* text) {
    const char* path = fxt_tmp_path(base);
    FILE* f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

Test(handler, auth_file) {
    const char* good = write_file("keys_good.txt",
                                  "# faissx keys\n"
                                  "\n"
                                  "   \t\n"
                                  "kf1:carol\n"
                                  "  kf2:dave:ro  \r\n"
                                  "# kf3:eve\n"
                                  "kf4:carol:rw");
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.auth_file = good;
    c.auth_keys = "k1:alice";
    c.require_auth = 1;
    fx_state* s = NULL;
    char err[512] = "";
    cr_assert_eq(fx_state_new(&c, &s, err, sizeof err), 0, "%s", err);
    ping_ok(s, "kf1", CLIENT, CONN, "carol");
    ping_ok(s, "kf2", CLIENT, CONN, "dave");
    ping_ok(s, "kf4", CLIENT, CONN, "carol");
    ping_ok(s, "k1", CLIENT, CONN, "alice");
    fx_wbuf w;
    rep_t p;
    begin(&w, "kf3"); /* commented out */
    EXPECT_ERR(call(s, &w, FX_OP_PING, &p), p, FAISSX_E_AUTH, "");
    rep_free(&p);
    begin(&w, "# kf3");
    EXPECT_ERR(call(s, &w, FX_OP_PING, &p), p, FAISSX_E_AUTH, "");
    rep_free(&p);
    begin(&w, "kf2");
    fx_w_str(&w, "x");
    fx_w_i64(&w, 4);
    fx_w_i64(&w, METRIC_L2);
    fx_w_str(&w, "Flat");
    EXPECT_ERR(call(s, &w, FX_OP_CREATE, &p), p, FAISSX_E_PERMISSION, "");
    rep_free(&p);
    fx_state_free(s);

    /* A bad line is reported with its file and line number. */
    const char* bad = write_file("keys_bad.txt",
                                 "# header\n"
                                 "kf1:carol\n"
                                 "\n"
                                 "kf2-no-tenant\n"
                                 "kf3:eve\n");
    char want[600];
    snprintf(want, sizeof want, "%s:4: expected KEY:TENANT", bad);
    state_fails(NULL, bad, 0, FAISSX_E_INVALID, want);
    const char* dup = write_file("keys_dup.txt", "k1:zed\n");
    snprintf(want, sizeof want, "%s:1: API key listed twice", dup);
    fx_server_conf_init(&c);
    c.auth_keys = "k1:alice";
    c.auth_file = dup;
    s = (fx_state*)0x1;
    cr_assert_eq(fx_state_new(&c, &s, err, sizeof err), FAISSX_E_INVALID);
    cr_assert(strstr(err, want), "'%s' lacks '%s'", err, want);
    const char* mode = write_file("keys_mode.txt", "\n\nk:t:admin\n");
    snprintf(want, sizeof want, "%s:3: unknown key mode 'admin'", mode);
    state_fails(NULL, mode, 0, FAISSX_E_INVALID, want);
    /* A file of comments only: no keys, so require_auth refuses. */
    const char* empty = write_file("keys_empty.txt", "# nothing\n\n");
    state_fails(NULL, empty, 1, FAISSX_E_AUTH, "no API keys");
}

/* ---- WRAP (composites over an existing index) ----------------------------- */

Test(handler, wrap_needs_an_empty_child) {
    fx_state* s = new_state(NULL, 0, 0);
    const int d = 4;
    float* x = fxt_uniform(10, d, 90);
    uint64_t full = create(s, "", "", d, METRIC_L2, "Flat", NULL);
    add(s, "", full, 10, x, d);
    uint64_t empty = create(s, "", "", d, METRIC_L2, "Flat", NULL);
    const int64_t types[] = {FX_WRAP_IDMAP, FX_WRAP_IDMAP2,
                             FX_WRAP_REFINE_FLAT};
    rep_t p;
    for (size_t i = 0; i < 3; i++) {
        fx_wbuf w;
        begin(&w, "");
        fx_w_u64(&w, full);
        fx_w_i64(&w, types[i]);
        /* Refused before faiss builds anything (faiss's IndexRefineFlat
         * leaks its refine index when its constructor throws). */
        EXPECT_ERR(call(s, &w, FX_OP_WRAP, &p), p, FAISSX_E_INVALID,
                   "must be empty (ntotal = 10)");
        rep_free(&p);
    }
    cr_assert_eq(fx_state_index_count(s), 2);
    fx_wbuf w;
    begin(&w, "");
    fx_w_u64(&w, empty);
    fx_w_i64(&w, FX_WRAP_REFINE_FLAT);
    EXPECT_OK(call(s, &w, FX_OP_WRAP, &p), p);
    info_t i;
    r_info(&p, &i);
    rep_free(&p);
    cr_assert(i.kind & FX_KIND_REFINE);
    cr_assert_eq(fx_state_index_count(s), 3);
    free(x);
    fx_state_free(s);
}

/* ---- COMPOSITE (prepend, inner handles, chain copies) -------------------- */

static int req_comp(fx_state* s, const char* key, uint64_t h, int64_t op,
                    const void* bytes, int64_t nbytes, int64_t kind,
                    rep_t* p) {
    fx_wbuf w;
    begin(&w, key);
    fx_w_u64(&w, h);
    fx_w_i64(&w, op);
    if (op == FX_COMP_PREPEND) fx_w_array(&w, bytes, (uint64_t)nbytes, 1);
    if (op == FX_COMP_INNER) fx_w_i64(&w, kind);
    return call(s, &w, FX_OP_COMPOSITE, p);
}

Test(handler, composite_prepend_inner_chain) {
    fx_state* s = new_state(KEYS, 0, 0);
    const int d = 8;
    float* xt = fxt_uniform(200, d, 95);
    rep_t p;
    info_t i;
    /* a trained PCA 8 -> 4 from a factory chain, as faiss bytes */
    uint64_t fac = create(s, "k1", "", d, METRIC_L2, "PCA4,Flat", NULL);
    train(s, "k1", fac, 200, xt, d);
    EXPECT_OK(req_comp(s, "k3", fac, FX_COMP_CHAIN, NULL, 0, 0, &p), p);
    cr_assert_eq(r_u64(&p), 1, "one transform in the chain");
    const void* vb;
    uint64_t nvb;
    cr_assert_eq(fx_r_array(&p.r, 1, UINT64_MAX, &vb, &nvb), 0);
    cr_assert_gt(nvb, 16);
    uint8_t* pca = malloc(nvb);
    memcpy(pca, vb, nvb);
    r_end(&p);
    rep_free(&p);

    /* prepend it to an identity chain over a 4-d Flat: d becomes 8 */
    uint64_t f4 = create(s, "k1", "", 4, METRIC_L2, "Flat", NULL);
    fx_wbuf w;
    begin(&w, "k1");
    fx_w_u64(&w, f4);
    fx_w_i64(&w, FX_WRAP_PRETRANSFORM);
    fx_w_array(&w, NULL, 0, 1);
    EXPECT_OK(call(s, &w, FX_OP_WRAP, &p), p);
    r_info(&p, &i);
    rep_free(&p);
    uint64_t pt = i.handle;
    cr_assert_eq(i.d, 4);
    EXPECT_ERR(req_comp(s, "k3", pt, FX_COMP_PREPEND, pca, (int64_t)nvb, 0,
                        &p),
               p, FAISSX_E_PERMISSION, "read-only");
    rep_free(&p);
    EXPECT_OK(req_comp(s, "k1", pt, FX_COMP_PREPEND, pca, (int64_t)nvb, 0,
                       &p),
              p);
    r_info(&p, &i);
    rep_free(&p);
    cr_assert_eq(i.handle, pt);
    cr_assert_eq(i.d, d);
    cr_assert(i.kind & FX_KIND_PRETRANSFORM);
    cr_assert_eq(i.is_trained, 1, "a trained transform over a Flat");
    /* the chain now searches like the factory one */
    add(s, "k1", pt, 200, xt, d);
    add(s, "k1", fac, 200, xt, d);
    float D1[5 * 3], D2[5 * 3];
    idx_t I1[5 * 3], I2[5 * 3];
    search(s, "k1", pt, 5, 3, xt, d, D1, I1);
    search(s, "k1", fac, 5, 3, xt, d, D2, I2);
    FXT_SAME(I1, I2, sizeof I1);
    FXT_SAME(D1, D2, sizeof D1);

    /* refused: wrong dimension, not a pre-transform, bad bytes */
    EXPECT_ERR(req_comp(s, "k1", pt, FX_COMP_PREPEND, pca, (int64_t)nvb, 0,
                        &p),
               p, FAISSX_E_INVALID,
               "transform output dimension 4 differs from the chain's "
               "input dimension 8");
    rep_free(&p);
    EXPECT_ERR(req_comp(s, "k1", f4, FX_COMP_PREPEND, pca, (int64_t)nvb, 0,
                        &p),
               p, FAISSX_E_INVALID, "not an IndexPreTransform");
    rep_free(&p);
    EXPECT_ERR(req_comp(s, "k1", f4, FX_COMP_CHAIN, NULL, 0, 0, &p), p,
               FAISSX_E_INVALID, "not an IndexPreTransform");
    rep_free(&p);
    /* (no truncated transform: faiss 1.7.3's reader leaks the object it
     * was filling when its input ends early) */
    uint8_t junk[24] = {'X', 'Y', 'Z', 'W', 1, 2, 3};
    EXPECT_ERR(req_comp(s, "k1", pt, FX_COMP_PREPEND, junk, sizeof junk, 0,
                        &p),
               p, FAISSX_E_IO, "bad transform");
    rep_free(&p);
    EXPECT_ERR(req_comp(s, "k1", pt, FX_COMP_PREPEND, junk, 2, 0, &p), p,
               FAISSX_E_IO, "bad transform");
    rep_free(&p);
    uint8_t* longer = malloc(nvb + 8);
    memcpy(longer, pca, nvb);
    memset(longer + nvb, 0, 8);
    EXPECT_ERR(req_comp(s, "k1", pt, FX_COMP_PREPEND, longer,
                        (int64_t)nvb + 8, 0, &p),
               p, FAISSX_E_IO, "trailing bytes");
    rep_free(&p);
    free(longer);
    EXPECT_ERR(req_comp(s, "k1", pt, FX_COMP_PREPEND, NULL, 0, 0, &p), p,
               FAISSX_E_INVALID, "empty transform");
    rep_free(&p);
    EXPECT_ERR(req_comp(s, "k1", pt, 99, NULL, 0, 0, &p), p,
               FAISSX_E_UNSUPPORTED, "unknown composite operation 99");
    rep_free(&p);
    cr_assert_eq(info_of(s, "k1", pt).d, d, "failed prepends change nothing");

    /* INNER: a handle on the factory chain's Flat, sharing its data */
    EXPECT_ERR(req_comp(s, "k1", fac, FX_COMP_INNER, NULL, 0, FX_KIND_IVF,
                        &p),
               p, FAISSX_E_INVALID, "no inner index");
    rep_free(&p);
    EXPECT_ERR(req_comp(s, "k1", fac, FX_COMP_INNER, NULL, 0, 12345, &p), p,
               FAISSX_E_INVALID, "unknown inner index kind");
    rep_free(&p);
    EXPECT_ERR(req_comp(s, "k3", fac, FX_COMP_INNER, NULL, 0,
                        FX_KIND_PRETRANSFORM, &p),
               p, FAISSX_E_PERMISSION, "read-only");
    rep_free(&p);
    EXPECT_ERR(req_comp(s, "k2", fac, FX_COMP_INNER, NULL, 0,
                        FX_KIND_PRETRANSFORM, &p),
               p, FAISSX_E_NOT_FOUND, "unknown index handle");
    rep_free(&p);
    size_t before = fx_state_index_count(s);
    EXPECT_OK(req_comp(s, "k1", fac, FX_COMP_INNER, NULL, 0,
                       FX_KIND_PRETRANSFORM, &p),
              p);
    r_info(&p, &i);
    rep_free(&p);
    uint64_t in = i.handle;
    cr_assert_neq(in, fac);
    cr_assert_eq(i.d, 4);
    cr_assert_eq(i.ntotal, 200);
    cr_assert(i.kind & FX_KIND_FLAT);
    cr_assert_eq(fx_state_index_count(s), before + 1);
    /* the composite goes first: the inner handle keeps it alive */
    EXPECT_OK(req_handle(s, "k1", FX_OP_RELEASE, fac, &p), p);
    rep_free(&p);
    float y[4 * 2];
    for (int j = 0; j < 8; j++) y[j] = (float)j / 8;
    search(s, "k1", in, 2, 3, y, 4, D1, I1);
    cr_assert_geq(I1[0], 0);
    EXPECT_OK(req_handle(s, "k1", FX_OP_RELEASE, in, &p), p);
    rep_free(&p);
    cr_assert_eq(fx_state_index_count(s), before - 1);
    free(pca);
    free(xt);
    fx_state_free(s);
}

/* faiss's default reconstruct_n runs reconstruct() in an OpenMP loop; an
 * index without reconstruct (IndexIDMap) used to terminate the server from
 * there. Found by tests/fuzz_handler.c. */
Test(handler, reconstruct_n_without_reconstruct) {
    fx_state* s = new_state(NULL, 0, 0);
    const int d = 4;
    float* x = fxt_uniform(10, d, 91);
    idx_t ids[10] = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
    uint64_t h = create(s, "", "", d, METRIC_L2, "IDMap,Flat", NULL);
    add_ids(s, "", h, 10, x, d, ids);
    fx_wbuf w;
    rep_t p;
    begin(&w, "");
    fx_w_u64(&w, h);
    fx_w_i64(&w, 0);
    fx_w_i64(&w, 4);
    EXPECT_ERR(call(s, &w, FX_OP_RECONSTRUCT_N, &p), p, FAISSX_E_FAISS,
               "reconstruct not implemented");
    rep_free(&p);
    /* Same through the C API directly; IDMap2 with unknown ids too. */
    FaissIndex* loc = local_index(d, "IDMap,Flat", METRIC_L2);
    FXT_OK(faiss_Index_add_with_ids(loc, 10, x, ids));
    float out[4 * 4];
    FXT_ERR(faiss_Index_reconstruct_n(loc, 0, 4, out),
            "reconstruct not implemented");
    faiss_Index_free(loc);
    loc = local_index(d, "IDMap2,Flat", METRIC_L2);
    FXT_OK(faiss_Index_add_with_ids(loc, 10, x, ids));
    FXT_ERR(faiss_Index_reconstruct_n(loc, 8, 4, out), "");
    FXT_OK(faiss_Index_reconstruct_n(loc, 12, 4, out));
    FXT_SAME(out, x + 2 * d, sizeof out);
    faiss_Index_free(loc);
    /* The server still serves. */
    ping_ok(s, "", CLIENT, CONN, "default");
    free(x);
    fx_state_free(s);
}

/* ---- binary indexes (FX_OP_BINARY) -------------------------------------- */

static void bbegin(fx_wbuf* w, const char* key, int64_t bop) {
    begin(w, key);
    fx_w_i64(w, bop);
}

static int req_bcreate(fx_state* s, const char* key, const char* name,
                       int64_t d, const char* desc, info_t* info, rep_t* p) {
    fx_wbuf w;
    bbegin(&w, key, FX_BIN_CREATE);
    fx_w_str(&w, name);
    fx_w_i64(&w, d);
    fx_w_str(&w, desc);
    int st = call(s, &w, FX_OP_BINARY, p);
    if (st == 0 && info) {
        r_info(p, info);
        cr_assert(info->kind & FX_KIND_BINARY, "binfo without the binary bit");
        cr_assert_eq(info->d, d);
    }
    return st;
}

static uint64_t bcreate(fx_state* s, const char* key, const char* name,
                        int64_t d, const char* desc, info_t* info) {
    rep_t p;
    info_t i;
    EXPECT_OK(req_bcreate(s, key, name, d, desc, &i, &p), p);
    rep_free(&p);
    if (info) *info = i;
    return i.handle;
}

/* TRAIN / ADD / ADD_WITH_IDS (ids != NULL) */
static int req_bvecs(fx_state* s, const char* key, int64_t bop, uint64_t h,
                     int64_t n, const uint8_t* x, uint64_t nbytes,
                     const idx_t* ids, rep_t* p) {
    fx_wbuf w;
    bbegin(&w, key, bop);
    fx_w_u64(&w, h);
    fx_w_i64(&w, n);
    fx_w_array(&w, x, nbytes, 1);
    if (ids) fx_w_array(&w, ids, (uint64_t)n, sizeof(idx_t));
    return call(s, &w, FX_OP_BINARY, p);
}

static int req_bsearch(fx_state* s, const char* key, uint64_t h, int64_t n,
                       int64_t k, const uint8_t* x, uint64_t nbytes,
                       rep_t* p) {
    fx_wbuf w;
    bbegin(&w, key, FX_BIN_SEARCH);
    fx_w_u64(&w, h);
    fx_w_i64(&w, n);
    fx_w_i64(&w, k);
    fx_w_array(&w, x, nbytes, 1);
    return call(s, &w, FX_OP_BINARY, p);
}

static int req_bhandle(fx_state* s, const char* key, int64_t bop, uint64_t h,
                       rep_t* p) {
    fx_wbuf w;
    bbegin(&w, key, bop);
    fx_w_u64(&w, h);
    return call(s, &w, FX_OP_BINARY, p);
}

/* A search through the handler equals the same search on a local index. */
static void bsearch_same(fx_state* s, const char* key, uint64_t h,
                         FaissIndexBinary* loc, int64_t n, int64_t k,
                         const uint8_t* xq, int cs) {
    rep_t p;
    EXPECT_OK(req_bsearch(s, key, h, n, k, xq, (uint64_t)n * cs, &p), p);
    const int32_t* D = r_array(&p, 4, (uint64_t)(n * k));
    const idx_t* I = r_array(&p, 8, (uint64_t)(n * k));
    r_end(&p);
    int32_t* Dl = malloc(sizeof(int32_t) * n * k);
    idx_t* Il = malloc(sizeof(idx_t) * n * k);
    FXT_OK(faiss_IndexBinary_search(loc, n, xq, k, Dl, Il));
    FXT_SAME(D, Dl, sizeof(int32_t) * n * k);
    FXT_SAME(I, Il, sizeof(idx_t) * n * k);
    free(Dl);
    free(Il);
    rep_free(&p);
}

Test(handler, binary_index_ops_match_local) {
    fx_state* s = new_state(KEYS, 0, 0);
    const int d = 64, cs = 8, nb = 300, nq = 6;
    uint8_t* xb = fxt_bytes(nb, d, 21);
    uint8_t* xq = fxt_bytes(nq, d, 22);
    info_t in;
    uint64_t h = bcreate(s, K_ALICE, "bits", d, "BFlat", &in);
    cr_assert(in.kind & FX_KIND_FLAT);
    cr_assert_str_eq(in.cls, "IndexBinaryFlat");
    FaissIndexBinaryFlat* loc = NULL;
    FXT_OK(faiss_IndexBinaryFlat_new_with(&loc, d));
    rep_t p;
    EXPECT_OK(req_bvecs(s, K_ALICE, FX_BIN_ADD, h, nb, xb, (uint64_t)nb * cs,
                        NULL, &p), p);
    cr_assert_eq(r_i64(&p), nb, "state: ntotal");
    cr_assert_eq(r_i64(&p), 1, "state: is_trained");
    r_end(&p);
    rep_free(&p);
    FXT_OK(faiss_IndexBinary_add((FaissIndexBinary*)loc, nb, xb));
    bsearch_same(s, K_ALICE, h, (FaissIndexBinary*)loc, nq, 5, xq, cs);
    /* reconstruct of keys and of a range: the stored codes */
    fx_wbuf w;
    bbegin(&w, K_ALICE, FX_BIN_RECONSTRUCT_N);
    fx_w_u64(&w, h);
    fx_w_i64(&w, 10);
    fx_w_i64(&w, 3);
    EXPECT_OK(call(s, &w, FX_OP_BINARY, &p), p);
    FXT_SAME(r_array(&p, 1, 3 * cs), xb + 10 * cs, 3 * cs);
    r_end(&p);
    rep_free(&p);
    /* OPEN and LIST see the binary index; OPEN answers binfo */
    EXPECT_OK(req_name(s, K_ALICE, FX_OP_OPEN, "bits", &p), p);
    info_t oi;
    r_info(&p, &oi);
    cr_assert_eq(oi.handle, h);
    cr_assert(oi.kind & FX_KIND_BINARY);
    cr_assert_eq(oi.ntotal, nb);
    rep_free(&p);

    /* binary IVF over a server-side quantizer (WRAP_IVF) */
    uint64_t hq = bcreate(s, K_ALICE, "", d, "BFlat", NULL);
    bbegin(&w, K_ALICE, FX_BIN_WRAP_IVF);
    fx_w_u64(&w, hq);
    fx_w_i64(&w, d);
    fx_w_i64(&w, 4);
    EXPECT_OK(call(s, &w, FX_OP_BINARY, &p), p);
    info_t ii;
    r_info(&p, &ii);
    rep_free(&p);
    cr_assert(ii.kind & FX_KIND_IVF);
    cr_assert_not(ii.is_trained);
    EXPECT_OK(req_bvecs(s, K_ALICE, FX_BIN_TRAIN, ii.handle, nb, xb,
                        (uint64_t)nb * cs, NULL, &p), p);
    rep_free(&p);
    /* the quantizer is shared: it now holds the 4 centroids */
    EXPECT_OK(req_bhandle(s, K_ALICE, FX_BIN_INFO, hq, &p), p);
    info_t qi;
    r_info(&p, &qi);
    cr_assert_eq(qi.ntotal, 4);
    rep_free(&p);
    /* releasing the quantizer's handle leaves the IVF working */
    EXPECT_OK(req_handle(s, K_ALICE, FX_OP_RELEASE, hq, &p), p);
    rep_free(&p);
    idx_t ids[3] = {7, 8, 9};
    EXPECT_OK(req_bvecs(s, K_ALICE, FX_BIN_ADD_WITH_IDS, ii.handle, 3, xb,
                        3 * cs, ids, &p), p);
    cr_assert_eq(r_i64(&p), 3);
    rep_free(&p);
    EXPECT_OK(req_bsearch(s, K_ALICE, ii.handle, 1, 1, xb, cs, &p), p);
    r_array(&p, 4, 1);
    cr_assert_eq(*(const idx_t*)r_array(&p, 8, 1), 7);
    rep_free(&p);
    EXPECT_OK(req_handle(s, K_ALICE, FX_OP_RELEASE, ii.handle, &p), p);
    rep_free(&p);

    faiss_IndexBinaryFlat_free(loc);
    free(xb);
    free(xq);
    fx_state_free(s);
}

/* Binary SEARCH with trailing search parameters: an IVF's nprobe for this
 * request only, as faissx_IndexBinary_search_with_params locally. */
Test(handler, binary_search_params) {
    fx_state* s = new_state(KEYS, 0, 0);
    const int d = 64, cs = 8, nb = 600, nq = 5, k = 4;
    uint8_t* xb = fxt_bytes(nb, d, 23);
    uint64_t h = bcreate(s, K_ALICE, "", d, "BIVF8", NULL);
    FaissIndexBinary* loc = NULL;
    FXT_OK(faiss_index_binary_factory(&loc, d, "BIVF8"));
    rep_t p;
    EXPECT_OK(req_bvecs(s, K_ALICE, FX_BIN_TRAIN, h, nb, xb,
                        (uint64_t)nb * cs, NULL, &p), p);
    rep_free(&p);
    EXPECT_OK(req_bvecs(s, K_ALICE, FX_BIN_ADD, h, nb, xb, (uint64_t)nb * cs,
                        NULL, &p), p);
    rep_free(&p);
    FXT_OK(faiss_IndexBinary_train(loc, nb, xb));
    FXT_OK(faiss_IndexBinary_add(loc, nb, xb));
    const uint64_t probes[] = {1, 3, 8};
    for (int i = 0; i < 3; i++) {
        fx_wbuf w;
        bbegin(&w, K_RO, FX_BIN_SEARCH); /* a read: read-only keys may */
        fx_w_u64(&w, h);
        fx_w_i64(&w, nq);
        fx_w_i64(&w, k);
        fx_w_array(&w, xb, (uint64_t)nq * cs, 1);
        fx_w_i64(&w, FX_PARAMS_IVF);
        fx_w_i64(&w, 0);
        fx_w_u64(&w, probes[i]);
        fx_w_u64(&w, 0);
        EXPECT_OK(call(s, &w, FX_OP_BINARY, &p), p);
        const int32_t* D = r_array(&p, 4, (uint64_t)(nq * k));
        const idx_t* I = r_array(&p, 8, (uint64_t)(nq * k));
        r_end(&p);
        int32_t Dl[5 * 4];
        idx_t Il[5 * 4];
        faiss_IndexBinaryIVF_set_nprobe(faiss_IndexBinaryIVF_cast(loc),
                                        probes[i]);
        FXT_OK(faiss_IndexBinary_search(loc, nq, xb, k, Dl, Il));
        FXT_SAME(D, Dl, sizeof Dl);
        FXT_SAME(I, Il, sizeof Il);
        rep_free(&p);
    }
    /* the server's index kept its nprobe (1) */
    fx_wbuf w;
    bbegin(&w, K_ALICE, FX_BIN_GET_PARAM);
    fx_w_u64(&w, h);
    fx_w_str(&w, "nprobe");
    EXPECT_OK(call(s, &w, FX_OP_BINARY, &p), p);
    double np;
    cr_assert_eq(fx_r_f64(&p.r, &np), 0);
    cr_assert_eq(np, 1.0);
    rep_free(&p);
    /* a selector: refused, as locally; an unknown parameter type */
    bbegin(&w, K_ALICE, FX_BIN_SEARCH);
    fx_w_u64(&w, h);
    fx_w_i64(&w, 1);
    fx_w_i64(&w, k);
    fx_w_array(&w, xb, cs, 1);
    fx_w_i64(&w, FX_PARAMS_PLAIN);
    fx_w_i64(&w, 1);
    fx_w_i64(&w, FX_SEL_RANGE);
    fx_w_i64(&w, 0);
    fx_w_i64(&w, 10);
    EXPECT_ERR(call(s, &w, FX_OP_BINARY, &p), p, FAISSX_E_UNSUPPORTED,
               "selectors are not supported");
    rep_free(&p);
    bbegin(&w, K_ALICE, FX_BIN_SEARCH);
    fx_w_u64(&w, h);
    fx_w_i64(&w, 1);
    fx_w_i64(&w, k);
    fx_w_array(&w, xb, cs, 1);
    fx_w_i64(&w, 9);
    EXPECT_ERR(call(s, &w, FX_OP_BINARY, &p), p, FAISSX_E_INVALID,
               "unknown search parameter type 9");
    rep_free(&p);
    faiss_IndexBinary_free(loc);
    free(xb);
    fx_state_free(s);
}

Test(handler, binary_bad_input_gets_errors_and_server_keeps_serving) {
    fx_state* s = new_state(KEYS, 50, 0);
    const int d = 64, cs = 8, nb = 100;
    uint8_t* xb = fxt_bytes(nb, d, 31);
    uint64_t h = bcreate(s, K_ALICE, "b", d, "BFlat", NULL);
    rep_t p;
    EXPECT_OK(req_bvecs(s, K_ALICE, FX_BIN_ADD, h, nb, xb, (uint64_t)nb * cs,
                        NULL, &p), p);
    rep_free(&p);
    FaissIndexBinaryFlat* loc = NULL;
    FXT_OK(faiss_IndexBinaryFlat_new_with(&loc, d));
    FXT_OK(faiss_IndexBinary_add((FaissIndexBinary*)loc, nb, xb));
    size_t n0 = fx_state_index_count(s);

    /* wrong code size: the array must hold n * d/8 bytes */
    EXPECT_ERR(req_bvecs(s, K_ALICE, FX_BIN_ADD, h, 2, xb, 2 * cs + 1, NULL,
                         &p), p, FAISSX_E_INVALID, "x has 17 elements, expected 16");
    rep_free(&p);
    EXPECT_ERR(req_bvecs(s, K_ALICE, FX_BIN_ADD, h, 2, xb, 2 * cs - 8, NULL,
                         &p), p, FAISSX_E_INVALID, "x has 8 elements, expected 16");
    rep_free(&p);
    EXPECT_ERR(req_bsearch(s, K_ALICE, h, 1, 3, xb, cs - 1, &p), p,
               FAISSX_E_INVALID, "x has 7 elements, expected 8");
    rep_free(&p);
    idx_t ids[2] = {1, 2};
    EXPECT_ERR(req_bvecs(s, K_ALICE, FX_BIN_ADD_WITH_IDS, h, 2, xb, 2 * cs,
                         NULL, &p), p, FAISSX_E_PROTOCOL, "bad request");
    rep_free(&p);
    (void)ids;
    /* k <= 0, k over the server's limit, n < 0 */
    EXPECT_ERR(req_bsearch(s, K_ALICE, h, 1, 0, xb, cs, &p), p,
               FAISSX_E_INVALID, "k must be > 0");
    rep_free(&p);
    EXPECT_ERR(req_bsearch(s, K_ALICE, h, 1, -4, xb, cs, &p), p,
               FAISSX_E_INVALID, "k must be > 0");
    rep_free(&p);
    EXPECT_ERR(req_bsearch(s, K_ALICE, h, 1, 51, xb, cs, &p), p,
               FAISSX_E_LIMIT, "exceeds the server limit of 50");
    rep_free(&p);
    EXPECT_ERR(req_bsearch(s, K_ALICE, h, -1, 3, xb, 0, &p), p,
               FAISSX_E_INVALID, "n must be >= 0");
    rep_free(&p);
    /* unknown index, and another tenant's: the same reply */
    char want[64];
    snprintf(want, sizeof want, "unknown index handle %llu",
             (unsigned long long)(h + 1000));
    EXPECT_ERR(req_bsearch(s, K_ALICE, h + 1000, 1, 3, xb, cs, &p), p,
               FAISSX_E_NOT_FOUND, want);
    rep_free(&p);
    snprintf(want, sizeof want, "unknown index handle %llu",
             (unsigned long long)h);
    EXPECT_ERR(req_bsearch(s, K_BOB, h, 1, 3, xb, cs, &p), p,
               FAISSX_E_NOT_FOUND, want);
    rep_free(&p);
    const int64_t hops[] = {FX_BIN_INFO, FX_BIN_RESET, FX_BIN_SERIALIZE,
                            FX_BIN_CLONE};
    for (size_t i = 0; i < sizeof hops / sizeof *hops; i++) {
        EXPECT_ERR(req_bhandle(s, K_BOB, hops[i], h, &p), p,
                   FAISSX_E_NOT_FOUND, want);
        rep_free(&p);
    }
    EXPECT_ERR(req_name(s, K_BOB, FX_OP_OPEN, "b", &p), p, FAISSX_E_NOT_FOUND,
               "no index named 'b'");
    rep_free(&p);
    EXPECT_ERR(req_name(s, K_BOB, FX_OP_DROP, "b", &p), p, FAISSX_E_NOT_FOUND,
               "no index named 'b'");
    rep_free(&p);
    EXPECT_ERR(req_handle(s, K_BOB, FX_OP_RELEASE, h, &p), p,
               FAISSX_E_NOT_FOUND, want);
    rep_free(&p);
    /* a float handle to a binary op, a binary handle to a float op */
    uint64_t hf = create(s, K_ALICE, "", 8, METRIC_L2, "Flat", NULL);
    EXPECT_ERR(req_bsearch(s, K_ALICE, hf, 1, 3, xb, 1, &p), p,
               FAISSX_E_INVALID, "is not a binary index");
    rep_free(&p);
    float xf[8] = {0};
    EXPECT_ERR(req_search(s, K_ALICE, FX_OP_SEARCH, h, 1, 3, xf, 8, &p), p,
               FAISSX_E_INVALID, "is a binary index");
    rep_free(&p);
    const int fops[] = {FX_OP_INFO, FX_OP_RESET, FX_OP_SERIALIZE, FX_OP_CLONE,
                        FX_OP_SA_CODE_SIZE};
    for (size_t i = 0; i < sizeof fops / sizeof *fops; i++) {
        EXPECT_ERR(req_handle(s, K_ALICE, fops[i], h, &p), p,
                   FAISSX_E_INVALID, "is a binary index");
        rep_free(&p);
    }
    fx_wbuf w;
    bbegin(&w, K_ALICE, FX_BIN_WRAP_IVF); /* quantizer must be binary */
    fx_w_u64(&w, hf);
    fx_w_i64(&w, 8);
    fx_w_i64(&w, 2);
    EXPECT_ERR(call(s, &w, FX_OP_BINARY, &p), p, FAISSX_E_INVALID,
               "is not a binary index");
    rep_free(&p);
    bbegin(&w, K_ALICE, FX_BIN_WRAP_IVF); /* dimension mismatch */
    fx_w_u64(&w, h);
    fx_w_i64(&w, 128);
    fx_w_i64(&w, 2);
    EXPECT_ERR(call(s, &w, FX_OP_BINARY, &p), p, FAISSX_E_INVALID,
               "quantizer dimension 64 differs from d = 128");
    rep_free(&p);
    bbegin(&w, K_ALICE, FX_BIN_WRAP_IVF);
    fx_w_u64(&w, h);
    fx_w_i64(&w, d);
    fx_w_i64(&w, 0);
    EXPECT_ERR(call(s, &w, FX_OP_BINARY, &p), p, FAISSX_E_INVALID, "nlist");
    rep_free(&p);
    /* unknown binary operations */
    const int64_t unknown[] = {0, FX_BIN_MAX_, -1, 1000};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        EXPECT_ERR(req_bhandle(s, K_ALICE, unknown[i], h, &p), p,
                   FAISSX_E_UNSUPPORTED, "unknown binary operation");
        rep_free(&p);
    }
    /* bad creations */
    EXPECT_ERR(req_bcreate(s, K_ALICE, "", 12, "BFlat", NULL, &p), p,
               FAISSX_E_INVALID, "multiple of 8");
    rep_free(&p);
    EXPECT_ERR(req_bcreate(s, K_ALICE, "", 0, "BFlat", NULL, &p), p,
               FAISSX_E_INVALID, "dimension must be");
    rep_free(&p);
    EXPECT_ERR(req_bcreate(s, K_ALICE, "", 64, "Flat", NULL, &p), p,
               FAISSX_E_FAISS, "");
    rep_free(&p);
    EXPECT_ERR(req_bcreate(s, K_ALICE, ".x", 64, "BFlat", NULL, &p), p,
               FAISSX_E_INVALID, "invalid index name");
    rep_free(&p);
    EXPECT_ERR(req_bcreate(s, K_ALICE, "b", 64, "BFlat", NULL, &p), p,
               FAISSX_E_EXISTS, "already exists");
    rep_free(&p);
    /* parameters: unknown or of another index type */
    bbegin(&w, K_ALICE, FX_BIN_SET_PARAM);
    fx_w_u64(&w, h);
    fx_w_str(&w, "nprobe");
    fx_w_f64(&w, 3);
    EXPECT_ERR(call(s, &w, FX_OP_BINARY, &p), p, FAISSX_E_UNSUPPORTED,
               "cannot set parameter 'nprobe' on IndexBinaryFlat");
    rep_free(&p);
    bbegin(&w, K_ALICE, FX_BIN_GET_PARAM);
    fx_w_u64(&w, h);
    fx_w_str(&w, "efSearch");
    EXPECT_ERR(call(s, &w, FX_OP_BINARY, &p), p, FAISSX_E_UNSUPPORTED,
               "not readable");
    rep_free(&p);
    /* the read-only key: search allowed, writes refused */
    bsearch_same(s, K_RO, h, (FaissIndexBinary*)loc, 3, 4, xb, cs);
    EXPECT_ERR(req_bvecs(s, K_RO, FX_BIN_ADD, h, 1, xb, cs, NULL, &p), p,
               FAISSX_E_PERMISSION, "read-only");
    rep_free(&p);
    EXPECT_ERR(req_bhandle(s, K_RO, FX_BIN_RESET, h, &p), p,
               FAISSX_E_PERMISSION, "read-only");
    rep_free(&p);
    EXPECT_ERR(req_bcreate(s, K_RO, "", 64, "BFlat", NULL, &p), p,
               FAISSX_E_PERMISSION, "read-only");
    rep_free(&p);

    /* nothing changed, and the server still answers correctly */
    cr_assert_eq(fx_state_index_count(s), n0 + 1 /* hf */);
    EXPECT_OK(req_bhandle(s, K_ALICE, FX_BIN_INFO, h, &p), p);
    info_t in;
    r_info(&p, &in);
    cr_assert_eq(in.ntotal, nb, "failed requests added nothing");
    rep_free(&p);
    bsearch_same(s, K_ALICE, h, (FaissIndexBinary*)loc, 5, 7, xb + cs, cs);
    faiss_IndexBinaryFlat_free(loc);
    free(xb);
    fx_state_free(s);
}

Test(handler, named_binary_kept_by_durable_server) {
    faissx_remote_disable();
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.data_dir = fxt_tmp_path("bin-store");
    fx_state* s = NULL;
    char err[256] = "";
    cr_assert_eq(fx_state_new(&c, &s, err, sizeof err), 0, "%s", err);
    info_t in;
    bcreate(s, "", "named", 64, "BFlat", &in);
    cr_assert_eq(in.d, 64);
    cr_assert_eq(fx_state_stored_count(s), 1);
    /* unnamed binary indexes live in memory */
    bcreate(s, "", "", 64, "BFlat", NULL);
    cr_assert_eq(fx_state_stored_count(s), 1);
    rep_t p;
    EXPECT_ERR(req_bcreate(s, "", "named", 64, "BFlat", NULL, &p), p,
               FAISSX_E_EXISTS, "already exists");
    rep_free(&p);
    EXPECT_ERR(req_bcreate(s, "", "bad", 64, "NoSuchBinary", NULL, &p), p,
               FAISSX_E_FAISS, "did not generate an index");
    rep_free(&p);
    cr_assert_eq(fx_state_stored_count(s), 1, "a failed create stored nothing");
    fx_state_free(s);
    /* a new server on the same directory restores it */
    cr_assert_eq(fx_state_new(&c, &s, err, sizeof err), 0, "%s", err);
    cr_assert_eq(fx_state_stored_count(s), 1);
    fx_state_free(s);
}

/* ---- read-only keys and SET_PARAM ----------------------------------------
 * A handle is shared by every client of the index (OPEN of a name answers
 * the same handle), so SET_PARAM changes what all of them see: a write.
 * A read-only key is refused, float and binary, in memory and durable, and
 * passes nprobe with each search instead. */

static void ro_set_param_refused(fx_state* s, uint64_t h, int binary,
                                 const char* name, double v) {
    fx_wbuf w;
    rep_t p;
    if (binary)
        bbegin(&w, K_RO, FX_BIN_SET_PARAM);
    else
        begin(&w, K_RO);
    fx_w_u64(&w, h);
    fx_w_str(&w, name);
    fx_w_f64(&w, v);
    EXPECT_ERR(call(s, &w, binary ? FX_OP_BINARY : FX_OP_SET_PARAM, &p), p,
               FAISSX_E_PERMISSION, "read-only: SET_PARAM");
    cr_assert(strstr(p.err, name), "the message names '%s': %s", name, p.err);
    rep_free(&p);
}

static double bget_param(fx_state* s, const char* key, uint64_t h,
                         const char* name) {
    fx_wbuf w;
    rep_t p;
    bbegin(&w, key, FX_BIN_GET_PARAM);
    fx_w_u64(&w, h);
    fx_w_str(&w, name);
    EXPECT_OK(call(s, &w, FX_OP_BINARY, &p), p);
    double v = 0;
    fx_r_f64(&p.r, &v);
    r_end(&p);
    rep_free(&p);
    return v;
}

static double get_param_as(fx_state* s, const char* key, uint64_t h,
                           const char* name) {
    rep_t p;
    double v = -1;
    EXPECT_OK(req_get_param(s, key, h, name, &v, &p), p);
    rep_free(&p);
    return v;
}

/* SEARCH with an IVF search parameter block carrying nprobe. */
static void search_nprobe(fx_state* s, const char* key, uint64_t h, int64_t n,
                          int64_t k, const float* x, int d, uint64_t nprobe,
                          float* D, idx_t* I) {
    fx_wbuf w;
    rep_t p;
    begin(&w, key);
    fx_w_u64(&w, h);
    fx_w_i64(&w, n);
    fx_w_i64(&w, k);
    fx_w_array(&w, x, (uint64_t)n * d, sizeof(float));
    fx_w_i64(&w, FX_PARAMS_IVF);
    fx_w_i64(&w, 0); /* no selector */
    fx_w_u64(&w, nprobe);
    fx_w_u64(&w, 0);
    EXPECT_OK(call(s, &w, FX_OP_SEARCH, &p), p);
    memcpy(D, r_array(&p, sizeof(float), (uint64_t)(n * k)),
           sizeof(float) * n * k);
    memcpy(I, r_array(&p, sizeof(idx_t), (uint64_t)(n * k)),
           sizeof(idx_t) * n * k);
    r_end(&p);
    rep_free(&p);
}

static void ro_params_case(const char* data_dir) {
    faissx_remote_disable();
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.auth_keys = KEYS;
    c.data_dir = data_dir;
    fx_state* s = NULL;
    char err[256] = "";
    cr_assert_eq(fx_state_new(&c, &s, err, sizeof err), 0, "%s", err);
    if (data_dir) cr_assert_eq(fx_state_stored_count(s), 0);

    /* float IVF */
    const int d = 8, nb = 400, nq = 5, k = 4;
    uint64_t h = create(s, K_ALICE, "ivf", d, METRIC_L2, "IVF8,Flat", NULL);
    float* x = fxt_uniform(nb, d, 31);
    train(s, K_ALICE, h, nb, x, d);
    add(s, K_ALICE, h, nb, x, d);
    set_param(s, K_ALICE, h, "nprobe", 1);
    if (data_dir) cr_assert_eq(fx_state_stored_count(s), 1);
    ro_set_param_refused(s, h, 0, "nprobe", 8);
    ro_set_param_refused(s, h, 0, "verbose", 1);
    ro_set_param_refused(s, h, 0, "efSearch", 16); /* the key decides first */
    cr_assert_eq(get_param_as(s, K_RO, h, "nprobe"), 1, "nprobe was changed");
    cr_assert_eq(get_param_as(s, K_ALICE, h, "verbose"), 0);
    /* the read-only key's own nprobe travels with its search */
    float D[5 * 4], Dw[5 * 4];
    idx_t I[5 * 4], Iw[5 * 4];
    search_nprobe(s, K_RO, h, nq, k, x, d, 8, D, I);
    cr_assert_eq(get_param_as(s, K_RO, h, "nprobe"), 1);
    /* a write key still sets it for everyone: the same answers */
    set_param(s, K_ALICE, h, "nprobe", 8);
    search(s, K_ALICE, h, nq, k, x, d, Dw, Iw);
    FXT_SAME(D, Dw, sizeof D);
    FXT_SAME(I, Iw, sizeof I);
    cr_assert_eq(get_param_as(s, K_RO, h, "nprobe"), 8);

    /* binary IVF */
    const int bd = 64, cs = bd / 8;
    uint64_t hb = bcreate(s, K_ALICE, "bivf", bd, "BIVF8", NULL);
    uint8_t* xb = fxt_bytes(nb, bd, 32);
    rep_t p;
    EXPECT_OK(req_bvecs(s, K_ALICE, FX_BIN_TRAIN, hb, nb, xb,
                        (uint64_t)nb * cs, NULL, &p), p);
    rep_free(&p);
    double np0 = bget_param(s, K_ALICE, hb, "nprobe");
    ro_set_param_refused(s, hb, 1, "nprobe", np0 + 3);
    ro_set_param_refused(s, hb, 1, "verbose", 1);
    cr_assert_eq(bget_param(s, K_RO, hb, "nprobe"), np0, "nprobe was changed");
    cr_assert_eq(bget_param(s, K_RO, hb, "verbose"), 0);
    fx_wbuf w;
    bbegin(&w, K_ALICE, FX_BIN_SET_PARAM);
    fx_w_u64(&w, hb);
    fx_w_str(&w, "nprobe");
    fx_w_f64(&w, np0 + 3);
    EXPECT_OK(call(s, &w, FX_OP_BINARY, &p), p);
    rep_free(&p);
    cr_assert_eq(bget_param(s, K_RO, hb, "nprobe"), np0 + 3);
    free(xb);
    free(x);
    fx_state_free(s);
}

Test(handler, read_only_key_cannot_set_params) {
    ro_params_case(NULL);
}

Test(handler, read_only_key_cannot_set_params_of_stored_index) {
    ro_params_case(fxt_tmp_path("ro-params"));
}

/* SEARCH with HNSW search parameters (type 3) from a read-only key, and
 * the values a client never sends: efSearch out of [1, INT_MAX], a block
 * that ends early. RANGE_SEARCH takes parameters too. */
static void hnsw_params_req(fx_wbuf* w, const char* key, uint64_t h,
                            const float* x, int d, int64_t ef, int full) {
    begin(w, key);
    fx_w_u64(w, h);
    fx_w_i64(w, 1);
    fx_w_i64(w, 3);
    fx_w_array(w, x, (uint64_t)d, sizeof(float));
    fx_w_i64(w, FX_PARAMS_HNSW);
    fx_w_i64(w, 0); /* no selector */
    fx_w_i64(w, ef);
    if (full) fx_w_i64(w, 1);
}

Test(handler, hnsw_and_range_search_params) {
    fx_state* s = new_state(KEYS, 50, 0);
    const int d = 8, nb = 300;
    float* x = fxt_uniform(nb, d, 77);
    uint64_t h = create(s, K_ALICE, "hn", d, METRIC_L2, "HNSW8", NULL);
    add(s, K_ALICE, h, nb, x, d);
    fx_wbuf w;
    rep_t p;
    hnsw_params_req(&w, K_RO, h, x + 5 * d, d, 32, 1);
    EXPECT_OK(call(s, &w, FX_OP_SEARCH, &p), p);
    const float* D = r_array(&p, sizeof(float), 3);
    const idx_t* I = r_array(&p, sizeof(idx_t), 3);
    cr_assert_eq(I[0], 5);
    cr_assert_eq(D[0], 0.0f);
    rep_free(&p);
    hnsw_params_req(&w, K_RO, h, x, d, 0, 1);
    EXPECT_ERR(call(s, &w, FX_OP_SEARCH, &p), p, FAISSX_E_INVALID,
               "efSearch must be in [1, 2147483647] (got 0)");
    rep_free(&p);
    hnsw_params_req(&w, K_RO, h, x, d, (int64_t)1 << 31, 1);
    EXPECT_ERR(call(s, &w, FX_OP_SEARCH, &p), p, FAISSX_E_INVALID,
               "efSearch must be in");
    rep_free(&p);
    hnsw_params_req(&w, K_RO, h, x, d, 16, 0); /* no check_relative_distance */
    EXPECT_ERR(call(s, &w, FX_OP_SEARCH, &p), p, FAISSX_E_PROTOCOL, "");
    rep_free(&p);

    /* RANGE_SEARCH on a Flat with a selector: only selected ids */
    uint64_t f = create(s, K_ALICE, "fl", d, METRIC_L2, "Flat", NULL);
    add(s, K_ALICE, f, nb, x, d);
    begin(&w, K_RO);
    fx_w_u64(&w, f);
    fx_w_i64(&w, 1);
    fx_w_f64(&w, 100.0); /* every vector is within */
    fx_w_array(&w, x, (uint64_t)d, sizeof(float));
    fx_w_i64(&w, FX_PARAMS_PLAIN);
    fx_w_i64(&w, 1);
    fx_w_i64(&w, FX_SEL_RANGE);
    fx_w_i64(&w, 10);
    fx_w_i64(&w, 20);
    EXPECT_OK(call(s, &w, FX_OP_RANGE_SEARCH, &p), p);
    const uint64_t* lims = r_array(&p, 8, 2);
    cr_assert_eq(lims[1] - lims[0], 10);
    const idx_t* L = r_array(&p, sizeof(idx_t), 10);
    for (int i = 0; i < 10; i++) cr_assert(L[i] >= 10 && L[i] < 20);
    rep_free(&p);
    free(x);
    fx_state_free(s);
}
