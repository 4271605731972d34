/* core.c: status strings, panic, logging, aligned allocation, clocks. */
#include "core.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static const char *const status_names[] = {
    "CST_OK",           "CST_ERR_NOMEM",     "CST_ERR_IO",       "CST_ERR_BAD_FORMAT",
    "CST_ERR_UNSUPPORTED", "CST_ERR_INVALID_ARG", "CST_ERR_CTX_FULL", "CST_ERR_CANCELLED",
    "CST_ERR_BUSY",     "CST_ERR_NOT_FOUND", "CST_ERR_CONFLICT", "CST_ERR_STORE",
    "CST_ERR_INTERNAL",
};
_Static_assert(CST_ARRAY_LEN(status_names) == CST_STATUS_LAST, "status_names out of date");

const char *cst_status_str(cst_status st) {
    if ((unsigned)st >= CST_STATUS_LAST) return "CST_ERR_UNKNOWN";
    return status_names[st];
}

_Noreturn void cst_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "castor: %s:%d: assertion failed: %s\n", file, line, what);
    abort();
}

void cst_errf(char *buf, size_t len, const char *fmt, ...) {
    if (!buf || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

bool cst_fail(char *buf, size_t len, const char *fmt, ...) {
    if (buf && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return false;
}

static int log_level = -1;

void cst_log(int level, const char *fmt, ...) {
    if (log_level < 0) {
        const char *e = getenv("CST_LOG");
        log_level = CST_LOG_INFO;
        if (e) {
            if (!strcmp(e, "debug")) log_level = CST_LOG_DEBUG;
            else if (!strcmp(e, "warn")) log_level = CST_LOG_WARN;
            else if (!strcmp(e, "error")) log_level = CST_LOG_ERROR;
        }
    }
    if (level < log_level) return;
    static const char *const tags[] = {"debug", "info", "warn", "error"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "castor %s: %s\n", tags[level], msg);
}

void *cst_alloc_aligned(size_t size, size_t align) {
    void *p = NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (size == 0) size = align;
    if (posix_memalign(&p, align, size) != 0) return NULL;
    return p;
}

void cst_free_aligned(void *p) { free(p); }

double cst_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cst_time_rfc3339(int64_t unix_s, char out[32]) {
    const time_t t = (time_t)unix_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(out, 32, "1970-01-01T00:00:00Z");
}

cst_status cst_read_file(const char *path, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return CST_ERR_IO;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return CST_ERR_NOMEM;
    }
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len < cap) break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            fclose(f);
            return CST_ERR_NOMEM;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return CST_ERR_IO;
    }
    buf[len] = 0;
    *out = buf;
    if (out_len) *out_len = len;
    return CST_OK;
}

bool cst_buf_put(cst_buf *b, const void *s, size_t n) {
    if (b->oom) return false;
    if (n > SIZE_MAX / 2 - b->len - 1) {
        b->oom = true;
        return false;
    }
    if (b->len + n + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 256) + n;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return false;
        }
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

void cst_buf_free(cst_buf *b) {
    free(b->p);
    *b = (cst_buf){0};
}

size_t cst_utf8_char_len(const unsigned char *u, size_t n) {
    if (n == 0) return 0;
    const unsigned c = u[0];
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    if (len == 1) return 1;
    uint32_t cp = len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t j = 1; j < len; j++) {
        if ((u[j] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (u[j] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}
