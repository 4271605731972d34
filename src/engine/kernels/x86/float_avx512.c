/* float_avx512.c: AVX-512 paths for the float weight types: 4x4 (weight rows x
 * tokens) GEMM micro-kernels for F32, F16 (activations already rounded to
 * F16, as llama.cpp) and BF16, accumulating in F32, and the BF16 dot product.
 * BF16 uses vdpbf16ps where the CPU has AVX512_BF16 (functions compiled with
 * a target attribute, installed only after the CPUID check), else widens to
 * F32 and uses FMA. F32/F16 tiles reproduce tinyBLAS's (llamafile sgemm)
 * order bit for bit (16 lanes per output, _mm512_reduce_add_ps order); BF16
 * equals the ref dots up to float rounding.
 */
#include "../kernels_int.h"

#include <immintrin.h>

/* [sum a0, sum a1, sum a2, sum a3] */
static inline __m128 fold4_ps(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    const __m512d t0d = _mm512_castps_pd(t0), t1d = _mm512_castps_pd(t1);
    const __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(t0d, t1d)),
                                   _mm512_castpd_ps(_mm512_unpackhi_pd(t0d, t1d)));
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* [reduce_add(a0), .., reduce_add(a3)], each in _mm512_reduce_add_ps's order
 * (cst_reduce16_ref): 256-bit halves, 128-bit halves, (0+2) + (1+3) */
static inline __m128 reduce4_ps(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    const __m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xEE));
    const __m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xEE));
    /* x = [h0 | h1], y = [h2 | h3], h_r[k] = a_r[k] + a_r[k + 8] */
    const __m512 z = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xDD));
    /* z: 128-bit lane r holds q_r[k] = h_r[k] + h_r[k + 4] */
    const __m512 u = _mm512_add_ps(z, _mm512_permute_ps(z, 0x4E));           /* q0+q2, q1+q3 */
    const __m512 v = _mm512_add_ps(u, _mm512_permute_ps(u, 0xB1));           /* (q0+q2) + (q1+q3) */
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), v));
}

#define LOAD_F32(p, i) _mm512_loadu_ps((const float *)(p) + (i))
#define MLOAD_F32(m, p, i) _mm512_maskz_loadu_ps(m, (const float *)(p) + (i))
#define LOAD_F16(p, i) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const cst_f16 *)(p) + (i))))
#define MLOAD_F16(m, p, i) _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const cst_f16 *)(p) + (i)))
static inline __m512 bf16_widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
#define LOAD_BF16(p, i) bf16_widen(_mm256_loadu_si256((const __m256i *)((const cst_bf16 *)(p) + (i))))
#define MLOAD_BF16(m, p, i) bf16_widen(_mm256_maskz_loadu_epi16(m, (const cst_bf16 *)(p) + (i)))

/* 16 elements per step: 4 weight vectors x 4 activation vectors, 16 accumulators */
#define TILE_F(NAME, LOAD, MLOAD, FOLD)                                                                   \
    static void NAME(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {   \
        __m512 acc[4][4];                                                                           \
        _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)                                        \
            _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) acc[r][t] = _mm512_setzero_ps();   \
        int i = 0;                                                                                  \
        for (; i + 16 <= n; i += 16) {                                                              \
            __m512 w[4];                                                                            \
            _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) w[r] = LOAD(x[r], i);              \
            _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {                                  \
                const __m512 a = LOAD(y[t], i);                                                     \
                _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) acc[r][t] = _mm512_fmadd_ps(w[r], a, acc[r][t]); \
            }                                                                                       \
        }                                                                                           \
        if (i < n) {                                                                                \
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                                   \
            __m512 w[4];                                                                            \
            _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) w[r] = MLOAD(m, x[r], i);          \
            _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {                                  \
                const __m512 a = MLOAD(m, y[t], i);                                                 \
                _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) acc[r][t] = _mm512_fmadd_ps(w[r], a, acc[r][t]); \
            }                                                                                       \
        }                                                                                           \
        _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++)                                        \
            _mm_storeu_ps(s + t * lds, FOLD(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));           \
    }

