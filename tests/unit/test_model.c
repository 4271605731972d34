/* test_model.c: the engine against llama.cpp's numbers and its own
 * invariants: golden logits for every tiny model (llama, qwen2, qwen3,
 * gemma3 in several weight types), exact greedy continuations of the real
 * stories260K model, multi-sequence batches, chunked prefill, KV sequence
 * truncate/copy, context-full and bad-input errors.
 *
 * NMSE (normalised mean squared error) of logits a against reference b is
 *   mean((a - b)^2) / mean(b^2)
 * over the whole vocabulary.
 */
#include "test.h"
#include "engine_util.h"

#include "engine/engine.h"
#include "engine/kernels/kernels.h"
#include "engine/gguf/gguf.h"
#include "engine/runtime/model_int.h" /* cst_attn_head, cst_weight.packed (module-internal) */

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double nmse(const float *a, const float *b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Decode toks[0..n) into seq starting at pos0, in chunks of `chunk`; the
 * last token asks for logits. Returns the logits (borrowed). */
static const float *feed(cst_ctx *c, cst_batch *b, int seq, const cst_token *toks, int n, int pos0, int chunk) {
    const float *lg = NULL;
    for (int i = 0; i < n; i += chunk) {
        int k = n - i < chunk ? n - i : chunk;
        cst_batch_clear(b);
        for (int j = 0; j < k; j++) cst_batch_add(b, toks[i + j], pos0 + i + j, seq, i + j == n - 1);
        cst_status st = cst_ctx_decode(c, b);
        ASSERT_MSG(st == CST_OK, "decode: %s (%s)", cst_status_str(st), cst_ctx_errmsg(c));
        if (i + k == n) lg = cst_ctx_logits(c, k - 1);
    }
    ASSERT(lg != NULL);
    return lg;
}

static int json_ids(json_t *arr, cst_token *out, int cap) {
    int n = (int)json_array_size(arr);
    ASSERT(n <= cap);
    for (int i = 0; i < n; i++) out[i] = (cst_token)json_integer_value(json_array_get(arr, (size_t)i));
    return n;
}

/* ---- golden logits -------------------------------------------------------
 * The criteria, for every weight type: our greedy token equals
 * llama.cpp's at every step whose golden top-1/top-2 margin is >= 1e-3
 * (teacher forcing), and the step-0 logits of every prompt have NMSE <= 1e-5
 * (F32), 1e-4 (F16, BF16, Q8_0) or 1e-3 (4-6 bit types). This needs the
 * engine to round like llama.cpp's CPU backend everywhere: activation
 * quantization, F16 KV cache, and the float accumulation orders of its
 * kernels, since each flipped rounding boundary moves logits by up to ~0.05.
 * CST_TEST_KEEP_GOING=1 reports every file before failing;
 * CST_TEST_PROMPTS=1 prints each prompt's step-0 error. */
static double tol_for(const char *file, int n_prompt) {
    (void)n_prompt;
    if (strstr(file, "-F32")) return 1e-5;
    if (strstr(file, "-F16") || strstr(file, "-BF16") || strstr(file, "-Q8_0")) return 1e-4;
    return 1e-3;
}

static double margin_for(const char *file) {
    (void)file;
    return 1e-3;
}

static int golden_failed_files;

/* Weight types whose matmul kernels do not yet accumulate in llama.cpp's
 * order (docs/internals/model.md, "Parity") would be printed as KERNEL GAP and
 * fail only with CST_TEST_STRICT=1. None now: F32, F16, Q8_0, Q4_0, Q5_K and
 * Q6_K are bit-exact; Q4_K is exact for single tokens and small batches and
 * meets the criteria (its 4-token gemm order at larger batches is not yet
 * reproduced: step-0 NMSE up to 2.2e-4 on 33-130 token prompts). */
static bool kernel_gap(const char *file) {
    (void)file;
    return false;
}

static void golden_file(const char *file) {
    char rel[256];
    snprintf(rel, sizeof rel, "golden/logits/%s", file);
    FILE *f = fopen(cst_test_shared(rel), "r");
    ASSERT_MSG(f != NULL, "open %s", rel);
    char *line = NULL;
    size_t cap = 0;
    cst_model *m = NULL;
    double max_nmse = 0, max_abs = 0, max_top = 0;
    int n_steps = 0, n_checked = 0, n_bad = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        ASSERT_MSG(o != NULL, "%s: bad json: %s", file, je.text);
        if (!m) {
            char mrel[256];
            snprintf(mrel, sizeof mrel, "models/%s", json_string_value(json_object_get(o, "model")));
            m = load(mrel);
        }
        const int nv = cst_model_n_vocab(m);
        cst_token prompt[512], gen[64];
        const int np = json_ids(json_object_get(o, "prompt_ids"), prompt, 512);
        const int ng = json_ids(json_object_get(o, "generated_ids"), gen, 64);
        cst_ctx *c = new_ctx(m, 512, 1, 512);
        cst_batch *b = cst_batch_new(512);
        const float *lg = feed(c, b, 0, prompt, np, 0, 512);

        json_t *first = json_object_get(o, "first_logits");
        ASSERT_EQ(json_array_size(first), nv);
        float *ref = malloc(sizeof(float) * (size_t)nv);
        for (int i = 0; i < nv; i++) {
            ref[i] = (float)json_real_value(json_array_get(first, (size_t)i));
            double d = fabs((double)lg[i] - ref[i]);
            if (d > max_abs) max_abs = d;
        }
        double e = nmse(lg, ref, nv);
        if (getenv("CST_TEST_PROMPTS")) {
            double pa = 0;
            for (int i = 0; i < nv; i++) pa = fmax(pa, fabs((double)lg[i] - ref[i]));
            printf("      %s prompt %d (%d tokens): step-0 NMSE %.3g |diff| %.3g\n", file,
                   (int)json_integer_value(json_object_get(o, "prompt_index")), np, e, pa);
        }
        if (e > max_nmse) max_nmse = e;
        if (e > tol_for(file, np)) n_bad++;
        if (e > tol_for(file, np))
            printf("      NMSE %s prompt %lld: step-0 NMSE %.3g > %.3g\n", file,
                   (long long)json_integer_value(json_object_get(o, "prompt_index")), e, tol_for(file, np));
        free(ref);

        /* teacher forcing: feed the recorded token, compare our choice */
        json_t *steps = json_object_get(o, "steps");
        for (int s = 0; s < ng; s++) {
            json_t *st = json_array_get(steps, (size_t)s);
            double margin = json_real_value(json_object_get(st, "margin"));
            int mine = argmax(lg, nv);
            n_steps++;
            json_t *top = json_object_get(st, "top");
            double tmax = 0;
            for (size_t k = 0; k < json_array_size(top); k++) {
                json_t *pair = json_array_get(top, k);
                int id = (int)json_integer_value(json_array_get(pair, 0));
                double d = fabs(lg[id] - json_real_value(json_array_get(pair, 1)));
                if (d > tmax) tmax = d;
            }
            if (tmax > max_top) max_top = tmax;
            if (getenv("CST_TEST_VERBOSE"))
                printf("      prompt %lld step %d: top-10 max |diff| %.3g, mine %d golden %d margin %.3g\n",
                       (long long)json_integer_value(json_object_get(o, "prompt_index")), s, tmax, mine, gen[s],
                       margin), fflush(stdout);
            if (margin >= margin_for(file)) {
                n_checked++;
                if (mine != gen[s]) {
                    n_bad++;
                    printf("      MISMATCH %s prompt %lld step %d: token %d, golden %d (margin %g)\n", file,
                           (long long)json_integer_value(json_object_get(o, "prompt_index")), s, mine, gen[s],
                           margin);
                }
            }
            if (s + 1 < ng) lg = feed(c, b, 0, &gen[s], 1, np + s, 1);
        }
        cst_batch_free(b);
        cst_ctx_free(c);
        json_decref(o);
    }
    free(line);
    fclose(f);
    printf("    %-26s step-0 NMSE max %.3g, |diff| max %.3g; top-10 |diff| max over steps %.3g; %d/%d steps checked\n",
           file, max_nmse, max_abs, max_top, n_checked, n_steps);
    fflush(stdout);
    cst_model_free(m);
    if (n_bad && kernel_gap(file) && !getenv("CST_TEST_STRICT")) {
        printf("    KERNEL GAP %s: %d failures of the strict criteria (matmul accumulation order)\n", file, n_bad);
        return;
    }
    if (n_bad && getenv("CST_TEST_KEEP_GOING")) {
        printf("    %s: %d failures (steps with another token, or prompts over the NMSE bound)\n", file, n_bad);
        golden_failed_files++;
        return;
    }
    ASSERT_MSG(n_bad == 0, "%s: %d steps chose another token than llama.cpp", file, n_bad);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

TEST(golden_logits_all_models) {
    DIR *d = opendir(cst_test_shared("golden/logits"));
    ASSERT(d != NULL);
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 6 && !strcmp(de->d_name + l - 6, ".jsonl")) names[n++] = strdup(de->d_name);
    }
    closedir(d);
    ASSERT(n >= 1);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        if (!getenv("CST_TEST_GOLDEN") || strstr(names[i], getenv("CST_TEST_GOLDEN"))) golden_file(names[i]);
        free(names[i]);
    }
    ASSERT_MSG(golden_failed_files == 0, "%d golden files failed", golden_failed_files);
}

