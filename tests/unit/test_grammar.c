/* test_grammar.c: the grammar automaton (acceptance, refused grammars,
 * shortest completions), the vocabulary trie masks against a token-by-token
 * check, and budget-aware closing: random-logit generation over the real
 * Qwen3 and Llama 3 vocabularies always ends in a complete sentence within
 * the token budget. */
#include "engine/gguf/gguf.h"
#include "engine/sampler/grammar.h"
#include "engine/tokenizer/tokenizer.h"
#include "test.h"

#include <stdlib.h>

/* a generic JSON grammar through the builder */
static int32_t json_grammar(cst_gbuild *b) {
    int32_t value = cst_gb_rule(b), object = cst_gb_rule(b), members = cst_gb_rule(b), pair = cst_gb_rule(b);
    int32_t array = cst_gb_rule(b), elems = cst_gb_rule(b), string = cst_gb_rule(b), chars = cst_gb_rule(b);
    int32_t ch = cst_gb_rule(b), number = cst_gb_rule(b), digits = cst_gb_rule(b);
    cst_gb_ref(b, value, object);
    cst_gb_alt(b, value), cst_gb_ref(b, value, array);
    cst_gb_alt(b, value), cst_gb_ref(b, value, string);
    cst_gb_alt(b, value), cst_gb_ref(b, value, number);
    cst_gb_alt(b, value), cst_gb_lit(b, value, "true", 4);
    cst_gb_alt(b, value), cst_gb_lit(b, value, "false", 5);
    cst_gb_alt(b, value), cst_gb_lit(b, value, "null", 4);
    cst_gb_lit(b, object, "{}", 2);
    cst_gb_alt(b, object), cst_gb_lit(b, object, "{", 1), cst_gb_ref(b, object, members), cst_gb_lit(b, object, "}", 1);
    cst_gb_ref(b, members, pair);
    cst_gb_alt(b, members), cst_gb_ref(b, members, pair), cst_gb_lit(b, members, ",", 1), cst_gb_ref(b, members, members);
    cst_gb_ref(b, pair, string), cst_gb_lit(b, pair, ":", 1), cst_gb_ref(b, pair, value);
    cst_gb_lit(b, array, "[]", 2);
    cst_gb_alt(b, array), cst_gb_lit(b, array, "[", 1), cst_gb_ref(b, array, elems), cst_gb_lit(b, array, "]", 1);
    cst_gb_ref(b, elems, value);
    cst_gb_alt(b, elems), cst_gb_ref(b, elems, value), cst_gb_lit(b, elems, ",", 1), cst_gb_ref(b, elems, elems);
    cst_gb_lit(b, string, "\"", 1), cst_gb_ref(b, string, chars), cst_gb_lit(b, string, "\"", 1);
    cst_gb_alt(b, chars), cst_gb_ref(b, chars, ch), cst_gb_ref(b, chars, chars); /* first alternative: empty */
    cst_gb_range(b, ch, 0x20, 0x21);
    cst_gb_alt(b, ch), cst_gb_range(b, ch, 0x23, 0x5B);
    cst_gb_alt(b, ch), cst_gb_range(b, ch, 0x5D, 0x7E);
    cst_gb_alt(b, ch), cst_gb_lit(b, ch, "\\", 1), cst_gb_class(b, ch, (const uint8_t[32]){[4] = 0x04, [5] = 0x80, [6] = 0x00, [11] = 0x10, [12] = 0x44, [13] = 0x40, [14] = 0x14});
    cst_gb_alt(b, ch), cst_gb_range(b, ch, 0xC2, 0xDF), cst_gb_range(b, ch, 0x80, 0xBF);
    cst_gb_alt(b, ch), cst_gb_range(b, ch, 0xE1, 0xEC), cst_gb_range(b, ch, 0x80, 0xBF), cst_gb_range(b, ch, 0x80, 0xBF);
    cst_gb_lit(b, number, "0", 1);
    cst_gb_alt(b, number), cst_gb_range(b, number, '1', '9'), cst_gb_ref(b, number, digits);
    cst_gb_alt(b, number), cst_gb_lit(b, number, "-", 1), cst_gb_range(b, number, '1', '9'), cst_gb_ref(b, number, digits);
    cst_gb_alt(b, digits), cst_gb_range(b, digits, '0', '9'), cst_gb_ref(b, digits, digits);
    return value;
}

