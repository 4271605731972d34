/* repack_avx2.c: AVX2 kernels for Q8_0, Q4_0 and Q4_K repacked for 8 rows
 * (block_q8_0x8, block_q4_0x8, block_q4_Kx8, cst_pack). Per block and
 * 4-element step j, one vector holds elements 4j..4j+3 of the 8 rows; the
 * token's 4 activation bytes are broadcast and the signed products summed
 * with maddubs(|w|, sign(a, w)) + madd, so lane r holds row r's exact int sum
 * of the step: no horizontal sums. Q4_0 / Q4_K add the steps of a block and
 * then fuse one FMA per 8 outputs (the x8 order); Q8_0 keeps llama.cpp's 8
 * lanes per output (lane j is step j). Up to 4 tokens per call share each
 * weight vector (and its |w|).
 */
#include "../kernels_int.h"

#include <immintrin.h>

/* repack_avx512.c compiles this file again with AVX512-VNNI (REPACK_VNNI 1):
 * the same kernels, named _avx512, with vpdpbusd for maddubs + madd (the
 * same exact int32 sums: the int16 pair sums never saturate here). */
#ifndef REPACK_VNNI
#define REPACK_VNNI 0
#define KNAME(name) name##_avx2
#endif

/* acc + exact int32 sums of 4 products u (unsigned bytes) x s (signed bytes) per lane */
static inline __m256i dot4_add(__m256i acc, __m256i u, __m256i s) {
#if REPACK_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

#ifndef PF_BYTES
#define PF_BYTES 8192
#endif
/* Decode reads a packed group once, from memory: the block PF_BYTES ahead of
 * the stream (past a group's end that is the next group's start: the groups
 * are consecutive) is fetched while this one computes; prefetches past the
 * buffer do not fault. */
#define PREFETCH_AHEAD(x, i)                                                                       \
    do {                                                                                           \
        const char *pf_ = (const char *)&(x)[i] + PF_BYTES;                                        \
        for (size_t k_ = 0; k_ < sizeof *(x); k_ += 64) _mm_prefetch(pf_ + k_, _MM_HINT_T0);       \
    } while (0)

/* the x8 order's step for a Q8_0-activation block i: acc[t] = fma(lane
 * sums is[t], dw * da, acc[t]), lane r for row r (d: the 8 rows' scales) */
static inline __attribute__((always_inline)) void fma_block(__m256 *acc, const __m256i *is, const cst_f16 *d,
                                                            const block_q8_0 *const *y, int i, int nt) {
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d));
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), _mm256_mul_ps(dw, _mm256_set1_ps(_cvtsh_ss(y[t][i].d))), acc[t]);
}

/* the exported kernel: one specialised body per token count */
#define PACKED_KERNEL(NAME, BODY)                                                                 \
    void NAME(int n, const void *P, const void *const *y, int nt, float *s, int64_t lds) {        \
        switch (nt) {                                                                              \
        case 1: BODY(n, P, y, 1, s, lds); break;                                                   \
        case 2: BODY(n, P, y, 2, s, lds); break;                                                   \
        case 3: BODY(n, P, y, 3, s, lds); break;                                                   \
        default: BODY(n, P, y, 4, s, lds); break;                                                  \
        }                                                                                          \
    }

/* Q8_0 (block_q8_0x8) in llama.cpp's Q8_0 order (cst_vec_dot_q8_0_q8_0_ref,
 * tinyBLAS / ggml_vec_dot_q8_0_q8_0 on AVX2): per output 8 float lanes, lane
 * j = fma(dw * da, int sum of elements 4j..4j+3, lane j) per block, then
 * hsum8's tree. Step j's vector is elements 4j..4j+3 of the 8 rows, so its
 * maddubs + madd against the token's 4 broadcast bytes is lane j of all 8
 * rows at once: accumulator (t, j) holds lane j of token t's 8 outputs, one
 * convert and one FMA per step for 8 outputs, the 8 rows' scales in one
 * vector (one multiply per block and token), and hsum8 is vertical adds at
 * the end. The 8 accumulators per token do not all fit in registers with 4
 * tokens: the compiler keeps some in memory (each is touched once per block);
 * sharing w and |w| across the tokens is worth more (one thread, 2048 x 2048,
 * 128 tokens: 78 GFLOP/s for the lane-order tile, 90 one token at a time,
 * 111-116 so). */
