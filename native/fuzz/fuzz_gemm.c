/* Fuzz target: INT8 GEMM + pack (isthmus_gemm_s8_packed_size, _pack, _packed_info, isthmus_gemm_s8,
 * isthmus_gemm_s8_s32, isthmus_gemm_f32_s8_workspace_size, isthmus_gemm_f32_s8).
 * Valid calls are checked against their contract:
 *  - gemm_s8_s32: C equals a scalar int64 reference exactly, under the fuzzed ISA cap and under REF;
 *  - gemm_s8: Y bit-identical under the fuzzed cap and under REF, and within
 *    (ngroups + 3) * 2^-23 * (sum_g |acc_g sa sw| + |bias|) + 1e-37 of a double reference (NaN where
 *    the reference is NaN); skipped where a scale product leaves [1e-30, 1e30] (f32 overflow/underflow);
 *  - gemm_f32_s8: Y bit-identical to isthmus_quantize_s8 (per row, or the weights' group) followed by
 *    gemm_s8, and refused where X holds NaN or inf;
 *  - no call writes outside its output: the row gaps (ld > n) and 64 guard bytes on each side stay as
 *    fz_alloc left them.
 * Hostile arguments (sizes, K > ISTHMUS_GEMM_MAX_K, strides, NULL, enums, a packed buffer declared too
 * small, -128 weights, non-finite weight scales, a header byte flipped after packing) must be refused. */
#include "fuzz.h"

static const int32_t granularities[] = {ISTHMUS_SCALE_PER_TENSOR, ISTHMUS_SCALE_PER_ROW,
                                        ISTHMUS_SCALE_PER_GROUP, 3, -1};
static const int64_t groups[] = {32, 64, 128, 256, 0, 16, 33, 512};

/* the guards and the gaps between rows [m, n] of an output with stride ld (elements of 4 bytes) */
static void check_guards(const void *out, int64_t m, int64_t n, int64_t ld, const char *what) {
    const uint8_t *b = out;
    int ok = fz_untouched(b - FZ_GUARD, FZ_GUARD) && fz_untouched(b + (m * ld) * 4, FZ_GUARD);
    for (int64_t r = 0; r < m && ok; r++) ok = fz_untouched(b + (r * ld + n) * 4, (size_t)(ld - n) * 4);
    if (!ok) {
        fprintf(stderr, "%s wrote outside its output [%lld, %lld] (ld %lld)\n", what, (long long)m,
                (long long)n, (long long)ld);
        abort();
    }
}

/* Bytes of packed_hdr whose change may leave a consistent header (w_gran 0 <-> 1 and a group with the
 * same number of K groups change no offset): a call with such a header may succeed. The header's other
 * fields are shape, layout or identity: a changed one must be refused by every GEMM call. */
