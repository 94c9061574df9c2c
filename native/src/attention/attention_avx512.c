/*
 * AVX-512 attention kernel. Per chunk of up to 64 keys (4 groups of 16 consecutive slots of one block):
 *   S = Qs . K    K is stored transposed ([head_dim][block_size]), so one vector load holds dimension i
 *                 of 16 keys and each row of S is head_dim broadcast FMAs, no horizontal sums;
 *   online softmax on S (softcap, causal/window mask per row, running max m and sum l);
 *   O += P . V    V rows are contiguous: 4 rows x 64 dims of O stay in 16 registers per key.
 * Rows of one unit share every K and V load: the query heads of a GQA group and the query tokens of a
 * verify step or a prefill tile. Blocks smaller than 16 tokens are gathered into f32 groups first.
 */
#include "kernel.h"

#include <float.h>

#include "core/simd.h"

#include "core/exp_avx512.h"
#define INLINE static inline __attribute__((always_inline))



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


/* cap * tanh(x / cap) as cap * (1 - e) / (1 + e) * sign, e = exp(-2|x|/cap). */
INLINE __m512 softcap16(__m512 x, float cap) {
    __m512 y = _mm512_mul_ps(x, _mm512_set1_ps(1.0f / cap));
    __m512 ay = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(0x7fffffff)));
    __m512 e = isthmus__exp_neg16(_mm512_mul_ps(ay, _mm512_set1_ps(-2.0f)));
    __m512 t = _mm512_div_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), e), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __m512 sgn = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32((int)0x80000000u)));
    t = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), _mm512_castps_si512(sgn)));
    return _mm512_mul_ps(t, _mm512_set1_ps(cap));
}


/* S[r][0..16) = sum_i qs[r][i] * K[i][lane] for R <= 8 rows, two accumulator sets (even and odd i) so at
 * least 8 FMA chains are in flight even for R = 4. */
/* pf: a group of the next chunk, or NULL; its K and V lines are prefetched into L2 a few per iteration,
 * evenly spread over the loop (a burst would fill the miss buffers and stall the loads this loop needs). */
INLINE void s_group(const int R, const int dt, const float *qs, int d, const kgroup *g, const kgroup *pf, float *S) {
    __m512 a[16], b[16];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) a[r] = b[r] = _mm512_setzero_ps();
    const uint8_t *p = g->kt;
    const int64_t step = g->kstep;
    const char *pk = pf ? (const char *)pf->kt : NULL;
    const int64_t pkstep = pf ? pf->kstep : 0;
    {
        for (int i = 0; i < d; i += 2, p += 2 * step) {
            if (pk) { /* the group's K over the loop (its V: in pv_block) */
                if (pkstep == 16 * esz(dt)) { /* block of 16: K is d * 16 * e contiguous bytes, 32 * e per iteration */
                    const char *at = pk + (int64_t)i * 16 * esz(dt);
                    if (esz(dt) >= 2 || (i & 2) == 0) PREFETCH_L2(at);
                    if (esz(dt) == 4) PREFETCH_L2(at + 64);
                } else {
                    PREFETCH_L2(pk + i * pkstep);
                    PREFETCH_L2(pk + (i + 1) * pkstep);
                }
            }
            __m512 k0 = ld16(dt, p), k1 = ld16(dt, p + step);
#pragma GCC unroll 16
            for (int r = 0; r < R; r++) {
                a[r] = _mm512_fmadd_ps(_mm512_set1_ps(qs[r * d + i]), k0, a[r]);
                b[r] = _mm512_fmadd_ps(_mm512_set1_ps(qs[r * d + i + 1]), k1, b[r]);
            }
        }
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) a[r] = _mm512_add_ps(a[r], b[r]);
    }
    if (dt == S8) {
        __m512 ks = _mm512_loadu_ps(g->ks);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) a[r] = _mm512_mul_ps(a[r], ks);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) _mm512_store_ps(S + r * KC, a[r]);
}

