/* The MMA_SYNC family (sm_80+): Y[M,N] = A[M,K] . W[N,K]^T, int8 in, int32 accumulation, the shared
 * epilogue of gemm_internal.h / gemm_epilogue.cuh.
 *
 * Design
 *  - Instruction: mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 (A row-major = K-contiguous rows of A;
 *    B "col" = K-contiguous rows of W, exactly W's [N,K] layout). Fragments come from shared memory with
 *    ldmatrix.x4 (PTX ISA 9.7.14.5.15); the mapping to the m16n8k32 fragments (9.7.14.5.14) is in ptx.cuh.
 *  - 8 warps (256 threads) as 2 (M) x 4 (N); block tile BM x BN x 64 (K-tile of 64 bytes = two k32 steps).
 *      variant                      warp tile  acc regs  stages  smem (bytes)
 *      128x256x64_s3                64x64      128 s32   3       3 * (128+256) * 64 = 73728
 *      128x128x64_s4                64x32       64 s32   4       4 * 256 * 64       = 65536
 *      64x128x64_s4                 32x32       32 s32   4       4 * 192 * 64       = 49152
 *      128x128x64_s4_grouped        64x32       64 s32 + 64 f32  65536
 *      64x128x64_s4_grouped         32x32       32 s32 + 32 f32  49152
 *    All fit A100 (163 KB opt-in) and H100/H200 (227 KB); launch() raises the dynamic limit each time.
 *  - Pipeline: cp.async.cg 16-byte copies global -> shared, STAGES-deep ring, one commit group per K-tile
 *    (empty groups past the end keep the wait_group arithmetic uniform). Iteration kt waits for tile kt
 *    (wait_group STAGES-2), __syncthreads (everyone is also done reading tile kt-1's stage), issues the
 *    copy of tile kt+STAGES-1 into that freed stage, then computes tile kt.
 *  - Shared layout: a tile is R rows x 64 bytes (4 chunks of 16 bytes). Two rows form one 128-byte line;
 *    chunk q = (r%2)*4 + c of line L = r/2 sits at chunk q ^ (L%8) of its line. An ldmatrix phase reads
 *    8 consecutive rows at one chunk column c: lines L0..L0+3 (L0 % 4 == 0), chunks {c, c+4} ^ {L%8}: 8
 *    distinct 16-byte chunks of 128 bytes = all 32 banks, no conflict; a cp.async phase (8 threads = 2 rows
 *    x 4 chunks = one line) likewise writes 8 distinct chunks. Moving to the next k32 step flips chunk bit 1
 *    (c += 2), which is an XOR of the byte offset with 32; moving 16 rows moves 8 lines (L%8 unchanged),
 *    + 1024 bytes.
 *  - Tails: rows of A past M, rows of W past N and bytes past K are zero-filled by cp.async's src-size
 *    (0..16 bytes read, the rest zero), so no load leaves the matrices (rows are 16-byte aligned since a, w,
 *    lda, ldw are multiples of 16; a partial chunk reads only its K - k bytes). k32 steps that lie wholly
 *    past K are skipped. Stores are predicated on row < M, col < N.
 *  - Groups (p->groups > 1, group a multiple of 32): the int32 accumulators are folded into f32 ones at
 *    the end of every k32 step that ends a group (or K): facc = fmaf(acc, sa_g * sw_g, facc); acc = 0.
 *  - Epilogue: straight from the accumulator fragments, two adjacent columns per store (8-byte F32/S32,
 *    4-byte BF16 stores; a warp store instruction covers 8 rows x 32 contiguous bytes = full sectors), or
 *    scalar stores when y / ldy are not aligned for that.
 *  - Grid: one CTA per output tile, 1-D, grouped rasterization (bands of 8 M-tiles).
 *  - No split-K: workspace() is 0.
 *
 * ptxas (nvcc 13.0, -O3 -std=c++17), registers sm_80 / sm_90a, all with 0 spill bytes and 0 stack frame
 * (shared memory is all dynamic, sizes above):
 *      128x256x64_s3 196 / 192 (launch bound 256 x 1)   128x128x64_s4 111 / 112 (256 x 2)
 *      64x128x64_s4   76 /  72 (256 x 2)                128x128x64_s4_grouped 216 / 218 (256 x 1)
 *      64x128x64_s4_grouped 128 / 128 (256 x 2)
 *
 * Expected SASS (cuobjdump --dump-sass): IMMA.16832.S8.S8 in the main loop, LDSM.16.M88.4 for ldmatrix,
 * LDGSTS.E.BYPASS.LTC128B.128 (+ .ZFILL) for cp.async, LDGDEPBAR / DEPBAR for the groups.
 *
 * UNVERIFIED (written without a GPU; nothing here has run): every run-time behaviour. Check first on a
 * device: the fragment mapping (ldmatrix lane addresses vs. mma fragments) with S32 output against the CPU
 * for M, N, K in {1, 15, 17, 64, 65, 127, 129, 1000}; the K-tail zero fill (K % 16 != 0); the grouped fold
 * (group 32 with K-tile 64); bank conflicts (ncu l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld).
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "gemm_epilogue.cuh"
#include "gemm_internal.h"
#include "ptx.cuh"

namespace {

constexpr int kThreads = 256;
constexpr int kBK = 64;          /* bytes = int8 elements per K-tile */
constexpr int kBand = 8;         /* M-tiles per raster band */

