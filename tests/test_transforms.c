/* test_transforms.c -- VectorTransform_c.h and IndexPreTransform_c.h
 * against the same objects built, trained and applied in faiss C++. */
#include "common.h"
#include "oracle.h"
#include "oracle_transforms.h"

#include <math.h>
#include <stdlib.h>

#define ORV(call)                                                          \
    cr_assert_eq((call), 0, "oracle %s failed: %s", #call, oracle_vt_error())
#define ORF(call)                                                          \
    cr_assert_eq((call), 0, "oracle %s failed: %s", #call,                 \
                 oracle_last_error())

/* A void or value-returning call failed: the last error names `func` and
 * contains `needle`. */
#define FXT_LAST_ERR(func, needle)                                          \
    do {                                                                    \
        const char* fxt_m_ = faiss_get_last_error();                        \
        cr_assert(fxt_m_ != NULL && strstr(fxt_m_, (func)) != NULL,         \
                  "no error recorded by %s (last: %s)", (func),             \
                  fxt_m_ ? fxt_m_ : "(none)");                              \
        cr_assert(strstr(fxt_m_, (needle)) != NULL,                         \
                  "message '%s' lacks '%s'", fxt_m_, (needle));             \
    } while (0)

/* Clears the thread's last message by provoking a known unrelated error,
 * so the next FXT_LAST_ERR cannot be satisfied by a stale message. */
static void reset_last_error(void) {
    cr_assert_neq(faiss_RandomRotationMatrix_new_with(NULL, 1, 1), 0);
    const char* m = faiss_get_last_error();
    cr_assert(m && strstr(m, "faiss_RandomRotationMatrix_new_with"));
}

/* ---- the same transform through the C API ------------------------------ */

static FaissVectorTransform* make_c(const OVtSpec* s) {
    FaissVectorTransform* t = NULL;
    switch (s->kind) {
    case OVT_RR:
        FXT_OK(faiss_RandomRotationMatrix_new_with(
                (FaissRandomRotationMatrix**)&t, s->d_in, s->d_out));
        break;
    case OVT_PCA:
        FXT_OK(faiss_PCAMatrix_new_with((FaissPCAMatrix**)&t, s->d_in,
                                        s->d_out, s->f, s->i));
        break;
    case OVT_ITQM:
        FXT_OK(faiss_ITQMatrix_new_with((FaissITQMatrix**)&t, s->d_in));
        break;
    case OVT_ITQT:
        FXT_OK(faiss_ITQTransform_new_with((FaissITQTransform**)&t, s->d_in,
                                           s->d_out, s->i));
        break;
    case OVT_OPQ:
        FXT_OK(faiss_OPQMatrix_new_with((FaissOPQMatrix**)&t, s->d_in, s->i,
                                        s->d_out));
        if (s->niter > 0) faiss_OPQMatrix_set_niter((FaissOPQMatrix*)t, s->niter);
        if (s->niter_pq > 0)
            faiss_OPQMatrix_set_niter_pq((FaissOPQMatrix*)t, s->niter_pq);
        break;
    case OVT_REMAP:
        FXT_OK(faiss_RemapDimensionsTransform_new_with(
                (FaissRemapDimensionsTransform**)&t, s->d_in, s->d_out,
                s->i));
        break;
    case OVT_NORM:
        FXT_OK(faiss_NormalizationTransform_new_with(
                (FaissNormalizationTransform**)&t, s->d_in, s->f));
        break;
    case OVT_CENTER:
        FXT_OK(faiss_CenteringTransform_new_with(
                (FaissCenteringTransform**)&t, s->d_in));
        break;
    default:
        cr_assert_fail("bad kind %d", s->kind);
    }
    cr_assert(t != NULL);
    return t;
}

static const char* kind_name(int k) {
    static const char* names[] = {"?",   "RR",    "PCA",  "ITQM", "ITQT",
                                  "OPQ", "REMAP", "NORM", "CENTER"};
    return (k >= 1 && k <= OVT_CENTER) ? names[k] : "?";
}

/* Every constructor with several parameter sets (d = 32 or 16 inputs). */
static const OVtSpec SPECS[] = {
        {OVT_RR, 32, 32, 0, 0, 0, 0},
        {OVT_RR, 32, 16, 0, 0, 0, 0},
        {OVT_RR, 16, 32, 0, 0, 0, 0},
        {OVT_PCA, 32, 16, 0.0f, 0, 0, 0},
        {OVT_PCA, 32, 32, 0.0f, 0, 0, 0},
        {OVT_PCA, 32, 16, -0.5f, 0, 0, 0},
        {OVT_PCA, 32, 16, 0.0f, 1, 0, 0},
        {OVT_PCA, 32, 8, -0.25f, 1, 0, 0},
        {OVT_ITQM, 16, 16, 0, 0, 0, 0},
        {OVT_ITQT, 32, 16, 0, 1, 0, 0},
        {OVT_ITQT, 16, 16, 0, 0, 0, 0},
        {OVT_OPQ, 32, -1, 0, 4, 3, 2},
        {OVT_OPQ, 32, 16, 0, 4, 2, 2},
        {OVT_OPQ, 16, 16, 0, 2, 2, 3},
        {OVT_REMAP, 32, 16, 0, 1, 0, 0},
        {OVT_REMAP, 32, 16, 0, 0, 0, 0},
        {OVT_REMAP, 16, 32, 0, 1, 0, 0},
        {OVT_REMAP, 16, 32, 0, 0, 0, 0},
        {OVT_NORM, 32, 32, 2.0f, 0, 0, 0},
        {OVT_CENTER, 32, 32, 0, 0, 0, 0},
};
#define NSPECS (sizeof SPECS / sizeof *SPECS)

static int spec_dout(const OVtSpec* s) {
    return (s->kind == OVT_OPQ && s->d_out == -1) ? s->d_in : s->d_out;
}

/* Train/apply/reverse/transpose one spec on both sides and compare. */
static void check_spec(const OVtSpec* s, int set_ortho) {
    const idx_t nt = 1000, n = 40;
    const int din = s->d_in, dout = spec_dout(s);
    float* xt = fxt_clustered(nt, din, 20, 0.1f, 100 + s->kind);
    float* x = fxt_clustered(n, din, 20, 0.1f, 100 + s->kind);
    float* y = malloc(sizeof(float) * n * dout);
    float* rev = malloc(sizeof(float) * n * din);
    float* tt = malloc(sizeof(float) * n * din);
    OVtInfo info;
    ORV(oracle_vt_run(s, nt, xt, set_ortho, n, x, y, rev, tt, &info));

    FaissVectorTransform* t = make_c(s);
    cr_assert_eq(faiss_VectorTransform_d_in(t), info.d_in, "%s d_in",
                 kind_name(s->kind));
    cr_assert_eq(faiss_VectorTransform_d_out(t), info.d_out, "%s d_out",
                 kind_name(s->kind));
    cr_assert_eq(faiss_VectorTransform_is_trained(t), info.trained_at_birth,
                 "%s is_trained before train", kind_name(s->kind));
    FXT_OK(faiss_VectorTransform_train(t, nt, xt));
    cr_assert_eq(faiss_VectorTransform_is_trained(t), info.is_trained);
    if (info.is_linear) {
        FaissLinearTransform* lt = (FaissLinearTransform*)t;
        if (set_ortho) faiss_LinearTransform_set_is_orthonormal(lt);
        cr_assert_eq(faiss_LinearTransform_have_bias(lt), info.have_bias,
                     "%s have_bias", kind_name(s->kind));
        cr_assert_eq(faiss_LinearTransform_is_orthonormal(lt),
                     info.is_orthonormal, "%s is_orthonormal",
                     kind_name(s->kind));
    }

    /* apply: malloc'd result, bit-identical to C++ */
    float* ya = faiss_VectorTransform_apply(t, n, x);
    cr_assert(ya != NULL, "apply failed: %s", faiss_get_last_error());
    cr_assert(memcmp(ya, y, sizeof(float) * n * dout) == 0,
              "%s %d->%d apply differs from C++", kind_name(s->kind), din,
              dout);
    free(ya);

    float* yn = malloc(sizeof(float) * n * dout);
    faiss_VectorTransform_apply_noalloc(t, n, x, yn);
    cr_assert(memcmp(yn, y, sizeof(float) * n * dout) == 0,
              "%s apply_noalloc differs from C++", kind_name(s->kind));

    float* r = malloc(sizeof(float) * n * din);
    reset_last_error();
    faiss_VectorTransform_reverse_transform(t, n, yn, r);
    if (info.rev_ok) {
        cr_assert(memcmp(r, rev, sizeof(float) * n * din) == 0,
                  "%s reverse_transform differs from C++",
                  kind_name(s->kind));
    } else {
        FXT_LAST_ERR("faiss_VectorTransform_reverse_transform",
                     "not implemented");
    }
    if (info.is_linear) {
        faiss_LinearTransform_transform_transpose(
                (FaissLinearTransform*)t, n, yn, r);
        cr_assert(info.tt_ok);
        cr_assert(memcmp(r, tt, sizeof(float) * n * din) == 0,
                  "%s transform_transpose differs from C++",
                  kind_name(s->kind));
    }
    faiss_VectorTransform_free(t);
    free(r);
    free(yn);
    free(xt);
    free(x);
    free(y);
    free(rev);
    free(tt);
}

Test(transforms, every_constructor_matches_cpp) {
    for (size_t i = 0; i < NSPECS; i++) check_spec(&SPECS[i], 0);
}

Test(transforms, set_is_orthonormal_matches_cpp) {
    for (size_t i = 0; i < NSPECS; i++) {
        const OVtSpec* s = &SPECS[i];
        if (s->kind == OVT_RR || s->kind == OVT_PCA || s->kind == OVT_ITQM ||
            s->kind == OVT_OPQ)
            check_spec(s, 1);
    }
}

/* Orthonormal transforms round-trip through reverse_transform; a whitening
 * PCA is not orthonormal and refuses to reverse (both as in C++). */
Test(transforms, reverse_of_orthonormal_round_trips) {
    const int d = 16;
    const idx_t nt = 500, n = 10;
    float* xt = fxt_uniform(nt, d, 7);
    FaissRandomRotationMatrix* rr = NULL;
    FXT_OK(faiss_RandomRotationMatrix_new_with(&rr, d, d));
    FXT_OK(faiss_VectorTransform_train((FaissVectorTransform*)rr, nt, xt));
    cr_assert(faiss_LinearTransform_is_orthonormal((FaissLinearTransform*)rr));
    float y[10 * 16], back[10 * 16];
    faiss_VectorTransform_apply_noalloc((FaissVectorTransform*)rr, n, xt, y);
    faiss_VectorTransform_reverse_transform((FaissVectorTransform*)rr, n, y,
                                            back);
    for (int i = 0; i < n * d; i++)
        cr_assert(fabsf(back[i] - xt[i]) < 1e-5f, "component %d: %g vs %g",
                  i, back[i], xt[i]);

    FaissPCAMatrix* w = NULL;
    FXT_OK(faiss_PCAMatrix_new_with(&w, d, 8, -0.5f, 0));
    FXT_OK(faiss_VectorTransform_train((FaissVectorTransform*)w, nt, xt));
    cr_assert_not(faiss_LinearTransform_is_orthonormal((FaissLinearTransform*)w));
    faiss_LinearTransform_set_is_orthonormal((FaissLinearTransform*)w);
    cr_assert_not(faiss_LinearTransform_is_orthonormal((FaissLinearTransform*)w));
    float yw[10 * 8];
    faiss_VectorTransform_apply_noalloc((FaissVectorTransform*)w, n, xt, yw);
    reset_last_error();
    faiss_VectorTransform_reverse_transform((FaissVectorTransform*)w, n, yw,
                                            back);
    FXT_LAST_ERR("faiss_VectorTransform_reverse_transform", "orthonormal");

    faiss_RandomRotationMatrix_free(rr);
    faiss_PCAMatrix_free(w);
    free(xt);
}

/* faiss_VectorTransform_apply returns memory from malloc (upstream:
 * new[], which C cannot release): free() and realloc() are valid on it
 * (ASan reports an alloc/dealloc mismatch otherwise). */
Test(transforms, apply_returns_malloc_memory) {
    const int d = 8;
    float* x = fxt_uniform(5, d, 3);
    FaissNormalizationTransform* t = NULL;
    FXT_OK(faiss_NormalizationTransform_new_with(&t, d, 2.0f));
    float* y = faiss_VectorTransform_apply((FaissVectorTransform*)t, 5, x);
    cr_assert(y != NULL);
    float first = y[0];
    float* y2 = realloc(y, 1000 * sizeof(float));
    cr_assert(y2 != NULL);
    cr_assert_eq(y2[0], first);
    free(y2);
    faiss_NormalizationTransform_free(t);
    free(x);
}

Test(transforms, typed_getters_and_setters) {
    FaissPCAMatrix* pca = NULL;
    FXT_OK(faiss_PCAMatrix_new_with(&pca, 16, 8, -0.25f, 1));
    cr_assert_eq(faiss_PCAMatrix_eigen_power(pca), -0.25f);
    cr_assert_eq(faiss_PCAMatrix_random_rotation(pca), 1);
    faiss_PCAMatrix_free(pca);
    FXT_OK(faiss_PCAMatrix_new_with(&pca, 16, 8, 0.0f, 0));
    cr_assert_eq(faiss_PCAMatrix_eigen_power(pca), 0.0f);
    cr_assert_eq(faiss_PCAMatrix_random_rotation(pca), 0);
    faiss_PCAMatrix_free(pca);

    FaissITQTransform* itq = NULL;
    FXT_OK(faiss_ITQTransform_new_with(&itq, 16, 8, 1));
    cr_assert_eq(faiss_ITQTransform_do_pca(itq), 1);
    faiss_ITQTransform_free(itq);
    FXT_OK(faiss_ITQTransform_new_with(&itq, 16, 16, 0));
    cr_assert_eq(faiss_ITQTransform_do_pca(itq), 0);
    faiss_ITQTransform_free(itq);

    FaissNormalizationTransform* nt = NULL;
    FXT_OK(faiss_NormalizationTransform_new_with(&nt, 16, 2.0f));
    cr_assert_eq(faiss_NormalizationTransform_norm(nt), 2.0f);
    faiss_NormalizationTransform_free(nt);

    int niter, niter_pq, verbose;
    ORV(oracle_opq_defaults(16, 4, &niter, &niter_pq, &verbose));
    FaissOPQMatrix* opq = NULL;
    FXT_OK(faiss_OPQMatrix_new_with(&opq, 16, 4, -1));
    cr_assert_eq(faiss_OPQMatrix_niter(opq), niter);
    cr_assert_eq(faiss_OPQMatrix_niter_pq(opq), niter_pq);
    cr_assert_eq(faiss_OPQMatrix_verbose(opq), verbose);
    cr_assert_eq(faiss_VectorTransform_d_in((FaissVectorTransform*)opq), 16);
    cr_assert_eq(faiss_VectorTransform_d_out((FaissVectorTransform*)opq), 16);
    faiss_OPQMatrix_set_niter(opq, 7);
    faiss_OPQMatrix_set_niter_pq(opq, 3);
    faiss_OPQMatrix_set_verbose(opq, 1);
    cr_assert_eq(faiss_OPQMatrix_niter(opq), 7);
    cr_assert_eq(faiss_OPQMatrix_niter_pq(opq), 3);
    cr_assert_eq(faiss_OPQMatrix_verbose(opq), 1);
    faiss_OPQMatrix_set_verbose(opq, 0);
    cr_assert_eq(faiss_OPQMatrix_verbose(opq), 0);
    faiss_OPQMatrix_free(opq);
}

/* A typed getter/setter on another transform type returns 0 / changes
 * nothing and records an error; a NULL handle likewise. */
Test(transforms, getters_on_the_wrong_type) {
    FaissRandomRotationMatrix* rr = NULL;
    FXT_OK(faiss_RandomRotationMatrix_new_with(&rr, 8, 8));
    FaissNormalizationTransform* nt = NULL;
    FXT_OK(faiss_NormalizationTransform_new_with(&nt, 8, 2.0f));

    reset_last_error();
    cr_assert_eq(faiss_PCAMatrix_eigen_power((FaissPCAMatrix*)rr), 0.0f);
    FXT_LAST_ERR("faiss_PCAMatrix_eigen_power", "PCAMatrix");
    reset_last_error();
    cr_assert_eq(faiss_ITQTransform_do_pca((FaissITQTransform*)rr), 0);
    FXT_LAST_ERR("faiss_ITQTransform_do_pca", "ITQTransform");
    reset_last_error();
    cr_assert_eq(faiss_NormalizationTransform_norm(
                         (FaissNormalizationTransform*)rr),
                 0.0f);
    FXT_LAST_ERR("faiss_NormalizationTransform_norm", "NormalizationTransform");
    reset_last_error();
    cr_assert_eq(faiss_LinearTransform_have_bias((FaissLinearTransform*)nt), 0);
    FXT_LAST_ERR("faiss_LinearTransform_have_bias", "LinearTransform");
    reset_last_error();
    faiss_OPQMatrix_set_niter((FaissOPQMatrix*)rr, 5);
    FXT_LAST_ERR("faiss_OPQMatrix_set_niter", "OPQMatrix");
    reset_last_error();
    faiss_LinearTransform_set_is_orthonormal((FaissLinearTransform*)nt);
    FXT_LAST_ERR("faiss_LinearTransform_set_is_orthonormal",
                 "LinearTransform");
    reset_last_error();
    cr_assert_eq(faiss_VectorTransform_d_in(NULL), 0);
    FXT_LAST_ERR("faiss_VectorTransform_d_in", "NULL");
    reset_last_error();
    cr_assert_eq(faiss_OPQMatrix_niter(NULL), 0);
    FXT_LAST_ERR("faiss_OPQMatrix_niter", "NULL");

    faiss_RandomRotationMatrix_free(rr);
    faiss_NormalizationTransform_free(nt);
    /* every destructor accepts NULL */
    faiss_VectorTransform_free(NULL);
    faiss_LinearTransform_free(NULL);
    faiss_RandomRotationMatrix_free(NULL);
    faiss_PCAMatrix_free(NULL);
    faiss_ITQMatrix_free(NULL);
    faiss_ITQTransform_free(NULL);
    faiss_OPQMatrix_free(NULL);
    faiss_RemapDimensionsTransform_free(NULL);
    faiss_NormalizationTransform_free(NULL);
    faiss_CenteringTransform_free(NULL);
}

Test(transforms, constructor_errors) {
    FaissVectorTransform* t = NULL;
    FXT_ERR(faiss_RandomRotationMatrix_new_with(
                    (FaissRandomRotationMatrix**)&t, 0, 8),
            "d_in");
    FXT_ERR(faiss_RandomRotationMatrix_new_with(
                    (FaissRandomRotationMatrix**)&t, 8, -1),
            "d_out");
    FXT_ERR(faiss_RandomRotationMatrix_new_with(NULL, 8, 8), "NULL");
    FXT_ERR(faiss_PCAMatrix_new_with((FaissPCAMatrix**)&t, 8, 16, 0, 0),
            "d_out");
    FXT_ERR(faiss_PCAMatrix_new_with((FaissPCAMatrix**)&t, 16, 8, NAN, 0),
            "eigen_power");
    FXT_ERR(faiss_PCAMatrix_new_with((FaissPCAMatrix**)&t, -16, 8, 0, 0),
            "d_in");
    FXT_ERR(faiss_ITQMatrix_new_with((FaissITQMatrix**)&t, 0), "d");
    FXT_ERR(faiss_ITQTransform_new_with((FaissITQTransform**)&t, 16, 8, 0),
            "d_out");
    FXT_ERR(faiss_ITQTransform_new_with((FaissITQTransform**)&t, 16, 0, 1),
            "d_out");
    FXT_ERR(faiss_OPQMatrix_new_with((FaissOPQMatrix**)&t, 16, 5, -1),
            "multiple of M");
    FXT_ERR(faiss_OPQMatrix_new_with((FaissOPQMatrix**)&t, 16, 4, 18),
            "multiple of M");
    FXT_ERR(faiss_OPQMatrix_new_with((FaissOPQMatrix**)&t, 16, 0, -1), "M");
    FXT_ERR(faiss_RemapDimensionsTransform_new_with(
                    (FaissRemapDimensionsTransform**)&t, 0, 8, 1),
            "d_in");
    FXT_ERR(faiss_NormalizationTransform_new_with(
                    (FaissNormalizationTransform**)&t, 8, INFINITY),
            "norm");
    FXT_ERR(faiss_NormalizationTransform_new_with(
                    (FaissNormalizationTransform**)&t, 0, 2.0f),
            "d");
    FXT_ERR(faiss_CenteringTransform_new_with(
                    (FaissCenteringTransform**)&t, -3),
            "d");
    cr_assert_null(t, "no failed constructor may write its output");
}

Test(transforms, usage_errors) {
    const int d = 16;
    float* x = fxt_uniform(300, d, 9);
    float y[16 * 4];

    FaissRandomRotationMatrix* rr = NULL;
    FXT_OK(faiss_RandomRotationMatrix_new_with(&rr, d, d));
    FaissVectorTransform* t = (FaissVectorTransform*)rr;
    /* untrained */
    cr_assert_null(faiss_VectorTransform_apply(t, 4, x));
    FXT_LAST_ERR("faiss_VectorTransform_apply", "not trained");
    reset_last_error();
    faiss_VectorTransform_apply_noalloc(t, 4, x, y);
    FXT_LAST_ERR("faiss_VectorTransform_apply_noalloc", "not trained");
    reset_last_error();
    faiss_VectorTransform_reverse_transform(t, 4, x, y);
    FXT_LAST_ERR("faiss_VectorTransform_reverse_transform", "not trained");
    reset_last_error();
    faiss_LinearTransform_transform_transpose((FaissLinearTransform*)rr, 4, x,
                                              y);
    FXT_LAST_ERR("faiss_LinearTransform_transform_transpose", "not trained");
    /* bad training input */
    FXT_ERR(faiss_VectorTransform_train(t, 10, NULL), "NULL");
    FXT_ERR(faiss_VectorTransform_train(t, -1, x), "n must be");
    FXT_ERR(faiss_VectorTransform_train(NULL, 10, x), "NULL");
    x[5] = NAN;
    FXT_ERR(faiss_VectorTransform_train(t, 10, x), "non-finite");
    x[5] = 0.5f;
    FXT_OK(faiss_VectorTransform_train(t, 10, x));
    /* bad apply arguments */
    cr_assert_null(faiss_VectorTransform_apply(t, 0, x));
    FXT_LAST_ERR("faiss_VectorTransform_apply", "n > 0");
    cr_assert_null(faiss_VectorTransform_apply(t, 4, NULL));
    cr_assert_null(faiss_VectorTransform_apply(NULL, 4, x));
    FXT_LAST_ERR("faiss_VectorTransform_apply", "NULL");
    reset_last_error();
    faiss_VectorTransform_apply_noalloc(t, 4, x, NULL);
    FXT_LAST_ERR("faiss_VectorTransform_apply_noalloc", "NULL");
    reset_last_error();
    faiss_VectorTransform_apply_noalloc(t, -2, x, y);
    FXT_LAST_ERR("faiss_VectorTransform_apply_noalloc", "n must be");
    reset_last_error();
    faiss_VectorTransform_reverse_transform(NULL, 4, x, y);
    FXT_LAST_ERR("faiss_VectorTransform_reverse_transform", "NULL");
    /* n == 0 is a no-op for the no-alloc forms */
    reset_last_error();
    faiss_VectorTransform_apply_noalloc(t, 0, NULL, NULL);
    cr_assert(strstr(faiss_get_last_error(), "RandomRotationMatrix_new"));

    /* transpose needs a LinearTransform; reverse needs an implementation */
    FaissITQTransform* itq = NULL;
    FXT_OK(faiss_ITQTransform_new_with(&itq, d, d, 0));
    FXT_OK(faiss_VectorTransform_train((FaissVectorTransform*)itq, 300, x));
    reset_last_error();
    faiss_LinearTransform_transform_transpose((FaissLinearTransform*)itq, 4,
                                              x, y);
    FXT_LAST_ERR("faiss_LinearTransform_transform_transpose",
                 "LinearTransform");
    reset_last_error();
    faiss_VectorTransform_reverse_transform((FaissVectorTransform*)itq, 4, x,
                                            y);
    FXT_LAST_ERR("faiss_VectorTransform_reverse_transform", "not implemented");

    /* faiss refuses: OPQ needs >= 256 training points per sub-quantizer,
     * normalisation other than L2 is not implemented */
    FaissOPQMatrix* opq = NULL;
    FXT_OK(faiss_OPQMatrix_new_with(&opq, d, 4, -1));
    FXT_ERR(faiss_VectorTransform_train((FaissVectorTransform*)opq, 100, x),
            "");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_FAISS);
    FaissNormalizationTransform* n1 = NULL;
    FXT_OK(faiss_NormalizationTransform_new_with(&n1, d, 1.0f));
    cr_assert_null(faiss_VectorTransform_apply((FaissVectorTransform*)n1, 4, x));
    FXT_LAST_ERR("faiss_VectorTransform_apply", "");
    cr_assert_eq(faissx_last_error_code(), FAISSX_E_FAISS);

    faiss_RandomRotationMatrix_free(rr);
    faiss_ITQTransform_free(itq);
    faiss_OPQMatrix_free(opq);
    faiss_NormalizationTransform_free(n1);
    free(x);
}

