/* test_upload_guard.c -- hostile UPLOAD bytes: faiss 1.7.3's read_index
 * allocates whatever sizes its input claims and leaks what it half built;
 * faissx-server parses uploads under an allocation budget
 * (net/alloc_budget.h). Real serialized indexes with a patched size field
 * get a clear FAISSX_E_IO, the server keeps serving, its peak memory does
 * not follow the claims, and failed parses leave nothing behind; normal
 * uploads (IVFPQ with its precomputed table included) still read and
 * search exactly as the local index. */
#include "common.h"
#include "server_fixture.h"

#include "net/proto.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fxt_server srv;

static void stop(void) {
    faissx_configure(NULL, NULL, 0);
    if (srv.pid > 0) fxt_server_stop(&srv);
}

/* The client stays local (indexes are built here); tests configure it
 * when they upload through the API. */
static void start(void) {
    faissx_configure(NULL, NULL, 0);
    fxt_server_start(&srv, NULL);
}

/* The faiss bytes of ix (faiss_write_index into memory). */
static uint8_t* bytes_of(const FaissIndex* ix, size_t* len) {
    char* buf = NULL;
    size_t n = 0;
    FILE* f = open_memstream(&buf, &n);
    cr_assert(f);
    FXT_OK(faiss_write_index(ix, f));
    cr_assert_eq(fclose(f), 0);
    *len = n;
    return (uint8_t*)buf;
}

/* Offset of the u64 `v` followed by exactly `tail` bytes to the end: a
 * vector's size field (the last vector of the file). */
static size_t size_field(const uint8_t* b, size_t len, uint64_t v,
                         size_t tail) {
    cr_assert(len >= tail + 8);
    size_t at = len - tail - 8;
    uint64_t got;
    memcpy(&got, b + at, 8);
    cr_assert_eq(got, v, "no size field %llu at %zu (found %llu)",
                 (unsigned long long)v, at, (unsigned long long)got);
    return at;
}

/* Sends an UPLOAD of `len` bytes (unnamed); returns the status and the
 * error text. */
static int raw_upload(const uint8_t* b, size_t len, char* err, size_t errsz) {
    fx_wbuf w;
    fx_w_init(&w);
    fx_w_header_space(&w);
    fx_w_str(&w, "");
    fx_w_str(&w, "");
    fx_w_array(&w, b, len, 1);
    static uint64_t rid = 1000; /* a fresh id each: retries are replayed */
    fx_hdr h = {0};
    h.op = FX_OP_UPLOAD;
    h.request_id = rid++;
    h.client_id = 11;
    fx_w_finish(&w, &h);
    cr_assert(!w.oom);
    nng_socket s;
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 60000);
    cr_assert_eq(nng_dial(s, srv.url, NULL, 0), 0);
    cr_assert_eq(nng_send(s, w.data, w.len, 0), 0);
    fx_w_free(&w);
    char* rb = NULL;
    size_t rn = 0;
    int rv = nng_recv(s, &rb, &rn, NNG_FLAG_ALLOC);
    cr_assert_eq(rv, 0, "no reply to an upload: %s (server alive: %d)",
                 nng_strerror(rv), fxt_server_alive(&srv));
    fx_hdr r;
    char why[128];
    cr_assert_eq(fx_hdr_decode((uint8_t*)rb, rn, &r, why, sizeof why), 0,
                 "%s", why);
    err[0] = '\0';
    if (r.status != 0) {
        fx_rbuf body;
        fx_r_init(&body, (uint8_t*)rb + FX_HDR_SIZE, rn - FX_HDR_SIZE);
        fx_r_str(&body, err, errsz - 1);
    } else {
        /* release the unnamed index it made: its handle is the first u64 */
        fx_rbuf body;
        uint64_t handle = 0;
        fx_r_init(&body, (uint8_t*)rb + FX_HDR_SIZE, rn - FX_HDR_SIZE);
        cr_assert_eq(fx_r_u64(&body, &handle), 0);
        fx_wbuf rel;
        fx_w_init(&rel);
        fx_w_header_space(&rel);
        fx_w_str(&rel, "");
        fx_w_u64(&rel, handle);
        fx_hdr rh = {0};
        rh.op = FX_OP_RELEASE;
        rh.request_id = rid++;
        rh.client_id = 11;
        fx_w_finish(&rel, &rh);
        char* rb2 = NULL;
        size_t rn2 = 0;
        cr_assert_eq(nng_send(s, rel.data, rel.len, 0), 0);
        cr_assert_eq(nng_recv(s, &rb2, &rn2, NNG_FLAG_ALLOC), 0);
        nng_free(rb2, rn2);
        fx_w_free(&rel);
    }
    nng_free(rb, rn);
    nng_close(s);
    return r.status;
}

