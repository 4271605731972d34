/* test_api.c: units of castor serve below HTTP: create-request validation
 * and input normalisation (§2), chat rendering, SHA-256 of API keys, and the
 * engine scheduler (concurrent requests, seeded determinism, prefix reuse,
 * cancellation, queue bound, context limit) on stories260K. */
#include "api/api_int.h"
#include "test.h"

static json_t *J(const char *s) {
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j) cst_test_fail(__FILE__, __LINE__, "bad test JSON: %s", e.text);
    return j;
}

static bool parse(const char *body, create_req *r, char *err) {
    json_t *j = J(body);
    bool ok = cst_api_parse_create(j, r, err, 512);
    if (ok) create_req_clear(r);
    json_decref(j);
    return ok;
}

TEST(api_validate_ok_forms) {
    create_req r;
    char err[512];
    ASSERT_MSG(parse("{\"model\":\"m\",\"input\":\"hi\"}", &r, err), "%s", err);
    ASSERT_MSG(parse("{\"model\":\"m\",\"input\":{\"type\":\"text\",\"text\":\"hi\"}}", &r, err), "%s", err);
    ASSERT_MSG(parse("{\"model\":\"m\",\"input\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}", &r, err), "%s", err);
    ASSERT_MSG(parse("{\"model\":\"m\",\"input\":[{\"type\":\"user_input\",\"content\":\"x\"},{\"type\":\"thought\",\"signature\":\"s\","
                     "\"summary\":null},{\"type\":\"model_output\",\"content\":[{\"type\":\"text\",\"text\":\"y\",\"annotations\":null}]},"
                     "{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"z\"}]}],\"store\":false,"
                     "\"system_instruction\":null,\"tools\":null,\"generation_config\":{\"temperature\":0,\"top_p\":1,"
                     "\"max_output_tokens\":5,\"stop_sequences\":[\"a\"],\"seed\":-3,\"thinking_level\":\"low\"},"
                     "\"labels\":{\"a\":\"b\"},\"service_tier\":\"flex\",\"response_modalities\":[\"TEXT\"]}", &r, err), "%s", err);
}

TEST(api_validate_normalises_turn) {
    json_t *j = J("{\"model\":\"m\",\"input\":[{\"type\":\"user_input\",\"content\":\"a\"},{\"type\":\"model_output\",\"content\":\"b\"},"
                  "{\"type\":\"user_input\",\"content\":\"c\"},{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"d\"}]}]}");
    create_req r;
    char err[512];
    ASSERT_MSG(cst_api_parse_create(j, &r, err, sizeof err), "%s", err);
    ASSERT_EQ(json_array_size(r.context), 2);
    ASSERT_EQ(json_array_size(r.turn), 2);
    char *t = json_dumps(r.turn, JSON_COMPACT);
    ASSERT_STREQ(t, "[{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"c\"}]},"
                    "{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"d\"}]}]");
    free(t);
    create_req_clear(&r);
    json_decref(j);
}

static void expect_bad(const char *body, const char *needle) {
    create_req r;
    char err[512] = "";
    bool ok = parse(body, &r, err);
    ASSERT_MSG(!ok, "accepted: %s", body);
    ASSERT_MSG(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
}

TEST(api_validate_rejects_with_path) {
    expect_bad("[1]", "JSON object");
    expect_bad("{\"input\":\"x\"}", "model: required");
    expect_bad("{\"model\":\"m\"}", "input: required");
    expect_bad("{\"model\":5,\"input\":\"x\"}", "model: expected a string");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"generationConfig\":{}}", "generationConfig: unknown field");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"generation_config\":{\"temperature\":\"hot\"}}", "generation_config.temperature: expected a number");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"generation_config\":{\"temperature\":2.5}}", "out of range");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"generation_config\":{\"top_p\":0}}", "top_p");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"generation_config\":{\"max_output_tokens\":0}}", "max_output_tokens");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"generation_config\":{\"max_output_tokens\":1.5}}", "expected an integer");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"generation_config\":{\"stop_sequences\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"]}}", "at most 5");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"generation_config\":{\"thinking_level\":\"huge\"}}", "thinking_level");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"generation_config\":{\"speech_config\":{}}}", "speech_config");
    expect_bad("{\"model\":\"m\",\"input\":[]}", "empty array");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"user_input\"}]}", "mixes");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"bogus\"}]}", "input[0].type");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":1}]}]}", "input[0].content[0].text");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"user_input\",\"content\":\"a\"},{\"type\":\"model_output\",\"content\":\"b\"}]}", "user_input");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"image\",\"uri\":\"files/abc\",\"data\":\"AAAA\"}]}", "exactly one");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"image\",\"uri\":\"files/abc\",\"mime_type\":\"image/heic\"}]}", "mime_type");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"audio\",\"uri\":\"files/abc\"}]}", "audio");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"function_result\",\"call_id\":\"x\"}]}", "input[0].result");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\"}]}", "tools[0].name");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"response_format\":{}}", "response_format");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"continuation_token\":\"t\"}", "continuation_token");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"background\":true,\"store\":false}", "background");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"stream\":1}", "stream: expected a boolean");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"labels\":{\"a\":1}}", "labels.a");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"response_modalities\":[\"image\"]}", "response_modalities[0]");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"agent\":\"deep-research\"}", "agent");
}

