/* kquants_avx512.c: 4x4 (weight rows x tokens) micro-kernels for the K-quants
 * (Q4_K, Q5_K, Q6_K) against Q8_K activations, AVX-512 BW + VNNI, working on
 * the file's blocks as they are (no repacking). Per 64-element chunk a weight
 * row is unpacked once to unsigned bytes and used for 4 tokens:
 * maddubs (u8 x s8 -> s16 pairs) then dpwssd with the 16-bit sub-block scales,
 * so every super-block sum is exact in int32, as in the per-row vec_dot.
 * At the end of a super-block the 4 rows of a token are folded into one
 * vector (lane k holds a partial sum of row k % 4) and scaled in float.
 */
#include "../kernels_int.h"

#include <immintrin.h>

static inline float f16(cst_f16 h) { return _cvtsh_ss(h); }

static inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* Sum of the 4 rows' int32 vectors of one token: lane k of the result holds a
 * partial sum of row k % 4 (one per 128-bit lane). */
static inline __m512i fold4(__m512i s0, __m512i s1, __m512i s2, __m512i s3) {
    const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(s0, s1), _mm512_unpackhi_epi32(s0, s1));
    const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(s2, s3), _mm512_unpackhi_epi32(s2, s3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

/* [v0 v1 v2 v3] repeated in the four 128-bit lanes */
static inline __m512 bcast4(__m128 v) { return _mm512_broadcast_f32x4(v); }

enum { KIND_Q4 = 4, KIND_Q5 = 5, KIND_Q6 = 6, KIND_Q4X8 = 7 /* Q4_K in the repacked q4_K_8x8 order */ };

static inline __attribute__((always_inline)) void tile_k(const int kind, int n, const void *const *vx,
                                                         const void *const *vy, float *s, int64_t lds) {
    const int nb = n / QK_K;
    const size_t bsz = kind == KIND_Q4 || kind == KIND_Q4X8 ? sizeof(block_q4_K) : kind == KIND_Q5 ? sizeof(block_q5_K)
                                                                               : sizeof(block_q6_K);
    const char *xr[4];
    const block_q8_K *yt[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        xr[k] = (const char *)vx[k];
        yt[k] = (const block_q8_K *)vy[k];
    }
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __mmask32 hi16 = 0xFFFF0000u;
    /* mins: 16-bit unit k = 4p + r of the result <- unit 8r + 4 + p of sm4 (row r's mins
     * are bytes 8-15 of 128-bit lane r) */
    static const int16_t mins_units[32] = {4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31};
    const __m512i mins_idx = _mm512_loadu_si512((const void *)mins_units);
    /* bsums pairs: 32-bit lane k = 4p + r <- (bsp[2p], bsp[2p+1]) */
    const __m512i bsp_idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 4, 4, 4, 4, 5, 5, 5, 5);
    /* Q4_K: folded float accumulators; Q5_K/Q6_K: ggml's order, one 8-lane
     * accumulator per (row, token) and (Q5_K) a float mins sum per (row, token) */
    const int exact = kind == KIND_Q5 || kind == KIND_Q6;
    __m512 accx = _mm512_setzero_ps(), accxm = _mm512_setzero_ps(); /* KIND_Q4X8: lane 4t + r */
    __m512 acc[4];
    __m256 acc8[4][4];
    __m128 summs[4];
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) {
        acc[t] = _mm512_setzero_ps();
        summs[t] = _mm_setzero_ps();
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) acc8[r][t] = _mm256_setzero_ps();
    }

    for (int i = 0; i < nb; i++) {
        const char *xb[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) xb[r] = xr[r] + (size_t)i * bsz;
        const block_q8_K *a[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) a[t] = &yt[t][i];

        __m512i sc16[4]; /* per row: int16 sub-block scales (lanes 0-7 Q4/Q5, 0-15 Q6) */
        __m512i sumi[4][4];
        __m512 d4;
        __m512i sm4 = _mm512_setzero_si512(); /* Q4/Q5: 128-bit lane r = row r's 8 scales, 8 mins */
        __m512 dmin4 = _mm512_setzero_ps();
        if (kind != KIND_Q6) {
            /* the first 16 bytes of Q4_K/Q5_K blocks: d, dmin, 12 bytes of packed 6-bit
             * scales/mins (dwords u0 u1 u2); unpacked for the 4 rows at once:
             * [u0 & 3f, (u2 & 0f) | (u0 >> 2 & 30), u1 & 3f, (u2 >> 4 & 0f) | (u1 >> 2 & 30)] */
            const __m512i raw = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)xb[0])),
                                                               _mm_loadu_si128((const __m128i *)xb[1]), 1)),
                _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)xb[2])),
                                        _mm_loadu_si128((const __m128i *)xb[3]), 1),
                1);
            const __m512i A = _mm512_shuffle_epi32(raw, (_MM_PERM_ENUM)_MM_SHUFFLE(3, 2, 3, 1)); /* u0 u2 u1 u2 */
            const __m512i B = _mm512_shuffle_epi32(raw, (_MM_PERM_ENUM)_MM_SHUFFLE(2, 2, 1, 1)); /* u0 u0 u1 u1 */
            const __m512i cnt = _mm512_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
            const __m512i lowm = _mm512_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f,
                                                   0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f,
                                                   0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f);
            const __m512i him = _mm512_setr_epi32(0, 0x30303030, 0, 0x30303030, 0, 0x30303030, 0, 0x30303030, 0, 0x30303030,
                                                  0, 0x30303030, 0, 0x30303030, 0, 0x30303030);
            sm4 = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi32(A, cnt), lowm),
                                  _mm512_and_si512(_mm512_srli_epi32(B, 2), him));
            sc16[0] = _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(_mm512_castsi512_si128(sm4)));
            sc16[1] = _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(_mm512_extracti32x4_epi32(sm4, 1)));
            sc16[2] = _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(_mm512_extracti32x4_epi32(sm4, 2)));
            sc16[3] = _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(_mm512_extracti32x4_epi32(sm4, 3)));
            /* (d, dmin) of the 4 rows -> [d0 d1 d2 d3] and [dmin0 .. dmin3] in every 128-bit lane */
            const __m512i dd = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), raw);
            const __m512 f = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm512_castsi512_si128(dd)));
            d4 = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6), f);
            dmin4 = _mm512_permutexvar_ps(_mm512_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7, 1, 3, 5, 7, 1, 3, 5, 7), f);
        } else {
            float dw[4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                const block_q6_K *x = (const block_q6_K *)xb[r];
                sc16[r] = _mm512_cvtepi8_epi16(_mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)x->scales)));
                dw[r] = f16(x->d);
            }
            d4 = bcast4(_mm_setr_ps(dw[0], dw[1], dw[2], dw[3]));
        }
        if (kind == KIND_Q6) {
            /* codes are stored +32: start from -32 * sum_g sc_g * bsums_g
             * (lanes 0-7: groups 2k, 2k+1 -- ggml's lanes after the l + 8 fold) */
            __m512i bs[4];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++)
                bs[t] = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)a[t]->bsums));
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                const __m512i nsc = _mm512_sub_epi16(_mm512_setzero_si512(), _mm512_slli_epi16(sc16[r], 5));
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++) sumi[r][t] = _mm512_dpwssd_epi32(_mm512_setzero_si512(), nsc, bs[t]);
            }
        } else {
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++) sumi[r][t] = _mm512_setzero_si512();
        }

