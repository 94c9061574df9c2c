/* isthmus_bench_denormal: does a kernel slow down when its float inputs (or outputs) are denormal?
 *
 * Every float-consuming kernel runs on normal inputs and on inputs where most values are denormal (and, where
 * the op allows, inputs that make the outputs denormal), in the same run, interleaved sample by sample
 * (normal, denormal, denormal under the caller's FTZ/DAZ, then the next sample with the order rotated), on one
 * thread (isthmus_set_num_threads(1)). Each sample times enough calls to last about 1 ms; the table gives the
 * median time per call of each input kind and the median and min-max of the per-sample ratio
 * denormal / normal. The last column runs the denormal inputs with FTZ and DAZ set in MXCSR by the caller,
 * to show what a caller that wants flushing gets (the library leaves MXCSR as it finds it).
 *
 * Usage: isthmus_bench_denormal [samples (default 61)] [isa cap: ref|avx2|avx512]
 * Budget: the bar is a ratio <= 2 for every kernel.
 */
#include "isthmus.h"
#include "bench_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#define DEN 1e-39f /* scale that makes uniform(-1, 1) values denormal (FLT_MIN is 1.18e-38) */

static void *xalloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    memset(p, 0, bytes);
    return p;
}
static float *fill(float *x, int64_t n, float lo, float hi, float mul) {
    for (int64_t i = 0; i < n; i++) x[i] = (lo + (hi - lo) * (float)unit()) * mul;
    return x;
}
static float *farr(int64_t n) { return xalloc((size_t)n * 4); }
static int check(isthmus_status st, const char *what) {
    if (st != ISTHMUS_OK) { fprintf(stderr, "%s failed: %s\n", what, isthmus_last_error()); exit(1); }
    return 0;
}
static double frac_denormal(const float *x, int64_t n) {
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++) d += fpclassify(x[i]) == FP_SUBNORMAL;
    return (double)d / (double)n;
}

/* One benchmark: set up the inputs of kind 0 (normal) or 1 (denormal), run once. */
typedef struct bench {
    const char *name, *what;          /* kernel, and which inputs are denormal */
    void (*setup)(int kind);
    void (*run)(void);
    double (*out_den)(void);          /* fraction of denormal outputs after a run, or NULL */
} bench;

/* ---------------------------------------------------------------- quantize */
enum { QR = 64, QC = 4096 };
static float *q_x[2], *q_s;
static int8_t *q_q;
static int q_kind;
static void q_setup(int k) {
    if (!q_x[0]) {
        q_x[0] = fill(farr(QR * QC), QR * QC, -1, 1, 1), q_x[1] = fill(farr(QR * QC), QR * QC, -1, 1, DEN);
        q_s = farr(QR), q_q = xalloc(QR * QC);
    }
    q_kind = k;
}
static void q_run(void) {
    isthmus_quantize_args a = {QR, QC, q_x[q_kind], QC, ISTHMUS_SCALE_PER_ROW, 0, q_q, QC, q_s};
    check(isthmus_quantize_s8(&a), "quantize");
}

