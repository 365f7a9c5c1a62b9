/* store_vec.h -- the vector the crash test stores under each id (shared
 * by store_helper.c, which writes it, and test_store.c, which finds it). */
#ifndef FXT_STORE_VEC_H
#define FXT_STORE_VEC_H

#include <stdint.h>

#define STORE_D 8
#define STORE_PER_THREAD 4000
#define STORE_ROUND_IDS (4 * STORE_PER_THREAD)

/* Component 0 is the id itself (exact in float below 2^24), so vectors
 * of distinct ids differ. */
static inline void store_vec(long long id, float* v) {
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    v[0] = (float)id;
    for (int j = 1; j < STORE_D; j++) {
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9ull;
        v[j] = (float)(h >> 44) / 1024.0f;
    }
}

/* The binary code stored under an id (STORE_BD bits): the id's bytes,
 * then a hash of it, so codes of distinct ids differ. */
#define STORE_BD 128
static inline void store_code(long long id, uint8_t* c) {
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    h ^= h >> 31;
    for (int j = 0; j < 8; j++) {
        c[j] = (uint8_t)((uint64_t)id >> (8 * j));
        c[8 + j] = (uint8_t)(h >> (8 * j));
    }
}

#endif
