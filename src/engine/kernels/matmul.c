/* matmul.c: y = W x for one weight matrix and a batch of activation rows.
 *
 * Phase 1 converts the activations to the weight type's vec_dot_type (Q8_0,
 * Q8_K, F16, BF16; F32 is used in place) into wdata, split by blocks across
 * the pool's threads. After a barrier, phase 2 splits the output rows evenly
 * across threads; batches are walked in token tiles so that each weight row
 * is read once per tile while the tile's activations stay in cache.
 */
#include "kernels_int.h"

#include "../../core/core.h"

#include <stdlib.h>
#include <string.h>

/* Tokens per tile in phase 2: as many as keep the tile's converted
 * activations within TOK_TILE_BYTES (they stay in L2 while every weight row
 * of the thread's range passes over them; each row is then read once per
 * tile, from L3 or memory), between TOK_TILE_MIN and TOK_TILE_MAX, a multiple
 * of 4 (the micro-kernels' width). 16 tokens at most re-read each matrix 32
 * times per 512-token prompt; llama3.2-1b Q8_0 / Q4_K pp512, 2 threads,
 * AVX2: 16 -> 64 tokens 67-77 -> 78-83 / 109-146 -> 136-152 t/s. */
#define TOK_TILE_BYTES (256 * 1024)
#define TOK_TILE_MIN 16
#define TOK_TILE_MAX 64
/* Activation elements below which phase 1 runs on the calling thread alone. */
#define SERIAL_CONVERT 32768
/* Weight rows per tile in phase 2 (their bytes stay in L1/L2 across the tile). */
#define ROW_TILE 8
/* Q8_0 / Q4_0 batches below this many tokens use the per-output dot: their
 * 4x4 tile sums in the dot's order (bit for bit, test_kernels), so only the
 * speed differs, and with fewer than 8 tokens the dots are faster here
 * (smollm2-135m Q8_0, 2 threads: 2 tokens 14.1 -> 5.7 ms, 4 tokens 17.1 ->
 * 8.1 ms; llama3.2-1b Q8_0: 2 tokens 84 -> 46 ms, 8 tokens favour the tile).
 * Continuous batching decodes such batches: one token per stream. */
#define Q0_TILE_MIN_TOK 8

typedef struct {
    cst_type wt;
    const cst_kernel_traits *tr;
    cst_gemm_packed_fn packed;    /* W is packed (cst_pack): its 8-row kernel */
    cst_tile4x4_fn tile;          /* 4 rows x 4 tokens micro-kernel, or NULL */
    cst_vec_dot_fn dot;           /* per-output dot (the traits' vec_dot but for Q4_0 x8) */
    cst_vec_dot8_fn dot8;         /* one token: 8 rows at once (x8 orders), or NULL */
    const cst_kernel_traits *vtr; /* traits of the activation type */
    const char *W;
    size_t w_row; /* bytes per weight row */
    int64_t n_in, n_out, n_tok, ldy;
    const float *x;
    float *y;
    const char *act; /* converted activations (or x itself for F32) */
    size_t a_row;    /* bytes per converted activation row */
    int64_t tok_tile; /* tokens per phase-2 tile */
    char *wdata;
    cst_pool *pool;
} mm_ctx;

static void split(int64_t n, int ith, int nth, int64_t *b, int64_t *e) {
    *b = n * ith / nth;
    *e = n * (ith + 1) / nth;
}

static void mm_convert(mm_ctx *c, int ith, int nth) {
    const cst_type vt = c->tr->vec_dot_type;
    const int bs = cst_type_get_info((int)vt)->blck_size;
    const size_t ts = cst_type_get_info((int)vt)->type_size;
    const int64_t nb_row = c->n_in / bs;
    const int64_t nb = nb_row * c->n_tok;
    int64_t b0, b1;
    split(nb, ith, nth, &b0, &b1);
    if (b1 > b0) c->vtr->from_float(c->x + b0 * bs, c->wdata + b0 * ts, (b1 - b0) * bs);
}

/* rows o..o+nr-1 x tokens t..t+nt-1 (nr, nt <= 4) with the 4x4 micro-kernel;
 * partial tiles repeat their last row/token and keep only what was asked */
