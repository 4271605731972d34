/* test_store.c: the cst_store contract (put/get/replace/delete, owner
 * partitioning, event log order and replay-after), run against SQLite. The
 * same cases are meant to run against every back-end. */
#include "store/store.h"
#include "test.h"

#include <stdlib.h>

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
