/* test_proto.c -- the wire codec (net/proto.[ch]): header encode/decode,
 * writer/reader round trips, and every way the reader must refuse a body. */
#include <criterion/criterion.h>
#include <faissx/faissx.h>

#include "net/proto.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A full message: header + body, as the writer builds it. */
static void make_msg(fx_wbuf* w, int op) {
    fx_w_init(w);
    fx_w_header_space(w);
    fx_w_str(w, "key");
    fx_w_u64(w, 42);
    fx_hdr h = {0};
    h.op = (uint16_t)op;
    h.request_id = 7;
    h.client_id = 9;
    fx_w_finish(w, &h);
}

static uint64_t le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- header ------------------------------------------------------------ */

Test(proto, header_round_trip) {
    fx_hdr h = {0};
    h.magic = FX_PROTO_MAGIC;
    h.version = FX_PROTO_VERSION;
    h.op = FX_OP_SEARCH;
    h.flags = FX_FLAG_REPLY;
    h.body_len = 24;
    h.request_id = 0x0102030405060708ull;
    h.client_id = 0xf1f2f3f4f5f6f7f8ull;
    h.timeout_ms = 123456;
    h.status = FAISSX_E_NOT_FOUND;
    uint8_t buf[FX_HDR_SIZE + 24];
    memset(buf, 0xee, sizeof buf);
    fx_hdr_encode(&h, buf);
    /* Little-endian on the wire, whatever the host: spot-check bytes. */
    cr_assert_eq(memcmp(buf, "FASX", 4), 0);
    cr_assert_eq(buf[4], 1);
    cr_assert_eq(buf[5], 0);
    cr_assert_eq(buf[6], FX_OP_SEARCH);
    cr_assert_eq(buf[16], 0x08);
    cr_assert_eq(buf[23], 0x01);
    cr_assert_eq(buf[36], (uint8_t)FAISSX_E_NOT_FOUND);
    cr_assert_eq(buf[39], 0xff); /* negative status, two's complement */
    cr_assert_eq(buf[FX_HDR_SIZE], 0xee, "encode wrote past the header");

    fx_hdr g;
    char err[128] = "";
    cr_assert_eq(fx_hdr_decode(buf, sizeof buf, &g, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(g.magic, h.magic);
    cr_assert_eq(g.version, h.version);
    cr_assert_eq(g.op, h.op);
    cr_assert_eq(g.flags, h.flags);
    cr_assert_eq(g.body_len, h.body_len);
    cr_assert_eq(g.request_id, h.request_id);
    cr_assert_eq(g.client_id, h.client_id);
    cr_assert_eq(g.timeout_ms, h.timeout_ms);
    cr_assert_eq(g.status, h.status);
}

Test(proto, writer_finish_fills_header) {
    fx_wbuf w;
    make_msg(&w, FX_OP_INFO);
    fx_hdr g;
    char err[128] = "";
    cr_assert_eq(fx_hdr_decode(w.data, w.len, &g, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(g.op, FX_OP_INFO);
    cr_assert_eq(g.body_len, w.len - FX_HDR_SIZE);
    cr_assert_eq(g.request_id, 7);
    cr_assert_eq(g.client_id, 9);
    cr_assert_eq(g.flags, 0);
    fx_w_free(&w);
}

#define DECODE_ERR(buf, len, code, needle)                                  \
    do {                                                                    \
        fx_hdr g_;                                                          \
        char e_[256] = "";                                                  \
        int rc_ = fx_hdr_decode((buf), (len), &g_, e_, sizeof e_);          \
        cr_assert_eq(rc_, (code), "rc %d, expected %d (%s)", rc_, (code),   \
                     e_);                                                   \
        cr_assert(strstr(e_, (needle)) != NULL, "'%s' lacks '%s'", e_,      \
                  (needle));                                                \
    } while (0)

Test(proto, header_decode_errors) {
    fx_wbuf w;
    make_msg(&w, FX_OP_PING);
    size_t len = w.len;
    uint8_t* m = malloc(len + 16);
    memcpy(m, w.data, len);
    fx_w_free(&w);

    /* Every length shorter than a header. */
    for (size_t l = 0; l < FX_HDR_SIZE; l++)
        DECODE_ERR(m, l, FAISSX_E_INVALID, "shorter than");

    uint8_t c[256];
    cr_assert(len <= sizeof c);

    memcpy(c, m, len);
    c[0] ^= 1;
    DECODE_ERR(c, len, FAISSX_E_INVALID, "bad magic");

    memcpy(c, m, len);
    c[4] = 2;
    DECODE_ERR(c, len, FAISSX_E_INVALID, "version 2");
    memcpy(c, m, len);
    c[4] = 0;
    DECODE_ERR(c, len, FAISSX_E_INVALID, "version 0");

    memcpy(c, m, len);
    c[6] = 0;
    c[7] = 0;
    DECODE_ERR(c, len, FAISSX_E_UNSUPPORTED, "unknown operation 0");
    memcpy(c, m, len);
    c[6] = FX_OP_MAX_;
    DECODE_ERR(c, len, FAISSX_E_UNSUPPORTED, "unknown operation");
    memcpy(c, m, len);
    c[6] = 0xff;
    c[7] = 0xff;
    DECODE_ERR(c, len, FAISSX_E_UNSUPPORTED, "65535");
    /* The last known op is accepted. */
    memcpy(c, m, len);
    c[6] = FX_OP_MAX_ - 1;
    fx_hdr g;
    char err[128];
    cr_assert_eq(fx_hdr_decode(c, len, &g, err, sizeof err), 0, "%s", err);

    /* body_len lying: the message is longer, or shorter, than announced. */
    memcpy(c, m, len);
    c[12]++;
    DECODE_ERR(c, len, FAISSX_E_INVALID, "body");
    memcpy(c, m, len);
    c[12]--;
    DECODE_ERR(c, len, FAISSX_E_INVALID, "body");
    memcpy(c, m, len);
    c[15] = 0x80; /* 2 GiB announced */
    DECODE_ERR(c, len, FAISSX_E_INVALID, "body");
    /* Real bytes beyond the announced body. */
    memcpy(c, m, len);
    memset(c + len, 0, 8);
    DECODE_ERR(c, len + 8, FAISSX_E_INVALID, "body");
    /* A header alone that announces a body. */
    DECODE_ERR(m, FX_HDR_SIZE, FAISSX_E_INVALID, "body");
    free(m);
}

/* ---- writer/reader round trip ------------------------------------------ */

Test(proto, every_field_round_trips) {
    fx_wbuf w;
    fx_w_init(&w);
    fx_w_header_space(&w);
    cr_assert_eq(w.len, FX_HDR_SIZE);

    const float f32[3] = {1.5f, -0.0f, NAN};
    const int64_t i64[5] = {INT64_MIN, -1, 0, 1, INT64_MAX};
    const uint8_t u8[11] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255};
    const char* strs[] = {"", "a", "seven77", "exactly8", "nine12345",
                          "sixteen-bytes..."};
    const size_t nstr = sizeof strs / sizeof *strs;

    fx_w_u64(&w, UINT64_MAX);
    fx_w_u64(&w, 0);
    fx_w_i64(&w, INT64_MIN);
    fx_w_i64(&w, -2);
    fx_w_f64(&w, -0.0);
    fx_w_f64(&w, 1e-310); /* subnormal */
    fx_w_f64(&w, INFINITY);
    for (size_t i = 0; i < nstr; i++) {
        fx_w_str(&w, strs[i]);
        cr_assert_eq((w.len - FX_HDR_SIZE) % 8, 0, "str '%s' not padded",
                     strs[i]);
    }
    fx_w_str(&w, NULL); /* NULL encodes as the empty string */
    fx_w_strn(&w, "abcdef", 3);
    fx_w_array(&w, f32, 3, sizeof(float));
    cr_assert_eq((w.len - FX_HDR_SIZE) % 8, 0);
    fx_w_array(&w, i64, 5, sizeof(int64_t));
    fx_w_array(&w, u8, 11, 1);
    cr_assert_eq((w.len - FX_HDR_SIZE) % 8, 0);
    fx_w_array(&w, NULL, 0, sizeof(float));
    fx_w_array(&w, NULL, 0, 1);
    float* res = fx_w_array_reserve(&w, 1, sizeof(float));
    cr_assert(res != NULL);
    *res = 3.25f;
    fx_w_u64(&w, 0x1122334455667788ull);
    cr_assert_eq(w.oom, 0);
    cr_assert_eq((w.len - FX_HDR_SIZE) % 8, 0);

    /* Padding bytes are zero: check the 1-byte string "a" (at body
     * offset 64: 7 fixed fields, then "" = 8 bytes). */
    const uint8_t* body = w.data + FX_HDR_SIZE;
    cr_assert_eq(le64(body + 64), 1);
    cr_assert_eq(body[72], 'a');
    for (int i = 73; i < 80; i++) cr_assert_eq(body[i], 0);

    /* Read it back from a copy (as a receiver would: malloc'd, 8-aligned
     * body). */
    size_t blen = w.len - FX_HDR_SIZE;
    uint8_t* copy = malloc(blen);
    memcpy(copy, body, blen);
    fx_w_free(&w);

    fx_rbuf r;
    fx_r_init(&r, copy, blen);
    uint64_t u;
    int64_t s;
    double d;
    cr_assert_eq(fx_r_u64(&r, &u), 0);
    cr_assert_eq(u, UINT64_MAX);
    cr_assert_eq(fx_r_u64(&r, &u), 0);
    cr_assert_eq(u, 0);
    cr_assert_eq(fx_r_i64(&r, &s), 0);
    cr_assert_eq(s, INT64_MIN);
    cr_assert_eq(fx_r_i64(&r, &s), 0);
    cr_assert_eq(s, -2);
    cr_assert_eq(fx_r_f64(&r, &d), 0);
    cr_assert(d == 0.0 && signbit(d), "-0.0 lost its sign");
    cr_assert_eq(fx_r_f64(&r, &d), 0);
    cr_assert(d == 1e-310);
    cr_assert_eq(fx_r_f64(&r, &d), 0);
    cr_assert(isinf(d) && d > 0);
    char buf[64];
    for (size_t i = 0; i < nstr; i++) {
        memset(buf, 'x', sizeof buf);
        cr_assert_eq(fx_r_str(&r, buf, 32), 0, "%s", r.err);
        cr_assert_str_eq(buf, strs[i]);
    }
    cr_assert_eq(fx_r_str(&r, buf, 32), 0);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(fx_r_str(&r, buf, 3), 0); /* exactly maxlen is fine */
    cr_assert_str_eq(buf, "abc");

    const void* p;
    uint64_t n;
    cr_assert_eq(fx_r_array(&r, sizeof(float), 3, &p, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq((uintptr_t)p % 8, 0, "array not 8-aligned");
    cr_assert_eq(memcmp(p, f32, sizeof f32), 0); /* bit-identical, NaN too */
    cr_assert_eq(fx_r_array(&r, sizeof(int64_t), 5, &p, &n), 0);
    cr_assert_eq(n, 5);
    cr_assert_eq((uintptr_t)p % 8, 0);
    cr_assert_eq(memcmp(p, i64, sizeof i64), 0);
    cr_assert_eq(fx_r_array(&r, 1, 100, &p, &n), 0);
    cr_assert_eq(n, 11);
    cr_assert_eq((uintptr_t)p % 8, 0);
    cr_assert_eq(memcmp(p, u8, sizeof u8), 0);
    cr_assert_eq(fx_r_array(&r, sizeof(float), 0, &p, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(fx_r_array(&r, 1, 0, &p, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(fx_r_array(&r, sizeof(float), 1, &p, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq((uintptr_t)p % 8, 0);
    cr_assert_eq(*(const float*)p, 3.25f);
    cr_assert_eq(fx_r_u64(&r, &u), 0);
    cr_assert_eq(u, 0x1122334455667788ull);
    cr_assert_eq(fx_r_end(&r), 0);
    cr_assert_null(r.err);
    free(copy);
}

Test(proto, range_field) {
    fx_wbuf w;
    fx_w_init(&w);
    fx_w_i64(&w, 5);
    fx_w_i64(&w, 5);
    fx_w_i64(&w, -3);
    fx_rbuf r;
    int64_t v;
    fx_r_init(&r, w.data, w.len);
    cr_assert_eq(fx_r_range(&r, 0, 5, &v), 0); /* bounds are inclusive */
    cr_assert_eq(v, 5);
    cr_assert_eq(fx_r_range(&r, 5, 5, &v), 0);
    cr_assert_eq(fx_r_range(&r, -2, 10, &v), -1);
    cr_assert_str_eq(r.err, "integer field out of range");
    cr_assert_eq(fx_r_end(&r), -1);

    fx_r_init(&r, w.data, w.len);
    cr_assert_eq(fx_r_range(&r, 6, 100, &v), -1);
    cr_assert(r.err && strstr(r.err, "out of range"));
    fx_w_free(&w);
}

/* ---- reader errors ------------------------------------------------------ */

/* A body with one field of each kind; decoding it needs every byte. */
static void sample_body(fx_wbuf* w) {
    const float x[5] = {1, 2, 3, 4, 5};
    const int64_t ids[2] = {10, 20};
    const uint8_t c[3] = {7, 8, 9};
    fx_w_init(w);
    fx_w_str(w, "api-key");
    fx_w_u64(w, 99);
    fx_w_i64(w, -5);
    fx_w_f64(w, 0.5);
    fx_w_array(w, x, 5, sizeof(float));
    fx_w_array(w, ids, 2, sizeof(int64_t));
    fx_w_array(w, c, 3, 1);
    fx_w_str(w, "");
}

/* Decodes sample_body's fields; returns 0 when all are read and the body
 * ends there. */
static int read_sample(fx_rbuf* r) {
    char s[32];
    uint64_t u;
    int64_t i;
    double d;
    const void* p;
    uint64_t n;
    int bad = 0;
    bad |= fx_r_str(r, s, 31) != 0;
    bad |= fx_r_u64(r, &u) != 0;
    bad |= fx_r_i64(r, &i) != 0;
    bad |= fx_r_f64(r, &d) != 0;
    bad |= fx_r_array(r, sizeof(float), 100, &p, &n) != 0;
    bad |= fx_r_array(r, sizeof(int64_t), 100, &p, &n) != 0;
    bad |= fx_r_array(r, 1, 100, &p, &n) != 0;
    bad |= fx_r_str(r, s, 31) != 0;
    bad |= fx_r_end(r) != 0;
    return bad ? -1 : 0;
}

Test(proto, truncated_at_every_offset) {
    fx_wbuf w;
    sample_body(&w);
    fx_rbuf r;
    fx_r_init(&r, w.data, w.len);
    cr_assert_eq(read_sample(&r), 0, "%s", r.err);
    for (size_t cut = 0; cut < w.len; cut++) {
        /* An exact-size heap copy, so ASan catches a read past the end. */
        uint8_t* b = malloc(cut ? cut : 1);
        memcpy(b, w.data, cut);
        fx_r_init(&r, b, cut);
        cr_assert_eq(read_sample(&r), -1, "a %zu-byte prefix decoded", cut);
        cr_assert(r.err != NULL && strstr(r.err, "truncated"),
                  "cut %zu: err '%s'", cut, r.err ? r.err : "(null)");
        cr_assert(r.pos <= cut);
        free(b);
    }
    fx_w_free(&w);
}

Test(proto, trailing_bytes) {
    fx_wbuf w;
    sample_body(&w);
    fx_w_u64(&w, 0);
    fx_rbuf r;
    fx_r_init(&r, w.data, w.len);
    cr_assert_eq(read_sample(&r), -1);
    cr_assert_str_eq(r.err, "trailing bytes after the body");
    /* A single trailing byte too. */
    fx_r_init(&r, w.data, w.len - 7);
    cr_assert_eq(read_sample(&r), -1);
    cr_assert(r.err != NULL);
    fx_w_free(&w);
}

Test(proto, string_errors) {
    fx_wbuf w;
    fx_rbuf r;
    char out[16];

    fx_w_init(&w);
    fx_w_str(&w, "0123456789");
    fx_r_init(&r, w.data, w.len);
    cr_assert_eq(fx_r_str(&r, out, 9), -1);
    cr_assert_str_eq(r.err, "string field too long");
    cr_assert_eq(r.pos, 8, "the reader advanced past the length only");
    fx_w_free(&w);

    fx_w_init(&w);
    fx_w_strn(&w, "ab\0cd", 5);
    fx_r_init(&r, w.data, w.len);
    cr_assert_eq(fx_r_str(&r, out, 15), -1);
    cr_assert_str_eq(r.err, "string field contains a NUL byte");
    fx_w_free(&w);

    /* A length near 2^64 must not wrap any computation. */
    fx_w_init(&w);
    fx_w_u64(&w, UINT64_MAX - 3);
    fx_w_u64(&w, 0);
    fx_r_init(&r, w.data, w.len);
    cr_assert_eq(fx_r_str(&r, out, SIZE_MAX - 1), -1);
    cr_assert_str_eq(r.err, "truncated string field");
    fx_w_free(&w);

    /* Length fits but the padding is missing. */
    fx_w_init(&w);
    fx_w_u64(&w, 3);
    fx_w_u64(&w, 0);
    fx_r_init(&r, w.data, 8 + 3); /* bytes present, padding absent */
    cr_assert_eq(fx_r_str(&r, out, 15), -1);
    cr_assert_str_eq(r.err, "truncated string field");
    fx_w_free(&w);
}

Test(proto, array_errors) {
    fx_wbuf w;
    fx_rbuf r;
    const void* p;
    uint64_t n;
    const float x[4] = {1, 2, 3, 4};

    fx_w_init(&w);
    fx_w_array(&w, x, 4, sizeof(float));
    fx_r_init(&r, w.data, w.len);
    cr_assert_eq(fx_r_array(&r, sizeof(float), 3, &p, &n), -1);
    cr_assert_str_eq(r.err, "array field too long");
    fx_r_init(&r, w.data, w.len);
    cr_assert_eq(fx_r_array(&r, sizeof(float), 4, &p, &n), 0);
    fx_w_free(&w);

    /* count * elem overflows 64 bits: huge counts whose product wraps to a
     * small number must still be refused. */
    const uint64_t huge[] = {UINT64_MAX, UINT64_MAX / 4 + 1,
                             (UINT64_MAX / 8) + 2, 1ull << 62, 1ull << 61};
    const size_t elems[] = {1, 4, 8, 16};
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++)
        for (size_t j = 0; j < sizeof elems / sizeof *elems; j++) {
            fx_w_init(&w);
            fx_w_u64(&w, huge[i]);
            for (int z = 0; z < 4; z++) fx_w_u64(&w, 0);
            fx_r_init(&r, w.data, w.len);
            cr_assert_eq(fx_r_array(&r, elems[j], UINT64_MAX, &p, &n), -1,
                         "count %llu x %zu accepted",
                         (unsigned long long)huge[i], elems[j]);
            cr_assert_str_eq(r.err, "truncated array field");
            fx_w_free(&w);
        }

    /* Data present but the padding is not. */
    fx_w_init(&w);
    const uint8_t c[3] = {1, 2, 3};
    fx_w_array(&w, c, 3, 1);
    fx_r_init(&r, w.data, 8 + 3);
    cr_assert_eq(fx_r_array(&r, 1, 10, &p, &n), -1);
    cr_assert_str_eq(r.err, "truncated array field");
    fx_w_free(&w);
}

Test(proto, reader_error_is_sticky) {
    fx_wbuf w;
    fx_w_init(&w);
    fx_w_str(&w, "much too long a string");
    fx_w_u64(&w, 5);
    fx_w_u64(&w, 6);
    fx_rbuf r;
    fx_r_init(&r, w.data, w.len);
    char out[8];
    cr_assert_eq(fx_r_str(&r, out, 4), -1);
    const char* first = r.err;
    size_t pos = r.pos;
    uint64_t u = 777;
    int64_t s = 777;
    double d = 777;
    const void* p = NULL;
    uint64_t n = 777;
    /* Everything after the first failure fails, leaves outputs alone, and
     * keeps the first reason. */
    cr_assert_eq(fx_r_u64(&r, &u), -1);
    cr_assert_eq(fx_r_i64(&r, &s), -1);
    cr_assert_eq(fx_r_f64(&r, &d), -1);
    cr_assert_eq(fx_r_range(&r, 0, 10, &s), -1);
    cr_assert_eq(fx_r_str(&r, out, 7), -1);
    cr_assert_eq(fx_r_array(&r, 1, 100, &p, &n), -1);
    cr_assert_eq(fx_r_end(&r), -1);
    cr_assert_eq(u, 777);
    cr_assert_eq(s, 777);
    cr_assert_eq(n, 777);
    cr_assert_null(p);
    cr_assert_eq(r.err, first);
    cr_assert_str_eq(r.err, "string field too long");
    cr_assert_eq(r.pos, pos);

    /* A range failure is sticky too. */
    fx_r_init(&r, w.data + 32, 16);
    cr_assert_eq(fx_r_range(&r, 6, 6, &s), -1);
    cr_assert_eq(fx_r_u64(&r, &u), -1, "read on after a range error");
    cr_assert_str_eq(r.err, "integer field out of range");
    fx_w_free(&w);
}

Test(proto, op_names) {
    cr_assert_str_eq(fx_op_name(FX_OP_PING), "ping");
    cr_assert_str_eq(fx_op_name(FX_OP_SEARCH), "search");
    cr_assert_str_eq(fx_op_name(FX_OP_MERGE_FROM), "merge_from");
    cr_assert_str_eq(fx_op_name(0), "unknown");
    cr_assert_str_eq(fx_op_name(FX_OP_MAX_), "unknown");
    cr_assert_str_eq(fx_op_name(-1), "unknown");
    for (int op = 1; op < FX_OP_MAX_; op++) {
        const char* n = fx_op_name(op);
        cr_assert(n && *n && strcmp(n, "unknown") && strcmp(n, "?"),
                  "op %d has no name", op);
    }
}

Test(proto, writer_overflow_sets_oom) {
    fx_wbuf w;
    fx_w_init(&w);
    fx_w_header_space(&w);
    cr_assert_null(fx_w_array_reserve(&w, UINT64_MAX / 2, 8));
    cr_assert_eq(w.oom, 1);
    /* Sticky: later writes do nothing, finish leaves the buffer alone. */
    size_t len = w.len;
    fx_w_u64(&w, 1);
    cr_assert_eq(w.len, len);
    fx_hdr h = {0};
    h.op = FX_OP_PING;
    fx_w_finish(&w, &h);
    fx_w_free(&w);
}
