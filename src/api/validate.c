/* validate.c: the create request (§2): every top-level and generation_config
 * field checked for type and range, unknown fields rejected with the JSON
 * path, features this server cannot honour rejected (never ignored), and the
 * input union normalised to steps (§2.3): context steps + the turn (the
 * trailing user_input steps), with string content turned into text blocks.
 */
#include "api_int.h"
#include "docs/docs.h"
#include "tools.h"

#include <math.h>
#include <string.h>

/* an error message in err, and false */
#define BAD(...) cst_fail(err, errlen, __VA_ARGS__)

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static bool get_bool(json_t *v, const char *path, bool *out, char *err, size_t errlen) {
    if (json_is_null(v)) return true;
    if (!json_is_boolean(v)) return BAD("%s: expected a boolean, got %s", path, type_name(v));
    *out = json_is_true(v);
    return true;
}

static bool get_str(json_t *v, const char *path, const char **out, char *err, size_t errlen) {
    if (json_is_null(v)) return true;
    if (!json_is_string(v)) return BAD("%s: expected a string, got %s", path, type_name(v));
    *out = json_string_value(v);
    return true;
}

static bool is_int_value(json_t *v, int64_t *out) {
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9.2e18) {
            *out = (int64_t)d;
            return true;
        }
    }
    return false;
}

static const char *content_types[] = {"text", "image", "audio", "video", "document"};
static const char *step_types[] = {"user_input", "model_output", "thought", "function_call", "function_result"};
static const char *server_tool_steps[] = {
    "code_execution_call", "code_execution_result", "url_context_call", "url_context_result",
    "google_search_call", "google_search_result", "google_maps_call", "google_maps_result",
    "file_search_call", "file_search_result", "mcp_server_tool_call", "mcp_server_tool_result",
    "retrieval_call", "retrieval_result", "processing_call", "processing_result"};

static bool in_list(const char *s, const char *const *l, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, l[i])) return true;
    return false;
}

static const char *elem_type(json_t *e) {
    json_t *t = json_is_object(e) ? json_object_get(e, "type") : NULL;
    return json_is_string(t) ? json_string_value(t) : NULL;
}

/* The source of an image or document block (§2.4): f = {data, uri,
 * mime_type}, each a string or NULL; exactly one of data and uri. */
static const char *const media_fields[3] = {"data", "uri", "mime_type"};
static bool media_source(json_t *b, const char *path, json_t *f[3], char *err, size_t errlen) {
    for (int i = 0; i < 3; i++) {
        f[i] = json_object_get(b, media_fields[i]);
        if (json_is_null(f[i])) f[i] = NULL;
        if (f[i] && !json_is_string(f[i])) {
            BAD("%s.%s: expected a string, got %s", path, media_fields[i], type_name(f[i]));
            return false;
        }
    }
    if (!f[0] == !f[1]) {
        BAD("%s: give exactly one of data (base64) and uri", path);
        return false;
    }
    if (f[1] && json_string_length(f[1]) == 0) {
        BAD("%s.uri: empty string", path);
        return false;
    }
    return true;
}

