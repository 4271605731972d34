/* ops_exact.c: the vector numerics of ggml's CPU backend (AVX-512 build)
 * reproduced bit for bit: the vectorised expf used by softmax and SiLU, the
 * 16-lane horizontal sum, and one attention head (QK^T, softmax, P*V) with
 * the accumulation orders of llama.cpp's two matmul paths (tinyBLAS for
 * batches of >= 2 tokens, ggml_vec_dot_f16 for single-token decode). An
 * AVX-512 implementation is used when the CPU has it; the scalar twins below
 * give identical bits (fmaf, same summation trees) on other CPUs.
 */
#include "model_int.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define CST_X86 1
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#define CST_NEON 1
#include <arm_neon.h>
#endif

/* ---- scalar twins ------------------------------------------------------------
 * exp_lane: one lane of ggml_v_expf (AVX-512 variant): Cody-Waite reduction by
 * ln2, degree-5 polynomial evaluated with FMAs in a fixed tree, scalef. */
static float exp_lane(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         fmaf(0x1.ffffecp-1f, b, 1.0f));
    return ldexpf(j, (int)n);
}

/* _mm512_reduce_add_ps: halves added pairwise (8, 4, 2, 1). */
static float reduce16(const float *a) {
    float t[8];
    for (int i = 0; i < 8; i++) t[i] = a[i] + a[i + 8];
    for (int i = 0; i < 4; i++) t[i] = t[i] + t[i + 4];
    t[0] = t[0] + t[2];
    t[1] = t[1] + t[3];
    return t[0] + t[1];
}

