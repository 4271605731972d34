/* auth.c: API keys (§1.4). Keys come from a file, one per line ('#'
 * comments; a line "sha256:HEX" gives a hash instead of a key); only their
 * SHA-256 is kept in memory. A caller's key is x-goog-api-key, ?key= or
 * Authorization: Bearer; its hash (the "owner") partitions stored data.
 */
#include "api_int.h"

#include <ctype.h>
#include <string.h>

/* ---- keys ------------------------------------------------------------------ */
cst_status cst_api_load_keys(cst_server *s, const char *path, char *err, size_t errlen) {
    char *txt = NULL;
    size_t len = 0;
    if (cst_read_file(path, &txt, &len)) {
        cst_errf(err, errlen, "cannot read the API key file %s", path);
        return CST_ERR_IO;
    }
    size_t cap = 8;
    s->key_hashes = malloc(cap * sizeof *s->key_hashes);
    if (!s->key_hashes) {
        free(txt);
        return CST_ERR_NOMEM;
    }
    char *save = NULL;
    for (char *line = strtok_r(txt, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        while (isspace((unsigned char)*line)) line++;
        size_t l = strlen(line);
        while (l > 0 && isspace((unsigned char)line[l - 1])) line[--l] = 0;
        if (l == 0 || line[0] == '#') continue;
        if (s->n_keys == cap) {
            cap *= 2;
            void *nk = realloc(s->key_hashes, cap * sizeof *s->key_hashes);
            if (!nk) {
                free(txt);
                return CST_ERR_NOMEM;
            }
            s->key_hashes = nk;
        }
        char *h = s->key_hashes[s->n_keys];
        if (!strncmp(line, "sha256:", 7)) {
            if (strlen(line + 7) != 64) {
                cst_errf(err, errlen, "%s: a sha256: line needs 64 hex digits", path);
                free(txt);
                return CST_ERR_BAD_FORMAT;
            }
            for (int i = 0; i < 64; i++) h[i] = (char)tolower((unsigned char)line[7 + i]);
            h[64] = 0;
        } else {
            cst_sha256_hex(line, l, h);
        }
        memset(line, 0, l); /* do not keep the key in memory */
        s->n_keys++;
    }
    free(txt);
    if (s->n_keys == 0) {
        cst_errf(err, errlen, "the API key file %s has no keys", path);
        return CST_ERR_BAD_FORMAT;
    }
    return CST_OK;
}

static bool ct_equal(const char *a, const char *b, size_t n) {
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++) d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

bool cst_api_auth(cst_server *s, struct MHD_Connection *c, char owner[65], enum MHD_Result *ret) {
    const char *hk = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-goog-api-key");
    const char *qk = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key");
    const char *ah = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *bk = (ah && !strncasecmp(ah, "Bearer ", 7)) ? ah + 7 : NULL;
    if (hk && !*hk) hk = NULL;
    if (qk && !*qk) qk = NULL;
    if (bk && !*bk) bk = NULL;
    const char *key = hk ? hk : qk ? qk : bk;
    if ((hk && qk && strcmp(hk, qk)) || (hk && bk && strcmp(hk, bk)) || (qk && bk && strcmp(qk, bk))) {
        *ret = cst_api_error(c, E_INVALID, "multiple credentials: the API key is given more than once with different values");
        return false;
    }
    if (s->p.no_auth) {
        strcpy(owner, "local");
        return true;
    }
    if (!key) {
        *ret = cst_api_error(c, E_UNAUTH, "missing API key: send it in the x-goog-api-key header or the key query parameter");
        return false;
    }
    char h[65];
    cst_sha256_hex(key, strlen(key), h);
    bool ok = false;
    for (size_t i = 0; i < s->n_keys; i++) ok |= ct_equal(h, s->key_hashes[i], 64);
    if (!ok) {
        *ret = cst_api_error(c, E_DENIED, "the API key is not valid for this server");
        return false;
    }
    memcpy(owner, h, 65);
    return true;
}
