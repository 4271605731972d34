/* test_mm.c: image input to the language model against llama.cpp's
 * multimodal goldens (golden/vision/tinygemma3.jsonl): text chunk, the
 * image's 256 projector rows decoded non-causally in one embedding batch,
 * text chunk, 8 greedy steps; with rows from cst_vision_encode and from the
 * golden projector output. Also: prefix reuse around images (markers),
 * embedding batch validation and the n_batch limit for non-causal images.
 */
#include "test.h"
#include "engine_util.h"

#include "core/core.h"
#include "core/pool.h"
#include "engine/engine.h"
#include "engine/vision/vision.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define N_THREADS 2
#define LM_FILE "models/tiny-gemma3-vision-F32.gguf"
#define MMPROJ_FILE "models/mmproj-tinygemma3.gguf"
#define NMSE_TOL 1e-5 /* F32 model */
#define MARGIN 1e-3

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* ---- golden data ------------------------------------------------------- */
typedef struct golden {
    char image[64];
    cst_token t1[64], t2[128], gen[16];
    int n1, n2, n_gen, n_img, n_past;
    double margin[16];
    int top_id[16][10];
    double top_logit[16][10];
    int n_top[16];
    float *embd; /* [n_img][n_embd] from tinygemma3-embd.jsonl */
} golden;

static int n_golden;
static golden goldens[2];

static json_t *load_lines(const char *rel) {
    char *text = NULL;
    size_t n = 0;
    ASSERT_MSG(cst_read_file(cst_test_shared(rel), &text, &n) == CST_OK, "cannot read %s", rel);
    json_t *arr = json_array();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        ASSERT_MSG(o, "%s: bad json: %s", rel, je.text);
        json_array_append_new(arr, o);
    }
    free(text);
    return arr;
}

static int ids(json_t *a, cst_token *out, int cap) {
    const int n = (int)json_array_size(a);
    ASSERT(n <= cap);
    for (int i = 0; i < n; i++) out[i] = (cst_token)json_integer_value(json_array_get(a, (size_t)i));
    return n;
}

static void load_goldens(void) {
    if (n_golden) return;
    json_t *rows = load_lines("golden/vision/tinygemma3.jsonl");
    json_t *embs = load_lines("golden/vision/tinygemma3-embd.jsonl");
    ASSERT_EQ(json_array_size(rows), 2);
    ASSERT_EQ(json_array_size(embs), 2);
    for (size_t r = 0; r < 2; r++) {
        golden *g = &goldens[r];
        memset(g, 0, sizeof *g);
        json_t *o = json_array_get(rows, r);
        snprintf(g->image, sizeof g->image, "%s", json_string_value(json_object_get(o, "image")));
        json_t *ch = json_object_get(o, "chunks");
        ASSERT_EQ(json_array_size(ch), 3);
        ASSERT_STREQ(json_string_value(json_object_get(json_array_get(ch, 1), "type")), "image");
        ASSERT(json_is_true(json_object_get(json_array_get(ch, 1), "non_causal")));
        g->n1 = ids(json_object_get(json_array_get(ch, 0), "ids"), g->t1, 64);
        g->n_img = (int)json_integer_value(json_object_get(json_array_get(ch, 1), "n_tokens"));
        g->n2 = ids(json_object_get(json_array_get(ch, 2), "ids"), g->t2, 128);
        g->n_past = (int)json_integer_value(json_object_get(o, "n_past_after_prompt"));
        ASSERT_EQ(g->n_past, g->n1 + g->n_img + g->n2);
        g->n_gen = ids(json_object_get(o, "generated_ids"), g->gen, 16);
        json_t *steps = json_object_get(o, "steps");
        ASSERT_EQ(json_array_size(steps), (size_t)g->n_gen);
        for (int s = 0; s < g->n_gen; s++) {
            json_t *st = json_array_get(steps, (size_t)s);
            g->margin[s] = json_real_value(json_object_get(st, "margin"));
            json_t *top = json_object_get(st, "top");
            g->n_top[s] = (int)json_array_size(top);
            ASSERT(g->n_top[s] <= 10 && g->n_top[s] > 0);
            for (int k = 0; k < g->n_top[s]; k++) {
                json_t *pair = json_array_get(top, (size_t)k);
                g->top_id[s][k] = (int)json_integer_value(json_array_get(pair, 0));
                g->top_logit[s][k] = json_real_value(json_array_get(pair, 1));
            }
        }
        json_t *e = json_array_get(embs, r);
        ASSERT_STREQ(json_string_value(json_object_get(e, "image")), g->image);
        ASSERT_EQ(json_integer_value(json_object_get(e, "n_tokens")), g->n_img);
        json_t *ev = json_object_get(e, "embd");
        const size_t ne = json_array_size(ev);
        ASSERT_EQ(ne, (size_t)g->n_img * 128);
        g->embd = malloc(ne * sizeof(float));
        for (size_t i = 0; i < ne; i++) g->embd[i] = (float)json_real_value(json_array_get(ev, i));
    }
    json_decref(rows);
    json_decref(embs);
    n_golden = 2;
}

