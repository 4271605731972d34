/* kquants_avx2.c: AVX2 micro-kernels for Q4_K, Q5_K and Q6_K x Q8_K, on the
 * file's blocks as they are. The 4x4 tile (weight rows x tokens) is computed
 * as two 4x2 passes (16 ymm registers): per 32 elements a weight row is
 * unpacked once for 2 tokens, maddubs (u8 x s8 -> s16) then madd with the
 * 16-bit sub-block scale, so super-block sums are exact in int32 as in the
 * per-row vec_dot; then the 4 rows of a token are folded into one vector
 * (lane k: a partial sum of row k % 4) and scaled in float.
 */
#include "../kernels_int.h"

#include <immintrin.h>

static inline float f16(cst_f16 h) { return _cvtsh_ss(h); }

/* Q4_K/Q5_K packed scales -> 16 bytes: 0-7 the sub-block scales, 8-15 the mins */
static inline __m128i k4_scales(const uint8_t *q) {
    uint32_t u0, u1, u2;
    memcpy(&u0, q, 4);
    memcpy(&u1, q + 4, 4);
    memcpy(&u2, q + 8, 4);
    const uint32_t km1 = 0x3f3f3f3f, km2 = 0x0f0f0f0f, km3 = 0x03030303;
    const uint32_t m47 = ((u2 >> 4) & km2) | (((u1 >> 6) & km3) << 4);
    const uint32_t m03 = u1 & km1;
    const uint32_t s47 = (u2 & km2) | (((u0 >> 6) & km3) << 4);
    const uint32_t s03 = u0 & km1;
    return _mm_set_epi32((int)m47, (int)m03, (int)s47, (int)s03);
}

static inline __m256i fold4(__m256i s0, __m256i s1, __m256i s2, __m256i s3) {
    const __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(s0, s1), _mm256_unpackhi_epi32(s0, s1));
    const __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(s2, s3), _mm256_unpackhi_epi32(s2, s3));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
}

/* shuffle control: low 128-bit lane broadcasts int16 element e0, high lane e1 */
static inline __m256i bcast16_ctl(int e0, int e1) {
    return _mm256_set_m128i(_mm_set1_epi16((short)(0x0100 + 0x0202 * e1)), _mm_set1_epi16((short)(0x0100 + 0x0202 * e0)));
}

enum { KIND_Q4 = 4, KIND_Q5 = 5, KIND_Q6 = 6, KIND_Q4X8 = 7 /* Q4_K in the repacked q4_K_8x8 order */ };

/* [sum of the 8 lanes of s0 .. s3] (exact) */
static inline __m128i hsum4_epi32(__m256i s0, __m256i s1, __m256i s2, __m256i s3) {
    const __m256i f = fold4(s0, s1, s2, s3);
    return _mm_add_epi32(_mm256_castsi256_si128(f), _mm256_extracti128_si256(f, 1));
}

/* rows x[0..3] with tokens y[0..1]: s[t*lds + r]. KIND_Q4X8: the integer
 * part of Q4_K, then per super-block each (row, token) gets its exact int
 * sums (scales, mins) and one FMA each into 8 float lanes [t0 r0-3, t1 r0-3]:
 * cst_vec_dot_q4_K_q8_K_x8_ref's order, bit for bit. */
