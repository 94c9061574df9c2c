/* Numerical hygiene: what NaN and +-inf inputs give at every public entry that reads floats, for every ISA
 * variant (the rules are in isthmus.h next to each entry and in the README, "NaN, infinities, saturation and
 * denormals"), and int8 saturation where no other suite covers it. Each rule is either "refused with
 * ISTHMUS_ERR_INVALID_ARGUMENT naming the position" or "propagated" (which outputs become NaN or +-inf, and
 * that every other output stays what it was); a propagated result must be the same class (finite / NaN /
 * +inf / -inf) in every variant. CTest runs this suite with a TIMEOUT, so a hang fails.
 * Covered elsewhere (not repeated): quant.non_finite_refused (quantize refuses NaN/inf), quant.extremes and
 * quant.variants_match_reference (never -128), gemm.extremes (+-127 at ISTHMUS_GEMM_MAX_K, exact int32 on the
 * AVX2 maddubs path), gemm.bad_arguments (K = ISTHMUS_GEMM_MAX_K + 1 refused), sparse.extremes and
 * sparse24.s8_extremes (int8 spmm at +-127, K = ISTHMUS_GEMM_MAX_K), attention.bad_arguments (NaN scale),
 * prune.bad_arguments, sample.bad_args, verify.bad_args. */
#include "harness.h"

#include <float.h>
#include <math.h>

#define ISA_LOOP for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++)
#define FOR_ISA(isa) isthmus_set_isa_cap(isa)

enum { FIN = 0, QNAN = 1, PINF = 2, NINF = 3 };
static int cls(float v) { return isnan(v) ? QNAN : isinf(v) ? (v > 0 ? PINF : NINF) : FIN; }
static const char *cname(int c) { return c == FIN ? "finite" : c == QNAN ? "NaN" : c == PINF ? "+inf" : "-inf"; }
static const float BAD[3] = {NAN, INFINITY, -INFINITY};

static float *rndf(uint64_t *s, int64_t n, float lo, float hi) {
    float *x = galloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) x[i] = rng_f32(s, lo, hi);
    return x;
}

static int has(const char *needle) { return strstr(isthmus_last_error(), needle) != NULL; }

/* ---------------------------------------------------------------- quantization */

/* dequantize: a NaN scale makes its group NaN; an infinite one makes it +-inf (q != 0) or NaN (q = 0). */
static void dequantize_scales_propagate(void) {
    uint64_t s = t_seed;
    const int64_t rows = 3, cols = 70, group = 32, ng = 3;
    int8_t *q = galloc(rows * cols);
    for (int64_t i = 0; i < rows * cols; i++) q[i] = rng_s8(&s);
    q[1 * cols + 40] = 0;
    float *sc = rndf(&s, rows * ng, 0.01f, 1.0f), *x = galloc(rows * cols * 4);
    sc[0 * ng + 2] = NAN;
    sc[1 * ng + 1] = INFINITY;
    ISA_LOOP {
        FOR_ISA(isa);
        isthmus_dequantize_args a = {rows, cols, q, cols, ISTHMUS_SCALE_PER_GROUP, group, sc, x, cols};
        CHECK_OK(isthmus_dequantize_s8(&a));
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                float sv = sc[r * ng + c / group];
                int8_t qv = q[r * cols + c];
                int want = isnan(sv) ? QNAN : isinf(sv) ? (qv == 0 ? QNAN : qv > 0 ? PINF : NINF) : FIN;
                CHECK(cls(x[r * cols + c]) == want, "dequantize [%lld, %lld] q %d s %g: %s, want %s", (long long)r,
                      (long long)c, qv, sv, cname(cls(x[r * cols + c])), cname(want));
            }
    }
    gfree(q), gfree(sc), gfree(x);
}

/* quantize never emits -128: x / s landing on -127.5 (and just past it) in every granularity. */
static void quantize_never_minus_128(void) {
    uint64_t s = t_seed;
    const int64_t rows = 4, cols = 96;
    float *x = rndf(&s, rows * cols, -1, 1);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < 3; g++) {
            float amax = 0.5f + (float)r + (float)g;
            x[r * cols + g * 32] = amax;                   /* the group's max */
            x[r * cols + g * 32 + 1] = -amax;              /* -127 exactly */
            x[r * cols + g * 32 + 2] = -amax * (127.5f / 127.0f) * 0.99999f; /* just inside */
            x[r * cols + g * 32 + 3] = -nextafterf(amax, 0); /* rounds to -127 */
        }
    x[5] = -FLT_MAX, x[6] = FLT_MAX; /* the scale's 127x edge */
    int8_t *q = galloc(rows * cols);
    float *sc = galloc(rows * 3 * 4);
    for (int32_t gran = 0; gran <= 2; gran++)
        ISA_LOOP {
            FOR_ISA(isa);
            isthmus_quantize_args a = {rows, cols, x, cols, gran, 32, q, cols, sc};
            CHECK_OK(isthmus_quantize_s8(&a));
            for (int64_t i = 0; i < rows * cols; i++) CHECK(q[i] >= -127, "gran %d: q[%lld] = %d", gran, (long long)i, q[i]);
            if (gran == 2) CHECK(q[cols + 33] == -127, "-amax -> %d", q[cols + 33]);
        }
    gfree(x), gfree(q), gfree(sc);
}