static cst_grammar *make_json(void) {
    cst_gbuild *b = cst_gb_new();
    int32_t root = json_grammar(b);
    char err[200];
    cst_grammar *g = cst_gb_finish(b, root, err, sizeof err);
    ASSERT_MSG(g, "%s", err);
    return g;
}

static bool acc(const cst_grammar *g, const char *s) { return cst_grammar_accepts(g, s, strlen(s)); }

TEST(grammar_accepts_json) {
    cst_grammar *g = make_json();
    ASSERT(acc(g, "{\"a\":[1,2,{\"b\":null}],\"c\":\"x\\\"y\"}"));
    ASSERT(acc(g, "[]"));
    ASSERT(acc(g, "\"caf\xc3\xa9\""));
    ASSERT(acc(g, "-12"));
    ASSERT(acc(g, "0"));
    ASSERT(!acc(g, "01"));
    ASSERT(!acc(g, "{\"a\":}"));
    ASSERT(!acc(g, "[1,2"));
    ASSERT(!acc(g, ""));
    ASSERT(!acc(g, "\"\xc3\""));
    ASSERT(!acc(g, "[1,]"));
    ASSERT(!acc(g, "\"a\"x"));
    ASSERT_EQ(cst_grammar_min_bytes(g), 1);
    cst_grammar_unref(g);
}

TEST(grammar_refuses_bad_grammars) {
    char err[200];
    /* left recursion: A ::= A "x" | "y" */
    cst_gbuild *b = cst_gb_new();
    int32_t a = cst_gb_rule(b);
    cst_gb_ref(b, a, a), cst_gb_lit(b, a, "x", 1);
    cst_gb_alt(b, a), cst_gb_lit(b, a, "y", 1);
    ASSERT(cst_gb_finish(b, a, err, sizeof err) == NULL);
    ASSERT(strstr(err, "left-recursive"));
    /* hidden left recursion through a nullable rule: A ::= E A "x" | "y", E ::= "" */
    b = cst_gb_new();
    a = cst_gb_rule(b);
    int32_t e = cst_gb_rule(b);
    cst_gb_ref(b, a, e), cst_gb_ref(b, a, a), cst_gb_lit(b, a, "x", 1);
    cst_gb_alt(b, a), cst_gb_lit(b, a, "y", 1);
    ASSERT(cst_gb_finish(b, a, err, sizeof err) == NULL);
    ASSERT(strstr(err, "left-recursive"));
    /* never ends: A ::= "x" A */
    b = cst_gb_new();
    a = cst_gb_rule(b);
    cst_gb_lit(b, a, "x", 1), cst_gb_ref(b, a, a);
    ASSERT(cst_gb_finish(b, a, err, sizeof err) == NULL);
    ASSERT(strstr(err, "never ends"));
    /* right recursion is fine, and stacks stay flat: A ::= "" | "x" A */
    b = cst_gb_new();
    a = cst_gb_rule(b);
    cst_gb_alt(b, a), cst_gb_lit(b, a, "x", 1), cst_gb_ref(b, a, a);
    cst_grammar *g = cst_gb_finish(b, a, err, sizeof err);
    ASSERT_MSG(g, "%s", err);
    ASSERT(acc(g, ""));
    char many[5001];
    memset(many, 'x', 5000);
    many[5000] = 0;
    ASSERT(acc(g, many));
    cst_grammar_unref(g);
}

