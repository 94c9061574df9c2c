/* sample_f32__ref: the scalar reference of the sampling primitives (kernel type in core/internal.h).
 * Sums emulate the 16 lane accumulators of the vector variants with an array (spec.h). */
#include "spec.h"

static float max_ref(const float *x, int64_t n, int *flags) {
    float m = -INFINITY;
    int f = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        if (!(v < INFINITY)) f |= 1;
        if (v < 0.0f) f |= 2;
        m = m > v ? m : v;
    }
    *flags |= f;
    return m;
}

static int64_t find_ge_ref(const float *x, int64_t n, float t) {
    for (int64_t i = 0; i < n; i++)
        if (x[i] >= t) return i;
    return n;
}

static int64_t collect_ge_ref(const float *x, int64_t n, float t, int32_t *idx, int64_t cap) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        if (x[i] >= t) {
            if (c < cap) idx[c] = (int32_t)i;
            c++;
        }
    return c;
}

static void softmax_chunks_ref(const float *x, int64_t n, float m, float inv_t, float xmin, float emin,
                               float *out, float *sums) {
    for (int64_t c0 = 0, ci = 0; c0 < n; c0 += SPEC_CHUNK, ci++) {
        int64_t len = n - c0 < SPEC_CHUNK ? n - c0 : SPEC_CHUNK;
        float acc[SPEC_LANES] = {0};
        for (int64_t i = 0; i < len; i++) {
            float e = spec_weight(x[c0 + i], m, inv_t, xmin, emin);
            if (out) out[c0 + i] = e;
            acc[i % SPEC_LANES] += e;
        }
        sums[ci] = spec_lane_tree(acc);
    }
}

static int sum_chunks_ref(const float *v, int64_t n, float vmin, float *out, float *sums) {
    int bad = 0;
    for (int64_t c0 = 0, ci = 0; c0 < n; c0 += SPEC_CHUNK, ci++) {
        int64_t len = n - c0 < SPEC_CHUNK ? n - c0 : SPEC_CHUNK;
        float acc[SPEC_LANES] = {0};
        for (int64_t i = 0; i < len; i++) {
            float a = v[c0 + i];
            if (!(a >= 0.0f && a < INFINITY)) bad = 1;
            float e = a >= vmin ? a : 0.0f;
            if (out) out[c0 + i] = e;
            acc[i % SPEC_LANES] += e;
        }
        sums[ci] = spec_lane_tree(acc);
    }
    return bad;
}

static void residual_chunks_ref(const float *p, float a, const float *q, float b, int64_t n, float *out,
                                float *sums) {
    for (int64_t c0 = 0, ci = 0; c0 < n; c0 += SPEC_CHUNK, ci++) {
        int64_t len = n - c0 < SPEC_CHUNK ? n - c0 : SPEC_CHUNK;
        float acc[SPEC_LANES] = {0};
        for (int64_t i = 0; i < len; i++) {
            float d = p[c0 + i] * a - q[c0 + i] * b;
            float e = d > 0.0f ? d : 0.0f;
            out[c0 + i] = e;
            acc[i % SPEC_LANES] += e;
        }
        sums[ci] = spec_lane_tree(acc);
    }
}

static void scale_ref(float *x, int64_t n, float s) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

const SAMPLE_kernel sample_f32__ref = {
    .max = max_ref,
    .find_ge = find_ge_ref,
    .collect_ge = collect_ge_ref,
    .softmax_chunks = softmax_chunks_ref,
    .sum_chunks = sum_chunks_ref,
    .residual_chunks = residual_chunks_ref,
    .scale = scale_ref,
};
