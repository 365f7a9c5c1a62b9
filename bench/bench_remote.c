/* bench_remote.c -- a faissx-server on loopback against the same index in
 * this process, as ratios measured in one run (docs/benchmarks.md,
 * "Remote vs local").
 *
 * The program starts its own faissx-server (--server PATH, else
 * $FAISSX_SERVER_BIN, else ../faissx-server next to this program) listening
 * on a free 127.0.0.1 port and on a Unix socket in /tmp (ipc://), with
 * --threads 1 --workers 2, and measures on clustered data (a mixture of
 * Gaussians), over each transport of --transports (tcp,ipc) in turn:
 *
 *   1. batch search (nq queries, k) on Flat over nb vectors;
 *   2. add throughput (nb vectors in batches): the remote row streams
 *      through the server's shared-memory socket (--shm-socket, started
 *      with it), a second row is the same add with FAISSX_SHM=0 (ordinary
 *      ADD messages); and a binary add (IndexBinaryFlat, 256-bit codes,
 *      the same bytes) locally, through shared memory and with
 *      FAISSX_SHM=0;
 *      the float rows next to their ceiling: the same request and reply bytes
 *      through raw NNG round trips to an echo thread of this program
 *      (nothing computed), reported as local / (local + raw);
 *   3. single-query latency on Flat nb, HNSW<M> over hnsw-nb vectors at
 *      efSearch ef and a Flat of tiny-nb vectors (the call's own cost,
 *      without a search whose jitter hides it), each query a triple
 *      measured back to back: local, remote, and
 *   4. the floor: a raw NNG req/rep round trip carrying the same bytes as
 *      one single-query search (request and reply sizes of the faissx
 *      protocol) to an echo thread of this program, over the same
 *      transport; the excess (remote - local) is taken per triple and its
 *      median compared with the raw round trip's;
 *   5. total queries/s of 1, 4, 16 (--clients) threads doing single-query
 *      searches on one shared index handle, hence one shared connection;
 *   6. the client cache (faissx_cache_*), first transport only: per query,
 *      a remote search with the cache off, the same search with the cache
 *      on and empty (a miss: the round trip plus storing), and again (a
 *      hit).
 *
 * Every measurement alternates the sides (who goes first changes every
 * round, and every single query), takes medians over rounds,
 * and compares remote and local labels and distances byte for byte; any
 * difference makes the exit status 1.
 *
 * Threads: the program calls omp_set_num_threads(--threads, default 1) in
 * every thread that searches and openblas_set_num_threads(--threads), and
 * gives the server the same --threads, so both sides compute alike. */
#define _GNU_SOURCE

#include "bench_util.h"
#include <faissx/faissx.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include <omp.h>

/* The library's count of adds that went through shared memory
 * (net/shm.h; internal, linked statically). */
uint64_t fx_shm_streams(void);

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* OpenBLAS's own entry point (its cblas.h pulls in more than this). */
extern void openblas_set_num_threads(int num_threads);

/* ADDMSG: the remote add with shared memory off (FAISSX_SHM=0), i.e. the
 * ordinary ADD messages, next to REMOTE's stream add. */
enum { LOCAL = 0, REMOTE = 1, RAW = 2, RAW_PAR = 3, COPY = 4, ADDMSG = 5 };

enum { MAX_ROUNDS = 64, MAX_CLIENTS = 8, MAX_TRANSPORTS = 2 };

/* The transports the server listens on: loopback TCP and a Unix-domain
 * socket (NNG's ipc://). */
enum { T_TCP = 0, T_IPC = 1 };
static const char* const transport_names[MAX_TRANSPORTS] = {"tcp", "ipc"};

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

typedef struct {
    const char* server;
    int d;
    int64_t nb;           /* Flat base, added in batches */
    int64_t add_batch;
    int64_t nq;           /* batch queries (and the query pool) */
    int64_t k;
    int64_t nsingle;      /* Flat single queries per round */
    int64_t hnsw_nb;
    int hnsw_m;
    int ef;
    int64_t hnsw_nsingle; /* HNSW single queries per round */
    int64_t tiny_nb;      /* a Flat this small: the call's own cost */
    int64_t scale_hnsw;   /* queries per scaling run, HNSW */
    int64_t scale_flat;   /* queries per scaling run, Flat */
    int clients[MAX_CLIENTS];
    int nclients;
    int transports[MAX_TRANSPORTS];
    int ntransports;
    int ncentres;
    double sigma;
    int rounds;
    int warmup;
    int threads;
    unsigned long long seed;
    int add_only;         /* only the add/batch search section */
    int block;           /* single queries per side in a row (--block) */
    int boot;            /* bootstrap resamples for the latency intervals */
    const char* triples; /* --triples FILE: every single-query triple */
} options;

static void usage(FILE* f, const char* prog) {
    fprintf(f,
            "usage: %s [options]\n"
            "  --quick            smoke-run sizes (a few seconds)\n"
            "  --add-only         only the Flat add and batch search section\n"
            "                     (A/B runs of the add; no latency/scaling)\n"
            "  --server PATH      faissx-server binary (else $FAISSX_SERVER_BIN,\n"
            "                     else ../faissx-server beside this program)\n"
            "  --d N              dimension (128)\n"
            "  --nb N             Flat base size (100000)\n"
            "  --add-batch N      vectors per add call (10000)\n"
            "  --nq N             batch queries, also the query pool (1000)\n"
            "  --k N              neighbours (10)\n"
            "  --nsingle N        Flat single queries per round (300)\n"
            "  --hnsw-nb N        HNSW base size (20000)\n"
            "  --hnsw-m N         HNSW M (32)\n"
            "  --ef N             HNSW efSearch (64)\n"
            "  --hnsw-nsingle N   HNSW single queries per round (1000)\n"
            "  --tiny-nb N        a Flat of N vectors, searched like HNSW, so\n"
            "                     the search itself costs next to nothing (10)\n"
            "  --scale-hnsw N     queries per concurrency run, HNSW (4000)\n"
            "  --scale-flat N     queries per concurrency run, Flat (200)\n"
            "  --clients LIST     concurrent client threads (1,4,16)\n"
            "  --transports LIST  tcp, ipc or both (tcp,ipc): every measurement\n"
            "                     runs over each, next to its own raw NNG ceiling\n"
            "  --centres N        data clusters (1000)\n"
            "  --sigma X          cluster std-dev; centres are N(0,1) (0.25)\n"
            "  --rounds N         measured rounds (5)\n"
            "  --warmup N         unmeasured rounds first (1)\n"
            "  --threads N        OpenMP/OpenBLAS threads, local and server (1)\n"
            "  --seed N           data seed (1234)\n"
            "  --block N          single queries per side in a row (1: one\n"
            "                     triple per query; N > 1: after one untimed)\n"
            "  --bootstrap N      resamples for the latency intervals (1000)\n"
            "  --triples FILE     write every single-query triple (row, via,\n"
            "                     round, query, order, local, remote, raw us)\n",
            prog);
}

static int parse_clients(const char* s, options* o) {
    o->nclients = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char* tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        long long v;
        if (o->nclients == MAX_CLIENTS || bench_parse_ll(tok, 1, &v) || v > 256)
            return -1;
        o->clients[o->nclients++] = (int)v;
    }
    return o->nclients ? 0 : -1;
}

static int parse_transports(const char* s, options* o) {
    o->ntransports = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    for (char* tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int t = -1;
        for (int i = 0; i < MAX_TRANSPORTS; i++)
            if (strcmp(tok, transport_names[i]) == 0) t = i;
        for (int i = 0; i < o->ntransports; i++)
            if (o->transports[i] == t) t = -1;
        if (t < 0 || o->ntransports == MAX_TRANSPORTS) return -1;
        o->transports[o->ntransports++] = t;
    }
    return o->ntransports ? 0 : -1;
}

