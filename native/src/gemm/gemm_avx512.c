/*
 * gemm_s8s8_f32__avx512 / gemm_s8s8_s32__avx512 (AVX-512 F+BW+VL+VNNI; also compiled against SIMDe
 * for the emulated test build, see core/simd.h).
 *
 * Layout: panels of NR = 32 output columns; per 4-deep K slice 128 bytes = two zmm (columns 0..15,
 * 16..31), each column's 4 k-values adjacent. vpdpbusd multiplies unsigned by signed bytes, so the
 * activations go in as a + 128 (a xor 0x80, in [0, 255]) and the packed buffer carries
 * comp = 128 * sum(w) per (column, K-group), subtracted at the end of each group. vpdpbusd wraps
 * modulo 2^32, and the true dot product fits int32 (K <= ISTHMUS_GEMM_MAX_K), so the result is exact.
 * The f32 epilogue matches the reference operation for operation (bit-identical results).
 */
#include "gemm.h"
#include "../core/simd.h"

#define NR 32
#define MR_MAX 4

static inline __attribute__((always_inline)) void ukernel(const gemm_problem *p, const int MR,
                                                          int64_t m, int64_t pan) {
    const packed_hdr *h = p->w;
    const int64_t ng = h->ngroups, kp4 = h->kp / 4, kfull = p->k / 4;
    const int64_t g4 = h->group > 0 ? h->group / 4 : kp4;
    const int8_t *wpan = p->wp + pan * h->kp * NR;
    const int8_t *arow[MR_MAX];
    for (int r = 0; r < MR; r++) arow[r] = p->a + (m + r) * p->lda;
    const int s32 = p->c != NULL;
    __m512i acc[MR_MAX][2];
    __m512 yacc[MR_MAX][2];
    for (int r = 0; r < MR; r++) {
        yacc[r][0] = yacc[r][1] = _mm512_setzero_ps();
        acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    }

#define STEP(LOAD_A)                                                                            \
    do {                                                                                        \
        const __m512i w0 = _mm512_load_si512((const void *)(wpan + k4 * 128));                  \
        const __m512i w1 = _mm512_load_si512((const void *)(wpan + k4 * 128 + 64));             \
        for (int r = 0; r < MR; r++) {                                                          \
            int32_t av = LOAD_A;                                                                \
            const __m512i ab = _mm512_set1_epi32((int32_t)((uint32_t)av ^ 0x80808080u));        \
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], ab, w0);                                 \
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], ab, w1);                                 \
        }                                                                                       \
    } while (0)

    for (int64_t g = 0; g < ng; g++) {
        int64_t k4a = g * g4, k4b = k4a + g4 < kp4 ? k4a + g4 : kp4;
        int64_t k4m = k4b < kfull ? k4b : kfull;
        if (!s32)
            for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
        int64_t k4 = k4a;
        for (; k4 < k4m; k4++) {
            STEP(({ int32_t v; memcpy(&v, arow[r] + 4 * k4, 4); v; }));
        }
        if (k4 < k4b) STEP(gemm_load_a4(arow[r], k4, p->k)); /* K % 4 tail, last group only */
        const int32_t *cp = p->comp + (pan * ng + g) * NR;
        const __m512i c0 = _mm512_load_si512((const void *)cp), c1 = _mm512_load_si512((const void *)(cp + 16));
        for (int r = 0; r < MR; r++) {
            acc[r][0] = _mm512_sub_epi32(acc[r][0], c0);
            acc[r][1] = _mm512_sub_epi32(acc[r][1], c1);
        }
        if (!s32) {
            const float *ws = p->ws + (pan * ng + g) * NR;
            const __m512 sw0 = _mm512_loadu_ps(ws), sw1 = _mm512_loadu_ps(ws + 16);
            for (int r = 0; r < MR; r++) {
                const __m512 sa = _mm512_set1_ps(p->sa[(m + r) * p->sa_rs + g * p->sa_gs]);
                yacc[r][0] = _mm512_fmadd_ps(isthmus_mm512_cvtepi32_ps(acc[r][0]), _mm512_mul_ps(sa, sw0), yacc[r][0]);
                yacc[r][1] = _mm512_fmadd_ps(isthmus_mm512_cvtepi32_ps(acc[r][1]), _mm512_mul_ps(sa, sw1), yacc[r][1]);
            }
        }
    }
#undef STEP

    const int64_t n0 = pan * NR, nv = p->n - n0 < NR ? p->n - n0 : NR;
    for (int r = 0; r < MR; r++) {
        if (s32) {
            int32_t *c = p->c + (m + r) * p->ldc + n0;
            if (nv == NR) {
                _mm512_storeu_si512((void *)c, acc[r][0]);
                _mm512_storeu_si512((void *)(c + 16), acc[r][1]);
            } else {
                int32_t tmp[NR];
                _mm512_storeu_si512((void *)tmp, acc[r][0]);
                _mm512_storeu_si512((void *)(tmp + 16), acc[r][1]);
                for (int64_t j = 0; j < nv; j++) c[j] = tmp[j];
            }
            continue;
        }
        float *y = p->y + (m + r) * p->ldy + n0;
        if (nv == NR) {
            __m512 v0 = yacc[r][0], v1 = yacc[r][1];
            if (p->bias != NULL) {
                v0 = _mm512_add_ps(v0, _mm512_loadu_ps(p->bias + n0));
                v1 = _mm512_add_ps(v1, _mm512_loadu_ps(p->bias + n0 + 16));
            }
            _mm512_storeu_ps(y, v0);
            _mm512_storeu_ps(y + 16, v1);
        } else {
            float tmp[NR];
            _mm512_storeu_ps(tmp, yacc[r][0]);
            _mm512_storeu_ps(tmp + 16, yacc[r][1]);
            for (int64_t j = 0; j < nv; j++) y[j] = p->bias != NULL ? tmp[j] + p->bias[n0 + j] : tmp[j];
        }
    }
}

static void tile_avx512(const gemm_problem *p, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
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

const GEMM_S8_kernel gemm_s8s8_f32__avx512 = {ISTHMUS_ISA_AVX512, NR, 1, tile_avx512};
const GEMM_S8_kernel gemm_s8s8_s32__avx512 = {ISTHMUS_ISA_AVX512, NR, 1, tile_avx512};