/* A field of /proc/PID/status, in kB. */
static long status_kb(pid_t pid, const char* field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE* f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    long kb = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':')
            kb = atol(line + fl + 1);
    fclose(f);
    cr_assert(kb >= 0, "no %s in %s", field, path);
    return kb;
}

enum { D = 8, NB = 50 };

Test(upload_guard, lying_size_fields_are_refused, .init = start,
     .fini = stop, .timeout = 120) {
    float* xb = fxt_uniform(NB, D, 3);
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, "Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(ix, NB, xb));
    size_t len = 0;
    uint8_t* good = bytes_of(ix, &len);
    /* faiss writes a flat index's codes as a count of floats */
    size_t codes = (size_t)NB * D * sizeof(float);
    size_t at = size_field(good, len, (uint64_t)NB * D, codes);
    char err[1024];
    cr_assert_eq(raw_upload(good, len, err, sizeof err), 0, "%s", err);
    long hwm0 = status_kb(srv.pid, "VmHWM");

    /* Claims (in floats) from just over the budget to faiss's own
     * ceiling (2^40 floats). */
    const uint64_t claims[] = {(uint64_t)16 << 20, (uint64_t)1 << 31,
                               ((uint64_t)1 << 40) - 1, (uint64_t)3 << 38};
    uint8_t* bad = malloc(len);
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
        memcpy(bad, good, len);
        memcpy(bad + at, &claims[i], 8);
        int rc = raw_upload(bad, len, err, sizeof err);
        cr_assert_eq(rc, FAISSX_E_IO, "claim %llu: status %d (%s)",
                     (unsigned long long)claims[i], rc, err);
        cr_assert(strstr(err, "claim an allocation of") &&
                          strstr(err, "forged size field"),
                  "claim %llu: unclear error: %s",
                  (unsigned long long)claims[i], err);
    }
    /* Many at once, too: the server stays up and its peak memory stays
     * far below the smallest claim (64 MiB). */
    for (int i = 0; i < 20; i++) {
        memcpy(bad, good, len);
        memcpy(bad + at, &claims[i % 4], 8);
        cr_assert_eq(raw_upload(bad, len, err, sizeof err), FAISSX_E_IO);
    }
    long hwm1 = status_kb(srv.pid, "VmHWM");
    cr_assert_lt(hwm1 - hwm0, 48 * 1024, "peak RSS grew by %ld kB", hwm1 - hwm0);
    cr_assert(fxt_server_alive(&srv));

    /* Still serving: the good bytes upload and search like the original. */
    FXT_OK(faissx_configure(srv.url, NULL, 60000));
    FaissIndex* remote = NULL;
    FXT_OK(faissx_index_upload(ix, NULL, &remote));
    float d1[NB * 3], d2[NB * 3];
    idx_t l1[NB * 3], l2[NB * 3];
    FXT_OK(faiss_Index_search(remote, NB, xb, 3, d1, l1));
    FXT_OK(faiss_Index_search(ix, NB, xb, 3, d2, l2));
    FXT_SAME(l1, l2, sizeof l1);
    FXT_SAME(d1, d2, sizeof d1);
    faiss_Index_free(remote);
    faiss_Index_free(ix);
    free(bad);
    free(good);
    free(xb);
}

/* A parse that fails late (the id map of an IDMap cut short, after the
 * 2.5 MB sub-index was read): faiss leaks what it built; the server frees
 * it. 30 such uploads would keep ~75 MB without that. */
