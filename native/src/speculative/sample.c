/* isthmus_sample and isthmus_philox_uniform: validation, the row pipeline (penalty -> temperature ->
 * top-k -> top-p -> min-p -> inverse CDF) and dispatch. The ISA kernels do the passes over the row; the
 * selections and walks here are shared scalar code over their bit-identical results (spec.h). */
#include "spec.h"
#include "philox.h"

#include <float.h>
#include <stdatomic.h>

double isthmus_philox_uniform(uint64_t seed, uint64_t stream, uint32_t draw) {
    return isthmus__philox_uniform(seed, stream, draw);
}

/* ------------------------------------------------------------------ working memory */

static size_t align64(size_t b) { return (b + 63) & ~(size_t)63; }

size_t isthmus__spec_work_bytes(int64_t n) {
    size_t f = align64((size_t)n * 4);
    return 5 * f + align64((size_t)spec_nchunks(n) * 4) + align64(SPEC_CHUNK * 4);
}

void isthmus__spec_work_carve(void *base, int64_t n, spec_work *w) {
    char *p = base;
    size_t f = align64((size_t)n * 4);
    w->buf = (float *)p, p += f;
    w->pen = (float *)p, p += f;
    w->idx = (int32_t *)p, p += f;
    w->keys = (uint32_t *)p, p += f;
    w->vals = (float *)p, p += f;
    w->sums = (float *)p, p += align64((size_t)spec_nchunks(n) * 4);
    w->tmp = (float *)p;
}

/* ------------------------------------------------------------------ params */

