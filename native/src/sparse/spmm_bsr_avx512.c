/* spmm_bsr__avx512: the CSR/BSR kernel of bsr.h with 16-lane vectors (AVX-512 F/BW/VL; SIMDe-safe:
 * steps SIMDe 0.7.4 lacks come from core/simd.h). */
#include "../core/simd.h"
#include "bsr.h"

#define BSR_VW 16
typedef __m512 VF;
typedef __m512i VI;
static inline VF vzero(void) { return _mm512_setzero_ps(); }
static inline VF vset1(float a) { return _mm512_set1_ps(a); }
static inline VF vload(const float *p) { return _mm512_loadu_ps(p); }
static inline void vstore(float *p, VF a) { _mm512_storeu_ps(p, a); }
static inline VF vadd(VF a, VF b) { return _mm512_add_ps(a, b); }
static inline VF vmul(VF a, VF b) { return _mm512_mul_ps(a, b); }
static inline VF vfmadd(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }
static inline VF vload8(const float *p) { return _mm512_castps256_ps512(_mm256_loadu_ps(p)); } /* lanes 8.. unused */
static inline VF vlane(VF w, int i) { return _mm512_permutexvar_ps(_mm512_set1_epi32(i), w); }
static inline VI vizero(void) { return _mm512_setzero_si512(); }
static inline VI viset1(int32_t a) { return _mm512_set1_epi32(a); }
static inline VI viload(const int32_t *p) { return _mm512_loadu_si512((const void *)p); }
static inline void vistore(int32_t *p, VI a) { _mm512_storeu_si512((void *)p, a); }
static inline VI viadd(VI a, VI b) { return _mm512_add_epi32(a, b); }
static inline VI vmadd16(VI a, VI b) { return isthmus_mm512_madd_epi16(a, b); }
static inline VI vdpwssd(VI acc, VI a, VI b) { return _mm512_dpwssd_epi32(acc, a, b); }
static inline VF vcvt(VI a) { return isthmus_mm512_cvtepi32_ps(a); }
static inline VI vidx16(const uint16_t *p) { return isthmus_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)); }
static inline VI vidx8(const uint8_t *p) { return isthmus_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }
#define BSR_PERM32 1
static inline VF vperm32(VF lo, VI idx, VF hi) { return _mm512_permutex2var_ps(lo, idx, hi); }
static inline VI viperm32(VI lo, VI idx, VI hi) { return _mm512_permutex2var_epi32(lo, idx, hi); }
#define BSR_EXPAND 1
/* vexpandps from a register, into a register zeroed first: the compiler would fold the load into the
 * memory-source form (several times slower on Zen 4), and the zero-masking form {z} still waits for
 * the old value of its destination there (one chain through every expand of the loop: 2.2x slower,
 * measured); the merge form into a fresh zero idiom has no input but a and the mask. */
static inline VF vexpand(unsigned m, const float *p) {
#ifdef ISTHMUS_SIMDE
    return isthmus_mm512_maskz_expand_ps((__mmask16)m, _mm512_loadu_ps(p));
#else
    VF a = _mm512_loadu_ps(p), r;
    __asm__("vxorps %x0, %x0, %x0\n\tvexpandps %2, %0%{%1%}" : "=&v"(r) : "Yk"((__mmask16)m), "v"(a));
    return r;
#endif
}
/* 16 x values, lanes outside m zeroed (a zero-masking load: no dependency on a destination). */
static inline VF vxload(unsigned m, const float *p) { return _mm512_maskz_mov_ps((__mmask16)m, _mm512_loadu_ps(p)); }
#define BSR_PERM64W 1
static inline VI vwload(const int16_t *p) { return _mm512_loadu_si512((const void *)p); }
/* 32 indices / weights widened to int16 (the sign extension of an index leaves its low 6 bits) */
static inline VI vidx8w(const uint8_t *p) { return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p)); }
static inline VI vw8w(const int8_t *p) { return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p)); }
static inline VI vwmask(VI a, int n) { return _mm512_maskz_mov_epi16((__mmask32)(n >= 32 ? 0xffffffffu : (1u << n) - 1), a); }
static inline VI vwperm64(VI lo, VI idx, VI hi) { return _mm512_permutex2var_epi16(lo, idx, hi); }
static inline VF vsel32(VI idx, VF a, VF b) { return _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)), a, b); }
static inline VI visel32(VI idx, VI a, VI b) { return _mm512_mask_blend_epi32(_mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)), a, b); }
static inline VF vgather(const float *base, VI idx) { return isthmus_mm512_i32gather_ps(idx, base); }
static inline VI vigather(const int32_t *base, VI idx) { return isthmus_mm512_i32gather_epi32(idx, base); }
static inline VI vw8(const int8_t *p) { return isthmus_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)); }
static inline VF vmaskf(VF a, int n) { return _mm512_maskz_mov_ps((__mmask16)((1u << n) - 1), a); }
static inline VI vmaski(VI a, int n) { return _mm512_maskz_mov_epi32((__mmask16)((1u << n) - 1), a); }
static inline float vhsum(VF a) { return isthmus_mm512_hsum_ps(a); }
static inline int32_t vihsum(VI a) { return isthmus_mm512_hsum_epi32(a); }

#include "bsr.h"

static int64_t avx512_size(const isthmus_sparse_matrix *w) { return bsr_packed_size(w); }
static void avx512_pack(const isthmus_sparse_matrix *w, sparse_hdr *h) { bsr_pack(w, h, ISTHMUS_ISA_AVX512); }
static isthmus_status avx512_run(const spmm_problem *p) { return bsr_run_simd(p, "spmm_bsr__avx512"); }

const SPMM_kernel spmm_bsr__avx512 = {ISTHMUS_ISA_AVX512, avx512_size, avx512_pack, avx512_run, bsr_header_ok};
