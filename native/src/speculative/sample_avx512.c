/* sample_f32__avx512: the sampling primitives with one 16-lane register per 16 elements, the very
 * operations of the reference (spec.h) lane by lane, so results are bit-identical. Compiled natively for
 * the shipped library and against SIMDe for the emulated test build. */
#include "spec.h"
#include "../core/simd.h"

/* spec_exp on 16 lanes, before its z >= SPEC_EXP_MIN mask (the caller applies it with its others) */
static inline __m512 exp16_raw(__m512 z) {
    __m512 kfb = _mm512_fmadd_ps(z, _mm512_set1_ps(SPEC_LOG2E), _mm512_set1_ps(SPEC_SHIFTER));
    __m512 kf = _mm512_sub_ps(kfb, _mm512_set1_ps(SPEC_SHIFTER));
    __m512 r = _mm512_fmadd_ps(kf, _mm512_set1_ps(-SPEC_LN2_HI), z);
    r = _mm512_fmadd_ps(kf, _mm512_set1_ps(-SPEC_LN2_LO), r);
    __m512 p = _mm512_set1_ps(SPEC_C5);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SPEC_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SPEC_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SPEC_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SPEC_C1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SPEC_C0));
    __m512 r2 = _mm512_mul_ps(r, r);
    __m512 y = _mm512_fmadd_ps(p, r2, r);
    y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
    __m512i sb = _mm512_add_epi32(_mm512_castps_si512(kfb), _mm512_set1_epi32((int32_t)(127u - SPEC_SHIFTER_BITS)));
    return _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(sb, 23)));
}

static float max_avx512(const float *x, int64_t n, int *flags) {
    const __m512 inf = _mm512_set1_ps(INFINITY), zero = _mm512_setzero_ps();
    __m512 m = _mm512_set1_ps(-INFINITY);
    __mmask16 bad = 0, neg = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        bad |= _mm512_cmp_ps_mask(v, inf, _CMP_NLT_UQ);
        neg |= _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ);
        m = _mm512_max_ps(m, v);
    }
    float r = isthmus_mm512_hmax_ps(m);
    int f = (bad ? 1 : 0) | (neg ? 2 : 0);
    for (; i < n; i++) {
        float v = x[i];
        if (!(v < INFINITY)) f |= 1;
        if (v < 0.0f) f |= 2;
        r = r > v ? r : v;
    }
    *flags |= f;
    return r;
}

static int64_t find_ge_avx512(const float *x, int64_t n, float t) {
    const __m512 vt = _mm512_set1_ps(t);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __mmask16 k = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), vt, _CMP_GE_OQ);
        if (k) return i + __builtin_ctz((unsigned)k);
    }
    for (; i < n; i++)
        if (x[i] >= t) return i;
    return n;
}

static int64_t collect_ge_avx512(const float *x, int64_t n, float t, int32_t *idx, int64_t cap) {
    const __m512 vt = _mm512_set1_ps(t);
    int64_t c = 0, i = 0;
    if (cap == 0) { /* count only: branch-free */
        __m512i acc = _mm512_setzero_si512();
        const __m512i one = _mm512_set1_epi32(1);
        for (; i + 16 <= n; i += 16)
            acc = _mm512_mask_add_epi32(acc, _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), vt, _CMP_GE_OQ), acc, one);
        c = isthmus_mm512_hsum_epi32(acc);
    } else {
        __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m512i sixteen = _mm512_set1_epi32(16);
        for (; i + 16 <= n; i += 16, iota = _mm512_add_epi32(iota, sixteen)) {
            __mmask16 k = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), vt, _CMP_GE_OQ);
            int pc = __builtin_popcount((unsigned)k);
            if (c + 16 <= cap) { /* compress in a register, store 16 (the extra lanes are overwritten later) */
                _mm512_storeu_si512((void *)(idx + c), _mm512_maskz_compress_epi32(k, iota));
            } else {
                unsigned b = k;
                for (int64_t j = c; b && j < cap; b &= b - 1) idx[j++] = (int32_t)(i + __builtin_ctz(b));
            }
            c += pc;
        }
    }
    for (; i < n; i++)
        if (x[i] >= t) {
            if (c < cap) idx[c] = (int32_t)i;
            c++;
        }
    return c;
}

/* Loads len < 16 elements into lanes [0, len), 0 elsewhere. */
static inline __m512 load_tail(const float *x, int64_t len) {
    float b[16] = {0};
    memcpy(b, x, (size_t)len * 4);
    return _mm512_loadu_ps(b);
}
static inline void store_tail(float *x, __m512 v, int64_t len) {
    float b[16];
    _mm512_storeu_ps(b, v);
    memcpy(x, b, (size_t)len * 4);
}

/* spec_weight on 16 lanes; use_x / use_e: whether xmin / emin can remove anything (compile-time) */
static inline __attribute__((always_inline)) __m512 weight16(__m512 v, __m512 vm, __m512 vit, __m512 vxmin,
                                                             __m512 vemin, __mmask16 valid, int use_x, int use_e) {
    __m512 z = _mm512_mul_ps(_mm512_sub_ps(v, vm), vit);
    __m512 e = exp16_raw(z);
    __mmask16 keep = valid & _mm512_cmp_ps_mask(z, _mm512_set1_ps(SPEC_EXP_MIN), _CMP_GE_OQ);
    if (use_x) keep &= _mm512_cmp_ps_mask(v, vxmin, _CMP_GE_OQ);
    if (use_e) keep &= _mm512_cmp_ps_mask(e, vemin, _CMP_GE_OQ);
    return _mm512_maskz_mov_ps(keep, e);
}

