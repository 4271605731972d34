/* engine_util.h: what the engine tests share: load a model from ../shared
 * and make a context, failing the test with the engine's message. Include
 * after test.h. */
#ifndef CST_TEST_ENGINE_UTIL_H
#define CST_TEST_ENGINE_UTIL_H

#include "engine/engine.h"
#include "test.h"

static inline cst_model *load(const char *rel) {
    char err[256] = "";
    cst_model *m = NULL;
    cst_status st = cst_model_load(cst_test_shared(rel), NULL, &m, err, sizeof err);
    ASSERT_MSG(st == CST_OK, "load %s: %s (%s)", rel, cst_status_str(st), err);
    return m;
}

/* n_seq sequences of n_ctx positions, n_batch tokens per decode, 2 threads */
static inline cst_ctx *new_ctx(cst_model *m, int n_ctx, int n_seq, int n_batch) {
    cst_ctx_params p = cst_ctx_default_params();
    p.n_ctx = n_ctx;
    p.n_seq = n_seq;
    p.n_batch = n_batch;
    p.n_threads = 2;
    char err[256] = "";
    cst_ctx *c = NULL;
    cst_status st = cst_ctx_new(m, &p, &c, err, sizeof err);
    ASSERT_MSG(st == CST_OK, "ctx: %s", err);
    return c;
}

#endif
