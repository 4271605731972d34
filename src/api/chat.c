/* chat.c: conversation -> prompt tokens, the one place that maps
 * Interactions steps onto chat-template messages (system_instruction ->
 * system, user_input -> user, model_output -> assistant, a verified thought
 * -> the assistant's reasoning_content) and renders them with the model's
 * Jinja template (src/engine/template; the plain fallback without one).
 * Message contents are rendered as unique placeholders, then substituted and
 * tokenized as plain text (cst_tokenize_plain_ranges), so user text can never
 * become a control token. Also the per-model thinking setup (markers,
 * budgets, levels) read once at load. Design: docs/internals/thinking.md.
 */
#define _GNU_SOURCE /* memmem */
#include "api_int.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static const char *const level_names[4] = {"minimal", "low", "medium", "high"};

int cst_thinking_level_of(const char *s) {
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, level_names[i])) return i;
    return -1;
}

/* Marker pairs Castor recognises; the first whose texts are both single
 * tokens of the vocabulary and that the template mentions wins. */
static const char *const marker_pairs[][2] = {
    {"<think>", "</think>"},
    {"<seed:think>", "</seed:think>"},
    {"<|START_THINKING|>", "<|END_THINKING|>"},
};

static cst_status parse_budgets(const char *spec, int32_t out[4], char *err, size_t errlen) {
    const char *p = spec;
    for (int i = 0; i < 4; i++) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 1 << 24 || (i < 3 && *end != ',') || (i == 3 && *end)) {
            cst_errf(err, errlen, "--thinking-budgets %s: expected four positive token counts MIN,LOW,MEDIUM,HIGH",
                     spec);
            return CST_ERR_INVALID_ARG;
        }
        out[i] = (int32_t)v;
        p = end + 1;
    }
    return CST_OK;
}

cst_status cst_chat_model_init(chat_model *cm, const cst_vocab *v, const char *model_template, const char *tpl_path,
                               const char *budgets, const char *level, char *err, size_t errlen) {
    memset(cm, 0, sizeof *cm);
    cm->vocab = v;
    cm->budgets[0] = 64;
    cm->budgets[1] = 1024;
    cm->budgets[2] = 4096;
    cm->budgets[3] = 16384;
    cm->default_level = 2;
    if (budgets && parse_budgets(budgets, cm->budgets, err, errlen)) return CST_ERR_INVALID_ARG;
    if (level) {
        cm->default_level = cst_thinking_level_of(level);
        if (cm->default_level < 0) {
            cst_errf(err, errlen, "--thinking-level %s: expected minimal, low, medium or high", level);
            return CST_ERR_INVALID_ARG;
        }
    }
    char *file = NULL;
    const char *src = model_template;
    if (tpl_path) {
        size_t n = 0;
        cst_status st = cst_read_file(tpl_path, &file, &n);
        if (st) {
            cst_errf(err, errlen, "--chat-template %s: cannot read the file (%s)", tpl_path, cst_status_str(st));
            return st;
        }
        src = file;
    }
    if (src && *src) {
        char perr[512];
        cst_status st = cst_template_parse(src, strlen(src), &cm->tpl, perr, sizeof perr);
        if (st) {
            cst_errf(err, errlen, "chat template%s%s: %s", tpl_path ? " " : "", tpl_path ? tpl_path : "", perr);
            free(file);
            return st;
        }
        cm->tpl_thinking_var = strstr(src, "enable_thinking") != NULL;
        cm->tpl_reasoning_field = strstr(src, "reasoning_content") != NULL;
        for (size_t k = 0; k < CST_ARRAY_LEN(marker_pairs) && !cm->can_think; k++) {
            const char *o = marker_pairs[k][0], *c = marker_pairs[k][1];
            cst_token to = cst_vocab_find(v, o, strlen(o)), tc = cst_vocab_find(v, c, strlen(c));
            if (to < 0 || tc < 0) continue;
            if (!cm->tpl_thinking_var && !cm->tpl_reasoning_field && !strstr(src, o)) continue;
            snprintf(cm->think_open, sizeof cm->think_open, "%s", o);
            snprintf(cm->think_close, sizeof cm->think_close, "%s", c);
            cm->think_close_tok = tc;
            cm->can_think = true;
        }
    }
    cm->tool_family = cst_tools_family(src && *src ? src : NULL, &cm->tpl_tools);
    free(file);
    cst_token b = cst_vocab_bos(v), e = cst_vocab_eos(v);
    if (b >= 0 && cst_vocab_text(v, b)) cm->bos_text = strdup(cst_vocab_text(v, b));
    if (e >= 0 && cst_vocab_text(v, e)) cm->eos_text = strdup(cst_vocab_text(v, e));
    if (cm->can_think) {
        /* the forced end of a thought, as the templates write it: "\n</think>\n\n" */
        char f[96];
        snprintf(f, sizeof f, "\n%s\n\n", cm->think_close);
        if (cst_tokenize(v, f, strlen(f), false, true, &cm->force, &cm->n_force)) {
            cst_errf(err, errlen, "out of memory");
            return CST_ERR_NOMEM;
        }
        cm->n_force_thought = cm->n_force;
        for (size_t i = 0; i < cm->n_force; i++)
            if (cm->force[i] == cm->think_close_tok) cm->n_force_thought = i + 1;
    }
    return CST_OK;
}

