/* rmsnorm_f32__avx512, swiglu_f32__avx512: 16 lanes, four accumulators for the sum of squares; scalar tails
 * (SIMDe 0.7.4 has no masked loads). Compiled natively and against SIMDe for the emulated test build. */
#include "nn.h"

#include "../core/simd.h"

#include "../core/exp_avx512.h"
#define INLINE static inline __attribute__((always_inline))

static void rmsnorm_row_avx512(float *x, const float *r, const float *w, float eps, float *y, int64_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    if (r) {
        for (; i + 64 <= n; i += 64) {
            __m512 v0 = _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(r + i));
            __m512 v1 = _mm512_add_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(r + i + 16));
            __m512 v2 = _mm512_add_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(r + i + 32));
            __m512 v3 = _mm512_add_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(r + i + 48));
            _mm512_storeu_ps(x + i, v0);
            _mm512_storeu_ps(x + i + 16, v1);
            _mm512_storeu_ps(x + i + 32, v2);
            _mm512_storeu_ps(x + i + 48, v3);
            a0 = _mm512_fmadd_ps(v0, v0, a0);
            a1 = _mm512_fmadd_ps(v1, v1, a1);
            a2 = _mm512_fmadd_ps(v2, v2, a2);
            a3 = _mm512_fmadd_ps(v3, v3, a3);
        }
        for (; i + 16 <= n; i += 16) {
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(r + i));
            _mm512_storeu_ps(x + i, v);
            a0 = _mm512_fmadd_ps(v, v, a0);
        }
    } else {
        for (; i + 64 <= n; i += 64) {
            __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
            __m512 v2 = _mm512_loadu_ps(x + i + 32), v3 = _mm512_loadu_ps(x + i + 48);
            a0 = _mm512_fmadd_ps(v0, v0, a0);
            a1 = _mm512_fmadd_ps(v1, v1, a1);
            a2 = _mm512_fmadd_ps(v2, v2, a2);
            a3 = _mm512_fmadd_ps(v3, v3, a3);
        }
        for (; i + 16 <= n; i += 16) {
            __m512 v = _mm512_loadu_ps(x + i);
            a0 = _mm512_fmadd_ps(v, v, a0);
        }
    }
    float ss = isthmus_mm512_hsum_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) {
        float v = x[i];
        if (r) {
            v += r[i];
            x[i] = v;
        }
        ss += v * v;
    }
    const float inv = isthmus__rms_inv(ss, n, eps);
    const __m512 vi = _mm512_set1_ps(inv);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + j), vi), _mm512_loadu_ps(w + j)));
    for (; j < n; j++) y[j] = x[j] * inv * w[j];
}


INLINE __m512 swiglu16(__m512 g, __m512 u) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sgn = _mm512_set1_epi32((int)0x80000000u);
    __m512 e = isthmus__exp_neg16(_mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(g), sgn))); /* exp(-|g|) */
    __mmask16 neg = _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 num = _mm512_mask_blend_ps(neg, one, e);
    __m512 sig = _mm512_div_ps(num, _mm512_add_ps(one, e));
    return _mm512_mul_ps(_mm512_mul_ps(g, sig), u);
}

static void swiglu_row_avx512(const float *g, const float *u, float *o, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 r0 = swiglu16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i));
        __m512 r1 = swiglu16(_mm512_loadu_ps(g + i + 16), _mm512_loadu_ps(u + i + 16));
        _mm512_storeu_ps(o + i, r0);
        _mm512_storeu_ps(o + i + 16, r1);
    }
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(o + i, swiglu16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
    for (; i < n; i++) o[i] = isthmus__swiglu1(g[i], u[i]);
}

const RMSNORM_kernel rmsnorm_f32__avx512 = {ISTHMUS_ISA_AVX512, rmsnorm_row_avx512};
const SWIGLU_kernel swiglu_f32__avx512 = {ISTHMUS_ISA_AVX512, swiglu_row_avx512};
