/* dialect_gemini.c: the Gemini API's models/{m}:generateContent,
 * :streamGenerateContent (?alt=sse, or one JSON array streamed) and
 * :countTokens as a mapping onto the Interactions request: contents become
 * steps (user_input, model_output, thought with its signature, function
 * calls and results), systemInstruction the system_instruction,
 * generationConfig the generation_config (thinkingConfig -> thinking_level /
 * thinking_summaries, responseMimeType + responseSchema -> response_format),
 * tools / toolConfig -> tools / tool_choice. Field names are taken in
 * camelCase or snake_case, as the REST API does; unknown or unsupported
 * fields are a 400 naming them. The run's result and its events come back
 * as GenerateContentResponse objects.
 */
#include "dialect.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>

#define BAD(...) cst_dialect_bad(err, errlen, __VA_ARGS__)

/* ---- request ------------------------------------------------------------- */

/* One part of a user turn: a content block appended to content, or a
 * function_result step appended to results. */
static json_t *user_part(json_t *part, const char *path, json_t *content, json_t *results, char *err, size_t errlen) {
    const char *k;
    json_t *v;
    json_object_foreach(part, k, v) {
        char ck[64];
        cst_dialect_camel(k, ck, sizeof ck);
        if (json_is_null(v)) continue;
        if (!strcmp(ck, "text")) {
            if (!json_is_string(v)) return BAD("%s.text: expected a string, got %s", path, cst_dialect_jtype(v));
            json_array_append_new(content, json_pack("{s:s,s:O}", "type", "text", "text", v));
        } else if (!strcmp(ck, "inlineData") || !strcmp(ck, "fileData")) {
            const bool inl = ck[0] == 'i';
            if (!json_is_object(v)) return BAD("%s.%s: expected an object, got %s", path, ck, cst_dialect_jtype(v));
            json_t *mime = NULL, *val = NULL;
            const char *bk;
            json_t *bv;
            json_object_foreach(v, bk, bv) {
                char cb[64];
                cst_dialect_camel(bk, cb, sizeof cb);
                if (!strcmp(cb, "mimeType")) mime = bv;
                else if (!strcmp(cb, inl ? "data" : "fileUri")) val = bv;
                else if (!strcmp(cb, "displayName")) continue;
                else return BAD("%s.%s.%s: unknown field", path, ck, bk);
            }
            if (!json_is_string(val))
                return BAD("%s.%s.%s: required string", path, ck, inl ? "data" : "fileUri");
            if (mime && !json_is_string(mime)) return BAD("%s.%s.mimeType: expected a string", path, ck);
            if (inl && !mime) return BAD("%s.inlineData.mimeType: required string", path);
            const char *mt = mime ? json_string_value(mime) : "image/";
            if (!strncmp(mt, "audio/", 6) || !strncmp(mt, "video/", 6))
                return BAD("%s.%s.mimeType: '%s' input is not supported (images and documents)", path, ck, mt);
            /* images; other types are documents (text, PDF...: the validator names what it reads) */
            json_t *b = json_pack("{s:s,s:O}", "type", strncmp(mt, "image/", 6) ? "document" : "image",
                                  inl ? "data" : "uri", val);
            if (mime) json_object_set(b, "mime_type", mime);
            json_array_append_new(content, b);
        } else if (!strcmp(ck, "functionResponse")) {
            json_t *name = json_object_get(v, "name"), *resp = json_object_get(v, "response"),
                   *id = json_object_get(v, "id");
            if (!json_is_string(name)) return BAD("%s.functionResponse.name: required string", path);
            json_t *st = json_pack("{s:s,s:O,s:s,s:o}", "type", "function_result", "name", name, "call_id",
                                   json_is_string(id) ? json_string_value(id) : json_string_value(name), "result",
                                   resp ? json_incref(resp) : json_object());
            json_array_append_new(results, st);
        } else if (!strcmp(ck, "thought") || !strcmp(ck, "thoughtSignature")) {
            return BAD("%s.%s: thoughts belong to model turns", path, ck);
        } else if (!strcmp(ck, "functionCall")) {
            return BAD("%s.functionCall: function calls belong to model turns", path);
        } else if (!strcmp(ck, "videoMetadata") || !strcmp(ck, "executableCode") ||
                   !strcmp(ck, "codeExecutionResult") || !strcmp(ck, "mediaResolution")) {
            return BAD("%s.%s: not supported by this server", path, ck);
        } else {
            return BAD("%s.%s: unknown field", path, k);
        }
    }
    return content;
}

