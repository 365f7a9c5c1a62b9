/* nngbuf.c -- fx_wbuf storage in an nng_msg (see nngbuf.h). */
#include "net/nngbuf.h"

#include <string.h>

/* The message's length is the writer's capacity; fx_w_take_nng cuts it
 * to the bytes written. Growing keeps the bytes (nng_msg_realloc copies
 * them when it must move). */
static uint8_t* msg_store(fx_wbuf* w, size_t cap) {
    nng_msg* m = w->store_ctx;
    if (cap == 0) {
        if (m) nng_msg_free(m);
        w->store_ctx = NULL;
        return NULL;
    }
    if (!m) {
        if (nng_msg_alloc(&m, cap) != 0) return NULL;
        w->store_ctx = m;
    } else if (nng_msg_realloc(m, cap) != 0) {
        return NULL;
    }
    return nng_msg_body(m);
}

void fx_w_init_nng(fx_wbuf* w) {
    fx_w_init(w);
    w->store = msg_store;
}

nng_msg* fx_w_take_nng(fx_wbuf* w) {
    nng_msg* m = w->store_ctx;
    if (w->store != msg_store || !m || w->oom || w->len == 0) return NULL;
    nng_msg_realloc(m, w->len); /* shrinking: cannot fail */
    w->store_ctx = NULL;
    w->data = NULL;
    w->len = w->cap = 0;
    return m;
}
