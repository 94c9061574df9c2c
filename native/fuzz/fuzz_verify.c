/* Fuzz target: sampling and speculative verification (isthmus_sample, isthmus_philox_uniform,
 * isthmus_verify).
 *
 * Hostile arguments must be refused: rows / batch / nodes / vocab out of range (V > ISTHMUS_MAX_VOCAB,
 * B huge with a row stride whose product overflows), strides below the row length, bad enums and
 * reserved fields, sampling params outside their ranges (temperature < 0 or NaN, top_k < 0, top_p and
 * min_p outside their intervals, penalty <= 0), parents that are not before their node, token ids
 * outside [0, V), siblings repeated without replacement, NULL pointers. Rows of values are predicted
 * where the contract lets the target predict them: isthmus_sample reads every row, so a row with NaN /
 * +inf (after the repetition penalty, computed here as isthmus.h says) or only -inf logits is refused,
 * and a clean batch is accepted; greedy verify reads the rows of its argmax walk, which the target
 * replays. Sampling verify reads rows as its walk goes: a batch of clean rows must be accepted, one with
 * a bad row may be refused or not.
 * Valid calls: tokens in [0, V); a greedy sample is the argmax of the penalized logits (ties to the
 * lowest id); probs out are a distribution holding the sampled token; accepted counts in [0, depth],
 * the accepted tokens are draft tokens along a root path, then one emitted token, then -1 padding (and
 * path the same with node ids); greedy verify equals the scalar argmax walk below. Every call is run
 * again with the ISA capped to the reference and another thread count: the results must be identical
 * (isthmus.h promises bit-identical). */
#include "fuzz.h"

#define MAXV 300
#define MAXT 12

static void fail(const char *what) {
    fprintf(stderr, "fuzz_verify: %s (last error: %s)\n", what, isthmus_last_error());
    abort();
}

static const float temps[] = {1.0f, 0.0f, 0.7f, 1e-30f, 3.0f, 1e-45f};
static const float bad_temps[] = {-1.0f, NAN, INFINITY, -0.5f};

/* Sampling params: valid mostly; *bad when one field is outside its range. */
static isthmus_sampling_params pick_params(fz_in *in, int64_t vocab, int allow_penalty, int *bad) {
    isthmus_sampling_params p = {1.0f, 0, 1.0f, 0.0f, 1.0f, 0};
    uint8_t sel = fz_u8(in);
    p.temperature = temps[sel % 6];
    uint8_t k = fz_u8(in);
    p.top_k = k < 128 ? 0 : k < 240 ? (int32_t)(k % (vocab + 2)) : (int32_t)vocab + 5;
    uint8_t tp = fz_u8(in);
    p.top_p = tp < 128 ? 1.0f : (float)(tp - 127) / 128.0f;
    uint8_t mp = fz_u8(in);
    p.min_p = mp < 160 ? 0.0f : (float)(mp - 160) / 96.0f;
    uint8_t rp = allow_penalty ? fz_u8(in) : 0;
    p.repetition_penalty = rp < 160 ? 1.0f : rp < 250 ? 0.5f + (float)(rp - 160) / 30.0f : rp == 250 ? 1e-45f : 3e38f;
    uint8_t h = fz_u8(in);
    if (h < 24) {
        *bad = 1;
        switch (h % 8) {
        case 0: p.temperature = bad_temps[h / 8 % 4]; break;
        case 1: p.top_k = h % 2 ? -1 : INT32_MIN; break;
        case 2: p.top_p = h % 2 ? 0.0f : 1.0001f; break;
        case 3: p.top_p = h % 2 ? NAN : -0.5f; break;
        case 4: p.min_p = h % 2 ? 1.0f : -0.1f; break;
        case 5: p.repetition_penalty = h % 2 ? 0.0f : -1.0f; break;
        case 6: p.repetition_penalty = h % 2 ? NAN : INFINITY; break;
        default: p.reserved = 1;
        }
    }
    return p;
}