#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512i av[4];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) av[t] = _mm512_loadu_si512((const void *)(a[t]->qs + 64 * c));
            /* scale of the low 32 elements / of the high 32 (Q4/Q5); Q6: one per 128-bit lane */
            const __m512i sidx = kind == KIND_Q6
                                     ? _mm512_set_epi16(4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3,
                                                        4 * c + 3, 4 * c + 3, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2,
                                                        4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 1, 4 * c + 1,
                                                        4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1,
                                                        4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c)
                                     : _mm512_mask_blend_epi16(hi16, _mm512_set1_epi16((short)(2 * c)),
                                                               _mm512_set1_epi16((short)(2 * c + 1)));
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m512i wq;
                if (kind == KIND_Q6) {
                    const block_q6_K *x = (const block_q6_K *)xb[r];
                    const int h = c >> 1, k2 = c & 1;
                    const __m512i ql = _mm512_loadu_si512((const void *)(x->ql + 64 * h));
                    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
                    /* bits (2j, 2j+1) of each qh byte to bits (4, 5): rotate left by 4 - 2j (mod 32) */
                    const int jl = 2 * k2, jh = 2 * k2 + 1;
                    const __m512i rot = _mm512_mask_blend_epi32((__mmask16)0xFF00, _mm512_set1_epi32((4 - 2 * jl) & 31),
                                                                _mm512_set1_epi32((4 - 2 * jh) & 31));
                    const __m512i hb = _mm512_and_si512(_mm512_rolv_epi32(qh, rot), _mm512_set1_epi8(0x30));
                    const __m512i lo = k2 ? _mm512_srli_epi16(ql, 4) : ql;
                    wq = _mm512_or_si512(_mm512_and_si512(lo, m4), hb);
                } else {
                    const block_q4_K *x4 = (const block_q4_K *)xb[r];
                    const block_q5_K *x5 = (const block_q5_K *)xb[r];
                    const uint8_t *qs = kind != KIND_Q5 ? x4->qs : x5->qs;
                    const __m512i w = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * c)));
                    wq = _mm512_and_si512(_mm512_mask_srli_epi16(w, hi16, w, 4), m4);
                    if (kind == KIND_Q5) {
                        /* bit j of each qh byte is the 5th bit of sub-block j: rotate it to bit 4 */
                        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x5->qh));
                        const int jl = 2 * c, jh = 2 * c + 1;
                        const __m512i rot = _mm512_mask_blend_epi32((__mmask16)0xFF00, _mm512_set1_epi32((4 - jl) & 31),
                                                                    _mm512_set1_epi32((4 - jh) & 31));
                        wq = _mm512_or_si512(wq, _mm512_and_si512(_mm512_rolv_epi32(qh, rot), _mm512_set1_epi8(0x10)));
                    }
                }
                const __m512i scv = _mm512_permutexvar_epi16(sidx, sc16[r]);
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++)
                    sumi[r][t] = _mm512_dpwssd_epi32(sumi[r][t], _mm512_maddubs_epi16(wq, av[t]), scv);
            }
        }

        if (kind == KIND_Q4X8) {
            /* one float accumulator per output for the scales part and one for the mins:
             * exact int sums per (row, token), reduced with fold4 and lane adds */
            const __m512i minv = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(_mm512_permutexvar_epi16(mins_idx, sm4)));
            __m128i is[4], im[4];
            float dat[4];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const __m512i u = fold4(sumi[0][t], sumi[1][t], sumi[2][t], sumi[3][t]); /* lane k: row k % 4 */
                const __m256i u8 = _mm256_add_epi32(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64(u, 1));
                is[t] = _mm_add_epi32(_mm256_castsi256_si128(u8), _mm256_extracti128_si256(u8, 1));
                const __m256i bp = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[t]->bsums), _mm256_set1_epi16(1));
                const __m512i bpz = _mm512_permutexvar_epi32(bsp_idx, _mm512_zextsi256_si512(_mm256_packs_epi32(bp, bp)));
                const __m512i mm = _mm512_madd_epi16(minv, bpz); /* lane 4p + r */
                const __m256i m8 = _mm256_add_epi32(_mm512_castsi512_si256(mm), _mm512_extracti64x4_epi64(mm, 1));
                im[t] = _mm_add_epi32(_mm256_castsi256_si128(m8), _mm256_extracti128_si256(m8, 1));
                dat[t] = a[t]->d;
            }
            const __m512i I = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(is[1], is[0])),
                                                 _mm256_set_m128i(is[3], is[2]), 1);
            const __m512i M = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(im[1], im[0])),
                                                 _mm256_set_m128i(im[3], im[2]), 1);
            const __m512 dav = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                                     _mm512_castps128_ps512(_mm_loadu_ps(dat)));
            accx = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), _mm512_mul_ps(d4, dav), accx);
            accxm = _mm512_fmadd_ps(_mm512_cvtepi32_ps(M), _mm512_mul_ps(dmin4, dav), accxm);
        } else if (exact) {
            /* lane l of ggml's 8 = lanes l and l + 8 of the chunk sums (exact integers) */
            float dw[4];
            _mm_storeu_ps(dw, _mm512_castps512_ps128(d4));
            __m128i minv4[4];
            if (kind == KIND_Q5) {
                const __m512i minv = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(_mm512_permutexvar_epi16(mins_idx, sm4)));
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++) {
                    const __m256i bp = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[t]->bsums), _mm256_set1_epi16(1));
                    const __m512i bpz = _mm512_permutexvar_epi32(bsp_idx, _mm512_zextsi256_si512(_mm256_packs_epi32(bp, bp)));
                    const __m512i mm = _mm512_madd_epi16(minv, bpz); /* lane 4p + r */
                    const __m256i m8 = _mm256_add_epi32(_mm512_castsi512_si256(mm), _mm512_extracti64x4_epi64(mm, 1));
                    minv4[t] = _mm_add_epi32(_mm256_castsi256_si128(m8), _mm256_extracti128_si256(m8, 1));
                    /* summs += (-y.d * dmin) * isum, fused (CST_Q5K_SUMMS) */
                    const __m128 dmv = _mm_mul_ps(_mm_set1_ps(-a[t]->d), _mm512_castps512_ps128(dmin4));
                    summs[t] = _mm_fmadd_ps(dmv, _mm_cvtepi32_ps(minv4[t]), summs[t]);
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++) {
                    const __m256i u = _mm256_add_epi32(_mm512_castsi512_si256(sumi[r][t]), _mm512_extracti64x4_epi64(sumi[r][t], 1));
                    acc8[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(a[t]->d * dw[r]), _mm256_cvtepi32_ps(u), acc8[r][t]);
                }
        } else {
            const __m512 dm4 = dmin4;
            const __m512i minv = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(_mm512_permutexvar_epi16(mins_idx, sm4)));
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const __m256i bp = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[t]->bsums), _mm256_set1_epi16(1));
                const __m512i bpz = _mm512_permutexvar_epi32(bsp_idx, _mm512_zextsi256_si512(_mm256_packs_epi32(bp, bp)));
                const __m512i mm = _mm512_madd_epi16(minv, bpz);
                const __m512i u = fold4(sumi[0][t], sumi[1][t], sumi[2][t], sumi[3][t]);
                const __m512 da = _mm512_set1_ps(a[t]->d);
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(u), _mm512_mul_ps(d4, da), acc[t]);
                acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mm), _mm512_mul_ps(dm4, da), acc[t]);
            }
        }
    }
    if (kind == KIND_Q4X8) {
        float out[16];
        _mm512_storeu_ps(out, _mm512_sub_ps(accx, accxm));
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) memcpy(s + t * lds, out + 4 * t, 4 * sizeof(float));
        return;
    }
    if (exact) {
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            float sm[4];
            _mm_storeu_ps(sm, summs[t]);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) s[t * lds + r] = hsum8(acc8[r][t]) + sm[r];
        }
        return;
    }
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) {
        const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc[t]),
                                       _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[t]), 1)));
        _mm_storeu_ps(s + t * lds, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    }
}

static void tile_q4_K_avx512(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {
    tile_k(KIND_Q4, n, x, y, s, lds);
}
static void tile_q5_K_avx512(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {
    tile_k(KIND_Q5, n, x, y, s, lds);
}
static void tile_q6_K_avx512(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {
    tile_k(KIND_Q6, n, x, y, s, lds);
}

static void tile_q4_K_x8_avx512(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {
    tile_k(KIND_Q4X8, n, x, y, s, lds);
}

cst_tile4x4_fn cst_tile_q4_K_x8_avx512(void) { return tile_q4_K_x8_avx512; }

void cst_kernels_tiles_kquants_avx512(cst_tile4x4_fn *tab) {
    tab[CST_TYPE_Q4_K] = tile_q4_K_avx512;
    tab[CST_TYPE_Q5_K] = tile_q5_K_avx512;
    tab[CST_TYPE_Q6_K] = tile_q6_K_avx512;
}
