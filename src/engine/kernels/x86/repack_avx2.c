/* repack_avx2.c: AVX2 kernels for Q8_0 and Q4_0 repacked for 8 rows (block_q8_0x8, block_q4_0x8,
 * cst_pack). Per block and 4-element step j, one vector holds elements
 * 4j..4j+3 of the 8 rows; the token's 4 activation bytes are broadcast and
 * the signed products summed with maddubs(|w|, sign(a, w)) + madd, so lane r
 * accumulates row r's exact int sum of the block. Then one convert and one
 * FMA per 8 outputs: acc = fma(isum, dw * da, acc), the x8 order of
 * cst_vec_dot_q8_0_q8_0_x8_ref bit for bit. Up to 4 tokens per call share
 * each weight vector (and its |w|).
 */
#include "../kernels_int.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) void gemm_q8_0x8(int n, const block_q8_0x8 *x, const void *const *vy,
                                                              const int nt, float *s, int64_t lds) {
    const int nb = n / QK8_0;
    const block_q8_0 *y[4];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) y[t] = vy[t];
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        __m256i is[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) is[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i aw = _mm256_sign_epi8(w, w);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                int32_t a4;
                memcpy(&a4, y[t][i].qs + 4 * j, 4);
                const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(_mm256_set1_epi32(a4), w));
                is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(p, ones));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x[i].d));
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(_cvtsh_ss(y[t][i].d)));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), d, acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(s + t * lds, acc[t]);
}

/* Q4_0 (block_q4_0x8): per block and 4-byte step j one vector holds bytes
 * 4j..4j+3 of the 8 rows: its low nibbles are elements 4j..4j+3, its high
 * nibbles elements 16+4j..16+4j+3, each minus 8; the same maddubs / madd
 * per half against the token's broadcast 4 activation bytes, so lane r is
 * row r's exact int sum of the block; then the x8 order's one FMA. */
static inline __attribute__((always_inline)) void gemm_q4_0x8(int n, const block_q4_0x8 *x, const void *const *vy,
                                                              const int nt, float *s, int64_t lds) {
    const int nb = n / QK4_0;
    const block_q8_0 *y[4];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) y[t] = vy[t];
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0xF), b8 = _mm256_set1_epi8(8);
    __m256 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        __m256i is[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) is[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i lo = _mm256_sub_epi8(_mm256_and_si256(q, m4), b8);
            const __m256i hi = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), b8);
            const __m256i alo = _mm256_sign_epi8(lo, lo), ahi = _mm256_sign_epi8(hi, hi);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                int32_t a0, a1;
                memcpy(&a0, y[t][i].qs + 4 * j, 4);
                memcpy(&a1, y[t][i].qs + QK4_0 / 2 + 4 * j, 4);
                /* |pair sums| <= 2 * 8 * 128 each, so the two halves add exactly in int16 */
                const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(alo, _mm256_sign_epi8(_mm256_set1_epi32(a0), lo)),
                                                   _mm256_maddubs_epi16(ahi, _mm256_sign_epi8(_mm256_set1_epi32(a1), hi)));
                is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(p, ones));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x[i].d));
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(_cvtsh_ss(y[t][i].d)));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), d, acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(s + t * lds, acc[t]);
}

void cst_gemm_q4_0x8_avx2(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds) {
    switch (nt) {
    case 1: gemm_q4_0x8(n, P, y, 1, s, lds); break;
    case 2: gemm_q4_0x8(n, P, y, 2, s, lds); break;
    case 3: gemm_q4_0x8(n, P, y, 3, s, lds); break;
    default: gemm_q4_0x8(n, P, y, 4, s, lds); break;
    }
}

void cst_gemm_q8_0x8_avx2(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds) {
    switch (nt) { /* one specialised body per token count */
    case 1: gemm_q8_0x8(n, P, y, 1, s, lds); break;
    case 2: gemm_q8_0x8(n, P, y, 2, s, lds); break;
    case 3: gemm_q8_0x8(n, P, y, 3, s, lds); break;
    default: gemm_q8_0x8(n, P, y, 4, s, lds); break;
    }
}
