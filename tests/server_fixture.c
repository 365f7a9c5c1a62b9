#include "server_fixture.h"

#ifdef FXT_PLAIN
#include "plain.h" /* a program without Criterion (test_mt_client) */
#else
#include "common.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Readiness: the port accepts TCP connections (works for tcp:// and
 * tls+tcp:// alike, and keeps NNG out of the parent until the test uses
 * it). */
static int can_dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr*)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Whether the socket listening on 127.0.0.1:port belongs to process pid.
 * A server that fails to bind exits, but until the fixture sees that exit
 * another test's server on the same port answers can_dial (seen in CI:
 * "cannot listen ...: Address in use", and the test talked to a stranger),
 * so readiness also requires the listener to be the child's own socket:
 * its inode from /proc/net/tcp among the child's file descriptors. */
static int listens_on(pid_t pid, int port) {
    FILE* f = fopen("/proc/net/tcp", "r");
    if (!f) return 1; /* no procfs: fall back to can_dial alone */
    char line[512];
    unsigned long inode = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned addr, lport, state;
        unsigned long ino;
        if (sscanf(line, " %*d: %x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*d %*d %lu",
                   &addr, &lport, &state, &ino) == 4 &&
            (int)lport == port && state == 0x0A /* LISTEN */) {
            inode = ino;
            break;
        }
    }
    fclose(f);
    if (!inode) return 0;
    char want[64], dir[64], path[384], got[64];
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR* d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    struct dirent* e;
    while (!found && (e = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, got, sizeof got - 1);
        if (n <= 0) continue;
        got[n] = 0;
        found = strcmp(got, want) == 0;
    }
    closedir(d);
    return found;
}

const char* fxt_server_scheme = "tcp";

/* Ports. Two ways a test server lost its port to someone else (both seen in
 * CI, as "Address in use" when a killed server was restarted on its port):
 *  - the kernel hands out ports of ip_local_port_range (32768-60999 by
 *    default) as the local end of outgoing connections, and the suites'
 *    clients dial constantly; so servers take ports below that range;
 *  - another suite's fixture picked the same port, or picked a restarted
 *    server's port in the moment it was free; so every fixture claims its
 *    ports in a directory shared by all test processes of this user (a
 *    file per port holding the claimer's pid, created with O_EXCL) and
 *    keeps them until its process exits. A claim whose process is gone is
 *    taken over. */
static int ephemeral_low(void) {
    int lo = 32768, hi = 60999;
    FILE* f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2) lo = 32768;
        fclose(f);
    }
    return lo;
}

/* $FXT_PORT_CLAIM_DIR (for the fixture's own test), else one directory
 * per user. */
static const char* claim_dir(void) {
    static char dir[256];
    const char* env = getenv("FXT_PORT_CLAIM_DIR");
    if (env && *env)
        snprintf(dir, sizeof dir, "%s", env);
    else
        snprintf(dir, sizeof dir, "/tmp/faissx-test-ports-%u",
                 (unsigned)getuid());
    mkdir(dir, 0700);
    return dir;
}

static int claimed[256];
static int nclaimed;
static pid_t claims_of; /* the process the list belongs to (forks inherit) */

static void unclaim_all(void) {
    if (claims_of != getpid()) return;
    char path[320];
    for (int i = 0; i < nclaimed; i++) {
        snprintf(path, sizeof path, "%s/%d", claim_dir(), claimed[i]);
        unlink(path);
    }
    nclaimed = 0;
}

/* Removes the stale claim at path if it still holds `stale` (its pid).
 * Under the directory's lock (tests/with_server.sh takes the same), and
 * read again there: two processes that both found it stale would otherwise
 * both remove it, the second one the first one's fresh claim. */
static void take_over(const char* path, const char* stale) {
    char lock[320], buf[32];
    snprintf(lock, sizeof lock, "%s/.takeover", claim_dir());
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd < 0) return;
    if (flock(lfd, LOCK_EX) == 0) {
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n > 0) {
                buf[n] = 0;
                if (strcmp(buf, stale) == 0) unlink(path);
            }
        }
    }
    close(lfd); /* releases the lock */
}

/* 1 when this process holds port now (claimed before or just now). */
static int claim_port(int port) {
    if (claims_of != getpid()) { /* a fork: the parent's claims are not ours */
        claims_of = getpid();
        nclaimed = 0;
        static int registered;
        if (!registered) atexit(unclaim_all);
        registered = 1;
    }
    for (int i = 0; i < nclaimed; i++)
        if (claimed[i] == port) return 1;
    if (nclaimed == (int)(sizeof claimed / sizeof claimed[0])) return 0;
    char path[320], buf[32];
    snprintf(path, sizeof path, "%s/%d", claim_dir(), port);
    for (int tries = 0; tries < 2; tries++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) {
            int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
            int ok = write(fd, buf, (size_t)n) == n;
            close(fd);
            if (!ok) {
                unlink(path);
                return 0;
            }
            claimed[nclaimed++] = port;
            return 1;
        }
        if (errno != EEXIST) return 0;
        /* Held: by a live process, or left by one that is gone. */
        fd = open(path, O_RDONLY);
        if (fd < 0) continue; /* released meanwhile: try again */
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) return 0; /* being written: the claimer is alive */
        buf[n] = 0;
        pid_t owner = (pid_t)atoi(buf);
        if (owner > 0 && (kill(owner, 0) == 0 || errno != ESRCH)) return 0;
        take_over(path, buf); /* stale */
    }
    return 0;
}

