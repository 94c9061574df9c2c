/* The SKINNY family: Y[M, N] = epilogue(A[M, K] . W[N, K]^T) for decode shapes (M <= 16), by weight streaming:
 * every weight byte is read once from HBM, 16 bytes per lane per load (ld.global.nc) when a, w, lda and ldw
 * allow it, byte by byte otherwise (the "scalar" variants, which also serve every layout MMA / WGMMA refuse, at
 * any M: M > 16 runs as tiles of 16 rows, each tile re-reading W).
 *
 * Block: 256 threads = 8 warps; a warp owns 4 consecutive rows of W (output channels), so a block covers 32.
 * The block's K range of A (its MT <= 16 rows) is staged in shared memory, all of it when MT * range <= 48 KB
 * (decode: one barrier per block, none in the streaming loop), else in chunks of 48 KB / MT columns; each lane
 * takes 16 bytes of each of its 4 W rows per 512-column step and does 4 __dp4a per (row, m) against A's same 16
 * bytes, so one A load from shared memory serves 4 weight rows. Accumulators: int32, exact.
 *
 * Split-K when N is too small to fill the GPU: grid.y = splits, each block writes its int32 (one K group) or f32
 * (several groups) partial to the workspace; the last block of a column tile (a counter, __threadfence) sums the
 * partials in split order and applies the epilogue. Deterministic: int32 sums are exact, f32 sums have a fixed
 * order.
 *
 * Epilogue (gemm_internal.h): one group: y = fmaf((float)acc, sa * sw, 0.0f) (+ bias), the CPU's isthmus_gemm_s8
 * operations in its order, so F32 is bit-identical; several groups: per group g, fmaf((float)acc_g, sa_g * sw_g, y)
 * summed by the lanes then the splits (f32, fixed order), + bias. BF16: __float2bfloat16_rn of the f32 result. */
#include <cuda_bf16.h>
#include <stdio.h>

#include "gemm_internal.h"