/* ---- stories260K greedy ------------------------------------------------- */
TEST(stories260k_greedy_exact) {
    cst_model *m = load("models/stories260K.gguf");
    const cst_vocab *v = cst_model_vocab(m);
    FILE *f = fopen(cst_test_shared("golden/stories260K-greedy.jsonl"), "r");
    ASSERT(f != NULL);
    char *line = NULL;
    size_t cap = 0;
    const int nv = cst_model_n_vocab(m);
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        ASSERT(o != NULL);
        cst_token prompt[256], gen[256];
        const int np = json_ids(json_object_get(o, "prompt_ids"), prompt, 256);
        const int ng = json_ids(json_object_get(o, "generated_ids"), gen, 256);
        const char *text = json_string_value(json_object_get(o, "text"));
        json_t *margins = json_object_get(o, "margins");

        /* the tokenizer gives the recorded prompt ids */
        const char *ptext = json_string_value(json_object_get(o, "prompt"));
        cst_token *ids = NULL;
        size_t nids = 0;
        ASSERT_OK(cst_tokenize(v, ptext, strlen(ptext), true, true, &ids, &nids));
        ASSERT_EQ(nids, np);
        for (int i = 0; i < np; i++) ASSERT_EQ(ids[i], prompt[i]);
        free(ids);

        cst_ctx *c = new_ctx(m, 512, 1, 512);
        cst_batch *b = cst_batch_new(512);
        const float *lg = feed(c, b, 0, prompt, np, 0, 512);
        char *out = calloc(1, 16384);
        size_t ol = 0;
        for (int s = 0; s < ng; s++) {
            int mine = argmax(lg, nv);
            double margin = json_real_value(json_array_get(margins, (size_t)s));
            if (margin >= 1e-3)
                ASSERT_MSG(mine == gen[s], "prompt '%s' step %d: %d vs golden %d", ptext, s, mine, gen[s]);
            ol += cst_token_to_piece(v, gen[s], out + ol, 16384 - ol - 1, false);
            if (s + 1 < ng) lg = feed(c, b, 0, &gen[s], 1, np + s, 1);
        }
        ASSERT_STREQ(out, text);
        free(out);
        cst_batch_free(b);
        cst_ctx_free(c);
        json_decref(o);
    }
    free(line);
    fclose(f);
    cst_model_free(m);
}

/* ---- batching invariants ---------------------------------------------------- */
static const cst_token P1[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315};
static const cst_token P2[] = {1, 317, 269, 368, 302, 263, 377};

