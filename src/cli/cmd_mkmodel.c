/* cmd_mkmodel.c: `castor mkmodel` writes a random-weight model (llama, qwen2,
 * qwen3, gemma3) with llama.cpp's key and tensor names, the tokenizer copied
 * from a vocab GGUF, and weights drawn from seeded normals (rows generated in
 * parallel and streamed to the writer, then converted with
 * cst_quantize_row_ref), for tests and benchmarks.
 */
#include "cli.h"
#include "core/core.h"
#include "core/pool.h"
#include "engine/gguf/gguf.h"
#include "engine/kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3, ARCH_GEMMA3 } arch_t;
static const char *arch_names[] = {"llama", "qwen2", "qwen3", "gemma3"};

typedef struct {
    const char *name;
    int arch; /* -1: keep --arch */
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim, ctx;
    double rope_base; /* 0: the arch default */
    int tied;         /* -1: the arch default */
    int64_t n_vocab;  /* 0: the whole vocabulary of --vocab-from */
} preset_t;

static const preset_t presets[] = {
    {"tiny", -1, 256, 2, 4, 2, 768, 64, 2048, 0, -1, 0},
    {"smollm2-135m", ARCH_LLAMA, 576, 30, 9, 3, 1536, 64, 8192, 100000, 1, 49152},
    {"llama3.2-1b", ARCH_LLAMA, 2048, 16, 32, 8, 8192, 64, 131072, 500000, 1, 0},
    {"qwen3-0.6b", ARCH_QWEN3, 1024, 28, 16, 8, 3072, 128, 40960, 1000000, 1, 0},
};

/* ---- random weights ------------------------------------------------------ */

static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* n normals N(mean, std) from a stream seeded by s (Box-Muller, float math). */
static void gen_normal(uint64_t s, float *x, int64_t n, float mean, float std) {
    for (int64_t i = 0; i < n; i += 2) {
        uint64_t r = splitmix64(&s);
        float u1 = ((float)(uint32_t)(r >> 40) + 1.0f) * (1.0f / 16777216.0f); /* (0, 1] */
        float u2 = (float)(uint32_t)(r & 0xFFFFFF) * (1.0f / 16777216.0f);
        float rad = sqrtf(-2.0f * logf(u1));
        float a = 6.28318530718f * u2;
        x[i] = mean + std * rad * cosf(a);
        if (i + 1 < n) x[i + 1] = mean + std * rad * sinf(a);
    }
}

typedef struct tinit {
    uint64_t seed;  /* per tensor */
    float mean, std;
    cst_type type;
    int64_t ne0;
    size_t row_bytes;
    cst_pool *pool;
    /* per fill call */
    int64_t row0, n_rows;
    uint8_t *dst;
    volatile int failed;
} tinit;

static void fill_worker(void *ctx, int ith, int nth) {
    tinit *t = ctx;
    float *row = malloc((size_t)t->ne0 * sizeof(float));
    if (!row) {
        t->failed = 1;
        return;
    }
    for (int64_t r = ith; r < t->n_rows; r += nth) {
        uint64_t s = t->seed ^ ((uint64_t)(t->row0 + r) * 0xD1B54A32D192ED03ull);
        splitmix64(&s);
        gen_normal(s, row, t->ne0, t->mean, t->std);
        if (!cst_quantize_row_ref(t->type, row, t->dst + (size_t)r * t->row_bytes, t->ne0)) t->failed = 1;
    }
    free(row);
}

static bool fill_rows(void *ctx, int64_t row0, int64_t n_rows, void *dst) {
    tinit *t = ctx;
    t->row0 = row0;
    t->n_rows = n_rows;
    t->dst = dst;
    t->failed = 0;
    cst_pool_run(t->pool, fill_worker, t);
    return !t->failed;
}

/* ---- model layout ---------------------------------------------------------- */

typedef struct {
    arch_t arch;
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim, ctx, n_vocab;
    double rope_base, eps;
    bool tied;
    int64_t swa, swa_pattern;
    cst_type wtype;
    uint64_t seed;
    bool warned_fallback;
    /* tensors */
    tinit *inits;
    int n_inits, cap_inits;
    cst_pool *pool;
} spec_t;

/* Adds one tensor with N(mean, std); matrices get the weight type (or a fallback when
 * ne0 is not a multiple of its block), 1-D tensors stay F32. */
