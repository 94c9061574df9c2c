/* isthmus_cuda_gemm_s8 and its queries: validation of every argument (isthmus_cuda.h), the gemm_problem, the
 * choice of kernel family (gemm_internal.h) and the mapping of launch errors. No device code here: the
 * families live in gemm_skinny.cu, gemm_mma.cu and gemm_wgmma.cu (the last two are used when they were
 * built: ISTHMUS_CUDA_HAVE_MMA / ISTHMUS_CUDA_HAVE_WGMMA, set by cuda/CMakeLists.txt when the files exist).
 *
 * Selection (AUTO): M <= 16 -> SKINNY; else on sm_90 WGMMA when it takes the problem; else MMA_SYNC when it
 * takes it; else SKINNY, which runs any M and any alignment (slower). A forced family that does not take the
 * problem is ISTHMUS_CUDA_ERR_UNSUPPORTED, with the reason. */
#include <mutex>
#include <stdio.h>

#include "common.h"
#include "gemm_internal.h"

namespace {

const int64_t MAX_ELEMS = (int64_t)1 << 45; /* as the CPU library's ISTHMUS_MAX_ELEMS */

const gemm_family *family_of(int32_t id) {
    switch (id) {
#ifdef ISTHMUS_CUDA_HAVE_MMA
    case ISTHMUS_CUDA_GEMM_MMA_SYNC: return &isthmus_cuda__gemm_mma;
#endif
#ifdef ISTHMUS_CUDA_HAVE_WGMMA
    case ISTHMUS_CUDA_GEMM_WGMMA: return &isthmus_cuda__gemm_wgmma;
#endif
    case ISTHMUS_CUDA_GEMM_SKINNY: return &isthmus_cuda__gemm_skinny;
    default: return nullptr;
    }
}

const char *family_name(int32_t id) {
    switch (id) {
    case ISTHMUS_CUDA_GEMM_MMA_SYNC: return "MMA_SYNC";
    case ISTHMUS_CUDA_GEMM_WGMMA: return "WGMMA";
    case ISTHMUS_CUDA_GEMM_SKINNY: return "SKINNY";
    default: return "AUTO";
    }
}

int valid_granularity(int32_t g) {
    return g == ISTHMUS_CUDA_SCALE_PER_TENSOR || g == ISTHMUS_CUDA_SCALE_PER_ROW || g == ISTHMUS_CUDA_SCALE_PER_GROUP;
}

int extent_ok(int64_t rows, int64_t ld) { return ld <= MAX_ELEMS / rows; }

/* Step 1 (host-side arguments). with_pointers = 0 for the queries, which do not need the buffers. */
isthmus_cuda_status validate(const char *fn, const isthmus_cuda_gemm_s8_args *a, int with_pointers) {
    if (!a) return FAIL_ARG("%s: args is NULL", fn);
    const long long M = a->m, N = a->n, K = a->k;
    if (a->m < 1 || a->n < 1 || a->k < 1) return FAIL_ARG("%s: m = %lld, n = %lld, k = %lld, all must be >= 1", fn, M, N, K);
    if (a->k > ISTHMUS_CUDA_GEMM_MAX_K)
        return FAIL_ARG("%s: k = %lld exceeds ISTHMUS_CUDA_GEMM_MAX_K = %d (int32 accumulators must stay exact)", fn, K,
                        ISTHMUS_CUDA_GEMM_MAX_K);
    if (with_pointers && !a->a) return FAIL_ARG("%s: a is NULL (a [M = %lld, K = %lld])", fn, M, K);
    if (a->lda < a->k) return FAIL_ARG("%s: lda = %lld, must be >= k = %lld (a [M = %lld, K = %lld])", fn, (long long)a->lda, K, M, K);
    if (!extent_ok(a->m, a->lda)) return FAIL_ARG("%s: a [M = %lld, lda = %lld] is too large", fn, M, (long long)a->lda);
    if (with_pointers && !a->w) return FAIL_ARG("%s: w is NULL (w [N = %lld, K = %lld])", fn, N, K);
    if (a->ldw < a->k) return FAIL_ARG("%s: ldw = %lld, must be >= k = %lld (w [N = %lld, K = %lld])", fn, (long long)a->ldw, K, N, K);
    if (!extent_ok(a->n, a->ldw)) return FAIL_ARG("%s: w [N = %lld, ldw = %lld] is too large", fn, N, (long long)a->ldw);
    if (with_pointers && !a->y) return FAIL_ARG("%s: y is NULL (y [M = %lld, N = %lld])", fn, M, N);
    if (a->y_dtype != ISTHMUS_CUDA_F32 && a->y_dtype != ISTHMUS_CUDA_BF16 && a->y_dtype != ISTHMUS_CUDA_S32)
        return FAIL_ARG("%s: y_dtype = %d, must be ISTHMUS_CUDA_F32 (0), BF16 (1) or S32 (3)", fn, (int)a->y_dtype);
    if (a->ldy < a->n) return FAIL_ARG("%s: ldy = %lld, must be >= n = %lld (y [M = %lld, N = %lld])", fn, (long long)a->ldy, N, M, N);
    if (!extent_ok(a->m, a->ldy)) return FAIL_ARG("%s: y [M = %lld, ldy = %lld] is too large", fn, M, (long long)a->ldy);
    if (!valid_granularity(a->a_granularity))
        return FAIL_ARG("%s: a_granularity = %d, must be ISTHMUS_CUDA_SCALE_PER_TENSOR (0), PER_ROW (1) or PER_GROUP (2)",
                        fn, (int)a->a_granularity);
    if (!valid_granularity(a->w_granularity))
        return FAIL_ARG("%s: w_granularity = %d, must be ISTHMUS_CUDA_SCALE_PER_TENSOR (0), PER_ROW (1) or PER_GROUP (2)",
                        fn, (int)a->w_granularity);
    const int grouped = a->a_granularity == ISTHMUS_CUDA_SCALE_PER_GROUP || a->w_granularity == ISTHMUS_CUDA_SCALE_PER_GROUP;
    if (grouped) {
        if (a->group != 32 && a->group != 64 && a->group != 128 && a->group != 256)
            return FAIL_ARG("%s: group = %lld, must be 32, 64, 128 or 256 when a_granularity or w_granularity is PER_GROUP",
                            fn, (long long)a->group);
    } else if (a->group != 0) {
        return FAIL_ARG("%s: group = %lld, must be 0 unless a_granularity or w_granularity is PER_GROUP", fn,
                        (long long)a->group);
    }
    if (a->y_dtype == ISTHMUS_CUDA_S32) {
        if (with_pointers && a->a_scales) return FAIL_ARG("%s: a_scales must be NULL with y_dtype S32 (exact int32 output)", fn);
        if (with_pointers && a->w_scales) return FAIL_ARG("%s: w_scales must be NULL with y_dtype S32 (exact int32 output)", fn);
        if (with_pointers && a->bias) return FAIL_ARG("%s: bias must be NULL with y_dtype S32 (exact int32 output)", fn);
    } else {
        if (with_pointers && !a->a_scales) return FAIL_ARG("%s: a_scales is NULL (required with y_dtype F32 or BF16)", fn);
        if (with_pointers && !a->w_scales) return FAIL_ARG("%s: w_scales is NULL (required with y_dtype F32 or BF16)", fn);
    }
    if (a->kernel < ISTHMUS_CUDA_GEMM_AUTO || a->kernel > ISTHMUS_CUDA_GEMM_SKINNY)
        return FAIL_ARG("%s: kernel = %d, must be ISTHMUS_CUDA_GEMM_AUTO (0), MMA_SYNC (1), WGMMA (2) or SKINNY (3)", fn,
                        (int)a->kernel);
    if (with_pointers) {
        if (a->workspace_size < 0) return FAIL_ARG("%s: workspace_size = %lld is negative", fn, (long long)a->workspace_size);
        if (!a->workspace && a->workspace_size != 0)
            return FAIL_ARG("%s: workspace is NULL but workspace_size = %lld", fn, (long long)a->workspace_size);
        if (((uintptr_t)a->workspace & 15) != 0)
            return FAIL_ARG("%s: workspace %p is not 16-byte aligned", fn, a->workspace);
    }
    return ISTHMUS_CUDA_OK;
}

/* Per-device facts the selection needs, asked once per device. */
struct device_facts {
    std::once_flag once;
    cudaError_t err;
    int32_t sm, num_sms;
    int64_t smem_optin;
};
constexpr int MAX_DEVICES = 64;
device_facts facts[MAX_DEVICES];

isthmus_cuda_status fill_problem(const char *fn, const isthmus_cuda_gemm_s8_args *a, gemm_problem *p) {
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, a->device);
    if (st) return st;
    int32_t sm = 0, sms = 0;
    int64_t optin = 0;
    if (a->device < MAX_DEVICES) {
        device_facts &f = facts[a->device];
        std::call_once(f.once, [&] {
            int major = 0, minor = 0, n = 0, o = 0;
            f.err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, a->device);
            if (!f.err) f.err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, a->device);
            if (!f.err) f.err = cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, a->device);
            if (!f.err) f.err = cudaDeviceGetAttribute(&o, cudaDevAttrMaxSharedMemoryPerBlockOptin, a->device);
            f.sm = major * 10 + minor;
            f.num_sms = n;
            f.smem_optin = o;
        });
        if (f.err) return isthmus_cuda__cuda_fail(fn, "cudaDeviceGetAttribute", f.err);
        sm = f.sm, sms = f.num_sms, optin = f.smem_optin;
    } else {
        st = isthmus_cuda__device_sm(fn, a->device, &sm, &sms, &optin);
        if (st) return st;
    }
    const int grouped = a->a_granularity == ISTHMUS_CUDA_SCALE_PER_GROUP || a->w_granularity == ISTHMUS_CUDA_SCALE_PER_GROUP;
    p->m = a->m, p->n = a->n, p->k = a->k;
    p->a = a->a, p->lda = a->lda;
    p->w = a->w, p->ldw = a->ldw;
    const int s32 = a->y_dtype == ISTHMUS_CUDA_S32;
    p->a_granularity = a->a_granularity, p->a_scales = s32 ? nullptr : a->a_scales;
    p->w_granularity = a->w_granularity, p->w_scales = s32 ? nullptr : a->w_scales;
    /* S32 output reads no scales: one group, whatever the granularities say (a PER_GROUP S32 call made the
     * skinny family's grouped kernel read the NULL scales) */
    p->group = grouped && !s32 ? a->group : a->k;
    p->groups = (a->k + p->group - 1) / p->group;
    p->bias = s32 ? nullptr : a->bias;
    p->y = a->y, p->y_dtype = a->y_dtype, p->ldy = a->ldy;
    p->workspace = a->workspace, p->workspace_size = a->workspace_size;
    p->stream = (cudaStream_t)a->stream;
    p->device = a->device;
    p->sm = sm, p->num_sms = sms, p->smem_optin = optin;
    return ISTHMUS_CUDA_OK;
}

