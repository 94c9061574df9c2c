/*
 * 2:4 sparse matmul: every ISA variant (packed under each cap) against a reference computed from the
 * dense matrix: F32 in double, bounded by the documented 2 * nnz_row * 2^-24 * sum |w * x| (+ one
 * rounding of the bias add); S8 exact (int32 c equal to the int64 dot product, y bit-equal to the
 * documented epilogue, so every ISA agrees bit for bit). The exchange format is built from the dense
 * matrix by the documented rule (kept indices, a group with fewer than 2 nonzeros keeps zeros at the
 * lowest free indices), so groups with 0 and 1 nonzeros and all 6 metadata patterns occur. Outputs are
 * NaN-poisoned with strides wider than N; every buffer is guarded.
 */
#include "harness.h"

#include <math.h>

static const int PAT[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};

typedef struct mat24 {
    int64_t n, k;
    int32_t dtype;
    float *wf;     /* dense [n][k] (F32) */
    int8_t *wq;    /* dense [n][k] (S8)  */
    float *scales; /* S8 */
    void *values;
    uint16_t *meta;
    isthmus_sparse_matrix sm;
} mat24;

/* Dense -> 2:4 exchange format by the documented rule; returns 0 if a group has > 2 nonzeros. */
static int to_24(mat24 *a) {
    int64_t n = a->n, k = a->k, words = (k + 15) / 16;
    a->meta = galloc(sizeof(uint16_t) * n * words);
    memset(a->meta, 0, sizeof(uint16_t) * n * words);
    a->values = galloc((a->dtype ? 1 : 4) * n * (k / 2));
    for (int64_t r = 0; r < n; r++)
        for (int64_t g = 0; g < k / 4; g++) {
            int idx[2], cnt = 0;
            for (int i = 0; i < 4; i++) {
                int nz = a->dtype ? a->wq[r * k + 4 * g + i] != 0 : a->wf[r * k + 4 * g + i] != 0.0f;
                if (nz) {
                    if (cnt == 2) return 0;
                    idx[cnt++] = i;
                }
            }
            for (int i = 0; cnt < 2 && i < 4; i++) { /* lowest free indices */
                int used = 0;
                for (int j = 0; j < cnt; j++) used |= idx[j] == i;
                if (!used) idx[cnt++] = i;
            }
            if (idx[0] > idx[1]) { int t = idx[0]; idx[0] = idx[1]; idx[1] = t; }
            a->meta[r * words + g / 4] |= (uint16_t)((idx[0] | idx[1] << 2) << (4 * (g % 4)));
            for (int j = 0; j < 2; j++) {
                if (a->dtype) ((int8_t *)a->values)[r * (k / 2) + 2 * g + j] = a->wq[r * k + 4 * g + idx[j]];
                else ((float *)a->values)[r * (k / 2) + 2 * g + j] = a->wf[r * k + 4 * g + idx[j]];
            }
        }
    a->sm = (isthmus_sparse_matrix){.n = n, .k = k, .format = ISTHMUS_SPARSE_2_4, .dtype = a->dtype,
                                    .values = a->values, .meta = a->meta, .scales = a->scales};
    return 1;
}

/* Random 2:4 matrix: pattern (r + g) % 6 when cyclic, else random; ~1/8 of groups lose one value,
 * ~1/16 both. extreme != 0: S8 weights all +-extreme (sign random). */
