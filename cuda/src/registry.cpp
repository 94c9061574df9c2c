/* The kernel registry: every variant the library may run, gathered from the quantize entry and the GEMM
 * families' own lists (gemm_internal.h), so that tests, benchmarks and the Java side enumerate the same set.
 * The MMA and WGMMA families are listed when their files were built (ISTHMUS_CUDA_HAVE_*, cuda/CMakeLists.txt). */
#include "common.h"
#include "gemm_internal.h"

extern const gemm_variant_list isthmus_cuda__quantize_variants;

static const gemm_variant_list *const lists[] = {
    &isthmus_cuda__quantize_variants,
#ifdef ISTHMUS_CUDA_HAVE_MMA
    &isthmus_cuda__gemm_mma_variants,
#endif
#ifdef ISTHMUS_CUDA_HAVE_WGMMA
    &isthmus_cuda__gemm_wgmma_variants,
#endif
    &isthmus_cuda__gemm_skinny_variants,
};

extern "C" int64_t isthmus_cuda_kernel_count(void) {
    int64_t n = 0;
    for (const gemm_variant_list *l : lists) n += l->count;
    return n;
}

extern "C" isthmus_cuda_status isthmus_cuda_kernel_get_info(int64_t index, isthmus_cuda_kernel_info *out) {
    static const char fn[] = "isthmus_cuda_kernel_get_info";
    isthmus_cuda__clear_error();
    if (!out) return FAIL_ARG("%s: out is NULL", fn);
    const int64_t count = isthmus_cuda_kernel_count();
    if (index < 0 || index >= count)
        return FAIL_ARG("%s: index = %lld, must be in [0, %lld)", fn, (long long)index, (long long)count);
    for (const gemm_variant_list *l : lists) {
        if (index < l->count) {
            *out = l->items[index];
            return ISTHMUS_CUDA_OK;
        }
        index -= l->count;
    }
    return isthmus_cuda__fail(ISTHMUS_CUDA_ERR_INTERNAL, "%s: registry lists disagree with the count", fn);
}
