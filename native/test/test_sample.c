/* isthmus_sample and isthmus_philox_uniform: Philox known answers, every filter against a double
 * reference (kept sets exact, probabilities within SAMPLE_RTOL), bit-identity over ISA variants and
 * thread counts, chi-square of many draws (and its power), bad arguments. */
#include "harness.h"
#include "stat.h"
#include "../src/speculative/philox.h"

#include <math.h>

#define SAMPLE_RTOL 2e-5  /* |p - p_ref| <= SAMPLE_RTOL * p_ref + 1e-12: exp ~1 ulp, float chunk sums */

static void t_philox_kat(void) {
    static const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                       {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                       {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
    static const uint32_t key[3][2] = {{0, 0}, {0xffffffffu, 0xffffffffu}, {0xa4093822u, 0x299f31d0u}};
    static const uint32_t want[3][4] = {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
                                        {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
                                        {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
    for (int v = 0; v < 3; v++) {
        uint32_t out[4];
        isthmus__philox4x32_10(ctr[v], key[v], out);
        for (int i = 0; i < 4; i++)
            CHECK(out[i] == want[v][i], "philox vector %d word %d: %08x, want %08x", v, i, out[i], want[v][i]);
    }
    /* the public uniform is the documented function of the counter (stream lo, hi, draw, 0) and key */
    uint64_t s = t_seed;
    for (int i = 0; i < 1000; i++) {
        uint64_t seed = rng_next(&s), stream = rng_next(&s);
        uint32_t draw = (uint32_t)rng_next(&s);
        uint32_t c[4] = {(uint32_t)stream, (uint32_t)(stream >> 32), draw, 0}, k[2] = {(uint32_t)seed,
                                                                                     (uint32_t)(seed >> 32)};
        uint32_t o[4];
        isthmus__philox4x32_10(c, k, o);
        double want_u = (double)(((uint64_t)o[0] << 21) ^ (o[1] >> 11)) * 0x1.0p-53;
        double u = isthmus_philox_uniform(seed, stream, draw);
        CHECK(u == want_u && u >= 0.0 && u < 1.0, "uniform %d: %.17g, want %.17g", i, u, want_u);
    }
    CHECK(isthmus_philox_uniform(0, 0, 0) == (double)(((uint64_t)0x6627e8d5u << 21) ^ (0xe169c58du >> 11)) * 0x1.0p-53,
          "uniform of the zero vector");
}

/* ---------------------------------------------------------------- double reference */

typedef struct ref_out {
    double *p;       /* [n] */
    char *kept;      /* [n] */
    int ambiguous;   /* a kept-set decision within rounding of its threshold: the set is not compared */
    int64_t argmax;
} ref_out;

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

static void ref_dist(const float *x0, int64_t n, const isthmus_sampling_params *pr, const int32_t *hist, int64_t nh,
                     ref_out *o) {
    float *x = malloc(sizeof(float) * n);
    double *z = malloc(sizeof(double) * n), *srt = malloc(sizeof(double) * n);
    memcpy(x, x0, sizeof(float) * n);
    for (int64_t h = 0; h < nh; h++) {
        float v = x0[hist[h]];
        x[hist[h]] = v > 0.0f ? v / pr->repetition_penalty : v * pr->repetition_penalty;
    }
    int64_t am = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[am]) am = i;
    o->argmax = am;
    o->ambiguous = 0;
    if (pr->temperature == 0.0f) {
        for (int64_t i = 0; i < n; i++) o->p[i] = i == am, o->kept[i] = i == am;
        goto done;
    }
    double m = x[am];
    for (int64_t i = 0; i < n; i++) {
        z[i] = ((double)x[i] - m) / pr->temperature;
        o->kept[i] = x[i] > -INFINITY;
    }
    if (pr->top_k > 0 && pr->top_k < n) {
        for (int64_t i = 0; i < n; i++) srt[i] = x[i];
        qsort(srt, n, sizeof(double), cmp_desc);
        double kth = srt[pr->top_k - 1];
        for (int64_t i = 0; i < n; i++) o->kept[i] &= (double)x[i] >= kth;
    }
    if (pr->top_p < 1.0f) {
        double s = 0.0;
        int64_t c = 0;
        for (int64_t i = 0; i < n; i++)
            if (o->kept[i]) s += exp(z[i]), srt[c++] = exp(z[i]);
        qsort(srt, c, sizeof(double), cmp_desc);
        double cum = 0.0, v = 0.0;
        for (int64_t i = 0; i < c; i++) {
            double prev = cum;
            cum += srt[i] / s;
            if (cum >= pr->top_p) {
                v = srt[i];
                if (fabs(cum - pr->top_p) < 1e-5 || fabs(prev - pr->top_p) < 1e-5) o->ambiguous = 1;
                /* a different value within rounding of v would be a tie for the kernel's float weights */
                if ((i > 0 && srt[i - 1] != v && srt[i - 1] < v * (1 + 1e-5)) ||
                    (i + 1 < c && srt[i + 1] != v && srt[i + 1] > v * (1 - 1e-5)))
                    o->ambiguous = 1;
                break;
            }
        }
        for (int64_t i = 0; i < n; i++) o->kept[i] &= exp(z[i]) >= v;
    }
    if (pr->min_p > 0.0f) {
        for (int64_t i = 0; i < n; i++) {
            double e = exp(z[i]);
            if (o->kept[i] && fabs(e - pr->min_p) < 1e-5 * pr->min_p) o->ambiguous = 1;
            o->kept[i] &= e >= pr->min_p;
        }
    }
    {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++)
            if (o->kept[i]) s += exp(z[i]);
        for (int64_t i = 0; i < n; i++) o->p[i] = o->kept[i] ? exp(z[i]) / s : 0.0;
    }
done:
    free(x), free(z), free(srt);
}

/* Logits like a model's: ~N(0, 3^2), a grid of ties, a few -inf. */
static void gen_logits(float *x, int64_t n, uint64_t *s) {
    for (int64_t i = 0; i < n; i++) {
        double g = 0.0;
        for (int j = 0; j < 4; j++) g += rng_unit(s) - 0.5;
        x[i] = (float)(g * 3.0 * 1.7);
        if (i % 7 == 3) x[i] = roundf(x[i] * 4.0f) / 4.0f;
        if (n > 7 && rng_next(s) % 97 == 0) x[i] = -INFINITY;
    }
    if (n > 2) x[rng_int(s, 0, n - 1)] = 9.5f; /* keep one finite maximum, twice for a tie */
    if (n > 3) x[rng_int(s, 0, n - 1)] = 9.5f;
}

static isthmus_sampling_params P(float t, int32_t k, float p, float minp, float pen) {
    isthmus_sampling_params r = {.temperature = t, .top_k = k, .top_p = p, .min_p = minp, .repetition_penalty = pen};
    return r;
}

/* Runs isthmus_sample on rows of x under the current ISA / thread settings. */
static isthmus_status run_sample(const float *x, int64_t rows, int64_t n, const isthmus_sampling_params *pr,
                                 int per_row, const int32_t *hist, const int64_t *hoff, uint64_t seed,
                                 const uint64_t *streams, int32_t *tok, float *probs) {
    isthmus_sample_args a = {.rows = rows, .vocab = n, .logits = x, .ld = n, .params = pr, .params_per_row = per_row,
                             .history = hist, .history_offsets = hoff, .seed = seed, .streams = streams,
                             .tokens = tok, .probs = probs, .ldp = n};
    return isthmus_sample(&a);
}

static void t_vs_reference(void) {
    static const int64_t sizes[] = {1, 2, 7, 100, 32000, 131072 + 17, 262144};
    const int nparams = 10;
    uint64_t s = t_seed;
    int ambiguous = 0, compared = 0;
    int32_t threads0 = isthmus_get_num_threads();
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int64_t n = sizes[si], rows = 3;
        float *x = galloc(sizeof(float) * rows * n);
        for (int64_t r = 0; r < rows; r++) gen_logits(x + r * n, n, &s);
        int32_t hist[8];
        int64_t hoff[4] = {0, 3, 3, 8};
        for (int i = 0; i < 8; i++) hist[i] = (int32_t)rng_int(&s, 0, n - 1);
        hist[1] = hist[0]; /* a repeated history token is penalized once */
        uint64_t streams[3] = {rng_next(&s), rng_next(&s), 77};
        float *pb = galloc(sizeof(float) * rows * n), *pb2 = galloc(sizeof(float) * rows * n);
        double *rp = malloc(sizeof(double) * n);
        char *rk = malloc(n);
        for (int pi = 0; pi < nparams; pi++) {
            isthmus_sampling_params pr;
            int use_hist = 0;
            switch (pi) {
            case 0: pr = P(1.0f, 0, 1.0f, 0.0f, 1.0f); break;
            case 1: pr = P(0.7f, 1, 1.0f, 0.0f, 1.0f); break;
            case 2: pr = P(0.8f, 40, 1.0f, 0.0f, 1.0f); break;
            case 3: pr = P(1.0f, 0, 0.9f, 0.0f, 1.0f); break;
            case 4: pr = P(1.5f, 0, 0.5f, 0.0f, 1.0f); break;
            case 5: pr = P(1.0f, 0, 1.0f, 0.05f, 1.0f); break;
            case 6: pr = P(0.9f, 100, 0.95f, 0.01f, 1.0f); break;
            case 7: pr = P(0.0f, 0, 1.0f, 0.0f, 1.3f); use_hist = 1; break;
            case 8: pr = P(1.2f, 1000, 0.8f, 0.0f, 1.3f); use_hist = 1; break;
            default: pr = P(2.0f, (int32_t)n, 1.0f, 0.0f, 1.0f); break;
            }
            int32_t tok0[3], tok[3];
            /* ref variant first: the others must match it bit for bit */
            for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
                isthmus_set_isa_cap(isa);
                float *dst = isa == ISTHMUS_ISA_REF ? pb : pb2;
                int32_t *tk = isa == ISTHMUS_ISA_REF ? tok0 : tok;
                CHECK_OK(run_sample(x, rows, n, &pr, 0, use_hist ? hist : NULL, use_hist ? hoff : NULL, 42, streams,
                                    tk, dst));
                if (isa != ISTHMUS_ISA_REF) {
                    CHECK(memcmp(tok, tok0, sizeof tok) == 0, "n %lld params %d: tokens differ from ref", (long long)n, pi);
                    CHECK(memcmp(pb, pb2, sizeof(float) * rows * n) == 0, "n %lld params %d: probs differ from ref",
                          (long long)n, pi);
                }
                /* no probs: the same tokens (the chunk walked is recomputed) */
                int32_t tk2[3];
                CHECK_OK(run_sample(x, rows, n, &pr, 0, use_hist ? hist : NULL, use_hist ? hoff : NULL, 42, streams,
                                    tk2, NULL));
                CHECK(memcmp(tk2, tok0, sizeof tk2) == 0, "n %lld params %d isa %d: tokens without probs differ",
                      (long long)n, pi, isa);
            }
            if (n >= 32000 && pi % 3 == 0) { /* thread counts */
                static const int32_t th[3] = {1, 2, 7};
                for (int t = 0; t < 3; t++) {
                    isthmus_set_num_threads(th[t]);
                    CHECK_OK(run_sample(x, rows, n, &pr, 0, use_hist ? hist : NULL, use_hist ? hoff : NULL, 42,
                                        streams, tok, pb2));
                    CHECK(memcmp(tok, tok0, sizeof tok) == 0 && memcmp(pb, pb2, sizeof(float) * rows * n) == 0,
                          "n %lld params %d: %d threads differ", (long long)n, pi, th[t]);
                }
                isthmus_set_num_threads(threads0);
            }
            for (int64_t r = 0; r < rows; r++) {
                const float *lp = pb + r * n;
                ref_out o = {.p = rp, .kept = rk};
                ref_dist(x + r * n, n, &pr, use_hist ? hist + hoff[r] : NULL, use_hist ? hoff[r + 1] - hoff[r] : 0, &o);
                CHECK(tok0[r] >= 0 && tok0[r] < n && lp[tok0[r]] > 0.0f, "n %lld params %d row %lld: token %d has p %g",
                      (long long)n, pi, (long long)r, tok0[r], tok0[r] >= 0 && tok0[r] < n ? lp[tok0[r]] : -1.0);
                if (pr.temperature == 0.0f)
                    CHECK(tok0[r] == o.argmax, "greedy row %lld: %d, want %lld", (long long)r, tok0[r], (long long)o.argmax);
                double m = -INFINITY;
                for (int64_t i = 0; i < n; i++) m = fmax(m, x[r * n + i]);
                if (o.ambiguous) {
                    /* a threshold decision within rounding: the kept set must still be every token above
                     * some logit (all filters are thresholds on a monotone function of the logit), and the
                     * probabilities softmax over that set */
                    ambiguous++;
                    if (use_hist) continue; /* penalized logits: the order is not that of x */
                    double kmin = INFINITY, rmax = -INFINITY, s2 = 0.0;
                    for (int64_t i = 0; i < n; i++) {
                        double z = ((double)x[r * n + i] - m) / pr.temperature;
                        if (z < -86.0) continue;
                        if (lp[i] > 0.0f) kmin = fmin(kmin, x[r * n + i]), s2 += exp(z);
                        else rmax = fmax(rmax, x[r * n + i]);
                    }
                    CHECK(kmin > rmax, "n %lld params %d row %lld: kept set not a top set (min kept %g, max removed %g)",
                          (long long)n, pi, (long long)r, kmin, rmax);
                    int bad = 0;
                    for (int64_t i = 0; i < n && bad < 5; i++) {
                        if (!(lp[i] > 0.0f)) continue;
                        double want = exp(((double)x[r * n + i] - m) / pr.temperature) / s2;
                        if (fabs(lp[i] - want) > SAMPLE_RTOL * want + 1e-12) {
                            bad++;
                            CHECK(0, "n %lld params %d row %lld (ambiguous set): p[%lld] = %.9g, want %.9g", (long long)n,
                                  pi, (long long)r, (long long)i, (double)lp[i], want);
                        }
                    }
                    continue;
                }
                compared++;
                int bad = 0;
                for (int64_t i = 0; i < n && bad < 5; i++) {
                    /* tokens exp() underflows for (z < -87) are kept with weight 0 by the kernel */
                    int lk = lp[i] > 0.0f, want = rk[i] && rp[i] > 1e-30 * 0 && !(rp[i] < 1e-37);
                    if (lk != want && !(rk[i] && rp[i] < 1e-30)) {
                        bad++;
                        CHECK(0, "n %lld params %d row %lld: token %lld kept %d, want %d (x %g, ref p %g)", (long long)n,
                              pi, (long long)r, (long long)i, lk, want, (double)x[r * n + i], rp[i]);
                    }
                    if (fabs(lp[i] - rp[i]) > SAMPLE_RTOL * rp[i] + 1e-12 && !(rp[i] < 1e-30)) {
                        bad++;
                        CHECK(0, "n %lld params %d row %lld: p[%lld] = %.9g, want %.9g", (long long)n, pi, (long long)r,
                              (long long)i, (double)lp[i], rp[i]);
                    }
                }
                (void)m;
            }
        }
        free(rp), free(rk);
        CHECK(gcheck(x) && gcheck(pb) && gcheck(pb2), "guard bytes");
        gfree(x), gfree(pb), gfree(pb2);
    }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
    printf("       sample vs reference: %d rows with kept sets compared exactly; %d with a threshold within rounding,\n"
           "       checked as a top set with softmax probabilities over it\n", compared, ambiguous);
    CHECK(ambiguous * 10 <= compared, "too many ambiguous cases (%d of %d)", ambiguous, compared);
}

/* Kept sets where ties decide: top-k ties at the k-th, top-p ties at the last kept, -inf logits, greedy ties. */
static void t_ties(void) {
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        uint64_t st = 5;
        int32_t tok;
        float pb[40];
        float x1[10] = {5, 4, 4, 4, 3, 2, 1, 0, -1, -2};
        isthmus_sampling_params pr = P(1.0f, 2, 1.0f, 0.0f, 1.0f);
        CHECK_OK(run_sample(x1, 1, 10, &pr, 0, NULL, NULL, 1, &st, &tok, pb));
        int kept = 0;
        for (int i = 0; i < 10; i++) kept += pb[i] > 0.0f;
        CHECK(kept == 4 && pb[0] > 0 && pb[3] > 0 && pb[4] == 0.0f, "top-k 2 with a tie at the 2nd keeps 4, got %d", kept);
        /* top-p: probabilities 0.4, 0.2, 0.2, 0.2 */
        float x2[4] = {logf(0.4f), logf(0.2f), logf(0.2f), logf(0.2f)};
        pr = P(1.0f, 0, 0.5f, 0.0f, 1.0f);
        CHECK_OK(run_sample(x2, 1, 4, &pr, 0, NULL, NULL, 1, &st, &tok, pb));
        CHECK(pb[0] > 0 && pb[1] > 0 && pb[2] > 0 && pb[3] > 0, "top-p 0.5 keeps the tied 0.2s: %g %g %g %g", pb[0],
              pb[1], pb[2], pb[3]);
        pr = P(1.0f, 0, 0.3f, 0.0f, 1.0f);
        CHECK_OK(run_sample(x2, 1, 4, &pr, 0, NULL, NULL, 1, &st, &tok, pb));
        CHECK(pb[0] == 1.0f && pb[1] == 0 && tok == 0, "top-p 0.3 keeps one: %g %g", pb[0], pb[1]);
        /* min-p: 0.2 / 0.4 = 0.5 */
        pr = P(1.0f, 0, 1.0f, 0.6f, 1.0f);
        CHECK_OK(run_sample(x2, 1, 4, &pr, 0, NULL, NULL, 1, &st, &tok, pb));
        CHECK(pb[0] == 1.0f && pb[2] == 0, "min-p 0.6 keeps one");
        pr = P(1.0f, 0, 1.0f, 0.45f, 1.0f);
        CHECK_OK(run_sample(x2, 1, 4, &pr, 0, NULL, NULL, 1, &st, &tok, pb));
        CHECK(pb[3] > 0, "min-p 0.45 keeps all");
        /* -inf logits: never chosen, probability 0 */
        float x3[5] = {-INFINITY, 1.0f, -INFINITY, 2.0f, -INFINITY};
        pr = P(1.0f, 0, 1.0f, 0.0f, 1.0f);
        for (uint64_t k = 0; k < 200; k++) {
            CHECK_OK(run_sample(x3, 1, 5, &pr, 0, NULL, NULL, 9, &k, &tok, pb));
            CHECK(tok == 1 || tok == 3, "-inf chosen: %d", tok);
        }
        CHECK(pb[0] == 0 && pb[2] == 0 && pb[4] == 0 && fabsf(pb[1] + pb[3] - 1.0f) < 1e-6f, "-inf probs");
        pr = P(1.0f, 4, 1.0f, 0.0f, 1.0f); /* top-k beyond the finite ones */
        CHECK_OK(run_sample(x3, 1, 5, &pr, 0, NULL, NULL, 9, &st, &tok, pb));
        CHECK(tok == 1 || tok == 3, "-inf chosen under top-k: %d", tok);
        /* greedy ties to the lowest id; -0 and +0 tie */
        float x4[6] = {1, 3, 2, 3, 3, -1};
        pr = P(0.0f, 0, 1.0f, 0.0f, 1.0f);
        CHECK_OK(run_sample(x4, 1, 6, &pr, 0, NULL, NULL, 9, &st, &tok, pb));
        CHECK(tok == 1 && pb[1] == 1.0f && pb[3] == 0.0f, "greedy tie: %d", tok);
        float x5[3] = {-0.0f, 0.0f, -1.0f};
        CHECK_OK(run_sample(x5, 1, 3, &pr, 0, NULL, NULL, 9, &st, &tok, pb));
        CHECK(tok == 0, "greedy -0 / +0 tie: %d", tok);
        float x6[33];
        for (int i = 0; i < 33; i++) x6[i] = 1.0f;
        CHECK_OK(run_sample(x6, 1, 33, &pr, 0, NULL, NULL, 9, &st, &tok, pb));
        CHECK(tok == 0, "greedy all equal: %d", tok);
        /* repetition penalty: 2 > 1 after / 2 -> 1 < 1.5 */
        float x7[3] = {2.0f, 1.5f, -1.0f};
        int32_t h[3] = {0, 0, 2};
        int64_t ho[2] = {0, 3};
        pr = P(0.0f, 0, 1.0f, 0.0f, 2.0f);
        CHECK_OK(run_sample(x7, 1, 3, &pr, 0, h, ho, 9, &st, &tok, NULL));
        CHECK(tok == 1, "penalty: %d", tok);
        pr = P(1.0f, 0, 1.0f, 0.0f, 2.0f);
        CHECK_OK(run_sample(x7, 1, 3, &pr, 0, h, ho, 9, &st, &tok, pb));
        double e0 = exp(1.0 - 1.5), e1 = 1.0, e2 = exp(-2.0 - 1.5), s = e0 + e1 + e2;
        CHECK(fabs(pb[0] - e0 / s) < 1e-6 && fabs(pb[2] - e2 / s) < 1e-6, "penalty probs %g %g", pb[0], pb[2]);
        /* one token */
        float x8 = -3.0f;
        pr = P(0.5f, 1, 0.5f, 0.5f, 1.0f);
        CHECK_OK(run_sample(&x8, 1, 1, &pr, 0, NULL, NULL, 9, &st, &tok, pb));
        CHECK(tok == 0 && pb[0] == 1.0f, "vocab 1");
        /* per-row params */
        float x9[8] = {1, 2, 3, 4, 4, 3, 2, 1};
        isthmus_sampling_params prs[2] = {P(0.0f, 0, 1.0f, 0.0f, 1.0f), P(1.0f, 1, 1.0f, 0.0f, 1.0f)};
        int32_t tk[2];
        uint64_t sts[2] = {1, 2};
        CHECK_OK(run_sample(x9, 2, 4, prs, 1, NULL, NULL, 9, sts, tk, pb));
        CHECK(tk[0] == 3 && tk[1] == 0, "per-row params: %d %d", tk[0], tk[1]);
    }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
}

