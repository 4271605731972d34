/* clip.c: the vision encoder of a llama.cpp "clip" projector GGUF: a SigLIP
 * ViT (patch embedding as a matmul over im2col rows, learned position
 * embeddings, pre-norm blocks with LayerNorm, GELU MLP, full attention,
 * post LayerNorm) followed by the gemma3 projector (2-D average pooling of
 * the patch grid, RMS norm with mm.soft_emb_norm, mm.input_projection).
 * The op order and the activation conversions follow clip.cpp's graph on
 * ggml's CPU backend (Q8_0 activations for Q8_0 weights, F16 GELU table).
 */
#include "vision_int.h"

#include "../../core/core.h"
#include "../../core/half.h"
#include "../gguf/gguf.h"
#include "../kernels/kernels.h"
#include <math.h>
#include <pthread.h>
#include <string.h>

typedef enum { ACT_GELU, ACT_GELU_QUICK, ACT_SILU } act_kind;

typedef struct {
    const void *w; /* mapped weight rows */
    cst_type type;
    int64_t n_in, n_out;
    float *b; /* owned, may be NULL */
} linear;

typedef struct {
    float *w, *b; /* owned; b may be NULL */
} norm;

typedef struct {
    norm ln1, ln2;
    linear q, k, v, o, up, down;
} block;

struct cst_vision {
    cst_gguf *g;
    cst_vision_hparams hp;
    act_kind act;
    int n_patches, n_tokens, n_out;

    float *patch_w;     /* [n_embd][3*ps*ps], values rounded to F16 */
    cst_f16 *patch_w16; /* the same as F16 rows, for wide kernels */
    float *patch_b; /* may be NULL */
    float *pos;     /* [n_patches][n_embd] */
    norm pre_ln, post_ln; /* w may be NULL: absent */
    block *blk;
    float *soft_norm;  /* [n_embd] */
    void *proj;        /* [n_out][n_embd] rows of proj_type (transposed from the file) */
    cst_type proj_type;

    /* scratch, sized at load */
    float *img, *patches, *x, *cur, *q, *k, *v, *att, *tmp, *ff, *kh, *qh, *vt, *kq, *pooled;
    void *wdata;
    size_t wdata_size;
};

/* ---- activation tables (ggml's F16 lookup) ---------------------------- */

static cst_f16 gelu_tab[1 << 16], gelu_quick_tab[1 << 16];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static float gelu_f32(float x) {
    const float c = 0.79788456080286535587989211986876f; /* sqrt(2/pi) */
    const float a = 0.044715f;
    return 0.5f * x * (1.0f + tanhf(c * x * (1.0f + a * x * x)));
}

static float gelu_quick_f32(float x) { return x * (1.0f / (1.0f + expf(-1.702f * x))); }

static void tab_init(void) {
    for (uint32_t i = 0; i < (1u << 16); i++) {
        const float f = cst_f16_to_f32((cst_f16)i);
        gelu_tab[i] = cst_f32_to_f16(gelu_f32(f));
        gelu_quick_tab[i] = cst_f32_to_f16(gelu_quick_f32(f));
    }
}

static void act_apply(act_kind k, float *x, int64_t n) {
    switch (k) {
    case ACT_GELU:
        for (int64_t i = 0; i < n; i++) {
            const float v = x[i];
            if (v <= -10.0f) x[i] = 0.0f;
            else if (v < 10.0f) x[i] = cst_f16_to_f32(gelu_tab[cst_f32_to_f16(v)]);
        }
        break;
    case ACT_GELU_QUICK:
        for (int64_t i = 0; i < n; i++) x[i] = cst_f16_to_f32(gelu_quick_tab[cst_f32_to_f16(x[i])]);
        break;
    case ACT_SILU:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    }
}

/* ---- loading ------------------------------------------------------------ */

