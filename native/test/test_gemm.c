/*
 * INT8 GEMM: every variant against a double-precision GEMM on the unpacked matrices, and against the
 * reference variant bit for bit (the f32 epilogue is specified operation by operation, so all
 * variants agree exactly). int32 accumulators exact. Shapes: 1..10, 15/16/17, 31/32/33, 63/64/65,
 * 127/128/129, deep K, odd strides; outputs NaN-poisoned and every buffer guarded.
 *
 * Tolerance against the double reference: |y - y_ref| <= (ngroups + 3) * 2^-23 * S, where
 * S = sum_g |acc_g * sa * sw| + |bias|: each group term has three f32 roundings (int32 -> f32, the
 * scale product, the fma), each at most 2^-24 relative to a partial sum bounded by S, plus the bias
 * add; 2^-23 gives a factor-2 margin. The int32 accumulators are exact, so nothing else can differ.
 */
#include "harness.h"

#include <math.h>
#include <pthread.h>

typedef struct cfg { int32_t wgran; int64_t group; int32_t agran; int bias; } cfg;
static const cfg CFGS[] = {
    {ISTHMUS_SCALE_PER_ROW, 0, ISTHMUS_SCALE_PER_ROW, 1},
    {ISTHMUS_SCALE_PER_GROUP, 32, ISTHMUS_SCALE_PER_GROUP, 1},
    {ISTHMUS_SCALE_PER_TENSOR, 0, ISTHMUS_SCALE_PER_TENSOR, 0},
    {ISTHMUS_SCALE_PER_GROUP, 64, ISTHMUS_SCALE_PER_ROW, 0},
    {ISTHMUS_SCALE_PER_GROUP, 128, ISTHMUS_SCALE_PER_GROUP, 0},
    {ISTHMUS_SCALE_PER_GROUP, 256, ISTHMUS_SCALE_PER_TENSOR, 1},
    {ISTHMUS_SCALE_PER_ROW, 0, ISTHMUS_SCALE_PER_TENSOR, 1},
};
#define NCFG ((int)(sizeof CFGS / sizeof CFGS[0]))

typedef struct problem {
    int64_t m, n, k, lda, ldw, ldy, ng, glen;
    cfg c;
    int8_t *a, *w;
    float *sa, *sw, *bias;
    double *yd, *bound;
    int64_t *cd;
} problem;

static float scale_of(const float *s, int32_t gran, int64_t row, int64_t g, int64_t ng) {
    return gran == ISTHMUS_SCALE_PER_TENSOR ? s[0] : gran == ISTHMUS_SCALE_PER_ROW ? s[row] : s[row * ng + g];
}

static void make(problem *p, int64_t m, int64_t n, int64_t k, cfg c, uint64_t seed, int extreme) {
    uint64_t s = seed;
    t_seed = seed;
    memset(p, 0, sizeof *p);
    p->m = m; p->n = n; p->k = k; p->c = c;
    p->lda = k + (int64_t)(s % 5); p->ldw = k + 3; p->ldy = n + 3;
    p->glen = c.group > 0 ? c.group : k;
    p->ng = (k + p->glen - 1) / p->glen;
    p->a = galloc(m * p->lda);
    p->w = galloc(n * p->ldw);
    for (int64_t i = 0; i < m * p->lda; i++) p->a[i] = extreme ? (int8_t)extreme : (int8_t)(rng_next(&s) & 0xff); /* -128 included */
    for (int64_t i = 0; i < n * p->ldw; i++) p->w[i] = extreme ? (int8_t)(extreme > 0 ? 127 : -127) : rng_s8(&s);
    int64_t nsa = isthmus_scale_count(m, k, c.agran, c.group), nsw = isthmus_scale_count(n, k, c.wgran, c.group);
    p->sa = galloc(sizeof(float) * nsa);
    p->sw = galloc(sizeof(float) * nsw);
    for (int64_t i = 0; i < nsa; i++) p->sa[i] = rng_f32(&s, 0.001f, 0.05f);
    for (int64_t i = 0; i < nsw; i++) p->sw[i] = rng_f32(&s, 0.001f, 0.05f);
    p->bias = c.bias ? galloc(sizeof(float) * n) : NULL;
    for (int64_t i = 0; c.bias && i < n; i++) p->bias[i] = rng_f32(&s, -2.0f, 2.0f);
    p->yd = malloc(sizeof(double) * m * n);
    p->bound = malloc(sizeof(double) * m * n);
    p->cd = malloc(sizeof(int64_t) * m * n);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double y = 0, b = 0;
            int64_t tot = 0;
            for (int64_t g = 0; g < p->ng; g++) {
                int64_t acc = 0, k1 = (g + 1) * p->glen < k ? (g + 1) * p->glen : k;
                for (int64_t kk = g * p->glen; kk < k1; kk++) acc += (int64_t)p->a[i * p->lda + kk] * p->w[j * p->ldw + kk];
                double sc = (double)scale_of(p->sa, c.agran, i, g, p->ng) * scale_of(p->sw, c.wgran, j, g, p->ng);
                y += (double)acc * sc;
                b += fabs((double)acc * sc);
                tot += acc;
            }
            if (p->bias) { y += p->bias[j]; b += fabs(p->bias[j]); }
            p->yd[i * n + j] = y;
            p->bound[i * n + j] = (double)(p->ng + 3) * 0x1.0p-23 * b + 1e-30;
            p->cd[i * n + j] = tot;
        }
}

