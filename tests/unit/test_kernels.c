/* test_kernels.c: the kernels module: ref dot products against float64 on
 * dequantized values, quantize/dequantize round-trip error limits, exact
 * llama.cpp activation rounding, fast paths (every available ISA) against ref,
 * matmul against per-element dot products for odd shapes and thread counts.
 */
#include "test.h"

#include "core/core.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/kernels_int.h" /* micro-kernel tables (module-internal) */

#include <stdlib.h>

static const cst_type all_types[] = {CST_TYPE_F32,  CST_TYPE_F16,  CST_TYPE_BF16,
                                     CST_TYPE_Q8_0, CST_TYPE_Q4_0, CST_TYPE_Q4_K,
                                     CST_TYPE_Q5_K, CST_TYPE_Q6_K};

/* deterministic xorshift + Box-Muller */
static uint64_t rng_state = 88172645463325252ull;
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static float nrand(void) {
    double u1 = urand(), u2 = urand();
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}
static void fill_normal(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * nrand();
}

/* Types whose kernels (vec_dot, tiles, matmul) of a given ISA accumulate in
 * exactly the ref's (ggml's) order: results must be bit-identical to ref.
 * F32/F16 follow ggml's AVX-512 orders (16 lanes) only in the AVX-512 table
 * and the ARM ones (four 4-lane registers per 16 lanes); the ARM tables
 * reproduce Q4_K's order too. Only BF16 sums in its own order there. */
static bool is_arm(cst_isa isa) { return isa == CST_ISA_NEON || isa == CST_ISA_DOTPROD || isa == CST_ISA_I8MM; }
static bool exact_order(cst_type t, cst_isa isa) {
    if (t == CST_TYPE_Q8_0 || t == CST_TYPE_Q4_0 || t == CST_TYPE_Q5_K || t == CST_TYPE_Q6_K) return true;
    if (t == CST_TYPE_F32 || t == CST_TYPE_F16) return isa == CST_ISA_AVX512 || isa == CST_ISA_REF || is_arm(isa);
    if (t == CST_TYPE_Q4_K) return is_arm(isa);
    return false;
}
/* the last cst_isa value (loops over every ISA) */
#define LAST_ISA CST_ISA_I8MM

/* bit equality of two floats (treats -0 != +0, as a bit-exact kernel must) */
static bool same_bits(float a, float b) { return cst_f32_bits(a) == cst_f32_bits(b); }

static void *xalloc(size_t n) {
    void *p = cst_alloc_aligned(n ? n : 64, 64);
    ASSERT(p);
    memset(p, 0, n ? n : 64);
    return p;
}

/* Quantize x as weights of type t (the file quantizer). */
static void *quant_weights(cst_type t, const float *x, int64_t n) {
    void *q = xalloc(cst_row_size(t, n));
    ASSERT(cst_quantize_row_ref(t, x, q, n));
    return q;
}

TEST(ref_vec_dot_matches_float64) {
    const int n = 1024;
    float *w = xalloc(n * 4), *a = xalloc(n * 4), *wd = xalloc(n * 4), *ad = xalloc(n * 4);
    for (size_t k = 0; k < CST_ARRAY_LEN(all_types); k++) {
        const cst_type t = all_types[k];
        const cst_kernel_traits *tr = cst_kernel_traits_isa(t, CST_ISA_REF);
        ASSERT_MSG(tr, "no traits for %s", cst_type_name(t));
        const cst_kernel_traits *vt = cst_kernel_traits_isa(tr->vec_dot_type, CST_ISA_REF);
        ASSERT(vt && vt->from_float);
        for (int rep = 0; rep < 4; rep++) {
            fill_normal(w, n, 0.05f);
            fill_normal(a, n, rep == 3 ? 300.0f : 1.0f);
            void *qw = quant_weights(t, w, n);
            void *qa = xalloc(cst_row_size(tr->vec_dot_type, n));
            vt->from_float(a, qa, n);
            tr->to_float(qw, wd, n);
            vt->to_float(qa, ad, n);
            double exact = 0, mag = 0;
            for (int i = 0; i < n; i++) {
                exact += (double)wd[i] * ad[i];
                mag += fabs((double)wd[i] * ad[i]);
            }
            float got = 0;
            tr->vec_dot(n, &got, qw, qa);
            ASSERT_MSG(fabs(got - exact) <= 2e-6 * mag + 1e-30, "%s: vec_dot %.9g vs float64 %.9g",
                       cst_type_name(t), got, exact);
            cst_free_aligned(qw);
            cst_free_aligned(qa);
        }
    }
    cst_free_aligned(w), cst_free_aligned(a), cst_free_aligned(wd), cst_free_aligned(ad);
}

/* relative RMS error of to_float(quantize(x)) */
static double roundtrip_err(cst_type t, const float *x, int64_t n, bool activation) {
    const cst_kernel_traits *tr = cst_kernel_traits_isa(t, CST_ISA_REF);
    ASSERT(tr);
    void *q = xalloc(cst_row_size(t, n));
    if (activation)
        tr->from_float(x, q, n);
    else
        ASSERT(cst_quantize_row_ref(t, x, q, n));
    float *y = xalloc(n * 4);
    tr->to_float(q, y, n);
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        s += (double)x[i] * x[i];
    }
    cst_free_aligned(q);
    cst_free_aligned(y);
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

TEST(roundtrip_error_limits) {
    static const struct {
        cst_type t;
        bool act;
        double limit;
    } cases[] = {
        {CST_TYPE_F32, false, 0.0},     {CST_TYPE_F16, false, 3e-4},    {CST_TYPE_BF16, false, 2.5e-3},
        {CST_TYPE_Q8_0, false, 0.008},  {CST_TYPE_Q8_0, true, 0.008},   {CST_TYPE_Q8_K, true, 0.009},
        {CST_TYPE_Q4_0, false, 0.10},   {CST_TYPE_Q4_K, false, 0.085},  {CST_TYPE_Q5_K, false, 0.045},
        {CST_TYPE_Q6_K, false, 0.022},
    };
    const int64_t n = 4096;
    float *x = xalloc(n * 4);
    for (int shape = 0; shape < 2; shape++) {
        if (shape == 0)
            fill_normal(x, n, 0.02f);
        else /* ggml's test pattern: 0.1 + 2 cos(i) */
            for (int64_t i = 0; i < n; i++) x[i] = 0.1f + 2.0f * cosf((float)i + 0.3f);
        for (size_t k = 0; k < CST_ARRAY_LEN(cases); k++) {
            const double e = roundtrip_err(cases[k].t, x, n, cases[k].act);
            if (getenv("CST_TEST_VERBOSE")) printf("  %s act=%d shape %d err %.5g\n", cst_type_name(cases[k].t), cases[k].act, shape, e);
            ASSERT_MSG(e <= cases[k].limit, "%s%s shape %d: rel rms err %.6g > %.6g",
                       cst_type_name(cases[k].t), cases[k].act ? " (activation)" : "", shape, e,
                       cases[k].limit);
        }
    }
    /* all zeros stay zeros */
    memset(x, 0, n * 4);
    for (size_t k = 0; k < CST_ARRAY_LEN(cases); k++)
        ASSERT_EQ(roundtrip_err(cases[k].t, x, n, cases[k].act) == 0.0, 1);
    cst_free_aligned(x);
}

