/* Attention over the paged KV cache: validation, the work plan (sequence x KV head x row tile x KV
 * split), the parallel run of the ISA kernel on each unit, and the merge of split results. */
#include "kv.h"

#include <float.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct plan_item {
    int32_t seq_idx;   /* index into the batch                           */
    int32_t kv_head;
    int32_t row0, rows;
    int64_t k_lo, k_hi;
    int64_t part;      /* first partial slot (split units), or -1         */
    int32_t nsplit;    /* splits of this tile (the first unit of a tile)  */
} plan_item;

typedef struct attn_ctx {
    const isthmus_attention_args *a;
    const kv_state *s;
    const ATTENTION_kernel *kern;
    const int64_t *tok0;  /* batch row of each sequence's first query token */
    const uint64_t *anc;  /* with a tree: ATTN_TREE_WORDS words per batch row (ancestors + itself), else NULL */
    plan_item *items;
    int64_t nitems;
    int64_t *tiles;       /* first item of each tile that has splits       */
    int64_t ntiles;
    float *parts;         /* per split unit: m[16], l[16], o[16][d]        */
    _Atomic int oom;
    int64_t part_floats;
    int32_t ratio;
} attn_ctx;

static void fill_unit(const attn_ctx *c, const plan_item *it, attn_unit *u) {
    const isthmus_attention_args *a = c->a;
    const kv_state *s = c->s;
    const int32_t seq = a->seqs[it->seq_idx], qn = a->q_lens[it->seq_idx];
    const int64_t len = kv_seqs((kv_state *)s)[seq].len;
    const int32_t d = s->cfg.head_dim;
    u->kv = s;
    u->table = kv_table_c(s, seq);
    u->layer = a->layer;
    u->kv_head = it->kv_head;
    u->rows = it->rows;
    u->head_dim = d;
    for (int32_t j = 0; j < it->rows; j++) {
        int32_t row = it->row0 + j, t = row / c->ratio, h = it->kv_head * c->ratio + row % c->ratio;
        u->q[j] = a->q + (c->tok0[it->seq_idx] + t) * a->ldq + (int64_t)h * d;
        u->pos[j] = len - qn + t;
        u->lo[j] = a->window > 0 && u->pos[j] - a->window + 1 > 0 ? u->pos[j] - a->window + 1 : 0;
    }
    u->tree = c->anc != NULL;
    u->tree_base = len - qn;
    if (c->anc)
        for (int32_t j = 0; j < it->rows; j++)
            u->anc[j] = c->anc + (c->tok0[it->seq_idx] + (it->row0 + j) / c->ratio) * ATTN_TREE_WORDS;
    u->k_lo = it->k_lo;
    u->k_hi = it->k_hi;
    u->scale = a->scale;
    u->softcap = a->softcap;
}

/* Writes normalized rows of a finished tile: o / l and lse = m + log(l). */
static void finish_rows(const attn_ctx *c, const plan_item *it, const float *o, const float *m, const float *l) {
    const isthmus_attention_args *a = c->a;
    const int32_t d = c->s->cfg.head_dim;
    for (int32_t j = 0; j < it->rows; j++) {
        int32_t row = it->row0 + j, t = row / c->ratio, h = it->kv_head * c->ratio + row % c->ratio;
        int64_t tok = c->tok0[it->seq_idx] + t;
        float *out = a->out + tok * a->ldo + (int64_t)h * d;
        float inv = 1.0f / l[j];
        for (int32_t i = 0; i < d; i++) out[i] = o[(int64_t)j * d + i] * inv;
        if (a->lse) a->lse[tok * a->q_heads + h] = m[j] + logf(l[j]);
    }
}

static void unit_task(void *vctx, int64_t i) {
    attn_ctx *c = vctx;
    const plan_item *it = &c->items[i];
    attn_unit u;
    fill_unit(c, it, &u);
    const int32_t d = c->s->cfg.head_dim;
    float *scratch = isthmus__scratch((size_t)(ATTN_SCRATCH_FLOATS(d) + ATTN_MAX_ROWS * d) * 4);
    if (!scratch) {
        c->oom = 1;
        return;
    }
    u.scratch = scratch;
    if (it->part < 0) {
        float m[ATTN_MAX_ROWS], l[ATTN_MAX_ROWS];
        float *o = scratch + ATTN_SCRATCH_FLOATS(d);
        u.o = o;
        u.m = m;
        u.l = l;
        c->kern->unit(&u);
        finish_rows(c, it, o, m, l);
    } else {
        float *p = c->parts + it->part * c->part_floats;
        u.m = p;
        u.l = p + ATTN_MAX_ROWS;
        u.o = p + 2 * ATTN_MAX_ROWS;
        c->kern->unit(&u);
    }
}

