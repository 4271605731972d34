/* tools.c: function calling (see tools.h): request validation, the call
 * grammar of a template family (grammar.h's trigger mode over the schema
 * compiler's rules for each tool's parameters), the call parser, and the
 * fallback tool prompt.
 */
#define _GNU_SOURCE /* memmem */
#include "tools.h"
#include "schema.h"
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* an error message in err, and false */
#define BAD(...) cst_fail(err, errlen, __VA_ARGS__)

static const char *server_tools[] = {"code_execution", "computer_use", "file_search", "google_maps", "google_search",
                                     "mcp_server",     "retrieval",    "url_context"};

bool cst_tools_valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 128) return false;
    if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '-'))
            return false;
    }
    return true;
}

bool cst_tools_parse(json_t *tools, cst_tools *out, char *err, size_t errlen) {
    out->tools = NULL;
    if (!tools || json_is_null(tools)) return true;
    if (!json_is_array(tools)) return BAD("tools: expected an array");
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        if (!json_is_object(t)) return BAD("tools[%zu]: expected an object", i);
        json_t *ty = json_object_get(t, "type");
        if (!json_is_string(ty)) return BAD("tools[%zu].type: required (a string)", i);
        const char *type = json_string_value(ty);
        if (strcmp(type, "function")) {
            for (size_t k = 0; k < sizeof server_tools / sizeof *server_tools; k++)
                if (!strcmp(type, server_tools[k]))
                    return BAD("tools[%zu].type: '%s' tools are not supported by this server (only function tools)", i,
                               type);
            return BAD("tools[%zu].type: unknown tool type '%s' (this server supports function tools)", i, type);
        }
        const char *k;
        json_t *v;
        json_object_foreach(t, k, v) {
            if (!strcmp(k, "type")) continue;
            if (!strcmp(k, "name")) {
                if (!json_is_string(v)) return BAD("tools[%zu].name: required (a string)", i);
                if (!cst_tools_valid_name(json_string_value(v)))
                    return BAD("tools[%zu].name: '%.140s' is not a valid function name (a letter or '_', then letters, "
                               "digits, '_', '.', ':' or '-'; at most 128)",
                               i, json_string_value(v));
            } else if (!strcmp(k, "description")) {
                if (!json_is_null(v) && !json_is_string(v)) return BAD("tools[%zu].description: expected a string", i);
            } else if (!strcmp(k, "parameters")) {
                if (json_is_null(v)) continue;
                if (!json_is_object(v)) return BAD("tools[%zu].parameters: expected a JSON Schema object", i);
                char path[64];
                snprintf(path, sizeof path, "tools[%zu].parameters", i);
                cst_grammar *g = cst_schema_get(v, path, NULL, err, errlen);
                if (!g) return false;
                cst_grammar_unref(g);
            } else {
                return BAD("tools[%zu].%s: unknown field", i, k);
            }
        }
        json_t *name = json_object_get(t, "name");
        if (!json_is_string(name)) return BAD("tools[%zu].name: required (a string)", i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(json_string_value(json_object_get(json_array_get(tools, j), "name")), json_string_value(name)))
                return BAD("tools[%zu].name: '%s' is declared twice (tools[%zu])", i, json_string_value(name), j);
    }
    out->tools = json_array_size(tools) ? tools : NULL;
    return true;
}

static bool mode_of(const char *s, cst_tool_mode *m) {
    static const char *names[] = {"auto", "any", "none", "validated"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *m = (cst_tool_mode)i;
            return true;
        }
    return false;
}

