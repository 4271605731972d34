/* ctx.c: inference contexts: the F16 KV cache for n_seq sequences, every
 * scratch buffer the forward pass needs (sized by n_batch, allocated once),
 * the thread pool, batch validation before a decode, and the per-sequence
 * cache operations used for prefix reuse (truncate, copy, snapshots saved
 * to and restored from caller buffers).
 */
#include "model_int.h"

#include <stddef.h>
#include <string.h>

cst_ctx_params cst_ctx_default_params(void) {
    cst_ctx_params p = {
        .n_ctx = 0, .n_seq = 1, .n_batch = 512, .n_threads = 0, .n_outputs = 0, .kv_type = CST_TYPE_F16};
    return p;
}

/* Buffers are carved from a few allocations; untouched pages of large ones
 * are never made resident. */
static void *xalloc(size_t n, size_t *total) {
    *total += n;
    return cst_alloc_aligned(n ? n : 64, 64);
}

cst_status cst_ctx_new(cst_model *m, const cst_ctx_params *pp, cst_ctx **out, char *err, size_t errlen) {
    *out = NULL;
    if (m->vocab_only) {
        cst_errf(err, errlen, "model was loaded vocab-only");
        return CST_ERR_INVALID_ARG;
    }
    cst_ctx_params p = pp ? *pp : cst_ctx_default_params();
    const cst_hparams *hp = &m->hp;
    if (p.n_ctx <= 0) p.n_ctx = CST_MIN(hp->n_ctx_train, 4096);
    if (p.n_seq <= 0) p.n_seq = 1;
    if (p.n_batch <= 0) p.n_batch = 512;
    if (p.n_threads <= 0) p.n_threads = cst_cpu_count();
    if (p.n_outputs <= 0) p.n_outputs = p.n_seq;
    p.n_outputs = CST_MIN(p.n_outputs, p.n_batch);
    if (p.kv_type != CST_TYPE_F16) {
        cst_errf(err, errlen, "KV cache type %s is not supported (F16 only)", cst_type_name(p.kv_type));
        return CST_ERR_UNSUPPORTED;
    }
    if (p.n_ctx > (1 << 24) || p.n_seq > 4096 || p.n_batch > (1 << 16) || p.n_threads > 512) {
        cst_errf(err, errlen, "context parameters out of range (n_ctx %d, n_seq %d, n_batch %d, threads %d)",
                 p.n_ctx, p.n_seq, p.n_batch, p.n_threads);
        return CST_ERR_INVALID_ARG;
    }

    cst_ctx *c = calloc(1, sizeof *c);
    if (!c) return CST_ERR_NOMEM;
    c->m = m;
    c->p = p;
    size_t total = 0;
    const size_t nb = (size_t)p.n_batch, nctx = (size_t)p.n_ctx, nseq = (size_t)p.n_seq;
    const size_t kdim = (size_t)hp->n_head_kv * hp->head_dim, vdim = (size_t)hp->n_head_kv * hp->head_dim_v;
    const size_t qdim = (size_t)hp->n_head * hp->head_dim, odim = (size_t)hp->n_head * hp->head_dim_v;

    c->k_layer = nseq * nctx * kdim;
    c->v_layer = nseq * nctx * vdim;
    c->kv_bytes = (c->k_layer + c->v_layer) * (size_t)hp->n_layer * sizeof(cst_f16);
    c->kv = xalloc(c->kv_bytes, &total);
    c->k = calloc((size_t)hp->n_layer, sizeof *c->k);
    c->v = calloc((size_t)hp->n_layer, sizeof *c->v);
    c->seq_len = calloc(nseq, sizeof *c->seq_len);
    c->tmp_len = calloc(nseq, sizeof *c->tmp_len);
    c->tokens = xalloc(nseq * nctx * sizeof(cst_token), &total);

    c->x = xalloc(nb * hp->n_embd * sizeof(float), &total);
    c->xb = xalloc(nb * hp->n_embd * sizeof(float), &total);
    c->q = xalloc(nb * qdim * sizeof(float), &total);
    c->kt = xalloc(nb * kdim * sizeof(float), &total);
    c->vt = xalloc(nb * vdim * sizeof(float), &total);
    c->att = xalloc(nb * odim * sizeof(float), &total);
    c->ff_g = xalloc(nb * hp->n_ff * sizeof(float), &total);
    c->ff_u = xalloc(nb * hp->n_ff * sizeof(float), &total);

    size_t ws = cst_matmul_wsize(m->output.type, hp->n_embd, p.n_outputs);
    for (int il = 0; il < hp->n_layer; il++) {
        const cst_layer *L = &m->layers[il];
        const cst_weight *ws_list[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < CST_ARRAY_LEN(ws_list); i++)
            ws = CST_MAX(ws, cst_matmul_wsize(ws_list[i]->type, ws_list[i]->n_in, p.n_batch));
    }
    c->wsize = ws;
    c->wdata = xalloc(ws, &total);

    const size_t nth = (size_t)p.n_threads;
    /* per thread, one attention tile of CST_ATTN_TILE queries */
    const size_t nq = nth * CST_ATTN_TILE;
    c->att_scores = xalloc(nq * nctx * sizeof(float), &total);
    c->att_p16 = xalloc(nq * nctx * sizeof(cst_f16), &total);
    c->att_q16 = xalloc(nq * (size_t)hp->head_dim * sizeof(cst_f16), &total);
    c->out_idx = xalloc(nb * sizeof(int32_t), &total);
    c->out_rows = xalloc((size_t)p.n_outputs * sizeof(int32_t), &total);
    c->n_outputs = p.n_outputs;
    c->logits = xalloc((size_t)p.n_outputs * hp->n_vocab * sizeof(float), &total);
    c->rope_cache = xalloc(2 * nb * (size_t)hp->n_rot * sizeof(float), &total);
    c->pool = cst_pool_new(p.n_threads);
    c->ebatch = cst_batch_new(p.n_batch);

    if (!c->kv || !c->k || !c->v || !c->seq_len || !c->tmp_len || !c->tokens || !c->x || !c->xb || !c->q ||
        !c->kt || !c->vt || !c->att || !c->ff_g || !c->ff_u || !c->wdata || !c->att_scores || !c->att_p16 ||
        !c->att_q16 || !c->out_idx || !c->out_rows || !c->logits || !c->rope_cache || !c->pool || !c->ebatch) {
        cst_errf(err, errlen, "out of memory allocating a context of %.1f MiB (KV cache %.1f MiB)",
                 (double)total / 1048576.0, (double)c->kv_bytes / 1048576.0);
        cst_ctx_free(c);
        return CST_ERR_NOMEM;
    }
    for (int il = 0; il < hp->n_layer; il++) {
        c->k[il] = c->kv + (size_t)il * (c->k_layer + c->v_layer);
        c->v[il] = c->k[il] + c->k_layer;
    }
    for (size_t i = 0; i < nb; i++) c->out_idx[i] = -1;
    *out = c;
    return CST_OK;
}