static int parse_args(int argc, char** argv, options* o) {
    *o = (options){
            .d = 128, .nb = 100000, .add_batch = 10000, .nq = 1000, .k = 10,
            .nsingle = 300, .hnsw_nb = 20000, .hnsw_m = 32, .ef = 64,
            .hnsw_nsingle = 1000, .tiny_nb = 10, .scale_hnsw = 4000,
            .scale_flat = 200,
            .clients = {1, 4, 16}, .nclients = 3, .ncentres = 1000,
            .transports = {T_TCP, T_IPC}, .ntransports = 2,
            .sigma = 0.25, .rounds = 5, .warmup = 1, .threads = 1,
            .seed = 1234, .block = 1, .boot = 1000,
    };
    /* --quick first, so explicit sizes after it still apply. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            o->nb = 5000;
            o->add_batch = 1000;
            o->nq = 100;
            o->nsingle = 50;
            o->hnsw_nb = 2000;
            o->hnsw_nsingle = 100;
            o->scale_hnsw = 200;
            o->scale_flat = 50;
            o->ncentres = 100;
            o->rounds = 2;
            o->warmup = 0;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (strcmp(a, "--quick") == 0) continue;
        if (strcmp(a, "--add-only") == 0) {
            o->add_only = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout, argv[0]);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: unknown option or missing value: %s\n",
                    argv[0], a);
            return -1;
        }
        const char* v = argv[++i];
        long long n = 0;
        int bad = 0;
#define INTOPT(flag, field, lo)                                                \
    else if (strcmp(a, flag) == 0) {                                           \
        bad = bench_parse_ll(v, lo, &n);                                             \
        o->field = n;                                                          \
    }
        if (strcmp(a, "--server") == 0) {
            o->server = v;
        } else if (strcmp(a, "--triples") == 0) {
            o->triples = v;
        }
        INTOPT("--d", d, 1)
        INTOPT("--nb", nb, 1)
        INTOPT("--add-batch", add_batch, 1)
        INTOPT("--nq", nq, 1)
        INTOPT("--k", k, 1)
        INTOPT("--nsingle", nsingle, 1)
        INTOPT("--hnsw-nb", hnsw_nb, 1)
        INTOPT("--hnsw-m", hnsw_m, 2)
        INTOPT("--ef", ef, 1)
        INTOPT("--hnsw-nsingle", hnsw_nsingle, 1)
        INTOPT("--tiny-nb", tiny_nb, 1)
        INTOPT("--scale-hnsw", scale_hnsw, 1)
        INTOPT("--scale-flat", scale_flat, 1)
        INTOPT("--centres", ncentres, 1)
        INTOPT("--rounds", rounds, 1)
        INTOPT("--warmup", warmup, 0)
        INTOPT("--threads", threads, 1)
        INTOPT("--seed", seed, 0)
        INTOPT("--block", block, 1)
        INTOPT("--bootstrap", boot, 1)
        else if (strcmp(a, "--clients") == 0) {
            bad = parse_clients(v, o);
        } else if (strcmp(a, "--transports") == 0) {
            bad = parse_transports(v, o);
        } else if (strcmp(a, "--sigma") == 0) {
            char* end;
            o->sigma = strtod(v, &end);
            bad = *v == '\0' || *end != '\0' || !(o->sigma >= 0);
        } else {
            fprintf(stderr, "%s: unknown option %s\n", argv[0], a);
            return -1;
        }
#undef INTOPT
        if (bad) {
            fprintf(stderr, "%s: bad value for %s: %s\n", argv[0], a, v);
            return -1;
        }
    }
    if (o->rounds > MAX_ROUNDS) {
        fprintf(stderr, "%s: at most %d rounds\n", argv[0], MAX_ROUNDS);
        return -1;
    }
    if (o->add_batch > o->nb) o->add_batch = o->nb;
    if (o->tiny_nb > o->nb) o->tiny_nb = o->nb;
    return 0;
}

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static void* xmalloc(size_t bytes) {
    void* p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "bench_remote: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static pid_t server_pid;
static char server_log[128];

static void stop_server(void);

/* A failed call ends the run: the numbers would mean nothing. */
static void die(const char* what) {
    const char* e = faiss_get_last_error();
    fprintf(stderr, "bench_remote: %s failed: %s\n", what,
            e ? e : "(no message)");
    stop_server();
    exit(2);
}

#define MUST(call)                                                             \
    do {                                                                       \
        if ((call) != 0) die(#call);                                           \
    } while (0)

/* Sorts t in place; nearest-rank percentile p in (0, 1]. */
static double percentile(double* t, size_t n, double p) {
    qsort(t, n, sizeof *t, bench_cmp_double);
    size_t r = (size_t)ceil(p * (double)n);
    return t[r ? r - 1 : 0];
}

/* Who runs at position pos of a two-sided turn t. */
static int side2(int t, int pos) {
    return t % 2 == 0 ? pos : 1 - pos;
}

static int mismatches;

/* 1 if the two sides' results are the same bytes (counted otherwise). */
static int same(const float* D0, const int64_t* I0, const float* D1,
                const int64_t* I1, size_t nk) {
    int ok = memcmp(I0, I1, nk * sizeof *I0) == 0 &&
             memcmp(D0, D1, nk * sizeof *D0) == 0;
    if (!ok) mismatches++;
    return ok;
}

static const char* yes_no(int identical) {
    return identical ? "yes" : "NO";
}

/* ------------------------------------------------------------------------
 * Data: centres N(0,1) per component, points centre + sigma * N(0,1),
 * deterministic from the seed (xorshift-multiply generator, Box-Muller).
 * ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t* s) {
    uint64_t x = (*s += 0x9E3779B97F4A7C15ULL);
    x = (x ^ (x >> 31)) * 0xD6E8FEB86659FD93ULL;
    x = (x ^ (x >> 29)) * 0xC2B2AE3D27D4EB4FULL;
    return x ^ (x >> 32);
}

static double rng_unit(uint64_t* s) { /* in (0, 1) */
    return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(uint64_t* s) {
    double u = rng_unit(s), v = rng_unit(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static float* make_points(const options* o, const float* centres, int64_t n,
                          uint64_t stream) {
    uint64_t s = o->seed * 0x100000001B3ULL + stream * 0x51ED27ULL;
    float* x = xmalloc(sizeof(float) * (size_t)n * (size_t)o->d);
    for (int64_t i = 0; i < n; i++) {
        const float* c =
                centres + (size_t)(rng_next(&s) % (uint64_t)o->ncentres) * o->d;
        for (int j = 0; j < o->d; j++)
            x[(size_t)i * o->d + j] =
                    c[j] + (float)(o->sigma * rng_normal(&s));
    }
    return x;
}

/* ------------------------------------------------------------------------
 * The server: a child process on a free loopback port
 * ------------------------------------------------------------------------ */

static void print_server_log(void) {
    FILE* f = fopen(server_log, "r");
    if (!f) return;
    char buf[4096];
    size_t n;
    fprintf(stderr, "--- server log %s ---\n", server_log);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stderr);
    fclose(f);
}

/* The server binary: the option, the variable, or ../faissx-server. */
static const char* server_binary(const options* o, const char* argv0) {
    static char guess[4096];
    if (o->server) return o->server;
    const char* env = getenv("FAISSX_SERVER_BIN");
    if (env && *env) return env;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", argv0);
    snprintf(guess, sizeof guess, "%s/../faissx-server", dirname(tmp));
    return guess;
}

static char ipc_path[128];
static char shm_path[128]; /* the server's --shm-socket */

/* Starts the server, listening on a free loopback TCP port and on a Unix
 * socket in /tmp; fills url[T_TCP] and url[T_IPC]. The server's OpenMP and
 * OpenBLAS get one thread each from the environment too (it sets its own
 * per request; this keeps OpenBLAS from starting a pool at load), and
 * OpenMP waits passively. Called before this process uses NNG or starts
 * threads, and the child execs at once. */
static void start_server(const char* bin, int threads,
                         char url[MAX_TRANSPORTS][160]) {
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "bench_remote: no faissx-server at %s (give "
                        "--server PATH or FAISSX_SERVER_BIN)\n", bin);
        exit(2);
    }
    char nthreads[16];
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    snprintf(server_log, sizeof server_log, "/tmp/fx-bench-remote-%d.log",
             (int)getpid());
    snprintf(ipc_path, sizeof ipc_path, "/tmp/fx-bench-remote-%d.ipc",
             (int)getpid());
    snprintf(url[T_IPC], 160, "ipc://%s", ipc_path);
    snprintf(shm_path, sizeof shm_path, "/tmp/fx-bench-remote-%d.shm",
             (int)getpid());
    for (int attempt = 0; attempt < 10; attempt++) {
        int port = bench_free_port();
        if (port <= 0) continue;
        snprintf(url[T_TCP], 160, "tcp://127.0.0.1:%d", port);
        unlink(ipc_path); /* a stale one from an earlier attempt */
        const char* argv[] = {bin,         "--listen",  url[T_IPC],
                              "--listen",  url[T_TCP],  "--threads",
                              nthreads,    "--workers", "2",
                              "--log-level", "warn",
                              "--shm-socket", shm_path, NULL};
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("bench_remote: fork");
            exit(2);
        }
        if (pid == 0) {
            int fd = open(server_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            unsetenv("FAISSX_SERVER"); /* never a client of itself */
            setenv("OMP_NUM_THREADS", nthreads, 1);
            setenv("OPENBLAS_NUM_THREADS", "1", 1);
            setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
            execv(bin, (char* const*)argv);
            _exit(127);
        }
        server_pid = pid;
        for (int i = 0; i < 500; i++) { /* up to ~10 s */
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                server_pid = 0; /* port taken meanwhile? another one */
                break;
            }
            /* The listeners start in order: ipc first. */
            if (bench_port_open(port) && access(ipc_path, F_OK) == 0)
                return;
            bench_sleep_ms(20);
        }
        if (server_pid) {
            kill(server_pid, SIGKILL);
            waitpid(server_pid, NULL, 0);
            server_pid = 0;
        }
    }
    fprintf(stderr, "bench_remote: faissx-server did not start\n");
    print_server_log();
    exit(2);
}

/* SIGTERM, then wait; returns 0 when it exited cleanly. */
static int server_exit_status(void) {
    if (server_pid <= 0) return 0;
    kill(server_pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        int st;
        if (waitpid(server_pid, &st, WNOHANG) == server_pid) {
            server_pid = 0;
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
        }
        bench_sleep_ms(10);
    }
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    server_pid = 0;
    return -1;
}

static void stop_server(void) {
    if (server_pid > 0 && server_exit_status() != 0) print_server_log();
}

/* ------------------------------------------------------------------------
 * The floor: NNG req/rep with the bytes of one single-query search
 * ------------------------------------------------------------------------ */

