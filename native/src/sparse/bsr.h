/*
 * CSR + BSR packed layout (format family "blocked"; CSR is 1x1 blocks), shared by every ISA variant.
 *
 * After the 192-byte sparse_hdr, 64-byte aligned sections (R = N / br block rows, K split into
 * "panels" of 256 columns, nkb = ceil(K / 256), and for CSR into 32-column segments, nseg = ceil(K / 32)):
 *   off[0] rp    int64 [R + 1]              block-row pointer, in blocks
 *   off[1] idx   CSR (layout BSR_SEG8):  uint8, the column modulo 256 (the panel comes from cnt256)
 *                BSR (layout BSR_IDX16): uint16, the block column (K / bc <= 32768 always)
 *                [nblocks + BSR_PAD], zero padded
 *   off[2] val   f32 or int8 [(nblocks + BSR_PAD) * br * bc], each block br x bc row-major (exchange
 *                order), zero padded
 *   off[3] scl   f32 [N]                    S8 only: per-row weight scales
 *   off[4] cnt256 uint16 [R][nkb]           blocks of each block row that start in each panel
 *   off[5] cnt32  uint8 [R][nseg]           CSR only: nonzeros of each row in each 32-column segment
 *   then   bm     uint64 [R][nw]            CSR f32 only, and only when some row is dense enough for it
 *                (bsr_bm_row): bit c % 64 of word c / 64 set where column c of the row is stored;
 *                nw = ceil(K / 64). Its offset follows from the others (bsr_bm_off); it is present
 *                iff the header's total reaches past that offset.
 * aux[0] = nblocks, aux[1] = R.
 *
 * A CSR f32 nonzero costs 5 bytes (+ 1/32 byte per column for cnt32), an S8 one 2 bytes; BSR 1x4/1x8/4x4
 * carry one 16-bit index per block. Entries stay in row order, so a row's entries of panel p follow
 * those of panel p - 1 (the kernels walk them with running cursors). The zero padding lets the SIMD
 * kernels load a full vector of indices and values at any tail (lanes past it are masked before they
 * count), so no load leaves the buffer.
 *
 * The kernels (spmm_bsr_avx2.c, spmm_bsr_avx512.c) include this header a second time with BSR_VW and
 * the vector wrappers defined, which instantiates the shared kernel body below (BSR_KERNEL section).
 */
#ifndef ISTHMUS_BSR_H
#define ISTHMUS_BSR_H

#include "sparse.h"

#include <string.h>

#define BSR_PAD 64
#define BSR_PANEL 256
#define BSR_SEG 32
enum { BSR_IDX16 = 0, BSR_SEG8 = 2 };
_Static_assert(ISTHMUS_GEMM_MAX_K / 4 <= 65536, "BSR block columns (bc >= 4) must fit 16 bits");

/* A CSR f32 row is walked by its bitmap (M == 1, AVX-512) when it holds >= K / BSR_BM_DEN values: per
 * 16 columns a 16-bit mask, 16 values loaded from the running cursor and expanded onto their columns
 * (vexpandps), one FMA with x as is; the stream is 4 B per value + 1/8 B per column, against 5 B +
 * 1/32 B per column for the segment walk, but the work is per column (~4 ns per 64 columns and core
 * on the EPYC dev machine) rather than per entry. Measured crossover (K = N = 4096, 2 threads, M = 1,
 * bitmap vs segments): density 10%: 560 vs 364 us, 12.5%: 676-706 vs 437-441, 15%: 644-655 vs
 * 505-567, 20%: 647-678 vs 679-720, 30%: 600-670 vs 950-1100; hence 1/5. */
#ifndef BSR_BM_DEN
#define BSR_BM_DEN 5
#endif
static inline int bsr_bm_row(int64_t nnz_row, int64_t k) { return nnz_row > 0 && nnz_row * BSR_BM_DEN >= k; }
/* Offset of the bitmap section: the end of cnt32 (CSR). */
static inline int64_t bsr_bm_off(int64_t off5, int64_t R, int64_t k) {
    return sparse_align64(off5 + R * ((k + BSR_SEG - 1) / BSR_SEG));
}

typedef struct bsr_view {
    int64_t n, k, R, nblocks, nkb, nseg, nw;
    int32_t br, bc, dtype, csr;
    const int64_t *rp;
    const uint8_t *idx8;
    const uint16_t *idx16;
    const float *vf;
    const int8_t *vq;
    const float *scl;
    const uint16_t *cnt256;
    const uint8_t *cnt32;
    const uint64_t *bm; /* or NULL */
} bsr_view;

static inline bsr_view bsr_view_of(const sparse_hdr *h) {
    bsr_view v;
    v.n = h->n;
    v.k = h->k;
    v.br = h->br;
    v.bc = h->bc;
    v.dtype = h->dtype;
    v.csr = h->layout == BSR_SEG8;
    v.nblocks = h->aux[0];
    v.R = h->aux[1];
    v.nkb = (h->k + BSR_PANEL - 1) / BSR_PANEL;
    v.nseg = (h->k + BSR_SEG - 1) / BSR_SEG;
    v.rp = sparse_section(h, h->off[0]);
    v.idx8 = sparse_section(h, h->off[1]);
    v.idx16 = sparse_section(h, h->off[1]);
    v.vf = sparse_section(h, h->off[2]);
    v.vq = sparse_section(h, h->off[2]);
    v.scl = h->dtype == ISTHMUS_DTYPE_S8 ? sparse_section(h, h->off[3]) : NULL;
    v.cnt256 = sparse_section(h, h->off[4]);
    v.cnt32 = v.csr ? sparse_section(h, h->off[5]) : NULL;
    v.nw = (h->k + 63) / 64;
    v.bm = NULL;
    if (v.csr && h->dtype == ISTHMUS_DTYPE_F32 && h->total > bsr_bm_off(h->off[5], v.R, h->k))
        v.bm = sparse_section(h, bsr_bm_off(h->off[5], v.R, h->k));
    return v;
}

/* First column of block b, which lies in panel kb. */
static inline int64_t bsr_col(const bsr_view *v, int64_t b, int64_t kb) {
    return v->csr ? kb * BSR_PANEL + v->idx8[b] : (int64_t)v->idx16[b] * v->bc;
}

