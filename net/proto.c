/* proto.c -- the faissx wire protocol codec (see proto.h, docs/protocol.md).
 * Pure: no I/O, and every read is bounds-checked. */
#include "net/proto.h"

#include <faissx/faissx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put16(uint8_t* p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t* p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t* p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t get32(const uint8_t* p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void fx_hdr_encode(const fx_hdr* h, uint8_t out[FX_HDR_SIZE]) {
    put32(out + 0, h->magic);
    put16(out + 4, h->version);
    put16(out + 6, h->op);
    put32(out + 8, h->flags);
    put32(out + 12, h->body_len);
    put64(out + 16, h->request_id);
    put64(out + 24, h->client_id);
    put32(out + 32, h->timeout_ms);
    put32(out + 36, (uint32_t)h->status);
}

int fx_hdr_decode(const uint8_t* buf, size_t len, fx_hdr* h, char* err,
                  size_t errsz) {
    if (len < FX_HDR_SIZE) {
        snprintf(err, errsz, "message of %zu bytes is shorter than the "
                 "%d-byte header", len, FX_HDR_SIZE);
        return FAISSX_E_INVALID;
    }
    h->magic = get32(buf + 0);
    h->version = get16(buf + 4);
    h->op = get16(buf + 6);
    h->flags = get32(buf + 8);
    h->body_len = get32(buf + 12);
    h->request_id = get64(buf + 16);
    h->client_id = get64(buf + 24);
    h->timeout_ms = get32(buf + 32);
    h->status = (int32_t)get32(buf + 36);
    if (h->magic != FX_PROTO_MAGIC) {
        snprintf(err, errsz, "bad magic 0x%08x (not a faissx message)",
                 h->magic);
        return FAISSX_E_INVALID;
    }
    if (h->version != FX_PROTO_VERSION) {
        snprintf(err, errsz, "unsupported protocol version %u (this end "
                 "speaks %d)", h->version, FX_PROTO_VERSION);
        return FAISSX_E_INVALID;
    }
    /* op 0 appears only in the error reply to an undecodable request. */
    int error_reply = (h->flags & FX_FLAG_REPLY) && h->status < 0;
    if ((h->op == 0 && !error_reply) || h->op >= FX_OP_MAX_) {
        snprintf(err, errsz, "unknown operation %u", h->op);
        return FAISSX_E_UNSUPPORTED;
    }
    if ((uint64_t)h->body_len != (uint64_t)(len - FX_HDR_SIZE)) {
        snprintf(err, errsz, "header announces a %u-byte body but %zu bytes "
                 "follow", h->body_len, len - FX_HDR_SIZE);
        return FAISSX_E_INVALID;
    }
    return 0;
}

/* ---- writer ---- */

void fx_w_init(fx_wbuf* w) {
    memset(w, 0, sizeof *w);
}

void fx_w_free(fx_wbuf* w) {
    if (w->store)
        w->store(w, 0);
    else
        free(w->data);
    memset(w, 0, sizeof *w);
}

void fx_w_reset(fx_wbuf* w) {
    w->len = 0;
    w->oom = 0;
}

/* Makes room for n more bytes: at least double the capacity, and for a
 * large field (a vector array) its size plus an eighth, so that the few
 * fields after it (ids, search parameters) usually fit without moving it. */
static int room(fx_wbuf* w, size_t n) {
    if (w->oom) return -1;
    if (n > SIZE_MAX / 2 - w->len) {
        w->oom = 1;
        return -1;
    }
    size_t need = w->len + n;
    if (need <= w->cap) return 0;
    size_t cap = w->cap ? w->cap * 2 : 256;
    if (cap < need + need / 8) cap = need + need / 8;
    uint8_t* d = w->store ? w->store(w, cap) : realloc(w->data, cap);
    if (!d) {
        w->oom = 1;
        return -1;
    }
    w->data = d;
    w->cap = cap;
    return 0;
}

static uint8_t* grow(fx_wbuf* w, size_t n) {
    if (room(w, n)) return NULL;
    uint8_t* p = w->data + w->len;
    w->len += n;
    return p;
}

void fx_w_reserve(fx_wbuf* w, size_t n) {
    (void)room(w, n);
}

void fx_w_bytes(fx_wbuf* w, const void* p, size_t n) {
    uint8_t* q = grow(w, n);
    if (q && n) memcpy(q, p, n);
}

static size_t pad8(uint64_t n) {
    return (size_t)((8 - (n & 7)) & 7);
}

void fx_w_header_space(fx_wbuf* w) {
    uint8_t* p = grow(w, FX_HDR_SIZE);
    if (p) memset(p, 0, FX_HDR_SIZE);
}

void fx_w_u64(fx_wbuf* w, uint64_t v) {
    uint8_t* p = grow(w, 8);
    if (p) put64(p, v);
}

void fx_w_i64(fx_wbuf* w, int64_t v) {
    fx_w_u64(w, (uint64_t)v);
}

void fx_w_f64(fx_wbuf* w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    fx_w_u64(w, u);
}