/* Protocol sizes (docs/protocol.md): 40-byte header; request body = str
 * api_key (empty) + u64 handle + i64 n + i64 k + array<f32> x; reply body
 * = array<f32> D + array<i64> I. */
static size_t pad8(size_t n) {
    return (n + 7) & ~(size_t)7;
}
static size_t search_request_bytes(int d, int64_t n) {
    return 40 + 8 + 8 + 8 + 8 + 8 + pad8((size_t)n * d * sizeof(float));
}
static size_t search_reply_bytes(int64_t n, int64_t k) {
    return 40 + 8 + pad8((size_t)(n * k) * sizeof(float)) + 8 +
           (size_t)(n * k) * sizeof(int64_t);
}
/* add: str api_key + u64 handle + i64 n + array<f32> x; the reply is the
 * index's state (i64 ntotal, i64 is_trained). */
static size_t add_request_bytes(int d, int64_t n) {
    return 40 + 8 + 8 + 8 + 8 + pad8((size_t)n * d * sizeof(float));
}
static size_t add_reply_bytes(void) {
    return 40 + 8 + 8;
}

/* The echo serves ECHO_STREAMS connections at once: as many req sockets
 * (one connection each) and as many threads on their own rep contexts. One
 * stream measures the floor of one call; all of them together, the most a
 * client could move by spreading one large add over several connections
 * (the ceiling of any pipelined protocol on this machine). */
enum { ECHO_STREAMS = 2 };

typedef struct echo echo;
typedef struct {
    echo* e;
    nng_ctx ctx;
    pthread_t thread;
} echo_worker;

struct echo {
    nng_socket rep;
    nng_socket req;                   /* stream 0 */
    nng_socket reqs[ECHO_STREAMS];    /* reqs[0] == req */
    echo_worker w[ECHO_STREAMS];
    size_t req_bytes, reply_bytes;
    uint8_t* req_data;
    char path[128]; /* ipc: the socket file, removed at the end */
};

/* The echo thread: every request gets a reply of the length its first 8
 * bytes give (they stand for the protocol's header). */
static void* echo_main(void* arg) {
    echo_worker* w = arg;
    nng_aio* aio;
    if (nng_aio_alloc(&aio, NULL, NULL) != 0) {
        fprintf(stderr, "bench_remote: echo aio\n");
        exit(2);
    }
    for (;;) {
        nng_ctx_recv(w->ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0) break; /* closed */
        nng_msg* m = nng_aio_get_msg(aio);
        uint64_t want = w->e->reply_bytes;
        if (nng_msg_len(m) >= sizeof want)
            memcpy(&want, nng_msg_body(m), sizeof want);
        if (nng_msg_realloc(m, (size_t)want) != 0) {
            nng_msg_free(m);
            continue;
        }
        nng_aio_set_msg(aio, m);
        nng_ctx_send(w->ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0) {
            nng_msg_free(nng_aio_get_msg(aio));
            break;
        }
    }
    nng_aio_free(aio);
    return NULL;
}

/* The echo listens on transport t (loopback TCP on a port the kernel
 * picks, or a Unix socket in /tmp), the req socket dials it. */
static void echo_start(echo* e, int d, int64_t k, int t) {
    nng_listener l;
    int port = 0, rv;
    char url[160];
    e->req_bytes = search_request_bytes(d, 1);
    e->reply_bytes = search_reply_bytes(1, k);
    e->req_data = xmalloc(e->req_bytes);
    memset(e->req_data, 0x5a, e->req_bytes);
    uint64_t want = e->reply_bytes;
    memcpy(e->req_data, &want, sizeof want);
    e->path[0] = '\0';
    if (t == T_IPC) {
        snprintf(e->path, sizeof e->path, "/tmp/fx-bench-echo-%d.ipc",
                 (int)getpid());
        unlink(e->path);
        snprintf(url, sizeof url, "ipc://%s", e->path);
    }
    if ((rv = nng_rep0_open(&e->rep)) != 0 ||
        (rv = nng_listen(e->rep, t == T_IPC ? url : "tcp://127.0.0.1:0", &l,
                         0)) != 0 ||
        (t == T_TCP && (rv = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT,
                                                  &port)) != 0) ||
        0) {
        fprintf(stderr, "bench_remote: echo: %s\n", nng_strerror(rv));
        exit(2);
    }
    if (t == T_TCP) snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    for (int i = 0; i < ECHO_STREAMS; i++) {
        nng_socket* q = &e->reqs[i];
        if ((rv = nng_req0_open(q)) != 0 ||
            (rv = nng_socket_set_ms(*q, NNG_OPT_REQ_RESENDTIME,
                                    NNG_DURATION_INFINITE)) != 0 ||
            (rv = nng_socket_set_ms(*q, NNG_OPT_RECVTIMEO, 30000)) != 0 ||
            (rv = nng_dial(*q, url, NULL, 0)) != 0 ||
            (rv = nng_ctx_open(&e->w[i].ctx, e->rep)) != 0) {
            fprintf(stderr, "bench_remote: echo dial: %s\n",
                    nng_strerror(rv));
            exit(2);
        }
        e->w[i].e = e;
        if (pthread_create(&e->w[i].thread, NULL, echo_main, &e->w[i]) !=
            0) {
            fprintf(stderr, "bench_remote: echo thread\n");
            exit(2);
        }
    }
    e->req = e->reqs[0];
}

/* One round trip: a request message of req_bytes (filled as a search
 * request would be), its reply received and released. */
static void echo_call(echo* e) {
    nng_msg* m;
    int rv;
    if ((rv = nng_msg_alloc(&m, 0)) != 0 ||
        (rv = nng_msg_append(m, e->req_data, e->req_bytes)) != 0 ||
        (rv = nng_sendmsg(e->req, m, 0)) != 0 ||
        (rv = nng_recvmsg(e->req, &m, 0)) != 0) {
        fprintf(stderr, "bench_remote: echo call: %s\n", nng_strerror(rv));
        exit(2);
    }
    if (nng_msg_len(m) != e->reply_bytes) {
        fprintf(stderr, "bench_remote: echo reply of %zu bytes\n",
                nng_msg_len(m));
        exit(2);
    }
    nng_msg_free(m);
}

/* One round trip of a large request, built as the client builds one: a
 * message of req_bytes whose last payload_len bytes are copied from
 * payload (the vectors), answered with reply_bytes. */
static void echo_transfer(nng_socket req, const void* payload,
                          size_t payload_len, size_t req_bytes,
                          size_t reply_bytes) {
    nng_msg* m;
    int rv;
    if ((rv = nng_msg_alloc(&m, req_bytes)) != 0) {
        fprintf(stderr, "bench_remote: echo transfer: %s\n",
                nng_strerror(rv));
        exit(2);
    }
    uint8_t* body = nng_msg_body(m);
    uint64_t want = reply_bytes;
    memset(body, 0, req_bytes - payload_len);
    memcpy(body, &want, sizeof want);
    memcpy(body + req_bytes - payload_len, payload, payload_len);
    if ((rv = nng_sendmsg(req, m, 0)) != 0 ||
        (rv = nng_recvmsg(req, &m, 0)) != 0) {
        fprintf(stderr, "bench_remote: echo transfer: %s\n",
                nng_strerror(rv));
        exit(2);
    }
    if (nng_msg_len(m) != reply_bytes) {
        fprintf(stderr, "bench_remote: echo reply of %zu bytes\n",
                nng_msg_len(m));
        exit(2);
    }
    nng_msg_free(m);
}

static void echo_stop(echo* e) {
    for (int i = 0; i < ECHO_STREAMS; i++) nng_close(e->reqs[i]);
    nng_close(e->rep); /* ends the workers' receives */
    for (int i = 0; i < ECHO_STREAMS; i++) pthread_join(e->w[i].thread, NULL);
    free(e->req_data);
    if (e->path[0]) unlink(e->path);
}

/* ------------------------------------------------------------------------
 * Index helpers
 * ------------------------------------------------------------------------ */

static void set_ef(FaissIndex* ix, int ef) {
    FaissParameterSpace* ps = NULL;
    MUST(faiss_ParameterSpace_new(&ps));
    MUST(faiss_ParameterSpace_set_index_parameter(ps, ix, "efSearch", ef));
    faiss_ParameterSpace_free(ps);
}

static void add_batches(FaissIndex* ix, const options* o, const float* xb) {
    for (int64_t i0 = 0; i0 < o->nb; i0 += o->add_batch) {
        int64_t n = o->nb - i0 < o->add_batch ? o->nb - i0 : o->add_batch;
        MUST(faiss_Index_add(ix, n, xb + (size_t)i0 * o->d));
    }
}

/* The ceiling of remote add: the same batches' request and reply bytes
 * through a raw NNG req/rep round trip each, and nothing else. */
static void add_batches_raw(echo* e, const options* o, const float* xb) {
    for (int64_t i0 = 0; i0 < o->nb; i0 += o->add_batch) {
        int64_t n = o->nb - i0 < o->add_batch ? o->nb - i0 : o->add_batch;
        echo_transfer(e->req, xb + (size_t)i0 * o->d,
                      (size_t)n * o->d * sizeof(float),
                      add_request_bytes(o->d, n), add_reply_bytes());
    }
}

/* One memcpy of each batch into a buffer of this process: the one pass
 * over the bytes that even a same-host shared-memory transport would add
 * (the client writing the vectors where the server can read them). */
