/* oracle_autotune.h -- faiss C++ references for test_autotune.c. Every
 * function returns 0, or -1 with the message in oracle_autotune_error(). */
#ifndef FXT_ORACLE_AUTOTUNE_H
#define FXT_ORACLE_AUTOTUNE_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/AutoTune_c.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* oracle_autotune_error(void);

/* A default-constructed faiss::ParameterSpace: n_combinations() and, when
 * cno < n_combinations(), combination_name(cno) into name (cap bytes). */
int oracle_ps_fresh(size_t cno, size_t* ncomb, char* name, size_t cap);

/* faiss::ParameterSpace::initialize on index_factory(d, factory), trained
 * on xt: n_combinations() and combination_name(cno). */
int oracle_ps_initialized(const char* factory, int d, idx_t nt,
                          const float* xt, size_t cno, size_t* ncomb,
                          char* name, size_t cap);

/* White box: runs faiss::ParameterSpace::initialize(index) on the C
 * handles (the C API has no initialize; this fills the ranges so that the
 * C enumeration calls have something to enumerate). */
int oracle_ps_initialize_handle(FaissParameterSpace* ps,
                                const FaissIndex* index);

/* White box: the efSearch of an IndexHNSW behind a C handle. */
int oracle_hnsw_efsearch(const FaissIndex* index, int* ef);

#ifdef __cplusplus
}
#endif

#endif