isthmus_status isthmus__spec_check_params(const char *fn, const char *what, const isthmus_sampling_params *p) {
    if (!(p->temperature >= 0.0f && p->temperature < INFINITY))
        return FAIL_ARG("%s: %s.temperature = %g, must be finite and >= 0 (0: greedy)", fn, what,
                        (double)p->temperature);
    if (p->top_k < 0) return FAIL_ARG("%s: %s.top_k = %d, must be >= 0 (0: off)", fn, what, p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return FAIL_ARG("%s: %s.top_p = %g, must be in (0, 1] (1: off)", fn, what, (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p < 1.0f))
        return FAIL_ARG("%s: %s.min_p = %g, must be in [0, 1) (0: off)", fn, what, (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && p->repetition_penalty < INFINITY))
        return FAIL_ARG("%s: %s.repetition_penalty = %g, must be finite and > 0 (1: off)", fn, what,
                        (double)p->repetition_penalty);
    if (p->reserved != 0) return FAIL_ARG("%s: %s.reserved = %d, must be 0", fn, what, p->reserved);
    return ISTHMUS_OK;
}

/* ------------------------------------------------------------------ selection */

/* Order-preserving unsigned key of a float (no NaN): larger float, larger key. */
static inline uint32_t ukey(float f) {
    uint32_t u = spec_f32_bits(f);
    return u & 0x80000000u ? ~u : u ^ 0x80000000u;
}
static inline float unkey(uint32_t k) {
    return spec_bits_f32(k & 0x80000000u ? k ^ 0x80000000u : ~k);
}

/*
 * The largest key v such that the weight of {keys >= v} reaches target: the weight of a key is 1
 * (vals NULL: the k-th largest for target k) or vals[i] (added in double). MSD descent over the offsets
 * key - min(keys), in digits of at most 11 bits from the highest bit of the key range down, each level a
 * histogram over the keys still in the crossing bucket (keys and vals are compacted in place). When
 * rounding leaves no crossing, the smallest digit present is taken.
 */
static uint32_t select_key(uint32_t *keys, float *vals, int64_t n, double target) {
    double hist[2048];
    double acc = 0.0;
    if (n <= 0) return 0;
    uint32_t kmin = keys[0], kmax = keys[0];
    for (int64_t i = 1; i < n; i++) {
        kmin = keys[i] < kmin ? keys[i] : kmin;
        kmax = keys[i] > kmax ? keys[i] : kmax;
    }
    uint32_t range = kmax - kmin, prefix = 0;
    int sh = range ? 32 - __builtin_clz(range) : 0;
    while (sh > 0) {
        int bits = sh < 11 ? sh : 11;
        sh -= bits;
        int nb = 1 << bits;
        uint32_t mask = (uint32_t)(nb - 1);
        memset(hist, 0, sizeof(double) * (size_t)nb);
        if (vals)
            for (int64_t i = 0; i < n; i++) hist[((keys[i] - kmin) >> sh) & mask] += (double)vals[i];
        else
            for (int64_t i = 0; i < n; i++) hist[((keys[i] - kmin) >> sh) & mask] += 1.0;
        int b = -1;
        for (int j = nb - 1; j >= 0; j--) {
            if (acc + hist[j] >= target) { b = j; break; }
            acc += hist[j];
        }
        if (b < 0) { /* no crossing (rounding): the lowest digit present */
            uint32_t lo = 0xFFFFFFFFu;
            for (int64_t i = 0; i < n; i++) {
                uint32_t d = ((keys[i] - kmin) >> sh) & mask;
                if (d < lo) lo = d;
            }
            b = (int)lo;
        }
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if ((((keys[i] - kmin) >> sh) & mask) == (uint32_t)b) {
                keys[m] = keys[i];
                if (vals) vals[m] = vals[i];
                m++;
            }
        n = m;
        prefix |= (uint32_t)b << sh;
    }
    return kmin + prefix;
}

/* Top-k: the k-th largest logit (as a float threshold; ties at it are kept), k < n. A threshold t with
 * k <= #{x >= t} <= cap is found with counting passes (steps down from the max, then bisection), and the
 * k-th is selected among those candidates. */
static float topk_threshold(const SAMPLE_kernel *k, const float *x, int64_t n, float m, int64_t kk,
                            spec_work *w) {
    int64_t cap = 4 * kk > 4096 ? 4 * kk : 4096;
    float hi = m, lo = -INFINITY, t; /* count(hi) < kk or hi = m; count(lo) > cap or lo = -inf */
    int64_t cnt;
    float delta = 4.0f;
    for (;;) {
        t = m - delta;
        if (!(t > -INFINITY) || delta > 1e30f) { t = -INFINITY; cnt = n; break; }
        cnt = k->collect_ge(x, n, t, w->idx, 0);
        if (cnt >= kk) break;
        hi = t;
        delta *= 4.0f;
    }
    while (cnt > cap) { /* too many: bisect between hi (too few) and t (too many) */
        lo = t;
        float mid = lo + (hi - lo) * 0.5f;
        if (!(mid > lo && mid < hi)) break;
        int64_t c = k->collect_ge(x, n, mid, w->idx, 0);
        if (c < kk) hi = mid;
        else t = mid, cnt = c;
        if (c < kk && hi <= lo) break;
    }
    cnt = k->collect_ge(x, n, t, w->idx, n);
    for (int64_t i = 0; i < cnt; i++) w->keys[i] = ukey(x[w->idx[i]]);
    return unkey(select_key(w->keys, NULL, cnt, (double)kk));
}

/* Top-p over stored weights e (total s): the smallest weight kept. The candidates are the weights >= the
 * first of a few thresholds whose mass reaches top_p * s: summed over the collected candidates when they
 * are few, else as chunk sums (into sums) without collecting them. */
static float topp_threshold(const SAMPLE_kernel *k, const float *e, int64_t n, double s, float top_p,
                            float *sums, spec_work *w) {
    static const float ts[6] = {0x1p-4f, 0x1p-8f, 0x1p-12f, 0x1p-16f, 0x1p-24f, 0.0f};
    double target = (double)top_p * s;
    float t = 0.0f;
    int64_t cnt = -1;
    for (int tr = 0; tr < 6; tr++) {
        t = ts[tr];
        double mass = 0.0;
        cnt = k->collect_ge(e, n, t, w->idx, 0);
        if (cnt <= 4096) {
            cnt = k->collect_ge(e, n, t, w->idx, n);
            for (int64_t i = 0; i < cnt; i++) mass += (double)e[w->idx[i]];
        } else {
            k->sum_chunks(e, n, t, NULL, sums);
            mass = spec_total(sums, spec_nchunks(n));
            cnt = -1; /* not collected */
        }
        if (mass >= target) break;
    }
    if (cnt < 0) cnt = k->collect_ge(e, n, t, w->idx, n);
    for (int64_t i = 0; i < cnt; i++) {
        w->vals[i] = e[w->idx[i]];
        w->keys[i] = ukey(w->vals[i]);
    }
    return unkey(select_key(w->keys, w->vals, cnt, target));
}

int isthmus__spec_logits_dist(const SAMPLE_kernel *k, const float *x, int64_t n, float m,
                              const isthmus_sampling_params *p, int store, float *out, float *sums,
                              spec_work *w, spec_dist *d) {
    float inv_t = 1.0f / p->temperature;
    if (!(inv_t <= FLT_MAX)) inv_t = FLT_MAX;
    float xmin = -INFINITY, emin = p->min_p;
    if (p->top_k > 0 && p->top_k < n) xmin = topk_threshold(k, x, n, m, p->top_k, w);
    int64_t nc = spec_nchunks(n);
    d->n = n;
    d->sums = sums;
    d->x = x, d->m = m, d->inv_t = inv_t, d->xmin = xmin;
    if (p->top_p < 1.0f) {
        float *o = store ? out : w->buf;
        k->softmax_chunks(x, n, m, inv_t, xmin, 0.0f, o, sums);
        float ep = topp_threshold(k, o, n, spec_total(sums, nc), p->top_p, sums, w);
        if (ep > emin) emin = ep;
        k->sum_chunks(o, n, emin, o, sums);
        d->w = o;
    } else {
        k->softmax_chunks(x, n, m, inv_t, xmin, emin, store ? out : NULL, sums);
        d->w = store ? out : NULL;
    }
    d->emin = emin;
    d->total = spec_total(sums, nc);
    return d->total > 0.0 ? 0 : -1;
}

int64_t isthmus__spec_draw(const SAMPLE_kernel *k, const spec_dist *d, double u, float *tmp) {
    double target = u * d->total, cum = 0.0;
    int64_t nc = spec_nchunks(d->n), last = -1, c = 0;
    for (; c < nc; c++) {
        double s = (double)d->sums[c];
        if (s > 0.0) {
            last = c;
            if (cum + s > target) break;
        }
        cum += s;
    }
    if (c == nc) { /* rounding: the last chunk with weight, from its end */
        c = last;
        target = INFINITY;
        cum = 0.0;
    }
    if (c < 0) return 0; /* no weight at all: callers never get here (total > 0) */
    int64_t c0 = c * SPEC_CHUNK, len = d->n - c0 < SPEC_CHUNK ? d->n - c0 : SPEC_CHUNK;
    const float *wv;
    if (d->w) wv = d->w + c0;
    else {
        float s1;
        k->softmax_chunks(d->x + c0, len, d->m, d->inv_t, d->xmin, d->emin, tmp, &s1);
        wv = tmp;
    }
    int64_t lastpos = -1;
    for (int64_t i = 0; i < len; i++) {
        if (wv[i] > 0.0f) {
            lastpos = i;
            cum += (double)wv[i];
            if (cum > target) return c0 + i;
        }
    }
    return c0 + (lastpos >= 0 ? lastpos : 0);
}

/* ------------------------------------------------------------------ isthmus_sample */

typedef struct sample_ctx {
    const isthmus_sample_args *a;
    const SAMPLE_kernel *k;
    _Atomic int64_t bad_row; /* smallest row that failed, or rows */
} sample_ctx;

/* Locates the first NaN / +inf in a row for the message. */
static isthmus_status bad_logit(const char *fn, const char *what, int64_t row, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!(x[i] < INFINITY))
            return FAIL_ARG("%s: %s[%lld, %lld] = %f: NaN and +inf logits are refused", fn, what,
                            (long long)row, (long long)i, (double)x[i]);
    return FAIL_ARG("%s: %s row %lld: every logit is -inf", fn, what, (long long)row);
}