static void make24(mat24 *a, int64_t n, int64_t k, int32_t dtype, uint64_t *s, int cyclic, int extreme) {
    memset(a, 0, sizeof *a);
    a->n = n; a->k = k; a->dtype = dtype;
    if (dtype) {
        a->wq = galloc(n * k);
        memset(a->wq, 0, n * k);
        a->scales = galloc(sizeof(float) * n);
        for (int64_t r = 0; r < n; r++) a->scales[r] = rng_f32(s, 0.001f, 0.05f);
    } else {
        a->wf = galloc(sizeof(float) * n * k);
        memset(a->wf, 0, sizeof(float) * n * k);
    }
    for (int64_t r = 0; r < n; r++)
        for (int64_t g = 0; g < k / 4; g++) {
            const int *pt = PAT[cyclic ? (r + g) % 6 : (int)(rng_next(s) % 6)];
            uint64_t z = rng_next(s) % 16;
            for (int j = 0; j < 2; j++) {
                int keep = !(z == 0 || (z < 3 && j == (int)(z - 1)));
                int64_t at = r * k + 4 * g + pt[j];
                if (dtype) {
                    int8_t v = extreme ? (int8_t)((rng_next(s) & 1) ? extreme : -extreme) : rng_s8(s);
                    a->wq[at] = keep ? v : 0;
                } else {
                    a->wf[at] = keep ? rng_f32(s, -1.0f, 1.0f) : 0.0f;
                }
            }
        }
    CHECK(to_24(a), "test bug: more than 2 nonzeros in a group");
}

static void free24(mat24 *a) {
    gfree(a->wf); gfree(a->wq); gfree(a->scales); gfree(a->values); gfree(a->meta);
}

static void *pack24(const mat24 *a) {
    int64_t bytes = 0;
    CHECK_OK(isthmus_sparse_packed_size(&a->sm, &bytes));
    if (bytes <= 0) return NULL;
    void *packed = galloc((size_t)bytes);
    CHECK_OK(isthmus_sparse_pack(&a->sm, packed, bytes));
    CHECK(gcheck(packed), "pack wrote past its size");
    isthmus_sparse_info info;
    CHECK_OK(isthmus_sparse_packed_info(packed, &info));
    CHECK(info.n == a->n && info.k == a->k && info.nnz == a->n * (a->k / 2) && info.format == ISTHMUS_SPARSE_2_4 &&
              info.dtype == a->dtype && info.isa == isthmus_isa() && info.bytes == bytes,
          "packed info");
    return packed;
}

typedef struct acts {
    int64_t m, ldx, ldy;
    float *x, *xs, *bias;
    int8_t *xq;
} acts;

static void make_acts(acts *x, int64_t m, int64_t k, int64_t n, int32_t dtype, uint64_t *s, int bias, int xext) {
    memset(x, 0, sizeof *x);
    x->m = m;
    x->ldx = k + (int64_t)(rng_next(s) % 3) * 5;
    x->ldy = n + (int64_t)(rng_next(s) % 3);
    if (dtype) {
        x->xq = galloc(m * x->ldx);
        for (int64_t i = 0; i < m * x->ldx; i++) x->xq[i] = xext ? (int8_t)xext : (int8_t)(rng_next(s) & 0xff);
        x->xs = galloc(sizeof(float) * m);
        for (int64_t i = 0; i < m; i++) x->xs[i] = rng_f32(s, 0.001f, 0.05f);
    } else {
        x->x = galloc(sizeof(float) * m * x->ldx);
        for (int64_t i = 0; i < m * x->ldx; i++) x->x[i] = rng_f32(s, -1.0f, 1.0f);
    }
    if (bias) {
        x->bias = galloc(sizeof(float) * n);
        for (int64_t j = 0; j < n; j++) x->bias[j] = rng_f32(s, -2.0f, 2.0f);
    }
}

static void free_acts(acts *x) { gfree(x->x); gfree(x->xs); gfree(x->bias); gfree(x->xq); }