static void copy_batches(float* dst, const options* o, const float* xb) {
    for (int64_t i0 = 0; i0 < o->nb; i0 += o->add_batch) {
        int64_t n = o->nb - i0 < o->add_batch ? o->nb - i0 : o->add_batch;
        memcpy(dst, xb + (size_t)i0 * o->d, (size_t)n * o->d * sizeof(float));
        __asm__ volatile("" : : "r"(dst) : "memory"); /* keep the copy */
    }
}

/* The same batches spread over the ECHO_STREAMS connections, one thread
 * each (stream j sends batches j, j + ECHO_STREAMS, ...): the bytes moved
 * in parallel, as a pipelined or multi-connection add at best would. */
typedef struct {
    echo* e;
    const options* o;
    const float* xb;
    int stream;
} raw_stream_job;

static void* raw_stream_main(void* arg) {
    raw_stream_job* j = arg;
    const options* o = j->o;
    int64_t b = 0;
    for (int64_t i0 = 0; i0 < o->nb; i0 += o->add_batch, b++) {
        if (b % ECHO_STREAMS != j->stream) continue;
        int64_t n = o->nb - i0 < o->add_batch ? o->nb - i0 : o->add_batch;
        echo_transfer(j->e->reqs[j->stream],
                      j->xb + (size_t)i0 * o->d,
                      (size_t)n * o->d * sizeof(float),
                      add_request_bytes(o->d, n), add_reply_bytes());
    }
    return NULL;
}

static void add_batches_raw_parallel(echo* e, const options* o,
                                     const float* xb) {
    raw_stream_job jobs[ECHO_STREAMS];
    pthread_t th[ECHO_STREAMS];
    for (int i = 0; i < ECHO_STREAMS; i++) {
        jobs[i] = (raw_stream_job){e, o, xb, i};
        if (pthread_create(&th[i], NULL, raw_stream_main, &jobs[i]) != 0) {
            fprintf(stderr, "bench_remote: raw stream thread\n");
            exit(2);
        }
    }
    for (int i = 0; i < ECHO_STREAMS; i++) pthread_join(th[i], NULL);
}

/* ------------------------------------------------------------------------
 * Result tables
 * ------------------------------------------------------------------------ */

typedef struct {
    char name[80];
    const char* via; /* transport */
    int n;
    double t[6][MAX_ROUNDS]; /* seconds per round, local / remote / raw /
                                raw over ECHO_STREAMS connections (add) /
                                one memcpy of the add's vectors / remote
                                with ordinary ADD messages (add) */
    int parallel;            /* t[RAW_PAR], t[COPY], t[ADDMSG] measured */
    uint64_t streamed;       /* remote adds that went through shared memory */
    double target;           /* local/remote must be >= this */
    int identical;
} thru_row;

typedef struct {
    char name[96];
    const char* via;
    int64_t n;             /* triples (queries per side) */
    double p50[3], p99[3]; /* seconds, per side */
    double excess50, excess99; /* remote - local within a triple */
    double over50;         /* median of remote - local - raw, per triple */
    double ratio50;        /* median of (remote - local) / raw, per triple */
    double q, qlo, qhi;    /* excess p50 / raw p50 and its bootstrap 95 % */
    int identical;
} lat_row;

typedef struct {
    char name[48];
    const char* via;
    int clients;
    int64_t queries;
    double qps[2]; /* medians */
    double cpu[2]; /* CPU seconds per query, medians; remote: client +
                      server process */
    int identical;
} scale_row;

static int lat_boot;  /* resamples behind the intervals */
static int lat_block; /* --block */

/* AnonHugePages of a process in KiB (-1 if unreadable). */
static long huge_kib(pid_t pid) {
    char path[64], line[256];
    long kib = -1;
    if (pid) snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    else snprintf(path, sizeof path, "/proc/self/smaps_rollup");
    FILE* f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}
static long huge_here = -1, huge_server = -1; /* after the first Flat row */
static double flat_mb;
static thru_row thru[2 * MAX_TRANSPORTS];
static int nthru;
static lat_row lat[3 * MAX_TRANSPORTS];
static int nlat;
static scale_row scale[2 * MAX_CLIENTS * MAX_TRANSPORTS];
static int nscale;

/* ------------------------------------------------------------------------
 * 1 + 2: add and batch search on Flat
 * ------------------------------------------------------------------------ */

static void bench_flat_batch(const options* o, const char* via,
                             FaissIndex* ix[2], echo* e, const float* xb,
                             const float* xq) {
    thru_row* radd = &thru[nthru++];
    thru_row* rsearch = &thru[nthru++];
    radd->via = rsearch->via = via;
    snprintf(radd->name, sizeof radd->name,
             "Flat add %lld x %d, batches of %lld", (long long)o->nb, o->d,
             (long long)o->add_batch);
    snprintf(rsearch->name, sizeof rsearch->name,
             "Flat search batch %lld, k=%lld, nb=%lld", (long long)o->nq,
             (long long)o->k, (long long)o->nb);
    radd->target = 0.8;
    rsearch->target = 0.95;
    radd->identical = rsearch->identical = 1;
    size_t nk = (size_t)(o->nq * o->k);
    float* D[2];
    int64_t* I[2];
    for (int s = 0; s < 2; s++) {
        D[s] = xmalloc(nk * sizeof(float));
        I[s] = xmalloc(nk * sizeof(int64_t));
    }
    /* The copy's destination, written once first so its pages exist. */
    float* copybuf = xmalloc((size_t)o->add_batch * o->d * sizeof(float));
    memset(copybuf, 0, (size_t)o->add_batch * o->d * sizeof(float));
    for (int r = 0; r < o->warmup + o->rounds; r++) {
        int m = r - o->warmup;
        for (int pos = 0; pos < 6; pos++) {
            int s = (r + pos) % 6;
            int raw = s == RAW || s == RAW_PAR || s == COPY;
            FaissIndex* target = ix[s == ADDMSG ? REMOTE : s];
            if (!raw) MUST(faiss_Index_reset(target));
            if (s == ADDMSG) setenv("FAISSX_SHM", "0", 1);
            uint64_t st0 = fx_shm_streams();
            double t0 = bench_now();
            if (s == RAW)
                add_batches_raw(e, o, xb);
            else if (s == RAW_PAR)
                add_batches_raw_parallel(e, o, xb);
            else if (s == COPY)
                copy_batches(copybuf, o, xb);
            else
                add_batches(target, o, xb);
            double t1 = bench_now();
            if (s == ADDMSG) unsetenv("FAISSX_SHM");
            if (s == REMOTE) radd->streamed += fx_shm_streams() - st0;
            if (m >= 0) radd->t[s][m] = t1 - t0;
            if (!raw && faiss_Index_ntotal(target) != o->nb)
                die("ntotal after add");
        }
        for (int pos = 0; pos < 3; pos++) {
            int s = (r + 1 + pos) % 3;
            double t0 = bench_now();
            if (s == RAW)
                echo_transfer(e->req, xq,
                              (size_t)o->nq * o->d * sizeof(float),
                              search_request_bytes(o->d, o->nq),
                              search_reply_bytes(o->nq, o->k));
            else
                MUST(faiss_Index_search(ix[s], o->nq, xq, o->k, D[s], I[s]));
            double t1 = bench_now();
            if (m >= 0) rsearch->t[s][m] = t1 - t0;
        }
        int ok = same(D[0], I[0], D[1], I[1], nk);
        rsearch->identical &= ok;
        radd->identical &= ok; /* what was added gives the same answers */
    }
    radd->n = rsearch->n = o->rounds;
    radd->parallel = 1;
    free(copybuf);
    for (int s = 0; s < 2; s++) {
        free(D[s]);
        free(I[s]);
    }
}

/* ------------------------------------------------------------------------
 * 2b: binary add (IndexBinaryFlat, 256-bit codes), as many bytes per batch
 * and in all as the Flat add: local, the remote add through shared memory
 * (FX_BIN_ADD_STREAM) and the remote add with FAISSX_SHM=0 (the ordinary
 * binary ADD messages), the order rotating per round
 * ------------------------------------------------------------------------ */

enum { BIN_LOCAL = 0, BIN_STREAM = 1, BIN_ADDMSG = 2 };

typedef struct {
    const char* via;
    int n;
    int64_t nb, batch;
    int dbits;
    double t[3][MAX_ROUNDS];
    uint64_t streamed; /* stream adds that went through shared memory */
    int identical;
} bin_row;

static bin_row brows[MAX_TRANSPORTS];
static int nbrows;