TEST(q8_activation_rounding_is_llama_cpp) {
    /* Q8_0: amax 127 -> multiplier 1, ties to even (2.5 -> 2, 3.5 -> 4, -2.5 -> -2) */
    float x[QK_K];
    memset(x, 0, sizeof(x));
    x[0] = 127.0f, x[1] = 2.5f, x[2] = 3.5f, x[3] = -2.5f, x[4] = 0.5f, x[5] = 1.5f;
    block_q8_0 b[QK_K / QK8_0];
    cst_kernel_traits_isa(CST_TYPE_Q8_0, CST_ISA_REF)->from_float(x, b, QK8_0);
    ASSERT_EQ(b[0].qs[0], 127);
    ASSERT_EQ(b[0].qs[1], 2);
    ASSERT_EQ(b[0].qs[2], 4);
    ASSERT_EQ(b[0].qs[3], -2);
    ASSERT_EQ(b[0].qs[4], 0);
    ASSERT_EQ(b[0].qs[5], 2);
    ASSERT_EQ(b[0].d, cst_f32_to_f16(1.0f));
    /* the file quantizer rounds half away from zero instead */
    ASSERT(cst_quantize_row_ref(CST_TYPE_Q8_0, x, b, QK8_0));
    ASSERT_EQ(b[0].qs[1], 3);
    ASSERT_EQ(b[0].qs[3], -3);
    /* Q8_K: scale from the signed max: -127/max; here max = -127 -> iscale 1 */
    x[0] = -127.0f;
    block_q8_K k;
    cst_kernel_traits_isa(CST_TYPE_Q8_K, CST_ISA_REF)->from_float(x, &k, QK_K);
    ASSERT_EQ(k.qs[0], -127);
    ASSERT_EQ(k.qs[1], 2);
    ASSERT_EQ(k.qs[2], 4);
    ASSERT_EQ(k.qs[3], -2);
    ASSERT_EQ(k.bsums[0], -127 + 2 + 4 - 2 + 0 + 2);
    ASSERT_EQ(k.bsums[1], 0);
    ASSERT(k.d == 1.0f);
    /* max positive: iscale = -127/127 = -1, d = -1 */
    x[0] = 127.0f;
    cst_kernel_traits_isa(CST_TYPE_Q8_K, CST_ISA_REF)->from_float(x, &k, QK_K);
    ASSERT_EQ(k.qs[0], -127);
    ASSERT_EQ(k.qs[1], -2);
    ASSERT(k.d == -1.0f);
}

/* ---- fast paths vs ref ---- */

static void check_isa_against_ref(cst_isa isa) {
    static const int sizes[] = {256, 512, 768, 2048, 4352, 96, 1000}; /* 96, 1000: leftovers past 64 */
    for (size_t k = 0; k < CST_ARRAY_LEN(all_types); k++) {
        const cst_type t = all_types[k];
        const cst_kernel_traits *rt = cst_kernel_traits_isa(t, CST_ISA_REF);
        const cst_kernel_traits *ft = cst_kernel_traits_isa(t, isa);
        ASSERT(rt && ft && rt->vec_dot_type == ft->vec_dot_type);
        const cst_type vt = rt->vec_dot_type;
        const cst_kernel_traits *rv = cst_kernel_traits_isa(vt, CST_ISA_REF);
        const cst_kernel_traits *fv = cst_kernel_traits_isa(vt, isa);
        for (size_t si = 0; si < CST_ARRAY_LEN(sizes); si++) {
            if (sizes[si] % cst_type_get_info((int)t)->blck_size) continue;
            for (int pat = 0; pat < 4; pat++) {
                const int n = sizes[si];
                float *w = xalloc(n * 4), *a = xalloc(n * 4), *y1 = xalloc(n * 4), *y2 = xalloc(n * 4);
                fill_normal(w, n, 0.05f);
                fill_normal(a, n, 1.0f);
                if (pat == 1) memset(a, 0, n * 4);                       /* zeros */
                if (pat == 2) for (int i = 0; i < n; i++) a[i] *= 1e4f;  /* large */
                if (pat == 3) for (int i = 0; i < n; i += 3) a[i] = 0;   /* sparse */
                const size_t vsz = cst_row_size(vt, n);
                void *qa1 = xalloc(vsz), *qa2 = xalloc(vsz);
                rv->from_float(a, qa1, n);
                fv->from_float(a, qa2, n);
                ASSERT_MSG(!memcmp(qa1, qa2, vsz), "%s: %s activation conversion differs from ref (n=%d pat=%d)",
                           cst_isa_name(isa), cst_type_name(vt), n, pat);
                void *qw = quant_weights(t, w, n);
                /* dequantization */
                rt->to_float(qw, y1, n);
                ft->to_float(qw, y2, n);
                ASSERT_MSG(!memcmp(y1, y2, (size_t)n * 4), "%s: %s to_float differs", cst_isa_name(isa),
                           cst_type_name(t));
                /* weight from_float (same as ref quantizer for quantized weight types) */
                const size_t wsz = cst_row_size(t, n);
                void *qw2 = xalloc(wsz);
                ft->from_float(w, qw2, n);
                void *qw3 = xalloc(wsz);
                rt->from_float(w, qw3, n);
                ASSERT_MSG(!memcmp(qw2, qw3, wsz), "%s: %s from_float differs", cst_isa_name(isa),
                           cst_type_name(t));
                float s1 = 0, s2 = 0;
                rt->vec_dot(n, &s1, qw, qa1);
                ft->vec_dot(n, &s2, qw, qa1);
                double mag = 0;
                rv->to_float(qa1, y2, n);
                for (int i = 0; i < n; i++) mag += fabs((double)y1[i] * y2[i]);
                ASSERT_MSG(fabs((double)s1 - s2) <= 1e-5 * mag + 1e-30, "%s: %s vec_dot %.9g vs ref %.9g (n=%d pat=%d)",
                           cst_isa_name(isa), cst_type_name(t), s2, s1, n, pat);
                if (exact_order(t, isa))
                    ASSERT_MSG(same_bits(s1, s2), "%s: %s vec_dot %.9g not bit-identical to ref %.9g (n=%d pat=%d)",
                               cst_isa_name(isa), cst_type_name(t), s2, s1, n, pat);
                cst_free_aligned(w), cst_free_aligned(a), cst_free_aligned(y1), cst_free_aligned(y2);
                cst_free_aligned(qa1), cst_free_aligned(qa2), cst_free_aligned(qw), cst_free_aligned(qw2);
                cst_free_aligned(qw3);
            }
        }
    }
    /* f16 row helpers */
    const int n = 1003;
    float *x = xalloc(n * 4), *y = xalloc(n * 4);
    cst_f16 *h1 = xalloc(n * 2), *h2 = xalloc(n * 2);
    fill_normal(x, n, 10.0f);
    x[0] = 65504.0f, x[1] = 1e-7f, x[2] = -0.0f, x[3] = -60000.0f;
    cst_isa prev = cst_kernels_isa();
    ASSERT(cst_kernels_set_isa(isa));
    cst_fp32_to_fp16_row(x, h1, n);
    for (int i = 0; i < n; i++) h2[i] = cst_f32_to_f16(x[i]);
    ASSERT(!memcmp(h1, h2, n * 2));
    cst_fp16_to_fp32_row(h1, y, n);
    for (int i = 0; i < n; i++) ASSERT_EQ(cst_f32_bits(y[i]), cst_f32_bits(cst_f16_to_f32(h1[i])));
    float d1 = 0, d2 = 0;
    cst_vec_dot_f16(n, &d1, h1, h2);
    cst_kernel_traits_isa(CST_TYPE_F16, CST_ISA_REF)->vec_dot(n, &d2, h1, h2);
    ASSERT_NEAR(d1, d2, 1e-5 * fabs(d2));
    ASSERT(cst_kernels_set_isa(prev));
    cst_free_aligned(x), cst_free_aligned(y), cst_free_aligned(h1), cst_free_aligned(h2);
}

