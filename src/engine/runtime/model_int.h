/* model_int.h: structures shared inside the model module (runtime/ and
 * arch/): hyper-parameters, weight views, the per-architecture description
 * table, the context (KV cache + scratch) and the numeric ops that mimic
 * ggml's rounding. Nothing outside src/engine/{runtime,arch} includes it.
 */
#ifndef CST_MODEL_INT_H
#define CST_MODEL_INT_H

#include "../engine.h"
#include "../kernels/kernels.h"
#include "../../core/core.h"
#include "../../core/pool.h"

/* ---- hyper-parameters ------------------------------------------------ */
enum { CST_ROPE_NORM = 0, CST_ROPE_NEOX = 2 }; /* ggml's rope mode numbers */
enum { CST_ACT_SILU = 0, CST_ACT_GELU = 1 };

typedef struct cst_hparams {
    int32_t n_vocab, n_embd, n_layer, n_ff;
    int32_t n_head, n_head_kv, head_dim, head_dim_v; /* head_dim: K/Q width */
    int32_t n_rot;          /* rotated dims per head (<= head_dim) */
    int32_t n_ctx_train;
    float norm_eps;
    int rope_type;          /* CST_ROPE_NORM / CST_ROPE_NEOX */
    float rope_base, rope_scale;         /* global layers (rope_scale = 1/factor) */
    float rope_base_swa, rope_scale_swa; /* sliding-window layers */
    int32_t n_swa;          /* window (positions), 0: none */
    int32_t swa_pattern;    /* layer il is SWA when il % pattern < pattern-1 */
    float attn_scale;       /* softmax scale (1/sqrt(head_dim) by default) */
    bool scale_q;           /* gemma: multiply Q by attn_scale before QK (softmax scale 1) */
    float embd_scale;       /* 0: none; gemma: sqrt(n_embd) */
    int act;                /* CST_ACT_* (gated FFN) */
    bool qkv_bias, qk_norm, post_norms;
} cst_hparams;

/* A 2-D weight matrix: n_out rows of n_in elements of `type` (a view into the mapping). */
typedef struct cst_weight {
    const void *data;
    cst_type type;
    int64_t n_in, n_out;
    const void *packed; /* copy repacked at load for the active ISA (cst_pack), or NULL */
} cst_weight;

typedef struct cst_layer {
    const float *attn_norm;             /* [n_embd] */
    cst_weight wq, wk, wv, wo;
    const float *bq, *bk, *bv;          /* qwen2 biases or NULL */
    const float *q_norm, *k_norm;       /* [head_dim] or NULL */
    const float *post_attn_norm;        /* gemma: [n_embd] or NULL */
    const float *ffn_norm;              /* [n_embd] */
    cst_weight gate, up, down;
    const float *post_ffn_norm;         /* gemma: [n_embd] or NULL */
    bool swa;                           /* sliding-window layer */
    float rope_base, rope_scale;
} cst_layer;

struct cst_model {
    cst_gguf *g;
    cst_vocab *vocab;
    char arch[32];
    char *name;
    char *chat_template;
    char desc[160];
    cst_hparams hp;
    cst_weight tok_embd;         /* [n_vocab][n_embd] */
    const float *output_norm;    /* [n_embd] */
    cst_weight output;           /* [n_vocab][n_embd] (tied: = tok_embd) */
    const float *rope_freqs;     /* llama3 rope frequency factors [n_rot/2] or NULL */
    cst_layer *layers;           /* [n_layer] */
    uint64_t n_params;
    bool vocab_only;
    void *pack_buf;              /* every packed weight (cst_weight.packed points into it) */
    size_t pack_bytes;
};

/* y = W x for a model weight (its packed copy when it has one), see cst_matmul */
void cst_weight_matmul(cst_pool *pool, const cst_weight *w, const float *x, int64_t n_tok, float *y, int64_t ldy,
                       void *wdata);

/* ---- per-architecture description (arch/ files) ------------------------- */
typedef struct cst_arch_desc {
    const char *name;
    /* Fill hp's architecture-specific fields from metadata (common ones are
     * read before); return non-OK with a message on bad values. */
    cst_status (*hparams)(const cst_gguf *g, cst_hparams *hp, char *err, size_t errlen);
} cst_arch_desc;

extern const cst_arch_desc cst_arch_llama;
extern const cst_arch_desc cst_arch_qwen2;
extern const cst_arch_desc cst_arch_qwen3;
extern const cst_arch_desc cst_arch_gemma3;

/* Metadata helpers used by the arch/ files: "<arch>.<suffix>" lookups. */
int64_t cst_arch_get_i64(const cst_gguf *g, const char *arch, const char *suffix, int64_t dflt);
double cst_arch_get_f64(const cst_gguf *g, const char *arch, const char *suffix, double dflt);
cst_strv cst_arch_get_str(const cst_gguf *g, const char *arch, const char *suffix);