/* A model turn: [thought (signature)] [model_output (text)] [function_call...] */
static bool model_turn(json_t *parts, const char *path, json_t *steps, char *err, size_t errlen) {
    const char *sig = NULL;
    json_t *text = json_array(), *calls = json_array();
    size_t i;
    json_t *part;
    bool ok = true;
    json_array_foreach(parts, i, part) {
        if (!json_is_object(part)) {
            ok = !!BAD("%s[%zu]: expected an object, got %s", path, i, cst_dialect_jtype(part));
            break;
        }
        bool thought = false;
        json_t *tx = NULL;
        const char *k;
        json_t *v;
        json_object_foreach(part, k, v) {
            char ck[64];
            cst_dialect_camel(k, ck, sizeof ck);
            if (json_is_null(v)) continue;
            if (!strcmp(ck, "text")) {
                if (!json_is_string(v)) {
                    ok = !!BAD("%s[%zu].text: expected a string, got %s", path, i, cst_dialect_jtype(v));
                    break;
                }
                tx = v;
            } else if (!strcmp(ck, "thought")) {
                thought = json_is_true(v);
            } else if (!strcmp(ck, "thoughtSignature")) {
                if (!json_is_string(v)) {
                    ok = !!BAD("%s[%zu].thoughtSignature: expected a string, got %s", path, i, cst_dialect_jtype(v));
                    break;
                }
                if (!sig) sig = json_string_value(v);
            } else if (!strcmp(ck, "functionCall")) {
                json_t *name = json_object_get(v, "name"), *args = json_object_get(v, "args"),
                       *id = json_object_get(v, "id");
                if (!json_is_string(name)) {
                    ok = !!BAD("%s[%zu].functionCall.name: required string", path, i);
                    break;
                }
                json_array_append_new(calls, json_pack("{s:s,s:s,s:O,s:o}", "type", "function_call", "id",
                                                       json_is_string(id) ? json_string_value(id)
                                                                          : json_string_value(name),
                                                       "name", name, "arguments",
                                                       args ? json_incref(args) : json_object()));
            } else if (!strcmp(ck, "inlineData") || !strcmp(ck, "fileData")) {
                ok = !!BAD("%s[%zu].%s: media in model turns is not supported", path, i, ck);
                break;
            } else {
                ok = !!BAD("%s[%zu].%s: unknown or unsupported field in a model turn", path, i, k);
                break;
            }
        }
        if (!ok) break;
        /* thought text cannot be trusted back into the prompt; the signature
         * carries the reasoning (§7) */
        if (tx && !thought) json_array_append_new(text, json_pack("{s:s,s:O}", "type", "text", "text", tx));
    }
    if (ok) {
        if (sig) json_array_append_new(steps, json_pack("{s:s,s:s}", "type", "thought", "signature", sig));
        if (json_array_size(text) > 0 || json_array_size(calls) == 0)
            json_array_append_new(steps, json_pack("{s:s,s:O}", "type", "model_output", "content", text));
        json_array_extend(steps, calls);
    }
    json_decref(text);
    json_decref(calls);
    return ok;
}