bool cst_tools_parse_choice(json_t *c, cst_tools *out, char *err, size_t errlen) {
    out->mode = CST_TC_AUTO;
    out->allowed = NULL;
    out->choice = NULL;
    if (!c || json_is_null(c)) return true;
    out->choice = c;
    if (json_is_string(c)) {
        if (!mode_of(json_string_value(c), &out->mode))
            return BAD("generation_config.tool_choice: '%s' is not one of auto, any, none, validated",
                       json_string_value(c));
        return true;
    }
    if (!json_is_object(c))
        return BAD("generation_config.tool_choice: expected a string or {\"allowed_tools\": {...}}");
    const char *k;
    json_t *v;
    json_object_foreach(c, k, v) {
        if (strcmp(k, "allowed_tools")) return BAD("generation_config.tool_choice.%s: unknown field", k);
        if (json_is_null(v)) continue;
        if (!json_is_object(v)) return BAD("generation_config.tool_choice.allowed_tools: expected an object");
        const char *ak;
        json_t *av;
        json_object_foreach(v, ak, av) {
            if (json_is_null(av)) continue;
            if (!strcmp(ak, "mode")) {
                if (!json_is_string(av) || !mode_of(json_string_value(av), &out->mode))
                    return BAD("generation_config.tool_choice.allowed_tools.mode: expected one of auto, any, none, "
                               "validated");
            } else if (!strcmp(ak, "tools")) {
                if (!json_is_array(av))
                    return BAD("generation_config.tool_choice.allowed_tools.tools: expected an array of names");
                size_t i;
                json_t *e;
                json_array_foreach(av, i, e) if (!json_is_string(e)) return BAD(
                    "generation_config.tool_choice.allowed_tools.tools[%zu]: expected a string", i);
                out->allowed = av;
            } else {
                return BAD("generation_config.tool_choice.allowed_tools.%s: unknown field", ak);
            }
        }
    }
    return true;
}

static bool declared(json_t *tools, const char *name) {
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) if (!strcmp(json_string_value(json_object_get(t, "name")), name)) return true;
    return false;
}

bool cst_tools_check(const cst_tools *t, char *err, size_t errlen) {
    if (!t->tools && (t->mode == CST_TC_ANY || t->mode == CST_TC_VALIDATED || t->allowed))
        return BAD("generation_config.tool_choice: needs tools (the request declares none)");
    if (t->allowed) {
        if (json_array_size(t->allowed) == 0 && t->mode == CST_TC_ANY)
            return BAD("generation_config.tool_choice.allowed_tools.tools: empty, but mode any must call one");
        size_t i;
        json_t *e;
        json_array_foreach(t->allowed, i, e) if (!declared(t->tools, json_string_value(e))) return BAD(
            "generation_config.tool_choice.allowed_tools.tools[%zu]: '%.140s' is not one of the declared tools", i,
            json_string_value(e));
    }
    return true;
}

bool cst_tools_active(const cst_tools *t) {
    return t->tools && t->mode != CST_TC_NONE && (!t->allowed || json_array_size(t->allowed) > 0);
}

/* ---- families ---------------------------------------------------------------- */

cst_tool_family cst_tools_family(const char *src, bool *renders) {
    *renders = false;
    if (!src) return CST_TOOLS_HERMES;
    const bool reads_tools = strstr(src, "tools") != NULL;
    if (strstr(src, "<tool_call>")) {
        *renders = reads_tools;
        return CST_TOOLS_HERMES;
    }
    if (strstr(src, "<|python_tag|>") || (strstr(src, "ipython") && strstr(src, "\"parameters\""))) {
        *renders = reads_tools;
        return CST_TOOLS_LLAMA3;
    }
    return CST_TOOLS_HERMES;
}

const char *cst_tools_trigger(cst_tool_family f) { return f == CST_TOOLS_LLAMA3 ? "{\"name\"" : "<tool_call>"; }

/* ---- grammar ------------------------------------------------------------------ */

typedef struct {
    cst_tool_family f;
    const cst_tools *t;
} tools_job;

static bool allowed_name(const cst_tools *t, const char *name) {
    if (!t->allowed) return true;
    size_t i;
    json_t *e;
    json_array_foreach(t->allowed, i, e) if (!strcmp(json_string_value(e), name)) return true;
    return false;
}

/* The call body after the trigger: for hermes `\n{"name": "f", "arguments":
 * ARGS}\n</tool_call>`, for llama3 `: "f", "parameters": ARGS}`. */