/* One content block -> a normalised text block (new reference) or error. */
static json_t *norm_block(json_t *b, const char *path, char *err, size_t errlen) {
    if (!json_is_object(b)) {
        BAD("%s: expected a content object, got %s", path, type_name(b));
        return NULL;
    }
    const char *t = elem_type(b);
    if (!t) {
        BAD("%s.type: required string", path);
        return NULL;
    }
    if (!strcmp(t, "text")) {
        json_t *tx = json_object_get(b, "text");
        if (!json_is_string(tx)) {
            BAD("%s.text: expected a string, got %s", path, tx ? type_name(tx) : "nothing");
            return NULL;
        }
        return json_pack("{s:s,s:O}", "type", "text", "text", tx);
    }
    json_t *f[3];
    if (!strcmp(t, "image")) { /* §2.4; resolved and checked further in files_media.c */
        if (!media_source(b, path, f, err, errlen)) return NULL;
        if (f[2]) {
            static const char *ok[] = {"image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif"};
            if (!in_list(json_string_value(f[2]), ok, CST_ARRAY_LEN(ok))) {
                BAD("%s.mime_type: '%s' is not supported (image/png, image/jpeg, image/webp, image/gif)", path,
                    json_string_value(f[2]));
                return NULL;
            }
        }
        json_t *res = json_object_get(b, "resolution");
        if (res && !json_is_null(res)) {
            static const char *lv[] = {"low", "medium", "high", "ultra_high"};
            if (!json_is_string(res) || !in_list(json_string_value(res), lv, 4)) {
                BAD("%s.resolution: expected one of low, medium, high, ultra_high", path);
                return NULL;
            }
        } else {
            res = NULL;
        }
        json_t *o = json_pack("{s:s}", "type", "image");
        for (int i = 0; i < 3 && o; i++)
            if (f[i]) json_object_set(o, media_fields[i], f[i]);
        if (o && res) json_object_set(o, "resolution", res);
        if (!o) BAD("out of memory");
        return o;
    }
    if (!strcmp(t, "document")) { /* §2.4; resolved and extracted in files_docs.c */
        if (!media_source(b, path, f, err, errlen)) return NULL;
        if (f[0] && !f[2]) {
            BAD("%s.mime_type: required with inline data (%s)", path, CST_DOC_TYPES);
            return NULL;
        }
        if (f[2] && !cst_doc_readable(json_string_value(f[2]))) {
            BAD("%s.mime_type: '%s' is not a document type this server reads (%s)", path, json_string_value(f[2]),
                CST_DOC_TYPES);
            return NULL;
        }
        json_t *o = json_pack("{s:s}", "type", "document");
        for (int i = 0; i < 3 && o; i++)
            if (f[i]) json_object_set(o, media_fields[i], f[i]);
        if (!o) BAD("out of memory");
        return o;
    }
    if (in_list(t, content_types, CST_ARRAY_LEN(content_types))) {
        BAD("%s: %s content is not supported by this server (it reads text, image (image/png, image/jpeg, "
            "image/webp, image/gif) and document (%s) content)",
            path, t, CST_DOC_TYPES);
        return NULL;
    }
    BAD("%s.type: unknown content type '%s'", path, t);
    return NULL;
}

/* content: string | Content | Content[] | null -> array of text blocks */
static json_t *norm_content(json_t *c, const char *path, char *err, size_t errlen) {
    if (!c || json_is_null(c)) return json_array();
    if (json_is_string(c)) return json_pack("[{s:s,s:O}]", "type", "text", "text", c);
    if (json_is_object(c)) {
        json_t *b = norm_block(c, path, err, errlen);
        if (!b) return NULL;
        json_t *a = json_array();
        json_array_append_new(a, b);
        return a;
    }
    if (!json_is_array(c)) {
        BAD("%s: expected a string or an array of content, got %s", path, type_name(c));
        return NULL;
    }
    json_t *a = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(c, i, e) {
        char p[256];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        json_t *b = norm_block(e, p, err, errlen);
        if (!b) {
            json_decref(a);
            return NULL;
        }
        json_array_append_new(a, b);
    }
    return a;
}

