/* core.h: small helpers every layer may use: status strings, checked
 * allocation, error-message formatting, logging, wall-clock time.
 * Depends on nothing but libc.
 */
#ifndef CST_CORE_H
#define CST_CORE_H

#include "castor.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CST_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CST_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CST_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Invariants of our own code only; never for validating input. */
#define CST_ASSERT(x)                                                         \
    do {                                                                      \
        if (!(x)) cst_panic(__FILE__, __LINE__, #x);                          \
    } while (0)

_Noreturn void cst_panic(const char *file, int line, const char *what);

/* Error message buffer kept on handles (sqlite's errmsg idea). */
#define CST_ERRMSG_LEN 256
void cst_errf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* cst_errf, then false: for validators that stop at their first error */
bool cst_fail(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Logging to stderr. Level from CST_LOG=debug|info|warn|error (default info). */
enum { CST_LOG_DEBUG, CST_LOG_INFO, CST_LOG_WARN, CST_LOG_ERROR };
void cst_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define cst_debug(...) cst_log(CST_LOG_DEBUG, __VA_ARGS__)
#define cst_info(...) cst_log(CST_LOG_INFO, __VA_ARGS__)
#define cst_warn(...) cst_log(CST_LOG_WARN, __VA_ARGS__)
#define cst_error(...) cst_log(CST_LOG_ERROR, __VA_ARGS__)

/* Aligned allocation (64-byte by default), freed with cst_free_aligned. */
void *cst_alloc_aligned(size_t size, size_t align);
void cst_free_aligned(void *p);

/* Seconds from a monotonic clock. */
double cst_time_now(void);
/* Unix seconds as RFC 3339 UTC text, "2026-12-02T06:51:26Z". */
void cst_time_rfc3339(int64_t unix_s, char out[32]);

/* Read a whole file into a malloc'd NUL-terminated buffer. */
cst_status cst_read_file(const char *path, char **out, size_t *out_len);

/* Growable byte string, NUL-terminated after every put (so an empty put
 * gives "" rather than NULL). A failed allocation sets oom, keeps what was
 * there and drops every later put: check oom before trusting the contents. */
typedef struct cst_buf {
    char *p;
    size_t len, cap;
    bool oom;
} cst_buf;
bool cst_buf_put(cst_buf *b, const void *s, size_t n);
void cst_buf_free(cst_buf *b); /* back to {0} */

/* Length (1 to 4) of the well-formed UTF-8 character starting u[0..n): no
 * overlong forms, surrogates or code points past U+10FFFF; 0 when ill-formed
 * or cut off by n. */
size_t cst_utf8_char_len(const unsigned char *u, size_t n);

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool cst_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool cst_add_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

#endif