static void bench_binary_add(const options* o, const char* url,
                             const char* via) {
    bin_row* b = &brows[nbrows++];
    const int dbits = 256, cs = dbits / 8;
    b->via = via;
    b->dbits = dbits;
    b->batch = o->add_batch * o->d * (int64_t)sizeof(float) / cs;
    b->nb = o->nb * o->d * (int64_t)sizeof(float) / cs;
    b->identical = 1;
    if (b->batch < 1) b->batch = 1;
    uint8_t* x = xmalloc((size_t)b->nb * cs);
    uint64_t rs = o->seed ^ 0xB1B1ULL;
    for (size_t i = 0; i < (size_t)b->nb * cs; i += 8) {
        uint64_t v = rng_next(&rs);
        size_t m = (size_t)b->nb * cs - i < 8 ? (size_t)b->nb * cs - i : 8;
        memcpy(x + i, &v, m);
    }
    FaissIndexBinary* ix[2];
    MUST(faiss_index_binary_factory(&ix[0], dbits, "BFlat"));
    MUST(faissx_configure(url, NULL, 600000));
    MUST(faiss_index_binary_factory(&ix[1], dbits, "BFlat"));
    MUST(faissx_configure(NULL, NULL, 0));
    if (faissx_index_binary_is_remote(ix[0]) ||
        !faissx_index_binary_is_remote(ix[1]))
        die("binary index homes");
    enum { NQ = 100, K = 10 };
    int32_t* D[2];
    int64_t* I[2];
    for (int s = 0; s < 2; s++) {
        D[s] = xmalloc(sizeof(int32_t) * NQ * K);
        I[s] = xmalloc(sizeof(int64_t) * NQ * K);
    }
    for (int r = 0; r < o->warmup + o->rounds; r++) {
        int m = r - o->warmup;
        for (int pos = 0; pos < 3; pos++) {
            int s = (r + pos) % 3;
            FaissIndexBinary* target = ix[s == BIN_LOCAL ? 0 : 1];
            MUST(faiss_IndexBinary_reset(target));
            if (s == BIN_ADDMSG) setenv("FAISSX_SHM", "0", 1);
            uint64_t st0 = fx_shm_streams();
            double t0 = bench_now();
            for (int64_t i0 = 0; i0 < b->nb; i0 += b->batch) {
                int64_t n = b->nb - i0 < b->batch ? b->nb - i0 : b->batch;
                MUST(faiss_IndexBinary_add(target, n, x + (size_t)i0 * cs));
            }
            double t1 = bench_now();
            if (s == BIN_ADDMSG) unsetenv("FAISSX_SHM");
            if (s == BIN_STREAM) b->streamed += fx_shm_streams() - st0;
            if (m >= 0) b->t[s][m] = t1 - t0;
            if (faiss_IndexBinary_ntotal(target) != b->nb)
                die("binary ntotal after add");
        }
        /* the remote index holds the ordinary ADD's codes or the
         * stream's: either must answer as the local one */
        for (int s = 0; s < 2; s++)
            MUST(faiss_IndexBinary_search(ix[s], NQ, x, K, D[s], I[s]));
        int ok = memcmp(D[0], D[1], sizeof(int32_t) * NQ * K) == 0 &&
                 memcmp(I[0], I[1], sizeof(int64_t) * NQ * K) == 0;
        if (!ok) mismatches++;
        b->identical &= ok;
    }
    b->n = o->rounds;
    for (int s = 0; s < 2; s++) {
        free(D[s]);
        free(I[s]);
        faiss_IndexBinary_free(ix[s]);
    }
    free(x);
}

static void print_binary_table(void) {
    if (!nbrows) return;
    printf("\nBinary add (IndexBinaryFlat; medians; ratio = local time / "
           "remote time; the same bytes as the Flat add; stream = through "
           "shared memory, ordinary = FAISSX_SHM=0):\n\n");
    printf("| operation | via | rounds | local | stream add | ratio | "
           "ordinary ADD | ratio | streamed | identical |\n"
           "|---|---|---:|---:|---:|---:|---:|---:|---:|:---:|\n");
    for (int i = 0; i < nbrows; i++) {
        bin_row* b = &brows[i];
        double l = bench_median(b->t[BIN_LOCAL], b->n),
               st = bench_median(b->t[BIN_STREAM], b->n),
               a = bench_median(b->t[BIN_ADDMSG], b->n);
        printf("| BFlat add %lld x %d bits, batches of %lld | %s | %d | "
               "%.1f ms | %.1f ms | %.3f | %.1f ms | %.3f | %llu | %s |\n",
               (long long)b->nb, b->dbits, (long long)b->batch, b->via, b->n,
               l * 1e3, st * 1e3, l / st, a * 1e3, l / a,
               (unsigned long long)b->streamed, yes_no(b->identical));
    }
}

/* ------------------------------------------------------------------------
 * 3 + 4: single-query latency, in interleaved triples
 * ------------------------------------------------------------------------ */

/* The six orders of (local, remote, raw); query j of the run uses order
 * j % 6, so each side runs first, second and third equally often and
 * right after each of the others. */
static const int orders[6][3] = {
        {LOCAL, REMOTE, RAW}, {REMOTE, RAW, LOCAL}, {RAW, LOCAL, REMOTE},
        {LOCAL, RAW, REMOTE}, {RAW, REMOTE, LOCAL}, {REMOTE, LOCAL, RAW},
};

static FILE* triples_out; /* --triples */

/* excess p50 / raw p50 over triples [0, n) picked by idx (NULL: all). */
static double excess_ratio(const double* diff, const double* raw,
                           const size_t* idx, size_t n, double* buf) {
    for (size_t i = 0; i < n; i++) buf[i] = diff[idx ? idx[i] : i];
    double e = percentile(buf, n, 0.5);
    for (size_t i = 0; i < n; i++) buf[i] = raw[idx ? idx[i] : i];
    return e / percentile(buf, n, 0.5);
}

/* A 95 % interval of excess p50 / raw p50: a moving-block bootstrap over
 * runs of len consecutive triples (six blocks of queries, i.e. the six
 * orders once each, so every resample keeps the order balance and what is
 * correlated between neighbouring queries), o->boot resamples, percentile
 * interval. */
static void ratio_interval(const options* o, const double* diff,
                           const double* raw, size_t n, size_t len,
                           double* lo, double* hi) {
    size_t nblk = n / len;
    if (nblk < 2) {
        *lo = -INFINITY;
        *hi = INFINITY;
        return;
    }
    size_t m = nblk * len;
    size_t* idx = xmalloc(m * sizeof(size_t));
    double* buf = xmalloc(m * sizeof(double));
    double* qs = xmalloc((size_t)o->boot * sizeof(double));
    uint64_t rs = o->seed ^ 0xB007B007ULL ^ (uint64_t)n;
    for (int b = 0; b < o->boot; b++) {
        for (size_t j = 0; j < nblk; j++) {
            size_t start = (size_t)(rng_next(&rs) % (n - len + 1));
            for (size_t u = 0; u < len; u++) idx[j * len + u] = start + u;
        }
        qs[b] = excess_ratio(diff, raw, idx, m, buf);
    }
    qsort(qs, (size_t)o->boot, sizeof *qs, bench_cmp_double);
    *lo = qs[(size_t)floor(0.025 * (o->boot - 1))];
    *hi = qs[(size_t)ceil(0.975 * (o->boot - 1))];
    free(idx);
    free(buf);
    free(qs);
}

/* Each query is one triple: the local search, the remote search of the
 * same query and a raw round trip of the same bytes. The queries go in
 * blocks of o->block (default 1), the three sides in one of the six
 * orders (block j uses order j % 6); with blocks of more than one query,
 * each side runs the block's queries in a row after one untimed search of
 * the block's first query (a raw round trip for raw), so that each side
 * searches its own index several times running, as a program searching
 * one index would, instead of right after the other side's scan of its
 * copy (on a 51 MB Flat the cache state alone moves a scan by more than
 * the round trip; docs/benchmarks.md, "Remote vs local"). The excess is
 * taken per triple (remote - local of the same query, at the same place in
 * its block) and
 * summarised as its median and p99; so is the overhead beyond the raw
 * round trip (remote - local - raw), paired the same way. Pairing within
 * a block cancels what drifts more slowly than a block (other processes'
 * load, frequency changes). */
