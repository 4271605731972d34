/* store_pg.c: the PostgreSQL back-end of cst_store (libpq). A pool of
 * connections opened on demand (CASTOR_PG_POOL, default 8) and reopened after
 * the server went away; every statement is prepared once per connection
 * (text parameters, bytea in binary); transactions where the SQLite store has
 * them (delete with its events, an event batch, a file with its blob).
 * Versioned schema migrations (table schema_migrations) run at open under an
 * advisory lock, so replicas starting together apply each one once. Blobs are
 * rows of 1 MiB bytea chunks: replicas need no shared file system.
 */
#include "store.h"
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20) /* blob chunk size in bytes */

/* ---- schema migrations: append, never edit an applied one ---------------- */

static const char *const MIGRATIONS[] = {
    /* 1: the tables of the SQLite store, plus blobs */
    "CREATE TABLE interactions ("
    " id TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT, status TEXT NOT NULL,"
    " created BIGINT NOT NULL, updated BIGINT NOT NULL, previous_id TEXT,"
    " request TEXT, input TEXT, history TEXT, turn TEXT, outputs TEXT, usage TEXT, errors TEXT);"
    "CREATE INDEX interactions_owner ON interactions(owner);"
    "CREATE TABLE events ("
    " interaction_id TEXT NOT NULL, seq BIGINT NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (interaction_id, seq));"
    "CREATE TABLE files ("
    " seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL, owner TEXT NOT NULL, display_name TEXT,"
    " mime TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL, created BIGINT NOT NULL,"
    " updated BIGINT NOT NULL, expires BIGINT NOT NULL, UNIQUE (owner, id));"
    "CREATE INDEX files_sha256 ON files(sha256);"
    "CREATE INDEX files_expires ON files(expires);"
    "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, size BIGINT NOT NULL, created BIGINT NOT NULL);"
    "CREATE TABLE blob_chunks ("
    " sha256 TEXT NOT NULL REFERENCES blobs(sha256) ON DELETE CASCADE, idx INTEGER NOT NULL,"
    " data BYTEA NOT NULL, PRIMARY KEY (sha256, idx));"
    /* images are compressed already: no pglz attempt, stored out of line */
    "ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;",
    /* 2: live runs shared by replicas: a lease (the replica running it, until
     * a time on the database's clock in ms), a cancel flag, and for a
     * background job its create body and the model name replicas claim it by */
    "ALTER TABLE interactions ADD COLUMN lease_owner TEXT, ADD COLUMN lease_until BIGINT,"
    " ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false, ADD COLUMN job TEXT, ADD COLUMN job_model TEXT,"
    " ADD COLUMN has_output BOOLEAN NOT NULL DEFAULT false;"
    "CREATE INDEX interactions_live ON interactions(created) WHERE status IN ('queued', 'in_progress');"
    /* runs left unfinished by replicas without leases: taken over (failed)
     * an hour from now, unless a replica still running them ends them first */
    "UPDATE interactions SET lease_owner = 'migration-2',"
    " lease_until = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 3600000"
    " WHERE status IN ('queued', 'in_progress');",
};

/* key of the advisory lock held while migrating (any constant of our own) */
#define MIGRATE_LOCK "4242000001"

/* ---- prepared statements ---------------------------------------------------- */

enum {
    S_PUT, S_GET, S_DEL, S_EV_PUT, S_EV_GET,
    S_F_PUT, S_F_GET, S_F_LIST, S_F_DEL, S_F_EXPIRED, S_REFS, S_USAGE,
    S_LOCK_SHA, S_B_SIZE, S_B_INS, S_B_DEL_ONE, S_C_INS, S_C_READ, S_B_RELEASE, S_B_ORPHANS,
    S_LIVE_PUT, S_LIVE_HOLD, S_LIVE_END, S_RENEW, S_CLAIM, S_RELEASE, S_CANCEL, S_NOTIFY,
    S_COUNT
};

#define FCOLS "seq, id, owner, display_name, mime, size, sha256, created, updated, expires"
#define ICOLS "id, owner, model, status, created, updated, previous_id, request, input, history, turn, outputs, usage, errors"
/* the database's clock in ms: leases never compare two machines' clocks */
#define NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
#define LIVE "status IN ('queued', 'in_progress')"

