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

/* HMAC-SHA256 with a 32-byte key over a. */
static void hmac(const uint8_t key[32], const uint8_t *a, size_t na, uint8_t out[32]) {
    cst_hmac_sha256(key, 32, a, na, NULL, 0, out);
}

static void derive(const uint8_t key[32], const char *label, uint8_t out[32]) {
    hmac(key, (const uint8_t *)label, strlen(label), out);
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
        hmac(k_enc, ctr, sizeof ctr, ks);
        for (size_t j = 0; j < 32 && off + j < n; j++) buf[off + j] ^= ks[j];
    }
    return true;
}

char *cst_sig_make(const uint8_t key[32], const char *text, size_t len) {
    size_t n = 1 + NONCE_LEN + len + TAG_LEN;
    uint8_t *m = malloc(n), k_enc[32], k_mac[32];
    if (!m) return NULL;
    m[0] = SIG_VERSION;
    uint8_t k_siv[32], siv[32];
    derive(key, "castor thought signature: siv", k_siv);
    hmac(k_siv, (const uint8_t *)text, len, siv);
    memcpy(m + 1, siv, NONCE_LEN);
    if (len) memcpy(m + 1 + NONCE_LEN, text, len);
    derive(key, "castor thought signature: encryption", k_enc);
    derive(key, "castor thought signature: mac", k_mac);
    char *s = NULL;
    if (keystream_xor(k_enc, m + 1, m + 1 + NONCE_LEN, len)) {
        hmac(k_mac, m, 1 + NONCE_LEN + len, m + n - TAG_LEN);
        s = malloc(CST_B64_LEN(n));
        if (s) cst_b64url_encode(m, n, s);
    }
    free(m);
    return s;
}

bool cst_sig_open(const uint8_t key[32], const char *sig, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    if (!sig || strlen(sig) > (64u << 20)) return false;
    size_t n = 0;
    uint8_t *d = cst_b64url_decode(sig, strlen(sig), &n, NULL);
    if (!d) return false;
    uint8_t k_enc[32], k_mac[32], mac[32];
    derive(key, "castor thought signature: encryption", k_enc);
    derive(key, "castor thought signature: mac", k_mac);
    bool ok = n >= 1 + NONCE_LEN + TAG_LEN && d[0] == SIG_VERSION;
    if (ok) hmac(k_mac, d, n - TAG_LEN, mac);
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
