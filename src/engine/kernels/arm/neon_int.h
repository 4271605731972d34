/* neon_int.h: the integer dot products of the block-quantized types for
 * aarch64, written once and compiled twice: by kernels_neon.c (base NEON,
 * the 4-byte dot emulated with SMULL + pairwise adds) and by
 * kernels_dotprod.c (SDOT). Include it after defining
 *   CST_DOT4(acc, a, b): acc (int32x4) + for lane j, the sum of the products
 *                         of bytes 4j..4j+3 of a and b (int8x16)
 *   CST_SFX(name):       the function name with the ISA suffix
 * Each kernel computes the exact integer sums of its ref twin (ref_quants.c)
 * and applies the same float operations in the same order, so the results
 * are the ref's bit for bit (test_kernels: neon/dotprod/i8mm_matches_ref).
 */
#ifndef CST_DOT4
#error "define CST_DOT4 and CST_SFX before including neon_int.h"
#endif

#include <arm_neon.h>

#ifndef CST_H2F
#define CST_H2F
/* binary16 -> float32 with one FCVT (exact, as cst_f16_to_f32; the software
 * conversion costs about a dozen integer instructions per block scale) */
static inline float h2f(cst_f16 h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}
#endif

/* cst_hsum8_ref of the 8 lanes (lo = lanes 0-3, hi = lanes 4-7) */
static inline float CST_SFX(hsum8)(float32x4_t lo, float32x4_t hi) {
    const float32x4_t q = vaddq_f32(lo, hi);                            /* v[k] + v[k+4] */
    const float32x2_t p = vadd_f32(vget_low_f32(q), vget_high_f32(q)); /* q0+q2, q1+q3 */
    return vget_lane_f32(p, 0) + vget_lane_f32(p, 1);
}

/* ---- Q8_0 / Q4_0 x Q8_0 ---- */

static void CST_SFX(cst_vec_dot_q8_0_q8_0)(int n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx, *y = vy;
    const int nb = n / QK8_0;
    const int32x4_t z = vdupq_n_s32(0);
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
    for (int i = 0; i < nb; i++) {
        const int32x4_t s0 = CST_DOT4(z, vld1q_s8(x[i].qs), vld1q_s8(y[i].qs));
        const int32x4_t s1 = CST_DOT4(z, vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs + 16));
        const float d = h2f(x[i].d) * h2f(y[i].d);
        a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(s0), d);
        a1 = vfmaq_n_f32(a1, vcvtq_f32_s32(s1), d);
    }
    *s = CST_SFX(hsum8)(a0, a1);
}

/* Q4_0 block -> elements 0-15 (low nibbles) and 16-31 (high), minus 8 */
static inline void CST_SFX(unpack_q4_0)(const block_q4_0 *b, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t q = vld1q_u8(b->qs);
    const int8x16_t eight = vdupq_n_s8(8);
    *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight);
    *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
}

static void CST_SFX(cst_vec_dot_q4_0_q8_0)(int n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int nb = n / QK8_0;
    const int32x4_t z = vdupq_n_s32(0);
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
    for (int i = 0; i < nb; i++) {
        int8x16_t lo, hi;
        CST_SFX(unpack_q4_0)(&x[i], &lo, &hi);
        const int32x4_t s0 = CST_DOT4(z, lo, vld1q_s8(y[i].qs));
        const int32x4_t s1 = CST_DOT4(z, hi, vld1q_s8(y[i].qs + 16));
        const float d = h2f(x[i].d) * h2f(y[i].d);
        a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(s0), d);
        a1 = vfmaq_n_f32(a1, vcvtq_f32_s32(s1), d);
    }
    *s = CST_SFX(hsum8)(a0, a1);
}

/* repacked order (cst_vec_dot_q4_0_q8_0_x8_ref): one float accumulator */
void CST_SFX(cst_vec_dot_q4_0_q8_0_x8)(int n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int nb = n / QK8_0;
    float acc = 0.0f;
    for (int i = 0; i < nb; i++) {
        int8x16_t lo, hi;
        CST_SFX(unpack_q4_0)(&x[i], &lo, &hi);
        int32x4_t v = CST_DOT4(vdupq_n_s32(0), lo, vld1q_s8(y[i].qs));
        v = CST_DOT4(v, hi, vld1q_s8(y[i].qs + 16));
        acc = fmaf((float)vaddvq_s32(v), h2f(x[i].d) * h2f(y[i].d), acc);
    }
    *s = acc;
}

