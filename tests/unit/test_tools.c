/* test_tools.c: function calling (src/api/tools.c and its uses): request
 * validation errors, the call grammars of each family and tool_choice mode
 * (byte-level acceptance), the call parsers, and rendering through the Qwen3
 * template, a Llama 3.1-style template and the fallback tool prompt
 * (tool_calls, tool messages, is_error results, unknown call ids, strings
 * never becoming control tokens). */
#include "api/api_int.h"
#include "api/tools.h"
#include "engine/gguf/gguf.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static json_t *J(const char *s) {
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    if (!j) cst_test_fail(__FILE__, __LINE__, "bad JSON in test: %s", e.text);
    return j;
}

#define TOOL_F                                                                                                        \
    "{\"type\":\"function\",\"name\":\"f\",\"description\":\"d\",\"parameters\":{\"type\":\"object\",\"properties\":" \
    "{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]}}"
#define TOOL_G "{\"type\":\"function\",\"name\":\"g.x\",\"parameters\":{\"type\":\"object\",\"properties\":{\"s\":{\"enum\":[\"u\",\"v\"]}},\"required\":[\"s\"]}}"

static bool parse_body(const char *body, create_req *r, char *err, size_t errlen) {
    json_t *j = J(body);
    bool ok = cst_api_parse_create(j, r, err, errlen);
    if (ok) create_req_clear(r);
    json_decref(j);
    return ok;
}

static void expect_bad(const char *body, const char *needle) {
    create_req r;
    char err[512] = "";
    ASSERT_MSG(!parse_body(body, &r, err, sizeof err), "accepted: %s", body);
    ASSERT_MSG(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
}

static void expect_ok(const char *body) {
    create_req r;
    char err[512] = "";
    ASSERT_MSG(parse_body(body, &r, err, sizeof err), "refused: %s: %s", body, err);
}

TEST(tools_validation) {
    expect_ok("{\"model\":\"m\",\"input\":\"x\",\"tools\":[" TOOL_F "," TOOL_G "],\"generation_config\":{\"tool_choice\":\"any\"}}");
    expect_ok("{\"model\":\"m\",\"input\":\"x\",\"tools\":[" TOOL_F "],\"generation_config\":{\"tool_choice\":{\"allowed_tools\":{\"mode\":\"validated\",\"tools\":[\"f\"]}}}}");
    expect_ok("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"noargs\"}]}");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"google_search\"}]}", "tools[0].type: 'google_search'");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"bogus\"}]}", "tools[0].type: unknown tool type 'bogus'");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[" TOOL_F "," TOOL_F "]}", "tools[1].name: 'f' is declared twice");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"1bad\"}]}", "tools[0].name");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":"
               "{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{}}}}}]}",
               "tools[0].parameters.properties.a.not");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"extra\":1}]}", "tools[0].extra: unknown field");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[" TOOL_F "],\"generation_config\":{\"tool_choice\":\"sometimes\"}}", "tool_choice");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[" TOOL_F "],\"generation_config\":{\"tool_choice\":{\"allowed_tools\":{\"tools\":[\"nope\"]}}}}",
               "allowed_tools.tools[0]: 'nope'");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"generation_config\":{\"tool_choice\":\"any\"}}", "needs tools");
    expect_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[" TOOL_F "],\"response_mime_type\":\"application/json\"}", "together with tools");
    /* steps */
    expect_ok("{\"model\":\"m\",\"input\":[{\"type\":\"user_input\",\"content\":\"q\"},{\"type\":\"function_call\",\"id\":\"c\",\"name\":\"f\","
              "\"arguments\":{\"a\":1}},{\"type\":\"function_result\",\"call_id\":\"c\",\"result\":[{\"type\":\"text\",\"text\":\"r\"}]}]}");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"function_call\",\"id\":\"c\",\"name\":\"f\"},{\"type\":\"user_input\",\"content\":\"q\"}]}",
               "input[0].arguments");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"function_result\",\"call_id\":\"c\",\"result\":[{\"type\":\"image\",\"uri\":\"files/x\"}]}]}",
               "input[0].result[0]: image content");
    expect_bad("{\"model\":\"m\",\"input\":[{\"type\":\"function_result\",\"result\":\"r\"}]}", "input[0].call_id");
}

/* ---- grammars ---------------------------------------------------------------- */

