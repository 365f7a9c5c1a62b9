/* test_remote_shm.c -- same-host adds through a shared-memory ring
 * (ADD_STREAM, net/shm.h; docs/protocol.md "Shared-memory add").
 *
 * The server runs with --shm-socket in a private directory. Stream adds
 * must give exactly what a local index gets (search, reconstruct) for one
 * chunk, many, a tail, more than the ring holds; they must really stream
 * (fx_shm_streams counts committed streams: a silent fallback fails the
 * tests); a NaN, a stalled or killed client leave the index as it was; the
 * socket refuses every malformed hello; ADD_STREAM refuses bad tokens,
 * other tenants, read-only keys, bad layouts, bad chunks and ineligible
 * indexes. FAISSX_SHM_MIN_BYTES=0 lets small adds stream. */
#define _GNU_SOURCE
#include "common.h"
#include "server_fixture.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "net/client.h"
#include "net/proto.h"
#include "net/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define D 32
/* rows per client slot at d = 32 (net/shm.cpp rows_for) */
#define ROWS ((int)((FX_SHM_CLIENT_SLOT_BYTES - 64) / (D * 4 + 8)))

static fxt_server srv;
static char sock_path[100];

static void stop(void) {
    faissx_configure(NULL, NULL, 0);
    fxt_server_stop(&srv);
}

static void start_with_level(const char* stall_ms, const char* level) {
    snprintf(sock_path, sizeof sock_path, "%s", fxt_tmp_path("shm.sock"));
    const char* args[] = {"--auth-keys", "ka:alice,kb:bob,kr:alice:ro",
                          "--shm-socket", sock_path,
                          "--shm-stall-ms", stall_ms,
                          "--log-level", level, NULL};
    fxt_server_start(&srv, args);
    setenv("FAISSX_SHM_MIN_BYTES", "0", 1);
    unsetenv("FAISSX_SHM");
    unsetenv("FAISSX_TEST_SHM_STALL_AFTER");
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
}
static void start_with(const char* stall_ms) {
    start_with_level(stall_ms, "info");
}
static void start(void) {
    start_with("5000");
}
/* debug: the server logs each region it accepts, each region released and
 * each stream as it starts. A minute's stall limit: the test that kills a
 * stalled client must do so before the server gives up on the stream,
 * however slowly a loaded machine lets it get there. */
static void start_debug(void) {
    start_with_level("60000", "debug");
}

/* Whether the server's log so far has a line containing needle (the whole
 * file, not fxt_server_log's first 16 KiB). */
static int log_has(const char* needle) {
    FILE* f = fopen(srv.log, "r");
    if (!f) return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Waits up to a minute for a line containing needle in the server's log. */
static int wait_log(const char* needle) {
    struct timespec tick = {0, 20000000};
    for (int i = 0; i < 3000; i++) {
        if (log_has(needle)) return 1;
        nanosleep(&tick, NULL);
    }
    return log_has(needle);
}

/* Asserts that remote and local answer the same searches and hold the
 * same vectors (reconstruct when `recons`). */
static void same_results(FaissIndex* rem, FaissIndex* loc, int recons) {
    idx_t nr = faiss_Index_ntotal(rem), nl = faiss_Index_ntotal(loc);
    cr_assert_eq(nr, nl, "ntotal %lld vs local %lld", (long long)nr,
                 (long long)nl);
    enum { NQ = 20, K = 5 };
    float* q = fxt_uniform(NQ, D, 777);
    float Dr[NQ * K], Dl[NQ * K];
    idx_t Ir[NQ * K], Il[NQ * K];
    FXT_OK(faiss_Index_search(rem, NQ, q, K, Dr, Ir));
    FXT_OK(faiss_Index_search(loc, NQ, q, K, Dl, Il));
    for (int i = 0; i < NQ * K; i++) {
        cr_assert_eq(Ir[i], Il[i], "label %d: %lld vs local %lld", i,
                     (long long)Ir[i], (long long)Il[i]);
        cr_assert_float_eq(Dr[i], Dl[i], 1e-5, "distance %d", i);
    }
    free(q);
    if (recons && nl > 0) {
        idx_t m = nl < 3000 ? nl : 3000, i0 = nl - m;
        float* a = malloc(sizeof(float) * (size_t)m * D);
        float* b = malloc(sizeof(float) * (size_t)m * D);
        FXT_OK(faiss_Index_reconstruct_n(rem, i0, m, a));
        FXT_OK(faiss_Index_reconstruct_n(loc, i0, m, b));
        cr_assert_eq(memcmp(a, b, sizeof(float) * (size_t)m * D), 0,
                     "reconstructed vectors differ");
        free(a);
        free(b);
    }
}

/* Adds x to both through the stream, asserting it streamed. */
static void add_both(FaissIndex* rem, FaissIndex* loc, idx_t n,
                     const float* x, const idx_t* ids) {
    uint64_t s0 = fx_shm_streams(), f0 = fx_shm_fallbacks();
    if (ids) {
        FXT_OK(faiss_Index_add_with_ids(rem, n, x, ids));
        FXT_OK(faiss_Index_add_with_ids(loc, n, x, ids));
    } else {
        FXT_OK(faiss_Index_add(rem, n, x));
        FXT_OK(faiss_Index_add(loc, n, x));
    }
    cr_assert_eq(fx_shm_streams() - s0, 1, "the add of %lld did not stream (fallbacks %llu)", (long long)n, (unsigned long long)(fx_shm_fallbacks() - f0));
    cr_assert_eq(fx_shm_fallbacks() - f0, 0, "the add fell back");
}

static void check_factory(const char* desc, FaissMetricType metric,
                          int trained, int with_ids, int recons) {
    FaissIndex *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_factory(&rem, D, desc, metric));
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&loc, D, desc, metric));
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    if (trained) {
        float* t = fxt_uniform(3000, D, 5);
        FXT_OK(faiss_Index_train(rem, 3000, t));
        FXT_OK(faiss_Index_train(loc, 3000, t));
        free(t);
    }
    /* one row; one chunk; many chunks and a tail; more than the ring */
    const idx_t sizes[] = {1, ROWS - 3, 3 * ROWS + 17,
                           (FX_SHM_CLIENT_SLOTS + 3) * ROWS + 1};
    idx_t base = 0;
    for (int s = 0; s < 4; s++) {
        idx_t n = sizes[s];
        float* x = fxt_uniform((size_t)n, D, 100 + (uint64_t)s);
        idx_t* ids = NULL;
        if (with_ids) {
            ids = malloc(sizeof(idx_t) * (size_t)n);
            for (idx_t i = 0; i < n; i++) ids[i] = 1000000 + 3 * (base + i);
        }
        add_both(rem, loc, n, x, ids);
        base += n;
        free(x);
        free(ids);
    }
    same_results(rem, loc, recons);
    faiss_Index_free(rem);
    faiss_Index_free(loc);
}

Test(shm, flat_l2_streams_like_a_local_add, .init = start, .fini = stop) {
    check_factory("Flat", METRIC_L2, 0, 0, 1);
}

Test(shm, flat_ip_streams_like_a_local_add, .init = start, .fini = stop) {
    check_factory("Flat", METRIC_INNER_PRODUCT, 0, 0, 1);
}

Test(shm, idmap_add_with_ids_streams, .init = start, .fini = stop) {
    check_factory("IDMap,Flat", METRIC_L2, 0, 1, 0);
}

Test(shm, sq8_streams_like_a_local_add, .init = start, .fini = stop) {
    check_factory("SQ8", METRIC_L2, 1, 0, 1);
}

Test(shm, pq_streams_like_a_local_add, .init = start, .fini = stop) {
    check_factory("PQ4x4", METRIC_L2, 1, 0, 1);
}

/* The ring has no message limit: an add far over --max-message-bytes
 * streams; the same add the ordinary way is refused at once. */
static void start_limited(void) {
    snprintf(sock_path, sizeof sock_path, "%s", fxt_tmp_path("shm.sock"));
    const char* args[] = {"--auth-keys", "ka:alice", "--shm-socket",
                          sock_path, "--max-message-bytes", "65536", NULL};
    fxt_server_start(&srv, args);
    setenv("FAISSX_SHM_MIN_BYTES", "0", 1);
    unsetenv("FAISSX_SHM");
    unsetenv("FAISSX_TEST_SHM_STALL_AFTER");
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
}

