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

void cst_chat_prompt_clear(chat_prompt *cp) {
    free(cp->toks);
    free(cp->text);
    free(cp->plain);
    memset(cp, 0, sizeof *cp);
}

cst_status cst_chat_prompt(const chat_model *cm, const uint8_t sig_key[32], const char *system, json_t *const *lists,
                           size_t n_lists, json_t *generation_config, chat_prompt *out, char *err, size_t errlen) {
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
    if (!msgs) goto nomem;

    /* thinking level */
    json_t *jl = json_object_get(generation_config, "thinking_level");
    int level = json_is_string(jl) ? cst_thinking_level_of(json_string_value(jl)) : -1;
    if (level < 0) level = cm->default_level;
    json_t *js = json_object_get(generation_config, "thinking_summaries");
    out->summaries = json_is_string(js) && !strcmp(json_string_value(js), "auto");
    const bool think_off = cm->can_think && level == 0 && cm->tpl_thinking_var;

    /* messages */
    if (system && *system) {
        if (cst_tv_list_push(msgs, message("system", content_value(&c, system, strlen(system))))) goto nomem;
    }
    char *reasoning = NULL; /* verified thought text for the next assistant message */
    size_t reasoning_len = 0;
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
            bool user = !strcmp(type, "user_input");
            if (!user && strcmp(type, "model_output")) continue;
            cst_buf b = {0};
            step_text(stp, &b);
            if (b.oom) {
                free(reasoning);
                goto nomem;
            }
            cst_tvalue *m = message(user ? "user" : "assistant", content_value(&c, b.p ? b.p : "", b.len));
            free(b.p);
            if (m && !user && reasoning &&
                cst_tv_dict_setz(m, "reasoning_content", content_value(&c, reasoning, reasoning_len))) {
                cst_tv_free(m);
                m = NULL;
            }
            free(reasoning);
            reasoning = NULL;
            if (cst_tv_list_push(msgs, m)) goto nomem;
        }
    }
    free(reasoning);
    if (c.oom) goto nomem;

    /* render with placeholders */
    if (cm->tpl) {
        cst_chat_params p = cst_chat_default_params();
        p.bos_token = cm->bos_text;
        p.eos_token = cm->eos_text;
        if (cm->can_think && cm->tpl_thinking_var) {
            extra = cst_tv_dict();
            if (!extra || cst_tv_dict_setz(extra, "enable_thinking", cst_tv_bool(!think_off))) goto nomem;
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
    cst_tv_free(msgs);
    cst_tv_free(extra);
    free(rendered);
    free(fin.p);
    free(ranges);
    contents_free(&c);
    if (st) cst_chat_prompt_clear(out);
    return st;
}