/* ---------------------------------------------------------------- gemm_s8 and gemm_f32_s8 */
enum { GM = 16, GN = 1024, GK = 1024 };
static int8_t *g_a, *g_w;
static void *g_packed[2];
static float *g_sa[2], *g_bias[2], *g_y, *g_x[2];
static void *g_ws;
static int g_kind;
static void g_setup(int k) {
    if (!g_a) {
        g_a = xalloc(GM * GK), g_w = xalloc(GN * GK);
        for (int64_t i = 0; i < GM * GK; i++) g_a[i] = (int8_t)((int)(rnd() % 255) - 127);
        for (int64_t i = 0; i < GN * GK; i++) g_w[i] = (int8_t)((int)(rnd() % 255) - 127);
        for (int kk = 0; kk < 2; kk++) {
            /* denormal: sa * sw ~ 1e-44 (denormal), acc * that ~ 1e-38 (outputs denormal), bias denormal */
            float *sw = fill(farr(GN), GN, 0.5f, 1, kk ? 1e-22f : 1e-2f);
            isthmus_gemm_pack_args p = {GN, GK, g_w, GK, ISTHMUS_SCALE_PER_ROW, 0, sw, NULL, 0};
            int64_t bytes;
            check(isthmus_gemm_s8_packed_size(&p, &bytes), "packed_size");
            p.packed = xalloc((size_t)bytes), p.packed_size = bytes;
            check(isthmus_gemm_s8_pack(&p), "pack");
            g_packed[kk] = p.packed;
            g_sa[kk] = fill(farr(GM), GM, 0.5f, 1, kk ? 1e-22f : 1e-2f);
            g_bias[kk] = fill(farr(GN), GN, -1, 1, kk ? DEN : 1);
            g_x[kk] = fill(farr(GM * GK), GM * GK, -1, 1, kk ? DEN : 1);
            free(sw);
        }
        g_y = farr(GM * GN);
        int64_t wsb;
        check(isthmus_gemm_f32_s8_workspace_size(GM, GK, 0, &wsb), "ws");
        g_ws = xalloc((size_t)wsb);
    }
    g_kind = k;
}
static void gs8_run(void) {
    isthmus_gemm_s8_args a = {GM, GN, GK, g_a, GK, ISTHMUS_SCALE_PER_ROW, g_sa[g_kind], g_packed[g_kind], g_bias[g_kind], g_y, GN};
    check(isthmus_gemm_s8(&a), "gemm_s8");
}
static void gf32_run(void) {
    int64_t wsb;
    isthmus_gemm_f32_s8_workspace_size(GM, GK, 0, &wsb);
    /* x denormal: the on-the-fly quantization divides denormals by a denormal scale */
    isthmus_gemm_f32_s8_args a = {GM, GN, GK, g_x[g_kind], GK, g_packed[g_kind], g_bias[g_kind], g_y, GN, g_ws, wsb};
    check(isthmus_gemm_f32_s8(&a), "gemm_f32_s8");
}
static double g_out(void) { return frac_denormal(g_y, GM * GN); }

