/* remote_helper.c -- a separate client process for test_remote.c (NNG may
 * not be used across fork(), so tests exec this instead).
 *   remote_helper search-forever URL NAME   batch searches until killed */
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
    fprintf(stderr, "usage: remote_helper search-forever URL NAME\n");
    return 1;
}
