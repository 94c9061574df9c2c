/*
 * AVX-512 attention kernel. Per chunk of up to 64 keys (4 groups of 16 consecutive slots of one block):
 *   S = Qs . K    K is stored transposed ([head_dim][block_size]), so one vector load holds dimension i
 *                 of 16 keys and each row of S is head_dim broadcast FMAs, no horizontal sums;
 *   online softmax on S (softcap, causal/window mask per row, running max m and sum l);
 *   O += P . V    V rows are contiguous: 4 rows x 64 dims of O stay in 16 registers per key.
 * Rows of one unit share every K and V load: the query heads of a GQA group and the query tokens of a
 * verify step or a prefill tile. Blocks smaller than 16 tokens are gathered into f32 groups first.
 */
#include "kv.h"

#include "core/simd.h"

#define INLINE static inline __attribute__((always_inline))
#define KC ATTN_KC

enum { F32 = ISTHMUS_KV_F32, F16 = ISTHMUS_KV_F16, BF16 = ISTHMUS_KV_BF16, S8 = ISTHMUS_KV_S8 };

INLINE int esz(int dt) { return dt == F32 ? 4 : dt == S8 ? 1 : 2; }

/* 16 consecutive elements of type dt as f32. */
INLINE __m512 ld16(int dt, const uint8_t *p) {
    switch (dt) {
    case F32: return _mm512_loadu_ps((const float *)p);
    case F16: return isthmus_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    case BF16:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(isthmus_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    default: return isthmus_mm512_cvtepi32_ps(isthmus_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
    }
}

/* exp(x) for x <= 0 (or -inf): Cephes-style range reduction and a degree-6 polynomial, |rel err| < 2 ulp;
 * 0 below -87.3 (where f32 exp is subnormal). */
INLINE __m512 exp_neg(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.33654f);
    __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    x = _mm512_max_ps(x, lo);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n));
}

/* cap * tanh(x / cap) as cap * (1 - e) / (1 + e) * sign, e = exp(-2|x|/cap). */
INLINE __m512 softcap16(__m512 x, float cap) {
    __m512 y = _mm512_mul_ps(x, _mm512_set1_ps(1.0f / cap));
    __m512 ay = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(0x7fffffff)));
    __m512 e = exp_neg(_mm512_mul_ps(ay, _mm512_set1_ps(-2.0f)));
    __m512 t = _mm512_div_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), e), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __m512 sgn = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32((int)0x80000000u)));
    t = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), _mm512_castps_si512(sgn)));
    return _mm512_mul_ps(t, _mm512_set1_ps(cap));
}

typedef struct kgroup {
    int64_t base;       /* position of lane 0                                  */
    int32_t j0, j1;     /* lanes holding keys of this unit                     */
    const uint8_t *kt;  /* K^T at (dimension 0, lane 0)                        */
    int64_t kstep;      /* bytes from one dimension to the next                */
    const float *ks;    /* S8: K scales of lanes 0..15                         */
    const uint8_t *v;   /* V row of lane 0                                     */
    const float *vs;    /* S8: V scales of lanes 0..15                         */
} kgroup;

/* S[r][0..16) = sum_i qs[r][i] * K[i][lane] for R rows (two accumulator sets when R <= 8, so at least
 * 8 FMA chains are in flight). */
