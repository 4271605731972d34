/* eval.c: the template renderer. Walks the AST with a scope chain; every
 * render-time value lives in one bump arena freed at the end, so errors
 * (raise_exception, type errors, limits) unwind with longjmp and leave
 * nothing behind. Semantics follow @huggingface/jinja 0.5.11 wherever it
 * produces output (printing, ==, +, tojson, string methods...) and Python
 * Jinja where the reference only throws (string comparison, rsplit, round).
 */
#include "template_int.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- builtin ids ---- */

enum {
    F_SAFE, F_TOJSON, F_LIST, F_FIRST, F_LAST, F_LENGTH, F_REVERSE, F_SORT, F_JOIN, F_STRING, F_UNIQUE,
    F_UPPER, F_LOWER, F_TITLE, F_CAPITALIZE, F_TRIM, F_INDENT, F_INT, F_FLOAT, F_ABS, F_ROUND, F_ITEMS, F_KEYS,
    F_VALUES, F_SELECTATTR, F_REJECTATTR, F_SELECT, F_REJECT, F_MAP, F_DEFAULT, F_BOOL, F_REPLACE, F_SPLIT,
    F_DICTSORT, F_MIN, F_MAX, F_SUM, F_ESCAPE,
};
static const struct {
    const char *name;
    int id;
} filters[] = {
    {"safe", F_SAFE},       {"tojson", F_TOJSON},         {"list", F_LIST},         {"first", F_FIRST},
    {"last", F_LAST},       {"length", F_LENGTH},         {"count", F_LENGTH},      {"reverse", F_REVERSE},
    {"sort", F_SORT},       {"join", F_JOIN},             {"string", F_STRING},     {"unique", F_UNIQUE},
    {"upper", F_UPPER},     {"lower", F_LOWER},           {"title", F_TITLE},       {"capitalize", F_CAPITALIZE},
    {"trim", F_TRIM},       {"indent", F_INDENT},         {"int", F_INT},           {"float", F_FLOAT},
    {"abs", F_ABS},         {"round", F_ROUND},           {"items", F_ITEMS},       {"keys", F_KEYS},
    {"values", F_VALUES},   {"selectattr", F_SELECTATTR}, {"rejectattr", F_REJECTATTR}, {"select", F_SELECT},
    {"reject", F_REJECT},   {"map", F_MAP},               {"default", F_DEFAULT},   {"d", F_DEFAULT},
    {"bool", F_BOOL},       {"replace", F_REPLACE},       {"split", F_SPLIT},       {"dictsort", F_DICTSORT},
    {"min", F_MIN},         {"max", F_MAX},               {"sum", F_SUM},           {"escape", F_ESCAPE},
    {"e", F_ESCAPE},
};

enum {
    T_DEFINED, T_UNDEFINED, T_NONE, T_STRING, T_NUMBER, T_INTEGER, T_FLOAT, T_MAPPING, T_ITERABLE, T_SEQUENCE,
    T_BOOLEAN, T_TRUE, T_FALSE, T_CALLABLE, T_ODD, T_EVEN, T_DIVISIBLEBY, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
    T_IN, T_LOWER, T_UPPER, T_SAMEAS,
};
static const struct {
    const char *name;
    int id;
} tests[] = {
    {"defined", T_DEFINED},   {"undefined", T_UNDEFINED}, {"none", T_NONE},         {"string", T_STRING},
    {"number", T_NUMBER},     {"integer", T_INTEGER},     {"float", T_FLOAT},       {"mapping", T_MAPPING},
    {"iterable", T_ITERABLE}, {"sequence", T_SEQUENCE},   {"boolean", T_BOOLEAN},   {"true", T_TRUE},
    {"false", T_FALSE},       {"callable", T_CALLABLE},   {"odd", T_ODD},           {"even", T_EVEN},
    {"divisibleby", T_DIVISIBLEBY}, {"equalto", T_EQ},    {"eq", T_EQ},             {"ne", T_NE},
    {"lt", T_LT},             {"lessthan", T_LT},         {"le", T_LE},             {"gt", T_GT},
    {"greaterthan", T_GT},    {"ge", T_GE},               {"in", T_IN},             {"lower", T_LOWER},
    {"upper", T_UPPER},       {"sameas", T_SAMEAS},
};

enum {
    FN_RAISE, FN_RANGE, FN_NAMESPACE, FN_STRFTIME, FN_DICT, FN_MACRO, FN_CALLER,
    /* string methods */
    SM_UPPER, SM_LOWER, SM_STRIP, SM_LSTRIP, SM_RSTRIP, SM_TITLE, SM_CAPITALIZE, SM_STARTSWITH, SM_ENDSWITH,
    SM_SPLIT, SM_RSPLIT, SM_REPLACE, SM_FORMAT, SM_JOIN, SM_FIND, SM_COUNT,
    /* dict methods */
    DM_GET, DM_ITEMS, DM_KEYS, DM_VALUES,
    /* list methods */
    LM_APPEND, LM_POP, LM_INDEX,
};
static const struct {
    const char *name;
    int id;
} globals[] = {{"raise_exception", FN_RAISE}, {"range", FN_RANGE}, {"namespace", FN_NAMESPACE},
               {"strftime_now", FN_STRFTIME}, {"dict", FN_DICT}};
static const struct {
    const char *name;
    int id;
} str_methods[] = {{"upper", SM_UPPER},   {"lower", SM_LOWER},       {"strip", SM_STRIP},
                   {"lstrip", SM_LSTRIP}, {"rstrip", SM_RSTRIP},     {"title", SM_TITLE},
                   {"capitalize", SM_CAPITALIZE}, {"startswith", SM_STARTSWITH}, {"endswith", SM_ENDSWITH},
                   {"split", SM_SPLIT},   {"rsplit", SM_RSPLIT},     {"replace", SM_REPLACE},
                   {"format", SM_FORMAT}, {"join", SM_JOIN},         {"find", SM_FIND},
                   {"count", SM_COUNT}},
  dict_methods[] = {{"get", DM_GET}, {"items", DM_ITEMS}, {"keys", DM_KEYS}, {"values", DM_VALUES}},
  list_methods[] = {{"append", LM_APPEND}, {"pop", LM_POP}, {"index", LM_INDEX}};

#define FIND_IN(tab, s, n)                                                                                  \
    do {                                                                                                     \
        for (size_t i_ = 0; i_ < CST_ARRAY_LEN(tab); i_++)                                                   \
            if (strlen(tab[i_].name) == (n) && !memcmp(tab[i_].name, (s), (n))) return tab[i_].id;           \
        return -1;                                                                                           \
    } while (0)

int tpl_filter_id(const char *s, size_t n) { FIND_IN(filters, s, n); }
int tpl_test_id(const char *s, size_t n) { FIND_IN(tests, s, n); }
static int str_method_id(const char *s, size_t n) { FIND_IN(str_methods, s, n); }
static int dict_method_id(const char *s, size_t n) { FIND_IN(dict_methods, s, n); }
static int list_method_id(const char *s, size_t n) { FIND_IN(list_methods, s, n); }
static int global_id(const char *s, size_t n) { FIND_IN(globals, s, n); }
bool tpl_is_method(const char *s, size_t n) {
    return str_method_id(s, n) >= 0 || dict_method_id(s, n) >= 0 || list_method_id(s, n) >= 0;
}
bool tpl_is_global_fn(const char *s, size_t n) { return global_id(s, n) >= 0; }

/* ---- render context ---- */

typedef struct tenv {
    struct tenv *parent;
    tv_entry *v;
    size_t n, cap;
} tenv;

typedef struct rctx {
    tpl_arena ar;
    cst_template_limits lim;
    uint64_t steps;
    int depth;
    sbuf *out;
    int ctl; /* 1 break, 2 continue */
    jmp_buf jb;
    cst_status st;
    char *err;
    size_t errlen;
    cst_tvalue *undef, *none, *vtrue, *vfalse;
} rctx;

__attribute__((format(printf, 4, 5), noreturn)) static void rfail(rctx *R, cst_status st, const tnode *at,
                                                                  const char *fmt, ...) {
    char msg[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at) cst_errf(R->err, R->errlen, "line %d: %s", at->line, msg);
    else cst_errf(R->err, R->errlen, "%s", msg);
    R->st = st;
    longjmp(R->jb, 1);
}

__attribute__((noreturn)) static void room(rctx *R) {
    if (R->ar.over)
        rfail(R, CST_ERR_INVALID_ARG, NULL, "template exceeded its memory limit (%zu bytes)", R->lim.max_memory);
    rfail(R, CST_ERR_NOMEM, NULL, "out of memory while rendering the template");
}

static void *ralloc(rctx *R, size_t n) {
    void *p = tpl_arena_alloc(&R->ar, n);
    if (!p) room(R);
    return p;
}

static cst_tvalue *mkv(rctx *R, int kind) {
    cst_tvalue *v = ralloc(R, sizeof *v);
    v->kind = (uint8_t)kind;
    return v;
}
static cst_tvalue *v_int(rctx *R, int64_t i) {
    cst_tvalue *v = mkv(R, CST_TV_INT);
    v->u.i = i;
    return v;
}
static cst_tvalue *v_float(rctx *R, double f) {
    cst_tvalue *v = mkv(R, CST_TV_FLOAT);
    v->u.f = f;
    return v;
}
static cst_tvalue *v_bool(rctx *R, bool b) { return b ? R->vtrue : R->vfalse; }
static cst_tvalue *v_str(rctx *R, const char *s, size_t n) { /* borrows s (arena or template) */
    cst_tvalue *v = mkv(R, CST_TV_STRING);
    v->u.s.p = s;
    v->u.s.n = n;
    return v;
}
static cst_tvalue *v_strdup(rctx *R, const char *s, size_t n) {
    char *p = ralloc(R, n + 1);
    if (n) memcpy(p, s, n);
    return v_str(R, p, n);
}
static cst_tvalue *v_list(rctx *R, size_t cap) {
    cst_tvalue *v = mkv(R, CST_TV_LIST);
    if (cap) {
        v->u.l.v = ralloc(R, cap * sizeof *v->u.l.v);
        v->u.l.cap = cap;
    }
    return v;
}
static void l_push(rctx *R, cst_tvalue *l, cst_tvalue *x) {
    if (l->u.l.n == l->u.l.cap) {
        size_t nc = l->u.l.cap ? l->u.l.cap * 2 : 4;
        cst_tvalue **nv = ralloc(R, nc * sizeof *nv);
        if (l->u.l.n) memcpy(nv, l->u.l.v, l->u.l.n * sizeof *nv);
        l->u.l.v = nv;
        l->u.l.cap = nc;
    }
    l->u.l.v[l->u.l.n++] = x;
}
static cst_tvalue *v_dict(rctx *R, int kind) { return mkv(R, kind); }
static cst_tvalue *d_get(const cst_tvalue *d, const char *k, size_t kn) {
    for (size_t i = 0; i < d->u.d.n; i++)
        if (d->u.d.e[i].kn == kn && !memcmp(d->u.d.e[i].k, k, kn)) return d->u.d.e[i].v;
    return NULL;
}
static void d_set(rctx *R, cst_tvalue *d, const char *k, size_t kn, cst_tvalue *x) {
    for (size_t i = 0; i < d->u.d.n; i++)
        if (d->u.d.e[i].kn == kn && !memcmp(d->u.d.e[i].k, k, kn)) {
            d->u.d.e[i].v = x;
            return;
        }
    if (d->u.d.n == d->u.d.cap) {
        size_t nc = d->u.d.cap ? d->u.d.cap * 2 : 4;
        tv_entry *ne = ralloc(R, nc * sizeof *ne);
        if (d->u.d.n) memcpy(ne, d->u.d.e, d->u.d.n * sizeof *ne);
        d->u.d.e = ne;
        d->u.d.cap = nc;
    }
    d->u.d.e[d->u.d.n++] = (tv_entry){k, kn, x};
}
static cst_tvalue *v_fn(rctx *R, int id, cst_tvalue *self, const tnode *node, tenv *env) {
    cst_tvalue *v = mkv(R, TV_FUNC);
    v->u.fn.id = id;
    v->u.fn.self = self;
    v->u.fn.node = node;
    v->u.fn.env = env;
    return v;
}

