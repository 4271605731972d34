/* test_store.c: the cst_store contract (put/get/replace/delete, owner
 * partitioning, event log order and replay-after, files with their blobs,
 * concurrency), run against SQLite, or against PostgreSQL when CST_TEST_PG
 * holds a connection URL (scripts/with-pg.sh sets it; ctest case
 * test_store_pg). Every case uses ids of its own, so that the cases share
 * one PostgreSQL database. */
#include "core/core.h"
#include "store/store.h"
#include "test.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *pg_url(void) {
    const char *u = getenv("CST_TEST_PG");
    return u && *u ? u : NULL;
}

/* name: the SQLite file in the temp dir (PostgreSQL: the one database) */
static cst_store *open_tmp(const char *name) {
    char path[1024];
    if (pg_url()) snprintf(path, sizeof path, "%s", pg_url());
    else snprintf(path, sizeof path, "%s/%s", cst_test_tmpdir(), name);
    cst_store *s = NULL;
    char err[256];
    cst_status st = cst_store_open(path, &s, err, sizeof err);
    ASSERT_MSG(st == CST_OK, "open %s: %s", path, err);
    return s;
}

TEST(store_put_get_replace) {
    cst_store *s = open_tmp("a.db");
    cst_irec r = {.id = "v1_abc", .owner = "k1", .model = "m", .status = "in_progress", .created = 10,
                  .updated = 10, .turn = "[]", .outputs = "[]"};
    ASSERT_OK(cst_store_put(s, &r));
    cst_irec g;
    ASSERT_OK(cst_store_get(s, "k1", "v1_abc", &g));
    ASSERT_STREQ(g.status, "in_progress");
    ASSERT_STREQ(g.model, "m");
    ASSERT(g.previous_id == NULL);
    ASSERT(g.usage == NULL);
    cst_irec_clear(&g);
    r.status = "completed";
    r.updated = 12;
    r.usage = "{\"total_tokens\":3}";
    r.previous_id = "v1_prev";
    ASSERT_OK(cst_store_put(s, &r));
    ASSERT_OK(cst_store_get(s, "k1", "v1_abc", &g));
    ASSERT_STREQ(g.status, "completed");
    ASSERT_EQ(g.updated, 12);
    ASSERT_EQ(g.created, 10);
    ASSERT_STREQ(g.usage, "{\"total_tokens\":3}");
    ASSERT_STREQ(g.previous_id, "v1_prev");
    cst_irec_clear(&g);
    cst_store_close(s);
}

TEST(store_owner_partition_and_delete) {
    cst_store *s = open_tmp("b.db");
    cst_irec r = {.id = "v1_x", .owner = "k1", .status = "completed", .created = 1, .updated = 1};
    ASSERT_OK(cst_store_put(s, &r));
    cst_irec g;
    ASSERT_EQ(cst_store_get(s, "k2", "v1_x", &g), CST_ERR_NOT_FOUND);
    ASSERT_EQ(cst_store_del(s, "k2", "v1_x"), CST_ERR_NOT_FOUND);
    ASSERT_EQ(cst_store_get(s, "k1", "v1_nope", &g), CST_ERR_NOT_FOUND);
    const char *ev[] = {"{\"a\":1}", "{\"a\":2}"};
    ASSERT_OK(cst_store_put_events(s, "v1_x", 1, ev, 2));
    ASSERT_OK(cst_store_del(s, "k1", "v1_x"));
    ASSERT_EQ(cst_store_get(s, "k1", "v1_x", &g), CST_ERR_NOT_FOUND);
    ASSERT_EQ(cst_store_del(s, "k1", "v1_x"), CST_ERR_NOT_FOUND);
    cst_store_close(s);
}

typedef struct {
    int n;
    int64_t seqs[8];
    char data[8][32];
} collect_t;

static bool collect(void *ud, int64_t seq, const char *data) {
    collect_t *c = ud;
    if (c->n >= 8) return false;
    c->seqs[c->n] = seq;
    snprintf(c->data[c->n], 32, "%s", data);
    c->n++;
    return true;
}

