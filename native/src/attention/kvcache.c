/* Paged KV cache: configuration, sequence operations (create, fork, extend, truncate, free), and the
 * append (write) and read-back of K/V. The state lives in caller memory (kv.h). */
#include "kv.h"

#include "quant/quant.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

static int is_pow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }
static int64_t align64(int64_t x) { return (x + 63) & ~(int64_t)63; }

static isthmus_status check_config(const isthmus_kv_config *c, const char *fn) {
    if (!c) return FAIL_ARG("%s: config is NULL", fn);
    if (c->layers < 1) return FAIL_ARG("%s: layers = %d, must be >= 1", fn, c->layers);
    if (c->kv_heads < 1) return FAIL_ARG("%s: kv_heads = %d, must be >= 1", fn, c->kv_heads);
    if (c->head_dim < 16 || c->head_dim > ISTHMUS_KV_MAX_HEAD_DIM || c->head_dim % 16)
        return FAIL_ARG("%s: head_dim = %d, must be a multiple of 16 in 16..%d", fn, c->head_dim,
                        ISTHMUS_KV_MAX_HEAD_DIM);
    if (!is_pow2(c->block_size) || c->block_size > ISTHMUS_KV_MAX_BLOCK_SIZE)
        return FAIL_ARG("%s: block_size = %d, must be a power of two in 1..%d", fn, c->block_size,
                        ISTHMUS_KV_MAX_BLOCK_SIZE);
    if (c->dtype < ISTHMUS_KV_F32 || c->dtype > ISTHMUS_KV_S8)
        return FAIL_ARG("%s: dtype = %d is not an ISTHMUS_KV_* value", fn, c->dtype);
    if (c->num_blocks < 1) return FAIL_ARG("%s: num_blocks = %d, must be >= 1", fn, c->num_blocks);
    if (c->max_seqs < 1) return FAIL_ARG("%s: max_seqs = %d, must be >= 1", fn, c->max_seqs);
    if (c->max_seq_len < 1 || c->max_seq_len > ISTHMUS_KV_MAX_SEQ_LEN)
        return FAIL_ARG("%s: max_seq_len = %d, must be in 1..%d", fn, c->max_seq_len, ISTHMUS_KV_MAX_SEQ_LEN);
    return ISTHMUS_OK;
}

static int32_t esize_of(int32_t dtype) { return dtype == ISTHMUS_KV_F32 ? 4 : dtype == ISTHMUS_KV_S8 ? 1 : 2; }

/* Fills a header for c (sizes and offsets); returns the state bytes, or -1 when they overflow. */
static int64_t layout(const isthmus_kv_config *c, kv_state *h, int64_t *pool_bytes) {
    memset(h, 0, sizeof *h);
    h->cfg = *c;
    h->esize = esize_of(c->dtype);
    int64_t elems = (int64_t)c->kv_heads * c->head_dim * c->block_size; /* <= 2^31 * 2^17: fine */
    h->k_off = 0;
    h->v_off = align64(elems * h->esize);
    int64_t off = h->v_off + align64(elems * h->esize);
    if (c->dtype == ISTHMUS_KV_S8) {
        h->ks_off = off;
        off += align64((int64_t)c->kv_heads * c->block_size * 4);
        h->vs_off = off;
        off += align64((int64_t)c->kv_heads * c->block_size * 4);
    }
    h->block_bytes = off;
    h->max_blocks = (int32_t)(((int64_t)c->max_seq_len + c->block_size - 1) / c->block_size);
    int64_t blocks = (int64_t)c->layers * c->num_blocks;
    if (h->block_bytes > ((int64_t)1 << 62) / blocks) return -1;
    *pool_bytes = blocks * h->block_bytes;
    int64_t s = align64(sizeof(kv_state));
    h->refcount_off = s; s += align64((int64_t)c->num_blocks * 4);
    h->free_off = s; s += align64((int64_t)c->num_blocks * 4);
    h->seqs_off = s; s += align64((int64_t)c->max_seqs * (int64_t)sizeof(kv_seq));
    h->tables_off = s;
    if ((int64_t)h->max_blocks > ((int64_t)1 << 40) / c->max_seqs) return -1;
    s += align64((int64_t)c->max_seqs * h->max_blocks * 4);
    return s;
}

isthmus_status isthmus_kv_sizes(const isthmus_kv_config *c, int64_t *state_bytes, int64_t *pool_bytes) {
    isthmus_status st = check_config(c, __func__);
    if (st) return st;
    CHECK_PTR(state_bytes, "state_bytes");
    CHECK_PTR(pool_bytes, "pool_bytes");
    kv_state h;
    int64_t pb = 0, sb = layout(c, &h, &pb);
    if (sb < 0) return FAIL_ARG("%s: the configuration needs more memory than can be addressed", __func__);
    *state_bytes = sb;
    *pool_bytes = pb;
    return ISTHMUS_OK;
}

