/* ref_quants.c: scalar reference kernels for the block-quantized types:
 * dequantization (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q8_K), activation
 * quantization to Q8_0 / Q8_K rounded exactly as llama.cpp's x86 CPU backend
 * does, and the integer dot products of each weight type with its activation
 * type. Weight quantizers (scale searches) live in ref_quantize.c.
 */
#include "../kernels_int.h"

#include <math.h>

/* ---------------------------------------------------------------- Q8_0 */

void cst_to_float_q8_0_ref(const void *vx, float *y, int64_t n) {
    const block_q8_0 *x = vx;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = cst_f16_to_f32(x[i].d);
        for (int j = 0; j < QK8_0; j++) y[i * QK8_0 + j] = x[i].qs[j] * d;
    }
}

/* Activation quantization as ggml-cpu's AVX quantize_row_q8_0: d = amax/127
 * stored as f16, multiplier 127/amax (not 1/d), round half to even. */
void cst_from_float_q8_0_ref(const float *x, void *vy, int64_t n) {
    block_q8_0 *y = vy;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            const float a = fabsf(x[j]);
            amax = a > amax ? a : amax;
        }
        const float d = amax / 127.f;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        y[i].d = cst_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)cst_nearest_int(x[j] * id);
    }
}

/* ggml's x86 accumulation order for the 32-element block types (vec_dot and
 * tinyBLAS_Q0 alike): one 8-lane float accumulator; per block in order,
 * lane j += (float)(exact int sum of the products of bytes 4j..4j+3) times
 * the float product fp16(dx) * fp16(dy), as one FMA; then hsum8. */
float cst_hsum8_ref(const float v[8]) {
    float q[4];
    for (int k = 0; k < 4; k++) q[k] = v[k] + v[k + 4]; /* lo128 + hi128 */
    return (q[0] + q[2]) + (q[1] + q[3]);              /* movehl, movehdup */
}

static void acc_block8(float acc[8], const int8_t *w, const int8_t *a, float d) {
    for (int j = 0; j < 8; j++) {
        int s = 0;
        for (int k = 0; k < 4; k++) s += w[4 * j + k] * a[4 * j + k];
        acc[j] = fmaf(d, (float)s, acc[j]);
    }
}

void cst_vec_dot_q8_0_q8_0_ref(int n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx, *y = vy;
    const int nb = n / QK8_0;
    float acc[8] = {0};
    for (int i = 0; i < nb; i++)
        acc_block8(acc, x[i].qs, y[i].qs, cst_f16_to_f32(x[i].d) * cst_f16_to_f32(y[i].d));
    *s = cst_hsum8_ref(acc);
}

/* ---------------------------------------------------------------- Q4_0 */