TEST(store_events_order_and_after) {
    cst_store *s = open_tmp("c.db");
    const char *ev1[] = {"e1", "e2", "e3"};
    const char *ev2[] = {"e4", "e5"};
    ASSERT_OK(cst_store_put_events(s, "v1_y", 1, ev1, 3));
    ASSERT_OK(cst_store_put_events(s, "v1_y", 4, ev2, 2));
    ASSERT_OK(cst_store_put_events(s, "v1_other", 1, ev2, 2));
    collect_t c = {0};
    ASSERT_OK(cst_store_events(s, "v1_y", 0, collect, &c));
    ASSERT_EQ(c.n, 5);
    for (int i = 0; i < 5; i++) ASSERT_EQ(c.seqs[i], i + 1);
    ASSERT_STREQ(c.data[4], "e5");
    memset(&c, 0, sizeof c);
    ASSERT_OK(cst_store_events(s, "v1_y", 3, collect, &c));
    ASSERT_EQ(c.n, 2);
    ASSERT_STREQ(c.data[0], "e4");
    cst_store_close(s);
}

TEST(store_reopen_persists) {
    char path[1024];
    if (pg_url()) snprintf(path, sizeof path, "%s", pg_url());
    else snprintf(path, sizeof path, "sqlite:%s/d.db", cst_test_tmpdir());
    cst_store *s = NULL;
    char err[256];
    ASSERT_OK(cst_store_open(path, &s, err, sizeof err));
    cst_irec r = {.id = "v1_p", .owner = "o", .status = "completed", .created = 5, .updated = 6};
    ASSERT_OK(cst_store_put(s, &r));
    cst_store_close(s);
    ASSERT_OK(cst_store_open(path, &s, err, sizeof err));
    cst_irec g;
    ASSERT_OK(cst_store_get(s, "o", "v1_p", &g));
    ASSERT_EQ(g.updated, 6);
    cst_irec_clear(&g);
    cst_store_close(s);
}

TEST(store_url_schemes) {
    cst_store *s = NULL;
    char err[256];
    /* nothing listens on port 1: a clear error, not a hang or a crash */
    ASSERT_EQ(cst_store_open("postgres://u@127.0.0.1:1/db", &s, err, sizeof err), CST_ERR_STORE);
    ASSERT(s == NULL);
    ASSERT(strstr(err, "postgres") != NULL);
    ASSERT_EQ(cst_store_open("ftp://x", &s, err, sizeof err), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_store_open("/nonexistent-dir-xyz/a.db", &s, err, sizeof err), CST_ERR_STORE);
}

TEST(store_fail_unfinished) {
    cst_store *s = open_tmp("f.db");
    if (pg_url()) { /* replicas share the table: one cannot tell its own interrupted runs (store.h) */
        int64_t n = -1;
        ASSERT_EQ(cst_store_fail_unfinished(s, 100, "[]", "{}", &n), CST_ERR_UNSUPPORTED);
        cst_store_close(s);
        return;
    }
    cst_irec q = {.id = "v1_q", .owner = "o1", .status = "queued", .created = 1, .updated = 1, .turn = "[]"};
    cst_irec p = {.id = "v1_p", .owner = "o2", .status = "in_progress", .created = 2, .updated = 2,
                  .usage = "{\"total_tokens\":3}"};
    cst_irec c = {.id = "v1_c", .owner = "o1", .status = "completed", .created = 3, .updated = 4,
                  .usage = "{\"total_tokens\":9}"};
    ASSERT_OK(cst_store_put(s, &q));
    ASSERT_OK(cst_store_put(s, &p));
    ASSERT_OK(cst_store_put(s, &c));
    int64_t n = -1;
    ASSERT_OK(cst_store_fail_unfinished(s, 100, "[{\"code\":\"internal\",\"message\":\"stopped\"}]", "{\"z\":0}", &n));
    ASSERT_EQ(n, 2);
    cst_irec g;
    ASSERT_OK(cst_store_get(s, "o1", "v1_q", &g));
    ASSERT_STREQ(g.status, "failed");
    ASSERT_EQ(g.updated, 100);
    ASSERT_STREQ(g.errors, "[{\"code\":\"internal\",\"message\":\"stopped\"}]");
    ASSERT_STREQ(g.usage, "{\"z\":0}");
    ASSERT_STREQ(g.turn, "[]");
    cst_irec_clear(&g);
    ASSERT_OK(cst_store_get(s, "o2", "v1_p", &g));
    ASSERT_STREQ(g.status, "failed");
    ASSERT_STREQ(g.usage, "{\"total_tokens\":3}"); /* kept */
    cst_irec_clear(&g);
    ASSERT_OK(cst_store_get(s, "o1", "v1_c", &g));
    ASSERT_STREQ(g.status, "completed");
    ASSERT_EQ(g.updated, 4);
    ASSERT(g.errors == NULL);
    cst_irec_clear(&g);
    ASSERT_OK(cst_store_fail_unfinished(s, 101, "[]", "{}", &n));
    ASSERT_EQ(n, 0);
    cst_store_close(s);
}