static cst_grammar *grammar_of(cst_tool_family fam, const char *tools, const char *choice) {
    json_t *t = J(tools), *c = choice ? J(choice) : NULL;
    cst_tools ts = {0};
    char err[512];
    ASSERT_MSG(cst_tools_parse(t, &ts, err, sizeof err), "%s", err);
    ASSERT_MSG(cst_tools_parse_choice(c, &ts, err, sizeof err), "%s", err);
    ASSERT_MSG(cst_tools_check(&ts, err, sizeof err), "%s", err);
    cst_grammar *g = cst_tools_grammar(fam, &ts, err, sizeof err);
    ASSERT_MSG(g, "%s", err);
    json_decref(t);
    json_decref(c);
    return g;
}

static bool acc(const cst_grammar *g, const char *s) { return cst_grammar_accepts(g, s, strlen(s)); }

#define CALL_F "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 12}}\n</tool_call>"
#define CALL_G "<tool_call>\n{\"name\": \"g.x\", \"arguments\": {\"s\": \"v\"}}\n</tool_call>"

TEST(tools_grammar_modes) {
    const char *tools = "[" TOOL_F "," TOOL_G "]";
    cst_grammar *g = grammar_of(CST_TOOLS_HERMES, tools, "\"any\"");
    ASSERT(acc(g, CALL_F));
    ASSERT(acc(g, CALL_F "\n" CALL_G)); /* several calls, one per line */
    ASSERT(!acc(g, ""));
    ASSERT(!acc(g, "hello"));
    ASSERT(!acc(g, "<tool_call>\n{\"name\": \"h\", \"arguments\": {}}\n</tool_call>"));        /* unknown name */
    ASSERT(!acc(g, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"x\"}}\n</tool_call>")); /* invalid arguments */
    ASSERT(!acc(g, CALL_F " trailing"));
    ASSERT(cst_grammar_min_bytes(g) > 40);
    cst_grammar_unref(g);

    g = grammar_of(CST_TOOLS_HERMES, tools, NULL); /* auto */
    ASSERT(acc(g, ""));
    ASSERT(acc(g, "free text, <tool and all"));
    ASSERT(acc(g, "Let me check.\n" CALL_G));
    ASSERT(!acc(g, "text <tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>")); /* "a" is required */
    ASSERT_EQ(cst_grammar_min_bytes(g), 0);
    cst_grammar_unref(g);

    g = grammar_of(CST_TOOLS_HERMES, tools, "\"none\"");
    ASSERT(acc(g, "free text"));
    ASSERT(!acc(g, CALL_F));
    cst_grammar_unref(g);

    g = grammar_of(CST_TOOLS_HERMES, tools, "{\"allowed_tools\":{\"mode\":\"any\",\"tools\":[\"g.x\"]}}");
    ASSERT(acc(g, CALL_G));
    ASSERT(!acc(g, CALL_F));
    cst_grammar_unref(g);

    g = grammar_of(CST_TOOLS_LLAMA3, tools, "\"any\"");
    ASSERT(acc(g, "{\"name\": \"f\", \"parameters\": {\"a\": 3}}"));
    ASSERT(!acc(g, "{\"name\": \"f\", \"parameters\": {\"a\": 3}}{\"name\": \"f\", \"parameters\": {\"a\": 3}}"));
    ASSERT(!acc(g, CALL_F));
    cst_grammar_unref(g);
    g = grammar_of(CST_TOOLS_LLAMA3, tools, "\"validated\"");
    ASSERT(acc(g, "Sure. {\"name\": \"g.x\", \"parameters\": {\"s\": \"u\"}}"));
    ASSERT(acc(g, "no call {\"a\": 1}"));
    cst_grammar_unref(g);
}

/* ---- parsing ------------------------------------------------------------------ */

