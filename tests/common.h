/* common.h -- shared helpers for the Criterion suites: deterministic data,
 * the SIFT sample, temporary files, and assertions on the error model. */
#ifndef FXT_COMMON_H
#define FXT_COMMON_H

#include <criterion/criterion.h>
#include <faissx/faissx.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Asserts a C API call succeeded, printing faiss_get_last_error() if not. */
#define FXT_OK(call)                                                        \
    do {                                                                    \
        int fxt_rc_ = (call);                                               \
        cr_assert_eq(fxt_rc_, 0, "%s failed (%d): %s", #call, fxt_rc_,      \
                     faiss_get_last_error() ? faiss_get_last_error()        \
                                            : "(no message)");              \
    } while (0)

/* Asserts a call failed with a non-empty message; the message must contain
 * `needle` (pass "" to accept any message). */
#define FXT_ERR(call, needle)                                               \
    do {                                                                    \
        int fxt_rc_ = (call);                                               \
        cr_assert_neq(fxt_rc_, 0, "%s unexpectedly succeeded", #call);      \
        const char* fxt_m_ = faiss_get_last_error();                        \
        cr_assert(fxt_m_ != NULL && fxt_m_[0] != '\0',                      \
                  "%s failed without a message", #call);                    \
        cr_assert(strstr(fxt_m_, (needle)) != NULL,                         \
                  "%s: message '%s' lacks '%s'", #call, fxt_m_, (needle));  \
    } while (0)

/* Marks a white-box or local-only test -- it inspects the faiss object
 * behind a handle, this process's heap or globals, or a feature that is
 * local by nature -- so that, when a suite runs again in remote mode
 * (FAISSX_SERVER set), the test is skipped visibly, with the reason, instead
 * of failing for the wrong reason. */
#define FXT_LOCAL_ONLY(why)                                                 \
    do {                                                                    \
        const char* fxt_srv_ = getenv("FAISSX_SERVER");                      \
        if (fxt_srv_ && *fxt_srv_) cr_skip_test("local only: %s", (why));   \
    } while (0)

/* Skips a test, visibly, in AddressSanitizer builds: for tests that make
 * faiss attempt enormous allocations on purpose (corrupt size fields).
 * ASan's operator new aborts on such a request instead of throwing
 * std::bad_alloc, which the library would turn into FAISSX_E_NOMEM. */
#if defined(__SANITIZE_ADDRESS__)
#define FXT_NOT_UNDER_ASAN(why) cr_skip_test("not under ASan: %s", (why))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FXT_NOT_UNDER_ASAN(why) cr_skip_test("not under ASan: %s", (why))
#endif
#endif
#ifndef FXT_NOT_UNDER_ASAN
#define FXT_NOT_UNDER_ASAN(why) ((void)0)
#endif

/* Deterministic uniform [0,1) vectors (splitmix64). Caller frees. */
float* fxt_uniform(size_t n, int d, uint64_t seed);

/* n vectors around `nclusters` random centres (Gaussian spread `sigma`).
 * Realistic enough for IVF/HNSW recall; caller frees. */
float* fxt_clustered(size_t n, int d, int nclusters, float sigma,
                     uint64_t seed);

/* Random bytes (binary vectors, n * d/8 bytes). Caller frees. */
uint8_t* fxt_bytes(size_t n, int d_bits, uint64_t seed);

/* The SIFT sample (5000 base, queries, ground truth) from
 * shared/data/ngt-sift5k. Fails the test (never skips) when missing. */
float* fxt_load_fvecs(const char* name, size_t* n, int* d);
int32_t* fxt_load_ivecs(const char* name, size_t* n, int* d);

/* A fresh path in a private temporary directory (removed at exit). */
const char* fxt_tmp_path(const char* basename);

/* Fraction of queries whose true nearest neighbour (gt[i*gt_d]) appears
 * in the first k results of I (nq * k). */
double fxt_recall_at(const idx_t* I, size_t nq, int k, const int32_t* gt,
                     int gt_d, int at);

/* Byte-for-byte equality of two arrays (bit-identical floats). */
#define FXT_SAME(a, b, nbytes) \
    cr_assert(memcmp((a), (b), (nbytes)) == 0, "arrays differ: " #a " vs " #b)

#endif
