/* dispatch.c: CPU feature detection and the per-ISA kernel tables.
 *
 * One table per ISA, indexed by weight type. The ref table is filled here;
 * the other tables start as copies of it and the x86/ (AVX2, AVX-512) or
 * arm/ (NEON, dotprod, i8mm) files overwrite the entries they accelerate.
 * CST_ISA=ref|avx2|avx512|neon|dotprod|i8mm forces one.
 */
#include "kernels_int.h"

#include "../../core/core.h"

#include <pthread.h>
#if defined(__x86_64__) || defined(__i386__)
#define CST_X86 1
#include <cpuid.h>
#endif
#if defined(__aarch64__)
#define CST_ARM64 1
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif
#endif
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>

#define N_ISA (CST_ISA_I8MM + 1)
static cst_kernel_traits tables[N_ISA][CST_TYPE_COUNT];
static cst_tile4x4_fn tiles[N_ISA][CST_TYPE_COUNT];
static bool isa_ok[N_ISA];
static bool has_bf16; /* AVX512_BF16 */
static _Atomic int active_isa = CST_ISA_REF;
/* hot helpers of the active ISA, cached so a call costs no lookup (attention
 * calls cst_vec_dot_f16 once per key) */
static void dot_f16_first(int n, float *s, const void *x, const void *y);
static cst_vec_dot_fn _Atomic active_dot_f16 = dot_f16_first;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void fill_ref(cst_kernel_traits *t) {
    t[CST_TYPE_F32] = (cst_kernel_traits){CST_TYPE_F32, cst_to_float_f32_ref, cst_from_float_f32_ref,
                                          cst_vec_dot_f32_ref};
    t[CST_TYPE_F16] = (cst_kernel_traits){CST_TYPE_F16, cst_to_float_f16_ref, cst_from_float_f16_ref,
                                          cst_vec_dot_f16_ref};
    t[CST_TYPE_BF16] = (cst_kernel_traits){CST_TYPE_BF16, cst_to_float_bf16_ref,
                                           cst_from_float_bf16_ref, cst_vec_dot_bf16_ref};
    t[CST_TYPE_Q8_0] = (cst_kernel_traits){CST_TYPE_Q8_0, cst_to_float_q8_0_ref,
                                           cst_from_float_q8_0_ref, cst_vec_dot_q8_0_q8_0_ref};
    t[CST_TYPE_Q4_0] = (cst_kernel_traits){CST_TYPE_Q8_0, cst_to_float_q4_0_ref,
                                           cst_quantize_q4_0_ref, cst_vec_dot_q4_0_q8_0_ref};
    t[CST_TYPE_Q4_K] = (cst_kernel_traits){CST_TYPE_Q8_K, cst_to_float_q4_K_ref,
                                           cst_quantize_q4_K_ref, cst_vec_dot_q4_K_q8_K_ref};
    t[CST_TYPE_Q5_K] = (cst_kernel_traits){CST_TYPE_Q8_K, cst_to_float_q5_K_ref,
                                           cst_quantize_q5_K_ref, cst_vec_dot_q5_K_q8_K_ref};
    t[CST_TYPE_Q6_K] = (cst_kernel_traits){CST_TYPE_Q8_K, cst_to_float_q6_K_ref,
                                           cst_quantize_q6_K_ref, cst_vec_dot_q6_K_q8_K_ref};
    /* Q8_K only as an activation type: no vec_dot of its own */
    t[CST_TYPE_Q8_K] = (cst_kernel_traits){CST_TYPE_Q8_K, cst_to_float_q8_K_ref,
                                           cst_from_float_q8_K_ref, NULL};
}

static void detect(void) {
    isa_ok[CST_ISA_REF] = true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* F16C: CPUID.1:ECX bit 29, read directly (clang < 15 rejects "f16c" in
     * __builtin_cpu_supports, which breaks the clang fuzz build) */
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    const bool f16c = __get_cpuid(1, &a1, &b1, &c1, &d1) && (c1 >> 29 & 1);
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    isa_ok[CST_ISA_AVX2] = avx2;
    isa_ok[CST_ISA_AVX512] = avx2 && __builtin_cpu_supports("avx512f") &&
                             __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl") &&
                             __builtin_cpu_supports("avx512dq") &&
                             __builtin_cpu_supports("avx512vnni");
    has_bf16 = isa_ok[CST_ISA_AVX512] && __builtin_cpu_supports("avx512bf16");
#endif
#ifdef CST_ARM64
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    isa_ok[CST_ISA_NEON] = (hw & HWCAP_ASIMD) != 0;
    isa_ok[CST_ISA_DOTPROD] = isa_ok[CST_ISA_NEON] && (hw & HWCAP_ASIMDDP);
    isa_ok[CST_ISA_I8MM] = isa_ok[CST_ISA_DOTPROD] && (hw2 & HWCAP2_I8MM);
#endif
}

