/* Shared decoding for the libFuzzer targets (native/fuzz/fuzz_*.c).
 *
 * A target turns the fuzz input into arguments with the fz_* readers below, calls one ABI entry and
 * requires a status code: never a crash, a sanitizer report, a hang or a write outside the buffers it
 * passed. Reading past the end of the input yields zeros, so every input decodes to some call.
 *
 * The contract every target keeps: hostile values go only where the ABI promises to refuse them
 * (non-positive sizes, products past ISTHMUS_MAX_ELEMS, NULL pointers, bad enums, out-of-range indices,
 * a buffer size that is too small), and any size the library could accept is backed by a real buffer
 * of that size. A call that returns ISTHMUS_OK for arguments the ABI documents as invalid is a bug
 * (fz_expect_refused), and so is a failure without a message (fz_check_status). */
#ifndef ISTHMUS_FUZZ_H
#define ISTHMUS_FUZZ_H

#include "isthmus.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

static inline uint8_t fz_u8(fz_in *in) {
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}
static inline uint32_t fz_u32(fz_in *in) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fz_u8(in) << (8 * i);
    return v;
}
/* Readers are called in separate statements wherever an expression takes two: C leaves the order of
 * operands, arguments and initializers unspecified, gcc and clang differ, and the committed corpus (found
 * with clang) must decode to the same call in the gcc replay (one did not: see native/fuzz/README.md). */
static inline uint64_t fz_u64(fz_in *in) {
    uint64_t lo = fz_u32(in), hi = fz_u32(in);
    return lo | hi << 32;
}
static inline int fz_bool(fz_in *in) { return fz_u8(in) & 1; }
/* a value in [lo, hi] (uniform enough for fuzzing) */
static inline int64_t fz_range(fz_in *in, int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = (uint64_t)(hi - lo) + 1;
    uint64_t v = span <= 256 ? fz_u8(in) : span <= 65536 ? (fz_u32(in) & 0xffff) : fz_u64(in);
    return lo + (int64_t)(v % span);
}

/* Sizes the ABI must refuse, whatever they are combined with. */
static const int64_t fz_hostile_sizes[] = {0, -1, -7, INT32_MIN, INT64_MIN, INT64_MAX, (int64_t)1 << 46,
                                           (int64_t)1 << 62, INT64_MAX / 2 + 1};
/* A size: mostly in [1, max]; with probability hostile/256 one of fz_hostile_sizes (never accepted).
 * *bad is set to 1 when a hostile value was returned, so the target knows the call must fail. */
static inline int64_t fz_size(fz_in *in, int64_t max, int hostile, int *bad) {
    uint8_t sel = fz_u8(in);
    if (sel < hostile) {
        *bad = 1;
        return fz_hostile_sizes[sel % (sizeof fz_hostile_sizes / sizeof fz_hostile_sizes[0])];
    }
    return fz_range(in, 1, max);
}

/* A float: mostly ordinary values in [-4, 4], sometimes special ones (0, -0, huge, tiny, denormal,
 * NaN, +-inf), sometimes raw bits. */
static inline float fz_float(fz_in *in) {
    uint8_t sel = fz_u8(in);
    if (sel < 200) return ((float)(int16_t)fz_u32(in)) / 8192.0f;
    static const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, 3.4e38f, -3.4e38f, 1e-38f, 1e-45f, -1e-42f,
                                    NAN, INFINITY, -INFINITY, 127.0f, -127.5f, 65504.0f, 1e-8f};
    if (sel < 248) return special[sel % (sizeof special / sizeof special[0])];
    uint32_t bits = fz_u32(in);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
/* n floats: a pattern seeded from the input (so long buffers cost few input bytes), with special
 * values spliced in where the input says. */
static inline void fz_fill_f32(fz_in *in, float *x, int64_t n) {
    uint64_t s = fz_u64(in) | 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((int64_t)(s >> 40) - (1 << 23)) / (float)(1 << 21);
    }
    int splices = fz_u8(in) % 8;
    for (int i = 0; i < splices && n > 0; i++) {
        float v = fz_float(in); /* before the index: the order clang gave the corpus */
        x[fz_range(in, 0, n - 1)] = v;
    }
}
static inline void fz_fill_s8(fz_in *in, int8_t *x, int64_t n) {
    uint64_t s = fz_u64(in) | 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (int8_t)((int)((s >> 32) % 255) - 127);
    }
}

/* Allocation the target owns; abort() (a crash libFuzzer reports) if even that fails. 64-byte aligned,
 * never NULL for size 0. */
static inline void *fz_alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) abort();
    memset(p, 0xCD, bytes ? bytes : 64); /* not zeros: a kernel that reads before writing shows up */
    return p;
}

/* An output buffer with FZ_GUARD bytes of fz_alloc's 0xCD fill on each side, for checking that a call writes
 * only where it may (fz_untouched on the guards and the gaps between rows). */
#define FZ_GUARD 64
static inline void *fz_out_alloc(size_t bytes) { return (uint8_t *)fz_alloc(bytes + 2 * FZ_GUARD) + FZ_GUARD; }
static inline void fz_out_free(void *p) { free((uint8_t *)p - FZ_GUARD); }
static inline int fz_untouched(const void *p, size_t bytes) {
    const uint8_t *b = p;
    for (size_t i = 0; i < bytes; i++)
        if (b[i] != 0xCD) return 0;
    return 1;
}

/* The status protocol: a known code, and a message on failure. */
static inline void fz_check_status(isthmus_status st, const char *what) {
    if (st < ISTHMUS_OK || st > ISTHMUS_ERR_CAPACITY) {
        fprintf(stderr, "%s returned unknown status %d\n", what, st);
        abort();
    }
    if (st == ISTHMUS_ERR_INTERNAL) {
        fprintf(stderr, "%s returned ISTHMUS_ERR_INTERNAL: %s\n", what, isthmus_last_error());
        abort();
    }
    if (st != ISTHMUS_OK && isthmus_last_error()[0] == '\0') {
        fprintf(stderr, "%s failed with status %d and no message\n", what, st);
        abort();
    }
}
/* For arguments the ABI documents as invalid: the call must fail (and say why). */
static inline void fz_expect_refused(isthmus_status st, const char *what) {
    fz_check_status(st, what);
    if (st == ISTHMUS_OK) {
        fprintf(stderr, "%s accepted arguments it must refuse\n", what);
        abort();
    }
}

/* Every target keeps its sizes small, so that a run takes microseconds and the campaign reaches millions
 * of executions; one thread unless the input asks for the pool. Multi-threaded runs always use 3 threads:
 * a one-thread call runs inline and leaves the pool as it is, while changing between two pool sizes
 * re-creates the pool, which under ASan costs milliseconds of thread creation per execution. */
#define FZ_POOL_THREADS 3
static inline void fz_threads(fz_in *in) { isthmus_set_num_threads(fz_u8(in) % 4 == 0 ? FZ_POOL_THREADS : 1); }

#endif
