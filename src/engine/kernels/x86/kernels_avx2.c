/* kernels_avx2.c: AVX2 + FMA + F16C fast paths (compiled with those flags,
 * installed by dispatch.c only after a CPUID check). Each kernel must agree
 * with its _ref twin: activation quantization bit for bit, dot products up to
 * float rounding (integer parts are exact; only the float accumulation order
 * differs).
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

static inline float hmax8(__m256 v) {
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline float f16(cst_f16 h) { return _cvtsh_ss(h); }

#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* signed int8 dot in 8 int32 lanes: sum of 4 products each */
static inline __m256i dot_i8(__m256i x, __m256i y) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* ------------------------------------------------------------ floats */

void cst_fp32_to_fp16_row_avx2(const float *x, cst_f16 *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = cst_f32_to_f16(x[i]);
}

void cst_fp16_to_fp32_row_avx2(const cst_f16 *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = cst_f16_to_f32(x[i]);
}

static void to_float_f16_avx2(const void *x, float *y, int64_t n) { cst_fp16_to_fp32_row_avx2(x, y, n); }
static void from_float_f16_avx2(const float *x, void *y, int64_t n) { cst_fp32_to_fp16_row_avx2(x, y, n); }

static void vec_dot_f32_avx2(int n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

static void vec_dot_f16_avx2(int n, float *s, const void *vx, const void *vy) {
    const cst_f16 *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
#define LH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(LH(x + i), LH(y + i), a0);
        a1 = _mm256_fmadd_ps(LH(x + i + 8), LH(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(LH(x + i + 16), LH(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(LH(x + i + 24), LH(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LH(x + i), LH(y + i), a0);
#undef LH
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += f16(x[i]) * f16(y[i]);
    *s = sum;
}

static inline __m256 load_bf16(const cst_bf16 *p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

static void vec_dot_bf16_avx2(int n, float *s, const void *vx, const void *vy) {
    const cst_bf16 *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_bf16(x + i), load_bf16(y + i), a0);
        a1 = _mm256_fmadd_ps(load_bf16(x + i + 8), load_bf16(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_bf16(x + i + 16), load_bf16(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_bf16(x + i + 24), load_bf16(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_bf16(x + i), load_bf16(y + i), a0);
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += cst_bf16_to_f32(x[i]) * cst_bf16_to_f32(y[i]);
    *s = sum;
}

/* float -> bf16, round to nearest even, NaN quieted (as cst_f32_to_bf16) */
static void from_float_bf16_avx2(const float *x, void *vy, int64_t n) {
    cst_bf16 *y = vy;
    int64_t i = 0;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int h = 0; h < 2; h++) {
            const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i + 8 * h));
            const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
            const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
            const __m256i isnan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absmask), inf);
            r[h] = _mm256_blendv_epi8(rounded, nan, isnan);
        }
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xD8);
        _mm256_storeu_si256((__m256i *)(y + i), packed);
    }
    for (; i < n; i++) y[i] = cst_f32_to_bf16(x[i]);
}

/* ------------------------------------------------------------ Q8_0 */

/* bit-identical to cst_from_float_q8_0_ref (and to ggml's AVX2 code) */
static void from_float_q8_0_avx2(const float *x, void *vy, int64_t n) {
    block_q8_0 *y = vy;
    const int64_t nb = n / QK8_0;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < nb; i++, x += QK8_0) {
        __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
        __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        __m256 m = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        const float amax = hmax8(m);
        const float d = amax / 127.f;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        y[i].d = cst_f32_to_f16(d);
        const __m256 mul = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), RNE));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), RNE));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), RNE));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), RNE));
        i0 = _mm256_packs_epi32(i0, i1);
        i2 = _mm256_packs_epi32(i2, i3);
        i0 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i0, i2), perm);
        _mm256_storeu_si256((__m256i *)y[i].qs, i0);
    }
}