Test(shm, add_over_the_message_limit_streams, .init = start_limited,
     .fini = stop) {
    FaissIndex *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "Flat", METRIC_L2));
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    enum { N = 3 * ROWS + 17 }; /* ~1.5 MB of vectors */
    float* x = fxt_uniform(N, D, 41);
    add_both(rem, loc, N, x, NULL);
    same_results(rem, loc, 0); /* reconstructing would be over the limit */
    setenv("FAISSX_SHM", "0", 1);
    FXT_ERR(faiss_Index_add(rem, N, x), "--max-message-bytes");
    cr_assert_eq(faiss_Index_ntotal(rem), N);
    unsetenv("FAISSX_SHM");
    free(x);
    faiss_Index_free(rem);
    faiss_Index_free(loc);
}

Test(shm, shm_off_uses_ordinary_add, .init = start, .fini = stop) {
    setenv("FAISSX_SHM", "0", 1);
    FaissIndex* rem = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "Flat", METRIC_L2));
    float* x = fxt_uniform(2 * ROWS, D, 9);
    uint64_t s0 = fx_shm_streams(), f0 = fx_shm_fallbacks();
    uint64_t t0 = fx_client_round_trips();
    FXT_OK(faiss_Index_add(rem, 2 * ROWS, x));
    /* The request (~1 MB) is over FX_LIMITS_ASK_BYTES: the connection's
     * first such request asks the server's limits first (LIMITS). */
    cr_assert_eq(fx_client_round_trips() - t0, 2, "LIMITS, one ordinary ADD");
    t0 = fx_client_round_trips();
    FXT_OK(faiss_Index_add(rem, 2 * ROWS, x));
    cr_assert_eq(fx_client_round_trips() - t0, 1, "one ordinary ADD");
    cr_assert_eq(fx_shm_streams(), s0);
    cr_assert_eq(fx_shm_fallbacks(), f0);
    cr_assert_eq(faiss_Index_ntotal(rem), 4 * ROWS);
    unsetenv("FAISSX_SHM");
    FXT_OK(faiss_Index_add(rem, 2 * ROWS, x));
    cr_assert_eq(fx_shm_streams() - s0, 1, "streams again once allowed");
    cr_assert_eq(faiss_Index_ntotal(rem), 6 * ROWS);
    free(x);
    faiss_Index_free(rem);
}

Test(shm, nan_in_third_chunk_changes_nothing, .init = start, .fini = stop) {
    FaissIndex *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "Flat", METRIC_L2));
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    float* x = fxt_uniform(4 * ROWS, D, 11);
    add_both(rem, loc, ROWS, x, NULL);
    idx_t bad = 2 * ROWS + 5;
    x[bad * D + 7] = NAN;
    uint64_t s0 = fx_shm_streams();
    int rc = faiss_Index_add(rem, 4 * ROWS, x);
    cr_assert_eq(rc, FAISSX_E_INVALID);
    char remote_msg[512];
    snprintf(remote_msg, sizeof remote_msg, "%s", faiss_get_last_error());
    FXT_ERR(faiss_Index_add(loc, 4 * ROWS, x), "non-finite");
    cr_assert_str_eq(remote_msg, faiss_get_last_error(),
                     "the remote text differs from the local one");
    cr_assert_eq(fx_shm_streams(), s0);
    same_results(rem, loc, 1);
    /* the ring is still usable */
    x[bad * D + 7] = 0.5f;
    add_both(rem, loc, 4 * ROWS, x, NULL);
    same_results(rem, loc, 1);
    free(x);
    faiss_Index_free(rem);
    faiss_Index_free(loc);
}

Test(shm, ineligible_index_falls_back, .init = start, .fini = stop) {
    FaissIndex* rem = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "HNSW8", METRIC_L2));
    float* x = fxt_uniform(ROWS + 10, D, 13);
    uint64_t s0 = fx_shm_streams(), f0 = fx_shm_fallbacks();
    FXT_OK(faiss_Index_add(rem, ROWS + 10, x));
    cr_assert_eq(faiss_Index_ntotal(rem), ROWS + 10);
    cr_assert_eq(fx_shm_streams(), s0);
    cr_assert_eq(fx_shm_fallbacks() - f0, 1, "refused once");
    FXT_OK(faiss_Index_add(rem, 10, x));
    cr_assert_eq(fx_shm_fallbacks() - f0, 1, "not asked again");
    cr_assert_eq(faiss_Index_ntotal(rem), ROWS + 20);
    free(x);
    faiss_Index_free(rem);
}

/* Adds alternating between two indexes of one connection share its ring:
 * each streams (the server lets go of the ring before it commits, so the
 * next stream, sent as soon as the client sees the commit, finds it
 * free), each gives what a local index gets. */
Test(shm, adds_alternating_between_two_indexes_all_stream, .init = start,
     .fini = stop) {
    FaissIndex *ra = NULL, *rb = NULL, *la = NULL, *lb = NULL;
    FXT_OK(faiss_index_factory(&ra, D, "Flat", METRIC_L2));
    FXT_OK(faiss_index_factory(&rb, D, "IDMap,Flat", METRIC_INNER_PRODUCT));
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&la, D, "Flat", METRIC_L2));
    FXT_OK(faiss_index_factory(&lb, D, "IDMap,Flat", METRIC_INNER_PRODUCT));
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    enum { N = 3 * ROWS + 17 };
    float* x = fxt_uniform(N, D, 23);
    idx_t* ids = malloc(sizeof(idx_t) * N);
    for (int i = 0; i < N; i++) ids[i] = 5 * (idx_t)i + 3;
    for (int round = 0; round < 4; round++) {
        idx_t n = round % 2 ? N : ROWS / 2 + round;
        add_both(ra, la, n, x, NULL);
        cr_assert_eq(faiss_Index_ntotal(ra), faiss_Index_ntotal(la));
        add_both(rb, lb, n, x, ids);
        cr_assert_eq(faiss_Index_ntotal(rb), faiss_Index_ntotal(lb));
    }
    same_results(ra, la, 1);
    same_results(rb, lb, 0);
    free(ids);
    free(x);
    faiss_Index_free(ra);
    faiss_Index_free(rb);
    faiss_Index_free(la);
    faiss_Index_free(lb);
}

/* Every second reply is dropped by the server: a stream add takes its
 * outcome from the ring's state word, so it neither waits for a lost
 * ADD_STREAM reply nor retries it (one attempt each), and each add
 * happens exactly once. */
static void configure_dropping(void) {
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    o.url = srv.url;
    o.api_key = "ka";
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++) o.timeout_ms[i] = 20000;
    o.attempt_timeout_ms = 300; /* a lost reply costs 300 ms, then a retry */
    o.max_attempts = 8;
    o.backoff_base_ms = 5;
    o.backoff_cap_ms = 20;
    FXT_OK(faissx_configure_ex(&o));
}

static void start_dropping(void) {
    snprintf(sock_path, sizeof sock_path, "%s", fxt_tmp_path("shm.sock"));
    const char* args[] = {"--auth-keys", "ka:alice", "--shm-socket",
                          sock_path, "--test-drop-replies", "2", NULL};
    fxt_server_start(&srv, args);
    setenv("FAISSX_SHM_MIN_BYTES", "0", 1);
    unsetenv("FAISSX_SHM");
    unsetenv("FAISSX_TEST_SHM_STALL_AFTER");
    configure_dropping();
}

static int log_count(const fxt_server* s, const char* needle) {
    FILE* f = fopen(s->log, "r");
    cr_assert(f, "no server log %s", s->log);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

Test(shm, lost_stream_replies_are_not_waited_for, .init = start_dropping,
     .fini = stop) {
    FaissIndex *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "Flat", METRIC_L2));
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    configure_dropping();
    enum { N = 2 * ROWS + 9 };
    float* x = fxt_uniform(N, D, 29);
    add_both(rem, loc, 100, x, NULL); /* makes the ring (PING, hello) */
    int dropped0 = log_count(&srv, "dropping the reply");
    for (int i = 0; i < 6; i++) {
        uint64_t t0 = fx_client_round_trips();
        add_both(rem, loc, i % 2 ? N : ROWS, x, NULL);
        cr_assert_eq(fx_client_round_trips() - t0, 1,
                     "add %d: %llu attempts (a lost reply was waited for)", i,
                     (unsigned long long)(fx_client_round_trips() - t0));
        cr_assert_eq(faiss_Index_ntotal(rem), faiss_Index_ntotal(loc));
    }
    /* six replies in a row, every second one dropped (the last may not be
     * sent yet: the add returned before it) */
    int dropped = log_count(&srv, "dropping the reply") - dropped0;
    cr_assert_geq(dropped, 2, "only %d of the adds' replies dropped", dropped);
    same_results(rem, loc, 1);
    free(x);
    faiss_Index_free(rem);
    faiss_Index_free(loc);
}

