/* Inline-PTX wrappers shared by the MMA (sm_80+) and WGMMA (sm_90a) GEMM families. Internal.
 *
 * Every wrapper names the PTX ISA section (PTX ISA 9.x, "Parallel Synchronization and Communication
 * Instructions" / "Warp Level Matrix Multiply-Accumulate Instructions" / "Asynchronous Warpgroup Level
 * Matrix Multiply-Accumulate Instructions") whose operand rules it relies on. Shared-memory operands are
 * 32-bit shared-window addresses (cvta.to.shared), as the instructions' [addr] operands in .shared expect.
 *
 * The sm_90a-only wrappers are compiled only in device passes that define __CUDA_ARCH_FEAT_SM90_ALL (nvcc
 * defines it for -gencode arch=compute_90a; checked with nvcc 13.0), so that the sm_80 pass never sees
 * wgmma / setmaxnreg / cp.async.bulk.tensor text. */
#ifndef ISTHMUS_CUDA_PTX_CUH
#define ISTHMUS_CUDA_PTX_CUH

#include <stdint.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define ISTHMUS_SM90A 1
#else
#define ISTHMUS_SM90A 0
#endif

namespace isthmus_ptx {

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800

/* cp.async.cg.shared.global [dst], [src], 16, src_size (9.7.9.25.3.1 "cp.async"): copies src_size bytes
 * (0..16) and zero-fills the rest of the 16 bytes; with src_size 0 nothing is read. .cg (L2 only) needs
 * cp-size 16; dst and src must be 16-byte aligned. */
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void *src, int src_size) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_size)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* ldmatrix.sync.aligned.m8n8.x4.shared.b16 (9.7.14.5.15 "ldmatrix"): lanes 8j..8j+7 give the 8 row
 * addresses (16 bytes each) of matrix j; register j of lane l receives row l/4, bytes 4*(l%4)..+3 of
 * matrix j. */
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 (9.7.14.5.14 "Matrix Fragments for mma.m16n8k32"), with
 * groupID g = lane/4 and t = lane%4:
 *   A (4 x b32, 4 s8 each): a[0] = A[g][4t..4t+3], a[1] = A[g+8][4t..], a[2] = A[g][16+4t..], a[3] = A[g+8][16+4t..]
 *   B (2 x b32):            b[0] = B[k=4t..4t+3][n=g],  b[1] = B[k=16+4t..][n=g]
 *   C/D (4 x s32):          c[0], c[1] = C[g][2t], C[g][2t+1];  c[2], c[3] = C[g+8][2t], C[g+8][2t+1]
 * No .satfinite: the sum is exact for K <= ISTHMUS_CUDA_GEMM_MAX_K (wrapping never happens). */
__device__ __forceinline__ void mma_s8_16832(int32_t (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#endif /* sm_80 */

#if ISTHMUS_SM90A

/* mbarrier (9.7.13.15 "Parallel Synchronization and Communication Instructions: mbarrier"). */
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
/* makes the initialized barriers visible to the async proxy (TMA) and the other threads */
__device__ __forceinline__ void fence_barrier_init() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar) : "memory");
}
/* arrive (count 1) and add tx bytes to the current phase's expected transaction count */
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(bar),
                 "r"(bytes)
                 : "memory");
}
/* Waits until the phase with parity `parity` has completed. A freshly initialized barrier is in phase 0,
 * and a wait for parity 1 (the phase "before" it) returns at once: the producer's first pass over the
 * ring waits on the empty barriers with parity 1 and so does not block. */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    asm volatile("{\n"
                 ".reg .pred P1;\n"
                 "WAIT_%=:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
                 "@!P1 bra WAIT_%=;\n"
                 "}\n" ::"r"(bar),
                 "r"(parity)
                 : "memory");
}

/* cp.async.bulk.tensor.2d (9.7.9.25.5.2 "cp.async.bulk.tensor"): box at coordinates (c0 innermost = K
 * element, c1 = row) of the tensor map into shared memory at dst (1024-byte aligned for the 128B swizzle),
 * completing `box bytes` transactions on the mbarrier. Out-of-bound elements are written as zeros and still
 * count toward the transaction bytes. */
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const void *tmap, int32_t c0, int32_t c1, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
                 "l"(tmap), "r"(c0), "r"(c1), "r"(bar)
                 : "memory");
}
__device__ __forceinline__ void prefetch_tmap(const void *tmap) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(tmap) : "memory");
}

/* warpgroup (9.7.15 "Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions") */
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
template <int R> __device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R));
}
template <int R> __device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R));
}

#endif /* sm_90a */

} // namespace isthmus_ptx

#endif
