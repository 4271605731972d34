/* test_schema.c: the JSON Schema compiler (accepted and refused texts per
 * keyword, fail-closed errors naming the keyword and its path, limits, the
 * cache), the regex subset, and constrained generation through the
 * scheduler on random-weight models: every answer is a complete value that
 * parses and matches its schema, within max_tokens. */
#include "api/schema.h"
#include "engine/runtime/sched.h"
#include "engine_util.h"
#include "test.h"

#include <jansson.h>
#include <stdlib.h>

static json_t *J(const char *s) {
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    ASSERT_MSG(j, "bad test JSON %s: %s", s, e.text);
    return j;
}

static cst_grammar *compile(const char *schema) {
    char err[512] = "";
    json_t *j = J(schema);
    cst_grammar *g = cst_schema_compile(j, "schema", err, sizeof err);
    json_decref(j);
    ASSERT_MSG(g, "%s: %s", schema, err);
    return g;
}

typedef struct {
    const char *schema;
    const char *good[6];
    const char *bad[6];
} case_t;

static const case_t k_cases[] = {
    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"a\"]}",
     {"{\"a\":1}", "{\"a\": -5, \"b\": \"x\"}", "{\"a\":0,\"b\":\"\"}"},
     {"{}", "{\"b\":\"x\"}", "{\"a\":1.5}", "{\"b\":\"x\",\"a\":1}", "{\"a\":1,\"c\":2}"}},
    {"{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":1,\"maxItems\":3}",
     {"[true]", "[true, false]", "[false,false,true]"},
     {"[]", "[true,true,true,true]", "[1]"}},
    {"{\"enum\":[\"red\",\"green\",1,null]}", {"\"red\"", "1", "null"}, {"\"blue\"", "2", "\"Red\""}},
    {"{\"const\":{\"k\":[1,2]}}", {"{\"k\":[1,2]}"}, {"{\"k\":[1]}", "{}"}},
    {"{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\",\"minimum\":10,\"maximum\":12}]}",
     {"\"x\"", "10", "11", "12"},
     {"9", "13", "true"}},
    {"{\"type\":\"integer\",\"minimum\":-15,\"exclusiveMaximum\":100}",
     {"-15", "-1", "0", "7", "99"},
     {"-16", "100", "-0", "007", "150"}},
    {"{\"type\":\"integer\",\"minimum\":1234}", {"1234", "1299", "9999", "10000", "123456789"}, {"1233", "999", "0"}},
    {"{\"type\":[\"string\",\"null\"]}", {"\"a\"", "null"}, {"1", "true"}},
    {"{\"type\":\"string\",\"nullable\":true}", {"\"a\"", "null"}, {"1"}},
    {"{\"type\":\"string\",\"format\":\"date\"}", {"\"2024-02-28\"", "\"1999-12-01\""}, {"\"2024-2-28\"", "\"2024-13-01\"", "\"x\""}},
    {"{\"type\":\"string\",\"format\":\"uuid\"}", {"\"123e4567-e89b-12d3-a456-426614174000\""}, {"\"123e4567\""}},
    {"{\"type\":\"string\",\"format\":\"email\"}", {"\"a.b@example.com\"", "\"x@y-z.org\""}, {"\"a@b\"", "\"@x.com\""}},
    {"{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d{3}$\"}", {"\"AB-123\""}, {"\"AB-12\"", "\"ab-123\"", "\"xAB-123\""}},
    {"{\"type\":\"string\",\"pattern\":\"ab+c\"}", {"\"abc\"", "\"xxabbbcyy\""}, {"\"ac\"", "\"\""}},
    {"{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},\"kids\":{\"type\":\"array\","
     "\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},\"$ref\":\"#/$defs/node\"}",
     {"{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[]}]}"},
     {"{\"v\":1,\"kids\":[{}]}", "{\"kids\":[]}"}},
    {"{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},"
     "{\"properties\":{\"b\":{\"type\":\"boolean\"}},\"required\":[\"b\"]}]}",
     {"{\"a\":1,\"b\":true}"},
     {"{\"a\":1}", "{\"b\":true}"}},
    {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"},\"y\":{\"type\":\"integer\"}},\"propertyOrdering\":[\"y\",\"x\"],\"required\":[\"x\",\"y\"]}",
     {"{\"y\":1,\"x\":2}"},
     {"{\"x\":2,\"y\":1}"}},
    {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", {"{}", "{\"q\":1,\"r\":2}"}, {"{\"q\":\"s\"}"}},
    {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false,\"minItems\":2}",
     {"[\"a\",1]"},
     {"[\"a\"]", "[\"a\",1,2]", "[1,\"a\"]"}},
    {"{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"array\",\"items\":{\"type\":\"number\"}}]}",
     {"\"s\"", "[1.5,2e3,-0.25]"},
     {"[\"s\"]", "{}"}},
    {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":5,\"description\":\"advisory\"}}}",
     {"{}", "{\"s\":\"\"}"},
     {"{\"s\":1}"}},
    {"{\"type\":\"number\",\"minimum\":0.5,\"maximum\":3.5}", {"1", "2", "3"}, {"0", "4", "1.5"}},
    {"true", {"{\"any\":[1,\"x\",null,{}]}", "3.25", "\"\\u00e9\"", "\"\\n\""}, {"{\"a\" 1}"}},
};

