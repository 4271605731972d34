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
    float *s = c->att_scores + (size_t)ith * nctx;
    cst_f16 *p16 = c->att_p16 + (size_t)ith * nctx;
    cst_f16 *q16 = c->att_q16 + (size_t)ith * hd;
    const cst_f16 *kl = c->k[j->il], *vl = c->v[j->il];

    const int64_t n_task = (int64_t)j->b->n * n_head;
    const int64_t t0 = n_task * ith / nth, t1 = n_task * (ith + 1) / nth;
    for (int64_t task = t0; task < t1; task++) {
        const int32_t t = (int32_t)(task / n_head), h = (int32_t)(task % n_head);
        const int32_t seq = j->b->seq[t], pos = j->b->pos[t];
        const int32_t kvh = h / gqa;
        int32_t p0 = 0;
        if (j->L->swa && pos - hp->n_swa + 1 > 0) p0 = pos - hp->n_swa + 1;
        const int32_t nk = pos + 1 - p0;

        cst_fp32_to_fp16_row(c->q + (size_t)t * qdim + (size_t)h * hd, q16, hd);
        const cst_f16 *kb = kl + ((size_t)seq * nctx + (size_t)p0) * kdim + (size_t)kvh * hd;
        float mx = -INFINITY;
        for (int32_t i = 0; i < nk; i++) {
            float d;
            cst_vec_dot_f16(hd, &d, kb + (size_t)i * kdim, q16);
            d *= scale;
            s[i] = d;
            if (d > mx) mx = d;
        }
        double sum = 0.0;
        for (int32_t i = 0; i < nk; i++) {
            const float e = expf(s[i] - mx);
            s[i] = e;
            sum += (double)e;
        }
        const float inv = (float)(1.0 / sum);
        for (int32_t i = 0; i < nk; i++) s[i] *= inv;
        cst_fp32_to_fp16_row(s, p16, nk);

        float *o = c->att + (size_t)t * odim + (size_t)h * hdv;
        const cst_f16 *vb = vl + ((size_t)seq * vdim + (size_t)kvh * hdv) * nctx + (size_t)p0;
        for (int32_t d = 0; d < hdv; d++) cst_vec_dot_f16(nk, &o[d], vb + (size_t)d * nctx, p16);
    }
}

/* ---- helpers ----------------------------------------------------------------- */
static void matmul(cst_ctx *c, const cst_weight *w, const float *x, int32_t n, float *y) {
    cst_matmul(c->pool, w->data, w->type, w->n_in, w->n_out, x, n, y, w->n_out, c->wdata);
}

static void add_bias(float *y, const float *bias, int32_t n, int64_t dim) {
    for (int32_t t = 0; t < n; t++) {
        float *r = y + (size_t)t * dim;
        for (int64_t i = 0; i < dim; i++) r[i] += bias[i];
    }
}

/* RMSNorm of every row of x (n rows of dim) into y, times w. */
static void norm_rows(float *y, const float *x, const float *w, int32_t n, int64_t dim, float eps) {
    for (int32_t t = 0; t < n; t++) cst_rmsnorm(y + (size_t)t * dim, x + (size_t)t * dim, w, dim, eps);
}