/* Projector output for a golden image through cst_vision_encode (malloc'd). */
static float *encode_image(const char *name) {
    char rel[128], err[256] = "";
    snprintf(rel, sizeof rel, "golden/vision/%s", name);
    char *bytes = NULL;
    size_t n = 0;
    ASSERT_MSG(cst_read_file(cst_test_shared(rel), &bytes, &n) == CST_OK, "cannot read %s", rel);
    cst_image img;
    ASSERT_MSG(cst_image_decode(bytes, n, NULL, &img, err, sizeof err) == CST_OK, "%s", err);
    cst_vision *v = NULL;
    ASSERT_MSG(cst_vision_load(cst_test_shared(MMPROJ_FILE), &v, err, sizeof err) == CST_OK, "%s", err);
    const size_t sz = (size_t)cst_vision_n_tokens(v) * cst_vision_n_embd(v);
    float *out = malloc(sz * sizeof(float));
    cst_pool *pool = cst_pool_new(N_THREADS);
    ASSERT_MSG(cst_vision_encode(v, &img, out, pool, err, sizeof err) == CST_OK, "%s", err);
    cst_pool_free(pool);
    cst_vision_free(v);
    cst_image_free(&img);
    free(bytes);
    return out;
}

/* ---- decoding helpers -------------------------------------------------- */
/* Tokens toks[0..n) into seq at pos0 as one batch; logits of the last entry
 * when want (borrowed), else NULL. */
static const float *feed(cst_ctx *c, cst_batch *b, int seq, const cst_token *toks, int n, int pos0, bool want) {
    cst_batch_clear(b);
    for (int j = 0; j < n; j++) cst_batch_add(b, toks[j], pos0 + j, seq, want && j == n - 1);
    cst_status st = cst_ctx_decode(c, b);
    ASSERT_MSG(st == CST_OK, "decode: %s (%s)", cst_status_str(st), cst_ctx_errmsg(c));
    return want ? cst_ctx_logits(c, n - 1) : NULL;
}

/* Prompt of golden g into seq (empty): text, image rows, text. Returns the
 * logits after the prompt (borrowed). */
static const float *feed_prompt(cst_ctx *c, cst_batch *b, int seq, const golden *g, const float *rows,
                                cst_token marker, bool non_causal) {
    feed(c, b, seq, g->t1, g->n1, 0, false);
    cst_status st = cst_ctx_decode_embd(c, seq, g->n1, rows, g->n_img, marker, non_causal);
    ASSERT_MSG(st == CST_OK, "decode_embd: %s (%s)", cst_status_str(st), cst_ctx_errmsg(c));
    ASSERT_EQ(cst_ctx_seq_len(c, seq), g->n1 + g->n_img);
    const float *lg = feed(c, b, seq, g->t2, g->n2, g->n1 + g->n_img, true);
    ASSERT_EQ(cst_ctx_seq_len(c, seq), g->n_past);
    return lg;
}