/* ---- Q4_K x Q8_K ---- */

/* exact super-block sums of Q4_K block b with Q8_K block a:
 * *sumi = sum_j sc_j * (sub-block j dot), *summ = sum_j m_j * (its bsums) */
static inline void CST_SFX(q4_K_sums)(const block_q4_K *b, const block_q8_K *a, int *sumi, int *summ) {
    const uint8_t *q = b->qs;
    const int8_t *y = a->qs;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int32x4_t z = vdupq_n_s32(0);
    int si = 0, sm = 0;
    for (int c = 0; c < QK_K / 64; c++, q += 32, y += 64) {
        uint8_t sc0, m0, sc1, m1;
        cst_get_scale_min_k4(2 * c, b->scales, &sc0, &m0);
        cst_get_scale_min_k4(2 * c + 1, b->scales, &sc1, &m1);
        const uint8x16_t q0 = vld1q_u8(q), q1 = vld1q_u8(q + 16);
        int32x4_t s0 = CST_DOT4(z, vreinterpretq_s8_u8(vandq_u8(q0, m4)), vld1q_s8(y));
        s0 = CST_DOT4(s0, vreinterpretq_s8_u8(vandq_u8(q1, m4)), vld1q_s8(y + 16));
        int32x4_t s1 = CST_DOT4(z, vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vld1q_s8(y + 32));
        s1 = CST_DOT4(s1, vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)), vld1q_s8(y + 48));
        si += sc0 * vaddvq_s32(s0) + sc1 * vaddvq_s32(s1);
        sm += m0 * (a->bsums[4 * c] + a->bsums[4 * c + 1]) + m1 * (a->bsums[4 * c + 2] + a->bsums[4 * c + 3]);
    }
    *sumi = si;
    *summ = sm;
}

static void CST_SFX(cst_vec_dot_q4_K_q8_K)(int n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    float sum = 0.0f;
    for (int i = 0; i < nb; i++) {
        int sumi, summ;
        CST_SFX(q4_K_sums)(&x[i], &y[i], &sumi, &summ);
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        sum += d * sumi - dmin * summ;
    }
    *s = sum;
}

void CST_SFX(cst_vec_dot_q4_K_q8_K_x8)(int n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    float acc = 0.0f, accm = 0.0f;
    for (int i = 0; i < nb; i++) {
        int sumi, summ;
        CST_SFX(q4_K_sums)(&x[i], &y[i], &sumi, &summ);
        acc = fmaf((float)sumi, h2f(x[i].d) * y[i].d, acc);
        accm = fmaf((float)summ, h2f(x[i].dmin) * y[i].d, accm);
    }
    *s = acc - accm;
}

/* ---- Q5_K x Q8_K: 8 int lanes per super-block (lane l: elements 32g+4l..+3) ---- */

static void CST_SFX(cst_vec_dot_q5_K_q8_K)(int n, float *s, const void *vx, const void *vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), b16 = vdupq_n_u8(16);
    const int32x4_t z = vdupq_n_s32(0);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
    float summs = 0.0f;
    for (int i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        const int8_t *a = y[i].qs;
        const uint8x16_t qh0 = vld1q_u8(x[i].qh), qh1 = vld1q_u8(x[i].qh + 16);
        int32x4_t l0 = z, l1 = z;
        int summ = 0;
        for (int c = 0; c < QK_K / 64; c++, q += 32, a += 64) {
            uint8_t sc0, m0, sc1, m1;
            cst_get_scale_min_k4(2 * c, x[i].scales, &sc0, &m0);
            cst_get_scale_min_k4(2 * c + 1, x[i].scales, &sc1, &m1);
            const uint8x16_t u1 = vdupq_n_u8((uint8_t)(1u << (2 * c))), u2 = vdupq_n_u8((uint8_t)(2u << (2 * c)));
            const uint8x16_t q0 = vld1q_u8(q), q1 = vld1q_u8(q + 16);
            const int8x16_t w0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q0, m4), vandq_u8(vtstq_u8(qh0, u1), b16)));
            const int8x16_t w1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q1, m4), vandq_u8(vtstq_u8(qh1, u1), b16)));
            const int8x16_t w2 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q0, 4), vandq_u8(vtstq_u8(qh0, u2), b16)));
            const int8x16_t w3 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q1, 4), vandq_u8(vtstq_u8(qh1, u2), b16)));
            l0 = vmlaq_n_s32(l0, CST_DOT4(z, w0, vld1q_s8(a)), sc0);
            l1 = vmlaq_n_s32(l1, CST_DOT4(z, w1, vld1q_s8(a + 16)), sc0);
            l0 = vmlaq_n_s32(l0, CST_DOT4(z, w2, vld1q_s8(a + 32)), sc1);
            l1 = vmlaq_n_s32(l1, CST_DOT4(z, w3, vld1q_s8(a + 48)), sc1);
            summ += m0 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) +
                    m1 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
        }
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = -y[i].d * h2f(x[i].dmin);
        acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(l0), d);
        acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(l1), d);
        summs = CST_Q5K_SUMMS(dmin, (float)summ, summs);
    }
    *s = CST_SFX(hsum8)(acc0, acc1) + summs;
}