/* bsr_pack.c: shared by all variants; isa is written into the header. */
int64_t bsr_packed_size(const isthmus_sparse_matrix *w);
void bsr_pack(const isthmus_sparse_matrix *w, sparse_hdr *h, int32_t isa);
/* SPMM_kernel.header_ok of the blocked family (the layout is the same for every variant). */
int bsr_header_ok(const sparse_hdr *h);

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
 *   vidx8 / vidx16 (BSR_VW indices widened to int32), vgather / vigather (scale 4)
 *   vw8 (BSR_VW int8 sign-extended to int32), vmaskf / vmaski (zero lanes >= n), vhsum / vihsum
 * and, where the ISA has a 32-entry two-register permute (AVX-512 vpermt2ps/d), BSR_PERM32 with
 *   vperm32 / viperm32(lo, idx, hi): lane i = (lo:hi)[idx[i] % 32], and
 *   vsel32 / visel32(idx, a, b): lane i = bit 5 of idx[i] ? b : a;
 * and with BSR_PERM64W (AVX-512 BW) the 32 x 16-bit forms vwload, vidx8w, vw8w, vwmask, vwperm64.
 *
 * Paths:
 *  - M == 1, CSR. With BSR_PERM32 (AVX-512) the row is walked by 32-column segments (cnt32): the
 *    segment of x sits in two registers and vpermt2ps picks each lane's x from the low 5 bits of its
 *    column, so there are no gathers; when the matrix is sparse enough (density <= 10/64) a 64-column
 *    pair with <= 16 entries takes one vector (two vpermt2ps, bit 5 selects). S8 (BSR_PERM64W) widens xq
 *    to int16: a 64-column pair is two registers, one vpermt2w serves up to 32 entries and vpdpwssd sums
 *    the products exactly. Without them (AVX2) the row is walked panel by panel with gathers from x (S8:
 *    an int32 copy holding (uint16)(int16)xq, so pmaddwd with the sign-extended weight is exact).
 *    F32 rows dense enough (bsr_bm_row) take the bitmap walk instead where the ISA has vexpandps
 *    (BSR_EXPAND: AVX-512): 64 columns per step, values expanded onto their columns, x loaded under
 *    the same mask (vxload: lanes of columns the row does not store are 0, never 0 * x).
 *  - M == 1, BSR: a block's x is contiguous: one 4/8-wide load per block (4x4: reused for 4 rows).
 *  - otherwise: X is transposed per chunk of MB = NV * BSR_VW rows into XT[K][MB] (S8: the int32 form
 *    above), and every stored value becomes a broadcast-FMA (S8: vpdpwssd) over a row of XT: one
 *    vector of MB outputs per output row. CSR takes eight values per step (columns from one load, the
 *    values broadcast by shuffle) so the loads are the XT rows alone. With one chunk the rows are walked
 *    in order (the weights stream once, XT stays in L2); with several, each group of rows (<= 64 KiB of
 *    values) runs panel-major (256 columns at a time, cnt256) for every chunk, its partial sums in a
 *    small buffer and the next group's weights prefetched meanwhile, so each weight byte comes from DRAM
 *    once. 4x4 blocks reuse each XT row load for 4 output rows; 1x4 and 1x8 blocks read one index per
 *    4 / 8 values.
 * Tasks own ranges of block rows balanced by work (bsr_split); how a row is computed never depends on
 * the range it falls in, so results do not depend on the thread count.
 */
#if defined(BSR_VW) && !defined(ISTHMUS_BSR_KERNEL_DONE)
#define ISTHMUS_BSR_KERNEL_DONE

#define BSR_INLINE static inline __attribute__((always_inline))
#define BSR_MAXTASK 256
#define BSR_GROUP 32 /* block rows per group at most */
#ifndef BSR_PF
#define BSR_PF 2048  /* bytes of f32 values the M == 1 walk prefetches ahead */
#endif

/* ---- M == 1, CSR */
#ifdef BSR_PERM32
/* Lanes [0, n) of a vector, n in [0, 32]: the first min(n, 16). */
BSR_INLINE int bsr_lo16(int n) { return n < 16 ? n : 16; }

/* One 32-column segment with n entries at b: the first 16 into a, the rest (rare) into c. */
#define BSR_SEG_F32(s, a, c)                                                                      \
    do {                                                                                          \
        int n_ = cnt[s];                                                                          \
        VF lo_ = vload(xp + (s) * 32), hi_ = vload(xp + (s) * 32 + 16);                           \
        int l_ = bsr_lo16(n_);                                                                    \
        a = vfmadd(vmaskf(vload(v->vf + b), l_), vmaskf(vperm32(lo_, vidx8(v->idx8 + b), hi_), l_), a); \
        if (n_ > 16)                                                                              \
            c = vfmadd(vmaskf(vload(v->vf + b + 16), n_ - 16),                                    \
                       vmaskf(vperm32(lo_, vidx8(v->idx8 + b + 16), hi_), n_ - 16), c);          \
        b += n_;                                                                                  \
    } while (0)
#define BSR_SEG_S8(s, a, c)                                                                       \
    do {                                                                                          \
        int n_ = cnt[s];                                                                          \
        VI lo_ = viload(xw + (s) * 32), hi_ = viload(xw + (s) * 32 + 16);                         \
        int l_ = bsr_lo16(n_);                                                                    \
        a = viadd(a, vmadd16(vmaski(vw8(v->vq + b), l_), viperm32(lo_, vidx8(v->idx8 + b), hi_))); \
        if (n_ > 16)                                                                              \
            c = viadd(c, vmadd16(vmaski(vw8(v->vq + b + 16), n_ - 16),                            \
                                 viperm32(lo_, vidx8(v->idx8 + b + 16), hi_)));                  \
        b += n_;                                                                                  \
    } while (0)

/* A pair of segments (64 columns, 64-aligned) with n <= 16 entries in all: one vector, each lane's x
 * picked from four registers (two vpermt2ps, then bit 5 of the column chooses). */