/* Runs under the current cap; checks against the dense reference; returns y (and c for S8). */
static float *run_check(const mat24 *a, const acts *x, int32_t **c_out) {
    int64_t m = x->m, n = a->n, k = a->k;
    void *packed = pack24(a);
    float *y = galloc(sizeof(float) * m * x->ldy);
    for (int64_t i = 0; i < m * x->ldy; i++) y[i] = NAN;
    int32_t *c = NULL;
    isthmus_spmm_args sa = {.m = m, .w_packed = packed, .bias = x->bias, .y = y, .ldy = x->ldy};
    if (a->dtype) { sa.xq = x->xq; sa.ldxq = x->ldx; sa.x_scales = x->xs; }
    else { sa.x = x->x; sa.ldx = x->ldx; }
    CHECK_OK(isthmus_spmm(&sa));
    if (a->dtype) {
        c = galloc(sizeof(int32_t) * m * x->ldy);
        for (int64_t i = 0; i < m * x->ldy; i++) c[i] = 0x7f7f7f7f;
        isthmus_spmm_args ca = {.m = m, .xq = x->xq, .ldxq = x->ldx, .w_packed = packed, .c = c, .ldc = x->ldy};
        CHECK_OK(isthmus_spmm(&ca));
    }
    long bad = 0;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            float got = y[i * x->ldy + j];
            if (a->dtype) {
                int64_t acc = 0;
                for (int64_t kk = 0; kk < k; kk++) acc += (int64_t)a->wq[j * k + kk] * x->xq[i * x->ldx + kk];
                float want = __builtin_fmaf((float)(int32_t)acc, x->xs[i] * a->scales[j], 0.0f);
                if (x->bias) want = want + x->bias[j];
                if (c[i * x->ldy + j] != acc && bad++ < 3)
                    CHECK(0, "c[%lld,%lld] = %d, want %lld (M=%lld N=%lld K=%lld)", (long long)i, (long long)j,
                          c[i * x->ldy + j], (long long)acc, (long long)m, (long long)n, (long long)k);
                if (memcmp(&got, &want, 4) != 0 && bad++ < 3)
                    CHECK(0, "y[%lld,%lld] = %.9g, want %.9g exactly (M=%lld N=%lld K=%lld)", (long long)i,
                          (long long)j, got, want, (long long)m, (long long)n, (long long)k);
            } else {
                double ref = 0, abs = 0;
                for (int64_t kk = 0; kk < k; kk++) {
                    double t = (double)a->wf[j * k + kk] * x->x[i * x->ldx + kk];
                    ref += t;
                    abs += fabs(t);
                }
                double bound = 2.0 * (double)(k / 2) * 0x1.0p-24 * abs + 1e-30;
                if (x->bias) {
                    ref += x->bias[j];
                    bound += 0x1.0p-24 * (fabs(ref) + abs + fabs(x->bias[j]));
                }
                if (!(fabs((double)got - ref) <= bound) && bad++ < 3)
                    CHECK(0, "y[%lld,%lld] = %.9g, want %.9g (bound %.3g) M=%lld N=%lld K=%lld", (long long)i,
                          (long long)j, got, ref, bound, (long long)m, (long long)n, (long long)k);
            }
        }
        for (int64_t j = n; j < x->ldy; j++)
            if ((!isnan(y[i * x->ldy + j]) || (c && c[i * x->ldy + j] != 0x7f7f7f7f)) && bad++ < 3)
                CHECK(0, "stride padding written at [%lld,%lld]", (long long)i, (long long)j);
    }
    CHECK(bad == 0, "%ld bad elements (%s M=%lld N=%lld K=%lld)", bad, a->dtype ? "S8" : "F32", (long long)m,
          (long long)n, (long long)k);
    CHECK(gcheck(y) && (c == NULL || gcheck(c)), "output guard overwritten");
    gfree(packed);
    if (c_out) *c_out = c;
    else gfree(c);
    return y;
}

/* Every ISA: checked against the reference; S8 also bit-equal across ISAs. */
static void check_all(int64_t m, int64_t n, int64_t k, int32_t dtype, int bias, uint64_t seed, int cyclic) {
    t_seed = seed;
    uint64_t s = seed;
    mat24 a;
    acts x;
    make24(&a, n, k, dtype, &s, cyclic, 0);
    make_acts(&x, m, k, n, dtype, &s, bias, 0);
    float *y0 = NULL;
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        float *y = run_check(&a, &x, NULL);
        if (y0 == NULL) { y0 = y; continue; }
        if (dtype) {
            long diff = 0;
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++)
                    if (memcmp(&y[i * x.ldy + j], &y0[i * x.ldy + j], 4) != 0 && diff++ < 3)
                        CHECK(0, "%s y[%lld,%lld] differs from ref", isthmus_isa_name(isa), (long long)i, (long long)j);
        }
        gfree(y);
    }
    gfree(y0);
    free_acts(&x);
    free24(&a);
}

