/* vocab.c: builds a cst_vocab from a GGUF's tokenizer.* metadata the way
 * llama.cpp's llama_vocab::impl::load does: token texts/scores/types,
 * per-type defaults, special ids, text-based detection of EOT/EOM/FIM tokens,
 * the end-of-generation set, "unused" control tokens, the special-token list
 * used for partitioning and the phi-3 RSTRIP attributes. Texts are copied into
 * one pool (or, with cst_vocab_load_view, left in the GGUF mapping); merges
 * are kept as (id, id) -> rank in one packed hash table.
 */
#define _GNU_SOURCE /* memmem, qsort_r */
#include "tok_int.h"
#include "unicode.h"
#include "core/core.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

uint64_t cst_tok_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

/* Token hash: power-of-two table of uint32 slots, (tag << ht_idbits) | id
 * with the tag taken from the hash's top bits, so that probing past other
 * strings rarely touches their lengths or texts (most SPM lookups miss). */
static uint32_t pow2_at_least(uint64_t n) {
    uint64_t c = 64;
    while (c < n) c *= 2;
    return c > 0x80000000u ? 0 : (uint32_t)c;
}

static inline uint32_t ht_tag(const cst_vocab *v, uint64_t h) {
    return v->ht_idbits >= 32 ? 0 : (uint32_t)(h >> (32 + v->ht_idbits));
}

int32_t cst_vocab_find_str(const cst_vocab *v, const char *s, size_t len) {
    if (!v->ht) return -1;
    uint64_t h = cst_tok_hash(s, len);
    uint32_t mask = v->ht_cap - 1, tag = ht_tag(v, h), idmask = (uint32_t)((1ull << v->ht_idbits) - 1);
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        uint32_t e = v->ht[i];
        if (e == CST_STR_NONE) return -1;
        if ((e >> v->ht_idbits) != tag) continue;
        uint32_t id = e & idmask;
        if (v->str_len[id] == len && memcmp(cst_str_text(v, (int32_t)id), s, len) == 0) return (int32_t)id;
    }
}

void cst_sbuf_put(cst_sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void cst_vocab_free(cst_vocab *v) {
    if (!v) return;
    cst_pretok_free(v);
    free(v->pool);
    free(v->str_off);
    free(v->str_len);
    free(v->score);
    free(v->attr);
    free(v->ht);
    free(v->mht);
    free(v->eog);
    free(v->special);
    free(v);
}

size_t cst_vocab_mem_bytes(const cst_vocab *v) {
    if (!v) return 0;
    return sizeof *v + v->pool_cap + (size_t)v->str_cap * (sizeof *v->str_off + sizeof *v->str_len) +
           (v->score ? (size_t)v->n * sizeof *v->score : 0) + (size_t)v->n * sizeof *v->attr +
           (size_t)v->ht_cap * sizeof *v->ht + (size_t)v->mht_cap * sizeof *v->mht + v->n_eog * sizeof *v->eog +
           (v->n_special ? v->n_special : 1) * sizeof *v->special;
}

bool cst_vocab_is_view(const cst_vocab *v) { return v && v->vbase; }

/* ---- strings ------------------------------------------------------------ */
/* append s to the owned pool (NUL-terminated); returns its str_off value, or
 * CST_STR_NONE when out of memory / past 2 GiB */
static uint32_t pool_add(cst_vocab *v, const char *s, size_t len) {
    if (v->pool_n + len + 1 > v->pool_cap) {
        size_t cap = v->pool_cap ? v->pool_cap : 4096;
        while (cap < v->pool_n + len + 1) cap *= 2;
        if (cap > CST_STR_OWNED) cap = CST_STR_OWNED;
        if (v->pool_n + len + 1 > cap) return CST_STR_NONE;
        char *p = realloc(v->pool, cap);
        if (!p) return CST_STR_NONE;
        v->pool = p;
        v->pool_cap = cap;
    }
    uint32_t off = (uint32_t)v->pool_n;
    if (len) memcpy(v->pool + off, s, len);
    v->pool[off + len] = 0;
    v->pool_n += len + 1;
    return off | CST_STR_OWNED;
}

/* where string s lives: a view into the mapping when allowed, else a copy */
static uint32_t str_place(cst_vocab *v, const char *s, size_t len) {
    if (v->vbase && s >= v->vbase && (size_t)(s - v->vbase) + len < CST_STR_OWNED) return (uint32_t)(s - v->vbase);
    return pool_add(v, s, len);
}

/* put string id into table t (cap slots); a string with the same text
 * already there gives up its slot (a later duplicate takes over the text) */
static void ht_put(const cst_vocab *v, uint32_t *t, uint32_t cap, int32_t id) {
    const char *s = cst_str_text(v, id);
    size_t len = v->str_len[id];
    uint64_t h = cst_tok_hash(s, len);
    uint32_t mask = cap - 1, tag = ht_tag(v, h), idmask = (uint32_t)((1ull << v->ht_idbits) - 1);
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        uint32_t e = t[i], o = e & idmask;
        if (e == CST_STR_NONE ||
            ((e >> v->ht_idbits) == tag && v->str_len[o] == len && memcmp(cst_str_text(v, (int32_t)o), s, len) == 0)) {
            t[i] = (tag << v->ht_idbits) | (uint32_t)id;
            return;
        }
    }
}