/* byte offset of (row r, 16-byte chunk c in 0..3) inside a tile of 64-byte rows (see the design note) */
__device__ __forceinline__ uint32_t swz(int r, int c) {
    const int line = r >> 1;
    const int q = ((r & 1) << 2) | c;
    return (uint32_t)(line * 128 + ((q ^ (line & 7)) << 4));
}

template <int BM, int BN, int STAGES, bool GROUPED, int MINB>
__global__ void __launch_bounds__(kThreads, MINB) mma_gemm_kernel(const gemm_dev_args p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    using namespace isthmus_ptx;
    constexpr int WARPS_N = 4;
    constexpr int WM = BM / 2, WN = BN / WARPS_N;
    constexpr int MF = WM / 16, NF = WN / 8;
    static_assert(NF % 2 == 0, "ldmatrix.x4 loads B fragments in pairs");
    constexpr int A_BYTES = BM * kBK, B_BYTES = BN * kBK, STAGE_BYTES = A_BYTES + B_BYTES;
    constexpr int A_ITERS = BM * 4 / kThreads, B_ITERS = BN * 4 / kThreads;
    static_assert(A_ITERS >= 1 && B_ITERS >= 1 && BM * 4 % kThreads == 0 && BN * 4 % kThreads == 0, "load split");

    extern __shared__ __align__(1024) uint8_t smem[];
    const uint32_t smem0 = smem_u32(smem);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int warp_m = warp / WARPS_N, warp_n = warp % WARPS_N;

    const int32_t tiles_m = (p.m + BM - 1) / BM, tiles_n = (p.n + BN - 1) / BN;
    int32_t tm, tn;
    gemm_tile_coords((int64_t)blockIdx.x, tiles_m, tiles_n, kBand, tm, tn);
    const int32_t m0 = tm * BM, n0 = tn * BN;
    const int32_t ktiles = (p.k + kBK - 1) / kBK;

    /* per-thread copy sources: row pointers (clamped to a valid row), smem offsets, row validity */
    const int8_t *a_src[A_ITERS];
    uint32_t a_dst[A_ITERS];
    int a_kc[A_ITERS];
    bool a_ok[A_ITERS];
#pragma unroll
    for (int i = 0; i < A_ITERS; ++i) {
        const int id = tid + i * kThreads, r = id >> 2, c = id & 3;
        const int32_t gr = m0 + r;
        a_ok[i] = gr < p.m;
        a_src[i] = p.a + (int64_t)(a_ok[i] ? gr : 0) * p.lda + c * 16;
        a_dst[i] = swz(r, c);
        a_kc[i] = c * 16;
    }
    const int8_t *b_src[B_ITERS];
    uint32_t b_dst[B_ITERS];
    int b_kc[B_ITERS];
    bool b_ok[B_ITERS];
#pragma unroll
    for (int i = 0; i < B_ITERS; ++i) {
        const int id = tid + i * kThreads, r = id >> 2, c = id & 3;
        const int32_t gr = n0 + r;
        b_ok[i] = gr < p.n;
        b_src[i] = p.w + (int64_t)(b_ok[i] ? gr : 0) * p.ldw + c * 16;
        b_dst[i] = A_BYTES + swz(r, c);
        b_kc[i] = c * 16;
    }

    auto load_tile = [&](int32_t kt, int stage) {
        const int32_t k0 = kt * kBK;
        const uint32_t base = smem0 + (uint32_t)(stage * STAGE_BYTES);
#pragma unroll
        for (int i = 0; i < A_ITERS; ++i) {
            const int32_t rem = p.k - (k0 + a_kc[i]);
            const int bytes = a_ok[i] ? (rem >= 16 ? 16 : (rem > 0 ? rem : 0)) : 0;
            cp_async_16(base + a_dst[i], bytes > 0 ? (const void *)(a_src[i] + k0) : (const void *)p.a, bytes);
        }
#pragma unroll
        for (int i = 0; i < B_ITERS; ++i) {
            const int32_t rem = p.k - (k0 + b_kc[i]);
            const int bytes = b_ok[i] ? (rem >= 16 ? 16 : (rem > 0 ? rem : 0)) : 0;
            cp_async_16(base + b_dst[i], bytes > 0 ? (const void *)(b_src[i] + k0) : (const void *)p.w, bytes);
        }
    };

    /* ldmatrix lane offsets (k32 step 0; step s is offset ^ (s << 5)).
     * A, m-fragment i: matrices (rows 0-7, k 0-15), (rows 8-15, k 0-15), (rows 0-7, k 16-31),
     * (rows 8-15, k 16-31) -> a[0..3] of 9.7.14.5.14; lane l addresses row l%16, chunk l/16.
     * B, n-fragments 2j, 2j+1: matrices (n 0-7, k 0-15), (n 0-7, k 16-31), (n 8-15, k 0-15),
     * (n 8-15, k 16-31) -> b0, b1 of n-fragment 2j, then of 2j+1; lane l addresses n (l%8) + 8 (l/16),
     * chunk (l/8)%2. */
    const uint32_t a_ld = swz(warp_m * WM + (lane & 15), lane >> 4);
    const uint32_t b_ld = (uint32_t)A_BYTES + swz(warp_n * WN + (lane & 7) + ((lane >> 4) << 3), (lane >> 3) & 1);

    int32_t acc[MF][NF][4];
#pragma unroll
    for (int i = 0; i < MF; ++i)
#pragma unroll
        for (int j = 0; j < NF; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;
    float facc[GROUPED ? MF : 1][GROUPED ? NF : 1][4];
    if constexpr (GROUPED) {
#pragma unroll
        for (int i = 0; i < MF; ++i)
#pragma unroll
            for (int j = 0; j < NF; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) facc[i][j][e] = 0.0f;
    }

    const int g = lane >> 2, t = lane & 3;
    const int32_t row_base = m0 + warp_m * WM + g; /* + i*16 + h*8 */
    const int32_t col_base = n0 + warp_n * WN + 2 * t; /* + j*8 + c */

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) load_tile(s, s);
        cp_async_commit();
    }

    for (int32_t kt = 0; kt < ktiles; ++kt) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        {
            const int32_t nk = kt + STAGES - 1;
            if (nk < ktiles) load_tile(nk, nk % STAGES);
            cp_async_commit();
        }
        const uint32_t base = smem0 + (uint32_t)((kt % STAGES) * STAGE_BYTES);
        const int32_t k0 = kt * kBK;