/* ---------------------------------------------------------------- KV cache: kv_write, attention, rope */
enum { KH = 2, QH = 8, HD = 128, CTX = 2048, BS = 16, WT = 64 };
static void *kv_state[2][2], *kv_pool[2][2]; /* [dtype f32/f16][kind] */
static int32_t kv_seq[2][2];
static float *kv_k[2], *kv_v[2], *kv_q[2], *kv_out, *kv_wk[2], *kv_wv[2], *rope_x[2], *rope_buf;
static int kv_kind;
static void kv_make(int dt, int kind) {
    isthmus_kv_config c = {1, KH, HD, BS, dt ? ISTHMUS_KV_F16 : ISTHMUS_KV_F32, CTX / BS + WT / BS + 2, 1, CTX + WT};
    int64_t sb, pb;
    check(isthmus_kv_sizes(&c, &sb, &pb), "kv_sizes");
    kv_state[dt][kind] = xalloc((size_t)sb), kv_pool[dt][kind] = xalloc((size_t)pb);
    check(isthmus_kv_init(&c, kv_state[dt][kind], sb, kv_pool[dt][kind], pb), "kv_init");
    check(isthmus_kv_seq_create(kv_state[dt][kind], &kv_seq[dt][kind]), "seq_create");
}
static void kv_setup(int k) {
    if (!kv_k[0]) {
        for (int kk = 0; kk < 2; kk++) {
            float m = kk ? DEN : 1;
            kv_k[kk] = fill(farr(CTX * KH * HD), CTX * KH * HD, -1, 1, m);
            kv_v[kk] = fill(farr(CTX * KH * HD), CTX * KH * HD, -1, 1, m);
            kv_q[kk] = fill(farr(QH * HD), QH * HD, -1, 1, m);
            kv_wk[kk] = fill(farr(WT * KH * HD), WT * KH * HD, -1, 1, m);
            kv_wv[kk] = fill(farr(WT * KH * HD), WT * KH * HD, -1, 1, m);
            rope_x[kk] = fill(farr(WT * QH * HD), WT * QH * HD, -1, 1, m);
            for (int dt = 0; dt < 2; dt++) {
                kv_make(dt, kk);
                check(isthmus_kv_seq_extend(kv_state[dt][kk], kv_seq[dt][kk], CTX), "extend");
                int32_t n = CTX;
                isthmus_kv_write_args w = {kv_state[dt][kk], 0, 1, &kv_seq[dt][kk], &n, kv_k[kk], KH * HD, kv_v[kk], KH * HD,
                                           {ISTHMUS_ROPE_HALF, 0, 10000.0f}, NULL};
                check(isthmus_kv_write(&w), "kv_write");
                check(isthmus_kv_seq_extend(kv_state[dt][kk], kv_seq[dt][kk], WT), "extend");
            }
        }
        kv_out = farr(QH * HD);
        rope_buf = farr(WT * QH * HD);
    }
    kv_kind = k;
}
static void attn_run(void) {
    int32_t ql = 1;
    isthmus_attention_args a = {.kv = kv_state[0][kv_kind], .layer = 0, .n_seqs = 1, .seqs = &kv_seq[0][kv_kind],
                                .q_lens = &ql, .q_heads = QH, .q = kv_q[kv_kind], .ldq = QH * HD, .out = kv_out,
                                .ldo = QH * HD, .scale = 0.0883883f};
    check(isthmus_attention(&a), "attention");
}
static double attn_out(void) { return frac_denormal(kv_out, QH * HD); }
static void kvw_run_dt(int dt) { /* rewrites the last WT positions (RoPE on K) */
    int32_t n = WT;
    isthmus_kv_write_args w = {kv_state[dt][kv_kind], 0, 1, &kv_seq[dt][kv_kind], &n, kv_wk[kv_kind], KH * HD, kv_wv[kv_kind],
                               KH * HD, {ISTHMUS_ROPE_HALF, 0, 10000.0f}, NULL};
    check(isthmus_kv_write(&w), "kv_write");
}
static void kvw32_run(void) { kvw_run_dt(0); }
static void kvw16_run(void) { kvw_run_dt(1); }
static int64_t rope_pos[WT];
static void rope_run(void) {
    memcpy(rope_buf, rope_x[kv_kind], (size_t)WT * QH * HD * 4);
    for (int i = 0; i < WT; i++) rope_pos[i] = 1000 + i;
    isthmus_rope_args a = {WT, QH, HD, rope_buf, QH * HD, rope_pos, {ISTHMUS_ROPE_HALF, 0, 10000.0f}};
    check(isthmus_rope(&a), "rope");
}
static double rope_out(void) { return frac_denormal(rope_buf, WT * QH * HD); }
static void rope_copy_run(void) { memcpy(rope_buf, rope_x[kv_kind], (size_t)WT * QH * HD * 4); }

