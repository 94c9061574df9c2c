/* isthmus_cuda_quantize_s8: activation quantization on the device, bit-identical to the CPU's
 * isthmus_quantize_s8 for f32 input (native/src/quant/quant.h: isthmus__scale_of, isthmus__quant1):
 *   s = amax / 127 (IEEE division), FLT_TRUE_MIN for a non-zero amax whose quotient underflows to 0, one ulp
 *       down when 127 * s would overflow;
 *   q = clamp(round_half_even(x / s), -127, 127), q = 0 for a zero scale.
 * A NaN or +-inf in a row (group) gives scale NaN and q = 0 (the CPU refuses such input instead).
 * No fast-math: __fdiv_rn / __fmul_rn are written out so that no contraction or approximation can creep in,
 * and denormals are kept (nvcc's default -ftz=false).
 *
 * Variants: PER_ROW runs one 256-thread block per row (two passes over the row: max, then quantize);
 * PER_GROUP runs one warp per group (group <= 256: at most 8 values per lane, kept in registers). */
#include <cuda_bf16.h>
#include <float.h>

#include "common.h"
#include "gemm_internal.h"

namespace {

constexpr int ROW_THREADS = 256;
constexpr int GROUP_WARPS = 8;

__device__ __forceinline__ float load_x(const float *p) { return *p; }
__device__ __forceinline__ float load_x(const __nv_bfloat16 *p) { return __bfloat162float(*p); } /* exact */

__device__ __forceinline__ float scale_of(float amax) {
    float s = __fdiv_rn(amax, 127.0f);
    if (s == 0.0f && amax > 0.0f) s = __int_as_float(1); /* FLT_TRUE_MIN */
    if (__fmul_rn(s, 127.0f) > FLT_MAX) s = __int_as_float(__float_as_int(s) - 1); /* nextafter(s, 0), s > 0 */
    return s;
}

__device__ __forceinline__ int8_t quant1(float x, float s) {
    float v = rintf(__fdiv_rn(x, s)); /* rint: round half to even in the default mode */
    v = fminf(fmaxf(v, -127.0f), 127.0f);
    return (int8_t)(int)v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

template <typename T>
__global__ void __launch_bounds__(ROW_THREADS) quantize_rows(const T *__restrict__ x, int64_t ldx, int64_t rows,
                                                             int64_t cols, int8_t *__restrict__ q, int64_t ldq,
                                                             float *__restrict__ scales) {
    __shared__ float red[ROW_THREADS / 32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * ldx;
        float m = 0.0f;
        int bad = 0;
        for (int64_t c = threadIdx.x; c < cols; c += ROW_THREADS) {
            float a = fabsf(load_x(xr + c));
            if (!(a <= FLT_MAX)) bad = 1;
            else m = fmaxf(m, a);
        }
        bad = __syncthreads_or(bad);
        m = warp_max(m);
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = m;
        __syncthreads();
        m = red[0];
        for (int i = 1; i < ROW_THREADS / 32; i++) m = fmaxf(m, red[i]);
        __syncthreads(); /* red is reused by the next row */
        const float s = bad ? __int_as_float(0x7fc00000) : scale_of(m);
        if (threadIdx.x == 0) scales[r] = s;
        int8_t *qr = q + r * ldq;
        if (s > 0.0f) {
            for (int64_t c = threadIdx.x; c < cols; c += ROW_THREADS) qr[c] = quant1(load_x(xr + c), s);
        } else { /* all zero, or NaN */
            for (int64_t c = threadIdx.x; c < cols; c += ROW_THREADS) qr[c] = 0;
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(GROUP_WARPS * 32) quantize_groups(const T *__restrict__ x, int64_t ldx, int64_t rows,
                                                                    int64_t cols, int64_t group, int64_t ngroups,
                                                                    int8_t *__restrict__ q, int64_t ldq,
                                                                    float *__restrict__ scales) {
    const int lane = threadIdx.x & 31;
    const int64_t total = rows * ngroups;
    const int per_lane = (int)(group / 32); /* 1, 2, 4 or 8 */
    for (int64_t w = (int64_t)blockIdx.x * GROUP_WARPS + (threadIdx.x >> 5); w < total;
         w += (int64_t)gridDim.x * GROUP_WARPS) {
        const int64_t r = w / ngroups, g = w - r * ngroups;
        const int64_t c0 = g * group;
        const int64_t n = cols - c0 < group ? cols - c0 : group;
        const T *xr = x + r * ldx + c0;
        float v[8];
        float m = 0.0f;
        int bad = 0;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int64_t c = (int64_t)i * 32 + lane;
            v[i] = 0.0f;
            if (i < per_lane && c < n) {
                v[i] = load_x(xr + c);
                float a = fabsf(v[i]);
                if (!(a <= FLT_MAX)) bad = 1;
                else m = fmaxf(m, a);
            }
        }
        bad = __any_sync(0xffffffffu, bad);
        m = warp_max(m);
        const float s = bad ? __int_as_float(0x7fc00000) : scale_of(m);
        if (lane == 0) scales[r * ngroups + g] = s;
        int8_t *qr = q + r * ldq + c0;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int64_t c = (int64_t)i * 32 + lane;
            if (i < per_lane && c < n) qr[c] = s > 0.0f ? quant1(v[i], s) : (int8_t)0;
        }
    }
}

const isthmus_cuda_kernel_info quantize_items[] = {
    {"quantize_s8__row_block256", "quantize_s8", 80, 0},
    {"quantize_s8__group_warp", "quantize_s8", 80, 0},
};

} // namespace

extern const gemm_variant_list isthmus_cuda__quantize_variants = {quantize_items, 2};

static const int64_t MAX_ELEMS = (int64_t)1 << 45; /* as the CPU library's ISTHMUS_MAX_ELEMS */

extern "C" isthmus_cuda_status isthmus_cuda_quantize_s8(const isthmus_cuda_quantize_args *a) {
    static const char fn[] = "isthmus_cuda_quantize_s8";
    isthmus_cuda__clear_error();
    if (!a) return FAIL_ARG("%s: args is NULL", fn);
    if (a->rows < 1 || a->cols < 1)
        return FAIL_ARG("%s: rows = %lld, cols = %lld, both must be >= 1", fn, (long long)a->rows, (long long)a->cols);
    if (!a->x) return FAIL_ARG("%s: x is NULL", fn);
    if (a->x_dtype != ISTHMUS_CUDA_F32 && a->x_dtype != ISTHMUS_CUDA_BF16)
        return FAIL_ARG("%s: x_dtype = %d, must be ISTHMUS_CUDA_F32 (0) or ISTHMUS_CUDA_BF16 (1)", fn, (int)a->x_dtype);
    if (a->ldx < a->cols)
        return FAIL_ARG("%s: ldx = %lld, must be >= cols = %lld", fn, (long long)a->ldx, (long long)a->cols);
    if (a->ldx > MAX_ELEMS / a->rows)
        return FAIL_ARG("%s: x [rows = %lld, ldx = %lld] is too large", fn, (long long)a->rows, (long long)a->ldx);
    if (a->granularity == ISTHMUS_CUDA_SCALE_PER_TENSOR)
        return isthmus_cuda__fail(ISTHMUS_CUDA_ERR_UNSUPPORTED,
                                  "%s: granularity PER_TENSOR is not offered on the device (it needs a grid-wide max): "
                                  "use PER_ROW or PER_GROUP",
                                  fn);
    if (a->granularity != ISTHMUS_CUDA_SCALE_PER_ROW && a->granularity != ISTHMUS_CUDA_SCALE_PER_GROUP)
        return FAIL_ARG("%s: granularity = %d, must be ISTHMUS_CUDA_SCALE_PER_ROW (1) or PER_GROUP (2)", fn,
                        (int)a->granularity);
    if (a->granularity == ISTHMUS_CUDA_SCALE_PER_GROUP && a->group != 32 && a->group != 64 && a->group != 128 &&
        a->group != 256)
        return FAIL_ARG("%s: group = %lld, must be 32, 64, 128 or 256 with PER_GROUP", fn, (long long)a->group);
    if (!a->q) return FAIL_ARG("%s: q is NULL", fn);
    if (a->ldq < a->cols)
        return FAIL_ARG("%s: ldq = %lld, must be >= cols = %lld", fn, (long long)a->ldq, (long long)a->cols);
    if (a->ldq > MAX_ELEMS / a->rows)
        return FAIL_ARG("%s: q [rows = %lld, ldq = %lld] is too large", fn, (long long)a->rows, (long long)a->ldq);
    if (!a->scales) return FAIL_ARG("%s: scales is NULL", fn);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, a->device);
    if (st) return st;

    cudaStream_t s = (cudaStream_t)a->stream;
    if (a->granularity == ISTHMUS_CUDA_SCALE_PER_ROW) {
        const unsigned grid = (unsigned)(a->rows < (1 << 20) ? a->rows : (1 << 20));
        if (a->x_dtype == ISTHMUS_CUDA_F32)
            quantize_rows<float><<<grid, ROW_THREADS, 0, s>>>((const float *)a->x, a->ldx, a->rows, a->cols, a->q,
                                                              a->ldq, a->scales);
        else
            quantize_rows<__nv_bfloat16><<<grid, ROW_THREADS, 0, s>>>((const __nv_bfloat16 *)a->x, a->ldx, a->rows,
                                                                      a->cols, a->q, a->ldq, a->scales);
    } else {
        const int64_t ngroups = (a->cols + a->group - 1) / a->group;
        const int64_t blocks = (a->rows * ngroups + GROUP_WARPS - 1) / GROUP_WARPS;
        const unsigned grid = (unsigned)(blocks < (1 << 20) ? blocks : (1 << 20));
        if (a->x_dtype == ISTHMUS_CUDA_F32)
            quantize_groups<float><<<grid, GROUP_WARPS * 32, 0, s>>>((const float *)a->x, a->ldx, a->rows, a->cols,
                                                                     a->group, ngroups, a->q, a->ldq, a->scales);
        else
            quantize_groups<__nv_bfloat16><<<grid, GROUP_WARPS * 32, 0, s>>>(
                (const __nv_bfloat16 *)a->x, a->ldx, a->rows, a->cols, a->group, ngroups, a->q, a->ldq, a->scales);
    }
    CUDA_TRY(fn, "kernel launch (quantize_s8)", cudaGetLastError());
    return ISTHMUS_CUDA_OK;
}