/* Draws `draws` tokens (stream base + i) from one row; counts them. */
static void draw_counts(const float *row, int64_t n, const isthmus_sampling_params *pr, int64_t draws, uint64_t base,
                        int64_t *counts, float *probs_out) {
    const int64_t batch = 4096;
    float *x = malloc(sizeof(float) * n * batch);
    int32_t *tok = malloc(sizeof(int32_t) * batch);
    uint64_t *st = malloc(sizeof(uint64_t) * batch);
    for (int64_t r = 0; r < batch; r++) memcpy(x + r * n, row, sizeof(float) * n);
    memset(counts, 0, sizeof(int64_t) * n);
    for (int64_t d0 = 0; d0 < draws; d0 += batch) {
        int64_t b = draws - d0 < batch ? draws - d0 : batch;
        for (int64_t r = 0; r < b; r++) st[r] = base + (uint64_t)(d0 + r);
        CHECK_OK(run_sample(x, b, n, pr, 0, NULL, NULL, 1234567, st, tok, NULL));
        (void)probs_out;
        for (int64_t r = 0; r < b; r++) counts[tok[r]]++;
    }
    free(x), free(tok), free(st);
}

static void t_chi2(void) {
    struct { int64_t n; isthmus_sampling_params pr, alt; int64_t draws; const char *what; } cases[] = {
        {10, P(0.8f, 7, 1.0f, 0.0f, 1.0f), P(0.9f, 7, 1.0f, 0.0f, 1.0f), 200000, "V=10 T=0.8 top-k 7"},
        {1500, P(1.0f, 0, 1.0f, 0.0f, 1.0f), P(1.15f, 0, 1.0f, 0.0f, 1.0f), 300000, "V=1500 T=1 (3 chunks)"},
        {64, P(1.0f, 40, 0.9f, 0.02f, 1.0f), P(1.0f, 40, 0.95f, 0.02f, 1.0f), 200000, "V=64 top-k 40 top-p 0.9 min-p 0.02"},
    };
    uint64_t s = t_seed;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t n = cases[c].n;
        float *row = malloc(sizeof(float) * n), *pb = malloc(sizeof(float) * n);
        for (int64_t i = 0; i < n; i++) row[i] = n == 1500 ? rng_f32(&s, -1.0f, 1.0f) : rng_f32(&s, -2.5f, 2.5f);
        int64_t *counts = malloc(sizeof(int64_t) * n);
        double *ep = malloc(sizeof(double) * n);
        char *kept = malloc(n);
        draw_counts(row, n, &cases[c].pr, cases[c].draws, 1000000 * (c + 1), counts, pb);
        ref_out o = {.p = ep, .kept = kept};
        ref_dist(row, n, &cases[c].pr, NULL, 0, &o);
        double chi2;
        int64_t dof;
        double p = stat_chi2(counts, ep, n, &chi2, &dof);
        printf("       chi2 %-40s draws %lld: chi2 %.1f dof %lld p %.3g\n", cases[c].what, (long long)cases[c].draws, chi2,
               (long long)dof, p);
        CHECK(p >= STAT_P_MIN, "%s: p = %g < %g", cases[c].what, p, STAT_P_MIN);
        ref_dist(row, n, &cases[c].alt, NULL, 0, &o);
        double pa = stat_chi2(counts, ep, n, &chi2, &dof);
        printf("       power: same draws against the altered distribution: chi2 %.1f dof %lld p %.3g\n", chi2,
               (long long)dof, pa);
        CHECK(pa < STAT_P_MIN, "%s: the test has no power (p = %g against the altered distribution)", cases[c].what, pa);
        free(row), free(pb), free(counts), free(ep), free(kept);
    }
}

