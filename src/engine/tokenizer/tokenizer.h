/* tokenizer.h: vocabularies from GGUF metadata and the two tokenizer families
 * llama.cpp supports for our models: SentencePiece-style (tokenizer.ggml.model
 * "llama": scores, byte fallback) and byte-level BPE ("gpt2": merges, with the
 * pre-tokenizer regexes chosen by tokenizer.ggml.pre, run with PCRE2).
 * Output matches llama_tokenize / llama_detokenize exactly.
 */
#ifndef CST_TOKENIZER_H
#define CST_TOKENIZER_H

#include "castor.h"
#include "../gguf/gguf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int32_t cst_token;
typedef struct cst_vocab cst_vocab;

typedef enum { CST_VOCAB_SPM = 1, CST_VOCAB_BPE = 2 } cst_vocab_type;

/* token attributes (llama.cpp's llama_token_attr bits) */
enum {
    CST_TOKEN_ATTR_UNKNOWN = 1 << 0,
    CST_TOKEN_ATTR_UNUSED = 1 << 1,
    CST_TOKEN_ATTR_NORMAL = 1 << 2,
    CST_TOKEN_ATTR_CONTROL = 1 << 3,
    CST_TOKEN_ATTR_USER_DEFINED = 1 << 4,
    CST_TOKEN_ATTR_BYTE = 1 << 5,
    CST_TOKEN_ATTR_NORMALIZED = 1 << 6,
    CST_TOKEN_ATTR_LSTRIP = 1 << 7, /* strip whitespace before it when matched in text */
    CST_TOKEN_ATTR_RSTRIP = 1 << 8, /* strip whitespace after it (phi-3's special tokens) */
    CST_TOKEN_ATTR_SINGLE_WORD = 1 << 9,
};

/* Build the vocabulary from a GGUF's tokenizer.* keys. The vocab copies what it
 * needs; the gguf may be closed afterwards. */
cst_status cst_vocab_load(const cst_gguf *g, cst_vocab **out, char *err, size_t errlen);
/* Same vocabulary, but token texts stay in g's mapping instead of being
 * copied (about 1 MiB less for a 128k-token vocabulary): g must stay open
 * until cst_vocab_free. cst_vocab_text then gives NUL-terminated texts only
 * for special tokens (control, user-defined, unknown) and the special ids
 * (bos, eos, eot, ...), NULL for other tokens; use cst_vocab_text_view. */
cst_status cst_vocab_load_view(const cst_gguf *g, cst_vocab **out, char *err, size_t errlen);
void cst_vocab_free(cst_vocab *v); /* NULL ok */
bool cst_vocab_is_view(const cst_vocab *v); /* loaded by cst_vocab_load_view */
/* Bytes the vocab has allocated for itself (tables, texts; not the mapping). */
size_t cst_vocab_mem_bytes(const cst_vocab *v);

cst_vocab_type cst_vocab_kind(const cst_vocab *v);
int32_t cst_vocab_n_tokens(const cst_vocab *v);
cst_token cst_vocab_bos(const cst_vocab *v); /* -1 if none */
cst_token cst_vocab_eos(const cst_vocab *v);
cst_token cst_vocab_eot(const cst_vocab *v);
cst_token cst_vocab_pad(const cst_vocab *v); /* -1 if none */
cst_token cst_vocab_nl(const cst_vocab *v);  /* the newline token, -1 if none */
bool cst_vocab_add_bos(const cst_vocab *v);
bool cst_vocab_add_eos(const cst_vocab *v);
bool cst_vocab_is_eog(const cst_vocab *v, cst_token t); /* end-of-generation set, as llama.cpp builds it */
/* The whole end-of-generation set, ascending; *ids stays owned by the vocab. */
size_t cst_vocab_eog_ids(const cst_vocab *v, const cst_token **ids);
bool cst_vocab_is_control(const cst_vocab *v, cst_token t);
int cst_vocab_attr(const cst_vocab *v, cst_token t);
/* The token's text as stored in the vocabulary (e.g. "▁the", "Ġthe"),
 * NUL-terminated; NULL if t is out of range (or, for a vocab from
 * cst_vocab_load_view, t is not a special token, see there). */
const char *cst_vocab_text(const cst_vocab *v, cst_token t);
/* The token's text as a view ({NULL, 0} if t is out of range); always works. */
cst_strv cst_vocab_text_view(const cst_vocab *v, cst_token t);
/* Find a token whose stored text is exactly s; -1 if none. */
cst_token cst_vocab_find(const cst_vocab *v, const char *s, size_t len);

/* Tokenize text (len bytes). add_special: add BOS/EOS as the vocab says;
 * parse_special: recognise control/user-defined token texts in the input.
 * On success *out is malloc'd (caller frees) and *n_out its length. */
cst_status cst_tokenize(const cst_vocab *v, const char *text, size_t len, bool add_special,
                        bool parse_special, cst_token **out, size_t *n_out);

/* cst_tokenize with parse_special on, except inside the byte ranges
 * [plain[2k], plain[2k+1]) (k < n_plain, ascending, disjoint): a special
 * token's text is never recognised where it would overlap one of them, so
 * that text always tokenizes as ordinary text. Outside the ranges and when
 * nothing is injected the result equals cst_tokenize(parse_special=true)
 * token for token (no segment boundaries: the pre-tokenizer and SPM's space
 * prefix see the same fragments). Used for chat prompts: message contents
 * never become control tokens. */
cst_status cst_tokenize_plain_ranges(const cst_vocab *v, const char *text, size_t len, bool add_special,
                                     const size_t *plain, size_t n_plain, cst_token **out, size_t *n_out);

/* The bytes a token contributes to text (llama_token_to_piece with lstrip 0):
 * special tokens are written as their text only when `special` is true.
 * Returns the number of bytes the piece has (may exceed cap: then nothing
 * beyond cap is written and the caller should retry with a bigger buffer). */
size_t cst_token_to_piece(const cst_vocab *v, cst_token t, char *buf, size_t cap, bool special);

/* llama_detokenize(remove_special=false, unparse_special=true). *out is
 * malloc'd and NUL-terminated. */
cst_status cst_detokenize(const cst_vocab *v, const cst_token *ids, size_t n, char **out, size_t *out_len);

#endif