static bool ht_resize(cst_vocab *v, uint32_t cap) {
    uint32_t *t = malloc((size_t)cap * sizeof *t);
    if (!t) return false;
    memset(t, 0xff, (size_t)cap * sizeof *t);
    for (int32_t id = 0; id < v->n_str; id++) ht_put(v, t, cap, id);
    free(v->ht);
    v->ht = t;
    v->ht_cap = cap;
    return true;
}

/* Add string id (str_off/str_len already set, id == n_str) to the hash. */
static bool str_insert(cst_vocab *v, int32_t id) {
    if ((uint64_t)(v->n_str + 1) * 3 > (uint64_t)v->ht_cap * 2) { /* load <= 2/3 */
        uint32_t cap = pow2_at_least((uint64_t)v->ht_cap * 2);
        if (!cap || !ht_resize(v, cap)) return false;
    }
    ht_put(v, v->ht, v->ht_cap, id);
    v->n_str = id + 1;
    return true;
}

static bool str_reserve(cst_vocab *v, int32_t n) {
    if (n <= v->str_cap) return true;
    int64_t cap = v->str_cap ? (int64_t)v->str_cap : 64;
    while (cap < n) cap *= 2;
    if (cap > 0x7fffffff) cap = 0x7fffffff;
    uint32_t *o = realloc(v->str_off, (size_t)cap * sizeof *o);
    if (o) v->str_off = o;
    uint16_t *l = realloc(v->str_len, (size_t)cap * sizeof *l);
    if (l) v->str_len = l;
    if (!o || !l) return false;
    v->str_cap = (int32_t)cap;
    return true;
}

/* id of a merge side: a token, an extra already added, or a new extra */
static int32_t side_id(cst_vocab *v, const char *s, size_t len, bool *oom) {
    int32_t id = cst_vocab_find_str(v, s, len);
    if (id >= 0) return id;
    if (v->n_str == 0x7fffffff || !str_reserve(v, v->n_str + 1)) {
        *oom = true;
        return -1;
    }
    uint32_t off = str_place(v, s, len);
    if (off == CST_STR_NONE) {
        *oom = true;
        return -1;
    }
    id = v->n_str;
    v->str_off[id] = off;
    v->str_len[id] = (uint16_t)len;
    if (!str_insert(v, id)) {
        *oom = true;
        return -1;
    }
    return id;
}

static void merge_insert(cst_vocab *v, int32_t a, int32_t b, uint32_t rank) {
    uint64_t key = ((uint64_t)(uint32_t)a << v->m_idbits) | (uint32_t)b;
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    uint32_t i = cst_mht_slot(h, v->mht_cap);
    for (;;) {
        uint64_t e = v->mht[i];
        if (e == UINT64_MAX) {
            v->mht[i] = (key << v->m_rbits) | rank;
            return;
        }
        if ((e >> v->m_rbits) == key) return; /* the first rank wins */
        if (++i == v->mht_cap) i = 0;
    }
}

/* ---- pieces (token_to_piece with special = true, lstrip 0) ---------------- */
typedef struct {
    char *p;
    size_t n, cap;
} pwriter;

static inline void pw_put(pwriter *w, const char *s, size_t k) {
    if (w->n < w->cap) memcpy(w->p + w->n, s, CST_MIN(k, w->cap - w->n));
    w->n += k;
}