static json_t *norm_step(json_t *s, const char *path, char *err, size_t errlen) {
    const char *t = elem_type(s);
    char p[256];
    snprintf(p, sizeof p, "%s.content", path);
    if (!strcmp(t, "user_input") || !strcmp(t, "model_output")) {
        json_t *c = norm_content(json_object_get(s, "content"), p, err, errlen);
        if (!c) return NULL;
        return json_pack("{s:s,s:o}", "type", t, "content", c);
    }
    if (!strcmp(t, "thought")) {
        json_t *sig = json_object_get(s, "signature");
        if (json_is_string(sig)) return json_pack("{s:s,s:O}", "type", "thought", "signature", sig);
        return json_pack("{s:s}", "type", "thought");
    }
    if (!strcmp(t, "function_call")) { /* the model's earlier call (history) */
        json_t *id = json_object_get(s, "id"), *name = json_object_get(s, "name"), *args = json_object_get(s, "arguments");
        if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 256) {
            BAD("%s.id: required (a string of 1 to 256 bytes)", path);
            return NULL;
        }
        if (!json_is_string(name) || !cst_tools_valid_name(json_string_value(name))) {
            BAD("%s.name: required (a function name)", path);
            return NULL;
        }
        if (!json_is_object(args)) {
            BAD("%s.arguments: required (an object)", path);
            return NULL;
        }
        return json_pack("{s:s,s:O,s:O,s:O}", "type", t, "id", id, "name", name, "arguments", args);
    }
    if (!strcmp(t, "function_result")) {
        json_t *id = json_object_get(s, "call_id"), *name = json_object_get(s, "name"), *res = json_object_get(s, "result");
        json_t *ie = json_object_get(s, "is_error");
        if (!json_is_string(id) || json_string_length(id) == 0) {
            BAD("%s.call_id: required (a non-empty string)", path);
            return NULL;
        }
        if (name && !json_is_null(name) && !json_is_string(name)) {
            BAD("%s.name: expected a string, got %s", path, type_name(name));
            return NULL;
        }
        if (ie && !json_is_null(ie) && !json_is_boolean(ie)) {
            BAD("%s.is_error: expected a boolean, got %s", path, type_name(ie));
            return NULL;
        }
        json_t *r;
        snprintf(p, sizeof p, "%s.result", path);
        if (json_is_string(res) || json_is_object(res)) {
            r = json_incref(res);
        } else if (json_is_array(res)) { /* content: text blocks */
            r = norm_content(res, p, err, errlen);
            if (!r) return NULL;
            size_t i;
            json_t *b;
            json_array_foreach(r, i, b) {
                if (strcmp(elem_type(b), "text")) {
                    BAD("%s[%zu]: %s content in a function result is not supported (text only)", p, i, elem_type(b));
                    json_decref(r);
                    return NULL;
                }
            }
        } else {
            BAD("%s: required (a string, an object or an array of content), got %s", p, res ? type_name(res) : "nothing");
            return NULL;
        }
        json_t *o = json_pack("{s:s,s:O,s:o}", "type", t, "call_id", id, "result", r);
        if (o && json_is_string(name)) json_object_set(o, "name", name);
        if (o && json_is_true(ie)) json_object_set_new(o, "is_error", json_true());
        return o;
    }
    BAD("%s.type: unsupported step type '%s'", path, t);
    return NULL;
}

static bool norm_input(json_t *in, create_req *r, char *err, size_t errlen) {
    json_t *steps = NULL;
    if (json_is_string(in)) {
        steps = json_pack("[{s:s,s:[{s:s,s:O}]}]", "type", "user_input", "content", "type", "text", "text", in);
    } else if (json_is_object(in)) {
        const char *t = elem_type(in);
        if (!t) return BAD("input.type: required string");
        if (in_list(t, step_types, CST_ARRAY_LEN(step_types)) ||
            in_list(t, server_tool_steps, CST_ARRAY_LEN(server_tool_steps)))
            return BAD("input: a single step must be given inside an array");
        json_t *b = norm_block(in, "input", err, errlen);
        if (!b) return false;
        steps = json_pack("[{s:s,s:[o]}]", "type", "user_input", "content", b);
    } else if (json_is_array(in)) {
        size_t n = json_array_size(in);
        if (n == 0) return BAD("input: empty array");
        size_t n_content = 0, n_steps = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(in, i);
            if (!json_is_object(e)) return BAD("input[%zu]: expected an object, got %s", i, type_name(e));
            const char *t = elem_type(e);
            if (!t) return BAD("input[%zu].type: required string", i);
            if (in_list(t, content_types, CST_ARRAY_LEN(content_types))) n_content++;
            else if (in_list(t, step_types, CST_ARRAY_LEN(step_types))) n_steps++;
            else if (in_list(t, server_tool_steps, CST_ARRAY_LEN(server_tool_steps)))
                return BAD("input[%zu]: server-side tool steps ('%s') are not supported", i, t);
            else return BAD("input[%zu].type: unknown type '%s'", i, t);
        }
        if (n_content && n_steps) return BAD("input: mixes content blocks and steps");
        if (n_content) {
            json_t *c = norm_content(in, "input", err, errlen);
            if (!c) return false;
            steps = json_pack("[{s:s,s:o}]", "type", "user_input", "content", c);
        } else {
            steps = json_array();
            for (size_t i = 0; i < n; i++) {
                char p[64];
                snprintf(p, sizeof p, "input[%zu]", i);
                json_t *st = norm_step(json_array_get(in, i), p, err, errlen);
                if (!st) {
                    json_decref(steps);
                    return false;
                }
                json_array_append_new(steps, st);
            }
        }
    } else {
        return BAD("input: expected a string, a content object or an array, got %s", type_name(in));
    }
    if (!steps) return BAD("out of memory");
    /* split: the turn is the trailing run of user_input and function_result steps */
    size_t n = json_array_size(steps), k = n;
    while (k > 0 && (!strcmp(elem_type(json_array_get(steps, k - 1)), "user_input") ||
                     !strcmp(elem_type(json_array_get(steps, k - 1)), "function_result")))
        k--;
    if (k == n) {
        json_decref(steps);
        return BAD("input: the last step must be a user_input or function_result step (the new turn)");
    }
    r->context = json_array();
    r->turn = json_array();
    for (size_t i = 0; i < n; i++) json_array_append(i < k ? r->context : r->turn, json_array_get(steps, i));
    json_decref(steps);
    return true;
}