TEST(two_sequences_in_one_batch_match_separate) {
    const char *models[] = {"models/tiny-qwen3-Q8_0.gguf", "models/tiny-gemma3-F32.gguf"};
    for (size_t mi = 0; mi < 2; mi++) {
        cst_model *m = load(models[mi]);
        const int nv = cst_model_n_vocab(m);
        const int n1 = (int)(sizeof P1 / sizeof P1[0]), n2 = (int)(sizeof P2 / sizeof P2[0]);
        /* separately */
        float *l1 = malloc(sizeof(float) * (size_t)nv), *l2 = malloc(sizeof(float) * (size_t)nv);
        cst_ctx *c = new_ctx(m, 64, 1, 64);
        cst_batch *b = cst_batch_new(64);
        memcpy(l1, feed(c, b, 0, P1, n1, 0, 64), sizeof(float) * (size_t)nv);
        cst_ctx_free(c);
        c = new_ctx(m, 64, 1, 64);
        memcpy(l2, feed(c, b, 0, P2, n2, 0, 64), sizeof(float) * (size_t)nv);
        cst_ctx_free(c);
        /* together, interleaved */
        c = new_ctx(m, 64, 2, 64);
        cst_batch_clear(b);
        int i1 = -1, i2 = -1;
        for (int i = 0; i < n1 || i < n2; i++) {
            if (i < n1) {
                if (i == n1 - 1) i1 = b->n;
                cst_batch_add(b, P1[i], i, 0, i == n1 - 1);
            }
            if (i < n2) {
                if (i == n2 - 1) i2 = b->n;
                cst_batch_add(b, P2[i], i, 1, i == n2 - 1);
            }
        }
        ASSERT_OK(cst_ctx_decode(c, b));
        /* not bit-identical for F32 weights: separately the last layer's FFN
         * and the output run for 1 row (ggml_vec_dot order), together for 2
         * rows (tinyBLAS order), exactly as in llama.cpp (gemma3-F32: 5e-9) */
        ASSERT(nmse(cst_ctx_logits(c, i1), l1, nv) < 1e-7);
        ASSERT(nmse(cst_ctx_logits(c, i2), l2, nv) < 1e-7);
        ASSERT(cst_ctx_logits(c, 0) == NULL);
        ASSERT(cst_ctx_logits(c, -1) == NULL);
        ASSERT(cst_ctx_logits(c, 1000) == NULL);
        ASSERT_EQ(cst_ctx_seq_len(c, 0), n1);
        ASSERT_EQ(cst_ctx_seq_len(c, 1), n2);
        /* one more step for both in one batch vs the separate continuation */
        cst_batch_clear(b);
        cst_batch_add(b, 300, n1, 0, true);
        cst_batch_add(b, 301, n2, 1, true);
        ASSERT_OK(cst_ctx_decode(c, b));
        ASSERT(cst_ctx_logits(c, i1) == NULL); /* entries of the previous batch are gone */
        memcpy(l1, cst_ctx_logits(c, 0), sizeof(float) * (size_t)nv);
        memcpy(l2, cst_ctx_logits(c, 1), sizeof(float) * (size_t)nv);
        cst_ctx_free(c);
        c = new_ctx(m, 64, 1, 64);
        feed(c, b, 0, P2, n2, 0, 64);
        const cst_token t2 = 301;
        /* the same for this 2-token step: Q8_0 batches under 8 tokens use the
         * per-output dot (bit-identical); F32 runs tiles for 2 tokens and the
         * dot for 1, whose sums are ordered differently on every ISA but the
         * scalar one (AVX2: 8 lanes, AVX-512: 16 lanes; gemma3-F32 3.4e-10) */
        const double lim = mi == 0 ? 0 : 1e-7;
        ASSERT(nmse(feed(c, b, 0, &t2, 1, n2, 1), l2, nv) <= lim);
        cst_ctx_free(c);
        cst_batch_free(b);
        free(l1);
        free(l2);
        cst_model_free(m);
    }
}

TEST(chunked_prefill_matches_one_batch) {
    const char *models[] = {"models/tiny-llama-Q4_K.gguf", "models/tiny-gemma3-F32.gguf"};
    cst_token prompt[130];
    for (int i = 0; i < 130; i++) prompt[i] = (cst_token)(3 + (i * 37) % 500);
    prompt[0] = 1;
    for (size_t mi = 0; mi < 2; mi++) {
        cst_model *m = load(models[mi]);
        const int nv = cst_model_n_vocab(m);
        float *ref = malloc(sizeof(float) * (size_t)nv);
        cst_ctx *c = new_ctx(m, 256, 1, 256);
        cst_batch *b = cst_batch_new(256);
        memcpy(ref, feed(c, b, 0, prompt, 130, 0, 256), sizeof(float) * (size_t)nv);
        cst_ctx_free(c);
        /* Batches of >= 2 tokens accumulate in one order whatever their size
         * (bit-identical); single tokens take llama.cpp's decode order, which
         * differs by rounding (F16 KV / activation-quantization flips). */
        const int chunks[] = {1, 7, 16, 64};
        for (size_t k = 0; k < 4; k++) {
            c = new_ctx(m, 256, 1, 64);
            double e = nmse(feed(c, b, 0, prompt, 130, 0, chunks[k]), ref, nv);
            const double tol = chunks[k] > 1 ? 1e-12 : mi == 0 ? 1e-3 : 1e-6;
            ASSERT_MSG(e < tol, "%s chunk %d: NMSE %g", models[mi], chunks[k], e);
            cst_ctx_free(c);
        }
        cst_batch_free(b);
        free(ref);
        cst_model_free(m);
    }
}

