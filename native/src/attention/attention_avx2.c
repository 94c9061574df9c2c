/*
 * AVX2 attention kernel: the algorithm of attention_avx512.c (read that file's comment) with 8-lane
 * vectors: a group of 16 keys is two ymm vectors, S is computed for 4 rows at a time (8 accumulators)
 * and P.V for 4 rows x 16 dimensions (8 accumulators), which fits the 16 ymm registers.
 */
#include "kernel.h"

#include <immintrin.h>

#include "core/exp_avx2.h"
#define INLINE static inline __attribute__((always_inline))



INLINE __m256 ld8(int dt, const uint8_t *p) {
    switch (dt) {
    case F32: return _mm256_loadu_ps((const float *)p);
    case F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    default: return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
    }
}


INLINE __m256 softcap8(__m256 x, float cap) {
    __m256 y = _mm256_mul_ps(x, _mm256_set1_ps(1.0f / cap));
    __m256 sgnmask = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    __m256 ay = _mm256_andnot_ps(sgnmask, y);
    __m256 e = isthmus__exp_neg8(_mm256_mul_ps(ay, _mm256_set1_ps(-2.0f)));
    __m256 t = _mm256_div_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), e), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    t = _mm256_or_ps(t, _mm256_and_ps(y, sgnmask));
    return _mm256_mul_ps(t, _mm256_set1_ps(cap));
}

static inline float hmax8(__m256 v) {
    __m128 b = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_max_ps(b, _mm_movehl_ps(b, b));
    b = _mm_max_ss(b, _mm_shuffle_ps(b, b, 1));
    return _mm_cvtss_f32(b);
}
static inline float hsum8(__m256 v) {
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_shuffle_ps(b, b, 1));
    return _mm_cvtss_f32(b);
}


/* S for RB <= 4 rows and the 16 lanes of one group. */
/* pf: a group of the next chunk or NULL, prefetched into L2 a line or two per iteration. */
INLINE void s_group(const int RB, const int dt, const float *qs, int d, const kgroup *g, const kgroup *pf, float *S) {
    __m256 a[4], b[4];
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++) a[r] = b[r] = _mm256_setzero_ps();
    const uint8_t *p = g->kt;
    const int64_t step = g->kstep, half = 8 * esz(dt);
    const char *pk = pf ? (const char *)pf->kt : NULL, *pv = pf ? (const char *)pf->v : NULL;
    const int64_t pkstep = pf ? pf->kstep : 0;
    if (pf && dt == S8) {
        PREFETCH_L2((const char *)pf->ks);
        PREFETCH_L2((const char *)pf->vs);
    }
    for (int i = 0; i < d; i++, p += step) {
        if (pk) {
            if (dt != S8) PREFETCH_L2(pk + i * pkstep);
            else if ((i & 3) == 0) PREFETCH_L2(pk + (i >> 2) * pkstep);
            PREFETCH_L2(pv + i * 16 * esz(dt));
        }
        __m256 k0, k1;
        if (dt == S8) { /* words of 4 dimensions per key (the VNNI layout): byte i % 4 of 8 words */
            const uint8_t *wp = g->kt + (i >> 2) * step;
            __m128i sh = _mm_cvtsi32_si128(24 - 8 * (i & 3));
            __m256i w0 = _mm256_loadu_si256((const __m256i *)wp), w1 = _mm256_loadu_si256((const __m256i *)(wp + 32));
            k0 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_sll_epi32(w0, sh), 24));
            k1 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_sll_epi32(w1, sh), 24));
        } else {
            k0 = ld8(dt, p);
            k1 = ld8(dt, p + half);
        }
#pragma GCC unroll 4
        for (int r = 0; r < RB; r++) {
            __m256 q = _mm256_broadcast_ss(qs + r * d + i);
            a[r] = _mm256_fmadd_ps(q, k0, a[r]);
            b[r] = _mm256_fmadd_ps(q, k1, b[r]);
        }
    }
    if (dt == S8) {
        __m256 k0 = _mm256_loadu_ps(g->ks), k1 = _mm256_loadu_ps(g->ks + 8);
#pragma GCC unroll 4
        for (int r = 0; r < RB; r++) {
            a[r] = _mm256_mul_ps(a[r], k0);
            b[r] = _mm256_mul_ps(b[r], k1);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++) {
        _mm256_store_ps(S + r * KC, a[r]);
        _mm256_store_ps(S + r * KC + 8, b[r]);
    }
}

INLINE void s_chunk(const int dt, int R, const float *qs, int d, const kgroup *g, int ng, const kgroup *gn, int ngn,
                    float *S) {
    for (int r0 = 0; r0 < R; r0 += 4) {
        int rb = R - r0 < 4 ? R - r0 : 4;
        for (int gi = 0; gi < ng; gi++) {
            const float *q = qs + (int64_t)r0 * d;
            float *Sr = S + r0 * KC + gi * 16;
            const kgroup *pf = r0 == 0 && gi < ngn ? &gn[gi] : NULL;
            switch (rb) {
            case 1: s_group(1, dt, q, d, &g[gi], pf, Sr); break;
            case 2: s_group(2, dt, q, d, &g[gi], pf, Sr); break;
            case 3: s_group(3, dt, q, d, &g[gi], pf, Sr); break;
            default: s_group(4, dt, q, d, &g[gi], pf, Sr); break;
            }
        }
    }
}

