/* isthmus_verify: greedy against the argmax, one-hot targets, invariants on random trees, bit-identity over
 * ISA variants and thread counts, exactness (chi-square of the first two emitted tokens against the target's
 * p(x) p(y | x), chains k = 1..4 and trees in both modes, with power against the draft), bad arguments. */
#include "harness.h"
#include "stat.h"

#include <math.h>

static isthmus_sampling_params SP(float t, int32_t k, float p) {
    isthmus_sampling_params r = {.temperature = t, .top_k = k, .top_p = p, .min_p = 0.0f, .repetition_penalty = 1.0f};
    return r;
}

static int64_t argmax_f(const float *x, int64_t n) {
    int64_t a = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[a]) a = i;
    return a;
}

typedef struct vres { int32_t *acc, *tok, *path; } vres;

static isthmus_status run_verify(int32_t B, int32_t T, int64_t V, const int32_t *parents, int32_t mode, int32_t greedy,
                                 const int32_t *dtok, isthmus_dist draft, isthmus_dist target, uint64_t seed,
                                 const uint64_t *streams, vres r) {
    isthmus_verify_args a = {.batch = B, .nodes = T, .vocab = V, .parents = parents, .tree_mode = mode, .greedy = greedy,
                             .draft_tokens = dtok, .ld_tokens = T, .draft = draft, .target = target, .seed = seed,
                             .streams = streams, .accepted = r.acc, .tokens = r.tok, .ld_out = T + 1, .path = r.path,
                             .ld_path = T};
    return isthmus_verify(&a);
}

static isthmus_dist DL(const float *x, int64_t ld, isthmus_sampling_params p) {
    isthmus_dist d = {.kind = ISTHMUS_DIST_LOGITS, .data = x, .ld = ld, .params = p};
    return d;
}
static isthmus_dist DP(const float *x, int64_t ld) {
    isthmus_dist d = {.kind = ISTHMUS_DIST_PROBS, .data = x, .ld = ld};
    return d;
}

/* Invariants: accepted prefix along the tree, tokens / path -1 after. */
static void check_invariants(int32_t B, int32_t T, int64_t V, const int32_t *parents, const int32_t *dtok, vres r,
                             const char *what) {
    for (int32_t b = 0; b < B; b++) {
        int32_t a = r.acc[b];
        const int32_t *tk = r.tok + b * (T + 1), *pa = r.path + b * T, *dt = dtok + b * T;
        CHECK(a >= 0 && a <= T, "%s b %d: accepted %d", what, b, a);
        if (a < 0 || a > T) continue;
        int32_t prev = -1;
        for (int32_t i = 0; i < a; i++) {
            int32_t j = pa[i];
            CHECK(j >= 0 && j < T && (parents ? parents[j] : j - 1) == prev, "%s b %d: path[%d] = %d not a child of %d", what,
                  b, i, j, prev);
            if (j >= 0 && j < T) CHECK(tk[i] == dt[j], "%s b %d: token %d = %d, draft %d", what, b, i, tk[i], dt[j]);
            prev = j;
        }
        CHECK(tk[a] >= 0 && tk[a] < V, "%s b %d: emitted %d", what, b, tk[a]);
        for (int32_t i = a + 1; i <= T; i++) CHECK(tk[i] == -1, "%s b %d: tokens[%d] = %d after the end", what, b, i, tk[i]);
        for (int32_t i = a; i < T; i++) CHECK(pa[i] == -1, "%s b %d: path[%d] = %d after the end", what, b, i, pa[i]);
    }
}

static vres vres_alloc(int32_t B, int32_t T) {
    vres r = {malloc(sizeof(int32_t) * B), malloc(sizeof(int32_t) * B * (T + 1)), malloc(sizeof(int32_t) * B * T)};
    return r;
}
static void vres_free(vres r) { free(r.acc), free(r.tok), free(r.path); }

