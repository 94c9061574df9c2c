/*
 * gemm_s8s8_f32__avx2 / gemm_s8s8_s32__avx2 (compiled with -mavx2 -mfma).
 *
 * Layout: panels of NR = 16 output columns; per 4-deep K slice 64 bytes (one cache line) = two ymm,
 * columns 0..7 and 8..15, each column's 4 k-values adjacent. Micro-kernel MR rows x 16 columns:
 * per slice, a row's 4 int8 values are broadcast to all lanes and multiplied with the maddubs/madd
 * idiom: maddubs(|a|, sign(w, a)) gives a*w exactly because |a| <= 128 and |w| <= 127, so a pair sum
 * is at most 2 * 128 * 127 = 32512 < 32767 (no int16 saturation; -128 is refused in weights).
 * int32 accumulators are exact; each K-group is scaled into f32 accumulators with one fma, in the
 * same order as the reference, so results are bit-identical to it.
 */
#include "gemm.h"

#include <immintrin.h>

#define NR 16
#define MR_MAX 4

static inline __attribute__((always_inline)) void ukernel(const gemm_problem *p, const int MR,
                                                          int64_t m, int64_t pan) {
    const packed_hdr *h = p->w;
    const int64_t ng = h->ngroups, kp4 = h->kp / 4, kfull = p->k / 4;
    const int64_t g4 = h->group > 0 ? h->group / 4 : kp4;
    const int8_t *wpan = p->wp + pan * h->kp * NR;
    const int8_t *arow[MR_MAX];
    for (int r = 0; r < MR; r++) arow[r] = p->a + (m + r) * p->lda;
    const __m256i ones = _mm256_set1_epi16(1);
    const int s32 = p->c != NULL;
    __m256i acc[MR_MAX][2];
    __m256 yacc[MR_MAX][2];
    for (int r = 0; r < MR; r++) {
        yacc[r][0] = yacc[r][1] = _mm256_setzero_ps();
        acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    }

#define STEP(LOAD_A)                                                                            \
    do {                                                                                        \
        const __m256i w0 = _mm256_load_si256((const __m256i *)(wpan + k4 * 64));               \
        const __m256i w1 = _mm256_load_si256((const __m256i *)(wpan + k4 * 64 + 32));           \
        for (int r = 0; r < MR; r++) {                                                          \
            int32_t av = LOAD_A;                                                                \
            const __m256i ab = _mm256_set1_epi32(av);                                           \
            const __m256i aa = _mm256_abs_epi8(ab);                                             \
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(                          \
                            _mm256_maddubs_epi16(aa, _mm256_sign_epi8(w0, ab)), ones));         \
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(                          \
                            _mm256_maddubs_epi16(aa, _mm256_sign_epi8(w1, ab)), ones));         \
        }                                                                                       \
    } while (0)

    for (int64_t g = 0; g < ng; g++) {
        int64_t k4a = g * g4, k4b = k4a + g4 < kp4 ? k4a + g4 : kp4;
        int64_t k4m = k4b < kfull ? k4b : kfull;
        if (!s32)
            for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
        int64_t k4 = k4a;
        for (; k4 < k4m; k4++) {
            STEP(({ int32_t v; memcpy(&v, arow[r] + 4 * k4, 4); v; }));
        }
        if (k4 < k4b) STEP(gemm_load_a4(arow[r], k4, p->k)); /* K % 4 tail, last group only */
        if (!s32) {
            const float *ws = p->ws + (pan * ng + g) * NR;
            const __m256 sw0 = _mm256_loadu_ps(ws), sw1 = _mm256_loadu_ps(ws + 8);
            for (int r = 0; r < MR; r++) {
                const __m256 sa = _mm256_set1_ps(p->sa[(m + r) * p->sa_rs + g * p->sa_gs]);
                yacc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][0]), _mm256_mul_ps(sa, sw0), yacc[r][0]);
                yacc[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][1]), _mm256_mul_ps(sa, sw1), yacc[r][1]);
            }
        }
    }
#undef STEP

    const int64_t n0 = pan * NR, nv = p->n - n0 < NR ? p->n - n0 : NR;
    for (int r = 0; r < MR; r++) {
        if (s32) {
            int32_t *c = p->c + (m + r) * p->ldc + n0;
            if (nv == NR) {
                _mm256_storeu_si256((__m256i *)c, acc[r][0]);
                _mm256_storeu_si256((__m256i *)(c + 8), acc[r][1]);
            } else {
                int32_t tmp[NR];
                _mm256_storeu_si256((__m256i *)tmp, acc[r][0]);
                _mm256_storeu_si256((__m256i *)(tmp + 8), acc[r][1]);
                for (int64_t j = 0; j < nv; j++) c[j] = tmp[j];
            }
            continue;
        }
        float *y = p->y + (m + r) * p->ldy + n0;
        if (nv == NR) {
            __m256 v0 = yacc[r][0], v1 = yacc[r][1];
            if (p->bias != NULL) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(p->bias + n0));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(p->bias + n0 + 8));
            }
            _mm256_storeu_ps(y, v0);
            _mm256_storeu_ps(y + 8, v1);
        } else {
            float tmp[NR];
            _mm256_storeu_ps(tmp, yacc[r][0]);
            _mm256_storeu_ps(tmp + 8, yacc[r][1]);
            for (int64_t j = 0; j < nv; j++) y[j] = p->bias != NULL ? tmp[j] + p->bias[n0 + j] : tmp[j];
        }
    }
}

static void tile_avx2(const gemm_problem *p, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
    for (int64_t pan = p0; pan < p1; pan++) {
        int64_t m = m0;
        for (; m + 4 <= m1; m += 4) ukernel(p, 4, m, pan);
        switch (m1 - m) {
        case 3: ukernel(p, 3, m, pan); break;
        case 2: ukernel(p, 2, m, pan); break;
        case 1: ukernel(p, 1, m, pan); break;
        default: break;
        }
    }
}

const GEMM_S8_kernel gemm_s8s8_f32__avx2 = {ISTHMUS_ISA_AVX2, NR, 0, tile_avx2};
const GEMM_S8_kernel gemm_s8s8_s32__avx2 = {ISTHMUS_ISA_AVX2, NR, 0, tile_avx2};
