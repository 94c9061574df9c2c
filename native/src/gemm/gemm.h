/* INT8 GEMM internals: the packed weight layout and the problem every variant's tile function sees. */
#ifndef ISTHMUS_GEMM_H
#define ISTHMUS_GEMM_H

#include "../core/internal.h"

#include <string.h>

#define ISTHMUS_PACK_MAGIC 0x38575349u /* "ISW8" */
#define ISTHMUS_PACK_VERSION 1u
#define ISTHMUS_PACK_HEADER 128

/*
 * Packed weights (self-describing, 64-byte aligned sections):
 *   header    packed_hdr, padded to 128 bytes
 *   weights   int8 [npanels][kp/4][nr][4]: panel p holds output columns p*nr .. p*nr+nr-1; for each
 *             4-deep slice of K, nr columns x 4 consecutive k (the operand of one maddubs/vpdpbusd).
 *             Columns past N and k past K are zero.
 *   comp      int32 [npanels][ngroups][nr] = 128 * sum of the group's weights (only when comp = 1:
 *             the AVX-512 kernel feeds a + 128 as the unsigned operand of vpdpbusd and subtracts it)
 *   scales    f32 [npanels][ngroups][nr] (only when has_scales): w scale of (column, group), expanded
 *             from whatever granularity was given, so the kernels load them as vectors.
 */
typedef struct packed_hdr {
    uint32_t magic, version;
    int32_t isa, nr;
    int32_t w_gran, has_scales;
    int32_t comp, reserved;
    int64_t n, k, kp, group, ngroups, npanels;
    int64_t off_w, off_comp, off_scales, total;
} packed_hdr;

_Static_assert(sizeof(packed_hdr) <= ISTHMUS_PACK_HEADER, "packed header too large");

typedef struct gemm_problem {
    int64_t m, n, k;
    const int8_t *a;
    int64_t lda;
    const float *sa;       /* scale of activation (row r, group g) = sa[r * sa_rs + g * sa_gs] */
    int64_t sa_rs, sa_gs;
    const packed_hdr *w;
    const int8_t *wp;      /* weights section */
    const int32_t *comp;   /* or NULL */
    const float *ws;       /* scales section, or NULL */
    const float *bias;     /* or NULL */
    const int32_t *ap;     /* A repacked by the driver for kernels with mr > 0: tiles of amr rows,
                              [M/amr][kp/4][amr] groups of 4 bytes (xor 0x80 when the kernel asks;
                              followed by amr words of |a| per slice when it asks), zero past K;
                              NULL for the reference */
    int64_t amr;           /* rows per A tile, <= the kernel's mr, chosen per call by the driver */
    float *y;              /* f32 mode */
    int64_t ldy;
    int32_t *c;            /* s32 mode when non-NULL */
    int64_t ldc;
} gemm_problem;

/* Group size in K of the packed weights (the whole of K for group 0). */
static inline int64_t gemm_group_len(const packed_hdr *h) { return h->group > 0 ? h->group : h->k; }

/* 4 bytes of an activation row at k = 4 * k4, zero past K (no read past the row). */
static inline int32_t gemm_load_a4(const int8_t *row, int64_t k4, int64_t k) {
    int32_t v = 0;
    int64_t off = 4 * k4, n = k - off;
    memcpy(&v, row + off, (size_t)(n >= 4 ? 4 : n));
    return v;
}

#endif
