/* oracle_sq.h -- faiss C++ references for test_sq.c (IndexScalarQuantizer,
 * IndexIVFScalarQuantizer). See oracle_ix.h for the generic handle. */
#ifndef FXT_ORACLE_SQ_H
#define FXT_ORACLE_SQ_H

#include "oracle_ix.h"

#ifdef __cplusplus
extern "C" {
#endif

/* new IndexScalarQuantizer(d, qt, metric) */
OIx* oix_sq(int d, int qt, int metric);

/* new IndexIVFScalarQuantizer(new IndexFlatL2/IP(d), d, nlist, qt, metric,
 * by_residual), owning its quantizer. When centroids != NULL the quantizer
 * is first filled with those nlist vectors (then no k-means is needed). */
OIx* oix_ivfsq(int d, int metric, size_t nlist, int qt, int by_residual,
               const float* centroids);

int oix_train_residual(OIx* o, idx_t n, const float* x);

/* The scalar quantizer's trained parameters (sq.trained) of an oracle
 * index, or -- white box -- of a C handle to an IndexScalarQuantizer or
 * IndexIVFScalarQuantizer. *n receives the count; at most cap are copied. */
int oix_sq_trained(const OIx* o, float* out, size_t cap, size_t* n);
int oracle_sq_trained(const FaissIndex* c_index, float* out, size_t cap,
                      size_t* n);

/* White box: the quantizer type, code size and (IVF only, else -1)
 * by_residual flag of a C handle. */
int oracle_sq_fields(const FaissIndex* c_index, int* qt, size_t* code_size,
                     int* by_residual);

#ifdef __cplusplus
}
#endif

#endif
