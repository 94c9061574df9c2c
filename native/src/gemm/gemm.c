/* Public INT8 GEMM entries: packing, validation, dispatch on the packed layout, and the threaded
 * driver that splits the output into (row block x panel range) tasks for the variant's tile function. */
#include "gemm.h"
#include "../quant/quant.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#define ALIGN64(x) (((x) + 63) & ~(int64_t)63)

/* ------------------------------------------------------------------------------ packing */

static int group_ok(int64_t g) { return g == 32 || g == 64 || g == 128 || g == 256; }

static void derive(packed_hdr *h, const GEMM_S8_kernel *kern);

static isthmus_status layout(const isthmus_gemm_pack_args *a, packed_hdr *h) {
    const char *fn = "isthmus_gemm_s8_pack";
    if (a->n <= 0 || a->k <= 0)
        return FAIL_ARG("%s: n = %lld, k = %lld, both must be >= 1", fn, (long long)a->n, (long long)a->k);
    if (a->k > ISTHMUS_GEMM_MAX_K)
        return FAIL_ARG("%s: k = %lld exceeds ISTHMUS_GEMM_MAX_K = %d (int32 accumulators would "
                        "overflow)", fn, (long long)a->k, ISTHMUS_GEMM_MAX_K);
    if (a->ldw < a->k) return FAIL_ARG("%s: ldw = %lld < k = %lld", fn, (long long)a->ldw, (long long)a->k);
    if (!isthmus__extent_ok(a->n, a->ldw) || a->n > ISTHMUS_MAX_ELEMS / ISTHMUS_GEMM_MAX_K)
        return FAIL_ARG("%s: n = %lld with ldw = %lld is too large", fn, (long long)a->n, (long long)a->ldw);
    if (a->w_granularity < ISTHMUS_SCALE_PER_TENSOR || a->w_granularity > ISTHMUS_SCALE_PER_GROUP)
        return FAIL_ARG("%s: w_granularity = %d, must be ISTHMUS_SCALE_PER_TENSOR (0), _PER_ROW (1) "
                        "or _PER_GROUP (2)", fn, a->w_granularity);
    if (a->w_granularity == ISTHMUS_SCALE_PER_GROUP) {
        if (!group_ok(a->group))
            return FAIL_ARG("%s: group = %lld, must be 32, 64, 128 or 256 with PER_GROUP scales", fn,
                            (long long)a->group);
    } else if (a->group != 0) {
        return FAIL_ARG("%s: group = %lld, must be 0 unless w_granularity is PER_GROUP", fn,
                        (long long)a->group);
    }
    int32_t isa = isthmus__isa_active();
    const GEMM_S8_kernel *kern = isthmus__kernel(ISTHMUS_OP_GEMM_S8, isa);
    if (kern == NULL) return isthmus__fail(ISTHMUS_ERR_INTERNAL, "%s: no GEMM kernel for isa %d", fn, isa);
    memset(h, 0, sizeof *h);
    h->isa = isa;
    h->w_gran = a->w_granularity;
    h->has_scales = a->w_scales != NULL;
    h->n = a->n;
    h->k = a->k;
    h->group = a->group;
    derive(h, kern);
    return ISTHMUS_OK;
}

/* Fills every field of h that follows from (isa, w_gran, has_scales, n, k, group) and the kernel. */
static void derive(packed_hdr *h, const GEMM_S8_kernel *kern) {
    h->magic = ISTHMUS_PACK_MAGIC;
    h->version = ISTHMUS_PACK_VERSION;
    h->nr = kern->nr;
    h->comp = kern->comp;
    h->reserved = 0;
    h->kp = (h->k + 3) & ~(int64_t)3;
    h->ngroups = h->group > 0 ? (h->k + h->group - 1) / h->group : 1;
    h->npanels = (h->n + h->nr - 1) / h->nr;
    int64_t wbytes = h->npanels * h->kp * h->nr;
    int64_t vbytes = h->npanels * h->ngroups * h->nr * 4;
    h->off_w = ISTHMUS_PACK_HEADER;
    h->off_comp = h->off_w + ALIGN64(wbytes);
    h->off_scales = h->off_comp + (h->comp ? ALIGN64(vbytes) : 0);
    h->total = h->off_scales + (h->has_scales ? ALIGN64(vbytes) : 0);
}

