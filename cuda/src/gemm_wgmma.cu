/* The WGMMA family (sm_90a only): Y[M,N] = A[M,K] . W[N,K]^T with wgmma, TMA and an mbarrier ring.
 *
 * Design
 *  - CTA = 3 warpgroups (384 threads), warp-specialized. Warpgroup 0 is the producer: after
 *    setmaxnreg.dec 40 its thread 0 alone issues the TMA loads (cp.async.bulk.tensor.2d, 128B swizzle,
 *    tensor maps built on the host and passed as __grid_constant__ CUtensorMap parameters). Warpgroups 1
 *    and 2 are consumers (setmaxnreg.inc 232; 128*40 + 256*232 = 64512 <= 65536 registers): each owns 64
 *    rows of the 128-row block tile and issues wgmma.mma_async.sync.aligned.m64n{BN}k32.s32.s8.s8 with both
 *    operands read from shared memory through matrix descriptors.
 *  - Block tile 128 x BN x 128 (K-tile of 128 bytes = one 128B-swizzle row; four k32 wgmmas per K-tile):
 *      variant                      acc regs/thread  stages  smem (bytes)
 *      128x256x128_s4               128 s32          4       4 * (16384 + 32768) = 196608 (+1024 align, +64 barriers)
 *      128x128x128_s6                64 s32          6       6 * (16384 + 16384) = 196608 (+1024 align, +96 barriers)
 *    within the 227 KB (232448 bytes) opt-in of H100/H200; launch() raises the dynamic limit each time.
 *  - Ring: full[s] (count 1: the producer's arrive.expect_tx, completed by the TMA's complete_tx of
 *    16384 + BN*128 bytes) and empty[s] (count 8: lane 0 of each consumer warp once the wgmmas reading
 *    that stage have completed: after wait_group 1 following the next K-tile's commit, or wait_group 0 at the
 *    end of a tile; one batch stays in flight, as in CUTLASS's mainloop). Both sides walk (stage, phase) the same way over all (tile, k-tile) pairs; consumers
 *    wait full[s] for parity `phase`, the producer waits empty[s] for parity `phase ^ 1` (the first pass
 *    over a fresh barrier returns at once: PTX ISA 9.7.13.15.16 "mbarrier.test_wait/try_wait", a wait on
 *    the parity of the phase before the current one succeeds).
 *  - Persistent grid: min(tiles, SMs) CTAs stride over the tiles (grouped raster, bands of 8 M-tiles); the
 *    producer runs ahead into the next tile while the consumers store the previous one.
 *  - Shared layout (what TMA SWIZZLE_128B writes, and what a K-major SWIZZLE_128B wgmma descriptor reads):
 *    row r of a box at byte r*128, its 16-byte chunk c at chunk c ^ (r % 8); stage bases 1024-aligned.
 *    Descriptor (PTX ISA 9.7.15.5.1 "Matrix Descriptor Format"): start address >> 4 in bits 0-13, leading
 *    byte offset 16 (>> 4 = 1; not used for K-major swizzled layouts) in 16-29, stride byte offset 1024
 *    (8 rows x 128 B, >> 4 = 64) in 32-45, base offset 0 (bases are 1024-aligned; the +32/64/96-byte k32
 *    advances stay inside the first 128-byte row, so (addr >> 7) & 7 is 0), layout type 1 = 128B swizzle
 *    in 62-63. The k32 step kk advances the start address by kk*32 bytes (+2 in the >>4 field), as CUTLASS
 *    and DeepGEMM do for K-major SW128 operands. Consumer warpgroup c reads A rows 64c..64c+63: + c*8192.
 *  - Accumulators (PTX ISA 9.7.15.5 "Register Fragments and Shared Memory Matrix Layouts", accumulator D of .m64nNk32; the same
 *    as CUTLASS's GMMA CLayout_64xN): warp w of the
 *    warpgroup holds rows 16w..16w+15; d[4j + 2h + e] is row 16w + g + 8h, column 8j + 2t + e (g = lane/4,
 *    t = lane%4), the m16n8 C layout repeated over N/8.
 *  - Tails: TMA writes zeros for the parts of a box outside [K, rows] (OOB fill NONE = zeros), and counts
 *    them in the transaction bytes, so K, M, N need no multiple; stores are predicated on row < M, col < N.
 *  - Scales: groups == 1 only (one group spanning K, or S32). PER_GROUP scales with several groups return
 *    0 from supports(): gemm.cu then runs the MMA family, which folds at every group boundary.
 *  - Epilogue: the shared one-group rule (gemm_epilogue.cuh), 8-byte F32/S32 / 4-byte BF16 stores straight
 *    from the accumulators.
 *
 * supports(): p->sm == 90, the kernel's binary is sm_90 (cudaFuncGetAttributes binaryVersion: a build
 * without -gencode arch=compute_90a,code=sm_90a has a trapping body), a, w 16-byte aligned and lda, ldw
 * multiples of 16 (TMA: global address and strides multiples of 16), M, N, K < 2^31 (int32 TMA
 * coordinates), groups == 1, the smem opt-in, and cuTensorMapEncodeTiled (a driver function, reached
 * through cudaGetDriverEntryPointByVersion so that the library needs no -lcuda) accepting both maps.
 *
 * ptxas (nvcc 13.0 -O3 -std=c++17, sm_90a): 168 registers for both variants (the cap of a 384-thread,
 * 1-block launch; setmaxnreg then gives consumers 232 and the producer 40), 0 spill bytes, 0 stack frame,
 * no "wgmma serialized" performance warning. The sm_80 pass compiles a 4-register trapping body.
 * Expected SASS (cuobjdump --dump-sass, sm_90a): IGMMA.64x256x32.S8.S8 (or .64x128x32) in the consumer
 * loop, UTMALDG.2D for the TMA loads, SYNCS.ARRIVE / SYNCS.PHASECHK for the mbarriers, WARPGROUP.ARRIVE /
 * WARPGROUP.DEPBAR for wgmma.fence / wait_group, USETMAXREG for setmaxnreg.
 *
 * UNVERIFIED (written without a GPU; nothing here has run): all of it at run time. Check first on an
 * H100/H200: S32 output against the CPU for small odd shapes (M, N, K in {1, 17, 127, 129, 255, 300}: tails
 * through TMA zero fill), then the descriptor (a wrong swizzle/SBO shows as wrong values at every K, not
 * only in tails), the accumulator layout (a transposed or shuffled result), a deadlock (mbarrier parity:
 * a hang at the first tile or after STAGES k-tiles), then speed vs torch._int_mm.
 */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "gemm_epilogue.cuh"
