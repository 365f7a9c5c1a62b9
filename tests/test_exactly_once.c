/* test_exactly_once.c -- a retried mutation of a named index in a durable
 * server is applied once even when the server restarted in between: the
 * store logs which (client, request) each mutation came from and rebuilds
 * that memory at recovery (persist/store.h, "EXACTLY ONCE").
 *
 * First through the handler alone (fx_state on a data directory, freed and
 * made again = a restart; with and without a checkpoint in between; the
 * bounds), then end to end: a real faissx-server drops the reply to an
 * add / add_with_ids / remove_ids (--test-drop-replies), is killed with
 * SIGKILL and restarted on its data directory, and the client's own retry
 * (which reopens the index by name) gets success while the data show the
 * mutation applied exactly once. Also: a store written by the previous
 * format (tests/fixtures/store-v1) still opens and is upgraded. */
#include "common.h"
#include "server_fixture.h"

#include "net/proto.h"
#include "net/server.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { D = 8 };

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* =======================================================================
 * The handler alone
 * ======================================================================= */

static fx_state* state_on(const char* dir) {
    fx_server_conf c;
    fx_server_conf_init(&c);
    c.data_dir = dir;
    c.sync = FAISSX_SYNC_NONE; /* a process restart loses nothing anyway */
    fx_state* s = NULL;
    char err[256] = "";
    cr_assert_eq(fx_state_new(&c, &s, err, sizeof err), 0, "%s", err);
    return s;
}

typedef struct {
    fx_wbuf bytes;
    fx_hdr h;
    fx_rbuf body;
    char err[512];
} reply_t;

static void req_begin(fx_wbuf* w) {
    fx_w_init(w);
    fx_w_header_space(w);
    fx_w_str(w, ""); /* no API key */
}

/* Sends w (consumed) as op from (client, rid); returns the status. */
static int send(fx_state* s, fx_wbuf* w, int op, uint64_t client,
                uint64_t rid, reply_t* out) {
    fx_hdr h = {0};
    h.op = (uint16_t)op;
    h.request_id = rid;
    h.client_id = client;
    h.timeout_ms = 10000;
    fx_w_finish(w, &h);
    cr_assert(!w->oom);
    fx_req_info info = {7, 0};
    fx_req_meta meta;
    fx_w_init(&out->bytes);
    fx_state_handle_req(s, w->data, w->len, &info, &out->bytes, &meta);
    fx_w_free(w);
    char why[200];
    cr_assert_eq(fx_hdr_decode(out->bytes.data, out->bytes.len, &out->h, why,
                               sizeof why), 0, "%s", why);
    fx_r_init(&out->body, out->bytes.data + FX_HDR_SIZE,
              out->bytes.len - FX_HDR_SIZE);
    out->err[0] = '\0';
    if (out->h.status != 0)
        cr_assert_eq(fx_r_str(&out->body, out->err, sizeof out->err - 1), 0);
    return out->h.status;
}

static uint64_t rid_seq = 1000;

static uint64_t info_handle(reply_t* r) {
    uint64_t h = 0;
    cr_assert_eq(fx_r_u64(&r->body, &h), 0);
    fx_w_free(&r->bytes);
    return h;
}

static uint64_t h_create(fx_state* s, const char* name, const char* desc) {
    fx_wbuf w;
    reply_t r;
    req_begin(&w);
    fx_w_str(&w, name);
    fx_w_i64(&w, D);
    fx_w_i64(&w, METRIC_L2);
    fx_w_str(&w, desc);
    cr_assert_eq(send(s, &w, FX_OP_CREATE, 1, rid_seq++, &r), 0, "%s", r.err);
    return info_handle(&r);
}

static uint64_t h_open(fx_state* s, const char* name) {
    fx_wbuf w;
    reply_t r;
    req_begin(&w);
    fx_w_str(&w, name);
    cr_assert_eq(send(s, &w, FX_OP_OPEN, 1, rid_seq++, &r), 0, "%s", r.err);
    return info_handle(&r);
}

static int64_t h_ntotal(fx_state* s, uint64_t handle) {
    fx_wbuf w;
    reply_t r;
    req_begin(&w);
    fx_w_u64(&w, handle);
    cr_assert_eq(send(s, &w, FX_OP_INFO, 1, rid_seq++, &r), 0, "%s", r.err);
    uint64_t h;
    int64_t d, metric, trained, ntotal;
    cr_assert_eq(fx_r_u64(&r.body, &h), 0);
    cr_assert_eq(fx_r_i64(&r.body, &d) | fx_r_i64(&r.body, &metric) |
                         fx_r_i64(&r.body, &trained) |
                         fx_r_i64(&r.body, &ntotal), 0);
    fx_w_free(&r.bytes);
    return ntotal;
}

/* The mutations under test, as requests (not sent). */
static void add_req(fx_wbuf* w, uint64_t handle, int64_t n, uint64_t seed) {
    float* x = fxt_uniform((size_t)n, D, seed);
    req_begin(w);
    fx_w_u64(w, handle);
    fx_w_i64(w, n);
    fx_w_array(w, x, (uint64_t)n * D, sizeof(float));
    free(x);
}
static void add_ids_req(fx_wbuf* w, uint64_t handle, int64_t n,
                        int64_t id0, uint64_t seed) {
    add_req(w, handle, n, seed);
    idx_t ids[64];
    cr_assert(n <= 64);
    for (int64_t i = 0; i < n; i++) ids[i] = id0 + 3 * i;
    fx_w_array(w, ids, (uint64_t)n, sizeof(idx_t));
}
static void remove_req(fx_wbuf* w, uint64_t handle, int64_t lo, int64_t hi) {
    req_begin(w);
    fx_w_u64(w, handle);
    fx_w_i64(w, FX_SEL_RANGE);
    fx_w_i64(w, lo);
    fx_w_i64(w, hi);
}

typedef enum { M_ADD, M_ADD_IDS, M_REMOVE } mut_kind;

static const char* desc_of(mut_kind k) {
    return k == M_ADD ? "Flat" : "IDMap2,Flat";
}

/* The mutation `k` on handle, from (client, rid); returns the reply. */
static void mutate(fx_state* s, mut_kind k, uint64_t handle, uint64_t client,
                   uint64_t rid, reply_t* r) {
    fx_wbuf w;
    int op;
    switch (k) {
    case M_ADD:
        add_req(&w, handle, 5, rid);
        op = FX_OP_ADD;
        break;
    case M_ADD_IDS:
        add_ids_req(&w, handle, 5, 500, rid);
        op = FX_OP_ADD_WITH_IDS;
        break;
    default:
        remove_req(&w, handle, 100, 110);
        op = FX_OP_REMOVE_IDS;
        break;
    }
    cr_assert_eq(send(s, &w, op, client, rid, r), 0, "%s", r->err);
}