TEST(avx2_matches_ref) {
    if (!cst_isa_available(CST_ISA_AVX2)) {
        cst_test_skip("no AVX2");
        return;
    }
    check_isa_against_ref(CST_ISA_AVX2);
}

TEST(avx512_matches_ref) {
    if (!cst_isa_available(CST_ISA_AVX512)) {
        cst_test_skip("no AVX-512");
        return;
    }
    check_isa_against_ref(CST_ISA_AVX512);
}

TEST(neon_matches_ref) {
    if (!cst_isa_available(CST_ISA_NEON)) {
        cst_test_skip("not an aarch64 CPU");
        return;
    }
    check_isa_against_ref(CST_ISA_NEON);
}

TEST(dotprod_matches_ref) {
    if (!cst_isa_available(CST_ISA_DOTPROD)) {
        cst_test_skip("no dotprod");
        return;
    }
    check_isa_against_ref(CST_ISA_DOTPROD);
}

TEST(i8mm_matches_ref) {
    if (!cst_isa_available(CST_ISA_I8MM)) {
        cst_test_skip("no i8mm");
        return;
    }
    check_isa_against_ref(CST_ISA_I8MM);
}

/* Every 4x4 micro-kernel (rows x tokens) against 16 ref vec_dots, bounded by
 * the magnitude sum |w_i a_i| (a wrong bit would cost about mag/n). */
static void check_tile(cst_type t, cst_tile4x4_fn tile, cst_isa isa, const char *label) {
    static const int sizes[] = {32, 96, 256, 512, 800, 2048, 4352}; /* odd block counts too */
    {
        const cst_kernel_traits *rt = cst_kernel_traits_isa(t, CST_ISA_REF);
        const cst_kernel_traits *rv = cst_kernel_traits_isa(rt->vec_dot_type, CST_ISA_REF);
        const int bs = cst_type_get_info((int)t)->blck_size;
        for (size_t si = 0; si < CST_ARRAY_LEN(sizes); si++) {
            if (sizes[si] % bs) continue;
            for (int pat = 0; pat < 4; pat++) {
                const int n = sizes[si];
                const size_t wrow = cst_row_size(t, n), arow = cst_row_size(rt->vec_dot_type, n);
                /* rows and tokens at other strides than the row size (alignment kept) */
                const size_t bx = wrow + (pat & 1) * 8, by = arow + (pat & 2) * 4;
                char *W = xalloc(bx * 4), *A = xalloc(by * 4);
                float *w = xalloc(n * 4), *a = xalloc(n * 4), *wd = xalloc(n * 4 * 4), *ad = xalloc(n * 4 * 4);
                for (int r = 0; r < 4; r++) {
                    fill_normal(w, n, r == 3 ? 3.0f : 0.05f);
                    if (pat == 3) for (int i = 0; i < n; i += 2) w[i] = 0;
                    ASSERT(cst_quantize_row_ref(t, w, W + r * bx, n));
                    rt->to_float(W + r * bx, wd + r * n, n);
                }
                for (int tk = 0; tk < 4; tk++) {
                    fill_normal(a, n, tk == 2 ? 1e4f : 1.0f);
                    if (pat == 2 && tk == 1) memset(a, 0, n * 4);
                    rv->from_float(a, A + tk * by, n);
                    rv->to_float(A + tk * by, ad + tk * n, n);
                }
                float s[4 * 6];
                for (int i = 0; i < 24; i++) s[i] = -999.0f;
                const void *xp[4], *yp[4];
                for (int q = 0; q < 4; q++) xp[q] = W + q * bx, yp[q] = A + q * by;
                tile(n, xp, yp, s, 6);
                /* batches of some types have their own order (F32/F16: tinyBLAS): the ref tile */
                const cst_tile4x4_fn rtile = cst_kernel_tile4x4_isa(t, CST_ISA_REF);
                float sr[16];
                if (rtile) rtile(n, xp, yp, sr, 4);
                for (int tk = 0; tk < 4; tk++) {
                    for (int r = 0; r < 4; r++) {
                        float e = 0;
                        rt->vec_dot(n, &e, W + r * bx, A + tk * by);
                        double mag = 0;
                        for (int i = 0; i < n; i++) mag += fabs((double)wd[r * n + i] * ad[tk * n + i]);
                        ASSERT_MSG(fabs((double)s[tk * 6 + r] - e) <= 1e-5 * mag + 1e-30,
                                   "%s %s tile n=%d pat=%d: s[%d][%d] = %.9g, ref %.9g (mag %.3g)", label,
                                   cst_type_name(t), n, pat, tk, r, s[tk * 6 + r], e, mag);
                        if (rtile) e = sr[tk * 4 + r];
                        if (exact_order(t, isa))
                            ASSERT_MSG(same_bits(s[tk * 6 + r], e), "%s %s tile n=%d pat=%d: s[%d][%d] = %.9g not bit-identical to ref %.9g",
                                       label, cst_type_name(t), n, pat, tk, r, s[tk * 6 + r], e);
                    }
                    ASSERT(s[tk * 6 + 4] == -999.0f && s[tk * 6 + 5] == -999.0f);
                }
                cst_free_aligned(W), cst_free_aligned(A), cst_free_aligned(w), cst_free_aligned(a);
                cst_free_aligned(wd), cst_free_aligned(ad);
            }
        }
    }
}

TEST(tiles_match_ref) {
    for (int isa = CST_ISA_REF; isa <= LAST_ISA; isa++) {
        if (!cst_isa_available((cst_isa)isa)) continue;
        for (size_t k = 0; k < CST_ARRAY_LEN(all_types); k++) {
            const cst_tile4x4_fn tile = cst_kernel_tile4x4_isa(all_types[k], (cst_isa)isa);
            if (tile) check_tile(all_types[k], tile, (cst_isa)isa, cst_isa_name((cst_isa)isa));
        }
    }
}

/* The BF16 kernels exist twice on AVX-512 (vdpbf16ps or widen + FMA); the
 * dispatcher installs one, so check the widening pair here explicitly. */