static tenv *env_new(rctx *R, tenv *parent) {
    tenv *e = ralloc(R, sizeof *e);
    e->parent = parent;
    return e;
}
static void env_set(rctx *R, tenv *e, const char *k, size_t kn, cst_tvalue *v) {
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i].kn == kn && !memcmp(e->v[i].k, k, kn)) {
            e->v[i].v = v;
            return;
        }
    if (e->n == e->cap) {
        size_t nc = e->cap ? e->cap * 2 : 8;
        tv_entry *nv = ralloc(R, nc * sizeof *nv);
        if (e->n) memcpy(nv, e->v, e->n * sizeof *nv);
        e->v = nv;
        e->cap = nc;
    }
    e->v[e->n++] = (tv_entry){k, kn, v};
}
static cst_tvalue *env_get(rctx *R, tenv *e, const char *k, size_t kn) {
    for (; e; e = e->parent)
        for (size_t i = 0; i < e->n; i++)
            if (e->v[i].kn == kn && !memcmp(e->v[i].k, k, kn)) return e->v[i].v;
    return R->undef;
}

static void sb_check(rctx *R, sbuf *b) {
    if (b->oom) room(R);
}
static sbuf sb_arena(rctx *R) { return (sbuf){.ar = &R->ar}; }
static cst_tvalue *sb_value(rctx *R, sbuf *b) {
    sb_check(R, b);
    return v_str(R, b->p ? b->p : "", b->n);
}

static const char *kind_name(const cst_tvalue *v) {
    switch (v->kind) {
    case CST_TV_UNDEFINED: return "undefined";
    case CST_TV_NONE: return "none";
    case CST_TV_BOOL: return "boolean";
    case CST_TV_INT: return "integer";
    case CST_TV_FLOAT: return "float";
    case CST_TV_STRING: return "string";
    case CST_TV_LIST: return "list";
    case CST_TV_DICT: return "dict";
    case TV_NS: return "namespace";
    default: return "function";
    }
}

/* ---- conversions ---- */

static bool truthy(const cst_tvalue *v) {
    switch (v->kind) {
    case CST_TV_BOOL: return v->u.b;
    case CST_TV_INT: return v->u.i != 0;
    case CST_TV_FLOAT: return v->u.f != 0 && !isnan(v->u.f);
    case CST_TV_STRING: return v->u.s.n > 0;
    case CST_TV_LIST: return v->u.l.n > 0;
    case CST_TV_DICT: return v->u.d.n > 0;
    case TV_NS:
    case TV_FUNC: return true;
    default: return false;
    }
}

static bool is_num(const cst_tvalue *v) { return v->kind == CST_TV_INT || v->kind == CST_TV_FLOAT; }
static double num(const cst_tvalue *v) {
    return v->kind == CST_TV_INT ? (double)v->u.i : v->kind == CST_TV_FLOAT ? v->u.f : v->kind == CST_TV_BOOL ? v->u.b : 0;
}

typedef struct {
    int indent;
    bool ascii, sort_keys;
    const char *isep, *ksep;
    size_t isn, ksn;
    bool undef_null;
} json_opts;

static int key_cmp(const void *a, const void *b) {
    const tv_entry *x = a, *y = b;
    size_t n = CST_MIN(x->kn, y->kn);
    int c = memcmp(x->k, y->k, n);
    return c ? c : (x->kn < y->kn ? -1 : x->kn > y->kn);
}

static void to_json(rctx *R, sbuf *b, const cst_tvalue *v, const json_opts *o, int depth) {
    if (depth > 512) rfail(R, CST_ERR_INVALID_ARG, NULL, "value nested too deeply (or cyclic) for tojson");
    switch (v->kind) {
    case CST_TV_UNDEFINED: sb_puts(b, o->undef_null ? "null" : "undefined"); return;
    case CST_TV_NONE: sb_puts(b, "null"); return;
    case CST_TV_BOOL: sb_puts(b, v->u.b ? "true" : "false"); return;
    case CST_TV_INT: {
        char t[32];
        snprintf(t, sizeof t, "%lld", (long long)v->u.i);
        sb_puts(b, t);
        return;
    }
    case CST_TV_FLOAT:
        if (!isfinite(v->u.f)) sb_puts(b, "null");
        else tpl_fmt_number(b, v->u.f);
        return;
    case CST_TV_STRING: tpl_json_string(b, v->u.s.p, v->u.s.n, o->ascii); return;
    case CST_TV_LIST:
    case CST_TV_DICT:
    case TV_NS: {
        bool list = v->kind == CST_TV_LIST;
        size_t n = list ? v->u.l.n : v->u.d.n;
        sb_putc(b, list ? '[' : '{');
        if (n == 0) {
            sb_putc(b, list ? ']' : '}');
            return;
        }
        const tv_entry *ents = list ? NULL : v->u.d.e;
        if (!list && o->sort_keys) {
            tv_entry *s = ralloc(R, n * sizeof *s);
            memcpy(s, ents, n * sizeof *s);
            qsort(s, n, sizeof *s, key_cmp);
            ents = s;
        }
        for (size_t i = 0; i < n; i++) {
            if (i) sb_put(b, o->isep, o->isn);
            if (o->indent > 0) {
                sb_putc(b, '\n');
                for (int k = 0; k < o->indent * (depth + 1); k++) sb_putc(b, ' ');
            }
            if (list) {
                to_json(R, b, v->u.l.v[i], o, depth + 1);
            } else {
                tpl_json_string(b, ents[i].k, ents[i].kn, o->ascii);
                sb_put(b, o->ksep, o->ksn);
                to_json(R, b, ents[i].v, o, depth + 1);
            }
            sb_check(R, b);
        }
        if (o->indent > 0) {
            sb_putc(b, '\n');
            for (int k = 0; k < o->indent * depth; k++) sb_putc(b, ' ');
        }
        sb_putc(b, list ? ']' : '}');
        return;
    }
    default: rfail(R, CST_ERR_INVALID_ARG, NULL, "cannot convert a function to JSON");
    }
}

static const json_opts json_default = {0, false, false, ", ", ": ", 2, 2, true};
static const json_opts json_print = {0, false, false, ", ", ": ", 2, 2, false};

/* The reference's toString(): what {{ v }} prints. */
static void to_str(rctx *R, sbuf *b, const cst_tvalue *v) {
    switch (v->kind) {
    case CST_TV_UNDEFINED:
    case CST_TV_NONE:
    case TV_FUNC: return;
    case CST_TV_BOOL: sb_puts(b, v->u.b ? "true" : "false"); return;
    case CST_TV_STRING: sb_put(b, v->u.s.p, v->u.s.n); return;
    case CST_TV_INT: to_json(R, b, v, &json_print, 0); return;
    case CST_TV_FLOAT: tpl_fmt_float_value(b, v->u.f); return;
    default: to_json(R, b, v, &json_print, 0); return;
    }
}

/* JS value.toString() as used by '+' / '~' / join: numbers without ".0". */
static void js_str(rctx *R, sbuf *b, const cst_tvalue *v) {
    switch (v->kind) {
    case CST_TV_STRING: sb_put(b, v->u.s.p, v->u.s.n); return;
    case CST_TV_FLOAT: tpl_fmt_number(b, v->u.f); return;
    case CST_TV_UNDEFINED:
    case CST_TV_NONE: return;
    default: to_str(R, b, v); return;
    }
}

static cst_tvalue *stringify(rctx *R, const cst_tvalue *v) {
    if (v->kind == CST_TV_STRING) return (cst_tvalue *)v;
    sbuf b = sb_arena(R);
    to_str(R, &b, v);
    return sb_value(R, &b);
}

/* JS Number(string) for loose equality */
static double js_to_number(const char *s, size_t n) {
    tpl_trim(&s, &n, true, true);
    if (n == 0) return 0;
    char tmp[80];
    if (n >= sizeof tmp) return NAN;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (!strcmp(tmp, "Infinity") || !strcmp(tmp, "+Infinity")) return INFINITY;
    if (!strcmp(tmp, "-Infinity")) return -INFINITY;
    if (n > 2 && tmp[0] == '0' && (tmp[1] == 'x' || tmp[1] == 'X')) {
        char *e;
        unsigned long long v = strtoull(tmp + 2, &e, 16);
        return *e ? NAN : (double)v;
    }
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789+-.eE", tmp[i])) return NAN;
    char *e;
    double d = strtod(tmp, &e);
    return *e ? NAN : d;
}

static bool loose_eq(const cst_tvalue *a, const cst_tvalue *b) {
    bool an = a->kind == CST_TV_NONE || a->kind == CST_TV_UNDEFINED;
    bool bn = b->kind == CST_TV_NONE || b->kind == CST_TV_UNDEFINED;
    if (an || bn) return an && bn;
    if (a->kind == CST_TV_STRING && b->kind == CST_TV_STRING)
        return a->u.s.n == b->u.s.n && !memcmp(a->u.s.p, b->u.s.p, a->u.s.n);
    bool ap = is_num(a) || a->kind == CST_TV_BOOL, bp = is_num(b) || b->kind == CST_TV_BOOL;
    if (ap && bp) return num(a) == num(b);
    if (ap && b->kind == CST_TV_STRING) return num(a) == js_to_number(b->u.s.p, b->u.s.n);
    if (bp && a->kind == CST_TV_STRING) return num(b) == js_to_number(a->u.s.p, a->u.s.n);
    return a == b;
}

static bool strict_eq(const cst_tvalue *a, const cst_tvalue *b) {
    if (is_num(a) && is_num(b)) return num(a) == num(b);
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case CST_TV_UNDEFINED:
    case CST_TV_NONE: return true;
    case CST_TV_BOOL: return a->u.b == b->u.b;
    case CST_TV_STRING: return a->u.s.n == b->u.s.n && !memcmp(a->u.s.p, b->u.s.p, a->u.s.n);
    default: return a == b;
    }
}

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, CST_MIN(an, bn));
    return c ? c : (an < bn ? -1 : an > bn);
}

static cst_tvalue *lowered(rctx *R, const cst_tvalue *s) {
    sbuf b = sb_arena(R);
    for (size_t i = 0; i < s->u.s.n;) {
        size_t adv;
        uint32_t cp = tpl_utf8_decode(s->u.s.p, s->u.s.n, i, &adv);
        if (cp == 0xFFFD && adv == 1) sb_put(&b, s->u.s.p + i, 1);
        else tpl_utf8_encode(&b, tpl_case_map(cp, false));
        i += adv;
    }
    return sb_value(R, &b);
}

/* compareRuntimeValues of the reference (sort, dictsort, min, max) */
static int compare(rctx *R, const cst_tvalue *a, const cst_tvalue *b, bool case_sensitive, const tnode *at) {
    bool an = a->kind == CST_TV_NONE, bn = b->kind == CST_TV_NONE;
    if (an && bn) return 0;
    bool au = a->kind == CST_TV_UNDEFINED, bu = b->kind == CST_TV_UNDEFINED;
    if (au && bu) return 0;
    bool ap = is_num(a) || a->kind == CST_TV_BOOL, bp = is_num(b) || b->kind == CST_TV_BOOL;
    if (ap && bp) {
        double x = num(a), y = num(b);
        return x < y ? -1 : x > y;
    }
    if (a->kind == CST_TV_STRING && b->kind == CST_TV_STRING) {
        if (!case_sensitive) {
            a = lowered(R, a);
            b = lowered(R, b);
        }
        return bytes_cmp(a->u.s.p, a->u.s.n, b->u.s.p, b->u.s.n);
    }
    rfail(R, CST_ERR_INVALID_ARG, at, "cannot compare %s with %s", kind_name(a), kind_name(b));
}

/* ---- output ---- */

static void emit(rctx *R, const char *s, size_t n) {
    if (R->out->n + n > R->lim.max_output)
        rfail(R, CST_ERR_INVALID_ARG, NULL, "template output exceeded %zu bytes", R->lim.max_output);
    sb_put(R->out, s, n);
    sb_check(R, R->out);
}

static void step(rctx *R, const tnode *at) {
    if (++R->steps > R->lim.max_steps)
        rfail(R, CST_ERR_INVALID_ARG, at, "template exceeded %llu evaluation steps",
              (unsigned long long)R->lim.max_steps);
}

static cst_tvalue *eval(rctx *R, const tnode *x, tenv *env);
static void exec_block(rctx *R, const tnode *const *list, int n, tenv *env);

static cst_tvalue *capture(rctx *R, const tnode *const *list, int n, tenv *env) {
    sbuf *saved = R->out;
    sbuf b = sb_arena(R);
    R->out = &b;
    exec_block(R, list, n, env);
    R->out = saved;
    return sb_value(R, &b);
}

/* ---- arguments ---- */

typedef struct {
    cst_tvalue **pos;
    int npos;
    const tnode **kwn; /* N_KWARG nodes (name in s) */
    cst_tvalue **kwv;
    int nkw;
} args_t;