/* Denormal inputs: the SIMD kernels quantize blocks with a tiny scale from x * 2^64 (quant.h,
 * ISTHMUS_QUANT_TINY); q and scales must stay bit-identical to the reference for all-denormal rows, rows mixing
 * denormals with tiny normals, rows just above the switch, and ties (x / s = k + 0.5). */
static void quantize_denormals_bit_identical(void) {
    uint64_t s = t_seed;
    const int64_t rows = 6, cols = 300;
    float *x = galloc(rows * cols * 4), *sc0 = galloc(rows * 10 * 4), *sc = galloc(rows * 10 * 4);
    int8_t *q0 = galloc(rows * cols), *q = galloc(rows * cols);
    const float mul[6] = {1e-39f, 1e-44f, 0x1p-62f, 0x1p-60f, 0x1p-58f, 1e-41f};
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float v = rng_f32(&s, -1, 1) * mul[r];
            if (r == 2 && c % 3 == 0) v = rng_f32(&s, -1, 1) * 1e-41f; /* denormals among tiny normals */
            x[r * cols + c] = v;
        }
    /* ties: row 5 with amax = 127 * 2^-140 (s = 2^-140 exact): x = (k + 0.5) * 2^-140 */
    x[5 * cols + 0] = 127.0f * 0x1p-140f;
    for (int64_t c = 1; c < 40; c++) x[5 * cols + c] = ((float)(c % 20) - 9.5f) * 0x1p-140f;
    for (int32_t gran = 0; gran <= 2; gran++) {
        ISA_LOOP {
            FOR_ISA(isa);
            isthmus_quantize_args a = {rows, cols, x, cols, gran, 32, isa ? q : q0, cols, isa ? sc : sc0};
            CHECK_OK(isthmus_quantize_s8(&a));
            if (isa == ISTHMUS_ISA_REF) continue;
            int64_t ns = isthmus_scale_count(rows, cols, gran, 32);
            CHECK(memcmp(q, q0, rows * cols) == 0 && memcmp(sc, sc0, (size_t)ns * 4) == 0, "gran %d: q or scales differ from ref", gran);
            for (int64_t i = 0; i < rows * cols; i++)
                if (q[i] != q0[i]) {
                    CHECK(0, "gran %d: q[%lld] = %d, ref %d (x %g)", gran, (long long)i, q[i], q0[i], x[i]);
                    break;
                }
        }
        if (gran == 1) CHECK(q0[5 * cols + 0] == 127 && q0[5 * cols + 1] == -8 && q0[5 * cols + 3] == -6, "ties: %d %d %d", q0[5 * cols], q0[5 * cols + 1], q0[5 * cols + 3]);
    }
    gfree(x), gfree(sc0), gfree(sc), gfree(q0), gfree(q);
}

/* ---------------------------------------------------------------- GEMM */

/* gemm_s8: a NaN a_scale makes its row NaN, a NaN bias its column; an infinite one gives +-inf (acc != 0)
 * or NaN (acc = 0). gemm_f32_s8 refuses a non-finite x like quantize, naming it. Pack refuses NaN w_scales. */
static void gemm_scales_bias(void) {
    uint64_t s = t_seed;
    const int64_t m = 5, n = 19, k = 70;
    int8_t *a = galloc(m * k), *w = galloc(n * k);
    for (int64_t i = 0; i < m * k; i++) a[i] = rng_s8(&s);
    for (int64_t i = 0; i < n * k; i++) w[i] = rng_s8(&s);
    for (int64_t i = 0; i < k; i++) a[4 * k + i] = 0; /* row 4: acc = 0 */
    float *sa = rndf(&s, m, 0.01f, 1), *sw = rndf(&s, n, 0.01f, 1), *bias = rndf(&s, n, -1, 1);
    float *y = galloc(m * n * 4), *y0 = galloc(m * n * 4), *x = rndf(&s, m * k, -2, 2);
    sa[1] = NAN, sa[2] = INFINITY, sa[4] = INFINITY, bias[7] = NAN;
    int cls0[5 * 19];
    ISA_LOOP {
        FOR_ISA(isa);
        isthmus_gemm_pack_args pa = {n, k, w, k, ISTHMUS_SCALE_PER_ROW, 0, sw, NULL, 0};
        int64_t bytes = 0;
        CHECK_OK(isthmus_gemm_s8_packed_size(&pa, &bytes));
        pa.packed = galloc((size_t)bytes), pa.packed_size = bytes;
        CHECK_OK(isthmus_gemm_s8_pack(&pa));
        isthmus_gemm_s8_args ga = {m, n, k, a, k, ISTHMUS_SCALE_PER_ROW, sa, pa.packed, bias, y, n};
        CHECK_OK(isthmus_gemm_s8(&ga));
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = 0; c < n; c++) {
                int got = cls(y[r * n + c]);
                if (r == 1 || c == 7 || r == 4) CHECK(got == QNAN, "y[%lld, %lld] %s, want NaN", (long long)r, (long long)c, cname(got));
                else if (r == 2) CHECK(got == PINF || got == NINF, "y[2, %lld] %s, want +-inf", (long long)c, cname(got));
                else CHECK(got == FIN, "y[%lld, %lld] %s, want finite", (long long)r, (long long)c, cname(got));
                if (isa == ISTHMUS_ISA_REF) cls0[r * n + c] = got;
                else CHECK(got == cls0[r * n + c], "y[%lld, %lld] %s differs from ref", (long long)r, (long long)c, cname(got));
            }
        /* the fused f32 path refuses what quantize refuses, with the position */
        for (int b = 0; b < 3; b++) {
            float keep = x[3 * k + 41];
            x[3 * k + 41] = BAD[b];
            isthmus_gemm_f32_s8_args fa = {m, n, k, x, k, pa.packed, NULL, y0, n, NULL, 0};
            CHECK_FAILS(isthmus_gemm_f32_s8(&fa), ISTHMUS_ERR_INVALID_ARGUMENT);
            CHECK(has("x[3, 41]"), "gemm_f32_s8 message: %s", isthmus_last_error());
            x[3 * k + 41] = keep;
        }
        gfree(pa.packed);
        float keep = sw[3];
        sw[3] = NAN;
        isthmus_gemm_pack_args pb = {n, k, w, k, ISTHMUS_SCALE_PER_ROW, 0, sw, NULL, 0};
        CHECK_OK(isthmus_gemm_s8_packed_size(&pb, &bytes));
        pb.packed = galloc((size_t)bytes), pb.packed_size = bytes;
        CHECK_FAILS(isthmus_gemm_s8_pack(&pb), ISTHMUS_ERR_INVALID_ARGUMENT);
        gfree(pb.packed);
        CHECK(has("w_scales[3]"), "pack: %s", isthmus_last_error());
        sw[3] = keep;
    }
    gfree(a), gfree(w), gfree(sa), gfree(sw), gfree(bias), gfree(y), gfree(y0), gfree(x);
}

