/* test_tokenizer.c: tokenizer against llama.cpp's own output: the golden JSONL
 * files (ids and detokenized text, three special-token modes), llama.cpp's
 * phi-3 test vectors, the vocab-info.json facts (special ids, EOG sets,
 * attribute counts), plus robustness (invalid UTF-8, empty input, a 100 KB
 * input) and token_to_piece behaviour; the no-copy (view) vocabularies against
 * the copying ones, the vocab's memory bound, merges over non-token strings. */
#define _GNU_SOURCE /* memmem */
#include "core/core.h"
#include "engine/tokenizer/tokenizer.h"
#include "test.h"

#include <jansson.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    const char *name, *model;
    cst_vocab *v;
    bool tried;
} vocab_slot;

static vocab_slot g_vocabs[] = {
    {"qwen3", "models/vocab-qwen3.gguf", NULL, false},
    {"llama3", "models/vocab-llama3.gguf", NULL, false},
    {"gemma3", "models/vocab-gemma3.gguf", NULL, false},
    {"phi3", "models/ggml-vocab-phi-3.gguf", NULL, false},
    {"llama2-spm", "models/llama-2-tiny-random.gguf", NULL, false},
    {"stories260K", "models/stories260K.gguf", NULL, false},
};

/* loaded once per process and shared by the tests */
static cst_vocab *get_vocab(const char *name) {
    for (size_t i = 0; i < sizeof g_vocabs / sizeof g_vocabs[0]; i++) {
        vocab_slot *s = &g_vocabs[i];
        if (strcmp(s->name, name)) continue;
        if (!s->tried) {
            s->tried = true;
            char err[256];
            cst_gguf *g = NULL;
            const char *path = cst_test_shared(s->model);
            if (cst_gguf_open(path, &g, err, sizeof err) != CST_OK) return NULL;
            cst_status st = cst_vocab_load(g, &s->v, err, sizeof err);
            cst_gguf_close(g);
            ASSERT_MSG(st == CST_OK, "%s: %s", path, err);
        }
        return s->v;
    }
    return NULL;
}

static cst_vocab *need_vocab(const char *name) {
    cst_vocab *v = get_vocab(name);
    if (!v) cst_test_skip("vocab %s not available", name);
    return v;
}

static void print_ids(const char *what, const cst_token *ids, size_t n) {
    fprintf(stderr, "    %s [", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, "%s%d", i ? "," : "", ids[i]);
    fprintf(stderr, "]\n");
}

/* Runs one golden file; returns the number of failing lines. */
static int run_golden_v(const char *name, const cst_vocab *v) {
    char rel[128];
    snprintf(rel, sizeof rel, "golden/tokenizer/%s.jsonl", name);
    FILE *f = fopen(cst_test_shared(rel), "r");
    if (!f) cst_test_skip("no %s", rel);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int n = 0, bad_ids = 0, bad_detok = 0;
    while ((got = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)got, 0, &je);
        ASSERT_MSG(j, "%s line %d: %s", rel, n + 1, je.text);
        n++;
        json_t *jt = json_object_get(j, "text");
        const char *text = json_string_value(jt);
        size_t tlen = json_string_length(jt);
        bool add_special = json_is_true(json_object_get(j, "add_special"));
        bool parse_special = json_is_true(json_object_get(j, "parse_special"));
        json_t *jids = json_object_get(j, "ids");
        size_t ne = json_array_size(jids);
        cst_token *exp = malloc((ne + 1) * sizeof *exp);
        for (size_t i = 0; i < ne; i++) exp[i] = (cst_token)json_integer_value(json_array_get(jids, i));
        cst_token *ids = NULL;
        size_t nids = 0;
        ASSERT_OK(cst_tokenize(v, text, tlen, add_special, parse_special, &ids, &nids));
        bool same = nids == ne && (ne == 0 || memcmp(ids, exp, ne * sizeof *ids) == 0);
        if (!same) {
            if (bad_ids < 5) {
                fprintf(stderr, "  %s line %d (add_special=%d parse_special=%d) text=%s\n", name, n, add_special,
                        parse_special, text);
                print_ids("want", exp, ne);
                print_ids("got ", ids, nids);
            }
            bad_ids++;
        }
        json_t *jd = json_object_get(j, "detok");
        if (json_is_string(jd)) {
            char *out = NULL;
            size_t olen = 0;
            ASSERT_OK(cst_detokenize(v, exp, ne, &out, &olen));
            if (olen != json_string_length(jd) || memcmp(out, json_string_value(jd), olen) != 0) {
                if (bad_detok < 5)
                    fprintf(stderr, "  %s line %d detok: want \"%s\" got \"%s\"\n", name, n, json_string_value(jd), out);
                bad_detok++;
            }
            free(out);
        }
        free(ids);
        free(exp);
        json_decref(j);
    }
    free(line);
    fclose(f);
    fprintf(stderr, "  %s: %d lines, %d id mismatches, %d detok mismatches\n", name, n, bad_ids, bad_detok);
    ASSERT(n > 0);
    return bad_ids + bad_detok;
}

