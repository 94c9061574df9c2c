/* Fuzz target: isthmus_attention over a paged KV cache that the target fills.
 *
 * Every dtype, block sizes 1..16, GQA / MQA (q_heads = kv_heads x 1..4), a window, a softcap, lse out or
 * NULL, token trees (tree_parents valid, or hostile: a parent >= its own index, < -1, a tree with a
 * window, q_len > ISTHMUS_TREE_MAX_NODES), q_lens 0 or past the length, repeated sequences, dead ids,
 * out aliasing q (same ld, allowed; another ld, refused), scale <= 0 / NaN / inf, softcap < 0 / NaN,
 * NULL pointers, now and then a sequence longer than ISTHMUS_ATTENTION_SPLIT (the flash-decoding merge).
 * Valid calls are compared, row by row, with a scalar double reference of the masked softmax over the
 * keys read back with isthmus_kv_read: |out - ref| <= max|v| (1e-5 + 2.5 e_s) per element and
 * |lse - ref| <= 2 e_s + 1e-5 (1 + |lse|), where e_s bounds the error of one logit: 1e-5 scale
 * sum|q_i k_i| (f32 dot products, float exp), plus (s_q / 2) sum|k_i| for int8 caches (isthmus.h: q is
 * rounded to int8 with scale s_q = max|q scale| / 127 on the VNNI path); the check applies to rows whose
 * inputs are finite, whose logits stay below 1e4 in magnitude (beyond that a float logit may
 * overflow where the double one does not) and whose raw sum |q_i k_i| stays below 1e37, before softcap
 * (isthmus.h leaves scores beyond f32's range unchecked: found by the campaign, a clang build's
 * partial sums met inf - inf under softcap 5.5 and gave NaN where gcc's gave the capped value). NaN/inf rule (isthmus.h): a non-finite q is refused, and the
 * cache holds finite values only (kv_write refuses the rest; test_attention's nonfinite_rule pokes NaN into
 * the pool directly). The result must not depend on the thread count (checked again with 3 threads). */
#include "fuzz.h"

#define MAXS 3
#define LONG_LEN 2056

typedef struct seqinfo {
    int32_t id;
    int64_t len;
    float *k, *v; /* read back: [len, kv_heads * head_dim] */
} seqinfo;

static void fail(const char *what) {
    fprintf(stderr, "fuzz_attention: %s (last error: %s)\n", what, isthmus_last_error());
    abort();
}