/* ---------------------------------------------------------------- KV cache, RoPE, attention */

typedef struct kvt { isthmus_kv_config c; void *state, *pool; int32_t seq; } kvt;

/* A cache whose pool starts as `fill` bytes (0xff: every float a NaN), with one sequence of len tokens. */
static void kv_make(kvt *t, int32_t dtype, int32_t bs, uint8_t fill, int64_t len) {
    t->c = (isthmus_kv_config){.layers = 1, .kv_heads = 2, .head_dim = 32, .block_size = bs, .dtype = dtype,
                               .num_blocks = 64, .max_seqs = 2, .max_seq_len = 256};
    int64_t sb, pb;
    CHECK_OK(isthmus_kv_sizes(&t->c, &sb, &pb));
    t->state = galloc((size_t)sb), t->pool = galloc((size_t)pb);
    memset(t->pool, fill, (size_t)pb);
    CHECK_OK(isthmus_kv_init(&t->c, t->state, sb, t->pool, pb));
    CHECK_OK(isthmus_kv_seq_create(t->state, &t->seq));
    CHECK_OK(isthmus_kv_seq_extend(t->state, t->seq, len));
}
static void kv_drop(kvt *t) { gfree(t->state), gfree(t->pool); }

static isthmus_status kv_put(kvt *t, const float *k, const float *v, int32_t n, int32_t rope) {
    isthmus_kv_write_args w = {.kv = t->state, .layer = 0, .n_seqs = 1, .seqs = &t->seq, .n_tokens = &n,
                               .k = k, .ldk = 64, .v = v, .ldv = 64,
                               .rope = {.style = rope, .theta = 10000.0f}};
    return isthmus_kv_write(&w);
}

/* kv_write refuses NaN and +-inf in k or v for every dtype (and finite values an f16 or bf16 cache would
 * round to inf), naming the row and column, before anything is written; kv_read then only ever returns finite
 * values. */
