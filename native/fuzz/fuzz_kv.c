/* Fuzz target: the paged KV cache as a state machine (isthmus_kv_sizes, _init, _get_config, _seq_create,
 * _seq_fork, _seq_free, _seq_truncate, _seq_extend, _seq_compact, _seq_length, _seq_blocks, _get_stats,
 * isthmus_kv_write, isthmus_kv_read, isthmus_rope).
 *
 * The input decodes to a configuration (hostile ones must be refused by isthmus_kv_sizes and
 * isthmus_kv_init, and so must a state or pool declared too small or misaligned), then to a sequence of
 * operations on valid and invalid sequence ids (live, freed, never created, negative, >= max_seqs). A
 * shadow model in the target (lengths per sequence and the values written per (sequence, layer,
 * position)) predicts each result:
 *  - every status: refused arguments are refused, CAPACITY exactly when the pool or max_seq_len is
 *    exhausted, and then nothing changed;
 *  - after every operation, an audit through the public API: lengths, block counts (ceil(len /
 *    block_size)), stats (live sequences, tokens, used blocks = distinct blocks in the tables, shared
 *    blocks = blocks in more than one table entry, never more than the pool), and at the end, after
 *    freeing everything, no block in use;
 *  - read-back equals what was written: bit for bit for f32 (K after isthmus_rope at the same position,
 *    which isthmus.h promises is bit-identical to the fused rotation), within the dtype's rounding for
 *    f16 / bf16 (relative 2^-11 / 2^-8, overflow to inf only past the largest finite value), within
 *    half a step (max|head| / 254) for int8.
 * With the last mode the target corrupts the state (flips bytes anywhere in the state buffer: header,
 * free list, reference counts, sequence records, block tables) and then runs operations without the
 * shadow: each must return a status code, never crash or touch memory outside the state and pool. */
#include "fuzz.h"

#define MAXSEQ 6
#define MAXLEN 48
#define MAXW (2 * 32) /* kv_heads * head_dim */

typedef struct shadow {
    isthmus_kv_config cfg;
    void *state, *pool;
    int64_t sb, pb, width;
    int live[MAXSEQ];
    int64_t len[MAXSEQ];
    /* [seq][layer][pos][width] values that were written (K after rotation), and whether they are known */
    float *k, *v;
    uint8_t *known;
    /* from the audit: how many table entries reference each block, per sequence block tables */
    int32_t refs[64];
    int32_t tab[MAXSEQ][MAXLEN];
    int32_t nb[MAXSEQ];
    int32_t free_blocks;
} shadow;

static int64_t at(const shadow *z, int seq, int layer, int64_t pos) {
    return ((int64_t)seq * z->cfg.layers + layer) * MAXLEN + pos;
}

static void fail(const char *what) {
    fprintf(stderr, "fuzz_kv: %s (last error: %s)\n", what, isthmus_last_error());
    abort();
}

/* Everything the public API says about the cache agrees with the shadow. */
static void audit(shadow *z) {
    isthmus_kv_stats st;
    fz_check_status(isthmus_kv_get_stats(z->state, &st), "isthmus_kv_get_stats");
    int32_t live = 0;
    int64_t tokens = 0;
    memset(z->refs, 0, sizeof z->refs);
    const int32_t bs = z->cfg.block_size;
    for (int s = 0; s < z->cfg.max_seqs; s++) {
        int64_t len = -1;
        isthmus_status r = isthmus_kv_seq_length(z->state, s, &len);
        z->nb[s] = 0;
        if (!z->live[s]) {
            fz_expect_refused(r, "isthmus_kv_seq_length of a dead sequence");
            continue;
        }
        fz_check_status(r, "isthmus_kv_seq_length");
        if (r != ISTHMUS_OK || len != z->len[s]) fail("sequence length differs from the shadow");
        live++;
        tokens += len;
        int64_t count = -1;
        fz_check_status(isthmus_kv_seq_blocks(z->state, s, z->tab[s], MAXLEN, &count), "isthmus_kv_seq_blocks");
        if (count != (len + bs - 1) / bs) fail("block count is not ceil(length / block_size)");
        z->nb[s] = (int32_t)count;
        for (int64_t i = 0; i < count; i++) {
            if (z->tab[s][i] < 0 || z->tab[s][i] >= z->cfg.num_blocks) fail("block id outside the pool");
            z->refs[z->tab[s][i]]++;
        }
    }
    int32_t used = 0, shared = 0;
    for (int b = 0; b < z->cfg.num_blocks; b++) used += z->refs[b] > 0, shared += z->refs[b] > 1;
    if (st.live_seqs != live || st.tokens != tokens || st.used_blocks != used || st.shared_blocks != shared ||
        st.free_blocks != z->cfg.num_blocks - used || st.used_blocks > z->cfg.num_blocks) {
        fprintf(stderr, "stats: live %d/%d tokens %lld/%lld used %d/%d shared %d/%d free %d\n", st.live_seqs, live,
                (long long)st.tokens, (long long)tokens, st.used_blocks, used, st.shared_blocks, shared,
                st.free_blocks);
        fail("stats differ from the shadow");
    }
    z->free_blocks = st.free_blocks;
}

