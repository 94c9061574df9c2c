/*
 * isthmus.h: the C ABI of libisthmus (CPU kernels). Nothing else in the library is public.
 *
 * Rules (see DESIGN.md):
 *  - every entry point returns an isthmus_status (ISTHMUS_OK = 0); on failure the reason is a
 *    thread-local string, isthmus_last_error(), valid until the next call on the same thread;
 *  - the caller owns all memory: kernels write into buffers the caller passes, and a ..._size()
 *    query tells how many bytes a packed or scratch buffer needs;
 *  - dimensions and strides are int64_t, strides in elements; calls with many arguments take a
 *    pointer to an args struct;
 *  - every entry is reentrant and may be called from many threads at once.
 *
 * INT8 convention: quantized values are symmetric, in [-127, 127]; -128 is never produced by
 * isthmus_quantize_s8 and is refused in packed weights (the AVX2 kernels rely on it, DESIGN.md).
 * Activations may hold -128 (they are never negated).
 */
#ifndef ISTHMUS_H
#define ISTHMUS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bumped on every incompatible change of this header; the Java loader refuses a mismatch. */
#define ISTHMUS_ABI_VERSION 1

/* ---------------------------------------------------------------- status and errors ------ */

typedef int32_t isthmus_status;

enum {
    ISTHMUS_OK = 0,
    ISTHMUS_ERR_INVALID_ARGUMENT = 1, /* a null pointer, a bad size or stride, a bad enum value  */
    ISTHMUS_ERR_UNSUPPORTED = 2,      /* valid request this build or CPU cannot serve             */
    ISTHMUS_ERR_OUT_OF_MEMORY = 3,    /* an internal allocation failed                            */
    ISTHMUS_ERR_INTERNAL = 4          /* a bug: please report it with the message                 */
};

/** Text of the last failure on this thread ("" when none). Never NULL. */
const char *isthmus_last_error(void);

/** ISTHMUS_ABI_VERSION of the library that is loaded. */
int32_t isthmus_abi_version(void);

/** Library version, "major.minor.patch". */
const char *isthmus_version(void);

/* ---------------------------------------------------------------- threads ---------------- */

/** Threads used by multi-threaded kernels (1..1024); the default is the number of online CPUs. */
isthmus_status isthmus_set_num_threads(int32_t num_threads);
int32_t isthmus_get_num_threads(void);

/* ---------------------------------------------------------------- ISA dispatch ----------- */

enum {
    ISTHMUS_ISA_REF = 0,    /* portable scalar C: the reference every other variant is tested against */
    ISTHMUS_ISA_AVX2 = 1,   /* AVX2 + FMA                                                              */
    ISTHMUS_ISA_AVX512 = 2  /* AVX-512 F + BW + VL + VNNI (vpdpbusd), OS-enabled ZMM state             */
};

/** ISA variant that kernels use now: the best one built and supported by the CPU, lowered by the cap. */
int32_t isthmus_isa(void);

/** Best ISA variant this build and this CPU support, ignoring the cap. */
int32_t isthmus_isa_supported(void);

/**
 * Caps the ISA variant (process-wide; also set from the environment variable ISTHMUS_ISA=ref|avx2|avx512
 * at load time). A cap above what the CPU supports is allowed and has no effect beyond the support.
 */
isthmus_status isthmus_set_isa_cap(int32_t isa);
int32_t isthmus_get_isa_cap(void);

/** "ref", "avx2", "avx512", or "unknown". */
const char *isthmus_isa_name(int32_t isa);

/* ---------------------------------------------------------------- kernel registry -------- */

/** One kernel variant, as listed in native/src/kernels.def. Strings are static. */
typedef struct isthmus_kernel_info {
    const char *name;   /* e.g. "gemm_s8s8_f32__avx2"                                 */
    const char *op;     /* public operation it implements, e.g. "gemm_s8"             */
    int32_t isa;        /* ISTHMUS_ISA_*                                              */
    int32_t available;  /* 1 when built in and supported by this CPU, else 0          */
} isthmus_kernel_info;

int64_t isthmus_kernel_count(void);
isthmus_status isthmus_kernel_get_info(int64_t index, isthmus_kernel_info *out);

/* ---------------------------------------------------------------- quantization ----------- */

/** Scale granularity of an int8 tensor [rows, cols]. */
enum {
    ISTHMUS_SCALE_PER_TENSOR = 0, /* scales: [1]                                                  */
    ISTHMUS_SCALE_PER_ROW = 1,    /* scales: [rows]  (per token for activations, per output channel
                                     for weights)                                                  */
    ISTHMUS_SCALE_PER_GROUP = 2   /* scales: [rows, ceil(cols / group)], groups of `group` consecutive
                                     columns; the last group of a row may be shorter               */
};

/** Group sizes accepted with ISTHMUS_SCALE_PER_GROUP (32 is GGUF Q8_0's block). */
#define ISTHMUS_GROUP_MIN 32
#define ISTHMUS_GROUP_MAX 256

/**
 * q = round_half_even(x / s) with s = max|x| / 127 over the tensor, row or group (s = 0 and q = 0
 * when that max is 0). Results are identical for every ISA variant. A NaN or infinite input is
 * refused with ISTHMUS_ERR_INVALID_ARGUMENT naming its position.
 */
typedef struct isthmus_quantize_args {
    int64_t rows, cols;
    const float *x; int64_t ldx;  /* [rows, cols], ldx >= cols                                  */
    int32_t granularity;          /* ISTHMUS_SCALE_*                                            */
    int64_t group;                /* 32, 64, 128 or 256 with PER_GROUP; ignored otherwise       */
    int8_t *q; int64_t ldq;       /* [rows, cols] out, ldq >= cols                              */
    float *scales;                /* out, shape by granularity (see ISTHMUS_SCALE_*)            */
} isthmus_quantize_args;
isthmus_status isthmus_quantize_s8(const isthmus_quantize_args *args);