static json_t *map_contents(json_t *contents, char *err, size_t errlen) {
    if (!contents) return BAD("contents: required");
    if (json_is_object(contents)) {
        json_t *a = json_array();
        json_array_append(a, contents);
        json_t *r = map_contents(a, err, errlen);
        json_decref(a);
        return r;
    }
    if (!json_is_array(contents)) return BAD("contents: expected an array, got %s", cst_dialect_jtype(contents));
    if (json_array_size(contents) == 0) return BAD("contents: empty array");
    json_t *steps = json_array();
    size_t i;
    json_t *ct;
    json_array_foreach(contents, i, ct) {
        char path[64];
        snprintf(path, sizeof path, "contents[%zu]", i);
        if (!json_is_object(ct)) {
            json_decref(steps);
            return BAD("%s: expected an object, got %s", path, cst_dialect_jtype(ct));
        }
        const char *role = "user";
        json_t *parts = NULL;
        const char *k;
        json_t *v;
        json_object_foreach(ct, k, v) {
            if (!strcmp(k, "role")) {
                if (json_is_null(v)) continue;
                if (!json_is_string(v)) {
                    json_decref(steps);
                    return BAD("%s.role: expected a string, got %s", path, cst_dialect_jtype(v));
                }
                role = json_string_value(v);
            } else if (!strcmp(k, "parts")) {
                parts = v;
            } else {
                json_decref(steps);
                return BAD("%s.%s: unknown field", path, k);
            }
        }
        if (!json_is_array(parts)) {
            json_decref(steps);
            return BAD("%s.parts: required array", path);
        }
        char pp[80];
        snprintf(pp, sizeof pp, "%s.parts", path);
        if (!strcmp(role, "model")) {
            if (i + 1 == json_array_size(contents)) {
                json_decref(steps);
                return BAD("%s.role: the last content must be the user's turn (role user)", path);
            }
            if (!model_turn(parts, pp, steps, err, errlen)) {
                json_decref(steps);
                return NULL;
            }
            continue;
        }
        if (strcmp(role, "user") && strcmp(role, "function")) {
            json_decref(steps);
            return BAD("%s.role: '%s' is not one of user, model", path, role);
        }
        json_t *content = json_array(), *results = json_array();
        size_t j;
        json_t *part;
        bool ok = true;
        json_array_foreach(parts, j, part) {
            char p[128];
            snprintf(p, sizeof p, "%s[%zu]", pp, j);
            if (!json_is_object(part)) ok = !!BAD("%s: expected an object, got %s", p, cst_dialect_jtype(part));
            else ok = user_part(part, p, content, results, err, errlen) != NULL;
            if (!ok) break;
        }
        if (ok) {
            json_array_extend(steps, results);
            if (json_array_size(content) > 0 || json_array_size(results) == 0)
                json_array_append_new(steps, json_pack("{s:s,s:O}", "type", "user_input", "content", content));
        }
        json_decref(content);
        json_decref(results);
        if (!ok) {
            json_decref(steps);
            return NULL;
        }
    }
    return steps;
}

/* systemInstruction: a Content (text parts) or a string -> one string */
static json_t *map_system(json_t *si, char *err, size_t errlen) {
    if (json_is_string(si)) return json_incref(si);
    if (!json_is_object(si)) return BAD("systemInstruction: expected a Content object, got %s", cst_dialect_jtype(si));
    json_t *parts = json_object_get(si, "parts");
    if (!json_is_array(parts)) return BAD("systemInstruction.parts: required array");
    cst_buf b = {0};
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p) {
        json_t *t = json_object_get(p, "text");
        if (!json_is_string(t) || json_object_size(p) != 1) {
            cst_buf_free(&b);
            return BAD("systemInstruction.parts[%zu]: only text parts are supported", i);
        }
        if (b.len) cst_buf_put(&b, "\n", 1);
        cst_buf_put(&b, json_string_value(t), json_string_length(t));
    }
    json_t *r = json_stringn(b.p ? b.p : "", b.len);
    cst_buf_free(&b);
    return r;
}

/* thinkingBudget -> a level (the server's budgets per level are per model;
 * these are the default budgets' bounds) */
static const char *budget_level(int64_t b) {
    if (b == 0) return "minimal";
    if (b <= 1024) return "low";
    if (b <= 4096) return "medium";
    return "high";
}

