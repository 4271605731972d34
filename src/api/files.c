/* files.c: the Files API (§10). Resumable uploads: start creates a session
 * (temp file under <data>/files/tmp) and answers an absolute upload URL; the
 * chunks are streamed straight into the temp file (never buffered whole);
 * finalize checks the length, hashes the bytes, checks the declared MIME type
 * against the magic numbers, then moves the temp file to its content-addressed
 * blob (<data>/files/blobs/xx/<sha256>) and records the metadata in the store.
 * Get / list (paged, newest first) / delete / download; errors in the Google
 * RPC shape. A per-key quota (--file-quota) bounds live files plus open
 * sessions' declared lengths (429 at start). A janitor thread removes expired files, unreferenced blobs and
 * idle sessions.
 */
#include "files.h"
#include "engine/vision/vision.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ---- state --------------------------------------------------------------- */

typedef struct upsess {
    struct upsess *next;
    char id[40];          /* upload_id: 32 hex chars (128 random bits) */
    char owner[65];
    char file_id[48];     /* requested ("name") or generated */
    bool named;           /* file_id was requested (409 when taken) */
    char *display_name;
    char mime[128];
    uint64_t declared;    /* X-Goog-Upload-Header-Content-Length */
    uint64_t received;    /* accepted bytes so far */
    int fd;
    char path[4200];
    double last;          /* last activity */
    bool busy;            /* a chunk is streaming into it */
    bool dead;            /* terminated: freed when no longer busy */
} upsess;

enum { UP_OK = 0, UP_NOSESS, UP_BUSY, UP_OFFSET, UP_OVER_DECL, UP_OVER_MAX, UP_IO };

typedef struct upconn {
    upsess *sess;         /* NULL when the session was not found */
    int err;
    uint64_t start_off;   /* session's received at the start of this chunk */
    uint64_t got;         /* bytes of this chunk written */
    uint64_t offset_hdr;  /* X-Goog-Upload-Offset as sent */
    bool committed;       /* the chunk was accepted */
} upconn;

struct cst_files {
    cst_server *srv;
    char root[4000], blobs[4100], tmp[4100];
    pthread_mutex_t mu;   /* sessions, blob placement / removal */
    upsess *sessions;
    uint64_t max_size;
    uint64_t quota;       /* bytes per owner (UINT64_MAX: unlimited) */
    int64_t ttl_s;
    double session_ttl_s;
    pthread_t janitor;
    bool janitor_started;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stop;
};

static const char *SUPPORTED_MIME[] = {"image/png", "image/jpeg", "image/webp", "image/gif"};

/* ---- small helpers --------------------------------------------------------- */

static void rand_bytes(uint8_t *p, size_t n) {
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        while (got < n) {
            ssize_t k = read(fd, p + got, n - got);
            if (k <= 0) break;
            got += (size_t)k;
        }
        close(fd);
    }
    /* /dev/urandom always works on Linux; the fallback only avoids zeros */
    for (size_t i = got; i < n; i++) p[i] = (uint8_t)(rand() ^ (int)(cst_time_now() * 1e6));
}

static void rand_id(char *out, size_t n_chars, const char *alphabet, size_t alen) {
    uint8_t b[64];
    rand_bytes(b, n_chars);
    for (size_t i = 0; i < n_chars; i++) out[i] = alphabet[b[i] % alen];
    out[n_chars] = 0;
}

bool cst_files_valid_id(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 40) return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9'))) return false;
    return true;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void hex_to_bytes(const char *hex, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
}

static int64_t now_s(void) { return (int64_t)time(NULL); }

static bool mime_supported(const char *m) {
    for (size_t i = 0; i < CST_ARRAY_LEN(SUPPORTED_MIME); i++)
        if (!strcasecmp(m, SUPPORTED_MIME[i])) return true;
    return false;
}

/* type/subtype, RFC 6838 restricted names (parameters not allowed) */
static bool mime_syntax_ok(const char *m) {
    const char *sl = strchr(m, '/');
    if (!sl || sl == m || !sl[1] || strlen(m) > 127) return false;
    for (const char *p = m; *p; p++) {
        if (p == sl) continue;
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$&-^_.+", ch)))
            return false;
    }
    return true;
}

static void blob_path(const cst_files *f, const char *sha, char *out, size_t n) {
    snprintf(out, n, "%s/%.2s/%s", f->blobs, sha, sha);
}

/* ---- replies (Google RPC error shape) --------------------------------------- */

static const char *rpc_status(ekind k) {
    switch (k) {
    case E_INVALID: return "INVALID_ARGUMENT";
    case E_PRECOND: return "FAILED_PRECONDITION";
    case E_UNAUTH: return "UNAUTHENTICATED";
    case E_DENIED: return "PERMISSION_DENIED";
    case E_NOT_FOUND: return "NOT_FOUND";
    case E_TOO_LARGE: return "INVALID_ARGUMENT";
    case E_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case E_UNAVAILABLE: return "UNAVAILABLE";
    case E_TIMEOUT: return "DEADLINE_EXCEEDED";
    default: return "INTERNAL";
    }
}

#define E_CONFLICT_409 E_KIND_LAST /* 409 ALREADY_EXISTS (not an interactions error kind) */

