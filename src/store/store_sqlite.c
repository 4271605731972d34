/* store_sqlite.c: the SQLite back-end of cst_store (WAL journal with
 * synchronous=FULL: a commit is on disk, fsync'd, before the call returns; one
 * connection serialised by a mutex, prepared statements per call). Tables:
 * interactions (one row per interaction, JSON documents as text) and events
 * (the SSE event log for replay), files (Files API metadata; rowid gives the
 * listing order). File contents are blobs on disk beside the database
 * (DIR/files/blobs/xx/<sha256>). Also cst_store_open's URL dispatch.
 */
#include "store.h"
#include "core/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct sq_store {
    cst_store base;
    sqlite3 *db;
    pthread_mutex_t mu;
    char blobs[4096]; /* DIR/files/blobs */
    char running[4096]; /* PATH.running: exists from open to a clean close */
    /* figures (under mu) */
    uint64_t ops, errors;
    double op_s, op_max_s;
} sq_store;

/* Every operation runs between sq_lock and sq_unlock, which time it
 * (including the wait for the connection) for /metrics. */
static _Thread_local double sq_t0;

static void sq_lock(sq_store *s) {
    sq_t0 = cst_time_now();
    pthread_mutex_lock(&s->mu);
}

static void sq_unlock(sq_store *s) {
    double d = cst_time_now() - sq_t0;
    s->ops++;
    s->op_s += d;
    if (d > s->op_max_s) s->op_max_s = d;
    pthread_mutex_unlock(&s->mu);
}

