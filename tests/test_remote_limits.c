/* test_remote_limits.c -- requests and the server's message limit
 * (--max-message-bytes; docs/client.md, "Message limit"): an add, add with
 * ids or train over it fails at once with FAISSX_E_LIMIT and applies
 * nothing; one just under it works; searches, assigns and range searches
 * over it are split into requests that fit, with the results of one call;
 * a request sent before the limit was known, which the server dropped, is
 * reported as over the limit; a server that predates LIMITS behaves as
 * before; a restarted server's new limit is asked again. */
#include "common.h"
#include "server_fixture.h"

#include "net/client.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static fxt_server srv;

enum { D = 32, VB = D * 4 /* bytes a vector */, LIMIT = 65536 };
/* An add request of n vectors: header, empty key, handle, n, the array's
 * count, then the vectors (docs/protocol.md). */
#define ADD_BYTES(n) (40 + 8 + 8 + 8 + 8 + (n) * VB)
/* 600 vectors: 76,872 bytes, over the 64 KiB limit (and over
 * FX_LIMITS_ASK_BYTES: the limits are asked before it is sent) */
enum { OVER = 600 };
/* the most vectors an add under the 64 KiB limit carries: 65,480 bytes */
enum { UNDER = (LIMIT - ADD_BYTES(0)) / VB };

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void stop(void) {
    faissx_configure(NULL, NULL, 0);
    fxt_server_stop(&srv);
}

/* Connects with every class's deadline set to ms. */
static void connect_ms(int ms) {
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    o.url = srv.url;
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++) o.timeout_ms[i] = ms;
    FXT_OK(faissx_configure_ex(&o));
}

enum { CALL_MS = 20000 };

static void start_limited(void) {
    const char* args[] = {"--max-message-bytes", "65536", NULL};
    fxt_server_start(&srv, args);
    connect_ms(CALL_MS);
}

/* Integer-valued vectors in [0, 16): every distance is exact in float, so
 * results do not depend on how a batch is cut (BLAS or not). */
static float* ints(size_t n, uint64_t seed) {
    float* x = fxt_uniform(n, D, seed);
    for (size_t i = 0; i < n * D; i++) x[i] = floorf(x[i] * 16.0f);
    return x;
}

static FaissIndex* remote_factory(const char* desc) {
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, desc, METRIC_L2));
    cr_assert(faissx_index_is_remote(ix));
    return ix;
}

/* Asserts the last error names the limit and what to do. */
static void says_over_limit(const char* op, const char* limit) {
    const char* m = faiss_get_last_error();
    cr_assert(m && strstr(m, op) && strstr(m, limit) &&
                      strstr(m, "--max-message-bytes") &&
                      strstr(m, "split the batch"),
              "message: %s", m ? m : "(none)");
}