/* ---- Q6_K x Q8_K: lanes as Q5_K, starting at -32 * sc * bsums ---- */

static void CST_SFX(cst_vec_dot_q6_K_q8_K)(int n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(3);
    const int32x4_t z = vdupq_n_s32(0);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
    for (int i = 0; i < nb; i++) {
        const int8_t *sc = x[i].scales;
        int32_t init[8];
        for (int l = 0; l < 8; l++)
            init[l] = -32 * (sc[2 * l] * y[i].bsums[2 * l] + sc[2 * l + 1] * y[i].bsums[2 * l + 1]);
        int32x4_t l0 = vld1q_s32(init), l1 = vld1q_s32(init + 4);
        const int8_t *a = y[i].qs;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            for (int k = 0; k < 2; k++) { /* elements 16k..16k+15 of each 32-group */
                const uint8x16_t L0 = vld1q_u8(ql + 16 * k), L1 = vld1q_u8(ql + 32 + 16 * k);
                const uint8x16_t H = vld1q_u8(qh + 16 * k);
                uint8x16_t w[4];
                w[0] = vorrq_u8(vandq_u8(L0, m4), vshlq_n_u8(vandq_u8(H, m3), 4));
                w[1] = vorrq_u8(vandq_u8(L1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(H, 2), m3), 4));
                w[2] = vorrq_u8(vshrq_n_u8(L0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(H, 4), m3), 4));
                w[3] = vorrq_u8(vshrq_n_u8(L1, 4), vshlq_n_u8(vshrq_n_u8(H, 6), 4));
                for (int g = 0; g < 4; g++) { /* group 4h+g: elements 128h+32g+16k.. */
                    const int e = 128 * h + 32 * g + 16 * k;
                    const int32x4_t d4 = CST_DOT4(z, vreinterpretq_s8_u8(w[g]), vld1q_s8(a + e));
                    if (k == 0)
                        l0 = vmlaq_n_s32(l0, d4, sc[e / 16]);
                    else
                        l1 = vmlaq_n_s32(l1, d4, sc[e / 16]);
                }
            }
        }
        const float d = y[i].d * h2f(x[i].d);
        acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(l0), d);
        acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(l1), d);
    }
    *s = CST_SFX(hsum8)(acc0, acc1);
}

/* Install this ISA's integer dots over tab (indexed by cst_type). */
static void CST_SFX(fill_int)(cst_kernel_traits *tab) {
    tab[CST_TYPE_Q8_0].vec_dot = CST_SFX(cst_vec_dot_q8_0_q8_0);
    tab[CST_TYPE_Q4_0].vec_dot = CST_SFX(cst_vec_dot_q4_0_q8_0);
    tab[CST_TYPE_Q4_K].vec_dot = CST_SFX(cst_vec_dot_q4_K_q8_K);
    tab[CST_TYPE_Q5_K].vec_dot = CST_SFX(cst_vec_dot_q5_K_q8_K);
    tab[CST_TYPE_Q6_K].vec_dot = CST_SFX(cst_vec_dot_q6_K_q8_K);
}