void cst_ctx_free(cst_ctx *c) {
    if (!c) return;
    cst_pool_free(c->pool);
    cst_free_aligned(c->kv);
    free(c->k);
    free(c->v);
    free(c->seq_len);
    free(c->tmp_len);
    cst_free_aligned(c->tokens);
    cst_free_aligned(c->x);
    cst_free_aligned(c->xb);
    cst_free_aligned(c->q);
    cst_free_aligned(c->kt);
    cst_free_aligned(c->vt);
    cst_free_aligned(c->att);
    cst_free_aligned(c->ff_g);
    cst_free_aligned(c->ff_u);
    cst_free_aligned(c->wdata);
    cst_free_aligned(c->att_scores);
    cst_free_aligned(c->att_p16);
    cst_free_aligned(c->att_q16);
    cst_free_aligned(c->out_idx);
    cst_free_aligned(c->out_rows);
    cst_free_aligned(c->logits);
    cst_free_aligned(c->rope_cache);
    cst_batch_free(c->ebatch);
    free(c);
}

const cst_model *cst_ctx_model(const cst_ctx *ctx) { return ctx->m; }
cst_ctx_params cst_ctx_get_params(const cst_ctx *ctx) { return ctx->p; }
size_t cst_ctx_kv_size(const cst_ctx *ctx) { return ctx->kv_bytes; }
const char *cst_ctx_errmsg(const cst_ctx *ctx) { return ctx->err; }

