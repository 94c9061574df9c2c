/* isthmus_rmsnorm, isthmus_swiglu: validation, dispatch to the active ISA's row kernel, and a parallel
 * split over rows when there are enough of them to pay for the pool. */
#include "nn.h"

#include <stdint.h>

/* Rows per task: at least 16K elements each, so a task outweighs the pool's hand-off; one task (a plain
 * call on this thread) for decode-sized inputs. */
#define NN_TASK_ELEMS 16384

static const void *pick(isthmus_op op) {
    for (int32_t isa = isthmus__isa_active(); isa >= ISTHMUS_ISA_REF; isa--) {
        const void *k = isthmus__kernel(op, isa);
        if (k) return k;
    }
    return NULL;
}

/* Whether a [ra, cols] and b [rb, cols] (f32, row strides lda, ldb in elements) share an element. Exact
 * when the strides are equal or one side is a single row (column slices of one buffer, such as the two
 * halves of a fused projection, are disjoint); otherwise decided by their address ranges. */
static int overlaps(const float *a, int64_t ra, int64_t lda, const float *b, int64_t rb, int64_t ldb, int64_t cols) {
    if (ra == 1) lda = ldb;
    if (rb == 1) ldb = lda;
    uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
    uintptr_t a1 = a0 + (uintptr_t)(((ra - 1) * lda + cols) * 4), b1 = b0 + (uintptr_t)(((rb - 1) * ldb + cols) * 4);
    if (a1 <= b0 || b1 <= a0) return 0;
    if (lda != ldb || lda < 1) return 1;
    intptr_t diff = (intptr_t)(b0 - a0);
    if (diff % 4) return 1;
    /* b = a + delta: row i of a meets row j of b when |delta + (j - i) * ld| < cols, j - i in (-ra, rb) */
    const int64_t delta = (int64_t)(diff / 4), ld = lda, m = ((delta % ld) + ld) % ld;
    for (int c = 0; c < 2; c++) {
        int64_t v = m - c * ld, k = (v - delta) / ld;
        if (k > -ra && k < rb && v > -cols && v < cols) return 1;
    }
    return 0;
}

typedef struct nn_ctx {
    const isthmus_rmsnorm_args *rn;
    const isthmus_swiglu_args *sw;
    const void *kern;
    int64_t rows_per_task;
} nn_ctx;

static void rmsnorm_task(void *vctx, int64_t task) {
    const nn_ctx *c = vctx;
    const isthmus_rmsnorm_args *a = c->rn;
    const RMSNORM_kernel *k = c->kern;
    int64_t r1 = (task + 1) * c->rows_per_task;
    if (r1 > a->rows) r1 = a->rows;
    for (int64_t r = task * c->rows_per_task; r < r1; r++)
        k->row(a->x + r * a->ldx, a->residual ? a->residual + r * a->ldr : NULL, a->weight, a->eps, a->y + r * a->ldy,
               a->dim);
}

static void swiglu_task(void *vctx, int64_t task) {
    const nn_ctx *c = vctx;
    const isthmus_swiglu_args *a = c->sw;
    const SWIGLU_kernel *k = c->kern;
    int64_t r1 = (task + 1) * c->rows_per_task;
    if (r1 > a->rows) r1 = a->rows;
    for (int64_t r = task * c->rows_per_task; r < r1; r++)
        k->row(a->gate + r * a->ldg, a->up + r * a->ldu, a->out + r * a->ldo, a->n);
}

static void run_rows(nn_ctx *c, int64_t rows, int64_t cols, isthmus_task_fn fn) {
    int64_t per = (NN_TASK_ELEMS + cols - 1) / cols;
    int64_t threads = isthmus__threads();
    if (per * threads * 4 < rows) per = (rows + threads * 4 - 1) / (threads * 4); /* at most 4 tasks a thread */
    c->rows_per_task = per < 1 ? 1 : per;
    int64_t tasks = (rows + c->rows_per_task - 1) / c->rows_per_task;
    if (tasks <= 1) fn(c, 0);
    else isthmus__parallel_for(tasks, fn, c);
}