static void init_tables(void) {
    detect();
    fill_ref(tables[CST_ISA_REF]);
    tiles[CST_ISA_REF][CST_TYPE_F32] = cst_tile_f32_ref; /* tinyBLAS order, see matmul.c */
    tiles[CST_ISA_REF][CST_TYPE_F16] = cst_tile_f16_ref;
    for (int i = 1; i < N_ISA; i++) memcpy(tables[i], tables[CST_ISA_REF], sizeof(tables[0]));
#ifdef CST_X86
    if (isa_ok[CST_ISA_AVX2]) {
        cst_kernels_fill_avx2(tables[CST_ISA_AVX2]);
        cst_kernels_tiles_kquants_avx2(tiles[CST_ISA_AVX2]);
        cst_kernels_tiles_avx2(tiles[CST_ISA_AVX2]);
    }
    if (isa_ok[CST_ISA_AVX512]) {
        cst_kernels_fill_avx2(tables[CST_ISA_AVX512]);
        cst_kernels_fill_avx512(tables[CST_ISA_AVX512]);
        cst_kernels_tiles_avx512(tiles[CST_ISA_AVX512]);
        cst_kernels_tiles_kquants_avx512(tiles[CST_ISA_AVX512]);
        cst_kernels_float_avx512(tables[CST_ISA_AVX512], tiles[CST_ISA_AVX512], has_bf16);
    }
#endif
#ifdef CST_ARM64
    if (isa_ok[CST_ISA_NEON]) cst_kernels_fill_neon(tables[CST_ISA_NEON], tiles[CST_ISA_NEON]);
    if (isa_ok[CST_ISA_DOTPROD]) cst_kernels_fill_dotprod(tables[CST_ISA_DOTPROD], tiles[CST_ISA_DOTPROD]);
    if (isa_ok[CST_ISA_I8MM]) /* i8mm adds only the x8 tiles (cst_kernel_x8) */
        cst_kernels_fill_dotprod(tables[CST_ISA_I8MM], tiles[CST_ISA_I8MM]);
#endif
    int best = CST_ISA_REF;
    for (int i = N_ISA - 1; i > 0 && best == CST_ISA_REF; i--)
        if (isa_ok[i]) best = i; /* each family's later entries extend its earlier ones */
    const char *env = getenv("CST_ISA");
    if (env && *env) {
        const int want = (int)cst_isa_from_name(env);
        if (want < 0)
            cst_warn("CST_ISA=%s is not one of ref|avx2|avx512|neon|dotprod|i8mm; using %s", env,
                     cst_isa_name((cst_isa)best));
        else if (!isa_ok[want])
            cst_warn("CST_ISA=%s is not available on this CPU; using %s", env, cst_isa_name((cst_isa)best));
        else
            best = want;
    }
    active_isa = best;
    active_dot_f16 = tables[best][CST_TYPE_F16].vec_dot;
}

void cst_kernels_init(void) { pthread_once(&init_once, init_tables); }

bool cst_kernels_has_avx512bf16(void) {
    cst_kernels_init();
    return has_bf16;
}

cst_isa cst_kernels_isa(void) {
    cst_kernels_init();
    return (cst_isa)active_isa;
}

const char *cst_isa_name(cst_isa isa) {
    switch (isa) {
    case CST_ISA_REF: return "ref";
    case CST_ISA_AVX2: return "avx2";
    case CST_ISA_AVX512: return "avx512";
    case CST_ISA_NEON: return "neon";
    case CST_ISA_DOTPROD: return "dotprod";
    case CST_ISA_I8MM: return "i8mm";
    }
    return "?";
}

cst_isa cst_isa_from_name(const char *name) {
    for (int i = 0; i < N_ISA; i++)
        if (name && !strcasecmp(name, cst_isa_name((cst_isa)i))) return (cst_isa)i;
    return (cst_isa)-1;
}

bool cst_isa_available(cst_isa isa) {
    cst_kernels_init();
    return (int)isa >= 0 && (int)isa < N_ISA && isa_ok[isa];
}

bool cst_kernels_set_isa(cst_isa isa) {
    if (!cst_isa_available(isa)) return false;
    active_isa = isa;
    active_dot_f16 = tables[isa][CST_TYPE_F16].vec_dot;
    return true;
}