isthmus_status isthmus_gemm_s8_packed_size(const isthmus_gemm_pack_args *a, int64_t *bytes) {
    CHECK_PTR(a, "args");
    CHECK_PTR(bytes, "bytes");
    packed_hdr h = {0};
    isthmus_status st = layout(a, &h);
    if (st) return st;
    *bytes = h.total;
    return ISTHMUS_OK;
}

isthmus_status isthmus_gemm_s8_pack(const isthmus_gemm_pack_args *a) {
    CHECK_PTR(a, "args");
    packed_hdr h = {0};
    isthmus_status st = layout(a, &h);
    if (st) return st;
    CHECK_PTR(a->w, "w");
    CHECK_PTR(a->packed, "packed");
    if (((uintptr_t)a->packed & 63) != 0)
        return FAIL_ARG("isthmus_gemm_s8_pack: packed = %p is not 64-byte aligned", a->packed);
    if (a->packed_size < h.total)
        return FAIL_ARG("isthmus_gemm_s8_pack: packed_size = %lld < %lld bytes needed for n = %lld, "
                        "k = %lld", (long long)a->packed_size, (long long)h.total, (long long)h.n,
                        (long long)h.k);
    /* validate all input before writing anything */
    for (int64_t n = 0; n < h.n; n++) {
        const int8_t *row = a->w + n * a->ldw;
        for (int64_t k = 0; k < h.k; k++)
            if (row[k] == -128)
                return FAIL_ARG("isthmus_gemm_s8_pack: w[%lld, %lld] = -128; weights must be in "
                                "[-127, 127]", (long long)n, (long long)k);
    }
    int64_t nsc = h.has_scales ? isthmus_scale_count(h.n, h.k, h.w_gran, h.group) : 0;
    for (int64_t i = 0; i < nsc; i++)
        if (!isfinite(a->w_scales[i]))
            return FAIL_ARG("isthmus_gemm_s8_pack: w_scales[%lld] = %f is not finite", (long long)i,
                            (double)a->w_scales[i]);

    uint8_t *base = a->packed;
    memset(base, 0, (size_t)h.total);
    memcpy(base, &h, sizeof h);
    int8_t *wp = (int8_t *)(base + h.off_w);
    const int64_t nr = h.nr, kp = h.kp, ng = h.ngroups, glen = gemm_group_len(&h);
    for (int64_t n = 0; n < h.n; n++) {
        const int8_t *row = a->w + n * a->ldw;
        int64_t p = n / nr, j = n % nr;
        int8_t *pan = wp + p * kp * nr;
        for (int64_t k = 0; k < h.k; k++) pan[(k >> 2) * nr * 4 + j * 4 + (k & 3)] = row[k];
        for (int64_t g = 0; g < ng; g++) {
            int64_t k0 = g * glen, k1 = k0 + glen < h.k ? k0 + glen : h.k;
            int64_t vi = (p * ng + g) * nr + j;
            if (h.comp) {
                int32_t s = 0;
                for (int64_t k = k0; k < k1; k++) s += row[k];
                ((int32_t *)(base + h.off_comp))[vi] = 128 * s;
            }
            if (h.has_scales) {
                float sc = h.w_gran == ISTHMUS_SCALE_PER_TENSOR ? a->w_scales[0]
                         : h.w_gran == ISTHMUS_SCALE_PER_ROW    ? a->w_scales[n]
                                                                : a->w_scales[n * ng + g];
                ((float *)(base + h.off_scales))[vi] = sc;
            }
        }
    }
    return ISTHMUS_OK;
}

