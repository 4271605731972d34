/* pretok.c: the BPE pre-tokenizer, i.e. llama.cpp's unicode_regex_split.
 * Each tokenizer.ggml.pre value selects a list of regexes applied in turn,
 * every one re-splitting the pieces left by the previous one. The GPT-2 and
 * Llama-3 patterns have hand-written matchers (as in llama.cpp); any other
 * pattern runs on PCRE2 the way llama.cpp runs std::regex: if it uses \p{..}
 * classes, on a "collapsed" byte string where every non-ASCII code point is
 * replaced by one byte standing for its class (0xD1 number, 0xD2 letter, 0xD3
 * punctuation, 0xD4 mark, 0xD5 symbol, 0x0B whitespace, 0xD0 other), with
 * the pattern rewritten to match; otherwise on the code points themselves.
 */
#include "tok_int.h"
#include "unicode.h"
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_CONTR "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RX_LLAMA3 RX_CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2 RX_CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN35                                                                                              \
    RX_CONTR "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_TEKKEN                                                                                              \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_GPT4O                                                                                               \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+" RX_CONTR                            \
    "?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*" RX_CONTR                          \
    "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_SEED_CODER RX_CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_BAILING                                                                                             \
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"
#define RX_DSV3                                                                                                \
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
#define RX_PORO " ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5\xa4\xdb\x94\xd8\x8c)]+"
#define RX_CJK "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+"
#define RX_CJK_KANA "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+"

/* tokenizer.ggml.pre -> regex list and flags, after llama.cpp's llama-vocab.cpp */
typedef struct {
    const char *names; /* '|'-separated */
    const char *rx[6];
    signed char clean_spaces; /* -1 keep the BPE default (true) */
    bool ignore_merges, add_bos;
} pre_def;

static const pre_def k_pre[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, -1, false, false},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", {RX_LLAMA3}, -1, true, true},
    {"dbrx|smaug-bpe", {RX_LLAMA3}, -1, false, false},
    {"deepseek-coder", {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RX_CJK, "\\p{N}"}, 0, false, false},
    {"deepseek-v3|hunyuan-dense", {"\\p{N}{1,3}", RX_CJK_KANA, RX_DSV3}, 0, false, false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2, "[0-9][0-9][0-9]"}, -1, false, false},
    {"starcoder|refact|codeshell|exaone|minerva-7b", {"\\p{N}", RX_GPT2}, -1, false, false},
    {"command-r|smollm", {"\\p{N}", RX_GPT2}, 0, false, false},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|roberta-bpe|a.x-4.0|mellum|"
     "exaone4|modern-bert|mpt|olmo|jais",
     {RX_GPT2}, -1, false, false},
    {"trillion|granite-docling", {RX_GPT2}, 0, false, false},
    {"qwen2|deepseek-r1-qwen|kormo|hunyuan|solar-open", {RX_QWEN2}, 0, false, false},
    {"stablelm2|megrez", {RX_QWEN2}, -1, false, false},
    {"qwen35", {RX_QWEN35}, 0, false, false},
    {"poro-chat", {RX_PORO}, 0, false, false},
    {"bloom|gpt3-finnish", {RX_PORO}, -1, false, false},
    {"chatglm-bpe|glm4", {RX_LLAMA3}, -1, false, false},
    {"viking", {RX_PORO, "\\p{N}"}, 0, false, false},
    {"tekken", {RX_TEKKEN}, 0, true, true},
    {"gpt-4o|llama4", {RX_GPT4O}, 0, false, false},
    {"seed-coder", {RX_SEED_CODER}, 0, false, false},
    {"bailingmoe|bailingmoe2|llada-moe", {RX_BAILING}, 0, false, false},
    {"grok-2", {RX_QWEN2}, 0, false, false},
};