/* Fills an index with ids 100.. so that a remove has something to do. */
static void prefill(fx_state* s, uint64_t handle) {
    fx_wbuf w;
    reply_t r;
    add_ids_req(&w, handle, 20, 100, 77); /* ids 100, 103, ..., 157 */
    cr_assert_eq(send(s, &w, FX_OP_ADD_WITH_IDS, 1, rid_seq++, &r), 0, "%s",
                 r.err);
    fx_w_free(&r.bytes);
}

/* One scenario: mutate, lose the reply, restart (optionally after a
 * checkpoint, optionally with another client's write in between), retry:
 * the retry's reply body equals the original's and the data changed once. */
static void retry_across_restart(mut_kind k, int checkpoint, int other) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s",
             fxt_tmp_path(k == M_ADD ? "eo-add" : k == M_ADD_IDS ? "eo-ids"
                                                                 : "eo-rm"));
    fx_state* s = state_on(dir);
    uint64_t h = h_create(s, "eo", desc_of(k));
    if (k == M_REMOVE) prefill(s, h);
    int64_t before = h_ntotal(s, h);
    const uint64_t client = 0xC11E47, rid = 4242;
    reply_t first;
    mutate(s, k, h, client, rid, &first);
    int64_t after = h_ntotal(s, h);
    cr_assert_neq(after, before, "the mutation changed nothing");
    if (other) { /* another client writes: ntotal moves on */
        fx_wbuf w;
        reply_t r;
        if (k == M_ADD)
            add_req(&w, h, 2, 9);
        else
            add_ids_req(&w, h, 2, 9000, 9);
        cr_assert_eq(send(s, &w, k == M_ADD ? FX_OP_ADD : FX_OP_ADD_WITH_IDS,
                          77, 1, &r), 0, "%s", r.err);
        fx_w_free(&r.bytes);
    }
    int64_t expect = h_ntotal(s, h);
    if (checkpoint) {
        char err[256];
        cr_assert_eq(fx_state_checkpoint(s, err, sizeof err), 0, "%s", err);
    }
    fx_state_free(s); /* the reply never reached the client */

    s = state_on(dir);
    uint64_t h2 = h_open(s, "eo");
    cr_assert_neq(h2, h, "handles repeat across restarts");
    cr_assert_eq(h_ntotal(s, h2), expect);
    /* The client retries with the old handle first: unknown, and not
     * remembered, so its retry on the reopened handle runs. */
    {
        fx_wbuf w;
        reply_t r;
        add_req(&w, h, 5, rid);
        cr_assert_eq(send(s, &w, k == M_ADD ? FX_OP_ADD : k == M_ADD_IDS
                                                         ? FX_OP_ADD_WITH_IDS
                                                         : FX_OP_REMOVE_IDS,
                          client, rid, &r), FAISSX_E_NOT_FOUND, "%s", r.err);
        fx_w_free(&r.bytes);
    }
    reply_t again;
    mutate(s, k, h2, client, rid, &again);
    cr_assert_eq(again.bytes.len, first.bytes.len);
    cr_assert(memcmp(again.bytes.data + FX_HDR_SIZE,
                     first.bytes.data + FX_HDR_SIZE,
                     first.bytes.len - FX_HDR_SIZE) == 0,
              "the retry's reply differs from the original's");
    cr_assert_eq(h_ntotal(s, h2), expect, "the retry was applied again");
    /* Once more after a checkpoint of the recovered state. */
    char err[256];
    cr_assert_eq(fx_state_checkpoint(s, err, sizeof err), 0, "%s", err);
    fx_state_free(s);
    s = state_on(dir);
    h2 = h_open(s, "eo");
    reply_t third;
    mutate(s, k, h2, client, rid, &third);
    cr_assert(memcmp(third.bytes.data + FX_HDR_SIZE,
                     first.bytes.data + FX_HDR_SIZE,
                     first.bytes.len - FX_HDR_SIZE) == 0);
    cr_assert_eq(h_ntotal(s, h2), expect);
    /* A new request id is a new mutation. */
    if (k != M_REMOVE) {
        reply_t fresh;
        mutate(s, k == M_ADD_IDS ? M_ADD_IDS : M_ADD, h2, client, rid + 1,
               &fresh);
        cr_assert_eq(h_ntotal(s, h2), expect + 5);
        fx_w_free(&fresh.bytes);
    }
    fx_w_free(&first.bytes);
    fx_w_free(&again.bytes);
    fx_w_free(&third.bytes);
    fx_state_free(s);
}

Test(exactly_once, add_retried_after_restart) {
    retry_across_restart(M_ADD, 0, 0);
}
Test(exactly_once, add_retried_after_checkpoint_and_restart) {
    retry_across_restart(M_ADD, 1, 1);
}
Test(exactly_once, add_with_ids_retried_after_restart) {
    retry_across_restart(M_ADD_IDS, 0, 1);
}
Test(exactly_once, add_with_ids_retried_after_checkpoint_and_restart) {
    retry_across_restart(M_ADD_IDS, 1, 0);
}
Test(exactly_once, remove_ids_retried_after_restart) {
    retry_across_restart(M_REMOVE, 0, 0);
}
Test(exactly_once, remove_ids_retried_after_checkpoint_and_restart) {
    retry_across_restart(M_REMOVE, 1, 1);
}

/* The same ids with another op are not a retry; a client's memory is
 * bounded (its oldest requests are forgotten), through log and snapshot. */
/* TRAIN is not logged, but the snapshot it writes remembers its request:
 * a train retried after a restart is answered with the original's state
 * (ntotal 0 then, not the vectors added since) and trains nothing. An SQ8
 * index retrains from whatever data it gets, so a second train with other
 * data in between would show in the search results. */
static void train_req(fx_wbuf* w, uint64_t handle, uint64_t seed, float scale) {
    float* x = fxt_uniform(200, D, seed);
    for (int i = 0; i < 200 * D; i++) x[i] *= scale;
    req_begin(w);
    fx_w_u64(w, handle);
    fx_w_i64(w, 200);
    fx_w_array(w, x, (uint64_t)200 * D, sizeof(float));
    free(x);
}