isthmus_status isthmus_rmsnorm(const isthmus_rmsnorm_args *a) {
    CHECK_PTR(a, "args");
    CHECK_POS(a->rows, "rows");
    CHECK_POS(a->dim, "dim");
    CHECK_PTR(a->x, "x");
    CHECK_PTR(a->weight, "weight");
    CHECK_PTR(a->y, "y");
    if (a->dim > ISTHMUS_MAX_ELEMS) return FAIL_ARG("%s: dim = %lld is too large", __func__, (long long)a->dim);
    CHECK_LD(a->ldx, a->dim, "ldx");
    CHECK_LD(a->ldy, a->dim, "ldy");
    if (a->residual) CHECK_LD(a->ldr, a->dim, "ldr");
    if (!isthmus__extent_ok(a->rows, a->ldx) || !isthmus__extent_ok(a->rows, a->ldy) ||
        (a->residual && !isthmus__extent_ok(a->rows, a->ldr)))
        return FAIL_ARG("%s: rows * ld overflows", __func__);
    if (!(a->eps > 0) || !isfinite(a->eps))
        return FAIL_ARG("%s: eps = %g, must be finite and > 0", __func__, (double)a->eps);
    const int64_t R = a->rows, D = a->dim;
    if (a->y == a->x) {
        if (a->ldy != a->ldx)
            return FAIL_ARG("%s: y is x but ldy = %lld != ldx = %lld", __func__, (long long)a->ldy, (long long)a->ldx);
    } else if (overlaps(a->x, R, a->ldx, a->y, R, a->ldy, D)) {
        return FAIL_ARG("%s: y overlaps x (y may be x itself, with the same ld)", __func__);
    }
    if (overlaps(a->weight, 1, D, a->y, R, a->ldy, D)) return FAIL_ARG("%s: weight overlaps y", __func__);
    if (a->residual) {
        if (overlaps(a->residual, R, a->ldr, a->x, R, a->ldx, D))
            return FAIL_ARG("%s: residual overlaps x (x is written with residual)", __func__);
        if (overlaps(a->residual, R, a->ldr, a->y, R, a->ldy, D)) return FAIL_ARG("%s: residual overlaps y", __func__);
        if (overlaps(a->weight, 1, D, a->x, R, a->ldx, D))
            return FAIL_ARG("%s: weight overlaps x (x is written with residual)", __func__);
    }
    nn_ctx c = {.rn = a, .kern = pick(ISTHMUS_OP_RMSNORM)};
    if (!c.kern) return isthmus__fail(ISTHMUS_ERR_INTERNAL, "%s: no rmsnorm kernel", __func__);
    run_rows(&c, R, D, rmsnorm_task);
    return ISTHMUS_OK;
}

isthmus_status isthmus_swiglu(const isthmus_swiglu_args *a) {
    CHECK_PTR(a, "args");
    CHECK_POS(a->rows, "rows");
    CHECK_POS(a->n, "n");
    CHECK_PTR(a->gate, "gate");
    CHECK_PTR(a->up, "up");
    CHECK_PTR(a->out, "out");
    if (a->n > ISTHMUS_MAX_ELEMS) return FAIL_ARG("%s: n = %lld is too large", __func__, (long long)a->n);
    CHECK_LD(a->ldg, a->n, "ldg");
    CHECK_LD(a->ldu, a->n, "ldu");
    CHECK_LD(a->ldo, a->n, "ldo");
    if (!isthmus__extent_ok(a->rows, a->ldg) || !isthmus__extent_ok(a->rows, a->ldu) ||
        !isthmus__extent_ok(a->rows, a->ldo))
        return FAIL_ARG("%s: rows * ld overflows", __func__);
    const int64_t R = a->rows, N = a->n;
    const float *in[2] = {a->gate, a->up};
    const int64_t ld[2] = {a->ldg, a->ldu};
    static const char *const name[2] = {"gate", "up"};
    for (int i = 0; i < 2; i++) {
        if (a->out == in[i]) {
            if (a->ldo != ld[i])
                return FAIL_ARG("%s: out is %s but ldo = %lld != ld%c = %lld", __func__, name[i], (long long)a->ldo,
                                name[i][0], (long long)ld[i]);
        } else if (overlaps(in[i], R, ld[i], a->out, R, a->ldo, N)) {
            return FAIL_ARG("%s: out overlaps %s (out may be %s itself, with the same ld)", __func__, name[i], name[i]);
        }
    }
    nn_ctx c = {.sw = a, .kern = pick(ISTHMUS_OP_SWIGLU)};
    if (!c.kern) return isthmus__fail(ISTHMUS_ERR_INTERNAL, "%s: no swiglu kernel", __func__);
    run_rows(&c, R, N, swiglu_task);
    return ISTHMUS_OK;
}