static void start_at(fxt_server* s, const char* const* extra_args,
                     int fixed_port) {
    const char* bin = getenv("FAISSX_SERVER_BIN");
    cr_assert(bin != NULL && *bin, "FAISSX_SERVER_BIN is not set");
    static unsigned seq;
    for (int attempt = 0; attempt < 20; attempt++) {
        unsigned r = (unsigned)getpid() * 7919u + (unsigned)time(NULL) +
                     (seq++) * 104729u + (unsigned)attempt * 31u;
        if (fixed_port) {
            s->port = fixed_port; /* claimed when first started */
        } else {
            int lo = 20000, hi = ephemeral_low(); /* [lo, hi) */
            if (hi - lo < 1000) { /* an unusual port range */
                lo = 10000;
                hi = hi > 11000 ? hi : 20000;
            }
            /* A port no other fixture holds: a few random picks, then
             * every port of the range in turn. */
            int span = hi - lo, got = 0;
            for (int t = 0; t < 64 + span && !got; t++) {
                s->port = t < 64 ? lo + (int)(r % (unsigned)span)
                                 : lo + (int)((r + (unsigned)t) % (unsigned)span);
                if (t < 64) r = r * 1103515245u + 12345u;
                got = claim_port(s->port);
            }
            cr_assert(got, "no free test port in %d..%d (claims in %s)", lo,
                      hi - 1, claim_dir());
        }
        snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%d", fxt_server_scheme,
                 s->port);
        snprintf(s->log, sizeof s->log, "%s", fxt_tmp_path("server-XXXX.log"));
        char* x = strstr(s->log, "XXXX");
        snprintf(x, 32, "%d-%d.log", s->port, attempt);
        const char* argv[64];
        int argc = 0;
        argv[argc++] = bin;
        argv[argc++] = "--listen";
        argv[argc++] = s->url;
        argv[argc++] = "--log-level";
        argv[argc++] = "info";
        for (int i = 0; extra_args && extra_args[i] && argc < 60; i++)
            argv[argc++] = extra_args[i];
        argv[argc] = NULL;
        pid_t parent = getpid();
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            /* A test process that dies without stopping its server (a
             * crash, a failed assertion, a timeout kill) takes the server
             * with it instead of leaving it listening. Servers are started
             * from the test's main thread, whose exit is the process's. */
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
                _exit(126);
            int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 2);
                dup2(fd, 1);
                close(fd);
            }
            /* The server must not become a client of itself. */
            unsetenv("FAISSX_SERVER");
            execv(bin, (char* const*)argv);
            _exit(127);
        }
        s->pid = pid;
        /* Until it listens or exits (a bind failure ends it). A server
         * that is alive and not listening yet is slow, not broken (ASan on
         * a loaded machine): a minute before it counts as stuck. */
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                s->pid = 0;
                break; /* exited: port taken? try another */
            }
            if (can_dial(s->port) && listens_on(pid, s->port)) return;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - t0.tv_sec > 60) break;
            sleep_ms(20);
        }
        if (s->pid) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
        if (fixed_port) sleep_ms(250); /* the port may still be held */
    }
    cr_assert_fail("faissx-server did not start; last log %s:\n%s", s->log,
                   fxt_server_log(s));
}

void fxt_server_start(fxt_server* s, const char* const* extra_args) {
    start_at(s, extra_args, 0);
}

void fxt_server_restart(fxt_server* s, const char* const* extra_args) {
    cr_assert(s->port > 0 && s->pid == 0, "restart needs a stopped server");
    start_at(s, extra_args, s->port);
}

int fxt_server_alive(const fxt_server* s) {
    return s->pid > 0 && kill(s->pid, 0) == 0;
}

void fxt_server_stop(fxt_server* s) {
    if (s->pid <= 0) return;
    kill(s->pid, SIGTERM);
    int st = 0;
    /* A drain and, under ASan, the leak check at exit: slow on a loaded
     * machine; only a server that never exits fails here. */
    for (int i = 0; i < 6000; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "server did not exit cleanly on SIGTERM (status 0x%x); "
                      "log:\n%s",
                      st, fxt_server_log(s));
            return;
        }
        sleep_ms(10);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    cr_assert_fail("server did not stop within 60 s of SIGTERM; log:\n%s",
                   fxt_server_log(s));
}

void fxt_server_kill(fxt_server* s) {
    if (s->pid <= 0) return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

const char* fxt_server_log(const fxt_server* s) {
    static char buf[16384];
    buf[0] = '\0';
    FILE* f = fopen(s->log, "r");
    if (!f) return "(no log)";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}