/* The ADD_STREAM's first attempt times out (attempt_timeout_ms 300) while
 * the client pauses after one chunk for 900 ms (the server waits up to
 * 5 s): the client keeps filling while the call retries, the retry gets
 * the first copy's reply, and the add streams once. */
static void start_short_attempts(void) {
    start();
    configure_dropping(); /* attempt_timeout_ms 300; nothing is dropped */
}

Test(shm, stream_outlives_its_first_attempt, .init = start_short_attempts,
     .fini = stop) {
    FaissIndex *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "Flat", METRIC_L2));
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    configure_dropping();
    float* x = fxt_uniform(3 * ROWS, D, 31);
    add_both(rem, loc, 100, x, NULL); /* makes the ring */
    setenv("FAISSX_TEST_SHM_STALL_AFTER", "1", 1);
    setenv("FAISSX_TEST_SHM_STALL_MS", "900", 1);
    uint64_t t0 = fx_client_round_trips();
    add_both(rem, loc, 3 * ROWS, x, NULL); /* asserts: streamed, no fallback */
    unsetenv("FAISSX_TEST_SHM_STALL_AFTER");
    cr_assert_geq(fx_client_round_trips() - t0, 2,
                  "the first attempt did not time out: the test proves "
                  "nothing");
    same_results(rem, loc, 1);
    free(x);
    faiss_Index_free(rem);
    faiss_Index_free(loc);
}

static void start_stall(void) {
    start_with("300");
}

/* The client stops for 1.5 s after one chunk; the server gives up after
 * 300 ms, rolls back, and the client adds the ordinary way: exactly n. */
Test(shm, stalled_stream_is_rolled_back_then_added_once, .init = start_stall,
     .fini = stop) {
    FaissIndex *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "Flat", METRIC_L2));
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    float* x = fxt_uniform(3 * ROWS, D, 17);
    add_both(rem, loc, 100, x, NULL);
    setenv("FAISSX_TEST_SHM_STALL_AFTER", "1", 1);
    setenv("FAISSX_TEST_SHM_STALL_MS", "1500", 1);
    uint64_t s0 = fx_shm_streams(), f0 = fx_shm_fallbacks();
    FXT_OK(faiss_Index_add(rem, 3 * ROWS, x));
    FXT_OK(faiss_Index_add(loc, 3 * ROWS, x));
    unsetenv("FAISSX_TEST_SHM_STALL_AFTER");
    cr_assert_eq(fx_shm_streams(), s0, "the stalled stream committed");
    cr_assert_eq(fx_shm_fallbacks() - f0, 1);
    same_results(rem, loc, 1);
    cr_assert(strstr(fxt_server_log(&srv), "no chunk from the client"),
              "the server did not log the stall: %s", fxt_server_log(&srv));
    add_both(rem, loc, 2 * ROWS, x, NULL); /* streams again */
    same_results(rem, loc, 1);
    free(x);
    faiss_Index_free(rem);
    faiss_Index_free(loc);
}

/* A client killed (-9) mid-stream: its region closes, the server rolls
 * back and goes on serving. */
Test(shm, killed_client_is_rolled_back, .init = start_debug, .fini = stop) {
    FaissIndex* rem = NULL;
    FXT_OK(faissx_index_create(&rem, "victim", D, "Flat", METRIC_L2));
    float* x = fxt_uniform(4 * ROWS, D, 19);
    FXT_OK(faiss_Index_add(rem, 500, x));
    const char* helper = getenv("FAISSX_REMOTE_HELPER");
    cr_assert(helper, "FAISSX_REMOTE_HELPER is not set");
    char n[32];
    snprintf(n, sizeof n, "%d", 4 * ROWS);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(helper, helper, "add-stall", srv.url, "ka", "victim", n, "2",
              (char*)NULL);
        _exit(127);
    }
    /* Until the server has started the helper's stream (it logs it; from
     * then on it holds the write lock, waiting for chunks the helper stops
     * sending after two). A fixed pause after the region was logged
     * (500 ms) was not enough on a loaded machine: the kill could come
     * before the stream reached the server, which then never saw one cut. */
    char started[64];
    snprintf(started, sizeof started, ") of %d vectors started", 4 * ROWS);
    cr_assert(wait_log(started), "the helper's stream never started: %s",
              fxt_server_log(&srv));
    int status;
    cr_assert_eq(waitpid(pid, &status, WNOHANG), 0,
                 "the helper ended early (status %d)", status);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    /* the next read waits for the rollback */
    FaissIndex* again = NULL;
    FXT_OK(faissx_index_open(&again, "victim"));
    cr_assert_eq(faiss_Index_ntotal(again), 500, "not rolled back");
    uint64_t s0 = fx_shm_streams();
    FXT_OK(faiss_Index_add(again, 2 * ROWS, x));
    cr_assert_eq(fx_shm_streams() - s0, 1);
    cr_assert_eq(faiss_Index_ntotal(again), 500 + 2 * ROWS);
    cr_assert(log_has("closed mid-stream"),
              "the stream was not cut by the kill: %s", fxt_server_log(&srv));
    free(x);
    faiss_Index_free(again);
    faiss_Index_free(rem);
}

/* ---- the socket, raw ---- */

static int shm_connect(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
    cr_assert_eq(connect(fd, (struct sockaddr*)&a, sizeof a), 0,
                 "connect %s: %s", sock_path, strerror(errno));
    struct timeval tv = {4, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends `len` bytes of `msg` with fd `pass` (-1: none). */
static void send_hello(int fd, const void* msg, size_t len, int pass) {
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {(void*)msg, len};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (pass >= 0) {
        m.msg_control = ctl.buf;
        m.msg_controllen = sizeof ctl.buf;
        struct cmsghdr* c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass, sizeof pass);
    }
    cr_assert_eq(sendmsg(fd, &m, MSG_NOSIGNAL), (ssize_t)len);
}

static void read_answer(int fd, fx_shm_answer* a) {
    size_t got = 0;
    while (got < sizeof *a) {
        ssize_t k = recv(fd, (char*)a + got, sizeof *a - got, 0);
        cr_assert_gt(k, 0, "no answer from the server (%s)",
                     k ? strerror(errno) : "EOF");
        got += (size_t)k;
    }
    a->text[sizeof a->text - 1] = '\0';
}

static int make_memfd(uint64_t size, int seal) {
    int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)size), 0);
    if (seal)
        cr_assert_eq(fcntl(fd, F_ADD_SEALS,
                           F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
    return fd;
}

static void refused(int pass, const void* msg, size_t len,
                    const char* reason) {
    int fd = shm_connect();
    if (msg) send_hello(fd, msg, len, pass);
    fx_shm_answer a;
    read_answer(fd, &a);
    cr_assert_neq(a.status, 0, "accepted (%s expected)", reason);
    cr_assert(strstr(a.text, reason), "answer '%s' lacks '%s'", a.text,
              reason);
    close(fd);
}

/* The server still serves: a stream add works. */
static void still_streams(void) {
    FaissIndex* rem = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "Flat", METRIC_L2));
    float* x = fxt_uniform(ROWS + 1, D, 23);
    uint64_t s0 = fx_shm_streams();
    FXT_OK(faiss_Index_add(rem, ROWS + 1, x));
    cr_assert_eq(fx_shm_streams() - s0, 1);
    cr_assert_eq(faiss_Index_ntotal(rem), ROWS + 1);
    free(x);
    faiss_Index_free(rem);
}