#pragma unroll
        for (int ks = 0; ks < kBK / 32; ++ks) {
            const int32_t kstep = k0 + ks * 32;
            if (kstep >= p.k) break; /* a step wholly past K: zeros, and no group to fold (uniform) */
            uint32_t af[MF][4];
            uint32_t bf[NF][2];
#pragma unroll
            for (int i = 0; i < MF; ++i) ldmatrix_x4(af[i], base + ((a_ld + i * 1024u) ^ (uint32_t)(ks << 5)));
#pragma unroll
            for (int j = 0; j < NF / 2; ++j) {
                uint32_t r[4];
                ldmatrix_x4(r, base + ((b_ld + j * 1024u) ^ (uint32_t)(ks << 5)));
                bf[2 * j][0] = r[0];
                bf[2 * j][1] = r[1];
                bf[2 * j + 1][0] = r[2];
                bf[2 * j + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < MF; ++i)
#pragma unroll
                for (int j = 0; j < NF; ++j) mma_s8_16832(acc[i][j], af[i], bf[j][0], bf[j][1]);

            if constexpr (GROUPED) {
                const int32_t kend = kstep + 32;
                if (kend % p.group == 0 || kend >= p.k) {
                    const int32_t gi = kstep / p.group;
                    float sa[MF][2], sw[NF][2];
#pragma unroll
                    for (int i = 0; i < MF; ++i)
#pragma unroll
                        for (int h = 0; h < 2; ++h) sa[i][h] = gemm_row_scale(p, row_base + i * 16 + h * 8, gi);
#pragma unroll
                    for (int j = 0; j < NF; ++j)
#pragma unroll
                        for (int c = 0; c < 2; ++c) sw[j][c] = gemm_col_scale(p, col_base + j * 8 + c, gi);
#pragma unroll
                    for (int i = 0; i < MF; ++i)
#pragma unroll
                        for (int j = 0; j < NF; ++j)
#pragma unroll
                            for (int e = 0; e < 4; ++e) {
                                const float s = __fmul_rn(sa[i][e >> 1], sw[j][e & 1]);
                                facc[i][j][e] = fmaf(__int2float_rn(acc[i][j][e]), s, facc[i][j][e]);
                                acc[i][j][e] = 0;
                            }
                }
            }
        }
    }
    cp_async_wait<0>();

    /* epilogue: fragment (i, j), element e: row row_base + i*16 + (e/2)*8, column col_base + j*8 + e%2 */
