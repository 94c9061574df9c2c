/* quantize_f32_s8__ref: the scalar reference of the quantization primitives. */
#include "quant.h"

#include <math.h>

static float amax_ref(const float *x, int64_t n) {
    float m = 0.0f;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= FLT_MAX)) bad = 1; /* NaN or inf */
        else if (a > m) m = a;
    }
    return bad ? NAN : m;
}

static void quant_ref(const float *x, int64_t n, float scale, int8_t *q) {
    for (int64_t i = 0; i < n; i++) q[i] = isthmus__quant1(x[i], scale);
}

static void dequant_ref(const int8_t *q, int64_t n, float scale, float *x) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)q[i] * scale;
}

const QUANTIZE_S8_kernel quantize_f32_s8__ref = {amax_ref, quant_ref, dequant_ref};