static void drop(problem *p) {
    gfree(p->a); gfree(p->w); gfree(p->sa); gfree(p->sw); gfree(p->bias);
    free(p->yd); free(p->bound); free(p->cd);
}

static void *pack(const problem *p, int with_scales) {
    isthmus_gemm_pack_args pa = {p->n, p->k, p->w, p->ldw, p->c.wgran, p->c.group, with_scales ? p->sw : NULL, NULL, 0};
    int64_t bytes = 0;
    CHECK_OK(isthmus_gemm_s8_packed_size(&pa, &bytes));
    pa.packed = galloc((size_t)bytes);
    pa.packed_size = bytes;
    CHECK_OK(isthmus_gemm_s8_pack(&pa));
    CHECK(gcheck(pa.packed), "pack wrote past its size");
    isthmus_packed_info info;
    CHECK_OK(isthmus_gemm_s8_packed_info(pa.packed, &info));
    CHECK(info.n == p->n && info.k == p->k && info.group == p->c.group && info.isa == isthmus_isa(), "packed info");
    return pa.packed;
}

/* Runs f32 and s32 GEMM under the current ISA; checks them; returns the f32 output (caller frees). */
static float *run_and_check(const problem *p) {
    void *packed = pack(p, 1);
    float *y = galloc(sizeof(float) * p->m * p->ldy);
    int32_t *c = galloc(sizeof(int32_t) * p->m * p->ldy);
    for (int64_t i = 0; i < p->m * p->ldy; i++) { y[i] = NAN; c[i] = 0x7f7f7f7f; }
    isthmus_gemm_s8_args ga = {p->m, p->n, p->k, p->a, p->lda, p->c.agran, p->sa, packed, p->bias, y, p->ldy};
    CHECK_OK(isthmus_gemm_s8(&ga));
    isthmus_gemm_s8_s32_args ca = {p->m, p->n, p->k, p->a, p->lda, packed, c, p->ldy};
    CHECK_OK(isthmus_gemm_s8_s32(&ca));
    long bad = 0;
    for (int64_t i = 0; i < p->m; i++) {
        for (int64_t j = 0; j < p->n; j++) {
            double e = fabs((double)y[i * p->ldy + j] - p->yd[i * p->n + j]);
            if (!(e <= p->bound[i * p->n + j]) && bad++ < 3)
                CHECK(0, "y[%lld,%lld] = %.9g, want %.9g (bound %.3g) M=%lld N=%lld K=%lld group=%lld",
                      (long long)i, (long long)j, y[i * p->ldy + j], p->yd[i * p->n + j], p->bound[i * p->n + j],
                      (long long)p->m, (long long)p->n, (long long)p->k, (long long)p->c.group);
            if (c[i * p->ldy + j] != p->cd[i * p->n + j] && bad++ < 3)
                CHECK(0, "c[%lld,%lld] = %d, want %lld", (long long)i, (long long)j, c[i * p->ldy + j], (long long)p->cd[i * p->n + j]);
        }
        for (int64_t j = p->n; j < p->ldy; j++)
            if ((!isnan(y[i * p->ldy + j]) || c[i * p->ldy + j] != 0x7f7f7f7f) && bad++ < 3) CHECK(0, "stride padding written");
    }
    CHECK(bad == 0, "%ld bad elements (M=%lld N=%lld K=%lld)", bad, (long long)p->m, (long long)p->n, (long long)p->k);
    CHECK(gcheck(y) && gcheck(c), "output guard overwritten");
    gfree(c);
    gfree(packed);
    return y;
}

