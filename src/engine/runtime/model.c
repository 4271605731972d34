/* model.c: loading a model from a GGUF file. Reads the hyper-parameters from
 * metadata ("<arch>.*" keys, as llama.cpp names them), lets the architecture
 * hook (arch/ files) set its specifics, then binds every tensor as a view into
 * the read-only mapping after checking its shape and type. Nothing is copied,
 * except the Q8_0 / Q4_0 / Q4_K matrices repacked for the 8-row kernels on x86
 * (cst_pack_wanted), whose file pages are then dropped from memory.
 */
#include "model_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const cst_arch_desc *const archs[] = {&cst_arch_llama, &cst_arch_qwen2, &cst_arch_qwen3,
                                              &cst_arch_gemma3};

cst_model_params cst_model_default_params(void) {
    cst_model_params p = {.vocab_only = false};
    return p;
}

/* ---- metadata helpers ------------------------------------------------------ */
static void arch_key(char *buf, size_t cap, const char *arch, const char *suffix) {
    snprintf(buf, cap, "%s.%s", arch, suffix);
}

int64_t cst_arch_get_i64(const cst_gguf *g, const char *arch, const char *suffix, int64_t dflt) {
    char k[160];
    arch_key(k, sizeof k, arch, suffix);
    return cst_gguf_get_i64(g, k, dflt);
}

double cst_arch_get_f64(const cst_gguf *g, const char *arch, const char *suffix, double dflt) {
    char k[160];
    arch_key(k, sizeof k, arch, suffix);
    return cst_gguf_get_f64(g, k, dflt);
}

cst_strv cst_arch_get_str(const cst_gguf *g, const char *arch, const char *suffix) {
    char k[160];
    arch_key(k, sizeof k, arch, suffix);
    return cst_gguf_get_str(g, k);
}

static char *strv_dup(cst_strv s) {
    char *r = malloc(s.len + 1);
    if (!r) return NULL;
    if (s.len) memcpy(r, s.ptr, s.len);
    r[s.len] = 0;
    return r;
}

/* ---- tensor binding ------------------------------------------------------- */
typedef struct binder {
    cst_model *m;
    char *err;
    size_t errlen;
} binder;

static const cst_gguf_tensor *find(binder *b, const char *name, bool required, cst_status *st) {
    const cst_gguf_tensor *t = cst_gguf_find_tensor(b->m->g, name);
    if (!t && required) {
        cst_errf(b->err, b->errlen, "missing tensor '%s'", name);
        *st = CST_ERR_BAD_FORMAT;
    }
    return t;
}

static cst_status bind_mat(binder *b, const char *name, int64_t n_in, int64_t n_out, bool required,
                           cst_weight *w) {
    cst_status st = CST_OK;
    memset(w, 0, sizeof *w);
    const cst_gguf_tensor *t = find(b, name, required, &st);
    if (!t) return st;
    if (t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != 1 || t->ne[3] != 1) {
        cst_errf(b->err, b->errlen, "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                 name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                 (long long)n_in, (long long)n_out);
        return CST_ERR_BAD_FORMAT;
    }
    const cst_kernel_traits *tr = cst_kernel_traits_for(t->type);
    if (!tr || !tr->vec_dot || !tr->to_float || !cst_kernel_traits_for(tr->vec_dot_type)) {
        cst_errf(b->err, b->errlen, "tensor '%s': type %s is not supported", name, cst_type_name(t->type));
        return CST_ERR_UNSUPPORTED;
    }
    w->data = t->data;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    return CST_OK;
}

static cst_status bind_vec(binder *b, const char *name, int64_t n, bool required, const float **out) {
    cst_status st = CST_OK;
    *out = NULL;
    const cst_gguf_tensor *t = find(b, name, required, &st);
    if (!t) return st;
    if (t->ne[0] != n || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1) {
        cst_errf(b->err, b->errlen, "tensor '%s' has %lld elements, expected %lld", name,
                 (long long)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]), (long long)n);
        return CST_ERR_BAD_FORMAT;
    }
    if (t->type != CST_TYPE_F32) {
        cst_errf(b->err, b->errlen, "tensor '%s': type %s is not supported for vectors (F32 only)", name,
                 cst_type_name(t->type));
        return CST_ERR_UNSUPPORTED;
    }
    if (((uintptr_t)t->data & 3) != 0) {
        cst_errf(b->err, b->errlen, "tensor '%s' is misaligned", name);
        return CST_ERR_BAD_FORMAT;
    }
    *out = t->data;
    return CST_OK;
}