static bool name_in(const char *names, const char *pre) {
    size_t pl = strlen(pre);
    const char *p = names;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == pl && memcmp(p, pre, l) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static const struct {
    const char *pat;
    unsigned char byte;
    const char *ascii;
} k_ucat[] = {
    {"\\p{N}", 0xD1, "0-9"},
    {"\\p{L}", 0xD2, "A-Za-z"},
    {"\\p{P}", 0xD3, "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}"},
    {"\\p{M}", 0xD4, ""},
    {"\\p{S}", 0xD5, "\\$\\+<->^`\\|"},
    {"\\p{Lu}", 0xD2, "A-Za-z"},
    {"\\p{Ll}", 0xD2, "A-Za-z"},
    {"\\p{Lt}", 0xD2, "A-Za-z"},
    {"\\p{Lm}", 0xD2, "A-Za-z"},
    {"\\p{Lo}", 0xD2, "A-Za-z"},
};

static bool uses_categories(const char *rx) {
    for (size_t k = 0; k < CST_ARRAY_LEN(k_ucat); k++)
        if (strstr(rx, k_ucat[k].pat)) return true;
    return false;
}

/* llama.cpp's rewrite of a \p{..} pattern for the collapsed text */
static char *collapse_regex(const char *re) {
    size_t n = strlen(re);
    char *out = malloc(n * 24 + 1);
    if (!out) return NULL;
    size_t o = 0;
    bool inside = false;
    for (size_t i = 0; i < n; i++) {
        if (re[i] == '[' && (i == 0 || re[i - 1] != '\\')) {
            out[o++] = '[';
            inside = true;
            continue;
        }
        if (inside && re[i] == ']' && re[i - 1] != '\\') {
            out[o++] = ']';
            inside = false;
            continue;
        }
        if (re[i] == '\\' && i + 3 < n && re[i + 1] == 'p' && re[i + 2] == '{') {
            const char *close = strchr(re + i + 3, '}');
            if (close && (size_t)(close - re) <= i + 10) {
                size_t pl = (size_t)(close - re) - i + 1;
                bool done = false;
                for (size_t k = 0; k < CST_ARRAY_LEN(k_ucat) && !done; k++) {
                    if (strlen(k_ucat[k].pat) == pl && memcmp(k_ucat[k].pat, re + i, pl) == 0) {
                        if (!inside) out[o++] = '[';
                        out[o++] = (char)k_ucat[k].byte;
                        size_t al = strlen(k_ucat[k].ascii);
                        memcpy(out + o, k_ucat[k].ascii, al);
                        o += al;
                        if (!inside) out[o++] = ']';
                        i += pl - 1;
                        done = true;
                    }
                }
                if (done) continue;
            }
        }
        out[o++] = re[i];
    }
    out[o] = 0;
    return out;
}

cst_status cst_pretok_init(cst_vocab *v, const char *pre, char *err, size_t errlen) {
    const pre_def *d = NULL;
    if (!pre[0]) {
        cst_warn("tokenizer: missing pre-tokenizer type, using 'default'");
        d = &k_pre[0];
    }
    for (size_t k = 0; k < CST_ARRAY_LEN(k_pre) && !d; k++)
        if (name_in(k_pre[k].names, pre)) d = &k_pre[k];
    if (!d) {
        cst_errf(err, errlen, "unsupported pre-tokenizer type '%s'", pre);
        return CST_ERR_UNSUPPORTED;
    }
    if (d->clean_spaces >= 0) v->clean_spaces = d->clean_spaces != 0;
    if (d->ignore_merges) v->ignore_merges = true;
    if (d->add_bos) v->add_bos = true;
    if (name_in("chatglm-bpe|glm4", pre)) v->bos = -1;
    v->n_rx = 0;
    for (int k = 0; k < 6 && d->rx[k]; k++) {
        const char *re = d->rx[k];
        cst_regex *r = &v->rx[v->n_rx++];
        if (strcmp(re, RX_GPT2) == 0) {
            r->kind = CST_RX_GPT2;
            continue;
        }
        if (strcmp(re, RX_LLAMA3) == 0) {
            r->kind = CST_RX_LLAMA3;
            continue;
        }
        int ec;
        PCRE2_SIZE eo;
        if (uses_categories(re)) {
            char *c = collapse_regex(re);
            if (!c) {
                cst_errf(err, errlen, "out of memory");
                return CST_ERR_NOMEM;
            }
            r->kind = CST_RX_COLLAPSED;
            r->code = pcre2_compile((PCRE2_SPTR)c, PCRE2_ZERO_TERMINATED, PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
            free(c);
        } else {
            r->kind = CST_RX_WIDE;
            r->code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &ec,
                                    &eo, NULL);
        }
        if (!r->code) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(ec, msg, sizeof msg);
            cst_errf(err, errlen, "pre-tokenizer regex for '%s' failed to compile: %s", pre, (const char *)msg);
            return CST_ERR_INTERNAL;
        }
    }
    return CST_OK;
}

