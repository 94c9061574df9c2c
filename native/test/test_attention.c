/* Tests of the paged KV cache, RoPE and attention: every ISA variant against a double-precision
 * reference that materializes the full softmax, over K/V read back from the cache (so f16, bf16 and
 * int8 storage are part of the reference, and the kernels are judged on their arithmetic alone). */
#include "harness.h"

#include <immintrin.h>
#include <math.h>

/* ------------------------------------------------------------------ a cache in guarded buffers */

typedef struct cache {
    isthmus_kv_config cfg;
    void *state, *pool;
} cache;

static isthmus_kv_config config(int layers, int kvh, int d, int bs, int dtype, int blocks, int seqs, int maxlen) {
    isthmus_kv_config c = {.layers = layers, .kv_heads = kvh, .head_dim = d, .block_size = bs, .dtype = dtype,
                           .num_blocks = blocks, .max_seqs = seqs, .max_seq_len = maxlen};
    return c;
}

static int cache_open(cache *c, isthmus_kv_config cfg) {
    int64_t sb = 0, pb = 0;
    c->cfg = cfg;
    c->state = c->pool = NULL;
    if (isthmus_kv_sizes(&cfg, &sb, &pb) != ISTHMUS_OK) return 0;
    c->state = galloc((size_t)sb);
    c->pool = galloc((size_t)pb);
    return isthmus_kv_init(&cfg, c->state, sb, c->pool, pb) == ISTHMUS_OK;
}

static void cache_close(cache *c) {
    if (c->state) CHECK(gcheck(c->state), "state guard overwritten");
    if (c->pool) CHECK(gcheck(c->pool), "pool guard overwritten");
    gfree(c->state);
    gfree(c->pool);
    c->state = c->pool = NULL;
}

static float *rand_f32(uint64_t *rng, int64_t n, float lo, float hi) {
    float *x = galloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) x[i] = rng_f32(rng, lo, hi);
    return x;
}

/* Extends seq by n and writes random K/V for all layers. */
static void append_random(cache *c, int32_t seq, int32_t n, uint64_t *rng, float kmag) {
    const int64_t w = (int64_t)c->cfg.kv_heads * c->cfg.head_dim;
    CHECK_OK(isthmus_kv_seq_extend(c->state, seq, n));
    float *k = rand_f32(rng, n * w, -kmag, kmag), *v = rand_f32(rng, n * w, -1, 1);
    for (int32_t l = 0; l < c->cfg.layers; l++) {
        isthmus_kv_write_args a = {.kv = c->state, .layer = l, .n_seqs = 1, .seqs = &seq, .n_tokens = &n,
                                   .k = k, .ldk = w, .v = v, .ldv = w};
        CHECK_OK(isthmus_kv_write(&a));
    }
    gfree(k);
    gfree(v);
}

/* ------------------------------------------------------------------ double reference */

typedef struct attn_params {
    int32_t q_heads;
    float scale, softcap;
    int32_t window;
    const int32_t *tree; /* tree_parents of the batch (run_check) or of one sequence (reference_q8), or NULL */
} attn_params;

/* out[t][h][:] and lse[t][h] for the q_len newest tokens of seq, from K/V read back from the cache. */
/* q8: model the AVX-512 int8-K path exactly: q * scale rounded to int8 per row (documented in isthmus.h),
 * so the kernel is still held to the tight tolerance; *delta (if not NULL) receives the largest proven
 * bound on the logit change that rounding causes, (sq / 2) * max_j sum_i |k_ji|. */
static void reference_q8(const cache *c, int32_t layer, int32_t seq, int32_t qn, const float *q, int64_t ldq,
                         attn_params p, double *out, double *lse, int q8, double *delta) {
    const int32_t d = c->cfg.head_dim, kvh = c->cfg.kv_heads, ratio = p.q_heads / kvh;
    const int64_t w = (int64_t)kvh * d;
    int64_t len = 0;
    CHECK_OK(isthmus_kv_seq_length(c->state, seq, &len));
    float *k = galloc((size_t)(len * w * 4)), *v = galloc((size_t)(len * w * 4));
    isthmus_kv_read_args ra = {.kv = c->state, .layer = layer, .seq = seq, .start = 0, .count = len, .k = k,
                               .ldk = w, .v = v, .ldv = w};
    CHECK_OK(isthmus_kv_read(&ra));
    double *s = malloc((size_t)len * 8);
    char *vis = malloc((size_t)len); /* the keys token t sees: causal/window, then the tree's ancestors */
    for (int32_t t = 0; t < qn; t++) {
        int64_t pos = len - qn + t, lo = p.window > 0 && pos - p.window + 1 > 0 ? pos - p.window + 1 : 0;
        for (int64_t j = 0; j < len; j++) vis[j] = j >= lo && j <= pos;
        if (p.tree) {
            for (int64_t j = len - qn; j < len; j++) vis[j] = 0;
            for (int32_t a = t; a >= 0; a = p.tree[a]) vis[len - qn + a] = 1;
        }
        for (int32_t h = 0; h < p.q_heads; h++) {
            const float *qv = q + t * ldq + (int64_t)h * d;
            int32_t g = h / ratio;
            double mx = -INFINITY;
            float qsv[512], amax = 0;
            for (int32_t i = 0; i < d; i++) {
                qsv[i] = qv[i] * p.scale;
                amax = fmaxf(amax, fabsf(qsv[i]));
            }
            float sq = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
            if (q8)
                for (int32_t i = 0; i < d; i++) {
                    float r = nearbyintf(qsv[i] * inv);
                    qsv[i] = r > 127 ? 127 : r < -127 ? -127 : r;
                }
            for (int64_t j = lo; j <= pos; j++) {
                if (!vis[j]) continue;
                double dot = 0, kabs = 0;
                for (int32_t i = 0; i < d; i++) {
                    dot += (double)qv[i] * k[j * w + (int64_t)g * d + i];
                    kabs += fabs(k[j * w + (int64_t)g * d + i]);
                }
                dot *= p.scale;
                if (q8) {
                    dot = 0;
                    for (int32_t i = 0; i < d; i++) dot += (double)qsv[i] * k[j * w + (int64_t)g * d + i];
                    dot *= sq;
                }
                if (delta && sq / 2 * kabs > *delta) *delta = sq / 2 * kabs;
                if (p.softcap > 0) dot = p.softcap * tanh(dot / p.softcap);
                s[j] = dot;
                if (dot > mx) mx = dot;
            }
            double sum = 0;
            for (int64_t j = lo; j <= pos; j++) sum += vis[j] ? exp(s[j] - mx) : 0;
            double *o = out + ((int64_t)t * p.q_heads + h) * d;
            for (int32_t i = 0; i < d; i++) o[i] = 0;
            for (int64_t j = lo; j <= pos; j++) {
                if (!vis[j]) continue;
                double pj = exp(s[j] - mx) / sum;
                for (int32_t i = 0; i < d; i++) o[i] += pj * v[j * w + (int64_t)g * d + i];
            }
            lse[(int64_t)t * p.q_heads + h] = mx + log(sum);
        }
    }
    free(s);
    free(vis);
    gfree(k);
    gfree(v);
}

/* Tolerance: out is a convex combination of V rows (|v| <= 1 here), computed in f32 with an online
 * softmax: each exp carries < 2 ulp, each rescale and FMA one rounding, and sums of up to 32K terms
 * accumulate O(sqrt(n)) roundings in practice. 1e-4 absolute leaves a wide margin over what the kernels
 * reach (max errors are printed) and is 10x tighter than the 1e-3. */
#define ATOL 1e-4
#define RTOL 1e-4
static double max_err_seen, max_q8_err;

typedef struct batch_item {
    int32_t seq, q_len;
} batch_item;

/* Runs attention on a batch with the current ISA and checks every row against the reference. */
static void run_check(const cache *c, int32_t layer, const batch_item *items, int n, attn_params p0, uint64_t *rng,
                      float qmag, const char *what) {
    const attn_params p = p0;
    const int q8 = isthmus_isa() == ISTHMUS_ISA_AVX512 && c->cfg.dtype == ISTHMUS_KV_S8 && c->cfg.block_size >= 16;
    const int32_t d = c->cfg.head_dim;
    int64_t T = 0;
    for (int i = 0; i < n; i++) T += items[i].q_len;
    const int64_t ldq = (int64_t)p.q_heads * d + 16; /* strided rows, as from a fused QKV buffer */
    float *q = rand_f32(rng, T * ldq, -qmag, qmag);
    float *out = galloc((size_t)(T * ldq * 4));
    float *lse = galloc((size_t)(T * p.q_heads * 4));
    int32_t *seqs = malloc((size_t)n * 4), *qls = malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) {
        seqs[i] = items[i].seq;
        qls[i] = items[i].q_len;
    }
    isthmus_attention_args a = {.kv = c->state, .layer = layer, .n_seqs = n, .seqs = seqs, .q_lens = qls,
                                .q_heads = p.q_heads, .q = q, .ldq = ldq, .out = out, .ldo = ldq, .lse = lse,
                                .scale = p.scale, .softcap = p.softcap, .window = p.window, .tree_parents = p.tree};
    CHECK_OK(isthmus_attention(&a));
    CHECK(gcheck(out) && gcheck(lse), "%s: output guard overwritten", what);
    int64_t t0 = 0;
    long bad = 0;
    for (int i = 0; i < n; i++) {
        double *ro = malloc((size_t)items[i].q_len * p.q_heads * d * 8);
        double *rl = malloc((size_t)items[i].q_len * p.q_heads * 8);
        double *eo = malloc((size_t)items[i].q_len * p.q_heads * d * 8);
        double *el = malloc((size_t)items[i].q_len * p.q_heads * 8);
        double delta = 0;
        attn_params p = p0; /* the sequence's own part of the tree */
        if (p.tree) p.tree += t0;
        /* exact: the reference without q rounding; ro/rl: what the kernel is held to tightly */
        reference_q8(c, layer, items[i].seq, items[i].q_len, q + t0 * ldq, ldq, p, eo, el, 0, &delta);
        if (q8) reference_q8(c, layer, items[i].seq, items[i].q_len, q + t0 * ldq, ldq, p, ro, rl, 1, NULL);
        else {
            memcpy(ro, eo, (size_t)items[i].q_len * p.q_heads * d * 8);
            memcpy(rl, el, (size_t)items[i].q_len * p.q_heads * 8);
        }
        /* with q rounded, the result stays within the proven bound of the exact one: |dlogit| <= delta
         * moves every softmax weight by a factor in [e^-2delta, e^2delta], so |dout| <= (e^2delta - 1) max|v| */
        if (q8) {
            double bound = ATOL + expm1(2 * delta) * 1.0, worst = 0;
            for (int64_t e = 0; e < (int64_t)items[i].q_len * p.q_heads * d; e++) worst = fmax(worst, fabs(ro[e] - eo[e]));
            CHECK(worst <= bound, "%s: int8-q result moved %.3g from the exact one, bound %.3g", what, worst, bound);
            if (worst > max_q8_err) max_q8_err = worst;
        }
        free(eo);
        free(el);
        for (int32_t t = 0; t < items[i].q_len; t++)
            for (int32_t h = 0; h < p.q_heads; h++) {
                for (int32_t e = 0; e < d; e++) {
                    double want = ro[((int64_t)t * p.q_heads + h) * d + e];
                    double got = out[(t0 + t) * ldq + (int64_t)h * d + e];
                    double err = fabs(got - want);
                    if (err > max_err_seen) max_err_seen = err;
                    if (!(err <= ATOL + RTOL * fabs(want)) && bad++ < 3)
                        CHECK(0, "%s: seq %d token %d head %d dim %d: %.9g, reference %.9g", what, items[i].seq, t,
                              h, e, got, want);
                }
                double wl = rl[(int64_t)t * p.q_heads + h], gl = lse[(t0 + t) * p.q_heads + h];
                if (!(fabs(gl - wl) <= 1e-4 * (1 + fabs(wl))) && bad++ < 3)
                    CHECK(0, "%s: seq %d token %d head %d: lse %.9g, reference %.9g", what, items[i].seq, t, h, gl,
                          wl);
            }
        t0 += items[i].q_len;
        free(ro);
        free(rl);
    }
    if (bad) CHECK(0, "%s: %ld mismatches", what, bad);
    free(seqs);
    free(qls);
    gfree(q);
    gfree(out);
    gfree(lse);
}