static inline __attribute__((always_inline)) void gemm_q8_0x8(int n, const block_q8_0x8 *x, const void *const *vy,
                                                              const int nt, float *s, int64_t lds) {
    const int nb = n / QK8_0;
    const block_q8_0 *y[4];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) y[t] = vy[t];
    __m256 acc[4][8];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) acc[t][j] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        PREFETCH_AHEAD(x, i);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x[i].d));
        __m256 d[4];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) d[t] = _mm256_mul_ps(dw, _mm256_set1_ps(_cvtsh_ss(y[t][i].d)));
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j)), aw = _mm256_sign_epi8(w, w);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                int32_t a4;
                memcpy(&a4, y[t][i].qs + 4 * j, 4);
                const __m256i p = dot4_add(_mm256_setzero_si256(), aw, _mm256_sign_epi8(_mm256_set1_epi32(a4), w));
                acc[t][j] = _mm256_fmadd_ps(d[t], _mm256_cvtepi32_ps(p), acc[t][j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        /* hsum8 per output: (l0 + l4), (l1 + l5), ...; then (0+2) + (1+3) */
        const __m256 q0 = _mm256_add_ps(acc[t][0], acc[t][4]), q1 = _mm256_add_ps(acc[t][1], acc[t][5]);
        const __m256 q2 = _mm256_add_ps(acc[t][2], acc[t][6]), q3 = _mm256_add_ps(acc[t][3], acc[t][7]);
        _mm256_storeu_ps(s + t * lds, _mm256_add_ps(_mm256_add_ps(q0, q2), _mm256_add_ps(q1, q3)));
    }
}

/* Q4_0 (block_q4_0x8): per block and 4-byte step j one vector holds bytes
 * 4j..4j+3 of the 8 rows: its low nibbles are elements 4j..4j+3, its high
 * nibbles elements 16+4j..16+4j+3, each minus 8; the same maddubs / madd
 * per half against the token's broadcast 4 activation bytes, so lane r is
 * row r's exact int sum of the block; then the x8 order's one FMA. */
static inline __attribute__((always_inline)) void gemm_q4_0x8(int n, const block_q4_0x8 *x, const void *const *vy,
                                                              const int nt, float *s, int64_t lds) {
    const int nb = n / QK4_0;
    const block_q8_0 *y[4];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) y[t] = vy[t];
    const __m256i m4 = _mm256_set1_epi8(0xF), b8 = _mm256_set1_epi8(8);
#if !REPACK_VNNI
    const __m256i ones = _mm256_set1_epi16(1);
#endif
    __m256 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        PREFETCH_AHEAD(x, i);
        __m256i is[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) is[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i lo = _mm256_sub_epi8(_mm256_and_si256(q, m4), b8);
            const __m256i hi = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), b8);
            const __m256i alo = _mm256_sign_epi8(lo, lo), ahi = _mm256_sign_epi8(hi, hi);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                int32_t a0, a1;
                memcpy(&a0, y[t][i].qs + 4 * j, 4);
                memcpy(&a1, y[t][i].qs + QK4_0 / 2 + 4 * j, 4);
                const __m256i s0 = _mm256_sign_epi8(_mm256_set1_epi32(a0), lo);
                const __m256i s1 = _mm256_sign_epi8(_mm256_set1_epi32(a1), hi);
#if REPACK_VNNI
                is[t] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(is[t], alo, s0), ahi, s1);
#else
                /* |pair sums| <= 2 * 8 * 128 each, so the two halves add exactly in int16 */
                const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(alo, s0), _mm256_maddubs_epi16(ahi, s1));
                is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(p, ones));
#endif
            }
        }
        fma_block(acc, is, x[i].d, y, i, nt);
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(s + t * lds, acc[t]);
}

PACKED_KERNEL(KNAME(cst_gemm_q4_0x8), gemm_q4_0x8)