static bool key_u32(const cst_gguf *g, const char *key, int *out, bool required, char *err, size_t errlen) {
    int64_t i = cst_gguf_find_key(g, key), v;
    if (i < 0) {
        if (required) cst_errf(err, errlen, "vision: missing key %s", key);
        return !required;
    }
    if (!cst_gguf_kv_i64(g, i, &v) || v < 0 || v > INT32_MAX) {
        cst_errf(err, errlen, "vision: key %s is not a valid count", key);
        return false;
    }
    *out = (int)v;
    return true;
}

/* A tensor with the given shape (trailing dims 1), or NULL with a message. */
static const cst_gguf_tensor *tensor(const cst_gguf *g, const char *name, int64_t ne0, int64_t ne1, int64_t ne2,
                                     int64_t ne3, bool required, cst_status *st, char *err, size_t errlen) {
    const cst_gguf_tensor *t = cst_gguf_find_tensor(g, name);
    if (!t) {
        if (required) {
            cst_errf(err, errlen, "vision: missing tensor %s", name);
            *st = CST_ERR_BAD_FORMAT;
        }
        return NULL;
    }
    const int64_t want[4] = {ne0, ne1, ne2, ne3};
    for (int d = 0; d < 4; d++) {
        if (t->ne[d] != want[d]) {
            cst_errf(err, errlen, "vision: tensor %s has shape [%lld,%lld,%lld,%lld], expected [%lld,%lld,%lld,%lld]",
                     name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                     (long long)ne0, (long long)ne1, (long long)ne2, (long long)ne3);
            *st = CST_ERR_BAD_FORMAT;
            return NULL;
        }
    }
    return t;
}

/* Whole tensor to a new F32 array. */
static float *to_f32(const cst_gguf_tensor *t, cst_status *st, char *err, size_t errlen) {
    const cst_kernel_traits *tr = cst_kernel_traits_for(t->type);
    const int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    if (!tr || !tr->to_float || n % cst_type_get_info((int)t->type)->blck_size) {
        cst_errf(err, errlen, "vision: tensor %.*s has unsupported type %s", (int)t->name.len, t->name.ptr,
                 cst_type_name(t->type));
        *st = CST_ERR_UNSUPPORTED;
        return NULL;
    }
    float *y = malloc((size_t)n * sizeof(float));
    if (!y) {
        cst_errf(err, errlen, "vision: out of memory");
        *st = CST_ERR_NOMEM;
        return NULL;
    }
    tr->to_float(t->data, y, n);
    return y;
}

static bool load_vec(const cst_gguf *g, const char *name, int64_t n, bool required, float **out, cst_status *st,
                     char *err, size_t errlen) {
    *out = NULL;
    const cst_gguf_tensor *t = tensor(g, name, n, 1, 1, 1, required, st, err, errlen);
    if (!t) return *st == CST_OK;
    *out = to_f32(t, st, err, errlen);
    return *out != NULL;
}

static bool load_norm(const cst_gguf *g, const char *base, int64_t n, bool required, norm *nm, cst_status *st,
                      char *err, size_t errlen) {
    char name[96];
    snprintf(name, sizeof name, "%s.weight", base);
    if (!load_vec(g, name, n, required, &nm->w, st, err, errlen)) return false;
    if (!nm->w) return true;
    snprintf(name, sizeof name, "%s.bias", base);
    return load_vec(g, name, n, false, &nm->b, st, err, errlen);
}

