/* Internal view of the paged KV cache state (caller-owned memory, see isthmus.h) and the attention
 * kernel interface shared by attention.c and the ISA variants. */
#ifndef ISTHMUS_KV_H
#define ISTHMUS_KV_H

#include "core/internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define KV_MAGIC 0x69736b7663616368ull /* "iskvcach" */

typedef struct kv_seq {
    int32_t live;
    int32_t nblocks;
    int64_t len;
} kv_seq;

/* Header at the start of the state buffer; the arrays follow at the recorded offsets. */
typedef struct kv_state {
    uint64_t magic;
    isthmus_kv_config cfg;
    uint8_t *pool;
    int64_t pool_bytes;
    int64_t block_bytes;      /* bytes of one (layer, block)                                    */
    int64_t k_off, v_off, ks_off, vs_off; /* within a (layer, block)                          */
    int32_t max_blocks;       /* block table entries per sequence: ceil(max_seq_len / block_size) */
    int32_t free_count;
    int32_t live_seqs;
    int32_t esize;            /* bytes per K/V element                                          */
    int64_t refcount_off, free_off, seqs_off, tables_off; /* from the state start            */
    uint64_t check;           /* hash of the fields above (all fixed at init), kv_header_check()  */
} kv_state;

static inline int32_t *kv_refcount(kv_state *s) { return (int32_t *)((uint8_t *)s + s->refcount_off); }
static inline int32_t *kv_freelist(kv_state *s) { return (int32_t *)((uint8_t *)s + s->free_off); }
static inline kv_seq *kv_seqs(kv_state *s) { return (kv_seq *)((uint8_t *)s + s->seqs_off); }
static inline int32_t *kv_table(kv_state *s, int32_t seq) {
    return (int32_t *)((uint8_t *)s + s->tables_off) + (int64_t)seq * s->max_blocks;
}
static inline const int32_t *kv_table_c(const kv_state *s, int32_t seq) {
    return kv_table((kv_state *)s, seq);
}
static inline uint8_t *kv_block(const kv_state *s, int32_t layer, int32_t block) {
    return s->pool + ((int64_t)layer * s->cfg.num_blocks + block) * s->block_bytes;
}

/* Index of K element (head h, dimension i, slot) within a block's K region. f32/f16/bf16: [h][d][bs];
 * int8: [h][d/4][bs][4], four consecutive dimensions of one key in one 32-bit word, the operand layout
 * of vpdpbusd (AVX-512 VNNI), so q.k for 16 keys is head_dim/4 integer dot-product instructions. */
static inline int64_t kv_k_index(const kv_state *s, int32_t h, int32_t i, int32_t slot) {
    const int64_t d = s->cfg.head_dim, bs = s->cfg.block_size;
    if (s->cfg.dtype == ISTHMUS_KV_S8) return (((int64_t)h * (d / 4) + i / 4) * bs + slot) * 4 + (i & 3);
    return ((int64_t)h * d + i) * bs + slot;
}

/* The state is caller memory that a bug in the caller can overwrite: every entry recomputes this hash of
 * the fixed header fields (configuration, pool pointer, sizes, offsets) and refuses a state whose stored
 * hash differs, so a corrupted header never sends the library outside its buffers. ~20 multiplies. */
static inline uint64_t kv_header_check(const kv_state *s) {
    const uint64_t w[] = {(uint64_t)(uint32_t)s->cfg.layers, (uint64_t)(uint32_t)s->cfg.kv_heads,
                          (uint64_t)(uint32_t)s->cfg.head_dim, (uint64_t)(uint32_t)s->cfg.block_size,
                          (uint64_t)(uint32_t)s->cfg.dtype, (uint64_t)(uint32_t)s->cfg.num_blocks,
                          (uint64_t)(uint32_t)s->cfg.max_seqs, (uint64_t)(uint32_t)s->cfg.max_seq_len,
                          (uint64_t)(uintptr_t)s->pool, (uint64_t)s->pool_bytes, (uint64_t)s->block_bytes,
                          (uint64_t)s->k_off, (uint64_t)s->v_off, (uint64_t)s->ks_off, (uint64_t)s->vs_off,
                          (uint64_t)(uint32_t)s->max_blocks, (uint64_t)(uint32_t)s->esize,
                          (uint64_t)s->refcount_off, (uint64_t)s->free_off, (uint64_t)s->seqs_off,
                          (uint64_t)s->tables_off};
    uint64_t h = s->magic;
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        h = (h ^ w[i]) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 31;
    }
    return h;
}

/* Validates a state pointer (magic, self-consistent header) for any entry; NULL on success. */
isthmus_status isthmus__kv_check(const void *state, const char *fn);
/* A live sequence id. */
isthmus_status isthmus__kv_check_seq(const kv_state *s, int32_t seq, const char *fn, const char *name);

/* Finds the first element of x [rows, width] (row stride ld) that is NaN or has |x| >= limit (INFINITY:
 * only the non-finite ones): returns 1 and its (row, column), or 0 when there is none. Vectorized scan
 * (the active ISA's amax), scalar only to locate a bad element. */
int isthmus__find_nonfinite(const float *x, int64_t rows, int64_t width, int64_t ld, float limit, int64_t *row,
                            int64_t *col);

/* ------------------------------------------------------------------ f16 / bf16 conversions */

