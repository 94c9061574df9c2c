/*
 * gemm_s8s8_f32__ref / gemm_s8s8_s32__ref: the scalar reference. It reads weights packed in ANY
 * variant's layout (through the header's nr), so it also serves as the oracle for the packing itself
 * (the C tests compare it with a plain double-precision GEMM on the unpacked matrix).
 *
 * Y[m, n] = sum over groups g: fma((float)acc_g, sa(m, g) * sw(n, g), y), then + bias[n].
 * A is [M, K] row-major (lda), W is [N, K] (row per output channel), Y is [M, N].
 */
#include "gemm.h"

#include <math.h>

static inline int8_t w_at(const gemm_problem *p, int64_t n, int64_t k) {
    const int64_t nr = p->w->nr;
    const int8_t *pan = p->wp + (n / nr) * p->w->kp * nr;
    return pan[(k >> 2) * nr * 4 + (n % nr) * 4 + (k & 3)];
}

static void tile_ref(const gemm_problem *p, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
    const packed_hdr *h = p->w;
    const int64_t nr = h->nr, ng = h->ngroups, glen = gemm_group_len(h);
    int64_t n0 = p0 * nr, n1 = p1 * nr < p->n ? p1 * nr : p->n;
    for (int64_t m = m0; m < m1; m++) {
        const int8_t *arow = p->a + m * p->lda;
        for (int64_t n = n0; n < n1; n++) {
            if (p->c != NULL) {
                int32_t acc = 0;
                for (int64_t k = 0; k < p->k; k++) acc += (int32_t)arow[k] * w_at(p, n, k);
                p->c[m * p->ldc + n] = acc;
                continue;
            }
            float y = 0.0f;
            for (int64_t g = 0; g < ng; g++) {
                int64_t k0 = g * glen, k1 = k0 + glen < p->k ? k0 + glen : p->k;
                int32_t acc = 0;
                for (int64_t k = k0; k < k1; k++) acc += (int32_t)arow[k] * w_at(p, n, k);
                float s = p->sa[m * p->sa_rs + g * p->sa_gs] * p->ws[((n / nr) * ng + g) * nr + n % nr];
                y = fmaf((float)acc, s, y);
            }
            if (p->bias != NULL) y += p->bias[n];
            p->y[m * p->ldy + n] = y;
        }
    }
}

const GEMM_S8_kernel gemm_s8s8_f32__ref = {ISTHMUS_ISA_REF, 1, 0, 0, 0, 0, tile_ref};
const GEMM_S8_kernel gemm_s8s8_s32__ref = {ISTHMUS_ISA_REF, 1, 0, 0, 0, 0, tile_ref};