static void add_rows(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* Q/K per-head norm, rope, optional Q scaling, then K/V into the cache. */
static void qk_post(cst_ctx *c, const cst_batch *b, const cst_layer *L, int il) {
    const cst_model *m = c->m;
    const cst_hparams *hp = &m->hp;
    const int32_t hd = hp->head_dim, hdv = hp->head_dim_v, n_rot = hp->n_rot;
    const size_t qdim = (size_t)hp->n_head * hd, kdim = (size_t)hp->n_head_kv * hd,
                 vdim = (size_t)hp->n_head_kv * hdv;
    const size_t nctx = (size_t)c->p.n_ctx;
    const float *rc_base = c->rope_cache + (L->swa ? (size_t)c->p.n_batch * n_rot : 0);
    cst_f16 *kl = c->k[il], *vl = c->v[il];
    for (int32_t t = 0; t < b->n; t++) {
        float *q = c->q + (size_t)t * qdim, *k = c->kt + (size_t)t * kdim, *v = c->vt + (size_t)t * vdim;
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

/* ---- forward --------------------------------------------------------------- */
cst_status cst_forward(cst_ctx *c, const cst_batch *b) {
    const cst_model *m = c->m;
    const cst_hparams *hp = &m->hp;
    const int32_t n = b->n;
    const int64_t e = hp->n_embd, ff = hp->n_ff;

    /* token embeddings */
    const cst_kernel_traits *et = cst_kernel_traits_for(m->tok_embd.type);
    const size_t erow = cst_row_size(m->tok_embd.type, e);
    for (int32_t t = 0; t < n; t++) {
        float *x = c->x + (size_t)t * e;
        et->to_float((const char *)m->tok_embd.data + (size_t)b->token[t] * erow, x, e);
        if (hp->embd_scale != 0.0f)
            for (int64_t i = 0; i < e; i++) x[i] *= hp->embd_scale;
    }

    /* rope tables: [0] global layers, [1] sliding-window layers */
    for (int32_t t = 0; t < n; t++) {
        cst_rope_cache(c->rope_cache + (size_t)t * hp->n_rot, b->pos[t], hp->n_rot, hp->rope_base, hp->rope_scale,
                       m->rope_freqs);
        if (hp->n_swa > 0)
            cst_rope_cache(c->rope_cache + ((size_t)c->p.n_batch + t) * hp->n_rot, b->pos[t], hp->n_rot,
                           hp->rope_base_swa, hp->rope_scale_swa, m->rope_freqs);
    }

    for (int il = 0; il < hp->n_layer; il++) {
        const cst_layer *L = &m->layers[il];
        /* attention block */
        norm_rows(c->xb, c->x, L->attn_norm, n, e, hp->norm_eps);
        matmul(c, &L->wq, c->xb, n, c->q);
        matmul(c, &L->wk, c->xb, n, c->kt);
        matmul(c, &L->wv, c->xb, n, c->vt);
        if (L->bq) {
            add_bias(c->q, L->bq, n, L->wq.n_out);
            add_bias(c->kt, L->bk, n, L->wk.n_out);
            add_bias(c->vt, L->bv, n, L->wv.n_out);
        }
        qk_post(c, b, L, il);
        att_job job = {c, b, L, il};
        cst_pool_run(c->pool, att_worker, &job);
        matmul(c, &L->wo, c->att, n, c->xb);
        if (L->post_attn_norm) norm_rows(c->xb, c->xb, L->post_attn_norm, n, e, hp->norm_eps);
        add_rows(c->x, c->xb, (size_t)n * e);

        /* feed-forward block */
        norm_rows(c->xb, c->x, L->ffn_norm, n, e, hp->norm_eps);
        matmul(c, &L->gate, c->xb, n, c->ff_g);
        matmul(c, &L->up, c->xb, n, c->ff_u);
        if (hp->act == CST_ACT_GELU)
            cst_geglu(c->ff_g, c->ff_g, c->ff_u, (int64_t)n * ff);
        else
            cst_swiglu(c->ff_g, c->ff_g, c->ff_u, (int64_t)n * ff);
        matmul(c, &L->down, c->ff_g, n, c->xb);
        if (L->post_ffn_norm) norm_rows(c->xb, c->xb, L->post_ffn_norm, n, e, hp->norm_eps);
        add_rows(c->x, c->xb, (size_t)n * e);
    }

    /* logits only for the entries that asked */
    int32_t n_out = 0;
    for (int32_t t = 0; t < n; t++) {
        if (c->out_idx[t] < 0) continue;
        cst_rmsnorm(c->xb + (size_t)n_out * e, c->x + (size_t)t * e, m->output_norm, e, hp->norm_eps);
        n_out++;
    }
    if (n_out > 0)
        cst_matmul(c->pool, m->output.data, m->output.type, e, hp->n_vocab, c->xb, n_out, c->logits, hp->n_vocab,
                   c->wdata);
    return CST_OK;
}
