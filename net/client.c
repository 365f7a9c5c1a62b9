/* client.c -- the client transport: NNG req0, one context per call. */
#include "net/client.h"

#include <faissx/faissx.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fx_client {
    nng_socket sock;
    char* url;
    char* key;
    uint32_t timeout_ms;
    uint64_t client_id;
    _Atomic uint64_t next_id;
};

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

int fx_client_open(const char* url, const char* api_key, uint32_t timeout_ms,
                   fx_client** out, char* err, size_t errsz) {
    fx_client* c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errsz, "out of memory");
        return FAISSX_E_NOMEM;
    }
    c->url = strdup(url);
    c->key = strdup(api_key ? api_key : "");
    c->timeout_ms = timeout_ms ? timeout_ms : 30000;
    c->client_id = random_id();
    atomic_init(&c->next_id, 1);
    int rv;
    if (!c->url || !c->key) {
        rv = NNG_ENOMEM;
        goto fail;
    }
    if ((rv = nng_req0_open(&c->sock)) != 0) goto fail;
    /* A mutation must never be applied twice, so NNG may not resend a
     * request on its own (its default is to resend after 60 s). */
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 100);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 2000);
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, 0); /* replies: no cap */
    if (strncmp(url, "tls+tcp://", 10) == 0) {
        nng_dialer d;
        nng_tls_config* cfg = NULL;
        if ((rv = nng_dialer_create(&d, c->sock, url)) != 0) goto fail;
        if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0)
            goto fail;
        const char* ca = getenv("FAISSX_TLS_CA");
        if (ca && *ca) {
            rv = nng_tls_config_ca_file(cfg, ca);
            if (rv == 0)
                rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
        } else {
            rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_NONE);
        }
        if (rv == 0) rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
        nng_tls_config_free(cfg);
        if (rv == 0) rv = nng_dialer_start(d, 0);
        if (rv != 0) goto fail;
    } else if ((rv = nng_dial(c->sock, url, NULL, 0)) != 0) {
        goto fail;
    }
    *out = c;
    return 0;
fail:
    snprintf(err, errsz, "cannot connect to %s: %s", url ? url : "(null)",
             nng_strerror(rv));
    if (c->sock.id) nng_close(c->sock);
    free(c->url);
    free(c->key);
    free(c);
    return rv == NNG_ENOMEM ? FAISSX_E_NOMEM
           : rv == NNG_EINVAL || rv == NNG_EADDRINVAL ? FAISSX_E_INVALID
                                                       : FAISSX_E_NET;
}

void fx_client_close(fx_client* c) {
    if (!c) return;
    nng_close(c->sock);
    free(c->url);
    free(c->key);
    free(c);
}

const char* fx_client_url(const fx_client* c) {
    return c->url;
}

void fx_client_begin(fx_client* c, fx_wbuf* w) {
    fx_w_init(w);
    fx_w_header_space(w);
    fx_w_str(w, c->key);
}

void fx_reply_free(fx_reply* rep) {
    if (rep && rep->msg) nng_msg_free((nng_msg*)rep->msg);
    if (rep) rep->msg = NULL;
}

int fx_client_call(fx_client* c, int op, fx_wbuf* w, fx_reply* rep,
                   char* err, size_t errsz) {
    rep->msg = NULL;
    if (w->oom) {
        snprintf(err, errsz, "out of memory building the request");
        return FAISSX_E_NOMEM;
    }
    if (w->len - FX_HDR_SIZE > UINT32_MAX) {
        snprintf(err, errsz, "request of %zu bytes is too large for one "
                 "message", w->len);
        return FAISSX_E_LIMIT;
    }
    fx_hdr h = {0};
    h.op = (uint16_t)op;
    h.request_id = atomic_fetch_add(&c->next_id, 1);
    h.client_id = c->client_id;
    h.timeout_ms = c->timeout_ms;
    fx_w_finish(w, &h);

    nng_ctx ctx;
    nng_aio* aio = NULL;
    nng_msg* msg = NULL;
    int rv = nng_ctx_open(&ctx, c->sock);
    if (rv != 0) goto net_fail;
    if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) goto ctx_fail;
    nng_aio_set_timeout(aio, (nng_duration)c->timeout_ms);
    if ((rv = nng_msg_alloc(&msg, 0)) != 0) goto ctx_fail;
    if ((rv = nng_msg_append(msg, w->data, w->len)) != 0) goto ctx_fail;
    nng_aio_set_msg(aio, msg);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) goto ctx_fail; /* msg still ours */
    msg = NULL; /* owned by NNG now */
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) goto ctx_fail;
    msg = nng_aio_get_msg(aio);
    nng_aio_free(aio);
    nng_ctx_close(ctx);

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

ctx_fail:
    if (msg) nng_msg_free(msg);
    if (aio) nng_aio_free(aio);
    nng_ctx_close(ctx);
net_fail:
    if (rv == NNG_ETIMEDOUT) {
        snprintf(err, errsz, "no reply from %s within %u ms (%s)", c->url,
                 c->timeout_ms, fx_op_name(op));
        return FAISSX_E_TIMEOUT;
    }
    snprintf(err, errsz, "%s to %s failed: %s", fx_op_name(op), c->url,
             nng_strerror(rv));
    return rv == NNG_ENOMEM ? FAISSX_E_NOMEM : FAISSX_E_NET;
}