/* logits rows: clean (finite, some -inf) unless the input splices specials in */
static void fill_logits(fz_in *in, float *x, int64_t n, int probs) {
    fz_fill_f32(in, x, n);
    uint8_t m = fz_u8(in);
    if (m < 64) /* many -inf (a peaked, sparse row) */
        for (int64_t i = 0; i < n; i++) x[i] = (i * 7 + m) % 5 ? -INFINITY : x[i];
    if (probs)
        for (int64_t i = 0; i < n; i++) x[i] = x[i] == -INFINITY ? 0.0f : x[i] < 0 ? -x[i] : x[i];
}

static int row_clean_logits(const float *x, int64_t n) {
    int any = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!(x[i] < INFINITY)) return 0;
        any |= x[i] > -INFINITY;
    }
    return any;
}
static int row_clean_probs(const float *x, int64_t n) {
    int pos = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!(x[i] >= 0.0f && x[i] < INFINITY)) return 0;
        pos |= x[i] > 0;
    }
    return pos;
}
/* argmax, ties to the lowest id (-0 and +0 tie) */
static int64_t argmax(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int64_t i = 0; i < n; i++)
        if (x[i] >= m) return i;
    return 0;
}

/* isthmus__extent_ok: rows x ld elements below ISTHMUS_MAX_ELEMS (2^45) */
static int extent_ok(int64_t rows, int64_t ld) { return rows > 0 && ld > 0 && ld <= ((int64_t)1 << 45) / rows; }

static void set_cap_threads(int32_t cap, int32_t threads) {
    fz_check_status(isthmus_set_isa_cap(cap), "isthmus_set_isa_cap");
    fz_check_status(isthmus_set_num_threads(threads), "isthmus_set_num_threads");
}