static void mm_tile(const mm_ctx *c, int64_t o, int nr, int64_t t, int nt) {
    const void *xp[4], *yp[4];
    for (int k = 0; k < 4; k++) {
        xp[k] = c->W + (o + CST_MIN(k, nr - 1)) * c->w_row;
        yp[k] = c->act + (t + CST_MIN(k, nt - 1)) * c->a_row;
    }
    float *y = c->y + t * c->ldy + o;
    if (nr == 4 && nt == 4) {
        c->tile((int)c->n_in, xp, yp, y, c->ldy);
        return;
    }
    float tmp[16];
    c->tile((int)c->n_in, xp, yp, tmp, 4);
    for (int k = 0; k < nt; k++)
        for (int r = 0; r < nr; r++) y[k * c->ldy + r] = tmp[k * 4 + r];
}

static void mm_rows(mm_ctx *c, int64_t r0, int64_t r1) {
    const cst_vec_dot_fn dot = c->dot;
    const int n = (int)c->n_in;
    if (c->n_tok == 1) {
        int64_t o = r0;
        if (c->dot8)
            for (; o + 8 <= r1; o += 8) c->dot8(n, &c->y[o], c->W + o * c->w_row, c->w_row, c->act);
        for (; o < r1; o++) dot(n, &c->y[o], c->W + o * c->w_row, c->act);
        return;
    }
    for (int64_t t0 = 0; t0 < c->n_tok; t0 += c->tok_tile) {
        const int64_t t1 = CST_MIN(t0 + c->tok_tile, c->n_tok);
        for (int64_t o0 = r0; o0 < r1; o0 += ROW_TILE) {
            const int64_t o1 = CST_MIN(o0 + ROW_TILE, r1);
            if (c->tile) {
                for (int64_t t = t0; t < t1; t += 4)
                    for (int64_t o = o0; o < o1; o += 4)
                        mm_tile(c, o, (int)CST_MIN(4, o1 - o), t, (int)CST_MIN(4, t1 - t));
                continue;
            }
            for (int64_t t = t0; t < t1; t++) {
                const char *a = c->act + t * c->a_row;
                float *yt = c->y + t * c->ldy;
                for (int64_t o = o0; o < o1; o++) dot(n, &yt[o], c->W + o * c->w_row, a);
            }
        }
    }
}

static size_t pack_group_size(cst_type wt, int64_t n_in);

/* packed rows: groups g0..g1-1 of 8 rows, up to 4 tokens per kernel call */
static void mm_groups_packed(const mm_ctx *c, int64_t g0, int64_t g1) {
    const size_t g_bytes = pack_group_size(c->wt, c->n_in);
    for (int64_t t0 = 0; t0 < c->n_tok; t0 += c->tok_tile) {
        const int64_t t1 = CST_MIN(t0 + c->tok_tile, c->n_tok);
        for (int64_t g = g0; g < g1; g++)
            for (int64_t t = t0; t < t1; t += 4) {
                const int nt = (int)CST_MIN(4, t1 - t);
                const void *yp[4];
                for (int k = 0; k < nt; k++) yp[k] = c->act + (t + k) * c->a_row;
                c->packed((int)c->n_in, c->W + g * g_bytes, yp, nt, c->y + t * c->ldy + g * 8, c->ldy);
            }
    }
}

static void mm_worker(void *p, int ith, int nth) {
    mm_ctx *c = p;
    if (c->wdata) {
        mm_convert(c, ith, nth);
        if (nth > 1) cst_pool_barrier(c->pool);
    }
    if (c->packed) {
        int64_t g0, g1;
        split(c->n_out / 8, ith, nth, &g0, &g1);
        mm_groups_packed(c, g0, g1);
        return;
    }
    /* rows in groups of 4 so that only the last thread has a partial tile */
    const int64_t ng = (c->n_out + 3) / 4;
    int64_t g0, g1;
    split(ng, ith, nth, &g0, &g1);
    mm_rows(c, g0 * 4, CST_MIN(g1 * 4, c->n_out));
}

/* llama.cpp computes F32/F16 batches with tinyBLAS (llamafile sgemm) only
 * when the rows come in fours and the row length in steps of 16; otherwise
 * with its vec_dot. The tiles of these types follow tinyBLAS's order, so they
 * are used under the same conditions (the result then equals llama.cpp's). */