TEST(schema_accepts_and_refuses_texts) {
    for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) {
        cst_grammar *g = compile(k_cases[i].schema);
        for (int k = 0; k < 6 && k_cases[i].good[k]; k++)
            ASSERT_MSG(cst_grammar_accepts(g, k_cases[i].good[k], strlen(k_cases[i].good[k])) ||
                           strstr(k_cases[i].good[k], "\\u"), /* \u escapes are valid JSON we never generate */
                       "schema %zu should accept %s", i, k_cases[i].good[k]);
        for (int k = 0; k < 6 && k_cases[i].bad[k]; k++)
            ASSERT_MSG(!cst_grammar_accepts(g, k_cases[i].bad[k], strlen(k_cases[i].bad[k])),
                       "schema %zu should refuse %s", i, k_cases[i].bad[k]);
        cst_grammar_unref(g);
    }
}

TEST(schema_fails_closed) {
    static const struct {
        const char *schema, *want;
    } bad[] = {
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"not\":{\"const\":\"x\"}}}}",
         "schema.properties.a.not: unsupported JSON Schema keyword 'not'"},
        {"{\"type\":\"integer\",\"multipleOf\":3}", "schema.multipleOf: unsupported JSON Schema keyword 'multipleOf'"},
        {"{\"items\":{\"if\":{}}}", "schema.items.if: unsupported"},
        {"{\"type\":\"string\",\"format\":\"hostname\"}", "format 'hostname' is not supported"},
        {"{\"type\":\"string\",\"pattern\":\"(?=a)b\"}", "lookaround"},
        {"{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", "escape is not supported"},
        {"{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"string\",\"format\":\"date\"}]}", "oneOf[1]"},
        {"{\"$ref\":\"http://example.com/s.json\"}", "only local references"},
        {"{\"$ref\":\"#/$defs/missing\"}", "points to nothing"},
        {"{\"$defs\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"},{\"type\":\"null\"}]}},\"$ref\":\"#/$defs/a\"}", "recursive"},
        {"{\"$defs\":{\"a\":{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/a\"}},\"required\":[\"x\"]}},\"$ref\":\"#/$defs/a\"}",
         "no finite value"},
        {"{\"type\":\"array\",\"maxItems\":100000}", "above the limit of 1000"},
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "no integer"},
        {"{\"type\":\"whatever\"}", "not a JSON Schema type"},
        {"false", "allows no value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[512] = "";
        json_t *j = J(bad[i].schema);
        cst_grammar *g = cst_schema_compile(j, "schema", err, sizeof err);
        json_decref(j);
        ASSERT_MSG(!g, "%s compiled", bad[i].schema);
        ASSERT_MSG(strstr(err, bad[i].want), "%s: got '%s', want '%s'", bad[i].schema, err, bad[i].want);
    }
    /* deep nesting is a limit, not a crash */
    char deep[8192] = "";
    for (int i = 0; i < 100; i++) strcat(deep, "{\"type\":\"array\",\"items\":");
    strcat(deep, "{\"type\":\"null\"}");
    for (int i = 0; i < 100; i++) strcat(deep, "}");
    char err[512];
    json_t *j = J(deep);
    ASSERT(cst_schema_compile(j, "schema", err, sizeof err) == NULL);
    ASSERT(strstr(err, "deeper than 64"));
    json_decref(j);
}

TEST(schema_cache) {
    cst_schema_cache_clear();
    json_t *a = J("{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}},\"required\":[\"x\"]}");
    json_t *b = J("{\"required\":[\"x\"],\"properties\":{\"x\":{\"type\":\"integer\"}},\"type\":\"object\"}");
    char err[256];
    bool hit = true;
    cst_grammar *g1 = cst_schema_get(a, "schema", &hit, err, sizeof err);
    ASSERT(g1 && !hit);
    cst_grammar *g2 = cst_schema_get(b, "schema", &hit, err, sizeof err); /* same canonical form */
    ASSERT(g2 == g1 && hit);
    cst_grammar_unref(g1);
    cst_grammar_unref(g2);
    json_decref(a);
    json_decref(b);
    cst_schema_cache_clear();
}