static const struct {
    const char *sql;
    int nparams;
} STMTS[S_COUNT] = {
    [S_PUT] = {"INSERT INTO interactions(id, owner, model, status, created, updated, previous_id, request, input,"
               " history, turn, outputs, usage, errors) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)"
               " ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, model = EXCLUDED.model,"
               " status = EXCLUDED.status, created = EXCLUDED.created, updated = EXCLUDED.updated,"
               " previous_id = EXCLUDED.previous_id, request = EXCLUDED.request, input = EXCLUDED.input,"
               " history = EXCLUDED.history, turn = EXCLUDED.turn, outputs = EXCLUDED.outputs,"
               " usage = EXCLUDED.usage, errors = EXCLUDED.errors",
               14},
    [S_GET] = {"SELECT id, owner, model, status, created, updated, previous_id, request, input, history, turn,"
               " outputs, usage, errors FROM interactions WHERE id = $1 AND owner = $2",
               2},
    /* one statement, so one transaction: the record and its events */
    [S_DEL] = {"WITH d AS (DELETE FROM interactions WHERE id = $1 AND owner = $2 RETURNING id),"
               " e AS (DELETE FROM events WHERE interaction_id IN (SELECT id FROM d))"
               " SELECT COUNT(*) FROM d",
               2},
    /* a batch in one statement: $3 is a text[] of the events, seq from $2 on */
    [S_EV_PUT] = {"INSERT INTO events(interaction_id, seq, data)"
                  " SELECT $1, $2::bigint + t.i - 1, t.d FROM unnest($3::text[]) WITH ORDINALITY AS t(d, i)"
                  " ON CONFLICT (interaction_id, seq) DO UPDATE SET data = EXCLUDED.data",
                  3},
    [S_EV_GET] = {"SELECT seq, data FROM events WHERE interaction_id = $1 AND seq > $2 ORDER BY seq", 2},
    [S_F_PUT] = {"INSERT INTO files(id, owner, display_name, mime, size, sha256, created, updated, expires)"
                 " VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                 9},
    [S_F_GET] = {"SELECT " FCOLS " FROM files WHERE owner = $1 AND id = $2", 2},
    [S_F_LIST] = {"SELECT " FCOLS " FROM files WHERE owner = $1 AND expires > $2 AND seq < $3"
                  " ORDER BY seq DESC LIMIT $4",
                  4},
    [S_F_DEL] = {"DELETE FROM files WHERE owner = $1 AND id = $2 RETURNING sha256", 2},
    [S_F_EXPIRED] = {"SELECT " FCOLS " FROM files WHERE expires <= $1 ORDER BY expires, seq LIMIT $2", 2},
    [S_REFS] = {"SELECT COUNT(*) FROM files WHERE sha256 = $1", 1},
    [S_USAGE] = {"SELECT COALESCE(SUM(size), 0), MIN(expires) FROM files WHERE owner = $1 AND expires > $2", 2},
    /* serialises file_create and blob_release of one blob across replicas */
    [S_LOCK_SHA] = {"SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", 1},
    [S_B_SIZE] = {"SELECT size FROM blobs WHERE sha256 = $1", 1},
    [S_B_INS] = {"INSERT INTO blobs(sha256, size, created) VALUES($1,$2,$3)", 3},
    [S_B_DEL_ONE] = {"DELETE FROM blobs WHERE sha256 = $1", 1},
    [S_C_INS] = {"INSERT INTO blob_chunks(sha256, idx, data) VALUES($1,$2,$3)", 3},
    [S_C_READ] = {"SELECT substring(data FROM $3 FOR $4) FROM blob_chunks WHERE sha256 = $1 AND idx = $2", 4},
    [S_B_RELEASE] = {"DELETE FROM blobs b WHERE b.sha256 = $1"
                     " AND NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = $1)",
                     1},
    [S_B_ORPHANS] = {"SELECT b.sha256 FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = b.sha256)"
                     " LIMIT 1000",
                     0},
    /* live runs and the queue (migration 2); $15 NULL: a job waiting for any replica */
    [S_LIVE_PUT] = {"WITH ins AS (INSERT INTO interactions(" ICOLS ", lease_owner, lease_until, job, job_model)"
                    " VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15::text,"
                    " CASE WHEN $15::text IS NULL THEN NULL ELSE " NOW_MS " + $16::bigint END, $17, $18) RETURNING id)"
                    " SELECT pg_notify('castor', 'job') FROM ins WHERE $15::text IS NULL",
                    18},
    /* locks the row of a run node still holds, until the transaction ends */
    [S_LIVE_HOLD] = {"UPDATE interactions SET has_output = has_output OR $3::boolean,"
                     " status = CASE WHEN $4::boolean AND status = 'queued' THEN 'in_progress' ELSE status END"
                     " WHERE id = $1 AND lease_owner = $2 RETURNING pg_notify('castor', 'ev ' || $1::text)",
                     4},
    [S_LIVE_END] = {"UPDATE interactions SET lease_owner = NULL, lease_until = NULL, job = NULL,"
                    " cancel_requested = false WHERE id = $1",
                    1},
    [S_RENEW] = {"UPDATE interactions SET lease_until = " NOW_MS " + $3::bigint"
                 " WHERE lease_owner = $1 AND id = ANY($2::text[]) AND " LIVE " RETURNING id, cancel_requested",
                 3},
    [S_CLAIM] = {"WITH c AS (SELECT id, lease_owner AS prev FROM interactions WHERE " LIVE
                 " AND (($4::boolean AND lease_owner IS NOT NULL AND lease_until < " NOW_MS ")"
                 " OR (lease_owner IS NULL AND job IS NOT NULL AND job_model = ANY($2::text[])))"
                 " ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED)"
                 " UPDATE interactions i SET lease_owner = $1, lease_until = " NOW_MS " + $3::bigint FROM c"
                 " WHERE i.id = c.id RETURNING i.id, i.owner, i.model, i.status, i.created, i.updated, i.previous_id,"
                 " i.request, i.input, i.history, i.turn, i.outputs, i.usage, i.errors, i.job, i.has_output,"
                 " i.cancel_requested, c.prev IS NOT NULL,"
                 " (SELECT COALESCE(MAX(seq), 0) FROM events e WHERE e.interaction_id = i.id)",
                 4},
    [S_RELEASE] = {"UPDATE interactions SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2"
                   " RETURNING pg_notify('castor', 'job')",
                   2},
    /* a job nobody holds is cancelled at once; a held one is flagged (the
     * SET expressions all read the old row) */
    [S_CANCEL] = {"UPDATE interactions SET cancel_requested = " LIVE ","
                  " status = CASE WHEN status = 'queued' AND lease_owner IS NULL THEN 'cancelled' ELSE status END,"
                  " updated = CASE WHEN status = 'queued' AND lease_owner IS NULL THEN $3::bigint ELSE updated END,"
                  " usage = CASE WHEN status = 'queued' AND lease_owner IS NULL THEN COALESCE(usage, $4) ELSE usage END,"
                  " job = CASE WHEN status = 'queued' AND lease_owner IS NULL THEN NULL ELSE job END"
                  " WHERE id = $1 AND owner = $2 RETURNING status, lease_owner IS NOT NULL AND " LIVE ","
                  " cancel_requested",
                  4},
    [S_NOTIFY] = {"SELECT pg_notify('castor', $1)", 1},
};

/* ---- the pool ------------------------------------------------------------------ */

typedef struct pg_conn {
    PGconn *c;         /* NULL: not open (yet, or since it broke) */
    uint32_t prepared; /* bit i: STMTS[i] is prepared on c */
    bool busy;
} pg_conn;

typedef struct pg_store {
    cst_store base;
    PGconn *lc;         /* notify_wait's own connection (LISTEN castor), or NULL */
    char *url;
    pg_conn *conns;
    int n_conns;
    pthread_mutex_t mu; /* the pool and the figures */
    pthread_cond_t cv;  /* a connection was released */
    uint64_t ops, errors, waits, opens;
    double op_s, op_max_s;
} pg_store;

_Static_assert(S_COUNT <= 32, "prepared bits fit a uint32_t");

static double now_mono(void) { return cst_time_now(); }

static void set_err(pg_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(pg_store *s, const char *fmt, ...) {
    char tmp[sizeof s->base.err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    /* libpq messages end with a newline (sometimes several lines) */
    for (char *p = tmp; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    size_t n = strlen(tmp);
    while (n && tmp[n - 1] == ' ') tmp[--n] = 0;
    memcpy(s->base.err, tmp, n + 1);
}

static PGconn *connect_url(const char *url, char *err, size_t errlen) {
    /* defaults; the URL's own parameters (expanded from dbname, later) win */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"5", "castor", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        cst_errf(err, errlen, "postgres: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        cst_errf(err, errlen, "postgres: %s", PQerrorMessage(c));
        for (char *p = err; *p; p++)
            if (*p == '\n') *p = ' ';
        PQfinish(c);
        return NULL;
    }
    /* no statement may hold a pooled connection forever (a stuck lock, a cut network) */
    PGresult *r = PQexec(c, "SET client_min_messages = warning; SET statement_timeout = '300s'");
    PQclear(r);
    return c;
}

/* A free connection, opened if needed; NULL with s->base.err set when the
 * database cannot be reached. Waits while all are busy. */
static pg_conn *acquire(pg_store *s) {
    pthread_mutex_lock(&s->mu);
    pg_conn *pc = NULL;
    for (;;) {
        /* prefer an open connection */
        for (int i = 0; i < s->n_conns && !pc; i++)
            if (!s->conns[i].busy && s->conns[i].c) pc = &s->conns[i];
        for (int i = 0; i < s->n_conns && !pc; i++)
            if (!s->conns[i].busy) pc = &s->conns[i];
        if (pc) break;
        s->waits++;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pc->busy = true;
    pthread_mutex_unlock(&s->mu);
    if (pc->c && PQstatus(pc->c) != CONNECTION_OK) {
        PQfinish(pc->c);
        pc->c = NULL;
    }
    if (!pc->c) {
        char err[sizeof s->base.err];
        pc->c = connect_url(s->url, err, sizeof err);
        pc->prepared = 0;
        pthread_mutex_lock(&s->mu);
        if (pc->c) s->opens++;
        else pc->busy = false;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (!pc->c) {
            set_err(s, "%s", err);
            return NULL;
        }
    }
    return pc;
}

/* Hand pc back; a connection that broke is closed (reopened on next use). */
static void release(pg_store *s, pg_conn *pc) {
    if (pc->c && PQstatus(pc->c) == CONNECTION_OK && PQtransactionStatus(pc->c) != PQTRANS_IDLE)
        PQclear(PQexec(pc->c, "ROLLBACK")); /* never hand on an open transaction */
    if (pc->c && (PQstatus(pc->c) != CONNECTION_OK || PQtransactionStatus(pc->c) != PQTRANS_IDLE)) {
        PQfinish(pc->c);
        pc->c = NULL;
    }
    pthread_mutex_lock(&s->mu);
    pc->busy = false;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- running statements ----------------------------------------------------------- */

typedef struct op {
    pg_store *s;
    pg_conn *pc;
    double t0;
    bool failed;
} op;

static bool op_begin(op *o, pg_store *s) {
    o->s = s;
    o->t0 = now_mono();
    o->failed = false;
    o->pc = acquire(s);
    if (!o->pc) {
        s->base.transient = true; /* the database cannot be reached now */
        cst_warn("store: %s", s->base.err);
        o->failed = true;
    }
    return o->pc != NULL;
}

static cst_status op_end(op *o, cst_status rc) {
    pg_store *s = o->s;
    if (o->pc) release(s, o->pc);
    double d = now_mono() - o->t0;
    pthread_mutex_lock(&s->mu);
    s->ops++;
    s->op_s += d;
    if (d > s->op_max_s) s->op_max_s = d;
    if (rc == CST_ERR_STORE || o->failed) s->errors++;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* A failure that may pass without an operator (the API answers 503): the
 * connection (SQLSTATE class 08, or no result at all), insufficient resources
 * (53), an operator's shutdown or a cancel (57), a rollback for a
 * serialization failure or deadlock (40). Anything else is a fault (500). */
static bool transient_state(PGresult *r) {
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!st) return true;
    return !strncmp(st, "08", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57", 2) || !strncmp(st, "40", 2);
}

static cst_status res_fail(op *o, PGresult *r, const char *what) {
    const char *m = r ? PQresultErrorMessage(r) : "";
    if (!m || !*m) m = PQerrorMessage(o->pc->c);
    o->s->base.transient = transient_state(r) || PQstatus(o->pc->c) != CONNECTION_OK;
    set_err(o->s, "postgres %s: %s", what, m);
    cst_warn("store: %s", o->s->base.err);
    o->failed = true;
    return CST_ERR_STORE;
}

static bool is_unique_violation(PGresult *r) {
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return st && !strcmp(st, "23505");
}

/* Execute STMTS[id] with text parameters (lens/fmts may be NULL: all text). */
static PGresult *exec_stmt(op *o, int id, const char *const *vals, const int *lens, const int *fmts, int binary_result) {
    pg_conn *pc = o->pc;
    char name[16];
    snprintf(name, sizeof name, "c%d", id);
    if (!(pc->prepared & (1u << id))) {
        PGresult *p = PQprepare(pc->c, name, STMTS[id].sql, STMTS[id].nparams, NULL);
        bool ok = p && PQresultStatus(p) == PGRES_COMMAND_OK;
        if (!ok) return p; /* the caller reports it */
        PQclear(p);
        pc->prepared |= 1u << id;
    }
    return PQexecPrepared(pc->c, name, STMTS[id].nparams, vals, lens, fmts, binary_result);
}

/* Run a statement that returns no rows (or rows we ignore); false on failure (reported). */
static bool exec_ok(op *o, int id, const char *const *vals, const char *what) {
    PGresult *r = exec_stmt(o, id, vals, NULL, NULL, 0);
    ExecStatusType t = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
        res_fail(o, r, what);
        PQclear(r);
        return false;
    }
    PQclear(r);
    return true;
}

static bool exec_sql(op *o, const char *sql) {
    PGresult *r = PQexec(o->pc->c, sql);
    ExecStatusType t = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
        res_fail(o, r, sql);
        PQclear(r);
        return false;
    }
    PQclear(r);
    return true;
}

static void rollback(op *o) {
    PGresult *r = PQexec(o->pc->c, "ROLLBACK");
    PQclear(r);
}

static char *col_dup(PGresult *r, int row, int col) {
    if (PQgetisnull(r, row, col)) return NULL;
    return strdup(PQgetvalue(r, row, col));
}

static int64_t col_i64(PGresult *r, int row, int col) {
    if (PQgetisnull(r, row, col)) return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

#define I64(buf, v) (snprintf(buf, sizeof buf, "%" PRId64, (int64_t)(v)), (const char *)buf)

/* ---- interactions ------------------------------------------------------------------- */

static cst_status pg_put(cst_store *bs, const cst_irec *r) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    char c[24], u[24];
    const char *v[14] = {r->id,      r->owner,       r->model,   r->status,  I64(c, r->created),
                         I64(u, r->updated), r->previous_id, r->request, r->input,   r->history,
                         r->turn,    r->outputs,     r->usage,   r->errors};
    return op_end(&o, exec_ok(&o, S_PUT, v, "insert") ? CST_OK : CST_ERR_STORE);
}

/* The ICOLS columns of row (the first 14) into *out; false when out of memory. */
static bool irec_row(PGresult *r, int row, cst_irec *out) {
    out->id = col_dup(r, row, 0);
    out->owner = col_dup(r, row, 1);
    out->model = col_dup(r, row, 2);
    out->status = col_dup(r, row, 3);
    out->created = col_i64(r, row, 4);
    out->updated = col_i64(r, row, 5);
    out->previous_id = col_dup(r, row, 6);
    out->request = col_dup(r, row, 7);
    out->input = col_dup(r, row, 8);
    out->history = col_dup(r, row, 9);
    out->turn = col_dup(r, row, 10);
    out->outputs = col_dup(r, row, 11);
    out->usage = col_dup(r, row, 12);
    out->errors = col_dup(r, row, 13);
    if (out->id && out->status) return true;
    cst_irec_clear(out);
    return false;
}

static cst_status pg_get(cst_store *bs, const char *owner, const char *id, cst_irec *out) {
    pg_store *s = (pg_store *)bs;
    memset(out, 0, sizeof *out);
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    const char *v[2] = {id, owner};
    PGresult *r = exec_stmt(&o, S_GET, v, NULL, NULL, 0);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = res_fail(&o, r, "select");
    } else if (PQntuples(r) == 0) {
        rc = CST_ERR_NOT_FOUND;
    } else if (!irec_row(r, 0, out)) {
        rc = CST_ERR_NOMEM;
    }
    PQclear(r);
    return op_end(&o, rc);
}

static cst_status pg_del(cst_store *bs, const char *owner, const char *id) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    const char *v[2] = {id, owner};
    PGresult *r = exec_stmt(&o, S_DEL, v, NULL, NULL, 0);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) rc = res_fail(&o, r, "delete");
    else if (col_i64(r, 0, 0) == 0) rc = CST_ERR_NOT_FOUND;
    PQclear(r);
    return op_end(&o, rc);
}

/* A text[] literal of v[0..n) into b (NUL-terminated): every element
 * quoted, '"' and '\\' escaped. false when out of memory. */
static bool array_lit(cst_buf *b, const char *const *v, size_t n) {
    cst_buf_put(b, "{", 1);
    for (size_t i = 0; i < n; i++) {
        cst_buf_put(b, i ? ",\"" : "\"", i ? 2 : 1);
        for (const char *p = v[i], *q = v[i];; p++) {
            if (*p && *p != '"' && *p != '\\') continue;
            cst_buf_put(b, q, (size_t)(p - q));
            if (!*p) break;
            cst_buf_put(b, "\\", 1);
            q = p;
        }
        cst_buf_put(b, "\"", 1);
    }
    cst_buf_put(b, "}", 2); /* with the NUL */
    return !b->oom;
}

/* The events as one statement (one round trip, one implicit transaction
 * unless o has opened one). */
static cst_status put_event_rows(op *o, const char *id, int64_t first_seq, const char *const *data, size_t n) {
    if (n == 0) return CST_OK;
    cst_buf arr = {0};
    if (!array_lit(&arr, data, n)) {
        cst_buf_free(&arr);
        return CST_ERR_NOMEM;
    }
    char sq[24];
    const char *v[3] = {id, I64(sq, first_seq), arr.p};
    const bool ok = exec_ok(o, S_EV_PUT, v, "insert events");
    cst_buf_free(&arr);
    return ok ? CST_OK : CST_ERR_STORE;
}

static cst_status pg_put_events(cst_store *bs, const char *id, int64_t first_seq, const char *const *data,
                                size_t n) {
    pg_store *s = (pg_store *)bs;
    if (n == 0) return CST_OK;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    return op_end(&o, put_event_rows(&o, id, first_seq, data, n));
}

static cst_status pg_events(cst_store *bs, const char *id, int64_t after, cst_store_event_fn fn, void *ud) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    char a[24];
    const char *v[2] = {id, I64(a, after)};
    PGresult *r = exec_stmt(&o, S_EV_GET, v, NULL, NULL, 0);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = res_fail(&o, r, "select events");
        PQclear(r);
        return op_end(&o, rc);
    }
    /* the rows are in memory: hand the connection back before the callbacks */
    release(s, o.pc);
    o.pc = NULL;
    for (int i = 0, n = PQntuples(r); i < n; i++)
        if (!fn(ud, col_i64(r, i, 0), PQgetvalue(r, i, 1))) break;
    PQclear(r);
    return op_end(&o, rc);
}