/* ---------------------------------------------------------------- rmsnorm, swiglu */
enum { NR = 64, ND = 4096 };
static float *nn_x[2], *nn_w, *nn_y, *sw_g[2], *sw_u[2];
static int nn_kind;
static void nn_setup(int k) {
    if (!nn_w) {
        nn_w = fill(farr(ND), ND, 0.5f, 1.5f, 1), nn_y = farr(NR * ND);
        for (int kk = 0; kk < 2; kk++) {
            nn_x[kk] = fill(farr(NR * ND), NR * ND, -1, 1, kk ? DEN : 1);
            sw_g[kk] = fill(farr(NR * ND), NR * ND, -4, 4, 1); /* gate normal; up denormal -> out denormal */
            sw_u[kk] = fill(farr(NR * ND), NR * ND, -1, 1, kk ? DEN : 1);
        }
    }
    nn_kind = k;
}
static void rms_run(void) {
    isthmus_rmsnorm_args a = {NR, ND, nn_x[nn_kind], ND, NULL, 0, nn_w, 1e-5f, nn_y, ND};
    check(isthmus_rmsnorm(&a), "rmsnorm");
}
static void swiglu_run(void) {
    isthmus_swiglu_args a = {NR, ND, sw_g[nn_kind], ND, sw_u[nn_kind], ND, nn_y, ND};
    check(isthmus_swiglu(&a), "swiglu");
}
static float *sw_gd[2];
static void swiglu_g_setup(int k) {
    nn_setup(k);
    if (!sw_gd[0]) {
        sw_gd[0] = fill(farr(NR * ND), NR * ND, -1, 1, 1);
        sw_gd[1] = fill(farr(NR * ND), NR * ND, -1, 1, DEN);
    }
}
static void swiglu_g_run(void) { /* gate denormal: silu(g) = g * ~0.5 denormal, times a normal up */
    isthmus_swiglu_args a = {NR, ND, sw_gd[nn_kind], ND, sw_g[0], ND, nn_y, ND};
    check(isthmus_swiglu(&a), "swiglu");
}
static double nn_out(void) { return frac_denormal(nn_y, NR * ND); }

/* ---------------------------------------------------------------- spmm f32 */
enum { SM = 8, SN = 1024, SK = 1024 };
static void *sp_packed;
static float *sp_x[2], *sp_y;
static int sp_kind;
static void sp_setup(int k) {
    if (!sp_packed) {
        int64_t *rp = xalloc((SN + 1) * 8);
        int32_t *ci = xalloc((size_t)SN * SK * 4);
        float *vals = farr(SN * SK);
        int64_t nnz = 0;
        for (int64_t r = 0; r < SN; r++) {
            for (int64_t c = 0; c < SK; c++)
                if (rnd() & 1) ci[nnz] = (int32_t)c, vals[nnz] = (float)(unit() * 2 - 1), nnz++;
            rp[r + 1] = nnz;
        }
        isthmus_sparse_matrix m = {SN, SK, ISTHMUS_SPARSE_CSR, ISTHMUS_DTYPE_F32, 0, 0, nnz, rp, ci, vals, NULL, NULL};
        int64_t bytes;
        check(isthmus_sparse_packed_size(&m, &bytes), "sparse size");
        sp_packed = xalloc((size_t)bytes);
        check(isthmus_sparse_pack(&m, sp_packed, bytes), "sparse pack");
        free(rp), free(ci), free(vals);
        sp_x[0] = fill(farr(SM * SK), SM * SK, -1, 1, 1), sp_x[1] = fill(farr(SM * SK), SM * SK, -1, 1, DEN);
        sp_y = farr(SM * SN);
    }
    sp_kind = k;
}
static void sp_run(void) {
    isthmus_spmm_args a = {.m = SM, .x = sp_x[sp_kind], .ldx = SK, .w_packed = sp_packed, .y = sp_y, .ldy = SN};
    check(isthmus_spmm(&a), "spmm");
}
static double sp_out(void) { return frac_denormal(sp_y, SM * SN); }

