/* resilience_helper.c -- a separate client process for test_resilience.c
 * (NNG may not be used across fork(), so tests exec this instead).
 *   resilience_helper exit-under-load URL
 *       two threads search a remote index in a loop; main returns while
 *       they run, with the index never freed: the process must exit
 *       cleanly (status 0) and promptly -- without waiting for the
 *       calls' 60 s deadline. */
#include <faissx/faissx.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { D = 16, NB = 1000, NQ = 50, K = 5 };

static FaissIndex* ix;
static float xb[NB * D];

static void* searcher(void* arg) {
    (void)arg;
    float D_[NQ * K];
    idx_t I[NQ * K];
    /* Until the exit closes the connection under it. */
    while (faiss_Index_search(ix, NQ, xb, K, D_, I) == 0 ||
           faissx_last_error_code() != FAISSX_E_NET) {
    }
    return NULL;
}

int main(int argc, char** argv) {
    if (argc == 3 && !strcmp(argv[1], "exit-under-load")) {
        if (faissx_configure(argv[2], NULL, 60000)) return 2;
        for (int i = 0; i < NB * D; i++) xb[i] = (float)((i * 7919) % 1000);
        if (faiss_index_factory(&ix, D, "Flat", METRIC_L2)) return 3;
        if (!faissx_index_is_remote(ix)) return 4;
        if (faiss_Index_add(ix, NB, xb)) return 5;
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            if (pthread_create(&t[i], NULL, searcher, NULL)) return 6;
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        printf("exiting\n");
        fflush(stdout);
        return 0; /* threads still searching; atexit closes the sockets */
    }
    fprintf(stderr, "usage: resilience_helper exit-under-load URL\n");
    return 1;
}