/* Step 3: the family that runs p (forced or AUTO). */
isthmus_cuda_status choose(const char *fn, const isthmus_cuda_gemm_s8_args *a, const gemm_problem *p,
                           const gemm_family **out) {
    if (p->sm < 80)
        return isthmus_cuda__fail(ISTHMUS_CUDA_ERR_UNSUPPORTED,
                                  "%s: device %d is sm_%d; this library's kernels need sm_80 or newer", fn,
                                  (int)p->device, (int)p->sm);
    if (a->kernel != ISTHMUS_CUDA_GEMM_AUTO) {
        const gemm_family *f = family_of(a->kernel);
        if (!f)
            return isthmus_cuda__fail(ISTHMUS_CUDA_ERR_UNSUPPORTED, "%s: kernel %s: that family is not built into this library",
                                      fn, family_name(a->kernel));
        if (!f->supports(p))
            return isthmus_cuda__fail(ISTHMUS_CUDA_ERR_UNSUPPORTED,
                                      "%s: kernel %s does not take this problem on sm_%d (m = %lld, n = %lld, k = %lld, "
                                      "lda = %lld, ldw = %lld, a %% 16 = %d, w %% 16 = %d; MMA_SYNC and WGMMA need 16-byte "
                                      "aligned a and w and lda, ldw multiples of 16, WGMMA needs sm_90a): use AUTO or SKINNY",
                                      fn, family_name(a->kernel), (int)p->sm, (long long)p->m, (long long)p->n,
                                      (long long)p->k, (long long)p->lda, (long long)p->ldw, (int)((uintptr_t)p->a % 16),
                                      (int)((uintptr_t)p->w % 16));
        *out = f;
        return ISTHMUS_CUDA_OK;
    }
    static const int32_t order_small[] = {ISTHMUS_CUDA_GEMM_SKINNY};
    static const int32_t order_large[] = {ISTHMUS_CUDA_GEMM_WGMMA, ISTHMUS_CUDA_GEMM_MMA_SYNC, ISTHMUS_CUDA_GEMM_SKINNY};
    const int32_t *order = p->m <= 16 ? order_small : order_large;
    const int count = p->m <= 16 ? 1 : 3;
    for (int i = 0; i < count; i++) {
        if (order[i] == ISTHMUS_CUDA_GEMM_WGMMA && p->sm != 90) continue;
        const gemm_family *f = family_of(order[i]);
        if (f && f->supports(p)) {
            *out = f;
            return ISTHMUS_CUDA_OK;
        }
    }
    /* reachable: unaligned a / w (MMA and WGMMA refuse them) with more M-tiles than SKINNY's grid holds */
    return isthmus_cuda__fail(ISTHMUS_CUDA_ERR_UNSUPPORTED,
                              "%s: no kernel family takes m = %lld, n = %lld, k = %lld on sm_%d with a %% 16 = %d, "
                              "w %% 16 = %d, lda = %lld, ldw = %lld: align a and w to 16 bytes (lda, ldw multiples of 16) "
                              "or split M",
                              fn, (long long)p->m, (long long)p->n, (long long)p->k, (int)p->sm,
                              (int)((uintptr_t)p->a % 16), (int)((uintptr_t)p->w % 16), (long long)p->lda,
                              (long long)p->ldw);
}