static void vec_dot_q8_0_q8_0_avx2(int n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx, *y = vy;
    const int nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps(); /* ggml's order: one accumulator, fma per block, hsum8 */
    for (int i = 0; i < nb; i++) {
        const __m256i p = dot_i8(_mm256_loadu_si256((const __m256i *)x[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p), acc);
    }
    *s = hsum8(acc);
}

/* ------------------------------------------------------------ Q4_0 */

static inline __m256i q4_0_unpack(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_sub_epi8(_mm256_and_si256(b, _mm256_set1_epi8(0xF)), _mm256_set1_epi8(8));
}

static void vec_dot_q4_0_q8_0_avx2(int n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps(); /* ggml's order: one accumulator, fma per block, hsum8 */
    for (int i = 0; i < nb; i++) {
        const __m256i p = dot_i8(q4_0_unpack(x[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p), acc);
    }
    *s = hsum8(acc);
}

/* llama.cpp's repacked Q4_0 order (rows % 8 == 0), see cst_vec_dot_q4_0_q8_0_x8_ref */
void cst_vec_dot_q4_0_q8_0_x8_avx2(int n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int nb = n / QK8_0;
    float acc = 0.0f;
    for (int i = 0; i < nb; i++) {
        const __m256i p = dot_i8(q4_0_unpack(x[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
        acc = fmaf((float)_mm_cvtsi128_si32(h), f16(x[i].d) * f16(y[i].d), acc);
    }
    *s = acc;
}

/* the 8 int32 sums of p[0..7] as one vector (lane r = the sum of p[r]):
 * exact, so in any order */
static inline __m256i hsum8x8_i32(const __m256i p[8]) {
    /* hadd: [r0 lo-half, r1, r2, r3 | r0 hi-half, r1, r2, r3] and the same for r4..r7 */
    const __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    const __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31));
}

/* The 8 rows of a dot8 call are 8 short streams (a row is a few KiB) that the
 * hardware prefetcher barely ramps up on before they end: each block step
 * fetches the same span of the rows two calls ahead (contiguous after these:
 * the matrix's rows are consecutive), so the whole matrix is one sequential
 * stream in software. Prefetches past the matrix's end do not fault. */
static inline void prefetch_ahead(const void *vx, size_t bx, size_t step, int i) {
    const char *p = (const char *)vx + 16 * bx + (size_t)i * step;
    for (size_t k = 0; k < step; k += 64) _mm_prefetch(p + k, _MM_HINT_T0);
}

/* the f16 field f of the 8 blocks x[0..7][i] as 8 floats */
#define F16X8(x, i, f)                                                                                         \
    _mm256_cvtph_ps(_mm_setr_epi16((short)x[0][i].f, (short)x[1][i].f, (short)x[2][i].f, (short)x[3][i].f, \
                                   (short)x[4][i].f, (short)x[5][i].f, (short)x[6][i].f, (short)x[7][i].f))

/* 8 rows of cst_vec_dot_q4_0_q8_0_x8_avx2 at once, the same bits: per block
 * the 8 exact int sums in one vector, the 8 scales dw * da as float
 * products, one vector fma: each lane is its row's fma chain */
void cst_vec_dot8_q4_0_q8_0_x8_avx2(int n, float *s, const void *vx, size_t bx, const void *vy) {
    const block_q8_0 *y = vy;
    const block_q4_0 *x[8];
    for (int r = 0; r < 8; r++) x[r] = (const block_q4_0 *)((const char *)vx + (size_t)r * bx);
    const int nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        prefetch_ahead(vx, bx, 8 * sizeof(block_q4_0), i);
        const __m256i a = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256i p[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) p[r] = dot_i8(q4_0_unpack(x[r][i].qs), a);
        const __m256 dw = F16X8(x, i, d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hsum8x8_i32(p)), _mm256_mul_ps(dw, _mm256_set1_ps(f16(y[i].d))), acc);
    }
    _mm256_storeu_ps(s, acc);
}

/* ------------------------------------------------------------ Q8_K */

/* bit-identical to cst_from_float_q8_K_ref */
static void from_float_q8_K_avx2(const float *x, void *vy, int64_t n) {
    block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
        const float amax = hmax8(m);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* the first element whose magnitude is amax gives the sign */
        const __m256 va = _mm256_set1_ps(amax);
        float max = amax;
        for (int j = 0; j < QK_K; j += 8) {
            const __m256 v = _mm256_loadu_ps(x + j);
            const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), va, _CMP_EQ_OQ));
            if (mask) {
                max = x[j + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 mul = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), mul), RNE));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), mul), RNE));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 16), mul), RNE));
            __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 24), mul), RNE));
            i0 = _mm256_min_epi32(i0, lim);
            i1 = _mm256_min_epi32(i1, lim);
            i2 = _mm256_min_epi32(i2, lim);
            i3 = _mm256_min_epi32(i3, lim);
            /* group sums of 16: (i0+i1) and (i2+i3) */
            __m256i t = _mm256_hadd_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
            t = _mm256_hadd_epi32(t, t);
            const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
            y[i].bsums[j / 16] = (int16_t)_mm_cvtsi128_si32(s4);
            y[i].bsums[j / 16 + 1] = (int16_t)_mm_extract_epi32(s4, 1);
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), _mm256_permutevar8x32_epi32(p, perm));
        }
        y[i].d = 1 / iscale;
    }
}

