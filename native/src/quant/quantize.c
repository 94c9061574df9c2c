/* Public quantization entries: validation, granularity handling and dispatch. */
#include "quant.h"

#include <math.h>

static int group_ok(int64_t g) { return g == 32 || g == 64 || g == 128 || g == 256; }

int64_t isthmus_scale_count(int64_t rows, int64_t cols, int32_t granularity, int64_t group) {
    if (rows <= 0 || cols <= 0) {
        FAIL_ARG("isthmus_scale_count: rows = %lld, cols = %lld, both must be >= 1", (long long)rows,
                 (long long)cols);
        return 0;
    }
    switch (granularity) {
    case ISTHMUS_SCALE_PER_TENSOR: return 1;
    case ISTHMUS_SCALE_PER_ROW: return rows;
    case ISTHMUS_SCALE_PER_GROUP:
        if (!group_ok(group)) {
            FAIL_ARG("isthmus_scale_count: group = %lld, must be 32, 64, 128 or 256", (long long)group);
            return 0;
        }
        if (!isthmus__extent_ok(rows, (cols + group - 1) / group)) {
            FAIL_ARG("isthmus_scale_count: rows = %lld x %lld groups is too large", (long long)rows,
                     (long long)((cols + group - 1) / group));
            return 0;
        }
        return rows * ((cols + group - 1) / group);
    default:
        FAIL_ARG("isthmus_scale_count: granularity = %d, must be ISTHMUS_SCALE_PER_TENSOR (0), "
                 "_PER_ROW (1) or _PER_GROUP (2)", granularity);
        return 0;
    }
}

/* Locates the first non-finite element of a row segment (the kernels only say that one exists). */
static isthmus_status report_nonfinite(const float *x, int64_t row, int64_t c0, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return FAIL_ARG("quantize: x[%lld, %lld] = %f is not finite", (long long)row,
                            (long long)(c0 + i), (double)x[i]);
    return FAIL_ARG("quantize: x row %lld holds a non-finite value", (long long)row);
}

isthmus_status isthmus__quantize_rows(const QUANTIZE_S8_kernel *kern, const float *x, int64_t ldx,
                                      int64_t r0, int64_t r1, int64_t cols, int64_t group,
                                      int8_t *q, int64_t ldq, float *scales) {
    int64_t g = group > 0 ? group : cols;
    int64_t ng = (cols + g - 1) / g;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * ldx;
        int8_t *qr = q + r * ldq;
        for (int64_t j = 0; j < ng; j++) {
            int64_t c0 = j * g, n = cols - c0 < g ? cols - c0 : g;
            float amax = kern->amax(xr + c0, n);
            if (isnan(amax)) return report_nonfinite(xr + c0, r, c0, n);
            float s = isthmus__scale_of(amax);
            scales[r * ng + j] = s;
            if (s > 0.0f) kern->quant(xr + c0, n, s, qr + c0);
            else for (int64_t i = 0; i < n; i++) qr[c0 + i] = 0;
        }
    }
    return ISTHMUS_OK;
}

/* Checks shared by quantize and dequantize. */
static isthmus_status check_common(const char *fn, int64_t rows, int64_t cols, int64_t ldx,
                                   int64_t ldq, int32_t gran, int64_t group) {
    if (rows <= 0 || cols <= 0)
        return FAIL_ARG("%s: rows = %lld, cols = %lld, both must be >= 1", fn, (long long)rows,
                        (long long)cols);
    if (ldx < cols) return FAIL_ARG("%s: ldx = %lld < cols = %lld", fn, (long long)ldx, (long long)cols);
    if (ldq < cols) return FAIL_ARG("%s: ldq = %lld < cols = %lld", fn, (long long)ldq, (long long)cols);
    if (!isthmus__extent_ok(rows, ldx) || !isthmus__extent_ok(rows, ldq))
        return FAIL_ARG("%s: rows = %lld with ldx = %lld / ldq = %lld overflows", fn, (long long)rows,
                        (long long)ldx, (long long)ldq);
    if (gran < ISTHMUS_SCALE_PER_TENSOR || gran > ISTHMUS_SCALE_PER_GROUP)
        return FAIL_ARG("%s: granularity = %d, must be ISTHMUS_SCALE_PER_TENSOR (0), _PER_ROW (1) "
                        "or _PER_GROUP (2)", fn, gran);
    if (gran == ISTHMUS_SCALE_PER_GROUP && !group_ok(group))
        return FAIL_ARG("%s: group = %lld, must be 32, 64, 128 or 256", fn, (long long)group);
    return ISTHMUS_OK;
}