/* A sequence id: mostly a live one, else freed / never created / negative / too large. */
static int32_t pick_seq(fz_in *in, const shadow *z) {
    uint8_t sel = fz_u8(in);
    if (sel < 200) {
        int n = 0, ids[MAXSEQ];
        for (int s = 0; s < z->cfg.max_seqs; s++)
            if (z->live[s]) ids[n++] = s;
        if (n) return ids[sel % n];
    }
    switch (sel % 5) {
    case 0: return -1;
    case 1: return INT32_MIN;
    case 2: return z->cfg.max_seqs;
    case 3: return INT32_MAX;
    default: return (int32_t)(sel % z->cfg.max_seqs); /* live or not */
    }
}
static int is_live(const shadow *z, int32_t s) { return s >= 0 && s < z->cfg.max_seqs && z->live[s]; }

/* dtype-aware comparison of a read-back value with what was written */
static void check_value(const shadow *z, float want, float got, float amax, const char *what) {
    int ok;
    switch (z->cfg.dtype) {
    case ISTHMUS_KV_F32: ok = (isnan(want) && isnan(got)) || want == got; break;
    case ISTHMUS_KV_F16:
        if (isnan(want)) ok = isnan(got);
        else if (isinf(got)) ok = signbit(got) == signbit(want) && fabsf(want) > 65504.0f;
        else ok = fabsf(want) <= 65520.0f && fabsf(want - got) <= fabsf(want) * 0x1p-11f + 0x1p-25f;
        break;
    case ISTHMUS_KV_BF16:
        if (isnan(want)) ok = isnan(got);
        else if (isinf(got)) ok = signbit(got) == signbit(want) && fabsf(want) > 0x1.fep127f;
        else ok = fabsf(want - got) <= fabsf(want) * 0x1p-8f + 0x1p-133f;
        break;
    default: ok = isfinite(got) && fabsf(want - got) <= amax * (0.5f / 127.0f) * 1.0001f + 1e-37f;
    }
    if (!ok) {
        fprintf(stderr, "%s: wrote %a, read %a (dtype %d, head max %g)\n", what, want, got, z->cfg.dtype, amax);
        fail("read-back differs from what was written");
    }
}

static void check_row(const shadow *z, const float *want, const float *got, const char *what) {
    const int32_t d = z->cfg.head_dim;
    for (int32_t h = 0; h < z->cfg.kv_heads; h++) {
        float amax = 0;
        for (int32_t i = 0; i < d; i++) amax = fmaxf(amax, fabsf(want[h * d + i]));
        for (int32_t i = 0; i < d; i++) check_value(z, want[h * d + i], got[h * d + i], amax, what);
    }
}

static void op_read(fz_in *in, shadow *z) {
    int32_t seq = pick_seq(in, z), layer = (int32_t)fz_range(in, -1, z->cfg.layers);
    int64_t len = is_live(z, seq) ? z->len[seq] : 0;
    int64_t start = fz_range(in, -1, len), count = fz_range(in, -1, len - (start > 0 ? start : 0) + 1);
    int which = fz_range(in, 0, 3); /* 0: none (refused), 1: k, 2: v, 3: both */
    int64_t ld = z->width + fz_range(in, 0, 2);
    if (fz_u8(in) < 6) ld = z->width - 1;
    int bad = !is_live(z, seq) || layer < 0 || layer >= z->cfg.layers || start < 0 || count < 0 ||
              start + count > len || which == 0 || ld < z->width;
    int64_t rows = bad ? 1 : count > 0 ? count : 1;
    float *k = fz_alloc((size_t)(rows * (ld > 0 ? ld : 1)) * 4), *v = fz_alloc((size_t)(rows * (ld > 0 ? ld : 1)) * 4);
    isthmus_kv_read_args a = {z->state, layer, seq, start, count, which & 1 ? k : NULL, ld, which & 2 ? v : NULL, ld};
    isthmus_status st = isthmus_kv_read(&a);
    if (bad) {
        fz_expect_refused(st, "isthmus_kv_read");
    } else {
        fz_check_status(st, "isthmus_kv_read");
        if (st != ISTHMUS_OK) fail("isthmus_kv_read refused a valid read");
        for (int64_t j = 0; j < count; j++) {
            int64_t w = at(z, seq, layer, start + j);
            if (!z->known[w]) continue;
            if (which & 1) check_row(z, z->k + w * MAXW, k + j * ld, "K");
            if (which & 2) check_row(z, z->v + w * MAXW, v + j * ld, "V");
        }
    }
    free(k);
    free(v);
}

