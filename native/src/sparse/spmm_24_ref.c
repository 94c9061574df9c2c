/* 2:4 sparse matmul, scalar reference: reads the panel layout of nm24.h (P = 8) one lane at a time.
 * F32 sums each output in group order (v0 * x[i0] then v1 * x[i1]); S8 sums exactly in int32. */
#include "nm24.h"

#define P_REF 8

static void uk_f32(const nm24_run_ctx *c, int64_t m0, int mr, int64_t panel, int64_t g0, int64_t g1,
                   float *acc, int first) {
    const spmm_problem *p = c->p;
    const float *vals = nm24_vals_f32(c->h) + panel * c->ng * 2 * P_REF;
    const uint8_t *idx = nm24_idx(c->h) + panel * c->ng * P_REF;
    for (int r = 0; r < mr; r++) {
        const float *x = p->x + (m0 + r) * p->ldx;
        for (int l = 0; l < P_REF; l++) {
            float s = first ? 0.0f : acc[r * P_REF + l];
            for (int64_t g = g0; g < g1; g++) {
                unsigned f = idx[g * P_REF + l];
                s += vals[(g * 2) * P_REF + l] * x[4 * g + (f & 3)];
                s += vals[(g * 2 + 1) * P_REF + l] * x[4 * g + (f >> 2)];
            }
            acc[r * P_REF + l] = s;
        }
    }
}

static void uk_s8(const nm24_run_ctx *c, int64_t m0, int mr, int64_t panel, int64_t g0, int64_t g1,
                  int32_t *acc, int first) {
    const int8_t *vals = nm24_vals_s8(c->h) + panel * c->ng * P_REF * 4;
    const uint8_t *meta = nm24_idx(c->h) + panel * c->ng * P_REF;
    for (int r = 0; r < mr; r++) {
        const int8_t *x = (const int8_t *)c->xs + (m0 + r) * c->ldxs;
        for (int l = 0; l < P_REF; l++) {
            int32_t s = first ? 0 : acc[r * P_REF + l];
            for (int64_t q = g0; q < g1; q++) {
                unsigned b = meta[q * P_REF + l];
                const int8_t *v = vals + (q * P_REF + l) * 4;
                const int8_t *xq = x + 8 * q;
                s += v[0] * xq[b & 3] + v[1] * xq[(b >> 2) & 3] + v[2] * xq[4 + ((b >> 4) & 3)] +
                     v[3] * xq[4 + (b >> 6)];
            }
            acc[r * P_REF + l] = s;
        }
    }
}

static int64_t ref_size(const isthmus_sparse_matrix *w) { return nm24_packed_size(w, P_REF); }
static void ref_pack(const isthmus_sparse_matrix *w, sparse_hdr *h) { nm24_pack(w, h, P_REF, ISTHMUS_ISA_REF); }
static isthmus_status ref_run(const spmm_problem *p) {
    nm24_run_ctx c = {.mr_max = 4, .uk_f32 = uk_f32, .uk_s8 = uk_s8};
    return nm24_run(p, &c, 0, "spmm_24__ref");
}
static int hdr_ok(const sparse_hdr *h) { return nm24_header_ok(h, P_REF); }
const SPMM_kernel spmm_24__ref = {ISTHMUS_ISA_REF, ref_size, ref_pack, ref_run, hdr_ok};