static void swiglu_ref(float *y, const float *g, const float *u, int64_t n) {
    const int64_t nv = n & ~(int64_t)15;
    int64_t i = 0;
    for (; i < nv; i++) y[i] = (g[i] / (1.0f + exp_lane(0.0f - g[i]))) * u[i];
    for (; i < n; i++) y[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

/* dot of f16 rows in the order of tinyBLAS (lane l sums elements l, l+16, ...
 * with FMAs, then reduce16) or of ggml_vec_dot_f16 (four 16-lane accumulators
 * over 64-element steps, combined (0+2)+(1+3), reduce16, leftovers in double). */
static float dot_f16_ref(const cst_f16 *x, const cst_f16 *y, int n, bool lanes) {
    float acc[4][16] = {{0}};
    if (lanes) {
        for (int i = 0; i < n; i++) acc[0][i & 15] = fmaf(cst_f16_to_f32(x[i]), cst_f16_to_f32(y[i]), acc[0][i & 15]);
        return reduce16(acc[0]);
    }
    const int np = n & ~63;
    for (int i = 0; i < np; i++)
        acc[(i >> 4) & 3][i & 15] = fmaf(cst_f16_to_f32(x[i]), cst_f16_to_f32(y[i]), acc[(i >> 4) & 3][i & 15]);
    for (int l = 0; l < 16; l++) acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    double sum = reduce16(acc[0]);
    for (int i = np; i < n; i++) sum += (double)(cst_f16_to_f32(x[i]) * cst_f16_to_f32(y[i]));
    return (float)sum;
}

/* Scores (a->scores[p0..p1], max mx) -> probabilities in a->p16: ggml's
 * expf lane by lane, sums of 16-position groups in double. */
static void softmax_p16_ref(const cst_attn_head *a, float mx) {
    const int32_t p0 = a->p0, p1 = a->p1;
    float *s = a->scores;
    double sum = 0.0;
    for (int32_t g = p0 >> 4; g <= p1 >> 4; g++) {
        float e[16];
        for (int l = 0; l < 16; l++) {
            const int32_t p = g * 16 + l;
            e[l] = (p >= p0 && p <= p1) ? exp_lane(s[p] - mx) : 0.0f;
            if (p >= p0 && p <= p1) s[p] = e[l];
        }
        sum += (double)reduce16(e);
    }
    const float inv = (float)(1.0 / sum);
    for (int32_t p = p0; p <= p1; p++) a->p16[p] = cst_f32_to_f16(s[p] * inv);
}

static void attn_head_ref(const cst_attn_head *a) {
    const int32_t p0 = a->p0, p1 = a->p1;
    float *s = a->scores;
    cst_fp32_to_fp16_row(a->q, a->q16, a->hd);
    const bool klanes = a->batch && a->hd % 16 == 0;
    float mx = -INFINITY;
    for (int32_t p = p0; p <= p1; p++) {
        s[p] = dot_f16_ref(a->k + (size_t)p * a->k_stride, a->q16, a->hd, klanes) * a->scale;
        if (s[p] > mx) mx = s[p];
    }
    softmax_p16_ref(a, mx);
    const bool vlanes = a->batch && a->hdv % 4 == 0;
    for (int32_t d = 0; d < a->hdv; d++) {
        const cst_f16 *v = a->v + (size_t)d * a->v_stride;
        float acc[4][16] = {{0}};
        for (int32_t p = p0; p <= p1; p++) {
            float *c = vlanes ? &acc[0][p & 15] : &acc[(p >> 4) & 3][p & 15];
            *c = fmaf(cst_f16_to_f32(v[p]), cst_f16_to_f32(a->p16[p]), *c);
        }
        if (!vlanes)
            for (int l = 0; l < 16; l++) acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        a->out[d] = reduce16(acc[0]);
    }
}

/* ---- AVX-512 ------------------------------------------------------------------ */
#ifdef CST_X86
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c")))

AVX512 static inline __m512 exp16(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (!big) return res;
    const __mmask16 neg = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ);
    const __m512 alt = _mm512_mask_blend_ps(neg, _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(big, res, alt);
}

AVX512 static void swiglu_avx512(float *y, const float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
        const __m512 silu = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_storeu_ps(y + i, _mm512_mul_ps(silu, _mm512_loadu_ps(u + i)));
    }
    for (; i < n; i++) y[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

#define LOADH(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define LOADHM(m, p) _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((m), (p)))

AVX512 static inline float dot_f16_avx512(const cst_f16 *x, const cst_f16 *y, int n, bool lanes) {
    if (lanes) {
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < n; i += 16) acc = _mm512_fmadd_ps(LOADH(x + i), LOADH(y + i), acc);
        return _mm512_reduce_add_ps(acc);
    }
    const int np = n & ~63;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int i = 0; i < np; i += 64) {
        a0 = _mm512_fmadd_ps(LOADH(x + i), LOADH(y + i), a0);
        a1 = _mm512_fmadd_ps(LOADH(x + i + 16), LOADH(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(LOADH(x + i + 32), LOADH(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(LOADH(x + i + 48), LOADH(y + i + 48), a3);
    }
    double sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
    for (int i = np; i < n; i++) sum += (double)(cst_f16_to_f32(x[i]) * cst_f16_to_f32(y[i]));
    return (float)sum;
}

/* lanes of group g (positions 16g..16g+15) inside [p0, p1] */
static inline __mmask16 group_mask(int32_t g, int32_t p0, int32_t p1) {
    const int32_t lo = p0 - g * 16, hi = p1 - g * 16; /* lanes lo..hi */
    uint32_t m = 0xFFFFu;
    if (lo > 0) m &= 0xFFFFu << lo;
    if (hi < 15) m &= (1u << (hi + 1)) - 1u;
    return (__mmask16)m;
}

AVX512 static void attn_head_avx512(const cst_attn_head *a) {
    const int32_t p0 = a->p0, p1 = a->p1;
    float *s = a->scores;
    cst_fp32_to_fp16_row(a->q, a->q16, a->hd);
    const bool klanes = a->batch && a->hd % 16 == 0;
    float mx = -INFINITY;
    for (int32_t p = p0; p <= p1; p++) {
        s[p] = dot_f16_avx512(a->k + (size_t)p * a->k_stride, a->q16, a->hd, klanes) * a->scale;
        if (s[p] > mx) mx = s[p];
    }
    const int32_t g0 = p0 >> 4, g1 = p1 >> 4;
    const __m512 vmx = _mm512_set1_ps(mx);
    double sum = 0.0;
    for (int32_t g = g0; g <= g1; g++) {
        const __mmask16 m = group_mask(g, p0, p1);
        const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + g * 16), vmx)));
        _mm512_mask_storeu_ps(s + g * 16, m, e);
        sum += (double)_mm512_reduce_add_ps(e);
    }
    const __m512 vinv = _mm512_set1_ps((float)(1.0 / sum));
    for (int32_t g = g0; g <= g1; g++) {
        const __mmask16 m = group_mask(g, p0, p1);
        const __m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + g * 16), vinv),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(a->p16 + g * 16, m, h);
    }
    /* P*V: group g goes to accumulator g & 3 (ggml_vec_dot_f16) or to one
     * accumulator (tinyBLAS). The accumulators are named, never indexed at
     * run time, so that they stay in registers. */
    const bool vlanes = a->batch && a->hdv % 4 == 0;
    if (vlanes) {
        /* one accumulator per dim, a serial FMA chain over the groups: four
         * dims side by side, the probabilities converted once for the four */
        for (int32_t d = 0; d < a->hdv; d += 4) {
            const cst_f16 *v0 = a->v + (size_t)d * a->v_stride, *v1 = v0 + a->v_stride, *v2 = v1 + a->v_stride,
                          *v3 = v2 + a->v_stride;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int32_t g = g0; g <= g1; g++) {
                const __mmask16 m_ = g > g0 && g < g1 ? (__mmask16)0xFFFF : group_mask(g, p0, p1);
                const __m512 pg = LOADHM(m_, a->p16 + g * 16);
                a0 = _mm512_fmadd_ps(LOADHM(m_, v0 + g * 16), pg, a0);
                a1 = _mm512_fmadd_ps(LOADHM(m_, v1 + g * 16), pg, a1);
                a2 = _mm512_fmadd_ps(LOADHM(m_, v2 + g * 16), pg, a2);
                a3 = _mm512_fmadd_ps(LOADHM(m_, v3 + g * 16), pg, a3);
            }
            a->out[d] = _mm512_reduce_add_ps(a0);
            a->out[d + 1] = _mm512_reduce_add_ps(a1);
            a->out[d + 2] = _mm512_reduce_add_ps(a2);
            a->out[d + 3] = _mm512_reduce_add_ps(a3);
        }
        return;
    }
