/* threads_helper.c -- a program whose thread pools test_threads.c inspects
 * under different environments (the pools read theirs once, at load).
 *
 *   threads_helper [--omp N] [--blas N] [--raw]
 *
 * Calls omp_set_num_threads / openblas_set_num_threads if asked (as a
 * program managing its own pools would, before any faiss call), then --
 * unless --raw -- makes one faiss call (a Flat search), and prints
 *   omp=<omp_get_max_threads> blas=<openblas_get_num_threads>
 *   get=<faissx_get_threads, or 0 with --raw>
 *   thread=<faissx_get_threads in a second thread, or 0 with --raw>
 * on one line. Exit status 1 on a failed call. */
#include <faissx/faissx.h>

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);

static void* other_thread(void* out) {
    *(int*)out = faissx_get_threads();
    return NULL;
}

int main(int argc, char** argv) {
    int raw = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--raw")) {
            raw = 1;
        } else if (!strcmp(argv[i], "--omp") && i + 1 < argc) {
            omp_set_num_threads(atoi(argv[++i]));
        } else if (!strcmp(argv[i], "--blas") && i + 1 < argc) {
            openblas_set_num_threads(atoi(argv[++i]));
        } else {
            fprintf(stderr, "threads_helper: bad argument %s\n", argv[i]);
            return 2;
        }
    }
    int get = 0, other = 0;
    if (!raw) {
        enum { D = 8, NB = 100, NQ = 50 };
        float xb[NB * D], dist[NQ];
        idx_t lab[NQ];
        for (int i = 0; i < NB * D; i++) xb[i] = (float)(i % 97) / 97.0f;
        FaissIndexFlatL2* ix = NULL;
        if (faiss_IndexFlatL2_new_with(&ix, D) ||
            faiss_Index_add((FaissIndex*)ix, NB, xb) ||
            faiss_Index_search((FaissIndex*)ix, NQ, xb, 1, dist, lab)) {
            fprintf(stderr, "threads_helper: %s\n", faiss_get_last_error());
            return 1;
        }
        faiss_Index_free((FaissIndex*)ix);
        get = faissx_get_threads();
        pthread_t t;
        if (pthread_create(&t, NULL, other_thread, &other)) return 1;
        pthread_join(t, NULL);
    }
    printf("omp=%d blas=%d get=%d thread=%d\n", omp_get_max_threads(),
           openblas_get_num_threads(), get, other);
    return 0;
}
