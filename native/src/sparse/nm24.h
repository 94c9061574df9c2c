/*
 * 2:4 sparse matmul: the packed layout every variant reads, its pack, and the driver the variants share.
 *
 * Packed layout (panels of P rows of W: P = 16 for AVX-512, 8 for AVX2 and the reference; the last
 * panel is padded with zero rows). G = K / 4 groups of 4 columns. The 2-bit metadata is converted at
 * pack time into per-lane index vectors, so the kernels never load an index per element: one panel of
 * one group (F32) or group pair (S8) is a few contiguous vector loads, and the x values each lane
 * needs are selected in registers (vpermilps for F32, vpshufb for S8) from the 4 (8) contiguous x
 * values of that group (pair), broadcast to every 128-bit lane.
 *
 * F32 (layout NM24_F32):
 *   off[0] vals  float [npanel][G][2][P]   the two kept values of each row's group: P first-kept,
 *                                          then P second-kept (lane = row in the panel)
 *   off[1] idx   uint8 [npanel][G][P]      i0 | i1 << 2 (the exchange nibble; padding rows 0 | 1 << 2)
 *   y[m, n] = sum_g v0 * x[4g + i0] + v1 * x[4g + i1]; vpermilps reads bits 1:0 of a lane's index,
 *   so the index vector serves i0 as is and i1 after a shift by 2.
 * S8 (layout NM24_S8): groups are taken in pairs (Q = ceil(G / 2); an odd G ends with a phantom group
 *   of zero weights), so one 32-bit lane holds the 4 kept int8 values of 8 columns: one vpdpbusd
 *   (AVX-512) or maddubs + madd (AVX2) per lane per pair.
 *   off[0] vals  int8  [npanel][Q][P][4]   v0(2q), v1(2q), v0(2q+1), v1(2q+1)
 *   off[1] meta  uint8 [npanel][Q][P]      nibble(2q) | nibble(2q+1) << 4 = i0 | i1<<2 | i0'<<4 | i1'<<6;
 *                                          the kernel widens it to the vpshufb control
 *                                          bytes (i0, i1, 4 + i0', 4 + i1') with 2 shifts, 2 ors and a mask
 *   off[2] comp  int32 [npanel * P]        128 * sum of the row's values (the vpdpbusd +128 offset)
 *   off[3] scale float [npanel * P]        scales[row] (0 for padding rows)
 * aux[0] = npanel, aux[1] = G (F32) or Q (S8); layout = P.
 */
#ifndef ISTHMUS_NM24_H
#define ISTHMUS_NM24_H

#include "sparse.h"

#include <string.h>

#define NM24_PAD_NIBBLE 4u /* i0 = 0, i1 = 1: what padding rows and phantom groups hold */

/* Total bytes of the layout of w with panels of P rows; -1 on overflow. */
int64_t nm24_packed_size(const isthmus_sparse_matrix *w, int32_t P);
/* Writes the layout (header included); packed has nm24_packed_size(w, P) bytes. */
void nm24_pack(const isthmus_sparse_matrix *w, sparse_hdr *packed, int32_t P, int32_t isa);
/* SPMM_kernel.header_ok of a 2:4 variant with panels of P rows. */
int nm24_header_ok(const sparse_hdr *h, int32_t P);

/* ------------------------------------------------------------------ driver */

/* What a micro-kernel sees: rows [m0, m0 + mr) of X (mr <= the variant's MR), panel `panel`, groups
 * (F32) or pairs (S8) [g0, g1). acc is an [mr][P] tile (row stride P): zero-started when first, else
 * holding the sums of the groups before g0. F32: the same sequence of operations per output whatever
 * the blocking, so results never depend on the thread count. */
typedef struct nm24_run_ctx {
    const spmm_problem *p;
    const sparse_hdr *h;
    int32_t P, mr_max;
    int64_t npanel, ng;          /* panels; groups (F32) or pairs (S8)                         */
    int64_t pb, mb, kb;          /* panels per task, rows of X per task, groups/pairs per block */
    int64_t nblk_n, nblk_m;
    const uint8_t *xs;           /* S8: X converted to [M][ldxs] bytes (xor 0x80 if xor80)    */
    int64_t ldxs;
    void (*uk_f32)(const struct nm24_run_ctx *c, int64_t m0, int mr, int64_t panel, int64_t g0,
                   int64_t g1, float *acc, int first);
    void (*uk_s8)(const struct nm24_run_ctx *c, int64_t m0, int mr, int64_t panel, int64_t g0,
                  int64_t g1, int32_t *acc, int first);
    int ok;                      /* set to 0 by a task that found no scratch                   */
} nm24_run_ctx;

static inline const float *nm24_vals_f32(const sparse_hdr *h) { return sparse_section(h, h->off[0]); }
static inline const int8_t *nm24_vals_s8(const sparse_hdr *h) { return sparse_section(h, h->off[0]); }
static inline const uint8_t *nm24_idx(const sparse_hdr *h) { return sparse_section(h, h->off[1]); }
static inline const int32_t *nm24_comp(const sparse_hdr *h) { return sparse_section(h, h->off[2]); }
static inline const float *nm24_scales(const sparse_hdr *h) { return sparse_section(h, h->off[3]); }

