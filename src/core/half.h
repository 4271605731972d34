/* half.h: IEEE binary16 and bfloat16 <-> float32 conversions, scalar and exact
 * (round to nearest even), bit-identical to ggml's reference conversions.
 * Kernels may use F16C/AVX-512 instructions for bulk conversion; these are the
 * specification they are tested against.
 */
#ifndef CST_HALF_H
#define CST_HALF_H

#include <stdint.h>
#include <string.h>

typedef uint16_t cst_f16;  /* IEEE 754 binary16 bits */
typedef uint16_t cst_bf16; /* bfloat16 bits */

static inline uint32_t cst_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float cst_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* binary16 -> float32, exact (Maratyszcza's FP16 method, as ggml uses). */
static inline float cst_f16_to_f32(cst_f16 h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = 0xE0u << 23;
    const float exp_scale = 0x1.0p-112f;
    const float normalized = cst_bits_f32((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = 126u << 23;
    const float magic_bias = 0.5f;
    const float denormalized = cst_bits_f32((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denormalized_cutoff = 1u << 27;
    const uint32_t result =
        sign | (two_w < denormalized_cutoff ? cst_f32_bits(denormalized) : cst_f32_bits(normalized));
    return cst_bits_f32(result);
}

/* float32 -> binary16, round to nearest even, NaN preserved. */
static inline cst_f16 cst_f32_to_f16(float f) {
    const float scale_to_inf = 0x1.0p+112f;
    const float scale_to_zero = 0x1.0p-110f;
    float base = (f < 0 ? -f : f) * scale_to_inf;
    base *= scale_to_zero;
    const uint32_t w = cst_f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = cst_bits_f32((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = cst_f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (cst_f16)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float cst_bf16_to_f32(cst_bf16 h) { return cst_bits_f32((uint32_t)h << 16); }

/* float32 -> bfloat16, round to nearest even; NaN forced quiet (as ggml). */
static inline cst_bf16 cst_f32_to_bf16(float f) {
    uint32_t u = cst_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (cst_bf16)((u >> 16) | 64);
    return (cst_bf16)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#endif
