/* tiles_avx2.c: AVX2 4x4 (weight rows x tokens) micro-kernels for Q8_0, Q4_0,
 * F32, F16 and BF16, each computed as two 4x2 passes (16 ymm registers).
 * Q8_0/Q4_0: per 32-element block the signed int8 dot is maddubs(|w|,
 * sign(a, w)) + madd, accumulated exactly like the vec_dot (ggml's order,
 * bit-identical results).
 * Float types: 8 FMA accumulators per pass, zero-padded tail. Results equal
 * the vec_dots up to float summation order.
 */
#include "../kernels_int.h"

#include <immintrin.h>

static inline float f16(cst_f16 h) { return _cvtsh_ss(h); }

/* [sum a0, sum a1, sum a2, sum a3] */
static inline __m128 fold4_ps(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

static inline __m256i q4_0_unpack(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_sub_epi8(_mm256_and_si256(b, _mm256_set1_epi8(0xF)), _mm256_set1_epi8(8));
}
#define LOAD_Q8(p) _mm256_loadu_si256((const __m256i *)(p))

static inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* rows x[0..3] with tokens y[0..1], in the vec_dot order bit for bit: one
 * 8-lane accumulator per (row, token), fma(dw * da, lane sums, acc) per block */
#define TILE_Q0_PASS(NAME, BT, LOADW)                                                              \
    static inline __attribute__((always_inline)) void NAME(int n, const void *const *vx,           \
                                                           const void *const *vy, float *s, int64_t lds) { \
        const int nb = n / QK8_0;                                                                  \
        const BT *x[4];                                                                            \
        _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) x[r] = (const BT *)vx[r];              \
        const block_q8_0 *y[2] = {(const block_q8_0 *)vy[0], (const block_q8_0 *)vy[1]};          \
        const __m256i ones = _mm256_set1_epi16(1);                                                 \
        __m256 acc[4][2];                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps(); \
        for (int i = 0; i < nb; i++) {                                                             \
            const __m256i a0 = LOAD_Q8(y[0][i].qs), a1 = LOAD_Q8(y[1][i].qs);                      \
            const float da0 = f16(y[0][i].d), da1 = f16(y[1][i].d);                                \
            _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {                                 \
                const __m256i w = LOADW(x[r][i].qs), aw = _mm256_sign_epi8(w, w);                  \
                const float dw = f16(x[r][i].d);                                                   \
                const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(a0, w)), ones); \
                const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(a1, w)), ones); \
                acc[r][0] = _mm256_fmadd_ps(_mm256_set1_ps(dw * da0), _mm256_cvtepi32_ps(p0), acc[r][0]); \
                acc[r][1] = _mm256_fmadd_ps(_mm256_set1_ps(dw * da1), _mm256_cvtepi32_ps(p1), acc[r][1]); \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++)                                       \
            _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) s[t * lds + r] = hsum8(acc[r][t]); \
    }

/* [sum of the 8 lanes of s0 .. s3] (exact) */
static inline __m128i hsum4_epi32(__m256i s0, __m256i s1, __m256i s2, __m256i s3) {
    const __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(s0, s1), _mm256_unpackhi_epi32(s0, s1));
    const __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(s2, s3), _mm256_unpackhi_epi32(s2, s3));
    const __m256i f = _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
    return _mm_add_epi32(_mm256_castsi256_si128(f), _mm256_extracti128_si256(f, 1));
}

/* Q4_0 rows x[0..3] with tokens y[0..1] in the order of llama.cpp's repacked
 * q4_0_8x8 kernels (cst_vec_dot_q4_0_q8_0_x8_ref): per block the exact int
 * sum of each (row, token), then one FMA per output into 8 float lanes
 * [t0 r0-3, t1 r0-3] with the product dw * da. */
static inline __attribute__((always_inline)) void pass_q4_0_x8(int n, const void *const *vx, const void *const *vy,
                                                               float *s, int64_t lds) {
    const int nb = n / QK8_0;
    const block_q4_0 *x[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) x[r] = (const block_q4_0 *)vx[r];
    const block_q8_0 *y[2] = {(const block_q8_0 *)vy[0], (const block_q8_0 *)vy[1]};
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m256i a0 = LOAD_Q8(y[0][i].qs), a1 = LOAD_Q8(y[1][i].qs);
        __m256i p[2][4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const __m256i w = q4_0_unpack(x[r][i].qs), aw = _mm256_sign_epi8(w, w);
            p[0][r] = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(a0, w)), ones);
            p[1][r] = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(a1, w)), ones);
        }
        const __m256i isum = _mm256_set_m128i(hsum4_epi32(p[1][0], p[1][1], p[1][2], p[1][3]),
                                              hsum4_epi32(p[0][0], p[0][1], p[0][2], p[0][3]));
        const __m128 dw = _mm_setr_ps(f16(x[0][i].d), f16(x[1][i].d), f16(x[2][i].d), f16(x[3][i].d));
        const __m256 d = _mm256_mul_ps(_mm256_set_m128(dw, dw),
                                       _mm256_set_m128(_mm_set1_ps(f16(y[1][i].d)), _mm_set1_ps(f16(y[0][i].d))));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc);
    }
    _mm_storeu_ps(s, _mm256_castps256_ps128(acc));
    _mm_storeu_ps(s + lds, _mm256_extractf128_ps(acc, 1));
}

