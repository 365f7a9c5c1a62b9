/* server_main.c -- the faissx-server executable: flags and environment
 * into an fx_server_conf, then fx_server_run (docs/operations.md).
 *
 * Every flag --some-name has an environment twin FAISSX_SOME_NAME; a flag
 * given on the command line wins over its variable. Exit status: 0 after a
 * clean stop, 1 when the server cannot start or fails, 2 for a bad flag or
 * value. */
#include "net/server.h"

#include <faissx/faissx.h>

#include <nng/nng.h>
#include <uv.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define PROG "faissx-server"

enum {
    F_LISTEN = 256,
    F_TLS_CERT,
    F_TLS_KEY,
    F_AUTH_KEYS,
    F_AUTH_FILE,
    F_REQUIRE_AUTH,
    F_WORKERS,
    F_THREADS,
    F_MAX_MESSAGE_BYTES,
    F_MAX_CONNECTIONS,
    F_MAX_K,
    F_MAX_BATCH,
    F_ORPHAN_GRACE_MS,
    F_MAX_UPLOAD_BYTES,
    F_UPLOAD_IDLE_MS,
    F_DATA_DIR,
    F_SYNC,
    F_SYNC_INTERVAL_MS,
    F_CHECKPOINT_LOG_BYTES,
    F_SHM_SOCKET,
    F_SHM_SOCKET_MODE,
    F_SHM_STALL_MS,
    F_LOG_LEVEL,
    F_LOG_FORMAT,
    F_TEST_DROP_REPLIES, /* testing aids, not in --help */
    F_TEST_OLD_PROTOCOL,
    F_TEST_LOCK_PROBE,
};