TEST(bf16_widening_kernels_match_ref) {
#if !defined(__x86_64__)
    cst_test_skip("not an x86-64 build");
    return;
#else
    if (!cst_isa_available(CST_ISA_AVX512)) {
        cst_test_skip("no AVX-512");
        return;
    }
    static cst_kernel_traits tab[CST_TYPE_COUNT];
    static cst_tile4x4_fn tiles[CST_TYPE_COUNT];
    cst_kernels_float_avx512(tab, tiles, false);
    ASSERT(tab[CST_TYPE_BF16].vec_dot && tiles[CST_TYPE_BF16]);
    check_tile(CST_TYPE_BF16, tiles[CST_TYPE_BF16], CST_ISA_AVX512, "avx512 widening");
    const cst_kernel_traits *rt = cst_kernel_traits_isa(CST_TYPE_BF16, CST_ISA_REF);
    for (int n = 1; n < 300; n += 37) {
        float *w = xalloc(n * 4), *a = xalloc(n * 4), *wd = xalloc(n * 4), *ad = xalloc(n * 4);
        fill_normal(w, n, 1.0f);
        fill_normal(a, n, 1.0f);
        cst_bf16 *wb = xalloc(n * 2), *ab = xalloc(n * 2);
        rt->from_float(w, wb, n);
        rt->from_float(a, ab, n);
        rt->to_float(wb, wd, n);
        rt->to_float(ab, ad, n);
        double mag = 0;
        for (int i = 0; i < n; i++) mag += fabs((double)wd[i] * ad[i]);
        float e = 0, g = 0;
        rt->vec_dot(n, &e, wb, ab);
        tab[CST_TYPE_BF16].vec_dot(n, &g, wb, ab);
        ASSERT_MSG(fabs((double)g - e) <= 1e-5 * mag, "n=%d: %.9g vs ref %.9g", n, g, e);
        cst_free_aligned(w), cst_free_aligned(a), cst_free_aligned(wd), cst_free_aligned(ad);
        cst_free_aligned(wb), cst_free_aligned(ab);
    }
#endif
}

TEST(gemm_f16_matches_vec_dot) {
    static const int64_t ms[] = {1, 3, 4, 9}, ks[] = {1, 17, 64, 100};
    const cst_isa prev = cst_kernels_isa();
    const cst_kernel_traits *rt = cst_kernel_traits_isa(CST_TYPE_F16, CST_ISA_REF);
    for (int isa = CST_ISA_REF; isa <= LAST_ISA; isa++) {
        if (!cst_kernels_set_isa((cst_isa)isa)) continue;
        for (size_t a = 0; a < CST_ARRAY_LEN(ms); a++)
            for (size_t b = 0; b < CST_ARRAY_LEN(ms); b++)
                for (size_t c = 0; c < CST_ARRAY_LEN(ks); c++) {
                    const int64_t m = ms[a], n = ms[(b + 1) % CST_ARRAY_LEN(ms)], k = ks[c];
                    const size_t lda = (size_t)k + 3, ldb = (size_t)k + 5;
                    const int64_t ldc = m + 2;
                    float *f = xalloc((size_t)(m * lda + n * ldb) * 4);
                    fill_normal(f, (int64_t)(m * lda + n * ldb), 1.0f);
                    cst_f16 *A = xalloc(m * lda * 2), *B = xalloc(n * ldb * 2);
                    rt->from_float(f, A, (int64_t)(m * lda));
                    rt->from_float(f + m * lda, B, (int64_t)(n * ldb));
                    float *C = xalloc((size_t)(n * ldc) * 4);
                    for (int64_t i = 0; i < n * ldc; i++) C[i] = -999.0f;
                    cst_gemm_f16(m, n, k, A, lda, B, ldb, C, ldc);
                    for (int64_t j = 0; j < n; j++) {
                        for (int64_t i = 0; i < m; i++) {
                            float e = 0;
                            rt->vec_dot((int)k, &e, A + i * lda, B + j * ldb);
                            double mag = 0;
                            for (int64_t l = 0; l < k; l++)
                                mag += fabs((double)cst_f16_to_f32(A[i * lda + l]) * cst_f16_to_f32(B[j * ldb + l]));
                            ASSERT_MSG(fabs((double)C[j * ldc + i] - e) <= 1e-5 * mag + 1e-30,
                                       "%s m %lld n %lld k %lld: C[%lld][%lld] = %.9g, expected %.9g", cst_isa_name((cst_isa)isa),
                                       (long long)m, (long long)n, (long long)k, (long long)j, (long long)i, C[j * ldc + i], e);
                        }
                        for (int64_t i = m; i < ldc; i++) ASSERT(C[j * ldc + i] == -999.0f);
                    }
                    cst_free_aligned(f), cst_free_aligned(A), cst_free_aligned(B), cst_free_aligned(C);
                }
    }
    ASSERT(cst_kernels_set_isa(prev));
}

TEST(isa_names_and_selection) {
    /* scripts/test-arm64.sh chooses the CPU, so it knows which ISA must be
     * active (the best one, or the one CST_ISA forces) */
    const char *expect = getenv("CST_ISA_EXPECT");
    if (expect && *expect)
        ASSERT_MSG(cst_kernels_isa() == cst_isa_from_name(expect), "active ISA %s, expected %s",
                   cst_isa_name(cst_kernels_isa()), expect);
    ASSERT_STREQ(cst_isa_name(CST_ISA_REF), "ref");
    ASSERT_STREQ(cst_isa_name(CST_ISA_AVX2), "avx2");
    ASSERT_STREQ(cst_isa_name(CST_ISA_AVX512), "avx512");
    ASSERT_STREQ(cst_isa_name(CST_ISA_NEON), "neon");
    ASSERT_STREQ(cst_isa_name(CST_ISA_DOTPROD), "dotprod");
    ASSERT_STREQ(cst_isa_name(CST_ISA_I8MM), "i8mm");
    for (int i = CST_ISA_REF; i <= LAST_ISA; i++) ASSERT_EQ((int)cst_isa_from_name(cst_isa_name((cst_isa)i)), i);
    ASSERT_EQ((int)cst_isa_from_name("NEON"), (int)CST_ISA_NEON);
    ASSERT_EQ((int)cst_isa_from_name("sve"), -1);
    ASSERT_EQ((int)cst_isa_from_name(""), -1);
    ASSERT_EQ((int)cst_isa_from_name(NULL), -1);
    /* one family per build: an x86 CPU has no ARM level and the reverse; the
     * levels of a family nest */
    ASSERT(!(cst_isa_available(CST_ISA_AVX2) && cst_isa_available(CST_ISA_NEON)));
    ASSERT(!cst_isa_available(CST_ISA_AVX512) || cst_isa_available(CST_ISA_AVX2));
    ASSERT(!cst_isa_available(CST_ISA_I8MM) || cst_isa_available(CST_ISA_DOTPROD));
    ASSERT(!cst_isa_available(CST_ISA_DOTPROD) || cst_isa_available(CST_ISA_NEON));
#if defined(__aarch64__)
    ASSERT(cst_isa_available(CST_ISA_NEON));
#endif
    ASSERT(!cst_kernels_set_isa((cst_isa)(LAST_ISA + 1)));
    ASSERT(cst_isa_available(CST_ISA_REF));
    cst_isa prev = cst_kernels_isa();
    ASSERT(cst_kernels_set_isa(CST_ISA_REF));
    ASSERT_EQ(cst_kernels_isa(), CST_ISA_REF);
    ASSERT(cst_kernels_set_isa(prev));
    ASSERT(cst_kernel_traits_for(CST_TYPE_Q4_1) == NULL);
    ASSERT(cst_kernel_traits_for((cst_type)39) == NULL);
    ASSERT(!cst_quantize_row_ref(CST_TYPE_Q4_K, (const float *)NULL, NULL, 100)); /* not a multiple */
}

