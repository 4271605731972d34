/* signature.c: thought signatures (spec §7). A signature is opaque to clients
 * and carries the reasoning, encrypted and authenticated, so that a stateless
 * client sending a thought step back lets the prompt restore it without ever
 * seeing the text (thinking_summaries "none" stays private):
 *
 *   base64url( 0x02 | nonce[16] | ciphertext | tag[32] )
 *   nonce      = HMAC(k_siv, text)[0..16)                        (synthetic IV)
 *   ciphertext = text XOR keystream, keystream block i = HMAC(k_enc, nonce | be32(i))
 *   tag        = HMAC(k_mac, 0x02 | nonce | ciphertext)          (encrypt-then-MAC)
 *
 * HMAC-SHA256 as a PRF in counter mode; the nonce is derived from the text
 * (SIV), so the same thought always gives the same signature (reproducible
 * responses for a fixed seed) and the only thing revealed is whether two
 * thoughts are equal. k_siv, k_enc and k_mac are derived from the server key
 * with distinct labels. The key comes from
 * --signature-key / CASTOR_SIGNATURE_KEY (64 hex digits), else it is
 * generated once and kept in DATA_DIR/signature.key (mode 0600).
 */
#include "api_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIG_VERSION 2
#define NONCE_LEN 16
#define TAG_LEN 32

/* HMAC-SHA256 (RFC 2104) with a 32-byte key over the concatenation a | b. */
static bool hmac2(const uint8_t key[32], const uint8_t *a, size_t na, const uint8_t *b, size_t nb, uint8_t out[32]) {
    uint8_t *in = malloc(64 + na + nb);
    if (!in) return false;
    uint8_t outer[64 + 32];
    for (int i = 0; i < 64; i++) {
        uint8_t k = i < 32 ? key[i] : 0;
        in[i] = k ^ 0x36;
        outer[i] = k ^ 0x5c;
    }
    if (na) memcpy(in + 64, a, na);
    if (nb) memcpy(in + 64 + na, b, nb);
    cst_sha256(in, 64 + na + nb, outer + 64);
    free(in);
    cst_sha256(outer, sizeof outer, out);
    return true;
}

static void derive(const uint8_t key[32], const char *label, uint8_t out[32]) {
    hmac2(key, (const uint8_t *)label, strlen(label), NULL, 0, out);
}

/* XOR buf with the keystream for nonce (encrypts and decrypts). */
static bool keystream_xor(const uint8_t k_enc[32], const uint8_t nonce[NONCE_LEN], uint8_t *buf, size_t n) {
    uint8_t ctr[NONCE_LEN + 4], ks[32];
    memcpy(ctr, nonce, NONCE_LEN);
    for (size_t off = 0, blk = 0; off < n; off += 32, blk++) {
        ctr[NONCE_LEN] = (uint8_t)(blk >> 24);
        ctr[NONCE_LEN + 1] = (uint8_t)(blk >> 16);
        ctr[NONCE_LEN + 2] = (uint8_t)(blk >> 8);
        ctr[NONCE_LEN + 3] = (uint8_t)blk;
        if (!hmac2(k_enc, ctr, sizeof ctr, NULL, 0, ks)) return false;
        for (size_t j = 0; j < 32 && off + j < n; j++) buf[off + j] ^= ks[j];
    }
    return true;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64url(const uint8_t *d, size_t n) {
    char *o = malloc(n / 3 * 4 + 5);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        o[k++] = b64[v >> 18 & 63];
        o[k++] = b64[v >> 12 & 63];
        if (i + 1 < n) o[k++] = b64[v >> 6 & 63];
        if (i + 2 < n) o[k++] = b64[v & 63];
    }
    o[k] = 0;
    return o;
}

static int b64val(char c) {
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* Decode (no padding; '=' padding tolerated at the end). NULL on bad input. */
static uint8_t *unb64url(const char *s, size_t *n_out) {
    size_t n = strlen(s);
    while (n && s[n - 1] == '=') n--;
    if (n % 4 == 1) return NULL;
    uint8_t *o = malloc(n / 4 * 3 + 3);
    if (!o) return NULL;
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(s[i]);
        if (v < 0) {
            free(o);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (uint8_t)(acc >> bits);
        }
    }
    *n_out = k;
    return o;
}