namespace {

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;
constexpr int ROWS_PER_WARP = 4;
constexpr int N_PER_BLOCK = WARPS * ROWS_PER_WARP; /* 32 */
constexpr int SPLIT_ALIGN = 1024;                  /* split boundaries: multiples of every K group (<= 256) */
constexpr int64_t SMEM_A = 48 * 1024;              /* shared memory for A: the default limit, no opt-in */
constexpr int STEP = 512;                          /* K columns a warp covers per step: 32 lanes x 16 bytes */
constexpr int M_TILE_MAX = 16;
constexpr int64_t SPLIT_MIN_K = 1024;              /* a split covers at least this much K */

struct skinny_params {
    int64_t m, n, k;
    const int8_t *a; int64_t lda;
    const int8_t *w; int64_t ldw;
    int32_t a_gran; const float *a_scales;
    int32_t w_gran; const float *w_scales;
    int64_t group, groups;
    const float *bias;
    void *y; int32_t y_dtype; int64_t ldy;
    int64_t ks;         /* K columns per split (a multiple of SPLIT_ALIGN) */
    int64_t chunk;      /* K columns of A staged at a time (a multiple of STEP; MT * chunk <= SMEM_A) */
    int32_t splits;
    void *partials;     /* [splits, M, N] int32 or f32, when splits > 1 */
    unsigned *counters; /* [gridDim.x * gridDim.z], zero before the launch, when splits > 1 */
};

/* 16 bytes of a row at p: one vector load when aligned (vec) and whole; 16 byte loads when whole but unaligned;
 * a rolled byte loop for the last, partial slice of a row (avail < 16 bytes remain), which is rare and kept
 * small so that it does not cost the streaming loop registers. */
__device__ __noinline__ int4 load16_tail(const int8_t *p, int64_t avail) {
    uint64_t lo = 0, hi = 0;
#pragma unroll 1
    for (int i = 0; i < 16 && i < avail; i++) {
        const uint64_t b = (uint8_t)__ldg(p + i);
        if (i < 8) lo |= b << (8 * i);
        else hi |= b << (8 * (i - 8));
    }
    return make_int4((int)(uint32_t)lo, (int)(uint32_t)(lo >> 32), (int)(uint32_t)hi, (int)(uint32_t)(hi >> 32));
}

__device__ __forceinline__ int4 load16_w(const int8_t *p, bool full, int64_t avail, bool vec) {
    if (!full) return load16_tail(p, avail);
    if (vec) return __ldg(reinterpret_cast<const int4 *>(p));
    uint32_t b[16]; /* unsigned: b[3] << 24 must not overflow a signed int */
#pragma unroll
    for (int i = 0; i < 16; i++) b[i] = (uint8_t)__ldg(p + i);
    int4 r;
    r.x = (int)(b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24);
    r.y = (int)(b[4] | b[5] << 8 | b[6] << 16 | b[7] << 24);
    r.z = (int)(b[8] | b[9] << 8 | b[10] << 16 | b[11] << 24);
    r.w = (int)(b[12] | b[13] << 8 | b[14] << 16 | b[15] << 24);
    return r;
}

__device__ __forceinline__ void store_y(const skinny_params &p, int64_t m, int64_t n, int32_t iacc, float facc) {
    if (p.y_dtype == ISTHMUS_CUDA_S32) {
        static_cast<int32_t *>(p.y)[m * p.ldy + n] = iacc;
        return;
    }
    float v;
    if (p.groups == 1) {
        const float s = __fmul_rn(p.a_scales[gemm_scale_index(p.a_gran, m, 0, 1)],
                                  p.w_scales[gemm_scale_index(p.w_gran, n, 0, 1)]);
        v = __fmaf_rn(__int2float_rn(iacc), s, 0.0f);
    } else {
        v = facc;
    }
    if (p.bias) v = __fadd_rn(v, p.bias[n]);
    if (p.y_dtype == ISTHMUS_CUDA_F32) static_cast<float *>(p.y)[m * p.ldy + n] = v;
    else static_cast<__nv_bfloat16 *>(p.y)[m * p.ldy + n] = __float2bfloat16_rn(v);
}

template <int MT, bool VEC, bool GROUPED>
__global__ void __launch_bounds__(THREADS) skinny_kernel(const skinny_params p) {
    extern __shared__ __align__(16) int8_t As[]; /* [MT][chunk]; no static shared memory: with it, the 48 KB of
                                                     dynamic shared memory SMEM_A allows would exceed the
                                                     default per-block limit and the launch would fail */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t n0 = (int64_t)blockIdx.x * N_PER_BLOCK + warp * ROWS_PER_WARP;
    const int64_t m0 = (int64_t)blockIdx.z * MT;
    const int64_t kb0 = (int64_t)blockIdx.y * p.ks;
    const int64_t kb1 = kb0 + p.ks < p.k ? kb0 + p.ks : p.k;
    constexpr bool grouped = GROUPED;
    const int seg = (int)(p.group / 16); /* lanes per K group when grouped: 2..16 */
    const int gshift = __ffsll(p.group) - 1;

    int32_t acc[ROWS_PER_WARP][MT];
    float facc[ROWS_PER_WARP][MT];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) acc[r][m] = 0, facc[r][m] = 0.0f;

