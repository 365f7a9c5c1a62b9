/* server_fixture.h -- start and stop a real faissx-server from a test.
 * The binary comes from $FAISSX_SERVER_BIN (set by tests/meson.build). The
 * server listens on a free loopback port; only 127.0.0.1 is ever used. */
#ifndef FXT_SERVER_FIXTURE_H
#define FXT_SERVER_FIXTURE_H

#include <sys/types.h>

typedef struct fxt_server {
    pid_t pid;
    int port;
    char url[64];
    char log[256]; /* the server's stderr */
} fxt_server;

/* URL scheme of the next server started: "tcp" (default) or "tls+tcp". */
extern const char* fxt_server_scheme;

/* Starts the server with extra flags (NULL-terminated list, may be NULL)
 * and waits until it accepts connections. Asserts on failure. */
void fxt_server_start(fxt_server* s, const char* const* extra_args);

/* Starts the server again on the port it had (after fxt_server_kill),
 * retrying for a few seconds while the port is still held. */
void fxt_server_restart(fxt_server* s, const char* const* extra_args);

/* SIGTERM, wait, and assert a clean exit (status 0). */
void fxt_server_stop(fxt_server* s);

/* SIGKILL and reap (for crash tests). */
void fxt_server_kill(fxt_server* s);

/* 1 while the process is alive. */
int fxt_server_alive(const fxt_server* s);

/* The server's log so far (static buffer). */
const char* fxt_server_log(const fxt_server* s);

#endif
