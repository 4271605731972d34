/* tok_int.h (tokenizer-internal): the vocabulary structure shared by vocab.c
 * (loading), pretok.c (pre-tokenizer splitting) and tokenize.c (tokenize /
 * detokenize). Not part of the public contract.
 */
#ifndef CST_TOK_INT_H
#define CST_TOK_INT_H

#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* pre-tokenizer regex kinds */
enum { CST_RX_GPT2 = 1, CST_RX_LLAMA3, CST_RX_COLLAPSED, CST_RX_WIDE };

typedef struct cst_regex {
    int kind;
    pcre2_code *code; /* COLLAPSED / WIDE */
} cst_regex;

#define CST_MAX_REGEX 8

/* Strings: ids 0..n-1 are the tokens, n..n_str-1 merge sides that are not
 * tokens ("extras", only so that merges can be keyed on ids). A string's
 * text is str_off[id] bytes into the owned pool (CST_STR_OWNED set; always
 * NUL-terminated) or into the GGUF mapping (vbase; not NUL-terminated; only
 * with cst_vocab_load_view). */
#define CST_STR_OWNED 0x80000000u
#define CST_STR_NONE 0xffffffffu /* empty hash slot */
#define CST_GPT2_CPTS 0x144      /* code points of the GPT-2 byte map are < 0x144 */

struct cst_vocab {
    cst_vocab_type type;
    int32_t n;     /* tokens */
    int32_t n_str; /* tokens + extras */
    const char *vbase; /* view base (start of the tokens array's first text), or NULL */
    char *pool;        /* owned texts */
    size_t pool_n, pool_cap;
    uint32_t *str_off; /* n_str entries */
    uint16_t *str_len;
    int32_t str_cap;
    float *score; /* SPM only (NULL for BPE) */
    uint16_t *attr;

    /* string text -> id: open addressing, linear probing, power-of-two size;
     * slot = (hash tag << ht_idbits) | id, CST_STR_NONE empty */
    uint32_t *ht;
    uint32_t ht_cap;
    int ht_idbits;

    /* BPE merges keyed on string ids: each slot packs (a << (idbits + rbits)) |
     * (b << rbits) | rank; all ones = empty */
    uint64_t *mht;
    uint32_t mht_cap;
    int m_idbits, m_rbits;
    uint32_t n_merges;
    int32_t char_id[CST_GPT2_CPTS]; /* string id of each byte-map character's UTF-8, -1 */
    int16_t cpt_byte[CST_GPT2_CPTS]; /* inverse GPT-2 map, -1 */

    cst_token bos, eos, eot, eom, unk, sep, pad, mask, linefeed;
    cst_token fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix, clean_spaces, ignore_merges;

    cst_token *eog; /* sorted */
    size_t n_eog;

    cst_token *special; /* CONTROL/USER_DEFINED/UNKNOWN ids, longest text first */
    size_t n_special;
    unsigned char special_first[256]; /* first bytes of special texts */

    cst_regex rx[CST_MAX_REGEX];
    int n_rx;

    char byte_enc[256][4]; /* GPT-2 byte -> UTF-8 of its code point */
    unsigned char byte_enc_len[256];
};

uint64_t cst_tok_hash(const char *s, size_t n);

static inline const char *cst_str_text(const cst_vocab *v, int32_t id) {
    uint32_t o = v->str_off[id];
    return (o & CST_STR_OWNED) ? v->pool + (o & ~CST_STR_OWNED) : v->vbase + o;
}
static inline size_t cst_str_len(const cst_vocab *v, int32_t id) { return v->str_len[id]; }

/* string id (token or extra) of text s, -1 if none */
int32_t cst_vocab_find_str(const cst_vocab *v, const char *s, size_t len);
/* token id of text s (extras excluded), -1 if none */
static inline cst_token cst_vocab_find_hashed(const cst_vocab *v, const char *s, size_t len) {
    int32_t id = cst_vocab_find_str(v, s, len);
    return id < v->n ? id : -1;
}
/* merge table slot: multiply-shift range reduction of a well-mixed hash */
static inline uint32_t cst_mht_slot(uint64_t h, uint32_t cap) { return (uint32_t)(((h & 0xffffffffu) * (uint64_t)cap) >> 32); }
/* rank of merge (string a, string b), -1 if none; a, b >= 0 */
static inline int32_t cst_vocab_merge_rank_ids(const cst_vocab *v, int32_t a, int32_t b) {
    if (!v->mht) return -1;
    uint64_t key = ((uint64_t)(uint32_t)a << v->m_idbits) | (uint32_t)b;
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    uint32_t i = cst_mht_slot(h, v->mht_cap);
    for (;;) {
        uint64_t e = v->mht[i];
        if (e == UINT64_MAX) return -1;
        if ((e >> v->m_rbits) == key) return (int32_t)(e & ((1ull << v->m_rbits) - 1));
        if (++i == v->mht_cap) i = 0;
    }
}
/* the piece of token t as cst_token_to_piece(special = true) gives it:
 * writes at most cap bytes to buf, returns the full length */
size_t cst_vocab_piece(const cst_vocab *v, cst_token t, char *buf, size_t cap);

/* Pre-tokenizer: set up v->rx for a tokenizer.ggml.pre value (BPE only). */
cst_status cst_pretok_init(cst_vocab *v, const char *pre, char *err, size_t errlen);
void cst_pretok_free(cst_vocab *v);
/* Split text into words (llama.cpp unicode_regex_split, before byte encoding):
 * *offs receives code point counts of consecutive words and *cpts the decoded
 * code points (both malloc'd). */
cst_status cst_pretok_split(const cst_vocab *v, const char *text, size_t len, uint32_t **cpts, size_t *n_cpts,
                            size_t **offs, size_t *n_offs);

/* growable buffers */
typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} cst_sbuf;
void cst_sbuf_put(cst_sbuf *b, const char *s, size_t n);

#endif