void cst_pretok_free(cst_vocab *v) {
    for (int k = 0; k < v->n_rx; k++) pcre2_code_free(v->rx[k].code);
    v->n_rx = 0;
}

/* ---- output offsets ---------------------------------------------------- */
typedef struct {
    size_t *p;
    size_t n, cap;
    bool oom;
} offv;

static void off_push(offv *o, size_t len) {
    if (len == 0 || o->oom) return;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        size_t *p = realloc(o->p, cap * sizeof *p);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    o->p[o->n++] = len;
}

/* ---- hand-written GPT-2 and Llama-3 matchers ---------------------------- */
typedef struct {
    const uint32_t *cpt;
    const unsigned *fl;
    size_t ini, end; /* current chunk */
    size_t prev;
    offv *out;
} chunk;

#define OUT_OF_RANGE 0xFFFFFFFFu
static inline uint32_t ch_cpt(const chunk *c, size_t p) { return (p >= c->ini && p < c->end) ? c->cpt[p] : OUT_OF_RANGE; }
static inline unsigned ch_fl(const chunk *c, size_t p) { return (p >= c->ini && p < c->end) ? c->fl[p] : 0; }
static inline size_t ch_add(chunk *c, size_t end) {
    size_t l = end - c->prev;
    off_push(c->out, l);
    c->prev = end;
    return l;
}
#define IS_L(f) ((f) & CST_UF_LETTER)
#define IS_N(f) ((f) & CST_UF_NUMBER)
#define IS_WS(f) ((f) & CST_UF_WHITESPACE)

static inline uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* 's|'t|'re|'ve|'m|'ll|'d (case-insensitive for Llama 3); returns match length or 0 */
static size_t contraction(const chunk *c, size_t pos, bool ci) {
    if (ch_cpt(c, pos) != '\'' || pos + 1 >= c->end) return 0;
    uint32_t a = ch_cpt(c, pos + 1);
    if (ci) a = ascii_lower(a);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 < c->end) {
        uint32_t b = ch_cpt(c, pos + 2);
        if (ci) b = ascii_lower(b);
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    return 0;
}

