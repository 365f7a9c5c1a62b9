/* remote_helper.c -- a separate client process for test_remote.c and
 * test_remote_shm.c (NNG may not be used across fork(), so tests exec this
 * instead).
 *   remote_helper search-forever URL NAME   batch searches until killed
 *   remote_helper add-stall URL KEY NAME N K
 *       adds N vectors through shared memory, stalling for a minute after
 *       K chunks (FAISSX_TEST_SHM_STALL_AFTER): the test kills it there */
#include <faissx/faissx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    fprintf(stderr, "usage: remote_helper search-forever URL NAME\n"
                    "       remote_helper add-stall URL KEY NAME N K\n");
    return 1;
}