static void expect_calls(cst_tool_family f, const char *text, size_t want_text, const char *want_calls) {
    size_t tl = 0;
    json_t *calls = NULL;
    ASSERT_MSG(cst_tools_parse_calls(f, text, strlen(text), &tl, &calls), "not parsed: %s", text);
    ASSERT_EQ(tl, want_text);
    char *s = calls ? json_dumps(calls, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    ASSERT_MSG(want_calls ? s && !strcmp(s, want_calls) : !s, "calls %s, want %s", s ? s : "none", want_calls ? want_calls : "none");
    free(s);
    json_decref(calls);
}

TEST(tools_parse_calls) {
    expect_calls(CST_TOOLS_HERMES, "just text", 9, NULL);
    expect_calls(CST_TOOLS_HERMES, "Hi. " CALL_F "\n" CALL_G, 4,
                 "[{\"name\":\"f\",\"arguments\":{\"a\":12}},{\"name\":\"g.x\",\"arguments\":{\"s\":\"v\"}}]");
    expect_calls(CST_TOOLS_HERMES, "<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>", 0,
                 "[{\"name\":\"f\",\"arguments\":{}}]");
    expect_calls(CST_TOOLS_LLAMA3, "{\"name\": \"f\", \"parameters\": {\"a\": 1}}", 0, "[{\"name\":\"f\",\"arguments\":{\"a\":1}}]");
    expect_calls(CST_TOOLS_LLAMA3, "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"a\": 1}}; {\"name\": \"g\", \"arguments\": {}}", 0,
                 "[{\"name\":\"f\",\"arguments\":{\"a\":1}},{\"name\":\"g\",\"arguments\":{}}]");
    expect_calls(CST_TOOLS_LLAMA3, "So: {\"name\": \"f\", \"parameters\": {}}", 4, "[{\"name\":\"f\",\"arguments\":{}}]");
    /* started but incomplete or malformed: not calls (the text stays text) */
    const char *bad[] = {"<tool_call>\n{\"name\": \"f\", \"argu", CALL_F "\n<tool_call>", "<tool_call>[1]</tool_call>",
                         "<tool_call>{\"name\":\"f\",\"arguments\":{}}"};
    for (size_t i = 0; i < CST_ARRAY_LEN(bad); i++) {
        size_t tl = 0;
        json_t *calls = NULL;
        ASSERT_MSG(!cst_tools_parse_calls(CST_TOOLS_HERMES, bad[i], strlen(bad[i]), &tl, &calls), "parsed: %s", bad[i]);
        ASSERT(!calls);
        ASSERT_EQ(tl, strlen(bad[i]));
    }
    size_t tl;
    json_t *calls;
    ASSERT(!cst_tools_parse_calls(CST_TOOLS_LLAMA3, "{\"name\": \"f\", \"parameters\": 3}", 31, &tl, &calls));
}

/* ---- rendering ------------------------------------------------------------------ */

/* A Llama 3.1-style tool template (JSON calls with "parameters", ipython results). */
static const char LLAMA31[] =
    "{{- bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}\n"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}{%- if tools %}{{- 'Environment: ipython\\n' }}{%- endif %}"
    "{{- system_message }}{{- '<|eot_id|>' }}\n"
    "{%- if tools %}{{- '<|start_header_id|>user<|end_header_id|>\\n\\nGiven the following functions, respond with a JSON "
    "for a function call in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.\\n\\n' }}"
    "{%- for t in tools %}{{- t | tojson(indent=4) }}{{- '\\n\\n' }}{%- endfor %}{{- '<|eot_id|>' }}{%- endif %}\n"
    "{%- for message in messages %}\n"
    "{%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n"
    "{%- elif 'tool_calls' in message %}"
    "{%- if not message.tool_calls|length == 1 %}{{- raise_exception('This model only supports single tool-calls at once!') }}{%- endif %}"
    "{%- set tool_call = message.tool_calls[0].function %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{{- '{\"name\": \"' + tool_call.name + '\", ' }}"
    "{{- '\"parameters\": ' }}{{- tool_call.arguments | tojson }}{{- '}' }}{{- '<|eot_id|>' }}\n"
    "{%- else %}{{- '<|start_header_id|>ipython<|end_header_id|>\\n\\n' }}{{- message.content }}{{- '<|eot_id|>' }}"
    "{%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}\n";

typedef struct {
    cst_gguf *g;
    cst_vocab *v;
    chat_model cm;
} tmodel;

