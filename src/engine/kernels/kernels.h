/* kernels.h: CPU compute kernels, dispatched per tensor type and per ISA.
 *
 * For every weight type there is a table entry (ggml's type_traits_cpu idea):
 * how to dequantize a row, how to quantize a float row into the type, which
 * type activations are converted to for dot products (Q8_0 for Q4_0/Q8_0,
 * Q8_K for the K-quants, F16 for F16, BF16 for BF16, F32 for F32 -- exactly as
 * llama.cpp, so results match it), and the dot product of one weight row with
 * one converted activation row.
 *
 * The scalar implementations in ref/ are the specification. x86/ holds AVX2
 * and AVX-512 (VNNI) versions chosen at run time from CPUID, arm/ NEON,
 * dotprod (SDOT) and i8mm (SMMLA) versions chosen from getauxval(AT_HWCAP,
 * AT_HWCAP2); the environment variable CST_ISA=ref|avx2|avx512|neon|dotprod|i8mm
 * forces one (an unavailable one is refused with a warning and the best
 * available is used).
 */
#ifndef CST_KERNELS_H
#define CST_KERNELS_H

#include "castor.h"
#include "../tensor/types.h"
#include "../../core/pool.h"
#include <stdbool.h>
#include <stdint.h>

typedef void (*cst_to_float_fn)(const void *x, float *y, int64_t n);
typedef void (*cst_from_float_fn)(const float *x, void *y, int64_t n);
/* s = dot(x, y) over n elements; x is a row of the weight type, y a row of its vec_dot_type. */
typedef void (*cst_vec_dot_fn)(int n, float *s, const void *x, const void *y);

typedef struct cst_kernel_traits {
    cst_type vec_dot_type;
    cst_to_float_fn to_float;     /* dequantize */
    cst_from_float_fn from_float; /* quantize (fast, as used for activations) */
    cst_vec_dot_fn vec_dot;
} cst_kernel_traits;

typedef enum {
    CST_ISA_REF = 0,
    CST_ISA_AVX2 = 1,
    CST_ISA_AVX512 = 2,
    CST_ISA_NEON = 3,    /* aarch64 Advanced SIMD (every aarch64 CPU) */
    CST_ISA_DOTPROD = 4, /* NEON + SDOT (armv8.2 dotprod) */
    CST_ISA_I8MM = 5,    /* dotprod + SMMLA (armv8.6 i8mm) */
} cst_isa;

/* Detect the CPU and install the dispatch tables (idempotent, thread-safe). */
void cst_kernels_init(void);
cst_isa cst_kernels_isa(void);
const char *cst_isa_name(cst_isa isa);
/* The ISA called name ("ref", "avx2", ...; any case), or -1 if there is none. */
cst_isa cst_isa_from_name(const char *name);
bool cst_isa_available(cst_isa isa);
/* Switch the active ISA (tests); false if not available on this CPU. */
bool cst_kernels_set_isa(cst_isa isa);

/* Table entry for type t under the active ISA; NULL if t is not supported. */
const cst_kernel_traits *cst_kernel_traits_for(cst_type t);
/* Table entry of a given ISA (tests compare fast paths with ref). */
const cst_kernel_traits *cst_kernel_traits_isa(cst_type t, cst_isa isa);

/* Reference quantization of weights (llama.cpp's quantize_row_*_ref
 * algorithms: same scale search, same rounding), used by `castor quantize`.
 * n must be a multiple of the type's block size. */
bool cst_quantize_row_ref(cst_type t, const float *x, void *y, int64_t n);

/* Rewrite the GGUF model `in` as `out` with every 2-D weight matrix converted
 * to `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) by the reference
 * quantizers, like llama-quantize --pure without an importance matrix: the
 * tensor bytes match llama-quantize's. 1-D tensors become F32; metadata is
 * copied; general.file_type is set. n_threads <= 0: all CPUs. */
