/* signature.c: thought signatures (spec §7). A signature is base64url of
 * 0x01 | reasoning text | HMAC-SHA256(key, 0x01 | text): opaque to clients,
 * verifiable by the server, and it carries the reasoning so a stateless
 * client that sends a thought step back lets the prompt restore it. The key
 * comes from --signature-key / CASTOR_SIGNATURE_KEY (64 hex digits), else it
 * is generated once and kept in DATA_DIR/signature.key (mode 0600).
 */
#include "api_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static void sha256(const void *d, size_t n, uint8_t out[32]) {
    char hex[65];
    cst_sha256_hex(d, n, hex);
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* HMAC-SHA256 (RFC 2104) with a 32-byte key. */
static bool hmac(const uint8_t key[32], const uint8_t *msg, size_t n, uint8_t out[32]) {
    uint8_t *in = malloc(64 + n);
    if (!in) return false;
    uint8_t outer[64 + 32];
    for (int i = 0; i < 64; i++) {
        uint8_t k = i < 32 ? key[i] : 0;
        in[i] = k ^ 0x36;
        outer[i] = k ^ 0x5c;
    }
    memcpy(in + 64, msg, n);
    sha256(in, 64 + n, outer + 64);
    free(in);
    sha256(outer, sizeof outer, out);
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
    uint8_t *m = malloc(1 + len + 32);
    if (!m) return NULL;
    m[0] = 1;
    if (len) memcpy(m + 1, text, len);
    if (!hmac(key, m, 1 + len, m + 1 + len)) {
        free(m);
        return NULL;
    }
    char *s = b64url(m, 1 + len + 32);
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
    uint8_t mac[32];
    bool ok = n >= 33 && d[0] == 1 && hmac(key, d, n - 32, mac);
    if (ok) {
        uint8_t diff = 0;
        for (int i = 0; i < 32; i++) diff |= (uint8_t)(mac[i] ^ d[n - 32 + i]);
        ok = diff == 0;
    }
    if (ok) {
        *len = n - 33;
        *text = malloc(*len + 1);
        ok = *text != NULL;
        if (ok) {
            memcpy(*text, d + 1, *len);
            (*text)[*len] = 0;
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