static int run_golden(const char *name) { return run_golden_v(name, need_vocab(name)); }

TEST(golden_qwen3) { ASSERT_EQ(run_golden("qwen3"), 0); }
TEST(golden_llama3) { ASSERT_EQ(run_golden("llama3"), 0); }
TEST(golden_gemma3) { ASSERT_EQ(run_golden("gemma3"), 0); }
TEST(golden_phi3) { ASSERT_EQ(run_golden("phi3"), 0); }
TEST(golden_llama2_spm) { ASSERT_EQ(run_golden("llama2-spm"), 0); }
TEST(golden_stories260K) { ASSERT_EQ(run_golden("stories260K"), 0); }

/* llama.cpp's test-tokenizer-0 vectors: inputs separated by
 * "\n__ggml_vocab_test__\n", one line of space-separated ids per input,
 * tokenized with add_special=false, parse_special=false. */
TEST(phi3_llamacpp_vectors) {
    cst_vocab *v = need_vocab("phi3");
    char *inp = NULL, *outp = NULL;
    size_t inl = 0, outl = 0;
    if (cst_read_file(cst_test_shared("models/ggml-vocab-phi-3.gguf.inp"), &inp, &inl) != CST_OK)
        cst_test_skip("no .inp");
    ASSERT_OK(cst_read_file(cst_test_shared("models/ggml-vocab-phi-3.gguf.out"), &outp, &outl));
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = inp, *o = outp;
    int n = 0, bad = 0;
    for (;;) {
        char *e = strstr(p, sep);
        if (!e) break;
        char *ol = strchr(o, '\n');
        ASSERT(ol);
        *ol = 0;
        cst_token exp[512];
        size_t ne = 0;
        for (char *q = o; *q;) {
            char *end;
            long x = strtol(q, &end, 10);
            if (end == q) break;
            ASSERT(ne < 512);
            exp[ne++] = (cst_token)x;
            q = end;
        }
        cst_token *ids = NULL;
        size_t nids = 0;
        ASSERT_OK(cst_tokenize(v, p, (size_t)(e - p), false, false, &ids, &nids));
        if (nids != ne || (ne && memcmp(ids, exp, ne * sizeof *ids))) {
            if (bad < 5) {
                fprintf(stderr, "  vector %d: \"%.*s\"\n", n, (int)(e - p), p);
                print_ids("want", exp, ne);
                print_ids("got ", ids, nids);
            }
            bad++;
        }
        free(ids);
        n++;
        p = e + strlen(sep);
        o = ol + 1;
    }
    fprintf(stderr, "  phi3 vectors: %d, %d mismatches\n", n, bad);
    ASSERT_EQ(n, 46);
    ASSERT_EQ(bad, 0);
    free(inp);
    free(outp);
}

static const char *type_name(cst_vocab_type t) { return t == CST_VOCAB_SPM ? "SPM" : t == CST_VOCAB_BPE ? "BPE" : "?"; }