/* ---- files ---------------------------------------------------------------------------- */

static bool frec_row(PGresult *r, int i, cst_frec *f) {
    memset(f, 0, sizeof *f);
    f->seq = col_i64(r, i, 0);
    f->id = col_dup(r, i, 1);
    f->owner = col_dup(r, i, 2);
    f->display_name = col_dup(r, i, 3);
    f->mime = col_dup(r, i, 4);
    f->size = col_i64(r, i, 5);
    f->sha256 = col_dup(r, i, 6);
    f->created = col_i64(r, i, 7);
    f->updated = col_i64(r, i, 8);
    f->expires = col_i64(r, i, 9);
    if (!f->id || !f->owner || !f->mime || !f->sha256) {
        cst_frec_clear(f);
        return false;
    }
    return true;
}

/* Insert file r within o (no transaction of its own). */
static cst_status file_insert(op *o, const cst_frec *r) {
    char sz[24], c[24], u[24], e[24];
    const char *v[9] = {r->id,   r->owner,         r->display_name,  r->mime,         I64(sz, r->size),
                        r->sha256, I64(c, r->created), I64(u, r->updated), I64(e, r->expires)};
    PGresult *res = exec_stmt(o, S_F_PUT, v, NULL, NULL, 0);
    cst_status rc = CST_OK;
    if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
        rc = CST_OK;
    } else if (is_unique_violation(res)) {
        set_err(o->s, "file '%s' already exists", r->id);
        rc = CST_ERR_CONFLICT;
    } else {
        rc = res_fail(o, res, "insert file");
    }
    PQclear(res);
    return rc;
}