/* The settable flags, in --help order; each also reads FAISSX_<NAME>. */
static const struct option options[] = {
        {"listen", required_argument, NULL, F_LISTEN},
        {"tls-cert", required_argument, NULL, F_TLS_CERT},
        {"tls-key", required_argument, NULL, F_TLS_KEY},
        {"auth-keys", required_argument, NULL, F_AUTH_KEYS},
        {"auth-file", required_argument, NULL, F_AUTH_FILE},
        {"require-auth", optional_argument, NULL, F_REQUIRE_AUTH},
        {"workers", required_argument, NULL, F_WORKERS},
        {"threads", required_argument, NULL, F_THREADS},
        {"max-message-bytes", required_argument, NULL, F_MAX_MESSAGE_BYTES},
        {"max-connections", required_argument, NULL, F_MAX_CONNECTIONS},
        {"max-k", required_argument, NULL, F_MAX_K},
        {"max-batch", required_argument, NULL, F_MAX_BATCH},
        {"orphan-grace-ms", required_argument, NULL, F_ORPHAN_GRACE_MS},
        {"max-upload-bytes", required_argument, NULL, F_MAX_UPLOAD_BYTES},
        {"upload-idle-ms", required_argument, NULL, F_UPLOAD_IDLE_MS},
        {"data-dir", required_argument, NULL, F_DATA_DIR},
        {"sync", required_argument, NULL, F_SYNC},
        {"sync-interval-ms", required_argument, NULL, F_SYNC_INTERVAL_MS},
        {"checkpoint-log-bytes", required_argument, NULL,
         F_CHECKPOINT_LOG_BYTES},
        {"shm-socket", required_argument, NULL, F_SHM_SOCKET},
        {"shm-socket-mode", required_argument, NULL, F_SHM_SOCKET_MODE},
        {"shm-stall-ms", required_argument, NULL, F_SHM_STALL_MS},
        {"log-level", required_argument, NULL, F_LOG_LEVEL},
        {"log-format", required_argument, NULL, F_LOG_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        /* After --version: --help does not list testing aids. */
        {"test-drop-replies", required_argument, NULL, F_TEST_DROP_REPLIES},
        {"test-old-protocol", optional_argument, NULL, F_TEST_OLD_PROTOCOL},
        {"test-lock-probe", required_argument, NULL, F_TEST_LOCK_PROBE},
        {NULL, 0, NULL, 0},
};

static const char* const log_levels[] = {"error", "warn", "info", "debug"};
/* In FaissxSyncPolicy order. */
static const char* const sync_names[] = {"always", "interval", "none"};

/* FAISSX_<NAME> for --<name>. */
static void env_name(const char* flag, char* out, size_t n) {
    size_t k = (size_t)snprintf(out, n, "FAISSX_");
    for (; *flag && k + 1 < n; flag++)
        out[k++] = *flag == '-' ? '_' : (char)toupper((unsigned char)*flag);
    out[k] = '\0';
}

/* --help text per option (same order as `options`): argument, what it
 * does, default. */
static const struct {
    const char* arg;
    const char* what;
} help[] = {
        {"URL", "listen on URL; repeatable (env: comma-separated)"},
        {"FILE", "PEM certificate (chain) for tls+tcp:// listeners"},
        {"FILE", "PEM private key of --tls-cert"},
        {"LIST", "API keys as KEY:TENANT[:ro],..."},
        {"FILE", "API keys, one KEY:TENANT[:ro] per line"},
        {"[=BOOL]", "refuse to start without API keys"},
        {"N", "requests handled at once (1..1024)"},
        {"N", "OpenMP threads per request (1..256)"},
        {"N", "largest request; suffix k/m/g = KiB/MiB/GiB"},
        {"N", "open connections at most; 0 = no limit"},
        {"N", "largest k a search may ask for"},
        {"N", "most vectors in one request"},
        {"N", "ms a dropped client's anonymous indexes wait"},
        {"N", "bytes of uploads/downloads a tenant may stage; k/m/g"},
        {"N", "ms before an idle upload/download is discarded"},
        {"DIR", "keep named indexes durably in DIR (default: in memory)"},
        {"POLICY", "always, interval or none (with --data-dir)"},
        {"N", "ms between fsyncs under --sync interval"},
        {"N", "checkpoint an index when its log passes N bytes (0: at stop/train only)"},
        {"PATH", "Unix socket for same-host shared-memory adds (off if unset)"},
        {"OCTAL", "file mode of --shm-socket"},
        {"N", "ms without a chunk before a shared-memory add is aborted"},
        {"LEVEL", "error, warn, info, debug (debug: every request)"},
        {"FORMAT", "text or json"},
};

static void usage(FILE* f) {
    fx_server_conf d;
    char defs[F_LOG_FORMAT - F_LISTEN + 1][64];
    fx_server_conf_init(&d);
    if (!d.orphan_grace_ms) d.orphan_grace_ms = FX_DEFAULT_ORPHAN_GRACE_MS;
    memset(defs, 0, sizeof defs);
    snprintf(defs[F_LISTEN - F_LISTEN], 64, "%s", FX_DEFAULT_URL);
    snprintf(defs[F_REQUIRE_AUTH - F_LISTEN], 64, "%s",
             d.require_auth ? "true" : "false");
    snprintf(defs[F_WORKERS - F_LISTEN], 64, "%d", d.workers);
    snprintf(defs[F_THREADS - F_LISTEN], 64, "%d", d.threads);
    snprintf(defs[F_MAX_MESSAGE_BYTES - F_LISTEN], 64, "%zu",
             d.max_message_bytes);
    snprintf(defs[F_MAX_CONNECTIONS - F_LISTEN], 64, "%d", d.max_connections);
    snprintf(defs[F_MAX_K - F_LISTEN], 64, "%" PRId64, d.max_k);
    snprintf(defs[F_MAX_BATCH - F_LISTEN], 64, "%" PRId64, d.max_batch);
    snprintf(defs[F_ORPHAN_GRACE_MS - F_LISTEN], 64, "%" PRIu64,
             d.orphan_grace_ms);
    snprintf(defs[F_MAX_UPLOAD_BYTES - F_LISTEN], 64, "%" PRIu64,
             d.max_upload_bytes);
    snprintf(defs[F_UPLOAD_IDLE_MS - F_LISTEN], 64, "%" PRIu64,
             d.upload_idle_ms);
    snprintf(defs[F_SYNC - F_LISTEN], 64, "%s", sync_names[d.sync]);
    snprintf(defs[F_SYNC_INTERVAL_MS - F_LISTEN], 64, "%d",
             d.sync_interval_ms);
    snprintf(defs[F_CHECKPOINT_LOG_BYTES - F_LISTEN], 64, "%" PRIu64,
             d.checkpoint_log_bytes);
    snprintf(defs[F_SHM_SOCKET_MODE - F_LISTEN], 64, "%04o",
             d.shm_socket_mode);
    snprintf(defs[F_SHM_STALL_MS - F_LISTEN], 64, "%" PRIu64, d.shm_stall_ms);
    snprintf(defs[F_LOG_LEVEL - F_LISTEN], 64, "%s",
             log_levels[d.log_level >= 0 && d.log_level <= 3 ? d.log_level
                                                               : 2]);
    snprintf(defs[F_LOG_FORMAT - F_LISTEN], 64, "%s",
             d.log_json ? "json" : "text");

    fprintf(f, "Usage: " PROG " [OPTION]...\n"
               "Serve faissx indexes over NNG request/reply. Named indexes "
               "are kept\ndurably with --data-dir, else everything lives in "
               "memory only.\n"
               "Each option can also be set by the environment variable "
               "shown in [ ];\n"
               "the command line wins over the environment.\n\n");
    for (int i = 0; options[i].val >= F_LISTEN; i++) {
        char env[64], left[64];
        env_name(options[i].name, env, sizeof env);
        snprintf(left, sizeof left, "--%s%s%s", options[i].name,
                 help[i].arg[0] == '[' ? "" : " ", help[i].arg);
        fprintf(f, "  %-26s %s\n  %-26s [%s]", left, help[i].what, "", env);
        if (defs[i][0]) fprintf(f, " default %s", defs[i]);
        fprintf(f, "\n");
    }
    fprintf(f, "  -h, --help                 print this help and exit\n"
               "  -V, --version              print versions and exit\n\n"
               "SIGINT or SIGTERM: stop taking requests, finish those in "
               "flight, checkpoint\nthe stored indexes (--data-dir), exit 0;\n"
               "a second signal exits at once with status 1.\n"
               "Exit status: 0 clean stop, 1 cannot start, 2 bad option.\n"
               "See docs/operations.md.\n");
}

static void version(void) {
    printf(PROG " %s (faiss %s, NNG %s, libuv %s)\n",
           faissx_version_string(), faiss_get_version(), nng_version(),
           uv_version_string());
}

/* A bad option or value: say which, and exit 2. */
static void bad(const char* src, const char* fmt, ...)
        __attribute__((format(printf, 2, 3), noreturn));
static void bad(const char* src, const char* fmt, ...) {
    va_list ap;
    fprintf(stderr, PROG ": %s: ", src);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" PROG " --help'.\n");
    exit(2);
}

/* An integer in [lo, hi]; with `sizes`, a k/m/g suffix multiplies by
 * 1024^1..3. */
static int64_t parse_int(const char* src, const char* v, int64_t lo,
                         int64_t hi, int sizes) {
    char* end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    int64_t mul = 1;
    if (sizes && end != v && *end) {
        switch (tolower((unsigned char)*end)) {
        case 'k': mul = (int64_t)1 << 10; end++; break;
        case 'm': mul = (int64_t)1 << 20; end++; break;
        case 'g': mul = (int64_t)1 << 30; end++; break;
        default: break;
        }
    }
    if (end == v || *end || errno || isspace((unsigned char)*v) ||
        n > INT64_MAX / mul || n < lo / mul || n * mul < lo || n * mul > hi)
        bad(src, "expected %s in %" PRId64 "..%" PRId64 ", got '%s'",
            sizes ? "a size (bytes, or with a k/m/g suffix)" : "an integer",
            lo, hi, v);
    return (int64_t)n * mul;
}

static int parse_bool(const char* src, const char* v) {
    static const char* const yes[] = {"1", "true", "yes", "on"};
    static const char* const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) return 1;
        if (!strcasecmp(v, no[i])) return 0;
    }
    bad(src, "expected true or false (1/0, yes/no, on/off), got '%s'", v);
}