static bool load_linear(const cst_gguf *g, const char *base, int64_t n_in, int64_t n_out, linear *l,
                        cst_status *st, char *err, size_t errlen) {
    char name[96];
    snprintf(name, sizeof name, "%s.weight", base);
    const cst_gguf_tensor *t = tensor(g, name, n_in, n_out, 1, 1, true, st, err, errlen);
    if (!t) return false;
    const cst_kernel_traits *tr = cst_kernel_traits_for(t->type);
    if (!tr || !tr->vec_dot || n_in % cst_type_get_info((int)tr->vec_dot_type)->blck_size ||
        n_in % cst_type_get_info((int)t->type)->blck_size) {
        cst_errf(err, errlen, "vision: tensor %s: type %s is not supported for a %lld-wide matmul", name,
                 cst_type_name(t->type), (long long)n_in);
        *st = CST_ERR_UNSUPPORTED;
        return false;
    }
    l->w = t->data;
    l->type = t->type;

    l->n_in = n_in;
    l->n_out = n_out;
    snprintf(name, sizeof name, "%s.bias", base);
    return load_vec(g, name, n_out, false, &l->b, st, err, errlen);
}

static void free_norm(norm *n) {
    free(n->w);
    free(n->b);
}

void cst_vision_free(cst_vision *v) {
    if (!v) return;
    if (v->blk) {
        for (int i = 0; i < v->hp.n_layer; i++) {
            block *b = &v->blk[i];
            free_norm(&b->ln1);
            free_norm(&b->ln2);
            linear *ls[] = {&b->q, &b->k, &b->v, &b->o, &b->up, &b->down};
            for (size_t j = 0; j < CST_ARRAY_LEN(ls); j++) free(ls[j]->b);
        }
        free(v->blk);
    }
    free(v->patch_w);
    free(v->patch_w16);
    free(v->patch_b);
    free(v->pos);
    free_norm(&v->pre_ln);
    free_norm(&v->post_ln);
    free(v->soft_norm);
    free(v->proj);
    float *bufs[] = {v->img, v->patches, v->x, v->cur, v->q, v->k, v->v, v->att,
                     v->tmp, v->ff, v->kh, v->qh, v->vt, v->kq, v->pooled};
    for (size_t i = 0; i < CST_ARRAY_LEN(bufs); i++) cst_free_aligned(bufs[i]);
    cst_free_aligned(v->wdata);
    cst_gguf_close(v->g);
    free(v);
}

static size_t mm_ws(size_t cur, cst_type t, int64_t n_in, int64_t n_tok) {
    return CST_MAX(cur, cst_matmul_wsize(t, n_in, n_tok));
}

