/* test_mt_client.c -- one remote client used by many threads at once
 * (issue 5, item 9: thread safety). tools/run-tests.sh runs it again in a
 * ThreadSanitizer build, against a TSan-built server.
 *
 *   test_mt_client shared     8 threads on one connection
 *   test_mt_client pool       the same over a pool of 4 connections
 *   test_mt_client reconnect  8 threads working while the server is killed
 *                             and restarted
 *   test_mt_client reconfigure  8 threads working while the main thread
 *                             switches between two servers and local mode
 *
 * In `shared` and `pool` every thread, in each round: opens its own handle
 * to the named indexes (a Flat with ids, a Flat without, an IVF), adds
 * vectors of its own through them, searches them back (exact: each finds
 * itself at distance 0), reconstructs, sets and reads nprobe, reads ntotal
 * through its own handle and through handles shared by all threads,
 * creates, fills, checks and frees an unnamed index, lists the named
 * indexes, and closes its handles; meanwhile another thread changes the
 * connection and log callbacks, the log level and a timeout, and the
 * heartbeat runs. Afterwards each index holds exactly the sum of all
 * adds, and the id map exactly the ids added, once each.
 *
 * In `reconnect` the threads loop over a shorter mix (open a named index
 * and search it, build an IVF of their own and check it) while the server
 * is killed, left down, and started again: every call returns, success or
 * FAISSX_E_TIMEOUT / _NET / _NOT_FOUND, within its deadline; nothing
 * hangs; every thread does complete, correct work after the restart; the
 * state callback saw the connection go and come back.
 *
 * In `reconfigure` the main thread calls faissx_configure_ex (alternating
 * between two servers, with other pool sizes and heartbeats) and
 * faissx_remote_disable over and over while the threads open a named
 * index that has a different size on each server, search it, and keep
 * handles (named and unnamed) across the switches, searching through them
 * and then freeing them -- so old connections are closed by whichever
 * thread drops them, while calls run on others. Every call succeeds
 * (handles keep their connection) except opening by name with no server
 * configured; an open that starts after a configuration returned reaches
 * that configuration's server; no switch or free hangs.
 *
 * A plain program, not a Criterion suite, because Criterion cannot start
 * under TSan (plain.h). Worker threads never end the process: they record
 * their first failure, and the main thread reports it after joining them.
 * A watchdog (SIGALRM) turns a hang into a failure that names it. */
#include "plain.h"
#include "server_fixture.h"

#include <faissx/faissx.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Process: failure, temporary files, watchdog, the server
 * ------------------------------------------------------------------------ */

static fxt_server srv;          /* touched by the main thread only */
static atomic_int server_pid;   /* for the watchdog and fxt_plain_fail */
static fxt_server srv2;         /* `reconfigure`'s second server */
static atomic_int server2_pid;
static char tmp_dir[256];

static void print_server_log(void) {
    if (!srv.log[0]) return;
    FILE* f = fopen(srv.log, "r");
    if (!f) return;
    fprintf(stderr, "--- server log %s:\n", srv.log);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stderr);
    fclose(f);
    fprintf(stderr, "--- end of server log\n");
}

void fxt_plain_fail(const char* file, int line, const char* what,
                    const char* fmt, ...) {
    fprintf(stderr, "%s:%d: FAILED: %s", file, line, what);
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, ": ");
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "\n");
    print_server_log();
    pid_t p = atomic_exchange(&server_pid, 0);
    if (p > 0) kill(p, SIGKILL);
    p = atomic_exchange(&server2_pid, 0);
    if (p > 0) kill(p, SIGKILL);
    fflush(stderr);
    _exit(1); /* other threads may still run: no atexit handlers */
}

const char* fxt_tmp_path(const char* basename) {
    static char path[512];
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/fxt-mt-XXXXXX");
        cr_assert(mkdtemp(tmp_dir) != NULL, "mkdtemp");
    }
    snprintf(path, sizeof path, "%s/%s", tmp_dir, basename);
    return path;
}

static void rm_tmp(void) {
    if (!tmp_dir[0]) return;
    DIR* d = opendir(tmp_dir);
    if (d) {
        struct dirent* e;
        char p[600];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(tmp_dir);
}

static void on_alarm(int sig) {
    (void)sig;
    static const char m[] = "test_mt_client: FAILED: a call hung (the "
                            "watchdog fired)\n";
    if (write(2, m, sizeof m - 1) < 0) { /* nothing more to do */ }
    pid_t p = atomic_exchange(&server_pid, 0);
    if (p > 0) kill(p, SIGKILL);
    p = atomic_exchange(&server2_pid, 0);
    if (p > 0) kill(p, SIGKILL);
    _exit(3);
}

static void server_start(const char* const* args) {
    fxt_server_start(&srv, args);
    atomic_store(&server_pid, srv.pid);
}

static void server_kill(void) {
    atomic_store(&server_pid, 0);
    fxt_server_kill(&srv);
}

static void server_restart(void) {
    fxt_server_restart(&srv, NULL);
    atomic_store(&server_pid, srv.pid);
}

/* Stops a server (clean exit required) and requires a clean log: a
 * TSan-built server writes its reports there. */
static void stop_checked(fxt_server* s) {
    fxt_server_stop(s);
    FILE* f = fopen(s->log, "r");
    cr_assert(f != NULL, "no server log %s", s->log);
    char line[1024];
    int bad = 0;
    while (fgets(line, sizeof line, f))
        bad |= strstr(line, "ThreadSanitizer") != NULL ||
               strstr(line, "AddressSanitizer") != NULL ||
               strstr(line, "runtime error:") != NULL;
    fclose(f);
    cr_assert(!bad, "the server's log %s has a sanitizer report", s->log);
}

static void server_stop(void) {
    atomic_store(&server_pid, 0);
    stop_checked(&srv);
}

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Deterministic uniform [0,1) vectors (splitmix64). Caller frees. */
static float* uniform(size_t n, int d, uint64_t seed) {
    float* x = malloc(n * (size_t)d * sizeof *x);
    cr_assert(x != NULL, "out of memory");
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n * (size_t)d; i++) {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[i] = (float)(z >> 40) / (float)(1u << 24);
    }
    return x;
}