static cst_status add(cst_gguf_writer *w, spec_t *sp, const char *name, int64_t ne0, int64_t ne1, float mean, float std) {
    cst_type t = CST_TYPE_F32;
    if (ne1 > 0) {
        t = sp->wtype;
        int blk = cst_type_get_info((int)t)->blck_size;
        if (ne0 % blk) {
            cst_type fb = ne0 % 32 == 0 ? CST_TYPE_Q8_0 : CST_TYPE_F16;
            if (!sp->warned_fallback)
                fprintf(stderr, "castor mkmodel: note: rows of %lld elements do not fit %s blocks of %d; those tensors use %s\n",
                        (long long)ne0, cst_type_name(t), blk, cst_type_name(fb));
            sp->warned_fallback = true;
            t = fb;
        }
        /* keep activation scale independent of the width (the stds are those of n_embd 256) */
        std *= sqrtf(256.0f / (float)ne0);
    }
    if (sp->n_inits == sp->cap_inits) return CST_ERR_INTERNAL; /* sized up front */
    tinit *ti = &sp->inits[sp->n_inits];
    memset(ti, 0, sizeof *ti);
    uint64_t s = sp->seed * 0x9E3779B97F4A7C15ull + (uint64_t)sp->n_inits + 1;
    ti->seed = splitmix64(&s);
    ti->mean = mean;
    ti->std = std;
    ti->type = t;
    ti->ne0 = ne0;
    ti->row_bytes = cst_row_size(t, ne0);
    ti->pool = sp->pool;
    int64_t ne[2] = {ne0, ne1};
    cst_status st = cst_gguf_add_tensor_fill(w, name, t, ne1 > 0 ? 2 : 1, ne, fill_rows, ti);
    if (st == CST_OK) sp->n_inits++;
    return st;
}

static cst_status add_tensors(cst_gguf_writer *w, spec_t *sp) {
    const bool g3 = sp->arch == ARCH_GEMMA3;
    const int64_t E = sp->n_embd, q = sp->n_head * sp->head_dim, kv = sp->n_head_kv * sp->head_dim;
    cst_status st = CST_OK;
    char n[128];
#define ADD(name_, ne0_, ne1_, mean_, std_)                                                          \
    do {                                                                                             \
        if (st == CST_OK) st = add(w, sp, name_, ne0_, ne1_, mean_, std_);                           \
    } while (0)
    ADD("token_embd.weight", E, sp->n_vocab, 0.0f, g3 ? 0.01f : 0.1f);
    ADD("output_norm.weight", E, 0, g3 ? 8.0f : 1.0f, g3 ? 0.8f : 0.1f);
    if (!sp->tied) ADD("output.weight", E, sp->n_vocab, 0.0f, 0.08f);
    for (int64_t l = 0; l < sp->n_layer && st == CST_OK; l++) {
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%lld.%s", (long long)l, suffix), n)
        ADD(NAME("attn_norm.weight"), E, 0, 1.0f, 0.1f);
        ADD(NAME("attn_q.weight"), E, q, 0.0f, 0.08f);
        ADD(NAME("attn_k.weight"), E, kv, 0.0f, 0.08f);
        ADD(NAME("attn_v.weight"), E, kv, 0.0f, 0.06f);
        if (sp->arch == ARCH_QWEN2) {
            ADD(NAME("attn_q.bias"), q, 0, 0.0f, 0.1f);
            ADD(NAME("attn_k.bias"), kv, 0, 0.0f, 0.1f);
            ADD(NAME("attn_v.bias"), kv, 0, 0.0f, 0.1f);
        }
        if (sp->arch == ARCH_QWEN3 || g3) {
            ADD(NAME("attn_q_norm.weight"), sp->head_dim, 0, 1.0f, 0.1f);
            ADD(NAME("attn_k_norm.weight"), sp->head_dim, 0, 1.0f, 0.1f);
        }
        ADD(NAME("attn_output.weight"), q, E, 0.0f, 0.06f);
        if (g3) ADD(NAME("post_attention_norm.weight"), E, 0, 3.0f, 0.3f);
        ADD(NAME("ffn_norm.weight"), E, 0, 1.0f, 0.1f);
        ADD(NAME("ffn_gate.weight"), E, sp->n_ff, 0.0f, 0.07f);
        ADD(NAME("ffn_up.weight"), E, sp->n_ff, 0.0f, 0.07f);
        ADD(NAME("ffn_down.weight"), sp->n_ff, E, 0.0f, 0.05f);
        if (g3) ADD(NAME("post_ffw_norm.weight"), E, 0, 3.0f, 0.3f);
#undef NAME
    }
#undef ADD
    return st;
}