/* ---- hyper-parameters ------------------------------------------------------ */
static bool in_range(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

static cst_status read_hparams(cst_model *m, const cst_arch_desc *ad, char *err, size_t errlen) {
    const cst_gguf *g = m->g;
    const char *a = ad->name;
    cst_hparams *hp = &m->hp;
    memset(hp, 0, sizeof *hp);
    const int64_t n_embd = cst_arch_get_i64(g, a, "embedding_length", -1);
    const int64_t n_layer = cst_arch_get_i64(g, a, "block_count", -1);
    const int64_t n_ff = cst_arch_get_i64(g, a, "feed_forward_length", -1);
    const int64_t n_head = cst_arch_get_i64(g, a, "attention.head_count", -1);
    const int64_t n_head_kv = cst_arch_get_i64(g, a, "attention.head_count_kv", n_head);
    const int64_t n_ctx = cst_arch_get_i64(g, a, "context_length", 2048);
    if (!in_range(n_embd, 1, 1 << 16) || !in_range(n_layer, 1, 1024) || !in_range(n_ff, 1, 1 << 20) ||
        !in_range(n_head, 1, 1024) || !in_range(n_head_kv, 1, n_head) || n_head % n_head_kv != 0) {
        cst_errf(err, errlen,
                 "%s: missing or invalid hyper-parameters (embedding_length %lld, block_count %lld, "
                 "feed_forward_length %lld, head_count %lld, head_count_kv %lld)",
                 a, (long long)n_embd, (long long)n_layer, (long long)n_ff, (long long)n_head,
                 (long long)n_head_kv);
        return CST_ERR_BAD_FORMAT;
    }
    const int64_t head_dim = cst_arch_get_i64(g, a, "attention.key_length", n_embd / n_head);
    const int64_t head_dim_v = cst_arch_get_i64(g, a, "attention.value_length", head_dim);
    const int64_t n_rot = cst_arch_get_i64(g, a, "rope.dimension_count", head_dim);
    if (!in_range(head_dim, 2, 4096) || head_dim_v != head_dim || !in_range(n_rot, 2, head_dim) ||
        n_rot % 2 != 0) {
        cst_errf(err, errlen, "%s: unsupported head sizes (key_length %lld, value_length %lld, rope dims %lld)",
                 a, (long long)head_dim, (long long)head_dim_v, (long long)n_rot);
        return CST_ERR_UNSUPPORTED;
    }
    hp->n_embd = (int32_t)n_embd;
    hp->n_layer = (int32_t)n_layer;
    hp->n_ff = (int32_t)n_ff;
    hp->n_head = (int32_t)n_head;
    hp->n_head_kv = (int32_t)n_head_kv;
    hp->head_dim = (int32_t)head_dim;
    hp->head_dim_v = (int32_t)head_dim_v;
    hp->n_rot = (int32_t)n_rot;
    hp->n_ctx_train = in_range(n_ctx, 1, INT32_MAX) ? (int32_t)n_ctx : 2048;
    hp->norm_eps = (float)cst_arch_get_f64(g, a, "attention.layer_norm_rms_epsilon", 1e-5);
    hp->rope_base = (float)cst_arch_get_f64(g, a, "rope.freq_base", 10000.0);
    cst_strv rst = cst_arch_get_str(g, a, "rope.scaling.type");
    if (rst.ptr && !cst_strv_eq(rst, "linear") && !cst_strv_eq(rst, "none")) {
        cst_errf(err, errlen, "%s: rope scaling type '%.*s' is not supported", a, (int)rst.len, rst.ptr);
        return CST_ERR_UNSUPPORTED;
    }
    double factor = cst_arch_get_f64(g, a, "rope.scaling.factor", 0.0);
    if (factor == 0.0) factor = cst_arch_get_f64(g, a, "rope.scale_linear", 0.0);
    if (!(factor >= 0.0) || !isfinite(factor) || !(hp->rope_base > 0.0f) || !isfinite(hp->rope_base) ||
        !(hp->norm_eps >= 0.0f)) {
        cst_errf(err, errlen, "%s: invalid rope or norm parameters", a);
        return CST_ERR_BAD_FORMAT;
    }
    hp->rope_scale = factor == 0.0 ? 1.0f : (float)(1.0 / factor);
    hp->rope_base_swa = hp->rope_base;
    hp->rope_scale_swa = hp->rope_scale;
    hp->attn_scale = 1.0f / sqrtf((float)head_dim);
    return ad->hparams(g, hp, err, errlen);
}

static cst_status bind_tensors(cst_model *m, char *err, size_t errlen) {
    binder b = {m, err, errlen};
    cst_hparams *hp = &m->hp;
    cst_status st;
    const cst_gguf_tensor *te = cst_gguf_find_tensor(m->g, "token_embd.weight");
    if (!te) {
        cst_errf(err, errlen, "missing tensor 'token_embd.weight'");
        return CST_ERR_BAD_FORMAT;
    }
    if (!in_range(te->ne[1], 1, INT32_MAX)) {
        cst_errf(err, errlen, "token_embd.weight: bad vocabulary size");
        return CST_ERR_BAD_FORMAT;
    }
    hp->n_vocab = (int32_t)te->ne[1];
    if ((st = bind_mat(&b, "token_embd.weight", hp->n_embd, hp->n_vocab, true, &m->tok_embd))) return st;
    if ((st = bind_vec(&b, "output_norm.weight", hp->n_embd, true, &m->output_norm))) return st;
    if ((st = bind_mat(&b, "output.weight", hp->n_embd, hp->n_vocab, false, &m->output))) return st;
    if (!m->output.data) m->output = m->tok_embd;
    if ((st = bind_vec(&b, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs))) return st;

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return CST_ERR_NOMEM;
    const int64_t e = hp->n_embd, qd = (int64_t)hp->n_head * hp->head_dim,
                  kd = (int64_t)hp->n_head_kv * hp->head_dim, vd = (int64_t)hp->n_head_kv * hp->head_dim_v,
                  od = (int64_t)hp->n_head * hp->head_dim_v, ff = hp->n_ff;
    for (int il = 0; il < hp->n_layer; il++) {
        cst_layer *L = &m->layers[il];
        char n[96];
#define T(suffix) (snprintf(n, sizeof n, "blk.%d." suffix, il), n)
        if ((st = bind_vec(&b, T("attn_norm.weight"), e, true, &L->attn_norm))) return st;
        if ((st = bind_mat(&b, T("attn_q.weight"), e, qd, true, &L->wq))) return st;
        if ((st = bind_mat(&b, T("attn_k.weight"), e, kd, true, &L->wk))) return st;
        if ((st = bind_mat(&b, T("attn_v.weight"), e, vd, true, &L->wv))) return st;
        if ((st = bind_mat(&b, T("attn_output.weight"), od, e, true, &L->wo))) return st;
        if (hp->qkv_bias) {
            if ((st = bind_vec(&b, T("attn_q.bias"), qd, true, &L->bq))) return st;
            if ((st = bind_vec(&b, T("attn_k.bias"), kd, true, &L->bk))) return st;
            if ((st = bind_vec(&b, T("attn_v.bias"), vd, true, &L->bv))) return st;
        }
        if (hp->qk_norm) {
            if ((st = bind_vec(&b, T("attn_q_norm.weight"), hp->head_dim, true, &L->q_norm))) return st;
            if ((st = bind_vec(&b, T("attn_k_norm.weight"), hp->head_dim, true, &L->k_norm))) return st;
        }
        if (hp->post_norms) {
            if ((st = bind_vec(&b, T("post_attention_norm.weight"), e, true, &L->post_attn_norm))) return st;
            if ((st = bind_vec(&b, T("post_ffw_norm.weight"), e, true, &L->post_ffn_norm))) return st;
        }
        if ((st = bind_vec(&b, T("ffn_norm.weight"), e, true, &L->ffn_norm))) return st;
        if ((st = bind_mat(&b, T("ffn_gate.weight"), e, ff, true, &L->gate))) return st;
        if ((st = bind_mat(&b, T("ffn_up.weight"), e, ff, true, &L->up))) return st;
        if ((st = bind_mat(&b, T("ffn_down.weight"), ff, e, true, &L->down))) return st;
#undef T
        /* llama.cpp's set_swa_pattern: pattern 0 = every layer sliding */
        const int32_t pat = hp->swa_pattern;
        L->swa = hp->n_swa > 0 && (pat == 0 || il % pat < pat - 1);
        L->rope_base = L->swa ? hp->rope_base_swa : hp->rope_base;
        L->rope_scale = L->swa ? hp->rope_scale_swa : hp->rope_scale;
    }
    return CST_OK;
}

/* ---- repacking -------------------------------------------------------------
 * Weights the active ISA runs faster repacked (cst_pack_wanted: Q8_0, Q4_0
 * and Q4_K under AVX2 / AVX-512, not with CST_REPACK=0) are copied into one
 * buffer in the packed layout. The file's pages of each packed tensor are
 * then dropped from this process (MADV_DONTNEED on the private read-only
 * mapping: clean pages, so they are only unmapped and are read again from
 * the file if ever touched, e.g. embedding rows of a tied output), so that
 * the copy does not double the resident size. */
static void drop_pages(const void *p, size_t n) {
    const long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    const uintptr_t b = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    const uintptr_t e = ((uintptr_t)p + n) & ~((uintptr_t)pg - 1);
    if (e > b) (void)madvise((void *)b, e - b, MADV_DONTNEED);
}

static int model_weights(cst_model *m, cst_weight **out) {
    int n = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        cst_layer *L = &m->layers[il];
        cst_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (size_t k = 0; k < CST_ARRAY_LEN(ws); k++) out[n++] = ws[k];
    }
    out[n++] = &m->output;
    return n;
}

