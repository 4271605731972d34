/* kernels_avx512.c: AVX-512 (F, BW, VL, DQ, VNNI) fast paths, installed by
 * dispatch.c on top of the AVX2 table only after a CPUID check: 512-bit
 * float dots, VNNI Q8_0/Q4_0 dots and 4x4 (rows x tokens) micro-kernels for
 * prompt batches. Q8_0/Q4_0 follow their _ref twins' (ggml's) accumulation
 * order bit for bit; the float dots agree up to float rounding.
 */
#include "../kernels_int.h"

#include <immintrin.h>
#include <math.h>

static inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline float f16(cst_f16 h) { return _cvtsh_ss(h); }

/* ------------------------------------------------------------ floats */

/* ggml_vec_dot_f32 / _f16 order (cst_vec_dot_f32_ref): 4 accumulators over
 * 64-element steps, (a0+a2)+(a1+a3), reduce, leftovers one by one */
static void vec_dot_f32_avx512(int n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const int np = n & ~63;
    for (int i = 0; i < np; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
    for (int i = np; i < n; i++) sum = fmaf(x[i], y[i], sum);
    *s = sum;
}

static void vec_dot_f16_avx512(int n, float *s, const void *vx, const void *vy) {
    const cst_f16 *x = vx, *y = vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const int np = n & ~63;
#define LH(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
    for (int i = 0; i < np; i += 64) {
        a0 = _mm512_fmadd_ps(LH(x + i), LH(y + i), a0);
        a1 = _mm512_fmadd_ps(LH(x + i + 16), LH(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(LH(x + i + 32), LH(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(LH(x + i + 48), LH(y + i + 48), a3);
    }
#undef LH
    double sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
    for (int i = np; i < n; i++) sum += (double)(f16(x[i]) * f16(y[i]));
    *s = (float)sum;
}

void cst_fp16_to_fp32_row_avx512(const cst_f16 *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
    for (; i < n; i++) y[i] = cst_f16_to_f32(x[i]);
}

/* ------------------------------------------------------------ Q8_0 / Q4_0 */

/* signed x signed int8 dot with VNNI: |x| (u8) . sign(y, x) (s8) */
static inline __m256i dot_i8_vnni(__m256i acc, __m256i x, __m256i y) {
    return _mm256_dpbusd_epi32(acc, _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

static inline __m256i q4_0_unpack(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_sub_epi8(_mm256_and_si256(b, _mm256_set1_epi8(0xF)), _mm256_set1_epi8(8));
}

/* ggml's order (see cst_vec_dot_q8_0_q8_0_ref): one 8-lane accumulator,
 * acc = fma(dx * dy, lane sums, acc) block by block, then hsum8 */
static void vec_dot_q8_0_q8_0_avx512(int n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx, *y = vy;
    const int nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps();
    const __m256i z = _mm256_setzero_si256();
    for (int i = 0; i < nb; i++) {
        const __m256i p = dot_i8_vnni(z, _mm256_loadu_si256((const __m256i *)x[i].qs),
                                      _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p), acc);
    }
    *s = hsum8(acc);
}

static void vec_dot_q4_0_q8_0_avx512(int n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps();
    const __m256i z = _mm256_setzero_si256();
    for (int i = 0; i < nb; i++) {
        const __m256i p = dot_i8_vnni(z, q4_0_unpack(x[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p), acc);
    }
    *s = hsum8(acc);
}

/* 4x4 tiles (4 weight rows x 4 tokens) in the vec_dot order, bit for bit:
 * one 8-lane ymm accumulator per (row, token), acc = fma(dw * da, lane sums,
 * acc) block by block, hsum8 at the end. Activations are offset to unsigned
 * (a ^ 0x80 = a + 128) so that dpbusd multiplies them with the signed
 * weights; the start value -128 * (sum of each 4 weights), computed once per
 * weight block, removes the excess, so the lane sums are the vec_dot's exact
 * integers. (ymm, not zmm pairs: on this AMD core a 512-bit op costs two
 * 256-bit ones, and the 16 scale products come from one multiply and
 * broadcast loads instead of 8 vector multiplies: 143 vs 95 GFLOP/s.) */
static inline __attribute__((always_inline)) void tile_q0(const int q4, int n, const void *const *vx,
                                                          const void *const *vy, float *s, int64_t lds) {
    const int nb = n / QK8_0;
    const size_t bsz = q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    const char *xr[4];
    const block_q8_0 *yt[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        xr[k] = (const char *)vx[k];
        yt[k] = (const block_q8_0 *)vy[k];
    }
    const __m256i off = _mm256_set1_epi8((char)0x80), z = _mm256_setzero_si256();
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) acc[r][t] = _mm256_setzero_ps();
    const __m512i tidx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    for (int i = 0; i < nb; i++) {
        __m256i w[4], nc[4], au[4];
        cst_f16 dh[8] = {0};
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const char *b = xr[r] + (size_t)i * bsz; /* d is the first field of both block types */
            w[r] = q4 ? q4_0_unpack(((const block_q4_0 *)b)->qs)
                      : _mm256_loadu_si256((const __m256i *)((const block_q8_0 *)b)->qs);
            nc[r] = _mm256_sub_epi32(z, _mm256_dpbusd_epi32(z, off, w[r]));
            memcpy(&dh[r], b, sizeof(cst_f16));
        }
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            au[t] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)yt[t][i].qs), off);
            dh[4 + t] = yt[t][i].d;
        }
        /* the 16 float products dw[r] * da[t] at [4t + r], broadcast from memory (loads, not shuffles) */
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh));
        const __m512 d16 = _mm512_castps256_ps512(d8);
        const __m512 dwv = _mm512_broadcast_f32x4(_mm256_castps256_ps128(d8));
        const __m512 dav = _mm512_permutexvar_ps(_mm512_add_epi32(tidx, _mm512_set1_epi32(4)), d16);
        float dp[16] __attribute__((aligned(64)));
        _mm512_store_ps(dp, _mm512_mul_ps(dwv, dav));
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++)
                acc[r][t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&dp[4 * t + r]),
                                            _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(nc[r], au[t], w[r])), acc[r][t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) s[t * lds + r] = hsum8(acc[r][t]);
}