/* One process (SQLite): a database of schema version 0 is migrated in
 * place; at start-up a background job with its body and no output is listed
 * to run again and left alone by fail_unfinished; one that recorded output,
 * or a foreground run, is failed. */
TEST(store_sqlite_jobs_unfinished) {
    if (pg_url()) { /* replicas: the live ops do this (store_live_leases_and_queue) */
        cst_store *s = open_tmp("j.db");
        ASSERT(s->ops->jobs_unfinished == NULL && s->ops->job_output == NULL);
        cst_store_close(s);
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/v0.db", cst_test_tmpdir());
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE interactions (id TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT,"
                           " status TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,"
                           " previous_id TEXT, request TEXT, input TEXT, history TEXT, turn TEXT, outputs TEXT, usage TEXT, errors TEXT);"
                           "INSERT INTO interactions(id, owner, status, created, updated)"
                           " VALUES ('v1_old', 'o', 'queued', 1, 1);",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    cst_store *s = NULL;
    char err[256];
    ASSERT_OK(cst_store_open(path, &s, err, sizeof err));
    cst_irec j1 = {.id = "v1_j1", .owner = "o", .model = "m", .status = "queued", .created = 5, .updated = 5,
                   .turn = "[]", .body = "{\"model\":\"m\",\"input\":\"hi\",\"background\":true}"};
    cst_irec j2 = {.id = "v1_j2", .owner = "o", .model = "m", .status = "queued", .created = 6, .updated = 6,
                   .body = "{}"};
    cst_irec fg = {.id = "v1_fg", .owner = "o", .model = "m", .status = "in_progress", .created = 7, .updated = 7};
    ASSERT_OK(cst_store_put(s, &j1));
    ASSERT_OK(cst_store_put(s, &j2));
    ASSERT_OK(cst_store_put(s, &fg));
    ASSERT_OK(s->ops->job_output(s, "v1_j2"));
    int64_t n = -1;
    ASSERT_OK(cst_store_fail_unfinished(s, 100, "[]", "{}", &n));
    ASSERT_EQ(n, 3); /* v1_old (no body), v1_j2 (output), v1_fg (foreground) */
    cst_job *jobs = NULL;
    size_t nj = 0;
    ASSERT_OK(s->ops->jobs_unfinished(s, &jobs, &nj));
    ASSERT_EQ(nj, 1);
    ASSERT_STREQ(jobs[0].rec.id, "v1_j1");
    ASSERT_STREQ(jobs[0].rec.owner, "o");
    ASSERT_STREQ(jobs[0].rec.model, "m");
    ASSERT_STREQ(jobs[0].rec.status, "queued");
    ASSERT_STREQ(jobs[0].body, j1.body);
    ASSERT(jobs[0].is_job && !jobs[0].output && !jobs[0].cancel);
    ASSERT_EQ(jobs[0].n_events, 0);
    cst_job_clear(&jobs[0]);
    free(jobs);
    cst_irec g;
    ASSERT_OK(cst_store_get(s, "o", "v1_j2", &g));
    ASSERT_STREQ(g.status, "failed");
    cst_irec_clear(&g);
    /* its final record ends it: nothing left to run */
    cst_irec done = j1;
    done.status = "completed";
    done.body = NULL;
    ASSERT_OK(cst_store_put(s, &done));
    cst_store_close(s);
    ASSERT_OK(cst_store_open(path, &s, err, sizeof err)); /* reopened: migrated once, still version 1 */
    ASSERT_OK(s->ops->jobs_unfinished(s, &jobs, &nj));
    ASSERT_EQ(nj, 0);
    free(jobs);
    cst_store_close(s);
}

TEST(store_damaged_file_refused) {
    char path[512];
    snprintf(path, sizeof path, "%s/garbage.db", cst_test_tmpdir());
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    for (int i = 0; i < 4096; i++) fputc("not a database "[i % 15], f);
    fclose(f);
    cst_store *s = NULL;
    char err[512] = {0};
    ASSERT_EQ(cst_store_open(path, &s, err, sizeof err), CST_ERR_STORE);
    ASSERT(s == NULL);
    ASSERT(strstr(err, "damaged") != NULL);
    ASSERT(strstr(err, "garbage.db") != NULL);
}

/* A store that cannot grow fails writes as transient (the API's 503),
 * changes nothing, and takes writes again once there is room. */
TEST(store_full_is_transient_and_rolls_back) {
    char path[512];
    snprintf(path, sizeof path, "%s/full.db", cst_test_tmpdir());
    setenv("CST_STORE_MAX_PAGES", "24", 1);
    cst_store *s = NULL;
    char err[256];
    ASSERT_OK(cst_store_open(path, &s, err, sizeof err));
    unsetenv("CST_STORE_MAX_PAGES");
    static char big[6000];
    memset(big, 'x', sizeof big - 1);
    cst_status st = CST_OK;
    int i = 0;
    for (; i < 100 && st == CST_OK; i++) {
        char id[32];
        snprintf(id, sizeof id, "v1_%d", i);
        cst_irec r = {.id = id, .owner = "o", .status = "completed", .created = 1, .updated = 1, .outputs = big};
        st = cst_store_put(s, &r);
    }
    ASSERT_EQ(st, CST_ERR_STORE);
    ASSERT(s->transient);
    ASSERT(strstr(s->err, "full") != NULL);
    /* the event log in one transaction: refused whole */
    const char *ev[4] = {big, big, big, big};
    ASSERT_EQ(cst_store_put_events(s, "v1_0", 1, ev, 4), CST_ERR_STORE);
    cst_irec g;
    char last[32];
    snprintf(last, sizeof last, "v1_%d", i - 1);
    ASSERT_EQ(cst_store_get(s, "o", last, &g), CST_ERR_NOT_FOUND);
    /* room again: writes work (no transaction left open) */
    ASSERT_OK(cst_store_del(s, "o", "v1_0"));
    ASSERT_OK(cst_store_del(s, "o", "v1_1"));
    cst_irec small = {.id = "v1_small", .owner = "o", .status = "completed", .created = 1, .updated = 1};
    ASSERT_OK(cst_store_put(s, &small));
    cst_store_close(s);
    ASSERT_OK(cst_store_open(path, &s, err, sizeof err));
    ASSERT_OK(cst_store_get(s, "o", "v1_small", &g));
    cst_irec_clear(&g);
    cst_store_close(s);
}

/* a file of n bytes (a pattern that differs per tag) in the temp dir */
static void write_tmp(const char *path, size_t n, int tag, char *sha) {
    unsigned char *b = malloc(n ? n : 1);
    ASSERT(b != NULL);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)((i * 31 + (size_t)tag * 7 + i / 1000) & 0xff);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0);
    ASSERT_EQ((size_t)write(fd, b, n), n);
    close(fd);
    /* a fake but unique and well-formed hash: the store does not hash */
    snprintf(sha, 65, "%08x%056x", (unsigned)tag, (unsigned)n);
    free(b);
}

