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
#include <exception>

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
        return fx::store::check(dir, repair, stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "faissx-check: %s\n", e.what());
        return 2;
    }
}