static void t_greedy(void) {
    uint64_t s = t_seed;
    const int64_t V = 1000;
    for (int kind = 0; kind < 2; kind++) {
        const int32_t B = 6, T = 4;
        float *tg = malloc(sizeof(float) * B * (T + 1) * V);
        for (int64_t i = 0; i < (int64_t)B * (T + 1) * V; i++) tg[i] = kind ? rng_f32(&s, 0.0f, 1.0f) : rng_f32(&s, -5, 5);
        int32_t dt[6 * 4];
        for (int32_t b = 0; b < B; b++)
            for (int32_t j = 0; j < T; j++) {
                int32_t am = (int32_t)argmax_f(tg + ((int64_t)b * (T + 1) + j) * V, V);
                dt[b * T + j] = j < b ? am : (am + 1) % (int32_t)V; /* sequence b: the first b right */
            }
        vres r = vres_alloc(B, T);
        isthmus_dist tgt = kind ? DP(tg, V) : DL(tg, V, SP(1.0f, 0, 1.0f)), none = {0};
        for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
            isthmus_set_isa_cap(isa);
            CHECK_OK(run_verify(B, T, V, NULL, 0, 1, dt, none, tgt, 0, NULL, r));
            check_invariants(B, T, V, NULL, dt, r, "greedy");
            for (int32_t b = 0; b < B; b++) {
                int32_t a = b < T ? b : T;
                CHECK(r.acc[b] == a, "greedy b %d: accepted %d, want %d", b, r.acc[b], a);
                CHECK(r.tok[b * (T + 1) + a] == argmax_f(tg + ((int64_t)b * (T + 1) + a) * V, V), "greedy b %d: emitted", b);
            }
        }
        /* a tree: root children {0, 1, 2}, node 1 children {3, 4}; accept the one holding the argmax */
        int32_t par[5] = {-1, -1, -1, 1, 1}, d2[5];
        int64_t a0 = argmax_f(tg, V), a2 = argmax_f(tg + 2 * V, V);
        d2[0] = (int32_t)((a0 + 1) % V), d2[1] = (int32_t)a0, d2[2] = (int32_t)a0, d2[3] = (int32_t)((a2 + 3) % V),
        d2[4] = (int32_t)a2;
        CHECK_OK(run_verify(1, 5, V, par, 0, 1, d2, none, tgt, 0, NULL, r));
        check_invariants(1, 5, V, par, d2, r, "greedy tree");
        CHECK(r.acc[0] == 2 && r.path[0] == 1 && r.path[1] == 4 && r.tok[2] == argmax_f(tg + 5 * V, V),
              "greedy tree: accepted %d path %d %d", r.acc[0], r.path[0], r.path[1]);
        vres_free(r);
        free(tg);
    }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
}

/* A one-hot target: whatever the draft, the emitted tokens are the target's. */
static void t_onehot(void) {
    uint64_t s = t_seed + 1;
    const int64_t V = 50;
    const int32_t B = 64, T = 7;
    int32_t par[7] = {-1, -1, -1, 0, 0, 1, 3};
    float *tg = calloc((size_t)B * (T + 1) * V, sizeof(float)), *dr = malloc(sizeof(float) * B * T * V);
    int32_t *tau = malloc(sizeof(int32_t) * B * (T + 1)), *dt = malloc(sizeof(int32_t) * B * T);
    uint64_t *st = malloc(sizeof(uint64_t) * B);
    for (int32_t b = 0; b < B; b++) {
        st[b] = rng_next(&s);
        for (int32_t r = 0; r <= T; r++) {
            tau[b * (T + 1) + r] = (int32_t)rng_int(&s, 0, 3);
            tg[((int64_t)b * (T + 1) + r) * V + tau[b * (T + 1) + r]] = 1.0f;
        }
        for (int64_t i = 0; i < T * V; i++) dr[b * T * V + i] = rng_f32(&s, 0.01f, 1.0f);
        for (int32_t j = 0; j < T; j++) dt[b * T + j] = (int32_t)rng_int(&s, 0, 3);
        for (int32_t j = 1; j < 3; j++) /* distinct siblings for WITHOUT_REPLACEMENT */
            while (dt[b * T + j] == dt[b * T] || (j == 2 && dt[b * T + 2] == dt[b * T + 1])) dt[b * T + j] = (int32_t)rng_int(&s, 0, 5);
        while (dt[b * T + 4] == dt[b * T + 3]) dt[b * T + 4] = (int32_t)rng_int(&s, 0, 5);
    }
    vres r = vres_alloc(B, T);
    for (int mode = 0; mode < 2; mode++) {
        CHECK_OK(run_verify(B, T, V, par, mode, 0, dt, DP(dr, V), DP(tg, V), 99, st, r));
        check_invariants(B, T, V, par, dt, r, "one-hot");
        for (int32_t b = 0; b < B; b++) {
            int32_t cur = -1, depth = 0;
            for (;;) {
                int32_t want = tau[b * (T + 1) + cur + 1], ch = -1;
                for (int32_t j = 0; j < T; j++)
                    if (par[j] == cur && dt[b * T + j] == want) { ch = j; break; }
                if (ch < 0) {
                    CHECK(r.acc[b] == depth && r.tok[b * (T + 1) + depth] == want, "one-hot mode %d b %d: accepted %d (want %d), "
                          "emitted %d (want %d)", mode, b, r.acc[b], depth, r.tok[b * (T + 1) + depth], want);
                    break;
                }
                depth++, cur = ch;
            }
        }
    }
    vres_free(r);
    free(tg), free(dr), free(tau), free(dt), free(st);
}

