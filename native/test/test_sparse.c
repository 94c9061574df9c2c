/*
 * CSR + BSR sparse matmul (isthmus_spmm): every ISA variant, packed under its own cap through the public
 * ABI, against a reference computed from the dense pruned matrix.
 *
 *  F32: |y - y_ref| <= 2 * nnz_row * 2^-24 * sum_k |w x| + 1e-30 (the bound isthmus.h states for the
 *       sum) + 2^-24 * (|y_ref| + |bias|) (one rounding for the bias add), y_ref in double;
 *       nnz_row = the values stored for the row (zeros inside a stored block count).
 *  S8:  the int32 output c equals the exact sum; y equals fmaf((float)acc, sx * sw, 0) (+ bias)
 *       computed here from the exact sum, so every ISA is bit-identical.
 * Outputs are written through strides with sentinel padding (ld > N) that must survive, into guarded
 * buffers; shapes include 1, odd, primes, 4096, deep K (65536 and beyond, up to ISTHMUS_GEMM_MAX_K:
 * 512 panels of panel-local 8-bit columns, 16-bit BSR block columns), sparsities 0 .. 100% (empty rows,
 * nnz = 0), single-nonzero rows.
 */
#include "harness.h"

#include <math.h>

typedef struct spcase {
    int64_t m, n, k;
    int32_t format, dtype, br, bc;
    double sparsity;
    int bias;
    int64_t ldx, ldy;
    /* dense pruned W */
    float *wf;
    int8_t *wq;
    float *scales;
    /* exchange format */
    int64_t nnz, *row_ptr;
    int32_t *col_idx;
    void *values;
    int64_t *stored; /* values stored per output row */
    /* activations */
    float *x, *bias_v, *x_scales;
    int8_t *xq;
} spcase;

#define SENT_F 1234.5f
#define SENT_I 0x5a5a5a5a

/* keep[R][C] block mask: each block kept with probability 1 - sparsity; rows (block rows) with id
 * % 7 == 3 keep exactly one block, id % 11 == 5 none. */
static void make_case(spcase *c, int64_t m, int64_t n, int64_t k, int32_t format, int32_t br, int32_t bc,
                      int32_t dtype, double sparsity, int bias, uint64_t seed) {
    memset(c, 0, sizeof *c);
    t_seed = seed;
    uint64_t s = seed;
    if (format == ISTHMUS_SPARSE_CSR) br = bc = 1;
    c->m = m; c->n = n; c->k = k; c->format = format; c->dtype = dtype; c->br = br; c->bc = bc;
    c->sparsity = sparsity; c->bias = bias;
    c->ldx = k + (int64_t)(seed % 3);
    c->ldy = n + 1 + (int64_t)(seed % 4);
    int64_t R = n / br, C = k / bc;
    uint8_t *keep = calloc((size_t)(R * C), 1);
    for (int64_t r = 0; r < R; r++) {
        int special = sparsity > 0.0 && sparsity < 1.0 && R > 4 ? (r % 7 == 3 ? 1 : r % 11 == 5 ? 2 : 0) : 0;
        if (special == 1) keep[r * C + (int64_t)(rng_next(&s) % (uint64_t)C)] = 1;
        if (special) continue;
        for (int64_t q = 0; q < C; q++) keep[r * C + q] = rng_unit(&s) >= sparsity;
    }
    if (dtype == ISTHMUS_DTYPE_F32) c->wf = calloc((size_t)(n * k), 4);
    else {
        c->wq = calloc((size_t)(n * k), 1);
        c->scales = galloc(4 * (size_t)n);
        for (int64_t j = 0; j < n; j++) c->scales[j] = rng_f32(&s, 0.001f, 0.05f);
    }
    c->nnz = 0;
    for (int64_t i = 0; i < R * C; i++) c->nnz += keep[i];
    int64_t bs = br * bc;
    c->row_ptr = galloc(8 * (size_t)(R + 1));
    c->col_idx = galloc(4 * (size_t)(c->nnz ? c->nnz : 1));
    c->values = galloc((size_t)((c->nnz ? c->nnz : 1) * bs * (dtype == ISTHMUS_DTYPE_F32 ? 4 : 1)));
    c->stored = calloc((size_t)n, 8);
    int64_t b = 0;
    for (int64_t r = 0; r < R; r++) {
        c->row_ptr[r] = b;
        for (int64_t q = 0; q < C; q++) {
            if (!keep[r * C + q]) continue;
            c->col_idx[b] = (int32_t)q;
            for (int64_t i = 0; i < br; i++)
                for (int64_t jj = 0; jj < bc; jj++) {
                    int64_t row = r * br + i, col = q * bc + jj, e = b * bs + i * bc + jj;
                    if (dtype == ISTHMUS_DTYPE_F32) {
                        float w = rng_unit(&s) < 0.05 ? 0.0f : rng_f32(&s, -1.0f, 1.0f);
                        c->wf[row * k + col] = w;
                        ((float *)c->values)[e] = w;
                    } else {
                        int8_t w = rng_s8(&s);
                        c->wq[row * k + col] = w;
                        ((int8_t *)c->values)[e] = w;
                    }
                    c->stored[row]++;
                }
            b++;
        }
    }
    c->row_ptr[R] = b;
    free(keep);
    if (dtype == ISTHMUS_DTYPE_F32) {
        c->x = galloc(4 * (size_t)(m * c->ldx));
        for (int64_t i = 0; i < m * c->ldx; i++) c->x[i] = rng_f32(&s, -2.0f, 2.0f);
    } else {
        c->xq = galloc((size_t)(m * c->ldx));
        for (int64_t i = 0; i < m * c->ldx; i++) c->xq[i] = (int8_t)(rng_next(&s) & 0xff); /* -128 included */
        c->x_scales = galloc(4 * (size_t)m);
        for (int64_t i = 0; i < m; i++) c->x_scales[i] = rng_f32(&s, 0.001f, 0.05f);
    }
    if (bias) {
        c->bias_v = galloc(4 * (size_t)n);
        for (int64_t j = 0; j < n; j++) c->bias_v[j] = rng_f32(&s, -2.0f, 2.0f);
    }
}

