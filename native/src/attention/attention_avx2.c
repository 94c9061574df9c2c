/*
 * AVX2 attention kernel: the algorithm of attention_avx512.c (read that file's comment) with 8-lane
 * vectors: a group of 16 keys is two ymm vectors, S is computed for 4 rows at a time (8 accumulators)
 * and P.V for 4 rows x 16 dimensions (8 accumulators), which fits the 16 ymm registers.
 */
#include "kv.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))
#define KC ATTN_KC

enum { F32 = ISTHMUS_KV_F32, F16 = ISTHMUS_KV_F16, BF16 = ISTHMUS_KV_BF16, S8 = ISTHMUS_KV_S8 };

INLINE int esz(int dt) { return dt == F32 ? 4 : dt == S8 ? 1 : 2; }

INLINE __m256 ld8(int dt, const uint8_t *p) {
    switch (dt) {
    case F32: return _mm256_loadu_ps((const float *)p);
    case F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    default: return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
    }
}

INLINE __m256 exp_neg(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    x = _mm256_max_ps(x, lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

INLINE __m256 softcap8(__m256 x, float cap) {
    __m256 y = _mm256_mul_ps(x, _mm256_set1_ps(1.0f / cap));
    __m256 sgnmask = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    __m256 ay = _mm256_andnot_ps(sgnmask, y);
    __m256 e = exp_neg(_mm256_mul_ps(ay, _mm256_set1_ps(-2.0f)));
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

typedef struct kgroup {
    int64_t base;
    int32_t j0, j1;
    const uint8_t *kt;
    int64_t kstep;
    const float *ks;
    const uint8_t *v;
    const float *vs;
} kgroup;

/* S for RB <= 4 rows and the 16 lanes of one group. */
INLINE void s_group(const int RB, const int dt, const float *qs, int d, const kgroup *g, float *S) {
    __m256 a[4], b[4];
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++) a[r] = b[r] = _mm256_setzero_ps();
    const uint8_t *p = g->kt;
    const int64_t step = g->kstep, half = 8 * esz(dt);
    for (int i = 0; i < d; i++, p += step) {
        __m256 k0 = ld8(dt, p), k1 = ld8(dt, p + half);
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

INLINE void s_chunk(const int dt, int R, const float *qs, int d, const kgroup *g, int ng, float *S) {
    for (int r0 = 0; r0 < R; r0 += 4) {
        int rb = R - r0 < 4 ? R - r0 : 4;
        for (int gi = 0; gi < ng; gi++) {
            const float *q = qs + (int64_t)r0 * d;
            float *Sr = S + r0 * KC + gi * 16;
            switch (rb) {
            case 1: s_group(1, dt, q, d, &g[gi], Sr); break;
            case 2: s_group(2, dt, q, d, &g[gi], Sr); break;
            case 3: s_group(3, dt, q, d, &g[gi], Sr); break;
            default: s_group(4, dt, q, d, &g[gi], Sr); break;
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

INLINE void softmax_chunk(const int dt, const attn_unit *u, const kgroup *g, int ng, float *S, float *P,
                          float *m, float *l, float *corr) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (int r = 0; r < u->rows; r++) {
        __m256 vmax = ninf;
        for (int gi = 0; gi < ng; gi++) {
            int64_t a = u->lo[r] - g[gi].base > g[gi].j0 ? u->lo[r] - g[gi].base : g[gi].j0;
            int64_t b = u->pos[r] - g[gi].base + 1 < g[gi].j1 ? u->pos[r] - g[gi].base + 1 : g[gi].j1;
            if (a < 0) a = 0;
            if (b > 16) b = 16;
            if (b < a) b = a;
            for (int hh = 0; hh < 2; hh++) {
                float *ps = S + r * KC + gi * 16 + 8 * hh;
                __m256 x = _mm256_load_ps(ps);
                if (u->softcap > 0) x = softcap8(x, u->softcap);
                x = _mm256_blendv_ps(ninf, x, lane_mask(8 * hh, a, b));
                _mm256_store_ps(ps, x);
                vmax = _mm256_max_ps(vmax, x);
            }
        }
        float mx = hmax8(vmax);
        float mn = mx > m[r] ? mx : m[r];
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
                __m256 p = exp_neg(_mm256_sub_ps(_mm256_load_ps(S + off), vm));
                sum = _mm256_add_ps(sum, p);
                if (dt == S8) p = _mm256_mul_ps(p, _mm256_loadu_ps(g[gi].vs + 8 * hh));
                _mm256_store_ps(P + off, p);
            }
        l[r] = l[r] * corr[r] + hsum8(sum);
        m[r] = mn;
    }
}

static float elem(const kv_state *s, const uint8_t *blk, int32_t h, int32_t slot, int32_t i, int is_k) {
    const int32_t d = s->cfg.head_dim, bs = s->cfg.block_size;
    int64_t at = is_k ? ((int64_t)h * d + i) * bs + slot : ((int64_t)h * bs + slot) * d + i;
    const uint8_t *data = blk + (is_k ? s->k_off : s->v_off);
    switch (s->cfg.dtype) {
    case F32: return ((const float *)data)[at];
    case F16: return f16_to_f32(((const uint16_t *)data)[at]);
    case BF16: return bf16_to_f32(((const uint16_t *)data)[at]);
    default:
        return (float)((const int8_t *)data)[at] *
               ((const float *)(blk + (is_k ? s->ks_off : s->vs_off)))[(int64_t)h * bs + slot];
    }
}

INLINE void unit_impl(const int dt, const attn_unit *u) {
    const kv_state *s = u->kv;
    const int d = u->head_dim, bs = s->cfg.block_size, R = u->rows, h = u->kv_head, e = esz(dt);
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
    int64_t kp = u->k_lo;
    kgroup g[4];
    memset(g, 0, sizeof g);
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
            s_chunk(dt, R, qs, d, g, ng, S);
            softmax_chunk(dt, u, g, ng, S, P, m, l, corr);
            pv_chunk(dt, R, O, d, P, corr, g, ng);
        } else {
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
            s_chunk(F32, R, qs, d, g, ng, S);
            softmax_chunk(F32, u, g, ng, S, P, m, l, corr);
            pv_chunk(F32, R, O, d, P, corr, g, ng);
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
