/*
 * isthmus_prune_mask: exact removal counts for every structure and sparsity; every kept score >= every
 * removed score within a competing set (a row, the matrix, an N:M group, the blocks); N:M groups keep
 * exactly nm_n; block masks are whole blocks; Wanda vs magnitude; seeded tie-breaking; bad arguments.
 * Scores are recomputed here as documented (|w|, or |w| * act_norm[k] in f32; a block's L2 norm in
 * double), independently of the library.
 */
#include "harness.h"

#include <math.h>
#include <time.h>

typedef struct pcase {
    int64_t n, k, ldw, ldm;
    float *w, *norm;
    uint8_t *mask;
} pcase;

static void make_case(pcase *c, int64_t n, int64_t k, uint64_t *s, int quantized, int with_norm) {
    c->n = n; c->k = k; c->ldw = k + (int64_t)(rng_next(s) % 3); c->ldm = k + (int64_t)(rng_next(s) % 5);
    c->w = galloc(sizeof(float) * n * c->ldw);
    for (int64_t i = 0; i < n * c->ldw; i++) /* quantized: few distinct magnitudes, many ties */
        c->w[i] = quantized ? (float)((int)(rng_next(s) % 9) - 4) * 0.25f : rng_f32(s, -1.0f, 1.0f);
    c->norm = NULL;
    if (with_norm) {
        c->norm = galloc(sizeof(float) * k);
        for (int64_t j = 0; j < k; j++) c->norm[j] = rng_f32(s, 0.0f, 4.0f);
    }
    c->mask = galloc(n * c->ldm);
    memset(c->mask, 0x77, n * c->ldm);
}

static void free_case(pcase *c) { gfree(c->w); gfree(c->norm); gfree(c->mask); }

static float score(const pcase *c, int64_t r, int64_t j) {
    float s = fabsf(c->w[r * c->ldw + j]);
    return c->norm ? s * c->norm[j] : s;
}

static isthmus_prune_args args_of(const pcase *c, int32_t st, double sp, uint64_t seed) {
    return (isthmus_prune_args){.n = c->n, .k = c->k, .w = c->w, .ldw = c->ldw, .act_norm = c->norm,
                                .structure = st, .sparsity = sp, .seed = seed, .mask = c->mask, .ldm = c->ldm};
}

static int64_t rcount(double sp, int64_t total) { return (int64_t)round(sp * (double)total); }

/* mask values are 0/1, padding untouched; returns the number removed */
static int64_t check_mask_cells(const pcase *c) {
    int64_t removed = 0;
    long bad = 0;
    for (int64_t r = 0; r < c->n; r++) {
        for (int64_t j = 0; j < c->k; j++) {
            uint8_t m = c->mask[r * c->ldm + j];
            if (m > 1 && bad++ < 3) CHECK(0, "mask[%lld,%lld] = %d", (long long)r, (long long)j, m);
            removed += m == 0;
        }
        for (int64_t j = c->k; j < c->ldm; j++)
            if (c->mask[r * c->ldm + j] != 0x77 && bad++ < 3) CHECK(0, "mask stride padding written");
    }
    CHECK(gcheck(c->mask), "mask guard overwritten");
    return removed;
}

/* within rows [r0, r1) x cols [c0, c1): min kept score >= max removed score */
static int dominates(const pcase *c, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    float kept_min = INFINITY, rem_max = -INFINITY;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t j = c0; j < c1; j++) {
            float s = score(c, r, j);
            if (c->mask[r * c->ldm + j]) kept_min = fminf(kept_min, s);
            else rem_max = fmaxf(rem_max, s);
        }
    return kept_min >= rem_max;
}

static const double SPS[] = {0, 0.5, 0.7, 0.9, 0.99, 1};

