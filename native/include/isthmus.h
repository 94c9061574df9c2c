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
 *
 * NaN and infinities (README, "NaN, infinities, saturation and denormals", has the table): every entry that
 * reads floats either refuses a NaN / +-inf with ISTHMUS_ERR_INVALID_ARGUMENT naming its position (quantize,
 * gemm_f32_s8 x, pack scales, kv_write k/v, attention q, prune_mask, sample/verify logits and probabilities),
 * or propagates it: then the entry's comment says which outputs become NaN or +-inf, every other output is
 * what it would have been, and the class of each output (finite, NaN, +inf, -inf) is the same for every ISA
 * variant. No input makes a kernel hang, crash, or turn a NaN into a finite number, and no NaN becomes a token.
 *
 * Denormals (subnormal floats): the library never reads or writes MXCSR (FTZ/DAZ). Denormal inputs are not
 * flushed: results are IEEE (with FTZ/DAZ off, the default) and agree across ISA variants as for any input.
 * Work runs with the mode of the thread that runs it: the calling thread's, and for the thread pool's workers
 * the mode of the thread that started the pool (normally the default). A caller that sets FTZ/DAZ gets
 * flushed arithmetic only in its own thread's share of the work, so flushing is not a supported mode. Timed
 * on AMD EPYC Zen 4 (bench/results/2026-11-29-amd-epyc-denormals.md, native/bench/bench_denormal.c), no
 * kernel is more than 2x slower on denormal inputs than on normal ones (worst 1.51x, kv_write f16); quantize
 * avoids the slow division of denormals by an exact rescaling (quant.h), bit-identical to x / s.
 */
#ifndef ISTHMUS_H
#define ISTHMUS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bumped on every incompatible change of this header; the Java loader refuses a mismatch. */
#define ISTHMUS_ABI_VERSION 5

/* ---------------------------------------------------------------- status and errors ------ */

typedef int32_t isthmus_status;