TEST(seq_truncate_and_copy) {
    cst_model *m = load("models/tiny-qwen2-F32.gguf");
    const int nv = cst_model_n_vocab(m);
    const int n1 = (int)(sizeof P1 / sizeof P1[0]);
    float *ref = malloc(sizeof(float) * (size_t)nv);
    cst_ctx *c = new_ctx(m, 64, 3, 64);
    cst_batch *b = cst_batch_new(64);
    memcpy(ref, feed(c, b, 0, P1, n1, 0, 64), sizeof(float) * (size_t)nv);
    ASSERT_EQ(cst_ctx_seq_len(c, 0), n1);
    int32_t nt = 0;
    const cst_token *toks = cst_ctx_seq_tokens(c, 0, &nt);
    ASSERT_EQ(nt, n1);
    for (int i = 0; i < n1; i++) ASSERT_EQ(toks[i], P1[i]);

    /* copy a prefix to seq 1 and finish the prompt there */
    ASSERT_OK(cst_ctx_seq_copy(c, 0, 1, 5));
    ASSERT_EQ(cst_ctx_seq_len(c, 1), 5);
    ASSERT(nmse(feed(c, b, 1, P1 + 5, n1 - 5, 5, 64), ref, nv) < 1e-10);
    /* truncate seq 0 and redo the tail */
    ASSERT_OK(cst_ctx_seq_truncate(c, 0, 3));
    ASSERT_EQ(cst_ctx_seq_len(c, 0), 3);
    ASSERT(nmse(feed(c, b, 0, P1 + 3, n1 - 3, 3, 3), ref, nv) < 1e-10); /* 3+3+3: no 1-token batch */
    /* truncating beyond the length is a no-op; copying more than stored fails */
    ASSERT_OK(cst_ctx_seq_truncate(c, 0, 1000));
    ASSERT_EQ(cst_ctx_seq_len(c, 0), n1);
    ASSERT_EQ(cst_ctx_seq_copy(c, 2, 0, 1), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_ctx_seq_truncate(c, 5, 0), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_ctx_seq_len(c, 2), 0);
    ASSERT_EQ(cst_ctx_seq_len(c, 7), -1);
    /* a truncated sequence decodes differently after rewriting */
    ASSERT_OK(cst_ctx_seq_truncate(c, 0, 0));
    ASSERT(nmse(feed(c, b, 0, P1, n1, 0, 64), ref, nv) < 1e-10);
    cst_batch_free(b);
    cst_ctx_free(c);
    free(ref);
    cst_model_free(m);
}

TEST(context_full_and_bad_batches) {
    cst_model *m = load("models/tiny-llama-F32.gguf");
    cst_ctx *c = new_ctx(m, 8, 2, 16);
    cst_batch *b = cst_batch_new(16);
    cst_token t[9] = {1, 5, 6, 7, 8, 9, 10, 11, 12};
    feed(c, b, 0, t, 8, 0, 16);
    ASSERT_EQ(cst_ctx_seq_len(c, 0), 8);
    cst_batch_clear(b);
    cst_batch_add(b, 13, 8, 0, true);
    ASSERT_EQ(cst_ctx_decode(c, b), CST_ERR_CTX_FULL);
    ASSERT_EQ(cst_ctx_seq_len(c, 0), 8);
    /* a batch that would overflow in its middle changes nothing */
    cst_batch_clear(b);
    for (int i = 0; i < 9; i++) cst_batch_add(b, t[i], i, 1, i == 8);
    ASSERT_EQ(cst_ctx_decode(c, b), CST_ERR_CTX_FULL);
    ASSERT_EQ(cst_ctx_seq_len(c, 1), 0);
    /* wrong position, bad sequence, bad token, empty batch, too many logits */
    cst_batch_clear(b);
    cst_batch_add(b, 5, 3, 1, true);
    ASSERT_EQ(cst_ctx_decode(c, b), CST_ERR_INVALID_ARG);
    cst_batch_clear(b);
    cst_batch_add(b, 5, 0, 2, true);
    ASSERT_EQ(cst_ctx_decode(c, b), CST_ERR_INVALID_ARG);
    cst_batch_clear(b);
    cst_batch_add(b, 100000, 0, 1, true);
    ASSERT_EQ(cst_ctx_decode(c, b), CST_ERR_INVALID_ARG);
    cst_batch_clear(b);
    ASSERT_EQ(cst_ctx_decode(c, b), CST_ERR_INVALID_ARG);
    for (int i = 0; i < 3; i++) cst_batch_add(b, 5, i, 1, true);
    ASSERT_EQ(cst_ctx_decode(c, b), CST_ERR_INVALID_ARG);
    ASSERT_EQ(cst_ctx_seq_len(c, 1), 0);
    cst_batch_free(b);
    cst_ctx_free(c);
    cst_model_free(m);
}

TEST(load_errors) {
    char err[256] = "";
    cst_model *m = NULL;
    ASSERT_EQ(cst_model_load("/nonexistent/x.gguf", NULL, &m, err, sizeof err), CST_ERR_NOT_FOUND);
    ASSERT(m == NULL);
    /* a valid GGUF of an unknown architecture */
    char path[512];
    snprintf(path, sizeof path, "%s/foo.gguf", cst_test_tmpdir());
    cst_gguf_writer *w = cst_gguf_writer_new();
    cst_gguf_set_str(w, "general.architecture", "foo");
    float z[4] = {0};
    int64_t ne[1] = {4};
    ASSERT_OK(cst_gguf_add_tensor(w, "x", CST_TYPE_F32, 1, ne, z, sizeof z));
    ASSERT_OK(cst_gguf_write(w, path, err, sizeof err));
    cst_gguf_writer_free(w);
    ASSERT_EQ(cst_model_load(path, NULL, &m, err, sizeof err), CST_ERR_UNSUPPORTED);
    ASSERT(strstr(err, "foo") != NULL);
    /* vocab-only models have metadata but no context */
    cst_model_params mp = cst_model_default_params();
    mp.vocab_only = true;
    ASSERT_OK(cst_model_load(cst_test_shared("models/vocab-qwen3.gguf"), &mp, &m, err, sizeof err));
    ASSERT_STREQ(cst_model_arch(m), "qwen3");
    ASSERT(cst_model_chat_template(m) != NULL);
    cst_ctx *c = NULL;
    ASSERT_EQ(cst_ctx_new(m, NULL, &c, err, sizeof err), CST_ERR_INVALID_ARG);
    cst_model_free(m);
}

/* Copy tiny-llama-F32 into path, replacing tensor `swap` by a zero tensor of
 * type `ty` (same shape), or dropping it when ty < 0. */