static void run_sample(fz_in *in) {
    int bad = 0;
    int64_t rows = fz_size(in, 4, 8, &bad);
    int64_t vocab = fz_range(in, 1, fz_u8(in) < 16 ? 2000 : 40);
    uint8_t hv = fz_u8(in);
    if (hv < 6) vocab = hv % 3 == 0 ? 0 : hv % 3 == 1 ? -3 : (int64_t)ISTHMUS_MAX_VOCAB + 1, bad = 1;
    int64_t ld = bad ? 1 : vocab + fz_range(in, 0, 3);
    if (!bad && fz_u8(in) < 5) ld = vocab - 1, bad = 1;
    if (!bad && rows >= 2 && fz_u8(in) < 5) ld = (int64_t)1 << 45, bad = 1; /* rows x ld past ISTHMUS_MAX_ELEMS */
    int64_t R = bad ? 1 : rows, V = bad ? 1 : vocab, L = bad ? 1 : ld;
    float *logits = fz_alloc((size_t)(R * L) * 4), *probs = fz_alloc((size_t)(R * L) * 4);
    float *probs2 = fz_alloc((size_t)(R * L) * 4), *pen = fz_alloc((size_t)V * 4);
    int32_t *tokens = fz_alloc((size_t)R * 4), *tokens2 = fz_alloc((size_t)R * 4);
    uint64_t *streams = fz_alloc((size_t)R * 8);
    int per_row = fz_bool(in);
    isthmus_sampling_params params[8];
    for (int64_t r = 0; r < (per_row ? R : 1); r++) params[r] = pick_params(in, V, 1, &bad);
    for (int64_t r = 0; r < R; r++) {
        fill_logits(in, logits + r * L, L, 0);
        streams[r] = fz_u64(in);
    }
    /* history */
    int32_t hist[32];
    int64_t hoff[9] = {0};
    int use_hist = fz_bool(in);
    for (int64_t r = 0; r < R; r++) {
        int64_t nh = fz_range(in, 0, 3);
        hoff[r + 1] = hoff[r] + nh;
        for (int64_t h = hoff[r]; h < hoff[r + 1]; h++) hist[h] = (int32_t)fz_range(in, 0, V - 1);
    }
    uint8_t hh = fz_u8(in);
    if (use_hist && hh < 8 && hoff[R] > 0) hist[0] = hh % 2 ? -1 : (int32_t)V, bad = 1;
    else if (use_hist && hh < 12) hoff[0] = 1, bad = 1;
    else if (use_hist && hh < 16 && R > 1) hoff[1] = hoff[2] + 1, bad = 1;
    /* rows: predicted refusal when a (penalized) row holds NaN / +inf or only -inf */
    int row_bad = 0;
    if (!bad)
        for (int64_t r = 0; r < R; r++) {
            const isthmus_sampling_params *p = &params[per_row ? r : 0];
            memcpy(pen, logits + r * L, (size_t)V * 4);
            if (use_hist && p->repetition_penalty != 1.0f)
                for (int64_t h = hoff[r]; h < hoff[r + 1]; h++) {
                    float v = logits[r * L + hist[h]];
                    pen[hist[h]] = v > 0.0f ? v / p->repetition_penalty : v * p->repetition_penalty;
                }
            if (!row_clean_logits(pen, V)) row_bad = 1;
        }
    uint64_t seed = fz_u64(in);
    int with_probs = fz_bool(in);
    int nulls = fz_u8(in);
    if (nulls < 6 && !(nulls == 2 && !use_hist)) bad = 1; /* history_offsets is only read with history */
    isthmus_sample_args a = {rows, vocab, nulls == 0 ? NULL : logits, ld, nulls == 1 ? NULL : params, per_row,
                             nulls == 5, use_hist ? hist : NULL, nulls == 2 ? NULL : hoff, seed,
                             nulls == 3 ? NULL : streams, nulls == 4 ? NULL : tokens, with_probs ? probs : NULL, L};
    isthmus_status st = isthmus_sample(&a);
    if (bad || row_bad) {
        fz_expect_refused(st, "isthmus_sample");
    } else {
        fz_check_status(st, "isthmus_sample");
        if (st) fail("isthmus_sample refused clean rows");
        for (int64_t r = 0; r < R; r++) {
            const isthmus_sampling_params *p = &params[per_row ? r : 0];
            if (tokens[r] < 0 || tokens[r] >= V) fail("isthmus_sample: token outside [0, vocab)");
            memcpy(pen, logits + r * L, (size_t)V * 4);
            if (use_hist && p->repetition_penalty != 1.0f)
                for (int64_t h = hoff[r]; h < hoff[r + 1]; h++) {
                    float v = logits[r * L + hist[h]];
                    pen[hist[h]] = v > 0.0f ? v / p->repetition_penalty : v * p->repetition_penalty;
                }
            if (pen[tokens[r]] == -INFINITY) fail("isthmus_sample chose a -inf logit");
            if (p->temperature == 0.0f && tokens[r] != argmax(pen, V)) fail("greedy sample is not the argmax");
            if (with_probs) {
                double sum = 0;
                for (int64_t i = 0; i < V; i++) {
                    float q = probs[r * L + i];
                    if (!(q >= 0 && q <= 1.0f)) fail("isthmus_sample: probs entry outside [0, 1]");
                    sum += q;
                }
                if (fabs(sum - 1.0) > 1e-3 || !(probs[r * L + tokens[r]] > 0))
                    fail("isthmus_sample: probs is not a distribution holding the token");
            }
        }
    }
    /* the same call with the ISA capped to the reference and 3 threads: identical */
    int32_t cap = isthmus_get_isa_cap(), threads = isthmus_get_num_threads();
    set_cap_threads(ISTHMUS_ISA_REF, 3);
    memcpy(probs2, probs, (size_t)(R * L) * 4);
    memcpy(tokens2, tokens, (size_t)R * 4);
    if (a.probs) a.probs = probs2;
    if (a.tokens) a.tokens = tokens2;
    isthmus_status st2 = isthmus_sample(&a);
    set_cap_threads(cap, threads);
    if (st2 != st) fail("isthmus_sample: status differs between ISA variants / thread counts");
    if (st == ISTHMUS_OK &&
        (memcmp(tokens, tokens2, (size_t)R * 4) || (with_probs && memcmp(probs, probs2, (size_t)(R * L) * 4))))
        fail("isthmus_sample: results differ between ISA variants / thread counts");
    free(logits), free(probs), free(probs2), free(pen), free(tokens), free(tokens2), free(streams);
}