#define PV_STEP(acc, g)                                                                          \
    do {                                                                                         \
        const __mmask16 m_ = (g) > g0 && (g) < g1 ? (__mmask16)0xFFFF : group_mask((g), p0, p1); \
        acc = _mm512_fmadd_ps(LOADHM(m_, v + (g) * 16), LOADHM(m_, a->p16 + (g) * 16), acc);     \
    } while (0)
    for (int32_t d = 0; d < a->hdv; d++) {
        const cst_f16 *v = a->v + (size_t)d * a->v_stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        {
            int32_t g = g0;
            for (; g <= g1 && (g & 3); g++) {
                if ((g & 3) == 1) PV_STEP(a1, g);
                else if ((g & 3) == 2) PV_STEP(a2, g);
                else PV_STEP(a3, g);
            }
            for (; g + 3 <= g1; g += 4) {
                PV_STEP(a0, g);
                PV_STEP(a1, g + 1);
                PV_STEP(a2, g + 2);
                PV_STEP(a3, g + 3);
            }
            for (; g <= g1; g++) {
                if ((g & 3) == 0) PV_STEP(a0, g);
                else if ((g & 3) == 1) PV_STEP(a1, g);
                else PV_STEP(a2, g);
            }
            a0 = _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3));
        }
        a->out[d] = _mm512_reduce_add_ps(a0);
    }
#undef PV_STEP
}
#undef LOADH
#undef LOADHM

/* ---- AVX2 ---------------------------------------------------------------------
 * The scalar twin's 16-lane accumulators as pairs of 8-lane registers (same
 * lanes, same FMAs, same reduce16 tree), so the bits are the ref's; the
 * softmax and SwiGLU use exp8_avx2, exp_lane on 8 lanes. */
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define LOADH8(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))

/* reduce16 of the 16 lanes (lo, hi) */
AVX2 static inline float reduce16_avx2(__m256 lo, __m256 hi) {
    const __m256 t8 = _mm256_add_ps(lo, hi);                                           /* i, i+8 */
    const __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1)); /* i, i+4 */
    const __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));                           /* 0+2, 1+3 */
    return _mm_cvtss_f32(_mm_add_ss(t2, _mm_movehdup_ps(t2)));
}

/* dot_f16_ref with the second row already widened to f32 (exact), so that
 * a query converted once serves every key */
AVX2 static float dot_f16_f32_avx2(const cst_f16 *x, const float *y, int n, bool lanes) {
    if (lanes) { /* n % 16 == 0 */
        __m256 lo = _mm256_setzero_ps(), hi = lo;
        for (int i = 0; i < n; i += 16) {
            lo = _mm256_fmadd_ps(LOADH8(x + i), _mm256_loadu_ps(y + i), lo);
            hi = _mm256_fmadd_ps(LOADH8(x + i + 8), _mm256_loadu_ps(y + i + 8), hi);
        }
        return reduce16_avx2(lo, hi);
    }
    const int np = n & ~63;
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (int i = 0; i < np; i += 64)
        for (int k = 0; k < 8; k++) a[k] = _mm256_fmadd_ps(LOADH8(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), a[k]);
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
    double sum = reduce16_avx2(lo, hi);
    for (int i = np; i < n; i++) sum += (double)(cst_f16_to_f32(x[i]) * y[i]);
    return (float)sum;
}

/* exp_lane on 8 lanes, same FMAs; ldexpf(j, n) as j * 2^n in double (exact)
 * rounded once to float, which is ldexpf's (and vscalefps's) rounding, also
 * for subnormal results */
AVX2 static inline __m256 exp8_avx2(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(an, _mm256_set1_ps(192), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    /* n is integral; lanes with |n| > 192 (or infinite) are replaced below */
    const __m256i ni = _mm256_cvtps_epi32(_mm256_andnot_ps(big, n));
    const __m256i bias = _mm256_set1_epi64x(1023);
    const __m256d plo = _mm256_castsi256_pd(
        _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(ni)), bias), 52));
    const __m256d phi = _mm256_castsi256_pd(
        _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(ni, 1)), bias), 52));
    const __m128 rlo = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(j)), plo));
    const __m128 rhi = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(j, 1)), phi));
    const __m256 res = _mm256_set_m128(rhi, rlo);
    if (!_mm256_movemask_ps(big)) return res;
    const __m256 neg = _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ);
    const __m256 alt = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), _mm256_setzero_ps(), neg);
    return _mm256_blendv_ps(res, alt, big);
}

AVX2 static void swiglu_avx2(float *y, const float *g, const float *u, int64_t n) {
    const int64_t nv = n & ~(int64_t)15; /* the ref's vector part: 16-lane steps */
    int64_t i = 0;
    for (; i < nv; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = exp8_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x));
        const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) y[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

/* lanes of positions q..q+7 inside [p0, p1], as an all-ones/zero int mask */
AVX2 static inline __m256i lane_mask8(int32_t q, int32_t p0, int32_t p1) {
    const __m256i pos = _mm256_add_epi32(_mm256_set1_epi32(q), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i ge = _mm256_cmpgt_epi32(pos, _mm256_set1_epi32(p0 - 1));
    const __m256i le = _mm256_cmpgt_epi32(_mm256_set1_epi32(p1 + 1), pos);
    return _mm256_and_si256(ge, le);
}

/* softmax_p16_ref on 16-position groups as pairs of 8-lane registers: the
 * same exp per lane, zero outside [p0, p1], the same reduce16 per group */
AVX2 static void softmax_p16_avx2(const cst_attn_head *a, float mx) {
    const int32_t p0 = a->p0, p1 = a->p1, g0 = p0 >> 4, g1 = p1 >> 4;
    float *s = a->scores;
    const __m256 vmx = _mm256_set1_ps(mx);
    double sum = 0.0;
    for (int32_t g = g0; g <= g1; g++) {
        float *sg = s + g * 16;
        __m256 e[2];
        if (g * 16 >= p0 && g * 16 + 15 <= p1) {
            for (int h = 0; h < 2; h++) {
                e[h] = exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(sg + 8 * h), vmx));
                _mm256_storeu_ps(sg + 8 * h, e[h]);
            }
        } else {
            for (int h = 0; h < 2; h++) {
                const __m256i m = lane_mask8(g * 16 + 8 * h, p0, p1);
                const __m256 x = _mm256_sub_ps(_mm256_maskload_ps(sg + 8 * h, m), vmx);
                e[h] = _mm256_and_ps(exp8_avx2(x), _mm256_castsi256_ps(m));
                _mm256_maskstore_ps(sg + 8 * h, m, e[h]);
            }
        }
        sum += (double)reduce16_avx2(e[0], e[1]);
    }
    const float inv = (float)(1.0 / sum);
    const __m256 vinv = _mm256_set1_ps(inv);
    int32_t p = p0;
    for (; p <= p1 && (p & 7); p++) a->p16[p] = cst_f32_to_f16(s[p] * inv);
    for (; p + 7 <= p1; p += 8)
        _mm_storeu_si128((__m128i *)(a->p16 + p),
                         _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(s + p), vinv), _MM_FROUND_TO_NEAREST_INT));
    for (; p <= p1; p++) a->p16[p] = cst_f32_to_f16(s[p] * inv);
}