static const float thetas[] = {10000.0f, 500000.0f, 2.0f, 1.0f, 0.5f, NAN, INFINITY, -10000.0f};

static isthmus_rope_params pick_rope(fz_in *in, int32_t head_dim, int *bad) {
    isthmus_rope_params r = {0, 0, 10000.0f};
    uint8_t sel = fz_u8(in);
    r.style = sel % 3;
    if (sel >= 240) r.style = sel % 2 ? 3 : -1;
    if (r.style == ISTHMUS_ROPE_NONE && sel < 240) return r;
    uint8_t rd = fz_u8(in);
    r.rotary_dim = rd < 128 ? 0 : rd < 240 ? 2 * (int32_t)(rd % (head_dim / 2 + 1)) : rd % 2 ? head_dim + 2 : 3;
    r.theta = thetas[fz_u8(in) % 8 < 6 ? (fz_u8(in) % 3) : 3 + fz_u8(in) % 5];
    if (r.style < 0 || r.style > 2 || r.rotary_dim < 0 || r.rotary_dim > head_dim || r.rotary_dim % 2 ||
        !(r.theta > 1.0f) || !isfinite(r.theta))
        *bad = 1;
    return r;
}

static void op_write(fz_in *in, shadow *z) {
    int bad = 0;
    int32_t layer = (int32_t)fz_range(in, 0, z->cfg.layers - 1);
    if (fz_u8(in) < 4) layer = fz_bool(in) ? -1 : z->cfg.layers, bad = 1;
    int32_t n = (int32_t)fz_range(in, 1, 3);
    if (n > z->cfg.max_seqs) bad = 1;
    int32_t seqs[3], nt[3];
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        seqs[i] = pick_seq(in, z);
        int64_t len = is_live(z, seqs[i]) ? z->len[seqs[i]] : 0;
        nt[i] = (int32_t)fz_range(in, 1, len > 0 ? len : 1);
        if (fz_u8(in) < 4) nt[i] = fz_bool(in) ? 0 : (int32_t)len + 1;
        if (!is_live(z, seqs[i]) || nt[i] < 1 || nt[i] > len) bad = 1;
        for (int j = 0; j < i; j++) bad |= seqs[j] == seqs[i];
        if (!bad) {
            /* the written positions must be in blocks no other table entry references */
            const int32_t bs = z->cfg.block_size;
            for (int64_t b = (len - nt[i]) / bs; b < z->nb[seqs[i]]; b++) bad |= z->refs[z->tab[seqs[i]][b]] > 1;
        }
        total += nt[i] > 0 ? nt[i] : 0;
    }
    isthmus_rope_params rope = pick_rope(in, z->cfg.head_dim, &bad);
    int64_t ld = z->width + fz_range(in, 0, 3);
    if (fz_u8(in) < 4) ld = z->width - 1, bad = 1;
    int64_t rows = total > 0 ? total : 1;
    float *k = fz_alloc((size_t)(rows * ld) * 4), *v = fz_alloc((size_t)(rows * ld) * 4);
    float *kr = fz_alloc((size_t)(rows * z->width) * 4);
    int64_t *pos = fz_alloc((size_t)rows * 8);
    fz_fill_f32(in, k, rows * ld);
    fz_fill_f32(in, v, rows * ld);
    int use_pos = fz_bool(in);
    int64_t r = 0;
    for (int i = 0; i < n && !bad; i++)
        for (int32_t j = 0; j < nt[i]; j++, r++) pos[r] = z->len[seqs[i]] - nt[i] + j;
    if (use_pos)
        for (r = 0; r < rows; r++) {
            uint8_t p = fz_u8(in);
            if (p < 200) pos[r] = p;
            else if (p < 250) pos[r] = (int64_t)1 << (p - 200 + 20 > 40 ? 40 : p - 200 + 20);
            else pos[r] = p % 2 ? -1 : ((int64_t)1 << 40) + 1, bad = 1;
        }
    int nulls = fz_u8(in);
    if (nulls < 5) bad = 1;
    /* the expected K: rotated by isthmus_rope at the same positions */
    int s8_bad = 0;
    if (!bad) {
        for (r = 0; r < total; r++) memcpy(kr + r * z->width, k + r * ld, (size_t)z->width * 4);
        if (rope.style != ISTHMUS_ROPE_NONE) {
            isthmus_rope_args ra = {total, z->cfg.kv_heads, z->cfg.head_dim, kr, z->width, pos, rope};
            isthmus_status st = isthmus_rope(&ra);
            fz_check_status(st, "isthmus_rope");
            if (st) fail("isthmus_rope refused what isthmus_kv_write accepts");
        }
        /* kv_write refuses NaN / inf K and V for every dtype, and values the store would round to inf (f16:
         * |x| >= 65520, bf16: |x| >= 0x1.ffp127), checked on K as passed AND on K after RoPE (isthmus.h: "a K
         * row that RoPE takes out of that range is refused too"); the CI campaign found a bf16 K of 3.4e38 that
         * RoPE rotated below the limit: refused by the library, taken as valid here when only kr was checked */
        float lim = z->cfg.dtype == ISTHMUS_KV_F16 ? 65520.0f : z->cfg.dtype == ISTHMUS_KV_BF16 ? 0x1.ffp127f : INFINITY;
        for (r = 0; r < total; r++)
            for (int64_t i = 0; i < z->width; i++)
                s8_bad |= !(fabsf(k[r * ld + i]) < lim) || !(fabsf(kr[r * z->width + i]) < lim) ||
                          !(fabsf(v[r * ld + i]) < lim);
    }
    isthmus_kv_write_args a = {nulls == 0 ? NULL : z->state, layer, n, nulls == 1 ? NULL : seqs,
                               nulls == 2 ? NULL : nt, nulls == 3 ? NULL : k, ld, nulls == 4 ? NULL : v, ld, rope,
                               use_pos ? pos : NULL};
    isthmus_status st = isthmus_kv_write(&a);
    if (bad || s8_bad) {
        fz_expect_refused(st, "isthmus_kv_write");
    } else {
        fz_check_status(st, "isthmus_kv_write");
        if (st != ISTHMUS_OK) fail("isthmus_kv_write refused a valid write");
    }
    if (!bad) { /* record (a refused non-finite write leaves those positions unknown: heads stored before
                * the refusal may stay written, isthmus.h) */
        r = 0;
        for (int i = 0; i < n; i++)
            for (int32_t j = 0; j < nt[i]; j++, r++) {
                int64_t w = at(z, seqs[i], layer, z->len[seqs[i]] - nt[i] + j);
                memcpy(z->k + w * MAXW, kr + r * z->width, (size_t)z->width * 4);
                for (int64_t e = 0; e < z->width; e++) z->v[w * MAXW + e] = v[r * ld + e];
                z->known[w] = !s8_bad;
            }
    }
    free(k);
    free(v);
    free(kr);
    free(pos);
}

