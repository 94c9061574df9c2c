/*
 * CSR + BSR packed layout (format family "blocked"; CSR is 1x1 blocks), shared by every ISA variant.
 *
 * After the 128-byte sparse_hdr, 64-byte aligned sections:
 *   off[0] rp    int64 [R + 1]        block-row pointer (R = N / br), in blocks
 *   off[1] idx   uint16 or uint32     block column of each block (layout BSR_IDX16 when K / bc <= 65536,
 *                [nblocks + BSR_PAD]   else BSR_IDX32), followed by BSR_PAD zero entries
 *   off[2] val   f32 or int8          values of each block, br x bc row-major (exchange order),
 *                [(nblocks + BSR_PAD) * br * bc]   followed by zeros
 *   off[3] scl   f32 [N]              S8 only: per-row weight scales
 * aux[0] = nblocks, aux[1] = R.
 *
 * 16-bit block columns: a CSR f32 nonzero costs 6 bytes (4 value + 2 index), an S8 one 3 bytes; BSR
 * 1x4/1x8/4x4 carry one index per block. The zero padding lets the SIMD kernels load a full vector of
 * indices and values at a row's tail (the lanes past the row are masked off before they count), so no
 * load ever leaves the buffer.
 *
 * The kernels (spmm_bsr_avx2.c, spmm_bsr_avx512.c) include this header a second time with BSR_VW and
 * the vector wrappers defined, which instantiates the shared kernel body below (BSR_KERNEL section).
 */
#ifndef ISTHMUS_BSR_H
#define ISTHMUS_BSR_H

#include "sparse.h"

#define BSR_PAD 64
enum { BSR_IDX16 = 0, BSR_IDX32 = 1 };

typedef struct bsr_view {
    int64_t n, k, R, nblocks;
    int32_t br, bc, dtype, idx16;
    const int64_t *rp;
    const uint16_t *idx16p;
    const uint32_t *idx32p;
    const float *vf;
    const int8_t *vq;
    const float *scl;
} bsr_view;

static inline bsr_view bsr_view_of(const sparse_hdr *h) {
    bsr_view v;
    v.n = h->n;
    v.k = h->k;
    v.br = h->br;
    v.bc = h->bc;
    v.dtype = h->dtype;
    v.idx16 = h->layout == BSR_IDX16;
    v.nblocks = h->aux[0];
    v.R = h->aux[1];
    v.rp = sparse_section(h, h->off[0]);
    v.idx16p = sparse_section(h, h->off[1]);
    v.idx32p = sparse_section(h, h->off[1]);
    v.vf = sparse_section(h, h->off[2]);
    v.vq = sparse_section(h, h->off[2]);
    v.scl = h->dtype == ISTHMUS_DTYPE_S8 ? sparse_section(h, h->off[3]) : NULL;
    return v;
}

/* Block column of block b. */
static inline int64_t bsr_col(const bsr_view *v, int64_t b) {
    return v->idx16 ? (int64_t)v->idx16p[b] : (int64_t)v->idx32p[b];
}

/* bsr_pack.c: shared by all variants; isa is written into the header. */
int64_t bsr_packed_size(const isthmus_sparse_matrix *w);
void bsr_pack(const isthmus_sparse_matrix *w, sparse_hdr *h, int32_t isa);

/* Splits block rows [0, R) into ntask ranges of about equal work (blocks plus a per-row overhead);
 * bounds[0] = 0, bounds[ntask] = R. The split only decides who computes a row, never how. */
static inline void bsr_split(const bsr_view *v, int64_t ntask, int64_t *bounds) {
    const int64_t ovh = 4; /* per-row cost in blocks: reduction, output stores */
    int64_t total = v->rp[v->R] + ovh * v->R;
    bounds[0] = 0;
    for (int64_t t = 1; t < ntask; t++) {
        int64_t target = total / ntask * t + (total % ntask) * t / ntask;
        int64_t lo = bounds[t - 1], hi = v->R; /* first r in [lo, R] with work(r) >= target */
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (v->rp[mid] + ovh * mid >= target) hi = mid;
            else lo = mid + 1;
        }
        bounds[t] = lo;
    }
    bounds[ntask] = v->R;
}

