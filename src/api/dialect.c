/* dialect.c: what the dialects share: their routes (Gemini generateContent,
 * OpenAI chat completions, the models list that both official clients read
 * at /v1/models, each answered in its own shape), the error style of those
 * routes, and the one way a dialect request runs: its Interactions body goes
 * through cst_route_create (validation, chat rendering, scheduler, run) with
 * a cst_dialect_out that answers in the dialect's shape.
 */
#include "dialect.h"

#include <ctype.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

json_t *cst_dialect_bad(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return NULL;
}

const char *cst_dialect_jtype(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

void cst_dialect_camel(const char *key, char *out, size_t n) {
    size_t k = 0;
    bool up = false;
    for (const char *p = key; *p && k + 1 < n; p++) {
        if (*p == '_' && k > 0) {
            up = true;
            continue;
        }
        out[k++] = up ? (char)toupper((unsigned char)*p) : *p;
        up = false;
    }
    out[k] = 0;
}

json_t *cst_dialect_schema(json_t *schema) {
    if (json_is_array(schema)) {
        json_t *a = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(schema, i, e) json_array_append_new(a, cst_dialect_schema(e));
        return a;
    }
    if (!json_is_object(schema)) return json_deep_copy(schema);
    json_t *o = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(schema, k, v) {
        if (!strcmp(k, "type") && json_is_string(v)) {
            char t[32];
            snprintf(t, sizeof t, "%s", json_string_value(v));
            for (char *p = t; *p; p++) *p = (char)tolower((unsigned char)*p);
            json_object_set_new(o, k, json_string(t));
        } else {
            json_object_set_new(o, k, cst_dialect_schema(v));
        }
    }
    return o;
}

void cst_dialect_outputs(json_t *interaction, const char **thought, const char **text, const char **signature) {
    *thought = *text = *signature = NULL;
    json_t *steps = json_object_get(interaction, "steps");
    size_t i;
    json_t *st;
    json_array_foreach(steps, i, st) {
        const char *t = json_string_value(json_object_get(st, "type"));
        if (!t) continue;
        if (!strcmp(t, "thought")) {
            const char *sig = json_string_value(json_object_get(st, "signature"));
            if (sig && *sig) *signature = sig;
            json_t *sum = json_array_get(json_object_get(st, "summary"), 0);
            if (json_is_string(json_object_get(sum, "text"))) *thought = json_string_value(json_object_get(sum, "text"));
        } else if (!strcmp(t, "model_output")) {
            json_t *c0 = json_array_get(json_object_get(st, "content"), 0);
            if (json_is_string(json_object_get(c0, "text"))) *text = json_string_value(json_object_get(c0, "text"));
        }
    }
}

enum MHD_Result cst_dialect_run(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner, json_t *ibody,
                                cst_dialect_out *out) {
    cs->xbody = ibody;
    cs->xout = out;
    enum MHD_Result ret = cst_route_create(s, c, cs, owner);
    cs->xbody = NULL;
    cs->xout = NULL;
    if (out->ctx && out->ctx_free) out->ctx_free(out->ctx); /* not taken by a stream writer */
    out->ctx = NULL;
    return ret;
}

/* ---- models ------------------------------------------------------------- */

json_t *cst_gemini_model_json(cst_server *s, size_t i) {
    smodel *sm = &s->models[i];
    json_t *al = json_array();
    for (size_t k = 0; k < s->n_aliases; k++)
        if (s->aliases[k].model == (int)i) json_array_append_new(al, json_string(s->aliases[k].name));
    char name[512];
    snprintf(name, sizeof name, "models/%s", sm->stem);
    const int n_ctx = cst_sched_n_ctx(sm->sched);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:[s,s,s,s],s:b,s:f,s:f,s:f,s:i,s:o,s:b}", "name", name,
                     "baseModelId", sm->stem, "version", "castor", "displayName", cst_model_name(sm->m), "description",
                     cst_model_desc(sm->m), "inputTokenLimit", n_ctx, "outputTokenLimit", n_ctx,
                     "supportedGenerationMethods", "generateContent", "streamGenerateContent", "countTokens",
                     "interactions", "thinking", sm->chat.can_think, "temperature", 1.0, "maxTemperature", 2.0,
                     "topP", 0.95, "topK", 40, "aliases", al, "default", i == 0);
}