static enum MHD_Result queue_ra(struct MHD_Connection *c, int status, char *txt, const char *ctype,
                                const char *up_status, const char *up_url, int64_t retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(txt);
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(r, "Content-Type", ctype);
    if (up_status) MHD_add_response_header(r, "X-Goog-Upload-Status", up_status);
    if (up_url) MHD_add_response_header(r, "X-Goog-Upload-URL", up_url);
    if (retry_after > 0) {
        char ra[32];
        snprintf(ra, sizeof ra, "%lld", (long long)retry_after);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    cst_api_common_headers(r);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result queue(struct MHD_Connection *c, int status, char *txt, const char *ctype,
                             const char *up_status, const char *up_url) {
    return queue_ra(c, status, txt, ctype, up_status, up_url, 0);
}

/* retry_after > 0: a Retry-After header of that many seconds (429 / 503 / 504
 * always get one: 1 s unless given) */
static enum MHD_Result vferr(struct MHD_Connection *c, const char *up_status, int k, int64_t retry_after,
                             const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static enum MHD_Result vferr(struct MHD_Connection *c, const char *up_status, int k, int64_t retry_after,
                             const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    cst_api_utf8_fix(msg);
    if (retry_after <= 0 && (k == E_EXHAUSTED || k == E_UNAVAILABLE || k == E_TIMEOUT)) retry_after = 1;
    int http = k == E_CONFLICT_409 ? 409 : cst_api_ekind_http((ekind)k);
    const char *st = k == E_CONFLICT_409 ? "ALREADY_EXISTS" : rpc_status((ekind)k);
    if (k != E_CONFLICT_409) cst_metrics_error((ekind)k);
    json_t *j = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", http, "message", msg, "status", st);
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!txt) return MHD_NO;
    return queue_ra(c, http, txt, "application/json; charset=utf-8", up_status, NULL, retry_after);
}

static enum MHD_Result ferr(struct MHD_Connection *c, const char *up_status, int k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result ferr(struct MHD_Connection *c, const char *up_status, int k, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result r = vferr(c, up_status, k, 0, fmt, ap);
    va_end(ap);
    return r;
}

static enum MHD_Result ferr_retry(struct MHD_Connection *c, const char *up_status, int k, int64_t retry_after,
                                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum MHD_Result ferr_retry(struct MHD_Connection *c, const char *up_status, int k, int64_t retry_after,
                                  const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result r = vferr(c, up_status, k, retry_after, fmt, ap);
    va_end(ap);
    return r;
}

static enum MHD_Result fjson(struct MHD_Connection *c, json_t *j, const char *up_status) {
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!txt) return MHD_NO;
    return queue(c, 200, txt, "application/json; charset=utf-8", up_status, NULL);
}

/* scheme://host[prefix] as the client addressed us */
static void public_base(cst_server *s, struct MHD_Connection *c, char *out, size_t n) {
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    const char *proto = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-Proto");
    const char *scheme = proto && !strcasecmp(proto, "https") ? "https" : "http";
    bool host_ok = host && *host && strlen(host) < 256;
    for (const char *p = host; host_ok && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr(".-:[]_", *p)))
            host_ok = false;
    if (host_ok) snprintf(out, n, "%s://%s%s", scheme, host, s->prefix);
    else snprintf(out, n, "%s://%s:%d%s", scheme, s->host, s->port, s->prefix);
}

static json_t *file_json(cst_server *s, struct MHD_Connection *c, const cst_frec *r) {
    char base[1024], uri[1200], name[64], ct[32], ut[32], et[32], size[32], shab64[48];
    public_base(s, c, base, sizeof base);
    snprintf(uri, sizeof uri, "%s/v1beta/files/%s", base, r->id);
    snprintf(name, sizeof name, "files/%s", r->id);
    cst_time_rfc3339(r->created, ct);
    cst_time_rfc3339(r->updated, ut);
    cst_time_rfc3339(r->expires, et);
    snprintf(size, sizeof size, "%lld", (long long)r->size);
    uint8_t raw[32];
    hex_to_bytes(r->sha256, raw, 32);
    cst_b64_encode(raw, 32, shab64);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "name", name, "mimeType", r->mime, "sizeBytes",
                          size, "createTime", ct, "updateTime", ut, "expirationTime", et, "sha256Hash", shab64, "uri",
                          uri, "state", "ACTIVE", "source", "UPLOADED");
    if (j && r->display_name) json_object_set_new(j, "displayName", json_string(r->display_name));
    return j;
}

/* ---- blobs ---------------------------------------------------------------- */

/* Remove the blob when no file refers to it any more. */
static void blob_release(cst_files *f, const char *sha) {
    if (!sha || strlen(sha) != 64) return;
    pthread_mutex_lock(&f->mu);
    int64_t n = 1;
    if (cst_store_blob_refs(f->srv->store, sha, &n) == CST_OK && n == 0) {
        char p[4300];
        blob_path(f, sha, p, sizeof p);
        if (unlink(p) == 0) cst_debug("files: removed blob %s", sha);
    }
    pthread_mutex_unlock(&f->mu);
}

/* ---- sessions ---------------------------------------------------------------- */

static void sess_free(upsess *u) {
    if (u->fd >= 0) close(u->fd);
    if (u->path[0]) unlink(u->path);
    free(u->display_name);
    free(u);
}

/* Under f->mu. */
static upsess *sess_find(cst_files *f, const char *id) {
    for (upsess *u = f->sessions; u; u = u->next)
        if (!u->dead && !strcmp(u->id, id)) return u;
    return NULL;
}

/* Under f->mu: unlink from the list and free (or mark dead while busy). */
static void sess_kill(cst_files *f, upsess *u) {
    u->dead = true;
    if (u->busy) return;
    for (upsess **pp = &f->sessions; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    sess_free(u);
}

/* ---- quota ------------------------------------------------------------------ */

bool cst_files_quota_exceeded(uint64_t quota, uint64_t held, uint64_t reserved, uint64_t declared) {
    if (quota == UINT64_MAX) return false; /* unlimited */
    /* held + reserved + declared > quota, without overflow */
    if (held > quota) return true;
    uint64_t left = quota - held;
    if (reserved > left) return true;
    return declared > left - reserved;
}

/* Under f->mu: what owner uses now: bytes of its live files (held), declared
 * lengths of its open upload sessions (reserved), and when its earliest live
 * file expires (0: none). */
static cst_status quota_usage(cst_files *f, const char *owner, uint64_t *held, uint64_t *reserved,
                              int64_t *next_expiry) {
    *reserved = 0;
    for (upsess *u = f->sessions; u; u = u->next)
        if (!u->dead && !strcmp(u->owner, owner)) *reserved += u->declared;
    int64_t bytes = 0;
    cst_status st = cst_store_file_usage(f->srv->store, owner, now_s(), &bytes, next_expiry);
    *held = bytes > 0 ? (uint64_t)bytes : 0;
    return st;
}

/* Under f->mu: true when declared more bytes fit in owner's quota; else
 * answers 429 RESOURCE_EXHAUSTED (or 500 on a store failure) into *ret.
 * Retry-After: until the owner's earliest file expires (that frees bytes),
 * else the upload session timeout (in-progress uploads), else 1 s. */
static bool quota_admit(cst_server *s, struct MHD_Connection *c, const char *owner, uint64_t declared,
                        enum MHD_Result *ret) {
    cst_files *f = s->files;
    if (f->quota == UINT64_MAX) return true;
    uint64_t held = 0, reserved = 0;
    int64_t next = 0;
    if (quota_usage(f, owner, &held, &reserved, &next)) {
        *ret = ferr(c, "final", E_INTERNAL, "store: %s", s->store->err);
        return false;
    }
    if (!cst_files_quota_exceeded(f->quota, held, reserved, declared)) return true;
    int64_t wait = next > now_s() ? next - now_s() : reserved ? (int64_t)(f->session_ttl_s + 0.999) : 1;
    *ret = ferr_retry(c, "final", E_EXHAUSTED, wait,
                      "file quota exceeded: this API key holds %llu bytes in files and %llu bytes in uploads in "
                      "progress; %llu more would exceed the quota of %llu bytes per key (delete files or wait for "
                      "them to expire)",
                      (unsigned long long)held, (unsigned long long)reserved, (unsigned long long)declared,
                      (unsigned long long)f->quota);
    cst_info("files: upload of %llu bytes refused: quota of %llu bytes (%llu held, %llu reserved)",
             (unsigned long long)declared, (unsigned long long)f->quota, (unsigned long long)held,
             (unsigned long long)reserved);
    return false;
}

/* ---- connection hooks --------------------------------------------------------- */

static const char *strip_version(const char *p) {
    static const char *vs[] = {"v1beta/", "v1alpha/", "v1/"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(vs[i]);
        if (!strncmp(p, vs[i], n)) return p + n;
    }
    return NULL;
}

static const char *unprefix(cst_server *s, const char *url) {
    size_t pl = strlen(s->prefix);
    if (pl && !strncmp(url, s->prefix, pl) && (url[pl] == '/' || !url[pl])) return url + pl;
    return url;
}

static bool is_upload_path(const char *path) {
    if (strncmp(path, "/upload/", 8)) return false;
    const char *r = strip_version(path + 8);
    return r && !strcmp(r, "files");
}

static bool parse_u64(const char *v, uint64_t *out) {
    if (!v || !*v) return false;
    uint64_t x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        if (x > (UINT64_MAX - 9) / 10) return false;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    *out = x;
    return true;
}

void cst_files_conn_begin(cst_server *s, struct MHD_Connection *c, conn *cs, const char *url, const char *method) {
    cst_files *f = s->files;
    if (!f || strcmp(method, "POST") || !is_upload_path(unprefix(s, url))) return;
    const char *uid = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "upload_id");
    if (!uid) return;
    upconn *uc = calloc(1, sizeof *uc);
    if (!uc) return;
    cs->upload = uc;
    const char *off = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Goog-Upload-Offset");
    bool has_off = parse_u64(off, &uc->offset_hdr);
    pthread_mutex_lock(&f->mu);
    upsess *u = sess_find(f, uid);
    if (!u) uc->err = UP_NOSESS;
    else if (u->busy) uc->err = UP_BUSY;
    else {
        uc->sess = u;
        u->busy = true;
        u->last = cst_time_now();
        uc->start_off = u->received;
        if (has_off && uc->offset_hdr != u->received) uc->err = UP_OFFSET;
        else if (!has_off) uc->offset_hdr = u->received; /* curl users may omit it */
    }
    pthread_mutex_unlock(&f->mu);
}

void cst_files_conn_data(cst_server *s, conn *cs, const char *data, size_t n) {
    upconn *uc = cs->upload;
    cst_files *f = s->files;
    if (!uc || uc->err || !uc->sess) return;
    upsess *u = uc->sess;
    uint64_t end = uc->start_off + uc->got + n;
    if (end > f->max_size) {
        uc->err = UP_OVER_MAX;
        return;
    }
    if (end > u->declared) {
        uc->err = UP_OVER_DECL;
        return;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t k = pwrite(u->fd, data + done, n - done, (off_t)(uc->start_off + uc->got + done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            cst_warn("files: writing %s: %s", u->path, strerror(errno));
            uc->err = UP_IO;
            return;
        }
        done += (size_t)k;
    }
    uc->got += n;
}

void cst_files_conn_end(cst_server *s, conn *cs) {
    upconn *uc = cs->upload;
    if (!uc) return;
    cs->upload = NULL;
    cst_files *f = s->files;
    if (uc->sess && f) {
        pthread_mutex_lock(&f->mu);
        upsess *u = uc->sess;
        if (!uc->committed && !u->dead && u->fd >= 0) {
            /* an interrupted or refused chunk leaves nothing behind */
            if (ftruncate(u->fd, (off_t)u->received) != 0) cst_warn("files: truncate %s: %s", u->path, strerror(errno));
        }
        u->busy = false;
        u->last = cst_time_now();
        if (u->dead) sess_kill(f, u);
        pthread_mutex_unlock(&f->mu);
    }
    free(uc);
}

/* ---- upload: start ---------------------------------------------------------- */

static const char *hdr(struct MHD_Connection *c, const char *k) {
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, k);
}

static enum MHD_Result upload_start(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner,
                                    const char *path) {
    cst_files *f = s->files;
    const char *proto = hdr(c, "X-Goog-Upload-Protocol");
    const char *cmd = hdr(c, "X-Goog-Upload-Command");
    if (!proto || strcasecmp(proto, "resumable"))
        return ferr(c, "final", E_INVALID,
                    "X-Goog-Upload-Protocol: expected 'resumable', got '%s' (only resumable uploads are supported)",
                    proto ? proto : "");
    if (!cmd || strcasecmp(cmd, "start"))
        return ferr(c, "final", E_INVALID, "X-Goog-Upload-Command: expected 'start' without an upload_id, got '%s'",
                    cmd ? cmd : "");
    if (cs->too_large)
        return ferr(c, "final", E_TOO_LARGE, "the request body is larger than the server limit of %zu bytes",
                    s->p.max_body);
    /* body: {"file": {...}} (optional) */
    json_t *body = NULL, *file = NULL;
    if (cs->len) {
        json_error_t je;
        body = json_loadb(cs->body, cs->len, 0, &je);
        if (!json_is_object(body)) {
            json_decref(body);
            return ferr(c, "final", E_INVALID, "the request body must be a JSON object {\"file\": {...}}");
        }
        file = json_object_get(body, "file");
        if (file && !json_is_null(file) && !json_is_object(file)) {
            json_decref(body);
            return ferr(c, "final", E_INVALID, "file: expected an object");
        }
    }
    enum MHD_Result ret;
    const char *len_h = hdr(c, "X-Goog-Upload-Header-Content-Length");
    const char *mime = hdr(c, "X-Goog-Upload-Header-Content-Type");
    json_t *jsize = json_is_object(file) ? json_object_get(file, "sizeBytes") : NULL;
    json_t *jmime = json_is_object(file) ? json_object_get(file, "mimeType") : NULL;
    json_t *jname = json_is_object(file) ? json_object_get(file, "name") : NULL;
    json_t *jdisp = json_is_object(file) ? json_object_get(file, "displayName") : NULL;
    uint64_t declared = 0;
    char sizebuf[32] = "";
    if (!len_h && json_is_string(jsize)) len_h = json_string_value(jsize);
    if (!len_h && json_is_integer(jsize)) {
        snprintf(sizebuf, sizeof sizebuf, "%lld", (long long)json_integer_value(jsize));
        len_h = sizebuf;
    }
    if (!len_h) {
        ret = ferr(c, "final", E_INVALID, "X-Goog-Upload-Header-Content-Length: required (the file's size in bytes)");
        goto out;
    }
    if (!parse_u64(len_h, &declared) || declared == 0) {
        ret = ferr(c, "final", E_INVALID, "X-Goog-Upload-Header-Content-Length: expected a positive integer, got '%s'",
                   len_h);
        goto out;
    }
    if (declared > f->max_size) {
        ret = ferr(c, "final", E_TOO_LARGE, "the file is %llu bytes, over this server's limit of %llu bytes per file",
                   (unsigned long long)declared, (unsigned long long)f->max_size);
        goto out;
    }
    if (!mime && json_is_string(jmime)) mime = json_string_value(jmime);
    if (!mime || !*mime) {
        ret = ferr(c, "final", E_INVALID, "X-Goog-Upload-Header-Content-Type: required (the file's MIME type)");
        goto out;
    }
    if (!mime_syntax_ok(mime)) {
        ret = ferr(c, "final", E_INVALID, "X-Goog-Upload-Header-Content-Type: '%s' is not a MIME type (type/subtype)",
                   mime);
        goto out;
    }
    /* any type is stored (§10.1); whether a model can read it is decided
     * when an interaction uses the file (files_media.c, files_docs.c) */
    /* quota (§10.1: checked here, in the spec's order, and again atomically
     * when the session is registered below) */
    pthread_mutex_lock(&f->mu);
    bool admit = quota_admit(s, c, owner, declared, &ret);
    pthread_mutex_unlock(&f->mu);
    if (!admit) goto out;
    char file_id[48] = "";
    bool named = false;
    if (jname && !json_is_null(jname)) {
        if (!json_is_string(jname)) {
            ret = ferr(c, "final", E_INVALID, "file.name: expected a string");
            goto out;
        }
        const char *n = json_string_value(jname);
        if (!strncmp(n, "files/", 6)) n += 6;
        if (!cst_files_valid_id(n)) {
            ret = ferr(c, "final", E_INVALID, "file.name: '%s' is not a valid file name (files/ + 1-40 of [a-z0-9])",
                       json_string_value(jname));
            goto out;
        }
        snprintf(file_id, sizeof file_id, "%s", n);
        named = true;
        cst_frec ex;
        cst_status st = cst_store_file_get(s->store, owner, file_id, &ex);
        bool live = st == CST_OK && ex.expires > now_s();
        cst_frec_clear(&ex);
        if (live) {
            ret = ferr(c, "final", E_CONFLICT_409, "file 'files/%s' already exists", file_id);
            goto out;
        }
    } else {
        rand_id(file_id, 16, "abcdefghijklmnopqrstuvwxyz0123456789", 36);
    }
    const char *disp = NULL;
    if (jdisp && !json_is_null(jdisp)) {
        if (!json_is_string(jdisp)) {
            ret = ferr(c, "final", E_INVALID, "file.displayName: expected a string");
            goto out;
        }
        if (json_string_length(jdisp) > 512) {
            ret = ferr(c, "final", E_INVALID, "file.displayName: longer than 512 characters");
            goto out;
        }
        disp = json_string_value(jdisp);
    }
    upsess *u = calloc(1, sizeof *u);
    if (!u) {
        ret = MHD_NO;
        goto out;
    }
    u->fd = -1;
    rand_id(u->id, 32, "0123456789abcdef", 16);
    memcpy(u->owner, owner, 65);
    snprintf(u->file_id, sizeof u->file_id, "%s", file_id);
    u->named = named;
    u->display_name = disp ? strdup(disp) : NULL;
    snprintf(u->mime, sizeof u->mime, "%s", mime);
    for (char *p = u->mime; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    u->declared = declared;
    u->last = cst_time_now();
    snprintf(u->path, sizeof u->path, "%s/%s", f->tmp, u->id);
    u->fd = open(u->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (u->fd < 0) {
        cst_warn("files: cannot create %s: %s", u->path, strerror(errno));
        u->path[0] = 0;
        sess_free(u);
        ret = ferr(c, "final", E_INTERNAL, "cannot create the upload session");
        goto out;
    }
    pthread_mutex_lock(&f->mu);
    /* a concurrent start of the same key may have reserved bytes meanwhile */
    if (!quota_admit(s, c, owner, declared, &ret)) {
        pthread_mutex_unlock(&f->mu);
        sess_free(u);
        goto out;
    }
    u->next = f->sessions;
    f->sessions = u;
    pthread_mutex_unlock(&f->mu);
    char base[1024], url[1200];
    public_base(s, c, base, sizeof base);
    snprintf(url, sizeof url, "%s%s?upload_id=%s&upload_protocol=resumable", base, path, u->id);
    cst_debug("files: upload session %s for files/%s (%llu bytes, %s)", u->id, u->file_id,
              (unsigned long long)declared, u->mime);
    char *empty = strdup("");
    ret = empty ? queue(c, 200, empty, NULL, "active", url) : MHD_NO;
out:
    json_decref(body);
    return ret;
}

/* ---- upload: chunks / finalize -------------------------------------------------- */

typedef struct {
    bool upload, finalize, query, cancel;
    bool bad;
} upcmd;

static upcmd parse_cmd(const char *v) {
    upcmd r = {0};
    if (!v || !*v) {
        r.bad = true;
        return r;
    }
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        size_t n = strcspn(p, ", ");
        if (!n) break;
        if (n == 6 && !strncasecmp(p, "upload", 6)) r.upload = true;
        else if (n == 8 && !strncasecmp(p, "finalize", 8)) r.finalize = true;
        else if (n == 5 && !strncasecmp(p, "query", 5)) r.query = true;
        else if (n == 6 && !strncasecmp(p, "cancel", 6)) r.cancel = true;
        else r.bad = true;
        p += n;
    }
    if (!r.upload && !r.finalize && !r.query && !r.cancel) r.bad = true;
    return r;
}

/* Hash, type-check and store the completed upload u (not busy for others:
 * the caller's chunk holds it). On success fills rec. */
static enum MHD_Result finalize(cst_server *s, struct MHD_Connection *c, upsess *u) {
    cst_files *f = s->files;
    size_t len = (size_t)u->received;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, u->fd, 0);
    if (map == MAP_FAILED) {
        cst_warn("files: mmap %s: %s", u->path, strerror(errno));
        return ferr(c, "final", E_INTERNAL, "cannot read the uploaded bytes");
    }
    char sha[65];
    cst_sha256_hex(map, len, sha);
    /* a declared image type must be that image (it would fail at every use);
     * other types are kept as they are */
    const bool image = mime_supported(u->mime);
    const char *sniffed = image ? cst_image_sniff_mime(map, len) : NULL;
    int w = 0, h = 0;
    char perr[256] = "";
    cst_status pst = sniffed ? cst_image_probe(map, len, NULL, &w, &h, perr, sizeof perr) : CST_ERR_UNSUPPORTED;
    munmap(map, len);
    if (!image) pst = CST_OK;
    else if (!sniffed || strcmp(sniffed, u->mime))
        return ferr(c, "final", E_INVALID, "the uploaded bytes are %s, but the declared mimeType is '%s'",
                    sniffed ? sniffed : "not an image of a supported type", u->mime);
    if (pst) return ferr(c, "final", E_INVALID, "the uploaded %s is not a valid image: %s", u->mime, perr);
    /* content-addressed blob: move the temp file there (or drop it when the
     * same bytes are already stored), then record the file; both under mu so
     * that a concurrent delete cannot remove the blob in between */
    char bp[4300], dir[4300];
    blob_path(f, sha, bp, sizeof bp);
    snprintf(dir, sizeof dir, "%s/%.2s", f->blobs, sha);
    int64_t t = now_s();
    cst_frec rec = {.id = u->file_id, .owner = u->owner, .display_name = u->display_name, .mime = u->mime,
                    .size = (int64_t)len, .sha256 = sha, .created = t, .updated = t, .expires = t + f->ttl_s};
    pthread_mutex_lock(&f->mu);
    struct stat sb;
    bool have = stat(bp, &sb) == 0 && (uint64_t)sb.st_size == (uint64_t)len;
    if (!have) {
        if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || fsync(u->fd) != 0 || rename(u->path, bp) != 0) {
            cst_warn("files: storing blob %s: %s", bp, strerror(errno));
            pthread_mutex_unlock(&f->mu);
            return ferr(c, "final", E_INTERNAL, "cannot store the file");
        }
        u->path[0] = 0; /* renamed: nothing to unlink */
    }
    cst_status st = cst_store_file_put(s->store, &rec);
    pthread_mutex_unlock(&f->mu);
    if (st) {
        blob_release(f, sha);
        if (st == CST_ERR_CONFLICT) return ferr(c, "final", E_CONFLICT_409, "file 'files/%s' already exists", u->file_id);
        return ferr(c, "final", E_INTERNAL, "store: %s", s->store->err);
    }
    if (image)
        cst_info("files: stored files/%s (%zu bytes, %s %dx%d, sha256 %.12s...)", u->file_id, len, u->mime, w, h, sha);
    else cst_info("files: stored files/%s (%zu bytes, %s, sha256 %.12s...)", u->file_id, len, u->mime, sha);
    rec.seq = 0;
    json_t *fj = file_json(s, c, &rec);
    return fjson(c, json_pack("{s:o}", "file", fj), "final");
}