Test(shm, bad_hellos_are_refused, .init = start, .fini = stop) {
    struct stat st;
    cr_assert_eq(stat(sock_path, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0600, "socket mode %o", st.st_mode & 0777);
    fx_shm_hello h = {FX_SHM_HELLO_MAGIC, FX_SHM_VERSION, 0};
    uint64_t ok = FX_SHM_HDR_BYTES + (1 << 20);
    int unsealed = make_memfd(ok, 0);
    refused(unsealed, &h, sizeof h, "not sealed");
    close(unsealed);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    refused(p[0], &h, sizeof h, "not a regular file");
    close(p[0]);
    close(p[1]);
    int tiny = make_memfd(4096, 1);
    refused(tiny, &h, sizeof h, "outside");
    close(tiny);
    int huge = make_memfd((uint64_t)512 << 20, 1); /* sparse */
    refused(huge, &h, sizeof h, "outside");
    close(huge);
    char junk[16] = "GET / HTTP/1.0\r\n";
    refused(-1, junk, sizeof junk, "not a faissx shared-memory hello");
    refused(-1, &h, sizeof h, "no file descriptor");
    fx_shm_hello v2 = {FX_SHM_HELLO_MAGIC, 2, 0};
    int good = make_memfd(ok, 1);
    refused(good, &v2, sizeof v2, "version");
    close(good);
    refused(-1, NULL, 0, "no hello"); /* slow loris: waits ~2 s */
    still_streams();
}

/* ---- ADD_STREAM, raw ---- */

typedef struct raw_reply {
    int status;
    char text[512];
    uint64_t u0; /* first u64 of a successful body */
} raw_reply;

static uint64_t next_rid = 1000;

/* Sends op with body fields (after the key) and returns the reply. */
static raw_reply raw(const char* key, int op, const fx_wbuf* fields,
                     uint64_t rid) {
    fx_wbuf w;
    fx_w_init(&w);
    fx_w_header_space(&w);
    fx_w_str(&w, key);
    if (fields) fx_w_bytes(&w, fields->data, fields->len);
    fx_hdr h = {0};
    h.op = (uint16_t)op;
    h.request_id = rid ? rid : next_rid++;
    h.client_id = 4242;
    h.timeout_ms = 10000;
    fx_w_finish(&w, &h);
    nng_socket s;
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 15000);
    cr_assert_eq(nng_dial(s, srv.url, NULL, 0), 0);
    cr_assert_eq(nng_send(s, w.data, w.len, 0), 0);
    char* buf = NULL;
    size_t n = 0;
    cr_assert_eq(nng_recv(s, &buf, &n, NNG_FLAG_ALLOC), 0, "no reply");
    fx_hdr r;
    char err[128];
    cr_assert_eq(fx_hdr_decode((uint8_t*)buf, n, &r, err, sizeof err), 0);
    raw_reply out;
    memset(&out, 0, sizeof out);
    out.status = r.status;
    fx_rbuf rb;
    fx_r_init(&rb, (uint8_t*)buf + FX_HDR_SIZE, n - FX_HDR_SIZE);
    if (r.status)
        fx_r_str(&rb, out.text, sizeof out.text - 1);
    else
        fx_r_u64(&rb, &out.u0);
    nng_free(buf, n);
    nng_close(s);
    fx_w_free(&w);
    return out;
}

static uint64_t raw_create(const char* key, const char* desc) {
    fx_wbuf f;
    fx_w_init(&f);
    fx_w_str(&f, "");
    fx_w_i64(&f, D);
    fx_w_i64(&f, METRIC_L2);
    fx_w_str(&f, desc);
    raw_reply r = raw(key, FX_OP_CREATE, &f, 0);
    fx_w_free(&f);
    cr_assert_eq(r.status, 0, "create: %s", r.text);
    return r.u0;
}

static int64_t raw_ntotal(const char* key, uint64_t h) {
    fx_wbuf f;
    fx_w_init(&f);
    fx_w_u64(&f, h);
    fx_wbuf w;
    fx_w_init(&w);
    fx_w_header_space(&w);
    fx_w_str(&w, key);
    fx_w_bytes(&w, f.data, f.len);
    fx_hdr hd = {0};
    hd.op = FX_OP_INFO;
    hd.request_id = next_rid++;
    fx_w_finish(&w, &hd);
    nng_socket s;
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 15000);
    cr_assert_eq(nng_dial(s, srv.url, NULL, 0), 0);
    cr_assert_eq(nng_send(s, w.data, w.len, 0), 0);
    char* buf = NULL;
    size_t n = 0;
    cr_assert_eq(nng_recv(s, &buf, &n, NNG_FLAG_ALLOC), 0);
    fx_rbuf rb;
    fx_r_init(&rb, (uint8_t*)buf + FX_HDR_SIZE, n - FX_HDR_SIZE);
    uint64_t hh;
    int64_t d, m, t, nt;
    fx_r_u64(&rb, &hh);
    fx_r_i64(&rb, &d);
    fx_r_i64(&rb, &m);
    fx_r_i64(&rb, &t);
    cr_assert_eq(fx_r_i64(&rb, &nt), 0);
    nng_free(buf, n);
    nng_close(s);
    fx_w_free(&w);
    fx_w_free(&f);
    return nt;
}

typedef struct region {
    int sock;
    uint8_t* base;
    uint64_t size;
    uint64_t token[2];
} region;

static region get_region(void) {
    region r;
    r.size = FX_SHM_HDR_BYTES + 4 * 65536;
    int mfd = make_memfd(r.size, 1);
    r.base = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    cr_assert_neq(r.base, MAP_FAILED);
    r.sock = shm_connect();
    fx_shm_hello h = {FX_SHM_HELLO_MAGIC, FX_SHM_VERSION, 0};
    send_hello(r.sock, &h, sizeof h, mfd);
    close(mfd);
    fx_shm_answer a;
    read_answer(r.sock, &a);
    cr_assert_eq(a.status, 0, "refused: %s", a.text);
    cr_assert_eq(a.features, FX_SHM_FEAT_COMMIT, "features %u", a.features);
    memcpy(r.token, a.token, sizeof r.token);
    return r;
}

static raw_reply stream(const char* key, uint64_t h, int64_t n,
                        const uint64_t token[2], uint64_t nslots,
                        uint64_t rows, uint64_t off, uint64_t sbytes,
                        uint64_t rid) {
    fx_wbuf f;
    fx_w_init(&f);
    fx_w_u64(&f, h);
    fx_w_i64(&f, n);
    fx_w_i64(&f, 0);
    fx_w_u64(&f, token[0]);
    fx_w_u64(&f, token[1]);
    fx_w_u64(&f, nslots);
    fx_w_u64(&f, rows);
    fx_w_u64(&f, off);
    fx_w_u64(&f, sbytes);
    raw_reply r = raw(key, FX_OP_ADD_STREAM, &f, rid);
    fx_w_free(&f);
    return r;
}

