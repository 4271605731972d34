/* test_store.c: the cst_store contract (put/get/replace/delete, owner
 * partitioning, event log order and replay-after), run against SQLite. The
 * same cases are meant to run against every back-end. */
#include "store/store.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cst_store *open_tmp(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cst_test_tmpdir(), name);
    cst_store *s = NULL;
    char err[256];
    ASSERT_OK(cst_store_open(path, &s, err, sizeof err));
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
    char path[512];
    snprintf(path, sizeof path, "sqlite:%s/d.db", cst_test_tmpdir());
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
    ASSERT_EQ(cst_store_open("postgres://u@h/db", &s, err, sizeof err), CST_ERR_UNSUPPORTED);
    ASSERT(s == NULL);
    ASSERT_EQ(cst_store_open("ftp://x", &s, err, sizeof err), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_store_open("/nonexistent-dir-xyz/a.db", &s, err, sizeof err), CST_ERR_STORE);
}

TEST(store_fail_unfinished) {
    cst_store *s = open_tmp("f.db");
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
