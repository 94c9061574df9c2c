/* The device side of gemm_internal.h's shared epilogue rule, used by the MMA and WGMMA families so that
 * their results agree bit for bit (one group) and by the same rule (several groups). Internal.
 *
 *  - S32: y = acc.
 *  - one group: y = __fadd_rn(__fmaf_rn(__int2float_rn(acc), __fmul_rn(sa, sw), 0.0f), bias): the explicit _rn
 *    intrinsics keep nvcc from contracting the multiply and the add into one FMA, which would round once
 *    instead of twice and differ from the CPU.
 *  - several groups: the kernel folds facc = fmaf(__int2float_rn(acc_g), __fmul_rn(sa_g, sw_g), facc) at
 *    every group boundary (gemm_fold_scale below gives sa_g * sw_g), then y = __fadd_rn(facc, bias).
 *  - BF16: __float2bfloat16_rn of the final f32. */
#ifndef ISTHMUS_CUDA_GEMM_EPILOGUE_CUH
#define ISTHMUS_CUDA_GEMM_EPILOGUE_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#include "gemm_internal.h"

/* What a kernel needs of gemm_problem, by value (a kernel parameter). m, n, k fit int32 (the families'
 * supports() check it); element offsets are computed in int64. */
struct gemm_dev_args {
    const int8_t *a;
    const int8_t *w;
    int64_t lda, ldw;
    int32_t m, n, k;
    int32_t group, groups;
    int32_t a_gran, w_gran;
    int32_t y_dtype;
    int32_t vec_ok; /* y and ldy allow the 2-element stores (8 bytes F32/S32, 4 bytes BF16) */
    const float *a_scales;
    const float *w_scales;
    const float *bias;
    void *y;
    int64_t ldy;
};

static inline gemm_dev_args gemm_make_dev_args(const gemm_problem *p) {
    gemm_dev_args d;
    d.a = p->a;
    d.w = p->w;
    d.lda = p->lda;
    d.ldw = p->ldw;
    d.m = (int32_t)p->m;
    d.n = (int32_t)p->n;
    d.k = (int32_t)p->k;
    d.group = (int32_t)(p->group < INT32_MAX ? p->group : INT32_MAX);
    d.groups = (int32_t)p->groups;
    d.a_gran = p->a_granularity;
    d.w_gran = p->w_granularity;
    d.y_dtype = p->y_dtype;
    const uintptr_t ya = (uintptr_t)p->y;
    const uintptr_t need = p->y_dtype == ISTHMUS_CUDA_BF16 ? 4u : 8u;
    d.vec_ok = (ya % need == 0) && (p->ldy % 2 == 0);
    d.a_scales = p->a_scales;
    d.w_scales = p->w_scales;
    d.bias = p->bias;
    d.y = p->y;
    d.ldy = p->ldy;
    return d;
}

/* Grouped rasterization of a linear tile index (consecutive tiles share a band of `band` M-tiles, so that
 * CTAs running at the same time reuse A and W panels in L2). */
__device__ __forceinline__ void gemm_tile_coords(int64_t tile, int32_t tiles_m, int32_t tiles_n, int32_t band,
                                                 int32_t &tm, int32_t &tn) {
    const int64_t per_band = (int64_t)band * tiles_n;
    const int64_t b = tile / per_band;
    const int32_t first_m = (int32_t)(b * band);
    const int32_t rows = min(tiles_m - first_m, band);
    const int32_t r = (int32_t)(tile - b * per_band);
    tm = first_m + r % rows;
    tn = r / rows;
}

__device__ __forceinline__ float gemm_ldg(const float *p) { return __ldg(p); }

/* sa_g * sw_g for output (row, col), group g; 0 for a row or column outside the matrix (their
 * accumulators are zero and never stored; no scale is read out of bounds). */