static isthmus_status sample_row(const sample_ctx *c, int64_t r) {
    static const char *fn = "isthmus_sample";
    const isthmus_sample_args *a = c->a;
    const SAMPLE_kernel *k = c->k;
    int64_t n = a->vocab;
    const isthmus_sampling_params *p = a->params_per_row ? &a->params[r] : &a->params[0];
    void *mem = isthmus__scratch(isthmus__spec_work_bytes(n));
    if (!mem) return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: no memory for the scratch of row %lld", fn,
                                   (long long)r);
    spec_work w;
    isthmus__spec_work_carve(mem, n, &w);
    const float *x = a->logits + r * a->ld;
    if (p->repetition_penalty != 1.0f && a->history && a->history_offsets[r + 1] > a->history_offsets[r]) {
        memcpy(w.pen, x, (size_t)n * 4);
        float pen = p->repetition_penalty;
        for (int64_t h = a->history_offsets[r]; h < a->history_offsets[r + 1]; h++) {
            int32_t t = a->history[h];
            float v = x[t];
            w.pen[t] = v > 0.0f ? v / pen : v * pen;
        }
        x = w.pen;
    }
    int flags = 0;
    float m = k->max(x, n, &flags);
    if ((flags & 1) || m == -INFINITY) return bad_logit(fn, x == w.pen ? "penalized logits" : "logits", r, x, n);
    m += 0.0f; /* -0 -> +0: the max is then independent of the order of a -0 and a +0 */
    float *probs = a->probs ? a->probs + r * a->ldp : NULL;
    int64_t tok;
    if (p->temperature == 0.0f) {
        tok = k->find_ge(x, n, m);
        if (probs) {
            memset(probs, 0, (size_t)n * 4);
            probs[tok] = 1.0f;
        }
    } else {
        spec_dist d;
        isthmus__spec_logits_dist(k, x, n, m, p, probs != NULL, probs, w.sums, &w, &d);
        tok = isthmus__spec_draw(k, &d, isthmus__philox_uniform(a->seed, a->streams[r], 0), w.tmp);
        if (probs) k->scale(probs, n, (float)(1.0 / d.total));
    }
    a->tokens[r] = (int32_t)tok;
    return ISTHMUS_OK;
}