static void rewrite_model(const char *path, const char *swap, int ty) {
    char err[256] = "";
    cst_gguf *g = NULL;
    ASSERT_OK(cst_gguf_open(cst_test_shared("models/tiny-llama-F32.gguf"), &g, err, sizeof err));
    cst_gguf_writer *w = cst_gguf_writer_new();
    for (int64_t i = 0; i < cst_gguf_n_kv(g); i++) cst_gguf_copy_kv(w, g, i);
    for (int64_t i = 0; i < cst_gguf_n_tensors(g); i++) {
        const cst_gguf_tensor *t = cst_gguf_tensor_at(g, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (!strcmp(name, swap)) {
            if (ty < 0) continue;
            size_t nb = cst_row_size((cst_type)ty, t->ne[0]) * (size_t)t->ne[1];
            void *z = calloc(1, nb);
            ASSERT_OK(cst_gguf_add_tensor(w, name, (cst_type)ty, t->n_dims, t->ne, z, nb));
            free(z);
        } else {
            ASSERT_OK(cst_gguf_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes));
        }
    }
    ASSERT_OK(cst_gguf_write(w, path, err, sizeof err));
    cst_gguf_writer_free(w);
    cst_gguf_close(g);
}

TEST(bad_tensors_are_reported) {
    char path[512], err[256] = "";
    cst_model *m = NULL;
    snprintf(path, sizeof path, "%s/q41.gguf", cst_test_tmpdir());
    rewrite_model(path, "blk.0.ffn_up.weight", CST_TYPE_Q4_1);
    ASSERT_EQ(cst_model_load(path, NULL, &m, err, sizeof err), CST_ERR_UNSUPPORTED);
    ASSERT_MSG(strstr(err, "blk.0.ffn_up.weight") && strstr(err, "Q4_1"), "message: %s", err);
    snprintf(path, sizeof path, "%s/missing.gguf", cst_test_tmpdir());
    rewrite_model(path, "blk.1.ffn_down.weight", -1);
    ASSERT_EQ(cst_model_load(path, NULL, &m, err, sizeof err), CST_ERR_BAD_FORMAT);
    ASSERT_MSG(strstr(err, "blk.1.ffn_down.weight") != NULL, "message: %s", err);
    /* an unchanged copy loads and runs */
    snprintf(path, sizeof path, "%s/same.gguf", cst_test_tmpdir());
    rewrite_model(path, "none", 0);
    ASSERT_OK(cst_model_load(path, NULL, &m, err, sizeof err));
    cst_model_free(m);
}

/* ---- cst_generate ----------------------------------------------------------- */
typedef struct collect {
    char buf[8192];
    size_t len;
    int calls, cancel_after;
} collect;

static bool collect_cb(void *ud, cst_token tok, const char *text, size_t len) {
    (void)tok;
    collect *c = ud;
    ASSERT(c->len + len < sizeof c->buf);
    memcpy(c->buf + c->len, text, len);
    c->len += len;
    c->buf[c->len] = 0;
    c->calls++;
    return c->cancel_after > 0 && c->calls >= c->cancel_after;
}

TEST(generate_greedy_stop_reuse_cancel) {
    cst_model *m = load("models/stories260K.gguf");
    const cst_vocab *v = cst_model_vocab(m);
    FILE *f = fopen(cst_test_shared("golden/stories260K-greedy.jsonl"), "r");
    ASSERT(f != NULL);
    char *line = NULL;
    size_t cap = 0;
    ASSERT(getline(&line, &cap, f) > 0); /* prompt 0: no near-ties */
    fclose(f);
    json_t *o = json_loads(line, 0, NULL);
    free(line);
    const char *ptext = json_string_value(json_object_get(o, "prompt"));
    const char *gold = json_string_value(json_object_get(o, "text"));
    cst_token *ids = NULL;
    size_t n = 0;
    ASSERT_OK(cst_tokenize(v, ptext, strlen(ptext), true, true, &ids, &n));
    cst_ctx *c = new_ctx(m, 512, 1, 512);

    cst_gen_params gp = cst_gen_default_params();
    gp.sampling.temperature = 0;
    gp.max_tokens = 200;
    collect *col = calloc(1, sizeof *col);
    cst_gen_result r;
    ASSERT_OK(cst_generate(c, ids, n, &gp, collect_cb, col, &r));
    ASSERT_EQ(r.finish, CST_FINISH_LENGTH);
    ASSERT_EQ(r.n_gen, 200);
    ASSERT_EQ(r.n_prompt, n);
    ASSERT_STREQ(col->buf, gold);

    /* same prompt again: all but the last prompt token come from the cache */
    const char *stops[] = {"Lily"};
    gp.stops = stops;
    gp.n_stops = 1;
    memset(col, 0, sizeof *col);
    ASSERT_OK(cst_generate(c, ids, n, &gp, collect_cb, col, &r));
    ASSERT_EQ(r.n_prompt_reused, n - 1);
    ASSERT_EQ(r.finish, CST_FINISH_STOP);
    ASSERT_STREQ(col->buf, ", there was a little girl named ");

    /* cancel from the callback */
    gp.n_stops = 0;
    memset(col, 0, sizeof *col);
    col->cancel_after = 3;
    ASSERT_OK(cst_generate(c, ids, n, &gp, collect_cb, col, &r));
    ASSERT_EQ(r.finish, CST_FINISH_CANCELLED);
    ASSERT_EQ(r.n_gen, 3);

    /* a context too small for prompt + generation ends with "length" */
    cst_ctx_free(c);
    c = new_ctx(m, (int)n + 4, 1, 512);
    gp.reuse_prefix = false;
    memset(col, 0, sizeof *col);
    ASSERT_OK(cst_generate(c, ids, n, &gp, collect_cb, col, &r));
    ASSERT_EQ(r.finish, CST_FINISH_LENGTH);
    ASSERT_EQ(r.n_gen, 5);
    free(col);
    free(ids);
    json_decref(o);
    cst_ctx_free(c);
    cst_model_free(m);
}

/* ---- repacked weights stay within the resident-size budget ---------------
 * The loader copies Q8_0, Q4_0 and Q4_K matrices (by default under AVX2 /
 * AVX-512) into the packed layout and drops the file's pages
 * of each packed tensor; the peak resident size of loading such a model and
 * decoding with it must stay within the model file + KV cache + 64 MiB
 * (without the dropping it is about twice the file). The model (6 layers,
 * n_embd 1024, n_ff 4096, Q8_0 ~107 MiB or Q4_0 / Q4_K ~57 MiB, random weights,
 * tiny-llama's vocabulary) is written here. */
