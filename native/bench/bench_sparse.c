/*
 * isthmus_bench_sparse: isthmus_spmm through the public ABI against dense baselines in the same run:
 * OpenBLAS cblas_sgemm (and cblas_sgemv at M = 1) for F32, the project's dense isthmus_gemm_s8 for S8.
 * W [N, K] is random, pruned unstructured (csr), in blocks (bsr1x4, bsr1x8, bsr4x4: whole blocks kept
 * or removed) or 2:4 (24: two of every four, sparsity fixed at 50%). Every timed call reads the next of
 * several copies of its weights (sparse packed, dense f32, dense int8 packed), so the weights of one
 * call are never left in the L3 by the previous calls (copies together >= --rotate-mb, default 96 MiB).
 * Prints median (min .. max) microseconds per call and the speedups.
 *   isthmus_bench_sparse [--format csr|bsr1x4|bsr1x8|bsr4x4|24] [--dtype f32|s8] [--sparsity 0.9[,0.7..]]
 *                        [--m 1[,8,128..]] [--n 4096] [--k 4096] [--isa ref|avx2|avx512] [--threads T]
 *                        [--reps R] [--rotate-mb MB] [--no-baseline]
 */
#define _GNU_SOURCE
#include "isthmus.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"

#ifdef ISTHMUS_HAVE_OPENBLAS
#include <cblas.h>
#endif

static void *amalloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) { fprintf(stderr, "out of memory (%zu bytes)\n", bytes); exit(1); }
    return p;
}

typedef struct stats { double med, min, max; } stats;
/* Runs fn(ctx, copy) reps times (after 2 warm-up calls), each on the next copy. */
typedef int (*call_fn)(void *ctx, int copy);
static stats timeit(call_fn fn, void *ctx, int copies, int reps, int *fail) {
    double *t = malloc(sizeof(double) * reps);
    int c = 0;
    *fail = 0;
    for (int i = 0; i < 2; i++) if (fn(ctx, c++ % copies)) { *fail = 1; break; }
    for (int i = 0; i < reps && !*fail; i++) {
        double t0 = now();
        if (fn(ctx, c++ % copies)) *fail = 1;
        t[i] = (now() - t0) * 1e6;
    }
    qsort(t, reps, sizeof(double), cmpd);
    stats s = {t[reps / 2], t[0], t[reps - 1]};
    free(t);
    return s;
}

typedef struct ctx {
    int64_t m, n, k;
    int dtype;
    void **packed;   /* sparse copies */
    float **wd;      /* dense f32 copies */
    void **wq;       /* dense int8 packed copies */
    float *x, *y, *bias, *xs;
    int8_t *xq;
} ctx;

static int call_spmm(void *vc, int copy) {
    ctx *c = vc;
    isthmus_spmm_args a = {.m = c->m, .w_packed = c->packed[copy], .bias = c->bias, .y = c->y, .ldy = c->n};
    if (c->dtype == 0) { a.x = c->x; a.ldx = c->k; }
    else { a.xq = c->xq; a.ldxq = c->k; a.x_scales = c->xs; }
    return isthmus_spmm(&a) != ISTHMUS_OK;
}
#ifdef ISTHMUS_HAVE_OPENBLAS
static int call_sgemm(void *vc, int copy) {
    ctx *c = vc;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->m, (int)c->n, (int)c->k, 1.0f, c->x, (int)c->k,
                c->wd[copy], (int)c->k, 0.0f, c->y, (int)c->n);
    return 0;
}
static int call_sgemv(void *vc, int copy) {
    ctx *c = vc;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)c->n, (int)c->k, 1.0f, c->wd[copy], (int)c->k, c->x, 1, 0.0f, c->y, 1);
    return 0;
}
#endif
static int call_gemm_s8(void *vc, int copy) {
    ctx *c = vc;
    isthmus_gemm_s8_args a = {c->m, c->n, c->k, c->xq, c->k, ISTHMUS_SCALE_PER_ROW, c->xs, c->wq[copy], c->bias, c->y, c->n};
    return isthmus_gemm_s8(&a) != ISTHMUS_OK;
}

static int parse_list(const char *s, double *out, int max) {
    int n = 0;
    while (*s && n < max) {
        out[n++] = strtod(s, (char **)&s);
        if (*s == ',') s++;
        else break;
    }
    return n;
}

static const char *dense_name(int dtype, const char *blas) {
    return dtype == 1 ? "gemm_s8 us med (min..max)" : blas ? "sgemm us med (min..max)" : "";
}