Test(limits, adds_over_the_limit_fail_at_once, .init = start_limited,
     .fini = stop) {
    float* x = ints(OVER, 1);
    FaissIndex* ix = remote_factory("Flat");

    uint64_t t0 = mono_ms();
    int rc = faiss_Index_add(ix, OVER, x);
    uint64_t ms = mono_ms() - t0;
    cr_assert_eq(rc, FAISSX_E_LIMIT, "add over the limit: %d %s", rc,
                 faiss_get_last_error());
    says_over_limit("add", "65536");
    cr_assert(strstr(faiss_get_last_error(), "nothing applied"), "%s",
              faiss_get_last_error());
    cr_assert_lt(ms, CALL_MS / 2, "the refusal took %llu ms",
                 (unsigned long long)ms);
    cr_assert_eq(faiss_Index_ntotal(ix), 0);

    /* known now: the next refusal sends nothing at all */
    uint64_t t = fx_client_round_trips();
    cr_assert_eq(faiss_Index_add(ix, OVER, x), FAISSX_E_LIMIT);
    cr_assert_eq(fx_client_round_trips() - t, 0);

    /* add_with_ids and train: the same (never split) */
    FaissIndex* idm = remote_factory("IDMap,Flat");
    idx_t* ids = malloc(sizeof(idx_t) * OVER);
    for (int i = 0; i < OVER; i++) ids[i] = 1000 + 7 * i;
    cr_assert_eq(faiss_Index_add_with_ids(idm, OVER, x, ids),
                 FAISSX_E_LIMIT, "%s", faiss_get_last_error());
    says_over_limit("add_with_ids", "65536");
    cr_assert_eq(faiss_Index_ntotal(idm), 0);
    FaissIndex* ivf = remote_factory("IVF4,Flat");
    cr_assert_eq(faiss_Index_train(ivf, OVER, x), FAISSX_E_LIMIT, "%s",
                 faiss_get_last_error());
    says_over_limit("train", "65536");
    cr_assert_eq(faiss_Index_is_trained(ivf), 0);

    /* Just under the limit: applied. The connection works on. */
    cr_assert_leq(ADD_BYTES(UNDER), LIMIT);
    cr_assert_gt(ADD_BYTES(UNDER + 1), LIMIT);
    FXT_OK(faiss_Index_add(ix, UNDER, x));
    cr_assert_eq(faiss_Index_ntotal(ix), UNDER);
    FXT_OK(faiss_Index_add_with_ids(idm, 100, x, ids));
    cr_assert_eq(faiss_Index_ntotal(idm), 100);
    FXT_OK(faiss_Index_train(ivf, 200, x));
    cr_assert_eq(faiss_Index_is_trained(ivf), 1);
    float dd[5];
    idx_t ll[5];
    FXT_OK(faiss_Index_search(ix, 1, x + 3 * D, 5, dd, ll));
    cr_assert_eq(dd[0], 0.0f);

    faiss_Index_free(ivf);
    faiss_Index_free(idm);
    faiss_Index_free(ix);
    free(ids);
    free(x);
}

/* Searches, assigns and range searches whose request or reply is over the
 * limit: split into requests that fit, results identical to a local
 * index's one call. */
