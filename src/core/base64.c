/* base64.c: RFC 4648 base64, standard and URL-safe alphabets. */
#include "base64.h"

#include <stdlib.h>

static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t encode(const char *alpha, bool pad, const uint8_t *p, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        if (i + 1 < n) out[o++] = alpha[v >> 6 & 63];
        else if (pad) out[o++] = '=';
        if (i + 2 < n) out[o++] = alpha[v & 63];
        else if (pad) out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

void cst_b64_encode(const uint8_t *p, size_t n, char *out) { encode(STD, true, p, n, out); }

size_t cst_b64url_encode(const uint8_t *p, size_t n, char *out) { return encode(URL, false, p, n, out); }

static int value(bool url, unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == (url ? '-' : '+')) return 62;
    if (ch == (url ? '_' : '/')) return 63;
    return -1;
}

static uint8_t *decode(bool url, const char *s, size_t len, size_t *out_len, bool *oom) {
    if (oom) *oom = false;
    *out_len = 0;
    size_t pad = 0;
    while (len && s[len - 1] == '=' && pad < 3) {
        len--;
        pad++;
    }
    if (len % 4 == 1 || pad > 2) return NULL;
    if (!url && pad && (len + pad) % 4) return NULL; /* padding, when given, completes a quad */
    uint8_t *out = malloc(len / 4 * 3 + 3);
    if (!out) {
        if (oom) *oom = true;
        return NULL;
    }
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        const int v = value(url, (unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits && (acc & ((1u << bits) - 1))) { /* leftover bits must be zero (canonical) */
        free(out);
        return NULL;
    }
    *out_len = o;
    return out;
}

uint8_t *cst_b64_decode(const char *s, size_t len, size_t *out_len, bool *oom) {
    return decode(false, s, len, out_len, oom);
}

uint8_t *cst_b64url_decode(const char *s, size_t len, size_t *out_len, bool *oom) {
    return decode(true, s, len, out_len, oom);
}
