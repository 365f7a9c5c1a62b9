/* test_distances.c -- utils/distances_c.h against the faiss:: functions
 * (bit-identical), the BLAS globals, and argument checking. */
#include "common.h"
#include "oracle_distances.h"

#include <math.h>
#include <stdlib.h>

/* Puts an unrelated message in faiss_get_last_error(), so that a later
 * check proves the message came from the call under test. */
static void other_error(void) {
    cr_assert_neq(faiss_ParameterSpace_new(NULL), 0);
}

#define ERR_FROM(func)                                                     \
    cr_assert(faiss_get_last_error() &&                                    \
                      strstr(faiss_get_last_error(), func ":") != NULL,    \
              "last error '%s' is not from " func,                         \
              faiss_get_last_error() ? faiss_get_last_error() : "(none)")

#define NO_ERR_FROM(func)                                                  \
    cr_assert(!faiss_get_last_error() ||                                   \
                      strstr(faiss_get_last_error(), func ":") == NULL,    \
              "unexpected error '%s'", faiss_get_last_error())

static float* sentinel(size_t n) {
    float* p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = -12345.0f;
    return p;
}

/* ---- pairwise_L2sqr ---------------------------------------------------- */

static void pairwise_case(int64_t d, int64_t nq, int64_t nb, int64_t ldq,
                          int64_t ldb, int64_t ldd, uint64_t seed) {
    int64_t rq = ldq > 0 ? ldq : d, rb = ldb > 0 ? ldb : d,
            rd = ldd > 0 ? ldd : nb;
    float* xq = fxt_uniform((size_t)(nq * rq), 1, seed);
    float* xb = fxt_uniform((size_t)(nb * rb), 1, seed + 1);
    size_t ndis = (size_t)(nq * rd);
    float* dis = sentinel(ndis);
    float* ref = sentinel(ndis);
    other_error();
    faiss_pairwise_L2sqr(d, nq, xq, nb, xb, dis, ldq, ldb, ldd);
    NO_ERR_FROM("faiss_pairwise_L2sqr");
    oracle_pairwise_L2sqr(d, nq, xq, nb, xb, ref, ldq, ldb, ldd);
    /* the whole buffer, padding included (untouched in both) */
    FXT_SAME(dis, ref, ndis * sizeof(float));
    /* sanity: entry (1, 2) is the squared distance of those rows */
    if (nq > 1 && nb > 2) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) {
            double t = (double)xq[1 * rq + j] - xb[2 * rb + j];
            s += t * t;
        }
        cr_assert(fabs(dis[1 * rd + 2] - s) < 1e-4 * (1 + s));
    }
    if (ldd > nb) cr_assert_eq(dis[rd - 1], -12345.0f, "padding written");
    free(xq);
    free(xb);
    free(dis);
    free(ref);
}

Test(distances, pairwise_L2sqr_matches_cpp) {
    pairwise_case(16, 20, 30, -1, -1, -1, 1);
    pairwise_case(7, 3, 5, -1, -1, -1, 2);
    pairwise_case(64, 40, 100, -1, -1, -1, 3);
}

Test(distances, pairwise_L2sqr_leading_dims_match_cpp) {
    pairwise_case(16, 20, 30, 19, 21, 33, 4);
    pairwise_case(16, 20, 30, 16, 16, 30, 5);
    pairwise_case(5, 9, 11, 8, -1, 12, 6);
}

Test(distances, pairwise_L2sqr_with_defaults_matches_cpp) {
    const int64_t d = 12, nq = 17, nb = 23;
    float* xq = fxt_uniform(nq, d, 7);
    float* xb = fxt_uniform(nb, d, 8);
    float* dis = sentinel(nq * nb);
    float* ref = sentinel(nq * nb);
    float* full = sentinel(nq * nb);
    faiss_pairwise_L2sqr_with_defaults(d, nq, xq, nb, xb, dis);
    oracle_pairwise_L2sqr(d, nq, xq, nb, xb, ref, -1, -1, -1);
    FXT_SAME(dis, ref, nq * nb * sizeof(float));
    /* = the explicit leading dimensions */
    faiss_pairwise_L2sqr(d, nq, xq, nb, xb, full, d, d, nb);
    FXT_SAME(dis, full, nq * nb * sizeof(float));
    free(xq);
    free(xb);
    free(dis);
    free(ref);
    free(full);
}