static enum MHD_Result upload_chunk(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner) {
    cst_files *f = s->files;
    upconn *uc = cs->upload;
    if (!uc || uc->err == UP_NOSESS || !uc->sess)
        return ferr(c, "final", E_NOT_FOUND, "upload session not found (unknown or expired)");
    upsess *u = uc->sess;
    if (strcmp(u->owner, owner)) return ferr(c, "final", E_NOT_FOUND, "upload session not found (unknown or expired)");
    if (uc->err == UP_BUSY)
        return ferr(c, "active", E_INVALID, "another chunk of this upload is still being received");
    enum MHD_Result ret;
    upcmd cmd = parse_cmd(hdr(c, "X-Goog-Upload-Command"));
    if (cmd.bad)
        return ferr(c, "active", E_INVALID,
                    "X-Goog-Upload-Command: expected 'upload', 'upload, finalize', 'finalize', 'query' or 'cancel', "
                    "got '%s'",
                    hdr(c, "X-Goog-Upload-Command") ? hdr(c, "X-Goog-Upload-Command") : "");
    if (cmd.cancel) {
        pthread_mutex_lock(&f->mu);
        sess_kill(f, u);
        pthread_mutex_unlock(&f->mu);
        char *e = strdup("");
        return e ? queue(c, 200, e, NULL, "cancelled", NULL) : MHD_NO;
    }
    if (cmd.query) {
        char *e = strdup("");
        if (!e) return MHD_NO;
        struct MHD_Response *r = MHD_create_response_from_buffer(0, e, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(e);
            return MHD_NO;
        }
        char rcv[32];
        snprintf(rcv, sizeof rcv, "%llu", (unsigned long long)u->received);
        MHD_add_response_header(r, "X-Goog-Upload-Status", "active");
        MHD_add_response_header(r, "X-Goog-Upload-Size-Received", rcv);
        cst_api_common_headers(r);
        ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (uc->err == UP_OFFSET)
        return ferr(c, "active", E_INVALID, "X-Goog-Upload-Offset: %llu does not match the %llu bytes received so far",
                    (unsigned long long)uc->offset_hdr, (unsigned long long)u->received);
    bool kill = false;
    if (uc->err == UP_OVER_MAX) {
        kill = true;
        ret = ferr(c, "final", E_TOO_LARGE, "the upload exceeds this server's limit of %llu bytes per file",
                   (unsigned long long)f->max_size);
    } else if (uc->err == UP_OVER_DECL) {
        kill = true;
        ret = ferr(c, "final", E_INVALID, "the upload sent more than the %llu bytes declared at start",
                   (unsigned long long)u->declared);
    } else if (uc->err == UP_IO) {
        kill = true;
        ret = ferr(c, "final", E_INTERNAL, "cannot write the uploaded bytes");
    } else if (uc->got && !cmd.upload) {
        ret = ferr(c, "active", E_INVALID, "X-Goog-Upload-Command: bytes were sent without 'upload'");
    } else {
        uint64_t total = uc->start_off + uc->got;
        if (!cmd.finalize) {
            uc->committed = true;
            u->received = total;
            char *e = strdup("");
            return e ? queue(c, 200, e, NULL, "active", NULL) : MHD_NO;
        }
        if (total != u->declared) {
            kill = true;
            ret = ferr(c, "final", E_INVALID, "finalize after %llu bytes, but %llu were declared at start",
                       (unsigned long long)total, (unsigned long long)u->declared);
        } else {
            uc->committed = true;
            u->received = total;
            ret = finalize(s, c, u);
            kill = true; /* stored or refused: the session is over either way */
        }
    }
    if (kill) {
        pthread_mutex_lock(&f->mu);
        sess_kill(f, u); /* freed at conn_end (busy) */
        pthread_mutex_unlock(&f->mu);
    }
    return ret;
}

/* ---- get / list / delete / download ------------------------------------------- */

static cst_status get_live(cst_server *s, const char *owner, const char *id, cst_frec *r) {
    cst_status st = cst_store_file_get(s->store, owner, id, r);
    if (st == CST_OK && r->expires <= now_s()) {
        cst_frec_clear(r);
        return CST_ERR_NOT_FOUND;
    }
    return st;
}

static enum MHD_Result file_get(cst_server *s, struct MHD_Connection *c, const char *owner, const char *id) {
    cst_frec r;
    cst_status st = get_live(s, owner, id, &r);
    if (st == CST_ERR_NOT_FOUND) return ferr(c, NULL, E_NOT_FOUND, "file 'files/%s' not found", id);
    if (st) return ferr(c, NULL, E_INTERNAL, "store: %s", s->store->err);
    json_t *j = file_json(s, c, &r);
    cst_frec_clear(&r);
    return fjson(c, j, NULL);
}

static enum MHD_Result file_download(cst_server *s, struct MHD_Connection *c, const char *owner, const char *id) {
    cst_frec r;
    cst_status st = get_live(s, owner, id, &r);
    if (st == CST_ERR_NOT_FOUND) return ferr(c, NULL, E_NOT_FOUND, "file 'files/%s' not found", id);
    if (st) return ferr(c, NULL, E_INTERNAL, "store: %s", s->store->err);
    char bp[4300];
    blob_path(s->files, r.sha256, bp, sizeof bp);
    int fd = open(bp, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size != r.size) {
        if (fd >= 0) close(fd);
        cst_warn("files: blob of files/%s missing (%s)", id, bp);
        cst_frec_clear(&r);
        return ferr(c, NULL, E_INTERNAL, "the file's content is missing");
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
    if (!resp) {
        close(fd);
        cst_frec_clear(&r);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", r.mime);
    cst_api_common_headers(resp);
    enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    cst_frec_clear(&r);
    return ret;
}

static enum MHD_Result file_list(cst_server *s, struct MHD_Connection *c, const char *owner) {
    const char *ps = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "pageSize");
    const char *pt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "pageToken");
    uint64_t size = 10;
    if (ps && *ps && (!parse_u64(ps, &size) || size == 0))
        return ferr(c, NULL, E_INVALID, "pageSize: expected a positive integer, got '%s'", ps);
    if (size > 100) size = 100;
    int64_t before = 0;
    if (pt && *pt) {
        uint64_t v;
        if (pt[0] != 'p' || !parse_u64(pt + 1, &v) || v == 0 || v > INT64_MAX)
            return ferr(c, NULL, E_INVALID, "pageToken: '%s' is not a token this server issued", pt);
        before = (int64_t)v;
    }
    cst_frec *v = NULL;
    size_t n = 0;
    /* one more than asked tells whether a next page exists */
    cst_status st = cst_store_file_list(s->store, owner, now_s(), before, (size_t)size + 1, &v, &n);
    if (st) return ferr(c, NULL, E_INTERNAL, "store: %s", s->store->err);
    json_t *arr = json_array();
    size_t shown = CST_MIN(n, (size_t)size);
    for (size_t i = 0; i < shown; i++) json_array_append_new(arr, file_json(s, c, &v[i]));
    json_t *j = json_object();
    json_object_set_new(j, "files", arr);
    if (n > shown) { /* on the last page the token is omitted entirely */
        char tok[32];
        snprintf(tok, sizeof tok, "p%lld", (long long)v[shown - 1].seq);
        json_object_set_new(j, "nextPageToken", json_string(tok));
    }
    cst_frec_free_list(v, n);
    return fjson(c, j, NULL);
}

static enum MHD_Result file_delete(cst_server *s, struct MHD_Connection *c, const char *owner, const char *id) {
    cst_frec r;
    cst_status st = get_live(s, owner, id, &r);
    cst_frec_clear(&r);
    if (st == CST_ERR_NOT_FOUND) return ferr(c, NULL, E_NOT_FOUND, "file 'files/%s' not found", id);
    if (st) return ferr(c, NULL, E_INTERNAL, "store: %s", s->store->err);
    char sha[65] = "";
    st = cst_store_file_del(s->store, owner, id, sha);
    if (st == CST_ERR_NOT_FOUND) return ferr(c, NULL, E_NOT_FOUND, "file 'files/%s' not found", id);
    if (st) return ferr(c, NULL, E_INTERNAL, "store: %s", s->store->err);
    blob_release(s->files, sha);
    cst_info("files: deleted files/%s", id);
    return fjson(c, json_object(), NULL);
}

bool cst_files_dispatch(cst_server *s, struct MHD_Connection *c, conn *cs, const char *path, const char *method,
                        enum MHD_Result *ret) {
    char owner[65];
    if (!s->files) return false;
    if (is_upload_path(path)) {
        if (strcmp(method, "POST")) {
            *ret = ferr(c, NULL, E_NOT_FOUND, "no route for %s %s", method, path);
            return true;
        }
        if (!cst_api_auth(s, c, owner, ret)) return true;
        if (cs->upload || MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "upload_id"))
            *ret = upload_chunk(s, c, cs, owner);
        else *ret = upload_start(s, c, cs, owner, path);
        return true;
    }
    if (path[0] != '/') return false;
    const char *rest = strip_version(path + 1);
    if (!rest || strncmp(rest, "files", 5) || (rest[5] && rest[5] != '/')) return false;
    if (!rest[5]) {
        if (strcmp(method, "GET")) *ret = ferr(c, NULL, E_NOT_FOUND, "no route for %s %s", method, path);
        else if (cst_api_auth(s, c, owner, ret)) *ret = file_list(s, c, owner);
        return true;
    }
    char id[64];
    const char *p = rest + 6;
    size_t n = strcspn(p, "/:");
    const char *tail = p + n;
    if (n == 0 || n >= 48) {
        *ret = ferr(c, NULL, E_NOT_FOUND, "file not found");
        return true;
    }
    memcpy(id, p, n);
    id[n] = 0;
    if (!cst_api_auth(s, c, owner, ret)) return true;
    if (!cst_files_valid_id(id)) {
        *ret = ferr(c, NULL, E_NOT_FOUND, "file 'files/%s' not found", id);
        return true;
    }
    if (!strcmp(tail, ":download") && !strcmp(method, "GET")) *ret = file_download(s, c, owner, id);
    else if (*tail) *ret = ferr(c, NULL, E_NOT_FOUND, "no route for %s %s", method, path);
    else if (!strcmp(method, "GET")) *ret = file_get(s, c, owner, id);
    else if (!strcmp(method, "DELETE")) *ret = file_delete(s, c, owner, id);
    else *ret = ferr(c, NULL, E_NOT_FOUND, "no route for %s %s", method, path);
    return true;
}