/* the hand-built step.delta text event equals jansson's dump of the same
 * object, for every byte class (controls, quotes, backslash, DEL, UTF-8) */
TEST(api_text_delta_json_matches_jansson) {
    const char *texts[] = {"", "hello", "a\"b\\c/d", "\b\f\n\r\t", "\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80",
                           "</script>\u00e9"};
    char all[128];
    for (int i = 1; i < 128; i++) all[i - 1] = (char)i;
    all[127] = 0;
    for (size_t t = 0; t < sizeof texts / sizeof texts[0] + 1; t++) {
        const char *x = t < sizeof texts / sizeof texts[0] ? texts[t] : all;
        for (int index = 0; index < 2; index++) {
            json_t *j = json_pack("{s:s,s:s,s:i,s:{s:s,s:s}}", "event_type", "step.delta", "event_id", "12", "index", index,
                                  "delta", "type", "text", "text", x);
            ASSERT(j);
            char *want = json_dumps(j, JSON_COMPACT);
            char *got = cst_api_text_delta_json(12, index, x, strlen(x));
            ASSERT(want && got);
            ASSERT_STREQ(got, want);
            free(want);
            free(got);
            json_decref(j);
        }
    }
}

/* conversation rendering (chat templates, thinking, signatures): test_thinking.c */

/* ---- scheduler ---------------------------------------------------------- */

static cst_model *load_stories(void) {
    const char *path = cst_test_shared("models/stories260K.gguf");
    FILE *f = fopen(path, "rb");
    if (!f) {
        cst_test_skip("no %s", path);
        return NULL;
    }
    fclose(f);
    cst_model *m = NULL;
    char err[256];
    ASSERT_OK(cst_model_load(path, NULL, &m, err, sizeof err));
    return m;
}

typedef struct {
    char text[4096];
    size_t len;
    cst_sched_event done;
    int n_start;
} result;

static void drain(cst_sched_req *r, result *res) {
    memset(res, 0, sizeof *res);
    for (;;) {
        cst_sched_event ev;
        ASSERT(cst_sched_req_next(r, &ev, 60.0));
        if (ev.type == CST_SCHED_EV_START) res->n_start++;
        if (ev.type == CST_SCHED_EV_TEXT) {
            size_t n = CST_MIN(ev.len, sizeof res->text - 1 - res->len);
            memcpy(res->text + res->len, ev.text, n);
            res->len += n;
            free(ev.text);
        }
        if (ev.type == CST_SCHED_EV_DONE) {
            free(ev.text);
            res->done = ev;
            return;
        }
    }
}

static cst_req_params req(const cst_token *t, size_t n, uint64_t seed, int32_t max) {
    cst_req_params p = {.prompt = t, .n_prompt = n, .max_tokens = max};
    p.sampling = cst_sampler_default_params();
    p.sampling.temperature = 1.0f;
    p.sampling.seed = seed;
    return p;
}

static cst_sched *new_sched(cst_model *m, int n_slots, int n_ctx, size_t cache_bytes) {
    cst_sched_params sp = cst_sched_default_params();
    sp.n_slots = n_slots;
    sp.n_ctx = n_ctx;
    sp.n_threads = 1;
    sp.cache_bytes = cache_bytes;
    cst_sched *s = NULL;
    char err[256];
    ASSERT_OK(cst_sched_new(m, &sp, &s, err, sizeof err));
    return s;
}