/* top-10 comparison of step s: max |diff| and NMSE over the golden's values */
static void top_err(const golden *g, int s, const float *lg, double *maxd, double *e) {
    double num = 0, den = 0, mx = 0;
    for (int k = 0; k < g->n_top[s]; k++) {
        const double ref = g->top_logit[s][k], d = lg[g->top_id[s][k]] - ref;
        num += d * d;
        den += ref * ref;
        if (fabs(d) > mx) mx = fabs(d);
    }
    *maxd = mx;
    *e = den > 0 ? num / den : num;
}

typedef struct run_result {
    double nmse0, maxd0, maxd_all;
    int n_checked, n_bad;
} run_result;

/* The whole golden procedure for g with the given image rows: prompt, then
 * n_gen greedy steps (teacher-forced with the golden token; a mismatch at a
 * step with margin >= MARGIN is counted). */
static run_result run_golden(cst_model *m, const golden *g, const float *rows, bool non_causal, bool quiet) {
    run_result r = {0};
    cst_ctx *c = new_ctx(m, 512, 1, 512);
    cst_batch *b = cst_batch_new(512);
    const int nv = cst_model_n_vocab(m);
    const float *lg = feed_prompt(c, b, 0, g, rows, cst_embd_marker(0x1234u), non_causal);
    for (int s = 0; s < g->n_gen; s++) {
        double md, e;
        top_err(g, s, lg, &md, &e);
        if (s == 0) {
            r.nmse0 = e;
            r.maxd0 = md;
        }
        if (md > r.maxd_all) r.maxd_all = md;
        const int mine = argmax(lg, nv);
        if (g->margin[s] >= MARGIN) {
            r.n_checked++;
            if (mine != g->gen[s]) {
                r.n_bad++;
                if (!quiet)
                    printf("      MISMATCH %s step %d: token %d, golden %d (margin %g)\n", g->image, s, mine,
                           g->gen[s], g->margin[s]);
            }
        }
        if (getenv("CST_TEST_VERBOSE"))
            printf("      %s step %d: mine %d golden %d, top-10 max |diff| %.3g NMSE %.3g\n", g->image, s, mine,
                   g->gen[s], md, e);
        if (s + 1 < g->n_gen) lg = feed(c, b, 0, &g->gen[s], 1, g->n_past + s, true);
    }
    cst_batch_free(b);
    cst_ctx_free(c);
    return r;
}

static void check_golden(const char *what, const golden *g, run_result r) {
    printf("    %-16s %-8s step-0 top-10 NMSE %.3g, max |diff| %.3g; all steps max |diff| %.3g; %d/%d steps "
           "checked, %d mismatches\n",
           g->image, what, r.nmse0, r.maxd0, r.maxd_all, r.n_checked, g->n_gen, r.n_bad);
    fflush(stdout);
    ASSERT_MSG(r.n_bad == 0, "%s %s: %d greedy mismatches", g->image, what, r.n_bad);
    ASSERT_MSG(r.nmse0 <= NMSE_TOL, "%s %s: step-0 top-10 NMSE %.3g > %g", g->image, what, r.nmse0, NMSE_TOL);
}

/* ---- tests -------------------------------------------------------------- */
TEST(golden_image_through_vision_encoder) {
    load_goldens();
    cst_model *m = load(LM_FILE);
    ASSERT_EQ(cst_model_n_embd(m), 128);
    for (int i = 0; i < n_golden; i++) {
        float *rows = encode_image(goldens[i].image);
        check_golden("encoded", &goldens[i], run_golden(m, &goldens[i], rows, true, false));
        free(rows);
    }
    cst_model_free(m);
}