static bool parse_gen_config(json_t *g, create_req *r, char *err, size_t errlen) {
    if (!json_is_object(g)) return BAD("generation_config: expected an object, got %s", type_name(g));
    const char *k;
    json_t *v;
    json_object_foreach(g, k, v) {
        if (json_is_null(v)) continue;
        if (!strcmp(k, "temperature")) {
            if (!json_is_number(v)) return BAD("generation_config.temperature: expected a number, got %s", type_name(v));
            double t = json_number_value(v);
            if (!(t >= 0.0 && t <= 2.0)) return BAD("generation_config.temperature: %g is out of range [0, 2]", t);
            r->has_temperature = true;
            r->temperature = t;
        } else if (!strcmp(k, "top_p")) {
            if (!json_is_number(v)) return BAD("generation_config.top_p: expected a number, got %s", type_name(v));
            double t = json_number_value(v);
            if (!(t > 0.0 && t <= 1.0)) return BAD("generation_config.top_p: %g is out of range (0, 1]", t);
            r->has_top_p = true;
            r->top_p = t;
        } else if (!strcmp(k, "top_k")) { /* Castor extension: generateContent's topK */
            int64_t x;
            if (!is_int_value(v, &x)) return BAD("generation_config.top_k: expected an integer, got %s", type_name(v));
            if (x < 0 || x > 1000000) return BAD("generation_config.top_k: %lld is out of range [0, 1000000]", (long long)x);
            r->has_top_k = true;
            r->top_k = x;
        } else if (!strcmp(k, "max_output_tokens")) {
            int64_t x;
            if (!is_int_value(v, &x))
                return BAD("generation_config.max_output_tokens: expected an integer, got %s", type_name(v));
            if (x < 1) return BAD("generation_config.max_output_tokens: %lld is out of range (at least 1)", (long long)x);
            r->has_max = true;
            r->max_output_tokens = x;
        } else if (!strcmp(k, "stop_sequences")) {
            if (!json_is_array(v)) return BAD("generation_config.stop_sequences: expected an array, got %s", type_name(v));
            if (json_array_size(v) > MAX_STOPS)
                return BAD("generation_config.stop_sequences: at most %d sequences", MAX_STOPS);
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (!json_is_string(e))
                    return BAD("generation_config.stop_sequences[%zu]: expected a string, got %s", i, type_name(e));
                if (json_string_length(e) == 0) return BAD("generation_config.stop_sequences[%zu]: empty string", i);
                r->stops[r->n_stops++] = json_string_value(e);
            }
        } else if (!strcmp(k, "seed")) {
            int64_t x;
            if (!is_int_value(v, &x)) return BAD("generation_config.seed: expected an integer, got %s", type_name(v));
            r->has_seed = true;
            r->seed = x;
        } else if (!strcmp(k, "thinking_level")) {
            static const char *lv[] = {"minimal", "low", "medium", "high"};
            if (!json_is_string(v)) return BAD("generation_config.thinking_level: expected a string, got %s", type_name(v));
            if (!in_list(json_string_value(v), lv, 4))
                return BAD("generation_config.thinking_level: '%s' is not one of minimal, low, medium, high",
                           json_string_value(v));
        } else if (!strcmp(k, "thinking_summaries")) {
            static const char *lv[] = {"auto", "none"};
            if (!json_is_string(v))
                return BAD("generation_config.thinking_summaries: expected a string, got %s", type_name(v));
            if (!in_list(json_string_value(v), lv, 2))
                return BAD("generation_config.thinking_summaries: '%s' is not one of auto, none", json_string_value(v));
        } else if (!strcmp(k, "tool_choice")) {
            if (!json_is_string(v) && !json_is_object(v))
                return BAD("generation_config.tool_choice: expected a string or an object, got %s", type_name(v));
            if (!cst_tools_parse_choice(v, &r->tools, err, errlen)) return false;
        } else if (!strcmp(k, "image_config") || !strcmp(k, "speech_config") || !strcmp(k, "transcription_config") ||
                   !strcmp(k, "video_config")) {
            return BAD("generation_config.%s: media generation is not supported by this server", k);
        } else {
            return BAD("generation_config.%s: unknown field", k);
        }
    }
    return true;
}