Test(limits, big_reads_are_split_and_equal_local, .init = start_limited,
     .fini = stop) {
    enum { NB = 2000, NQ = 1000, K = 10, KB = 100, NQB = 100 };
    float* xb = ints(NB, 2);
    float* xq = ints(NQ, 3);
    FaissIndex* rem = remote_factory("Flat");
    FaissIndex* loc = NULL;
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    connect_ms(CALL_MS);
    for (int i = 0; i < NB; i += 400) /* 400 vectors: 51,272 bytes */
        FXT_OK(faiss_Index_add(rem, 400, xb + (size_t)i * D));
    FXT_OK(faiss_Index_add(loc, NB, xb));

    /* request 128,000 bytes of queries, reply 120,000 bytes */
    float* Dr = malloc(sizeof(float) * NQ * KB);
    float* Dl = malloc(sizeof(float) * NQ * KB);
    idx_t* Ir = malloc(sizeof(idx_t) * NQ * KB);
    idx_t* Il = malloc(sizeof(idx_t) * NQ * KB);
    FXT_OK(faiss_Index_search(loc, NQ, xq, K, Dl, Il));
    uint64_t t = fx_client_round_trips();
    FXT_OK(faiss_Index_search(rem, NQ, xq, K, Dr, Ir));
    cr_assert_geq(fx_client_round_trips() - t, 2, "the search was not split");
    FXT_SAME(Ir, Il, sizeof(idx_t) * NQ * K);
    FXT_SAME(Dr, Dl, sizeof(float) * NQ * K);

    /* with parameters (a selector): the same */
    FaissIDSelectorRange* sel = NULL;
    FaissSearchParameters* sp = NULL;
    FXT_OK(faiss_IDSelectorRange_new(&sel, 100, 1500));
    FXT_OK(faiss_SearchParameters_new(&sp, (FaissIDSelector*)sel));
    FXT_OK(faiss_Index_search_with_params(loc, NQ, xq, K, sp, Dl, Il));
    FXT_OK(faiss_Index_search_with_params(rem, NQ, xq, K, sp, Dr, Ir));
    FXT_SAME(Ir, Il, sizeof(idx_t) * NQ * K);
    FXT_SAME(Dr, Dl, sizeof(float) * NQ * K);

    /* a small request with a reply over the limit (120,000 bytes) */
    FXT_OK(faiss_Index_search(loc, NQB, xq, KB, Dl, Il));
    t = fx_client_round_trips();
    FXT_OK(faiss_Index_search(rem, NQB, xq, KB, Dr, Ir));
    cr_assert_geq(fx_client_round_trips() - t, 2, "the search was not split");
    FXT_SAME(Ir, Il, sizeof(idx_t) * NQB * KB);
    FXT_SAME(Dr, Dl, sizeof(float) * NQB * KB);

    /* assign */
    FXT_OK(faiss_Index_assign(loc, NQ, xq, Il, K));
    FXT_OK(faiss_Index_assign(rem, NQ, xq, Ir, K));
    FXT_SAME(Ir, Il, sizeof(idx_t) * NQ * K);

    /* range search: a radius that finds a few neighbours a query */
    FXT_OK(faiss_Index_search(loc, NQ, xq, K, Dl, Il));
    float radius = Dl[4];
    FaissRangeSearchResult *rl = NULL, *rr = NULL;
    FXT_OK(faiss_RangeSearchResult_new(&rl, NQ));
    FXT_OK(faiss_RangeSearchResult_new(&rr, NQ));
    FXT_OK(faiss_Index_range_search(loc, NQ, xq, radius, rl));
    t = fx_client_round_trips();
    FXT_OK(faiss_Index_range_search(rem, NQ, xq, radius, rr));
    cr_assert_geq(fx_client_round_trips() - t, 2, "not split");
    size_t *lims_l, *lims_r;
    faiss_RangeSearchResult_lims(rl, &lims_l);
    faiss_RangeSearchResult_lims(rr, &lims_r);
    FXT_SAME(lims_r, lims_l, sizeof(size_t) * (NQ + 1));
    cr_assert_gt(lims_l[NQ], NQ, "the radius finds too little: %zu",
                 lims_l[NQ]);
    idx_t *lab_l, *lab_r;
    float *dis_l, *dis_r;
    faiss_RangeSearchResult_labels(rl, &lab_l, &dis_l);
    faiss_RangeSearchResult_labels(rr, &lab_r, &dis_r);
    FXT_SAME(lab_r, lab_l, sizeof(idx_t) * lims_l[NQ]);
    FXT_SAME(dis_r, dis_l, sizeof(float) * lims_l[NQ]);

    faiss_RangeSearchResult_free(rl);
    faiss_RangeSearchResult_free(rr);
    faiss_SearchParameters_free(sp);
    faiss_IDSelector_free((FaissIDSelector*)sel);
    free(Dr);
    free(Dl);
    free(Ir);
    free(Il);
    faiss_Index_free(rem);
    faiss_Index_free(loc);
    free(xb);
    free(xq);
}

/* A request under FX_LIMITS_ASK_BYTES goes without asking the limits; the
 * server (limit 4096) drops it unread and closes the connection, so the
 * call gets no reply. It is then reported as over the limit, not as a
 * timeout; once the limits are known, such a request is refused before
 * it is sent. */
enum { SHORT_MS = 3000 };
static void start_tiny(void) {
    const char* args[] = {"--max-message-bytes", "4096", NULL};
    fxt_server_start(&srv, args);
    connect_ms(SHORT_MS);
}

Test(limits, dropped_small_request_reports_the_limit, .init = start_tiny,
     .fini = stop) {
    float* x = ints(40, 4); /* 40 vectors: 5,192 bytes */
    FaissIndex* ix = remote_factory("Flat");
    cr_assert_gt(ADD_BYTES(40), 4096);
    cr_assert_lt(ADD_BYTES(40), FX_LIMITS_ASK_BYTES);
    int rc = faiss_Index_add(ix, 40, x);
    cr_assert_eq(rc, FAISSX_E_LIMIT, "%d %s", rc, faiss_get_last_error());
    says_over_limit("add", "4096");
    cr_assert(strstr(faiss_get_last_error(), "dropped"), "%s",
              faiss_get_last_error());
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    /* the limit is known now (unless a late copy closed the connection
     * again: then it is asked again); either way FAISSX_E_LIMIT */
    rc = faiss_Index_add(ix, 40, x);
    cr_assert_eq(rc, FAISSX_E_LIMIT, "%d %s", rc, faiss_get_last_error());
    says_over_limit("add", "4096");
    /* an add under the limit is applied */
    FXT_OK(faiss_Index_add(ix, 20, x));
    cr_assert_eq(faiss_Index_ntotal(ix), 20);
    faiss_Index_free(ix);
    free(x);
}

