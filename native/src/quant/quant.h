/* Quantization internals shared with the GEMM family (the fused f32 path). */
#ifndef ISTHMUS_QUANT_H
#define ISTHMUS_QUANT_H

#include "../core/internal.h"

#include <float.h>

/* s = amax / 127, never 0 for a non-zero amax (a tiny amax gets the smallest denormal), and never so
 * large that 127 * s overflows: for amax near FLT_MAX the quotient can round up, and dequantizing
 * -127 would give -inf (found by fuzz_quant; the case is in test_quant's quant.extremes). */
static inline float isthmus__scale_of(float amax) {
    float s = amax / 127.0f;
    if (s == 0.0f && amax > 0.0f) s = FLT_TRUE_MIN;
    if (s * 127.0f > FLT_MAX) s = __builtin_nextafterf(s, 0.0f);
    return s;
}

/* Denormals: x / s with denormal operands is slow (3.2x per element on Zen 4 for AVX-512 division), and an
 * all-denormal row was 2.35x slower to quantize than a normal one (bench/results/2026-11-29-amd-epyc-
 * denormals.md). Where scale < ISTHMUS_QUANT_TINY (so every |x| <= 127.5 * scale < 2^-60), the SIMD
 * kernels divide x * 2^64 by scale * 2^64 instead: both are exact normal floats formed with integer
 * operations only (a denormal's mantissa converted as an integer, times 2^-85; a normal's exponent + 64),
 * their quotient is the same real number, so q is bit-identical to round(x / scale). */
#define ISTHMUS_QUANT_TINY 0x1p-67f

/* Round half to even, independent of the rounding mode (clang 14 lacks __builtin_roundevenf). */
static inline float isthmus__roundevenf(float v) {
#if defined(__clang__) && __clang_major__ < 15
    float t = __builtin_truncf(v), d = __builtin_fabsf(v - t);
    if (d > 0.5f || (d == 0.5f && __builtin_fmodf(t, 2.0f) != 0.0f)) t += __builtin_copysignf(1.0f, v);
    return t;
#else
    return __builtin_roundevenf(v);
#endif
}

/* The scalar rounding every variant matches: round half to even of x / scale, clamped to +-127. */
static inline int8_t isthmus__quant1(float x, float scale) {
    float v = isthmus__roundevenf(x / scale);
    v = v > 127.0f ? 127.0f : v;
    v = v < -127.0f ? -127.0f : v;
    return (int8_t)v;
}

/*
 * Quantizes rows [r0, r1) of X[rows, cols] per row (group == 0) or per group of `group` columns,
 * writing q rows with stride ldq and scales [rows, ngroups] (ngroups = 1 for per row).
 * On a non-finite input returns ISTHMUS_ERR_INVALID_ARGUMENT naming (row, column).
 */
isthmus_status isthmus__quantize_rows(const QUANTIZE_S8_kernel *kern, const float *x, int64_t ldx,
                                      int64_t r0, int64_t r1, int64_t cols, int64_t group,
                                      int8_t *q, int64_t ldq, float *scales);

#endif
