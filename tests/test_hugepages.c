/* test_hugepages.c -- large index arrays are advised for transparent huge
 * pages (core/hugepages.cpp, docs/api.md "Huge pages") unless
 * FAISSX_HUGEPAGES says no, and the advice changes nothing but placement.
 *
 * The advice shows as the "hg" flag (VM_HUGEPAGE) in /proc/self/smaps'
 * VmFlags of the mapping that holds the array. Whether the kernel then
 * backs it with huge pages depends on free memory, so the tests assert the
 * flag, not AnonHugePages. On a kernel without THP madvise refuses; the
 * tests then assert the flag is absent and say so in their output. */
#define _GNU_SOURCE
#include "common.h"

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include <stdio.h>
#include <unistd.h>

TestSuite(hugepages, .timeout = 300);

#define D 128
/* 70000 x 128 floats = 35.8 MB: over the 32 MiB threshold. */
#define NBIG 70000
#define HUGE_SZ ((uintptr_t)2 << 20)

/* 1 when this kernel has transparent huge pages at all. */
static int thp_available(void) {
    return access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0;
}

/* Whether the mapping holding the first whole 2 MiB page inside
 * [p, p + n) carries the "hg" (MADV_HUGEPAGE) flag: 1 yes, 0 no. Fails the
 * test when no such mapping is found. */
static int advised(const void* p, size_t n) {
    uintptr_t a = ((uintptr_t)p + HUGE_SZ - 1) & ~(HUGE_SZ - 1);
    cr_assert(a + HUGE_SZ <= (uintptr_t)p + n, "buffer too small to test");
    FILE* f = fopen("/proc/self/smaps", "r");
    cr_assert(f != NULL, "cannot open /proc/self/smaps");
    char line[512];
    int in = 0, found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char c;
        if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3 &&
            strchr(line, '-') && strchr(line, ' ') > strchr(line, '-')) {
            in = a >= lo && a < hi;
        } else if (in && !strncmp(line, "VmFlags:", 8)) {
            found = strstr(line, " hg") != NULL;
        }
    }
    fclose(f);
    cr_assert(found >= 0, "no mapping with VmFlags holds %#lx",
              (unsigned long)a);
    return found;
}

/* The advice expected where it was asked for: present when THP exists. */
static void expect_advised(const void* p, size_t n, const char* what) {
    if (thp_available()) {
        cr_assert(advised(p, n), "%s: not advised for huge pages", what);
    } else {
        cr_log_warn("%s: this kernel has no transparent huge pages; "
                    "checked that the advice was refused cleanly", what);
        cr_assert(!advised(p, n), "%s: hg flag without THP?", what);
    }
}

static void fxt_setenv(const char* v) {
    if (v)
        cr_assert_eq(setenv("FAISSX_HUGEPAGES", v, 1), 0);
    else
        cr_assert_eq(unsetenv("FAISSX_HUGEPAGES"), 0);
}

/* Adds x in `parts` calls, checks the codes are x byte for byte, and
 * returns the index (caller frees). */
static FaissIndexFlat* flat_of(const float* x, size_t n, int parts,
                               float** xb) {
    FaissIndexFlat* ix = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&ix, D, METRIC_L2));
    size_t step = n / (size_t)parts;
    for (size_t at = 0; at < n; at += step) {
        size_t m = at + step <= n ? step : n - at;
        FXT_OK(faiss_Index_add((FaissIndex*)ix, (idx_t)m, x + at * D));
    }
    size_t sz = 0;
    faiss_IndexFlat_xb(ix, xb, &sz);
    cr_assert_eq(sz, n * D);
    cr_assert(memcmp(*xb, x, n * D * sizeof(float)) == 0,
              "the codes are not the vectors added");
    return ix;
}

Test(hugepages, flat_add_is_advised_by_default) {
    FXT_LOCAL_ONLY("inspects this process's mappings");
    fxt_setenv(NULL);
    float* x = fxt_uniform(NBIG, D, 1);
    float* xb;
    /* One add of the whole array, and a growth past the threshold
     * (the old bytes copied into the new, advised buffer). */
    for (int parts = 1; parts <= 4; parts += 3) {
        FaissIndexFlat* ix = flat_of(x, NBIG, parts, &xb);
        expect_advised(xb, (size_t)NBIG * D * 4,
                       parts == 1 ? "one add" : "four adds");
        faiss_Index_free((FaissIndex*)ix);
    }
    free(x);
}