typedef struct {
    cst_type type;
    int64_t n_in;
    uint64_t st;
} fill_ctx;

static bool fill_random(void *vctx, int64_t row0, int64_t n_rows, void *dst) {
    fill_ctx *f = vctx;
    (void)row0;
    if (f->type == CST_TYPE_F32) {
        for (int64_t i = 0; i < n_rows * f->n_in; i++) ((float *)dst)[i] = 1.0f;
        return true;
    }
    if (f->type == CST_TYPE_Q4_K) {
        block_q4_K *b = dst;
        for (int64_t i = 0; i < n_rows * f->n_in / QK_K; i++) {
            b[i].d = cst_f32_to_f16(0.002f);
            b[i].dmin = cst_f32_to_f16(0.001f);
            uint8_t *q = b[i].scales; /* scales[12] and qs[128] are contiguous */
            for (size_t j = 0; j < sizeof b[i].scales + sizeof b[i].qs; j++) {
                f->st = f->st * 6364136223846793005ull + 1442695040888963407ull;
                q[j] = (uint8_t)(f->st >> 56);
            }
        }
        return true;
    }
    if (f->type == CST_TYPE_Q4_0) {
        block_q4_0 *b = dst;
        for (int64_t i = 0; i < n_rows * f->n_in / QK4_0; i++) {
            b[i].d = cst_f32_to_f16(0.002f);
            for (int j = 0; j < QK4_0 / 2; j++) {
                f->st = f->st * 6364136223846793005ull + 1442695040888963407ull;
                b[i].qs[j] = (uint8_t)(f->st >> 56);
            }
        }
        return true;
    }
    block_q8_0 *b = dst;
    for (int64_t i = 0; i < n_rows * f->n_in / QK8_0; i++) {
        b[i].d = cst_f32_to_f16(0.002f);
        for (int j = 0; j < QK8_0; j++) {
            f->st = f->st * 6364136223846793005ull + 1442695040888963407ull;
            b[i].qs[j] = (int8_t)((int)(f->st >> 56) % 127);
        }
    }
    return true;
}

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    ASSERT(f != NULL);
    char line[256];
    long v = -1;
    const size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') v = atol(line + kl + 1);
    fclose(f);
    ASSERT_MSG(v >= 0, "no %s in /proc/self/status", key);
    return v;
}

/* loads with CST_REPACK unset (the default) */
static void check_repack_rss(cst_type wt) {
    enum { E = 1024, NL = 6, FF = 4096, NCTX = 64 };
    char err[256];
    cst_gguf *vg = NULL;
    ASSERT(cst_gguf_open(cst_test_shared("models/tiny-llama-Q8_0.gguf"), &vg, err, sizeof err) == CST_OK);
    const int64_t n_vocab = cst_gguf_find_tensor(vg, "token_embd.weight")->ne[1];
    cst_gguf_writer *w = cst_gguf_writer_new();
    ASSERT(w != NULL);
    for (int64_t i = 0; i < cst_gguf_n_kv(vg); i++) cst_gguf_copy_kv(w, vg, i);
    cst_gguf_set_u32(w, "llama.embedding_length", E);
    cst_gguf_set_u32(w, "llama.block_count", NL);
    cst_gguf_set_u32(w, "llama.feed_forward_length", FF);
    cst_gguf_set_u32(w, "llama.attention.head_count", 8);
    cst_gguf_set_u32(w, "llama.attention.head_count_kv", 8);
    cst_gguf_set_u32(w, "llama.attention.key_length", E / 8);
    cst_gguf_set_u32(w, "llama.attention.value_length", E / 8);
    cst_gguf_set_u32(w, "llama.rope.dimension_count", E / 8);
    fill_ctx fills[2 + NL * 9];
    int nf = 0;
    char name[96];
#define ADD(NAME, TYPE, NIN, NOUT)                                                                   \
    do {                                                                                          \
        fills[nf] = (fill_ctx){(TYPE), (NIN), 0x9e3779b97f4a7c15ull * (uint64_t)(nf + 1)};          \
        const int64_t ne_[2] = {(NIN), (NOUT)};                                                   \
        ASSERT(cst_gguf_add_tensor_fill(w, (NAME), (TYPE), (NOUT) > 1 ? 2 : 1, ne_, fill_random,    \
                                        &fills[nf]) == CST_OK);                                   \
        nf++;                                                                                     \
    } while (0)
    ADD("token_embd.weight", wt, E, n_vocab);
    ADD("output_norm.weight", CST_TYPE_F32, E, 1);
    for (int il = 0; il < NL; il++) {
#define N(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, il), name)
        ADD(N("attn_norm.weight"), CST_TYPE_F32, E, 1);
        ADD(N("ffn_norm.weight"), CST_TYPE_F32, E, 1);
        ADD(N("attn_q.weight"), wt, E, E);
        ADD(N("attn_k.weight"), wt, E, E);
        ADD(N("attn_v.weight"), wt, E, E);
        ADD(N("attn_output.weight"), wt, E, E);
        ADD(N("ffn_gate.weight"), wt, E, FF);
        ADD(N("ffn_up.weight"), wt, E, FF);
        ADD(N("ffn_down.weight"), wt, FF, E);
#undef N
    }
#undef ADD
    char path[512];
    snprintf(path, sizeof path, "%s/repack-rss.gguf", cst_test_tmpdir());
    ASSERT_MSG(cst_gguf_write(w, path, err, sizeof err) == CST_OK, "%s", err);
    cst_gguf_writer_free(w);
    cst_gguf_close(vg);

    /* VmHWM counts from here (5: reset the peak to the current size) */
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    ASSERT(cr != NULL && fputs("5", cr) >= 0);
    ASSERT(fclose(cr) == 0);
    const long rss0 = status_kb("VmRSS");
    ASSERT(unsetenv("CST_REPACK") == 0);
    const bool packs = cst_pack_wanted(wt, E, E);
    cst_model *m = NULL;
    const cst_status st = cst_model_load(path, NULL, &m, err, sizeof err);
    ASSERT_MSG(st == CST_OK, "load %s: %s", path, err);
    /* packed only where the ISA has the packed kernel (x86 SIMD) */
    const cst_isa isa = cst_kernels_isa();
    ASSERT(packs == (isa == CST_ISA_AVX2 || isa == CST_ISA_AVX512));
    ASSERT(!!m->layers[0].wq.packed == packs && !!m->layers[NL - 1].down.packed == packs && !!m->output.packed == packs);
    cst_ctx *c = new_ctx(m, NCTX, 1, NCTX);
    cst_batch *b = cst_batch_new(NCTX);
    const cst_token toks[2] = {1, 2};
    const float *lg = feed(c, b, 0, toks, 2, 0, 2);
    for (int i = 0; i < cst_model_n_vocab(m); i++) ASSERT(isfinite(lg[i]));
    const long peak = status_kb("VmHWM") - rss0;
    const long file_kb = (long)(cst_model_file_size(m) / 1024);
    const long kv_kb = (long)(cst_model_kv_bytes_per_token(m, CST_TYPE_F16) * NCTX / 1024);
    printf("    %s%s: peak RSS over the start %ld KiB: file %ld + KV %ld + 64 MiB = %ld KiB allowed\n",
           cst_type_name(wt), packs ? " packed" : "", peak, file_kb, kv_kb, file_kb + kv_kb + 65536);
    ASSERT_MSG(peak <= file_kb + kv_kb + 65536, "peak RSS %ld KiB over file %ld + KV %ld + 64 MiB", peak, file_kb,
               kv_kb);
    cst_batch_free(b);
    cst_ctx_free(c);
    cst_model_free(m);
    remove(path);
}