static bool map_gen_config(json_t *g, json_t *gc, json_t *body, char *err, size_t errlen) {
    if (!json_is_object(g)) return !!BAD("generationConfig: expected an object, got %s", cst_dialect_jtype(g));
    json_t *mime = NULL, *schema = NULL;
    const char *schema_name = NULL;
    const char *k;
    json_t *v;
    json_object_foreach(g, k, v) {
        char ck[64];
        cst_dialect_camel(k, ck, sizeof ck);
        if (json_is_null(v)) continue;
        static const struct {
            const char *from, *to;
        } same[] = {{"temperature", "temperature"},     {"topP", "top_p"},   {"topK", "top_k"},
                    {"maxOutputTokens", "max_output_tokens"}, {"stopSequences", "stop_sequences"}, {"seed", "seed"}};
        bool done = false;
        for (size_t i = 0; i < CST_ARRAY_LEN(same) && !done; i++)
            if (!strcmp(ck, same[i].from)) {
                json_object_set(gc, same[i].to, v);
                done = true;
            }
        if (done) continue;
        if (!strcmp(ck, "candidateCount")) {
            if (!json_is_integer(v) || json_integer_value(v) != 1)
                return !!BAD("generationConfig.candidateCount: only 1 candidate is supported");
        } else if (!strcmp(ck, "responseMimeType")) {
            if (!json_is_string(v)) return !!BAD("generationConfig.responseMimeType: expected a string, got %s", cst_dialect_jtype(v));
            mime = v;
        } else if (!strcmp(ck, "responseSchema") || !strcmp(ck, "responseJsonSchema")) {
            if (!json_is_object(v)) return !!BAD("generationConfig.%s: expected an object, got %s", ck, cst_dialect_jtype(v));
            schema = v;
            schema_name = k;
        } else if (!strcmp(ck, "thinkingConfig")) {
            if (!json_is_object(v)) return !!BAD("generationConfig.thinkingConfig: expected an object, got %s", cst_dialect_jtype(v));
            const char *tk;
            json_t *tv;
            json_object_foreach(v, tk, tv) {
                char ct[64];
                cst_dialect_camel(tk, ct, sizeof ct);
                if (json_is_null(tv)) continue;
                if (!strcmp(ct, "includeThoughts")) {
                    if (!json_is_boolean(tv))
                        return !!BAD("generationConfig.thinkingConfig.includeThoughts: expected a boolean");
                    json_object_set_new(gc, "thinking_summaries", json_string(json_is_true(tv) ? "auto" : "none"));
                } else if (!strcmp(ct, "thinkingBudget")) {
                    if (!json_is_integer(tv) || json_integer_value(tv) < -1)
                        return !!BAD("generationConfig.thinkingConfig.thinkingBudget: expected an integer >= -1");
                    if (json_integer_value(tv) >= 0 && !json_object_get(gc, "thinking_level"))
                        json_object_set_new(gc, "thinking_level", json_string(budget_level(json_integer_value(tv))));
                } else if (!strcmp(ct, "thinkingLevel")) {
                    if (!json_is_string(tv))
                        return !!BAD("generationConfig.thinkingConfig.thinkingLevel: expected a string");
                    char lv[16];
                    snprintf(lv, sizeof lv, "%s", json_string_value(tv));
                    for (char *p = lv; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
                    if (strcmp(lv, "minimal") && strcmp(lv, "low") && strcmp(lv, "medium") && strcmp(lv, "high"))
                        return !!BAD("generationConfig.thinkingConfig.thinkingLevel: '%s' is not one of MINIMAL, LOW, "
                                     "MEDIUM, HIGH",
                                     json_string_value(tv));
                    json_object_set_new(gc, "thinking_level", json_string(lv));
                } else {
                    return !!BAD("generationConfig.thinkingConfig.%s: unknown field", tk);
                }
            }
        } else if (!strcmp(ck, "responseModalities")) {
            json_object_set(body, "response_modalities", v);
        } else if (!strcmp(ck, "presencePenalty") || !strcmp(ck, "frequencyPenalty")) {
            if (!json_is_number(v) || json_number_value(v) != 0.0)
                return !!BAD("generationConfig.%s: penalties are not supported by this server", ck);
        } else if (!strcmp(ck, "responseLogprobs")) {
            if (!json_is_false(v)) return !!BAD("generationConfig.responseLogprobs: not supported by this server");
        } else if (!strcmp(ck, "logprobs") || !strcmp(ck, "speechConfig") || !strcmp(ck, "mediaResolution") ||
                   !strcmp(ck, "enableEnhancedCivicAnswers") || !strcmp(ck, "audioTimestamp") ||
                   !strcmp(ck, "routingConfig") || !strcmp(ck, "modelSelectionConfig") ||
                   !strcmp(ck, "imageConfig") || !strcmp(ck, "enableAffectiveDialog")) {
            return !!BAD("generationConfig.%s: not supported by this server", k);
        } else {
            return !!BAD("generationConfig.%s: unknown field", k);
        }
    }
    const char *m = mime ? json_string_value(mime) : "text/plain";
    if (!strcmp(m, "application/json")) {
        json_t *rf = json_pack("{s:s,s:s}", "type", "text", "mime_type", "application/json");
        if (schema) json_object_set_new(rf, "schema", cst_dialect_schema(schema));
        json_object_set_new(body, "response_format", rf);
    } else if (strcmp(m, "text/plain")) {
        return !!BAD("generationConfig.responseMimeType: '%s' is not supported (text/plain, application/json)", m);
    } else if (schema) {
        return !!BAD("generationConfig.%s: needs responseMimeType application/json", schema_name);
    }
    return true;
}

static bool map_tools(json_t *tools, json_t *body, char *err, size_t errlen) {
    if (!json_is_array(tools)) return !!BAD("tools: expected an array, got %s", cst_dialect_jtype(tools));
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        if (!json_is_object(t)) {
            json_decref(out);
            return !!BAD("tools[%zu]: expected an object, got %s", i, cst_dialect_jtype(t));
        }
        const char *k;
        json_t *v;
        json_object_foreach(t, k, v) {
            char ck[64];
            cst_dialect_camel(k, ck, sizeof ck);
            if (json_is_null(v)) continue;
            if (strcmp(ck, "functionDeclarations")) {
                json_decref(out);
                return !!BAD("tools[%zu].%s: only functionDeclarations are supported (no server-side tools)", i, k);
            }
            if (!json_is_array(v)) {
                json_decref(out);
                return !!BAD("tools[%zu].functionDeclarations: expected an array, got %s", i, cst_dialect_jtype(v));
            }
            size_t j;
            json_t *fd;
            json_array_foreach(v, j, fd) {
                json_t *name = json_object_get(fd, "name");
                if (!json_is_string(name)) {
                    json_decref(out);
                    return !!BAD("tools[%zu].functionDeclarations[%zu].name: required string", i, j);
                }
                json_t *f = json_pack("{s:s,s:O}", "type", "function", "name", name);
                const char *fk;
                json_t *fv;
                json_object_foreach(fd, fk, fv) {
                    char cf[64];
                    cst_dialect_camel(fk, cf, sizeof cf);
                    if (!strcmp(cf, "name") || json_is_null(fv)) continue;
                    if (!strcmp(cf, "description")) json_object_set(f, "description", fv);
                    else if (!strcmp(cf, "parameters")) json_object_set_new(f, "parameters", cst_dialect_schema(fv));
                    else if (!strcmp(cf, "parametersJsonSchema")) json_object_set(f, "parameters", fv);
                    else if (!strcmp(cf, "response") || !strcmp(cf, "responseJsonSchema") || !strcmp(cf, "behavior"))
                        continue; /* the function's own output shape: the model is not asked to produce it */
                    else {
                        json_decref(f);
                        json_decref(out);
                        return !!BAD("tools[%zu].functionDeclarations[%zu].%s: unknown field", i, j, fk);
                    }
                }
                json_array_append_new(out, f);
            }
        }
    }
    json_object_set_new(body, "tools", out);
    return true;
}

