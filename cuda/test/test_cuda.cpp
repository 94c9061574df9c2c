/* test_cuda: libisthmus_cuda against the CPU library (libisthmus) and plain int64 / double references.
 *
 *   test_cuda            host-side checks, then (with a GPU) every kernel on random and edge inputs
 *   test_cuda --small    the same host checks, and a few small device cases (for compute-sanitizer)
 *   test_cuda --seed N   the seed of the random inputs (printed either way)
 *
 * Without a GPU every host-side check still runs (versions, registry, the no-device answers, argument
 * validation of quantize and GEMM), then it prints "SKIPPED: <why>" and exits 77 (CTest SKIP_RETURN_CODE).
 *
 * Order of checks (common.h): arguments found wrong on the host are INVALID_ARGUMENT on any machine; then a
 * missing driver / device is NO_DEVICE; so validation tests use fake non-NULL pointers that are never read.
 *
 * Bounds (isthmus_cuda.h):
 *  - S32: exact, against an int64 reference (or the CPU's exact isthmus_gemm_s8_s32 for the large shapes);
 *  - F32 with one K group: bit-identical to isthmus_gemm_s8 (CPU) on the same int8 data and scales, the sign of a
 *    zero included (negative scales are allowed: fmaf(0, s < 0, +0.0f) is +0 where 0 * s is -0);
 *  - F32 with K groups: |y - exact| <= (groups + 3) * 2^-24 * (sum_g |acc_g sa_g sw_g| + |bias|), exact in double;
 *  - BF16 with one group: exactly the CPU's f32 result rounded to nearest even bf16; with K groups: the f32 bound
 *    plus half a bf16 ulp (2^-8 |y| relative);
 *  - quantize F32: q and scales bit-identical to isthmus_quantize_s8; BF16 input: the same on the widened values.
 */
#include <cuda_runtime.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <string>
#include <vector>

#include "isthmus.h"
#include "isthmus_cuda.h"

static int failures = 0, checks = 0;
static int mma_built = 0, wgmma_built = 0; /* from the registry */

#define CHECK(cond, ...)                                                                                       \
    do {                                                                                                       \
        checks++;                                                                                              \
        if (!(cond)) {                                                                                         \
            failures++;                                                                                        \
            if (failures <= 60) {                                                                              \
                printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                         \
                printf(__VA_ARGS__);                                                                           \
                printf("\n");                                                                                  \
            }                                                                                                  \
        }                                                                                                      \
    } while (0)

/* a call returns `want` and its message contains `needle` */
static void expect(isthmus_cuda_status got, isthmus_cuda_status want, const char *needle, const char *what) {
    const char *msg = isthmus_cuda_last_error();
    CHECK(got == want, "%s: status %d, want %d (%s)", what, (int)got, (int)want, msg);
    CHECK(msg != nullptr && (want == ISTHMUS_CUDA_OK || msg[0] != '\0'), "%s: empty message", what);
    if (needle) CHECK(strstr(msg, needle) != nullptr, "%s: message \"%s\" does not name \"%s\"", what, msg, needle);
}