static void check_all_isas(int64_t m, int64_t n, int64_t k, cfg c, uint64_t seed) {
    problem p;
    make(&p, m, n, k, c, seed, 0);
    isthmus_set_isa_cap(ISTHMUS_ISA_REF);
    float *yref = run_and_check(&p);
    for (int32_t isa = ISTHMUS_ISA_AVX2; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        float *y = run_and_check(&p);
        long diff = 0;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                float u = y[i * p.ldy + j], v = yref[i * p.ldy + j];
                if (memcmp(&u, &v, 4) != 0 && diff++ < 3)
                    CHECK(0, "%s y[%lld,%lld] = %.9g differs from ref %.9g", isthmus_isa_name(isa),
                          (long long)i, (long long)j, u, v);
            }
        gfree(y);
    }
    gfree(yref);
    drop(&p);
}

static const int64_t SZ[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129};
#define NSZ ((int)(sizeof SZ / sizeof SZ[0]))

static void shape_sweep(void) {
    uint64_t seed = t_seed;
    for (int i = 0; i < NSZ; i++) {
        int64_t s = SZ[i];
        check_all_isas(s, s, s, CFGS[i % NCFG], seed++);
        check_all_isas(1, s, 2 * s + 1, CFGS[(i + 1) % NCFG], seed++);
        check_all_isas(s, 1, s + 3, CFGS[(i + 2) % NCFG], seed++);
        check_all_isas(s, 33, 65, CFGS[(i + 3) % NCFG], seed++);
    }
}

static void random_shapes(void) {
    uint64_t s = t_seed ^ 0x1234;
    for (int i = 0; i < 60; i++) {
        int64_t m = SZ[rng_next(&s) % NSZ], n = SZ[rng_next(&s) % NSZ], k = SZ[rng_next(&s) % NSZ] * (1 + (int64_t)(rng_next(&s) % 4));
        check_all_isas(m, n, k, CFGS[i % NCFG], rng_next(&s));
    }
}

static void deep_k(void) {
    check_all_isas(3, 37, 16411, CFGS[0], t_seed + 1);
    check_all_isas(2, 70, 16384, CFGS[1], t_seed + 2);
    check_all_isas(5, 19, 20001, CFGS[5], t_seed + 3);
}

static void larger(void) { check_all_isas(130, 300, 1000, CFGS[1], t_seed + 9); }

/* All +127/-127 weights with activations at +127, -127 and -128, at the largest K: proves there is
 * no int16 saturation (maddubs) and no int32 overflow (vpdpbusd with the +128 offset). */
static void extremes(void) {
    const int extremes_a[] = {127, -127, -128};
    cfg c = {ISTHMUS_SCALE_PER_ROW, 0, ISTHMUS_SCALE_PER_ROW, 0};
    for (int e = 0; e < 3; e++)
        for (int sign = -1; sign <= 1; sign += 2) {
            problem p;
            make(&p, 2, 3, ISTHMUS_GEMM_MAX_K, c, t_seed + (uint64_t)e, extremes_a[e]);
            for (int64_t i = 0; i < p.n * p.ldw; i++) p.w[i] = (int8_t)(127 * sign);
            for (int64_t i = 0; i < p.m * p.n; i++) p.cd[i] = (int64_t)extremes_a[e] * 127 * sign * p.k;
            for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
                isthmus_set_isa_cap(isa);
                void *packed = pack(&p, 1);
                int32_t c32[6];
                isthmus_gemm_s8_s32_args ca = {p.m, p.n, p.k, p.a, p.lda, packed, c32, 3};
                CHECK_OK(isthmus_gemm_s8_s32(&ca));
                for (int i = 0; i < 6; i++)
                    CHECK(c32[i] == p.cd[i], "a=%d w=%d: c = %d, want %lld", extremes_a[e], 127 * sign, c32[i], (long long)p.cd[i]);
                gfree(packed);
            }
            drop(&p);
        }
}

