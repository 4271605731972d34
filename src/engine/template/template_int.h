/* template_int.h: structures shared by the template module's files: the
 * value layout (public trees and render-time values share it), the parsed
 * template (AST), the render context with its bump arena, and the string,
 * UTF-8, number and JSON helpers that follow the reference's JavaScript
 * semantics (String(number), JSON.stringify, trim()).
 */
#ifndef CST_TEMPLATE_INT_H
#define CST_TEMPLATE_INT_H

#include "template.h"
#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Render-only kinds beyond cst_tv_kind. */
enum { TV_NS = 8, TV_FUNC = 9 };

typedef struct tv_entry {
    const char *k;
    size_t kn;
    cst_tvalue *v;
} tv_entry;

struct tnode;
struct tenv;

struct cst_tvalue {
    uint8_t kind;
    uint8_t tuple; /* list created by a tuple literal */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct {
            cst_tvalue **v;
            size_t n, cap;
        } l;
        struct {
            tv_entry *e;
            size_t n, cap;
        } d;
        struct {
            int id;                   /* builtin id (FN_*) */
            cst_tvalue *self;         /* bound method receiver */
            const struct tnode *node; /* macro / call block */
            struct tenv *env;         /* call block: defining scope */
        } fn;
    } u;
};

/* ---- growable byte buffer (malloc) ---- */
struct tpl_arena;
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
    struct tpl_arena *ar; /* grow inside this arena instead of malloc */
} sbuf;
bool sb_put(sbuf *b, const char *s, size_t n);
bool sb_puts(sbuf *b, const char *s);
bool sb_putc(sbuf *b, char c);

/* ---- JS-compatible formatting ---- */
void tpl_fmt_number(sbuf *b, double d);           /* String(d) */
void tpl_fmt_float_value(sbuf *b, double d);      /* FloatValue.toString(): 2.0 -> "2.0" */
void tpl_json_string(sbuf *b, const char *s, size_t n, bool ensure_ascii); /* JSON.stringify(str) */

/* ---- UTF-8 / JS whitespace ---- */
size_t tpl_space_at(const char *p, const char *end);      /* bytes of a JS \s char at p, 0 if none */
size_t tpl_space_before(const char *start, const char *p); /* bytes of a JS \s char ending at p */
void tpl_trim(const char **s, size_t *n, bool left, bool right);
size_t tpl_utf8_len(const char *s, size_t n);              /* code points */
size_t tpl_utf8_next(const char *s, size_t n, size_t i);   /* byte index of the next code point */
uint32_t tpl_utf8_decode(const char *s, size_t n, size_t i, size_t *adv);
void tpl_utf8_encode(sbuf *b, uint32_t cp);
uint32_t tpl_case_map(uint32_t cp, bool upper);

/* ---- AST ---- */
typedef enum tkind {
    /* statements */
    N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK, N_BREAK, N_CONTINUE, N_DO,
    /* expressions */
    N_INT, N_FLOAT, N_STR, N_IDENT, N_LIST, N_TUPLE, N_DICT, N_MEMBER, N_SLICE, N_CALL, N_BIN, N_UNARY,
    N_FILTER, N_TEST, N_TERNARY, N_KWARG,
} tkind;

typedef enum top {
    OP_NONE, OP_AND, OP_OR, OP_NOT, OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE, OP_IN, OP_NOTIN,
    OP_ADD, OP_SUB, OP_CONCAT, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_NEG, OP_POS,
} top;

typedef struct tnode {
    uint8_t kind;
    uint8_t op;
    uint8_t flag; /* MEMBER: computed; TEST: negate; FILTER: called with () */
    int line, col;
    const struct tnode *a, *b, *c;
    const struct tnode **list; /* body / args / elements / keys */
    int n;
    const struct tnode **list2; /* else body / values */
    int n2;
    const char *s; /* name, string literal, text */
    size_t sn;
    int64_t i;
    double f;
    int fid; /* FILTER/TEST: builtin id */
} tnode;

typedef struct tpl_arena_blk tpl_arena_blk;
typedef struct tpl_arena {
    tpl_arena_blk *head;
    size_t used, limit;
    bool over; /* the limit was hit */
} tpl_arena;
void *tpl_arena_alloc(tpl_arena *a, size_t n); /* zeroed, 16-aligned; NULL when over limit / OOM */
void tpl_arena_free(tpl_arena *a);

struct cst_template {
    tpl_arena arena; /* AST + literal strings */
    const tnode **body;
    int n;
};

/* Filters, tests and functions known to the renderer; the parser rejects
 * anything else. */
int tpl_filter_id(const char *name, size_t n);   /* -1 if unsupported */
int tpl_test_id(const char *name, size_t n);     /* -1 if unsupported */
bool tpl_is_method(const char *name, size_t n);  /* a string/list/dict method name */
bool tpl_is_global_fn(const char *name, size_t n);

#endif