TEST(golden_image_from_golden_embeddings) {
    load_goldens();
    cst_model *m = load(LM_FILE);
    for (int i = 0; i < n_golden; i++)
        check_golden("golden", &goldens[i], run_golden(m, &goldens[i], goldens[i].embd, true, false));
    cst_model_free(m);
}

/* The golden discriminates: the same rows decoded causally (llama.cpp's
 * default for text) fail the criteria for at least one image and are
 * >= 1000x further from the reference than the non-causal decode. */
TEST(causal_image_misses_golden) {
    load_goldens();
    cst_model *m = load(LM_FILE);
    int n_fail = 0;
    for (int i = 0; i < n_golden; i++) {
        run_result nc = run_golden(m, &goldens[i], goldens[i].embd, true, true);
        run_result r = run_golden(m, &goldens[i], goldens[i].embd, false, true);
        printf("    %-16s causal   step-0 top-10 NMSE %.3g (non-causal %.3g), %d greedy mismatches\n",
               goldens[i].image, r.nmse0, nc.nmse0, r.n_bad);
        ASSERT_MSG(r.nmse0 > 1000 * nc.nmse0, "causal decode is as close to the golden (NMSE %.3g vs %.3g)",
                   r.nmse0, nc.nmse0);
        if (r.n_bad > 0 || r.nmse0 > NMSE_TOL) n_fail++;
    }
    ASSERT_MSG(n_fail > 0, "causal decoding of the images passes the golden criteria");
    cst_model_free(m);
}

/* Image rows must not be scaled by sqrt(n_embd) like token embeddings:
 * feeding a token's own embedding row (times sqrt(n_embd), as gemma3 scales
 * it) as an embedding entry gives the same logits as the token. */
TEST(embedding_row_equals_token_input) {
    cst_model *m = load(LM_FILE);
    cst_ctx *c = new_ctx(m, 64, 2, 64);
    cst_batch *b = cst_batch_new(64);
    const cst_token toks[4] = {1, 410, 504, 356};
    const float *lg = feed(c, b, 0, toks, 4, 0, true);
    const int nv = cst_model_n_vocab(m), ne = cst_model_n_embd(m);
    float *ref = malloc(sizeof(float) * nv);
    memcpy(ref, lg, sizeof(float) * nv);

    /* rows = the token embeddings (F32 in this file) times sqrt(n_embd) */
    const cst_gguf_tensor *t = cst_gguf_find_tensor(cst_model_gguf(m), "token_embd.weight");
    ASSERT(t != NULL);
    ASSERT_EQ(t->type, CST_TYPE_F32);
    const float *E = (const float *)t->data;
    float rows[4 * 128];
    ASSERT_EQ(ne, 128);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < ne; k++) rows[i * ne + k] = E[(size_t)toks[i] * ne + k] * sqrtf((float)ne);
    cst_batch_clear(b);
    for (int i = 0; i < 4; i++) cst_batch_add(b, -5, i, 1, i == 3);
    b->embd = rows;
    ASSERT_OK(cst_ctx_decode(c, b));
    lg = cst_ctx_logits(c, 3);
    ASSERT(lg != NULL);
    double mx = 0;
    for (int i = 0; i < nv; i++) mx = fmax(mx, fabs((double)lg[i] - ref[i]));
    ASSERT_MSG(mx == 0.0, "embedding input differs from token input by %.3g", mx);
    int32_t n = 0;
    const cst_token *st = cst_ctx_seq_tokens(c, 1, &n);
    ASSERT_EQ(n, 4);
    ASSERT_EQ(st[0], -5);
    free(ref);
    cst_batch_free(b);
    cst_ctx_free(c);
    cst_model_free(m);
}

/* Prefix reuse: the sequence's tokens carry the image marker, so a prompt
 * with another image reuses only the text before it, and the same image
 * with a different suffix reuses the image; both give the logits of a fresh
 * decode. */