#endif /* ISTHMUS_BSR_H */

/* ======================================================================== BSR_KERNEL
 * The shared SIMD kernel body, instantiated once per ISA file. The including file defines BSR_VW (lanes
 * per vector), VF / VI (float / int32 vector types) and these wrappers:
 *   vzero vset1 vload vstore vadd vmul vfmadd(a, b, c) = a * b + c (one rounding)
 *   vizero viset1 viload vistore viadd vmadd16 (pmaddwd) vcvt (int32 -> f32, round to nearest)
 *   vidx16 / vidx32 (BSR_VW block columns widened to int32), vgather / vigather (scale 4)
 *   vw8 (BSR_VW int8 sign-extended to int32), vmaskf / vmaski (zero lanes >= n), vhsum / vihsum
 *
 * Two paths:
 *  - M == 1, CSR: each row is a dot product of its values with x gathered at its columns, two
 *    independent accumulators; S8 gathers from an int32 copy of xq holding (uint16)(int16)xq, so pmaddwd
 *    with the sign-extended weight gives the exact product (the high halves multiply 0).
 *  - otherwise: X is transposed per chunk of MB = NV * BSR_VW rows into XT[K][MB] (S8: the same int32
 *    form), and every stored value becomes a broadcast-FMA (S8: pmaddwd + add) over a row of XT: one
 *    vector of MB outputs per output row. 4x4 blocks reuse each XT row load for 4 output rows; 1x4 and
 *    1x8 blocks read one index per 4 / 8 values. Rows are processed in groups whose weights fit in L2,
 *    and every chunk of X runs over a group before the next group is read, so each weight byte comes
 *    from DRAM once.
 * Tasks own ranges of block rows balanced by work (bsr_split); how a row is computed never depends on
 * the range it falls in, so results do not depend on the thread count.
 */
#if defined(BSR_VW) && !defined(ISTHMUS_BSR_KERNEL_DONE)
#define ISTHMUS_BSR_KERNEL_DONE

#define BSR_INLINE static inline __attribute__((always_inline))
#define BSR_MAXTASK 256

BSR_INLINE int64_t bsr_c(const bsr_view *v, int64_t b, const int I16) {
    return I16 ? (int64_t)v->idx16p[b] : (int64_t)v->idx32p[b];
}
BSR_INLINE VI bsr_vidx(const bsr_view *v, int64_t b, const int I16) {
    return I16 ? vidx16(v->idx16p + b) : vidx32(v->idx32p + b);
}

/* ---- M == 1, CSR */
BSR_INLINE float bsr_gather_row_f32(const bsr_view *v, int64_t b0, int64_t b1, const float *x, const int I16) {
    VF a0 = vzero(), a1 = vzero();
    int64_t b = b0;
    for (; b + 2 * BSR_VW <= b1; b += 2 * BSR_VW) {
        a0 = vfmadd(vload(v->vf + b), vgather(x, bsr_vidx(v, b, I16)), a0);
        a1 = vfmadd(vload(v->vf + b + BSR_VW), vgather(x, bsr_vidx(v, b + BSR_VW, I16)), a1);
    }
    if (b + BSR_VW <= b1) {
        a0 = vfmadd(vload(v->vf + b), vgather(x, bsr_vidx(v, b, I16)), a0);
        b += BSR_VW;
    }
    if (b < b1) { /* the padding keeps these loads in the buffer; lanes past the row are zeroed */
        int n = (int)(b1 - b);
        a1 = vfmadd(vmaskf(vload(v->vf + b), n), vmaskf(vgather(x, bsr_vidx(v, b, I16)), n), a1);
    }
    return vhsum(vadd(a0, a1));
}