static void per_row_and_global(void) {
    const int64_t shapes[][2] = {{1, 1}, {1, 7}, {3, 100}, {17, 33}, {64, 256}, {5, 1000}};
    uint64_t s = t_seed;
    for (int q = 0; q < 2; q++)
        for (int wn = 0; wn < 2; wn++)
            for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
                for (int si = 0; si < 6; si++) {
                    pcase c;
                    make_case(&c, shapes[sh][0], shapes[sh][1], &s, q, wn);
                    isthmus_prune_args a = args_of(&c, ISTHMUS_PRUNE_PER_ROW, SPS[si], s);
                    CHECK_OK(isthmus_prune_mask(&a));
                    check_mask_cells(&c);
                    for (int64_t r = 0; r < c.n; r++) {
                        int64_t rem = 0;
                        for (int64_t j = 0; j < c.k; j++) rem += c.mask[r * c.ldm + j] == 0;
                        CHECK(rem == rcount(SPS[si], c.k), "PER_ROW row %lld removed %lld, want %lld (sp %g)",
                              (long long)r, (long long)rem, (long long)rcount(SPS[si], c.k), SPS[si]);
                        CHECK(dominates(&c, r, r + 1, 0, c.k), "PER_ROW row %lld: a removed score beats a kept one",
                              (long long)r);
                    }
                    memset(c.mask, 0x77, c.n * c.ldm);
                    a = args_of(&c, ISTHMUS_PRUNE_GLOBAL, SPS[si], s);
                    CHECK_OK(isthmus_prune_mask(&a));
                    int64_t rem = check_mask_cells(&c);
                    CHECK(rem == rcount(SPS[si], c.n * c.k), "GLOBAL removed %lld, want %lld", (long long)rem,
                          (long long)rcount(SPS[si], c.n * c.k));
                    CHECK(dominates(&c, 0, c.n, 0, c.k), "GLOBAL: a removed score beats a kept one");
                    free_case(&c);
                }
}

static void n_m(void) {
    const int32_t nm[][2] = {{2, 4}, {4, 8}, {1, 4}, {1, 2}, {3, 16}, {15, 16}};
    uint64_t s = t_seed + 1;
    for (int q = 0; q < 2; q++)
        for (int wn = 0; wn < 2; wn++)
            for (int i = 0; i < 6; i++) {
                pcase c;
                make_case(&c, 13, nm[i][1] * 7, &s, q, wn);
                isthmus_prune_args a = args_of(&c, ISTHMUS_PRUNE_N_M, 0.3 /* ignored */, s);
                a.nm_n = nm[i][0];
                a.nm_m = nm[i][1];
                CHECK_OK(isthmus_prune_mask(&a));
                check_mask_cells(&c);
                long bad = 0;
                for (int64_t r = 0; r < c.n; r++)
                    for (int64_t g = 0; g < c.k; g += nm[i][1]) {
                        int kept = 0;
                        for (int j = 0; j < nm[i][1]; j++) kept += c.mask[r * c.ldm + g + j];
                        if ((kept != nm[i][0] || !dominates(&c, r, r + 1, g, g + nm[i][1])) && bad++ < 3)
                            CHECK(0, "%d:%d row %lld group %lld keeps %d or a removed score beats a kept one",
                                  nm[i][0], nm[i][1], (long long)r, (long long)g, kept);
                    }
                free_case(&c);
            }
}

static void blocks(void) {
    const int32_t bs[][2] = {{1, 4}, {1, 8}, {4, 4}};
    uint64_t s = t_seed + 2;
    for (int b = 0; b < 3; b++)
        for (int wn = 0; wn < 2; wn++)
            for (int si = 0; si < 6; si++) {
                pcase c;
                make_case(&c, 4 * 9, 8 * 11, &s, si & 1, wn);
                isthmus_prune_args a = args_of(&c, ISTHMUS_PRUNE_BLOCK, SPS[si], s);
                a.block_rows = bs[b][0];
                a.block_cols = bs[b][1];
                CHECK_OK(isthmus_prune_mask(&a));
                check_mask_cells(&c);
                int64_t br = bs[b][0], bc = bs[b][1], nb = (c.n / br) * (c.k / bc), rem = 0;
                double kept_min = INFINITY, rem_max = -INFINITY;
                long bad = 0;
                for (int64_t r = 0; r < c.n; r += br)
                    for (int64_t j = 0; j < c.k; j += bc) {
                        uint8_t m0 = c.mask[r * c.ldm + j];
                        double ss = 0;
                        for (int64_t i = 0; i < br; i++)
                            for (int64_t l = 0; l < bc; l++) {
                                if (c.mask[(r + i) * c.ldm + j + l] != m0 && bad++ < 3)
                                    CHECK(0, "block at [%lld,%lld] is not whole", (long long)r, (long long)j);
                                double sc = score(&c, r + i, j + l);
                                ss += sc * sc;
                            }
                        float norm = (float)sqrt(ss);
                        if (m0) kept_min = fmin(kept_min, norm);
                        else { rem_max = fmax(rem_max, norm); rem++; }
                    }
                CHECK(rem == rcount(SPS[si], nb), "BLOCK %lldx%lld removed %lld blocks, want %lld", (long long)br,
                      (long long)bc, (long long)rem, (long long)rcount(SPS[si], nb));
                CHECK(kept_min >= rem_max, "BLOCK: a removed block's norm beats a kept one");
                free_case(&c);
            }
}

