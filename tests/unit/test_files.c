/* test_files.c: the Files API pieces below HTTP: the store's files contract
 * (insert/conflict, owner partitioning, paging order, expiry listing, delete
 * returning the blob hash, blob reference counts, per-owner usage), the quota
 * rule, base64, URI -> file id,
 * and the image path of the server: a rendered prompt split at the media
 * marker must give exactly llama.cpp's chunks for tinygemma3 (text ids,
 * <start_of_image>, 256 image positions, <end_of_image>, text ids), and the
 * scheduler must decode such a request (cst_req_embd) and reuse its prefix
 * through the same image but not through a different one.
 */
#include "test.h"

#include "api/files.h"
#include "engine/vision/vision.h"

#include <jansson.h>
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

static const char *H1 = "1111111111111111111111111111111111111111111111111111111111111111";
static const char *H2 = "2222222222222222222222222222222222222222222222222222222222222222";

TEST(files_store_contract) {
    cst_store *s = open_tmp("f.db");
    cst_frec a = {.id = "abc", .owner = "k1", .mime = "image/png", .size = 10, .sha256 = (char *)H1, .created = 100,
                  .updated = 100, .expires = 1000, .display_name = "first"};
    ASSERT_OK(cst_store_file_put(s, &a));
    ASSERT_EQ(cst_store_file_put(s, &a), CST_ERR_CONFLICT);
    cst_frec b = a;
    b.owner = "k2"; /* same id, other owner: a different file */
    b.display_name = NULL;
    ASSERT_OK(cst_store_file_put(s, &b));
    cst_frec g;
    ASSERT_OK(cst_store_file_get(s, "k1", "abc", &g));
    ASSERT_STREQ(g.display_name, "first");
    ASSERT_STREQ(g.sha256, H1);
    ASSERT_EQ(g.size, 10);
    ASSERT_EQ(g.expires, 1000);
    cst_frec_clear(&g);
    ASSERT_OK(cst_store_file_get(s, "k2", "abc", &g));
    ASSERT(g.display_name == NULL);
    cst_frec_clear(&g);
    ASSERT_EQ(cst_store_file_get(s, "k3", "abc", &g), CST_ERR_NOT_FOUND);
    /* more files of k1: paging newest first */
    const char *ids[] = {"f1", "f2", "f3", "f4"};
    for (int i = 0; i < 4; i++) {
        cst_frec r = a;
        r.id = (char *)ids[i];
        r.sha256 = (char *)(i == 3 ? H2 : H1);
        r.expires = i == 0 ? 150 : 1000;
        ASSERT_OK(cst_store_file_put(s, &r));
    }
    cst_frec *v = NULL;
    size_t n = 0;
    ASSERT_OK(cst_store_file_list(s, "k1", 200, 0, 2, &v, &n));
    ASSERT_EQ(n, 2);
    ASSERT_STREQ(v[0].id, "f4");
    ASSERT_STREQ(v[1].id, "f3");
    int64_t next = v[1].seq;
    cst_frec_free_list(v, n);
    ASSERT_OK(cst_store_file_list(s, "k1", 200, next, 10, &v, &n));
    ASSERT_EQ(n, 2); /* f2 and abc; f1 expired at 150 */
    ASSERT_STREQ(v[0].id, "f2");
    ASSERT_STREQ(v[1].id, "abc");
    cst_frec_free_list(v, n);
    ASSERT_OK(cst_store_file_expired(s, 200, 10, &v, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(v[0].id, "f1");
    cst_frec_free_list(v, n);
    int64_t refs = 0;
    ASSERT_OK(cst_store_blob_refs(s, H1, &refs));
    ASSERT_EQ(refs, 5);
    char sha[65] = "";
    ASSERT_OK(cst_store_file_del(s, "k1", "f4", sha));
    ASSERT_STREQ(sha, H2);
    ASSERT_OK(cst_store_blob_refs(s, H2, &refs));
    ASSERT_EQ(refs, 0);
    ASSERT_EQ(cst_store_file_del(s, "k1", "f4", sha), CST_ERR_NOT_FOUND);
    ASSERT_EQ(cst_store_file_del(s, "k2", "f3", NULL), CST_ERR_NOT_FOUND);
    cst_store_close(s);
}

TEST(files_store_usage) {
    /* the per-key quota's input: bytes of an owner's live files, earliest expiry */
    cst_store *s = open_tmp("u.db");
    int64_t bytes = -1, next = -1;
    ASSERT_OK(cst_store_file_usage(s, "k1", 100, &bytes, &next));
    ASSERT_EQ(bytes, 0);
    ASSERT_EQ(next, 0);
    const struct {
        const char *id, *owner;
        int64_t size, expires;
    } rows[] = {{"a", "k1", 1000, 500}, {"b", "k1", 20, 300}, {"c", "k1", 7, 150}, {"a", "k2", 4000, 500}};
    for (size_t i = 0; i < CST_ARRAY_LEN(rows); i++) {
        cst_frec r = {.id = (char *)rows[i].id, .owner = (char *)rows[i].owner, .mime = "image/png",
                      .size = rows[i].size, .sha256 = (char *)H1, .created = 100, .updated = 100,
                      .expires = rows[i].expires};
        ASSERT_OK(cst_store_file_put(s, &r));
    }
    ASSERT_OK(cst_store_file_usage(s, "k1", 100, &bytes, &next));
    ASSERT_EQ(bytes, 1027); /* k2's file never counts for k1 */
    ASSERT_EQ(next, 150);
    ASSERT_OK(cst_store_file_usage(s, "k1", 150, &bytes, &next));
    ASSERT_EQ(bytes, 1020); /* c expired at 150 (still a row until the janitor runs) */
    ASSERT_EQ(next, 300);
    ASSERT_OK(cst_store_file_usage(s, "k1", 150, &bytes, NULL)); /* next_expiry is optional */
    ASSERT_EQ(bytes, 1020);
    ASSERT_OK(cst_store_file_usage(s, "k2", 150, &bytes, &next));
    ASSERT_EQ(bytes, 4000);
    ASSERT_EQ(next, 500);
    ASSERT_OK(cst_store_file_del(s, "k1", "a", NULL)); /* deleting frees */
    ASSERT_OK(cst_store_file_usage(s, "k1", 150, &bytes, &next));
    ASSERT_EQ(bytes, 20);
    ASSERT_OK(cst_store_file_usage(s, "k1", 300, &bytes, &next));
    ASSERT_EQ(bytes, 0);
    ASSERT_EQ(next, 0);
    ASSERT_OK(cst_store_file_usage(s, "nobody", 0, &bytes, &next));
    ASSERT_EQ(bytes, 0);
    cst_store_close(s);
}

TEST(files_quota_rule) {
    /* held + reserved + declared > quota; exactly the quota still fits */
    ASSERT(!cst_files_quota_exceeded(100, 0, 0, 100));
    ASSERT(cst_files_quota_exceeded(100, 0, 0, 101));
    ASSERT(!cst_files_quota_exceeded(100, 60, 30, 10));
    ASSERT(cst_files_quota_exceeded(100, 60, 30, 11));
    ASSERT(cst_files_quota_exceeded(100, 60, 41, 1)); /* in-progress uploads count */
    ASSERT(cst_files_quota_exceeded(100, 101, 0, 1)); /* over already (quota lowered on restart) */
    ASSERT(cst_files_quota_exceeded(100, 0, 101, 1));
    /* no wrap-around with huge values */
    ASSERT(cst_files_quota_exceeded(100, UINT64_MAX, UINT64_MAX, UINT64_MAX));
    ASSERT(cst_files_quota_exceeded(100, 50, 0, UINT64_MAX - 10));
    ASSERT(cst_files_quota_exceeded(UINT64_MAX - 1, UINT64_MAX - 1, 1, 1));
    ASSERT(!cst_files_quota_exceeded(20ull << 30, 10ull << 30, 8ull << 30, 2ull << 30));
    ASSERT(cst_files_quota_exceeded(20ull << 30, 10ull << 30, 8ull << 30, (2ull << 30) + 1));
    /* UINT64_MAX: unlimited (--file-quota 0) */
    ASSERT(!cst_files_quota_exceeded(UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX));
}

TEST(files_uri_id) {
    const char *hosts[] = {"127.0.0.1:8080", "castor.local", NULL};
    char id[48];
    ASSERT_EQ(cst_files_uri_id("files/abc123", "", hosts, id), 1);
    ASSERT_STREQ(id, "abc123");
    ASSERT_EQ(cst_files_uri_id("http://127.0.0.1:8080/v1beta/files/abc123", "", hosts, id), 1);
    ASSERT_EQ(cst_files_uri_id("https://castor.local/gemini/v1/files/z9", "/gemini", hosts, id), 1);
    ASSERT_STREQ(id, "z9");
    ASSERT_EQ(cst_files_uri_id("http://example.com/v1beta/files/abc123", "", hosts, id), 0);
    ASSERT_EQ(cst_files_uri_id("gs://bucket/files/abc", "", hosts, id), 0);
    ASSERT_EQ(cst_files_uri_id("http://127.0.0.1:8080/v1beta/models/abc", "", hosts, id), 0);
    ASSERT_EQ(cst_files_uri_id("files/ABC", "", hosts, id), -1);
    ASSERT_EQ(cst_files_uri_id("files/a-b", "", hosts, id), -1);
    ASSERT_EQ(cst_files_uri_id("http://127.0.0.1:8080/v1beta/files/abc?x=1", "", hosts, id), -1);
    ASSERT(cst_files_valid_id("a0"));
    ASSERT(!cst_files_valid_id(""));
    ASSERT(!cst_files_valid_id("00000000001111111111222222222233333333334"));
}

/* ---- the image path against llama.cpp's chunks -------------------------- */

static uint8_t *read_all(const char *path, size_t *n) {
    char *p = NULL;
    if (cst_read_file(path, &p, n)) return NULL;
    return (uint8_t *)p;
}

static void ids_of(json_t *a, cst_token *out, int *n) {
    *n = (int)json_array_size(a);
    for (int i = 0; i < *n; i++) out[i] = (cst_token)json_integer_value(json_array_get(a, (size_t)i));
}

static void run_sched(cst_sched *sc, const cst_token *toks, size_t n, const cst_req_embd *e, char *text, size_t cap,
                      int32_t *n_cached) {
    cst_req_params rp = {.prompt = toks, .n_prompt = n, .embds = e, .n_embds = 1, .max_tokens = 8};
    rp.sampling = cst_sampler_default_params();
    rp.sampling.temperature = 0;
    rp.sampling.seed = 1;
    cst_sched_req *r = NULL;
    char err[256] = "";
    ASSERT_MSG(cst_sched_submit(sc, &rp, &r, err, sizeof err) == CST_OK, "submit: %s", err);
    size_t len = 0;
    text[0] = 0;
    cst_sched_event ev;
    for (;;) {
        ASSERT(cst_sched_req_next(r, &ev, 60));
        if (ev.type == CST_SCHED_EV_TEXT && ev.text && len + ev.len < cap) {
            memcpy(text + len, ev.text, ev.len);
            len += ev.len;
            text[len] = 0;
        }
        if (ev.type == CST_SCHED_EV_DONE) {
            ASSERT_MSG(ev.status == CST_OK, "done: %s", ev.text ? ev.text : "");
            ASSERT_EQ(ev.n_gen, 8);
            *n_cached = ev.n_cached;
            free(ev.text);
            break;
        }
        free(ev.text);
    }
    cst_sched_req_release(r);
}

TEST(files_image_prompt_matches_llama_cpp) {
    size_t gl = 0;
    char *gtxt = (char *)read_all(cst_test_shared("golden/vision/tinygemma3.jsonl"), &gl);
    if (!gtxt) {
        cst_test_skip("no vision goldens");
        return;
    }
    char *nl = strchr(gtxt, '\n');
    if (nl) *nl = 0;
    json_t *g = json_loads(gtxt, 0, NULL);
    ASSERT(g != NULL);
    json_t *chunks = json_object_get(g, "chunks");
    cst_token t1[64], t2[128];
    int n1, n2;
    ids_of(json_object_get(json_array_get(chunks, 0), "ids"), t1, &n1);
    ids_of(json_object_get(json_array_get(chunks, 2), "ids"), t2, &n2);
    const char *prompt = json_string_value(json_object_get(g, "prompt"));

    char err[256] = "";
    smodel sm;
    memset(&sm, 0, sizeof sm);
    ASSERT_OK(cst_model_load(cst_test_shared("models/tiny-gemma3-vision-F32.gguf"), NULL, &sm.m, err, sizeof err));
    ASSERT_OK(cst_vision_load(cst_test_shared("models/mmproj-tinygemma3.gguf"), &sm.vision, err, sizeof err));
    pthread_mutex_init(&sm.vision_mu, NULL);
    const cst_vocab *v = cst_model_vocab(sm.m);
    if (cst_vocab_bos(v) >= 0) sm.chat.bos_text = (char *)cst_vocab_text(v, cst_vocab_bos(v));

    /* the rendered prompt with our marker where llama.cpp has <__media__> */
    const char *media = strstr(prompt, "<__media__>");
    ASSERT(media != NULL);
    char text[1024];
    snprintf(text, sizeof text, "%.*s%s%s", (int)(media - prompt), prompt, cst_media_marker(), media + 11);
    chat_prompt cp = {0};
    cp.text = strdup(text);
    cp.text_len = strlen(text);

    size_t n_img = 0;
    uint8_t *png = read_all(cst_test_shared("golden/vision/gradient.png"), &n_img);
    ASSERT(png != NULL);
    cst_image img;
    ASSERT_OK(cst_image_decode(png, n_img, NULL, &img, err, sizeof err));
    const int nt = cst_vision_n_tokens(sm.vision), ne = cst_vision_n_embd(sm.vision);
    float *rows = malloc((size_t)nt * ne * sizeof *rows);
    ASSERT_OK(cst_vision_encode(sm.vision, &img, rows, NULL, err, sizeof err));
    cst_media_img mi = {.embd = rows, .n_tokens = nt, .n_embd = ne};
    memset(mi.sha, 0xab, 32);
    cst_media m = {.img = &mi, .n = 1};
    ASSERT_OK(cst_media_tokens(&sm, &m, &cp, err, sizeof err));
    ASSERT_EQ(cp.n_toks, (size_t)(n1 + nt + n2));
    for (int i = 0; i < n1; i++) ASSERT_MSG(cp.toks[i] == t1[i], "chunk 1 token %d: %d vs %d", i, cp.toks[i], t1[i]);
    for (int i = 0; i < nt; i++) ASSERT(cp.toks[n1 + i] < 0 && cp.toks[n1 + i] == cp.toks[n1]);
    for (int i = 0; i < n2; i++)
        ASSERT_MSG(cp.toks[n1 + nt + i] == t2[i], "chunk 2 token %d: %d vs %d", i, cp.toks[n1 + nt + i], t2[i]);
    ASSERT_EQ(cp.n_embds, 1);
    ASSERT_EQ(cp.embds[0].pos, n1);
    ASSERT_EQ(cp.embds[0].n_rows, nt);
    ASSERT(cp.embds[0].non_causal);
    ASSERT_EQ(cp.n_image_tokens, nt);
    /* a forged marker count is refused */
    chat_prompt bad = {0};
    char two[1200];
    snprintf(two, sizeof two, "%s%s", text, cst_media_marker());
    bad.text = strdup(two);
    bad.text_len = strlen(two);
    cst_media m2 = {.img = &mi, .n = 1};
    ASSERT_EQ(cst_media_tokens(&sm, &m2, &bad, err, sizeof err), CST_ERR_INVALID_ARG);
    free(m2.embds);
    free(bad.text);
    free(bad.toks);

    /* the scheduler: same answer with and without the cached prefix through
     * the image; a different image is not reused past its start */
    cst_sched_params sp = cst_sched_default_params();
    sp.n_slots = 1;
    sp.n_ctx = 512;
    sp.n_threads = 2;
    cst_sched *sc = NULL;
    ASSERT_OK(cst_sched_new(sm.m, &sp, &sc, err, sizeof err));
    char out1[512], out2[512], out3[512];
    int32_t c1, c2, c3;
    run_sched(sc, cp.toks, cp.n_toks, cp.embds, out1, sizeof out1, &c1);
    run_sched(sc, cp.toks, cp.n_toks, cp.embds, out2, sizeof out2, &c2);
    ASSERT_EQ(c1, 0);
    ASSERT_EQ(c2, (int32_t)cp.n_toks - 1);
    ASSERT_STREQ(out1, out2);
    cst_token *other = malloc(cp.n_toks * sizeof *other);
    memcpy(other, cp.toks, cp.n_toks * sizeof *other);
    for (int i = 0; i < nt; i++) other[n1 + i] = cst_embd_marker(12345);
    cst_req_embd e2 = cp.embds[0];
    run_sched(sc, other, cp.n_toks, &e2, out3, sizeof out3, &c3);
    ASSERT_EQ(c3, n1); /* the text before the image only */
    ASSERT_STREQ(out3, out1); /* same rows, same answer */
    cst_sched_free(sc);
    free(other);
    free(rows);
    free(png);
    cst_image_free(&img);
    cst_chat_prompt_clear(&cp);
    free(m.embds);
    cst_vision_free(sm.vision);
    pthread_mutex_destroy(&sm.vision_mu);
    cst_model_free(sm.m);
    json_decref(g);
    free(gtxt);
}

/* ---- documents (validate.c, files_docs.c) ---- */

static bool parse_body(const char *body, create_req *r, char *err, size_t errlen) {
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    ASSERT(j);
    bool ok = cst_api_parse_create(j, r, err, errlen);
    if (ok) create_req_clear(r);
    json_decref(j);
    return ok;
}

TEST(files_document_blocks_validated) {
    create_req r;
    char err[512];
    static const struct { const char *body, *needle; } bad[] = {
        {"{\"model\":\"m\",\"input\":[{\"type\":\"document\",\"data\":\"QQ==\"}]}", "mime_type: required with inline data"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"document\",\"data\":\"QQ==\",\"uri\":\"files/a\",\"mime_type\":\"text/plain\"}]}", "exactly one"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"document\",\"uri\":\"\"}]}", "uri: empty"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"document\",\"uri\":\"files/a\",\"mime_type\":\"application/zip\"}]}", "'application/zip' is not a document type"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"document\",\"uri\":\"files/a\",\"mime_type\":7}]}", "mime_type: expected a string"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"audio\",\"uri\":\"files/a\"}]}", "audio content is not supported by this server (it reads text, image"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"video\",\"uri\":\"files/a\"}]}", "application/pdf"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        ASSERT_MSG(!parse_body(bad[i].body, &r, err, sizeof err), "accepted %s", bad[i].body);
        ASSERT_MSG(strstr(err, bad[i].needle), "'%s' lacks '%s'", err, bad[i].needle);
    }
    static const char *good[] = {
        "{\"model\":\"m\",\"input\":[{\"type\":\"document\",\"data\":\"QQ==\",\"mime_type\":\"text/plain\"}]}",
        "{\"model\":\"m\",\"input\":[{\"type\":\"document\",\"uri\":\"files/abc\"}]}",
        "{\"model\":\"m\",\"input\":[{\"type\":\"document\",\"uri\":\"files/abc\",\"mime_type\":\"application/pdf\"},{\"type\":\"text\",\"text\":\"sum\"}]}",
        "{\"model\":\"m\",\"input\":[{\"type\":\"document\",\"data\":\"QQ==\",\"mime_type\":\"text/x-python\"}]}",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ASSERT_MSG(parse_body(good[i], &r, err, sizeof err), "%s: %s", good[i], err);
}