static cst_status pack_weights(cst_model *m) {
    cst_weight **ws = malloc(((size_t)m->hp.n_layer * 7 + 1) * sizeof *ws);
    if (!ws) return CST_ERR_NOMEM;
    const int n = model_weights(m, ws);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (ws[i]->data && cst_pack_wanted(ws[i]->type, ws[i]->n_in, ws[i]->n_out))
            total += cst_pack_size(ws[i]->type, ws[i]->n_in, ws[i]->n_out);
    if (total) {
        m->pack_buf = cst_alloc_aligned(total, 64);
        if (!m->pack_buf) {
            free(ws);
            return CST_ERR_NOMEM;
        }
        m->pack_bytes = total;
    }
    char *p = m->pack_buf;
    for (int i = 0; i < n && total; i++) {
        cst_weight *w = ws[i];
        if (!w->data || !cst_pack_wanted(w->type, w->n_in, w->n_out)) continue;
        const size_t sz = cst_pack_size(w->type, w->n_in, w->n_out);
        cst_pack(w->type, w->n_in, w->n_out, w->data, p);
        w->packed = p;
        /* the file's bytes of the tensor (a packed copy can be larger: never
         * drop past the tensor, which may be the mapping's end) */
        drop_pages(w->data, cst_row_size(w->type, w->n_in) * (size_t)w->n_out);
        p += sz;
    }
    free(ws);
    return CST_OK;
}

