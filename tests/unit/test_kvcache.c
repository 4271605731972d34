/* test_kvcache.c: sequence snapshots (cst_ctx_seq_state_save/load), the
 * engine half of the host-memory KV prefix cache: a snapshot restored into
 * another sequence (whole or a prefix of it) continues with bit-identical
 * logits, keeps tokens and embedding markers, and malformed or foreign
 * snapshots are refused. The scheduler half is in test_api.c. */
#include "engine/engine.h"
#include "test.h"
#include "engine_util.h"

#include <stdlib.h>

/* Decode toks[0..n) into seq as one batch (last entry asks for logits) and
 * copy the logits to out. */
static void feed(cst_ctx *c, cst_batch *b, int seq, const cst_token *toks, int n, float *out) {
    cst_batch_clear(b);
    const int pos0 = cst_ctx_seq_len(c, seq);
    for (int j = 0; j < n; j++) cst_batch_add(b, toks[j], pos0 + j, seq, j == n - 1);
    cst_status st = cst_ctx_decode(c, b);
    ASSERT_MSG(st == CST_OK, "decode: %s (%s)", cst_status_str(st), cst_ctx_errmsg(c));
    const float *lg = cst_ctx_logits(c, n - 1);
    ASSERT(lg);
    memcpy(out, lg, sizeof(float) * (size_t)cst_model_n_vocab(cst_ctx_model(c)));
}

static void check_model(const char *rel) {
    cst_model *m = load(rel);
    const int nv = cst_model_n_vocab(m);
    cst_ctx *c = new_ctx(m, 64, 3, 64);
    cst_batch *b = cst_batch_new(64);
    cst_token P[20];
    for (int i = 0; i < 20; i++) P[i] = 1 + (i * 7 + 3) % (nv - 1);
    const int n = 17, k = 12;
    float *l0 = malloc(sizeof(float) * (size_t)nv), *l1 = malloc(sizeof(float) * (size_t)nv);
    ASSERT(l0 && l1);
    feed(c, b, 0, P, n, l0);

    const size_t sz = cst_ctx_seq_state_size(c, n);
    ASSERT(sz > (size_t)n * sizeof(cst_token));
    ASSERT_EQ(sz, cst_ctx_seq_state_size(c, 0) + (size_t)n * (cst_model_kv_bytes_per_token(m, CST_TYPE_F16) +
                                                             sizeof(cst_token)));
    void *snap = malloc(sz);
    ASSERT(snap);
    ASSERT_OK(cst_ctx_seq_state_save(c, 0, n, snap, sz));
    int32_t sn = 0;
    const cst_token *st = cst_seq_state_tokens(snap, sz, &sn);
    ASSERT(st);
    ASSERT_EQ(sn, n);
    for (int i = 0; i < n; i++) ASSERT_EQ(st[i], P[i]);

    /* whole snapshot into seq 1 (seq 1 held something else before) */
    feed(c, b, 1, P + 3, 5, l1);
    ASSERT_OK(cst_ctx_seq_state_load(c, 1, snap, sz, n));
    ASSERT_EQ(cst_ctx_seq_len(c, 1), n);
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 1, P, n), n);
    feed(c, b, 0, P + n, 1, l0);
    feed(c, b, 1, P + n, 1, l1);
    ASSERT_MSG(!memcmp(l0, l1, sizeof(float) * (size_t)nv), "%s: restored sequence's logits differ", rel);
    /* and the next step too */
    feed(c, b, 0, P + n + 1, 2, l0);
    feed(c, b, 1, P + n + 1, 2, l1);
    ASSERT_MSG(!memcmp(l0, l1, sizeof(float) * (size_t)nv), "%s: restored sequence's logits differ (step 2)", rel);

    /* a prefix of it into seq 2, equal to the original truncated there */
    ASSERT_OK(cst_ctx_seq_state_load(c, 2, snap, sz, k));
    ASSERT_EQ(cst_ctx_seq_len(c, 2), k);
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 2, P, n), k);
    ASSERT_OK(cst_ctx_seq_truncate(c, 0, k));
    feed(c, b, 0, P + k, n - k + 1, l0);
    feed(c, b, 2, P + k, n - k + 1, l1);
    ASSERT_MSG(!memcmp(l0, l1, sizeof(float) * (size_t)nv), "%s: partially restored sequence's logits differ", rel);
    /* restoring into the sequence it came from is fine too */
    ASSERT_OK(cst_ctx_seq_state_load(c, 0, snap, sz, 0));
    ASSERT_EQ(cst_ctx_seq_len(c, 0), 0);

    /* errors */
    ASSERT_EQ(cst_ctx_seq_state_load(c, 1, snap, sz, n + 1), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_ctx_seq_state_load(c, 3, snap, sz, 1), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_ctx_seq_state_load(c, 1, snap, sz - 1, 1), CST_ERR_BAD_FORMAT);
    ASSERT_EQ(cst_ctx_seq_state_load(c, 1, snap, 16, 0), CST_ERR_BAD_FORMAT);
    ASSERT(!cst_seq_state_tokens(snap, sz - 1, &sn));
    ASSERT_EQ(sn, 0);
    ASSERT_EQ(cst_ctx_seq_state_save(c, 1, cst_ctx_seq_len(c, 1) + 1, snap, sz), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_ctx_seq_state_save(c, 1, n, snap, sz - 1), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_ctx_seq_state_save(c, -1, 0, snap, sz), CST_ERR_INVALID_ARG);
    unsigned char *bad = malloc(sz);
    memcpy(bad, snap, sz);
    bad[0] ^= 0xff;
    ASSERT_EQ(cst_ctx_seq_state_load(c, 1, bad, sz, 1), CST_ERR_BAD_FORMAT);
    free(bad);
    ASSERT_EQ(cst_ctx_seq_len(c, 1), n + 3); /* failed loads changed nothing */
    free(snap);
    free(l0);
    free(l1);
    cst_batch_free(b);
    cst_ctx_free(c);
    cst_model_free(m);
}

