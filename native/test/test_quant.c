/* Quantization: every variant bit-identical to the reference; the reference checked against its
 * definition (round half to even of x / (max|x| / 127), clamped to [-127, 127]); bad input refused. */
#include "harness.h"

#include <math.h>

static const int32_t GRANS[] = {ISTHMUS_SCALE_PER_TENSOR, ISTHMUS_SCALE_PER_ROW, ISTHMUS_SCALE_PER_GROUP};

/* definition, in double where it matters */
static void quant_def(const float *x, int64_t n, int8_t *q, float *scale) {
    float amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    float s = amax / 127.0f;
    *scale = s;
    for (int64_t i = 0; i < n; i++) {
        if (s == 0) { q[i] = 0; continue; }
        double v = nearbyint((double)(x[i] / s)); /* x / s in f32 as specified, then RNE */
        q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
}

static void run_case(int64_t rows, int64_t cols, int32_t gran, int64_t group, uint64_t seed) {
    t_seed = seed;
    uint64_t s = seed;
    int64_t ldx = cols + (int64_t)(s % 3), ldq = cols + 1;
    float *x = galloc(sizeof(float) * rows * ldx);
    for (int64_t i = 0; i < rows * ldx; i++) x[i] = rng_f32(&s, -3.0f, 3.0f) * (float)(1 + i % 7);
    if (rows > 1) for (int64_t c = 0; c < cols; c++) x[ldx + c] = 0.0f; /* an all-zero row */
    int64_t nsc = isthmus_scale_count(rows, cols, gran, group);
    CHECK(nsc >= 1, "scale count");
    int8_t *qref = galloc(rows * ldq), *q = galloc(rows * ldq);
    float *sref = galloc(sizeof(float) * nsc), *sc = galloc(sizeof(float) * nsc);
    float *xd = galloc(sizeof(float) * rows * ldx);
    isthmus_quantize_args a = {rows, cols, x, ldx, gran, group, qref, ldq, sref};
    isthmus_set_isa_cap(ISTHMUS_ISA_REF);
    CHECK_OK(isthmus_quantize_s8(&a));
    /* reference against the definition */
    int64_t g = gran == ISTHMUS_SCALE_PER_GROUP ? group : cols;
    if (gran != ISTHMUS_SCALE_PER_TENSOR) {
        int8_t *qd = malloc(cols);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c0 = 0, j = 0; c0 < cols; c0 += g, j++) {
                int64_t n = cols - c0 < g ? cols - c0 : g;
                float sd;
                quant_def(x + r * ldx + c0, n, qd, &sd);
                int64_t ng = (cols + g - 1) / g;
                CHECK(sd == sref[r * ng + j], "scale r %lld g %lld: %g vs %g", (long long)r, (long long)j, sd, sref[r * ng + j]);
                CHECK(memcmp(qd, qref + r * ldq + c0, n) == 0, "q differs from the definition, row %lld", (long long)r);
            }
        free(qd);
    }
    for (int32_t isa = ISTHMUS_ISA_AVX2; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        memset(q, 0x7f, rows * ldq);
        a.q = q;
        a.scales = sc;
        CHECK_OK(isthmus_quantize_s8(&a));
        for (int64_t r = 0; r < rows; r++)
            CHECK(memcmp(q + r * ldq, qref + r * ldq, cols) == 0, "row %lld differs from ref (%lldx%lld gran %d)",
                  (long long)r, (long long)rows, (long long)cols, gran);
        CHECK(memcmp(sc, sref, sizeof(float) * nsc) == 0, "scales differ from ref");
        a.q = qref;
        a.scales = sref;
    }
    /* dequantize: every variant equal, error within s/2 */
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        for (int64_t i = 0; i < rows * ldx; i++) xd[i] = NAN;
        isthmus_dequantize_args d = {rows, cols, qref, ldq, gran, group, sref, xd, ldx};
        CHECK_OK(isthmus_dequantize_s8(&d));
        int64_t ng = (cols + g - 1) / g;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                float sv = gran == ISTHMUS_SCALE_PER_TENSOR ? sref[0] : sref[r * ng + (gran == ISTHMUS_SCALE_PER_ROW ? 0 : c / g)];
                float want = (float)qref[r * ldq + c] * sv;
                CHECK(xd[r * ldx + c] == want, "dequant [%lld,%lld]", (long long)r, (long long)c);
                CHECK(fabsf(xd[r * ldx + c] - x[r * ldx + c]) <= 0.5f * sv * 1.0001f + 1e-30f, "round trip error");
                CHECK(qref[r * ldq + c] >= -127, "-128 produced");
            }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = cols; c < ldx; c++) CHECK(isnan(xd[r * ldx + c]), "padding written");
    }
    CHECK(gcheck(x) && gcheck(q) && gcheck(qref) && gcheck(sc) && gcheck(sref) && gcheck(xd), "guard bytes overwritten");
    gfree(x); gfree(q); gfree(qref); gfree(sc); gfree(sref); gfree(xd);
}

static void variants_match_reference(void) {
    static const int64_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 257, 1000, 4099};
    uint64_t seed = t_seed;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int gi = 0; gi < 3; gi++)
            for (int64_t group = 32; group <= 256; group *= 2) {
                if (GRANS[gi] != ISTHMUS_SCALE_PER_GROUP && group > 32) continue;
                run_case(1 + (int64_t)(i % 4), sizes[i], GRANS[gi], group, seed++);
            }
}