static void copy_seq(shadow *z, int to, int from) {
    for (int l = 0; l < z->cfg.layers; l++) {
        int64_t a = at(z, to, l, 0), b = at(z, from, l, 0);
        memcpy(z->k + a * MAXW, z->k + b * MAXW, (size_t)MAXLEN * MAXW * 4);
        memcpy(z->v + a * MAXW, z->v + b * MAXW, (size_t)MAXLEN * MAXW * 4);
        memcpy(z->known + a, z->known + b, MAXLEN);
    }
}
static void forget(shadow *z, int s, int64_t from) {
    for (int l = 0; l < z->cfg.layers; l++)
        for (int64_t p = from; p < MAXLEN; p++) z->known[at(z, s, l, p)] = 0;
}

static void op_compact(fz_in *in, shadow *z) {
    int32_t seq = pick_seq(in, z);
    int64_t len = is_live(z, seq) ? z->len[seq] : 0;
    int64_t start = fz_range(in, -1, len + 1);
    int bad = !is_live(z, seq) || start < 0 || start > len;
    int64_t span = bad ? 0 : len - start;
    int32_t keep[MAXLEN + 2];
    for (int i = 0; i < MAXLEN + 2; i++) keep[i] = i;
    int64_t nk = 0;
    uint64_t bits = fz_u64(in);
    for (int64_t i = 0; i < span; i++)
        if (bits >> (i % 64) & 1) keep[nk++] = (int32_t)i;
    uint8_t h = fz_u8(in);
    if (h < 8 && nk > 0) keep[fz_range(in, 0, nk - 1)] = h % 2 ? (int32_t)span : -1, bad = 1;
    else if (h < 16 && nk > 1) keep[nk - 1] = keep[nk - 2], bad = 1;
    else if (h < 20) nk = span + 1, bad = 1; /* more than there is */
    else if (h < 22) nk = -1, bad = 1;
    const int32_t *kp = (h >= 22 && h < 26 && nk > 0) ? (bad = 1, NULL) : keep;
    /* copies needed: destination blocks from the first moved position that a fork shares */
    int cow = 0, first = 0;
    if (!bad) {
        while (first < nk && keep[first] == first) first++;
        if (first < nk) {
            const int32_t bs = z->cfg.block_size;
            for (int64_t b = (start + first) / bs; b <= (start + nk - 1) / bs; b++) cow += z->refs[z->tab[seq][b]] > 1;
        }
    }
    isthmus_status st = isthmus_kv_seq_compact(z->state, seq, start, kp, nk);
    if (bad) {
        fz_expect_refused(st, "isthmus_kv_seq_compact");
        return;
    }
    fz_check_status(st, "isthmus_kv_seq_compact");
    if (cow > z->free_blocks) {
        if (st != ISTHMUS_ERR_CAPACITY) fail("isthmus_kv_seq_compact: expected CAPACITY");
        return;
    }
    if (st != ISTHMUS_OK) fail("isthmus_kv_seq_compact refused a valid compaction");
    for (int l = 0; l < z->cfg.layers; l++)
        for (int64_t i = first; i < nk; i++) {
            int64_t d = at(z, seq, l, start + i), s = at(z, seq, l, start + keep[i]);
            memcpy(z->k + d * MAXW, z->k + s * MAXW, MAXW * 4);
            memcpy(z->v + d * MAXW, z->v + s * MAXW, MAXW * 4);
            z->known[d] = z->known[s];
        }
    z->len[seq] = start + nk;
    forget(z, seq, start + nk);
}

