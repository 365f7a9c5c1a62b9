/* test_remote_locks.c -- "many readers of an index at once, writers
 * exclusive", shown on a real faissx-server (--workers 4) without timing.
 *
 * The server runs with --test-lock-probe DIR (net/lock_probe.h): a search
 * or a write of an index that gets the index's lock creates
 * DIR/INDEX.read.N or DIR/INDEX.write.N and stays inside the lock until
 * the test removes that file; one that finds the lock held against it
 * first creates DIR/INDEX.blocked-read.N / .blocked-write.N and then waits
 * for the lock; a holder that finds another holder it should have
 * excluded creates DIR/OVERLAP.INDEX.N. So the test sees exactly who is
 * inside, holds them there as long as it likes, and every wait below is
 * for a file to appear (with a generous deadline), never a sleep that
 * hopes something happened. Client calls run on their own threads, one
 * handle each, with a 10-minute deadline so that no call is retried. */
#include "common.h"
#include "server_fixture.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { D = 8, NB = 64, K = 3 };

static fxt_server srv;
static char probe[64];

/* ---- the probe directory ---- */

/* Files of `index` in the probe directory whose state is `what` (read,
 * write, blocked-read, blocked-write), or that show an overlap (index
 * NULL: OVERLAP.*). */
static int count(const char* index, const char* what) {
    DIR* d = opendir(probe);
    cr_assert(d != NULL, "cannot list %s: %s", probe, strerror(errno));
    char want[128];
    if (index)
        snprintf(want, sizeof want, "%s.%s.", index, what);
    else
        snprintf(want, sizeof want, "OVERLAP.");
    int n = 0;
    struct dirent* de;
    while ((de = readdir(d)) != NULL)
        if (!strncmp(de->d_name, want, strlen(want))) n++;
    closedir(d);
    return n;
}