static inline __attribute__((always_inline)) void tile_k2(const int kind_in, int n, const void *const *vx,
                                                          const void *const *vy, float *s, int64_t lds) {
    const bool x8 = kind_in == KIND_Q4X8;
    const int kind = x8 ? KIND_Q4 : kind_in;
    __m256 acc8 = _mm256_setzero_ps(), accm8 = _mm256_setzero_ps();
    const int nb = n / QK_K;
    const size_t bsz = kind == KIND_Q4 ? sizeof(block_q4_K) : kind == KIND_Q5 ? sizeof(block_q5_K)
                                                                               : sizeof(block_q6_K);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int i = 0; i < nb; i++) {
        const char *xb[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) xb[r] = (const char *)vx[r] + (size_t)i * bsz;
        const block_q8_K *a[2] = {(const block_q8_K *)vy[0] + i, (const block_q8_K *)vy[1] + i};
        __m256i sumi[4][2];
        float dw[4], dmw[4];
        __m128i smv[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            if (kind == KIND_Q6) {
                const block_q6_K *x = (const block_q6_K *)xb[r];
                const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
                const __m256i nsc = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc, 5));
#pragma GCC unroll 2
                for (int t = 0; t < 2; t++)
                    sumi[r][t] = _mm256_madd_epi16(nsc, _mm256_loadu_si256((const __m256i *)a[t]->bsums));
                dw[r] = f16(x->d);
                dmw[r] = 0;
                smv[r] = _mm_setzero_si128();
            } else {
                const block_q4_K *x = (const block_q4_K *)xb[r];
                smv[r] = k4_scales(x->scales);
                dw[r] = f16(x->d);
                dmw[r] = f16(x->dmin);
#pragma GCC unroll 2
                for (int t = 0; t < 2; t++) sumi[r][t] = _mm256_setzero_si256();
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m256i sc16;
            if (kind == KIND_Q6) {
                sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)((const block_q6_K *)xb[r])->scales));
            } else {
                sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(smv[r]));
            }
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                __m256i wl, wh, scl, sch;
                if (kind == KIND_Q6) {
                    const block_q6_K *x = (const block_q6_K *)xb[r];
                    const int h = c >> 1, k2 = c & 1;
                    const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h));
                    const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32));
                    const __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
                    const __m256i m30 = _mm256_set1_epi8(0x30);
                    /* bit pairs 2j, 2j+1 of qh to bits 4, 5 (j = 2*k2 for wl, 2*k2+1 for wh) */
                    const __m256i hl = k2 ? _mm256_and_si256(qh, m30) : _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30);
                    const __m256i hh = k2 ? _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)
                                          : _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30);
                    wl = _mm256_or_si256(_mm256_and_si256(k2 ? _mm256_srli_epi16(ql0, 4) : ql0, m4), hl);
                    wh = _mm256_or_si256(_mm256_and_si256(k2 ? _mm256_srli_epi16(ql1, 4) : ql1, m4), hh);
                    /* groups of 16: wl covers 4c, 4c+1; wh 4c+2, 4c+3 (sc16 lanes hold 0-7 / 8-15) */
                    const __m256i lo8 = _mm256_broadcastsi128_si256(c < 2 ? _mm256_castsi256_si128(sc16) : _mm256_extracti128_si256(sc16, 1));
                    scl = _mm256_shuffle_epi8(lo8, bcast16_ctl((4 * c) & 7, (4 * c + 1) & 7));
                    sch = _mm256_shuffle_epi8(lo8, bcast16_ctl((4 * c + 2) & 7, (4 * c + 3) & 7));
                } else {
                    const uint8_t *qs = kind == KIND_Q4 ? ((const block_q4_K *)xb[r])->qs : ((const block_q5_K *)xb[r])->qs;
                    const __m256i w = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                    wl = _mm256_and_si256(w, m4);
                    wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
                    if (kind == KIND_Q5) {
                        const __m256i qh = _mm256_loadu_si256((const __m256i *)((const block_q5_K *)xb[r])->qh);
                        const __m256i one = _mm256_set1_epi8(1);
                        const __m256i bl = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c)), one);
                        const __m256i bh = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c + 1)), one);
                        wl = _mm256_or_si256(wl, _mm256_slli_epi16(bl, 4));
                        wh = _mm256_or_si256(wh, _mm256_slli_epi16(bh, 4));
                    }
                    scl = _mm256_shuffle_epi8(sc16, bcast16_ctl(2 * c, 2 * c));
                    sch = _mm256_shuffle_epi8(sc16, bcast16_ctl(2 * c + 1, 2 * c + 1));
                }