static void op_rope(fz_in *in, shadow *z) {
    int bad = 0;
    int64_t tokens = fz_size(in, 4, 8, &bad), heads = fz_size(in, 3, 8, &bad);
    int64_t d = 2 * fz_range(in, 1, 40);
    if (fz_u8(in) < 6) d = fz_bool(in) ? 7 : (1 << 20) + 2, bad = 1;
    isthmus_rope_params rope = pick_rope(in, (int32_t)d, &bad);
    if (rope.style == ISTHMUS_ROPE_NONE) bad = 1;
    int64_t ld = bad ? 1 : heads * d + fz_range(in, 0, 2);
    if (!bad && fz_u8(in) < 6) ld = heads * d - 1, bad = 1;
    int64_t n = bad ? 1 : tokens * ld;
    float *x = fz_alloc((size_t)n * 4), *x0 = fz_alloc((size_t)n * 4);
    int64_t *pos = fz_alloc((size_t)(bad ? 1 : tokens) * 8);
    fz_fill_f32(in, x, n);
    memcpy(x0, x, (size_t)n * 4);
    for (int64_t t = 0; !bad && t < tokens; t++) {
        uint8_t p = fz_u8(in);
        pos[t] = p < 250 ? p * 37 : p == 250 ? -1 : p == 251 ? ((int64_t)1 << 40) + 1 : (int64_t)1 << 40;
        if (p == 250 || p == 251) bad = 1;
    }
    int nulls = fz_u8(in);
    if (nulls < 2) bad = 1;
    isthmus_rope_args a = {tokens, heads, d, nulls == 0 ? NULL : x, ld, nulls == 1 ? NULL : pos, rope};
    isthmus_status st = isthmus_rope(&a);
    if (bad) {
        fz_expect_refused(st, "isthmus_rope");
    } else {
        fz_check_status(st, "isthmus_rope");
        if (st) fail("isthmus_rope refused valid arguments");
        /* against a double reference, where the input is ordinary */
        const int64_t rot = rope.rotary_dim ? rope.rotary_dim : d;
        for (int64_t t = 0; t < tokens && pos[t] < 100000; t++)
            for (int64_t hh = 0; hh < heads; hh++) {
                const float *xi = x0 + t * ld + hh * d;
                const float *y = x + t * ld + hh * d;
                for (int64_t i = 0; i < rot / 2; i++) {
                    int64_t i0 = rope.style == ISTHMUS_ROPE_INTERLEAVED ? 2 * i : i;
                    int64_t i1 = rope.style == ISTHMUS_ROPE_INTERLEAVED ? 2 * i + 1 : i + rot / 2;
                    double a0 = xi[i0], a1 = xi[i1];
                    if (!(fabs(a0) < 1e30 && fabs(a1) < 1e30)) continue;
                    double ang = (double)pos[t] * pow((double)rope.theta, -2.0 * (double)i / (double)rot);
                    double y0 = a0 * cos(ang) - a1 * sin(ang), y1 = a1 * cos(ang) + a0 * sin(ang);
                    double tol = 1e-6 * (fabs(a0) + fabs(a1)) + 1e-37;
                    if (fabs(y[i0] - y0) > tol || fabs(y[i1] - y1) > tol) {
                        fprintf(stderr, "rope t %lld pos %lld pair %lld: (%g, %g) -> (%g, %g), want (%g, %g)\n",
                                (long long)t, (long long)pos[t], (long long)i, a0, a1, y[i0], y[i1], y0, y1);
                        fail("isthmus_rope differs from the double reference");
                    }
                }
                for (int64_t i = rot; i < d; i++)
                    if (memcmp(&y[i], &xi[i], 4)) fail("isthmus_rope changed a dimension past rotary_dim");
            }
    }
    (void)z;
    free(x);
    free(x0);
    free(pos);
}