int main(int argc, char **argv) {
    const char *format = "csr", *dtn = "f32";
    double sp[16] = {0.9}, ms[16] = {1};
    int nsp = 1, nms = 1, threads = 0, reps = 0, baseline = 1;
    int64_t n = 4096, k = 4096, rotate = (int64_t)96 << 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) format = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dtn = argv[++i];
        else if (!strcmp(argv[i], "--sparsity") && i + 1 < argc) nsp = parse_list(argv[++i], sp, 16);
        else if (!strcmp(argv[i], "--m") && i + 1 < argc) nms = parse_list(argv[++i], ms, 16);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--k") && i + 1 < argc) k = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rotate-mb") && i + 1 < argc) rotate = (int64_t)atoi(argv[++i]) << 20;
        else if (!strcmp(argv[i], "--no-baseline")) baseline = 0;
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            const char *s = argv[++i];
            isthmus_set_isa_cap(!strcmp(s, "ref") ? ISTHMUS_ISA_REF : !strcmp(s, "avx2") ? ISTHMUS_ISA_AVX2 : ISTHMUS_ISA_AVX512);
        } else { fprintf(stderr, "unknown argument %s (see the header of bench_sparse.c)\n", argv[i]); return 2; }
    }
    int fmt = ISTHMUS_SPARSE_CSR, br = 1, bc = 1;
    if (!strcmp(format, "bsr1x4")) { fmt = ISTHMUS_SPARSE_BSR; bc = 4; }
    else if (!strcmp(format, "bsr1x8")) { fmt = ISTHMUS_SPARSE_BSR; bc = 8; }
    else if (!strcmp(format, "bsr4x4")) { fmt = ISTHMUS_SPARSE_BSR; br = 4; bc = 4; }
    else if (!strcmp(format, "24")) { fmt = ISTHMUS_SPARSE_2_4; nsp = 1; sp[0] = 0.5; }
    else if (strcmp(format, "csr")) { fprintf(stderr, "unknown format %s\n", format); return 2; }
    int dtype = !strcmp(dtn, "s8") ? ISTHMUS_DTYPE_S8 : ISTHMUS_DTYPE_F32;
    if (threads > 0) isthmus_set_num_threads(threads);
    threads = isthmus_get_num_threads();
#ifdef ISTHMUS_HAVE_OPENBLAS
    openblas_set_num_threads(threads);
    const char *blas = "OpenBLAS";
#else
    const char *blas = NULL;
