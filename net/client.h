/* client.h -- internal: the client transport (NNG req0). One fx_client is
 * one connection to one server, safe to use from many threads at once: each
 * call runs on its own NNG context. */
#ifndef FX_CLIENT_H
#define FX_CLIENT_H

#include "net/proto.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fx_client fx_client;

/* A received reply: the body reader, and the message that owns it. */
typedef struct fx_reply {
    fx_rbuf r;
    void* msg; /* nng_msg*, released by fx_reply_free */
} fx_reply;

/* Connects to `url` (dialing now, so an unreachable server is reported
 * here). `api_key` may be NULL. timeout_ms 0 means 30000. Returns 0 or a
 * FaissxError with the message in err. */
int fx_client_open(const char* url, const char* api_key, uint32_t timeout_ms,
                   fx_client** out, char* err, size_t errsz);
void fx_client_close(fx_client* c);

const char* fx_client_url(const fx_client* c);

/* Starts a request in w: header space and the API key. */
void fx_client_begin(fx_client* c, fx_wbuf* w);

/* Sends the request in w (op) and waits for the reply. On success returns 0
 * and fills rep (release with fx_reply_free). On failure returns a
 * FaissxError and the message (server's or transport's) in err. */
int fx_client_call(fx_client* c, int op, fx_wbuf* w, fx_reply* rep,
                   char* err, size_t errsz);
void fx_reply_free(fx_reply* rep);

#ifdef __cplusplus
}
#endif

#endif
