/* cmd_run.c: `castor run`: generate text from a prompt and stream it to
 * stdout (flushed per token), or with --logits-json print one JSON object per
 * step with the chosen token and the top-10 logits (step 0 also carries the
 * full logits vector), for comparisons with llama.cpp.
 *   castor run -m MODEL (-p TEXT | --prompt-ids 1,2,3) [-n N] [--temp T]
 *     [--top-k K] [--top-p P] [--min-p P] [--seed S] [-t THREADS] [-c CTX]
 *     [--logits-json] [-v] [--chat | --chat-template FILE] [--json | --json-schema FILE]
 *     [--mmproj PROJ --image FILE ...] [--file DOC [--file-type MIME]]
 * (images and documents: run_media.c)
 * --chat renders the prompt as one user message with the model's chat
 * template (--chat-template: with the template in FILE), the message text
 * tokenized as plain text (never control tokens; docs/internals/thinking.md).
 * --json / --json-schema FILE constrain the output (docs/internals/grammar.md).
 */
#define _GNU_SOURCE /* memmem */
#include "cli.h"
#include "api/schema.h"
#include "engine/engine.h"
#include "engine/runtime/sched.h"
#include "engine/template/template.h"
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: castor run -m MODEL (-p TEXT | --prompt-ids 1,2,3) [options]\n"
            "  -n N            tokens to generate (default 128)\n"
            "  --temp T        temperature (0 = greedy; default 0.8)\n"
            "  --top-k K       top-k (default 40, 0 = off)\n"
            "  --top-p P       top-p (default 0.95, 1 = off)\n"
            "  --min-p P       min-p (default 0.05, 0 = off)\n"
            "  --seed S        random seed (default: random)\n"
            "  -t THREADS      threads (default: all CPUs)\n"
            "  -c CTX          context size (default: min(training context, 4096))\n"
            "  --logits-json   print one JSON object per step instead of text\n"
            "  -v              print timings to stderr\n"
            "  --chat          render -p as a user message with the model's chat template\n"
            "                  (no template: the plain fallback format)\n"
            "  --chat-template FILE  like --chat with the Jinja template in FILE\n"
            "  --mmproj FILE   the model's vision projector (GGUF), for --image and PDF pages\n"
            "  --image FILE    an image (png, jpeg, webp, gif; repeatable, up to 16): each <__media__>\n"
            "                  in -p marks where the next one goes (none: the images before the text)\n"
            "  --file FILE     a document (text, markdown, CSV, HTML, JSON, source code, PDF) before the\n"
            "                  prompt, framed as the server frames it; PDF pages also as images with --mmproj\n"
            "  --file-type T   the document's MIME type (default: from the extension)\n"
            "  --json-schema FILE  constrain the output to JSON valid against the JSON Schema in FILE\n"
            "  --json          constrain the output to any JSON value\n");
}

static bool parse_ids(const char *s, cst_token **out, size_t *n) {
    size_t cap = 16, k = 0;
    cst_token *v = malloc(cap * sizeof *v);
    if (!v) return false;
    while (*s) {
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (end == s || errno || x < 0 || x > INT32_MAX) {
            free(v);
            return false;
        }
        if (k == cap) {
            cap *= 2;
            cst_token *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                return false;
            }
            v = nv;
        }
        v[k++] = (cst_token)x;
        s = end;
        while (*s == ',' || *s == ' ') s++;
    }
    *out = v;
    *n = k;
    return k > 0;
}

static bool on_token(void *ud, cst_token tok, const char *text, size_t len) {
    (void)ud;
    (void)tok;
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return false;
}

/* text as one user message through the chat template (or the fallback):
 * the rendered prompt (*out, malloc'd), the byte ranges of the message text
 * in it (*ranges, pairs, malloc'd; tokenized as plain text) and whether BOS
 * must be added (the template did not write it). Returns 0, 1 or 2. */