static void search_req(fx_state* s, uint64_t h, float* dist) {
    fx_wbuf w;
    reply_t r;
    float* q = fxt_uniform(4, D, 31);
    req_begin(&w);
    fx_w_u64(&w, h);
    fx_w_i64(&w, 4);
    fx_w_i64(&w, 3);
    fx_w_array(&w, q, 4 * D, sizeof(float));
    free(q);
    cr_assert_eq(send(s, &w, FX_OP_SEARCH, 1, rid_seq++, &r), 0, "%s", r.err);
    const void* p;
    uint64_t n;
    cr_assert_eq(fx_r_array(&r.body, sizeof(float), 12, &p, &n), 0);
    memcpy(dist, p, sizeof(float) * 12);
    fx_w_free(&r.bytes);
}

static void train_retried(int checkpoint) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("eo-train"));
    fx_state* s = state_on(dir);
    uint64_t h = h_create(s, "eo", "SQ8");
    const uint64_t client = 0xC11E47, rid = 5151;
    fx_wbuf w;
    reply_t first, r;
    train_req(&w, h, 1, 1.0f);
    cr_assert_eq(send(s, &w, FX_OP_TRAIN, client, rid, &first), 0, "%s", first.err);
    /* another client trains on data of another range, then adds */
    train_req(&w, h, 2, 4.0f);
    cr_assert_eq(send(s, &w, FX_OP_TRAIN, 77, 1, &r), 0, "%s", r.err);
    fx_w_free(&r.bytes);
    add_req(&w, h, 10, 3);
    cr_assert_eq(send(s, &w, FX_OP_ADD, 77, 2, &r), 0, "%s", r.err);
    fx_w_free(&r.bytes);
    float before[12], after[12];
    search_req(s, h, before);
    if (checkpoint) {
        char err[256];
        cr_assert_eq(fx_state_checkpoint(s, err, sizeof err), 0, "%s", err);
    }
    fx_state_free(s);

    s = state_on(dir);
    uint64_t h2 = h_open(s, "eo");
    reply_t again;
    train_req(&w, h2, 1, 1.0f);
    cr_assert_eq(send(s, &w, FX_OP_TRAIN, client, rid, &again), 0, "%s", again.err);
    cr_assert_eq(again.bytes.len, first.bytes.len);
    cr_assert(memcmp(again.bytes.data + FX_HDR_SIZE, first.bytes.data + FX_HDR_SIZE,
                     first.bytes.len - FX_HDR_SIZE) == 0,
              "the retry's reply differs from the original's (trained again?)");
    cr_assert_eq(h_ntotal(s, h2), 10);
    search_req(s, h2, after);
    FXT_SAME(after, before, sizeof before);
    /* A new request id trains again: the results change. */
    train_req(&w, h2, 1, 1.0f);
    cr_assert_eq(send(s, &w, FX_OP_TRAIN, client, rid + 1, &r), 0, "%s", r.err);
    fx_w_free(&r.bytes);
    search_req(s, h2, after);
    cr_assert(memcmp(after, before, sizeof before) != 0,
              "a fresh train changed nothing: the test cannot tell");
    fx_w_free(&first.bytes);
    fx_w_free(&again.bytes);
    fx_state_free(s);
}

Test(exactly_once, train_retried_after_restart) {
    train_retried(0);
}
Test(exactly_once, train_retried_after_checkpoint_and_restart) {
    train_retried(1);
}

/* CREATE (float and binary) and DROP of a named index, their replies
 * lost, retried after a restart: answered as the originals were (the info
 * of the index the CREATE made; DROP's empty success), not with "exists"
 * or "not found"; the same names with a new request id are refused. */
static int create_as(fx_state* s, const char* name, int binary,
                     uint64_t client, uint64_t rid, reply_t* r) {
    fx_wbuf w;
    req_begin(&w);
    if (binary) {
        fx_w_i64(&w, FX_BIN_CREATE);
        fx_w_str(&w, name);
        fx_w_i64(&w, 64);
        fx_w_str(&w, "BFlat");
        return send(s, &w, FX_OP_BINARY, client, rid, r);
    }
    fx_w_str(&w, name);
    fx_w_i64(&w, D);
    fx_w_i64(&w, METRIC_L2);
    fx_w_str(&w, "Flat");
    return send(s, &w, FX_OP_CREATE, client, rid, r);
}

static int drop_as(fx_state* s, const char* name, uint64_t client,
                   uint64_t rid, reply_t* r) {
    fx_wbuf w;
    req_begin(&w);
    fx_w_str(&w, name);
    return send(s, &w, FX_OP_DROP, client, rid, r);
}

/* The info replies agree on d, metric, is_trained and ntotal (the handle
 * changes across restarts, and faiss's reader may give a subclass: a
 * factory "Flat" comes back as an IndexFlatL2). */
static void same_info(reply_t* a, reply_t* b) {
    int64_t va[5], vb[5];
    uint64_t h;
    cr_assert_eq(fx_r_u64(&a->body, &h) | fx_r_u64(&b->body, &h), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(fx_r_i64(&a->body, &va[i]) | fx_r_i64(&b->body, &vb[i]), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(va[i], vb[i], "info field %d: %lld vs %lld", i + 1,
                     (long long)va[i], (long long)vb[i]);
    fx_r_init(&b->body, b->bytes.data + FX_HDR_SIZE, b->bytes.len - FX_HDR_SIZE);
}

Test(exactly_once, create_and_drop_retried_after_restart) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("eo-cd"));
    fx_state* s = state_on(dir);
    const uint64_t client = 0xC11E47;
    reply_t fc, bc, dr, r;
    cr_assert_eq(create_as(s, "fl", 0, client, 10, &fc), 0, "%s", fc.err);
    cr_assert_eq(create_as(s, "bi", 1, client, 11, &bc), 0, "%s", bc.err);
    cr_assert_eq(create_as(s, "gone", 0, client, 12, &r), 0, "%s", r.err);
    fx_w_free(&r.bytes);
    cr_assert_eq(drop_as(s, "gone", client, 13, &dr), 0, "%s", dr.err);
    fx_state_free(s); /* none of these replies reached the client */

    for (int round = 0; round < 2; round++) { /* and again after a restart */
        s = state_on(dir);
        if (round == 0) { /* DROP's memory is by name: id 13 dropped "gone" */
            cr_assert_eq(drop_as(s, "nothere", client, 13, &r), FAISSX_E_NOT_FOUND);
            fx_w_free(&r.bytes);
        }
        reply_t again;
        cr_assert_eq(create_as(s, "fl", 0, client, 10, &again), 0,
                     "CREATE retry: %s", again.err);
        same_info(&again, &fc);
        fx_w_free(&again.bytes);
        cr_assert_eq(create_as(s, "bi", 1, client, 11, &again), 0,
                     "binary CREATE retry: %s", again.err);
        same_info(&again, &bc);
        fx_w_free(&again.bytes);
        cr_assert_eq(drop_as(s, "gone", client, 13, &again), 0,
                     "DROP retry: %s", again.err);
        cr_assert_eq(again.bytes.len, dr.bytes.len);
        fx_w_free(&again.bytes);
        /* New requests are new: the names are taken / unknown. */
        cr_assert_eq(create_as(s, "fl", 0, client, 20 + round, &r), FAISSX_E_EXISTS);
        fx_w_free(&r.bytes);
        cr_assert_eq(create_as(s, "bi", 1, 99, 11, &r), FAISSX_E_EXISTS,
                     "another client's request id matched");
        fx_w_free(&r.bytes);
        /* a float CREATE retried under the binary one's id does not match */
        cr_assert_eq(create_as(s, "bi", 0, client, 11, &r), FAISSX_E_EXISTS);
        fx_w_free(&r.bytes);
        cr_assert_eq(drop_as(s, "gone", client, 30 + round, &r), FAISSX_E_NOT_FOUND);
        fx_w_free(&r.bytes);
        char err[256];
        cr_assert_eq(fx_state_checkpoint(s, err, sizeof err), 0, "%s", err);
        fx_state_free(s);
    }
    fx_w_free(&fc.bytes);
    fx_w_free(&bc.bytes);
    fx_w_free(&dr.bytes);
}