static void add_kvs(cst_gguf_writer *w, const spec_t *sp, const char *label) {
    const char *a = arch_names[sp->arch];
    char k[128], name[160];
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", a, suffix), k)
    cst_gguf_set_str(w, "general.architecture", a);
    snprintf(name, sizeof name, "castor mkmodel %s (random weights, seed %llu)", label, (unsigned long long)sp->seed);
    cst_gguf_set_str(w, "general.name", name);
    cst_gguf_set_u32(w, KEY("context_length"), (uint32_t)sp->ctx);
    cst_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)sp->n_embd);
    cst_gguf_set_u32(w, KEY("block_count"), (uint32_t)sp->n_layer);
    cst_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)sp->n_ff);
    cst_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)sp->n_head);
    cst_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)sp->n_head_kv);
    if (sp->arch == ARCH_QWEN3 || sp->arch == ARCH_GEMMA3 || sp->head_dim * sp->n_head != sp->n_embd) {
        cst_gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)sp->head_dim);
        cst_gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)sp->head_dim);
    }
    cst_gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)sp->head_dim);
    cst_gguf_set_f32(w, KEY("rope.freq_base"), (float)sp->rope_base);
    if (sp->arch == ARCH_GEMMA3) {
        cst_gguf_set_str(w, KEY("rope.scaling.type"), "linear");
        cst_gguf_set_f32(w, KEY("rope.scaling.factor"), 8.0f);
    }
    cst_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)sp->eps);
    if (sp->arch == ARCH_GEMMA3) {
        cst_gguf_set_u32(w, KEY("attention.sliding_window"), (uint32_t)sp->swa);
        cst_gguf_set_u32(w, KEY("attention.sliding_window_pattern"), (uint32_t)sp->swa_pattern);
    }
    cst_gguf_set_u32(w, KEY("vocab_size"), (uint32_t)sp->n_vocab);
#undef KEY
    /* llama_ftype of the main weight type (K types: the _M mixes, as the shared tiny models) */
    uint32_t ft = 0;
    switch (sp->wtype) {
    case CST_TYPE_F16: ft = 1; break;
    case CST_TYPE_Q4_0: ft = 2; break;
    case CST_TYPE_Q8_0: ft = 7; break;
    case CST_TYPE_Q4_K: ft = 15; break;
    case CST_TYPE_Q5_K: ft = 17; break;
    case CST_TYPE_Q6_K: ft = 18; break;
    case CST_TYPE_BF16: ft = 32; break;
    default: ft = 0;
    }
    cst_gguf_set_u32(w, "general.file_type", ft);
}

/* ---- tokenizer ------------------------------------------------------------ */