Test(distances, pairwise_L2sqr_empty_is_a_noop) {
    float x[4] = {1, 2, 3, 4};
    float dis[4] = {-1, -1, -1, -1};
    other_error();
    faiss_pairwise_L2sqr(2, 0, x, 2, x, dis, -1, -1, -1);
    faiss_pairwise_L2sqr(2, 2, x, 0, x, dis, -1, -1, -1);
    faiss_pairwise_L2sqr(2, 0, NULL, 0, NULL, NULL, -1, -1, -1);
    NO_ERR_FROM("faiss_pairwise_L2sqr");
    for (int i = 0; i < 4; i++) cr_assert_eq(dis[i], -1.0f);
}

Test(distances, pairwise_L2sqr_invalid_does_nothing) {
    float xq[40], xb[40];
    for (int i = 0; i < 40; i++) xq[i] = xb[i] = (float)i;
    float dis[64];
    const struct {
        int64_t d, nq, nb, ldq, ldb, ldd;
        const float *q, *b;
        float* out;
        const char* needle;
    } bad[] = {
            {0, 2, 2, -1, -1, -1, xq, xb, dis, "d > 0"},
            {-4, 2, 2, -1, -1, -1, xq, xb, dis, "d > 0"},
            {4, -1, 2, -1, -1, -1, xq, xb, dis, "nq"},
            {4, 2, -3, -1, -1, -1, xq, xb, dis, "nb"},
            {4, 2, 2, 3, -1, -1, xq, xb, dis, "leading"},
            {4, 2, 2, -1, 2, -1, xq, xb, dis, "leading"},
            {4, 2, 5, -1, -1, 4, xq, xb, dis, "leading"},
            {4, 2, 2, 0, -1, -1, xq, xb, dis, "leading"},
            {4, 2, 2, -1, -1, -2, xq, xb, dis, "leading"},
            {4, 2, 2, -1, -1, -1, NULL, xb, dis, "NULL"},
            {4, 2, 2, -1, -1, -1, xq, NULL, dis, "NULL"},
            {4, 2, 2, -1, -1, -1, xq, xb, NULL, "NULL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        for (int j = 0; j < 64; j++) dis[j] = -7.0f;
        other_error();
        faiss_pairwise_L2sqr(bad[i].d, bad[i].nq, bad[i].q, bad[i].nb,
                             bad[i].b, bad[i].out, bad[i].ldq, bad[i].ldb,
                             bad[i].ldd);
        ERR_FROM("faiss_pairwise_L2sqr");
        cr_assert(strstr(faiss_get_last_error(), bad[i].needle),
                  "case %zu: '%s' lacks '%s'", i, faiss_get_last_error(),
                  bad[i].needle);
        for (int j = 0; j < 64; j++)
            cr_assert_eq(dis[j], -7.0f, "case %zu wrote the output", i);
    }
    other_error();
    faiss_pairwise_L2sqr_with_defaults(0, 2, xq, 2, xb, dis);
    cr_assert(strstr(faiss_get_last_error(), "pairwise_L2sqr"));
    for (int j = 0; j < 64; j++) cr_assert_eq(dis[j], -7.0f);
}

/* ---- fvec_* ------------------------------------------------------------ */

Test(distances, fvec_inner_products_and_L2sqr_ny_match_cpp) {
    const size_t dims[] = {1, 3, 4, 8, 12, 16, 31, 64};
    for (size_t t = 0; t < sizeof dims / sizeof *dims; t++) {
        size_t d = dims[t], ny = 37;
        float* x = fxt_uniform(1, (int)d, 10 + t);
        float* y = fxt_uniform(ny, (int)d, 20 + t);
        float* a = sentinel(ny + 1);
        float* b = sentinel(ny + 1);
        faiss_fvec_inner_products_ny(a, x, y, d, ny);
        oracle_fvec_inner_products_ny(b, x, y, d, ny);
        FXT_SAME(a, b, (ny + 1) * sizeof(float));
        cr_assert_eq(a[ny], -12345.0f, "wrote past ny");
        faiss_fvec_L2sqr_ny(a, x, y, d, ny);
        oracle_fvec_L2sqr_ny(b, x, y, d, ny);
        FXT_SAME(a, b, (ny + 1) * sizeof(float));
        cr_assert_eq(a[ny], -12345.0f, "wrote past ny");
        free(x);
        free(y);
        free(a);
        free(b);
    }
}

Test(distances, fvec_norms_match_cpp) {
    const size_t dims[] = {1, 5, 8, 16, 33, 64};
    for (size_t t = 0; t < sizeof dims / sizeof *dims; t++) {
        size_t d = dims[t], nx = 29;
        float* x = fxt_uniform(nx, (int)d, 30 + t);
        for (size_t j = 0; j < d; j++) x[3 * d + j] = 0.0f; /* a zero row */
        float n1 = faiss_fvec_norm_L2sqr(x, d);
        float r1 = oracle_fvec_norm_L2sqr(x, d);
        cr_assert(memcmp(&n1, &r1, sizeof n1) == 0);
        cr_assert_gt(n1, 0.0f);
        float* a = sentinel(nx + 1);
        float* b = sentinel(nx + 1);
        faiss_fvec_norms_L2(a, x, d, nx);
        oracle_fvec_norms_L2(b, x, d, nx);
        FXT_SAME(a, b, (nx + 1) * sizeof(float));
        cr_assert_eq(a[3], 0.0f);
        faiss_fvec_norms_L2sqr(a, x, d, nx);
        oracle_fvec_norms_L2sqr(b, x, d, nx);
        FXT_SAME(a, b, (nx + 1) * sizeof(float));
        cr_assert_eq(a[nx], -12345.0f);
        /* renorm in place, on two copies */
        float* c1 = malloc(nx * d * sizeof(float));
        float* c2 = malloc(nx * d * sizeof(float));
        memcpy(c1, x, nx * d * sizeof(float));
        memcpy(c2, x, nx * d * sizeof(float));
        faiss_fvec_renorm_L2(d, nx, c1);
        oracle_fvec_renorm_L2(d, nx, c2);
        FXT_SAME(c1, c2, nx * d * sizeof(float));
        for (size_t j = 0; j < d; j++) cr_assert_eq(c1[3 * d + j], 0.0f);
        float nn = faiss_fvec_norm_L2sqr(c1, d);
        cr_assert(fabsf(nn - 1.0f) < 1e-5f, "renormed norm %g", nn);
        free(c1);
        free(c2);
        free(x);
        free(a);
        free(b);
    }
    /* d = 0: an empty vector has norm 0 */
    float z = 5.0f;
    cr_assert_eq(faiss_fvec_norm_L2sqr(&z, 0), 0.0f);
}

Test(distances, fvec_empty_is_a_noop) {
    float out[2] = {-1, -1};
    other_error();
    faiss_fvec_inner_products_ny(out, NULL, NULL, 4, 0);
    faiss_fvec_L2sqr_ny(out, NULL, NULL, 4, 0);
    faiss_fvec_norms_L2(out, NULL, 4, 0);
    faiss_fvec_norms_L2sqr(out, NULL, 4, 0);
    faiss_fvec_renorm_L2(4, 0, NULL);
    cr_assert_eq(faiss_fvec_norm_L2sqr(NULL, 0), 0.0f);
    cr_assert(strstr(faiss_get_last_error(), "faiss_ParameterSpace_new"),
              "an empty call reported '%s'", faiss_get_last_error());
    cr_assert_eq(out[0], -1.0f);
}

Test(distances, fvec_invalid_does_nothing) {
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float out[4] = {-3, -3, -3, -3};
    other_error();
    faiss_fvec_inner_products_ny(NULL, x, x, 4, 2);
    ERR_FROM("faiss_fvec_inner_products_ny");
    other_error();
    faiss_fvec_inner_products_ny(out, NULL, x, 4, 2);
    ERR_FROM("faiss_fvec_inner_products_ny");
    other_error();
    faiss_fvec_inner_products_ny(out, x, NULL, 4, 2);
    ERR_FROM("faiss_fvec_inner_products_ny");
    other_error();
    faiss_fvec_L2sqr_ny(NULL, x, x, 4, 2);
    ERR_FROM("faiss_fvec_L2sqr_ny");
    other_error();
    faiss_fvec_L2sqr_ny(out, x, NULL, 4, 2);
    ERR_FROM("faiss_fvec_L2sqr_ny");
    other_error();
    cr_assert_eq(faiss_fvec_norm_L2sqr(NULL, 4), 0.0f);
    ERR_FROM("faiss_fvec_norm_L2sqr");
    other_error();
    faiss_fvec_norms_L2(NULL, x, 4, 2);
    ERR_FROM("faiss_fvec_norms_L2");
    other_error();
    faiss_fvec_norms_L2(out, NULL, 4, 2);
    ERR_FROM("faiss_fvec_norms_L2");
    other_error();
    faiss_fvec_norms_L2sqr(out, NULL, 4, 2);
    ERR_FROM("faiss_fvec_norms_L2sqr");
    other_error();
    faiss_fvec_renorm_L2(4, 2, NULL);
    ERR_FROM("faiss_fvec_renorm_L2");
    for (int i = 0; i < 4; i++) cr_assert_eq(out[i], -3.0f);
}

/* ---- the BLAS globals --------------------------------------------------- */

typedef struct Knob {
    const char* name;
    void (*set)(int);
    int (*get)(void);
    int (*cpp)(void);
    int min_valid; /* smallest accepted value */
} Knob;

static const Knob KNOBS[] = {
        {"faiss_set_distance_compute_blas_threshold",
         faiss_set_distance_compute_blas_threshold,
         faiss_get_distance_compute_blas_threshold, oracle_blas_threshold,
         0},
        {"faiss_set_distance_compute_blas_query_bs",
         faiss_set_distance_compute_blas_query_bs,
         faiss_get_distance_compute_blas_query_bs, oracle_blas_query_bs, 1},
        {"faiss_set_distance_compute_blas_database_bs",
         faiss_set_distance_compute_blas_database_bs,
         faiss_get_distance_compute_blas_database_bs,
         oracle_blas_database_bs, 1},
        {"faiss_set_distance_compute_min_k_reservoir",
         faiss_set_distance_compute_min_k_reservoir,
         faiss_get_distance_compute_min_k_reservoir, oracle_min_k_reservoir,
         1},
};

Test(distances, blas_globals_round_trip) {
    for (size_t i = 0; i < sizeof KNOBS / sizeof *KNOBS; i++) {
        const Knob* k = &KNOBS[i];
        int def = k->get();
        cr_assert_eq(def, k->cpp(), "%s: default differs from C++", k->name);
        cr_assert_gt(def, 0);
        k->set(def + 17);
        cr_assert_eq(k->get(), def + 17, "%s", k->name);
        cr_assert_eq(k->cpp(), def + 17, "%s: faiss does not see it",
                     k->name);
        k->set(k->min_valid);
        cr_assert_eq(k->get(), k->min_valid);
        cr_assert_eq(k->cpp(), k->min_valid);
        k->set(def);
        cr_assert_eq(k->get(), def, "%s: not restored", k->name);
        cr_assert_eq(k->cpp(), def);
    }
}

Test(distances, blas_block_sizes_reject_nonpositive) {
    for (size_t i = 1; i < sizeof KNOBS / sizeof *KNOBS; i++) {
        const Knob* k = &KNOBS[i];
        int def = k->get();
        const int bad[] = {0, -1, -1000};
        for (size_t j = 0; j < 3; j++) {
            other_error();
            k->set(bad[j]);
            cr_assert_eq(k->get(), def, "%s(%d) changed the value", k->name,
                         bad[j]);
            cr_assert_eq(k->cpp(), def);
            cr_assert(strstr(faiss_get_last_error(), k->name),
                      "%s(%d): error '%s'", k->name, bad[j],
                      faiss_get_last_error());
        }
    }
}

/* The threshold selects faiss's BLAS or direct k-NN path: a flat search
 * follows faiss C++ on both sides of it. */
Test(distances, blas_threshold_drives_flat_search) {
    FXT_LOCAL_ONLY("the BLAS threshold is a process global; a server has its own");
    const int d = 32;
    const idx_t nb = 400, nq = 30, k = 5;
    float* xb = fxt_uniform(nb, d, 70);
    float* xq = fxt_uniform(nq, d, 71);
    FaissIndexFlatL2* ix = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&ix, d));
    FXT_OK(faiss_Index_add(ix, nb, xb));
    int def = faiss_get_distance_compute_blas_threshold();
    const int thresholds[] = {1, 1000000};
    float D[2][30 * 5];
    idx_t I[2][30 * 5];
    for (int t = 0; t < 2; t++) {
        faiss_set_distance_compute_blas_threshold(thresholds[t]);
        float Dr[30 * 5];
        int64_t Ir[30 * 5];
        FXT_OK(faiss_Index_search(ix, nq, xq, k, D[t], I[t]));
        oracle_knn_L2sqr(xq, xb, d, nq, nb, k, Dr, Ir);
        FXT_SAME(D[t], Dr, sizeof Dr);
        FXT_SAME(I[t], Ir, sizeof Ir);
    }
    /* same neighbours either way, distances within rounding */
    for (int i = 0; i < nq * k; i++)
        cr_assert(fabsf(D[0][i] - D[1][i]) < 1e-4f);
    faiss_set_distance_compute_blas_threshold(def);
    cr_assert_eq(faiss_get_distance_compute_blas_threshold(), def);
    faiss_IndexFlatL2_free(ix);
    free(xb);
    free(xq);
}