TEST(vocab_info_facts) {
    char *js = NULL;
    size_t jl = 0;
    if (cst_read_file(cst_test_shared("golden/tokenizer/vocab-info.json"), &js, &jl) != CST_OK)
        cst_test_skip("no vocab-info.json");
    json_error_t je;
    json_t *root = json_loadb(js, jl, 0, &je);
    ASSERT(root);
    const char *key;
    json_t *info;
    int checked = 0;
    json_object_foreach(root, key, info) {
        cst_vocab *v = get_vocab(key);
        ASSERT_MSG(v, "vocab %s not loadable", key);
        ASSERT_EQ(cst_vocab_n_tokens(v), json_integer_value(json_object_get(info, "n_tokens")));
        ASSERT_STREQ(type_name(cst_vocab_kind(v)), json_string_value(json_object_get(info, "type")));
        ASSERT_EQ(cst_vocab_bos(v), json_integer_value(json_object_get(info, "bos")));
        ASSERT_EQ(cst_vocab_eos(v), json_integer_value(json_object_get(info, "eos")));
        ASSERT_EQ(cst_vocab_eot(v), json_integer_value(json_object_get(info, "eot")));
        ASSERT_EQ(cst_vocab_pad(v), json_integer_value(json_object_get(info, "pad")));
        ASSERT_EQ(cst_vocab_nl(v), json_integer_value(json_object_get(info, "nl")));
        ASSERT_EQ(cst_vocab_add_bos(v), json_is_true(json_object_get(info, "add_bos")));
        ASSERT_EQ(cst_vocab_add_eos(v), json_is_true(json_object_get(info, "add_eos")));
        json_t *eog = json_object_get(info, "eog_ids");
        const cst_token *ids;
        size_t ne = cst_vocab_eog_ids(v, &ids);
        ASSERT_MSG(ne == json_array_size(eog), "%s: %zu EOG ids, want %zu", key, ne, json_array_size(eog));
        for (size_t i = 0; i < ne; i++) {
            cst_token t = (cst_token)json_integer_value(json_array_get(eog, i));
            ASSERT_MSG(cst_vocab_is_eog(v, t), "%s: %d should be EOG", key, t);
        }
        ASSERT(!cst_vocab_is_eog(v, -1));
        /* attribute histogram */
        json_t *ac = json_object_get(info, "attr_counts");
        int32_t nt = cst_vocab_n_tokens(v);
        int *seen_attrs = calloc(1024, sizeof(int));
        for (int32_t t = 0; t < nt; t++) {
            int a = cst_vocab_attr(v, t);
            ASSERT(a >= 0 && a < 1024);
            seen_attrs[a]++;
        }
        const char *ak;
        json_t *av;
        size_t total = 0;
        json_object_foreach(ac, ak, av) {
            int a = atoi(ak);
            ASSERT_MSG(seen_attrs[a] == json_integer_value(av), "%s: attr %d: %d tokens, want %lld", key, a,
                       seen_attrs[a], (long long)json_integer_value(av));
            total += (size_t)seen_attrs[a];
        }
        ASSERT_MSG(total == (size_t)nt, "%s: tokens with unexpected attributes", key);
        free(seen_attrs);
        checked++;
    }
    ASSERT_EQ(checked, 6);
    json_decref(root);
    free(js);
}

TEST(empty_and_invalid_input) {
    const char *names[] = {"qwen3", "llama3", "gemma3", "stories260K"};
    for (size_t k = 0; k < 4; k++) {
        cst_vocab *v = need_vocab(names[k]);
        cst_token *ids = NULL;
        size_t n = 99;
        ASSERT_OK(cst_tokenize(v, "", 0, false, false, &ids, &n));
        ASSERT_EQ(n, 0);
        free(ids);
        ASSERT_OK(cst_tokenize(v, "", 0, true, true, &ids, &n));
        ASSERT_EQ(n, cst_vocab_add_bos(v) ? 1 : 0);
        if (n) ASSERT_EQ(ids[0], cst_vocab_bos(v));
        free(ids);
        /* invalid UTF-8, NULs, lone continuation bytes, truncated sequences */
        const char bad[] = "a\xff\xfe\x80 b\xc3\0c\xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 \xf7\xbf\xbf\xbf z\xc3";
        ASSERT_OK(cst_tokenize(v, bad, sizeof bad - 1, true, true, &ids, &n));
        ASSERT(n > 0);
        for (size_t i = 0; i < n; i++) ASSERT(ids[i] >= 0 && ids[i] < cst_vocab_n_tokens(v));
        char *out = NULL;
        size_t olen = 0;
        ASSERT_OK(cst_detokenize(v, ids, n, &out, &olen));
        ASSERT(out && out[olen] == 0);
        free(out);
        free(ids);
        cst_token badid = cst_vocab_n_tokens(v);
        ASSERT(cst_detokenize(v, &badid, 1, &out, &olen) != CST_OK);
    }
}

/* SPM (gemma3: no space prefix, byte fallback) and qwen3 (byte-level BPE, no
 * space clean-up) are lossless: detokenize(tokenize(x)) == x. */
TEST(large_input_roundtrip) {
    const char *chunk = "The quick brown fox  jumps\tover 12345 lazy dogs; caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 "
                        "\xf0\x9f\x98\x80 don't STOP!!\n\n    def f(x): return x**2  # comment\r\n";
    size_t cl = strlen(chunk), total = 100 * 1024;
    char *big = malloc(total + 1);
    size_t n = 0;
    while (n + cl <= total) {
        memcpy(big + n, chunk, cl);
        n += cl;
    }
    /* and one very long "word" and a long run of spaces */
    memset(big + n - 3000, 'a', 1500);
    memset(big + n - 1500, ' ', 1500);
    big[n] = 0;
    const char *names[] = {"qwen3", "gemma3", "llama3"};
    for (size_t k = 0; k < 3; k++) {
        cst_vocab *v = need_vocab(names[k]);
        cst_token *ids = NULL;
        size_t nids = 0;
        ASSERT_OK(cst_tokenize(v, big, n, false, false, &ids, &nids));
        ASSERT(nids > n / 20 && nids < n);
        char *out = NULL;
        size_t olen = 0;
        ASSERT_OK(cst_detokenize(v, ids, nids, &out, &olen));
        if (k < 2) {
            ASSERT_EQ(olen, n);
            ASSERT(memcmp(out, big, n) == 0);
        }
        free(out);
        free(ids);
    }
    free(big);
}

