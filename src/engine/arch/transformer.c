/* transformer.c: the forward pass shared by every supported family (llama,
 * qwen2, qwen3, gemma3); per-architecture differences are flags in
 * cst_hparams set by arch/<family>.c. One call processes a batch that may
 * mix sequences: matmuls run over all tokens at once (cst_matmul), attention
 * runs per (token, head) against that token's own sequence in the F16 KV
 * cache, spread over the thread pool. Rounding follows llama.cpp's CPU path
 * without flash attention: K/V stored as F16, Q converted to F16 for QK^T,
 * softmax probabilities converted to F16 for P*V.
 */
#include "../runtime/model_int.h"

#include <math.h>
#include <string.h>

/* ---- attention ------------------------------------------------------------- */
typedef struct att_job {
    cst_ctx *ctx;
    const cst_batch *b;
    const cst_layer *L;
    int il;
} att_job;

/* Tokens t0 and t attend as one tile: the same sequence, positions close
 * (their visible ranges nearly coincide, so the tile computes few scores
 * that one of them does not need). */
#define TILE_SPAN 16
static bool same_tile(const cst_batch *b, int32_t t0, int32_t t) {
    return b->seq[t] == b->seq[t0] && b->pos[t] >= b->pos[t0] && b->pos[t] - b->pos[t0] < TILE_SPAN;
}

static void att_worker(void *arg, int ith, int nth) {
    const att_job *j = arg;
    cst_ctx *c = j->ctx;
    const cst_hparams *hp = &c->m->hp;
    const int32_t n_head = hp->n_head, hd = hp->head_dim, hdv = hp->head_dim_v;
    const int32_t gqa = hp->n_head / hp->n_head_kv;
    const size_t nctx = (size_t)c->p.n_ctx;
    const size_t kdim = (size_t)hp->n_head_kv * hd, vdim = (size_t)hp->n_head_kv * hdv;
    const size_t qdim = (size_t)n_head * hd, odim = (size_t)n_head * hdv;
    const float scale = hp->scale_q ? 1.0f : hp->attn_scale;
    float *s = c->att_scores + (size_t)ith * CST_ATTN_TILE * nctx;
    cst_f16 *p16 = c->att_p16 + (size_t)ith * CST_ATTN_TILE * nctx;
    cst_f16 *q16 = c->att_q16 + (size_t)ith * CST_ATTN_TILE * hd;
    const cst_f16 *kl = c->k[j->il], *vl = c->v[j->il];

    /* tasks: (chunk of CST_ATTN_TILE consecutive tokens, head); a chunk's
     * tokens run as tiles of the ones that attend together (same_tile) */
    const int32_t n_chunk = (j->b->n + CST_ATTN_TILE - 1) / CST_ATTN_TILE;
    const int64_t n_task = (int64_t)n_chunk * n_head;
    /* strided over (chunk, head): causal rows grow with the token, so contiguous
     * halves would give the last thread most of the work. One token: contiguous
     * runs of heads, so that the heads sharing a K/V head (GQA) run on one
     * thread back to back and read that K/V from cache, not memory. */
    const bool one = j->b->n == 1;
    const int64_t t_lo = one ? n_task * ith / nth : ith, t_hi = one ? n_task * (ith + 1) / nth : n_task;
    const int64_t t_step = one ? 1 : nth;
    for (int64_t task = t_lo; task < t_hi; task += t_step) {
        const int32_t chunk = (int32_t)(task / n_head), h = (int32_t)(task % n_head);
        const int32_t kvh = h / gqa;
        const int32_t c_end = CST_MIN(j->b->n, (chunk + 1) * CST_ATTN_TILE);
        for (int32_t t0 = chunk * CST_ATTN_TILE; t0 < c_end;) {
            cst_attn_head a[CST_ATTN_TILE];
            int nq = 0;
            for (int32_t t = t0; t < c_end && same_tile(j->b, t0, t); t++, nq++) {
                const int32_t seq = j->b->seq[t], pos = j->b->pos[t];
                int32_t p0 = 0;
                if (j->L->swa && pos - hp->n_swa + 1 > 0) p0 = pos - hp->n_swa + 1;
                /* non-causal: up to the last position the batch writes to seq
                 * (tmp_len: the lengths after this batch, set by check_batch) */
                const int32_t p1 = j->b->non_causal ? c->tmp_len[seq] - 1 : pos;
                a[nq] = (cst_attn_head){
                    .out = c->att + (size_t)t * odim + (size_t)h * hdv,
                    .q = c->q + (size_t)t * qdim + (size_t)h * hd,
                    .k = kl + (size_t)seq * nctx * kdim + (size_t)kvh * hd,
                    .v = vl + ((size_t)seq * vdim + (size_t)kvh * hdv) * nctx,
                    .k_stride = kdim,
                    .v_stride = nctx,
                    .hd = hd,
                    .hdv = hdv,
                    .p0 = p0,
                    .p1 = p1,
                    .scale = scale,
                    .batch = j->b->n >= 2,
                    .scores = s + (size_t)nq * nctx,
                    .p16 = p16 + (size_t)nq * nctx,
                    .q16 = q16 + (size_t)nq * hd,
                };
            }
            cst_attn_heads_run(a, nq);
            t0 += nq;
        }
    }
}