static void bench_latency(const options* o, const char* name, const char* via,
                          FaissIndex* ix[2], echo* e, const float* xq,
                          int64_t nsingle) {
    lat_row* row = &lat[nlat++];
    row->via = via;
    snprintf(row->name, sizeof row->name, "%s", name);
    row->identical = 1;
    size_t total = (size_t)nsingle * (size_t)o->rounds;
    int64_t B = o->block < nsingle ? o->block : nsingle;
    double* t[3];
    for (int s = 0; s < 3; s++) t[s] = xmalloc(total * sizeof(double));
    int* ordv = xmalloc(total * sizeof(int));
    double* diff = xmalloc(total * sizeof(double));
    double* over = xmalloc(total * sizeof(double));
    double* ratio = xmalloc(total * sizeof(double));
    size_t nk = (size_t)(nsingle * o->k);
    float* D[2];
    int64_t* I[2];
    for (int s = 0; s < 2; s++) {
        D[s] = xmalloc(nk * sizeof(float));
        I[s] = xmalloc(nk * sizeof(int64_t));
    }
    int64_t blk = 0;
    for (int r = 0; r < o->warmup + o->rounds; r++) {
        int m = r - o->warmup;
        for (int64_t b0 = 0; b0 < nsingle; b0 += B, blk++) {
            int64_t b1 = b0 + B < nsingle ? b0 + B : nsingle;
            int oi = (int)(blk % 6);
            const int* ord = orders[oi];
            for (int pos = 0; pos < 3; pos++) {
                int s = ord[pos];
                /* Blocks of more than one query start with an untimed
                 * search (b0 - 1). */
                for (int64_t i = B > 1 ? b0 - 1 : b0; i < b1; i++) {
                    int64_t qi = i < b0 ? b0 : i;
                    const float* q = xq + (size_t)(qi % o->nq) * o->d;
                    double t0 = bench_now();
                    if (s == RAW)
                        echo_call(e);
                    else
                        MUST(faiss_Index_search(ix[s], 1, q, o->k,
                                                D[s] + qi * o->k,
                                                I[s] + qi * o->k));
                    double dt = bench_now() - t0;
                    if (m >= 0 && i >= b0) {
                        t[s][(size_t)m * nsingle + i] = dt;
                        ordv[(size_t)m * nsingle + i] = oi;
                    }
                }
            }
        }
        row->identical &= same(D[0], I[0], D[1], I[1], nk);
    }
    if (triples_out)
        for (size_t i = 0; i < total; i++) {
            size_t rr = i / (size_t)nsingle, qi = i % (size_t)nsingle;
            fprintf(triples_out, "%s\t%s\t%zu\t%zu\t%d\t%.2f\t%.2f\t%.2f\n",
                    name, via, rr, qi, ordv[i], t[LOCAL][i] * 1e6,
                    t[REMOTE][i] * 1e6, t[RAW][i] * 1e6);
        }
    for (size_t i = 0; i < total; i++) {
        diff[i] = t[REMOTE][i] - t[LOCAL][i];
        over[i] = diff[i] - t[RAW][i];
        ratio[i] = diff[i] / t[RAW][i];
    }
    row->q = excess_ratio(diff, t[RAW], NULL, total, ratio);
    ratio_interval(o, diff, t[RAW], total, 6 * (size_t)B, &row->qlo,
                   &row->qhi);
    for (size_t i = 0; i < total; i++) ratio[i] = diff[i] / t[RAW][i];
    row->excess50 = percentile(diff, total, 0.5);
    row->excess99 = percentile(diff, total, 0.99);
    row->over50 = percentile(over, total, 0.5);
    row->ratio50 = percentile(ratio, total, 0.5);
    for (int s = 0; s < 3; s++) {
        row->p50[s] = percentile(t[s], total, 0.5);
        row->p99[s] = percentile(t[s], total, 0.99);
        free(t[s]);
    }
    row->n = (int64_t)total;
    free(ordv);
    free(diff);
    free(over);
    free(ratio);
    for (int s = 0; s < 2; s++) {
        free(D[s]);
        free(I[s]);
    }
}

/* ------------------------------------------------------------------------
 * 6: the client cache: off, miss, hit for each single query
 * ------------------------------------------------------------------------ */

enum { C_OFF = 0, C_MISS = 1, C_HIT = 2 };
static struct {
    char name[64];
    int64_t n;
    double p50[3], p99[3];
    int identical;
    uint64_t hits, misses;
} cache_row;

static void bench_cache(const options* o, const char* name, FaissIndex* ix,
                        const float* xq, int64_t nsingle) {
    snprintf(cache_row.name, sizeof cache_row.name, "%s", name);
    cache_row.identical = 1;
    size_t total = (size_t)nsingle * (size_t)o->rounds;
    double* t[3];
    for (int s = 0; s < 3; s++) t[s] = xmalloc(total * sizeof(double));
    float* D[3];
    int64_t* I[3];
    for (int s = 0; s < 3; s++) {
        D[s] = xmalloc((size_t)o->k * sizeof(float));
        I[s] = xmalloc((size_t)o->k * sizeof(int64_t));
    }
    const int64_t bound = 256 << 20;
    MUST(faissx_cache_configure(bound, 0));
    faissx_cache_reset_stats();
    for (int r = 0; r < o->warmup + o->rounds; r++) {
        int m = r - o->warmup;
        for (int64_t i = 0; i < nsingle; i++) {
            const float* q = xq + (size_t)(i % o->nq) * o->d;
            for (int s = 0; s < 3; s++) {
                /* off: the cache disabled (and emptied); miss: enabled,
                 * empty; hit: the entry the miss stored */
                if (s == C_OFF) MUST(faissx_cache_configure(0, 0));
                if (s == C_MISS) MUST(faissx_cache_configure(bound, 0));
                double t0 = bench_now();
                MUST(faiss_Index_search(ix, 1, q, o->k, D[s], I[s]));
                double dt = bench_now() - t0;
                if (m >= 0) t[s][(size_t)m * nsingle + i] = dt;
            }
            for (int s = 1; s < 3; s++)
                cache_row.identical &= same(D[0], I[0], D[s], I[s], (size_t)o->k);
        }
    }
    FaissxCacheStats st;
    MUST(faissx_cache_stats(&st));
    cache_row.hits = st.hits;
    cache_row.misses = st.misses;
    MUST(faissx_cache_configure(0, 0));
    for (int s = 0; s < 3; s++) {
        cache_row.p50[s] = percentile(t[s], total, 0.5);
        cache_row.p99[s] = percentile(t[s], total, 0.99);
        free(t[s]);
        free(D[s]);
        free(I[s]);
    }
    cache_row.n = (int64_t)total;
}

/* ------------------------------------------------------------------------
 * 5: concurrent clients, one shared index handle per side
 * ------------------------------------------------------------------------ */

typedef struct {
    FaissIndex* ix;
    const options* o;
    const float* xq;
    int64_t total;
    atomic_llong next;
    float* D;
    int64_t* I;
    pthread_barrier_t* start;
    atomic_int failed;
} scale_job;

static void* scale_worker(void* arg) {
    scale_job* j = arg;
    omp_set_num_threads(j->o->threads); /* per thread in libgomp */
    pthread_barrier_wait(j->start);
    for (;;) {
        int64_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->total) break;
        const float* q = j->xq + (size_t)(i % j->o->nq) * j->o->d;
        if (faiss_Index_search(j->ix, 1, q, j->o->k, j->D + i * j->o->k,
                               j->I + i * j->o->k) != 0) {
            if (atomic_fetch_add(&j->failed, 1) == 0)
                fprintf(stderr, "bench_remote: search in a client thread: "
                                "%s\n", faiss_get_last_error());
            break;
        }
    }
    return NULL;
}

/* CPU time (user + system) of this process, in seconds. */
static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* CPU time of the server process (/proc/PID/stat utime + stime), in
 * seconds; clock-tick resolution (usually 10 ms). */
static double server_cpu(void) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)server_pid);
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char* p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut = 0, st = 0;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                            "%llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Seconds for `clients` threads to run j->total single-query searches. */
static double run_clients(scale_job* j, int clients) {
    pthread_t th[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)clients + 1);
    atomic_store(&j->next, 0);
    atomic_store(&j->failed, 0);
    j->start = &start;
    for (int c = 0; c < clients; c++)
        if (pthread_create(&th[c], NULL, scale_worker, j) != 0) {
            fprintf(stderr, "bench_remote: cannot start %d threads\n",
                    clients);
            exit(2);
        }
    /* Every worker is parked at the barrier: the clock starts before the
     * main thread releases them (it may well be scheduled after them). */
    double t0 = bench_now();
    pthread_barrier_wait(&start);
    for (int c = 0; c < clients; c++) pthread_join(th[c], NULL);
    double dt = bench_now() - t0;
    pthread_barrier_destroy(&start);
    if (atomic_load(&j->failed)) die("concurrent search");
    return dt;
}

static void bench_scaling(const options* o, const char* name, const char* via,
                          FaissIndex* ix[2], const float* xq, int64_t total) {
    size_t nk = (size_t)(total * o->k);
    scale_job j[2];
    for (int s = 0; s < 2; s++) {
        memset(&j[s], 0, sizeof j[s]);
        j[s].ix = ix[s];
        j[s].o = o;
        j[s].xq = xq;
        j[s].total = total;
        j[s].D = xmalloc(nk * sizeof(float));
        j[s].I = xmalloc(nk * sizeof(int64_t));
    }
    for (int c = 0; c < o->nclients; c++) {
        scale_row* row = &scale[nscale++];
        double t[2][MAX_ROUNDS], cpu[2][MAX_ROUNDS];
        snprintf(row->name, sizeof row->name, "%s", name);
        row->via = via;
        row->clients = o->clients[c];
        row->queries = total;
        row->identical = 1;
        for (int r = 0; r < o->warmup + o->rounds; r++) {
            int m = r - o->warmup;
            for (int pos = 0; pos < 2; pos++) {
                int s = side2(r + c, pos);
                double c0 = self_cpu() + (s == REMOTE ? server_cpu() : 0);
                double dt = run_clients(&j[s], o->clients[c]);
                double c1 = self_cpu() + (s == REMOTE ? server_cpu() : 0);
                if (m >= 0) {
                    t[s][m] = dt;
                    cpu[s][m] = (c1 - c0) / (double)total;
                }
            }
            row->identical &= same(j[0].D, j[0].I, j[1].D, j[1].I, nk);
        }
        for (int s = 0; s < 2; s++) {
            row->qps[s] = (double)total / bench_median(t[s], o->rounds);
            row->cpu[s] = bench_median(cpu[s], o->rounds);
        }
    }
    for (int s = 0; s < 2; s++) {
        free(j[s].D);
        free(j[s].I);
    }
}

/* ------------------------------------------------------------------------
 * Report
 * ------------------------------------------------------------------------ */

static const char* met(double value, double target, int at_least) {
    return (at_least ? value >= target : value <= target) ? "met" : "NOT met";
}