void cst_chat_model_free(chat_model *cm) {
    if (!cm) return;
    cst_template_free(cm->tpl);
    free(cm->bos_text);
    free(cm->eos_text);
    free(cm->force);
    memset(cm, 0, sizeof *cm);
}

void cst_chat_model_describe(const chat_model *cm, char *out, size_t n) {
    if (!cm->tpl) snprintf(out, n, "plain fallback chat format");
    else if (!cm->can_think) snprintf(out, n, "Jinja chat template");
    else
        snprintf(out, n, "Jinja chat template, thinking %s...%s (budgets %d/%d/%d/%d, default %s%s)", cm->think_open,
                 cm->think_close, cm->budgets[0], cm->budgets[1], cm->budgets[2], cm->budgets[3],
                 level_names[cm->default_level], cm->tpl_thinking_var ? ", minimal switches it off" : "");
}

/* ---- rendering ------------------------------------------------------------ */


/* The contents being rendered: placeholder i stands for contents[i]. */
typedef struct {
    char nonce[24]; /* "\xEE\x80\x80" "cst" + 8 hex + "_" */
    size_t nonce_len;
    char **txt;
    size_t *len;
    size_t n, cap;
    bool oom;
} contents;

/* Add a content, return its placeholder as a template string value. */
static cst_tvalue *content_value(contents *c, const char *s, size_t n) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        char **nt = realloc(c->txt, nc * sizeof *nt);
        if (nt) c->txt = nt;
        size_t *nl = realloc(c->len, nc * sizeof *nl);
        if (nl) c->len = nl;
        if (!nt || !nl) {
            c->oom = true;
            return NULL;
        }
        c->cap = nc;
    }
    char *t = malloc(n + 1);
    if (!t) {
        c->oom = true;
        return NULL;
    }
    memcpy(t, s, n);
    t[n] = 0;
    c->txt[c->n] = t;
    c->len[c->n] = n;
    char ph[64];
    int k = snprintf(ph, sizeof ph, "%s%zu\xEE\x80\x81", c->nonce, c->n);
    c->n++;
    return cst_tv_string(ph, (size_t)k);
}

static void contents_free(contents *c) {
    for (size_t i = 0; i < c->n; i++) free(c->txt[i]);
    free(c->txt);
    free(c->len);
}

/* The text of a step's content blocks, joined (text blocks; an image block
 * becomes the media marker, where files_media.c puts the image). */