static const char *SCHEMA =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS interactions ("
    " id TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT, status TEXT NOT NULL,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL, previous_id TEXT,"
    " request TEXT, input TEXT, history TEXT, turn TEXT, outputs TEXT, usage TEXT, errors TEXT);"
    "CREATE INDEX IF NOT EXISTS interactions_owner ON interactions(owner);"
    "CREATE TABLE IF NOT EXISTS events ("
    " interaction_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (interaction_id, seq));"
    "CREATE TABLE IF NOT EXISTS files ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, owner TEXT NOT NULL, display_name TEXT,"
    " mime TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL, expires INTEGER NOT NULL, UNIQUE (owner, id));"
    "CREATE INDEX IF NOT EXISTS files_sha256 ON files(sha256);"
    "CREATE INDEX IF NOT EXISTS files_expires ON files(expires);";

/* Schema migrations after SCHEMA, in order: migration i (0-based) takes
 * PRAGMA user_version from i to i + 1, in one transaction with the version
 * bump. Append only; never edit one that has shipped. */
static const char *const MIGRATIONS[] = {
    /* 1: a background job keeps its create body until it ends, and has_output
     * once its first output is about to be shown: at start-up one with a body
     * and no output runs again (jobs_unfinished) */
    "ALTER TABLE interactions ADD COLUMN body TEXT;"
    "ALTER TABLE interactions ADD COLUMN has_output INTEGER NOT NULL DEFAULT 0;",
};

void cst_irec_clear(cst_irec *r) {
    if (!r) return;
    char **f[] = {&r->id, &r->owner, &r->model, &r->status, &r->previous_id, &r->request,
                  &r->input, &r->history, &r->turn, &r->outputs, &r->usage, &r->errors, &r->body};
    for (size_t i = 0; i < CST_ARRAY_LEN(f); i++) free(*f[i]);
    memset(r, 0, sizeof *r);
}

void cst_frec_clear(cst_frec *r) {
    if (!r) return;
    free(r->id);
    free(r->owner);
    free(r->display_name);
    free(r->mime);
    free(r->sha256);
    memset(r, 0, sizeof *r);
}

void cst_frec_free_list(cst_frec *list, size_t n) {
    if (!list) return;
    for (size_t i = 0; i < n; i++) cst_frec_clear(&list[i]);
    free(list);
}

/* A full disk, a read-only file or a lock held elsewhere may pass (503);
 * anything else (I/O error, corruption) is a server fault (500). */
static bool transient_code(int code) {
    switch (code & 0xff) {
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN: return true;
    default: return false;
    }
}

static cst_status fail(sq_store *s, const char *what) {
    cst_errf(s->base.err, sizeof s->base.err, "sqlite %s: %s", what, sqlite3_errmsg(s->db));
    s->base.transient = transient_code(sqlite3_extended_errcode(s->db));
    cst_warn("store: %s", s->base.err);
    s->errors++;
    return CST_ERR_STORE;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

static cst_status sq_put(cst_store *bs, const cst_irec *r) {
    sq_store *s = (sq_store *)bs;
    static const char *sql =
        "INSERT OR REPLACE INTO interactions(id, owner, model, status, created, updated, previous_id,"
        " request, input, history, turn, outputs, usage, errors, body) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->owner);
    bind_text(st, 3, r->model);
    bind_text(st, 4, r->status);
    sqlite3_bind_int64(st, 5, r->created);
    sqlite3_bind_int64(st, 6, r->updated);
    bind_text(st, 7, r->previous_id);
    bind_text(st, 8, r->request);
    bind_text(st, 9, r->input);
    bind_text(st, 10, r->history);
    bind_text(st, 11, r->turn);
    bind_text(st, 12, r->outputs);
    bind_text(st, 13, r->usage);
    bind_text(st, 14, r->errors);
    bind_text(st, 15, r->body);
    if (sqlite3_step(st) != SQLITE_DONE) rc = fail(s, "insert");
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

/* The columns of REC_COLS at the start of a row into *out (cleared on failure). */
#define REC_COLS                                                                                                 \
    "id, owner, model, status, created, updated, previous_id, request, input, history, turn, outputs, usage, errors"
static cst_status fill_rec(sqlite3_stmt *st, cst_irec *out) {
    out->id = col_dup(st, 0);
    out->owner = col_dup(st, 1);
    out->model = col_dup(st, 2);
    out->status = col_dup(st, 3);
    out->created = sqlite3_column_int64(st, 4);
    out->updated = sqlite3_column_int64(st, 5);
    out->previous_id = col_dup(st, 6);
    out->request = col_dup(st, 7);
    out->input = col_dup(st, 8);
    out->history = col_dup(st, 9);
    out->turn = col_dup(st, 10);
    out->outputs = col_dup(st, 11);
    out->usage = col_dup(st, 12);
    out->errors = col_dup(st, 13);
    if (out->id && out->status) return CST_OK;
    cst_irec_clear(out);
    return CST_ERR_NOMEM;
}

static cst_status sq_get(cst_store *bs, const char *owner, const char *id, cst_irec *out) {
    sq_store *s = (sq_store *)bs;
    static const char *sql = "SELECT " REC_COLS " FROM interactions WHERE id = ? AND owner = ?";
    memset(out, 0, sizeof *out);
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    bind_text(st, 1, id);
    bind_text(st, 2, owner);
    int x = sqlite3_step(st);
    if (x == SQLITE_DONE) {
        rc = CST_ERR_NOT_FOUND;
        goto out;
    }
    if (x != SQLITE_ROW) {
        rc = fail(s, "select");
        goto out;
    }
    rc = fill_rec(st, out);
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

static cst_status exec_locked(sq_store *s, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cst_errf(s->base.err, sizeof s->base.err, "sqlite: %s", msg ? msg : "error");
        s->base.transient = transient_code(sqlite3_extended_errcode(s->db));
        sqlite3_free(msg);
        return CST_ERR_STORE;
    }
    return CST_OK;
}

/* COMMIT; when it fails (disk full, I/O error) the transaction may still be
 * open: roll it back, or every later statement would join it and never be
 * committed. */
static cst_status commit_locked(sq_store *s) {
    cst_status rc = exec_locked(s, "COMMIT");
    if (rc) {
        cst_warn("store: %s", s->base.err);
        if (!sqlite3_get_autocommit(s->db)) {
            char *msg = NULL;
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, &msg);
            sqlite3_free(msg);
        }
    }
    return rc;
}

static cst_status sq_del(cst_store *bs, const char *owner, const char *id) {
    sq_store *s = (sq_store *)bs;
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = exec_locked(s, "BEGIN");
    if (rc) goto out;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM interactions WHERE id = ? AND owner = ?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = fail(s, "prepare");
        goto rollback;
    }
    bind_text(st, 1, id);
    bind_text(st, 2, owner);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = fail(s, "delete");
        goto rollback;
    }
    if (sqlite3_changes(s->db) == 0) {
        rc = CST_ERR_NOT_FOUND;
        goto rollback;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM events WHERE interaction_id = ?", -1, &st, NULL) != SQLITE_OK ||
        (bind_text(st, 1, id), sqlite3_step(st)) != SQLITE_DONE) {
        rc = fail(s, "delete events");
        goto rollback;
    }
    rc = commit_locked(s);
    goto out;
rollback:
    exec_locked(s, "ROLLBACK");
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

static cst_status sq_put_events(cst_store *bs, const char *id, int64_t first_seq, const char *const *data,
                                size_t n) {
    sq_store *s = (sq_store *)bs;
    if (n == 0) return CST_OK;
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = exec_locked(s, "BEGIN");
    if (rc) goto out;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO events(interaction_id, seq, data) VALUES(?,?,?)", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto rollback;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        bind_text(st, 1, id);
        sqlite3_bind_int64(st, 2, first_seq + (int64_t)i);
        bind_text(st, 3, data[i]);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = fail(s, "insert event");
            goto rollback;
        }
    }
    rc = commit_locked(s);
    goto out;