/* ---- IndexPreTransform ------------------------------------------------- */

/* factory string -> the same chain as specs (d = 32 input) */
typedef struct Chain {
    const char* factory;
    int metric;
    int nspecs;
    OVtSpec specs[3];
} Chain;

static const Chain CHAINS[] = {
        {"PCA16,Flat", METRIC_L2, 1, {{OVT_PCA, 32, 16, 0, 0, 0, 0}}},
        {"PCAW16,Flat", METRIC_L2, 1, {{OVT_PCA, 32, 16, -0.5f, 0, 0, 0}}},
        {"PCAR16,Flat", METRIC_INNER_PRODUCT, 1,
         {{OVT_PCA, 32, 16, 0, 1, 0, 0}}},
        {"RR32,PCA16,Flat", METRIC_L2, 2,
         {{OVT_RR, 32, 32, 0, 0, 0, 0}, {OVT_PCA, 32, 16, 0, 0, 0, 0}}},
        {"L2norm,Flat", METRIC_INNER_PRODUCT, 1,
         {{OVT_NORM, 32, 32, 2.0f, 0, 0, 0}}},
        {"RR24,PCA16,L2norm,Flat", METRIC_L2, 3,
         {{OVT_RR, 32, 24, 0, 0, 0, 0},
          {OVT_PCA, 24, 16, 0, 0, 0, 0},
          {OVT_NORM, 16, 16, 2.0f, 0, 0, 0}}},
};