static void kv_write_refuses_nonfinite(void) {
    uint64_t s = t_seed;
    const int32_t dts[4] = {ISTHMUS_KV_F32, ISTHMUS_KV_F16, ISTHMUS_KV_BF16, ISTHMUS_KV_S8};
    float *k = rndf(&s, 5 * 64, -2, 2), *v = rndf(&s, 5 * 64, -2, 2), *back = galloc(5 * 64 * 4), *back2 = galloc(5 * 64 * 4);
    ISA_LOOP for (int d = 0; d < 4; d++) for (int rope = 0; rope <= 2; rope += 2) {
        FOR_ISA(isa);
        kvt t;
        kv_make(&t, dts[d], 4, 0x11, 5);
        CHECK_OK(kv_put(&t, k, v, 5, rope));
        isthmus_kv_read_args r = {t.state, 0, t.seq, 0, 5, back, 64, back2, 64};
        CHECK_OK(isthmus_kv_read(&r));
        float *before = galloc(2 * 5 * 64 * 4);
        memcpy(before, back, 5 * 64 * 4), memcpy(before + 5 * 64, back2, 5 * 64 * 4);
        for (int b = 0; b < 3; b++)
            for (int which = 0; which < 2; which++) {
                float *x = which ? v : k, keep = x[3 * 64 + 37];
                x[3 * 64 + 37] = BAD[b];
                CHECK_FAILS(kv_put(&t, k, v, 5, rope), ISTHMUS_ERR_INVALID_ARGUMENT);
                CHECK(has(which ? "v[3, 37]" : "k[3, 37]"), "dtype %d: %s", dts[d], isthmus_last_error());
                x[3 * 64 + 37] = keep;
            }
        if (dts[d] == ISTHMUS_KV_BF16) { /* 0x1.ffp127 rounds to inf in bf16; the float below it does not */
            float keep = k[1 * 64 + 60];
            k[1 * 64 + 60] = 0x1.ffp127f;
            CHECK_FAILS(kv_put(&t, k, v, 5, 0), ISTHMUS_ERR_INVALID_ARGUMENT);
            CHECK(has("k[1, 60]"), "bf16 overflow: %s", isthmus_last_error());
            k[1 * 64 + 60] = -nextafterf(0x1.ffp127f, 0);
            CHECK_OK(kv_put(&t, k, v, 5, 0));
            CHECK_OK(isthmus_kv_read(&r));
            CHECK(back[1 * 64 + 60] == -0x1.fep127f, "bf16 max read back as %g", back[1 * 64 + 60]);
            k[1 * 64 + 60] = keep;
            CHECK_OK(kv_put(&t, k, v, 5, rope));
        }
        if (dts[d] == ISTHMUS_KV_F16) { /* 65520 rounds to inf in f16 */
            float keep = v[2 * 64 + 5];
            v[2 * 64 + 5] = -65520.0f;
            CHECK_FAILS(kv_put(&t, k, v, 5, rope), ISTHMUS_ERR_INVALID_ARGUMENT);
            CHECK(has("v[2, 5]"), "f16 overflow: %s", isthmus_last_error());
            v[2 * 64 + 5] = 65504.0f; /* the largest f16: stored */
            CHECK_OK(kv_put(&t, k, v, 5, rope));
            CHECK_OK(isthmus_kv_read(&r));
            CHECK(back2[2 * 64 + 5] == 65504.0f, "f16 max read back as %g", back2[2 * 64 + 5]);
            v[2 * 64 + 5] = keep;
            CHECK_OK(kv_put(&t, k, v, 5, rope));
        }
        /* nothing was written by the refused calls */
        CHECK_OK(isthmus_kv_read(&r));
        CHECK(memcmp(before, back, 5 * 64 * 4) == 0 && memcmp(before + 5 * 64, back2, 5 * 64 * 4) == 0,
              "dtype %d: a refused write changed the cache", dts[d]);
        for (int i = 0; i < 5 * 64; i++) CHECK(isfinite(back[i]) && isfinite(back2[i]), "read back non-finite at %d", i);
        gfree(before);
        kv_drop(&t);
    }
    gfree(k), gfree(v), gfree(back), gfree(back2);
}

/* int8 KV at the extremes: +-max|x| of each (token, head) store as +-127 (never -128) and read back exactly. */
static void kv_s8_extremes(void) {
    uint64_t s = t_seed;
    float *k = rndf(&s, 3 * 64, -1, 1), *v = rndf(&s, 3 * 64, -1, 1), *back = galloc(3 * 64 * 4), *bv = galloc(3 * 64 * 4);
    for (int t = 0; t < 3; t++)
        for (int h = 0; h < 2; h++) {
            float amax = t == 2 ? 3e38f : 1.5f + (float)t;
            k[t * 64 + h * 32 + 3] = -amax, k[t * 64 + h * 32 + 4] = amax;
            v[t * 64 + h * 32 + 9] = -amax;
        }
    ISA_LOOP {
        FOR_ISA(isa);
        kvt t;
        kv_make(&t, ISTHMUS_KV_S8, 16, 0, 3);
        CHECK_OK(kv_put(&t, k, v, 3, 0));
        isthmus_kv_read_args r = {t.state, 0, t.seq, 0, 3, back, 64, bv, 64};
        CHECK_OK(isthmus_kv_read(&r));
        for (int tt = 0; tt < 3; tt++)
            for (int h = 0; h < 2; h++) {
                float amax = k[tt * 64 + h * 32 + 4];
                CHECK(back[tt * 64 + h * 32 + 3] == -back[tt * 64 + h * 32 + 4] && isfinite(back[tt * 64 + h * 32 + 3]),
                      "k -amax %g read %g, +amax read %g", amax, back[tt * 64 + h * 32 + 3], back[tt * 64 + h * 32 + 4]);
                CHECK(fabsf(back[tt * 64 + h * 32 + 4] - amax) <= amax * 1e-6f, "amax %g read %g", amax, back[tt * 64 + h * 32 + 4]);
                CHECK(isfinite(bv[tt * 64 + h * 32 + 9]), "v -amax read %g", bv[tt * 64 + h * 32 + 9]);
            }
        kv_drop(&t);
    }
    gfree(k), gfree(v), gfree(back), gfree(bv);
}