static inline __attribute__((always_inline)) void softmax_body(const float *x, int64_t n, float m, float inv_t,
                                                               float xmin, float emin, float *out, float *sums,
                                                               int use_x, int use_e) {
    const __m512 vm = _mm512_set1_ps(m), vit = _mm512_set1_ps(inv_t), vxmin = _mm512_set1_ps(xmin),
                 vemin = _mm512_set1_ps(emin);
    for (int64_t c0 = 0, ci = 0; c0 < n; c0 += SPEC_CHUNK, ci++) {
        int64_t end = n - c0 < SPEC_CHUNK ? n : c0 + SPEC_CHUNK, i = c0;
        __m512 acc = _mm512_setzero_ps();
        for (; i + 16 <= end; i += 16) {
            __m512 e = weight16(_mm512_loadu_ps(x + i), vm, vit, vxmin, vemin, 0xFFFF, use_x, use_e);
            if (out) _mm512_storeu_ps(out + i, e);
            acc = _mm512_add_ps(acc, e);
        }
        if (i < end) {
            int64_t len = end - i;
            __m512 e = weight16(load_tail(x + i, len), vm, vit, vxmin, vemin, (__mmask16)((1u << len) - 1), use_x, use_e);
            if (out) store_tail(out + i, e, len);
            acc = _mm512_add_ps(acc, e);
        }
        sums[ci] = isthmus_mm512_hsum_ps(acc);
    }
}

static void softmax_chunks_avx512(const float *x, int64_t n, float m, float inv_t, float xmin, float emin,
                                  float *out, float *sums) {
    int use_x = xmin > -INFINITY, use_e = emin > 0.0f;
    if (!use_x && !use_e) softmax_body(x, n, m, inv_t, xmin, emin, out, sums, 0, 0);
    else if (!use_e) softmax_body(x, n, m, inv_t, xmin, emin, out, sums, 1, 0);
    else softmax_body(x, n, m, inv_t, xmin, emin, out, sums, 1, 1);
}

static int sum_chunks_avx512(const float *v, int64_t n, float vmin, float *out, float *sums) {
    const __m512 zero = _mm512_setzero_ps(), inf = _mm512_set1_ps(INFINITY), vvmin = _mm512_set1_ps(vmin);
    __mmask16 bad = 0;
    for (int64_t c0 = 0, ci = 0; c0 < n; c0 += SPEC_CHUNK, ci++) {
        int64_t end = n - c0 < SPEC_CHUNK ? n : c0 + SPEC_CHUNK, i = c0;
        __m512 acc = _mm512_setzero_ps();
        for (; i < end; i += 16) {
            int64_t len = end - i < 16 ? end - i : 16;
            __m512 a = len == 16 ? _mm512_loadu_ps(v + i) : load_tail(v + i, len);
            __mmask16 ok = _mm512_cmp_ps_mask(a, zero, _CMP_GE_OQ) & _mm512_cmp_ps_mask(a, inf, _CMP_LT_OQ);
            bad |= (__mmask16)~ok;
            __m512 e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, vvmin, _CMP_GE_OQ), a);
            if (out) {
                if (len == 16) _mm512_storeu_ps(out + i, e);
                else store_tail(out + i, e, len);
            }
            acc = _mm512_add_ps(acc, e);
        }
        sums[ci] = isthmus_mm512_hsum_ps(acc);
    }
    return bad != 0;
}

static void residual_chunks_avx512(const float *p, float a, const float *q, float b, int64_t n, float *out,
                                   float *sums) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), zero = _mm512_setzero_ps();
    for (int64_t c0 = 0, ci = 0; c0 < n; c0 += SPEC_CHUNK, ci++) {
        int64_t end = n - c0 < SPEC_CHUNK ? n : c0 + SPEC_CHUNK, i = c0;
        __m512 acc = _mm512_setzero_ps();
        for (; i < end; i += 16) {
            int64_t len = end - i < 16 ? end - i : 16;
            __m512 vp = len == 16 ? _mm512_loadu_ps(p + i) : load_tail(p + i, len);
            __m512 vq = len == 16 ? _mm512_loadu_ps(q + i) : load_tail(q + i, len);
            __m512 d = _mm512_sub_ps(_mm512_mul_ps(vp, va), _mm512_mul_ps(vq, vb));
            __m512 e = _mm512_max_ps(d, zero);
            if (len == 16) _mm512_storeu_ps(out + i, e);
            else store_tail(out + i, e, len);
            acc = _mm512_add_ps(acc, e);
        }
        sums[ci] = isthmus_mm512_hsum_ps(acc);
    }
}

static void scale_avx512(float *x, int64_t n, float s) {
    const __m512 vs = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), vs));
    for (; i < n; i++) x[i] *= s;
}

const SAMPLE_kernel sample_f32__avx512 = {
    .max = max_avx512,
    .find_ge = find_ge_avx512,
    .collect_ge = collect_ge_avx512,
    .softmax_chunks = softmax_chunks_avx512,
    .sum_chunks = sum_chunks_avx512,
    .residual_chunks = residual_chunks_avx512,
    .scale = scale_avx512,
};