static inline uint16_t f32_to_f16(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) { /* subnormal half (or zero): round x / 2^-24 to an integer */
        float af; memcpy(&af, &ax, 4);
        float r = af * 16777216.0f;       /* exact: power of two scaling */
        uint32_t q = (uint32_t)nearbyintf(r); /* default rounding mode: nearest even */
        return (uint16_t)(sign | q);
    }
    uint32_t mant_round = ax + 0xfffu + ((ax >> 13) & 1u); /* RNE at bit 13 */
    return (uint16_t)(sign | ((mant_round - 0x38000000u) >> 13));
}

static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t x;
    if (e == 0) {
        float f = (float)m * 5.9604644775390625e-8f; /* m * 2^-24, exact */
        memcpy(&x, &f, 4);
        x |= sign;
    } else if (e == 31) {
        x = sign | 0x7f800000u | (m << 13);
    } else {
        x = sign | ((e + 112) << 23) | (m << 13);
    }
    float f; memcpy(&f, &x, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static inline float bf16_to_f32(uint16_t b) {
    uint32_t x = (uint32_t)b << 16;
    float f; memcpy(&f, &x, 4);
    return f;
}

/* Element i of the key (is_k) or value at `slot` of head h in a block, as f32 (int8: times its scale).
 * The scalar path of the reference kernel, the read-back and the small-block gather of the SIMD kernels. */
static inline float kv_elem(const kv_state *s, const uint8_t *blk, int32_t h, int32_t slot, int32_t i, int is_k) {
    const int64_t d = s->cfg.head_dim, bs = s->cfg.block_size;
    const int64_t at = is_k ? kv_k_index(s, h, i, slot) : ((int64_t)h * bs + slot) * d + i;
    const uint8_t *data = blk + (is_k ? s->k_off : s->v_off);
    switch (s->cfg.dtype) {
    case ISTHMUS_KV_F32: return ((const float *)data)[at];
    case ISTHMUS_KV_F16: return f16_to_f32(((const uint16_t *)data)[at]);
    case ISTHMUS_KV_BF16: return bf16_to_f32(((const uint16_t *)data)[at]);
    default:
        return (float)((const int8_t *)data)[at] *
               ((const float *)(blk + (is_k ? s->ks_off : s->vs_off)))[(int64_t)h * bs + slot];
    }
}

/* ------------------------------------------------------------------ attention kernel interface */

/* One unit of work: up to ATTN_MAX_ROWS query rows (tokens x heads of one KV head group) of one
 * sequence against keys [k_lo, k_hi) of one layer and KV head. Rows are numbered token-major:
 * row j is token j / ratio, query head (kv_head * ratio + j % ratio). */
#define ATTN_MAX_ROWS 16

typedef struct attn_unit {
    const kv_state *kv;
    const int32_t *table;   /* the sequence's block table */
    int32_t layer, kv_head;
    int32_t rows;           /* 1..ATTN_MAX_ROWS */
    int32_t head_dim;
    const float *q[ATTN_MAX_ROWS];  /* query vectors (unscaled) */
    int64_t pos[ATTN_MAX_ROWS];     /* position of each row's token */
    int64_t lo[ATTN_MAX_ROWS];      /* first key each row may see */
    int64_t k_lo, k_hi;     /* keys of this unit (k_lo <= k_hi) */
    float scale, softcap;
    /* token tree (isthmus_attention_args.tree_parents), else tree = 0: row j sees key p >= tree_base only
     * when bit p - tree_base of anc[j] (its ancestors and itself among the new tokens) is set */
    int32_t tree;
    int64_t tree_base;
    const uint64_t *anc[ATTN_MAX_ROWS]; /* ATTN_TREE_WORDS words each */
    /* results: unnormalized O (rows x head_dim, row stride head_dim), running max m and sum l */
    float *o;
    float *m, *l;
    float *scratch;         /* ATTN_SCRATCH_FLOATS(head_dim) floats, 64-byte aligned, for the kernel */
} attn_unit;

#define ATTN_TREE_WORDS (ISTHMUS_TREE_MAX_NODES / 64)

/* The tree mask of row r over the 16 keys base .. base + 15: bit lane set when the tree lets the row see
 * key base + lane (every key before tree_base; after it, the row's ancestors and itself). */
static inline uint32_t attn_tree_bits16(const attn_unit *u, int r, int64_t base) {
    const int64_t off = base - u->tree_base;
    const uint64_t *a = u->anc[r];
    if (off <= -16) return 0xffffu;
    if (off >= ISTHMUS_TREE_MAX_NODES) return 0;
    if (off < 0) return (((uint32_t)1 << -off) - 1u) | ((uint32_t)(a[0] << -off) & 0xffffu);
    const int w = (int)(off >> 6), sh = (int)(off & 63);
    uint64_t x = a[w] >> sh;
    if (sh > 48 && w + 1 < ATTN_TREE_WORDS) x |= a[w + 1] << (64 - sh);
    return (uint32_t)x & 0xffffu;
}

#define ATTN_KC 64 /* keys per chunk in the SIMD kernels */
#define ATTN_SCRATCH_FLOATS(d) ((int64_t)ATTN_MAX_ROWS * (d) + 2 * ATTN_MAX_ROWS * ATTN_KC + 2 * 16 * (int64_t)(d) + 64)

typedef struct ATTENTION_kernel {
    int32_t isa;
    void (*unit)(const attn_unit *u);
} ATTENTION_kernel;

#endif