static cst_token *tok(cst_model *m, const char *text, bool bos, size_t *n) {
    cst_token *t = NULL;
    ASSERT_OK(cst_tokenize(cst_model_vocab(m), text, strlen(text), bos, false, &t, n));
    return t;
}

TEST(sched_concurrent_deterministic_and_prefix_reuse) {
    cst_model *m = load_stories();
    if (!m) return;
    cst_sched *s = new_sched(m, 2, 256, 0);
    char err[256];
    size_t n = 0;
    cst_token *toks = tok(m, "Once upon a time, there was a little dog", true, &n);
    /* three requests on two slots: all finish; equal seeds give equal text */
    cst_sched_req *r[3];
    for (int i = 0; i < 3; i++) {
        cst_req_params p = req(toks, n, i == 2 ? 99 : 7, 20);
        ASSERT_OK(cst_sched_submit(s, &p, &r[i], err, sizeof err));
    }
    result res[3];
    for (int i = 0; i < 3; i++) drain(r[i], &res[i]);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(res[i].done.finish, CST_FINISH_LENGTH);
        ASSERT_EQ(res[i].done.n_gen, 20);
        ASSERT_EQ(res[i].n_start, 1);
        cst_sched_req_release(r[i]);
    }
    ASSERT_STREQ(res[0].text, res[1].text);
    /* a follow-up whose prompt extends an earlier one reuses its cache */
    cst_token *t2 = malloc((n + 8) * sizeof *t2);
    memcpy(t2, toks, n * sizeof *t2);
    for (int i = 0; i < 8; i++) t2[n + i] = toks[1 + i % (int)(n - 1)];
    cst_req_params p2 = req(t2, n + 8, 5, 4);
    cst_sched_req *r2;
    ASSERT_OK(cst_sched_submit(s, &p2, &r2, err, sizeof err));
    result res2;
    drain(r2, &res2);
    ASSERT_EQ(res2.done.n_cached, (int32_t)n);
    ASSERT_EQ(res2.done.n_prompt, (int32_t)n + 8);
    cst_sched_req_release(r2);
    free(t2);
    /* greedy through the scheduler equals cst_generate-style sequential decoding: same seed, same text again */
    cst_req_params p3 = req(toks, n, 7, 20);
    cst_sched_req *r3;
    ASSERT_OK(cst_sched_submit(s, &p3, &r3, err, sizeof err));
    result res3;
    drain(r3, &res3);
    ASSERT_STREQ(res3.text, res[0].text);
    ASSERT(res3.done.n_cached > 0);
    cst_sched_req_release(r3);
    free(toks);
    cst_sched_free(s);
    cst_model_free(m);
}

/* an on_event sink gets START and the TEXT events on the engine thread, in
 * order, before DONE is queued; the text equals the queued path's */
typedef struct {
    result res;
    int n_events, n_start_after_text;
} sink_state;

static void sink_fn(void *ud, const cst_sched_event *ev) {
    sink_state *st = ud;
    st->n_events++;
    if (ev->type == CST_SCHED_EV_START) {
        st->res.n_start++;
        if (st->res.len > 0) st->n_start_after_text++;
    } else if (ev->type == CST_SCHED_EV_TEXT) {
        size_t n = CST_MIN(ev->len, sizeof st->res.text - 1 - st->res.len);
        memcpy(st->res.text + st->res.len, ev->text, n);
        st->res.len += n;
    }
}

TEST(sched_event_sink) {
    cst_model *m = load_stories();
    if (!m) return;
    cst_sched *s = new_sched(m, 2, 256, 0);
    char err[256];
    size_t n = 0;
    cst_token *toks = tok(m, "Once upon a time, there was a little cat", true, &n);
    cst_req_params p = req(toks, n, 11, 24);
    cst_sched_req *r;
    ASSERT_OK(cst_sched_submit(s, &p, &r, err, sizeof err));
    result queued;
    drain(r, &queued);
    cst_sched_req_release(r);
    static sink_state st;
    memset(&st, 0, sizeof st);
    p.on_event = sink_fn;
    p.on_event_ud = &st;
    ASSERT_OK(cst_sched_submit(s, &p, &r, err, sizeof err));
    cst_sched_event ev;
    ASSERT(cst_sched_req_next(r, &ev, 60.0));
    ASSERT_EQ(ev.type, CST_SCHED_EV_DONE); /* nothing else is queued */
    free(ev.text);
    ASSERT_EQ(ev.finish, CST_FINISH_LENGTH);
    ASSERT_EQ(ev.n_gen, 24);
    ASSERT_EQ(st.res.n_start, 1);
    ASSERT_EQ(st.n_start_after_text, 0);
    ASSERT(st.n_events >= 2);
    ASSERT_STREQ(st.res.text, queued.text);
    cst_sched_req_release(r);
    free(toks);
    cst_sched_free(s);
    cst_model_free(m);
}