cst_status cst_vision_load(const char *path, cst_vision **out, char *err, size_t errlen) {
    *out = NULL;
    cst_kernels_init();
    pthread_once(&tab_once, tab_init);
    cst_vision *v = calloc(1, sizeof *v);
    if (!v) {
        cst_errf(err, errlen, "vision: out of memory");
        return CST_ERR_NOMEM;
    }
    cst_status st = cst_gguf_open(path, &v->g, err, errlen);
    if (st) goto fail;
    const cst_gguf *g = v->g;
    cst_vision_hparams *hp = &v->hp;

    cst_strv arch = cst_gguf_get_str(g, "general.architecture");
    if (!arch.ptr || !cst_strv_eq(arch, "clip")) {
        cst_errf(err, errlen, "vision: %s is not a clip projector (general.architecture %.*s)", path,
                 arch.ptr ? (int)arch.len : 6, arch.ptr ? arch.ptr : "absent");
        st = CST_ERR_UNSUPPORTED;
        goto fail;
    }
    if (!cst_gguf_get_bool(g, "clip.has_vision_encoder", false)) {
        cst_errf(err, errlen, "vision: %s has no vision encoder", path);
        st = CST_ERR_UNSUPPORTED;
        goto fail;
    }
    cst_strv pt = cst_gguf_get_str(g, "clip.projector_type");
    if (!pt.ptr || !cst_strv_eq(pt, "gemma3")) {
        cst_errf(err, errlen, "vision: projector type %.*s is not supported (only gemma3)",
                 pt.ptr ? (int)pt.len : 6, pt.ptr ? pt.ptr : "absent");
        st = CST_ERR_UNSUPPORTED;
        goto fail;
    }
    st = CST_ERR_BAD_FORMAT;
    if (!key_u32(g, "clip.vision.image_size", &hp->image_size, true, err, errlen) ||
        !key_u32(g, "clip.vision.patch_size", &hp->patch_size, true, err, errlen) ||
        !key_u32(g, "clip.vision.embedding_length", &hp->n_embd, true, err, errlen) ||
        !key_u32(g, "clip.vision.feed_forward_length", &hp->n_ff, true, err, errlen) ||
        !key_u32(g, "clip.vision.block_count", &hp->n_layer, true, err, errlen) ||
        !key_u32(g, "clip.vision.attention.head_count", &hp->n_head, true, err, errlen))
        goto fail;
    hp->scale_factor = 4; /* gemma3 default; the test model sets its own */
    if (!key_u32(g, "clip.vision.projector.scale_factor", &hp->scale_factor, false, err, errlen)) goto fail;
    hp->eps = (float)cst_gguf_get_f64(g, "clip.vision.attention.layer_norm_epsilon", 1e-6);
    {
        int64_t im = cst_gguf_find_key(g, "clip.vision.image_mean");
        int64_t is = cst_gguf_find_key(g, "clip.vision.image_std");
        if (im < 0 || is < 0 || cst_gguf_kv_type(g, im) != CST_GGUF_ARRAY ||
            cst_gguf_kv_type(g, is) != CST_GGUF_ARRAY || cst_gguf_arr_n(g, im) < 3 || cst_gguf_arr_n(g, is) < 3) {
            cst_errf(err, errlen, "vision: clip.vision.image_mean / image_std missing or not 3 values");
            goto fail;
        }
        for (int c = 0; c < 3; c++) {
            double m, s;
            if (!cst_gguf_arr_f64(g, im, c, &m) || !cst_gguf_arr_f64(g, is, c, &s) || !(s != 0) || !isfinite(m) ||
                !isfinite(s)) {
                cst_errf(err, errlen, "vision: bad image_mean / image_std");
                goto fail;
            }
            hp->mean[c] = (float)m;
            hp->std[c] = (float)s;
        }
    }
    if (cst_gguf_get_bool(g, "clip.use_gelu", false)) v->act = ACT_GELU;
    else if (cst_gguf_get_bool(g, "clip.use_silu", false)) v->act = ACT_SILU;
    else v->act = ACT_GELU_QUICK;

    const int S = hp->image_size, ps = hp->patch_size, d = hp->n_embd;
    if (S <= 0 || S > 4096 || ps <= 0 || S % ps || d <= 0 || d > 65536 || hp->n_head <= 0 || d % hp->n_head ||
        hp->n_ff <= 0 || hp->n_ff > 1 << 20 || hp->n_layer <= 0 || hp->n_layer > 1024 || hp->scale_factor <= 0 ||
        (S / ps) % hp->scale_factor) {
        cst_errf(err, errlen,
                 "vision: inconsistent hyperparameters (image %d, patch %d, width %d, heads %d, ff %d, "
                 "blocks %d, scale %d)",
                 S, ps, d, hp->n_head, hp->n_ff, hp->n_layer, hp->scale_factor);
        goto fail;
    }
    const int P = S / ps;
    v->n_patches = P * P;
    const int side = P / hp->scale_factor;
    v->n_tokens = side * side;
    const int n = v->n_patches, K = 3 * ps * ps;
    st = CST_OK;

    /* patch embedding (conv kernel [ps, ps, 3, d]) and positions */
    {
        const cst_gguf_tensor *t = tensor(g, "v.patch_embd.weight", ps, ps, 3, d, true, &st, err, errlen);
        if (!t) goto fail;
        if (t->type != CST_TYPE_F32 && t->type != CST_TYPE_F16) {
            cst_errf(err, errlen, "vision: v.patch_embd.weight: type %s not supported", cst_type_name(t->type));
            st = CST_ERR_UNSUPPORTED;
            goto fail;
        }
        if (!(v->patch_w = to_f32(t, &st, err, errlen))) goto fail;
        /* ggml's conv_2d runs im2col in F16 here: the kernel and the pixels are
         * both rounded to F16 before the dot products */
        if (!(v->patch_w16 = malloc(sizeof(cst_f16) * (size_t)K * d))) {
            cst_errf(err, errlen, "vision: out of memory");
            st = CST_ERR_NOMEM;
            goto fail;
        }
        for (int64_t i = 0; i < (int64_t)K * d; i++) {
            v->patch_w16[i] = cst_f32_to_f16(v->patch_w[i]);
            v->patch_w[i] = cst_f16_to_f32(v->patch_w16[i]);
        }
        if (!load_vec(g, "v.patch_embd.bias", d, false, &v->patch_b, &st, err, errlen)) goto fail;
        t = tensor(g, "v.position_embd.weight", d, n, 1, 1, true, &st, err, errlen);
        if (!t || !(v->pos = to_f32(t, &st, err, errlen))) goto fail;
    }
    if (!load_norm(g, "v.pre_ln", d, false, &v->pre_ln, &st, err, errlen)) goto fail;
    if (!load_norm(g, "v.post_ln", d, false, &v->post_ln, &st, err, errlen)) goto fail;
    if (!(v->blk = calloc((size_t)hp->n_layer, sizeof *v->blk))) {
        cst_errf(err, errlen, "vision: out of memory");
        st = CST_ERR_NOMEM;
        goto fail;
    }
    for (int il = 0; il < hp->n_layer; il++) {
        block *b = &v->blk[il];
        char base[64];
#define LIN(field, nm, nin, nout)                                                        \
    snprintf(base, sizeof base, "v.blk.%d." nm, il);                                     \
    if (!load_linear(g, base, nin, nout, &b->field, &st, err, errlen)) goto fail;
#define NRM(field, nm)                                                                   \
    snprintf(base, sizeof base, "v.blk.%d." nm, il);                                     \
    if (!load_norm(g, base, d, true, &b->field, &st, err, errlen)) goto fail;
        NRM(ln1, "ln1")
        NRM(ln2, "ln2")
        LIN(q, "attn_q", d, d)
        LIN(k, "attn_k", d, d)
        LIN(v, "attn_v", d, d)
        LIN(o, "attn_out", d, d)
        LIN(up, "ffn_up", d, hp->n_ff)
        LIN(down, "ffn_down", hp->n_ff, d)
#undef LIN
#undef NRM
    }
    if (!load_vec(g, "mm.soft_emb_norm.weight", d, true, &v->soft_norm, &st, err, errlen)) goto fail;
    {
        /* clip.cpp multiplies by transpose(mm.input_projection): the file's
         * ne1 is the input (vision width), ne0 the output (LM width). */
        const cst_gguf_tensor *t = cst_gguf_find_tensor(g, "mm.input_projection.weight");
        if (!t) {
            cst_errf(err, errlen, "vision: missing tensor mm.input_projection.weight");
            st = CST_ERR_BAD_FORMAT;
            goto fail;
        }
        if (t->ne[1] != d || t->ne[2] != 1 || t->ne[3] != 1 || t->ne[0] <= 0 || t->ne[0] > 1 << 20) {
            cst_errf(err, errlen, "vision: mm.input_projection.weight has shape [%lld,%lld], expected [n, %d]",
                     (long long)t->ne[0], (long long)t->ne[1], d);
            st = CST_ERR_BAD_FORMAT;
            goto fail;
        }
        if (t->type != CST_TYPE_F32 && t->type != CST_TYPE_F16 && t->type != CST_TYPE_BF16) {
            cst_errf(err, errlen, "vision: mm.input_projection.weight: type %s not supported",
                     cst_type_name(t->type));
            st = CST_ERR_UNSUPPORTED;
            goto fail;
        }
        const int64_t n_out = t->ne[0];
        const size_t es = cst_type_get_info((int)t->type)->type_size;
        v->n_out = (int)n_out;
        v->proj_type = t->type;
        if (!(v->proj = malloc((size_t)n_out * d * es))) {
            cst_errf(err, errlen, "vision: out of memory");
            st = CST_ERR_NOMEM;
            goto fail;
        }
        const char *src = t->data;
        char *dst = v->proj;
        for (int64_t i = 0; i < d; i++)         /* file row i (input index) */
            for (int64_t o = 0; o < n_out; o++) /* element o (output index) */
                memcpy(dst + ((size_t)o * d + i) * es, src + ((size_t)i * n_out + o) * es, es);
    }

    /* scratch */
    {
        const size_t nd = (size_t)n * d, nf = (size_t)n * hp->n_ff;
        struct {
            float **p;
            size_t n;
        } sc[] = {
            {&v->img, (size_t)3 * S * S}, {&v->patches, (size_t)n * K}, {&v->x, nd},   {&v->cur, nd},
            {&v->q, nd},                  {&v->k, nd},                  {&v->v, nd},   {&v->att, nd},
            {&v->tmp, nd},                {&v->ff, nf},                 {&v->kh, nd},  {&v->qh, nd},
            {&v->vt, nd},                 {&v->kq, (size_t)n * n},      {&v->pooled, (size_t)v->n_tokens * d},
        };
        for (size_t i = 0; i < CST_ARRAY_LEN(sc); i++) {
            if (!(*sc[i].p = cst_alloc_aligned(sc[i].n * sizeof(float), 64))) {
                cst_errf(err, errlen, "vision: cannot allocate %zu bytes of scratch", sc[i].n * sizeof(float));
                st = CST_ERR_NOMEM;
                goto fail;
            }
        }
        size_t ws = mm_ws(0, CST_TYPE_F16, K, n);
        for (int il = 0; il < hp->n_layer; il++) {
            const block *b = &v->blk[il];
            ws = mm_ws(ws, b->q.type, d, n);
            ws = mm_ws(ws, b->k.type, d, n);
            ws = mm_ws(ws, b->v.type, d, n);
            ws = mm_ws(ws, b->o.type, d, n);
            ws = mm_ws(ws, b->up.type, d, n);
            ws = mm_ws(ws, b->down.type, hp->n_ff, n);
        }
        ws = mm_ws(ws, CST_TYPE_F32, d / hp->n_head, n);
        ws = mm_ws(ws, CST_TYPE_F32, n, n);
        ws = mm_ws(ws, v->proj_type, d, v->n_tokens);
        v->wdata_size = ws;
        if (!(v->wdata = cst_alloc_aligned(CST_MAX(ws, (size_t)64), 64))) {
            cst_errf(err, errlen, "vision: cannot allocate %zu bytes of scratch", ws);
            st = CST_ERR_NOMEM;
            goto fail;
        }
    }
    *out = v;
    return CST_OK;
fail:
    if (st == CST_OK) st = CST_ERR_BAD_FORMAT;
    cst_vision_free(v);
    return st;
}