static int flip_may_pass(int64_t off) { return (off >= 16 && off < 20) || (off >= 56 && off < 64) || off >= 112; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    fz_threads(&in);
    int32_t cap = fz_u8(&in) % 3;
    isthmus_set_isa_cap(cap);

    /* ---- pack */
    int badp = 0;
    int64_t n = fz_size(&in, 20, 6, &badp);
    int64_t k = fz_size(&in, 140, 6, &badp);
    uint8_t sel = fz_u8(&in);
    if (!badp && sel < 4) { /* K past the int32-exact limit: refused before anything is read */
        k = ISTHMUS_GEMM_MAX_K + 1 + sel;
        badp = 2;
    }
    uint8_t g = fz_u8(&in);
    int32_t wgran = granularities[g % 5];
    int64_t group = groups[(g >> 3) % 8];
    if (wgran != ISTHMUS_SCALE_PER_GROUP && fz_bool(&in)) group = 0; /* mostly the valid combination */
    if (wgran < 0 || wgran > 2) badp = 1;
    else if (wgran == ISTHMUS_SCALE_PER_GROUP ? !(group == 32 || group == 64 || group == 128 || group == 256)
                                              : group != 0)
        badp = 1;
    int with_scales = fz_u8(&in) % 4 != 0;
    int64_t ldw = badp ? 1 : k + fz_range(&in, 0, 3);
    if (!badp && k > 1 && fz_u8(&in) < 6) {
        ldw = k - 1;
        badp = 1;
    }
    int64_t ws = badp ? 1 : n * ldw;
    int8_t *w = fz_alloc((size_t)ws);
    fz_fill_s8(&in, w, ws);
    int badc = 0; /* content or buffer faults: only isthmus_gemm_s8_pack sees them */
    if (!badp && fz_u8(&in) < 6) { /* -128 is refused */
        int64_t r = fz_range(&in, 0, n - 1), c = fz_range(&in, 0, k - 1);
        w[r * ldw + c] = -128;
        badc = 1;
    }
    int64_t nws = badp ? 1 : isthmus_scale_count(n, k, wgran, wgran == ISTHMUS_SCALE_PER_GROUP ? group : 32);
    float *wsc = fz_alloc((size_t)(nws > 0 ? nws : 1) * 4);
    fz_fill_f32(&in, wsc, nws > 0 ? nws : 1);
    if (!badp && with_scales)
        for (int64_t i = 0; i < nws; i++)
            if (!isfinite(wsc[i])) badc = 1;
    isthmus_gemm_pack_args pa = {n, k, w, ldw, wgran, group, with_scales ? wsc : NULL, NULL, 0};
    int64_t bytes = -1;
    isthmus_status st = isthmus_gemm_s8_packed_size(&pa, &bytes);
    fz_check_status(st, "isthmus_gemm_s8_packed_size");
    if (st == ISTHMUS_OK && (bytes < 128 || bytes > ((int64_t)1 << 24))) {
        fprintf(stderr, "packed_size = %lld\n", (long long)bytes);
        abort();
    }
    if (badp) fz_expect_refused(st, "isthmus_gemm_s8_packed_size");
    int64_t psize = st == ISTHMUS_OK ? bytes : 128;
    uint8_t small = fz_u8(&in);
    void *packed = fz_alloc((size_t)psize + 64);
    pa.packed = small == 1 ? NULL : packed;
    pa.packed_size = psize;
    if (small >= 2 && small < 8) { /* declared too small */
        pa.packed_size = psize - fz_range(&in, 1, psize);
        badc = 1;
    }
    if (small == 1 || small == 8) badc = 1;
    if (small == 8) pa.w = NULL;
    st = isthmus_gemm_s8_pack(&pa);
    if (badp || badc) {
        fz_expect_refused(st, "isthmus_gemm_s8_pack");
        goto done_pack;
    }
    fz_check_status(st, "isthmus_gemm_s8_pack");
    if (st != ISTHMUS_OK) goto done_pack;
    if (!fz_untouched((uint8_t *)packed + psize, 64)) {
        fprintf(stderr, "isthmus_gemm_s8_pack wrote past packed_size\n");
        abort();
    }
    isthmus_packed_info info;
    fz_check_status(isthmus_gemm_s8_packed_info(packed, &info), "isthmus_gemm_s8_packed_info");
    if (info.n != n || info.k != k || info.group != group || info.w_granularity != wgran ||
        info.has_scales != with_scales || info.isa != isthmus_isa()) {
        fprintf(stderr, "packed_info disagrees with the pack arguments\n");
        abort();
    }
    fz_expect_refused(isthmus_gemm_s8_packed_info(NULL, &info), "packed_info(NULL)");
    fz_expect_refused(isthmus_gemm_s8_packed_info(packed, NULL), "packed_info(out NULL)");

    /* a corrupted header: one field rewritten after packing */
    int corrupt = 0, must_refuse = 0;
    if (fz_u8(&in) < 40) {
        int64_t off = fz_range(&in, 0, 127);
        uint8_t x = fz_u8(&in);
        if (x == 0) x = 0x80;
        ((uint8_t *)packed)[off] ^= x;
        corrupt = 1;
        must_refuse = !flip_may_pass(off);
        st = isthmus_gemm_s8_packed_info(packed, &info);
        fz_check_status(st, "packed_info on a corrupted header");
        /* n and k may change consistently (a shape the calls then refuse); everything else must not */
        if (must_refuse && !(off >= 32 && off < 48)) fz_expect_refused(st, "packed_info on a corrupted header");
    }

    /* ---- the calls */
    int bad = 0;
    int64_t m = fz_size(&in, 5, 8, &bad);
    int64_t lda = bad ? 1 : k + fz_range(&in, 0, 3), ldy = bad ? 1 : n + fz_range(&in, 0, 3);
    uint8_t s2 = fz_u8(&in);
    if (!bad && s2 == 1 && k > 1) lda = k - 1, bad = 1;
    if (!bad && s2 == 2 && n > 1) ldy = n - 1, bad = 1;
    int64_t cn = n, ck = k; /* the shape the calls claim */
    if (!bad && s2 == 3) cn = n + 1, bad = 1;
    if (!bad && s2 == 4) ck = k + 4, bad = 1;
    int32_t agran = granularities[fz_u8(&in) % 5];
    int agran_bad = agran < 0 || agran > 2 || (agran == ISTHMUS_SCALE_PER_GROUP && group == 0);
    int64_t as = bad ? 1 : m * lda, ys = bad ? 1 : m * ldy;
    int8_t *a = fz_alloc((size_t)as);
    fz_fill_s8(&in, a, as);
    int64_t ngr = group > 0 ? (k + group - 1) / group : 1;
    int64_t nas = bad ? 1 : agran == ISTHMUS_SCALE_PER_TENSOR ? 1 : agran == ISTHMUS_SCALE_PER_ROW ? m : m * ngr;
    float *asc = fz_alloc((size_t)(nas > 0 ? nas : 1) * 4);
    fz_fill_f32(&in, asc, nas > 0 ? nas : 1);
    float *bias = fz_alloc((size_t)n * 4);
    fz_fill_f32(&in, bias, n);
    int use_bias = fz_bool(&in);
    float *x = fz_alloc((size_t)as * 4);
    fz_fill_f32(&in, x, as);
    float *y = fz_out_alloc((size_t)ys * 4), *y2 = fz_out_alloc((size_t)ys * 4), *y3 = fz_out_alloc((size_t)ys * 4);
    int32_t *c = fz_out_alloc((size_t)ys * 4), *c2 = fz_out_alloc((size_t)ys * 4);
    uint8_t nulls = fz_u8(&in);
    int nullbad = nulls >= 1 && nulls <= 4;
    int32_t cap2 = fz_u8(&in) % 3; /* the cap at call time (a blob for a higher ISA is refused) */
    isthmus_set_isa_cap(cap2);
    /* under the REF cap the reference kernel reads any layout; otherwise a higher ISA's blob is refused */
    int unsupported = isthmus_isa() != ISTHMUS_ISA_REF && info.isa > isthmus_isa() && !corrupt;

    /* s32 */
    isthmus_gemm_s8_s32_args sa = {m, cn, ck, nulls == 1 ? NULL : a, lda, nulls == 2 ? NULL : packed,
                                   nulls == 3 ? NULL : c, ldy};
    st = isthmus_gemm_s8_s32(&sa);
    int s32bad = bad || (nullbad && nulls != 4) || must_refuse;
    if (s32bad) fz_expect_refused(st, "isthmus_gemm_s8_s32");
    else fz_check_status(st, "isthmus_gemm_s8_s32");
    if (unsupported && !s32bad && st != ISTHMUS_ERR_UNSUPPORTED) {
        fprintf(stderr, "gemm_s8_s32 ran weights packed for a higher ISA (status %d)\n", st);
        abort();
    }
    if (st == ISTHMUS_OK && !corrupt) {
        check_guards(c, m, n, ldy, "isthmus_gemm_s8_s32");
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                int64_t ref = 0;
                for (int64_t kk = 0; kk < k; kk++) ref += (int64_t)a[i * lda + kk] * w[j * ldw + kk];
                if (ref != c[i * ldy + j]) {
                    fprintf(stderr, "gemm_s8_s32 [%lld, %lld] = %d, reference %lld (isa %d)\n", (long long)i,
                            (long long)j, c[i * ldy + j], (long long)ref, isthmus_isa());
                    abort();
                }
            }
        isthmus_set_isa_cap(ISTHMUS_ISA_REF);
        sa.c = c2;
        fz_check_status(isthmus_gemm_s8_s32(&sa), "isthmus_gemm_s8_s32 (ref)");
        for (int64_t i = 0; i < m; i++)
            if (memcmp(c + i * ldy, c2 + i * ldy, (size_t)n * 4)) {
                fprintf(stderr, "gemm_s8_s32 differs between ISA %d and ref\n", cap2);
                abort();
            }
        isthmus_set_isa_cap(cap2);
    }

    /* f32 */
    isthmus_gemm_s8_args ga = {m, cn, ck, nulls == 1 ? NULL : a, lda, agran, nulls == 4 ? NULL : asc,
                               nulls == 2 ? NULL : packed, use_bias ? bias : NULL, nulls == 3 ? NULL : y, ldy};
    st = isthmus_gemm_s8(&ga);
    int f32bad = bad || nullbad || must_refuse || agran_bad || !with_scales;
    if (f32bad) fz_expect_refused(st, "isthmus_gemm_s8");
    else fz_check_status(st, "isthmus_gemm_s8");
    if (st == ISTHMUS_OK && !corrupt) {
        check_guards(y, m, n, ldy, "isthmus_gemm_s8");
        int64_t glen = group > 0 ? group : k;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double ref = 0, mag = 0; /* mag: sum of |acc_g sa sw| (+ |bias|) */
                int skip = 0;
                for (int64_t gg = 0; gg < ngr; gg++) {
                    int64_t acc = 0;
                    for (int64_t kk = gg * glen; kk < k && kk < (gg + 1) * glen; kk++)
                        acc += (int64_t)a[i * lda + kk] * w[j * ldw + kk];
                    double sav = asc[agran == ISTHMUS_SCALE_PER_TENSOR ? 0
                                     : agran == ISTHMUS_SCALE_PER_ROW  ? i
                                                                       : i * ngr + gg];
                    double swv = wsc[wgran == ISTHMUS_SCALE_PER_TENSOR ? 0
                                     : wgran == ISTHMUS_SCALE_PER_ROW  ? j
                                                                       : j * ngr + gg];
                    double s = sav * swv;
                    if (isfinite(s) && s != 0 && (fabs(s) < 1e-30 || fabs(s) > 1e30)) skip = 1;
                    ref += (double)acc * s;
                    mag += fabs((double)acc * s);
                }
                /* past 1e30 the f32 partial sums may overflow where the double ones do not */
                if (mag > 1e30) skip = 1;
                if (use_bias) ref += bias[j], mag += fabs((double)bias[j]);
                float got = y[i * ldy + j];
                if (skip) continue;
                if (isnan(ref)) {
                    if (!isnan(got)) goto mismatch;
                    continue;
                }
                if (isinf(ref)) {
                    if (got != ref) goto mismatch;
                    continue;
                }
                if (fabs(ref) > 1e38) continue; /* may round to inf in f32 */
                if (fabs(got - ref) <= (double)(ngr + 3) * 0x1p-23 * mag + 1e-37) continue;
            mismatch:
                fprintf(stderr, "gemm_s8 [%lld, %lld] = %.9g, reference %.17g (isa %d)\n", (long long)i,
                        (long long)j, got, ref, isthmus_isa());
                abort();
            }
        isthmus_set_isa_cap(ISTHMUS_ISA_REF);
        ga.y = y2;
        fz_check_status(isthmus_gemm_s8(&ga), "isthmus_gemm_s8 (ref)");
        for (int64_t i = 0; i < m; i++)
            if (memcmp(y + i * ldy, y2 + i * ldy, (size_t)n * 4)) {
                fprintf(stderr, "gemm_s8 differs between ISA %d and ref\n", cap2);
                abort();
            }
        isthmus_set_isa_cap(cap2);
    }

    /* fused f32 -> s8 */
    int badw = 0;
    int64_t wm = fz_size(&in, 16, 8, &badw), wk = fz_size(&in, 300, 8, &badw); /* sizes only */
    int64_t wg = groups[fz_u8(&in) % 8];
    int64_t wbytes = -1;
    st = isthmus_gemm_f32_s8_workspace_size(wm, wk, wg, &wbytes);
    if (badw || !(wg == 0 || wg == 32 || wg == 64 || wg == 128 || wg == 256))
        fz_expect_refused(st, "isthmus_gemm_f32_s8_workspace_size");
    else
        fz_check_status(st, "isthmus_gemm_f32_s8_workspace_size");
    fz_expect_refused(isthmus_gemm_f32_s8_workspace_size(1, 1, 0, NULL), "workspace_size(NULL)");
    int64_t need = 0;
    if (!bad) {
        fz_check_status(isthmus_gemm_f32_s8_workspace_size(m, k, group, &need), "workspace_size");
        if (need <= 0) abort();
    }
    uint8_t wsel = fz_u8(&in);
    int64_t wsz = need + (wsel & 1 ? 0 : 64);
    int ws_small = !bad && need > 0 && wsel >= 2 && wsel < 6;
    if (ws_small) wsz = need - 1;
    void *wsp = fz_alloc((size_t)(wsz > 0 ? wsz : 1));
    int finite = 1;
    if (!bad)
        for (int64_t i = 0; i < m; i++)
            for (int64_t kk = 0; kk < k; kk++) finite &= isfinite(x[i * lda + kk]) != 0;
    isthmus_gemm_f32_s8_args fa = {m, cn, ck, nulls == 1 ? NULL : x, lda, nulls == 2 ? NULL : packed,
                                   use_bias ? bias : NULL, nulls == 3 ? NULL : y3, ldy,
                                   wsel & 2 ? wsp : NULL, wsz};
    st = isthmus_gemm_f32_s8(&fa);
    int fbad = bad || (nullbad && nulls != 4) || must_refuse || !with_scales || ((wsel & 2) && ws_small) || !finite;
    if (fbad) fz_expect_refused(st, "isthmus_gemm_f32_s8");
    else fz_check_status(st, "isthmus_gemm_f32_s8");
    if (st == ISTHMUS_OK && !corrupt) {
        check_guards(y3, m, n, ldy, "isthmus_gemm_f32_s8");
        /* the same as quantize_s8 then gemm_s8, bit for bit */
        int8_t *aq = fz_alloc((size_t)(m * k));
        float *sq = fz_alloc((size_t)(m * ngr) * 4);
        isthmus_quantize_args qa = {m, k, x, lda, group > 0 ? ISTHMUS_SCALE_PER_GROUP : ISTHMUS_SCALE_PER_ROW,
                                    group, aq, k, sq};
        fz_check_status(isthmus_quantize_s8(&qa), "isthmus_quantize_s8");
        isthmus_gemm_s8_args ga2 = {m, n, k, aq, k, qa.granularity, sq, packed, use_bias ? bias : NULL, y2, ldy};
        fz_check_status(isthmus_gemm_s8(&ga2), "isthmus_gemm_s8 (after quantize)");
        for (int64_t i = 0; i < m; i++)
            if (memcmp(y3 + i * ldy, y2 + i * ldy, (size_t)n * 4)) {
                fprintf(stderr, "gemm_f32_s8 differs from quantize_s8 + gemm_s8 (isa %d)\n", isthmus_isa());
                abort();
            }
        free(aq);
        free(sq);
    }
    free(wsp);
    fz_expect_refused(isthmus_gemm_s8(NULL), "gemm_s8(NULL)");
    fz_expect_refused(isthmus_gemm_s8_s32(NULL), "gemm_s8_s32(NULL)");
    fz_expect_refused(isthmus_gemm_f32_s8(NULL), "gemm_f32_s8(NULL)");

    free(a);
    free(asc);
    free(bias);
    free(x);
    fz_out_free(y);
    fz_out_free(y2);
    fz_out_free(y3);
    fz_out_free(c);
    fz_out_free(c2);
done_pack:
    free(w);
    free(wsc);
    free(packed);
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
    return 0;
}