static void step_text(json_t *step, cst_buf *b) {
    cst_buf_put(b, "", 0);
    json_t *c = json_object_get(step, "content");
    if (json_is_string(c)) {
        cst_buf_put(b, json_string_value(c), json_string_length(c));
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(c, i, e) {
        json_t *t = json_object_get(e, "text");
        if (json_is_string(t)) cst_buf_put(b, json_string_value(t), json_string_length(t));
        else if (json_is_string(json_object_get(e, "type")) && !strcmp(json_string_value(json_object_get(e, "type")), "image"))
            cst_buf_put(b, cst_media_marker(), strlen(cst_media_marker())); /* split on by files_media.c */
    }
}

static cst_tvalue *message(const char *role, cst_tvalue *content) {
    cst_tvalue *m = cst_tv_dict();
    if (!m) {
        cst_tv_free(content);
        return NULL;
    }
    if (cst_tv_dict_setz(m, "role", cst_tv_cstr(role)) || cst_tv_dict_setz(m, "content", content)) {
        cst_tv_free(m);
        return NULL;
    }
    return m;
}

static void new_nonce(contents *c) {
    uint8_t r[4] = {0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t x = (uint64_t)(cst_time_now() * 1e9) ^ (uint64_t)(uintptr_t)c;
        memcpy(r, &x, sizeof r);
    }
    c->nonce_len = (size_t)snprintf(c->nonce, sizeof c->nonce, "\xEE\x80\x80" "cst%02x%02x%02x%02x_", r[0], r[1],
                                    r[2], r[3]);
}

/* A nonce no content contains (so no content can fake a placeholder). */
static void pick_nonce(contents *c, const char *system, json_t *const *lists, size_t n_lists) {
    for (int tries = 0; tries < 8; tries++) {
        new_nonce(c);
        bool clash = system && strstr(system, c->nonce);
        for (size_t l = 0; l < n_lists && !clash; l++) {
            size_t i;
            json_t *st;
            json_array_foreach(lists[l], i, st) {
                cst_buf b = {0};
                step_text(st, &b);
                if (b.p && strstr(b.p, c->nonce)) clash = true;
                free(b.p);
                if (clash) break;
            }
        }
        if (!clash) return;
    }
}

/* A JSON value as a template value whose strings (keys too) are contents:
 * each placeholder stands for the string's JSON-escaped text, so a template's
 * tojson prints valid JSON and no string can become a control token. */
static cst_tvalue *json_tv(contents *c, json_t *j, int depth) {
    if (depth > 64) return cst_tv_none();
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        cst_tvalue *d = cst_tv_dict();
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            json_t *ks = json_string(k);
            char *e = ks ? json_dumps(ks, JSON_ENCODE_ANY) : NULL;
            json_decref(ks);
            cst_tvalue *ph = e ? content_value(c, e + 1, strlen(e) - 2) : NULL;
            free(e);
            size_t pl = 0;
            const char *pk = ph ? cst_tv_str(ph, &pl) : NULL;
            cst_status st = d && pk ? cst_tv_dict_set(d, pk, pl, json_tv(c, v, depth + 1)) : CST_ERR_NOMEM;
            cst_tv_free(ph);
            if (st) {
                cst_tv_free(d);
                return NULL;
            }
        }
        return d;
    }
    case JSON_ARRAY: {
        cst_tvalue *l = cst_tv_list();
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) if (!l || cst_tv_list_push(l, json_tv(c, v, depth + 1))) {
            cst_tv_free(l);
            return NULL;
        }
        return l;
    }
    case JSON_STRING: {
        char *e = json_dumps(j, JSON_ENCODE_ANY);
        cst_tvalue *ph = e ? content_value(c, e + 1, strlen(e) - 2) : NULL;
        free(e);
        return ph;
    }
    case JSON_INTEGER: return cst_tv_int(json_integer_value(j));
    case JSON_REAL: return cst_tv_float(json_real_value(j));
    case JSON_TRUE: return cst_tv_bool(true);
    case JSON_FALSE: return cst_tv_bool(false);
    default: return cst_tv_none();
    }
}

/* The template's `tools`: [{type: "function", function: {name, description, parameters}}]. */
static cst_tvalue *tools_tv(contents *c, json_t *tools) {
    cst_tvalue *l = cst_tv_list();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        cst_tvalue *fn = cst_tv_dict(), *w = cst_tv_dict();
        json_t *d = json_object_get(t, "description"), *p = json_object_get(t, "parameters");
        bool bad = !l || !fn || !w || cst_tv_dict_setz(fn, "name", cst_tv_cstr(json_string_value(json_object_get(t, "name"))));
        if (!bad && json_is_string(d)) {
            char *e = json_dumps(d, JSON_ENCODE_ANY);
            bad = !e || cst_tv_dict_setz(fn, "description", content_value(c, e + 1, strlen(e) - 2));
            free(e);
        }
        if (!bad && json_is_object(p)) bad = cst_tv_dict_setz(fn, "parameters", json_tv(c, p, 0));
        if (!bad) bad = cst_tv_dict_setz(w, "type", cst_tv_cstr("function"));
        if (!bad) {
            bad = cst_tv_dict_setz(w, "function", fn);
            fn = NULL;
        }
        cst_tv_free(fn);
        if (!bad) {
            bad = cst_tv_list_push(l, w);
            w = NULL;
        }
        cst_tv_free(w);
        if (bad) {
            cst_tv_free(l);
            return NULL;
        }
    }
    return l;
}

