/* ivf_stats.c -- the external definition of faiss_IndexIVFStats_init.
 *
 * IndexIVF_c.h defines it `inline` only; a C99 inline definition emits no
 * symbol, so a C program built at -O0 fails to link against upstream's
 * library. Redeclaring it `extern` here makes this translation unit provide
 * the one external definition (C11 6.7.4p7). */
#include <faiss/c_api/IndexIVF_c.h>

extern inline void faiss_IndexIVFStats_init(FaissIndexIVFStats* stats);
