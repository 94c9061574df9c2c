/* Timing and input helpers shared by the native harnesses (isthmus_bench, isthmus_bench_attention,
 * isthmus_bench_sparse, isthmus_bench_speculative). */
#ifndef ISTHMUS_BENCH_TIME_H
#define ISTHMUS_BENCH_TIME_H

#include <stdint.h>
#include <time.h>

/* Monotonic seconds. */
static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* qsort comparator for doubles (medians). */
static inline int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* splitmix64: the harnesses' seeded input generator (one stream per process). */
static uint64_t bench_rs = 0x9e3779b97f4a7c15ull;
static inline uint64_t rnd(void) {
    uint64_t z = (bench_rs += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* Uniform in [0, 1) with 53 bits. */
static inline double unit(void) { return (double)(rnd() >> 11) * 0x1.0p-53; }

#endif
