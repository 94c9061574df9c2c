/*
 * Out-of-memory paths of every ABI entry that allocates. For each entry (and ISA variant) the sweep makes
 * the k-th library allocation fail, k = 0, 1, 2, ..., until the call succeeds. Every failure must be
 * ISTHMUS_ERR_OUT_OF_MEMORY with a message, the library's live allocation count must be back at its
 * baseline after every call (no leak on any error path), and the call that finally succeeds must give
 * the result of an undisturbed call bit for bit. Runs single-threaded (isthmus_set_num_threads(1)) so
 * every allocation, per-task scratch included, happens on this thread and is released by
 * isthmus_release_thread_scratch; the pool itself has its own test.
 */
#include "harness.h"

#include <math.h>

#define MAX_K 400 /* no entry makes this many allocations for these sizes */

typedef struct op op;
struct op {
    const char *name;
    isthmus_status (*run)(op *);
    void (*reset)(op *); /* restores in-place inputs; NULL when there are none */
    void *out[3];
    size_t bytes[3];
    void *ctx;
};

static int64_t live_allocs(void) {
    isthmus_memory_stats s;
    isthmus_get_memory_stats(&s);
    return s.live_allocs;
}

static void poison(op *o) {
    if (o->reset) o->reset(o);
    for (int i = 0; i < 3; i++)
        if (o->out[i]) memset(o->out[i], 0x7F, o->bytes[i]);
}

/* Returns the number of injected failures before the call succeeded (-1 if it never did). */
static int sweep(op *o) {
    poison(o);
    isthmus_status st = o->run(o);
    CHECK(st == ISTHMUS_OK, "%s: reference call returned %d: %s", o->name, st, isthmus_last_error());
    if (st) return -1;
    void *ref[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++)
        if (o->out[i]) {
            ref[i] = malloc(o->bytes[i]);
            memcpy(ref[i], o->out[i], o->bytes[i]);
        }
    isthmus_release_thread_scratch();
    const int64_t base = live_allocs();
    int k = 0;
    for (; k < MAX_K; k++) {
        poison(o);
        isthmus_set_alloc_failure(k);
        st = o->run(o);
        isthmus_set_alloc_failure(-1);
        char msg[256];
        snprintf(msg, sizeof msg, "%s", isthmus_last_error());
        isthmus_release_thread_scratch();
        const int64_t now = live_allocs();
        CHECK(now == base, "%s: after failing allocation %d (status %d), live_allocs = %lld, baseline %lld: "
              "leak on that path", o->name, k, st, (long long)now, (long long)base);
        if (st == ISTHMUS_OK) {
            for (int i = 0; i < 3; i++)
                if (o->out[i])
                    CHECK(memcmp(o->out[i], ref[i], o->bytes[i]) == 0,
                          "%s: result %d after %d injected failures differs from the undisturbed call", o->name, i, k);
            break;
        }
        CHECK(st == ISTHMUS_ERR_OUT_OF_MEMORY && msg[0] != '\0',
              "%s: allocation %d failed: status %d (want ISTHMUS_ERR_OUT_OF_MEMORY = %d), message '%s'", o->name, k,
              st, ISTHMUS_ERR_OUT_OF_MEMORY, msg);
    }
    CHECK(k < MAX_K, "%s: still failing after %d injected failures", o->name, MAX_K);
    for (int i = 0; i < 3; i++) free(ref[i]);
    return k;
}

static float *rand_f32(uint64_t *s, int64_t n, float lo, float hi) {
    float *p = galloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) p[i] = rng_f32(s, lo, hi);
    return p;
}