/* Merges the splits of one tile (flash-decoding): rescale each split to the common max. */
static void merge_task(void *vctx, int64_t ti) {
    attn_ctx *c = vctx;
    const plan_item *first = &c->items[c->tiles[ti]];
    const int32_t d = c->s->cfg.head_dim, ns = first->nsplit;
    float *o = isthmus__scratch((size_t)ATTN_MAX_ROWS * d * 4);
    if (!o) {
        c->oom = 1;
        return;
    }
    float m[ATTN_MAX_ROWS], l[ATTN_MAX_ROWS];
    for (int32_t j = 0; j < first->rows; j++) {
        float mx = -INFINITY;
        int nan = 0; /* a split whose sum is NaN (it met a NaN logit or value) makes the row NaN */
        for (int32_t sp = 0; sp < ns; sp++) {
            const float *p = c->parts + (first->part + sp) * c->part_floats;
            if (p[ATTN_MAX_ROWS + j] > 0 && p[j] > mx) mx = p[j];
            nan |= isnan(p[ATTN_MAX_ROWS + j]);
        }
        float sum = 0;
        float *oj = o + (int64_t)j * d;
        for (int32_t i = 0; i < d; i++) oj[i] = 0;
        for (int32_t sp = 0; sp < ns; sp++) {
            const float *p = c->parts + (first->part + sp) * c->part_floats;
            if (!(p[ATTN_MAX_ROWS + j] > 0)) continue;
            float w = expf(p[j] - mx);
            sum += p[ATTN_MAX_ROWS + j] * w;
            const float *po = p + 2 * ATTN_MAX_ROWS + (int64_t)j * d;
            for (int32_t i = 0; i < d; i++) oj[i] += po[i] * w;
        }
        if (nan) {
            sum = NAN;
            for (int32_t i = 0; i < d; i++) oj[i] = NAN;
        }
        m[j] = mx;
        l[j] = sum;
    }
    finish_rows(c, first, o, m, l);
}

/* Keys [lo, hi) that the query rows [r0, r1) of a sequence (length len, qn new tokens) may see, and
 * how many KV splits they run in: only sequences with at most 16 new tokens are split (flash-decoding),
 * at multiples of ISTHMUS_ATTENTION_SPLIT, so the plan depends on the shapes alone. */
static int32_t tile_keys(int64_t len, int32_t qn, int32_t ratio, int32_t window, int64_t r0, int64_t r1,
                         int64_t *lo, int64_t *hi) {
    int64_t p0 = len - qn + r0 / ratio, p1 = len - qn + (r1 - 1) / ratio;
    *lo = window > 0 && p0 - window + 1 > 0 ? p0 - window + 1 : 0;
    *hi = p1 + 1;
    return qn <= 16 ? (int32_t)((*hi - 1) / ISTHMUS_ATTENTION_SPLIT - *lo / ISTHMUS_ATTENTION_SPLIT + 1) : 1;
}

static const ATTENTION_kernel *pick_kernel(void) {
    for (int32_t isa = isthmus__isa_active(); isa >= ISTHMUS_ISA_REF; isa--) {
        const ATTENTION_kernel *k = isthmus__kernel(ISTHMUS_OP_ATTENTION, isa);
        if (k) return k;
    }
    return NULL;
}

