/* Sparse matmul entries: complete validation of the exchange formats (nothing past the sizes a matrix
 * states is ever read), pack dispatch to the format family's variant for the active ISA, and spmm. */
#include "sparse.h"

#include <math.h>
#include <string.h>

static const char *format_name(int32_t f) {
    switch (f) {
    case ISTHMUS_SPARSE_CSR: return "CSR";
    case ISTHMUS_SPARSE_BSR: return "BSR";
    case ISTHMUS_SPARSE_2_4: return "2:4";
    default: return "unknown";
    }
}

static int block_shape_ok(int32_t br, int32_t bc) {
    return (br == 1 && bc == 4) || (br == 1 && bc == 8) || (br == 4 && bc == 4);
}

/* row_ptr over `rows` rows with nnz entries, and col_idx strictly increasing in [0, cols). */
static isthmus_status check_rows(const char *fn, const char *what, const int64_t *row_ptr,
                                 const int32_t *col_idx, int64_t rows, int64_t cols, int64_t nnz) {
    if (row_ptr[0] != 0) return FAIL_ARG("%s: row_ptr[0] = %lld, must be 0", fn, (long long)row_ptr[0]);
    if (row_ptr[rows] != nnz)
        return FAIL_ARG("%s: row_ptr[%lld] = %lld, must equal nnz = %lld", fn, (long long)rows,
                        (long long)row_ptr[rows], (long long)nnz);
    for (int64_t r = 0; r < rows; r++) {
        int64_t a = row_ptr[r], b = row_ptr[r + 1];
        if (b < a || b > nnz)
            return FAIL_ARG("%s: row_ptr[%lld] = %lld after row_ptr[%lld] = %lld: must be non-decreasing "
                            "and <= nnz = %lld", fn, (long long)(r + 1), (long long)b, (long long)r,
                            (long long)a, (long long)nnz);
        if (b - a > cols)
            return FAIL_ARG("%s: %s %lld has %lld entries, more than the %lld %s", fn, what, (long long)r,
                            (long long)(b - a), (long long)cols,
                            what[0] == 'r' ? "columns" : "block columns");
        int64_t prev = -1;
        for (int64_t i = a; i < b; i++) {
            int64_t c = col_idx[i];
            if (c < 0 || c >= cols)
                return FAIL_ARG("%s: %s %lld: col_idx[%lld] = %lld is out of range [0, %lld)", fn, what,
                                (long long)r, (long long)i, (long long)c, (long long)cols);
            if (c <= prev)
                return FAIL_ARG("%s: %s %lld: col_idx[%lld] = %lld after %lld: indices must be strictly "
                                "increasing within a row (sorted, no duplicates)", fn, what, (long long)r,
                                (long long)i, (long long)c, (long long)prev);
            prev = c;
        }
    }
    return ISTHMUS_OK;
}

static isthmus_status check_values(const char *fn, const isthmus_sparse_matrix *w, int64_t count) {
    if (w->dtype == ISTHMUS_DTYPE_S8) {
        const int8_t *v = w->values;
        for (int64_t i = 0; i < count; i++)
            if (v[i] == -128)
                return FAIL_ARG("%s: values[%lld] = -128: int8 weights must be in [-127, 127] "
                                "(symmetric quantization)", fn, (long long)i);
        for (int64_t r = 0; r < w->n; r++)
            if (!(w->scales[r] >= 0.0f) || !isfinite(w->scales[r]))
                return FAIL_ARG("%s: scales[%lld] = %g must be finite and >= 0", fn, (long long)r,
                                (double)w->scales[r]);
    }
    return ISTHMUS_OK;
}

