/* test_server_cli.c -- the faissx-server executable itself (net/server_main.c,
 * docs/operations.md): --help and --version, every flag's FAISSX_*
 * environment twin (read, validated under its own name, and overridden by
 * the flag), bad options and bind failures (exit status and message),
 * --require-auth without keys, --max-connections, --log-format json, and
 * SIGINT / SIGTERM draining a request in flight before exiting 0.
 *
 * Servers that only need to start listen on ipc:// sockets in the test's
 * temporary directory, or on tcp port 0, so these tests take no fixed
 * ports. */
#include "common.h"
#include "server_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct proc {
    pid_t pid;
    int status; /* exit status once reaped; -1 while running */
    char log[512];
} proc;

static const char* server_bin(void) {
    const char* bin = getenv("FAISSX_SERVER_BIN");
    cr_assert(bin && *bin, "FAISSX_SERVER_BIN is not set");
    return bin;
}

/* A private copy of a path from fxt_tmp_path (which reuses its buffer). */
static char* tmp(const char* name) {
    return strdup(fxt_tmp_path(name));
}

/* Starts faissx-server with `args` (NULL-terminated, may be NULL) and the
 * environment's FAISSX_* variables replaced by `env` ("NAME=value" list, may
 * be NULL). stdout and stderr go to p->log. */
static void spawn(proc* p, const char* const* env, const char* const* args) {
    static unsigned seq;
    const char* bin = server_bin();
    char name[64];
    snprintf(name, sizeof name, "cli-%u.log", seq++);
    snprintf(p->log, sizeof p->log, "%s", fxt_tmp_path(name));
    const char* argv[64];
    int argc = 0;
    argv[argc++] = bin;
    for (int i = 0; args && args[i] && argc < 62; i++) argv[argc++] = args[i];
    argv[argc] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(126);
        int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        /* Only the variables this test chose. */
        for (int again = 1; again;) {
            again = 0;
            for (char** e = environ; e && *e; e++) {
                if (!strncmp(*e, "FAISSX_", 7)) {
                    char var[256];
                    size_t n = strcspn(*e, "=");
                    if (n >= sizeof var) n = sizeof var - 1;
                    memcpy(var, *e, n);
                    var[n] = '\0';
                    unsetenv(var);
                    again = 1;
                    break;
                }
            }
        }
        for (int i = 0; env && env[i]; i++) putenv((char*)env[i]);
        execv(bin, (char* const*)argv);
        _exit(127);
    }
    p->pid = pid;
    p->status = -1;
}

/* Reaps the process if it exited within `ms`; returns 1 if it did. */
static int wait_exit(proc* p, int ms) {
    if (p->status >= 0) return 1;
    for (int t = 0;; t += 10) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return 1;
        }
        if (t >= ms) return 0;
        sleep_ms(10);
    }
}

/* The first 32 KiB of a file ("" if it cannot be read). */
static const char* slurp(const char* path) {
    static char buf[32768];
    buf[0] = '\0';
    FILE* f = fopen(path, "r");
    if (!f) return buf;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static const char* read_log(const proc* p) { return slurp(p->log); }

/* Waits until the log contains `needle`; 0 if the process exited or `ms`
 * passed first. */
static int wait_log(proc* p, const char* needle, int ms) {
    for (int t = 0; t <= ms; t += 20) {
        if (strstr(read_log(p), needle)) return 1;
        if (wait_exit(p, 0)) return strstr(read_log(p), needle) != NULL;
        sleep_ms(20);
    }
    return 0;
}

/* Runs the server to completion (it must exit within 60 s: bad options,
 * --help; generous for ASan on a loaded machine); returns its exit status,
 * the log in `out`. */
static int run(const char* const* env, const char* const* args,
               const char** out) {
    proc p;
    spawn(&p, env, args);
    if (!wait_exit(&p, 60000)) {
        kill(p.pid, SIGKILL);
        waitpid(p.pid, NULL, 0);
        cr_assert_fail("faissx-server did not exit; log:\n%s", read_log(&p));
    }
    *out = read_log(&p);
    return p.status;
}

/* Starts a server and waits for its startup report (the "auth:" line comes
 * after the listeners are up). */
static void start_ok(proc* p, const char* const* env,
                     const char* const* args) {
    spawn(p, env, args);
    if (!wait_log(p, "auth: ", 60000)) {
        if (!wait_exit(p, 0)) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
        }
        cr_assert_fail("faissx-server did not start (status %d); log:\n%s",
                       p->status, read_log(p));
    }
}

