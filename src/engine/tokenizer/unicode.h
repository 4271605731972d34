/* unicode.h (tokenizer-internal): the small amount of Unicode the tokenizers
 * need, with llama.cpp's exact conventions: lenient UTF-8 decoding (an invalid
 * sequence becomes U+FFFD and consumes one byte), code point classes, and the
 * GPT-2 byte <-> code point mapping used by byte-level BPE vocabularies.
 */
#ifndef CST_TOK_UNICODE_H
#define CST_TOK_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum {
    CST_UF_LETTER = 0x01, /* \p{L} */
    CST_UF_NUMBER = 0x02, /* \p{N} */
    CST_UF_PUNCT = 0x04,  /* \p{P} */
    CST_UF_MARK = 0x08,   /* \p{M} */
    CST_UF_SYMBOL = 0x10, /* \p{S} */
    CST_UF_SEP = 0x20,    /* \p{Z} */
    CST_UF_CONTROL = 0x40, /* \p{C} except unassigned */
    CST_UF_UNDEF = 0x80,  /* unassigned, or beyond U+10FFFF */
    CST_UF_WHITESPACE = 0x100,
};

extern const uint32_t cst_uranges_n;
extern const uint32_t cst_uranges_start[];
extern const uint16_t cst_uranges_flags[];

/* Flags of a code point (never 0: every code point has a class or UNDEF). */
unsigned cst_cpt_flags(uint32_t cpt);

/* Length of the UTF-8 sequence a lead byte announces (1 for continuation bytes). */
static inline size_t cst_utf8_len(unsigned char c) {
    static const unsigned char lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}

/* Decode one code point at s[*off] (len bytes total); invalid -> 0xFFFD, +1 byte. */
uint32_t cst_utf8_decode(const char *s, size_t len, size_t *off);
/* Decode a whole string: *out malloc'd (n code points), NULL on OOM. */
uint32_t *cst_utf8_decode_all(const char *s, size_t len, size_t *n);
/* Encode cpt (values beyond U+10FFFF are written as U+FFFD). Returns bytes (1-4). */
int cst_utf8_encode(uint32_t cpt, char out[4]);

/* GPT-2 byte-level mapping: byte -> code point, and back (-1 if not a byte char). */
uint32_t cst_byte_to_cpt(uint8_t b);
int cst_cpt_to_byte(uint32_t cpt);

#endif