void cst_to_float_q4_0_ref(const void *vx, float *y, int64_t n) {
    const block_q4_0 *x = vx;
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = cst_f16_to_f32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[i * QK4_0 + j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * QK4_0 + j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* same order as Q8_0; the block unpacks to low nibbles (elements 0-15) then
 * high nibbles (16-31), minus 8 */
void cst_vec_dot_q4_0_q8_0_ref(int n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int nb = n / QK8_0;
    float acc[8] = {0};
    int8_t w[QK4_0];
    for (int i = 0; i < nb; i++) {
        for (int j = 0; j < QK4_0 / 2; j++) {
            w[j] = (int8_t)((x[i].qs[j] & 0x0F) - 8);
            w[j + QK4_0 / 2] = (int8_t)((x[i].qs[j] >> 4) - 8);
        }
        acc_block8(acc, w, y[i].qs, cst_f16_to_f32(x[i].d) * cst_f16_to_f32(y[i].d));
    }
    *s = cst_hsum8_ref(acc);
}

/* llama.cpp's repacked Q4_0 (block_q4_0x8, ggml_gemv/gemm_q4_0_8x8_q8_0 on
 * x86), used for matrices with rows % 8 == 0: per output one float
 * accumulator, acc = fma((float)(exact int sum of the block), dw * da, acc)
 * block by block, no lanes. */
void cst_vec_dot_q4_0_q8_0_x8_ref(int n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int nb = n / QK8_0;
    float acc = 0.0f;
    for (int i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            sumi += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
        }
        acc = fmaf((float)sumi, cst_f16_to_f32(x[i].d) * cst_f16_to_f32(y[i].d), acc);
    }
    *s = acc;
}

/* the scalar twin of the 8-row decode kernels: 8 x8 dots */
void cst_vec_dot8_q4_0_q8_0_x8_ref(int n, float *s, const void *vx, size_t bx, const void *vy) {
    for (int r = 0; r < 8; r++) cst_vec_dot_q4_0_q8_0_x8_ref(n, &s[r], (const char *)vx + (size_t)r * bx, vy);
}

/* llama.cpp's Q8_0 order (cst_vec_dot_q8_0_q8_0_ref: 8 lanes, hsum8) on the
 * packed layout (block_q8_0x8) */
void cst_gemm_q8_0x8_ref(int n, const void *P, const void *const *vy, int nt, float *s, int64_t lds) {
    const block_q8_0x8 *x = P;
    const int nb = n / QK8_0;
    for (int t = 0; t < nt; t++) {
        const block_q8_0 *y = vy[t];
        for (int r = 0; r < 8; r++) {
            float acc[8] = {0};
            for (int i = 0; i < nb; i++) {
                int8_t w[QK8_0];
                for (int j = 0; j < QK8_0; j++) w[j] = x[i].qs[32 * (j >> 2) + 4 * r + (j & 3)];
                acc_block8(acc, w, y[i].qs, cst_f16_to_f32(x[i].d[r]) * cst_f16_to_f32(y[i].d));
            }
            s[t * lds + r] = cst_hsum8_ref(acc);
        }
    }
}

/* the x8 order of Q4_0 on the packed layout (block_q4_0x8) */
void cst_gemm_q4_0x8_ref(int n, const void *P, const void *const *vy, int nt, float *s, int64_t lds) {
    const block_q4_0x8 *x = P;
    const int nb = n / QK4_0;
    for (int t = 0; t < nt; t++) {
        const block_q8_0 *y = vy[t];
        for (int r = 0; r < 8; r++) {
            float acc = 0.0f;
            for (int i = 0; i < nb; i++) {
                int sumi = 0;
                for (int j = 0; j < QK4_0 / 2; j++) {
                    const uint8_t q = x[i].qs[32 * (j >> 2) + 4 * r + (j & 3)];
                    sumi += ((q & 0x0F) - 8) * y[i].qs[j] + ((q >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
                }
                acc = fmaf((float)sumi, cst_f16_to_f32(x[i].d[r]) * cst_f16_to_f32(y[i].d), acc);
            }
            s[t * lds + r] = acc;
        }
    }
}

/* ---------------------------------------------------------------- Q8_K */

void cst_to_float_q8_K_ref(const void *vx, float *y, int64_t n) {
    const block_q8_K *x = vx;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < QK_K; j++) y[i * QK_K + j] = x[i].d * x[i].qs[j];
}

/* ggml's quantize_row_q8_K_ref (used by the x86 backend as is): scale from
 * the signed value of largest magnitude, -127/max, clamp at 127. */
void cst_from_float_q8_K_ref(const float *x, void *vy, int64_t n) {
    block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = cst_nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += y[i].qs[g * 16 + j];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ---------------------------------------------------------------- Q4_K */

/* Element e of a Q4_K block: 64-element chunk c = e/64 uses bytes
 * qs[32c .. 32c+31]; the first 32 elements are the low nibbles, the next 32
 * the high nibbles; sub-block e/32 has its own 6-bit scale and min. */
void cst_to_float_q4_K_ref(const void *vx, float *y, int64_t n) {
    const block_q4_K *x = vx;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = cst_f16_to_f32(x[i].d);
        const float dmin = cst_f16_to_f32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int c = 0; c < QK_K / 64; c++, q += 32) {
            uint8_t sc, m;
            cst_get_scale_min_k4(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            cst_get_scale_min_k4(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

void cst_vec_dot_q4_K_q8_K_ref(int n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    float sum = 0.0f;
    for (int i = 0; i < nb; i++) {
        int sumi = 0, summ = 0;
        const uint8_t *q = x[i].qs;
        const int8_t *a = y[i].qs;
        for (int c = 0; c < QK_K / 64; c++, q += 32, a += 64) {
            uint8_t sc0, m0, sc1, m1;
            cst_get_scale_min_k4(2 * c, x[i].scales, &sc0, &m0);
            cst_get_scale_min_k4(2 * c + 1, x[i].scales, &sc1, &m1);
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += (q[l] & 0xF) * a[l];
                s1 += (q[l] >> 4) * a[l + 32];
            }
            sumi += sc0 * s0 + sc1 * s1;
            summ += m0 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) +
                    m1 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
        }
        const float d = y[i].d * cst_f16_to_f32(x[i].d);
        const float dmin = y[i].d * cst_f16_to_f32(x[i].dmin);
        sum += d * sumi - dmin * summ;
    }
    *s = sum;
}

/* llama.cpp's repacked Q4_K order (block_q4_Kx8, ggml_gemv/gemm_q4_K_8x8_q8_K
 * on x86), for matrices with rows % 8 == 0: two float accumulators per
 * output, acc = fma(scales int sum, dw * da, acc) and
 * accm = fma(mins int sum, dmin * da, accm) per super-block; acc - accm. */
void cst_vec_dot_q4_K_q8_K_x8_ref(int n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    float acc = 0.0f, accm = 0.0f;
    for (int i = 0; i < nb; i++) {
        int sumi = 0, summ = 0;
        const uint8_t *q = x[i].qs;
        const int8_t *a = y[i].qs;
        for (int c = 0; c < QK_K / 64; c++, q += 32, a += 64) {
            uint8_t sc0, m0, sc1, m1;
            cst_get_scale_min_k4(2 * c, x[i].scales, &sc0, &m0);
            cst_get_scale_min_k4(2 * c + 1, x[i].scales, &sc1, &m1);
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += (q[l] & 0xF) * a[l];
                s1 += (q[l] >> 4) * a[l + 32];
            }
            sumi += sc0 * s0 + sc1 * s1;
            summ += m0 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) +
                    m1 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
        }
        acc = fmaf((float)sumi, cst_f16_to_f32(x[i].d) * y[i].d, acc);
        accm = fmaf((float)summ, cst_f16_to_f32(x[i].dmin) * y[i].d, accm);
    }
    *s = acc - accm;
}

/* the x8 order of Q4_K on the packed layout (block_q4_Kx8) */
void cst_gemm_q4_Kx8_ref(int n, const void *P, const void *const *vy, int nt, float *s, int64_t lds) {
    const block_q4_Kx8 *x = P;
    const int nb = n / QK_K;
    for (int t = 0; t < nt; t++) {
        const block_q8_K *y = vy[t];
        for (int r = 0; r < 8; r++) {
            float acc = 0.0f, accm = 0.0f;
            for (int i = 0; i < nb; i++) {
                int sumi = 0, summ = 0;
                for (int j = 0; j < QK_K / 32; j++) {
                    const int c = j / 2, hi = j & 1;
                    int sj = 0;
                    for (int l = 0; l < 32; l++) {
                        const uint8_t q = x[i].qs[32 * (8 * c + l / 4) + 4 * r + l % 4];
                        sj += (hi ? q >> 4 : q & 0xF) * y[i].qs[32 * j + l];
                    }
                    sumi += x[i].sc[j][r] * sj;
                    summ += x[i].m[j][r] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
                }
                acc = fmaf((float)sumi, cst_f16_to_f32(x[i].d[r]) * y[i].d, acc);
                accm = fmaf((float)summ, cst_f16_to_f32(x[i].dmin[r]) * y[i].d, accm);
            }
            s[t * lds + r] = acc - accm;
        }
    }
}

/* ---------------------------------------------------------------- Q5_K */

/* As Q4_K plus a fifth bit: element 64c+l takes bit 2c of qh[l], element
 * 64c+32+l bit 2c+1. */
void cst_to_float_q5_K_ref(const void *vx, float *y, int64_t n) {
    const block_q5_K *x = vx;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = cst_f16_to_f32(x[i].d);
        const float dmin = cst_f16_to_f32(x[i].dmin);
        const uint8_t *q = x[i].qs, *qh = x[i].qh;
        for (int c = 0; c < QK_K / 64; c++, q += 32) {
            uint8_t sc, m;
            cst_get_scale_min_k4(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            cst_get_scale_min_k4(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            const uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
            for (int l = 0; l < 32; l++) *y++ = d1 * ((q[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

/* ggml's x86 (AVX2) order: per super-block 8 int32 lanes, lane l = sum over
 * the 8 sub-blocks g of sc_g * (products of elements 32g+4l .. 32g+4l+3),
 * acc[l] = fma(y.d * d, lane l, acc[l]); the mins go into one float
 * summs += (-y.d * dmin) * (int) sum_j m_j * (bsums[2j] + bsums[2j+1]);
 * result hsum8(acc) + summs. */
void cst_vec_dot_q5_K_q8_K_ref(int n, float *s, const void *vx, const void *vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    float acc[8] = {0}, summs = 0.0f;
    for (int i = 0; i < nb; i++) {
        int lane[8] = {0}, summ = 0;
        const uint8_t *q = x[i].qs, *qh = x[i].qh;
        const int8_t *a = y[i].qs;
        for (int c = 0; c < QK_K / 64; c++, q += 32, a += 64) {
            uint8_t sc0, m0, sc1, m1;
            cst_get_scale_min_k4(2 * c, x[i].scales, &sc0, &m0);
            cst_get_scale_min_k4(2 * c + 1, x[i].scales, &sc1, &m1);
            const uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
            for (int l = 0; l < 32; l++) {
                lane[l / 4] += sc0 * (((q[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) * a[l]);
                lane[l / 4] += sc1 * (((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) * a[l + 32]);
            }
            summ += m0 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) +
                    m1 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
        }
        const float d = y[i].d * cst_f16_to_f32(x[i].d);
        const float dmin = -y[i].d * cst_f16_to_f32(x[i].dmin);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
        summs = CST_Q5K_SUMMS(dmin, (float)summ, summs);
    }
    *s = cst_hsum8_ref(acc) + summs;
}

/* ---------------------------------------------------------------- Q6_K */

/* Two 128-element halves; in half h, for l < 32:
 *   e = l      : ql[64h+l] low,  qh[32h+l] bits 0-1
 *   e = l + 32 : ql[64h+l+32] low, bits 2-3
 *   e = l + 64 : ql[64h+l] high, bits 4-5
 *   e = l + 96 : ql[64h+l+32] high, bits 6-7
 * value = 6-bit code - 32, scaled by the int8 scale of its 16-group. */
static inline void q6_K_unpack(const block_q6_K *b, int8_t *q) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            o[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            o[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

void cst_to_float_q6_K_ref(const void *vx, float *y, int64_t n) {
    const block_q6_K *x = vx;
    const int64_t nb = n / QK_K;
    int8_t q[QK_K];
    for (int64_t i = 0; i < nb; i++) {
        const float d = cst_f16_to_f32(x[i].d);
        q6_K_unpack(&x[i], q);
        for (int j = 0; j < QK_K; j++) y[i * QK_K + j] = d * x[i].scales[j / 16] * q[j];
    }
}

/* ggml's x86 order: lane l = -32 * (sc[2l] * bsums[2l] + sc[2l+1] * bsums[2l+1])
 * + sum over the 8 32-element groups g of scales[(32g+4l)/16] * (products of
 * the unsigned 6-bit codes and the activations for elements 32g+4l .. +3);
 * acc[l] = fma(y.d * d, lane l, acc[l]); hsum8. */
void cst_vec_dot_q6_K_q8_K_ref(int n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const int nb = n / QK_K;
    int8_t q[QK_K];
    float acc[8] = {0};
    for (int i = 0; i < nb; i++) {
        q6_K_unpack(&x[i], q);
        int lane[8];
        for (int l = 0; l < 8; l++)
            lane[l] = -32 * (x[i].scales[2 * l] * y[i].bsums[2 * l] + x[i].scales[2 * l + 1] * y[i].bsums[2 * l + 1]);
        for (int e = 0; e < QK_K; e++) lane[(e % 32) / 4] += x[i].scales[e / 16] * ((q[e] + 32) * y[i].qs[e]);
        const float d = y[i].d * cst_f16_to_f32(x[i].d);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
    }
    *s = cst_hsum8_ref(acc);
}