/* SIGTERM and a clean exit. */
static void stop_ok(proc* p) {
    kill(p->pid, SIGTERM);
    if (!wait_exit(p, 60000)) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        cr_assert_fail("server did not stop on SIGTERM; log:\n%s",
                       read_log(p));
    }
    cr_assert_eq(p->status, 0, "exit status %d on SIGTERM; log:\n%s",
                 p->status, read_log(p));
}

/* An ipc:// URL in the test's temporary directory. */
static char* ipc_url(const char* name) {
    char* path = tmp(name);
    char* url = malloc(strlen(path) + 8);
    sprintf(url, "ipc://%s", path);
    free(path);
    return url;
}

/* ---- --help, --version ---- */

/* The flags of issue 3 and docs/operations.md, each with its variable. */
static const char* const flags[] = {
        "listen", "tls-cert", "tls-key", "auth-keys", "auth-file",
        "require-auth", "workers", "threads", "max-message-bytes",
        "max-connections", "max-k", "max-batch", "orphan-grace-ms",
        "max-upload-bytes", "upload-idle-ms", "data-dir", "sync",
        "sync-interval-ms", "checkpoint-log-bytes", "shm-socket",
        "shm-socket-mode", "shm-stall-ms", "log-level", "log-format", NULL};

static void env_of(const char* flag, char* out, size_t n) {
    size_t k = (size_t)snprintf(out, n, "FAISSX_");
    for (; *flag && k + 1 < n; flag++)
        out[k++] = *flag == '-' ? '_' : (char)(*flag >= 'a' && *flag <= 'z'
                                                       ? *flag - 32
                                                       : *flag);
    out[k] = '\0';
}

Test(server_cli, help_lists_every_flag_and_its_variable) {
    const char* out;
    const char* args[] = {"--help", NULL};
    /* --help wins over a broken environment */
    const char* env[] = {"FAISSX_WORKERS=oops", NULL};
    cr_assert_eq(run(env, args, &out), 0, "%s", out);
    cr_assert(strstr(out, "Usage: faissx-server"), "%s", out);
    for (int i = 0; flags[i]; i++) {
        char opt[64], var[64];
        snprintf(opt, sizeof opt, "--%s", flags[i]);
        env_of(flags[i], var, sizeof var);
        cr_assert(strstr(out, opt), "--help lacks %s:\n%s", opt, out);
        char bracket[80];
        snprintf(bracket, sizeof bracket, "[%s]", var);
        cr_assert(strstr(out, bracket), "--help lacks %s:\n%s", bracket, out);
    }
    cr_assert(strstr(out, "--version"));
    cr_assert(strstr(out, "SIGINT or SIGTERM"));
    cr_assert(strstr(out, "default tcp://127.0.0.1:45678"), "%s", out);
    cr_assert_null(strstr(out, "test-drop-replies"), "testing aids in --help");
    const char* h[] = {"-h", NULL};
    cr_assert_eq(run(NULL, h, &out), 0);
    cr_assert(strstr(out, "Usage: faissx-server"));
}

Test(server_cli, version_names_the_libraries) {
    const char* out;
    const char* args[] = {"--version", NULL};
    cr_assert_eq(run(NULL, args, &out), 0, "%s", out);
    char want[128];
    snprintf(want, sizeof want, "faissx-server %s (faiss ",
             faissx_version_string());
    cr_assert(strstr(out, want), "'%s' lacks '%s'", out, want);
    cr_assert(strstr(out, "NNG ") && strstr(out, "libuv "), "%s", out);
    const char* v[] = {"-V", NULL};
    cr_assert_eq(run(NULL, v, &out), 0);
    cr_assert(strstr(out, want));
}

