#define _GNU_SOURCE /* sincos */
/* Rotary position embedding (RoPE), standalone and as used by the fused K append (kvcache.c). */
#include "kv.h"

#include <stdatomic.h>
#include <stdlib.h>

isthmus_status isthmus__rope_check(const isthmus_rope_params *r, int64_t head_dim, const char *fn) {
    if (r->style != ISTHMUS_ROPE_INTERLEAVED && r->style != ISTHMUS_ROPE_HALF)
        return FAIL_ARG("%s: rope.style = %d is not an ISTHMUS_ROPE_* value", fn, r->style);
    if (r->rotary_dim < 0 || r->rotary_dim > head_dim || r->rotary_dim % 2)
        return FAIL_ARG("%s: rope.rotary_dim = %d, must be 0 (all of head_dim = %lld) or even and <= head_dim",
                        fn, r->rotary_dim, (long long)head_dim);
    if (!(r->theta > 1.0f) || !isfinite(r->theta))
        return FAIL_ARG("%s: rope.theta = %g, must be finite and > 1", fn, (double)r->theta);
    return ISTHMUS_OK;
}

/* cos/sin of every pair at `pos` into cs[0 .. rot) as (c0, s0, c1, s1, ...). Double precision then
 * rounded: the angle pos * theta^(-2i/rot) reaches 10^5 radians and more at long contexts, where an f32
 * angle would already be wrong in the third digit. */
void isthmus__rope_inv(const isthmus_rope_params *r, int64_t head_dim, double *inv) {
    const int32_t rot = r->rotary_dim ? r->rotary_dim : (int32_t)head_dim;
    for (int32_t i = 0; i < rot / 2; i++) inv[i] = pow((double)r->theta, -2.0 * i / rot);
}

static void rope_table(int64_t pos, int32_t rot, const double *inv, float *cs) {
    for (int32_t i = 0; i < rot / 2; i++) {
        double sn, cn;
        sincos((double)pos * inv[i], &sn, &cn);
        cs[2 * i] = (float)cn;
        cs[2 * i + 1] = (float)sn;
    }
}

static inline void rotate(float *a, float *b, float c, float s) {
    float x0 = *a, x1 = *b;
    *a = fmaf(x0, c, -(x1 * s));
    *b = fmaf(x1, c, x0 * s);
}

/* Rotates `heads` vectors of head_dim at x (contiguous) for position pos; inv from isthmus__rope_inv,
 * cs is scratch of head_dim floats. */
void isthmus__rope_row(float *x, int64_t heads, int64_t head_dim, int64_t pos, const isthmus_rope_params *r,
                       const double *inv, float *cs) {
    const int32_t rot = r->rotary_dim ? r->rotary_dim : (int32_t)head_dim;
    rope_table(pos, rot, inv, cs);
    for (int64_t h = 0; h < heads; h++) {
        float *v = x + h * head_dim;
        if (r->style == ISTHMUS_ROPE_INTERLEAVED) {
            for (int32_t i = 0; i < rot / 2; i++) rotate(&v[2 * i], &v[2 * i + 1], cs[2 * i], cs[2 * i + 1]);
        } else {
            for (int32_t i = 0; i < rot / 2; i++) rotate(&v[i], &v[i + rot / 2], cs[2 * i], cs[2 * i + 1]);
        }
    }
}

typedef struct rope_ctx {
    const isthmus_rope_args *a;
    int64_t per_task;
    _Atomic int bad;
} rope_ctx;

static void rope_task(void *vctx, int64_t task) {
    rope_ctx *c = vctx;
    const isthmus_rope_args *a = c->a;
    float *cs = isthmus__aligned_alloc((size_t)a->head_dim * 4 + (size_t)a->head_dim / 2 * 8);
    if (!cs) { c->bad = 1; return; }
    double *inv = (double *)(cs + a->head_dim);
    isthmus__rope_inv(&a->rope, a->head_dim, inv);
    int64_t t1 = (task + 1) * c->per_task;
    if (t1 > a->tokens) t1 = a->tokens;
    for (int64_t t = task * c->per_task; t < t1; t++)
        isthmus__rope_row(a->x + t * a->ldx, a->heads, a->head_dim, a->positions[t], &a->rope, inv, cs);
    isthmus__aligned_free(cs);
}

isthmus_status isthmus_rope(const isthmus_rope_args *a) {
    CHECK_PTR(a, "args");
    CHECK_POS(a->tokens, "tokens");
    CHECK_POS(a->heads, "heads");
    CHECK_POS(a->head_dim, "head_dim");
    CHECK_PTR(a->x, "x");
    CHECK_PTR(a->positions, "positions");
    if (a->head_dim % 2 || a->head_dim > (1 << 20))
        return FAIL_ARG("%s: head_dim = %lld, must be even and <= 2^20", __func__, (long long)a->head_dim);
    if (a->heads > ISTHMUS_MAX_ELEMS / a->head_dim)
        return FAIL_ARG("%s: heads * head_dim overflows", __func__);
    CHECK_LD(a->ldx, a->heads * a->head_dim, "ldx");
    if (!isthmus__extent_ok(a->tokens, a->ldx)) return FAIL_ARG("%s: tokens * ldx overflows", __func__);
    isthmus_status st = isthmus__rope_check(&a->rope, a->head_dim, __func__);
    if (st) return st;
    for (int64_t t = 0; t < a->tokens; t++)
        if (a->positions[t] < 0 || a->positions[t] > ((int64_t)1 << 40))
            return FAIL_ARG("%s: positions[%lld] = %lld, must be in 0..2^40", __func__, (long long)t,
                            (long long)a->positions[t]);
    rope_ctx c = {.a = a, .per_task = 16};
    int64_t tasks = (a->tokens + c.per_task - 1) / c.per_task;
    if (tasks == 1) rope_task(&c, 0);
    else isthmus__parallel_for(tasks, rope_task, &c);
    if (c.bad) return isthmus__fail(ISTHMUS_ERR_OUT_OF_MEMORY, "%s: out of memory", __func__);
    return ISTHMUS_OK;
}
