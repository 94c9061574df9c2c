/*
 * isthmus_verify: draft-verify for chains and trees (isthmus.h states the semantics). One task per
 * sequence on the pool; a sequence reads only the rows its walk reaches, and each row once per visit:
 *  - greedy: one max pass per accepted position (+ the bonus row);
 *  - sampling: per visited node, the target row and the draft row as distributions (weights + chunk
 *    sums, spec.h); a child's test reads two weights; a rejection forms the residual in one pass.
 * Draws of stream streams[b] are numbered in the order they are used: one per tried child, then one for
 * the emitted token.
 */
#include "spec.h"
#include "philox.h"

#include <stdatomic.h>

typedef struct verify_ctx {
    const isthmus_verify_args *a;
    const SAMPLE_kernel *k;
    int32_t first[ISTHMUS_TREE_MAX_NODES + 1]; /* first child of row r (r = 0: root, j + 1: node j), or -1 */
    int32_t next[ISTHMUS_TREE_MAX_NODES];      /* next sibling of node j, or -1 */
    _Atomic int64_t bad_seq;
} verify_ctx;

static const char *FN = "isthmus_verify";

/* The distribution of row `row` of dist (a target or draft row) as weights stored in out (or the
 * caller's probs row itself) + chunk sums. */
static isthmus_status load_dist(const SAMPLE_kernel *k, const isthmus_dist *dist, const char *what, int64_t row,
                                int64_t n, float *out, float *sums, spec_work *w, spec_dist *d) {
    const float *x = dist->data + row * dist->ld;
    int64_t nc = spec_nchunks(n);
    if (dist->kind == ISTHMUS_DIST_PROBS) {
        if (k->sum_chunks(x, n, 0.0f, NULL, sums)) {
            for (int64_t i = 0; i < n; i++)
                if (!(x[i] >= 0.0f && x[i] < INFINITY))
                    return FAIL_ARG("%s: %s.data[%lld, %lld] = %g: probabilities must be finite and >= 0", FN, what,
                                    (long long)row, (long long)i, (double)x[i]);
        }
        d->total = spec_total(sums, nc);
        if (!(d->total > 0.0))
            return FAIL_ARG("%s: %s row %lld sums to 0: a row of probabilities must have a positive sum", FN,
                            what, (long long)row);
        d->w = x, d->sums = sums, d->n = n;
        return ISTHMUS_OK;
    }
    int flags = 0;
    float m = k->max(x, n, &flags);
    if (flags & 1) {
        for (int64_t i = 0; i < n; i++)
            if (!(x[i] < INFINITY))
                return FAIL_ARG("%s: %s.data[%lld, %lld] = %f: NaN and +inf logits are refused", FN, what,
                                (long long)row, (long long)i, (double)x[i]);
    }
    if (m == -INFINITY) return FAIL_ARG("%s: %s row %lld: every logit is -inf", FN, what, (long long)row);
    m += 0.0f;
    if (dist->params.temperature == 0.0f) { /* one-hot at the argmax */
        int64_t t = k->find_ge(x, n, m);
        memset(out, 0, (size_t)n * 4);
        out[t] = 1.0f;
        k->sum_chunks(out, n, 0.0f, NULL, sums);
        d->w = out, d->sums = sums, d->n = n, d->total = 1.0;
        return ISTHMUS_OK;
    }
    isthmus__spec_logits_dist(k, x, n, m, &dist->params, 1, out, sums, w, d);
    return ISTHMUS_OK;
}

/* The argmax of a target row (ties to the lowest id), checking what the row kind requires. */
static isthmus_status row_argmax(const SAMPLE_kernel *k, const isthmus_dist *dist, int64_t row, int64_t n,
                                 int64_t *out) {
    const float *x = dist->data + row * dist->ld;
    int flags = 0;
    float m = k->max(x, n, &flags);
    int probs = dist->kind == ISTHMUS_DIST_PROBS;
    if ((flags & 1) || (probs && (flags & 2))) {
        for (int64_t i = 0; i < n; i++)
            if (!(x[i] < INFINITY) || (probs && x[i] < 0.0f))
                return FAIL_ARG("%s: target.data[%lld, %lld] = %g: %s", FN, (long long)row, (long long)i,
                                (double)x[i], probs ? "probabilities must be finite and >= 0"
                                                    : "NaN and +inf logits are refused");
    }
    if (probs && m == 0.0f)
        return FAIL_ARG("%s: target row %lld sums to 0: a row of probabilities must have a positive sum", FN,
                        (long long)row);
    if (m == -INFINITY) return FAIL_ARG("%s: target row %lld: every logit is -inf", FN, (long long)row);
    *out = k->find_ge(x, n, m + 0.0f);
    return ISTHMUS_OK;
}