rollback:
    exec_locked(s, "ROLLBACK");
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

static cst_status sq_events(cst_store *bs, const char *id, int64_t after, cst_store_event_fn fn, void *ud) {
    sq_store *s = (sq_store *)bs;
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT seq, data FROM events WHERE interaction_id = ? AND seq > ? ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, after);
    int x;
    while ((x = sqlite3_step(st)) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(st, 1);
        if (!fn(ud, sqlite3_column_int64(st, 0), d ? d : "")) break;
    }
    if (x != SQLITE_ROW && x != SQLITE_DONE) rc = fail(s, "select events");
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

/* ---- files ------------------------------------------------------------- */

#define FCOLS "seq, id, owner, display_name, mime, size, sha256, created, updated, expires"

static bool frec_row(sqlite3_stmt *st, cst_frec *r) {
    memset(r, 0, sizeof *r);
    r->seq = sqlite3_column_int64(st, 0);
    r->id = col_dup(st, 1);
    r->owner = col_dup(st, 2);
    r->display_name = col_dup(st, 3);
    r->mime = col_dup(st, 4);
    r->size = sqlite3_column_int64(st, 5);
    r->sha256 = col_dup(st, 6);
    r->created = sqlite3_column_int64(st, 7);
    r->updated = sqlite3_column_int64(st, 8);
    r->expires = sqlite3_column_int64(st, 9);
    if (!r->id || !r->owner || !r->mime || !r->sha256) {
        cst_frec_clear(r);
        return false;
    }
    return true;
}

/* Insert file r; the caller holds the lock. */
static cst_status file_put_locked(sq_store *s, const cst_frec *r) {
    static const char *sql = "INSERT INTO files(id, owner, display_name, mime, size, sha256, created, updated, expires)"
                             " VALUES(?,?,?,?,?,?,?,?,?)";
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->owner);
    bind_text(st, 3, r->display_name);
    bind_text(st, 4, r->mime);
    sqlite3_bind_int64(st, 5, r->size);
    bind_text(st, 6, r->sha256);
    sqlite3_bind_int64(st, 7, r->created);
    sqlite3_bind_int64(st, 8, r->updated);
    sqlite3_bind_int64(st, 9, r->expires);
    int x = sqlite3_step(st);
    if (x == SQLITE_CONSTRAINT) {
        cst_errf(s->base.err, sizeof s->base.err, "file '%s' already exists", r->id);
        rc = CST_ERR_CONFLICT;
    } else if (x != SQLITE_DONE) {
        rc = fail(s, "insert file");
    }
out:
    sqlite3_finalize(st);
    return rc;
}

static cst_status sq_file_put(cst_store *bs, const cst_frec *r) {
    sq_store *s = (sq_store *)bs;
    sq_lock(s);
    cst_status rc = file_put_locked(s, r);
    sq_unlock(s);
    return rc;
}