/* response_format (§8): one text entry (an object, or an array holding one)
 * with mime_type text/plain or application/json and, for JSON, an optional
 * schema (compiled later, in run.c). */
static bool parse_response_format(json_t *v, create_req *r, char *err, size_t errlen) {
    if (!json_is_object(v) && !json_is_array(v))
        return BAD("response_format: expected an object or an array, got %s", type_name(v));
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    size_t n_text = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        char path[48];
        if (json_is_array(v)) snprintf(path, sizeof path, "response_format[%zu]", i);
        else snprintf(path, sizeof path, "response_format");
        if (!json_is_object(e)) return BAD("%s: expected an object, got %s", path, type_name(e));
        json_t *t = json_object_get(e, "type");
        if (!json_is_string(t)) return BAD("%s.type: required (a string)", path);
        if (strcmp(json_string_value(t), "text"))
            return BAD("%s.type: '%s' output is not supported (only text)", path, json_string_value(t));
        if (++n_text > 1) return BAD("%s: at most one text entry", path);
        const char *mime = NULL;
        json_t *schema = NULL;
        const char *k;
        json_t *x;
        json_object_foreach(e, k, x) {
            if (!strcmp(k, "type")) continue;
            if (!strcmp(k, "mime_type")) {
                if (json_is_null(x)) continue;
                if (!json_is_string(x)) return BAD("%s.mime_type: expected a string, got %s", path, type_name(x));
                mime = json_string_value(x);
                if (strcmp(mime, "text/plain") && strcmp(mime, "application/json"))
                    return BAD("%s.mime_type: '%s' is not supported (text/plain, application/json)", path, mime);
            } else if (!strcmp(k, "schema")) {
                if (json_is_null(x)) continue;
                if (!json_is_object(x) && !json_is_boolean(x))
                    return BAD("%s.schema: expected a JSON Schema object, got %s", path, type_name(x));
                schema = x;
            } else {
                return BAD("%s.%s: unknown field", path, k);
            }
        }
        if (schema && mime && strcmp(mime, "application/json"))
            return BAD("%s.schema: needs mime_type application/json", path);
        if (schema || (mime && !strcmp(mime, "application/json"))) {
            r->json_output = true;
            r->response_schema = schema;
        }
    }
    r->response_format = v;
    return true;
}

void create_req_clear(create_req *r) {
    json_decref(r->context);
    json_decref(r->turn);
    memset(r, 0, sizeof *r);
}