INLINE void s_group(const int R, const int dt, const float *qs, int d, const kgroup *g, float *S) {
    __m512 a[16], b[16];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) a[r] = b[r] = _mm512_setzero_ps();
    const uint8_t *p = g->kt;
    const int64_t step = g->kstep;
    if (R <= 8) {
        for (int i = 0; i < d; i += 2, p += 2 * step) {
            __m512 k0 = ld16(dt, p), k1 = ld16(dt, p + step);
#pragma GCC unroll 16
            for (int r = 0; r < R; r++) {
                a[r] = _mm512_fmadd_ps(_mm512_set1_ps(qs[r * d + i]), k0, a[r]);
                b[r] = _mm512_fmadd_ps(_mm512_set1_ps(qs[r * d + i + 1]), k1, b[r]);
            }
        }
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) a[r] = _mm512_add_ps(a[r], b[r]);
    } else {
        for (int i = 0; i < d; i++, p += step) {
            __m512 k0 = ld16(dt, p);
#pragma GCC unroll 16
            for (int r = 0; r < R; r++) a[r] = _mm512_fmadd_ps(_mm512_set1_ps(qs[r * d + i]), k0, a[r]);
        }
    }
    if (dt == S8) {
        __m512 ks = _mm512_loadu_ps(g->ks);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) a[r] = _mm512_mul_ps(a[r], ks);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) _mm512_store_ps(S + r * KC, a[r]);
}

INLINE void s_chunk(const int R, const int dt, const float *qs, int d, const kgroup *g, int ng, float *S) {
    for (int gi = 0; gi < ng; gi++) s_group(R, dt, qs, d, &g[gi], S + gi * 16);
}

/* O[rows][dc .. dc + 16*NV) = O * corr + P . V for RP rows. */
INLINE void pv_block(const int RP, const int NV, const int dt, float *O, int d, int dc, const float *P,
                     const float *corr, const kgroup *g, int ng) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int rr = 0; rr < RP; rr++) {
        __m512 c = _mm512_set1_ps(corr[rr]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[rr][v] = _mm512_mul_ps(_mm512_loadu_ps(O + rr * d + dc + 16 * v), c);
    }
    const int e = esz(dt);
    for (int gi = 0; gi < ng; gi++) {
        const uint8_t *vrow = g[gi].v + ((int64_t)g[gi].j0 * d + dc) * e;
        const float *pg = P + gi * 16;
        for (int j = g[gi].j0; j < g[gi].j1; j++, vrow += (int64_t)d * e) {
            __m512 x[4];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) x[v] = ld16(dt, vrow + 16 * v * e);
#pragma GCC unroll 4
            for (int rr = 0; rr < RP; rr++) {
                __m512 pr = _mm512_set1_ps(pg[rr * KC + j]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++) acc[rr][v] = _mm512_fmadd_ps(pr, x[v], acc[rr][v]);
            }
        }
    }
#pragma GCC unroll 4
    for (int rr = 0; rr < RP; rr++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(O + rr * d + dc + 16 * v, acc[rr][v]);
}

INLINE void pv_chunk(const int dt, int R, float *O, int d, const float *P, const float *corr, const kgroup *g,
                     int ng) {
    for (int r0 = 0; r0 < R; r0 += 4) {
        int rp = R - r0 < 4 ? R - r0 : 4;
        for (int dc = 0; dc < d; dc += 64) {
            int nv = (d - dc) / 16 < 4 ? (d - dc) / 16 : 4;
            float *Or = O + (int64_t)r0 * d;
#define PVB(RPv, NVv) \
    if (rp == RPv && nv == NVv) pv_block(RPv, NVv, dt, Or, d, dc, P + r0 * KC, corr + r0, g, ng);
            PVB(1, 1) PVB(1, 2) PVB(1, 3) PVB(1, 4)
            PVB(2, 1) PVB(2, 2) PVB(2, 3) PVB(2, 4)
            PVB(3, 1) PVB(3, 2) PVB(3, 3) PVB(3, 4)
            PVB(4, 1) PVB(4, 2) PVB(4, 3) PVB(4, 4)
#undef PVB
        }
    }
}

/* Valid lanes of group g for a row that sees keys [lo, pos]. */
static inline __mmask16 row_mask(const kgroup *g, int64_t lo, int64_t pos) {
    int64_t a = lo - g->base > g->j0 ? lo - g->base : g->j0;
    int64_t b = pos - g->base + 1 < g->j1 ? pos - g->base + 1 : g->j1;
    if (b <= a) return 0;
    uint32_t m = ((1u << b) - 1u) & ~((1u << a) - 1u);
    return (__mmask16)m;
}

