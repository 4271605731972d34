/* kernels_i8mm.c: 4-row x 4-token tiles with SMMLA (armv8.6 i8mm) for the
 * repacked orders of Q4_0 and Q4_K (cst_kernel_x8; llama.cpp's
 * gemm_q4_0_8x8 / gemm_q4_K_8x8 orders, whose per-output float sums need
 * only the exact integer sum of each block -- what SMMLA gives).
 *
 * SMMLA multiplies a 2x8 int8 matrix by the transpose of another 2x8 one
 * into a 2x2 int32 tile: with rows (r, r+1) of the weights and tokens
 * (t, t+1) of the activations, 8 bytes each, one instruction adds the four
 * 8-byte dots [r.t, r.t+1, r+1.t, r+1.t+1]. A 4x4 tile is 4 such 2x2 tiles;
 * a 32-byte sub-block is 4 steps of 8 bytes. Per output the float work is
 * the ref's: acc = fma((float)block sum, dw * da, acc) (Q4_K: plus the mins
 * accumulator), so the results are the x8 ref dots bit for bit
 * (test_kernels: x8_order_matches_ref). Compiled with +i8mm; called only
 * when getauxval reports I8MM. aarch64 only.
 */
#if defined(__aarch64__)
#include "../kernels_int.h"

#include <arm_neon.h>
#include <math.h>

/* binary16 -> float32 with one FCVT (exact, as cst_f16_to_f32) */
static inline float h2f(cst_f16 h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

/* bytes 8k..8k+7 of a and of b in one vector (SMMLA operand rows) */
static inline int8x16_t rows_lo(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}
static inline int8x16_t rows_hi(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}

/* acc[p][q] += 2x2 tiles of the 32-byte dots of w[r] (4 rows, 2 vectors
 * each) with a[t] (4 tokens): acc[p][q] = [2p.2q, 2p.2q+1, 2p+1.2q, 2p+1.2q+1] */
static inline void mm32(int32x4_t acc[2][2], const int8x16_t w[4][2], const int8x16_t a[4][2]) {
    for (int h = 0; h < 2; h++) {
        int8x16_t W[2][2], A[2][2];
        for (int p = 0; p < 2; p++) {
            W[p][0] = rows_lo(w[2 * p][h], w[2 * p + 1][h]);
            W[p][1] = rows_hi(w[2 * p][h], w[2 * p + 1][h]);
            A[p][0] = rows_lo(a[2 * p][h], a[2 * p + 1][h]);
            A[p][1] = rows_hi(a[2 * p][h], a[2 * p + 1][h]);
        }
        for (int p = 0; p < 2; p++)
            for (int q = 0; q < 2; q++) {
                acc[p][q] = vmmlaq_s32(acc[p][q], W[p][0], A[q][0]);
                acc[p][q] = vmmlaq_s32(acc[p][q], W[p][1], A[q][1]);
            }
    }
}

/* acc (per (row, token), lanes as mm32) = fma((float)sums, dw * da, acc) */
static inline void fma_tiles(float32x4_t f[2][2], const int32x4_t i[2][2], const float dw[4], const float da[4]) {
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 2; q++) {
            const float32x4_t w = {dw[2 * p], dw[2 * p], dw[2 * p + 1], dw[2 * p + 1]};
            const float32x4_t a = {da[2 * q], da[2 * q + 1], da[2 * q], da[2 * q + 1]};
            f[p][q] = vfmaq_f32(f[p][q], vcvtq_f32_s32(i[p][q]), vmulq_f32(w, a));
        }
}

static inline void store_tiles(const float32x4_t f[2][2], float *s, int64_t lds) {
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 2; q++) {
            s[(2 * q) * lds + 2 * p] = vgetq_lane_f32(f[p][q], 0);
            s[(2 * q + 1) * lds + 2 * p] = vgetq_lane_f32(f[p][q], 1);
            s[(2 * q) * lds + 2 * p + 1] = vgetq_lane_f32(f[p][q], 2);
            s[(2 * q + 1) * lds + 2 * p + 1] = vgetq_lane_f32(f[p][q], 3);
        }
}

