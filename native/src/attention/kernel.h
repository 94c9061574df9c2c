/* Helpers shared by the SIMD attention kernels (attention_avx2.c, attention_avx512.c): how a chunk of
 * keys is cut into groups of 16 slots, their prefetch, and the f32 gather for blocks of fewer than 16
 * tokens. ISA-neutral C (prefetch through __builtin_prefetch), so both files include it. */
#ifndef ISTHMUS_ATTENTION_KERNEL_H
#define ISTHMUS_ATTENTION_KERNEL_H

#include "kv.h"

#define KC ATTN_KC

enum { F32 = ISTHMUS_KV_F32, F16 = ISTHMUS_KV_F16, BF16 = ISTHMUS_KV_BF16, S8 = ISTHMUS_KV_S8 };

static inline __attribute__((always_inline)) int esz(int dt) { return dt == F32 ? 4 : dt == S8 ? 1 : 2; }

/* prefetcht1: into L2 */
#define PREFETCH_L2(p) __builtin_prefetch((const void *)(p), 0, 2)

typedef struct kgroup {
    int64_t base;       /* position of lane 0                                  */
    int32_t j0, j1;     /* lanes holding keys of this unit                     */
    const uint8_t *kt;  /* K^T at (dimension 0, lane 0); int8: word row 0      */
    int64_t kstep;      /* bytes from one dimension (int8: word row) to the next */
    const float *ks;    /* S8: K scales of lanes 0..15                         */
    const uint8_t *v;   /* V row of lane 0                                     */
    const float *vs;    /* S8: V scales of lanes 0..15                         */
} kgroup;

/* Up to 4 groups of 16 slots from key kp on (blocks of 16 tokens or more); returns the key after them. */
static inline int64_t form_groups(const int dt, const attn_unit *u, int64_t kp, kgroup *g, int *ng) {
    const kv_state *s = u->kv;
    const int d = u->head_dim, bs = s->cfg.block_size, h = u->kv_head, e = esz(dt);
    int n = 0;
    while (n < 4 && kp < u->k_hi) {
        int64_t b16 = kp & ~(int64_t)15;
        const uint8_t *blk = kv_block(s, u->layer, u->table[b16 / bs]);
        int64_t slot16 = b16 % bs;
        kgroup *gg = &g[n++];
        gg->base = b16;
        gg->j0 = (int32_t)(kp - b16);
        gg->j1 = (int32_t)(u->k_hi - b16 < 16 ? u->k_hi - b16 : 16);
        gg->kt = blk + s->k_off + ((int64_t)h * d * bs + slot16) * e;
        gg->kstep = (int64_t)bs * e;
        gg->v = blk + s->v_off + ((int64_t)h * bs + slot16) * d * e;
        if (dt == S8) { /* K words of 4 dimensions: word row w of the group at kt + w * kstep */
            gg->kt = blk + s->k_off + (int64_t)h * d * bs + slot16 * 4;
            gg->kstep = (int64_t)bs * 4;
            gg->ks = (const float *)(blk + s->ks_off) + (int64_t)h * bs + slot16;
            gg->vs = (const float *)(blk + s->vs_off) + (int64_t)h * bs + slot16;
        }
        kp = b16 + gg->j1;
    }
    *ng = n;
    return kp;
}

/* Prefetches the K and V bytes of the groups into L2 (in a burst: only for a unit's first chunks). */
static inline void prefetch_groups(const int dt, int d, const kgroup *g, int ng) {
    const int e = esz(dt);
    for (int gi = 0; gi < ng; gi++) {
        const char *k = (const char *)g[gi].kt;
        if (dt == S8) {
            for (int w = 0; w < d / 4; w++) PREFETCH_L2(k + w * g[gi].kstep);
        } else if (g[gi].kstep == 16 * e) { /* block of 16: K of the group is contiguous */
            for (int64_t off = 0; off < (int64_t)d * 16 * e; off += 64) PREFETCH_L2(k + off);
        } else {
            for (int i = 0; i < d; i++) PREFETCH_L2(k + i * g[gi].kstep);
        }
        const char *v = (const char *)g[gi].v;
        for (int64_t off = 0; off < (int64_t)d * 16 * e; off += 64) PREFETCH_L2(v + off);
        if (dt == S8) {
            PREFETCH_L2(g[gi].ks);
            PREFETCH_L2(g[gi].vs);
        }
    }
}

/* Blocks of 1..8 tokens: the 16 slots from key kp on (aligned down to 16), gathered across blocks into
 * f32 K^T gk[d][16] and V gv[16][d] (int8 scaled; unused lanes 0), described by *g. Returns the key
 * after them. */