/* F32/F16: tinyBLAS's order bit for bit when n % 16 == 0 (cst_tile_f32_ref) */
TILE_F(tile_f32_avx512, LOAD_F32, MLOAD_F32, reduce4_ps)
TILE_F(tile_f16_avx512, LOAD_F16, MLOAD_F16, reduce4_ps)
TILE_F(tile_bf16_avx512, LOAD_BF16, MLOAD_BF16, fold4_ps)

/* BF16 dot, widened to F32 */
static void vec_dot_bf16_avx512(int n, float *s, const void *x, const void *y) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(LOAD_BF16(x, i), LOAD_BF16(y, i), a0);
        a1 = _mm512_fmadd_ps(LOAD_BF16(x, i + 16), LOAD_BF16(y, i + 16), a1);
        a2 = _mm512_fmadd_ps(LOAD_BF16(x, i + 32), LOAD_BF16(y, i + 32), a2);
        a3 = _mm512_fmadd_ps(LOAD_BF16(x, i + 48), LOAD_BF16(y, i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(LOAD_BF16(x, i), LOAD_BF16(y, i), a0);
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(MLOAD_BF16(m, x, i), MLOAD_BF16(m, y, i), a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* ---- AVX512_BF16: vdpbf16ps (pairs of bf16 products added into f32 lanes) ---- */
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

BF16_TARGET static inline __m512bh ldbh(const void *p, int i) {
    return (__m512bh)_mm512_loadu_si512((const void *)((const cst_bf16 *)p + i));
}
BF16_TARGET static inline __m512bh mldbh(__mmask32 m, const void *p, int i) {
    return (__m512bh)_mm512_maskz_loadu_epi16(m, (const cst_bf16 *)p + i);
}

BF16_TARGET static void vec_dot_bf16_avx512bf16(int n, float *s, const void *x, const void *y) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 128 <= n; i += 128) {
        a0 = _mm512_dpbf16_ps(a0, ldbh(x, i), ldbh(y, i));
        a1 = _mm512_dpbf16_ps(a1, ldbh(x, i + 32), ldbh(y, i + 32));
        a2 = _mm512_dpbf16_ps(a2, ldbh(x, i + 64), ldbh(y, i + 64));
        a3 = _mm512_dpbf16_ps(a3, ldbh(x, i + 96), ldbh(y, i + 96));
    }
    for (; i + 32 <= n; i += 32) a0 = _mm512_dpbf16_ps(a0, ldbh(x, i), ldbh(y, i));
    if (i < n) {
        const __mmask32 m = (__mmask32)((1ull << (n - i)) - 1);
        a1 = _mm512_dpbf16_ps(a1, mldbh(m, x, i), mldbh(m, y, i));
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

BF16_TARGET static void tile_bf16_avx512bf16(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) acc[r][t] = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? (__mmask32)~0u : (__mmask32)((1ull << (n - i)) - 1);
        __m512bh w[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) w[r] = mldbh(m, x[r], i);
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m512bh a = mldbh(m, y[t], i);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], w[r], a);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) _mm_storeu_ps(s + t * lds, fold4_ps(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));
}

void cst_kernels_float_avx512(cst_kernel_traits *tab, cst_tile4x4_fn *tiles, bool has_bf16) {
    tiles[CST_TYPE_F32] = tile_f32_avx512;
    tiles[CST_TYPE_F16] = tile_f16_avx512;
    if (has_bf16) {
        tab[CST_TYPE_BF16].vec_dot = vec_dot_bf16_avx512bf16;
        tiles[CST_TYPE_BF16] = tile_bf16_avx512bf16;
    } else {
        tab[CST_TYPE_BF16].vec_dot = vec_dot_bf16_avx512;
        tiles[CST_TYPE_BF16] = tile_bf16_avx512;
    }
}
