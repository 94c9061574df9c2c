/*
 * isthmus_cuda.h: the C ABI of libisthmus_cuda (NVIDIA GPU kernels). Nothing else in the library is public.
 *
 * Same rules as isthmus.h (DESIGN.md):
 *  - every entry point returns an isthmus_cuda_status (ISTHMUS_CUDA_OK = 0); on failure the reason is a
 *    thread-local string, isthmus_cuda_last_error(), valid until the next call on the same thread;
 *  - the caller owns all memory: device buffers come from isthmus_cuda_malloc (or from the caller's own
 *    CUDA code: JCuda, PyTorch), kernels write into buffers the caller passes, and a ..._size() query tells
 *    how many bytes a workspace needs;
 *  - dimensions and strides are int64_t, strides in elements; calls with many arguments take a pointer to
 *    an args struct;
 *  - every entry is reentrant and may be called from many threads at once.
 *
 * Devices, contexts, streams. Every call that touches a device names it (int32_t device, 0-based, as in
 * cudaSetDevice) and runs in that device's primary context (the CUDA runtime's; cuDevicePrimaryCtxRetain in
 * the driver API). Streams are plain cudaStream_t / CUstream handles passed as void*: a stream created by
 * isthmus_cuda_stream_create, by the caller's CUDA runtime code, or by JCuda's driver API in the primary
 * context (JCuda: cuDevicePrimaryCtxRetain, then cuCtxSetCurrent) may be passed wherever a stream is asked
 * for. NULL is the legacy default stream.
 * Such a call makes its device current on the calling thread (cudaSetDevice, which also makes the device's
 * primary context current) and does not restore what was current before. A device fault that CUDA reports as
 * sticky (an illegal address, a trap) leaves the context unusable: every later call on that device then fails
 * with ISTHMUS_CUDA_ERR_DEVICE, as in any CUDA program.
 *
 * Asynchrony: NO call synchronizes with the device unless its comment says "synchronizes". A kernel call
 * checks its arguments on the host, enqueues work on the stream and returns; the status reports argument
 * errors and launch failures, while errors that happen later on the device (an illegal address from a bad
 * pointer) surface at the next synchronizing call on that stream (isthmus_cuda_stream_synchronize,
 * isthmus_cuda_event_synchronize) as ISTHMUS_CUDA_ERR_DEVICE with CUDA's message. Pointers cannot be
 * checked for size on the host: the caller guarantees that each buffer holds what its shape says (the
 * Java API does, from its tensors).
 *
 * INT8 convention (as isthmus.h): quantized values are symmetric, in [-127, 127]. Activations may hold -128;
 * weights should not (the CPU library refuses them; here a -128 weight is used as it is). Accumulation is
 * int32 and exact for K <= ISTHMUS_CUDA_GEMM_MAX_K with weights in [-127, 127] (K * 127 * 128 < 2^31); with
 * -128 weights only the extreme K = MAX_K with every product 16384 (-128 * -128) would wrap.
 *
 * NaN and infinities: the device kernels do not refuse non-finite inputs (that would need a
 * device-to-host synchronization); each entry's comment says what they become.
 */
#ifndef ISTHMUS_CUDA_H
#define ISTHMUS_CUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bumped on every incompatible change of this header; the Java loader refuses a mismatch. */
#define ISTHMUS_CUDA_ABI_VERSION 1

/* ---------------------------------------------------------------- status and errors ------ */

typedef int32_t isthmus_cuda_status;

/* Codes 0..5 mean what they mean in isthmus.h. */
enum {
    ISTHMUS_CUDA_OK = 0,
    ISTHMUS_CUDA_ERR_INVALID_ARGUMENT = 1, /* a null pointer, a bad size or stride, a bad enum value, a
                                              device index out of range                                  */
    ISTHMUS_CUDA_ERR_UNSUPPORTED = 2,      /* valid request this build or device cannot serve (e.g. a
                                              kernel for sm_90a on an sm_80 device)                      */
    ISTHMUS_CUDA_ERR_OUT_OF_MEMORY = 3,    /* device or pinned host memory exhausted                     */
    ISTHMUS_CUDA_ERR_INTERNAL = 4,         /* a bug: please report it with the message                   */
    ISTHMUS_CUDA_ERR_NO_DEVICE = 6,        /* no usable GPU: no NVIDIA driver, a driver older than this
                                              library's CUDA runtime needs, or no device; the message says
                                              which                                                      */
    ISTHMUS_CUDA_ERR_DEVICE = 7            /* the CUDA runtime reported an error (launch failure, illegal
                                              address found at a synchronization, ...): the message names
                                              the call and CUDA's error name and text                    */
};