static void fused_f32_matches_quantize_then_gemm(void) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {1, 4096 / 64, 333}, {7, 33, 64}, {17, 65, 129}, {64, 40, 300}};
    for (int si = 0; si < 5; si++)
        for (int ci = 0; ci < NCFG; ci++) {
            cfg c = CFGS[ci];
            c.agran = c.group > 0 ? ISTHMUS_SCALE_PER_GROUP : ISTHMUS_SCALE_PER_ROW;
            int64_t m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
            problem p;
            make(&p, m, n, k, c, t_seed + (uint64_t)(si * 31 + ci), 0);
            uint64_t s = t_seed + 77;
            int64_t ldx = k + 1;
            float *x = galloc(sizeof(float) * m * ldx);
            for (int64_t i = 0; i < m * ldx; i++) x[i] = rng_f32(&s, -4.0f, 4.0f);
            for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
                isthmus_set_isa_cap(isa);
                void *packed = pack(&p, 1);
                int64_t nsa = isthmus_scale_count(m, k, c.agran, c.group);
                int8_t *aq = galloc(m * k);
                float *sa = galloc(sizeof(float) * nsa), *y1 = galloc(sizeof(float) * m * n), *y2 = galloc(sizeof(float) * m * n);
                isthmus_quantize_args qa = {m, k, x, ldx, c.agran, c.group, aq, k, sa};
                CHECK_OK(isthmus_quantize_s8(&qa));
                isthmus_gemm_s8_args ga = {m, n, k, aq, k, c.agran, sa, packed, p.bias, y1, n};
                CHECK_OK(isthmus_gemm_s8(&ga));
                for (int64_t i = 0; i < m * n; i++) y2[i] = NAN;
                int64_t wsb = 0;
                CHECK_OK(isthmus_gemm_f32_s8_workspace_size(m, k, c.group, &wsb));
                void *ws = si % 2 ? galloc((size_t)wsb) : NULL; /* caller workspace, or the library's */
                isthmus_gemm_f32_s8_args fa = {m, n, k, x, ldx, packed, p.bias, y2, n, ws, wsb};
                CHECK_OK(isthmus_gemm_f32_s8(&fa));
                CHECK(memcmp(y1, y2, sizeof(float) * m * n) == 0, "fused differs (M=%lld N=%lld K=%lld cfg %d)",
                      (long long)m, (long long)n, (long long)k, ci);
                if (ws) { CHECK(gcheck(ws), "workspace guard"); fa.workspace_size = wsb - 1; CHECK_FAILS(isthmus_gemm_f32_s8(&fa), ISTHMUS_ERR_INVALID_ARGUMENT); }
                gfree(ws); gfree(aq); gfree(sa); gfree(y1); gfree(y2); gfree(packed);
            }
            gfree(x);
            drop(&p);
        }
}