#define BSR_PAIR_F32(s, n, a)                                                                     \
    do {                                                                                          \
        VI i_ = vidx8(v->idx8 + b);                                                               \
        VF g_ = vsel32(i_, vperm32(vload(xp + (s) * 32), i_, vload(xp + (s) * 32 + 16)),          \
                       vperm32(vload(xp + (s) * 32 + 32), i_, vload(xp + (s) * 32 + 48)));       \
        a = vfmadd(vmaskf(vload(v->vf + b), n), vmaskf(g_, n), a);                                \
        b += n;                                                                                   \
    } while (0)
#define BSR_PAIR_S8(s, n, a)                                                                      \
    do {                                                                                          \
        VI i_ = vidx8(v->idx8 + b);                                                               \
        VI g_ = visel32(i_, viperm32(viload(xw + (s) * 32), i_, viload(xw + (s) * 32 + 16)),      \
                        viperm32(viload(xw + (s) * 32 + 32), i_, viload(xw + (s) * 32 + 48)));   \
        a = vdpwssd(a, vmaski(vw8(v->vq + b), n), g_);                                     \
        b += n;                                                                                   \
    } while (0)

/* Segment pairs alternate between independent accumulators (one chain would be bound by the FMA
 * latency); a pair with <= 16 entries takes one vector, a fuller one two or three; empty pairs are
 * skipped. */
BSR_INLINE float bsr_m1_row_f32(const bsr_view *v, int64_t r, const float *xp, const int PAIR) {
    VF a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero(), a4 = vzero();
    int64_t b = v->rp[r], s = 0;
    const uint8_t *cnt = v->cnt32 + r * v->nseg;
    for (; s + 4 <= v->nseg; s += 4) {
        int n0 = cnt[s] + cnt[s + 1], n1 = cnt[s + 2] + cnt[s + 3];
        /* the stream runs ahead of what the out-of-order window would fetch by itself */
        _mm_prefetch((const char *)(v->vf + b) + BSR_PF, _MM_HINT_T0);
        _mm_prefetch((const char *)(v->idx8 + b) + BSR_PF / 4, _MM_HINT_T0);
        if (PAIR && n0 <= 16) { if (n0) BSR_PAIR_F32(s, n0, a0); }
        else { BSR_SEG_F32(s, a0, a4); BSR_SEG_F32(s + 1, a1, a4); }
        if (PAIR && n1 <= 16) { if (n1) BSR_PAIR_F32(s + 2, n1, a1); }
        else { BSR_SEG_F32(s + 2, a2, a4); BSR_SEG_F32(s + 3, a3, a4); }
    }
    for (; s < v->nseg; s++) BSR_SEG_F32(s, a0, a4);
    return vhsum(vadd(vadd(vadd(a0, a1), vadd(a2, a3)), a4));
}
#ifdef BSR_EXPAND
#ifndef BSR_BM_HINT
#define BSR_BM_HINT _MM_HINT_T1
#endif
#ifndef BSR_BM_PFD
#define BSR_BM_PFD 8192 /* bytes ahead (T1 at 4-16 KiB measured alike; T0 at 2 KiB: 20% slower) */
#endif
/* A row by its bitmap (bsr_bm_row): 64 columns per step, one 16-column chunk per accumulator; the
 * chunk cursors come from popcounts of the word's prefixes, so the only chain across steps is one add.
 * The 16-value loads may run past the row (into the next rows or the zero padding); vexpand keeps the
 * first popcount(mask) of them. */
BSR_INLINE float bsr_m1_row_bm(const bsr_view *v, int64_t r, const float *xp) {
    VF a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
    const uint64_t *bm = v->bm + r * v->nw;
    const float *w = v->vf + v->rp[r];
    for (int64_t q = 0; q < v->nw; q++) {
        uint64_t m = bm[q];
        const float *w1 = w + __builtin_popcountll(m & 0xffffu), *w2 = w + __builtin_popcountll(m & 0xffffffffu),
                    *w3 = w + __builtin_popcountll(m & 0xffffffffffffu);
        /* one prefetch per 16-column chunk: chunk starts are <= 64 bytes apart, so every line of the
         * stream is asked for at any density; into L2 (the L1 fill buffers would bound the stream) */
        _mm_prefetch((const char *)w + BSR_BM_PFD, BSR_BM_HINT);
        _mm_prefetch((const char *)w1 + BSR_BM_PFD, BSR_BM_HINT);
        _mm_prefetch((const char *)w2 + BSR_BM_PFD, BSR_BM_HINT);
        _mm_prefetch((const char *)w3 + BSR_BM_PFD, BSR_BM_HINT);
        _mm_prefetch((const char *)(bm + q) + BSR_BM_PFD / 8, BSR_BM_HINT);
        const float *x = xp + q * 64;
        /* x is loaded under the same mask: a column the row does not store contributes nothing, not
         * 0 * x (NaN for an infinite or NaN x[c]; found by fuzz_sparse) */
        a0 = vfmadd(vexpand((unsigned)m & 0xffffu, w), vxload((unsigned)m & 0xffffu, x), a0);
        a1 = vfmadd(vexpand((unsigned)(m >> 16) & 0xffffu, w1), vxload((unsigned)(m >> 16) & 0xffffu, x + 16), a1);
        a2 = vfmadd(vexpand((unsigned)(m >> 32) & 0xffffu, w2), vxload((unsigned)(m >> 32) & 0xffffu, x + 32), a2);
        a3 = vfmadd(vexpand((unsigned)(m >> 48), w3), vxload((unsigned)(m >> 48), x + 48), a3);
        w += __builtin_popcountll(m);
    }
    return vhsum(vadd(vadd(a0, a1), vadd(a2, a3)));
}
#endif
BSR_INLINE int32_t bsr_m1_row_s8(const bsr_view *v, int64_t r, const int32_t *xw, const int PAIR) {
    VI a0 = vizero(), a1 = vizero(), a2 = vizero(), a3 = vizero();
    int64_t b = v->rp[r], s = 0;
    const uint8_t *cnt = v->cnt32 + r * v->nseg;
    for (; s + 4 <= v->nseg; s += 4) {
        int n0 = cnt[s] + cnt[s + 1], n1 = cnt[s + 2] + cnt[s + 3];
        if (PAIR && n0 <= 16) { if (n0) BSR_PAIR_S8(s, n0, a0); }
        else { BSR_SEG_S8(s, a0, a2); BSR_SEG_S8(s + 1, a1, a3); }
        if (PAIR && n1 <= 16) { if (n1) BSR_PAIR_S8(s + 2, n1, a1); }
        else { BSR_SEG_S8(s + 2, a0, a2); BSR_SEG_S8(s + 3, a1, a3); }
    }
    for (; s < v->nseg; s++) BSR_SEG_S8(s, a0, a2);
    return vihsum(viadd(viadd(a0, a1), viadd(a2, a3)));
}

