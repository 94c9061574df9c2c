/*
 * 2:4 sparse matmul, AVX-512 (panels of 16 rows of W, one row per lane; layout in nm24.h).
 * F32: per group, the 4 x values of the group are broadcast to every 128-bit lane and vpermilps picks
 * each lane's two kept columns (index vector = the pack-time nibbles: bits 1:0 = i0, >> 2 = i1); two
 * FMA chains per row of X (first-kept, second-kept) keep decode (M = 1) off the FMA latency.
 * S8: per pair of groups, the 8 bytes x + 128 are broadcast, vpshufb picks each lane's 4 kept
 * columns, one vpdpbusd (u8 x + 128, s8 w) per lane; accumulators start at -128 * sum(w) of the row,
 * so the int32 sum is exact (vpdpbusd wraps modulo 2^32 and the true sum fits int32).
 * Up to 8 rows of X per micro-kernel call, accumulators as named variables (gcc spills vector arrays).
 */
#include "nm24.h"
#include "../core/simd.h"

#define P512 16
#define MR512 8

/* software prefetch distance in elements of the value stream (bytes: 1 KiB s8, 2 KiB f32) */
#ifndef PF_S8
#define PF_S8 1024
#endif
#ifndef PF_F32
#define PF_F32 512
#endif

#define REP8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

static inline __attribute__((always_inline)) void uk_f32_t(const nm24_run_ctx *c, int64_t m0, const int MR,
                                                            int64_t panel, int64_t g0, int64_t g1, float *acc,
                                                            int first) {
    const spmm_problem *p = c->p;
    const float *v = nm24_vals_f32(c->h) + (panel * c->ng + g0) * 2 * P512;
    const uint8_t *ix = nm24_idx(c->h) + (panel * c->ng + g0) * P512;
    const float *x0 = p->x + m0 * p->ldx + 4 * g0;
    const int64_t ldx = p->ldx, ng = g1 - g0;
#define DECL(r) __m512 a##r = _mm512_setzero_ps(), b##r = _mm512_setzero_ps();
    REP8(DECL)
#define INIT(r) if (MR > r && !first) a##r = _mm512_loadu_ps(acc + P512 * r);
    REP8(INIT)
    for (int64_t g = 0; g < ng; g++) {
        _mm_prefetch((const char *)(v + 32 * g + PF_F32), _MM_HINT_T0);
        _mm_prefetch((const char *)(v + 32 * g + 16 + PF_F32), _MM_HINT_T0);
        if ((g & 3) == 0) _mm_prefetch((const char *)(ix + 16 * g + PF_F32 / 8), _MM_HINT_T0);
        __m512 w0 = _mm512_load_ps(v + 32 * g), w1 = _mm512_load_ps(v + 32 * g + 16);
        __m512i i0 = isthmus_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ix + 16 * g)));
        __m512i i1 = _mm512_srli_epi32(i0, 2);
#define ROWF(r)                                                                                  \
        if (MR > r) {                                                                            \
            __m512 xb = _mm512_broadcast_f32x4(_mm_loadu_ps(x0 + r * ldx + 4 * g));              \
            a##r = _mm512_fmadd_ps(w0, isthmus_mm512_permutevar_ps(xb, i0), a##r);               \
            b##r = _mm512_fmadd_ps(w1, isthmus_mm512_permutevar_ps(xb, i1), b##r);               \
        }
        REP8(ROWF)
    }
#define STOREF(r) if (MR > r) _mm512_storeu_ps(acc + P512 * r, _mm512_add_ps(a##r, b##r));
    REP8(STOREF)
#undef DECL
#undef INIT
}

static void uk_f32(const nm24_run_ctx *c, int64_t m0, int mr, int64_t panel, int64_t g0, int64_t g1, float *acc,
                   int first) {
    switch (mr) {
    case 1: uk_f32_t(c, m0, 1, panel, g0, g1, acc, first); break;
    case 2: uk_f32_t(c, m0, 2, panel, g0, g1, acc, first); break;
    case 3: uk_f32_t(c, m0, 3, panel, g0, g1, acc, first); break;
    case 4: uk_f32_t(c, m0, 4, panel, g0, g1, acc, first); break;
    case 5: uk_f32_t(c, m0, 5, panel, g0, g1, acc, first); break;
    case 6: uk_f32_t(c, m0, 6, panel, g0, g1, acc, first); break;
    case 7: uk_f32_t(c, m0, 7, panel, g0, g1, acc, first); break;
    default: uk_f32_t(c, m0, 8, panel, g0, g1, acc, first); break;
    }
}

static inline int64_t load8(const uint8_t *p) {
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* vpshufb control bytes per lane from the pack-time meta bytes: (i0, i1, 4 + i0', 4 + i1') + off, where
 * off = 0 for an even pair (x bytes 0..7 of the broadcast 16) and 8 for an odd one (bytes 8..15) */
static inline __m512i ctrl_of(const uint8_t *mt, int odd) {
    __m512i m = isthmus_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)mt));
    __m512i u = _mm512_or_si512(m, _mm512_slli_epi32(m, 6));
    u = _mm512_or_si512(u, _mm512_slli_epi32(u, 12));
    return _mm512_ternarylogic_epi32(u, _mm512_set1_epi32(0x03030303),
                                     _mm512_set1_epi32(odd ? 0x0C0C0808 : 0x04040000), 0xEA);
}