#pragma GCC unroll 2
                for (int t = 0; t < 2; t++) {
                    const __m256i al = _mm256_loadu_si256((const __m256i *)(a[t]->qs + 64 * c));
                    const __m256i ah = _mm256_loadu_si256((const __m256i *)(a[t]->qs + 64 * c + 32));
                    sumi[r][t] = _mm256_add_epi32(sumi[r][t], _mm256_madd_epi16(_mm256_maddubs_epi16(wl, al), scl));
                    sumi[r][t] = _mm256_add_epi32(sumi[r][t], _mm256_madd_epi16(_mm256_maddubs_epi16(wh, ah), sch));
                    /* keep the running sum in a register: otherwise the compiler reassociates the
                     * integer sum, keeps every product alive and spills */
                    __asm__("" : "+x"(sumi[r][t]));
                }
            }
        }
        const __m128 d4h = _mm_setr_ps(dw[0], dw[1], dw[2], dw[3]);
        const __m256 d4 = _mm256_set_m128(d4h, d4h);
        __m256i mina = _mm256_setzero_si256(), minb = mina;
        __m256 dm4 = _mm256_setzero_ps();
        if (kind != KIND_Q6) {
            const __m128 dmh = _mm_setr_ps(dmw[0], dmw[1], dmw[2], dmw[3]);
            dm4 = _mm256_set_m128(dmh, dmh);
            /* mins of row r, pair p (m[2p], m[2p+1]) to 32-bit lane 4p + r */
            const __m128i ma = _mm_unpackhi_epi64(smv[0], smv[1]), mb = _mm_unpackhi_epi64(smv[2], smv[3]);
            const __m128i t0 = _mm_unpacklo_epi16(ma, _mm_unpackhi_epi64(ma, ma));
            const __m128i t1 = _mm_unpacklo_epi16(mb, _mm_unpackhi_epi64(mb, mb));
            mina = _mm256_cvtepu8_epi16(_mm_unpacklo_epi32(t0, t1));
            minb = _mm256_cvtepu8_epi16(_mm_unpackhi_epi32(t0, t1));
        }
        if (x8) {
            const __m256i isum = _mm256_set_m128i(hsum4_epi32(sumi[0][1], sumi[1][1], sumi[2][1], sumi[3][1]),
                                                  hsum4_epi32(sumi[0][0], sumi[1][0], sumi[2][0], sumi[3][0]));
            __m128i imin[2];
#pragma GCC unroll 2
            for (int t = 0; t < 2; t++) {
                const __m256i bp = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[t]->bsums), _mm256_set1_epi16(1));
                const __m256i pk = _mm256_packs_epi32(bp, bp);
                const __m256i ba = _mm256_permutevar8x32_epi32(pk, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
                const __m256i bb = _mm256_permutevar8x32_epi32(pk, _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5));
                const __m256i mm = _mm256_add_epi32(_mm256_madd_epi16(mina, ba), _mm256_madd_epi16(minb, bb));
                imin[t] = _mm_add_epi32(_mm256_castsi256_si128(mm), _mm256_extracti128_si256(mm, 1));
            }
            const __m256 da = _mm256_set_m128(_mm_set1_ps(a[1]->d), _mm_set1_ps(a[0]->d));
            acc8 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d4, da), acc8);
            accm8 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_set_m128i(imin[1], imin[0])), _mm256_mul_ps(dm4, da), accm8);
            continue;
        }
#pragma GCC unroll 2
        for (int t = 0; t < 2; t++) {
            const __m256 da = _mm256_set1_ps(a[t]->d);
            const __m256i u = fold4(sumi[0][t], sumi[1][t], sumi[2][t], sumi[3][t]);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(u), _mm256_mul_ps(d4, da), acc[t]);
            if (kind != KIND_Q6) {
                const __m256i bp = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[t]->bsums), _mm256_set1_epi16(1));
                const __m256i pk = _mm256_packs_epi32(bp, bp);
                const __m256i ba = _mm256_permutevar8x32_epi32(pk, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
                const __m256i bb = _mm256_permutevar8x32_epi32(pk, _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5));
                const __m256i mm = _mm256_add_epi32(_mm256_madd_epi16(mina, ba), _mm256_madd_epi16(minb, bb));
                acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_mul_ps(dm4, da), acc[t]);
            }
        }
    }
    if (x8) {
        const __m256 r = _mm256_sub_ps(acc8, accm8);
        _mm_storeu_ps(s, _mm256_castps256_ps128(r));
        _mm_storeu_ps(s + lds, _mm256_extractf128_ps(r, 1));
        return;
    }
#pragma GCC unroll 2
    for (int t = 0; t < 2; t++)
        _mm_storeu_ps(s + t * lds, _mm_add_ps(_mm256_castps256_ps128(acc[t]), _mm256_extractf128_ps(acc[t], 1)));
}

#define TILE_K_AVX2(NAME, KIND)                                                                    \
    static void NAME(int n, const void *const *x, const void *const *y, float *s, int64_t lds) {  \
        tile_k2(KIND, n, x, y, s, lds);                                                            \
        if (y[2] == y[1] && y[3] == y[1]) { /* 2-token tail: tokens 2, 3 repeat token 1 */          \
            memcpy(s + 2 * lds, s + lds, 4 * sizeof(float));                                       \
            memcpy(s + 3 * lds, s + lds, 4 * sizeof(float));                                       \
            return;                                                                                \
        }                                                                                          \
        tile_k2(KIND, n, x, y + 2, s + 2 * lds, lds);                                              \
    }
TILE_K_AVX2(tile_q4_K_avx2, KIND_Q4)
TILE_K_AVX2(tile_q4_K_x8_avx2, KIND_Q4X8)

cst_tile4x4_fn cst_tile_q4_K_x8_avx2(void) { return tile_q4_K_x8_avx2; }
/* Q5_K and Q6_K have no AVX2 tile: batches use the vec_dot, which follows
 * ggml's order (as llama.cpp does for these types); the tile_k2 paths for them
 * are kept for reference but not installed. */

void cst_kernels_tiles_kquants_avx2(cst_tile4x4_fn *tab) {
    tab[CST_TYPE_Q4_K] = tile_q4_K_avx2;
}