/* Q4_K (block_q4_Kx8): per 4-byte step k of chunk c one vector holds bytes
 * 4k..4k+3 of the 8 rows; its low nibbles (0..15, unsigned: maddubs takes
 * them as they are) belong to sub-block 2c, its high ones to 2c+1, each
 * against the token's broadcast 4 activation bytes. A sub-block's 8 steps
 * add exactly in int16 (|sum| <= 8 * 2 * 15 * 127 = 30480), then one madd
 * with the rows' scales (lane r: row r's scale twice) gives lane r row r's
 * scaled int32 sum; the mins the same way against the token's sub-block
 * sums (bsums pairs). Then the x8 order's two FMAs per 8 outputs.
 * VNNI: a step is one vpdpbusd into int32 lanes (a sub-block's sum can pass
 * int16 there), scaled by one 32-bit multiply per sub-block. */
#if REPACK_VNNI
static inline __m256i k8_scales(const uint8_t *v) { /* lane r: v[r] as int32 */
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)v));
}
#define K8_STEP(acc, q, a) _mm256_dpbusd_epi32((acc), (q), (a))
#define K8_SCALE(sum, sc) _mm256_mullo_epi32((sum), (sc))
#else
static inline __m256i k8_scales(const uint8_t *v) { /* lane r: v[r] as two int16 */
    const __m128i b = _mm_loadl_epi64((const __m128i *)v);
    return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(b, b));
}
#define K8_STEP(acc, q, a) _mm256_add_epi16((acc), _mm256_maddubs_epi16((q), (a)))
#define K8_SCALE(sum, sc) _mm256_madd_epi16((sum), (sc))
#endif

static inline __attribute__((always_inline)) void gemm_q4_Kx8(int n, const block_q4_Kx8 *x, const void *const *vy,
                                                              const int nt, float *s, int64_t lds) {
    const int nb = n / QK_K;
    const block_q8_K *y[4];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) y[t] = vy[t];
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m256 acc[4], accm[4];
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) acc[t] = accm[t] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        PREFETCH_AHEAD(x, i);
        __m256i is[4], im[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) is[t] = im[t] = _mm256_setzero_si256();
        for (int c = 0; c < QK_K / 64; c++) {
            __m256i sl[4], sh[4];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) sl[t] = sh[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * (8 * c + j)));
                const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    int32_t a0, a1;
                    memcpy(&a0, y[t][i].qs + 64 * c + 4 * j, 4);
                    memcpy(&a1, y[t][i].qs + 64 * c + 32 + 4 * j, 4);
                    sl[t] = K8_STEP(sl[t], lo, _mm256_set1_epi32(a0));
                    sh[t] = K8_STEP(sh[t], hi, _mm256_set1_epi32(a1));
                }
            }
            const __m256i scl = k8_scales(x[i].sc[2 * c]), sch = k8_scales(x[i].sc[2 * c + 1]);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++)
                is[t] = _mm256_add_epi32(is[t], _mm256_add_epi32(K8_SCALE(sl[t], scl), K8_SCALE(sh[t], sch)));
        }
        /* mins: lane r of pair p = (m[2p][r], m[2p+1][r]) against the token's
         * sub-block sums (bs[2p], bs[2p+1]) as one int32 to broadcast */
        int32_t bs[4][4];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            _mm_storeu_si128((__m128i *)bs[t], _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y[t][i].bsums),
                                                              _mm_loadu_si128((const __m128i *)(y[t][i].bsums + 8))));
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            const __m256i mp = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)x[i].m[2 * p]),
                                                                      _mm_loadl_epi64((const __m128i *)x[i].m[2 * p + 1])));
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) im[t] = _mm256_add_epi32(im[t], _mm256_madd_epi16(mp, _mm256_set1_epi32(bs[t][p])));
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x[i].d));
        const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x[i].dmin));
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const __m256 yd = _mm256_set1_ps(y[t][i].d);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), _mm256_mul_ps(dw, yd), acc[t]);
            accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(im[t]), _mm256_mul_ps(dm, yd), accm[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(s + t * lds, _mm256_sub_ps(acc[t], accm[t]));
}

PACKED_KERNEL(KNAME(cst_gemm_q4_Kx8), gemm_q4_Kx8)

PACKED_KERNEL(KNAME(cst_gemm_q8_0x8), gemm_q8_0x8)