static void drop_case(spcase *c) {
    free(c->wf); free(c->wq); free(c->stored);
    gfree(c->scales); gfree(c->row_ptr); gfree(c->col_idx); gfree(c->values);
    gfree(c->x); gfree(c->xq); gfree(c->x_scales); gfree(c->bias_v);
}

static isthmus_sparse_matrix matrix_of(const spcase *c) {
    isthmus_sparse_matrix w = {c->n, c->k, c->format, c->dtype, c->br, c->bc, c->nnz, c->row_ptr, c->col_idx,
                               c->values, NULL, c->scales};
    return w;
}

static void *pack_case(const spcase *c) {
    isthmus_sparse_matrix w = matrix_of(c);
    int64_t bytes = 0;
    isthmus_status st = isthmus_sparse_packed_size(&w, &bytes);
    CHECK(st == ISTHMUS_OK && bytes > 0, "packed_size: %d %s", st, isthmus_last_error());
    if (st != ISTHMUS_OK) return NULL;
    void *packed = galloc((size_t)bytes);
    CHECK_OK(isthmus_sparse_pack(&w, packed, bytes));
    isthmus_sparse_info info;
    CHECK_OK(isthmus_sparse_packed_info(packed, &info));
    CHECK(info.n == c->n && info.k == c->k && info.nnz == c->nnz * c->br * c->bc && info.isa == isthmus_isa() &&
          info.bytes == bytes && info.format == c->format && info.dtype == c->dtype,
          "packed info");
    return packed;
}