static isthmus_status verify_seq(const verify_ctx *c, int64_t b) {
    const isthmus_verify_args *a = c->a;
    const SAMPLE_kernel *k = c->k;
    int64_t n = a->vocab, T = a->nodes;
    const int32_t *dt = a->draft_tokens + b * a->ld_tokens;
    int32_t *out = a->tokens + b * a->ld_out;
    int32_t *path = a->path ? a->path + b * a->ld_path : NULL;
    int32_t depth = 0, cur = -1;
    int64_t emit = 0;
    if (a->greedy) {
        for (;;) {
            isthmus_status st = row_argmax(k, &a->target, b * (T + 1) + cur + 1, n, &emit);
            if (st) return st;
            int32_t ch = c->first[cur + 1];
            while (ch >= 0 && dt[ch] != emit) ch = c->next[ch];
            if (ch < 0) break;
            out[depth] = (int32_t)emit;
            if (path) path[depth] = ch;
            depth++, cur = ch;
        }
    } else {
        int64_t nc = spec_nchunks(n);
        size_t wb = isthmus__spec_work_bytes(n), fb = ((size_t)n * 4 + 63) & ~(size_t)63,
               sb = ((size_t)nc * 4 + 63) & ~(size_t)63;
        char *mem = isthmus__scratch(wb + fb + sb);
        if (!mem) return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: no memory for the scratch of sequence %lld",
                                       FN, (long long)b);
        spec_work w;
        isthmus__spec_work_carve(mem, n, &w);
        float *qbuf = (float *)(mem + wb), *qsums = (float *)(mem + wb + fb);
        uint64_t stream = a->streams[b];
        uint32_t draw = 0;
        spec_dist P, Q;
        for (;;) {
            isthmus_status st = load_dist(k, &a->target, "target", b * (T + 1) + cur + 1, n, w.buf, w.sums, &w, &P);
            if (st) return st;
            int32_t ch = c->first[cur + 1];
            if (ch < 0) break; /* a leaf: the bonus token from its target row */
            st = load_dist(k, &a->draft, "draft", b * T + cur + 1, n, qbuf, qsums, &w, &Q);
            if (st) return st;
            int accepted = 0;
            for (; ch >= 0; ch = c->next[ch]) {
                int32_t t = dt[ch];
                double u = isthmus__philox_uniform(a->seed, stream, draw++);
                double pt = (double)spec_dist_weight(&P, t) / P.total;
                double qt = Q.total > 0.0 ? (double)spec_dist_weight(&Q, t) / Q.total : 0.0;
                if (u * qt < pt) {
                    accepted = 1;
                    break;
                }
                /* rejected: p = norm(max(0, p - q)) */
                float pa = (float)(1.0 / P.total), qb = Q.total > 0.0 ? (float)(1.0 / Q.total) : 0.0f;
                k->residual_chunks(P.w, pa, Q.w, qb, n, w.buf, w.sums);
                double s = spec_total(w.sums, nc);
                if (!(s > 0.0)) { /* p == q up to rounding: the residual is empty; p stays q */
                    memmove(w.buf, Q.w, (size_t)n * 4);
                    memcpy(w.sums, Q.sums, (size_t)nc * 4);
                    s = Q.total;
                }
                P.w = w.buf, P.sums = w.sums, P.total = s;
                if (a->tree_mode == ISTHMUS_TREE_WITHOUT_REPLACEMENT && c->next[ch] >= 0) {
                    /* q = norm(q without t): zero it and redo the sum of its chunk */
                    if (Q.w != qbuf) memcpy(qbuf, Q.w, (size_t)n * 4);
                    qbuf[t] = 0.0f;
                    int64_t c0 = (int64_t)t / SPEC_CHUNK * SPEC_CHUNK;
                    k->sum_chunks(qbuf + c0, n - c0 < SPEC_CHUNK ? n - c0 : SPEC_CHUNK, 0.0f, NULL, qsums + t / SPEC_CHUNK);
                    Q.w = qbuf, Q.sums = qsums, Q.total = spec_total(qsums, nc);
                }
            }
            if (!accepted) break;
            out[depth] = dt[ch];
            if (path) path[depth] = ch;
            depth++, cur = ch;
        }
        emit = isthmus__spec_draw(k, &P, isthmus__philox_uniform(a->seed, stream, draw++), w.tmp);
    }
    out[depth] = (int32_t)emit;
    for (int64_t i = depth + 1; i <= T; i++) out[i] = -1;
    if (path)
        for (int64_t i = depth; i < T; i++) path[i] = -1;
    a->accepted[b] = depth;
    return ISTHMUS_OK;
}