isthmus_status isthmus_kv_init(const isthmus_kv_config *c, void *state, int64_t state_bytes, void *pool,
                               int64_t pool_bytes) {
    isthmus_status st = check_config(c, __func__);
    if (st) return st;
    CHECK_PTR(state, "state");
    CHECK_PTR(pool, "pool");
    if (((uintptr_t)state | (uintptr_t)pool) & 63)
        return FAIL_ARG("%s: state and pool must be 64-byte aligned", __func__);
    kv_state h;
    int64_t pb = 0, sb = layout(c, &h, &pb);
    if (sb < 0) return FAIL_ARG("%s: the configuration needs more memory than can be addressed", __func__);
    if (state_bytes < sb)
        return FAIL_ARG("%s: state_bytes = %lld, this configuration needs %lld", __func__,
                        (long long)state_bytes, (long long)sb);
    if (pool_bytes < pb)
        return FAIL_ARG("%s: pool_bytes = %lld, this configuration needs %lld", __func__,
                        (long long)pool_bytes, (long long)pb);
    memset(state, 0, (size_t)sb);
    kv_state *s = state;
    *s = h;
    s->pool = pool;
    s->pool_bytes = pb;
    int32_t *fl = kv_freelist(s);
    for (int32_t i = 0; i < c->num_blocks; i++) fl[i] = c->num_blocks - 1 - i; /* pop order 0, 1, ... */
    s->free_count = c->num_blocks;
    s->magic = KV_MAGIC;
    s->check = kv_header_check(s);
    /* Ask for transparent huge pages on the pool (a hint; where THP is "madvise" it is what makes decode
     * reads stream without a TLB miss every 4 KB). Only whole 2 MB pages inside the caller's buffer. */
    uintptr_t lo = ((uintptr_t)pool + ((uintptr_t)1 << 21) - 1) & ~(((uintptr_t)1 << 21) - 1);
    uintptr_t hi = ((uintptr_t)pool + (uintptr_t)pb) & ~(((uintptr_t)1 << 21) - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    return ISTHMUS_OK;
}

isthmus_status isthmus__kv_check(const void *state, const char *fn) {
    if (!state) return FAIL_ARG("%s: kv is NULL", fn);
    if ((uintptr_t)state & 7) return FAIL_ARG("%s: kv is not an initialized KV cache state", fn);
    const kv_state *s = state;
    if (s->magic != KV_MAGIC) return FAIL_ARG("%s: kv is not an initialized KV cache state", fn);
    if (s->check != kv_header_check(s))
        return FAIL_ARG("%s: the header of the KV cache state is corrupt (overwritten by the caller?)", fn);
    if (s->free_count < 0 || s->free_count > s->cfg.num_blocks || s->live_seqs < 0 ||
        s->live_seqs > s->cfg.max_seqs)
        return FAIL_ARG("%s: KV cache state is corrupt (free_count %d, live_seqs %d)", fn, s->free_count,
                        s->live_seqs);
    return ISTHMUS_OK;
}

isthmus_status isthmus__kv_check_seq(const kv_state *s, int32_t seq, const char *fn, const char *name) {
    if (seq < 0 || seq >= s->cfg.max_seqs)
        return FAIL_ARG("%s: %s = %d is not a sequence id (0..%d)", fn, name, seq, s->cfg.max_seqs - 1);
    const kv_seq *q = &kv_seqs((kv_state *)s)[seq];
    if (!q->live) return FAIL_ARG("%s: %s = %d is not a live sequence (freed or never created)", fn, name, seq);
    if (q->len < 0 || q->len > s->cfg.max_seq_len || q->nblocks < 0 || q->nblocks > s->max_blocks ||
        (int64_t)q->nblocks * s->cfg.block_size < q->len)
        return FAIL_ARG("%s: sequence %d of the KV cache state is corrupt", fn, seq);
    return ISTHMUS_OK;
}

#define KV_ENTRY(state)                                   \
    isthmus_status st_ = isthmus__kv_check(state, __func__); \
    if (st_) return st_;                                  \
    kv_state *s = (kv_state *)(state)

isthmus_status isthmus_kv_get_config(const void *state, isthmus_kv_config *out) {
    KV_ENTRY(state);
    CHECK_PTR(out, "out");
    *out = s->cfg;
    return ISTHMUS_OK;
}

isthmus_status isthmus_kv_seq_create(void *state, int32_t *seq) {
    KV_ENTRY(state);
    CHECK_PTR(seq, "seq");
    kv_seq *q = kv_seqs(s);
    for (int32_t i = 0; i < s->cfg.max_seqs; i++) {
        if (!q[i].live) {
            q[i].live = 1;
            q[i].len = 0;
            q[i].nblocks = 0;
            s->live_seqs++;
            *seq = i;
            return ISTHMUS_OK;
        }
    }
    return isthmus__fail(ISTHMUS_ERR_CAPACITY, "%s: all %d sequence slots are in use", __func__, s->cfg.max_seqs);
}

static void release_block(kv_state *s, int32_t b) {
    int32_t *rc = kv_refcount(s);
    /* a full free list here means reference counts the caller overwrote: never write past it */
    if (--rc[b] == 0 && s->free_count < s->cfg.num_blocks) kv_freelist(s)[s->free_count++] = b;
}

/* Block ids of a table are checked before they index anything (and reference counts, which fork
 * increments: a block is in at most max_seqs tables). */
static isthmus_status check_table(const kv_state *s, int32_t seq, const char *fn) {
    const kv_seq *q = &kv_seqs((kv_state *)s)[seq];
    const int32_t *t = kv_table_c(s, seq);
    const int32_t *rc = kv_refcount((kv_state *)s);
    for (int32_t i = 0; i < q->nblocks; i++)
        if (t[i] < 0 || t[i] >= s->cfg.num_blocks || rc[t[i]] < 1 || rc[t[i]] > s->cfg.max_seqs)
            return FAIL_ARG("%s: block table of sequence %d of the KV cache state is corrupt (entry %d = %d)", fn,
                            seq, i, t[i]);
    return ISTHMUS_OK;
}

/* The next n entries of the free list (popped from the top) are free block ids: checked before any
 * is taken, so that a free list the caller overwrote is refused and nothing changes. */
static isthmus_status check_free(const kv_state *s, int32_t n, const char *fn) {
    const int32_t *fl = kv_freelist((kv_state *)s), *rc = kv_refcount((kv_state *)s);
    for (int32_t i = s->free_count - n; i < s->free_count; i++)
        if (fl[i] < 0 || fl[i] >= s->cfg.num_blocks || rc[fl[i]] != 0)
            return FAIL_ARG("%s: free list of the KV cache state is corrupt (entry %d = %d)", fn, i, fl[i]);
    return ISTHMUS_OK;
}

isthmus_status isthmus_kv_seq_fork(void *state, int32_t parent, int32_t *child) {
    KV_ENTRY(state);
    isthmus_status st = isthmus__kv_check_seq(s, parent, __func__, "parent");
    if (st) return st;
    if ((st = check_table(s, parent, __func__))) return st;
    CHECK_PTR(child, "child");
    int32_t c = -1;
    if ((st = isthmus_kv_seq_create(state, &c))) {
        return isthmus__fail(st, "%s: cannot fork sequence %d: all %d sequence slots are in use", __func__,
                             parent, s->cfg.max_seqs);
    }
    kv_seq *q = kv_seqs(s);
    q[c].len = q[parent].len;
    q[c].nblocks = q[parent].nblocks;
    int32_t *rc = kv_refcount(s);
    const int32_t *pt = kv_table(s, parent);
    int32_t *ct = kv_table(s, c);
    for (int32_t i = 0; i < q[parent].nblocks; i++) {
        ct[i] = pt[i];
        rc[pt[i]]++;
    }
    *child = c;
    return ISTHMUS_OK;
}

isthmus_status isthmus_kv_seq_truncate(void *state, int32_t seq, int64_t length) {
    KV_ENTRY(state);
    isthmus_status st = isthmus__kv_check_seq(s, seq, __func__, "seq");
    if (st) return st;
    if ((st = check_table(s, seq, __func__))) return st;
    kv_seq *q = &kv_seqs(s)[seq];
    if (length < 0 || length > q->len)
        return FAIL_ARG("%s: length = %lld, sequence %d holds %lld tokens (truncate only shortens)", __func__,
                        (long long)length, seq, (long long)q->len);
    int32_t keep = (int32_t)((length + s->cfg.block_size - 1) / s->cfg.block_size);
    int32_t *t = kv_table(s, seq);
    for (int32_t i = keep; i < q->nblocks; i++) release_block(s, t[i]);
    q->nblocks = keep;
    q->len = length;
    return ISTHMUS_OK;
}

isthmus_status isthmus_kv_seq_free(void *state, int32_t seq) {
    KV_ENTRY(state);
    isthmus_status st = isthmus__kv_check_seq(s, seq, __func__, "seq");
    if (st) return st;
    if ((st = isthmus_kv_seq_truncate(state, seq, 0))) return st;
    kv_seqs(s)[seq].live = 0;
    s->live_seqs--;
    return ISTHMUS_OK;
}

/* Replaces entry b of a block table, a block shared with a fork, by a private copy (every layer); the
 * caller has checked that a free block exists. */
static void copy_shared_block(kv_state *s, int32_t *t, int32_t b) {
    int32_t *rc = kv_refcount(s);
    int32_t old = t[b], nb = kv_freelist(s)[--s->free_count];
    rc[nb] = 1;
    for (int32_t l = 0; l < s->cfg.layers; l++) memcpy(kv_block(s, l, nb), kv_block(s, l, old), (size_t)s->block_bytes);
    rc[old]--;
    t[b] = nb;
}

isthmus_status isthmus_kv_seq_extend(void *state, int32_t seq, int64_t n) {
    KV_ENTRY(state);
    isthmus_status st = isthmus__kv_check_seq(s, seq, __func__, "seq");
    if (st) return st;
    if ((st = check_table(s, seq, __func__))) return st;
    kv_seq *q = &kv_seqs(s)[seq];
    if (n < 1) return FAIL_ARG("%s: n = %lld, must be >= 1", __func__, (long long)n);
    if (n > (int64_t)s->cfg.max_seq_len - q->len)
        return isthmus__fail(ISTHMUS_ERR_CAPACITY,
                             "%s: sequence %d holds %lld tokens; %lld more exceed max_seq_len = %d", __func__,
                             seq, (long long)q->len, (long long)n, s->cfg.max_seq_len);
    const int32_t bs = s->cfg.block_size;
    int32_t *t = kv_table(s, seq);
    int32_t *rc = kv_refcount(s);
    int64_t newlen = q->len + n;
    int32_t need = (int32_t)((newlen + bs - 1) / bs) - q->nblocks;
    int cow = (q->len % bs) != 0 && rc[t[q->nblocks - 1]] > 1;
    if (need + cow > s->free_count)
        return isthmus__fail(ISTHMUS_ERR_CAPACITY,
                             "%s: KV cache pool exhausted: sequence %d needs %d more blocks of %d tokens, %d of %d "
                             "are free",
                             __func__, seq, need + cow, bs, s->free_count, s->cfg.num_blocks);
    if ((st = check_free(s, need + cow, __func__))) return st;
    int32_t *fl = kv_freelist(s);
    if (cow) copy_shared_block(s, t, q->nblocks - 1); /* the last, partial block is shared with a fork */
    for (int32_t i = 0; i < need; i++) {
        int32_t b = fl[--s->free_count];
        rc[b] = 1;
        t[q->nblocks++] = b;
    }
    q->len = newlen;
    return ISTHMUS_OK;
}

/* Copies token src_slot of block sb to dst_slot of block db (K, V and int8 scales, every head) in one layer. */
static void move_token(const kv_state *s, int32_t layer, int32_t sb, int32_t src_slot, int32_t db, int32_t dst_slot) {
    const int32_t d = s->cfg.head_dim, bs = s->cfg.block_size, e = s->esize;
    const uint8_t *from = kv_block(s, layer, sb);
    uint8_t *to = kv_block(s, layer, db);
    for (int32_t h = 0; h < s->cfg.kv_heads; h++) {
        if (s->cfg.dtype == ISTHMUS_KV_S8) { /* K: one 32-bit word of 4 dimensions per word row */
            for (int32_t w = 0; w < d / 4; w++)
                memcpy(to + s->k_off + kv_k_index(s, h, 4 * w, dst_slot), from + s->k_off + kv_k_index(s, h, 4 * w, src_slot), 4);
            ((float *)(to + s->ks_off))[(int64_t)h * bs + dst_slot] = ((const float *)(from + s->ks_off))[(int64_t)h * bs + src_slot];
            ((float *)(to + s->vs_off))[(int64_t)h * bs + dst_slot] = ((const float *)(from + s->vs_off))[(int64_t)h * bs + src_slot];
        } else { /* K transposed: one element per dimension */
            for (int32_t i = 0; i < d; i++)
                memcpy(to + s->k_off + kv_k_index(s, h, i, dst_slot) * e, from + s->k_off + kv_k_index(s, h, i, src_slot) * e,
                       (size_t)e);
        }
        memmove(to + s->v_off + (((int64_t)h * bs + dst_slot) * d) * e,
                from + s->v_off + (((int64_t)h * bs + src_slot) * d) * e, (size_t)d * e);
    }
}

isthmus_status isthmus_kv_seq_compact(void *state, int32_t seq, int64_t start, const int32_t *keep, int64_t n_keep) {
    KV_ENTRY(state);
    isthmus_status st = isthmus__kv_check_seq(s, seq, __func__, "seq");
    if (st) return st;
    if ((st = check_table(s, seq, __func__))) return st;
    kv_seq *q = &kv_seqs(s)[seq];
    if (start < 0 || start > q->len)
        return FAIL_ARG("%s: start = %lld, sequence %d holds %lld tokens (start must be 0..length)", __func__,
                        (long long)start, seq, (long long)q->len);
    if (n_keep < 0 || n_keep > q->len - start)
        return FAIL_ARG("%s: n_keep = %lld, must be 0..%lld (length %lld - start %lld)", __func__, (long long)n_keep,
                        (long long)(q->len - start), (long long)q->len, (long long)start);
    if (n_keep > 0) CHECK_PTR(keep, "keep");
    for (int64_t i = 0; i < n_keep; i++) {
        if (keep[i] < 0 || keep[i] >= q->len - start)
            return FAIL_ARG("%s: keep[%lld] = %d, must be in 0..%lld (length %lld - start %lld - 1)", __func__,
                            (long long)i, keep[i], (long long)(q->len - start - 1), (long long)q->len,
                            (long long)start);
        if (i > 0 && keep[i] <= keep[i - 1])
            return FAIL_ARG("%s: keep[%lld] = %d after keep[%lld] = %d, keep must be strictly increasing", __func__,
                            (long long)i, keep[i], (long long)(i - 1), keep[i - 1]);
    }
    const int32_t bs = s->cfg.block_size;
    int32_t *t = kv_table(s, seq);
    int32_t *rc = kv_refcount(s);
    /* the first moved position (keep[i] != i); positions below it stay where they are */
    int64_t first = 0;
    while (first < n_keep && keep[first] == first) first++;
    if (first < n_keep) {
        /* blocks written into (destinations start + first .. start + n_keep - 1) that a fork shares: copy
         * them first (all or nothing) */
        const int32_t b0 = (int32_t)((start + first) / bs), b1 = (int32_t)((start + n_keep - 1) / bs);
        int32_t cow = 0;
        for (int32_t b = b0; b <= b1; b++) cow += rc[t[b]] > 1;
        if (cow > s->free_count)
            return isthmus__fail(ISTHMUS_ERR_CAPACITY,
                                 "%s: KV cache pool exhausted: sequence %d shares %d blocks with a fork that must be "
                                 "copied before compacting, %d of %d blocks are free",
                                 __func__, seq, cow, s->free_count, s->cfg.num_blocks);
        if ((st = check_free(s, cow, __func__))) return st;
        for (int32_t b = b0; b <= b1; b++)
            if (rc[t[b]] > 1) copy_shared_block(s, t, b);
        for (int32_t l = 0; l < s->cfg.layers; l++)
            for (int64_t i = first; i < n_keep; i++) {
                const int64_t src = start + keep[i], dst = start + i;
                move_token(s, l, t[src / bs], (int32_t)(src % bs), t[dst / bs], (int32_t)(dst % bs));
            }
    }
    return isthmus_kv_seq_truncate(state, seq, start + n_keep);
}

isthmus_status isthmus_kv_seq_length(const void *state, int32_t seq, int64_t *length) {
    KV_ENTRY(state);
    isthmus_status st = isthmus__kv_check_seq(s, seq, __func__, "seq");
    if (st) return st;
    CHECK_PTR(length, "length");
    *length = kv_seqs(s)[seq].len;
    return ISTHMUS_OK;
}

isthmus_status isthmus_kv_seq_blocks(const void *state, int32_t seq, int32_t *blocks, int64_t capacity,
                                     int64_t *count) {
    KV_ENTRY(state);
    isthmus_status st = isthmus__kv_check_seq(s, seq, __func__, "seq");
    if (st) return st;
    CHECK_PTR(count, "count");
    if (capacity < 0) return FAIL_ARG("%s: capacity = %lld, must be >= 0", __func__, (long long)capacity);
    if (capacity > 0) CHECK_PTR(blocks, "blocks");
    const kv_seq *q = &kv_seqs(s)[seq];
    int64_t n = q->nblocks < capacity ? q->nblocks : capacity;
    if (n > 0) memcpy(blocks, kv_table(s, seq), (size_t)(n * 4));
    *count = q->nblocks;
    return ISTHMUS_OK;
}

isthmus_status isthmus_kv_get_stats(const void *state, isthmus_kv_stats *out) {
    KV_ENTRY(state);
    CHECK_PTR(out, "out");
    memset(out, 0, sizeof *out);
    out->free_blocks = s->free_count;
    out->used_blocks = s->cfg.num_blocks - s->free_count;
    out->live_seqs = s->live_seqs;
    const int32_t *rc = kv_refcount(s);
    for (int32_t b = 0; b < s->cfg.num_blocks; b++) out->shared_blocks += rc[b] > 1;
    const kv_seq *q = kv_seqs(s);
    for (int32_t i = 0; i < s->cfg.max_seqs; i++)
        if (q[i].live) out->tokens += q[i].len;
    return ISTHMUS_OK;
}

/* ------------------------------------------------------------------ write and read */

/* Where token `pos` of a sequence sits: its block and the slot in it. */
static inline void locate(const kv_state *s, const int32_t *t, int64_t pos, int32_t *block, int32_t *slot) {
    *block = t[pos / s->cfg.block_size];
    *slot = (int32_t)(pos % s->cfg.block_size);
}

/* Stores one head vector x[head_dim] (f32) at (layer, block, slot, head): K transposed, V row-major. */
static void store_head(const kv_state *s, uint8_t *blk, int32_t slot, int32_t h, const float *x, int is_k,
                       const QUANTIZE_S8_kernel *qk) {
    const int32_t d = s->cfg.head_dim, bs = s->cfg.block_size;
    uint8_t *data = blk + (is_k ? s->k_off : s->v_off);
    const int64_t vfirst = ((int64_t)h * bs + slot) * d;
#define AT(i) (is_k ? kv_k_index(s, h, i, slot) : vfirst + (i))
    switch (s->cfg.dtype) {
    case ISTHMUS_KV_F32: {
        float *p = (float *)data;
        for (int32_t i = 0; i < d; i++) p[AT(i)] = x[i];
        break;
    }
    case ISTHMUS_KV_F16: {
        uint16_t *p = (uint16_t *)data;
        for (int32_t i = 0; i < d; i++) p[AT(i)] = f32_to_f16(x[i]);
        break;
    }
    case ISTHMUS_KV_BF16: {
        uint16_t *p = (uint16_t *)data;
        for (int32_t i = 0; i < d; i++) p[AT(i)] = f32_to_bf16(x[i]);
        break;
    }
    default: {
        float amax = qk->amax(x, d);
        float sc = isthmus__scale_of(amax);
        int8_t tmp[ISTHMUS_KV_MAX_HEAD_DIM];
        if (sc > 0) qk->quant(x, d, sc, tmp);
        else memset(tmp, 0, (size_t)d);
        int8_t *p = (int8_t *)data;
        for (int32_t i = 0; i < d; i++) p[AT(i)] = tmp[i];
        float *scales = (float *)(blk + (is_k ? s->ks_off : s->vs_off));
        scales[(int64_t)h * bs + slot] = sc;
    }
    }
}

static void load_head(const kv_state *s, const uint8_t *blk, int32_t slot, int32_t h, float *x, int is_k) {
    for (int32_t i = 0; i < s->cfg.head_dim; i++) x[i] = kv_elem(s, blk, h, slot, i, is_k);
}
#undef AT

void isthmus__rope_inv(const isthmus_rope_params *r, int64_t head_dim, double *inv);
void isthmus__rope_row(float *x, int64_t heads, int64_t head_dim, int64_t pos, const isthmus_rope_params *r,
                       const double *inv, float *cs);
isthmus_status isthmus__rope_check(const isthmus_rope_params *r, int64_t head_dim, const char *fn);

int isthmus__find_nonfinite(const float *x, int64_t rows, int64_t width, int64_t ld, float limit, int64_t *row,
                            int64_t *col) {
    const QUANTIZE_S8_kernel *qk = isthmus__kernel(ISTHMUS_OP_QUANTIZE_S8, isthmus__isa_active());
    if (!qk) qk = isthmus__kernel(ISTHMUS_OP_QUANTIZE_S8, ISTHMUS_ISA_REF);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ld;
        float m = qk->amax(xr, width); /* NaN when a NaN or inf is present */
        if (m < limit) continue;
        for (int64_t i = 0; i < width; i++)
            if (!(fabsf(xr[i]) < limit)) {
                *row = r, *col = i;
                return 1;
            }
    }
    return 0;
}

