/*
 * gemm_s8s8_f32__avx512 / gemm_s8s8_s32__avx512 (AVX-512 F+BW+VL+VNNI; also compiled against SIMDe
 * for the emulated test build, see core/simd.h).
 *
 * Layout: panels of NR = 64 output columns; per 4-deep K slice 256 bytes = four zmm (columns 0..15,
 * 16..31, 32..47, 48..63), each column's 4 k-values adjacent. A is repacked by the driver into tiles
 * of MR = 6 rows as a + 128 (a xor 0x80, the unsigned operand of vpdpbusd), so one slice of the
 * micro-kernel is 4 weight loads, 6 broadcasts and 24 vpdpbusd into 24 zmm accumulators. The packed
 * weights carry comp = 128 * sum(w) per (column, K-group), subtracted at the end of each group.
 * vpdpbusd wraps modulo 2^32 and the true dot product fits int32 (K <= ISTHMUS_GEMM_MAX_K), so the
 * int32 result is exact. The f32 epilogue matches the reference operation for operation
 * (y = fma((float)acc_g, sa * sw, y) over groups, then + bias): results are bit-identical to it.
 */
#include "gemm.h"
#include "../core/simd.h"

/* ytile is only read when it was written (tiled == 1); gcc cannot see that */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define NR 64
#define MR 6
#define NV 4 /* zmm vectors per panel row */

static inline __attribute__((always_inline)) void store_row_f32(const gemm_problem *p, float *y, const __m512 *v,
                                                                int64_t n0, int64_t nv) {
    if (nv == NR) {
        for (int j = 0; j < NV; j++) {
            __m512 x = v[j];
            if (p->bias != NULL) x = _mm512_add_ps(x, _mm512_loadu_ps(p->bias + n0 + 16 * j));
            _mm512_storeu_ps(y + 16 * j, x);
        }
    } else {
        float tmp[NR];
        for (int j = 0; j < NV; j++) _mm512_storeu_ps(tmp + 16 * j, v[j]);
        for (int64_t j = 0; j < nv; j++) y[j] = p->bias != NULL ? tmp[j] + p->bias[n0 + j] : tmp[j];
    }
}

/* The micro-kernel keeps its 6 x 4 accumulators in named variables (c<row><col>): gcc keeps an
 * array of vectors in memory across the loop, which costs a store per vpdpbusd. Rows past mr (a
 * compile-time constant after inlining) are dead code. */
#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* Prefetch plan for the next weight panel: while the row tiles of this panel compute (from L2), the
 * next panel is pulled into L2, its 4 * kp4 lines spread evenly over the tiles' K loops, so the first
 * tile of the next panel does not wait on memory. */
typedef struct pf_plan { const int8_t *next; int64_t tile, lpi; } pf_plan;