/* A chunked upload's COMMIT whose reply was lost, retried after a restart
 * (the staged bytes are gone with the process): the retry of the COMMIT
 * that made the index gets that index's info, not "unknown upload"; a
 * COMMIT that never ran finds its upload gone and nothing under its name
 * (the client then uploads again). Upload ids are not reused by the new
 * process, so an old id never names another upload of the same client. */
static uint8_t* index_bytes(const FaissIndex* f, const FaissIndexBinary* b,
                            size_t* n) {
    char* p = NULL;
    FILE* m = open_memstream(&p, n);
    cr_assert(m);
    if (f)
        FXT_OK(faiss_write_index(f, m));
    else
        FXT_OK(faiss_write_index_binary(b, m));
    cr_assert_eq(fclose(m), 0);
    return (uint8_t*)p;
}

static uint64_t up_begin(fx_state* s, uint64_t client, uint64_t total,
                         int kind) {
    fx_wbuf w;
    reply_t r;
    req_begin(&w);
    fx_w_u64(&w, total);
    fx_w_i64(&w, kind);
    cr_assert_eq(send(s, &w, FX_OP_UPLOAD_BEGIN, client, rid_seq++, &r), 0,
                 "%s", r.err);
    return info_handle(&r); /* the upload id comes first */
}

/* All n bytes in two chunks. */
static void up_chunks(fx_state* s, uint64_t client, uint64_t id,
                      const uint8_t* p, uint64_t n) {
    for (uint64_t off = 0; off < n;) {
        uint64_t m = off == 0 ? n / 2 : n - off;
        fx_wbuf w;
        reply_t r;
        req_begin(&w);
        fx_w_u64(&w, id);
        fx_w_u64(&w, off);
        fx_w_array(&w, p + off, m, 1);
        cr_assert_eq(send(s, &w, FX_OP_UPLOAD_CHUNK, client, rid_seq++, &r),
                     0, "%s", r.err);
        fx_w_free(&r.bytes);
        off += m;
    }
}

static int up_commit(fx_state* s, uint64_t client, uint64_t rid, uint64_t id,
                     const char* name, reply_t* r) {
    fx_wbuf w;
    req_begin(&w);
    fx_w_u64(&w, id);
    fx_w_str(&w, name);
    return send(s, &w, FX_OP_UPLOAD_COMMIT, client, rid, r);
}

Test(exactly_once, upload_commit_retried_after_restart) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("eo-upload"));
    FaissIndex* lf = NULL;
    FXT_OK(faiss_index_factory(&lf, D, "Flat", METRIC_L2));
    float* x = fxt_uniform(50, D, 8);
    FXT_OK(faiss_Index_add(lf, 50, x));
    FaissIndexBinary* lb = NULL;
    FXT_OK(faiss_index_binary_factory(&lb, 64, "BFlat"));
    uint8_t codes[20 * 8];
    for (size_t i = 0; i < sizeof codes; i++) codes[i] = (uint8_t)(i * 37 + 5);
    FXT_OK(faiss_IndexBinary_add(lb, 20, codes));
    size_t nf, nb;
    uint8_t* fb = index_bytes(lf, NULL, &nf);
    uint8_t* bb = index_bytes(NULL, lb, &nb);

    fx_state* s = state_on(dir);
    const uint64_t client = 0xC0DE;
    reply_t fc, bc, r;
    uint64_t uf = up_begin(s, client, nf, FX_UPLOAD_INDEX);
    up_chunks(s, client, uf, fb, nf);
    cr_assert_eq(up_commit(s, client, 42, uf, "upf", &fc), 0, "%s", fc.err);
    uint64_t ub = up_begin(s, client, nb, FX_UPLOAD_BINARY);
    up_chunks(s, client, ub, bb, nb);
    cr_assert_eq(up_commit(s, client, 43, ub, "upb", &bc), 0, "%s", bc.err);
    /* complete, but its COMMIT never arrives before the restart */
    uint64_t uq = up_begin(s, client, nf, FX_UPLOAD_INDEX);
    up_chunks(s, client, uq, fb, nf);
    fx_state_free(s); /* no reply reached the client */

    for (int round = 0; round < 2; round++) { /* again after a checkpoint */
        s = state_on(dir);
        reply_t again;
        /* the same request under another name (before the retry: this
         * process then remembers request 42's reply, whatever it names) */
        cr_assert_eq(up_commit(s, client, 42, uf, "other", &r),
                     FAISSX_E_NOT_FOUND, "%s", r.err);
        fx_w_free(&r.bytes);
        cr_assert_eq(up_commit(s, client, 42, uf, "upf", &again), 0,
                     "COMMIT retry: %s", again.err);
        same_info(&again, &fc);
        fx_w_free(&again.bytes);
        cr_assert_eq(up_commit(s, client, 43, ub, "upb", &again), 0,
                     "binary COMMIT retry: %s", again.err);
        same_info(&again, &bc);
        fx_w_free(&again.bytes);
        /* the upload whose COMMIT never ran: gone, and nothing was made */
        cr_assert_eq(up_commit(s, client, 44, uq, "upq", &r),
                     FAISSX_E_NOT_FOUND);
        cr_assert(strstr(r.err, "unknown upload") &&
                  strstr(r.err, "lost with a server restart"), "%s", r.err);
        fx_w_free(&r.bytes);
        fx_wbuf w;
        req_begin(&w);
        fx_w_str(&w, "upq");
        cr_assert_eq(send(s, &w, FX_OP_OPEN, client, rid_seq++, &r),
                     FAISSX_E_NOT_FOUND, "%s", r.err);
        fx_w_free(&r.bytes);
        /* another request id, another client, another name: not a retry */
        cr_assert_eq(up_commit(s, client, 50 + round, uf, "upf", &r),
                     FAISSX_E_NOT_FOUND, "%s", r.err);
        fx_w_free(&r.bytes);
        cr_assert_eq(up_commit(s, 0xD1FF, 42, uf, "upf", &r),
                     FAISSX_E_NOT_FOUND, "%s", r.err);
        fx_w_free(&r.bytes);
        /* one index each, with what was uploaded */
        cr_assert_eq(h_ntotal(s, h_open(s, "upf")), 50);
        /* the new process hands out ids the old one did not */
        uint64_t nu = up_begin(s, client, 64, FX_UPLOAD_INDEX);
        cr_assert(nu != uf && nu != ub && nu != uq,
                  "upload id %llu reused after a restart",
                  (unsigned long long)nu);
        char err[256];
        cr_assert_eq(fx_state_checkpoint(s, err, sizeof err), 0, "%s", err);
        fx_state_free(s);
    }
    fx_w_free(&fc.bytes);
    fx_w_free(&bc.bytes);
    free(fb);
    free(bb);
    free(x);
    faiss_Index_free(lf);
    faiss_IndexBinary_free(lb);
}