static void read_all(cst_store *s, const char *sha, unsigned char *out, size_t n, size_t step) {
    size_t at = 0, got = 1;
    while (at < n && got > 0) {
        size_t want = CST_MIN(step, n - at);
        ASSERT_OK(cst_store_blob_read(s, sha, (int64_t)at, out + at, want, &got));
        at += got;
    }
    ASSERT_EQ(at, n);
    ASSERT_OK(cst_store_blob_read(s, sha, (int64_t)n, out, 1, &got));
    ASSERT_EQ(got, 0);
}

TEST(store_file_create_blob_roundtrip) {
    cst_store *s = open_tmp("f1.db");
    char p1[600], sha[65];
    snprintf(p1, sizeof p1, "%s/up1", cst_test_tmpdir());
    /* 2.5 MiB: several chunks in PostgreSQL */
    const size_t n = (5u << 20) / 2 + 17;
    write_tmp(p1, n, 1, sha);
    unsigned char *want = malloc(n), *got = malloc(n);
    ASSERT(want && got);
    int fd = open(p1, O_RDONLY);
    ASSERT_EQ((size_t)read(fd, want, n), n);
    close(fd);
    cst_frec r = {.id = "blobf1", .owner = "kb", .mime = "image/png", .size = (int64_t)n, .sha256 = sha,
                  .created = 1, .updated = 1, .expires = 4000000000};
    ASSERT_OK(cst_store_file_create(s, &r, p1));
    unlink(p1);
    memset(got, 0, n);
    read_all(s, sha, got, n, 300000); /* reads that straddle chunk boundaries */
    ASSERT(memcmp(want, got, n) == 0);
    memset(got, 0, n);
    read_all(s, sha, got, n, n);
    ASSERT(memcmp(want, got, n) == 0);
    /* same bytes, second file: one blob, two references */
    write_tmp(p1, n, 1, sha);
    r.id = "blobf2";
    ASSERT_OK(cst_store_file_create(s, &r, p1));
    unlink(p1);
    int64_t refs = 0;
    ASSERT_OK(cst_store_blob_refs(s, sha, &refs));
    ASSERT_EQ(refs, 2);
    /* conflict: nothing new */
    char p2[600], sha2[65];
    snprintf(p2, sizeof p2, "%s/up2", cst_test_tmpdir());
    write_tmp(p2, 1000, 2, sha2);
    cst_frec r2 = r;
    r2.sha256 = sha2;
    r2.size = 1000;
    ASSERT_EQ(cst_store_file_create(s, &r2, p2), CST_ERR_CONFLICT);
    unlink(p2);
    size_t k = 9;
    unsigned char b1[4];
    ASSERT_EQ(cst_store_blob_read(s, sha2, 0, b1, 4, &k), CST_ERR_NOT_FOUND);
    /* a wrong size is refused */
    write_tmp(p2, 1000, 3, sha2);
    r2.id = "blobf3";
    r2.size = 999;
    ASSERT_EQ(cst_store_file_create(s, &r2, p2), CST_ERR_IO);
    unlink(p2);
    cst_frec g;
    ASSERT_EQ(cst_store_file_get(s, "kb", "blobf3", &g), CST_ERR_NOT_FOUND);
    /* release only when no file refers to it */
    bool removed = true;
    char h[65];
    ASSERT_OK(cst_store_file_del(s, "kb", "blobf1", h));
    ASSERT_STREQ(h, sha);
    ASSERT_OK(cst_store_blob_release(s, sha, &removed));
    ASSERT(!removed);
    ASSERT_OK(cst_store_blob_read(s, sha, 0, b1, 4, &k));
    ASSERT_EQ(k, 4);
    ASSERT_OK(cst_store_file_del(s, "kb", "blobf2", h));
    ASSERT_OK(cst_store_blob_release(s, sha, &removed));
    ASSERT(removed);
    ASSERT_EQ(cst_store_blob_read(s, sha, 0, b1, 4, &k), CST_ERR_NOT_FOUND);
    free(want);
    free(got);
    cst_store_close(s);
}