static void verify_task(void *vc, int64_t b) {
    verify_ctx *c = vc;
    if (verify_seq(c, b) != ISTHMUS_OK) {
        int64_t cur = atomic_load(&c->bad_seq);
        while (b < cur && !atomic_compare_exchange_weak(&c->bad_seq, &cur, b)) {}
    }
}

static isthmus_status check_dist(const isthmus_dist *d, const char *what, int64_t rows, int64_t vocab) {
    if (d->kind != ISTHMUS_DIST_PROBS && d->kind != ISTHMUS_DIST_LOGITS)
        return FAIL_ARG("%s: %s.kind = %d, must be ISTHMUS_DIST_PROBS (0) or ISTHMUS_DIST_LOGITS (1)", FN, what,
                        d->kind);
    if (d->reserved != 0) return FAIL_ARG("%s: %s.reserved = %d, must be 0", FN, what, d->reserved);
    if (d->data == NULL) return FAIL_ARG("%s: %s.data is NULL", FN, what);
    if (d->ld < vocab)
        return FAIL_ARG("%s: %s.ld = %lld < vocab = %lld", FN, what, (long long)d->ld, (long long)vocab);
    if (!isthmus__extent_ok(rows, d->ld))
        return FAIL_ARG("%s: %s: %lld rows x ld = %lld overflows", FN, what, (long long)rows, (long long)d->ld);
    if (d->kind == ISTHMUS_DIST_LOGITS) {
        char w[32];
        snprintf(w, sizeof w, "%s.params", what);
        isthmus_status st = isthmus__spec_check_params(FN, w, &d->params);
        if (st) return st;
        if (d->params.repetition_penalty != 1.0f)
            return FAIL_ARG("%s: %s.params.repetition_penalty = %g, must be 1 with ISTHMUS_DIST_LOGITS (pass "
                            "probabilities made by isthmus_sample with the history instead)", FN, what,
                            (double)d->params.repetition_penalty);
    }
    return ISTHMUS_OK;
}

