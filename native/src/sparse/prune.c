/*
 * isthmus_prune_mask: magnitude / Wanda pruning masks with exact removal counts.
 *
 * Every weight (block) gets a 64-bit key: the f32 bits of its score (scores are >= 0, so their bit
 * patterns order like the values) above a 32-bit hash of (seed, row, column) that orders equal scores.
 * The lowest keys are removed: per competing set (a row, the matrix, a group of nm_m, the blocks) a
 * quickselect (expected O(n)) finds the key of rank `count`; keys below it are removed, and keys equal
 * to it (a hash collision between equal scores) are removed in row-major order until the count is met.
 * So the count is exact and the mask depends on (w, act_norm, seed) only, never on the thread count.
 * Rows are spread over the thread pool for PER_ROW and N_M; GLOBAL and BLOCK select over one key array.
 * Score: |w| (magnitude) or |w| * act_norm[k] as an f32 product (Wanda); a block's score is its L2
 * norm, sqrt of the double sum of its scores squared, rounded to f32.
 */
#include "sparse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* tiebreak of (seed, row, col): 32 bits of a splitmix64 chain */
static inline uint32_t tie_hash(uint64_t seed, int64_t row, int64_t col) {
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ull);
    h = mix64(h ^ ((uint64_t)row * 0xd6e8feb86659fd93ull));
    h = mix64(h ^ ((uint64_t)col + 0x632be59bd9b4e019ull));
    return (uint32_t)(h >> 32);
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float score_of(const isthmus_prune_args *a, int64_t r, int64_t c) {
    float s = fabsf(a->w[r * a->ldw + c]);
    if (a->act_norm) s = s * a->act_norm[c];
    return s + 0.0f; /* -0 never occurs (|w| >= 0, act_norm >= 0), +0.0f keeps it so */
}

static inline uint64_t key_of(const isthmus_prune_args *a, int64_t r, int64_t c) {
    return (uint64_t)f32_bits(score_of(a, r, c)) << 32 | tie_hash(a->seed, r, c);
}

/* Rearranges v[0, n) so v[kth] is the key of rank kth (0-based) in ascending order. */
static void select_kth(uint64_t *v, int64_t n, int64_t kth) {
    int64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        if (hi - lo < 16) { /* insertion sort */
            for (int64_t i = lo + 1; i <= hi; i++) {
                uint64_t x = v[i];
                int64_t j = i - 1;
                while (j >= lo && v[j] > x) { v[j + 1] = v[j]; j--; }
                v[j + 1] = x;
            }
            return;
        }
        int64_t mid = lo + (hi - lo) / 2;
        /* median of three into v[mid] */
        if (v[mid] < v[lo]) { uint64_t t = v[mid]; v[mid] = v[lo]; v[lo] = t; }
        if (v[hi] < v[lo]) { uint64_t t = v[hi]; v[hi] = v[lo]; v[lo] = t; }
        if (v[hi] < v[mid]) { uint64_t t = v[hi]; v[hi] = v[mid]; v[mid] = t; }
        uint64_t pivot = v[mid];
        /* Hoare partition: [lo, j] <= pivot <= [j + 1, hi] */
        int64_t i = lo - 1, j = hi + 1;
        for (;;) {
            do i++; while (v[i] < pivot);
            do j--; while (v[j] > pivot);
            if (i >= j) break;
            uint64_t t = v[i]; v[i] = v[j]; v[j] = t;
        }
        if (kth <= j) hi = j;
        else lo = j + 1;
    }
}

/* Threshold of a set of n keys when `count` are removed: removal is key < t, plus the first `eq`
 * keys equal to t in the set's order. count == 0: nothing is removed (eq = 0, t = 0 and no key is < 0). */
typedef struct thresh { uint64_t t; int64_t eq; } thresh;

static thresh threshold_of(uint64_t *keys, int64_t n, int64_t count) {
    thresh th = {0, 0};
    if (count <= 0) return th;
    if (count >= n) { th.t = UINT64_MAX; th.eq = n; return th; }
    select_kth(keys, n, count - 1);
    th.t = keys[count - 1];
    int64_t less = 0;
    for (int64_t i = 0; i < n; i++) less += keys[i] < th.t;
    th.eq = count - less; /* >= 1: the key of rank count - 1 is itself removed */
    return th;
}