/* The probe directory's file names, for failure messages (static). */
static const char* listing(void) {
    static char buf[4096];
    size_t len = 0;
    buf[0] = '\0';
    DIR* d = opendir(probe);
    if (!d) return "(cannot list)";
    struct dirent* de;
    while ((de = readdir(d)) != NULL && len + 80 < sizeof buf)
        if (de->d_name[0] != '.')
            len += (size_t)snprintf(buf + len, sizeof buf - len, " %s",
                                    de->d_name);
    closedir(d);
    return buf;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits (up to 2 minutes: CI is a loaded 2-core machine, under ASan)
 * until `index` has at least n files in state `what`. */
static void wait_for(const char* index, const char* what, int n) {
    double give_up = now_s() + 120;
    while (count(index, what) < n) {
        cr_assert_eq(count(NULL, NULL), 0,
                     "the server saw a lock shared against its mode while "
                     "waiting for '%s.%s'; probe directory:%s",
                     index, what, listing());
        cr_assert(now_s() < give_up,
                  "after 2 minutes, %d of %d '%s.%s' file(s); probe "
                  "directory:%s\nserver log:\n%s",
                  count(index, what), n, index, what, listing(),
                  fxt_server_log(&srv));
        sleep_ms(2);
    }
}

/* Removes the files of `index` in state `what` (letting those requests
 * go); returns how many. */
static int release(const char* index, const char* what) {
    DIR* d = opendir(probe);
    cr_assert(d != NULL);
    char want[128], path[512];
    snprintf(want, sizeof want, "%s.%s.", index, what);
    int n = 0;
    struct dirent* de;
    while ((de = readdir(d)) != NULL)
        if (!strncmp(de->d_name, want, strlen(want))) {
            snprintf(path, sizeof path, "%s/%s", probe, de->d_name);
            cr_assert(unlink(path) == 0, "unlink %s: %s", path,
                      strerror(errno));
            n++;
        }
    closedir(d);
    return n;
}

/* Empties and removes the probe directory, so that requests still held
 * go on and later ones are not held (their files cannot be created). */
static void remove_probe(void) {
    if (!probe[0]) return;
    for (int round = 0; round < 1000; round++) {
        DIR* d = opendir(probe);
        if (!d) break;
        struct dirent* de;
        char path[512];
        while ((de = readdir(d)) != NULL)
            if (de->d_name[0] != '.') {
                snprintf(path, sizeof path, "%s/%s", probe, de->d_name);
                unlink(path);
            }
        closedir(d);
        if (rmdir(probe) == 0 || errno != ENOTEMPTY) break;
    }
    probe[0] = '\0';
}

static void start(void) {
    snprintf(probe, sizeof probe, "/tmp/fxt-locks.XXXXXX");
    cr_assert(mkdtemp(probe) != NULL, "mkdtemp: %s", strerror(errno));
    const char* args[] = {"--workers", "4", "--test-lock-probe", probe, NULL};
    fxt_server_start(&srv, args);
    FXT_OK(faissx_configure(srv.url, NULL, 600000));
}

static void stop(void) {
    remove_probe();
    faissx_configure(NULL, NULL, 0);
    fxt_server_stop(&srv);
}

/* ---- client calls on their own threads ---- */

typedef enum { SEARCH, ADD, RESET, TRAIN } call_kind;

typedef struct call {
    FaissIndex* ix; /* the call's own handle */
    call_kind kind;
    const float* x; /* NB vectors */
    int rc;
    char err[256];
    idx_t labels[K];
    pthread_t thread;
} call;

static void* run_call(void* arg) {
    call* c = arg;
    float dist[K];
    switch (c->kind) {
    case SEARCH:
        c->rc = faiss_Index_search(c->ix, 1, c->x, K, dist, c->labels);
        break;
    case ADD: c->rc = faiss_Index_add(c->ix, NB, c->x); break;
    case RESET: c->rc = faiss_Index_reset(c->ix); break;
    case TRAIN: c->rc = faiss_Index_train(c->ix, NB, c->x); break;
    }
    if (c->rc) {
        const char* m = faiss_get_last_error();
        snprintf(c->err, sizeof c->err, "%s", m ? m : "(no message)");
    }
    return NULL;
}

/* Prepares `kind` on a new handle to the named index. Open handles
 * before holding anything: OPEN reads the index's state under its read
 * lock, so it would wait for a writer held inside. */
static void prepare(call* c, const char* index, call_kind kind,
                    const float* x) {
    memset(c, 0, sizeof *c);
    FXT_OK(faissx_index_open(&c->ix, index));
    c->kind = kind;
    c->x = x;
}

/* Starts the call on its own thread. */
static void begin(call* c) {
    cr_assert(pthread_create(&c->thread, NULL, run_call, c) == 0);
}

/* Waits for the call to return; asserts it succeeded; frees its handle. */
static void finish(call* c) {
    cr_assert(pthread_join(c->thread, NULL) == 0);
    cr_assert_eq(c->rc, 0, "call %d failed: %s", (int)c->kind, c->err);
    faiss_Index_free(c->ix);
    c->ix = NULL;
}

static void create(const char* name) {
    FaissIndex* ix = NULL;
    FXT_OK(faissx_index_create(&ix, name, D, "Flat", METRIC_L2));
    faiss_Index_free(ix);
}

static void no_overlap(void) {
    cr_assert_eq(count(NULL, NULL), 0,
                 "the server saw a lock shared against its mode; probe "
                 "directory:%s",
                 listing());
}

/* (a) Two searches of the same index are inside its lock at once: the
 * second gets the read lock while the first holds it. */
Test(remote_locks, two_searches_of_one_index_hold_it_together, .init = start,
     .fini = stop, .timeout = 600) {
    float* xb = fxt_uniform(NB, D, 1);
    create("a");
    call fill, s1, s2;
    prepare(&fill, "a", ADD, xb);
    prepare(&s1, "a", SEARCH, xb);
    prepare(&s2, "a", SEARCH, xb + D);
    begin(&fill); // held inside, like every write
    wait_for("a", "write", 1);
    cr_assert_eq(release("a", "write"), 1);
    finish(&fill);

    begin(&s1);
    wait_for("a", "read", 1);
    begin(&s2);
    // s2 cannot finish before s1 is let go: if searches excluded each
    // other, this would wait until the deadline and fail.
    wait_for("a", "read", 2);
    cr_assert_eq(count("a", "write"), 0);
    no_overlap();
    cr_assert_eq(release("a", "read"), 2);
    finish(&s1);
    finish(&s2);
    // Each query is one of the base vectors: its own row is nearest.
    cr_assert_eq(s1.labels[0], 0);
    cr_assert_eq(s2.labels[0], 1);
    no_overlap();
    free(xb);
}

/* (b) An add holds its index alone: a search, a reset and a train of the
 * same index that arrive meanwhile find the lock taken and wait; let go
 * one at a time, each writer is alone inside, and the search never shares
 * the lock with a writer. */
Test(remote_locks, a_write_holds_its_index_alone, .init = start,
     .fini = stop, .timeout = 600) {
    float* xb = fxt_uniform(NB, D, 2);
    create("b");
    call w1, rest[3];
    prepare(&w1, "b", ADD, xb);
    prepare(&rest[0], "b", SEARCH, xb);
    prepare(&rest[1], "b", RESET, NULL);
    prepare(&rest[2], "b", TRAIN, xb);
    begin(&w1);
    wait_for("b", "write", 1);
    for (int i = 0; i < 3; i++) begin(&rest[i]);
    // Each found the lock held by w1 (a try-lock failed) and waits for it.
    wait_for("b", "blocked-read", 1);
    wait_for("b", "blocked-write", 2);
    cr_assert_eq(count("b", "write"), 1, "probe directory:%s", listing());
    cr_assert_eq(count("b", "read"), 0, "probe directory:%s", listing());
    no_overlap();

    // Let the holder go; whoever gets the lock next must be alone in it
    // (or be the search, alone too as no other reader was sent). Four
    // requests in all pass through the lock.
    int passed = release("b", "write");
    cr_assert_eq(passed, 1);
    while (passed < 4) {
        double give_up = now_s() + 120;
        int r, w;
        while ((r = count("b", "read")) + (w = count("b", "write")) == 0) {
            cr_assert(now_s() < give_up,
                      "after 2 minutes nobody holds the lock, %d of 4 "
                      "passed; probe directory:%s\nserver log:\n%s",
                      passed, listing(), fxt_server_log(&srv));
            sleep_ms(2);
        }
        cr_assert(r + w == 1,
                  "%d reader(s) and %d writer(s) inside at once; probe "
                  "directory:%s",
                  r, w, listing());
        no_overlap();
        passed += release("b", w ? "write" : "read");
    }
    for (int i = 0; i < 3; i++) finish(&rest[i]);
    finish(&w1);
    cr_assert_eq(count("b", "read") + count("b", "write"), 0,
                 "probe directory:%s", listing());
    no_overlap();
    free(xb);
}

/* (c) Writes of different indexes do not wait for each other: an add of
 * "c2" gets in while an add of "c1" is held inside c1's lock -- and a
 * search of c1 still waits for c1's writer meanwhile. */
Test(remote_locks, writes_of_two_indexes_run_together, .init = start,
     .fini = stop, .timeout = 600) {
    float* xb = fxt_uniform(NB, D, 3);
    create("c1");
    create("c2");
    call w1, w2, s1;
    prepare(&w1, "c1", ADD, xb);
    prepare(&w2, "c2", ADD, xb);
    prepare(&s1, "c1", SEARCH, xb);
    begin(&w1);
    wait_for("c1", "write", 1);
    begin(&w2);
    // Would wait out the deadline if c1's writer held up c2.
    wait_for("c2", "write", 1);
    cr_assert_eq(count("c2", "blocked-write"), 0, "probe directory:%s",
                 listing());
    begin(&s1);
    wait_for("c1", "blocked-read", 1);
    cr_assert_eq(count("c1", "read"), 0);
    cr_assert_eq(count("c1", "write"), 1);
    no_overlap();
    cr_assert_eq(release("c2", "write"), 1);
    finish(&w2);
    cr_assert_eq(release("c1", "write"), 1);
    finish(&w1);
    wait_for("c1", "read", 1);
    cr_assert_eq(release("c1", "read"), 1);
    finish(&s1);
    cr_assert_eq(s1.labels[0], 0);
    no_overlap();
    free(xb);
}