/* The scores are not needed after the softmax: they take the f16
 * probabilities widened back to f32 (exact), for P*V to read */
AVX2 static void widen_p16_avx2(const cst_attn_head *a) {
    float *s = a->scores;
    int32_t p = a->p0;
    for (; p <= a->p1 && (p & 7); p++) s[p] = cst_f16_to_f32(a->p16[p]);
    for (; p + 7 <= a->p1; p += 8) _mm256_storeu_ps(s + p, LOADH8(a->p16 + p));
    for (; p <= a->p1; p++) s[p] = cst_f16_to_f32(a->p16[p]);
}

/* The query and the probabilities are rounded to f16 as in the twin, then
 * widened back to f32 once (exact) instead of once per key / per V row. */
#define QF_MAX 512
AVX2 static void attn_head_avx2(const cst_attn_head *a) {
    const int32_t p0 = a->p0, p1 = a->p1;
    float *s = a->scores;
    cst_fp32_to_fp16_row(a->q, a->q16, a->hd);
    float qf[QF_MAX];
    if (a->hd <= QF_MAX) cst_fp16_to_fp32_row(a->q16, qf, a->hd);
    const bool klanes = a->batch && a->hd % 16 == 0;
    float mx = -INFINITY;
    for (int32_t p = p0; p <= p1; p++) {
        const cst_f16 *k = a->k + (size_t)p * a->k_stride;
        s[p] = (a->hd <= QF_MAX ? dot_f16_f32_avx2(k, qf, a->hd, klanes) : dot_f16_ref(k, a->q16, a->hd, klanes)) *
               a->scale;
        if (s[p] > mx) mx = s[p];
    }
    softmax_p16_avx2(a, mx);
    widen_p16_avx2(a);
    const float *pf = s;
    /* P*V: lane p & 15 of accumulator (p >> 4) & 3 (one accumulator in the
     * batch order); partial groups lane by lane, whole groups 16 at a time */
    const bool vlanes = a->batch && a->hdv % 4 == 0;
    const int32_t gf = (p0 + 15) >> 4, gl = (p1 + 1) >> 4; /* whole groups gf..gl-1 */
    const int32_t pe = gf < gl ? gf * 16 - 1 : p1;          /* no whole group: all lane by lane */
    if (vlanes) {
        /* one accumulator per dim (a serial FMA chain over the groups): four
         * dims at a time, so that four chains run side by side and the
         * probabilities are loaded once for the four */
        for (int32_t d = 0; d < a->hdv; d += 4) {
            const cst_f16 *v[4];
            float acc[4][16] = {{0}};
            for (int k = 0; k < 4; k++) {
                v[k] = a->v + (size_t)(d + k) * a->v_stride;
                for (int32_t p = p0; p <= pe; p++) acc[k][p & 15] = fmaf(cst_f16_to_f32(v[k][p]), pf[p], acc[k][p & 15]);
            }
            if (gf < gl) {
                __m256 r0 = _mm256_loadu_ps(acc[0]), r1 = _mm256_loadu_ps(acc[0] + 8);
                __m256 r2 = _mm256_loadu_ps(acc[1]), r3 = _mm256_loadu_ps(acc[1] + 8);
                __m256 r4 = _mm256_loadu_ps(acc[2]), r5 = _mm256_loadu_ps(acc[2] + 8);
                __m256 r6 = _mm256_loadu_ps(acc[3]), r7 = _mm256_loadu_ps(acc[3] + 8);
                for (int32_t g = gf; g < gl; g++) {
                    const __m256 pl = _mm256_loadu_ps(pf + g * 16), ph = _mm256_loadu_ps(pf + g * 16 + 8);
                    r0 = _mm256_fmadd_ps(LOADH8(v[0] + g * 16), pl, r0);
                    r1 = _mm256_fmadd_ps(LOADH8(v[0] + g * 16 + 8), ph, r1);
                    r2 = _mm256_fmadd_ps(LOADH8(v[1] + g * 16), pl, r2);
                    r3 = _mm256_fmadd_ps(LOADH8(v[1] + g * 16 + 8), ph, r3);
                    r4 = _mm256_fmadd_ps(LOADH8(v[2] + g * 16), pl, r4);
                    r5 = _mm256_fmadd_ps(LOADH8(v[2] + g * 16 + 8), ph, r5);
                    r6 = _mm256_fmadd_ps(LOADH8(v[3] + g * 16), pl, r6);
                    r7 = _mm256_fmadd_ps(LOADH8(v[3] + g * 16 + 8), ph, r7);
                }
                _mm256_storeu_ps(acc[0], r0), _mm256_storeu_ps(acc[0] + 8, r1);
                _mm256_storeu_ps(acc[1], r2), _mm256_storeu_ps(acc[1] + 8, r3);
                _mm256_storeu_ps(acc[2], r4), _mm256_storeu_ps(acc[2] + 8, r5);
                _mm256_storeu_ps(acc[3], r6), _mm256_storeu_ps(acc[3] + 8, r7);
                for (int k = 0; k < 4; k++)
                    for (int32_t p = CST_MAX(p0, gl * 16); p <= p1; p++)
                        acc[k][p & 15] = fmaf(cst_f16_to_f32(v[k][p]), pf[p], acc[k][p & 15]);
            }
            for (int k = 0; k < 4; k++) a->out[d + k] = reduce16(acc[k]);
        }
        return;
    }
    for (int32_t d = 0; d < a->hdv; d++) {
        const cst_f16 *v = a->v + (size_t)d * a->v_stride;
        float acc[4][16] = {{0}};
        for (int32_t p = p0; p <= pe; p++) {
            float *c = &acc[(p >> 4) & 3][p & 15];
            *c = fmaf(cst_f16_to_f32(v[p]), pf[p], *c);
        }
        if (gf < gl) {
            __m256 r[8];
            for (int k = 0; k < 4; k++) {
                r[2 * k] = _mm256_loadu_ps(acc[k]);
                r[2 * k + 1] = _mm256_loadu_ps(acc[k] + 8);
            }
            for (int32_t g = gf; g < gl; g++) {
                const __m256 vl = LOADH8(v + g * 16), vh = LOADH8(v + g * 16 + 8);
                const __m256 pl = _mm256_loadu_ps(pf + g * 16), ph = _mm256_loadu_ps(pf + g * 16 + 8);
                switch (g & 3) { /* named registers, never indexed at run time */
                case 0: r[0] = _mm256_fmadd_ps(vl, pl, r[0]), r[1] = _mm256_fmadd_ps(vh, ph, r[1]); break;
                case 1: r[2] = _mm256_fmadd_ps(vl, pl, r[2]), r[3] = _mm256_fmadd_ps(vh, ph, r[3]); break;
                case 2: r[4] = _mm256_fmadd_ps(vl, pl, r[4]), r[5] = _mm256_fmadd_ps(vh, ph, r[5]); break;
                default: r[6] = _mm256_fmadd_ps(vl, pl, r[6]), r[7] = _mm256_fmadd_ps(vh, ph, r[7]); break;
                }
            }
            for (int k = 0; k < 4; k++) {
                _mm256_storeu_ps(acc[k], r[2 * k]);
                _mm256_storeu_ps(acc[k] + 8, r[2 * k + 1]);
            }
            for (int32_t p = CST_MAX(p0, gl * 16); p <= p1; p++) {
                float *c = &acc[(p >> 4) & 3][p & 15];
                *c = fmaf(cst_f16_to_f32(v[p]), pf[p], *c);
            }
        }
        for (int l = 0; l < 16; l++) acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        a->out[d] = reduce16(acc[0]);
    }
}