/* Runs the case on the active ISA; returns y (f32 or S8 y) and, for S8, also checks c. */
static float *run_case(const spcase *c, const void *packed, int with_c) {
    float *y = galloc(4 * (size_t)(c->m * c->ldy));
    for (int64_t i = 0; i < c->m * c->ldy; i++) y[i] = SENT_F;
    isthmus_spmm_args a = {.m = c->m, .w_packed = packed, .bias = c->bias_v, .y = y, .ldy = c->ldy};
    if (c->dtype == ISTHMUS_DTYPE_F32) { a.x = c->x; a.ldx = c->ldx; }
    else { a.xq = c->xq; a.ldxq = c->ldx; a.x_scales = c->x_scales; }
    CHECK_OK(isthmus_spmm(&a));
    for (int64_t i = 0; i < c->m; i++)
        for (int64_t j = c->n; j < c->ldy; j++)
            if (y[i * c->ldy + j] != SENT_F) { CHECK(0, "y padding [%lld,%lld] written", (long long)i, (long long)j); i = c->m; break; }
    CHECK(gcheck(y), "y guard");
    if (c->dtype == ISTHMUS_DTYPE_S8 && with_c) {
        int32_t *cc = galloc(4 * (size_t)(c->m * c->ldy));
        for (int64_t i = 0; i < c->m * c->ldy; i++) cc[i] = SENT_I;
        isthmus_spmm_args b = {.m = c->m, .xq = c->xq, .ldxq = c->ldx, .w_packed = packed, .c = cc, .ldc = c->ldy};
        CHECK_OK(isthmus_spmm(&b));
        long bad = 0;
        for (int64_t i = 0; i < c->m; i++) {
            for (int64_t j = 0; j < c->n; j++) {
                int64_t acc = 0;
                for (int64_t kk = 0; kk < c->k; kk++) acc += (int64_t)c->wq[j * c->k + kk] * c->xq[i * c->ldx + kk];
                if (cc[i * c->ldy + j] != acc && bad++ < 3)
                    CHECK(0, "c[%lld,%lld] = %d, want %lld", (long long)i, (long long)j, cc[i * c->ldy + j], (long long)acc);
            }
            for (int64_t j = c->n; j < c->ldy; j++)
                if (cc[i * c->ldy + j] != SENT_I && bad++ < 3) CHECK(0, "c padding written");
        }
        CHECK(bad == 0 && gcheck(cc), "int32 out: %ld bad", bad);
        gfree(cc);
    }
    return y;
}

/* y against the dense reference. */
static void check_y(const spcase *c, const float *y) {
    long bad = 0;
    for (int64_t i = 0; i < c->m && bad < 4; i++)
        for (int64_t j = 0; j < c->n; j++) {
            float got = y[i * c->ldy + j];
            double bias = c->bias_v ? c->bias_v[j] : 0.0;
            if (c->dtype == ISTHMUS_DTYPE_F32) {
                double sum = 0, S = 0;
                const float *w = c->wf + j * c->k, *x = c->x + i * c->ldx;
                for (int64_t kk = 0; kk < c->k; kk++) { double p = (double)w[kk] * x[kk]; sum += p; S += fabs(p); }
                double want = sum + bias;
                double bound = 2.0 * (double)c->stored[j] * 0x1.0p-24 * S + 1e-30 + 0x1.0p-24 * (fabs(want) + fabs(bias));
                if (!(fabs(got - want) <= bound) && bad++ < 3)
                    CHECK(0, "y[%lld,%lld] = %.9g, want %.9g (bound %.3g, nnz_row %lld)", (long long)i, (long long)j, got, want, bound, (long long)c->stored[j]);
            } else {
                int64_t acc = 0;
                const int8_t *w = c->wq + j * c->k, *x = c->xq + i * c->ldx;
                for (int64_t kk = 0; kk < c->k; kk++) acc += (int64_t)w[kk] * x[kk];
                float want = fmaf((float)(int32_t)acc, c->x_scales[i] * c->scales[j], 0.0f);
                if (c->bias_v) want = want + c->bias_v[j];
                if (memcmp(&got, &want, 4) != 0 && bad++ < 3)
                    CHECK(0, "S8 y[%lld,%lld] = %.9g, want %.9g (acc %lld)", (long long)i, (long long)j, got, want, (long long)acc);
            }
        }
    CHECK(bad == 0, "%ld bad (M=%lld N=%lld K=%lld fmt %d %dx%d dtype %d sparsity %.2f)", bad, (long long)c->m,
          (long long)c->n, (long long)c->k, c->format, c->br, c->bc, c->dtype, c->sparsity);
}

/* Every ISA: pack under its cap, run, check; S8 y bit-identical across ISAs. */
static void check_all(int64_t m, int64_t n, int64_t k, int32_t format, int32_t br, int32_t bc, int32_t dtype,
                      double sparsity, int bias, uint64_t seed) {
    spcase c;
    make_case(&c, m, n, k, format, br, bc, dtype, sparsity, bias, seed);
    float *y0 = NULL;
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        void *packed = pack_case(&c);
        if (!packed) continue;
        float *y = run_case(&c, packed, 1);
        check_y(&c, y);
        if (y0 && dtype == ISTHMUS_DTYPE_S8)
            for (int64_t i = 0; i < m; i++)
                if (memcmp(y + i * c.ldy, y0 + i * c.ldy, 4 * (size_t)n) != 0) { CHECK(0, "S8 y differs from ref"); break; }
        if (!y0) y0 = y;
        else gfree(y);
        gfree(packed);
    }
    gfree(y0);
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
    drop_case(&c);
}