BSR_INLINE int32_t bsr_gather_row_s8(const bsr_view *v, int64_t b0, int64_t b1, const int32_t *xw, const int I16) {
    VI a0 = vizero(), a1 = vizero();
    int64_t b = b0;
    for (; b + 2 * BSR_VW <= b1; b += 2 * BSR_VW) {
        a0 = viadd(a0, vmadd16(vw8(v->vq + b), vigather(xw, bsr_vidx(v, b, I16))));
        a1 = viadd(a1, vmadd16(vw8(v->vq + b + BSR_VW), vigather(xw, bsr_vidx(v, b + BSR_VW, I16))));
    }
    if (b + BSR_VW <= b1) {
        a0 = viadd(a0, vmadd16(vw8(v->vq + b), vigather(xw, bsr_vidx(v, b, I16))));
        b += BSR_VW;
    }
    if (b < b1) a1 = viadd(a1, vmadd16(vmaski(vw8(v->vq + b), (int)(b1 - b)), vigather(xw, bsr_vidx(v, b, I16))));
    return vihsum(viadd(a0, a1));
}

typedef struct bsr_job {
    const spmm_problem *p;
    bsr_view v;
    const int32_t *xw; /* S8 M == 1: the int32 form of xq */
    void *xt;          /* XT chunks [nch][K][MB] */
    int64_t MB, nch, kb, nkb;
    int64_t bounds[BSR_MAXTASK + 1];
} bsr_job;

BSR_INLINE void bsr_gather_task_t(bsr_job *j, int64_t t, const int I16) {
    const spmm_problem *p = j->p;
    const bsr_view *v = &j->v;
    for (int64_t r = j->bounds[t]; r < j->bounds[t + 1]; r++) {
        int64_t b0 = v->rp[r], b1 = v->rp[r + 1];
        if (v->dtype == ISTHMUS_DTYPE_F32) {
            float s = bsr_gather_row_f32(v, b0, b1, p->x, I16);
            p->y[r] = p->bias ? s + p->bias[r] : s;
        } else {
            int32_t acc = bsr_gather_row_s8(v, b0, b1, j->xw, I16);
            if (p->c) p->c[r] = acc;
            else p->y[r] = spmm_s8_out(acc, p->x_scales[0], v->scl[r], p->bias, r);
        }
    }
}
static void bsr_gather_task(void *ctx, int64_t t) {
    bsr_job *j = ctx;
    if (j->v.idx16) bsr_gather_task_t(j, t, 1);
    else bsr_gather_task_t(j, t, 0);
}

/* ---- XT path */
static void bsr_xt_build_task(void *ctx, int64_t t) {
    bsr_job *j = ctx;
    const spmm_problem *p = j->p;
    const int64_t MB = j->MB, K = p->k;
    int64_t ch = t / j->nkb, k0 = (t % j->nkb) * j->kb, k1 = k0 + j->kb < K ? k0 + j->kb : K;
    int64_t m0 = ch * MB, mb = p->m - m0 < MB ? p->m - m0 : MB;
    if (j->v.dtype == ISTHMUS_DTYPE_F32) {
        float *dst = (float *)j->xt + ch * K * MB;
        for (int64_t i = 0; i < mb; i++) {
            const float *src = p->x + (m0 + i) * p->ldx;
            for (int64_t k = k0; k < k1; k++) dst[k * MB + i] = src[k];
        }
        for (int64_t k = k0; k < k1; k++)
            for (int64_t i = mb; i < MB; i++) dst[k * MB + i] = 0.0f;
    } else {
        int32_t *dst = (int32_t *)j->xt + ch * K * MB;
        for (int64_t i = 0; i < mb; i++) {
            const int8_t *src = p->xq + (m0 + i) * p->ldxq;
            for (int64_t k = k0; k < k1; k++) dst[k * MB + i] = (int32_t)(uint16_t)(int16_t)src[k];
        }
        for (int64_t k = k0; k < k1; k++)
            for (int64_t i = mb; i < MB; i++) dst[k * MB + i] = 0;
    }
}