TEST(repacked_weights_rss_bound) {
    check_repack_rss(CST_TYPE_Q8_0);
    check_repack_rss(CST_TYPE_Q4_0);
    check_repack_rss(CST_TYPE_Q4_K); /* its packed copy is larger than the file's bytes */
}

TEST(model_metadata) {
    cst_model *m = load("models/tiny-gemma3-Q8_0.gguf");
    ASSERT_STREQ(cst_model_arch(m), "gemma3");
    ASSERT_EQ(cst_model_n_vocab(m), 512);
    ASSERT_EQ(cst_model_n_embd(m), 256);
    ASSERT_EQ(cst_model_n_layer(m), 2);
    ASSERT_EQ(cst_model_n_ctx_train(m), 2048);
    ASSERT(cst_model_desc(m)[0] != 0);
    ASSERT(cst_model_vocab(m) != NULL);
    ASSERT_EQ(cst_model_kv_bytes_per_token(m, CST_TYPE_F16), 2 * 2 * (64 + 64) * 2);
    cst_model_free(m);
}

/* n K and n V values, uniform in [-1, 1), rounded to f16 */
static void fill_kv(cst_f16 *k, cst_f16 *v, int n, uint64_t st) {
    for (int i = 0; i < n; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        k[i] = cst_f32_to_f16((float)((int64_t)(st >> 40) - (1 << 23)) / (1 << 23));
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = cst_f32_to_f16((float)((int64_t)(st >> 40) - (1 << 23)) / (1 << 23));
    }
}

/* One attention head (ops_exact.c) gives the scalar twin's bits on every ISA
 * this CPU runs: decode (ggml_vec_dot_f16 order) and batch (tinyBLAS order),
 * head sizes with and without 64-multiples, windows starting and ending
 * inside a 16-position group, one position, long ranges. */
TEST(attn_head_isa_bit_identical) {
    enum { NCTX = 300, HD_MAX = 128 };
    static cst_f16 k[NCTX * HD_MAX], v[HD_MAX * NCTX], p16[NCTX], q16[HD_MAX];
    static float q[HD_MAX], scores[NCTX], out_ref[HD_MAX], out_isa[HD_MAX];
    fill_kv(k, v, NCTX * HD_MAX, 12345);
    for (int i = 0; i < HD_MAX; i++) q[i] = (float)sin(0.37 * i + 1.0) * 2.0f;
    const cst_isa saved = cst_kernels_isa();
    const int hds[] = {8, 32, 64, 80, 128};
    const float scales[] = {0.125f, 40.0f}; /* 40: probabilities down to subnormal and zero */
    const int32_t ranges[][2] = {{0, 0}, {0, 15}, {3, 3}, {5, 70}, {16, 47}, {0, 299}, {17, 298}, {250, 299}};
    int n_cmp = 0;
    for (int isa = CST_ISA_AVX2; isa <= CST_ISA_I8MM; isa++) {
        if (!cst_kernels_set_isa((cst_isa)isa)) continue;
        for (size_t h = 0; h < sizeof hds / sizeof *hds; h++)
            for (size_t r = 0; r < sizeof ranges / sizeof *ranges; r++)
                for (int batch = 0; batch < 4; batch++) {
                    cst_attn_head a = {.q = q, .k = k, .v = v, .k_stride = HD_MAX, .v_stride = NCTX,
                                       .hd = hds[h], .hdv = hds[h], .p0 = ranges[r][0], .p1 = ranges[r][1],
                                       .scale = scales[batch >> 1], .batch = batch & 1, .scores = scores,
                                       .p16 = p16, .q16 = q16};
                    ASSERT(cst_kernels_set_isa(CST_ISA_REF));
                    a.out = out_ref;
                    cst_attn_head_run(&a);
                    ASSERT(cst_kernels_set_isa((cst_isa)isa));
                    a.out = out_isa;
                    cst_attn_head_run(&a);
                    for (int d = 0; d < hds[h]; d++)
                        if (memcmp(&out_ref[d], &out_isa[d], sizeof(float))) {
                            fprintf(stderr, "    isa %d hd %d range %d..%d batch %d dim %d: %.9g vs ref %.9g\n", isa,
                                    hds[h], ranges[r][0], ranges[r][1], batch, d, out_isa[d], out_ref[d]);
                            ASSERT(false);
                        }
                    n_cmp++;
                }
    }
    cst_kernels_set_isa(saved);
    printf("    %d head/range/order cases compared\n", n_cmp);
}

