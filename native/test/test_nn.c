/* Tests of the transformer-block ops (RMSNorm, SwiGLU): every ISA variant against a double reference on
 * random seeded inputs, dims 1, odd, non-multiples of 8 and 16, and large (4096, 5000), with padded row
 * strides, the residual form, in-place outputs, fused gate/up halves, and bad arguments. */
#include "harness.h"

#include <math.h>

static const int64_t DIMS[] = {1, 7, 16, 17, 33, 4096, 5000};
static const int64_t ROWS[] = {1, 3, 64};
#define NDIMS (int)(sizeof DIMS / sizeof DIMS[0])

/* Tolerances.
 * RMSNorm: the sum of squares is formed in f32 over at most n/8 terms per partial sum (ref: 8 partials;
 * avx2: 32; avx512: 64); for n = 5000 random terms that is a relative error of order sqrt(625) * 2^-24 =
 * 1.5e-6 on the sum, half of it on 1/rms, plus three roundings per output: 1e-5 relative (the header's
 * bound) leaves a margin of several times over what the kernels reach (the largest error is printed).
 * SwiGLU: exp within 2 ulp, then four roundings (1 + e, the division, two products): about 6 ulp =
 * 3.6e-7 relative; 2e-6 relative. The SIMD exp flushes to 0 below -87.34 (where f32 exp turns subnormal),
 * so for g < -87.34 they return 0 where the true value is |g| e^g |u| <= 87.34 * e^-87.34 * |u| < 1.1e-36 * |u|:
 * the absolute term is 1.1e-36 * |u|. */
#define RMS_RTOL 1e-5
#define SWIGLU_RTOL 2e-6
#define SWIGLU_ATOL 1.1e-36 /* times |up| */
static double rms_worst, swiglu_worst;

static float *rnd(uint64_t *rng, int64_t n, float lo, float hi) {
    float *x = galloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) x[i] = rng_f32(rng, lo, hi);
    return x;
}

/* mode 0: y separate; 1: y = x (in place). With residual or not. */
static void rmsnorm_case(int64_t rows, int64_t dim, int res, int inplace, uint64_t *rng) {
    const int64_t ldx = dim + (rows > 1 ? 3 : 0), ldy = inplace ? ldx : dim + 5, ldr = dim + 1;
    float *x0 = rnd(rng, rows * ldx, -3, 3), *r = res ? rnd(rng, rows * ldr, -1, 1) : NULL;
    float *w = rnd(rng, dim, 0.5f, 1.5f);
    /* a row of tiny values (eps dominates) and one of large values */
    if (rows > 2) {
        for (int64_t i = 0; i < dim; i++) x0[ldx + i] = (float)(i % 3) * 1e-4f;
        for (int64_t i = 0; i < dim; i++) x0[2 * ldx + i] *= 1e4f;
    }
    const float eps = 1e-5f;
    double *want = malloc((size_t)(rows * dim) * 8);
    for (int64_t rr = 0; rr < rows; rr++) {
        double ss = 0;
        for (int64_t i = 0; i < dim; i++) {
            double v = res ? (double)(x0[rr * ldx + i] + r[rr * ldr + i]) : x0[rr * ldx + i];
            ss += v * v;
        }
        double inv = 1.0 / sqrt(ss / dim + eps);
        for (int64_t i = 0; i < dim; i++) {
            double v = res ? (double)(x0[rr * ldx + i] + r[rr * ldr + i]) : x0[rr * ldx + i];
            want[rr * dim + i] = v * inv * w[i];
        }
    }
    float *x = galloc((size_t)(rows * ldx) * 4), *y = inplace ? x : galloc((size_t)(rows * ldy) * 4);
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        memcpy(x, x0, (size_t)(rows * ldx) * 4);
        if (!inplace) memset(y, 0x7f, (size_t)(rows * ldy) * 4);
        isthmus_rmsnorm_args a = {.rows = rows, .dim = dim, .x = x, .ldx = ldx, .residual = r, .ldr = ldr, .weight = w,
                                  .eps = eps, .y = y, .ldy = ldy};
        CHECK_OK(isthmus_rmsnorm(&a));
        CHECK(gcheck(x) && gcheck(y), "rmsnorm guard overwritten");
        long bad = 0;
        for (int64_t rr = 0; rr < rows; rr++)
            for (int64_t i = 0; i < dim; i++) {
                double got = y[rr * ldy + i], ref = want[rr * dim + i], err = fabs(got - ref);
                if (fabs(ref) > 0 && err / fabs(ref) > rms_worst) rms_worst = err / fabs(ref);
                if (!(err <= RMS_RTOL * fabs(ref)) && bad++ < 3)
                    CHECK(0, "rmsnorm rows=%lld dim=%lld res=%d inplace=%d: [%lld][%lld] = %.9g, reference %.9g",
                          (long long)rows, (long long)dim, res, inplace, (long long)rr, (long long)i, got, ref);
                if (!inplace) { /* x: the f32 sum written back, or untouched */
                    float xv = res ? x0[rr * ldx + i] + r[rr * ldr + i] : x0[rr * ldx + i];
                    if (memcmp(&x[rr * ldx + i], &xv, 4) && bad++ < 3)
                        CHECK(0, "rmsnorm res=%d: x[%lld][%lld] = %.9g, want %.9g", res, (long long)rr, (long long)i,
                              x[rr * ldx + i], xv);
                }
            }
        /* the padding between rows is never written */
        if (!inplace && rows > 1)
            for (int64_t i = dim; i < ldx; i++) CHECK(x[i] == x0[i], "rmsnorm wrote x padding");
    }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
    free(want);
    gfree(x0);
    gfree(r);
    gfree(w);
    gfree(x);
    if (!inplace) gfree(y);
}