static inline int removed(uint64_t key, const thresh *th, int64_t *eq_left) {
    if (key < th->t) return 1;
    if (key == th->t && *eq_left > 0) { (*eq_left)--; return 1; }
    return 0;
}

typedef struct prune_ctx {
    const isthmus_prune_args *a;
    int64_t rows_per_task, count;
    int failed;
    /* GLOBAL / BLOCK */
    int64_t urows, ucols;  /* units: weights or blocks */
    uint64_t *keys;
    thresh th;
    int64_t *eq_before;    /* pass 0: keys == th.t per task; pass 1: prefix sums */
    int pass;
} prune_ctx;

static void per_row_task(void *vctx, int64_t task) {
    prune_ctx *c = vctx;
    const isthmus_prune_args *a = c->a;
    int64_t r0 = task * c->rows_per_task, r1 = r0 + c->rows_per_task < a->n ? r0 + c->rows_per_task : a->n;
    uint64_t *keys = isthmus__scratch((size_t)a->k * 8 * 2);
    if (keys == NULL) { __atomic_store_n(&c->failed, 1, __ATOMIC_RELAXED); return; }
    uint64_t *ordered = keys + a->k;
    for (int64_t r = r0; r < r1; r++) {
        for (int64_t j = 0; j < a->k; j++) ordered[j] = keys[j] = key_of(a, r, j);
        thresh th = threshold_of(keys, a->k, c->count);
        int64_t eq = th.eq;
        uint8_t *m = a->mask + r * a->ldm;
        for (int64_t j = 0; j < a->k; j++) m[j] = (uint8_t)!removed(ordered[j], &th, &eq);
    }
}

static void n_m_task(void *vctx, int64_t task) {
    prune_ctx *c = vctx;
    const isthmus_prune_args *a = c->a;
    int64_t r0 = task * c->rows_per_task, r1 = r0 + c->rows_per_task < a->n ? r0 + c->rows_per_task : a->n;
    int32_t gm = a->nm_m, drop = a->nm_m - a->nm_n;
    for (int64_t r = r0; r < r1; r++) {
        uint8_t *m = a->mask + r * a->ldm;
        for (int64_t g = 0; g < a->k; g += gm) {
            uint64_t keys[16], sorted[16] = {0};
            for (int32_t i = 0; i < gm; i++) sorted[i] = keys[i] = key_of(a, r, g + i);
            for (int32_t i = 1; i < gm; i++) { /* insertion sort of <= 16 keys */
                uint64_t x = sorted[i];
                int32_t j = i - 1;
                while (j >= 0 && sorted[j] > x) { sorted[j + 1] = sorted[j]; j--; }
                sorted[j + 1] = x;
            }
            thresh th = {sorted[drop - 1], 0};
            for (int32_t i = 0; i < drop; i++) th.eq += sorted[i] == th.t;
            int64_t eq = th.eq;
            for (int32_t i = 0; i < gm; i++) m[g + i] = (uint8_t)!removed(keys[i], &th, &eq);
        }
    }
}

static int64_t round_count(double sparsity, int64_t total) {
    double c = round(sparsity * (double)total);
    if (c < 0) c = 0;
    if (c > (double)total) c = (double)total;
    return (int64_t)c;
}

static uint64_t block_key(const isthmus_prune_args *a, int64_t br, int64_t bc) {
    int32_t h = a->block_rows, w = a->block_cols;
    double ss = 0;
    for (int32_t i = 0; i < h; i++)
        for (int32_t j = 0; j < w; j++) {
            double s = score_of(a, br * h + i, bc * w + j);
            ss += s * s;
        }
    return (uint64_t)f32_bits((float)sqrt(ss)) << 32 | tie_hash(a->seed, br * h, bc * w);
}

static inline uint64_t unit_key(const isthmus_prune_args *a, int64_t r, int64_t j) {
    return a->structure == ISTHMUS_PRUNE_BLOCK ? block_key(a, r, j) : key_of(a, r, j);
}