/* new_with_transform(last spec, Flat) then prepend the others. */
static FaissIndexPreTransform* build_chain(const Chain* c, int own,
                                           FaissVectorTransform** ts,
                                           FaissIndex** inner) {
    const OVtSpec* last = &c->specs[c->nspecs - 1];
    FXT_OK(faiss_IndexFlat_new_with(inner, spec_dout(last), c->metric));
    ts[c->nspecs - 1] = make_c(last);
    FaissIndexPreTransform* pt = NULL;
    FXT_OK(faiss_IndexPreTransform_new_with_transform(&pt, ts[c->nspecs - 1],
                                                      *inner));
    cr_assert_eq(faiss_IndexPreTransform_own_fields(pt), 0);
    for (int i = c->nspecs - 2; i >= 0; i--) {
        ts[i] = make_c(&c->specs[i]);
        FXT_OK(faiss_IndexPreTransform_prepend_transform(pt, ts[i]));
    }
    faiss_IndexPreTransform_set_own_fields(pt, own);
    cr_assert_eq(faiss_IndexPreTransform_own_fields(pt), own);
    cr_assert_eq(faiss_Index_d(pt), c->specs[0].d_in);
    return pt;
}

Test(transforms, pretransform_chains_match_factory_and_cpp) {
    const int d = 32;
    const idx_t nt = 1000, nb = 800, nq = 20, k = 5;
    float* xt = fxt_clustered(nt, d, 20, 0.1f, 21);
    float* xb = fxt_clustered(nb, d, 20, 0.1f, 22);
    float* xq = fxt_clustered(nq, d, 20, 0.1f, 23);
    float D[20 * 5], Dc[20 * 5], Df[20 * 5];
    idx_t I[20 * 5], Ic[20 * 5], If[20 * 5];
    for (size_t ci = 0; ci < sizeof CHAINS / sizeof *CHAINS; ci++) {
        const Chain* c = &CHAINS[ci];
        FaissVectorTransform* ts[3];
        FaissIndex* inner = NULL;
        FaissIndexPreTransform* pt = build_chain(c, 1, ts, &inner);
        cr_assert_eq(faiss_IndexPreTransform_index(pt), inner);
        FXT_OK(faiss_Index_train(pt, nt, xt));
        cr_assert(faiss_Index_is_trained(pt));
        /* training the chain trains the caller's transform objects (on a
         * remote chain: the server's trained state is copied back); the
         * first one saw xt itself, so it equals one trained alone */
        for (int i = 0; i < c->nspecs; i++)
            cr_assert(faiss_VectorTransform_is_trained(ts[i]),
                      "%s: transform %d not trained", c->factory, i);
        {
            const int d0 = spec_dout(&c->specs[0]);
            float* y = malloc(sizeof(float) * nq * d0);
            float* rev = malloc(sizeof(float) * nq * d);
            float* tt = malloc(sizeof(float) * nq * d);
            OVtInfo info;
            ORV(oracle_vt_run(&c->specs[0], nt, xt, 0, nq, xq, y, rev, tt,
                              &info));
            float* ya = faiss_VectorTransform_apply(ts[0], nq, xq);
            cr_assert(ya != NULL, "apply: %s", faiss_get_last_error());
            cr_assert(memcmp(ya, y, sizeof(float) * nq * d0) == 0,
                      "%s: the chain's first transform differs from one "
                      "trained alone", c->factory);
            free(ya);
            free(y);
            free(rev);
            free(tt);
        }
        FXT_OK(faiss_Index_add(pt, nb, xb));
        cr_assert_eq(faiss_Index_ntotal(pt), nb);
        FXT_OK(faiss_Index_search(pt, nq, xq, k, D, I));
        ORV(oracle_pretransform_search(c->specs, c->nspecs, c->metric, nt,
                                       xt, nb, xb, nq, xq, k, Dc, Ic));
        ORF(oracle_factory_search(c->factory, d, c->metric, nt, xt, nb, xb,
                                  NULL, NULL, nq, xq, k, Df, If));
        cr_assert(memcmp(I, Ic, sizeof I) == 0 && memcmp(D, Dc, sizeof D) == 0,
                  "%s: C chain differs from the C++ chain", c->factory);
        cr_assert(memcmp(I, If, sizeof I) == 0 && memcmp(D, Df, sizeof D) == 0,
                  "%s: C chain differs from the C++ factory", c->factory);
        faiss_IndexPreTransform_free(pt); /* owns inner and ts[] */
    }
    free(xt);
    free(xb);
    free(xq);
}