/* ------------------------------------------------------------------ exactness */

#define EV 8 /* vocabulary of the exactness tests */

/* A distribution over EV tokens that depends on the prefix (a hash of it): the target p (which = 0) or a
 * deliberately bad draft q (which = 1: other logits, sharper). */
static void prefix_dist(int which, const int32_t *prefix, int len, double *out) {
    uint64_t h = 0x1234567ull + (uint64_t)which * 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < len; i++) h = (h ^ (uint64_t)(prefix[i] + 1)) * 0x100000001b3ull + 0x2545F4914F6CDD1Dull;
    double l[EV], m = -1e300, s = 0.0;
    for (int i = 0; i < EV; i++) {
        uint64_t z = h + (uint64_t)i * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 31)) * 0x94d049bb133111ebull;
        z ^= z >> 29;
        l[i] = ((double)(z >> 11) * 0x1.0p-53 * 2.0 - 1.0) * (which ? 2.2 : 1.2);
        m = fmax(m, l[i]);
    }
    for (int i = 0; i < EV; i++) s += (out[i] = exp(l[i] - m));
    for (int i = 0; i < EV; i++) out[i] /= s;
}

/* p truncated to its top k (k >= EV: unchanged). */
static void topk_d(double *p, int k) {
    if (k <= 0 || k >= EV) return;
    double srt[EV];
    memcpy(srt, p, sizeof srt);
    for (int i = 0; i < EV; i++)
        for (int j = i + 1; j < EV; j++)
            if (srt[j] > srt[i]) { double t = srt[i]; srt[i] = srt[j]; srt[j] = t; }
    double s = 0.0;
    for (int i = 0; i < EV; i++) s += (p[i] = p[i] >= srt[k - 1] ? p[i] : 0.0);
    for (int i = 0; i < EV; i++) p[i] /= s;
}

static int32_t draw_d(const double *p, uint64_t *s) {
    double u = rng_unit(s), c = 0.0;
    int32_t last = 0;
    for (int i = 0; i < EV; i++) {
        if (p[i] > 0) last = i;
        c += p[i];
        if (u < c) return i;
    }
    return last;
}

typedef struct xcase {
    const char *what;
    int32_t T;
    const int32_t *parents;  /* NULL: chain */
    int32_t mode;
    int tkind, dkind;        /* ISTHMUS_DIST_* of target and draft */
    int32_t target_topk;     /* with LOGITS target */
} xcase;