/* One slot, 128 positions, one thread; CST_FAULT set while it starts
 * (fault NULL: none). */
static cst_sched *one_slot_sched(cst_model *m, int32_t max_queue, const char *fault) {
    if (fault) setenv("CST_FAULT", fault, 1);
    cst_sched_params sp = cst_sched_default_params();
    sp.n_slots = 1;
    sp.n_ctx = 128;
    sp.n_threads = 1;
    sp.max_queue = max_queue;
    cst_sched *s = NULL;
    char err[256];
    if (cst_sched_new(m, &sp, &s, err, sizeof err) != CST_OK) fprintf(stderr, "    cst_sched_new: %s\n", err);
    if (fault) unsetenv("CST_FAULT");
    return s;
}

TEST(sched_cancel_limits_and_queue) {
    cst_model *m = load_stories();
    if (!m) return;
    cst_sched *s = one_slot_sched(m, 1, NULL);
    ASSERT(s != NULL);
    char err[256];
    cst_token toks[200];
    for (int i = 0; i < 200; i++) toks[i] = 1 + i % 100;
    cst_req_params big = req(toks, 128, 1, 0);
    cst_sched_req *r = NULL;
    ASSERT_EQ(cst_sched_submit(s, &big, &r, err, sizeof err), CST_ERR_CTX_FULL);
    ASSERT(strstr(err, "128") != NULL);
    cst_req_params p = req(toks, 10, 1, 0); /* until the context is full */
    ASSERT_OK(cst_sched_submit(s, &p, &r, err, sizeof err));
    cst_sched_event ev;
    do {
        ASSERT(cst_sched_req_next(r, &ev, 60.0));
        if (ev.type == CST_SCHED_EV_TEXT) free(ev.text);
    } while (ev.type != CST_SCHED_EV_TEXT);
    /* the slot is busy: one more waits in the queue, the next is refused */
    cst_sched_req *q1 = NULL, *q2 = NULL;
    ASSERT_OK(cst_sched_submit(s, &p, &q1, err, sizeof err));
    ASSERT_EQ(cst_sched_submit(s, &p, &q2, err, sizeof err), CST_ERR_BUSY);
    cst_sched_req_cancel(r);
    result res;
    drain(r, &res);
    ASSERT(res.done.finish == CST_FINISH_CANCELLED || res.done.finish == CST_FINISH_LENGTH);
    result rq;
    drain(q1, &rq);
    ASSERT_EQ(rq.done.finish, CST_FINISH_LENGTH);
    ASSERT(rq.done.n_gen <= 128 - 10 + 1); /* the last sampled token needs no position */
    cst_sched_req_release(r);
    cst_sched_req_release(q1);
    cst_sched_free(s);
    cst_model_free(m);
}