/* ------------------------------------------------------------ K-quants */

/* Unpack the 12 packed bytes of Q4_K/Q5_K scales: bytes 0-7 of the result
 * are the 8 sub-block scales, bytes 8-15 the 8 mins. */
static inline __m128i k4_unpack_scales(const uint8_t *q) {
    uint32_t u0, u1, u2;
    memcpy(&u0, q, 4);
    memcpy(&u1, q + 4, 4);
    memcpy(&u2, q + 8, 4);
    const uint32_t km1 = 0x3f3f3f3f, km2 = 0x0f0f0f0f, km3 = 0x03030303;
    const uint32_t m47 = ((u2 >> 4) & km2) | (((u1 >> 6) & km3) << 4);
    const uint32_t m03 = u1 & km1;
    const uint32_t s47 = (u2 & km2) | (((u0 >> 6) & km3) << 4);
    const uint32_t s03 = u0 & km1;
    return _mm_set_epi32((int)m47, (int)m03, (int)s47, (int)s03);
}

/* shuffle controls broadcasting int16 element j of a 128-bit lane */
static inline __m256i bcast16_ctl(int j) { return _mm256_set1_epi16((short)(0x0100 + 0x0202 * j)); }

/* sum_j min_j * (bsums[2j] + bsums[2j+1]) as 4 int32 lanes */
static inline __m128i k4_mins_dot(__m128i sm, const int16_t *bsums) {
    const __m128i mins16 = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm));
    const __m128i b0 = _mm_loadu_si128((const __m128i *)bsums);
    const __m128i b1 = _mm_loadu_si128((const __m128i *)(bsums + 8));
    return _mm_madd_epi16(mins16, _mm_hadd_epi16(b0, b1));
}

static void vec_dot_q4_K_q8_K_avx2(int n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const __m128i sm = k4_unpack_scales(x[i].scales);
        const float d = y[i].d * f16(x[i].d);
        const float dmin = y[i].d * f16(x[i].dmin);
        accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(k4_mins_dot(sm, y[i].bsums)), accm);
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        __m256i sumi = _mm256_setzero_si256();
        const uint8_t *q = x[i].qs;
        const int8_t *a = y[i].qs;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++, q += 32, a += 64) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)q);
            const __m256i lo = _mm256_and_si256(b, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
            const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)a));
            const __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc, bcast16_ctl(2 * c))));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, bcast16_ctl(2 * c + 1))));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    __m128 m = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    *s = hsum8(acc) - _mm_cvtss_f32(m);
}

/* llama.cpp's repacked Q4_K order (rows % 8 == 0), see cst_vec_dot_q4_K_q8_K_x8_ref */
static inline int hsum_i32_8(__m256i p) {
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
    return _mm_cvtsi128_si32(_mm_add_epi32(h, _mm_shuffle_epi32(h, 1)));
}

void cst_vec_dot_q4_K_q8_K_x8_avx2(int n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    float acc = 0.0f, accm = 0.0f;
    for (int i = 0; i < nb; i++) {
        const __m128i sm = k4_unpack_scales(x[i].scales);
        const __m128i md = k4_mins_dot(sm, y[i].bsums);
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        __m256i sumi = _mm256_setzero_si256();
        const uint8_t *q = x[i].qs;
        const int8_t *a = y[i].qs;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++, q += 32, a += 64) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)q);
            const __m256i lo = _mm256_and_si256(b, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
            const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)a));
            const __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc, bcast16_ctl(2 * c))));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, bcast16_ctl(2 * c + 1))));
        }
        const __m128i md2 = _mm_add_epi32(md, _mm_unpackhi_epi64(md, md));
        const int imin = _mm_cvtsi128_si32(_mm_add_epi32(md2, _mm_shuffle_epi32(md2, 1)));
        acc = fmaf((float)hsum_i32_8(sumi), f16(x[i].d) * y[i].d, acc);
        accm = fmaf((float)imin, f16(x[i].dmin) * y[i].d, accm);
    }
    *s = acc - accm;
}