/* ---- batches ------------------------------------------------------------- */
cst_batch *cst_batch_new(int32_t cap) {
    if (cap <= 0 || cap > (1 << 24)) return NULL;
    const size_t n = (size_t)cap;
    cst_batch *b = calloc(1, sizeof *b + n * (sizeof(cst_token) + 2 * sizeof(int32_t) + sizeof(int8_t)));
    if (!b) return NULL;
    char *p = (char *)(b + 1);
    b->token = (cst_token *)p;
    b->pos = (int32_t *)(p + n * sizeof(cst_token));
    b->seq = (int32_t *)(p + n * (sizeof(cst_token) + sizeof(int32_t)));
    b->want_logits = (int8_t *)(p + n * (sizeof(cst_token) + 2 * sizeof(int32_t)));
    b->cap = cap;
    return b;
}

void cst_batch_free(cst_batch *b) { free(b); }

bool cst_batch_add(cst_batch *b, cst_token tok, int32_t pos, int32_t seq, bool want_logits) {
    if (b->n >= b->cap) return false;
    b->token[b->n] = tok;
    b->pos[b->n] = pos;
    b->seq[b->n] = seq;
    b->want_logits[b->n] = want_logits ? 1 : 0;
    b->n++;
    return true;
}

/* ---- decode ----------------------------------------------------------------- */
static cst_status check_batch(cst_ctx *ctx, const cst_batch *b) {
    const cst_ctx_params *p = &ctx->p;
    if (b->n <= 0 || b->n > p->n_batch) {
        cst_errf(ctx->err, sizeof ctx->err, "batch of %d tokens (must be 1..%d)", b->n, p->n_batch);
        return CST_ERR_INVALID_ARG;
    }
    if (!b->embd && !b->token) {
        cst_errf(ctx->err, sizeof ctx->err, "batch has neither token ids nor embeddings");
        return CST_ERR_INVALID_ARG;
    }
    memcpy(ctx->tmp_len, ctx->seq_len, (size_t)p->n_seq * sizeof(int32_t));
    int32_t n_out = 0;
    for (int32_t i = 0; i < b->n; i++) {
        const int32_t s = b->seq[i];
        if (s < 0 || s >= p->n_seq) {
            cst_errf(ctx->err, sizeof ctx->err, "batch entry %d: sequence %d out of range [0, %d)", i, s, p->n_seq);
            return CST_ERR_INVALID_ARG;
        }
        if (b->embd) {
            if (b->token && b->token[i] >= 0) {
                cst_errf(ctx->err, sizeof ctx->err,
                         "batch entry %d: embedding entries take a negative marker as token, got %d", i,
                         b->token[i]);
                return CST_ERR_INVALID_ARG;
            }
        } else if (b->token[i] < 0 || b->token[i] >= ctx->m->hp.n_vocab) {
            cst_errf(ctx->err, sizeof ctx->err, "batch entry %d: token %d out of range [0, %d)", i, b->token[i],
                     ctx->m->hp.n_vocab);
            return CST_ERR_INVALID_ARG;
        }
        if (b->pos[i] >= p->n_ctx) {
            cst_errf(ctx->err, sizeof ctx->err, "sequence %d: position %d does not fit the context (%d)", s,
                     b->pos[i], p->n_ctx);
            return CST_ERR_CTX_FULL;
        }
        if (b->pos[i] != ctx->tmp_len[s]) {
            cst_errf(ctx->err, sizeof ctx->err, "batch entry %d: sequence %d expects position %d, got %d", i, s,
                     ctx->tmp_len[s], b->pos[i]);
            return CST_ERR_INVALID_ARG;
        }
        ctx->tmp_len[s]++;
        if (b->want_logits[i]) n_out++;
    }
    if (n_out > ctx->n_outputs) {
        cst_errf(ctx->err, sizeof ctx->err, "%d batch entries ask for logits (at most %d)", n_out, ctx->n_outputs);
        return CST_ERR_INVALID_ARG;
    }
    return CST_OK;
}

cst_status cst_ctx_decode(cst_ctx *ctx, const cst_batch *b) {
    ctx->err[0] = 0;
    if (!b) return CST_ERR_INVALID_ARG;
    cst_status st = check_batch(ctx, b);
    if (st) return st;
    for (int32_t i = 0; i < CST_MAX(b->n, ctx->last_n); i++) ctx->out_idx[i] = -1;
    ctx->last_n = b->n;
    int32_t n_out = 0;
    for (int32_t i = 0; i < b->n; i++) {
        if (b->want_logits[i]) {
            ctx->out_idx[i] = n_out;
            ctx->out_rows[n_out++] = i;
        }
        ctx->tokens[(size_t)b->seq[i] * ctx->p.n_ctx + b->pos[i]] = b->token ? b->token[i] : CST_TOKEN_EMBD_ANON;
    }
    st = cst_forward(ctx, b);
    if (st) return st;
    memcpy(ctx->seq_len, ctx->tmp_len, (size_t)ctx->p.n_seq * sizeof(int32_t));
    return CST_OK;
}