/* ---- context --------------------------------------------------------- */
struct cst_ctx {
    cst_model *m;
    cst_ctx_params p;
    cst_pool *pool;
    char err[CST_ERRMSG_LEN];

    /* KV cache (F16). Per layer:
     *   k: [n_seq][n_ctx][n_head_kv*head_dim]
     *   v: [n_seq][n_head_kv*head_dim_v][n_ctx]   (transposed, as llama.cpp without flash attention) */
    cst_f16 *kv;        /* one allocation */
    size_t kv_bytes;
    size_t k_layer, v_layer; /* elements per layer */
    cst_f16 **k, **v;        /* [n_layer] */
    int32_t *seq_len;        /* [n_seq] */
    cst_token *tokens;       /* [n_seq][n_ctx] tokens stored in the cache */

    /* scratch, sized by n_batch */
    float *x;        /* [n_batch][n_embd] residual stream */
    float *xb;       /* [n_batch][n_embd] normed input / sublayer output */
    float *q;        /* [n_batch][n_head*head_dim] */
    float *kt, *vt;  /* [n_batch][n_head_kv*head_dim(_v)] */
    float *att;      /* [n_batch][n_head*head_dim_v] */
    float *ff_g, *ff_u; /* [n_batch][n_ff] */
    void *wdata;     /* activation conversion for cst_matmul */
    size_t wsize;
    /* attention, per thread: scores [n_ctx] f32, probs [n_ctx] f16, q [head_dim] f16 */
    float *att_scores;
    cst_f16 *att_p16;
    cst_f16 *att_q16;
    int32_t *out_idx;  /* [n_batch] logits row of batch entry, -1 if none */
    int32_t *out_rows; /* [n_outputs] batch entry of each logits row */
    float *logits;     /* [n_outputs][n_vocab] */
    int32_t n_outputs; /* capacity */
    int32_t last_n;    /* entries of the last decode (out_idx valid up to here) */
    int32_t *tmp_len;  /* [n_seq] */
    float *rope_cache; /* [n_batch][n_rot] cos/sin pairs, per layer kind */
    cst_batch *ebatch; /* [n_batch] for cst_ctx_decode_embd */
};

/* forward.c */
cst_status cst_forward(cst_ctx *ctx, const cst_batch *b);

/* ---- ops (ops.c): ggml-compatible rounding --------------------------- */
/* y = (x * 1/sqrt(mean(x^2)+eps)) * w   (sum in double, as ggml); w may be NULL */
void cst_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
/* cos/sin table for one position: cache[2*i], cache[2*i+1] for i < n_rot/2 */
void cst_rope_cache(float *cache, int32_t pos, int32_t n_rot, float base, float scale,
                    const float *freq_factors);
/* Rotate one head in place with a cache from cst_rope_cache. */
void cst_rope_apply(float *x, const float *cache, int32_t n_rot, int mode);
/* y[i] = gelu_tanh(g[i]) * u[i] through ggml's F16 GELU table (ggml_vec_geglu_f32) */
void cst_geglu(float *y, const float *g, const float *u, int64_t n);
/* y[i] = silu(g[i]) * u[i], bit-exact with ggml_vec_swiglu_f32 (AVX-512 build) (ops_exact.c) */
void cst_swiglu(float *y, const float *g, const float *u, int64_t n);

/* One attention head for one query (ops_exact.c), rounded like llama.cpp's
 * CPU path without flash attention: Q -> F16, QK^T, scale, softmax (ggml's
 * vectorised expf, sums of 16-position groups in double), probabilities ->
 * F16, P*V. `batch` selects tinyBLAS' accumulation order (llama.cpp batches
 * of >= 2 tokens) instead of ggml_vec_dot_f16's (single-token decode).
 * Positions p0..p1 are visible; k + p*k_stride is the K row of position p,
 * v + d*v_stride + p the V value of dim d (transposed cache). scores and p16
 * are indexed by position (>= p1+1 entries). */
typedef struct cst_attn_head {
    float *out;             /* [hdv] */
    const float *q;         /* [hd] */
    const cst_f16 *k, *v;
    size_t k_stride, v_stride;
    int32_t hd, hdv, p0, p1;
    float scale;
    bool batch;
    float *scores;
    cst_f16 *p16, *q16;
} cst_attn_head;
void cst_attn_head_run(const cst_attn_head *a);
/* Up to CST_ATTN_TILE queries that share K and V (k, v, strides, hd, hdv,
 * scale and batch equal; own out, q, p0, p1, scores, p16, q16; each scores
 * and p16 with entries up to the tile's largest p1): each a[i] gets exactly
 * the bits cst_attn_head_run(&a[i]) gives it. Batches (AVX2)
 * compute them together, so that each K row and V value is converted once
 * for the tile, not once per query. */
#define CST_ATTN_TILE 4
void cst_attn_heads_run(const cst_attn_head *a, int n);
void cst_ops_init(void); /* builds the GELU table (idempotent, thread-safe) */

#endif