/* A tile of 1-4 queries sharing K and V (cst_attn_heads_run) gives each
 * query the scalar twin's single-head bits on every ISA: consecutive causal
 * queries inside and across 16-position groups, sliding windows, the same
 * range (non-causal), ranges far apart, head sizes the tile path takes and
 * ones it leaves to the single head, both orders. */
TEST(attn_tile_matches_single_heads) {
    enum { NCTX = 300, HD_MAX = 128, NQ = CST_ATTN_TILE };
    static cst_f16 k[NCTX * HD_MAX], v[HD_MAX * NCTX], p16[NQ][NCTX], q16[NQ][HD_MAX];
    static float q[NQ][HD_MAX], scores[NQ][NCTX], out_ref[NQ][HD_MAX], out_isa[NQ][HD_MAX];
    fill_kv(k, v, NCTX * HD_MAX, 777);
    for (int j = 0; j < NQ; j++)
        for (int i = 0; i < HD_MAX; i++) q[j][i] = (float)sin(0.37 * i + 1.0 + 0.9 * j) * 2.0f;
    /* per tile: n, then (p0, p1) per query */
    static const int32_t tiles[][1 + 2 * NQ] = {
        {4, 0, 0, 0, 1, 0, 2, 0, 3},           {4, 0, 12, 0, 13, 0, 14, 0, 15},
        {4, 0, 14, 0, 15, 0, 16, 0, 17},       {3, 0, 31, 0, 32, 0, 33},
        {4, 0, 296, 0, 297, 0, 298, 0, 299},   {2, 0, 100, 0, 101},
        {4, 5, 36, 6, 37, 7, 38, 8, 39},       {4, 0, 299, 0, 299, 0, 299, 0, 299},
        {3, 0, 10, 40, 200, 17, 18},           {4, 250, 299, 3, 3, 0, 0, 16, 47},
        {1, 0, 77},                            {2, 33, 33, 33, 34},
    };
    const int hds[] = {8, 64, 80, 128};
    const cst_isa saved = cst_kernels_isa();
    int n_cmp = 0;
    for (int isa = CST_ISA_AVX2; isa <= CST_ISA_I8MM; isa++) {
        if (!cst_kernels_set_isa((cst_isa)isa)) continue;
        for (size_t h = 0; h < CST_ARRAY_LEN(hds); h++)
            for (size_t t = 0; t < CST_ARRAY_LEN(tiles); t++)
                for (int batch = 0; batch < 4; batch++) {
                    const int n = tiles[t][0];
                    cst_attn_head a[NQ];
                    for (int i = 0; i < n; i++)
                        a[i] = (cst_attn_head){.q = q[i], .k = k, .v = v, .k_stride = HD_MAX, .v_stride = NCTX,
                                               .hd = hds[h], .hdv = hds[h], .p0 = tiles[t][1 + 2 * i],
                                               .p1 = tiles[t][2 + 2 * i], .scale = batch >> 1 ? 40.0f : 0.125f,
                                               .batch = batch & 1, .scores = scores[i], .p16 = p16[i], .q16 = q16[i]};
                    ASSERT(cst_kernels_set_isa(CST_ISA_REF));
                    for (int i = 0; i < n; i++) {
                        a[i].out = out_ref[i];
                        cst_attn_head_run(&a[i]);
                        a[i].out = out_isa[i];
                    }
                    ASSERT(cst_kernels_set_isa((cst_isa)isa));
                    for (int i = 0; i < n; i++)
                        for (int d = 0; d < HD_MAX; d++) out_isa[i][d] = -999.0f;
                    cst_attn_heads_run(a, n);
                    for (int i = 0; i < n; i++)
                        for (int d = 0; d < hds[h]; d++)
                            ASSERT_MSG(!memcmp(&out_ref[i][d], &out_isa[i][d], sizeof(float)),
                                       "isa %d hd %d tile %d query %d (%d..%d) batch %d dim %d: %.9g vs ref %.9g", isa,
                                       hds[h], (int)t, i, a[i].p0, a[i].p1, batch, d, out_isa[i][d], out_ref[i][d]);
                    n_cmp++;
                }
    }
    cst_kernels_set_isa(saved);
    printf("    %d tile/head-size/order cases compared\n", n_cmp);
}

/* SwiGLU (ggml's vectorised expf) gives the scalar twin's bits on every ISA:
 * ordinary values, results that underflow to subnormals and zero, exps that
 * overflow, infinities, and lengths with a scalar tail. */
TEST(swiglu_isa_bit_identical) {
    enum { N = 1000 };
    static float g[N], u[N], y_ref[N], y_isa[N];
    for (int i = 0; i < N; i++) {
        g[i] = (float)sin(0.731 * i) * (i < 500 ? 8.0f : 160.0f);
        u[i] = (float)cos(0.377 * i) * 3.0f;
    }
    g[10] = INFINITY, g[11] = -INFINITY, g[12] = 0.0f, g[13] = -0.0f, g[14] = 87.5f, g[15] = -88.9f;
    g[16] = 103.0f, g[17] = -103.0f, g[18] = 133.2f, g[19] = -133.2f, g[20] = 1e-30f, g[21] = -1e-42f;
    const cst_isa saved = cst_kernels_isa();
    const int lens[] = {N, 999, 17, 15, 8, 1};
    int n_cmp = 0;
    for (int isa = CST_ISA_AVX2; isa <= CST_ISA_AVX512; isa++) {
        if (!cst_kernels_set_isa((cst_isa)isa)) continue;
        for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
            ASSERT(cst_kernels_set_isa(CST_ISA_REF));
            cst_swiglu(y_ref, g, u, lens[l]);
            ASSERT(cst_kernels_set_isa((cst_isa)isa));
            cst_swiglu(y_isa, g, u, lens[l]);
            for (int i = 0; i < lens[l]; i++)
                if (memcmp(&y_ref[i], &y_isa[i], sizeof(float))) {
                    fprintf(stderr, "    isa %d n %d i %d g %.9g: %.9g vs ref %.9g\n", isa, lens[l], i, g[i], y_isa[i],
                            y_ref[i]);
                    ASSERT(false);
                }
            n_cmp++;
        }
    }
    cst_kernels_set_isa(saved);
    printf("    %d lengths compared\n", n_cmp);
}