Test(exactly_once, other_op_and_bounds) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("eo-bounds"));
    fx_state* s = state_on(dir);
    uint64_t h = h_create(s, "b", "IDMap2,Flat");
    const uint64_t client = 5;
    reply_t r;
    mutate(s, M_ADD_IDS, h, client, 1, &r);
    fx_w_free(&r.bytes);
    /* Same ids, REMOVE_IDS: runs (removes nothing in [100, 110)). */
    mutate(s, M_REMOVE, h, client, 1, &r);
    fx_w_free(&r.bytes);
    enum { N = 1024 + 10 };
    for (uint64_t rid = 2; rid <= N; rid++) {
        fx_wbuf w;
        add_ids_req(&w, h, 1, 10000 + (int64_t)rid, rid);
        cr_assert_eq(send(s, &w, FX_OP_ADD_WITH_IDS, client, rid, &r), 0,
                     "%s", r.err);
        fx_w_free(&r.bytes);
    }
    int64_t nt = h_ntotal(s, h);
    cr_assert_eq(nt, 5 + (N - 1));
    char err[256];
    cr_assert_eq(fx_state_checkpoint(s, err, sizeof err), 0, "%s", err);
    fx_state_free(s);

    s = state_on(dir);
    h = h_open(s, "b");
    /* Request N is remembered, request 2 was forgotten (1024 per client). */
    fx_wbuf w;
    add_ids_req(&w, h, 1, 10000 + N, N);
    cr_assert_eq(send(s, &w, FX_OP_ADD_WITH_IDS, client, N, &r), 0, "%s",
                 r.err);
    fx_w_free(&r.bytes);
    cr_assert_eq(h_ntotal(s, h), nt);
    add_ids_req(&w, h, 1, 20000, 2);
    cr_assert_eq(send(s, &w, FX_OP_ADD_WITH_IDS, client, 2, &r), 0, "%s",
                 r.err);
    fx_w_free(&r.bytes);
    cr_assert_eq(h_ntotal(s, h), nt + 1);
    fx_state_free(s);
}

/* =======================================================================
 * A store in the previous format (version-1 snapshot and log, written by
 * faissx before request tags) opens, reads the same, and is upgraded.
 * ======================================================================= */

static void copy_file(const char* from, const char* to) {
    FILE* a = fopen(from, "rb");
    cr_assert(a, "cannot read %s", from);
    FILE* b = fopen(to, "wb");
    cr_assert(b, "cannot write %s", to);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        cr_assert_eq(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

Test(exactly_once, version1_store_still_opens) {
    const char* src = getenv("FAISSX_FIXTURES");
    cr_assert(src && *src, "FAISSX_FIXTURES is not set");
    char dir[512], idir[600], from[1024], to[1024];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("v1store"));
    snprintf(idir, sizeof idir, "%s/v1", dir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(mkdir(idir, 0755), 0);
    const char* files[] = {"MANIFEST", "snap-000000000001.fxs",
                           "snap-000000000002.fxs", "wal-000000000001.fxl",
                           "wal-000000000002.fxl"};
    for (int i = 0; i < 5; i++) {
        snprintf(from, sizeof from, "%s/store-v1/v1/%s", src, files[i]);
        snprintf(to, sizeof to, "%s/%s", idir, files[i]);
        copy_file(from, to);
    }
    /* What the fixture holds (tests/fixtures/README): IDMap,Flat d=4,
     * x[i] = 0.25 i, ids 100..105 added, then ids in [101, 102) removed. */
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)(i * 0.25);
    FaissIndex* want = NULL;
    FXT_OK(faiss_index_factory(&want, 4, "IDMap,Flat", METRIC_L2));
    idx_t ids[6] = {100, 101, 102, 103, 104, 105};
    FXT_OK(faiss_Index_add_with_ids(want, 6, x, ids));
    FaissIDSelectorRange* sel = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&sel, 101, 102));
    size_t nrem = 0;
    FXT_OK(faiss_Index_remove_ids(want, (FaissIDSelector*)sel, &nrem));
    faiss_IDSelector_free((FaissIDSelector*)sel);

    for (int round = 0; round < 2; round++) {
        FaissxStoreOptions o;
        faissx_store_options_init(&o);
        FaissxStore* st = NULL;
        FXT_OK(faissx_store_open(&st, dir, &o));
        FaissIndex* ix = NULL;
        FXT_OK(faissx_store_open_index(st, "v1", &ix));
        cr_assert_eq(faiss_Index_ntotal(ix), faiss_Index_ntotal(want));
        float d1[6 * 3], d2[6 * 3];
        idx_t l1[6 * 3], l2[6 * 3];
        FXT_OK(faiss_Index_search(ix, 6, x, 3, d1, l1));
        FXT_OK(faiss_Index_search(want, 6, x, 3, d2, l2));
        FXT_SAME(l1, l2, sizeof l1);
        FXT_SAME(d1, d2, sizeof d1);
        faiss_Index_free(ix);
        faissx_store_close(st);
        /* The first open moved it to a new generation in the new format. */
        snprintf(to, sizeof to, "%s/wal-000000000003.fxl", idir);
        struct stat sb;
        cr_assert_eq(stat(to, &sb), 0, "not upgraded: no %s", to);
    }
    faiss_Index_free(want);
}

