/* The sparse entries' own argument checks (sparse.c), through the public ABI: malformed exchange formats
 * of every kind are refused with a message naming the problem, a bad spmm call never reaches a kernel, and
 * a buffer packed under one ISA is refused under a lower cap. The kernels' results are tested in
 * test_sparse.c (CSR/BSR) and test_sparse24.c (2:4). */
#include "harness.h"

#include <string.h>

/* A valid 4 x 8 CSR f32 matrix: row 0 {1, 5}, row 1 {}, row 2 {0, 2, 7}, row 3 {3}. */
static int64_t rp[5] = {0, 2, 2, 5, 6};
static int32_t ci[6] = {1, 5, 0, 2, 7, 3};
static float vf[6] = {0.5f, -1.25f, 2.0f, 0.75f, -0.5f, 1.5f};
static int8_t vq[6] = {12, -127, 127, 5, -3, 64};
static float sc[4] = {0.01f, 0.02f, 0.0f, 0.5f};

static isthmus_sparse_matrix csr(void) {
    isthmus_sparse_matrix w = {.n = 4, .k = 8, .format = ISTHMUS_SPARSE_CSR, .dtype = ISTHMUS_DTYPE_F32, .nnz = 6,
                               .row_ptr = rp, .col_idx = ci, .values = vf};
    return w;
}

static int mentions(const char *s) { return strstr(isthmus_last_error(), s) != NULL; }

static void malformed_csr_refused(void) {
    t_seed = 1;
    int64_t bytes = 0;
    isthmus_sparse_matrix w = csr();
    CHECK_OK(isthmus_sparse_packed_size(&w, &bytes));
    CHECK(bytes > 0, "packed size %lld", (long long)bytes);

    int64_t rp_bad[5];
    int32_t ci_bad[6];
    memcpy(rp_bad, rp, sizeof rp);
    rp_bad[0] = 1;
    w = csr(); w.row_ptr = rp_bad;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("row_ptr[0]"), "%s", isthmus_last_error());
    memcpy(rp_bad, rp, sizeof rp);
    rp_bad[2] = 1; /* decreasing */
    w.row_ptr = rp_bad;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("non-decreasing"), "%s", isthmus_last_error());
    memcpy(rp_bad, rp, sizeof rp);
    rp_bad[4] = 5; /* last != nnz */
    w.row_ptr = rp_bad;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("nnz"), "%s", isthmus_last_error());
    memcpy(rp_bad, rp, sizeof rp);
    rp_bad[1] = (int64_t)1 << 40; /* huge: must not be followed */
    w.row_ptr = rp_bad;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);

    memcpy(ci_bad, ci, sizeof ci);
    ci_bad[1] = 8; /* == k */
    w = csr(); w.col_idx = ci_bad;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("out of range") && mentions("row 0"), "%s", isthmus_last_error());
    ci_bad[1] = -1;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    memcpy(ci_bad, ci, sizeof ci);
    ci_bad[3] = 0; /* duplicate in row 2 */
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("strictly increasing") && mentions("row 2"), "%s", isthmus_last_error());
    memcpy(ci_bad, ci, sizeof ci);
    ci_bad[0] = 6; /* unsorted: 6 then 5 */
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);

    w = csr(); w.nnz = 33; /* > n * k */
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    w = csr(); w.nnz = -1;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    w = csr(); w.k = ISTHMUS_GEMM_MAX_K + 1;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("ISTHMUS_GEMM_MAX_K"), "%s", isthmus_last_error());
    w = csr(); w.n = 0;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    w = csr(); w.format = 7;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    w = csr(); w.dtype = 5;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    w = csr(); w.values = NULL;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    w = csr(); w.col_idx = NULL;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    w = csr(); w.scales = sc; /* f32 takes no scales */
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_sparse_packed_size(NULL, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    w = csr();
    CHECK_FAILS(isthmus_sparse_packed_size(&w, NULL), ISTHMUS_ERR_INVALID_ARGUMENT);

    /* S8: scales required, finite and >= 0; -128 refused */
    w = csr(); w.dtype = ISTHMUS_DTYPE_S8; w.values = vq;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("scales"), "%s", isthmus_last_error());
    w.scales = sc;
    CHECK_OK(isthmus_sparse_packed_size(&w, &bytes));
    int8_t vq_bad[6];
    memcpy(vq_bad, vq, sizeof vq);
    vq_bad[4] = -128;
    w.values = vq_bad;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("-128"), "%s", isthmus_last_error());
    float sc_bad[4] = {0.01f, -0.02f, 0.0f, 0.5f};
    w.values = vq; w.scales = sc_bad;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    sc_bad[1] = 1.0f / 0.0f;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
}