typedef struct settings {
    fx_server_conf c;
    int listen_set_by_flag;
} settings;

static void add_listen(settings* st, const char* src, const char* url) {
    fx_server_conf* c = &st->c;
    nng_url* u;
    int rv;
    if (c->nlisten == FX_MAX_LISTEN)
        bad(src, "at most %d listen URLs", FX_MAX_LISTEN);
    if ((rv = nng_url_parse(&u, url)) != 0)
        bad(src, "'%s' is not a URL (%s)", url, nng_strerror(rv));
    nng_url_free(u);
    c->listen[c->nlisten++] = url;
}

/* Applies one setting; `src` names it in messages ("--workers" or
 * "FAISSX_WORKERS"). `v` must stay valid while the server runs. */
static void apply(settings* st, int id, const char* src, char* v) {
    fx_server_conf* c = &st->c;
    switch (id) {
    case F_LISTEN:
        if (src[0] == '-') {
            add_listen(st, src, v);
        } else { /* FAISSX_LISTEN: comma-separated */
            for (char* tok = strtok(v, ", "); tok; tok = strtok(NULL, ", "))
                add_listen(st, src, tok);
        }
        break;
    case F_TLS_CERT: c->tls_cert = v; break;
    case F_TLS_KEY: c->tls_key = v; break;
    case F_AUTH_KEYS: c->auth_keys = v; break;
    case F_AUTH_FILE: c->auth_file = v; break;
    case F_REQUIRE_AUTH: c->require_auth = v ? parse_bool(src, v) : 1; break;
    case F_WORKERS: c->workers = (int)parse_int(src, v, 1, 1024, 0); break;
    case F_THREADS: c->threads = (int)parse_int(src, v, 1, 256, 0); break;
    case F_MAX_MESSAGE_BYTES:
        /* The header's body length is 32 bits. */
        c->max_message_bytes = (size_t)parse_int(
                src, v, 1024, (int64_t)UINT32_MAX + FX_HDR_SIZE, 1);
        break;
    case F_MAX_CONNECTIONS:
        c->max_connections = (int)parse_int(src, v, 0, 1000000, 0);
        break;
    case F_MAX_K: c->max_k = parse_int(src, v, 1, (int64_t)1 << 30, 0); break;
    case F_MAX_BATCH:
        c->max_batch = parse_int(src, v, 1, (int64_t)1 << 40, 0);
        break;
    case F_ORPHAN_GRACE_MS:
        c->orphan_grace_ms =
                (uint64_t)parse_int(src, v, 0, (int64_t)1 << 40, 0);
        break;
    case F_MAX_UPLOAD_BYTES:
        c->max_upload_bytes =
                (uint64_t)parse_int(src, v, 1, (int64_t)1 << 50, 1);
        break;
    case F_UPLOAD_IDLE_MS:
        c->upload_idle_ms =
                (uint64_t)parse_int(src, v, 1, (int64_t)1 << 40, 0);
        break;
    case F_DATA_DIR:
        if (!*v) bad(src, "expected a directory, got ''");
        c->data_dir = v;
        break;
    case F_SYNC: {
        int i = 0;
        while (i < 3 && strcasecmp(v, sync_names[i])) i++;
        if (i == 3) bad(src, "expected always, interval or none, got '%s'", v);
        c->sync = i;
        break;
    }
    case F_SYNC_INTERVAL_MS:
        c->sync_interval_ms = (int)parse_int(src, v, 1, 3600000, 0);
        break;
    case F_CHECKPOINT_LOG_BYTES:
        c->checkpoint_log_bytes =
                (uint64_t)parse_int(src, v, 0, (int64_t)1 << 50, 1);
        break;
    case F_SHM_SOCKET:
        if (!*v) bad(src, "expected a socket path, got ''");
        c->shm_socket = v;
        break;
    case F_SHM_SOCKET_MODE: {
        char* end;
        errno = 0;
        unsigned long m = strtoul(v, &end, 8);
        if (end == v || *end || errno || m > 0777 || !(m & 0600) ||
            (m & 0600) != 0600)
            bad(src, "expected an octal file mode in 0600..0777 that lets "
                "the owner read and write, got '%s'", v);
        c->shm_socket_mode = (unsigned)m;
        break;
    }
    case F_SHM_STALL_MS:
        c->shm_stall_ms = (uint64_t)parse_int(src, v, 1, 3600000, 0);
        break;
    case F_LOG_LEVEL: {
        int i = 0;
        while (i < 4 && strcasecmp(v, log_levels[i])) i++;
        if (i == 4)
            bad(src, "expected error, warn, info or debug, got '%s'", v);
        c->log_level = i;
        break;
    }
    case F_LOG_FORMAT:
        if (!strcasecmp(v, "text"))
            c->log_json = 0;
        else if (!strcasecmp(v, "json"))
            c->log_json = 1;
        else
            bad(src, "expected text or json, got '%s'", v);
        break;
    case F_TEST_DROP_REPLIES:
        c->test_drop_replies = (int)parse_int(src, v, 0, 1000000, 0);
        break;
    case F_TEST_OLD_PROTOCOL:
        c->test_old_protocol = v ? parse_bool(src, v) : 1;
        break;
    case F_TEST_LOCK_PROBE:
        if (!*v) bad(src, "expected a directory, got ''");
        c->test_lock_probe = v;
        break;
    default: abort();
    }
}