static const int64_t MS[] = {1, 2, 3, 5, 8, 16, 17, 128, 300};
static const int64_t KS[] = {4, 8, 12, 20, 28, 36, 60, 68, 100, 132, 260, 1028};
static const int64_t NS[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 65};

static void shape_sweep(void) {
    uint64_t seed = t_seed;
    for (int dt = 0; dt < 2; dt++)
        for (int mi = 0; mi < 9; mi++)
            for (int ki = 0; ki < 12; ki += (MS[mi] >= 128 ? 3 : 1)) {
                int64_t n = NS[(mi + ki) % 11];
                if (MS[mi] >= 128 && n > 17) n = 17;
                check_all(MS[mi], n, KS[ki], dt, (mi + ki) & 1, seed++, (ki & 1));
            }
}

static void deep_and_wide(void) {
    for (int dt = 0; dt < 2; dt++) {
        check_all(1, 37, 4096, dt, 1, t_seed + 1 + dt, 0);
        check_all(8, 19, 4096, dt, 0, t_seed + 3 + dt, 1);
        check_all(17, 5, 4100, dt, 1, t_seed + 5 + dt, 0);
        check_all(3, 300, 520, dt, 1, t_seed + 7 + dt, 0);
        check_all(130, 70, 264, dt, 0, t_seed + 9 + dt, 1);
    }
}

/* every pattern in every position of the 16-column metadata word, both dtypes, with 0/1-nonzero
 * groups: the cyclic patterns of make24 over N = 6 rows cover (pattern, group % 4) pairs */
static void all_patterns(void) {
    for (int dt = 0; dt < 2; dt++)
        for (int64_t k = 4; k <= 48; k += 4) check_all(3, 6, k, dt, 1, t_seed + 100 + (uint64_t)k + 1000 * dt, 1);
}

/* S8 extremes: weights +-127, activations -128 / +127 / -127 at the largest K: no int16 saturation
 * (maddubs) and no int32 overflow (vpdpbusd with +128) */
static void s8_extremes(void) {
    const int xe[] = {-128, 127, -127};
    for (int e = 0; e < 3; e++)
        for (int sign = -1; sign <= 1; sign += 2) {
            uint64_t s = t_seed + (uint64_t)(e * 2 + (sign > 0));
            t_seed = s;
            mat24 a;
            acts x;
            int64_t k = ISTHMUS_GEMM_MAX_K;
            make24(&a, 5, k, 1, &s, 0, 127);
            for (int64_t i = 0; i < a.n * k; i++) /* every kept weight the same sign: the largest sums */
                if (a.wq[i]) a.wq[i] = (int8_t)(127 * sign);
            for (int64_t i = 0; i < a.n * (k / 2); i++)
                if (((int8_t *)a.values)[i]) ((int8_t *)a.values)[i] = (int8_t)(127 * sign);
            make_acts(&x, 2, k, a.n, 1, &s, 1, xe[e]);
            for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
                isthmus_set_isa_cap(isa);
                gfree(run_check(&a, &x, NULL));
            }
            free_acts(&x);
            free24(&a);
        }
}

