/* sample_f32__avx2: the sampling primitives on two 8-lane registers per 16 elements (lanes 0-7 and
 * 8-15 of the reference's 16 accumulators), the very operations of the reference (spec.h) lane by lane,
 * so results are bit-identical. */
#include "spec.h"

#include <immintrin.h>

/* spec_exp on 8 lanes, before its z >= SPEC_EXP_MIN mask (the caller applies it with its others) */
static inline __m256 exp8_raw(__m256 z) {
    __m256 kfb = _mm256_fmadd_ps(z, _mm256_set1_ps(SPEC_LOG2E), _mm256_set1_ps(SPEC_SHIFTER));
    __m256 kf = _mm256_sub_ps(kfb, _mm256_set1_ps(SPEC_SHIFTER));
    __m256 r = _mm256_fmadd_ps(kf, _mm256_set1_ps(-SPEC_LN2_HI), z);
    r = _mm256_fmadd_ps(kf, _mm256_set1_ps(-SPEC_LN2_LO), r);
    __m256 p = _mm256_set1_ps(SPEC_C5);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SPEC_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SPEC_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SPEC_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SPEC_C1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SPEC_C0));
    __m256 r2 = _mm256_mul_ps(r, r);
    __m256 y = _mm256_fmadd_ps(p, r2, r);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    __m256i sb = _mm256_add_epi32(_mm256_castps_si256(kfb), _mm256_set1_epi32((int32_t)(127u - SPEC_SHIFTER_BITS)));
    return _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(sb, 23)));
}

/* The reference's lane tree over lanes 0-7 (a) and 8-15 (b). */
static inline float tree16(__m256 a, __m256 b) {
    __m256 t = _mm256_add_ps(a, b);
    __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    u = _mm_add_ps(u, _mm_movehl_ps(u, u));
    u = _mm_add_ss(u, _mm_shuffle_ps(u, u, 1));
    return _mm_cvtss_f32(u);
}

static float max_avx2(const float *x, int64_t n, int *flags) {
    const __m256 inf = _mm256_set1_ps(INFINITY), zero = _mm256_setzero_ps();
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, bad = zero, neg = zero;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(a, inf, _CMP_NLT_UQ), _mm256_cmp_ps(b, inf, _CMP_NLT_UQ)));
        neg = _mm256_or_ps(neg, _mm256_or_ps(_mm256_cmp_ps(a, zero, _CMP_LT_OQ), _mm256_cmp_ps(b, zero, _CMP_LT_OQ)));
        m0 = _mm256_max_ps(m0, a);
        m1 = _mm256_max_ps(m1, b);
    }
    float l[8];
    _mm256_storeu_ps(l, _mm256_max_ps(m0, m1));
    float r = -INFINITY;
    for (int j = 0; j < 8; j++) r = r > l[j] ? r : l[j];
    int f = (_mm256_movemask_ps(bad) ? 1 : 0) | (_mm256_movemask_ps(neg) ? 2 : 0);
    for (; i < n; i++) {
        float v = x[i];
        if (!(v < INFINITY)) f |= 1;
        if (v < 0.0f) f |= 2;
        r = r > v ? r : v;
    }
    *flags |= f;
    return r;
}

static int64_t find_ge_avx2(const float *x, int64_t n, float t) {
    const __m256 vt = _mm256_set1_ps(t);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        unsigned k = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vt, _CMP_GE_OQ)) |
                     (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i + 8), vt, _CMP_GE_OQ)) << 8;
        if (k) return i + __builtin_ctz(k);
    }
    for (; i < n; i++)
        if (x[i] >= t) return i;
    return n;
}