static int cmp_strv(const void *a, const void *b) {
    const cst_strv *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->ptr, y->ptr, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static bool in_sorted(const cst_strv *sorted, int64_t n, const char *p, size_t len) {
    cst_strv key = {p, len};
    return bsearch(&key, sorted, (size_t)n, sizeof *sorted, cmp_strv) != NULL;
}

/* Copies every tokenizer.* key. With n_keep below the vocabulary size, keeps
 * the first n_keep tokens (a model shaped like one with a smaller vocabulary):
 * per-token arrays are cut, BPE merges are kept only when both parts and the
 * result survive, and special-token ids that fall outside are dropped. */
static cst_status copy_tokenizer(cst_gguf_writer *w, const cst_gguf *vg, int64_t n_keep) {
    int64_t ti = cst_gguf_find_key(vg, "tokenizer.ggml.tokens");
    int64_t n_all = (int64_t)cst_gguf_arr_n(vg, ti);
    cst_strv *sorted = NULL;
    const char **strs = NULL;
    char *buf = NULL;
    cst_status st = CST_ERR_NOMEM;
    if (n_keep < n_all) {
        sorted = malloc(sizeof *sorted * (size_t)n_keep);
        if (!sorted) goto out;
        for (int64_t j = 0; j < n_keep; j++) sorted[j] = cst_gguf_arr_str(vg, ti, (uint64_t)j);
        qsort(sorted, (size_t)n_keep, sizeof *sorted, cmp_strv);
    }
    for (int64_t i = 0; i < cst_gguf_n_kv(vg); i++) {
        cst_strv k = cst_gguf_key(vg, i);
        if (k.len <= 10 || memcmp(k.ptr, "tokenizer.", 10)) continue;
        if (!sorted) {
            cst_gguf_copy_kv(w, vg, i);
            continue;
        }
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
        size_t kl = strlen(key);
        int64_t idv;
        if (kl > 9 && !strcmp(key + kl - 9, "_token_id") && cst_gguf_kv_i64(vg, i, &idv)) {
            if (idv >= 0 && idv < n_keep) cst_gguf_copy_kv(w, vg, i);
            continue;
        }
        if (cst_gguf_kv_type(vg, i) != CST_GGUF_ARRAY) {
            cst_gguf_copy_kv(w, vg, i);
            continue;
        }
        uint64_t n = cst_gguf_arr_n(vg, i);
        cst_gguf_type et = cst_gguf_arr_type(vg, i);
        if (!strcmp(key, "tokenizer.ggml.merges") && et == CST_GGUF_STRING) {
            free(strs);
            free(buf);
            size_t total = 0;
            for (uint64_t j = 0; j < n; j++) total += cst_gguf_arr_str(vg, i, j).len + 1;
            strs = malloc(sizeof *strs * (n ? n : 1));
            buf = malloc(total ? total : 1);
            if (!strs || !buf) goto out;
            uint64_t kept = 0;
            char *bp = buf;
            for (uint64_t j = 0; j < n; j++) {
                cst_strv m = cst_gguf_arr_str(vg, i, j);
                const char *sp = memchr(m.ptr, ' ', m.len);
                if (!sp) continue;
                size_t la = (size_t)(sp - m.ptr), lb = m.len - la - 1;
                memcpy(bp, m.ptr, la);
                memcpy(bp + la, sp + 1, lb);
                if (!in_sorted(sorted, n_keep, m.ptr, la) || !in_sorted(sorted, n_keep, sp + 1, lb) ||
                    !in_sorted(sorted, n_keep, bp, la + lb))
                    continue;
                memcpy(bp, m.ptr, m.len);
                bp[m.len] = 0;
                strs[kept++] = bp;
                bp += m.len + 1;
            }
            cst_gguf_set_arr_str(w, key, strs, kept);
        } else if (n == (uint64_t)n_all && et == CST_GGUF_STRING) {
            free(strs);
            free(buf);
            size_t total = 0;
            for (int64_t j = 0; j < n_keep; j++) total += cst_gguf_arr_str(vg, i, (uint64_t)j).len + 1;
            strs = malloc(sizeof *strs * (size_t)n_keep);
            buf = malloc(total);
            if (!strs || !buf) goto out;
            char *bp = buf;
            for (int64_t j = 0; j < n_keep; j++) {
                cst_strv t = cst_gguf_arr_str(vg, i, (uint64_t)j);
                memcpy(bp, t.ptr, t.len);
                bp[t.len] = 0;
                strs[j] = bp;
                bp += t.len + 1;
            }
            cst_gguf_set_arr_str(w, key, strs, (uint64_t)n_keep);
        } else if (n == (uint64_t)n_all) {
            cst_gguf_set_arr(w, key, et, cst_gguf_arr_data(vg, i), (uint64_t)n_keep);
        } else {
            cst_gguf_copy_kv(w, vg, i);
        }
    }
    st = CST_OK;
out:
    free(sorted);
    free(strs);
    free(buf);
    return st;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: castor mkmodel --vocab-from VOCAB.gguf -o OUT.gguf [options]\n"
            "  writes a random-weight model with the tokenizer of VOCAB.gguf\n"
            "  --arch llama|qwen2|qwen3|gemma3   (default llama, or the preset's)\n"
            "  --preset tiny|smollm2-135m|llama3.2-1b|qwen3-0.6b   (default tiny)\n"
            "  --n-embd N --n-layer N --n-head N --n-head-kv N --n-ff N --head-dim N --ctx N\n"
            "  --rope-base F  --sliding-window N (gemma3)  --tied | --untied\n"
            "  --type F32|F16|BF16|Q8_0|Q4_0|Q4_K|Q5_K|Q6_K   (default F32; norms stay F32)\n"
            "  --n-vocab N   keep only the first N tokens of the vocabulary (smollm2-135m: 49152)\n"
            "  --seed S   (default 1)   --threads N\n");
}