TEST(token_to_piece) {
    cst_vocab *v = need_vocab("llama2-spm");
    char buf[64];
    /* BOS is control: no text unless special */
    ASSERT_EQ(cst_token_to_piece(v, 1, buf, sizeof buf, false), 0);
    ASSERT_EQ(cst_token_to_piece(v, 1, buf, sizeof buf, true), 3);
    ASSERT(memcmp(buf, "<s>", 3) == 0);
    /* byte token <0x0A> is a newline */
    cst_token nl = cst_vocab_find(v, "<0x0A>", 6);
    ASSERT_EQ(nl, 13);
    ASSERT_EQ(cst_token_to_piece(v, nl, buf, sizeof buf, false), 1);
    ASSERT_EQ(buf[0], '\n');
    /* U+2581 becomes a space */
    cst_token hello = cst_vocab_find(v, "\xe2\x96\x81Hello", 8);
    ASSERT(hello > 0);
    ASSERT_EQ(cst_token_to_piece(v, hello, buf, sizeof buf, false), 6);
    ASSERT(memcmp(buf, " Hello", 6) == 0);
    /* too small a buffer: the size is reported, nothing beyond cap written */
    buf[0] = 'X';
    ASSERT_EQ(cst_token_to_piece(v, hello, buf, 2, false), 6);
    ASSERT_EQ(buf[0], 'X');
    ASSERT_EQ(cst_token_to_piece(v, -5, buf, sizeof buf, true), 0);

    cst_vocab *q = need_vocab("qwen3");
    cst_token t = cst_vocab_find(q, "\xc4\xa0the", 5); /* "Ġthe" */
    ASSERT(t >= 0);
    ASSERT_EQ(cst_token_to_piece(q, t, buf, sizeof buf, false), 4);
    ASSERT(memcmp(buf, " the", 4) == 0);
    ASSERT_STREQ(cst_vocab_text(q, t), "\xc4\xa0the");
    ASSERT(cst_vocab_is_control(q, 151645));
    ASSERT(!cst_vocab_is_control(q, t));
}

TEST(parse_special_modes) {
    cst_vocab *v = need_vocab("qwen3");
    const char *s = "<|im_start|>user\nhi<|im_end|>";
    cst_token *ids = NULL;
    size_t n = 0;
    ASSERT_OK(cst_tokenize(v, s, strlen(s), false, true, &ids, &n));
    ASSERT(n >= 3);
    ASSERT_EQ(ids[0], 151644);
    ASSERT_EQ(ids[n - 1], 151645);
    free(ids);
    ASSERT_OK(cst_tokenize(v, s, strlen(s), false, false, &ids, &n));
    for (size_t i = 0; i < n; i++) ASSERT(ids[i] < 151643);
    free(ids);
    /* user-defined tokens (<think>) are matched even without parse_special */
    cst_token think = cst_vocab_find(v, "<think>", 7);
    ASSERT(think > 0);
    ASSERT(cst_vocab_attr(v, think) & CST_TOKEN_ATTR_USER_DEFINED);
    ASSERT_OK(cst_tokenize(v, "a<think>b", 9, false, false, &ids, &n));
    ASSERT_EQ(n, 3);
    ASSERT_EQ(ids[1], think);
    free(ids);
}

/* ---- synthetic vocabularies ------------------------------------------------- */
typedef struct {
    const char **toks;
    int32_t *types;
    float *scores;
    int n, cap;
} synth;

static void synth_add(synth *s, const char *t, int32_t type, float score) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->toks = realloc(s->toks, s->cap * sizeof *s->toks);
        s->types = realloc(s->types, s->cap * sizeof *s->types);
        s->scores = realloc(s->scores, s->cap * sizeof *s->scores);
    }
    s->toks[s->n] = t;
    s->types[s->n] = type;
    s->scores[s->n] = score;
    s->n++;
}

/* writes the vocab to a file and loads it; returns the status */
static cst_status synth_load(cst_gguf_writer *w, const char *name, cst_vocab **v, char *err, size_t errlen) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", cst_test_tmpdir(), name);
    ASSERT_OK(cst_gguf_write(w, path, err, errlen));
    cst_gguf *g = NULL;
    ASSERT_OK(cst_gguf_open(path, &g, err, errlen));
    cst_status st = cst_vocab_load(g, v, err, errlen);
    cst_gguf_close(g);
    return st;
}

