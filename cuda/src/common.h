/* Internals shared by the CUDA library's host code: the thread-local error text, device checks, and the
 * mapping of CUDA runtime errors to isthmus_cuda statuses. Not part of the ABI.
 *
 * Order of checks in every entry that names a device (the tests rely on it):
 *   1. the arguments that can be checked on the host (NULL pointers, sizes, strides, enum values, a negative
 *      device index): ISTHMUS_CUDA_ERR_INVALID_ARGUMENT;
 *   2. the device: no driver / driver too old / no device: ISTHMUS_CUDA_ERR_NO_DEVICE; an index >= the device
 *      count: ISTHMUS_CUDA_ERR_INVALID_ARGUMENT;
 *   3. the CUDA calls: their failures are ISTHMUS_CUDA_ERR_DEVICE (OUT_OF_MEMORY for allocations).
 * So a wrong argument is reported the same way on a machine with or without a GPU. */
#ifndef ISTHMUS_CUDA_COMMON_H
#define ISTHMUS_CUDA_COMMON_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "isthmus_cuda.h"

#if defined(__GNUC__)
#define ISTHMUS_CUDA_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ISTHMUS_CUDA_PRINTF(f, a)
#endif

/* Clears this thread's error text (every entry does, first). */
void isthmus_cuda__clear_error(void);
/* Sets this thread's error text and returns status. */
isthmus_cuda_status isthmus_cuda__fail(isthmus_cuda_status status, const char *fmt, ...) ISTHMUS_CUDA_PRINTF(2, 3);
/* Sets the error text without failing (device_count's reason for 0 devices). */
void isthmus_cuda__note(const char *fmt, ...) ISTHMUS_CUDA_PRINTF(1, 2);

/* A failed CUDA call: ISTHMUS_CUDA_ERR_DEVICE (ERR_OUT_OF_MEMORY for cudaErrorMemoryAllocation, ERR_NO_DEVICE
 * for the driver errors) with "fn: what failed: cudaErrorX (text)". Clears CUDA's sticky-free last error. */
isthmus_cuda_status isthmus_cuda__cuda_fail(const char *fn, const char *what, cudaError_t e);

/* Checks that device is usable (step 2 above) and makes it current (cudaSetDevice). */
isthmus_cuda_status isthmus_cuda__use_device(const char *fn, int32_t device);

/* Device count (0 without driver or device) and, when 0, why; computed once per process. */
int32_t isthmus_cuda__device_count(const char **why, isthmus_cuda_status *why_status);

/* Compute capability * 10 and SM count of a device already checked by use_device. */
isthmus_cuda_status isthmus_cuda__device_sm(const char *fn, int32_t device, int32_t *sm, int32_t *num_sms,
                                            int64_t *smem_optin);

#define FAIL_ARG(...) isthmus_cuda__fail(ISTHMUS_CUDA_ERR_INVALID_ARGUMENT, __VA_ARGS__)

#define CUDA_TRY(fn, what, call)                                                                             \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess) return isthmus_cuda__cuda_fail(fn, what, e_);                                 \
    } while (0)

#endif