isthmus_status isthmus_quantize_s8(const isthmus_quantize_args *a) {
    CHECK_PTR(a, "args");
    isthmus_status st = check_common("isthmus_quantize_s8", a->rows, a->cols, a->ldx, a->ldq,
                                     a->granularity, a->group);
    if (st) return st;
    CHECK_PTR(a->x, "x");
    CHECK_PTR(a->q, "q");
    CHECK_PTR(a->scales, "scales");
    const QUANTIZE_S8_kernel *k = isthmus__kernel(ISTHMUS_OP_QUANTIZE_S8, isthmus__isa_active());
    if (k == NULL) return isthmus__fail(ISTHMUS_ERR_INTERNAL, "isthmus_quantize_s8: no kernel");
    switch (a->granularity) {
    case ISTHMUS_SCALE_PER_ROW:
        return isthmus__quantize_rows(k, a->x, a->ldx, 0, a->rows, a->cols, 0, a->q, a->ldq, a->scales);
    case ISTHMUS_SCALE_PER_GROUP:
        return isthmus__quantize_rows(k, a->x, a->ldx, 0, a->rows, a->cols, a->group, a->q, a->ldq,
                                      a->scales);
    default: { /* per tensor: one max over everything, then one scale */
        float amax = 0.0f;
        for (int64_t r = 0; r < a->rows; r++) {
            float m = k->amax(a->x + r * a->ldx, a->cols);
            if (isnan(m)) return report_nonfinite(a->x + r * a->ldx, r, 0, a->cols);
            amax = m > amax ? m : amax;
        }
        float s = isthmus__scale_of(amax);
        a->scales[0] = s;
        for (int64_t r = 0; r < a->rows; r++) {
            if (s > 0.0f) k->quant(a->x + r * a->ldx, a->cols, s, a->q + r * a->ldq);
            else for (int64_t i = 0; i < a->cols; i++) a->q[r * a->ldq + i] = 0;
        }
        return ISTHMUS_OK;
    }
    }
}

isthmus_status isthmus_dequantize_s8(const isthmus_dequantize_args *a) {
    CHECK_PTR(a, "args");
    isthmus_status st = check_common("isthmus_dequantize_s8", a->rows, a->cols, a->ldx, a->ldq,
                                     a->granularity, a->group);
    if (st) return st;
    CHECK_PTR(a->q, "q");
    CHECK_PTR(a->scales, "scales");
    CHECK_PTR(a->x, "x");
    const QUANTIZE_S8_kernel *k = isthmus__kernel(ISTHMUS_OP_QUANTIZE_S8, isthmus__isa_active());
    if (k == NULL) return isthmus__fail(ISTHMUS_ERR_INTERNAL, "isthmus_dequantize_s8: no kernel");
    int64_t g = a->granularity == ISTHMUS_SCALE_PER_GROUP ? a->group : a->cols;
    int64_t ng = (a->cols + g - 1) / g;
    for (int64_t r = 0; r < a->rows; r++) {
        for (int64_t j = 0; j < ng; j++) {
            int64_t c0 = j * g, n = a->cols - c0 < g ? a->cols - c0 : g;
            float s = a->granularity == ISTHMUS_SCALE_PER_TENSOR ? a->scales[0]
                    : a->granularity == ISTHMUS_SCALE_PER_ROW    ? a->scales[r]
                                                                 : a->scales[r * ng + j];
            k->dequant(a->q + r * a->ldq + c0, n, s, a->x + r * a->ldx + c0);
        }
    }
    return ISTHMUS_OK;
}