/* |x| from which a store rounds to inf: f16 (65504 is the largest f16; 65520 is halfway to 2^16), bf16
 * (0x7f7f8000, halfway between the largest bf16 and 2^128), none for f32 and int8. */
static float store_limit(int32_t dtype) {
    return dtype == ISTHMUS_KV_F16 ? 65520.0f : dtype == ISTHMUS_KV_BF16 ? 0x1.ffp127f : INFINITY;
}

typedef struct write_ctx {
    const isthmus_kv_write_args *a;
    const kv_state *s;
    const int64_t *row0; /* first batch row of each sequence */
    const QUANTIZE_S8_kernel *qk;
    _Atomic int bad;     /* 1: a non-finite value met with S8; 2: out of memory (tasks run concurrently) */
    _Atomic int64_t bad_row;
} write_ctx;

static void write_task(void *vctx, int64_t i) {
    write_ctx *c = vctx;
    const isthmus_kv_write_args *a = c->a;
    const kv_state *s = c->s;
    const int32_t kvh = s->cfg.kv_heads, d = s->cfg.head_dim;
    const kv_seq *q = &kv_seqs((kv_state *)s)[a->seqs[i]];
    const int32_t *t = kv_table_c(s, a->seqs[i]);
    float *row = NULL, cs[ISTHMUS_KV_MAX_HEAD_DIM];
    double inv[ISTHMUS_KV_MAX_HEAD_DIM / 2];
    if (a->rope.style != ISTHMUS_ROPE_NONE) {
        isthmus__rope_inv(&a->rope, d, inv);
        row = isthmus__aligned_alloc((size_t)kvh * d * 4);
        if (!row) { c->bad = 2; return; }
    }
    for (int32_t j = 0; j < a->n_tokens[i]; j++) {
        int64_t r = c->row0[i] + j;
        int64_t pos = q->len - a->n_tokens[i] + j;
        int32_t b, slot;
        locate(s, t, pos, &b, &slot);
        uint8_t *blk = kv_block(s, a->layer, b);
        const float *k = a->k + r * a->ldk, *v = a->v + r * a->ldv;
        if (row) {
            memcpy(row, k, (size_t)kvh * d * 4);
            isthmus__rope_row(row, kvh, d, a->positions ? a->positions[r] : pos, &a->rope, inv, cs);
            k = row;
        }
        for (int32_t h = 0; h < kvh; h++) {
            /* The inputs were checked finite (and within f16 range) before any write; a rotated K can still
             * leave that range (near FLT_MAX, or past 65504 for f16), and such a head is not stored. */
            if (row || s->cfg.dtype == ISTHMUS_KV_S8) {
                float lim = store_limit(s->cfg.dtype);
                float ak = c->qk->amax(k + (int64_t)h * d, d);
                if (!(ak < lim)) {
                    c->bad = 1;
                    c->bad_row = r;
                    continue;
                }
            }
            store_head(s, blk, slot, h, k + (int64_t)h * d, 1, c->qk);
            store_head(s, blk, slot, h, v + (int64_t)h * d, 0, c->qk);
        }
    }
    isthmus__aligned_free(row);
}