TEST(store_blob_gc_removes_orphans) {
    cst_store *s = open_tmp("f2.db");
    char p[600], sha[65];
    snprintf(p, sizeof p, "%s/up3", cst_test_tmpdir());
    write_tmp(p, 5000, 4, sha);
    cst_frec r = {.id = "gcf1", .owner = "kg", .mime = "image/gif", .size = 5000, .sha256 = sha,
                  .created = 1, .updated = 1, .expires = 4000000000};
    ASSERT_OK(cst_store_file_create(s, &r, p));
    unlink(p);
    size_t removed = 99;
    ASSERT_OK(cst_store_blob_gc(s, &removed));
    size_t k = 0;
    unsigned char b[8];
    ASSERT_OK(cst_store_blob_read(s, sha, 0, b, 8, &k));
    ASSERT_EQ(k, 8);
    /* file_del alone leaves the blob (a crash before the release): gc takes it */
    ASSERT_OK(cst_store_file_del(s, "kg", "gcf1", NULL));
    ASSERT_OK(cst_store_blob_gc(s, &removed));
    ASSERT(removed >= 1);
    ASSERT_EQ(cst_store_blob_read(s, sha, 0, b, 8, &k), CST_ERR_NOT_FOUND);
    cst_store_close(s);
}

TEST(store_ping_and_stats) {
    cst_store *s = open_tmp("g.db");
    ASSERT_OK(cst_store_ping(s));
    cst_irec g;
    ASSERT_EQ(cst_store_get(s, "k", "v1_none", &g), CST_ERR_NOT_FOUND);
    cst_store_stats st;
    cst_store_stats_get(s, &st);
    ASSERT(st.ops >= 2);
    ASSERT(st.op_seconds > 0);
    ASSERT(st.op_max_seconds > 0);
    ASSERT(st.pool_size >= 1);
    ASSERT(st.pool_open >= 1);
    ASSERT_EQ(st.pool_busy, 0);
    cst_store_close(s);
}