static const double SP[] = {0.0, 0.5, 0.7, 0.9, 0.99, 1.0};
static const int64_t MS[] = {1, 2, 3, 5, 8, 16, 17, 33, 128, 300};
typedef struct fmt { int32_t format, br, bc; } fmt;
static const fmt FMTS[] = {{ISTHMUS_SPARSE_CSR, 1, 1}, {ISTHMUS_SPARSE_BSR, 1, 4}, {ISTHMUS_SPARSE_BSR, 1, 8}, {ISTHMUS_SPARSE_BSR, 4, 4}};

/* M sweep x every format x both dtypes x sparsities on odd / prime shapes. */
static void sweep(void) {
    uint64_t seed = t_seed;
    for (int f = 0; f < 4; f++)
        for (int dt = 0; dt < 2; dt++)
            for (int mi = 0; mi < 10; mi++) {
                int64_t m = MS[mi];
                /* N multiple of br, K multiple of bc; otherwise odd / prime */
                int64_t n = FMTS[f].br == 4 ? 4 * (5 + mi) : 37 + 2 * mi, k = FMTS[f].bc * (13 + 7 * mi);
                if (m >= 128) { n = FMTS[f].br == 4 ? 12 : 7; }
                check_all(m, n, k, FMTS[f].format, FMTS[f].br, FMTS[f].bc, dt, SP[(mi + f) % 6], (mi + dt) & 1, seed++);
            }
}

static void sparsities(void) {
    uint64_t seed = t_seed + 100;
    for (int f = 0; f < 4; f++)
        for (int dt = 0; dt < 2; dt++)
            for (int si = 0; si < 6; si++) {
                check_all(1, 64, 4096, FMTS[f].format, FMTS[f].br, FMTS[f].bc, dt, SP[si], si & 1, seed++);
                check_all(5, 36, 520, FMTS[f].format, FMTS[f].br, FMTS[f].bc, dt, SP[si], !(si & 1), seed++);
                check_all(17, 20, 1000, FMTS[f].format, FMTS[f].br, FMTS[f].bc, dt, SP[si], 1, seed++);
            }
}

static void tiny_shapes(void) {
    uint64_t seed = t_seed + 200;
    for (int dt = 0; dt < 2; dt++) {
        check_all(1, 1, 1, ISTHMUS_SPARSE_CSR, 1, 1, dt, 0.0, 1, seed++);
        check_all(3, 1, 1, ISTHMUS_SPARSE_CSR, 1, 1, dt, 0.0, 0, seed++);
        check_all(2, 1, 97, ISTHMUS_SPARSE_CSR, 1, 1, dt, 0.5, 1, seed++);
        check_all(1, 97, 1, ISTHMUS_SPARSE_CSR, 1, 1, dt, 0.5, 1, seed++);
        check_all(1, 4, 4, ISTHMUS_SPARSE_BSR, 4, 4, dt, 0.0, 1, seed++);
        check_all(2, 1, 8, ISTHMUS_SPARSE_BSR, 1, 8, dt, 0.0, 0, seed++);
        check_all(33, 4096, 8, ISTHMUS_SPARSE_BSR, 1, 4, dt, 0.5, 1, seed++);
        check_all(9, 3, 4096, ISTHMUS_SPARSE_CSR, 1, 1, dt, 0.9, 1, seed++);
    }
}

/* Deep K: 65536 (the old 16-bit column limit), past it, and ISTHMUS_GEMM_MAX_K, where the packed layout
 * needs its full panel range; a nonzero in the very last column. */