static const char *DT[] = {"f32", "f16", "bf16", "s8"};

/* Every ISA variant on one configuration: sequences of the given lengths, each queried with q_len. */
static void check_config(isthmus_kv_config cfg, const int64_t *lens, const int32_t *qls, int n, attn_params p,
                         float qmag) {
    uint64_t rng = t_seed;
    cache c;
    int64_t need = 0;
    for (int i = 0; i < n; i++) need += (lens[i] + cfg.block_size - 1) / cfg.block_size;
    cfg.num_blocks = (int32_t)need + 2;
    cfg.max_seqs = n;
    int64_t mx = 1;
    for (int i = 0; i < n; i++) mx = lens[i] > mx ? lens[i] : mx;
    cfg.max_seq_len = (int32_t)mx;
    CHECK(cache_open(&c, cfg), "cache_open: %s", isthmus_last_error());
    if (!c.state) return;
    batch_item items[16];
    for (int i = 0; i < n; i++) {
        int32_t s;
        CHECK_OK(isthmus_kv_seq_create(c.state, &s));
        /* append in a few uneven pieces, like prefill chunks then decode steps */
        int64_t done = 0;
        while (done < lens[i]) {
            int32_t piece = (int32_t)(lens[i] - done > 700 ? rng_int(&rng, 1, 700) : lens[i] - done);
            append_random(&c, s, piece, &rng, 1.0f);
            done += piece;
        }
        items[i].seq = s;
        items[i].q_len = qls[i];
    }
    char what[160];
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        snprintf(what, sizeof what, "%s d=%d bs=%d kvh=%d qh=%d cap=%g win=%d", DT[cfg.dtype], cfg.head_dim,
                 cfg.block_size, cfg.kv_heads, p.q_heads, (double)p.softcap, p.window);
        uint64_t qrng = t_seed ^ 0x5151;
        run_check(&c, cfg.layers - 1, items, n, p, &qrng, qmag, what);
    }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
    cache_close(&c);
}

static attn_params params(int32_t qh, int32_t d) {
    attn_params p = {.q_heads = qh, .scale = 1.0f / sqrtf((float)d), .softcap = 0, .window = 0};
    return p;
}

static void sweep_dtypes_blocks(void) {
    static const int32_t BS[] = {1, 8, 16, 256};
    static const int64_t LENS[] = {1, 2, 17, 31, 47, 333};
    static const int32_t QL[] = {1, 2, 5, 1, 5, 333};
    for (int dt = 0; dt < 4; dt++)
        for (int b = 0; b < 4; b++) {
            t_seed = 1000 + dt * 10 + b;
            isthmus_kv_config cfg = config(2, 2, 64, BS[b], dt, 0, 0, 0);
            check_config(cfg, LENS, QL, 6, params(8, 64), 3.0f);
        }
}

static void sweep_heads_dims(void) {
    static const int32_t D[] = {64, 80, 128, 256};
    static const int32_t RATIO[] = {1, 4, 8};
    static const int64_t LENS[] = {15, 16, 17, 63};
    static const int32_t QL[] = {1, 5, 16, 7};
    for (int di = 0; di < 4; di++)
        for (int ri = 0; ri < 3; ri++) {
            t_seed = 2000 + di * 10 + ri;
            int kvh = ri == 2 ? 1 : 2;
            isthmus_kv_config cfg = config(1, kvh, D[di], 16, (di + ri) % 4, 0, 0, 0);
            check_config(cfg, LENS, QL, 4, params(kvh * RATIO[ri], D[di]), 2.0f);
        }
}

/* Block boundaries +-1 and primes, for every block size. */
static void boundaries(void) {
    static const int32_t BS[] = {1, 8, 16, 256};
    for (int b = 0; b < 4; b++) {
        int64_t bs = BS[b];
        int64_t lens[6] = {bs > 1 ? bs - 1 : 2, bs, bs + 1, 2 * bs - 1, 2 * bs + 1, 97};
        int32_t qls[6] = {1, (int32_t)(bs < 5 ? 1 : 5), 2, 1, 3, 13};
        t_seed = 3000 + b;
        check_config(config(1, 2, 128, (int32_t)bs, ISTHMUS_KV_F32, 0, 0, 0), lens, qls, 6, params(4, 128), 2.0f);
    }
}

static void softcap_window_peaky(void) {
    static const int64_t LENS[] = {700, 129, 1};
    static const int32_t QL[] = {5, 20, 1};
    for (int dt = 0; dt < 4; dt++) {
        attn_params p = params(8, 128);
        t_seed = 4000 + dt;
        p.softcap = 30.0f;
        check_config(config(1, 2, 128, 16, dt, 0, 0, 0), LENS, QL, 3, p, 4.0f);
        p.softcap = 0;
        p.window = 100;
        check_config(config(1, 2, 128, 16, dt, 0, 0, 0), LENS, QL, 3, p, 4.0f);
        p.window = 1;
        check_config(config(1, 2, 128, 16, dt, 0, 0, 0), LENS, QL, 3, p, 4.0f);
        /* logits in the hundreds: exp underflows for all but a few keys */
        p.window = 0;
        check_config(config(1, 2, 128, 16, dt, 0, 0, 0), LENS, QL, 3, p, 40.0f);
    }
}

static void long_contexts(void) {
    static const int64_t L1[] = {4096, 4097};
    static const int32_t Q1[] = {1, 5};
    t_seed = 5000;
    check_config(config(1, 2, 128, 16, ISTHMUS_KV_F16, 0, 0, 0), L1, Q1, 2, params(8, 128), 2.0f);
    static const int64_t L2[] = {32768};
    static const int32_t Q2[] = {1};
    t_seed = 5001;
    check_config(config(1, 1, 128, 16, ISTHMUS_KV_S8, 0, 0, 0), L2, Q2, 1, params(4, 128), 2.0f);
    static const int64_t L3[] = {1024};
    static const int32_t Q3[] = {1024};
    t_seed = 5002;
    check_config(config(1, 1, 64, 16, ISTHMUS_KV_BF16, 0, 0, 0), L3, Q3, 1, params(2, 64), 2.0f);
    printf("       attention: largest error against the double reference %.3g (bound %.0e + %.0e*|ref|); "
           "int8 K with q rounded to int8 (avx512) moved results by at most %.3g from exact\n",
           max_err_seen, ATOL, RTOL, max_q8_err);
}

/* The split plan depends only on the shapes: 1 and 2 threads give bit-identical results. */
static void thread_count_invariance(void) {
    uint64_t rng = t_seed;
    cache c;
    CHECK(cache_open(&c, config(1, 2, 128, 16, ISTHMUS_KV_F16, 400, 4, 3000)), "open");
    int32_t s[2];
    for (int i = 0; i < 2; i++) {
        CHECK_OK(isthmus_kv_seq_create(c.state, &s[i]));
        append_random(&c, s[i], i ? 2100 : 1500, &rng, 1.0f);
    }
    const int64_t w = 8 * 128, T = 6;
    float *q = rand_f32(&rng, T * w, -2, 2);
    float *o1 = galloc(T * w * 4), *o2 = galloc(T * w * 4);
    int32_t seqs[2] = {s[0], s[1]}, qls[2] = {1, 5};
    isthmus_attention_args a = {.kv = c.state, .layer = 0, .n_seqs = 2, .seqs = seqs, .q_lens = qls, .q_heads = 8,
                                .q = q, .ldq = w, .out = o1, .ldo = w, .scale = 0.088f};
    int32_t threads = isthmus_get_num_threads();
    isthmus_set_num_threads(1);
    CHECK_OK(isthmus_attention(&a));
    isthmus_set_num_threads(threads > 1 ? threads : 2);
    a.out = o2;
    CHECK_OK(isthmus_attention(&a));
    isthmus_set_num_threads(threads);
    CHECK(memcmp(o1, o2, (size_t)(T * w * 4)) == 0, "results differ between 1 and %d threads", threads);
    /* out may be q itself */
    float *q2 = galloc(T * w * 4);
    memcpy(q2, q, (size_t)(T * w * 4));
    a.q = q2;
    a.out = q2;
    CHECK_OK(isthmus_attention(&a));
    CHECK(memcmp(q2, o2, (size_t)(T * w * 4)) == 0, "in-place attention differs");
    gfree(q);
    gfree(q2);
    gfree(o1);
    gfree(o2);
    cache_close(&c);
}

/* ------------------------------------------------------------------ storage and conversions */