INLINE void s_chunk(const int R, const int dt, const float *qs, int d, const kgroup *g, int ng, const kgroup *gn,
                    int ngn, float *S) {
    for (int gi = 0; gi < ng; gi++) s_group(R, dt, qs, d, &g[gi], gi < ngn ? &gn[gi] : NULL, S + gi * 16);
}

/* O[rows][dc .. dc + 16*NV) = O * corr + P . V for RP rows. */
/* pf (or NULL): groups whose V lines are prefetched, e lines per key (with the S loop prefetching their
 * K, the next-but-one chunk streams in evenly over the whole of this chunk's work). */
INLINE void pv_block(const int RP, const int NV, const int dt, float *O, int d, int dc, const float *P,
                     const float *corr, const kgroup *g, int ng, const kgroup *pf, int npf) {
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
        const char *pv = gi < npf ? (const char *)pf[gi].v : NULL;
        const int npass = (d + 63) / 64, pass = dc / 64;
        for (int j = g[gi].j0; j < g[gi].j1; j++, vrow += (int64_t)d * e) {
            if (pv)
                for (int t = 0; t < e; t++) PREFETCH_L2(pv + ((int64_t)(j * npass + pass) * e + t) * 64);
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
                     int ng, const kgroup *pf, int npf) {
    for (int r0 = 0; r0 < R; r0 += 4) {
        int rp = R - r0 < 4 ? R - r0 : 4;
        for (int dc = 0; dc < d; dc += 64) {
            int nv = (d - dc) / 16 < 4 ? (d - dc) / 16 : 4;
            float *Or = O + (int64_t)r0 * d;
#define PVB(RPv, NVv) \
    if (rp == RPv && nv == NVv) pv_block(RPv, NVv, dt, Or, d, dc, P + r0 * KC, corr + r0, g, ng, pf, r0 ? 0 : npf);
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
        __mmask16 nan = 0; /* visible NaN logits: the max below may not show them */
        for (int gi = 0; gi < ng; gi++) {
            __m512 x = _mm512_load_ps(S + r * KC + gi * 16);
            /* a NaN logit stays NaN (softcap's tanh would make it finite), see below */
            if (u->softcap > 0) x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), softcap16(x, u->softcap), x);
            __mmask16 vis = row_mask(&g[gi], u->lo[r], u->pos[r]);
            if (u->tree) vis &= (__mmask16)attn_tree_bits16(u, r, g[gi].base);
            x = _mm512_mask_blend_ps(vis, ninf, x);
            nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
            _mm512_store_ps(S + r * KC + gi * 16, x);
            vmax = _mm512_max_ps(vmax, x);
        }
        float mx = isthmus_mm512_hmax_ps(vmax);
        float mn = mx > m[r] ? mx : m[r];
        if (nan && mn == -INFINITY) mn = 0.0f; /* only NaN visible: run the pass below, which keeps it */
        if (mn == -INFINITY) { /* nothing visible to this row in the chunk */
            corr[r] = 1.0f;
            for (int gi = 0; gi < ng; gi++) _mm512_store_ps(P + r * KC + gi * 16, _mm512_setzero_ps());
            continue;
        }
        corr[r] = expf(m[r] - mn);
        __m512 vm = _mm512_set1_ps(mn), sum = _mm512_setzero_ps();
        for (int gi = 0; gi < ng; gi++) {
            /* exp_neg16 gives 0 for NaN: a NaN logit (NaN in q or in a visible key, inf - inf) must make
             * the row NaN, as in the reference kernel, not drop out of the softmax */
            __m512 dlt = _mm512_sub_ps(_mm512_load_ps(S + r * KC + gi * 16), vm);
            __m512 p = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(dlt, dlt, _CMP_UNORD_Q), isthmus__exp_neg16(dlt), dlt);
            sum = _mm512_add_ps(sum, p);
            if (dt == S8) p = _mm512_mul_ps(p, _mm512_loadu_ps(g[gi].vs));
            _mm512_store_ps(P + r * KC + gi * 16, p);
        }
        l[r] = l[r] * corr[r] + isthmus_mm512_hsum_ps(sum);
        m[r] = mn;
    }
}


