/* Minimal C test harness: seeded RNG, guarded buffers, checks that print the seed on failure. */
#ifndef ISTHMUS_TEST_HARNESS_H
#define ISTHMUS_TEST_HARNESS_H

#include "isthmus.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern uint64_t t_seed;    /* the seed of the current case, printed on failure */
extern long t_checks, t_failures;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        t_checks++;                                                                           \
        if (!(cond)) {                                                                        \
            t_failures++;                                                                     \
            if (t_failures <= 50) {                                                           \
                fprintf(stderr, "FAIL %s:%d (seed %llu, isa %s): ", __FILE__, __LINE__,       \
                        (unsigned long long)t_seed, isthmus_isa_name(isthmus_isa()));         \
                fprintf(stderr, __VA_ARGS__);                                                 \
                fprintf(stderr, "\n");                                                        \
            }                                                                                 \
        }                                                                                     \
    } while (0)

#define CHECK_OK(expr)                                                                        \
    do {                                                                                      \
        isthmus_status st_ = (expr);                                                          \
        CHECK(st_ == ISTHMUS_OK, "%s returned %d: %s", #expr, st_, isthmus_last_error());     \
    } while (0)

/* expr must fail with `status` and leave a non-empty message. */
#define CHECK_FAILS(expr, status)                                                             \
    do {                                                                                      \
        isthmus_status st_ = (expr);                                                          \
        CHECK(st_ == (status) && isthmus_last_error()[0] != '\0',                             \
              "%s returned %d (want %d), message '%s'", #expr, st_, (status),                 \
              isthmus_last_error());                                                          \
    } while (0)

/* splitmix64 */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }
static inline float rng_f32(uint64_t *s, float lo, float hi) { return lo + (hi - lo) * (float)rng_unit(s); }
static inline int8_t rng_s8(uint64_t *s) { return (int8_t)((int)(rng_next(s) % 255) - 127); }
static inline int64_t rng_int(uint64_t *s, int64_t lo, int64_t hi) { return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo + 1)); }

/* Buffers with 64 guard bytes behind them, 64-byte aligned; check_guard() fails on any write past. */
#define GUARD 64
#define GUARD_BYTE 0xA5
void *galloc(size_t bytes);
int gcheck(const void *p); /* 1 when the guard is intact */
void gfree(void *p);

typedef struct test_case { const char *group; const char *name; void (*fn)(void); } test_case;

#endif