static void exactness(const xcase *c, int64_t trials, uint64_t stream0) {
    const int32_t T = c->T, B = 2000;
    float *tg = malloc(sizeof(float) * B * (T + 1) * EV), *dr = malloc(sizeof(float) * B * T * EV);
    int32_t *dt = malloc(sizeof(int32_t) * B * T), *pre = malloc(sizeof(int32_t) * (T + 1) * (T + 1));
    int32_t *plen = malloc(sizeof(int32_t) * (T + 1));
    uint64_t *st = malloc(sizeof(uint64_t) * B);
    int64_t counts[EV * EV] = {0};
    vres r = vres_alloc(B, T);
    uint64_t s = t_seed ^ stream0;
    double p[EV], q[EV];
    for (int64_t t0 = 0; t0 < trials; t0 += B) {
        int32_t nb = trials - t0 < B ? (int32_t)(trials - t0) : B;
        for (int32_t b = 0; b < nb; b++) {
            st[b] = stream0 + (uint64_t)(t0 + b);
            plen[0] = 0; /* prefix of row r: pre[r * (T + 1) ..] */
            for (int32_t rr = 0; rr <= T; rr++) {
                if (rr > 0) { /* node j = rr - 1: its parent's prefix + a draft token drawn from q(. | parent) */
                    int32_t j = rr - 1, pr = c->parents ? c->parents[j] : j - 1;
                    memcpy(pre + rr * (T + 1), pre + (pr + 1) * (T + 1), sizeof(int32_t) * plen[pr + 1]);
                    prefix_dist(1, pre + (pr + 1) * (T + 1), plen[pr + 1], q);
                    if (c->mode == ISTHMUS_TREE_WITHOUT_REPLACEMENT) /* without the earlier siblings */
                        for (int32_t k = 0; k < j; k++)
                            if ((c->parents ? c->parents[k] : k - 1) == pr) q[dt[b * T + k]] = 0.0;
                    double sq = 0.0;
                    for (int i = 0; i < EV; i++) sq += q[i];
                    for (int i = 0; i < EV; i++) q[i] /= sq;
                    dt[b * T + j] = draw_d(q, &s);
                    pre[rr * (T + 1) + plen[pr + 1]] = dt[b * T + j];
                    plen[rr] = plen[pr + 1] + 1;
                }
                prefix_dist(0, pre + rr * (T + 1), plen[rr], p);
                float *trow = tg + ((int64_t)b * (T + 1) + rr) * EV;
                for (int i = 0; i < EV; i++)
                    trow[i] = c->tkind == ISTHMUS_DIST_LOGITS ? (float)log(p[i]) : (float)(p[i] * 2.5); /* unnormalized */
                if (rr < T) {
                    prefix_dist(1, pre + rr * (T + 1), plen[rr], q);
                    float *drow = dr + ((int64_t)b * T + rr) * EV;
                    for (int i = 0; i < EV; i++) drow[i] = c->dkind == ISTHMUS_DIST_LOGITS ? (float)log(q[i]) : (float)(q[i] * 0.7);
                }
            }
        }
        isthmus_dist tgt = c->tkind == ISTHMUS_DIST_LOGITS ? DL(tg, EV, SP(1.0f, c->target_topk, 1.0f)) : DP(tg, EV);
        isthmus_dist drf = c->dkind == ISTHMUS_DIST_LOGITS ? DL(dr, EV, SP(1.0f, 0, 1.0f)) : DP(dr, EV);
        CHECK_OK(run_verify(nb, T, EV, c->parents, c->mode, 0, dt, drf, tgt, 2026, st, r));
        check_invariants(nb, T, EV, c->parents, dt, r, c->what);
        for (int32_t b = 0; b < nb; b++) {
            int32_t x = r.tok[b * (T + 1)], y;
            if (r.acc[b] >= 1) y = r.tok[b * (T + 1) + 1];
            else { /* the next step samples the target after x */
                prefix_dist(0, &x, 1, p);
                topk_d(p, c->target_topk);
                y = draw_d(p, &s);
            }
            if (x >= 0 && x < EV && y >= 0 && y < EV) counts[x * EV + y]++;
        }
    }
    double want[EV * EV], alt[EV * EV], p0[EV], q0[EV];
    prefix_dist(0, NULL, 0, p0);
    topk_d(p0, c->target_topk);
    prefix_dist(1, NULL, 0, q0);
    for (int32_t x = 0; x < EV; x++) {
        prefix_dist(0, &x, 1, p);
        topk_d(p, c->target_topk);
        prefix_dist(1, &x, 1, q);
        for (int y = 0; y < EV; y++) want[x * EV + y] = p0[x] * p[y], alt[x * EV + y] = q0[x] * q[y];
    }
    double chi2, chi2a;
    int64_t dof, dofa;
    double pv = stat_chi2(counts, want, EV * EV, &chi2, &dof), pa = stat_chi2(counts, alt, EV * EV, &chi2a, &dofa);
    printf("       exactness %-34s %lld trials: chi2 %.1f dof %lld p %.3g | vs draft q(x)q(y|x): chi2 %.0f p %.3g\n",
           c->what, (long long)trials, chi2, (long long)dof, pv, chi2a, pa);
    CHECK(pv >= STAT_P_MIN, "%s: emitted (x, y) do not follow p(x) p(y | x): p = %g", c->what, pv);
    CHECK(pa < STAT_P_MIN, "%s: no power against the draft (p = %g)", c->what, pa);
    vres_free(r);
    free(tg), free(dr), free(dt), free(pre), free(plen), free(st);
}

