/* Fuzz target: pruning + sparse formats + SpMM (isthmus_sparse_packed_size, isthmus_sparse_pack,
 * isthmus_sparse_packed_info, isthmus_spmm, isthmus_prune_mask).
 * A matrix is built in CSR, BSR (1x4, 1x8, 4x4) or 2:4, f32 or int8, then sometimes broken the ways the
 * header refuses (column indices out of range, negative, unsorted or duplicate; row_ptr decreasing, not
 * starting at 0, past nnz or disagreeing with it; nnz negative or huge; N or K not divisible by the block;
 * 2:4 groups with i0 >= i1 or stray metadata bits; -128, NaN or negative scales; NULL arrays; bad enums).
 * Valid calls are checked against their contract:
 *  - spmm F32: within 2 (nnz_row + 1) 2^-24 (sum |w x| + |bias|) + 1e-30 of a double reference over the
 *    stored values (NaN where it is NaN; skipped past 1e37, where f32 sums overflow);
 *  - spmm S8: c is the exact int32 sum, y = fmaf((float)acc, x_scales[m] * scales[n], 0) + bias[n] exactly;
 *  - nothing is written outside y / c (row gaps and 64 guard bytes) nor past the packed size;
 *  - prune: mask values 0/1, exactly the documented count removed per row / matrix / group / block, and
 *    no removed weight scores above a kept one of the same competing set (PER_ROW, GLOBAL, N_M).
 * A header byte flipped after packing must be refused by every call. */
#include "fuzz.h"

static void check_guards(const void *out, int64_t m, int64_t n, int64_t ld, size_t es, const char *what) {
    const uint8_t *b = out;
    int ok = fz_untouched(b - FZ_GUARD, FZ_GUARD) && fz_untouched(b + (size_t)(m * ld) * es, FZ_GUARD);
    for (int64_t r = 0; r < m && ok; r++) ok = fz_untouched(b + (size_t)(r * ld + n) * es, (size_t)(ld - n) * es);
    if (!ok) {
        fprintf(stderr, "%s wrote outside its output [%lld, %lld] (ld %lld)\n", what, (long long)m, (long long)n,
                (long long)ld);
        abort();
    }
}
static void fail(const char *msg) {
    fprintf(stderr, "%s\n", msg);
    abort();
}

static const int32_t blocks[][2] = {{1, 4}, {1, 8}, {4, 4}, {1, 4}, {1, 8}, {4, 4}, {2, 4}, {1, 2}};

static void prune(fz_in *in);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    fz_threads(&in);
    int32_t cap = fz_u8(&in) % 3;
    isthmus_set_isa_cap(cap);
    uint8_t fsel = fz_u8(&in);
    int32_t format = fsel % 3, dtype = (fsel >> 2) & 1;
    int bad = 0;
    if (fsel >= 250) format = fsel == 250 ? 3 : -1, bad = 1;
    if (fsel == 249) dtype = 2, bad = 1;
    int32_t br = 1, bc = 1;
    if (format == ISTHMUS_SPARSE_BSR) {
        uint8_t b = fz_u8(&in) % 8;
        br = blocks[b][0], bc = blocks[b][1];
        if (b >= 6) bad = 1;
    }
    int shape_bad = 0;
    int64_t n = fz_size(&in, 16, 4, &shape_bad), k = fz_size(&in, 100, 4, &shape_bad);
    if (shape_bad) bad = 1;
    /* whole blocks / groups unless the input asks otherwise */
    int ragged = fz_u8(&in) < 10;
    if (!shape_bad) {
        int32_t mr = format == ISTHMUS_SPARSE_BSR ? br : 1, mc = format == ISTHMUS_SPARSE_BSR ? bc : format == ISTHMUS_SPARSE_2_4 ? 4 : 1;
        if (!ragged || mr * mc == 1) {
            n = (n + mr - 1) / mr * mr;
            k = (k + mc - 1) / mc * mc;
        } else if (n % mr == 0 && k % mc == 0) {
            k += 1;
        }
        if (n % mr || k % mc) bad = 1;
    }
    int64_t ns = shape_bad ? 1 : n, ks = shape_bad ? 4 : k;
    /* the dense matrix and what is stored */
    uint8_t density = fz_u8(&in);
    float *dv = fz_alloc((size_t)(ns * ks) * 4);
    uint8_t *stored = calloc((size_t)(ns * ks), 1);
    fz_fill_f32(&in, dv, ns * ks);
    int8_t *dq = fz_alloc((size_t)(ns * ks));
    fz_fill_s8(&in, dq, ns * ks);
    uint64_t rs = fz_u64(&in) | 1;
