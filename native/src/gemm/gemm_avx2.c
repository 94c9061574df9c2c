/*
 * gemm_s8s8_f32__avx2 / gemm_s8s8_s32__avx2 (compiled with -mavx2 -mfma).
 *
 * Layout: panels of NR = 16 output columns; per 4-deep K slice 64 bytes (one cache line) = two ymm,
 * columns 0..7 and 8..15, each column's 4 k-values adjacent. Micro-kernel MR rows x 16 columns:
 * per slice, a row's 4 int8 values are broadcast to all lanes and multiplied with the maddubs/madd
 * idiom (A repacked by the driver into tiles of MR rows with |a| precomputed next to a, so broadcasts
 * read consecutive words and the loop spends no ALU op on abs):
 * maddubs(|a|, sign(w, a)) gives a*w exactly because |a| <= 128 and |w| <= 127, so a pair sum
 * is at most 2 * 128 * 127 = 32512 < 32767 (no int16 saturation; -128 is refused in weights).
 * int32 accumulators are exact; each K-group is scaled into f32 accumulators with one fma, in the
 * same order as the reference, so results are bit-identical to it.
 */
#include "gemm.h"

#include <immintrin.h>

#define NR 16
#define MR_MAX 5

/* Named accumulators (c<row><col>), not an array: gcc keeps arrays of vectors in memory. */
#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4)

static inline __attribute__((always_inline)) void ukernel(const gemm_problem *p, const int MR, int64_t m,
                                                          int64_t pan) {
    const packed_hdr *h = p->w;
    const int64_t ng = h->ngroups, kp4 = h->kp / 4;
    const int64_t g4 = h->group > 0 ? h->group / 4 : kp4;
    const int8_t *wpan = p->wp + pan * h->kp * NR;
    /* A repacked: the tile starting at row m (a multiple of amr), per K slice amr words of a, then
     * amr words of |a| */
    const int64_t amr = p->amr;
    const int32_t *ap = p->ap + m * kp4 * 2;
    const __m256i ones = _mm256_set1_epi16(1);
    const int s32 = p->c != NULL;
    const __m256i zero = _mm256_setzero_si256();
    __m256 yacc[MR_MAX][2];
#define DECL(r) __m256i c##r##0 = zero, c##r##1 = zero;
    FOR_ROWS(DECL)
#undef DECL
    for (int r = 0; r < MR; r++) yacc[r][0] = yacc[r][1] = _mm256_setzero_ps();

    for (int64_t g = 0; g < ng; g++) {
        int64_t k4a = g * g4, k4b = k4a + g4 < kp4 ? k4a + g4 : kp4;
        if (!s32) {
#define ZERO(r) c##r##0 = c##r##1 = zero;
            FOR_ROWS(ZERO)
#undef ZERO
        }
        const int32_t *a0 = ap + k4a * 2 * amr;
        for (int64_t k4 = k4a; k4 < k4b; k4++, a0 += 2 * amr) {
            const __m256i w0 = _mm256_load_si256((const __m256i *)(wpan + k4 * 64));
            const __m256i w1 = _mm256_load_si256((const __m256i *)(wpan + k4 * 64 + 32));
#define ROW(r)                                                                                    \
            if (MR > r) {                                                                         \
                const __m256i ab = _mm256_set1_epi32(a0[r]);                                      \
                const __m256i aa = _mm256_set1_epi32(a0[amr + r]);                                \
                c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(                            \
                              _mm256_maddubs_epi16(aa, _mm256_sign_epi8(w0, ab)), ones));         \
                c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(                            \
                              _mm256_maddubs_epi16(aa, _mm256_sign_epi8(w1, ab)), ones));         \
            }
            FOR_ROWS(ROW)
#undef ROW
        }
        if (!s32) {
            const float *ws = p->ws + (pan * ng + g) * NR;
            const __m256 sw0 = _mm256_loadu_ps(ws), sw1 = _mm256_loadu_ps(ws + 8);
#define EPI(r)                                                                                    \
            if (MR > r) {                                                                         \
                const __m256 sa = _mm256_set1_ps(p->sa[(m + r) * p->sa_rs + g * p->sa_gs]);       \
                yacc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c##r##0), _mm256_mul_ps(sa, sw0), yacc[r][0]); \
                yacc[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c##r##1), _mm256_mul_ps(sa, sw1), yacc[r][1]); \
            }
            FOR_ROWS(EPI)
#undef EPI
        }
    }

    const int64_t n0 = pan * NR, nv = p->n - n0 < NR ? p->n - n0 : NR;
    if (s32) {
#define STORE32(r)                                                                                \
        if (MR > r) {                                                                             \
            int32_t *c = p->c + (m + r) * p->ldc + n0;                                            \
            int32_t tmp[NR];                                                                      \
            int32_t *d = nv == NR ? c : tmp;                                                      \
            _mm256_storeu_si256((__m256i *)d, c##r##0);                                           \
            _mm256_storeu_si256((__m256i *)(d + 8), c##r##1);                                     \
            if (d == tmp) for (int64_t j = 0; j < nv; j++) c[j] = tmp[j];                         \
        }
        FOR_ROWS(STORE32)
#undef STORE32
        return;
    }
    for (int r = 0; r < MR; r++) {
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
        for (int64_t m = m0; m < m1; m += p->amr) {
            switch (m1 - m < p->amr ? m1 - m : p->amr) {
            case 5: ukernel(p, 5, m, pan); break;
            case 4: ukernel(p, 4, m, pan); break;
            case 3: ukernel(p, 3, m, pan); break;
            case 2: ukernel(p, 2, m, pan); break;
            default: ukernel(p, 1, m, pan); break;
            }
        }
    }
}

const GEMM_S8_kernel gemm_s8s8_f32__avx2 = {ISTHMUS_ISA_AVX2, NR, 0, MR_MAX, 0, 1, tile_avx2};
const GEMM_S8_kernel gemm_s8s8_s32__avx2 = {ISTHMUS_ISA_AVX2, NR, 0, MR_MAX, 0, 1, tile_avx2};