static isthmus_status read_header(const char *fn, const void *packed, const packed_hdr **out) {
    if (packed == NULL) return FAIL_ARG("%s: w_packed is NULL", fn);
    if (((uintptr_t)packed & 63) != 0) return FAIL_ARG("%s: w_packed is not 64-byte aligned", fn);
    const packed_hdr *h = packed;
    if (h->magic != ISTHMUS_PACK_MAGIC || h->version != ISTHMUS_PACK_VERSION)
        return FAIL_ARG("%s: w_packed does not hold weights packed by isthmus_gemm_s8_pack "
                        "(bad magic or version)", fn);
    /* Every field the kernels rely on (shape, section offsets, panel width) must be what
     * isthmus_gemm_s8_pack writes for the header's own (isa, granularity, scales, n, k, group);
     * a header that was altered is refused instead of steering reads out of the buffer. */
    int fields_ok = h->isa >= ISTHMUS_ISA_REF && h->isa <= ISTHMUS_ISA_AVX512 &&
                    h->w_gran >= ISTHMUS_SCALE_PER_TENSOR && h->w_gran <= ISTHMUS_SCALE_PER_GROUP &&
                    (h->has_scales == 0 || h->has_scales == 1) && h->n >= 1 &&
                    h->n <= ISTHMUS_MAX_ELEMS / ISTHMUS_GEMM_MAX_K && h->k >= 1 && h->k <= ISTHMUS_GEMM_MAX_K &&
                    (h->w_gran == ISTHMUS_SCALE_PER_GROUP ? group_ok(h->group) : h->group == 0);
    if (fields_ok) {
        const GEMM_S8_kernel *kern = isthmus__kernel(ISTHMUS_OP_GEMM_S8, h->isa);
        if (kern == NULL)
            return isthmus__fail(ISTHMUS_ERR_UNSUPPORTED, "%s: the weights were packed for %s, which this "
                                 "CPU does not support: pack them again here", fn, isthmus_isa_name(h->isa));
        packed_hdr want;
        memcpy(&want, h, sizeof want);
        derive(&want, kern);
        fields_ok = memcmp(&want, h, sizeof want) == 0;
    }
    if (!fields_ok)
        return FAIL_ARG("%s: the header of w_packed is corrupted (its fields disagree with what "
                        "isthmus_gemm_s8_pack writes): pack the weights again", fn);
    *out = h;
    return ISTHMUS_OK;
}

isthmus_status isthmus_gemm_s8_packed_info(const void *packed, isthmus_packed_info *out) {
    CHECK_PTR(out, "out");
    const packed_hdr *h = NULL;
    isthmus_status st = read_header("isthmus_gemm_s8_packed_info", packed, &h);
    if (st) return st;
    out->n = h->n;
    out->k = h->k;
    out->group = h->group;
    out->isa = h->isa;
    out->w_granularity = h->w_gran;
    out->has_scales = h->has_scales;
    return ISTHMUS_OK;
}

/* ------------------------------------------------------------------------------ driver */

typedef struct gemm_job {
    const gemm_problem *p;
    const GEMM_S8_kernel *kern;
    int64_t mb, nmb;     /* rows per task, row blocks */
    int64_t pc, npc;     /* panels per task, panel chunks */
} gemm_job;

static void gemm_task(void *ctx, int64_t t) {
    const gemm_job *j = ctx;
    int64_t ci = t / j->nmb, mi = t % j->nmb;
    int64_t m0 = mi * j->mb, m1 = m0 + j->mb < j->p->m ? m0 + j->mb : j->p->m;
    int64_t p0 = ci * j->pc, p1 = p0 + j->pc < j->p->w->npanels ? p0 + j->pc : j->p->w->npanels;
    if (m0 < m1 && p0 < p1) j->kern->tile(j->p, m0, m1, p0, p1);
}