isthmus_status isthmus_verify(const isthmus_verify_args *a) {
    CHECK_PTR(a, "args");
    if (a->batch < 1) return FAIL_ARG("%s: batch = %d, must be >= 1", FN, a->batch);
    if (a->nodes < 1 || a->nodes > ISTHMUS_TREE_MAX_NODES)
        return FAIL_ARG("%s: nodes = %d, must be in [1, %d]", FN, a->nodes, ISTHMUS_TREE_MAX_NODES);
    if (a->vocab < 1 || a->vocab > ISTHMUS_MAX_VOCAB)
        return FAIL_ARG("%s: vocab = %lld, must be in [1, %d]", FN, (long long)a->vocab, ISTHMUS_MAX_VOCAB);
    if (a->tree_mode != ISTHMUS_TREE_WITH_REPLACEMENT && a->tree_mode != ISTHMUS_TREE_WITHOUT_REPLACEMENT)
        return FAIL_ARG("%s: tree_mode = %d, must be ISTHMUS_TREE_WITH_REPLACEMENT (0) or "
                        "ISTHMUS_TREE_WITHOUT_REPLACEMENT (1)", FN, a->tree_mode);
    if (a->greedy != 0 && a->greedy != 1) return FAIL_ARG("%s: greedy = %d, must be 0 or 1", FN, a->greedy);
    int64_t B = a->batch, T = a->nodes;
    verify_ctx c;
    memset(&c, 0, sizeof c);
    c.a = a;
    for (int64_t r = 0; r <= T; r++) c.first[r] = -1;
    {
        int32_t tail[ISTHMUS_TREE_MAX_NODES + 1];
        for (int32_t j = 0; j < T; j++) {
            int32_t p = a->parents ? a->parents[j] : j - 1;
            if (p < -1 || p >= j)
                return FAIL_ARG("%s: parents[%d] = %d, must be in [-1, %d] (a node's parent comes before it)", FN,
                                j, p, j - 1);
            c.next[j] = -1;
            if (c.first[p + 1] < 0) c.first[p + 1] = j;
            else c.next[tail[p + 1]] = j;
            tail[p + 1] = j;
        }
    }
    CHECK_PTR(a->draft_tokens, "draft_tokens");
    if (a->ld_tokens < T)
        return FAIL_ARG("%s: ld_tokens = %lld < nodes = %lld", FN, (long long)a->ld_tokens, (long long)T);
    if (!isthmus__extent_ok(B, a->ld_tokens))
        return FAIL_ARG("%s: batch = %lld x ld_tokens = %lld overflows", FN, (long long)B, (long long)a->ld_tokens);
    int distinct = a->tree_mode == ISTHMUS_TREE_WITHOUT_REPLACEMENT;
    for (int64_t b = 0; b < B; b++) {
        const int32_t *dt = a->draft_tokens + b * a->ld_tokens;
        for (int64_t j = 0; j < T; j++) {
            if (dt[j] < 0 || dt[j] >= a->vocab)
                return FAIL_ARG("%s: draft_tokens[%lld, %lld] = %d is not a token id in [0, %lld)", FN, (long long)b,
                                (long long)j, dt[j], (long long)a->vocab);
        }
        if (distinct)
            for (int64_t r = 0; r <= T; r++)
                for (int32_t x = c.first[r]; x >= 0; x = c.next[x])
                    for (int32_t y = c.next[x]; y >= 0; y = c.next[y])
                        if (dt[x] == dt[y])
                            return FAIL_ARG("%s: draft_tokens[%lld, %d] = draft_tokens[%lld, %d] = %d: siblings "
                                            "must be distinct with ISTHMUS_TREE_WITHOUT_REPLACEMENT", FN,
                                            (long long)b, x, (long long)b, y, dt[x]);
    }
    isthmus_status st = check_dist(&a->target, "target", B * (T + 1), a->vocab);
    if (st) return st;
    if (!a->greedy) {
        if ((st = check_dist(&a->draft, "draft", B * T, a->vocab))) return st;
        CHECK_PTR(a->streams, "streams");
    }
    CHECK_PTR(a->accepted, "accepted");
    CHECK_PTR(a->tokens, "tokens");
    if (a->ld_out < T + 1)
        return FAIL_ARG("%s: ld_out = %lld < nodes + 1 = %lld", FN, (long long)a->ld_out, (long long)(T + 1));
    if (!isthmus__extent_ok(B, a->ld_out))
        return FAIL_ARG("%s: batch = %lld x ld_out = %lld overflows", FN, (long long)B, (long long)a->ld_out);
    if (a->path) {
        if (a->ld_path < T)
            return FAIL_ARG("%s: ld_path = %lld < nodes = %lld", FN, (long long)a->ld_path, (long long)T);
        if (!isthmus__extent_ok(B, a->ld_path))
            return FAIL_ARG("%s: batch = %lld x ld_path = %lld overflows", FN, (long long)B, (long long)a->ld_path);
    }
    c.k = isthmus__kernel(ISTHMUS_OP_SAMPLE, isthmus__isa_active());
    if (!c.k) return isthmus__fail(ISTHMUS_ERR_INTERNAL, "%s: no kernel", FN);
    atomic_init(&c.bad_seq, B);
    isthmus__parallel_for(B, verify_task, &c);
    int64_t bad = atomic_load(&c.bad_seq);
    if (bad < B) return verify_seq(&c, bad); /* again on this thread, for the message */
    isthmus__clear_error();
    return ISTHMUS_OK;
}
