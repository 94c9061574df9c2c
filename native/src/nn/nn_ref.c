/* rmsnorm_f32__ref, swiglu_f32__ref: the scalar references, one row at a time. */
#include "nn.h"

/* x[n] (+= r[n] when r != NULL, written back), then y = x * inv_rms * w. Eight partial f32 sums. */
static void rmsnorm_row_ref(float *x, const float *r, const float *w, float eps, float *y, int64_t n) {
    float acc[8] = {0};
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        if (r) {
            v += r[i];
            x[i] = v;
        }
        acc[i & 7] += v * v;
    }
    float ss = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    float inv = isthmus__rms_inv(ss, n, eps);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * inv * w[i];
}

static void swiglu_row_ref(const float *g, const float *u, float *o, int64_t n) {
    for (int64_t i = 0; i < n; i++) o[i] = isthmus__swiglu1(g[i], u[i]);
}

const RMSNORM_kernel rmsnorm_f32__ref = {ISTHMUS_ISA_REF, rmsnorm_row_ref};
const SWIGLU_kernel swiglu_f32__ref = {ISTHMUS_ISA_REF, swiglu_row_ref};