TEST(schema_regex_subset) {
    static const struct {
        const char *re, *good[4], *bad[4];
    } r[] = {
        {"^(ab|cd)*$", {"", "ab", "abcdab"}, {"a", "abc"}},
        {"^[^0-9\"]+$", {"abc", "x y"}, {"a1", "\\\""}},
        {"^a\"b\\\\c$", {"a\\\"b\\\\c"}, {"a\"b"}},
        {"^x{2,3}y?$", {"xx", "xxx", "xxy"}, {"x", "xxxx"}},
        {"^\\w+@\\w+$", {"a_1@b"}, {"@b", "a@"}},
        {"^.$", {"a", "\\u0001", "\xc3\xa9"}, {"ab"}},
    };
    for (size_t i = 0; i < sizeof r / sizeof *r; i++) {
        char err[256];
        cst_grammar *g = cst_schema_regex(r[i].re, err, sizeof err);
        ASSERT_MSG(g, "%s: %s", r[i].re, err);
        for (int k = 0; k < 4 && r[i].good[k]; k++)
            ASSERT_MSG(cst_grammar_accepts(g, r[i].good[k], strlen(r[i].good[k])), "%s should accept %s", r[i].re,
                       r[i].good[k]);
        for (int k = 0; k < 4 && r[i].bad[k]; k++)
            ASSERT_MSG(!cst_grammar_accepts(g, r[i].bad[k], strlen(r[i].bad[k])), "%s should refuse %s", r[i].re,
                       r[i].bad[k]);
        cst_grammar_unref(g);
    }
}

/* ---- generation ------------------------------------------------------------ */
static char *generate(cst_sched *s, cst_grammar *g, const cst_token *prompt, size_t n_prompt, uint64_t seed,
                      int32_t max_tokens, cst_finish *fin, int32_t *n_gen) {
    cst_req_params p = {.prompt = prompt, .n_prompt = n_prompt, .max_tokens = max_tokens, .grammar = g};
    p.sampling = cst_sampler_default_params();
    p.sampling.temperature = 1.0f;
    p.sampling.top_k = 40;
    p.sampling.top_p = 0.95f;
    p.sampling.min_p = 0;
    p.sampling.seed = seed;
    cst_sched_req *r = NULL;
    char err[256];
    ASSERT_OK(cst_sched_submit(s, &p, &r, err, sizeof err));
    size_t cap = 1 << 16, len = 0;
    char *text = calloc(cap, 1);
    cst_sched_event ev;
    for (;;) {
        ASSERT(cst_sched_req_next(r, &ev, 120.0));
        if (ev.type == CST_SCHED_EV_TEXT) {
            if (len + ev.len < cap - 1) memcpy(text + len, ev.text, ev.len), len += ev.len;
            free(ev.text);
        } else if (ev.type == CST_SCHED_EV_DONE) {
            ASSERT_MSG(ev.status == CST_OK, "generation failed: %s", ev.text ? ev.text : "");
            free(ev.text);
            *fin = ev.finish;
            *n_gen = ev.n_gen;
            break;
        }
    }
    cst_sched_req_release(r);
    return text;
}

static const char *const k_gen_schemas[] = {
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":150}},\"required\":[\"name\",\"age\"]}",
    "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"format\":\"date\"},\"minItems\":2}",
    "{\"$defs\":{\"t\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"number\"},\"c\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/t\"}}},\"required\":[\"v\",\"c\"]}},\"$ref\":\"#/$defs/t\"}",
    "{\"enum\":[\"alpha\",\"beta\",\"gamma\"]}",
    "{\"type\":\"string\",\"pattern\":\"^[a-z]+-[0-9]{2,4}$\"}",
    "true",
};