static void nm24_task(void *vctx, int64_t task) {
    nm24_run_ctx *c = vctx;
    const spmm_problem *p = c->p;
    int64_t bn = task % c->nblk_n, bm = task / c->nblk_n;
    int64_t pan0 = bn * c->pb, pan1 = pan0 + c->pb < c->npanel ? pan0 + c->pb : c->npanel;
    int64_t m0 = bm * c->mb, m1 = m0 + c->mb < p->m ? m0 + c->mb : p->m;
    int64_t P = c->P, rows = (pan1 - pan0) * P, mrows = m1 - m0;
    void *tile = isthmus__scratch((size_t)(rows * mrows) * 4);
    if (tile == NULL) {
        __atomic_store_n(&c->ok, 0, __ATOMIC_RELAXED);
        return;
    }
    int s8 = c->h->dtype == ISTHMUS_DTYPE_S8;
    for (int64_t g0 = 0; g0 < c->ng; g0 += c->kb) {
        int64_t g1 = g0 + c->kb < c->ng ? g0 + c->kb : c->ng;
        for (int64_t pan = pan0; pan < pan1; pan++)
            for (int64_t mm = m0; mm < m1; mm += c->mr_max) {
                int mr = (int)(m1 - mm < c->mr_max ? m1 - mm : c->mr_max);
                /* tile layout: [panel in task][row of X in task][P] */
                int64_t off = ((pan - pan0) * mrows + (mm - m0)) * P;
                if (s8) c->uk_s8(c, mm, mr, pan, g0, g1, (int32_t *)tile + off, g0 == 0);
                else c->uk_f32(c, mm, mr, pan, g0, g1, (float *)tile + off, g0 == 0);
            }
    }
    /* epilogue */
    const sparse_hdr *h = c->h;
    for (int64_t pan = pan0; pan < pan1; pan++) {
        int64_t n0 = pan * P, nn = p->n - n0 < P ? p->n - n0 : P;
        for (int64_t m = m0; m < m1; m++) {
            int64_t off = ((pan - pan0) * mrows + (m - m0)) * P;
            if (!s8) {
                const float *a = (const float *)tile + off;
                float *y = p->y + m * p->ldy + n0;
                if (p->bias) for (int64_t j = 0; j < nn; j++) y[j] = a[j] + p->bias[n0 + j];
                else for (int64_t j = 0; j < nn; j++) y[j] = a[j];
            } else if (p->c) {
                memcpy(p->c + m * p->ldc + n0, (const int32_t *)tile + off, (size_t)nn * 4);
            } else {
                const int32_t *a = (const int32_t *)tile + off;
                const float *sw = nm24_scales(h) + n0;
                float sx = p->x_scales[m];
                float *y = p->y + m * p->ldy + n0;
                for (int64_t j = 0; j < nn; j++) y[j] = spmm_s8_out(a[j], sx, sw[j], p->bias, n0 + j);
            }
        }
    }
}

/* Runs p on the pool. xor80: the S8 kernels read x + 128 (vpdpbusd's unsigned operand). */
static inline isthmus_status nm24_run(const spmm_problem *p, nm24_run_ctx *c, int xor80, const char *fn) {
    const sparse_hdr *h = p->w;
    c->p = p;
    c->h = h;
    c->P = h->layout;
    c->npanel = h->aux[0];
    c->ng = h->aux[1];
    c->ok = 1;
    c->xs = NULL;
    uint8_t *xs = NULL;
    if (h->dtype == ISTHMUS_DTYPE_S8) {
        /* X as bytes, rows padded to whole pairs (8 columns) plus slack: one copy per call (M * K bytes,
         * small next to the N * K / 2 weight bytes). */
        int64_t ldxs = (c->ng * 8 + 63) & ~(int64_t)63;
        xs = isthmus__aligned_alloc((size_t)(p->m * ldxs));
        if (xs == NULL)
            return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: no memory for %lld bytes of activations", fn,
                                 (long long)(p->m * ldxs));
        uint8_t fx = xor80 ? 0x80 : 0;
        for (int64_t m = 0; m < p->m; m++) {
            const int8_t *src = p->xq + m * p->ldxq;
            uint8_t *dst = xs + m * ldxs;
            for (int64_t k = 0; k < p->k; k++) dst[k] = (uint8_t)src[k] ^ fx;
            memset(dst + p->k, fx, (size_t)(ldxs - p->k));
        }
        c->xs = xs;
        c->ldxs = ldxs;
    }
    /* blocking: 64 rows of W per task (fewer when N is small, for more tasks), X rows in blocks of 64,
     * K in blocks of 1024 columns so a task's panel slice and X rows stay in L2 */
    c->pb = 64 / c->P;
    if (c->pb < 1) c->pb = 1;
    c->mb = p->m <= 64 ? p->m : 64;
    c->kb = h->dtype == ISTHMUS_DTYPE_S8 ? 128 : 256;
    if (p->m <= c->mr_max) c->kb = c->ng; /* decode: one pass over each panel, one stream per panel */
    c->nblk_n = (c->npanel + c->pb - 1) / c->pb;
    c->nblk_m = (p->m + c->mb - 1) / c->mb;
    int32_t nt = isthmus__threads();
    while (c->pb > 1 && c->nblk_n * c->nblk_m < 4 * (int64_t)nt) {
        c->pb /= 2;
        c->nblk_n = (c->npanel + c->pb - 1) / c->pb;
    }
    isthmus__parallel_for(c->nblk_n * c->nblk_m, nm24_task, c);
    isthmus__aligned_free(xs);
    if (!c->ok)
        return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: no memory for a thread's accumulator tile", fn);
    return ISTHMUS_OK;
}

#endif