static void t_bad_args(void) {
    float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    int32_t tok[3];
    uint64_t st[3] = {1, 2, 3};
    float pb[12];
    isthmus_sampling_params pr = P(1.0f, 0, 1.0f, 0.0f, 1.0f);
    isthmus_sample_args ok = {.rows = 3, .vocab = 4, .logits = x, .ld = 4, .params = &pr, .seed = 1, .streams = st,
                              .tokens = tok, .probs = pb, .ldp = 4};
    isthmus_sample_args a;
    CHECK_OK(isthmus_sample(&ok));
    CHECK_FAILS(isthmus_sample(NULL), ISTHMUS_ERR_INVALID_ARGUMENT);
#define BAD(field_stmt, frag)                                                                                     \
    do {                                                                                                          \
        a = ok;                                                                                                   \
        field_stmt;                                                                                               \
        CHECK_FAILS(isthmus_sample(&a), ISTHMUS_ERR_INVALID_ARGUMENT);                                            \
        CHECK(strstr(isthmus_last_error(), frag) != NULL, "message '%s' lacks '%s'", isthmus_last_error(), frag); \
    } while (0)
    BAD(a.rows = 0, "rows");
    BAD(a.vocab = 0, "vocab");
    BAD(a.vocab = ISTHMUS_MAX_VOCAB + 1, "vocab");
    BAD(a.logits = NULL, "logits");
    BAD(a.ld = 3, "ld");
    BAD((a.rows = (int64_t)1 << 40, a.ld = (int64_t)1 << 20, a.vocab = 4), "overflow");
    BAD(a.params = NULL, "params");
    BAD(a.params_per_row = 2, "params_per_row");
    BAD(a.reserved = 1, "reserved");
    BAD(a.streams = NULL, "streams");
    BAD(a.tokens = NULL, "tokens");
    BAD(a.ldp = 3, "ldp");
    isthmus_sampling_params bp[8] = {P(-1.0f, 0, 1, 0, 1), P(NAN, 0, 1, 0, 1), P(1, -1, 1, 0, 1), P(1, 0, 0.0f, 0, 1),
                                     P(1, 0, 1.5f, 0, 1), P(1, 0, 1, 1.0f, 1), P(1, 0, 1, 0, 0.0f), P(1, 0, 1, 0, INFINITY)};
    static const char *bpf[8] = {"temperature", "temperature", "top_k", "top_p", "top_p", "min_p", "repetition_penalty",
                                 "repetition_penalty"};
    for (int i = 0; i < 8; i++) BAD(a.params = &bp[i], bpf[i]);
    isthmus_sampling_params three[3] = {pr, pr, P(1.0f, 0, 2.0f, 0, 1)};
    BAD((a.params = three, a.params_per_row = 1), "params[2].top_p");
    int32_t h[2] = {1, 4};
    int64_t ho[4] = {0, 1, 2, 2}, hbad[4] = {0, 2, 1, 2}, hbad0[4] = {1, 1, 2, 2};
    BAD((a.history = h, a.history_offsets = ho), "history[1]");
    BAD((a.history = h, a.history_offsets = NULL), "history_offsets");
    int32_t hv[2] = {1, 2};
    BAD((a.history = hv, a.history_offsets = hbad), "non-decreasing");
    BAD((a.history = hv, a.history_offsets = hbad0), "history_offsets[0]");
    float xn[12];
    memcpy(xn, x, sizeof xn);
    xn[6] = NAN;
    BAD(a.logits = xn, "logits[1, 2]");
    xn[6] = INFINITY;
    BAD(a.logits = xn, "logits[1, 2]");
    xn[6] = 6;
    for (int i = 8; i < 12; i++) xn[i] = -INFINITY;
    BAD(a.logits = xn, "row 2");
    /* a penalty that overflows a logit to +inf */
    float xb[4] = {3e38f, 1, 2, 3};
    int32_t hb[1] = {0};
    int64_t hob[2] = {0, 1};
    isthmus_sampling_params pp = P(1, 0, 1, 0, 1e-3f);
    BAD((a.rows = 1, a.logits = xb, a.params = &pp, a.history = hb, a.history_offsets = hob), "penalized logits[0, 0]");
#undef BAD
    /* every variant refuses the same */
    for (int32_t isa = ISTHMUS_ISA_REF; isa <= isthmus_isa_supported(); isa++) {
        isthmus_set_isa_cap(isa);
        xn[8] = 1.0f, xn[5] = NAN;
        a = ok;
        a.logits = xn;
        CHECK_FAILS(isthmus_sample(&a), ISTHMUS_ERR_INVALID_ARGUMENT);
        CHECK(strstr(isthmus_last_error(), "logits[1, 1]"), "isa %d: '%s'", isa, isthmus_last_error());
        xn[5] = 5;
    }
    isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
}

const test_case sample_tests[] = {
    {"sample", "philox_kat", t_philox_kat},
    {"sample", "ties", t_ties},
    {"sample", "vs_reference", t_vs_reference},
    {"sample", "chi2", t_chi2},
    {"sample", "bad_args", t_bad_args},
    {NULL, NULL, NULL},
};