typedef struct {
    cst_store *s;
    int t;
    int fails;
} worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    for (int i = 0; i < 40; i++) {
        char id[64], st[32];
        snprintf(id, sizeof id, "v1_conc_%d_%d", w->t, i);
        snprintf(st, sizeof st, "s%d", i);
        cst_irec r = {.id = id, .owner = "kc", .status = st, .created = i, .updated = i, .outputs = "[]"};
        if (cst_store_put(w->s, &r)) w->fails++;
        const char *ev[] = {"x", "y"};
        if (cst_store_put_events(w->s, id, 1, ev, 2)) w->fails++;
        cst_irec g;
        if (cst_store_get(w->s, "kc", id, &g) || strcmp(g.status, st)) w->fails++;
        cst_irec_clear(&g);
    }
    return NULL;
}

/* Several threads on one store (PostgreSQL: more threads than pooled connections). */
TEST(store_concurrent_threads) {
    setenv("CASTOR_PG_POOL", "3", 1);
    cst_store *s = open_tmp("h.db");
    unsetenv("CASTOR_PG_POOL");
    pthread_t th[6];
    worker_t w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (worker_t){.s = s, .t = i};
        ASSERT_EQ(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 6; i++) ASSERT_EQ(w[i].fails, 0);
    cst_store_stats st;
    cst_store_stats_get(s, &st);
    ASSERT(st.pool_open <= st.pool_size);
    if (pg_url()) ASSERT_EQ(st.pool_size, 3);
    cst_store_close(s);
}

