/* kernels_neon.c: aarch64 Advanced SIMD (NEON) kernels, the base level every
 * aarch64 CPU has: activation quantizers (Q8_0, Q8_K), F32/F16/BF16 dots and
 * the F32/F16 4x4 tiles, f16 row conversions, and (neon_int.h) the integer
 * dots of Q8_0, Q4_0, Q4_K, Q5_K, Q6_K with the 4-byte dot emulated by
 * SMULL + pairwise adds. Every kernel except the BF16 dot reproduces its ref
 * twin bit for bit: the same integer sums, the same float operations in the
 * same order (the 16-lane accumulators of the ref's F32/F16 orders are four
 * float32x4 registers). Built on aarch64 only (empty elsewhere).
 */
#if defined(__aarch64__)
#include "../kernels_int.h"

#include <arm_neon.h>
#include <math.h>

/* ---- 4-byte dot without SDOT ---- */
static inline int32x4_t dot4_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
    const int32x4_t pl = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    const int32x4_t ph = vpaddlq_s16(vmull_high_s8(a, b));
    return vaddq_s32(acc, vpaddq_s32(pl, ph));
}
#define CST_DOT4(acc, a, b) dot4_neon(acc, a, b)
#define CST_SFX(name) name##_neon
#include "neon_int.h"
#undef CST_DOT4
#undef CST_SFX

/* ---- activation quantizers ---- */

/* cst_from_float_q8_0_ref: d = amax/127 as f16, multiplier 127/amax, round
 * half to even (FCVTNS equals cst_nearest_int below 2^22; |x * id| <= 127) */
static void from_float_q8_0_neon(const float *x, void *vy, int64_t n) {
    block_q8_0 *y = vy;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++, x += QK8_0) {
        float32x4_t v[8];
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(x + 4 * k);
            m = vmaxnmq_f32(m, vabsq_f32(v[k])); /* NaNs ignored, as the ref's a > amax */
        }
        const float amax = vmaxnmvq_f32(m);
        const float d = amax / 127.f;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        y[i].d = cst_f32_to_f16(d);
        for (int k = 0; k < 8; k += 2) {
            const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[k], id));
            const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(v[k + 1], id));
            const int16x8_t h = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
            vst1_s8(y[i].qs + 4 * k, vqmovn_s16(h));
        }
    }
}

/* cst_from_float_q8_K_ref: scale from the first element of largest
 * magnitude, -127/max, clamp at 127, 16-element group sums */
static void from_float_q8_K_neon(const float *x, void *vy, int64_t n) {
    block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int k = 0; k < QK_K; k += 4) m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(x + k)));
        const float amax = vmaxnmvq_f32(m);
        if (!(amax > 0.0f)) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        float max = 0.0f;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) == amax) {
                max = x[j];
                break;
            }
        const float iscale = -127.f / max;
        const int32x4_t c127 = vdupq_n_s32(127);
        for (int g = 0; g < QK_K / 16; g++) {
            int32x4_t q[4];
            for (int k = 0; k < 4; k++)
                q[k] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 4 * k), iscale)), c127);
            const int16x8_t h0 = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
            const int16x8_t h1 = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
            const int8x16_t b = vcombine_s8(vqmovn_s16(h0), vqmovn_s16(h1));
            vst1q_s8(y[i].qs + 16 * g, b);
            y[i].bsums[g] = (int16_t)vaddlvq_s8(b);
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- float types ---- */