cst_status cst_quantize_file(const char *in, const char *out, cst_type type, int n_threads, char *err,
                             size_t errlen);

/* ---- matrix multiply --------------------------------------------------
 * y[t*ldy + o] = sum_i W[o][i] * x[t*n_in + i]  for t < n_tok, o < n_out.
 * W holds n_out rows of n_in elements of type wt (cst_row_size(wt, n_in) bytes
 * each). The activations are converted once into wdata (scratch of at least
 * cst_matmul_wsize bytes, 64-byte aligned), then rows are split across the
 * pool's threads. Prompt batches use a tiled path that reuses each weight row
 * for several tokens. */
size_t cst_matmul_wsize(cst_type wt, int64_t n_in, int64_t n_tok);
void cst_matmul(cst_pool *pool, const void *W, cst_type wt, int64_t n_in, int64_t n_out,
                const float *x, int64_t n_tok, float *y, int64_t ldy, void *wdata);

/* ---- weights repacked at load (Q8_0, Q4_0, Q4_K by default on x86)
 * Matrices with n_out % 8 == 0 are copied at load into blocks that interleave
 * 8 rows in 4-byte groups (block_q8_0x8, block_q4_0x8, block_q4_Kx8: the same
 * size as the 8 rows, Q4_K 32 bytes more per 8 blocks for its unpacked
 * scales): one vector then holds 4 elements of 8 rows and a block's integer
 * dot lands in 8 lanes, one per row, with no horizontal sums. Each type keeps
 * the order it computes unpacked (Q8_0 llama.cpp's 8 lanes per output, Q4_0
 * and Q4_K the x8 order), so the bits do not change and do not depend on the
 * batch (decode runs the same kernel). Packed by default where the ISA has
 * the packed kernel (AVX2, AVX-512); CST_REPACK=0 turns it off.
 * cst_pack_wanted: (wt, shape) has a packed layout, an x86 SIMD ISA is
 * active and CST_REPACK is not 0.
 * cst_pack_size: bytes of the packed copy.
 * cst_pack: write the packed copy (cst_pack_size bytes) of W into P.
 * cst_matmul_packed: cst_matmul on a packed copy under any active ISA (the
 * AVX2 kernel on x86 with AVX2 or AVX-512, the scalar twin elsewhere), the
 * same bits everywhere. */
bool cst_pack_wanted(cst_type wt, int64_t n_in, int64_t n_out);
size_t cst_pack_size(cst_type wt, int64_t n_in, int64_t n_out);
void cst_pack(cst_type wt, int64_t n_in, int64_t n_out, const void *W, void *P);
void cst_matmul_packed(cst_pool *pool, const void *P, cst_type wt, int64_t n_in, int64_t n_out,
                       const float *x, int64_t n_tok, float *y, int64_t ldy, void *wdata);

/* ---- vector helpers used by the model code --------------------------- */
/* dot of two f16 vectors, accumulated in f32 (ggml_vec_dot_f16) */
void cst_vec_dot_f16(int n, float *s, const cst_f16 *x, const cst_f16 *y);
void cst_fp32_to_fp16_row(const float *x, cst_f16 *y, int64_t n);
/* Small f16 GEMM on the calling thread, f32 accumulation (attention shapes:
 * scores = K Q^T, out = V^T P^T):
 *   C[j*ldc + i] = sum_l A[i*lda + l] * B[j*ldb + l]   for i < m, j < n, l < k.
 * Uses the 4x4 micro-kernel of the active ISA (each A row read once per 4 B
 * rows); equals m*n cst_vec_dot_f16 calls up to float summation order. */
void cst_gemm_f16(int64_t m, int64_t n, int64_t k, const cst_f16 *A, size_t lda, const cst_f16 *B, size_t ldb,
                  float *C, int64_t ldc);
void cst_fp16_to_fp32_row(const cst_f16 *x, float *y, int64_t n);

#endif