static json_t *openai_model_json(cst_server *s, size_t i) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", s->models[i].stem, "object", "model", "created",
                     (json_int_t)time(NULL), "owned_by", "castor");
}

/* OpenAI's client sends only "Authorization: Bearer"; Google's sends
 * x-goog-api-key or ?key= */
static bool openai_client(struct MHD_Connection *c) {
    const char *hk = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-goog-api-key");
    const char *qk = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key");
    const char *ah = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    return !hk && !qk && ah && !strncasecmp(ah, "Bearer ", 7);
}

static enum MHD_Result models_route(cst_server *s, struct MHD_Connection *c, conn *cs, const char *rest,
                                    const char *method, const char *owner, bool openai) {
    if (!strcmp(rest, "models")) {
        if (strcmp(method, "GET")) return cst_api_error(c, E_NOT_FOUND, "no route for %s models", method);
        json_t *arr = json_array();
        for (size_t i = 0; i < s->n_models; i++)
            json_array_append_new(arr, openai ? openai_model_json(s, i) : cst_gemini_model_json(s, i));
        if (openai) return cst_api_json(c, 200, json_pack("{s:s,s:o}", "object", "list", "data", arr));
        return cst_api_json(c, 200, json_pack("{s:o}", "models", arr));
    }
    const char *name = rest + 7;
    const char *colon = strrchr(name, ':');
    if (colon) {
        char model[256];
        const size_t n = (size_t)(colon - name);
        if (n == 0 || n >= sizeof model) return cst_api_error(c, E_NOT_FOUND, "model not found");
        memcpy(model, name, n);
        model[n] = 0;
        if (strcmp(method, "POST"))
            return cst_api_error(c, E_NOT_FOUND, "no route for %s models/%s (use POST)", method, name);
        return cst_gemini_route(s, c, cs, owner, model, colon + 1);
    }
    if (strcmp(method, "GET")) return cst_api_error(c, E_NOT_FOUND, "no route for %s models/%s", method, name);
    for (size_t i = 0; i < s->n_models; i++)
        if (cst_api_find_model(s, name) == &s->models[i])
            return cst_api_json(c, 200, openai ? openai_model_json(s, i) : cst_gemini_model_json(s, i));
    return cst_api_error(c, E_NOT_FOUND, "model '%s' not found", name);
}

/* ---- the playground page (src/api/playground.html, embedded by CMake) ------- */

extern const unsigned char cst_playground_html[];
extern const unsigned long cst_playground_html_len;

static enum MHD_Result playground(struct MHD_Connection *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(cst_playground_html_len, (void *)cst_playground_html,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                            "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

bool cst_dialect_dispatch(cst_server *s, struct MHD_Connection *c, conn *cs, const char *path, const char *method,
                          enum MHD_Result *ret) {
    if (!strcmp(path, "/") || !strcmp(path, "/playground")) {
        *ret = strcmp(method, "GET") && strcmp(method, "HEAD")
                   ? cst_api_error(c, E_NOT_FOUND, "no route for %s %s", method, path)
                   : playground(c);
        return true;
    }
    const char *rest;
    if (!strncmp(path, "/v1beta/", 8)) rest = path + 8;
    else if (!strncmp(path, "/v1alpha/", 9)) rest = path + 9;
    else if (!strncmp(path, "/v1/", 4)) rest = path + 4;
    else return false;
    const bool v1 = !strncmp(path, "/v1/", 4);
    const bool chat = v1 && !strcmp(rest, "chat/completions");
    const bool models = !strcmp(rest, "models") || !strncmp(rest, "models/", 7);
    if (!chat && !models) return false;
    const bool openai = chat || openai_client(c);
    cst_api_set_err_style(openai ? ERR_STYLE_OPENAI : ERR_STYLE_RPC);
    char owner[65];
    if (!cst_api_auth(s, c, owner, ret)) {
    } else if (chat) {
        if (strcmp(method, "POST")) *ret = cst_api_error(c, E_NOT_FOUND, "no route for %s /v1/chat/completions", method);
        else if (atomic_load(&s->draining)) *ret = cst_api_error(c, E_UNAVAILABLE, "the server is shutting down");
        else *ret = cst_openai_chat(s, c, cs, owner);
    } else {
        if (!openai) cst_api_set_err_style(ERR_STYLE_RPC);
        *ret = models_route(s, c, cs, rest, method, owner, openai);
    }
    cst_api_set_err_style(ERR_STYLE_INTERACTIONS);
    return true;
}
