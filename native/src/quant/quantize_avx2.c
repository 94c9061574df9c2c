/* quantize_f32_s8__avx2: AVX2 quantization primitives, bit-identical to the reference. */
#include "quant.h"

#include <immintrin.h>
#include <math.h>

static float amax_avx2(const float *x, int64_t n) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(INFINITY);
    __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
    __m256 bad = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a0 = _mm256_and_ps(_mm256_loadu_ps(x + i), absmask);
        __m256 a1 = _mm256_and_ps(_mm256_loadu_ps(x + i + 8), absmask);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a0, inf, _CMP_NLT_UQ));
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a1, inf, _CMP_NLT_UQ));
        m0 = _mm256_max_ps(m0, a0);
        m1 = _mm256_max_ps(m1, a1);
    }
    m0 = _mm256_max_ps(m0, m1);
    float lanes[8];
    _mm256_storeu_ps(lanes, m0);
    float m = 0.0f;
    for (int j = 0; j < 8; j++) m = lanes[j] > m ? lanes[j] : m;
    int isbad = _mm256_movemask_ps(bad) != 0;
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= FLT_MAX)) isbad = 1;
        else if (a > m) m = a;
    }
    return isbad ? NAN : m;
}

/* x * 2^64, exact, for |x| < 2^-60, by integer operations (quant.h, ISTHMUS_QUANT_TINY). */
static inline __m256 times_2p64(__m256 x) {
    const __m256i b = _mm256_castps_si256(x), absm = _mm256_set1_epi32(0x7fffffff);
    const __m256i mag = _mm256_and_si256(b, absm), sign = _mm256_andnot_si256(absm, b);
    const __m256i den = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x00800000), mag);
    const __m256i vd = _mm256_or_si256(
        _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(mag), _mm256_set1_ps(0x1p-85f))), sign);
    const __m256i vn = _mm256_add_epi32(b, _mm256_set1_epi32(64 << 23));
    return _mm256_castsi256_ps(_mm256_blendv_epi8(vn, vd, den));
}

static inline __m256i quant8(const float *x, __m256 vs, __m256 lo, __m256 hi, int tiny) {
    __m256 xv = _mm256_loadu_ps(x);
    if (tiny) xv = times_2p64(xv);
    __m256 v = _mm256_div_ps(xv, vs);
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    return _mm256_cvtps_epi32(v);
}

static void quant_avx2(const float *x, int64_t n, float scale, int8_t *q) {
    const int tiny = scale < ISTHMUS_QUANT_TINY;
    const __m256 vs = tiny ? times_2p64(_mm256_set1_ps(scale)) : _mm256_set1_ps(scale);
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = quant8(x + i, vs, lo, hi, tiny), b = quant8(x + i + 8, vs, lo, hi, tiny);
        __m256i c = quant8(x + i + 16, vs, lo, hi, tiny), d = quant8(x + i + 24, vs, lo, hi, tiny);
        __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
        __m256i abcd = _mm256_packs_epi16(ab, cd);
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(abcd, perm));
    }
    for (; i < n; i++) q[i] = isthmus__quant1(x[i], scale);
}

static void dequant_avx2(const int8_t *q, int64_t n, float scale, float *x) {
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(q + i));
        __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(f, vs));
    }
    for (; i < n; i++) x[i] = (float)q[i] * scale;
}

const QUANTIZE_S8_kernel quantize_f32_s8__avx2 = {amax_avx2, quant_avx2, dequant_avx2};