static inline __attribute__((always_inline)) void uk_s8_t(const nm24_run_ctx *c, int64_t m0, const int MR,
                                                           int64_t panel, int64_t g0, int64_t g1, int32_t *acc,
                                                           int first) {
    const int8_t *v = nm24_vals_s8(c->h) + (panel * c->ng + g0) * 4 * P512;
    const uint8_t *mt = nm24_idx(c->h) + (panel * c->ng + g0) * P512;
    const uint8_t *x0 = c->xs + m0 * c->ldxs + 8 * g0;
    const int64_t ldx = c->ldxs, nq = g1 - g0;
    __m512i init = first ? _mm512_sub_epi32(_mm512_setzero_si512(),
                                            _mm512_loadu_si512((const void *)(nm24_comp(c->h) + panel * P512)))
                         : _mm512_setzero_si512();
#define DECL(r) __m512i a##r = init, b##r = _mm512_setzero_si512();
    REP8(DECL)
#define INIT(r) if (MR > r && !first) a##r = _mm512_loadu_si512((const void *)(acc + P512 * r));
    REP8(INIT)
    int64_t q = 0;
    for (; q + 2 <= nq; q += 2) {
        _mm_prefetch((const char *)(v + 64 * q + PF_S8), _MM_HINT_T0);
        _mm_prefetch((const char *)(v + 64 * q + 64 + PF_S8), _MM_HINT_T0);
        if ((q & 3) == 0) _mm_prefetch((const char *)(mt + 16 * q + PF_S8 / 4), _MM_HINT_T0);
        __m512i w0 = _mm512_load_si512((const void *)(v + 64 * q));
        __m512i w1 = _mm512_load_si512((const void *)(v + 64 * q + 64));
        __m512i c0 = ctrl_of(mt + 16 * q, 0), c1 = ctrl_of(mt + 16 * q + 16, 1);
        /* one 16-byte broadcast (a load, no shuffle uop) serves both pairs */
#define ROWS2(r)                                                                                 \
        if (MR > r) {                                                                            \
            __m512i xb = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(x0 + r * ldx + 8 * q))); \
            a##r = _mm512_dpbusd_epi32(a##r, _mm512_shuffle_epi8(xb, c0), w0);                   \
            b##r = _mm512_dpbusd_epi32(b##r, _mm512_shuffle_epi8(xb, c1), w1);                   \
        }
        REP8(ROWS2)
    }
    if (q < nq) {
        __m512i w0 = _mm512_load_si512((const void *)(v + 64 * q));
        __m512i c0 = ctrl_of(mt + 16 * q, 0);
#define ROWS1(r)                                                                                 \
        if (MR > r) {                                                                            \
            __m512i xb0 = _mm512_set1_epi64(load8(x0 + r * ldx + 8 * q));                        \
            a##r = _mm512_dpbusd_epi32(a##r, _mm512_shuffle_epi8(xb0, c0), w0);                  \
        }
        REP8(ROWS1)
    }
#define STORES(r) if (MR > r) _mm512_storeu_si512((void *)(acc + P512 * r), _mm512_add_epi32(a##r, b##r));
    REP8(STORES)
#undef DECL
#undef INIT
}

static void uk_s8(const nm24_run_ctx *c, int64_t m0, int mr, int64_t panel, int64_t g0, int64_t g1, int32_t *acc,
                  int first) {
    switch (mr) {
    case 1: uk_s8_t(c, m0, 1, panel, g0, g1, acc, first); break;
    case 2: uk_s8_t(c, m0, 2, panel, g0, g1, acc, first); break;
    case 3: uk_s8_t(c, m0, 3, panel, g0, g1, acc, first); break;
    case 4: uk_s8_t(c, m0, 4, panel, g0, g1, acc, first); break;
    case 5: uk_s8_t(c, m0, 5, panel, g0, g1, acc, first); break;
    case 6: uk_s8_t(c, m0, 6, panel, g0, g1, acc, first); break;
    case 7: uk_s8_t(c, m0, 7, panel, g0, g1, acc, first); break;
    default: uk_s8_t(c, m0, 8, panel, g0, g1, acc, first); break;
    }
}

static int64_t avx512_size(const isthmus_sparse_matrix *w) { return nm24_packed_size(w, P512); }
static void avx512_pack(const isthmus_sparse_matrix *w, sparse_hdr *h) {
    nm24_pack(w, h, P512, ISTHMUS_ISA_AVX512);
}
static isthmus_status avx512_run(const spmm_problem *p) {
    nm24_run_ctx c = {.mr_max = MR512, .uk_f32 = uk_f32, .uk_s8 = uk_s8};
    return nm24_run(p, &c, 1, "spmm_24__avx512");
}
static int hdr_ok(const sparse_hdr *h) { return nm24_header_ok(h, P512); }
const SPMM_kernel spmm_24__avx512 = {ISTHMUS_ISA_AVX512, avx512_size, avx512_pack, avx512_run, hdr_ok};