static void t_exactness(void) {
    static const int32_t tree[7] = {-1, -1, -1, 0, 0, 1, 3};
    static const int32_t wide[6] = {-1, -1, -1, -1, 0, 0};
    const xcase cases[] = {
        {"chain k=1 probs/probs", 1, NULL, 0, ISTHMUS_DIST_PROBS, ISTHMUS_DIST_PROBS, 0},
        {"chain k=2 logits(top-k 5)/probs", 2, NULL, 0, ISTHMUS_DIST_LOGITS, ISTHMUS_DIST_PROBS, 5},
        {"chain k=3 logits/logits", 3, NULL, 0, ISTHMUS_DIST_LOGITS, ISTHMUS_DIST_LOGITS, 0},
        {"chain k=4 probs/logits", 4, NULL, 0, ISTHMUS_DIST_PROBS, ISTHMUS_DIST_LOGITS, 0},
        {"tree T=7 with replacement", 7, tree, ISTHMUS_TREE_WITH_REPLACEMENT, ISTHMUS_DIST_PROBS, ISTHMUS_DIST_PROBS, 0},
        {"tree T=7 without replacement", 7, tree, ISTHMUS_TREE_WITHOUT_REPLACEMENT, ISTHMUS_DIST_PROBS, ISTHMUS_DIST_PROBS, 0},
        {"tree T=6 (4 wide) with repl., logits", 6, wide, ISTHMUS_TREE_WITH_REPLACEMENT, ISTHMUS_DIST_LOGITS,
         ISTHMUS_DIST_LOGITS, 0},
        {"tree T=6 (4 wide) without repl., logits", 6, wide, ISTHMUS_TREE_WITHOUT_REPLACEMENT, ISTHMUS_DIST_LOGITS,
         ISTHMUS_DIST_PROBS, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) exactness(&cases[i], 120000, (uint64_t)(i + 1) << 40);
}

/* Large vocabulary: every variant and thread count gives the same outputs; invariants hold. */
static void t_identical(void) {
    uint64_t s = t_seed + 7;
    const int64_t V = 131072;
    const int32_t B = 8;
    int32_t tree[6] = {-1, -1, 0, 0, 1, 2};
    int32_t threads0 = isthmus_get_num_threads();
    for (int shape = 0; shape < 3; shape++) {
        int32_t T = shape == 0 ? 4 : 6;
        const int32_t *par = shape == 0 ? NULL : tree;
        int32_t mode = shape == 2 ? ISTHMUS_TREE_WITHOUT_REPLACEMENT : ISTHMUS_TREE_WITH_REPLACEMENT;
        float *dl = malloc(sizeof(float) * B * (T + 1) * V), *dp = malloc(sizeof(float) * B * T * V);
        float *tl = malloc(sizeof(float) * B * (T + 1) * V);
        for (int64_t i = 0; i < (int64_t)B * (T + 1) * V; i++) {
            dl[i] = rng_f32(&s, -4, 4) + (i % V < 8 ? 14.0f : 0.0f);
            tl[i] = dl[i] + rng_f32(&s, -1.5f, 1.5f);
        }
        /* draft probs and tokens from isthmus_sample (top-k 4 of the peaked head), distinct siblings */
        int32_t *dt = malloc(sizeof(int32_t) * B * T), *tok = malloc(sizeof(int32_t) * B * T);
        uint64_t *st = malloc(sizeof(uint64_t) * B * T);
        for (int32_t i = 0; i < B * T; i++) st[i] = 1000 + i;
        isthmus_sampling_params dpar = SP(1.0f, 16, 1.0f);
        float *drows = malloc(sizeof(float) * B * T * V);
        for (int32_t b = 0; b < B; b++) memcpy(drows + (int64_t)b * T * V, dl + (int64_t)b * (T + 1) * V, sizeof(float) * T * V);
        isthmus_sample_args sa = {.rows = B * T, .vocab = V, .logits = drows, .ld = V, .params = &dpar, .seed = 5,
                                  .streams = st, .tokens = tok, .probs = dp, .ldp = V};
        CHECK_OK(isthmus_sample(&sa));
        for (int32_t b = 0; b < B; b++)
            for (int32_t j = 0; j < T; j++) {
                int32_t pr = par ? par[j] : j - 1;
                dt[b * T + j] = tok[b * T + pr + 1];
                for (int32_t k = 0; k < j; k++) /* siblings distinct */
                    if ((par ? par[k] : k - 1) == pr && dt[b * T + k] == dt[b * T + j]) dt[b * T + j] = (dt[b * T + j] + 1) % 8;
                for (int32_t k = 0; k < j; k++)
                    if ((par ? par[k] : k - 1) == pr && dt[b * T + k] == dt[b * T + j]) dt[b * T + j] = (dt[b * T + j] + 1) % 8;
            }
        uint64_t vs[8];
        for (int32_t b = 0; b < B; b++) vs[b] = 777 + b;
        vres r0 = vres_alloc(B, T), r = vres_alloc(B, T);
        for (int tk = 0; tk < 2; tk++) {
            isthmus_dist tgt = tk ? DL(tl, V, SP(0.9f, 0, 0.95f)) : DL(tl, V, SP(1.0f, 0, 1.0f));
            int first = 1;
            for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
                isthmus_set_isa_cap(isa);
                for (int th = 0; th < (isa == isthmus_isa_supported() ? 3 : 1); th++) {
                    static const int32_t ths[3] = {1, 2, 7};
                    if (isa == isthmus_isa_supported()) isthmus_set_num_threads(ths[th]);
                    vres *o = first ? &r0 : &r;
                    CHECK_OK(run_verify(B, T, V, par, mode, 0, dt, DP(dp, V), tgt, 31, vs, *o));
                    check_invariants(B, T, V, par, dt, *o, "identical");
                    if (!first)
                        CHECK(memcmp(r.acc, r0.acc, sizeof(int32_t) * B) == 0 &&
                                  memcmp(r.tok, r0.tok, sizeof(int32_t) * B * (T + 1)) == 0 &&
                                  memcmp(r.path, r0.path, sizeof(int32_t) * B * T) == 0,
                              "shape %d target %d: isa %d threads %d differ from ref", shape, tk, isa, ths[th]);
                    first = 0;
                }
            }
            isthmus_set_num_threads(threads0);
            int64_t tot = 0;
            for (int32_t b = 0; b < B; b++) tot += r0.acc[b];
            printf("       identical: shape %d target %d: accepted %lld of %d\n", shape, tk, (long long)tot, B * (shape ? 3 : T));
        }
        vres_free(r0), vres_free(r);
        free(dl), free(dp), free(tl), free(dt), free(tok), free(st), free(drows);
    }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
}