static void deep_k(void) {
    uint64_t seed = t_seed + 300;
    const int64_t ks[] = {65536, 65537, 131071, ISTHMUS_GEMM_MAX_K};
    for (int i = 0; i < 4; i++)
        for (int dt = 0; dt < 2; dt++) {
            check_all(1, 3, ks[i], ISTHMUS_SPARSE_CSR, 1, 1, dt, 0.7, 1, seed++);
            check_all(3, 2, ks[i], ISTHMUS_SPARSE_CSR, 1, 1, dt, 0.9, 0, seed++);
        }
    check_all(2, 4, ISTHMUS_GEMM_MAX_K, ISTHMUS_SPARSE_BSR, 4, 4, ISTHMUS_DTYPE_S8, 0.9, 1, seed++);
    check_all(1, 2, ISTHMUS_GEMM_MAX_K, ISTHMUS_SPARSE_BSR, 1, 8, ISTHMUS_DTYPE_F32, 0.5, 1, seed++);
    /* a nonzero in the very last column of both layouts */
    for (int i = 0; i < 2; i++) {
        int64_t k = i ? 65537 : 65536;
        int64_t rp[2] = {0, 2};
        int32_t ci[2] = {0, (int32_t)(k - 1)};
        float v[2] = {1.5f, -2.0f};
        isthmus_sparse_matrix w = {1, k, ISTHMUS_SPARSE_CSR, ISTHMUS_DTYPE_F32, 0, 0, 2, rp, ci, v, NULL, NULL};
        float *x = galloc(4 * (size_t)(2 * k));
        for (int64_t q = 0; q < 2 * k; q++) x[q] = 0.0f;
        x[0] = x[k] = 3.0f; x[k - 1] = x[2 * k - 1] = 5.0f;
        for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
            isthmus_set_isa_cap(isa);
            int64_t bytes = 0;
            CHECK_OK(isthmus_sparse_packed_size(&w, &bytes));
            void *packed = galloc((size_t)bytes);
            CHECK_OK(isthmus_sparse_pack(&w, packed, bytes));
            for (int m = 1; m <= 2; m++) {
                float y[2] = {0, 0};
                isthmus_spmm_args a = {.m = m, .x = x, .ldx = k, .w_packed = packed, .y = y, .ldy = 1};
                CHECK_OK(isthmus_spmm(&a));
                CHECK(y[0] == 1.5f * 3.0f - 10.0f && (m == 1 || y[1] == y[0]), "K=%lld last column: y = %g", (long long)k, y[0]);
            }
            gfree(packed);
        }
        gfree(x);
    }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
}

/* All +-127 weights, xq at 127, -127, -128, K = ISTHMUS_GEMM_MAX_K, dense (0% sparsity): int32 exact,
 * no overflow or int16 saturation. */
static void extremes(void) {
    const int xv[] = {127, -127, -128};
    for (int e = 0; e < 3; e++)
        for (int sign = -1; sign <= 1; sign += 2)
            for (int f = 0; f < 4; f += 3) {
                spcase c;
                make_case(&c, 2, 4, ISTHMUS_GEMM_MAX_K, FMTS[f].format, FMTS[f].br, FMTS[f].bc, ISTHMUS_DTYPE_S8, 0.0, 0, t_seed + (uint64_t)e);
                for (int64_t i = 0; i < c.nnz * c.br * c.bc; i++) ((int8_t *)c.values)[i] = (int8_t)(127 * sign);
                for (int64_t i = 0; i < c.n * c.k; i++) c.wq[i] = (int8_t)(127 * sign);
                for (int64_t i = 0; i < c.m * c.ldx; i++) c.xq[i] = (int8_t)xv[e];
                for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
                    isthmus_set_isa_cap(isa);
                    void *packed = pack_case(&c);
                    for (int m = 1; m <= 2; m++) {
                        int32_t out[2 * 4];
                        isthmus_spmm_args a = {.m = m, .xq = c.xq, .ldxq = c.ldx, .w_packed = packed, .c = out, .ldc = 4};
                        CHECK_OK(isthmus_spmm(&a));
                        for (int i = 0; i < 4 * m; i++)
                            CHECK(out[i] == xv[e] * 127 * sign * ISTHMUS_GEMM_MAX_K, "x=%d w=%d: c = %d", xv[e], 127 * sign, out[i]);
                    }
                    float *y = run_case(&c, packed, 0);
                    check_y(&c, y);
                    gfree(y);
                    gfree(packed);
                }
                drop_case(&c);
            }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
}