int cst_vision_n_tokens(const cst_vision *v) { return v->n_tokens; }
int cst_vision_n_embd(const cst_vision *v) { return v->n_out; }
int cst_vision_image_size(const cst_vision *v) { return v->hp.image_size; }
const char *cst_vision_projector(const cst_vision *v) { return "gemma3"; }
const cst_vision_hparams *cst_vision_get_hparams(const cst_vision *v) { return &v->hp; }

/* ---- ops (ggml's CPU op order) ---------------------------------------- */

/* ggml_norm, then * w, + b (each its own rounding) */
static void layer_norm(float *y, const float *x, const norm *nm, int64_t n_rows, int64_t d, float eps) {
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        double sum = 0.0;
        for (int64_t i = 0; i < d; i++) sum += (double)xr[i];
        const float mean = (float)(sum / d);
        double sum2 = 0.0;
        for (int64_t i = 0; i < d; i++) {
            const float t = xr[i] - mean;
            yr[i] = t;
            sum2 += (double)(t * t);
        }
        const float variance = (float)(sum2 / d);
        const float scale = 1.0f / sqrtf(variance + eps);
        for (int64_t i = 0; i < d; i++) yr[i] *= scale;
        if (nm->w)
            for (int64_t i = 0; i < d; i++) yr[i] *= nm->w[i];
        if (nm->b)
            for (int64_t i = 0; i < d; i++) yr[i] += nm->b[i];
    }
}

