/* castor.h: the public C API of Castor.
 *
 * Status codes are shared by every layer. The list only grows at the end and
 * is never renumbered (curl's CURLcode rule). Everything else public lives in
 * the per-module headers until the API settles.
 */
#ifndef CASTOR_H
#define CASTOR_H

#include <stddef.h>
#include <stdint.h>

#define CST_VERSION "0.1.0"

typedef enum cst_status {
    CST_OK = 0,
    CST_ERR_NOMEM = 1,        /* an allocation failed */
    CST_ERR_IO = 2,           /* open/read/write/mmap failed */
    CST_ERR_BAD_FORMAT = 3,   /* malformed input file or data */
    CST_ERR_UNSUPPORTED = 4,  /* valid but not supported (arch, type, template construct) */
    CST_ERR_INVALID_ARG = 5,  /* caller passed something out of range */
    CST_ERR_CTX_FULL = 6,     /* the context / KV cache has no room */
    CST_ERR_CANCELLED = 7,    /* the operation was cancelled */
    CST_ERR_BUSY = 8,         /* queue full, try later */
    CST_ERR_NOT_FOUND = 9,    /* no such thing */
    CST_ERR_CONFLICT = 10,    /* state does not allow this now */
    CST_ERR_STORE = 11,       /* the persistent store failed */
    CST_ERR_INTERNAL = 12,    /* a bug: an invariant did not hold */
    CST_STATUS_LAST           /* sentinel, keep last */
} cst_status;

/* Name of a status code ("CST_ERR_NOMEM"); never NULL. */
const char *cst_status_str(cst_status st);

#endif