/* O[RP rows][dc .. dc + 16) = O * corr + P . V */
INLINE void pv_block(const int RP, const int dt, float *O, int d, int dc, const float *P, const float *corr,
                     const kgroup *g, int ng) {
    __m256 a[4], b[4];
#pragma GCC unroll 4
    for (int rr = 0; rr < RP; rr++) {
        __m256 c = _mm256_set1_ps(corr[rr]);
        a[rr] = _mm256_mul_ps(_mm256_loadu_ps(O + rr * d + dc), c);
        b[rr] = _mm256_mul_ps(_mm256_loadu_ps(O + rr * d + dc + 8), c);
    }
    const int e = esz(dt);
    for (int gi = 0; gi < ng; gi++) {
        const uint8_t *vrow = g[gi].v + ((int64_t)g[gi].j0 * d + dc) * e;
        const float *pg = P + gi * 16;
        for (int j = g[gi].j0; j < g[gi].j1; j++, vrow += (int64_t)d * e) {
            __m256 x0 = ld8(dt, vrow), x1 = ld8(dt, vrow + 8 * e);
#pragma GCC unroll 4
            for (int rr = 0; rr < RP; rr++) {
                __m256 pr = _mm256_broadcast_ss(pg + rr * KC + j);
                a[rr] = _mm256_fmadd_ps(pr, x0, a[rr]);
                b[rr] = _mm256_fmadd_ps(pr, x1, b[rr]);
            }
        }
    }
#pragma GCC unroll 4
    for (int rr = 0; rr < RP; rr++) {
        _mm256_storeu_ps(O + rr * d + dc, a[rr]);
        _mm256_storeu_ps(O + rr * d + dc + 8, b[rr]);
    }
}

INLINE void pv_chunk(const int dt, int R, float *O, int d, const float *P, const float *corr, const kgroup *g,
                     int ng) {
    for (int r0 = 0; r0 < R; r0 += 4) {
        int rp = R - r0 < 4 ? R - r0 : 4;
        float *Or = O + (int64_t)r0 * d;
        for (int dc = 0; dc < d; dc += 16) {
            switch (rp) {
            case 1: pv_block(1, dt, Or, d, dc, P + r0 * KC, corr + r0, g, ng); break;
            case 2: pv_block(2, dt, Or, d, dc, P + r0 * KC, corr + r0, g, ng); break;
            case 3: pv_block(3, dt, Or, d, dc, P + r0 * KC, corr + r0, g, ng); break;
            default: pv_block(4, dt, Or, d, dc, P + r0 * KC, corr + r0, g, ng); break;
            }
        }
    }
}

INLINE __m256 lane_mask(int base_lane, int64_t a, int64_t b) {
    __m256i iota = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(base_lane));
    __m256i ge = _mm256_cmpgt_epi32(iota, _mm256_set1_epi32((int)a - 1));
    __m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)b), iota);
    return _mm256_castsi256_ps(_mm256_and_si256(ge, lt));
}

/* Lanes 0..7 whose bit is set in bits, as an all-ones/all-zeros lane mask. */
INLINE __m256 bits_mask8(uint32_t bits) {
    const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256i x = _mm256_and_si256(_mm256_set1_epi32((int)(bits & 0xffu)), sel);
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(x, sel));
}

