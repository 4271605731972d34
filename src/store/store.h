/* store.h: persistent state of the Interactions API behind one interface
 * (struct cst_store_ops), so that back-ends can be swapped: SQLite (WAL,
 * store_sqlite.c) and PostgreSQL (libpq, store_pg.c; --store postgres://...). The store sees only strings and
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
    char *body;        /* written by put only (get leaves it NULL): a background job's create body while it has
                        * not finished (SQLite keeps it to run the job again after a restart); NULL otherwise */
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

/* Figures of the store for /metrics (cumulative since open, except the gauges). */
typedef struct cst_store_stats {
    uint64_t ops;          /* operations run */
    uint64_t errors;       /* operations that failed with CST_ERR_STORE */
    double op_seconds;     /* total time spent in operations (including pool waits) */
    double op_max_seconds; /* slowest operation */
    int pool_size;         /* connections the pool may hold (1 for SQLite) */
    int pool_open;         /* gauge: connections open now */
    int pool_busy;         /* gauge: connections in use now */
    uint64_t pool_waits;   /* acquisitions that had to wait for a free connection */
    uint64_t reconnects;   /* connections (re)opened after the first */
} cst_store_stats;

/* A background job claimed from the queue (job_claim). */
typedef struct cst_job {
    cst_irec rec;    /* the record as stored */
    char *body;      /* the create request's JSON body (run it again from this) */
    bool takeover;   /* another replica held it and its lease expired */
    bool output;     /* output events were stored: a client may have seen them */
    bool cancel;     /* a cancel was requested */
    bool is_job;     /* a background job (body set); false: a foreground run whose replica stopped */
    int64_t n_events; /* events stored (the last seq) */
} cst_job;