#define RND() (rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17, rs)
    int64_t R = ns / (format == ISTHMUS_SPARSE_BSR ? br : 1), C = ks / (format == ISTHMUS_SPARSE_BSR ? bc : 1);
    if (R < 1) R = 1;
    if (C < 1) C = 1;
    int64_t *row_ptr = fz_alloc((size_t)(R + 1) * 8);
    int32_t *col_idx = fz_alloc((size_t)(R * C + 8) * 4);
    int64_t cap_vals = ns * ks + 64;
    void *values = fz_alloc((size_t)cap_vals * 4);
    int64_t words = (ks + 15) / 16;
    uint16_t *meta = fz_alloc((size_t)(ns * words + 1) * 2);
    float *scales = fz_alloc((size_t)ns * 4);
    fz_fill_f32(&in, scales, ns);
    for (int64_t i = 0; i < ns; i++) scales[i] = fabsf(scales[i]);
    int64_t nnz = 0, count = 0; /* entries / blocks, values */
    if (format == ISTHMUS_SPARSE_2_4 && !bad) {
        static const uint8_t combos[6] = {0 | 1 << 2, 0 | 2 << 2, 0 | 3 << 2, 1 | 2 << 2, 1 | 3 << 2, 2 | 3 << 2};
        memset(meta, 0, (size_t)(ns * words + 1) * 2);
        for (int64_t r = 0; r < n; r++)
            for (int64_t g = 0; g < k / 4; g++) {
                uint8_t f = combos[RND() % 6];
                meta[r * words + g / 4] |= (uint16_t)(f << (4 * (g % 4)));
                for (int t = 0; t < 2; t++) {
                    int64_t c = 4 * g + (t ? f >> 2 : f & 3), vi = r * (k / 2) + 2 * g + t;
                    stored[r * k + c] = 1;
                    if (dtype == ISTHMUS_DTYPE_F32) ((float *)values)[vi] = dv[r * k + c];
                    else ((int8_t *)values)[vi] = dq[r * k + c];
                }
            }
        count = n * (k / 2);
    } else if (!bad) {
        row_ptr[0] = 0;
        for (int64_t r = 0; r < R; r++) {
            for (int64_t c = 0; c < C; c++)
                if ((RND() & 255) < density) {
                    col_idx[nnz] = (int32_t)c;
                    for (int32_t i = 0; i < br; i++)
                        for (int32_t j = 0; j < bc; j++) {
                            int64_t rr = r * br + i, cc = c * bc + j, vi = nnz * br * bc + i * bc + j;
                            stored[rr * k + cc] = 1;
                            if (dtype == ISTHMUS_DTYPE_F32) ((float *)values)[vi] = dv[rr * k + cc];
                            else ((int8_t *)values)[vi] = dq[rr * k + cc];
                        }
                    nnz++;
                }
            row_ptr[r + 1] = nnz;
        }
        count = nnz * br * bc;
    }
    /* one way to break it */
    uint8_t brk = fz_u8(&in);
    const int64_t *rp = row_ptr;
    const int32_t *ci = col_idx;
    const void *vals = values;
    const uint16_t *mt = meta;
    const float *sc = dtype == ISTHMUS_DTYPE_S8 ? scales : NULL;
    int64_t dnnz = nnz;
    if (!bad && brk < 64 && (format != ISTHMUS_SPARSE_2_4 || brk % 16 >= 11)) { /* 2:4 ignores nnz, row_ptr, col_idx */
        int64_t e = nnz > 0 ? (int64_t)(RND() % (uint64_t)nnz) : -1;
        switch (brk % 16) {
        case 0: if (e >= 0) col_idx[e] = (int32_t)C, bad = 1; break;
        case 1: if (e >= 0) col_idx[e] = -1 - (int32_t)(RND() % 3), bad = 1; break;
        case 2: /* unsorted or duplicate: an entry not above its predecessor in the row */
            for (int64_t r = 0; r < R && !bad; r++)
                if (row_ptr[r + 1] - row_ptr[r] >= 2) {
                    int64_t i = row_ptr[r] + 1;
                    col_idx[i] = brk & 16 ? col_idx[i - 1] : col_idx[i - 1] - 1 < 0 ? col_idx[i - 1] : col_idx[i - 1] - 1;
                    bad = 1;
                }
            break;
        case 3: if (R >= 2) row_ptr[1 + RND() % (uint64_t)(R - 1)] = -1, bad = 1; break;
        case 4: if (R >= 2) row_ptr[1 + RND() % (uint64_t)(R - 1)] = nnz + 1, bad = 1; break;
        case 5: row_ptr[0] = 1, bad = 1; break;
        case 6: row_ptr[R] = nnz + 1, bad = 1; break;
        case 7: dnnz = fz_hostile_sizes[1 + RND() % 8], bad = 1; break;
        case 8: dnnz = n * k + 1, bad = 1; break;
        case 9: rp = NULL, bad = 1; break;
        case 10: if (nnz > 0) ci = NULL, bad = 1; break;
        case 11: vals = NULL, bad = 1; break;
        case 12:
            if (dtype == ISTHMUS_DTYPE_S8 && count > 0) ((int8_t *)values)[RND() % (uint64_t)count] = -128, bad = 1;
            break;
        case 13:
            if (dtype == ISTHMUS_DTYPE_S8) scales[RND() % (uint64_t)n] = brk & 16 ? NAN : -1.0f, bad = 1;
            else sc = scales, bad = 1;
            break;
        case 14:
            if (dtype == ISTHMUS_DTYPE_S8) sc = NULL, bad = 1;
            break;
        case 15: /* 2:4: a group with i0 >= i1, or stray bits after the last group; NULL meta */
            if (format == ISTHMUS_SPARSE_2_4) {
                int64_t r = (int64_t)(RND() % (uint64_t)n), g = (int64_t)(RND() % (uint64_t)(k / 4));
                uint16_t *w = &meta[r * words + g / 4];
                static const uint8_t wrong[] = {0, 5, 10, 15, 1, 3 | 1 << 2, 2 | 1 << 2, 3 | 2 << 2};
                *w = (uint16_t)((*w & ~(15u << (4 * (g % 4)))) | (uint16_t)wrong[RND() % 8] << (4 * (g % 4)));
                if ((k / 4) % 4 && (brk & 16)) meta[r * words + words - 1] |= (uint16_t)(1u << 15);
                if (brk & 32) mt = NULL;
                bad = 1;
            }
            break;
        }
    }
    if (format == ISTHMUS_SPARSE_2_4 && !bad && brk >= 64 && brk < 80) { /* stray bits only */
        if ((k / 4) % 4) meta[words - 1] |= (uint16_t)(1u << 15), bad = 1;
    }
    isthmus_sparse_matrix w = {n, k, format, dtype, br, bc, dnnz, rp, ci, vals, mt, sc};
    int64_t bytes = -1;
    isthmus_status st = isthmus_sparse_packed_size(&w, &bytes);
    if (bad) fz_expect_refused(st, "isthmus_sparse_packed_size");
    else fz_check_status(st, "isthmus_sparse_packed_size");
    if (st == ISTHMUS_OK && (bytes < 128 || bytes > ((int64_t)1 << 24))) fail("sparse_packed_size out of range");
    if (st != ISTHMUS_OK && bytes != 0) fail("failed sparse_packed_size left bytes != 0");
    int64_t psize = st == ISTHMUS_OK ? bytes : 256;
    uint8_t *packed = fz_alloc((size_t)psize + 64);
    uint8_t ps = fz_u8(&in);
    int pbad = bad;
    void *dst = packed;
    int64_t declared = psize;
    if (!bad && ps < 8) declared = psize - 1 - (int64_t)(RND() % (uint64_t)psize), pbad = 1;
    if (!bad && ps == 8) dst = NULL, pbad = 1;
    if (!bad && ps == 9) dst = packed + 4, declared = psize - 4, pbad = 1;
    st = isthmus_sparse_pack(&w, dst, declared);
    if (pbad) {
        fz_expect_refused(st, "isthmus_sparse_pack");
        goto out;
    }
    fz_check_status(st, "isthmus_sparse_pack");
    if (st != ISTHMUS_OK) goto out;
    if (!fz_untouched(packed + psize, 64)) fail("isthmus_sparse_pack wrote past the packed size");
    isthmus_sparse_info info;
    fz_check_status(isthmus_sparse_packed_info(packed, &info), "isthmus_sparse_packed_info");
    if (info.n != n || info.k != k || info.nnz != count || info.format != format || info.dtype != dtype ||
        info.block_rows != br || info.block_cols != bc || info.isa != isthmus_isa() || info.bytes != psize)
        fail("sparse_packed_info disagrees with the matrix");
    fz_expect_refused(isthmus_sparse_packed_info(NULL, &info), "packed_info(NULL)");
    fz_expect_refused(isthmus_sparse_packed_info(packed, NULL), "packed_info(out NULL)");

    int corrupt = 0, must_refuse = 0;
    if (fz_u8(&in) < 40) {
        int64_t off = fz_range(&in, 0, 135); /* the header's fields and its check */
        uint8_t x = fz_u8(&in);
        packed[off] ^= x ? x : 0x40;
        corrupt = must_refuse = 1;
        fz_expect_refused(isthmus_sparse_packed_info(packed, &info), "sparse_packed_info on a corrupted header");
    }

    /* ---- spmm */
    int cbad = 0;
    int64_t m = fz_size(&in, 5, 8, &cbad);
    int64_t ldx = cbad ? 1 : k + fz_range(&in, 0, 3), ldy = cbad ? 1 : n + fz_range(&in, 0, 3);
    uint8_t s2 = fz_u8(&in);
    if (!cbad && s2 == 1 && k > 1) ldx = k - 1, cbad = 1;
    if (!cbad && s2 == 2 && n > 1) ldy = n - 1, cbad = 1;
    int64_t xs = cbad ? 1 : m * ldx, ys = cbad ? 1 : m * ldy;
    float *x = fz_alloc((size_t)xs * 4), *xsc = fz_alloc((size_t)(cbad ? 1 : m) * 4), *bias = fz_alloc((size_t)n * 4);
    int8_t *xq = fz_alloc((size_t)xs);
    fz_fill_f32(&in, x, xs);
    fz_fill_s8(&in, xq, xs);
    if (fz_u8(&in) < 16) xq[fz_range(&in, 0, xs - 1)] = -128; /* not a quantize_s8 output, but accepted */
    fz_fill_f32(&in, xsc, cbad ? 1 : m);
    fz_fill_f32(&in, bias, n);
    float *y = fz_out_alloc((size_t)ys * 4);
    int32_t *c = fz_out_alloc((size_t)ys * 4);
    uint8_t mode = fz_u8(&in);
    int use_bias = mode & 1, use_c = dtype == ISTHMUS_DTYPE_S8 && (mode & 2);
    isthmus_spmm_args sa = {m, NULL, ldx, NULL, ldx, NULL, packed, use_bias && !use_c ? bias : NULL,
                            use_c ? NULL : y, ldy, use_c ? c : NULL, ldy};
    if (dtype == ISTHMUS_DTYPE_F32) sa.x = x;
    else sa.xq = xq, sa.x_scales = use_c ? NULL : xsc;
    switch (mode >> 2) { /* wrong combinations */
    case 1: sa.w_packed = NULL, cbad = 1; break;
    case 2: if (dtype == ISTHMUS_DTYPE_F32) sa.x = NULL; else sa.xq = NULL;
        cbad = 1; break;
    case 3: if (dtype == ISTHMUS_DTYPE_F32) sa.xq = xq; else sa.x = x;
        cbad = 1; break;
    case 4: if (use_c) sa.y = y; else sa.c = c; /* both outputs, or c for F32 */
        cbad = 1; break;
    case 5: sa.y = NULL, sa.c = NULL, cbad = 1; break;
    case 6: if (use_c) sa.bias = bias, cbad = 1; break;
    case 7: if (dtype == ISTHMUS_DTYPE_S8 && !use_c) sa.x_scales = NULL, cbad = 1; break;
    default: break;
    }
    int32_t cap2 = fz_u8(&in) % 3;
    isthmus_set_isa_cap(cap2);
    st = isthmus_spmm(&sa);
    if (cbad || must_refuse) fz_expect_refused(st, "isthmus_spmm");
    else fz_check_status(st, "isthmus_spmm");
    if (!cbad && !corrupt && info.isa > isthmus_isa() && st != ISTHMUS_ERR_UNSUPPORTED)
        fail("isthmus_spmm ran weights packed for a higher ISA");
    if (st == ISTHMUS_OK && !corrupt) {
        if (use_c) check_guards(c, m, n, ldy, 4, "isthmus_spmm (c)");
        else check_guards(y, m, n, ldy, 4, "isthmus_spmm (y)");
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                if (dtype == ISTHMUS_DTYPE_S8) {
                    int64_t acc = 0;
                    for (int64_t kk = 0; kk < k; kk++)
                        if (stored[j * k + kk]) acc += (int64_t)dq[j * k + kk] * xq[i * ldx + kk];
                    if (use_c) {
                        if (c[i * ldy + j] != acc) {
                            fprintf(stderr, "spmm c [%lld, %lld] = %d, reference %lld (isa %d)\n", (long long)i,
                                    (long long)j, c[i * ldy + j], (long long)acc, isthmus_isa());
                            abort();
                        }
                        continue;
                    }
                    float want = __builtin_fmaf((float)acc, xsc[i] * scales[j], 0.0f);
                    if (use_bias) want += bias[j];
                    float got = y[i * ldy + j];
                    if (!(got == want || (isnan(got) && isnan(want)))) {
                        fprintf(stderr, "spmm S8 y [%lld, %lld] = %.9g, want %.9g (acc %lld, isa %d)\n",
                                (long long)i, (long long)j, got, want, (long long)acc, isthmus_isa());
                        abort();
                    }
                    continue;
                }
                double ref = 0, mag = 0;
                int64_t nrow = 0;
                for (int64_t kk = 0; kk < k; kk++)
                    if (stored[j * k + kk]) {
                        double p = (double)dv[j * k + kk] * x[i * ldx + kk];
                        ref += p, mag += fabs(p), nrow++;
                    }
                int skip = mag > 1e37;
                if (use_bias) ref += bias[j], mag += fabs((double)bias[j]);
                float got = y[i * ldy + j];
                if (skip) continue;
                if (isnan(ref)) {
                    if (isnan(got)) continue;
                } else if (isinf(ref)) {
                    if (got == ref) continue;
                } else if (fabs(ref) > 1e38) {
                    continue;
                } else if (fabs(got - ref) <= 2.0 * (double)(nrow + 1) * 0x1p-24 * mag + 1e-30) {
                    continue;
                }
                fprintf(stderr, "spmm F32 y [%lld, %lld] = %.9g, reference %.17g (nnz_row %lld, isa %d, m %lld)\n",
                        (long long)i, (long long)j, got, ref, (long long)nrow, isthmus_isa(), (long long)m);
                abort();
            }
    }
    fz_expect_refused(isthmus_spmm(NULL), "spmm(NULL)");
    free(x);
    free(xsc);
    free(bias);
    free(xq);
    fz_out_free(y);
    fz_out_free(c);
