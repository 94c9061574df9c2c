/* Status and errors, versions, devices, memory, copies, streams and events: the thin host layer over the
 * CUDA runtime (statically linked). Every entry clears the thread's error text, checks its arguments, then the
 * device (common.h says in which order), then calls CUDA and maps its error. */
#include "common.h"

#include <mutex>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifndef ISTHMUS_VERSION_STRING
#error "ISTHMUS_VERSION_STRING comes from native/src/core/internal.h through cuda/CMakeLists.txt"
#endif

static thread_local char last_error[768];

extern "C" const char *isthmus_cuda_last_error(void) { return last_error; }

void isthmus_cuda__clear_error(void) { last_error[0] = '\0'; }

isthmus_cuda_status isthmus_cuda__fail(isthmus_cuda_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void isthmus_cuda__note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ driver and device discovery */

static std::once_flag discover_once;
static int32_t dev_count;
static char dev_why[256];
static isthmus_cuda_status dev_why_status = ISTHMUS_CUDA_OK;

static void discover(void) {
    int n = 0, drv = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess && n > 0) {
        dev_count = n;
        return;
    }
    dev_count = 0;
    dev_why_status = ISTHMUS_CUDA_ERR_NO_DEVICE;
    if (cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0;
    (void)cudaGetLastError();
    if (e == cudaSuccess || e == cudaErrorNoDevice) {
        snprintf(dev_why, sizeof dev_why, "no CUDA device (the NVIDIA driver %d is loaded but lists no GPU%s)", drv,
                 e == cudaErrorNoDevice ? ": cudaErrorNoDevice" : "");
    } else if (e == cudaErrorInsufficientDriver && drv == 0) {
        snprintf(dev_why, sizeof dev_why, "no NVIDIA driver found (libcuda.so.1): cudaGetDeviceCount returned "
                 "cudaErrorInsufficientDriver and cudaDriverGetVersion 0");
    } else if (e == cudaErrorInsufficientDriver) {
        snprintf(dev_why, sizeof dev_why, "CUDA driver %d is older than this library's runtime %d", drv,
                 CUDART_VERSION);
    } else {
        snprintf(dev_why, sizeof dev_why, "no usable CUDA device: cudaGetDeviceCount failed: %s (%s)",
                 cudaGetErrorName(e), cudaGetErrorString(e));
    }
}

int32_t isthmus_cuda__device_count(const char **why, isthmus_cuda_status *why_status) {
    std::call_once(discover_once, discover);
    if (why) *why = dev_why;
    if (why_status) *why_status = dev_why_status;
    return dev_count;
}

static isthmus_cuda_status check_device(const char *fn, int32_t device) {
    if (device < 0) return FAIL_ARG("%s: device = %d is negative", fn, (int)device);
    const char *why;
    isthmus_cuda_status st;
    int32_t n = isthmus_cuda__device_count(&why, &st);
    if (n == 0) return isthmus_cuda__fail(st, "%s: device %d: %s", fn, (int)device, why);
    if (device >= n) return FAIL_ARG("%s: device = %d, but there are %d CUDA devices (0..%d)", fn, (int)device, (int)n,
                                     (int)n - 1);
    return ISTHMUS_CUDA_OK;
}

isthmus_cuda_status isthmus_cuda__use_device(const char *fn, int32_t device) {
    isthmus_cuda_status st = check_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaSetDevice", cudaSetDevice(device));
    return ISTHMUS_CUDA_OK;
}

isthmus_cuda_status isthmus_cuda__cuda_fail(const char *fn, const char *what, cudaError_t e) {
    (void)cudaGetLastError(); /* clear a non-sticky error so the next call on this thread starts clean */
    isthmus_cuda_status st = ISTHMUS_CUDA_ERR_DEVICE;
    if (e == cudaErrorMemoryAllocation) st = ISTHMUS_CUDA_ERR_OUT_OF_MEMORY;
    else if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice) st = ISTHMUS_CUDA_ERR_NO_DEVICE;
    else if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorUnsupportedPtxVersion)
        st = ISTHMUS_CUDA_ERR_UNSUPPORTED;
    return isthmus_cuda__fail(st, "%s: %s failed: %s (%s)", fn, what, cudaGetErrorName(e), cudaGetErrorString(e));
}