enum {
    ISTHMUS_OK = 0,
    ISTHMUS_ERR_INVALID_ARGUMENT = 1, /* a null pointer, a bad size or stride, a bad enum value  */
    ISTHMUS_ERR_UNSUPPORTED = 2,      /* valid request this build or CPU cannot serve             */
    ISTHMUS_ERR_OUT_OF_MEMORY = 3,    /* an internal allocation failed                            */
    ISTHMUS_ERR_INTERNAL = 4,         /* a bug: please report it with the message                 */
    ISTHMUS_ERR_CAPACITY = 5          /* a fixed-size pool is full (KV cache blocks or sequence
                                         slots, or a sequence at its maximum length); nothing changed */
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

/* ---------------------------------------------------------------- memory accounting ------ */

/**
 * What the library has allocated itself. The caller owns every other buffer (tensors, packed weights,
 * KV cache state and pools); the library's own memory is the thread pool, per-call scratch (freed before
 * the call returns) and one scratch buffer per calling thread (kept for reuse, freed when the thread exits
 * or by isthmus_release_thread_scratch). Process-wide counters, updated atomically; a snapshot taken while
 * other threads are inside calls is approximate.
 */
typedef struct isthmus_memory_stats {
    int64_t live_bytes;    /* allocated now                                                    */
    int64_t live_allocs;   /* allocations not yet freed                                        */
    int64_t peak_bytes;    /* highest live_bytes since load                                    */
    int64_t total_allocs;  /* allocations since load                                           */
    int64_t total_frees;   /* frees since load                                                 */
    int64_t failed_allocs; /* allocations refused (out of memory, or isthmus_set_alloc_failure) */
    int64_t scratch_bytes; /* part of live_bytes held by per-thread scratch buffers            */
    int64_t pool_threads;  /* worker threads alive                                             */
} isthmus_memory_stats;

isthmus_status isthmus_get_memory_stats(isthmus_memory_stats *out);

/** Frees the calling thread's scratch buffer now (the next call that needs one allocates it again). */
isthmus_status isthmus_release_thread_scratch(void);

/**
 * For tests of the out-of-memory paths: after `after` more successful allocations, every allocation the
 * library makes fails (the call returns ISTHMUS_ERR_OUT_OF_MEMORY, or runs single-threaded where the thread
 * pool could not be made) until this is called again with -1, which restores normal allocation.
 * Process-wide; never set it in production.
 *
 * What a call that fails with ISTHMUS_ERR_OUT_OF_MEMORY leaves behind (every entry; tested allocation by
 * allocation in native/test/test_reliability.c): nothing the library allocated for the call stays
 * allocated; the call's outputs (y, c, out, lse, mask, tokens, probs, accepted, path, and in-place
 * operands: rope's x, the K/V positions isthmus_kv_write fills) hold unspecified values, partly written or
 * untouched; inputs, packed buffers and the KV cache's bookkeeping (sequences, lengths, block tables,
 * reference counts) are unchanged. Calling again once memory is available gives the normal result.
 * A thread pool that cannot be made is not an error: the call runs on the calling thread alone, with the
 * same results (they never depend on the thread count).
 */
isthmus_status isthmus_set_alloc_failure(int64_t after);

/* ---------------------------------------------------------------- ISA dispatch ----------- */

enum {
    ISTHMUS_ISA_REF = 0,    /* portable scalar C: the reference every other variant is tested against */
    ISTHMUS_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C                                                       */
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
 * refused with ISTHMUS_ERR_INVALID_ARGUMENT naming its position ("x[r, c] = nan is not finite").
 * Saturation: q is in [-127, 127], never -128, also where x / s rounds past 127 (clamped; test_hygiene
 * quantize_never_minus_128, test_quant extremes); s * 127 never overflows, even for max|x| near FLT_MAX.
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

/** x = q * s, the inverse of isthmus_quantize_s8 (same shapes and granularities). Scales are not checked:
 *  a NaN scale makes its tensor / row / group NaN; an infinite one gives +-inf where q != 0, NaN where q = 0. */
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
 * A NaN or infinite w_scales entry is refused by isthmus_gemm_s8_pack, naming its index.
 * A packed buffer must come from isthmus_gemm_s8_pack unmodified: every call checks its header (a
 * header whose fields disagree with what the pack writes is refused with ISTHMUS_ERR_INVALID_ARGUMENT,
 * one packed for an ISA this CPU lacks with ISTHMUS_ERR_UNSUPPORTED), but the weights and scales after
 * it are the caller's to keep intact.
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
 * NaN / inf (not checked, propagated; the same in every variant): a NaN a_scales entry makes its row (its
 * group's contribution) NaN; an infinite one gives +-inf, or NaN where that group's acc is 0; a NaN bias[n]
 * makes column n NaN, an infinite one +-inf. The int32 accumulation cannot saturate: K <= ISTHMUS_GEMM_MAX_K
 * and weights in [-127, 127] keep it exact, the AVX2 maddubs path included (test_gemm extremes).
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
 * for the call. A NaN or infinite x is refused as isthmus_quantize_s8 refuses it ("x[m, k] = ... is not
 * finite"); bias as in isthmus_gemm_s8.
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

/* ---------------------------------------------------------------- paged KV cache --------- */

/*
 * A KV cache for `layers` attention layers: fixed-size blocks of `block_size` tokens are taken from a
 * pool of `num_blocks`; each sequence has a block table. A block id names the same slot in every
 * layer, so one table serves all layers (as in vLLM). All of it lives in two caller-owned buffers:
 * `state` (tables, reference counts, free list; isthmus_kv_sizes says how big) and `pool` (the K/V
 * data). The library keeps no pointer to them between calls except the pool pointer stored in state.
 *
 * Layout of one (layer, block) in the pool, in this order, 64-byte aligned:
 *   K  [kv_heads][head_dim][block_size]  transposed: one vector load gives dimension i of 16
 *                                        consecutive keys, so q.k for 16 keys is head_dim broadcast
 *                                        FMAs with no horizontal sums (decode and prefill alike);
 *      int8: [kv_heads][head_dim/4][block_size][4], four dimensions of a key per 32-bit word, the
 *      operand layout of vpdpbusd: q.k for 16 keys is head_dim/4 integer dot-product instructions;
 *   V  [kv_heads][block_size][head_dim]  row-major: P.V accumulates whole rows of V;
 *   K scales [kv_heads][block_size], V scales [kv_heads][block_size]  f32, only for ISTHMUS_KV_S8.
 * Head-major rather than token-major ([block_size, kv_heads, head_dim]) because decode streams one
 * head's keys at a time: head-major makes that a contiguous block_size * head_dim run per block.
 * The append writes one token as head_dim scattered elements per head, which costs nothing next to
 * the reads.
 *
 * Sequence operations (create, fork, extend, truncate, free) change the state and must not run
 * concurrently with any other call on the same cache. isthmus_kv_write on distinct sequences and
 * isthmus_attention may run concurrently with each other (the Java KvCache enforces this with a
 * read-write lock).
 *
 * The state is caller memory, so every entry validates what it uses before following it: the magic, a
 * hash of the header's fixed fields (configuration, pool pointer, sizes, offsets), the block and sequence
 * counters, the record of each sequence id it is given, each block id it follows (0..num_blocks-1, with a
 * reference count in 1..max_seqs) and each free-list entry it takes. A state found corrupt is refused with
 * ISTHMUS_ERR_INVALID_ARGUMENT ("... corrupt"), and no entry reads or writes outside the state and pool
 * buffers because of it. What stays the caller's responsibility: that state and pool are the buffers
 * given to isthmus_kv_init, at least as large as isthmus_kv_sizes said, alive and not moved; corruption
 * that stays consistent (a valid block id of another sequence, a length within its blocks) is not
 * detected and only makes the cache contents wrong.
 */

enum {
    ISTHMUS_KV_F32 = 0,
    ISTHMUS_KV_F16 = 1,  /* IEEE half, round to nearest even on append; |x| >= 65520 is refused       */
    ISTHMUS_KV_BF16 = 2, /* bfloat16, round to nearest even on append; |x| >= 0x1.ffp127 is refused   */
    ISTHMUS_KV_S8 = 3    /* int8 with one f32 scale per (token, kv head): q = rne(x / s), s = max|x|/127 */
};
/* Numerics of ISTHMUS_KV_S8 attention: with the AVX-512 variant and block_size >= 16, q.k runs in int8
 * (VNNI): each query row q * scale is rounded to int8 with its own scale sq = max|q * scale| / 127.
 * That moves each logit by at most (sq / 2) * sum_i |k_i|, the same order as storing K in int8 at all,
 * and is what makes int8 decode faster than f16 (it is compute-bound otherwise). The ref and AVX2
 * variants, and blocks of fewer than 16 tokens, use f32 q. P.V is always f32. */

#define ISTHMUS_KV_MAX_HEAD_DIM 512   /* head_dim: a multiple of 16 from 16 to 512                  */
#define ISTHMUS_KV_MAX_BLOCK_SIZE 256 /* block_size: a power of two from 1 to 256                   */
#define ISTHMUS_KV_MAX_SEQ_LEN (1 << 24)

typedef struct isthmus_kv_config {
    int32_t layers;       /* >= 1                                                               */
    int32_t kv_heads;     /* >= 1                                                               */
    int32_t head_dim;     /* multiple of 16, 16..512                                            */
    int32_t block_size;   /* power of two, 1..256 (16 is the usual choice)                      */
    int32_t dtype;        /* ISTHMUS_KV_*                                                       */
    int32_t num_blocks;   /* blocks in the pool, >= 1                                           */
    int32_t max_seqs;     /* sequence slots, >= 1                                               */
    int32_t max_seq_len;  /* tokens one sequence may hold, 1..ISTHMUS_KV_MAX_SEQ_LEN            */
} isthmus_kv_config;

/** Bytes of the state and pool buffers for this configuration (also validates it). */
isthmus_status isthmus_kv_sizes(const isthmus_kv_config *config, int64_t *state_bytes, int64_t *pool_bytes);

/** Initializes a cache in caller memory (both 64-byte aligned, sizes at least isthmus_kv_sizes). The
 * pool is not cleared: positions are defined once written. */
isthmus_status isthmus_kv_init(const isthmus_kv_config *config, void *state, int64_t state_bytes,
                               void *pool, int64_t pool_bytes);

/** Reads back the configuration of an initialized cache. */
isthmus_status isthmus_kv_get_config(const void *state, isthmus_kv_config *out);

/** A new empty sequence; its id (0..max_seqs-1) is written to *seq. CAPACITY when all slots are used. */
isthmus_status isthmus_kv_seq_create(void *state, int32_t *seq);

/** A new sequence holding the parent's tokens. Blocks are shared and reference-counted; a shared
 * partial last block is copied (all layers) when either sequence first extends into it. */
isthmus_status isthmus_kv_seq_fork(void *state, int32_t parent, int32_t *child);

/** Frees the sequence and releases its blocks. */
isthmus_status isthmus_kv_seq_free(void *state, int32_t seq);

/** Shortens the sequence to `length` tokens (0..current), releasing blocks no longer needed: how a
 * rejected speculative suffix is rolled back. */
isthmus_status isthmus_kv_seq_truncate(void *state, int32_t seq, int64_t length);

/** Grows the sequence by n >= 1 token positions, taking blocks from the pool (and copying a shared
 * last block). The new positions hold unspecified values until isthmus_kv_write fills them. All or
 * nothing: CAPACITY (pool exhausted, or max_seq_len exceeded) leaves the cache unchanged. */
isthmus_status isthmus_kv_seq_extend(void *state, int32_t seq, int64_t n);

/**
 * Keeps n_keep of the positions from `start` on and drops the rest, for every layer: position
 * start + keep[i] moves to start + i (keep strictly increasing, each in [0, length - start)), then the
 * sequence is truncated to start + n_keep. This is how the accepted path of a verified token tree is
 * kept (nodes are written in tree order after `start`). Blocks it writes into that are shared with a
 * fork are copied first, so a fork never sees the change. n_keep = 0 is a truncation to `start`.
 */
isthmus_status isthmus_kv_seq_compact(void *state, int32_t seq, int64_t start, const int32_t *keep,
                                      int64_t n_keep);

/** Current length of the sequence. */
isthmus_status isthmus_kv_seq_length(const void *state, int32_t seq, int64_t *length);

/** Block table of the sequence: writes min(capacity, block count) ids to blocks, the count to *count. */
isthmus_status isthmus_kv_seq_blocks(const void *state, int32_t seq, int32_t *blocks, int64_t capacity,
                                     int64_t *count);

/** Pool accounting. */
typedef struct isthmus_kv_stats {
    int32_t free_blocks;  /* blocks in the free list                                  */
    int32_t used_blocks;  /* num_blocks - free_blocks                                 */
    int32_t live_seqs;    /* sequences created and not freed                          */
    int32_t shared_blocks;/* blocks referenced by more than one sequence              */
    int64_t tokens;       /* sum of sequence lengths                                  */
} isthmus_kv_stats;
isthmus_status isthmus_kv_get_stats(const void *state, isthmus_kv_stats *out);

/** Rotary position embedding. */
enum {
    ISTHMUS_ROPE_NONE = 0,
    ISTHMUS_ROPE_INTERLEAVED = 1, /* pairs (2i, 2i+1): Meta's Llama reference code, GGUF/llama.cpp     */
    ISTHMUS_ROPE_HALF = 2         /* pairs (i, i + rot/2): Hugging Face Llama, GPT-NeoX                */
};
/** Pair i of a rotated vector turns by angle pos * theta^(-2i / rotary_dim), computed in double and
 * rounded to f32 cos/sin; y0 = fma(x0, c, -(x1*s)), y1 = fma(x1, c, x0*s) in f32, so the standalone op
 * and the fused append give bit-identical results. Dimensions from rotary_dim on are left as they are.
 * NaN / inf in x are not checked: they spoil only their own pair (both outputs of the pair NaN or +-inf). */
typedef struct isthmus_rope_params {
    int32_t style;        /* ISTHMUS_ROPE_*                                                     */
    int32_t rotary_dim;   /* 0: head_dim; else even, <= head_dim                                */
    float theta;          /* base, e.g. 10000 (Llama 2) or 500000 (Llama 3); > 1                */
} isthmus_rope_params;

/** Rotates x[t, h, :] in place for tokens t with positions[t] (>= 0). */
typedef struct isthmus_rope_args {
    int64_t tokens, heads, head_dim;
    float *x; int64_t ldx;          /* [tokens, heads * head_dim], row stride ldx >= heads*head_dim */
    const int64_t *positions;       /* [tokens]                                                    */
    isthmus_rope_params rope;
} isthmus_rope_args;
isthmus_status isthmus_rope(const isthmus_rope_args *args);

/**
 * Writes K and V of the newest tokens: for each i, the last n_tokens[i] positions of sequence seqs[i]
 * (after isthmus_kv_seq_extend), tokens of the batch stacked in order: row t of k and v is
 * [kv_heads, head_dim]. With rope.style != NONE, K is rotated at its position before it is stored
 * (V never is). Sequences in one call must be distinct; positions must not be shared with a fork
 * (extend first: extending copies a shared block).
 * The cache holds finite values only, for every dtype: a NaN or infinite value in k or v is refused
 * (ISTHMUS_ERR_INVALID_ARGUMENT, "k[t, i] = nan ...") before anything is written, and so is a finite value
 * the store would round to inf (F16: |x| >= 65520; BF16: |x| >= 0x1.ffp127). A K row that RoPE takes out of
 * that range is refused too, naming the row; heads of that call already stored stay written.
 * Denormal k/v are stored as they are (F16/BF16 round them like any value; S8 quantizes them).
 */
typedef struct isthmus_kv_write_args {
    void *kv;
    int32_t layer;
    int32_t n_seqs;
    const int32_t *seqs;            /* [n_seqs]                                                    */
    const int32_t *n_tokens;        /* [n_seqs], each >= 1 and <= the sequence's length            */
    const float *k; int64_t ldk;    /* [T, kv_heads * head_dim], T = sum(n_tokens)                 */
    const float *v; int64_t ldv;
    isthmus_rope_params rope;
    const int64_t *positions;       /* [T] RoPE position of each row (>= 0), or NULL: its slot in the
                                       sequence. A token tree (speculative decoding) stores node j
                                       at slot prefix + j but rotates it at prefix + depth(j), so that
                                       isthmus_kv_seq_compact leaves an accepted path where it belongs */
} isthmus_kv_write_args;
isthmus_status isthmus_kv_write(const isthmus_kv_write_args *args);

/** Reads positions [start, start+count) of one sequence and layer back as f32 (dequantized). Positions
 *  written by isthmus_kv_write read back finite (the write refuses anything else). */
typedef struct isthmus_kv_read_args {
    const void *kv;
    int32_t layer, seq;
    int64_t start, count;
    float *k; int64_t ldk;          /* [count, kv_heads * head_dim] out, or NULL                   */
    float *v; int64_t ldv;
} isthmus_kv_read_args;
isthmus_status isthmus_kv_read(const isthmus_kv_read_args *args);

/* ---------------------------------------------------------------- attention -------------- */

/**
 * Attention of a ragged batch against the cache: for each i, the q_lens[i] newest tokens of sequence
 * seqs[i] (positions len - q_len .. len - 1, already written with isthmus_kv_write) attend to keys at
 * positions p' with lo <= p' <= p (causal), lo = max(0, p - window + 1) with a window, else 0.
 * Query head h reads KV head h / (q_heads / kv_heads) (GQA; MQA when kv_heads = 1).
 *   s = scale * (q . k); with softcap > 0, s = softcap * tanh(s / softcap);
 *   out = sum softmax(s) * v, in f32 (online softmax; no [q, kv] matrix is formed).
 * Long contexts are split into chunks of ISTHMUS_ATTENTION_SPLIT keys that run in parallel and are
 * merged (flash-decoding) when a sequence has at most 16 query tokens; the split depends only on the
 * shapes, never on the thread count, so results do not depend on it. out may be q itself (same ld).
 * A NaN or infinite q is refused (ISTHMUS_ERR_INVALID_ARGUMENT, "q[t, c] = ... (head h, dimension i)"), as
 * are a non-finite scale or softcap; cached K/V are finite (isthmus_kv_write), and slots past a sequence's
 * length are never read, whatever bytes they hold. Scores beyond f32's range (|scale * q.k| > 3.4e38, far
 * outside any model's) are not checked. Should a cache hold non-finite K/V anyway (its pool written by
 * other means), a row that sees a NaN key or value gets NaN in its output (a NaN logit never drops out of
 * the softmax), infinities give what IEEE arithmetic gives, and keys a row does not see (causal, window,
 * tree) never affect it; every ISA variant follows this rule.
 */
#define ISTHMUS_ATTENTION_SPLIT 2048
typedef struct isthmus_attention_args {
    const void *kv;
    int32_t layer;
    int32_t n_seqs;
    const int32_t *seqs;            /* [n_seqs], may repeat                                        */
    const int32_t *q_lens;          /* [n_seqs], each 1..length of the sequence                    */
    int32_t q_heads;                /* a multiple of kv_heads                                      */
    const float *q; int64_t ldq;    /* [T, q_heads * head_dim], T = sum(q_lens)                     */
    float *out; int64_t ldo;        /* [T, q_heads * head_dim] out                                  */
    float *lse;                     /* [T, q_heads] out: natural log-sum-exp of s, or NULL          */
    float scale;                    /* > 0, usually 1 / sqrt(head_dim)                              */
    float softcap;                  /* 0: none                                                      */
    int32_t window;                 /* 0: none; else each query sees its `window` newest keys        */
    const int32_t *tree_parents;    /* [T] or NULL (causal). Token trees: for the u-th new token of a
                                       sequence (u = 0..q_len-1), tree_parents[row] is the index u' of
                                       its parent among the same sequence's new tokens (-1 <= u' < u;
                                       -1: attached to the cached prefix). A query then sees every
                                       key before the sequence's new tokens, the keys of its ancestors
                                       and its own key (a chain u' = u - 1 is the causal mask). q_len
                                       <= ISTHMUS_TREE_MAX_NODES with a tree; window must be 0        */
} isthmus_attention_args;
#define ISTHMUS_TREE_MAX_NODES 256
isthmus_status isthmus_attention(const isthmus_attention_args *args);

/* ---------------------------------------------------------------- sparse matrices -------- */

/**
 * A pruned weight matrix W[N, K] in one of three exchange formats, described by caller memory. These
 * are what users build and read back (dense <-> format round trips are exact); isthmus_sparse_pack
 * turns one into the compact layout the kernels of the active ISA read (like isthmus_gemm_s8_pack).
 *
 * CSR   row_ptr[N + 1], col_idx[nnz] (int32 columns, strictly increasing within a row), values[nnz].
 * BSR   blocks of block_rows x block_cols (1x4, 1x8 or 4x4; N % block_rows == 0 and
 *       K % block_cols == 0): row_ptr[N / block_rows + 1] over block rows, col_idx[nnz] = block column
 *       (first column / block_cols, strictly increasing within a block row), values[nnz][br][bc]
 *       row-major; nnz counts blocks. Zeros inside a stored block are stored.
 * 2:4   every group of 4 consecutive columns keeps exactly 2 (K % 4 == 0 is required: pad W and X with
 *       zero columns otherwise). values[N][K / 2]: the kept values of each group in column order.
 *       meta[N][ceil(K / 16)] uint16: group g of a row is the 4-bit field at bits 4 * (g % 4) of word
 *       g / 4, holding i0 | i1 << 2, the in-group indices of its two kept values, i0 < i1 (the
 *       per-row 2-bit-index order of NVIDIA's sparse tensor cores, mma.sp; the GPU issue applies the
 *       per-thread interleave on top). A group with fewer than 2 nonzeros keeps zeros at the lowest
 *       free indices. Unused bits of a row's last word are 0. nnz, row_ptr and col_idx are ignored.
 * S8    values int8 in [-127, 127] (-128 is refused) with one f32 scale per row, scales[N]
 *       (W ~= values * scales[row], as isthmus_quantize_s8 PER_ROW makes them). F32: scales is NULL.
 * F32 values are stored as given (NaN / inf included: see isthmus_spmm); S8 scales must be finite and >= 0.
 */
enum {
    ISTHMUS_SPARSE_CSR = 0,
    ISTHMUS_SPARSE_BSR = 1,
    ISTHMUS_SPARSE_2_4 = 2
};
/** Value types of sparse matrices. */
enum {
    ISTHMUS_DTYPE_F32 = 0,
    ISTHMUS_DTYPE_S8 = 1
};
typedef struct isthmus_sparse_matrix {
    int64_t n, k;                     /* dense shape [N, K]; K <= ISTHMUS_GEMM_MAX_K                  */
    int32_t format;                   /* ISTHMUS_SPARSE_*                                           */
    int32_t dtype;                    /* ISTHMUS_DTYPE_F32 or ISTHMUS_DTYPE_S8                      */
    int32_t block_rows, block_cols;   /* BSR: 1x4, 1x8, 4x4; ignored for CSR and 2:4                 */
    int64_t nnz;                      /* CSR: stored elements; BSR: stored blocks                    */
    const int64_t *row_ptr;           /* CSR, BSR: row_ptr[0] = 0, non-decreasing, last = nnz       */
    const int32_t *col_idx;           /* CSR, BSR                                                    */
    const void *values;               /* float or int8_t, shape by format                           */
    const uint16_t *meta;             /* 2:4 only                                                    */
    const float *scales;              /* S8: [N], finite and >= 0; F32: NULL                         */
} isthmus_sparse_matrix;

/**
 * Checks w completely (every index in range and ordered, row_ptr consistent, 2:4 metadata valid, no
 * -128 in S8 values) and returns the bytes isthmus_sparse_pack needs for it. A malformed matrix is
 * refused with ISTHMUS_ERR_INVALID_ARGUMENT naming the first bad row and index; nothing is read out of
 * bounds of the sizes w states.
 */
isthmus_status isthmus_sparse_packed_size(const isthmus_sparse_matrix *w, int64_t *bytes);

/** Validates w as above and packs it for the active ISA into packed (64-byte aligned, packed_size
 *  bytes). The packed buffer is self-describing, caller-owned, and may be used from many threads.
 *  It must stay as the pack wrote it: isthmus_sparse_packed_info and isthmus_spmm refuse a buffer whose
 *  header was altered (ISTHMUS_ERR_INVALID_ARGUMENT; ISTHMUS_ERR_UNSUPPORTED for an ISA this CPU lacks),
 *  but the sections after the header (indices, values) are the caller's to keep intact. */
isthmus_status isthmus_sparse_pack(const isthmus_sparse_matrix *w, void *packed, int64_t packed_size);

/** What a packed sparse buffer holds. */
typedef struct isthmus_sparse_info {
    int64_t n, k;
    int64_t nnz;                      /* stored values (blocks count block_rows * block_cols each) */
    int32_t format, dtype;
    int32_t block_rows, block_cols;   /* 1x1 for CSR; 1x4 (two of each 4) reported as 1x1 for 2:4   */
    int32_t isa;                      /* the ISA variant it was packed for                          */
    int32_t reserved;
    int64_t bytes;                    /* total size of the packed buffer                            */
} isthmus_sparse_info;
isthmus_status isthmus_sparse_packed_info(const void *packed, isthmus_sparse_info *out);

/**
 * Y[M, N] = X[M, K] . W[N, K]^T (+ bias[N]) with W sparse (packed by isthmus_sparse_pack). Runs on the
 * library's thread pool; N and K come from the packed W. The variant W was packed for runs; a W packed
 * for an ISA above the active one (a lower cap set since) is refused with ISTHMUS_ERR_UNSUPPORTED:
 * pack it again under the active ISA.
 *  F32 W: x [M, K] f32; y = the f32 sum of w * x over the stored values of the row, in an order that
 *         depends on the ISA (tests bound the difference from a double reference by
 *         2 * nnz_row * 2^-24 * sum |w * x| + 1e-30), then + bias. Only stored values meet x: a NaN
 *         or infinite x[c] affects the rows that store column c (0 * inf stored as a zero is NaN).
 *  S8 W:  xq [M, K] int8 with x_scales [M] (isthmus_quantize_s8 PER_ROW); the int32 sum
 *         acc = sum wq * xq is exact, and y = fmaf((float)acc, x_scales[m] * scales[n], 0) + bias[n],
 *         bit-identical for every ISA variant. With c != NULL (and y == NULL) the raw int32 acc is
 *         written to c [M, N] instead (no scales, no bias).
 * NaN / inf are not checked and propagate, the same in every variant: F32, a non-finite x[m, k] makes y[m, n]
 * non-finite for exactly the rows n of W that store column k (a stored zero included: 0 * NaN = NaN), and a
 * non-finite stored weight w[n, k] makes column n non-finite for the rows m whose x[m, k] is not 0; S8, a NaN
 * x_scales[m] makes row m NaN; F32 and S8, a NaN bias[n] makes column n NaN. int32 acc is exact (no
 * saturation) for K <= ISTHMUS_GEMM_MAX_K (test_sparse extremes, test_sparse24 s8_extremes).
 */
typedef struct isthmus_spmm_args {
    int64_t m;                        /* 1 ..                                                       */
    const float *x; int64_t ldx;      /* F32 W: [M, K], ldx >= K; NULL for S8 W                     */
    const int8_t *xq; int64_t ldxq;   /* S8 W: [M, K], ldxq >= K; NULL for F32 W                    */
    const float *x_scales;            /* S8 W with y: [M]                                           */
    const void *w_packed;             /* from isthmus_sparse_pack                                   */
    const float *bias;                /* [N] or NULL                                                */
    float *y; int64_t ldy;            /* [M, N] out, ldy >= N                                       */
    int32_t *c; int64_t ldc;          /* S8 W only, instead of y: [M, N] exact int32 out            */
} isthmus_spmm_args;
isthmus_status isthmus_spmm(const isthmus_spmm_args *args);

/* ---------------------------------------------------------------- pruning ---------------- */

/** Which weights compete with which for survival. */
enum {
    ISTHMUS_PRUNE_PER_ROW = 0,  /* each row loses round(sparsity * K) weights                        */
    ISTHMUS_PRUNE_GLOBAL = 1,   /* the matrix loses round(sparsity * N * K) weights                  */
    ISTHMUS_PRUNE_N_M = 2,      /* every group of nm_m consecutive weights along K keeps its nm_n
                                   best (2:4, 4:8; 1 <= nm_n < nm_m <= 16, K % nm_m == 0);
                                   sparsity is ignored                                               */
    ISTHMUS_PRUNE_BLOCK = 3     /* blocks of block_rows x block_cols (1x4, 1x8, 4x4; N and K
                                   multiples) scored by the L2 norm of their scores; the matrix loses
                                   round(sparsity * number of blocks) blocks                          */
};

/**
 * Computes a pruning mask for W[N, K] f32. The score of a weight is |w| (magnitude), or with act_norm
 * given |w| * act_norm[k] (Wanda: act_norm = the L2 norm of column k of the calibration activations).
 * The lowest scores are removed; exactly the stated count is removed. Equal scores are ordered by a
 * hash of (seed, row, column), so a mask is reproducible for a seed and ties fall differently for
 * different seeds. NaN or infinite w or act_norm (or negative act_norm) are refused, naming the position.
 * mask[N, K] (ldm >= K): 1 = kept, 0 = removed.
 */
typedef struct isthmus_prune_args {
    int64_t n, k;
    const float *w; int64_t ldw;      /* [N, K]                                                     */
    const float *act_norm;            /* [K] or NULL                                                */
    int32_t structure;                /* ISTHMUS_PRUNE_*                                            */
    int32_t nm_n, nm_m;               /* N_M only                                                   */
    int32_t block_rows, block_cols;   /* BLOCK only                                                 */
    int32_t reserved;
    double sparsity;                  /* fraction removed, 0 .. 1 (PER_ROW, GLOBAL, BLOCK)          */
    uint64_t seed;
    uint8_t *mask; int64_t ldm;       /* [N, K] out                                                 */
} isthmus_prune_args;
isthmus_status isthmus_prune_mask(const isthmus_prune_args *args);

/* ---------------------------------------------------------------- transformer blocks ----- */

/**
 * Row-wise RMSNorm: y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:], the mean of squares
 * accumulated in f32 in an order that depends on the ISA (tests bound it against a double reference by
 * 1e-5 relative where the mean square is >= 1e-30; below, squares fall into f32's denormal range and
 * lose relative precision), plus |weight[i]| * 2^-149 where x[i] / rms is denormal (it is formed first and
 * carries its absolute rounding, as silu in isthmus_swiglu). With residual != NULL, x[r, :] += residual[r, :] first and the sum is written back to x
 * (the fused "add then norm" of a pre-norm transformer). y may be x (same ld).
 * NaN / inf are not refused: a row whose sum of squares is not finite (a NaN or +-inf in x + residual, or
 * |x| so large that the squares overflow f32) comes out all NaN (x still receives the sum with residual);
 * a NaN weight[i] makes column i NaN, an infinite one +-inf (NaN where x is 0). eps must be finite and > 0.
 */
typedef struct isthmus_rmsnorm_args {
    int64_t rows, dim;
    float *x; int64_t ldx;            /* [rows, dim]; written only when residual != NULL            */
    const float *residual; int64_t ldr; /* [rows, dim] or NULL                                      */
    const float *weight;              /* [dim]                                                      */
    float eps;                        /* > 0, e.g. 1e-5                                             */
    float *y; int64_t ldy;            /* [rows, dim] out                                            */
} isthmus_rmsnorm_args;
isthmus_status isthmus_rmsnorm(const isthmus_rmsnorm_args *args);

/**
 * SwiGLU: out[r, i] = silu(gate[r, i]) * up[r, i], silu(g) = g / (1 + exp(-g)). gate and up may be the
 * two halves of one [rows, 2 * n] projection (up = gate + n, same ld). out may be gate or up (same ld).
 * Within 1e-5 relative of the exact value, plus |up| * 2^-149 where silu(gate) is denormal (|silu| < 2^-126:
 * it is formed first and carries its absolute rounding); fuzz_nn checks this against a double reference.
 * NaN / inf propagate element-wise, the same class in every variant: NaN gate or up -> NaN; gate = +inf ->
 * +-inf with up's sign (NaN for up = 0); gate = -inf -> NaN (-inf * sigmoid(-inf) = -inf * 0); up = +-inf ->
 * +-inf (sign of up * gate), NaN where silu(gate) is 0 (gate = 0; gate = +-2^-149, the smallest denormal,
 * whose silu 2^-150 rounds to 0; or gate < -87.34, where every variant's exp(gate) is 0).
 */
typedef struct isthmus_swiglu_args {
    int64_t rows, n;
    const float *gate; int64_t ldg;   /* [rows, n]                                                  */
    const float *up; int64_t ldu;     /* [rows, n]                                                  */
    float *out; int64_t ldo;          /* [rows, n] out                                              */
} isthmus_swiglu_args;
isthmus_status isthmus_swiglu(const isthmus_swiglu_args *args);

/* ---------------------------------------------------------------- sampling --------------- */

/**
 * How a distribution over the vocabulary is made from one row of logits, in this order:
 *  1. repetition penalty (CTRL / Hugging Face): every distinct token of the row's history has its
 *     logit divided by the penalty when > 0, multiplied by it otherwise (1: off);
 *  2. temperature: logits / temperature; temperature = 0 is greedy (the argmax, ties to the lowest
 *     token id; the filters below are then ignored and the distribution is one-hot);
 *  3. top-k (0: off): keeps the tokens whose logit is >= the k-th largest (ties at the k-th are kept);
 *  4. top-p (1: off; in (0, 1]): of those, keeps the smallest set of highest-probability tokens whose
 *     probability (renormalized after top-k) sums to >= top_p; tokens tied with the last one kept are
 *     kept too;
 *  5. min-p (0: off; in [0, 1)): of those, keeps the tokens with probability >= min_p * the largest.
 * The distribution is softmax over the kept tokens (0 elsewhere). Logits may be -inf (never chosen);
 * NaN or +inf logits are refused (ISTHMUS_ERR_INVALID_ARGUMENT naming the row and token); a row with
 * every logit -inf is refused too. Precision: exp is a float polynomial (~1 ulp); a kept token whose
 * (logit - max) / temperature is below -87 (probability < 2e-38 of the top one's) gets probability 0.
 * A temperature so small that 1 / temperature overflows float is taken as 1 / FLT_MAX.
 * Reserved fields must be 0.
 */
typedef struct isthmus_sampling_params {
    float temperature;                /* >= 0 (0: greedy)                                           */
    int32_t top_k;                    /* >= 0 (0: off)                                              */
    float top_p;                      /* (0, 1] (1: off)                                            */
    float min_p;                      /* [0, 1) (0: off)                                            */
    float repetition_penalty;         /* > 0 (1: off)                                               */
    int32_t reserved;                 /* 0                                                          */
} isthmus_sampling_params;

/**
 * Random numbers: Philox4x32-10 (Salmon et al. 2011) with key = seed and counter = (stream, draw): the
 * d-th uniform a row uses comes from counter {lo32(stream), hi32(stream), d, 0}, and is
 * (((uint64)x0 << 21) ^ (x1 >> 11)) * 2^-53 in [0, 1) (53 bits) from the first two output words. A
 * stream is the caller's name for a row (e.g. sequence id << 32 | step), so a row's samples do not
 * depend on which batch, thread or ISA variant computes them: every result below is bit-identical
 * for every ISA variant and thread count.
 * isthmus_philox_uniform returns that uniform, so that callers (and tests) can reproduce every draw.
 */
double isthmus_philox_uniform(uint64_t seed, uint64_t stream, uint32_t draw);

/**
 * Samples one token per row: tokens[r] is drawn from the distribution of row r (above) by inverse CDF
 * with draw 0 of stream streams[r] (kept tokens in id order; the sums are formed in one fixed order,
 * the same for every variant). With probs != NULL the distribution
 * itself is written out (0 for removed tokens; what isthmus_verify takes as ISTHMUS_DIST_PROBS).
 * params has `rows` entries, or one shared when params_per_row = 0.
 * history (repetition penalty): the tokens of row r are history[history_offsets[r] ..
 * history_offsets[r + 1]) (offsets non-decreasing from 0; ids in [0, vocab)); NULL for none.
 */
typedef struct isthmus_sample_args {
    int64_t rows, vocab;              /* rows >= 1; 1 <= vocab <= ISTHMUS_MAX_VOCAB                 */
    const float *logits; int64_t ld;  /* [rows, vocab], ld >= vocab                                 */
    const isthmus_sampling_params *params;
    int32_t params_per_row;           /* 1: params[rows]; 0: params[1] for every row                */
    int32_t reserved;
    const int32_t *history;           /* or NULL                                                    */
    const int64_t *history_offsets;   /* [rows + 1] with history                                    */
    uint64_t seed;
    const uint64_t *streams;          /* [rows]                                                     */
    int32_t *tokens;                  /* [rows] out                                                 */
    float *probs; int64_t ldp;        /* [rows, vocab] out, or NULL                                 */
} isthmus_sample_args;
#define ISTHMUS_MAX_VOCAB (1 << 24)
isthmus_status isthmus_sample(const isthmus_sample_args *args);

/* ---------------------------------------------------------------- speculative decoding --- */

/** Rows of distributions over the vocabulary: probabilities (each row sums to 1, entries >= 0 and
 *  finite; rows are renormalized by their sum, which must be > 0) or logits turned into probabilities by
 *  params (as isthmus_sample does; repetition_penalty must be 1 here: pass probabilities made by
 *  isthmus_sample with the history instead). */
enum {
    ISTHMUS_DIST_PROBS = 0,
    ISTHMUS_DIST_LOGITS = 1
};
typedef struct isthmus_dist {
    int32_t kind;                     /* ISTHMUS_DIST_*                                             */
    int32_t reserved;
    const float *data; int64_t ld;    /* rows of [vocab], row stride ld >= vocab                    */
    isthmus_sampling_params params;   /* with ISTHMUS_DIST_LOGITS                                   */
} isthmus_dist;

/** How the children of a tree node were drawn from the draft distribution at that node. */
enum {
    ISTHMUS_TREE_WITH_REPLACEMENT = 0,    /* independent draws (may repeat): SpecInfer's multi-round
                                             rejection: reject child c -> p = norm(max(0, p - q))     */
    ISTHMUS_TREE_WITHOUT_REPLACEMENT = 1  /* distinct tokens, each drawn from q renormalized without
                                             the ones before (Sequoia): reject c -> p = norm(max(0,
                                             p - q)), q = norm(q without c)                          */
};

/**
 * Verifies draft tokens against the target for a batch of B sequences, each with the same tree shape of
 * T draft nodes (a chain of k tokens is T = k, parents NULL). Node j holds draft token
 * draft_tokens[b, j] and has parent parents[j] (-1 <= parents[j] < j; -1 = the root, the last token
 * already committed). Rows of the distributions, for sequence b:
 *   target: row b * (T + 1) + r, r = 0 for the root and r = j + 1 for node j (the target's next-token
 *           distribution after the path to that node; one target pass over root + nodes with the tree
 *           attention mask gives all of them);
 *   draft:  row b * T + r, the distribution the children of that node (r = 0: root, r = j + 1: node j)
 *           were drawn from; rows of nodes without children are never read (a chain reads rows 0..k-1).
 * Sampling (greedy = 0): from the root, the children of the current node are tried in index order:
 * child c is accepted with probability min(1, p(c) / q(c)) (uniform draw d of stream streams[b], draws
 * numbered in the order they are used); on acceptance the walk moves to c and starts again with c's
 * rows; on rejection p and q are updated as tree_mode says and the next child is tried. When no child
 * is accepted (or the node is a leaf), one token is drawn from the current p (the residual after
 * rejections, or the target row of the accepted leaf: the bonus token). The emitted sequence is then
 * distributed exactly as the target's own samples would be (Leviathan et al. 2023, Chen et al. 2023;
 * SpecInfer, Sequoia for trees).
 * Greedy (greedy = 1): the next token is the target row's argmax (ties to the lowest id); the child
 * holding it is accepted, else the walk stops and emits it; draft is not read (its data may be NULL).
 * Outputs per sequence: accepted[b] = a, the accepted depth (0..depth of the tree); tokens[b, 0..a] =
 * the a accepted draft tokens then the one emitted token, -1 after; path[b, 0..a-1] = the accepted node
 * indices (for isthmus_kv_seq_compact: keep root + path), -1 after (path may be NULL).
 * B sequences run in parallel on the pool; results do not depend on the thread count or ISA.
 * The shape, ids, parents, params and pointers are checked before anything runs; the values of a row
 * (NaN / +inf logits, every logit -inf, negative / non-finite / zero-sum probabilities) are checked when
 * the walk reads it, so a bad row no walk reaches is not reported. On such a failure the outputs of
 * other sequences may already be written.
 */
typedef struct isthmus_verify_args {
    int32_t batch;                    /* B >= 1                                                     */
    int32_t nodes;                    /* T, 1..ISTHMUS_TREE_MAX_NODES                               */
    int64_t vocab;                    /* 1..ISTHMUS_MAX_VOCAB                                       */
    const int32_t *parents;           /* [T], or NULL: a chain (parent of j is j - 1)               */
    int32_t tree_mode;                /* ISTHMUS_TREE_*; a chain or a tree without siblings ignores it */
    int32_t greedy;                   /* 0 or 1                                                     */
    const int32_t *draft_tokens; int64_t ld_tokens; /* [B, T], ids in [0, vocab); siblings distinct
                                                        with WITHOUT_REPLACEMENT                     */
    isthmus_dist draft;               /* B * T rows                                                 */
    isthmus_dist target;              /* B * (T + 1) rows                                           */
    uint64_t seed;
    const uint64_t *streams;          /* [B]                                                        */
    int32_t *accepted;                /* [B] out                                                    */
    int32_t *tokens; int64_t ld_out;  /* [B, T + 1] out (ld_out >= T + 1)                           */
    int32_t *path; int64_t ld_path;   /* [B, T] out, or NULL                                        */
} isthmus_verify_args;
isthmus_status isthmus_verify(const isthmus_verify_args *args);

#ifdef __cplusplus
}
#endif

#endif /* ISTHMUS_H */
