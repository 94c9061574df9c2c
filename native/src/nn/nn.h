/* Transformer-block row kernels (RMSNorm, SwiGLU): the kernel interface shared by nn.c and the ISA variants. */
#ifndef ISTHMUS_NN_H
#define ISTHMUS_NN_H

#include "../core/internal.h"

#include <float.h>
#include <math.h>

/* 1 / sqrt(ss / n + eps) from the f32 sum of squares ss, the same scalar steps in every variant. */
/* A sum of squares that is not finite (a NaN or inf in the row, or squares that overflow f32) gives NaN, so
 * the whole row is NaN: 1 / sqrt(inf) = 0 made the finite elements of such a row 0, silently. */
static inline float isthmus__rms_inv(float ss, int64_t n, float eps) {
    if (!(ss <= FLT_MAX)) return NAN;
    return 1.0f / sqrtf(ss / (float)n + eps);
}

/* silu(g) * u, for the scalar reference and the SIMD tails: sigmoid(g) from e = exp(-|g|) in (0, 1], so no
 * step overflows (g >= 0: 1 / (1 + e); g < 0: e / (1 + e)). */
static inline float isthmus__swiglu1(float g, float u) {
    /* exp is 0 below -87.33654 as in the SIMD exp (core/exp_avx2.h), so that silu(g) * +-inf is the same
     * class (NaN, not +-inf) in every variant and in the SIMD tails; NaN still gives NaN */
    float ng = -fabsf(g), e = ng < -87.33654f ? 0.0f : expf(ng);
    float sig = g >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
    return g * sig * u;
}

#endif