isthmus_cuda_status isthmus_cuda__device_sm(const char *fn, int32_t device, int32_t *sm, int32_t *num_sms,
                                            int64_t *smem_optin) {
    int major = 0, minor = 0, sms = 0, optin = 0;
    CUDA_TRY(fn, "cudaDeviceGetAttribute(ComputeCapabilityMajor)",
             cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    CUDA_TRY(fn, "cudaDeviceGetAttribute(ComputeCapabilityMinor)",
             cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    CUDA_TRY(fn, "cudaDeviceGetAttribute(MultiProcessorCount)",
             cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    CUDA_TRY(fn, "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)",
             cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (sm) *sm = major * 10 + minor;
    if (num_sms) *num_sms = sms;
    if (smem_optin) *smem_optin = optin;
    return ISTHMUS_CUDA_OK;
}

/* ------------------------------------------------------------------ versions and devices */

extern "C" int32_t isthmus_cuda_abi_version(void) { return ISTHMUS_CUDA_ABI_VERSION; }

extern "C" const char *isthmus_cuda_version(void) { return ISTHMUS_VERSION_STRING; }

extern "C" isthmus_cuda_status isthmus_cuda_versions(int32_t *runtime_version, int32_t *driver_version) {
    static const char fn[] = "isthmus_cuda_versions";
    isthmus_cuda__clear_error();
    if (!runtime_version) return FAIL_ARG("%s: runtime_version is NULL", fn);
    if (!driver_version) return FAIL_ARG("%s: driver_version is NULL", fn);
    int drv = 0;
    if (cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0; /* 0: no driver, as the header says */
    (void)cudaGetLastError();
    *runtime_version = CUDART_VERSION; /* the version linked in (static cudart), independent of the driver */
    *driver_version = drv;
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_device_count(int32_t *count) {
    isthmus_cuda__clear_error();
    if (!count) return FAIL_ARG("isthmus_cuda_device_count: count is NULL");
    const char *why;
    *count = isthmus_cuda__device_count(&why, nullptr);
    if (*count == 0) isthmus_cuda__note("%s", why);
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_device_get_props(int32_t device, isthmus_cuda_device_props *out) {
    static const char fn[] = "isthmus_cuda_device_get_props";
    isthmus_cuda__clear_error();
    if (!out) return FAIL_ARG("%s: out is NULL", fn);
    isthmus_cuda_status st = check_device(fn, device);
    if (st) return st;
    cudaDeviceProp p;
    CUDA_TRY(fn, "cudaGetDeviceProperties", cudaGetDeviceProperties(&p, device));
    int clock = 0, mclock = 0;
    /* CUDA 13 dropped clockRate / memoryClockRate from cudaDeviceProp: ask the attributes */
    CUDA_TRY(fn, "cudaDeviceGetAttribute(ClockRate)", cudaDeviceGetAttribute(&clock, cudaDevAttrClockRate, device));
    CUDA_TRY(fn, "cudaDeviceGetAttribute(MemoryClockRate)",
             cudaDeviceGetAttribute(&mclock, cudaDevAttrMemoryClockRate, device));
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->major = p.major;
    out->minor = p.minor;
    out->multiprocessors = p.multiProcessorCount;
    out->clock_khz = clock;
    out->total_memory = (int64_t)p.totalGlobalMem;
    out->l2_bytes = p.l2CacheSize;
    out->shared_per_block_optin = (int64_t)p.sharedMemPerBlockOptin;
    out->memory_bus_bits = p.memoryBusWidth;
    out->memory_clock_khz = mclock;
    out->pci_bus = p.pciBusID;
    out->pci_device = p.pciDeviceID;
    out->kernels_available = p.major >= 8 ? 1 : 0;
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_mem_info(int32_t device, int64_t *free_bytes, int64_t *total_bytes) {
    static const char fn[] = "isthmus_cuda_mem_info";
    isthmus_cuda__clear_error();
    if (!free_bytes) return FAIL_ARG("%s: free_bytes is NULL", fn);
    if (!total_bytes) return FAIL_ARG("%s: total_bytes is NULL", fn);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    size_t f = 0, t = 0;
    CUDA_TRY(fn, "cudaMemGetInfo", cudaMemGetInfo(&f, &t));
    *free_bytes = (int64_t)f;
    *total_bytes = (int64_t)t;
    return ISTHMUS_CUDA_OK;
}

/* ------------------------------------------------------------------ memory */

extern "C" isthmus_cuda_status isthmus_cuda_malloc(int32_t device, int64_t bytes, void **ptr) {
    static const char fn[] = "isthmus_cuda_malloc";
    isthmus_cuda__clear_error();
    if (!ptr) return FAIL_ARG("%s: ptr is NULL", fn);
    *ptr = nullptr;
    if (bytes < 1) return FAIL_ARG("%s: bytes = %lld, must be >= 1", fn, (long long)bytes);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, (size_t)bytes);
    if (e != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof what, "cudaMalloc(%lld bytes) on device %d", (long long)bytes, (int)device);
        return isthmus_cuda__cuda_fail(fn, what, e);
    }
    *ptr = p;
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_free(int32_t device, void *ptr) {
    static const char fn[] = "isthmus_cuda_free";
    isthmus_cuda__clear_error();
    if (device < 0) return FAIL_ARG("%s: device = %d is negative", fn, (int)device);
    if (!ptr) return ISTHMUS_CUDA_OK;
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaFree", cudaFree(ptr));
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_host_alloc(int64_t bytes, void **ptr) {
    static const char fn[] = "isthmus_cuda_host_alloc";
    isthmus_cuda__clear_error();
    if (!ptr) return FAIL_ARG("%s: ptr is NULL", fn);
    *ptr = nullptr;
    if (bytes < 1) return FAIL_ARG("%s: bytes = %lld, must be >= 1", fn, (long long)bytes);
    const char *why;
    isthmus_cuda_status why_st;
    if (isthmus_cuda__device_count(&why, &why_st) == 0) return isthmus_cuda__fail(why_st, "%s: %s", fn, why);
    void *p = nullptr;
    cudaError_t e = cudaMallocHost(&p, (size_t)bytes);
    if (e != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof what, "cudaMallocHost(%lld bytes)", (long long)bytes);
        return isthmus_cuda__cuda_fail(fn, what, e);
    }
    *ptr = p;
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_host_free(void *ptr) {
    static const char fn[] = "isthmus_cuda_host_free";
    isthmus_cuda__clear_error();
    if (!ptr) return ISTHMUS_CUDA_OK;
    CUDA_TRY(fn, "cudaFreeHost", cudaFreeHost(ptr));
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_memcpy_async(int32_t device, void *dst, const void *src, int64_t bytes,
                                                         int32_t kind, void *stream) {
    static const char fn[] = "isthmus_cuda_memcpy_async";
    isthmus_cuda__clear_error();
    cudaMemcpyKind k;
    switch (kind) {
    case ISTHMUS_CUDA_COPY_H2D: k = cudaMemcpyHostToDevice; break;
    case ISTHMUS_CUDA_COPY_D2H: k = cudaMemcpyDeviceToHost; break;
    case ISTHMUS_CUDA_COPY_D2D: k = cudaMemcpyDeviceToDevice; break;
    default:
        return FAIL_ARG("%s: kind = %d, must be ISTHMUS_CUDA_COPY_H2D (1), D2H (2) or D2D (3)", fn, (int)kind);
    }
    if (bytes < 0) return FAIL_ARG("%s: bytes = %lld is negative", fn, (long long)bytes);
    if (device < 0) return FAIL_ARG("%s: device = %d is negative", fn, (int)device);
    if (bytes == 0) return ISTHMUS_CUDA_OK;
    if (!dst) return FAIL_ARG("%s: dst is NULL (bytes = %lld)", fn, (long long)bytes);
    if (!src) return FAIL_ARG("%s: src is NULL (bytes = %lld)", fn, (long long)bytes);
    {
        const char *d = (const char *)dst, *s = (const char *)src;
        if (d < s + bytes && s < d + bytes)
            return FAIL_ARG("%s: dst %p and src %p overlap (bytes = %lld)", fn, dst, src, (long long)bytes);
    }
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaMemcpyAsync", cudaMemcpyAsync(dst, src, (size_t)bytes, k, (cudaStream_t)stream));
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_memset_async(int32_t device, void *dst, int32_t value, int64_t bytes,
                                                         void *stream) {
    static const char fn[] = "isthmus_cuda_memset_async";
    isthmus_cuda__clear_error();
    if (value < 0 || value > 255) return FAIL_ARG("%s: value = %d, must be a byte value 0..255", fn, (int)value);
    if (bytes < 0) return FAIL_ARG("%s: bytes = %lld is negative", fn, (long long)bytes);
    if (device < 0) return FAIL_ARG("%s: device = %d is negative", fn, (int)device);
    if (bytes == 0) return ISTHMUS_CUDA_OK;
    if (!dst) return FAIL_ARG("%s: dst is NULL (bytes = %lld)", fn, (long long)bytes);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaMemsetAsync", cudaMemsetAsync(dst, value, (size_t)bytes, (cudaStream_t)stream));
    return ISTHMUS_CUDA_OK;
}

/* ------------------------------------------------------------------ streams and events */

extern "C" isthmus_cuda_status isthmus_cuda_stream_create(int32_t device, void **stream) {
    static const char fn[] = "isthmus_cuda_stream_create";
    isthmus_cuda__clear_error();
    if (!stream) return FAIL_ARG("%s: stream is NULL", fn);
    *stream = nullptr;
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    cudaStream_t s;
    CUDA_TRY(fn, "cudaStreamCreateWithFlags(cudaStreamNonBlocking)", cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    *stream = (void *)s;
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_stream_destroy(int32_t device, void *stream) {
    static const char fn[] = "isthmus_cuda_stream_destroy";
    isthmus_cuda__clear_error();
    if (!stream) return FAIL_ARG("%s: stream is NULL (the default stream cannot be destroyed)", fn);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaStreamDestroy", cudaStreamDestroy((cudaStream_t)stream));
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_stream_synchronize(int32_t device, void *stream) {
    static const char fn[] = "isthmus_cuda_stream_synchronize";
    isthmus_cuda__clear_error();
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaStreamSynchronize", cudaStreamSynchronize((cudaStream_t)stream));
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_stream_query(int32_t device, void *stream, int32_t *done) {
    static const char fn[] = "isthmus_cuda_stream_query";
    isthmus_cuda__clear_error();
    if (!done) return FAIL_ARG("%s: done is NULL", fn);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    cudaError_t e = cudaStreamQuery((cudaStream_t)stream);
    if (e == cudaErrorNotReady) {
        (void)cudaGetLastError();
        *done = 0;
        return ISTHMUS_CUDA_OK;
    }
    if (e != cudaSuccess) return isthmus_cuda__cuda_fail(fn, "cudaStreamQuery", e);
    *done = 1;
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_stream_wait_event(int32_t device, void *stream, void *event) {
    static const char fn[] = "isthmus_cuda_stream_wait_event";
    isthmus_cuda__clear_error();
    if (!event) return FAIL_ARG("%s: event is NULL", fn);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaStreamWaitEvent", cudaStreamWaitEvent((cudaStream_t)stream, (cudaEvent_t)event, 0));
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_event_create(int32_t device, void **event) {
    static const char fn[] = "isthmus_cuda_event_create";
    isthmus_cuda__clear_error();
    if (!event) return FAIL_ARG("%s: event is NULL", fn);
    *event = nullptr;
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    cudaEvent_t ev;
    CUDA_TRY(fn, "cudaEventCreateWithFlags(cudaEventDefault)", cudaEventCreateWithFlags(&ev, cudaEventDefault));
    *event = (void *)ev;
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_event_destroy(int32_t device, void *event) {
    static const char fn[] = "isthmus_cuda_event_destroy";
    isthmus_cuda__clear_error();
    if (!event) return FAIL_ARG("%s: event is NULL", fn);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaEventDestroy", cudaEventDestroy((cudaEvent_t)event));
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_event_record(int32_t device, void *event, void *stream) {
    static const char fn[] = "isthmus_cuda_event_record";
    isthmus_cuda__clear_error();
    if (!event) return FAIL_ARG("%s: event is NULL", fn);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaEventRecord", cudaEventRecord((cudaEvent_t)event, (cudaStream_t)stream));
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_event_synchronize(int32_t device, void *event) {
    static const char fn[] = "isthmus_cuda_event_synchronize";
    isthmus_cuda__clear_error();
    if (!event) return FAIL_ARG("%s: event is NULL", fn);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaEventSynchronize", cudaEventSynchronize((cudaEvent_t)event));
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_event_elapsed_ms(int32_t device, void *start, void *end, float *ms) {
    static const char fn[] = "isthmus_cuda_event_elapsed_ms";
    isthmus_cuda__clear_error();
    if (!start) return FAIL_ARG("%s: start is NULL", fn);
    if (!end) return FAIL_ARG("%s: end is NULL", fn);
    if (!ms) return FAIL_ARG("%s: ms is NULL", fn);
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaEventElapsedTime", cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)end));
    return ISTHMUS_CUDA_OK;
}

extern "C" isthmus_cuda_status isthmus_cuda_device_synchronize(int32_t device) {
    static const char fn[] = "isthmus_cuda_device_synchronize";
    isthmus_cuda__clear_error();
    isthmus_cuda_status st = isthmus_cuda__use_device(fn, device);
    if (st) return st;
    CUDA_TRY(fn, "cudaDeviceSynchronize", cudaDeviceSynchronize());
    return ISTHMUS_CUDA_OK;
}