TEST(sched_cancel_queued_and_fault_injection) {
    cst_model *m = load_stories();
    if (!m) return;
    /* test-only faults: slow decodes keep the one slot busy; a sequence
     * fails once it has generated 3 tokens */
    cst_sched *s = one_slot_sched(m, 4, "decode_sleep_ms:20,decode_fail_after:3");
    ASSERT(s != NULL);
    char err[256];
    cst_token toks[16];
    for (int i = 0; i < 16; i++) toks[i] = 1 + i;
    cst_req_params p = req(toks, 16, 1, 0);
    cst_sched_req *a = NULL, *q = NULL;
    ASSERT_OK(cst_sched_submit(s, &p, &a, err, sizeof err));
    cst_sched_event ev;
    ASSERT(cst_sched_req_next(a, &ev, 60.0));
    ASSERT_EQ(ev.type, CST_SCHED_EV_START);
    ASSERT(!cst_sched_req_waiting(a));
    /* the slot is busy: the next request waits, and a cancel ends it while
     * it is still in the queue (no slot needed) */
    ASSERT_OK(cst_sched_submit(s, &p, &q, err, sizeof err));
    ASSERT(cst_sched_req_waiting(q));
    ASSERT_EQ(cst_sched_queue_depth(s), 1);
    cst_sched_req_cancel(q);
    ASSERT(!cst_sched_req_waiting(q));
    ASSERT_EQ(cst_sched_queue_depth(s), 0);
    result rq;
    drain(q, &rq);
    ASSERT_EQ(rq.n_start, 0);
    ASSERT_EQ(rq.done.finish, CST_FINISH_CANCELLED);
    ASSERT_EQ(rq.done.n_gen, 0);
    cst_sched_req_release(q);
    /* the running one fails late with an engine error after 3 tokens */
    int n_text = 0;
    for (;;) {
        ASSERT(cst_sched_req_next(a, &ev, 60.0));
        if (ev.type == CST_SCHED_EV_TEXT) n_text++;
        if (ev.type == CST_SCHED_EV_DONE) break;
        free(ev.text);
    }
    ASSERT_EQ(ev.status, CST_ERR_INTERNAL);
    ASSERT_EQ(ev.n_gen, 3);
    ASSERT(ev.text && strstr(ev.text, "injected") != NULL);
    ASSERT(n_text <= 3);
    free(ev.text);
    cst_sched_req_release(a);
    cst_sched_free(s);
    cst_model_free(m);
}

/* max_queue counts the requests that wait for a slot, not one a free slot
 * is about to take: back-to-back submits (before the engine thread has
 * admitted the first) accept one running + max_queue waiting, then BUSY. */
TEST(sched_queue_counts_only_waiting) {
    cst_model *m = load_stories();
    if (!m) return;
    cst_sched *s = one_slot_sched(m, 1, "decode_sleep_ms:50"); /* the first stays running */
    ASSERT(s != NULL);
    char err[256];
    cst_token toks[8];
    for (int i = 0; i < 8; i++) toks[i] = 1 + i;
    cst_req_params p = req(toks, 8, 1, 8);
    cst_sched_req *a = NULL, *b = NULL, *c = NULL;
    ASSERT_OK(cst_sched_submit(s, &p, &a, err, sizeof err));
    ASSERT(!cst_sched_req_waiting(a));
    ASSERT_OK(cst_sched_submit(s, &p, &b, err, sizeof err));
    ASSERT(cst_sched_req_waiting(b));
    ASSERT_EQ(cst_sched_submit(s, &p, &c, err, sizeof err), CST_ERR_BUSY);
    ASSERT(strstr(err, "queue is full") != NULL);
    cst_sched_req_cancel(a);
    cst_sched_req_cancel(b);
    result ra, rb;
    drain(a, &ra);
    drain(b, &rb);
    ASSERT_EQ(rb.done.finish, CST_FINISH_CANCELLED);
    cst_sched_req_release(a);
    cst_sched_req_release(b);
    cst_sched_free(s);
    cst_model_free(m);
}

TEST(sched_short_shared_prefix_does_not_evict) {
    cst_model *m = load_stories();
    if (!m) return;
    cst_sched *s = new_sched(m, 2, 128, 0);
    char err[256];
    /* two conversations sharing a 2-token header, one after the other */
    cst_token a[40], b[20];
    for (int i = 0; i < 40; i++) a[i] = i < 2 ? 1 + i : 10 + i;
    for (int i = 0; i < 20; i++) b[i] = i < 2 ? 1 + i : 200 + i;
    result res;
    cst_sched_req *r;
    cst_req_params pa = req(a, 30, 1, 4);
    ASSERT_OK(cst_sched_submit(s, &pa, &r, err, sizeof err));
    drain(r, &res);
    cst_sched_req_release(r);
    cst_req_params pb = req(b, 20, 1, 4);
    ASSERT_OK(cst_sched_submit(s, &pb, &r, err, sizeof err));
    drain(r, &res);
    ASSERT_EQ(res.done.n_cached, 0); /* the empty slot, not conversation a's */
    cst_sched_req_release(r);
    /* conversation a's next turn still finds its cache */
    cst_req_params pa2 = req(a, 40, 1, 4);
    ASSERT_OK(cst_sched_submit(s, &pa2, &r, err, sizeof err));
    drain(r, &res);
    ASSERT_EQ(res.done.n_cached, 30);
    cst_sched_req_release(r);
    cst_sched_free(s);
    cst_model_free(m);
}