static void rmsnorm_reference(void) {
    uint64_t rng = t_seed;
    for (int di = 0; di < NDIMS; di++)
        for (int ri = 0; ri < 3; ri++)
            for (int res = 0; res < 2; res++)
                for (int inplace = 0; inplace < 2; inplace++) {
                    if (ri == 2 && DIMS[di] < 4096 && (res || inplace)) continue;
                    rmsnorm_case(ROWS[ri], DIMS[di], res, inplace, &rng);
                }
    printf("       rmsnorm: largest relative error against the double reference %.3g (bound %.0e)\n", rms_worst,
           RMS_RTOL);
}

static double swiglu_ref(double g, double u) { return g / (1.0 + exp(-g)) * u; }

/* layout 0: separate buffers; 1: out = gate; 2: gate and up halves of one [rows, 2n] buffer, out
 * separate; 3: the halves, out = gate. */
static void swiglu_case(int64_t rows, int64_t n, int layout, uint64_t *rng) {
    const int fused = layout >= 2;
    const int64_t ldg = fused ? 2 * n + 3 : n + 1, ldu = fused ? ldg : n + 2;
    float *g0 = rnd(rng, rows * ldg, -12, 12), *u0 = fused ? g0 : rnd(rng, rows * ldu, -2, 2);
    const int64_t uoff = fused ? n : 0;
    static const float SPECIAL[] = {0.0f, -0.0f, 100.0f, -100.0f, -87.5f, 88.0f, 1e-30f, -1e-30f, 20.0f, -20.0f};
    for (int i = 0; i < 10 && i < rows * n; i++) g0[(i / n) * ldg + i % n] = SPECIAL[i];
    double *want = malloc((size_t)(rows * n) * 8);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) want[r * n + i] = swiglu_ref(g0[r * ldg + i], u0[r * ldu + uoff + i]);
    float *g = galloc((size_t)(rows * ldg) * 4), *u = fused ? g : galloc((size_t)(rows * ldu) * 4);
    const int inplace = layout == 1 || layout == 3;
    const int64_t ldo = inplace ? ldg : n + 4;
    float *o = inplace ? g : galloc((size_t)(rows * ldo) * 4);
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        memcpy(g, g0, (size_t)(rows * ldg) * 4);
        if (!fused) memcpy(u, u0, (size_t)(rows * ldu) * 4);
        isthmus_swiglu_args a = {.rows = rows, .n = n, .gate = g, .ldg = ldg, .up = u + uoff, .ldu = ldu, .out = o,
                                 .ldo = ldo};
        CHECK_OK(isthmus_swiglu(&a));
        CHECK(gcheck(g) && gcheck(u) && gcheck(o), "swiglu guard overwritten");
        long bad = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < n; i++) {
                double got = o[r * ldo + i], ref = want[r * n + i], err = fabs(got - ref);
                if (fabs(ref) > 1e-30 && err / fabs(ref) > swiglu_worst) swiglu_worst = err / fabs(ref);
                if (!(err <= SWIGLU_RTOL * fabs(ref) + SWIGLU_ATOL * fabs(u0[r * ldu + uoff + i])) && bad++ < 3)
                    CHECK(0, "swiglu rows=%lld n=%lld layout=%d: [%lld][%lld] gate %.9g up %.9g: %.9g, reference %.9g",
                          (long long)rows, (long long)n, layout, (long long)r, (long long)i, g0[r * ldg + i],
                          u0[r * ldu + uoff + i], got, ref);
                if (fused && !inplace && memcmp(&g[r * ldg + n + i], &g0[r * ldg + n + i], 4) && bad++ < 3)
                    CHECK(0, "swiglu changed up");
            }
    }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
    free(want);
    gfree(g0);
    if (!fused) gfree(u0), gfree(u);
    gfree(g);
    if (!inplace) gfree(o);
}

