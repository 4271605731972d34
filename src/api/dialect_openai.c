/* dialect_openai.c: OpenAI-compatible POST /v1/chat/completions as a mapping
 * onto the Interactions request: messages become system_instruction and
 * steps (user_input with text and image_url parts, model_output, function
 * calls from tool_calls, function results from tool messages), sampling
 * fields the generation_config (max_tokens / max_completion_tokens,
 * stop, seed, reasoning_effort -> thinking_level), tools / tool_choice /
 * response_format the Interactions fields of the same meaning. The reply is
 * a chat.completion, or chat.completion.chunk events (reasoning_content in
 * deltas as llama-server and vLLM send it, usage last with
 * stream_options.include_usage, then data: [DONE]). Errors on these routes
 * are in OpenAI's shape (dialect.c sets the style).
 */
#include "dialect.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

#define BAD(...) cst_dialect_bad(err, errlen, __VA_ARGS__)

/* ---- request ----------------------------------------------------------------- */

/* content: string | [{type:text,text}] -> text appended to b (system, tool) */
static bool text_only(json_t *content, const char *path, cst_buf *b, char *err, size_t errlen) {
    if (json_is_null(content) || !content) return true;
    if (json_is_string(content)) return cst_buf_put(b, json_string_value(content), json_string_length(content));
    if (!json_is_array(content)) return !!BAD("%s: expected a string or an array, got %s", path, cst_dialect_jtype(content));
    size_t i;
    json_t *p;
    json_array_foreach(content, i, p) {
        const char *t = json_string_value(json_object_get(p, "type"));
        json_t *tx = json_object_get(p, "text");
        if (!t || strcmp(t, "text") || !json_is_string(tx))
            return !!BAD("%s[%zu]: only text parts are allowed here", path, i);
        cst_buf_put(b, json_string_value(tx), json_string_length(tx));
    }
    return true;
}

/* a user message's content -> content blocks */
static json_t *user_content(json_t *content, const char *path, char *err, size_t errlen) {
    if (json_is_string(content)) return json_pack("[{s:s,s:O}]", "type", "text", "text", content);
    if (!json_is_array(content)) return BAD("%s: expected a string or an array, got %s", path, cst_dialect_jtype(content));
    json_t *out = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(content, i, p) {
        const char *t = json_string_value(json_object_get(p, "type"));
        if (!t) {
            json_decref(out);
            return BAD("%s[%zu].type: required string", path, i);
        }
        if (!strcmp(t, "text")) {
            json_t *tx = json_object_get(p, "text");
            if (!json_is_string(tx)) {
                json_decref(out);
                return BAD("%s[%zu].text: required string", path, i);
            }
            json_array_append_new(out, json_pack("{s:s,s:O}", "type", "text", "text", tx));
        } else if (!strcmp(t, "image_url")) {
            json_t *iu = json_object_get(p, "image_url");
            json_t *url = json_is_string(iu) ? iu : json_object_get(iu, "url");
            if (!json_is_string(url)) {
                json_decref(out);
                return BAD("%s[%zu].image_url.url: required string", path, i);
            }
            const char *u = json_string_value(url);
            if (!strncmp(u, "data:", 5)) {
                const char *semi = strstr(u, ";base64,");
                if (!semi) {
                    json_decref(out);
                    return BAD("%s[%zu].image_url.url: a data URL must be base64 (data:image/png;base64,...)", path, i);
                }
                json_array_append_new(out, json_pack("{s:s,s:s,s:s%}", "type", "image", "data", semi + 8, "mime_type",
                                                     u + 5, (size_t)(semi - (u + 5))));
            } else if (!strncmp(u, "http://", 7) || !strncmp(u, "https://", 8)) {
                json_decref(out);
                return BAD("%s[%zu].image_url.url: this server does not fetch URLs; send a data: URL or a Files API "
                           "URI",
                           path, i);
            } else {
                json_array_append_new(out, json_pack("{s:s,s:O}", "type", "image", "uri", url));
            }
        } else {
            json_decref(out);
            return BAD("%s[%zu].type: '%s' content is not supported (text, image_url)", path, i, t);
        }
    }
    return out;
}