static void fill_keys_task(void *vctx, int64_t task) {
    prune_ctx *c = vctx;
    int64_t r0 = task * c->rows_per_task, r1 = r0 + c->rows_per_task < c->urows ? r0 + c->rows_per_task : c->urows;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t j = 0; j < c->ucols; j++) c->keys[r * c->ucols + j] = unit_key(c->a, r, j);
}

static void apply_task(void *vctx, int64_t task) {
    prune_ctx *c = vctx;
    const isthmus_prune_args *a = c->a;
    int64_t r0 = task * c->rows_per_task, r1 = r0 + c->rows_per_task < c->urows ? r0 + c->rows_per_task : c->urows;
    if (c->pass == 0) {
        int64_t eq = 0;
        for (int64_t r = r0; r < r1; r++)
            for (int64_t j = 0; j < c->ucols; j++) eq += unit_key(a, r, j) == c->th.t;
        c->eq_before[task] = eq;
        return;
    }
    int64_t h = a->structure == ISTHMUS_PRUNE_BLOCK ? a->block_rows : 1;
    int64_t w = a->structure == ISTHMUS_PRUNE_BLOCK ? a->block_cols : 1;
    /* equal keys removed before this task's rows, in row-major order */
    int64_t eq = c->th.eq - c->eq_before[task];
    if (eq < 0) eq = 0;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t j = 0; j < c->ucols; j++) {
            uint8_t keep = (uint8_t)!removed(unit_key(a, r, j), &c->th, &eq);
            if (w == 1) a->mask[r * a->ldm + j] = keep;
            else
                for (int64_t i = 0; i < h; i++) memset(a->mask + (r * h + i) * a->ldm + j * w, keep, (size_t)w);
        }
}

