/* cmd_template.c: `castor template` renders a chat template over a JSON
 * message list and prints the prompt (nothing else, no added newline). The
 * template comes from a GGUF (tokenizer.chat_template, with bos/eos texts
 * from tokenizer.ggml.{bos,eos}_token_id -> tokenizer.ggml.tokens) or from a
 * file; a model without a template gets the plain fallback format. JSON is
 * converted here to the template module's own values.
 */
#include "cli.h"
#include "core/core.h"
#include "engine/gguf/gguf.h"
#include "engine/template/template.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: castor template (-m MODEL | --chat-template FILE [--bos TEXT] [--eos TEXT])\n"
            "                       --messages FILE [--no-generation-prompt] [--kwargs JSON]\n"
            "  prints the rendered prompt and nothing else\n"
            "  -m MODEL             GGUF: tokenizer.chat_template and its bos/eos token texts\n"
            "                       (no template in the model: the plain fallback format)\n"
            "  --chat-template FILE a Jinja template file\n"
            "  --bos/--eos TEXT     bos_token / eos_token (override the model's)\n"
            "  --messages FILE      JSON array of {\"role\", \"content\", ...} ('-' for stdin)\n"
            "  --no-generation-prompt  add_generation_prompt=false (default true)\n"
            "  --kwargs JSON        object of extra template variables (e.g. '{\"enable_thinking\":false}')\n");
}

/* JSON -> template values; integral reals become ints, as JSON.parse does. */
static cst_tvalue *from_json(const json_t *j, int depth) {
    if (depth > 1000) return NULL;
    switch (json_typeof(j)) {
    case JSON_NULL: return cst_tv_none();
    case JSON_TRUE: return cst_tv_bool(true);
    case JSON_FALSE: return cst_tv_bool(false);
    case JSON_INTEGER: return cst_tv_int(json_integer_value(j));
    case JSON_REAL: {
        double d = json_real_value(j);
        if (d > -9e15 && d < 9e15 && d == (double)(int64_t)d) return cst_tv_int((int64_t)d);
        return cst_tv_float(d);
    }
    case JSON_STRING: return cst_tv_string(json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        cst_tvalue *l = cst_tv_list();
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e) {
            if (cst_tv_list_push(l, from_json(e, depth + 1)) != CST_OK) {
                cst_tv_free(l);
                return NULL;
            }
        }
        return l;
    }
    case JSON_OBJECT: {
        cst_tvalue *d = cst_tv_dict();
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)j, k, e) {
            if (cst_tv_dict_setz(d, k, from_json(e, depth + 1)) != CST_OK) {
                cst_tv_free(d);
                return NULL;
            }
        }
        return d;
    }
    }
    return NULL;
}

static char *strv_dup(cst_strv s) {
    char *p = malloc(s.len + 1);
    if (!p) return NULL;
    if (s.len) memcpy(p, s.ptr, s.len);
    p[s.len] = 0;
    return p;
}

/* the text of token id stored under key, or NULL */
static char *token_text(const cst_gguf *g, const char *key) {
    int64_t ki = cst_gguf_find_key(g, key);
    int64_t id;
    if (ki < 0 || !cst_gguf_kv_i64(g, ki, &id) || id < 0) return NULL;
    int64_t ti = cst_gguf_find_key(g, "tokenizer.ggml.tokens");
    if (ti < 0 || cst_gguf_kv_type(g, ti) != CST_GGUF_ARRAY || cst_gguf_arr_type(g, ti) != CST_GGUF_STRING) return NULL;
    if ((uint64_t)id >= cst_gguf_arr_n(g, ti)) return NULL;
    return strv_dup(cst_gguf_arr_str(g, ti, (uint64_t)id));
}