static void split_gpt2(chunk *c) {
    for (size_t pos = c->ini; pos < c->end;) {
        uint32_t cpt = ch_cpt(c, pos);
        unsigned f = ch_fl(c, pos);
        size_t k = contraction(c, pos, false);
        if (k) {
            pos += ch_add(c, pos + k);
            continue;
        }
        unsigned f2 = cpt == ' ' ? ch_fl(c, pos + 1) : f;
        if (IS_L(f2)) { /* ' ?\p{L}+' */
            pos += cpt == ' ';
            while (IS_L(f2)) f2 = ch_fl(c, ++pos);
            ch_add(c, pos);
            continue;
        }
        if (IS_N(f2)) { /* ' ?\p{N}+' */
            pos += cpt == ' ';
            while (IS_N(f2)) f2 = ch_fl(c, ++pos);
            ch_add(c, pos);
            continue;
        }
        if (!(IS_WS(f2) || IS_L(f2) || IS_N(f2)) && f2) { /* ' ?[^\s\p{L}\p{N}]+' */
            pos += cpt == ' ';
            while (!(IS_WS(f2) || IS_L(f2) || IS_N(f2)) && f2) f2 = ch_fl(c, ++pos);
            ch_add(c, pos);
            continue;
        }
        size_t nws = 0;
        while (IS_WS(ch_fl(c, pos + nws))) nws++;
        if (nws > 1 && ch_cpt(c, pos + nws) != OUT_OF_RANGE) { /* '\s+(?!\S)' */
            pos += nws - 1;
            ch_add(c, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            ch_add(c, pos);
            continue;
        }
        ch_add(c, ++pos);
    }
}

static void split_llama3(chunk *c) {
    for (size_t pos = c->ini; pos < c->end;) {
        uint32_t cpt = ch_cpt(c, pos);
        unsigned f = ch_fl(c, pos);
        size_t k = contraction(c, pos, true);
        if (k) {
            pos += ch_add(c, pos + k);
            continue;
        }
        /* '[^\r\n\p{L}\p{N}]?\p{L}+' */
        if (!(cpt == '\r' || cpt == '\n' || IS_N(f))) {
            if (IS_L(f) || IS_L(ch_fl(c, pos + 1))) {
                pos++;
                while (IS_L(ch_fl(c, pos))) pos++;
                ch_add(c, pos);
                continue;
            }
        }
        if (IS_N(f)) { /* '\p{N}{1,3}' */
            size_t ini = pos;
            while (IS_N(ch_fl(c, pos))) {
                if (++pos - ini >= 3) {
                    ch_add(c, pos);
                    ini = pos;
                }
            }
            ch_add(c, pos);
            continue;
        }
        /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
        unsigned f2 = cpt == ' ' ? ch_fl(c, pos + 1) : f;
        if (!(IS_WS(f2) || IS_L(f2) || IS_N(f2)) && f) {
            pos += cpt == ' ';
            while (!(IS_WS(f2) || IS_L(f2) || IS_N(f2)) && f2) f2 = ch_fl(c, ++pos);
            uint32_t c2 = ch_cpt(c, pos);
            while (c2 == '\r' || c2 == '\n') c2 = ch_cpt(c, ++pos);
            ch_add(c, pos);
            continue;
        }
        size_t nws = 0, last_rn = 0;
        while (IS_WS(ch_fl(c, pos + nws))) {
            uint32_t c2 = ch_cpt(c, pos + nws);
            if (c2 == '\r' || c2 == '\n') last_rn = pos + nws + 1;
            nws++;
        }
        if (last_rn > 0) { /* '\s*[\r\n]+' */
            pos = last_rn;
            ch_add(c, pos);
            continue;
        }
        if (nws > 1 && ch_cpt(c, pos + nws) != OUT_OF_RANGE) { /* '\s+(?!\S)' */
            pos += nws - 1;
            ch_add(c, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            ch_add(c, pos);
            continue;
        }
        ch_add(c, ++pos);
    }
}

/* ---- PCRE2-driven patterns ---------------------------------------------- */
/* Emulates std::regex_iterator over one chunk: matches and the gaps between
 * them become words. subj offsets are in units given by to_cp (NULL: 1:1). */
static bool split_pcre(const cst_regex *r, const char *subj, size_t subj_len, const size_t *byte_to_cp, size_t cp_base,
                       offv *out, pcre2_match_data *md) {
    size_t start = 0, prev = 0;
    while (start <= subj_len) {
        int rc = pcre2_match(r->code, (PCRE2_SPTR)subj, subj_len, start, 0, md, NULL);
        if (rc < 0) break; /* no match (or a resource limit: the rest is one piece) */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t m0 = ov[0], m1 = ov[1];
        if (m1 == m0) { /* empty match: step over one character */
            start = m1 + 1;
            if (byte_to_cp)
                while (start < subj_len && ((unsigned char)subj[start] & 0xc0) == 0x80) start++;
            continue;
        }
        size_t c_prev = byte_to_cp ? byte_to_cp[prev] - cp_base : prev;
        size_t c0 = byte_to_cp ? byte_to_cp[m0] - cp_base : m0;
        size_t c1 = byte_to_cp ? byte_to_cp[m1] - cp_base : m1;
        off_push(out, c0 - c_prev);
        off_push(out, c1 - c0);
        prev = start = m1;
    }
    size_t c_prev = byte_to_cp ? byte_to_cp[prev] - cp_base : prev;
    size_t c_end = byte_to_cp ? byte_to_cp[subj_len] - cp_base : subj_len;
    off_push(out, c_end - c_prev);
    return !out->oom;
}

cst_status cst_pretok_split(const cst_vocab *v, const char *text, size_t len, uint32_t **cpts_out, size_t *n_cpts,
                            size_t **offs_out, size_t *n_offs) {
    size_t n = 0;
    uint32_t *cpts = cst_utf8_decode_all(text, len, &n);
    unsigned *fl = malloc((n ? n : 1) * sizeof *fl);
    offv cur = {0}, nxt = {0};
    char *coll = NULL, *wide = NULL;
    size_t *b2c = NULL, *cp_byte = NULL;
    pcre2_match_data *md = NULL;
    cst_status st = CST_ERR_NOMEM;
    if (!cpts || !fl) goto done;
    for (size_t i = 0; i < n; i++) fl[i] = cst_cpt_flags(cpts[i]);
    off_push(&cur, n);
    for (int k = 0; k < v->n_rx; k++) {
        const cst_regex *r = &v->rx[k];
        nxt.n = 0;
        size_t start = 0;
        if ((r->kind == CST_RX_COLLAPSED || r->kind == CST_RX_WIDE) && !md) {
            md = pcre2_match_data_create(1, NULL);
            if (!md) goto done;
        }
        if (r->kind == CST_RX_COLLAPSED && !coll) {
            coll = malloc(n ? n : 1);
            if (!coll) goto done;
            for (size_t i = 0; i < n; i++) {
                unsigned f = fl[i];
                if (cpts[i] < 128) coll[i] = (char)cpts[i];
                else if (f & CST_UF_WHITESPACE) coll[i] = 0x0B;
                else if (f & CST_UF_NUMBER) coll[i] = (char)0xD1;
                else if (f & CST_UF_LETTER) coll[i] = (char)0xD2;
                else if (f & CST_UF_PUNCT) coll[i] = (char)0xD3;
                else if (f & CST_UF_MARK) coll[i] = (char)0xD4;
                else if (f & CST_UF_SYMBOL) coll[i] = (char)0xD5;
                else coll[i] = (char)0xD0;
            }
        }
        if (r->kind == CST_RX_WIDE && !wide) {
            /* valid UTF-8 of the code points (non-ASCII whitespace -> 0x0B) and
             * a byte offset -> code point index map */
            wide = malloc(n * 4 + 1);
            b2c = malloc((n * 4 + 1) * sizeof *b2c);
            cp_byte = malloc((n + 1) * sizeof *cp_byte);
            if (!wide || !b2c || !cp_byte) goto done;
            size_t o = 0;
            for (size_t i = 0; i < n; i++) {
                uint32_t c = cpts[i];
                if (c > 0x7f && (fl[i] & CST_UF_WHITESPACE)) c = 0x0B;
                if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) c = 0xFFFD;
                cp_byte[i] = o;
                int l = cst_utf8_encode(c, wide + o);
                for (int q = 0; q < l; q++) b2c[o + (size_t)q] = i;
                o += (size_t)l;
            }
            cp_byte[n] = o;
            b2c[o] = n;
        }
        for (size_t j = 0; j < cur.n; j++) {
            size_t cl = cur.p[j];
            if (r->kind == CST_RX_GPT2 || r->kind == CST_RX_LLAMA3) {
                chunk c = {cpts, fl, start, start + cl, start, &nxt};
                if (r->kind == CST_RX_GPT2) split_gpt2(&c);
                else split_llama3(&c);
            } else if (r->kind == CST_RX_COLLAPSED) {
                split_pcre(r, coll + start, cl, NULL, 0, &nxt, md);
            } else {
                size_t b0 = cp_byte[start], b1 = cp_byte[start + cl];
                /* b2c is indexed from the chunk start */
                split_pcre(r, wide + b0, b1 - b0, b2c + b0, start, &nxt, md);
            }
            start += cl;
        }
        if (nxt.oom) goto done;
        offv t = cur;
        cur = nxt;
        nxt = t;
    }
    if (cur.oom) goto done;
    *cpts_out = cpts;
    *n_cpts = n;
    *offs_out = cur.p;
    *n_offs = cur.n;
    cpts = NULL;
    cur.p = NULL;
    st = CST_OK;
done:
    free(cpts);
    free(fl);
    free(cur.p);
    free(nxt.p);
    free(coll);
    free(wide);
    free(b2c);
    free(cp_byte);
    pcre2_match_data_free(md);
    return st;
}