Test(hugepages, flat_add_not_advised_when_turned_off) {
    FXT_LOCAL_ONLY("inspects this process's mappings");
    static const char* const off[] = {"0", "off", "FALSE", "no"};
    float* x = fxt_uniform(NBIG, D, 2);
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        fxt_setenv(off[i]);
        float* xb;
        FaissIndexFlat* ix = flat_of(x, NBIG, 1, &xb);
        cr_assert(!advised(xb, (size_t)NBIG * D * 4),
                  "FAISSX_HUGEPAGES=%s: advised anyway", off[i]);
        faiss_Index_free((FaissIndex*)ix);
    }
    free(x);
}

Test(hugepages, small_array_not_advised) {
    FXT_LOCAL_ONLY("inspects this process's mappings");
    fxt_setenv("1");
    size_t n = 20000; /* 10 MB */
    float* x = fxt_uniform(n, D, 3);
    float* xb;
    FaissIndexFlat* ix = flat_of(x, n, 1, &xb);
    cr_assert(!advised(xb, n * D * 4), "a 10 MB array was advised");
    faiss_Index_free((FaissIndex*)ix);
    free(x);
}

static char logged[1024];
static int nlogged;
static void capture(FaissxLogLevel level, const char* msg, void* user) {
    (void)level;
    (void)user;
    nlogged++;
    snprintf(logged, sizeof logged, "%s", msg);
}

Test(hugepages, malformed_value_is_reported_once_and_keeps_advice) {
    FXT_LOCAL_ONLY("inspects this process's mappings");
    faissx_set_log_callback(capture, NULL);
    fxt_setenv("sometimes");
    float* x = fxt_uniform(NBIG, D, 4);
    for (int round = 0; round < 2; round++) {
        float* xb;
        FaissIndexFlat* ix = flat_of(x, NBIG, 1, &xb);
        expect_advised(xb, (size_t)NBIG * D * 4, "FAISSX_HUGEPAGES=sometimes");
        faiss_Index_free((FaissIndex*)ix);
    }
    faissx_set_log_callback(NULL, NULL);
    cr_assert_eq(nlogged, 1, "reported %d times", nlogged);
    cr_assert(strstr(logged, "FAISSX_HUGEPAGES='sometimes' ignored") != NULL,
              "message: %s", logged);
    free(x);
}

Test(hugepages, idmap_flat_through_faiss_add_is_advised) {
    FXT_LOCAL_ONLY("inspects this process's mappings");
    fxt_setenv(NULL);
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, "IDMap,Flat", METRIC_L2));
    float* x = fxt_uniform(NBIG, D, 5);
    idx_t* ids = malloc(NBIG * sizeof *ids);
    cr_assert(ids != NULL);
    for (idx_t i = 0; i < NBIG; i++) ids[i] = 1000 + 3 * i;
    FXT_OK(faiss_Index_add_with_ids(ix, NBIG, x, ids));
    /* The inner flat index: faiss_IndexIDMap_sub_index. */
    FaissIndex* inner = NULL;
    FaissIndexFlat* flat = NULL;
    inner = faiss_IndexIDMap_sub_index((FaissIndexIDMap*)ix);
    flat = faiss_IndexFlat_cast(inner);
    cr_assert(flat != NULL, "the inner index is not flat");
    float* xb;
    size_t sz;
    faiss_IndexFlat_xb(flat, &xb, &sz);
    cr_assert_eq(sz, (size_t)NBIG * D);
    cr_assert(memcmp(xb, x, sz * sizeof(float)) == 0);
    expect_advised(xb, sz * sizeof(float), "IDMap,Flat add_with_ids");
    faiss_Index_free(ix);
    free(ids);
    free(x);
}

Test(hugepages, read_index_advised_unless_turned_off) {
    FXT_LOCAL_ONLY("inspects this process's mappings");
    float* x = fxt_uniform(NBIG, D, 6);
    float* xb;
    fxt_setenv("0");
    FaissIndexFlat* w = flat_of(x, NBIG, 1, &xb);
    const char* path = fxt_tmp_path("big.faissindex");
    FXT_OK(faiss_write_index_fname((FaissIndex*)w, path));
    faiss_Index_free((FaissIndex*)w);
    for (int on = 0; on <= 1; on++) {
        fxt_setenv(on ? NULL : "0");
        FaissIndex* r = NULL;
        FXT_OK(faiss_read_index_fname(path, 0, &r));
        size_t sz;
        faiss_IndexFlat_xb(faiss_IndexFlat_cast(r), &xb, &sz);
        cr_assert_eq(sz, (size_t)NBIG * D);
        cr_assert(memcmp(xb, x, sz * sizeof(float)) == 0,
                  "read back other bytes");
        if (on)
            expect_advised(xb, sz * sizeof(float), "faiss_read_index");
        else
            cr_assert(!advised(xb, sz * sizeof(float)),
                      "FAISSX_HUGEPAGES=0: a read index was advised");
        faiss_Index_free(r);
    }
    free(x);
}