    const int chunk = (int)p.chunk;
    for (int64_t kc = kb0; kc < kb1; kc += chunk) {
        const int64_t len = kb1 - kc < chunk ? kb1 - kc : chunk;
        __syncthreads(); /* the previous chunk's readers are done */
        for (int idx = tid; idx < MT * (chunk / 16); idx += THREADS) {
            const int m = idx / (chunk / 16), c = (idx % (chunk / 16)) * 16;
            int4 v = make_int4(0, 0, 0, 0);
            if (m0 + m < p.m && c < len) {
                const int8_t *src = p.a + (m0 + m) * p.lda + kc + c;
                v = load16_w(src, c + 16 <= len, len - c, VEC);
            }
            *reinterpret_cast<int4 *>(&As[m * chunk + c]) = v;
        }
        __syncthreads();
        const int steps = (int)((len + STEP - 1) / STEP);
#pragma unroll 2
        for (int s = 0; s < steps; s++) {
            const int c = s * STEP + lane * 16;
            const int64_t kabs = kc + c;
            int4 wv[ROWS_PER_WARP];
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; r++) {
                wv[r] = make_int4(0, 0, 0, 0);
                if (n0 + r < p.n && c < len)
                    wv[r] = load16_w(p.w + (n0 + r) * p.ldw + kabs, c + 16 <= len, len - c, VEC);
            }
#pragma unroll
            for (int m = 0; m < MT; m++) {
                const int4 av = *reinterpret_cast<const int4 *>(&As[m * chunk + c]);
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; r++) {
                    int32_t t = acc[r][m];
                    t = __dp4a(av.x, wv[r].x, t);
                    t = __dp4a(av.y, wv[r].y, t);
                    t = __dp4a(av.z, wv[r].z, t);
                    t = __dp4a(av.w, wv[r].w, t);
                    acc[r][m] = t;
                }
            }
            if constexpr (grouped) { /* close the K groups of this step: a group covers `seg` consecutive lanes */
                const int64_t g = kabs >> gshift; /* group is a power of two (32..256) when grouped */
                const bool leader = (lane % seg) == 0 && kabs < kb1;
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; r++)
#pragma unroll
                    for (int m = 0; m < MT; m++) {
                        int32_t v = acc[r][m];
                        for (int o = 1; o < seg; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
                        acc[r][m] = 0;
                        if (leader && n0 + r < p.n && m0 + m < p.m) {
                            const float sc = __fmul_rn(p.a_scales[gemm_scale_index(p.a_gran, m0 + m, g, p.groups)],
                                                       p.w_scales[gemm_scale_index(p.w_gran, n0 + r, g, p.groups)]);
                            facc[r][m] = __fmaf_rn(__int2float_rn(v), sc, facc[r][m]);
                        }
                    }
            }
        }
    }

    /* reduce over the warp's lanes: lane 0 holds the block's result for (r, m) */
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) {
            if constexpr (grouped) {
                float v = facc[r][m];
                for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
                facc[r][m] = v;
            } else {
                int32_t v = acc[r][m];
                for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
                acc[r][m] = v;
            }
        }

    if (p.splits == 1) {
        if (lane == 0) {
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; r++)
#pragma unroll
                for (int m = 0; m < MT; m++)
                    if (n0 + r < p.n && m0 + m < p.m) store_y(p, m0 + m, n0 + r, acc[r][m], facc[r][m]);
        }
        return;
    }

    /* split-K: publish this block's partial, the last block of the tile combines them in split order */
    const int64_t plane = p.m * p.n;
    if (lane == 0) {
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++)
#pragma unroll
            for (int m = 0; m < MT; m++)
                if (n0 + r < p.n && m0 + m < p.m) {
                    const int64_t at = (int64_t)blockIdx.y * plane + (m0 + m) * p.n + n0 + r;
                    if constexpr (grouped) static_cast<float *>(p.partials)[at] = facc[r][m];
                    else static_cast<int32_t *>(p.partials)[at] = acc[r][m];
                }
    }
    __threadfence();
    __syncthreads();
    /* every warp has finished reading As (the K loop is behind the barrier above): its first word is the flag */
    unsigned &last_flag = *reinterpret_cast<unsigned *>(As);
    unsigned *counter = p.counters + (int64_t)blockIdx.z * gridDim.x + blockIdx.x;
    if (tid == 0) last_flag = atomicAdd(counter, 1u) == (unsigned)(p.splits - 1);
    __syncthreads();
    if (!last_flag) return;
    __threadfence();
    const int64_t nb0 = (int64_t)blockIdx.x * N_PER_BLOCK;
    for (int idx = tid; idx < MT * N_PER_BLOCK; idx += THREADS) {
        const int64_t m = m0 + idx / N_PER_BLOCK, n = nb0 + idx % N_PER_BLOCK;
        if (m >= p.m || n >= p.n) continue;
        const int64_t at = m * p.n + n;
        int32_t isum = 0;
        float fsum = 0.0f;
        for (int s = 0; s < p.splits; s++) {
            if constexpr (grouped) fsum = __fadd_rn(fsum, __ldcg(static_cast<const float *>(p.partials) + s * plane + at));
            else isum += __ldcg(static_cast<const int32_t *>(p.partials) + s * plane + at);
        }
        store_y(p, m, n, isum, fsum);
    }
    if (tid == 0) *counter = 0; /* ready for the next call (the launcher also clears the counters) */
}