static int32_t call_body(cst_gbuild *b, cst_tool_family f, const cst_tools *t, char *err, size_t errlen) {
    int32_t body = cst_gb_rule(b);
    bool first = true;
    size_t i;
    json_t *tool;
    json_array_foreach(t->tools, i, tool) {
        const char *name = json_string_value(json_object_get(tool, "name"));
        if (!allowed_name(t, name)) continue;
        char path[64];
        snprintf(path, sizeof path, "tools[%zu].parameters", i);
        json_t *params = json_object_get(tool, "parameters");
        json_t *any_obj = NULL;
        if (!json_is_object(params)) params = any_obj = json_pack("{s:s}", "type", "object");
        int32_t args = cst_schema_rule(b, params, path, err, errlen);
        json_decref(any_obj);
        if (args < 0) return -1;
        if (!first) cst_gb_alt(b, body);
        first = false;
        char head[200];
        int k = f == CST_TOOLS_LLAMA3 ? snprintf(head, sizeof head, ": \"%s\", \"parameters\": ", name)
                                      : snprintf(head, sizeof head, "\n{\"name\": \"%s\", \"arguments\": ", name);
        cst_gb_lit(b, body, head, (size_t)k);
        cst_gb_ref(b, body, args);
        if (f == CST_TOOLS_LLAMA3) cst_gb_lit(b, body, "}", 1);
        else cst_gb_lit(b, body, "}\n</tool_call>", 14);
    }
    return body;
}

static cst_grammar *tools_build(void *ud, char *err, size_t errlen) {
    const tools_job *j = ud;
    const cst_tools *t = j->t;
    const char *trig = cst_tools_trigger(j->f);
    const size_t tn = strlen(trig);
    cst_gbuild *b = cst_gb_new();
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int32_t root = -1;
    if (!cst_tools_active(t)) {
        root = cst_gb_trigger(b, trig, tn, -1); /* none: tools shown, the call syntax masked */
    } else {
        int32_t body = call_body(b, j->f, t, err, errlen);
        if (body < 0) {
            cst_gb_free(b);
            return NULL;
        }
        int32_t rest = body; /* after the trigger */
        if (j->f == CST_TOOLS_HERMES) { /* more calls, one per line */
            int32_t more = cst_gb_rule(b); /* "" | "\n<tool_call>" body more */
            cst_gb_alt(b, more);
            cst_gb_lit(b, more, "\n", 1);
            cst_gb_lit(b, more, trig, tn);
            cst_gb_ref(b, more, body);
            cst_gb_ref(b, more, more);
            rest = cst_gb_rule(b);
            cst_gb_ref(b, rest, body);
            cst_gb_ref(b, rest, more);
        }
        if (t->mode == CST_TC_ANY) {
            root = cst_gb_rule(b);
            cst_gb_lit(b, root, trig, tn);
            cst_gb_ref(b, root, rest);
        } else {
            root = cst_gb_trigger(b, trig, tn, rest);
        }
    }
    char m[300];
    cst_grammar *g = cst_gb_finish(b, root, m, sizeof m);
    if (!g) snprintf(err, errlen, "tools: %s", m);
    return g;
}

cst_grammar *cst_tools_grammar(cst_tool_family f, const cst_tools *t, char *err, size_t errlen) {
    /* the key: not JSON (the schema cache's keys are), a function of all the grammar reads */
    json_t *k = json_pack("{s:i,s:b,s:b,s:O?,s:O}", "family", (int)f, "any", t->mode == CST_TC_ANY, "active",
                          cst_tools_active(t), "allowed", t->allowed, "tools", t->tools ? t->tools : json_null());
    char *ks = k ? json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(k);
    char *key = ks ? malloc(strlen(ks) + 8) : NULL;
    if (key) sprintf(key, "tools: %s", ks);
    free(ks);
    if (!key) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    tools_job j = {f, t};
    cst_grammar *g = cst_grammar_cache_get(key, tools_build, &j, NULL, err, errlen);
    free(key);
    return g;
}

/* ---- parsing the output ------------------------------------------------------------ */

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
    return i;
}