static inline __attribute__((always_inline)) void ukernel(const gemm_problem *p, const int mr, int64_t m,
                                                          int64_t pan, pf_plan pf) {
    const packed_hdr *h = p->w;
    const int64_t ng = h->ngroups, kp4 = h->kp / 4;
    const int64_t g4 = h->group > 0 ? h->group / 4 : kp4;
    const int8_t *wpan = p->wp + pan * h->kp * NR;
    /* the tile of repacked A that starts at row m (m is a multiple of amr) */
    const int64_t amr = p->amr;
    const int32_t *ak = p->ap + m * kp4;
    const int s32 = p->c != NULL;
    const int64_t n0 = pan * NR, nv = p->n - n0 < NR ? p->n - n0 : NR;
    const int tiled = !s32 && ng > 1;
    float ytile[MR][NR] __attribute__((aligned(64)));
    const __m512i zero = _mm512_setzero_si512();
#define DECL(r) __m512i c##r##0 = zero, c##r##1 = zero, c##r##2 = zero, c##r##3 = zero;
    FOR_ROWS(DECL)
#undef DECL
    if (tiled)
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < NV; j++) _mm512_store_ps(&ytile[r][16 * j], _mm512_setzero_ps());

    for (int64_t g = 0; g < ng; g++) {
        const int64_t k4a = g * g4, k4b = k4a + g4 < kp4 ? k4a + g4 : kp4;
        /* each group's accumulators start at -comp, so the + 128 offset cancels with no extra op */
        const int32_t *cp = p->comp + (pan * ng + g) * NR;
        const __m512i q0 = _mm512_load_si512((const void *)cp), q1 = _mm512_load_si512((const void *)(cp + 16));
        const __m512i q2 = _mm512_load_si512((const void *)(cp + 32)), q3 = _mm512_load_si512((const void *)(cp + 48));
#define INIT(r)                                                                                   \
        if (mr > r) {                                                                             \
            c##r##0 = _mm512_sub_epi32(s32 ? c##r##0 : zero, q0);                                 \
            c##r##1 = _mm512_sub_epi32(s32 ? c##r##1 : zero, q1);                                 \
            c##r##2 = _mm512_sub_epi32(s32 ? c##r##2 : zero, q2);                                 \
            c##r##3 = _mm512_sub_epi32(s32 ? c##r##3 : zero, q3);                                 \
        }
        FOR_ROWS(INIT)
#undef INIT
        const int8_t *wk = wpan + k4a * (4 * NR);
        const int32_t *a0 = ak + k4a * amr;
        for (int64_t k4 = k4a; k4 < k4b; k4++, wk += 4 * NR, a0 += amr) {
            const __m512i w0 = _mm512_load_si512((const void *)wk);
            const __m512i w1 = _mm512_load_si512((const void *)(wk + 64));
            const __m512i w2 = _mm512_load_si512((const void *)(wk + 128));
            const __m512i w3 = _mm512_load_si512((const void *)(wk + 192));
            if (pf.next != NULL)
                for (int64_t l = 0; l < pf.lpi; l++) {
                    int64_t line = (pf.tile * kp4 + k4) * pf.lpi + l;
                    if (line < 4 * kp4) _mm_prefetch((const char *)pf.next + 64 * line, _MM_HINT_T1);
                }
#define ROW(r)                                                                                    \
            if (mr > r) {                                                                         \
                const __m512i ab = _mm512_set1_epi32(a0[r]); \
                c##r##0 = _mm512_dpbusd_epi32(c##r##0, ab, w0);                                   \
                c##r##1 = _mm512_dpbusd_epi32(c##r##1, ab, w1);                                   \
                c##r##2 = _mm512_dpbusd_epi32(c##r##2, ab, w2);                                   \
                c##r##3 = _mm512_dpbusd_epi32(c##r##3, ab, w3);                                   \
            }
            FOR_ROWS(ROW)
#undef ROW
        }
        if (s32) continue;
        const float *ws = p->ws + (pan * ng + g) * NR;
        const __m512 sw0 = _mm512_loadu_ps(ws), sw1 = _mm512_loadu_ps(ws + 16);
        const __m512 sw2 = _mm512_loadu_ps(ws + 32), sw3 = _mm512_loadu_ps(ws + 48);
#define EPI(r)                                                                                    \
        if (mr > r) {                                                                             \
            const __m512 sa = _mm512_set1_ps(p->sa[(m + r) * p->sa_rs + g * p->sa_gs]);           \
            __m512 v[NV] = {isthmus_mm512_cvtepi32_ps(c##r##0), isthmus_mm512_cvtepi32_ps(c##r##1), \
                            isthmus_mm512_cvtepi32_ps(c##r##2), isthmus_mm512_cvtepi32_ps(c##r##3)}; \
            const __m512 s[NV] = {_mm512_mul_ps(sa, sw0), _mm512_mul_ps(sa, sw1),                 \
                                  _mm512_mul_ps(sa, sw2), _mm512_mul_ps(sa, sw3)};                \
            if (tiled) {                                                                          \
                for (int j = 0; j < NV; j++)                                                      \
                    _mm512_store_ps(&ytile[r][16 * j],                                            \
                                    _mm512_fmadd_ps(v[j], s[j], _mm512_load_ps(&ytile[r][16 * j]))); \
            } else { /* one group: finish the row now */                                          \
                for (int j = 0; j < NV; j++) v[j] = _mm512_fmadd_ps(v[j], s[j], _mm512_setzero_ps()); \
                store_row_f32(p, p->y + (m + r) * p->ldy + n0, v, n0, nv);                        \
            }                                                                                     \
        }
        FOR_ROWS(EPI)
#undef EPI
    }

    if (s32) {
#define STORE32(r)                                                                                \
        if (mr > r) {                                                                             \
            int32_t *c = p->c + (m + r) * p->ldc + n0;                                            \
            int32_t tmp[NR];                                                                      \
            int32_t *d = nv == NR ? c : tmp;                                                      \
            _mm512_storeu_si512((void *)d, c##r##0);                                              \
            _mm512_storeu_si512((void *)(d + 16), c##r##1);                                       \
            _mm512_storeu_si512((void *)(d + 32), c##r##2);                                       \
            _mm512_storeu_si512((void *)(d + 48), c##r##3);                                       \
            if (d == tmp) for (int64_t j = 0; j < nv; j++) c[j] = tmp[j];                         \
        }
        FOR_ROWS(STORE32)
#undef STORE32
    } else if (tiled) {
        for (int r = 0; r < mr; r++) {
            __m512 v[NV];
            for (int j = 0; j < NV; j++) v[j] = _mm512_load_ps(&ytile[r][16 * j]);
            store_row_f32(p, p->y + (m + r) * p->ldy + n0, v, n0, nv);
        }
    }
}

static void tile_avx512(const gemm_problem *p, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
    for (int64_t pan = p0; pan < p1; pan++) {
        const int64_t tiles = (m1 - m0 + p->amr - 1) / p->amr;
        pf_plan pf = {pan + 1 < p1 ? p->wp + (pan + 1) * p->w->kp * NR : NULL, 0, (4 + tiles - 1) / tiles};
        for (int64_t m = m0; m < m1; m += p->amr, pf.tile++) {
            switch (m1 - m < p->amr ? m1 - m : p->amr) {
            case 6: ukernel(p, 6, m, pan, pf); break;
            case 5: ukernel(p, 5, m, pan, pf); break;
            case 4: ukernel(p, 4, m, pan, pf); break;
            case 3: ukernel(p, 3, m, pan, pf); break;
            case 2: ukernel(p, 2, m, pan, pf); break;
            default: ukernel(p, 1, m, pan, pf); break;
            }
        }
    }
}

const GEMM_S8_kernel gemm_s8s8_f32__avx512 = {ISTHMUS_ISA_AVX512, NR, 1, MR, 1, 0, tile_avx512};
const GEMM_S8_kernel gemm_s8s8_s32__avx512 = {ISTHMUS_ISA_AVX512, NR, 1, MR, 1, 0, tile_avx512};
