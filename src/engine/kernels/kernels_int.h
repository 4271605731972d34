/* kernels_int.h: declarations shared inside the kernels module: the scalar
 * reference kernels (ref/), the x86 fast paths (x86/) and small helpers the
 * dispatcher and matmul use. Nothing outside src/engine/kernels includes it.
 */
#ifndef CST_KERNELS_INT_H
#define CST_KERNELS_INT_H

#include "kernels.h"

#include <string.h>

/* Round to nearest, ties to even, for |x| < 2^22 (ggml's nearest_int: adding
 * 1.5*2^23 leaves the rounded integer in the low mantissa bits). */
static inline int cst_nearest_int(float x) {
    float v = x + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

/* K-quant 6-bit scale/min packing (12 bytes for 8 pairs). */
static inline void cst_get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* ---- ref: float types ---- */
void cst_to_float_f32_ref(const void *x, float *y, int64_t n);
void cst_from_float_f32_ref(const float *x, void *y, int64_t n);
void cst_vec_dot_f32_ref(int n, float *s, const void *x, const void *y);
void cst_to_float_f16_ref(const void *x, float *y, int64_t n);
void cst_from_float_f16_ref(const float *x, void *y, int64_t n);
void cst_vec_dot_f16_ref(int n, float *s, const void *x, const void *y);
void cst_to_float_bf16_ref(const void *x, float *y, int64_t n);
void cst_from_float_bf16_ref(const float *x, void *y, int64_t n);
void cst_vec_dot_bf16_ref(int n, float *s, const void *x, const void *y);

/* _mm512_reduce_add_ps order: (v[k]+v[k+8]), then (+4), then (0+2) + (1+3) */
float cst_reduce16_ref(const float v[16]);
/* F32/F16 4x4 tiles in tinyBLAS order (signature of cst_tile4x4_fn) */
void cst_tile_f32_ref(int n, const void *const *x, const void *const *y, float *s, int64_t lds);
void cst_tile_f16_ref(int n, const void *const *x, const void *const *y, float *s, int64_t lds);

/* ---- ref: quantized types ---- */
void cst_to_float_q8_0_ref(const void *x, float *y, int64_t n);
void cst_to_float_q4_0_ref(const void *x, float *y, int64_t n);
void cst_to_float_q4_K_ref(const void *x, float *y, int64_t n);
void cst_to_float_q5_K_ref(const void *x, float *y, int64_t n);
void cst_to_float_q6_K_ref(const void *x, float *y, int64_t n);
void cst_to_float_q8_K_ref(const void *x, float *y, int64_t n);

/* activation quantizers, rounding exactly as llama.cpp's x86 CPU backend */
void cst_from_float_q8_0_ref(const float *x, void *y, int64_t n);
void cst_from_float_q8_K_ref(const float *x, void *y, int64_t n);

/* weight quantizers (llama.cpp's quantize_row_*_ref) */
void cst_quantize_q8_0_ref(const float *x, void *y, int64_t n);
void cst_quantize_q4_0_ref(const float *x, void *y, int64_t n);
void cst_quantize_q4_K_ref(const float *x, void *y, int64_t n);
void cst_quantize_q5_K_ref(const float *x, void *y, int64_t n);
void cst_quantize_q6_K_ref(const float *x, void *y, int64_t n);

/* ggml's hsum_float_8 order: (lo128 + hi128), then (0+2) + (1+3) */
float cst_hsum8_ref(const float v[8]);
/* Q5_K's mins term summs += dmin * isum, fused as GCC contracts ggml's
 * `summs += dmin * _mm_extract_epi32(...)` */
#define CST_Q5K_SUMMS(dmin, fsum, summs) fmaf((dmin), (fsum), (summs))
void cst_vec_dot_q8_0_q8_0_ref(int n, float *s, const void *x, const void *y);
void cst_vec_dot_q4_0_q8_0_ref(int n, float *s, const void *x, const void *y);
void cst_vec_dot_q4_0_q8_0_x8_ref(int n, float *s, const void *x, const void *y);
void cst_vec_dot_q4_K_q8_K_x8_ref(int n, float *s, const void *x, const void *y);
void cst_vec_dot_q4_K_q8_K_ref(int n, float *s, const void *x, const void *y);
void cst_vec_dot_q5_K_q8_K_ref(int n, float *s, const void *x, const void *y);
void cst_vec_dot_q6_K_q8_K_ref(int n, float *s, const void *x, const void *y);

/* ---- x86 fast paths (compiled with ISA flags; call only after CPUID) ---- */
void cst_kernels_fill_avx2(cst_kernel_traits *tab);   /* tab indexed by cst_type */
void cst_kernels_fill_avx512(cst_kernel_traits *tab);
void cst_fp32_to_fp16_row_avx2(const float *x, cst_f16 *y, int64_t n);
void cst_fp16_to_fp32_row_avx512(const cst_f16 *x, float *y, int64_t n);

/* Optional 4x4 micro-kernel: dots of 4 weight rows x[r] with 4 converted
 * activation rows y[t]: s[t*lds + r] for r, t < 4. Pointers may repeat (tails).
 * Must equal 16 vec_dot calls up to float rounding. */
typedef void (*cst_tile4x4_fn)(int n, const void *const *x, const void *const *y, float *s, int64_t lds);
/* tile kernel of type t under the active ISA, or NULL */
cst_tile4x4_fn cst_kernel_tile4x4(cst_type t);
cst_tile4x4_fn cst_kernel_tile4x4_isa(cst_type t, cst_isa isa);
void cst_kernels_tiles_avx512(cst_tile4x4_fn *tab); /* indexed by cst_type */
void cst_kernels_tiles_kquants_avx512(cst_tile4x4_fn *tab);
void cst_kernels_tiles_kquants_avx2(cst_tile4x4_fn *tab);
void cst_kernels_tiles_avx2(cst_tile4x4_fn *tab); /* Q8_0, Q4_0, F32, F16, BF16 */
/* F32/F16/BF16 tiles and the BF16 dot; has_bf16: the CPU has AVX512_BF16 */
void cst_kernels_float_avx512(cst_kernel_traits *tab, cst_tile4x4_fn *tiles, bool has_bf16);
/* CPU has AVX512_BF16 (valid after cst_kernels_init) */
bool cst_kernels_has_avx512bf16(void);
void cst_fp16_to_fp32_row_avx2(const cst_f16 *x, float *y, int64_t n);

/* Q4_0 and Q4_K matrices with rows % 8 == 0 (llama.cpp repacks them into
 * q4_0x8 / q4_Kx8 and uses ggml_gemv/gemm_*_8x8): their order per output is
 * one float acc = fma(block int sum, dw * da, acc) (Q4_K: plus a mins
 * accumulator, subtracted at the end). Dot and tile (tile may be NULL) of this
 * order for type t (Q4_0 or Q4_K) and an ISA; false for other types. */
bool cst_kernel_x8(cst_type t, cst_isa isa, cst_vec_dot_fn *dot, cst_tile4x4_fn *tile);
void cst_vec_dot_q4_0_q8_0_x8_avx2(int n, float *s, const void *x, const void *y);
/* Decode (one activation row): 8 consecutive weight rows, bx bytes apart, of
 * an x8-order matrix; s[r] equals the x8 dot of row r bit for bit (8 rows
 * side by side hide the dot's serial fma chain). The x8 dot8 of type t for
 * an ISA (the scalar twin for ref), or NULL: one dot per row then. */
typedef void (*cst_vec_dot8_fn)(int n, float *s, const void *x, size_t bx, const void *y);
cst_vec_dot8_fn cst_kernel_x8_dot8(cst_type t, cst_isa isa);
void cst_vec_dot8_q4_0_q8_0_x8_ref(int n, float *s, const void *x, size_t bx, const void *y);
void cst_vec_dot8_q4_0_q8_0_x8_avx2(int n, float *s, const void *x, size_t bx, const void *y);
void cst_vec_dot_q4_K_q8_K_x8_avx2(int n, float *s, const void *x, const void *y);
cst_tile4x4_fn cst_tile_q4_0_x8_avx512(void);
cst_tile4x4_fn cst_tile_q4_K_x8_avx512(void);
cst_tile4x4_fn cst_tile_q4_0_x8_avx2(void);
cst_tile4x4_fn cst_tile_q4_K_x8_avx2(void);

/* Q8_0 repacked for 8 rows (cst_pack): block b of rows 8g..8g+7 is
 * d[r] = row r's scale, qs[32 * j + 4 * r + e] = row r's element 4 * j + e. */
typedef struct {
    cst_f16 d[8];
    int8_t qs[8 * QK8_0];
} block_q8_0x8;
static_assert(sizeof(block_q8_0x8) == 8 * sizeof(block_q8_0), "block_q8_0x8 size");
/* Packed micro-kernel: the 8 rows of packed group P (n elements each) with nt
 * (1..4) activation rows y[t]: s[t * lds + r] for r < 8, t < nt. */
typedef void (*cst_gemm_packed_fn)(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds);
void cst_gemm_q8_0x8_ref(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds);
void cst_gemm_q8_0x8_avx2(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds);
void cst_gemm_q8_0x8_avx512(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds);
/* Q4_0 repacked for 8 rows (cst_pack): block b of rows 8g..8g+7 is d[r] =
 * row r's scale, qs[32 * j + 4 * r + e] = row r's byte qs[4 * j + e] (its
 * elements 4j+e in the low nibble and 16+4j+e in the high one), j < 4. The
 * kernels compute the x8 order (cst_vec_dot_q4_0_q8_0_x8_ref) bit for bit. */
typedef struct {
    cst_f16 d[8];
    uint8_t qs[8 * QK4_0 / 2];
} block_q4_0x8;
static_assert(sizeof(block_q4_0x8) == 8 * sizeof(block_q4_0), "block_q4_0x8 size");
void cst_gemm_q4_0x8_ref(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds);
/* Q4_K repacked for 8 rows (cst_pack): per super-block the 8 rows' d and
 * dmin, their 6-bit sub-block scales and mins unpacked, sc[j][r] / m[j][r]
 * for sub-block j of row r, and qs[32 * k + 4 * r + e] = row r's byte
 * qs[4 * k + e], k < 32 (byte 4k+e holds elements 64c + (4k+e) % 32 in its
 * low nibble and 64c + 32 + (4k+e) % 32 in its high one, c = k / 8). 32
 * bytes more than the 8 blocks. The kernels compute the x8 order
 * (cst_vec_dot_q4_K_q8_K_x8_ref) bit for bit. */
typedef struct {
    cst_f16 d[8], dmin[8];
    uint8_t sc[QK_K / 32][8], m[QK_K / 32][8];
    uint8_t qs[8 * QK_K / 2];
} block_q4_Kx8;
static_assert(sizeof(block_q4_Kx8) == 8 * sizeof(block_q4_K) + 32, "block_q4_Kx8 size");
void cst_gemm_q4_Kx8_ref(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds);
void cst_gemm_q4_Kx8_avx2(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds);
void cst_gemm_q4_Kx8_avx512(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds);
void cst_gemm_q4_0x8_avx2(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds);
void cst_gemm_q4_0x8_avx512(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds);
/* the packed kernel of type t under an ISA (NULL: t has no packed layout) */
cst_gemm_packed_fn cst_kernel_packed(cst_type t, cst_isa isa);

/* ---- ARM fast paths (arm/, built on aarch64 only; dotprod and i8mm files
 * are compiled with +dotprod / +i8mm and called only after getauxval) ----
 * Each fills the entries it accelerates over a copy of the ref table: NEON
 * is the base, dotprod the same code with SDOT, i8mm is dotprod plus SMMLA
 * tiles for the x8 (repacked) orders. */
void cst_kernels_fill_neon(cst_kernel_traits *tab, cst_tile4x4_fn *tiles);
void cst_kernels_fill_dotprod(cst_kernel_traits *tab, cst_tile4x4_fn *tiles);
void cst_fp32_to_fp16_row_neon(const float *x, cst_f16 *y, int64_t n);
void cst_fp16_to_fp32_row_neon(const cst_f16 *x, float *y, int64_t n);
void cst_vec_dot_q4_0_q8_0_x8_neon(int n, float *s, const void *x, const void *y);
void cst_vec_dot_q4_K_q8_K_x8_neon(int n, float *s, const void *x, const void *y);
void cst_vec_dot_q4_0_q8_0_x8_dotprod(int n, float *s, const void *x, const void *y);
void cst_vec_dot_q4_K_q8_K_x8_dotprod(int n, float *s, const void *x, const void *y);
void cst_tile_q4_0_x8_i8mm(int n, const void *const *x, const void *const *y, float *s, int64_t lds);
void cst_tile_q4_K_x8_i8mm(int n, const void *const *x, const void *const *y, float *s, int64_t lds);

#endif
