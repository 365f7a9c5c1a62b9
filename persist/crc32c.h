/* crc32c.h -- internal: CRC-32C (Castagnoli), the checksum of every store
 * file (snapshots, log records, manifests). Not API. */
#ifndef FX_CRC32C_H
#define FX_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Extends `crc` (0 to start) over n bytes; crc32c("123456789") = 0xE3069283. */
uint32_t fx_crc32c(uint32_t crc, const void* data, size_t n);

/* The same, table-driven on every CPU (fx_crc32c uses the crc32
 * instruction where there is one); for tests. */
uint32_t fx_crc32c_portable(uint32_t crc, const void* data, size_t n);

#ifdef __cplusplus
}
#endif

#endif