/* isthmus_set_num_threads 1 vs 2 (and 3): bit-identical y on every ISA. */
static void thread_invariance(void) {
    uint64_t seed = t_seed + 400;
    for (int f = 0; f < 4; f++)
        for (int dt = 0; dt < 2; dt++)
            for (int mi = 0; mi < 3; mi++) {
                int64_t m = mi == 0 ? 1 : mi == 1 ? 8 : 40;
                spcase c;
                make_case(&c, m, 256, 512, FMTS[f].format, FMTS[f].br, FMTS[f].bc, dt, 0.8, 1, seed++);
                for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
                    isthmus_set_isa_cap(isa);
                    void *packed = pack_case(&c);
                    isthmus_set_num_threads(1);
                    float *y1 = run_case(&c, packed, 0);
                    isthmus_set_num_threads(2);
                    float *y2 = run_case(&c, packed, 0);
                    isthmus_set_num_threads(3);
                    float *y3 = run_case(&c, packed, 0);
                    CHECK(memcmp(y1, y2, 4 * (size_t)(m * c.ldy)) == 0 && memcmp(y1, y3, 4 * (size_t)(m * c.ldy)) == 0,
                          "thread count changes y (fmt %d dtype %d M %lld)", f, dt, (long long)m);
                    check_y(&c, y1);
                    gfree(y1); gfree(y2); gfree(y3); gfree(packed);
                }
                drop_case(&c);
            }
    isthmus_set_num_threads(0);
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
}