static cst_gguf_writer *spm_writer(synth *s) {
    cst_gguf_writer *w = cst_gguf_writer_new();
    cst_gguf_set_str(w, "general.architecture", "llama");
    cst_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    cst_gguf_set_arr_str(w, "tokenizer.ggml.tokens", s->toks, (uint64_t)s->n);
    cst_gguf_set_arr(w, "tokenizer.ggml.token_type", CST_GGUF_INT32, s->types, (uint64_t)s->n);
    cst_gguf_set_arr(w, "tokenizer.ggml.scores", CST_GGUF_FLOAT32, s->scores, (uint64_t)s->n);
    return w;
}

/* more than 64 distinct special-token lengths (the slow matching path), the
 * longest match first, empty token texts renamed, add_space_prefix after a
 * special token */
TEST(synthetic_spm_many_specials) {
    synth s = {0};
    synth_add(&s, "<unk>", 2, 0);
    synth_add(&s, "<s>", 3, 0);
    synth_add(&s, "</s>", 3, 0);
    synth_add(&s, "", 1, 0); /* becomes "[EMPTY_3]" */
    synth_add(&s, "\xe2\x96\x81", 1, -1);
    synth_add(&s, "a", 1, -2);
    synth_add(&s, "b", 1, -2);
    synth_add(&s, "\xe2\x96\x81" "a", 1, -0.5f);
    synth_add(&s, "\xe2\x96\x81" "b", 1, -0.5f);
    static char names[80][80];
    for (int k = 1; k <= 75; k++) {
        names[k][0] = '<';
        memset(names[k] + 1, 'x', (size_t)k);
        names[k][k + 1] = '>';
        names[k][k + 2] = 0;
        synth_add(&s, names[k], 4, 0);
    }
    cst_gguf_writer *w = spm_writer(&s);
    char err[256];
    cst_vocab *v = NULL;
    ASSERT_OK(synth_load(w, "spm_many", &v, err, sizeof err));
    cst_gguf_writer_free(w);
    ASSERT_STREQ(cst_vocab_text(v, 3), "[EMPTY_3]");
    ASSERT_EQ(cst_vocab_kind(v), CST_VOCAB_SPM);
    cst_token xxxx = cst_vocab_find(v, "<xxxx>", 6);
    ASSERT(xxxx > 0);
    cst_token *ids = NULL;
    size_t n = 0;
    /* user-defined tokens split the text even without parse_special */
    ASSERT_OK(cst_tokenize(v, "a<xxxx>b", 8, false, false, &ids, &n));
    ASSERT_EQ(n, 3);
    ASSERT_EQ(ids[0], 7);
    ASSERT_EQ(ids[1], xxxx);
    ASSERT_EQ(ids[2], 8); /* "▁b": a space is prefixed after a special token */
    free(ids);
    /* "<xxx<xxxx>>": the longest token wins where both could match */
    ASSERT_OK(cst_tokenize(v, "<xxx<xxxx>>", 11, false, false, &ids, &n));
    bool has = false;
    for (size_t i = 0; i < n; i++) has |= ids[i] == xxxx;
    ASSERT(has);
    free(ids);
    /* control tokens only with parse_special; BOS added by default for SPM */
    ASSERT_OK(cst_tokenize(v, "</s>", 4, true, true, &ids, &n));
    ASSERT_EQ(n, 2);
    ASSERT_EQ(ids[0], 1);
    ASSERT_EQ(ids[1], 2);
    free(ids);
    /* characters without tokens fall back to <0xNN> bytes, or <unk> if those are missing */
    ASSERT_OK(cst_tokenize(v, "c", 1, false, false, &ids, &n));
    ASSERT_EQ(n, 2);
    ASSERT_EQ(ids[0], 4); /* "▁" */
    ASSERT_EQ(ids[1], 0); /* no <0x63>: unk */
    free(ids);
    char *out = NULL;
    cst_token seq[] = {1, 7, xxxx, 8};
    ASSERT_OK(cst_detokenize(v, seq, 4, &out, NULL));
    ASSERT_STREQ(out, "<s> a<xxxx> b");
    free(out);
    cst_token seq2[] = {7, 8};
    ASSERT_OK(cst_detokenize(v, seq2, 2, &out, NULL));
    ASSERT_STREQ(out, "a b"); /* the first token's leading space is removed */
    free(out);
    cst_vocab_free(v);
    free(s.toks);
    free(s.types);
    free(s.scores);
}