TEST(grammar_min_complete) {
    cst_grammar *g = make_json();
    static const char *const p[1] = {"x"};
    static const uint32_t l[1] = {1};
    cst_grammar_vocab *v = cst_grammar_vocab_new(p, l, 1, NULL, 0);
    cst_grammar_rt *rt = cst_grammar_rt_new(g, v);
    ASSERT(rt);
    int32_t s0 = cst_grammar_rt_start(rt);
    ASSERT_EQ(cst_grammar_rt_min_complete(rt, s0), 1);
    int32_t s = cst_grammar_rt_advance(rt, s0, "{\"ab", 4);
    ASSERT_EQ(cst_grammar_rt_min_complete(rt, s), 4); /* ":0} */
    s = cst_grammar_rt_advance(rt, s0, "[[[{\"a\":[", 9);
    ASSERT_EQ(cst_grammar_rt_min_complete(rt, s), 5); /* ]}]]] */
    s = cst_grammar_rt_advance(rt, s0, "12", 2);
    ASSERT(cst_grammar_rt_accepting(rt, s));
    ASSERT(!cst_grammar_rt_final(rt, s));
    s = cst_grammar_rt_advance(rt, s0, "[]", 2);
    ASSERT(cst_grammar_rt_final(rt, s));
    ASSERT_EQ(cst_grammar_rt_advance(rt, s, "x", 1), CST_GSTATE_DEAD);
    cst_grammar_rt_free(rt);
    cst_grammar_vocab_free(v);
    cst_grammar_unref(g);
}

typedef struct {
    cst_vocab *vocab;
    cst_grammar_vocab *gv;
    char **pieces;
    uint32_t *lens;
    int32_t n;
} tvocab;

static void tvocab_load(tvocab *t, const char *rel) {
    memset(t, 0, sizeof *t);
    cst_gguf *gg = NULL;
    char err[256];
    ASSERT_OK(cst_gguf_open(cst_test_shared(rel), &gg, err, sizeof err));
    ASSERT_OK(cst_vocab_load(gg, &t->vocab, err, sizeof err));
    cst_gguf_close(gg);
    t->n = cst_vocab_n_tokens(t->vocab);
    t->pieces = calloc((size_t)t->n, sizeof *t->pieces);
    t->lens = calloc((size_t)t->n, sizeof *t->lens);
    for (int32_t i = 0; i < t->n; i++) {
        char buf[512];
        size_t n = cst_token_to_piece(t->vocab, i, buf, sizeof buf, false);
        if (n > sizeof buf) n = 0;
        t->pieces[i] = malloc(n + 1);
        memcpy(t->pieces[i], buf, n);
        t->lens[i] = (uint32_t)n;
    }
    const cst_token *eog;
    size_t n_eog = cst_vocab_eog_ids(t->vocab, &eog);
    t->gv = cst_grammar_vocab_new((const char *const *)t->pieces, t->lens, t->n, eog, n_eog);
    ASSERT(t->gv);
}

static void tvocab_free(tvocab *t) {
    for (int32_t i = 0; i < t->n; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->lens);
    cst_grammar_vocab_free(t->gv);
    cst_vocab_free(t->vocab);
}

static uint64_t g_rng = 88172645463325252ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}