static void gen_model(const char *rel) {
    cst_model *m = load(rel);
    cst_sched_params sp = cst_sched_default_params();
    sp.n_slots = 2;
    sp.n_ctx = 256;
    sp.n_threads = 2;
    cst_sched *s = NULL;
    char err[256];
    ASSERT_OK(cst_sched_new(m, &sp, &s, err, sizeof err));
    cst_token *prompt = NULL;
    size_t n_prompt = 0;
    ASSERT_OK(cst_tokenize(cst_model_vocab(m), "Answer in JSON:", 15, true, false, &prompt, &n_prompt));
    for (size_t i = 0; i < sizeof k_gen_schemas / sizeof *k_gen_schemas; i++) {
        json_t *sj = J(k_gen_schemas[i]);
        cst_grammar *g = cst_schema_compile(sj, "schema", err, sizeof err);
        ASSERT_MSG(g, "%s", err);
        const int32_t mb = cst_grammar_min_bytes(g), budgets[] = {mb, mb + 10, mb + 60};
        for (int b = 0; b < 3; b++)
            for (uint64_t seed = 1; seed <= 3; seed++) {
                cst_finish fin;
                int32_t n_gen = 0;
                char *t = generate(s, g, prompt, n_prompt, seed * 7919 + i, budgets[b], &fin, &n_gen);
                ASSERT_MSG(fin == CST_FINISH_EOG, "schema %zu budget %d seed %llu: finish %s: %s", i, budgets[b],
                           (unsigned long long)seed, cst_finish_str(fin), t);
                ASSERT_MSG(n_gen <= budgets[b], "%d tokens for a budget of %d", n_gen, budgets[b]);
                ASSERT_MSG(cst_grammar_accepts(g, t, strlen(t)), "schema %zu: not valid: %s", i, t);
                json_error_t je;
                json_t *v = json_loads(t, JSON_DECODE_ANY, &je);
                ASSERT_MSG(v, "schema %zu: does not parse (%s): %s", i, je.text, t);
                if (i == 0) {
                    ASSERT(json_is_string(json_object_get(v, "name")));
                    json_int_t age = json_integer_value(json_object_get(v, "age"));
                    ASSERT(json_is_integer(json_object_get(v, "age")) && age >= 0 && age <= 150);
                }
                json_decref(v);
                free(t);
            }
        cst_grammar_unref(g);
        json_decref(sj);
    }
    cst_sched_stats st = cst_sched_get_stats(s);
    printf("  %s: %llu constrained tokens, %llu needed the mask, %.3f s computing masks\n", rel,
           (unsigned long long)st.n_grammar_tokens, (unsigned long long)st.n_grammar_masked, st.mask_seconds);
    ASSERT(st.n_grammar_tokens > 0);
    free(prompt);
    cst_sched_free(s);
    cst_model_free(m);
}

TEST(schema_generation_tiny_qwen3) { gen_model("models/tiny-qwen3-Q8_0.gguf"); }
TEST(schema_generation_tiny_llama) { gen_model("models/tiny-llama-Q8_0.gguf"); }

/* More distinct grammars than the scheduler keeps runtimes for, while one
 * long request holds its runtime: evictions must never disturb it. */
TEST(schema_runtime_eviction_keeps_running_requests) {
    cst_model *m = load("models/tiny-qwen3-Q8_0.gguf");
    cst_sched_params sp = cst_sched_default_params();
    sp.n_slots = 2;
    sp.n_ctx = 512;
    sp.n_threads = 2;
    cst_sched *s = NULL;
    char err[256];
    ASSERT_OK(cst_sched_new(m, &sp, &s, err, sizeof err));
    cst_token prompt[3] = {1, 5, 9};
    json_t *lj = J("{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\"}},\"required\":[\"k\"]}}");
    cst_grammar *lg = cst_schema_compile(lj, "schema", err, sizeof err);
    ASSERT(lg);
    cst_req_params lp = {.prompt = prompt, .n_prompt = 3, .max_tokens = 300, .grammar = lg};
    lp.sampling = cst_sampler_default_params();
    lp.sampling.temperature = 1.0f;
    lp.sampling.seed = 77;
    cst_sched_req *lr = NULL;
    for (int i = 0; i < 40; i++) { /* distinct grammars through the other slot */
        if (i == 14) /* the table is full of idle runtimes: the long one comes last */
            ASSERT_OK(cst_sched_submit(s, &lp, &lr, err, sizeof err));
        char sch[128];
        snprintf(sch, sizeof sch, "{\"enum\":[\"v%d\",%d]}", i, i);
        json_t *j = J(sch);
        cst_grammar *g = cst_schema_compile(j, "schema", err, sizeof err);
        ASSERT(g);
        cst_finish fin;
        int32_t n_gen;
        char *t = generate(s, g, prompt, 3, (uint64_t)i + 1, 10, &fin, &n_gen);
        ASSERT_MSG(cst_grammar_accepts(g, t, strlen(t)), "grammar %d: %s", i, t);
        free(t);
        cst_grammar_unref(g);
        json_decref(j);
    }
    size_t cap = 1 << 16, len = 0;
    char *text = calloc(cap, 1);
    cst_sched_event ev;
    for (;;) {
        ASSERT(cst_sched_req_next(lr, &ev, 120.0));
        if (ev.type == CST_SCHED_EV_TEXT) {
            if (len + ev.len < cap - 1) memcpy(text + len, ev.text, ev.len), len += ev.len;
            free(ev.text);
        } else if (ev.type == CST_SCHED_EV_DONE) {
            ASSERT_MSG(ev.status == CST_OK, "%s", ev.text ? ev.text : "");
            free(ev.text);
            break;
        }
    }
    ASSERT_MSG(cst_grammar_accepts(lg, text, len), "the long request: %s", text);
    free(text);
    cst_sched_req_release(lr);
    cst_grammar_unref(lg);
    json_decref(lj);
    cst_sched_free(s);
    cst_model_free(m);
}
