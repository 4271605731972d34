/* store.h: persistent state of the Interactions API behind one interface
 * (struct cst_store_ops), so that back-ends can be swapped: SQLite (WAL) now,
 * PostgreSQL later (--store postgres://...). The store sees only strings and
 * integers: JSON documents are opaque text produced and parsed by src/api.
 * Every record belongs to an owner (a hash of the API key); lookups with a
 * different owner behave as if the record did not exist.
 */
#ifndef CST_STORE_H
#define CST_STORE_H

#include "castor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One interaction. Strings are NUL-terminated; NULL means absent. */
typedef struct cst_irec {
    char *id;          /* "v1_..." */
    char *owner;       /* API-key hash ("local" without auth) */
    char *model;       /* as sent */
    char *status;      /* "in_progress", "completed", ... */
    int64_t created;   /* unix seconds */
    int64_t updated;
    char *previous_id; /* previous_interaction_id, or NULL */
    char *request;     /* JSON: the request fields echoed on get (system_instruction, generation_config, ...) */
    char *input;       /* JSON: input as sent (include_input=true) */
    char *history;     /* JSON array: conversation steps before this turn (chain + client-held context) */
    char *turn;        /* JSON array: this turn's user_input steps */
    char *outputs;     /* JSON array: output steps */
    char *usage;       /* JSON object or NULL */
    char *errors;      /* JSON array or NULL */
} cst_irec;

void cst_irec_clear(cst_irec *r); /* frees the strings, zeroes the struct */

/* One uploaded file (Files API). Strings are NUL-terminated; NULL means absent. */
typedef struct cst_frec {
    char *id;           /* "[a-z0-9]{1,40}" (the name without "files/") */
    char *owner;        /* API-key hash */
    char *display_name; /* or NULL */
    char *mime;         /* "image/png" */
    int64_t size;       /* bytes */
    char *sha256;       /* 64 lowercase hex: the content, and the blob's name */
    int64_t created;    /* unix seconds */
    int64_t updated;
    int64_t expires;
    int64_t seq;        /* listing order, assigned by the store (increasing) */
} cst_frec;

void cst_frec_clear(cst_frec *r); /* frees the strings, zeroes the struct */
void cst_frec_free_list(cst_frec *list, size_t n); /* clears each, frees the array; NULL ok */

/* Called for each stored event in order; return false to stop. */
typedef bool (*cst_store_event_fn)(void *ud, int64_t seq, const char *data);

typedef struct cst_store cst_store;

struct cst_store_ops {
    const char *name;
    /* Insert or replace the record (keyed by id). */
    cst_status (*put)(cst_store *s, const cst_irec *r);
    /* Fill *out (caller clears it) for (owner, id). CST_ERR_NOT_FOUND if absent or another owner's. */
    cst_status (*get)(cst_store *s, const char *owner, const char *id, cst_irec *out);
    /* Remove the record and its events. CST_ERR_NOT_FOUND if absent. */
    cst_status (*del)(cst_store *s, const char *owner, const char *id);
    /* Append events (seq ascending) in one transaction. */
    cst_status (*put_events)(cst_store *s, const char *id, int64_t first_seq, const char *const *data, size_t n);
    /* Call fn for each event of id with seq > after, ascending. */
    cst_status (*events)(cst_store *s, const char *id, int64_t after, cst_store_event_fn fn, void *ud);
    void (*close)(cst_store *s);

    /* ---- files (Files API metadata; the bytes are blobs on disk named by
     * their SHA-256, managed by src/api) ---- */
    /* Insert a new file. CST_ERR_CONFLICT if (owner, id) exists. r->seq is ignored. */
    cst_status (*file_put)(cst_store *s, const cst_frec *r);
    /* Fill *out (caller clears it). CST_ERR_NOT_FOUND if absent or another owner's
     * (expired files are still returned: the caller checks r->expires). */
    cst_status (*file_get)(cst_store *s, const char *owner, const char *id, cst_frec *out);
    /* Files of owner not expired at now, newest first, with seq < before
     * (before <= 0: from the newest), at most limit. *out is malloc'd (free each
     * with cst_frec_clear, then the array). */
    cst_status (*file_list)(cst_store *s, const char *owner, int64_t now, int64_t before, size_t limit,
                            cst_frec **out, size_t *n);
    /* Remove (owner, id); CST_ERR_NOT_FOUND if absent. sha256 (65 bytes, may be
     * NULL) gets the removed file's blob hash. */
    cst_status (*file_del)(cst_store *s, const char *owner, const char *id, char *sha256);
    /* Up to limit files (any owner) whose expires <= now, oldest first. */
    cst_status (*file_expired)(cst_store *s, int64_t now, size_t limit, cst_frec **out, size_t *n);
    /* Number of files (any owner, expired or not) whose blob is sha256. */
    cst_status (*blob_refs)(cst_store *s, const char *sha256, int64_t *n);
    /* Bytes held by owner's files not expired at now (sum of sizes; 0 when
     * none), and the earliest expires among them (0 when none): the per-key
     * upload quota. PostgreSQL: SELECT COALESCE(SUM(size), 0), MIN(expires)
     * FROM files WHERE owner = $1 AND expires > $2. */
    cst_status (*file_usage)(cst_store *s, const char *owner, int64_t now, int64_t *bytes, int64_t *next_expiry);