static int64_t collect_ge_avx2(const float *x, int64_t n, float t, int32_t *idx, int64_t cap) {
    const __m256 vt = _mm256_set1_ps(t);
    int64_t c = 0, i = 0;
    if (cap == 0) { /* count only: branch-free */
        __m256i acc = _mm256_setzero_si256();
        for (; i + 8 <= n; i += 8) /* compare masks are -1 where true */
            acc = _mm256_sub_epi32(acc, _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vt, _CMP_GE_OQ)));
        int32_t l[8];
        _mm256_storeu_si256((__m256i *)l, acc);
        for (int j = 0; j < 8; j++) c += l[j];
    }
    for (; cap > 0 && i + 16 <= n; i += 16) {
        unsigned k = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vt, _CMP_GE_OQ)) |
                     (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i + 8), vt, _CMP_GE_OQ)) << 8;
        if (!k) continue;
        int pc = __builtin_popcount(k);
        if (c + pc <= cap) {
            for (int64_t j = c; k; k &= k - 1) idx[j++] = (int32_t)(i + __builtin_ctz(k));
        } else {
            for (int64_t j = c; k && j < cap; k &= k - 1) idx[j++] = (int32_t)(i + __builtin_ctz(k));
        }
        c += pc;
    }
    for (; i < n; i++)
        if (x[i] >= t) {
            if (c < cap) idx[c] = (int32_t)i;
            c++;
        }
    return c;
}

/* 16 elements as two registers; a tail of len < 16 is zero-padded. */
typedef struct v16 { __m256 a, b; } v16;
static inline v16 load16(const float *x, int64_t len) {
    if (len == 16) return (v16){_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8)};
    float t[16] = {0};
    memcpy(t, x, (size_t)len * 4);
    return (v16){_mm256_loadu_ps(t), _mm256_loadu_ps(t + 8)};
}
static inline void store16(float *x, v16 v, int64_t len) {
    if (len == 16) {
        _mm256_storeu_ps(x, v.a);
        _mm256_storeu_ps(x + 8, v.b);
        return;
    }
    float t[16];
    _mm256_storeu_ps(t, v.a);
    _mm256_storeu_ps(t + 8, v.b);
    memcpy(x, t, (size_t)len * 4);
}
/* all-ones in lanes [0, len) of 16 */
static inline v16 valid16(int64_t len) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i l = _mm256_set1_epi32((int32_t)len);
    return (v16){_mm256_castsi256_ps(_mm256_cmpgt_epi32(l, iota)),
                 _mm256_castsi256_ps(_mm256_cmpgt_epi32(l, _mm256_add_epi32(iota, _mm256_set1_epi32(8))))};
}

/* spec_weight on 8 lanes; use_x / use_e: whether xmin / emin can remove anything (compile-time) */
static inline __attribute__((always_inline)) __m256 weight8(__m256 v, __m256 vm, __m256 vit, __m256 vxmin,
                                                            __m256 vemin, int use_x, int use_e) {
    __m256 z = _mm256_mul_ps(_mm256_sub_ps(v, vm), vit);
    __m256 e = exp8_raw(z);
    __m256 keep = _mm256_cmp_ps(z, _mm256_set1_ps(SPEC_EXP_MIN), _CMP_GE_OQ);
    if (use_x) keep = _mm256_and_ps(keep, _mm256_cmp_ps(v, vxmin, _CMP_GE_OQ));
    if (use_e) keep = _mm256_and_ps(keep, _mm256_cmp_ps(e, vemin, _CMP_GE_OQ));
    return _mm256_and_ps(keep, e);
}

static inline __attribute__((always_inline)) void softmax_body(const float *x, int64_t n, float m, float inv_t,
                                                               float xmin, float emin, float *out, float *sums,
                                                               int use_x, int use_e) {
    const __m256 vm = _mm256_set1_ps(m), vit = _mm256_set1_ps(inv_t), vxmin = _mm256_set1_ps(xmin),
                 vemin = _mm256_set1_ps(emin);
    for (int64_t c0 = 0, ci = 0; c0 < n; c0 += SPEC_CHUNK, ci++) {
        int64_t end = n - c0 < SPEC_CHUNK ? n : c0 + SPEC_CHUNK, i = c0;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
        for (; i + 16 <= end; i += 16) {
            __m256 e0 = weight8(_mm256_loadu_ps(x + i), vm, vit, vxmin, vemin, use_x, use_e);
            __m256 e1 = weight8(_mm256_loadu_ps(x + i + 8), vm, vit, vxmin, vemin, use_x, use_e);
            if (out) {
                _mm256_storeu_ps(out + i, e0);
                _mm256_storeu_ps(out + i + 8, e1);
            }
            acc0 = _mm256_add_ps(acc0, e0);
            acc1 = _mm256_add_ps(acc1, e1);
        }
        if (i < end) {
            int64_t len = end - i;
            v16 v = load16(x + i, len), ok = valid16(len);
            v16 e = {_mm256_and_ps(ok.a, weight8(v.a, vm, vit, vxmin, vemin, use_x, use_e)),
                     _mm256_and_ps(ok.b, weight8(v.b, vm, vit, vxmin, vemin, use_x, use_e))};
            if (out) store16(out + i, e, len);
            acc0 = _mm256_add_ps(acc0, e.a);
            acc1 = _mm256_add_ps(acc1, e.b);
        }
        sums[ci] = tree16(acc0, acc1);
    }
}