/* =======================================================================
 * End to end: reply dropped, server killed -9, restarted, client retries
 * ======================================================================= */

static fxt_server srv;

static void stop(void) {
    faissx_configure(NULL, NULL, 0);
    if (srv.pid > 0 && fxt_server_alive(&srv)) fxt_server_stop(&srv);
}

static int log_has(const char* needle) {
    FILE* f = fopen(srv.log, "r");
    if (!f) return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

typedef struct {
    FaissIndex* ix;
    mut_kind k;
    const float* x;
    int rc;
    size_t removed;
    char err[512];
} call_t;

static void* run_call(void* arg) {
    call_t* c = arg;
    if (c->k == M_ADD) {
        c->rc = faiss_Index_add(c->ix, 5, c->x);
    } else if (c->k == M_ADD_IDS) {
        idx_t ids[5] = {500, 503, 506, 509, 512};
        c->rc = faiss_Index_add_with_ids(c->ix, 5, c->x, ids);
    } else {
        FaissIDSelectorRange* sel = NULL;
        c->rc = faiss_IDSelectorRange_new(&sel, 100, 110);
        if (c->rc == 0)
            c->rc = faiss_Index_remove_ids(c->ix, (FaissIDSelector*)sel,
                                           &c->removed);
        faiss_IDSelector_free((FaissIDSelector*)sel);
    }
    if (c->rc) snprintf(c->err, sizeof c->err, "%s", faiss_get_last_error());
    return NULL;
}

/* Connects a client to srv whose retry of a call whose reply was lost
 * comes only after the server's restart. */
static void configure_for_restart(void) {
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    o.url = srv.url;
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++) o.timeout_ms[i] = 60000;
    o.attempt_timeout_ms = 20000; /* the retry comes from the restart */
    o.max_attempts = 5;
    o.backoff_base_ms = 20;
    o.backoff_cap_ms = 200;
    FXT_OK(faissx_configure_ex(&o));
}

static void wait_for_log(const char* needle) {
    for (int waited = 0; !log_has(needle) && waited < 30000; waited += 20)
        sleep_ms(20);
    cr_assert(log_has(needle), "the server never logged '%s':\n%s", needle,
              fxt_server_log(&srv));
}

/* Starts a server on the store in dir that drops its nth reply (with
 * --checkpoint-log-bytes ckpt unless ckpt is NULL), and connects. */
static void start_dropping(const char* dir, int nth, const char* ckpt) {
    char n[8];
    snprintf(n, sizeof n, "%d", nth);
    const char* args[] = {"--data-dir", dir, "--test-drop-replies", n,
                          ckpt ? "--checkpoint-log-bytes" : NULL, ckpt, NULL};
    fxt_server_start(&srv, args);
    configure_for_restart();
}

/* Once the server has dropped the reply to the call thread t makes: kills
 * it (after it applied and logged, before a reply), restarts it on dir, and
 * waits for t, whose retry the new server answers. */
static void kill_restart_and_join(const char* dir, pthread_t t) {
    wait_for_log("dropping the reply");
    fxt_server_kill(&srv);
    const char* args2[] = {"--data-dir", dir, NULL};
    fxt_server_restart(&srv, args2);
    pthread_join(t, NULL);
}

static void killed_and_restarted(mut_kind k, int checkpoint) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("eo-server"));
    /* Replies: CREATE (1), [prefill (2),] the mutation (dropped). */
    start_dropping(dir, k == M_REMOVE ? 3 : 2, checkpoint ? "1" : "0");

    FaissIndex* ix = NULL;
    FXT_OK(faissx_index_create(&ix, "eo", D, desc_of(k), METRIC_L2));
    float* base = fxt_uniform(20, D, 5);
    if (k == M_REMOVE) {
        idx_t ids[20];
        for (int i = 0; i < 20; i++) ids[i] = 100 + 3 * i;
        FXT_OK(faiss_Index_add_with_ids(ix, 20, base, ids));
    }
    float* x = fxt_uniform(5, D, 6);
    call_t c = {ix, k, x, -1, 0, ""};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, run_call, &c), 0);
    kill_restart_and_join(dir, t);
    cr_assert_eq(c.rc, 0, "the retry failed: %s", c.err);

    /* Applied exactly once: ntotal, and the data. */
    int64_t want = k == M_REMOVE ? 20 - 4 : 5; /* ids 100,103,106,109 */
    FaissIndex* again = NULL;
    FXT_OK(faissx_index_open(&again, "eo"));
    cr_assert_eq(faiss_Index_ntotal(again), want,
                 "ntotal %lld, expected %lld",
                 (long long)faiss_Index_ntotal(again), (long long)want);
    cr_assert_eq(faiss_Index_ntotal(ix), want,
                 "the retry's reply gave ntotal %lld",
                 (long long)faiss_Index_ntotal(ix));
    if (k == M_REMOVE) cr_assert_eq(c.removed, 4);
    FaissIndex* local = NULL;
    FXT_OK(faissx_index_download(again, &local));
    FaissIndex* ref = NULL;
    FXT_OK(faiss_index_factory(&ref, D, desc_of(k), METRIC_L2));
    if (k == M_ADD) {
        FXT_OK(faiss_Index_add(ref, 5, x));
    } else if (k == M_ADD_IDS) {
        idx_t ids[5] = {500, 503, 506, 509, 512};
        FXT_OK(faiss_Index_add_with_ids(ref, 5, x, ids));
    } else {
        idx_t ids[20];
        for (int i = 0; i < 20; i++) ids[i] = 100 + 3 * i;
        FXT_OK(faiss_Index_add_with_ids(ref, 20, base, ids));
        FaissIDSelectorRange* sel = NULL;
        FXT_OK(faiss_IDSelectorRange_new(&sel, 100, 110));
        size_t n = 0;
        FXT_OK(faiss_Index_remove_ids(ref, (FaissIDSelector*)sel, &n));
        faiss_IDSelector_free((FaissIDSelector*)sel);
    }
    const float* q = k == M_REMOVE ? base : x;
    int nq = k == M_REMOVE ? 20 : 5;
    float d1[20 * 4], d2[20 * 4];
    idx_t l1[20 * 4], l2[20 * 4];
    FXT_OK(faiss_Index_search(local, nq, q, 4, d1, l1));
    FXT_OK(faiss_Index_search(ref, nq, q, 4, d2, l2));
    FXT_SAME(l1, l2, sizeof(idx_t) * nq * 4);
    FXT_SAME(d1, d2, sizeof(float) * nq * 4);
    faiss_Index_free(ref);
    faiss_Index_free(local);
    faiss_Index_free(again);
    faiss_Index_free(ix);
    free(x);
    free(base);
}