/** x = q * s, the inverse of isthmus_quantize_s8 (same shapes and granularities). */
typedef struct isthmus_dequantize_args {
    int64_t rows, cols;
    const int8_t *q; int64_t ldq;
    int32_t granularity;
    int64_t group;
    const float *scales;
    float *x; int64_t ldx;
} isthmus_dequantize_args;
isthmus_status isthmus_dequantize_s8(const isthmus_dequantize_args *args);

/** Number of scales for a [rows, cols] tensor at this granularity (0 and an error if invalid). */
int64_t isthmus_scale_count(int64_t rows, int64_t cols, int32_t granularity, int64_t group);

/* ---------------------------------------------------------------- INT8 GEMM -------------- */

/** Largest K: keeps every int32 accumulator exact (K * 127 * 128 < 2^31). */
#define ISTHMUS_GEMM_MAX_K 131072

/**
 * Weights W[N, K] int8 with their scales, packed once into the layout of the ISA variant that is
 * active when packing (isthmus_isa()). The packed buffer is caller-owned, self-describing, and may
 * be used from many threads at once. w_scales may be NULL: such a buffer serves isthmus_gemm_s8_s32
 * only. Group must be 0 (one group spanning K) unless w_granularity is PER_GROUP.
 */
typedef struct isthmus_gemm_pack_args {
    int64_t n, k;
    const int8_t *w; int64_t ldw;  /* [N, K], values in [-127, 127] (-128 is refused)         */
    int32_t w_granularity;         /* ISTHMUS_SCALE_*                                         */
    int64_t group;                 /* K-group of the scales: 0, or 32/64/128/256 for PER_GROUP */
    const float *w_scales;         /* shape by w_granularity, or NULL                         */
    void *packed;                  /* out, isthmus_gemm_s8_packed_size() bytes, 64-byte aligned */
    int64_t packed_size;           /* bytes available at packed                               */
} isthmus_gemm_pack_args;

/** Bytes needed by isthmus_gemm_s8_pack for these arguments (args->packed is not read). */
isthmus_status isthmus_gemm_s8_packed_size(const isthmus_gemm_pack_args *args, int64_t *bytes);
isthmus_status isthmus_gemm_s8_pack(const isthmus_gemm_pack_args *args);

/** Reads back what a packed buffer holds (the ISA it was packed for, its shape and group). */
typedef struct isthmus_packed_info {
    int64_t n, k, group;
    int32_t isa;
    int32_t w_granularity;
    int32_t has_scales;
} isthmus_packed_info;
isthmus_status isthmus_gemm_s8_packed_info(const void *packed, isthmus_packed_info *out);

/**
 * Y[M,N] = sum over K-groups g of (Aq[:, g] . Wq[:, g]^T) * sa * sw (+ bias[N]), Y in f32.
 * The int32 dot product of each group is exact; it is scaled in f32 as
 * y = fma((float)acc_g, sa_g * sw_g, y) over g in order, then bias is added, so every ISA variant
 * gives bit-identical results.
 * a_granularity PER_GROUP requires the weights' group. Runs on the library's thread pool.
 */
typedef struct isthmus_gemm_s8_args {
    int64_t m, n, k;
    const int8_t *a; int64_t lda;  /* [M, K]                                                   */
    int32_t a_granularity;         /* ISTHMUS_SCALE_*: per tensor, per row (token), per group  */
    const float *a_scales;
    const void *w_packed;          /* from isthmus_gemm_s8_pack, with scales                   */
    const float *bias;             /* [N] or NULL                                              */
    float *y; int64_t ldy;         /* [M, N] out, ldy >= N                                     */
} isthmus_gemm_s8_args;
isthmus_status isthmus_gemm_s8(const isthmus_gemm_s8_args *args);

/** C[M,N] = Aq[M,K] . Wq[N,K]^T in int32, exact (no scales; for researchers' own epilogues). */
typedef struct isthmus_gemm_s8_s32_args {
    int64_t m, n, k;
    const int8_t *a; int64_t lda;
    const void *w_packed;
    int32_t *c; int64_t ldc;
} isthmus_gemm_s8_s32_args;
isthmus_status isthmus_gemm_s8_s32(const isthmus_gemm_s8_s32_args *args);

/**
 * Fused: quantizes X[M,K] f32 per row (weights with group 0) or per group (the weights' group) on
 * the fly, exactly as isthmus_quantize_s8 would, then runs isthmus_gemm_s8. Scratch: pass
 * workspace of isthmus_gemm_f32_s8_workspace_size() bytes, or NULL to let the library allocate it
 * for the call.
 */
typedef struct isthmus_gemm_f32_s8_args {
    int64_t m, n, k;
    const float *x; int64_t ldx;   /* [M, K] f32 activations                                   */
    const void *w_packed;
    const float *bias;             /* [N] or NULL                                              */
    float *y; int64_t ldy;         /* [M, N] out                                               */
    void *workspace;               /* or NULL                                                  */
    int64_t workspace_size;
} isthmus_gemm_f32_s8_args;
isthmus_status isthmus_gemm_f32_s8_workspace_size(int64_t m, int64_t k, int64_t group, int64_t *bytes);
isthmus_status isthmus_gemm_f32_s8(const isthmus_gemm_f32_s8_args *args);

#ifdef __cplusplus
}
#endif

#endif /* ISTHMUS_H */