/* Factory-built pretransforms expose their parts through the C API. */
Test(transforms, pretransform_from_factory) {
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, 32, "PCA16,IVF8,Flat", METRIC_L2));
    FaissIndexPreTransform* pt = faiss_IndexPreTransform_cast(ix);
    cr_assert_eq(pt, ix);
    cr_assert_eq(faiss_IndexPreTransform_own_fields(pt), 1);
    FaissIndex* sub = faiss_IndexPreTransform_index(pt);
    cr_assert_not_null(sub);
    cr_assert_not_null(faiss_IndexIVF_cast(sub));
    cr_assert_eq(faiss_Index_d(sub), 16);
    cr_assert_eq(faiss_Index_d(pt), 32);
    cr_assert_not(faiss_Index_is_trained(pt));
    /* the inner IVF is the one the chain uses (remote: a handle on the
     * server's inner index) */
    cr_assert_eq(faiss_IndexPreTransform_index(pt), sub, "same handle twice");
    const idx_t nt = 600, nb = 300, nq = 10, k = 4;
    float* xt = fxt_clustered(nt, 32, 8, 0.1f, 41);
    float* xq = fxt_clustered(nq, 32, 8, 0.1f, 42);
    FXT_OK(faiss_Index_train(ix, nt, xt));
    cr_assert(faiss_Index_is_trained(sub));
    FXT_OK(faiss_Index_add(ix, nb, xt));
    cr_assert_eq(faiss_Index_ntotal(sub), nb);
    faiss_IndexIVF_set_nprobe(faiss_IndexIVF_cast(sub), 8);
    float D[40], Dr[40];
    idx_t I[40], Ir[40];
    FXT_OK(faiss_Index_search(ix, nq, xq, k, D, I));
    ORF(oracle_factory_search("PCA16,IVF8,Flat", 32, METRIC_L2, nt, xt, nb,
                              xt, NULL, "nprobe=8", nq, xq, k, Dr, Ir));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);

    /* a transform prepended to a factory chain is the chain's (own_fields
     * = 1): freeing the index frees it (LeakSanitizer checks) */
    FaissRandomRotationMatrix* rr = NULL;
    FXT_OK(faiss_RandomRotationMatrix_new_with(&rr, 24, 32));
    FXT_OK(faiss_IndexPreTransform_prepend_transform(
            pt, (FaissVectorTransform*)rr));
    cr_assert_eq(faiss_Index_d(pt), 24);
    cr_assert_eq(faiss_Index_ntotal(pt), nb);
    cr_assert_eq(faiss_Index_d(sub), 16);
    faiss_Index_free(ix);
    free(xt);
    free(xq);

    FaissIndex* flat = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&flat, 8, METRIC_L2));
    cr_assert_null(faiss_IndexPreTransform_cast(flat));
    cr_assert_null(faiss_IndexPreTransform_cast(NULL));
    reset_last_error();
    cr_assert_null(faiss_IndexPreTransform_index(flat));
    FXT_LAST_ERR("faiss_IndexPreTransform_index", "IndexPreTransform");
    faiss_Index_free(flat);
}