int cst_run_chat_render(cst_model *m, const char *tpl_file, const char *text, char **out, size_t *out_len,
                        size_t **out_ranges, size_t *out_nr, bool *out_add_special) {
    char err[512];
    char *file = NULL;
    size_t flen = 0;
    const char *src = cst_model_chat_template(m);
    const cst_vocab *v = cst_model_vocab(m);
    if (tpl_file) {
        if (cst_read_file(tpl_file, &file, &flen)) {
            fprintf(stderr, "castor run: cannot read --chat-template %s\n", tpl_file);
            return 2;
        }
        src = file;
    }
    static const char ph[] = "\xEE\x80\x80" "cst-run-prompt" "\xEE\x80\x81";
    const bool tpl = src && *src;
    cst_tvalue *msgs = cst_tv_list(), *msg = cst_tv_dict();
    int rc = 1;
    cst_template *t = NULL;
    char *r = NULL, *fin = NULL;
    size_t rlen = 0, *ranges = NULL, nr = 0;
    if (!msgs || !msg || cst_tv_dict_setz(msg, "role", cst_tv_cstr("user")) ||
        cst_tv_dict_setz(msg, "content", cst_tv_cstr(tpl ? ph : text)) || cst_tv_list_push(msgs, msg)) {
        msg = NULL;
        goto out;
    }
    msg = NULL;
    if (!tpl) {
        if (cst_chat_fallback(msgs, true, &r, &rlen, err, sizeof err)) goto out;
        /* the fallback has no special text: all of it is plain */
        ranges = malloc(2 * sizeof *ranges);
        if (!ranges) goto out;
        ranges[0] = 0;
        ranges[1] = rlen;
        *out = r;
        *out_len = rlen;
        *out_ranges = ranges;
        *out_nr = 1;
        *out_add_special = true;
        r = NULL;
        ranges = NULL;
        rc = 0;
        goto out;
    }
    cst_status st = cst_template_parse(src, strlen(src), &t, err, sizeof err);
    if (st) {
        fprintf(stderr, "castor run: chat template%s%s: %s\n", tpl_file ? " " : "", tpl_file ? tpl_file : "", err);
        rc = 2;
        goto out;
    }
    cst_chat_params cp = cst_chat_default_params();
    cst_token b = cst_vocab_bos(v), e = cst_vocab_eos(v);
    cp.bos_token = b >= 0 ? cst_vocab_text(v, b) : NULL;
    cp.eos_token = e >= 0 ? cst_vocab_text(v, e) : NULL;
    if (cst_chat_apply(t, msgs, &cp, &r, &rlen, err, sizeof err)) {
        fprintf(stderr, "castor run: the chat template failed: %s\n", err);
        goto out;
    }
    size_t tl = strlen(text), phl = sizeof ph - 1, k = 0, cap = 0, need = 0;
    for (const char *q = r; (q = memmem(q, rlen - (size_t)(q - r), ph, phl)); q += phl) need += tl;
    fin = malloc(rlen + need + 1);
    if (!fin) goto out;
    for (size_t i = 0; i < rlen;) {
        const char *q = memmem(r + i, rlen - i, ph, phl);
        size_t at = q ? (size_t)(q - r) : rlen;
        memcpy(fin + k, r + i, at - i);
        k += at - i;
        if (!q) break;
        if (nr == cap) {
            cap = cap ? cap * 2 : 4;
            size_t *nr2 = realloc(ranges, cap * 2 * sizeof *nr2);
            if (!nr2) goto out;
            ranges = nr2;
        }
        ranges[2 * nr] = k;
        memcpy(fin + k, text, tl);
        k += tl;
        ranges[2 * nr + 1] = k;
        nr++;
        i = at + phl;
    }
    fin[k] = 0;
    *out_add_special = !(cp.bos_token && *cp.bos_token && !strncmp(fin, cp.bos_token, strlen(cp.bos_token)));
    *out = fin;
    *out_len = k;
    *out_ranges = ranges;
    *out_nr = nr;
    fin = NULL;
    ranges = NULL;
    rc = 0;
out:
    if (rc == 1) fprintf(stderr, "castor run: cannot render the chat prompt\n");
    cst_tv_free(msgs);
    cst_tv_free(msg);
    cst_template_free(t);
    free(r);
    free(fin);
    free(ranges);
    free(file);
    return rc;
}

/* -p text as one user message through the chat template, tokenized. */
static int chat_tokens(cst_model *m, const char *tpl_file, const char *text, cst_token **out, size_t *n_out) {
    char *fin = NULL;
    size_t k = 0, *ranges = NULL, nr = 0;
    bool add_special = true;
    int rc = cst_run_chat_render(m, tpl_file, text, &fin, &k, &ranges, &nr, &add_special);
    if (rc) return rc;
    if (cst_tokenize_plain_ranges(cst_model_vocab(m), fin, k, add_special, ranges, nr, out, n_out)) {
        fprintf(stderr, "castor run: cannot render the chat prompt\n");
        rc = 1;
    }
    free(fin);
    free(ranges);
    return rc;
}

/* --json / --json-schema: generate through a one-slot scheduler with the
 * schema's grammar (the same path as the server's response_format). */