/* ---- janitor -------------------------------------------------------------------- */

static void sweep(cst_files *f) {
    /* expired files, then their blobs */
    for (;;) {
        cst_frec *v = NULL;
        size_t n = 0;
        if (cst_store_file_expired(f->srv->store, now_s(), 256, &v, &n) || n == 0) {
            cst_frec_free_list(v, n);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            char sha[65] = "";
            if (cst_store_file_del(f->srv->store, v[i].owner, v[i].id, sha) == CST_OK) {
                cst_info("files: files/%s expired", v[i].id);
                blob_release(f, sha);
            }
        }
        cst_frec_free_list(v, n);
        if (n < 256) break;
    }
    /* idle upload sessions */
    double t = cst_time_now();
    pthread_mutex_lock(&f->mu);
    for (upsess **pp = &f->sessions; *pp;) {
        upsess *u = *pp;
        if (!u->busy && (u->dead || t - u->last > f->session_ttl_s)) {
            *pp = u->next;
            cst_info("files: upload session %s abandoned (files/%s); removed", u->id, u->file_id);
            sess_free(u);
            continue;
        }
        pp = &u->next;
    }
    pthread_mutex_unlock(&f->mu);
}

static void *janitor_main(void *arg) {
    cst_files *f = arg;
    double period = CST_MIN((double)f->ttl_s, f->session_ttl_s) / 4;
    period = CST_MAX(0.25, CST_MIN(60.0, period));
    pthread_mutex_lock(&f->stop_mu);
    while (!f->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        double s = (double)dl.tv_sec + dl.tv_nsec * 1e-9 + period;
        dl.tv_sec = (time_t)s;
        dl.tv_nsec = (long)((s - (double)dl.tv_sec) * 1e9);
        pthread_cond_timedwait(&f->stop_cv, &f->stop_mu, &dl);
        if (f->stop) break;
        pthread_mutex_unlock(&f->stop_mu);
        sweep(f);
        pthread_mutex_lock(&f->stop_mu);
    }
    pthread_mutex_unlock(&f->stop_mu);
    return NULL;
}

