/* Quantization internals shared with the GEMM family (the fused f32 path). */
#ifndef ISTHMUS_QUANT_H
#define ISTHMUS_QUANT_H

#include "../core/internal.h"

#include <float.h>

/* s = amax / 127, never 0 for a non-zero amax (a tiny amax gets the smallest denormal). */
static inline float isthmus__scale_of(float amax) {
    float s = amax / 127.0f;
    if (s == 0.0f && amax > 0.0f) s = FLT_TRUE_MIN;
    return s;
}

/* The scalar rounding every variant matches: round half to even of x / scale, clamped to +-127. */
static inline int8_t isthmus__quant1(float x, float scale) {
    float v = __builtin_roundevenf(x / scale);
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