static bool use_tile(cst_type wt, int64_t n_in, int64_t n_out, int64_t n_tok) {
    if (n_tok < 2) return false;
    if (wt == CST_TYPE_F32 || wt == CST_TYPE_F16) return n_out % 4 == 0 && n_in % 16 == 0;
    return true;
}

size_t cst_matmul_wsize(cst_type wt, int64_t n_in, int64_t n_tok) {
    const cst_kernel_traits *tr = cst_kernel_traits_for(wt);
    if (!tr || tr->vec_dot_type == CST_TYPE_F32) return 0;
    return cst_row_size(tr->vec_dot_type, n_in) * (size_t)n_tok;
}

static void mm_run(mm_ctx *c) {
    const cst_kernel_traits *tr = c->tr;
    if (tr->vec_dot_type == CST_TYPE_F32) {
        c->act = (const char *)c->x;
        c->a_row = (size_t)c->n_in * sizeof(float);
    } else {
        CST_ASSERT(c->wdata && c->vtr && c->vtr->from_float);
        c->act = c->wdata;
        c->a_row = cst_row_size(tr->vec_dot_type, c->n_in);
    }
    c->tok_tile = CST_MAX(TOK_TILE_MIN, CST_MIN(TOK_TILE_MAX, (int64_t)(TOK_TILE_BYTES / c->a_row)) & ~(int64_t)3);
    cst_pool *pool = c->pool;
    if (!pool || cst_pool_size(pool) <= 1) {
        mm_worker(c, 0, 1);
        return;
    }
    if (c->wdata && c->n_in * c->n_tok <= SERIAL_CONVERT) {
        /* small batches (decode): convert on the calling thread, saving the barrier */
        mm_convert(c, 0, 1);
        c->wdata = NULL;
    }
    cst_pool_run(pool, mm_worker, c);
}

static mm_ctx mm_make(cst_pool *pool, const void *W, cst_type wt, int64_t n_in, int64_t n_out, const float *x,
                      int64_t n_tok, float *y, int64_t ldy, void *wdata) {
    const cst_kernel_traits *tr = cst_kernel_traits_for(wt);
    CST_ASSERT(tr && tr->vec_dot);
    return (mm_ctx){
        .wt = wt,
        .tr = tr,
        .vtr = cst_kernel_traits_for(tr->vec_dot_type),
        .W = W,
        .w_row = cst_row_size(wt, n_in),
        .n_in = n_in,
        .n_out = n_out,
        .n_tok = n_tok,
        .ldy = ldy,
        .x = x,
        .y = y,
        .wdata = tr->vec_dot_type == CST_TYPE_F32 ? NULL : wdata,
        .pool = pool,
    };
}

void cst_matmul(cst_pool *pool, const void *W, cst_type wt, int64_t n_in, int64_t n_out,
                const float *x, int64_t n_tok, float *y, int64_t ldy, void *wdata) {
    mm_ctx c = mm_make(pool, W, wt, n_in, n_out, x, n_tok, y, ldy, wdata);
    c.tile = use_tile(wt, n_in, n_out, n_tok) ? cst_kernel_tile4x4(wt) : NULL;
    c.dot = c.tr->vec_dot;
    cst_tile4x4_fn t8;
    if (n_out % 8 == 0 && cst_kernel_x8(wt, cst_kernels_isa(), &c.dot, &t8)) {
        /* llama.cpp repacks these (q4_0_8x8, q4_K_8x8): its order, on the file's blocks */
        c.tile = n_tok >= 2 ? t8 : NULL;
        c.dot8 = n_tok == 1 ? cst_kernel_x8_dot8(wt, cst_kernels_isa()) : NULL;
    } else if ((wt == CST_TYPE_Q8_0 || wt == CST_TYPE_Q4_0) && n_tok < Q0_TILE_MIN_TOK) {
        c.tile = NULL;
    }
    mm_run(&c);
}

