/* oracle_lsh.h -- faiss C++ references for test_lsh.c. See oracle_ix.h. */
#ifndef FXT_ORACLE_LSH_H
#define FXT_ORACLE_LSH_H

#include "oracle_ix.h"

#ifdef __cplusplus
extern "C" {
#endif

/* new IndexLSH(d, nbits, rotate_data, train_thresholds) */
OIx* oix_lsh(int d, int nbits, int rotate_data, int train_thresholds);

/* White box: the thresholds of a C handle to an IndexLSH and of an oracle
 * one (*n receives the count; at most cap are copied). */
int oracle_lsh_thresholds(const FaissIndex* c_index, float* out, size_t cap,
                          size_t* n);
int oix_lsh_thresholds(const OIx* o, float* out, size_t cap, size_t* n);

#ifdef __cplusplus
}
#endif

#endif