static void print_tables(void) {
    printf("\nThroughput (medians; ratio = local time / remote time, i.e. "
           "remote throughput as a fraction of local; raw = the same request "
           "and reply bytes through raw NNG req/rep round trips over the "
           "same transport to an echo thread, nothing computed; ceiling = "
           "local / (local + raw), the best ratio a remote call could reach, "
           "as it moves those bytes and then does the local work; "
           "raw x%d = the same batches spread over %d connections, one "
           "thread each, and overlap bound = local / max(local, raw x%d), "
           "what an add that moved its bytes that way and inserted them "
           "meanwhile could reach at best):\n\n",
           ECHO_STREAMS, ECHO_STREAMS, ECHO_STREAMS);
    printf("| operation | via | rounds | local | remote | raw NNG | ratio | "
           "ceiling | raw x%d | overlap bound | target | identical |\n"
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|:---:|\n",
           ECHO_STREAMS);
    for (int i = 0; i < nthru; i++) {
        thru_row* r = &thru[i];
        double l = bench_median(r->t[LOCAL], r->n),
               m = bench_median(r->t[REMOTE], r->n),
               w = bench_median(r->t[RAW], r->n);
        char par[32] = "-", bound[32] = "-";
        if (r->parallel) {
            double w2 = bench_median(r->t[RAW_PAR], r->n);
            snprintf(par, sizeof par, "%.1f ms", w2 * 1e3);
            snprintf(bound, sizeof bound, "%.3f", l / (l > w2 ? l : w2));
        }
        printf("| %s | %s | %d | %.1f ms | %.1f ms | %.1f ms | %.3f | %.3f | "
               "%s | %s | >= %.2f %s | %s |\n",
               r->name, r->via, r->n, l * 1e3, m * 1e3, w * 1e3, l / m,
               l / (l + w), par, bound, r->target, met(l / m, r->target, 1),
               yes_no(r->identical));
        if (r->parallel) {
            double a = bench_median(r->t[ADDMSG], r->n);
            printf("| %s, ordinary ADD (FAISSX_SHM=0) | %s | %d | %.1f ms | "
                   "%.1f ms | %.1f ms | %.3f | %.3f | %s | %s | - | %s |\n",
                   r->name, r->via, r->n, l * 1e3, a * 1e3, w * 1e3, l / a,
                   l / (l + w), par, bound, yes_no(r->identical));
        }
    }
    for (int i = 0; i < nthru; i++) {
        thru_row* r = &thru[i];
        if (!r->parallel) continue;
        double l = bench_median(r->t[LOCAL], r->n),
               c = bench_median(r->t[COPY], r->n);
        printf("\n%s (%s): one memcpy of the vectors %.1f ms; an add "
               "through shared memory that copies them once would reach at "
               "best local / (local + copy) = %.3f (%.3f if the copy "
               "overlapped the insert); the remote row's adds went through "
               "shared memory %llu times%s",
               r->name, r->via, c * 1e3, l / (l + c), l / (l > c ? l : c),
               (unsigned long long)r->streamed,
               r->streamed ? "" : " (NOT streamed: ordinary ADD)");
    }
    printf("\n");

    printf("\nSingle-query latency (each query one triple: local, remote and "
           "a raw NNG round trip of the same bytes over the same transport, "
           "back to back, the order rotating through all six; "
           "--block %d; excess = "
           "remote - local within a triple, its median and p99 over the "
           "triples; paired overhead = median of remote - local - raw per "
           "triple; target: excess p50 <= 1.3 x raw p50, with a 95%% "
           "interval of that ratio from a block bootstrap over the triples "
           "(%d resamples): met when the interval lies below 1.3, NOT met "
           "when above, else not resolved):\n\n", lat_block, lat_boot);
    printf("| index | via | triples | local p50 / p99 | remote p50 / p99 | "
           "raw NNG p50 / p99 | excess p50 / p99 | paired overhead | "
           "median of excess/raw | excess p50 / raw p50 [95%% interval] | "
           "target | identical |\n"
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|:---:|\n");
    printf("Transparent huge pages while the Flat rows ran: this process "
           "%ld KiB, the server %ld KiB (AnonHugePages; each Flat copy is "
           "%.0f MB).\n\n",
           huge_here, huge_server, flat_mb);
    for (int i = 0; i < nlat; i++) {
        lat_row* r = &lat[i];
        const char* v = r->qhi <= 1.3  ? "met"
                        : r->qlo > 1.3 ? "NOT met"
                                       : "not resolved";
        printf("| %s | %s | %lld | %.1f / %.1f us | %.1f / %.1f us | "
               "%.1f / %.1f us | %.1f / %.1f us | %.1f us | %.2f | "
               "%.2f [%.2f, %.2f] | <= 1.3 %s | %s |\n",
               r->name, r->via, (long long)r->n, r->p50[LOCAL] * 1e6,
               r->p99[LOCAL] * 1e6, r->p50[REMOTE] * 1e6,
               r->p99[REMOTE] * 1e6, r->p50[RAW] * 1e6, r->p99[RAW] * 1e6,
               r->excess50 * 1e6, r->excess99 * 1e6, r->over50 * 1e6,
               r->ratio50, r->q, r->qlo, r->qhi, v, yes_no(r->identical));
    }

    printf("\nConcurrent clients (threads sharing one index handle per "
           "side; total queries/s and CPU time per query, medians over "
           "rounds; remote CPU = this process + the server):\n\n");
    printf("| index | via | clients | queries | local q/s | remote q/s | "
           "remote / local | local CPU/query | remote CPU/query | "
           "identical |\n|---|---|---:|---:|---:|---:|---:|---:|---:|:---:|\n");
    for (int i = 0; i < nscale; i++) {
        scale_row* r = &scale[i];
        printf("| %s | %s | %d | %lld | %.0f | %.0f | %.3f | %.0f us | "
               "%.0f us | %s |\n",
               r->name, r->via, r->clients, (long long)r->queries,
               r->qps[LOCAL], r->qps[REMOTE], r->qps[REMOTE] / r->qps[LOCAL],
               r->cpu[LOCAL] * 1e6, r->cpu[REMOTE] * 1e6,
               yes_no(r->identical));
    }
}

static void print_cache_table(void) {
    if (!cache_row.n) return;
    printf("\nClient cache, single queries (the same query: remote with the "
           "cache off, then on and empty = miss, then again = hit; "
           "%llu hits, %llu misses counted):\n\n",
           (unsigned long long)cache_row.hits,
           (unsigned long long)cache_row.misses);
    printf("| index | queries | off p50 / p99 | miss p50 / p99 | "
           "hit p50 / p99 | off / hit (p50) | miss / off (p50) | "
           "identical |\n|---|---:|---:|---:|---:|---:|---:|:---:|\n");
    printf("| %s | %lld | %.1f / %.1f us | %.1f / %.1f us | %.2f / %.2f us "
           "| %.0f | %.3f | %s |\n",
           cache_row.name, (long long)cache_row.n, cache_row.p50[C_OFF] * 1e6,
           cache_row.p99[C_OFF] * 1e6, cache_row.p50[C_MISS] * 1e6,
           cache_row.p99[C_MISS] * 1e6, cache_row.p50[C_HIT] * 1e6,
           cache_row.p99[C_HIT] * 1e6,
           cache_row.p50[C_OFF] / cache_row.p50[C_HIT],
           cache_row.p50[C_MISS] / cache_row.p50[C_OFF],
           yes_no(cache_row.identical));
}

static void print_machine(void) {
    char model[256] = "?";
    FILE* f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                char* c = strchr(line, ':');
                if (c) {
                    c += 1 + (c[1] == ' ');
                    c[strcspn(c, "\n")] = '\0';
                    snprintf(model, sizeof model, "%s", c);
                }
                break;
            }
        }
        fclose(f);
    }
    printf("machine: %ld online CPUs, %s\n", sysconf(_SC_NPROCESSORS_ONLN),
           model);
}

/* Other processes' load skews every row: say how busy the machine was. */
static void print_load(const char* when) {
    char buf[128] = "?";
    FILE* f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) snprintf(buf, sizeof buf, "?");
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    printf("load average %s: %s\n", when, buf);
}

/* ------------------------------------------------------------------------ */