/* ---- helpers ----------------------------------------------------------------- */
/* Below this many multiply-adds a matmul runs on the calling thread: waking
 * the pool costs more than it saves. */
#define SMALL_WORK (1 << 16)

static void matmul(cst_ctx *c, const cst_weight *w, const float *x, int32_t n, float *y) {
    const bool small = w->n_in * w->n_out * n < SMALL_WORK;
    cst_weight_matmul(small ? NULL : c->pool, w, x, n, y, w->n_out, c->wdata);
}

/* Q/K bias, per-head norm, rope, optional Q scaling, then K/V into the cache,
 * for tokens [t0, t1). */
static void qk_post(cst_ctx *c, const cst_batch *b, const cst_layer *L, int il, int32_t t0, int32_t t1) {
    const cst_model *m = c->m;
    const cst_hparams *hp = &m->hp;
    const int32_t hd = hp->head_dim, hdv = hp->head_dim_v, n_rot = hp->n_rot;
    const size_t qdim = (size_t)hp->n_head * hd, kdim = (size_t)hp->n_head_kv * hd,
                 vdim = (size_t)hp->n_head_kv * hdv;
    const size_t nctx = (size_t)c->p.n_ctx;
    const float *rc_base = c->rope_cache + (L->swa ? (size_t)c->p.n_batch * n_rot : 0);
    cst_f16 *kl = c->k[il], *vl = c->v[il];
    for (int32_t t = t0; t < t1; t++) {
        float *q = c->q + (size_t)t * qdim, *k = c->kt + (size_t)t * kdim, *v = c->vt + (size_t)t * vdim;
        if (L->bq) {
            for (size_t i = 0; i < qdim; i++) q[i] += L->bq[i];
            for (size_t i = 0; i < kdim; i++) k[i] += L->bk[i];
            for (size_t i = 0; i < vdim; i++) v[i] += L->bv[i];
        }
        const float *rc = rc_base + (size_t)t * n_rot;
        for (int32_t h = 0; h < hp->n_head; h++) {
            float *qh = q + (size_t)h * hd;
            if (L->q_norm) cst_rmsnorm(qh, qh, L->q_norm, hd, hp->norm_eps);
            cst_rope_apply(qh, rc, n_rot, hp->rope_type);
            if (hp->scale_q)
                for (int32_t i = 0; i < hd; i++) qh[i] *= hp->attn_scale;
        }
        for (int32_t h = 0; h < hp->n_head_kv; h++) {
            float *kh = k + (size_t)h * hd;
            if (L->k_norm) cst_rmsnorm(kh, kh, L->k_norm, hd, hp->norm_eps);
            cst_rope_apply(kh, rc, n_rot, hp->rope_type);
        }
        const size_t seq = (size_t)b->seq[t], pos = (size_t)b->pos[t];
        cst_fp32_to_fp16_row(k, kl + (seq * nctx + pos) * kdim, (int64_t)kdim);
        cst_f16 *vrow = vl + seq * vdim * nctx + pos;
        for (size_t d = 0; d < vdim; d++) vrow[d * nctx] = cst_f32_to_f16(v[d]);
    }
}

/* Row-wise phases between the matmuls, split by token over the pool. */
enum { PH_ATTN_NORM, PH_QK, PH_ATTN_OUT, PH_ACT, PH_FFN_OUT };

typedef struct rows_job {
    cst_ctx *c;
    const cst_batch *b;
    const cst_layer *L;
    int il, phase;
    int32_t n; /* rows */
} rows_job;

static void rows_range(const rows_job *j, int32_t t0, int32_t t1) {
    cst_ctx *c = j->c;
    const cst_layer *L = j->L;
    const cst_hparams *hp = &c->m->hp;
    const int64_t e = hp->n_embd, ff = hp->n_ff;
    const float eps = hp->norm_eps;
    for (int32_t t = t0; t < t1; t++) {
        float *x = c->x + (size_t)t * e, *xb = c->xb + (size_t)t * e;
        switch (j->phase) {
        case PH_ATTN_NORM: cst_rmsnorm(xb, x, L->attn_norm, e, eps); break;
        case PH_QK: qk_post(c, j->b, L, j->il, t, t + 1); break;
        case PH_ATTN_OUT: /* (post-attention norm), residual, FFN norm */
        case PH_FFN_OUT:  /* (post-FFN norm), residual */
        {
            const float *pn = j->phase == PH_ATTN_OUT ? L->post_attn_norm : L->post_ffn_norm;
            if (pn) cst_rmsnorm(xb, xb, pn, e, eps);
            for (int64_t i = 0; i < e; i++) x[i] += xb[i];
            if (j->phase == PH_ATTN_OUT) cst_rmsnorm(xb, x, L->ffn_norm, e, eps);
            break;
        }
        case PH_ACT: {
            float *g = c->ff_g + (size_t)t * ff, *u = c->ff_u + (size_t)t * ff;
            if (hp->act == CST_ACT_GELU)
                cst_geglu(g, g, u, ff);
            else
                cst_swiglu(g, g, u, ff);
            break;
        }
        }
    }
}