TEST(kv_snapshot_restore_bit_identical) {
    check_model("models/stories260K.gguf");
    check_model("models/tiny-qwen2-F32.gguf");
    check_model("models/tiny-gemma3-F32.gguf"); /* sliding-window layers */
}

/* embedding markers travel with the snapshot; a snapshot of another model's
 * shape is refused */
TEST(kv_snapshot_markers_and_foreign) {
    cst_model *m = load("models/stories260K.gguf");
    cst_model *m2 = load("models/tiny-qwen2-F32.gguf");
    cst_ctx *c = new_ctx(m, 32, 2, 32);
    cst_ctx *c2 = new_ctx(m2, 32, 1, 32);
    cst_batch *b = cst_batch_new(32);
    const int ne = cst_model_n_embd(m);
    float *rows = calloc((size_t)4 * ne, sizeof(float));
    for (int i = 0; i < 4 * ne; i++) rows[i] = 0.01f * (float)(i % 13);
    float *lg = malloc(sizeof(float) * (size_t)cst_model_n_vocab(m));
    const cst_token pre[3] = {1, 50, 60};
    feed(c, b, 0, pre, 3, lg);
    const cst_token mk = cst_embd_marker(0x1234567890ull);
    ASSERT_OK(cst_ctx_decode_embd(c, 0, 3, rows, 4, mk, true));
    const cst_token post[2] = {70, 80};
    feed(c, b, 0, post, 2, lg);
    const int n = 9;
    cst_token want[9] = {1, 50, 60, mk, mk, mk, mk, 70, 80};
    const size_t sz = cst_ctx_seq_state_size(c, n);
    void *snap = malloc(sz);
    ASSERT_OK(cst_ctx_seq_state_save(c, 0, n, snap, sz));
    ASSERT_OK(cst_ctx_seq_state_load(c, 1, snap, sz, n));
    int32_t nt = 0;
    const cst_token *t = cst_ctx_seq_tokens(c, 1, &nt);
    ASSERT_EQ(nt, n);
    for (int i = 0; i < n; i++) ASSERT_EQ(t[i], want[i]);
    /* prefix rules over the snapshot's tokens: whole image blocks only */
    int32_t sn = 0;
    const cst_token *st = cst_seq_state_tokens(snap, sz, &sn);
    ASSERT_EQ(cst_tokens_common_prefix(st, sn, want, n), n);
    cst_token other[9];
    memcpy(other, want, sizeof other);
    other[8] = 81;
    ASSERT_EQ(cst_tokens_common_prefix(st, sn, other, n), 8);
    ASSERT_EQ(cst_tokens_common_prefix(st, 5, want, n), 3); /* the cache ends inside the block */
    ASSERT_EQ(cst_tokens_common_prefix(st, sn, want, 6), 3); /* the prompt ends inside it */
    ASSERT_EQ(cst_tokens_common_prefix(st, sn, want, 0), 0);
    ASSERT_EQ(cst_tokens_common_prefix(NULL, 0, want, n), 0);
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 1, other, n), 8);
    /* the other model's context refuses it */
    ASSERT_EQ(cst_ctx_seq_state_load(c2, 0, snap, sz, 1), CST_ERR_BAD_FORMAT);
    ASSERT(strstr(cst_ctx_errmsg(c2), "does not fit") != NULL);
    ASSERT_EQ(cst_ctx_seq_len(c2, 0), 0);
    free(snap);
    free(rows);
    free(lg);
    cst_batch_free(b);
    cst_ctx_free(c);
    cst_ctx_free(c2);
    cst_model_free(m);
    cst_model_free(m2);
}