TILE_Q0_PASS(pass_q8_0, block_q8_0, LOAD_Q8)
TILE_Q0_PASS(pass_q4_0, block_q4_0, q4_0_unpack)

/* float passes: 8 elements per step; the last n % 8 go through a zero-padded copy */
#define LD_F32(p) _mm256_loadu_ps((const float *)(p))
#define LD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define LD_BF16(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))

#define TILE_F_PASS(NAME, ET, LD)                                                                  \
    static inline __attribute__((always_inline)) void NAME(int n, const void *const *vx,           \
                                                           const void *const *vy, float *s, int64_t lds) { \
        const ET *x[4] = {vx[0], vx[1], vx[2], vx[3]};                                             \
        const ET *y[2] = {vy[0], vy[1]};                                                           \
        __m256 acc[4][2];                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps(); \
        int i = 0;                                                                                 \
        for (; i + 8 <= n; i += 8) {                                                               \
            __m256 w[4];                                                                           \
            _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) w[r] = LD(x[r] + i);               \
            _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++) {                                 \
                const __m256 a = LD(y[t] + i);                                                     \
                _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) acc[r][t] = _mm256_fmadd_ps(w[r], a, acc[r][t]); \
            }                                                                                      \
        }                                                                                          \
        if (i < n) {                                                                               \
            ET pad[6][8];                                                                          \
            memset(pad, 0, sizeof pad);                                                            \
            for (int r = 0; r < 4; r++) memcpy(pad[r], x[r] + i, (size_t)(n - i) * sizeof(ET));    \
            for (int t = 0; t < 2; t++) memcpy(pad[4 + t], y[t] + i, (size_t)(n - i) * sizeof(ET)); \
            _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++) {                                 \
                const __m256 a = LD(pad[4 + t]);                                                   \
                _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) acc[r][t] = _mm256_fmadd_ps(LD(pad[r]), a, acc[r][t]); \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++)                                       \
            _mm_storeu_ps(s + t * lds, fold4_ps(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));      \
    }

TILE_F_PASS(pass_f32, float, LD_F32)
TILE_F_PASS(pass_f16, cst_f16, LD_F16)
TILE_F_PASS(pass_bf16, cst_bf16, LD_BF16)

/* 4x4 = two 4x2 passes; a 2-token tail (tokens 2, 3 repeat token 1) needs one */
#define TILE_4X4(NAME, PASS)                                                                       \
    static void NAME(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {  \
        PASS(n, x, y, s, lds);                                                                     \
        if (y[2] == y[1] && y[3] == y[1]) {                                                        \
            memcpy(s + 2 * lds, s + lds, 4 * sizeof(float));                                       \
            memcpy(s + 3 * lds, s + lds, 4 * sizeof(float));                                       \
            return;                                                                                \
        }                                                                                          \
        PASS(n, x, y + 2, s + 2 * lds, lds);                                                       \
    }

TILE_4X4(tile_q8_0_avx2, pass_q8_0)
TILE_4X4(tile_q4_0_avx2, pass_q4_0)
TILE_4X4(tile_q4_0_x8_avx2, pass_q4_0_x8)
TILE_4X4(tile_f32_avx2, pass_f32)
TILE_4X4(tile_f16_avx2, pass_f16)
TILE_4X4(tile_bf16_avx2, pass_bf16)

void cst_kernels_tiles_avx2(cst_tile4x4_fn *tab) {
    tab[CST_TYPE_Q8_0] = tile_q8_0_avx2;
    tab[CST_TYPE_Q4_0] = tile_q4_0_avx2;
    tab[CST_TYPE_F32] = tile_f32_avx2;
    tab[CST_TYPE_F16] = tile_f16_avx2;
    tab[CST_TYPE_BF16] = tile_bf16_avx2;
}

cst_tile4x4_fn cst_tile_q4_0_x8_avx2(void) { return tile_q4_0_x8_avx2; }