#else
BSR_INLINE float bsr_m1_row_f32(const bsr_view *v, int64_t r, const float *xp, const int PAIR) {
    (void)PAIR;
    VF a0 = vzero(), a1 = vzero();
    int64_t b = v->rp[r];
    const uint16_t *cnt = v->cnt256 + r * v->nkb;
    for (int64_t kb = 0; kb < v->nkb; kb++) {
        const float *x = xp + kb * BSR_PANEL;
        int64_t e = b + cnt[kb];
        for (; b + BSR_VW <= e; b += BSR_VW) a0 = vfmadd(vload(v->vf + b), vgather(x, vidx8(v->idx8 + b)), a0);
        if (b < e) {
            int n = (int)(e - b);
            a1 = vfmadd(vmaskf(vload(v->vf + b), n), vmaskf(vgather(x, vidx8(v->idx8 + b)), n), a1);
            b = e;
        }
    }
    return vhsum(vadd(a0, a1));
}
BSR_INLINE int32_t bsr_m1_row_s8(const bsr_view *v, int64_t r, const int32_t *xw, const int PAIR) {
    (void)PAIR;
    VI a0 = vizero(), a1 = vizero();
    int64_t b = v->rp[r];
    const uint16_t *cnt = v->cnt256 + r * v->nkb;
    for (int64_t kb = 0; kb < v->nkb; kb++) {
        const int32_t *x = xw + kb * BSR_PANEL;
        int64_t e = b + cnt[kb];
        for (; b + BSR_VW <= e; b += BSR_VW) a0 = viadd(a0, vmadd16(vw8(v->vq + b), vigather(x, vidx8(v->idx8 + b))));
        if (b < e) {
            a1 = viadd(a1, vmadd16(vmaski(vw8(v->vq + b), (int)(e - b)), vigather(x, vidx8(v->idx8 + b))));
            b = e;
        }
    }
    return vihsum(viadd(a0, a1));
}
#endif

#ifdef BSR_PERM64W
/* S8, M == 1, with 16-bit lanes: xq widened to int16 (xw16), a 64-column segment pair is two registers
 * and one vpermt2w picks up to 32 entries' x at once (the low 6 bits of the column); vpdpwssd sums the
 * int16 products in pairs into int32, exactly. Pairs alternate between two accumulators. */
#define BSR_PAIRW(s, a)                                                                           \
    do {                                                                                          \
        int n_ = cnt[s] + (s + 1 < v->nseg ? cnt[s + 1] : 0);                                     \
        if (n_) {                                                                                 \
            VI lo_ = vwload(xw + (s) * 32), hi_ = vwload(xw + (s) * 32 + 32);                     \
            do {                                                                                  \
                int l_ = n_ < 32 ? n_ : 32;                                                       \
                a = vdpwssd(a, vwmask(vw8w(v->vq + b), l_), vwperm64(lo_, vidx8w(v->idx8 + b), hi_)); \
                b += l_;                                                                          \
                n_ -= l_;                                                                         \
            } while (n_ > 0);                                                                     \
        }                                                                                         \
    } while (0)
BSR_INLINE int32_t bsr_m1_row_s8w(const bsr_view *v, int64_t r, const int16_t *xw) {
    VI a0 = vizero(), a1 = vizero();
    int64_t b = v->rp[r], s = 0;
    const uint8_t *cnt = v->cnt32 + r * v->nseg;
    for (; s + 4 <= v->nseg; s += 4) {
        _mm_prefetch((const char *)(v->vq + b) + BSR_PF / 4, _MM_HINT_T0);
        _mm_prefetch((const char *)(v->idx8 + b) + BSR_PF / 4, _MM_HINT_T0);
        BSR_PAIRW(s, a0);
        BSR_PAIRW(s + 2, a1);
    }
    for (; s < v->nseg; s += 2) BSR_PAIRW(s, a0);
    return vihsum(viadd(a0, a1));
}
#endif

/* ---- M == 1, BSR: each block's x is contiguous (one 4- or 8-wide load serves the block; a 4x4 block
 * reuses it for its 4 rows), so no index per value and no X^T. 128/256-bit steps, both ISAs. S8 reads
 * x as int16 (xw16) and sums int16 products in pairs exactly (pmaddwd). out[r] = row R * br + r. */
