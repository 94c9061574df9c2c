/* rmsnorm_f32__avx2, swiglu_f32__avx2: 8 lanes, four accumulators for the sum of squares; scalar tails. */
#include "nn.h"

#include <immintrin.h>

#include "../core/exp_avx2.h"
#define INLINE static inline __attribute__((always_inline))

static void rmsnorm_row_avx2(float *x, const float *r, const float *w, float eps, float *y, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    if (r) {
        for (; i + 32 <= n; i += 32) {
            __m256 v0 = _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(r + i));
            __m256 v1 = _mm256_add_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(r + i + 8));
            __m256 v2 = _mm256_add_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(r + i + 16));
            __m256 v3 = _mm256_add_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(r + i + 24));
            _mm256_storeu_ps(x + i, v0);
            _mm256_storeu_ps(x + i + 8, v1);
            _mm256_storeu_ps(x + i + 16, v2);
            _mm256_storeu_ps(x + i + 24, v3);
            a0 = _mm256_fmadd_ps(v0, v0, a0);
            a1 = _mm256_fmadd_ps(v1, v1, a1);
            a2 = _mm256_fmadd_ps(v2, v2, a2);
            a3 = _mm256_fmadd_ps(v3, v3, a3);
        }
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(r + i));
            _mm256_storeu_ps(x + i, v);
            a0 = _mm256_fmadd_ps(v, v, a0);
        }
    } else {
        for (; i + 32 <= n; i += 32) {
            __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
            __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
            a0 = _mm256_fmadd_ps(v0, v0, a0);
            a1 = _mm256_fmadd_ps(v1, v1, a1);
            a2 = _mm256_fmadd_ps(v2, v2, a2);
            a3 = _mm256_fmadd_ps(v3, v3, a3);
        }
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            a0 = _mm256_fmadd_ps(v, v, a0);
        }
    }
    __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float ss = _mm_cvtss_f32(h);
    for (; i < n; i++) {
        float v = x[i];
        if (r) {
            v += r[i];
            x[i] = v;
        }
        ss += v * v;
    }
    const float inv = isthmus__rms_inv(ss, n, eps);
    const __m256 vi = _mm256_set1_ps(inv);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vi), _mm256_loadu_ps(w + j)));
    for (; j < n; j++) y[j] = x[j] * inv * w[j];
}


INLINE __m256 swiglu8(__m256 g, __m256 u) {
    const __m256 sgn = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u)), one = _mm256_set1_ps(1.0f);
    __m256 e = isthmus__exp_neg8(_mm256_or_ps(g, sgn)); /* exp(-|g|) */
    __m256 num = _mm256_blendv_ps(one, e, g); /* sign bit of g set: e, else 1 */
    __m256 sig = _mm256_div_ps(num, _mm256_add_ps(one, e));
    return _mm256_mul_ps(_mm256_mul_ps(g, sig), u);
}

static void swiglu_row_avx2(const float *g, const float *u, float *o, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 r0 = swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i));
        __m256 r1 = swiglu8(_mm256_loadu_ps(g + i + 8), _mm256_loadu_ps(u + i + 8));
        _mm256_storeu_ps(o + i, r0);
        _mm256_storeu_ps(o + i + 8, r1);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
    for (; i < n; i++) o[i] = isthmus__swiglu1(g[i], u[i]);
}

const RMSNORM_kernel rmsnorm_f32__avx2 = {ISTHMUS_ISA_AVX2, rmsnorm_row_avx2};
const SWIGLU_kernel swiglu_f32__avx2 = {ISTHMUS_ISA_AVX2, swiglu_row_avx2};
