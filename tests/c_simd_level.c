/* c_simd_level.c -- which distance kernels a C program gets, linked against
 * the static library (before libfaiss.a) or the shared libfaiss_c.
 *
 *   c_simd_level best     faissx's kernels, the best level this CPU has
 *   c_simd_level generic  faissx's kernels lowered by FAISSX_SIMD=generic
 *   c_simd_level faiss    built without the substitution
 *
 * Also runs a Flat search so faiss's code calls the kernels, and checks the
 * distances against a plain double-precision computation. Exit 0 = pass.
 * tools/check_kernel_link.py checks the link maps (docs/kernels.md). */
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faissx/faissx.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char* best_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "avx2";
#endif
    return "generic";
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: c_simd_level best|generic|faiss\n");
        return 2;
    }
    const char* want = strcmp(argv[1], "best") == 0 ? best_level() : argv[1];
    enum { D = 37, NB = 50 };
    float xb[NB * D], xq[D];
    unsigned s = 12345;
    for (int i = 0; i < NB * D; i++) {
        s = s * 1103515245u + 12345u;
        xb[i] = (float)((s >> 8) & 0xffff) / 65536.0f;
    }
    memcpy(xq, xb + 7 * D, sizeof xq);
    xq[0] += 0.25f;
    FaissIndexFlatL2* index = NULL;
    if (faiss_IndexFlatL2_new_with(&index, D) != 0 ||
        faiss_Index_add((FaissIndex*)index, NB, xb) != 0) {
        fprintf(stderr, "index: %s\n", faiss_get_last_error());
        return 1;
    }
    float dist[NB];
    idx_t lab[NB];
    int rc = faiss_Index_search((FaissIndex*)index, 1, xq, NB, dist, lab);
    faiss_Index_free((FaissIndex*)index);
    if (rc != 0) {
        fprintf(stderr, "search: %s\n", faiss_get_last_error());
        return 1;
    }
    const char* level = faissx_simd_level();
    printf("faissx_simd_level() = %s (expected %s)\n", level, want);
    if (level == NULL || strcmp(level, want) != 0)
        return 1;
    for (int j = 0; j < NB; j++) {
        if (lab[j] < 0 || lab[j] >= NB)
            return 1;
        double ref = 0;
        for (int k = 0; k < D; k++) {
            double t = (double)xq[k] - xb[lab[j] * D + k];
            ref += t * t;
        }
        if (fabs(dist[j] - ref) > 1e-5 * (1 + ref)) {
            fprintf(stderr, "rank %d: distance %g, expected %g\n", j, dist[j], ref);
            return 1;
        }
        if (j > 0 && dist[j] < dist[j - 1])
            return 1;
    }
    if (lab[0] != 7)
        return 1;
    return 0;
}