/* Online softmax over the chunk: masks and caps S, updates m and l, writes P (times the V scales for
 * S8) and the factor corr that rescales O. */
INLINE void softmax_chunk(const int dt, const attn_unit *u, const kgroup *g, int ng, float *S, float *P,
                          float *m, float *l, float *corr) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int r = 0; r < u->rows; r++) {
        __m512 vmax = ninf;
        for (int gi = 0; gi < ng; gi++) {
            __m512 x = _mm512_load_ps(S + r * KC + gi * 16);
            if (u->softcap > 0) x = softcap16(x, u->softcap);
            x = _mm512_mask_blend_ps(row_mask(&g[gi], u->lo[r], u->pos[r]), ninf, x);
            _mm512_store_ps(S + r * KC + gi * 16, x);
            vmax = _mm512_max_ps(vmax, x);
        }
        float mx = isthmus_mm512_hmax_ps(vmax);
        float mn = mx > m[r] ? mx : m[r];
        if (mn == -INFINITY) { /* nothing visible to this row in the chunk */
            corr[r] = 1.0f;
            for (int gi = 0; gi < ng; gi++) _mm512_store_ps(P + r * KC + gi * 16, _mm512_setzero_ps());
            continue;
        }
        corr[r] = expf(m[r] - mn);
        __m512 vm = _mm512_set1_ps(mn), sum = _mm512_setzero_ps();
        for (int gi = 0; gi < ng; gi++) {
            __m512 p = exp_neg(_mm512_sub_ps(_mm512_load_ps(S + r * KC + gi * 16), vm));
            sum = _mm512_add_ps(sum, p);
            if (dt == S8) p = _mm512_mul_ps(p, _mm512_loadu_ps(g[gi].vs));
            _mm512_store_ps(P + r * KC + gi * 16, p);
        }
        l[r] = l[r] * corr[r] + isthmus_mm512_hsum_ps(sum);
        m[r] = mn;
    }
}

/* Element i of key/value `slot` of head h in a block, as f32 (the small-block gather). */
static float elem(const kv_state *s, const uint8_t *blk, int32_t h, int32_t slot, int32_t i, int is_k) {
    const int32_t d = s->cfg.head_dim, bs = s->cfg.block_size;
    int64_t at = is_k ? ((int64_t)h * d + i) * bs + slot : ((int64_t)h * bs + slot) * d + i;
    const uint8_t *data = blk + (is_k ? s->k_off : s->v_off);
    float sc = 1.0f;
    if (s->cfg.dtype == S8) sc = ((const float *)(blk + (is_k ? s->ks_off : s->vs_off)))[(int64_t)h * bs + slot];
    switch (s->cfg.dtype) {
    case F32: return ((const float *)data)[at];
    case F16: return f16_to_f32(((const uint16_t *)data)[at]);
    case BF16: return bf16_to_f32(((const uint16_t *)data)[at]);
    default: return (float)((const int8_t *)data)[at] * sc;
    }
}

#define S_CASE(Rv) case Rv: s_chunk(Rv, dtc, qs, d, g, ng, S); break;
#define S_SWITCH(dtc_)                                                                                     \
    do {                                                                                                   \
        const int dtc = (dtc_);                                                                            \
        switch (R) {                                                                                       \
            S_CASE(1) S_CASE(2) S_CASE(3) S_CASE(4) S_CASE(5) S_CASE(6) S_CASE(7) S_CASE(8)                \
            S_CASE(9) S_CASE(10) S_CASE(11) S_CASE(12) S_CASE(13) S_CASE(14) S_CASE(15) S_CASE(16)         \
        }                                                                                                  \
    } while (0)