size_t cst_vocab_piece(const cst_vocab *v, cst_token t, char *buf, size_t cap) {
    pwriter w = {buf, 0, buf ? cap : 0};
    const char *s = cst_str_text(v, t);
    size_t n = v->str_len[t];
    int attr = v->attr[t];
    if (attr & (CST_TOKEN_ATTR_UNKNOWN | CST_TOKEN_ATTR_CONTROL | CST_TOKEN_ATTR_USER_DEFINED)) {
        pw_put(&w, s, n);
    } else if (v->type == CST_VOCAB_SPM) {
        if (attr & CST_TOKEN_ATTR_NORMAL) {
            size_t run = 0; /* bytes copied as they are */
            for (size_t i = 0; i < n; i++) {
                if (i + 2 < n && (unsigned char)s[i] == 0xe2 && (unsigned char)s[i + 1] == 0x96 &&
                    (unsigned char)s[i + 2] == 0x81) {
                    pw_put(&w, s + run, i - run);
                    pw_put(&w, " ", 1);
                    i += 2;
                    run = i + 1;
                }
            }
            pw_put(&w, s + run, n - run);
        } else if (attr & CST_TOKEN_ATTR_BYTE) {
            char hex[3] = {0, 0, 0};
            if (n >= 5) {
                hex[0] = s[3];
                hex[1] = s[4];
            }
            char c = (char)strtol(hex, NULL, 16);
            pw_put(&w, &c, 1);
        }
    } else if (attr & CST_TOKEN_ATTR_NORMAL) {
        size_t off = 0;
        while (off < n) {
            unsigned char c0 = (unsigned char)s[off];
            int byte;
            uint32_t cpt;
            if (c0 < 0x80) { /* fast paths: the byte map's 1- and 2-byte characters */
                cpt = c0;
                off++;
            } else if ((c0 & 0xe0) == 0xc0 && off + 1 < n && ((unsigned char)s[off + 1] & 0xc0) == 0x80 && c0 >= 0xc2) {
                cpt = ((uint32_t)(c0 & 0x1f) << 6) | ((unsigned char)s[off + 1] & 0x3f);
                off += 2;
            } else {
                cpt = cst_utf8_decode(s, n, &off);
            }
            byte = cpt < CST_GPT2_CPTS ? v->cpt_byte[cpt] : -1;
            if (byte >= 0) {
                char c = (char)byte;
                pw_put(&w, &c, 1);
            } else {
                /* llama.cpp: "[UNK_BYTE_0x" + hex of the code point's UTF-8 + token text + "]" */
                char enc[4];
                int el = cst_utf8_encode(cpt, enc);
                pw_put(&w, "[UNK_BYTE_0x", 12);
                for (int k = 0; k < el; k++) {
                    char hx[3];
                    snprintf(hx, sizeof hx, "%02x", (unsigned char)enc[k]);
                    pw_put(&w, hx, 2);
                }
                pw_put(&w, s, n);
                pw_put(&w, "]", 1);
            }
        }
    }
    return w.n;
}

static bool get_id(const cst_gguf *g, const char *key, int64_t *out) {
    int64_t i = cst_gguf_find_key(g, key);
    if (i < 0) return false;
    return cst_gguf_kv_i64(g, i, out);
}

static bool get_bool(const cst_gguf *g, const char *key, bool *out) {
    int64_t i = cst_gguf_find_key(g, key);
    if (i < 0) return false;
    int64_t x;
    if (!cst_gguf_kv_i64(g, i, &x)) return false;
    *out = x != 0;
    return true;
}

static bool text_is(const cst_vocab *v, cst_token t, const char *const *list) {
    for (; *list; list++)
        if (strlen(*list) == v->str_len[t] && memcmp(*list, cst_str_text(v, t), v->str_len[t]) == 0) return true;
    return false;
}

/* llama.cpp picks the first token (in hash-map order) whose text is in the
 * list; we take the list order, which agrees on every vocabulary we know. */
static cst_token detect(cst_vocab *v, const char *const *list) {
    for (; *list; list++) {
        cst_token t = cst_vocab_find_hashed(v, *list, strlen(*list));
        if (t >= 0) {
            v->attr[t] |= CST_TOKEN_ATTR_CONTROL;
            return t;
        }
    }
    return -1;
}

static bool eog_has(const cst_vocab *v, cst_token t) {
    for (size_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == t) return true;
    return false;
}

static bool eog_add(cst_vocab *v, cst_token t) {
    if (t < 0 || eog_has(v, t)) return true;
    cst_token *e = realloc(v->eog, (v->n_eog + 1) * sizeof *e);
    if (!e) return false;
    v->eog = e;
    v->eog[v->n_eog++] = t;
    return true;
}

static void eog_remove(cst_vocab *v, cst_token t) {
    for (size_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == t) {
            memmove(v->eog + i, v->eog + i + 1, (v->n_eog - i - 1) * sizeof *v->eog);
            v->n_eog--;
            return;
        }
}

static int cmp_tok(const void *a, const void *b) {
    cst_token x = *(const cst_token *)a, y = *(const cst_token *)b;
    return (x > y) - (x < y);
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const cst_vocab *v = ctx;
    cst_token x = *(const cst_token *)a, y = *(const cst_token *)b;
    uint32_t lx = v->str_len[x], ly = v->str_len[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

#define U_BAR "\xef\xbd\x9c" /* U+FF5C fullwidth vertical line */
#define U_SPC "\xe2\x96\x81" /* U+2581 */

static const char *const k_eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                          "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                                          "<" U_BAR "end" U_SPC "of" U_SPC "sentence" U_BAR ">",
                                          "<end_of_utterance>", NULL};
static const char *const k_eom_texts[] = {"<|eom_id|>", NULL};
static const char *const k_fim_pre_texts[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                              "<" U_BAR "fim" U_SPC "begin" U_BAR ">", "<PRE>", U_SPC "<PRE>",
                                              "<|code_prefix|>", NULL};
static const char *const k_fim_suf_texts[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                              "<" U_BAR "fim" U_SPC "hole" U_BAR ">", "<SUF>", U_SPC "<SUF>",
                                              "<|code_suffix|>", NULL};
static const char *const k_fim_mid_texts[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                              "<" U_BAR "fim" U_SPC "end" U_BAR ">", "<MID>", U_SPC "<MID>",
                                              "<|code_middle|>", NULL};
static const char *const k_fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", NULL};
static const char *const k_fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>",
                                              NULL};