/* Repacks A for kernels that ask (mr > 0): tiles of mr rows, for each 4-deep K slice the mr rows'
 * 4 bytes side by side, so the micro-kernel broadcasts from consecutive addresses; zero past K and
 * past M. */
typedef struct apack_job { const gemm_problem *p; int32_t *ap; int64_t mr, kp4; uint32_t x; int abs; } apack_job;

/* bytewise |v| of 4 packed int8 (|-128| = 0x80, read as unsigned 128 by maddubs) */
static inline uint32_t abs4(uint32_t v) {
    uint32_t r = 0;
    for (int b = 0; b < 4; b++) {
        int8_t x = (int8_t)(v >> (8 * b));
        r |= (uint32_t)(uint8_t)(x < 0 ? -x : x) << (8 * b);
    }
    return r;
}

static void apack_task(void *ctx, int64_t t) {
    const apack_job *j = ctx;
    const gemm_problem *p = j->p;
    const int64_t stride = j->abs ? 2 * j->mr : j->mr; /* words per K slice of a tile */
    int32_t *dst = j->ap + t * j->kp4 * stride;
    for (int64_t r = 0; r < j->mr; r++) {
        int64_t m = t * j->mr + r;
        const int8_t *row = m < p->m ? p->a + m * p->lda : NULL;
        int64_t kfull = p->k / 4;
        for (int64_t k4 = 0; k4 < j->kp4; k4++) {
            uint32_t v = 0;
            if (row != NULL && k4 < kfull) memcpy(&v, row + 4 * k4, 4);
            else if (row != NULL) v = (uint32_t)gemm_load_a4(row, k4, p->k);
            dst[k4 * stride + r] = (int32_t)(v ^ j->x);
            if (j->abs) dst[k4 * stride + j->mr + r] = (int32_t)abs4(v);
        }
    }
}

static isthmus_status run(const char *fn, gemm_problem *p, const GEMM_S8_kernel *kern) {
    int64_t threads = isthmus__threads();
    int64_t npanels = p->w->npanels;
    int32_t *ap = NULL;
    if (kern->mr > 0) {
        /* rows per tile: the fewest tiles, then the most even ones (8 rows = 4 + 4, not 6 + 2:
         * a short tile reloads the whole weight panel for little work) */
        int64_t amr = kern->mr, best_tiles = INT64_MAX, best_min = 0;
        for (int64_t c = kern->mr; c > kern->mr / 2; c--) {
            int64_t t = (p->m + c - 1) / c, last = p->m - (t - 1) * c;
            if (t < best_tiles || (t == best_tiles && last > best_min)) {
                best_tiles = t;
                best_min = last;
                amr = c;
            }
        }
        p->amr = amr;
        int64_t kp4 = p->w->kp / 4, tiles = (p->m + amr - 1) / amr;
        int64_t bytes = tiles * kp4 * amr * 4 * (kern->a_abs ? 2 : 1);
        ap = isthmus__aligned_alloc((size_t)bytes);
        if (ap == NULL)
            return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: cannot allocate %lld bytes to repack A", fn,
                                 (long long)bytes);
        apack_job aj = {p, ap, amr, kp4, kern->a_xor ? 0x80808080u : 0u, kern->a_abs};
        isthmus__parallel_for(tiles, apack_task, &aj);
        p->ap = ap;
    }
    gemm_job j = {.p = p, .kern = kern};
    /* Row blocks (a multiple of mr, about 192 rows) keep a block of A in L2 while a panel of W is
     * reused across it; small M (decode) is one row block, and the panels are split finely so every
     * core streams W. */
    int64_t mr = kern->mr > 0 ? p->amr : 1;
    int64_t mb = (192 / mr) * mr;
    j.mb = p->m <= mb ? p->m : mb;
    j.nmb = (p->m + j.mb - 1) / j.mb;
    int64_t want = threads * 8;
    int64_t npc = j.nmb >= want ? 1 : (want + j.nmb - 1) / j.nmb;
    if (npc > npanels) npc = npanels;
    j.pc = (npanels + npc - 1) / npc;
    j.npc = (npanels + j.pc - 1) / j.pc;
    isthmus__parallel_for(j.nmb * j.npc, gemm_task, &j);
    isthmus__aligned_free(ap);
    return ISTHMUS_OK;
}

