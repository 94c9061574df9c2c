/*
 * isthmus_bench_speculative: isthmus_sample and isthmus_verify through the public ABI.
 *  sample: B rows of LLM-like logits (N(0, 3^2) with a peaked head), V = 32K / 128K / 256K, plain
 *          temperature, top-k 50, top-p 0.9, top-k 50 + top-p 0.9 + min-p 0.05, greedy; tokens only
 *          (probs = NULL), and plain with probs written out.
 *  verify: V = 128K, chain k = 4, B = 8: target as logits + params (temperature 0.8), draft as the probs
 *          [B, k, V] isthmus_sample made (temperature 0.8); greedy and sampling; acceptance high (target
 *          = draft logits + small noise) and low (independent logits).
 * Prints median (min .. max) microseconds per call over --reps calls after 3 warm-up calls; the same
 * buffers every call (warm caches as far as they fit).
 *   isthmus_bench_speculative [--isa ref|avx2|avx512] [--threads T] [--reps R] [--rows B] [--only sample|verify]
 *                             [--mode NAME] (one sampling mode, as printed)
 */
#define _GNU_SOURCE
#include "isthmus.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_time.h"

static float gauss(void) {
    double g = 0.0;
    for (int j = 0; j < 4; j++) g += unit() - 0.5;
    return (float)(g * 1.7);
}
static void *amalloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) { fprintf(stderr, "out of memory (%zu bytes)\n", bytes); exit(1); }
    return p;
}

typedef struct stats { double med, min, max; } stats;
typedef int (*call_fn)(void *ctx);
static stats timeit(call_fn fn, void *ctx, int reps, int *fail) {
    double *t = malloc(sizeof(double) * reps);
    *fail = 0;
    for (int i = 0; i < 3; i++) if (fn(ctx)) { *fail = 1; break; }
    for (int i = 0; i < reps && !*fail; i++) {
        double t0 = now();
        if (fn(ctx)) *fail = 1;
        t[i] = (now() - t0) * 1e6;
    }
    qsort(t, reps, sizeof(double), cmpd);
    stats s = {t[reps / 2], t[0], t[reps - 1]};
    free(t);
    return s;
}

static void llm_logits(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = 3.0f * gauss();
    for (int i = 0; i < 20 && i < n; i++) x[rnd() % n] = 12.0f + 4.0f * (float)unit(); /* a peaked head */
}

static uint64_t step;
static isthmus_sample_args sa;
static int call_sample(void *c) {
    (void)c;
    uint64_t *st = (uint64_t *)sa.streams;
    for (int64_t r = 0; r < sa.rows; r++) st[r] = (uint64_t)r << 32 | step;
    step++;
    if (isthmus_sample(&sa) != ISTHMUS_OK) { fprintf(stderr, "%s\n", isthmus_last_error()); return 1; }
    return 0;
}
static isthmus_verify_args va;
static int call_verify(void *c) {
    (void)c;
    uint64_t *st = (uint64_t *)va.streams;
    for (int64_t b = 0; b < va.batch; b++) st[b] = (uint64_t)b << 32 | step;
    step++;
    if (isthmus_verify(&va) != ISTHMUS_OK) { fprintf(stderr, "%s\n", isthmus_last_error()); return 1; }
    return 0;
}