/* ---- bad options: exit 2, the option (or variable) named ---- */

Test(server_cli, bad_options_exit_2_with_a_clear_message) {
    static const struct {
        const char* args[4];
        const char* needle;
    } cases[] = {
            {{"--no-such-flag", NULL}, "--no-such-flag: unknown option"},
            {{"-x", NULL}, "-x: unknown option"},
            {{"--workers", NULL}, "--workers: this option needs a value"},
            {{"stray", NULL}, "stray: unexpected argument"},
            {{"--workers", "0", NULL}, "--workers: expected an integer in 1..1024, got '0'"},
            {{"--workers", "4x", NULL}, "got '4x'"},
            {{"--threads", "257", NULL}, "--threads: expected an integer in 1..256"},
            {{"--max-message-bytes", "10", NULL}, "--max-message-bytes: expected a size"},
            {{"--max-message-bytes", "5g", NULL}, "--max-message-bytes: expected a size"},
            {{"--max-connections", "-1", NULL}, "--max-connections: expected"},
            {{"--max-k", "0", NULL}, "--max-k: expected"},
            {{"--log-level", "loud", NULL}, "--log-level: expected error, warn, info or debug, got 'loud'"},
            {{"--log-format", "xml", NULL}, "--log-format: expected text or json, got 'xml'"},
            {{"--sync", "sometimes", NULL}, "--sync: expected always, interval or none"},
            {{"--require-auth=maybe", NULL}, "--require-auth: expected true or false"},
            {{"--listen", "not a url", NULL}, "--listen: 'not a url' is not a URL"},
            {{"--tls-cert", "/x.pem", NULL}, "--tls-cert and --tls-key go together"},
            {{"--listen", "tls+tcp://127.0.0.1:0", NULL}, "is a TLS listener: it needs --tls-cert"},
            {{"--shm-socket-mode", "0444", NULL}, "--shm-socket-mode: expected an octal file mode"},
            {{"--data-dir", "", NULL}, "--data-dir: expected a directory"},
            {{"--test-lock-probe", "", NULL}, "--test-lock-probe: expected a directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char* out;
        int st = run(NULL, cases[i].args, &out);
        cr_assert_eq(st, 2, "%s: exit %d, log:\n%s", cases[i].args[0], st, out);
        cr_assert(strstr(out, cases[i].needle), "%s: '%s' lacks '%s'",
                  cases[i].args[0], out, cases[i].needle);
        cr_assert(strstr(out, "Try 'faissx-server --help'"), "%s", out);
    }
}

/* Every valued flag's variable is read and validated under its own name:
 * a bad value in FAISSX_<NAME> exits 2 naming FAISSX_<NAME>, and the same
 * value as --<name> names the flag. */
Test(server_cli, every_variable_is_validated_under_its_name) {
    static const struct {
        const char* flag;
        const char* bad;
    } cases[] = {
            {"listen", "::"},
            {"require-auth", "perhaps"},
            {"workers", "abc"},
            {"threads", "0"},
            {"max-message-bytes", "1z"},
            {"max-connections", "lots"},
            {"max-k", "-3"},
            {"max-batch", "0"},
            {"orphan-grace-ms", "soon"},
            {"max-upload-bytes", "0"},
            {"upload-idle-ms", "0"},
            {"sync", "often"},
            {"sync-interval-ms", "0"},
            {"checkpoint-log-bytes", "-1"},
            {"shm-socket-mode", "9"},
            {"shm-stall-ms", "0"},
            {"log-level", "verbose"},
            {"log-format", "yaml"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char var[64], assign[128], opt[64], want[96];
        env_of(cases[i].flag, var, sizeof var);
        snprintf(assign, sizeof assign, "%s=%s", var, cases[i].bad);
        const char* env[] = {assign, NULL};
        const char* out;
        int st = run(env, NULL, &out);
        cr_assert_eq(st, 2, "%s: exit %d, log:\n%s", assign, st, out);
        snprintf(want, sizeof want, "faissx-server: %s: ", var);
        cr_assert(strstr(out, want), "%s: '%s' lacks '%s'", assign, out, want);
        cr_assert(strstr(out, cases[i].bad), "%s: '%s'", assign, out);

        snprintf(opt, sizeof opt, "--%s=%s", cases[i].flag, cases[i].bad);
        const char* args[] = {opt, NULL};
        st = run(NULL, args, &out);
        cr_assert_eq(st, 2, "%s: exit %d, log:\n%s", opt, st, out);
        snprintf(want, sizeof want, "faissx-server: --%s: ", cases[i].flag);
        cr_assert(strstr(out, want), "%s: '%s' lacks '%s'", opt, out, want);
    }
}

/* ---- every variable takes effect: the startup report shows it ---- */

static char* write_text(const char* name, const char* text) {
    char* path = tmp(name);
    FILE* f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Starts a server configured by `env` alone, checks its report contains
 * every string of `want`, and stops it. */
static void env_takes_effect(const char* const* env,
                             const char* const* want) {
    proc p;
    start_ok(&p, env, NULL);
    const char* log = read_log(&p);
    for (int i = 0; want[i]; i++)
        cr_assert(strstr(log, want[i]), "%s: report lacks '%s':\n%s", env[0],
                  want[i], log);
    stop_ok(&p);
}

static char var_buf[32][600];
static int nvar;
static const char* var(const char* fmt, const char* s) {
    cr_assert(nvar < 32);
    snprintf(var_buf[nvar], sizeof var_buf[nvar], fmt, s);
    return var_buf[nvar++];
}

Test(server_cli, every_variable_takes_effect) {
    char* u1 = ipc_url("env1.sock");
    char* u2 = ipc_url("env2.sock");
    char lst[1200];
    snprintf(lst, sizeof lst, "FAISSX_LISTEN=%s,%s", u1, u2);
    const char* l1 = var("listening on %s", u1);
    const char* l2 = var("listening on %s", u2);
    const char* listen1 = var("FAISSX_LISTEN=%s", u1);

    {
        const char* env[] = {lst, NULL};
        const char* want[] = {l1, l2, "auth: off", "in-memory", NULL};
        env_takes_effect(env, want);
    }
    {
        const char* env[] = {listen1, "FAISSX_WORKERS=3", "FAISSX_THREADS=2",
                             "FAISSX_MAX_MESSAGE_BYTES=64k",
                             "FAISSX_MAX_CONNECTIONS=7", "FAISSX_MAX_K=55",
                             "FAISSX_MAX_BATCH=999",
                             "FAISSX_ORPHAN_GRACE_MS=1234",
                             "FAISSX_MAX_UPLOAD_BYTES=2m",
                             "FAISSX_UPLOAD_IDLE_MS=4321", NULL};
        const char* want[] = {"workers=3 threads=2", "max-message-bytes=65536",
                              "max-connections=7", "max-k=55",
                              "max-batch=999", "orphan-grace-ms=1234",
                              "max-upload-bytes=2097152",
                              "upload-idle-ms=4321", NULL};
        env_takes_effect(env, want);
    }
    {
        const char* env[] = {listen1, "FAISSX_AUTH_KEYS=k1:alice", NULL};
        const char* want[] = {"auth: on", NULL};
        env_takes_effect(env, want);
    }
    {
        char* keys = write_text("keys.txt", "k2:bob\n");
        const char* env[] = {listen1, var("FAISSX_AUTH_FILE=%s", keys),
                             "FAISSX_REQUIRE_AUTH=true", NULL};
        const char* want[] = {"auth: on", NULL};
        env_takes_effect(env, want);
        free(keys);
    }
    {
        char* dir = tmp("data");
        const char* env[] = {listen1, var("FAISSX_DATA_DIR=%s", dir),
                             "FAISSX_SYNC=interval",
                             "FAISSX_SYNC_INTERVAL_MS=250",
                             "FAISSX_CHECKPOINT_LOG_BYTES=3m", NULL};
        const char* want[] = {var("kept in %s (sync interval every 250 ms)", dir),
                              "checkpoint-log-bytes=3145728", NULL};
        env_takes_effect(env, want);
        free(dir);
    }
    {
        char* sock = tmp("shm.sock");
        const char* env[] = {listen1, var("FAISSX_SHM_SOCKET=%s", sock),
                             "FAISSX_SHM_SOCKET_MODE=0660",
                             "FAISSX_SHM_STALL_MS=777", NULL};
        const char* want[] = {var("shared-memory adds: socket %s (mode 0660)", sock),
                              "stall bound 777 ms", NULL};
        env_takes_effect(env, want);
        free(sock);
    }
    {
        const char* env[] = {listen1, "FAISSX_LOG_FORMAT=json", NULL};
        proc p;
        start_ok(&p, env, NULL);
        const char* log = read_log(&p);
        /* every line a JSON object with ts, level and msg */
        int lines = 0;
        for (const char* l = log; *l; lines++) {
            const char* nl = strchr(l, '\n');
            cr_assert(nl, "unterminated line: %s", l);
            cr_assert(l[0] == '{' && nl[-1] == '}', "not JSON: %.*s",
                      (int)(nl - l), l);
            cr_assert(!strncmp(l, "{\"ts\":\"", 7), "%.*s", (int)(nl - l), l);
            cr_assert(strstr(l, "\"level\":\"info\",\"msg\":\"") < nl,
                      "%.*s", (int)(nl - l), l);
            l = nl + 1;
        }
        cr_assert_geq(lines, 3);
        stop_ok(&p);
    }
    {
        /* debug: every request is logged */
        const char* env[] = {var("FAISSX_LISTEN=%s", u2),
                             "FAISSX_LOG_LEVEL=debug", NULL};
        proc p;
        start_ok(&p, env, NULL);
        FXT_OK(faissx_configure(u2, NULL, 5000));
        char** names = NULL;
        size_t n = 0;
        FXT_OK(faissx_index_list(&names, &n));
        faissx_index_list_free(names, n);
        FXT_OK(faissx_configure(NULL, NULL, 0));
        cr_assert(wait_log(&p, "request op=list ", 5000), "no request logged:\n%s",
                  read_log(&p));
        cr_assert(strstr(read_log(&p), " debug "), "%s", read_log(&p));
        stop_ok(&p);
        /* and warn hides the info report */
        const char* quiet[] = {var("FAISSX_LISTEN=%s", u2),
                               "FAISSX_LOG_LEVEL=warn", NULL};
        spawn(&p, quiet, NULL);
        sleep_ms(500);
        cr_assert(!wait_exit(&p, 0), "exited: %s", read_log(&p));
        FXT_OK(faissx_configure(u2, NULL, 5000)); /* it serves */
        FXT_OK(faissx_configure(NULL, NULL, 0));
        cr_assert_null(strstr(read_log(&p), "listening on"), "%s",
                       read_log(&p));
        stop_ok(&p);
    }
    free(u1);
    free(u2);
}

/* The command line wins over the environment; --listen flags replace
 * FAISSX_LISTEN entirely. */
Test(server_cli, flags_win_over_variables) {
    char* u1 = ipc_url("win1.sock");
    char* u2 = ipc_url("win2.sock");
    const char* env[] = {var("FAISSX_LISTEN=%s", u1), "FAISSX_WORKERS=3",
                         "FAISSX_MAX_K=55", "FAISSX_LOG_FORMAT=json", NULL};
    const char* args[] = {"--listen", u2, "--workers", "5", "--log-format",
                          "text", NULL};
    proc p;
    start_ok(&p, env, args);
    const char* log = read_log(&p);
    cr_assert(strstr(log, "workers=5 "), "%s", log);
    cr_assert(strstr(log, "max-k=55 "), "the variable was dropped: %s", log);
    cr_assert(strstr(log, var("listening on %s", u2)), "%s", log);
    cr_assert_null(strstr(log, var("listening on %s", u1)), "%s", log);
    cr_assert_neq(log[0], '{', "%s", log);
    stop_ok(&p);
    free(u1);
    free(u2);
}

/* ---- start-up failures: exit 1 with the reason ---- */

Test(server_cli, bind_failure_exits_1_naming_the_url) {
    fxt_server first;
    fxt_server_start(&first, NULL);
    const char* args[] = {"--listen", first.url, NULL};
    const char* out;
    int st = run(NULL, args, &out);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    char want[128];
    snprintf(want, sizeof want, "faissx-server: cannot listen on %s: ",
             first.url);
    cr_assert(strstr(out, want), "'%s' lacks '%s'", out, want);
    cr_assert(strstr(out, "in use"), "%s", out);
    /* the same through the variable */
    char lv[128];
    snprintf(lv, sizeof lv, "FAISSX_LISTEN=%s", first.url);
    const char* env[] = {lv, NULL};
    st = run(env, NULL, &out);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, want), "'%s' lacks '%s'", out, want);
    cr_assert(fxt_server_alive(&first));
    fxt_server_stop(&first);

    /* an ipc path in a missing directory */
    const char* nodir[] = {"--listen", "ipc:///nonexistent-dir/x.sock", NULL};
    st = run(NULL, nodir, &out);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, "cannot listen on ipc:///nonexistent-dir/x.sock"),
              "%s", out);
}

