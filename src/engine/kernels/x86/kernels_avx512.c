/* kernels_avx512.c: AVX-512 (F, BW, VL, DQ, VNNI) fast paths, installed by
 * dispatch.c on top of the AVX2 table only after a CPUID check: 512-bit
 * float dots, VNNI Q8_0/Q4_0 dots and 4x4 (rows x tokens) micro-kernels for
 * prompt batches. Each must agree with its _ref twin up to float rounding.
 */
#include "../kernels_int.h"

#include <immintrin.h>

static inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline float f16(cst_f16 h) { return _cvtsh_ss(h); }

/* ------------------------------------------------------------ floats */

static void vec_dot_f32_avx512(int n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static void vec_dot_f16_avx512(int n, float *s, const void *vx, const void *vy) {
    const cst_f16 *x = vx, *y = vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
#define LH(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(LH(x + i), LH(y + i), a0);
        a1 = _mm512_fmadd_ps(LH(x + i + 16), LH(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(LH(x + i + 32), LH(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(LH(x + i + 48), LH(y + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(LH(x + i), LH(y + i), a0);
#undef LH
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i)),
                             _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, y + i)), a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
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

static void vec_dot_q8_0_q8_0_avx512(int n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx, *y = vy;
    const int nb = n / QK8_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const __m256i z = _mm256_setzero_si256();
    int i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m256i p0 = dot_i8_vnni(z, _mm256_loadu_si256((const __m256i *)x[i].qs),
                                       _mm256_loadu_si256((const __m256i *)y[i].qs));
        const __m256i p1 = dot_i8_vnni(z, _mm256_loadu_si256((const __m256i *)x[i + 1].qs),
                                       _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i + 1].d) * f16(y[i + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; i < nb; i++) {
        const __m256i p0 = dot_i8_vnni(z, _mm256_loadu_si256((const __m256i *)x[i].qs),
                                       _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p0), acc0);
    }
    *s = hsum8(_mm256_add_ps(acc0, acc1));
}

static void vec_dot_q4_0_q8_0_avx512(int n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int nb = n / QK8_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const __m256i z = _mm256_setzero_si256();
    int i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m256i p0 = dot_i8_vnni(z, q4_0_unpack(x[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        const __m256i p1 = dot_i8_vnni(z, q4_0_unpack(x[i + 1].qs), _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i + 1].d) * f16(y[i + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; i < nb; i++) {
        const __m256i p0 = dot_i8_vnni(z, q4_0_unpack(x[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p0), acc0);
    }
    *s = hsum8(_mm256_add_ps(acc0, acc1));
}

/* 4x4 tiles (4 weight rows x 4 tokens), two 32-element blocks per 512-bit
 * step. Activations are offset to unsigned (a ^ 0x80 = a + 128) so that
 * dpbusd multiplies them with the signed weights; the 128 * sum(w) excess is
 * precomputed per weight block and used as the (negated) start value. The 4
 * rows of a token are then folded into one vector whose lane k holds a
 * partial sum of row k % 4 over one block (128-bit lanes 0-1: first block,
 * 2-3: second), still exact integers, and scaled by d_w * d_a in float. */
static inline __m512i fold4(__m512i s0, __m512i s1, __m512i s2, __m512i s3) {
    const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(s0, s1), _mm512_unpackhi_epi32(s0, s1));
    const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(s2, s3), _mm512_unpackhi_epi32(s2, s3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

static inline __m512i join256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* One step over blocks i (and i+1 when `two`) of 4 rows x 4 tokens. */
static inline __attribute__((always_inline)) void q0_step(const int q4, const int two, const char *const *xr,
                                                          const block_q8_0 *const *yt, int i, __m512 *acc) {
    const size_t bsz = q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    const __m512i off = _mm512_set1_epi8((char)0x80), z = _mm512_setzero_si512();
    const __m512i didx = _mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7);
    __m512i w[4], c[4];
    cst_f16 dh[8] = {0};
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        const char *b0 = xr[r] + (size_t)i * bsz, *b1 = b0 + bsz;
        /* d is the first field of both block types */
        const uint8_t *q0 = q4 ? ((const block_q4_0 *)b0)->qs : (const uint8_t *)((const block_q8_0 *)b0)->qs;
        const uint8_t *q1 = q4 ? ((const block_q4_0 *)b1)->qs : (const uint8_t *)((const block_q8_0 *)b1)->qs;
        const __m256i w0 = q4 ? q4_0_unpack(q0) : _mm256_loadu_si256((const __m256i *)q0);
        const __m256i w1 = !two ? _mm256_setzero_si256() : q4 ? q4_0_unpack(q1) : _mm256_loadu_si256((const __m256i *)q1);
        w[r] = join256(w0, w1);
        c[r] = _mm512_dpbusd_epi32(z, off, w[r]); /* 128 * sum(w): the excess of the offset activations */
        memcpy(&dh[r], b0, sizeof(cst_f16));
        if (two) memcpy(&dh[4 + r], b1, sizeof(cst_f16));
    }
    const __m512i cf = fold4(c[0], c[1], c[2], c[3]);
    const __m512 dw = _mm512_permutexvar_ps(didx, _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh))));
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) {
        const block_q8_0 *a = yt[t] + i;
        const __m256i a1 = two ? _mm256_loadu_si256((const __m256i *)a[1].qs) : _mm256_setzero_si256();
        const __m512i au = _mm512_xor_si512(join256(_mm256_loadu_si256((const __m256i *)a[0].qs), a1), off);
        const __m512 da = _mm512_insertf32x8(_mm512_set1_ps(f16(a[0].d)), _mm256_set1_ps(two ? f16(a[1].d) : 0.0f), 1);
        const __m512i u = _mm512_sub_epi32(fold4(_mm512_dpbusd_epi32(z, au, w[0]), _mm512_dpbusd_epi32(z, au, w[1]),
                                                 _mm512_dpbusd_epi32(z, au, w[2]), _mm512_dpbusd_epi32(z, au, w[3])),
                                           cf);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(u), _mm512_mul_ps(dw, da), acc[t]);
    }
}

static inline __attribute__((always_inline)) void tile_q0(const int q4, int n, const void *const *vx,
                                                          const void *const *vy, float *s, int64_t lds) {
    const int nb = n / QK8_0;
    const char *xr[4];
    const block_q8_0 *yt[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        xr[k] = (const char *)vx[k];
        yt[k] = (const block_q8_0 *)vy[k];
    }
    __m512 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) acc[t] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 2 <= nb; i += 2) q0_step(q4, 1, xr, yt, i, acc);
    if (i < nb) q0_step(q4, 0, xr, yt, i, acc);
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) {
        const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc[t]),
                                       _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[t]), 1)));
        _mm_storeu_ps(s + t * lds, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    }
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

void cst_kernels_tiles_avx512(cst_tile4x4_fn *tab) {
    tab[CST_TYPE_Q8_0] = tile_q8_0_avx512;
    tab[CST_TYPE_Q4_0] = tile_q4_0_avx512;
}