/* ---- AVX2 tile: up to CST_ATTN_TILE queries sharing K and V (batch order) ----
 * Each query's scores, softmax and P*V are the single-query head's, lane for
 * lane and FMA for FMA; only the loop nest differs: every K row and V group
 * is widened from f16 once and used by all the tile's queries, and the 16-lane
 * sums (reduce16) of 8 keys or 8 dims are done together by transposing adds
 * that pair the same lanes as reduce16. */

/* reduce16 of 8 (lo + hi) vectors t[0..7] (the tree's first add done):
 * [reduce16 of t[0], ..., of t[7]]. Each add pairs what reduce16 pairs:
 * (i, i+4), then (0+2, 1+3) of those, then their two halves. */
AVX2 static inline __m256 reduce16_x8_avx2(const __m256 *t) {
    __m256 f[4];
    for (int k = 0; k < 4; k++) /* [t[2k] i + (i+4) | t[2k+1] i + (i+4)], i < 4 */
        f[k] = _mm256_add_ps(_mm256_permute2f128_ps(t[2 * k], t[2 * k + 1], 0x20),
                             _mm256_permute2f128_ps(t[2 * k], t[2 * k + 1], 0x31));
    /* [u 0+2, u 1+3, w 0+2, w 1+3 | ...] for u, w = t[0], t[2] (t[1], t[3] above) */
    const __m256 g0 = _mm256_add_ps(_mm256_shuffle_ps(f[0], f[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm256_shuffle_ps(f[0], f[1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 g1 = _mm256_add_ps(_mm256_shuffle_ps(f[2], f[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm256_shuffle_ps(f[2], f[3], _MM_SHUFFLE(3, 2, 3, 2)));
    /* [r0, r2, r4, r6 | r1, r3, r5, r7] */
    const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(g0, g1, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(g0, g1, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* QK^T of the tile's queries (lanes order, hd % 16 == 0) for keys P0..P1,
 * scaled; mx[i]: the maximum over query i's own range (as the head's loop:
 * NaN scores never taken). Scores outside a query's range are written but
 * never read. */
#define AVX2_INLINE AVX2 static inline __attribute__((always_inline))
AVX2_INLINE void tile_scores_avx2(const cst_attn_head *a, const int n, const float (*qf)[QF_MAX], int32_t P0, int32_t P1,
                                  float *mx) {
    const int hd = a[0].hd;
    const __m256 vscale = _mm256_set1_ps(a[0].scale);
    __m256 vmx[CST_ATTN_TILE];
    __m256 t8[CST_ATTN_TILE][8];
    for (int i = 0; i < n; i++) vmx[i] = _mm256_set1_ps(-INFINITY);
    for (int32_t pb = P0; pb <= P1; pb += 8) {
        const int nk = CST_MIN(8, P1 - pb + 1);
        for (int kk = 0; kk < nk; kk++) {
            const cst_f16 *k = a[0].k + (size_t)(pb + kk) * a[0].k_stride;
            __m256 lo[CST_ATTN_TILE], hi[CST_ATTN_TILE];
#pragma GCC unroll 4
            for (int i = 0; i < CST_ATTN_TILE; i++) lo[i] = hi[i] = _mm256_setzero_ps();
            for (int e = 0; e < hd; e += 16) {
                const __m256 kl = LOADH8(k + e), kh = LOADH8(k + e + 8);
#pragma GCC unroll 4
                for (int i = 0; i < n; i++) {
                    lo[i] = _mm256_fmadd_ps(kl, _mm256_loadu_ps(qf[i] + e), lo[i]);
                    hi[i] = _mm256_fmadd_ps(kh, _mm256_loadu_ps(qf[i] + e + 8), hi[i]);
                }
            }
#pragma GCC unroll 4
            for (int i = 0; i < n; i++) t8[i][kk] = _mm256_add_ps(lo[i], hi[i]);
        }
        for (int i = 0; i < n; i++) {
            for (int kk = nk; kk < 8; kk++) t8[i][kk] = _mm256_setzero_ps();
            const __m256 sc = _mm256_mul_ps(reduce16_x8_avx2(t8[i]), vscale);
            float *si = a[i].scores + pb;
            const __m256i m = lane_mask8(pb, a[i].p0, a[i].p1);
            if (nk == 8) _mm256_storeu_ps(si, sc);
            else _mm256_maskstore_ps(si, lane_mask8(pb, pb, P1), sc);
            /* max_ps(x, m) is m where x is NaN; lanes outside the range are -inf */
            vmx[i] = _mm256_max_ps(_mm256_blendv_ps(_mm256_set1_ps(-INFINITY), sc, _mm256_castsi256_ps(m)), vmx[i]);
        }
    }
    for (int i = 0; i < n; i++) {
        float l[8];
        _mm256_storeu_ps(l, vmx[i]);
        float v = -INFINITY;
        for (int k = 0; k < 8; k++) v = l[k] > v ? l[k] : v;
        mx[i] = v;
    }
}

/* lanes of V group g of dim row v for the tile: straight from the row when
 * the group lies inside it (v_stride positions), else the positions up to
 * pmax copied into a zeroed group */
AVX2 static inline void v_group(const cst_f16 *v, int32_t g, int32_t pmax, size_t v_stride, __m256 *lo, __m256 *hi) {
    if ((size_t)g * 16 + 16 <= v_stride) {
        *lo = LOADH8(v + g * 16), *hi = LOADH8(v + g * 16 + 8);
        return;
    }
    cst_f16 tmp[16] = {0};
    for (int32_t p = g * 16; p <= pmax && p < g * 16 + 16; p++) tmp[p - g * 16] = v[p];
    *lo = LOADH8(tmp), *hi = LOADH8(tmp + 8);
}

/* n: a constant in each caller (attn_tile_avx2), so that the per-query
 * accumulators are named registers */
AVX2_INLINE void attn_tile_n_avx2(const cst_attn_head *a, const int n) {
    float qf[CST_ATTN_TILE][QF_MAX];
    int32_t P0 = a[0].p0, P1 = a[0].p1;
    for (int i = 0; i < n; i++) {
        cst_fp32_to_fp16_row(a[i].q, a[i].q16, a[i].hd);
        cst_fp16_to_fp32_row(a[i].q16, qf[i], a[i].hd);
        P0 = CST_MIN(P0, a[i].p0), P1 = CST_MAX(P1, a[i].p1);
    }
    float mx[CST_ATTN_TILE];
    tile_scores_avx2(a, n, (const float(*)[QF_MAX])qf, P0, P1, mx);
    for (int i = 0; i < n; i++) {
        softmax_p16_avx2(&a[i], mx[i]);
        widen_p16_avx2(&a[i]);
    }
    /* P*V, one accumulator per (query, dim) (the batch order): lane p & 15,
     * the groups in order. Groups G0..G1-1 lie inside every query's range;
     * the others go through lane masks (a lane outside a query's range keeps
     * its value, as if the FMA had not run). */
    int32_t G0 = 0, G1 = INT32_MAX;
    for (int i = 0; i < n; i++) G0 = CST_MAX(G0, (a[i].p0 + 15) >> 4), G1 = CST_MIN(G1, (a[i].p1 + 1) >> 4);
    const int32_t g_lo = P0 >> 4, g_hi = P1 >> 4, G1e = CST_MAX(G0, G1);
    __m256 t8[CST_ATTN_TILE][8];
    for (int32_t d = 0; d < a[0].hdv; d++) {
        const cst_f16 *v = a[0].v + (size_t)d * a[0].v_stride;
        __m256 lo[CST_ATTN_TILE], hi[CST_ATTN_TILE];
#pragma GCC unroll 4
        for (int i = 0; i < CST_ATTN_TILE; i++) lo[i] = hi[i] = _mm256_setzero_ps();
#define PV_MASKED(g)                                                                                   \
    do {                                                                                               \
        __m256 vl_, vh_;                                                                               \
        v_group(v, (g), P1, a[0].v_stride, &vl_, &vh_);                                                \
        for (int i = 0; i < n; i++) {                                                                  \
            const __m256i ml_ = lane_mask8((g) * 16, a[i].p0, a[i].p1),                                \
                          mh_ = lane_mask8((g) * 16 + 8, a[i].p0, a[i].p1);                            \
            const float *pf_ = a[i].scores + (g) * 16;                                                 \
            lo[i] = _mm256_blendv_ps(lo[i], _mm256_fmadd_ps(vl_, _mm256_maskload_ps(pf_, ml_), lo[i]),   \
                                     _mm256_castsi256_ps(ml_));                                        \
            hi[i] = _mm256_blendv_ps(hi[i], _mm256_fmadd_ps(vh_, _mm256_maskload_ps(pf_ + 8, mh_), hi[i]), \
                                     _mm256_castsi256_ps(mh_));                                        \
        }                                                                                              \
    } while (0)
        for (int32_t g = g_lo; g < G0 && g <= g_hi; g++) PV_MASKED(g);
        for (int32_t g = G0; g < G1; g++) {
            const __m256 vl = LOADH8(v + g * 16), vh = LOADH8(v + g * 16 + 8);
#pragma GCC unroll 4
            for (int i = 0; i < n; i++) {
                lo[i] = _mm256_fmadd_ps(vl, _mm256_loadu_ps(a[i].scores + g * 16), lo[i]);
                hi[i] = _mm256_fmadd_ps(vh, _mm256_loadu_ps(a[i].scores + g * 16 + 8), hi[i]);
            }
        }
        for (int32_t g = CST_MAX(G1e, g_lo); g <= g_hi; g++) PV_MASKED(g);
#undef PV_MASKED
#pragma GCC unroll 4
        for (int i = 0; i < n; i++) t8[i][d & 7] = _mm256_add_ps(lo[i], hi[i]);
        if ((d & 7) == 7)
            for (int i = 0; i < n; i++) _mm256_storeu_ps(a[i].out + d - 7, reduce16_x8_avx2(t8[i]));
    }
}

AVX2 static void attn_tile_avx2(const cst_attn_head *a, int n) {
    _Static_assert(CST_ATTN_TILE == 4, "attn_tile_avx2 has a case per tile size");
    switch (n) {
    case 2: attn_tile_n_avx2(a, 2); break;
    case 3: attn_tile_n_avx2(a, 3); break;
    default: attn_tile_n_avx2(a, CST_ATTN_TILE); break;
    }
}
#undef AVX2_INLINE

/* the tile path's conditions: the batch order with whole 16-lane QK steps, 8-dim groups */
static bool tile_ok(const cst_attn_head *a) {
    return a->batch && a->hd % 16 == 0 && a->hd <= QF_MAX && a->hdv % 8 == 0;
}
#undef LOADH8

/* The AVX-512 path is taken when the kernels run AVX-512 (CPUID checked there). */
static bool have_avx512(void) { return cst_kernels_isa() == CST_ISA_AVX512; }
#endif

/* ---- NEON (aarch64) -----------------------------------------------------------
 * As the AVX2 head: the twin's 16-lane accumulators as four 4-lane registers
 * (FCVTL widening is exact), the same FMAs per lane and the same reduce16
 * tree, so the bits are the scalar twin's; the softmax is the twin's. Used
 * by every ARM ISA level (NEON is their common base). */
#ifdef CST_NEON
#define LDH4(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(p))))

/* reduce16 of lanes (v0 = 0-3, v1 = 4-7, v2 = 8-11, v3 = 12-15) */
static inline float reduce16_neon(float32x4_t v0, float32x4_t v1, float32x4_t v2, float32x4_t v3) {
    const float32x4_t q = vaddq_f32(vaddq_f32(v0, v2), vaddq_f32(v1, v3));
    const float32x2_t p = vadd_f32(vget_low_f32(q), vget_high_f32(q));
    return vget_lane_f32(p, 0) + vget_lane_f32(p, 1);
}

static float dot_f16_neon(const cst_f16 *x, const cst_f16 *y, int n, bool lanes) {
    if (lanes) { /* n % 16 == 0 */
        float32x4_t c0 = vdupq_n_f32(0.0f), c1 = c0, c2 = c0, c3 = c0;
        for (int i = 0; i < n; i += 16) {
            c0 = vfmaq_f32(c0, LDH4(x + i), LDH4(y + i));
            c1 = vfmaq_f32(c1, LDH4(x + i + 4), LDH4(y + i + 4));
            c2 = vfmaq_f32(c2, LDH4(x + i + 8), LDH4(y + i + 8));
            c3 = vfmaq_f32(c3, LDH4(x + i + 12), LDH4(y + i + 12));
        }
        return reduce16_neon(c0, c1, c2, c3);
    }
    const int np = n & ~63;
    float32x4_t c[16]; /* accumulator j, quad q: c[4j + q] */
    for (int k = 0; k < 16; k++) c[k] = vdupq_n_f32(0.0f);
    for (int i = 0; i < np; i += 64)
        for (int k = 0; k < 16; k++) c[k] = vfmaq_f32(c[k], LDH4(x + i + 4 * k), LDH4(y + i + 4 * k));
    float32x4_t r[4];
    for (int q = 0; q < 4; q++) r[q] = vaddq_f32(vaddq_f32(c[q], c[8 + q]), vaddq_f32(c[4 + q], c[12 + q]));
    double sum = reduce16_neon(r[0], r[1], r[2], r[3]);
    for (int i = np; i < n; i++) sum += (double)(cst_f16_to_f32(x[i]) * cst_f16_to_f32(y[i]));
    return (float)sum;
}

static void attn_head_neon(const cst_attn_head *a) {
    const int32_t p0 = a->p0, p1 = a->p1;
    float *s = a->scores;
    cst_fp32_to_fp16_row(a->q, a->q16, a->hd);
    const bool klanes = a->batch && a->hd % 16 == 0;
    float mx = -INFINITY;
    for (int32_t p = p0; p <= p1; p++) {
        s[p] = dot_f16_neon(a->k + (size_t)p * a->k_stride, a->q16, a->hd, klanes) * a->scale;
        if (s[p] > mx) mx = s[p];
    }
    softmax_p16_ref(a, mx);
    /* P*V: lane p & 15 of accumulator (p >> 4) & 3 (one accumulator in the
     * batch order); partial groups lane by lane, whole groups 16 at a time */
    const bool vlanes = a->batch && a->hdv % 4 == 0;
    const int32_t gf = (p0 + 15) >> 4, gl = (p1 + 1) >> 4; /* whole groups gf..gl-1 */
    for (int32_t d = 0; d < a->hdv; d++) {
        const cst_f16 *v = a->v + (size_t)d * a->v_stride;
        float acc[4][16] = {{0}};
        const int32_t pe = gf < gl ? gf * 16 - 1 : p1; /* no whole group: all lane by lane */
        for (int32_t p = p0; p <= pe; p++) {
            float *c = vlanes ? &acc[0][p & 15] : &acc[(p >> 4) & 3][p & 15];
            *c = fmaf(cst_f16_to_f32(v[p]), cst_f16_to_f32(a->p16[p]), *c);
        }
        if (gf < gl) {
            float32x4_t r[16]; /* accumulator k, quad q: r[4k + q] */
            for (int k = 0; k < 16; k++) r[k] = vld1q_f32(&acc[k >> 2][4 * (k & 3)]);
            for (int32_t g = gf; g < gl; g++) {
                const int k = vlanes ? 0 : (g & 3);
                const cst_f16 *vg = v + g * 16, *pg = a->p16 + g * 16;
#define PV4(b)                                                                    \
    do {                                                                          \
        r[b] = vfmaq_f32(r[b], LDH4(vg), LDH4(pg));                               \
        r[b + 1] = vfmaq_f32(r[b + 1], LDH4(vg + 4), LDH4(pg + 4));               \
        r[b + 2] = vfmaq_f32(r[b + 2], LDH4(vg + 8), LDH4(pg + 8));               \
        r[b + 3] = vfmaq_f32(r[b + 3], LDH4(vg + 12), LDH4(pg + 12));             \
    } while (0)
                switch (k) { /* named registers, never indexed at run time */
                case 0: PV4(0); break;
                case 1: PV4(4); break;
                case 2: PV4(8); break;
                default: PV4(12); break;
                }
#undef PV4
            }
            for (int k = 0; k < 16; k++) vst1q_f32(&acc[k >> 2][4 * (k & 3)], r[k]);
            for (int32_t p = CST_MAX(p0, gl * 16); p <= p1; p++) {
                float *c = vlanes ? &acc[0][p & 15] : &acc[(p >> 4) & 3][p & 15];
                *c = fmaf(cst_f16_to_f32(v[p]), cst_f16_to_f32(a->p16[p]), *c);
            }
        }
        if (!vlanes)
            for (int l = 0; l < 16; l++) acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        a->out[d] = reduce16(acc[0]);
    }
}
#undef LDH4
#endif

/* ---- public ------------------------------------------------------------------ */
void cst_swiglu(float *y, const float *g, const float *u, int64_t n) {
#ifdef CST_X86
    if (have_avx512()) {
        swiglu_avx512(y, g, u, n);
        return;
    }
    if (cst_kernels_isa() == CST_ISA_AVX2) {
        swiglu_avx2(y, g, u, n);
        return;
    }
#endif
    swiglu_ref(y, g, u, n);
}

void cst_attn_heads_run(const cst_attn_head *a, int n) {
#ifdef CST_X86
    if (n > 1 && !have_avx512() && cst_kernels_isa() == CST_ISA_AVX2 && tile_ok(a)) {
        attn_tile_avx2(a, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) cst_attn_head_run(&a[i]);
}

void cst_attn_head_run(const cst_attn_head *a) {
#ifdef CST_X86
    if (have_avx512()) {
        attn_head_avx512(a);
        return;
    }
    if (cst_kernels_isa() == CST_ISA_AVX2) {
        attn_head_avx2(a);
        return;
    }
#endif
#ifdef CST_NEON
    const cst_isa isa = cst_kernels_isa();
    if (isa == CST_ISA_NEON || isa == CST_ISA_DOTPROD || isa == CST_ISA_I8MM) {
        attn_head_neon(a);
        return;
    }
#endif
    attn_head_ref(a);
}