/* acc[r][u] (r < BR, u < NV) = the MB outputs of rows R * BR + r over chunk XT. */
BSR_INLINE void bsr_xt_row_f32(const bsr_view *v, int64_t R, const float *xt, VF acc[4][2], const int BR,
                               const int BC, const int NV, const int I16) {
    const int64_t MB = NV * BSR_VW;
    const int64_t b1 = v->rp[R + 1];
    int64_t b = v->rp[R];
    VF a0[4][2], a1[2];
    for (int r = 0; r < 4; r++)
        for (int u = 0; u < 2; u++) a0[r][u] = vzero();
    a1[0] = a1[1] = vzero();
    if (BR == 1 && BC == 1) {
        for (; b + 2 <= b1; b += 2) {
            const float *x0 = xt + bsr_c(v, b, I16) * MB, *x1 = xt + bsr_c(v, b + 1, I16) * MB;
            VF w0 = vset1(v->vf[b]), w1 = vset1(v->vf[b + 1]);
            for (int u = 0; u < NV; u++) {
                a0[0][u] = vfmadd(w0, vload(x0 + u * BSR_VW), a0[0][u]);
                a1[u] = vfmadd(w1, vload(x1 + u * BSR_VW), a1[u]);
            }
        }
        if (b < b1) {
            const float *x0 = xt + bsr_c(v, b, I16) * MB;
            VF w0 = vset1(v->vf[b]);
            for (int u = 0; u < NV; u++) a0[0][u] = vfmadd(w0, vload(x0 + u * BSR_VW), a0[0][u]);
        }
        for (int u = 0; u < NV; u++) acc[0][u] = vadd(a0[0][u], a1[u]);
    } else if (BR == 1) {
        for (; b < b1; b++) {
            const float *x0 = xt + bsr_c(v, b, I16) * BC * MB, *w = v->vf + b * BC;
            for (int cc = 0; cc < BC; cc += 2) {
                VF w0 = vset1(w[cc]), w1 = vset1(w[cc + 1]);
                for (int u = 0; u < NV; u++) {
                    a0[0][u] = vfmadd(w0, vload(x0 + cc * MB + u * BSR_VW), a0[0][u]);
                    a1[u] = vfmadd(w1, vload(x0 + (cc + 1) * MB + u * BSR_VW), a1[u]);
                }
            }
        }
        for (int u = 0; u < NV; u++) acc[0][u] = vadd(a0[0][u], a1[u]);
    } else {
        for (; b < b1; b++) {
            const float *x0 = xt + bsr_c(v, b, I16) * BC * MB, *w = v->vf + b * BR * BC;
            for (int cc = 0; cc < BC; cc++)
                for (int u = 0; u < NV; u++) {
                    VF xv = vload(x0 + cc * MB + u * BSR_VW);
                    for (int r = 0; r < BR; r++) a0[r][u] = vfmadd(vset1(w[r * BC + cc]), xv, a0[r][u]);
                }
        }
        for (int r = 0; r < BR; r++)
            for (int u = 0; u < NV; u++) acc[r][u] = a0[r][u];
    }
}