Test(exactly_once_server, add_reply_dropped_server_killed,
     .fini = stop, .timeout = 120) {
    killed_and_restarted(M_ADD, 0);
}
Test(exactly_once_server, add_with_ids_reply_dropped_server_killed,
     .fini = stop, .timeout = 120) {
    killed_and_restarted(M_ADD_IDS, 0);
}
Test(exactly_once_server, remove_ids_reply_dropped_server_killed,
     .fini = stop, .timeout = 120) {
    killed_and_restarted(M_REMOVE, 0);
}
Test(exactly_once_server, add_after_checkpoint_server_killed,
     .fini = stop, .timeout = 120) {
    killed_and_restarted(M_ADD, 1);
}
Test(exactly_once_server, remove_ids_after_checkpoint_server_killed,
     .fini = stop, .timeout = 120) {
    killed_and_restarted(M_REMOVE, 1);
}

/* The same for a named binary index: the reply to a binary add (or
 * remove_ids) is dropped, the server killed and restarted, and the
 * client's retry -- which reopens the binary index by name with the same
 * request id -- is answered from the store's memory, not applied again. */
typedef struct {
    FaissIndexBinary* ix;
    int remove;
    const uint8_t* x;
    int rc;
    size_t removed;
    char err[512];
} bcall_t;

enum { BD = 64, BCS = BD / 8 };

static void* run_bcall(void* arg) {
    bcall_t* c = arg;
    if (!c->remove) {
        c->rc = faiss_IndexBinary_add(c->ix, 5, c->x);
    } else {
        FaissIDSelectorRange* sel = NULL;
        c->rc = faiss_IDSelectorRange_new(&sel, 5, 9);
        if (c->rc == 0)
            c->rc = faiss_IndexBinary_remove_ids(c->ix, (FaissIDSelector*)sel,
                                                 &c->removed);
        faiss_IDSelector_free((FaissIDSelector*)sel);
    }
    if (c->rc) snprintf(c->err, sizeof c->err, "%s", faiss_get_last_error());
    return NULL;
}

static void bin_killed_and_restarted(int remove) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("eo-bin"));
    /* Replies: CREATE (1), [prefill (2),] the mutation (dropped). */
    start_dropping(dir, remove ? 3 : 2, NULL);

    uint8_t base[20 * BCS], x[5 * BCS];
    unsigned seed = 3;
    for (size_t i = 0; i < sizeof base; i++) base[i] = (uint8_t)(rand_r(&seed) >> 4);
    for (size_t i = 0; i < sizeof x; i++) x[i] = (uint8_t)(rand_r(&seed) >> 4);
    FaissIndexBinary* ix = NULL;
    FXT_OK(faissx_index_binary_create(&ix, "beo", BD, "BFlat"));
    if (remove) FXT_OK(faiss_IndexBinary_add(ix, 20, base));
    bcall_t c = {ix, remove, x, -1, 0, ""};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, run_bcall, &c), 0);
    kill_restart_and_join(dir, t);
    cr_assert_eq(c.rc, 0, "the retry failed: %s", c.err);

    int64_t want = remove ? 20 - 4 : 5;
    FaissIndexBinary* again = NULL;
    FXT_OK(faissx_index_binary_open(&again, "beo"));
    cr_assert_eq(faiss_IndexBinary_ntotal(again), want, "ntotal %lld, expected %lld",
                 (long long)faiss_IndexBinary_ntotal(again), (long long)want);
    cr_assert_eq(faiss_IndexBinary_ntotal(ix), want,
                 "the retry's reply gave ntotal %lld",
                 (long long)faiss_IndexBinary_ntotal(ix));
    if (remove) cr_assert_eq(c.removed, 4);
    /* The data equal a local index given the mutation once. */
    const uint8_t* q = remove ? base : x;
    int nq = remove ? 20 : 5;
    int32_t d1[20 * 3], d2[20 * 3];
    idx_t l1[20 * 3], l2[20 * 3];
    FXT_OK(faiss_IndexBinary_search(again, nq, q, 3, d1, l1));
    FXT_OK(faissx_configure(NULL, NULL, 0));
    FaissIndexBinary* ref = NULL;
    FXT_OK(faiss_index_binary_factory(&ref, BD, "BFlat"));
    if (remove) {
        FXT_OK(faiss_IndexBinary_add(ref, 20, base));
        FaissIDSelectorRange* sel = NULL;
        FXT_OK(faiss_IDSelectorRange_new(&sel, 5, 9));
        size_t n = 0;
        FXT_OK(faiss_IndexBinary_remove_ids(ref, (FaissIDSelector*)sel, &n));
        faiss_IDSelector_free((FaissIDSelector*)sel);
    } else {
        FXT_OK(faiss_IndexBinary_add(ref, 5, x));
    }
    FXT_OK(faiss_IndexBinary_search(ref, nq, q, 3, d2, l2));
    FXT_SAME(l1, l2, sizeof(idx_t) * nq * 3);
    FXT_SAME(d1, d2, sizeof(int32_t) * nq * 3);
    faiss_IndexBinary_free(ref);
    faiss_IndexBinary_free(again);
    faiss_IndexBinary_free(ix);
}

Test(exactly_once_server, binary_add_reply_dropped_server_killed,
     .fini = stop, .timeout = 120) {
    bin_killed_and_restarted(0);
}
Test(exactly_once_server, binary_remove_ids_reply_dropped_server_killed,
     .fini = stop, .timeout = 120) {
    bin_killed_and_restarted(1);
}