Test(shm, add_stream_refusals, .init = start_debug, .fini = stop) {
    uint64_t h = raw_create("ka", "Flat");
    region rg = get_region();
    uint64_t bogus[2] = {rg.token[0] ^ 1, rg.token[1]};
    raw_reply r;
    r = stream("ka", h, 10, bogus, 4, 64, FX_SHM_HDR_BYTES, 65536, 0);
    cr_assert_eq(r.status, FAISSX_E_INVALID);
    cr_assert(strstr(r.text, "unknown shared-memory region"), "%s", r.text);
    r = stream("kr", h, 10, rg.token, 4, 64, FX_SHM_HDR_BYTES, 65536, 0);
    cr_assert_eq(r.status, FAISSX_E_PERMISSION, "%s", r.text);
    cr_assert(strstr(r.text, "read-only"), "%s", r.text);
    /* layouts out of bounds (the region binds to alice here) */
    r = stream("ka", h, 10, rg.token, 65, 64, FX_SHM_HDR_BYTES, 65536, 0);
    cr_assert(strstr(r.text, "nslots"), "%s", r.text);
    r = stream("ka", h, 10, rg.token, 4, 64, 0, 65536, 0);
    cr_assert(strstr(r.text, "bad ring layout"), "%s", r.text);
    r = stream("ka", h, 10, rg.token, 4, 64, FX_SHM_HDR_BYTES, 65536 * 2, 0);
    cr_assert(strstr(r.text, "does not fit"), "%s", r.text);
    r = stream("ka", h, 10, rg.token, 4, 4096, FX_SHM_HDR_BYTES, 65536, 0);
    cr_assert(strstr(r.text, "cannot hold"), "%s", r.text);
    /* bob: alice's region is unknown to him, with the same text */
    uint64_t hb = raw_create("kb", "Flat");
    r = stream("kb", hb, 10, rg.token, 4, 64, FX_SHM_HDR_BYTES, 65536, 0);
    cr_assert_eq(r.status, FAISSX_E_INVALID);
    cr_assert(strstr(r.text, "unknown shared-memory region"), "%s", r.text);
    /* an index that cannot roll back exactly */
    uint64_t hh = raw_create("ka", "HNSW8");
    r = stream("ka", hh, 10, rg.token, 4, 64, FX_SHM_HDR_BYTES, 65536, 0);
    cr_assert_eq(r.status, FAISSX_E_UNSUPPORTED, "%s", r.text);
    /* a region not set up for this request id */
    r = stream("ka", h, 10, rg.token, 4, 64, FX_SHM_HDR_BYTES, 65536, 0);
    cr_assert(strstr(r.text, "not set up for this stream"), "%s", r.text);
    /* a chunk claiming more rows than a slot holds */
    fx_shm_hdr* hd = (fx_shm_hdr*)rg.base;
    uint64_t rid = 777777;
    hd->stream_id = rid;
    hd->state = FX_SHM_RUNNING;
    hd->consumed = 0;
    hd->ntotal = FX_SHM_NO_NTOTAL;
    hd->rows[0] = 100000;
    hd->produced = 1;
    r = stream("ka", h, 10, rg.token, 4, 64, FX_SHM_HDR_BYTES, 65536, rid);
    cr_assert_eq(r.status, FAISSX_E_INVALID);
    cr_assert(strstr(r.text, "bad chunk"), "%s", r.text);
    cr_assert_eq(hd->state, FX_SHM_ABORTED);
    /* a good chunk then a NaN: rolled back */
    rid++;
    hd->stream_id = rid;
    hd->state = FX_SHM_RUNNING;
    hd->produced = 2;
    hd->rows[0] = 6;
    hd->rows[1] = 4;
    float* s0 = (float*)(rg.base + FX_SHM_HDR_BYTES);
    float* s1 = (float*)(rg.base + FX_SHM_HDR_BYTES + 65536);
    for (int i = 0; i < 6 * D; i++) s0[i] = 0.25f;
    for (int i = 0; i < 4 * D; i++) s1[i] = 0.5f;
    s1[2 * D + 3] = INFINITY;
    r = stream("ka", h, 10, rg.token, 4, 64, FX_SHM_HDR_BYTES, 65536, rid);
    cr_assert_eq(r.status, FAISSX_E_INVALID);
    cr_assert(strstr(r.text, "vector 8, component 3"), "%s", r.text);
    cr_assert_eq(raw_ntotal("ka", h), 0, "not rolled back");
    cr_assert_eq(hd->ntotal, FX_SHM_NO_NTOTAL, "an aborted stream's ntotal");
    /* and the same chunks, fixed, commit */
    rid++;
    s1[2 * D + 3] = 0.5f;
    hd->stream_id = rid;
    hd->state = FX_SHM_RUNNING;
    r = stream("ka", h, 10, rg.token, 4, 64, FX_SHM_HDR_BYTES, 65536, rid);
    cr_assert_eq(r.status, 0, "%s", r.text);
    cr_assert_eq(hd->state, FX_SHM_COMMITTED);
    cr_assert_eq(raw_ntotal("ka", h), 10);
    cr_assert_eq(hd->ntotal, 10, "the committed stream's ntotal");
    /* the client closes its region: its token is gone once the server has
     * released it (it logs that; a fixed 200 ms was a guess a loaded
     * machine could outlast) */
    close(rg.sock);
    cr_assert(wait_log("shm: a client closed its region; it is released"),
              "the server never released the closed region: %s",
              fxt_server_log(&srv));
    r = stream("ka", h, 10, rg.token, 4, 64, FX_SHM_HDR_BYTES, 65536, 0);
    cr_assert(strstr(r.text, "unknown shared-memory region"), "%s", r.text);
    munmap(rg.base, rg.size);
    still_streams();
}

Test(shm, bind_failure_is_reported) {
    /* a path that cannot be bound: its directory does not exist */
    const char* bin = getenv("FAISSX_SERVER_BIN");
    cr_assert(bin);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s --listen tcp://127.0.0.1:0 --shm-socket /nonexistent/dir/s "
             ">/dev/null 2>%s",
             bin, fxt_tmp_path("bind.err"));
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
    FILE* f = fopen(fxt_tmp_path("bind.err"), "r");
    cr_assert(f);
    char buf[512] = "";
    cr_assert(fgets(buf, sizeof buf, f));
    fclose(f);
    cr_assert(strstr(buf, "--shm-socket: cannot bind"), "%s", buf);
    /* a mode that would lock the server's own user out: a bad option */
    snprintf(cmd, sizeof cmd,
             "%s --shm-socket /tmp/x --shm-socket-mode 0444 >/dev/null "
             "2>%s", bin, fxt_tmp_path("mode.err"));
    st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
    f = fopen(fxt_tmp_path("mode.err"), "r");
    cr_assert(f);
    cr_assert(fgets(buf, sizeof buf, f));
    fclose(f);
    cr_assert(strstr(buf, "--shm-socket-mode"), "%s", buf);
}

/* ---- binary indexes: FX_BIN_ADD_STREAM ---- */

#define DB 256 /* bits */
#define CSB (DB / 8)

/* rows per client slot for codes of CSB bytes with ids (net/shm.cpp
 * rows_for) */
static int rows_b(void) {
    uint64_t s = FX_SHM_CLIENT_SLOT_BYTES, r = (s - 64) / (CSB + 8);
    while (r && FX_SHM_IDS_AT(r, CSB) + r * 8 > s) r--;
    return (int)r;
}

/* A local IndexBinaryIDMap over an IndexBinaryFlat (shm_binary_idmap.cpp). */
FaissIndexBinary* fxt_binary_idmap_flat(int d);

static void same_bresults(FaissIndexBinary* rem, FaissIndexBinary* loc,
                          int recons) {
    idx_t nr = faiss_IndexBinary_ntotal(rem), nl = faiss_IndexBinary_ntotal(loc);
    cr_assert_eq(nr, nl, "ntotal %lld vs local %lld", (long long)nr,
                 (long long)nl);
    enum { NQ = 20, K = 5 };
    uint8_t* q = fxt_bytes(NQ, DB, 777);
    int32_t Dr[NQ * K], Dl[NQ * K];
    idx_t Ir[NQ * K], Il[NQ * K];
    FXT_OK(faiss_IndexBinary_search(rem, NQ, q, K, Dr, Ir));
    FXT_OK(faiss_IndexBinary_search(loc, NQ, q, K, Dl, Il));
    for (int i = 0; i < NQ * K; i++) {
        cr_assert_eq(Ir[i], Il[i], "label %d: %lld vs local %lld", i,
                     (long long)Ir[i], (long long)Il[i]);
        cr_assert_eq(Dr[i], Dl[i], "distance %d: %d vs local %d", i, Dr[i],
                     Dl[i]);
    }
    free(q);
    if (recons && nl > 0) {
        idx_t m = nl < 3000 ? nl : 3000, i0 = nl - m;
        uint8_t* a = malloc((size_t)m * CSB);
        uint8_t* b = malloc((size_t)m * CSB);
        FXT_OK(faiss_IndexBinary_reconstruct_n(rem, i0, m, a));
        FXT_OK(faiss_IndexBinary_reconstruct_n(loc, i0, m, b));
        cr_assert_eq(memcmp(a, b, (size_t)m * CSB), 0,
                     "reconstructed codes differ");
        free(a);
        free(b);
    }
}

/* Adds x to both, asserting the remote add streamed. */
static void add_bboth(FaissIndexBinary* rem, FaissIndexBinary* loc, idx_t n,
                      const uint8_t* x, const idx_t* ids) {
    uint64_t s0 = fx_shm_streams(), f0 = fx_shm_fallbacks();
    if (ids) {
        FXT_OK(faiss_IndexBinary_add_with_ids(rem, n, x, ids));
        FXT_OK(faiss_IndexBinary_add_with_ids(loc, n, x, ids));
    } else {
        FXT_OK(faiss_IndexBinary_add(rem, n, x));
        FXT_OK(faiss_IndexBinary_add(loc, n, x));
    }
    cr_assert_eq(fx_shm_streams() - s0, 1,
                 "the binary add of %lld did not stream (fallbacks %llu)",
                 (long long)n,
                 (unsigned long long)(fx_shm_fallbacks() - f0));
    cr_assert_eq(fx_shm_fallbacks() - f0, 0, "the binary add fell back");
}

/* one row; one chunk; many chunks and a tail; more than the ring */
static void add_binary_sizes(FaissIndexBinary* rem, FaissIndexBinary* loc,
                             int with_ids) {
    const int rb = rows_b();
    const idx_t sizes[] = {1, rb - 3, 3 * rb + 17,
                           (FX_SHM_CLIENT_SLOTS + 3) * (idx_t)rb + 1};
    idx_t base = 0;
    for (int s = 0; s < 4; s++) {
        idx_t n = sizes[s];
        uint8_t* x = fxt_bytes((size_t)n, DB, 300 + (uint64_t)s);
        idx_t* ids = NULL;
        if (with_ids) {
            ids = malloc(sizeof(idx_t) * (size_t)n);
            for (idx_t i = 0; i < n; i++) ids[i] = 7000000 + 5 * (base + i);
        }
        add_bboth(rem, loc, n, x, ids);
        base += n;
        free(x);
        free(ids);
    }
}