/* new(): no index, no transforms; new_with(index): an identity chain that
 * searches exactly like the index it wraps. */
Test(transforms, pretransform_new_and_new_with) {
    FaissIndexPreTransform* empty = NULL;
    FXT_OK(faiss_IndexPreTransform_new(&empty));
    cr_assert_null(faiss_IndexPreTransform_index(empty));
    cr_assert_eq(faiss_IndexPreTransform_own_fields(empty), 0);
    faiss_IndexPreTransform_free(empty);

    const int d = 16;
    const idx_t nb = 300, nq = 10, k = 4;
    float* xb = fxt_uniform(nb, d, 31);
    float* xq = fxt_uniform(nq, d, 32);
    FaissIndex* flat = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&flat, d, METRIC_L2));
    FaissIndexPreTransform* pt = NULL;
    FXT_OK(faiss_IndexPreTransform_new_with(&pt, flat));
    cr_assert_eq(faiss_IndexPreTransform_index(pt), flat);
    cr_assert_eq(faiss_IndexPreTransform_own_fields(pt), 0);
    cr_assert_eq(faiss_Index_d(pt), d);
    FXT_OK(faiss_Index_add(pt, nb, xb));
    cr_assert_eq(faiss_Index_ntotal(flat), nb);
    float D[40], Dr[40];
    idx_t I[40], Ir[40];
    FXT_OK(faiss_Index_search(pt, nq, xq, k, D, I));
    ORF(oracle_factory_search("Flat", d, METRIC_L2, 0, NULL, nb, xb, NULL,
                              NULL, nq, xq, k, Dr, Ir));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D, Dr, sizeof D);

    /* a transform prepended to the identity chain */
    FaissRandomRotationMatrix* rr = NULL;
    FXT_OK(faiss_RandomRotationMatrix_new_with(&rr, 24, d));
    FXT_OK(faiss_IndexPreTransform_prepend_transform(
            pt, (FaissVectorTransform*)rr));
    cr_assert_eq(faiss_Index_d(pt), 24);

    /* own_fields = 0: freeing the chain leaves index and transform alive */
    faiss_IndexPreTransform_free(pt);
    cr_assert_eq(faiss_Index_ntotal(flat), nb);
    FXT_OK(faiss_Index_search(flat, nq, xq, k, D, I));
    FXT_SAME(I, Ir, sizeof I);
    cr_assert_eq(faiss_VectorTransform_d_in((FaissVectorTransform*)rr), 24);
    faiss_Index_free(flat);
    faiss_RandomRotationMatrix_free(rr);
    free(xb);
    free(xq);
}