static void t_bad_args(void) {
    const int64_t V = 6;
    const int32_t B = 2, T = 3;
    float tg[2 * 4 * 6], dr[2 * 3 * 6];
    for (int i = 0; i < 48; i++) tg[i] = (float)(i % 6) * 0.1f;
    for (int i = 0; i < 36; i++) dr[i] = 1.0f;
    int32_t dt[6] = {0, 1, 2, 3, 4, 5}, acc[2], tok[8], path[6];
    uint64_t st[2] = {1, 2};
    isthmus_verify_args ok = {.batch = B, .nodes = T, .vocab = V, .draft_tokens = dt, .ld_tokens = T, .draft = DP(dr, V),
                              .target = DL(tg, V, SP(1.0f, 0, 1.0f)), .seed = 1, .streams = st, .accepted = acc,
                              .tokens = tok, .ld_out = T + 1, .path = path, .ld_path = T};
    isthmus_verify_args a;
    CHECK_OK(isthmus_verify(&ok));
    CHECK_FAILS(isthmus_verify(NULL), ISTHMUS_ERR_INVALID_ARGUMENT);
#define BAD(stmt, frag)                                                                                           \
    do {                                                                                                          \
        a = ok;                                                                                                   \
        stmt;                                                                                                     \
        CHECK_FAILS(isthmus_verify(&a), ISTHMUS_ERR_INVALID_ARGUMENT);                                            \
        CHECK(strstr(isthmus_last_error(), frag) != NULL, "message '%s' lacks '%s'", isthmus_last_error(), frag); \
    } while (0)
    BAD(a.batch = 0, "batch");
    BAD(a.nodes = 0, "nodes");
    BAD(a.nodes = ISTHMUS_TREE_MAX_NODES + 1, "nodes");
    BAD(a.vocab = 0, "vocab");
    BAD(a.tree_mode = 2, "tree_mode");
    BAD(a.greedy = 2, "greedy");
    int32_t p1[3] = {-1, 1, 0}, p2[3] = {-2, 0, 0}, p3[3] = {-1, -1, -1};
    BAD(a.parents = p1, "parents[1] = 1");
    BAD(a.parents = p2, "parents[0] = -2");
    BAD(a.draft_tokens = NULL, "draft_tokens");
    BAD(a.ld_tokens = 2, "ld_tokens");
    int32_t dbad[6] = {0, 1, 2, 3, 6, 5};
    BAD(a.draft_tokens = dbad, "draft_tokens[1, 1] = 6");
    int32_t dsib[6] = {0, 1, 2, 3, 4, 3};
    BAD((a.parents = p3, a.draft_tokens = dsib, a.tree_mode = ISTHMUS_TREE_WITHOUT_REPLACEMENT), "distinct");
    a = ok, a.parents = p3, a.draft_tokens = dsib;
    CHECK_OK(isthmus_verify(&a)); /* duplicates are fine with replacement */
    BAD(a.target.data = NULL, "target.data");
    BAD(a.target.kind = 3, "target.kind");
    BAD(a.target.ld = 5, "target.ld");
    BAD(a.target.params.top_p = 0.0f, "target.params.top_p");
    BAD(a.target.params.repetition_penalty = 1.1f, "repetition_penalty");
    BAD((a.draft = DL(dr, V, SP(1.0f, 0, 1.0f)), a.draft.params.repetition_penalty = 1.1f), "draft.params.repetition_penalty");
    BAD(a.draft.data = NULL, "draft.data");
    BAD(a.streams = NULL, "streams");
    BAD(a.accepted = NULL, "accepted");
    BAD(a.tokens = NULL, "tokens");
    BAD(a.ld_out = 3, "ld_out");
    BAD(a.ld_path = 2, "ld_path");
    BAD((a.batch = 1 << 30, a.ld_tokens = (int64_t)1 << 40), "overflow");
    /* greedy does not read the draft */
    a = ok, a.greedy = 1, a.draft.data = NULL, a.streams = NULL;
    CHECK_OK(isthmus_verify(&a));
    /* rows that are read are checked */
    float tn[48];
    memcpy(tn, tg, sizeof tn);
    tn[2] = NAN;
    BAD(a.target.data = tn, "target.data[0, 2]");
    tn[2] = INFINITY;
    BAD((a.greedy = 1, a.target.data = tn), "target.data[0, 2]");
    for (int i = 0; i < 6; i++) tn[i] = -INFINITY;
    BAD(a.target.data = tn, "every logit is -inf");
    float dn[36];
    memcpy(dn, dr, sizeof dn);
    dn[3] = -1.0f;
    BAD(a.draft.data = dn, "draft.data[0, 3]");
    dn[3] = NAN;
    BAD(a.draft.data = dn, "draft.data[0, 3]");
    for (int i = 0; i < 6; i++) dn[i] = 0.0f;
    BAD(a.draft.data = dn, "sums to 0");
    float tp[48];
    for (int i = 0; i < 48; i++) tp[i] = 0.1f;
    tp[7] = -0.5f;
    BAD((a.target = DP(tp, V), a.greedy = 1), "target.data[1, 1]"); /* row 0 accepts token 0, then row 1 is read */
#undef BAD
}

const test_case verify_tests[] = {
    {"verify", "greedy", t_greedy},
    {"verify", "onehot", t_onehot},
    {"verify", "identical", t_identical},
    {"verify", "exactness", t_exactness},
    {"verify", "bad_args", t_bad_args},
    {NULL, NULL, NULL},
};