static cst_status pg_file_put(cst_store *bs, const cst_frec *r) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    return op_end(&o, file_insert(&o, r));
}

static cst_status pg_file_get(cst_store *bs, const char *owner, const char *id, cst_frec *out) {
    pg_store *s = (pg_store *)bs;
    memset(out, 0, sizeof *out);
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    const char *v[2] = {owner, id};
    PGresult *r = exec_stmt(&o, S_F_GET, v, NULL, NULL, 0);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) rc = res_fail(&o, r, "select file");
    else if (PQntuples(r) == 0) rc = CST_ERR_NOT_FOUND;
    else if (!frec_row(r, 0, out)) rc = CST_ERR_NOMEM;
    PQclear(r);
    return op_end(&o, rc);
}

static cst_status collect(op *o, int id, const char *const *v, size_t limit, cst_frec **out, size_t *n) {
    *out = NULL;
    *n = 0;
    PGresult *r = exec_stmt(o, id, v, NULL, NULL, 0);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        cst_status rc = res_fail(o, r, "select files");
        PQclear(r);
        return rc;
    }
    size_t k = CST_MIN((size_t)PQntuples(r), limit);
    cst_frec *list = k ? calloc(k, sizeof *list) : NULL;
    if (k && !list) {
        PQclear(r);
        return CST_ERR_NOMEM;
    }
    for (size_t i = 0; i < k; i++) {
        if (!frec_row(r, (int)i, &list[i])) {
            cst_frec_free_list(list, i);
            PQclear(r);
            return CST_ERR_NOMEM;
        }
    }
    PQclear(r);
    *out = list;
    *n = k;
    return CST_OK;
}