/* ---- repacked weights (kernels.h) ---- */
bool cst_pack_wanted(cst_type wt, int64_t n_in, int64_t n_out) {
    if (n_out <= 0 || n_out % 8 || n_in <= 0 || n_in > INT32_MAX) return false;
    const char *env = getenv("CST_REPACK");
    if (wt == CST_TYPE_Q8_0 || wt == CST_TYPE_Q4_0 ? n_in % 32 : wt == CST_TYPE_Q4_K ? n_in % QK_K : 1) return false;
    if (env && !strcmp(env, "0")) return false;
    /* each type computes the same order packed or not (Q8_0 llama.cpp's
     * lanes, Q4_0 and Q4_K the x8 order): packed by default where the ISA has
     * the packed kernel (the scalar twin is no faster) */
    const cst_isa isa = cst_kernels_isa();
    return isa == CST_ISA_AVX2 || isa == CST_ISA_AVX512;
}

/* bytes of one packed group of 8 rows */
static size_t pack_group_size(cst_type wt, int64_t n_in) {
    const size_t rows = 8 * cst_row_size(wt, n_in);
    return wt == CST_TYPE_Q4_K ? rows / sizeof(block_q4_K) / 8 * sizeof(block_q4_Kx8) : rows;
}

size_t cst_pack_size(cst_type wt, int64_t n_in, int64_t n_out) { return pack_group_size(wt, n_in) * (size_t)(n_out / 8); }

/* 8 rows of n_in elements at W (row stride bx) into packed group P */
static void pack_q4_K(int64_t n_in, const char *W, size_t bx, block_q4_Kx8 *P) {
    for (int64_t i = 0; i < n_in / QK_K; i++) {
        block_q4_Kx8 *o = &P[i];
        for (int r = 0; r < 8; r++) {
            const block_q4_K *b = &((const block_q4_K *)(W + (size_t)r * bx))[i];
            o->d[r] = b->d;
            o->dmin[r] = b->dmin;
            for (int j = 0; j < QK_K / 32; j++) cst_get_scale_min_k4(j, b->scales, &o->sc[j][r], &o->m[j][r]);
            for (int k = 0; k < QK_K / 8; k++) memcpy(o->qs + 32 * k + 4 * r, b->qs + 4 * k, 4);
        }
    }
}

void cst_pack(cst_type wt, int64_t n_in, int64_t n_out, const void *W, void *P) {
    CST_ASSERT((wt == CST_TYPE_Q8_0 || wt == CST_TYPE_Q4_0 || wt == CST_TYPE_Q4_K) && n_out % 8 == 0 && n_in % 32 == 0);
    if (wt == CST_TYPE_Q4_K) {
        const size_t bx = cst_row_size(wt, n_in), gs = pack_group_size(wt, n_in);
        for (int64_t g = 0; g < n_out / 8; g++)
            pack_q4_K(n_in, (const char *)W + (size_t)g * 8 * bx, bx, (block_q4_Kx8 *)((char *)P + (size_t)g * gs));
        return;
    }
    const int64_t nb = n_in / 32;
    for (int64_t g = 0; g < n_out / 8; g++)
        for (int64_t i = 0; i < nb; i++) {
            if (wt == CST_TYPE_Q4_0) {
                block_q4_0x8 *o = &((block_q4_0x8 *)P)[g * nb + i];
                for (int r = 0; r < 8; r++) {
                    const block_q4_0 *b = &((const block_q4_0 *)W)[(g * 8 + r) * nb + i];
                    o->d[r] = b->d;
                    for (int j = 0; j < QK4_0 / 8; j++) memcpy(o->qs + 32 * j + 4 * r, b->qs + 4 * j, 4);
                }
                continue;
            }
            block_q8_0x8 *o = &((block_q8_0x8 *)P)[g * nb + i];
            for (int r = 0; r < 8; r++) {
                const block_q8_0 *b = &((const block_q8_0 *)W)[(g * 8 + r) * nb + i];
                o->d[r] = b->d;
                for (int j = 0; j < QK8_0 / 4; j++) memcpy(o->qs + 32 * j + 4 * r, b->qs + 4 * j, 4);
            }
        }
}

void cst_matmul_packed(cst_pool *pool, const void *P, cst_type wt, int64_t n_in, int64_t n_out,
                       const float *x, int64_t n_tok, float *y, int64_t ldy, void *wdata) {
    CST_ASSERT(n_out % 8 == 0);
    mm_ctx c = mm_make(pool, P, wt, n_in, n_out, x, n_tok, y, ldy, wdata);
    c.packed = cst_kernel_packed(wt, cst_kernels_isa());
    CST_ASSERT(c.packed);
    mm_run(&c);
}