static inline float32x4_t ld_f16(const cst_f16 *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline float32x4_t ld_f32(const float *p) { return vld1q_f32(p); }

/* cst_reduce16_ref of 16 lanes held as 4 quads (lanes 0-3, 4-7, 8-11, 12-15) */
static inline float reduce16_neon(float32x4_t v0, float32x4_t v1, float32x4_t v2, float32x4_t v3) {
    const float32x4_t q = vaddq_f32(vaddq_f32(v0, v2), vaddq_f32(v1, v3)); /* h[k] + h[k+4] */
    const float32x2_t p = vadd_f32(vget_low_f32(q), vget_high_f32(q));     /* q0+q2, q1+q3 */
    return vget_lane_f32(p, 0) + vget_lane_f32(p, 1);
}

/* ggml_vec_dot_f32/f16's AVX-512 order (ref_float.c dot64): 4 x 16 lanes
 * over 64-element steps, (a0+a2)+(a1+a3) per lane, reduce16 */
#define DOT64(NAME, ET, LD)                                                                   \
    static float NAME(int np, const ET *x, const ET *y) {                                    \
        float32x4_t a[16];                                                                    \
        for (int k = 0; k < 16; k++) a[k] = vdupq_n_f32(0.0f);                                \
        for (int i = 0; i < np; i += 64)                                                      \
            for (int k = 0; k < 16; k++) a[k] = vfmaq_f32(a[k], LD(x + i + 4 * k), LD(y + i + 4 * k)); \
        float32x4_t c[4];                                                                     \
        for (int q = 0; q < 4; q++) /* accumulator j holds quads 4j..4j+3 */                 \
            c[q] = vaddq_f32(vaddq_f32(a[q], a[8 + q]), vaddq_f32(a[4 + q], a[12 + q]));      \
        return reduce16_neon(c[0], c[1], c[2], c[3]);                                         \
    }
DOT64(dot64_f32_neon, float, ld_f32)
DOT64(dot64_f16_neon, cst_f16, ld_f16)

static void vec_dot_f32_neon(int n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    const int np = n & ~63;
    float sum = dot64_f32_neon(np, x, y);
    for (int i = np; i < n; i++) sum = fmaf(x[i], y[i], sum);
    *s = sum;
}

static void vec_dot_f16_neon(int n, float *s, const void *vx, const void *vy) {
    const cst_f16 *x = vx, *y = vy;
    const int np = n & ~63;
    double sum = dot64_f16_neon(np, x, y);
    for (int i = np; i < n; i++) sum += (double)(cst_f16_to_f32(x[i]) * cst_f16_to_f32(y[i]));
    *s = (float)sum;
}

/* tinyBLAS order (cst_tile_f32_ref): one 16-lane accumulator per output over
 * steps of 16, a partial last step lane by lane, reduce16. One token at a
 * time against the 4 rows: 16 accumulator registers. */
#define TILE(NAME, ET, LD, CVT)                                                                     \
    static void NAME(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {   \
        const int nf = n & ~15;                                                                     \
        for (int t = 0; t < 4; t++) {                                                               \
            const ET *a = y[t];                                                                     \
            float32x4_t c[4][4];                                                                    \
            for (int r = 0; r < 4; r++)                                                             \
                for (int q = 0; q < 4; q++) c[r][q] = vdupq_n_f32(0.0f);                            \
            for (int i = 0; i < nf; i += 16) {                                                      \
                float32x4_t av[4];                                                                  \
                for (int q = 0; q < 4; q++) av[q] = LD(a + i + 4 * q);                              \
                for (int r = 0; r < 4; r++) {                                                       \
                    const ET *w = x[r];                                                             \
                    for (int q = 0; q < 4; q++) c[r][q] = vfmaq_f32(c[r][q], LD(w + i + 4 * q), av[q]); \
                }                                                                                   \
            }                                                                                       \
            for (int r = 0; r < 4; r++) {                                                           \
                if (nf < n) {                                                                       \
                    const ET *w = x[r];                                                             \
                    float l[16];                                                                    \
                    for (int q = 0; q < 4; q++) vst1q_f32(l + 4 * q, c[r][q]);                      \
                    for (int i = nf; i < n; i++) l[i - nf] = fmaf(CVT(w[i]), CVT(a[i]), l[i - nf]); \
                    for (int q = 0; q < 4; q++) c[r][q] = vld1q_f32(l + 4 * q);                     \
                }                                                                                   \
                s[t * lds + r] = reduce16_neon(c[r][0], c[r][1], c[r][2], c[r][3]);                 \
            }                                                                                       \
        }                                                                                           \
    }
#define CVT_F32(v) (v)
TILE(tile_f32_neon, float, ld_f32, CVT_F32)
TILE(tile_f16_neon, cst_f16, ld_f16, cst_f16_to_f32)

static inline float32x4_t ld_bf16(const cst_bf16 *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }

/* BF16: not the ref's order (the ref sums in double): 4 x 4-lane float FMA
 * accumulators, pairwise sums, the tail one by one; within the tolerance
 * test_kernels allows float paths (1e-5 of sum |w_i a_i|) */
static void vec_dot_bf16_neon(int n, float *s, const void *vx, const void *vy) {
    const cst_bf16 *x = vx, *y = vy;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, ld_bf16(x + i), ld_bf16(y + i));
        a1 = vfmaq_f32(a1, ld_bf16(x + i + 4), ld_bf16(y + i + 4));
        a2 = vfmaq_f32(a2, ld_bf16(x + i + 8), ld_bf16(y + i + 8));
        a3 = vfmaq_f32(a3, ld_bf16(x + i + 12), ld_bf16(y + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, ld_bf16(x + i), ld_bf16(y + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a2), vaddq_f32(a1, a3)));
    for (; i < n; i++) sum = fmaf(cst_bf16_to_f32(x[i]), cst_bf16_to_f32(y[i]), sum);
    *s = sum;
}

static void to_float_bf16_neon(const void *vx, float *y, int64_t n) {
    const cst_bf16 *x = vx;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, ld_bf16(x + i));
    for (; i < n; i++) y[i] = cst_bf16_to_f32(x[i]);
}

/* ---- f16 rows (FCVT: exact widening, round-to-nearest-even narrowing;
 * equal to core/half.h for every non-NaN value) ---- */
void cst_fp16_to_fp32_row_neon(const cst_f16 *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(x + i));
        vst1q_f32(y + i, vcvt_f32_f16(vget_low_f16(h)));
        vst1q_f32(y + i + 4, vcvt_high_f32_f16(h));
    }
    for (; i < n; i++) y[i] = cst_f16_to_f32(x[i]);
}

void cst_fp32_to_fp16_row_neon(const float *x, cst_f16 *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
        vst1q_u16(y + i, vreinterpretq_u16_f16(h));
    }
    for (; i < n; i++) y[i] = cst_f32_to_f16(x[i]);
}

static void to_float_f16_neon(const void *x, float *y, int64_t n) { cst_fp16_to_fp32_row_neon(x, y, n); }
static void from_float_f16_neon(const float *x, void *y, int64_t n) { cst_fp32_to_fp16_row_neon(x, y, n); }

void cst_kernels_fill_neon(cst_kernel_traits *tab, cst_tile4x4_fn *tiles) {
    fill_int_neon(tab);
    tab[CST_TYPE_Q8_0].from_float = from_float_q8_0_neon;
    tab[CST_TYPE_Q8_K].from_float = from_float_q8_K_neon;
    tab[CST_TYPE_F32].vec_dot = vec_dot_f32_neon;
    tab[CST_TYPE_F16].vec_dot = vec_dot_f16_neon;
    tab[CST_TYPE_F16].to_float = to_float_f16_neon;
    tab[CST_TYPE_F16].from_float = from_float_f16_neon;
    tab[CST_TYPE_BF16].vec_dot = vec_dot_bf16_neon;
    tab[CST_TYPE_BF16].to_float = to_float_bf16_neon;
    tiles[CST_TYPE_F32] = tile_f32_neon;
    tiles[CST_TYPE_F16] = tile_f16_neon;
}
#endif