static cst_status pg_file_list(cst_store *bs, const char *owner, int64_t now, int64_t before, size_t limit,
                               cst_frec **out, size_t *n) {
    pg_store *s = (pg_store *)bs;
    *out = NULL;
    *n = 0;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    char a[24], b[24], l[24];
    const char *v[4] = {owner, I64(a, now), I64(b, before > 0 ? before : INT64_MAX),
                        I64(l, CST_MIN(limit, (size_t)INT32_MAX))};
    return op_end(&o, collect(&o, S_F_LIST, v, limit, out, n));
}

static cst_status pg_file_del(cst_store *bs, const char *owner, const char *id, char *sha256) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    const char *v[2] = {owner, id};
    PGresult *r = exec_stmt(&o, S_F_DEL, v, NULL, NULL, 0);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) rc = res_fail(&o, r, "delete file");
    else if (PQntuples(r) == 0) rc = CST_ERR_NOT_FOUND;
    else if (sha256) snprintf(sha256, 65, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return op_end(&o, rc);
}

static cst_status pg_file_expired(cst_store *bs, int64_t now, size_t limit, cst_frec **out, size_t *n) {
    pg_store *s = (pg_store *)bs;
    *out = NULL;
    *n = 0;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    char a[24], l[24];
    const char *v[2] = {I64(a, now), I64(l, CST_MIN(limit, (size_t)INT32_MAX))};
    return op_end(&o, collect(&o, S_F_EXPIRED, v, limit, out, n));
}

static cst_status pg_blob_refs(cst_store *bs, const char *sha256, int64_t *n) {
    pg_store *s = (pg_store *)bs;
    *n = 0;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    const char *v[1] = {sha256};
    PGresult *r = exec_stmt(&o, S_REFS, v, NULL, NULL, 0);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) rc = res_fail(&o, r, "count files");
    else *n = col_i64(r, 0, 0);
    PQclear(r);
    return op_end(&o, rc);
}

static cst_status pg_file_usage(cst_store *bs, const char *owner, int64_t now, int64_t *bytes,
                                int64_t *next_expiry) {
    pg_store *s = (pg_store *)bs;
    *bytes = 0;
    if (next_expiry) *next_expiry = 0;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    char a[24];
    const char *v[2] = {owner, I64(a, now)};
    PGresult *r = exec_stmt(&o, S_USAGE, v, NULL, NULL, 0);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = res_fail(&o, r, "sum file sizes");
    } else {
        *bytes = col_i64(r, 0, 0);
        if (next_expiry) *next_expiry = col_i64(r, 0, 1);
    }
    PQclear(r);
    return op_end(&o, rc);
}

/* ---- blobs: rows of CHUNK-byte bytea ---------------------------------------------------- */

/* Copy the file at path (size bytes) into blob_chunks within o's transaction. */
static cst_status copy_chunks(op *o, const char *sha, const char *path, int64_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(o->s, "open %s: %s", path, strerror(errno));
        return CST_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size != size) {
        set_err(o->s, "%s is not %lld bytes", path, (long long)size);
        close(fd);
        return CST_ERR_IO;
    }
    char *buf = malloc(CHUNK);
    if (!buf) {
        close(fd);
        return CST_ERR_NOMEM;
    }
    cst_status rc = CST_OK;
    int64_t off = 0;
    for (int idx = 0; off < size && rc == CST_OK; idx++) {
        size_t want = (size_t)CST_MIN((int64_t)CHUNK, size - off), got = 0;
        while (got < want) {
            ssize_t k = pread(fd, buf + got, want - got, (off_t)(off + (int64_t)got));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            got += (size_t)k;
        }
        if (got != want) {
            set_err(o->s, "read %s: %s", path, got < want ? "short read" : strerror(errno));
            rc = CST_ERR_IO;
            break;
        }
        char ix[24];
        const char *v[3] = {sha, I64(ix, idx), buf};
        const int lens[3] = {0, 0, (int)want}, fmts[3] = {0, 0, 1};
        PGresult *r = exec_stmt(o, S_C_INS, v, lens, fmts, 0);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) rc = res_fail(o, r, "insert blob chunk");
        PQclear(r);
        off += (int64_t)want;
    }
    free(buf);
    close(fd);
    return rc;
}