static void vec_dot_q5_K_q8_K_avx2(int n, float *s, const void *vx, const void *vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0xF), b4 = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f; /* ggml's order: mins in one float, fused multiply-add per block */
    for (int i = 0; i < nb; i++) {
        const __m128i sm = k4_unpack_scales(x[i].scales);
        const float d = y[i].d * f16(x[i].d);
        const float dmin = -y[i].d * f16(x[i].dmin);
        const __m128i md = k4_mins_dot(sm, y[i].bsums);
        const __m128i md2 = _mm_add_epi32(md, _mm_unpackhi_epi64(md, md));
        const int isum = _mm_cvtsi128_si32(_mm_add_epi32(md2, _mm_shuffle_epi32(md2, 1)));
        summs = CST_Q5K_SUMMS(dmin, (float)isum, summs);
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        __m256i sumi = _mm256_setzero_si256();
        const uint8_t *q = x[i].qs;
        const int8_t *a = y[i].qs;
        /* qh bit 2c -> 16 for the low half of chunk c, bit 2c+1 for the high half */
        __m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++, q += 32, a += 64) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)q);
            const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(qh, 4), b4);
            const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(qh, 3), b4);
            qh = _mm256_srli_epi16(qh, 2);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(b, m4), h0);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4), h1);
            const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)a));
            const __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc, bcast16_ctl(2 * c))));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, bcast16_ctl(2 * c + 1))));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum8(acc) + summs;
}

/* shuffle controls for Q6_K: low 128-bit lane broadcasts int16 element 2k,
 * the high lane element 2k+1 (the two 16-groups of a 32-byte chunk) */
static inline __m256i q6_scale_ctl(int k) {
    return _mm256_set_m128i(_mm_set1_epi16((short)(0x0100 + 0x0202 * (2 * k + 1))),
                            _mm_set1_epi16((short)(0x0100 + 0x0202 * (2 * k))));
}

static void vec_dot_q6_K_q8_K_avx2(int n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * f16(x[i].d);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        /* codes are stored +32: subtract 32 * sum_g sc_g * bsum_g */
        const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8),
                                              _mm256_loadu_si256((const __m256i *)y[i].bsums));
        __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
        const int8_t *a = y[i].qs;
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++, a += 128) {
            const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_unpackhi_epi64(sc8, sc8) : sc8));
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h + 32));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m2));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m2));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m2));
            const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                               _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2));
            const __m256i p1 = _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)a));
            const __m256i p2 = _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(a + 32)));
            const __m256i p3 = _mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(a + 64)));
            const __m256i p4 = _mm256_maddubs_epi16(q4, _mm256_loadu_si256((const __m256i *)(a + 96)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, q6_scale_ctl(0))));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p2, _mm256_shuffle_epi8(sc, q6_scale_ctl(1))));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p3, _mm256_shuffle_epi8(sc, q6_scale_ctl(2))));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p4, _mm256_shuffle_epi8(sc, q6_scale_ctl(3))));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum8(acc);
}

void cst_kernels_fill_avx2(cst_kernel_traits *tab) {
    tab[CST_TYPE_F32].vec_dot = vec_dot_f32_avx2;
    tab[CST_TYPE_F16].vec_dot = vec_dot_f16_avx2;
    tab[CST_TYPE_F16].to_float = to_float_f16_avx2;
    tab[CST_TYPE_F16].from_float = from_float_f16_avx2;
    tab[CST_TYPE_BF16].vec_dot = vec_dot_bf16_avx2;
    tab[CST_TYPE_BF16].from_float = from_float_bf16_avx2;
    tab[CST_TYPE_Q8_0].from_float = from_float_q8_0_avx2;
    tab[CST_TYPE_Q8_0].vec_dot = vec_dot_q8_0_q8_0_avx2;
    tab[CST_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0_avx2;
    tab[CST_TYPE_Q8_K].from_float = from_float_q8_K_avx2;
    tab[CST_TYPE_Q4_K].vec_dot = vec_dot_q4_K_q8_K_avx2;
    tab[CST_TYPE_Q5_K].vec_dot = vec_dot_q5_K_q8_K_avx2;
    tab[CST_TYPE_Q6_K].vec_dot = vec_dot_q6_K_q8_K_avx2;
}
