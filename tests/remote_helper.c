/* remote_helper.c -- a separate client process for test_remote.c and
 * test_remote_shm.c (NNG may not be used across fork(), so tests exec this
 * instead).
 *   remote_helper search-forever URL NAME   batch searches until killed
 *   remote_helper add-stall URL KEY NAME N K
 *       adds N vectors through shared memory, stalling for a minute after
 *       K chunks (FAISSX_TEST_SHM_STALL_AFTER): the test kills it there
 *   remote_helper add-stall-bin URL KEY NAME N K
 *       the same with a binary index's codes
 *   remote_helper ping URL TIMEOUT_MS
 *       connects (exit 0) or cannot within the timeout (exit 2)
 *   remote_helper orphan URL NAME
 *       makes a named and an unnamed index (3 and 2 vectors), prints
 *       "ready" and waits to be killed: its indexes are left behind */
#include <faissx/faissx.h>

#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc == 4 && !strcmp(argv[1], "search-forever")) {
        if (faissx_configure(argv[2], NULL, 0)) return 2;
        FaissIndex* ix = NULL;
        if (faissx_index_open(&ix, argv[3])) return 3;
        int d = faiss_Index_d(ix);
        enum { NQ = 2000, K = 10 };
        float* x = calloc((size_t)NQ * d, sizeof(float));
        float* D = malloc(sizeof(float) * NQ * K);
        idx_t* I = malloc(sizeof(idx_t) * NQ * K);
        for (;;)
            if (faiss_Index_search(ix, NQ, x, K, D, I)) return 4;
    }
    if (argc == 7 && !strcmp(argv[1], "add-stall")) {
        setenv("FAISSX_TEST_SHM_STALL_AFTER", argv[6], 1);
        setenv("FAISSX_TEST_SHM_STALL_MS", "60000", 1);
        setenv("FAISSX_SHM_MIN_BYTES", "0", 1);
        if (faissx_configure(argv[2], argv[3], 0)) return 2;
        FaissIndex* ix = NULL;
        if (faissx_index_open(&ix, argv[4])) return 3;
        int d = faiss_Index_d(ix);
        long n = atol(argv[5]);
        float* x = malloc(sizeof(float) * (size_t)n * (size_t)d);
        for (long i = 0; i < n * d; i++) x[i] = (float)(i % 97) / 97.0f;
        if (faiss_Index_add(ix, n, x)) return 4;
        return 0;
    }
    if (argc == 7 && !strcmp(argv[1], "add-stall-bin")) {
        setenv("FAISSX_TEST_SHM_STALL_AFTER", argv[6], 1);
        setenv("FAISSX_TEST_SHM_STALL_MS", "60000", 1);
        setenv("FAISSX_SHM_MIN_BYTES", "0", 1);
        if (faissx_configure(argv[2], argv[3], 0)) return 2;
        FaissIndexBinary* ix = NULL;
        if (faissx_index_binary_open(&ix, argv[4])) return 3;
        size_t cs = (size_t)faiss_IndexBinary_d(ix) / 8;
        long n = atol(argv[5]);
        uint8_t* x = malloc(cs * (size_t)n);
        for (size_t i = 0; i < cs * (size_t)n; i++) x[i] = (uint8_t)(i * 7);
        if (faiss_IndexBinary_add(ix, n, x)) return 4;
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "ping")) {
        if (faissx_configure(argv[2], NULL, atoi(argv[3]))) return 2;
        char** names = NULL;
        size_t n = 0;
        int rc = faissx_index_list(&names, &n) ? 3 : 0;
        if (rc == 0) faissx_index_list_free(names, n);
        faissx_configure(NULL, NULL, 0);
        return rc;
    }
    if (argc == 4 && !strcmp(argv[1], "orphan")) {
        if (faissx_configure(argv[2], NULL, 0)) return 2;
        FaissIndex *named = NULL, *unnamed = NULL;
        float x[5 * 4] = {0};
        if (faissx_index_create(&named, argv[3], 4, "Flat", METRIC_L2) ||
            faiss_Index_add(named, 3, x))
            return 3;
        if (faiss_index_factory(&unnamed, 4, "Flat", METRIC_L2) ||
            faiss_Index_add(unnamed, 2, x))
            return 4;
        printf("ready\n");
        fflush(stdout);
        for (;;) pause();
    }
    fprintf(stderr, "usage: remote_helper search-forever URL NAME\n"
                    "       remote_helper add-stall URL KEY NAME N K\n"
                    "       remote_helper add-stall-bin URL KEY NAME N K\n"
                    "       remote_helper ping URL TIMEOUT_MS\n"
                    "       remote_helper orphan URL NAME\n");
    return 1;
}
