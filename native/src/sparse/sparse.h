/* Sparse matmul internals: the packed header every layout starts with, the problem a kernel sees, and
 * the kernel type of kernels.def's SPMM_* ops. Each format family (blocked: CSR + BSR; 2:4) defines
 * its own packed sections after the header, in its own files. */
#ifndef ISTHMUS_SPARSE_H
#define ISTHMUS_SPARSE_H

#include "../core/internal.h"

#include <stddef.h>
#include <string.h>

#define SPARSE_MAGIC 0x50535349u /* "ISSP" */
#define SPARSE_VERSION 2u
#define SPARSE_HEADER 192        /* bytes before the first section; sections are 64-byte aligned */

/* The first bytes of every packed sparse buffer. Filled by the family's pack(), then sealed by sparse.c
 * with `check`, a hash of every field before it; sparse.c checks magic, version, check and the family's
 * header_ok before any kernel reads the rest. (Version 1 had no check: a flipped k left a consistent
 * header whose sections the payload's column indices no longer fit.) */
typedef struct sparse_hdr {
    uint32_t magic, version;
    int32_t isa, format, dtype;
    int32_t br, bc;              /* block shape (1x1 for CSR and 2:4)                            */
    int32_t layout;              /* family-defined layout variant                                */
    int64_t n, k;
    int64_t nnz;                 /* stored values (blocks x br x bc for BSR; N * K / 2 for 2:4)  */
    int64_t total;               /* bytes of the whole packed buffer                             */
    int64_t off[6];              /* family-defined section offsets from the start of the buffer  */
    int64_t aux[2];              /* family-defined                                               */
    uint64_t check;              /* sparse_header_hash of the fields above                       */
} sparse_hdr;
_Static_assert(sizeof(sparse_hdr) <= SPARSE_HEADER, "sparse header too large");

/* One call of isthmus_spmm, validated: every pointer the dtype needs is set, shapes agree. */
typedef struct spmm_problem {
    int64_t m, n, k;
    const float *x; int64_t ldx;        /* F32 W                                    */
    const int8_t *xq; int64_t ldxq;     /* S8 W                                     */
    const float *x_scales;              /* S8 W with y                              */
    const sparse_hdr *w;
    const float *bias;                  /* or NULL                                  */
    float *y; int64_t ldy;              /* f32 out, or NULL when c is set           */
    int32_t *c; int64_t ldc;            /* S8 W: exact int32 out, or NULL           */
} spmm_problem;

/* The seal of a header: a 64-bit hash of every field before `check`. */
static inline uint64_t sparse_header_hash(const sparse_hdr *h) {
    const unsigned char *b = (const unsigned char *)h;
    uint64_t x = 0x5350415253450001ull;
    for (size_t i = 0; i < offsetof(sparse_hdr, check); i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        x = (x ^ w) * 0x9e3779b97f4a7c15ull;
        x ^= x >> 29;
    }
    return x;
}

/* Section of a packed buffer at byte offset off. */
static inline const void *sparse_section(const sparse_hdr *h, int64_t off) {
    return (const char *)h + off;
}

/* Rounds up to the 64-byte alignment of sections. */
static inline int64_t sparse_align64(int64_t bytes) { return (bytes + 63) & ~(int64_t)63; }

/*
 * A variant of one format family. The entry (sparse.c) has validated w completely before calling
 * packed_size or pack, and validated the problem before run.
 *  packed_size: total bytes of the packed layout of w (header included), or -1 if it overflows.
 *  pack:        writes the whole layout (header included) into packed, which has packed_size(w)
 *               bytes and is 64-byte aligned; must set every field of the header.
 *  run:         computes the problem (may use isthmus__parallel_for and isthmus__scratch / aligned
 *               allocations); returns ISTHMUS_OK or ISTHMUS_ERR_OUT_OF_MEMORY (with a message).
 */
typedef struct SPMM_kernel {
    int32_t isa;
    int64_t (*packed_size)(const isthmus_sparse_matrix *w);
    void (*pack)(const isthmus_sparse_matrix *w, sparse_hdr *packed);
    isthmus_status (*run)(const spmm_problem *p);
    /* 1 when every field of h other than magic, version and isa is what pack writes for the header's
     * own shape (n, k, format, dtype, block shape and, for CSR/BSR, the block count): then the
     * sections it names lie within the total it states. Checked on every use of a packed buffer. */
    int (*header_ok)(const sparse_hdr *h);
} SPMM_kernel;

/* The shape checks of a packed header shared by both families: n, k within the limits of a matrix. */
static inline int sparse_shape_ok(const sparse_hdr *h) {
    return h->n >= 1 && h->k >= 1 && h->k <= ISTHMUS_GEMM_MAX_K && isthmus__extent_ok(h->n, h->k) &&
           (h->dtype == ISTHMUS_DTYPE_F32 || h->dtype == ISTHMUS_DTYPE_S8);
}

/* kernels.def ops (typedefs in core/internal.h): SPMM_BSR serves CSR and BSR (CSR is 1x1 blocks),
 * SPMM_24 serves 2:4. */

/* The int8 epilogue every variant uses, so all give bit-identical y. */
static inline float spmm_s8_out(int32_t acc, float sx, float sw, const float *bias, int64_t j) {
    float y = __builtin_fmaf((float)acc, sx * sw, 0.0f);
    return bias ? y + bias[j] : y;
}

#endif