static void run_verify(fz_in *in) {
    int bad = 0;
    int32_t B = (int32_t)fz_range(in, 1, 3), T = (int32_t)fz_range(in, 1, MAXT);
    int64_t V = fz_range(in, 1, fz_u8(in) < 16 ? 1100 : 24);
    uint8_t hs = fz_u8(in);
    int64_t ldt = T + fz_range(in, 0, 2), ldt_pass = -1000; /* -1000: ldt */
    int32_t Bc = B, Tc = T; /* what is passed */
    int64_t Vc = V;
    if (hs < 20) {
        bad = 1;
        switch (hs % 10) {
        case 0: Bc = 0; break;
        case 1: Bc = hs % 4 ? -1 : INT32_MIN; break;
        case 2: Bc = INT32_MAX, ldt_pass = (int64_t)1 << 16; break; /* B x ld_tokens past ISTHMUS_MAX_ELEMS */
        case 3: Tc = 0; break;
        case 4: Tc = ISTHMUS_TREE_MAX_NODES + 1; break;
        case 5: Vc = 0; break;
        case 6: Vc = (int64_t)ISTHMUS_MAX_VOCAB + 1; break;
        case 7: Vc = -1; break;
        case 8: ldt_pass = T - 1; break;
        default: Bc = hs % 4 ? -7 : 0;
        }
    }
    int32_t parents[MAXT];
    int use_parents = fz_bool(in);
    for (int32_t j = 0; j < T; j++) parents[j] = use_parents ? (int32_t)fz_range(in, -1, j - 1) : j - 1;
    uint8_t hp = fz_u8(in);
    if (use_parents && hp < 16) { /* a parent that is not before its node: cycles, self, < -1 */
        int32_t j = (int32_t)fz_range(in, 0, T - 1);
        parents[j] = hp % 4 == 0 ? j : hp % 4 == 1 ? -2 : hp % 4 == 2 ? T : INT32_MIN;
        if (hp % 4 == 3 && j + 1 < T) parents[j] = j + 1, parents[j + 1] = j;
        bad = 1;
    }
    int32_t mode = fz_range(in, 0, 1), greedy = fz_range(in, 0, 1);
    uint8_t he = fz_u8(in);
    if (he < 6) bad = 1, (he % 2 ? (mode = he < 4 ? 2 : -1) : (greedy = he < 4 ? 2 : -1));
    int32_t *dt = fz_alloc((size_t)(B * ldt) * 4);
    for (int64_t i = 0; i < B * ldt; i++) dt[i] = (int32_t)fz_range(in, 0, V - 1);
    uint8_t ht = fz_u8(in);
    if (ht < 8) dt[fz_range(in, 0, (int64_t)B * ldt - 1)] = ht % 2 ? -1 : (int32_t)V;
    /* with WITHOUT_REPLACEMENT, siblings repeated is refused (unless the walk makes it distinct anyway) */
    int siblings_dup = 0;
    if (mode == ISTHMUS_TREE_WITHOUT_REPLACEMENT && !bad)
        for (int32_t b = 0; b < B; b++)
            for (int32_t x = 0; x < T; x++)
                for (int32_t y = x + 1; y < T; y++)
                    siblings_dup |= parents[x] == parents[y] && dt[b * ldt + x] == dt[b * ldt + y];
    if (mode == ISTHMUS_TREE_WITHOUT_REPLACEMENT && fz_u8(in) < 200) siblings_dup = 0, bad |= 0;
    isthmus_dist dists[2];
    float *data[2];
    int64_t rows[2] = {(int64_t)B * (T + 1), (int64_t)B * T};
    int kinds_bad = 0;
    for (int d = 0; d < 2; d++) {
        isthmus_dist *q = &dists[d];
        memset(q, 0, sizeof *q);
        q->kind = fz_range(in, 0, 1);
        q->ld = V + fz_range(in, 0, 2);
        data[d] = fz_alloc((size_t)(rows[d] * q->ld) * 4);
        for (int64_t r = 0; r < rows[d]; r++) fill_logits(in, data[d] + r * q->ld, q->ld, q->kind == ISTHMUS_DIST_PROBS);
        q->data = data[d];
        q->params = pick_params(in, V, 0, d == 0 || !greedy ? &bad : &kinds_bad);
        uint8_t hd = fz_u8(in);
        int *flag = d == 0 || !greedy ? &bad : &kinds_bad; /* draft is not read by greedy verify */
        if (hd < 12) {
            *flag = 1;
            switch (hd % 6) {
            case 0: q->kind = hd < 6 ? 2 : -1; break;
            case 1: q->reserved = 1; break;
            case 2: q->data = NULL; break;
            case 3: q->ld = V - 1; break;
            case 4: q->kind = ISTHMUS_DIST_LOGITS, q->params.repetition_penalty = 1.5f; break;
            default: q->ld = (int64_t)1 << 45; break; /* past ISTHMUS_MAX_ELEMS unless one row */
            }
        }
    }
    if (fz_u8(in) < 10 && greedy) dists[1].data = NULL; /* allowed: greedy never reads the draft */
    uint64_t *streams = fz_alloc((size_t)B * 8);
    for (int32_t b = 0; b < B; b++) streams[b] = fz_u64(in);
    int64_t ldo = T + 1 + fz_range(in, 0, 2), ldp = T + fz_range(in, 0, 2);
    uint8_t hl = fz_u8(in);
    if (hl < 4) bad = 1, (hl % 2 ? (ldo = T) : (ldp = T - 1));
    int with_path = fz_bool(in) || hl < 4;
    int32_t *acc = fz_alloc((size_t)B * 4), *tok = fz_alloc((size_t)B * ldo * 4), *path = fz_alloc((size_t)B * (ldp > 0 ? ldp : 1) * 4);
    int32_t *acc2 = fz_alloc((size_t)B * 4), *tok2 = fz_alloc((size_t)B * ldo * 4), *path2 = fz_alloc((size_t)B * (ldp > 0 ? ldp : 1) * 4);
    int nulls = fz_u8(in);
    if (nulls < 6) bad = 1;
    if (nulls == 4 && greedy) bad = bad || 0; /* streams is only read when sampling */
    isthmus_verify_args a = {Bc, Tc, Vc, use_parents ? parents : NULL, mode, greedy, nulls == 0 ? NULL : dt, ldt_pass != -1000 ? ldt_pass : ldt,
                             dists[1], dists[0], fz_u64(in), nulls == 4 ? NULL : streams, nulls == 1 ? NULL : acc,
                             nulls == 2 ? NULL : tok, ldo, with_path ? path : NULL, ldp};
    if (nulls == 3) a.target.data = NULL;
    if (nulls == 5) a.draft.kind = 7;
    if (greedy && (nulls == 4 || nulls == 5)) bad = (nulls < 4 && nulls >= 0) || hs < 20 || hp < 16 || he < 6;
    /* this decides whether the call must be refused: recompute it from the final arguments */
    int must = 0;
    must |= a.batch < 1 || a.nodes < 1 || a.nodes > ISTHMUS_TREE_MAX_NODES || a.vocab < 1 ||
            a.vocab > ISTHMUS_MAX_VOCAB || a.tree_mode < 0 || a.tree_mode > 1 || (a.greedy != 0 && a.greedy != 1);
    if (!must && a.parents)
        for (int32_t j = 0; j < T; j++) must |= parents[j] < -1 || parents[j] >= j;
    must |= !a.draft_tokens || a.ld_tokens < T || (!must && !extent_ok(a.batch, a.ld_tokens));
    if (!must)
        for (int64_t i = 0; i < (int64_t)B * ldt; i++)
            if (i % ldt < T) must |= dt[i] < 0 || dt[i] >= V;
    if (!must && a.tree_mode == ISTHMUS_TREE_WITHOUT_REPLACEMENT)
        for (int32_t b = 0; b < B; b++)
            for (int32_t x = 0; x < T; x++)
                for (int32_t y = x + 1; y < T; y++)
                    must |= parents[x] == parents[y] && dt[b * ldt + x] == dt[b * ldt + y];
    for (int d = 0; d < 2; d++) {
        const isthmus_dist *q = d == 0 ? &a.target : &a.draft;
        if (d == 1 && a.greedy == 1) continue;
        const isthmus_sampling_params *p = &q->params;
        must |= (q->kind != 0 && q->kind != 1) || q->reserved || !q->data || q->ld < V || !extent_ok(rows[d], q->ld);
        if (q->kind == ISTHMUS_DIST_LOGITS)
            must |= !(p->temperature >= 0 && p->temperature < INFINITY) || p->top_k < 0 ||
                    !(p->top_p > 0 && p->top_p <= 1) || !(p->min_p >= 0 && p->min_p < 1) ||
                    p->repetition_penalty != 1.0f || p->reserved;
    }
    must |= (a.greedy != 1 && !a.streams) || !a.accepted || !a.tokens || a.ld_out < T + 1 ||
            (a.path && a.ld_path < T);
    (void)bad, (void)kinds_bad, (void)siblings_dup;
    /* rows: all clean -> must be accepted (sampling); greedy: replay the walk */
    int clean = 1;
    for (int d = 0; d < 2 && !must; d++) {
        const isthmus_dist *q = d == 0 ? &a.target : &a.draft;
        if (d == 1 && a.greedy) continue;
        for (int64_t r = 0; r < rows[d]; r++)
            clean &= q->kind == ISTHMUS_DIST_PROBS ? row_clean_probs(q->data + r * q->ld, V)
                                                   : row_clean_logits(q->data + r * q->ld, V);
    }
    /* greedy reference walk */
    int32_t racc[3] = {0}, rtok[3][MAXT + 1], rpath[3][MAXT];
    int greedy_bad = 0;
    if (!must && a.greedy) {
        for (int32_t b = 0; b < B && !greedy_bad; b++) {
            int32_t cur = -1, depth = 0;
            for (;;) {
                const float *x = a.target.data + ((int64_t)b * (T + 1) + cur + 1) * a.target.ld;
                if (a.target.kind == ISTHMUS_DIST_PROBS ? !row_clean_probs(x, V) : !row_clean_logits(x, V)) {
                    /* probs: the library only needs the max > 0 for the argmax */
                    int ok = 1, pos = 0;
                    if (a.target.kind == ISTHMUS_DIST_PROBS) {
                        for (int64_t i = 0; i < V; i++) ok &= x[i] >= 0 && x[i] < INFINITY, pos |= x[i] > 0;
                        ok &= pos;
                    } else ok = 0;
                    if (!ok) {
                        greedy_bad = 1;
                        break;
                    }
                }
                int64_t e = argmax(x, V);
                int32_t ch = -1;
                for (int32_t j = 0; j < T && ch < 0; j++)
                    if (parents[j] == cur && dt[b * ldt + j] == e) ch = j;
                if (ch < 0) {
                    rtok[b][depth] = (int32_t)e;
                    break;
                }
                rtok[b][depth] = (int32_t)e, rpath[b][depth] = ch;
                depth++, cur = ch;
            }
            racc[b] = depth;
        }
    }
    isthmus_status st = isthmus_verify(&a);
    if (must) {
        fz_expect_refused(st, "isthmus_verify");
    } else if (a.greedy && greedy_bad) {
        fz_expect_refused(st, "isthmus_verify (greedy walk reads a bad row)");
    } else {
        fz_check_status(st, "isthmus_verify");
        if (st && (a.greedy || clean)) fail("isthmus_verify refused a valid call with clean rows");
    }
    if (st == ISTHMUS_OK) {
        for (int32_t b = 0; b < B; b++) {
            const int32_t *o = tok + b * ldo, *pp = path + b * ldp;
            int32_t n = acc[b];
            if (n < 0 || n > T) fail("isthmus_verify: accepted count out of range");
            int32_t cur = -1;
            for (int32_t i = 0; i < n; i++) {
                if (!with_path) break;
                int32_t j = pp[i];
                if (j < 0 || j >= T || parents[j] != cur) fail("isthmus_verify: path is not a root path");
                if (o[i] != dt[b * ldt + j]) fail("isthmus_verify: accepted token is not the path's draft token");
                cur = j;
            }
            if (o[n] < 0 || o[n] >= V) fail("isthmus_verify: emitted token outside [0, vocab)");
            for (int32_t i = n + 1; i <= T; i++)
                if (o[i] != -1) fail("isthmus_verify: tokens not padded with -1");
            if (with_path)
                for (int32_t i = n; i < T; i++)
                    if (pp[i] != -1) fail("isthmus_verify: path not padded with -1");
            if (a.greedy) {
                if (n != racc[b]) fail("greedy isthmus_verify: accepted differs from the argmax walk");
                for (int32_t i = 0; i <= n; i++)
                    if (o[i] != rtok[b][i] || (with_path && i < n && pp[i] != rpath[b][i]))
                        fail("greedy isthmus_verify differs from the argmax walk");
            }
        }
    }
    /* again with the reference ISA and 3 threads: identical */
    int32_t cap = isthmus_get_isa_cap(), threads = isthmus_get_num_threads();
    set_cap_threads(ISTHMUS_ISA_REF, 3);
    memcpy(acc2, acc, (size_t)B * 4);
    memcpy(tok2, tok, (size_t)B * ldo * 4);
    memcpy(path2, path, (size_t)B * (ldp > 0 ? ldp : 1) * 4);
    if (a.accepted) a.accepted = acc2;
    if (a.tokens) a.tokens = tok2;
    if (a.path) a.path = path2;
    isthmus_status st2 = isthmus_verify(&a);
    set_cap_threads(cap, threads);
    if (st2 != st) fail("isthmus_verify: status differs between ISA variants / thread counts");
    if (st == ISTHMUS_OK && (memcmp(acc, acc2, (size_t)B * 4) || memcmp(tok, tok2, (size_t)B * ldo * 4) ||
                             (with_path && memcmp(path, path2, (size_t)B * ldp * 4))))
        fail("isthmus_verify: results differ between ISA variants / thread counts");
    free(dt), free(data[0]), free(data[1]), free(streams);
    free(acc), free(tok), free(path), free(acc2), free(tok2), free(path2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    fz_threads(&in);
    uint8_t mode = fz_u8(&in);
    if (mode < 16) { /* philox: in [0, 1), deterministic */
        uint64_t seed = fz_u64(&in), stream = fz_u64(&in);
        uint32_t draw = fz_u32(&in);
        double u = isthmus_philox_uniform(seed, stream, draw);
        if (!(u >= 0.0 && u < 1.0) || u != isthmus_philox_uniform(seed, stream, draw))
            fail("isthmus_philox_uniform outside [0, 1) or not deterministic");
    } else if (mode < 112) {
        run_sample(&in);
    } else {
        run_verify(&in);
    }
    return 0;
}