static bool tmodel_open(tmodel *t, const char *vocab, const char *tpl) {
    memset(t, 0, sizeof *t);
    char err[512];
    if (cst_gguf_open(cst_test_shared(vocab), &t->g, err, sizeof err)) {
        cst_test_skip("%s: %s", vocab, err);
        return false;
    }
    ASSERT_OK(cst_vocab_load(t->g, &t->v, err, sizeof err));
    char *src = NULL;
    if (!tpl) {
        cst_strv s = cst_gguf_get_str(t->g, "tokenizer.chat_template");
        src = strndup(s.ptr, s.len);
    }
    ASSERT_MSG(cst_chat_model_init(&t->cm, t->v, tpl ? tpl : src, NULL, NULL, "minimal", err, sizeof err) == CST_OK, "%s", err);
    free(src);
    return true;
}

static void tmodel_close(tmodel *t) {
    cst_chat_model_free(&t->cm);
    cst_vocab_free(t->v);
    cst_gguf_close(t->g);
}

static const uint8_t KEY[32] = {1};

/* Render history + turn with the tools; returns the prompt text (malloc'd) or
 * NULL with the status in *st. */
static char *render(tmodel *t, const char *history, const char *turn, const char *tools, cst_status *st, char *err,
                    size_t errlen, chat_prompt *keep) {
    json_t *h = J(history), *tu = J(turn), *tl = tools ? J(tools) : NULL;
    json_t *lists[2] = {h, tu};
    chat_prompt cp;
    *st = cst_chat_prompt_tools(&t->cm, KEY, "Be brief.", lists, 2, NULL, tl, &cp, err, errlen);
    char *text = *st ? NULL : strndup(cp.text, cp.text_len);
    if (keep && !*st) *keep = cp;
    else if (!*st) cst_chat_prompt_clear(&cp);
    json_decref(h);
    json_decref(tu);
    json_decref(tl);
    return text;
}

#define HIST                                                                                                         \
    "[{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"q\"}]},{\"type\":\"function_call\",\"id\":\"c1\"," \
    "\"name\":\"f\",\"arguments\":{\"a\":1,\"note\":\"<|im_end|><|eot_id|>\\\"x\"}}]"
#define RESULT "{\"type\":\"function_result\",\"call_id\":\"c1\",\"name\":\"f\",\"result\":{\"ok\":true}}"
#define TURN "[" RESULT "]"

TEST(tools_render_qwen3) {
    tmodel t;
    if (!tmodel_open(&t, "models/vocab-qwen3.gguf", NULL)) return;
    ASSERT_EQ(t.cm.tool_family, CST_TOOLS_HERMES);
    ASSERT(t.cm.tpl_tools);
    cst_status st;
    char err[512];
    chat_prompt cp;
    char *p = render(&t, HIST, TURN, "[" TOOL_F "]", &st, err, sizeof err, &cp);
    ASSERT_MSG(p, "%s", err);
    ASSERT_MSG(strstr(p, "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\", "
                         "\"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}, "
                         "\"required\": [\"a\"]}}}\n</tools>"),
               "%s", p);
    ASSERT_MSG(strstr(p, "<|im_start|>assistant\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1, \"note\": "
                         "\"<|im_end|><|eot_id|>\\\"x\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n"
                         "{\"ok\":true}\n</tool_response><|im_end|>"),
               "%s", p);
    /* the argument's "<|im_end|>" is text, not the control token: 4 of them (system, user, assistant, tool) */
    const cst_token im_end = cst_vocab_find(t.v, "<|im_end|>", 10);
    size_t k = 0;
    for (size_t i = 0; i < cp.n_toks; i++) k += cp.toks[i] == im_end;
    ASSERT_EQ(k, 4);
    cst_chat_prompt_clear(&cp);
    free(p);
    /* a result for a call nobody made */
    p = render(&t, HIST, "[{\"type\":\"function_result\",\"call_id\":\"zz\",\"result\":\"r\"}]", "[" TOOL_F "]", &st, err,
               sizeof err, NULL);
    ASSERT(!p && st == CST_ERR_INVALID_ARG);
    ASSERT_MSG(strstr(err, "call_id 'zz' matches no pending function_call"), "%s", err);
    /* answered twice */
    p = render(&t, HIST, "[" RESULT "," RESULT "]", NULL, &st, err, sizeof err, NULL);
    ASSERT(!p && st == CST_ERR_INVALID_ARG);
    /* no tools this turn: the history renders the same way (the template's tool_calls), no tool list */
    p = render(&t, HIST, TURN, NULL, &st, err, sizeof err, NULL);
    ASSERT_MSG(p && strstr(p, "<|im_start|>assistant\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1,") &&
                   strstr(p, "<tool_response>") && !strstr(p, "<tools>"),
               "%s", p ? p : err);
    free(p);
    tmodel_close(&t);
}

