/* The AVX-512 VNNI register-only loop of bench_shim.c (compiled with AVX-512 flags). */
#include <immintrin.h>

double ibench__vnni_loop(long iters);

double ibench__vnni_loop(long iters) {
    __m512i a = _mm512_set1_epi8(3);
    __m512i b0 = _mm512_set1_epi8(1), b1 = _mm512_set1_epi8(2), b2 = _mm512_set1_epi8(3), b3 = _mm512_set1_epi8(4);
    /* distinct starting values: chains with equal inputs would otherwise be merged by the compiler */
    __m512i c0 = _mm512_set1_epi32(0), c1 = _mm512_set1_epi32(1), c2 = _mm512_set1_epi32(2);
    __m512i c3 = _mm512_set1_epi32(3), c4 = _mm512_set1_epi32(4), c5 = _mm512_set1_epi32(5);
    __m512i c6 = _mm512_set1_epi32(6), c7 = _mm512_set1_epi32(7), c8 = _mm512_set1_epi32(8);
    __m512i c9 = _mm512_set1_epi32(9), c10 = _mm512_set1_epi32(10), c11 = _mm512_set1_epi32(11);
    for (long i = 0; i < iters; i++) {
        c0 = _mm512_dpbusd_epi32(c0, a, b0); c1 = _mm512_dpbusd_epi32(c1, a, b1);
        c2 = _mm512_dpbusd_epi32(c2, a, b2); c3 = _mm512_dpbusd_epi32(c3, a, b3);
        c4 = _mm512_dpbusd_epi32(c4, a, b0); c5 = _mm512_dpbusd_epi32(c5, a, b1);
        c6 = _mm512_dpbusd_epi32(c6, a, b2); c7 = _mm512_dpbusd_epi32(c7, a, b3);
        c8 = _mm512_dpbusd_epi32(c8, a, b0); c9 = _mm512_dpbusd_epi32(c9, a, b1);
        c10 = _mm512_dpbusd_epi32(c10, a, b2); c11 = _mm512_dpbusd_epi32(c11, a, b3);
        __asm__ volatile("" : "+v"(a), "+v"(b0), "+v"(b1), "+v"(b2), "+v"(b3));
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
    volatile int sink = _mm_cvtsi128_si32(_mm512_castsi512_si128(s));
    (void)sink;
    return (double)iters * 12 * 64;
}