isthmus_status isthmus_kv_write(const isthmus_kv_write_args *a) {
    CHECK_PTR(a, "args");
    KV_ENTRY(a->kv);
    const isthmus_kv_config *cfg = &s->cfg;
    if (a->layer < 0 || a->layer >= cfg->layers)
        return FAIL_ARG("%s: layer = %d, the cache has %d layers", __func__, a->layer, cfg->layers);
    if (a->n_seqs < 1 || a->n_seqs > cfg->max_seqs)
        return FAIL_ARG("%s: n_seqs = %d, must be in 1..%d", __func__, a->n_seqs, cfg->max_seqs);
    CHECK_PTR(a->seqs, "seqs");
    CHECK_PTR(a->n_tokens, "n_tokens");
    CHECK_PTR(a->k, "k");
    CHECK_PTR(a->v, "v");
    const int64_t width = (int64_t)cfg->kv_heads * cfg->head_dim;
    CHECK_LD(a->ldk, width, "ldk");
    CHECK_LD(a->ldv, width, "ldv");
    isthmus_status st;
    if (a->rope.style != ISTHMUS_ROPE_NONE && (st = isthmus__rope_check(&a->rope, cfg->head_dim, __func__)))
        return st;
    int64_t *row0 = isthmus__alloc((size_t)a->n_seqs * 8);
    uint8_t *seen = isthmus__calloc((size_t)cfg->max_seqs, 1);
    if (!row0 || !seen) {
        isthmus__free(row0);
        isthmus__free(seen);
        return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory", __func__);
    }
    int64_t total = 0;
    st = ISTHMUS_OK;
    for (int32_t i = 0; i < a->n_seqs && !st; i++) {
        int32_t id = a->seqs[i];
        if ((st = isthmus__kv_check_seq(s, id, __func__, "seqs[i]"))) break;
        if ((st = check_table(s, id, __func__))) break;
        if (seen[id]) {
            st = FAIL_ARG("%s: sequence %d appears twice in seqs", __func__, id);
            break;
        }
        seen[id] = 1;
        const kv_seq *q = &kv_seqs(s)[id];
        int32_t n = a->n_tokens[i];
        if (n < 1 || n > q->len) {
            st = FAIL_ARG("%s: n_tokens[%d] = %d, sequence %d holds %lld tokens (extend before writing)", __func__,
                          i, n, id, (long long)q->len);
            break;
        }
        /* the written positions must be private to this sequence */
        const int32_t *t = kv_table(s, id);
        const int32_t *rc = kv_refcount(s);
        for (int64_t bi = (q->len - n) / cfg->block_size; bi < q->nblocks; bi++)
            if (rc[t[bi]] > 1) {
                st = FAIL_ARG("%s: positions %lld..%lld of sequence %d are in a block shared with a fork; "
                              "extend the sequence after forking, then write",
                              __func__, (long long)(q->len - n), (long long)(q->len - 1), id);
                break;
            }
        row0[i] = total;
        total += n;
    }
    isthmus__free(seen);
    if (!st && (!isthmus__extent_ok(total, a->ldk) || !isthmus__extent_ok(total, a->ldv)))
        st = FAIL_ARG("%s: k/v extents overflow", __func__);
    if (!st && a->positions)
        for (int64_t r = 0; r < total; r++)
            if (a->positions[r] < 0 || a->positions[r] > ((int64_t)1 << 40)) {
                st = FAIL_ARG("%s: positions[%lld] = %lld, must be in 0..2^40", __func__, (long long)r,
                              (long long)a->positions[r]);
                break;
            }
    if (st) {
        isthmus__free(row0);
        return st;
    }
    /* The cache holds finite values only (every dtype): NaN and +-inf in k or v are refused before anything
     * is written, and for f16 so are finite values that would round to inf. */
    if (!st) {
        const float lim = store_limit(cfg->dtype);
        int64_t br, bc;
        for (int which = 0; which < 2 && !st; which++) {
            const float *x = which ? a->v : a->k;
            if (isthmus__find_nonfinite(x, total, width, which ? a->ldv : a->ldk, lim, &br, &bc))
                st = FAIL_ARG("%s: %s[%lld, %lld] = %g: %s", __func__, which ? "v" : "k", (long long)br, (long long)bc,
                              (double)x[br * (which ? a->ldv : a->ldk) + bc],
                              isfinite(x[br * (which ? a->ldv : a->ldk) + bc])
                                  ? (cfg->dtype == ISTHMUS_KV_F16 ? "rounds to inf in an f16 KV cache (|x| >= 65520); nothing was written"
                                                                  : "rounds to inf in a bf16 KV cache (|x| >= 0x1.ffp127); nothing was written")
                                  : "NaN and infinite K/V values are refused; nothing was written");
        }
        if (st) {
            isthmus__free(row0);
            return st;
        }
    }
    write_ctx c = {.a = a, .s = s, .row0 = row0, .qk = isthmus__kernel(ISTHMUS_OP_QUANTIZE_S8, isthmus__isa_active())};
    if (!c.qk) c.qk = isthmus__kernel(ISTHMUS_OP_QUANTIZE_S8, ISTHMUS_ISA_REF);
    if (a->n_seqs == 1 || total < 64) {
        for (int64_t i = 0; i < a->n_seqs; i++) write_task(&c, i);
    } else {
        isthmus__parallel_for(a->n_seqs, write_task, &c);
    }
    isthmus__free(row0);
    if (c.bad == 2) return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory", __func__);
    if (c.bad)
        return FAIL_ARG("%s: row %lld of k, rotated at its position, leaves the range the cache stores "
                        "(NaN or infinite, or rounds to inf in f16/bf16); the heads that did were not written",
                        __func__, (long long)c.bad_row);
    return ISTHMUS_OK;
}