Test(shm, binary_flat_streams_like_a_local_add, .init = start, .fini = stop) {
    FaissIndexBinary *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_binary_factory(&rem, DB, "BFlat"));
    cr_assert(faissx_index_binary_is_remote(rem));
    faissx_remote_disable();
    FXT_OK(faiss_index_binary_factory(&loc, DB, "BFlat"));
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    add_binary_sizes(rem, loc, 0);
    same_bresults(rem, loc, 1);
    faiss_IndexBinary_free(rem);
    faiss_IndexBinary_free(loc);
}

/* An IndexBinaryIDMap over an IndexBinaryFlat (uploaded: the C API has no
 * constructor for it) streams its add_with_ids, ids and all. */
Test(shm, binary_idmap_add_with_ids_streams, .init = start, .fini = stop) {
    FaissIndexBinary* loc = fxt_binary_idmap_flat(DB);
    FaissIndexBinary* rem = NULL;
    FXT_OK(faissx_index_binary_upload(loc, NULL, &rem));
    add_binary_sizes(rem, loc, 1);
    same_bresults(rem, loc, 0);
    faiss_IndexBinary_free(rem);
    faiss_IndexBinary_free(loc);
}

Test(shm, binary_ineligible_index_falls_back, .init = start, .fini = stop) {
    FaissIndexBinary* rem = NULL;
    FXT_OK(faiss_index_binary_factory(&rem, DB, "BHNSW8"));
    uint8_t* x = fxt_bytes(2000, DB, 13);
    uint64_t s0 = fx_shm_streams(), f0 = fx_shm_fallbacks();
    FXT_OK(faiss_IndexBinary_add(rem, 2000, x));
    cr_assert_eq(faiss_IndexBinary_ntotal(rem), 2000);
    cr_assert_eq(fx_shm_streams(), s0);
    cr_assert_eq(fx_shm_fallbacks() - f0, 1, "refused once");
    FXT_OK(faiss_IndexBinary_add(rem, 10, x));
    cr_assert_eq(fx_shm_fallbacks() - f0, 1, "not asked again");
    cr_assert_eq(faiss_IndexBinary_ntotal(rem), 2010);
    free(x);
    faiss_IndexBinary_free(rem);
}

/* As lost_stream_replies_are_not_waited_for: each binary add streams
 * once, in one attempt, though every second reply is dropped. */
Test(shm, binary_lost_stream_replies_are_not_waited_for,
     .init = start_dropping, .fini = stop) {
    FaissIndexBinary *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_binary_factory(&rem, DB, "BFlat"));
    faissx_remote_disable();
    FXT_OK(faiss_index_binary_factory(&loc, DB, "BFlat"));
    configure_dropping();
    const int rb = rows_b();
    idx_t big = 2 * (idx_t)rb + 9;
    uint8_t* x = fxt_bytes((size_t)big, DB, 29);
    add_bboth(rem, loc, 100, x, NULL); /* makes the ring (PING, hello) */
    for (int i = 0; i < 6; i++) {
        uint64_t t0 = fx_client_round_trips();
        add_bboth(rem, loc, i % 2 ? big : rb, x, NULL);
        cr_assert_eq(fx_client_round_trips() - t0, 1,
                     "add %d: %llu attempts (a lost reply was waited for)", i,
                     (unsigned long long)(fx_client_round_trips() - t0));
        cr_assert_eq(faiss_IndexBinary_ntotal(rem),
                     faiss_IndexBinary_ntotal(loc));
    }
    same_bresults(rem, loc, 1);
    free(x);
    faiss_IndexBinary_free(rem);
    faiss_IndexBinary_free(loc);
}

/* Runs remote_helper MODE (add-stall or add-stall-bin) adding n vectors
 * to index NAME, stalling after two chunks; returns its pid once its log
 * says it stalls there (the server then holds the index's write lock,
 * waiting for the third chunk). */
static pid_t stalled_helper(const char* mode, const char* name, long n) {
    const char* helper = getenv("FAISSX_REMOTE_HELPER");
    cr_assert(helper, "FAISSX_REMOTE_HELPER is not set");
    char ns[32];
    snprintf(ns, sizeof ns, "%ld", n);
    const char* err = fxt_tmp_path("helper.err");
    unlink(err);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, 2) < 0) _exit(126);
        execl(helper, helper, mode, srv.url, "ka", name, ns, "2",
              (char*)NULL);
        _exit(127);
    }
    char buf[4096] = "";
    struct timespec tick = {0, 20000000};
    for (int i = 0; i < 6000; i++) { /* up to 2 minutes under load */
        FILE* f = fopen(err, "r");
        if (f) {
            size_t k = fread(buf, 1, sizeof buf - 1, f);
            buf[k] = '\0';
            fclose(f);
        }
        if (strstr(buf, "test hook: the stream stalls after 2 chunks")) break;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            cr_assert_fail("the helper ended early (status %d): %s", status,
                           buf);
        nanosleep(&tick, NULL);
    }
    cr_assert(strstr(buf, "test hook: the stream stalls after 2 chunks"),
              "the helper never stalled: %s", buf);
    return pid;
}

/* A client killed (-9) mid-stream of a binary add: its region closes, the
 * server rolls back and goes on serving. */
Test(shm, binary_killed_client_is_rolled_back, .init = start_debug,
     .fini = stop) {
    FaissIndexBinary* rem = NULL;
    FXT_OK(faissx_index_binary_create(&rem, "bvictim", DB, "BFlat"));
    const int rb = rows_b();
    uint8_t* x = fxt_bytes(4 * (size_t)rb, DB, 19);
    FXT_OK(faiss_IndexBinary_add(rem, 500, x));
    pid_t pid = stalled_helper("add-stall-bin", "bvictim", 4L * rb);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    /* the next read waits for the rollback */
    FaissIndexBinary* again = NULL;
    FXT_OK(faissx_index_binary_open(&again, "bvictim"));
    cr_assert_eq(faiss_IndexBinary_ntotal(again), 500, "not rolled back");
    cr_assert(strstr(fxt_server_log(&srv), "closed mid-stream"),
              "the stream was not cut by the kill: %s", fxt_server_log(&srv));
    uint64_t s0 = fx_shm_streams();
    FXT_OK(faiss_IndexBinary_add(again, 2 * (idx_t)rb, x));
    cr_assert_eq(fx_shm_streams() - s0, 1);
    cr_assert_eq(faiss_IndexBinary_ntotal(again), 500 + 2 * (idx_t)rb);
    /* what is there is the first 500 and the last add's codes */
    uint8_t* got = malloc(CSB * 600);
    FXT_OK(faiss_IndexBinary_reconstruct_n(again, 0, 600, got));
    cr_assert_eq(memcmp(got, x, CSB * 500), 0);
    cr_assert_eq(memcmp(got + CSB * 500, x, CSB * 100), 0);
    free(got);
    free(x);
    faiss_IndexBinary_free(again);
    faiss_IndexBinary_free(rem);
}

static uint64_t raw_bcreate(const char* key, const char* desc) {
    fx_wbuf f;
    fx_w_init(&f);
    fx_w_i64(&f, FX_BIN_CREATE);
    fx_w_str(&f, "");
    fx_w_i64(&f, DB);
    fx_w_str(&f, desc);
    raw_reply r = raw(key, FX_OP_BINARY, &f, 0);
    fx_w_free(&f);
    cr_assert_eq(r.status, 0, "binary create: %s", r.text);
    return r.u0;
}

static raw_reply bstream(const char* key, uint64_t h, int64_t n,
                         int64_t with_ids, const uint64_t token[2],
                         uint64_t nslots, uint64_t rows, uint64_t off,
                         uint64_t sbytes, uint64_t rid) {
    fx_wbuf f;
    fx_w_init(&f);
    fx_w_i64(&f, FX_BIN_ADD_STREAM);
    fx_w_u64(&f, h);
    fx_w_i64(&f, n);
    fx_w_i64(&f, with_ids);
    fx_w_u64(&f, token[0]);
    fx_w_u64(&f, token[1]);
    fx_w_u64(&f, nslots);
    fx_w_u64(&f, rows);
    fx_w_u64(&f, off);
    fx_w_u64(&f, sbytes);
    raw_reply r = raw(key, FX_OP_BINARY, &f, rid);
    fx_w_free(&f);
    return r;
}