static isthmus_status pick_kernel(const char *fn, isthmus_op op, const packed_hdr *h,
                                  const GEMM_S8_kernel **out) {
    int32_t active = isthmus__isa_active();
    int32_t isa = active == ISTHMUS_ISA_REF ? ISTHMUS_ISA_REF : h->isa;
    if (isa > active)
        return isthmus__fail(ISTHMUS_ERR_UNSUPPORTED,
                             "%s: the weights were packed for %s but the active ISA is %s (cap or "
                             "CPU): pack them again under the active ISA",
                             fn, isthmus_isa_name(h->isa), isthmus_isa_name(active));
    const GEMM_S8_kernel *k = isthmus__kernel(op, isa);
    if (k == NULL) return isthmus__fail(ISTHMUS_ERR_INTERNAL, "%s: no kernel for %s", fn, isthmus_isa_name(isa));
    *out = k;
    return ISTHMUS_OK;
}

static isthmus_status check_shape(const char *fn, int64_t m, int64_t n, int64_t k, const packed_hdr *h,
                                  int64_t lda, int64_t ldo) {
    if (m <= 0) return FAIL_ARG("%s: m = %lld, must be >= 1", fn, (long long)m);
    if (n != h->n || k != h->k)
        return FAIL_ARG("%s: n = %lld, k = %lld, but w_packed holds W[%lld, %lld]", fn, (long long)n,
                        (long long)k, (long long)h->n, (long long)h->k);
    if (lda < k) return FAIL_ARG("%s: lda = %lld < k = %lld", fn, (long long)lda, (long long)k);
    if (ldo < n) return FAIL_ARG("%s: output stride = %lld < n = %lld", fn, (long long)ldo, (long long)n);
    if (!isthmus__extent_ok(m, lda) || !isthmus__extent_ok(m, ldo))
        return FAIL_ARG("%s: m = %lld with its strides is too large", fn, (long long)m);
    return ISTHMUS_OK;
}

static void attach_weights(gemm_problem *p, const packed_hdr *h) {
    const uint8_t *base = (const uint8_t *)h;
    p->w = h;
    p->wp = (const int8_t *)(base + h->off_w);
    p->comp = h->comp ? (const int32_t *)(base + h->off_comp) : NULL;
    p->ws = h->has_scales ? (const float *)(base + h->off_scales) : NULL;
}

/* Sets the activation-scale strides for a granularity; fails for per-group without weight groups. */
static isthmus_status scale_strides(const char *fn, int32_t gran, const packed_hdr *h, gemm_problem *p) {
    switch (gran) {
    case ISTHMUS_SCALE_PER_TENSOR: p->sa_rs = 0; p->sa_gs = 0; return ISTHMUS_OK;
    case ISTHMUS_SCALE_PER_ROW: p->sa_rs = 1; p->sa_gs = 0; return ISTHMUS_OK;
    case ISTHMUS_SCALE_PER_GROUP:
        if (h->group == 0)
            return FAIL_ARG("%s: a_granularity is PER_GROUP but the weights have no K groups (group 0)", fn);
        p->sa_rs = h->ngroups; p->sa_gs = 1; return ISTHMUS_OK;
    default:
        return FAIL_ARG("%s: a_granularity = %d, must be ISTHMUS_SCALE_PER_TENSOR (0), _PER_ROW (1) "
                        "or _PER_GROUP (2)", fn, gran);
    }
}