/* The CPU's own conversion (F16C) round trip: f32 -> f16 (round to nearest even) -> f32. */
__attribute__((target("f16c"))) static float hw_f16(float x) {
    return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* bf16 by an independent route: the two bf16 neighbours of x, compared in double. */
static uint16_t ref_bf16(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40);
    uint32_t lo = b & 0xffff0000u, hi = lo + 0x10000u;
    float flo, fhi;
    memcpy(&flo, &lo, 4);
    memcpy(&fhi, &hi, 4);
    double dlo = fabs((double)x - flo), dhi = fabs((double)fhi - x);
    if (isinf(fhi) && !isinf(x)) dhi = fabs(((double)flo + ldexp(1.0, ilogb(flo) - 7)) - x); /* overflow edge */
    if (dlo < dhi || (dlo == dhi && !((lo >> 16) & 1))) return (uint16_t)(lo >> 16);
    return (uint16_t)(hi >> 16);
}

static float special(uint64_t *rng, int i) {
    static const float S[] = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.0f, 65520.0f, -65536.0f, 6.1035156e-5f,
                              6.0e-8f, 2.98e-8f, 5.9604645e-8f, 1e-10f, 3.4e38f, 1.0009765625f, 1.00048828125f,
                              1.00146484375f, 0.33333334f};
    if (i < (int)(sizeof S / sizeof S[0])) return S[i];
    float m = rng_f32(rng, -1, 1);
    return ldexpf(m, (int)rng_int(rng, -30, 20));
}

static void storage_round_trip(void) {
    uint64_t rng = t_seed;
    const int kvh = 3, d = 32, n = 40;
    const int64_t w = kvh * d;
    for (int dt = 0; dt < 4; dt++) {
        for (int bs = 1; bs <= 64; bs *= 4) {
            cache c;
            CHECK(cache_open(&c, config(2, kvh, d, bs, dt, 64, 2, 200)), "open");
            int32_t s;
            CHECK_OK(isthmus_kv_seq_create(c.state, &s));
            CHECK_OK(isthmus_kv_seq_extend(c.state, s, n));
            float *k = galloc(n * w * 4), *v = galloc(n * w * 4), *kr = galloc(n * w * 4), *vr = galloc(n * w * 4);
            for (int64_t i = 0; i < n * w; i++) {
                k[i] = dt == 3 ? rng_f32(&rng, -5, 5) : special(&rng, (int)i);
                v[i] = dt == 3 ? rng_f32(&rng, -1, 1) : special(&rng, (int)(n * w - 1 - i));
                /* values the store would round to inf are refused (test_hygiene kv_write_refuses_nonfinite) */
                const float lim = dt == 1 ? 65520.0f : dt == 2 ? 0x1.ffp127f : INFINITY;
                while (!(fabsf(k[i]) < lim)) k[i] *= 0x1p-8f;
                while (!(fabsf(v[i]) < lim)) v[i] *= 0x1p-8f;
            }
            int32_t nt = n;
            isthmus_kv_write_args a = {.kv = c.state, .layer = 1, .n_seqs = 1, .seqs = &s, .n_tokens = &nt,
                                       .k = k, .ldk = w, .v = v, .ldv = w};
            CHECK_OK(isthmus_kv_write(&a));
            isthmus_kv_read_args r = {.kv = c.state, .layer = 1, .seq = s, .start = 0, .count = n, .k = kr,
                                      .ldk = w, .v = vr, .ldv = w};
            CHECK_OK(isthmus_kv_read(&r));
            long bad = 0;
            for (int64_t t = 0; t < n; t++)
                for (int h = 0; h < kvh; h++) {
                    float sk = 0, sv = 0;
                    if (dt == 3) { /* the int8 rule: s = max|x| / 127, q = rne(x / s) */
                        for (int i = 0; i < d; i++) {
                            sk = fmaxf(sk, fabsf(k[t * w + h * d + i]));
                            sv = fmaxf(sv, fabsf(v[t * w + h * d + i]));
                        }
                        sk /= 127.0f;
                        sv /= 127.0f;
                    }
                    for (int i = 0; i < d; i++) {
                        int64_t at = t * w + h * d + i;
                        float wk, wv;
                        switch (dt) {
                        case 0: wk = k[at]; wv = v[at]; break;
                        case 1: {
                            wk = hw_f16(k[at]);
                            wv = hw_f16(v[at]);
                            break;
                        }
                        case 2: {
                            uint32_t bk = (uint32_t)ref_bf16(k[at]) << 16, bv = (uint32_t)ref_bf16(v[at]) << 16;
                            memcpy(&wk, &bk, 4);
                            memcpy(&wv, &bv, 4);
                            break;
                        }
                        default:
                            wk = (float)(int)nearbyintf(k[at] / sk) * sk;
                            wv = (float)(int)nearbyintf(v[at] / sv) * sv;
                        }
                        if ((memcmp(&wk, &kr[at], 4) || memcmp(&wv, &vr[at], 4)) && bad++ < 3)
                            CHECK(0, "%s bs=%d t=%lld h=%d i=%d: k %.9g -> %.9g (want %.9g), v %.9g -> %.9g (want %.9g)",
                                  DT[dt], bs, (long long)t, h, i, k[at], kr[at], wk, v[at], vr[at], wv);
                    }
                }
            gfree(k); gfree(v); gfree(kr); gfree(vr);
            cache_close(&c);
        }
    }
}

/* ------------------------------------------------------------------ RoPE */

static void rope_reference(void) {
    uint64_t rng = t_seed;
    const int64_t T = 7, H = 3, D = 64;
    for (int style = ISTHMUS_ROPE_INTERLEAVED; style <= ISTHMUS_ROPE_HALF; style++)
        for (int rot = 0; rot <= 32; rot += 32) {
            float *x = rand_f32(&rng, T * H * D, -2, 2), *x0 = galloc(T * H * D * 4);
            memcpy(x0, x, (size_t)(T * H * D * 4));
            int64_t pos[7] = {0, 1, 2, 17, 4095, 32767, 1000000};
            isthmus_rope_args a = {.tokens = T, .heads = H, .head_dim = D, .x = x, .ldx = H * D, .positions = pos,
                                   .rope = {.style = style, .rotary_dim = rot, .theta = 10000.0f}};
            CHECK_OK(isthmus_rope(&a));
            int64_t R = rot ? rot : D;
            double worst = 0;
            for (int64_t t = 0; t < T; t++)
                for (int64_t h = 0; h < H; h++) {
                    const float *in = x0 + (t * H + h) * D;
                    const float *out = x + (t * H + h) * D;
                    for (int64_t i = 0; i < R / 2; i++) {
                        int64_t a0 = style == ISTHMUS_ROPE_INTERLEAVED ? 2 * i : i;
                        int64_t a1 = style == ISTHMUS_ROPE_INTERLEAVED ? 2 * i + 1 : i + R / 2;
                        double ang = (double)pos[t] * pow(10000.0, -2.0 * i / R);
                        double y0 = in[a0] * cos(ang) - in[a1] * sin(ang), y1 = in[a1] * cos(ang) + in[a0] * sin(ang);
                        worst = fmax(worst, fmax(fabs(y0 - out[a0]), fabs(y1 - out[a1])));
                    }
                    for (int64_t i = R; i < D; i++) CHECK(out[i] == in[i], "dimension %lld past rotary_dim changed", (long long)i);
                }
            /* f32 cos/sin (rounded once from double) and two f32 roundings: a few ulp of |x| <= 2 */
            CHECK(worst < 2e-6, "rope style %d rot %d: max error %.3g", style, (int)rot, worst);
            gfree(x);
            gfree(x0);
        }
}

/* The fused append rotates K exactly as the standalone op does. */
static void rope_fused_matches(void) {
    uint64_t rng = t_seed;
    cache c;
    CHECK(cache_open(&c, config(1, 2, 64, 16, ISTHMUS_KV_F32, 16, 2, 100)), "open");
    int32_t s, n = 37;
    CHECK_OK(isthmus_kv_seq_create(c.state, &s));
    CHECK_OK(isthmus_kv_seq_extend(c.state, s, 3));
    CHECK_OK(isthmus_kv_seq_extend(c.state, s, n));
    const int64_t w = 128;
    float *k = rand_f32(&rng, n * w, -1, 1), *v = rand_f32(&rng, n * w, -1, 1), *kr = galloc(n * w * 4);
    isthmus_rope_params rp = {.style = ISTHMUS_ROPE_HALF, .rotary_dim = 0, .theta = 500000.0f};
    isthmus_kv_write_args a = {.kv = c.state, .layer = 0, .n_seqs = 1, .seqs = &s, .n_tokens = &n, .k = k,
                               .ldk = w, .v = v, .ldv = w, .rope = rp};
    CHECK_OK(isthmus_kv_write(&a));
    int64_t pos[37];
    for (int i = 0; i < n; i++) pos[i] = 3 + i;
    isthmus_rope_args ra = {.tokens = n, .heads = 2, .head_dim = 64, .x = k, .ldx = w, .positions = pos, .rope = rp};
    CHECK_OK(isthmus_rope(&ra));
    isthmus_kv_read_args r = {.kv = c.state, .layer = 0, .seq = s, .start = 3, .count = n, .k = kr, .ldk = w};
    CHECK_OK(isthmus_kv_read(&r));
    CHECK(memcmp(k, kr, (size_t)(n * w * 4)) == 0, "fused rope differs from isthmus_rope");
    gfree(k); gfree(v); gfree(kr);
    cache_close(&c);
}

/* ------------------------------------------------------------------ sequence operations vs a shadow model */

#define SH_SEQS 6
typedef struct shadow {
    int live;
    int64_t len;
    float *tok; /* [len] the value token t's K (and -value its V) is filled with */
} shadow;

static void fill_token_rows(float *k, float *v, int64_t n, int64_t w, const float *vals) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < w; i++) {
            k[t * w + i] = vals[t] + (float)i;
            v[t * w + i] = -vals[t] - (float)i;
        }
}