/* Remove leftovers: temp files of sessions that died with the process, blobs
 * that no file refers to (a crash between rename and insert). */
static void startup_gc(cst_files *f) {
    DIR *d = opendir(f->tmp);
    struct dirent *e;
    size_t n_tmp = 0, n_blob = 0;
    if (d) {
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", f->tmp, e->d_name);
            if (unlink(p) == 0) n_tmp++;
        }
        closedir(d);
    }
    d = opendir(f->blobs);
    if (d) {
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char sub[4400];
            snprintf(sub, sizeof sub, "%s/%s", f->blobs, e->d_name);
            DIR *d2 = opendir(sub);
            if (!d2) continue;
            struct dirent *e2;
            while ((e2 = readdir(d2))) {
                if (e2->d_name[0] == '.') continue;
                int64_t refs = 1;
                if (strlen(e2->d_name) == 64 && cst_store_blob_refs(f->srv->store, e2->d_name, &refs) == CST_OK &&
                    refs == 0) {
                    char p[4700];
                    snprintf(p, sizeof p, "%s/%s", sub, e2->d_name);
                    if (unlink(p) == 0) n_blob++;
                }
            }
            closedir(d2);
        }
        closedir(d);
    }
    if (n_tmp || n_blob)
        cst_info("files: removed %zu interrupted upload(s) and %zu unreferenced blob(s)", n_tmp, n_blob);
}

