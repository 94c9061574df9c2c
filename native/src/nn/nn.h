/* Transformer-block row kernels (RMSNorm, SwiGLU): the kernel interface shared by nn.c and the ISA variants. */
#ifndef ISTHMUS_NN_H
#define ISTHMUS_NN_H

#include "../core/internal.h"

#include <math.h>

/* 1 / sqrt(ss / n + eps) from the f32 sum of squares ss, the same scalar steps in every variant. */
static inline float isthmus__rms_inv(float ss, int64_t n, float eps) { return 1.0f / sqrtf(ss / (float)n + eps); }

/* silu(g) * u, for the scalar reference and the SIMD tails: sigmoid(g) from e = exp(-|g|) in (0, 1], so no
 * step overflows (g >= 0: 1 / (1 + e); g < 0: e / (1 + e)). */
static inline float isthmus__swiglu1(float g, float u) {
    float e = expf(-fabsf(g));
    float sig = g >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
    return g * sig * u;
}

#endif