BSR_INLINE void bsr_xt_row_s8(const bsr_view *v, int64_t R, const int32_t *xt, VI acc[4][2], const int BR,
                              const int BC, const int NV, const int I16) {
    const int64_t MB = NV * BSR_VW;
    const int64_t b1 = v->rp[R + 1];
    int64_t b = v->rp[R];
    VI a0[4][2], a1[2];
    for (int r = 0; r < 4; r++)
        for (int u = 0; u < 2; u++) a0[r][u] = vizero();
    a1[0] = a1[1] = vizero();
    if (BR == 1 && BC == 1) {
        for (; b + 2 <= b1; b += 2) {
            const int32_t *x0 = xt + bsr_c(v, b, I16) * MB, *x1 = xt + bsr_c(v, b + 1, I16) * MB;
            VI w0 = viset1(v->vq[b]), w1 = viset1(v->vq[b + 1]);
            for (int u = 0; u < NV; u++) {
                a0[0][u] = viadd(a0[0][u], vmadd16(w0, viload(x0 + u * BSR_VW)));
                a1[u] = viadd(a1[u], vmadd16(w1, viload(x1 + u * BSR_VW)));
            }
        }
        if (b < b1) {
            const int32_t *x0 = xt + bsr_c(v, b, I16) * MB;
            VI w0 = viset1(v->vq[b]);
            for (int u = 0; u < NV; u++) a0[0][u] = viadd(a0[0][u], vmadd16(w0, viload(x0 + u * BSR_VW)));
        }
        for (int u = 0; u < NV; u++) acc[0][u] = viadd(a0[0][u], a1[u]);
    } else if (BR == 1) {
        for (; b < b1; b++) {
            const int32_t *x0 = xt + bsr_c(v, b, I16) * BC * MB;
            const int8_t *w = v->vq + b * BC;
            for (int cc = 0; cc < BC; cc += 2) {
                VI w0 = viset1(w[cc]), w1 = viset1(w[cc + 1]);
                for (int u = 0; u < NV; u++) {
                    a0[0][u] = viadd(a0[0][u], vmadd16(w0, viload(x0 + cc * MB + u * BSR_VW)));
                    a1[u] = viadd(a1[u], vmadd16(w1, viload(x0 + (cc + 1) * MB + u * BSR_VW)));
                }
            }
        }
        for (int u = 0; u < NV; u++) acc[0][u] = viadd(a0[0][u], a1[u]);
    } else {
        for (; b < b1; b++) {
            const int32_t *x0 = xt + bsr_c(v, b, I16) * BC * MB;
            const int8_t *w = v->vq + b * BR * BC;
            for (int cc = 0; cc < BC; cc++)
                for (int u = 0; u < NV; u++) {
                    VI xv = viload(x0 + cc * MB + u * BSR_VW);
                    for (int r = 0; r < BR; r++) a0[r][u] = viadd(a0[r][u], vmadd16(viset1(w[r * BC + cc]), xv));
                }
        }
        for (int r = 0; r < BR; r++)
            for (int u = 0; u < NV; u++) acc[r][u] = a0[r][u];
    }
}

/* Rows [R0, R1) of the task, grouped so that a group's weights stay in L2 while every chunk runs. */
BSR_INLINE void bsr_xt_task_t(bsr_job *j, int64_t t, const int BR, const int BC, const int NV, const int I16) {
    const spmm_problem *p = j->p;
    const bsr_view *v = &j->v;
    const int64_t MB = NV * BSR_VW, K = p->k, bs = BR * BC;
    const int64_t esize = v->dtype == ISTHMUS_DTYPE_F32 ? 4 : 1;
    const int64_t gbytes = 192 * 1024;
    float tf[2 * BSR_VW] __attribute__((aligned(64)));
    int32_t ti[2 * BSR_VW] __attribute__((aligned(64)));
    float sx[2 * BSR_VW] __attribute__((aligned(64)));
    int64_t R1 = j->bounds[t + 1];
    for (int64_t g0 = j->bounds[t], g1; g0 < R1; g0 = g1) {
        g1 = g0 + 1;
        while (g1 < R1 && (v->rp[g1] - v->rp[g0]) * bs * esize < gbytes) g1++;
        for (int64_t ch = 0; ch < j->nch; ch++) {
            int64_t m0 = ch * MB, mb = p->m - m0 < MB ? p->m - m0 : MB;
            if (v->dtype == ISTHMUS_DTYPE_F32) {
                const float *xt = (const float *)j->xt + ch * K * MB;
                for (int64_t R = g0; R < g1; R++) {
                    VF acc[4][2];
                    bsr_xt_row_f32(v, R, xt, acc, BR, BC, NV, I16);
                    for (int r = 0; r < BR; r++) {
                        int64_t jj = R * BR + r;
                        for (int u = 0; u < NV; u++)
                            vstore(tf + u * BSR_VW, p->bias ? vadd(acc[r][u], vset1(p->bias[jj])) : acc[r][u]);
                        float *y = p->y + m0 * p->ldy + jj;
                        for (int64_t i = 0; i < mb; i++) y[i * p->ldy] = tf[i];
                    }
                }
            } else {
                const int32_t *xt = (const int32_t *)j->xt + ch * K * MB;
                if (!p->c)
                    for (int64_t i = 0; i < MB; i++) sx[i] = i < mb ? p->x_scales[m0 + i] : 0.0f;
                for (int64_t R = g0; R < g1; R++) {
                    VI acc[4][2];
                    bsr_xt_row_s8(v, R, xt, acc, BR, BC, NV, I16);
                    for (int r = 0; r < BR; r++) {
                        int64_t jj = R * BR + r;
                        if (p->c) {
                            for (int u = 0; u < NV; u++) vistore(ti + u * BSR_VW, acc[r][u]);
                            int32_t *c = p->c + m0 * p->ldc + jj;
                            for (int64_t i = 0; i < mb; i++) c[i * p->ldc] = ti[i];
                        } else {
                            VF sw = vset1(v->scl[jj]);
                            for (int u = 0; u < NV; u++) {
                                /* spmm_s8_out lane by lane: fmaf((float)acc, sx * sw, 0) (+ bias) */
                                VF yv = vfmadd(vcvt(acc[r][u]), vmul(vload(sx + u * BSR_VW), sw), vzero());
                                vstore(tf + u * BSR_VW, p->bias ? vadd(yv, vset1(p->bias[jj])) : yv);
                            }
                            float *y = p->y + m0 * p->ldy + jj;
                            for (int64_t i = 0; i < mb; i++) y[i * p->ldy] = tf[i];
                        }
                    }
                }
            }
        }
    }
}