cst_status cst_ctx_decode_embd(cst_ctx *ctx, int32_t seq, int32_t pos0, const float *rows, int32_t n_rows,
                               cst_token marker, bool non_causal) {
    ctx->err[0] = 0;
    const int32_t nb = ctx->p.n_batch;
    if (!rows || n_rows <= 0 || marker >= 0) {
        cst_errf(ctx->err, sizeof ctx->err, "decode_embd: need rows, n_rows > 0 (got %d) and a negative marker (got %d)",
                 n_rows, marker);
        return CST_ERR_INVALID_ARG;
    }
    if (non_causal && n_rows > nb) {
        cst_errf(ctx->err, sizeof ctx->err,
                 "an image of %d embeddings does not fit one batch (n_batch %d); its non-causal attention needs "
                 "the whole image in one batch: raise n_batch to at least %d",
                 n_rows, nb, n_rows);
        return CST_ERR_INVALID_ARG;
    }
    if (seq < 0 || seq >= ctx->p.n_seq) {
        cst_errf(ctx->err, sizeof ctx->err, "decode_embd: sequence %d out of range [0, %d)", seq, ctx->p.n_seq);
        return CST_ERR_INVALID_ARG;
    }
    if ((int64_t)pos0 + n_rows > ctx->p.n_ctx) {
        cst_errf(ctx->err, sizeof ctx->err, "sequence %d: %d embeddings from position %d do not fit the context (%d)",
                 seq, n_rows, pos0, ctx->p.n_ctx);
        return CST_ERR_CTX_FULL;
    }
    const size_t e = (size_t)ctx->m->hp.n_embd;
    cst_batch *b = ctx->ebatch;
    for (int32_t i = 0; i < n_rows; i += nb) {
        const int32_t k = CST_MIN(nb, n_rows - i);
        cst_batch_clear(b);
        for (int32_t j = 0; j < k; j++) cst_batch_add(b, marker, pos0 + i + j, seq, false);
        b->embd = rows + (size_t)i * e;
        b->non_causal = non_causal;
        cst_status st = cst_ctx_decode(ctx, b);
        cst_batch_clear(b);
        if (st) return st;
    }
    return CST_OK;
}

const float *cst_ctx_logits(const cst_ctx *ctx, int32_t i) {
    if (i < 0 || i >= ctx->p.n_batch || ctx->out_idx[i] < 0) return NULL;
    return ctx->logits + (size_t)ctx->out_idx[i] * ctx->m->hp.n_vocab;
}

/* ---- sequences ------------------------------------------------------------- */
int32_t cst_ctx_seq_len(const cst_ctx *ctx, int32_t seq) {
    if (seq < 0 || seq >= ctx->p.n_seq) return -1;
    return ctx->seq_len[seq];
}

cst_status cst_ctx_seq_truncate(cst_ctx *ctx, int32_t seq, int32_t n_keep) {
    if (seq < 0 || seq >= ctx->p.n_seq || n_keep < 0) {
        cst_errf(ctx->err, sizeof ctx->err, "seq_truncate: bad sequence %d or length %d", seq, n_keep);
        return CST_ERR_INVALID_ARG;
    }
    if (n_keep < ctx->seq_len[seq]) ctx->seq_len[seq] = n_keep;
    return CST_OK;
}