/* --test-lock-probe (a testing aid) needs a directory it can write. */
Test(server_cli, lock_probe_directory_must_be_writable) {
    const char* args[] = {"--listen", "tcp://127.0.0.1:0", "--test-lock-probe",
                          "/nonexistent-dir/probe", NULL};
    const char* out;
    int st = run(NULL, args, &out);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, "--test-lock-probe: '/nonexistent-dir/probe' is "
                          "not a writable directory"),
              "%s", out);
}

Test(server_cli, auth_required_without_keys_refuses_to_start) {
    char* u = ipc_url("auth.sock");
    const char* out;
    const char* args[] = {"--listen", u, "--require-auth", NULL};
    int st = run(NULL, args, &out);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, "faissx-server: authentication is required but no "
                          "API keys were given"),
              "no clear reason: %s", out);
    const char* env[] = {var("FAISSX_LISTEN=%s", u), "FAISSX_REQUIRE_AUTH=1",
                         NULL};
    st = run(env, NULL, &out);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, "API key"), "%s", out);
    /* an empty key list or an empty key file is no keys either */
    char* empty = write_text("empty-keys.txt", "# none yet\n\n");
    const char* env2[] = {var("FAISSX_LISTEN=%s", u), "FAISSX_REQUIRE_AUTH=yes",
                          var("FAISSX_AUTH_FILE=%s", empty), NULL};
    st = run(env2, NULL, &out);
    cr_assert_eq(st, 1, "an empty key file satisfied --require-auth: %s", out);
    cr_assert(strstr(out, "API key"), "%s", out);
    /* a key file that cannot be read */
    const char* env3[] = {var("FAISSX_LISTEN=%s", u),
                          "FAISSX_AUTH_FILE=/nonexistent/keys.txt", NULL};
    st = run(env3, NULL, &out);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, "/nonexistent/keys.txt"), "%s", out);
    /* --require-auth=false with no keys starts */
    const char* ok[] = {"--listen", u, "--require-auth=false", NULL};
    proc p;
    start_ok(&p, NULL, ok);
    stop_ok(&p);
    free(empty);
    free(u);
}