int main(int argc, char** argv) {
    settings st;
    memset(&st, 0, sizeof st);
    fx_server_conf_init(&st.c);
    if (!st.c.orphan_grace_ms)
        st.c.orphan_grace_ms = FX_DEFAULT_ORPHAN_GRACE_MS;

    /* Parse the command line first (so --help works whatever the
     * environment holds), apply it after the environment (so it wins). */
    struct {
        int id;
        char* v;
        const char* name;
    } given[256];
    int ngiven = 0, opt, idx;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":hV", options, &idx)) != -1) {
        switch (opt) {
        case 'h': usage(stdout); return 0;
        case 'V': version(); return 0;
        case ':':
            bad(argv[optind - 1], "this option needs a value");
        case '?':
            if (optopt) {
                char flag[3] = {'-', (char)optopt, '\0'};
                bad(flag, "unknown option");
            }
            bad(argv[optind - 1], "unknown option");
        default:
            if ((size_t)ngiven == sizeof given / sizeof given[0])
                bad(argv[optind - 1], "too many options");
            given[ngiven].id = opt;
            given[ngiven].v = optarg;
            given[ngiven].name = options[idx].name;
            ngiven++;
        }
    }
    if (optind < argc)
        bad(argv[optind], "unexpected argument (options start with --)");

    /* The variables' writable copies (FAISSX_LISTEN is split in place);
     * the settings point into them until the server has stopped. */
    char* env_copies[sizeof options / sizeof options[0]];
    size_t nenv_copies = 0;
    for (const struct option* o = options; o->name; o++) {
        if (o->val < F_LISTEN) continue;
        char name[64];
        env_name(o->name, name, sizeof name);
        const char* v = getenv(name);
        if (!v || !*v) continue;
        int overridden = 0;
        for (int i = 0; i < ngiven; i++) overridden |= given[i].id == o->val;
        if (overridden) continue;
        char* copy = strdup(v);
        if (!copy) {
            fprintf(stderr, PROG ": out of memory\n");
            return 1;
        }
        env_copies[nenv_copies++] = copy;
        apply(&st, o->val, name, copy);
    }
    for (int i = 0; i < ngiven; i++) {
        char src[64];
        snprintf(src, sizeof src, "--%s", given[i].name);
        if (given[i].id == F_LISTEN && !st.listen_set_by_flag) {
            st.c.nlisten = 0; /* flags replace FAISSX_LISTEN entirely */
            st.listen_set_by_flag = 1;
        }
        apply(&st, given[i].id, src, given[i].v);
    }

    fx_server_conf* c = &st.c;
    if (!c->tls_cert != !c->tls_key)
        bad(c->tls_cert ? "--tls-cert" : "--tls-key",
            "--tls-cert and --tls-key go together");
    for (int i = 0; i < c->nlisten; i++)
        if (!strncmp(c->listen[i], "tls+", 4) && !c->tls_cert)
            bad("--listen", "'%s' is a TLS listener: it needs --tls-cert "
                "and --tls-key", c->listen[i]);

    /* Idle OpenMP threads spin by default and starve the other workers;
     * libgomp reads OMP_WAIT_POLICY only at startup, so re-execute once
     * with it set when requests may use several threads. */
    if (c->threads > 1 && !getenv("OMP_WAIT_POLICY")) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        if (n > 0) {
            self[n] = '\0'; /* the real path keeps the process name */
            execv(self, argv);
        }
        fprintf(stderr,
                PROG ": warning: could not re-execute with "
                     "OMP_WAIT_POLICY=PASSIVE (%s); set it yourself\n",
                strerror(errno));
    }

    signal(SIGPIPE, SIG_IGN);
    /* SIGINT and SIGTERM stay pending until fx_server_run has its handlers:
     * one that arrives while the server starts (it may already listen)
     * then drains and exits 0 instead of killing the process. Threads
     * started meanwhile inherit the mask, so the loop thread takes them. */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stops, NULL);
    char err[512];
    int rv = fx_server_run(c, err, sizeof err);
    for (size_t i = 0; i < nenv_copies; i++) free(env_copies[i]);
    if (rv != 0) {
        fprintf(stderr, PROG ": %s\n", err[0] ? err : faissx_strerror(rv));
        return 1;
    }
    return 0;
}
