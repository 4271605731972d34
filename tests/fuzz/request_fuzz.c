/* request_fuzz.c: libFuzzer target for the server's request handling that
 * runs without a server: the input is a create-interaction body. It is
 * depth-checked and parsed as routes.c does (jansson), validated and
 * normalised by cst_api_parse_create, and a valid request's conversation is
 * rendered into prompt tokens by cst_chat_prompt_tools (tools too) with the qwen3 vocabulary and
 * chat template (thinking markers, thought signatures, injection-safe
 * tokenization) or the plain fallback format; image blocks (and document
 * blocks, whose inline data must carry a readable mime_type) go through the URI
 * and base64 helpers the media path uses. Thought signatures also get a
 * make/open round trip on the raw input. Invalid requests must fail with a
 * message; nothing may crash.
 */
#include "api/api_int.h"
#include "api/files.h"
#include "docs/docs.h"
#include "engine/gguf/gguf.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/vision/vision.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CST_SHARED_DIR
#define CST_SHARED_DIR "../shared"
#endif
#define MAX_DEPTH 64 /* routes.c rejects deeper bodies before parsing */

static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static cst_vocab *vocab;
static chat_model cm_tpl, cm_plain;
static bool verbose; /* REQUEST_FUZZ_VERBOSE=1: say what happened to each input */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("CST_SHARED");
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/models/vocab-qwen3.gguf", dir && *dir ? dir : CST_SHARED_DIR);
    cst_gguf *g = NULL;
    if (cst_gguf_open(path, &g, err, sizeof err) || cst_vocab_load(g, &vocab, err, sizeof err)) {
        fprintf(stderr, "request_fuzz: %s\n", err);
        abort(); /* a missing fixture is a setup error, not a finding */
    }
    cst_strv t = cst_gguf_get_str(g, "tokenizer.chat_template");
    char *tpl = strndup(t.ptr ? t.ptr : "", t.len);
    cst_gguf_close(g);
    if (!tpl || !*tpl || cst_chat_model_init(&cm_tpl, vocab, tpl, NULL, NULL, NULL, err, sizeof err) ||
        cst_chat_model_init(&cm_plain, vocab, NULL, NULL, NULL, NULL, err, sizeof err)) {
        fprintf(stderr, "request_fuzz: chat setup: %s\n", tpl ? err : "no chat template");
        abort();
    }
    free(tpl);
    verbose = getenv("REQUEST_FUZZ_VERBOSE") != NULL;
    return 0;
}

/* Nesting depth of JSON text (brackets outside strings), stopping past limit. */
static int json_nesting(const uint8_t *t, size_t n, int limit) {
    int d = 0, max = 0;
    bool str = false;
    for (size_t i = 0; i < n && max <= limit; i++) {
        uint8_t c = t[i];
        if (str) {
            if (c == '\\') i++;
            else if (c == '"') str = false;
        } else if (c == '"') str = true;
        else if (c == '[' || c == '{') {
            if (++d > max) max = d;
        } else if ((c == ']' || c == '}') && d > 0) d--;
    }
    return max;
}

static volatile size_t sink;

/* What the media path does with an image block's strings. */
static void image_block(json_t *b) {
    json_t *uri = json_object_get(b, "uri"), *data = json_object_get(b, "data");
    if (json_is_string(uri)) {
        static const char *const hosts[] = {"localhost:8080", "127.0.0.1", NULL};
        char id[48];
        int r = cst_files_uri_id(json_string_value(uri), "/api", hosts, id);
        if (r == 1 && !cst_files_valid_id(id)) __builtin_trap();
    }
    if (json_is_string(data)) {
        size_t n = 0;
        bool oom = false;
        uint8_t *d = cst_b64_decode(json_string_value(data), json_string_length(data), &n, &oom);
        if (d) {
            sink += n + (cst_image_sniff_mime(d, n) != NULL);
            char *re = malloc(4 * ((n + 2) / 3) + 1);
            if (re) {
                cst_b64_encode(d, n, re);
                size_t n2 = 0;
                uint8_t *d2 = cst_b64_decode(re, strlen(re), &n2, &oom);
                if (d2 && (n2 != n || memcmp(d, d2, n))) __builtin_trap(); /* base64 round trip */
                free(d2);
                free(re);
            }
            free(d);
        }
    }
}