static uint64_t rng_state;
static uint64_t rnd() {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int8_t rnd_s8() { return (int8_t)((int)(rnd() % 255) - 127); }
static float rnd_f(float lo, float hi) { return lo + (hi - lo) * (float)((rnd() >> 11) * 0x1.0p-53); }

/* ------------------------------------------------------------------ host-side checks */

static void host_versions_and_registry() {
    CHECK(isthmus_cuda_abi_version() == ISTHMUS_CUDA_ABI_VERSION, "abi %d", isthmus_cuda_abi_version());
    CHECK(strcmp(isthmus_cuda_version(), isthmus_version()) == 0, "version %s vs CPU %s", isthmus_cuda_version(),
          isthmus_version());
    int32_t rt = -1, drv = -1;
    expect(isthmus_cuda_versions(&rt, &drv), ISTHMUS_CUDA_OK, nullptr, "versions");
    CHECK(rt >= 12000, "runtime version %d", rt);
    CHECK(drv >= 0, "driver version %d", drv);
    printf("CUDA runtime %d, driver %d\n", rt, drv);
    expect(isthmus_cuda_versions(nullptr, &drv), ISTHMUS_CUDA_ERR_INVALID_ARGUMENT, "runtime_version", "versions NULL");
    expect(isthmus_cuda_versions(&rt, nullptr), ISTHMUS_CUDA_ERR_INVALID_ARGUMENT, "driver_version", "versions NULL");
    CHECK(strlen(isthmus_cuda_last_error()) > 0, "error text kept");
    expect(isthmus_cuda_versions(&rt, &drv), ISTHMUS_CUDA_OK, nullptr, "versions");
    CHECK(isthmus_cuda_last_error()[0] == '\0', "a successful call clears the error text: \"%s\"", isthmus_cuda_last_error());

    const int64_t n = isthmus_cuda_kernel_count();
    CHECK(n >= 12, "kernel count %lld", (long long)n);
    int quant = 0, skinny = 0, mma = 0, wgmma = 0;
    std::vector<std::string> names;
    for (int64_t i = 0; i < n; i++) {
        isthmus_cuda_kernel_info info;
        memset(&info, 0, sizeof info);
        expect(isthmus_cuda_kernel_get_info(i, &info), ISTHMUS_CUDA_OK, nullptr, "kernel_get_info");
        CHECK(info.name && info.op, "entry %lld", (long long)i);
        if (!info.name || !info.op) continue;
        CHECK(!strcmp(info.op, "quantize_s8") || !strcmp(info.op, "gemm_s8"), "op %s", info.op);
        CHECK(info.min_sm >= 80, "%s min_sm %d", info.name, info.min_sm);
        CHECK(info.max_m >= 0, "%s max_m %d", info.name, info.max_m);
        quant += !strcmp(info.op, "quantize_s8");
        skinny += strstr(info.name, "skinny") != nullptr;
        mma += strstr(info.name, "mma_sync") != nullptr;
        wgmma += strstr(info.name, "wgmma") != nullptr;
        for (auto &s : names) CHECK(s != info.name, "duplicate name %s", info.name);
        names.push_back(info.name);
    }
    CHECK(quant == 2, "quantize variants %d", quant);
    mma_built = mma > 0, wgmma_built = wgmma > 0;
    CHECK(skinny == 10, "skinny variants %d", skinny);
    printf("registry: %lld variants (quantize %d, skinny %d, mma_sync %d, wgmma %d)\n", (long long)n, quant, skinny, mma,
           wgmma);
    isthmus_cuda_kernel_info info;
    expect(isthmus_cuda_kernel_get_info(-1, &info), ISTHMUS_CUDA_ERR_INVALID_ARGUMENT, "index", "get_info -1");
    expect(isthmus_cuda_kernel_get_info(n, &info), ISTHMUS_CUDA_ERR_INVALID_ARGUMENT, "index", "get_info count");
    expect(isthmus_cuda_kernel_get_info(0, nullptr), ISTHMUS_CUDA_ERR_INVALID_ARGUMENT, "out", "get_info NULL");
}

/* fake device pointers: never dereferenced, since every case below fails before touching the device */
static int8_t *const FA = (int8_t *)(uintptr_t)0x10000;
static int8_t *const FW = (int8_t *)(uintptr_t)0x20000;
static float *const FS = (float *)(uintptr_t)0x30000;
static void *const FY = (void *)(uintptr_t)0x40000;

static isthmus_cuda_gemm_s8_args gemm_args_ok() {
    isthmus_cuda_gemm_s8_args a;
    memset(&a, 0, sizeof a);
    a.device = 0;
    a.m = 4, a.n = 8, a.k = 64;
    a.a = FA, a.lda = 64, a.a_granularity = ISTHMUS_CUDA_SCALE_PER_ROW, a.a_scales = FS;
    a.w = FW, a.ldw = 64, a.w_granularity = ISTHMUS_CUDA_SCALE_PER_ROW, a.w_scales = FS;
    a.group = 0, a.bias = nullptr;
    a.y = FY, a.y_dtype = ISTHMUS_CUDA_F32, a.ldy = 8;
    a.kernel = ISTHMUS_CUDA_GEMM_AUTO;
    return a;
}

static isthmus_cuda_quantize_args quant_args_ok() {
    isthmus_cuda_quantize_args q;
    memset(&q, 0, sizeof q);
    q.device = 0, q.rows = 3, q.cols = 64;
    q.x = FS, q.x_dtype = ISTHMUS_CUDA_F32, q.ldx = 64;
    q.granularity = ISTHMUS_CUDA_SCALE_PER_ROW, q.group = 0;
    q.q = FA, q.ldq = 64, q.scales = FS;
    return q;
}

static void host_validation() {
    const int E = ISTHMUS_CUDA_ERR_INVALID_ARGUMENT;
    struct gcase {
        const char *needle;
        void (*mut)(isthmus_cuda_gemm_s8_args &);
        int status;
    };
    static const gcase gcases[] = {
        {"m = 0", [](isthmus_cuda_gemm_s8_args &a) { a.m = 0; }, E},
        {"n = -1", [](isthmus_cuda_gemm_s8_args &a) { a.n = -1; }, E},
        {"k = 0", [](isthmus_cuda_gemm_s8_args &a) { a.k = 0; }, E},
        {"ISTHMUS_CUDA_GEMM_MAX_K", [](isthmus_cuda_gemm_s8_args &a) { a.k = a.lda = a.ldw = ISTHMUS_CUDA_GEMM_MAX_K + 1; }, E},
        {"a is NULL", [](isthmus_cuda_gemm_s8_args &a) { a.a = nullptr; }, E},
        {"lda = 63", [](isthmus_cuda_gemm_s8_args &a) { a.lda = 63; }, E},
        {"too large", [](isthmus_cuda_gemm_s8_args &a) { a.m = (int64_t)1 << 40; a.lda = (int64_t)1 << 20; }, E},
        {"w is NULL", [](isthmus_cuda_gemm_s8_args &a) { a.w = nullptr; }, E},
        {"ldw = 10", [](isthmus_cuda_gemm_s8_args &a) { a.ldw = 10; }, E},
        {"y is NULL", [](isthmus_cuda_gemm_s8_args &a) { a.y = nullptr; }, E},
        {"y_dtype = 2", [](isthmus_cuda_gemm_s8_args &a) { a.y_dtype = ISTHMUS_CUDA_S8; }, E},
        {"ldy = 7", [](isthmus_cuda_gemm_s8_args &a) { a.ldy = 7; }, E},
        {"a_granularity = 3", [](isthmus_cuda_gemm_s8_args &a) { a.a_granularity = 3; }, E},
        {"w_granularity = -1", [](isthmus_cuda_gemm_s8_args &a) { a.w_granularity = -1; }, E},
        {"group = 48", [](isthmus_cuda_gemm_s8_args &a) { a.w_granularity = ISTHMUS_CUDA_SCALE_PER_GROUP; a.group = 48; }, E},
        {"group = 0", [](isthmus_cuda_gemm_s8_args &a) { a.a_granularity = ISTHMUS_CUDA_SCALE_PER_GROUP; a.group = 0; }, E},
        {"group = 32", [](isthmus_cuda_gemm_s8_args &a) { a.group = 32; }, E},
        {"a_scales must be NULL", [](isthmus_cuda_gemm_s8_args &a) { a.y_dtype = ISTHMUS_CUDA_S32; a.w_scales = nullptr; }, E},
        {"w_scales must be NULL", [](isthmus_cuda_gemm_s8_args &a) { a.y_dtype = ISTHMUS_CUDA_S32; a.a_scales = nullptr; }, E},
        {"bias must be NULL", [](isthmus_cuda_gemm_s8_args &a) {
             a.y_dtype = ISTHMUS_CUDA_S32; a.a_scales = a.w_scales = nullptr; a.bias = FS; }, E},
        {"a_scales is NULL", [](isthmus_cuda_gemm_s8_args &a) { a.a_scales = nullptr; }, E},
        {"w_scales is NULL", [](isthmus_cuda_gemm_s8_args &a) { a.y_dtype = ISTHMUS_CUDA_BF16; a.w_scales = nullptr; }, E},
        {"kernel = 4", [](isthmus_cuda_gemm_s8_args &a) { a.kernel = 4; }, E},
        {"workspace_size = -8", [](isthmus_cuda_gemm_s8_args &a) { a.workspace_size = -8; }, E},
        {"workspace is NULL", [](isthmus_cuda_gemm_s8_args &a) { a.workspace_size = 64; }, E},
        {"device = -1", [](isthmus_cuda_gemm_s8_args &a) { a.device = -1; }, E},
    };
    for (const gcase &c : gcases) {
        isthmus_cuda_gemm_s8_args a = gemm_args_ok();
        c.mut(a);
        expect(isthmus_cuda_gemm_s8(&a), c.status, c.needle, c.needle);
    }
    expect(isthmus_cuda_gemm_s8(nullptr), E, "args is NULL", "gemm NULL");
    int64_t bytes = 0;
    const char *name = nullptr;
    {
        isthmus_cuda_gemm_s8_args a = gemm_args_ok();
        a.ldw = 3;
        expect(isthmus_cuda_gemm_s8_workspace_size(&a, &bytes), E, "ldw = 3", "workspace_size ldw");
        expect(isthmus_cuda_gemm_s8_select(&a, &name), E, "ldw = 3", "select ldw");
        a = gemm_args_ok();
        expect(isthmus_cuda_gemm_s8_workspace_size(&a, nullptr), E, "bytes is NULL", "workspace_size NULL");
        expect(isthmus_cuda_gemm_s8_select(&a, nullptr), E, "name is NULL", "select NULL");
    }

    struct qcase {
        const char *needle;
        void (*mut)(isthmus_cuda_quantize_args &);
        int status;
    };
    static const qcase qcases[] = {
        {"rows = 0", [](isthmus_cuda_quantize_args &q) { q.rows = 0; }, E},
        {"cols = -3", [](isthmus_cuda_quantize_args &q) { q.cols = -3; }, E},
        {"x is NULL", [](isthmus_cuda_quantize_args &q) { q.x = nullptr; }, E},
        {"x_dtype = 2", [](isthmus_cuda_quantize_args &q) { q.x_dtype = ISTHMUS_CUDA_S8; }, E},
        {"ldx = 63", [](isthmus_cuda_quantize_args &q) { q.ldx = 63; }, E},
        {"PER_TENSOR", [](isthmus_cuda_quantize_args &q) { q.granularity = ISTHMUS_CUDA_SCALE_PER_TENSOR; },
         ISTHMUS_CUDA_ERR_UNSUPPORTED},
        {"granularity = 7", [](isthmus_cuda_quantize_args &q) { q.granularity = 7; }, E},
        {"group = 16", [](isthmus_cuda_quantize_args &q) { q.granularity = ISTHMUS_CUDA_SCALE_PER_GROUP; q.group = 16; }, E},
        {"q is NULL", [](isthmus_cuda_quantize_args &q) { q.q = nullptr; }, E},
        {"ldq = 1", [](isthmus_cuda_quantize_args &q) { q.ldq = 1; }, E},
        {"scales is NULL", [](isthmus_cuda_quantize_args &q) { q.scales = nullptr; }, E},
        {"too large", [](isthmus_cuda_quantize_args &q) { q.rows = (int64_t)1 << 40; q.ldx = (int64_t)1 << 20; }, E},
        {"device = -2", [](isthmus_cuda_quantize_args &q) { q.device = -2; }, E},
    };
    for (const qcase &c : qcases) {
        isthmus_cuda_quantize_args q = quant_args_ok();
        c.mut(q);
        expect(isthmus_cuda_quantize_s8(&q), c.status, c.needle, c.needle);
    }
    expect(isthmus_cuda_quantize_s8(nullptr), E, "args is NULL", "quantize NULL");

    /* memory, copies, streams, events: argument errors */
    void *p = (void *)1;
    expect(isthmus_cuda_malloc(0, 0, &p), E, "bytes = 0", "malloc 0");
    CHECK(p == nullptr, "malloc failure leaves *ptr NULL");
    expect(isthmus_cuda_malloc(0, 16, nullptr), E, "ptr is NULL", "malloc NULL");
    expect(isthmus_cuda_malloc(-1, 16, &p), E, "device = -1", "malloc device -1");
    expect(isthmus_cuda_free(0, nullptr), ISTHMUS_CUDA_OK, nullptr, "free NULL");
    expect(isthmus_cuda_host_alloc(-5, &p), E, "bytes = -5", "host_alloc");
    expect(isthmus_cuda_host_free(nullptr), ISTHMUS_CUDA_OK, nullptr, "host_free NULL");
    char buf[64];
    expect(isthmus_cuda_memcpy_async(0, buf, buf + 32, 16, 9, nullptr), E, "kind = 9", "memcpy kind");
    expect(isthmus_cuda_memcpy_async(0, buf, buf + 32, -1, ISTHMUS_CUDA_COPY_D2D, nullptr), E, "bytes = -1", "memcpy neg");
    expect(isthmus_cuda_memcpy_async(0, buf, buf + 8, 16, ISTHMUS_CUDA_COPY_D2D, nullptr), E, "overlap", "memcpy overlap");
    expect(isthmus_cuda_memcpy_async(0, nullptr, buf, 16, ISTHMUS_CUDA_COPY_H2D, nullptr), E, "dst is NULL", "memcpy dst");
    expect(isthmus_cuda_memcpy_async(0, nullptr, nullptr, 0, ISTHMUS_CUDA_COPY_H2D, nullptr), ISTHMUS_CUDA_OK, nullptr,
           "memcpy 0 bytes is a no-op");
    expect(isthmus_cuda_memset_async(0, buf, 256, 16, nullptr), E, "value = 256", "memset value");
    expect(isthmus_cuda_memset_async(0, buf, 1, -2, nullptr), E, "bytes = -2", "memset neg");
    expect(isthmus_cuda_memset_async(0, nullptr, 1, 0, nullptr), ISTHMUS_CUDA_OK, nullptr, "memset 0 bytes");
    expect(isthmus_cuda_stream_create(0, nullptr), E, "stream is NULL", "stream_create NULL");
    expect(isthmus_cuda_stream_destroy(0, nullptr), E, "stream is NULL", "stream_destroy NULL");
    int32_t done;
    expect(isthmus_cuda_stream_query(0, nullptr, nullptr), E, "done is NULL", "stream_query NULL");
    expect(isthmus_cuda_stream_wait_event(0, nullptr, nullptr), E, "event is NULL", "wait_event NULL");
    expect(isthmus_cuda_event_create(0, nullptr), E, "event is NULL", "event_create NULL");
    expect(isthmus_cuda_event_record(0, nullptr, nullptr), E, "event is NULL", "event_record NULL");
    float ms;
    expect(isthmus_cuda_event_elapsed_ms(0, FY, FY, nullptr), E, "ms is NULL", "elapsed NULL");
    expect(isthmus_cuda_device_get_props(0, nullptr), E, "out is NULL", "props NULL");
    int64_t f, t;
    expect(isthmus_cuda_mem_info(0, nullptr, &t), E, "free_bytes", "mem_info NULL");
    expect(isthmus_cuda_device_count(nullptr), E, "count is NULL", "device_count NULL");
    (void)done;
    (void)ms;
    (void)f;
}

/* With no device: every call that needs one says NO_DEVICE, with the reason, and never crashes. */
static void host_no_device(const std::string &why) {
    const int N = ISTHMUS_CUDA_ERR_NO_DEVICE;
    const char *w = why.c_str();
    void *p = nullptr;
    isthmus_cuda_device_props props;
    int64_t f, t;
    int32_t done;
    float ms;
    expect(isthmus_cuda_device_get_props(0, &props), N, w, "props");
    expect(isthmus_cuda_mem_info(0, &f, &t), N, w, "mem_info");
    expect(isthmus_cuda_malloc(0, 256, &p), N, w, "malloc");
    expect(isthmus_cuda_free(0, FY), N, w, "free");
    expect(isthmus_cuda_host_alloc(256, &p), N, w, "host_alloc");
    expect(isthmus_cuda_memcpy_async(0, FY, FS, 16, ISTHMUS_CUDA_COPY_D2D, nullptr), N, w, "memcpy");
    expect(isthmus_cuda_memset_async(0, FY, 0, 16, nullptr), N, w, "memset");
    expect(isthmus_cuda_stream_create(0, &p), N, w, "stream_create");
    expect(isthmus_cuda_stream_destroy(0, FY), N, w, "stream_destroy");
    expect(isthmus_cuda_stream_synchronize(0, nullptr), N, w, "stream_synchronize");
    expect(isthmus_cuda_stream_query(0, nullptr, &done), N, w, "stream_query");
    expect(isthmus_cuda_stream_wait_event(0, nullptr, FY), N, w, "stream_wait_event");
    expect(isthmus_cuda_event_create(0, &p), N, w, "event_create");
    expect(isthmus_cuda_event_destroy(0, FY), N, w, "event_destroy");
    expect(isthmus_cuda_event_record(0, FY, nullptr), N, w, "event_record");
    expect(isthmus_cuda_event_synchronize(0, FY), N, w, "event_synchronize");
    expect(isthmus_cuda_event_elapsed_ms(0, FY, FY, &ms), N, w, "event_elapsed_ms");
    expect(isthmus_cuda_device_synchronize(0), N, w, "device_synchronize");
    expect(isthmus_cuda_device_synchronize(3), N, w, "device_synchronize(3)");
    isthmus_cuda_quantize_args q = quant_args_ok();
    expect(isthmus_cuda_quantize_s8(&q), N, w, "quantize");
    isthmus_cuda_gemm_s8_args a = gemm_args_ok();
    expect(isthmus_cuda_gemm_s8(&a), N, w, "gemm");
    int64_t bytes;
    const char *name;
    expect(isthmus_cuda_gemm_s8_workspace_size(&a, &bytes), N, w, "workspace_size");
    expect(isthmus_cuda_gemm_s8_select(&a, &name), N, w, "select");
}

/* ------------------------------------------------------------------ device checks */

struct dev_buf {
    void *p = nullptr;
    int64_t bytes = 0;
    explicit dev_buf(int64_t n) : bytes(n) {
        if (isthmus_cuda_malloc(0, n > 0 ? n : 1, &p) != ISTHMUS_CUDA_OK) {
            printf("FATAL: isthmus_cuda_malloc(%lld): %s\n", (long long)n, isthmus_cuda_last_error());
            exit(1);
        }
    }
    ~dev_buf() { isthmus_cuda_free(0, p); }
    dev_buf(const dev_buf &) = delete;
    dev_buf &operator=(const dev_buf &) = delete;
};

static void *g_stream = nullptr; /* the stream every device case runs on */

static void h2d(void *dst, const void *src, int64_t n) {
    CHECK(isthmus_cuda_memcpy_async(0, dst, src, n, ISTHMUS_CUDA_COPY_H2D, g_stream) == 0, "h2d: %s", isthmus_cuda_last_error());
}
static void d2h(void *dst, const void *src, int64_t n) {
    CHECK(isthmus_cuda_memcpy_async(0, dst, src, n, ISTHMUS_CUDA_COPY_D2H, g_stream) == 0, "d2h: %s", isthmus_cuda_last_error());
    CHECK(isthmus_cuda_stream_synchronize(0, g_stream) == 0, "sync: %s", isthmus_cuda_last_error());
}

static uint16_t f2bf(float f) { /* round to nearest even, as __float2bfloat16_rn (NaN kept NaN) */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
static float bf2f(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void device_quantize(bool small) {
    const int64_t shapes[][2] = {{1, 1}, {3, 31}, {11, 64}, {7, 257}, {64, 4096}, {2, 33}, {17, 1000}};
    const int nshapes = small ? 3 : 7;
    for (int si = 0; si < nshapes; si++)
        for (int gran : {ISTHMUS_CUDA_SCALE_PER_ROW, ISTHMUS_CUDA_SCALE_PER_GROUP})
            for (int64_t group : {32, 64, 128, 256})
                for (int dtype : {ISTHMUS_CUDA_F32, ISTHMUS_CUDA_BF16}) {
                    if (gran == ISTHMUS_CUDA_SCALE_PER_ROW && group != 32) continue;
                    const int64_t rows = shapes[si][0], cols = shapes[si][1], ldx = cols + 3, ldq = cols + 5;
                    const int64_t ng = gran == ISTHMUS_CUDA_SCALE_PER_GROUP ? (cols + group - 1) / group : 1;
                    std::vector<float> x(rows * ldx);
                    for (int64_t r = 0; r < rows; r++) {
                        const int kind = (int)(r % 11);
                        static const float ties[] = {0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 126.5f, -126.5f};
                        /* the largest finite value the device sees: FLT_MAX, or bf16's 0x7f7f (FLT_MAX rounds to inf) */
                        const float big = dtype == ISTHMUS_CUDA_F32 ? FLT_MAX : bf2f(0x7f7f);
                        for (int64_t c = 0; c < cols; c++) {
                            float v = rnd_f(-3.0f, 3.0f);
                            if (kind == 1) v = 0.0f;                        /* all-zero row            */
                            if (kind == 2) v *= 1e-42f;                     /* denormals               */
                            if (kind == 3) v *= 1.1e38f;                    /* near FLT_MAX            */
                            if (kind == 4 && c % 9 == 0) v = rnd_f(-0.5f, 0.5f) + (float)(int)v; /* halves */
                            if (kind == 7) v = c % 8 == 0 ? 127.0f : ties[c % 8]; /* scale exactly 1: exact ties of x / s */
                            if (kind == 8) v = c % 5 == 0 ? big : c % 5 == 1 ? -big : v; /* the FLT_MAX step of the scale */
                            if (kind == 9) v = (c % 3 == 0 ? 1.0f : c % 3 == 1 ? 3.0f : -2.0f) * FLT_TRUE_MIN; /* s = TRUE_MIN */
                            if (kind == 10) v = -0.0f;                      /* negative zeros          */
                            x[r * ldx + c] = v;
                        }
                        if (kind == 5) x[r * ldx + (cols - 1)] = NAN;       /* one NaN: that row/group */
                        if (kind == 6) x[r * ldx + cols / 2] = -INFINITY;
                    }
                    if (dtype == ISTHMUS_CUDA_BF16)
                        for (auto &v : x) v = bf2f(f2bf(v)); /* the values the device will see, widened */
                    /* expected: the CPU on rows it accepts, NaN scale and q = 0 for non-finite rows/groups */
                    std::vector<int8_t> qe(rows * cols, 0);
                    std::vector<float> se(rows * ng, 0.0f);
                    for (int64_t r = 0; r < rows; r++)
                        for (int64_t g = 0; g < ng; g++) {
                            const int64_t c0 = g * (ng > 1 ? group : cols);
                            const int64_t n = ng > 1 ? std::min(group, cols - c0) : cols;
                            bool bad = false;
                            for (int64_t c = c0; c < c0 + n; c++) bad |= !std::isfinite(x[r * ldx + c]);
                            if (bad) {
                                se[r * ng + g] = NAN;
                                continue;
                            }
                            isthmus_quantize_args qa;
                            memset(&qa, 0, sizeof qa);
                            qa.rows = 1, qa.cols = n, qa.x = &x[r * ldx + c0], qa.ldx = n;
                            qa.granularity = ISTHMUS_SCALE_PER_ROW;
                            qa.q = &qe[r * cols + c0], qa.ldq = n, qa.scales = &se[r * ng + g];
                            CHECK(isthmus_quantize_s8(&qa) == 0, "cpu quantize: %s", isthmus_last_error());
                        }
                    const int esz = dtype == ISTHMUS_CUDA_F32 ? 4 : 2;
                    const int64_t xspan = (rows - 1) * ldx + cols; /* exactly what x spans */
                    dev_buf dx(xspan * esz), dq(rows * ldq), ds(rows * ng * 4);
                    if (dtype == ISTHMUS_CUDA_F32) h2d(dx.p, x.data(), xspan * 4);
                    else {
                        std::vector<uint16_t> xb(x.size());
                        for (size_t i = 0; i < x.size(); i++) xb[i] = f2bf(x[i]);
                        h2d(dx.p, xb.data(), xspan * 2);
                    }
                    CHECK(isthmus_cuda_memset_async(0, dq.p, 0x55, rows * ldq, g_stream) == 0, "memset");
                    isthmus_cuda_quantize_args qa;
                    memset(&qa, 0, sizeof qa);
                    qa.device = 0, qa.rows = rows, qa.cols = cols, qa.x = dx.p, qa.x_dtype = dtype, qa.ldx = ldx;
                    qa.granularity = gran, qa.group = gran == ISTHMUS_CUDA_SCALE_PER_GROUP ? group : 0;
                    qa.q = (int8_t *)dq.p, qa.ldq = ldq, qa.scales = (float *)ds.p, qa.stream = g_stream;
                    expect(isthmus_cuda_quantize_s8(&qa), ISTHMUS_CUDA_OK, nullptr, "quantize");
                    std::vector<int8_t> qg(rows * ldq);
                    std::vector<float> sg(rows * ng);
                    d2h(qg.data(), dq.p, rows * ldq);
                    d2h(sg.data(), ds.p, rows * ng * 4);
                    int bad = 0;
                    for (int64_t r = 0; r < rows; r++) {
                        for (int64_t c = 0; c < cols; c++) bad += qg[r * ldq + c] != qe[r * cols + c];
                        for (int64_t c = cols; c < ldq; c++) bad += qg[r * ldq + c] != 0x55; /* untouched */
                        for (int64_t g = 0; g < ng; g++) {
                            float e = se[r * ng + g], v = sg[r * ng + g];
                            bad += std::isnan(e) ? !std::isnan(v) : bits(e) != bits(v);
                        }
                    }
                    CHECK(bad == 0, "quantize rows %lld cols %lld gran %d group %lld dtype %d: %d mismatches", (long long)rows,
                          (long long)cols, gran, (long long)group, dtype, bad);
                }
}

struct gemm_case {
    int64_t m, n, k;
    int64_t lda, ldw, ldy;
    int a_off, w_off; /* byte offsets of a and w from an aligned address (0: aligned) */
    int32_t y_dtype;
    int32_t a_gran, w_gran;
    int64_t group;
    bool bias;
};

static const char *fam_name(int f) {
    return f == 0 ? "AUTO" : f == 1 ? "MMA_SYNC" : f == 2 ? "WGMMA" : "SKINNY";
}

static int run_gemm_case(const gemm_case &c, int sm) {
    const int64_t M = c.m, N = c.n, K = c.k;
    std::vector<int8_t> A(M * c.lda), W(N * c.ldw);
    for (auto &v : A) v = rnd_s8();
    for (auto &v : W) v = rnd_s8();
    if (rnd() % 4 == 0) A[0] = -128; /* activations may hold -128 (the header allows it) */
    const bool grouped = c.a_gran == ISTHMUS_CUDA_SCALE_PER_GROUP || c.w_gran == ISTHMUS_CUDA_SCALE_PER_GROUP;
    const int64_t G = grouped ? (K + c.group - 1) / c.group : 1, glen = grouped ? c.group : K;
    auto nsc = [&](int gran, int64_t rows) { return gran == 0 ? 1 : gran == 1 ? rows : rows * G; };
    std::vector<float> sa(nsc(c.a_gran, M)), sw(nsc(c.w_gran, N)), bias(N);
    for (auto &v : sa) v = rnd_f(0.001f, 0.02f);
    for (auto &v : sw) v = rnd_f(0.001f, 0.02f);
    for (auto &v : bias) v = rnd_f(-2.0f, 2.0f);
    if (rnd() % 4 == 0) { /* negative scales are not refused: with acc = 0 and no bias the CPU's fmaf(0, s, +0) is +0 */
        for (auto &v : sa) v = rnd() % 2 ? -v : v;
        for (auto &v : sw) v = rnd() % 2 ? -v : v;
    }
    const int esz = c.y_dtype == ISTHMUS_CUDA_BF16 ? 2 : 4;
    const int64_t ylen = (M + 2) * c.ldy; /* two guard rows after the output */
    /* exactly the bytes the shapes span (the last row ends at K), so compute-sanitizer sees any over-read */
    const int64_t abytes = (M - 1) * c.lda + K, wbytes = (N - 1) * c.ldw + K;
    dev_buf dA(c.a_off + abytes), dW(c.w_off + wbytes), dSa(sa.size() * 4), dSw(sw.size() * 4), dB(N * 4), dY(ylen * esz);
    int8_t *a = (int8_t *)dA.p + c.a_off, *w = (int8_t *)dW.p + c.w_off;
    h2d(a, A.data(), abytes);
    h2d(w, W.data(), wbytes);
    h2d(dSa.p, sa.data(), sa.size() * 4);
    h2d(dSw.p, sw.data(), sw.size() * 4);
    h2d(dB.p, bias.data(), N * 4);

    /* references */
    std::vector<int32_t> acc32; /* [M, N] over all of K, exact */
    std::vector<float> yref;    /* one-group F32: the CPU library's isthmus_gemm_s8 */
    std::vector<double> yexact, ybound;
    acc32.assign(M * N, 0);
    if (M * N * K <= ((int64_t)1 << 26) || grouped) {
        yexact.assign(M * N, 0.0), ybound.assign(M * N, 0.0);
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                int64_t tot = 0;
                double ex = 0, mag = 0;
                for (int64_t g = 0; g < G; g++) {
                    int64_t s = 0;
                    for (int64_t k = g * glen; k < std::min(K, (g + 1) * glen); k++)
                        s += (int64_t)A[m * c.lda + k] * W[n * c.ldw + k];
                    tot += s;
                    if (grouped) {
                        double t = (double)s * sa[c.a_gran == 0 ? 0 : c.a_gran == 1 ? m : m * G + g] *
                                   sw[c.w_gran == 0 ? 0 : c.w_gran == 1 ? n : n * G + g];
                        ex += t, mag += fabs(t);
                    }
                }
                acc32[m * N + n] = (int32_t)tot;
                if (c.bias) ex += bias[n], mag += fabs(bias[n]);
                yexact[m * N + n] = ex;
                ybound[m * N + n] = (double)(G + 3) * 0x1p-24 * mag;
            }
    } else { /* large: the CPU's exact int32 GEMM */
        isthmus_gemm_pack_args pk;
        memset(&pk, 0, sizeof pk);
        pk.n = N, pk.k = K, pk.w = W.data(), pk.ldw = c.ldw, pk.w_granularity = ISTHMUS_SCALE_PER_ROW;
        int64_t bytes = 0;
        CHECK(isthmus_gemm_s8_packed_size(&pk, &bytes) == 0, "%s", isthmus_last_error());
        void *packed = aligned_alloc(64, (bytes + 63) / 64 * 64);
        pk.packed = packed, pk.packed_size = bytes;
        CHECK(isthmus_gemm_s8_pack(&pk) == 0, "%s", isthmus_last_error());
        isthmus_gemm_s8_s32_args s;
        memset(&s, 0, sizeof s);
        s.m = M, s.n = N, s.k = K, s.a = A.data(), s.lda = c.lda, s.w_packed = packed, s.c = acc32.data(), s.ldc = N;
        CHECK(isthmus_gemm_s8_s32(&s) == 0, "%s", isthmus_last_error());
        free(packed);
    }
    if (c.y_dtype != ISTHMUS_CUDA_S32 && !grouped) {
        isthmus_gemm_pack_args pk;
        memset(&pk, 0, sizeof pk);
        pk.n = N, pk.k = K, pk.w = W.data(), pk.ldw = c.ldw, pk.w_granularity = c.w_gran, pk.w_scales = sw.data();
        int64_t bytes = 0;
        CHECK(isthmus_gemm_s8_packed_size(&pk, &bytes) == 0, "%s", isthmus_last_error());
        void *packed = aligned_alloc(64, (bytes + 63) / 64 * 64);
        pk.packed = packed, pk.packed_size = bytes;
        CHECK(isthmus_gemm_s8_pack(&pk) == 0, "%s", isthmus_last_error());
        yref.assign(M * N, 0.0f);
        isthmus_gemm_s8_args g;
        memset(&g, 0, sizeof g);
        g.m = M, g.n = N, g.k = K, g.a = A.data(), g.lda = c.lda, g.a_granularity = c.a_gran, g.a_scales = sa.data();
        g.w_packed = packed, g.bias = c.bias ? bias.data() : nullptr, g.y = yref.data(), g.ldy = N;
        CHECK(isthmus_gemm_s8(&g) == 0, "cpu gemm: %s", isthmus_last_error());
        free(packed);
    }

    int ran = 0;
    for (int fam = 0; fam <= 3; fam++) {
        isthmus_cuda_gemm_s8_args g;
        memset(&g, 0, sizeof g);
        g.device = 0, g.m = M, g.n = N, g.k = K;
        g.a = a, g.lda = c.lda, g.w = w, g.ldw = c.ldw;
        g.a_granularity = c.a_gran, g.w_granularity = c.w_gran, g.group = grouped ? c.group : 0;
        const bool s32 = c.y_dtype == ISTHMUS_CUDA_S32;
        g.a_scales = s32 ? nullptr : (const float *)dSa.p;
        g.w_scales = s32 ? nullptr : (const float *)dSw.p;
        g.bias = (!s32 && c.bias) ? (const float *)dB.p : nullptr;
        g.y = dY.p, g.y_dtype = c.y_dtype, g.ldy = c.ldy, g.kernel = fam, g.stream = g_stream;
        int64_t ws = 0;
        isthmus_cuda_status st = isthmus_cuda_gemm_s8_workspace_size(&g, &ws);
        /* forced MMA / WGMMA: they must take every aligned layout (a, w 16-byte aligned, lda, ldw multiples of 16) on
         * a device they are built for, and may refuse the others */
        const bool aligned = c.a_off == 0 && c.w_off == 0 && c.lda % 16 == 0 && c.ldw % 16 == 0;
        const bool must = (fam == 1 && mma_built && sm >= 80) || (fam == 2 && wgmma_built && sm == 90);
        if (st == ISTHMUS_CUDA_ERR_UNSUPPORTED && (fam == 1 || fam == 2)) {
            CHECK(!(must && aligned), "%s refused an aligned layout: %s", fam_name(fam), isthmus_cuda_last_error());
            continue;
        }
        CHECK(st == 0, "%s workspace_size: %s", fam_name(fam), isthmus_cuda_last_error());
        if (st) continue;
        const char *name = nullptr;
        CHECK(isthmus_cuda_gemm_s8_select(&g, &name) == 0 && name, "select: %s", isthmus_cuda_last_error());
        if (fam == 3) CHECK(sm < 80 || (name && strstr(name, "skinny")), "forced SKINNY ran %s", name ? name : "?");
        dev_buf dws(ws);
        g.workspace = ws ? dws.p : nullptr, g.workspace_size = ws;
        if (ws > 0) { /* one byte short is refused */
            g.workspace_size = ws - 1;
            expect(isthmus_cuda_gemm_s8(&g), ISTHMUS_CUDA_ERR_INVALID_ARGUMENT, "workspace_size", "short workspace");
            g.workspace_size = ws;
        }
        CHECK(isthmus_cuda_memset_async(0, dY.p, 0x7f, ylen * esz, g_stream) == 0, "poison");
        st = isthmus_cuda_gemm_s8(&g);
        CHECK(st == 0, "%s gemm: %s", fam_name(fam), isthmus_cuda_last_error());
        if (st) continue;
        ran++;
        std::vector<uint8_t> Y(ylen * esz);
        d2h(Y.data(), dY.p, ylen * esz);
        CHECK(isthmus_cuda_stream_synchronize(0, g_stream) == 0, "sync after gemm: %s", isthmus_cuda_last_error());
        int bad = 0, poison = 0;
        double worst = 0;
        for (int64_t m = 0; m < M + 2; m++)
            for (int64_t j = 0; j < c.ldy; j++) {
                const uint8_t *e = &Y[(m * c.ldy + j) * esz];
                if (m >= M || j >= N) {
                    for (int b = 0; b < esz; b++) poison += e[b] != 0x7f;
                    continue;
                }
                const int64_t i = m * N + j;
                if (c.y_dtype == ISTHMUS_CUDA_S32) {
                    int32_t v;
                    memcpy(&v, e, 4);
                    bad += v != acc32[i];
                } else if (!grouped) {
                    if (c.y_dtype == ISTHMUS_CUDA_F32) {
                        float v;
                        memcpy(&v, e, 4);
                        bad += bits(v) != bits(yref[i]);
                    } else {
                        uint16_t v;
                        memcpy(&v, e, 2);
                        bad += v != f2bf(yref[i]);
                    }
                } else {
                    double v, tol = ybound[i];
                    if (c.y_dtype == ISTHMUS_CUDA_F32) {
                        float f;
                        memcpy(&f, e, 4);
                        v = f;
                    } else {
                        uint16_t b;
                        memcpy(&b, e, 2);
                        v = bf2f(b);
                        tol += fabs(yexact[i]) * 0x1p-8 + tol * 0x1p-8;
                    }
                    const double d = fabs(v - yexact[i]);
                    if (!(d <= tol)) bad++;
                    if (tol > 0 && d / tol > worst) worst = d / tol;
                }
            }
        CHECK(bad == 0 && poison == 0,
              "%s (%s) M=%lld N=%lld K=%lld lda=%lld ldw=%lld ldy=%lld off=%d/%d dtype=%d gran=%d/%d group=%lld bias=%d: "
              "%d wrong, %d poisoned bytes changed (worst/bound %.3g)",
              fam_name(fam), name ? name : "?", (long long)M, (long long)N, (long long)K, (long long)c.lda, (long long)c.ldw,
              (long long)c.ldy, c.a_off, c.w_off, c.y_dtype, c.a_gran, c.w_gran, (long long)c.group, (int)c.bias, bad, poison,
              worst);
    }
    return ran;
}

static void device_gemm(bool small, int sm) {
    const int64_t Ms[] = {1, 2, 15, 16, 17, 64, 129, 512};
    const int64_t Ns[] = {1, 7, 64, 129, 4096};
    const int64_t Ks[] = {1, 31, 32, 33, 127, 4096};
    int cases = 0, runs = 0;
    for (int64_t M : Ms)
        for (int64_t N : Ns)
            for (int64_t K : Ks) {
                const int64_t work = M * N * K;
                if (small && work > ((int64_t)1 << 18)) continue;
                if (!small && work > ((int64_t)1 << 31) && !(M == 512 && N == 4096 && K == 4096)) continue;
                const int variant = (int)(rnd() % 6);
                gemm_case c;
                c.m = M, c.n = N, c.k = K;
                const bool aligned = variant < 3;
                c.lda = aligned ? (K + 15) / 16 * 16 + (variant == 1 ? 16 : 0) : K + (variant == 4 ? 3 : 0);
                c.ldw = aligned ? (K + 15) / 16 * 16 + (variant == 2 ? 32 : 0) : K + (variant == 5 ? 1 : 0);
                c.ldy = N + (variant % 2 ? 3 : 0);
                c.a_off = variant == 3 ? 1 : 0, c.w_off = variant == 5 ? 4 : 0;
                c.y_dtype = (int32_t)(rnd() % 3 == 0 ? ISTHMUS_CUDA_S32 : rnd() % 2 ? ISTHMUS_CUDA_F32 : ISTHMUS_CUDA_BF16);
                c.a_gran = (int32_t)(rnd() % 2), c.w_gran = (int32_t)(rnd() % 2);
                c.group = 0;
                if (c.y_dtype != ISTHMUS_CUDA_S32 && K >= 32 && work <= ((int64_t)1 << 28) && rnd() % 3 == 0) {
                    const int64_t gs[] = {32, 64, 128, 256};
                    c.group = gs[rnd() % 4];
                    c.w_gran = ISTHMUS_CUDA_SCALE_PER_GROUP;
                    c.a_gran = rnd() % 2 ? ISTHMUS_CUDA_SCALE_PER_GROUP : ISTHMUS_CUDA_SCALE_PER_ROW;
                }
                c.bias = c.y_dtype != ISTHMUS_CUDA_S32 && rnd() % 2;
                cases++;
                runs += run_gemm_case(c, sm);
            }
    /* what the grid above misses: decode shapes whose A per split passes 2.5 KB x 16 rows (the skinny kernel's
     * 48 KB of dynamic shared memory; a static variable next to it once made such launches fail), and S32 output
     * with per-group granularities (no scales may be read: the grouped skinny kernel once read the NULL ones) */
    const int32_t R = ISTHMUS_CUDA_SCALE_PER_ROW, G = ISTHMUS_CUDA_SCALE_PER_GROUP;
    const gemm_case extra[] = {
        {16, 14336, 4096, 4096, 4096, 14336, 0, 0, ISTHMUS_CUDA_F32, R, R, 0, true},
        {9, 4096, 14336, 14336, 14336, 4096, 0, 0, ISTHMUS_CUDA_BF16, R, R, 0, false},
        {16, 4096, 14336, 14336 + 3, 14336, 4096, 0, 0, ISTHMUS_CUDA_F32, R, R, 0, false}, /* unaligned: scalar path */
        {5, 64, 1000, 1000, 1000, 64, 0, 0, ISTHMUS_CUDA_S32, G, G, 64, false},
        {129, 64, 1024, 1024, 1024, 64, 0, 0, ISTHMUS_CUDA_S32, R, G, 32, false},
    };
    for (const gemm_case &c : extra) {
        if (small && c.m * c.n * c.k > ((int64_t)1 << 24)) continue;
        cases++;
        runs += run_gemm_case(c, sm);
    }
    printf("gemm: %d shapes, %d kernel runs checked\n", cases, runs);
}

/* A stream made by the caller's own CUDA runtime (a second copy of cudart, as JCuda / PyTorch code would be) */
static void device_interop() {
    cudaStream_t s;
    cudaError_t e = cudaStreamCreate(&s);
    CHECK(e == cudaSuccess, "cudaStreamCreate: %s", cudaGetErrorString(e));
    if (e != cudaSuccess) return;
    void *saved = g_stream;
    g_stream = (void *)s;
    gemm_case c = {3, 100, 300, 304, 304, 100, 0, 0, ISTHMUS_CUDA_F32, ISTHMUS_CUDA_SCALE_PER_ROW,
                   ISTHMUS_CUDA_SCALE_PER_ROW, 0, true};
    CHECK(run_gemm_case(c, 80) >= 1, "interop gemm ran");
    int32_t done = 0;
    expect(isthmus_cuda_stream_query(0, (void *)s, &done), ISTHMUS_CUDA_OK, nullptr, "query caller stream");
    CHECK(done == 1, "stream done after synchronize");
    g_stream = saved;
    CHECK(cudaStreamSynchronize(s) == cudaSuccess, "cudaStreamSynchronize");
    cudaStreamDestroy(s);
}

static void device_basics() {
    isthmus_cuda_device_props p;
    expect(isthmus_cuda_device_get_props(0, &p), ISTHMUS_CUDA_OK, nullptr, "props");
    printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB, L2 %lld MiB, kernels_available %d\n", p.name, p.major, p.minor,
           p.multiprocessors, p.total_memory / 1073741824.0, (long long)(p.l2_bytes >> 20), p.kernels_available);
    int32_t count = 0;
    isthmus_cuda_device_count(&count);
    isthmus_cuda_device_props q;
    expect(isthmus_cuda_device_get_props(count, &q), ISTHMUS_CUDA_ERR_INVALID_ARGUMENT, "device", "props out of range");
    void *x = nullptr;
    expect(isthmus_cuda_malloc(count, 16, &x), ISTHMUS_CUDA_ERR_INVALID_ARGUMENT, "device", "malloc out of range");
    int64_t f = 0, t = 0;
    expect(isthmus_cuda_mem_info(0, &f, &t), ISTHMUS_CUDA_OK, nullptr, "mem_info");
    CHECK(f > 0 && t >= f, "mem_info %lld / %lld", (long long)f, (long long)t);
    expect(isthmus_cuda_malloc(0, (int64_t)1 << 50, &x), ISTHMUS_CUDA_ERR_OUT_OF_MEMORY, "cudaMalloc", "malloc 1 PiB");
    /* host alloc, copies round trip through pinned memory, events */
    void *h = nullptr, *d = nullptr, *ev0 = nullptr, *ev1 = nullptr;
    expect(isthmus_cuda_host_alloc(4096, &h), ISTHMUS_CUDA_OK, nullptr, "host_alloc");
    expect(isthmus_cuda_malloc(0, 4096, &d), ISTHMUS_CUDA_OK, nullptr, "malloc");
    CHECK(((uintptr_t)d & 255) == 0, "256-byte aligned");
    expect(isthmus_cuda_event_create(0, &ev0), ISTHMUS_CUDA_OK, nullptr, "event_create");
    expect(isthmus_cuda_event_create(0, &ev1), ISTHMUS_CUDA_OK, nullptr, "event_create");
    for (int i = 0; i < 4096; i++) ((uint8_t *)h)[i] = (uint8_t)(i * 7);
    expect(isthmus_cuda_event_record(0, ev0, g_stream), ISTHMUS_CUDA_OK, nullptr, "record");
    expect(isthmus_cuda_memcpy_async(0, d, h, 4096, ISTHMUS_CUDA_COPY_H2D, g_stream), ISTHMUS_CUDA_OK, nullptr, "h2d");
    expect(isthmus_cuda_memset_async(0, (char *)d + 100, 0xAB, 10, g_stream), ISTHMUS_CUDA_OK, nullptr, "memset");
    expect(isthmus_cuda_memcpy_async(0, h, d, 4096, ISTHMUS_CUDA_COPY_D2H, g_stream), ISTHMUS_CUDA_OK, nullptr, "d2h");
    expect(isthmus_cuda_event_record(0, ev1, g_stream), ISTHMUS_CUDA_OK, nullptr, "record");
    expect(isthmus_cuda_event_synchronize(0, ev1), ISTHMUS_CUDA_OK, nullptr, "event_synchronize");
    float ms = -1;
    expect(isthmus_cuda_event_elapsed_ms(0, ev0, ev1, &ms), ISTHMUS_CUDA_OK, nullptr, "elapsed");
    CHECK(ms >= 0, "elapsed %f", ms);
    int bad = 0;
    for (int i = 0; i < 4096; i++)
        bad += ((uint8_t *)h)[i] != ((i >= 100 && i < 110) ? 0xAB : (uint8_t)(i * 7));
    CHECK(bad == 0, "copy round trip: %d bytes wrong", bad);
    void *s2 = nullptr;
    expect(isthmus_cuda_stream_create(0, &s2), ISTHMUS_CUDA_OK, nullptr, "stream_create");
    expect(isthmus_cuda_stream_wait_event(0, s2, ev1), ISTHMUS_CUDA_OK, nullptr, "wait_event");
    expect(isthmus_cuda_stream_synchronize(0, s2), ISTHMUS_CUDA_OK, nullptr, "stream_synchronize");
    expect(isthmus_cuda_stream_destroy(0, s2), ISTHMUS_CUDA_OK, nullptr, "stream_destroy");
    isthmus_cuda_event_destroy(0, ev0);
    isthmus_cuda_event_destroy(0, ev1);
    isthmus_cuda_free(0, d);
    isthmus_cuda_host_free(h);
    expect(isthmus_cuda_device_synchronize(0), ISTHMUS_CUDA_OK, nullptr, "device_synchronize");
}

int main(int argc, char **argv) {
    bool small = false;
    uint64_t seed = 0x15740505ull;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--small")) small = true;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], nullptr, 0);
    }
    rng_state = seed ? seed : 1;
    printf("test_cuda: seed %llu%s\n", (unsigned long long)seed, small ? " (--small)" : "");

    host_versions_and_registry();
    host_validation();
    int32_t count = -1;
    expect(isthmus_cuda_device_count(&count), ISTHMUS_CUDA_OK, nullptr, "device_count");
    std::string why = isthmus_cuda_last_error();
    if (count == 0) {
        CHECK(!why.empty(), "device_count 0 without a reason");
        host_no_device(why);
        host_validation(); /* the same answers once the device state is known */
    }
    printf("host checks: %d, failures: %d\n", checks, failures);
    if (failures) {
        printf("FAILED (seed %llu)\n", (unsigned long long)seed);
        return 1;
    }
    if (count == 0) {
        printf("SKIPPED: device part: %s\n", why.c_str());
        return 77;
    }
    isthmus_cuda_device_props p;
    isthmus_cuda_device_get_props(0, &p);
    const int sm = p.major * 10 + p.minor;
    if (!p.kernels_available) {
        printf("SKIPPED: device part: device 0 (%s) is sm_%d, the kernels need sm_80 or newer\n", p.name, sm);
        return 77;
    }
    expect(isthmus_cuda_stream_create(0, &g_stream), ISTHMUS_CUDA_OK, nullptr, "stream_create");
    device_basics();
    device_quantize(small);
    device_gemm(small, sm);
    device_interop();
    isthmus_cuda_stream_destroy(0, g_stream);
    printf("checks: %d, failures: %d\n", checks, failures);
    if (failures) {
        printf("FAILED (seed %llu)\n", (unsigned long long)seed);
        return 1;
    }
    printf("OK\n");
    return 0;
}
