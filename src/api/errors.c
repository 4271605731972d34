/* errors.c: every HTTP reply of the interactions surface goes through here:
 * JSON bodies with Content-Type application/json, CORS headers, and the error
 * funnel (status kind -> HTTP code + {"error":{"code","message"}}), which also
 * counts errors per kind for /metrics.
 */
#include "api_int.h"

#include <stdarg.h>
#include <string.h>

static const struct {
    int http;
    const char *code;
} kinds[E_KIND_LAST] = {
    [E_INVALID] = {400, "invalid_request"},     [E_PRECOND] = {400, "failed_precondition"},
    [E_UNAUTH] = {401, "unauthenticated"},      [E_DENIED] = {403, "permission_denied"},
    [E_NOT_FOUND] = {404, "not_found"},         [E_TOO_LARGE] = {413, "invalid_request"},
    [E_EXHAUSTED] = {429, "resource_exhausted"}, [E_INTERNAL] = {500, "internal"},
    [E_UNAVAILABLE] = {503, "unavailable"},     [E_TIMEOUT] = {504, "gateway_timeout"},
    [E_URI_TOO_LONG] = {414, "invalid_request"}, [E_HEADERS_TOO_LARGE] = {431, "invalid_request"},
    [E_UNIMPLEMENTED] = {501, "unimplemented"}, [E_HTTP_VERSION] = {505, "invalid_request"},
};

int cst_api_ekind_http(ekind k) { return kinds[k].http; }
const char *cst_api_ekind_code(ekind k) { return kinds[k].code; }

ekind cst_api_status_kind(cst_status st) {
    switch (st) {
    case CST_ERR_INVALID_ARG:
    case CST_ERR_BAD_FORMAT:
    case CST_ERR_UNSUPPORTED:
    case CST_ERR_CTX_FULL: return E_INVALID;
    case CST_ERR_NOT_FOUND: return E_NOT_FOUND;
    case CST_ERR_CONFLICT: return E_PRECOND;
    case CST_ERR_BUSY: return E_EXHAUSTED;
    case CST_ERR_CANCELLED: return E_UNAVAILABLE;
    default: return E_INTERNAL;
    }
}

void cst_api_utf8_fix(char *s) {
    /* messages quote client text (URLs, JSON parser snippets) and may be cut
     * mid-character by the buffer: replace every invalid byte by '?' so the
     * JSON encoder never refuses the reply */
    unsigned char *u = (unsigned char *)s;
    const size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        const size_t len = cst_utf8_char_len(u + i, n - i);
        if (len == 0) u[i++] = '?';
        else i += len;
    }
}

void cst_api_common_headers(struct MHD_Response *r) {
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", "x-goog-upload-url, x-goog-upload-status");
}

enum MHD_Result cst_api_json(struct MHD_Connection *c, int status, json_t *j) {
    return cst_api_json_id(c, status, j, NULL);
}

enum MHD_Result cst_api_json_id(struct MHD_Connection *c, int status, json_t *j, const char *id) {
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!txt) txt = strdup("{}");
    if (!txt) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(txt);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
    if (id) MHD_add_response_header(r, "X-Castor-Interaction-Id", id);
    cst_api_common_headers(r);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static _Thread_local err_style tl_style;

void cst_api_set_err_style(err_style st) { tl_style = st; }
err_style cst_api_get_err_style(void) { return tl_style; }

static const char *rpc_status_of(ekind k) {
    static const char *st[E_KIND_LAST] = {
        [E_INVALID] = "INVALID_ARGUMENT", [E_PRECOND] = "FAILED_PRECONDITION", [E_UNAUTH] = "UNAUTHENTICATED",
        [E_DENIED] = "PERMISSION_DENIED", [E_NOT_FOUND] = "NOT_FOUND",      [E_TOO_LARGE] = "INVALID_ARGUMENT",
        [E_EXHAUSTED] = "RESOURCE_EXHAUSTED", [E_INTERNAL] = "INTERNAL",    [E_UNAVAILABLE] = "UNAVAILABLE",
        [E_TIMEOUT] = "DEADLINE_EXCEEDED", [E_URI_TOO_LONG] = "INVALID_ARGUMENT",
        [E_HEADERS_TOO_LARGE] = "INVALID_ARGUMENT", [E_UNIMPLEMENTED] = "UNIMPLEMENTED",
        [E_HTTP_VERSION] = "INVALID_ARGUMENT"};
    return st[k];
}

static const char *openai_type_of(ekind k) {
    switch (k) {
    case E_UNAUTH: return "authentication_error";
    case E_DENIED: return "permission_error";
    case E_NOT_FOUND: return "not_found_error";
    case E_EXHAUSTED: return "rate_limit_error";
    case E_INTERNAL:
    case E_UNAVAILABLE:
    case E_TIMEOUT: return "server_error";
    default: return "invalid_request_error";
    }
}

json_t *cst_api_error_body(err_style st, ekind k, const char *msg) {
    if (st == ERR_STYLE_RPC)
        return json_pack("{s:{s:i,s:s,s:s}}", "error", "code", kinds[k].http, "message", msg, "status", rpc_status_of(k));
    if (st == ERR_STYLE_OPENAI)
        return json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", msg, "type", openai_type_of(k), "param", "code",
                         kinds[k].code);
    return json_pack("{s:{s:s,s:s}}", "error", "code", kinds[k].code, "message", msg);
}

enum MHD_Result cst_api_error(struct MHD_Connection *c, ekind k, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cst_api_utf8_fix(msg);
    cst_metrics_error(k);
    json_t *j = cst_api_error_body(tl_style, k, msg);
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!txt) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(txt);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
    if (k == E_EXHAUSTED || k == E_UNAVAILABLE || k == E_TIMEOUT) MHD_add_response_header(r, "Retry-After", "1");
    cst_api_common_headers(r);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)kinds[k].http, r);
    MHD_destroy_response(r);
    return ret;
}