static void wanda_vs_magnitude(void) {
    uint64_t s = t_seed + 3;
    pcase c;
    make_case(&c, 32, 64, &s, 0, 1);
    uint8_t *mag = malloc(32 * c.ldm), *wan = malloc(32 * c.ldm);
    for (int st = 0; st < 2; st++) {
        float *norm = c.norm;
        c.norm = NULL;
        isthmus_prune_args a = args_of(&c, st, 0.5, 7);
        CHECK_OK(isthmus_prune_mask(&a));
        memcpy(mag, c.mask, 32 * c.ldm);
        c.norm = norm;
        a = args_of(&c, st, 0.5, 7);
        CHECK_OK(isthmus_prune_mask(&a));
        memcpy(wan, c.mask, 32 * c.ldm);
        CHECK(memcmp(mag, wan, 32 * c.ldm) != 0, "Wanda with varying norms equals magnitude (structure %d)", st);
        for (int64_t j = 0; j < c.k; j++) c.norm[j] = 4.0f; /* constant norms (a power of two: exact): same order as magnitude */
        CHECK_OK(isthmus_prune_mask(&a));
        CHECK(memcmp(mag, c.mask, 32 * c.ldm) == 0, "Wanda with constant norms differs from magnitude (%d)", st);
        for (int64_t j = 0; j < c.k; j++) c.norm[j] = rng_f32(&s, 0.0f, 4.0f);
    }
    free(mag); free(wan);
    free_case(&c);
}

static void ties_follow_the_seed(void) {
    uint64_t s = t_seed + 4;
    const int32_t sts[] = {ISTHMUS_PRUNE_PER_ROW, ISTHMUS_PRUNE_GLOBAL, ISTHMUS_PRUNE_N_M, ISTHMUS_PRUNE_BLOCK};
    for (int i = 0; i < 4; i++) {
        pcase c;
        make_case(&c, 16, 64, &s, 0, 0);
        for (int64_t r = 0; r < c.n; r++)
            for (int64_t j = 0; j < c.k; j++) c.w[r * c.ldw + j] = ((r + j) & 1) ? 0.5f : -0.5f;
        uint8_t *m1 = malloc(16 * c.ldm), *m2 = malloc(16 * c.ldm);
        isthmus_prune_args a = args_of(&c, sts[i], 0.5, 42);
        a.nm_n = 2; a.nm_m = 4; a.block_rows = 4; a.block_cols = 4;
        CHECK_OK(isthmus_prune_mask(&a));
        int64_t rem = check_mask_cells(&c);
        CHECK(rem == 16 * 64 / 2, "structure %d removed %lld of equal weights, want half", sts[i], (long long)rem);
        memcpy(m1, c.mask, 16 * c.ldm);
        CHECK_OK(isthmus_prune_mask(&a));
        CHECK(memcmp(m1, c.mask, 16 * c.ldm) == 0, "structure %d: same seed, different mask", sts[i]);
        a.seed = 43;
        CHECK_OK(isthmus_prune_mask(&a));
        memcpy(m2, c.mask, 16 * c.ldm);
        CHECK(check_mask_cells(&c) == rem, "structure %d: count changed with the seed", sts[i]);
        CHECK(memcmp(m1, m2, 16 * c.ldm) != 0, "structure %d: another seed gives the same mask", sts[i]);
        /* thread count does not matter */
        int32_t before = isthmus_get_num_threads();
        isthmus_set_num_threads(3);
        CHECK_OK(isthmus_prune_mask(&a));
        CHECK(memcmp(m2, c.mask, 16 * c.ldm) == 0, "structure %d: 3 threads differ", sts[i]);
        isthmus_set_num_threads(before);
        free(m1); free(m2);
        free_case(&c);
    }
}