static bool map_messages(json_t *msgs, json_t *body, char *err, size_t errlen) {
    if (!json_is_array(msgs)) return !!BAD("messages: expected an array, got %s", msgs ? cst_dialect_jtype(msgs) : "nothing");
    if (json_array_size(msgs) == 0) return !!BAD("messages: empty array");
    json_t *steps = json_array();
    cst_buf sys = {0};
    size_t i;
    json_t *m;
    bool ok = true;
    json_array_foreach(msgs, i, m) {
        char path[64];
        snprintf(path, sizeof path, "messages[%zu]", i);
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        char cp[96];
        snprintf(cp, sizeof cp, "%s.content", path);
        if (!json_is_object(m)) ok = !!BAD("%s: expected an object, got %s", path, cst_dialect_jtype(m));
        else if (!role) ok = !!BAD("%s.role: required string", path);
        else if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            if (sys.len) cst_buf_put(&sys, "\n\n", 2);
            ok = text_only(content, cp, &sys, err, errlen);
        } else if (!strcmp(role, "user")) {
            json_t *c = user_content(content, cp, err, errlen);
            ok = c != NULL;
            if (ok) json_array_append_new(steps, json_pack("{s:s,s:o}", "type", "user_input", "content", c));
        } else if (!strcmp(role, "assistant")) {
            if (i + 1 == json_array_size(msgs)) {
                ok = !!BAD("%s: the last message must be a user or tool message", path);
                break;
            }
            cst_buf t = {0};
            ok = text_only(content, cp, &t, err, errlen);
            json_t *calls = json_object_get(m, "tool_calls");
            if (ok && (t.len > 0 || !json_is_array(calls) || json_array_size(calls) == 0))
                json_array_append_new(steps, json_pack("{s:s,s:[{s:s,s:s%}]}", "type", "model_output", "content",
                                                       "type", "text", "text", t.p ? t.p : "", t.len));
            cst_buf_free(&t);
            size_t j;
            json_t *tc;
            if (ok && calls && !json_is_null(calls) && !json_is_array(calls))
                ok = !!BAD("%s.tool_calls: expected an array, got %s", path, cst_dialect_jtype(calls));
            if (ok && json_is_array(calls)) json_array_foreach(calls, j, tc) {
                json_t *fn = json_object_get(tc, "function");
                json_t *id = json_object_get(tc, "id"), *name = json_object_get(fn, "name");
                json_t *args = json_object_get(fn, "arguments");
                if (!json_is_string(id) || !json_is_string(name)) {
                    ok = !!BAD("%s.tool_calls[%zu]: id and function.name are required strings", path, j);
                    break;
                }
                json_t *a = json_is_string(args) ? json_loads(json_string_value(args), JSON_DECODE_ANY, NULL)
                                                 : json_is_object(args) ? json_incref(args) : json_object();
                if (!json_is_object(a)) {
                    json_decref(a);
                    ok = !!BAD("%s.tool_calls[%zu].function.arguments: expected a JSON object text", path, j);
                    break;
                }
                json_array_append_new(steps, json_pack("{s:s,s:O,s:O,s:o}", "type", "function_call", "id", id, "name",
                                                       name, "arguments", a));
            }
        } else if (!strcmp(role, "tool")) {
            json_t *id = json_object_get(m, "tool_call_id");
            cst_buf t = {0};
            if (!json_is_string(id)) ok = !!BAD("%s.tool_call_id: required string", path);
            else ok = text_only(content, cp, &t, err, errlen);
            if (ok) {
                /* the function's name: from the call it answers */
                const char *name = NULL;
                size_t k;
                json_t *st;
                json_array_foreach(steps, k, st) {
                    const char *sid = json_string_value(json_object_get(st, "id"));
                    if (sid && !strcmp(sid, json_string_value(id)))
                        name = json_string_value(json_object_get(st, "name"));
                }
                json_t *fr = json_pack("{s:s,s:O,s:s%}", "type", "function_result", "call_id", id, "result",
                                       t.p ? t.p : "", t.len);
                if (name) json_object_set_new(fr, "name", json_string(name));
                json_array_append_new(steps, fr);
            }
            cst_buf_free(&t);
        } else {
            ok = !!BAD("%s.role: '%s' is not one of system, developer, user, assistant, tool", path, role);
        }
        if (!ok) break;
    }
    if (ok) {
        json_object_set_new(body, "input", steps);
        if (sys.len) json_object_set_new(body, "system_instruction", json_stringn(sys.p, sys.len));
    } else {
        json_decref(steps);
    }
    cst_buf_free(&sys);
    return ok;
}

