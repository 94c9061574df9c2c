/* Core ABI: versions, errors, threads, ISA cap, and the kernel registry. */
#include "harness.h"

static void abi_and_version(void) {
    CHECK(isthmus_abi_version() == ISTHMUS_ABI_VERSION, "abi %d", isthmus_abi_version());
    CHECK(isthmus_version() != NULL && strlen(isthmus_version()) >= 5, "version");
    CHECK(isthmus_last_error() != NULL, "last_error never NULL");
}

static void threads(void) {
    int32_t before = isthmus_get_num_threads();
    CHECK(before >= 1, "default threads %d", before);
    CHECK_OK(isthmus_set_num_threads(3));
    CHECK(isthmus_get_num_threads() == 3, "threads");
    CHECK_FAILS(isthmus_set_num_threads(0), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_set_num_threads(-5), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_set_num_threads(1 << 20), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(strstr(isthmus_last_error(), "num_threads") != NULL, "message names the argument: %s",
          isthmus_last_error());
    CHECK_OK(isthmus_set_num_threads(before));
}

static void isa_cap(void) {
    int32_t best = isthmus_isa_supported();
    for (int32_t cap = ISTHMUS_ISA_REF; cap <= ISTHMUS_ISA_AVX512; cap++) {
        CHECK_OK(isthmus_set_isa_cap(cap));
        int32_t want = cap < best ? cap : best;
        CHECK(isthmus_isa() == want, "cap %d -> isa %d, want %d", cap, isthmus_isa(), want);
        CHECK(isthmus_get_isa_cap() == cap, "get cap");
    }
    CHECK_FAILS(isthmus_set_isa_cap(3), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_set_isa_cap(-1), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK(strcmp(isthmus_isa_name(ISTHMUS_ISA_AVX2), "avx2") == 0, "name");
    CHECK(strcmp(isthmus_isa_name(42), "unknown") == 0, "unknown name");
}

static void registry(void) {
    int64_t n = isthmus_kernel_count();
    CHECK(n >= 9, "kernel count %lld", (long long)n);
    int per_op[3] = {0};
    for (int64_t i = 0; i < n; i++) {
        isthmus_kernel_info info;
        CHECK_OK(isthmus_kernel_get_info(i, &info));
        CHECK(info.name && info.op && strstr(info.name, "__") != NULL, "name %s", info.name);
        CHECK(strcmp(strstr(info.name, "__") + 2, isthmus_isa_name(info.isa)) == 0,
              "%s: suffix must name its isa %s", info.name, isthmus_isa_name(info.isa));
        CHECK(info.available == (info.isa <= isthmus_isa_supported()), "available");
        if (strcmp(info.op, "gemm_s8") == 0) per_op[0]++;
    }
    CHECK(per_op[0] == 3, "gemm_s8 has ref, avx2, avx512");
    isthmus_kernel_info info;
    CHECK_FAILS(isthmus_kernel_get_info(n, &info), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_kernel_get_info(-1, &info), ISTHMUS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(isthmus_kernel_get_info(0, NULL), ISTHMUS_ERR_INVALID_ARGUMENT);
}

/* the error text is per thread */
#include <pthread.h>
static void *fail_in_thread(void *arg) {
    (void)arg;
    isthmus_set_num_threads(0);
    return NULL;
}
static void errors_thread_local(void) {
    isthmus_set_isa_cap(9);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", isthmus_last_error());
    pthread_t t;
    pthread_create(&t, NULL, fail_in_thread, NULL);
    pthread_join(t, NULL);
    CHECK(strcmp(mine, isthmus_last_error()) == 0, "another thread's failure changed this thread's error");
}

const test_case core_tests[] = {
    {"core", "abi_and_version", abi_and_version},
    {"core", "threads", threads},
    {"core", "isa_cap", isa_cap},
    {"core", "registry", registry},
    {"core", "errors_thread_local", errors_thread_local},
    {NULL, NULL, NULL},
};