void cst_tile_q4_0_x8_i8mm(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {
    const int nb = n / QK8_0;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float32x4_t f[2][2];
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 2; q++) f[p][q] = vdupq_n_f32(0.0f);
    for (int b = 0; b < nb; b++) {
        int8x16_t w[4][2], a[4][2];
        float dw[4], da[4];
        for (int r = 0; r < 4; r++) {
            const block_q4_0 *xb = (const block_q4_0 *)x[r] + b;
            const uint8x16_t q = vld1q_u8(xb->qs);
            w[r][0] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), eight);
            w[r][1] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
            dw[r] = h2f(xb->d);
            const block_q8_0 *yb = (const block_q8_0 *)y[r] + b;
            a[r][0] = vld1q_s8(yb->qs);
            a[r][1] = vld1q_s8(yb->qs + 16);
            da[r] = h2f(yb->d);
        }
        int32x4_t acc[2][2];
        for (int p = 0; p < 2; p++)
            for (int q = 0; q < 2; q++) acc[p][q] = vdupq_n_s32(0);
        mm32(acc, w, a);
        fma_tiles(f, acc, dw, da);
    }
    store_tiles(f, s, lds);
}

void cst_tile_q4_K_x8_i8mm(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {
    const int nb = n / QK_K;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float32x4_t f[2][2], fm[2][2];
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 2; q++) f[p][q] = fm[p][q] = vdupq_n_f32(0.0f);
    for (int b = 0; b < nb; b++) {
        const block_q4_K *xb[4];
        const block_q8_K *yb[4];
        uint8_t sc[4][8], mn[4][8];
        float dw[4], dm[4], da[4];
        for (int r = 0; r < 4; r++) {
            xb[r] = (const block_q4_K *)x[r] + b;
            yb[r] = (const block_q8_K *)y[r] + b;
            for (int j = 0; j < 8; j++) cst_get_scale_min_k4(j, xb[r]->scales, &sc[r][j], &mn[r][j]);
            dw[r] = h2f(xb[r]->d);
            dm[r] = h2f(xb[r]->dmin);
            da[r] = yb[r]->d;
        }
        int32x4_t acc[2][2], mins[2][2];
        for (int p = 0; p < 2; p++)
            for (int q = 0; q < 2; q++) acc[p][q] = vdupq_n_s32(0);
        for (int j = 0; j < 8; j++) { /* 32-element sub-block j: chunk j/2, low or high nibbles */
            int8x16_t w[4][2], a[4][2];
            for (int r = 0; r < 4; r++) {
                const uint8_t *qs = xb[r]->qs + 32 * (j / 2);
                const uint8x16_t q0 = vld1q_u8(qs), q1 = vld1q_u8(qs + 16);
                w[r][0] = vreinterpretq_s8_u8(j & 1 ? vshrq_n_u8(q0, 4) : vandq_u8(q0, m4));
                w[r][1] = vreinterpretq_s8_u8(j & 1 ? vshrq_n_u8(q1, 4) : vandq_u8(q1, m4));
                a[r][0] = vld1q_s8(yb[r]->qs + 32 * j);
                a[r][1] = vld1q_s8(yb[r]->qs + 32 * j + 16);
            }
            int32x4_t d[2][2];
            for (int p = 0; p < 2; p++)
                for (int q = 0; q < 2; q++) d[p][q] = vdupq_n_s32(0);
            mm32(d, w, a);
            for (int p = 0; p < 2; p++) {
                const int32x4_t scv = {sc[2 * p][j], sc[2 * p][j], sc[2 * p + 1][j], sc[2 * p + 1][j]};
                for (int q = 0; q < 2; q++) acc[p][q] = vmlaq_s32(acc[p][q], d[p][q], scv);
            }
        }
        /* mins: sum_j m_j * (bsums[2j] + bsums[2j+1]) per (row, token) */
        for (int p = 0; p < 2; p++)
            for (int q = 0; q < 2; q++) {
                int32_t v[4];
                for (int k = 0; k < 4; k++) {
                    const int r = 2 * p + (k >> 1), t = 2 * q + (k & 1);
                    int sm = 0;
                    for (int j = 0; j < 8; j++) sm += mn[r][j] * (yb[t]->bsums[2 * j] + yb[t]->bsums[2 * j + 1]);
                    v[k] = sm;
                }
                mins[p][q] = vld1q_s32(v);
            }
        fma_tiles(f, acc, dw, da);
        fma_tiles(fm, mins, dm, da);
    }
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 2; q++) f[p][q] = vsubq_f32(f[p][q], fm[p][q]);
    store_tiles(f, s, lds);
}
#endif