/** Text of the last failure on this thread ("" when none). Never NULL. */
const char *isthmus_cuda_last_error(void);

/** ISTHMUS_CUDA_ABI_VERSION of the library that is loaded. */
int32_t isthmus_cuda_abi_version(void);

/** Library version, "major.minor.patch" (the same as libisthmus's). */
const char *isthmus_cuda_version(void);

/** CUDA runtime version the library was built with (e.g. 13000) and the driver's (0 when no driver). */
isthmus_cuda_status isthmus_cuda_versions(int32_t *runtime_version, int32_t *driver_version);

/* ---------------------------------------------------------------- devices ---------------- */

/**
 * Number of CUDA devices. Without a driver or with no device this is not an error: *count = 0 and
 * ISTHMUS_CUDA_OK, and isthmus_cuda_last_error() says why there is none ("no NVIDIA driver found
 * (libcuda.so.1)", "CUDA driver 12040 is older than this library's runtime 13000", "no CUDA device").
 */
isthmus_cuda_status isthmus_cuda_device_count(int32_t *count);

typedef struct isthmus_cuda_device_props {
    char name[256];                /* e.g. "NVIDIA H200", NUL-terminated                           */
    int32_t major, minor;          /* compute capability, e.g. 9.0                                 */
    int32_t multiprocessors;
    int32_t clock_khz;             /* SM clock                                                     */
    int64_t total_memory;          /* bytes                                                        */
    int64_t l2_bytes;
    int64_t shared_per_block_optin; /* bytes of shared memory a block may opt in to                */
    int32_t memory_bus_bits;
    int32_t memory_clock_khz;
    int32_t pci_bus, pci_device;
    int32_t kernels_available;     /* 1 when this library holds code that runs on the device
                                      (sm_80 and newer), else 0                                     */
} isthmus_cuda_device_props;

/** Properties of one device. ISTHMUS_CUDA_ERR_INVALID_ARGUMENT for an index out of [0, count). */
isthmus_cuda_status isthmus_cuda_device_get_props(int32_t device, isthmus_cuda_device_props *out);

/** Free and total device memory in bytes (cudaMemGetInfo). */
isthmus_cuda_status isthmus_cuda_mem_info(int32_t device, int64_t *free_bytes, int64_t *total_bytes);

/* ---------------------------------------------------------------- memory ----------------- */

/** bytes >= 1 of device memory on `device`, 256-byte aligned; *ptr = NULL on failure. */
isthmus_cuda_status isthmus_cuda_malloc(int32_t device, int64_t bytes, void **ptr);
/** Frees what isthmus_cuda_malloc returned (NULL is a no-op). Synchronizes (cudaFree does). */
isthmus_cuda_status isthmus_cuda_free(int32_t device, void *ptr);

/** Page-locked host memory (for truly asynchronous copies); bytes >= 1. */
isthmus_cuda_status isthmus_cuda_host_alloc(int64_t bytes, void **ptr);
isthmus_cuda_status isthmus_cuda_host_free(void *ptr);

enum {
    ISTHMUS_CUDA_COPY_H2D = 1,
    ISTHMUS_CUDA_COPY_D2H = 2,
    ISTHMUS_CUDA_COPY_D2D = 3
};

/**
 * Copies bytes (>= 0; 0 is a no-op) on the stream. Asynchronous with respect to the host for pinned host
 * memory; with pageable host memory CUDA stages the copy, and a D2H copy returns only when the data is in
 * host memory (cudaMemcpyAsync's rules). Source and destination must not overlap.
 */
isthmus_cuda_status isthmus_cuda_memcpy_async(int32_t device, void *dst, const void *src, int64_t bytes,
                                              int32_t kind, void *stream);

/** Sets bytes of device memory to the byte value (0..255) on the stream. */
isthmus_cuda_status isthmus_cuda_memset_async(int32_t device, void *dst, int32_t value, int64_t bytes,
                                              void *stream);

/* ---------------------------------------------------------------- streams and events ----- */

/** A new non-blocking stream on `device` (cudaStreamNonBlocking: no implicit sync with stream 0). */
isthmus_cuda_status isthmus_cuda_stream_create(int32_t device, void **stream);
/** Destroys a stream this library created; work already enqueued still completes. */
isthmus_cuda_status isthmus_cuda_stream_destroy(int32_t device, void *stream);
/** Synchronizes: waits for all work on the stream; reports device errors (ISTHMUS_CUDA_ERR_DEVICE). */
isthmus_cuda_status isthmus_cuda_stream_synchronize(int32_t device, void *stream);
/** *done = 1 when all work on the stream has completed, else 0; does not block. */
isthmus_cuda_status isthmus_cuda_stream_query(int32_t device, void *stream, int32_t *done);
/** Work enqueued on `stream` after this call waits for `event` (cudaStreamWaitEvent). */
isthmus_cuda_status isthmus_cuda_stream_wait_event(int32_t device, void *stream, void *event);