cst_status cst_ctx_seq_copy(cst_ctx *ctx, int32_t src, int32_t dst, int32_t n) {
    const cst_ctx_params *p = &ctx->p;
    if (src < 0 || src >= p->n_seq || dst < 0 || dst >= p->n_seq || n < 0 || n > ctx->seq_len[src]) {
        cst_errf(ctx->err, sizeof ctx->err, "seq_copy: bad sequences %d -> %d or length %d", src, dst, n);
        return CST_ERR_INVALID_ARG;
    }
    if (src == dst) {
        ctx->seq_len[dst] = n;
        return CST_OK;
    }
    const cst_hparams *hp = &ctx->m->hp;
    const size_t nctx = (size_t)p->n_ctx;
    const size_t kdim = (size_t)hp->n_head_kv * hp->head_dim, vdim = (size_t)hp->n_head_kv * hp->head_dim_v;
    for (int il = 0; il < hp->n_layer; il++) {
        memcpy(ctx->k[il] + (size_t)dst * nctx * kdim, ctx->k[il] + (size_t)src * nctx * kdim,
               (size_t)n * kdim * sizeof(cst_f16));
        for (size_t d = 0; d < vdim; d++)
            memcpy(ctx->v[il] + ((size_t)dst * vdim + d) * nctx, ctx->v[il] + ((size_t)src * vdim + d) * nctx,
                   (size_t)n * sizeof(cst_f16));
    }
    memcpy(ctx->tokens + (size_t)dst * nctx, ctx->tokens + (size_t)src * nctx, (size_t)n * sizeof(cst_token));
    ctx->seq_len[dst] = n;
    return CST_OK;
}

const cst_token *cst_ctx_seq_tokens(const cst_ctx *ctx, int32_t seq, int32_t *n) {
    if (seq < 0 || seq >= ctx->p.n_seq) {
        if (n) *n = 0;
        return NULL;
    }
    if (n) *n = ctx->seq_len[seq];
    return ctx->tokens + (size_t)seq * ctx->p.n_ctx;
}

int32_t cst_ctx_seq_common_prefix(const cst_ctx *ctx, int32_t seq, const cst_token *toks, int32_t n) {
    int32_t have = 0;
    const cst_token *old = cst_ctx_seq_tokens(ctx, seq, &have);
    return cst_tokens_common_prefix(old, have, toks, n);
}

int32_t cst_tokens_common_prefix(const cst_token *old, int32_t have, const cst_token *toks, int32_t n) {
    if (!old || !toks || n <= 0 || have <= 0) return 0;
    const int32_t lim = CST_MIN(have, n);
    int32_t k = 0;
    while (k < lim && old[k] == toks[k] && toks[k] != CST_TOKEN_EMBD_ANON) k++;
    /* ending inside an embedding block (a run of one negative marker) in
     * either list: back to the block's start */
    if (k > 0 && toks[k - 1] < 0) {
        const cst_token mk = toks[k - 1];
        const bool cont = (k < n && toks[k] == mk) || (k < have && old[k] == mk);
        if (cont)
            while (k > 0 && toks[k - 1] == mk) k--;
    }
    return k;
}

/* ---- snapshots ------------------------------------------------------------- */
#define SNAP_MAGIC 0x50414e53u /* "SNAP" */

typedef struct snap_hdr {
    uint32_t magic;
    int32_t n, n_layer, kdim, vdim;
    int32_t pad[3];
} snap_hdr;
_Static_assert(sizeof(snap_hdr) == 32, "snapshot header is 32 bytes");

static size_t snap_size(int64_t n, int64_t n_layer, int64_t kdim, int64_t vdim) {
    return sizeof(snap_hdr) + (size_t)n * sizeof(cst_token) +
           (size_t)n_layer * (size_t)n * (size_t)(kdim + vdim) * sizeof(cst_f16);
}

/* The header of a well-formed snapshot of size bytes, or NULL. */
static const snap_hdr *snap_check(const void *buf, size_t size) {
    if (!buf || size < sizeof(snap_hdr)) return NULL;
    snap_hdr h;
    memcpy(&h, buf, sizeof h);
    if (h.magic != SNAP_MAGIC || h.n < 0 || h.n_layer <= 0 || h.kdim <= 0 || h.vdim <= 0 || h.n > (1 << 24) ||
        h.n_layer > (1 << 16) || h.kdim > (1 << 20) || h.vdim > (1 << 20))
        return NULL;
    if (size < snap_size(h.n, h.n_layer, h.kdim, h.vdim)) return NULL;
    return buf;
}

size_t cst_ctx_seq_state_size(const cst_ctx *ctx, int32_t n) {
    if (n < 0) return 0;
    const cst_hparams *hp = &ctx->m->hp;
    return snap_size(n, hp->n_layer, (int64_t)hp->n_head_kv * hp->head_dim, (int64_t)hp->n_head_kv * hp->head_dim_v);
}