Test(upload_guard, failed_parses_leave_nothing_behind, .init = start,
     .fini = stop, .timeout = 120) {
    FXT_NOT_UNDER_ASAN("the ASan quarantine keeps freed memory resident");
    enum { BD = 32, BN = 20000 };
    float* xb = fxt_uniform(BN, BD, 4);
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, BD, "IDMap,Flat", METRIC_L2));
    idx_t* ids = malloc(sizeof(idx_t) * BN);
    for (int i = 0; i < BN; i++) ids[i] = 7 * i + 1;
    FXT_OK(faiss_Index_add_with_ids(ix, BN, xb, ids));
    size_t len = 0;
    uint8_t* b = bytes_of(ix, &len);
    size_field(b, len, BN, sizeof(idx_t) * BN); /* the id map is last */
    size_t cut = len - 1000;
    char err[1024];
    /* Warm up (allocator arenas, NNG buffers) before measuring. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(raw_upload(b, cut, err, sizeof err), FAISSX_E_IO);
    long rss0 = status_kb(srv.pid, "VmRSS");
    for (int i = 0; i < 30; i++) {
        cr_assert_eq(raw_upload(b, cut, err, sizeof err), FAISSX_E_IO);
        cr_assert(strstr(err, "not a readable faiss index"), "%s", err);
    }
    long rss1 = status_kb(srv.pid, "VmRSS");
    cr_assert_lt(rss1 - rss0, 24 * 1024,
                 "RSS grew by %ld kB over 30 failed uploads", rss1 - rss0);
    /* The whole bytes still upload. */
    cr_assert_eq(raw_upload(b, len, err, sizeof err), 0, "%s", err);
    faiss_Index_free(ix);
    free(ids);
    free(b);
    free(xb);
}

/* Uploads that need more memory than their bytes (IVFPQ's precomputed
 * table, an IDMap2's reverse map) still read, and search as the local
 * index does. */
Test(upload_guard, normal_uploads_still_read, .init = start, .fini = stop,
     .timeout = 120) {
    enum { PD = 16, PN = 3000, NQ = 20, K = 5 };
    float* xb = fxt_clustered(PN, PD, 30, 0.1f, 5);
    const char* descs[] = {"IVF32,PQ4", "IDMap2,Flat", "IVF16,Flat",
                           "HNSW8"};
    for (int t = 0; t < 4; t++) {
        FaissIndex* ix = NULL;
        FXT_OK(faiss_index_factory(&ix, PD, descs[t], METRIC_L2));
        FXT_OK(faiss_Index_train(ix, PN, xb));
        if (t == 1) {
            idx_t* ids = malloc(sizeof(idx_t) * PN);
            for (int i = 0; i < PN; i++) ids[i] = 3 * i;
            FXT_OK(faiss_Index_add_with_ids(ix, PN, xb, ids));
            free(ids);
        } else {
            FXT_OK(faiss_Index_add(ix, PN, xb));
        }
        FXT_OK(faissx_configure(srv.url, NULL, 60000));
        FaissIndex* up = NULL;
        FXT_OK(faissx_index_upload(ix, NULL, &up));
        float d1[NQ * K], d2[NQ * K];
        idx_t l1[NQ * K], l2[NQ * K];
        FXT_OK(faiss_Index_search(up, NQ, xb, K, d1, l1));
        /* faiss's own reader is the reference (an IVFPQ read back uses
         * its precomputed table, which may round differently from the
         * index that was trained in memory) */
        size_t blen = 0;
        uint8_t* bytes = bytes_of(ix, &blen);
        FILE* f = fmemopen(bytes, blen, "rb");
        cr_assert(f);
        FaissIndex* back = NULL;
        FXT_OK(faiss_read_index(f, 0, &back));
        fclose(f);
        free(bytes);
        FXT_OK(faiss_Index_search(back, NQ, xb, K, d2, l2));
        faiss_Index_free(back);
        cr_assert(memcmp(l1, l2, sizeof l1) == 0, "%s: labels differ",
                  descs[t]);
        cr_assert(memcmp(d1, d2, sizeof d1) == 0, "%s: distances differ",
                  descs[t]);
        faiss_Index_free(up);
        faiss_Index_free(ix);
        faissx_configure(NULL, NULL, 0);
    }
    free(xb);
}