static bool mkdir_p(const char *p, char *err, size_t errlen) {
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        cst_errf(err, errlen, "cannot create %s: %s", p, strerror(errno));
        return false;
    }
    return true;
}

cst_status cst_files_open(cst_server *s, char *err, size_t errlen) {
    cst_files *f = calloc(1, sizeof *f);
    if (!f) return CST_ERR_NOMEM;
    f->srv = s;
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->stop_mu, NULL);
    pthread_cond_init(&f->stop_cv, NULL);
    f->max_size = s->p.max_file_size ? s->p.max_file_size : (2ull << 30);
    f->quota = s->p.file_quota ? s->p.file_quota : (20ull << 30);
    f->ttl_s = s->p.file_ttl_s > 0 ? s->p.file_ttl_s : 48 * 3600;
    f->session_ttl_s = s->p.upload_timeout_s > 0 ? s->p.upload_timeout_s : 3600;
    const char *dd = s->p.data_dir ? s->p.data_dir : "data";
    if (strlen(dd) > 3900) {
        cst_errf(err, errlen, "--data-dir: path too long");
        cst_files_close(f);
        return CST_ERR_INVALID_ARG;
    }
    snprintf(f->root, sizeof f->root, "%s/files", dd);
    snprintf(f->blobs, sizeof f->blobs, "%s/blobs", f->root);
    snprintf(f->tmp, sizeof f->tmp, "%s/tmp", f->root);
    if (!mkdir_p(dd, err, errlen) || !mkdir_p(f->root, err, errlen) || !mkdir_p(f->blobs, err, errlen) ||
        !mkdir_p(f->tmp, err, errlen)) {
        cst_files_close(f);
        return CST_ERR_IO;
    }
    s->files = f;
    startup_gc(f);
    sweep(f);
    if (pthread_create(&f->janitor, NULL, janitor_main, f) != 0) {
        s->files = NULL;
        cst_files_close(f);
        cst_errf(err, errlen, "cannot start the files janitor thread");
        return CST_ERR_NOMEM;
    }
    f->janitor_started = true;
    return CST_OK;
}

void cst_files_close(cst_files *f) {
    if (!f) return;
    if (f->janitor_started) {
        pthread_mutex_lock(&f->stop_mu);
        f->stop = true;
        pthread_cond_broadcast(&f->stop_cv);
        pthread_mutex_unlock(&f->stop_mu);
        pthread_join(f->janitor, NULL);
    }
    for (upsess *u = f->sessions; u;) {
        upsess *n = u->next;
        sess_free(u);
        u = n;
    }
    pthread_mutex_destroy(&f->mu);
    pthread_mutex_destroy(&f->stop_mu);
    pthread_cond_destroy(&f->stop_cv);
    free(f);
}