BSR_INLINE void bsr_m1_bsr_f32(const bsr_view *v, int64_t R, const float *x, float *out) {
    int64_t b = v->rp[R], e = v->rp[R + 1];
    if (v->br == 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (; b < e; b++) {
            __m256 xv = _mm256_broadcast_ps((const __m128 *)(x + (int64_t)v->idx16[b] * 4));
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v->vf + b * 16), xv, a0);     /* rows 0, 1 */
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(v->vf + b * 16 + 8), xv, a1); /* rows 2, 3 */
        }
        __m256 h = _mm256_hadd_ps(a0, a1);  /* r0 r0 r2 r2 | r1 r1 r3 r3 (pairs of lanes) */
        h = _mm256_hadd_ps(h, h);           /* r0 r2 r0 r2 | r1 r3 r1 r3 */
        __m128 lo = _mm256_castps256_ps128(h), hi = _mm256_extractf128_ps(h, 1);
        out[0] = _mm_cvtss_f32(lo);
        out[2] = _mm_cvtss_f32(_mm_shuffle_ps(lo, lo, 1));
        out[1] = _mm_cvtss_f32(hi);
        out[3] = _mm_cvtss_f32(_mm_shuffle_ps(hi, hi, 1));
        return;
    }
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    if (v->bc == 8) {
        for (; b + 2 <= e; b += 2) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v->vf + b * 8), _mm256_loadu_ps(x + (int64_t)v->idx16[b] * 8), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(v->vf + b * 8 + 8), _mm256_loadu_ps(x + (int64_t)v->idx16[b + 1] * 8), a1);
        }
        if (b < e) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v->vf + b * 8), _mm256_loadu_ps(x + (int64_t)v->idx16[b] * 8), a0);
    } else {
        for (; b + 4 <= e; b += 4) {
            __m256 x0 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(x + (int64_t)v->idx16[b] * 4)),
                                             _mm_loadu_ps(x + (int64_t)v->idx16[b + 1] * 4), 1);
            __m256 x1 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(x + (int64_t)v->idx16[b + 2] * 4)),
                                             _mm_loadu_ps(x + (int64_t)v->idx16[b + 3] * 4), 1);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v->vf + b * 4), x0, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(v->vf + b * 4 + 8), x1, a1);
        }
        __m128 t = _mm_setzero_ps();
        for (; b < e; b++) t = _mm_fmadd_ps(_mm_loadu_ps(v->vf + b * 4), _mm_loadu_ps(x + (int64_t)v->idx16[b] * 4), t);
        a0 = _mm256_add_ps(a0, _mm256_insertf128_ps(_mm256_setzero_ps(), t, 0));
    }
    __m256 a = _mm256_add_ps(a0, a1);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    out[0] = _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
}

BSR_INLINE void bsr_m1_bsr_s8(const bsr_view *v, int64_t R, const int16_t *x, int32_t *out) {
    int64_t b = v->rp[R], e = v->rp[R + 1];
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
    if (v->br == 4) {
        for (; b < e; b++) {
            __m256i xv = _mm256_set1_epi64x(*(const int64_t *)(x + (int64_t)v->idx16[b] * 4)); /* 4 x int16, x4 */
            __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(v->vq + b * 16)));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(w, xv)); /* lanes 2r, 2r + 1: row r */
        }
        int32_t t[8];
        _mm256_storeu_si256((__m256i *)t, a0);
        for (int r = 0; r < 4; r++) out[r] = t[2 * r] + t[2 * r + 1];
        return;
    }
    if (v->bc == 8) {
        for (; b + 2 <= e; b += 2) {
            __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(v->vq + b * 8)));
            __m256i xv = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(x + (int64_t)v->idx16[b] * 8))),
                _mm_loadu_si128((const __m128i *)(x + (int64_t)v->idx16[b + 1] * 8)), 1);
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(w, xv));
        }
        for (; b < e; b++) {
            __m128i w = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(v->vq + b * 8)));
            __m128i xv = _mm_loadu_si128((const __m128i *)(x + (int64_t)v->idx16[b] * 8));
            a1 = _mm256_add_epi32(a1, _mm256_inserti128_si256(_mm256_setzero_si256(), _mm_madd_epi16(w, xv), 0));
        }
    } else {
        for (; b + 4 <= e; b += 4) {
            __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(v->vq + b * 4)));
            __m256i xv = _mm256_setr_epi64x(*(const int64_t *)(x + (int64_t)v->idx16[b] * 4),
                                            *(const int64_t *)(x + (int64_t)v->idx16[b + 1] * 4),
                                            *(const int64_t *)(x + (int64_t)v->idx16[b + 2] * 4),
                                            *(const int64_t *)(x + (int64_t)v->idx16[b + 3] * 4));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(w, xv));
        }
        int32_t t = 0;
        for (; b < e; b++)
            for (int c = 0; c < 4; c++) t += (int32_t)v->vq[b * 4 + c] * x[(int64_t)v->idx16[b] * 4 + c];
        a1 = _mm256_setr_epi32(t, 0, 0, 0, 0, 0, 0, 0);
    }
    __m256i a = _mm256_add_epi32(a0, a1);
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
    out[0] = _mm_cvtsi128_si32(q);
}

typedef struct bsr_job {
    const spmm_problem *p;
    bsr_view v;
    const void *xw;    /* M == 1: x (f32) or the int32 form of xq, padded to nseg * 32 with zeros */
    void *xt;          /* XT chunks [nch][K][MB] */
    int64_t MB, nch, kb, nkb;
    int64_t bounds[BSR_MAXTASK + 1];
} bsr_job;

/* PAIR: sparse enough that most 64-column pairs hold <= 16 entries (else the pair test only costs). */
BSR_INLINE void bsr_m1_task_t(void *ctx, int64_t t, const int PAIR) {
    bsr_job *j = ctx;
    const spmm_problem *p = j->p;
    const bsr_view *v = &j->v;
    int64_t r = j->bounds[t];
    for (; r < j->bounds[t + 1]; r++) {
        if (v->dtype == ISTHMUS_DTYPE_F32) {
#ifdef BSR_EXPAND
            float s = v->bm && bsr_bm_row(v->rp[r + 1] - v->rp[r], v->k) ? bsr_m1_row_bm(v, r, (const float *)j->xw)
                                                                       : bsr_m1_row_f32(v, r, (const float *)j->xw, PAIR);
#else
            float s = bsr_m1_row_f32(v, r, (const float *)j->xw, PAIR);
#endif
            p->y[r] = p->bias ? s + p->bias[r] : s;
        } else {
#ifdef BSR_PERM64W
            int32_t acc = bsr_m1_row_s8w(v, r, (const int16_t *)j->xw);
#else
            int32_t acc = bsr_m1_row_s8(v, r, (const int32_t *)j->xw, PAIR);
#endif
            if (p->c) p->c[r] = acc;
            else p->y[r] = spmm_s8_out(acc, p->x_scales[0], v->scl[r], p->bias, r);
        }
    }
}
static void bsr_m1_bsr_task(void *ctx, int64_t t) {
    bsr_job *j = ctx;
    const spmm_problem *p = j->p;
    const bsr_view *v = &j->v;
    for (int64_t R = j->bounds[t]; R < j->bounds[t + 1]; R++) {
        if (v->dtype == ISTHMUS_DTYPE_F32) {
            float o[4];
            bsr_m1_bsr_f32(v, R, (const float *)j->xw, o);
            for (int r = 0; r < v->br; r++) {
                int64_t jj = R * v->br + r;
                p->y[jj] = p->bias ? o[r] + p->bias[jj] : o[r];
            }
        } else {
            int32_t o[4];
            bsr_m1_bsr_s8(v, R, (const int16_t *)j->xw, o);
            for (int r = 0; r < v->br; r++) {
                int64_t jj = R * v->br + r;
                if (p->c) p->c[jj] = o[r];
                else p->y[jj] = spmm_s8_out(o[r], p->x_scales[0], v->scl[jj], p->bias, jj);
            }
        }
    }
}
static void bsr_m1_task_pair(void *ctx, int64_t t) { bsr_m1_task_t(ctx, t, 1); }
static void bsr_m1_task(void *ctx, int64_t t) { bsr_m1_task_t(ctx, t, 0); }

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