static bool map_tools(json_t *tools, json_t *body, char *err, size_t errlen) {
    if (!json_is_array(tools)) return !!BAD("tools: expected an array, got %s", cst_dialect_jtype(tools));
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        const char *ty = json_string_value(json_object_get(t, "type"));
        json_t *fn = json_object_get(t, "function");
        if (!ty || strcmp(ty, "function") || !json_is_object(fn)) {
            json_decref(out);
            return !!BAD("tools[%zu]: only {\"type\":\"function\",\"function\":{...}} tools are supported", i);
        }
        json_t *name = json_object_get(fn, "name");
        if (!json_is_string(name)) {
            json_decref(out);
            return !!BAD("tools[%zu].function.name: required string", i);
        }
        json_t *f = json_pack("{s:s,s:O}", "type", "function", "name", name);
        json_t *d = json_object_get(fn, "description"), *p = json_object_get(fn, "parameters");
        if (json_is_string(d)) json_object_set(f, "description", d);
        if (json_is_object(p)) json_object_set(f, "parameters", p);
        json_array_append_new(out, f);
    }
    json_object_set_new(body, "tools", out);
    return true;
}

static bool map_tool_choice(json_t *tc, json_t *gc, char *err, size_t errlen) {
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (!strcmp(s, "auto") || !strcmp(s, "none")) json_object_set_new(gc, "tool_choice", json_string(s));
        else if (!strcmp(s, "required")) json_object_set_new(gc, "tool_choice", json_string("any"));
        else return !!BAD("tool_choice: '%s' is not one of auto, none, required", s);
        return true;
    }
    json_t *name = json_object_get(json_object_get(tc, "function"), "name");
    if (!json_is_string(name)) return !!BAD("tool_choice: expected a string or {\"type\":\"function\",\"function\":{\"name\":...}}");
    json_object_set_new(gc, "tool_choice", json_pack("{s:{s:s,s:[O]}}", "allowed_tools", "mode", "any", "tools", name));
    return true;
}

static bool map_response_format(json_t *rf, json_t *body, char *err, size_t errlen) {
    const char *t = json_string_value(json_object_get(rf, "type"));
    if (!t) return !!BAD("response_format.type: required string");
    if (!strcmp(t, "text")) return true;
    json_t *o = json_pack("{s:s,s:s}", "type", "text", "mime_type", "application/json");
    if (!strcmp(t, "json_schema")) {
        json_t *js = json_object_get(rf, "json_schema");
        json_t *schema = json_object_get(js, "schema");
        if (!json_is_object(schema)) {
            json_decref(o);
            return !!BAD("response_format.json_schema.schema: required object");
        }
        json_object_set(o, "schema", schema);
    } else if (strcmp(t, "json_object")) {
        json_decref(o);
        return !!BAD("response_format.type: '%s' is not one of text, json_object, json_schema", t);
    }
    json_object_set_new(body, "response_format", o);
    return true;
}