/* the cached mask equals a token-by-token check */
static void check_masks_of(tvocab *t, cst_grammar *g, const char *const *prefixes, size_t n_prefixes) {
    cst_grammar_rt *rt = cst_grammar_rt_new(g, t->gv);
    ASSERT(rt);
    for (size_t k = 0; k < n_prefixes; k++) {
        int32_t s = cst_grammar_rt_advance(rt, cst_grammar_rt_start(rt), prefixes[k], strlen(prefixes[k]));
        ASSERT(s != CST_GSTATE_DEAD);
        int32_t budgets[] = {CST_GBUDGET_NONE, cst_grammar_rt_min_complete(rt, s) + 1}; /* the tightest feasible */
        for (int bi = 0; bi < 2; bi++) {
            int32_t n_allowed = 0;
            const uint64_t *m = cst_grammar_rt_mask(rt, s, budgets[bi], &n_allowed);
            ASSERT(m);
            uint64_t *copy = malloc(((size_t)t->n + 63) / 64 * 8);
            memcpy(copy, m, ((size_t)t->n + 63) / 64 * 8);
            int32_t count = 0;
            for (int32_t tok = 0; tok < t->n; tok++) {
                int32_t nx;
                bool a = cst_grammar_rt_allowed(rt, s, tok, t->pieces[tok], t->lens[tok], budgets[bi], &nx);
                bool b = (copy[tok >> 6] >> (tok & 63)) & 1;
                ASSERT_MSG(a == b, "prefix '%s' budget %d token %d '%.*s': check %d, mask %d", prefixes[k],
                           budgets[bi], tok, (int)t->lens[tok], t->pieces[tok], a, b);
                count += a;
            }
            ASSERT_EQ(count, n_allowed);
            ASSERT(n_allowed > 0);
            free(copy);
        }
    }
    cst_grammar_rt_free(rt);
}

static void check_masks(tvocab *t) {
    cst_grammar *g = make_json();
    const char *prefixes[] = {"", "{", "{\"a", "{\"a\":", "[1", "\"x", "[1,{\"b\":[tr"};
    check_masks_of(t, g, prefixes, sizeof prefixes / sizeof *prefixes);
    cst_grammar_unref(g);
}

/* random logits, masked; every run ends complete within the budget */
static void check_budget_of(tvocab *t, cst_grammar *g, int32_t favour) {
    cst_grammar_rt *rt = cst_grammar_rt_new(g, t->gv);
    float *logits = malloc((size_t)t->n * sizeof *logits);
    char *text = malloc(1 << 16);
    int runs = 0;
    for (int32_t budget = 1; budget <= 40; budget += (budget < 10 ? 1 : 7)) {
        for (int rep = 0; rep < 6; rep++, runs++) {
            int32_t s = cst_grammar_rt_start(rt);
            size_t len = 0;
            int32_t used = 0;
            for (;;) {
                if (cst_grammar_rt_final(rt, s)) break;
                if (used == budget) { /* the budget is spent: what is there must be complete */
                    ASSERT_MSG(cst_grammar_rt_accepting(rt, s), "budget %d spent: %.*s", budget, (int)len, text);
                    break;
                }
                for (int32_t i = 0; i < t->n; i++) logits[i] = (float)(rnd() % 10000) / 1000.0f;
                if (favour >= 0 && rnd() % 4 == 0) logits[favour] = 100.0f; /* e.g. a trigger token */
                /* favour structure openers so that nesting happens */
                int32_t na = cst_grammar_rt_apply(rt, s, budget - used, logits);
                ASSERT_MSG(na > 0, "no token allowed at %.*s (budget %d, used %d)", (int)len, text, budget, used);
                int32_t best = 0;
                for (int32_t i = 1; i < t->n; i++)
                    if (logits[i] > logits[best]) best = i;
                used++;
                if (cst_grammar_rt_is_eog(rt, best)) {
                    ASSERT(cst_grammar_rt_accepting(rt, s));
                    break;
                }
                int32_t nx;
                ASSERT(cst_grammar_rt_allowed(rt, s, best, t->pieces[best], t->lens[best], budget - used + 1, &nx));
                memcpy(text + len, t->pieces[best], t->lens[best]);
                len += t->lens[best];
                s = nx;
            }
            ASSERT_MSG(cst_grammar_accepts(g, text, len), "not a sentence: %.*s", (int)len, text);
            ASSERT(used <= budget);
        }
    }
    cst_grammar_stats st = cst_grammar_rt_stats(rt);
    printf("  %d runs, %llu masks computed, %llu cache hits, %llu states\n", runs, (unsigned long long)st.n_masks,
           (unsigned long long)st.n_mask_hits, (unsigned long long)st.n_states);
    free(logits);
    free(text);
    cst_grammar_rt_free(rt);
}