isthmus_status isthmus_gemm_s8(const isthmus_gemm_s8_args *a) {
    const char *fn = "isthmus_gemm_s8";
    CHECK_PTR(a, "args");
    const packed_hdr *h = NULL;
    isthmus_status st = read_header(fn, a->w_packed, &h);
    if (st) return st;
    if ((st = check_shape(fn, a->m, a->n, a->k, h, a->lda, a->ldy))) return st;
    if (!h->has_scales)
        return FAIL_ARG("%s: w_packed was packed without w_scales; use isthmus_gemm_s8_s32 or pack "
                        "with scales", fn);
    CHECK_PTR(a->a, "a");
    CHECK_PTR(a->a_scales, "a_scales");
    CHECK_PTR(a->y, "y");
    gemm_problem p = {.m = a->m, .n = a->n, .k = a->k, .a = a->a, .lda = a->lda, .sa = a->a_scales,
                      .bias = a->bias, .y = a->y, .ldy = a->ldy};
    if ((st = scale_strides(fn, a->a_granularity, h, &p))) return st;
    attach_weights(&p, h);
    const GEMM_S8_kernel *k;
    if ((st = pick_kernel(fn, ISTHMUS_OP_GEMM_S8, h, &k))) return st;
    return run(fn, &p, k);
}

isthmus_status isthmus_gemm_s8_s32(const isthmus_gemm_s8_s32_args *a) {
    const char *fn = "isthmus_gemm_s8_s32";
    CHECK_PTR(a, "args");
    const packed_hdr *h = NULL;
    isthmus_status st = read_header(fn, a->w_packed, &h);
    if (st) return st;
    if ((st = check_shape(fn, a->m, a->n, a->k, h, a->lda, a->ldc))) return st;
    CHECK_PTR(a->a, "a");
    CHECK_PTR(a->c, "c");
    gemm_problem p = {.m = a->m, .n = a->n, .k = a->k, .a = a->a, .lda = a->lda, .c = a->c, .ldc = a->ldc};
    attach_weights(&p, h);
    const GEMM_S8_kernel *k;
    if ((st = pick_kernel(fn, ISTHMUS_OP_GEMM_S8_S32, h, &k))) return st;
    return run(fn, &p, k);
}

/* The fused path quantizes rows of X on the pool; a task that meets a non-finite value records its
 * first row, and the caller re-runs that row to raise the error on its own thread (the message is
 * thread-local). */
typedef struct fquant_job {
    const QUANTIZE_S8_kernel *qk;
    const float *x;
    int64_t ldx, m, k, group, rows_per_task;
    int8_t *aq;
    float *sa;
    _Atomic int64_t bad_row;
} fquant_job;

static void fquant_task(void *ctx, int64_t t) {
    fquant_job *j = ctx;
    int64_t r0 = t * j->rows_per_task, r1 = r0 + j->rows_per_task < j->m ? r0 + j->rows_per_task : j->m;
    for (int64_t r = r0; r < r1; r++)
        if (isthmus__quantize_rows(j->qk, j->x, j->ldx, r, r + 1, j->k, j->group, j->aq, j->k, j->sa) != ISTHMUS_OK) {
            int64_t cur = atomic_load(&j->bad_row);
            while (r < cur && !atomic_compare_exchange_weak(&j->bad_row, &cur, r)) {}
            return;
        }
}

static isthmus_status quantize_activations(const QUANTIZE_S8_kernel *qk, const float *x, int64_t ldx, int64_t m,
                                           int64_t k, int64_t group, int8_t *aq, float *sa) {
    fquant_job j = {qk, x, ldx, m, k, group, 0, aq, sa, m};
    int64_t threads = isthmus__threads();
    /* at least 64 KB of input per task so small (decode) calls stay on the caller */
    int64_t min_rows = (16384 + k - 1) / k;
    j.rows_per_task = (m + threads - 1) / threads;
    if (j.rows_per_task < min_rows) j.rows_per_task = min_rows;
    isthmus__parallel_for((m + j.rows_per_task - 1) / j.rows_per_task, fquant_task, &j);
    int64_t bad = atomic_load(&j.bad_row);
    if (bad < m) return isthmus__quantize_rows(qk, x, ldx, bad, bad + 1, k, group, aq, k, sa);
    return ISTHMUS_OK;
}