/* Two handles on one database, as two replicas: what one writes, the other reads. */
TEST(store_two_handles_share_state) {
    char path[1024];
    if (pg_url()) snprintf(path, sizeof path, "%s", pg_url());
    else snprintf(path, sizeof path, "%s/shared.db", cst_test_tmpdir());
    cst_store *a = NULL, *b = NULL;
    char err[256];
    ASSERT_OK(cst_store_open(path, &a, err, sizeof err));
    ASSERT_OK(cst_store_open(path, &b, err, sizeof err));
    cst_irec r = {.id = "v1_shared", .owner = "ks", .status = "completed", .created = 3, .updated = 4};
    ASSERT_OK(cst_store_put(a, &r));
    const char *ev[] = {"e1"};
    ASSERT_OK(cst_store_put_events(a, "v1_shared", 1, ev, 1));
    cst_irec g;
    ASSERT_OK(cst_store_get(b, "ks", "v1_shared", &g));
    ASSERT_EQ(g.updated, 4);
    cst_irec_clear(&g);
    ASSERT_OK(cst_store_del(b, "ks", "v1_shared"));
    ASSERT_EQ(cst_store_get(a, "ks", "v1_shared", &g), CST_ERR_NOT_FOUND);
    collect_t c = {0};
    ASSERT_OK(cst_store_events(a, "v1_shared", 0, collect, &c));
    ASSERT_EQ(c.n, 0);
    cst_store_close(a);
    cst_store_close(b);
}

/* Live runs shared by replicas (PostgreSQL): leases, claims, cancel flags,
 * takeover after expiry, notifications. SQLite has none (one process). */
static bool wait_payload(cst_store *s, const char *want) {
    char p[128];
    for (int i = 0; i < 50; i++) {
        cst_status st = s->ops->notify_wait(s, 0.2, p, sizeof p);
        if (st == CST_OK && !strcmp(p, want)) return true;
    }
    return false;
}