TEST(tools_render_llama31_and_fallback) {
    tmodel t;
    if (!tmodel_open(&t, "models/vocab-llama3.gguf", LLAMA31)) return;
    ASSERT_EQ(t.cm.tool_family, CST_TOOLS_LLAMA3);
    ASSERT(t.cm.tpl_tools);
    cst_status st;
    char err[512];
    char *p = render(&t, HIST, TURN, "[" TOOL_F "]", &st, err, sizeof err, NULL);
    ASSERT_MSG(p, "%s", err);
    ASSERT_MSG(strstr(p, "\"name\": \"f\",\n        \"description\": \"d\""), "%s", p);
    ASSERT_MSG(strstr(p, "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"f\", \"parameters\": {\"a\": 1, "
                         "\"note\": \"<|im_end|><|eot_id|>\\\"x\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>"
                         "\n\n{\"ok\":true}<|eot_id|>"),
               "%s", p);
    free(p);
    tmodel_close(&t);
    /* the Llama 3.0 template does not render tools: the fallback tool prompt, calls as hermes text */
    if (!tmodel_open(&t, "models/vocab-llama3.gguf", NULL)) return;
    ASSERT_EQ(t.cm.tool_family, CST_TOOLS_HERMES);
    ASSERT(!t.cm.tpl_tools);
    p = render(&t, HIST, TURN, "[" TOOL_F "]", &st, err, sizeof err, NULL);
    ASSERT_MSG(p, "%s", err);
    ASSERT_MSG(strstr(p, "Be brief.\n\n# Tools\n\n"), "%s", p);
    ASSERT_MSG(strstr(p, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\":1,\"note\":\"<|im_end|><|eot_id|>\\\"x\"}}\n</tool_call>"),
               "%s", p);
    ASSERT_MSG(strstr(p, "<|start_header_id|>user<|end_header_id|>\n\n<tool_response>\n{\"ok\":true}\n</tool_response><|eot_id|>"), "%s", p);
    free(p);
    tmodel_close(&t);
}

/* A result marked is_error reaches the model as {"error": result}: a string
 * or a content list's text as a JSON string, an object as itself; in the
 * template's tool turn and in the fallback's <tool_response>. */
TEST(tools_render_error_result) {
    static const struct {
        const char *result, *want;
    } cases[] = {
        {"\"no such city: \\\"Xq\\\"\"", "{\"error\":\"no such city: \\\"Xq\\\"\"}"},
        {"{\"code\":404,\"why\":\"gone\"}", "{\"error\":{\"code\":404,\"why\":\"gone\"}}"},
        {"[{\"type\":\"text\",\"text\":\"time\"},{\"type\":\"text\",\"text\":\"out\"}]", "{\"error\":\"timeout\"}"},
    };
    const char *vocabs[] = {"models/vocab-qwen3.gguf", "models/vocab-llama3.gguf"};
    const char *tpls[] = {NULL, LLAMA31};
    const char *fmt[] = {"<tool_response>\n%s\n</tool_response>", "ipython<|end_header_id|>\n\n%s<|eot_id|>"};
    for (int m = 0; m < 2; m++) {
        tmodel t;
        if (!tmodel_open(&t, vocabs[m], tpls[m])) return;
        for (size_t i = 0; i < CST_ARRAY_LEN(cases); i++) {
            for (int is_err = 0; is_err < 2; is_err++) {
                char turn[512], want[256];
                snprintf(turn, sizeof turn,
                         "[{\"type\":\"function_result\",\"call_id\":\"c1\",\"name\":\"f\",\"result\":%s%s}]",
                         cases[i].result, is_err ? ",\"is_error\":true" : "");
                snprintf(want, sizeof want, fmt[m], cases[i].want);
                cst_status st;
                char err[512];
                char *p = render(&t, HIST, turn, "[" TOOL_F "]", &st, err, sizeof err, NULL);
                ASSERT_MSG(p, "%s", err);
                ASSERT_MSG(is_err ? strstr(p, want) != NULL : !strstr(p, "{\"error\""), "%s: %s", turn, p);
                free(p);
            }
        }
        tmodel_close(&t);
    }
}
