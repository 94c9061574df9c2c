/* Internal declarations shared by the library's families. Not installed, not part of the ABI. */
#ifndef ISTHMUS_INTERNAL_H
#define ISTHMUS_INTERNAL_H

#include "isthmus.h"

#include <stddef.h>
#include <stdint.h>

#define ISTHMUS_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------ errors (status.c) */

/* Records a printf-style message as this thread's last error and returns status. */
isthmus_status isthmus__fail(isthmus_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void isthmus__clear_error(void);

#define FAIL_ARG(...) isthmus__fail(ISTHMUS_ERR_INVALID_ARGUMENT, __VA_ARGS__)

/* Checks that every check needs: a non-null pointer, a positive size, a stride >= a minimum. */
#define CHECK_PTR(p, name)                                                                 \
    do {                                                                                   \
        if ((p) == NULL) return FAIL_ARG("%s: %s is NULL", __func__, name);                \
    } while (0)
#define CHECK_POS(v, name)                                                                 \
    do {                                                                                   \
        if ((v) <= 0) return FAIL_ARG("%s: %s = %lld, must be >= 1", __func__, name,       \
                                      (long long)(v));                                     \
    } while (0)
#define CHECK_LD(ld, min, name)                                                            \
    do {                                                                                   \
        if ((ld) < (min)) return FAIL_ARG("%s: %s = %lld, must be >= %lld", __func__, name,\
                                          (long long)(ld), (long long)(min));              \
    } while (0)

/* Largest element count any one buffer may describe: keeps every byte offset within int64 and
 * within the address space (2^47 elements of at most 4 bytes). */
#define ISTHMUS_MAX_ELEMS ((int64_t)1 << 45)

/* rows x ld elements fit without overflow and below ISTHMUS_MAX_ELEMS. */
int isthmus__extent_ok(int64_t rows, int64_t ld);

/* ------------------------------------------------------------------ ISA and dispatch (cpu.c) */

int32_t isthmus__isa_active(void);

typedef enum isthmus_op {
    ISTHMUS_OP_QUANTIZE_S8,
    ISTHMUS_OP_GEMM_S8,
    ISTHMUS_OP_GEMM_S8_S32,
    ISTHMUS_OP_ATTENTION,
    ISTHMUS_OP_SPMM_BSR,
    ISTHMUS_OP_SPMM_24,
    ISTHMUS_OP_RMSNORM,
    ISTHMUS_OP_SWIGLU,
    ISTHMUS_OP_SAMPLE,
    ISTHMUS_OP_COUNT
} isthmus_op;

/* Kernel object for (op, isa), or NULL where that variant is not built or not supported. */
const void *isthmus__kernel(isthmus_op op, int32_t isa);

/* ------------------------------------------------------------------ thread pool (pool.c) */

/* Runs fn(ctx, task) for task in [0, ntasks) on the pool, the calling thread taking part; returns
 * when all have run. Safe to call from many threads: a call that finds the pool busy runs its tasks
 * on the calling thread alone. */
typedef void (*isthmus_task_fn)(void *ctx, int64_t task);
void isthmus__parallel_for(int64_t ntasks, isthmus_task_fn fn, void *ctx);
int32_t isthmus__threads(void);

int32_t isthmus__pool_workers(void); /* worker threads alive now */

/* ------------------------------------------------------------------ allocation (status.c) */
/* The library's only allocator: 64-byte aligned, counted (isthmus_get_memory_stats), and made to fail on
 * demand by isthmus_set_alloc_failure. Never call malloc/calloc/free directly. NULL when out of memory. */
void *isthmus__alloc(size_t bytes);
void *isthmus__calloc(size_t n, size_t size); /* zeroed; NULL on overflow of n * size */
void isthmus__free(void *p);                  /* NULL is a no-op */
void *isthmus__aligned_alloc(size_t bytes);
void isthmus__aligned_free(void *p);
/* This thread's scratch buffer, at least `bytes`, 64-byte aligned; valid until the next call on the
 * same thread; freed at thread exit. NULL when out of memory. */
void *isthmus__scratch(size_t bytes);



/* ------------------------------------------------------------------ kernel types (kernels.def) */

/* Quantization primitives over n contiguous elements. Every variant gives bit-identical results. */
typedef struct QUANTIZE_S8_kernel {
    float (*amax)(const float *x, int64_t n);             /* max |x|; NaN if any x is NaN or inf */
    void (*quant)(const float *x, int64_t n, float scale, int8_t *q); /* rne(x / scale), scale > 0 */
    void (*dequant)(const int8_t *q, int64_t n, float scale, float *x);
} QUANTIZE_S8_kernel;

struct gemm_problem; /* gemm/gemm.h */
struct ATTENTION_kernel; /* attention/kv.h */
typedef struct ATTENTION_kernel ATTENTION_kernel;
typedef struct SPMM_kernel SPMM_BSR_kernel; /* sparse/sparse.h */
typedef struct SPMM_kernel SPMM_24_kernel;

/* A GEMM variant: computes rows [m0, m1) x panels [p0, p1) of one problem (m0 a multiple of mr).
 * nr = panel width of the packed layout it reads; comp = 1 when its layout carries the
 * 128 * column-sum compensation. */
typedef struct GEMM_S8_kernel {
    int32_t isa;
    int32_t nr;
    int32_t comp;
    int32_t mr;    /* rows per A tile the driver repacks A into (0: the kernel reads A as given) */
    int32_t a_xor; /* 1: repacked A bytes are a ^ 0x80 = a + 128 (unsigned operand of vpdpbusd) */
    int32_t a_abs; /* 1: each tile slice also holds |a| (bytewise) after the mr words of a */
    void (*tile)(const struct gemm_problem *p, int64_t m0, int64_t m1, int64_t p0, int64_t p1);
} GEMM_S8_kernel;
typedef GEMM_S8_kernel GEMM_S8_S32_kernel;

/* Row kernels of the transformer-block ops (src/nn): one row of dim / n elements per call. */
typedef struct RMSNORM_kernel {
    int32_t isa;
    /* with r != NULL: x += r (written back); then y = x * (1 / sqrt(mean(x^2) + eps)) * w; y may be x */
    void (*row)(float *x, const float *r, const float *w, float eps, float *y, int64_t n);
} RMSNORM_kernel;
typedef struct SWIGLU_kernel {
    int32_t isa;
    void (*row)(const float *g, const float *u, float *o, int64_t n); /* o = silu(g) * u; o may be g or u */
} SWIGLU_kernel;
/* Sampling primitives over one row (speculative/spec.h says what each computes). Every variant gives
 * bit-identical results: the same elementwise operations (one exp polynomial, fmaf = vector FMA) and
 * every sum formed in the same order (16 interleaved lanes per chunk of SPEC_CHUNK, then a fixed tree). */
typedef struct SAMPLE_kernel {
    /* max of x[0, n) (order-independent); *flags |= 1 if any x is NaN or +inf, |= 2 if any x < 0 */
    float (*max)(const float *x, int64_t n, int *flags);
    /* first i with x[i] >= t, or n */
    int64_t (*find_ge)(const float *x, int64_t n, float t);
    /* the indices i with x[i] >= t in increasing order, the first cap stored; returns how many */
    int64_t (*collect_ge)(const float *x, int64_t n, float t, int32_t *idx, int64_t cap);
    /* e = exp((x - m) * inv_t) (spec_exp), kept where x >= xmin and e >= emin, else 0; out (or NULL)
     * gets e, sums[c] the chunk sums */
    void (*softmax_chunks)(const float *x, int64_t n, float m, float inv_t, float xmin, float emin,
                           float *out, float *sums);
    /* v kept where v >= vmin, else 0, into out (or NULL), chunk sums into sums; returns 1 if any v is
     * negative, NaN or +inf (sums are then meaningless) */
    int (*sum_chunks)(const float *v, int64_t n, float vmin, float *out, float *sums);
    /* out = max(0, p * a - q * b) (out may be p or q), chunk sums into sums */
    void (*residual_chunks)(const float *p, float a, const float *q, float b, int64_t n, float *out,
                            float *sums);
    /* x *= s */
    void (*scale)(float *x, int64_t n, float s);
} SAMPLE_kernel;
#endif