TEST(store_live_leases_and_queue) {
    cst_store *s = open_tmp("live.db");
    if (!pg_url()) {
        ASSERT(!cst_store_live(s));
        cst_store_close(s);
        return;
    }
    ASSERT(cst_store_live(s));
    const struct cst_store_ops *o = s->ops;
    char p[128];
    (void)o->notify_wait(s, 0, p, sizeof p); /* listening from here on */
    cst_irec r = {.id = "v1_live1", .owner = "k1", .model = "m", .status = "queued", .created = 50, .updated = 50,
                  .turn = "[]", .outputs = "[]"};
    /* a job in the queue: claimed by a replica serving its model, once */
    ASSERT_OK(o->live_put(s, &r, NULL, 60000, "{\"model\":\"m\"}", "stem-m"));
    ASSERT(wait_payload(s, "job"));
    cst_job j;
    const char *other[1] = {"stem-x"}, *mine[1] = {"stem-m"};
    ASSERT_EQ(o->job_claim(s, "n1", other, 1, true, 60000, &j), CST_ERR_NOT_FOUND);
    ASSERT_OK(o->job_claim(s, "n1", mine, 1, true, 60000, &j));
    ASSERT_STREQ(j.rec.id, "v1_live1");
    ASSERT_STREQ(j.body, "{\"model\":\"m\"}");
    ASSERT(j.is_job && !j.takeover && !j.output && !j.cancel);
    ASSERT_EQ(j.n_events, 0);
    cst_job_clear(&j);
    ASSERT_EQ(o->job_claim(s, "n2", mine, 1, true, 60000, &j), CST_ERR_NOT_FOUND); /* held by n1 */
    /* only the holder writes its events */
    const char *ev[1] = {"{\"event_type\":\"step.delta\"}"};
    ASSERT_EQ(o->live_events(s, "v1_live1", "n2", 1, ev, 1, true, true), CST_ERR_CONFLICT);
    ASSERT_OK(o->live_events(s, "v1_live1", "n1", 1, ev, 1, true, true));
    ASSERT(wait_payload(s, "ev v1_live1"));
    cst_irec g;
    ASSERT_OK(cst_store_get(s, "k1", "v1_live1", &g));
    ASSERT_STREQ(g.status, "in_progress");
    cst_irec_clear(&g);
    /* renewals say who holds it and whether a cancel was asked */
    const char *ids[1] = {"v1_live1"};
    bool held = false, cancel = true;
    ASSERT_OK(o->lease_renew(s, "n2", ids, 1, 60000, &held, &cancel));
    ASSERT(!held);
    ASSERT_OK(o->lease_renew(s, "n1", ids, 1, 60000, &held, &cancel));
    ASSERT(held && !cancel);
    char st[24];
    ASSERT_EQ(o->cancel_request(s, "k2", "v1_live1", 60, "{}", st), CST_ERR_NOT_FOUND); /* another key's */
    ASSERT_OK(o->cancel_request(s, "k1", "v1_live1", 60, "{}", st));
    ASSERT_STREQ(st, "in_progress");
    ASSERT(wait_payload(s, "cancel v1_live1"));
    ASSERT_OK(o->lease_renew(s, "n1", ids, 1, 60000, &held, &cancel));
    ASSERT(held && cancel);
    /* n1 stops renewing (a lease already past): n2 takes it over, with no model of its own */
    ASSERT_OK(o->lease_renew(s, "n1", ids, 1, -1000, &held, &cancel));
    ASSERT_EQ(o->job_claim(s, "n2", NULL, 0, false, 60000, &j), CST_ERR_NOT_FOUND); /* no takeovers asked */
    ASSERT_OK(o->job_claim(s, "n2", NULL, 0, true, 60000, &j));
    ASSERT_STREQ(j.rec.id, "v1_live1");
    ASSERT(j.takeover && j.output && j.cancel && j.is_job);
    ASSERT_EQ(j.n_events, 1);
    cst_irec fin = j.rec;
    fin.status = "cancelled";
    fin.updated = 70;
    const char *last[1] = {"{\"event_type\":\"interaction.completed\"}"};
    ASSERT_EQ(o->live_finish(s, &fin, "n1", 2, last, 1), CST_ERR_CONFLICT); /* n1 lost it: writes nothing */
    ASSERT_OK(o->live_finish(s, &fin, "n2", 2, last, 1));
    cst_job_clear(&j);
    ASSERT_OK(cst_store_get(s, "k1", "v1_live1", &g));
    ASSERT_STREQ(g.status, "cancelled");
    ASSERT_EQ(g.updated, 70);
    cst_irec_clear(&g);
    collect_t c = {0};
    ASSERT_OK(cst_store_events(s, "v1_live1", 0, collect, &c));
    ASSERT_EQ(c.n, 2);
    ASSERT_EQ(c.seqs[1], 2);
    ASSERT_EQ(o->cancel_request(s, "k1", "v1_live1", 80, "{}", st), CST_ERR_CONFLICT); /* terminal already */
    ASSERT_STREQ(st, "cancelled");
    ASSERT_EQ(o->job_claim(s, "n3", mine, 1, true, 60000, &j), CST_ERR_NOT_FOUND);
    /* a job nobody holds is cancelled at once */
    r.id = "v1_live2";
    ASSERT_OK(o->live_put(s, &r, NULL, 60000, "{}", "stem-m"));
    ASSERT_OK(o->cancel_request(s, "k1", "v1_live2", 90, "{\"total_tokens\":0}", st));
    ASSERT_STREQ(st, "cancelled");
    ASSERT_OK(cst_store_get(s, "k1", "v1_live2", &g));
    ASSERT_STREQ(g.usage, "{\"total_tokens\":0}");
    ASSERT_EQ(g.updated, 90);
    cst_irec_clear(&g);
    /* a job released by its holder goes back to the queue */
    r.id = "v1_live3";
    ASSERT_OK(o->live_put(s, &r, "n1", 60000, "{}", "stem-m"));
    ASSERT_EQ(o->job_claim(s, "n2", mine, 1, true, 60000, &j), CST_ERR_NOT_FOUND);
    ASSERT_OK(o->job_release(s, "v1_live3", "n1"));
    ASSERT_OK(o->job_claim(s, "n2", mine, 1, true, 60000, &j));
    ASSERT_STREQ(j.rec.id, "v1_live3");
    ASSERT(!j.takeover);
    cst_job_clear(&j);
    cst_store_close(s);
}