static void malformed_bsr_and_24_refused(void) {
    t_seed = 2;
    int64_t bytes = 0;
    /* BSR 4x4 over an 8 x 8 matrix: block rows 0 {1}, 1 {0, 1} */
    int64_t brp[3] = {0, 1, 3};
    int32_t bci[3] = {1, 0, 1};
    float bv[48];
    for (int i = 0; i < 48; i++) bv[i] = (float)(i % 7) - 3.0f;
    isthmus_sparse_matrix w = {.n = 8, .k = 8, .format = ISTHMUS_SPARSE_BSR, .dtype = ISTHMUS_DTYPE_F32, .block_rows = 4,
                               .block_cols = 4, .nnz = 3, .row_ptr = brp, .col_idx = bci, .values = bv};
    CHECK_OK(isthmus_sparse_packed_size(&w, &bytes));
    w.block_rows = 2; w.block_cols = 2;
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("1x4, 1x8 and 4x4"), "%s", isthmus_last_error());
    w.block_rows = 4; w.block_cols = 4; w.n = 6; /* not a multiple of 4 */
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    w.n = 8;
    bci[2] = 2; /* block column out of range (k / 4 = 2) */
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("block row 1"), "%s", isthmus_last_error());
    bci[2] = 1;
    w.nnz = 5; /* more blocks than the grid holds */
    CHECK_FAILS(isthmus_sparse_packed_size(&w, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);

    /* 2:4 over 2 x 20 (5 groups per row, 2 metadata words per row) */
    float v24[2 * 10];
    for (int i = 0; i < 20; i++) v24[i] = 0.25f * (float)(i + 1);
    uint16_t meta[4];
    /* groups: i0|i1<<2 with i0<i1: 0x4 = (0,1), 0x8 = (0,2), 0xC = (0,3), 0x9 = (1,2), 0xD = (1,3), 0xE = (2,3) */
    meta[0] = 0x4 | 0x8 << 4 | 0xC << 8 | 0x9 << 12; meta[1] = 0xD;
    meta[2] = 0xE | 0x4 << 4 | 0x4 << 8 | 0xE << 12; meta[3] = 0x9;
    isthmus_sparse_matrix t = {.n = 2, .k = 20, .format = ISTHMUS_SPARSE_2_4, .dtype = ISTHMUS_DTYPE_F32, .values = v24,
                               .meta = meta};
    CHECK_OK(isthmus_sparse_packed_size(&t, &bytes));
    t.k = 18;
    CHECK_FAILS(isthmus_sparse_packed_size(&t, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("k % 4"), "%s", isthmus_last_error());
    t.k = 20;
    meta[2] = 0x6 | 0x4 << 4 | 0x4 << 8 | 0xE << 12; /* (2,1): not increasing */
    CHECK_FAILS(isthmus_sparse_packed_size(&t, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("row 1 group 0"), "%s", isthmus_last_error());
    meta[2] = 0x5 | 0x4 << 4 | 0x4 << 8 | 0xE << 12; /* (1,1): duplicate */
    CHECK_FAILS(isthmus_sparse_packed_size(&t, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    meta[2] = 0xE | 0x4 << 4 | 0x4 << 8 | 0xE << 12;
    meta[3] = 0x9 | 0x4 << 4; /* a bit past the last group */
    CHECK_FAILS(isthmus_sparse_packed_size(&t, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("unused metadata bits"), "%s", isthmus_last_error());
    meta[3] = 0x9;
    t.meta = NULL;
    CHECK_FAILS(isthmus_sparse_packed_size(&t, &bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
}

static void spmm_arguments_checked(void) {
    t_seed = 3;
    isthmus_sparse_matrix w = csr();
    int64_t bytes = 0;
    CHECK_OK(isthmus_sparse_packed_size(&w, &bytes));
    if (bytes <= 0) return;
    void *packed = galloc((size_t)bytes);
    CHECK_FAILS(isthmus_sparse_pack(&w, packed, bytes - 1), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("needs"), "%s", isthmus_last_error());
    CHECK_FAILS(isthmus_sparse_pack(&w, (char *)packed + 4, bytes), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("aligned"), "%s", isthmus_last_error());
    CHECK_OK(isthmus_sparse_pack(&w, packed, bytes));
    CHECK(gcheck(packed), "pack wrote past its size");
    isthmus_sparse_info info;
    CHECK_OK(isthmus_sparse_packed_info(packed, &info));
    CHECK(info.n == 4 && info.k == 8 && info.nnz == 6 && info.format == ISTHMUS_SPARSE_CSR && info.dtype == ISTHMUS_DTYPE_F32
          && info.block_rows == 1 && info.block_cols == 1 && info.isa == isthmus_isa() && info.bytes == bytes,
          "info %lld x %lld nnz %lld fmt %d dtype %d %dx%d isa %d bytes %lld", (long long)info.n, (long long)info.k,
          (long long)info.nnz, info.format, info.dtype, info.block_rows, info.block_cols, info.isa, (long long)info.bytes);

    float x[3 * 8], y[3 * 4];
    int32_t c[3 * 4];
    int8_t xq[3 * 8];
    for (int i = 0; i < 24; i++) { x[i] = (float)i - 11.5f; xq[i] = (int8_t)(i - 12); }
    isthmus_spmm_args a = {.m = 3, .x = x, .ldx = 8, .w_packed = packed, .y = y, .ldy = 4};
    CHECK_OK(isthmus_spmm(&a));
    /* row 0 of x . W^T: x[0][1] * 0.5 + x[0][5] * -1.25 */
    CHECK(y[0] == (-10.5f * 0.5f + -6.5f * -1.25f), "y[0] = %g", (double)y[0]);
    CHECK(y[1] == 0.0f, "an empty row gives 0, got %g", (double)y[1]);
    isthmus_spmm_args b = a;
    b.m = 0;
    CHECK_FAILS(isthmus_spmm(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = a; b.ldx = 7;
    CHECK_FAILS(isthmus_spmm(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("ldx"), "%s", isthmus_last_error());
    b = a; b.ldy = 3;
    CHECK_FAILS(isthmus_spmm(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = a; b.x = NULL;
    CHECK_FAILS(isthmus_spmm(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = a; b.xq = xq; b.ldxq = 8;
    CHECK_FAILS(isthmus_spmm(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = a; b.c = c; b.ldc = 4; b.y = NULL;
    CHECK_FAILS(isthmus_spmm(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("S8"), "%s", isthmus_last_error());
    b = a; b.y = NULL;
    CHECK_FAILS(isthmus_spmm(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = a; b.w_packed = NULL;
    CHECK_FAILS(isthmus_spmm(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    b = a; b.w_packed = x; /* not a packed buffer */
    CHECK_FAILS(isthmus_spmm(&b), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("magic"), "%s", isthmus_last_error());
    CHECK_FAILS(isthmus_spmm(NULL), ISTHMUS_ERR_INVALID_ARGUMENT);

    /* packed under the best ISA, refused under a lower cap, accepted again when the cap is raised */
    if (isthmus_isa() > ISTHMUS_ISA_REF) {
        int32_t cap = isthmus_get_isa_cap();
        isthmus_set_isa_cap(ISTHMUS_ISA_REF);
        CHECK_FAILS(isthmus_spmm(&a), ISTHMUS_ERR_UNSUPPORTED);
        CHECK(mentions("pack them again"), "%s", isthmus_last_error());
        isthmus_set_isa_cap(cap);
        CHECK_OK(isthmus_spmm(&a));
    }
    gfree(packed);

    /* S8: exactly one of y and c; x_scales with y; no bias with c */
    w.dtype = ISTHMUS_DTYPE_S8; w.values = vq; w.scales = sc;
    CHECK_OK(isthmus_sparse_packed_size(&w, &bytes));
    packed = galloc((size_t)bytes);
    CHECK_OK(isthmus_sparse_pack(&w, packed, bytes));
    float xs[3] = {0.1f, 0.2f, 0.3f}, bias[4] = {1, 2, 3, 4};
    isthmus_spmm_args q = {.m = 3, .xq = xq, .ldxq = 8, .w_packed = packed, .c = c, .ldc = 4};
    CHECK_OK(isthmus_spmm(&q));
    CHECK(c[0] == (int32_t)xq[1] * 12 + (int32_t)xq[5] * -127, "c[0] = %d", c[0]);
    CHECK(c[4 + 2] == (int32_t)xq[8] * 127 + (int32_t)xq[10] * 5 + (int32_t)xq[15] * -3, "c[1][2] = %d", c[6]);
    isthmus_spmm_args r = q;
    r.bias = bias;
    CHECK_FAILS(isthmus_spmm(&r), ISTHMUS_ERR_INVALID_ARGUMENT);
    r = q; r.y = y; r.ldy = 4; r.x_scales = xs;
    CHECK_FAILS(isthmus_spmm(&r), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("exactly one"), "%s", isthmus_last_error());
    r = q; r.c = NULL; r.y = y; r.ldy = 4;
    CHECK_FAILS(isthmus_spmm(&r), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(mentions("x_scales"), "%s", isthmus_last_error());
    r.x_scales = xs; r.bias = bias;
    CHECK_OK(isthmus_spmm(&r));
    CHECK(y[0] == __builtin_fmaf((float)c[0], xs[0] * sc[0], 0.0f) + bias[0], "y[0] = %g", (double)y[0]);
    r = q; r.x = x; r.ldx = 8;
    CHECK_FAILS(isthmus_spmm(&r), ISTHMUS_ERR_INVALID_ARGUMENT);
    r = q; r.xq = NULL;
    CHECK_FAILS(isthmus_spmm(&r), ISTHMUS_ERR_INVALID_ARGUMENT);
    gfree(packed);
}

const test_case sparse_abi_tests[] = {
    {"sparse_abi", "malformed_csr_refused", malformed_csr_refused},
    {"sparse_abi", "malformed_bsr_and_24_refused", malformed_bsr_and_24_refused},
    {"sparse_abi", "spmm_arguments_checked", spmm_arguments_checked},
    {NULL, NULL, NULL},
};