static void rows_worker(void *arg, int ith, int nth) {
    const rows_job *j = arg;
    const int32_t n = j->n;
    rows_range(j, (int32_t)((int64_t)n * ith / nth), (int32_t)((int64_t)n * (ith + 1) / nth));
}

static void run_rows(cst_ctx *c, const cst_batch *b, const cst_layer *L, int il, int phase, int32_t n) {
    rows_job j = {c, b, L, il, phase, n};
    if (n < 4)
        rows_range(&j, 0, n);
    else
        cst_pool_run(c->pool, rows_worker, &j);
}

/* ---- forward --------------------------------------------------------------- */
cst_status cst_forward(cst_ctx *c, const cst_batch *b) {
    const cst_model *m = c->m;
    const cst_hparams *hp = &m->hp;
    const int32_t n = b->n;
    const int64_t e = hp->n_embd;

    /* input rows: token embeddings (scaled for gemma), or the batch's own
     * embedding rows as given (llama.cpp scales only token input) */
    if (b->embd) {
        memcpy(c->x, b->embd, (size_t)n * (size_t)e * sizeof(float));
    } else {
        const cst_kernel_traits *et = cst_kernel_traits_for(m->tok_embd.type);
        const size_t erow = cst_row_size(m->tok_embd.type, e);
        for (int32_t t = 0; t < n; t++) {
            float *x = c->x + (size_t)t * e;
            et->to_float((const char *)m->tok_embd.data + (size_t)b->token[t] * erow, x, e);
            if (hp->embd_scale != 0.0f)
                for (int64_t i = 0; i < e; i++) x[i] *= hp->embd_scale;
        }
    }

    /* rope tables: [0] global layers, [1] sliding-window layers */
    for (int32_t t = 0; t < n; t++) {
        cst_rope_cache(c->rope_cache + (size_t)t * hp->n_rot, b->pos[t], hp->n_rot, hp->rope_base, hp->rope_scale,
                       m->rope_freqs);
        if (hp->n_swa > 0)
            cst_rope_cache(c->rope_cache + ((size_t)c->p.n_batch + t) * hp->n_rot, b->pos[t], hp->n_rot,
                           hp->rope_base_swa, hp->rope_scale_swa, m->rope_freqs);
    }

    int32_t n_ffn = n; /* rows through the FFN (all but in the last layer) */
    for (int il = 0; il < hp->n_layer; il++) {
        const cst_layer *L = &m->layers[il];
        /* attention block */
        run_rows(c, b, L, il, PH_ATTN_NORM, n);
        matmul(c, &L->wq, c->xb, n, c->q);
        matmul(c, &L->wk, c->xb, n, c->kt);
        matmul(c, &L->wv, c->xb, n, c->vt);
        run_rows(c, b, L, il, PH_QK, n);
        att_job job = {c, b, L, il};
        const int32_t p_max = b->non_causal ? b->pos[n - 1] + n : b->pos[n - 1] + 1; /* rough key count */
        if ((int64_t)n * hp->n_head * p_max * hp->head_dim < SMALL_WORK)
            att_worker(&job, 0, 1);
        else
            cst_pool_run(c->pool, att_worker, &job);
        matmul(c, &L->wo, c->att, n, c->xb);
        run_rows(c, b, L, il, PH_ATTN_OUT, n); /* x += attn; xb = ffn_norm(x) */

        /* The last layer's FFN runs only for the rows that give logits, moved
         * to the front in batch order (llama.cpp's inp_out_ids): besides the
         * saved work, a single output row then takes llama.cpp's one-token
         * matmul path, which accumulates in another order than its batched one. */
        if (il == hp->n_layer - 1) {
            n_ffn = 0;
            for (int32_t t = 0; t < n; t++) {
                if (c->out_idx[t] < 0) continue;
                if (n_ffn != t) {
                    memmove(c->x + (size_t)n_ffn * e, c->x + (size_t)t * e, (size_t)e * sizeof(float));
                    memmove(c->xb + (size_t)n_ffn * e, c->xb + (size_t)t * e, (size_t)e * sizeof(float));
                }
                n_ffn++;
            }
            if (n_ffn == 0) break;
        }

        /* feed-forward block */
        matmul(c, &L->gate, c->xb, n_ffn, c->ff_g);
        matmul(c, &L->up, c->xb, n_ffn, c->ff_u);
        run_rows(c, b, L, il, PH_ACT, n_ffn);
        matmul(c, &L->down, c->ff_g, n_ffn, c->xb);
        run_rows(c, b, L, il, PH_FFN_OUT, n_ffn);
    }

    /* logits: the output rows are the first n_ffn rows of x */
    const int32_t n_out = n_ffn;
    for (int32_t i = 0; i < n_out; i++)
        cst_rmsnorm(c->xb + (size_t)i * e, c->x + (size_t)i * e, m->output_norm, e, hp->norm_eps);
    if (n_out > 0)
        cst_weight_matmul(c->pool, &m->output, c->xb, n_out, c->logits, hp->n_vocab, c->wdata);
    return CST_OK;
}