static void bad_arguments(void) {
    uint64_t s = t_seed + 5;
    pcase c;
    make_case(&c, 8, 16, &s, 0, 1);
    isthmus_prune_args ok = args_of(&c, ISTHMUS_PRUNE_PER_ROW, 0.5, 1), a;
    const int E = ISTHMUS_ERR_INVALID_ARGUMENT;
    CHECK_OK(isthmus_prune_mask(&ok));
    CHECK_FAILS(isthmus_prune_mask(NULL), E);
#define BAD(stmt, word)                                                                              \
    do {                                                                                             \
        a = ok;                                                                                      \
        stmt;                                                                                        \
        CHECK_FAILS(isthmus_prune_mask(&a), E);                                                      \
        CHECK(strstr(isthmus_last_error(), word) != NULL, "message '%s' should name '%s'",          \
              isthmus_last_error(), word);                                                           \
    } while (0)
    BAD(a.n = 0, "n");
    BAD(a.k = -1, "k");
    BAD(a.w = NULL, "w");
    BAD(a.mask = NULL, "mask");
    BAD(a.ldw = 15, "ldw");
    BAD(a.ldm = 3, "ldm");
    BAD(a.n = (int64_t)1 << 44, "too large");
    BAD(a.structure = 4, "structure");
    BAD(a.structure = -1, "structure");
    BAD(a.sparsity = -0.01, "sparsity");
    BAD(a.sparsity = 1.01, "sparsity");
    BAD(a.sparsity = NAN, "sparsity");
    BAD(a.structure = ISTHMUS_PRUNE_GLOBAL; a.sparsity = INFINITY, "sparsity");
    BAD(a.structure = ISTHMUS_PRUNE_N_M; a.nm_n = 0; a.nm_m = 4, "nm_n");
    BAD(a.structure = ISTHMUS_PRUNE_N_M; a.nm_n = 4; a.nm_m = 4, "nm_n");
    BAD(a.structure = ISTHMUS_PRUNE_N_M; a.nm_n = 2; a.nm_m = 32, "nm_m");
    BAD(a.structure = ISTHMUS_PRUNE_N_M; a.nm_n = 2; a.nm_m = 3, "k % 3");
    BAD(a.structure = ISTHMUS_PRUNE_BLOCK; a.block_rows = 2; a.block_cols = 2, "2x2");
    BAD(a.structure = ISTHMUS_PRUNE_BLOCK; a.block_rows = 4; a.block_cols = 4; a.n = 6, "n % 4");
    BAD(a.structure = ISTHMUS_PRUNE_BLOCK; a.block_rows = 1; a.block_cols = 8; a.k = 12, "k % 8");
    float saved = c.norm[3];
    c.norm[3] = NAN; BAD((void)0, "act_norm[3]");
    c.norm[3] = INFINITY; BAD((void)0, "act_norm[3]");
    c.norm[3] = -1.0f; BAD((void)0, "act_norm[3]");
    c.norm[3] = saved;
    c.w[2 * c.ldw + 5] = NAN; BAD((void)0, "w[2, 5]");
    c.w[2 * c.ldw + 5] = -INFINITY; BAD((void)0, "w[2, 5]");
    c.w[2 * c.ldw + 5] = 0.0f;
    /* a non-finite value past k (in the ldw padding) is not part of W */
    c.w[2 * c.ldw + c.k] = NAN;
    CHECK_OK(isthmus_prune_mask(&ok));
#undef BAD
    free_case(&c);
}

/* N x K = 4096 x 4096 (16M weights), every structure: well under a second each */
static void speed(void) {
    uint64_t s = t_seed + 6;
    pcase c;
    make_case(&c, 4096, 4096, &s, 0, 1);
    const int32_t sts[] = {ISTHMUS_PRUNE_PER_ROW, ISTHMUS_PRUNE_GLOBAL, ISTHMUS_PRUNE_N_M, ISTHMUS_PRUNE_BLOCK};
    const char *names[] = {"PER_ROW 0.5", "GLOBAL 0.5", "N_M 2:4", "BLOCK 4x4 0.5"};
    for (int i = 0; i < 4; i++) {
        isthmus_prune_args a = args_of(&c, sts[i], 0.5, 9);
        a.nm_n = 2; a.nm_m = 4; a.block_rows = 4; a.block_cols = 4;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK_OK(isthmus_prune_mask(&a));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6;
        printf("       prune 4096x4096 %-14s %7.1f ms (%d threads)\n", names[i], ms, isthmus_get_num_threads());
        int64_t rem = check_mask_cells(&c);
        CHECK(rem == 4096 * 4096 / 2, "%s removed %lld", names[i], (long long)rem);
#ifndef __SANITIZE_ADDRESS__
        CHECK(ms < 3000, "%s took %.0f ms", names[i], ms); /* generous: the machine is shared */
#endif
    }
    free_case(&c);
}

const test_case prune_tests[] = {
    {"prune", "per_row_and_global", per_row_and_global},
    {"prune", "n_m", n_m},
    {"prune", "blocks", blocks},
    {"prune", "wanda_vs_magnitude", wanda_vs_magnitude},
    {"prune", "ties_follow_the_seed", ties_follow_the_seed},
    {"prune", "bad_arguments", bad_arguments},
    {"prune", "speed", speed},
    {NULL, NULL, NULL},
};