    /* ---- durability (appended; NULL in a back-end that lacks it: the
     * wrapper answers CST_ERR_UNSUPPORTED) ---- */
    /* Start-up recovery, called once before the server accepts requests:
     * every interaction whose status is "queued" or "in_progress" (any
     * owner) was interrupted by a stop of the server. Set its status to
     * "failed", updated to now, errors to the JSON text errors, and usage to
     * the JSON text usage where usage is NULL; leave its other columns and its
     * events alone. *n gets the number of records changed. One statement /
     * transaction. PostgreSQL: UPDATE interactions SET status = 'failed',
     * updated = $1, errors = $2, usage = COALESCE(usage, $3) WHERE status IN
     * ('queued', 'in_progress'). */
    cst_status (*fail_unfinished)(cst_store *s, int64_t now, const char *errors, const char *usage, int64_t *n);
};

struct cst_store {
    const struct cst_store_ops *ops;
    char err[256]; /* message of the last failure (best effort; shared by threads) */
    /* Set with err: the last failure may pass without an operator (a full
     * disk, a read-only file, a lock held elsewhere: the API answers 503)
     * rather than a fault (I/O error, damaged file: 500). */
    bool transient;
};

/* Durability contract of every back-end: a write op (put, del, put_events,
 * file_put, file_del, fail_unfinished) returns CST_OK only once its change is
 * durable (SQLite: committed in WAL mode with synchronous=FULL, so fsync'd
 * before the call returns: it survives kill -9 and power loss). On failure it
 * changes nothing (the transaction is rolled back), returns CST_ERR_STORE and
 * sets err and transient. The API acknowledges a create only after the put of
 * its first record returned CST_OK. */

/* Open a store from a URL: "sqlite:PATH", a plain PATH (SQLite), or
 * "postgres://..." (CST_ERR_UNSUPPORTED for now). Creates the schema.
 * All operations are thread-safe. */
cst_status cst_store_open(const char *url, cst_store **out, char *err, size_t errlen);
cst_status cst_store_open_sqlite(const char *path, cst_store **out, char *err, size_t errlen);
void cst_store_close(cst_store *s); /* NULL ok */

/* Convenience wrappers over the vtable. */
static inline cst_status cst_store_put(cst_store *s, const cst_irec *r) { return s->ops->put(s, r); }
static inline cst_status cst_store_get(cst_store *s, const char *owner, const char *id, cst_irec *out) {
    return s->ops->get(s, owner, id, out);
}
static inline cst_status cst_store_del(cst_store *s, const char *owner, const char *id) {
    return s->ops->del(s, owner, id);
}
static inline cst_status cst_store_put_events(cst_store *s, const char *id, int64_t first_seq,
                                              const char *const *data, size_t n) {
    return s->ops->put_events(s, id, first_seq, data, n);
}
static inline cst_status cst_store_events(cst_store *s, const char *id, int64_t after, cst_store_event_fn fn,
                                          void *ud) {
    return s->ops->events(s, id, after, fn, ud);
}

static inline cst_status cst_store_fail_unfinished(cst_store *s, int64_t now, const char *errors,
                                                   const char *usage, int64_t *n) {
    *n = 0;
    return s->ops->fail_unfinished ? s->ops->fail_unfinished(s, now, errors, usage, n) : CST_ERR_UNSUPPORTED;
}

static inline cst_status cst_store_file_put(cst_store *s, const cst_frec *r) { return s->ops->file_put(s, r); }
static inline cst_status cst_store_file_get(cst_store *s, const char *owner, const char *id, cst_frec *out) {
    return s->ops->file_get(s, owner, id, out);
}
static inline cst_status cst_store_file_list(cst_store *s, const char *owner, int64_t now, int64_t before,
                                             size_t limit, cst_frec **out, size_t *n) {
    return s->ops->file_list(s, owner, now, before, limit, out, n);
}
static inline cst_status cst_store_file_del(cst_store *s, const char *owner, const char *id, char *sha256) {
    return s->ops->file_del(s, owner, id, sha256);
}
static inline cst_status cst_store_file_expired(cst_store *s, int64_t now, size_t limit, cst_frec **out,
                                                size_t *n) {
    return s->ops->file_expired(s, now, limit, out, n);
}
static inline cst_status cst_store_blob_refs(cst_store *s, const char *sha256, int64_t *n) {
    return s->ops->blob_refs(s, sha256, n);
}
static inline cst_status cst_store_file_usage(cst_store *s, const char *owner, int64_t now, int64_t *bytes,
                                              int64_t *next_expiry) {
    return s->ops->file_usage(s, owner, now, bytes, next_expiry);
}

#endif