#define S_CASE(Rv) case Rv: s_chunk(Rv, dtc, qs + (int64_t)r0 * d, d, g, ng, gn, r0 ? 0 : ngn, S + r0 * KC); break;
/* S for all R rows, at most 8 at a time (16 accumulators): R > 8 runs as 8 + the rest, reloading K from L1. */
#define S_SWITCH(dtc_)                                                                                     \
    do {                                                                                                   \
        const int dtc = (dtc_);                                                                            \
        for (int r0 = 0; r0 < R; r0 += 8) {                                                                \
            switch (R - r0 < 8 ? R - r0 : 8) {                                                             \
                S_CASE(1) S_CASE(2) S_CASE(3) S_CASE(4) S_CASE(5) S_CASE(6) S_CASE(7) S_CASE(8)            \
            }                                                                                              \
        }                                                                                                  \
    } while (0)


/* int8 K: S = sq * ks * (sum over words of (k ^ 0x80) . qq - 128 * sum(qq)), with q rounded to int8 per row
 * (qq = rne(q * scale / sq), sq = max|q * scale| / 127). vpdpbusd multiplies 4 unsigned bytes (k + 128) by
 * 4 signed ones (qq) per lane: one instruction per 4 dimensions of 16 keys. */
INLINE void s_group_s8(const int R, const int32_t *qq, int d, const kgroup *g, const kgroup *pf, const float *sq,
                       const int32_t *comp, float *S) {
    __m512i a[8], b[8];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) a[r] = b[r] = _mm512_setzero_si512();
    const uint8_t *p = g->kt;
    const int64_t step = g->kstep;
    const char *pk = pf ? (const char *)pf->kt : NULL;
    if (pf) { /* the scales of that group too: a miss on them stalls the whole group */
        PREFETCH_L2((const char *)pf->ks);
        PREFETCH_L2((const char *)pf->vs);
    }
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    const int words = d / 4;
    for (int w = 0; w < words; w += 2, p += 2 * step) {
        if (pk) {
            PREFETCH_L2(pk + w * step);
            PREFETCH_L2(pk + (w + 1) * step);
        }
        __m512i k0 = _mm512_xor_si512(_mm512_loadu_si512((const void *)p), x80);
        __m512i k1 = _mm512_xor_si512(_mm512_loadu_si512((const void *)(p + step)), x80);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            a[r] = _mm512_dpbusd_epi32(a[r], k0, _mm512_set1_epi32(qq[r * words + w]));
            b[r] = _mm512_dpbusd_epi32(b[r], k1, _mm512_set1_epi32(qq[r * words + w + 1]));
        }
    }
    __m512 ks = _mm512_loadu_ps(g->ks);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        __m512i acc = _mm512_sub_epi32(_mm512_add_epi32(a[r], b[r]), _mm512_set1_epi32(comp[r]));
        _mm512_store_ps(S + r * KC, _mm512_mul_ps(isthmus_mm512_cvtepi32_ps(acc), _mm512_mul_ps(ks, _mm512_set1_ps(sq[r]))));
    }
}

INLINE void s_chunk_s8(const int R, const int32_t *qq, int d, const kgroup *g, int ng, const kgroup *gn, int ngn,
                       const float *sq, const int32_t *comp, float *S) {
    for (int gi = 0; gi < ng; gi++) s_group_s8(R, qq, d, &g[gi], gi < ngn ? &gn[gi] : NULL, sq, comp, S + gi * 16);
}

#define S8_CASE(Rv) case Rv: s_chunk_s8(Rv, qq + (int64_t)r0 * (d / 4), d, g, ng, gn, r0 ? 0 : ngn, sq + r0, comp + r0, S + r0 * KC); break;
#define S8_SWITCH()                                                                                        \
    do {                                                                                                   \
        for (int r0 = 0; r0 < R; r0 += 8) {                                                                \
            switch (R - r0 < 8 ? R - r0 : 8) {                                                             \
                S8_CASE(1) S8_CASE(2) S8_CASE(3) S8_CASE(4) S8_CASE(5) S8_CASE(6) S8_CASE(7) S8_CASE(8)    \
            }                                                                                              \
        }                                                                                                  \
    } while (0)