#pragma unroll
    for (int i = 0; i < MF; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int32_t row = row_base + i * 16 + h * 8;
            if (row >= p.m) continue;
            if constexpr (GROUPED) {
#pragma unroll
                for (int j = 0; j < NF; ++j)
                    gemm_epilogue_groups(p, row, col_base + j * 8, facc[i][j][2 * h], facc[i][j][2 * h + 1]);
            } else {
                const float sa = p.y_dtype == ISTHMUS_CUDA_S32 ? 0.0f : gemm_row_scale(p, row, 0);
#pragma unroll
                for (int j = 0; j < NF; ++j)
                    gemm_epilogue_one_group(p, row, col_base + j * 8, sa, acc[i][j][2 * h], acc[i][j][2 * h + 1]);
            }
        }
#else
    (void)p;
#endif
}

/* ------------------------------------------------------------------------------------------ host */

struct mma_variant {
    const char *name;
    void (*kernel)(gemm_dev_args);
    int bm, bn, stages;
    bool grouped;
};

constexpr int stage_bytes(int bm, int bn) { return (bm + bn) * kBK; }

const mma_variant kVariants[] = {
    {"gemm_s8__mma_sync_128x256x64_s3", mma_gemm_kernel<128, 256, 3, false, 1>, 128, 256, 3, false},
    {"gemm_s8__mma_sync_128x128x64_s4", mma_gemm_kernel<128, 128, 4, false, 2>, 128, 128, 4, false},
    {"gemm_s8__mma_sync_64x128x64_s4", mma_gemm_kernel<64, 128, 4, false, 2>, 64, 128, 4, false},
    {"gemm_s8__mma_sync_128x128x64_s4_grouped", mma_gemm_kernel<128, 128, 4, true, 1>, 128, 128, 4, true},
    {"gemm_s8__mma_sync_64x128x64_s4_grouped", mma_gemm_kernel<64, 128, 4, true, 2>, 64, 128, 4, true},
};
constexpr int kNumVariants = sizeof(kVariants) / sizeof(kVariants[0]);

