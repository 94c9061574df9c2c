/*
 * 2:4 sparse matmul, AVX2 (panels of 8 rows of W, one row per lane; layout in nm24.h).
 * F32: the group's 4 x values broadcast to both 128-bit lanes, vpermilps picks each lane's kept
 * columns; two FMA chains per row of X. S8: the pair's 8 x bytes broadcast, vpshufb picks each lane's
 * 4 kept columns, then maddubs(|x|, sign(w, x)) + madd(ones): exact because |x| <= 128 and
 * |w| <= 127 keep each int16 pair sum <= 32512. Up to 4 rows of X per micro-kernel call.
 */
#include "nm24.h"

#include <immintrin.h>

#define P2 8
#define MR2 4

#define REP4(X) X(0) X(1) X(2) X(3)

static inline __attribute__((always_inline)) void uk_f32_t(const nm24_run_ctx *c, int64_t m0, const int MR,
                                                            int64_t panel, int64_t g0, int64_t g1, float *acc,
                                                            int first) {
    const spmm_problem *p = c->p;
    const float *v = nm24_vals_f32(c->h) + (panel * c->ng + g0) * 2 * P2;
    const uint8_t *ix = nm24_idx(c->h) + (panel * c->ng + g0) * P2;
    const float *x0 = p->x + m0 * p->ldx + 4 * g0;
    const int64_t ldx = p->ldx, ng = g1 - g0;
#define DECL(r) __m256 a##r = _mm256_setzero_ps(), b##r = _mm256_setzero_ps();
    REP4(DECL)
#define INIT(r) if (MR > r && !first) a##r = _mm256_loadu_ps(acc + P2 * r);
    REP4(INIT)
    for (int64_t g = 0; g < ng; g++) {
        __m256 w0 = _mm256_load_ps(v + 16 * g), w1 = _mm256_load_ps(v + 16 * g + 8);
        __m256i i0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ix + 8 * g)));
        __m256i i1 = _mm256_srli_epi32(i0, 2);
#define ROWF(r)                                                                                  \
        if (MR > r) {                                                                            \
            __m256 xb = _mm256_broadcast_ps((const __m128 *)(x0 + r * ldx + 4 * g));             \
            a##r = _mm256_fmadd_ps(w0, _mm256_permutevar_ps(xb, i0), a##r);                      \
            b##r = _mm256_fmadd_ps(w1, _mm256_permutevar_ps(xb, i1), b##r);                      \
        }
        REP4(ROWF)
    }
#define STOREF(r) if (MR > r) _mm256_storeu_ps(acc + P2 * r, _mm256_add_ps(a##r, b##r));
    REP4(STOREF)
#undef DECL
#undef INIT
}

static void uk_f32(const nm24_run_ctx *c, int64_t m0, int mr, int64_t panel, int64_t g0, int64_t g1, float *acc,
                   int first) {
    switch (mr) {
    case 1: uk_f32_t(c, m0, 1, panel, g0, g1, acc, first); break;
    case 2: uk_f32_t(c, m0, 2, panel, g0, g1, acc, first); break;
    case 3: uk_f32_t(c, m0, 3, panel, g0, g1, acc, first); break;
    default: uk_f32_t(c, m0, 4, panel, g0, g1, acc, first); break;
    }
}

static inline int64_t load8(const uint8_t *p) {
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline __attribute__((always_inline)) void uk_s8_t(const nm24_run_ctx *c, int64_t m0, const int MR,
                                                           int64_t panel, int64_t g0, int64_t g1, int32_t *acc,
                                                           int first) {
    const int8_t *v = nm24_vals_s8(c->h) + (panel * c->ng + g0) * 4 * P2;
    const uint8_t *mt = nm24_idx(c->h) + (panel * c->ng + g0) * P2;
    const uint8_t *x0 = c->xs + m0 * c->ldxs + 8 * g0;
    const int64_t ldx = c->ldxs, nq = g1 - g0;
    const __m256i ones = _mm256_set1_epi16(1), m3 = _mm256_set1_epi32(0x03030303),
                  hi4 = _mm256_set1_epi32(0x04040000);
#define DECL(r) __m256i a##r = _mm256_setzero_si256();
    REP4(DECL)
#define INIT(r) if (MR > r && !first) a##r = _mm256_loadu_si256((const __m256i *)(acc + P2 * r));
    REP4(INIT)
    for (int64_t q = 0; q < nq; q++) {
        __m256i w = _mm256_load_si256((const __m256i *)(v + 32 * q));
        __m256i m = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(mt + 8 * q)));
        __m256i u = _mm256_or_si256(m, _mm256_slli_epi32(m, 6));
        u = _mm256_or_si256(u, _mm256_slli_epi32(u, 12));
        __m256i ctrl = _mm256_or_si256(_mm256_and_si256(u, m3), hi4);
#define ROWS(r)                                                                                  \
        if (MR > r) {                                                                            \
            __m256i xs = _mm256_shuffle_epi8(_mm256_set1_epi64x(load8(x0 + r * ldx + 8 * q)), ctrl); \
            __m256i pr = _mm256_maddubs_epi16(_mm256_abs_epi8(xs), _mm256_sign_epi8(w, xs));     \
            a##r = _mm256_add_epi32(a##r, _mm256_madd_epi16(pr, ones));                          \
        }
        REP4(ROWS)
    }
#define STORES(r) if (MR > r) _mm256_storeu_si256((__m256i *)(acc + P2 * r), a##r);
    REP4(STORES)
#undef DECL
#undef INIT
}

static void uk_s8(const nm24_run_ctx *c, int64_t m0, int mr, int64_t panel, int64_t g0, int64_t g1, int32_t *acc,
                  int first) {
    switch (mr) {
    case 1: uk_s8_t(c, m0, 1, panel, g0, g1, acc, first); break;
    case 2: uk_s8_t(c, m0, 2, panel, g0, g1, acc, first); break;
    case 3: uk_s8_t(c, m0, 3, panel, g0, g1, acc, first); break;
    default: uk_s8_t(c, m0, 4, panel, g0, g1, acc, first); break;
    }
}

static int64_t avx2_size(const isthmus_sparse_matrix *w) { return nm24_packed_size(w, P2); }
static void avx2_pack(const isthmus_sparse_matrix *w, sparse_hdr *h) { nm24_pack(w, h, P2, ISTHMUS_ISA_AVX2); }
static isthmus_status avx2_run(const spmm_problem *p) {
    nm24_run_ctx c = {.mr_max = MR2, .uk_f32 = uk_f32, .uk_s8 = uk_s8};
    return nm24_run(p, &c, 0, "spmm_24__avx2");
}
static int hdr_ok(const sparse_hdr *h) { return nm24_header_ok(h, P2); }
const SPMM_kernel spmm_24__avx2 = {ISTHMUS_ISA_AVX2, avx2_size, avx2_pack, avx2_run, hdr_ok};