static void check_against_shadow(cache *c, shadow *sh, int32_t *ids, const char *op) {
    const int64_t w = (int64_t)c->cfg.kv_heads * c->cfg.head_dim;
    int64_t tokens = 0;
    int live = 0;
    for (int i = 0; i < SH_SEQS; i++) {
        if (!sh[i].live) continue;
        live++;
        tokens += sh[i].len;
        int64_t len = -1;
        CHECK_OK(isthmus_kv_seq_length(c->state, ids[i], &len));
        CHECK(len == sh[i].len, "after %s: seq %d length %lld, shadow %lld", op, i, (long long)len, (long long)sh[i].len);
        if (len != sh[i].len || len == 0) continue;
        for (int32_t l = 0; l < c->cfg.layers; l++) {
            float *k = galloc((size_t)(len * w * 4)), *v = galloc((size_t)(len * w * 4));
            isthmus_kv_read_args r = {.kv = c->state, .layer = l, .seq = ids[i], .start = 0, .count = len, .k = k,
                                      .ldk = w, .v = v, .ldv = w};
            CHECK_OK(isthmus_kv_read(&r));
            long bad = 0;
            for (int64_t t = 0; t < len; t++)
                for (int64_t e = 0; e < w; e++)
                    if ((k[t * w + e] != sh[i].tok[t] + (float)(e + l) || v[t * w + e] != -sh[i].tok[t] - (float)(e + l)) &&
                        bad++ < 2)
                        CHECK(0, "after %s: seq %d layer %d token %lld holds %g, shadow %g", op, i, l, (long long)t,
                              k[t * w + e], sh[i].tok[t] + (float)(e + l));
            gfree(k);
            gfree(v);
        }
    }
    isthmus_kv_stats st;
    CHECK_OK(isthmus_kv_get_stats(c->state, &st));
    CHECK(st.live_seqs == live && st.tokens == tokens, "after %s: stats live %d tokens %lld, shadow %d %lld", op,
          st.live_seqs, (long long)st.tokens, live, (long long)tokens);
    CHECK(st.free_blocks + st.used_blocks == c->cfg.num_blocks, "after %s: block accounting", op);
    /* every used block is referenced by a live table and vice versa */
    int32_t *refs = calloc((size_t)c->cfg.num_blocks, 4);
    for (int i = 0; i < SH_SEQS; i++) {
        if (!sh[i].live) continue;
        int32_t tab[64];
        int64_t cnt = 0;
        CHECK_OK(isthmus_kv_seq_blocks(c->state, ids[i], tab, 64, &cnt));
        CHECK(cnt == (sh[i].len + c->cfg.block_size - 1) / c->cfg.block_size, "after %s: seq %d has %lld blocks", op, i,
              (long long)cnt);
        for (int64_t b = 0; b < cnt && b < 64; b++) refs[tab[b]]++;
    }
    int used = 0, shared = 0;
    for (int32_t b = 0; b < c->cfg.num_blocks; b++) {
        used += refs[b] > 0;
        shared += refs[b] > 1;
    }
    CHECK(used == st.used_blocks && shared == st.shared_blocks, "after %s: %d blocks referenced (%d shared), stats say %d (%d)",
          op, used, shared, st.used_blocks, st.shared_blocks);
    free(refs);
}

static void shadow_model(void) {
    uint64_t rng = t_seed;
    for (int round = 0; round < 6; round++) {
        const int bs = round % 3 == 0 ? 1 : round % 3 == 1 ? 4 : 16;
        cache c;
        CHECK(cache_open(&c, config(2, 1, 16, bs, ISTHMUS_KV_F32, bs == 1 ? 40 : 24, SH_SEQS - 1, 64 * bs > 200 ? 200 : 64 * bs)),
              "open");
        shadow sh[SH_SEQS];
        int32_t ids[SH_SEQS];
        memset(sh, 0, sizeof sh);
        float next_val = 1000;
        int capacity_hits = 0;
        for (int step = 0; step < 400; step++) {
            int i = (int)rng_int(&rng, 0, SH_SEQS - 1), op = (int)rng_int(&rng, 0, 9);
            char name[64];
            if (!sh[i].live) {
                if (op < 6) { /* create */
                    int32_t id;
                    isthmus_status st = isthmus_kv_seq_create(c.state, &id);
                    int live = 0;
                    for (int j = 0; j < SH_SEQS; j++) live += sh[j].live;
                    if (live == c.cfg.max_seqs) {
                        CHECK(st == ISTHMUS_ERR_CAPACITY, "create with all slots used returned %d", st);
                    } else {
                        CHECK(st == ISTHMUS_OK, "create: %s", isthmus_last_error());
                        sh[i].live = 1; sh[i].len = 0; sh[i].tok = NULL; ids[i] = id;
                    }
                } else { /* fork from a random live one */
                    int p = (int)rng_int(&rng, 0, SH_SEQS - 1);
                    if (!sh[p].live) continue;
                    int32_t id;
                    isthmus_status st = isthmus_kv_seq_fork(c.state, ids[p], &id);
                    if (st == ISTHMUS_ERR_CAPACITY) continue;
                    CHECK(st == ISTHMUS_OK, "fork: %s", isthmus_last_error());
                    sh[i].live = 1;
                    sh[i].len = sh[p].len;
                    sh[i].tok = malloc((size_t)(sh[p].len + 1) * 4);
                    if (sh[p].len > 0) memcpy(sh[i].tok, sh[p].tok, (size_t)sh[p].len * 4);
                    ids[i] = id;
                }
                snprintf(name, sizeof name, "step %d create/fork %d", step, i);
            } else if (op < 6) { /* extend + write */
                int32_t n = (int32_t)rng_int(&rng, 1, 3 * bs + 2);
                isthmus_kv_stats before;
                CHECK_OK(isthmus_kv_get_stats(c.state, &before));
                isthmus_status st = isthmus_kv_seq_extend(c.state, ids[i], n);
                if (st == ISTHMUS_ERR_CAPACITY) {
                    isthmus_kv_stats after;
                    CHECK_OK(isthmus_kv_get_stats(c.state, &after));
                    CHECK(memcmp(&before, &after, sizeof before) == 0, "a refused extend changed the cache");
                    capacity_hits++;
                    snprintf(name, sizeof name, "step %d refused extend %d", step, i);
                } else {
                    CHECK(st == ISTHMUS_OK, "extend: %s", isthmus_last_error());
                    const int64_t w = 16;
                    float *vals = malloc((size_t)n * 4), *k = malloc((size_t)n * w * 4), *v = malloc((size_t)n * w * 4);
                    for (int t = 0; t < n; t++) vals[t] = next_val++;
                    sh[i].tok = realloc(sh[i].tok, (size_t)(sh[i].len + n) * 4);
                    memcpy(sh[i].tok + sh[i].len, vals, (size_t)n * 4);
                    sh[i].len += n;
                    for (int32_t l = 0; l < 2; l++) {
                        fill_token_rows(k, v, n, w, vals);
                        for (int64_t e = 0; e < n * w; e++) { k[e] += (float)l; v[e] -= (float)l; }
                        isthmus_kv_write_args a = {.kv = c.state, .layer = l, .n_seqs = 1, .seqs = &ids[i],
                                                   .n_tokens = &n, .k = k, .ldk = w, .v = v, .ldv = w};
                        CHECK_OK(isthmus_kv_write(&a));
                    }
                    free(vals); free(k); free(v);
                    snprintf(name, sizeof name, "step %d extend %d by %d", step, i, n);
                }
            } else if (op < 8) { /* truncate */
                int64_t len = rng_int(&rng, 0, sh[i].len);
                CHECK_OK(isthmus_kv_seq_truncate(c.state, ids[i], len));
                sh[i].len = len;
                snprintf(name, sizeof name, "step %d truncate %d to %lld", step, i, (long long)len);
            } else { /* free */
                CHECK_OK(isthmus_kv_seq_free(c.state, ids[i]));
                free(sh[i].tok);
                sh[i].tok = NULL;
                sh[i].live = 0;
                snprintf(name, sizeof name, "step %d free %d", step, i);
            }
            check_against_shadow(&c, sh, ids, name);
            if (t_failures > 20) break;
        }
        CHECK(capacity_hits > 0, "round %d never exhausted the pool: the test lost its teeth", round);
        for (int i = 0; i < SH_SEQS; i++)
            if (sh[i].live) {
                CHECK_OK(isthmus_kv_seq_free(c.state, ids[i]));
                free(sh[i].tok);
            }
        isthmus_kv_stats st;
        CHECK_OK(isthmus_kv_get_stats(c.state, &st));
        CHECK(st.free_blocks == c.cfg.num_blocks && st.live_seqs == 0, "blocks leaked: %d of %d free", st.free_blocks,
              c.cfg.num_blocks);
        cache_close(&c);
    }
}

/* Attention over a forked sequence equals attention over the same tokens appended from scratch. */
static void fork_attention(void) {
    uint64_t rng = t_seed;
    cache c;
    CHECK(cache_open(&c, config(1, 2, 64, 16, ISTHMUS_KV_F16, 64, 4, 400)), "open");
    int32_t parent, child;
    CHECK_OK(isthmus_kv_seq_create(c.state, &parent));
    append_random(&c, parent, 37, &rng, 1.0f); /* a partial last block: the child's extend copies it */
    CHECK_OK(isthmus_kv_seq_fork(c.state, parent, &child));
    append_random(&c, child, 20, &rng, 1.0f);
    append_random(&c, parent, 3, &rng, 1.0f);
    isthmus_kv_stats st;
    CHECK_OK(isthmus_kv_get_stats(c.state, &st));
    CHECK(st.shared_blocks == 2, "%d shared blocks, want the 2 full prefix blocks", st.shared_blocks);
    batch_item items[2] = {{child, 4}, {parent, 1}};
    run_check(&c, 0, items, 2, params(4, 64), &rng, 2.0f, "fork");
    cache_close(&c);
}

/* ------------------------------------------------------------------ bad arguments */

