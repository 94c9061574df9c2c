/* The contract between the GEMM entry (gemm.cu: validation, selection, registry) and the kernel families
 * (gemm_mma.cu, gemm_wgmma.cu, gemm_skinny.cu). Internal: not part of the ABI.
 *
 * gemm.cu validates every argument of isthmus_cuda_gemm_s8_args (shapes, strides, granularities, group,
 * NULL rules, dtype, K <= ISTHMUS_CUDA_GEMM_MAX_K, the workspace size), makes the device current, fills a
 * gemm_problem and asks the families in order (forced one, or AUTO: skinny for M <= 16, wgmma on sm_90a,
 * else mma) whether they take it. A family's functions never fail on arguments gemm.cu has validated,
 * except by returning 0 from `supports` (then gemm.cu tries the next family, or reports UNSUPPORTED when
 * the family was forced). */
#ifndef ISTHMUS_CUDA_GEMM_INTERNAL_H
#define ISTHMUS_CUDA_GEMM_INTERNAL_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "isthmus_cuda.h"

typedef struct gemm_problem {
    int64_t m, n, k;
    const int8_t *a; int64_t lda;
    const int8_t *w; int64_t ldw;
    int32_t a_granularity; const float *a_scales; /* NULL iff y_dtype == S32                     */
    int32_t w_granularity; const float *w_scales; /* NULL iff y_dtype == S32                     */
    int64_t group;        /* K-group of the scales: K itself when neither side is PER_GROUP, so that
                             kernels have one rule: group g covers columns [g * group, min(K, (g + 1) * group)) */
    int64_t groups;       /* ceil(K / group)                                                          */
    const float *bias;    /* [N] or NULL                                                             */
    void *y; int32_t y_dtype; int64_t ldy;
    void *workspace; int64_t workspace_size; /* >= the family's workspace() for this problem        */
    cudaStream_t stream;
    int32_t device;
    int32_t sm;           /* compute capability * 10 (80, 86, 89, 90, ...)                           */
    int32_t num_sms;
    int64_t smem_optin;   /* cudaDevAttrMaxSharedMemoryPerBlockOptin                                 */
} gemm_problem;

/* Scale index helpers, the same for every family: a_scales[row * a_stride + g], 0 stride for per tensor. */
#ifdef __CUDACC__
__host__ __device__
#endif
static inline int64_t gemm_scale_index(int32_t granularity, int64_t row, int64_t g, int64_t groups) {
    return granularity == ISTHMUS_CUDA_SCALE_PER_TENSOR ? 0
         : granularity == ISTHMUS_CUDA_SCALE_PER_ROW    ? row
                                                         : row * groups + g;
}

/* One kernel family. All functions are host functions. */
typedef struct gemm_family {
    int32_t id;                                          /* ISTHMUS_CUDA_GEMM_MMA_SYNC, ...         */
    /* 1 when this family runs the problem (device, alignment, shape), else 0 */
    int (*supports)(const gemm_problem *p);
    /* bytes of workspace the problem needs (0 when none) */
    int64_t (*workspace)(const gemm_problem *p);
    /* registry name of the variant it would run (static string) */
    const char *(*select)(const gemm_problem *p);
    /* enqueue on p->stream; returns cudaSuccess or the launch error */
    cudaError_t (*launch)(const gemm_problem *p);
} gemm_family;

extern const gemm_family isthmus_cuda__gemm_mma;
extern const gemm_family isthmus_cuda__gemm_wgmma;
extern const gemm_family isthmus_cuda__gemm_skinny;

/* Registry entries each family contributes (name, op "gemm_s8", min_sm, max_m); a family lists every
 * variant it may select. */
typedef struct gemm_variant_list {
    const isthmus_cuda_kernel_info *items;
    int64_t count;
} gemm_variant_list;
extern const gemm_variant_list isthmus_cuda__gemm_mma_variants;
extern const gemm_variant_list isthmus_cuda__gemm_wgmma_variants;
extern const gemm_variant_list isthmus_cuda__gemm_skinny_variants;

/* The epilogue every family applies to an output element, so that results agree across families:
 *  - one group (p->groups == 1): y = fmaf((float)acc, sa * sw, 0.0f), then + bias[n]: the CPU's operations in
 *    its order (gemm_ref.c starts y at 0.0f and fmaf's each group in), so F32 is bit-identical to isthmus_gemm_s8;
 *    it equals (float)acc * (sa * sw) except for the sign of a zero (fmaf(x, s, +0) never gives -0 from x * s = -0);
 *  - several groups: y accumulates fmaf((float)acc_g, sa_g * sw_g, y) over the groups the kernel sees, in
 *    its own order (split-K partial sums are added in f32), then + bias[n].
 * Output: F32 stored as is; BF16 rounded to nearest even from the final f32 (__float2bfloat16_rn);
 * S32 stores acc (the sum over all of K) and ignores scales. */

#endif