/* ------------------------------------------------------------------ host side */

struct plan {
    int mt;          /* rows of A per block: 1, 2, 4, 8 or 16 */
    int64_t mtiles;  /* ceil(M / mt) */
    int64_t nblocks; /* ceil(N / 32) */
    int32_t splits;
    int64_t ks, chunk;
    bool vec;
    int64_t partial_bytes, counter_bytes;
};

bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

plan make_plan(const gemm_problem *p) {
    plan q;
    const int64_t m = p->m < M_TILE_MAX ? p->m : M_TILE_MAX;
    q.mt = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : m <= 8 ? 8 : 16;
    q.mtiles = (p->m + q.mt - 1) / q.mt;
    q.nblocks = (p->n + N_PER_BLOCK - 1) / N_PER_BLOCK;
    q.vec = aligned16(p->a) && aligned16(p->w) && p->lda % 16 == 0 && p->ldw % 16 == 0;
    /* enough blocks for about 4 per SM; each split at least SPLIT_MIN_K columns */
    const int64_t target = 4 * (int64_t)(p->num_sms > 0 ? p->num_sms : 1);
    const int64_t have = q.nblocks * q.mtiles;
    int64_t splits = have >= target ? 1 : (target + have - 1) / have;
    const int64_t max_splits = (p->k + SPLIT_MIN_K - 1) / SPLIT_MIN_K;
    if (splits > max_splits) splits = max_splits;
    if (splits < 1) splits = 1;
    int64_t ks = (p->k + splits - 1) / splits;
    ks = (ks + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
    q.ks = ks;
    q.splits = (int32_t)((p->k + ks - 1) / ks);
    /* the whole split of A in shared memory when it fits (no block-wide sync in the streaming loop) */
    const int64_t fit = SMEM_A / q.mt / STEP * STEP, need = (p->k < ks ? p->k : ks) + STEP - 1;
    q.chunk = fit < need / STEP * STEP ? fit : need / STEP * STEP;
    if (q.splits > 1) {
        q.partial_bytes = ((int64_t)q.splits * p->m * p->n * 4 + 255) / 256 * 256;
        q.counter_bytes = q.nblocks * q.mtiles * 4;
    } else {
        q.partial_bytes = q.counter_bytes = 0;
    }
    return q;
}

int skinny_supports(const gemm_problem *p) {
    if (p->sm < 80) return 0;
    const plan q = make_plan(p);
    return q.mtiles <= 65535 && q.nblocks <= 0x7fffffff;
}

int64_t skinny_workspace(const gemm_problem *p) {
    const plan q = make_plan(p);
    return q.partial_bytes + q.counter_bytes;
}

const isthmus_cuda_kernel_info skinny_items[] = {
    {"gemm_s8__skinny_dp4a_m1", "gemm_s8", 80, 1},          {"gemm_s8__skinny_dp4a_m2", "gemm_s8", 80, 2},
    {"gemm_s8__skinny_dp4a_m4", "gemm_s8", 80, 4},          {"gemm_s8__skinny_dp4a_m8", "gemm_s8", 80, 8},
    {"gemm_s8__skinny_dp4a_m16", "gemm_s8", 80, 16},        {"gemm_s8__skinny_dp4a_m1_scalar", "gemm_s8", 80, 1},
    {"gemm_s8__skinny_dp4a_m2_scalar", "gemm_s8", 80, 2},   {"gemm_s8__skinny_dp4a_m4_scalar", "gemm_s8", 80, 4},
    {"gemm_s8__skinny_dp4a_m8_scalar", "gemm_s8", 80, 8},   {"gemm_s8__skinny_dp4a_m16_scalar", "gemm_s8", 80, 0},
};

int mt_index(int mt) { return mt == 1 ? 0 : mt == 2 ? 1 : mt == 4 ? 2 : mt == 8 ? 3 : 4; }

const char *skinny_select(const gemm_problem *p) {
    const plan q = make_plan(p);
    return skinny_items[mt_index(q.mt) + (q.vec ? 0 : 5)].name;
}

template <int MT>
void launch_mt(const plan &q, const skinny_params &sp, cudaStream_t s) {
    const dim3 grid((unsigned)q.nblocks, (unsigned)q.splits, (unsigned)q.mtiles);
    const size_t smem = (size_t)MT * (size_t)q.chunk;
    const bool grouped = sp.groups > 1;
    if (q.vec && !grouped) skinny_kernel<MT, true, false><<<grid, THREADS, smem, s>>>(sp);
    else if (q.vec) skinny_kernel<MT, true, true><<<grid, THREADS, smem, s>>>(sp);
    else if (!grouped) skinny_kernel<MT, false, false><<<grid, THREADS, smem, s>>>(sp);
    else skinny_kernel<MT, false, true><<<grid, THREADS, smem, s>>>(sp);
}

cudaError_t skinny_launch(const gemm_problem *p) {
    const plan q = make_plan(p);
    skinny_params sp;
    sp.m = p->m, sp.n = p->n, sp.k = p->k;
    sp.a = p->a, sp.lda = p->lda, sp.w = p->w, sp.ldw = p->ldw;
    sp.a_gran = p->a_granularity, sp.a_scales = p->a_scales;
    sp.w_gran = p->w_granularity, sp.w_scales = p->w_scales;
    sp.group = p->group, sp.groups = p->groups;
    sp.bias = p->bias;
    sp.y = p->y, sp.y_dtype = p->y_dtype, sp.ldy = p->ldy;
    sp.ks = q.ks, sp.chunk = q.chunk, sp.splits = q.splits;
    sp.partials = nullptr, sp.counters = nullptr;
    if (q.splits > 1) {
        sp.partials = p->workspace;
        sp.counters = reinterpret_cast<unsigned *>(static_cast<char *>(p->workspace) + q.partial_bytes);
        cudaError_t e = cudaMemsetAsync(sp.counters, 0, (size_t)q.counter_bytes, p->stream);
        if (e != cudaSuccess) return e;
    }
    switch (q.mt) {
    case 1: launch_mt<1>(q, sp, p->stream); break;
    case 2: launch_mt<2>(q, sp, p->stream); break;
    case 4: launch_mt<4>(q, sp, p->stream); break;
    case 8: launch_mt<8>(q, sp, p->stream); break;
    default: launch_mt<16>(q, sp, p->stream); break;
    }
    return cudaGetLastError();
}

} // namespace

extern const gemm_family isthmus_cuda__gemm_skinny = {ISTHMUS_CUDA_GEMM_SKINNY, skinny_supports, skinny_workspace,
                                                      skinny_select, skinny_launch};
extern const gemm_variant_list isthmus_cuda__gemm_skinny_variants = {skinny_items, 10};