isthmus_status isthmus_attention(const isthmus_attention_args *a) {
    CHECK_PTR(a, "args");
    isthmus_status st = isthmus__kv_check(a->kv, __func__);
    if (st) return st;
    const kv_state *s = a->kv;
    const isthmus_kv_config *cfg = &s->cfg;
    const int32_t d = cfg->head_dim;
    if (a->layer < 0 || a->layer >= cfg->layers)
        return FAIL_ARG("%s: layer = %d, the cache has %d layers", __func__, a->layer, cfg->layers);
    if (a->n_seqs < 1 || a->n_seqs > (1 << 24))
        return FAIL_ARG("%s: n_seqs = %d, must be in 1..2^24", __func__, a->n_seqs);
    CHECK_PTR(a->seqs, "seqs");
    CHECK_PTR(a->q_lens, "q_lens");
    CHECK_PTR(a->q, "q");
    CHECK_PTR(a->out, "out");
    if (a->q_heads < 1 || a->q_heads % cfg->kv_heads || a->q_heads / cfg->kv_heads > 4096)
        return FAIL_ARG("%s: q_heads = %d, must be a positive multiple of kv_heads = %d (at most 4096 per KV head)",
                        __func__, a->q_heads, cfg->kv_heads);
    const int64_t width = (int64_t)a->q_heads * d;
    CHECK_LD(a->ldq, width, "ldq");
    CHECK_LD(a->ldo, width, "ldo");
    if (!(a->scale > 0) || !isfinite(a->scale))
        return FAIL_ARG("%s: scale = %g, must be finite and > 0", __func__, (double)a->scale);
    if (!(a->softcap >= 0) || !isfinite(a->softcap))
        return FAIL_ARG("%s: softcap = %g, must be 0 (none) or finite and > 0", __func__, (double)a->softcap);
    if (a->window < 0) return FAIL_ARG("%s: window = %d, must be >= 0 (0: none)", __func__, a->window);
    if (a->tree_parents && a->window != 0)
        return FAIL_ARG("%s: window = %d with tree_parents: a token tree needs window = 0", __func__, a->window);
    if (a->out == a->q && a->ldo != a->ldq)
        return FAIL_ARG("%s: out is q but ldo = %lld != ldq = %lld", __func__, (long long)a->ldo, (long long)a->ldq);

    int64_t *tok0 = isthmus__alloc((size_t)a->n_seqs * 8);
    if (!tok0) return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory", __func__);
    const int32_t ratio = a->q_heads / cfg->kv_heads;
    int64_t total = 0, nitems = 0, nparts = 0;
    for (int32_t i = 0; i < a->n_seqs; i++) {
        int32_t id = a->seqs[i];
        if ((st = isthmus__kv_check_seq(s, id, __func__, "seqs[i]"))) goto fail;
        const kv_seq *q = &kv_seqs((kv_state *)s)[id];
        const int32_t *t = kv_table_c(s, id);
        for (int32_t b = 0; b < q->nblocks; b++)
            if (t[b] < 0 || t[b] >= cfg->num_blocks) {
                st = FAIL_ARG("%s: block table of sequence %d of the KV cache state is corrupt", __func__, id);
                goto fail;
            }
        int32_t qn = a->q_lens[i];
        if (qn < 1 || qn > q->len) {
            st = FAIL_ARG("%s: q_lens[%d] = %d, sequence %d holds %lld tokens (q_len must be 1..length)", __func__,
                          i, qn, id, (long long)q->len);
            goto fail;
        }
        if (a->tree_parents && qn > ISTHMUS_TREE_MAX_NODES) {
            st = FAIL_ARG("%s: q_lens[%d] = %d with tree_parents, must be at most ISTHMUS_TREE_MAX_NODES = %d",
                          __func__, i, qn, ISTHMUS_TREE_MAX_NODES);
            goto fail;
        }
        tok0[i] = total;
        total += qn;
        /* count items: tiles x splits x kv heads */
        int64_t rows = (int64_t)qn * ratio;
        for (int64_t r0 = 0; r0 < rows; r0 += ATTN_MAX_ROWS) {
            int64_t r1 = r0 + ATTN_MAX_ROWS < rows ? r0 + ATTN_MAX_ROWS : rows;
            int64_t lo, hi, ns = tile_keys(q->len, qn, ratio, a->window, r0, r1, &lo, &hi);
            nitems += ns * cfg->kv_heads;
            if (ns > 1) nparts += ns * cfg->kv_heads;
        }
    }
    if (!isthmus__extent_ok(total, a->ldq) || !isthmus__extent_ok(total, a->ldo)) {
        st = FAIL_ARG("%s: q/out extents overflow", __func__);
        goto fail;
    }
    {   /* a NaN or infinite query would reach the softmax, where the variants would not agree on it */
        int64_t br, bc;
        if (isthmus__find_nonfinite(a->q, total, width, a->ldq, INFINITY, &br, &bc)) {
            st = FAIL_ARG("%s: q[%lld, %lld] = %g (head %lld, dimension %lld): NaN and infinite queries are refused",
                          __func__, (long long)br, (long long)bc, (double)a->q[br * a->ldq + bc], (long long)(bc / d),
                          (long long)(bc % d));
            goto fail;
        }
    }
    uint64_t *anc = NULL;
    if (a->tree_parents) { /* ancestor sets: node u sees its parent's set and itself */
        anc = isthmus__calloc((size_t)total * ATTN_TREE_WORDS, 8);
        if (!anc) {
            st = isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory", __func__);
            goto fail;
        }
        for (int32_t i = 0; i < a->n_seqs && !st; i++)
            for (int32_t u = 0; u < a->q_lens[i]; u++) {
                const int64_t row = tok0[i] + u;
                const int32_t p = a->tree_parents[row];
                if (p < -1 || p >= u) {
                    st = FAIL_ARG("%s: tree_parents[%lld] = %d (token %d of sequence %d, seqs[%d]) must be in -1..%d",
                                  __func__, (long long)row, p, u, a->seqs[i], i, u - 1);
                    break;
                }
                uint64_t *w = anc + row * ATTN_TREE_WORDS;
                if (p >= 0) memcpy(w, anc + (tok0[i] + p) * ATTN_TREE_WORDS, ATTN_TREE_WORDS * 8);
                w[u >> 6] |= (uint64_t)1 << (u & 63);
            }
        if (st) {
            isthmus__free(anc);
            goto fail;
        }
    }
    const ATTENTION_kernel *kern = pick_kernel();
    if (!kern) {
        isthmus__free(anc);
        st = isthmus__fail(ISTHMUS_ERR_INTERNAL, "%s: no attention kernel", __func__);
        goto fail;
    }
    attn_ctx c = {.a = a, .s = s, .kern = kern, .tok0 = tok0, .anc = anc, .ratio = ratio,
                  .part_floats = 2 * ATTN_MAX_ROWS + (int64_t)ATTN_MAX_ROWS * d};
    c.items = isthmus__alloc((size_t)nitems * sizeof(plan_item));
    c.tiles = isthmus__alloc((size_t)(nparts + 1) * sizeof(int64_t));
    c.parts = nparts ? isthmus__aligned_alloc((size_t)(nparts * c.part_floats * 4)) : NULL;
    if (!c.items || !c.tiles || (nparts && !c.parts)) {
        isthmus__free(c.items);
        isthmus__free(c.tiles);
        isthmus__aligned_free(c.parts);
        isthmus__free(anc);
        st = isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory for the work plan", __func__);
        goto fail;
    }
    int64_t part = 0;
    for (int32_t i = 0; i < a->n_seqs; i++) {
        const kv_seq *q = &kv_seqs((kv_state *)s)[a->seqs[i]];
        int32_t qn = a->q_lens[i];
        int64_t rows = (int64_t)qn * ratio;
        for (int32_t g = 0; g < cfg->kv_heads; g++) {
            for (int64_t r0 = 0; r0 < rows; r0 += ATTN_MAX_ROWS) {
                int64_t r1 = r0 + ATTN_MAX_ROWS < rows ? r0 + ATTN_MAX_ROWS : rows;
                int64_t lo, hi;
                int32_t ns = tile_keys(q->len, qn, ratio, a->window, r0, r1, &lo, &hi);
                if (ns > 1) c.tiles[c.ntiles++] = c.nitems;
                for (int32_t sp = 0; sp < ns; sp++) {
                    plan_item *it = &c.items[c.nitems++];
                    it->seq_idx = i;
                    it->kv_head = g;
                    it->row0 = (int32_t)r0;
                    it->rows = (int32_t)(r1 - r0);
                    int64_t b0 = (lo / ISTHMUS_ATTENTION_SPLIT + sp) * ISTHMUS_ATTENTION_SPLIT;
                    it->k_lo = sp == 0 ? lo : b0;
                    it->k_hi = sp == ns - 1 ? hi : b0 + ISTHMUS_ATTENTION_SPLIT;
                    it->nsplit = ns;
                    it->part = ns > 1 ? part++ : -1;
                }
            }
        }
    }
    if (c.nitems == 1) unit_task(&c, 0);
    else isthmus__parallel_for(c.nitems, unit_task, &c);
    if (c.ntiles == 1) merge_task(&c, 0);
    else if (c.ntiles > 1) isthmus__parallel_for(c.ntiles, merge_task, &c);
    isthmus__free(c.items);
    isthmus__free(c.tiles);
    isthmus__aligned_free(c.parts);
    isthmus__free(anc);
    isthmus__free(tok0);
    if (c.oom) return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory for scratch", __func__);
    return ISTHMUS_OK;
fail:
    isthmus__free(tok0);
    return st;
}