static bool map_tool_config(json_t *tc, json_t *gc, char *err, size_t errlen) {
    if (!json_is_object(tc)) return !!BAD("toolConfig: expected an object, got %s", cst_dialect_jtype(tc));
    const char *k;
    json_t *v;
    json_object_foreach(tc, k, v) {
        char ck[64];
        cst_dialect_camel(k, ck, sizeof ck);
        if (json_is_null(v)) continue;
        if (strcmp(ck, "functionCallingConfig")) return !!BAD("toolConfig.%s: not supported by this server", k);
        json_t *mode = json_object_get(v, "mode"), *names = json_object_get(v, "allowedFunctionNames");
        if (!names) names = json_object_get(v, "allowed_function_names");
        char m[24] = "auto";
        if (json_is_string(mode)) snprintf(m, sizeof m, "%s", json_string_value(mode));
        for (char *p = m; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        if (!strcmp(m, "mode_unspecified")) strcpy(m, "auto");
        if (strcmp(m, "auto") && strcmp(m, "any") && strcmp(m, "none") && strcmp(m, "validated"))
            return !!BAD("toolConfig.functionCallingConfig.mode: '%s' is not one of AUTO, ANY, NONE, VALIDATED", m);
        if (json_is_array(names) && json_array_size(names) > 0)
            json_object_set_new(gc, "tool_choice", json_pack("{s:{s:s,s:O}}", "allowed_tools", "mode", m, "tools", names));
        else json_object_set_new(gc, "tool_choice", json_string(m));
    }
    return true;
}

json_t *cst_gemini_request(json_t *req, const char *model, bool stream, char *err, size_t errlen) {
    if (!json_is_object(req)) return BAD("the request body must be a JSON object, got %s", cst_dialect_jtype(req));
    json_t *inner = json_object_get(req, "generateContentRequest"); /* countTokens' full form */
    if (!inner) inner = json_object_get(req, "generate_content_request");
    if (json_is_object(inner)) req = inner;
    json_t *body = json_pack("{s:s,s:b,s:b}", "model", model, "stream", stream, "store", false);
    json_t *gc = json_object();
    json_t *contents = NULL;
    const char *k;
    json_t *v;
    bool ok = true;
    json_object_foreach(req, k, v) {
        char ck[64];
        cst_dialect_camel(k, ck, sizeof ck);
        if (json_is_null(v)) continue;
        if (!strcmp(ck, "contents")) contents = v;
        else if (!strcmp(ck, "model")) continue; /* the path names the model */
        else if (!strcmp(ck, "systemInstruction")) {
            json_t *si = map_system(v, err, errlen);
            ok = si != NULL;
            if (ok) json_object_set_new(body, "system_instruction", si);
        } else if (!strcmp(ck, "generationConfig")) ok = map_gen_config(v, gc, body, err, errlen);
        else if (!strcmp(ck, "tools")) ok = map_tools(v, body, err, errlen);
        else if (!strcmp(ck, "toolConfig")) ok = map_tool_config(v, gc, err, errlen);
        else if (!strcmp(ck, "safetySettings")) json_object_set(body, "safety_settings", v);
        else if (!strcmp(ck, "labels")) json_object_set(body, "labels", v);
        else if (!strcmp(ck, "cachedContent")) ok = !!BAD("cachedContent: not supported by this server");
        else if (!strcmp(ck, "generateContentRequest")) continue;
        else ok = !!BAD("%s: unknown field", k);
        if (!ok) break;
    }
    json_t *steps = ok ? map_contents(contents, err, errlen) : NULL;
    if (!steps) {
        json_decref(body);
        json_decref(gc);
        return NULL;
    }
    json_object_set_new(body, "input", steps);
    if (json_object_size(gc) > 0) json_object_set_new(body, "generation_config", gc);
    else json_decref(gc);
    return body;
}

/* ---- response -------------------------------------------------------------- */

static const char *finish_reason(const char *status) {
    if (!status) return "STOP";
    if (!strcmp(status, "incomplete")) return "MAX_TOKENS";
    if (!strcmp(status, "cancelled") || !strcmp(status, "failed")) return "OTHER";
    return "STOP"; /* completed, requires_action */
}

static json_t *usage_metadata(json_t *u) {
    if (!json_is_object(u)) return NULL;
    json_int_t in = json_integer_value(json_object_get(u, "total_input_tokens"));
    json_int_t out = json_integer_value(json_object_get(u, "total_output_tokens"));
    json_int_t th = json_integer_value(json_object_get(u, "total_thought_tokens"));
    json_int_t ca = json_integer_value(json_object_get(u, "total_cached_tokens"));
    json_t *m = json_pack("{s:I,s:I,s:I}", "promptTokenCount", in, "candidatesTokenCount", out, "totalTokenCount",
                          in + out + th);
    if (th > 0) json_object_set_new(m, "thoughtsTokenCount", json_integer(th));
    if (ca > 0) json_object_set_new(m, "cachedContentTokenCount", json_integer(ca));
    json_t *det = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(u, "input_tokens_by_modality"), i, e) {
        char mod[16];
        const char *mv = json_string_value(json_object_get(e, "modality"));
        snprintf(mod, sizeof mod, "%s", mv ? mv : "text");
        for (char *p = mod; *p; p++) *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        json_array_append_new(det, json_pack("{s:s,s:O}", "modality", mod, "tokenCount", json_object_get(e, "tokens")));
    }
    json_object_set_new(m, "promptTokensDetails", det);
    return m;
}