int cmd_template(int argc, char **argv) {
    const char *model = NULL, *tfile = NULL, *bos_arg = NULL, *eos_arg = NULL, *mfile = NULL, *kwargs = NULL;
    bool agp = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has) {
            model = argv[++i];
        } else if (!strcmp(a, "--chat-template") && has) {
            tfile = argv[++i];
        } else if (!strcmp(a, "--bos") && has) {
            bos_arg = argv[++i];
        } else if (!strcmp(a, "--eos") && has) {
            eos_arg = argv[++i];
        } else if (!strcmp(a, "--messages") && has) {
            mfile = argv[++i];
        } else if (!strcmp(a, "--no-generation-prompt")) {
            agp = false;
        } else if (!strcmp(a, "--kwargs") && has) {
            kwargs = argv[++i];
        } else {
            fprintf(stderr, "castor template: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if ((!model == !tfile) || !mfile) {
        usage(stderr);
        return 2;
    }

    int rc = 1;
    char err[512] = "";
    char *tsrc = NULL, *bos = NULL, *eos = NULL, *out = NULL;
    size_t tlen = 0, olen = 0;
    bool have_template = true;
    cst_tvalue *msgs = NULL, *extra = NULL;
    cst_template *t = NULL;
    json_t *mj = NULL, *kj = NULL;
    json_error_t je;

    if (model) {
        cst_gguf *g = NULL;
        if (cst_gguf_open(model, &g, err, sizeof err) != CST_OK) {
            fprintf(stderr, "castor: %s\n", err);
            goto done;
        }
        cst_strv s = cst_gguf_get_str(g, "tokenizer.chat_template");
        if (s.ptr) {
            tsrc = strv_dup(s);
            tlen = s.len;
        } else {
            have_template = false;
        }
        bos = token_text(g, "tokenizer.ggml.bos_token_id");
        eos = token_text(g, "tokenizer.ggml.eos_token_id");
        cst_gguf_close(g);
        if (have_template && !tsrc) {
            fprintf(stderr, "castor: out of memory\n");
            goto done;
        }
    } else if (cst_read_file(tfile, &tsrc, &tlen) != CST_OK) {
        fprintf(stderr, "castor: cannot read %s\n", tfile);
        goto done;
    }
    if (bos_arg) {
        free(bos);
        bos = strdup(bos_arg);
    }
    if (eos_arg) {
        free(eos);
        eos = strdup(eos_arg);
    }

    mj = !strcmp(mfile, "-") ? json_loadf(stdin, 0, &je) : json_load_file(mfile, 0, &je);
    if (!mj || !json_is_array(mj)) {
        fprintf(stderr, "castor: %s: %s\n", mfile, mj ? "expected a JSON array of messages" : je.text);
        goto done;
    }
    msgs = from_json(mj, 0);
    if (kwargs) {
        kj = json_loads(kwargs, 0, &je);
        if (!kj || !json_is_object(kj)) {
            fprintf(stderr, "castor: --kwargs: %s\n", kj ? "expected a JSON object" : je.text);
            rc = 2;
            goto done;
        }
        extra = from_json(kj, 0);
    }
    if (!msgs || (kj && !extra)) {
        fprintf(stderr, "castor: out of memory (or JSON nested too deeply)\n");
        goto done;
    }

    cst_status st;
    if (have_template) {
        st = cst_template_parse(tsrc, tlen, &t, err, sizeof err);
        if (st != CST_OK) {
            fprintf(stderr, "castor: chat template: %s\n", err);
            goto done;
        }
        cst_chat_params p = cst_chat_default_params();
        p.add_generation_prompt = agp;
        p.bos_token = bos;
        p.eos_token = eos;
        p.extra = extra;
        st = cst_chat_apply(t, msgs, &p, &out, &olen, err, sizeof err);
    } else {
        st = cst_chat_fallback(msgs, agp, &out, &olen, err, sizeof err);
    }
    if (st != CST_OK) {
        fprintf(stderr, "castor: chat template: %s\n", err);
        goto done;
    }
    if (fwrite(out, 1, olen, stdout) != olen || fflush(stdout)) goto done;
    rc = 0;
done:
    free(out);
    cst_template_free(t);
    cst_tv_free(msgs);
    cst_tv_free(extra);
    json_decref(mj);
    json_decref(kj);
    free(tsrc);
    free(bos);
    free(eos);
    return rc;
}