static const char *const k_fim_sep_texts[] = {"<|file_sep|>", NULL};
static const char *const k_eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                                          "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>",
                                          "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                                          "<|tool_response>",
                                          "<" U_BAR "end" U_SPC "of" U_SPC "sentence" U_BAR ">", NULL};
static const char *const k_gptoss_ud[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};

static bool str_contains_ci(cst_strv s, const char *needle) {
    size_t nl = strlen(needle);
    if (!s.ptr) return false;
    for (size_t i = 0; i + nl <= s.len; i++) {
        size_t k = 0;
        while (k < nl && tolower((unsigned char)s.ptr[i + k]) == needle[k]) k++;
        if (k == nl) return true;
    }
    return false;
}

#define FAIL(st, ...)                                                                                      \
    do {                                                                                                   \
        cst_errf(err, errlen, __VA_ARGS__);                                                                \
        cst_vocab_free(v);                                                                                 \
        return (st);                                                                                       \
    } while (0)

static cst_status vocab_load(const cst_gguf *g, bool view, cst_vocab **out, char *err, size_t errlen) {
    *out = NULL;
    if (!g) {
        cst_errf(err, errlen, "no model file");
        return CST_ERR_INVALID_ARG;
    }
    cst_vocab *v = calloc(1, sizeof *v);
    if (!v) {
        cst_errf(err, errlen, "out of memory");
        return CST_ERR_NOMEM;
    }
    cst_strv model = cst_gguf_get_str(g, "tokenizer.ggml.model");
    cst_strv pre = cst_gguf_get_str(g, "tokenizer.ggml.pre");
    char pre_z[64] = "";
    if (pre.ptr) snprintf(pre_z, sizeof pre_z, "%.*s", (int)CST_MIN(pre.len, 63), pre.ptr);

    v->eot = v->eom = v->sep = v->pad = v->mask = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    v->linefeed = -1;
    if (!model.ptr) FAIL(CST_ERR_BAD_FORMAT, "no tokenizer.ggml.model in the file");
    if (cst_strv_eq(model, "llama")) {
        v->type = CST_VOCAB_SPM;
        v->bos = 1;
        v->eos = 2;
        v->unk = 0;
        v->add_space_prefix = true;
        v->clean_spaces = false;
        v->add_bos = true;
        v->add_eos = false;
    } else if (cst_strv_eq(model, "gpt2")) {
        v->type = CST_VOCAB_BPE;
        v->bos = 11;
        v->eos = 11;
        v->unk = -1;
        v->add_space_prefix = false;
        v->clean_spaces = true;
        cst_status st = cst_pretok_init(v, pre_z, err, errlen);
        if (st != CST_OK) {
            cst_vocab_free(v);
            return st;
        }
    } else {
        FAIL(CST_ERR_UNSUPPORTED, "unsupported tokenizer model '%.*s' (only 'llama' and 'gpt2')", (int)model.len,
             model.ptr);
    }
    bool b;
    if (get_bool(g, "tokenizer.ggml.add_space_prefix", &b)) v->add_space_prefix = b;

    /* tokens */
    int64_t ti = cst_gguf_find_key(g, "tokenizer.ggml.tokens");
    if (ti < 0 || cst_gguf_kv_type(g, ti) != CST_GGUF_ARRAY || cst_gguf_arr_type(g, ti) != CST_GGUF_STRING)
        FAIL(CST_ERR_BAD_FORMAT, "tokenizer.ggml.tokens missing or not a string array");
    uint64_t n = cst_gguf_arr_n(g, ti);
    if (n == 0 || n > 0x7fffffff) FAIL(CST_ERR_BAD_FORMAT, "tokenizer.ggml.tokens: bad token count %llu", (unsigned long long)n);
    v->n = (int32_t)n;
    int64_t si = cst_gguf_find_key(g, "tokenizer.ggml.scores");
    if (si >= 0) {
        if (cst_gguf_kv_type(g, si) != CST_GGUF_ARRAY ||
            (cst_gguf_arr_type(g, si) != CST_GGUF_FLOAT32 && cst_gguf_arr_type(g, si) != CST_GGUF_INT32))
            FAIL(CST_ERR_BAD_FORMAT, "tokenizer.ggml.scores: not a float32/int32 array");
        if (cst_gguf_arr_n(g, si) < n) FAIL(CST_ERR_BAD_FORMAT, "tokenizer.ggml.scores: fewer entries than tokens");
    }
    int64_t tti = cst_gguf_find_key(g, "tokenizer.ggml.token_type");
    if (tti >= 0) {
        if (cst_gguf_kv_type(g, tti) != CST_GGUF_ARRAY || cst_gguf_arr_type(g, tti) != CST_GGUF_INT32)
            FAIL(CST_ERR_BAD_FORMAT, "tokenizer.ggml.token_type: not an int32 array");
        if (cst_gguf_arr_n(g, tti) < n) FAIL(CST_ERR_BAD_FORMAT, "tokenizer.ggml.token_type: fewer entries than tokens");
    }
    uint64_t nm = 0; /* merges (BPE) */
    int64_t mi = -1;
    if (v->type == CST_VOCAB_BPE) {
        mi = cst_gguf_find_key(g, "tokenizer.ggml.merges");
        if (mi < 0) FAIL(CST_ERR_BAD_FORMAT, "cannot find tokenizer merges in model file");
        if (cst_gguf_kv_type(g, mi) != CST_GGUF_ARRAY || cst_gguf_arr_type(g, mi) != CST_GGUF_STRING)
            FAIL(CST_ERR_BAD_FORMAT, "tokenizer.ggml.merges: not a string array");
        nm = cst_gguf_arr_n(g, mi);
        if (nm > 0x7fffffff) FAIL(CST_ERR_BAD_FORMAT, "too many merges");
    }
    /* string ids (tokens, then extras) stay below n + 2 * nm; all ones is the empty slot */
    v->ht_idbits = 1;
    while (v->ht_idbits < 32 && (1ull << v->ht_idbits) <= n + 2 * nm) v->ht_idbits++;
    if (v->ht_idbits > 31) FAIL(CST_ERR_UNSUPPORTED, "vocabulary too large (%llu tokens, %llu merges)",
                                (unsigned long long)n, (unsigned long long)nm);
    if (view) v->vbase = cst_gguf_arr_str(g, ti, 0).ptr;
    size_t total = 0;
    if (!view) {
        for (uint64_t i = 0; i < n; i++) {
            size_t l = cst_gguf_arr_str(g, ti, i).len;
            total += (l ? l : 32) + 1;
        }
        if (total >= CST_STR_OWNED) FAIL(CST_ERR_UNSUPPORTED, "tokenizer.ggml.tokens: texts too large");
        v->pool = malloc(total);
        v->pool_cap = total;
    }
    if (!str_reserve(v, (int32_t)n)) FAIL(CST_ERR_NOMEM, "out of memory");
    if (v->type == CST_VOCAB_SPM) v->score = malloc(n * sizeof *v->score);
    v->attr = malloc(n * sizeof *v->attr);
    /* SPM looks up every candidate pair and most are not tokens: a sparser
     * table (load <= 1/3) keeps those misses short; BPE mostly hits (<= 2/3) */
    uint32_t ht_cap = pow2_at_least(v->type == CST_VOCAB_SPM ? n * 3 : n * 3 / 2);
    if ((!view && !v->pool) || (v->type == CST_VOCAB_SPM && !v->score) || !v->attr || !ht_cap || !ht_resize(v, ht_cap))
        FAIL(CST_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        cst_strv s = cst_gguf_arr_str(g, ti, i);
        uint32_t off;
        size_t len = s.len;
        if (len == 0) { /* llama.cpp renames empty tokens */
            char name[32];
            len = (size_t)snprintf(name, sizeof name, "[EMPTY_%llu]", (unsigned long long)i);
            off = pool_add(v, name, len);
        } else {
            if (s.len > 0xffff) FAIL(CST_ERR_UNSUPPORTED, "token %llu: text longer than 65535 bytes", (unsigned long long)i);
            off = view ? str_place(v, s.ptr, s.len) : pool_add(v, s.ptr, s.len);
        }
        if (off == CST_STR_NONE) FAIL(CST_ERR_NOMEM, "out of memory");
        v->str_off[i] = off;
        v->str_len[i] = (uint16_t)len;
        if (v->score) {
            double sc = 0;
            if (si >= 0) cst_gguf_arr_f64(g, si, i, &sc);
            v->score[i] = (float)sc;
        }
        int attr = CST_TOKEN_ATTR_NORMAL;
        if (tti >= 0) {
            int64_t tt = 0;
            cst_gguf_arr_i64(g, tti, i, &tt);
            switch (tt) { /* GGUF token types */
            case 1: attr = CST_TOKEN_ATTR_NORMAL; break;
            case 2: attr = CST_TOKEN_ATTR_UNKNOWN; break;
            case 3: attr = CST_TOKEN_ATTR_CONTROL; break;
            case 4: attr = CST_TOKEN_ATTR_USER_DEFINED; break;
            case 5: attr = CST_TOKEN_ATTR_UNUSED; break;
            case 6: attr = CST_TOKEN_ATTR_BYTE; break;
            default: attr = 0; break; /* undefined */
            }
        }
        v->attr[i] = (uint16_t)attr;
        if (!str_insert(v, (int32_t)i)) FAIL(CST_ERR_NOMEM, "out of memory");
    }

    /* merges: both sides become string ids (extras for sides that are not
     * tokens), the pair's first rank goes into the packed table */
    if (v->type == CST_VOCAB_BPE) {
        /* ids stay below n + 2 * nm; ranks below nm */
        int idbits = v->ht_idbits, rbits = 1;
        while (rbits < 32 && (1ull << rbits) <= nm) rbits++;
        if (2 * idbits + rbits > 64) FAIL(CST_ERR_UNSUPPORTED, "vocabulary too large (%llu tokens, %llu merges)",
                                          (unsigned long long)n, (unsigned long long)nm);
        v->m_idbits = idbits;
        v->m_rbits = 64 - 2 * idbits;
        v->n_merges = (uint32_t)nm;
        uint64_t mcap = nm + nm / 2 + 16;
        v->mht = malloc(mcap * sizeof *v->mht);
        if (!v->mht) FAIL(CST_ERR_NOMEM, "out of memory");
        v->mht_cap = (uint32_t)mcap;
        memset(v->mht, 0xff, mcap * sizeof *v->mht);
        for (uint64_t i = 0; i < nm; i++) {
            cst_strv s = cst_gguf_arr_str(g, mi, i);
            /* split at the first space after position 0; none -> ("", ""),
             * which no symbol can match */
            size_t sp = 0;
            for (size_t k = 1; k < s.len; k++)
                if (s.ptr[k] == ' ') {
                    sp = k;
                    break;
                }
            size_t l2 = sp ? s.len - sp - 1 : 0;
            if (!sp || l2 == 0) continue;
            if (sp > 0xffff || l2 > 0xffff) /* longer than any token: never a symbol built from tokens */
                FAIL(CST_ERR_UNSUPPORTED, "merge %llu: side longer than 65535 bytes", (unsigned long long)i);
            bool oom = false;
            int32_t a = side_id(v, s.ptr, sp, &oom);
            int32_t c = oom ? -1 : side_id(v, s.ptr + sp + 1, l2, &oom);
            if (oom) FAIL(CST_ERR_NOMEM, "out of memory");
            merge_insert(v, a, c, (uint32_t)i);
        }
    }
    for (uint32_t c = 0; c < CST_GPT2_CPTS; c++) {
        char enc[4];
        int el = cst_utf8_encode(c, enc);
        v->char_id[c] = cst_vocab_find_str(v, enc, (size_t)el);
        v->cpt_byte[c] = (int16_t)cst_cpt_to_byte(c);
    }

    /* newline token */
    if (v->type == CST_VOCAB_SPM) {
        v->linefeed = cst_vocab_find_hashed(v, "<0x0A>", 6);
        if (v->linefeed < 0) v->linefeed = cst_vocab_find_hashed(v, "\n", 1);
    } else {
        v->linefeed = cst_vocab_find_hashed(v, "\xc4\x8a", 2); /* byte-encoded "\n" */
    }

    /* special ids from metadata (out-of-range defaults are disabled, out-of-range
     * values ignored) */
    struct {
        const char *key;
        cst_token *id;
    } ids[] = {
        {"tokenizer.ggml.bos_token_id", &v->bos},         {"tokenizer.ggml.eos_token_id", &v->eos},
        {"tokenizer.ggml.eot_token_id", &v->eot},         {"tokenizer.ggml.eom_token_id", &v->eom},
        {"tokenizer.ggml.unknown_token_id", &v->unk},     {"tokenizer.ggml.seperator_token_id", &v->sep},
        {"tokenizer.ggml.padding_token_id", &v->pad},     {"tokenizer.ggml.mask_token_id", &v->mask},
        {"tokenizer.ggml.fim_pre_token_id", &v->fim_pre}, {"tokenizer.ggml.fim_suf_token_id", &v->fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &v->fim_mid}, {"tokenizer.ggml.fim_pad_token_id", &v->fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &v->fim_rep}, {"tokenizer.ggml.fim_sep_token_id", &v->fim_sep},
        {"tokenizer.ggml.prefix_token_id", &v->fim_pre},  {"tokenizer.ggml.suffix_token_id", &v->fim_suf},
        {"tokenizer.ggml.middle_token_id", &v->fim_mid},
    };
    for (size_t k = 0; k < CST_ARRAY_LEN(ids); k++) {
        if (*ids[k].id >= v->n) *ids[k].id = -1;
        int64_t x;
        if (!get_id(g, ids[k].key, &x)) continue;
        if (x >= 0 && x < v->n) *ids[k].id = (cst_token)x;
    }
    if (get_bool(g, "tokenizer.ggml.add_bos_token", &b)) v->add_bos = b;
    if (get_bool(g, "tokenizer.ggml.add_eos_token", &b)) v->add_eos = b;
    if (v->add_bos && v->bos < 0) FAIL(CST_ERR_BAD_FORMAT, "tokenizer.ggml.add_bos_token is true, but no BOS token");
    if (v->add_eos && v->eos < 0) FAIL(CST_ERR_BAD_FORMAT, "tokenizer.ggml.add_eos_token is true, but no EOS token");

    /* text-based detection */
    if (v->eot < 0) v->eot = detect(v, k_eot_texts);
    if (v->eom < 0) v->eom = detect(v, k_eom_texts);
    if (v->fim_pre < 0) v->fim_pre = detect(v, k_fim_pre_texts);
    if (v->fim_suf < 0) v->fim_suf = detect(v, k_fim_suf_texts);
    if (v->fim_mid < 0) v->fim_mid = detect(v, k_fim_mid_texts);
    if (v->fim_pad < 0) v->fim_pad = detect(v, k_fim_pad_texts);
    if (v->fim_rep < 0) v->fim_rep = detect(v, k_fim_rep_texts);
    if (v->fim_sep < 0) v->fim_sep = detect(v, k_fim_sep_texts);

    /* control tokens named "unused" are unused */
    for (int32_t i = 0; i < v->n; i++)
        if ((v->attr[i] & CST_TOKEN_ATTR_CONTROL) && memmem(cst_str_text(v, i), v->str_len[i], "unused", 6))
            v->attr[i] |= CST_TOKEN_ATTR_UNUSED;

    /* end-of-generation set */
    bool ok = eog_add(v, v->fim_pad) && eog_add(v, v->fim_rep) && eog_add(v, v->fim_sep);
    for (int32_t i = 0; i < v->n && ok; i++) {
        if (text_is(v, i, k_eog_texts)) {
            ok = eog_add(v, i);
            v->attr[i] |= CST_TOKEN_ATTR_CONTROL;
        }
    }
    for (int32_t i = 0; i < v->n; i++)
        if (text_is(v, i, k_gptoss_ud)) v->attr[i] = CST_TOKEN_ATTR_USER_DEFINED;
    ok = ok && eog_add(v, v->eos) && eog_add(v, v->eot) && eog_add(v, v->eom);
    if (!ok) FAIL(CST_ERR_NOMEM, "out of memory");
    {
        bool has_return = false, has_call = false, has_end = false, has_tool_response = false, has_s = false;
        cst_token end_id = -1, s_id = -1;
        for (size_t k = 0; k < v->n_eog; k++) {
            cst_token t = v->eog[k];
            static const char *const r[] = {"<|return|>", NULL}, *const c[] = {"<|call|>", NULL},
                                     *const e[] = {"<|end|>", NULL}, *const tr[] = {"<|tool_response>", NULL},
                                     *const s[] = {"</s>", NULL};
            if (text_is(v, t, r)) has_return = true;
            else if (text_is(v, t, c)) has_call = true;
            else if (text_is(v, t, e)) has_end = true, end_id = t;
            if (text_is(v, t, tr)) has_tool_response = true;
            else if (text_is(v, t, s)) has_s = true, s_id = t;
        }
        if (has_return && has_call && has_end) {
            eog_remove(v, end_id);
            v->attr[end_id] = CST_TOKEN_ATTR_USER_DEFINED;
        }
        if (has_tool_response && has_s) {
            eog_remove(v, s_id);
            v->attr[s_id] = CST_TOKEN_ATTR_NORMAL;
        }
    }
    if (v->n_eog > 1) qsort(v->eog, v->n_eog, sizeof *v->eog, cmp_tok);

    /* special tokens, longest first */
    for (int32_t i = 0; i < v->n; i++)
        if (v->attr[i] & (CST_TOKEN_ATTR_CONTROL | CST_TOKEN_ATTR_USER_DEFINED | CST_TOKEN_ATTR_UNKNOWN)) v->n_special++;
    v->special = malloc((v->n_special ? v->n_special : 1) * sizeof *v->special);
    if (!v->special) FAIL(CST_ERR_NOMEM, "out of memory");
    v->n_special = 0;
    for (int32_t i = 0; i < v->n; i++)
        if (v->attr[i] & (CST_TOKEN_ATTR_CONTROL | CST_TOKEN_ATTR_USER_DEFINED | CST_TOKEN_ATTR_UNKNOWN)) {
            v->special[v->n_special++] = i;
            v->special_first[(unsigned char)cst_str_text(v, i)[0]] = 1;
        }
    qsort_r(v->special, v->n_special, sizeof *v->special, cmp_special, v);

    /* views: special tokens and the special ids get NUL-terminated copies,
     * so that cst_vocab_text works for them */
    if (view) {
        cst_token sp_ids[] = {v->bos, v->eos, v->eot, v->eom, v->unk, v->sep, v->pad, v->mask, v->linefeed,
                              v->fim_pre, v->fim_suf, v->fim_mid, v->fim_pad, v->fim_rep, v->fim_sep};
        for (size_t k = 0; k < v->n_special + CST_ARRAY_LEN(sp_ids); k++) {
            cst_token t = k < v->n_special ? v->special[k] : sp_ids[k - v->n_special];
            if (t < 0 || (v->str_off[t] & CST_STR_OWNED)) continue;
            uint32_t off = pool_add(v, cst_str_text(v, t), v->str_len[t]);
            if (off == CST_STR_NONE) FAIL(CST_ERR_NOMEM, "out of memory");
            v->str_off[t] = off;
        }
    }
    if (v->pool_cap > v->pool_n && v->pool_n) { /* give back the slack */
        char *p = realloc(v->pool, v->pool_n);
        if (p) {
            v->pool = p;
            v->pool_cap = v->pool_n;
        }
    }

    /* per-model attributes (llama.cpp keys them on general.name) */
    cst_strv name = cst_gguf_get_str(g, "general.name");
    if (str_contains_ci(name, "phi-3") || str_contains_ci(name, "phi3")) {
        for (size_t k = 0; k < v->n_special; k++) v->attr[v->special[k]] |= CST_TOKEN_ATTR_RSTRIP;
        cst_token t = cst_vocab_find_hashed(v, "</s>", 4);
        if (t >= 0) v->attr[t] |= CST_TOKEN_ATTR_RSTRIP;
        const char *clear[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t k = 0; k < 3; k++) {
            t = cst_vocab_find_hashed(v, clear[k], strlen(clear[k]));
            if (t >= 0) v->attr[t] &= ~CST_TOKEN_ATTR_RSTRIP;
        }
    }

    for (int c = 0; c < 256; c++) v->byte_enc_len[c] = (unsigned char)cst_utf8_encode(cst_byte_to_cpt((uint8_t)c), v->byte_enc[c]);
    *out = v;
    return CST_OK;
}