/* ---- matmul ---- */

/* n_out random rows of n_in weights (sd 0.05) quantized to t by the ref. */
static char *random_weights(cst_type t, int64_t n_in, int64_t n_out) {
    float *wf = xalloc(n_in * n_out * 4);
    fill_normal(wf, n_in * n_out, 0.05f);
    const size_t wrow = cst_row_size(t, n_in);
    char *W = xalloc(wrow * n_out);
    for (int64_t o = 0; o < n_out; o++) ASSERT(cst_quantize_row_ref(t, wf + o * n_in, W + o * wrow, n_in));
    cst_free_aligned(wf);
    return W;
}

static void check_matmul(cst_pool *pool, cst_type t, int64_t n_in, int64_t n_out, int64_t n_tok) {
    const cst_kernel_traits *tr = cst_kernel_traits_for(t);
    const cst_kernel_traits *vt = cst_kernel_traits_for(tr->vec_dot_type);
    char *W = random_weights(t, n_in, n_out);
    const size_t wrow = cst_row_size(t, n_in);
    float *x = xalloc(n_in * n_tok * 4);
    fill_normal(x, n_in * n_tok, 1.0f);
    const int64_t ldy = n_out + 3;
    float *y = xalloc(ldy * n_tok * 4);
    for (int64_t i = 0; i < ldy * n_tok; i++) y[i] = -999.0f;
    const size_t ws = cst_matmul_wsize(t, n_in, n_tok);
    void *wdata = xalloc(ws);
    cst_matmul(pool, W, t, n_in, n_out, x, n_tok, y, ldy, wdata);
    /* the same product under the ref tables (bit-identical where the order is) */
    const cst_isa isa = cst_kernels_isa();
    float *yr = xalloc(ldy * n_tok * 4);
    ASSERT(cst_kernels_set_isa(CST_ISA_REF));
    cst_matmul(pool, W, t, n_in, n_out, x, n_tok, yr, ldy, wdata);
    ASSERT(cst_kernels_set_isa(isa));
    const size_t arow = tr->vec_dot_type == CST_TYPE_F32 ? (size_t)n_in * 4 : cst_row_size(tr->vec_dot_type, n_in);
    char *qa = xalloc(arow);
    /* bound: 1e-5 of sum |w_i x_i| over the dequantized values (tiles sum in another order) */
    float *wdq = xalloc(n_in * 4), *xdq = xalloc(n_in * 4);
    for (int64_t tk = 0; tk < n_tok; tk++) {
        vt->from_float(x + tk * n_in, qa, n_in);
        if (tr->vec_dot_type == CST_TYPE_F32) memcpy(xdq, x + tk * n_in, n_in * 4);
        else vt->to_float(qa, xdq, n_in);
        for (int64_t o = 0; o < n_out; o++) {
            float e = 0;
            tr->vec_dot((int)n_in, &e, W + o * wrow, qa);
            tr->to_float(W + o * wrow, wdq, n_in);
            double mag = 0;
            for (int64_t i = 0; i < n_in; i++) mag += fabs((double)wdq[i] * xdq[i]);
            ASSERT_MSG(fabs((double)y[tk * ldy + o] - e) <= 1e-5 * mag + 1e-30,
                       "%s n_in %lld n_out %lld n_tok %lld: y[%lld][%lld] = %.9g, expected %.9g", cst_type_name(t),
                       (long long)n_in, (long long)n_out, (long long)n_tok, (long long)tk, (long long)o,
                       y[tk * ldy + o], e);
            if (exact_order(t, isa))
                ASSERT_MSG(same_bits(y[tk * ldy + o], yr[tk * ldy + o]),
                           "%s %s n_in %lld n_out %lld n_tok %lld: y[%lld][%lld] = %.9g not bit-identical to ref matmul %.9g",
                           cst_isa_name(isa), cst_type_name(t), (long long)n_in, (long long)n_out, (long long)n_tok,
                           (long long)tk, (long long)o, y[tk * ldy + o], yr[tk * ldy + o]);
        }
        for (int64_t o = n_out; o < ldy; o++) ASSERT(y[tk * ldy + o] == -999.0f);
    }
    cst_free_aligned(x), cst_free_aligned(W), cst_free_aligned(y);
    cst_free_aligned(wdata), cst_free_aligned(qa), cst_free_aligned(wdq), cst_free_aligned(xdq);
    cst_free_aligned(yr);
}

/* Q4_0/Q4_K matrices with rows % 8 == 0 use llama.cpp's repacked (8x8)
 * order: every ISA's dot and tile equal the ref dot bit for bit. */
TEST(x8_order_matches_ref) {
    static const int sizes[] = {256, 512, 768, 4352, 32, 96, 800};
    static const cst_type types[] = {CST_TYPE_Q4_0, CST_TYPE_Q4_K};
    for (size_t ti = 0; ti < CST_ARRAY_LEN(types); ti++) {
        const cst_type wt = types[ti];
        const cst_type at = wt == CST_TYPE_Q4_K ? CST_TYPE_Q8_K : CST_TYPE_Q8_0;
        cst_vec_dot_fn rdot;
        cst_tile4x4_fn rtile;
        ASSERT(cst_kernel_x8(wt, CST_ISA_REF, &rdot, &rtile));
        for (size_t si = 0; si < CST_ARRAY_LEN(sizes); si++) {
            const int n = sizes[si];
            if (n % cst_type_get_info((int)wt)->blck_size) continue;
            const size_t wrow = cst_row_size(wt, n), arow = cst_row_size(at, n);
            char *W = xalloc(wrow * 4), *A = xalloc(arow * 4);
            float *f = xalloc(n * 4);
            for (int k = 0; k < 4; k++) {
                fill_normal(f, n, k == 3 ? 2.0f : 0.05f);
                ASSERT(cst_quantize_row_ref(wt, f, W + k * wrow, n));
                fill_normal(f, n, k == 2 ? 1e3f : 1.0f);
                cst_kernel_traits_isa(at, CST_ISA_REF)->from_float(f, A + k * arow, n);
            }
            const void *xp[4], *yp[4];
            for (int k = 0; k < 4; k++) xp[k] = W + k * wrow, yp[k] = A + k * arow;
            float e[16];
            for (int t = 0; t < 4; t++)
                for (int r = 0; r < 4; r++) rdot(n, &e[4 * t + r], xp[r], yp[t]);
            for (int isa = CST_ISA_REF; isa <= LAST_ISA; isa++) {
                if (!cst_isa_available((cst_isa)isa)) continue;
                cst_vec_dot_fn dot;
                cst_tile4x4_fn tile;
                ASSERT(cst_kernel_x8(wt, (cst_isa)isa, &dot, &tile));
                /* x86 batches of these matrices run tiles (a lost dispatch line once made AVX2 run dots) */
                ASSERT(tile || (isa != CST_ISA_AVX2 && isa != CST_ISA_AVX512));
                for (int t = 0; t < 4; t++)
                    for (int r = 0; r < 4; r++) {
                        float g;
                        dot(n, &g, xp[r], yp[t]);
                        ASSERT_MSG(same_bits(g, e[4 * t + r]), "%s %s x8 dot n=%d: %.9g vs %.9g",
                                   cst_isa_name((cst_isa)isa), cst_type_name(wt), n, g, e[4 * t + r]);
                    }
                if (!tile) continue;
                float s[16];
                tile(n, xp, yp, s, 4);
                for (int k = 0; k < 16; k++)
                    ASSERT_MSG(same_bits(s[k], e[k]), "%s %s x8 tile n=%d [%d]: %.9g vs %.9g", cst_isa_name((cst_isa)isa),
                               cst_type_name(wt), n, k, s[k], e[k]);
            }
            cst_free_aligned(W), cst_free_aligned(A), cst_free_aligned(f);
        }
    }
    cst_vec_dot_fn d;
    cst_tile4x4_fn tl;
    ASSERT(!cst_kernel_x8(CST_TYPE_Q8_0, CST_ISA_REF, &d, &tl));
}

