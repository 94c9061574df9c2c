/*
 * Speculative-decoding family internals: the one exp every variant computes, the chunked sum order,
 * and the row-level helpers shared by isthmus_sample (sample.c) and isthmus_verify (verify.c).
 *
 * Bit-identical by construction (every file of this family is compiled with -ffp-contract=off):
 *  - exp: spec_exp below, the Cephes expf polynomial in Horner form with fmaf; the AVX2 / AVX-512
 *    kernels do the very same operations lane by lane (a vector FMA rounds as fmaf does);
 *  - sums: a row is cut into chunks of SPEC_CHUNK elements; a chunk's sum is 16 interleaved lane
 *    accumulators (lane l adds elements 16 j + l in order of j, in float), then the fixed tree
 *    t[l] = a[l] + a[l + 8], u[l] = t[l] + t[l + 4], v[l] = u[l] + u[l + 2], sum = v[0] + v[1]
 *    (what _mm512 -> 256 -> 128 -> 64 -> 32 halving gives). Totals and CDF walks add chunk sums in
 *    double in chunk order, in shared scalar code;
 *  - everything else (selection, walks) is shared scalar code over those bit-identical values.
 */
#ifndef ISTHMUS_SPEC_H
#define ISTHMUS_SPEC_H

#include "../core/internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SPEC_CHUNK 512
#define SPEC_LANES 16

static inline int64_t spec_nchunks(int64_t n) { return (n + SPEC_CHUNK - 1) / SPEC_CHUNK; }

/* exp(z) for z <= 0 (or -inf): 0 below -87 (where expf is < 1.7e-38); ~1 ulp elsewhere; exactly 1 at 0.
 * k = round(z log2(e)) comes from one fma with the 1.5 * 2^23 shifter (whose low mantissa bits then hold
 * k), r = z - k ln2 in two fmas (Cody-Waite), exp(r) the Cephes degree-7 polynomial in Horner form, times
 * 2^k built in the exponent field. Below -87 the lanes are garbage (NaN for -inf) and replaced by 0. */
#define SPEC_EXP_MIN (-87.0f)
#define SPEC_LOG2E 1.44269504088896341f
#define SPEC_SHIFTER 12582912.0f /* 1.5 * 2^23 */
#define SPEC_SHIFTER_BITS 0x4B400000u
#define SPEC_LN2_HI 0.693359375f
#define SPEC_LN2_LO (-2.12194440e-4f)
#define SPEC_C5 1.9875691500e-4f
#define SPEC_C4 1.3981999507e-3f
#define SPEC_C3 8.3334519073e-3f
#define SPEC_C2 4.1665795894e-2f
#define SPEC_C1 1.6666665459e-1f
#define SPEC_C0 5.0000001201e-1f

static inline float spec_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t spec_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float spec_exp(float z) {
    float kfb = fmaf(z, SPEC_LOG2E, SPEC_SHIFTER);
    float kf = kfb - SPEC_SHIFTER;
    float r = fmaf(kf, -SPEC_LN2_HI, z);
    r = fmaf(kf, -SPEC_LN2_LO, r);
    float p = SPEC_C5;
    p = fmaf(p, r, SPEC_C4);
    p = fmaf(p, r, SPEC_C3);
    p = fmaf(p, r, SPEC_C2);
    p = fmaf(p, r, SPEC_C1);
    p = fmaf(p, r, SPEC_C0);
    float r2 = r * r;
    float y = fmaf(p, r2, r);
    y = y + 1.0f;
    float s = spec_bits_f32((spec_f32_bits(kfb) + (127u - SPEC_SHIFTER_BITS)) << 23);
    float e = y * s;
    return z >= SPEC_EXP_MIN ? e : 0.0f;
}

/* The weight of one logit x (row max m, 1 / temperature inv_t), kept where x >= xmin and e >= emin. */
static inline float spec_weight(float x, float m, float inv_t, float xmin, float emin) {
    float e = spec_exp((x - m) * inv_t);
    return (x >= xmin && e >= emin) ? e : 0.0f;
}

/* The fixed tree over 16 lane accumulators. */
static inline float spec_lane_tree(const float a[SPEC_LANES]) {
    float t[8], u[4], v[2];
    for (int l = 0; l < 8; l++) t[l] = a[l] + a[l + 8];
    for (int l = 0; l < 4; l++) u[l] = t[l] + t[l + 4];
    for (int l = 0; l < 2; l++) v[l] = u[l] + u[l + 2];
    return v[0] + v[1];
}

/* Sum of chunk sums in chunk order (double). */
static inline double spec_total(const float *sums, int64_t nchunks) {
    double s = 0.0;
    for (int64_t c = 0; c < nchunks; c++) s += (double)sums[c];
    return s;
}

/* ------------------------------------------------------------------ row helpers (sample.c) */

/* A row's unnormalized distribution: weights w (n of them: stored in `w`, or NULL when only the chunk
 * sums were formed and a chunk's weights are recomputed from the logits on demand), the chunk sums,
 * and their total. */
typedef struct spec_dist {
    const float *w;        /* weights, or NULL (then recomputed from x with the fields below) */
    const float *sums;     /* [nchunks] */
    double total;
    int64_t n;
    /* logits form, for recomputation */
    const float *x;
    float m, inv_t, xmin, emin;
} spec_dist;

/* Working memory for one row of vocab n (see spec_work_bytes). */
typedef struct spec_work {
    float *buf;            /* [n] weights                                   */
    float *pen;            /* [n] penalized logits                          */
    int32_t *idx;          /* [n] candidate indices                         */
    uint32_t *keys;        /* [n] candidate keys                            */
    float *vals;           /* [n] candidate values                          */
    float *sums;           /* [nchunks]                                     */
    float *tmp;            /* [SPEC_CHUNK]                                  */
} spec_work;

size_t isthmus__spec_work_bytes(int64_t n);
void isthmus__spec_work_carve(void *base, int64_t n, spec_work *w);

/* Checks params (temperature >= 0 finite, top_k >= 0, top_p in (0, 1], min_p in [0, 1), repetition
 * penalty > 0 finite, reserved 0); what names where it came from. */
isthmus_status isthmus__spec_check_params(const char *fn, const char *what, const isthmus_sampling_params *p);

/* Builds the distribution of logits row x (already penalized) under params p (temperature > 0) into d.
 * store: 1 to store the weights in out (n floats; may be w->buf), 0 to keep only chunk sums (d->w NULL).
 * sums: where the chunk sums go. Returns 0, or -1 when the row has every logit -inf. The row must have
 * been checked for NaN / +inf (isthmus__spec_row_max). */
int isthmus__spec_logits_dist(const SAMPLE_kernel *k, const float *x, int64_t n, float m,
                              const isthmus_sampling_params *p, int store, float *out, float *sums,
                              spec_work *w, spec_dist *d);

/* Weight of token t in d (stored or recomputed). */
static inline float spec_dist_weight(const spec_dist *d, int64_t t) {
    if (d->w) return d->w[t];
    return spec_weight(d->x[t], d->m, d->inv_t, d->xmin, d->emin);
}

/* Inverse-CDF draw of u in [0, 1) over d (tokens in id order): the token whose cumulative weight first
 * exceeds u * total; always a token of positive weight. tmp: SPEC_CHUNK floats. */
int64_t isthmus__spec_draw(const SAMPLE_kernel *k, const spec_dist *d, double u, float *tmp);

#endif