static json_t *candidate(json_t *parts, const char *finish) {
    json_t *c = json_pack("{s:{s:o,s:s},s:i}", "content", "parts", parts, "role", "model", "index", 0);
    if (finish) json_object_set_new(c, "finishReason", json_string(finish));
    return c;
}

json_t *cst_gemini_response(json_t *ix) {
    json_t *parts = json_array();
    const char *thought, *text, *sig;
    cst_dialect_outputs(ix, &thought, &text, &sig);
    if (thought) json_array_append_new(parts, json_pack("{s:s,s:b}", "text", thought, "thought", true));
    if (text || json_array_size(parts) == 0) {
        json_t *p = json_pack("{s:s}", "text", text ? text : "");
        json_array_append_new(parts, p);
    }
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(ix, "steps"), i, st) {
        const char *t = json_string_value(json_object_get(st, "type"));
        if (t && !strcmp(t, "function_call"))
            json_array_append_new(parts, json_pack("{s:{s:O?,s:O?,s:O?}}", "functionCall", "id", json_object_get(st, "id"),
                                                   "name", json_object_get(st, "name"), "args",
                                                   json_object_get(st, "arguments")));
    }
    /* the signature rides on the first part after the thought */
    if (sig) {
        json_t *p = json_array_get(parts, thought ? 1 : 0);
        if (!p) p = json_array_get(parts, 0);
        json_object_set_new(p, "thoughtSignature", json_string(sig));
    }
    const char *status = json_string_value(json_object_get(ix, "status"));
    json_t *r = json_pack("{s:[o],s:s?,s:s?}", "candidates", candidate(parts, finish_reason(status)), "modelVersion",
                          json_string_value(json_object_get(ix, "model")), "responseId",
                          json_string_value(json_object_get(ix, "id")));
    json_t *um = usage_metadata(json_object_get(ix, "usage"));
    if (um) json_object_set_new(r, "usageMetadata", um);
    return r;
}