static void eval_args(rctx *R, const tnode *const *list, int n, tenv *env, args_t *a) {
    memset(a, 0, sizeof *a);
    if (!n) return;
    a->pos = ralloc(R, (size_t)n * sizeof *a->pos);
    a->kwn = ralloc(R, (size_t)n * sizeof *a->kwn);
    a->kwv = ralloc(R, (size_t)n * sizeof *a->kwv);
    for (int i = 0; i < n; i++)
        if (list[i]->kind != N_KWARG) a->pos[a->npos++] = eval(R, list[i], env);
    for (int i = 0; i < n; i++)
        if (list[i]->kind == N_KWARG) {
            a->kwn[a->nkw] = list[i];
            a->kwv[a->nkw++] = eval(R, list[i]->a, env);
        }
}

/* positional i, else keyword name, else NULL */
static cst_tvalue *arg(const args_t *a, int i, const char *name) {
    if (i >= 0 && i < a->npos) return a->pos[i];
    if (name)
        for (int k = 0; k < a->nkw; k++)
            if (a->kwn[k]->sn == strlen(name) && !memcmp(a->kwn[k]->s, name, a->kwn[k]->sn)) return a->kwv[k];
    return NULL;
}

static bool arg_bool(rctx *R, const args_t *a, int i, const char *name, bool dflt, const tnode *at) {
    cst_tvalue *v = arg(a, i, name);
    if (!v || v->kind == CST_TV_UNDEFINED || v->kind == CST_TV_NONE) return dflt;
    if (v->kind != CST_TV_BOOL && !is_num(v)) rfail(R, CST_ERR_INVALID_ARG, at, "%s must be a boolean", name);
    return truthy(v);
}

static const char *need_str(rctx *R, const cst_tvalue *v, const char *what, const tnode *at, size_t *n) {
    if (!v || v->kind != CST_TV_STRING)
        rfail(R, CST_ERR_INVALID_ARG, at, "%s must be a string, got %s", what, v ? kind_name(v) : "nothing");
    *n = v->u.s.n;
    return v->u.s.p;
}

/* ---- string helpers ---- */

static cst_tvalue *str_case(rctx *R, const cst_tvalue *s, bool upper) {
    sbuf b = sb_arena(R);
    for (size_t i = 0; i < s->u.s.n;) {
        size_t adv;
        uint32_t cp = tpl_utf8_decode(s->u.s.p, s->u.s.n, i, &adv);
        if (cp == 0xFFFD && adv == 1) sb_put(&b, s->u.s.p + i, 1);
        else tpl_utf8_encode(&b, tpl_case_map(cp, upper));
        i += adv;
    }
    return sb_value(R, &b);
}

/* reference titleCase: uppercase an ASCII word char that follows a non-word char */
static cst_tvalue *str_title(rctx *R, const cst_tvalue *s) {
    char *p = ralloc(R, s->u.s.n + 1);
    memcpy(p, s->u.s.p, s->u.s.n);
    bool prev_word = false;
    for (size_t i = 0; i < s->u.s.n; i++) {
        char c = p[i];
        bool w = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (w && !prev_word && c >= 'a' && c <= 'z') p[i] = (char)(c - 32);
        prev_word = w;
    }
    return v_str(R, p, s->u.s.n);
}

static cst_tvalue *str_capitalize(rctx *R, const cst_tvalue *s) {
    if (!s->u.s.n) return (cst_tvalue *)s;
    size_t adv;
    uint32_t cp = tpl_utf8_decode(s->u.s.p, s->u.s.n, 0, &adv);
    sbuf b = sb_arena(R);
    if (cp == 0xFFFD && adv == 1) sb_put(&b, s->u.s.p, 1);
    else tpl_utf8_encode(&b, tpl_case_map(cp, true));
    sb_put(&b, s->u.s.p + adv, s->u.s.n - adv);
    return sb_value(R, &b);
}

static cst_tvalue *str_trim(rctx *R, const cst_tvalue *s, bool l, bool r) {
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    tpl_trim(&p, &n, l, r);
    return v_str(R, p, n);
}