static void bad_arguments(void) {
    cfg c = {ISTHMUS_SCALE_PER_ROW, 0, ISTHMUS_SCALE_PER_ROW, 1};
    problem p;
    make(&p, 3, 20, 40, c, t_seed, 0);
    void *packed = pack(&p, 1);
    float y[3 * 23];
    isthmus_gemm_pack_args pa = {p.n, p.k, p.w, p.ldw, c.wgran, 0, p.sw, NULL, 0}, b;
    int64_t bytes;
    CHECK_OK(isthmus_gemm_s8_packed_size(&pa, &bytes));
    b = pa; b.k = 0; CHECK_FAILS(isthmus_gemm_s8_packed_size(&b, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = pa; b.k = ISTHMUS_GEMM_MAX_K + 1; b.ldw = b.k; CHECK_FAILS(isthmus_gemm_s8_packed_size(&b, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(strstr(isthmus_last_error(), "ISTHMUS_GEMM_MAX_K") != NULL, "%s", isthmus_last_error());
    b = pa; b.ldw = 39; CHECK_FAILS(isthmus_gemm_s8_packed_size(&b, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = pa; b.group = 32; CHECK_FAILS(isthmus_gemm_s8_packed_size(&b, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = pa; b.w_granularity = ISTHMUS_SCALE_PER_GROUP; b.group = 16; CHECK_FAILS(isthmus_gemm_s8_packed_size(&b, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = pa; b.n = (int64_t)1 << 50; CHECK_FAILS(isthmus_gemm_s8_packed_size(&b, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    void *buf = galloc((size_t)bytes + 64);
    b = pa; b.packed = buf; b.packed_size = bytes - 1; CHECK_FAILS(isthmus_gemm_s8_pack(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = pa; b.packed = (uint8_t *)buf + 4; b.packed_size = bytes; CHECK_FAILS(isthmus_gemm_s8_pack(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = pa; b.packed = NULL; b.packed_size = bytes; CHECK_FAILS(isthmus_gemm_s8_pack(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    p.w[5 * p.ldw + 7] = -128;
    b = pa; b.packed = buf; b.packed_size = bytes; CHECK_FAILS(isthmus_gemm_s8_pack(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(strstr(isthmus_last_error(), "w[5, 7] = -128") != NULL, "%s", isthmus_last_error());
    p.w[5 * p.ldw + 7] = 1;
    p.sw[2] = NAN;
    CHECK_FAILS(isthmus_gemm_s8_pack(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    p.sw[2] = 0.01f;
    gfree(buf);

    isthmus_gemm_s8_args ok = {3, 20, 40, p.a, p.lda, c.agran, p.sa, packed, p.bias, y, 23}, a;
    CHECK_OK(isthmus_gemm_s8(&ok));
    CHECK_FAILS(isthmus_gemm_s8(NULL), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.m = 0; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.n = 21; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(strstr(isthmus_last_error(), "W[20, 40]") != NULL, "names the packed shape: %s", isthmus_last_error());
    a = ok; a.k = 39; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.lda = 39; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.ldy = 19; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.a = NULL; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.a_scales = NULL; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.y = NULL; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.w_packed = NULL; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.w_packed = p.sw; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT); /* not packed */
    a = ok; a.a_granularity = ISTHMUS_SCALE_PER_GROUP; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.a_granularity = 5; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    a = ok; a.m = (int64_t)1 << 62; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);

    /* weights packed without scales serve the int32 form only */
    void *noscale = pack(&p, 0);
    a = ok; a.w_packed = noscale; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
    int32_t cc[3 * 20];
    isthmus_gemm_s8_s32_args ca = {3, 20, 40, p.a, p.lda, noscale, cc, 20};
    CHECK_OK(isthmus_gemm_s8_s32(&ca));
    ca.c = NULL; CHECK_FAILS(isthmus_gemm_s8_s32(&ca), ISTHMUS_ERR_INVALID_ARGUMENT);
    gfree(noscale);

    /* weights packed for a higher ISA than the cap allows: a clear refusal, never a wrong kernel */
    if (isthmus_isa_supported() >= ISTHMUS_ISA_AVX512) {
        isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
        void *p512 = pack(&p, 1);
        isthmus_set_isa_cap(ISTHMUS_ISA_AVX2);
        a = ok; a.w_packed = p512; CHECK_FAILS(isthmus_gemm_s8(&a), ISTHMUS_ERR_UNSUPPORTED);
        CHECK(strstr(isthmus_last_error(), "avx512") != NULL, "%s", isthmus_last_error());
        isthmus_set_isa_cap(ISTHMUS_ISA_REF); /* the reference reads every layout */
        CHECK_OK(isthmus_gemm_s8(&a));
        gfree(p512);
    }
    isthmus_gemm_f32_s8_args fa = {3, 20, 40, NULL, 40, packed, NULL, y, 20, NULL, 0};
    CHECK_FAILS(isthmus_gemm_f32_s8(&fa), ISTHMUS_ERR_INVALID_ARGUMENT);
    float xnan[3 * 40];
    for (int i = 0; i < 120; i++) xnan[i] = 1.0f;
    xnan[77] = NAN;
    fa.x = xnan;
    isthmus_set_isa_cap(ISTHMUS_ISA_REF);
    CHECK_FAILS(isthmus_gemm_f32_s8(&fa), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(strstr(isthmus_last_error(), "[1, 37]") != NULL, "names the element: %s", isthmus_last_error());
    { /* a large call quantizes on the pool: the error still names the element, on this thread */
        problem q;
        make(&q, 64, 20, 1024, c, t_seed + 5, 0);
        void *pq = pack(&q, 1);
        float *xb = malloc(sizeof(float) * 64 * 1024), *yb = malloc(sizeof(float) * 64 * 20);
        for (int i = 0; i < 64 * 1024; i++) xb[i] = (float)(i % 13) - 6.0f;
        xb[50 * 1024 + 999] = INFINITY;
        xb[60 * 1024 + 3] = NAN;
        isthmus_gemm_f32_s8_args fb = {64, 20, 1024, xb, 1024, pq, NULL, yb, 20, NULL, 0};
        for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
            isthmus_set_isa_cap(isa);
            void *pi = pack(&q, 1);
            fb.w_packed = pi;
            CHECK_FAILS(isthmus_gemm_f32_s8(&fb), ISTHMUS_ERR_INVALID_ARGUMENT);
            CHECK(strstr(isthmus_last_error(), "[50, 999]") != NULL, "first bad row reported: %s", isthmus_last_error());
            gfree(pi);
        }
        free(xb); free(yb); gfree(pq); drop(&q);
        isthmus_set_isa_cap(ISTHMUS_ISA_REF);
    }
    int64_t wsb;
    CHECK_FAILS(isthmus_gemm_f32_s8_workspace_size(0, 10, 0, &wsb), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_gemm_f32_s8_workspace_size(1, 10, 48, &wsb), ISTHMUS_ERR_INVALID_ARGUMENT);
    gfree(packed);
    drop(&p);
}

/* Any thread count, and many callers at once, give the same bits. */
typedef struct conc { const problem *p; const void *packed; float *y; } conc;
static void *conc_main(void *arg) {
    conc *c = arg;
    for (int it = 0; it < 20; it++) {
        isthmus_gemm_s8_args ga = {c->p->m, c->p->n, c->p->k, c->p->a, c->p->lda, c->p->c.agran, c->p->sa, c->packed, c->p->bias, c->y, c->p->n};
        if (isthmus_gemm_s8(&ga) != ISTHMUS_OK) return (void *)1;
    }
    return NULL;
}

static void threads_and_concurrency(void) {
    problem p;
    make(&p, 67, 131, 300, CFGS[1], t_seed, 0);
    void *packed = pack(&p, 1);
    int32_t before = isthmus_get_num_threads();
    float *y1 = malloc(sizeof(float) * 67 * 131), *y = malloc(sizeof(float) * 67 * 131);
    isthmus_set_num_threads(1);
    isthmus_gemm_s8_args ga = {67, 131, 300, p.a, p.lda, p.c.agran, p.sa, packed, p.bias, y1, 131};
    CHECK_OK(isthmus_gemm_s8(&ga));
    for (int t = 2; t <= 7; t += 5) {
        isthmus_set_num_threads(t);
        ga.y = y;
        CHECK_OK(isthmus_gemm_s8(&ga));
        CHECK(memcmp(y, y1, sizeof(float) * 67 * 131) == 0, "%d threads differ", t);
    }
    isthmus_set_num_threads(before);
    conc cs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        cs[i] = (conc){&p, packed, malloc(sizeof(float) * 67 * 131)};
        pthread_create(&th[i], NULL, conc_main, &cs[i]);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == NULL, "concurrent call failed");
        CHECK(memcmp(cs[i].y, y1, sizeof(float) * 67 * 131) == 0, "concurrent result %d differs", i);
        free(cs[i].y);
    }
    free(y1); free(y);
    gfree(packed);
    drop(&p);
}

/* Regression (fuzz_gemm, corpus/gemm/regression-corrupt-header): the calls checked only the magic and
 * version of a packed header, so a corrupted isa gave ISTHMUS_ERR_INTERNAL and a corrupted panel count,
 * panel width or section offset steered the kernels' reads out of the buffer. Every field a call relies
 * on must now agree with what the pack writes for the header's own shape. Byte offsets of the fields
 * (src/gemm/gemm.h, packed_hdr): isa 8, nr 12, has_scales 20, comp 24, reserved 28, kp 48, ngroups 64,
 * npanels 72, off_w 80, off_comp 88, off_scales 96, total 104. */
static void corrupt_header(void) {
    cfg c = {ISTHMUS_SCALE_PER_ROW, 0, ISTHMUS_SCALE_PER_ROW, 1};
    problem p;
    make(&p, 3, 20, 40, c, t_seed, 0);
    void *packed = pack(&p, 1);
    int64_t bytes = 0;
    isthmus_gemm_pack_args pa = {p.n, p.k, p.w, p.ldw, c.wgran, 0, p.sw, NULL, 0};
    CHECK_OK(isthmus_gemm_s8_packed_size(&pa, &bytes));
    uint8_t *bad = galloc((size_t)bytes);
    float y[3 * 23], x[3 * 40];
    int32_t cc[3 * 23];
    for (int i = 0; i < 3 * 40; i++) x[i] = (float)(i % 7) - 3.0f;
    static const struct { int off; int32_t value; } flips[] = {
        {8, -1}, {8, 7}, {12, 1000}, {20, 2}, {24, 5}, {28, 1}, {48, 1 << 20}, {64, 3}, {72, 1000}, {80, 64},
        {88, 1 << 16}, {96, 1 << 16}, {104, 64}};
    for (size_t f = 0; f < sizeof flips / sizeof flips[0]; f++) {
        memcpy(bad, packed, (size_t)bytes);
        memcpy(bad + flips[f].off, &flips[f].value, 4);
        isthmus_packed_info info;
        CHECK_FAILS(isthmus_gemm_s8_packed_info(bad, &info), ISTHMUS_ERR_INVALID_ARGUMENT);
        isthmus_gemm_s8_args ga = {3, 20, 40, p.a, p.lda, c.agran, p.sa, bad, p.bias, y, 23};
        CHECK_FAILS(isthmus_gemm_s8(&ga), ISTHMUS_ERR_INVALID_ARGUMENT);
        isthmus_gemm_s8_s32_args sa = {3, 20, 40, p.a, p.lda, bad, cc, 23};
        CHECK_FAILS(isthmus_gemm_s8_s32(&sa), ISTHMUS_ERR_INVALID_ARGUMENT);
        isthmus_gemm_f32_s8_args fa = {3, 20, 40, x, 40, bad, NULL, y, 23, NULL, 0};
        CHECK_FAILS(isthmus_gemm_f32_s8(&fa), ISTHMUS_ERR_INVALID_ARGUMENT);
        CHECK(strstr(isthmus_last_error(), "corrupted") != NULL, "flip at %d: %s", flips[f].off,
              isthmus_last_error());
    }
    /* the untouched copy still works */
    memcpy(bad, packed, (size_t)bytes);
    isthmus_gemm_s8_s32_args sa = {3, 20, 40, p.a, p.lda, bad, cc, 23};
    CHECK_OK(isthmus_gemm_s8_s32(&sa));
    gfree(bad);
    gfree(packed);
    drop(&p);
}

const test_case gemm_tests[] = {
    {"gemm", "shape_sweep", shape_sweep},
    {"gemm", "random_shapes", random_shapes},
    {"gemm", "deep_k", deep_k},
    {"gemm", "larger", larger},
    {"gemm", "extremes", extremes},
    {"gemm", "fused_f32_matches_quantize_then_gemm", fused_f32_matches_quantize_then_gemm},
    {"gemm", "bad_arguments", bad_arguments},
    {"gemm", "threads_and_concurrency", threads_and_concurrency},
    {"gemm", "corrupt_header", corrupt_header},
    {NULL, NULL, NULL},
};
