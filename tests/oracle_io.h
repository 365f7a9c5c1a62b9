/* oracle_io.h -- faiss C++ writers for test_io.c. Return 0, or -1 with the
 * message in oracle_io_error(). */
#ifndef FXT_ORACLE_IO_H
#define FXT_ORACLE_IO_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* oracle_io_error(void);

/* faiss::index_factory(d, factory, metric), trained on xt (nt may be 0),
 * filled with xb (add_with_ids when xids != NULL), written with
 * faiss::write_index(index, path). */
int oracle_io_write(const char* factory, int d, int metric, idx_t nt,
                    const float* xt, idx_t nb, const float* xb,
                    const idx_t* xids, const char* path);

/* faiss::index_binary_factory(d, desc), trained on xt (nt may be 0),
 * filled with xb, written with faiss::write_index_binary(index, path). */
int oracle_io_write_binary(const char* desc, int d, idx_t nt,
                           const uint8_t* xt, idx_t nb, const uint8_t* xb,
                           const char* path);

/* The file read back by faiss::read_index(path, io_flags) (C++ flag
 * values), searched. */
int oracle_io_read_search(const char* path, int cpp_io_flags, idx_t nq,
                          const float* xq, idx_t k, float* D, idx_t* I);

/* faiss C++'s own flag values. */
int oracle_io_flag_mmap(void);
int oracle_io_flag_read_only(void);

#ifdef __cplusplus
}
#endif

#endif