static const char *find_bytes(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}
static const char *rfind_bytes(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn > hn) return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (!memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

static cst_tvalue *str_split(rctx *R, const cst_tvalue *s, const cst_tvalue *sep, int64_t maxsplit, bool right,
                             const tnode *at) {
    cst_tvalue *out = v_list(R, 0);
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    if (!sep || sep->kind == CST_TV_NONE || sep->kind == CST_TV_UNDEFINED) {
        /* whitespace runs; no empty strings at the ends */
        if (!right) {
            tpl_trim(&p, &n, true, false);
            const char *e = p + n;
            while (p < e) {
                if (maxsplit >= 0 && (int64_t)out->u.l.n >= maxsplit) {
                    l_push(R, out, v_str(R, p, (size_t)(e - p)));
                    break;
                }
                const char *q = p;
                while (q < e && !tpl_space_at(q, e)) q = p + tpl_utf8_next(p, (size_t)(e - p), (size_t)(q - p));
                l_push(R, out, v_str(R, p, (size_t)(q - p)));
                size_t w;
                while ((w = tpl_space_at(q, e))) q += w;
                p = q;
            }
        } else {
            tpl_trim(&p, &n, false, true);
            const char *e = p + n;
            cst_tvalue *rev = v_list(R, 0);
            while (e > p) {
                if (maxsplit >= 0 && (int64_t)rev->u.l.n >= maxsplit) {
                    l_push(R, rev, v_str(R, p, (size_t)(e - p)));
                    break;
                }
                const char *q = e;
                while (q > p && !tpl_space_before(p, q)) q--;
                l_push(R, rev, v_str(R, q, (size_t)(e - q)));
                size_t w;
                while ((w = tpl_space_before(p, q))) q -= w;
                e = q;
            }
            for (size_t i = rev->u.l.n; i-- > 0;) l_push(R, out, rev->u.l.v[i]);
        }
        return out;
    }
    size_t sn;
    const char *sp = need_str(R, sep, "split separator", at, &sn);
    if (!sn) rfail(R, CST_ERR_INVALID_ARG, at, "empty separator");
    if (!right) {
        while (true) {
            const char *f = (maxsplit >= 0 && (int64_t)out->u.l.n >= maxsplit) ? NULL : find_bytes(p, n, sp, sn);
            if (!f) {
                l_push(R, out, v_str(R, p, n));
                break;
            }
            l_push(R, out, v_str(R, p, (size_t)(f - p)));
            n -= (size_t)(f - p) + sn;
            p = f + sn;
        }
    } else {
        cst_tvalue *rev = v_list(R, 0);
        while (true) {
            const char *f = (maxsplit >= 0 && (int64_t)rev->u.l.n >= maxsplit) ? NULL : rfind_bytes(p, n, sp, sn);
            if (!f) {
                l_push(R, rev, v_str(R, p, n));
                break;
            }
            l_push(R, rev, v_str(R, f + sn, (size_t)(p + n - f - sn)));
            n = (size_t)(f - p);
        }
        for (size_t i = rev->u.l.n; i-- > 0;) l_push(R, out, rev->u.l.v[i]);
    }
    return out;
}

static cst_tvalue *str_replace(rctx *R, const cst_tvalue *s, const cst_tvalue *o, const cst_tvalue *nw,
                               const cst_tvalue *count, const tnode *at) {
    size_t on, nn;
    const char *op = need_str(R, o, "replace() old", at, &on);
    const char *np = need_str(R, nw, "replace() new", at, &nn);
    int64_t left = -1;
    if (count && count->kind == CST_TV_INT) left = count->u.i;
    else if (count && count->kind != CST_TV_NONE && count->kind != CST_TV_UNDEFINED)
        rfail(R, CST_ERR_INVALID_ARG, at, "replace() count must be an integer");
    if (left < 0) left = INT64_MAX;
    sbuf b = sb_arena(R);
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    if (on == 0) { /* insert at every code point boundary */
        size_t i = 0;
        while (true) {
            if (left > 0) {
                sb_put(&b, np, nn);
                left--;
            }
            if (i >= n) break;
            size_t j = tpl_utf8_next(p, n, i);
            sb_put(&b, p + i, j - i);
            i = j;
            sb_check(R, &b);
        }
        return sb_value(R, &b);
    }
    while (left > 0) {
        const char *f = find_bytes(p, n, op, on);
        if (!f) break;
        sb_put(&b, p, (size_t)(f - p));
        sb_put(&b, np, nn);
        n -= (size_t)(f - p) + on;
        p = f + on;
        left--;
        sb_check(R, &b);
    }
    sb_put(&b, p, n);
    return sb_value(R, &b);
}

/* code point i of a string (negative from the end), or NULL */
static cst_tvalue *str_index(rctx *R, const cst_tvalue *s, int64_t idx) {
    size_t len = tpl_utf8_len(s->u.s.p, s->u.s.n);
    if (idx < 0) idx += (int64_t)len;
    if (idx < 0 || (uint64_t)idx >= len) return NULL;
    size_t i = 0;
    for (int64_t k = 0; k < idx; k++) i = tpl_utf8_next(s->u.s.p, s->u.s.n, i);
    return v_str(R, s->u.s.p + i, tpl_utf8_next(s->u.s.p, s->u.s.n, i) - i);
}

static cst_tvalue *str_chars(rctx *R, const cst_tvalue *s) {
    cst_tvalue *l = v_list(R, 0);
    for (size_t i = 0; i < s->u.s.n;) {
        size_t j = tpl_utf8_next(s->u.s.p, s->u.s.n, i);
        l_push(R, l, v_str(R, s->u.s.p + i, j - i));
        i = j;
    }
    return l;
}

static cst_tvalue *str_format(rctx *R, const cst_tvalue *s, const args_t *a, const tnode *at) {
    sbuf b = sb_arena(R);
    const char *p = s->u.s.p, *e = p + s->u.s.n;
    int auto_idx = 0;
    while (p < e) {
        if (*p == '{' && p + 1 < e && p[1] == '{') {
            sb_putc(&b, '{');
            p += 2;
        } else if (*p == '}' && p + 1 < e && p[1] == '}') {
            sb_putc(&b, '}');
            p += 2;
        } else if (*p == '{') {
            const char *q = memchr(p, '}', (size_t)(e - p));
            if (!q) rfail(R, CST_ERR_INVALID_ARG, at, "format(): unmatched '{'");
            const char *f = p + 1;
            size_t fn = (size_t)(q - f);
            if (memchr(f, ':', fn) || memchr(f, '!', fn))
                rfail(R, CST_ERR_INVALID_ARG, at, "format(): format specs are not supported");
            cst_tvalue *v = NULL;
            if (fn == 0) {
                v = arg(a, auto_idx++, NULL);
            } else if (f[0] >= '0' && f[0] <= '9') {
                v = arg(a, atoi(f), NULL);
            } else {
                for (int k = 0; k < a->nkw; k++)
                    if (a->kwn[k]->sn == fn && !memcmp(a->kwn[k]->s, f, fn)) v = a->kwv[k];
            }
            if (!v) rfail(R, CST_ERR_INVALID_ARG, at, "format(): missing argument '%.*s'", (int)CST_MIN(fn, 40), f);
            to_str(R, &b, v);
            p = q + 1;
        } else {
            sb_putc(&b, *p++);
        }
    }
    return sb_value(R, &b);
}

/* ---- slices ---- */

static bool slice_int(rctx *R, const cst_tvalue *v, int64_t *out, const tnode *at) {
    if (!v || v->kind == CST_TV_UNDEFINED || v->kind == CST_TV_NONE) return false;
    if (v->kind != CST_TV_INT) rfail(R, CST_ERR_INVALID_ARG, at, "slice indices must be integers");
    *out = v->u.i;
    return true;
}

static cst_tvalue *do_slice(rctx *R, cst_tvalue *obj, const tnode *sl, tenv *env) {
    cst_tvalue *sv = sl->a ? eval(R, sl->a, env) : NULL, *ev = sl->b ? eval(R, sl->b, env) : NULL,
               *tv = sl->c ? eval(R, sl->c, env) : NULL;
    cst_tvalue *items;
    bool is_s = obj->kind == CST_TV_STRING;
    if (is_s) items = str_chars(R, obj);
    else if (obj->kind == CST_TV_LIST) items = obj;
    else rfail(R, CST_ERR_INVALID_ARG, sl, "cannot slice a %s", kind_name(obj));
    int64_t len = (int64_t)items->u.l.n, start = 0, stop = 0, stp = 1;
    bool hs = slice_int(R, sv, &start, sl), he = slice_int(R, ev, &stop, sl);
    slice_int(R, tv, &stp, sl);
    cst_tvalue *out = v_list(R, 0);
    if (stp > 0) {
        if (!hs) start = 0;
        else start = start < 0 ? CST_MAX(len + start, 0) : CST_MIN(start, len);
        if (!he) stop = len;
        else stop = stop < 0 ? CST_MAX(len + stop, 0) : CST_MIN(stop, len);
        for (int64_t i = start; i < stop; i += stp) l_push(R, out, items->u.l.v[i]);
    } else if (stp < 0) {
        if (!hs) start = len - 1;
        else start = start < 0 ? CST_MAX(len + start, -1) : CST_MIN(start, len - 1);
        if (!he) stop = -1;
        else stop = stop < -1 ? CST_MAX(len + stop, -1) : CST_MIN(stop, len - 1);
        for (int64_t i = start; i > stop; i += stp) l_push(R, out, items->u.l.v[i]);
    }
    if (!is_s) return out;
    sbuf b = sb_arena(R);
    for (size_t i = 0; i < out->u.l.n; i++) sb_put(&b, out->u.l.v[i]->u.s.p, out->u.l.v[i]->u.s.n);
    return sb_value(R, &b);
}

/* ---- member access ---- */

static cst_tvalue *attr_path(rctx *R, cst_tvalue *item, const char *path, size_t n) {
    cst_tvalue *v = item;
    const char *p = path, *e = path + n;
    while (true) {
        const char *dot = memchr(p, '.', (size_t)(e - p));
        size_t pn = dot ? (size_t)(dot - p) : (size_t)(e - p);
        if (v->kind == CST_TV_DICT || v->kind == TV_NS) {
            v = d_get(v, p, pn);
            if (!v) return R->undef;
        } else if (v->kind == CST_TV_LIST) {
            char tmp[24];
            if (!pn || pn >= sizeof tmp) return R->undef;
            memcpy(tmp, p, pn);
            tmp[pn] = 0;
            char *end;
            long long i = strtoll(tmp, &end, 10);
            if (*end || i < 0 || (size_t)i >= v->u.l.n) return R->undef;
            v = v->u.l.v[i];
        } else {
            return R->undef;
        }
        if (!dot) return v;
        p = dot + 1;
    }
}

static cst_tvalue *get_member(rctx *R, cst_tvalue *obj, cst_tvalue *prop, const tnode *at) {
    if (obj->kind == CST_TV_DICT || obj->kind == TV_NS) {
        if (prop->kind != CST_TV_STRING) return R->undef;
        cst_tvalue *v = d_get(obj, prop->u.s.p, prop->u.s.n);
        if (v) return v;
        if (obj->kind == CST_TV_DICT) {
            int id = dict_method_id(prop->u.s.p, prop->u.s.n);
            if (id >= 0) return v_fn(R, id, obj, NULL, NULL);
        }
        return R->undef;
    }
    if (obj->kind == CST_TV_LIST || obj->kind == CST_TV_STRING) {
        bool s = obj->kind == CST_TV_STRING;
        if (prop->kind == CST_TV_INT) {
            if (s) {
                cst_tvalue *c = str_index(R, obj, prop->u.i);
                return c ? c : R->undef;
            }
            int64_t i = prop->u.i, n = (int64_t)obj->u.l.n;
            if (i < 0) i += n;
            return (i >= 0 && i < n) ? obj->u.l.v[i] : R->undef;
        }
        if (prop->kind == CST_TV_STRING) {
            if (prop->u.s.n == 6 && !memcmp(prop->u.s.p, "length", 6))
                return v_int(R, (int64_t)(s ? tpl_utf8_len(obj->u.s.p, obj->u.s.n) : obj->u.l.n));
            int id = s ? str_method_id(prop->u.s.p, prop->u.s.n) : list_method_id(prop->u.s.p, prop->u.s.n);
            if (id >= 0) return v_fn(R, id, obj, NULL, NULL);
            return R->undef;
        }
        rfail(R, CST_ERR_INVALID_ARG, at, "cannot index a %s with a %s", kind_name(obj), kind_name(prop));
    }
    return R->undef;
}

/* ---- tests ---- */

static bool run_test(rctx *R, int id, cst_tvalue *v, const args_t *a, const tnode *at) {
    cst_tvalue *x = a ? arg(a, 0, NULL) : NULL;
    if (!x) x = R->undef;
    switch (id) {
    case T_DEFINED: return v->kind != CST_TV_UNDEFINED;
    case T_UNDEFINED: return v->kind == CST_TV_UNDEFINED;
    case T_NONE: return v->kind == CST_TV_NONE;
    case T_STRING: return v->kind == CST_TV_STRING;
    case T_NUMBER: return is_num(v);
    case T_INTEGER: return v->kind == CST_TV_INT;
    case T_FLOAT: return v->kind == CST_TV_FLOAT;
    case T_MAPPING: return v->kind == CST_TV_DICT;
    case T_ITERABLE: return v->kind == CST_TV_LIST || v->kind == CST_TV_STRING;
    case T_SEQUENCE: return v->kind == CST_TV_LIST || v->kind == CST_TV_STRING || v->kind == CST_TV_DICT;
    case T_BOOLEAN: return v->kind == CST_TV_BOOL;
    case T_TRUE: return v->kind == CST_TV_BOOL && v->u.b;
    case T_FALSE: return v->kind == CST_TV_BOOL && !v->u.b;
    case T_CALLABLE: return v->kind == TV_FUNC;
    case T_ODD:
    case T_EVEN:
        if (v->kind != CST_TV_INT) rfail(R, CST_ERR_INVALID_ARG, at, "odd/even test on a %s", kind_name(v));
        return (v->u.i % 2 != 0) == (id == T_ODD);
    case T_DIVISIBLEBY:
        if (v->kind != CST_TV_INT || x->kind != CST_TV_INT || x->u.i == 0)
            rfail(R, CST_ERR_INVALID_ARG, at, "divisibleby needs non-zero integers");
        return v->u.i % x->u.i == 0;
    case T_EQ: return strict_eq(v, x);
    case T_NE: return !strict_eq(v, x);
    case T_SAMEAS: return strict_eq(v, x);
    case T_LT: return compare(R, v, x, true, at) < 0;
    case T_LE: return compare(R, v, x, true, at) <= 0;
    case T_GT: return compare(R, v, x, true, at) > 0;
    case T_GE: return compare(R, v, x, true, at) >= 0;
    case T_IN:
        if (x->kind == CST_TV_LIST) {
            for (size_t i = 0; i < x->u.l.n; i++)
                if (strict_eq(v, x->u.l.v[i])) return true;
            return false;
        }
        if (x->kind == CST_TV_STRING && v->kind == CST_TV_STRING)
            return find_bytes(x->u.s.p, x->u.s.n, v->u.s.p, v->u.s.n) != NULL;
        if ((x->kind == CST_TV_DICT || x->kind == TV_NS) && v->kind == CST_TV_STRING)
            return d_get(x, v->u.s.p, v->u.s.n) != NULL;
        return false;
    case T_LOWER:
    case T_UPPER: {
        if (v->kind != CST_TV_STRING) return false;
        cst_tvalue *c = str_case(R, v, id == T_UPPER);
        return c->u.s.n == v->u.s.n && !memcmp(c->u.s.p, v->u.s.p, c->u.s.n);
    }
    default: rfail(R, CST_ERR_INTERNAL, at, "unknown test");
    }
}

/* ---- sorting (stable merge sort that may fail via longjmp) ---- */

typedef struct {
    rctx *R;
    const tnode *at;
    bool case_sensitive, reverse;
    const char *attr;
    size_t attrn;
    int by_value; /* dictsort: 0 key, 1 value */
    bool pairs;
} sort_ctx;

static int sort_cmp(sort_ctx *c, cst_tvalue *a, cst_tvalue *b) {
    if (c->pairs) {
        a = a->u.l.v[c->by_value];
        b = b->u.l.v[c->by_value];
    } else if (c->attr) {
        a = attr_path(c->R, a, c->attr, c->attrn);
        b = attr_path(c->R, b, c->attr, c->attrn);
    }
    int r = compare(c->R, a, b, c->case_sensitive, c->at);
    return c->reverse ? -r : r;
}

static void msort(sort_ctx *c, cst_tvalue **v, cst_tvalue **tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    msort(c, v, tmp, h);
    msort(c, v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = sort_cmp(c, v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

static cst_tvalue *sorted(rctx *R, cst_tvalue *list, sort_ctx *c) {
    size_t n = list->u.l.n;
    cst_tvalue *out = v_list(R, n ? n : 1);
    if (n) memcpy(out->u.l.v, list->u.l.v, n * sizeof *out->u.l.v);
    out->u.l.n = n;
    cst_tvalue **tmp = ralloc(R, (n ? n : 1) * sizeof *tmp);
    msort(c, out->u.l.v, tmp, n);
    return out;
}

static cst_tvalue *dict_items(rctx *R, const cst_tvalue *d) {
    cst_tvalue *out = v_list(R, d->u.d.n);
    for (size_t i = 0; i < d->u.d.n; i++) {
        cst_tvalue *pair = v_list(R, 2);
        l_push(R, pair, v_str(R, d->u.d.e[i].k, d->u.d.e[i].kn));
        l_push(R, pair, d->u.d.e[i].v);
        l_push(R, out, pair);
    }
    return out;
}

/* ---- filters ---- */

static cst_tvalue *apply_filter(rctx *R, const tnode *f, cst_tvalue *v, tenv *env);

static cst_tvalue *filter_by_id(rctx *R, int id, cst_tvalue *v, const tnode *at) {
    tnode fake = *at;
    fake.fid = id;
    fake.flag = 0;
    fake.n = 0;
    return apply_filter(R, &fake, v, NULL);
}

static cst_tvalue *to_list(rctx *R, cst_tvalue *v, const tnode *at) {
    switch (v->kind) {
    case CST_TV_LIST: return v;
    case CST_TV_STRING: return str_chars(R, v);
    case CST_TV_DICT:
    case TV_NS: {
        cst_tvalue *l = v_list(R, v->u.d.n);
        for (size_t i = 0; i < v->u.d.n; i++) l_push(R, l, v_str(R, v->u.d.e[i].k, v->u.d.e[i].kn));
        return l;
    }
    case CST_TV_UNDEFINED: return v_list(R, 0);
    default: rfail(R, CST_ERR_INVALID_ARG, at, "a %s is not iterable", kind_name(v));
    }
}

static double parse_js_float(const char *s, size_t n, bool int_only, bool *ok) {
    tpl_trim(&s, &n, true, false);
    char tmp[80];
    size_t k = 0, i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) tmp[k++] = s[i++];
    size_t d0 = k;
    while (i < n && k < 70 && s[i] >= '0' && s[i] <= '9') tmp[k++] = s[i++];
    bool digits = k > d0;
    if (!int_only) {
        if (i < n && s[i] == '.' && k < 70) {
            tmp[k++] = s[i++];
            while (i < n && k < 70 && s[i] >= '0' && s[i] <= '9') {
                tmp[k++] = s[i++];
                digits = true;
            }
        }
        if (digits && i < n && (s[i] == 'e' || s[i] == 'E')) {
            size_t save = k, si = i;
            tmp[k++] = s[i++];
            if (i < n && (s[i] == '+' || s[i] == '-')) tmp[k++] = s[i++];
            size_t e0 = k;
            while (i < n && k < 78 && s[i] >= '0' && s[i] <= '9') tmp[k++] = s[i++];
            if (k == e0) {
                k = save;
                i = si;
            }
        }
        if (!digits && n - i >= 8 && !memcmp(s + i, "Infinity", 8)) {
            *ok = true;
            return (k && tmp[0] == '-') ? -INFINITY : INFINITY;
        }
    }
    tmp[k] = 0;
    *ok = digits;
    return digits ? strtod(tmp, NULL) : 0;
}

static cst_tvalue *apply_filter(rctx *R, const tnode *f, cst_tvalue *v, tenv *env) {
    args_t a;
    memset(&a, 0, sizeof a);
    if (f->n && env) eval_args(R, f->list, f->n, env, &a);
    const bool call = f->flag;
    switch (f->fid) {
    case F_SAFE: return v;
    case F_TOJSON: {
        json_opts o = json_default;
        cst_tvalue *ind = arg(&a, -1, "indent");
        if (ind && ind->kind == CST_TV_INT) o.indent = (int)CST_MIN(CST_MAX(ind->u.i, 0), 64);
        else if (ind && ind->kind != CST_TV_NONE) rfail(R, CST_ERR_INVALID_ARG, f, "tojson indent must be an integer");
        if (o.indent > 0) {
            o.isep = ",";
            o.isn = 1;
        }
        o.ascii = arg_bool(R, &a, -1, "ensure_ascii", false, f);
        o.sort_keys = arg_bool(R, &a, -1, "sort_keys", false, f);
        cst_tvalue *seps = arg(&a, -1, "separators");
        if (seps && seps->kind != CST_TV_NONE) {
            if (seps->kind != CST_TV_LIST || seps->u.l.n != 2 || seps->u.l.v[0]->kind != CST_TV_STRING ||
                seps->u.l.v[1]->kind != CST_TV_STRING)
                rfail(R, CST_ERR_INVALID_ARG, f, "separators must be a pair of strings");
            o.isep = seps->u.l.v[0]->u.s.p;
            o.isn = seps->u.l.v[0]->u.s.n;
            o.ksep = seps->u.l.v[1]->u.s.p;
            o.ksn = seps->u.l.v[1]->u.s.n;
        }
        sbuf b = sb_arena(R);
        to_json(R, &b, v, &o, 0);
        return sb_value(R, &b);
    }
    case F_LIST: return to_list(R, v, f);
    case F_FIRST:
    case F_LAST: {
        cst_tvalue *l = to_list(R, v, f);
        if (!l->u.l.n) return R->undef;
        return l->u.l.v[f->fid == F_FIRST ? 0 : l->u.l.n - 1];
    }
    case F_LENGTH:
        switch (v->kind) {
        case CST_TV_LIST: return v_int(R, (int64_t)v->u.l.n);
        case CST_TV_STRING: return v_int(R, (int64_t)tpl_utf8_len(v->u.s.p, v->u.s.n));
        case CST_TV_DICT:
        case TV_NS: return v_int(R, (int64_t)v->u.d.n);
        case CST_TV_UNDEFINED: return v_int(R, 0);
        default: rfail(R, CST_ERR_INVALID_ARG, f, "length of a %s", kind_name(v));
        }
    case F_REVERSE: {
        cst_tvalue *l = to_list(R, v, f);
        cst_tvalue *out = v_list(R, l->u.l.n);
        for (size_t i = l->u.l.n; i-- > 0;) l_push(R, out, l->u.l.v[i]);
        if (v->kind != CST_TV_STRING) return out;
        sbuf b = sb_arena(R);
        for (size_t i = 0; i < out->u.l.n; i++) sb_put(&b, out->u.l.v[i]->u.s.p, out->u.l.v[i]->u.s.n);
        return sb_value(R, &b);
    }
    case F_SORT: {
        if (v->kind != CST_TV_LIST) v = to_list(R, v, f);
        sort_ctx c = {.R = R, .at = f};
        c.reverse = arg_bool(R, &a, 0, "reverse", false, f);
        c.case_sensitive = arg_bool(R, &a, 1, "case_sensitive", false, f);
        cst_tvalue *at = arg(&a, 2, "attribute");
        if (at && at->kind == CST_TV_STRING) {
            c.attr = at->u.s.p;
            c.attrn = at->u.s.n;
        } else if (at && at->kind == CST_TV_INT) {
            sbuf b = sb_arena(R);
            to_str(R, &b, at);
            cst_tvalue *s = sb_value(R, &b);
            c.attr = s->u.s.p;
            c.attrn = s->u.s.n;
        }
        return sorted(R, v, &c);
    }
    case F_JOIN: {
        cst_tvalue *l = v->kind == CST_TV_STRING ? str_chars(R, v) : to_list(R, v, f);
        cst_tvalue *sep = arg(&a, 0, "separator");
        if (!sep) sep = arg(&a, 0, "d");
        size_t sn = 0;
        const char *sp = "";
        if (sep && sep->kind != CST_TV_UNDEFINED) sp = need_str(R, sep, "join separator", f, &sn);
        cst_tvalue *attr = arg(&a, 1, "attribute");
        sbuf b = sb_arena(R);
        for (size_t i = 0; i < l->u.l.n; i++) {
            if (i) sb_put(&b, sp, sn);
            cst_tvalue *x = l->u.l.v[i];
            if (attr && attr->kind == CST_TV_STRING) x = attr_path(R, x, attr->u.s.p, attr->u.s.n);
            js_str(R, &b, x);
            sb_check(R, &b);
        }
        return sb_value(R, &b);
    }
    case F_STRING:
        if (v->kind == CST_TV_NONE) return v_str(R, "None", 4);
        return stringify(R, v);
    case F_UNIQUE: {
        cst_tvalue *l = to_list(R, v, f);
        cst_tvalue *out = v_list(R, 0);
        for (size_t i = 0; i < l->u.l.n; i++) {
            bool seen = false;
            for (size_t k = 0; k < out->u.l.n && !seen; k++) seen = strict_eq(out->u.l.v[k], l->u.l.v[i]);
            if (!seen) l_push(R, out, l->u.l.v[i]);
            step(R, f);
        }
        return out;
    }
    case F_UPPER:
    case F_LOWER: return str_case(R, stringify(R, v), f->fid == F_UPPER);
    case F_TITLE: return str_title(R, stringify(R, v));
    case F_CAPITALIZE: return str_capitalize(R, stringify(R, v));
    case F_TRIM: return str_trim(R, stringify(R, v), true, true);
    case F_INDENT: {
        cst_tvalue *s = stringify(R, v);
        cst_tvalue *w = arg(&a, 0, "width");
        const char *ind = "    ";
        size_t indn = 4;
        char spaces[257];
        if (w && w->kind == CST_TV_INT) {
            indn = (size_t)CST_MIN(CST_MAX(w->u.i, 0), 256);
            memset(spaces, ' ', indn);
            ind = spaces;
        } else if (w && w->kind == CST_TV_STRING) {
            ind = w->u.s.p;
            indn = w->u.s.n;
        } else if (w && w->kind != CST_TV_UNDEFINED) {
            rfail(R, CST_ERR_INVALID_ARG, f, "indent width must be a number");
        }
        bool first = arg_bool(R, &a, 1, "first", false, f), blank = arg_bool(R, &a, 2, "blank", false, f);
        sbuf b = sb_arena(R);
        const char *p = s->u.s.p, *e = p + s->u.s.n;
        for (int line = 0;; line++) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            const char *le = nl ? nl : e;
            if (!((!first && line == 0) || (!blank && le == p))) sb_put(&b, ind, indn);
            sb_put(&b, p, (size_t)(le - p));
            if (!nl) break;
            sb_putc(&b, '\n');
            p = nl + 1;
            sb_check(R, &b);
        }
        return sb_value(R, &b);
    }
    case F_INT:
    case F_FLOAT: {
        bool is_int = f->fid == F_INT;
        cst_tvalue *dflt = call ? arg(&a, 0, "default") : NULL;
        if (!dflt) dflt = is_int ? v_int(R, 0) : v_float(R, 0);
        switch (v->kind) {
        case CST_TV_STRING: {
            bool ok;
            double d = parse_js_float(v->u.s.p, v->u.s.n, is_int, &ok);
            if (!ok) return dflt;
            if (is_int) return v_int(R, d > 9.2e18 ? INT64_MAX : d < -9.2e18 ? INT64_MIN : (int64_t)d);
            return v_float(R, d);
        }
        case CST_TV_INT:
        case CST_TV_FLOAT:
            if (call) return v;
            if (!is_int) return v_float(R, num(v));
            if (v->kind == CST_TV_INT) return v;
            return v_int(R, isfinite(v->u.f) ? (int64_t)floor(v->u.f) : 0);
        case CST_TV_BOOL: return is_int ? v_int(R, v->u.b) : v_float(R, v->u.b);
        case CST_TV_NONE:
        case CST_TV_UNDEFINED: return dflt;
        default: rfail(R, CST_ERR_INVALID_ARG, f, "cannot convert a %s to a number", kind_name(v));
        }
    }
    case F_ABS:
        if (v->kind == CST_TV_INT) return v_int(R, v->u.i < 0 ? -v->u.i : v->u.i);
        if (v->kind == CST_TV_FLOAT) return v_float(R, fabs(v->u.f));
        rfail(R, CST_ERR_INVALID_ARG, f, "abs of a %s", kind_name(v));
    case F_ROUND: {
        if (!is_num(v)) rfail(R, CST_ERR_INVALID_ARG, f, "round of a %s", kind_name(v));
        cst_tvalue *pr = arg(&a, 0, "precision");
        int64_t prec = pr && pr->kind == CST_TV_INT ? pr->u.i : 0;
        cst_tvalue *m = arg(&a, 1, "method");
        double d = num(v), s = pow(10, (double)CST_MIN(CST_MAX(prec, -300), 300)), r;
        const char *meth = m && m->kind == CST_TV_STRING ? m->u.s.p : "common";
        if (!strncmp(meth, "ceil", 4)) r = ceil(d * s) / s;
        else if (!strncmp(meth, "floor", 5)) r = floor(d * s) / s;
        else r = round(d * s) / s;
        return v_float(R, r);
    }
    case F_ITEMS:
        if (v->kind == CST_TV_UNDEFINED) return v_list(R, 0);
        if (v->kind != CST_TV_DICT && v->kind != TV_NS) rfail(R, CST_ERR_INVALID_ARG, f, "items of a %s", kind_name(v));
        return dict_items(R, v);
    case F_KEYS:
    case F_VALUES: {
        if (v->kind != CST_TV_DICT && v->kind != TV_NS) rfail(R, CST_ERR_INVALID_ARG, f, "keys/values of a %s", kind_name(v));
        cst_tvalue *out = v_list(R, v->u.d.n);
        for (size_t i = 0; i < v->u.d.n; i++)
            l_push(R, out, f->fid == F_KEYS ? v_str(R, v->u.d.e[i].k, v->u.d.e[i].kn) : v->u.d.e[i].v);
        return out;
    }
    case F_SELECTATTR:
    case F_REJECTATTR:
    case F_SELECT:
    case F_REJECT: {
        bool by_attr = f->fid == F_SELECTATTR || f->fid == F_REJECTATTR;
        bool sel = f->fid == F_SELECTATTR || f->fid == F_SELECT;
        cst_tvalue *l = to_list(R, v, f);
        int ai = 0;
        size_t an = 0;
        const char *attr = NULL;
        if (by_attr) attr = need_str(R, arg(&a, ai++, NULL), "attribute name", f, &an);
        cst_tvalue *tn = arg(&a, ai++, NULL);
        int tid = -1;
        if (tn) {
            size_t tnn;
            const char *ts = need_str(R, tn, "test name", f, &tnn);
            tid = tpl_test_id(ts, tnn);
            if (tid < 0) rfail(R, CST_ERR_INVALID_ARG, f, "unknown test '%.*s'", (int)CST_MIN(tnn, 40), ts);
        }
        args_t ta;
        memset(&ta, 0, sizeof ta);
        if (ai < a.npos) {
            ta.pos = a.pos + ai;
            ta.npos = a.npos - ai;
        }
        cst_tvalue *out = v_list(R, 0);
        for (size_t i = 0; i < l->u.l.n; i++) {
            cst_tvalue *x = l->u.l.v[i];
            bool r;
            if (by_attr) {
                if (x->kind != CST_TV_DICT && x->kind != TV_NS)
                    rfail(R, CST_ERR_INVALID_ARG, f, "selectattr/rejectattr need a list of objects");
                x = attr_path(R, x, attr, an);
                if (x->kind == CST_TV_UNDEFINED) r = false;
                else r = tid < 0 ? truthy(x) : run_test(R, tid, x, &ta, f);
            } else {
                r = tid < 0 ? truthy(x) : run_test(R, tid, x, &ta, f);
            }
            if (r == sel) l_push(R, out, l->u.l.v[i]);
            step(R, f);
        }
        return out;
    }
    case F_MAP: {
        cst_tvalue *l = to_list(R, v, f);
        cst_tvalue *attr = arg(&a, -1, "attribute");
        cst_tvalue *out = v_list(R, l->u.l.n);
        if (attr) {
            size_t an;
            const char *as = need_str(R, attr, "map attribute", f, &an);
            cst_tvalue *dflt = arg(&a, -1, "default");
            for (size_t i = 0; i < l->u.l.n; i++) {
                cst_tvalue *x = attr_path(R, l->u.l.v[i], as, an);
                if (x->kind == CST_TV_UNDEFINED && dflt) x = dflt;
                l_push(R, out, x);
            }
            return out;
        }
        cst_tvalue *fname = arg(&a, 0, NULL);
        if (!fname) rfail(R, CST_ERR_INVALID_ARG, f, "map needs attribute= or a filter name");
        size_t fnn;
        const char *fs = need_str(R, fname, "filter name", f, &fnn);
        int fid = tpl_filter_id(fs, fnn);
        if (fid < 0) rfail(R, CST_ERR_INVALID_ARG, f, "unknown filter '%.*s'", (int)CST_MIN(fnn, 40), fs);
        for (size_t i = 0; i < l->u.l.n; i++) {
            l_push(R, out, filter_by_id(R, fid, l->u.l.v[i], f));
            step(R, f);
        }
        return out;
    }
    case F_DEFAULT: {
        cst_tvalue *d = arg(&a, 0, "default_value");
        if (!d) d = v_str(R, "", 0);
        bool boolean = arg_bool(R, &a, 1, "boolean", false, f);
        if (v->kind == CST_TV_UNDEFINED || (boolean && !truthy(v))) return d;
        return v;
    }
    case F_BOOL: return v_bool(R, truthy(v));
    case F_REPLACE: {
        cst_tvalue *s = stringify(R, v);
        return str_replace(R, s, arg(&a, 0, "old"), arg(&a, 1, "new"), arg(&a, 2, "count"), f);
    }
    case F_SPLIT: {
        cst_tvalue *s = stringify(R, v);
        cst_tvalue *ms = arg(&a, 1, "maxsplit");
        return str_split(R, s, arg(&a, 0, "sep"), ms && ms->kind == CST_TV_INT ? ms->u.i : -1, false, f);
    }
    case F_DICTSORT: {
        if (v->kind != CST_TV_DICT && v->kind != TV_NS) rfail(R, CST_ERR_INVALID_ARG, f, "dictsort of a %s", kind_name(v));
        sort_ctx c = {.R = R, .at = f, .pairs = true};
        c.case_sensitive = arg_bool(R, &a, 0, "case_sensitive", false, f);
        cst_tvalue *by = arg(&a, 1, "by");
        c.by_value = by && by->kind == CST_TV_STRING && by->u.s.n == 5 && !memcmp(by->u.s.p, "value", 5);
        c.reverse = arg_bool(R, &a, 2, "reverse", false, f);
        return sorted(R, dict_items(R, v), &c);
    }
    case F_MIN:
    case F_MAX: {
        cst_tvalue *l = to_list(R, v, f);
        if (!l->u.l.n) return R->undef;
        sort_ctx c = {.R = R, .at = f};
        c.case_sensitive = arg_bool(R, &a, 0, "case_sensitive", false, f);
        cst_tvalue *at = arg(&a, 1, "attribute");
        if (at && at->kind == CST_TV_STRING) {
            c.attr = at->u.s.p;
            c.attrn = at->u.s.n;
        }
        cst_tvalue *best = l->u.l.v[0];
        for (size_t i = 1; i < l->u.l.n; i++) {
            int r = sort_cmp(&c, l->u.l.v[i], best);
            if (f->fid == F_MIN ? r < 0 : r > 0) best = l->u.l.v[i];
        }
        return best;
    }
    case F_SUM: {
        cst_tvalue *l = to_list(R, v, f);
        cst_tvalue *at = arg(&a, 0, "attribute");
        cst_tvalue *start = arg(&a, 1, "start");
        bool isf = start && start->kind == CST_TV_FLOAT;
        int64_t si = start && start->kind == CST_TV_INT ? start->u.i : 0;
        double sf = start ? num(start) : 0;
        for (size_t i = 0; i < l->u.l.n; i++) {
            cst_tvalue *x = l->u.l.v[i];
            if (at && at->kind == CST_TV_STRING) x = attr_path(R, x, at->u.s.p, at->u.s.n);
            if (!is_num(x)) rfail(R, CST_ERR_INVALID_ARG, f, "sum of a %s", kind_name(x));
            if (x->kind == CST_TV_FLOAT) isf = true;
            si += x->kind == CST_TV_INT ? x->u.i : 0;
            sf += num(x);
        }
        return isf ? v_float(R, sf) : v_int(R, si);
    }
    case F_ESCAPE: {
        cst_tvalue *s = stringify(R, v);
        sbuf b = sb_arena(R);
        for (size_t i = 0; i < s->u.s.n; i++) {
            char c = s->u.s.p[i];
            switch (c) {
            case '&': sb_puts(&b, "&amp;"); break;
            case '<': sb_puts(&b, "&lt;"); break;
            case '>': sb_puts(&b, "&gt;"); break;
            case '"': sb_puts(&b, "&#34;"); break;
            case '\'': sb_puts(&b, "&#39;"); break;
            default: sb_putc(&b, c);
            }
        }
        return sb_value(R, &b);
    }
    default: rfail(R, CST_ERR_INTERNAL, f, "filter not implemented");
    }
}

/* ---- calls ---- */

static void bind_params(rctx *R, const tnode *const *params, int np, const args_t *a, tenv *scope) {
    bool *used = a->nkw ? ralloc(R, (size_t)a->nkw) : NULL;
    const tnode **pending = np ? ralloc(R, (size_t)np * sizeof *pending) : NULL;
    int npend = 0;
    for (int i = 0; i < np; i++) {
        const tnode *p = params[i];
        cst_tvalue *v = i < a->npos ? a->pos[i] : NULL;
        if (!v)
            for (int k = 0; k < a->nkw; k++)
                if (!used[k] && a->kwn[k]->sn == p->sn && !memcmp(a->kwn[k]->s, p->s, p->sn)) {
                    v = a->kwv[k];
                    used[k] = true;
                }
        if (!v && p->kind == N_KWARG) pending[npend++] = p;
        env_set(R, scope, p->s, p->sn, v ? v : R->undef);
    }
    cst_tvalue *varargs = v_list(R, 0);
    for (int i = np; i < a->npos; i++) l_push(R, varargs, a->pos[i]);
    env_set(R, scope, "varargs", 7, varargs);
    cst_tvalue *kwargs = v_dict(R, CST_TV_DICT);
    for (int k = 0; k < a->nkw; k++)
        if (!used[k]) d_set(R, kwargs, a->kwn[k]->s, a->kwn[k]->sn, a->kwv[k]);
    env_set(R, scope, "kwargs", 6, kwargs);
    for (int i = 0; i < npend; i++) env_set(R, scope, pending[i]->s, pending[i]->sn, eval(R, pending[i]->a, scope));
}

static cst_tvalue *call_fn(rctx *R, cst_tvalue *fn, const args_t *a, tenv *env, cst_tvalue *caller,
                           const tnode *at) {
    cst_tvalue *self = fn->u.fn.self;
    cst_tvalue *a0 = arg(a, 0, NULL);
    switch (fn->u.fn.id) {
    case FN_RAISE: {
        sbuf b = sb_arena(R);
        if (a0) to_str(R, &b, a0);
        sb_check(R, &b);
        rfail(R, CST_ERR_INVALID_ARG, NULL, "%s", b.p ? b.p : "raise_exception()");
    }
    case FN_RANGE: {
        int64_t v[3] = {0, 0, 1};
        if (a->npos < 1 || a->npos > 3) rfail(R, CST_ERR_INVALID_ARG, at, "range() takes 1 to 3 arguments");
        for (int i = 0; i < a->npos; i++) {
            if (a->pos[i]->kind != CST_TV_INT) rfail(R, CST_ERR_INVALID_ARG, at, "range() arguments must be integers");
        }
        if (a->npos == 1) v[1] = a->pos[0]->u.i;
        else {
            v[0] = a->pos[0]->u.i;
            v[1] = a->pos[1]->u.i;
            if (a->npos == 3) v[2] = a->pos[2]->u.i;
        }
        if (v[2] == 0) rfail(R, CST_ERR_INVALID_ARG, at, "range() step must not be zero");
        double cnt = ((double)v[1] - (double)v[0]) / (double)v[2];
        if (cnt > 1e7) rfail(R, CST_ERR_INVALID_ARG, at, "range() too large");
        cst_tvalue *l = v_list(R, cnt > 0 ? (size_t)cnt + 1 : 0);
        for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) l_push(R, l, v_int(R, i));
        return l;
    }
    case FN_NAMESPACE:
    case FN_DICT: {
        cst_tvalue *ns = v_dict(R, fn->u.fn.id == FN_NAMESPACE ? TV_NS : CST_TV_DICT);
        if (a0) {
            if (a0->kind == CST_TV_DICT || a0->kind == TV_NS) {
                for (size_t i = 0; i < a0->u.d.n; i++) d_set(R, ns, a0->u.d.e[i].k, a0->u.d.e[i].kn, a0->u.d.e[i].v);
            } else if (a0->kind == CST_TV_LIST) {
                for (size_t i = 0; i < a0->u.l.n; i++) {
                    cst_tvalue *p = a0->u.l.v[i];
                    if (p->kind != CST_TV_LIST || p->u.l.n != 2 || p->u.l.v[0]->kind != CST_TV_STRING)
                        rfail(R, CST_ERR_INVALID_ARG, at, "namespace()/dict() expects [key, value] pairs");
                    d_set(R, ns, p->u.l.v[0]->u.s.p, p->u.l.v[0]->u.s.n, p->u.l.v[1]);
                }
            } else {
                rfail(R, CST_ERR_INVALID_ARG, at, "namespace()/dict() argument must be a mapping");
            }
        }
        for (int k = 0; k < a->nkw; k++) d_set(R, ns, a->kwn[k]->s, a->kwn[k]->sn, a->kwv[k]);
        return ns;
    }
    case FN_STRFTIME: {
        size_t n;
        const char *s = need_str(R, a0, "strftime_now() format", at, &n);
        char fmt[256], buf[512];
        if (n >= sizeof fmt) rfail(R, CST_ERR_INVALID_ARG, at, "strftime_now() format too long");
        memcpy(fmt, s, n);
        fmt[n] = 0;
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        size_t w = strftime(buf, sizeof buf, fmt, &tmv);
        return v_strdup(R, buf, w);
    }
    case FN_MACRO:
    case FN_CALLER: {
        const tnode *m = fn->u.fn.node;
        bool is_macro = fn->u.fn.id == FN_MACRO;
        tenv *parent = is_macro ? env : fn->u.fn.env;
        if (caller) {
            parent = env_new(R, parent);
            env_set(R, parent, "caller", 6, caller);
        }
        tenv *scope = env_new(R, parent);
        bind_params(R, m->list, m->n, a, scope);
        int ctl = R->ctl;
        cst_tvalue *r = capture(R, m->list2, m->n2, scope);
        R->ctl = ctl;
        return r;
    }
    default: break;
    }
    /* methods */
    switch (fn->u.fn.id) {
    case SM_UPPER:
    case SM_LOWER: return str_case(R, self, fn->u.fn.id == SM_UPPER);
    case SM_STRIP: return str_trim(R, self, true, true);
    case SM_LSTRIP: return str_trim(R, self, true, false);
    case SM_RSTRIP: return str_trim(R, self, false, true);
    case SM_TITLE: return str_title(R, self);
    case SM_CAPITALIZE: return str_capitalize(R, self);
    case SM_STARTSWITH:
    case SM_ENDSWITH: {
        if (!a0) rfail(R, CST_ERR_INVALID_ARG, at, "startswith/endswith need an argument");
        bool start = fn->u.fn.id == SM_STARTSWITH;
        size_t cnt = a0->kind == CST_TV_LIST ? a0->u.l.n : 1;
        for (size_t i = 0; i < cnt; i++) {
            cst_tvalue *p = a0->kind == CST_TV_LIST ? a0->u.l.v[i] : a0;
            size_t pn;
            const char *ps = need_str(R, p, "startswith/endswith argument", at, &pn);
            if (pn <= self->u.s.n && !memcmp(start ? self->u.s.p : self->u.s.p + self->u.s.n - pn, ps, pn))
                return R->vtrue;
        }
        return R->vfalse;
    }
    case SM_SPLIT:
    case SM_RSPLIT: {
        cst_tvalue *ms = arg(a, 1, "maxsplit");
        if (ms && ms->kind != CST_TV_INT) rfail(R, CST_ERR_INVALID_ARG, at, "maxsplit must be an integer");
        return str_split(R, self, arg(a, 0, "sep"), ms ? ms->u.i : -1, fn->u.fn.id == SM_RSPLIT, at);
    }
    case SM_REPLACE: return str_replace(R, self, a0, arg(a, 1, NULL), arg(a, 2, "count"), at);
    case SM_FORMAT: return str_format(R, self, a, at);
    case SM_JOIN: {
        if (!a0) rfail(R, CST_ERR_INVALID_ARG, at, "join() needs an iterable");
        cst_tvalue *l = to_list(R, a0, at);
        sbuf b = sb_arena(R);
        for (size_t i = 0; i < l->u.l.n; i++) {
            if (i) sb_put(&b, self->u.s.p, self->u.s.n);
            size_t n;
            const char *s = need_str(R, l->u.l.v[i], "join() item", at, &n);
            sb_put(&b, s, n);
            sb_check(R, &b);
        }
        return sb_value(R, &b);
    }
    case SM_FIND:
    case SM_COUNT: {
        size_t n;
        const char *s = need_str(R, a0, "find()/count() argument", at, &n);
        if (fn->u.fn.id == SM_FIND) {
            const char *f = find_bytes(self->u.s.p, self->u.s.n, s, n);
            return v_int(R, f ? (int64_t)tpl_utf8_len(self->u.s.p, (size_t)(f - self->u.s.p)) : -1);
        }
        if (!n) return v_int(R, (int64_t)tpl_utf8_len(self->u.s.p, self->u.s.n) + 1);
        int64_t c = 0;
        const char *p = self->u.s.p;
        size_t left = self->u.s.n;
        const char *f;
        while ((f = find_bytes(p, left, s, n))) {
            c++;
            left -= (size_t)(f - p) + n;
            p = f + n;
        }
        return v_int(R, c);
    }
    case DM_GET: {
        if (!a0 || a0->kind != CST_TV_STRING) return arg(a, 1, "default") ? arg(a, 1, "default") : R->none;
        cst_tvalue *x = d_get(self, a0->u.s.p, a0->u.s.n);
        if (x) return x;
        cst_tvalue *d = arg(a, 1, "default");
        return d ? d : R->none;
    }
    case DM_ITEMS: return dict_items(R, self);
    case DM_KEYS:
    case DM_VALUES: {
        cst_tvalue *out = v_list(R, self->u.d.n);
        for (size_t i = 0; i < self->u.d.n; i++)
            l_push(R, out, fn->u.fn.id == DM_KEYS ? v_str(R, self->u.d.e[i].k, self->u.d.e[i].kn) : self->u.d.e[i].v);
        return out;
    }
    case LM_APPEND:
        if (!a0) rfail(R, CST_ERR_INVALID_ARG, at, "append() needs an argument");
        l_push(R, self, a0);
        return R->none;
    case LM_POP: {
        int64_t n = (int64_t)self->u.l.n, i = a0 && a0->kind == CST_TV_INT ? a0->u.i : -1;
        if (i < 0) i += n;
        if (i < 0 || i >= n) rfail(R, CST_ERR_INVALID_ARG, at, "pop index out of range");
        cst_tvalue *x = self->u.l.v[i];
        memmove(self->u.l.v + i, self->u.l.v + i + 1, (size_t)(n - i - 1) * sizeof *self->u.l.v);
        self->u.l.n--;
        return x;
    }
    case LM_INDEX:
        for (size_t i = 0; a0 && i < self->u.l.n; i++)
            if (strict_eq(self->u.l.v[i], a0)) return v_int(R, (int64_t)i);
        rfail(R, CST_ERR_INVALID_ARG, at, "index(): value not in list");
    default: rfail(R, CST_ERR_INTERNAL, at, "unknown function");
    }
}

/* ---- operators ---- */

static cst_tvalue *binop(rctx *R, const tnode *x, tenv *env) {
    cst_tvalue *l = eval(R, x->a, env);
    if (x->op == OP_AND) return truthy(l) ? eval(R, x->b, env) : l;
    if (x->op == OP_OR) return truthy(l) ? l : eval(R, x->b, env);
    cst_tvalue *r = eval(R, x->b, env);
    switch (x->op) {
    case OP_EQ: return v_bool(R, loose_eq(l, r));
    case OP_NE: return v_bool(R, !loose_eq(l, r));
    default: break;
    }
    int op = x->op;
    if (l->kind == CST_TV_UNDEFINED || r->kind == CST_TV_UNDEFINED) {
        if (r->kind == CST_TV_UNDEFINED && (op == OP_IN || op == OP_NOTIN)) return v_bool(R, op == OP_NOTIN);
        rfail(R, CST_ERR_INVALID_ARG, x, "operation on an undefined value");
    }
    if (l->kind == CST_TV_NONE || r->kind == CST_TV_NONE) rfail(R, CST_ERR_INVALID_ARG, x, "operation on none");
    if (op == OP_CONCAT) {
        sbuf b = sb_arena(R);
        js_str(R, &b, l);
        js_str(R, &b, r);
        return sb_value(R, &b);
    }
    bool ln = is_num(l) || (op == OP_POW && l->kind == CST_TV_BOOL);
    bool rn = is_num(r) || (op == OP_POW && r->kind == CST_TV_BOOL);
    if (ln && rn) {
        bool isf = l->kind == CST_TV_FLOAT || r->kind == CST_TV_FLOAT;
        double a = num(l), b = num(r);
        int64_t ia = l->kind == CST_TV_INT ? l->u.i : (int64_t)a, ib = r->kind == CST_TV_INT ? r->u.i : (int64_t)b, ir;
        switch (op) {
        case OP_ADD:
            if (!isf && !__builtin_add_overflow(ia, ib, &ir)) return v_int(R, ir);
            return v_float(R, a + b);
        case OP_SUB:
            if (!isf && !__builtin_sub_overflow(ia, ib, &ir)) return v_int(R, ir);
            return v_float(R, a - b);
        case OP_MUL:
            if (!isf && !__builtin_mul_overflow(ia, ib, &ir)) return v_int(R, ir);
            return v_float(R, a * b);
        case OP_DIV: return v_float(R, a / b);
        case OP_FLOORDIV:
            if (b == 0) rfail(R, CST_ERR_INVALID_ARG, x, "division by zero");
            if (!isf && !(ia == INT64_MIN && ib == -1)) {
                int64_t q = ia / ib;
                if ((ia % ib != 0) && ((ia < 0) != (ib < 0))) q--;
                return v_int(R, q);
            }
            return v_float(R, floor(a / b));
        case OP_MOD:
            if (b == 0) rfail(R, CST_ERR_INVALID_ARG, x, "modulo by zero");
            if (!isf) return v_int(R, ib == -1 ? 0 : ia % ib);
            return v_float(R, fmod(a, b));
        case OP_POW: {
            if (a == 0 && b < 0) rfail(R, CST_ERR_INVALID_ARG, x, "0 cannot be raised to a negative power");
            double p = pow(a, b);
            if (!isfinite(p)) rfail(R, CST_ERR_INVALID_ARG, x, "exponentiation result is not finite");
            if (!isf && b >= 0 && fabs(p) < 9.007199254740992e15) {
                int64_t acc = 1;
                for (int64_t k = 0; k < ib; k++) acc *= ia;
                return v_int(R, acc);
            }
            return v_float(R, p);
        }
        case OP_LT: return v_bool(R, a < b);
        case OP_GT: return v_bool(R, a > b);
        case OP_LE: return v_bool(R, a <= b);
        case OP_GE: return v_bool(R, a >= b);
        default: break;
        }
    }
    if (l->kind == CST_TV_LIST && r->kind == CST_TV_LIST && op == OP_ADD) {
        cst_tvalue *out = v_list(R, l->u.l.n + r->u.l.n);
        for (size_t i = 0; i < l->u.l.n; i++) l_push(R, out, l->u.l.v[i]);
        for (size_t i = 0; i < r->u.l.n; i++) l_push(R, out, r->u.l.v[i]);
        return out;
    }
    if (r->kind == CST_TV_LIST && (op == OP_IN || op == OP_NOTIN)) {
        bool m = false;
        for (size_t i = 0; i < r->u.l.n && !m; i++) m = strict_eq(l, r->u.l.v[i]);
        return v_bool(R, m == (op == OP_IN));
    }
    if ((l->kind == CST_TV_STRING || r->kind == CST_TV_STRING) && op == OP_ADD) {
        sbuf b = sb_arena(R);
        js_str(R, &b, l);
        js_str(R, &b, r);
        return sb_value(R, &b);
    }
    if (l->kind == CST_TV_STRING && r->kind == CST_TV_STRING) {
        int c = bytes_cmp(l->u.s.p, l->u.s.n, r->u.s.p, r->u.s.n);
        switch (op) {
        case OP_IN:
        case OP_NOTIN:
            return v_bool(R, (find_bytes(r->u.s.p, r->u.s.n, l->u.s.p, l->u.s.n) != NULL) == (op == OP_IN));
        case OP_LT: return v_bool(R, c < 0);
        case OP_GT: return v_bool(R, c > 0);
        case OP_LE: return v_bool(R, c <= 0);
        case OP_GE: return v_bool(R, c >= 0);
        default: break;
        }
    }
    if (l->kind == CST_TV_STRING && (r->kind == CST_TV_DICT || r->kind == TV_NS) && (op == OP_IN || op == OP_NOTIN))
        return v_bool(R, (d_get(r, l->u.s.p, l->u.s.n) != NULL) == (op == OP_IN));
    if (op == OP_MUL && ((l->kind == CST_TV_STRING && r->kind == CST_TV_INT) ||
                         (r->kind == CST_TV_STRING && l->kind == CST_TV_INT))) {
        cst_tvalue *s = l->kind == CST_TV_STRING ? l : r;
        int64_t k = l->kind == CST_TV_INT ? l->u.i : r->u.i;
        sbuf b = sb_arena(R);
        for (int64_t i = 0; i < k; i++) {
            if (b.n + s->u.s.n > R->lim.max_output)
                rfail(R, CST_ERR_INVALID_ARG, x, "string repetition too large");
            sb_put(&b, s->u.s.p, s->u.s.n);
            sb_check(R, &b);
        }
        return sb_value(R, &b);
    }
    static const char *opn[] = {"", "and", "or", "not", "==", "!=", "<", ">", "<=", ">=", "in", "not in",
                                "+", "-", "~", "*", "/", "//", "%", "**", "-", "+"};
    rfail(R, CST_ERR_INVALID_ARG, x, "unsupported operand types for '%s': %s and %s", opn[op], kind_name(l),
          kind_name(r));
}

/* ---- expressions ---- */

static cst_tvalue *eval(rctx *R, const tnode *x, tenv *env) {
    step(R, x);
    if (++R->depth > R->lim.max_depth) rfail(R, CST_ERR_INVALID_ARG, x, "template nesting too deep");
    cst_tvalue *r;
    switch (x->kind) {
    case N_INT: r = v_int(R, x->i); break;
    case N_FLOAT: r = v_float(R, x->f); break;
    case N_STR: r = v_str(R, x->s, x->sn); break;
    case N_IDENT: r = env_get(R, env, x->s, x->sn); break;
    case N_LIST:
    case N_TUPLE:
        r = v_list(R, (size_t)x->n);
        r->tuple = x->kind == N_TUPLE;
        for (int i = 0; i < x->n; i++) l_push(R, r, eval(R, x->list[i], env));
        break;
    case N_DICT:
        r = v_dict(R, CST_TV_DICT);
        for (int i = 0; i < x->n; i++) {
            cst_tvalue *k = eval(R, x->list[i], env);
            if (k->kind != CST_TV_STRING) rfail(R, CST_ERR_INVALID_ARG, x, "dict keys must be strings");
            d_set(R, r, k->u.s.p, k->u.s.n, eval(R, x->list2[i], env));
        }
        break;
    case N_MEMBER: {
        cst_tvalue *obj = eval(R, x->a, env);
        if (x->b->kind == N_SLICE) {
            r = do_slice(R, obj, x->b, env);
            break;
        }
        cst_tvalue *prop = x->flag ? eval(R, x->b, env) : v_str(R, x->b->s, x->b->sn);
        r = get_member(R, obj, prop, x);
        break;
    }
    case N_CALL: {
        cst_tvalue *fn = eval(R, x->a, env);
        args_t a;
        eval_args(R, x->list, x->n, env, &a);
        if (fn->kind != TV_FUNC) rfail(R, CST_ERR_INVALID_ARG, x, "cannot call a %s", kind_name(fn));
        r = call_fn(R, fn, &a, env, NULL, x);
        break;
    }
    case N_BIN: r = binop(R, x, env); break;
    case N_UNARY: {
        cst_tvalue *v = eval(R, x->a, env);
        if (x->op == OP_NOT) {
            r = v_bool(R, !truthy(v));
        } else if (v->kind == CST_TV_INT) {
            r = v_int(R, x->op == OP_NEG ? (v->u.i == INT64_MIN ? INT64_MIN : -v->u.i) : v->u.i);
        } else if (v->kind == CST_TV_FLOAT) {
            r = v_float(R, x->op == OP_NEG ? -v->u.f : v->u.f);
        } else if (v->kind == CST_TV_BOOL) {
            r = v_int(R, x->op == OP_NEG ? -(int64_t)v->u.b : v->u.b);
        } else {
            rfail(R, CST_ERR_INVALID_ARG, x, "unary %s on a %s", x->op == OP_NEG ? "-" : "+", kind_name(v));
        }
        break;
    }
    case N_FILTER: r = apply_filter(R, x, eval(R, x->a, env), env); break;
    case N_TEST: {
        cst_tvalue *v = eval(R, x->a, env);
        args_t a;
        eval_args(R, x->list, x->n, env, &a);
        bool t = run_test(R, x->fid, v, &a, x);
        r = v_bool(R, x->flag ? !t : t);
        break;
    }
    case N_TERNARY:
        if (truthy(eval(R, x->a, env))) r = eval(R, x->b, env);
        else r = x->flag ? R->undef : eval(R, x->c, env);
        break;
    default: rfail(R, CST_ERR_INTERNAL, x, "unexpected node in an expression");
    }
    R->depth--;
    return r;
}

/* ---- statements ---- */

static void assign(rctx *R, const tnode *target, cst_tvalue *v, tenv *env, const tnode *at) {
    if (target->kind == N_IDENT) {
        env_set(R, env, target->s, target->sn, v);
    } else if (target->kind == N_TUPLE) {
        if (v->kind != CST_TV_LIST) rfail(R, CST_ERR_INVALID_ARG, at, "cannot unpack a %s", kind_name(v));
        if ((int)v->u.l.n != target->n)
            rfail(R, CST_ERR_INVALID_ARG, at, "cannot unpack %zu values into %d names", v->u.l.n, target->n);
        for (int i = 0; i < target->n; i++) env_set(R, env, target->list[i]->s, target->list[i]->sn, v->u.l.v[i]);
    } else { /* ns.attr */
        cst_tvalue *obj = eval(R, target->a, env);
        if (obj->kind != TV_NS) rfail(R, CST_ERR_INVALID_ARG, at, "cannot set an attribute on a %s (only on a namespace)", kind_name(obj));
        d_set(R, obj, target->b->s, target->b->sn, v);
    }
}

static void exec_for(rctx *R, const tnode *x, tenv *env) {
    tenv *scope = env_new(R, env);
    cst_tvalue *it = eval(R, x->b, scope);
    cst_tvalue *items;
    if (it->kind == CST_TV_LIST) items = it;
    else if (it->kind == CST_TV_DICT || it->kind == CST_TV_STRING || it->kind == CST_TV_UNDEFINED) items = to_list(R, it, x);
    else rfail(R, CST_ERR_INVALID_ARG, x, "cannot iterate over a %s", kind_name(it));
    size_t n = items->u.l.n;
    if (x->c) {
        cst_tvalue *kept = v_list(R, 0);
        for (size_t i = 0; i < n; i++) {
            tenv *ls = env_new(R, scope);
            assign(R, x->a, items->u.l.v[i], ls, x);
            if (truthy(eval(R, x->c, ls))) l_push(R, kept, items->u.l.v[i]);
        }
        items = kept;
        n = kept->u.l.n;
    } else if (items == it) {
        /* iterate over a snapshot: the body may append to the list */
        cst_tvalue *snap = v_list(R, n ? n : 1);
        if (n) memcpy(snap->u.l.v, it->u.l.v, n * sizeof *snap->u.l.v);
        snap->u.l.n = n;
        items = snap;
    }
    for (size_t i = 0; i < n; i++) {
        step(R, x);
        cst_tvalue *loop = v_dict(R, CST_TV_DICT);
        d_set(R, loop, "index", 5, v_int(R, (int64_t)i + 1));
        d_set(R, loop, "index0", 6, v_int(R, (int64_t)i));
        d_set(R, loop, "revindex", 8, v_int(R, (int64_t)(n - i)));
        d_set(R, loop, "revindex0", 9, v_int(R, (int64_t)(n - i - 1)));
        d_set(R, loop, "first", 5, v_bool(R, i == 0));
        d_set(R, loop, "last", 4, v_bool(R, i == n - 1));
        d_set(R, loop, "length", 6, v_int(R, (int64_t)n));
        d_set(R, loop, "previtem", 8, i > 0 ? items->u.l.v[i - 1] : R->undef);
        d_set(R, loop, "nextitem", 8, i + 1 < n ? items->u.l.v[i + 1] : R->undef);
        env_set(R, scope, "loop", 4, loop);
        assign(R, x->a, items->u.l.v[i], scope, x);
        exec_block(R, x->list, x->n, scope);
        if (R->ctl == 1) {
            R->ctl = 0;
            break;
        }
        R->ctl = 0;
    }
    if (n == 0) exec_block(R, x->list2, x->n2, scope);
}

static void exec_stmt(rctx *R, const tnode *x, tenv *env) {
    step(R, x);
    if (++R->depth > R->lim.max_depth) rfail(R, CST_ERR_INVALID_ARG, x, "template nesting too deep");
    switch (x->kind) {
    case N_TEXT: emit(R, x->s, x->sn); break;
    case N_OUTPUT: {
        cst_tvalue *v = eval(R, x->a, env);
        if (v->kind == CST_TV_STRING) {
            emit(R, v->u.s.p, v->u.s.n);
        } else {
            sbuf b = sb_arena(R);
            to_str(R, &b, v);
            sb_check(R, &b);
            emit(R, b.p ? b.p : "", b.n);
        }
        break;
    }
    case N_IF:
        if (truthy(eval(R, x->a, env))) exec_block(R, x->list, x->n, env);
        else exec_block(R, x->list2, x->n2, env);
        break;
    case N_FOR: exec_for(R, x, env); break;
    case N_SET: {
        cst_tvalue *v = x->b ? eval(R, x->b, env) : capture(R, x->list, x->n, env);
        assign(R, x->a, v, env, x);
        break;
    }
    case N_MACRO: env_set(R, env, x->s, x->sn, v_fn(R, FN_MACRO, NULL, x, NULL)); break;
    case N_CALLBLOCK: {
        const tnode *call = x->a;
        cst_tvalue *fn = eval(R, call->a, env);
        if (fn->kind != TV_FUNC || fn->u.fn.id != FN_MACRO)
            rfail(R, CST_ERR_INVALID_ARG, x, "call block needs a macro, got a %s", kind_name(fn));
        args_t a;
        eval_args(R, call->list, call->n, env, &a);
        /* the caller's parameters and body, as a macro-like node */
        tnode *cn = ralloc(R, sizeof *cn);
        *cn = *x;
        cn->list = x->list;
        cn->n = x->n;
        cn->list2 = x->list2;
        cn->n2 = x->n2;
        cst_tvalue *caller = v_fn(R, FN_CALLER, NULL, cn, env);
        cst_tvalue *r = call_fn(R, fn, &a, env, caller, x);
        emit(R, r->u.s.p, r->u.s.n);
        break;
    }
    case N_FILTERBLOCK: {
        cst_tvalue *body = capture(R, x->list, x->n, env);
        cst_tvalue *v = apply_filter(R, x->a, body, env);
        sbuf b = sb_arena(R);
        to_str(R, &b, v);
        sb_check(R, &b);
        emit(R, b.p ? b.p : "", b.n);
        break;
    }
    case N_BREAK: R->ctl = 1; break;
    case N_CONTINUE: R->ctl = 2; break;
    case N_DO: eval(R, x->a, env); break;
    default: rfail(R, CST_ERR_INTERNAL, x, "unexpected statement");
    }
    R->depth--;
}

static void exec_block(rctx *R, const tnode *const *list, int n, tenv *env) {
    for (int i = 0; i < n && !R->ctl; i++) exec_stmt(R, list[i], env);
}

/* ---- entry ---- */

static cst_tvalue *copy_in(rctx *R, const cst_tvalue *v, int depth) {
    if (depth > 1000) rfail(R, CST_ERR_INVALID_ARG, NULL, "input value nested too deeply");
    switch (v->kind) {
    case CST_TV_LIST: {
        cst_tvalue *l = v_list(R, v->u.l.n);
        for (size_t i = 0; i < v->u.l.n; i++) l_push(R, l, copy_in(R, v->u.l.v[i], depth + 1));
        return l;
    }
    case CST_TV_DICT: {
        cst_tvalue *d = v_dict(R, CST_TV_DICT);
        for (size_t i = 0; i < v->u.d.n; i++)
            d_set(R, d, v->u.d.e[i].k, v->u.d.e[i].kn, copy_in(R, v->u.d.e[i].v, depth + 1));
        return d;
    }
    default: {
        cst_tvalue *c = mkv(R, v->kind);
        c->u = v->u; /* strings stay borrowed from the caller's tree */
        return c;
    }
    }
}

cst_template_limits cst_template_default_limits(void) {
    return (cst_template_limits){64u << 20, 256u << 20, 20000000, 512};
}

cst_status tpl_render_multi(const cst_template *t, const cst_tvalue *const *dicts, int ndicts,
                            const cst_template_limits *limits, char **out, size_t *out_len, char *err, size_t errlen);

cst_status tpl_render_multi(const cst_template *t, const cst_tvalue *const *dicts, int ndicts,
                            const cst_template_limits *limits, char **out, size_t *out_len, char *err, size_t errlen) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return CST_ERR_INVALID_ARG;
    rctx *R = calloc(1, sizeof *R);
    if (!R) return CST_ERR_NOMEM;
    sbuf *ob = calloc(1, sizeof *ob);
    if (!ob) {
        free(R);
        return CST_ERR_NOMEM;
    }
    R->lim = limits ? *limits : cst_template_default_limits();
    if (!R->lim.max_output) R->lim.max_output = SIZE_MAX / 2;
    if (!R->lim.max_steps) R->lim.max_steps = UINT64_MAX;
    if (R->lim.max_depth <= 0) R->lim.max_depth = 512;
    R->ar.limit = R->lim.max_memory;
    R->err = err;
    R->errlen = errlen;
    R->out = ob;
    volatile cst_status st = CST_OK;
    if (setjmp(R->jb)) {
        st = R->st;
        goto done;
    }
    R->undef = mkv(R, CST_TV_UNDEFINED);
    R->none = mkv(R, CST_TV_NONE);
    R->vtrue = mkv(R, CST_TV_BOOL);
    R->vtrue->u.b = true;
    R->vfalse = mkv(R, CST_TV_BOOL);
    tenv *g = env_new(R, NULL);
    env_set(R, g, "true", 4, R->vtrue);
    env_set(R, g, "false", 5, R->vfalse);
    env_set(R, g, "none", 4, R->none);
    env_set(R, g, "True", 4, R->vtrue);
    env_set(R, g, "False", 5, R->vfalse);
    env_set(R, g, "None", 4, R->none);
    for (size_t i = 0; i < CST_ARRAY_LEN(globals); i++)
        env_set(R, g, globals[i].name, strlen(globals[i].name), v_fn(R, globals[i].id, NULL, NULL, NULL));
    for (int k = 0; k < ndicts; k++) {
        const cst_tvalue *d = dicts[k];
        if (!d) continue;
        if (d->kind != CST_TV_DICT) rfail(R, CST_ERR_INVALID_ARG, NULL, "template variables must be a dict");
        for (size_t i = 0; i < d->u.d.n; i++) env_set(R, g, d->u.d.e[i].k, d->u.d.e[i].kn, copy_in(R, d->u.d.e[i].v, 0));
    }
    tenv *topenv = env_new(R, g);
    exec_block(R, t->body, t->n, topenv);
    if (ob->oom) room(R);
done:
    tpl_arena_free(&R->ar);
    if (st == CST_OK) {
        *out = ob->p ? ob->p : calloc(1, 1);
        if (!*out) st = CST_ERR_NOMEM;
        if (out_len) *out_len = ob->n;
    } else {
        free(ob->p);
    }
    free(ob);
    free(R);
    return st;
}

cst_status cst_template_render(const cst_template *t, const cst_tvalue *vars, const cst_template_limits *limits,
                               char **out, size_t *out_len, char *err, size_t errlen) {
    const cst_tvalue *d[1] = {vars};
    return tpl_render_multi(t, d, 1, limits, out, out_len, err, errlen);
}