/* ---- --max-connections ---- */

Test(server_cli, max_connections_refuses_the_extra_connection) {
    fxt_server s;
    const char* args[] = {"--max-connections", "1", NULL};
    fxt_server_start(&s, args);
    FXT_OK(faissx_configure(s.url, NULL, 3000)); /* the one connection */
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, 4, "Flat", METRIC_L2));
    /* a second client process cannot get in */
    const char* helper = getenv("FAISSX_REMOTE_HELPER");
    cr_assert(helper && *helper);
    char* helper_log = tmp("max-connections-helper.log");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(helper_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        execl(helper, helper, "ping", s.url, "1500", (char*)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    /* 2: no connection within the deadline, 3: connected, then the call
     * found it closed */
    cr_assert(WIFEXITED(st) && (WEXITSTATUS(st) == 2 || WEXITSTATUS(st) == 3),
              "a second connection was served (status 0x%x); its stderr:\n%s",
              st, slurp(helper_log));
    free(helper_log);
    int found = 0;
    for (int i = 0; i < 3000 && !found; i++) { /* up to a minute */
        found = strstr(fxt_server_log(&s), "refusing connection") != NULL;
        if (!found) sleep_ms(20);
    }
    cr_assert(found, "%s", fxt_server_log(&s));
    cr_assert(strstr(fxt_server_log(&s), "--max-connections 1"));
    /* the first is still served; once it leaves, the next gets in */
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    faiss_Index_free(ix);
    FXT_OK(faissx_configure(NULL, NULL, 0));
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        execl(helper, helper, "ping", s.url, "5000", (char*)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the connection after the first left was refused (0x%x)", st);
    fxt_server_stop(&s);
}

/* ---- SIGINT / SIGTERM: drain the request in flight, exit 0 ---- */

typedef struct drain_ctx {
    pid_t server;
    int sig;
    int sent;
} drain_ctx;

/* The progress callback runs while the server computes the call: the
 * request is in flight when the signal is sent. */
static int signal_at_first_report(const FaissxProgress* p, void* user) {
    drain_ctx* c = user;
    if (!c->sent && p->done >= 1) {
        kill(c->server, c->sig);
        c->sent = 1;
    }
    return 0;
}

static void drains_on(int sig, const char* name) {
    enum { d = 32, n = 20000 };
    fxt_server s;
    fxt_server_start(&s, NULL);
    float* xt = fxt_clustered(n, d, 100, 0.1f, 7);
    FaissIndex* rem = NULL;
    FXT_OK(faissx_configure(s.url, NULL, 0));
    FXT_OK(faiss_index_factory(&rem, d, "IVF256,Flat", METRIC_L2));
    drain_ctx c = {s.pid, sig, 0};
    faissx_set_progress_callback(signal_at_first_report, &c);
    int rc = faiss_Index_train(rem, n, xt);
    faissx_set_progress_callback(NULL, NULL);
    cr_assert(c.sent, "no progress report came");
    cr_assert_eq(rc, 0, "the call in flight failed after %s: %s", name,
                 faiss_get_last_error());
    /* the server stops by itself, cleanly */
    int st = 0, exited = 0;
    for (int i = 0; i < 1000 && !exited; i++) {
        exited = waitpid(s.pid, &st, WNOHANG) == s.pid;
        if (!exited) sleep_ms(10);
    }
    if (!exited) {
        kill(s.pid, SIGKILL);
        waitpid(s.pid, NULL, 0);
    }
    s.pid = 0;
    cr_assert(exited, "server still running 10 s after %s", name);
    const char* log = fxt_server_log(&s);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "status 0x%x after %s; log:\n%s", st, name, log);
    char want[96];
    snprintf(want, sizeof want, "%s: stopping; waiting for ", name);
    const char* at = strstr(log, want);
    cr_assert(at, "'%s' not logged:\n%s", want, log);
    cr_assert_neq(atoi(at + strlen(want)), 0, "nothing was in flight:\n%s",
                  log);
    cr_assert(strstr(log, "stopped;"), "%s", log);
    FXT_OK(faissx_configure(NULL, NULL, 0));
    faiss_Index_free(rem); /* the server is gone: freeing must not hang */
    free(xt);
}

Test(server_cli, sigint_drains_the_request_in_flight) {
    drains_on(SIGINT, "SIGINT");
}

Test(server_cli, sigterm_drains_the_request_in_flight) {
    drains_on(SIGTERM, "SIGTERM");
}