/* ---------------------------------------------------------------- sample */
enum { SR = 4, SV = 32000 };
static float *sa_l[2], *sa_p;
static int32_t sa_tok[SR];
static int sa_kind;
static void sa_setup(int k) {
    if (!sa_p) {
        /* Normal logits with the same shape as the denormal ones: tiny and flat, in [1e-37, 2e-37] (all normal;
         * FLT_MIN is 1.18e-38). Top-k finds its threshold by stepping down from the max by 4 and bisecting,
         * which takes about log2(4 / spread) counting passes: ~125 here, ~131 for the denormal row. Against
         * peaked logits (-8..8: a few passes) the top-k/p/min-p case measured 5.0x, and 8x with FTZ/DAZ (every
         * logit 0); against flat logits of spread 2e-9 (~31 passes) 2.6x: the cost of the pass count, which
         * only the range of the logits decides, not of denormal arithmetic. */
        sa_l[0] = fill(farr(SR * SV), SR * SV, 1, 2, 1e-37f), sa_l[1] = fill(farr(SR * SV), SR * SV, -1, 1, DEN);
        sa_p = farr(SR * SV);
    }
    sa_kind = k;
}
static void sa_run(void) {
    isthmus_sampling_params p = {.temperature = 0.8f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .repetition_penalty = 1.0f};
    uint64_t streams[SR] = {1, 2, 3, 4};
    isthmus_sample_args a = {.rows = SR, .vocab = SV, .logits = sa_l[sa_kind], .ld = SV, .params = &p, .seed = 5,
                             .streams = streams, .tokens = sa_tok, .probs = sa_p, .ldp = SV};
    check(isthmus_sample(&a), "sample");
}
static void sa_run_topp(void) {
    isthmus_sampling_params p = {.temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .min_p = 0.05f, .repetition_penalty = 1.0f};
    uint64_t streams[SR] = {1, 2, 3, 4};
    isthmus_sample_args a = {.rows = SR, .vocab = SV, .logits = sa_l[sa_kind], .ld = SV, .params = &p, .seed = 5,
                             .streams = streams, .tokens = sa_tok, .probs = NULL, .ldp = 0};
    check(isthmus_sample(&a), "sample");
}

static void dq_run(void) {
    isthmus_dequantize_args a = {QR, QC, q_q, QC, ISTHMUS_SCALE_PER_ROW, 0, q_s, q_x[0] + 0, QC};
    static float *out;
    if (!out) out = farr(QR * QC);
    a.x = out;
    check(isthmus_dequantize_s8(&a), "dequantize");
}
static void dq_setup(int k) { /* scales denormal: quantize the denormal x (its scales are denormal) */
    q_setup(k);
    q_run();
}

static const bench BENCHES[] = {
    {"quantize_s8 (per row, 64x4096)", "x", q_setup, q_run, NULL},
    {"dequantize_s8 (64x4096)", "scales -> x", dq_setup, dq_run, NULL},
    {"gemm_s8 (16x1024x1024)", "scales, bias, y", g_setup, gs8_run, g_out},
    {"gemm_f32_s8 (16x1024x1024)", "x, scales, bias, y", g_setup, gf32_run, g_out},
    {"attention f32 cache (decode, ctx 2048)", "q, K, V, out", kv_setup, attn_run, attn_out},
    {"kv_write f32 + RoPE (64 tokens)", "k, v", kv_setup, kvw32_run, NULL},
    {"kv_write f16 + RoPE (64 tokens)", "k, v", kv_setup, kvw16_run, NULL},
    {"rope (64 tokens x 8 heads x 128)", "x, out", kv_setup, rope_run, rope_out},
    {"  (the copy rope times include)", "-", kv_setup, rope_copy_run, NULL},
    {"rmsnorm (64x4096)", "x, y", nn_setup, rms_run, nn_out},
    {"swiglu (64x4096), up denormal", "up, out", nn_setup, swiglu_run, nn_out},
    {"swiglu (64x4096), gate denormal", "gate, out", swiglu_g_setup, swiglu_g_run, nn_out},
    {"spmm f32 CSR 50% (8x1024x1024)", "x, y", sp_setup, sp_run, sp_out},
    {"sample (4x32000, tiny flat logits, probs out)", "logits", sa_setup, sa_run, NULL},
    {"sample (tiny flat logits, top-k 40/p/min-p)", "logits", sa_setup, sa_run_topp, NULL},
};