void fx_w_strn(fx_wbuf* w, const char* s, size_t n) {
    fx_w_u64(w, n);
    uint8_t* p = grow(w, n + pad8(n));
    if (!p) return;
    if (n) memcpy(p, s, n);
    memset(p + n, 0, pad8(n));
}

void fx_w_str(fx_wbuf* w, const char* s) {
    fx_w_strn(w, s ? s : "", s ? strlen(s) : 0);
}

void* fx_w_array_reserve(fx_wbuf* w, uint64_t count, size_t elem) {
    if (elem && count > (SIZE_MAX / 2) / elem) {
        w->oom = 1;
        return NULL;
    }
    size_t n = (size_t)count * elem;
    fx_w_u64(w, count);
    uint8_t* p = grow(w, n + pad8(n));
    if (!p) return NULL;
    memset(p + n, 0, pad8(n));
    return p;
}

void fx_w_array(fx_wbuf* w, const void* data, uint64_t count, size_t elem) {
    void* p = fx_w_array_reserve(w, count, elem);
    if (p && count) memcpy(p, data, (size_t)count * elem);
}

void fx_w_finish(fx_wbuf* w, fx_hdr* h) {
    if (w->oom || w->len < FX_HDR_SIZE) return;
    h->magic = FX_PROTO_MAGIC;
    h->version = FX_PROTO_VERSION;
    h->body_len = (uint32_t)(w->len - FX_HDR_SIZE);
    fx_hdr_encode(h, w->data);
}

/* ---- reader ---- */

void fx_r_init(fx_rbuf* r, const uint8_t* body, size_t len) {
    r->p = body;
    r->len = len;
    r->pos = 0;
    r->err = NULL;
}

static int fail(fx_rbuf* r, const char* why) {
    if (!r->err) r->err = why;
    return -1;
}

int fx_r_u64(fx_rbuf* r, uint64_t* v) {
    if (r->err) return -1;
    if (r->len - r->pos < 8) return fail(r, "truncated body");
    *v = get64(r->p + r->pos);
    r->pos += 8;
    return 0;
}

int fx_r_i64(fx_rbuf* r, int64_t* v) {
    uint64_t u;
    if (fx_r_u64(r, &u)) return -1;
    *v = (int64_t)u;
    return 0;
}

int fx_r_range(fx_rbuf* r, int64_t lo, int64_t hi, int64_t* v) {
    if (fx_r_i64(r, v)) return -1;
    if (*v < lo || *v > hi) return fail(r, "integer field out of range");
    return 0;
}

int fx_r_f64(fx_rbuf* r, double* v) {
    uint64_t u;
    if (fx_r_u64(r, &u)) return -1;
    memcpy(v, &u, 8);
    return 0;
}

int fx_r_str(fx_rbuf* r, char* out, size_t maxlen) {
    uint64_t n;
    if (fx_r_u64(r, &n)) return -1;
    if (n > maxlen) return fail(r, "string field too long");
    if (n > r->len - r->pos) return fail(r, "truncated string field");
    uint64_t padded = n + pad8(n); /* cannot wrap: n <= len */
    if (padded > r->len - r->pos) return fail(r, "truncated string field");
    if (memchr(r->p + r->pos, '\0', (size_t)n))
        return fail(r, "string field contains a NUL byte");
    memcpy(out, r->p + r->pos, (size_t)n);
    out[n] = '\0';
    r->pos += (size_t)padded;
    return 0;
}

int fx_r_array(fx_rbuf* r, size_t elem, uint64_t max_count,
               const void** data, uint64_t* count) {
    uint64_t n;
    if (fx_r_u64(r, &n)) return -1;
    if (n > max_count) return fail(r, "array field too long");
    if (elem && n > (r->len - r->pos) / elem)
        return fail(r, "truncated array field");
    uint64_t bytes = n * elem;
    uint64_t padded = bytes + pad8(bytes);
    if (padded > r->len - r->pos) return fail(r, "truncated array field");
    *data = r->p + r->pos;
    *count = n;
    r->pos += (size_t)padded;
    return 0;
}

int fx_r_end(fx_rbuf* r) {
    if (r->err) return -1;
    if (r->pos != r->len) return fail(r, "trailing bytes after the body");
    return 0;
}

const char* fx_op_name(int op) {
    static const char* const names[] = {
            "?",           "ping",           "create",      "open",
            "list",        "drop",           "release",     "info",
            "train",       "add",            "add_with_ids", "search",
            "range_search", "assign",        "reset",       "remove_ids",
            "reconstruct_n", "reconstruct_keys", "residual", "sa_code_size",
            "sa_encode",   "sa_decode",      "set_param",   "get_param",
            "serialize",   "upload",         "clone",       "merge_from",
            "wrap",        "fetch",          "ivf",         "binary",
            "progress",    "cancel",         "upload_begin", "upload_chunk",
            "upload_commit", "upload_abort", "download_begin",
            "download_chunk", "download_end", "composite", "add_stream",
            "limits",
    };
    _Static_assert(sizeof names / sizeof *names == FX_OP_MAX_,
                   "a name for every op");
    if (op <= 0 || op >= FX_OP_MAX_) return "unknown";
    return names[op];
}
