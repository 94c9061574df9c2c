#include "harness.h"

uint64_t t_seed;
long t_checks, t_failures;

typedef struct ghdr { size_t bytes; size_t pad[7]; } ghdr; /* 64 bytes, keeps alignment */

void *galloc(size_t bytes) {
    uint8_t *raw = NULL;
    if (posix_memalign((void **)&raw, 64, sizeof(ghdr) + bytes + GUARD) != 0) abort();
    ((ghdr *)raw)->bytes = bytes;
    memset(raw + sizeof(ghdr), 0x5A, bytes);
    memset(raw + sizeof(ghdr) + bytes, GUARD_BYTE, GUARD);
    return raw + sizeof(ghdr);
}

int gcheck(const void *p) {
    const uint8_t *raw = (const uint8_t *)p - sizeof(ghdr);
    size_t bytes = ((const ghdr *)raw)->bytes;
    for (size_t i = 0; i < GUARD; i++)
        if (((const uint8_t *)p)[bytes + i] != GUARD_BYTE) return 0;
    return 1;
}

void gfree(void *p) {
    if (p) free((uint8_t *)p - sizeof(ghdr));
}

extern const test_case core_tests[], quant_tests[], gemm_tests[], attention_tests[], sparse_tests[],
    sparse24_tests[], prune_tests[], sparse_abi_tests[], nn_tests[], sample_tests[], verify_tests[],
    reliability_tests[], hygiene_tests[];

static const test_case *const suites[] = {core_tests, quant_tests, gemm_tests, attention_tests,
                                          sparse_tests, sparse24_tests, prune_tests, sparse_abi_tests,
                                          nn_tests, sample_tests, verify_tests, reliability_tests,
                                          hygiene_tests};

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    const char *env = getenv("ISTHMUS_TEST_SEED");
    uint64_t base = env ? strtoull(env, NULL, 10) : 20261128ull;
    int passed = 0, failed = 0;
    for (int32_t isa = ISTHMUS_ISA_AVX2; isa <= ISTHMUS_ISA_AVX512; isa++)
        if (isa > isthmus_isa_supported())
            printf("note: the %s kernels are NOT tested by this binary: this CPU (or build) lacks %s%s\n",
                   isthmus_isa_name(isa), isa == ISTHMUS_ISA_AVX2 ? "AVX2+FMA" : "AVX-512 F/BW/VL/VNNI",
                   isa == ISTHMUS_ISA_AVX512 ? "; the SIMDe build (simde_avx512_*) tests them emulated" : "");
    printf("isthmus native tests: library %s, best ISA %s, base seed %llu (set ISTHMUS_TEST_SEED to "
           "change)\n", isthmus_version(), isthmus_isa_name(isthmus_isa_supported()),
           (unsigned long long)base);
    for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++) {
        for (const test_case *t = suites[s]; t->fn != NULL; t++) {
            if (only && strcmp(only, t->group) != 0 && strcmp(only, t->name) != 0) continue;
            long before = t_failures;
            t_seed = base;
            t->fn();
            isthmus_set_isa_cap(ISTHMUS_ISA_AVX512);
            if (t_failures == before) {
                passed++;
                printf("  ok   %s.%s\n", t->group, t->name);
            } else {
                failed++;
                printf("  FAIL %s.%s (%ld failed checks)\n", t->group, t->name, t_failures - before);
            }
            fflush(stdout);
        }
    }
    printf("%ld checks\n", t_checks);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