/* One token (decode): 8 rows at once give each row's x8 dot bit for bit,
 * on every ISA that has the 8-row kernel (x86: all, the ref twin included). */
TEST(x8_dot8_matches_ref) {
    static const int sizes[] = {32, 96, 256, 800, 2048, 8192};
    const cst_type wt = CST_TYPE_Q4_0;
    for (size_t si = 0; si < CST_ARRAY_LEN(sizes); si++) {
        const int n = sizes[si];
        const size_t wrow = cst_row_size(wt, n), arow = cst_row_size(CST_TYPE_Q8_0, n);
        char *W = xalloc(wrow * 8), *A = xalloc(arow);
        float *f = xalloc(n * 4);
        for (int r = 0; r < 8; r++) {
            fill_normal(f, n, r == 5 ? 3.0f : 0.05f);
            ASSERT(cst_quantize_row_ref(wt, f, W + r * wrow, n));
        }
        fill_normal(f, n, 1.0f);
        cst_kernel_traits_isa(CST_TYPE_Q8_0, CST_ISA_REF)->from_float(f, A, n);
        float e[8];
        for (int r = 0; r < 8; r++) cst_vec_dot_q4_0_q8_0_x8_ref(n, &e[r], W + r * wrow, A);
        int kernels = 0;
        for (int isa = CST_ISA_REF; isa <= LAST_ISA; isa++) {
            if (!cst_isa_available((cst_isa)isa)) continue;
            const cst_vec_dot8_fn dot8 = cst_kernel_x8_dot8(wt, (cst_isa)isa);
            ASSERT(dot8 || (isa != CST_ISA_REF && isa != CST_ISA_AVX2 && isa != CST_ISA_AVX512));
            if (!dot8) continue;
            kernels++;
            float g[8];
            dot8(n, g, W, wrow, A);
            for (int r = 0; r < 8; r++)
                ASSERT_MSG(same_bits(g[r], e[r]), "%s q4_0 x8 dot8 n=%d row %d: %.9g vs %.9g",
                           cst_isa_name((cst_isa)isa), n, r, g[r], e[r]);
        }
        ASSERT(kernels >= 1);
        cst_free_aligned(W), cst_free_aligned(A), cst_free_aligned(f);
    }
    ASSERT(!cst_kernel_x8_dot8(CST_TYPE_Q4_K, CST_ISA_REF));
}

/* Q8_0, Q4_0 and Q4_K repacked for 8 rows (cst_pack): the packed matmul of every
 * ISA (AVX2 kernel, scalar twin elsewhere) equals the ref dot of the order
 * the type computes unpacked (Q8_0: llama.cpp's lanes, Q4_0 / Q4_K: the x8
 * order) on the file's rows bit for bit, for 1-3 threads, token counts with
 * and without 4-token tails, a single token (decode) and large/zero inputs;
 * so a token's outputs also do not depend on the batch around it. All three
 * are packed by default under AVX2 / AVX-512 (not with CST_REPACK=0, not
 * under the scalar path). */
