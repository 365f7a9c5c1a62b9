/* oracle_transforms.h -- faiss C++ references for test_transforms.c: the
 * same VectorTransform built, trained and applied directly in C++, and
 * IndexPreTransform chains built from C++ objects. Functions return 0, or
 * -1 with the message in oracle_vt_error(). */
#ifndef FXT_ORACLE_TRANSFORMS_H
#define FXT_ORACLE_TRANSFORMS_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* oracle_vt_error(void);

enum {
    OVT_RR = 1,     /* RandomRotationMatrix(d_in, d_out) */
    OVT_PCA,        /* PCAMatrix(d_in, d_out, f, i != 0) */
    OVT_ITQM,       /* ITQMatrix(d_in) */
    OVT_ITQT,       /* ITQTransform(d_in, d_out, i != 0) */
    OVT_OPQ,        /* OPQMatrix(d_in, M = i, d2 = d_out) */
    OVT_REMAP,      /* RemapDimensionsTransform(d_in, d_out, i != 0) */
    OVT_NORM,       /* NormalizationTransform(d_in, f) */
    OVT_CENTER,     /* CenteringTransform(d_in) */
};

typedef struct OVtSpec {
    int kind;
    int d_in, d_out;
    float f;
    int i;
    int niter, niter_pq; /* OPQ only; applied when > 0 */
} OVtSpec;

/* What the C++ object reports. */
typedef struct OVtInfo {
    int d_in, d_out;
    int trained_at_birth; /* is_trained right after construction */
    int is_trained;       /* after train() */
    int is_linear;        /* a LinearTransform */
    int have_bias, is_orthonormal; /* LinearTransform only */
    int rev_ok;           /* reverse_transform did not throw */
    int tt_ok;            /* transform_transpose did not throw */
} OVtInfo;

/* Build the transform, train it on xt (nt may be 0: no training), call
 * set_is_orthonormal() when asked (linear only), apply it to x (n vectors)
 * into y (n * d_out). When rev != NULL, reverse_transform(y) into rev
 * (n * d_in); when tt != NULL and the transform is linear,
 * transform_transpose(y) into tt (n * d_in). */
int oracle_vt_run(const OVtSpec* s, idx_t nt, const float* xt,
                  int set_orthonormal, idx_t n, const float* x, float* y,
                  float* rev, float* tt, OVtInfo* info);

/* An IndexPreTransform over IndexFlat(d_out of the chain, metric), with
 * the chain given as specs (applied in order: specs[0] first), trained on
 * xt, filled with xb, searched. */
int oracle_pretransform_search(const OVtSpec* specs, int nspecs, int metric,
                               idx_t nt, const float* xt, idx_t nb,
                               const float* xb, idx_t nq, const float* xq,
                               idx_t k, float* D, idx_t* I);

/* A fresh OPQMatrix(d, M)'s niter, niter_pq and verbose. */
int oracle_opq_defaults(int d, int M, int* niter, int* niter_pq,
                        int* verbose);

#ifdef __cplusplus
}
#endif

#endif