/* First column of block b in panel kb: compile-time CSR (1x1) or BSR. */
BSR_INLINE int64_t bsr_c(const bsr_view *v, int64_t b, int64_t kbase, const int BC) {
    return BC == 1 ? kbase + v->idx8[b] : (int64_t)v->idx16[b] * BC;
}

/* acc[r * NV + u] += blocks [b, e) of block row R over XT (outputs of rows R * BR + r, lanes u). */
BSR_INLINE void bsr_xt_run_f32(const bsr_view *v, int64_t b, int64_t e, int64_t kbase, const float *xt,
                               float *accp, const int BR, const int BC, const int NV) {
    const int64_t MB = NV * BSR_VW;
    VF a0[4][2], a1[2];
    for (int r = 0; r < 4; r++)
        for (int u = 0; u < 2; u++) a0[r][u] = r < BR && u < NV ? vload(accp + (r * NV + u) * BSR_VW) : vzero();
    a1[0] = a1[1] = vzero();
    if (BR == 1 && BC == 1) {
        /* eight values per step: their columns from one 8-byte load, each value broadcast from a
         * register (a shuffle) rather than from memory, so the loads are the X^T rows alone; four
         * chains at NV = 1, two per lane group at NV = 2 (the FMA latency would bound fewer) */
        for (; b + 8 <= e; b += 8) {
            uint64_t ix;
            memcpy(&ix, v->idx8 + b, 8);
            VF w8 = vload8(v->vf + b);
            for (int i = 0; i < 8; i++) {
                const float *x0 = xt + (kbase + (int64_t)((ix >> (8 * i)) & 255)) * MB;
                const int c = NV == 1 ? i & 3 : i & 1;
                VF w = vlane(w8, i);
                for (int u = 0; u < NV; u++) a0[c][u] = vfmadd(w, vload(x0 + u * BSR_VW), a0[c][u]);
            }
        }
        for (; b < e; b++) {
            const float *x0 = xt + bsr_c(v, b, kbase, 1) * MB;
            VF w = vset1(v->vf[b]);
            for (int u = 0; u < NV; u++) a1[u] = vfmadd(w, vload(x0 + u * BSR_VW), a1[u]);
        }
        for (int u = 0; u < NV; u++)
            a0[0][u] = vadd(vadd(vadd(a0[0][u], a0[1][u]), vadd(a0[2][u], a0[3][u])), a1[u]);
    } else if (BR == 1) {
        for (; b < e; b++) { /* four chains at NV = 1, two per lane group at NV = 2 */
            const float *x0 = xt + bsr_c(v, b, kbase, BC) * MB, *w = v->vf + b * BC;
            for (int cc = 0; cc < BC; cc++) {
                const int c = NV == 1 ? cc & 3 : cc & 1;
                VF w0 = vset1(w[cc]);
                for (int u = 0; u < NV; u++) a0[c][u] = vfmadd(w0, vload(x0 + cc * MB + u * BSR_VW), a0[c][u]);
            }
        }
        for (int u = 0; u < NV; u++) a0[0][u] = vadd(vadd(a0[0][u], a0[1][u]), vadd(a0[2][u], a0[3][u]));
    } else {
        for (; b < e; b++) {
            const float *x0 = xt + bsr_c(v, b, kbase, BC) * MB, *w = v->vf + b * BR * BC;
            for (int cc = 0; cc < BC; cc++)
                for (int u = 0; u < NV; u++) {
                    VF xv = vload(x0 + cc * MB + u * BSR_VW);
                    for (int r = 0; r < BR; r++) a0[r][u] = vfmadd(vset1(w[r * BC + cc]), xv, a0[r][u]);
                }
        }
    }
    for (int r = 0; r < BR; r++)
        for (int u = 0; u < NV; u++) vstore(accp + (r * NV + u) * BSR_VW, a0[r][u]);
}