char *cst_sig_make(const uint8_t key[32], const char *text, size_t len) {
    size_t n = 1 + NONCE_LEN + len + TAG_LEN;
    uint8_t *m = malloc(n), k_enc[32], k_mac[32];
    if (!m) return NULL;
    m[0] = SIG_VERSION;
    uint8_t k_siv[32], siv[32];
    derive(key, "castor thought signature: siv", k_siv);
    if (!hmac2(k_siv, (const uint8_t *)text, len, NULL, 0, siv)) {
        free(m);
        return NULL;
    }
    memcpy(m + 1, siv, NONCE_LEN);
    if (len) memcpy(m + 1 + NONCE_LEN, text, len);
    derive(key, "castor thought signature: encryption", k_enc);
    derive(key, "castor thought signature: mac", k_mac);
    char *s = NULL;
    if (keystream_xor(k_enc, m + 1, m + 1 + NONCE_LEN, len) && hmac2(k_mac, m, 1 + NONCE_LEN + len, NULL, 0, m + n - TAG_LEN))
        s = b64url(m, n);
    free(m);
    return s;
}

bool cst_sig_open(const uint8_t key[32], const char *sig, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    if (!sig || strlen(sig) > (64u << 20)) return false;
    size_t n = 0;
    uint8_t *d = unb64url(sig, &n);
    if (!d) return false;
    uint8_t k_enc[32], k_mac[32], mac[32];
    derive(key, "castor thought signature: encryption", k_enc);
    derive(key, "castor thought signature: mac", k_mac);
    bool ok = n >= 1 + NONCE_LEN + TAG_LEN && d[0] == SIG_VERSION && hmac2(k_mac, d, n - TAG_LEN, NULL, 0, mac);
    if (ok) { /* constant-time tag comparison */
        uint8_t diff = 0;
        for (int i = 0; i < TAG_LEN; i++) diff |= (uint8_t)(mac[i] ^ d[n - TAG_LEN + i]);
        ok = diff == 0;
    }
    if (ok) {
        *len = n - 1 - NONCE_LEN - TAG_LEN;
        *text = malloc(*len + 1);
        ok = *text != NULL && keystream_xor(k_enc, d + 1, d + 1 + NONCE_LEN, *len);
        if (ok) {
            memcpy(*text, d + 1 + NONCE_LEN, *len);
            (*text)[*len] = 0;
        } else {
            free(*text);
            *text = NULL;
            *len = 0;
        }
    }
    free(d);
    return ok;
}

static bool parse_hex_key(const char *h, uint8_t key[32]) {
    if (!h || strlen(h) != 64) return false;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) return false;
        key[i] = (uint8_t)v;
    }
    return true;
}

cst_status cst_sig_load_key(const char *flag, const char *data_dir, uint8_t key[32], char *err, size_t errlen) {
    const char *env = getenv("CASTOR_SIGNATURE_KEY");
    const char *given = flag && *flag ? flag : env && *env ? env : NULL;
    if (given) {
        if (!parse_hex_key(given, key)) {
            cst_errf(err, errlen, "the signature key must be 64 hex digits (--signature-key / CASTOR_SIGNATURE_KEY)");
            return CST_ERR_INVALID_ARG;
        }
        return CST_OK;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/signature.key", data_dir && *data_dir ? data_dir : ".");
    char *txt = NULL;
    size_t n = 0;
    if (cst_read_file(path, &txt, &n) == CST_OK) {
        while (n && (txt[n - 1] == '\n' || txt[n - 1] == '\r' || txt[n - 1] == ' ')) txt[--n] = 0;
        bool ok = parse_hex_key(txt, key);
        free(txt);
        if (!ok) {
            cst_errf(err, errlen, "%s: expected 64 hex digits", path);
            return CST_ERR_BAD_FORMAT;
        }
        return CST_OK;
    }
    if (getrandom(key, 32, 0) != 32) {
        cst_errf(err, errlen, "cannot get random bytes for the signature key");
        return CST_ERR_IO;
    }
    char hex[66];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
    hex[64] = '\n';
    hex[65] = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, hex, 65) != 65) {
        cst_errf(err, errlen, "%s: cannot write the signature key (%s)", path, strerror(errno));
        if (fd >= 0) close(fd);
        return CST_ERR_IO;
    }
    close(fd);
    return CST_OK;
}