static int64_t raw_bntotal(const char* key, uint64_t h) {
    fx_wbuf f;
    fx_w_init(&f);
    fx_w_i64(&f, FX_BIN_INFO);
    fx_w_u64(&f, h);
    fx_wbuf w;
    fx_w_init(&w);
    fx_w_header_space(&w);
    fx_w_str(&w, key);
    fx_w_bytes(&w, f.data, f.len);
    fx_hdr hd = {0};
    hd.op = FX_OP_BINARY;
    hd.request_id = next_rid++;
    fx_w_finish(&w, &hd);
    nng_socket s;
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 15000);
    cr_assert_eq(nng_dial(s, srv.url, NULL, 0), 0);
    cr_assert_eq(nng_send(s, w.data, w.len, 0), 0);
    char* buf = NULL;
    size_t n = 0;
    cr_assert_eq(nng_recv(s, &buf, &n, NNG_FLAG_ALLOC), 0);
    fx_hdr rh;
    char err[128];
    cr_assert_eq(fx_hdr_decode((uint8_t*)buf, n, &rh, err, sizeof err), 0);
    cr_assert_eq(rh.status, 0, "binary info failed");
    fx_rbuf rb;
    fx_r_init(&rb, (uint8_t*)buf + FX_HDR_SIZE, n - FX_HDR_SIZE);
    uint64_t hh;
    int64_t d, m, t, nt;
    fx_r_u64(&rb, &hh);
    fx_r_i64(&rb, &d);
    fx_r_i64(&rb, &m);
    fx_r_i64(&rb, &t);
    cr_assert_eq(fx_r_i64(&rb, &nt), 0);
    nng_free(buf, n);
    nng_close(s);
    fx_w_free(&w);
    fx_w_free(&f);
    return nt;
}

/* The binary sub-op's refusals and bounds, as ADD_STREAM's. */
Test(shm, binary_add_stream_refusals, .init = start, .fini = stop) {
    uint64_t h = raw_bcreate("ka", "BFlat");
    uint64_t hf = raw_create("ka", "Flat");
    region rg = get_region();
    const uint64_t off = FX_SHM_HDR_BYTES, sb = 65536;
    uint64_t bogus[2] = {rg.token[0] ^ 1, rg.token[1]};
    raw_reply r;
    r = bstream("ka", h, 10, 0, bogus, 4, 64, off, sb, 0);
    cr_assert_eq(r.status, FAISSX_E_INVALID);
    cr_assert(strstr(r.text, "unknown shared-memory region"), "%s", r.text);
    r = bstream("kr", h, 10, 0, rg.token, 4, 64, off, sb, 0);
    cr_assert_eq(r.status, FAISSX_E_PERMISSION, "%s", r.text);
    cr_assert(strstr(r.text, "read-only"), "%s", r.text);
    /* the other family's handle, each way */
    r = bstream("ka", hf, 10, 0, rg.token, 4, 64, off, sb, 0);
    cr_assert(strstr(r.text, "is not a binary index"), "%s", r.text);
    r = stream("ka", h, 10, rg.token, 4, 64, off, sb, 0);
    cr_assert(strstr(r.text, "is a binary index"), "%s", r.text);
    /* layouts out of bounds */
    r = bstream("ka", h, 10, 0, rg.token, 0, 64, off, sb, 0);
    cr_assert(strstr(r.text, "nslots"), "%s", r.text);
    r = bstream("ka", h, 10, 0, rg.token, 4, 64, off + 8, sb, 0);
    cr_assert(strstr(r.text, "bad ring layout"), "%s", r.text);
    r = bstream("ka", h, 10, 0, rg.token, 5, 64, off, sb, 0);
    cr_assert(strstr(r.text, "does not fit"), "%s", r.text);
    /* 2048 codes of 32 bytes fill 64 KiB: no room for ids */
    r = bstream("ka", h, 10, 0, rg.token, 4, 2048, off, sb, 0);
    cr_assert(strstr(r.text, "not set up for this stream"),
              "2048 codes without ids fit: %s", r.text);
    r = bstream("ka", h, 10, 0, rg.token, 4, 2049, off, sb, 0);
    cr_assert(strstr(r.text, "cannot hold"), "%s", r.text);
    r = bstream("ka", h, 10, 2, rg.token, 4, 64, off, sb, 0);
    cr_assert(strstr(r.text, "with_ids"), "%s", r.text);
    r = bstream("ka", h, 10, 1, rg.token, 4, 64, off, sb, 0);
    cr_assert_eq(r.status, FAISSX_E_UNSUPPORTED, "%s", r.text);
    /* bob: alice's region is unknown to him */
    r = bstream("kb", raw_bcreate("kb", "BFlat"), 10, 0, rg.token, 4, 64, off,
                sb, 0);
    cr_assert(strstr(r.text, "unknown shared-memory region"), "%s", r.text);
    /* an index whose add is not an append */
    r = bstream("ka", raw_bcreate("ka", "BHNSW8"), 10, 0, rg.token, 4, 64,
                off, sb, 0);
    cr_assert_eq(r.status, FAISSX_E_UNSUPPORTED, "%s", r.text);
    /* a region not set up for this request id */
    r = bstream("ka", h, 10, 0, rg.token, 4, 64, off, sb, 0);
    cr_assert(strstr(r.text, "not set up for this stream"), "%s", r.text);
    /* a chunk claiming more rows than remain, after a good one */
    fx_shm_hdr* hd = (fx_shm_hdr*)rg.base;
    uint8_t* s0 = rg.base + off;
    uint8_t* s1 = rg.base + off + sb;
    memset(s0, 0xa5, 6 * CSB);
    memset(s1, 0x5a, 4 * CSB);
    uint64_t rid = 888888;
    hd->stream_id = rid;
    hd->state = FX_SHM_RUNNING;
    hd->consumed = 0;
    hd->ntotal = FX_SHM_NO_NTOTAL;
    hd->rows[0] = 6;
    hd->rows[1] = 5;
    hd->produced = 2;
    r = bstream("ka", h, 10, 0, rg.token, 4, 64, off, sb, rid);
    cr_assert_eq(r.status, FAISSX_E_INVALID);
    cr_assert(strstr(r.text, "bad chunk 1"), "%s", r.text);
    cr_assert_eq(hd->state, FX_SHM_ABORTED);
    cr_assert_eq(raw_bntotal("ka", h), 0, "not rolled back");
    /* the client aborts after the first chunk: rolled back */
    rid++;
    hd->stream_id = rid;
    hd->state = FX_SHM_RUNNING;
    hd->rows[1] = 4;
    hd->produced = 1;
    hd->consumed = 0;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* once the server took chunk 0, abort (no NNG here) */
        for (int i = 0; i < 60000 && hd->consumed < 1; i++) usleep(1000);
        uint32_t want = FX_SHM_RUNNING;
        __atomic_compare_exchange_n(&hd->state, &want, FX_SHM_ABORTED, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        fx_shm_futex_wake(&hd->produced);
        _exit(0);
    }
    r = bstream("ka", h, 10, 0, rg.token, 4, 64, off, sb, rid);
    int st;
    waitpid(pid, &st, 0);
    cr_assert_eq(r.status, FAISSX_E_CANCELED, "%s", r.text);
    cr_assert(strstr(r.text, "aborted the stream after 6 of 10"), "%s",
              r.text);
    cr_assert_eq(raw_bntotal("ka", h), 0, "not rolled back");
    /* and the same chunks commit */
    rid++;
    hd->stream_id = rid;
    hd->state = FX_SHM_RUNNING;
    hd->consumed = 0;
    hd->produced = 2;
    r = bstream("ka", h, 10, 0, rg.token, 4, 64, off, sb, rid);
    cr_assert_eq(r.status, 0, "%s", r.text);
    cr_assert_eq(hd->state, FX_SHM_COMMITTED);
    cr_assert_eq(hd->ntotal, 10, "the committed stream's ntotal");
    cr_assert_eq(raw_bntotal("ka", h), 10);
    /* a retry of it (same client and request id) is answered, not added */
    r = bstream("ka", h, 10, 0, rg.token, 4, 64, off, sb, rid);
    cr_assert_eq(r.status, 0, "%s", r.text);
    cr_assert_eq(raw_bntotal("ka", h), 10, "a retry was applied again");
    close(rg.sock);
    munmap(rg.base, rg.size);
}

/* ---- progress and cancellation through the ring ---- */