static bool parse_i64(const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 1 || v > (1ll << 31)) return false;
    *out = v;
    return true;
}

int cmd_mkmodel(int argc, char **argv) {
    const char *vocab = NULL, *out = NULL, *preset_name = "tiny", *arch_s = NULL, *type_s = "F32";
    int64_t opt[7] = {0, 0, 0, 0, 0, 0, 0}; /* n_embd n_layer n_head n_head_kv n_ff head_dim ctx */
    static const char *opt_names[7] = {"--n-embd", "--n-layer", "--n-head", "--n-head-kv", "--n-ff", "--head-dim", "--ctx"};
    double rope_base = 0;
    int tied = -1, threads = 0;
    int64_t swa = 0, n_vocab_opt = 0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--tied")) {
            tied = 1;
            continue;
        }
        if (!strcmp(a, "--untied")) {
            tied = 0;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "castor mkmodel: option '%s' needs a value (or is unknown)\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        bool ok = true, known = true;
        if (!strcmp(a, "--vocab-from")) vocab = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--preset")) preset_name = v;
        else if (!strcmp(a, "--arch")) arch_s = v;
        else if (!strcmp(a, "--type")) type_s = v;
        else if (!strcmp(a, "--seed")) {
            char *end;
            seed = strtoull(v, &end, 10);
            ok = *v && !*end;
        } else if (!strcmp(a, "--rope-base")) {
            char *end;
            rope_base = strtod(v, &end);
            ok = *v && !*end && rope_base > 0;
        } else if (!strcmp(a, "--sliding-window")) ok = parse_i64(v, &swa);
        else if (!strcmp(a, "--n-vocab")) ok = parse_i64(v, &n_vocab_opt);
        else if (!strcmp(a, "--threads")) {
            int64_t t;
            ok = parse_i64(v, &t) && t <= 1024;
            threads = (int)t;
        } else {
            known = false;
            for (int k = 0; k < 7; k++)
                if (!strcmp(a, opt_names[k])) {
                    known = true;
                    ok = parse_i64(v, &opt[k]);
                }
        }
        if (!known) {
            fprintf(stderr, "castor mkmodel: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "castor mkmodel: bad value '%s' for %s\n", v, a);
            return 2;
        }
    }
    if (!vocab || !out) {
        fprintf(stderr, "castor mkmodel: --vocab-from and -o are required\n");
        usage(stderr);
        return 2;
    }
    const preset_t *p = NULL;
    for (size_t k = 0; k < CST_ARRAY_LEN(presets); k++)
        if (!strcmp(presets[k].name, preset_name)) p = &presets[k];
    if (!p) {
        fprintf(stderr, "castor mkmodel: unknown preset '%s'\n", preset_name);
        return 2;
    }
    spec_t sp = {0};
    sp.arch = p->arch >= 0 ? (arch_t)p->arch : ARCH_LLAMA;
    if (arch_s) {
        int found = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(arch_names[k], arch_s)) found = k;
        if (found < 0) {
            fprintf(stderr, "castor mkmodel: unknown arch '%s' (llama, qwen2, qwen3, gemma3)\n", arch_s);
            return 2;
        }
        sp.arch = (arch_t)found;
    }
    if (!cst_type_from_name(type_s, &sp.wtype) ||
        !(sp.wtype == CST_TYPE_F32 || sp.wtype == CST_TYPE_F16 || sp.wtype == CST_TYPE_BF16 || sp.wtype == CST_TYPE_Q8_0 ||
          sp.wtype == CST_TYPE_Q4_0 || sp.wtype == CST_TYPE_Q4_K || sp.wtype == CST_TYPE_Q5_K || sp.wtype == CST_TYPE_Q6_K)) {
        fprintf(stderr, "castor mkmodel: unsupported --type '%s'\n", type_s);
        return 2;
    }
    sp.n_embd = opt[0] ? opt[0] : p->n_embd;
    sp.n_layer = opt[1] ? opt[1] : p->n_layer;
    sp.n_head = opt[2] ? opt[2] : p->n_head;
    sp.n_head_kv = opt[3] ? opt[3] : (opt[2] ? sp.n_head : p->n_head_kv);
    sp.n_ff = opt[4] ? opt[4] : p->n_ff;
    sp.head_dim = opt[5] ? opt[5] : ((opt[0] || opt[2]) ? sp.n_embd / sp.n_head : p->head_dim);
    sp.ctx = opt[6] ? opt[6] : p->ctx;
    sp.rope_base = rope_base > 0 ? rope_base : p->rope_base > 0 && (!arch_s || p->arch == (int)sp.arch) ? p->rope_base
                   : sp.arch == ARCH_LLAMA ? 500000.0 : 1000000.0;
    sp.eps = sp.arch == ARCH_LLAMA ? 1e-5 : 1e-6;
    sp.tied = tied >= 0 ? tied : p->tied >= 0 ? p->tied : sp.arch != ARCH_LLAMA; /* as the shared tiny models */
    bool tiny = !strcmp(p->name, "tiny");
    sp.swa = swa ? swa : tiny ? 32 : 512;
    sp.swa_pattern = tiny ? 2 : 6;
    sp.seed = seed;
    if (sp.n_head_kv > sp.n_head || sp.n_head % sp.n_head_kv || sp.head_dim < 2 || sp.head_dim % 2) {
        fprintf(stderr, "castor mkmodel: need n_head_kv dividing n_head and an even head_dim (got %lld/%lld, %lld)\n",
                (long long)sp.n_head, (long long)sp.n_head_kv, (long long)sp.head_dim);
        return 2;
    }

    char err[512];
    cst_gguf *vg = NULL;
    if (cst_gguf_open(vocab, &vg, err, sizeof err) != CST_OK) {
        fprintf(stderr, "castor mkmodel: %s\n", err);
        return 1;
    }
    int64_t ti = cst_gguf_find_key(vg, "tokenizer.ggml.tokens");
    if (ti < 0 || cst_gguf_arr_type(vg, ti) != CST_GGUF_STRING || cst_gguf_arr_n(vg, ti) == 0) {
        fprintf(stderr, "castor mkmodel: %s has no tokenizer.ggml.tokens string array\n", vocab);
        cst_gguf_close(vg);
        return 1;
    }
    sp.n_vocab = (int64_t)cst_gguf_arr_n(vg, ti);
    /* the preset's size is a cap (a smaller source vocabulary is kept whole); --n-vocab is exact */
    int64_t n_keep = n_vocab_opt ? n_vocab_opt : CST_MIN(p->n_vocab, sp.n_vocab);
    if (n_keep > sp.n_vocab) {
        fprintf(stderr, "castor mkmodel: --n-vocab %lld exceeds the %lld tokens of %s\n", (long long)n_keep,
                (long long)sp.n_vocab, vocab);
        cst_gguf_close(vg);
        return 2;
    }
    if (n_keep > 0) sp.n_vocab = n_keep;

    cst_gguf_writer *w = cst_gguf_writer_new();
    sp.pool = cst_pool_new(threads > 0 ? threads : CST_MIN(cst_cpu_count(), 16));
    sp.cap_inits = (int)(3 + sp.n_layer * 16);
    sp.inits = calloc((size_t)sp.cap_inits, sizeof(tinit));
    int rc = 1;
    if (!w || !sp.pool || !sp.inits) {
        fprintf(stderr, "castor mkmodel: out of memory\n");
        goto done;
    }
    add_kvs(w, &sp, tiny || arch_s ? arch_names[sp.arch] : p->name);
    if (copy_tokenizer(w, vg, sp.n_vocab) != CST_OK) {
        fprintf(stderr, "castor mkmodel: out of memory\n");
        goto done;
    }
    if (add_tensors(w, &sp) != CST_OK) {
        fprintf(stderr, "castor mkmodel: could not add the tensors (bad dimensions?)\n");
        goto done;
    }
    double t0 = cst_time_now();
    if (cst_gguf_write(w, out, err, sizeof err) != CST_OK) {
        fprintf(stderr, "castor mkmodel: %s\n", err);
        goto done;
    }
    fprintf(stderr, "castor mkmodel: wrote %s (%s, %s, %lld layers, n_embd %lld, vocab %lld) in %.1f s\n", out, arch_names[sp.arch],
            cst_type_name(sp.wtype), (long long)sp.n_layer, (long long)sp.n_embd, (long long)sp.n_vocab, cst_time_now() - t0);
    rc = 0;
done:
    cst_gguf_writer_free(w);
    cst_pool_free(sp.pool);
    free(sp.inits);
    cst_gguf_close(vg);
    return rc;
}
