#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FXT_DATA_DIR
#define FXT_DATA_DIR "../shared/data/ngt-sift5k"
#endif

static uint64_t splitmix(uint64_t* s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float unif(uint64_t* s) {
    return (float)((splitmix(s) >> 40) * (1.0 / 16777216.0));
}

static float gauss(uint64_t* s) {
    float u1 = unif(s), u2 = unif(s);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

float* fxt_uniform(size_t n, int d, uint64_t seed) {
    float* x = malloc(n * (size_t)d * sizeof(float) + 1);
    cr_assert(x != NULL);
    for (size_t i = 0; i < n * (size_t)d; i++) x[i] = unif(&seed);
    return x;
}

float* fxt_clustered(size_t n, int d, int nclusters, float sigma,
                     uint64_t seed) {
    float* c = fxt_uniform((size_t)nclusters, d, seed ^ 0x5eed);
    float* x = malloc(n * (size_t)d * sizeof(float) + 1);
    cr_assert(x != NULL);
    for (size_t i = 0; i < n; i++) {
        size_t k = splitmix(&seed) % (uint64_t)nclusters;
        for (int j = 0; j < d; j++)
            x[i * d + j] = c[k * d + j] + sigma * gauss(&seed);
    }
    free(c);
    return x;
}

uint8_t* fxt_bytes(size_t n, int d_bits, uint64_t seed) {
    size_t nb = n * (size_t)(d_bits / 8);
    uint8_t* x = malloc(nb + 1);
    cr_assert(x != NULL);
    for (size_t i = 0; i < nb; i++) x[i] = (uint8_t)splitmix(&seed);
    return x;
}

static void* load_vecs(const char* name, size_t* n, int* d) {
    const char* dir = getenv("FAISSX_TEST_DATA");
    if (!dir) dir = FXT_DATA_DIR;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE* f = fopen(path, "rb");
    cr_assert(f != NULL, "cannot open test data %s: %s", path,
              strerror(errno));
    int32_t dim;
    cr_assert(fread(&dim, 4, 1, f) == 1 && dim > 0 && dim < 100000);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t rec = 4 + 4 * (size_t)dim;
    cr_assert(sz > 0 && (size_t)sz % rec == 0, "%s: bad size", path);
    size_t cnt = (size_t)sz / rec;
    char* out = malloc(cnt * dim * 4);
    cr_assert(out != NULL);
    for (size_t i = 0; i < cnt; i++) {
        int32_t dd;
        cr_assert(fread(&dd, 4, 1, f) == 1 && dd == dim);
        cr_assert(fread(out + i * dim * 4, 4, dim, f) == (size_t)dim);
    }
    fclose(f);
    *n = cnt;
    *d = dim;
    return out;
}

float* fxt_load_fvecs(const char* name, size_t* n, int* d) {
    return load_vecs(name, n, d);
}

int32_t* fxt_load_ivecs(const char* name, size_t* n, int* d) {
    return load_vecs(name, n, d);
}

static char tmp_dir[256];

static void rm_tmp(void) {
    if (tmp_dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
        if (system(cmd) != 0) { /* best effort */ }
    }
}

const char* fxt_tmp_path(const char* basename) {
    static char path[512];
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/fxt-XXXXXX");
        cr_assert(mkdtemp(tmp_dir) != NULL);
        atexit(rm_tmp);
    }
    snprintf(path, sizeof path, "%s/%s", tmp_dir, basename);
    return path;
}

double fxt_recall_at(const idx_t* I, size_t nq, int k, const int32_t* gt,
                     int gt_d, int at) {
    size_t hit = 0;
    for (size_t q = 0; q < nq; q++)
        for (int j = 0; j < at && j < k; j++)
            if (I[q * k + j] == gt[q * gt_d]) {
                hit++;
                break;
            }
    return nq ? (double)hit / (double)nq : 0.0;
}