/* own_fields = 1: freeing the pretransform frees the wrapped index and
 * every transform (LeakSanitizer would report them otherwise; a double
 * free would abort under ASan). */
Test(transforms, pretransform_own_fields_frees_everything) {
    FaissVectorTransform* ts[3];
    FaissIndex* inner = NULL;
    FaissIndexPreTransform* pt = build_chain(&CHAINS[5], 1, ts, &inner);
    cr_assert_eq(faiss_IndexPreTransform_index(pt), inner);
    faiss_IndexPreTransform_free(pt);

    /* and own_fields = 0 leaves them to the caller */
    pt = build_chain(&CHAINS[3], 0, ts, &inner);
    faiss_IndexPreTransform_free(pt);
    for (int i = 0; i < 2; i++) {
        cr_assert_gt(faiss_VectorTransform_d_in(ts[i]), 0);
        faiss_VectorTransform_free(ts[i]);
    }
    cr_assert_eq(faiss_Index_d(inner), 16);
    faiss_Index_free(inner);
}

Test(transforms, pretransform_errors) {
    FaissPCAMatrix* pca = NULL;
    FXT_OK(faiss_PCAMatrix_new_with(&pca, 32, 16, 0, 0));
    FaissIndex* flat8 = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&flat8, 8, METRIC_L2));
    FaissIndexPreTransform* pt = NULL;
    FXT_ERR(faiss_IndexPreTransform_new_with_transform(
                    &pt, (FaissVectorTransform*)pca, flat8),
            "differs from index dimension");
    cr_assert_null(pt);
    FXT_ERR(faiss_IndexPreTransform_new_with_transform(&pt, NULL, flat8),
            "NULL");
    FXT_ERR(faiss_IndexPreTransform_new_with_transform(
                    &pt, (FaissVectorTransform*)pca, NULL),
            "NULL");
    FXT_ERR(faiss_IndexPreTransform_new_with_transform(
                    NULL, (FaissVectorTransform*)pca, flat8),
            "NULL");
    FXT_ERR(faiss_IndexPreTransform_new_with(&pt, NULL), "NULL");
    FXT_ERR(faiss_IndexPreTransform_new_with(NULL, flat8), "NULL");
    FXT_ERR(faiss_IndexPreTransform_new(NULL), "NULL");

    /* chain input is 8-d: prepending a 32->16 PCA does not fit */
    FXT_OK(faiss_IndexPreTransform_new_with(&pt, flat8));
    FXT_ERR(faiss_IndexPreTransform_prepend_transform(
                    pt, (FaissVectorTransform*)pca),
            "differs from the chain's input dimension");
    FXT_ERR(faiss_IndexPreTransform_prepend_transform(pt, NULL), "NULL");
    FXT_ERR(faiss_IndexPreTransform_prepend_transform(
                    (FaissIndexPreTransform*)flat8,
                    (FaissVectorTransform*)pca),
            "IndexPreTransform");
    FXT_ERR(faiss_IndexPreTransform_prepend_transform(
                    NULL, (FaissVectorTransform*)pca),
            "NULL");
    cr_assert_eq(faiss_Index_d(pt), 8, "failed prepends change nothing");

    /* adding to an untrained chain */
    FaissIndex* f16 = NULL;
    FXT_OK(faiss_IndexFlat_new_with(&f16, 16, METRIC_L2));
    FaissIndexPreTransform* pt2 = NULL;
    FXT_OK(faiss_IndexPreTransform_new_with_transform(
            &pt2, (FaissVectorTransform*)pca, f16));
    faiss_IndexPreTransform_set_own_fields(pt2, 1);
    cr_assert_not(faiss_Index_is_trained(pt2));
    float* x = fxt_uniform(10, 32, 4);
    FXT_ERR(faiss_Index_add(pt2, 10, x), "not trained");
    free(x);

    faiss_IndexPreTransform_free(pt);
    faiss_IndexPreTransform_free(pt2); /* frees pca and f16 */
    faiss_Index_free(flat8);
    faiss_IndexPreTransform_free(NULL);
}
