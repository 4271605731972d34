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

struct cst_vocab {
    cst_vocab_type type;
    int32_t n;
    char *pool; /* all token texts, NUL-separated */
    size_t *off;
    uint32_t *len;
    float *score;
    int *attr;
    char **piece; /* token_to_piece(special=true) cache, NUL-terminated */
    uint32_t *piece_len;
    int32_t max_token_len;

    /* token text -> id (open addressing, -1 empty) */
    int32_t *ht;
    size_t ht_mask;

    /* BPE merges: (first, second) -> rank */
    char *mpool;
    uint32_t n_merges;
    uint32_t *m_first_off, *m_first_len, *m_second_off, *m_second_len;
    int32_t *mht; /* merge index, -1 empty */
    size_t mht_mask;

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
cst_token cst_vocab_find_hashed(const cst_vocab *v, const char *s, size_t len);
/* rank of merge (a, b), -1 if none */
int32_t cst_vocab_merge_rank(const cst_vocab *v, const char *a, size_t alen, const char *b, size_t blen);

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
