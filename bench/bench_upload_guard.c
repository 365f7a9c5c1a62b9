/* bench_upload_guard.c -- what the UPLOAD allocation budget costs
 * (net/alloc_budget.h): faissx-server with its operator new replacement
 * (net/alloc_guard.cpp) against the same server built without it
 * (faissx-server-noguard, bench only), both started by this program and
 * measured alternately in the same run. Prints median times and the ratio
 * guard / noguard for a normal UPLOAD (parsed under the budget), batch
 * searches and small adds (every allocation passes the replaced operator
 * new). Ratios near 1.00 mean no cost.
 *
 *   bench_upload_guard --server PATH --server-noguard PATH [--quick] */
#include "bench_util.h"

#include <faissx/faissx.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    pid_t pid;
    char url[64];
} server;

static void start(server* s, const char* bin, int port) {
    snprintf(s->url, sizeof s->url, "tcp://127.0.0.1:%d", port);
    const char* argv[] = {bin, "--listen", s->url, "--threads", "1",
                          "--workers", "2", "--log-level", "warn", NULL};
    fflush(NULL);
    s->pid = fork();
    if (s->pid < 0) {
        perror("fork");
        exit(2);
    }
    if (s->pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        unsetenv("FAISSX_SERVER");
        execv(bin, (char* const*)argv);
        _exit(127);
    }
    for (int i = 0; i < 500 && !bench_port_open(port); i++) bench_sleep_ms(20);
    if (!bench_port_open(port)) {
        fprintf(stderr, "bench_upload_guard: %s did not start\n", bin);
        exit(2);
    }
}

static void stop(server* s) {
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
}

#define CHECK(call)                                                         \
    do {                                                                    \
        if ((call) != 0) {                                                  \
            fprintf(stderr, "bench_upload_guard: %s: %s\n", #call,          \
                    faiss_get_last_error());                                \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

enum { D = 64, NQ = 200, K = 10, NSEARCH = 20, NADD = 20, ADDN = 1000 };

typedef struct {
    double upload, search, add;
} times;

/* One round on the server at url: each measurement's median of reps. */
static void measure(const char* url, FaissIndex* local, const float* xq,
                    const float* xa, int reps, times* t) {
    faissx_configure(NULL, NULL, 0);
    CHECK(faissx_configure(url, NULL, 120000));
    double tu[16], ts[16], ta[16];
    FaissIndex* up = NULL;
    for (int r = 0; r < reps; r++) {
        if (up) faiss_Index_free(up);
        double t0 = bench_now();
        CHECK(faissx_index_upload(local, NULL, &up));
        tu[r] = bench_now() - t0;
    }
    float* Dd = malloc(sizeof(float) * NQ * K);
    idx_t* I = malloc(sizeof(idx_t) * NQ * K);
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        for (int i = 0; i < NSEARCH; i++)
            CHECK(faiss_Index_search(up, NQ, xq, K, Dd, I));
        ts[r] = bench_now() - t0;
    }
    faiss_Index_free(up);
    FaissIndex* flat = NULL;
    CHECK(faiss_index_factory(&flat, D, "Flat", METRIC_L2));
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        for (int i = 0; i < NADD; i++) CHECK(faiss_Index_add(flat, ADDN, xa));
        ta[r] = bench_now() - t0;
    }
    faiss_Index_free(flat);
    free(Dd);
    free(I);
    t->upload = bench_median(tu, reps);
    t->search = bench_median(ts, reps);
    t->add = bench_median(ta, reps);
    faissx_configure(NULL, NULL, 0);
}

static float* uniform(size_t n, unsigned seed) {
    float* x = malloc(sizeof(float) * n * D);
    srand(seed);
    for (size_t i = 0; i < n * D; i++) x[i] = (float)rand() / (float)RAND_MAX;
    return x;
}

int main(int argc, char** argv) {
    const char *guard = NULL, *noguard = NULL;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--server") && i + 1 < argc)
            guard = argv[++i];
        else if (!strcmp(argv[i], "--server-noguard") && i + 1 < argc)
            noguard = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr, "usage: bench_upload_guard --server PATH "
                            "--server-noguard PATH [--quick]\n");
            return 2;
        }
    }
    if (!guard || !noguard) {
        fprintf(stderr, "bench_upload_guard: give both servers\n");
        return 2;
    }
    int nb = quick ? 20000 : 100000, rounds = quick ? 1 : 5, reps = 5;
    server sg, sn;
    start(&sg, guard, bench_free_port());
    start(&sn, noguard, bench_free_port());

    float* xb = uniform((size_t)nb, 1);
    float* xq = uniform(NQ, 2);
    float* xa = uniform(ADDN, 3);
    FaissIndex* local = NULL;
    CHECK(faiss_index_factory(&local, D, "IVF256,Flat", METRIC_L2));
    CHECK(faiss_Index_train(local, nb < 25600 ? nb : 25600, xb));
    CHECK(faiss_Index_add(local, nb, xb));

    double gu[8], gs[8], ga[8], nu[8], ns[8], na[8];
    for (int r = 0; r < rounds; r++) {
        times g, n;
        if (r % 2 == 0) {
            measure(sg.url, local, xq, xa, reps, &g);
            measure(sn.url, local, xq, xa, reps, &n);
        } else {
            measure(sn.url, local, xq, xa, reps, &n);
            measure(sg.url, local, xq, xa, reps, &g);
        }
        gu[r] = g.upload, gs[r] = g.search, ga[r] = g.add;
        nu[r] = n.upload, ns[r] = n.search, na[r] = n.add;
    }
    double mgu = bench_median(gu, rounds), mnu = bench_median(nu, rounds);
    double mgs = bench_median(gs, rounds), mns = bench_median(ns, rounds);
    double mga = bench_median(ga, rounds), mna = bench_median(na, rounds);
    printf("bench_upload_guard: IVF256,Flat d=%d nb=%d (%.1f MB upload), "
           "%d rounds x %d reps, medians\n",
           D, nb, (double)nb * D * 4 / 1e6, rounds, reps);
    printf("  %-34s %10s %10s %7s\n", "", "guard", "noguard", "ratio");
    printf("  %-34s %8.2fms %8.2fms %7.3f\n", "upload (parsed under the budget)",
           mgu * 1e3, mnu * 1e3, mgu / mnu);
    printf("  %-34s %8.2fms %8.2fms %7.3f\n", "20 searches of 200 queries k=10",
           mgs * 1e3, mns * 1e3, mgs / mns);
    printf("  %-34s %8.2fms %8.2fms %7.3f\n", "20 adds of 1000 to a Flat",
           mga * 1e3, mna * 1e3, mga / mna);
    faiss_Index_free(local);
    free(xb);
    free(xq);
    free(xa);
    stop(&sg);
    stop(&sn);
    return 0;
}