/* Malformed matrices are refused through the public entries; packed-for-a-higher-ISA is refused. */
static void malformed(void) {
    spcase c;
    make_case(&c, 3, 12, 40, ISTHMUS_SPARSE_CSR, 1, 1, ISTHMUS_DTYPE_S8, 0.5, 0, t_seed + 500);
    isthmus_sparse_matrix w = matrix_of(&c), b;
    int64_t bytes = 0;
    CHECK_OK(isthmus_sparse_packed_size(&w, &bytes));
    void *buf = galloc((size_t)bytes);
    /* find a row with >= 2 entries */
    int64_t r = 0;
    while (c.row_ptr[r + 1] - c.row_ptr[r] < 2) r++;
    int64_t i0 = c.row_ptr[r];
    int32_t save = c.col_idx[i0];
    c.col_idx[i0] = c.col_idx[i0 + 1]; /* duplicate / unsorted */
    int64_t nb = 1;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &nb), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(nb == 0, "failed packed_size leaves 0");
    c.col_idx[i0] = c.col_idx[i0 + 1] + 1;
    CHECK_FAILS(isthmus_sparse_pack(&w, buf, bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    c.col_idx[i0] = 40; /* out of range */
    CHECK_FAILS(isthmus_sparse_pack(&w, buf, bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    c.col_idx[i0] = -1;
    CHECK_FAILS(isthmus_sparse_pack(&w, buf, bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    c.col_idx[i0] = save;
    int64_t rs = c.row_ptr[1];
    c.row_ptr[1] = c.row_ptr[2] + 1; /* decreasing row_ptr */
    CHECK_FAILS(isthmus_sparse_pack(&w, buf, bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    c.row_ptr[1] = rs;
    b = w; b.nnz = w.nnz + 1; /* last row_ptr != nnz */
    CHECK_FAILS(isthmus_sparse_pack(&b, buf, bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    int8_t sv = ((int8_t *)c.values)[i0];
    ((int8_t *)c.values)[i0] = -128;
    CHECK_FAILS(isthmus_sparse_pack(&w, buf, bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    ((int8_t *)c.values)[i0] = sv;
    b = w; b.format = ISTHMUS_SPARSE_BSR; b.block_rows = 2; b.block_cols = 2;
    CHECK_FAILS(isthmus_sparse_pack(&b, buf, bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_sparse_pack(&w, buf, bytes - 1), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_OK(isthmus_sparse_pack(&w, buf, bytes));
    /* spmm argument checks hold */
    int32_t out[3 * 12];
    float y[3 * 12];
    isthmus_spmm_args ok = {.m = 3, .xq = c.xq, .ldxq = c.ldx, .w_packed = buf, .c = out, .ldc = 12}, a;
    CHECK_OK(isthmus_spmm(&ok));
    a = ok; a.y = y; a.ldy = 12; CHECK_FAILS(isthmus_spmm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); /* both outputs */
    a = ok; a.ldxq = 39; CHECK_FAILS(isthmus_spmm(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.w_packed = c.x_scales; CHECK_FAILS(isthmus_spmm(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    if (isthmus_isa_supported() >= ISTHMUS_ISA_AVX512) {
        isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
        CHECK_OK(isthmus_sparse_pack(&w, buf, bytes));
        isthmus_set_isa_cap(ISTHMUS_ISA_AVX2);
        CHECK_FAILS(isthmus_spmm(&ok), ISTHMUS_ERR_UNSUPPORTED);
        isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
        CHECK_OK(isthmus_spmm(&ok));
    }
    gfree(buf);
    drop_case(&c);
}

/* The decode / prefill shapes of the benchmark, smaller N: 4096-deep rows at 90% on every ISA. */
static void bench_shapes(void) {
    uint64_t seed = t_seed + 600;
    for (int f = 0; f < 4; f++)
        for (int dt = 0; dt < 2; dt++) {
            check_all(8, 16, 4096, FMTS[f].format, FMTS[f].br, FMTS[f].bc, dt, 0.9, 1, seed++);
            check_all(128, 8, 4096, FMTS[f].format, FMTS[f].br, FMTS[f].bc, dt, 0.7, 0, seed++);
        }
}

/* The bitmap walk (CSR f32 at M = 1 on AVX-512, rows holding >= K / 5 values, bsr.h): densities 100 / 50
 * / 30 / 20 (the threshold: rows fall on both sides of it) / 12.5 / 10 / 0%, with the single-entry and
 * empty rows of make_case below it in the same matrix; K = 1, around multiples of 16 and 64 (tail
 * masks), and deep K. */
static void bitmap_rows(void) {
    uint64_t seed = t_seed + 700;
    const double sp[] = {0.0, 0.5, 0.7, 0.8, 0.875, 0.9, 1.0};
    const int64_t ks[] = {1, 2, 15, 16, 17, 63, 64, 65, 200, 1000, 4096};
    for (int si = 0; si < 7; si++)
        for (int ki = 0; ki < 11; ki++)
            check_all(1, 29, ks[ki], ISTHMUS_SPARSE_CSR, 1, 1, ISTHMUS_DTYPE_F32, sp[si], (si + ki) & 1, seed++);
    check_all(1, 3, 65537, ISTHMUS_SPARSE_CSR, 1, 1, ISTHMUS_DTYPE_F32, 0.7, 1, seed++);
    check_all(1, 2, ISTHMUS_GEMM_MAX_K, ISTHMUS_SPARSE_CSR, 1, 1, ISTHMUS_DTYPE_F32, 0.5, 0, seed++);
    /* the same packed matrices at M > 1 (the X^T path reads the indices, not the bitmap) */
    check_all(3, 29, 1000, ISTHMUS_SPARSE_CSR, 1, 1, ISTHMUS_DTYPE_F32, 0.8, 1, seed++);
    check_all(20, 29, 65, ISTHMUS_SPARSE_CSR, 1, 1, ISTHMUS_DTYPE_F32, 0.5, 0, seed++);
}

/* Regression (fuzz_sparse, corpus/sparse/regression-bitmap-unstored-nan): the AVX-512 bitmap walk of
 * dense CSR f32 rows multiplied the zero of every column the row does not store by x, so an infinite or
 * NaN x[c] in such a column made y NaN. y sums w * x over the stored values only, on every ISA and path. */
static void unstored_nonfinite_x(void) {
    const int64_t n = 4, k = 128;
    int64_t row_ptr[5], nnz = 0;
    int32_t col_idx[4 * 128];
    float vals[4 * 128], x[3 * 128], y[3 * 4];
    uint64_t s = t_seed + 900;
    row_ptr[0] = 0;
    for (int64_t r = 0; r < n; r++) {
        for (int64_t c = 0; c < k; c++)
            if (c % 5 != 0) col_idx[nnz] = (int32_t)c, vals[nnz++] = rng_f32(&s, -1.0f, 1.0f);
        row_ptr[r + 1] = nnz;
    }
    for (int64_t i = 0; i < 3 * k; i++) x[i] = rng_f32(&s, -1.0f, 1.0f);
    for (int64_t i = 0; i < 3; i++) x[i * k + 5] = INFINITY, x[i * k + 10] = NAN, x[i * k + 125] = -INFINITY;
    isthmus_sparse_matrix w = {n, k, ISTHMUS_SPARSE_CSR, ISTHMUS_DTYPE_F32, 1, 1, nnz, row_ptr, col_idx, vals, NULL, NULL};
    int32_t top = isthmus_isa_supported();
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= top; isa++) {
        isthmus_set_isa_cap(isa);
        int64_t bytes = 0;
        CHECK_OK(isthmus_sparse_packed_size(&w, &bytes));
        void *packed = galloc((size_t)bytes);
        CHECK_OK(isthmus_sparse_pack(&w, packed, bytes));
        for (int64_t m = 1; m <= 3; m += 2) {
            isthmus_spmm_args a = {.m = m, .x = x, .ldx = k, .w_packed = packed, .y = y, .ldy = n};
            CHECK_OK(isthmus_spmm(&a));
            for (int64_t i = 0; i < m; i++)
                for (int64_t r = 0; r < n; r++) {
                    double ref = 0, mag = 0;
                    for (int64_t e = row_ptr[r]; e < row_ptr[r + 1]; e++)
                        ref += (double)vals[e] * x[i * k + col_idx[e]], mag += fabs((double)vals[e] * x[i * k + col_idx[e]]);
                    CHECK(fabs(y[i * n + r] - ref) <= 2.0 * 103 * 0x1p-24 * mag + 1e-30,
                          "isa %d m %lld: y[%lld, %lld] = %g, want %g", isa, (long long)m, (long long)i, (long long)r,
                          (double)y[i * n + r], ref);
                }
        }
        gfree(packed);
    }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
}

/* Regression (fuzz_sparse, corpus/sparse/regression-corrupt-header): the calls checked only magic and
 * version, so a header whose k (or another field) was altered after packing was read as is: a smaller k
 * let the payload's column indices reach past the caller's rows of x, a larger total made the CSR kernel
 * read a bitmap section past the buffer, a flipped isa gave ISTHMUS_ERR_INTERNAL. The header is now
 * sealed with a hash and its geometry re-derived; every flip is refused. */
static void corrupt_header(void) {
    spcase c;
    make_case(&c, 1, 8, 64, ISTHMUS_SPARSE_CSR, 1, 1, ISTHMUS_DTYPE_F32, 0.5, 0, t_seed + 901);
    void *packed = pack_case(&c);
    isthmus_sparse_info info;
    CHECK_OK(isthmus_sparse_packed_info(packed, &info));
    uint8_t *bad = galloc((size_t)info.bytes);
    float y[64];
    for (int off = 0; off < 136; off++)
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(bad, packed, (size_t)info.bytes);
            bad[off] ^= (uint8_t)(1u << bit);
            isthmus_sparse_info bi;
            isthmus_spmm_args a = {.m = 1, .x = c.x, .ldx = c.ldx, .w_packed = bad, .y = y, .ldy = c.ldy};
            isthmus_status s1 = isthmus_sparse_packed_info(bad, &bi), s2 = isthmus_spmm(&a);
            CHECK((s1 == ISTHMUS_ERR_INVALID_ARGUMENT || s1 == ISTHMUS_ERR_UNSUPPORTED) &&
                  (s2 == ISTHMUS_ERR_INVALID_ARGUMENT || s2 == ISTHMUS_ERR_UNSUPPORTED),
                  "header byte %d bit %d flipped: packed_info %d, spmm %d (%s)", off, bit, s1, s2, isthmus_last_error());
        }
    gfree(bad);
    gfree(packed);
    drop_case(&c);
}

const test_case sparse_tests[] = {
    {"sparse", "sweep", sweep},
    {"sparse", "sparsities", sparsities},
    {"sparse", "tiny_shapes", tiny_shapes},
    {"sparse", "deep_k", deep_k},
    {"sparse", "extremes", extremes},
    {"sparse", "thread_invariance", thread_invariance},
    {"sparse", "malformed", malformed},
    {"sparse", "bench_shapes", bench_shapes},
    {"sparse", "bitmap_rows", bitmap_rows},
    {"sparse", "unstored_nonfinite_x", unstored_nonfinite_x},
    {"sparse", "corrupt_header", corrupt_header},
    {NULL, NULL, NULL},
};
