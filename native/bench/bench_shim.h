/*
 * libisthmus_bench: baselines and machine ceilings for the benchmarks (bench/ calls them through FFM;
 * isthmus_bench, the native harness, links them). Not part of the isthmus ABI and never shipped.
 */
#ifndef ISTHMUS_BENCH_SHIM_H
#define ISTHMUS_BENCH_SHIM_H

#include <stddef.h>
#include <stdint.h>

/* Register-only AVX2 int8 loop (maddubs + madd + add, 12 independent chains) on `threads` threads for
 * about `seconds`: the machine's int8 MAC ceiling for the AVX2 idiom, in GOP/s (1 MAC = 2 ops). */
double ibench_avx2_int8_peak_gops(int threads, double seconds);

/* Same with AVX-512 VNNI vpdpbusd (zmm); returns 0 when the CPU lacks it. */
double ibench_vnni_int8_peak_gops(int threads, double seconds);

/* Read bandwidth: `threads` threads stream disjoint parts of a `bytes` buffer, best of `reps`, GB/s. */
double ibench_read_bandwidth_gbs(int threads, size_t bytes, int reps);

/* oneDNN int8 matmul u8 x s8 -> s32, C[M,N] = A[M,K] . B[K,N], weights in oneDNN's preferred (packed)
 * layout reordered once at creation. NULL when oneDNN is not built in (see ibench_dnnl_available). */
int ibench_dnnl_available(void);
void *ibench_dnnl_create(int64_t m, int64_t n, int64_t k);
int ibench_dnnl_run(void *handle);
void ibench_dnnl_destroy(void *handle);
const char *ibench_dnnl_info(void);

#endif
