/* unicode.c: code point classes (binary search over generated ranges, with an
 * ASCII fast path), lenient UTF-8 decoding/encoding matching llama.cpp's
 * unicode.cpp behaviour, and the GPT-2 byte <-> code point mapping.
 */
#include "unicode.h"

#include <stdlib.h>

unsigned cst_cpt_flags(uint32_t cpt) {
    if (cpt >= 0x110000) return CST_UF_UNDEF;
    uint32_t lo = 0, hi = cst_uranges_n; /* find last start <= cpt */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (cst_uranges_start[mid] <= cpt) lo = mid;
        else hi = mid;
    }
    return cst_uranges_flags[lo];
}

uint32_t cst_utf8_decode(const char *str, size_t len, size_t *off) {
    const unsigned char *s = (const unsigned char *)str;
    size_t o = *off;
    unsigned c = s[o];
    if (!(c & 0x80)) {
        *off = o + 1;
        return c;
    }
    if (!(c & 0x40)) goto bad;
    if (!(c & 0x20)) {
        if (o + 1 >= len || (s[o + 1] & 0xc0) != 0x80) goto bad;
        *off = o + 2;
        return ((c & 0x1f) << 6) | (s[o + 1] & 0x3f);
    }
    if (!(c & 0x10)) {
        if (o + 2 >= len || (s[o + 1] & 0xc0) != 0x80 || (s[o + 2] & 0xc0) != 0x80) goto bad;
        *off = o + 3;
        return ((c & 0x0f) << 12) | ((s[o + 1] & 0x3f) << 6) | (s[o + 2] & 0x3f);
    }
    if (!(c & 0x08)) {
        if (o + 3 >= len || (s[o + 1] & 0xc0) != 0x80 || (s[o + 2] & 0xc0) != 0x80 || (s[o + 3] & 0xc0) != 0x80)
            goto bad;
        *off = o + 4;
        return ((c & 0x07) << 18) | ((s[o + 1] & 0x3f) << 12) | ((s[o + 2] & 0x3f) << 6) | (s[o + 3] & 0x3f);
    }
bad:
    *off = o + 1;
    return 0xFFFD;
}

uint32_t *cst_utf8_decode_all(const char *s, size_t len, size_t *n) {
    uint32_t *out = malloc((len ? len : 1) * sizeof *out);
    if (!out) return NULL;
    size_t off = 0, k = 0;
    while (off < len) out[k++] = cst_utf8_decode(s, len, &off);
    *n = k;
    return out;
}

int cst_utf8_encode(uint32_t cpt, char out[4]) {
    if (cpt <= 0x7f) {
        out[0] = (char)cpt;
        return 1;
    }
    if (cpt <= 0x7ff) {
        out[0] = (char)(0xc0 | (cpt >> 6));
        out[1] = (char)(0x80 | (cpt & 0x3f));
        return 2;
    }
    if (cpt > 0x10ffff) cpt = 0xFFFD;
    if (cpt <= 0xffff) {
        out[0] = (char)(0xe0 | (cpt >> 12));
        out[1] = (char)(0x80 | ((cpt >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cpt & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cpt >> 18));
    out[1] = (char)(0x80 | ((cpt >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cpt >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cpt & 0x3f));
    return 4;
}

/* Printable Latin-1 bytes map to themselves; the other 68 bytes map, in byte
 * order, to U+0100, U+0101, ... */
static int byte_is_self(int b) { return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff); }

uint32_t cst_byte_to_cpt(uint8_t b) {
    if (byte_is_self(b)) return b;
    uint32_t n = 0;
    for (int c = 0; c < b; c++)
        if (!byte_is_self(c)) n++;
    return 256 + n;
}

int cst_cpt_to_byte(uint32_t cpt) {
    if (cpt < 256) return byte_is_self((int)cpt) ? (int)cpt : -1;
    if (cpt >= 256 + 68) return -1;
    uint32_t n = cpt - 256;
    for (int c = 0; c < 256; c++) {
        if (byte_is_self(c)) continue;
        if (n == 0) return c;
        n--;
    }
    return -1;
}