static int wait_state(int want, int ms) {
    uint64_t t0 = mono_ms();
    while ((int)faissx_connection_state() != want) {
        if (mono_ms() - t0 > (uint64_t)ms) return 0;
        sleep_ms(10);
    }
    return 1;
}

#define OK(call)                                                            \
    do {                                                                    \
        int ok_rc_ = (call);                                                \
        cr_assert(ok_rc_ == 0, "%s returned %d: %s", #call, ok_rc_,         \
                  faiss_get_last_error());                                  \
    } while (0)

static void configure(int pool, int call_ms, int heartbeat_ms) {
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    o.url = srv.url;
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++) o.timeout_ms[i] = call_ms;
    o.pool_size = pool;
    o.heartbeat_ms = heartbeat_ms;
    o.backoff_base_ms = 20;
    o.backoff_cap_ms = 200;
    OK(faissx_configure_ex(&o));
}

/* Connection states reported to the callback (two callbacks, swapped
 * while calls run, count into the same table). */
static atomic_int seen_state[4];
static atomic_int callback_calls;

static void count_state(FaissxConnState st) {
    atomic_fetch_add(&callback_calls, 1);
    if ((int)st >= 0 && (int)st < 4) atomic_fetch_add(&seen_state[st], 1);
    /* Allowed from the callback (docs/client.md). */
    (void)faissx_connection_state();
}
static void on_state_a(FaissxConnState st, const char* url, void* user) {
    (void)url;
    (void)user;
    count_state(st);
}
static void on_state_b(FaissxConnState st, const char* url, void* user) {
    (void)url;
    (void)user;
    count_state(st);
}

static atomic_int log_messages;
static void on_log(FaissxLogLevel level, const char* msg, void* user) {
    (void)level;
    (void)msg;
    (void)user;
    atomic_fetch_add(&log_messages, 1);
}

/* Changes the process-wide client settings while calls run. */
typedef struct {
    atomic_int stop;
    int rounds;
    int call_ms;
} fiddler;

