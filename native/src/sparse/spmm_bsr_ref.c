/* spmm_bsr__ref: the scalar reference over the packed CSR/BSR layout (bsr.h), walking each row
 * panel by panel through cnt256. Each output is the sum over the row's stored values in storage order: f32 in float, S8 exactly in int32 then spmm_s8_out. */
#include "bsr.h"

static int64_t ref_size(const isthmus_sparse_matrix *w) { return bsr_packed_size(w); }
static void ref_pack(const isthmus_sparse_matrix *w, sparse_hdr *h) { bsr_pack(w, h, ISTHMUS_ISA_REF); }

static isthmus_status ref_run(const spmm_problem *p) {
    bsr_view v = bsr_view_of(p->w);
    const int64_t br = v.br, bc = v.bc, bs = br * bc;
    for (int64_t m = 0; m < p->m; m++)
        for (int64_t R = 0; R < v.R; R++)
            for (int64_t r = 0; r < br; r++) {
                int64_t j = R * br + r;
                if (v.dtype == ISTHMUS_DTYPE_F32) {
                    const float *x = p->x + m * p->ldx;
                    float acc = 0.0f;
                    for (int64_t kb = 0, b = v.rp[R]; kb < v.nkb; kb++)
                        for (int64_t e = b + v.cnt256[R * v.nkb + kb]; b < e; b++) {
                            int64_t c0 = bsr_col(&v, b, kb);
                            for (int64_t cc = 0; cc < bc; cc++) acc += v.vf[b * bs + r * bc + cc] * x[c0 + cc];
                        }
                    p->y[m * p->ldy + j] = p->bias ? acc + p->bias[j] : acc;
                } else {
                    const int8_t *x = p->xq + m * p->ldxq;
                    int32_t acc = 0;
                    for (int64_t kb = 0, b = v.rp[R]; kb < v.nkb; kb++)
                        for (int64_t e = b + v.cnt256[R * v.nkb + kb]; b < e; b++) {
                            int64_t c0 = bsr_col(&v, b, kb);
                            for (int64_t cc = 0; cc < bc; cc++) acc += (int32_t)v.vq[b * bs + r * bc + cc] * x[c0 + cc];
                        }
                    if (p->c) p->c[m * p->ldc + j] = acc;
                    else p->y[m * p->ldy + j] = spmm_s8_out(acc, p->x_scales[m], v.scl[j], p->bias, j);
                }
            }
    return ISTHMUS_OK;
}

const SPMM_kernel spmm_bsr__ref = {ISTHMUS_ISA_REF, ref_size, ref_pack, ref_run, bsr_header_ok};