static void bad_arguments(void) {
    int64_t sb, pb;
    isthmus_kv_config good = config(1, 2, 64, 16, ISTHMUS_KV_F32, 8, 2, 100), b;
    CHECK_FAILS(isthmus_kv_sizes(NULL, &sb, &pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = good; b.head_dim = 72; CHECK_FAILS(isthmus_kv_sizes(&b, &sb, &pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = good; b.head_dim = 1024; CHECK_FAILS(isthmus_kv_sizes(&b, &sb, &pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = good; b.block_size = 12; CHECK_FAILS(isthmus_kv_sizes(&b, &sb, &pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = good; b.block_size = 512; CHECK_FAILS(isthmus_kv_sizes(&b, &sb, &pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = good; b.dtype = 4; CHECK_FAILS(isthmus_kv_sizes(&b, &sb, &pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = good; b.num_blocks = 0; CHECK_FAILS(isthmus_kv_sizes(&b, &sb, &pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = good; b.layers = -1; CHECK_FAILS(isthmus_kv_sizes(&b, &sb, &pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = good; b.max_seq_len = ISTHMUS_KV_MAX_SEQ_LEN + 1; CHECK_FAILS(isthmus_kv_sizes(&b, &sb, &pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = good; b.layers = 1 << 30; b.num_blocks = 1 << 30; b.kv_heads = 1 << 20;
    CHECK_FAILS(isthmus_kv_sizes(&b, &sb, &pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_OK(isthmus_kv_sizes(&good, &sb, &pb));
    void *state = galloc((size_t)sb), *pool = galloc((size_t)pb);
    CHECK_FAILS(isthmus_kv_init(&good, state, sb - 1, pool, pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_kv_init(&good, state, sb, pool, pb - 1), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_kv_init(&good, (char *)state + 8, sb, pool, pb), ISTHMUS_ERR_INVALID_ARGUMENT);
    int32_t s, s2;
    CHECK_FAILS(isthmus_kv_seq_create(state, &s), ISTHMUS_ERR_INVALID_ARGUMENT); /* not initialized */
    CHECK_OK(isthmus_kv_init(&good, state, sb, pool, pb));
    CHECK_OK(isthmus_kv_seq_create(state, &s));
    CHECK_FAILS(isthmus_kv_seq_extend(state, s, 0), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_kv_seq_extend(state, s, 101), ISTHMUS_ERR_CAPACITY);
    CHECK_FAILS(isthmus_kv_seq_extend(state, 7, 1), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_kv_seq_extend(state, -1, 1), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_OK(isthmus_kv_seq_create(state, &s2));
    CHECK_FAILS(isthmus_kv_seq_create(state, &s2), ISTHMUS_ERR_CAPACITY);
    CHECK_OK(isthmus_kv_seq_free(state, s2));
    CHECK_FAILS(isthmus_kv_seq_free(state, s2), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_kv_seq_length(state, s2, &sb), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_OK(isthmus_kv_seq_extend(state, s, 100));
    CHECK_FAILS(isthmus_kv_seq_truncate(state, s, 101), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_kv_seq_truncate(state, s, -1), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_OK(isthmus_kv_seq_create(state, &s2));
    CHECK_FAILS(isthmus_kv_seq_extend(state, s2, 17), ISTHMUS_ERR_CAPACITY); /* 7 of 8 blocks used */
    CHECK_OK(isthmus_kv_seq_extend(state, s2, 16));

    float q[2 * 4 * 64], out[2 * 4 * 64];
    for (int i = 0; i < 2 * 4 * 64; i++) q[i] = (float)(i % 7) * 0.1f;
    int32_t seqs[1] = {s}, qls[1] = {2};
    isthmus_attention_args a = {.kv = state, .layer = 0, .n_seqs = 1, .seqs = seqs, .q_lens = qls, .q_heads = 4,
                                .q = q, .ldq = 256, .out = out, .ldo = 256, .scale = 0.125f};
    float kv[2 * 128];
    for (int i = 0; i < 256; i++) kv[i] = 0.01f * (float)i;
    int32_t two = 2;
    isthmus_kv_write_args wa = {.kv = state, .layer = 0, .n_seqs = 1, .seqs = &s, .n_tokens = &two, .k = kv, .ldk = 128,
                                .v = kv, .ldv = 128};
    CHECK_OK(isthmus_kv_write(&wa));
    CHECK_OK(isthmus_attention(&a));
    isthmus_attention_args x;
    x = a; x.kv = NULL; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.kv = pool; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.layer = 1; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.q_heads = 3; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.q_heads = 0; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.ldq = 255; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.ldo = 100; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.scale = 0; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.scale = NAN; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.softcap = -1; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.window = -1; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.q = NULL; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.n_seqs = 0; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    int32_t bad_seq[1] = {1 - s + 5}, bad_ql[1] = {101}, zero_ql[1] = {0};
    x = a; x.seqs = bad_seq; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.q_lens = bad_ql; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.q_lens = zero_ql; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);
    x = a; x.out = q; x.ldo = 512; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT);

    isthmus_kv_write_args y;
    y = wa; y.layer = 2; CHECK_FAILS(isthmus_kv_write(&y), ISTHMUS_ERR_INVALID_ARGUMENT);
    y = wa; y.ldk = 127; CHECK_FAILS(isthmus_kv_write(&y), ISTHMUS_ERR_INVALID_ARGUMENT);
    y = wa; y.n_tokens = bad_ql; CHECK_FAILS(isthmus_kv_write(&y), ISTHMUS_ERR_INVALID_ARGUMENT);
    int32_t dup[2] = {s, s}, ones[2] = {1, 1};
    y = wa; y.n_seqs = 2; y.seqs = dup; y.n_tokens = ones; CHECK_FAILS(isthmus_kv_write(&y), ISTHMUS_ERR_INVALID_ARGUMENT);
    y = wa; y.rope.style = 7; CHECK_FAILS(isthmus_kv_write(&y), ISTHMUS_ERR_INVALID_ARGUMENT);
    y = wa; y.rope.style = ISTHMUS_ROPE_HALF; y.rope.theta = 1.0f; CHECK_FAILS(isthmus_kv_write(&y), ISTHMUS_ERR_INVALID_ARGUMENT);
    y = wa; y.rope.style = ISTHMUS_ROPE_HALF; y.rope.theta = 1e4f; y.rope.rotary_dim = 3;
    CHECK_FAILS(isthmus_kv_write(&y), ISTHMUS_ERR_INVALID_ARGUMENT);
    /* a fork shares the written blocks: writing them is refused until the sequence is extended */
    int32_t f;
    CHECK_OK(isthmus_kv_seq_free(state, s2));
    CHECK_OK(isthmus_kv_seq_fork(state, s, &f));
    CHECK_FAILS(isthmus_kv_write(&wa), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_OK(isthmus_kv_seq_free(state, f));
    CHECK_OK(isthmus_kv_write(&wa));

    isthmus_kv_read_args r = {.kv = state, .layer = 0, .seq = s, .start = 99, .count = 2, .k = kv, .ldk = 128};
    CHECK_FAILS(isthmus_kv_read(&r), ISTHMUS_ERR_INVALID_ARGUMENT);
    r.count = 1;
    CHECK_OK(isthmus_kv_read(&r));

    /* int8 refuses NaN */
    isthmus_kv_config c8 = good;
    c8.dtype = ISTHMUS_KV_S8;
    int64_t sb8, pb8;
    CHECK_OK(isthmus_kv_sizes(&c8, &sb8, &pb8));
    void *st8 = galloc((size_t)sb8), *pl8 = galloc((size_t)pb8);
    CHECK_OK(isthmus_kv_init(&c8, st8, sb8, pl8, pb8));
    int32_t s8;
    CHECK_OK(isthmus_kv_seq_create(st8, &s8));
    CHECK_OK(isthmus_kv_seq_extend(st8, s8, 2));
    kv[130] = NAN;
    isthmus_kv_write_args w8 = wa;
    w8.kv = st8;
    w8.seqs = &s8;
    CHECK_FAILS(isthmus_kv_write(&w8), ISTHMUS_ERR_INVALID_ARGUMENT);
    gfree(st8);
    gfree(pl8);

    isthmus_rope_args ra = {.tokens = 1, .heads = 1, .head_dim = 64, .x = q, .ldx = 64, .positions = (int64_t[]){-1},
                            .rope = {.style = ISTHMUS_ROPE_HALF, .theta = 10000.0f}};
    CHECK_FAILS(isthmus_rope(&ra), ISTHMUS_ERR_INVALID_ARGUMENT);
    ra.positions = (int64_t[]){5};
    ra.head_dim = 63;
    CHECK_FAILS(isthmus_rope(&ra), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(gcheck(state) && gcheck(pool), "guards");
    gfree(state);
    gfree(pool);
}

/* ------------------------------------------------------------------ token trees, RoPE positions, compaction */

/* Parents of a tree of n nodes (-1 <= parent < u): 0 chain, 1 star on the prefix, 2 star under node 0,
 * 3 uniform random, 4 deep (mostly chain, sometimes a branch back), 5 a binary tree. */
static void make_tree(int kind, int32_t n, uint64_t *rng, int32_t *par) {
    for (int32_t u = 0; u < n; u++) {
        switch (kind) {
        case 0: par[u] = u - 1; break;
        case 1: par[u] = -1; break;
        case 2: par[u] = u == 0 ? -1 : 0; break;
        case 3: par[u] = (int32_t)rng_int(rng, -1, u - 1); break;
        case 4: par[u] = u == 0 || rng_int(rng, 0, 9) ? u - 1 : (int32_t)rng_int(rng, -1, u - 1); break;
        default: par[u] = (u - 1) / 2 - (u == 0); break;
        }
    }
}

/* Every ISA variant against the masked double reference: several sequences in one call, each with its
 * own tree, q_len 1..256, every KV dtype, block sizes 1 and 16, GQA, softcap, lse. */
static void tree_attention(void) {
    static const int64_t LENS[] = {40, 300, 17, 256, 5};
    static const int32_t QL[] = {7, 256, 17, 200, 1};
    for (int dt = 0; dt < 4; dt++)
        for (int bi = 0; bi < 2; bi++)
            for (int kind = 0; kind < 6; kind++) {
                if (kind != 3 && (dt + kind) % 2) continue; /* every kind on two dtypes; random trees on all */
                t_seed = 9000 + dt * 100 + bi * 10 + kind;
                uint64_t rng = t_seed;
                int32_t par[1024], T = 0;
                for (int i = 0; i < 5; i++) {
                    make_tree(kind == 5 && i % 2 ? 3 : kind, QL[i], &rng, par + T);
                    T += QL[i];
                }
                attn_params p = params(8, 64);
                p.tree = par;
                if (kind == 4) p.softcap = 20.0f;
                check_config(config(1, 2, 64, bi ? 16 : 1, dt, 0, 0, 0), LENS, QL, 5, p, 3.0f);
            }
}

/* A chain is the causal mask: bit-identical to tree_parents = NULL, split (q_len <= 16) or not. */
static void tree_chain_is_causal(void) {
    uint64_t rng = t_seed;
    for (int dt = 0; dt < 4; dt++) {
        cache c;
        CHECK(cache_open(&c, config(1, 2, 128, 16, dt, 400, 2, 3000)), "open");
        int32_t s[2], qls[2] = {5, 100}, par[105];
        for (int i = 0; i < 2; i++) {
            CHECK_OK(isthmus_kv_seq_create(c.state, &s[i]));
            append_random(&c, s[i], i ? 2500 : 2100, &rng, 1.0f);
        }
        for (int i = 0; i < 5; i++) par[i] = i - 1;
        for (int i = 0; i < 100; i++) par[5 + i] = i - 1;
        const int64_t w = 8 * 128, T = 105;
        float *q = rand_f32(&rng, T * w, -2, 2), *o1 = galloc(T * w * 4), *o2 = galloc(T * w * 4);
        float *l1 = galloc(T * 8 * 4), *l2 = galloc(T * 8 * 4);
        for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
            isthmus_set_isa_cap(isa);
            isthmus_attention_args a = {.kv = c.state, .n_seqs = 2, .seqs = s, .q_lens = qls, .q_heads = 8, .q = q,
                                        .ldq = w, .out = o1, .ldo = w, .lse = l1, .scale = 0.088f};
            CHECK_OK(isthmus_attention(&a));
            a.out = o2;
            a.lse = l2;
            a.tree_parents = par;
            CHECK_OK(isthmus_attention(&a));
            CHECK(memcmp(o1, o2, (size_t)(T * w * 4)) == 0 && memcmp(l1, l2, (size_t)(T * 8 * 4)) == 0,
                  "%s %s: a chain tree differs from the causal mask", DT[dt], isthmus_isa_name(isa));
        }
        isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
        gfree(q); gfree(o1); gfree(o2); gfree(l1); gfree(l2);
        cache_close(&c);
    }
}

/* kv_write with positions = write without RoPE, then isthmus_rope on K at those positions. */
static void write_positions(void) {
    uint64_t rng = t_seed;
    cache c;
    CHECK(cache_open(&c, config(1, 2, 64, 16, ISTHMUS_KV_F32, 16, 2, 100)), "open");
    int32_t s[2], n[2] = {9, 21};
    const int64_t w = 128, T = 30;
    for (int i = 0; i < 2; i++) {
        CHECK_OK(isthmus_kv_seq_create(c.state, &s[i]));
        CHECK_OK(isthmus_kv_seq_extend(c.state, s[i], 5 + i));
        CHECK_OK(isthmus_kv_seq_extend(c.state, s[i], n[i]));
    }
    int64_t pos[30];
    for (int r = 0; r < T; r++) pos[r] = rng_int(&rng, 0, 1000);
    pos[0] = 0;
    pos[29] = (int64_t)1 << 40;
    for (int style = ISTHMUS_ROPE_INTERLEAVED; style <= ISTHMUS_ROPE_HALF; style++) {
        float *k = rand_f32(&rng, T * w, -1, 1), *v = rand_f32(&rng, T * w, -1, 1), *kr = galloc(T * w * 4);
        isthmus_rope_params rp = {.style = style, .rotary_dim = style == ISTHMUS_ROPE_HALF ? 48 : 0, .theta = 10000.0f};
        isthmus_kv_write_args a = {.kv = c.state, .layer = 0, .n_seqs = 2, .seqs = s, .n_tokens = n, .k = k,
                                   .ldk = w, .v = v, .ldv = w, .rope = rp, .positions = pos};
        CHECK_OK(isthmus_kv_write(&a));
        isthmus_rope_args ra = {.tokens = T, .heads = 2, .head_dim = 64, .x = k, .ldx = w, .positions = pos, .rope = rp};
        CHECK_OK(isthmus_rope(&ra));
        for (int i = 0; i < 2; i++) {
            isthmus_kv_read_args r = {.kv = c.state, .layer = 0, .seq = s[i], .start = 5 + i, .count = n[i], .k = kr,
                                      .ldk = w};
            CHECK_OK(isthmus_kv_read(&r));
            CHECK(memcmp(k + (i ? n[0] : 0) * w, kr, (size_t)(n[i] * w * 4)) == 0,
                  "style %d seq %d: write with positions differs from isthmus_rope", style, i);
        }
        gfree(k); gfree(v); gfree(kr);
    }
    /* positions are refused when negative */
    float x[128 * 30] = {0};
    pos[3] = -1;
    isthmus_kv_write_args b = {.kv = c.state, .layer = 0, .n_seqs = 2, .seqs = s, .n_tokens = n, .k = x, .ldk = w, .v = x,
                               .ldv = w, .rope = {.style = ISTHMUS_ROPE_HALF, .theta = 1e4f}, .positions = pos};
    CHECK_FAILS(isthmus_kv_write(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(strstr(isthmus_last_error(), "positions[3]") != NULL, "message: %s", isthmus_last_error());
    cache_close(&c);
}

/* Read-back of every layer of a sequence (f32, dequantized), [layers][len][w]. */
static float *read_all(const cache *c, int32_t seq, int64_t *len_out) {
    const int64_t w = (int64_t)c->cfg.kv_heads * c->cfg.head_dim;
    int64_t len = 0;
    CHECK_OK(isthmus_kv_seq_length(c->state, seq, &len));
    float *x = malloc((size_t)(2 * c->cfg.layers * (len + 1) * w * 4));
    for (int32_t l = 0; l < c->cfg.layers; l++) {
        isthmus_kv_read_args r = {.kv = c->state, .layer = l, .seq = seq, .start = 0, .count = len,
                                  .k = x + 2 * l * len * w, .ldk = w, .v = x + (2 * l + 1) * len * w, .ldv = w};
        if (len) CHECK_OK(isthmus_kv_read(&r));
    }
    *len_out = len;
    return x;
}

/* Blocks referenced by live tables equal the used blocks, and the shared count matches. */
static void check_blocks(const cache *c, const int32_t *ids, int n, const char *what) {
    isthmus_kv_stats st;
    CHECK_OK(isthmus_kv_get_stats(c->state, &st));
    int32_t *refs = calloc((size_t)c->cfg.num_blocks, 4), tab[512];
    for (int i = 0; i < n; i++) {
        int64_t cnt = 0, len = 0;
        CHECK_OK(isthmus_kv_seq_blocks(c->state, ids[i], tab, 512, &cnt));
        CHECK_OK(isthmus_kv_seq_length(c->state, ids[i], &len));
        CHECK(cnt == (len + c->cfg.block_size - 1) / c->cfg.block_size, "%s: seq %d has %lld blocks for %lld tokens",
              what, ids[i], (long long)cnt, (long long)len);
        for (int64_t b = 0; b < cnt && b < 512; b++) refs[tab[b]]++;
    }
    int used = 0, shared = 0;
    for (int32_t b = 0; b < c->cfg.num_blocks; b++) {
        used += refs[b] > 0;
        shared += refs[b] > 1;
    }
    CHECK(used == st.used_blocks && shared == st.shared_blocks && st.free_blocks + st.used_blocks == c->cfg.num_blocks,
          "%s: %d blocks referenced (%d shared), stats say %d used (%d shared), %d free", what, used, shared,
          st.used_blocks, st.shared_blocks, st.free_blocks);
    free(refs);
}

/* Compaction against a model built from read-backs: random keeps (from nothing to everything, across
 * block boundaries), every dtype (the bytes move, so int8 scales and the transposed K must move with
 * them: results are compared exactly), forks that share blocks keep their contents, and no block leaks. */
static void compact_model(void) {
    static const int32_t BS[] = {1, 4, 16};
    uint64_t rng = t_seed;
    for (int dt = 0; dt < 4; dt++)
        for (int bi = 0; bi < 3; bi++)
            for (int round = 0; round < 8; round++) {
                const int32_t bs = BS[bi];
                cache c;
                CHECK(cache_open(&c, config(2, 2, 32, bs, dt, 3 * 200 / bs + 8, 4, 200)), "open");
                const int64_t w = 64;
                int32_t ids[3], n = 1;
                CHECK_OK(isthmus_kv_seq_create(c.state, &ids[0]));
                append_random(&c, ids[0], (int32_t)rng_int(&rng, 1, 120), &rng, 1.0f);
                if (round % 2) { /* a fork sharing every block, maybe with its own tail */
                    CHECK_OK(isthmus_kv_seq_fork(c.state, ids[0], &ids[n++]));
                    if (round % 4 == 3) append_random(&c, ids[1], (int32_t)rng_int(&rng, 1, 20), &rng, 1.0f);
                }
                if (round >= 4) { /* the sequence itself grows after the fork: a tree after a shared prefix */
                    append_random(&c, ids[0], (int32_t)rng_int(&rng, 1, 60), &rng, 1.0f);
                    if (round % 2) CHECK_OK(isthmus_kv_seq_fork(c.state, ids[0], &ids[n++]));
                }
                int64_t len[3];
                float *before[3];
                for (int i = 0; i < n; i++) before[i] = read_all(&c, ids[i], &len[i]);
                int64_t start = rng_int(&rng, 0, len[0]);
                int32_t keep[200], nk = 0;
                int mode = (int)rng_int(&rng, 0, 3);
                for (int32_t j = 0; j < len[0] - start; j++)
                    if (mode == 0 ? rng_int(&rng, 0, 1) : mode == 1 ? rng_int(&rng, 0, 9) == 0 : mode == 2 ? 1 : j % 3 == 2)
                        keep[nk++] = j;
                char what[96];
                snprintf(what, sizeof what, "%s bs=%d round %d: compact start %lld keep %d of %lld", DT[dt], bs, round,
                         (long long)start, nk, (long long)(len[0] - start));
                isthmus_kv_stats st0;
                CHECK_OK(isthmus_kv_get_stats(c.state, &st0));
                CHECK_OK(isthmus_kv_seq_compact(c.state, ids[0], start, keep, nk));
                int64_t l2;
                float *after = read_all(&c, ids[0], &l2);
                CHECK(l2 == start + nk, "%s: length %lld", what, (long long)l2);
                long bad = 0;
                for (int32_t l = 0; l < c.cfg.layers; l++)
                    for (int kv = 0; kv < 2; kv++)
                        for (int64_t t = 0; t < l2 && l2 == start + nk; t++) {
                            int64_t src = t < start ? t : start + keep[t - start];
                            if (memcmp(after + ((2 * l + kv) * l2 + t) * w, before[0] + ((2 * l + kv) * len[0] + src) * w,
                                       (size_t)w * 4) && bad++ < 2)
                                CHECK(0, "%s: layer %d %s token %lld is not token %lld", what, l, kv ? "V" : "K",
                                      (long long)t, (long long)src);
                        }
                for (int i = 1; i < n; i++) { /* forks unchanged */
                    int64_t lf;
                    float *x = read_all(&c, ids[i], &lf);
                    CHECK(lf == len[i] && memcmp(x, before[i], (size_t)(2 * c.cfg.layers * lf * w * 4)) == 0,
                          "%s: fork %d changed", what, i);
                    free(x);
                }
                isthmus_kv_stats st1;
                CHECK_OK(isthmus_kv_get_stats(c.state, &st1));
                CHECK(st1.tokens == st0.tokens - (len[0] - start - nk), "%s: stats tokens %lld", what, (long long)st1.tokens);
                check_blocks(&c, ids, n, what);
                /* the compacted sequence still extends and attends */
                append_random(&c, ids[0], 3, &rng, 1.0f);
                check_blocks(&c, ids, n, what);
                free(after);
                for (int i = 0; i < n; i++) {
                    free(before[i]);
                    CHECK_OK(isthmus_kv_seq_free(c.state, ids[i]));
                }
                CHECK_OK(isthmus_kv_get_stats(c.state, &st1));
                CHECK(st1.free_blocks == c.cfg.num_blocks, "%s: %d of %d blocks free at the end", what, st1.free_blocks,
                      c.cfg.num_blocks);
                cache_close(&c);
            }
}

/* Compacting an accepted tree path gives the attention of the path written as a plain sequence. */
static void compact_then_attend(void) {
    uint64_t rng = t_seed;
    cache c;
    CHECK(cache_open(&c, config(1, 2, 64, 16, ISTHMUS_KV_F32, 64, 2, 400)), "open");
    int32_t s, plain;
    CHECK_OK(isthmus_kv_seq_create(c.state, &s));
    CHECK_OK(isthmus_kv_seq_create(c.state, &plain));
    const int64_t w = 128;
    float *pk = rand_f32(&rng, 50 * w, -1, 1), *pv = rand_f32(&rng, 50 * w, -1, 1);
    int32_t n50 = 50;
    for (int i = 0; i < 2; i++) {
        int32_t id = i ? plain : s;
        CHECK_OK(isthmus_kv_seq_extend(c.state, id, 50));
        isthmus_kv_write_args a = {.kv = c.state, .n_seqs = 1, .seqs = &id, .n_tokens = &n50, .k = pk, .ldk = w, .v = pv, .ldv = w};
        CHECK_OK(isthmus_kv_write(&a));
    }
    int32_t nt = 20, keep[4] = {0, 3, 9, 15};
    float *tk = rand_f32(&rng, nt * w, -1, 1), *tv = rand_f32(&rng, nt * w, -1, 1);
    CHECK_OK(isthmus_kv_seq_extend(c.state, s, nt));
    isthmus_kv_write_args a = {.kv = c.state, .n_seqs = 1, .seqs = &s, .n_tokens = &nt, .k = tk, .ldk = w, .v = tv, .ldv = w};
    CHECK_OK(isthmus_kv_write(&a));
    CHECK_OK(isthmus_kv_seq_compact(c.state, s, 50, keep, 4));
    int32_t four = 4;
    float pk2[4 * 128], pv2[4 * 128];
    for (int i = 0; i < 4; i++) {
        memcpy(pk2 + i * w, tk + keep[i] * w, (size_t)w * 4);
        memcpy(pv2 + i * w, tv + keep[i] * w, (size_t)w * 4);
    }
    CHECK_OK(isthmus_kv_seq_extend(c.state, plain, 4));
    isthmus_kv_write_args b = {.kv = c.state, .n_seqs = 1, .seqs = &plain, .n_tokens = &four, .k = pk2, .ldk = w, .v = pv2, .ldv = w};
    CHECK_OK(isthmus_kv_write(&b));
    float *q = rand_f32(&rng, 4 * 4 * 64, -2, 2), o1[4 * 256], o2[4 * 256];
    int32_t ql = 4;
    isthmus_attention_args at = {.kv = c.state, .n_seqs = 1, .seqs = &s, .q_lens = &ql, .q_heads = 4, .q = q, .ldq = 256,
                                 .out = o1, .ldo = 256, .scale = 0.125f};
    CHECK_OK(isthmus_attention(&at));
    at.seqs = &plain;
    at.out = o2;
    CHECK_OK(isthmus_attention(&at));
    CHECK(memcmp(o1, o2, sizeof o1) == 0, "attention after compact differs from the plain sequence");
    gfree(pk); gfree(pv); gfree(tk); gfree(tv); gfree(q);
    cache_close(&c);
}

static void tree_compact_bad_arguments(void) {
    cache c;
    CHECK(cache_open(&c, config(1, 2, 64, 16, ISTHMUS_KV_F32, 4, 3, 64)), "open");
    int32_t s, f;
    CHECK_OK(isthmus_kv_seq_create(c.state, &s));
    uint64_t rng = t_seed;
    append_random(&c, s, 40, &rng, 1.0f);
    int32_t keep[4] = {1, 2, 5, 7};
#define MSG(sub) CHECK(strstr(isthmus_last_error(), sub) != NULL, "message '%s' lacks '%s'", isthmus_last_error(), sub)
    CHECK_FAILS(isthmus_kv_seq_compact(c.state, s, -1, keep, 4), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("start");
    CHECK_FAILS(isthmus_kv_seq_compact(c.state, s, 41, keep, 0), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("start");
    CHECK_FAILS(isthmus_kv_seq_compact(c.state, s, 35, keep, 6), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("n_keep");
    CHECK_FAILS(isthmus_kv_seq_compact(c.state, s, 35, keep, -1), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("n_keep");
    CHECK_FAILS(isthmus_kv_seq_compact(c.state, s, 35, NULL, 2), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("keep");
    CHECK_FAILS(isthmus_kv_seq_compact(c.state, s, 34, keep, 4), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("keep[3]");
    int32_t dec[3] = {0, 2, 2}, neg[2] = {-1, 0};
    CHECK_FAILS(isthmus_kv_seq_compact(c.state, s, 10, dec, 3), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("keep[2]");
    CHECK_FAILS(isthmus_kv_seq_compact(c.state, s, 10, neg, 2), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("keep[0]");
    CHECK_FAILS(isthmus_kv_seq_compact(c.state, 2, 0, keep, 0), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_kv_seq_compact(NULL, s, 0, keep, 0), ISTHMUS_ERR_INVALID_ARGUMENT);
    /* a fork shares all 3 blocks, 1 is free: a compact writing into 2 shared blocks is refused whole */
    CHECK_OK(isthmus_kv_seq_fork(c.state, s, &f));
    isthmus_kv_stats st0, st1;
    CHECK_OK(isthmus_kv_get_stats(c.state, &st0));
    int64_t l0 = 0, l1 = 0;
    float *x0 = read_all(&c, s, &l0);
    int32_t far[2] = {10, 20}; /* destinations 15 and 16: blocks 0 and 1 */
    CHECK_FAILS(isthmus_kv_seq_compact(c.state, s, 15, far, 2), ISTHMUS_ERR_CAPACITY);
    CHECK_OK(isthmus_kv_get_stats(c.state, &st1));
    float *x1 = read_all(&c, s, &l1);
    CHECK(memcmp(&st0, &st1, sizeof st0) == 0 && l0 == l1 && memcmp(x0, x1, (size_t)(l0 * 2 * 128 * 4)) == 0,
          "a refused compact changed the cache");
    free(x0); free(x1);
    /* n_keep = 0 is a truncation; keeping a prefix in place copies nothing */
    CHECK_OK(isthmus_kv_seq_compact(c.state, s, 33, keep, 0));
    CHECK_OK(isthmus_kv_seq_length(c.state, s, &l0));
    CHECK(l0 == 33, "length %lld", (long long)l0);
    int32_t pre[2] = {0, 1};
    CHECK_OK(isthmus_kv_seq_compact(c.state, s, 20, pre, 2));
    CHECK_OK(isthmus_kv_get_stats(c.state, &st1));
    CHECK(st1.shared_blocks == 2, "%d shared blocks after an in-place keep", st1.shared_blocks);

    /* attention with a tree */
    float q[20 * 256] = {0}, out[20 * 256];
    int32_t ql = 20, par[300], seqs[1] = {f};
    for (int i = 0; i < 20; i++) par[i] = i - 1;
    isthmus_attention_args a = {.kv = c.state, .n_seqs = 1, .seqs = seqs, .q_lens = &ql, .q_heads = 4, .q = q, .ldq = 256,
                                .out = out, .ldo = 256, .scale = 0.125f, .tree_parents = par};
    CHECK_OK(isthmus_attention(&a));
    isthmus_attention_args x = a;
    x.window = 4; CHECK_FAILS(isthmus_attention(&x), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("window");
    par[7] = 7; CHECK_FAILS(isthmus_attention(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("tree_parents[7]");
    par[7] = -2; CHECK_FAILS(isthmus_attention(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("tree_parents[7]");
    par[7] = 6;
    par[0] = 0; CHECK_FAILS(isthmus_attention(&a), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("tree_parents[0]");
    par[0] = -1;
    cache_close(&c);
    /* q_len above ISTHMUS_TREE_MAX_NODES */
    CHECK(cache_open(&c, config(1, 1, 16, 16, ISTHMUS_KV_F32, 20, 1, 300)), "open");
    CHECK_OK(isthmus_kv_seq_create(c.state, &s));
    append_random(&c, s, 257, &rng, 1.0f);
    float *q2 = calloc(257 * 16, 4), *o2 = calloc(257 * 16, 4);
    for (int i = 0; i < 257; i++) par[i] = i - 1;
    int32_t ql2 = 257;
    isthmus_attention_args b = {.kv = c.state, .n_seqs = 1, .seqs = &s, .q_lens = &ql2, .q_heads = 1, .q = q2, .ldq = 16,
                                .out = o2, .ldo = 16, .scale = 0.25f, .tree_parents = par};
    CHECK_FAILS(isthmus_attention(&b), ISTHMUS_ERR_INVALID_ARGUMENT); MSG("ISTHMUS_TREE_MAX_NODES");
    ql2 = 256;
    CHECK_OK(isthmus_attention(&b));
#undef MSG
    free(q2); free(o2);
    cache_close(&c);
}

/* ------------------------------------------------------------------ fuzz finds (native/fuzz/README.md) */

/* The state is caller memory: a byte the caller overwrote (header: pool pointer, sizes, offsets; free
 * list, reference counts, sequence records, block tables) must give a status code, never a read or
 * write outside the state and pool (the guards of galloc), nor ISTHMUS_ERR_INTERNAL. Every byte of the
 * state in turn, then the entries that follow block ids or the pool pointer. */
static void corrupted_state(void) {
    uint64_t rng = t_seed;
    cache c;
    CHECK(cache_open(&c, config(2, 1, 16, 4, ISTHMUS_KV_F32, 12, 3, 32)), "open");
    int64_t sb = 0, pb = 0;
    CHECK_OK(isthmus_kv_sizes(&c.cfg, &sb, &pb));
    int32_t s0, s1;
    CHECK_OK(isthmus_kv_seq_create(c.state, &s0));
    append_random(&c, s0, 10, &rng, 1.0f);
    CHECK_OK(isthmus_kv_seq_fork(c.state, s0, &s1));
    append_random(&c, s1, 3, &rng, 1.0f);
    uint8_t *snap = galloc((size_t)sb);
    memcpy(snap, c.state, (size_t)sb);
    float buf[16 * 16], out[16 * 16];
    for (int i = 0; i < 16 * 16; i++) buf[i] = 0.01f * (float)(i % 13);
    int bad_status = 0, refused = 0;
    for (int64_t off = 0; off < sb; off++) {
        memcpy(c.state, snap, (size_t)sb);
        ((uint8_t *)c.state)[off] ^= (uint8_t)(0x55 ^ (off & 0xaa));
        isthmus_status st[6];
        int32_t one = 1, ql = 2, child = -1;
        isthmus_kv_read_args r = {.kv = c.state, .layer = 1, .seq = s0, .start = 0, .count = 10, .k = buf, .ldk = 16, .v = buf, .ldv = 16};
        st[0] = isthmus_kv_read(&r);
        isthmus_attention_args a = {.kv = c.state, .layer = 0, .n_seqs = 1, .seqs = &s1, .q_lens = &ql, .q_heads = 1,
                                    .q = buf, .ldq = 16, .out = out, .ldo = 16, .scale = 0.25f};
        st[1] = isthmus_attention(&a);
        st[2] = isthmus_kv_seq_extend(c.state, s0, 7);
        isthmus_kv_write_args w = {.kv = c.state, .layer = 1, .n_seqs = 1, .seqs = &s0, .n_tokens = &one, .k = buf,
                                   .ldk = 16, .v = buf, .ldv = 16};
        st[3] = isthmus_kv_write(&w);
        st[4] = isthmus_kv_seq_fork(c.state, s1, &child);
        st[5] = isthmus_kv_seq_free(c.state, s1);
        for (int i = 0; i < 6; i++) {
            bad_status |= st[i] != ISTHMUS_OK && st[i] != ISTHMUS_ERR_INVALID_ARGUMENT && st[i] != ISTHMUS_ERR_CAPACITY;
            refused += st[i] == ISTHMUS_ERR_INVALID_ARGUMENT;
        }
        CHECK(!bad_status, "byte %lld flipped: statuses %d %d %d %d %d %d (%s)", (long long)off, st[0], st[1], st[2],
              st[3], st[4], st[5], isthmus_last_error());
        if (bad_status) break;
    }
    CHECK(refused > 0, "no corruption was refused");
    memcpy(c.state, snap, (size_t)sb);
    gfree(snap);
    cache_close(&c);
}

/* attention of `rows` causal query rows of one sequence; out [rows, q_heads * d] */
static void run_prefill(cache *c, int32_t seq, int32_t rows, const float *q, float *out, float softcap) {
    const int64_t w = (int64_t)c->cfg.kv_heads * c->cfg.head_dim;
    isthmus_attention_args a = {.kv = c->state, .layer = 0, .n_seqs = 1, .seqs = &seq, .q_lens = &rows,
                                .q_heads = c->cfg.kv_heads, .q = q, .ldq = w, .out = out, .ldo = w, .scale = 0.25f,
                                .softcap = softcap};
    CHECK_OK(isthmus_attention(&a));
}

/* Stores `value` where the pool holds `sentinel` (both exact in f32, f16 and bf16), in the cache's dtype:
 * kv_write refuses NaN / inf, so this is how a cache whose memory was written by other means is made.
 * Returns how many stored copies were replaced (the sentinel is written once). */
static uint16_t to_half(float f, int bf16) {
    uint32_t b;
    memcpy(&b, &f, 4);
    if (bf16) return (uint16_t)(isnan(f) ? 0x7FC0 : b >> 16); /* exact for the values used here */
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
    if (isnan(f)) return 0x7E00;
    if (isinf(f)) return sign | 0x7C00;
    return sign | (uint16_t)((((b >> 23) & 255) - 127 + 15) << 10) | (uint16_t)((b >> 13) & 0x3FF);
}
static int poke_pool(cache *c, float sentinel, float value) {
    int64_t sb = 0, pb = 0;
    isthmus_kv_sizes(&c->cfg, &sb, &pb);
    int hits = 0;
    if (c->cfg.dtype == ISTHMUS_KV_F32) {
        float *p = c->pool;
        for (int64_t i = 0; i < pb / 4; i++)
            if (p[i] == sentinel) p[i] = value, hits++;
    } else {
        int bf = c->cfg.dtype == ISTHMUS_KV_BF16;
        uint16_t *p = c->pool, s = to_half(sentinel, bf), v = to_half(value, bf);
        for (int64_t i = 0; i < pb / 2; i++)
            if (p[i] == s) p[i] = v, hits++;
    }
    return hits;
}

/* Should a cache hold NaN / inf anyway (kv_write refuses them; see poke_pool): a key a row does not see
 * never reaches it, even with NaN / inf in its V (the SIMD P.V ran over whole groups: 0 x inf = NaN), and
 * a NaN logit makes its row NaN (the SIMD exp and softcap turned it into 0 / a finite value), for every
 * ISA variant, dtype and block size. */
static void nonfinite_rule(void) {
    static const int dts[] = {ISTHMUS_KV_F32, ISTHMUS_KV_F16, ISTHMUS_KV_BF16};
    static const int bss[] = {4, 16};
    for (int di = 0; di < 3; di++)
        for (int bi = 0; bi < 2; bi++)
            for (int isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
                isthmus_set_isa_cap(isa);
                uint64_t rng = t_seed + (uint64_t)(di * 7 + bi);
                cache c;
                const int n = 20, d = 16;
                CHECK(cache_open(&c, config(1, 1, d, bss[bi], dts[di], 8, 1, 32)), "open");
                int32_t s;
                CHECK_OK(isthmus_kv_seq_create(c.state, &s));
                CHECK_OK(isthmus_kv_seq_extend(c.state, s, n));
                float *k = rand_f32(&rng, n * d, -1, 1), *v = rand_f32(&rng, n * d, -1, 1);
                float *q = rand_f32(&rng, n * d, -1, 1), *o1 = galloc(n * d * 4), *o2 = galloc(n * d * 4);
                int32_t nn = n;
                isthmus_kv_write_args w = {.kv = c.state, .layer = 0, .n_seqs = 1, .seqs = &s, .n_tokens = &nn,
                                           .k = k, .ldk = d, .v = v, .ldv = d};
                CHECK_OK(isthmus_kv_write(&w));
                run_prefill(&c, s, n, q, o1, 0.0f);
                /* the last key's V becomes inf / NaN: rows 0..n-2 do not see it */
                v[(n - 1) * d + 3] = INFINITY;
                CHECK_FAILS(isthmus_kv_write(&w), ISTHMUS_ERR_INVALID_ARGUMENT);
                v[(n - 1) * d + 3] = 1152.0f;
                v[(n - 1) * d + 5] = 1280.0f;
                CHECK_OK(isthmus_kv_write(&w));
                CHECK(poke_pool(&c, 1152.0f, INFINITY) == 1 && poke_pool(&c, 1280.0f, NAN) == 1, "poke V");
                run_prefill(&c, s, n, q, o2, 0.0f);
                /* finite and equal up to rounding: the chunk then runs the scalar visible-keys P.V, whose
                 * sums may round differently from the SIMD one (bit-equal natively, not under SIMDe) */
                int same = 1;
                for (int64_t i = 0; i < (int64_t)(n - 1) * d; i++)
                    same &= isfinite(o2[i]) && fabsf(o2[i] - o1[i]) <= 1e-6f * (1.0f + fabsf(o1[i]));
                CHECK(same, "dtype %d block %d: a masked key's non-finite V changed the rows that do not see it",
                      dts[di], bss[bi]);
                CHECK(isnan(o2[(n - 1) * d + 5]), "the row that sees the NaN V is not NaN there");
                /* a NaN in key 2: every row from 2 on is NaN everywhere, with and without softcap */
                v[(n - 1) * d + 3] = v[(n - 1) * d + 5] = 0.5f;
                k[2 * d + 7] = 1152.0f;
                CHECK_OK(isthmus_kv_write(&w));
                CHECK(poke_pool(&c, 1152.0f, NAN) == 1, "poke K");
                for (int sc = 0; sc < 2; sc++) {
                    run_prefill(&c, s, n, q, o2, sc ? 5.0f : 0.0f);
                    int nan_rows = 0, finite_rows = 0;
                    for (int r = 0; r < n; r++) {
                        int all_nan = 1, all_finite = 1;
                        for (int i = 0; i < d; i++) all_nan &= isnan(o2[r * d + i]) != 0, all_finite &= isfinite(o2[r * d + i]) != 0;
                        nan_rows += r >= 2 && all_nan;
                        finite_rows += r < 2 && all_finite;
                    }
                    CHECK(nan_rows == n - 2 && finite_rows == 2,
                          "dtype %d block %d softcap %d: a NaN logit gave %d NaN rows of %d, %d finite of 2", dts[di],
                          bss[bi], sc, nan_rows, n - 2, finite_rows);
                }
                gfree(k), gfree(v), gfree(q), gfree(o1), gfree(o2);
                cache_close(&c);
            }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
}


const test_case attention_tests[] = {
    {"attention", "storage_round_trip", storage_round_trip},
    {"attention", "rope_reference", rope_reference},
    {"attention", "rope_fused_matches", rope_fused_matches},
    {"attention", "shadow_model", shadow_model},
    {"attention", "bad_arguments", bad_arguments},
    {"attention", "sweep_dtypes_blocks", sweep_dtypes_blocks},
    {"attention", "sweep_heads_dims", sweep_heads_dims},
    {"attention", "boundaries", boundaries},
    {"attention", "softcap_window_peaky", softcap_window_peaky},
    {"attention", "fork_attention", fork_attention},
    {"attention", "thread_count_invariance", thread_count_invariance},
    {"attention", "long_contexts", long_contexts},
    {"attention", "tree_attention", tree_attention},
    {"attention", "tree_chain_is_causal", tree_chain_is_causal},
    {"attention", "write_positions", write_positions},
    {"attention", "compact_model", compact_model},
    {"attention", "compact_then_attend", compact_then_attend},
    {"attention", "tree_compact_bad_arguments", tree_compact_bad_arguments},
    {"attention", "corrupted_state", corrupted_state},
    {"attention", "nonfinite_rule", nonfinite_rule},
    {NULL, NULL, NULL},
};