const cst_kernel_traits *cst_kernel_traits_isa(cst_type t, cst_isa isa) {
    cst_kernels_init();
    if ((int)t < 0 || (int)t >= CST_TYPE_COUNT || (int)isa < 0 || (int)isa >= N_ISA) return NULL;
    const cst_kernel_traits *e = &tables[isa][t];
    return e->to_float ? e : NULL;
}

cst_tile4x4_fn cst_kernel_tile4x4_isa(cst_type t, cst_isa isa) {
    cst_kernels_init();
    if ((int)t < 0 || (int)t >= CST_TYPE_COUNT || (int)isa < 0 || (int)isa >= N_ISA) return NULL;
    return tiles[isa][t];
}

cst_vec_dot8_fn cst_kernel_x8_dot8(cst_type t, cst_isa isa) {
    cst_kernels_init();
    if (t != CST_TYPE_Q4_0 || (int)isa < 0 || (int)isa >= N_ISA || !isa_ok[isa]) return NULL;
    if (isa == CST_ISA_REF) return cst_vec_dot8_q4_0_q8_0_x8_ref;
#ifdef CST_X86
    if (isa == CST_ISA_AVX2 || isa == CST_ISA_AVX512) return cst_vec_dot8_q4_0_q8_0_x8_avx2;
#endif
    return NULL;
}

bool cst_kernel_x8(cst_type t, cst_isa isa, cst_vec_dot_fn *dot, cst_tile4x4_fn *tile) {
    cst_kernels_init();
    if (t != CST_TYPE_Q4_0 && t != CST_TYPE_Q4_K) return false;
    const bool q4k = t == CST_TYPE_Q4_K;
    *dot = q4k ? cst_vec_dot_q4_K_q8_K_x8_ref : cst_vec_dot_q4_0_q8_0_x8_ref;
    *tile = NULL;
    if ((int)isa < 0 || (int)isa >= N_ISA || !isa_ok[isa] || isa == CST_ISA_REF) return true;
#ifdef CST_X86
    if (isa == CST_ISA_AVX2 || isa == CST_ISA_AVX512) {
        *dot = q4k ? cst_vec_dot_q4_K_q8_K_x8_avx2 : cst_vec_dot_q4_0_q8_0_x8_avx2;
        if (isa == CST_ISA_AVX512) *tile = q4k ? cst_tile_q4_K_x8_avx512() : cst_tile_q4_0_x8_avx512();
        if (isa == CST_ISA_AVX2) *tile = q4k ? cst_tile_q4_K_x8_avx2() : cst_tile_q4_0_x8_avx2();
    }
#endif
#ifdef CST_ARM64
    if (isa == CST_ISA_NEON) *dot = q4k ? cst_vec_dot_q4_K_q8_K_x8_neon : cst_vec_dot_q4_0_q8_0_x8_neon;
    if (isa == CST_ISA_DOTPROD || isa == CST_ISA_I8MM)
        *dot = q4k ? cst_vec_dot_q4_K_q8_K_x8_dotprod : cst_vec_dot_q4_0_q8_0_x8_dotprod;
    if (isa == CST_ISA_I8MM) *tile = q4k ? cst_tile_q4_K_x8_i8mm : cst_tile_q4_0_x8_i8mm;
#endif
    return true;
}

cst_gemm_packed_fn cst_kernel_packed(cst_type t, cst_isa isa) {
    cst_kernels_init();
    const bool simd = (isa == CST_ISA_AVX2 || isa == CST_ISA_AVX512) && isa_ok[isa];
    (void)simd;
    /* AVX-512 (with VNNI): the same kernels with vpdpbusd */
    const bool vnni = simd && isa == CST_ISA_AVX512;
    (void)vnni;
    switch (t) {
#ifdef CST_X86
    case CST_TYPE_Q8_0: return vnni ? cst_gemm_q8_0x8_avx512 : simd ? cst_gemm_q8_0x8_avx2 : cst_gemm_q8_0x8_ref;
    case CST_TYPE_Q4_0: return vnni ? cst_gemm_q4_0x8_avx512 : simd ? cst_gemm_q4_0x8_avx2 : cst_gemm_q4_0x8_ref;
    case CST_TYPE_Q4_K: return vnni ? cst_gemm_q4_Kx8_avx512 : simd ? cst_gemm_q4_Kx8_avx2 : cst_gemm_q4_Kx8_ref;
#else
    case CST_TYPE_Q8_0: return cst_gemm_q8_0x8_ref;
    case CST_TYPE_Q4_0: return cst_gemm_q4_0x8_ref;
    case CST_TYPE_Q4_K: return cst_gemm_q4_Kx8_ref;
#endif
    default: return NULL;
    }
}