TEST(prefix_reuse_with_images) {
    load_goldens();
    cst_model *m = load(LM_FILE);
    const int nv = cst_model_n_vocab(m);
    const golden *ga = &goldens[0], *gb = &goldens[1];
    ASSERT(strcmp(ga->image, gb->image) != 0);
    const cst_token ma = cst_embd_marker(0xA11CE), mb = cst_embd_marker(0xB0B);
    ASSERT(ma < 0 && mb < 0 && ma != mb && ma != CST_TOKEN_EMBD_ANON);

    /* the prompts as token lists with markers at the image positions */
    const int np = ga->n_past;
    cst_token pa[512], pb[512], pc[512];
    int k = 0;
    for (int i = 0; i < ga->n1; i++) pa[k++] = ga->t1[i];
    for (int i = 0; i < ga->n_img; i++) pa[k++] = ma;
    for (int i = 0; i < ga->n2; i++) pa[k++] = ga->t2[i];
    ASSERT_EQ(k, np);
    memcpy(pb, pa, sizeof(cst_token) * np);
    for (int i = 0; i < ga->n_img; i++) pb[ga->n1 + i] = mb;
    memcpy(pc, pa, sizeof(cst_token) * np); /* same image, last 5 tokens changed */
    for (int i = np - 5; i < np; i++) pc[i] = 300 + i % 7;

    cst_ctx *c = new_ctx(m, 512, 2, 512);
    cst_batch *b = cst_batch_new(512);
    float *ref = malloc(sizeof(float) * nv);

    /* fresh decodes of B and C in sequence 1 (the references) */
    const float *lg = feed_prompt(c, b, 1, gb, gb->embd, mb, true);
    memcpy(ref, lg, sizeof(float) * nv);

    /* sequence 0 holds A; B matches only the text before the image */
    feed_prompt(c, b, 0, ga, ga->embd, ma, true);
    int32_t n = 0;
    const cst_token *held = cst_ctx_seq_tokens(c, 0, &n);
    ASSERT_EQ(n, np);
    ASSERT_MSG(memcmp(held, pa, sizeof(cst_token) * np) == 0, "recorded tokens differ from the prompt with markers");
    int32_t keep = cst_ctx_seq_common_prefix(c, 0, pb, np);
    ASSERT_EQ(keep, ga->n1);
    ASSERT_OK(cst_ctx_seq_truncate(c, 0, keep));
    ASSERT_OK(cst_ctx_decode_embd(c, 0, keep, gb->embd, gb->n_img, mb, true));
    lg = feed(c, b, 0, gb->t2, gb->n2, keep + gb->n_img, true);
    for (int i = 0; i < nv; i++) ASSERT_MSG(lg[i] == ref[i], "reuse before image B: logit %d differs", i);

    /* C on sequence 1 fresh: A's text, A's image, changed suffix */
    ASSERT_OK(cst_ctx_seq_truncate(c, 1, 0));
    feed(c, b, 1, pc, ga->n1, 0, false);
    ASSERT_OK(cst_ctx_decode_embd(c, 1, ga->n1, ga->embd, ga->n_img, ma, true));
    lg = feed(c, b, 1, pc + ga->n1 + ga->n_img, ga->n2, ga->n1 + ga->n_img, true);
    memcpy(ref, lg, sizeof(float) * nv);

    /* sequence 0: back to A, then C reuses A's image and decodes 5 tokens */
    ASSERT_OK(cst_ctx_seq_truncate(c, 0, 0));
    feed_prompt(c, b, 0, ga, ga->embd, ma, true);
    keep = cst_ctx_seq_common_prefix(c, 0, pc, np);
    ASSERT_EQ(keep, np - 5);
    ASSERT_OK(cst_ctx_seq_truncate(c, 0, keep));
    lg = feed(c, b, 0, pc + keep, np - keep, keep, true);
    double mx = 0;
    for (int i = 0; i < nv; i++) mx = fmax(mx, fabs((double)lg[i] - ref[i]));
    printf("    reuse of image A + 5 new tokens vs fresh decode: max |diff| %.3g\n", mx);
    ASSERT_MSG(mx <= 1e-5, "reusing the image's KV changed the logits by %.3g", mx);

    /* a copied sequence keeps the markers */
    ASSERT_OK(cst_ctx_seq_copy(c, 0, 1, np));
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 1, pb, np), ga->n1);
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 1, pc, np), np);

    free(ref);
    cst_batch_free(b);
    cst_ctx_free(c);
    cst_model_free(m);
}