static void softmax_chunks_avx2(const float *x, int64_t n, float m, float inv_t, float xmin, float emin,
                                float *out, float *sums) {
    int use_x = xmin > -INFINITY, use_e = emin > 0.0f;
    if (!use_x && !use_e) softmax_body(x, n, m, inv_t, xmin, emin, out, sums, 0, 0);
    else if (!use_e) softmax_body(x, n, m, inv_t, xmin, emin, out, sums, 1, 0);
    else softmax_body(x, n, m, inv_t, xmin, emin, out, sums, 1, 1);
}

static int sum_chunks_avx2(const float *v, int64_t n, float vmin, float *out, float *sums) {
    const __m256 zero = _mm256_setzero_ps(), inf = _mm256_set1_ps(INFINITY), vvmin = _mm256_set1_ps(vmin);
    __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    for (int64_t c0 = 0, ci = 0; c0 < n; c0 += SPEC_CHUNK, ci++) {
        int64_t end = n - c0 < SPEC_CHUNK ? n : c0 + SPEC_CHUNK, i = c0;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
        for (; i < end; i += 16) {
            int64_t len = end - i < 16 ? end - i : 16;
            v16 a = load16(v + i, len);
            ok = _mm256_and_ps(ok, _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(a.a, zero, _CMP_GE_OQ),
                                                               _mm256_cmp_ps(a.a, inf, _CMP_LT_OQ)),
                                                 _mm256_and_ps(_mm256_cmp_ps(a.b, zero, _CMP_GE_OQ),
                                                               _mm256_cmp_ps(a.b, inf, _CMP_LT_OQ))));
            v16 e = {_mm256_and_ps(_mm256_cmp_ps(a.a, vvmin, _CMP_GE_OQ), a.a),
                     _mm256_and_ps(_mm256_cmp_ps(a.b, vvmin, _CMP_GE_OQ), a.b)};
            if (out) store16(out + i, e, len);
            acc0 = _mm256_add_ps(acc0, e.a);
            acc1 = _mm256_add_ps(acc1, e.b);
        }
        sums[ci] = tree16(acc0, acc1);
    }
    return _mm256_movemask_ps(ok) != 0xFF;
}

static void residual_chunks_avx2(const float *p, float a, const float *q, float b, int64_t n, float *out,
                                 float *sums) {
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), zero = _mm256_setzero_ps();
    for (int64_t c0 = 0, ci = 0; c0 < n; c0 += SPEC_CHUNK, ci++) {
        int64_t end = n - c0 < SPEC_CHUNK ? n : c0 + SPEC_CHUNK, i = c0;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
        for (; i < end; i += 16) {
            int64_t len = end - i < 16 ? end - i : 16;
            v16 vp = load16(p + i, len), vq = load16(q + i, len);
            v16 e = {_mm256_max_ps(_mm256_sub_ps(_mm256_mul_ps(vp.a, va), _mm256_mul_ps(vq.a, vb)), zero),
                     _mm256_max_ps(_mm256_sub_ps(_mm256_mul_ps(vp.b, va), _mm256_mul_ps(vq.b, vb)), zero)};
            store16(out + i, e, len);
            acc0 = _mm256_add_ps(acc0, e.a);
            acc1 = _mm256_add_ps(acc1, e.b);
        }
        sums[ci] = tree16(acc0, acc1);
    }
}

static void scale_avx2(float *x, int64_t n, float s) {
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    for (; i < n; i++) x[i] *= s;
}

const SAMPLE_kernel sample_f32__avx2 = {
    .max = max_avx2,
    .find_ge = find_ge_avx2,
    .collect_ge = collect_ge_avx2,
    .softmax_chunks = softmax_chunks_avx2,
    .sum_chunks = sum_chunks_avx2,
    .residual_chunks = residual_chunks_avx2,
    .scale = scale_avx2,
};
