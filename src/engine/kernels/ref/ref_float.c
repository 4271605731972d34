/* ref_float.c: scalar reference kernels for the float types F32, F16 and
 * BF16: row conversion to/from float32 and dot products (accumulated in
 * double, as ggml's generic code does). Conversions are the exact ones of
 * core/half.h.
 */
#include "../kernels_int.h"

void cst_to_float_f32_ref(const void *x, float *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void cst_from_float_f32_ref(const float *x, void *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void cst_vec_dot_f32_ref(int n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)x[i] * (double)y[i];
    *s = (float)sum;
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
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)cst_f16_to_f32(x[i]) * (double)cst_f16_to_f32(y[i]);
    *s = (float)sum;
}

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