static void* fiddle(void* arg) {
    fiddler* f = arg;
    while (!atomic_load(&f->stop)) {
        int odd = f->rounds++ & 1;
        faissx_set_connection_callback(odd ? on_state_a : on_state_b, NULL);
        faissx_set_log_callback(odd ? on_log : NULL, NULL);
        faissx_set_log_level(odd ? FAISSX_LOG_INFO : FAISSX_LOG_DEBUG);
        faissx_set_timeout(FAISSX_OP_ADMIN, f->call_ms);
        (void)faissx_get_timeout(FAISSX_OP_SEARCH);
        (void)faissx_connection_state();
        (void)faissx_is_remote();
        sleep_ms(3);
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * shared / pool
 * ------------------------------------------------------------------------ */

enum { D = 16, NT = 8, NR = 6, B = 10, NLIST = 4, CALL_MS = 60000 };

/* Starts the settings thread f, then the NT workers: worker i runs fn on
 * (char*)ws + i * wsize. */
static void start_threads(fiddler* f, pthread_t* ft, pthread_t* t,
                          void* (*fn)(void*), void* ws, size_t wsize) {
    cr_assert(pthread_create(ft, NULL, fiddle, f) == 0, "pthread_create");
    for (int i = 0; i < NT; i++)
        cr_assert(pthread_create(&t[i], NULL, fn,
                                 (char*)ws + (size_t)i * wsize) == 0,
                  "pthread_create");
}

/* Stops the settings thread and puts back what it changes. */
static void stop_fiddler(fiddler* f, pthread_t ft) {
    atomic_store(&f->stop, 1);
    pthread_join(ft, NULL);
    faissx_set_connection_callback(NULL, NULL);
    faissx_set_log_callback(NULL, NULL);
    faissx_set_log_level(FAISSX_LOG_WARN);
}

typedef struct {
    int tid;
    FaissIndex* shared_flat; /* handles used by every thread at once */
    FaissIndex* shared_ivf;
    int rounds;              /* completed */
    atomic_int erred;        /* err is set */
    char err[1024];          /* the first failure */
} worker;

/* Records a worker thread's first failure in err and sets *erred (which
 * the main thread may poll; err is read after the join). */
static void wfail(char* err, size_t errsz, atomic_int* erred, int tid,
                  int line, const char* fmt, ...) {
    if (err[0]) return;
    int n = snprintf(err, errsz, "thread %d, line %d: ", tid, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errsz - (size_t)n, fmt, ap);
    va_end(ap);
    atomic_store(erred, 1);
}

/* In a worker w (with err, erred and tid): record the failure and leave
 * the round. */
#define WCHECK(cond, ...)                                                   \
    do {                                                                    \
        if (!(cond)) {                                                      \
            wfail(w->err, sizeof w->err, &w->erred, w->tid, __LINE__,       \
                  __VA_ARGS__);                                             \
            goto out;                                                       \
        }                                                                   \
    } while (0)
#define WOK(call)                                                           \
    do {                                                                    \
        int wok_rc_ = (call);                                               \
        WCHECK(wok_rc_ == 0, "%s returned %d: %s", #call, wok_rc_,          \
               faiss_get_last_error());                                     \
    } while (0)

/* Each of the B vectors x[j] is found at distance 0; with `ids`, as
 * ids[j]; labels go to lab. */
static int finds_itself(FaissIndex* ix, const float* x, const idx_t* ids,
                        idx_t* lab, char* why, size_t whysz) {
    float dist[B];
    int rc = faiss_Index_search(ix, B, x, 1, dist, lab);
    if (rc) {
        snprintf(why, whysz, "search returned %d: %s", rc,
                 faiss_get_last_error());
        return 0;
    }
    for (int j = 0; j < B; j++)
        if (dist[j] != 0.0f || lab[j] < 0 || (ids && lab[j] != ids[j])) {
            snprintf(why, whysz, "query %d: label %lld at %g, expected %lld "
                     "at 0", j, (long long)lab[j], (double)dist[j],
                     ids ? (long long)ids[j] : -2LL);
            return 0;
        }
    return 1;
}

static int has_name(char** names, size_t n, const char* name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return 1;
    return 0;
}

static void one_round(worker* w, int r) {
    FaissIndex *flat = NULL, *seq = NULL, *ivf = NULL, *own = NULL;
    char** names = NULL;
    size_t nnames = 0;
    char why[256];
    idx_t lab[B], ids[B];
    float* x = uniform(B, D, 1000u * (uint64_t)(w->tid + 1) + (uint64_t)r);
    for (int j = 0; j < B; j++)
        ids[j] = (idx_t)(w->tid + 1) * 1000000 + (idx_t)r * B + j;
    idx_t mine = (idx_t)(r + 1) * B; /* this thread's adds so far, each */
    const idx_t all = (idx_t)NT * NR * B;
    int old_tt = faissx_set_thread_timeout(CALL_MS - 1000 * (w->tid % 3));

    /* The Flat with ids, through a handle of this thread's own. */
    WOK(faissx_index_open(&flat, "mt-flat"));
    WOK(faiss_Index_add_with_ids(flat, B, x, ids));
    WCHECK(finds_itself(flat, x, ids, lab, why, sizeof why), "mt-flat: %s",
           why);
    idx_t nt = faiss_Index_ntotal(flat);
    WCHECK(nt >= mine && nt <= all, "mt-flat ntotal %lld (own adds %lld)",
           (long long)nt, (long long)mine);
    /* The same index through the handle every thread uses. */
    WCHECK(finds_itself(w->shared_flat, x, ids, lab, why, sizeof why),
           "shared mt-flat: %s", why);
    nt = faiss_Index_ntotal(w->shared_flat);
    WCHECK(nt >= mine && nt <= all, "shared mt-flat ntotal %lld",
           (long long)nt);
    WCHECK(faiss_Index_is_trained(w->shared_flat) == 1, "is_trained");

    /* The Flat without ids: positions are assigned by the server. */
    WOK(faissx_index_open(&seq, "mt-seq"));
    WOK(faiss_Index_add(seq, B, x));
    WCHECK(finds_itself(seq, x, NULL, lab, why, sizeof why), "mt-seq: %s",
           why);
    for (int j = 0; j < B; j++) {
        float back[D];
        WOK(faiss_Index_reconstruct(seq, lab[j], back));
        WCHECK(!memcmp(back, x + (size_t)j * D, sizeof back),
               "mt-seq: reconstruct(%lld) is not the vector added",
               (long long)lab[j]);
    }

    /* The IVF: nprobe is the server-side index's, so threads overwrite
     * each other's; every value they set scans all lists (exact). */
    WOK(faissx_index_open(&ivf, "mt-ivf"));
    FaissIndexIVF* iv = faiss_IndexIVF_cast(ivf);
    WCHECK(iv != NULL, "mt-ivf is not an IVF");
    faiss_IndexIVF_set_nprobe(iv, (size_t)(NLIST + w->tid % 3));
    size_t np = faiss_IndexIVF_nprobe(iv);
    WCHECK(np >= NLIST && np < NLIST + 3, "nprobe %zu", np);
    np = faiss_IndexIVF_nprobe(faiss_IndexIVF_cast(w->shared_ivf));
    WCHECK(np >= NLIST && np < NLIST + 3, "shared nprobe %zu", np);
    WOK(faiss_Index_add_with_ids(ivf, B, x, ids));
    WCHECK(finds_itself(ivf, x, ids, lab, why, sizeof why), "mt-ivf: %s",
           why);
    WCHECK(finds_itself(w->shared_ivf, x, ids, lab, why, sizeof why),
           "shared mt-ivf: %s", why);

    /* An unnamed index of its own: created, filled, checked, freed. */
    WOK(faiss_index_factory(&own, D, r % 2 ? "Flat" : "IDMap,Flat",
                            METRIC_L2));
    WCHECK(faissx_index_is_remote(own), "the index is not remote");
    if (r % 2)
        WOK(faiss_Index_add(own, B, x));
    else
        WOK(faiss_Index_add_with_ids(own, B, x, ids));
    WCHECK(faiss_Index_ntotal(own) == B, "own ntotal %lld",
           (long long)faiss_Index_ntotal(own));
    WCHECK(finds_itself(own, x, r % 2 ? NULL : ids, lab, why, sizeof why),
           "own index: %s", why);
    for (int j = 0; r % 2 && j < B; j++)
        WCHECK(lab[j] == j, "own index: query %d found %lld", j,
               (long long)lab[j]);

    WOK(faissx_index_list(&names, &nnames));
    WCHECK(has_name(names, nnames, "mt-flat") &&
                   has_name(names, nnames, "mt-seq") &&
                   has_name(names, nnames, "mt-ivf"),
           "list misses a named index (%zu names)", nnames);
    /* (An idle connection of the pool may be redialing after a late
     * heartbeat on a loaded machine; none fails.) */
    FaissxConnState st = faissx_connection_state();
    WCHECK(st == FAISSX_CONN_CONNECTED || st == FAISSX_CONN_CONNECTING,
           "state %d", (int)st);
    w->rounds++;
out:
    faissx_index_list_free(names, nnames);
    faiss_Index_free(own);
    faiss_Index_free(ivf);
    faiss_Index_free(seq);
    faiss_Index_free(flat);
    faissx_set_thread_timeout(old_tt);
    free(x);
}

static void* work(void* arg) {
    worker* w = arg;
    for (int r = 0; r < NR && !w->err[0]; r++) one_round(w, r);
    return NULL;
}

static int cmp_idx(const void* a, const void* b) {
    idx_t x = *(const idx_t*)a, y = *(const idx_t*)b;
    return x < y ? -1 : x > y;
}

static void threads_on(int pool) {
    server_start(NULL);
    configure(pool, CALL_MS, 50); /* heartbeat: every 50 ms when idle */
    faissx_set_connection_callback(on_state_a, NULL);

    FaissIndex *flat = NULL, *seq = NULL, *ivf = NULL;
    OK(faissx_index_create(&flat, "mt-flat", D, "IDMap,Flat", METRIC_L2));
    OK(faissx_index_create(&seq, "mt-seq", D, "Flat", METRIC_L2));
    OK(faissx_index_create(&ivf, "mt-ivf", D, "IVF4,Flat", METRIC_L2));
    float* xt = uniform(400, D, 7);
    OK(faiss_Index_train(ivf, 400, xt));
    free(xt);
    faiss_IndexIVF_set_nprobe(faiss_IndexIVF_cast(ivf), NLIST);

    fiddler f = {0};
    f.call_ms = CALL_MS;
    pthread_t ft, t[NT];
    worker w[NT];
    for (int i = 0; i < NT; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].tid = i;
        w[i].shared_flat = flat;
        w[i].shared_ivf = ivf;
    }
    start_threads(&f, &ft, t, work, w, sizeof w[0]);
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    sleep_ms(100); /* idle: heartbeats go out while the fiddler runs */
    stop_fiddler(&f, ft);

    for (int i = 0; i < NT; i++) {
        cr_assert(!w[i].err[0], "%s", w[i].err);
        cr_assert(w[i].rounds == NR, "thread %d: %d rounds", i, w[i].rounds);
    }
    cr_assert(f.rounds > 0, "the settings thread did not run");
    cr_assert(wait_state(FAISSX_CONN_CONNECTED, 10000), "state %d",
              (int)faissx_connection_state());

    /* Exactly the sum of all adds, in each index. */
    const idx_t all = (idx_t)NT * NR * B;
    cr_assert(faiss_Index_ntotal(flat) == all, "mt-flat ntotal %lld, not %lld",
              (long long)faiss_Index_ntotal(flat), (long long)all);
    cr_assert(faiss_Index_ntotal(seq) == all, "mt-seq ntotal %lld, not %lld",
              (long long)faiss_Index_ntotal(seq), (long long)all);
    cr_assert(faiss_Index_ntotal(ivf) == all, "mt-ivf ntotal %lld, not %lld",
              (long long)faiss_Index_ntotal(ivf), (long long)all);
    /* And the ids added, each once. */
    FaissIndex* down = NULL;
    OK(faissx_index_download(flat, &down));
    idx_t* map = NULL;
    size_t nmap = 0;
    faiss_IndexIDMap_id_map((FaissIndexIDMap*)down, &map, &nmap);
    cr_assert(nmap == (size_t)all, "id map of %zu", nmap);
    idx_t* got = malloc(nmap * sizeof *got);
    idx_t* want = malloc(nmap * sizeof *want);
    cr_assert(got && want, "out of memory");
    memcpy(got, map, nmap * sizeof *got);
    size_t k = 0;
    for (int i = 0; i < NT; i++)
        for (int r = 0; r < NR; r++)
            for (int j = 0; j < B; j++)
                want[k++] = (idx_t)(i + 1) * 1000000 + (idx_t)r * B + j;
    qsort(got, nmap, sizeof *got, cmp_idx);
    qsort(want, nmap, sizeof *want, cmp_idx);
    cr_assert(!memcmp(got, want, nmap * sizeof *got),
              "the id map is not the ids added, once each");
    free(got);
    free(want);
    faiss_Index_free(down);

    OK(faissx_index_drop("mt-flat"));
    OK(faissx_index_drop("mt-seq"));
    OK(faissx_index_drop("mt-ivf"));
    faiss_Index_free(flat);
    faiss_Index_free(seq);
    faiss_Index_free(ivf);
    OK(faissx_configure(NULL, NULL, 0));
    server_stop();
}

/* ------------------------------------------------------------------------
 * reconnect
 * ------------------------------------------------------------------------ */

/* RC_MS: every call's deadline. 2 s was too short under ASan on a loaded
 * machine (eight threads, one connection): calls timed out with the
 * server up and a thread made 1 of its 3 iterations after the restart. */
enum { RC_MS = 5000, RC_SLACK_MS = 2500, RNB = 100, RB = 8 };

typedef struct {
    int tid;
    atomic_int* phase; /* 0 up, 1 down, 2 back, 3 stop */
    const float* xb;   /* the contents of "rc" */
    atomic_int ok[3], fail[3]; /* iterations by phase; main polls ok */
    atomic_int erred;  /* err is set */
    int bad_code;      /* an error code other than the allowed ones */
    uint64_t worst_ms;
    const char* worst_call;
    uint64_t last_end, worst_gap; /* the longest time between two calls */
    char err[1024];    /* a wrong result from a call that succeeded */
} rworker;

static int allowed(int rc) {
    return rc == FAISSX_E_TIMEOUT || rc == FAISSX_E_NET ||
           rc == FAISSX_E_NOT_FOUND;
}

/* Times a call (an API call that returns nothing or a value, not a
 * code, is timed the same way: it makes a round trip too). */
static void timed(rworker* w, uint64_t t0, const char* what) {
    if (w->last_end && t0 - w->last_end > w->worst_gap)
        w->worst_gap = t0 - w->last_end;
    w->last_end = mono_ms();
    if (w->last_end - t0 > w->worst_ms) {
        w->worst_ms = w->last_end - t0;
        w->worst_call = what;
    }
}
#define RTIMED(stmt)                                                        \
    do {                                                                    \
        uint64_t rt0_ = mono_ms();                                          \
        stmt;                                                               \
        timed(w, rt0_, #stmt);                                              \
    } while (0)

/* Runs one call, timing it; a failure leaves the iteration. */
#define RCALL(call)                                                         \
    do {                                                                    \
        int rrc_;                                                           \
        RTIMED(rrc_ = (call));                                              \
        if (rrc_ != 0) {                                                    \
            if (!allowed(rrc_) && !w->bad_code) {                           \
                w->bad_code = rrc_;                                         \
                snprintf(w->err, sizeof w->err, "%s returned %d: %s",       \
                         #call, rrc_, faiss_get_last_error());              \
                atomic_store(&w->erred, 1);                                 \
            }                                                               \
            rc = rrc_;                                                      \
            goto out;                                                       \
        }                                                                   \
    } while (0)
#define RCHECK(cond, ...)                                                   \
    do {                                                                    \
        if (!(cond)) {                                                      \
            if (!w->err[0]) {                                               \
                int rn_ = snprintf(w->err, sizeof w->err,                   \
                                   "thread %d, line %d: ", w->tid,          \
                                   __LINE__);                               \
                snprintf(w->err + rn_, sizeof w->err - (size_t)rn_,         \
                         __VA_ARGS__);                                      \
                atomic_store(&w->erred, 1);                                 \
            }                                                               \
            rc = -1000;                                                     \
            goto out;                                                       \
        }                                                                   \
    } while (0)

static int reconnect_iteration(rworker* w, int it) {
    int rc = 0;
    FaissIndex *shared = NULL, *own = NULL;
    float dist[RB];
    idx_t lab[RB];
    int q0 = (w->tid * 7 + it * 3) % (RNB - RB);
    float* x = uniform(RB * 10, D, 5000u + (uint64_t)w->tid);

    RCALL(faissx_index_open(&shared, "rc"));
    RCALL(faiss_Index_search(shared, RB, w->xb + (size_t)q0 * D, 1, dist,
                             lab));
    for (int j = 0; j < RB; j++)
        RCHECK(lab[j] == q0 + j && dist[j] == 0.0f,
               "rc: query %d found %lld at %g", q0 + j, (long long)lab[j],
               (double)dist[j]);
    RCALL(faiss_index_factory(&own, D, "IVF2,Flat", METRIC_L2));
    RCALL(faiss_Index_train(own, RB * 10, x)); /* 40 per list */
    RCALL(faiss_Index_add(own, RB, x));
    /* A setter and a getter: no return code, but a round trip each (a
     * failed one records its error and keeps the cached value). */
    RTIMED(faiss_IndexIVF_set_nprobe(faiss_IndexIVF_cast(own), 2));
    idx_t nt;
    RTIMED(nt = faiss_Index_ntotal(own));
    RCHECK(nt == RB, "own ntotal %lld", (long long)nt);
    RCALL(faiss_Index_search(own, RB, x, 1, dist, lab));
    for (int j = 0; j < RB; j++)
        RCHECK(lab[j] == j && dist[j] == 0.0f,
               "own: query %d found %lld at %g", j, (long long)lab[j],
               (double)dist[j]);
out:
    free(x);
    RTIMED(faiss_Index_free(own)); /* unnamed: released if connected */
    RTIMED(faiss_Index_free(shared));
    return rc;
}

static void* reconnect_work(void* arg) {
    rworker* w = arg;
    int ph, it = 0;
    while ((ph = atomic_load(w->phase)) != 3) {
        int rc = reconnect_iteration(w, it++);
        /* A failure counts for the phase it ended in (a call made before
         * the kill fails after it); a success only when all of it ran in
         * one phase. */
        int end = atomic_load(w->phase);
        if (end == 3) break;
        if (rc == 0) {
            if (end == ph) atomic_fetch_add(&w->ok[ph], 1);
        } else {
            atomic_fetch_add(&w->fail[end], 1);
            sleep_ms(10);
        }
        if (rc == -1000) break; /* a wrong result: reported */
    }
    return NULL;
}

static void upload_rc(FaissIndex* loc) {
    FaissIndex* up = NULL;
    uint64_t t0 = mono_ms();
    int rc;
    while ((rc = faissx_index_upload(loc, "rc", &up)) != 0 &&
           mono_ms() - t0 < 15000)
        sleep_ms(50);
    cr_assert(rc == 0, "cannot upload rc: %s", faiss_get_last_error());
    faiss_Index_free(up);
}

static void reconnect(void) {
    server_start(NULL);
    float* xb = uniform(RNB, D, 99);
    /* A local copy of "rc", made before the client is configured (local
     * indexes are made while no server is configured). */
    FaissIndex* loc = NULL;
    OK(faiss_index_factory(&loc, D, "Flat", METRIC_L2));
    OK(faiss_Index_add(loc, RNB, xb));
    cr_assert(!faissx_index_is_remote(loc), "the copy is remote");
    configure(1, RC_MS, 100);
    faissx_set_connection_callback(on_state_a, NULL);
    cr_assert(faissx_connection_state() == FAISSX_CONN_CONNECTED, "state %d",
              (int)faissx_connection_state());
    upload_rc(loc);

    atomic_int phase;
    atomic_init(&phase, 0);
    fiddler f = {0};
    f.call_ms = RC_MS;
    pthread_t ft, t[NT];
    rworker w[NT];
    for (int i = 0; i < NT; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].tid = i;
        w[i].phase = &phase;
        w[i].xb = xb;
    }
    start_threads(&f, &ft, t, reconnect_work, w, sizeof w[0]);
    /* Up until every thread has done some work. */
    uint64_t t0 = mono_ms();
    for (int i = 0; i < NT; i++)
        while (!atomic_load(&w[i].ok[0]) && !atomic_load(&w[i].erred) &&
               mono_ms() - t0 < 30000)
            sleep_ms(20);
    server_kill();
    atomic_store(&phase, 1);
    cr_assert(wait_state(FAISSX_CONN_CONNECTING, 5000) ||
                      faissx_connection_state() == FAISSX_CONN_FAILED,
              "state %d after the kill", (int)faissx_connection_state());
    sleep_ms(RC_MS + 500); /* every thread's calls fail for a while */
    server_restart();
    atomic_store(&phase, 2);
    upload_rc(loc); /* an in-memory server: the test makes rc again */
    t0 = mono_ms();
    for (int i = 0; i < NT; i++)
        while (atomic_load(&w[i].ok[2]) < 3 && !atomic_load(&w[i].erred) &&
               mono_ms() - t0 < 60000)
            sleep_ms(20);
    atomic_store(&phase, 3);
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    stop_fiddler(&f, ft);

    int failed_down = 0;
    for (int i = 0; i < NT; i++) {
        fprintf(stderr, "thread %d: ok %d/%d/%d, failed %d/%d/%d, slowest "
                "call %llu ms (%s), longest gap between calls %llu ms\n", i, atomic_load(&w[i].ok[0]),
                atomic_load(&w[i].ok[1]), atomic_load(&w[i].ok[2]),
                atomic_load(&w[i].fail[0]), atomic_load(&w[i].fail[1]),
                atomic_load(&w[i].fail[2]),
                (unsigned long long)w[i].worst_ms,
                w[i].worst_call ? w[i].worst_call : "-",
                (unsigned long long)w[i].worst_gap);
        cr_assert(!w[i].err[0], "%s", w[i].err);
        cr_assert(atomic_load(&w[i].ok[0]) > 0,
                  "thread %d: no work before the kill", i);
        /* No call may succeed while the server is down. */
        cr_assert(atomic_load(&w[i].ok[1]) == 0,
                  "thread %d: %d iterations succeeded with the server down",
                  i, atomic_load(&w[i].ok[1]));
        /* (A call made just before the restart may end after it.) A given
         * thread need not see a failure: it can spend the whole outage in
         * faiss_Index_free (no return code; its release waits out the
         * deadline when the kill came after the free began) and then in a
         * call that outlives the restart and succeeds. Together they must. */
        failed_down += atomic_load(&w[i].fail[1]) + atomic_load(&w[i].fail[2]);
        cr_assert(atomic_load(&w[i].ok[2]) >= 3,
                  "thread %d: %d iterations after the restart", i,
                  atomic_load(&w[i].ok[2]));
        cr_assert(w[i].worst_ms <= RC_MS + RC_SLACK_MS,
                  "thread %d: %s took %llu ms (deadline %d ms)", i,
                  w[i].worst_call, (unsigned long long)w[i].worst_ms, RC_MS);
    }
    cr_assert(failed_down > 0, "no call failed while the server was down");
    cr_assert(faissx_connection_state() == FAISSX_CONN_CONNECTED, "state %d",
              (int)faissx_connection_state());
    cr_assert(atomic_load(&seen_state[FAISSX_CONN_CONNECTING]) +
                      atomic_load(&seen_state[FAISSX_CONN_FAILED]) > 0,
              "the callback saw no disconnection");
    cr_assert(atomic_load(&seen_state[FAISSX_CONN_CONNECTED]) > 0,
              "the callback saw no reconnection");
    faiss_Index_free(loc);
    free(xb);
    OK(faissx_configure(NULL, NULL, 0));
    server_stop();
}

/* ------------------------------------------------------------------------
 * reconfigure
 * ------------------------------------------------------------------------ */

/* "rcf" holds the first CF_N[s] vectors of cf_xb on server s (0: srv,
 * 1: srv2); CF_NONE: remote mode disabled. */
enum { CF_ROUNDS = 36, CF_NONE = 2, CF_QB = 5, CF_SLOW_MS = 10000 };
static const int CF_N[2] = {40, 60};

/* Odd while the main thread switches, even (with its target) between. */
static atomic_int cf_gen;
static atomic_int cf_target[2 * CF_ROUNDS + 1]; /* by even generation */

typedef struct {
    int tid;
    atomic_int* stop;
    const float* xb;
    FaissIndex* held;     /* a named handle kept across switches */
    FaissIndex* held_own; /* an unnamed one, likewise */
    atomic_int done_gen;  /* an iteration started and checked at it */
    atomic_int erred;
    int seen[3];          /* checked iterations by target */
    uint64_t worst_free_ms;
    char err[1024];
} cworker;

/* Rows q0.. of xb are found in ix at distance 0, as themselves. */
static int cf_finds(FaissIndex* ix, const float* xb, int q0, char* why,
                    size_t whysz) {
    float dist[CF_QB];
    idx_t lab[CF_QB];
    int rc = faiss_Index_search(ix, CF_QB, xb + (size_t)q0 * D, 1, dist, lab);
    if (rc) {
        snprintf(why, whysz, "search returned %d: %s", rc,
                 faiss_get_last_error());
        return 0;
    }
    for (int j = 0; j < CF_QB; j++)
        if (lab[j] != q0 + j || dist[j] != 0.0f) {
            snprintf(why, whysz, "query %d found %lld at %g", q0 + j,
                     (long long)lab[j], (double)dist[j]);
            return 0;
        }
    return 1;
}

/* Frees ix, timing it: the last handle of a connection closes it. */
static void cf_free(cworker* w, FaissIndex* ix) {
    uint64_t t0 = mono_ms();
    faiss_Index_free(ix);
    if (mono_ms() - t0 > w->worst_free_ms) w->worst_free_ms = mono_ms() - t0;
}

static void cf_iteration(cworker* w, int it) {
    FaissIndex *ix = NULL, *own = NULL;
    char why[256];
    int g = atomic_load(&cf_gen), tgt = atomic_load(&cf_target[g]);
    int q0 = (w->tid * 5 + it * 3) % (CF_N[0] - CF_QB);
    int rc = 0;

    /* Handles made under an earlier configuration still work: they keep
     * their connection. */
    if (w->held) {
        WCHECK(cf_finds(w->held, w->xb, q0, why, sizeof why), "held: %s",
               why);
        idx_t nt = faiss_Index_ntotal(w->held);
        WCHECK(nt == CF_N[0] || nt == CF_N[1], "held ntotal %lld",
               (long long)nt);
    }
    if (w->held_own)
        WCHECK(cf_finds(w->held_own, w->xb, q0, why, sizeof why),
               "held unnamed: %s", why);

    rc = faissx_index_open(&ix, "rcf");
    /* No switch ran since it began. */
    int same = g % 2 == 0 && atomic_load(&cf_gen) == g;
    if (rc != 0) {
        const char* m = faiss_get_last_error();
        WCHECK(m && strstr(m, "no server configured"),
               "open returned %d: %s", rc, m ? m : "(null)");
        WCHECK(tgt == CF_NONE || !same,
               "open failed with server %d configured: %s", tgt, m);
        /* Unnamed indexes are local meanwhile. */
        WOK(faiss_index_factory(&own, D, "Flat", METRIC_L2));
        WOK(faiss_Index_add(own, CF_N[0], w->xb));
        WCHECK(cf_finds(own, w->xb, q0, why, sizeof why), "own: %s", why);
        same = same && atomic_load(&cf_gen) == g;
        WCHECK(!same || !faissx_index_is_remote(own),
               "an index made with no server configured is remote");
    } else {
        idx_t nt = faiss_Index_ntotal(ix);
        WCHECK(cf_finds(ix, w->xb, q0, why, sizeof why), "rcf: %s", why);
        WCHECK(nt == CF_N[0] || nt == CF_N[1], "rcf ntotal %lld",
               (long long)nt);
        WCHECK(!same || tgt != CF_NONE,
               "opened a remote index with no server configured");
        WCHECK(!same || nt == CF_N[tgt],
               "rcf has %lld vectors: not from server %d, configured "
               "before the open", (long long)nt, tgt);
        if (w->tid % 2) { /* keep it, and an unnamed index, for later */
            if (w->held) cf_free(w, w->held);
            w->held = ix;
            ix = NULL;
            if (it % 3 == 0) {
                WOK(faiss_index_factory(&own, D, "Flat", METRIC_L2));
                WOK(faiss_Index_add(own, CF_N[0], w->xb));
                if (w->held_own) cf_free(w, w->held_own);
                w->held_own = own;
                own = NULL;
            }
        }
    }
    if (same) {
        w->seen[tgt]++;
        atomic_store(&w->done_gen, g);
    }
out:
    if (own) cf_free(w, own);
    if (ix) cf_free(w, ix);
    if (rc != 0) sleep_ms(1); /* local mode: leave the others the CPU */
}

static void* cf_work(void* arg) {
    cworker* w = arg;
    for (int it = 0; !atomic_load(w->stop) && !w->err[0]; it++)
        cf_iteration(w, it);
    if (w->held) cf_free(w, w->held);
    if (w->held_own) cf_free(w, w->held_own);
    return NULL;
}

static void cf_configure(const fxt_server* s, int pool, int heartbeat_ms) {
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    o.url = s->url;
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++) o.timeout_ms[i] = 30000;
    o.pool_size = pool;
    o.heartbeat_ms = heartbeat_ms;
    o.backoff_base_ms = 20;
    o.backoff_cap_ms = 200;
    OK(faissx_configure_ex(&o));
}

static void reconfigure(void) {
    float* xb = uniform((size_t)CF_N[1], D, 77);
    server_start(NULL);
    fxt_server_start(&srv2, NULL);
    atomic_store(&server2_pid, srv2.pid);
    const fxt_server* servers[2] = {&srv, &srv2};
    FaissIndex* loc[2]; /* made while no server is configured: local */
    for (int s = 0; s < 2; s++) {
        OK(faiss_index_factory(&loc[s], D, "Flat", METRIC_L2));
        OK(faiss_Index_add(loc[s], CF_N[s], xb));
    }
    for (int s = 0; s < 2; s++) { /* "rcf" on each, of its size */
        FaissIndex* up = NULL;
        cf_configure(servers[s], 1, 0);
        OK(faissx_index_upload(loc[s], "rcf", &up));
        faiss_Index_free(up);
        faiss_Index_free(loc[s]);
    }
    atomic_store(&cf_target[0], 1); /* srv2 is configured */
    atomic_store(&cf_gen, 0);
    faissx_set_connection_callback(on_state_a, NULL);

    atomic_int stop;
    atomic_init(&stop, 0);
    fiddler f = {0};
    f.call_ms = 30000;
    pthread_t ft, t[NT];
    cworker w[NT];
    for (int i = 0; i < NT; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].tid = i;
        w[i].stop = &stop;
        w[i].xb = xb;
        atomic_init(&w[i].done_gen, -1);
    }
    start_threads(&f, &ft, t, cf_work, w, sizeof w[0]);
    uint64_t worst_switch = 0;
    for (int r = 0; r < CF_ROUNDS; r++) {
        int g = atomic_load(&cf_gen);
        /* Waits for an iteration of every thread that saw generation g. */
        uint64_t t0 = mono_ms();
        for (int i = 0; i < NT; i++)
            while (atomic_load(&w[i].done_gen) < g &&
                   !atomic_load(&w[i].erred)) {
                cr_assert(mono_ms() - t0 < 60000,
                          "thread %d did no work in generation %d", i, g);
                sleep_ms(5);
            }
        for (int i = 0; i < NT; i++) cr_assert(!w[i].err[0], "%s", w[i].err);
        /* A, B, none, B, A, none, ...: every transition. */
        int tgt = r % 3 == 2 ? CF_NONE : r % 2;
        atomic_store(&cf_gen, g + 1);
        t0 = mono_ms();
        if (tgt == CF_NONE)
            faissx_remote_disable();
        else
            cf_configure(servers[tgt], 1 + r % 3, r % 2 ? 30 : 0);
        uint64_t took = mono_ms() - t0;
        if (took > worst_switch) worst_switch = took;
        atomic_store(&cf_target[g + 2], tgt);
        atomic_store(&cf_gen, g + 2);
        /* This thread's next open goes to the new configuration. */
        FaissIndex* ix = NULL;
        int rc = faissx_index_open(&ix, "rcf");
        if (tgt == CF_NONE) {
            cr_assert(rc != 0, "opened rcf with no server configured");
            cr_assert(strstr(faiss_get_last_error(), "no server configured"),
                      "%s", faiss_get_last_error());
        } else {
            cr_assert(rc == 0, "open: %s", faiss_get_last_error());
            cr_assert(faiss_Index_ntotal(ix) == CF_N[tgt],
                      "round %d: rcf has %lld vectors, not server %d's %d", r,
                      (long long)faiss_Index_ntotal(ix), tgt, CF_N[tgt]);
            faiss_Index_free(ix);
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    stop_fiddler(&f, ft);
    for (int i = 0; i < NT; i++) {
        fprintf(stderr, "thread %d: %d/%d/%d checked iterations (server 1/"
                "server 2/none), slowest free %llu ms\n", i, w[i].seen[0],
                w[i].seen[1], w[i].seen[CF_NONE],
                (unsigned long long)w[i].worst_free_ms);
        cr_assert(!w[i].err[0], "%s", w[i].err);
        cr_assert(w[i].seen[0] > 0 && w[i].seen[1] > 0 &&
                          w[i].seen[CF_NONE] > 0,
                  "thread %d missed a configuration", i);
        /* A close that hung in NNG would have stopped the free for good;
         * a bounded one returns within about 2.5 s. */
        cr_assert(w[i].worst_free_ms < CF_SLOW_MS,
                  "thread %d: a free took %llu ms", i,
                  (unsigned long long)w[i].worst_free_ms);
    }
    fprintf(stderr, "slowest switch: %llu ms\n",
            (unsigned long long)worst_switch);
    cr_assert(worst_switch < CF_SLOW_MS, "a switch took %llu ms",
              (unsigned long long)worst_switch);
    OK(faissx_configure(NULL, NULL, 0));
    free(xb);
    atomic_store(&server2_pid, 0);
    stop_checked(&srv2);
    server_stop();
}

int main(int argc, char** argv) {
    const char* what = argc == 2 ? argv[1] : "";
    int secs = 0;
    const char* wd = getenv("FXT_MT_WATCHDOG_S");
    if (wd && *wd) secs = atoi(wd);
    signal(SIGALRM, on_alarm);
    alarm(secs > 0 ? (unsigned)secs : 300);
    /* The server must not be a client; nor this process, until configured. */
    unsetenv("FAISSX_SERVER");
    if (!strcmp(what, "shared"))
        threads_on(1);
    else if (!strcmp(what, "pool"))
        threads_on(4);
    else if (!strcmp(what, "reconnect"))
        reconnect();
    else if (!strcmp(what, "reconfigure"))
        reconfigure();
    else {
        fprintf(stderr, "usage: test_mt_client "
                "shared|pool|reconnect|reconfigure\n");
        return 2;
    }
    alarm(0);
    rm_tmp();
    printf("test_mt_client %s: passed\n", what);
    return 0;
}