/* A function result as text: a string as is, an object as compact JSON,
 * content blocks' texts joined. A result marked is_error is wrapped as
 * {"error": that result} (the object, or the text as a JSON string): the
 * shape of a failed call's response in Gemini's functionResponse, and one
 * that reads as an error in any template's tool turn. */
static void result_text(json_t *step, cst_buf *b) {
    cst_buf_put(b, "", 0);
    json_t *r = json_object_get(step, "result");
    if (json_is_string(r)) {
        cst_buf_put(b, json_string_value(r), json_string_length(r));
    } else if (json_is_array(r)) {
        size_t i;
        json_t *e;
        json_array_foreach(r, i, e) {
            json_t *t = json_object_get(e, "text");
            if (json_is_string(t)) cst_buf_put(b, json_string_value(t), json_string_length(t));
        }
    } else if (r) {
        char *t = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
        if (t) cst_buf_put(b, t, strlen(t));
        else b->oom = true;
        free(t);
    }
    if (b->oom || !json_is_true(json_object_get(step, "is_error"))) return;
    json_t *w = json_pack("{s:o}", "error", json_is_object(r) ? json_incref(r) : json_stringn(b->p ? b->p : "", b->len));
    char *t = w ? json_dumps(w, JSON_COMPACT) : NULL;
    json_decref(w);
    b->len = 0;
    if (t) cst_buf_put(b, t, strlen(t));
    else b->oom = true;
    free(t);
}

/* The model's turn being collected: text, a verified thought, calls. */
typedef struct {
    bool open;
    cst_buf text;
    char *reasoning;
    size_t reasoning_len;
    cst_tvalue *calls; /* tool_calls (template mode) */
} pending_turn;

/* Push the pending assistant message (tpl: the template renders tool_calls;
 * else the calls are already in the text). False when out of memory. */
static bool flush_turn(pending_turn *pt, contents *c, cst_tvalue *msgs) {
    if (!pt->open) return true;
    pt->open = false;
    cst_buf_put(&pt->text, "", 0);
    /* empty text stays "" (not a placeholder): templates test it ("if content") */
    cst_tvalue *m = pt->text.oom ? NULL
                    : message("assistant", pt->text.len ? content_value(c, pt->text.p, pt->text.len) : cst_tv_string("", 0));
    if (m && pt->reasoning && cst_tv_dict_setz(m, "reasoning_content", content_value(c, pt->reasoning, pt->reasoning_len))) {
        cst_tv_free(m);
        m = NULL;
    }
    if (m && pt->calls) {
        cst_tvalue *cl = pt->calls; /* the set takes it, also on failure */
        pt->calls = NULL;
        if (cst_tv_dict_setz(m, "tool_calls", cl)) {
            cst_tv_free(m);
            m = NULL;
        }
    }
    cst_tv_free(pt->calls);
    pt->calls = NULL;
    cst_buf_free(&pt->text);
    free(pt->reasoning);
    pt->reasoning = NULL;
    return cst_tv_list_push(msgs, m) == CST_OK;
}

void cst_chat_prompt_clear(chat_prompt *cp) {
    free(cp->toks);
    free(cp->text);
    free(cp->plain);
    memset(cp, 0, sizeof *cp);
}

cst_status cst_chat_prompt(const chat_model *cm, const uint8_t sig_key[32], const char *system, json_t *const *lists,
                           size_t n_lists, json_t *generation_config, chat_prompt *out, char *err, size_t errlen) {
    return cst_chat_prompt_tools(cm, sig_key, system, lists, n_lists, generation_config, NULL, out, err, errlen);
}