#include "gemm_internal.h"
#include "ptx.cuh"

namespace {

constexpr int kBM = 128, kBK = 128, kThreads = 384;

template <int BN> struct wg_cfg {
    static constexpr int STAGES = BN == 256 ? 4 : 6;
    static constexpr int A_BYTES = kBM * kBK;
    static constexpr int B_BYTES = BN * kBK;
    static constexpr int STAGE_BYTES = A_BYTES + B_BYTES;
    static constexpr int SMEM = 1024 + STAGES * STAGE_BYTES + 2 * STAGES * 8;
};

#if ISTHMUS_SM90A
__device__ __forceinline__ void wgmma_m64n128k32(int32_t (&d)[64], uint64_t da, uint64_t db, int32_t accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p;\n}\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
          "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
          "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
          "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
          "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
          "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
          "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
          "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
        : "l"(da), "l"(db), "r"(accumulate));
}

__device__ __forceinline__ void wgmma_m64n256k32(int32_t (&d)[128], uint64_t da, uint64_t db, int32_t accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k32.s32.s8.s8 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
        "}, %128, %129, p;\n}\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
          "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
          "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
          "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
          "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
          "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
          "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
          "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63]),
          "+r"(d[64]), "+r"(d[65]), "+r"(d[66]), "+r"(d[67]), "+r"(d[68]), "+r"(d[69]), "+r"(d[70]), "+r"(d[71]),
          "+r"(d[72]), "+r"(d[73]), "+r"(d[74]), "+r"(d[75]), "+r"(d[76]), "+r"(d[77]), "+r"(d[78]), "+r"(d[79]),
          "+r"(d[80]), "+r"(d[81]), "+r"(d[82]), "+r"(d[83]), "+r"(d[84]), "+r"(d[85]), "+r"(d[86]), "+r"(d[87]),
          "+r"(d[88]), "+r"(d[89]), "+r"(d[90]), "+r"(d[91]), "+r"(d[92]), "+r"(d[93]), "+r"(d[94]), "+r"(d[95]),
          "+r"(d[96]), "+r"(d[97]), "+r"(d[98]), "+r"(d[99]), "+r"(d[100]), "+r"(d[101]), "+r"(d[102]), "+r"(d[103]),
          "+r"(d[104]), "+r"(d[105]), "+r"(d[106]), "+r"(d[107]), "+r"(d[108]), "+r"(d[109]), "+r"(d[110]), "+r"(d[111]),
          "+r"(d[112]), "+r"(d[113]), "+r"(d[114]), "+r"(d[115]), "+r"(d[116]), "+r"(d[117]), "+r"(d[118]), "+r"(d[119]),
          "+r"(d[120]), "+r"(d[121]), "+r"(d[122]), "+r"(d[123]), "+r"(d[124]), "+r"(d[125]), "+r"(d[126]), "+r"(d[127])
        : "l"(da), "l"(db), "r"(accumulate));
}

