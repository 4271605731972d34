/* schema_fuzz.c: libFuzzer target for the JSON Schema and regex compilers
 * (src/api/schema.c) and the grammar automaton behind them. Input: a mode
 * byte, then text. Mode even: a JSON Schema (jansson) compiled to a grammar;
 * odd: a pattern compiled through the regex path. Compiling must either
 * succeed or fail with a message. A compiled grammar is then (1) checked on
 * the rest of the input after a NUL (cst_grammar_accepts), and (2) driven by
 * a budget-aware generation over a vocabulary of the 256 single bytes plus a
 * few multi-byte tokens, picking allowed tokens pseudo-randomly: it must end
 * in an accepted sentence within min_bytes tokens (budget-aware closing);
 * otherwise the target aborts. Nothing may crash.
 */
#include "api/schema.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cst_grammar_vocab *vocab;
static char *pieces[256 + 9];
static uint32_t lens[256 + 9];
static int32_t n_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *multi[] = {"{\"", "\":", "\",\"", "true", "null", "[{", "}]", "\xc3\xa9"};
    for (int i = 0; i < 256; i++) {
        pieces[i] = malloc(1);
        pieces[i][0] = (char)i;
        lens[i] = 1;
    }
    for (int i = 0; i < 8; i++) {
        pieces[256 + i] = strdup(multi[i]);
        lens[256 + i] = (uint32_t)strlen(multi[i]);
    }
    n_tok = 256 + 8 + 1; /* the last one: end of generation */
    pieces[256 + 8] = NULL;
    const int32_t eog = 256 + 8;
    vocab = cst_grammar_vocab_new((const char *const *)pieces, lens, n_tok, &eog, 1);
    return vocab ? 0 : 1;
}

static void generate(cst_grammar *g, uint32_t seed) {
    const int32_t budget = cst_grammar_min_bytes(g) + (int32_t)(seed % 16);
    if (budget > 300) return; /* keep runs fast */
    cst_grammar_rt *rt = cst_grammar_rt_new(g, vocab);
    if (!rt) return;
    int32_t st = cst_grammar_rt_start(rt);
    char text[4096];
    size_t len = 0;
    for (int32_t used = 0;; used++) {
        if (cst_grammar_rt_final(rt, st)) break;
        if (used == budget) {
            if (!cst_grammar_rt_accepting(rt, st)) abort(); /* the budget did not close the value */
            break;
        }
        int32_t n = 0;
        const uint64_t *m = cst_grammar_rt_mask(rt, st, budget - used, &n);
        if (!m) break; /* out of memory */
        if (n == 0) abort(); /* nothing fits although the budget holds mc */
        seed = seed * 1664525u + 1013904223u;
        int32_t pick = (int32_t)(seed % (uint32_t)n), tok = -1;
        for (int32_t t = 0; t < n_tok; t++)
            if (m[t >> 6] >> (t & 63) & 1 && pick-- == 0) {
                tok = t;
                break;
            }
        if (tok == n_tok - 1) {
            if (!cst_grammar_rt_accepting(rt, st)) abort();
            break;
        }
        int32_t nx;
        if (!cst_grammar_rt_allowed(rt, st, tok, pieces[tok], lens[tok], budget - used, &nx)) abort();
        if (len + lens[tok] < sizeof text) memcpy(text + len, pieces[tok], lens[tok]);
        len += lens[tok];
        st = nx;
    }
    if (len < sizeof text && !cst_grammar_accepts(g, text, len)) abort();
    cst_grammar_rt_free(rt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 8192) return 0;
    const uint8_t mode = data[0];
    char *s = malloc(size);
    if (!s) return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    size_t first = strlen(s); /* the schema / pattern; after a NUL: a text to check */
    const char *rest = first + 1 < size - 1 ? s + first + 1 : "";
    char err[1024] = "";
    cst_grammar *g = NULL;
    bool tried = mode % 2 == 1;
    if (mode % 2 == 0) {
        json_error_t je;
        json_t *j = json_loadb(s, first, JSON_DECODE_ANY, &je);
        if (j) {
            tried = true;
            g = cst_schema_compile(j, "schema", err, sizeof err);
            json_decref(j);
        }
    } else {
        g = cst_schema_regex(s, err, sizeof err);
    }
    if (!g && tried && err[0] == 0) abort(); /* a failure must say why */
    if (g) {
        (void)cst_grammar_accepts(g, rest, strlen(rest));
        generate(g, (uint32_t)size * 2654435761u ^ mode);
        cst_grammar_unref(g);
    }
    free(s);
    return 0;
}