TEST(synthetic_bad_vocabs) {
    const char *toks[] = {"a", "b", "ab"};
    int32_t types[] = {1, 1, 1};
    float scores[] = {0, 0};
    const char *merges[] = {"a b"};
    char err[256];
    cst_vocab *v = NULL;
    struct {
        const char *name, *model, *pre;
        bool tokens, merges, short_scores;
        cst_status want;
    } cases[] = {
        {"nomodel", NULL, NULL, true, false, false, CST_ERR_BAD_FORMAT},
        {"bert", "bert", NULL, true, false, false, CST_ERR_UNSUPPORTED},
        {"notokens", "gpt2", "gpt-2", false, true, false, CST_ERR_BAD_FORMAT},
        {"nomerges", "gpt2", "gpt-2", true, false, false, CST_ERR_BAD_FORMAT},
        {"badpre", "gpt2", "no-such-pre", true, true, false, CST_ERR_UNSUPPORTED},
        {"shortscores", "llama", NULL, true, false, true, CST_ERR_BAD_FORMAT},
        {"okbpe", "gpt2", "gpt-2", true, true, false, CST_OK},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cst_gguf_writer *w = cst_gguf_writer_new();
        cst_gguf_set_str(w, "general.architecture", "llama");
        if (cases[k].model) cst_gguf_set_str(w, "tokenizer.ggml.model", cases[k].model);
        if (cases[k].pre) cst_gguf_set_str(w, "tokenizer.ggml.pre", cases[k].pre);
        if (cases[k].tokens) {
            cst_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
            cst_gguf_set_arr(w, "tokenizer.ggml.token_type", CST_GGUF_INT32, types, 3);
        }
        if (cases[k].short_scores) cst_gguf_set_arr(w, "tokenizer.ggml.scores", CST_GGUF_FLOAT32, scores, 2);
        if (cases[k].merges) cst_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
        err[0] = 0;
        cst_status st = synth_load(w, cases[k].name, &v, err, sizeof err);
        cst_gguf_writer_free(w);
        ASSERT_MSG(st == cases[k].want, "%s: status %d, want %d (%s)", cases[k].name, st, cases[k].want, err);
        if (st != CST_OK) {
            ASSERT(v == NULL);
            ASSERT(err[0] != 0);
        } else {
            cst_token *ids = NULL;
            size_t n = 0;
            ASSERT_OK(cst_tokenize(v, "ab", 2, true, false, &ids, &n));
            ASSERT_EQ(n, 1);
            ASSERT_EQ(ids[0], 2); /* merged "a b" */
            free(ids);
            cst_vocab_free(v);
            v = NULL;
        }
    }
}