/* K-major, 128B-swizzle shared-memory matrix descriptor (see the design note) */
__device__ __forceinline__ uint64_t sw128_desc(uint32_t saddr) {
    return (uint64_t)((saddr & 0x3FFFFu) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

template <int BN> __device__ __forceinline__ void wgmma_bn(int32_t (&d)[BN / 2], uint64_t da, uint64_t db, int32_t acc) {
    if constexpr (BN == 256) wgmma_m64n256k32(d, da, db, acc);
    else wgmma_m64n128k32(d, da, db, acc);
}

/* keeps the compiler from moving accumulator reads/writes across the asynchronous wgmma (CUTLASS's
 * warpgroup_fence_operand) */
template <int R> __device__ __forceinline__ void fence_acc(int32_t (&d)[R]) {
#pragma unroll
    for (int i = 0; i < R; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

#endif /* ISTHMUS_SM90A */

template <int BN>
__global__ void __launch_bounds__(kThreads, 1)
    wgmma_gemm_kernel(const __grid_constant__ CUtensorMap tmA, const __grid_constant__ CUtensorMap tmB,
                      const gemm_dev_args p) {
#if ISTHMUS_SM90A
    using namespace isthmus_ptx;
    using C = wg_cfg<BN>;
    constexpr int STAGES = C::STAGES;
    constexpr int kBand = 8;          /* M-tiles per raster band */
    constexpr int kConsumerWarps = 8; /* arrivals that free a stage */
    extern __shared__ __align__(1024) uint8_t smem_raw[];
    const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
    const uint32_t sA0 = base;
    const uint32_t sB0 = base + STAGES * C::A_BYTES;
    const uint32_t full0 = sB0 + STAGES * C::B_BYTES;
    const uint32_t empty0 = full0 + STAGES * 8;

    const int wg = threadIdx.x / 128;
    if (threadIdx.x == 0) {
        prefetch_tmap(&tmA);
        prefetch_tmap(&tmB);
#pragma unroll
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(full0 + 8 * s, 1);
            mbar_init(empty0 + 8 * s, kConsumerWarps);
        }
        fence_barrier_init();
    }
    __syncthreads();

    const int32_t tiles_m = (p.m + kBM - 1) / kBM, tiles_n = (p.n + BN - 1) / BN;
    const int64_t num_tiles = (int64_t)tiles_m * tiles_n;
    const int32_t ktiles = (p.k + kBK - 1) / kBK;

    if (wg == 0) {
        setmaxnreg_dec<40>();
        if (threadIdx.x == 0) {
            int stage = 0;
            uint32_t phase = 0;
            for (int64_t tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
                int32_t tm, tn;
                gemm_tile_coords(tile, tiles_m, tiles_n, kBand, tm, tn);
                for (int32_t kt = 0; kt < ktiles; ++kt) {
                    mbar_wait(empty0 + 8 * stage, phase ^ 1u);
                    const uint32_t full = full0 + 8 * stage;
                    mbar_arrive_expect_tx(full, (uint32_t)C::STAGE_BYTES);
                    tma_load_2d(sA0 + stage * C::A_BYTES, &tmA, kt * kBK, tm * kBM, full);
                    tma_load_2d(sB0 + stage * C::B_BYTES, &tmB, kt * kBK, tn * BN, full);
                    if (++stage == STAGES) {
                        stage = 0;
                        phase ^= 1u;
                    }
                }
            }
        }
    } else {
        setmaxnreg_inc<232>();
        const int cw = wg - 1;
        const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
        const int g = lane >> 2, t = lane & 3;
        int stage = 0;
        uint32_t phase = 0;
        int32_t acc[BN / 2];
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc[i] = 0;
        for (int64_t tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
            int32_t tm, tn;
            gemm_tile_coords(tile, tiles_m, tiles_n, kBand, tm, tn);
            /* one wgmma batch in flight (CUTLASS's mainloop with K_PIPE_MMAS = 1): after committing K-tile kt, wait
             * until at most one batch is pending, so kt - 1's has completed and its stage can go back to the
             * producer; the tensor cores never drain between K-tiles. A tile's last stage is released after
             * wait<0>, before the epilogue reads acc. The consumer holds at most two stages (STAGES >= 4). */
            int held = -1;
            for (int32_t kt = 0; kt < ktiles; ++kt) {
                mbar_wait(full0 + 8 * stage, phase);
                const uint64_t da = sw128_desc(sA0 + stage * C::A_BYTES + cw * (64 * kBK));
                const uint64_t db = sw128_desc(sB0 + stage * C::B_BYTES);
                fence_acc(acc);
                wgmma_fence();
#pragma unroll
                for (int kk = 0; kk < kBK / 32; ++kk)
                    wgmma_bn<BN>(acc, da + (uint64_t)(2 * kk), db + (uint64_t)(2 * kk), (kt > 0 || kk > 0) ? 1 : 0);
                wgmma_commit();
                wgmma_wait<1>();
                fence_acc(acc);
                if (held >= 0 && lane == 0) mbar_arrive(empty0 + 8 * held);
                held = stage;
                if (++stage == STAGES) {
                    stage = 0;
                    phase ^= 1u;
                }
            }
            wgmma_wait<0>();
            fence_acc(acc);
            if (lane == 0) mbar_arrive(empty0 + 8 * held); /* ktiles >= 1, so held >= 0 */
            /* epilogue: d[4j + 2h + e] -> row 16*warp + g + 8h, column 8j + 2t + e */
            const int32_t row0 = tm * kBM + cw * 64 + warp * 16 + g;
            const int32_t col0 = tn * BN + 2 * t;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int32_t row = row0 + 8 * h;
                if (row < p.m) {
                    const float sa = p.y_dtype == ISTHMUS_CUDA_S32 ? 0.0f : gemm_row_scale(p, row, 0);
#pragma unroll
                    for (int j = 0; j < BN / 8; ++j)
                        gemm_epilogue_one_group(p, row, col0 + 8 * j, sa, acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
                }
            }
        }
    }
#else
    (void)tmA;
    (void)tmB;
    (void)p;
#if defined(__CUDA_ARCH__)
    __trap(); /* built without sm_90a: supports() never lets this run (binaryVersion check) */
#endif
#endif
}

/* ------------------------------------------------------------------------------------------ host */

struct wg_variant {
    const char *name;
    void (*kernel)(CUtensorMap, CUtensorMap, gemm_dev_args);
    int bn;
    int smem;
};

const wg_variant kVariants[] = {
    {"gemm_s8__wgmma_128x256x128_s4", wgmma_gemm_kernel<256>, 256, wg_cfg<256>::SMEM},
    {"gemm_s8__wgmma_128x128x128_s6", wgmma_gemm_kernel<128>, 128, wg_cfg<128>::SMEM},
};
constexpr int kNumVariants = sizeof(kVariants) / sizeof(kVariants[0]);

int64_t tiles(const gemm_problem *p, int bn) { return ((p->m + kBM - 1) / kBM) * ((p->n + bn - 1) / bn); }

const wg_variant *pick(const gemm_problem *p) {
    const int64_t sms = p->num_sms > 0 ? p->num_sms : 1;
    if (p->n <= 128 || tiles(p, 256) < sms) return &kVariants[1];
    return &kVariants[0];
}

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
    static const PFN_cuTensorMapEncodeTiled_v12000 fn = []() -> PFN_cuTensorMapEncodeTiled_v12000 {
        void *f = nullptr;
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
            q != cudaDriverEntryPointSuccess)
            return nullptr;
        return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
    }();
    return fn;
}

/* 2-D map of a row-major int8 matrix [rows, k] with row stride ld bytes, box 128 (K) x box_rows */
bool make_map(CUtensorMap *m, const int8_t *ptr, int64_t rows, int64_t k, int64_t ld, uint32_t box_rows) {
    const PFN_cuTensorMapEncodeTiled_v12000 fn = encode_fn();
    if (fn == nullptr) return false;
    const cuuint64_t dims[2] = {(cuuint64_t)k, (cuuint64_t)rows};
    const cuuint64_t strides[1] = {(cuuint64_t)ld};
    const cuuint32_t box[2] = {(cuuint32_t)kBK, box_rows};
    const cuuint32_t estr[2] = {1, 1};
    return fn(m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<int8_t *>(ptr), dims, strides, box, estr,
              CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
              CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

int wgmma_supports(const gemm_problem *p) {
    if (p->sm != 90) return 0;
    if (((uintptr_t)p->a & 15) != 0 || ((uintptr_t)p->w & 15) != 0) return 0;
    if (p->lda % 16 != 0 || p->ldw % 16 != 0) return 0;
    if (p->m < 1 || p->n < 1 || p->k < 1) return 0;
    if (p->m > INT32_MAX - 512 || p->n > INT32_MAX - 512 || p->k > INT32_MAX - 512) return 0;
    if (p->groups != 1 && p->y_dtype != ISTHMUS_CUDA_S32) return 0;
    const wg_variant *v = pick(p);
    if (v->smem > p->smem_optin) return 0;
    cudaFuncAttributes attr;
    if (cudaFuncGetAttributes(&attr, v->kernel) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    /* binaryVersion is that of the code loaded: a build without sm_90a SASS but with lower PTX would JIT the
     * trapping body on an H100/H200 and still report 90; the real kernel needs 168 registers, the trap 4 */
    if (attr.binaryVersion != 90 || attr.numRegs < 128) return 0;
    CUtensorMap ma, mb;
    if (!make_map(&ma, p->a, p->m, p->k, p->lda, kBM) || !make_map(&mb, p->w, p->n, p->k, p->ldw, (uint32_t)v->bn))
        return 0;
    return 1;
}

int64_t wgmma_workspace(const gemm_problem *p) {
    (void)p;
    return 0;
}

const char *wgmma_select(const gemm_problem *p) { return pick(p)->name; }

cudaError_t wgmma_launch(const gemm_problem *p) {
    const wg_variant *v = pick(p);
    CUtensorMap ma, mb;
    if (!make_map(&ma, p->a, p->m, p->k, p->lda, kBM) || !make_map(&mb, p->w, p->n, p->k, p->ldw, (uint32_t)v->bn))
        return cudaErrorInvalidValue;
    cudaError_t e = cudaFuncSetAttribute(v->kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, v->smem);
    if (e != cudaSuccess) return e;
    const gemm_dev_args d = gemm_make_dev_args(p);
    const int64_t nt = tiles(p, v->bn);
    const int64_t sms = p->num_sms > 0 ? p->num_sms : 1;
    const unsigned grid = (unsigned)(nt < sms ? nt : sms);
    v->kernel<<<dim3(grid), dim3(kThreads), (size_t)v->smem, p->stream>>>(ma, mb, d);
    return cudaGetLastError();
}

const isthmus_cuda_kernel_info kInfo[] = {
    {"gemm_s8__wgmma_128x256x128_s4", "gemm_s8", 90, 0},
    {"gemm_s8__wgmma_128x128x128_s6", "gemm_s8", 90, 0},
};
static_assert(sizeof(kInfo) / sizeof(kInfo[0]) == kNumVariants, "registry lists every variant");

} // namespace

extern const gemm_family isthmus_cuda__gemm_wgmma = {ISTHMUS_CUDA_GEMM_WGMMA, wgmma_supports, wgmma_workspace,
                                                     wgmma_select, wgmma_launch};
extern const gemm_variant_list isthmus_cuda__gemm_wgmma_variants = {kInfo, kNumVariants};