static cst_status sq_file_get(cst_store *bs, const char *owner, const char *id, cst_frec *out) {
    sq_store *s = (sq_store *)bs;
    memset(out, 0, sizeof *out);
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT " FCOLS " FROM files WHERE owner = ? AND id = ?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    bind_text(st, 1, owner);
    bind_text(st, 2, id);
    int x = sqlite3_step(st);
    if (x == SQLITE_DONE) rc = CST_ERR_NOT_FOUND;
    else if (x != SQLITE_ROW) rc = fail(s, "select file");
    else if (!frec_row(st, out)) rc = CST_ERR_NOMEM;
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

/* Run a prepared SELECT of FCOLS and collect up to limit rows. */
static cst_status collect(sq_store *s, sqlite3_stmt *st, size_t limit, cst_frec **out, size_t *n) {
    cst_frec *v = NULL;
    size_t k = 0, cap = 0;
    int x = SQLITE_DONE;
    while (k < limit && (x = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == cap) {
            size_t nc = cap ? cap * 2 : 16;
            cst_frec *nv = realloc(v, nc * sizeof *nv);
            if (!nv) goto oom;
            v = nv;
            cap = nc;
        }
        if (!frec_row(st, &v[k])) goto oom;
        k++;
    }
    if (k < limit && x != SQLITE_DONE) {
        cst_frec_free_list(v, k);
        return fail(s, "select files");
    }
    *out = v;
    *n = k;
    return CST_OK;
oom:
    cst_frec_free_list(v, k);
    return CST_ERR_NOMEM;
}

static cst_status sq_file_list(cst_store *bs, const char *owner, int64_t now, int64_t before, size_t limit,
                               cst_frec **out, size_t *n) {
    sq_store *s = (sq_store *)bs;
    *out = NULL;
    *n = 0;
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT " FCOLS " FROM files WHERE owner = ? AND expires > ? AND seq < ?"
                           " ORDER BY seq DESC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    bind_text(st, 1, owner);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int64(st, 4, (int64_t)CST_MIN(limit, (size_t)INT32_MAX));
    rc = collect(s, st, limit, out, n);
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

static cst_status sq_file_del(cst_store *bs, const char *owner, const char *id, char *sha256) {
    sq_store *s = (sq_store *)bs;
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM files WHERE owner = ? AND id = ? RETURNING sha256", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    bind_text(st, 1, owner);
    bind_text(st, 2, id);
    int x = sqlite3_step(st);
    if (x == SQLITE_DONE) {
        rc = CST_ERR_NOT_FOUND;
        goto out;
    }
    if (x != SQLITE_ROW) {
        rc = fail(s, "delete file");
        goto out;
    }
    const unsigned char *h = sqlite3_column_text(st, 0);
    if (sha256) snprintf(sha256, 65, "%s", h ? (const char *)h : "");
    while ((x = sqlite3_step(st)) == SQLITE_ROW) {}
    if (x != SQLITE_DONE) rc = fail(s, "delete file");
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

static cst_status sq_file_expired(cst_store *bs, int64_t now, size_t limit, cst_frec **out, size_t *n) {
    sq_store *s = (sq_store *)bs;
    *out = NULL;
    *n = 0;
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc;
    if (sqlite3_prepare_v2(s->db, "SELECT " FCOLS " FROM files WHERE expires <= ? ORDER BY expires, seq LIMIT ?", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, (int64_t)CST_MIN(limit, (size_t)INT32_MAX));
    rc = collect(s, st, limit, out, n);
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

/* Files whose blob is sha256; the caller holds the lock. */
static cst_status refs_locked(sq_store *s, const char *sha256, int64_t *n) {
    *n = 0;
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM files WHERE sha256 = ?", -1, &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    bind_text(st, 1, sha256);
    if (sqlite3_step(st) != SQLITE_ROW) rc = fail(s, "count files");
    else *n = sqlite3_column_int64(st, 0);
out:
    sqlite3_finalize(st);
    return rc;
}

static cst_status sq_blob_refs(cst_store *bs, const char *sha256, int64_t *n) {
    sq_store *s = (sq_store *)bs;
    sq_lock(s);
    cst_status rc = refs_locked(s, sha256, n);
    sq_unlock(s);
    return rc;
}

static cst_status sq_file_usage(cst_store *bs, const char *owner, int64_t now, int64_t *bytes,
                                int64_t *next_expiry) {
    sq_store *s = (sq_store *)bs;
    *bytes = 0;
    if (next_expiry) *next_expiry = 0;
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    /* (owner, id) is UNIQUE: its index serves the owner filter */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT COALESCE(SUM(size), 0), MIN(expires) FROM files"
                           " WHERE owner = ? AND expires > ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    bind_text(st, 1, owner);
    sqlite3_bind_int64(st, 2, now);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = fail(s, "sum file sizes");
        goto out;
    }
    *bytes = sqlite3_column_int64(st, 0);
    if (next_expiry && sqlite3_column_type(st, 1) != SQLITE_NULL) *next_expiry = sqlite3_column_int64(st, 1);
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

/* ---- blobs: DIR/files/blobs/xx/<sha256> ---------------------------------- */

static bool sha_ok(const char *h) {
    if (!h || strlen(h) != 64) return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

static void blob_path(const sq_store *s, const char *sha, char *out, size_t n) {
    snprintf(out, n, "%s/%.2s/%s", s->blobs, sha, sha);
}

static bool mkdir_ok(const char *p) { return mkdir(p, 0700) == 0 || errno == EEXIST; }

static void fsync_dir(const char *p) {
    int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static cst_status io_fail(sq_store *s, const char *what, const char *p) {
    cst_errf(s->base.err, sizeof s->base.err, "%s %s: %s", what, p, strerror(errno));
    cst_warn("store: %s", s->base.err);
    return CST_ERR_IO;
}

static cst_status sq_file_create(cst_store *bs, const cst_frec *r, const char *path) {
    sq_store *s = (sq_store *)bs;
    if (!sha_ok(r->sha256)) {
        cst_errf(s->base.err, sizeof s->base.err, "bad blob hash");
        return CST_ERR_INVALID_ARG;
    }
    char bp[4200], dir[4200], files_dir[4200];
    blob_path(s, r->sha256, bp, sizeof bp);
    snprintf(dir, sizeof dir, "%s/%.2s", s->blobs, r->sha256);
    snprintf(files_dir, sizeof files_dir, "%.*s", (int)(strlen(s->blobs) - 6), s->blobs); /* DIR/files */
    sq_lock(s);
    cst_status rc = CST_OK;
    bool placed = false;
    struct stat sb;
    if (!(stat(bp, &sb) == 0 && sb.st_size == r->size)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = io_fail(s, "open", path);
            goto out;
        }
        bool ok = fstat(fd, &sb) == 0 && sb.st_size == r->size && fsync(fd) == 0;
        close(fd);
        if (!ok) {
            cst_errf(s->base.err, sizeof s->base.err, "%s is not %lld bytes", path, (long long)r->size);
            rc = CST_ERR_IO;
            goto out;
        }
        if (!mkdir_ok(files_dir) || !mkdir_ok(s->blobs) || !mkdir_ok(dir)) {
            rc = io_fail(s, "mkdir", dir);
            goto out;
        }
        if (rename(path, bp) != 0) {
            rc = io_fail(s, "rename to", bp);
            goto out;
        }
        fsync_dir(dir);
        placed = true;
    }
    rc = file_put_locked(s, r);
    int64_t n = 1;
    if (rc && placed && refs_locked(s, r->sha256, &n) == CST_OK && n == 0) unlink(bp);
out:
    sq_unlock(s);
    return rc;
}

static cst_status sq_blob_read(cst_store *bs, const char *sha256, int64_t off, void *buf, size_t n, size_t *got) {
    sq_store *s = (sq_store *)bs;
    *got = 0;
    if (!sha_ok(sha256) || off < 0) return CST_ERR_NOT_FOUND;
    char bp[4200];
    blob_path(s, sha256, bp, sizeof bp);
    int fd = open(bp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? CST_ERR_NOT_FOUND : io_fail(s, "open", bp);
    ssize_t k;
    do k = pread(fd, buf, n, (off_t)off);
    while (k < 0 && errno == EINTR);
    cst_status rc = CST_OK;
    if (k < 0) rc = io_fail(s, "read", bp);
    else *got = (size_t)k;
    close(fd);
    return rc;
}

static cst_status sq_blob_release(cst_store *bs, const char *sha256, bool *removed) {
    sq_store *s = (sq_store *)bs;
    if (removed) *removed = false;
    if (!sha_ok(sha256)) return CST_OK;
    sq_lock(s);
    int64_t n = 1;
    cst_status rc = refs_locked(s, sha256, &n);
    if (rc == CST_OK && n == 0) {
        char bp[4200];
        blob_path(s, sha256, bp, sizeof bp);
        if (unlink(bp) == 0) {
            if (removed) *removed = true;
        } else if (errno != ENOENT) {
            rc = io_fail(s, "unlink", bp);
        }
    }
    sq_unlock(s);
    return rc;
}

static cst_status sq_blob_gc(cst_store *bs, size_t *removed) {
    sq_store *s = (sq_store *)bs;
    size_t k = 0;
    DIR *d = opendir(s->blobs);
    struct dirent *e;
    if (d) {
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char sub[4400];
            snprintf(sub, sizeof sub, "%s/%s", s->blobs, e->d_name);
            DIR *d2 = opendir(sub);
            if (!d2) continue;
            struct dirent *e2;
            while ((e2 = readdir(d2))) {
                bool gone = false;
                if (sha_ok(e2->d_name) && sq_blob_release(bs, e2->d_name, &gone) == CST_OK && gone) k++;
            }
            closedir(d2);
        }
        closedir(d);
    }
    if (removed) *removed = k;
    return CST_OK;
}

static cst_status sq_ping(cst_store *bs) {
    sq_store *s = (sq_store *)bs;
    sq_lock(s);
    cst_status rc = exec_locked(s, "SELECT 1");
    sq_unlock(s);
    return rc;
}

static void sq_stats(cst_store *bs, cst_store_stats *out) {
    sq_store *s = (sq_store *)bs;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    out->ops = s->ops;
    out->errors = s->errors;
    out->op_seconds = s->op_s;
    out->op_max_seconds = s->op_max_s;
    pthread_mutex_unlock(&s->mu);
    out->pool_size = 1;
    out->pool_open = 1;
}

static void sq_close(cst_store *bs) {
    sq_store *s = (sq_store *)bs;
    /* a clean stop: the next start-up skips the integrity check */
    if (sqlite3_close(s->db) == SQLITE_OK && s->running[0]) (void)unlink(s->running);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static cst_status sq_fail_unfinished(cst_store *bs, int64_t now, const char *errors, const char *usage,
                                     int64_t *n) {
    sq_store *s = (sq_store *)bs;
    static const char *sql = "UPDATE interactions SET status = 'failed', updated = ?, errors = ?,"
                             " usage = COALESCE(usage, ?) WHERE status IN ('queued', 'in_progress')"
                             " AND (body IS NULL OR has_output)"; /* the others run again (jobs_unfinished) */
    *n = 0;
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    sqlite3_bind_int64(st, 1, now);
    bind_text(st, 2, errors);
    bind_text(st, 3, usage);
    if (sqlite3_step(st) != SQLITE_DONE) rc = fail(s, "update unfinished");
    else *n = sqlite3_changes(s->db);
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

static cst_status sq_job_output(cst_store *bs, const char *id) {
    sq_store *s = (sq_store *)bs;
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    if (sqlite3_prepare_v2(s->db, "UPDATE interactions SET has_output = 1 WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_DONE) rc = fail(s, "update has_output");
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    return rc;
}

static cst_status sq_jobs_unfinished(cst_store *bs, cst_job **out, size_t *n) {
    sq_store *s = (sq_store *)bs;
    static const char *sql = "SELECT " REC_COLS ", body, (SELECT COALESCE(MAX(seq), 0) FROM events"
                             " WHERE interaction_id = interactions.id) FROM interactions"
                             " WHERE status IN ('queued', 'in_progress') AND body IS NOT NULL AND NOT has_output"
                             " ORDER BY created, rowid";
    *out = NULL;
    *n = 0;
    sq_lock(s);
    sqlite3_stmt *st = NULL;
    cst_status rc = CST_OK;
    size_t cap = 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = fail(s, "prepare");
        goto out;
    }
    int x;
    while ((x = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            cst_job *nj = realloc(*out, cap * sizeof *nj);
            if (!nj) {
                rc = CST_ERR_NOMEM;
                goto out;
            }
            *out = nj;
        }
        cst_job *j = &(*out)[*n];
        memset(j, 0, sizeof *j);
        rc = fill_rec(st, &j->rec);
        j->body = col_dup(st, 14);
        j->is_job = true;
        j->n_events = sqlite3_column_int64(st, 15);
        if (rc || !j->body) {
            cst_job_clear(j);
            rc = CST_ERR_NOMEM;
            goto out;
        }
        (*n)++;
    }
    if (x != SQLITE_DONE) rc = fail(s, "select unfinished jobs");
out:
    sqlite3_finalize(st);
    sq_unlock(s);
    if (rc) {
        for (size_t i = 0; i < *n; i++) cst_job_clear(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static const struct cst_store_ops sq_ops = {
    .name = "sqlite",
    .put = sq_put,
    .get = sq_get,
    .del = sq_del,
    .put_events = sq_put_events,
    .events = sq_events,
    .close = sq_close,
    .file_put = sq_file_put,
    .file_get = sq_file_get,
    .file_list = sq_file_list,
    .file_del = sq_file_del,
    .file_expired = sq_file_expired,
    .blob_refs = sq_blob_refs,
    .file_usage = sq_file_usage,
    .fail_unfinished = sq_fail_unfinished,
    .file_create = sq_file_create,
    .blob_read = sq_blob_read,
    .blob_release = sq_blob_release,
    .blob_gc = sq_blob_gc,
    .ping = sq_ping,
    .stats = sq_stats,
    .job_output = sq_job_output,
    .jobs_unfinished = sq_jobs_unfinished,
};

/* Apply the migrations a database lacks (PRAGMA user_version counts those
 * applied), each in its own transaction. */
static cst_status migrate(sq_store *s) {
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (v < 0) return fail(s, "read user_version");
    for (; v < (int)CST_ARRAY_LEN(MIGRATIONS); v++) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version=%d;", v + 1);
        if (exec_locked(s, "BEGIN IMMEDIATE")) return CST_ERR_STORE;
        if (exec_locked(s, MIGRATIONS[v]) || exec_locked(s, bump) || exec_locked(s, "COMMIT")) {
            (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return CST_ERR_STORE;
        }
        cst_debug("store: schema migration %d applied", v + 1);
    }
    return CST_OK;
}

/* PRAGMA quick_check: "ok", or the first problems it lists (into msg). */
static bool check_ok(sq_store *s, char *msg, size_t msglen) {
    sqlite3_stmt *st = NULL;
    msg[0] = 0;
    if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check(3)", -1, &st, NULL) != SQLITE_OK) {
        cst_errf(msg, msglen, "%s", sqlite3_errmsg(s->db));
        return false;
    }
    bool ok = true;
    int x;
    size_t k = 0;
    while ((x = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t && !strcmp(t, "ok")) continue;
        ok = false;
        if (k < msglen) k += (size_t)snprintf(msg + k, msglen - k, "%s%s", k ? "; " : "", t ? t : "?");
    }
    if (x != SQLITE_DONE) {
        if (ok) cst_errf(msg, msglen, "%s", sqlite3_errmsg(s->db));
        ok = false;
    }
    sqlite3_finalize(st);
    return ok;
}

/* The header and schema only (a clean start): "file is not a database" and
 * a damaged first page show here. */
static bool header_ok(sq_store *s, char *msg, size_t msglen) {
    msg[0] = 0;
    if (sqlite3_exec(s->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) == SQLITE_OK) return true;
    cst_errf(msg, msglen, "%s", sqlite3_errmsg(s->db));
    return false;
}

cst_status cst_store_open_sqlite(const char *path, cst_store **out, char *err, size_t errlen) {
    *out = NULL;
    sq_store *s = calloc(1, sizeof *s);
    if (!s) return CST_ERR_NOMEM;
    s->base.ops = &sq_ops;
    pthread_mutex_init(&s->mu, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        cst_errf(err, errlen, "cannot open the store %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "no memory");
        sqlite3_close(s->db);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return CST_ERR_STORE;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* A damaged file is refused at start-up, saying what is wrong, rather
     * than failing requests later. The full check (PRAGMA quick_check reads
     * the whole file) runs only after an unclean stop: PATH.running exists
     * from open to a clean close, so a kill -9, crash or power loss leaves
     * it. A clean start reads just the header and schema (a file that is not
     * a database still fails here). */
    const bool in_memory = !*path || !strcmp(path, ":memory:");
    if (!in_memory) snprintf(s->running, sizeof s->running, "%s.running", path);
    const bool unclean = !in_memory && access(s->running, F_OK) == 0;
    char chk[200];
    if (unclean) cst_info("store %s: the last stop was not clean; checking the database (PRAGMA quick_check)", path);
    if (!(unclean ? check_ok(s, chk, sizeof chk) : header_ok(s, chk, sizeof chk))) {
        cst_errf(err, errlen,
                 "the store %s is damaged or is not a SQLite database (%s); restore it from a backup or move it "
                 "away to start with an empty store",
                 path, chk);
        s->running[0] = 0; /* keep the marker: the next start checks again */
        sq_close(&s->base);
        return CST_ERR_STORE;
    }
    if (!unclean && !in_memory) {
        int fd = open(s->running, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) close(fd);
        char dir[4096];
        const char *sl = strrchr(path, '/');
        snprintf(dir, sizeof dir, "%.*s", sl ? (int)(sl - path) : 1, sl ? path : ".");
        fsync_dir(dir); /* the marker survives a power loss too */
    }
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(s->blobs, sizeof s->blobs, "files/blobs");
    else snprintf(s->blobs, sizeof s->blobs, "%.*s/files/blobs", (int)(slash - path), path);
    if (exec_locked(s, SCHEMA)) {
        cst_errf(err, errlen, "store %s: %s", path, s->base.err);
        s->running[0] = 0;
        sq_close(&s->base);
        return CST_ERR_STORE;
    }
    if (migrate(s)) {
        cst_errf(err, errlen, "store %s: migrating the schema: %s", path, s->base.err);
        s->running[0] = 0;
        sq_close(&s->base);
        return CST_ERR_STORE;
    }
    /* test only: a database capped at N pages fails writes with SQLITE_FULL,
     * as a full disk does (the fault suite's fallback where tmpfs cannot be
     * mounted) */
    const char *mp = getenv("CST_STORE_MAX_PAGES");
    if (mp && *mp) {
        char q[64];
        snprintf(q, sizeof q, "PRAGMA max_page_count=%lld", atoll(mp));
        exec_locked(s, q);
        cst_warn("CST_STORE_MAX_PAGES=%s: test-only store size cap is active", mp);
    }
    *out = &s->base;
    return CST_OK;
}

cst_status cst_store_open(const char *url, cst_store **out, char *err, size_t errlen) {
    *out = NULL;
    if (!url || !*url) {
        cst_errf(err, errlen, "empty store URL");
        return CST_ERR_INVALID_ARG;
    }
    if (!strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13))
        return cst_store_open_pg(url, out, err, errlen);
    if (!strncmp(url, "sqlite://", 9)) return cst_store_open_sqlite(url + 9, out, err, errlen);
    if (!strncmp(url, "sqlite:", 7)) return cst_store_open_sqlite(url + 7, out, err, errlen);
    if (strstr(url, "://")) {
        cst_errf(err, errlen, "unknown store URL scheme: %s", url);
        return CST_ERR_INVALID_ARG;
    }
    return cst_store_open_sqlite(url, out, err, errlen);
}

void cst_store_close(cst_store *s) {
    if (s) s->ops->close(s);
}
