/* ref_float.c: scalar reference kernels for the float types F32, F16 and
 * BF16: row conversion to/from float32 and dot products. F32/F16 dots and
 * tiles emulate ggml's AVX-512 orders exactly (vec_dot: 4 x 16 lanes; batches:
 * tinyBLAS, 16 lanes); BF16 accumulates in double. Conversions are the exact
 * ones of core/half.h.
 */
#include "../kernels_int.h"

#include <math.h>

void cst_to_float_f32_ref(const void *x, float *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void cst_from_float_f32_ref(const float *x, void *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

/* _mm512_reduce_add_ps's order (GCC): 256-bit halves, 128-bit halves, then
 * (0+2) + (1+3) */
float cst_reduce16_ref(const float v[16]) {
    float h[8], q[4];
    for (int k = 0; k < 8; k++) h[k] = v[k] + v[k + 8];
    for (int k = 0; k < 4; k++) q[k] = h[k] + h[k + 4];
    return (q[0] + q[2]) + (q[1] + q[3]);
}

/* ggml_vec_dot_f32 / ggml_vec_dot_f16 on AVX-512: four 16-lane FMA
 * accumulators over 64-element steps, combined (0+2) + (1+3), reduced; the
 * last n % 64 elements are added one by one (F32: fused into the float sum,
 * as GCC contracts `sumf += x*y`; F16: in double). */
static float dot64_f32(int np, const float *x, const float *y) {
    float acc[4][16] = {{0}};
    for (int i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++) acc[j][l] = fmaf(x[i + 16 * j + l], y[i + 16 * j + l], acc[j][l]);
    for (int l = 0; l < 16; l++) acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    return cst_reduce16_ref(acc[0]);
}

void cst_vec_dot_f32_ref(int n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    const int np = n & ~63;
    float sum = dot64_f32(np, x, y);
    for (int i = np; i < n; i++) sum = fmaf(x[i], y[i], sum);
    *s = sum;
}

void cst_to_float_f16_ref(const void *vx, float *y, int64_t n) {
    const cst_f16 *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = cst_f16_to_f32(x[i]);
}

void cst_from_float_f16_ref(const float *x, void *vy, int64_t n) {
    cst_f16 *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = cst_f32_to_f16(x[i]);
}

void cst_vec_dot_f16_ref(int n, float *s, const void *vx, const void *vy) {
    const cst_f16 *x = vx, *y = vy;
    const int np = n & ~63;
    float acc[4][16] = {{0}};
    for (int i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++)
                acc[j][l] = fmaf(cst_f16_to_f32(x[i + 16 * j + l]), cst_f16_to_f32(y[i + 16 * j + l]), acc[j][l]);
    for (int l = 0; l < 16; l++) acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    double sum = cst_reduce16_ref(acc[0]);
    for (int i = np; i < n; i++) sum += (double)(cst_f16_to_f32(x[i]) * cst_f16_to_f32(y[i]));
    *s = (float)sum;
}

/* tinyBLAS order (llamafile sgemm, AVX-512), used for batches: one 16-lane
 * FMA accumulator per output over steps of 16 elements, then
 * _mm512_reduce_add_ps. A tail of n % 16 is zero-padded (matmul only uses
 * this order when n % 16 == 0). */
#define TILE_REF(NAME, ET, CVT)                                                                     \
    void NAME(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {           \
        for (int t = 0; t < 4; t++)                                                                 \
            for (int r = 0; r < 4; r++) {                                                           \
                const ET *w = x[r], *a = y[t];                                                      \
                float acc[16] = {0};                                                                \
                for (int i = 0; i < n; i += 16)                                                     \
                    for (int l = 0; l < 16 && i + l < n; l++)                                       \
                        acc[l] = fmaf(CVT(w[i + l]), CVT(a[i + l]), acc[l]);                        \
                s[t * lds + r] = cst_reduce16_ref(acc);                                             \
            }                                                                                       \
    }
#define CVT_F32(v) (v)
TILE_REF(cst_tile_f32_ref, float, CVT_F32)
TILE_REF(cst_tile_f16_ref, cst_f16, cst_f16_to_f32)

void cst_to_float_bf16_ref(const void *vx, float *y, int64_t n) {
    const cst_bf16 *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = cst_bf16_to_f32(x[i]);
}

void cst_from_float_bf16_ref(const float *x, void *vy, int64_t n) {
    cst_bf16 *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = cst_f32_to_bf16(x[i]);
}

void cst_vec_dot_bf16_ref(int n, float *s, const void *vx, const void *vy) {
    const cst_bf16 *x = vx, *y = vy;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)cst_bf16_to_f32(x[i]) * (double)cst_bf16_to_f32(y[i]);
    *s = (float)sum;
}