__device__ __forceinline__ float gemm_row_scale(const gemm_dev_args &p, int32_t row, int32_t g) {
    return row < p.m ? gemm_ldg(p.a_scales + gemm_scale_index(p.a_gran, row, g, p.groups)) : 0.0f;
}
__device__ __forceinline__ float gemm_col_scale(const gemm_dev_args &p, int32_t col, int32_t g) {
    return col < p.n ? gemm_ldg(p.w_scales + gemm_scale_index(p.w_gran, col, g, p.groups)) : 0.0f;
}

/* Stores y[row][col], y[row][col + 1] (col even; the second only when col + 1 < n). row < m is the
 * caller's check. v0, v1 are the final f32 values (F32, BF16) or ignored (S32: i0, i1). */
__device__ __forceinline__ void gemm_store_pair(const gemm_dev_args &p, int32_t row, int32_t col, float v0, float v1,
                                                int32_t i0, int32_t i1) {
    if (col >= p.n) return;
    const bool two = col + 1 < p.n;
    const int64_t off = (int64_t)row * p.ldy + col;
    if (p.y_dtype == ISTHMUS_CUDA_S32) {
        int32_t *y = static_cast<int32_t *>(p.y) + off;
        if (two && p.vec_ok) {
            *reinterpret_cast<int2 *>(y) = make_int2(i0, i1);
        } else {
            y[0] = i0;
            if (two) y[1] = i1;
        }
    } else if (p.y_dtype == ISTHMUS_CUDA_F32) {
        float *y = static_cast<float *>(p.y) + off;
        if (two && p.vec_ok) {
            *reinterpret_cast<float2 *>(y) = make_float2(v0, v1);
        } else {
            y[0] = v0;
            if (two) y[1] = v1;
        }
    } else {
        __nv_bfloat16 *y = static_cast<__nv_bfloat16 *>(p.y) + off;
        const __nv_bfloat16 b0 = __float2bfloat16_rn(v0);
        const __nv_bfloat16 b1 = __float2bfloat16_rn(v1);
        if (two && p.vec_ok) {
            __nv_bfloat162 pr;
            pr.x = b0;
            pr.y = b1;
            *reinterpret_cast<__nv_bfloat162 *>(y) = pr;
        } else {
            y[0] = b0;
            if (two) y[1] = b1;
        }
    }
}

/* One group: the epilogue of two accumulators of row `row` (< m), columns col, col + 1, with sa the row's
 * scale already loaded. */
__device__ __forceinline__ void gemm_epilogue_one_group(const gemm_dev_args &p, int32_t row, int32_t col, float sa,
                                                        int32_t acc0, int32_t acc1) {
    float v0 = 0.0f, v1 = 0.0f;
    if (p.y_dtype != ISTHMUS_CUDA_S32) {
        const float sw0 = gemm_col_scale(p, col, 0);
        const float sw1 = gemm_col_scale(p, col + 1, 0);
        v0 = __fmaf_rn(__int2float_rn(acc0), __fmul_rn(sa, sw0), 0.0f); /* +0 for acc = 0, as the CPU */
        v1 = __fmaf_rn(__int2float_rn(acc1), __fmul_rn(sa, sw1), 0.0f);
        if (p.bias != nullptr) {
            if (col < p.n) v0 = __fadd_rn(v0, gemm_ldg(p.bias + col));
            if (col + 1 < p.n) v1 = __fadd_rn(v1, gemm_ldg(p.bias + col + 1));
        }
    }
    gemm_store_pair(p, row, col, v0, v1, acc0, acc1);
}

/* Several groups: the folded f32 sums of row `row` (< m), columns col, col + 1. */
__device__ __forceinline__ void gemm_epilogue_groups(const gemm_dev_args &p, int32_t row, int32_t col, float f0,
                                                     float f1) {
    if (p.bias != nullptr) {
        if (col < p.n) f0 = __fadd_rn(f0, gemm_ldg(p.bias + col));
        if (col + 1 < p.n) f1 = __fadd_rn(f1, gemm_ldg(p.bias + col + 1));
    }
    gemm_store_pair(p, row, col, f0, f1, 0, 0);
}

#endif
