/* sha256.h: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104). Used for API
 * key hashes, content hashes of files and documents, cache keys and the
 * thought signatures' keystream and tags. */
#ifndef CST_SHA256_H
#define CST_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cst_sha256_ctx {
    uint32_t h[8];
    uint64_t len;    /* bytes hashed so far */
    uint8_t buf[64]; /* pending partial block */
    size_t nbuf;
} cst_sha256_ctx;

void cst_sha256_init(cst_sha256_ctx *c);
void cst_sha256_update(cst_sha256_ctx *c, const void *data, size_t len);
void cst_sha256_final(cst_sha256_ctx *c, uint8_t out[32]);

/* One-shot digest, and as 64 lowercase hex chars + NUL. */
void cst_sha256(const void *data, size_t len, uint8_t out[32]);
void cst_sha256_hex(const void *data, size_t len, char out[65]);

/* HMAC-SHA256 with key[0..nkey) over the concatenation a | b (either may be
 * empty). Keys longer than 64 bytes are hashed first, as RFC 2104 says. */
void cst_hmac_sha256(const uint8_t *key, size_t nkey, const void *a, size_t na, const void *b, size_t nb,
                     uint8_t out[32]);

#endif