#define BSR_SHAPES(NV, I16)                                                              \
    static void bsr_xt_task_##NV##_##I16(void *ctx, int64_t t) {                         \
        bsr_job *j = ctx;                                                                \
        switch (j->v.br * 16 + j->v.bc) {                                                \
        case 17: bsr_xt_task_t(j, t, 1, 1, NV, I16); break;                              \
        case 20: bsr_xt_task_t(j, t, 1, 4, NV, I16); break;                              \
        case 24: bsr_xt_task_t(j, t, 1, 8, NV, I16); break;                              \
        default: bsr_xt_task_t(j, t, 4, 4, NV, I16); break;                              \
        }                                                                                \
    }
BSR_SHAPES(1, 1)
BSR_SHAPES(1, 0)
BSR_SHAPES(2, 1)
BSR_SHAPES(2, 0)

static isthmus_status bsr_run_simd(const spmm_problem *p, const char *name) {
    bsr_job *j = isthmus__aligned_alloc(sizeof(bsr_job));
    if (!j) return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    j->p = p;
    j->v = bsr_view_of(p->w);
    const bsr_view *v = &j->v;
    int64_t ntask = (int64_t)isthmus__threads() * 8;
    if (ntask > BSR_MAXTASK) ntask = BSR_MAXTASK;
    if (ntask > v->R) ntask = v->R;
    bsr_split(v, ntask, j->bounds);
    isthmus_status st = ISTHMUS_OK;
    if (p->m == 1 && v->br == 1 && v->bc == 1) {
        if (v->dtype == ISTHMUS_DTYPE_S8) {
            int32_t *xw = isthmus__scratch((size_t)p->k * 4);
            if (!xw) { st = isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory", name); goto out; }
            for (int64_t k = 0; k < p->k; k++) xw[k] = (int32_t)(uint16_t)(int16_t)p->xq[k];
            j->xw = xw;
        }
        isthmus__parallel_for(ntask, bsr_gather_task, j);
        goto out;
    }
    const int NV = p->m <= BSR_VW ? 1 : 2;
    j->MB = NV * BSR_VW;
    j->nch = (p->m + j->MB - 1) / j->MB;
    j->kb = 512;
    j->nkb = (p->k + j->kb - 1) / j->kb;
    j->xt = isthmus__scratch((size_t)(j->nch * p->k * j->MB * 4));
    if (!j->xt) { st = isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory for X^T", name); goto out; }
    isthmus__parallel_for(j->nch * j->nkb, bsr_xt_build_task, j);
    isthmus_task_fn fn = NV == 1 ? (v->idx16 ? bsr_xt_task_1_1 : bsr_xt_task_1_0)
                                 : (v->idx16 ? bsr_xt_task_2_1 : bsr_xt_task_2_0);
    isthmus__parallel_for(ntask, fn, j);
out:
    isthmus__aligned_free(j);
    return st;
}

#endif /* BSR_KERNEL */