/* ---- host-memory KV snapshots (cache_bytes) ------------------------------ */

static void run_greedy(cst_sched *s, const cst_token *t, size_t n, int32_t max, result *res) {
    cst_req_params p = req(t, n, 1, max);
    p.sampling.temperature = 0;
    cst_sched_req *r;
    char err[256];
    ASSERT_OK(cst_sched_submit(s, &p, &r, err, sizeof err));
    drain(r, res);
    ASSERT_EQ(res->done.status, CST_OK);
    cst_sched_req_release(r);
}

/* Conversation A, then B taking A's slot, then A's follow-up (A's prompt +
 * more). Returns the follow-up's result and the scheduler's stats. */
static void followup(cst_model *m, int n_slots, size_t cache_bytes, result *res, cst_sched_stats *stats, size_t *n_a) {
    size_t na, nb, nm;
    cst_token *a = tok(m, "Once upon a time, there was a little dog named Max", true, &na);
    cst_token *b = tok(m, "The sun was shining and the birds were singing in the tall trees", false, &nb);
    cst_token *more = tok(m, " One day, Max found a big red ball in the garden.", false, &nm);
    cst_token *a2 = malloc((na + nm) * sizeof *a2);
    memcpy(a2, a, na * sizeof *a);
    memcpy(a2 + na, more, nm * sizeof *more);
    cst_sched *s = new_sched(m, n_slots, 128, cache_bytes);
    result r;
    run_greedy(s, a, na, 8, &r);
    run_greedy(s, b, nb, 8, &r);
    run_greedy(s, a2, na + nm, 16, res);
    *stats = cst_sched_get_stats(s);
    *n_a = na;
    cst_sched_free(s);
    free(a);
    free(b);
    free(more);
    free(a2);
}

TEST(sched_kv_snapshot_restores_evicted_conversation) {
    cst_model *m = load_stories();
    if (!m) return;
    result on, off, two;
    cst_sched_stats st_on, st_off, st_two;
    size_t na = 0;
    /* one slot, snapshots on: B's admission saves A, A's follow-up restores it */
    followup(m, 1, CST_SCHED_CACHE_BYTES_DEFAULT, &on, &st_on, &na);
    ASSERT(on.done.n_cached >= (int32_t)na - 1);
    ASSERT_EQ(st_on.n_snapshot_restores, 1);
    ASSERT_EQ(st_on.n_snapshot_saves, 2); /* A before B, B before A's follow-up */
    ASSERT_EQ(st_on.n_snapshots, 2);
    ASSERT(st_on.snapshot_bytes > 0 && st_on.snapshot_bytes <= CST_SCHED_CACHE_BYTES_DEFAULT);
    ASSERT_EQ(st_on.n_snapshot_evictions, 0);
    ASSERT(st_on.n_cached_tokens >= (uint64_t)na - 1);
    ASSERT(st_on.n_cache_hits >= 1);
    /* one slot, snapshots off: the follow-up recomputes everything */
    followup(m, 1, 0, &off, &st_off, &na);
    ASSERT_EQ(off.done.n_cached, 0);
    ASSERT_EQ(st_off.n_snapshots, 0);
    ASSERT_EQ(st_off.n_snapshot_saves, 0);
    ASSERT_EQ(st_off.n_snapshot_restores, 0);
    /* two slots, snapshots off: A's prefix stays in its slot */
    followup(m, 2, 0, &two, &st_two, &na);
    ASSERT_EQ(two.done.n_cached, on.done.n_cached);
    /* greedy text after a restore equals recomputing, and in-slot reuse */
    ASSERT(on.len > 0);
    ASSERT_EQ(on.done.n_gen, off.done.n_gen);
    ASSERT_STREQ(on.text, off.text);
    ASSERT_STREQ(on.text, two.text);
    cst_model_free(m);
}

/* A budget for one snapshot: the oldest is evicted, a snapshot in use is
 * never dropped to make room, a newer state of a conversation replaces its
 * older one, and a snapshot larger than the budget is not kept. */