BSR_INLINE void bsr_xt_run_s8(const bsr_view *v, int64_t b, int64_t e, int64_t kbase, const int32_t *xt,
                              int32_t *accp, const int BR, const int BC, const int NV) {
    const int64_t MB = NV * BSR_VW;
    VI a0[4][2], a1[2];
    for (int r = 0; r < 4; r++)
        for (int u = 0; u < 2; u++) a0[r][u] = r < BR && u < NV ? viload(accp + (r * NV + u) * BSR_VW) : vizero();
    a1[0] = a1[1] = vizero();
    if (BR == 1 && BC == 1 && NV == 1) {
        for (; b + 4 <= e; b += 4) {
            a0[0][0] = vdpwssd(a0[0][0], viset1(v->vq[b]), viload(xt + bsr_c(v, b, kbase, 1) * MB));
            a0[1][0] = vdpwssd(a0[1][0], viset1(v->vq[b + 1]), viload(xt + bsr_c(v, b + 1, kbase, 1) * MB));
            a0[2][0] = vdpwssd(a0[2][0], viset1(v->vq[b + 2]), viload(xt + bsr_c(v, b + 2, kbase, 1) * MB));
            a0[3][0] = vdpwssd(a0[3][0], viset1(v->vq[b + 3]), viload(xt + bsr_c(v, b + 3, kbase, 1) * MB));
        }
        for (; b < e; b++) a1[0] = vdpwssd(a1[0], viset1(v->vq[b]), viload(xt + bsr_c(v, b, kbase, 1) * MB));
        a0[0][0] = viadd(viadd(viadd(a0[0][0], a0[1][0]), viadd(a0[2][0], a0[3][0])), a1[0]);
    } else if (BR == 1 && BC == 1) {
        for (; b + 2 <= e; b += 2) {
            const int32_t *x0 = xt + bsr_c(v, b, kbase, 1) * MB, *x1 = xt + bsr_c(v, b + 1, kbase, 1) * MB;
            VI w0 = viset1(v->vq[b]), w1 = viset1(v->vq[b + 1]);
            for (int u = 0; u < NV; u++) {
                a0[0][u] = vdpwssd(a0[0][u], w0, viload(x0 + u * BSR_VW));
                a1[u] = vdpwssd(a1[u], w1, viload(x1 + u * BSR_VW));
            }
        }
        if (b < e) {
            const int32_t *x0 = xt + bsr_c(v, b, kbase, 1) * MB;
            VI w0 = viset1(v->vq[b]);
            for (int u = 0; u < NV; u++) a0[0][u] = vdpwssd(a0[0][u], w0, viload(x0 + u * BSR_VW));
        }
        for (int u = 0; u < NV; u++) a0[0][u] = viadd(a0[0][u], a1[u]);
    } else if (BR == 1) {
        for (; b < e; b++) {
            const int32_t *x0 = xt + bsr_c(v, b, kbase, BC) * MB;
            const int8_t *w = v->vq + b * BC;
            for (int cc = 0; cc < BC; cc++) {
                const int c = NV == 1 ? cc & 3 : cc & 1;
                VI w0 = viset1(w[cc]);
                for (int u = 0; u < NV; u++) a0[c][u] = vdpwssd(a0[c][u], w0, viload(x0 + cc * MB + u * BSR_VW));
            }
        }
        for (int u = 0; u < NV; u++) a0[0][u] = viadd(viadd(a0[0][u], a0[1][u]), viadd(a0[2][u], a0[3][u]));
    } else {
        for (; b < e; b++) {
            const int32_t *x0 = xt + bsr_c(v, b, kbase, BC) * MB;
            const int8_t *w = v->vq + b * BR * BC;
            for (int cc = 0; cc < BC; cc++)
                for (int u = 0; u < NV; u++) {
                    VI xv = viload(x0 + cc * MB + u * BSR_VW);
                    for (int r = 0; r < BR; r++) a0[r][u] = vdpwssd(a0[r][u], viset1(w[r * BC + cc]), xv);
                }
        }
    }
    for (int r = 0; r < BR; r++)
        for (int u = 0; u < NV; u++) vistore(accp + (r * NV + u) * BSR_VW, a0[r][u]);
}

/* End of the group of block rows starting at g0 (< R1 unless g0 == R1): at most BSR_GROUP block rows
 * and about BSR_GBYTES of values. */
#define BSR_GBYTES (64 * 1024)
BSR_INLINE int64_t bsr_group_end(const bsr_view *v, int64_t g0, int64_t R1, int64_t bbytes) {
    if (g0 >= R1) return R1;
    int64_t g1 = g0 + 1;
    while (g1 < R1 && g1 - g0 < BSR_GROUP && (v->rp[g1] - v->rp[g0]) * bbytes < BSR_GBYTES) g1++;
    return g1;
}

/* Rows [R0, R1) of the task in groups (weights in L2, at most BSR_GROUP block rows); per group and
 * chunk of X, panel by panel over the group's rows, partial sums in acc. */