isthmus_status isthmus_prune_mask(const isthmus_prune_args *args) {
    isthmus__clear_error();
    const char *fn = __func__;
    CHECK_PTR(args, "args");
    const isthmus_prune_args *a = args;
    CHECK_POS(a->n, "n");
    CHECK_POS(a->k, "k");
    CHECK_PTR(a->w, "w");
    CHECK_PTR(a->mask, "mask");
    CHECK_LD(a->ldw, a->k, "ldw");
    CHECK_LD(a->ldm, a->k, "ldm");
    if (!isthmus__extent_ok(a->n, a->ldw) || !isthmus__extent_ok(a->n, a->ldm) || !isthmus__extent_ok(a->n, a->k))
        return FAIL_ARG("%s: n = %lld with ldw = %lld, ldm = %lld is too large (overflow)", fn, (long long)a->n,
                        (long long)a->ldw, (long long)a->ldm);
    int32_t st = a->structure;
    if (st < ISTHMUS_PRUNE_PER_ROW || st > ISTHMUS_PRUNE_BLOCK)
        return FAIL_ARG("%s: structure = %d, must be ISTHMUS_PRUNE_PER_ROW (0), GLOBAL (1), N_M (2) or BLOCK (3)",
                        fn, st);
    if (st != ISTHMUS_PRUNE_N_M && !(a->sparsity >= 0.0 && a->sparsity <= 1.0))
        return FAIL_ARG("%s: sparsity = %g, must be in [0, 1] (the fraction removed)", fn, a->sparsity);
    if (st == ISTHMUS_PRUNE_N_M) {
        if (!(a->nm_n >= 1 && a->nm_n < a->nm_m && a->nm_m <= 16))
            return FAIL_ARG("%s: N_M with nm_n = %d, nm_m = %d: need 1 <= nm_n < nm_m <= 16 (2:4, 4:8, ...)", fn,
                            a->nm_n, a->nm_m);
        if (a->k % a->nm_m)
            return FAIL_ARG("%s: N_M %d:%d needs k %% %d == 0, got k = %lld", fn, a->nm_n, a->nm_m, a->nm_m,
                            (long long)a->k);
    }
    if (st == ISTHMUS_PRUNE_BLOCK) {
        int32_t h = a->block_rows, w = a->block_cols;
        if (!((h == 1 && w == 4) || (h == 1 && w == 8) || (h == 4 && w == 4)))
            return FAIL_ARG("%s: BLOCK %dx%d: supported blocks are 1x4, 1x8 and 4x4 (block_rows x block_cols)", fn,
                            h, w);
        if (a->n % h || a->k % w)
            return FAIL_ARG("%s: BLOCK %dx%d needs n %% %d == 0 and k %% %d == 0, got n = %lld, k = %lld", fn, h, w,
                            h, w, (long long)a->n, (long long)a->k);
    }
    if (a->act_norm)
        for (int64_t j = 0; j < a->k; j++)
            if (!(a->act_norm[j] >= 0.0f) || isinf(a->act_norm[j]))
                return FAIL_ARG("%s: act_norm[%lld] = %g: activation norms must be finite and >= 0", fn,
                                (long long)j, (double)a->act_norm[j]);
    for (int64_t r = 0; r < a->n; r++) {
        const float *wr = a->w + r * a->ldw;
        uint32_t bad = 0;
        for (int64_t j = 0; j < a->k; j++) bad |= (f32_bits(wr[j]) & 0x7f800000u) == 0x7f800000u;
        if (bad)
            for (int64_t j = 0; j < a->k; j++)
                if (!isfinite(wr[j]))
                    return FAIL_ARG("%s: w[%lld, %lld] = %g: weights must be finite", fn, (long long)r, (long long)j,
                                    (double)wr[j]);
    }

    prune_ctx c = {.a = a};
    int64_t nt = isthmus__threads();
    if (st == ISTHMUS_PRUNE_PER_ROW || st == ISTHMUS_PRUNE_N_M) {
        c.count = st == ISTHMUS_PRUNE_PER_ROW ? round_count(a->sparsity, a->k) : 0;
        int64_t tasks = 8 * nt;
        c.rows_per_task = (a->n + tasks - 1) / tasks;
        if (c.rows_per_task < 1) c.rows_per_task = 1;
        isthmus__parallel_for((a->n + c.rows_per_task - 1) / c.rows_per_task,
                              st == ISTHMUS_PRUNE_PER_ROW ? per_row_task : n_m_task, &c);
        if (c.failed)
            return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: no memory for %lld keys per row", fn,
                                 (long long)a->k);
        return ISTHMUS_OK;
    }
    /* GLOBAL (units = weights) or BLOCK (units = blocks): one key array, filled and applied by rows on the
     * pool; the selection itself is one quickselect */
    int64_t h = st == ISTHMUS_PRUNE_BLOCK ? a->block_rows : 1, w = st == ISTHMUS_PRUNE_BLOCK ? a->block_cols : 1;
    c.urows = a->n / h;
    c.ucols = a->k / w;
    int64_t units = c.urows * c.ucols;
    uint64_t *keys = isthmus__aligned_alloc((size_t)units * 8);
    if (keys == NULL)
        return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: no memory for %lld keys (%lld bytes)", fn,
                             (long long)units, (long long)units * 8);
    c.keys = keys;
    c.rows_per_task = (c.urows + 8 * nt - 1) / (8 * nt);
    int64_t tasks = (c.urows + c.rows_per_task - 1) / c.rows_per_task;
    isthmus__parallel_for(tasks, fill_keys_task, &c);
    thresh th = threshold_of(keys, units, round_count(a->sparsity, units));
    /* keys equal to the threshold (hash collisions of equal scores) go in row-major order: count them
     * per task first, so each task knows how many of them it removes */
    c.th = th;
    c.eq_before = isthmus__calloc((size_t)tasks + 1, sizeof(int64_t));
    if (c.eq_before == NULL) {
        isthmus__aligned_free(keys);
        return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: no memory", fn);
    }
    c.pass = 0;
    isthmus__parallel_for(tasks, apply_task, &c);
    for (int64_t t = tasks; t > 0; t--) c.eq_before[t] = c.eq_before[t - 1];
    c.eq_before[0] = 0;
    for (int64_t t = 1; t <= tasks; t++) c.eq_before[t] += c.eq_before[t - 1];
    c.pass = 1;
    isthmus__parallel_for(tasks, apply_task, &c);
    isthmus__free(c.eq_before);
    isthmus__aligned_free(keys);
    return ISTHMUS_OK;
}