/* ---- routes ------------------------------------------------------------------ */

typedef struct gctx {
    bool sse;   /* alt=sse: "data: {...}\r\n\r\n" frames; else one JSON array */
    bool any;   /* a chunk was sent (array form: the next one needs a comma) */
    char model[256];
    char id[64];
    char *sig;  /* a thought signature waiting for the next part */
    json_t *call; /* a function_call step being streamed (its arguments come as deltas) */
    cst_buf args;
} gctx;

static void gctx_free(void *p) {
    gctx *g = p;
    if (!g) return;
    free(g->sig);
    json_decref(g->call);
    cst_buf_free(&g->args);
    free(g);
}

static char *chunk_text(gctx *g, json_t *chunk) {
    char *js = json_dumps(chunk, JSON_COMPACT);
    json_decref(chunk);
    if (!js) return NULL;
    size_t n = strlen(js) + 16;
    char *o = malloc(n);
    if (o) {
        if (g->sse) snprintf(o, n, "data: %s\r\n\r\n", js);
        else snprintf(o, n, "%s%s", g->any ? ",\r\n" : "[", js);
        g->any = true;
    }
    free(js);
    return o;
}

static json_t *chunk_of(gctx *g, json_t *parts, const char *finish) {
    if (g->sig && json_array_size(parts) > 0) {
        json_object_set_new(json_array_get(parts, json_array_size(parts) - 1), "thoughtSignature", json_string(g->sig));
        free(g->sig);
        g->sig = NULL;
    }
    return json_pack("{s:[o],s:s,s:s}", "candidates", candidate(parts, finish), "modelVersion", g->model, "responseId",
                     g->id);
}

static char *gemini_stream(void *ctx, const char *type, const char *data) {
    gctx *g = ctx;
    if (!type) return strdup(g->sse ? "" : g->any ? "]" : "[]");
    if (!strcmp(type, ":")) return strdup(g->sse ? ": keep-alive\r\n\r\n" : "\n");
    json_t *ev = json_loads(data, 0, NULL);
    if (!ev) return strdup("");
    char *out = NULL;
    if (!strcmp(type, "interaction.created")) {
        const char *id = json_string_value(json_object_get(json_object_get(ev, "interaction"), "id"));
        if (id) snprintf(g->id, sizeof g->id, "%s", id);
    } else if (!strcmp(type, "step.delta")) {
        json_t *d = json_object_get(ev, "delta");
        const char *dt = json_string_value(json_object_get(d, "type"));
        if (dt && !strcmp(dt, "text")) {
            out = chunk_text(g, chunk_of(g, json_pack("[{s:O}]", "text", json_object_get(d, "text")), NULL));
        } else if (dt && !strcmp(dt, "arguments_delta") && g->call) {
            json_t *a = json_object_get(d, "arguments");
            if (json_is_string(a)) cst_buf_put(&g->args, json_string_value(a), json_string_length(a));
        } else if (dt && !strcmp(dt, "thought_summary")) {
            json_t *t = json_object_get(json_object_get(d, "content"), "text");
            if (json_is_string(t))
                out = chunk_text(g, json_pack("{s:[o],s:s,s:s}", "candidates",
                                              candidate(json_pack("[{s:O,s:b}]", "text", t, "thought", true), NULL),
                                              "modelVersion", g->model, "responseId", g->id));
        } else if (dt && !strcmp(dt, "thought_signature")) {
            const char *s = json_string_value(json_object_get(d, "signature"));
            free(g->sig);
            g->sig = s && *s ? strdup(s) : NULL;
        }
    } else if (!strcmp(type, "step.start")) {
        /* a call's arguments follow as arguments_delta events: one functionCall part at its step.stop */
        json_t *st = json_object_get(ev, "step");
        const char *t = json_string_value(json_object_get(st, "type"));
        if (t && !strcmp(t, "function_call") && json_object_get(st, "name")) {
            json_decref(g->call);
            g->call = json_incref(st);
            cst_buf_free(&g->args);
        }
    } else if (!strcmp(type, "step.stop") && g->call) {
        json_t *args = g->args.len ? json_loadb(g->args.p, g->args.len, 0, NULL) : NULL;
        out = chunk_text(g, chunk_of(g,
                                     json_pack("[{s:{s:O?,s:O?,s:O?}}]", "functionCall", "id", json_object_get(g->call, "id"),
                                               "name", json_object_get(g->call, "name"), "args",
                                               args ? args : json_object_get(g->call, "arguments")),
                                     NULL));
        json_decref(args);
        json_decref(g->call);
        g->call = NULL;
        cst_buf_free(&g->args);
    } else if (!strcmp(type, "error")) {
        json_t *e = json_object_get(ev, "error");
        const char *code = json_string_value(json_object_get(e, "code"));
        const bool to = code && !strcmp(code, "gateway_timeout");
        const char *msg = json_string_value(json_object_get(e, "message"));
        out = chunk_text(g, cst_api_error_body(ERR_STYLE_RPC, to ? E_TIMEOUT : E_INTERNAL,
                                               msg ? msg : "generation failed"));
    } else if (!strcmp(type, "interaction.completed")) {
        json_t *ix = json_object_get(ev, "interaction");
        const char *status = json_string_value(json_object_get(ix, "status"));
        if (!status || strcmp(status, "failed")) {
            json_t *c = chunk_of(g, json_pack("[{s:s}]", "text", ""), finish_reason(status));
            json_t *um = usage_metadata(json_object_get(ix, "usage"));
            if (um) json_object_set_new(c, "usageMetadata", um);
            out = chunk_text(g, c);
        }
    }
    json_decref(ev);
    return out ? out : strdup("");
}