static inline int64_t gather_group(const attn_unit *u, int64_t kp, float *gk, float *gv, kgroup *g) {
    const kv_state *s = u->kv;
    const int d = u->head_dim, bs = s->cfg.block_size, h = u->kv_head;
    int64_t b16 = kp & ~(int64_t)15;
    g->base = b16;
    g->j0 = (int32_t)(kp - b16);
    g->j1 = (int32_t)(u->k_hi - b16 < 16 ? u->k_hi - b16 : 16);
    for (int lane = 0; lane < 16; lane++) {
        int in = lane >= g->j0 && lane < g->j1;
        const uint8_t *blk = in ? kv_block(s, u->layer, u->table[(b16 + lane) / bs]) : NULL;
        int32_t slot = (int32_t)((b16 + lane) % bs);
        for (int i = 0; i < d; i++) {
            gk[i * 16 + lane] = in ? kv_elem(s, blk, h, slot, i, 1) : 0.0f;
            gv[lane * d + i] = in ? kv_elem(s, blk, h, slot, i, 0) : 0.0f;
        }
    }
    g->kt = (const uint8_t *)gk;
    g->kstep = 16 * 4;
    g->v = (const uint8_t *)gv;
    return b16 + g->j1;
}

/* The P.V loops of the SIMD kernels run over whole groups: a key that a row does not see (causal, window
 * or tree mask) has P = 0 there, and 0 x inf or 0 x NaN in its V would still reach the row. So a unit
 * whose rows do not all see every key of [k_lo, k_hi) checks each chunk's V (lanes j0..j1) first and,
 * when one is NaN or infinite (rare: finite caches never pay more than this scan), runs that chunk's
 * P.V in scalar code over the keys each row sees, as the reference kernel does. */
static inline int attn_unit_masked(const attn_unit *u) {
    if (u->tree) return 1;
    for (int r = 0; r < u->rows; r++)
        if (u->lo[r] > u->k_lo || u->pos[r] + 1 < u->k_hi) return 1;
    return 0;
}

static inline int attn_groups_v_nonfinite(const int dt, int d, const kgroup *g, int ng) {
    if (dt == S8) return 0; /* int8 values and the finite scales the append stores */
    const int e = esz(dt);
    uint32_t bad = 0;
    for (int gi = 0; gi < ng; gi++) {
        const uint8_t *v = g[gi].v + (int64_t)g[gi].j0 * d * e;
        const int64_t n = (int64_t)(g[gi].j1 - g[gi].j0) * d;
        if (dt == F32) {
            const uint32_t *x = (const uint32_t *)v;
            for (int64_t i = 0; i < n; i++) bad |= (x[i] & 0x7f800000u) == 0x7f800000u;
        } else {
            const uint16_t *x = (const uint16_t *)v, em = dt == F16 ? 0x7c00u : 0x7f80u;
            for (int64_t i = 0; i < n; i++) bad |= (x[i] & em) == em;
        }
    }
    return bad != 0;
}

static inline void attn_pv_chunk_visible(const int dt, const attn_unit *u, float *O, int d, const float *P,
                                         const float *corr, const kgroup *g, int ng) {
    const int e = esz(dt);
    for (int r = 0; r < u->rows; r++) {
        float *o = O + (int64_t)r * d;
        for (int i = 0; i < d; i++) o[i] *= corr[r];
        for (int gi = 0; gi < ng; gi++)
            for (int j = g[gi].j0; j < g[gi].j1; j++) {
                const int64_t kp = g[gi].base + j;
                if (kp < u->lo[r] || kp > u->pos[r]) continue;
                if (u->tree && kp >= u->tree_base) {
                    const int64_t b = kp - u->tree_base;
                    if (!((u->anc[r][b >> 6] >> (b & 63)) & 1)) continue;
                }
                const float p = P[r * KC + gi * 16 + j];
                const uint8_t *vrow = g[gi].v + (int64_t)j * d * e;
                for (int i = 0; i < d; i++) {
                    float x;
                    switch (dt) {
                    case F32: x = ((const float *)vrow)[i]; break;
                    case F16: x = f16_to_f32(((const uint16_t *)vrow)[i]); break;
                    case BF16: x = bf16_to_f32(((const uint16_t *)vrow)[i]); break;
                    default: x = (float)((const int8_t *)vrow)[i]; /* P holds the V scale */
                    }
                    o[i] += p * x;
                }
            }
    }
}

#endif