/* A chunked upload across a restart, end to end (the server logs every
 * request: --log-level debug). (1) The reply to the COMMIT is dropped and
 * the server killed: the client's retry of the COMMIT, on the restarted
 * server, is answered from the store -- no second upload. (2) The server
 * is stopped right after the last chunk (so the COMMIT waits unread) and
 * killed: the retried COMMIT finds its upload gone and the client starts
 * the upload over. Either way the call succeeds and the index holds
 * exactly what was uploaded. */
enum { UP_N = 3000 }; /* 3000 x 8 floats: two chunks of a 64 KiB limit */

static FaissIndex* upload_local(float** xb) {
    *xb = fxt_uniform(UP_N, D, 12);
    FaissIndex* loc = NULL;
    FXT_OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(loc, UP_N, *xb));
    return loc;
}

/* The uploaded index is there once, under `name`, and searches as loc. */
static void uploaded_once(FaissIndex* rem, FaissIndex* loc, const float* xb,
                          const char* name) {
    cr_assert_eq(faiss_Index_ntotal(rem), UP_N);
    FaissIndex* again = NULL;
    FXT_OK(faissx_index_open(&again, name));
    cr_assert_eq(faiss_Index_ntotal(again), UP_N);
    float d1[10 * 4], d2[10 * 4];
    idx_t l1[10 * 4], l2[10 * 4];
    FXT_OK(faiss_Index_search(again, 10, xb, 4, d1, l1));
    FXT_OK(faiss_Index_search(loc, 10, xb, 4, d2, l2));
    FXT_SAME(l1, l2, sizeof l1);
    FXT_SAME(d1, d2, sizeof d1);
    faiss_Index_free(again);
}

typedef struct {
    FaissIndex* loc;
    FaissIndex* rem;
    const char* name;
    int progress; /* install stop_after_last_chunk */
    int rc;
    char err[512];
} upcall_t;

static volatile int stopped_after_chunks;

/* Stops the server when all bytes are staged, before the COMMIT goes out. */
static int stop_after_last_chunk(const FaissxProgress* p, void* user) {
    (void)user;
    if (p->op == FAISSX_PROGRESS_UPLOAD && p->done == p->total - 1 &&
        !stopped_after_chunks) {
        cr_assert_eq(kill(srv.pid, SIGSTOP), 0);
        stopped_after_chunks = 1;
    }
    return 0;
}

static void* run_upload(void* arg) {
    upcall_t* c = arg;
    if (c->progress) faissx_set_progress_callback(stop_after_last_chunk, NULL);
    c->rc = faissx_index_upload(c->loc, c->name, &c->rem);
    if (c->rc) snprintf(c->err, sizeof c->err, "%s", faiss_get_last_error());
    faissx_set_progress_callback(NULL, NULL);
    return NULL;
}

/* The request line the server logged just before `needle`'s line. */
static int logged_before(const char* needle, const char* want) {
    FILE* f = fopen(srv.log, "r");
    if (!f) return 0;
    char line[1024], prev[1024] = "";
    int ok = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, needle)) {
            ok = strstr(prev, want) != NULL;
            break;
        }
        snprintf(prev, sizeof prev, "%s", line);
    }
    fclose(f);
    return ok;
}

Test(exactly_once_server, upload_commit_reply_dropped_server_killed,
     .fini = stop, .timeout = 120) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("eo-up-commit"));
    float* xb;
    FaissIndex* loc = upload_local(&xb);
    size_t len = 0;
    free(index_bytes(loc, NULL, &len));
    /* Replies: BEGIN, the chunks (65024 bytes each within a 65536-byte
     * message limit), COMMIT (dropped). */
    size_t chunks = (len + 65023) / 65024;
    cr_assert_gt(chunks, 1);
    char nth[16];
    snprintf(nth, sizeof nth, "%zu", chunks + 2);
    const char* args[] = {"--data-dir", dir, "--max-message-bytes", "65536",
                          "--log-level", "debug", "--test-drop-replies", nth,
                          NULL};
    fxt_server_start(&srv, args);
    configure_for_restart();
    upcall_t c = {loc, NULL, "upc", 0, -1, ""};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, run_upload, &c), 0);
    wait_for_log("dropping the reply");
    cr_assert(logged_before("dropping the reply", "op=upload_commit "),
              "the dropped reply was not the COMMIT's:\n%s",
              fxt_server_log(&srv));
    fxt_server_kill(&srv); /* the index is made, its reply lost */
    const char* args2[] = {"--data-dir", dir, "--log-level", "debug", NULL};
    fxt_server_restart(&srv, args2);
    pthread_join(t, NULL);
    cr_assert_eq(c.rc, 0, "the upload failed: %s", c.err);
    /* answered from the store: the client did not upload again */
    cr_assert(log_has("op=upload_commit tenant=default status=0"), "%s",
              fxt_server_log(&srv));
    cr_assert_not(log_has("op=upload_begin"),
                  "the client uploaded again:\n%s", fxt_server_log(&srv));
    uploaded_once(c.rem, loc, xb, "upc");
    faiss_Index_free(c.rem);
    faiss_Index_free(loc);
    free(xb);
}

Test(exactly_once_server, upload_lost_with_restart_is_started_over,
     .fini = stop, .timeout = 120) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fxt_tmp_path("eo-up-lost"));
    float* xb;
    FaissIndex* loc = upload_local(&xb);
    const char* args[] = {"--data-dir", dir, "--max-message-bytes", "65536",
                          "--log-level", "debug", NULL};
    fxt_server_start(&srv, args);
    configure_for_restart();
    stopped_after_chunks = 0;
    upcall_t c = {loc, NULL, "upl", 1, -1, ""};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, run_upload, &c), 0);
    for (int waited = 0; !stopped_after_chunks && waited < 30000; waited += 20)
        sleep_ms(20);
    cr_assert(stopped_after_chunks, "the upload never staged all its bytes");
    sleep_ms(300); /* the COMMIT goes out to the stopped server */
    fxt_server_kill(&srv);
    const char* args2[] = {"--data-dir", dir, "--log-level", "debug", NULL};
    fxt_server_restart(&srv, args2);
    pthread_join(t, NULL);
    cr_assert_eq(c.rc, 0, "the upload failed: %s", c.err);
    /* the retried COMMIT found nothing; the client started over */
    cr_assert(logged_before("op=upload_begin", "op=upload_commit "),
              "no COMMIT was refused before the upload began again:\n%s",
              fxt_server_log(&srv));
    cr_assert(log_has("op=upload_commit tenant=default status=0"), "%s",
              fxt_server_log(&srv));
    uploaded_once(c.rem, loc, xb, "upl");
    faiss_Index_free(c.rem);
    faiss_Index_free(loc);
    free(xb);
}