static void swiglu_reference(void) {
    uint64_t rng = t_seed;
    for (int di = 0; di < NDIMS; di++)
        for (int ri = 0; ri < 3; ri++)
            for (int layout = 0; layout < 4; layout++) {
                if (ri == 2 && DIMS[di] < 4096 && layout) continue;
                swiglu_case(ROWS[ri], DIMS[di], layout, &rng);
            }
    printf("       swiglu: largest relative error against the double reference %.3g (bound %.0e)\n", swiglu_worst,
           SWIGLU_RTOL);
}

/* Rows run independently: 1 thread and many give bit-identical results (large enough to split). */
static void nn_thread_invariance(void) {
    uint64_t rng = t_seed;
    const int64_t rows = 200, d = 1000;
    float *x = rnd(&rng, rows * d, -2, 2), *w = rnd(&rng, d, 0.5f, 1.5f), *y1 = galloc(rows * d * 4),
          *y2 = galloc(rows * d * 4);
    int32_t threads = isthmus_get_num_threads();
    isthmus_rmsnorm_args a = {.rows = rows, .dim = d, .x = x, .ldx = d, .weight = w, .eps = 1e-6f, .y = y1, .ldy = d};
    isthmus_set_num_threads(1);
    CHECK_OK(isthmus_rmsnorm(&a));
    isthmus_set_num_threads(threads > 1 ? threads : 4);
    a.y = y2;
    CHECK_OK(isthmus_rmsnorm(&a));
    CHECK(memcmp(y1, y2, (size_t)(rows * d * 4)) == 0, "rmsnorm differs between thread counts");
    isthmus_swiglu_args s = {.rows = rows, .n = d, .gate = x, .ldg = d, .up = y2, .ldu = d, .out = y1, .ldo = d};
    CHECK_OK(isthmus_swiglu(&s));
    float *o2 = galloc(rows * d * 4);
    isthmus_set_num_threads(1);
    s.out = o2;
    CHECK_OK(isthmus_swiglu(&s));
    isthmus_set_num_threads(threads);
    CHECK(memcmp(y1, o2, (size_t)(rows * d * 4)) == 0, "swiglu differs between thread counts");
    gfree(x); gfree(w); gfree(y1); gfree(y2); gfree(o2);
}