#endif
    printf("isthmus_bench_sparse: %s %s, N = %lld, K = %lld, ISA %s, %d threads, weights rotated over >= %lld MiB\n",
           format, dtn, (long long)n, (long long)k, isthmus_isa_name(isthmus_isa()), threads, (long long)(rotate >> 20));
    if (dtype == ISTHMUS_DTYPE_F32 && !blas && baseline)
        printf("note: OpenBLAS (cblas.h + libopenblas) was not found when configuring: the f32 baselines are SKIPPED\n");

    /* dense random W and the 2:4 / block / element masks */
    float *wf = amalloc(sizeof(float) * (size_t)(n * k));
    for (int64_t i = 0; i < n * k; i++) wf[i] = (float)(unit() * 2 - 1);
    int64_t mmax = 0;
    for (int i = 0; i < nms; i++) if ((int64_t)ms[i] > mmax) mmax = (int64_t)ms[i];
    ctx c = {.n = n, .k = k, .dtype = dtype};
    c.x = amalloc(sizeof(float) * (size_t)(mmax * k));
    c.xq = amalloc((size_t)(mmax * k));
    c.xs = amalloc(sizeof(float) * (size_t)mmax);
    c.y = amalloc(sizeof(float) * (size_t)(mmax * n));
    c.bias = amalloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < mmax * k; i++) { c.x[i] = (float)(unit() * 2 - 1); c.xq[i] = (int8_t)((int)(rnd() % 255) - 127); }
    for (int64_t i = 0; i < mmax; i++) c.xs[i] = 0.01f;
    for (int64_t i = 0; i < n; i++) c.bias[i] = 0.5f;
    float *wscale = amalloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) wscale[i] = 0.01f;

    for (int si = 0; si < nsp; si++) {
        double s = sp[si];
        /* prune: a copy of W with the removed weights zeroed (the dense baselines use it too) */
        float *wp = amalloc(sizeof(float) * (size_t)(n * k));
        int8_t *wq = amalloc((size_t)(n * k));
        memcpy(wp, wf, sizeof(float) * (size_t)(n * k));
        if (fmt == ISTHMUS_SPARSE_2_4) {
            for (int64_t r = 0; r < n; r++)
                for (int64_t g = 0; g < k / 4; g++) {
                    int a = (int)(rnd() % 4), b = (a + 1 + (int)(rnd() % 3)) % 4;
                    for (int q = 0; q < 4; q++) if (q != a && q != b) wp[r * k + g * 4 + q] = 0.0f;
                }
        } else {
            for (int64_t r = 0; r < n / br; r++)
                for (int64_t q = 0; q < k / bc; q++)
                    if (unit() < s)
                        for (int64_t i = 0; i < br; i++)
                            for (int64_t j = 0; j < bc; j++) wp[(r * br + i) * k + q * bc + j] = 0.0f;
        }
        for (int64_t i = 0; i < n * k; i++) {
            int v = (int)lrintf(wp[i] * 127.0f);
            wq[i] = (int8_t)(wp[i] != 0.0f && v == 0 ? 1 : v);
        }
        /* exchange format */
        isthmus_sparse_matrix w = {.n = n, .k = k, .format = fmt, .dtype = dtype, .block_rows = br, .block_cols = bc,
                                   .scales = dtype == ISTHMUS_DTYPE_S8 ? wscale : NULL};
        int64_t *rp = NULL;
        int32_t *ci = NULL;
        void *vals = NULL;
        uint16_t *meta = NULL;
        size_t es = dtype == ISTHMUS_DTYPE_S8 ? 1 : 4;
        if (fmt == ISTHMUS_SPARSE_2_4) {
            int64_t words = (k + 15) / 16;
            meta = calloc((size_t)(n * words), 2);
            vals = amalloc(es * (size_t)(n * (k / 2)));
            for (int64_t r = 0; r < n; r++)
                for (int64_t g = 0; g < k / 4; g++) {
                    int idx[2], cnt = 0;
                    for (int q = 0; q < 4 && cnt < 2; q++) if (wp[r * k + g * 4 + q] != 0.0f) idx[cnt++] = q;
                    /* fewer than 2 nonzeros: keep zeros at the lowest free indices */
                    for (int q = 0; q < 4 && cnt < 2; q++)
                        if (wp[r * k + g * 4 + q] == 0.0f && !(cnt == 1 && idx[0] == q)) idx[cnt++] = q;
                    if (idx[0] > idx[1]) { int t = idx[0]; idx[0] = idx[1]; idx[1] = t; }
                    meta[r * words + g / 4] |= (uint16_t)((idx[0] | idx[1] << 2) << (4 * (g % 4)));
                    for (int e = 0; e < 2; e++) {
                        int64_t src = r * k + g * 4 + idx[e], dst = r * (k / 2) + g * 2 + e;
                        if (es == 4) ((float *)vals)[dst] = wp[src];
                        else ((int8_t *)vals)[dst] = wq[src];
                    }
                }
            w.meta = meta;
        } else {
            int64_t R = n / br, C = k / bc, nb = 0;
            rp = amalloc(8 * (size_t)(R + 1));
            for (int64_t r = 0; r < R; r++)
                for (int64_t q = 0; q < C; q++) {
                    int any = 0;
                    for (int64_t i = 0; i < br && !any; i++)
                        for (int64_t j = 0; j < bc; j++) any |= wp[(r * br + i) * k + q * bc + j] != 0.0f;
                    nb += any;
                }
            ci = amalloc(4 * (size_t)(nb + 1));
            vals = amalloc(es * (size_t)((nb + 1) * br * bc));
            nb = 0;
            for (int64_t r = 0; r < R; r++) {
                rp[r] = nb;
                for (int64_t q = 0; q < C; q++) {
                    int any = 0;
                    for (int64_t i = 0; i < br && !any; i++)
                        for (int64_t j = 0; j < bc; j++) any |= wp[(r * br + i) * k + q * bc + j] != 0.0f;
                    if (!any) continue;
                    ci[nb] = (int32_t)q;
                    for (int64_t i = 0; i < br; i++)
                        for (int64_t j = 0; j < bc; j++) {
                            int64_t src = (r * br + i) * k + q * bc + j, dst = (nb * br + i) * bc + j;
                            if (es == 4) ((float *)vals)[dst] = wp[src];
                            else ((int8_t *)vals)[dst] = wq[src];
                        }
                    nb++;
                }
            }
            rp[R] = nb;
            w.nnz = nb;
            w.row_ptr = rp;
            w.col_idx = ci;
        }
        w.values = vals;
        int64_t bytes = 0;
        isthmus_status st = isthmus_sparse_packed_size(&w, &bytes);
        int copies = 0;
        if (st == ISTHMUS_OK) {
            copies = (int)((rotate + bytes - 1) / bytes);
            if (copies < 2) copies = 2;
            if (copies > 256) copies = 256;
            c.packed = malloc(sizeof(void *) * copies);
            for (int i = 0; i < copies && st == ISTHMUS_OK; i++) {
                c.packed[i] = amalloc((size_t)bytes);
                st = isthmus_sparse_pack(&w, c.packed[i], bytes);
            }
        }
        if (st != ISTHMUS_OK) {
            printf("%s %s sparsity %.2f: isthmus_sparse_pack failed (%d): %s\n", format, dtn, s, st, isthmus_last_error());
            if (fmt == ISTHMUS_SPARSE_2_4) printf("  (the 2:4 kernels have not landed yet: skipping the 2:4 timings)\n");
            free(wp); free(wq); free(rp); free(ci); free(vals); free(meta);
            continue;
        }
        isthmus_sparse_info info;
        isthmus_sparse_packed_info(c.packed[0], &info);
        printf("\nsparsity %.2f: %lld stored values, packed %.2f MiB (%.2f bytes per stored value), %d copies\n", s,
               (long long)info.nnz, bytes / 1048576.0, (double)bytes / (double)(info.nnz ? info.nnz : 1), copies);
        /* dense baselines' weights */
        int dcopies = 0;
        if (baseline && dtype == ISTHMUS_DTYPE_F32 && blas) {
            dcopies = (int)((rotate + n * k * 4 - 1) / (n * k * 4));
            if (dcopies < 2) dcopies = 2;
            c.wd = malloc(sizeof(float *) * dcopies);
            for (int i = 0; i < dcopies; i++) {
                c.wd[i] = amalloc(sizeof(float) * (size_t)(n * k));
                memcpy(c.wd[i], wp, sizeof(float) * (size_t)(n * k));
            }
        }
        if (baseline && dtype == ISTHMUS_DTYPE_S8) {
            isthmus_gemm_pack_args pa = {n, k, wq, k, ISTHMUS_SCALE_PER_ROW, 0, wscale, NULL, 0};
            int64_t qb = 0;
            if (isthmus_gemm_s8_packed_size(&pa, &qb) == ISTHMUS_OK) {
                dcopies = (int)((rotate + qb - 1) / qb);
                if (dcopies < 2) dcopies = 2;
                c.wq = malloc(sizeof(void *) * dcopies);
                for (int i = 0; i < dcopies; i++) {
                    c.wq[i] = amalloc((size_t)qb);
                    pa.packed = c.wq[i];
                    pa.packed_size = qb;
                    isthmus_gemm_s8_pack(&pa);
                }
            }
        }
        printf("%5s %24s %24s %8s %24s %8s\n", "M", "spmm us med (min..max)", dense_name(dtype, blas), "speedup",
               dtype == ISTHMUS_DTYPE_F32 ? "sgemv us med (min..max)" : "", dtype == ISTHMUS_DTYPE_F32 ? "speedup" : "");
        for (int mi = 0; mi < nms; mi++) {
            c.m = (int64_t)ms[mi];
            double work = (double)info.nnz * c.m;   /* ~1 ns per 4 stored MACs budget: keep runs short */
            int r = reps > 0 ? reps : (int)fmin(200, fmax(9, 4e8 / (work + 1e6)));
            int fail;
            stats sps = timeit(call_spmm, &c, copies, r, &fail);
            if (fail) { printf("%5lld isthmus_spmm failed: %s\n", (long long)c.m, isthmus_last_error()); continue; }
            printf("%5lld %9.1f (%6.1f..%7.1f)", (long long)c.m, sps.med, sps.min, sps.max);
            if (!baseline || (dtype == ISTHMUS_DTYPE_F32 && !blas)) { printf("   (no baseline)\n"); continue; }
            int rd = reps > 0 ? reps : (int)fmin(100, fmax(5, 2e8 / ((double)n * k * c.m + 1e6)));
            stats d;
            if (dtype == ISTHMUS_DTYPE_S8) d = timeit(call_gemm_s8, &c, dcopies, rd, &fail);
#ifdef ISTHMUS_HAVE_OPENBLAS
            else d = timeit(call_sgemm, &c, dcopies, rd, &fail);
#endif
            printf(" %9.1f (%6.1f..%7.1f) %7.2fx", d.med, d.min, d.max, d.med / sps.med);
#ifdef ISTHMUS_HAVE_OPENBLAS
            if (dtype == ISTHMUS_DTYPE_F32 && c.m == 1) {
                stats g = timeit(call_sgemv, &c, dcopies, rd, &fail);
                printf(" %9.1f (%6.1f..%7.1f) %7.2fx", g.med, g.min, g.max, g.med / sps.med);
            }
#endif
            printf("\n");
        }
        for (int i = 0; i < copies; i++) free(c.packed[i]);
        free(c.packed);
        if (c.wd) { for (int i = 0; i < dcopies; i++) free(c.wd[i]); free(c.wd); c.wd = NULL; }
        if (c.wq) { for (int i = 0; i < dcopies; i++) free(c.wq[i]); free(c.wq); c.wq = NULL; }
        free(wp); free(wq); free(rp); free(ci); free(vals); free(meta);
    }
    return 0;
}