/* ---- the CLI (when the castor binary has been built) ------------------------- */
static size_t run_cmd(const char *cmd, char *out, size_t cap, int *rc) {
    FILE *p = popen(cmd, "r");
    ASSERT(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return n;
}

TEST(cli_tokenize_detokenize) {
    const char *build = getenv("CST_BUILD");
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/castor", build ? build : ".");
    if (access(bin, X_OK) != 0) cst_test_skip("no castor binary at %s", bin);
    const char *m = cst_test_shared("models/vocab-llama3.gguf");
    char cmd[4096], out[4096];
    int rc;
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' --text 'Hello world'", bin, m);
    run_cmd(cmd, out, sizeof out, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_STREQ(out, "[128000,9906,1917]\n");
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' --no-special --text 'Hello world'", bin, m);
    run_cmd(cmd, out, sizeof out, &rc);
    ASSERT_STREQ(out, "[9906,1917]\n");
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' --no-special --parse-special --text '<|eot_id|>'", bin, m);
    run_cmd(cmd, out, sizeof out, &rc);
    ASSERT_STREQ(out, "[128009]\n");
    snprintf(cmd, sizeof cmd, "printf 'a\\nb' > '%s/in.txt' && '%s' tokenize -m '%s' --file '%s/in.txt' --no-special",
             cst_test_tmpdir(), bin, m, cst_test_tmpdir());
    run_cmd(cmd, out, sizeof out, &rc);
    ASSERT_STREQ(out, "[64,198,65]\n");
    snprintf(cmd, sizeof cmd, "'%s' detokenize -m '%s' --ids 128000,9906,1917", bin, m);
    size_t n = run_cmd(cmd, out, sizeof out, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(n, strlen("<|begin_of_text|>Hello world")); /* no trailing newline */
    ASSERT_STREQ(out, "<|begin_of_text|>Hello world");
    snprintf(cmd, sizeof cmd, "'%s' detokenize -m '%s' --ids '[9906, 1917]'", bin, m);
    run_cmd(cmd, out, sizeof out, &rc);
    ASSERT_STREQ(out, "Hello world");
    snprintf(cmd, sizeof cmd, "'%s' detokenize -m '%s' --ids 99999999 2>/dev/null", bin, m);
    run_cmd(cmd, out, sizeof out, &rc);
    ASSERT_EQ(rc, 1);
    snprintf(cmd, sizeof cmd, "'%s' detokenize -m '%s' --ids 1,x 2>/dev/null", bin, m);
    run_cmd(cmd, out, sizeof out, &rc);
    ASSERT_EQ(rc, 2);
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' 2>/dev/null", bin, m);
    run_cmd(cmd, out, sizeof out, &rc);
    ASSERT_EQ(rc, 2);
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m /nonexistent.gguf --text x 2>/dev/null", bin);
    run_cmd(cmd, out, sizeof out, &rc);
    ASSERT_EQ(rc, 1);
}

/* random texts built from pieces that stress the splitters (special-token
 * texts, whitespace runs, marks, CJK, emoji, digits): every id is in range,
 * and qwen3 / gemma3 (lossless) give the text back, with and without
 * parse_special; random bytes never break anything */
TEST(random_texts) {
    const char *pieces[] = {"a", "Z", " ", "  ", "\t", "\n", "\r\n", "0", "12345", "'s", "'LL", "\xc3\xa9", "e\xcc\x81",
                            "\xe4\xb8\xad", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "\xe2\x80\x8d", "\xc2\xa0", "\xe3\x80\x80",
                            "<|im_start|>", "<|im_end|>", "<think>", "<start_of_turn>", "<unused7>", "</s>", "<s>",
                            "<|eot_id|>", "!!", "...", "\xd9\x85\xd8\xb1", "\xe0\xa4\xb9\xe0\xa4\xbf", "<", "|", "\xe2\x96\x81"};
    const size_t np = sizeof pieces / sizeof pieces[0];
    const char *names[] = {"qwen3", "gemma3", "llama3", "phi3", "stories260K"};
    uint64_t rng = 99;
    for (size_t k = 0; k < 5; k++) {
        cst_vocab *v = need_vocab(names[k]);
        for (int iter = 0; iter < 300; iter++) {
            char text[2048];
            size_t n = 0;
            int cnt = 1 + (int)((rng = rng * 6364136223846793005ull + 1) >> 59);
            bool random_bytes = iter % 10 == 9;
            for (int i = 0; i < cnt * 3; i++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                if (random_bytes) {
                    text[n++] = (char)(rng >> 56);
                } else {
                    const char *p = pieces[(rng >> 33) % np];
                    memcpy(text + n, p, strlen(p));
                    n += strlen(p);
                }
            }
            for (int ps = 0; ps < 2; ps++) {
                cst_token *ids = NULL;
                size_t nids = 0;
                ASSERT_OK(cst_tokenize(v, text, n, ps == 1, ps == 1, &ids, &nids));
                for (size_t i = 0; i < nids; i++) ASSERT(ids[i] >= 0 && ids[i] < cst_vocab_n_tokens(v));
                char *out = NULL;
                size_t olen = 0;
                ASSERT_OK(cst_detokenize(v, ids, nids, &out, &olen));
                /* (SPM cannot give back a literal U+2581: it stands for a space) */
                bool has_2581 = memmem(text, n, "\xe2\x96\x81", 3) != NULL;
                if (k < 2 && !random_bytes && ps == 0 && !(k == 1 && has_2581)) {
                    ASSERT_MSG(olen == n && memcmp(out, text, n) == 0, "%s: round trip of \"%.*s\" gave \"%s\"",
                               names[k], (int)n, text, out);
                }
                free(out);
                free(ids);
            }
        }
    }
}

/* ---- no-copy vocabularies, memory, merges whose sides are not tokens ---------- */
TEST(view_vocabs_match_copies) {
    for (size_t k = 0; k < sizeof g_vocabs / sizeof g_vocabs[0]; k++) {
        const char *name = g_vocabs[k].name;
        cst_vocab *c = need_vocab(name);
        char err[256];
        cst_gguf *g = NULL;
        ASSERT_OK(cst_gguf_open(cst_test_shared(g_vocabs[k].model), &g, err, sizeof err));
        cst_vocab *v = NULL;
        ASSERT_OK(cst_vocab_load_view(g, &v, err, sizeof err));
        ASSERT(cst_vocab_is_view(v) && !cst_vocab_is_view(c));
        ASSERT(cst_vocab_mem_bytes(v) < cst_vocab_mem_bytes(c));
        ASSERT_EQ(cst_vocab_n_tokens(v), cst_vocab_n_tokens(c));
        ASSERT_EQ(cst_vocab_bos(v), cst_vocab_bos(c));
        ASSERT_EQ(cst_vocab_eos(v), cst_vocab_eos(c));
        ASSERT_EQ(cst_vocab_eot(v), cst_vocab_eot(c));
        const cst_token *ev, *ec;
        size_t nev = cst_vocab_eog_ids(v, &ev), nec = cst_vocab_eog_ids(c, &ec);
        ASSERT(nev == nec && memcmp(ev, ec, nev * sizeof *ev) == 0);
        for (cst_token t = 0; t < cst_vocab_n_tokens(c); t++) {
            const char *ct = cst_vocab_text(c, t);
            cst_strv vt = cst_vocab_text_view(v, t);
            ASSERT_MSG(ct && vt.len == strlen(ct) && memcmp(vt.ptr, ct, vt.len) == 0, "%s: token %d", name, t);
            ASSERT_EQ(cst_vocab_attr(v, t), cst_vocab_attr(c, t));
            ASSERT_EQ(cst_vocab_find(v, vt.ptr, vt.len), cst_vocab_find(c, ct, strlen(ct)));
            const char *z = cst_vocab_text(v, t); /* NUL-terminated for special tokens */
            bool special = cst_vocab_attr(c, t) & (CST_TOKEN_ATTR_CONTROL | CST_TOKEN_ATTR_USER_DEFINED |
                                                   CST_TOKEN_ATTR_UNKNOWN);
            if (special || t == cst_vocab_bos(c) || t == cst_vocab_eos(c) || t == cst_vocab_eot(c))
                ASSERT_MSG(z && strcmp(z, ct) == 0, "%s: token %d", name, t);
            else ASSERT(z == NULL || strcmp(z, ct) == 0);
            char a[512], b[512];
            size_t na = cst_token_to_piece(v, t, a, sizeof a, true), nb = cst_token_to_piece(c, t, b, sizeof b, true);
            ASSERT(na == nb && (na > sizeof a || memcmp(a, b, na) == 0));
        }
        ASSERT_EQ(run_golden_v(name, v), 0);
        cst_vocab_free(v);
        cst_gguf_close(g);
    }
}

TEST(vocab_memory_bound) {
    /* the vocab's own accounting (the tables and texts it allocated) */
    const char *names[] = {"llama3", "qwen3"};
    for (size_t k = 0; k < 2; k++) {
        cst_vocab *v = need_vocab(names[k]);
        size_t bytes = cst_vocab_mem_bytes(v);
        fprintf(stderr, "  %s: %.2f MiB\n", names[k], bytes / 1048576.0);
        ASSERT_MSG(bytes < 10u << 20, "%s: %zu bytes", names[k], bytes);
        ASSERT(bytes > (size_t)cst_vocab_n_tokens(v) * 8); /* at least ids and offsets are counted */
    }
}

/* Merges are keyed on string ids: a side that is not a token ("ab" here) still
 * takes part, a later duplicate token text takes over the id, and symbols
 * that end up as non-tokens fall back to one-byte tokens. */
TEST(synthetic_bpe_merges_over_non_tokens) {
    const char *toks[] = {"a", "b", "c", "abc", "a", "x y"};
    int32_t types[] = {1, 1, 1, 1, 1, 1};
    const char *merges[] = {"a b", "ab c", "a b", "x", "q ", "zz zz"};
    for (int view = 0; view < 2; view++) {
        cst_gguf_writer *w = cst_gguf_writer_new();
        cst_gguf_set_str(w, "general.architecture", "llama");
        cst_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
        cst_gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2");
        cst_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 6);
        cst_gguf_set_arr(w, "tokenizer.ggml.token_type", CST_GGUF_INT32, types, 6);
        cst_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 6);
        char path[512], err[256];
        snprintf(path, sizeof path, "%s/bpe_extras.gguf", cst_test_tmpdir());
        ASSERT_OK(cst_gguf_write(w, path, err, sizeof err));
        cst_gguf_writer_free(w);
        cst_gguf *g = NULL;
        ASSERT_OK(cst_gguf_open(path, &g, err, sizeof err));
        cst_vocab *v = NULL;
        ASSERT_OK(view ? cst_vocab_load_view(g, &v, err, sizeof err) : cst_vocab_load(g, &v, err, sizeof err));
        if (!view) {
            cst_gguf_close(g);
            g = NULL;
        }
        ASSERT_EQ(cst_vocab_find(v, "a", 1), 4); /* the later duplicate */
        ASSERT_EQ(cst_vocab_find(v, "ab", 2), -1); /* a merge side, not a token */
        cst_token *ids = NULL;
        size_t n = 0;
        ASSERT_OK(cst_tokenize(v, "abc", 3, false, false, &ids, &n));
        ASSERT_EQ(n, 1);
        ASSERT_EQ(ids[0], 3); /* a+b -> "ab" (not a token), ab+c -> "abc" */
        free(ids);
        ASSERT_OK(cst_tokenize(v, "abab", 4, false, false, &ids, &n));
        ASSERT_EQ(n, 4); /* "ab" "ab" stay non-tokens: byte by byte */
        ASSERT(ids[0] == 4 && ids[1] == 1 && ids[2] == 4 && ids[3] == 1);
        free(ids);
        char *out = NULL;
        cst_token seq[] = {3, 0, 5};
        ASSERT_OK(cst_detokenize(v, seq, 3, &out, NULL));
        ASSERT_STREQ(out, "abcax[UNK_BYTE_0x20x y]y"); /* a space is not in the byte map */
        free(out);
        cst_vocab_free(v);
        cst_gguf_close(g);
    }
}