static int run_constrained(cst_model *m, const char *schema_file, const cst_token *prompt, size_t np, int n_gen,
                           const cst_sampler_params *sp, int32_t n_ctx, int n_threads, bool verbose) {
    char err[1200] = "";
    json_t *schema = NULL;
    if (schema_file) {
        json_error_t je;
        schema = json_load_file(schema_file, JSON_DECODE_ANY, &je);
        if (!schema) {
            fprintf(stderr, "castor run: --json-schema %s: %s (line %d)\n", schema_file, je.text, je.line);
            return 2;
        }
    }
    cst_grammar *g = cst_schema_compile(schema, "schema", err, sizeof err);
    json_decref(schema);
    if (!g) {
        fprintf(stderr, "castor run: --json-schema %s: %s\n", schema_file, err);
        return 2;
    }
    const int32_t need = cst_grammar_min_bytes(g);
    if (n_gen > 0 && need > n_gen) {
        fprintf(stderr, "castor run: -n %d is below the shortest answer the schema allows (%d tokens)\n", n_gen, need);
        cst_grammar_unref(g);
        return 2;
    }
    cst_sched_params p = cst_sched_default_params();
    p.n_slots = 1;
    p.n_ctx = n_ctx;
    p.n_threads = n_threads;
    p.cache_bytes = 0;
    cst_sched *s = NULL;
    int rc = 1;
    cst_sched_req *r = NULL;
    if (cst_sched_new(m, &p, &s, err, sizeof err)) {
        fprintf(stderr, "castor run: %s\n", err);
        goto out;
    }
    cst_req_params rp = {.prompt = prompt, .n_prompt = np, .sampling = *sp, .max_tokens = n_gen, .grammar = g};
    if (cst_sched_submit(s, &rp, &r, err, sizeof err)) {
        fprintf(stderr, "castor run: %s\n", err);
        goto out;
    }
    cst_sched_event ev;
    for (;;) {
        if (!cst_sched_req_next(r, &ev, -1)) continue;
        if (ev.type == CST_SCHED_EV_TEXT) {
            fwrite(ev.text, 1, ev.len, stdout);
            fflush(stdout);
            free(ev.text);
        } else if (ev.type == CST_SCHED_EV_DONE) {
            if (ev.status) fprintf(stderr, "\ncastor run: %s\n", ev.text ? ev.text : cst_status_str(ev.status));
            else rc = 0;
            if (verbose)
                fprintf(stderr, "\n[generated %d tokens | finish %s]\n", ev.n_gen, cst_finish_str(ev.finish));
            free(ev.text);
            break;
        }
    }
    fputc('\n', stdout);
out:
    cst_sched_req_release(r);
    cst_sched_free(s);
    cst_grammar_unref(g);
    return rc;
}