INLINE void unit_impl(const int dt, const attn_unit *u) {
    const kv_state *s = u->kv;
    const int d = u->head_dim, bs = s->cfg.block_size, R = u->rows, h = u->kv_head, e = esz(dt);
    float *qs = u->scratch;
    float *S = qs + ATTN_MAX_ROWS * d;
    float *P = S + ATTN_MAX_ROWS * KC;
    float *gk = P + ATTN_MAX_ROWS * KC;
    float *gv = gk + 16 * d;
    float *O = u->o, *m = u->m, *l = u->l, corr[ATTN_MAX_ROWS];
    const __m512 sc = _mm512_set1_ps(u->scale);
    for (int r = 0; r < R; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
        for (int i = 0; i < d; i += 16) {
            _mm512_store_ps(qs + r * d + i, _mm512_mul_ps(_mm512_loadu_ps(u->q[r] + i), sc));
            _mm512_storeu_ps(O + r * d + i, _mm512_setzero_ps());
        }
    }
    int64_t kp = u->k_lo;
    kgroup g[4];
    while (kp < u->k_hi) {
        int ng = 0;
        if (bs >= 16) {
            while (ng < 4 && kp < u->k_hi) {
                int64_t b16 = kp & ~(int64_t)15;
                const uint8_t *blk = kv_block(s, u->layer, u->table[b16 / bs]);
                int64_t slot16 = b16 % bs;
                kgroup *gg = &g[ng++];
                gg->base = b16;
                gg->j0 = (int32_t)(kp - b16);
                gg->j1 = (int32_t)(u->k_hi - b16 < 16 ? u->k_hi - b16 : 16);
                gg->kt = blk + s->k_off + ((int64_t)h * d * bs + slot16) * e;
                gg->kstep = (int64_t)bs * e;
                gg->v = blk + s->v_off + ((int64_t)h * bs + slot16) * d * e;
                if (dt == S8) {
                    gg->ks = (const float *)(blk + s->ks_off) + (int64_t)h * bs + slot16;
                    gg->vs = (const float *)(blk + s->vs_off) + (int64_t)h * bs + slot16;
                }
                kp = b16 + gg->j1;
            }
            S_SWITCH(dt);
            softmax_chunk(dt, u, g, ng, S, P, m, l, corr);
            pv_chunk(dt, R, O, d, P, corr, g, ng);
        } else { /* blocks of 1..8 tokens: gather 16 keys into f32 */
            int64_t b16 = kp & ~(int64_t)15;
            kgroup *gg = &g[ng++];
            gg->base = b16;
            gg->j0 = (int32_t)(kp - b16);
            gg->j1 = (int32_t)(u->k_hi - b16 < 16 ? u->k_hi - b16 : 16);
            for (int lane = 0; lane < 16; lane++) {
                int in = lane >= gg->j0 && lane < gg->j1;
                const uint8_t *blk = in ? kv_block(s, u->layer, u->table[(b16 + lane) / bs]) : NULL;
                int32_t slot = (int32_t)((b16 + lane) % bs);
                for (int i = 0; i < d; i++) {
                    gk[i * 16 + lane] = in ? elem(s, blk, h, slot, i, 1) : 0.0f;
                    gv[lane * d + i] = in ? elem(s, blk, h, slot, i, 0) : 0.0f;
                }
            }
            gg->kt = (const uint8_t *)gk;
            gg->kstep = 16 * 4;
            gg->v = (const uint8_t *)gv;
            kp = b16 + gg->j1;
            S_SWITCH(F32);
            softmax_chunk(F32, u, g, ng, S, P, m, l, corr);
            pv_chunk(F32, R, O, d, P, corr, g, ng);
        }
    }
}

static void unit_avx512(const attn_unit *u) {
    switch (u->kv->cfg.dtype) {
    case F32: unit_impl(F32, u); break;
    case F16: unit_impl(F16, u); break;
    case BF16: unit_impl(BF16, u); break;
    default: unit_impl(S8, u); break;
    }
}

const ATTENTION_kernel attention_paged__avx512 = {ISTHMUS_ISA_AVX512, unit_avx512};