bool cst_api_parse_create(json_t *body, create_req *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    r->store = true;
    if (!json_is_object(body)) return BAD("the request body must be a JSON object, got %s", type_name(body));
    const char *k;
    json_t *v;
    json_t *input = NULL;
    bool ok = true;
    json_object_foreach(body, k, v) {
        if (!strcmp(k, "model")) ok = get_str(v, "model", &r->model, err, errlen);
        else if (!strcmp(k, "input")) input = json_is_null(v) ? NULL : v;
        else if (!strcmp(k, "system_instruction")) ok = get_str(v, "system_instruction", &r->system_instruction, err, errlen);
        else if (!strcmp(k, "generation_config")) {
            if (!json_is_null(v)) {
                r->generation_config = v;
                ok = parse_gen_config(v, r, err, errlen);
            }
        } else if (!strcmp(k, "stream")) ok = get_bool(v, "stream", &r->stream, err, errlen);
        else if (!strcmp(k, "store")) ok = get_bool(v, "store", &r->store, err, errlen);
        else if (!strcmp(k, "background")) ok = get_bool(v, "background", &r->background, err, errlen);
        else if (!strcmp(k, "previous_interaction_id")) {
            ok = get_str(v, "previous_interaction_id", &r->previous_id, err, errlen);
            if (ok && r->previous_id && !*r->previous_id) ok = BAD("previous_interaction_id: empty string");
        } else if (!strcmp(k, "labels")) {
            if (json_is_null(v)) continue;
            if (!json_is_object(v)) ok = BAD("labels: expected an object, got %s", type_name(v));
            const char *lk;
            json_t *lv;
            if (ok) json_object_foreach(v, lk, lv) {
                if (!json_is_string(lv)) {
                    ok = BAD("labels.%s: expected a string, got %s", lk, type_name(lv));
                    break;
                }
            }
            if (ok) r->labels = v;
        } else if (!strcmp(k, "service_tier")) {
            static const char *tiers[] = {"flex", "standard", "priority", "deferred"};
            if (json_is_null(v)) continue;
            if (!json_is_string(v)) ok = BAD("service_tier: expected a string, got %s", type_name(v));
            else if (!in_list(json_string_value(v), tiers, 4))
                ok = BAD("service_tier: '%s' is not one of flex, standard, priority, deferred", json_string_value(v));
        } else if (!strcmp(k, "safety_settings")) {
            if (!json_is_null(v) && !json_is_array(v)) ok = BAD("safety_settings: expected an array, got %s", type_name(v));
        } else if (!strcmp(k, "response_modalities")) {
            if (json_is_null(v)) continue;
            if (!json_is_array(v)) ok = BAD("response_modalities: expected an array, got %s", type_name(v));
            size_t i;
            json_t *e;
            if (ok) json_array_foreach(v, i, e) {
                if (!json_is_string(e)) {
                    ok = BAD("response_modalities[%zu]: expected a string, got %s", i, type_name(e));
                    break;
                }
                if (strcasecmp(json_string_value(e), "text")) {
                    ok = BAD("response_modalities[%zu]: '%s' output is not supported (only text)", i, json_string_value(e));
                    break;
                }
            }
        } else if (!strcmp(k, "response_mime_type")) {
            if (json_is_null(v)) continue;
            if (!json_is_string(v)) ok = BAD("response_mime_type: expected a string, got %s", type_name(v));
            else if (!strcmp(json_string_value(v), "application/json")) r->json_output = true;
            else if (strcmp(json_string_value(v), "text/plain"))
                ok = BAD("response_mime_type: '%s' is not supported (text/plain, application/json)", json_string_value(v));
            if (ok) r->response_mime = json_string_value(v);
        } else if (!strcmp(k, "response_format")) {
            if (!json_is_null(v)) ok = parse_response_format(v, r, err, errlen);
        } else if (!strcmp(k, "tools")) {
            if (!json_is_null(v)) {
                if (!json_is_array(v)) ok = BAD("tools: expected an array, got %s", type_name(v));
                else ok = cst_tools_parse(v, &r->tools, err, errlen);
            }
        } else if (!strcmp(k, "continuation_token")) {
            if (!json_is_null(v)) ok = BAD("continuation_token: this server never issues continuation tokens");
        } else if (!strcmp(k, "webhook_config") || !strcmp(k, "cached_content") || !strcmp(k, "environment") ||
                   !strcmp(k, "agent") || !strcmp(k, "agent_config")) {
            if (!json_is_null(v)) ok = BAD("%s: not supported by this server", k);
        } else {
            ok = BAD("%s: unknown field", k);
        }
        if (!ok) return false;
    }
    if (!r->model) return BAD("model: required");
    if (!*r->model) return BAD("model: empty string");
    if (!input) return BAD("input: required");
    if (r->background && !r->store) return BAD("background: requires store (store is false)");
    if (!cst_tools_check(&r->tools, err, errlen)) return false;
    if (r->tools.tools && r->json_output)
        return BAD("response_format: JSON output together with tools is not supported (send one or the other)");
    r->input = input;
    if (!norm_input(input, r, err, errlen)) {
        create_req_clear(r);
        return false;
    }
    return true;
}