/* A server that predates LIMITS (--test-old-protocol plays one): the
 * client works as before it asked. Requests that fit are applied; the
 * question is asked once per connection; a request over the limit is
 * dropped by the server and the call times out as it always did. */
static void start_old(void) {
    const char* args[] = {"--test-old-protocol", "--max-message-bytes",
                          "262144", NULL};
    fxt_server_start(&srv, args);
    connect_ms(SHORT_MS);
}

Test(limits, old_server_as_before, .init = start_old, .fini = stop) {
    enum { BIG = 2100 }; /* 268,872 bytes: over the 256 KiB limit */
    float* x = ints(BIG, 5);
    FaissIndex* ix = remote_factory("Flat");
    uint64_t t = fx_client_round_trips();
    FXT_OK(faiss_Index_add(ix, OVER, x)); /* over the asking threshold */
    cr_assert_eq(fx_client_round_trips() - t, 2, "LIMITS (refused), ADD");
    t = fx_client_round_trips();
    FXT_OK(faiss_Index_add(ix, OVER, x));
    cr_assert_eq(fx_client_round_trips() - t, 1, "not asked again");
    cr_assert_eq(faiss_Index_ntotal(ix), 2 * OVER);
    uint64_t t0 = mono_ms();
    int rc = faiss_Index_add(ix, BIG, x);
    uint64_t ms = mono_ms() - t0;
    cr_assert(rc == FAISSX_E_TIMEOUT || rc == FAISSX_E_NET, "%d %s", rc,
              faiss_get_last_error());
    cr_assert(strstr(faiss_get_last_error(), "add to"), "%s",
              faiss_get_last_error());
    cr_assert_eq(faiss_Index_ntotal(ix), 2 * OVER);
    (void)ms;
    faiss_Index_free(ix);
    free(x);
}

/* The limits are asked again after the connection closed: a server
 * restarted with a smaller limit refuses at once what the old one took. */
static void start_default(void) {
    fxt_server_start(&srv, NULL);
    connect_ms(CALL_MS);
}

Test(limits, restarted_server_is_asked_again, .init = start_default,
     .fini = stop) {
    float* x = ints(OVER, 6);
    FaissIndex* ix = remote_factory("Flat");
    uint64_t t = fx_client_round_trips();
    FXT_OK(faiss_Index_add(ix, OVER, x));
    cr_assert_eq(fx_client_round_trips() - t, 2, "LIMITS, then ADD");
    t = fx_client_round_trips();
    FXT_OK(faiss_Index_add(ix, OVER, x));
    cr_assert_eq(fx_client_round_trips() - t, 1, "LIMITS asked again");
    faiss_Index_free(ix);

    fxt_server_kill(&srv);
    const char* args[] = {"--max-message-bytes", "65536", NULL};
    fxt_server_restart(&srv, args);
    uint64_t t0 = mono_ms();
    while (faissx_connection_state() != FAISSX_CONN_CONNECTED &&
           mono_ms() - t0 < 60000)
        usleep(10000);
    cr_assert_eq(faissx_connection_state(), FAISSX_CONN_CONNECTED);
    ix = remote_factory("Flat");
    t0 = mono_ms();
    int rc = faiss_Index_add(ix, OVER, x);
    uint64_t ms = mono_ms() - t0;
    cr_assert_eq(rc, FAISSX_E_LIMIT, "%d %s", rc, faiss_get_last_error());
    says_over_limit("add", "65536");
    cr_assert_lt(ms, CALL_MS / 2, "took %llu ms", (unsigned long long)ms);
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    faiss_Index_free(ix);
    free(x);
}