static cst_status pg_file_create(cst_store *bs, const cst_frec *r, const char *path) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    if (!exec_sql(&o, "BEGIN")) return op_end(&o, CST_ERR_STORE);
    const char *v1[1] = {r->sha256};
    cst_status rc = CST_OK;
    if (!exec_ok(&o, S_LOCK_SHA, v1, "lock blob")) {
        rc = CST_ERR_STORE;
        goto fail;
    }
    PGresult *q = exec_stmt(&o, S_B_SIZE, v1, NULL, NULL, 0);
    if (!q || PQresultStatus(q) != PGRES_TUPLES_OK) {
        rc = res_fail(&o, q, "select blob");
        PQclear(q);
        goto fail;
    }
    bool have = PQntuples(q) == 1 && col_i64(q, 0, 0) == r->size;
    bool stale = PQntuples(q) == 1 && !have;
    PQclear(q);
    if (stale && !exec_ok(&o, S_B_DEL_ONE, v1, "delete blob")) {
        rc = CST_ERR_STORE;
        goto fail;
    }
    if (!have) {
        char sz[24], t[24];
        const char *v[3] = {r->sha256, I64(sz, r->size), I64(t, time(NULL))};
        if (!exec_ok(&o, S_B_INS, v, "insert blob")) {
            rc = CST_ERR_STORE;
            goto fail;
        }
        rc = copy_chunks(&o, r->sha256, path, r->size);
        if (rc) goto fail;
    }
    rc = file_insert(&o, r);
    if (rc) goto fail;
    return op_end(&o, exec_sql(&o, "COMMIT") ? CST_OK : CST_ERR_STORE);
fail:
    rollback(&o);
    return op_end(&o, rc);
}

static cst_status pg_blob_read(cst_store *bs, const char *sha256, int64_t off, void *buf, size_t n, size_t *got) {
    pg_store *s = (pg_store *)bs;
    *got = 0;
    if (off < 0) return CST_ERR_INVALID_ARG;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    int64_t idx = off / CHUNK, in = off % CHUNK;
    size_t want = CST_MIN(n, (size_t)(CHUNK - in));
    char a[24], b[24], c[24];
    const char *v[4] = {sha256, I64(a, idx), I64(b, in + 1), I64(c, want)};
    PGresult *r = exec_stmt(&o, S_C_READ, v, NULL, NULL, 1);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = res_fail(&o, r, "read blob");
    } else if (PQntuples(r) == 1) {
        size_t k = CST_MIN((size_t)PQgetlength(r, 0, 0), want);
        memcpy(buf, PQgetvalue(r, 0, 0), k);
        *got = k;
    } else {
        /* past the last chunk, or no such blob */
        PGresult *q = exec_stmt(&o, S_B_SIZE, v, NULL, NULL, 0);
        if (!q || PQresultStatus(q) != PGRES_TUPLES_OK) rc = res_fail(&o, q, "select blob");
        else if (PQntuples(q) == 0) rc = CST_ERR_NOT_FOUND;
        PQclear(q);
    }
    PQclear(r);
    return op_end(&o, rc);
}

static cst_status pg_blob_release(cst_store *bs, const char *sha256, bool *removed) {
    pg_store *s = (pg_store *)bs;
    if (removed) *removed = false;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    if (!exec_sql(&o, "BEGIN")) return op_end(&o, CST_ERR_STORE);
    const char *v[1] = {sha256};
    if (!exec_ok(&o, S_LOCK_SHA, v, "lock blob")) {
        rollback(&o);
        return op_end(&o, CST_ERR_STORE);
    }
    PGresult *r = exec_stmt(&o, S_B_RELEASE, v, NULL, NULL, 0);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        cst_status rc = res_fail(&o, r, "delete blob");
        PQclear(r);
        rollback(&o);
        return op_end(&o, rc);
    }
    bool gone = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    if (!exec_sql(&o, "COMMIT")) return op_end(&o, CST_ERR_STORE);
    if (removed) *removed = gone;
    return op_end(&o, CST_OK);
}

static cst_status pg_blob_gc(cst_store *bs, size_t *removed) {
    pg_store *s = (pg_store *)bs;
    if (removed) *removed = 0;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    PGresult *r = exec_stmt(&o, S_B_ORPHANS, NULL, NULL, NULL, 0);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        cst_status rc = res_fail(&o, r, "select orphan blobs");
        PQclear(r);
        return op_end(&o, rc);
    }
    release(s, o.pc);
    o.pc = NULL;
    cst_status rc = CST_OK;
    size_t k = 0;
    for (int i = 0, n = PQntuples(r); i < n && rc == CST_OK; i++) {
        bool gone = false;
        rc = pg_blob_release(bs, PQgetvalue(r, i, 0), &gone);
        if (gone) k++;
    }
    PQclear(r);
    if (removed) *removed = k;
    return op_end(&o, rc);
}


/* ---- live runs and the background-job queue (migration 2) ------------------------------ */

void cst_job_clear(cst_job *j) {
    cst_irec_clear(&j->rec);
    free(j->body);
    memset(j, 0, sizeof *j);
}

static bool col_bool(PGresult *r, int row, int col) {
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

/* The 14 values of the upsert S_PUT / the first 14 of S_LIVE_PUT (c, u: buffers for the times). */
#define IREC_VALS(r, c, u)                                                                                   \
    (r)->id, (r)->owner, (r)->model, (r)->status, I64(c, (r)->created), I64(u, (r)->updated), (r)->previous_id, \
        (r)->request, (r)->input, (r)->history, (r)->turn, (r)->outputs, (r)->usage, (r)->errors

static cst_status pg_live_put(cst_store *bs, const cst_irec *r, const char *node, int64_t lease_ms,
                              const char *body, const char *job_model) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    char c[24], u[24], l[24];
    const char *v[18] = {IREC_VALS(r, c, u), node, I64(l, lease_ms), body, job_model};
    return op_end(&o, exec_ok(&o, S_LIVE_PUT, v, "insert live run") ? CST_OK : CST_ERR_STORE);
}

/* In o's open transaction: lock the row of id if node holds it (CST_ERR_CONFLICT if not). */
static cst_status hold(op *o, const char *id, const char *node, bool output, bool started) {
    const char *v[4] = {id, node, output ? "true" : "false", started ? "true" : "false"};
    PGresult *r = exec_stmt(o, S_LIVE_HOLD, v, NULL, NULL, 0);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) rc = res_fail(o, r, "hold live run");
    else if (PQntuples(r) == 0) rc = CST_ERR_CONFLICT;
    PQclear(r);
    return rc;
}

static cst_status pg_live_events(cst_store *bs, const char *id, const char *node, int64_t first_seq,
                                 const char *const *data, size_t n, bool output, bool started) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    if (!exec_sql(&o, "BEGIN")) return op_end(&o, CST_ERR_STORE);
    cst_status rc = hold(&o, id, node, output, started);
    if (rc == CST_OK) rc = put_event_rows(&o, id, first_seq, data, n);
    if (rc == CST_OK) return op_end(&o, exec_sql(&o, "COMMIT") ? CST_OK : CST_ERR_STORE);
    rollback(&o);
    return op_end(&o, rc);
}