/* Operations on a corrupted state: any status, never a crash. */
static void corrupt_run(fz_in *in, shadow *z) {
    int flips = 1 + fz_u8(in) % 8;
    uint8_t *st = z->state;
    for (int i = 0; i < flips; i++) {
        uint8_t sel = fz_u8(in);
        int64_t off = sel < 128 ? fz_range(in, 0, 191 < z->sb - 1 ? 191 : z->sb - 1) : fz_range(in, 0, z->sb - 1);
        st[off] ^= (uint8_t)(fz_u8(in) | 1);
    }
    float buf[4 * MAXW];
    int32_t blocks[MAXLEN];
    for (int i = 0; i < 12 && in->n; i++) {
        int32_t s = (int32_t)fz_range(in, -1, z->cfg.max_seqs), c = -1;
        int64_t x = 0;
        isthmus_status r;
        switch (fz_u8(in) % 12) {
        case 0: r = isthmus_kv_seq_create(z->state, &c); break;
        case 1: r = isthmus_kv_seq_fork(z->state, s, &c); break;
        case 2: r = isthmus_kv_seq_free(z->state, s); break;
        case 3: r = isthmus_kv_seq_truncate(z->state, s, fz_range(in, 0, 8)); break;
        case 4: r = isthmus_kv_seq_extend(z->state, s, fz_range(in, 1, 40)); break;
        case 5: {
            int32_t keep[2] = {0, (int32_t)fz_range(in, 1, 3)};
            int64_t first = fz_range(in, 0, 4);
            int64_t nkeep = fz_range(in, 0, 2);
            r = isthmus_kv_seq_compact(z->state, s, first, keep, nkeep);
            break;
        }
        case 6: r = isthmus_kv_seq_length(z->state, s, &x); break;
        case 7: r = isthmus_kv_seq_blocks(z->state, s, blocks, MAXLEN, &x); break;
        case 8: {
            isthmus_kv_stats ks;
            r = isthmus_kv_get_stats(z->state, &ks);
            break;
        }
        case 9: {
            int32_t n = (int32_t)fz_range(in, 1, 4);
            for (int e = 0; e < 4 * MAXW; e++) buf[e] = (float)e / 64.0f;
            isthmus_kv_write_args a = {z->state, (int32_t)fz_range(in, 0, z->cfg.layers - 1), 1, &s, &n, buf,
                                       z->width, buf, z->width, {0, 0, 0}, NULL};
            r = isthmus_kv_write(&a);
            break;
        }
        case 10: {
            int32_t layer = (int32_t)fz_range(in, 0, z->cfg.layers - 1);
            int64_t start = fz_range(in, 0, 2);
            int64_t count = fz_range(in, 0, 2);
            isthmus_kv_read_args a = {z->state, layer, s, start, count, buf, z->width, buf + 2 * MAXW, z->width};
            r = isthmus_kv_read(&a);
            break;
        }
        default: {
            isthmus_kv_config cfg;
            r = isthmus_kv_get_config(z->state, &cfg);
        }
        }
        fz_check_status(r, "an entry on a corrupted KV cache state");
    }
}

static void decode_config(fz_in *in, isthmus_kv_config *c) {
    c->layers = (int32_t)fz_range(in, 1, 2);
    c->kv_heads = (int32_t)fz_range(in, 1, 2);
    c->head_dim = fz_bool(in) ? 32 : 16;
    c->block_size = 1 << fz_range(in, 0, 4);
    c->dtype = (int32_t)fz_range(in, 0, 3);
    c->num_blocks = (int32_t)fz_range(in, 1, 24);
    c->max_seqs = (int32_t)fz_range(in, 1, MAXSEQ);
    c->max_seq_len = (int32_t)fz_range(in, 1, MAXLEN);
}