static int8_t *rand_s8(uint64_t *s, int64_t n) {
    int8_t *p = galloc((size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = rng_s8(s);
    return p;
}

/* Runs fn for every ISA variant the CPU supports (cap), restoring the cap. Returns the total failures swept. */
#define FOR_EACH_ISA(isa) for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++)

/* ---------------------------------------------------------------- GEMM */

typedef struct gemm_ctx {
    int64_t m, n, k;
    int8_t *a;
    float *sa, *x, *bias;
    void *packed;
    float *y;
    int32_t *c;
} gemm_ctx;

static isthmus_status run_gemm_s8(op *o) {
    gemm_ctx *g = o->ctx;
    isthmus_gemm_s8_args a = {.m = g->m, .n = g->n, .k = g->k, .a = g->a, .lda = g->k,
                              .a_granularity = ISTHMUS_SCALE_PER_ROW, .a_scales = g->sa, .w_packed = g->packed,
                              .bias = g->bias, .y = g->y, .ldy = g->n};
    return isthmus_gemm_s8(&a);
}

static isthmus_status run_gemm_s32(op *o) {
    gemm_ctx *g = o->ctx;
    isthmus_gemm_s8_s32_args a = {.m = g->m, .n = g->n, .k = g->k, .a = g->a, .lda = g->k, .w_packed = g->packed,
                                  .c = g->c, .ldc = g->n};
    return isthmus_gemm_s8_s32(&a);
}

static isthmus_status run_gemm_f32(op *o) {
    gemm_ctx *g = o->ctx;
    isthmus_gemm_f32_s8_args a = {.m = g->m, .n = g->n, .k = g->k, .x = g->x, .ldx = g->k, .w_packed = g->packed,
                                  .bias = g->bias, .y = g->y, .ldy = g->n, .workspace = NULL};
    return isthmus_gemm_f32_s8(&a);
}

static void t_gemm(void) {
    uint64_t s = t_seed;
    int total[3] = {0, 0, 0};
    FOR_EACH_ISA(isa) {
        isthmus_set_isa_cap(isa);
        gemm_ctx g = {.m = 37, .n = 33, .k = 96};
        g.a = rand_s8(&s, g.m * g.k);
        g.sa = rand_f32(&s, g.m, 0.01f, 0.1f);
        g.x = rand_f32(&s, g.m * g.k, -2, 2);
        g.bias = rand_f32(&s, g.n, -1, 1);
        int8_t *w = rand_s8(&s, g.n * g.k);
        float *sw = rand_f32(&s, g.n, 0.01f, 0.1f);
        isthmus_gemm_pack_args pa = {.n = g.n, .k = g.k, .w = w, .ldw = g.k, .w_granularity = ISTHMUS_SCALE_PER_ROW,
                                     .w_scales = sw};
        int64_t bytes = 0;
        CHECK_OK(isthmus_gemm_s8_packed_size(&pa, &bytes));
        g.packed = galloc((size_t)bytes);
        pa.packed = g.packed;
        pa.packed_size = bytes;
        CHECK_OK(isthmus_gemm_s8_pack(&pa));
        g.y = galloc((size_t)(g.m * g.n * 4));
        g.c = galloc((size_t)(g.m * g.n * 4));
        op o1 = {"gemm_s8", run_gemm_s8, NULL, {g.y}, {(size_t)(g.m * g.n * 4)}, &g};
        op o2 = {"gemm_s8_s32", run_gemm_s32, NULL, {g.c}, {(size_t)(g.m * g.n * 4)}, &g};
        op o3 = {"gemm_f32_s8 (no workspace)", run_gemm_f32, NULL, {g.y}, {(size_t)(g.m * g.n * 4)}, &g};
        total[0] += sweep(&o1);
        total[1] += sweep(&o2);
        total[2] += sweep(&o3);
        gfree(g.a); gfree(g.sa); gfree(g.x); gfree(g.bias); gfree(w); gfree(sw); gfree(g.packed); gfree(g.y);
        gfree(g.c);
    }
    /* f32_s8 without a workspace always allocates one; the A repack happens for the SIMD variants */
    CHECK(total[2] >= 1 + isthmus_isa_supported(), "gemm_f32_s8 swept %d failures", total[2]);
    if (isthmus_isa_supported() > ISTHMUS_ISA_REF) CHECK(total[0] >= 1, "gemm_s8 swept %d failures", total[0]);
    printf("    gemm_s8 %d, gemm_s8_s32 %d, gemm_f32_s8 %d allocation failures swept\n", total[0], total[1], total[2]);
}

/* ---------------------------------------------------------------- KV cache, attention, RoPE */

typedef struct kv_ctx {
    isthmus_kv_config cfg;
    void *state, *pool;
    int32_t seqs[3];
    int32_t q_lens[3], n_tokens[3];
    int32_t n_seqs;
    int32_t *parents;
    float *q, *out, *k, *v, *kr, *vr;
    int64_t total, width, qwidth;
    int32_t q_heads;
    int32_t read_seq;
    int64_t read_start, read_count;
} kv_ctx;

static isthmus_status run_attention(op *o) {
    kv_ctx *c = o->ctx;
    isthmus_attention_args a = {.kv = c->state, .layer = 1, .n_seqs = c->n_seqs, .seqs = c->seqs,
                                .q_lens = c->q_lens, .q_heads = c->q_heads, .q = c->q, .ldq = c->qwidth,
                                .out = c->out, .ldo = c->qwidth, .lse = NULL,
                                .scale = 1.0f / sqrtf((float)c->cfg.head_dim), .tree_parents = c->parents};
    return isthmus_attention(&a);
}

static isthmus_status run_kv_write(op *o) {
    kv_ctx *c = o->ctx;
    isthmus_kv_write_args a = {.kv = c->state, .layer = 0, .n_seqs = c->n_seqs, .seqs = c->seqs,
                               .n_tokens = c->n_tokens, .k = c->k, .ldk = c->width, .v = c->v, .ldv = c->width,
                               .rope = {.style = ISTHMUS_ROPE_HALF, .rotary_dim = 0, .theta = 10000.0f}};
    isthmus_status st = isthmus_kv_write(&a);
    if (st) return st;
    isthmus_kv_read_args r = {.kv = c->state, .layer = 0, .seq = c->read_seq, .start = c->read_start,
                              .count = c->read_count, .k = c->kr, .ldk = c->width, .v = c->vr, .ldv = c->width};
    isthmus_status rs = isthmus_kv_read(&r);
    CHECK(rs == ISTHMUS_OK, "kv_read after kv_write: %s", isthmus_last_error());
    return st;
}

static void fill_layer(kv_ctx *c, uint64_t *s, int32_t layer, int32_t seq, int64_t len) {
    float *k = rand_f32(s, len * c->width, -1, 1), *v = rand_f32(s, len * c->width, -1, 1);
    int32_t n = (int32_t)len;
    isthmus_kv_write_args a = {.kv = c->state, .layer = layer, .n_seqs = 1, .seqs = &seq, .n_tokens = &n,
                               .k = k, .ldk = c->width, .v = v, .ldv = c->width};
    CHECK_OK(isthmus_kv_write(&a));
    gfree(k);
    gfree(v);
}

static void t_kv_attention(void) {
    uint64_t s = t_seed;
    int tot_write = 0, tot_attn = 0, tot_tree = 0;
    FOR_EACH_ISA(isa) {
        isthmus_set_isa_cap(isa);
        kv_ctx c = {.cfg = {.layers = 2, .kv_heads = 2, .head_dim = 32, .block_size = 16, .dtype = ISTHMUS_KV_F16,
                            .num_blocks = 400, .max_seqs = 4, .max_seq_len = 4096},
                    .q_heads = 4};
        c.width = (int64_t)c.cfg.kv_heads * c.cfg.head_dim;
        c.qwidth = (int64_t)c.q_heads * c.cfg.head_dim;
        int64_t sb, pb;
        CHECK_OK(isthmus_kv_sizes(&c.cfg, &sb, &pb));
        c.state = galloc((size_t)sb);
        c.pool = galloc((size_t)pb);
        CHECK_OK(isthmus_kv_init(&c.cfg, c.state, sb, c.pool, pb));
        int32_t a, b, t;
        CHECK_OK(isthmus_kv_seq_create(c.state, &a));
        CHECK_OK(isthmus_kv_seq_create(c.state, &b));
        CHECK_OK(isthmus_kv_seq_create(c.state, &t));
        /* a: long enough for flash-decoding splits (merge buffers); b: short prefill; t: a tree */
        const int64_t la = ISTHMUS_ATTENTION_SPLIT + 300, lb = 40, lt = 30;
        CHECK_OK(isthmus_kv_seq_extend(c.state, a, la));
        CHECK_OK(isthmus_kv_seq_extend(c.state, b, lb));
        CHECK_OK(isthmus_kv_seq_extend(c.state, t, lt));
        for (int32_t layer = 0; layer < 2; layer++) {
            fill_layer(&c, &s, layer, a, la);
            fill_layer(&c, &s, layer, b, lb);
            fill_layer(&c, &s, layer, t, lt);
        }
        /* kv_write: the last 7 tokens of a and 70 of b (rope fused), read back from b */
        c.n_seqs = 2;
        c.seqs[0] = a; c.seqs[1] = b;
        c.n_tokens[0] = 7; c.n_tokens[1] = 33;
        c.total = 40;
        c.k = rand_f32(&s, c.total * c.width, -1, 1);
        c.v = rand_f32(&s, c.total * c.width, -1, 1);
        c.read_seq = b; c.read_start = lb - 33; c.read_count = 33;
        c.kr = galloc((size_t)(33 * c.width * 4));
        c.vr = galloc((size_t)(33 * c.width * 4));
        op ow = {"kv_write", run_kv_write, NULL, {c.kr, c.vr}, {(size_t)(33 * c.width * 4), (size_t)(33 * c.width * 4)},
                 &c};
        tot_write += sweep(&ow);
        /* attention: a decodes 1 token (split over 2 chunks), b prefills 12 */
        c.q_lens[0] = 1; c.q_lens[1] = 12;
        c.q = rand_f32(&s, 13 * c.qwidth, -1, 1);
        c.out = galloc((size_t)(13 * c.qwidth * 4));
        op oa = {"attention", run_attention, NULL, {c.out}, {(size_t)(13 * c.qwidth * 4)}, &c};
        tot_attn += sweep(&oa);
        /* a token tree of 6 nodes on t */
        int32_t parents[6] = {-1, 0, 0, 1, -1, 4};
        c.n_seqs = 1;
        c.seqs[0] = t;
        c.q_lens[0] = 6;
        c.parents = parents;
        op ot = {"attention (tree)", run_attention, NULL, {c.out}, {(size_t)(6 * c.qwidth * 4)}, &c};
        tot_tree += sweep(&ot);
        gfree(c.k); gfree(c.v); gfree(c.kr); gfree(c.vr); gfree(c.q); gfree(c.out); gfree(c.state); gfree(c.pool);
    }
    CHECK(tot_attn >= 1 && tot_tree >= 1 && tot_write >= 1, "swept kv_write %d, attention %d, tree %d", tot_write,
          tot_attn, tot_tree);
    printf("    kv_write %d, attention %d, tree attention %d allocation failures swept\n", tot_write, tot_attn,
           tot_tree);
}

typedef struct rope_ctx {
    int64_t tokens, heads, head_dim;
    float *x, *x0;
    int64_t *pos;
} rope_ctx;

static void reset_rope(op *o) {
    rope_ctx *r = o->ctx;
    memcpy(r->x, r->x0, (size_t)(r->tokens * r->heads * r->head_dim * 4));
}

static isthmus_status run_rope(op *o) {
    rope_ctx *r = o->ctx;
    isthmus_rope_args a = {.tokens = r->tokens, .heads = r->heads, .head_dim = r->head_dim, .x = r->x,
                           .ldx = r->heads * r->head_dim, .positions = r->pos,
                           .rope = {.style = ISTHMUS_ROPE_INTERLEAVED, .theta = 500000.0f}};
    return isthmus_rope(&a);
}

static void t_rope(void) {
    uint64_t s = t_seed;
    rope_ctx r = {.tokens = 53, .heads = 3, .head_dim = 64};
    int64_t n = r.tokens * r.heads * r.head_dim;
    r.x0 = rand_f32(&s, n, -1, 1);
    r.x = galloc((size_t)n * 4);
    r.pos = galloc((size_t)r.tokens * 8);
    for (int64_t t = 0; t < r.tokens; t++) r.pos[t] = rng_int(&s, 0, 100000);
    /* x is in place: the swept output is x itself, restored before every call */
    op o = {"rope", run_rope, reset_rope, {NULL}, {0}, &r};
    reset_rope(&o);
    int k = sweep(&o);
    /* compare the final x with an undisturbed run */
    float *got = galloc((size_t)n * 4);
    memcpy(got, r.x, (size_t)n * 4);
    reset_rope(&o);
    CHECK_OK(run_rope(&o));
    CHECK(memcmp(got, r.x, (size_t)n * 4) == 0, "rope: result after the sweep differs");
    CHECK(k >= 1, "rope swept %d failures", k);
    printf("    rope %d allocation failures swept\n", k);
    gfree(got); gfree(r.x0); gfree(r.x); gfree(r.pos);
}

/* ---------------------------------------------------------------- pruning, sparse matmul */

typedef struct prune_ctx {
    isthmus_prune_args a;
} prune_ctx;

static isthmus_status run_prune(op *o) {
    return isthmus_prune_mask(&((prune_ctx *)o->ctx)->a);
}

static void t_prune(void) {
    uint64_t s = t_seed;
    const int64_t n = 24, k = 64;
    float *w = rand_f32(&s, n * k, -1, 1);
    float *act = rand_f32(&s, k, 0.1f, 2);
    uint8_t *mask = galloc((size_t)(n * k));
    int32_t structures[4] = {ISTHMUS_PRUNE_PER_ROW, ISTHMUS_PRUNE_GLOBAL, ISTHMUS_PRUNE_N_M, ISTHMUS_PRUNE_BLOCK};
    const char *names[4] = {"prune_mask per row", "prune_mask global", "prune_mask 2:4", "prune_mask block 4x4"};
    int total = 0;
    FOR_EACH_ISA(isa) {
        isthmus_set_isa_cap(isa);
        for (int i = 0; i < 4; i++) {
            prune_ctx p = {.a = {.n = n, .k = k, .w = w, .ldw = k, .act_norm = i == 1 ? act : NULL,
                                 .structure = structures[i], .nm_n = 2, .nm_m = 4, .block_rows = 4, .block_cols = 4,
                                 .sparsity = 0.6, .seed = 7, .mask = mask, .ldm = k}};
            op o = {names[i], run_prune, NULL, {mask}, {(size_t)(n * k)}, &p};
            total += sweep(&o);
        }
    }
    CHECK(total >= 1, "prune swept %d failures", total);
    printf("    prune_mask %d allocation failures swept\n", total);
    gfree(w); gfree(act); gfree(mask);
}

typedef struct spmm_ctx {
    isthmus_spmm_args a;
} spmm_ctx;

static isthmus_status run_spmm(op *o) {
    return isthmus_spmm(&((spmm_ctx *)o->ctx)->a);
}

/* Packs the sparse form of dense w [n, k] (f32, or s8 with per-row scales) in `format`. */
static void *pack_sparse(int32_t format, int32_t dtype, const float *w, const int8_t *wq, const float *scales,
                         int64_t n, int64_t k) {
    int64_t *row_ptr = malloc((size_t)(n + 1) * 8);
    int32_t *col = malloc((size_t)(n * k) * 4);
    void *vals = malloc((size_t)(n * k) * 4);
    uint16_t *meta = calloc((size_t)(n * ((k + 15) / 16)), 2);
    isthmus_sparse_matrix m = {.n = n, .k = k, .format = format, .dtype = dtype, .values = vals,
                               .scales = dtype == ISTHMUS_DTYPE_S8 ? scales : NULL};
    int64_t nnz = 0;
    const size_t es = dtype == ISTHMUS_DTYPE_S8 ? 1 : 4;
#define PUT(idx)                                                                                           \
    do {                                                                                                   \
        if (es == 1) ((int8_t *)vals)[nnz] = wq[idx];                                                      \
        else ((float *)vals)[nnz] = w[idx];                                                                \
    } while (0)
    if (format == ISTHMUS_SPARSE_CSR) {
        for (int64_t r = 0; r < n; r++) {
            row_ptr[r] = nnz;
            for (int64_t j = 0; j < k; j++)
                if ((es == 1 ? wq[r * k + j] != 0 : w[r * k + j] != 0.0f) && (r * 7 + j * 3) % 5 < 2) {
                    col[nnz] = (int32_t)j;
                    PUT(r * k + j);
                    nnz++;
                }
        }
        row_ptr[n] = nnz;
        m.nnz = nnz;
        m.row_ptr = row_ptr;
        m.col_idx = col;
    } else if (format == ISTHMUS_SPARSE_BSR) { /* 1x4 blocks, every other block column */
        m.block_rows = 1;
        m.block_cols = 4;
        int64_t blocks = 0;
        for (int64_t r = 0; r < n; r++) {
            row_ptr[r] = blocks;
            for (int64_t bc = (r & 1); bc < k / 4; bc += 2) {
                col[blocks++] = (int32_t)bc;
                for (int64_t j = 0; j < 4; j++) {
                    PUT(r * k + bc * 4 + j);
                    nnz++;
                }
            }
        }
        row_ptr[n] = blocks;
        m.nnz = blocks;
        m.row_ptr = row_ptr;
        m.col_idx = col;
    } else { /* 2:4: keep in-group indices 1 and 3 */
        for (int64_t r = 0; r < n; r++)
            for (int64_t g = 0; g < k / 4; g++) {
                PUT(r * k + 4 * g + 1);
                nnz++;
                PUT(r * k + 4 * g + 3);
                nnz++;
                meta[r * ((k + 15) / 16) + g / 4] |= (uint16_t)((1 | 3 << 2) << (4 * (g % 4)));
            }
        m.meta = meta;
    }
#undef PUT
    int64_t bytes = 0;
    CHECK_OK(isthmus_sparse_packed_size(&m, &bytes));
    void *packed = galloc((size_t)bytes);
    CHECK_OK(isthmus_sparse_pack(&m, packed, bytes));
    free(row_ptr); free(col); free(vals); free(meta);
    return packed;
}

static void t_spmm(void) {
    uint64_t s = t_seed;
    const int64_t n = 40, k = 96;
    float *w = rand_f32(&s, n * k, -1, 1);
    int8_t *wq = rand_s8(&s, n * k);
    float *ws = rand_f32(&s, n, 0.01f, 0.1f);
    float *bias = rand_f32(&s, n, -1, 1);
    const int64_t mmax = 19;
    float *x = rand_f32(&s, mmax * k, -1, 1);
    int8_t *xq = rand_s8(&s, mmax * k);
    float *xs = rand_f32(&s, mmax, 0.01f, 0.1f);
    float *y = galloc((size_t)(mmax * n * 4));
    int32_t *c = galloc((size_t)(mmax * n * 4));
    static const char *fmt[3] = {"CSR", "BSR 1x4", "2:4"};
    int total = 0;
    FOR_EACH_ISA(isa) {
        isthmus_set_isa_cap(isa);
        for (int32_t f = 0; f < 3; f++)
            for (int32_t dt = 0; dt < 2; dt++) {
                void *packed = pack_sparse(f, dt, w, wq, ws, n, k);
                const int64_t ms[2] = {1, mmax};
                for (int mi = 0; mi < 2; mi++)
                    for (int raw = 0; raw < 1 + dt; raw++) {
                        int64_t m = ms[mi];
                        spmm_ctx sc = {.a = {.m = m, .w_packed = packed, .bias = raw ? NULL : bias}};
                        if (dt == ISTHMUS_DTYPE_F32) {
                            sc.a.x = x;
                            sc.a.ldx = k;
                        } else {
                            sc.a.xq = xq;
                            sc.a.ldxq = k;
                            sc.a.x_scales = raw ? NULL : xs;
                        }
                        if (raw) {
                            sc.a.c = c;
                            sc.a.ldc = n;
                        } else {
                            sc.a.y = y;
                            sc.a.ldy = n;
                        }
                        char name[96];
                        snprintf(name, sizeof name, "spmm %s %s M=%lld%s (%s)", fmt[f], dt ? "s8" : "f32",
                                 (long long)m, raw ? " int32" : "", isthmus_isa_name(isa));
                        op o = {name, run_spmm, NULL, {raw ? (void *)c : (void *)y}, {(size_t)(m * n * 4)}, &sc};
                        total += sweep(&o);
                    }
                gfree(packed);
            }
    }
    if (isthmus_isa_supported() > ISTHMUS_ISA_REF) CHECK(total >= 1, "spmm swept %d failures", total);
    printf("    spmm %d allocation failures swept\n", total);
    gfree(w); gfree(wq); gfree(ws); gfree(bias); gfree(x); gfree(xq); gfree(xs); gfree(y); gfree(c);
}

/* ---------------------------------------------------------------- sampling, verification */

typedef struct sample_ctx {
    isthmus_sample_args a;
} sample_ctx;

static isthmus_status run_sample(op *o) {
    return isthmus_sample(&((sample_ctx *)o->ctx)->a);
}

typedef struct verify_ctx {
    isthmus_verify_args a;
} verify_ctx;

static isthmus_status run_verify(op *o) {
    return isthmus_verify(&((verify_ctx *)o->ctx)->a);
}

static void t_sample_verify(void) {
    uint64_t s = t_seed;
    const int64_t rows = 5, vocab = 1000;
    float *logits = rand_f32(&s, rows * vocab, -5, 5);
    float *probs = galloc((size_t)(rows * vocab * 4));
    int32_t tokens[5];
    uint64_t streams[5] = {1, 2, 3, 4, 5};
    int32_t history[6] = {3, 9, 3, 500, 7, 999};
    int64_t offs[6] = {0, 2, 2, 4, 5, 6};
    isthmus_sampling_params p = {.temperature = 0.8f, .top_k = 50, .top_p = 0.9f, .min_p = 0.01f,
                                 .repetition_penalty = 1.2f};
    int ts = 0, tv = 0, tt = 0;
    FOR_EACH_ISA(isa) {
        isthmus_set_isa_cap(isa);
        sample_ctx sc = {.a = {.rows = rows, .vocab = vocab, .logits = logits, .ld = vocab, .params = &p,
                               .history = history, .history_offsets = offs, .seed = 11, .streams = streams,
                               .tokens = tokens, .probs = probs, .ldp = vocab}};
        op os = {"sample", run_sample, NULL, {tokens, probs}, {sizeof tokens, (size_t)(rows * vocab * 4)}, &sc};
        ts += sweep(&os);

        /* verify: B = 2 chains of 4 tokens, then a tree with siblings */
        const int32_t B = 2, T = 4;
        float *tl = rand_f32(&s, B * (T + 1) * vocab, -3, 3);
        float *dl = rand_f32(&s, B * T * vocab, -3, 3);
        int32_t draft[8], accepted[2], out[10], path[8];
        for (int i = 0; i < 8; i++) draft[i] = (int32_t)rng_int(&s, 0, vocab - 1);
        isthmus_sampling_params vp = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                                      .repetition_penalty = 1.0f};
        verify_ctx vc = {.a = {.batch = B, .nodes = T, .vocab = vocab, .parents = NULL,
                               .tree_mode = ISTHMUS_TREE_WITH_REPLACEMENT, .greedy = 0, .draft_tokens = draft,
                               .ld_tokens = T, .draft = {.kind = ISTHMUS_DIST_LOGITS, .data = dl, .ld = vocab, .params = vp},
                               .target = {.kind = ISTHMUS_DIST_LOGITS, .data = tl, .ld = vocab, .params = vp},
                               .seed = 5, .streams = streams, .accepted = accepted, .tokens = out, .ld_out = T + 1,
                               .path = path, .ld_path = T}};
        op ov = {"verify chain", run_verify, NULL, {accepted, out, path}, {sizeof accepted, sizeof out, sizeof path},
                 &vc};
        tv += sweep(&ov);
        int32_t parents[4] = {-1, -1, 0, 0};
        for (int b = 0; b < B; b++) { /* distinct siblings for WITHOUT_REPLACEMENT */
            draft[b * T + 1] = (draft[b * T + 0] + 1) % (int32_t)vocab;
            draft[b * T + 3] = (draft[b * T + 2] + 1) % (int32_t)vocab;
        }
        vc.a.parents = parents;
        vc.a.tree_mode = ISTHMUS_TREE_WITHOUT_REPLACEMENT;
        op ot = {"verify tree", run_verify, NULL, {accepted, out, path}, {sizeof accepted, sizeof out, sizeof path},
                 &vc};
        tt += sweep(&ot);
        gfree(tl);
        gfree(dl);
    }
    CHECK(ts >= 1 && tv >= 1 && tt >= 1, "swept sample %d, verify %d, tree %d", ts, tv, tt);
    printf("    sample %d, verify %d, verify tree %d allocation failures swept\n", ts, tv, tt);
    gfree(logits);
    gfree(probs);
}

/* ---------------------------------------------------------------- the thread pool */

/* When the pool cannot be made, calls run single-threaded: same results, nothing leaked. */
static void t_pool(void) {
    uint64_t s = t_seed;
    const int64_t rows = 512, dim = 256;
    float *x = rand_f32(&s, rows * dim, -2, 2);
    float *wt = rand_f32(&s, dim, 0.5f, 1.5f);
    float *y = galloc((size_t)(rows * dim * 4)), *ref = galloc((size_t)(rows * dim * 4));
    isthmus_rmsnorm_args a = {.rows = rows, .dim = dim, .x = x, .ldx = dim, .weight = wt, .eps = 1e-5f, .y = ref,
                              .ldy = dim};
    CHECK_OK(isthmus_set_num_threads(1));
    CHECK_OK(isthmus_rmsnorm(&a));
    /* a pool of 2 (whose workers have no scratch buffers), so every step below rebuilds it */
    CHECK_OK(isthmus_set_num_threads(2));
    a.y = y;
    CHECK_OK(isthmus_rmsnorm(&a));
    CHECK(memcmp(y, ref, (size_t)(rows * dim * 4)) == 0, "rmsnorm on 2 threads differs from 1 thread");
    int made = 0;
    for (int k = 0; k < 10 && !made; k++) {
        /* a thread count other than the pool's makes the next parallel call rebuild the pool */
        CHECK_OK(isthmus_set_num_threads(k % 2 ? 3 : 4));
        isthmus_release_thread_scratch();
        isthmus_memory_stats before, after;
        isthmus_get_memory_stats(&before);
        memset(y, 0x7F, (size_t)(rows * dim * 4));
        isthmus_set_alloc_failure(k);
        isthmus_status st = isthmus_rmsnorm(&a);
        isthmus_set_alloc_failure(-1);
        isthmus_release_thread_scratch();
        isthmus_get_memory_stats(&after);
        CHECK(st == ISTHMUS_OK, "rmsnorm with allocation %d failing returned %d: %s", k, st, isthmus_last_error());
        CHECK(memcmp(y, ref, (size_t)(rows * dim * 4)) == 0, "rmsnorm with allocation %d failing: wrong result", k);
        made = after.pool_threads > 0;
        /* the old pool (2 allocations, if there was one) is gone; a new one (2) exists only if made */
        int64_t want = before.live_allocs - (before.pool_threads > 0 ? 2 : 0) + (made ? 2 : 0);
        CHECK(after.live_allocs == want, "pool with allocation %d failing: live_allocs %lld, want %lld", k,
              (long long)after.live_allocs, (long long)want);
        if (made) CHECK(k >= 2, "the pool was made with allocation %d failing (it needs 2)", k);
        else CHECK(after.failed_allocs > before.failed_allocs, "allocation %d: nothing failed", k);
    }
    CHECK(made, "the pool was never made");
    CHECK_OK(isthmus_set_num_threads(1));
    gfree(x); gfree(wt); gfree(y); gfree(ref);
}

static void single_threaded(void (*fn)(void)) {
    int32_t threads = isthmus_get_num_threads();
    CHECK_OK(isthmus_set_num_threads(1));
    fn();
    isthmus_set_alloc_failure(-1);
    isthmus_set_num_threads(threads);
}

static void t_gemm_st(void) { single_threaded(t_gemm); }
static void t_kv_st(void) { single_threaded(t_kv_attention); }
static void t_rope_st(void) { single_threaded(t_rope); }
static void t_prune_st(void) { single_threaded(t_prune); }
static void t_spmm_st(void) { single_threaded(t_spmm); }
static void t_sample_st(void) { single_threaded(t_sample_verify); }

static void t_pool_restore(void) {
    int32_t threads = isthmus_get_num_threads();
    t_pool();
    isthmus_set_num_threads(threads);
}

const test_case reliability_tests[] = {
    {"reliability", "oom_gemm", t_gemm_st},
    {"reliability", "oom_kv_attention", t_kv_st},
    {"reliability", "oom_rope", t_rope_st},
    {"reliability", "oom_prune", t_prune_st},
    {"reliability", "oom_spmm", t_spmm_st},
    {"reliability", "oom_sample_verify", t_sample_st},
    {"reliability", "oom_pool", t_pool_restore},
    {NULL, NULL, NULL},
};