BSR_INLINE void bsr_xt_task_t(bsr_job *j, int64_t t, const int BR, const int BC, const int NV) {
    const spmm_problem *p = j->p;
    const bsr_view *v = &j->v;
    const int64_t MB = NV * BSR_VW, K = p->k, bs = BR * BC, nkb = v->nkb;
    const int64_t esize = v->dtype == ISTHMUS_DTYPE_F32 ? 4 : 1;
    const int64_t astride = BR * NV * BSR_VW; /* acc elements per block row */
    float accf[BSR_GROUP * 4 * 2 * BSR_VW] __attribute__((aligned(64)));
    int32_t *acci = (int32_t *)accf;
    float sx[2 * BSR_VW] __attribute__((aligned(64)));
    int64_t cur[BSR_GROUP];
    const int64_t isize = v->csr ? 1 : 2;
    /* several chunks: panel-major over the group (XT rows of a panel stay in L1), the next group's
     * weights prefetched meanwhile (the panel walk reads them out of order); one chunk: row-major */
    const int pm = j->nch >= 2;
    int64_t R1 = j->bounds[t + 1];
    int64_t g0 = j->bounds[t], g1 = bsr_group_end(v, g0, R1, bs * esize);
    for (; g0 < R1; g0 = g1, g1 = bsr_group_end(v, g0, R1, bs * esize)) {
        int64_t g2 = bsr_group_end(v, g1, R1, bs * esize);
        const char *pv = (const char *)v->vf + v->rp[g1] * bs * esize, *pi = (const char *)v->idx8 + v->rp[g1] * isize;
        int64_t lv = (v->rp[g2] - v->rp[g1]) * bs * esize, li = (v->rp[g2] - v->rp[g1]) * isize;
        for (int64_t ch = 0; ch < j->nch; ch++) {
            int64_t m0 = ch * MB, mb = p->m - m0 < MB ? p->m - m0 : MB;
            memset(accf, 0, (size_t)((g1 - g0) * astride * 4));
            for (int64_t R = g0; R < g1; R++) cur[R - g0] = v->rp[R];
            const void *xt = (const char *)j->xt + ch * K * MB * 4;
            if (pm) {
                for (int64_t kb = 0; kb < nkb; kb++) {
                    if (ch == 0) {
                        for (int64_t o = kb * lv / nkb; o < (kb + 1) * lv / nkb; o += 64) _mm_prefetch(pv + o, _MM_HINT_T1);
                        for (int64_t o = kb * li / nkb; o < (kb + 1) * li / nkb; o += 64) _mm_prefetch(pi + o, _MM_HINT_T1);
                    }
                    for (int64_t R = g0; R < g1; R++) {
                        int64_t b = cur[R - g0], e = b + v->cnt256[R * nkb + kb];
                        if (b == e) continue;
                        if (v->dtype == ISTHMUS_DTYPE_F32)
                            bsr_xt_run_f32(v, b, e, kb * BSR_PANEL, xt, accf + (R - g0) * astride, BR, BC, NV);
                        else
                            bsr_xt_run_s8(v, b, e, kb * BSR_PANEL, xt, acci + (R - g0) * astride, BR, BC, NV);
                        cur[R - g0] = e;
                    }
                }
            } else {
                for (int64_t R = g0; R < g1; R++)
                    for (int64_t kb = 0, b = v->rp[R]; kb < nkb; kb++) {
                        int64_t e = b + v->cnt256[R * nkb + kb];
                        if (b == e) continue;
                        if (v->dtype == ISTHMUS_DTYPE_F32)
                            bsr_xt_run_f32(v, b, e, kb * BSR_PANEL, xt, accf + (R - g0) * astride, BR, BC, NV);
                        else
                            bsr_xt_run_s8(v, b, e, kb * BSR_PANEL, xt, acci + (R - g0) * astride, BR, BC, NV);
                        b = e;
                    }
            }
            if (v->dtype == ISTHMUS_DTYPE_S8 && !p->c)
                for (int64_t i = 0; i < MB; i++) sx[i] = i < mb ? p->x_scales[m0 + i] : 0.0f;
            /* epilogue: lane i of row jj is output (m0 + i, jj) */
            for (int64_t R = g0; R < g1; R++)
                for (int r = 0; r < BR; r++) {
                    int64_t jj = R * BR + r;
                    float *tf = accf + (R - g0) * astride + r * NV * BSR_VW;
                    int32_t *ti = (int32_t *)tf;
                    if (v->dtype == ISTHMUS_DTYPE_F32) {
                        if (p->bias)
                            for (int u = 0; u < NV; u++)
                                vstore(tf + u * BSR_VW, vadd(vload(tf + u * BSR_VW), vset1(p->bias[jj])));
                        float *y = p->y + m0 * p->ldy + jj;
                        for (int64_t i = 0; i < mb; i++) y[i * p->ldy] = tf[i];
                    } else if (p->c) {
                        int32_t *c = p->c + m0 * p->ldc + jj;
                        for (int64_t i = 0; i < mb; i++) c[i * p->ldc] = ti[i];
                    } else {
                        VF sw = vset1(v->scl[jj]);
                        for (int u = 0; u < NV; u++) {
                            /* spmm_s8_out lane by lane: fmaf((float)acc, sx * sw, 0) (+ bias) */
                            VF yv = vfmadd(vcvt(viload(ti + u * BSR_VW)), vmul(vload(sx + u * BSR_VW), sw), vzero());
                            vstore(tf + u * BSR_VW, p->bias ? vadd(yv, vset1(p->bias[jj])) : yv);
                        }
                        float *y = p->y + m0 * p->ldy + jj;
                        for (int64_t i = 0; i < mb; i++) y[i * p->ldy] = tf[i];
                    }
                }
        }
    }
}

#define BSR_SHAPES(NV)                                                                   \
    static void bsr_xt_task_##NV(void *ctx, int64_t t) {                                 \
        bsr_job *j = ctx;                                                                \
        switch (j->v.br * 16 + j->v.bc) {                                                \
        case 17: bsr_xt_task_t(j, t, 1, 1, NV); break;                                   \
        case 20: bsr_xt_task_t(j, t, 1, 4, NV); break;                                   \
        case 24: bsr_xt_task_t(j, t, 1, 8, NV); break;                                   \
        default: bsr_xt_task_t(j, t, 4, 4, NV); break;                                   \
        }                                                                                \
    }
BSR_SHAPES(1)
BSR_SHAPES(2)

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
    if (p->m == 1 && !v->csr) {
        /* x as is, or xq widened to int16 */
        if (v->dtype == ISTHMUS_DTYPE_S8) {
            int16_t *w = isthmus__scratch((size_t)p->k * 2);
            if (!w) { st = isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory", name); goto out; }
            for (int64_t k = 0; k < p->k; k++) w[k] = p->xq[k];
            j->xw = w;
        } else {
            j->xw = p->x;
        }
        isthmus__parallel_for(ntask, bsr_m1_bsr_task, j);
        goto out;
    }
    if (p->m == 1 && v->csr) {
        /* x (or xq's int32 form) padded with zeros to whole segments / panels */
        int64_t kp = v->nkb * BSR_PANEL;
        void *xw = isthmus__scratch((size_t)kp * 4);
        if (!xw) { st = isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory", name); goto out; }
        if (v->dtype == ISTHMUS_DTYPE_S8) {
#ifdef BSR_PERM64W
            int16_t *w = xw;
            for (int64_t k = 0; k < p->k; k++) w[k] = p->xq[k];
            for (int64_t k = p->k; k < kp; k++) w[k] = 0;
#else
            int32_t *w = xw;
            for (int64_t k = 0; k < p->k; k++) w[k] = (int32_t)(uint16_t)(int16_t)p->xq[k];
            for (int64_t k = p->k; k < kp; k++) w[k] = 0;
#endif
        } else {
            float *w = xw;
            memcpy(w, p->x, (size_t)p->k * 4);
            for (int64_t k = p->k; k < kp; k++) w[k] = 0.0f;
        }
        j->xw = xw;
        /* pairs of segments pay where the average pair holds <= 10 entries (density <= 10 / 64) */
        isthmus__parallel_for(ntask, v->nblocks * 64 <= 10 * v->n * v->k ? bsr_m1_task_pair : bsr_m1_task, j);
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
    isthmus__parallel_for(ntask, NV == 1 ? bsr_xt_task_1 : bsr_xt_task_2, j);
out:
    isthmus__aligned_free(j);
    return st;
}

#endif /* BSR_KERNEL */