/** An event with timing enabled. */
isthmus_cuda_status isthmus_cuda_event_create(int32_t device, void **event);
isthmus_cuda_status isthmus_cuda_event_destroy(int32_t device, void *event);
isthmus_cuda_status isthmus_cuda_event_record(int32_t device, void *event, void *stream);
/** Synchronizes: waits until the event has completed. */
isthmus_cuda_status isthmus_cuda_event_synchronize(int32_t device, void *event);
/** Milliseconds between two completed events (cudaEventElapsedTime). */
isthmus_cuda_status isthmus_cuda_event_elapsed_ms(int32_t device, void *start, void *end, float *ms);

/** Synchronizes: waits for all work on the device (cudaDeviceSynchronize). */
isthmus_cuda_status isthmus_cuda_device_synchronize(int32_t device);

/* ---------------------------------------------------------------- kernel registry -------- */

/** Element types of device tensors. */
enum {
    ISTHMUS_CUDA_F32 = 0,
    ISTHMUS_CUDA_BF16 = 1,
    ISTHMUS_CUDA_S8 = 2,
    ISTHMUS_CUDA_S32 = 3
};

/** One kernel variant. Strings are static. */
typedef struct isthmus_cuda_kernel_info {
    const char *name;      /* e.g. "gemm_s8__mma_sync_128x128x64_s4"                              */
    const char *op;        /* public operation it implements: "quantize_s8", "gemm_s8"            */
    int32_t min_sm;        /* compute capability * 10 it needs, e.g. 80, 90 (sm_90a)              */
    int32_t max_m;         /* largest M it is meant for (skinny kernels), or 0 for any             */
} isthmus_cuda_kernel_info;

int64_t isthmus_cuda_kernel_count(void);
isthmus_cuda_status isthmus_cuda_kernel_get_info(int64_t index, isthmus_cuda_kernel_info *out);

/* ---------------------------------------------------------------- quantization ----------- */

/* Scale granularities: the values of isthmus.h's ISTHMUS_SCALE_* */
enum {
    ISTHMUS_CUDA_SCALE_PER_TENSOR = 0, /* scales: [1]                                           */
    ISTHMUS_CUDA_SCALE_PER_ROW = 1,    /* scales: [rows]                                        */
    ISTHMUS_CUDA_SCALE_PER_GROUP = 2   /* scales: [rows, ceil(cols / group)]                    */
};

/**
 * Device activation quantization, row by row: q = round_half_even(x / s), s = max|x| / 127 over the row
 * (PER_ROW) or over each group of `group` columns (PER_GROUP: 32, 64, 128 or 256), exactly as
 * isthmus_quantize_s8 computes it on the CPU: for f32 input q and scales are bit-identical to the CPU's
 * (bf16 input is widened to f32 first, exactly). PER_TENSOR is not offered (it needs a grid-wide max).
 * q in [-127, 127]. A row (group) holding a NaN or +-inf gets scale NaN and q = 0 (there is no host-side
 * check on the device): a following GEMM makes that row NaN.
 */
typedef struct isthmus_cuda_quantize_args {
    int32_t device;
    int64_t rows, cols;
    const void *x; int32_t x_dtype; int64_t ldx; /* [rows, cols] F32 or BF16, device memory    */
    int32_t granularity;                         /* PER_ROW or PER_GROUP                       */
    int64_t group;
    int8_t *q; int64_t ldq;                      /* [rows, cols] out, device memory            */
    float *scales;                               /* [rows] or [rows, ceil(cols / group)] out   */
    void *stream;
} isthmus_cuda_quantize_args;
isthmus_cuda_status isthmus_cuda_quantize_s8(const isthmus_cuda_quantize_args *args);

/* ---------------------------------------------------------------- INT8 GEMM -------------- */

/** Largest K: keeps every int32 accumulator exact (K * 127 * 128 < 2^31), as on the CPU. */
#define ISTHMUS_CUDA_GEMM_MAX_K 131072

/** Which kernel family to run (ISTHMUS_CUDA_GEMM_AUTO picks by shape and device; the others force one and
 *  fail with ISTHMUS_CUDA_ERR_UNSUPPORTED where it cannot run: a device too old, a K or stride it does not
 *  take). The registry (isthmus_cuda_kernel_get_info) lists the variants behind each family. */