static cst_status pg_live_finish(cst_store *bs, const cst_irec *r, const char *node, int64_t first_seq,
                                 const char *const *data, size_t n) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    if (!exec_sql(&o, "BEGIN")) return op_end(&o, CST_ERR_STORE);
    char c[24], u[24];
    const char *v[14] = {IREC_VALS(r, c, u)};
    const char *vid[1] = {r->id};
    cst_status rc = hold(&o, r->id, node, false, false);
    if (rc == CST_OK && !exec_ok(&o, S_PUT, v, "update record")) rc = CST_ERR_STORE;
    if (rc == CST_OK) rc = put_event_rows(&o, r->id, first_seq, data, n);
    if (rc == CST_OK && !exec_ok(&o, S_LIVE_END, vid, "end lease")) rc = CST_ERR_STORE;
    if (rc == CST_OK) return op_end(&o, exec_sql(&o, "COMMIT") ? CST_OK : CST_ERR_STORE);
    rollback(&o);
    return op_end(&o, rc);
}

static cst_status pg_lease_renew(cst_store *bs, const char *node, const char *const *ids, size_t n, int64_t lease_ms,
                                 bool *held, bool *cancel) {
    pg_store *s = (pg_store *)bs;
    for (size_t i = 0; i < n; i++) held[i] = cancel[i] = false;
    if (n == 0) return CST_OK;
    cst_buf arr = {0};
    if (!array_lit(&arr, ids, n)) {
        cst_buf_free(&arr);
        return CST_ERR_NOMEM;
    }
    op o;
    if (!op_begin(&o, s)) {
        cst_buf_free(&arr);
        return op_end(&o, CST_ERR_STORE);
    }
    char l[24];
    const char *v[3] = {node, arr.p, I64(l, lease_ms)};
    PGresult *r = exec_stmt(&o, S_RENEW, v, NULL, NULL, 0);
    cst_buf_free(&arr);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = res_fail(&o, r, "renew leases");
    } else {
        for (int k = 0, m = PQntuples(r); k < m; k++)
            for (size_t i = 0; i < n; i++)
                if (!strcmp(ids[i], PQgetvalue(r, k, 0))) {
                    held[i] = true;
                    cancel[i] = col_bool(r, k, 1);
                }
    }
    PQclear(r);
    return op_end(&o, rc);
}

static cst_status pg_job_claim(cst_store *bs, const char *node, const char *const *models, size_t n_models,
                               bool takeover, int64_t lease_ms, cst_job *out) {
    pg_store *s = (pg_store *)bs;
    memset(out, 0, sizeof *out);
    cst_buf arr = {0};
    if (!array_lit(&arr, models, n_models)) {
        cst_buf_free(&arr);
        return CST_ERR_NOMEM;
    }
    op o;
    if (!op_begin(&o, s)) {
        cst_buf_free(&arr);
        return op_end(&o, CST_ERR_STORE);
    }
    char l[24];
    const char *v[4] = {node, arr.p, I64(l, lease_ms), takeover ? "true" : "false"};
    PGresult *r = exec_stmt(&o, S_CLAIM, v, NULL, NULL, 0);
    cst_buf_free(&arr);
    cst_status rc = CST_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = res_fail(&o, r, "claim a job");
    } else if (PQntuples(r) == 0) {
        rc = CST_ERR_NOT_FOUND;
    } else if (!irec_row(r, 0, &out->rec)) {
        rc = CST_ERR_NOMEM;
    } else {
        out->body = col_dup(r, 0, 14);
        out->is_job = out->body != NULL;
        out->output = col_bool(r, 0, 15);
        out->cancel = col_bool(r, 0, 16);
        out->takeover = col_bool(r, 0, 17);
        out->n_events = col_i64(r, 0, 18);
    }
    PQclear(r);
    return op_end(&o, rc);
}

static cst_status pg_job_release(cst_store *bs, const char *id, const char *node) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    const char *v[2] = {id, node};
    return op_end(&o, exec_ok(&o, S_RELEASE, v, "release a job") ? CST_OK : CST_ERR_STORE);
}

static cst_status pg_cancel_request(cst_store *bs, const char *owner, const char *id, int64_t now,
                                    const char *usage, char *status) {
    pg_store *s = (pg_store *)bs;
    status[0] = 0;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    char t[24];
    const char *v[4] = {id, owner, I64(t, now), usage};
    PGresult *r = exec_stmt(&o, S_CANCEL, v, NULL, NULL, 0);
    cst_status rc = CST_OK;
    bool held = false;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) rc = res_fail(&o, r, "request a cancel");
    else if (PQntuples(r) == 0) rc = CST_ERR_NOT_FOUND;
    else {
        snprintf(status, 24, "%s", PQgetvalue(r, 0, 0));
        held = col_bool(r, 0, 1);
        if (!col_bool(r, 0, 2)) rc = CST_ERR_CONFLICT; /* terminal already */
    }
    PQclear(r);
    if (rc == CST_OK && held) { /* wake the replica that runs it (after the commit above) */
        char p[80];
        snprintf(p, sizeof p, "cancel %s", id);
        const char *vn[1] = {p};
        if (!exec_ok(&o, S_NOTIFY, vn, "notify")) rc = CST_ERR_STORE;
    }
    return op_end(&o, rc);
}

static cst_status pg_notify_wait(cst_store *bs, double timeout_s, char *payload, size_t n) {
    pg_store *s = (pg_store *)bs;
    payload[0] = 0;
    if (s->lc && PQstatus(s->lc) != CONNECTION_OK) {
        PQfinish(s->lc);
        s->lc = NULL;
    }
    if (!s->lc) {
        char err[sizeof s->base.err];
        s->lc = connect_url(s->url, err, sizeof err);
        PGresult *r = s->lc ? PQexec(s->lc, "LISTEN castor") : NULL;
        const bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            if (s->lc) PQfinish(s->lc);
            s->lc = NULL;
            usleep((useconds_t)(CST_MIN(timeout_s, 1.0) * 1e6)); /* the database is away: no busy loop */
            return CST_ERR_STORE;
        }
    }
    PGnotify *nt = NULL;
    if (PQconsumeInput(s->lc)) nt = PQnotifies(s->lc);
    if (!nt) {
        struct pollfd p = {.fd = PQsocket(s->lc), .events = POLLIN};
        if (poll(&p, 1, (int)(timeout_s * 1000)) > 0) {
            if (!PQconsumeInput(s->lc)) { /* broken: reopened on the next call */
                PQfinish(s->lc);
                s->lc = NULL;
                return CST_ERR_STORE;
            }
            nt = PQnotifies(s->lc);
        }
    }
    if (!nt) return CST_ERR_NOT_FOUND;
    snprintf(payload, n, "%s", nt->extra);
    PQfreemem(nt);
    return CST_OK;
}