/* cst_ctx_seq_common_prefix never ends inside an image block and never
 * reuses anonymous embedding positions. */
TEST(common_prefix_respects_image_blocks) {
    cst_model *m = load(LM_FILE);
    cst_ctx *c = new_ctx(m, 64, 1, 64);
    cst_batch *b = cst_batch_new(64);
    const cst_token mk = cst_embd_marker(42);
    /* held: 3 tokens, 8 image rows, 2 tokens */
    cst_token held[13] = {1, 410, 512, mk, mk, mk, mk, mk, mk, mk, mk, 513, 410};
    float rows[8 * 128];
    for (int i = 0; i < 8 * 128; i++) rows[i] = (float)((i * 37) % 11) * 0.1f - 0.5f;
    feed(c, b, 0, held, 3, 0, false);
    ASSERT_OK(cst_ctx_decode_embd(c, 0, 3, rows, 8, mk, true));
    feed(c, b, 0, held + 11, 2, 11, true);

    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 0, held, 13), 13);
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 0, held, 7), 3);  /* prompt ends inside the image */
    cst_token shorter[12] = {1, 410, 512, mk, mk, mk, mk, mk, mk, mk, 513, 410}; /* 7 rows */
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 0, shorter, 12), 3);
    cst_token other[13];
    memcpy(other, held, sizeof other);
    for (int i = 3; i < 11; i++) other[i] = cst_embd_marker(43);
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 0, other, 13), 3);
    other[1] = 411;
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 0, other, 13), 1);
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 0, held, 0), 0);
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 0, NULL, 5), 0);

    /* embedding batch without markers: recorded as anonymous, never reused */
    ASSERT_OK(cst_ctx_seq_truncate(c, 0, 3));
    cst_batch_clear(b);
    for (int i = 0; i < 8; i++) cst_batch_add(b, 0, 3 + i, 0, false);
    b->embd = rows;
    b->non_causal = true;
    cst_token *saved = b->token;
    b->token = NULL;
    ASSERT_OK(cst_ctx_decode(c, b));
    b->token = saved;
    int32_t n = 0;
    const cst_token *st = cst_ctx_seq_tokens(c, 0, &n);
    ASSERT_EQ(n, 11);
    ASSERT_EQ(st[5], CST_TOKEN_EMBD_ANON);
    cst_token anon[11] = {1, 410, 512};
    for (int i = 3; i < 11; i++) anon[i] = CST_TOKEN_EMBD_ANON;
    ASSERT_EQ(cst_ctx_seq_common_prefix(c, 0, anon, 11), 3);

    cst_batch_free(b);
    cst_ctx_free(c);
    cst_model_free(m);
}

/* A non-causal image must fit one batch: refused with a clear error and the
 * cache unchanged; causal embedding rows are split into n_batch chunks and
 * give the same result as one batch. Bad embedding batches are refused. */