json_t *cst_openai_request(json_t *req, char *err, size_t errlen) {
    if (!json_is_object(req)) return BAD("the request body must be a JSON object, got %s", cst_dialect_jtype(req));
    json_t *model = json_object_get(req, "model");
    if (!json_is_string(model) || !json_string_length(model)) return BAD("model: required string");
    json_t *body = json_pack("{s:O,s:b}", "model", model, "store", false);
    json_t *gc = json_pack("{s:s}", "thinking_summaries", "auto"); /* reasoning_content */
    const char *k;
    json_t *v;
    bool ok = true, have_msgs = false;
    json_object_foreach(req, k, v) {
        if (json_is_null(v)) continue;
        if (!strcmp(k, "model")) continue;
        else if (!strcmp(k, "messages")) ok = have_msgs = map_messages(v, body, err, errlen);
        else if (!strcmp(k, "stream")) {
            if (!json_is_boolean(v)) ok = !!BAD("stream: expected a boolean, got %s", cst_dialect_jtype(v));
            else json_object_set(body, "stream", v);
        } else if (!strcmp(k, "stream_options")) {
            json_t *iu = json_object_get(v, "include_usage");
            if (!json_is_object(v) || (iu && !json_is_boolean(iu)))
                ok = !!BAD("stream_options: expected {\"include_usage\": boolean}");
        } else if (!strcmp(k, "temperature") || !strcmp(k, "top_p") || !strcmp(k, "seed")) {
            json_object_set(gc, k, v);
        } else if (!strcmp(k, "max_tokens") || !strcmp(k, "max_completion_tokens")) {
            json_object_set(gc, "max_output_tokens", v);
        } else if (!strcmp(k, "stop")) {
            if (json_is_string(v)) json_object_set_new(gc, "stop_sequences", json_pack("[O]", v));
            else json_object_set(gc, "stop_sequences", v);
        } else if (!strcmp(k, "n")) {
            if (!json_is_integer(v) || json_integer_value(v) != 1) ok = !!BAD("n: only 1 choice is supported");
        } else if (!strcmp(k, "reasoning_effort")) {
            const char *e = json_string_value(v);
            if (!e) ok = !!BAD("reasoning_effort: expected a string, got %s", cst_dialect_jtype(v));
            else if (!strcmp(e, "none") || !strcmp(e, "minimal"))
                json_object_set_new(gc, "thinking_level", json_string("minimal"));
            else if (!strcmp(e, "low") || !strcmp(e, "medium") || !strcmp(e, "high"))
                json_object_set_new(gc, "thinking_level", json_string(e));
            else ok = !!BAD("reasoning_effort: '%s' is not one of none, minimal, low, medium, high", e);
        } else if (!strcmp(k, "tools")) ok = map_tools(v, body, err, errlen);
        else if (!strcmp(k, "tool_choice")) ok = map_tool_choice(v, gc, err, errlen);
        else if (!strcmp(k, "response_format")) ok = map_response_format(v, body, err, errlen);
        else if (!strcmp(k, "parallel_tool_calls") || !strcmp(k, "user")) continue; /* no effect on the answer */
        else if (!strcmp(k, "frequency_penalty") || !strcmp(k, "presence_penalty")) {
            if (!json_is_number(v) || json_number_value(v) != 0.0)
                ok = !!BAD("%s: penalties are not supported by this server", k);
        } else if (!strcmp(k, "logprobs")) {
            if (!json_is_false(v)) ok = !!BAD("logprobs: not supported by this server");
        } else if (!strcmp(k, "logit_bias")) {
            if (!json_is_object(v) || json_object_size(v)) ok = !!BAD("logit_bias: not supported by this server");
        } else if (!strcmp(k, "top_logprobs") || !strcmp(k, "audio") || !strcmp(k, "modalities") ||
                   !strcmp(k, "prediction") || !strcmp(k, "web_search_options") || !strcmp(k, "functions") ||
                   !strcmp(k, "function_call") || !strcmp(k, "store") || !strcmp(k, "metadata") ||
                   !strcmp(k, "service_tier")) {
            ok = !!BAD("%s: not supported by this server", k);
        } else {
            ok = !!BAD("%s: unknown field", k);
        }
        if (!ok) break;
    }
    if (ok && !have_msgs) ok = !!BAD("messages: required");
    if (!ok) {
        json_decref(body);
        json_decref(gc);
        return NULL;
    }
    json_object_set_new(body, "generation_config", gc);
    return body;
}

/* ---- response ----------------------------------------------------------------- */

static const char *finish_reason(const char *status, bool calls) {
    if (calls || (status && !strcmp(status, "requires_action"))) return "tool_calls";
    if (status && !strcmp(status, "incomplete")) return "length";
    return "stop";
}

static json_t *usage_of(json_t *u) {
    json_int_t in = json_integer_value(json_object_get(u, "total_input_tokens"));
    json_int_t out = json_integer_value(json_object_get(u, "total_output_tokens"));
    json_int_t th = json_integer_value(json_object_get(u, "total_thought_tokens"));
    json_int_t ca = json_integer_value(json_object_get(u, "total_cached_tokens"));
    return json_pack("{s:I,s:I,s:I,s:{s:I},s:{s:I}}", "prompt_tokens", in, "completion_tokens", out + th,
                     "total_tokens", in + out + th, "prompt_tokens_details", "cached_tokens", ca,
                     "completion_tokens_details", "reasoning_tokens", th);
}