int64_t smem_bytes(const mma_variant &v) { return (int64_t)v.stages * stage_bytes(v.bm, v.bn); }

int64_t tiles(const gemm_problem *p, int bm, int bn) { return ((p->m + bm - 1) / bm) * ((p->n + bn - 1) / bn); }

const mma_variant *pick(const gemm_problem *p) {
    const bool grouped = p->groups > 1 && p->y_dtype != ISTHMUS_CUDA_S32;
    const mma_variant *v;
    if (grouped) {
        v = p->m <= 64 ? &kVariants[4] : &kVariants[3];
    } else if (p->m <= 64) {
        v = &kVariants[2];
    } else if (tiles(p, 128, 256) >= 2 * (int64_t)(p->num_sms > 0 ? p->num_sms : 1) &&
               smem_bytes(kVariants[0]) <= p->smem_optin) {
        v = &kVariants[0];
    } else {
        v = &kVariants[1];
    }
    return v;
}

int mma_supports(const gemm_problem *p) {
    if (p->sm < 80) return 0;
    if (((uintptr_t)p->a & 15) != 0 || ((uintptr_t)p->w & 15) != 0) return 0;
    if (p->lda % 16 != 0 || p->ldw % 16 != 0) return 0;
    if (p->m < 1 || p->n < 1 || p->k < 1) return 0;
    if (p->m > INT32_MAX - 256 || p->n > INT32_MAX - 256 || p->k > INT32_MAX - 256) return 0;
    if (p->groups > 1 && p->y_dtype != ISTHMUS_CUDA_S32 && (p->group % 32 != 0 || p->group > INT32_MAX)) return 0;
    const mma_variant *v = pick(p);
    if (smem_bytes(*v) > p->smem_optin) return 0;
    if (tiles(p, v->bm, v->bn) > INT32_MAX) return 0;
    return 1;
}

int64_t mma_workspace(const gemm_problem *p) {
    (void)p;
    return 0;
}

const char *mma_select(const gemm_problem *p) { return pick(p)->name; }

cudaError_t mma_launch(const gemm_problem *p) {
    const mma_variant *v = pick(p);
    const int64_t smem = smem_bytes(*v);
    cudaError_t e = cudaFuncSetAttribute(v->kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    const gemm_dev_args d = gemm_make_dev_args(p);
    const unsigned grid = (unsigned)tiles(p, v->bm, v->bn);
    v->kernel<<<dim3(grid), dim3(kThreads), (size_t)smem, p->stream>>>(d);
    return cudaGetLastError();
}

const isthmus_cuda_kernel_info kInfo[] = {
    {"gemm_s8__mma_sync_128x256x64_s3", "gemm_s8", 80, 0},
    {"gemm_s8__mma_sync_128x128x64_s4", "gemm_s8", 80, 0},
    {"gemm_s8__mma_sync_64x128x64_s4", "gemm_s8", 80, 0},
    {"gemm_s8__mma_sync_128x128x64_s4_grouped", "gemm_s8", 80, 0},
    {"gemm_s8__mma_sync_64x128x64_s4_grouped", "gemm_s8", 80, 0},
};
static_assert(sizeof(kInfo) / sizeof(kInfo[0]) == kNumVariants, "registry lists every variant");

} // namespace

extern const gemm_family isthmus_cuda__gemm_mma = {ISTHMUS_CUDA_GEMM_MMA_SYNC, mma_supports, mma_workspace, mma_select,
                                                   mma_launch};
extern const gemm_variant_list isthmus_cuda__gemm_mma_variants = {kInfo, kNumVariants};
