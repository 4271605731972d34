/* chat.c: chat formatting on top of the renderer: the variables
 * transformers passes to a chat template (messages, add_generation_prompt,
 * bos_token, eos_token, plus extra kwargs such as tools / enable_thinking),
 * and the plain "Role: text" fallback for models that ship no template.
 */
#include "template_int.h"

#include <stdlib.h>
#include <string.h>

cst_status tpl_render_multi(const cst_template *t, const cst_tvalue *const *dicts, int ndicts,
                            const cst_template_limits *limits, char **out, size_t *out_len, char *err, size_t errlen);

cst_chat_params cst_chat_default_params(void) {
    return (cst_chat_params){.add_generation_prompt = true};
}

cst_status cst_chat_apply(const cst_template *t, const cst_tvalue *messages, const cst_chat_params *p, char **out,
                          size_t *out_len, char *err, size_t errlen) {
    cst_chat_params dp = cst_chat_default_params();
    if (!p) p = &dp;
    *out = NULL;
    if (!t || !messages || messages->kind != CST_TV_LIST) {
        cst_errf(err, errlen, "messages must be a list");
        return CST_ERR_INVALID_ARG;
    }
    if (p->extra && p->extra->kind != CST_TV_DICT) {
        cst_errf(err, errlen, "extra template variables must be a dict");
        return CST_ERR_INVALID_ARG;
    }
    /* A dict on the stack that borrows everything: the renderer copies. */
    cst_tvalue agp = {.kind = CST_TV_BOOL, .u.b = p->add_generation_prompt};
    cst_tvalue bos = {.kind = CST_TV_STRING}, eos = {.kind = CST_TV_STRING};
    tv_entry ents[4];
    size_t n = 0;
    ents[n++] = (tv_entry){"messages", 8, (cst_tvalue *)messages};
    ents[n++] = (tv_entry){"add_generation_prompt", 21, &agp};
    if (p->bos_token) {
        bos.u.s.p = p->bos_token;
        bos.u.s.n = strlen(p->bos_token);
        ents[n++] = (tv_entry){"bos_token", 9, &bos};
    }
    if (p->eos_token) {
        eos.u.s.p = p->eos_token;
        eos.u.s.n = strlen(p->eos_token);
        ents[n++] = (tv_entry){"eos_token", 9, &eos};
    }
    cst_tvalue base = {.kind = CST_TV_DICT};
    base.u.d.e = ents;
    base.u.d.n = n;
    base.u.d.cap = n;
    const cst_tvalue *dicts[2] = {p->extra, &base};
    return tpl_render_multi(t, dicts, 2, p->limits, out, out_len, err, errlen);
}

static void put_json(sbuf *b, const cst_tvalue *v, int depth) {
    if (depth > 64) {
        sb_puts(b, "null");
        return;
    }
    switch (v->kind) {
    case CST_TV_NONE: sb_puts(b, "null"); break;
    case CST_TV_BOOL: sb_puts(b, v->u.b ? "true" : "false"); break;
    case CST_TV_INT: tpl_fmt_number(b, (double)v->u.i); break;
    case CST_TV_FLOAT: tpl_fmt_number(b, v->u.f); break;
    case CST_TV_STRING: tpl_json_string(b, v->u.s.p, v->u.s.n, false); break;
    case CST_TV_LIST:
        sb_putc(b, '[');
        for (size_t i = 0; i < v->u.l.n; i++) {
            if (i) sb_puts(b, ", ");
            put_json(b, v->u.l.v[i], depth + 1);
        }
        sb_putc(b, ']');
        break;
    case CST_TV_DICT:
        sb_putc(b, '{');
        for (size_t i = 0; i < v->u.d.n; i++) {
            if (i) sb_puts(b, ", ");
            tpl_json_string(b, v->u.d.e[i].k, v->u.d.e[i].kn, false);
            sb_puts(b, ": ");
            put_json(b, v->u.d.e[i].v, depth + 1);
        }
        sb_putc(b, '}');
        break;
    default: break;
    }
}

static void put_content(sbuf *b, const cst_tvalue *c) {
    if (!c || c->kind == CST_TV_NONE) return;
    if (c->kind == CST_TV_STRING) {
        sb_put(b, c->u.s.p, c->u.s.n);
        return;
    }
    if (c->kind == CST_TV_LIST) {
        bool all_text = true;
        for (size_t i = 0; i < c->u.l.n && all_text; i++) {
            const cst_tvalue *t = cst_tv_dict_get(c->u.l.v[i], "text");
            all_text = t && t->kind == CST_TV_STRING;
        }
        if (all_text) {
            for (size_t i = 0; i < c->u.l.n; i++) {
                size_t n;
                const char *s = cst_tv_str(cst_tv_dict_get(c->u.l.v[i], "text"), &n);
                sb_put(b, s, n);
            }
            return;
        }
    }
    put_json(b, c, 0);
}

cst_status cst_chat_fallback(const cst_tvalue *messages, bool add_generation_prompt, char **out, size_t *out_len,
                             char *err, size_t errlen) {
    *out = NULL;
    if (!messages || messages->kind != CST_TV_LIST) {
        cst_errf(err, errlen, "messages must be a list");
        return CST_ERR_INVALID_ARG;
    }
    sbuf b = {0};
    sb_puts(&b, "");
    for (size_t i = 0; i < messages->u.l.n; i++) {
        const cst_tvalue *m = messages->u.l.v[i];
        size_t rn = 0;
        const char *role = cst_tv_str(cst_tv_dict_get(m, "role"), &rn);
        if (!role || !rn) {
            role = "user";
            rn = 4;
        }
        size_t adv;
        uint32_t cp = tpl_utf8_decode(role, rn, 0, &adv);
        tpl_utf8_encode(&b, tpl_case_map(cp, true));
        sb_put(&b, role + adv, rn - adv);
        sb_puts(&b, ": ");
        put_content(&b, cst_tv_dict_get(m, "content"));
        sb_puts(&b, "\n\n");
    }
    if (add_generation_prompt) sb_puts(&b, "Assistant:");
    if (b.oom) {
        free(b.p);
        cst_errf(err, errlen, "out of memory");
        return CST_ERR_NOMEM;
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return CST_OK;
}
