/* CPU feature detection, the ISA cap, and the kernel registry built from kernels.def. */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define ISTHMUS_X86 1
#endif

/* ---------------------------------------------------------------- registry */

typedef struct kernel_entry {
    const char *name;
    const char *op_name;
    isthmus_op op;
    int32_t isa;
    const void *kernel;
} kernel_entry;

#define ISA_REF ISTHMUS_ISA_REF
#define ISA_AVX2 ISTHMUS_ISA_AVX2
#define ISA_AVX512 ISTHMUS_ISA_AVX512

#define OPNAME_QUANTIZE_S8 "quantize_s8"
#define OPNAME_GEMM_S8 "gemm_s8"
#define OPNAME_ATTENTION "attention"
#define OPNAME_GEMM_S8_S32 "gemm_s8_s32"
#define OPNAME_SPMM_BSR "spmm_bsr"
#define OPNAME_SPMM_24 "spmm_24"
#define OPNAME_RMSNORM "rmsnorm"
#define OPNAME_SWIGLU "swiglu"
#define OPNAME_SAMPLE "sample"

/* Every kernel object named in kernels.def, each a const struct of its op's kernel type. */
#define ISTHMUS_KERNEL(OP, name, ISA) extern const OP##_kernel name;
#include "../kernels.def"
#undef ISTHMUS_KERNEL

static const kernel_entry registry[] = {
#define ISTHMUS_KERNEL(OP, name, ISA) \
    {#name, OPNAME_##OP, ISTHMUS_OP_##OP, ISA_##ISA, (const void *)&name},
#include "../kernels.def"
#undef ISTHMUS_KERNEL
};

#define REGISTRY_COUNT ((int64_t)(sizeof registry / sizeof registry[0]))

/* ---------------------------------------------------------------- CPU features */

static int32_t supported_isa = ISTHMUS_ISA_REF;
static _Atomic int32_t isa_cap = ISTHMUS_ISA_AVX512;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

#ifdef ISTHMUS_X86
static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}
#endif

static int32_t detect_cpu(void) {
#ifdef ISTHMUS_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return ISTHMUS_ISA_REF;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return ISTHMUS_ISA_REF;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return ISTHMUS_ISA_REF; /* XMM and YMM state enabled by the OS */
    if (__get_cpuid_max(0, NULL) < 7) return ISTHMUS_ISA_REF;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1;
    int avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    int vnni = (c >> 11) & 1;
    if (!(avx2 && fma && f16c)) return ISTHMUS_ISA_REF;
    int zmm_os = (xcr0 & 0xe6) == 0xe6; /* opmask, ZMM_Hi256, Hi16_ZMM */
    if (avx512f && avx512bw && avx512vl && vnni && zmm_os) return ISTHMUS_ISA_AVX512;
    return ISTHMUS_ISA_AVX2;
#else
    return ISTHMUS_ISA_REF;
#endif
}

static int32_t parse_isa(const char *s) {
    if (s == NULL) return -1;
    if (strcmp(s, "ref") == 0) return ISTHMUS_ISA_REF;
    if (strcmp(s, "avx2") == 0) return ISTHMUS_ISA_AVX2;
    if (strcmp(s, "avx512") == 0) return ISTHMUS_ISA_AVX512;
    return -1;
}

static int built(int32_t isa) {
    for (int64_t i = 0; i < REGISTRY_COUNT; i++)
        if (registry[i].isa == isa) return 1;
    return 0;
}

static void detect(void) {
    int32_t cpu = detect_cpu();
#ifdef ISTHMUS_EMULATED_AVX512
    /* SIMDe test build: the AVX-512 kernels run emulated on any CPU. */
    cpu = ISTHMUS_ISA_AVX512;
#endif
    while (cpu > ISTHMUS_ISA_REF && !built(cpu)) cpu--;
    supported_isa = cpu;
    int32_t env = parse_isa(getenv("ISTHMUS_ISA"));
    if (env >= 0) atomic_store(&isa_cap, env);
}

int32_t isthmus_isa_supported(void) {
    pthread_once(&detect_once, detect);
    return supported_isa;
}

int32_t isthmus__isa_active(void) {
    int32_t s = isthmus_isa_supported();
    int32_t cap = atomic_load_explicit(&isa_cap, memory_order_relaxed);
    return cap < s ? cap : s;
}

int32_t isthmus_isa(void) { return isthmus__isa_active(); }

isthmus_status isthmus_set_isa_cap(int32_t isa) {
    if (isa < ISTHMUS_ISA_REF || isa > ISTHMUS_ISA_AVX512)
        return FAIL_ARG("isthmus_set_isa_cap: isa = %d, must be ISTHMUS_ISA_REF (0), _AVX2 (1) or "
                        "_AVX512 (2)", isa);
    isthmus_isa_supported();
    atomic_store(&isa_cap, isa);
    return ISTHMUS_OK;
}

int32_t isthmus_get_isa_cap(void) {
    isthmus_isa_supported();
    return atomic_load(&isa_cap);
}

const char *isthmus_isa_name(int32_t isa) {
    switch (isa) {
    case ISTHMUS_ISA_REF: return "ref";
    case ISTHMUS_ISA_AVX2: return "avx2";
    case ISTHMUS_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}

const void *isthmus__kernel(isthmus_op op, int32_t isa) {
    if (isa > isthmus_isa_supported()) return NULL;
    for (int64_t i = 0; i < REGISTRY_COUNT; i++)
        if (registry[i].op == op && registry[i].isa == isa) return registry[i].kernel;
    return NULL;
}

int64_t isthmus_kernel_count(void) { return REGISTRY_COUNT; }

isthmus_status isthmus_kernel_get_info(int64_t index, isthmus_kernel_info *out) {
    CHECK_PTR(out, "out");
    if (index < 0 || index >= REGISTRY_COUNT)
        return FAIL_ARG("isthmus_kernel_get_info: index = %lld, must be in [0, %lld)",
                        (long long)index, (long long)REGISTRY_COUNT);
    const kernel_entry *e = &registry[index];
    out->name = e->name;
    out->op = e->op_name;
    out->isa = e->isa;
    out->available = e->isa <= isthmus_isa_supported();
    return ISTHMUS_OK;
}
