/*
 * simd.h: the intrinsics header for AVX-512 kernel sources. The shipped library compiles them natively
 * (<immintrin.h> with -mavx512f -mavx512bw -mavx512vl -mavx512vnni); the test-only build defines
 * ISTHMUS_SIMDE and compiles the very same source against SIMDe, which emulates the intrinsics on any
 * x86-64 CPU, so the kernels are checked where the CPU has no AVX-512. Steps SIMDe 0.7.4 lacks are
 * written here from intrinsics it has, so both builds share one kernel source.
 */
#ifndef ISTHMUS_SIMD_H
#define ISTHMUS_SIMD_H

#ifdef ISTHMUS_SIMDE
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

/* SIMDe 0.7.4 lacks these four conversions: build them from two 256-bit halves. */
static inline __m512 isthmus_mm512_cvtepi32_ps(__m512i a) {
    __m256 lo = _mm256_cvtepi32_ps(_mm512_castsi512_si256(a));
    __m256 hi = _mm256_cvtepi32_ps(_mm512_extracti64x4_epi64(a, 1));
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}
static inline __m512i isthmus_mm512_cvtps_epi32(__m512 a) {
    __m256i lo = _mm256_cvtps_epi32(_mm512_castps512_ps256(a));
    __m256i hi = _mm256_cvtps_epi32(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
static inline __m512i isthmus_mm512_cvtepi8_epi32(__m128i a) {
    __m256i lo = _mm256_cvtepi8_epi32(a);
    __m256i hi = _mm256_cvtepi8_epi32(_mm_srli_si128(a, 8));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
static inline __m512i isthmus_mm512_cvtepu8_epi32(__m128i a) {
    __m256i lo = _mm256_cvtepu8_epi32(a);
    __m256i hi = _mm256_cvtepu8_epi32(_mm_srli_si128(a, 8));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
/* values are already in [-127, 127]: the saturating form is exact */
#define isthmus_mm512_cvtepi32_epi8(a) _mm512_cvtsepi32_epi8(a)
static inline __m512 isthmus_mm512_cvtph_ps(__m256i a) {
    __m256 lo = _mm256_cvtph_ps(_mm256_castsi256_si128(a));
    __m256 hi = _mm256_cvtph_ps(_mm256_extracti128_si256(a, 1));
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}
static inline __m512i isthmus_mm512_cvtepu16_epi32(__m256i a) {
    __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(a));
    __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(a, 1));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
/* SIMDe 0.7.4's native alias of _mm512_madd_epi16 takes the masked form's four arguments. */
#define isthmus_mm512_madd_epi16(a, b) simde_mm512_madd_epi16(a, b)
/* 512-bit gathers (scale 4) from two 256-bit ones. */
static inline __m512 isthmus_mm512_i32gather_ps(__m512i idx, const float *base) {
    __m256 lo = _mm256_i32gather_ps(base, _mm512_castsi512_si256(idx), 4);
    __m256 hi = _mm256_i32gather_ps(base, _mm512_extracti64x4_epi64(idx, 1), 4);
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}
static inline __m512i isthmus_mm512_i32gather_epi32(__m512i idx, const int32_t *base) {
    __m256i lo = _mm256_i32gather_epi32((const int *)base, _mm512_castsi512_si256(idx), 4);
    __m256i hi = _mm256_i32gather_epi32((const int *)base, _mm512_extracti64x4_epi64(idx, 1), 4);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
/* vpermilps (in-lane, bits 1:0 of each index) from the cross-lane permute SIMDe has */
static inline __m512 isthmus_mm512_permutevar_ps(__m512 a, __m512i idx) {
    const __m512i base = _mm512_set_epi32(12, 12, 12, 12, 8, 8, 8, 8, 4, 4, 4, 4, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(_mm512_or_si512(_mm512_and_si512(idx, _mm512_set1_epi32(3)), base), a);
}
/* SIMDe 0.7.4 has no 512-bit expand: lane i of the result is the next unused lane of a (from lane 0)
 * where bit i of k is set, else 0. */
static inline __m512 isthmus_mm512_maskz_expand_ps(__mmask16 k, __m512 a) {
    float s[16], d[16];
    _mm512_storeu_ps(s, a);
    for (int i = 0, j = 0; i < 16; i++) d[i] = (k >> i) & 1 ? s[j++] : 0.0f;
    return _mm512_loadu_ps(d);
}
#else
#include <immintrin.h>
#define isthmus_mm512_maskz_expand_ps(k, a) _mm512_maskz_expand_ps((k), (a))
#define isthmus_mm512_madd_epi16(a, b) _mm512_madd_epi16(a, b)
#define isthmus_mm512_i32gather_ps(idx, base) _mm512_i32gather_ps((idx), (base), 4)
#define isthmus_mm512_i32gather_epi32(idx, base) _mm512_i32gather_epi32((idx), (base), 4)
#define isthmus_mm512_cvtepi32_ps(a) _mm512_cvtepi32_ps(a)
#define isthmus_mm512_cvtps_epi32(a) _mm512_cvtps_epi32(a)
#define isthmus_mm512_cvtepi8_epi32(a) _mm512_cvtepi8_epi32(a)
#define isthmus_mm512_cvtepu8_epi32(a) _mm512_cvtepu8_epi32(a)
#define isthmus_mm512_cvtepi32_epi8(a) _mm512_cvtepi32_epi8(a)
#define isthmus_mm512_cvtph_ps(a) _mm512_cvtph_ps(a)
#define isthmus_mm512_cvtepu16_epi32(a) _mm512_cvtepu16_epi32(a)
#define isthmus_mm512_permutevar_ps(a, idx) _mm512_permutevar_ps(a, idx)
#endif

/* Horizontal sum of 16 int32 (SIMDe 0.7.4 has no _mm512_reduce_add_epi32). */
static inline int32_t isthmus_mm512_hsum_epi32(__m512i v) {
    __m256i a = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    __m128i b = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    b = _mm_add_epi32(b, _mm_shuffle_epi32(b, 0x4e));
    b = _mm_add_epi32(b, _mm_shuffle_epi32(b, 0xb1));
    return _mm_cvtsi128_si32(b);
}

/* Horizontal max and sum of 16 floats, written from 256/128-bit steps both builds have. */
static inline float isthmus_mm512_hmax_ps(__m512 v) {
    __m256 a = _mm256_max_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_max_ps(b, _mm_movehl_ps(b, b));
    b = _mm_max_ss(b, _mm_shuffle_ps(b, b, 1));
    return _mm_cvtss_f32(b);
}
static inline float isthmus_mm512_hsum_ps(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_shuffle_ps(b, b, 1));
    return _mm_cvtss_f32(b);
}

#endif
