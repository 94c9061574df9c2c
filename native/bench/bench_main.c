/*
 * isthmus_bench: the native benchmark harness. Times isthmus_gemm_s8 (int8 x int8 -> f32 with scales)
 * per ISA variant and scale granularity against oneDNN's u8 x s8 -> s32 matmul, and measures the
 * machine's int8 ceilings and read bandwidth in the same run. Medians of repeated runs.
 *   isthmus_bench [--quick] [--threads N]
 */
#define _GNU_SOURCE
#include "bench_shim.h"
#include "isthmus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"


typedef int (*run_fn)(void *ctx);

/* median seconds per call over at least min_reps calls and about budget seconds */
static double time_median(run_fn fn, void *ctx, double budget, int min_reps, double *spread) {
    double ts[2000];
    int n = 0;
    fn(ctx); /* warm */
    double t_start = now();
    while (n < 2000 && (n < min_reps || now() - t_start < budget)) {
        double t0 = now();
        if (fn(ctx) != 0) return -1;
        ts[n++] = now() - t0;
    }
    qsort(ts, n, sizeof ts[0], cmpd);
    if (spread) *spread = (ts[(int)(n * 0.9)] - ts[(int)(n * 0.1)]) / ts[n / 2];
    return ts[n / 2];
}

/* Weights rotate over enough copies to exceed the last-level cache (ROTATE_BYTES), so decode shapes
 * measure streaming from memory as in a real model, not a 16 MB matrix sitting in L3. */
#define ROTATE_BYTES ((size_t)256 << 20)
#define MAX_COPIES 64
typedef struct gctx { isthmus_gemm_s8_args a; void *packed[MAX_COPIES]; int copies, next; } gctx;
static int run_gemm(void *c) {
    gctx *g = c;
    g->a.w_packed = g->packed[g->next];
    g->next = (g->next + 1) % g->copies;
    return isthmus_gemm_s8(&g->a);
}
typedef struct dctx { void *h[MAX_COPIES]; int copies, next; } dctx;
static int run_dnnl(void *c) {
    dctx *d = c;
    int st = ibench_dnnl_run(d->h[d->next]);
    d->next = (d->next + 1) % d->copies;
    return st;
}
static int copies_for(size_t bytes) {
    if (getenv("ISTHMUS_BENCH_COPIES")) return atoi(getenv("ISTHMUS_BENCH_COPIES"));
    size_t c = (ROTATE_BYTES + bytes - 1) / bytes;
    return c < 1 ? 1 : c > MAX_COPIES ? MAX_COPIES : (int)c;
}

int main(int argc, char **argv) {
    int quick = 0, threads = isthmus_get_num_threads();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    }
    isthmus_set_num_threads(threads);
    double budget = quick ? 0.3 : 1.0;
    printf("isthmus_bench: %d threads, best ISA %s, %s\n", threads, isthmus_isa_name(isthmus_isa_supported()), ibench_dnnl_info());
    double peak2 = ibench_avx2_int8_peak_gops(threads, quick ? 0.3 : 1.0);
    double peak5 = ibench_vnni_int8_peak_gops(threads, quick ? 0.3 : 1.0);
    double bw = ibench_read_bandwidth_gbs(threads, (size_t)512 << 20, quick ? 3 : 5);
    printf("ceilings: AVX2 int8 idiom %.1f GOP/s, AVX-512 VNNI %.1f GOP/s, read bandwidth %.1f GB/s\n\n", peak2, peak5, bw);

    static const long shapes[][3] = {{1, 4096, 4096}, {1, 11008, 4096}, {8, 4096, 4096}, {32, 4096, 4096},
                                     {128, 4096, 4096}, {512, 4096, 4096}};
    printf("%-5s %-6s %-6s %-8s %-6s %10s %8s %10s %8s\n", "M", "N", "K", "isa", "group", "GOP/s", "spread", "weightGB/s", "xDNNL");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        long m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        double ops = 2.0 * m * n * k;
        double dnnl_t = -1, sp = 0;
        dctx dc = {.copies = copies_for((size_t)n * k)};
        for (int i = 0; i < dc.copies; i++) dc.h[i] = ibench_dnnl_create(m, n, k);
        if (dc.h[0]) dnnl_t = time_median(run_dnnl, &dc, budget, 3, &sp);
        for (int i = 0; i < dc.copies; i++) ibench_dnnl_destroy(dc.h[i]);
        if (dnnl_t > 0)
            printf("%-5ld %-6ld %-6ld %-8s %-6s %10.1f %7.0f%% %10.1f %8s\n", m, n, k, "onednn", "-", ops / dnnl_t / 1e9, sp * 100,
                   (double)n * k / dnnl_t / 1e9, "1.00");
        int8_t *w = malloc(n * k), *a = malloc(m * k);
        for (long i = 0; i < n * k; i++) w[i] = (int8_t)((i * 13) % 255 - 127);
        for (long i = 0; i < m * k; i++) a[i] = (int8_t)((i * 7) % 255 - 127);
        float *ws = malloc(sizeof(float) * n * (k / 32)), *as = malloc(sizeof(float) * m * (k / 32)), *y = malloc(sizeof(float) * m * n);
        for (long i = 0; i < n * (k / 32); i++) ws[i] = 0.01f;
        for (long i = 0; i < m * (k / 32); i++) as[i] = 0.02f;
        for (int isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
            if (isa == ISTHMUS_ISA_REF && m > 8) continue; /* the oracle: minutes at these sizes */
            isthmus_set_isa_cap(isa);
            for (int gi = 0; gi < 2; gi++) {
                int64_t group = gi ? 32 : 0;
                isthmus_gemm_pack_args pa = {n, k, w, k, gi ? ISTHMUS_SCALE_PER_GROUP : ISTHMUS_SCALE_PER_ROW, group, ws, NULL, 0};
                int64_t bytes;
                isthmus_gemm_s8_packed_size(&pa, &bytes);
                gctx c = {{m, n, k, a, k, gi ? ISTHMUS_SCALE_PER_GROUP : ISTHMUS_SCALE_PER_ROW, as, NULL, NULL, y, n}, {0}, 0, 0};
                c.copies = isa == ISTHMUS_ISA_REF ? 1 : copies_for((size_t)bytes);
                for (int ci = 0; ci < c.copies; ci++) {
                    if (posix_memalign(&c.packed[ci], 64, bytes)) return 1;
                    pa.packed = c.packed[ci];
                    pa.packed_size = bytes;
                    if (isthmus_gemm_s8_pack(&pa)) { fprintf(stderr, "%s\n", isthmus_last_error()); return 1; }
                }
                double t = time_median(run_gemm, &c, isa == ISTHMUS_ISA_REF ? 0.2 : budget, isa == ISTHMUS_ISA_REF ? 1 : 5, &sp);
                char ratio[16] = "-";
                if (dnnl_t > 0) snprintf(ratio, sizeof ratio, "%.2f", dnnl_t / t);
                printf("%-5ld %-6ld %-6ld %-8s %-6s %10.1f %7.0f%% %10.1f %8s\n", m, n, k, isthmus_isa_name(isa), gi ? "32" : "row",
                       ops / t / 1e9, sp * 100, (double)n * k / t / 1e9, ratio);
                fflush(stdout);
                for (int ci = 0; ci < c.copies; ci++) free(c.packed[ci]);
            }
        }
        isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
        free(w); free(a); free(ws); free(as); free(y);
    }
    return 0;
}