cst_status cst_vocab_load(const cst_gguf *g, cst_vocab **out, char *err, size_t errlen) {
    return vocab_load(g, false, out, err, errlen);
}

cst_status cst_vocab_load_view(const cst_gguf *g, cst_vocab **out, char *err, size_t errlen) {
    return vocab_load(g, true, out, err, errlen);
}

cst_vocab_type cst_vocab_kind(const cst_vocab *v) { return v->type; }
int32_t cst_vocab_n_tokens(const cst_vocab *v) { return v->n; }
cst_token cst_vocab_bos(const cst_vocab *v) { return v->bos; }
cst_token cst_vocab_eos(const cst_vocab *v) { return v->eos; }
cst_token cst_vocab_eot(const cst_vocab *v) { return v->eot; }
cst_token cst_vocab_pad(const cst_vocab *v) { return v->pad; }
cst_token cst_vocab_nl(const cst_vocab *v) { return v->linefeed; }
bool cst_vocab_add_bos(const cst_vocab *v) { return v->add_bos; }
bool cst_vocab_add_eos(const cst_vocab *v) { return v->add_eos; }
bool cst_vocab_is_eog(const cst_vocab *v, cst_token t) {
    size_t lo = 0, hi = v->n_eog;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v->eog[mid] == t) return true;
        if (v->eog[mid] < t) lo = mid + 1;
        else hi = mid;
    }
    return false;
}
size_t cst_vocab_eog_ids(const cst_vocab *v, const cst_token **ids) {
    *ids = v->eog;
    return v->n_eog;
}
bool cst_vocab_is_control(const cst_vocab *v, cst_token t) {
    return t >= 0 && t < v->n && (v->attr[t] & CST_TOKEN_ATTR_CONTROL);
}
int cst_vocab_attr(const cst_vocab *v, cst_token t) { return (t >= 0 && t < v->n) ? v->attr[t] : 0; }
const char *cst_vocab_text(const cst_vocab *v, cst_token t) {
    if (t < 0 || t >= v->n || !(v->str_off[t] & CST_STR_OWNED)) return NULL;
    return cst_str_text(v, t);
}
cst_strv cst_vocab_text_view(const cst_vocab *v, cst_token t) {
    cst_strv s = {NULL, 0};
    if (t >= 0 && t < v->n) {
        s.ptr = cst_str_text(v, t);
        s.len = v->str_len[t];
    }
    return s;
}
cst_token cst_vocab_find(const cst_vocab *v, const char *s, size_t len) { return cst_vocab_find_hashed(v, s, len); }