/* One JSON object at s[i..n): a {name, arguments} call; *end after it. */
static json_t *parse_call(const char *s, size_t n, size_t i, size_t *end, const char *args_key) {
    json_error_t je;
    json_t *o = json_loadb(s + i, n - i, JSON_DISABLE_EOF_CHECK, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    *end = i + (size_t)je.position;
    json_t *name = json_object_get(o, "name");
    json_t *args = json_object_get(o, args_key);
    if (!args) args = json_object_get(o, "arguments");
    json_t *c = NULL;
    if (json_is_string(name) && json_is_object(args))
        c = json_pack("{s:O,s:O}", "name", name, "arguments", args);
    json_decref(o);
    return c;
}

bool cst_tools_parse_calls(cst_tool_family f, const char *s, size_t n, size_t *text_len, json_t **calls) {
    *calls = NULL;
    *text_len = n;
    const char *trig = cst_tools_trigger(f);
    const size_t tn = strlen(trig);
    const char *at = memmem(s, n, trig, tn);
    if (f == CST_TOOLS_LLAMA3) {
        const char *tag = memmem(s, n, "<|python_tag|>", 14);
        if (tag && (!at || tag < at)) at = tag;
    }
    if (!at) return true;
    *text_len = (size_t)(at - s);
    json_t *a = json_array();
    size_t i = (size_t)(at - s);
    bool ok = true;
    if (f == CST_TOOLS_LLAMA3) {
        if (!strncmp(s + i, "<|python_tag|>", 14 <= n - i ? 14 : n - i)) i += 14;
        while (ok) { /* {"name": ..., "parameters": ...}, separated by ';' or whitespace */
            i = skip_ws(s, n, i);
            size_t end = 0;
            json_t *c = i < n ? parse_call(s, n, i, &end, "parameters") : NULL;
            if (!c) {
                ok = json_array_size(a) > 0 && skip_ws(s, n, i) == n;
                break;
            }
            json_array_append_new(a, c);
            i = skip_ws(s, n, end);
            if (i < n && s[i] == ';') i++;
            if (skip_ws(s, n, i) == n) break;
        }
    } else {
        while (ok) { /* <tool_call> JSON </tool_call>, separated by whitespace */
            i = skip_ws(s, n, i);
            if (i == n && json_array_size(a) > 0) break;
            if (n - i < tn || memcmp(s + i, trig, tn)) {
                ok = false;
                break;
            }
            i = skip_ws(s, n, i + tn);
            size_t end = 0;
            json_t *c = i < n ? parse_call(s, n, i, &end, "arguments") : NULL;
            if (!c) {
                ok = false;
                break;
            }
            json_array_append_new(a, c);
            i = skip_ws(s, n, end);
            if (n - i < 12 || memcmp(s + i, "</tool_call>", 12)) {
                ok = false;
                break;
            }
            i += 12;
        }
    }
    if (!ok || json_array_size(a) == 0) {
        json_decref(a);
        *text_len = n;
        return false;
    }
    *calls = a;
    return true;
}

/* ---- fallback prompt --------------------------------------------------------------- */

char *cst_tools_fallback_prompt(json_t *tools) {
    static const char head[] =
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    static const char tail[] =
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
        "<args-json-object>}\n</tool_call>";
    size_t cap = sizeof head + sizeof tail + 16, len = 0;
    char **lines = calloc(json_array_size(tools) + 1, sizeof *lines);
    if (!lines) return NULL;
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *d = json_deep_copy(t); /* the OpenAI shape the templates read, without "type" inside */
        if (d) json_object_del(d, "type");
        json_t *w = d ? json_pack("{s:s,s:o}", "type", "function", "function", d) : NULL;
        lines[i] = w ? json_dumps(w, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(w);
        if (lines[i]) cap += strlen(lines[i]) + 1;
    }
    char *o = malloc(cap);
    if (o) {
        memcpy(o, head, sizeof head - 1);
        len = sizeof head - 1;
        for (i = 0; i < json_array_size(tools); i++)
            if (lines[i]) {
                o[len++] = '\n';
                memcpy(o + len, lines[i], strlen(lines[i]));
                len += strlen(lines[i]);
            }
        memcpy(o + len, tail, sizeof tail);
    }
    for (i = 0; i < json_array_size(tools); i++) free(lines[i]);
    free(lines);
    return o;
}