static int64_t ws_bytes(int64_t m, int64_t k, int64_t ngroups) {
    return ALIGN64(m * k) + m * ngroups * (int64_t)sizeof(float);
}

isthmus_status isthmus_gemm_f32_s8_workspace_size(int64_t m, int64_t k, int64_t group, int64_t *bytes) {
    const char *fn = "isthmus_gemm_f32_s8_workspace_size";
    CHECK_PTR(bytes, "bytes");
    if (m <= 0 || k <= 0 || k > ISTHMUS_GEMM_MAX_K)
        return FAIL_ARG("%s: m = %lld, k = %lld; need m >= 1 and 1 <= k <= %d", fn, (long long)m,
                        (long long)k, ISTHMUS_GEMM_MAX_K);
    if (group != 0 && !group_ok(group))
        return FAIL_ARG("%s: group = %lld, must be 0, 32, 64, 128 or 256", fn, (long long)group);
    if (!isthmus__extent_ok(m, k)) return FAIL_ARG("%s: m = %lld is too large", fn, (long long)m);
    *bytes = ws_bytes(m, k, group > 0 ? (k + group - 1) / group : 1);
    return ISTHMUS_OK;
}

isthmus_status isthmus_gemm_f32_s8(const isthmus_gemm_f32_s8_args *a) {
    const char *fn = "isthmus_gemm_f32_s8";
    CHECK_PTR(a, "args");
    const packed_hdr *h = NULL;
    isthmus_status st = read_header(fn, a->w_packed, &h);
    if (st) return st;
    if ((st = check_shape(fn, a->m, a->n, a->k, h, a->ldx, a->ldy))) return st;
    if (!h->has_scales)
        return FAIL_ARG("%s: w_packed was packed without w_scales", fn);
    CHECK_PTR(a->x, "x");
    CHECK_PTR(a->y, "y");
    int64_t need = ws_bytes(a->m, a->k, h->ngroups);
    void *ws = a->workspace, *owned = NULL;
    if (ws == NULL) {
        ws = owned = isthmus__aligned_alloc((size_t)need);
        if (ws == NULL)
            return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: cannot allocate %lld bytes of workspace",
                                 fn, (long long)need);
    } else if (a->workspace_size < need) {
        return FAIL_ARG("%s: workspace_size = %lld < %lld bytes needed", fn, (long long)a->workspace_size,
                        (long long)need);
    }
    int8_t *aq = ws;
    float *sa = (float *)((uint8_t *)ws + ALIGN64(a->m * a->k));
    const QUANTIZE_S8_kernel *qk = isthmus__kernel(ISTHMUS_OP_QUANTIZE_S8, isthmus__isa_active());
    gemm_problem p = {.m = a->m, .n = a->n, .k = a->k, .a = aq, .lda = a->k, .sa = sa,
                      .bias = a->bias, .y = a->y, .ldy = a->ldy};
    const GEMM_S8_kernel *k = NULL;
    st = scale_strides(fn, h->group > 0 ? ISTHMUS_SCALE_PER_GROUP : ISTHMUS_SCALE_PER_ROW, h, &p);
    if (!st) st = pick_kernel(fn, ISTHMUS_OP_GEMM_S8, h, &k);
    if (!st) st = quantize_activations(qk, a->x, a->ldx, a->m, a->k, h->group, aq, sa);
    if (!st) {
        attach_weights(&p, h);
        st = run(fn, &p, k);
    }
    isthmus__aligned_free(owned);
    return st;
}
