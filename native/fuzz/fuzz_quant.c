/* Fuzz target: quantization (isthmus_quantize_s8, isthmus_dequantize_s8, isthmus_scale_count).
 * Valid calls are checked against their contract (a NaN/inf input is refused; otherwise every q is in
 * [-127, 127], scales are finite and non-negative, and dequantize(quantize(x)) is within s/2 of x);
 * hostile sizes, strides, granularities and groups must be refused. */
#include "fuzz.h"

static const int32_t granularities[] = {ISTHMUS_SCALE_PER_TENSOR, ISTHMUS_SCALE_PER_ROW,
                                        ISTHMUS_SCALE_PER_GROUP, 3, -1};
static const int64_t groups[] = {32, 64, 128, 256, 0, 16, 33, 512, -32};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    fz_threads(&in);
    int bad = 0;
    int64_t rows = fz_size(&in, 9, 12, &bad);
    int64_t cols = fz_size(&in, 300, 12, &bad);
    uint8_t g = fz_u8(&in);
    int32_t gran = granularities[g % 5];
    int64_t group = groups[(g >> 3) % 9];
    if (gran < 0 || gran > 2) bad = 1;
    if (gran == ISTHMUS_SCALE_PER_GROUP && (group < 32 || group > 256 || (group & (group - 1)))) bad = 1;
    int64_t ldx = bad ? 1 : cols + fz_range(&in, 0, 3), ldq = bad ? 1 : cols + fz_range(&in, 0, 3);
    if (!bad && cols > 1 && fz_u8(&in) < 8) { /* a stride shorter than a row */
        ldx = cols - 1;
        bad = 1;
    }

    /* buffers: real when the shape is valid, one element when the call must be refused anyway */
    int64_t nscale = bad ? 1 : isthmus_scale_count(rows, cols, gran, group);
    int64_t xs = bad ? 1 : rows * ldx, qs = bad ? 1 : rows * ldq, ss = nscale > 0 ? nscale : 1;
    float *x = fz_alloc((size_t)xs * 4), *scales = fz_alloc((size_t)ss * 4), *back = fz_alloc((size_t)xs * 4);
    int8_t *q = fz_alloc((size_t)qs);
    fz_fill_f32(&in, x, xs);
    int nulls = fz_u8(&in);
    isthmus_quantize_args qa = {rows, cols, nulls == 1 ? NULL : x, ldx, gran, group, nulls == 2 ? NULL : q, ldq,
                                nulls == 3 ? NULL : scales};
    if (nulls >= 1 && nulls <= 3) bad = 1;
    isthmus_status st = isthmus_quantize_s8(&qa);
    if (bad) {
        fz_expect_refused(st, "isthmus_quantize_s8");
    } else {
        fz_check_status(st, "isthmus_quantize_s8");
        int finite = 1;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) finite &= isfinite(x[r * ldx + c]) != 0;
        if (!finite && st == ISTHMUS_OK) {
            fprintf(stderr, "isthmus_quantize_s8 accepted a NaN or infinite input\n");
            abort();
        }
        if (st == ISTHMUS_OK) {
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++)
                    if (q[r * ldq + c] < -127) {
                        fprintf(stderr, "q = -128 at [%lld, %lld]\n", (long long)r, (long long)c);
                        abort();
                    }
            for (int64_t i = 0; i < nscale; i++)
                if (!(scales[i] >= 0 && isfinite(scales[i]))) {
                    fprintf(stderr, "scale %lld = %g\n", (long long)i, scales[i]);
                    abort();
                }
            isthmus_dequantize_args da = {rows, cols, q, ldq, gran, group, scales, back, ldx};
            fz_check_status(isthmus_dequantize_s8(&da), "isthmus_dequantize_s8");
            /* |x - q s| <= s / 2 for its own scale s, checked against the largest, plus float rounding:
             * x / s (|x / s| <= 127) and q * s each round by 2^-24 relative, 2^-16 s in all at most */
            float smax = 0;
            for (int64_t i = 0; i < nscale; i++) smax = fmaxf(smax, scales[i]);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++) {
                    float xv = x[r * ldx + c], bv = back[r * ldx + c];
                    if (fabsf(xv - bv) > smax * (0.5f + 0x1p-16f) + 1e-37f) {
                        fprintf(stderr, "round trip [%lld, %lld]: %g -> %g (max scale %g)\n", (long long)r,
                                (long long)c, xv, bv, smax);
                        abort();
                    }
                }
        }
    }
    free(x);
    free(q);
    free(scales);
    free(back);
    return 0;
}