static void check_budget(tvocab *t) {
    cst_grammar *g = make_json();
    check_budget_of(t, g, -1);
    cst_grammar_unref(g);
}

/* trigger mode: free text, or text + "<tool_call>" + a JSON object + close */
static cst_grammar *make_trigger(bool allow) {
    cst_gbuild *b = cst_gb_new();
    int32_t call = -1;
    if (allow) {
        int32_t value = json_grammar(b);
        call = cst_gb_rule(b);
        cst_gb_lit(b, call, "{\"a\": ", 6), cst_gb_ref(b, call, value), cst_gb_lit(b, call, "}</tool_call>", 13);
    }
    int32_t root = cst_gb_trigger(b, "<tool_call>", 11, call);
    char err[200];
    cst_grammar *g = cst_gb_finish(b, root, err, sizeof err);
    ASSERT_MSG(g, "%s", err);
    return g;
}

static void check_trigger(tvocab *t) {
    cst_grammar *g = make_trigger(true);
    const char *prefixes[] = {"", "Hi <tool", "x<tool_call>", "<tool_call>{\"a\": [1", "<<tool_cal"};
    check_masks_of(t, g, prefixes, sizeof prefixes / sizeof *prefixes);
    const cst_token trig = cst_vocab_find(t->vocab, "<tool_call>", 11);
    check_budget_of(t, g, trig >= 0 && t->lens[trig] == 11 ? trig : cst_vocab_find(t->vocab, "<", 1));
    cst_grammar_unref(g);
}

TEST(grammar_trigger_mode) {
    cst_grammar *g = make_trigger(true);
    ASSERT(acc(g, ""));
    ASSERT(acc(g, "plain text, <tool and <tool_cal but no trigger"));
    ASSERT(acc(g, "text<tool_call>{\"a\": [1,2]}</tool_call>"));
    ASSERT(acc(g, "<<tool_call>{\"a\": 1}</tool_call>")); /* the trigger after a false start (KMP) */
    ASSERT(!acc(g, "text<tool_call>")); /* once triggered, the call must complete */
    ASSERT(!acc(g, "<tool_call>{\"b\": 1}</tool_call>"));
    ASSERT(!acc(g, "<tool_call>{\"a\": 1}</tool_call> more text"));
    ASSERT_EQ(cst_grammar_min_bytes(g), 0);
    cst_grammar_unref(g);
    /* then < 0: the trigger can never be written */
    g = make_trigger(false);
    ASSERT(acc(g, "anything <tool_cal>"));
    ASSERT(!acc(g, "a <tool_call>"));
    ASSERT(!acc(g, "<tool_call>{\"a\": 1}</tool_call>"));
    cst_grammar_unref(g);
    /* an overlapping trigger ("aab" after "aaab") and its KMP fallbacks */
    cst_gbuild *b = cst_gb_new();
    int32_t then = cst_gb_rule(b);
    cst_gb_lit(b, then, "!", 1);
    int32_t root = cst_gb_trigger(b, "aab", 3, then);
    char err[200];
    g = cst_gb_finish(b, root, err, sizeof err);
    ASSERT_MSG(g, "%s", err);
    ASSERT(acc(g, "aaaa"));
    ASSERT(acc(g, "aaab!"));
    ASSERT(!acc(g, "aaab"));
    ASSERT(!acc(g, "abaab"));
    ASSERT(acc(g, "abaa"));
    cst_grammar_unref(g);
}

TEST(grammar_qwen3_vocab) {
    tvocab t;
    tvocab_load(&t, "models/vocab-qwen3.gguf");
    ASSERT_EQ(t.n, 151936);
    check_masks(&t);
    check_budget(&t);
    check_trigger(&t);
    tvocab_free(&t);
}

TEST(grammar_llama3_vocab) {
    tvocab t;
    tvocab_load(&t, "models/vocab-llama3.gguf");
    ASSERT_EQ(t.n, 128256);
    check_masks(&t);
    check_budget(&t);
    check_trigger(&t);
    tvocab_free(&t);
}