cst_status cst_chat_prompt_tools(const chat_model *cm, const uint8_t sig_key[32], const char *system,
                                 json_t *const *lists, size_t n_lists, json_t *generation_config, json_t *tools,
                                 chat_prompt *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const cst_vocab *v = cm->vocab;
    cst_status st = CST_OK;
    contents c = {0};
    pick_nonce(&c, system, lists, n_lists);
    cst_tvalue *msgs = cst_tv_list();
    cst_tvalue *extra = NULL;
    char *rendered = NULL;
    size_t rlen = 0;
    cst_buf fin = {0};
    size_t *ranges = NULL, n_ranges = 0, cap_ranges = 0;
    pending_turn pt = {0};
    json_t *pending = NULL;
    char *reasoning = NULL; /* verified thought text for the next assistant message */
    size_t reasoning_len = 0;
    if (!msgs) goto nomem;

    /* thinking level */
    json_t *jl = json_object_get(generation_config, "thinking_level");
    int level = json_is_string(jl) ? cst_thinking_level_of(json_string_value(jl)) : -1;
    if (level < 0) level = cm->default_level;
    json_t *js = json_object_get(generation_config, "thinking_summaries");
    out->summaries = json_is_string(js) && !strcmp(json_string_value(js), "auto");
    const bool think_off = cm->can_think && level == 0 && cm->tpl_thinking_var;

    /* messages. Tools: the template's `tools` variable, or the fallback tool
     * prompt in the system message. tpl_tools: the template renders calls and
     * results itself (also in a history sent without tools: one
     * conversation, one rendering) */
    const bool tpl_tools = cm->tpl && cm->tpl_tools;
    char *sys_full = NULL;
    if (tools && !tpl_tools) {
        char *fb = cst_tools_fallback_prompt(tools);
        if (!fb) goto nomem;
        if (system && *system) {
            sys_full = malloc(strlen(system) + strlen(fb) + 3);
            if (sys_full) sprintf(sys_full, "%s\n\n%s", system, fb);
            free(fb);
        } else {
            sys_full = fb;
        }
        if (!sys_full) goto nomem;
        system = sys_full;
    }
    if (system && *system) {
        cst_status ps = cst_tv_list_push(msgs, message("system", content_value(&c, system, strlen(system))));
        free(sys_full);
        sys_full = NULL;
        if (ps) goto nomem;
    }
    free(sys_full);
    system = NULL; /* (it may have pointed into sys_full) */
    pending = json_object(); /* call id -> name: function_calls not answered yet */
    if (!pending) goto nomem;
    for (size_t l = 0; l < n_lists; l++) {
        size_t i;
        json_t *stp;
        json_array_foreach(lists[l], i, stp) {
            const char *type = json_string_value(json_object_get(stp, "type"));
            if (!type) continue;
            if (!strcmp(type, "thought")) {
                free(reasoning);
                reasoning = NULL;
                const char *sig = json_string_value(json_object_get(stp, "signature"));
                if (sig && cm->tpl_reasoning_field) cst_sig_open(sig_key, sig, &reasoning, &reasoning_len);
                continue;
            }
            const bool model_text = !strcmp(type, "model_output"), call = !strcmp(type, "function_call");
            if (model_text || call) {
                /* a model_output opens an assistant message (after calls: a new one); calls join the open one */
                if ((model_text || !pt.open) && !flush_turn(&pt, &c, msgs)) goto nomem;
                if (!pt.open) {
                    pt.open = true;
                    pt.reasoning = reasoning;
                    pt.reasoning_len = reasoning_len;
                    reasoning = NULL;
                }
                if (model_text) {
                    step_text(stp, &pt.text);
                    continue;
                }
                const char *id = json_string_value(json_object_get(stp, "id"));
                const char *name = json_string_value(json_object_get(stp, "name"));
                json_t *args = json_object_get(stp, "arguments");
                if (!id || !name) continue;
                if (json_object_set_new(pending, id, json_string(name))) goto nomem;
                if (tpl_tools) { /* {id, type, function: {name, arguments}} */
                    cst_tvalue *tc = cst_tv_dict(), *fn = cst_tv_dict();
                    if (!pt.calls) pt.calls = cst_tv_list();
                    bool bad = !tc || !fn || !pt.calls || cst_tv_dict_setz(fn, "name", cst_tv_cstr(name)) ||
                               cst_tv_dict_setz(fn, "arguments", json_tv(&c, args, 0)) ||
                               cst_tv_dict_setz(tc, "id", content_value(&c, id, strlen(id))) ||
                               cst_tv_dict_setz(tc, "type", cst_tv_cstr("function"));
                    if (!bad) {
                        bad = cst_tv_dict_setz(tc, "function", fn);
                        fn = NULL;
                    }
                    cst_tv_free(fn);
                    if (!bad) {
                        bad = cst_tv_list_push(pt.calls, tc);
                        tc = NULL;
                    }
                    cst_tv_free(tc);
                    if (bad) goto nomem;
                } else { /* the fallback: the call as the hermes syntax in the assistant's text */
                    char *a = json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER);
                    if (!a) goto nomem;
                    const char *parts[] = {pt.text.len ? "\n" : "", "<tool_call>\n{\"name\": \"", name,
                                           "\", \"arguments\": ", a, "}\n</tool_call>"};
                    for (size_t k = 0; k < CST_ARRAY_LEN(parts); k++) cst_buf_put(&pt.text, parts[k], strlen(parts[k]));
                    free(a);
                }
                continue;
            }
            const bool user = !strcmp(type, "user_input"), result = !strcmp(type, "function_result");
            if (!user && !result) continue;
            if (!flush_turn(&pt, &c, msgs)) goto nomem;
            free(reasoning); /* a thought before a user turn belongs to no answer */
            reasoning = NULL;
            cst_buf b = {0};
            cst_tvalue *m = NULL;
            if (result) {
                const char *cid = json_string_value(json_object_get(stp, "call_id"));
                json_t *pn = cid ? json_object_get(pending, cid) : NULL;
                if (!pn) {
                    st = CST_ERR_INVALID_ARG;
                    cst_errf(err, errlen,
                             "input: function_result call_id '%.100s' matches no pending function_call (of the "
                             "previous interaction or the input's history)",
                             cid ? cid : "");
                    goto out;
                }
                const char *fname = json_string_value(json_object_get(stp, "name"));
                if (!fname) fname = json_string_value(pn);
                static const char open_r[] = "<tool_response>\n", close_r[] = "\n</tool_response>";
                if (!tpl_tools) cst_buf_put(&b, open_r, sizeof open_r - 1);
                cst_buf bt = {0};
                result_text(stp, &bt);
                cst_buf_put(&b, bt.p ? bt.p : "", bt.len);
                if (bt.oom) b.oom = true;
                cst_buf_free(&bt);
                if (!tpl_tools) cst_buf_put(&b, close_r, sizeof close_r - 1);
                cst_buf_put(&b, "", 0);
                if (!b.oom) m = message(tpl_tools ? "tool" : "user", content_value(&c, b.p ? b.p : "", b.len));
                if (m && tpl_tools && (cst_tv_dict_setz(m, "name", cst_tv_cstr(fname)) ||
                                       cst_tv_dict_setz(m, "tool_call_id", content_value(&c, cid, strlen(cid))))) {
                    cst_tv_free(m);
                    m = NULL;
                }
                json_object_del(pending, cid);
            } else {
                step_text(stp, &b);
                if (!b.oom) m = message("user", content_value(&c, b.p ? b.p : "", b.len));
            }
            free(b.p);
            if (cst_tv_list_push(msgs, m)) goto nomem;
        }
    }
    if (!flush_turn(&pt, &c, msgs)) goto nomem;
    if (c.oom) goto nomem;

    /* render with placeholders */
    if (cm->tpl) {
        cst_chat_params p = cst_chat_default_params();
        p.bos_token = cm->bos_text;
        p.eos_token = cm->eos_text;
        if ((cm->can_think && cm->tpl_thinking_var) || (tools && tpl_tools)) {
            extra = cst_tv_dict();
            if (!extra) goto nomem;
            if (cm->can_think && cm->tpl_thinking_var && cst_tv_dict_setz(extra, "enable_thinking", cst_tv_bool(!think_off)))
                goto nomem;
            if (tools && tpl_tools && cst_tv_dict_setz(extra, "tools", tools_tv(&c, tools))) goto nomem;
            if (c.oom) goto nomem;
            p.extra = extra;
        }
        char terr[512];
        st = cst_chat_apply(cm->tpl, msgs, &p, &rendered, &rlen, terr, sizeof terr);
        if (st) {
            cst_errf(err, errlen, "the chat template failed: %s", terr);
            goto out;
        }
    } else {
        char terr[256];
        st = cst_chat_fallback(msgs, true, &rendered, &rlen, terr, sizeof terr);
        if (st) {
            cst_errf(err, errlen, "rendering the conversation failed: %s", terr);
            goto out;
        }
        out->extra_stop = CST_CHAT_FALLBACK_STOP;
    }

    /* substitute the contents, remembering where they are */
    for (size_t i = 0; i < rlen;) {
        const char *ph = memmem(rendered + i, rlen - i, c.nonce, c.nonce_len);
        if (!ph) {
            cst_buf_put(&fin, rendered + i, rlen - i);
            break;
        }
        size_t at = (size_t)(ph - rendered);
        cst_buf_put(&fin, rendered + i, at - i);
        char *end;
        unsigned long idx = strtoul(ph + c.nonce_len, &end, 10);
        if (end == ph + c.nonce_len || idx >= c.n || (size_t)(rendered + rlen - end) < 3 ||
            memcmp(end, "\xEE\x80\x81", 3)) {
            st = CST_ERR_UNSUPPORTED;
            cst_errf(err, errlen, "the chat template alters message contents (a placeholder was changed); "
                                  "such templates are not supported");
            goto out;
        }
        if (c.len[idx]) {
            if (n_ranges == cap_ranges) {
                cap_ranges = cap_ranges ? cap_ranges * 2 : 16;
                size_t *nr = realloc(ranges, cap_ranges * 2 * sizeof *nr);
                if (!nr) goto nomem;
                ranges = nr;
            }
            ranges[2 * n_ranges] = fin.len;
            cst_buf_put(&fin, c.txt[idx], c.len[idx]);
            ranges[2 * n_ranges + 1] = fin.len;
            n_ranges++;
        }
        i = (size_t)(end - rendered) + 3;
    }
    cst_buf_put(&fin, "", 0);

    /* thinking: the prompt opens the thought (the template's generation
     * prompt, or Castor appends the open marker as thinking templates do) */
    if (cm->can_think) {
        out->think = true;
        out->think_budget = cm->budgets[level];
        if (!think_off) {
            size_t n = fin.len;
            while (n && (fin.p[n - 1] == '\n' || fin.p[n - 1] == ' ')) n--;
            size_t ol = strlen(cm->think_open);
            if (!(n >= ol && !memcmp(fin.p + n - ol, cm->think_open, ol))) {
                cst_buf_put(&fin, cm->think_open, ol);
                cst_buf_put(&fin, "\n", 1);
            }
            out->think_inside = true;
        } else {
            out->think_budget = cm->budgets[0]; /* only if the model opens one itself */
        }
    }
    if (fin.oom) goto nomem;

    /* tokenize: the template's text with special tokens, contents as plain text */
    bool add_special = true;
    if (cm->bos_text && *cm->bos_text && !strncmp(fin.p, cm->bos_text, strlen(cm->bos_text))) add_special = false;
    st = cst_tokenize_plain_ranges(v, fin.p, fin.len, add_special, ranges, n_ranges, &out->toks, &out->n_toks);
    if (st) {
        cst_errf(err, errlen, "the input could not be tokenized");
        goto out;
    }
    out->text = fin.p;
    out->text_len = fin.len;
    fin.p = NULL;
    out->plain = ranges;
    out->n_plain = n_ranges;
    ranges = NULL;
    goto out;
nomem:
    st = CST_ERR_NOMEM;
    cst_errf(err, errlen, "out of memory rendering the conversation");
out:
    free(reasoning);
    pt.open = false;
    cst_tv_free(pt.calls);
    cst_buf_free(&pt.text);
    free(pt.reasoning);
    json_decref(pending);
    cst_tv_free(msgs);
    cst_tv_free(extra);
    free(rendered);
    free(fin.p);
    free(ranges);
    contents_free(&c);
    if (st) cst_chat_prompt_clear(out);
    return st;
}