static enum MHD_Result gemini_unary(void *ctx, struct MHD_Connection *c, run *r) {
    (void)ctx;
    json_t *ix = cst_run_json(r, false, false);
    const char *status = json_string_value(json_object_get(ix, "status"));
    if (status && !strcmp(status, "failed")) {
        json_t *e = json_array_get(json_object_get(ix, "errors"), 0);
        const char *msg = json_string_value(json_object_get(e, "message"));
        enum MHD_Result ret = cst_api_error(c, E_INTERNAL, "generation failed: %s", msg ? msg : "engine error");
        json_decref(ix);
        return ret;
    }
    json_t *resp = cst_gemini_response(ix);
    json_decref(ix);
    return cst_api_json(c, 200, resp);
}

static enum MHD_Result gemini_count(void *ctx, struct MHD_Connection *c, size_t n) {
    (void)ctx;
    return cst_api_json(c, 200, json_pack("{s:I,s:[{s:s,s:I}]}", "totalTokens", (json_int_t)n, "promptTokensDetails",
                                          "modality", "TEXT", "tokenCount", (json_int_t)n));
}

enum MHD_Result cst_gemini_route(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner,
                                 const char *model, const char *method) {
    const bool gen = !strcmp(method, "generateContent"), sgen = !strcmp(method, "streamGenerateContent"),
               count = !strcmp(method, "countTokens");
    if (!gen && !sgen && !count)
        return cst_api_error(c, E_NOT_FOUND,
                             "models/%s:%s: unknown method (generateContent, streamGenerateContent, countTokens)", model,
                             method);
    if (cs->too_large)
        return cst_api_error(c, E_TOO_LARGE, "the request body is larger than the server limit of %zu bytes",
                             s->p.max_body);
    json_error_t je;
    json_t *req = json_loadb(cs->body ? cs->body : "", cs->len, JSON_REJECT_DUPLICATES, &je);
    if (!req)
        return cst_api_error(c, E_INVALID, "malformed JSON in the request body: %s (line %d, column %d)", je.text,
                             je.line, je.column);
    char err[1024];
    const char *alt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "alt");
    const bool sse = alt && !strcmp(alt, "sse");
    json_t *ib = cst_gemini_request(req, model, sgen, err, sizeof err);
    json_decref(req);
    if (!ib) return cst_api_error(c, E_INVALID, "%s", err);
    gctx *g = calloc(1, sizeof *g);
    if (!g) {
        json_decref(ib);
        return MHD_NO;
    }
    g->sse = sse;
    snprintf(g->model, sizeof g->model, "%s", model);
    cst_dialect_out out = {.ctx = g,
                           .ctx_free = gctx_free,
                           .stream = gemini_stream,
                           .stream_ctype = sse ? "text/event-stream" : "application/json; charset=utf-8",
                           .unary = gemini_unary,
                           .count = count ? gemini_count : NULL};
    enum MHD_Result ret = cst_dialect_run(s, c, cs, owner, ib, &out);
    json_decref(ib);
    return ret;
}