/* Complete validation of an exchange-format matrix; on success *count = stored values. */
static isthmus_status check_matrix(const char *fn, const isthmus_sparse_matrix *w, int64_t *count) {
    CHECK_PTR(w, "w");
    CHECK_POS(w->n, "w->n");
    CHECK_POS(w->k, "w->k");
    if (w->k > ISTHMUS_GEMM_MAX_K)
        return FAIL_ARG("%s: k = %lld exceeds ISTHMUS_GEMM_MAX_K = %d (int32 accumulators must stay exact)",
                        fn, (long long)w->k, ISTHMUS_GEMM_MAX_K);
    if (!isthmus__extent_ok(w->n, w->k))
        return FAIL_ARG("%s: n x k = %lld x %lld is too large", fn, (long long)w->n, (long long)w->k);
    if (w->dtype != ISTHMUS_DTYPE_F32 && w->dtype != ISTHMUS_DTYPE_S8)
        return FAIL_ARG("%s: dtype = %d, must be ISTHMUS_DTYPE_F32 (0) or ISTHMUS_DTYPE_S8 (1)", fn, w->dtype);
    CHECK_PTR(w->values, "w->values");
    if (w->dtype == ISTHMUS_DTYPE_S8) CHECK_PTR(w->scales, "w->scales (S8 needs one scale per row)");
    else if (w->scales != NULL) return FAIL_ARG("%s: scales must be NULL for F32 values", fn);
    isthmus_status st;
    switch (w->format) {
    case ISTHMUS_SPARSE_CSR:
        CHECK_PTR(w->row_ptr, "w->row_ptr");
        if (w->nnz < 0 || w->nnz > w->n * w->k)
            return FAIL_ARG("%s: nnz = %lld, must be in [0, n * k = %lld]", fn, (long long)w->nnz,
                            (long long)(w->n * w->k));
        if (w->nnz > 0) CHECK_PTR(w->col_idx, "w->col_idx");
        if ((st = check_rows(fn, "row", w->row_ptr, w->col_idx, w->n, w->k, w->nnz))) return st;
        *count = w->nnz;
        break;
    case ISTHMUS_SPARSE_BSR: {
        int32_t br = w->block_rows, bc = w->block_cols;
        if (!block_shape_ok(br, bc))
            return FAIL_ARG("%s: BSR block %dx%d: supported blocks are 1x4, 1x8 and 4x4", fn, br, bc);
        if (w->n % br || w->k % bc)
            return FAIL_ARG("%s: BSR %dx%d needs n %% %d == 0 and k %% %d == 0, got n = %lld, k = %lld", fn,
                            br, bc, br, bc, (long long)w->n, (long long)w->k);
        int64_t rows = w->n / br, cols = w->k / bc;
        CHECK_PTR(w->row_ptr, "w->row_ptr");
        if (w->nnz < 0 || w->nnz > rows * cols)
            return FAIL_ARG("%s: nnz = %lld blocks, must be in [0, %lld]", fn, (long long)w->nnz,
                            (long long)(rows * cols));
        if (w->nnz > 0) CHECK_PTR(w->col_idx, "w->col_idx");
        if ((st = check_rows(fn, "block row", w->row_ptr, w->col_idx, rows, cols, w->nnz))) return st;
        *count = w->nnz * br * bc;
        break;
    }
    case ISTHMUS_SPARSE_2_4: {
        if (w->k % 4)
            return FAIL_ARG("%s: 2:4 needs k %% 4 == 0 (whole groups of 4 along K), got k = %lld: pad W and "
                            "X with zero columns", fn, (long long)w->k);
        CHECK_PTR(w->meta, "w->meta");
        int64_t words = (w->k + 15) / 16, groups = w->k / 4;
        for (int64_t r = 0; r < w->n; r++) {
            const uint16_t *m = w->meta + r * words;
            for (int64_t g = 0; g < groups; g++) {
                unsigned f = (m[g >> 2] >> (4 * (g & 3))) & 15u, i0 = f & 3u, i1 = f >> 2;
                if (i0 >= i1)
                    return FAIL_ARG("%s: 2:4 row %lld group %lld: metadata 0x%x gives indices %u, %u; they "
                                    "must be increasing (i0 < i1)", fn, (long long)r, (long long)g, f, i0, i1);
            }
            if (groups & 3) {
                unsigned rest = m[groups >> 2] >> (4 * (groups & 3));
                if (rest)
                    return FAIL_ARG("%s: 2:4 row %lld: unused metadata bits of the last word are 0x%x, must "
                                    "be 0", fn, (long long)r, rest);
            }
        }
        *count = w->n * (w->k / 2);
        break;
    }
    default:
        return FAIL_ARG("%s: format = %d, must be ISTHMUS_SPARSE_CSR (0), BSR (1) or 2_4 (2)", fn, w->format);
    }
    return check_values(fn, w, *count);
}