out:
    free(packed);
    free(dv);
    free(dq);
    free(stored);
    free(row_ptr);
    free(col_idx);
    free(values);
    free(meta);
    free(scales);
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
    prune(&in);
    return 0;
}

/* ---- isthmus_prune_mask */
static float score(const float *w, const float *an, int64_t c) { return fabsf(*w) * (an ? an[c] : 1.0f) + 0.0f; }

static void prune(fz_in *in) {
    int bad = 0;
    int64_t n = fz_size(in, 8, 6, &bad), k = fz_size(in, 48, 6, &bad);
    uint8_t s = fz_u8(in);
    int32_t structure = s % 4;
    if (s >= 250) structure = s == 250 ? 4 : -1, bad = 1;
    int32_t nm_n = 2, nm_m = 4, bh = 1, bw = 4;
    uint8_t p = fz_u8(in);
    if (structure == ISTHMUS_PRUNE_N_M) {
        nm_m = 2 + p % 15, nm_n = 1 + (p >> 4) % 16; /* nm_n >= nm_m is refused */
        if (nm_n >= nm_m) bad = 1;
        if (!bad && fz_u8(in) >= 20) k = (k + nm_m - 1) / nm_m * nm_m;
        if (!bad && k % nm_m) bad = 1;
    } else if (structure == ISTHMUS_PRUNE_BLOCK) {
        uint8_t b = p % 8;
        bh = blocks[b][0], bw = blocks[b][1];
        if (b >= 6) bad = 1;
        if (!bad && fz_u8(in) >= 20) n = (n + bh - 1) / bh * bh, k = (k + bw - 1) / bw * bw;
        if (!bad && (n % bh || k % bw)) bad = 1;
    }
    uint8_t q = fz_u8(in);
    double sparsity = (double)q / 255.0;
    if (q >= 240 && structure != ISTHMUS_PRUNE_N_M) {
        static const double hostile[] = {-0.01, 1.0001, NAN, -INFINITY, INFINITY, -1e-300};
        sparsity = hostile[q % 6];
        bad = 1;
    }
    int64_t ldw = bad ? 1 : k + fz_range(in, 0, 2), ldm = bad ? 1 : k + fz_range(in, 0, 2);
    uint8_t s2 = fz_u8(in);
    if (!bad && s2 == 1 && k > 1) ldm = k - 1, bad = 1;
    int64_t ws = bad ? 1 : n * ldw, ms = bad ? 1 : n * ldm;
    float *w = fz_alloc((size_t)ws * 4), *an = fz_alloc((size_t)(bad ? 1 : k) * 4);
    fz_fill_f32(in, w, ws);
    fz_fill_f32(in, an, bad ? 1 : k);
    int use_an = fz_bool(in);
    for (int64_t i = 0; i < (bad ? 1 : k); i++) an[i] = fabsf(an[i]);
    if (fz_u8(in) < 10) an[0] = fz_bool(in) ? -1.0f : NAN;
    uint8_t *mask = fz_out_alloc((size_t)ms);
    uint8_t nulls = fz_u8(in);
    isthmus_prune_args a = {n, k, nulls == 1 ? NULL : w, ldw, use_an ? an : NULL, structure, nm_n, nm_m, bh, bw, 0,
                            sparsity, fz_u64(in), nulls == 2 ? NULL : mask, ldm};
    if (nulls == 1 || nulls == 2) bad = 1;
    int finite = 1;
    if (!bad) {
        for (int64_t r = 0; r < n; r++)
            for (int64_t j = 0; j < k; j++) finite &= isfinite(w[r * ldw + j]) != 0;
        if (use_an)
            for (int64_t j = 0; j < k; j++) finite &= an[j] >= 0 && isfinite(an[j]);
    }
    isthmus_status st = isthmus_prune_mask(&a);
    if (bad || !finite) fz_expect_refused(st, "isthmus_prune_mask");
    else fz_check_status(st, "isthmus_prune_mask");
    if (st == ISTHMUS_OK) {
        for (int64_t r = 0; r < n; r++)
            for (int64_t j = 0; j < ldm; j++) {
                uint8_t v = mask[r * ldm + j];
                if (j < k ? v > 1 : v != 0xCD) fail("prune mask: a value not 0/1, or a write past k");
            }
        if (!fz_untouched(mask - FZ_GUARD, FZ_GUARD) || !fz_untouched(mask + ms, FZ_GUARD)) fail("prune mask: a write outside the mask");
        const float *anp = use_an ? an : NULL;
        /* competing sets: a row (PER_ROW), the matrix (GLOBAL), a group (N_M), blocks (BLOCK) */
        if (structure == ISTHMUS_PRUNE_BLOCK) {
            int64_t nb = (n / bh) * (k / bw), removed = 0;
            for (int64_t r = 0; r < n; r += bh)
                for (int64_t j = 0; j < k; j += bw) {
                    uint8_t v = mask[r * ldm + j];
                    for (int32_t i = 0; i < bh; i++)
                        for (int32_t t = 0; t < bw; t++)
                            if (mask[(r + i) * ldm + j + t] != v) fail("prune BLOCK: a block not uniform");
                    removed += !v;
                }
            double c = round(sparsity * (double)nb);
            if (removed != (int64_t)c) fail("prune BLOCK: wrong count removed");
        } else {
            int64_t sets = structure == ISTHMUS_PRUNE_GLOBAL ? 1 : structure == ISTHMUS_PRUNE_PER_ROW ? n : n * (k / nm_m);
            for (int64_t sidx = 0; sidx < sets; sidx++) {
                int64_t r0, r1, j0, j1;
                if (structure == ISTHMUS_PRUNE_GLOBAL) r0 = 0, r1 = n, j0 = 0, j1 = k;
                else if (structure == ISTHMUS_PRUNE_PER_ROW) r0 = sidx, r1 = sidx + 1, j0 = 0, j1 = k;
                else r0 = sidx / (k / nm_m), r1 = r0 + 1, j0 = sidx % (k / nm_m) * nm_m, j1 = j0 + nm_m;
                int64_t removed = 0;
                float max_removed = -1.0f, min_kept = INFINITY;
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t j = j0; j < j1; j++) {
                        float sc = score(&w[r * ldw + j], anp, j);
                        if (mask[r * ldm + j]) min_kept = fminf(min_kept, sc);
                        else removed++, max_removed = fmaxf(max_removed, sc);
                    }
                int64_t total = (r1 - r0) * (j1 - j0);
                int64_t want = structure == ISTHMUS_PRUNE_N_M ? nm_m - nm_n : (int64_t)round(sparsity * (double)total);
                if (removed != want) {
                    fprintf(stderr, "prune structure %d: removed %lld of %lld, want %lld\n", structure,
                            (long long)removed, (long long)total, (long long)want);
                    abort();
                }
                if (max_removed > min_kept) fail("prune: a removed weight scores above a kept one");
            }
        }
    }
    free(w);
    free(an);
    fz_out_free(mask);
}