TEST(packed_matches_ref_order) {
    static const int64_t n_ins[] = {32, 96, 256, 576, 1536};
    static const int64_t n_outs[] = {8, 16, 40};
    static const int64_t toks[] = {1, 2, 3, 4, 5, 7, 16, 17, 33};
    static const cst_type types[] = {CST_TYPE_Q8_0, CST_TYPE_Q4_0, CST_TYPE_Q4_K};
    const int64_t n_max = 33;
    const cst_isa prev = cst_kernels_isa();
    for (int isa = CST_ISA_REF; isa <= LAST_ISA; isa++) {
        if (!cst_kernels_set_isa((cst_isa)isa)) continue;
        const bool fast = isa == CST_ISA_AVX2 || isa == CST_ISA_AVX512;
        ASSERT(cst_pack_wanted(CST_TYPE_Q8_0, 64, 16) == fast && !cst_pack_wanted(CST_TYPE_Q8_0, 64, 12));
        ASSERT(!cst_pack_wanted(CST_TYPE_Q8_0, 48, 16) && !cst_pack_wanted(CST_TYPE_Q5_K, 256, 16));
        ASSERT(cst_pack_wanted(CST_TYPE_Q4_0, 64, 16) == fast && !cst_pack_wanted(CST_TYPE_Q4_0, 64, 12));
        ASSERT(cst_pack_wanted(CST_TYPE_Q4_K, 512, 16) == fast && !cst_pack_wanted(CST_TYPE_Q4_K, 512, 12));
        ASSERT(setenv("CST_REPACK", "0", 1) == 0);
        ASSERT(!cst_pack_wanted(CST_TYPE_Q8_0, 64, 16));
        ASSERT(!cst_pack_wanted(CST_TYPE_Q4_0, 64, 16) && !cst_pack_wanted(CST_TYPE_Q4_K, 512, 16));
        ASSERT(unsetenv("CST_REPACK") == 0);
    }
    ASSERT(cst_kernels_set_isa(prev));
    int n_cmp = 0;
    for (size_t ti = 0; ti < CST_ARRAY_LEN(types); ti++)
        for (size_t a = 0; a < CST_ARRAY_LEN(n_ins); a++)
            for (size_t b = 0; b < CST_ARRAY_LEN(n_outs); b++) {
                const cst_type wt = types[ti], at = wt == CST_TYPE_Q4_K ? CST_TYPE_Q8_K : CST_TYPE_Q8_0;
                const int64_t n_in = n_ins[a], n_out = n_outs[b];
                if (n_in % cst_type_get_info((int)wt)->blck_size) continue;
                char *W = random_weights(wt, n_in, n_out);
                const size_t wrow = cst_row_size(wt, n_in), arow = cst_row_size(at, n_in);
                const size_t psize = cst_pack_size(wt, n_in, n_out);
                /* Q4_K keeps its scales unpacked: 32 bytes more per 8 blocks */
                ASSERT_EQ(psize, wrow * n_out + (wt == CST_TYPE_Q4_K ? 32 * (size_t)(n_out / 8) * (size_t)(n_in / 256) : 0));
                char *P = xalloc(psize);
                cst_pack(wt, n_in, n_out, W, P);
                float *x = xalloc(n_in * n_max * 4);
                fill_normal(x, n_in * n_max, 1.0f);
                for (int64_t i = 0; i < n_in; i++) x[5 * n_in + i] = 0.0f; /* an all-zero token */
                for (int64_t i = 0; i < n_in; i++) x[6 * n_in + i] *= 1e4f;
                char *qa = xalloc(arow * n_max);
                cst_kernel_traits_isa(at, CST_ISA_REF)->from_float(x, qa, n_in * n_max);
                float *e = xalloc(n_out * n_max * 4);
                const cst_vec_dot_fn x8 = wt == CST_TYPE_Q4_K   ? cst_vec_dot_q4_K_q8_K_x8_ref
                                          : wt == CST_TYPE_Q4_0 ? cst_vec_dot_q4_0_q8_0_x8_ref
                                                                : cst_vec_dot_q8_0_q8_0_ref;
                for (int64_t t = 0; t < n_max; t++)
                    for (int64_t o = 0; o < n_out; o++) x8((int)n_in, &e[t * n_out + o], W + o * wrow, qa + t * arow);
                void *wdata = xalloc(cst_matmul_wsize(wt, n_in, n_max));
                const int64_t ldy = n_out + 3;
                float *y = xalloc(ldy * n_max * 4);
                for (int isa = CST_ISA_REF; isa <= LAST_ISA; isa++) {
                    if (!cst_kernels_set_isa((cst_isa)isa)) continue;
                    for (int nth = 1; nth <= 3; nth++) {
                        cst_pool *pool = nth == 1 ? NULL : cst_pool_new(nth);
                        for (size_t k = 0; k < CST_ARRAY_LEN(toks); k++) {
                            const int64_t nt = toks[k];
                            for (int64_t i = 0; i < ldy * nt; i++) y[i] = -999.0f;
                            cst_matmul_packed(pool, P, wt, n_in, n_out, x, nt, y, ldy, wdata);
                            for (int64_t t = 0; t < nt; t++) {
                                for (int64_t o = 0; o < n_out; o++)
                                    ASSERT_MSG(same_bits(y[t * ldy + o], e[t * n_out + o]),
                                               "%s %s n_in %lld n_out %lld n_tok %lld threads %d: y[%lld][%lld] = %.9g, "
                                               "ref %.9g",
                                               cst_type_name(wt), cst_isa_name((cst_isa)isa), (long long)n_in,
                                               (long long)n_out, (long long)nt, nth, (long long)t, (long long)o,
                                               y[t * ldy + o], e[t * n_out + o]);
                                for (int64_t o = n_out; o < ldy; o++) ASSERT(y[t * ldy + o] == -999.0f);
                            }
                            n_cmp++;
                        }
                        cst_pool_free(pool);
                    }
                }
                ASSERT(cst_kernels_set_isa(prev));
                cst_free_aligned(W), cst_free_aligned(P), cst_free_aligned(x), cst_free_aligned(qa);
                cst_free_aligned(e), cst_free_aligned(wdata), cst_free_aligned(y);
            }
    printf("    %d packed products compared\n", n_cmp);
}

TEST(matmul_odd_shapes_and_threads) {
    static const int64_t toks[] = {1, 2, 3, 17, 40};
    static const int64_t outs[] = {1, 7, 8, 37}; /* 8: F32/F16 batches take the tile (tinyBLAS) path */
    const cst_isa prev = cst_kernels_isa();
    for (int isa = CST_ISA_REF; isa <= LAST_ISA; isa++) {
        if (!cst_kernels_set_isa((cst_isa)isa)) continue;
        for (int nth = 1; nth <= 3; nth++) {
            cst_pool *pool = nth == 1 ? NULL : cst_pool_new(nth);
            ASSERT(nth == 1 || pool);
            for (size_t k = 0; k < CST_ARRAY_LEN(all_types); k++)
                for (size_t a = 0; a < CST_ARRAY_LEN(toks); a++)
                    for (size_t b = 0; b < CST_ARRAY_LEN(outs); b++)
                        check_matmul(pool, all_types[k], 512, outs[b], toks[a]);
            cst_pool_free(pool);
        }
    }
    ASSERT(cst_kernels_set_isa(prev));
}

/* A token's outputs do not depend on the batch around it for the types whose
 * tiles sum in the dot's order (Q8_0, Q4_0 and the x8 repacked orders): the
 * matmul may pick dots or tiles by batch size (Q0_TILE_MIN_TOK), and a
 * server stream must give the same bits alone or batched with others. */
TEST(matmul_batch_invariant) {
    static const cst_type types[] = {CST_TYPE_Q8_0, CST_TYPE_Q4_0, CST_TYPE_Q4_K};
    static const int64_t toks[] = {1, 2, 3, 4, 7, 8, 9, 16, 33};
    const int64_t n_in = 512, n_max = 33;
    const cst_isa prev = cst_kernels_isa();
    cst_pool *pool = cst_pool_new(2);
    ASSERT(pool);
    for (int isa = CST_ISA_REF; isa <= LAST_ISA; isa++) {
        if (!cst_kernels_set_isa((cst_isa)isa)) continue;
        for (size_t k = 0; k < CST_ARRAY_LEN(types); k++) {
            for (int64_t n_out = 36; n_out <= 40; n_out += 4) { /* 40: x8 layouts */
                const cst_type t = types[k];
                if (t == CST_TYPE_Q4_K && n_out % 8) continue; /* its plain 4x4 tile has its own order */
                char *W = random_weights(t, n_in, n_out);
                float *x = xalloc(n_in * n_max * 4);
                fill_normal(x, n_in * n_max, 1.0f);
                void *wdata = xalloc(cst_matmul_wsize(t, n_in, n_max));
                float *y1 = xalloc(n_out * 4), *yb = xalloc(n_out * n_max * 4);
                for (size_t a = 0; a < CST_ARRAY_LEN(toks); a++) {
                    const int64_t nt = toks[a];
                    cst_matmul(pool, W, t, n_in, n_out, x, nt, yb, n_out, wdata);
                    for (int64_t tk = 0; tk < nt; tk++) {
                        cst_matmul(pool, W, t, n_in, n_out, x + tk * n_in, 1, y1, n_out, wdata);
                        for (int64_t o = 0; o < n_out; o++)
                            ASSERT_MSG(same_bits(yb[tk * n_out + o], y1[o]),
                                       "%s %s n_out %lld: token %lld of %lld, output %lld: %.9g batched, %.9g alone",
                                       cst_isa_name((cst_isa)isa), cst_type_name(t), (long long)n_out, (long long)tk,
                                       (long long)nt, (long long)o, yb[tk * n_out + o], y1[o]);
                    }
                }
                cst_free_aligned(x), cst_free_aligned(W), cst_free_aligned(wdata);
                cst_free_aligned(y1), cst_free_aligned(yb);
            }
        }
    }
    cst_pool_free(pool);
    ASSERT(cst_kernels_set_isa(prev));
}

