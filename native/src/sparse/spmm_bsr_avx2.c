/* spmm_bsr__avx2: the CSR/BSR kernel of bsr.h with 8-lane vectors (AVX2 + FMA). */
#include <immintrin.h>

#include "bsr.h"

#define BSR_VW 8
typedef __m256 VF;
typedef __m256i VI;
static inline VF vzero(void) { return _mm256_setzero_ps(); }
static inline VF vset1(float a) { return _mm256_set1_ps(a); }
static inline VF vload(const float *p) { return _mm256_loadu_ps(p); }
static inline void vstore(float *p, VF a) { _mm256_storeu_ps(p, a); }
static inline VF vadd(VF a, VF b) { return _mm256_add_ps(a, b); }
static inline VF vmul(VF a, VF b) { return _mm256_mul_ps(a, b); }
static inline VF vfmadd(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
static inline VF vload8(const float *p) { return _mm256_loadu_ps(p); }
static inline VF vlane(VF w, int i) { return _mm256_permutevar8x32_ps(w, _mm256_set1_epi32(i)); }
static inline VI vizero(void) { return _mm256_setzero_si256(); }
static inline VI viset1(int32_t a) { return _mm256_set1_epi32(a); }
static inline VI viload(const int32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline void vistore(int32_t *p, VI a) { _mm256_storeu_si256((__m256i *)p, a); }
static inline VI viadd(VI a, VI b) { return _mm256_add_epi32(a, b); }
static inline VI vmadd16(VI a, VI b) { return _mm256_madd_epi16(a, b); }
static inline VI vdpwssd(VI acc, VI a, VI b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
static inline VF vcvt(VI a) { return _mm256_cvtepi32_ps(a); }
static inline VI vidx16(const uint16_t *p) { return _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)); }
static inline VI vidx8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static inline VF vgather(const float *base, VI idx) { return _mm256_i32gather_ps(base, idx, 4); }
static inline VI vigather(const int32_t *base, VI idx) { return _mm256_i32gather_epi32((const int *)base, idx, 4); }
static inline VI vw8(const int8_t *p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static inline VI lanes_below(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
static inline VF vmaskf(VF a, int n) { return _mm256_and_ps(a, _mm256_castsi256_ps(lanes_below(n))); }
static inline VI vmaski(VI a, int n) { return _mm256_and_si256(a, lanes_below(n)); }
static inline float vhsum(VF a) {
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_shuffle_ps(b, b, 1));
    return _mm_cvtss_f32(b);
}
static inline int32_t vihsum(VI a) {
    __m128i b = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    b = _mm_add_epi32(b, _mm_shuffle_epi32(b, 0x4e));
    b = _mm_add_epi32(b, _mm_shuffle_epi32(b, 0xb1));
    return _mm_cvtsi128_si32(b);
}

#include "bsr.h"

static int64_t avx2_size(const isthmus_sparse_matrix *w) { return bsr_packed_size(w); }
static void avx2_pack(const isthmus_sparse_matrix *w, sparse_hdr *h) { bsr_pack(w, h, ISTHMUS_ISA_AVX2); }
static isthmus_status avx2_run(const spmm_problem *p) { return bsr_run_simd(p, "spmm_bsr__avx2"); }

const SPMM_kernel spmm_bsr__avx2 = {ISTHMUS_ISA_AVX2, avx2_size, avx2_pack, avx2_run, bsr_header_ok};