void cst_weight_matmul(cst_pool *pool, const cst_weight *w, const float *x, int64_t n_tok, float *y, int64_t ldy,
                       void *wdata) {
    if (w->packed)
        cst_matmul_packed(pool, w->packed, w->type, w->n_in, w->n_out, x, n_tok, y, ldy, wdata);
    else
        cst_matmul(pool, w->data, w->type, w->n_in, w->n_out, x, n_tok, y, ldy, wdata);
}

static void format_desc(cst_model *m) {
    char params[32];
    const double np = (double)m->n_params;
    if (np >= 1e9)
        snprintf(params, sizeof params, "%.1fB", np / 1e9);
    else if (np >= 1e6)
        snprintf(params, sizeof params, "%.0fM", np / 1e6);
    else
        snprintf(params, sizeof params, "%.0fK", np / 1e3);
    const char *ty = m->vocab_only ? "vocab-only" : cst_type_name(m->layers[0].wq.type);
    snprintf(m->desc, sizeof m->desc, "%s %s %s (%.2f MiB)", m->arch, params, ty,
             (double)cst_gguf_file_size(m->g) / (1024.0 * 1024.0));
}

cst_status cst_model_load(const char *path, const cst_model_params *p, cst_model **out, char *err,
                          size_t errlen) {
    cst_model_params dp = cst_model_default_params();
    if (!p) p = &dp;
    *out = NULL;
    cst_kernels_init();
    cst_ops_init();
    cst_model *m = calloc(1, sizeof *m);
    if (!m) return CST_ERR_NOMEM;
    m->vocab_only = p->vocab_only;
    cst_status st = cst_gguf_open(path, &m->g, err, errlen);
    if (st) goto fail;

    cst_strv arch = cst_gguf_get_str(m->g, "general.architecture");
    if (!arch.ptr) {
        cst_errf(err, errlen, "%s: no general.architecture key", path);
        st = CST_ERR_BAD_FORMAT;
        goto fail;
    }
    const cst_arch_desc *ad = NULL;
    for (size_t i = 0; i < CST_ARRAY_LEN(archs); i++)
        if (cst_strv_eq(arch, archs[i]->name)) ad = archs[i];
    if (!ad) {
        cst_errf(err, errlen, "%s: architecture '%.*s' is not supported (supported: llama, qwen2, qwen3, gemma3)",
                 path, (int)CST_MIN(arch.len, 64), arch.ptr);
        st = CST_ERR_UNSUPPORTED;
        goto fail;
    }
    snprintf(m->arch, sizeof m->arch, "%s", ad->name);

    cst_strv nm = cst_gguf_get_str(m->g, "general.name");
    if (nm.ptr) {
        m->name = strv_dup(nm);
    } else {
        const char *base = strrchr(path, '/');
        m->name = strdup(base ? base + 1 : path);
    }
    cst_strv tpl = cst_gguf_get_str(m->g, "tokenizer.chat_template");
    if (tpl.ptr) m->chat_template = strv_dup(tpl);
    if (!m->name || (tpl.ptr && !m->chat_template)) {
        st = CST_ERR_NOMEM;
        goto fail;
    }

    st = cst_vocab_load_view(m->g, &m->vocab, err, errlen); /* m->g stays open until cst_model_free */
    if (st) goto fail;

    for (int64_t i = 0; i < cst_gguf_n_tensors(m->g); i++) {
        const cst_gguf_tensor *t = cst_gguf_tensor_at(m->g, i);
        m->n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    if (!m->vocab_only) {
        st = read_hparams(m, ad, err, errlen);
        if (st) goto fail;
        st = bind_tensors(m, err, errlen);
        if (st) goto fail;
        if (cst_vocab_n_tokens(m->vocab) > m->hp.n_vocab) {
            cst_errf(err, errlen, "vocabulary has %d tokens but token_embd has %d rows",
                     cst_vocab_n_tokens(m->vocab), m->hp.n_vocab);
            st = CST_ERR_BAD_FORMAT;
            goto fail;
        }
        st = pack_weights(m);
        if (st) {
            cst_errf(err, errlen, "out of memory repacking the weights");
            goto fail;
        }
    } else {
        m->hp.n_vocab = cst_vocab_n_tokens(m->vocab);
        m->hp.n_ctx_train = (int32_t)CST_MAX(1, CST_MIN(INT32_MAX, cst_arch_get_i64(m->g, m->arch, "context_length", 2048)));
    }
    format_desc(m);
    *out = m;
    return CST_OK;
fail:
    cst_model_free(m);
    return st;
}

void cst_model_free(cst_model *m) {
    if (!m) return;
    free(m->layers);
    cst_free_aligned(m->pack_buf);
    cst_vocab_free(m->vocab);
    cst_gguf_close(m->g);
    free(m->name);
    free(m->chat_template);
    free(m);
}

const cst_vocab *cst_model_vocab(const cst_model *m) { return m->vocab; }
const cst_gguf *cst_model_gguf(const cst_model *m) { return m->g; }
const char *cst_model_arch(const cst_model *m) { return m->arch; }
const char *cst_model_chat_template(const cst_model *m) { return m->chat_template; }
const char *cst_model_desc(const cst_model *m) { return m->desc; }
const char *cst_model_name(const cst_model *m) { return m->name; }
int32_t cst_model_n_ctx_train(const cst_model *m) { return m->hp.n_ctx_train; }
int32_t cst_model_n_vocab(const cst_model *m) { return m->hp.n_vocab; }
int32_t cst_model_n_embd(const cst_model *m) { return m->hp.n_embd; }
int32_t cst_model_n_layer(const cst_model *m) { return m->hp.n_layer; }
uint64_t cst_model_n_params(const cst_model *m) { return m->n_params; }
size_t cst_model_file_size(const cst_model *m) { return cst_gguf_file_size(m->g); }

size_t cst_model_kv_bytes_per_token(const cst_model *m, cst_type kv_type) {
    const size_t es = kv_type == CST_TYPE_F32 ? 4 : 2;
    return (size_t)m->hp.n_layer * (size_t)m->hp.n_head_kv * (size_t)(m->hp.head_dim + m->hp.head_dim_v) * es;
}
