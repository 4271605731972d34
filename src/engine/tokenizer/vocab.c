/* vocab.c: builds a cst_vocab from a GGUF's tokenizer.* metadata the way
 * llama.cpp's llama_vocab::impl::load does: token texts/scores/types,
 * per-type defaults, special ids, text-based detection of EOT/EOM/FIM tokens,
 * the end-of-generation set, "unused" control tokens, the special-token list
 * used for partitioning, the piece cache and the phi-3 RSTRIP attributes.
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

static const char *tok_text(const cst_vocab *v, cst_token t) { return v->pool + v->off[t]; }

cst_token cst_vocab_find_hashed(const cst_vocab *v, const char *s, size_t len) {
    if (!v->ht) return -1;
    size_t i = (size_t)cst_tok_hash(s, len) & v->ht_mask;
    for (;;) {
        int32_t id = v->ht[i];
        if (id < 0) return -1;
        if (v->len[id] == len && memcmp(tok_text(v, id), s, len) == 0) return id;
        i = (i + 1) & v->ht_mask;
    }
}

static uint64_t merge_hash(const char *a, size_t alen, const char *b, size_t blen) {
    return cst_tok_hash(a, alen) * 31 + cst_tok_hash(b, blen);
}

int32_t cst_vocab_merge_rank(const cst_vocab *v, const char *a, size_t alen, const char *b, size_t blen) {
    if (!v->mht) return -1;
    size_t i = (size_t)merge_hash(a, alen, b, blen) & v->mht_mask;
    for (;;) {
        int32_t m = v->mht[i];
        if (m < 0) return -1;
        if (v->m_first_len[m] == alen && v->m_second_len[m] == blen &&
            memcmp(v->mpool + v->m_first_off[m], a, alen) == 0 && memcmp(v->mpool + v->m_second_off[m], b, blen) == 0)
            return m;
        i = (i + 1) & v->mht_mask;
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
    if (v->piece)
        for (int32_t i = 0; i < v->n; i++) free(v->piece[i]);
    free(v->piece);
    free(v->piece_len);
    free(v->pool);
    free(v->off);
    free(v->len);
    free(v->score);
    free(v->attr);
    free(v->ht);
    free(v->mpool);
    free(v->m_first_off);
    free(v->m_first_len);
    free(v->m_second_off);
    free(v->m_second_len);
    free(v->mht);
    free(v->eog);
    free(v->special);
    free(v);
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
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
        if (strlen(*list) == v->len[t] && memcmp(*list, tok_text(v, t), v->len[t]) == 0) return true;
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
    uint32_t lx = v->len[x], ly = v->len[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

/* token_to_piece with special = true, lstrip 0 (the cached form) */
static bool make_piece(const cst_vocab *v, cst_token t, cst_sbuf *b) {
    const char *s = tok_text(v, t);
    size_t n = v->len[t];
    int attr = v->attr[t];
    if (attr & (CST_TOKEN_ATTR_UNKNOWN | CST_TOKEN_ATTR_CONTROL | CST_TOKEN_ATTR_USER_DEFINED)) {
        cst_sbuf_put(b, s, n);
    } else if (v->type == CST_VOCAB_SPM) {
        if (attr & CST_TOKEN_ATTR_NORMAL) {
            for (size_t i = 0; i < n; i++) {
                if (i + 2 < n && (unsigned char)s[i] == 0xe2 && (unsigned char)s[i + 1] == 0x96 &&
                    (unsigned char)s[i + 2] == 0x81) {
                    cst_sbuf_put(b, " ", 1);
                    i += 2;
                } else {
                    cst_sbuf_put(b, s + i, 1);
                }
            }
        } else if (attr & CST_TOKEN_ATTR_BYTE) {
            char hex[3] = {0, 0, 0};
            if (n >= 5) {
                hex[0] = s[3];
                hex[1] = s[4];
            }
            char c = (char)strtol(hex, NULL, 16);
            cst_sbuf_put(b, &c, 1);
        }
    } else {
        if (attr & CST_TOKEN_ATTR_NORMAL) {
            size_t off = 0;
            while (off < n) {
                size_t start = off;
                uint32_t cpt = cst_utf8_decode(s, n, &off);
                int byte = cst_cpt_to_byte(cpt);
                if (byte >= 0) {
                    char c = (char)byte;
                    cst_sbuf_put(b, &c, 1);
                } else {
                    /* llama.cpp: "[UNK_BYTE_0x" + hex of the code point's UTF-8 + token text + "]" */
                    char enc[4];
                    int el = cst_utf8_encode(cpt, enc);
                    (void)start;
                    cst_sbuf_put(b, "[UNK_BYTE_0x", 12);
                    for (int k = 0; k < el; k++) {
                        char hx[3];
                        snprintf(hx, sizeof hx, "%02x", (unsigned char)enc[k]);
                        cst_sbuf_put(b, hx, 2);
                    }
                    cst_sbuf_put(b, s, n);
                    cst_sbuf_put(b, "]", 1);
                }
            }
        }
    }
    return !b->oom;
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

cst_status cst_vocab_load(const cst_gguf *g, cst_vocab **out, char *err, size_t errlen) {
    *out = NULL;
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
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        cst_strv s = cst_gguf_arr_str(g, ti, i);
        total += (s.len ? s.len : 32) + 1;
    }
    v->pool = malloc(total);
    v->off = malloc(n * sizeof *v->off);
    v->len = malloc(n * sizeof *v->len);
    v->score = malloc(n * sizeof *v->score);
    v->attr = malloc(n * sizeof *v->attr);
    size_t cap = pow2_at_least(n * 2);
    v->ht = malloc(cap * sizeof *v->ht);
    v->ht_mask = cap - 1;
    if (!v->pool || !v->off || !v->len || !v->score || !v->attr || !v->ht) FAIL(CST_ERR_NOMEM, "out of memory");
    memset(v->ht, 0xff, cap * sizeof *v->ht);
    size_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        cst_strv s = cst_gguf_arr_str(g, ti, i);
        v->off[i] = pos;
        if (s.len == 0) { /* llama.cpp renames empty tokens */
            int k = snprintf(v->pool + pos, 32, "[EMPTY_%llu]", (unsigned long long)i);
            v->len[i] = (uint32_t)k;
            pos += (size_t)k + 1;
        } else {
            if (s.len > 0xffffffffu) FAIL(CST_ERR_BAD_FORMAT, "token %llu too long", (unsigned long long)i);
            memcpy(v->pool + pos, s.ptr, s.len);
            v->pool[pos + s.len] = 0;
            v->len[i] = (uint32_t)s.len;
            pos += s.len + 1;
        }
        if ((int32_t)v->len[i] > v->max_token_len) v->max_token_len = (int32_t)v->len[i];
        double sc = 0;
        if (si >= 0) cst_gguf_arr_f64(g, si, i, &sc);
        v->score[i] = (float)sc;
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
        v->attr[i] = attr;
        /* insert (a later duplicate text takes over the id, as in older llama.cpp) */
        const char *t = v->pool + v->off[i];
        size_t h = (size_t)cst_tok_hash(t, v->len[i]) & v->ht_mask;
        for (;;) {
            int32_t id = v->ht[h];
            if (id < 0) {
                v->ht[h] = (int32_t)i;
                break;
            }
            if (v->len[id] == v->len[i] && memcmp(tok_text(v, id), t, v->len[i]) == 0) {
                v->ht[h] = (int32_t)i;
                break;
            }
            h = (h + 1) & v->ht_mask;
        }
    }

    /* merges */
    if (v->type == CST_VOCAB_BPE) {
        int64_t mi = cst_gguf_find_key(g, "tokenizer.ggml.merges");
        if (mi < 0) FAIL(CST_ERR_BAD_FORMAT, "cannot find tokenizer merges in model file");
        if (cst_gguf_kv_type(g, mi) != CST_GGUF_ARRAY || cst_gguf_arr_type(g, mi) != CST_GGUF_STRING)
            FAIL(CST_ERR_BAD_FORMAT, "tokenizer.ggml.merges: not a string array");
        uint64_t nm = cst_gguf_arr_n(g, mi);
        if (nm > 0x7fffffff) FAIL(CST_ERR_BAD_FORMAT, "too many merges");
        size_t mtotal = 0;
        for (uint64_t i = 0; i < nm; i++) mtotal += cst_gguf_arr_str(g, mi, i).len + 1;
        v->n_merges = (uint32_t)nm;
        v->mpool = malloc(mtotal ? mtotal : 1);
        v->m_first_off = malloc((nm ? nm : 1) * sizeof(uint32_t));
        v->m_first_len = malloc((nm ? nm : 1) * sizeof(uint32_t));
        v->m_second_off = malloc((nm ? nm : 1) * sizeof(uint32_t));
        v->m_second_len = malloc((nm ? nm : 1) * sizeof(uint32_t));
        size_t mcap = pow2_at_least(nm * 2);
        v->mht = malloc(mcap * sizeof *v->mht);
        v->mht_mask = mcap - 1;
        if (!v->mpool || !v->m_first_off || !v->m_first_len || !v->m_second_off || !v->m_second_len || !v->mht)
            FAIL(CST_ERR_NOMEM, "out of memory");
        if (mtotal > 0xffffffffu) FAIL(CST_ERR_BAD_FORMAT, "merges too large");
        memset(v->mht, 0xff, mcap * sizeof *v->mht);
        size_t mp = 0;
        for (uint64_t i = 0; i < nm; i++) {
            cst_strv s = cst_gguf_arr_str(g, mi, i);
            memcpy(v->mpool + mp, s.ptr, s.len);
            v->mpool[mp + s.len] = 0;
            /* split at the first space after position 0; none -> ("", "") */
            size_t sp = 0;
            for (size_t k = 1; k < s.len; k++)
                if (s.ptr[k] == ' ') {
                    sp = k;
                    break;
                }
            if (sp) {
                v->m_first_off[i] = (uint32_t)mp;
                v->m_first_len[i] = (uint32_t)sp;
                v->m_second_off[i] = (uint32_t)(mp + sp + 1);
                v->m_second_len[i] = (uint32_t)(s.len - sp - 1);
            } else {
                v->m_first_off[i] = v->m_second_off[i] = (uint32_t)mp;
                v->m_first_len[i] = v->m_second_len[i] = 0;
            }
            mp += s.len + 1;
            if (cst_vocab_merge_rank(v, v->mpool + v->m_first_off[i], v->m_first_len[i],
                                     v->mpool + v->m_second_off[i], v->m_second_len[i]) >= 0)
                continue; /* first rank wins */
            size_t h = (size_t)merge_hash(v->mpool + v->m_first_off[i], v->m_first_len[i],
                                          v->mpool + v->m_second_off[i], v->m_second_len[i]) & v->mht_mask;
            while (v->mht[h] >= 0) h = (h + 1) & v->mht_mask;
            v->mht[h] = (int32_t)i;
        }
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
        if ((v->attr[i] & CST_TOKEN_ATTR_CONTROL) && strstr(tok_text(v, i), "unused"))
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
            v->special_first[(unsigned char)tok_text(v, i)[0]] = 1;
        }
    qsort_r(v->special, v->n_special, sizeof *v->special, cmp_special, v);

    /* piece cache */
    v->piece = calloc((size_t)v->n, sizeof *v->piece);
    v->piece_len = malloc((size_t)v->n * sizeof *v->piece_len);
    if (!v->piece || !v->piece_len) FAIL(CST_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < v->n; i++) {
        cst_sbuf sb = {0};
        cst_sbuf_put(&sb, "", 0);
        if (!make_piece(v, i, &sb)) {
            free(sb.p);
            FAIL(CST_ERR_NOMEM, "out of memory");
        }
        v->piece[i] = sb.p;
        v->piece_len[i] = (uint32_t)sb.n;
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
const char *cst_vocab_text(const cst_vocab *v, cst_token t) { return (t >= 0 && t < v->n) ? tok_text(v, t) : NULL; }
cst_token cst_vocab_find(const cst_vocab *v, const char *s, size_t len) { return cst_vocab_find_hashed(v, s, len); }