static const float scales_bad[] = {0.0f, -0.25f, NAN, INFINITY, -0.0f};
static const float softcaps_bad[] = {-1.0f, NAN, INFINITY};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    fz_threads(&in);
    isthmus_kv_config cfg;
    uint8_t shape = fz_u8(&in);
    int long_seq = shape == 255, big_tree = shape >= 252 && shape < 255;
    cfg.layers = (int32_t)fz_range(&in, 1, 2);
    cfg.kv_heads = long_seq || big_tree ? 1 : (int32_t)fz_range(&in, 1, 2);
    cfg.head_dim = long_seq || big_tree || !fz_bool(&in) ? 16 : 32;
    cfg.block_size = 1 << fz_range(&in, 0, 4);
    if (long_seq || big_tree) cfg.block_size = 16;
    cfg.dtype = (int32_t)fz_range(&in, 0, 3);
    int nseq = (int)fz_range(&in, 1, MAXS);
    int64_t lens[MAXS];
    int64_t total_blocks = 0, maxlen = 1;
    for (int i = 0; i < nseq; i++) {
        lens[i] = fz_range(&in, 1, 20);
        if (i == 0 && long_seq) lens[i] = LONG_LEN;
        if (i == 0 && big_tree) lens[i] = ISTHMUS_TREE_MAX_NODES + 4;
        total_blocks += (lens[i] + cfg.block_size - 1) / cfg.block_size;
        maxlen = lens[i] > maxlen ? lens[i] : maxlen;
    }
    cfg.num_blocks = (int32_t)total_blocks;
    cfg.max_seqs = nseq + 1; /* one slot stays dead */
    cfg.max_seq_len = (int32_t)maxlen;
    int64_t sb, pb;
    fz_check_status(isthmus_kv_sizes(&cfg, &sb, &pb), "isthmus_kv_sizes");
    void *state = fz_alloc((size_t)sb), *pool = fz_alloc((size_t)pb);
    fz_check_status(isthmus_kv_init(&cfg, state, sb, pool, pb), "isthmus_kv_init");
    const int32_t d = cfg.head_dim, kvh = cfg.kv_heads;
    const int64_t width = (int64_t)kvh * d;
    int32_t layer = (int32_t)fz_range(&in, 0, cfg.layers - 1);
    seqinfo seqs[MAXS];
    (void)fz_u8(&in); /* was: a cache holding NaN / inf, which kv_write refuses now (kept: corpus decoding) */
    for (int i = 0; i < nseq; i++) {
        seqinfo *s = &seqs[i];
        s->len = lens[i];
        fz_check_status(isthmus_kv_seq_create(state, &s->id), "isthmus_kv_seq_create");
        fz_check_status(isthmus_kv_seq_extend(state, s->id, s->len), "isthmus_kv_seq_extend");
        float *k = fz_alloc((size_t)(s->len * width) * 4), *v = fz_alloc((size_t)(s->len * width) * 4);
        fz_fill_f32(&in, k, s->len * width);
        fz_fill_f32(&in, v, s->len * width);
        for (int64_t e = 0; e < s->len * width; e++) {
            /* kv_write refuses non-finite K/V (isthmus.h), so a cache only ever holds finite values */
            if (!isfinite(k[e])) k[e] = 0.5f;
            if (!isfinite(v[e])) v[e] = -0.5f;
            if (fabsf(k[e]) > 1e4f && isfinite(k[e])) k[e] = 1e4f; /* keep logits in a checkable range */
            if (fabsf(v[e]) > 6e4f) v[e] = copysignf(6e4f, v[e]);  /* f16 stores only |v| < 65520 */
        }
        int32_t n = (int32_t)s->len;
        isthmus_kv_write_args w = {state, layer, 1, &s->id, &n, k, width, v, width, {0, 0, 0}, NULL};
        isthmus_status st = isthmus_kv_write(&w);
        fz_check_status(st, "isthmus_kv_write");
        if (st) fail("isthmus_kv_write refused the fill");
        /* what attention reads: the stored values as f32 */
        isthmus_kv_read_args r = {state, layer, s->id, 0, s->len, k, width, v, width};
        fz_check_status(isthmus_kv_read(&r), "isthmus_kv_read");
        s->k = k, s->v = v;
    }

    /* the batch */
    int bad = 0;
    int32_t n = (int32_t)fz_range(&in, 1, 3);
    int32_t ids[4], qlens[4], which[4];
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        which[i] = (int32_t)fz_range(&in, 0, nseq - 1); /* may repeat */
        ids[i] = seqs[which[i]].id;
        int64_t len = seqs[which[i]].len;
        qlens[i] = (int32_t)fz_range(&in, 1, len < 8 ? len : long_seq ? 2 : 8);
        if (big_tree && which[i] == 0 && fz_bool(&in)) qlens[i] = ISTHMUS_TREE_MAX_NODES + 1;
        uint8_t h = fz_u8(&in);
        if (h < 6) {
            bad = 1;
            switch (h % 3) {
            case 0: qlens[i] = h < 3 ? 0 : -1; break;
            case 1: qlens[i] = (int32_t)len + 1; break;
            default: ids[i] = h < 3 ? nseq /* never created */ : -1;
            }
        }
        total += qlens[i] > 0 ? qlens[i] : 0;
    }
    int32_t ratio = (int32_t)fz_range(&in, 1, 4), q_heads = kvh * ratio;
    uint8_t hq = fz_u8(&in);
    if (hq < 4) bad = 1, q_heads = hq == 0 ? 0 : hq == 1 ? -kvh : hq == 2 ? kvh * 4097 : (kvh == 2 ? 3 : 0);
    const int32_t qh = q_heads > 0 && q_heads <= 8 ? q_heads : 1; /* hostile q_heads: refused before q is read */
    const int64_t qw = (int64_t)qh * d;
    int64_t ldq = qw + fz_range(&in, 0, 2), ldo = fz_bool(&in) ? ldq : qw + fz_range(&in, 0, 2);
    uint8_t hl = fz_u8(&in);
    if (hl < 4) bad = 1, (hl % 2 ? (ldq = qw - 1) : (ldo = qw - 1));
    int64_t rows = total > 0 ? total : 1;
    int64_t ldmax = ldq > ldo ? ldq : ldo;
    float *q = fz_alloc((size_t)(rows * ldmax) * 4), *q0 = fz_alloc((size_t)(rows * ldmax) * 4);
    float *out = fz_alloc((size_t)(rows * ldmax) * 4), *out2 = fz_alloc((size_t)(rows * ldmax) * 4);
    float *lse = fz_alloc((size_t)(rows * qh) * 4);
    float *lse2 = fz_alloc((size_t)(rows * qh) * 4);
    fz_fill_f32(&in, q, rows * ldmax);
    if (fz_u8(&in) >= 32)
        for (int64_t e = 0; e < rows * ldmax; e++)
            if (!isfinite(q[e])) q[e] = 0.25f;
    memcpy(q0, q, (size_t)(rows * ldmax) * 4);
    float scale = 1.0f / sqrtf((float)d) * (float)fz_range(&in, 1, 4) / 2.0f, softcap = 0.0f;
    uint8_t hs = fz_u8(&in);
    if (hs < 10) bad = 1, scale = scales_bad[hs % 5];
    uint8_t hc = fz_u8(&in);
    if (hc >= 160) softcap = (float)(hc - 150) / 4.0f;
    else if (hc < 6) bad = 1, softcap = softcaps_bad[hc % 3];
    int32_t window = 0;
    uint8_t hw = fz_u8(&in);
    if (hw >= 192) window = hw % 16 + 1;
    else if (hw < 4) bad = 1, window = -1 - hw;
    /* tree */
    int32_t *parents = NULL;
    uint8_t ht = fz_u8(&in);
    if (ht >= 160 || big_tree) {
        parents = fz_alloc((size_t)rows * 4);
        int64_t row = 0;
        for (int i = 0; i < n; i++)
            for (int32_t u = 0; u < (qlens[i] > 0 ? qlens[i] : 0); u++, row++)
                parents[row] = (int32_t)fz_range(&in, -1, u - 1);
        if (window) bad = 1;
        for (int i = 0; i < n; i++)
            if (qlens[i] > ISTHMUS_TREE_MAX_NODES) bad = 1;
        if (ht >= 250 && total > 0) { /* hostile: self, a later one, < -1 (a cycle needs a later parent) */
            int64_t r = fz_range(&in, 0, total - 1), u = r;
            for (int i = 0; i < n && u >= qlens[i]; i++) u -= qlens[i];
            parents[r] = ht == 250 ? (int32_t)u : ht == 251 ? (int32_t)u + 1 : ht == 252 ? -2 : INT32_MIN;
            bad = 1;
        }
    } else if (big_tree) {
        bad |= 0;
    }
    int lse_on = fz_bool(&in), alias = fz_u8(&in) < 48;
    uint8_t nulls = fz_u8(&in);
    if (nulls < 6) bad = 1;
    uint8_t hlay = fz_u8(&in);
    int32_t lay = hlay < 3 ? (hlay == 0 ? -1 : hlay == 1 ? cfg.layers : INT32_MAX) : layer;
    if (hlay < 3) bad = 1;
    int32_t nn = n;
    uint8_t hn = fz_u8(&in);
    if (hn < 3) bad = 1, nn = hn == 0 ? 0 : hn == 1 ? -1 : (1 << 24) + 1;
    float *o = alias ? q : out;
    if (alias && ldo != ldq) bad = 1;
    /* a NaN or infinite q (in the T = sum(q_lens) rows it reads) is refused (isthmus.h) */
    if (!bad)
        for (int64_t t = 0; t < rows; t++)
            for (int64_t e = 0; e < (int64_t)q_heads * d; e++)
                if (!isfinite(q[t * ldq + e])) bad = 1;
    isthmus_attention_args a = {nulls == 0 ? NULL : state, lay, nn, nulls == 1 ? NULL : ids, nulls == 2 ? NULL : qlens,
                                q_heads, nulls == 3 ? NULL : q, ldq, nulls == 4 ? NULL : o, ldo,
                                lse_on ? lse : NULL, scale, softcap, window, parents};
    if (nulls == 5) a.kv = (const uint8_t *)state + 64; /* not a state */
    isthmus_status st = isthmus_attention(&a);
    if (bad) {
        fz_expect_refused(st, "isthmus_attention");
        goto done;
    }
    fz_check_status(st, "isthmus_attention");
    if (st) fail("isthmus_attention refused a valid call");
    memcpy(out2, o, (size_t)(rows * ldmax) * 4);
    /* reference, row by row */
    {
        int64_t row = 0;
        double *s = malloc((size_t)LONG_LEN * 8);
        for (int i = 0; i < n; i++) {
            const seqinfo *si = &seqs[which[i]];
            const int64_t len = si->len, qn = qlens[i], base = len - qn;
            for (int64_t u = 0; u < qn; u++, row++) {
                const int64_t p = base + u, lo = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
                for (int32_t h = 0; h < q_heads; h++) {
                    const int32_t g = h / ratio;
                    const float *qv = q0 + row * ldq + (int64_t)h * d;
                    const float *ov = out2 + row * ldo + (int64_t)h * d;
                    int finite = 1, has_nan = 0;
                    for (int32_t e = 0; e < d; e++) finite &= isfinite(qv[e]) != 0, has_nan |= isnan(qv[e]) != 0;
                    double smax = -INFINITY, es = 0, vmax = 0, qs = 0;
                    for (int32_t e = 0; e < d; e++) qs = fmax(qs, fabs((double)qv[e] * scale));
                    for (int64_t j = lo; j <= p; j++) {
                        int vis = 1;
                        if (parents && j >= base) { /* ancestors among the new tokens, and itself */
                            int64_t x = u;
                            vis = 0;
                            while (x >= 0 && !vis) {
                                if (base + x == j) vis = 1;
                                x = parents[row - u + x];
                            }
                        }
                        if (!vis) {
                            s[j] = NAN;
                            continue;
                        }
                        const float *kv = si->k + j * width + (int64_t)g * d, *vv = si->v + j * width + (int64_t)g * d;
                        double dot = 0, mag = 0, kab = 0;
                        for (int32_t e = 0; e < d; e++) {
                            finite &= isfinite(kv[e]) && isfinite(vv[e]);
                            has_nan |= isnan(kv[e]) || isnan(vv[e]);
                            dot += (double)qv[e] * kv[e];
                            mag += fabs((double)qv[e] * kv[e]);
                            kab += fabs((double)kv[e]);
                            vmax = fmax(vmax, fabs((double)vv[e]));
                        }
                        double sc = dot * scale;
                        if (softcap > 0) sc = softcap * tanh(sc / softcap);
                        s[j] = sc;
                        smax = fmax(smax, fabs(sc));
                        /* q.k beyond f32's range (isthmus.h: not checked): the f32 partial sums may meet
                         * inf - inf, and the row is NaN, before softcap could cap it */
                        if (mag > 1e37 || mag * scale > 1e37) finite = 0;
                        double e1 = 1e-5 * scale * mag + 1e-30;
                        if (cfg.dtype == ISTHMUS_KV_S8) e1 += qs / 127.0 / 2.0 * kab * 1.01;
                        es = fmax(es, e1);
                    }
                    if (has_nan) {
                        int any = 0;
                        for (int32_t e = 0; e < d; e++) any |= isnan(ov[e]) != 0;
                        if (!any) {
                            fprintf(stderr, "row %lld head %d: out[0] %g (dtype %d bs %d len %lld q_len %lld window %d softcap %g tree %d)\n",
                                    (long long)row, h, ov[0], cfg.dtype, cfg.block_size, (long long)len, (long long)qn,
                                    window, softcap, parents != NULL);
                            fail("a row that reads a NaN has no NaN in its output");
                        }
                        continue;
                    }
                    if (!finite || smax > 1e4) continue;
                    double m = -INFINITY, l = 0;
                    for (int64_t j = lo; j <= p; j++)
                        if (!isnan(s[j])) m = fmax(m, s[j]);
                    for (int64_t j = lo; j <= p; j++) {
                        s[j] = isnan(s[j]) ? -1.0 : exp(s[j] - m); /* now the weight; -1: not visible */
                        l += s[j] >= 0 ? s[j] : 0.0;
                    }
                    for (int32_t e = 0; e < d; e++) {
                        double ref = 0;
                        for (int64_t j = lo; j <= p; j++)
                            if (s[j] >= 0) ref += s[j] / l * si->v[j * width + (int64_t)g * d + e];
                        double tol = vmax * (1e-5 + 2.5 * es) + 1e-30;
                        if (!(fabs(ov[e] - ref) <= tol)) {
                            fprintf(stderr, "row %lld head %d dim %d: out %g ref %g tol %g (dtype %d bs %d len %lld q_len %lld window %d softcap %g tree %d)\n",
                                    (long long)row, h, e, ov[e], ref, tol, cfg.dtype, cfg.block_size, (long long)len,
                                    (long long)qn, window, softcap, parents != NULL);
                            fail("attention differs from the double reference");
                        }
                    }
                    if (lse_on) {
                        double ref = m + log(l), got = lse[row * q_heads + h];
                        if (!(fabs(got - ref) <= 2 * es + 1e-5 * (1 + fabs(ref)))) {
                            fprintf(stderr, "row %lld head %d: lse %g ref %g\n", (long long)row, h, got, ref);
                            fail("lse differs from the double reference");
                        }
                    }
                }
            }
        }
        free(s);
    }
    /* the thread count never changes the result */
    if (fz_u8(&in) < 64) {
        int32_t threads = isthmus_get_num_threads();
        fz_check_status(isthmus_set_num_threads(3), "isthmus_set_num_threads");
        memcpy(q, q0, (size_t)(rows * ldmax) * 4);
        memcpy(lse2, lse, (size_t)(rows * qh) * 4);
        if (!alias) a.out = out;
        if (lse_on) a.lse = lse2;
        st = isthmus_attention(&a);
        fz_check_status(isthmus_set_num_threads(threads), "isthmus_set_num_threads");
        if (st) fail("isthmus_attention refused the same call with 3 threads");
        for (int64_t r = 0; r < total; r++)
            if (memcmp(a.out + r * ldo, out2 + r * ldo, (size_t)qw * 4) ||
                (lse_on && memcmp(lse2 + r * q_heads, lse + r * q_heads, (size_t)q_heads * 4)))
                fail("isthmus_attention: result depends on the thread count");
    }
done:
    for (int i = 0; i < nseq; i++) free(seqs[i].k), free(seqs[i].v);
    free(state), free(pool), free(q), free(q0), free(out), free(out2), free(lse), free(lse2), free(parents);
    return 0;
}