INLINE void softmax_chunk(const int dt, const attn_unit *u, const kgroup *g, int ng, float *S, float *P,
                          float *m, float *l, float *corr) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (int r = 0; r < u->rows; r++) {
        __m256 vmax = ninf, nan = _mm256_setzero_ps(); /* visible NaN logits: the max may not show them */
        for (int gi = 0; gi < ng; gi++) {
            int64_t a = u->lo[r] - g[gi].base > g[gi].j0 ? u->lo[r] - g[gi].base : g[gi].j0;
            int64_t b = u->pos[r] - g[gi].base + 1 < g[gi].j1 ? u->pos[r] - g[gi].base + 1 : g[gi].j1;
            if (a < 0) a = 0;
            if (b > 16) b = 16;
            if (b < a) b = a;
            const uint32_t tb = u->tree ? attn_tree_bits16(u, r, g[gi].base) : 0xffffu;
            for (int hh = 0; hh < 2; hh++) {
                float *ps = S + r * KC + gi * 16 + 8 * hh;
                __m256 x = _mm256_load_ps(ps);
                /* a NaN logit stays NaN (softcap's tanh would make it finite), see below */
                if (u->softcap > 0) x = _mm256_blendv_ps(softcap8(x, u->softcap), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
                __m256 vis = lane_mask(8 * hh, a, b);
                if (u->tree) vis = _mm256_and_ps(vis, bits_mask8(tb >> (8 * hh)));
                x = _mm256_blendv_ps(ninf, x, vis);
                nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
                _mm256_store_ps(ps, x);
                vmax = _mm256_max_ps(vmax, x);
            }
        }
        float mx = hmax8(vmax);
        float mn = mx > m[r] ? mx : m[r];
        if (_mm256_movemask_ps(nan) && mn == -INFINITY) mn = 0.0f; /* only NaN visible: keep it below */
        if (mn == -INFINITY) {
            corr[r] = 1.0f;
            for (int i = 0; i < ng * 16; i += 8) _mm256_store_ps(P + r * KC + i, _mm256_setzero_ps());
            continue;
        }
        corr[r] = expf(m[r] - mn);
        __m256 vm = _mm256_set1_ps(mn), sum = _mm256_setzero_ps();
        for (int gi = 0; gi < ng; gi++)
            for (int hh = 0; hh < 2; hh++) {
                int off = r * KC + gi * 16 + 8 * hh;
                /* exp_neg8 gives 0 for NaN: a NaN logit (NaN in q or in a visible key, inf - inf) must make
                 * the row NaN, as in the reference kernel, not drop out of the softmax */
                __m256 dlt = _mm256_sub_ps(_mm256_load_ps(S + off), vm);
                __m256 p = _mm256_blendv_ps(isthmus__exp_neg8(dlt), dlt, _mm256_cmp_ps(dlt, dlt, _CMP_UNORD_Q));
                sum = _mm256_add_ps(sum, p);
                if (dt == S8) p = _mm256_mul_ps(p, _mm256_loadu_ps(g[gi].vs + 8 * hh));
                _mm256_store_ps(P + off, p);
            }
        l[r] = l[r] * corr[r] + hsum8(sum);
        m[r] = mn;
    }
}




INLINE void unit_impl(const int dt, const attn_unit *u) {
    const kv_state *s = u->kv;
    const int d = u->head_dim, bs = s->cfg.block_size, R = u->rows;
    float *qs = u->scratch;
    float *S = qs + ATTN_MAX_ROWS * d;
    float *P = S + ATTN_MAX_ROWS * KC;
    float *gk = P + ATTN_MAX_ROWS * KC;
    float *gv = gk + 16 * d;
    float *O = u->o, *m = u->m, *l = u->l, corr[ATTN_MAX_ROWS];
    const __m256 sc = _mm256_set1_ps(u->scale);
    for (int r = 0; r < R; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
        for (int i = 0; i < d; i += 8) {
            _mm256_store_ps(qs + r * d + i, _mm256_mul_ps(_mm256_loadu_ps(u->q[r] + i), sc));
            _mm256_storeu_ps(O + r * d + i, _mm256_setzero_ps());
        }
    }
    const int masked = attn_unit_masked(u); /* rows that do not see every key: see attn_pv_chunk_visible */
    int64_t kp = u->k_lo;
    kgroup g[4], gn[4];
    memset(g, 0, sizeof g);
    memset(gn, 0, sizeof gn);
    int ng = 0, ngn = 0;
    int64_t kpn = kp;
    if (bs >= 16) {
        kpn = form_groups(dt, u, kp, g, &ng);
        prefetch_groups(dt, d, g, ng);
    }
    while (kp < u->k_hi) {
        if (bs >= 16) {
            /* the chunk after this one streams into L2 while this one computes */
            ngn = 0;
            int64_t kpnn = kpn < u->k_hi ? form_groups(dt, u, kpn, gn, &ngn) : kpn;
            s_chunk(dt, R, qs, d, g, ng, gn, ngn, S);
            softmax_chunk(dt, u, g, ng, S, P, m, l, corr);
            if (masked && attn_groups_v_nonfinite(dt, d, g, ng)) attn_pv_chunk_visible(dt, u, O, d, P, corr, g, ng);
            else pv_chunk(dt, R, O, d, P, corr, g, ng);
            kp = kpn;
            kpn = kpnn;
            memcpy(g, gn, sizeof g);
            ng = ngn;
        } else {
            ng = 1;
            kp = gather_group(u, kp, gk, gv, &g[0]);
            s_chunk(F32, R, qs, d, g, ng, gn, 0, S);
            softmax_chunk(F32, u, g, ng, S, P, m, l, corr);
            if (masked && attn_groups_v_nonfinite(F32, d, g, ng)) attn_pv_chunk_visible(F32, u, O, d, P, corr, g, ng);
            else pv_chunk(F32, R, O, d, P, corr, g, ng);
        }
    }
}

static void unit_avx2(const attn_unit *u) {
    switch (u->kv->cfg.dtype) {
    case F32: unit_impl(F32, u); break;
    case F16: unit_impl(F16, u); break;
    case BF16: unit_impl(BF16, u); break;
    default: unit_impl(S8, u); break;
    }
}

const ATTENTION_kernel attention_paged__avx2 = {ISTHMUS_ISA_AVX2, unit_avx2};
