/* check_main.cpp -- faissx-check: validates a store offline with the same
 * parser recovery uses (after redis-check-aof).
 *
 *   faissx-check [--repair] DIR
 *
 * Exit status: 0 clean; 1 torn tails found (repairable) or repaired;
 * 2 damage not repaired (or not repairable), or the store is in use. */
#include "persist/store.h"

#include <faissx/faissx.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <unistd.h>

/* A one-line progress bar on stderr (only when stdout is a terminal):
 * "[#####.....] 3/10 ETA 4 s  NAME", erased before each result line. */
static void bar(size_t done, size_t total, const char* name, void* user) {
    const double t0 = *static_cast<const double*>(user);
    std::fputs("\r\033[K", stderr);
    if (name) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double el = (double)ts.tv_sec + ts.tv_nsec * 1e-9 - t0;
        const int w = 30;
        int fill = total ? (int)(w * done / total) : w;
        char cells[w + 1];
        for (int i = 0; i < w; i++) cells[i] = i < fill ? '#' : '.';
        cells[w] = '\0';
        std::fprintf(stderr, "[%s] %zu/%zu", cells, done, total);
        if (done > 0)
            std::fprintf(stderr, " ETA %.0f s",
                         el / (double)done * (double)(total - done));
        std::fprintf(stderr, "  %s", name);
    }
    std::fflush(stderr);
}

int main(int argc, char** argv) {
    bool repair = false;
    const char* dir = nullptr;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--repair")) {
            repair = true;
        } else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
            std::printf("usage: faissx-check [--repair] DIR\n"
                        "Validates every index of the faissx store in DIR "
                        "(snapshot checksums, log records, replay).\n"
                        "--repair cuts torn log tails and damaged log ends "
                        "and rewrites damaged indexes.\n"
                        "Exit: 0 clean, 1 repairable/repaired, 2 damaged.\n");
            return 0;
        } else if (!dir && argv[i][0] != '-') {
            dir = argv[i];
        } else {
            std::fprintf(stderr, "faissx-check: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir) {
        std::fprintf(stderr, "usage: faissx-check [--repair] DIR\n");
        return 2;
    }
    faissx_remote_disable();
    try {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double t0 = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
        bool tty = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
        return fx::store::check(dir, repair, stdout, tty ? bar : nullptr, &t0);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "faissx-check: %s\n", e.what());
        return 2;
    }
}