/* validate, make the problem, pick the family: the common start of the three entries */
isthmus_cuda_status resolve(const char *fn, const isthmus_cuda_gemm_s8_args *a, int with_pointers, gemm_problem *p,
                            const gemm_family **f) {
    isthmus_cuda_status st = validate(fn, a, with_pointers);
    if (st) return st;
    if ((st = fill_problem(fn, a, p))) return st;
    return choose(fn, a, p, f);
}

} // namespace

extern "C" isthmus_cuda_status isthmus_cuda_gemm_s8_workspace_size(const isthmus_cuda_gemm_s8_args *a, int64_t *bytes) {
    static const char fn[] = "isthmus_cuda_gemm_s8_workspace_size";
    isthmus_cuda__clear_error();
    if (!bytes) return FAIL_ARG("%s: bytes is NULL", fn);
    *bytes = 0;
    gemm_problem p;
    const gemm_family *f;
    isthmus_cuda_status st = resolve(fn, a, 0, &p, &f);
    if (st) return st;
    *bytes = f->workspace(&p);
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_gemm_s8_select(const isthmus_cuda_gemm_s8_args *a, const char **name) {
    static const char fn[] = "isthmus_cuda_gemm_s8_select";
    isthmus_cuda__clear_error();
    if (!name) return FAIL_ARG("%s: name is NULL", fn);
    *name = nullptr;
    gemm_problem p;
    const gemm_family *f;
    isthmus_cuda_status st = resolve(fn, a, 0, &p, &f);
    if (st) return st;
    *name = f->select(&p);
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_gemm_s8(const isthmus_cuda_gemm_s8_args *a) {
    static const char fn[] = "isthmus_cuda_gemm_s8";
    isthmus_cuda__clear_error();
    gemm_problem p;
    const gemm_family *f;
    isthmus_cuda_status st = resolve(fn, a, 1, &p, &f);
    if (st) return st;
    const int64_t need = f->workspace(&p);
    if (a->workspace_size < need)
        return FAIL_ARG("%s: workspace_size = %lld, but %s needs %lld bytes for m = %lld, n = %lld, k = %lld "
                        "(isthmus_cuda_gemm_s8_workspace_size)",
                        fn, (long long)a->workspace_size, f->select(&p), (long long)need, (long long)a->m,
                        (long long)a->n, (long long)a->k);
    cudaError_t e = f->launch(&p);
    if (e != cudaSuccess) return isthmus_cuda__cuda_fail(fn, f->select(&p), e);
    return ISTHMUS_CUDA_OK;
}
