/* Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC 2011),
 * the counter-based generator of isthmus_philox_uniform: key = (lo32(seed), hi32(seed)), counter =
 * (lo32(stream), hi32(stream), draw, 0); the uniform is the 53 bits x0 . x1[31:11] times 2^-53. */
#ifndef ISTHMUS_PHILOX_H
#define ISTHMUS_PHILOX_H

#include <stdint.h>

static inline void isthmus__philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* The d-th uniform in [0, 1) of stream `stream` under `seed`. */
static inline double isthmus__philox_uniform(uint64_t seed, uint64_t stream, uint32_t draw) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)stream, (uint32_t)(stream >> 32), draw, 0};
    uint32_t x[4];
    isthmus__philox4x32_10(ctr, key, x);
    uint64_t bits = ((uint64_t)x[0] << 21) ^ (x[1] >> 11);
    return (double)bits * 0x1.0p-53;
}

#endif