static void rms_norm(float *y, const float *x, const float *w, int64_t n_rows, int64_t d, float eps) {
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        double sum = 0.0;
        for (int64_t i = 0; i < d; i++) sum += (double)(xr[i] * xr[i]);
        const float mean = (float)(sum / d);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < d; i++) yr[i] = xr[i] * scale;
        for (int64_t i = 0; i < d; i++) yr[i] *= w[i];
    }
}

static void add_bias(float *y, const float *b, int64_t n_rows, int64_t d) {
    if (!b) return;
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t i = 0; i < d; i++) y[r * d + i] += b[i];
}

static void lin(cst_vision *v, cst_pool *pool, const linear *l, const float *x, int64_t n_tok, float *y) {
    cst_matmul(pool, l->w, l->type, l->n_in, l->n_out, x, n_tok, y, l->n_out, v->wdata);
    add_bias(y, l->b, n_tok, l->n_out);
}

/* ggml_soft_max_ext(kq, NULL, scale, 0) on one row */
static void softmax_row(float *s, int64_t n, float scale) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        s[i] *= scale;
        if (s[i] > mx) mx = s[i];
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float e = expf(s[i] - mx);
        s[i] = e;
        sum += (double)e;
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) s[i] *= inv;
}

/* Full (non-causal) multi-head attention over n positions: att = softmax(Q K^T
 * * scale) V, head by head, as two matmuls like ggml's mul_mat(k, q) and
 * mul_mat(v^T, kq). */