/* Q4_0 in the order of llama.cpp's repacked q4_0_8x8 kernels (rows % 8 == 0):
 * per output one float accumulator, acc = fma((float) block int sum, dw * da,
 * acc). The 16 (row, token) block sums are reduced exactly (hadd) into one
 * zmm, lane 4t + r, so one convert and one FMA per block serve the tile. */
static void tile_q4_0_x8_avx512(int n, const void *const *vx, const void *const *vy, float *s, int64_t lds) {
    const int nb = n / QK8_0;
    const block_q4_0 *xr[4];
    const block_q8_0 *yt[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        xr[k] = (const block_q4_0 *)vx[k];
        yt[k] = (const block_q8_0 *)vy[k];
    }
    const __m256i off = _mm256_set1_epi8((char)0x80), z = _mm256_setzero_si256();
    const __m512i tidx = _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
        __m256i w[4], nc[4];
        cst_f16 dh[8];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            w[r] = q4_0_unpack(xr[r][i].qs);
            nc[r] = _mm256_sub_epi32(z, _mm256_dpbusd_epi32(z, off, w[r]));
            dh[r] = xr[r][i].d;
        }
        __m128i is[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m256i au = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)yt[t][i].qs), off);
            dh[4 + t] = yt[t][i].d;
            __m256i p[4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) p[r] = _mm256_dpbusd_epi32(nc[r], au, w[r]);
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
            is[t] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        }
        const __m512i I = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(is[1], is[0])),
                                             _mm256_set_m128i(is[3], is[2]), 1);
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh));
        const __m512 dwv = _mm512_broadcast_f32x4(_mm256_castps256_ps128(d8));
        const __m512 dav = _mm512_permutexvar_ps(tidx, _mm512_castps256_ps512(d8));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), _mm512_mul_ps(dwv, dav), acc);
    }
    float out[16];
    _mm512_storeu_ps(out, acc);
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) memcpy(s + t * lds, out + 4 * t, 4 * sizeof(float));
}

static void tile_q8_0_avx512(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {
    tile_q0(0, n, x, y, s, lds);
}
static void tile_q4_0_avx512(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {
    tile_q0(1, n, x, y, s, lds);
}

void cst_kernels_fill_avx512(cst_kernel_traits *tab) {
    tab[CST_TYPE_F32].vec_dot = vec_dot_f32_avx512;
    tab[CST_TYPE_F16].vec_dot = vec_dot_f16_avx512;
    tab[CST_TYPE_Q8_0].vec_dot = vec_dot_q8_0_q8_0_avx512;
    tab[CST_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0_avx512;
}

cst_tile4x4_fn cst_tile_q4_0_x8_avx512(void) { return tile_q4_0_x8_avx512; }

void cst_kernels_tiles_avx512(cst_tile4x4_fn *tab) {
    tab[CST_TYPE_Q8_0] = tile_q8_0_avx512;
    tab[CST_TYPE_Q4_0] = tile_q4_0_avx512;
}