int main(int argc, char** argv) {
    options o;
    if (parse_args(argc, argv, &o)) {
        usage(stderr, argv[0]);
        return 2;
    }
    /* OpenBLAS sizes its thread pool when it loads, before main: run again
     * with the environment saying --threads, so this process starts no
     * more BLAS threads than it uses (the pthread build's idle threads
     * spin in sched_yield for a while after each call otherwise), and
     * OpenMP waits passively. */
    if (!getenv("FXB_REMOTE_ENV")) {
        char n[16];
        snprintf(n, sizeof n, "%d", o.threads);
        setenv("OMP_NUM_THREADS", n, 1);
        setenv("OPENBLAS_NUM_THREADS", n, 1);
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        setenv("FXB_REMOTE_ENV", "1", 1);
        execv("/proc/self/exe", argv);
        /* not fatal: openblas_set_num_threads below still applies */
    }
    /* Local mode unless told otherwise, whatever FAISSX_SERVER says. */
    const char* bin = server_binary(&o, argv[0]);
    char url[MAX_TRANSPORTS][160];
    start_server(bin, o.threads, url); /* before NNG/threads */

    lat_boot = o.boot;
    lat_block = o.block;
    omp_set_num_threads(o.threads);
    openblas_set_num_threads(o.threads);
    if (faissx_configure(NULL, NULL, 0)) die("faissx_configure(NULL)");

    printf("faissx bench: remote (faissx-server on loopback) vs local, "
           "same process, same data\n");
    print_machine();
    print_load("at start");
    printf("kernel transparent huge pages: ");
    {
        char thp[128] = "?";
        FILE* f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
        if (f) {
            if (!fgets(thp, sizeof thp, f)) snprintf(thp, sizeof thp, "?");
            fclose(f);
        }
        thp[strcspn(thp, "\n")] = '\0';
        printf("%s\n", thp);
    }
    printf("server: %s --listen %s --listen %s --threads %d --workers 2 "
           "--shm-socket %s (environment OMP_NUM_THREADS=%d "
           "OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE)\n",
           bin, url[T_IPC], url[T_TCP], o.threads, shm_path, o.threads);
    printf("threads: omp_set_num_threads(%d) (OpenMP max now %d) and "
           "openblas_set_num_threads(%d) in this program (environment "
           "OMP_NUM_THREADS=%s OPENBLAS_NUM_THREADS=%s OMP_WAIT_POLICY=%s); "
           "--threads %d on the server\n",
           o.threads, omp_get_max_threads(), o.threads,
           getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "unset",
           getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS")
                                          : "unset",
           getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "unset",
           o.threads);
    printf("transports:");
    for (int ti = 0; ti < o.ntransports; ti++)
        printf(" %s", transport_names[o.transports[ti]]);
    printf("\n");
    printf("data: d=%d, %d clusters, centres N(0,1), sigma %.3g, seed %llu\n",
           o.d, o.ncentres, o.sigma, o.seed);
    printf("sizes: nb=%lld add-batch=%lld nq=%lld k=%lld nsingle=%lld "
           "hnsw: M=%d nb=%lld ef=%d nsingle=%lld; scaling: %lld (HNSW), "
           "%lld (Flat) queries\n",
           (long long)o.nb, (long long)o.add_batch, (long long)o.nq,
           (long long)o.k, (long long)o.nsingle, o.hnsw_m,
           (long long)o.hnsw_nb, o.ef, (long long)o.hnsw_nsingle,
           (long long)o.scale_hnsw, (long long)o.scale_flat);
    printf("rounds: %d measured (+%d warm-up); sides alternate first\n",
           o.rounds, o.warmup);
    fflush(stdout);

    if (o.triples && !(triples_out = fopen(o.triples, "w"))) {
        perror(o.triples);
        stop_server();
        return 2;
    }
    double t_start = bench_now();
    uint64_t cs = o.seed ^ 0xC0FFEEULL;
    float* centres = xmalloc(sizeof(float) * (size_t)o.ncentres * o.d);
    for (size_t i = 0; i < (size_t)o.ncentres * o.d; i++)
        centres[i] = (float)rng_normal(&cs);
    int64_t nbmax = o.nb > o.hnsw_nb ? o.nb : o.hnsw_nb;
    float* xb = make_points(&o, centres, nbmax, 1);
    float* xq = make_points(&o, centres, o.nq, 2);
    free(centres);

    /* The local indexes: a Flat (filled by the add measurement) and an
     * HNSW built once here and uploaded to the server for each transport,
     * so both sides search the very same graph. */
    FaissIndex* flat[2];
    FaissIndex* hnsw[2];
    FaissIndexFlatL2* fl = NULL;
    MUST(faiss_IndexFlatL2_new_with(&fl, o.d));
    flat[LOCAL] = (FaissIndex*)fl;
    char desc[32];
    snprintf(desc, sizeof desc, "HNSW%d", o.hnsw_m);
    MUST(faiss_index_factory(&hnsw[LOCAL], o.d, desc, METRIC_L2));
    double tb = bench_now();
    MUST(faiss_Index_add(hnsw[LOCAL], o.hnsw_nb, xb));
    double tbuild = bench_now() - tb;
    set_ef(hnsw[LOCAL], o.ef);
    fprintf(stderr, "hnsw built in %.1f s\n", tbuild);
    double tupload[MAX_TRANSPORTS] = {0};

    for (int ti = 0; ti < o.ntransports; ti++) {
        int t = o.transports[ti];
        const char* via = transport_names[t];
        echo e;
        echo_start(&e, o.d, o.k, t);
        if (ti == 0)
            printf("raw round trip: %zu-byte request, %zu-byte reply (one "
                   "single-query search, d=%d k=%lld)\n",
                   e.req_bytes, e.reply_bytes, o.d, (long long)o.k);

        /* Remote: configured, created, back to local. */
        MUST(faissx_configure(url[t], NULL, 600000));
        MUST(faiss_IndexFlatL2_new_with(&fl, o.d));
        flat[REMOTE] = (FaissIndex*)fl;
        tb = bench_now();
        MUST(faissx_index_upload(hnsw[LOCAL], NULL, &hnsw[REMOTE]));
        tupload[ti] = bench_now() - tb;
        MUST(faissx_configure(NULL, NULL, 0));
        set_ef(hnsw[REMOTE], o.ef);
        if (faissx_index_is_remote(flat[LOCAL]) ||
            !faissx_index_is_remote(flat[REMOTE]) ||
            !faissx_index_is_remote(hnsw[REMOTE])) {
            fprintf(stderr, "bench_remote: index homes are not as intended\n");
            stop_server();
            return 2;
        }

        bench_flat_batch(&o, via, flat, &e, xb, xq);
        fprintf(stderr, "%s: flat add/batch done (%.0f s)\n", via,
                bench_now() - t_start);
        bench_binary_add(&o, url[t], via);
        fprintf(stderr, "%s: binary add done (%.0f s)\n", via,
                bench_now() - t_start);
        if (o.add_only) {
            faiss_Index_free(flat[REMOTE]);
            faiss_Index_free(hnsw[REMOTE]);
            echo_stop(&e);
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "Flat %lld", (long long)o.nb);
        bench_latency(&o, name, via, flat, &e, xq, o.nsingle);
        if (ti == 0) {
            huge_here = huge_kib(0);
            flat_mb = (double)o.nb * o.d * sizeof(float) / 1e6;
            huge_server = huge_kib(server_pid);
        }
        snprintf(name, sizeof name, "HNSW%d %lld, efSearch %d", o.hnsw_m,
                 (long long)o.hnsw_nb, o.ef);
        bench_latency(&o, name, via, hnsw, &e, xq, o.hnsw_nsingle);
        {
            /* The same call on a Flat of tiny-nb vectors: the excess
             * without a computation whose jitter could hide it. */
            FaissIndex* tiny[2];
            MUST(faiss_IndexFlatL2_new_with(&fl, o.d));
            tiny[LOCAL] = (FaissIndex*)fl;
            MUST(faissx_configure(url[t], NULL, 600000));
            MUST(faiss_IndexFlatL2_new_with(&fl, o.d));
            tiny[REMOTE] = (FaissIndex*)fl;
            MUST(faissx_configure(NULL, NULL, 0));
            for (int s = 0; s < 2; s++)
                MUST(faiss_Index_add(tiny[s], o.tiny_nb, xb));
            char tname[64];
            snprintf(tname, sizeof tname, "Flat %lld (the call alone)",
                     (long long)o.tiny_nb);
            bench_latency(&o, tname, via, tiny, &e, xq, o.hnsw_nsingle);
            for (int s = 0; s < 2; s++) faiss_Index_free(tiny[s]);
        }
        fprintf(stderr, "%s: latency done (%.0f s)\n", via,
                bench_now() - t_start);
        if (ti == 0) {
            bench_cache(&o, name, hnsw[REMOTE], xq, o.hnsw_nsingle);
            fprintf(stderr, "%s: cache done (%.0f s)\n", via,
                    bench_now() - t_start);
        }
        snprintf(name, sizeof name, "HNSW%d %lld", o.hnsw_m,
                 (long long)o.hnsw_nb);
        bench_scaling(&o, name, via, hnsw, xq, o.scale_hnsw);
        snprintf(name, sizeof name, "Flat %lld", (long long)o.nb);
        bench_scaling(&o, name, via, flat, xq, o.scale_flat);
        fprintf(stderr, "%s: scaling done (%.0f s)\n", via,
                bench_now() - t_start);

        faiss_Index_free(flat[REMOTE]);
        faiss_Index_free(hnsw[REMOTE]);
        echo_stop(&e);
    }
    faiss_Index_free(flat[LOCAL]);
    faiss_Index_free(hnsw[LOCAL]);
    print_tables();
    print_binary_table();
    print_cache_table();
    printf("\nHNSW build %.1f s locally (not compared); upload", tbuild);
    for (int ti = 0; ti < o.ntransports; ti++)
        printf(" %.2f s (%s)", tupload[ti], transport_names[o.transports[ti]]);
    printf("\n");
    print_load("at end");
    if (triples_out) fclose(triples_out);

    int server_ok = server_exit_status() == 0;
    if (!server_ok) {
        fprintf(stderr, "bench_remote: the server did not exit cleanly\n");
        print_server_log();
    } else {
        unlink(server_log);
    }
    unlink(ipc_path);
    printf("total %.1f s; remote and local results: %s\n", bench_now() - t_start,
           mismatches ? "DIFFER" : "identical (labels and distances, "
                                   "byte for byte, every round)");
    free(xb);
    free(xq);
    return mismatches || !server_ok ? 1 : 0;
}