static cst_status pg_ping(cst_store *bs) {
    pg_store *s = (pg_store *)bs;
    op o;
    if (!op_begin(&o, s)) return op_end(&o, CST_ERR_STORE);
    return op_end(&o, exec_sql(&o, "SELECT 1") ? CST_OK : CST_ERR_STORE);
}

static void pg_stats(cst_store *bs, cst_store_stats *out) {
    pg_store *s = (pg_store *)bs;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    out->ops = s->ops;
    out->errors = s->errors;
    out->op_seconds = s->op_s;
    out->op_max_seconds = s->op_max_s;
    out->pool_size = s->n_conns;
    for (int i = 0; i < s->n_conns; i++) {
        if (s->conns[i].c) out->pool_open++;
        if (s->conns[i].busy) out->pool_busy++;
    }
    out->pool_waits = s->waits;
    out->reconnects = s->opens > 1 ? s->opens - 1 : 0;
    pthread_mutex_unlock(&s->mu);
}

static void pg_close(cst_store *bs) {
    pg_store *s = (pg_store *)bs;
    if (s->lc) PQfinish(s->lc);
    for (int i = 0; i < s->n_conns; i++)
        if (s->conns[i].c) PQfinish(s->conns[i].c);
    free(s->conns);
    free(s->url);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static const struct cst_store_ops pg_ops = {
    .name = "postgres",
    .put = pg_put,
    .get = pg_get,
    .del = pg_del,
    .put_events = pg_put_events,
    .events = pg_events,
    .close = pg_close,
    .file_put = pg_file_put,
    .file_get = pg_file_get,
    .file_list = pg_file_list,
    .file_del = pg_file_del,
    .file_expired = pg_file_expired,
    .blob_refs = pg_blob_refs,
    .file_usage = pg_file_usage,
    .file_create = pg_file_create,
    .blob_read = pg_blob_read,
    .blob_release = pg_blob_release,
    .blob_gc = pg_blob_gc,
    .ping = pg_ping,
    .stats = pg_stats,
    .live_put = pg_live_put,
    .live_events = pg_live_events,
    .live_finish = pg_live_finish,
    .lease_renew = pg_lease_renew,
    .job_claim = pg_job_claim,
    .job_release = pg_job_release,
    .cancel_request = pg_cancel_request,
    .notify_wait = pg_notify_wait,
};

/* Apply the migrations newer than the database's version, each in its own
 * transaction, under a session advisory lock. */
static cst_status migrate(PGconn *c, char *err, size_t errlen) {
    const char *steps[] = {"SELECT pg_advisory_lock(" MIGRATE_LOCK ")",
                           "CREATE TABLE IF NOT EXISTS schema_migrations ("
                           " version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)"};
    cst_status rc = CST_OK;
    for (size_t i = 0; i < CST_ARRAY_LEN(steps) && rc == CST_OK; i++) {
        PGresult *r = PQexec(c, steps[i]);
        if (!r || (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)) {
            cst_errf(err, errlen, "postgres migrate: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
            rc = CST_ERR_STORE;
        }
        PQclear(r);
    }
    int have = 0;
    if (rc == CST_OK) {
        PGresult *r = PQexec(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
        if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            have = atoi(PQgetvalue(r, 0, 0));
        } else {
            cst_errf(err, errlen, "postgres migrate: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
            rc = CST_ERR_STORE;
        }
        PQclear(r);
    }
    if (rc == CST_OK && have > (int)CST_ARRAY_LEN(MIGRATIONS)) {
        cst_errf(err, errlen, "the database schema is version %d, newer than this castor knows (%zu)", have,
                 CST_ARRAY_LEN(MIGRATIONS));
        rc = CST_ERR_STORE;
    }
    for (int v = have + 1; rc == CST_OK && v <= (int)CST_ARRAY_LEN(MIGRATIONS); v++) {
        char rec[160];
        snprintf(rec, sizeof rec, "INSERT INTO schema_migrations(version, applied) VALUES(%d, %lld)", v,
                 (long long)time(NULL));
        const char *seq[] = {"BEGIN", MIGRATIONS[v - 1], rec, "COMMIT"};
        for (size_t i = 0; i < CST_ARRAY_LEN(seq); i++) {
            PGresult *r = PQexec(c, seq[i]);
            if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
                cst_errf(err, errlen, "postgres migration %d: %s", v, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
                PQclear(r);
                PQclear(PQexec(c, "ROLLBACK"));
                rc = CST_ERR_STORE;
                break;
            }
            PQclear(r);
        }
        if (rc == CST_OK) cst_info("store: applied PostgreSQL schema migration %d", v);
    }
    PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")"));
    for (char *p = err; rc && *p; p++)
        if (*p == '\n') *p = ' ';
    return rc;
}

cst_status cst_store_open_pg(const char *url, cst_store **out, char *err, size_t errlen) {
    *out = NULL;
    PGconn *c = connect_url(url, err, errlen);
    if (!c) return CST_ERR_STORE;
    cst_status rc = migrate(c, err, errlen);
    if (rc) {
        PQfinish(c);
        return rc;
    }
    pg_store *s = calloc(1, sizeof *s);
    int n = 8;
    const char *e = getenv("CASTOR_PG_POOL");
    if (e && atoi(e) > 0) n = CST_MIN(atoi(e), 256);
    if (s) {
        s->url = strdup(url);
        s->conns = calloc((size_t)n, sizeof *s->conns);
    }
    if (!s || !s->url || !s->conns) {
        PQfinish(c);
        if (s) {
            free(s->url);
            free(s->conns);
        }
        free(s);
        return CST_ERR_NOMEM;
    }
    s->base.ops = &pg_ops;
    s->n_conns = n;
    s->conns[0].c = c; /* the migration's connection joins the pool */
    s->opens = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    *out = &s->base;
    return CST_OK;
}
