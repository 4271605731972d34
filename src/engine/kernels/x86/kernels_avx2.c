/* kernels_avx2.c: AVX2 + FMA + F16C fast paths (compiled with those flags,
 * installed by dispatch.c only after a CPUID check). Each kernel must agree
 * with its _ref twin: quantization bit for bit, dot products to rounding.
 */
#include "../kernels_int.h"

#include <immintrin.h>

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

void cst_kernels_fill_avx2(cst_kernel_traits *tab) { (void)tab; }