/* ---- weight quantizers reproduce llama-quantize output ---- */

#include "engine/gguf/gguf.h"

/* Quantize every tensor of `ref` that is not F32 from the F32 master row by
 * row and compare bytes. Returns the number of differing rows. */
static int64_t requantize_and_compare(const char *ref_name, int64_t *n_rows_out, int64_t *n_tensors_out) {
    char err[256];
    cst_gguf *master = NULL, *ref = NULL;
    if (cst_gguf_open(cst_test_shared("models/tiny-llama-F32.gguf"), &master, err, sizeof err) != CST_OK ||
        cst_gguf_open(cst_test_shared(ref_name), &ref, err, sizeof err) != CST_OK) {
        cst_gguf_close(master);
        cst_test_skip("cannot open models: %s", err);
        return -1;
    }
    int64_t bad = 0, rows = 0, tensors = 0;
    for (int64_t i = 0; i < cst_gguf_n_tensors(ref); i++) {
        const cst_gguf_tensor *rt = cst_gguf_tensor_at(ref, i);
        if (rt->type == CST_TYPE_F32) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)rt->name.len, rt->name.ptr);
        const cst_gguf_tensor *mt = cst_gguf_find_tensor(master, name);
        ASSERT_MSG(mt && mt->type == CST_TYPE_F32 && mt->ne[0] == rt->ne[0], "master lacks %s", name);
        const int64_t n = rt->ne[0], nr = rt->nbytes / cst_row_size(rt->type, n);
        const size_t rs = cst_row_size(rt->type, n);
        char *buf = xalloc(rs);
        for (int64_t r = 0; r < nr; r++) {
            ASSERT(cst_quantize_row_ref(rt->type, (const float *)mt->data + r * n, buf, n));
            if (memcmp(buf, (const char *)rt->data + r * rs, rs)) {
                if (bad < 3) printf("  %s: %s row %lld differs\n", ref_name, name, (long long)r);
                bad++;
            }
            rows++;
        }
        tensors++;
        cst_free_aligned(buf);
    }
    cst_gguf_close(master);
    cst_gguf_close(ref);
    *n_rows_out = rows;
    *n_tensors_out = tensors;
    return bad;
}

TEST(quantizers_reproduce_llama_quantize) {
    static const char *files[] = {"models/tiny-llama-Q8_0.gguf", "models/tiny-llama-Q4_0.gguf",
                                  "models/tiny-llama-Q6_K.gguf", "models/tiny-llama-Q4_K.gguf",
                                  "models/tiny-llama-Q5_K.gguf", "models/tiny-llama-F16.gguf",
                                  "models/tiny-llama-Q4_K_M.gguf"};
    for (size_t f = 0; f < CST_ARRAY_LEN(files); f++) {
        int64_t rows = 0, tensors = 0;
        const int64_t bad = requantize_and_compare(files[f], &rows, &tensors);
        if (bad < 0) return;
        ASSERT_MSG(tensors > 0, "%s: no quantized tensors", files[f]);
        ASSERT_MSG(bad == 0, "%s: %lld of %lld rows differ", files[f], (long long)bad, (long long)rows);
    }
}

/* cst_quantize_file (castor quantize) reproduces llama-quantize --pure */
static void check_quantize_file(const char *ref_rel, cst_type type) {
    char out[512], err[256] = "";
    snprintf(out, sizeof out, "%s/q-%s.gguf", cst_test_tmpdir(), cst_type_name(type));
    ASSERT_MSG(cst_quantize_file(cst_test_shared("models/tiny-llama-F32.gguf"), out, type, 2, err, sizeof err) == CST_OK,
               "quantize: %s", err);
    cst_gguf *a = NULL, *b = NULL;
    ASSERT_OK(cst_gguf_open(out, &a, err, sizeof err));
    ASSERT_OK(cst_gguf_open(cst_test_shared(ref_rel), &b, err, sizeof err));
    ASSERT_EQ(cst_gguf_n_tensors(a), cst_gguf_n_tensors(b));
    ASSERT_EQ(cst_gguf_n_kv(a), cst_gguf_n_kv(b));
    ASSERT_EQ(cst_gguf_get_i64(a, "general.file_type", -1), cst_gguf_get_i64(b, "general.file_type", -2));
    ASSERT_EQ(cst_gguf_get_i64(a, "general.quantization_version", -1),
              cst_gguf_get_i64(b, "general.quantization_version", -1));
    for (int64_t i = 0; i < cst_gguf_n_tensors(b); i++) {
        const cst_gguf_tensor *tb = cst_gguf_tensor_at(b, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)tb->name.len, tb->name.ptr);
        const cst_gguf_tensor *ta = cst_gguf_find_tensor(a, name);
        ASSERT_MSG(ta, "%s missing", name);
        ASSERT_MSG(ta->type == tb->type, "%s: type %s vs %s", name, cst_type_name(ta->type), cst_type_name(tb->type));
        ASSERT_EQ(ta->n_dims, tb->n_dims);
        for (int d = 0; d < CST_MAX_DIMS; d++) ASSERT_EQ(ta->ne[d], tb->ne[d]);
        ASSERT_EQ(ta->nbytes, tb->nbytes);
        ASSERT_MSG(!memcmp(ta->data, tb->data, ta->nbytes), "%s: bytes differ", name);
    }
    cst_gguf_close(a);
    cst_gguf_close(b);
}

TEST(quantize_file_matches_llama_quantize) {
    check_quantize_file("models/tiny-llama-Q8_0.gguf", CST_TYPE_Q8_0);
    check_quantize_file("models/tiny-llama-Q4_0.gguf", CST_TYPE_Q4_0);
    check_quantize_file("models/tiny-llama-Q6_K.gguf", CST_TYPE_Q6_K);
    check_quantize_file("models/tiny-llama-Q4_K.gguf", CST_TYPE_Q4_K);
    check_quantize_file("models/tiny-llama-Q5_K.gguf", CST_TYPE_Q5_K);
    check_quantize_file("models/tiny-llama-F16.gguf", CST_TYPE_F16);
    char err[256];
    ASSERT(cst_quantize_file("/nonexistent.gguf", "/tmp/x.gguf", CST_TYPE_Q8_0, 1, err, sizeof err) != CST_OK);
    ASSERT(cst_quantize_file(cst_test_shared("models/tiny-llama-F32.gguf"), "/tmp/x.gguf", CST_TYPE_Q4_1, 1, err,
                             sizeof err) == CST_ERR_UNSUPPORTED);
}