isthmus_status isthmus_kv_read(const isthmus_kv_read_args *a) {
    CHECK_PTR(a, "args");
    KV_ENTRY(a->kv);
    const isthmus_kv_config *cfg = &s->cfg;
    if (a->layer < 0 || a->layer >= cfg->layers)
        return FAIL_ARG("%s: layer = %d, the cache has %d layers", __func__, a->layer, cfg->layers);
    isthmus_status st = isthmus__kv_check_seq(s, a->seq, __func__, "seq");
    if (st) return st;
    if ((st = check_table(s, a->seq, __func__))) return st;
    const kv_seq *q = &kv_seqs(s)[a->seq];
    if (a->start < 0 || a->count < 0 || a->start > q->len || a->count > q->len - a->start)
        return FAIL_ARG("%s: positions [%lld, %lld) are outside sequence %d of length %lld", __func__,
                        (long long)a->start, (long long)(a->start + a->count), a->seq, (long long)q->len);
    if (!a->k && !a->v) return FAIL_ARG("%s: k and v are both NULL", __func__);
    const int64_t width = (int64_t)cfg->kv_heads * cfg->head_dim;
    if (a->k) CHECK_LD(a->ldk, width, "ldk");
    if (a->v) CHECK_LD(a->ldv, width, "ldv");
    if (a->count == 0) return ISTHMUS_OK;
    if ((a->k && !isthmus__extent_ok(a->count, a->ldk)) || (a->v && !isthmus__extent_ok(a->count, a->ldv)))
        return FAIL_ARG("%s: k/v extents overflow", __func__);
    const int32_t *t = kv_table(s, a->seq);
    for (int64_t j = 0; j < a->count; j++) {
        int32_t b, slot;
        locate(s, t, a->start + j, &b, &slot);
        const uint8_t *blk = kv_block(s, a->layer, b);
        for (int32_t h = 0; h < cfg->kv_heads; h++) {
            if (a->k) load_head(s, blk, slot, h, a->k + j * a->ldk + (int64_t)h * cfg->head_dim, 1);
            if (a->v) load_head(s, blk, slot, h, a->v + j * a->ldv + (int64_t)h * cfg->head_dim, 0);
        }
    }
    return ISTHMUS_OK;
}