static void ties_round_to_even(void) {
    /* x / s lands exactly on k + 0.5: 127 * 0.5 / 127 ... build x = (k + 0.5) * s with s = 1 */
    float x[8] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f};
    int8_t want[8] = {127, 0, 2, 2, 0, -2, -2, 126};
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        int8_t q[8];
        float s;
        isthmus_quantize_args a = {1, 8, x, 8, ISTHMUS_SCALE_PER_TENSOR, 0, q, 8, &s};
        CHECK_OK(isthmus_quantize_s8(&a));
        CHECK(s == 1.0f, "scale %g", s);
        CHECK(memcmp(q, want, 8) == 0, "ties: %d %d %d %d %d %d %d %d", q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]);
    }
}

static void non_finite_refused(void) {
    float x[40];
    for (int i = 0; i < 40; i++) x[i] = (float)i;
    int8_t q[40];
    float s[2];
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        x[37] = NAN;
        isthmus_quantize_args a = {1, 40, x, 40, ISTHMUS_SCALE_PER_ROW, 0, q, 40, s};
        CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
        CHECK(strstr(isthmus_last_error(), "[0, 37]") != NULL, "names the position: %s", isthmus_last_error());
        x[37] = INFINITY;
        a.granularity = ISTHMUS_SCALE_PER_GROUP;
        a.group = 32;
        CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
        x[37] = 37.0f;
        x[3] = -INFINITY;
        a.granularity = ISTHMUS_SCALE_PER_TENSOR;
        CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
        x[3] = 3.0f;
    }
}

/* Inputs at the ends of float's range round-trip to finite values: for max|x| near FLT_MAX, max / 127 can
 * round up so that 127 * s overflows, and dequantizing -127 gave -inf (found by fuzz_quant; the input is
 * also in native/fuzz/corpus/quant). Tiny and denormal maxima keep a non-zero scale. */
static void extremes(void) {
    const float big[] = {-3.40282347e38f, 3.4028e38f, 1.0e38f, 0.25f, -3.40282347e38f};
    const float tiny[] = {1e-45f, -3e-44f, 1e-40f, 0.0f, -1e-39f};
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        for (int which = 0; which < 2; which++) {
            const float *x = which ? tiny : big;
            int8_t q[5];
            float s, back[5];
            isthmus_quantize_args a = {1, 5, x, 5, ISTHMUS_SCALE_PER_TENSOR, 0, q, 5, &s};
            CHECK_OK(isthmus_quantize_s8(&a));
            CHECK(s > 0 && isfinite(s * 127.0f), "scale %g: 127 s = %g", s, s * 127.0f);
            isthmus_dequantize_args d = {1, 5, q, 5, ISTHMUS_SCALE_PER_TENSOR, 0, &s, back, 5};
            CHECK_OK(isthmus_dequantize_s8(&d));
            for (int i = 0; i < 5; i++) {
                CHECK(q[i] >= -127 && isfinite(back[i]), "x %g -> q %d -> %g", x[i], q[i], back[i]);
                CHECK(fabsf(back[i] - x[i]) <= s * (0.5f + 0x1p-16f), "x %g -> %g, scale %g", x[i], back[i], s);
            }
        }
    }
}

static void bad_arguments(void) {
    float x[64] = {1};
    int8_t q[64];
    float s[4];
    isthmus_quantize_args ok = {2, 32, x, 32, ISTHMUS_SCALE_PER_GROUP, 32, q, 32, s};
    CHECK_OK(isthmus_quantize_s8(&ok));
    isthmus_quantize_args a;
    CHECK_FAILS(isthmus_quantize_s8(NULL), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.rows = 0; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.cols = -1; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.ldx = 31; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(strstr(isthmus_last_error(), "ldx") != NULL, "names ldx: %s", isthmus_last_error());
    a = ok; a.ldq = 3; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.x = NULL; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.q = NULL; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.scales = NULL; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.group = 48; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.group = 0; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.granularity = 7; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.rows = (int64_t)1 << 40; a.ldx = (int64_t)1 << 40; CHECK_FAILS(isthmus_quantize_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    isthmus_dequantize_args d = {2, 32, q, 32, ISTHMUS_SCALE_PER_ROW, 0, s, x, 32};
    CHECK_OK(isthmus_dequantize_s8(&d));
    d.scales = NULL; CHECK_FAILS(isthmus_dequantize_s8(&d), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_dequantize_s8(NULL), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(isthmus_scale_count(3, 100, ISTHMUS_SCALE_PER_GROUP, 32) == 12, "scale count per group");
    CHECK(isthmus_scale_count(3, 100, ISTHMUS_SCALE_PER_ROW, 0) == 3, "scale count per row");
    CHECK(isthmus_scale_count(3, 100, 9, 0) == 0, "scale count bad granularity");
    isthmus_set_isa_cap(7); /* leaves an unrelated message behind */
    CHECK(isthmus_scale_count((int64_t)1 << 40, (int64_t)1 << 40, ISTHMUS_SCALE_PER_GROUP, 32) == 0, "overflowing count");
    CHECK(strstr(isthmus_last_error(), "isthmus_scale_count") != NULL, "its own message: %s", isthmus_last_error());
}

const test_case quant_tests[] = {
    {"quant", "variants_match_reference", variants_match_reference},
    {"quant", "ties_round_to_even", ties_round_to_even},
    {"quant", "non_finite_refused", non_finite_refused},
    {"quant", "extremes", extremes},
    {"quant", "bad_arguments", bad_arguments},
    {NULL, NULL, NULL},
};