enum {
    ISTHMUS_CUDA_GEMM_AUTO = 0,
    ISTHMUS_CUDA_GEMM_MMA_SYNC = 1, /* sm_80+: mma.sync m16n8k32, cp.async multi-stage pipeline       */
    ISTHMUS_CUDA_GEMM_WGMMA = 2,    /* sm_90a: wgmma m64nNk32 with TMA and an mbarrier pipeline        */
    ISTHMUS_CUDA_GEMM_SKINNY = 3    /* M <= 16 (decode): weight streaming with split-K                 */
};

/**
 * Y[M, N] = epilogue(Aq[M, K] . Wq[N, K]^T) on the device, weights row-major [N, K] (one row per output
 * channel, as the CPU's W before packing: no packing step on the GPU).
 *  - y_dtype S32: Y = the int32 dot products, exact (a_scales, w_scales, bias must be NULL).
 *  - y_dtype F32 / BF16: Y = sum over K-groups g of acc_g * sa_g * sw_g (+ bias[N]), computed in f32 and
 *    rounded once to the output type. With one group spanning K (w_granularity PER_TENSOR or PER_ROW,
 *    a_granularity PER_TENSOR or PER_ROW) the result is (float)acc * (sa * sw) (+ bias): bit-identical to
 *    isthmus_gemm_s8 on the CPU for F32. With PER_GROUP scales (a and w share `group`), the groups are
 *    summed in f32 in an order that depends on the kernel: within (G + 3) * 2^-24 * (sum_g |acc_g * sa_g * sw_g|
 *    + |bias[n]|) of the exact value, G = ceil(K / group) (the tests' bound: each term is rounded at most twice
 *    before the sum, a sum of G terms in any order adds at most G - 1 roundings, the bias one more).
 * Alignment: a, w and lda, ldw must allow 16-byte loads (addresses multiples of 16, lda and ldw multiples
 * of 16) for the MMA and WGMMA families; other layouts run the SKINNY family (any M) or, when forced, fail
 * with UNSUPPORTED. K need not be a multiple of anything (tails are zero-filled in shared memory).
 * NaN / inf: not checked; a NaN or infinite scale or bias propagates to the outputs it multiplies or adds to.
 * Workspace: split-K kernels need isthmus_cuda_gemm_s8_workspace_size() bytes of device memory for these
 * shapes; pass it, or NULL with size 0 where that query says 0. The workspace of a call in flight must not be
 * reused by another stream until the call completes.
 */
typedef struct isthmus_cuda_gemm_s8_args {
    int32_t device;
    int64_t m, n, k;
    const int8_t *a; int64_t lda;  /* [M, K] device memory                                        */
    int32_t a_granularity;         /* ISTHMUS_CUDA_SCALE_*                                        */
    const float *a_scales;         /* [1], [M] or [M, ceil(K / group)], or NULL with S32          */
    const int8_t *w; int64_t ldw;  /* [N, K] device memory                                        */
    int32_t w_granularity;
    int64_t group;                 /* 0, or 32/64/128/256 when either side is PER_GROUP            */
    const float *w_scales;         /* [1], [N] or [N, ceil(K / group)], or NULL with S32          */
    const float *bias;             /* [N] or NULL                                                 */
    void *y; int32_t y_dtype; int64_t ldy; /* [M, N] out: F32, BF16 or S32                         */
    int32_t kernel;                /* ISTHMUS_CUDA_GEMM_*                                         */
    void *workspace; int64_t workspace_size;
    void *stream;
} isthmus_cuda_gemm_s8_args;

/** Workspace bytes a call with these arguments needs; 0 when none. What a, w point to is not read, but their
 *  addresses are: for M > 16 their alignment can change the family (unaligned -> SKINNY, with split-K), so query
 *  with the pointers the call will use. The workspace must be 16-byte aligned (isthmus_cuda_malloc's are). */
isthmus_cuda_status isthmus_cuda_gemm_s8_workspace_size(const isthmus_cuda_gemm_s8_args *args, int64_t *bytes);

/** Name of the kernel variant a call with these arguments would run (static string), for logs and tests. */
isthmus_cuda_status isthmus_cuda_gemm_s8_select(const isthmus_cuda_gemm_s8_args *args, const char **name);

isthmus_cuda_status isthmus_cuda_gemm_s8(const isthmus_cuda_gemm_s8_args *args);

#ifdef __cplusplus
}
#endif

#endif /* ISTHMUS_CUDA_H */