cst_tile4x4_fn cst_kernel_tile4x4(cst_type t) { return cst_kernel_tile4x4_isa(t, cst_kernels_isa()); }

const cst_kernel_traits *cst_kernel_traits_for(cst_type t) {
    return cst_kernel_traits_isa(t, cst_kernels_isa());
}

bool cst_quantize_row_ref(cst_type t, const float *x, void *y, int64_t n) {
    const cst_type_info *ti = cst_type_get_info((int)t);
    if (!ti->name || ti->blck_size <= 0 || n % ti->blck_size) return false;
    switch (t) {
    case CST_TYPE_F32: cst_from_float_f32_ref(x, y, n); return true;
    case CST_TYPE_F16: cst_from_float_f16_ref(x, y, n); return true;
    case CST_TYPE_BF16: cst_from_float_bf16_ref(x, y, n); return true;
    case CST_TYPE_Q8_0: cst_quantize_q8_0_ref(x, y, n); return true;
    case CST_TYPE_Q4_0: cst_quantize_q4_0_ref(x, y, n); return true;
    case CST_TYPE_Q4_K: cst_quantize_q4_K_ref(x, y, n); return true;
    case CST_TYPE_Q5_K: cst_quantize_q5_K_ref(x, y, n); return true;
    case CST_TYPE_Q6_K: cst_quantize_q6_K_ref(x, y, n); return true;
    default: return false;
    }
}

/* ---- vector helpers ---- */

/* installed until the tables exist */
static void dot_f16_first(int n, float *s, const void *x, const void *y) {
    cst_kernels_init();
    tables[cst_kernels_isa()][CST_TYPE_F16].vec_dot(n, s, x, y);
}

void cst_vec_dot_f16(int n, float *s, const cst_f16 *x, const cst_f16 *y) {
    const cst_vec_dot_fn f = atomic_load_explicit(&active_dot_f16, memory_order_relaxed);
    f(n, s, x, y);
}

void cst_fp32_to_fp16_row(const float *x, cst_f16 *y, int64_t n) {
    const cst_isa isa = cst_kernels_isa();
#ifdef CST_X86
    if (isa == CST_ISA_AVX2 || isa == CST_ISA_AVX512) {
        cst_fp32_to_fp16_row_avx2(x, y, n);
        return;
    }
#endif
#ifdef CST_ARM64
    if (isa >= CST_ISA_NEON) {
        cst_fp32_to_fp16_row_neon(x, y, n);
        return;
    }
#endif
    (void)isa;
    cst_from_float_f16_ref(x, y, n);
}

void cst_fp16_to_fp32_row(const cst_f16 *x, float *y, int64_t n) {
    const cst_isa isa = cst_kernels_isa();
#ifdef CST_X86
    if (isa == CST_ISA_AVX512) {
        cst_fp16_to_fp32_row_avx512(x, y, n);
        return;
    }
    if (isa == CST_ISA_AVX2) {
        cst_fp16_to_fp32_row_avx2(x, y, n);
        return;
    }
#endif
#ifdef CST_ARM64
    if (isa >= CST_ISA_NEON) {
        cst_fp16_to_fp32_row_neon(x, y, n);
        return;
    }
#endif
    (void)isa;
    cst_to_float_f16_ref(x, y, n);
}

void cst_gemm_f16(int64_t m, int64_t n, int64_t k, const cst_f16 *A, size_t lda, const cst_f16 *B, size_t ldb,
                  float *C, int64_t ldc) {
    const cst_tile4x4_fn tile = cst_kernel_tile4x4(CST_TYPE_F16);
    if (!tile || k > INT32_MAX) {
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < m; i++) cst_vec_dot_f16((int)k, &C[j * ldc + i], A + i * lda, B + j * ldb);
        return;
    }
    for (int64_t j = 0; j < n; j += 4) {
        const int nj = (int)CST_MIN(4, n - j);
        const void *yp[4];
        for (int q = 0; q < 4; q++) yp[q] = B + (j + CST_MIN(q, nj - 1)) * ldb;
        for (int64_t i = 0; i < m; i += 4) {
            const int ni = (int)CST_MIN(4, m - i);
            const void *xp[4];
            for (int q = 0; q < 4; q++) xp[q] = A + (i + CST_MIN(q, ni - 1)) * lda;
            float *c = C + j * ldc + i;
            if (ni == 4 && nj == 4) {
                tile((int)k, xp, yp, c, ldc);
                continue;
            }
            float tmp[16];
            tile((int)k, xp, yp, tmp, 4);
            for (int q = 0; q < nj; q++)
                for (int r = 0; r < ni; r++) c[q * ldc + r] = tmp[q * 4 + r];
        }
    }
}