int main(int argc, char **argv) {
    int samples = argc > 1 ? atoi(argv[1]) : 61;
    if (samples < 3) samples = 3;
    if (argc > 2) {
        int32_t cap = strcmp(argv[2], "ref") == 0 ? 0 : strcmp(argv[2], "avx2") == 0 ? 1 : 2;
        isthmus_set_isa_cap(cap);
    }
    isthmus_set_num_threads(1);
    const unsigned csr0 = _mm_getcsr();
    printf("isthmus_bench_denormal: isa %s, 1 thread, %d interleaved samples of >= 1 ms per input kind; "
           "MXCSR at start 0x%04x (FTZ %d, DAZ %d)\n\n", isthmus_isa_name(isthmus_isa()), samples, csr0,
           !!(csr0 & 0x8000), !!(csr0 & 0x40));
    printf("| kernel | denormal inputs | normal us (median) | denormal us (median) | ratio median | ratio min-max "
           "| denormal outputs | caller FTZ/DAZ ratio |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    double worst = 0;
    const char *worst_name = "";
    for (size_t b = 0; b < sizeof BENCHES / sizeof BENCHES[0]; b++) {
        const bench *B = &BENCHES[b];
        /* calibrate on normal inputs: calls per sample so that one sample lasts >= 1 ms */
        B->setup(0);
        B->run();
        int inner = 1;
        for (;;) {
            double t0 = now();
            for (int i = 0; i < inner; i++) B->run();
            if (now() - t0 >= 1e-3 || inner >= 1 << 20) break;
            inner *= 2;
        }
        B->setup(1);
        B->run(); /* warm the denormal inputs too */
        double outfrac = B->out_den ? B->out_den() : -1;
        double *t[3], *ratio = malloc(sizeof(double) * samples), *rftz = malloc(sizeof(double) * samples);
        for (int k = 0; k < 3; k++) t[k] = malloc(sizeof(double) * samples);
        for (int s = 0; s < samples; s++) {
            for (int j = 0; j < 3; j++) {
                int k = (s + j) % 3; /* rotate the order: no kind always runs first */
                B->setup(k == 0 ? 0 : 1);
                if (k == 2) _mm_setcsr(csr0 | 0x8040);
                double t0 = now();
                for (int i = 0; i < inner; i++) B->run();
                t[k][s] = (now() - t0) / inner;
                if (k == 2) _mm_setcsr(csr0);
            }
            ratio[s] = t[1][s] / t[0][s];
            rftz[s] = t[2][s] / t[0][s];
        }
        for (int k = 0; k < 3; k++) qsort(t[k], samples, sizeof(double), cmpd);
        qsort(ratio, samples, sizeof(double), cmpd);
        qsort(rftz, samples, sizeof(double), cmpd);
        double med = ratio[samples / 2];
        char of[32];
        if (outfrac >= 0) snprintf(of, sizeof of, "%.0f%%", outfrac * 100);
        else snprintf(of, sizeof of, "-");
        printf("| %s | %s | %.1f | %.1f | %.2fx | %.2f-%.2f | %s | %.2fx |\n", B->name, B->what, t[0][samples / 2] * 1e6,
               t[1][samples / 2] * 1e6, med, ratio[0], ratio[samples - 1], of, rftz[samples / 2]);
        fflush(stdout);
        if (B->what[0] != '-' && med > worst) worst = med, worst_name = B->name;
        for (int k = 0; k < 3; k++) free(t[k]);
        free(ratio), free(rftz);
    }
    /* the control bits (rounding, masks, FTZ, DAZ); the low 6 are sticky exception flags the arithmetic sets */
    unsigned csr1 = _mm_getcsr();
    int same = (csr1 & ~0x3fu) == (csr0 & ~0x3fu);
    printf("\nworst median ratio: %.2fx (%s); bar: <= 2x: %s. MXCSR control bits after all calls: 0x%04x (%s)\n", worst,
           worst_name, worst <= 2.0 ? "met" : "NOT met", csr1 & ~0x3fu, same ? "unchanged" : "CHANGED");
    return worst <= 2.0 && same ? 0 : 1;
}