static void sample_task(void *vc, int64_t r) {
    sample_ctx *c = vc;
    if (sample_row(c, r) != ISTHMUS_OK) {
        int64_t cur = atomic_load(&c->bad_row);
        while (r < cur && !atomic_compare_exchange_weak(&c->bad_row, &cur, r)) {}
    }
}

isthmus_status isthmus_sample(const isthmus_sample_args *a) {
    static const char *fn = "isthmus_sample";
    CHECK_PTR(a, "args");
    if (a->rows < 1) return FAIL_ARG("%s: rows = %lld, must be >= 1", fn, (long long)a->rows);
    if (a->vocab < 1 || a->vocab > ISTHMUS_MAX_VOCAB)
        return FAIL_ARG("%s: vocab = %lld, must be in [1, %d]", fn, (long long)a->vocab, ISTHMUS_MAX_VOCAB);
    CHECK_PTR(a->logits, "logits");
    if (a->ld < a->vocab) return FAIL_ARG("%s: ld = %lld < vocab = %lld", fn, (long long)a->ld, (long long)a->vocab);
    if (!isthmus__extent_ok(a->rows, a->ld))
        return FAIL_ARG("%s: rows = %lld x ld = %lld overflows", fn, (long long)a->rows, (long long)a->ld);
    CHECK_PTR(a->params, "params");
    if (a->params_per_row != 0 && a->params_per_row != 1)
        return FAIL_ARG("%s: params_per_row = %d, must be 0 or 1", fn, a->params_per_row);
    if (a->reserved != 0) return FAIL_ARG("%s: reserved = %d, must be 0", fn, a->reserved);
    int64_t np = a->params_per_row ? a->rows : 1;
    for (int64_t r = 0; r < np; r++) {
        char what[48];
        snprintf(what, sizeof what, "params[%lld]", (long long)r);
        isthmus_status st = isthmus__spec_check_params(fn, what, &a->params[r]);
        if (st) return st;
    }
    CHECK_PTR(a->streams, "streams");
    CHECK_PTR(a->tokens, "tokens");
    if (a->probs) {
        if (a->ldp < a->vocab)
            return FAIL_ARG("%s: ldp = %lld < vocab = %lld", fn, (long long)a->ldp, (long long)a->vocab);
        if (!isthmus__extent_ok(a->rows, a->ldp))
            return FAIL_ARG("%s: rows = %lld x ldp = %lld overflows", fn, (long long)a->rows, (long long)a->ldp);
    }
    if (a->history) {
        CHECK_PTR(a->history_offsets, "history_offsets");
        if (a->history_offsets[0] != 0)
            return FAIL_ARG("%s: history_offsets[0] = %lld, must be 0", fn, (long long)a->history_offsets[0]);
        for (int64_t r = 0; r < a->rows; r++) {
            int64_t h0 = a->history_offsets[r], h1 = a->history_offsets[r + 1];
            if (h1 < h0 || h1 > ISTHMUS_MAX_ELEMS)
                return FAIL_ARG("%s: history_offsets[%lld] = %lld < history_offsets[%lld] = %lld (must be "
                                "non-decreasing)", fn, (long long)(r + 1), (long long)h1, (long long)r,
                                (long long)h0);
            for (int64_t h = h0; h < h1; h++)
                if (a->history[h] < 0 || a->history[h] >= a->vocab)
                    return FAIL_ARG("%s: history[%lld] = %d (row %lld) is not a token id in [0, %lld)", fn,
                                    (long long)h, a->history[h], (long long)r, (long long)a->vocab);
        }
    }
    sample_ctx c = {.a = a, .k = isthmus__kernel(ISTHMUS_OP_SAMPLE, isthmus__isa_active())};
    if (!c.k) return isthmus__fail(ISTHMUS_ERR_INTERNAL, "%s: no kernel", fn);
    atomic_init(&c.bad_row, a->rows);
    isthmus__parallel_for(a->rows, sample_task, &c);
    int64_t bad = atomic_load(&c.bad_row);
    if (bad < a->rows) return sample_row(&c, bad); /* again on this thread, for the message */
    isthmus__clear_error();
    return ISTHMUS_OK;
}