static isthmus_op op_of(int32_t format) {
    return format == ISTHMUS_SPARSE_2_4 ? ISTHMUS_OP_SPMM_24 : ISTHMUS_OP_SPMM_BSR;
}

static isthmus_status pack_kernel(const char *fn, const isthmus_sparse_matrix *w, const SPMM_kernel **out) {
    int32_t isa = isthmus__isa_active();
    const SPMM_kernel *k = isthmus__kernel(op_of(w->format), isa);
    if (k == NULL)
        return isthmus__fail(ISTHMUS_ERR_INTERNAL, "%s: no %s kernel for isa %s", fn, format_name(w->format),
                             isthmus_isa_name(isa));
    *out = k;
    return ISTHMUS_OK;
}

isthmus_status isthmus_sparse_packed_size(const isthmus_sparse_matrix *w, int64_t *bytes) {
    isthmus__clear_error();
    const char *fn = __func__;
    CHECK_PTR(bytes, "bytes");
    *bytes = 0;
    int64_t count;
    isthmus_status st = check_matrix(fn, w, &count);
    if (st) return st;
    const SPMM_kernel *k = NULL;
    if ((st = pack_kernel(fn, w, &k))) return st;
    int64_t b = k->packed_size(w);
    if (b <= 0) return FAIL_ARG("%s: the packed size of this %s matrix overflows", fn, format_name(w->format));
    *bytes = b;
    return ISTHMUS_OK;
}

isthmus_status isthmus_sparse_pack(const isthmus_sparse_matrix *w, void *packed, int64_t packed_size) {
    isthmus__clear_error();
    const char *fn = __func__;
    int64_t count;
    isthmus_status st = check_matrix(fn, w, &count);
    if (st) return st;
    CHECK_PTR(packed, "packed");
    if ((uintptr_t)packed % 64)
        return FAIL_ARG("%s: packed = %p is not 64-byte aligned", fn, packed);
    const SPMM_kernel *k = NULL;
    if ((st = pack_kernel(fn, w, &k))) return st;
    int64_t need = k->packed_size(w);
    if (need <= 0) return FAIL_ARG("%s: the packed size of this %s matrix overflows", fn, format_name(w->format));
    if (packed_size < need)
        return FAIL_ARG("%s: packed_size = %lld bytes, this matrix needs %lld (isthmus_sparse_packed_size)", fn,
                        (long long)packed_size, (long long)need);
    k->pack(w, (sparse_hdr *)packed);
    ((sparse_hdr *)packed)->check = sparse_header_hash(packed);
    return ISTHMUS_OK;
}

static isthmus_status check_packed(const char *fn, const void *packed, const sparse_hdr **out) {
    CHECK_PTR(packed, "packed");
    const sparse_hdr *h = packed;
    if (h->magic != SPARSE_MAGIC || h->version != SPARSE_VERSION)
        return FAIL_ARG("%s: the buffer does not hold packed sparse weights (bad magic or version): pack "
                        "with isthmus_sparse_pack", fn);
    /* The kernels trust the shape and the section offsets of the header: a header altered since
     * isthmus_sparse_pack wrote it is refused rather than read (the sections' contents are the
     * caller's to keep intact). */
    if (h->check != sparse_header_hash(h))
        return FAIL_ARG("%s: the header of the packed buffer is corrupted (its check does not match): pack "
                        "again", fn);
    if (h->isa < ISTHMUS_ISA_REF || h->isa > ISTHMUS_ISA_AVX512 || h->format < ISTHMUS_SPARSE_CSR ||
        h->format > ISTHMUS_SPARSE_2_4)
        return FAIL_ARG("%s: the header of the packed buffer is corrupted (isa %d, format %d): pack again", fn,
                        h->isa, h->format);
    const SPMM_kernel *k = isthmus__kernel(op_of(h->format), h->isa);
    if (k == NULL)
        return isthmus__fail(ISTHMUS_ERR_UNSUPPORTED, "%s: the weights were packed for %s, which this CPU does "
                             "not support: pack them again here", fn, isthmus_isa_name(h->isa));
    if (!k->header_ok(h))
        return FAIL_ARG("%s: the header of the packed buffer is corrupted (its shape and section offsets "
                        "disagree with what isthmus_sparse_pack writes): pack again", fn);
    *out = h;
    return ISTHMUS_OK;
}