TEST(sched_kv_snapshot_budget_eviction) {
    cst_model *m = load_stories();
    if (!m) return;
    enum { L = 20, X = 5 };
    cst_token a[L + X], b[L + X], c[L];
    for (int i = 0; i < L + X; i++) {
        a[i] = 100 + i;
        b[i] = 200 + i;
    }
    for (int i = 0; i < L; i++) c[i] = 300 + i;
    const size_t per = cst_model_kv_bytes_per_token(m, CST_TYPE_F16) + sizeof(cst_token);
    const size_t one = 32 + L * per; /* a snapshot of L positions (header + rows) */
    cst_sched *s = new_sched(m, 1, 128, one + (X + 2) * per);
    result r;
    /* max_tokens 1: the sampled token is never decoded, so a slot holds exactly its prompt */
    run_greedy(s, a, L, 1, &r);
    run_greedy(s, b, L, 1, &r); /* saves a */
    run_greedy(s, c, L, 1, &r); /* saves b, evicting a */
    cst_sched_stats st = cst_sched_get_stats(s);
    ASSERT_EQ(st.n_snapshot_saves, 2);
    ASSERT_EQ(st.n_snapshot_evictions, 1);
    ASSERT_EQ(st.n_snapshots, 1);
    ASSERT_EQ(st.snapshot_bytes, one);
    /* b's follow-up: restored; c cannot be saved (b is in use, no room) */
    run_greedy(s, b, L + X, 1, &r);
    ASSERT_EQ(r.done.n_cached, L);
    st = cst_sched_get_stats(s);
    ASSERT_EQ(st.n_snapshot_restores, 1);
    ASSERT_EQ(st.n_snapshot_saves, 2);
    ASSERT_EQ(st.n_snapshots, 1);
    /* a's follow-up: a was evicted; the slot's longer b replaces the old b */
    run_greedy(s, a, L + X, 1, &r);
    ASSERT_EQ(r.done.n_cached, 0);
    st = cst_sched_get_stats(s);
    ASSERT_EQ(st.n_snapshot_saves, 3);
    ASSERT_EQ(st.n_snapshots, 1);
    ASSERT_EQ(st.snapshot_bytes, one + X * per);
    ASSERT_EQ(st.n_snapshot_restores, 1);
    /* ... which b's next turn finds whole */
    run_greedy(s, b, L + X, 1, &r); /* the same prompt again: all but the last token */
    ASSERT_EQ(r.done.n_cached, L + X - 1);
    cst_sched_free(s);
    /* a budget smaller than one snapshot keeps nothing */
    s = new_sched(m, 1, 128, one - 1);
    run_greedy(s, a, L, 1, &r);
    run_greedy(s, b, L, 1, &r);
    run_greedy(s, a, L + X, 1, &r);
    ASSERT_EQ(r.done.n_cached, 0);
    st = cst_sched_get_stats(s);
    ASSERT_EQ(st.n_snapshots, 0);
    ASSERT_EQ(st.snapshot_bytes, 0);
    ASSERT_EQ(st.n_snapshot_saves, 0);
    cst_sched_free(s);
    cst_model_free(m);
}

/* The benchmark's pattern on a small scale: more conversations than slots,
 * interleaved turn by turn, each turn's prompt extending the last. From the
 * second turn on every prompt's history is reused (restored or in its slot),
 * and the store holds one snapshot per conversation (older turns replaced). */
TEST(sched_kv_snapshot_interleaved_conversations) {
    cst_model *m = load_stories();
    if (!m) return;
    enum { NC = 6, T = 4, L0 = 10, STEP = 5 };
    cst_sched *s = new_sched(m, 2, 128, CST_SCHED_CACHE_BYTES_DEFAULT);
    cst_token conv[NC][L0 + T * STEP];
    for (int k = 0; k < NC; k++)
        for (int i = 0; i < L0 + T * STEP; i++) conv[k][i] = 20 + k * 40 + i;
    result r;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < NC; k++) {
            const int n = L0 + t * STEP;
            run_greedy(s, conv[k], (size_t)n, 1, &r); /* max 1: the slot holds exactly the prompt */
            ASSERT_EQ(r.done.n_cached, t == 0 ? 0 : n - STEP);
        }
    cst_sched_stats st = cst_sched_get_stats(s);
    ASSERT_EQ(st.n_snapshot_restores, (T - 1) * NC);
    ASSERT(st.n_snapshots <= NC);
    ASSERT_EQ(st.n_snapshot_evictions, 0);
    ASSERT_EQ(st.n_cached_tokens, (uint64_t)NC * (L0 * (T - 1) + STEP * (T - 1) * (T - 2) / 2));
    cst_sched_free(s);
    cst_model_free(m);
}