cst_status cst_ctx_seq_state_save(cst_ctx *ctx, int32_t seq, int32_t n, void *buf, size_t size) {
    ctx->err[0] = 0;
    if (seq < 0 || seq >= ctx->p.n_seq || n < 0 || n > ctx->seq_len[seq] || !buf ||
        size < cst_ctx_seq_state_size(ctx, n)) {
        cst_errf(ctx->err, sizeof ctx->err, "seq_state_save: bad sequence %d, length %d or buffer of %zu bytes", seq, n,
                 size);
        return CST_ERR_INVALID_ARG;
    }
    const cst_hparams *hp = &ctx->m->hp;
    const size_t nctx = (size_t)ctx->p.n_ctx, nn = (size_t)n;
    const size_t kdim = (size_t)hp->n_head_kv * hp->head_dim, vdim = (size_t)hp->n_head_kv * hp->head_dim_v;
    snap_hdr h = {.magic = SNAP_MAGIC, .n = n, .n_layer = hp->n_layer, .kdim = (int32_t)kdim, .vdim = (int32_t)vdim};
    char *p = buf;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    memcpy(p, ctx->tokens + (size_t)seq * nctx, nn * sizeof(cst_token));
    p += nn * sizeof(cst_token);
    for (int il = 0; il < hp->n_layer; il++) {
        memcpy(p, ctx->k[il] + (size_t)seq * nctx * kdim, nn * kdim * sizeof(cst_f16));
        p += nn * kdim * sizeof(cst_f16);
        for (size_t d = 0; d < vdim; d++) {
            memcpy(p, ctx->v[il] + ((size_t)seq * vdim + d) * nctx, nn * sizeof(cst_f16));
            p += nn * sizeof(cst_f16);
        }
    }
    return CST_OK;
}

cst_status cst_ctx_seq_state_load(cst_ctx *ctx, int32_t seq, const void *buf, size_t size, int32_t n) {
    ctx->err[0] = 0;
    const snap_hdr *hp0 = snap_check(buf, size);
    if (!hp0) {
        cst_errf(ctx->err, sizeof ctx->err, "seq_state_load: not a sequence snapshot (or truncated)");
        return CST_ERR_BAD_FORMAT;
    }
    snap_hdr h;
    memcpy(&h, hp0, sizeof h);
    const cst_hparams *hp = &ctx->m->hp;
    const size_t kdim = (size_t)hp->n_head_kv * hp->head_dim, vdim = (size_t)hp->n_head_kv * hp->head_dim_v;
    if (h.n_layer != hp->n_layer || (size_t)h.kdim != kdim || (size_t)h.vdim != vdim) {
        cst_errf(ctx->err, sizeof ctx->err,
                 "seq_state_load: snapshot of %d layers x K %d / V %d does not fit this model (%d x %zu / %zu)",
                 h.n_layer, h.kdim, h.vdim, hp->n_layer, kdim, vdim);
        return CST_ERR_BAD_FORMAT;
    }
    if (seq < 0 || seq >= ctx->p.n_seq || n < 0 || n > h.n || n > ctx->p.n_ctx) {
        cst_errf(ctx->err, sizeof ctx->err, "seq_state_load: bad sequence %d or length %d (snapshot %d, n_ctx %d)",
                 seq, n, h.n, ctx->p.n_ctx);
        return CST_ERR_INVALID_ARG;
    }
    const size_t nctx = (size_t)ctx->p.n_ctx, nn = (size_t)n, ns = (size_t)h.n;
    const char *p = (const char *)buf + sizeof h;
    memcpy(ctx->tokens + (size_t)seq * nctx, p, nn * sizeof(cst_token));
    p += ns * sizeof(cst_token);
    for (int il = 0; il < hp->n_layer; il++) {
        memcpy(ctx->k[il] + (size_t)seq * nctx * kdim, p, nn * kdim * sizeof(cst_f16));
        p += ns * kdim * sizeof(cst_f16);
        for (size_t d = 0; d < vdim; d++) {
            memcpy(ctx->v[il] + ((size_t)seq * vdim + d) * nctx, p, nn * sizeof(cst_f16));
            p += ns * sizeof(cst_f16);
        }
    }
    ctx->seq_len[seq] = n;
    return CST_OK;
}

const cst_token *cst_seq_state_tokens(const void *buf, size_t size, int32_t *n) {
    const snap_hdr *h = snap_check(buf, size);
    if (n) *n = 0;
    if (!h) return NULL;
    if (n) memcpy(n, &((const char *)buf)[offsetof(snap_hdr, n)], sizeof *n);
    return (const cst_token *)((const char *)buf + sizeof(snap_hdr));
}