void cst_job_clear(cst_job *j); /* frees the strings, zeroes the struct */

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

    /* ---- files (Files API metadata; the bytes are blobs named by their
     * SHA-256, see the blob ops at the end) ---- */
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
     * ('queued', 'in_progress'). The PostgreSQL back-end leaves it NULL:
     * replicas share the table, and a replica starting up cannot tell its own
     * interrupted runs from another replica's live ones (that needs the
     * leases of a background-job queue, not built yet). A back-end with
     * jobs_unfinished (below) leaves the jobs it lists alone: they run again. */
    cst_status (*fail_unfinished)(cst_store *s, int64_t now, const char *errors, const char *usage, int64_t *n);

    /* ---- blobs: file contents, content-addressed by SHA-256 and owned by the
     * store (SQLite: files DIR/files/blobs/xx/<sha256> beside the database
     * DIR/castor.db; PostgreSQL: 1 MiB bytea chunks in the database, so that
     * replicas share no file system). A blob lives while a file refers to it. ---- */
    /* Store the blob r->sha256 (r->size bytes, read from the file at path)
     * unless it is already stored, and insert the file r, atomically: either
     * both are there on return or neither is new. The file at path is consumed
     * or left (SQLite renames it into place): the caller unlinks path if it
     * still exists. CST_ERR_CONFLICT if (owner, id) exists (a blob stored by
     * this call is dropped again); CST_ERR_IO if path cannot be read or is not
     * r->size bytes long. r->seq is ignored. Durable on return. */
    cst_status (*file_create)(cst_store *s, const cst_frec *r, const char *path);
    /* Read up to n bytes of blob sha256 at offset off into buf; *got is the
     * count (0 at or past the end; may be < n before the end: call again).
     * CST_ERR_NOT_FOUND if the blob is not stored. */
    cst_status (*blob_read)(cst_store *s, const char *sha256, int64_t off, void *buf, size_t n, size_t *got);
    /* Remove blob sha256 if no file (any owner, expired or not) refers to it;
     * *removed (may be NULL) says whether it was removed. Safe against a
     * concurrent file_create of the same bytes (from any replica). */
    cst_status (*blob_release)(cst_store *s, const char *sha256, bool *removed);
    /* Remove every blob no file refers to (leftovers of a crash); *removed
     * (may be NULL) gets the count. */
    cst_status (*blob_gc)(cst_store *s, size_t *removed);
    /* CST_OK when the store answers a trivial query now (for /health). */
    cst_status (*ping)(cst_store *s);
    /* Fill *out with the figures above. */
    void (*stats)(cst_store *s, cst_store_stats *out);

    /* ---- live runs shared by replicas, and the background-job queue
     * (appended; NULL in a back-end used by one process, SQLite: the API
     * then keeps live runs in its memory only). A live run's record carries
     * a lease (the replica `node` that runs it, until a time on the
     * database's clock), a cancel flag and, for a background job, the create
     * body, so that another replica can follow it, cancel it, and take it
     * over when the lease expires. Notifications (payloads "job", "ev ID",
     * "cancel ID") wake the other replicas (PostgreSQL LISTEN/NOTIFY). ---- */
    /* Insert the accepted record r (as put: durable on return) as a live
     * run. node != NULL: node holds its lease for lease_ms; NULL: a job
     * waiting in the queue for any replica serving job_model (notified
     * "job"). body: the create body of a background job (NULL: a foreground
     * run, which nobody runs again). */
    cst_status (*live_put)(cst_store *s, const cst_irec *r, const char *node, int64_t lease_ms, const char *body,
                           const char *job_model);
    /* Append events (seq first_seq..) of a live run node holds, in one
     * transaction, and notify "ev ID"; output: they include output (from
     * then on the job is never run again from the start); started: the run
     * holds a slot (a queued record becomes in_progress). CST_ERR_CONFLICT
     * when node no longer holds the lease (nothing written). */
    cst_status (*live_events)(cst_store *s, const char *id, const char *node, int64_t first_seq,
                              const char *const *data, size_t n, bool output, bool started);
    /* The terminal record r, its last events and the end of the lease in
     * one transaction, only while node holds the lease (CST_ERR_CONFLICT
     * otherwise: nothing written); notifies "ev ID". */
    cst_status (*live_finish)(cst_store *s, const cst_irec *r, const char *node, int64_t first_seq,
                              const char *const *data, size_t n);
    /* Extend node's leases of ids[0..n) by lease_ms from now. held[i]: node
     * still holds ids[i] (false: lost or finished elsewhere); cancel[i]: a
     * cancel was requested. One statement. */
    cst_status (*lease_renew)(cst_store *s, const char *node, const char *const *ids, size_t n, int64_t lease_ms,
                              bool *held, bool *cancel);
    /* Claim one live run for node (lease_ms), FOR UPDATE SKIP LOCKED, oldest
     * first: when takeover, one whose lease expired (any model); when models
     * is not empty, a queued job for one of models. CST_ERR_NOT_FOUND: none.
     * *out (caller clears it) says what it was. */
    cst_status (*job_claim)(cst_store *s, const char *node, const char *const *models, size_t n_models,
                            bool takeover, int64_t lease_ms, cst_job *out);
    /* Put a job node holds back in the queue (unclaimed; notified "job"). */
    cst_status (*job_release)(cst_store *s, const char *id, const char *node);
    /* Ask for (owner, id) to stop: a job nobody holds becomes "cancelled"
     * at once (updated now, usage set where NULL); a held one gets the
     * cancel flag (notified "cancel ID"); a terminal one is left alone
     * (CST_ERR_CONFLICT). status (24 bytes) gets the status after.
     * CST_ERR_NOT_FOUND as get. */
    cst_status (*cancel_request)(cst_store *s, const char *owner, const char *id, int64_t now, const char *usage,
                                 char *status);
    /* Wait up to timeout_s for one notification (on a connection of its
     * own, opened on first use and reopened after a failure); payload gets
     * it (NUL-terminated, cut to n). CST_ERR_NOT_FOUND: none came. One
     * caller at a time. */
    cst_status (*notify_wait)(cst_store *s, double timeout_s, char *payload, size_t n);

    /* ---- background jobs of one process (appended; SQLite: a job's create
     * body is kept in its record (put's r->body) until it ends; NULL in the
     * PostgreSQL back-end, whose live ops above do the same for replicas) ---- */
    /* The background job id is about to show its first output: record that
     * it has output (durable on return). After a restart such a job is
     * failed (fail_unfinished), never run again from the start. */
    cst_status (*job_output)(cst_store *s, const char *id);
    /* Start-up, after fail_unfinished: the background jobs still "queued" or
     * "in_progress" that have their create body and no output, oldest first,
     * as claimed jobs (is_job set, output false, n_events stored). *out is
     * malloc'd (clear each with cst_job_clear, then free the array). */
    cst_status (*jobs_unfinished)(cst_store *s, cst_job **out, size_t *n);
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
 * "postgres://..." / "postgresql://..." (a libpq connection URI). Creates or
 * migrates the schema. All operations are thread-safe. */
cst_status cst_store_open(const char *url, cst_store **out, char *err, size_t errlen);
cst_status cst_store_open_sqlite(const char *path, cst_store **out, char *err, size_t errlen);
/* PostgreSQL: a pool of up to CASTOR_PG_POOL connections (default 8), opened
 * on demand and reopened after the server went away; the schema migrations
 * (table schema_migrations) are applied under an advisory lock, so replicas
 * starting together apply each one once. CST_ERR_STORE if the database cannot
 * be reached at open. */
cst_status cst_store_open_pg(const char *url, cst_store **out, char *err, size_t errlen);
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

static inline cst_status cst_store_file_create(cst_store *s, const cst_frec *r, const char *path) {
    return s->ops->file_create(s, r, path);
}
static inline cst_status cst_store_blob_read(cst_store *s, const char *sha256, int64_t off, void *buf, size_t n,
                                             size_t *got) {
    return s->ops->blob_read(s, sha256, off, buf, n, got);
}
static inline cst_status cst_store_blob_release(cst_store *s, const char *sha256, bool *removed) {
    return s->ops->blob_release(s, sha256, removed);
}
static inline cst_status cst_store_blob_gc(cst_store *s, size_t *removed) { return s->ops->blob_gc(s, removed); }
static inline cst_status cst_store_ping(cst_store *s) { return s->ops->ping(s); }
static inline void cst_store_stats_get(cst_store *s, cst_store_stats *out) { s->ops->stats(s, out); }

/* True when the back-end shares live runs between replicas (the ops above). */
static inline bool cst_store_live(const cst_store *s) { return s->ops->live_put != NULL; }

#endif