/* A function_call step as a tool call; streamed (with_index) the arguments
 * start empty and come as arguments_delta fragments. */
static json_t *tool_call_json(json_t *st, int index, bool with_index) {
    json_t *a = json_object_get(st, "arguments");
    char *args = a && !with_index ? json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("");
    json_t *tc = json_pack("{s:O?,s:s,s:{s:O?,s:s}}", "id", json_object_get(st, "id"), "type", "function", "function",
                           "name", json_object_get(st, "name"), "arguments", args ? args : "{}");
    free(args);
    if (with_index) json_object_set_new(tc, "index", json_integer(index));
    return tc;
}

json_t *cst_openai_response(json_t *ix, const char *model) {
    const char *thought, *text, *sig;
    cst_dialect_outputs(ix, &thought, &text, &sig);
    json_t *calls = json_array();
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(ix, "steps"), i, st) {
        const char *t = json_string_value(json_object_get(st, "type"));
        if (t && !strcmp(t, "function_call")) json_array_append_new(calls, tool_call_json(st, 0, false));
    }
    json_t *msg = json_pack("{s:s,s:s?}", "role", "assistant", "content", text);
    if (thought) json_object_set_new(msg, "reasoning_content", json_string(thought));
    const bool has_calls = json_array_size(calls) > 0;
    if (has_calls) json_object_set(msg, "tool_calls", calls);
    json_decref(calls);
    char id[96];
    snprintf(id, sizeof id, "chatcmpl-%s", json_string_value(json_object_get(ix, "id")));
    json_t *r = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:s,s:n}],s:n}", "id", id, "object", "chat.completion",
                          "created", (json_int_t)time(NULL), "model", model, "choices", "index", 0, "message", msg,
                          "finish_reason",
                          finish_reason(json_string_value(json_object_get(ix, "status")), has_calls), "logprobs",
                          "system_fingerprint");
    json_t *u = json_object_get(ix, "usage");
    if (json_is_object(u)) json_object_set_new(r, "usage", usage_of(u));
    return r;
}

/* ---- route ------------------------------------------------------------------- */

typedef struct octx {
    char model[256];
    char id[96];
    json_int_t created;
    bool include_usage;
    int n_calls;
} octx;

static void octx_free(void *p) { free(p); }

static char *sse_data(json_t *j) {
    char *js = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!js) return NULL;
    size_t n = strlen(js) + 16;
    char *o = malloc(n);
    if (o) snprintf(o, n, "data: %s\n\n", js);
    free(js);
    return o;
}

static json_t *chunk(octx *o, json_t *delta, const char *finish) {
    json_t *c = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:s?,s:n}]}", "id", o->id, "object", "chat.completion.chunk",
                          "created", o->created, "model", o->model, "choices", "index", 0, "delta", delta,
                          "finish_reason", finish, "logprobs");
    if (o->include_usage) json_object_set_new(c, "usage", json_null());
    return c;
}