/* results do not depend on the thread count, for prefill and decode shapes */
static void threads(void) {
    int32_t before = isthmus_get_num_threads();
    for (int dt = 0; dt < 2; dt++)
        for (int mi = 0; mi < 2; mi++) {
            int64_t m = mi ? 150 : 3, n = 200, k = 520;
            uint64_t s = t_seed + (uint64_t)(dt * 2 + mi);
            mat24 a;
            acts x;
            make24(&a, n, k, dt, &s, 0, 0);
            make_acts(&x, m, k, n, dt, &s, 1, 0);
            for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
                isthmus_set_isa_cap(isa);
                isthmus_set_num_threads(1);
                float *y1 = run_check(&a, &x, NULL);
                for (int t = 2; t <= 7; t += 5) {
                    isthmus_set_num_threads(t);
                    float *y = run_check(&a, &x, NULL);
                    CHECK(memcmp(y, y1, sizeof(float) * m * x.ldy) == 0, "%d threads differ from 1 (%s)", t,
                          dt ? "S8" : "F32");
                    gfree(y);
                }
                gfree(y1);
            }
            isthmus_set_num_threads(before);
            free_acts(&x);
            free24(&a);
        }
}

static void refused(void) {
    uint64_t s = t_seed;
    mat24 a;
    make24(&a, 3, 16, 0, &s, 0, 0);
    int64_t bytes = 0;
    isthmus_sparse_matrix bad = a.sm;
    for (int64_t k = 1; k <= 15; k++) {
        if (k % 4 == 0) continue;
        bad.k = k;
        CHECK_FAILS(isthmus_sparse_packed_size(&bad, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
        CHECK(strstr(isthmus_last_error(), "k % 4") != NULL, "message names k %% 4: %s", isthmus_last_error());
    }
    /* every invalid nibble (i0 >= i1) in every position */
    uint16_t saved = a.meta[1];
    for (int pos = 0; pos < 4; pos++)
        for (unsigned f = 0; f < 16; f++) {
            if ((f & 3) < (f >> 2)) continue;
            a.meta[1] = (uint16_t)((saved & ~(15u << (4 * pos))) | f << (4 * pos));
            CHECK_FAILS(isthmus_sparse_packed_size(&a.sm, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
            void *buf = galloc(4096);
            CHECK_FAILS(isthmus_sparse_pack(&a.sm, buf, 4096), ISTHMUS_ERR_INVALID_ARGUMENT);
            gfree(buf);
        }
    a.meta[1] = saved;
    CHECK_OK(isthmus_sparse_packed_size(&a.sm, &bytes));
    /* unused bits of a short last word must be 0 */
    mat24 b;
    make24(&b, 2, 8, 1, &s, 0, 0);
    b.meta[1] |= 0x4000;
    CHECK_FAILS(isthmus_sparse_packed_size(&b.sm, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    b.meta[1] &= 0x00ff;
    ((int8_t *)b.values)[3] = -128;
    CHECK_FAILS(isthmus_sparse_packed_size(&b.sm, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    free24(&b);
    /* packed under the best ISA, run under a lower cap: refused; a too small buffer: refused */
    if (isthmus_isa_supported() > ISTHMUS_ISA_REF) {
        isthmus_set_isa_cap(isthmus_isa_supported());
        void *packed = pack24(&a);
        CHECK_FAILS(isthmus_sparse_pack(&a.sm, packed, 64), ISTHMUS_ERR_INVALID_ARGUMENT);
        isthmus_set_isa_cap(ISTHMUS_ISA_REF);
        float x[16] = {0}, y[3];
        isthmus_spmm_args sa = {.m = 1, .x = x, .ldx = 16, .w_packed = packed, .y = y, .ldy = 3};
        CHECK_FAILS(isthmus_spmm(&sa), ISTHMUS_ERR_UNSUPPORTED);
        isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
        gfree(packed);
    }
    free24(&a);
}

const test_case sparse24_tests[] = {
    {"sparse24", "shape_sweep", shape_sweep},
    {"sparse24", "deep_and_wide", deep_and_wide},
    {"sparse24", "all_patterns", all_patterns},
    {"sparse24", "s8_extremes", s8_extremes},
    {"sparse24", "threads", threads},
    {"sparse24", "refused", refused},
    {NULL, NULL, NULL},
};
