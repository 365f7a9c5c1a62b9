/* server_store_helper.c -- a client process for test_server_store.c's
 * kill -9 test (NNG may not be used across fork(), so the test execs this).
 *
 *   server_store_helper add URL NAME FIRST COUNT SEED
 *       Connects to the faissx-server at URL, opens (or creates) the named
 *       index NAME (IDMap,Flat, d = STORE_D, L2) and adds batches of 1-40
 *       vectors with ids FIRST, FIRST+1, ... (at most COUNT ids), the
 *       vector of each id being store_vec(id). For each batch it prints
 *       "begin A B" before sending it and "ack A B" once the server
 *       acknowledged it, flushing each line. When the ids run out it waits
 *       to be killed. Exit 3 when a call fails (the server went away). */
#include "store_vec.h"

#include <faissx/faissx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 7 || strcmp(argv[1], "add") != 0) {
        fprintf(stderr, "usage: server_store_helper add URL NAME FIRST COUNT SEED\n");
        return 2;
    }
    const char* url = argv[2];
    const char* name = argv[3];
    long long next = atoll(argv[4]);
    long long end = next + atoll(argv[5]);
    unsigned seed = (unsigned)atoi(argv[6]);
    if (faissx_configure(url, NULL, 20000)) {
        fprintf(stderr, "server_store_helper: %s\n", faiss_get_last_error());
        return 3;
    }
    FaissIndex* ix = NULL;
    /* Several helpers may race to create the index: one wins, the others
     * open it. */
    for (int tries = 0; !ix && tries < 50; tries++) {
        if (faissx_index_open(&ix, name) == 0) break;
        if (faissx_index_create(&ix, name, STORE_D, "IDMap,Flat", METRIC_L2) == 0)
            break;
        ix = NULL;
        usleep(1000);
    }
    if (!ix) {
        fprintf(stderr, "server_store_helper: %s\n", faiss_get_last_error());
        return 3;
    }
    float x[40 * STORE_D];
    idx_t ids[40];
    for (;;) {
        int n = 1 + (int)(rand_r(&seed) % 40);
        if (next + n > end) {
            pause(); /* out of ids: wait for the kill */
            continue;
        }
        for (int i = 0; i < n; i++) {
            ids[i] = next + i;
            store_vec(ids[i], x + i * STORE_D);
        }
        printf("begin %lld %lld\n", next, next + n - 1);
        fflush(stdout);
        if (faiss_Index_add_with_ids(ix, n, x, ids) != 0)
            return 3; /* the server was killed: expected, say nothing */
        printf("ack %lld %lld\n", next, next + n - 1);
        fflush(stdout);
        next += n;
    }
}
