/* quantize_f32_s8__avx512: AVX-512 quantization primitives, bit-identical to the reference.
 * Compiled natively for the shipped library and against SIMDe for the emulated test build. */
#include "quant.h"
#include "../core/simd.h"

#include <math.h>

static float amax_avx512(const float *x, int64_t n) {
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    const __m512 inf = _mm512_set1_ps(INFINITY);
    __m512 m0 = _mm512_setzero_ps();
    __mmask16 bad = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(x + i)), absmask));
        bad |= _mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ);
        m0 = _mm512_max_ps(m0, a);
    }
    float lanes[16];
    _mm512_storeu_ps(lanes, m0);
    float m = 0.0f;
    for (int j = 0; j < 16; j++) m = lanes[j] > m ? lanes[j] : m;
    int isbad = bad != 0;
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= FLT_MAX)) isbad = 1;
        else if (a > m) m = a;
    }
    return isbad ? NAN : m;
}

/* x * 2^64, exact, for |x| < 2^-60, by integer operations (quant.h, ISTHMUS_QUANT_TINY). */
static inline __m512 times_2p64(__m512 x) {
    const __m512i b = _mm512_castps_si512(x), absm = _mm512_set1_epi32(0x7fffffff);
    const __m512i mag = _mm512_and_si512(b, absm), sign = _mm512_andnot_si512(absm, b);
    const __mmask16 den = _mm512_cmpgt_epi32_mask(_mm512_set1_epi32(0x00800000), mag);
    const __m512i vd = _mm512_or_si512(
        _mm512_castps_si512(_mm512_mul_ps(isthmus_mm512_cvtepi32_ps(mag), _mm512_set1_ps(0x1p-85f))), sign);
    const __m512i vn = _mm512_add_epi32(b, _mm512_set1_epi32(64 << 23));
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(den, vn, vd));
}

static void quant_avx512(const float *x, int64_t n, float scale, int8_t *q) {
    const int tiny = scale < ISTHMUS_QUANT_TINY;
    const __m512 vs = tiny ? times_2p64(_mm512_set1_ps(scale)) : _mm512_set1_ps(scale);
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i);
        if (tiny) xv = times_2p64(xv);
        __m512 v = _mm512_div_ps(xv, vs);
        v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        _mm_storeu_si128((__m128i *)(q + i), isthmus_mm512_cvtepi32_epi8(isthmus_mm512_cvtps_epi32(v)));
    }
    for (; i < n; i++) q[i] = isthmus__quant1(x[i], scale);
}

static void dequant_avx512(const int8_t *q, int64_t n, float scale, float *x) {
    const __m512 vs = _mm512_set1_ps(scale);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(q + i));
        __m512 f = isthmus_mm512_cvtepi32_ps(isthmus_mm512_cvtepi8_epi32(b));
        _mm512_storeu_ps(x + i, _mm512_mul_ps(f, vs));
    }
    for (; i < n; i++) x[i] = (float)q[i] * scale;
}

const QUANTIZE_S8_kernel quantize_f32_s8__avx512 = {amax_avx512, quant_avx512, dequant_avx512};
