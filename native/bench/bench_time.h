/* Timing helpers shared by the native harnesses (isthmus_bench, isthmus_bench_attention, isthmus_bench_sparse). */
#ifndef ISTHMUS_BENCH_TIME_H
#define ISTHMUS_BENCH_TIME_H

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

#endif