static char *openai_stream(void *ctx, const char *type, const char *data) {
    octx *o = ctx;
    if (!type) return strdup("data: [DONE]\n\n");
    if (!strcmp(type, ":")) return strdup(": keep-alive\n\n");
    json_t *ev = json_loads(data, 0, NULL);
    if (!ev) return strdup("");
    char *out = NULL;
    if (!strcmp(type, "interaction.created")) {
        const char *id = json_string_value(json_object_get(json_object_get(ev, "interaction"), "id"));
        snprintf(o->id, sizeof o->id, "chatcmpl-%s", id ? id : "");
        out = sse_data(chunk(o, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL));
    } else if (!strcmp(type, "step.delta")) {
        json_t *d = json_object_get(ev, "delta");
        const char *dt = json_string_value(json_object_get(d, "type"));
        if (dt && !strcmp(dt, "text"))
            out = sse_data(chunk(o, json_pack("{s:O}", "content", json_object_get(d, "text")), NULL));
        else if (dt && !strcmp(dt, "thought_summary")) {
            json_t *t = json_object_get(json_object_get(d, "content"), "text");
            if (json_is_string(t)) out = sse_data(chunk(o, json_pack("{s:O}", "reasoning_content", t), NULL));
        } else if (dt && !strcmp(dt, "arguments_delta") && o->n_calls > 0)
            out = sse_data(chunk(o, json_pack("{s:[{s:i,s:{s:O}}]}", "tool_calls", "index", o->n_calls - 1, "function",
                                              "arguments", json_object_get(d, "arguments")),
                                 NULL));
    } else if (!strcmp(type, "step.start")) {
        json_t *st = json_object_get(ev, "step");
        const char *t = json_string_value(json_object_get(st, "type"));
        if (t && !strcmp(t, "function_call") && json_object_get(st, "name"))
            out = sse_data(chunk(o, json_pack("{s:[o]}", "tool_calls", tool_call_json(st, o->n_calls++, true)), NULL));
    } else if (!strcmp(type, "error")) {
        json_t *e = json_object_get(ev, "error");
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        out = sse_data(cst_api_error_body(ERR_STYLE_OPENAI, code && !strcmp(code, "gateway_timeout") ? E_TIMEOUT : E_INTERNAL,
                                          msg ? msg : "generation failed"));
    } else if (!strcmp(type, "interaction.completed")) {
        json_t *ix = json_object_get(ev, "interaction");
        const char *status = json_string_value(json_object_get(ix, "status"));
        if (!status || strcmp(status, "failed")) {
            out = sse_data(chunk(o, json_object(), finish_reason(status, o->n_calls > 0)));
            json_t *u = json_object_get(ix, "usage");
            if (o->include_usage && json_is_object(u) && out) {
                char *uc = sse_data(json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", o->id, "object",
                                              "chat.completion.chunk", "created", o->created, "model", o->model,
                                              "choices", "usage", usage_of(u)));
                size_t n1 = strlen(out), n2 = uc ? strlen(uc) : 0;
                char *both = realloc(out, n1 + n2 + 1);
                if (both) {
                    memcpy(both + n1, uc ? uc : "", n2 + 1);
                    out = both;
                }
                free(uc);
            }
        }
    }
    json_decref(ev);
    return out ? out : strdup("");
}

static enum MHD_Result openai_unary(void *ctx, struct MHD_Connection *c, run *r) {
    octx *o = ctx;
    json_t *ix = cst_run_json(r, false, false);
    const char *status = json_string_value(json_object_get(ix, "status"));
    if (status && !strcmp(status, "failed")) {
        json_t *e = json_array_get(json_object_get(ix, "errors"), 0);
        const char *msg = json_string_value(json_object_get(e, "message"));
        enum MHD_Result ret = cst_api_error(c, E_INTERNAL, "generation failed: %s", msg ? msg : "engine error");
        json_decref(ix);
        return ret;
    }
    json_t *resp = cst_openai_response(ix, o->model);
    json_decref(ix);
    return cst_api_json(c, 200, resp);
}

enum MHD_Result cst_openai_chat(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner) {
    if (cs->too_large)
        return cst_api_error(c, E_TOO_LARGE, "the request body is larger than the server limit of %zu bytes",
                             s->p.max_body);
    json_error_t je;
    json_t *req = json_loadb(cs->body ? cs->body : "", cs->len, JSON_REJECT_DUPLICATES, &je);
    if (!req)
        return cst_api_error(c, E_INVALID, "malformed JSON in the request body: %s (line %d, column %d)", je.text,
                             je.line, je.column);
    char err[1024];
    json_t *ib = cst_openai_request(req, err, sizeof err);
    if (!ib) {
        json_decref(req);
        return cst_api_error(c, E_INVALID, "%s", err);
    }
    octx *o = calloc(1, sizeof *o);
    if (!o) {
        json_decref(req);
        json_decref(ib);
        return MHD_NO;
    }
    snprintf(o->model, sizeof o->model, "%s", json_string_value(json_object_get(req, "model")));
    o->created = (json_int_t)time(NULL);
    o->include_usage = json_is_true(json_object_get(json_object_get(req, "stream_options"), "include_usage"));
    json_decref(req);
    cst_dialect_out out = {.ctx = o, .ctx_free = octx_free, .stream = openai_stream, .unary = openai_unary};
    enum MHD_Result ret = cst_dialect_run(s, c, cs, owner, ib, &out);
    json_decref(ib);
    return ret;
}