int cmd_run(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *ids = NULL, *chat_tpl = NULL;
    bool chat = false;
    int n_gen = 128, n_threads = 0, n_ctx = 0;
    bool json = false, verbose = false, json_out = false;
    const char *schema_file = NULL;
    cst_sampler_params sp = cst_sampler_default_params();
    cst_run_media_opts mo = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                        \
    do {                                                               \
        if (!v) {                                                      \
            fprintf(stderr, "castor run: %s needs a value\n", a);      \
            return 2;                                                  \
        }                                                              \
        i++;                                                           \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEEDV();
            model = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            NEEDV();
            text = v;
        } else if (!strcmp(a, "--prompt-ids")) {
            NEEDV();
            ids = v;
        } else if (!strcmp(a, "-n")) {
            NEEDV();
            n_gen = atoi(v);
        } else if (!strcmp(a, "--temp")) {
            NEEDV();
            sp.temperature = (float)atof(v);
        } else if (!strcmp(a, "--top-k")) {
            NEEDV();
            sp.top_k = atoi(v);
        } else if (!strcmp(a, "--top-p")) {
            NEEDV();
            sp.top_p = (float)atof(v);
        } else if (!strcmp(a, "--min-p")) {
            NEEDV();
            sp.min_p = (float)atof(v);
        } else if (!strcmp(a, "--seed")) {
            NEEDV();
            sp.seed = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEEDV();
            n_threads = atoi(v);
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            NEEDV();
            n_ctx = atoi(v);
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else if (!strcmp(a, "--chat-template")) {
            NEEDV();
            chat = true;
            chat_tpl = v;
        } else if (!strcmp(a, "--mmproj")) {
            NEEDV();
            mo.mmproj = v;
        } else if (!strcmp(a, "--image")) {
            NEEDV();
            if (mo.n_images == 16) {
                fprintf(stderr, "castor run: at most 16 --image files\n");
                return 2;
            }
            mo.images[mo.n_images++] = v;
        } else if (!strcmp(a, "--file")) {
            NEEDV();
            mo.file = v;
        } else if (!strcmp(a, "--file-type")) {
            NEEDV();
            mo.file_type = v;
        } else if (!strcmp(a, "--logits-json")) {
            json = true;
        } else if (!strcmp(a, "--json-schema")) {
            NEEDV();
            schema_file = v;
            json_out = true;
        } else if (!strcmp(a, "--json")) {
            json_out = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = true;
        } else {
            fprintf(stderr, "castor run: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
#undef NEEDV
    }
    const bool media = mo.mmproj || mo.n_images || mo.file;
    if (!model || (!text && !ids && !mo.file) || (text && ids) || (ids && media) || n_gen < 0) {
        usage(stderr);
        return 2;
    }

    char err[CST_ERRMSG_LEN] = "";
    cst_model *m = NULL;
    cst_status st = cst_model_load(model, NULL, &m, err, sizeof err);
    if (st) {
        fprintf(stderr, "castor run: %s\n", err[0] ? err : cst_status_str(st));
        return 1;
    }
    cst_token *prompt = NULL;
    size_t np = 0;
    int rc = 1;
    cst_ctx *ctx = NULL;
    if (media) { /* images and documents (run_media.c) */
        mo.text = text;
        mo.chat = chat;
        mo.chat_tpl = chat_tpl;
        mo.n_gen = n_gen;
        mo.n_threads = n_threads;
        mo.n_ctx = n_ctx;
        mo.json = json;
        mo.verbose = verbose;
        mo.sp = sp;
        rc = cst_run_media(m, &mo);
        goto out;
    }
    if (ids) {
        if (!parse_ids(ids, &prompt, &np)) {
            fprintf(stderr, "castor run: bad --prompt-ids '%s'\n", ids);
            rc = 2;
            goto out;
        }
        for (size_t i = 0; i < np; i++)
            if (prompt[i] >= cst_model_n_vocab(m)) {
                fprintf(stderr, "castor run: token id %d out of range (vocabulary %d)\n", prompt[i],
                        cst_model_n_vocab(m));
                rc = 2;
                goto out;
            }
    } else if (chat) {
        rc = chat_tokens(m, chat_tpl, text, &prompt, &np);
        if (rc) goto out;
        rc = 1;
    } else {
        st = cst_tokenize(cst_model_vocab(m), text, strlen(text), true, true, &prompt, &np);
        if (st || np == 0) {
            fprintf(stderr, "castor run: cannot tokenize the prompt (%s)\n", cst_status_str(st));
            goto out;
        }
    }

    cst_ctx_params cp = cst_ctx_default_params();
    cp.n_ctx = n_ctx > 0 ? n_ctx : CST_MIN(cst_model_n_ctx_train(m), 4096);
    cp.n_batch = (int32_t)CST_MIN(np, (size_t)512);
    cp.n_threads = n_threads;
    if (np >= (size_t)cp.n_ctx) {
        fprintf(stderr, "castor run: prompt of %zu tokens does not fit the context (%d)\n", np, cp.n_ctx);
        goto out;
    }
    st = cst_ctx_new(m, &cp, &ctx, err, sizeof err);
    if (st) {
        fprintf(stderr, "castor run: %s\n", err);
        goto out;
    }

    if (json) {
        const float *lg = cst_cli_prefill(ctx, prompt, np, NULL, 0, cp.n_batch);
        rc = lg ? cst_cli_generate(ctx, lg, np, n_gen, true, &sp) : 1;
        goto out;
    }
    if (json_out) {
        cst_ctx_free(ctx); /* the scheduler makes its own */
        ctx = NULL;
        rc = run_constrained(m, schema_file, prompt, np, n_gen, &sp, cp.n_ctx, n_threads, verbose);
        goto out;
    }
    if (n_gen == 0) {
        rc = 0;
        goto out;
    }
    cst_gen_params gp = cst_gen_default_params();
    gp.sampling = sp;
    gp.max_tokens = n_gen;
    cst_gen_result res;
    st = cst_generate(ctx, prompt, np, &gp, on_token, NULL, &res);
    if (st) {
        fprintf(stderr, "\ncastor run: %s: %s\n", cst_status_str(st), cst_ctx_errmsg(ctx));
        goto out;
    }
    if (verbose)
        fprintf(stderr, "\n[prompt %d tokens, %.2f tok/s | generated %d tokens, %.2f tok/s | finish %s]\n", res.n_prompt,
                res.t_prompt_s > 0 ? (res.n_prompt - res.n_prompt_reused) / res.t_prompt_s : 0.0, res.n_gen,
                res.t_gen_s > 0 ? res.n_gen / res.t_gen_s : 0.0, cst_finish_str(res.finish));
    rc = 0;
out:
    cst_ctx_free(ctx);
    free(prompt);
    cst_model_free(m);
    return rc;
}