/* Hostile configurations: refused by both entries. Huge but valid ones: sizes only. */
static void hostile_config(fz_in *in, isthmus_kv_config c) {
    static const int32_t vals[] = {0, -1, INT32_MIN, INT32_MAX, 3, 17, 513, 528, 512, 256, 4, (1 << 24) + 1};
    int32_t v = vals[fz_u8(in) % 12];
    int field = fz_u8(in) % 8;
    ((int32_t *)&c)[field] = v;
    int bad = v < 1;
    switch (field) {
    case 2: bad |= v % 16 != 0 || v > 512; break;
    case 3: bad |= ((uint32_t)v & ((uint32_t)v - 1)) != 0 || v > 256; break;
    case 4: bad = v < 0 || v > 3; break;
    case 7: bad |= v > (1 << 24); break;
    }
    int64_t sb = -1, pb = -1;
    isthmus_status st = isthmus_kv_sizes(fz_bool(in) ? &c : (bad = 1, NULL), &sb, &pb);
    if (bad) fz_expect_refused(st, "isthmus_kv_sizes");
    fz_check_status(st, "isthmus_kv_sizes");
    if (st == ISTHMUS_OK && (sb <= 64 || pb <= 0)) fail("isthmus_kv_sizes returned an impossible size");
    /* hostile, or too large for the 64 bytes offered: refused either way */
    uint8_t dummy[64] __attribute__((aligned(64)));
    fz_expect_refused(isthmus_kv_init(&c, dummy, 64, dummy, 64), "isthmus_kv_init (hostile or too small)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    fz_threads(&in);
    shadow z;
    memset(&z, 0, sizeof z);
    uint8_t mode = fz_u8(&in);
    decode_config(&in, &z.cfg);
    if (mode < 24) {
        hostile_config(&in, z.cfg);
        return 0;
    }
    fz_check_status(isthmus_kv_sizes(&z.cfg, &z.sb, &z.pb), "isthmus_kv_sizes");
    if (z.sb <= 0 || z.pb <= 0) fail("isthmus_kv_sizes of a valid configuration");
    z.state = fz_alloc((size_t)z.sb);
    z.pool = fz_alloc((size_t)z.pb);
    /* too small, misaligned, NULL: refused */
    uint8_t h = fz_u8(&in);
    if (h < 40) {
        int64_t sb = z.sb - (h % 4 == 0), pb = z.pb - (h % 4 == 1);
        void *st = h % 4 == 2 ? (uint8_t *)z.state + 8 : z.state, *pl = h % 4 == 3 ? (uint8_t *)z.pool + 32 : z.pool;
        if (h >= 36) st = NULL;
        fz_expect_refused(isthmus_kv_init(&z.cfg, st, sb, pl, pb), "isthmus_kv_init (buffer too small or misaligned)");
    }
    fz_check_status(isthmus_kv_init(&z.cfg, z.state, z.sb, z.pool, z.pb), "isthmus_kv_init");
    isthmus_kv_config back;
    fz_check_status(isthmus_kv_get_config(z.state, &back), "isthmus_kv_get_config");
    if (memcmp(&back, &z.cfg, sizeof back)) fail("isthmus_kv_get_config differs from the configuration");
    z.width = (int64_t)z.cfg.kv_heads * z.cfg.head_dim;
    size_t cells = (size_t)MAXSEQ * z.cfg.layers * MAXLEN;
    z.k = malloc(cells * MAXW * 4); /* read only where known[] is set */
    z.v = malloc(cells * MAXW * 4);
    if (!z.k || !z.v) abort();
    z.known = calloc(cells, 1);
    audit(&z);

    int ops = 1 + fz_u8(&in) % 32;
    for (int op = 0; op < ops && in.n; op++) {
        uint8_t o = fz_u8(&in) % 13;
        isthmus_status st;
        int32_t s, c = -1;
        switch (o) {
        case 0: case 1: { /* create */
            int freeslot = -1;
            for (int i = 0; i < z.cfg.max_seqs && freeslot < 0; i++)
                if (!z.live[i]) freeslot = i;
            int null = fz_u8(&in) < 4;
            st = isthmus_kv_seq_create(z.state, null ? NULL : &c);
            if (null) {
                fz_expect_refused(st, "isthmus_kv_seq_create with seq NULL");
                break;
            }
            fz_check_status(st, "isthmus_kv_seq_create");
            if (freeslot < 0) {
                if (st != ISTHMUS_ERR_CAPACITY) fail("isthmus_kv_seq_create: expected CAPACITY");
                break;
            }
            if (st || c < 0 || c >= z.cfg.max_seqs || z.live[c]) fail("isthmus_kv_seq_create: bad id");
            z.live[c] = 1, z.len[c] = 0;
            forget(&z, c, 0);
            break;
        }
        case 2: { /* fork */
            s = pick_seq(&in, &z);
            int freeslot = 0;
            for (int i = 0; i < z.cfg.max_seqs; i++) freeslot |= !z.live[i];
            st = isthmus_kv_seq_fork(z.state, s, &c);
            if (!is_live(&z, s)) {
                fz_expect_refused(st, "isthmus_kv_seq_fork of a dead parent");
                break;
            }
            fz_check_status(st, "isthmus_kv_seq_fork");
            if (!freeslot) {
                if (st != ISTHMUS_ERR_CAPACITY) fail("isthmus_kv_seq_fork: expected CAPACITY");
                break;
            }
            if (st || c < 0 || c >= z.cfg.max_seqs || z.live[c]) fail("isthmus_kv_seq_fork: bad child id");
            z.live[c] = 1, z.len[c] = z.len[s];
            copy_seq(&z, c, s);
            break;
        }
        case 3: /* free */
            s = pick_seq(&in, &z);
            st = isthmus_kv_seq_free(z.state, s);
            if (!is_live(&z, s)) {
                fz_expect_refused(st, "isthmus_kv_seq_free of a dead sequence");
                break;
            }
            fz_check_status(st, "isthmus_kv_seq_free");
            if (st) fail("isthmus_kv_seq_free refused a live sequence");
            z.live[s] = 0;
            break;
        case 4: { /* truncate */
            s = pick_seq(&in, &z);
            int64_t len = is_live(&z, s) ? z.len[s] : 0, to = fz_range(&in, -1, len + 1);
            st = isthmus_kv_seq_truncate(z.state, s, to);
            if (!is_live(&z, s) || to < 0 || to > len) {
                fz_expect_refused(st, "isthmus_kv_seq_truncate");
                break;
            }
            fz_check_status(st, "isthmus_kv_seq_truncate");
            if (st) fail("isthmus_kv_seq_truncate refused a valid length");
            z.len[s] = to;
            forget(&z, s, to);
            break;
        }
        case 5: case 6: { /* extend */
            s = pick_seq(&in, &z);
            uint8_t e = fz_u8(&in);
            int64_t n = e < 8 ? (e % 2 ? 0 : -5) : e < 12 ? INT64_MAX : 1 + e % 20;
            st = isthmus_kv_seq_extend(z.state, s, n);
            if (!is_live(&z, s) || n < 1) {
                fz_expect_refused(st, "isthmus_kv_seq_extend");
                break;
            }
            fz_check_status(st, "isthmus_kv_seq_extend");
            const int64_t bs = z.cfg.block_size, len = z.len[s];
            int capacity = n > z.cfg.max_seq_len - len;
            if (!capacity) {
                int64_t need = (len + n + bs - 1) / bs - z.nb[s];
                int cow = len % bs != 0 && z.refs[z.tab[s][z.nb[s] - 1]] > 1;
                capacity = need + cow > z.free_blocks;
            }
            if (capacity != (st == ISTHMUS_ERR_CAPACITY) || (!capacity && st)) {
                fprintf(stderr, "extend seq %d len %lld by %lld: status %d\n", s, (long long)len, (long long)n, st);
                fail("isthmus_kv_seq_extend: CAPACITY not exactly when the pool or max_seq_len is exhausted");
            }
            if (!capacity) {
                forget(&z, s, len); /* new positions hold unspecified values */
                z.len[s] = len + n;
            }
            break;
        }
        case 7: case 8: op_write(&in, &z); break;
        case 9: op_read(&in, &z); break;
        case 10: op_compact(&in, &z); break;
        case 11: op_rope(&in, &z); break;
        default: {
            int64_t cap = fz_range(&in, -1, 4), count = -1;
            s = pick_seq(&in, &z);
            int32_t blocks[4];
            st = isthmus_kv_seq_blocks(z.state, s, fz_u8(&in) < 8 ? NULL : blocks, cap, &count);
            fz_check_status(st, "isthmus_kv_seq_blocks");
            if (!is_live(&z, s) || cap < 0) fz_expect_refused(st, "isthmus_kv_seq_blocks");
            else if (st == ISTHMUS_OK) {
                if (count != z.nb[s]) fail("isthmus_kv_seq_blocks count");
                for (int64_t i = 0; i < cap && i < count; i++)
                    if (blocks[i] != z.tab[s][i]) fail("isthmus_kv_seq_blocks ids");
            }
        }
        }
        audit(&z);
    }
    if (mode >= 232 && in.n) {
        corrupt_run(&in, &z);
    } else {
        for (int s = 0; s < z.cfg.max_seqs; s++)
            if (z.live[s]) {
                fz_check_status(isthmus_kv_seq_free(z.state, s), "isthmus_kv_seq_free");
                z.live[s] = 0;
            }
        audit(&z);
        if (z.free_blocks != z.cfg.num_blocks) fail("blocks in use after freeing every sequence");
    }
    free(z.state);
    free(z.pool);
    free(z.k);
    free(z.v);
    free(z.known);
    return 0;
}