TEST(image_batch_limits_and_errors) {
    load_goldens();
    cst_model *m = load(LM_FILE);
    const golden *g = &goldens[0];
    cst_ctx *c = new_ctx(m, 512, 2, 128);
    cst_batch *b = cst_batch_new(128);
    const cst_token mk = cst_embd_marker(7);
    feed(c, b, 0, g->t1, g->n1, 0, false);

    cst_status st = cst_ctx_decode_embd(c, 0, g->n1, g->embd, g->n_img, mk, true);
    ASSERT_EQ(st, CST_ERR_INVALID_ARG);
    const char *msg = cst_ctx_errmsg(c);
    printf("    refused: %s\n", msg);
    ASSERT(strstr(msg, "n_batch") != NULL);
    ASSERT(strstr(msg, "256") != NULL);
    ASSERT_EQ(cst_ctx_seq_len(c, 0), g->n1);

    /* causal rows: split in 128-row chunks == one 256-row batch elsewhere */
    ASSERT_OK(cst_ctx_decode_embd(c, 0, g->n1, g->embd, g->n_img, mk, false));
    ASSERT_EQ(cst_ctx_seq_len(c, 0), g->n1 + g->n_img);
    const int nv = cst_model_n_vocab(m);
    float *ref = malloc(sizeof(float) * nv);
    const float *lg = feed(c, b, 0, g->t2, 64 < g->n2 ? 64 : g->n2, g->n1 + g->n_img, true);
    memcpy(ref, lg, sizeof(float) * nv);
    cst_ctx *c2 = new_ctx(m, 512, 1, 512);
    cst_batch *b2 = cst_batch_new(512);
    feed(c2, b2, 0, g->t1, g->n1, 0, false);
    ASSERT_OK(cst_ctx_decode_embd(c2, 0, g->n1, g->embd, g->n_img, mk, false));
    lg = feed(c2, b2, 0, g->t2, 64 < g->n2 ? 64 : g->n2, g->n1 + g->n_img, true);
    double mx = 0;
    for (int i = 0; i < nv; i++) mx = fmax(mx, fabs((double)lg[i] - ref[i]));
    ASSERT_MSG(mx <= 1e-5, "chunked causal rows differ by %.3g", mx);
    cst_batch_free(b2);
    cst_ctx_free(c2);

    /* bad arguments */
    ASSERT_EQ(cst_ctx_decode_embd(c, 1, 0, g->embd, 4, 5, true), CST_ERR_INVALID_ARG); /* marker >= 0 */
    ASSERT_EQ(cst_ctx_decode_embd(c, 1, 0, NULL, 4, mk, true), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_ctx_decode_embd(c, 1, 0, g->embd, 0, mk, true), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_ctx_decode_embd(c, 2, 0, g->embd, 4, mk, true), CST_ERR_INVALID_ARG); /* seq */
    ASSERT_EQ(cst_ctx_decode_embd(c, 1, 3, g->embd, 4, mk, true), CST_ERR_INVALID_ARG); /* position gap */
    ASSERT_EQ(cst_ctx_decode_embd(c, 1, 0, g->embd, 4, mk, true), CST_OK);
    ASSERT_EQ(cst_ctx_decode_embd(c, 1, 4, g->embd, 510, mk, false), CST_ERR_CTX_FULL);
    ASSERT_EQ(cst_ctx_seq_len(c, 1), 4);
    cst_batch_clear(b);
    cst_batch_add(b, 3, 4, 1, false); /* non-negative marker in an embedding batch */
    b->embd = g->embd;
    ASSERT_EQ(cst_ctx_decode(c, b), CST_ERR_INVALID_ARG);
    cst_batch_clear(b);
    ASSERT(b->embd == NULL && !b->non_causal);
    cst_batch_add(b, 3, 4, 1, false);
    cst_token *saved = b->token;
    b->token = NULL; /* a token batch needs ids */
    ASSERT_EQ(cst_ctx_decode(c, b), CST_ERR_INVALID_ARG);
    b->token = saved;
    ASSERT_EQ(cst_ctx_seq_len(c, 1), 4);
    /* a negative id in a token batch is still refused */
    cst_batch_clear(b);
    cst_batch_add(b, mk, 4, 1, false);
    ASSERT_EQ(cst_ctx_decode(c, b), CST_ERR_INVALID_ARG);

    free(ref);
    cst_batch_free(b);
    cst_ctx_free(c);
    cst_model_free(m);
}