/* rope: a NaN or inf element spoils its own pair only (both outputs non-finite), the rest is untouched. */
static void rope_pairs(void) {
    uint64_t s = t_seed;
    float *x0 = rndf(&s, 2 * 64, -2, 2), *x = galloc(2 * 64 * 4);
    int64_t pos[2] = {3, 1000};
    for (int style = 1; style <= 2; style++)
        for (int b = 0; b < 3; b++) {
            memcpy(x, x0, 2 * 64 * 4);
            x[1 * 64 + 10] = BAD[b]; /* token 1, head 0, dim 10 */
            isthmus_rope_args a = {2, 2, 32, x, 64, pos, {style, 0, 10000.0f}};
            CHECK_OK(isthmus_rope(&a));
            int partner = style == 1 ? 11 : 26; /* interleaved (10, 11); half (10, 26) */
            for (int i = 0; i < 2 * 64; i++) {
                int bad = i == 64 + 10 || i == 64 + partner;
                CHECK(bad ? !isfinite(x[i]) : isfinite(x[i]), "style %d bad %s: x[%d] = %g", style, cname(cls(BAD[b])), i, x[i]);
            }
        }
    gfree(x0), gfree(x);
}

/* attention: a non-finite q is refused naming row, head and dimension; the cache only holds finite values
 * (kv_write), and slots past the written positions (here NaN bytes) never leak into the output. */
