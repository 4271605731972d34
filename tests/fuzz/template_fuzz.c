/* template_fuzz.c: libFuzzer target for the Jinja chat-template engine. The
 * input is template source: cst_template_parse must either fail with a
 * message or give a template, which is then rendered (directly and through
 * cst_chat_apply) against a fixed chat context with low render limits, so a
 * hostile template can neither crash nor hang nor balloon. Seeds: the real
 * templates in golden/templates/FAMILY.jinja (scripts/fuzz.sh copies them).
 */
#include "engine/template/template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static cst_tvalue *g_vars;     /* messages + add_generation_prompt + bos/eos + extras */
static cst_tvalue *g_messages; /* the same messages, for cst_chat_apply */
static cst_tvalue *g_extra;

static cst_tvalue *msg(const char *role, const char *content) {
    cst_tvalue *m = cst_tv_dict();
    cst_tv_dict_setz(m, "role", cst_tv_cstr(role));
    cst_tv_dict_setz(m, "content", cst_tv_cstr(content));
    return m;
}

static cst_tvalue *make_messages(void) {
    cst_tvalue *l = cst_tv_list();
    cst_tv_list_push(l, msg("system", "You are terse."));
    cst_tv_list_push(l, msg("user", "Hi <|im_end|> {{ x }} \xc3\xa9\xe2\x82\xac"));
    cst_tvalue *a = msg("assistant", "<think>\nhm\n</think>\n\nHello.");
    cst_tv_dict_setz(a, "reasoning_content", cst_tv_cstr("hm"));
    cst_tvalue *calls = cst_tv_list(), *call = cst_tv_dict(), *fn = cst_tv_dict(), *args = cst_tv_dict();
    cst_tv_dict_setz(args, "city", cst_tv_cstr("Paris"));
    cst_tv_dict_setz(args, "days", cst_tv_int(3));
    cst_tv_dict_setz(fn, "name", cst_tv_cstr("weather"));
    cst_tv_dict_setz(fn, "arguments", args);
    cst_tv_dict_setz(call, "type", cst_tv_cstr("function"));
    cst_tv_dict_setz(call, "function", fn);
    cst_tv_list_push(calls, call);
    cst_tv_dict_setz(a, "tool_calls", calls);
    cst_tv_list_push(l, a);
    cst_tv_list_push(l, msg("tool", "{\"t\": 21.5}"));
    /* a multimodal user message: content is a list of parts */
    cst_tvalue *u = cst_tv_dict(), *parts = cst_tv_list(), *p1 = cst_tv_dict(), *p2 = cst_tv_dict();
    cst_tv_dict_setz(p1, "type", cst_tv_cstr("image"));
    cst_tv_dict_setz(p2, "type", cst_tv_cstr("text"));
    cst_tv_dict_setz(p2, "text", cst_tv_cstr("What is this?"));
    cst_tv_list_push(parts, p1);
    cst_tv_list_push(parts, p2);
    cst_tv_dict_setz(u, "role", cst_tv_cstr("user"));
    cst_tv_dict_setz(u, "content", parts);
    cst_tv_list_push(l, u);
    cst_tv_list_push(l, msg("user", ""));
    return l;
}

static cst_tvalue *make_extra(void) {
    cst_tvalue *e = cst_tv_dict();
    cst_tv_dict_setz(e, "enable_thinking", cst_tv_bool(true));
    cst_tvalue *tools = cst_tv_list(), *t = cst_tv_dict(), *fn = cst_tv_dict(), *params = cst_tv_dict();
    cst_tv_dict_setz(params, "type", cst_tv_cstr("object"));
    cst_tv_dict_setz(params, "required", cst_tv_list());
    cst_tv_dict_setz(fn, "name", cst_tv_cstr("weather"));
    cst_tv_dict_setz(fn, "description", cst_tv_cstr("Forecast"));
    cst_tv_dict_setz(fn, "parameters", params);
    cst_tv_dict_setz(t, "type", cst_tv_cstr("function"));
    cst_tv_dict_setz(t, "function", fn);
    cst_tv_list_push(tools, t);
    cst_tv_dict_setz(e, "tools", tools);
    cst_tv_dict_setz(e, "n", cst_tv_int(-7));
    cst_tv_dict_setz(e, "f", cst_tv_float(2.5));
    cst_tv_dict_setz(e, "nothing", cst_tv_none());
    return e;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_messages = make_messages();
    g_extra = make_extra();
    g_vars = make_extra();
    cst_tv_dict_setz(g_vars, "messages", make_messages());
    cst_tv_dict_setz(g_vars, "add_generation_prompt", cst_tv_bool(true));
    cst_tv_dict_setz(g_vars, "bos_token", cst_tv_cstr("<s>"));
    cst_tv_dict_setz(g_vars, "eos_token", cst_tv_cstr("</s>"));
    if (!g_messages || !g_extra || !g_vars || cst_tv_len(g_messages) != 6) abort();
    return 0;
}

static cst_template_limits low_limits(void) {
    cst_template_limits lim = cst_template_default_limits();
    lim.max_output = 64 << 10;
    lim.max_memory = 8 << 20;
    lim.max_steps = 50000;
    lim.max_depth = 64;
    return lim;
}

static void check_output(cst_status st, char *out, size_t out_len, const char *err) {
    if (st == CST_OK) {
        /* NUL-terminated at out_len (the text itself may hold NULs from the source) */
        if (!out || out[out_len] || strlen(out) > out_len || out_len > (64 << 10)) __builtin_trap();
    } else {
        if (out || !err[0]) __builtin_trap(); /* failures give a message and no text */
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* exact-size heap copy without a terminator: the parser gets a length */
    char *src = malloc(size ? size : 1);
    if (!src) return 0;
    if (size) memcpy(src, data, size);
    char err[256] = "";
    cst_template *t = NULL;
    cst_status st = cst_template_parse(src, size, &t, err, sizeof err);
    free(src); /* the template must not keep pointers into the source */
    if (st != CST_OK) {
        if (t || !err[0]) __builtin_trap();
        return 0;
    }
    if (!t) __builtin_trap();
    cst_template_limits lim = low_limits();
    char *out = NULL;
    size_t out_len = 0;
    err[0] = 0;
    st = cst_template_render(t, g_vars, &lim, &out, &out_len, err, sizeof err);
    check_output(st, out, out_len, err);

    /* the chat helper, without bos/eos and without a generation prompt */
    cst_chat_params p = cst_chat_default_params();
    p.add_generation_prompt = false;
    p.extra = g_extra;
    p.limits = &lim;
    out = NULL;
    out_len = 0;
    err[0] = 0;
    st = cst_chat_apply(t, g_messages, &p, &out, &out_len, err, sizeof err);
    check_output(st, out, out_len, err);

    /* no variables at all */
    out = NULL;
    err[0] = 0;
    st = cst_template_render(t, NULL, &lim, &out, &out_len, err, sizeof err);
    check_output(st, out, out_len, err);
    cst_template_free(t);
    return 0;
}
