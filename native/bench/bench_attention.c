/*
 * isthmus_bench_attention: decode attention over the paged KV cache, as effective GB/s of KV bytes
 * read, against the machine's read bandwidth measured in the same run. 32 query heads / 8 KV heads,
 * head_dim 128, q_len 1, block 16. Each call uses the next of several layers, so the KV a call reads is
 * not left in cache by the previous call (at least 512 MB rotate), as in a real multi-layer decode step.
 *   isthmus_bench_attention [--quick] [--threads N] [--isa ref|avx2|avx512] [--ctx N] [--batch B]
 *                           [--kv f32|f16|bf16|int8] [--rotate-mb MB (0: one layer, cache-resident)]
 */
#define _GNU_SOURCE
#include "bench_shim.h"
#include "isthmus.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"


#define QH 32
#define KVH 8
#define D 128
static int64_t ROTATE = (int64_t)512 << 20;
static int only_ctx = 0, only_dt = -1, only_batch = 0, prefill = 0, block = 16;

static const char *DTN[] = {"f32", "f16", "bf16", "int8"};

int main(int argc, char **argv) {
    int quick = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rotate-mb") && i + 1 < argc) ROTATE = (int64_t)atoi(argv[++i]) << 20;
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) only_ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc) prefill = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--block") && i + 1 < argc) block = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) only_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kv") && i + 1 < argc) {
            const char *k = argv[++i];
            only_dt = !strcmp(k, "f32") ? 0 : !strcmp(k, "f16") ? 1 : !strcmp(k, "bf16") ? 2 : 3;
        }
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            const char *s = argv[++i];
            isthmus_set_isa_cap(!strcmp(s, "ref") ? ISTHMUS_ISA_REF : !strcmp(s, "avx2") ? ISTHMUS_ISA_AVX2
                                                                                             : ISTHMUS_ISA_AVX512);
        }
    }
    if (threads > 0) isthmus_set_num_threads(threads);
    threads = isthmus_get_num_threads();
    double bw = ibench_read_bandwidth_gbs(threads, (size_t)1 << 30, 5);
    printf("isthmus_bench_attention: ISA %s, %d threads, read bandwidth %.1f GB/s (same run)\n",
           isthmus_isa_name(isthmus_isa()), threads, bw);
    printf("%-6s %6s %5s %10s %9s %7s %8s\n", "kv", "ctx", "batch", "us/call", "GB/s", "%bw", "spread");
    if (prefill) { /* q_len = 512 on a fresh sequence, causal: GFLOP/s */
        for (int dt = 0; dt < 4; dt++) {
            if (only_dt >= 0 && dt != only_dt) continue;
            const int n = prefill;
            isthmus_kv_config cfg = {.layers = 1, .kv_heads = KVH, .head_dim = D, .block_size = 16, .dtype = dt,
                                     .num_blocks = (n + 15) / 16, .max_seqs = 1, .max_seq_len = n};
            int64_t sb, pb;
            isthmus_kv_sizes(&cfg, &sb, &pb);
            void *state = aligned_alloc(64, (size_t)((sb + 63) & ~63)), *pool = aligned_alloc(64, (size_t)((pb + 63) & ~63));
            isthmus_kv_init(&cfg, state, sb, pool, pb);
            int32_t seq, ql = n;
            isthmus_kv_seq_create(state, &seq);
            isthmus_kv_seq_extend(state, seq, n);
            float *kv = malloc((size_t)n * KVH * D * 4), *q = malloc((size_t)n * QH * D * 4), *out = malloc((size_t)n * QH * D * 4);
            for (int64_t i = 0; i < (int64_t)n * KVH * D; i++) kv[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
            for (int64_t i = 0; i < (int64_t)n * QH * D; i++) q[i] = (float)((i * 40503u) % 1000) / 500.0f - 1.0f;
            isthmus_kv_write_args w = {.kv = state, .layer = 0, .n_seqs = 1, .seqs = &seq, .n_tokens = &ql, .k = kv,
                                       .ldk = KVH * D, .v = kv, .ldv = KVH * D};
            isthmus_kv_write(&w);
            isthmus_attention_args a = {.kv = state, .n_seqs = 1, .seqs = &seq, .q_lens = &ql, .q_heads = QH, .q = q,
                                        .ldq = QH * D, .out = out, .ldo = QH * D, .scale = 1.0f / sqrtf(D)};
            double ts[1000];
            int k = 0;
            isthmus_attention(&a);
            double t_start = now();
            while (k < 1000 && (k < 5 || now() - t_start < (quick ? 0.5 : 2.0))) {
                double t0 = now();
                isthmus_attention(&a);
                ts[k++] = now() - t0;
            }
            qsort(ts, k, sizeof ts[0], cmpd);
            double flops = 4.0 * D * QH * ((double)n * (n + 1) / 2);
            printf("prefill %-5s q_len %d: %.2f ms, %.1f GFLOP/s (spread %.0f%%)\n", DTN[dt], n, ts[k / 2] * 1e3,
                   flops / ts[k / 2] * 1e-9, 100 * (ts[(int)(k * 0.9)] - ts[(int)(k * 0.1)]) / ts[k / 2]);
            free(kv); free(q); free(out); free(state); free(pool);
        }
        return 0;
    }
    static const int CTX[] = {512, 4096, 32768};
    static const int BATCH[] = {1, 8};
    for (int ci = 0; ci < 3; ci++)
        for (int bi = 0; bi < 2; bi++)
            for (int dt = 0; dt < 4; dt++) {
                int ctx = CTX[ci], batch = BATCH[bi];
                if (quick && (ctx == 32768 && batch == 8)) continue;
                if ((only_ctx && ctx != only_ctx) || (only_batch && batch != only_batch) || (only_dt >= 0 && dt != only_dt))
                    continue;
                int esz = dt == 0 ? 4 : dt == 3 ? 1 : 2;
                int64_t per_layer = (int64_t)batch * ctx * KVH * D * 2 * esz + (dt == 3 ? (int64_t)batch * ctx * KVH * 8 : 0);
                int layers = (int)((ROTATE + per_layer - 1) / per_layer);
                if (layers < 1) layers = 1;
                if (layers > 64) layers = 64;
                int bs = block, blocks = batch * ((ctx + bs - 1) / bs);
                isthmus_kv_config cfg = {.layers = layers, .kv_heads = KVH, .head_dim = D, .block_size = bs,
                                         .dtype = dt, .num_blocks = blocks, .max_seqs = batch, .max_seq_len = ctx};
                int64_t sb, pb;
                if (isthmus_kv_sizes(&cfg, &sb, &pb)) { printf("sizes: %s\n", isthmus_last_error()); return 1; }
                void *state = aligned_alloc(64, (size_t)((sb + 63) & ~63)), *pool = aligned_alloc(64, (size_t)((pb + 63) & ~63));
                if (!state || !pool || isthmus_kv_init(&cfg, state, sb, pool, pb)) { printf("init failed\n"); return 1; }
                int32_t seqs[8], qls[8];
                float *kv = malloc((size_t)ctx * KVH * D * 4);
                for (int64_t i = 0; i < (int64_t)ctx * KVH * D; i++) kv[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
                for (int b = 0; b < batch; b++) {
                    isthmus_kv_seq_create(state, &seqs[b]);
                    isthmus_kv_seq_extend(state, seqs[b], ctx);
                    qls[b] = 1;
                    int32_t n = ctx;
                    for (int l = 0; l < layers; l++) {
                        isthmus_kv_write_args w = {.kv = state, .layer = l, .n_seqs = 1, .seqs = &seqs[b], .n_tokens = &n,
                                                   .k = kv, .ldk = KVH * D, .v = kv, .ldv = KVH * D};
                        if (isthmus_kv_write(&w)) { printf("write: %s\n", isthmus_last_error()); return 1; }
                    }
                }
                free(kv);
                float *q = malloc((size_t)batch * QH * D * 4), *out = malloc((size_t)batch * QH * D * 4);
                for (int i = 0; i < batch * QH * D; i++) q[i] = (float)(i % 17) / 17.0f - 0.5f;
                isthmus_attention_args a = {.kv = state, .n_seqs = batch, .seqs = seqs, .q_lens = qls, .q_heads = QH,
                                            .q = q, .ldq = QH * D, .out = out, .ldo = QH * D, .scale = 1.0f / sqrtf(D)};
                double ts[4000];
                int n = 0, layer = 0;
                double budget = quick ? 0.4 : 1.5, t_start = now();
                for (int w = 0; w < layers; w++) { a.layer = w; isthmus_attention(&a); }
                while (n < 4000 && (n < 10 || now() - t_start < budget)) {
                    a.layer = layer;
                    layer = (layer + 1) % layers;
                    double t0 = now();
                    if (isthmus_attention(&a)) { printf("attention: %s\n", isthmus_last_error()); return 1; }
                    ts[n++] = now() - t0;
                }
                qsort(ts, n, sizeof ts[0], cmpd);
                double med = ts[n / 2], spread = (ts[(int)(n * 0.9)] - ts[(int)(n * 0.1)]) / med;
                double gbs = per_layer / med * 1e-9;
                printf("%-6s %6d %5d %10.1f %9.1f %6.0f%% %7.0f%%\n", DTN[dt], ctx, batch, med * 1e6, gbs, 100 * gbs / bw,
                       100 * spread);
                fflush(stdout);
                free(q); free(out); free(state); free(pool);
            }
    return 0;
}