static void attention(cst_vision *v, cst_pool *pool) {
    const int64_t n = v->n_patches, d = v->hp.n_embd, H = v->hp.n_head, dh = d / H;
    const float scale = 1.0f / sqrtf((float)dh);
    for (int64_t h = 0; h < H; h++) {
        for (int64_t t = 0; t < n; t++) {
            memcpy(v->kh + t * dh, v->k + t * d + h * dh, (size_t)dh * sizeof(float));
            memcpy(v->qh + t * dh, v->q + t * d + h * dh, (size_t)dh * sizeof(float));
            for (int64_t e = 0; e < dh; e++) v->vt[e * n + t] = v->v[t * d + h * dh + e];
        }
        cst_matmul(pool, v->kh, CST_TYPE_F32, dh, n, v->qh, n, v->kq, n, v->wdata);
        for (int64_t t = 0; t < n; t++) softmax_row(v->kq + t * n, n, scale);
        cst_matmul(pool, v->vt, CST_TYPE_F32, n, dh, v->kq, n, v->att + h * dh, d, v->wdata);
    }
}

cst_status cst_vision_encode(cst_vision *v, const cst_image *img, float *out, cst_pool *pool, char *err,
                             size_t errlen) {
    if (!v || !img || !out) {
        cst_errf(err, errlen, "vision: NULL argument");
        return CST_ERR_INVALID_ARG;
    }
    cst_status st = cst_vision_preprocess(v, img, v->img, err, errlen);
    if (st) return st;
    const cst_vision_hparams *hp = &v->hp;
    const int64_t S = hp->image_size, ps = hp->patch_size, P = S / ps, n = v->n_patches, d = hp->n_embd;
    const int64_t K = 3 * ps * ps;

    /* im2col: one row per patch (row-major over the grid), elements in the
     * kernel's order (channel, ky, kx), rounded to F16 as ggml's im2col does */
    for (int64_t py = 0; py < P; py++)
        for (int64_t px = 0; px < P; px++) {
            float *row = v->patches + (py * P + px) * K;
            for (int64_t c = 0; c < 3; c++)
                for (int64_t ky = 0; ky < ps; ky++)
                    for (int64_t kx = 0; kx < ps; kx++) {
                        float val = v->img[(c * S + py * ps + ky) * S + px * ps + kx];
                        row[(c * ps + ky) * ps + kx] = cst_f16_to_f32(cst_f32_to_f16(val));
                    }
        }
    if (K < 32) {
        /* ggml_vec_dot_f16 below one SIMD step: F16 products summed in double */
        for (int64_t p = 0; p < n; p++)
            for (int64_t o = 0; o < d; o++) {
                const float *a = v->patches + p * K, *w = v->patch_w + o * K;
                double sum = 0.0;
                for (int64_t i = 0; i < K; i++) sum += (double)(a[i] * w[i]);
                v->x[p * d + o] = (float)sum;
            }
    } else {
        cst_matmul(pool, v->patch_w16, CST_TYPE_F16, K, d, v->patches, n, v->x, d, v->wdata);
    }
    add_bias(v->x, v->patch_b, n, d);
    for (int64_t i = 0; i < n * d; i++) v->x[i] += v->pos[i];
    if (v->pre_ln.w) {
        layer_norm(v->cur, v->x, &v->pre_ln, n, d, hp->eps);
        memcpy(v->x, v->cur, (size_t)(n * d) * sizeof(float));
    }

    for (int il = 0; il < hp->n_layer; il++) {
        const block *b = &v->blk[il];
        layer_norm(v->cur, v->x, &b->ln1, n, d, hp->eps);
        lin(v, pool, &b->q, v->cur, n, v->q);
        lin(v, pool, &b->k, v->cur, n, v->k);
        lin(v, pool, &b->v, v->cur, n, v->v);
        attention(v, pool);
        lin(v, pool, &b->o, v->att, n, v->tmp);
        for (int64_t i = 0; i < n * d; i++) v->x[i] = v->tmp[i] + v->x[i];
        layer_norm(v->cur, v->x, &b->ln2, n, d, hp->eps);
        lin(v, pool, &b->up, v->cur, n, v->ff);
        act_apply(v->act, v->ff, n * hp->n_ff);
        lin(v, pool, &b->down, v->ff, n, v->tmp);
        for (int64_t i = 0; i < n * d; i++) v->x[i] = v->x[i] + v->tmp[i];
    }
    if (v->post_ln.w) {
        layer_norm(v->cur, v->x, &v->post_ln, n, d, hp->eps);
        memcpy(v->x, v->cur, (size_t)(n * d) * sizeof(float));
    }

    /* gemma3: average pool k x k patches (ggml_pool_2d order: rows, then columns) */
    const int64_t k = hp->scale_factor, side = P / k, nt = v->n_tokens;
    for (int64_t oy = 0; oy < side; oy++)
        for (int64_t ox = 0; ox < side; ox++) {
            float *dst = v->pooled + (oy * side + ox) * d;
            for (int64_t c = 0; c < d; c++) {
                float acc = 0.0f;
                for (int64_t ky = 0; ky < k; ky++)
                    for (int64_t kx = 0; kx < k; kx++) acc += v->x[((oy * k + ky) * P + ox * k + kx) * d + c];
                dst[c] = acc / (float)(k * k);
            }
        }
    rms_norm(v->cur, v->pooled, v->soft_norm, nt, d, hp->eps);
    cst_matmul(pool, v->proj, v->proj_type, d, v->n_out, v->cur, nt, out, v->n_out, v->wdata);
    return CST_OK;
}