static void check_steps(json_t *steps, bool turn) {
    if (!json_is_array(steps)) __builtin_trap();
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s) {
        json_t *t = json_object_get(s, "type");
        if (!json_is_string(t)) __builtin_trap();
        if (turn && strcmp(json_string_value(t), "user_input") && strcmp(json_string_value(t), "function_result"))
            __builtin_trap();
        json_t *sig = json_object_get(s, "signature");
        if (json_is_string(sig)) {
            char *text = NULL;
            size_t len = 0;
            if (cst_sig_open(key, json_string_value(sig), &text, &len) && (!text || strlen(text) > len)) __builtin_trap();
            free(text);
        }
        size_t j;
        json_t *b;
        json_array_foreach(json_object_get(s, "content"), j, b) {
            json_t *bt = json_object_get(b, "type");
            if (!json_is_string(bt)) __builtin_trap();
            if (!strcmp(json_string_value(bt), "image")) image_block(b);
            else if (!strcmp(json_string_value(bt), "document")) { /* data needs a readable mime_type */
                json_t *m = json_object_get(b, "mime_type");
                if (json_object_get(b, "data") && !json_is_string(m)) __builtin_trap();
                if (m && !cst_doc_readable(json_string_value(m))) __builtin_trap();
                image_block(b); /* the same uri / data handling */
            } else if (!json_is_string(json_object_get(b, "text"))) __builtin_trap();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* signatures: whatever is made must open to the same bytes */
    char *sig = cst_sig_make(key, (const char *)data, size);
    if (sig) {
        char *text = NULL;
        size_t len = 0;
        if (!cst_sig_open(key, sig, &text, &len) || len != size || (size && memcmp(text, data, size))) __builtin_trap();
        free(text);
        free(sig);
    }

    if (json_nesting(data, size, MAX_DEPTH) > MAX_DEPTH) return 0;
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, 0, &je);
    if (!body) {
        if (verbose) fprintf(stderr, "request_fuzz: malformed JSON: %s\n", je.text);
        return 0;
    }
    create_req cr;
    char err[1024] = "";
    if (!cst_api_parse_create(body, &cr, err, sizeof err)) {
        if (verbose) fprintf(stderr, "request_fuzz: invalid: %s\n", err);
        if (!err[0] || cr.context || cr.turn) __builtin_trap();
        json_decref(body);
        return 0;
    }
    if (!cr.model || !*cr.model || !cr.input || json_array_size(cr.turn) == 0 || cr.n_stops > MAX_STOPS)
        __builtin_trap();
    check_steps(cr.context, false);
    check_steps(cr.turn, true);
    json_t *history = json_deep_copy(cr.context);
    json_t *lists[2] = {history, cr.turn};
    sink += cst_media_count(lists, 2);
    chat_prompt cp;
    err[0] = 0;
    const chat_model *cm = (size & 1) ? &cm_plain : &cm_tpl;
    cst_status st = cst_chat_prompt_tools(cm, key, cr.system_instruction, lists, 2, cr.generation_config, cr.tools.tools,
                                          &cp, err, sizeof err);
    if (verbose)
        fprintf(stderr, "request_fuzz: %s prompt: %s%s (%zu tokens, %zu plain ranges)\n",
                cm == &cm_tpl ? "template" : "fallback", st ? "failed: " : "ok", st ? err : "", cp.n_toks, cp.n_plain);
    if (st == CST_OK) {
        const int32_t nt = cst_vocab_n_tokens(vocab);
        for (size_t i = 0; i < cp.n_toks; i++)
            if (cp.toks[i] < 0 || cp.toks[i] >= nt) __builtin_trap();
        for (size_t i = 0; i < 2 * cp.n_plain; i++)
            if (cp.plain[i] > cp.text_len || (i && cp.plain[i] < cp.plain[i - 1])) __builtin_trap();
    } else if (!err[0]) {
        __builtin_trap();
    }
    cst_chat_prompt_clear(&cp);
    json_decref(history);
    create_req_clear(&cr);
    json_decref(body);
    return 0;
}
