/* nngbuf.h -- internal: fx_wbuf writers whose bytes live in an nng_msg, so
 * that a request or a reply is written once, where NNG sends it from
 * (instead of into a buffer that is then copied into a message). */
#ifndef FX_NNGBUF_H
#define FX_NNGBUF_H

#include "net/proto.h"

#include <nng/nng.h>

#ifdef __cplusplus
extern "C" {
#endif

/* fx_w_init, with the bytes in an nng_msg (allocated at the first write). */
void fx_w_init_nng(fx_wbuf* w);

/* Takes the message out of w, its length set to w->len, and leaves w
 * empty (fx_w_free still applies). NULL when w is not complete (out of
 * memory), empty, or not an nng_msg writer. */
nng_msg* fx_w_take_nng(fx_wbuf* w);

#ifdef __cplusplus
}
#endif

#endif