int main(int argc, char **argv) {
    int reps = 100, rows = 8;
    const char *only = NULL, *mode = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            const char *s = argv[++i];
            isthmus_set_isa_cap(!strcmp(s, "ref") ? ISTHMUS_ISA_REF : !strcmp(s, "avx2") ? ISTHMUS_ISA_AVX2 : ISTHMUS_ISA_AVX512);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) isthmus_set_num_threads(atoi(argv[++i]));
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--isa ref|avx2|avx512] [--threads T] [--reps R] [--rows B] [--only sample|verify] [--mode NAME]\n", argv[0]);
            return 2;
        }
    }
    printf("isthmus %s, isa %s, %d threads, %d reps; microseconds per call: median (min .. max)\n", isthmus_version(),
           isthmus_isa_name(isthmus_isa()), isthmus_get_num_threads(), reps);
    int fail = 0;
    if (!only || !strcmp(only, "sample")) {
        static const int64_t vs[3] = {32768, 131072, 262144};
        for (int vi = 0; vi < 3; vi++) {
            int64_t V = vs[vi];
            float *x = amalloc(sizeof(float) * rows * V), *pb = amalloc(sizeof(float) * rows * V);
            for (int r = 0; r < rows; r++) llm_logits(x + (int64_t)r * V, V);
            int32_t *tok = amalloc(sizeof(int32_t) * rows);
            uint64_t *st = amalloc(sizeof(uint64_t) * rows);
            struct { const char *name; isthmus_sampling_params p; int probs; } modes[] = {
                {"plain T=0.8", {0.8f, 0, 1.0f, 0.0f, 1.0f, 0}, 0},
                {"plain T=0.8 +probs", {0.8f, 0, 1.0f, 0.0f, 1.0f, 0}, 1},
                {"top-k 50", {0.8f, 50, 1.0f, 0.0f, 1.0f, 0}, 0},
                {"top-p 0.9", {0.8f, 0, 0.9f, 0.0f, 1.0f, 0}, 0},
                {"top-k 50 top-p 0.9 min-p 0.05", {0.8f, 50, 0.9f, 0.05f, 1.0f, 0}, 0},
                {"top-p 0.9 (flat: T=4)", {4.0f, 0, 0.9f, 0.0f, 1.0f, 0}, 0},
                {"greedy", {0.0f, 0, 1.0f, 0.0f, 1.0f, 0}, 0},
            };
            for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
                if (mode && strcmp(modes[m].name, mode) != 0) continue;
                isthmus_sample_args a = {.rows = rows, .vocab = V, .logits = x, .ld = V, .params = &modes[m].p, .seed = 7,
                                         .streams = st, .tokens = tok, .probs = modes[m].probs ? pb : NULL, .ldp = V};
                sa = a;
                stats s = timeit(call_sample, NULL, reps, &fail);
                if (fail) return 1;
                printf("sample V=%-7lld B=%d %-32s %9.1f (%.1f .. %.1f)  = %.1f us/row\n", (long long)V, rows, modes[m].name,
                       s.med, s.min, s.max, s.med / rows);
            }
            free(x), free(pb), free(tok), free(st);
        }
    }
    if (!only || !strcmp(only, "verify")) {
        const int64_t V = 131072;
        const int32_t B = 8, K = 4;
        float *dl = amalloc(sizeof(float) * B * K * V), *dp = amalloc(sizeof(float) * B * K * V);
        float *tl = amalloc(sizeof(float) * B * (K + 1) * V);
        int32_t *dt = amalloc(sizeof(int32_t) * B * K), acc[8], tok[8 * 5], path[8 * 4];
        uint64_t st[8 * 4];
        for (int64_t r = 0; r < (int64_t)B * K; r++) llm_logits(dl + r * V, V);
        isthmus_sampling_params dpar = {0.8f, 0, 1.0f, 0.0f, 1.0f, 0};
        for (int i = 0; i < B * K; i++) st[i] = 1000 + i;
        isthmus_sample_args a = {.rows = B * K, .vocab = V, .logits = dl, .ld = V, .params = &dpar, .seed = 5,
                                 .streams = st, .tokens = dt, .probs = dp, .ldp = V};
        if (isthmus_sample(&a)) { fprintf(stderr, "%s\n", isthmus_last_error()); return 1; }
        for (int acc_hi = 1; acc_hi >= 0; acc_hi--) {
            for (int32_t b = 0; b < B; b++)
                for (int32_t r = 0; r <= K; r++) {
                    float *t = tl + ((int64_t)b * (K + 1) + r) * V;
                    if (acc_hi && r < K)
                        for (int64_t i = 0; i < V; i++) t[i] = dl[((int64_t)b * K + r) * V + i] + 0.1f * gauss();
                    else llm_logits(t, V);
                }
            for (int greedy = 1; greedy >= 0; greedy--) {
                isthmus_verify_args v = {.batch = B, .nodes = K, .vocab = V, .greedy = greedy, .draft_tokens = dt,
                                         .ld_tokens = K, .seed = 11, .streams = st, .accepted = acc, .tokens = tok,
                                         .ld_out = K + 1, .path = path, .ld_path = K};
                v.draft.kind = ISTHMUS_DIST_PROBS, v.draft.data = dp, v.draft.ld = V;
                v.target.kind = ISTHMUS_DIST_LOGITS, v.target.data = tl, v.target.ld = V;
                v.target.params = dpar;
                if (greedy) { /* greedy drafts: the draft argmax, so high acceptance means the argmax agrees */
                    for (int32_t b = 0; b < B; b++)
                        for (int32_t j = 0; j < K; j++) {
                            const float *row = dl + ((int64_t)b * K + j) * V;
                            int64_t am = 0;
                            for (int64_t i = 1; i < V; i++) if (row[i] > row[am]) am = i;
                            dt[b * K + j] = (int32_t)am;
                        }
                } else if (isthmus_sample(&a)) return 1;
                va = v;
                stats s = timeit(call_verify, NULL, reps, &fail);
                if (fail) return 1;
                int tot = 0;
                for (int b = 0; b < B; b++) tot += acc[b];
                printf("verify V=%lld k=%d B=%d %-8s acceptance %-4s (last call: %2d of %2d accepted) %9.1f (%.1f .. %.1f)\n",
                       (long long)V, K, B, greedy ? "greedy" : "sampling", acc_hi ? "high" : "low", tot, B * K, s.med, s.min,
                       s.max);
            }
        }
        free(dl), free(dp), free(tl), free(dt);
    }
    return 0;
}