static void attention_nonfinite(void) {
    uint64_t s = t_seed;
    const int32_t dts[4] = {ISTHMUS_KV_F32, ISTHMUS_KV_F16, ISTHMUS_KV_BF16, ISTHMUS_KV_S8};
    const int64_t len = 37, qh = 4, w = qh * 32;
    float *k = rndf(&s, len * 64, -1, 1), *v = rndf(&s, len * 64, -1, 1), *q = rndf(&s, 3 * w, -1, 1);
    float *out = galloc(3 * w * 4), *lse = galloc(3 * qh * 4);
    for (int d = 0; d < 4; d++)
        for (int bs = 1; bs <= 16; bs *= 16) {
            kvt t;
            kv_make(&t, dts[d], bs, 0xff, len);
            CHECK_OK(kv_put(&t, k, v, (int32_t)len, 0));
            ISA_LOOP {
                FOR_ISA(isa);
                int32_t ql = 3;
                isthmus_attention_args a = {.kv = t.state, .layer = 0, .n_seqs = 1, .seqs = &t.seq, .q_lens = &ql,
                                            .q_heads = (int32_t)qh, .q = q, .ldq = w, .out = out, .ldo = w, .lse = lse,
                                            .scale = 0.17f, .softcap = d == 1 ? 30.0f : 0.0f};
                CHECK_OK(isthmus_attention(&a));
                for (int64_t i = 0; i < 3 * w; i++) CHECK(isfinite(out[i]), "dtype %d bs %d: out[%lld] = %g (NaN pool bytes leaked)", dts[d], bs, (long long)i, out[i]);
                for (int b = 0; b < 3; b++) {
                    float keep = q[2 * w + 2 * 32 + 7];
                    q[2 * w + 2 * 32 + 7] = BAD[b];
                    CHECK_FAILS(isthmus_attention(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
                    CHECK(has("q[2, 71]"), "attention message: %s", isthmus_last_error());
                    q[2 * w + 2 * 32 + 7] = keep;
                }
                a.softcap = NAN;
                CHECK_FAILS(isthmus_attention(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
                a.softcap = INFINITY;
                CHECK_FAILS(isthmus_attention(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
                a.softcap = 0, a.scale = INFINITY;
                CHECK_FAILS(isthmus_attention(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
            }
            kv_drop(&t);
        }
    gfree(k), gfree(v), gfree(q), gfree(out), gfree(lse);
}

/* ---------------------------------------------------------------- sparse, pruning */

/* spmm f32: a NaN in x[m, k] makes y[m, n] NaN exactly for the rows n that store column k (a stored zero
 * included); a NaN stored weight w[n, k] makes y[:, n] NaN. S8: a NaN x_scale makes its row NaN, a NaN bias
 * its column. The same in every variant. */
static void spmm_propagate(void) {
    uint64_t s = t_seed;
    const int64_t n = 8, kk = 32, m = 3;
    /* dense W with a pattern: BSR 1x4 blocks; w[n, k] stored when block (n, k/4) is kept */
    float *dense = galloc(n * kk * 4);
    int8_t *dq = galloc(n * kk);
    uint8_t kept[8][8];
    int64_t row_ptr[9] = {0}, nnz = 0;
    int32_t col[64];
    for (int64_t r = 0; r < n; r++) {
        for (int64_t b = 0; b < 8; b++) {
            kept[r][b] = (uint8_t)((rng_next(&s) % 3) != 0 || b == 2 * (r % 4));
            if (kept[r][b]) col[nnz++] = (int32_t)b;
        }
        row_ptr[r + 1] = nnz;
    }
    float *vals = galloc((size_t)nnz * 4 * 4), *scales = rndf(&s, n, 0.01f, 0.1f);
    int8_t *vq = galloc((size_t)nnz * 4);
    for (int64_t i = 0; i < nnz * 4; i++) vals[i] = rng_f32(&s, -1, 1), vq[i] = rng_s8(&s);
    vals[1] = 0.0f; /* a stored zero in row 0's first kept block */
    float *x = rndf(&s, m * kk, -1, 1), *y = galloc(m * n * 4), *xs = rndf(&s, m, 0.01f, 1), *bias = rndf(&s, n, -1, 1);
    int8_t *xq = galloc(m * kk);
    for (int64_t i = 0; i < m * kk; i++) xq[i] = rng_s8(&s);
    int64_t bad_k = 0; /* a column row 0 stores, in the block with the stored zero */
    for (int64_t b = 0; b < 8; b++) if (kept[0][b]) { bad_k = 4 * b + 1; break; }
    x[1 * kk + bad_k] = NAN;
    (void)dense, (void)dq;
    ISA_LOOP for (int dt = 0; dt < 2; dt++) {
        FOR_ISA(isa);
        isthmus_sparse_matrix sm = {n, kk, ISTHMUS_SPARSE_BSR, dt ? ISTHMUS_DTYPE_S8 : ISTHMUS_DTYPE_F32, 1, 4, nnz, row_ptr, col,
                                    dt ? (const void *)vq : (const void *)vals, NULL, dt ? scales : NULL};
        int64_t bytes;
        CHECK_OK(isthmus_sparse_packed_size(&sm, &bytes));
        void *pk = galloc((size_t)bytes);
        CHECK_OK(isthmus_sparse_pack(&sm, pk, bytes));
        if (!dt) {
            isthmus_spmm_args a = {.m = m, .x = x, .ldx = kk, .w_packed = pk, .y = y, .ldy = n};
            CHECK_OK(isthmus_spmm(&a));
            for (int64_t r = 0; r < m; r++)
                for (int64_t c = 0; c < n; c++) {
                    int want = r == 1 && kept[c][bad_k / 4] ? QNAN : FIN;
                    CHECK(cls(y[r * n + c]) == want, "f32 y[%lld, %lld] %s want %s", (long long)r, (long long)c, cname(cls(y[r * n + c])), cname(want));
                }
        } else {
            float keep = xs[2];
            xs[2] = NAN, bias[5] = NAN;
            isthmus_spmm_args a = {.m = m, .xq = xq, .ldxq = kk, .x_scales = xs, .w_packed = pk, .bias = bias, .y = y, .ldy = n};
            CHECK_OK(isthmus_spmm(&a));
            for (int64_t r = 0; r < m; r++)
                for (int64_t c = 0; c < n; c++) {
                    int want = r == 2 || c == 5 ? QNAN : FIN;
                    CHECK(cls(y[r * n + c]) == want, "s8 y[%lld, %lld] %s want %s", (long long)r, (long long)c, cname(cls(y[r * n + c])), cname(want));
                }
            xs[2] = keep, bias[5] = 0.5f;
            /* S8 scales must be finite and >= 0 */
            scales[4] = NAN;
            CHECK_FAILS(isthmus_sparse_packed_size(&sm, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
            scales[4] = INFINITY;
            CHECK_FAILS(isthmus_sparse_packed_size(&sm, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
            scales[4] = 0.05f;
        }
        gfree(pk);
    }
    /* 2:4 f32 with a stored NaN weight: its column of y is NaN, the rest finite */
    {
        const int64_t n2 = 5, k2 = 16;
        float *v24 = rndf(&s, n2 * k2 / 2, -1, 1), *x2 = rndf(&s, m * k2, -1, 1), *y2 = galloc(m * n2 * 4);
        uint16_t meta[5];
        for (int64_t r = 0; r < n2; r++) meta[r] = (uint16_t)((0 | 1 << 2) * 0x1111); /* every group keeps (0, 1) */
        v24[3 * (k2 / 2) + 5] = NAN;
        ISA_LOOP {
            FOR_ISA(isa);
            isthmus_sparse_matrix sm = {n2, k2, ISTHMUS_SPARSE_2_4, ISTHMUS_DTYPE_F32, 0, 0, 0, NULL, NULL, v24, meta, NULL};
            int64_t bytes;
            CHECK_OK(isthmus_sparse_packed_size(&sm, &bytes));
            void *pk = galloc((size_t)bytes);
            CHECK_OK(isthmus_sparse_pack(&sm, pk, bytes));
            isthmus_spmm_args a = {.m = m, .x = x2, .ldx = k2, .w_packed = pk, .y = y2, .ldy = n2};
            CHECK_OK(isthmus_spmm(&a));
            for (int64_t i = 0; i < m * n2; i++)
                CHECK(cls(y2[i]) == (i % n2 == 3 ? QNAN : FIN), "2:4 y[%lld] %s", (long long)i, cname(cls(y2[i])));
            gfree(pk);
        }
        gfree(v24), gfree(x2), gfree(y2);
    }
    gfree(dense), gfree(dq), gfree(vals), gfree(scales), gfree(vq), gfree(x), gfree(y), gfree(xs), gfree(bias), gfree(xq);
}

/* prune_mask refuses NaN/inf weights and NaN/inf/negative calibration norms, naming the position. */
static void prune_refuses(void) {
    uint64_t s = t_seed;
    float *w = rndf(&s, 4 * 16, -1, 1), *an = rndf(&s, 16, 0.1f, 1);
    uint8_t *mask = galloc(4 * 16);
    for (int b = 0; b < 3; b++) {
        isthmus_prune_args a = {.n = 4, .k = 16, .w = w, .ldw = 16, .act_norm = an, .structure = ISTHMUS_PRUNE_PER_ROW,
                                .sparsity = 0.5, .seed = 1, .mask = mask, .ldm = 16};
        float keep = w[2 * 16 + 9];
        w[2 * 16 + 9] = BAD[b];
        CHECK_FAILS(isthmus_prune_mask(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
        CHECK(has("2") && has("9"), "prune w: %s", isthmus_last_error());
        w[2 * 16 + 9] = keep;
        keep = an[11];
        an[11] = BAD[b];
        CHECK_FAILS(isthmus_prune_mask(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
        CHECK(has("11"), "prune act_norm: %s", isthmus_last_error());
        an[11] = keep;
        CHECK_OK(isthmus_prune_mask(&a));
    }
    gfree(w), gfree(an), gfree(mask);
}

/* ---------------------------------------------------------------- transformer blocks */

/* rmsnorm: a row whose sum of squares is not finite (NaN or inf in x or residual, or |x| so large that the
 * squares overflow) is all NaN; other rows are untouched. A NaN weight makes its column NaN. */
static void rmsnorm_rows(void) {
    uint64_t s = t_seed;
    const int64_t rows = 6, dim = 67;
    float *x0 = rndf(&s, rows * dim, -2, 2), *res = rndf(&s, rows * dim, -1, 1), *w = rndf(&s, dim, 0.5f, 1.5f);
    float *x = galloc(rows * dim * 4), *y = galloc(rows * dim * 4);
    x0[0 * dim + 5] = NAN, x0[1 * dim + 66] = INFINITY, x0[2 * dim + 30] = -INFINITY;
    for (int64_t i = 0; i < dim; i++) x0[3 * dim + i] = 1e20f; /* squares overflow */
    res[4 * dim + 1] = NAN;
    for (int use_res = 0; use_res < 2; use_res++)
        ISA_LOOP {
            FOR_ISA(isa);
            memcpy(x, x0, rows * dim * 4);
            isthmus_rmsnorm_args a = {rows, dim, x, dim, use_res ? res : NULL, dim, w, 1e-5f, y, dim};
            CHECK_OK(isthmus_rmsnorm(&a));
            for (int64_t r = 0; r < rows; r++)
                for (int64_t i = 0; i < dim; i++) {
                    int want = r < 4 || (use_res && r == 4) ? QNAN : FIN;
                    CHECK(cls(y[r * dim + i]) == want, "res %d y[%lld, %lld] = %g, want %s", use_res, (long long)r, (long long)i, y[r * dim + i], cname(want));
                }
            w[9] = NAN;
            memcpy(x, x0, rows * dim * 4);
            CHECK_OK(isthmus_rmsnorm(&a));
            for (int64_t i = 0; i < dim; i++) CHECK(cls(y[5 * dim + i]) == (i == 9 ? QNAN : FIN), "weight NaN: y[5, %lld] %g", (long long)i, y[5 * dim + i]);
            w[9] = 1.0f;
        }
    gfree(x0), gfree(res), gfree(w), gfree(x), gfree(y);
}

/* swiglu, element-wise: NaN in gate or up -> NaN; gate +inf -> up * inf (NaN for up = 0); gate -inf -> NaN
 * (-inf * sigmoid(-inf) = -inf * 0); up +-inf -> +-inf * silu(gate) (NaN where silu(gate) is 0: gate = 0 or
 * gate < -87.3, where every variant's exp(gate) is 0). The class of every output is the same in every variant. */
static void swiglu_elements(void) {
    const float gs[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1.5f, -3.0f, -90.0f, -87.0f, 100.0f, -1e30f, 1e30f};
    const float us[] = {NAN, INFINITY, -INFINITY, 0.0f, 2.0f, -0.5f};
    enum { NG = sizeof gs / sizeof gs[0], NU = sizeof us / sizeof us[0], N = NG * NU * 3 };
    float g[N], u[N], o[N];
    int c0[N];
    for (int i = 0; i < N; i++) g[i] = gs[(i / NU) % NG], u[i] = us[i % NU];
    ISA_LOOP {
        FOR_ISA(isa);
        isthmus_swiglu_args a = {1, N, g, N, u, N, o, N};
        CHECK_OK(isthmus_swiglu(&a));
        for (int i = 0; i < N; i++) {
            float gv = g[i], uv = u[i];
            int want;
            if (isnan(gv) || isnan(uv) || gv == -INFINITY) want = QNAN;
            else if (gv == INFINITY) want = uv == 0 ? QNAN : uv > 0 ? PINF : NINF;
            else if (isinf(uv)) {
                int zero = gv == 0 || gv < -87.33654f;
                want = zero ? QNAN : ((gv > 0) == (uv > 0)) ? PINF : NINF;
            } else want = FIN;
            CHECK(cls(o[i]) == want, "swiglu(%g, %g) = %g, want %s", gv, uv, o[i], cname(want));
            if (isa == ISTHMUS_ISA_REF) c0[i] = cls(o[i]);
            else CHECK(cls(o[i]) == c0[i], "swiglu(%g, %g) = %g: class differs from ref (%s)", gv, uv, o[i], cname(c0[i]));
        }
    }
}

/* ---------------------------------------------------------------- sampling and verification */

/* sample: NaN and +inf logits are refused naming (row, token); -inf never chosen; a row of -inf refused.
 * The token written is never taken from a NaN. verify: the same for logits rows, and NaN/inf/negative
 * probabilities refused naming (row, token). */
static void sample_verify_refuse(void) {
    uint64_t s = t_seed;
    const int64_t V = 50;
    float *lg = rndf(&s, 2 * V, -3, 3), *probs = galloc(2 * V * 4);
    isthmus_sampling_params p = {.temperature = 0.8f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .repetition_penalty = 1.0f};
    uint64_t streams[2] = {1, 2};
    int32_t tok[2];
    ISA_LOOP for (int greedy = 0; greedy < 2; greedy++) {
        FOR_ISA(isa);
        p.temperature = greedy ? 0.0f : 0.8f;
        isthmus_sample_args a = {.rows = 2, .vocab = V, .logits = lg, .ld = V, .params = &p, .seed = 7, .streams = streams,
                                 .tokens = tok, .probs = probs, .ldp = V};
        for (int b = 0; b < 2; b++) {
            float keep = lg[V + 17];
            lg[V + 17] = BAD[b];
            tok[0] = tok[1] = -5;
            CHECK_FAILS(isthmus_sample(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
            CHECK(has("[1, 17]"), "sample: %s", isthmus_last_error());
            lg[V + 17] = keep;
        }
        /* -inf: allowed, never chosen */
        for (int64_t i = 0; i < V; i++) if (i != 3 && i != 40) lg[V + i] = -INFINITY;
        CHECK_OK(isthmus_sample(&a));
        CHECK(tok[1] == 3 || tok[1] == 40, "sample chose a -inf token %d", tok[1]);
        for (int64_t i = 0; i < V; i++) lg[V + i] = -INFINITY;
        CHECK_FAILS(isthmus_sample(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
        for (int64_t i = 0; i < V; i++) lg[V + i] = rng_f32(&s, -3, 3);
        /* verify a chain of 1: target rows 0, 1 (probs or logits), draft row 0 */
        int32_t draft[1] = {9}, acc[1], out[2];
        for (int kind = 0; kind < 2; kind++) {
            float *td = galloc(2 * V * 4), *dd = galloc(V * 4);
            for (int64_t i = 0; i < 2 * V; i++) td[i] = kind ? rng_f32(&s, -2, 2) : rng_f32(&s, 0.01f, 1);
            for (int64_t i = 0; i < V; i++) dd[i] = kind ? rng_f32(&s, -2, 2) : rng_f32(&s, 0.01f, 1);
            isthmus_verify_args va = {.batch = 1, .nodes = 1, .vocab = V, .greedy = greedy, .draft_tokens = draft, .ld_tokens = 1,
                                      .draft = {.kind = kind, .data = dd, .ld = V, .params = p},
                                      .target = {.kind = kind, .data = td, .ld = V, .params = p},
                                      .seed = 3, .streams = streams, .accepted = acc, .tokens = out, .ld_out = 2};
            va.draft.params.temperature = va.target.params.temperature = 1.0f;
            CHECK_OK(isthmus_verify(&va));
            const float bads[4] = {NAN, INFINITY, -INFINITY, -1.0f};
            for (int b = 0; b < 4; b++) {
                if (kind == 1 && b >= 2) continue; /* -inf and negative logits are fine */
                float keep = td[0 * V + 9];
                td[9] = bads[b];
                CHECK_FAILS(isthmus_verify(&va), ISTHMUS_ERR_INVALID_ARGUMENT);
                CHECK(has("[0, 9]"), "verify kind %d greedy %d bad %g: %s", kind, greedy, bads[b], isthmus_last_error());
                td[9] = keep;
                if (greedy) continue; /* draft is not read */
                keep = dd[9];
                dd[9] = bads[b];
                CHECK_FAILS(isthmus_verify(&va), ISTHMUS_ERR_INVALID_ARGUMENT);
                CHECK(has("[0, 9]"), "verify draft kind %d bad %g: %s", kind, bads[b], isthmus_last_error());
                dd[9] = keep;
            }
            CHECK_OK(isthmus_verify(&va));
            CHECK(out[0] >= 0 && out[0] < V && out[acc[0]] >= 0 && out[acc[0]] < V, "tokens %d %d", out[0], out[1]);
            gfree(td), gfree(dd);
        }
    }
    gfree(lg), gfree(probs);
}

const test_case hygiene_tests[] = {
    {"hygiene", "dequantize_scales_propagate", dequantize_scales_propagate},
    {"hygiene", "quantize_never_minus_128", quantize_never_minus_128},
    {"hygiene", "quantize_denormals_bit_identical", quantize_denormals_bit_identical},
    {"hygiene", "gemm_scales_bias", gemm_scales_bias},
    {"hygiene", "kv_write_refuses_nonfinite", kv_write_refuses_nonfinite},
    {"hygiene", "kv_s8_extremes", kv_s8_extremes},
    {"hygiene", "rope_pairs", rope_pairs},
    {"hygiene", "attention_nonfinite", attention_nonfinite},
    {"hygiene", "spmm_propagate", spmm_propagate},
    {"hygiene", "prune_refuses", prune_refuses},
    {"hygiene", "rmsnorm_rows", rmsnorm_rows},
    {"hygiene", "swiglu_elements", swiglu_elements},
    {"hygiene", "sample_verify_refuse", sample_verify_refuse},
    {NULL, NULL, NULL},
};