static void nn_bad_arguments(void) {
    float *buf = galloc(4 * 64 * 4), *w = galloc(64 * 4), *out = galloc(4 * 64 * 4);
    for (int i = 0; i < 256; i++) buf[i] = 1.0f;
    for (int i = 0; i < 64; i++) w[i] = 1.0f;
#define MSG(sub) CHECK(strstr(isthmus_last_error(), sub) != NULL, "message '%s' lacks '%s'", isthmus_last_error(), sub)
    isthmus_rmsnorm_args good = {.rows = 2, .dim = 32, .x = buf, .ldx = 64, .weight = w, .eps = 1e-5f, .y = out, .ldy = 32};
    CHECK_OK(isthmus_rmsnorm(&good));
    isthmus_rmsnorm_args a;
    CHECK_FAILS(isthmus_rmsnorm(NULL), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("args");
    a = good; a.rows = 0; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("rows");
    a = good; a.dim = -1; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("dim");
    a = good; a.x = NULL; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("x");
    a = good; a.weight = NULL; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("weight");
    a = good; a.y = NULL; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("y");
    a = good; a.ldx = 31; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("ldx");
    a = good; a.ldy = 31; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("ldy");
    a = good; a.residual = out + 64; a.ldr = 31; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("ldr");
    a = good; a.eps = 0; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("eps");
    a = good; a.eps = NAN; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("eps");
    a = good; a.rows = (int64_t)1 << 40; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("overflows");
    a = good; a.y = buf; a.ldy = 32; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("y is x");
    a = good; a.y = buf + 8; a.ldy = 64; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("y overlaps x");
    a = good; a.y = buf + 32; a.ldy = 64; CHECK_OK(isthmus_rmsnorm(&a)); /* the other half of x's rows: disjoint */
    a = good; a.weight = out + 16; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("weight overlaps y");
    a = good; a.residual = out; a.ldr = 32; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("residual overlaps y");
    a = good; a.residual = buf + 16; a.ldr = 64; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("residual overlaps x");
    a = good; a.residual = buf + 32; a.ldr = 64; CHECK_OK(isthmus_rmsnorm(&a));
    a = good; a.residual = out + 64; a.ldr = 32; a.weight = buf + 8; CHECK_FAILS(isthmus_rmsnorm(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("weight overlaps x");
    a = good; a.weight = buf + 8; CHECK_OK(isthmus_rmsnorm(&a)); /* x is only read without residual */

    isthmus_swiglu_args sg = {.rows = 2, .n = 32, .gate = buf, .ldg = 64, .up = buf + 32, .ldu = 64, .out = out, .ldo = 32};
    CHECK_OK(isthmus_swiglu(&sg));
    isthmus_swiglu_args s;
    CHECK_FAILS(isthmus_swiglu(NULL), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("args");
    s = sg; s.rows = 0; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("rows");
    s = sg; s.n = 0; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("n");
    s = sg; s.gate = NULL; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("gate");
    s = sg; s.up = NULL; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("up");
    s = sg; s.out = NULL; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("out");
    s = sg; s.ldg = 31; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("ldg");
    s = sg; s.ldu = 31; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("ldu");
    s = sg; s.ldo = 31; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("ldo");
    s = sg; s.out = buf; s.ldo = 32; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("out is gate");
    s = sg; s.rows = 1; s.out = buf + 40; s.ldo = 64; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("out overlaps up");
    s = sg; s.out = buf + 4; s.ldo = 64; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("out overlaps gate");
    s = sg; s.out = buf; s.ldo = 64; CHECK_OK(isthmus_swiglu(&s)); /* in place over the gate half */
    s = sg; s.rows = (int64_t)1 << 40; CHECK_FAILS(isthmus_swiglu(&s), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("overflows");
#undef MSG
    CHECK(gcheck(buf) && gcheck(w) && gcheck(out), "guards");
    gfree(buf); gfree(w); gfree(out);
}

const test_case nn_tests[] = {
    {"nn", "rmsnorm_reference", rmsnorm_reference},
    {"nn", "swiglu_reference", swiglu_reference},
    {"nn", "nn_thread_invariance", nn_thread_invariance},
    {"nn", "nn_bad_arguments", nn_bad_arguments},
    {NULL, NULL, NULL},
};
