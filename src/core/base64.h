/* base64.h: RFC 4648 base64, the standard alphabet (inline data, file
 * hashes) and the URL-safe one (ids, thought signatures). */
#ifndef CST_BASE64_H
#define CST_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes the encoders write for n input bytes, NUL included. */
#define CST_B64_LEN(n) (4 * (((size_t)(n) + 2) / 3) + 1)

/* Standard alphabet with '=' padding into out (CST_B64_LEN(n) bytes). */
void cst_b64_encode(const uint8_t *p, size_t n, char *out);
/* URL-safe alphabet ('-', '_'), no padding, into out (CST_B64_LEN(n) bytes
 * suffice); returns the length written. */
size_t cst_b64url_encode(const uint8_t *p, size_t n, char *out);

/* Decode s[0..len): the standard alphabet (padding optional, but when given
 * it completes the last quad) or, with url, the URL-safe one ('=' padding
 * tolerated at the end). No whitespace; leftover bits must be zero (one
 * canonical encoding per byte string). Returns malloc'd bytes, or NULL when
 * the text is not base64 (or out of memory: *oom set; oom may be NULL). */
uint8_t *cst_b64_decode(const char *s, size_t len, size_t *out_len, bool *oom);
uint8_t *cst_b64url_decode(const char *s, size_t len, size_t *out_len, bool *oom);

#endif