isthmus_status isthmus_sparse_packed_info(const void *packed, isthmus_sparse_info *out) {
    isthmus__clear_error();
    CHECK_PTR(out, "out");
    memset(out, 0, sizeof *out);
    const sparse_hdr *h = NULL;
    isthmus_status st = check_packed(__func__, packed, &h);
    if (st) return st;
    out->n = h->n;
    out->k = h->k;
    out->nnz = h->nnz;
    out->format = h->format;
    out->dtype = h->dtype;
    out->block_rows = h->br;
    out->block_cols = h->bc;
    out->isa = h->isa;
    out->bytes = h->total;
    return ISTHMUS_OK;
}

isthmus_status isthmus_spmm(const isthmus_spmm_args *a) {
    isthmus__clear_error();
    const char *fn = __func__;
    CHECK_PTR(a, "args");
    const sparse_hdr *h = NULL;
    isthmus_status st = check_packed(fn, a->w_packed, &h);
    if (st) return st;
    CHECK_POS(a->m, "m");
    int64_t n = h->n, k = h->k;
    if (!isthmus__extent_ok(a->m, n) || !isthmus__extent_ok(a->m, k))
        return FAIL_ARG("%s: m = %lld is too large", fn, (long long)a->m);
    spmm_problem p = {.m = a->m, .n = n, .k = k, .w = h, .bias = a->bias};
    if (h->dtype == ISTHMUS_DTYPE_F32) {
        CHECK_PTR(a->x, "x (F32 weights take f32 activations)");
        if (a->xq != NULL) return FAIL_ARG("%s: xq must be NULL for F32 weights (pass x)", fn);
        CHECK_LD(a->ldx, k, "ldx");
        if (!isthmus__extent_ok(a->m, a->ldx)) return FAIL_ARG("%s: m x ldx is too large", fn);
        if (a->c != NULL) return FAIL_ARG("%s: c (int32 output) needs S8 weights", fn);
        CHECK_PTR(a->y, "y");
        p.x = a->x;
        p.ldx = a->ldx;
    } else {
        CHECK_PTR(a->xq, "xq (S8 weights take int8 activations, quantized per row)");
        if (a->x != NULL) return FAIL_ARG("%s: x must be NULL for S8 weights (pass xq and x_scales)", fn);
        CHECK_LD(a->ldxq, k, "ldxq");
        if (!isthmus__extent_ok(a->m, a->ldxq)) return FAIL_ARG("%s: m x ldxq is too large", fn);
        p.xq = a->xq;
        p.ldxq = a->ldxq;
        if ((a->y == NULL) == (a->c == NULL))
            return FAIL_ARG("%s: pass exactly one of y (f32 out) and c (int32 out)", fn);
        if (a->c != NULL && a->bias != NULL)
            return FAIL_ARG("%s: bias applies to y only; the int32 output c takes none", fn);
        if (a->y != NULL) CHECK_PTR(a->x_scales, "x_scales");
        p.x_scales = a->x_scales;
    }
    if (a->y != NULL) {
        CHECK_LD(a->ldy, n, "ldy");
        if (!isthmus__extent_ok(a->m, a->ldy)) return FAIL_ARG("%s: m x ldy is too large", fn);
        p.y = a->y;
        p.ldy = a->ldy;
    } else {
        CHECK_LD(a->ldc, n, "ldc");
        if (!isthmus__extent_ok(a->m, a->ldc)) return FAIL_ARG("%s: m x ldc is too large", fn);
        p.c = a->c;
        p.ldc = a->ldc;
    }
    int32_t active = isthmus__isa_active();
    if (h->isa > active)
        return isthmus__fail(ISTHMUS_ERR_UNSUPPORTED,
                             "%s: the weights were packed for %s but the active ISA is %s (cap or CPU): pack "
                             "them again under the active ISA", fn, isthmus_isa_name(h->isa),
                             isthmus_isa_name(active));
    const SPMM_kernel *kern = isthmus__kernel(op_of(h->format), h->isa);
    if (kern == NULL)
        return isthmus__fail(ISTHMUS_ERR_INTERNAL, "%s: no %s kernel for %s", fn, format_name(h->format),
                             isthmus_isa_name(h->isa));
    return kern->run(&p);
}