typedef struct prog_log {
    int calls;
    int64_t done[4096], total[4096];
    int cancel_at;                /* return non-zero at this call (0: never) */
    FaissxCancelToken* raise_at_token; /* raised at call raise_at */
    int raise_at;
} prog_log;

static int record(const FaissxProgress* p, void* user) {
    prog_log* l = user;
    cr_assert_eq(p->op, FAISSX_PROGRESS_ADD);
    if (l->calls < 4096) {
        l->done[l->calls] = p->done;
        l->total[l->calls] = p->total;
    }
    l->calls++;
    if (l->raise_at && l->calls == l->raise_at)
        faissx_cancel_token_cancel(l->raise_at_token);
    return l->cancel_at && l->calls >= l->cancel_at;
}

/* done never decreases, total is n throughout, and the last report (when
 * `complete`) is n. */
static void check_reports(const prog_log* l, int64_t n, int complete) {
    cr_assert_gt(l->calls, 0, "no progress reported");
    int m = l->calls < 4096 ? l->calls : 4096;
    for (int i = 0; i < m; i++) {
        cr_assert_eq(l->total[i], n, "report %d: total %lld, not %lld", i,
                     (long long)l->total[i], (long long)n);
        if (i)
            cr_assert_geq(l->done[i], l->done[i - 1],
                          "report %d: done went back (%lld after %lld)", i,
                          (long long)l->done[i], (long long)l->done[i - 1]);
    }
    if (complete)
        cr_assert_eq(l->done[m - 1], n, "the last report says %lld of %lld",
                     (long long)l->done[m - 1], (long long)n);
    else
        cr_assert_lt(l->done[m - 1], n, "a cancelled add reported it all");
}

/* Makes the connection's ring with a small add (PING and hello), so the
 * calls measured next are only the ADD_STREAM. */
static void make_ring(FaissIndex* rem, FaissIndex* loc, const float* x) {
    add_both(rem, loc, 10, x, NULL);
}

/* A progress callback no longer sends the add the ordinary way: it
 * streams, one ADD_STREAM and no PROGRESS polls, and the callback hears
 * of every chunk. */
Test(shm, progress_is_reported_per_chunk, .init = start, .fini = stop) {
    FaissIndex *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "IDMap,Flat", METRIC_L2));
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&loc, D, "IDMap,Flat", METRIC_L2));
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    enum { N = 11 * ROWS + 5 }; /* 12 chunks, more than the ring's slots */
    float* x = fxt_uniform(N, D, 41);
    idx_t* ids = malloc(sizeof(idx_t) * N);
    for (int i = 0; i < N; i++) ids[i] = 9 * (idx_t)i + 1;
    FXT_OK(faiss_Index_add_with_ids(rem, 10, x, ids));
    FXT_OK(faiss_Index_add_with_ids(loc, 10, x, ids));
    static prog_log lg;
    memset(&lg, 0, sizeof lg);
    faissx_set_progress_callback(record, &lg);
    uint64_t s0 = fx_shm_streams(), f0 = fx_shm_fallbacks();
    uint64_t t0 = fx_client_round_trips();
    FXT_OK(faiss_Index_add_with_ids(rem, N, x, ids));
    faissx_set_progress_callback(NULL, NULL);
    cr_assert_eq(fx_shm_streams() - s0, 1, "the add did not stream");
    cr_assert_eq(fx_shm_fallbacks(), f0);
    cr_assert_eq(fx_client_round_trips() - t0, 1,
                 "%llu round trips: not one ADD_STREAM",
                 (unsigned long long)(fx_client_round_trips() - t0));
    cr_assert_geq(lg.calls, 12 + 1, "%d reports for 12 chunks", lg.calls);
    check_reports(&lg, N, 1);
    FXT_OK(faiss_Index_add_with_ids(loc, N, x, ids));
    same_results(rem, loc, 0);
    free(ids);
    free(x);
    faiss_Index_free(rem);
    faiss_Index_free(loc);
}

/* The callback returns non-zero mid-stream: the client moves the ring to
 * ABORTED, the server rolls back, the add fails with FAISSX_E_CANCELED
 * and adds nothing (not even by falling back); the ring goes on. */
Test(shm, callback_cancels_a_stream_exactly, .init = start, .fini = stop) {
    FaissIndex *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "Flat", METRIC_L2));
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    enum { N = 20 * ROWS };
    float* x = fxt_uniform(N, D, 43);
    make_ring(rem, loc, x);
    static prog_log lg;
    memset(&lg, 0, sizeof lg);
    lg.cancel_at = 4; /* the start, then three chunks */
    faissx_set_progress_callback(record, &lg);
    uint64_t s0 = fx_shm_streams(), f0 = fx_shm_fallbacks(),
             c0 = fx_shm_cancels();
    uint64_t t0 = fx_client_round_trips();
    FXT_ERR(faiss_Index_add(rem, N, x), "cancelled by the progress callback");
    faissx_set_progress_callback(NULL, NULL);
    cr_assert_eq(fx_shm_cancels() - c0, 1, "not a cancelled stream");
    cr_assert_eq(fx_shm_streams(), s0);
    cr_assert_eq(fx_shm_fallbacks(), f0, "fell back to ADD");
    cr_assert_eq(fx_client_round_trips() - t0, 1, "more than the stream");
    check_reports(&lg, N, 0);
    /* (the server's side of a client's abort, mid-stream or before the
     * server began, is binary_add_stream_refusals' and add_stream's) */
    same_results(rem, loc, 1); /* 10 vectors, as before */
    add_both(rem, loc, 3 * ROWS, x, NULL); /* the ring still works */
    same_results(rem, loc, 1);
    free(x);
    faiss_Index_free(rem);
    faiss_Index_free(loc);
}

/* A cancel token raised mid-stream (here by the callback, on the
 * adding thread, so the moment is exact) does the same, with an IDMap's
 * ids rolled back too; a token raised before the call stops it before
 * anything is sent. */
Test(shm, token_cancels_a_stream_exactly, .init = start, .fini = stop) {
    FaissIndex *rem = NULL, *loc = NULL;
    FXT_OK(faiss_index_factory(&rem, D, "IDMap,Flat", METRIC_L2));
    faissx_remote_disable();
    FXT_OK(faiss_index_factory(&loc, D, "IDMap,Flat", METRIC_L2));
    FXT_OK(faissx_configure(srv.url, "ka", 20000));
    enum { N = 20 * ROWS };
    float* x = fxt_uniform(N, D, 47);
    idx_t* ids = malloc(sizeof(idx_t) * N);
    for (int i = 0; i < N; i++) ids[i] = 11 * (idx_t)i + 2;
    add_both(rem, loc, 10, x, ids);
    FaissxCancelToken* tok = NULL;
    FXT_OK(faissx_cancel_token_new(&tok));
    static prog_log lg;
    memset(&lg, 0, sizeof lg);
    lg.raise_at = 3;
    lg.raise_at_token = tok;
    faissx_set_progress_callback(record, &lg);
    faissx_set_cancel_token(tok);
    uint64_t c0 = fx_shm_cancels(), f0 = fx_shm_fallbacks();
    FXT_ERR(faiss_Index_add_with_ids(rem, N, x, ids), "cancelled");
    cr_assert_null(strstr(faiss_get_last_error(), "progress callback"),
                   "%s", faiss_get_last_error());
    cr_assert_eq(fx_shm_cancels() - c0, 1);
    cr_assert_eq(fx_shm_fallbacks(), f0);
    check_reports(&lg, N, 0);
    same_results(rem, loc, 0);
    /* raised before the call: nothing is sent */
    faissx_set_progress_callback(NULL, NULL);
    uint64_t t0 = fx_client_round_trips();
    FXT_ERR(faiss_Index_add_with_ids(rem, N, x, ids), "cancelled");
    cr_assert_eq(fx_client_round_trips(), t0, "sent anyway");
    /* reset: the same token lets a whole add stream */
    faissx_cancel_token_reset(tok);
    uint64_t s0 = fx_shm_streams();
    FXT_OK(faiss_Index_add_with_ids(rem, N, x, ids));
    FXT_OK(faiss_Index_add_with_ids(loc, N, x, ids));
    cr_assert_eq(fx_shm_streams() - s0, 1, "did not stream");
    faissx_set_cancel_token(NULL);
    same_results(rem, loc, 0);
    faissx_cancel_token_free(tok);
    free(ids);
    free(x);
    faiss_Index_free(rem);
    faiss_Index_free(loc);
}