INLINE void unit_impl(const int dt, const attn_unit *u) {
    const kv_state *s = u->kv;
    const int d = u->head_dim, bs = s->cfg.block_size, R = u->rows;
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
    /* int8 K (blocks of 16 or more): q rounded to int8 per row for the VNNI dot products */
    int32_t *qq = (int32_t *)gk, comp[ATTN_MAX_ROWS];
    float sq[ATTN_MAX_ROWS];
    if (dt == S8 && bs >= 16) {
        for (int r = 0; r < R; r++) {
            float amax = 0;
            int finite = 1;
            for (int i = 0; i < d; i++) {
                float a = fabsf(qs[r * d + i]);
                finite &= a <= FLT_MAX;
                amax = fmaxf(amax, a);
            }
            sq[r] = finite ? amax / 127.0f : NAN; /* a NaN or infinite query row: every logit NaN */
            float inv = finite && amax > 0 ? 127.0f / amax : 0.0f;
            int32_t sum = 0;
            int8_t *qb = (int8_t *)(qq + (int64_t)r * (d / 4));
            for (int i = 0; i < d; i++) {
                float t = qs[r * d + i] * inv;
                int v = t >= 127.0f ? 127 : t <= -127.0f ? -127 : t == t ? (int)nearbyintf(t) : 0;
                qb[i] = (int8_t)v;
                sum += v;
            }
            comp[r] = 128 * sum;
        }
    }
    const int masked = attn_unit_masked(u); /* rows that do not see every key: see attn_pv_chunk_visible */
    int64_t kp = u->k_lo;
    /* g: this chunk; g1: the next (prefetched in bulk when it became next... see below); g2: the one after,
     * prefetched into L2 a few lines per S iteration while this chunk computes (distance 2 chunks). */
    kgroup g[4], g1[4], g2[4];
    memset(g, 0, sizeof g);
    memset(g1, 0, sizeof g1);
    memset(g2, 0, sizeof g2);
    int ng = 0, ng1 = 0, ngn = 0;
    int64_t kp1 = kp, kp2 = kp;
    if (bs >= 16) {
        kp1 = form_groups(dt, u, kp, g, &ng);
        prefetch_groups(dt, d, g, ng);
        kp2 = kp1 < u->k_hi ? form_groups(dt, u, kp1, g1, &ng1) : kp1;
        prefetch_groups(dt, d, g1, ng1);
    }
    kgroup *gn = g2;
    while (kp < u->k_hi) {
        if (bs >= 16) {
            ngn = 0;
            int64_t kp3 = kp2 < u->k_hi ? form_groups(dt, u, kp2, g2, &ngn) : kp2;
            if (dt == S8) S8_SWITCH();
            else S_SWITCH(dt);
            softmax_chunk(dt, u, g, ng, S, P, m, l, corr);
            if (masked && attn_groups_v_nonfinite(dt, d, g, ng)) attn_pv_chunk_visible(dt, u, O, d, P, corr, g, ng);
            else pv_chunk(dt, R, O, d, P, corr, g, ng, g2, ngn);
            kp = kp1;
            kp1 = kp2;
            kp2 = kp3;
            memcpy(g, g1, sizeof g);
            ng = ng1;
            memcpy(g1, g2, sizeof g1);
            ng1 = ngn;
        } else { /* blocks of 1..8 tokens: gather 16 keys into f32 */
            ng = 1;
            kp = gather_group(u, kp, gk, gv, &g[0]);
            ngn = 0;
            S_SWITCH(F32);
            softmax_chunk(F32, u, g, ng, S, P, m, l, corr);
            if (masked && attn_groups_v_nonfinite(F32, d, g, ng)) attn_pv_chunk_visible(F32, u, O, d, P, corr, g, ng);
            else pv_chunk(F32, R, O, d, P, corr, g, ng, g2, 0);
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
