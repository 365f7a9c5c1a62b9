/* crc32c.c -- table-driven CRC-32C, eight bytes per step ("slicing by 8"):
 * table[k][b] is the CRC of byte b followed by k zero bytes, so eight
 * lookups advance the register by a 64-bit word. Tables are built once.
 * On x86-64 CPUs with SSE4.2 the crc32 instruction (the same polynomial)
 * does it instead, several times faster: recovery checksums every byte of
 * a snapshot or log before faiss reads it (docs/benchmarks.md). */
#include "persist/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u /* Castagnoli, bit-reflected */

static uint32_t g_tab[8][256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_hw; /* the CPU has the crc32 instruction */

#if defined(__x86_64__) && defined(__GNUC__)
#define FX_CRC_HW 1
/* c is the register (already inverted). */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c,
                                                         const uint8_t* p,
                                                         size_t n) {
    while (n > 0 && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi(c, *p++);
        n--;
    }
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = __builtin_ia32_crc32di(c64, w);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n-- > 0) c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

static void build(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int i = 0; i < 8; i++) c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
        g_tab[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            g_tab[k][b] = (g_tab[k - 1][b] >> 8) ^ g_tab[0][g_tab[k - 1][b] & 0xFF];
#ifdef FX_CRC_HW
    __builtin_cpu_init();
    g_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t fx_crc32c(uint32_t crc, const void* data, size_t n) {
#ifdef FX_CRC_HW
    pthread_once(&g_once, build);
    if (g_hw) return ~crc_hw(~crc, data, n);
#endif
    return fx_crc32c_portable(crc, data, n);
}

uint32_t fx_crc32c_portable(uint32_t crc, const void* data, size_t n) {
    pthread_once(&g_once, build);
    const uint8_t* p = data;
    uint32_t c = ~crc;
    while (n > 0 && ((uintptr_t)p & 7)) {
        c = (c >> 8) ^ g_tab[0][(c ^ *p++) & 0xFF];
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        w ^= c;
        c = g_tab[7][w & 0xFF] ^ g_tab[6][(w >> 8) & 0xFF] ^
            g_tab[5][(w >> 16) & 0xFF] ^ g_tab[4][(w >> 24) & 0xFF] ^
            g_tab[3][(w >> 32) & 0xFF] ^ g_tab[2][(w >> 40) & 0xFF] ^
            g_tab[1][(w >> 48) & 0xFF] ^ g_tab[0][(w >> 56) & 0xFF];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) c = (c >> 8) ^ g_tab[0][(c ^ *p++) & 0xFF];
    return ~c;
}
