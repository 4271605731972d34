/* parse.c: template source -> AST. Three stages, each mirroring the
 * reference (@huggingface/jinja 0.5.11) so whitespace comes out byte-exact:
 * preprocess (drop one trailing newline, lstrip_blocks, trim_blocks, remove
 * {% generation %} tags), lex (text / tags, with the {%- -%} {{- -}} {#- -#}
 * trimming), and a recursive-descent parser with the reference's operator
 * precedence. Unsupported constructs are rejected here, with line/column.
 */
#include "template_int.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SOURCE (16u << 20)

/* ---- preprocessing: text with a map back to source offsets ---- */

typedef struct {
    char *s;
    uint32_t *off;
    size_t n;
} ptext;

static bool pt_alloc(ptext *t, size_t cap) {
    t->s = malloc(cap + 1);
    t->off = malloc((cap + 1) * sizeof *t->off);
    t->n = 0;
    return t->s && t->off;
}
static void pt_free(ptext *t) {
    free(t->s);
    free(t->off);
    t->s = NULL;
    t->off = NULL;
}
static inline void pt_push(ptext *d, const ptext *s, size_t i) {
    d->s[d->n] = s->s[i];
    d->off[d->n++] = s->off[i];
}

static bool is_line_start(const ptext *t, size_t i) {
    if (i == 0) return true;
    char c = t->s[i - 1];
    if (c == '\n' || c == '\r') return true;
    /* U+2028 / U+2029 are line terminators for JS's multiline ^ */
    if (i >= 3 && (unsigned char)t->s[i - 3] == 0xE2 && (unsigned char)t->s[i - 2] == 0x80 &&
        ((unsigned char)c == 0xA8 || (unsigned char)c == 0xA9))
        return true;
    return false;
}

/* /^[ \t]*({[#%-])/gm -> "$1" */
static bool pp_lstrip(ptext *src, ptext *dst) {
    if (!pt_alloc(dst, src->n)) return false;
    size_t i = 0;
    while (i < src->n) {
        if (is_line_start(src, i)) {
            size_t j = i;
            while (j < src->n && (src->s[j] == ' ' || src->s[j] == '\t')) j++;
            if (j + 1 < src->n && src->s[j] == '{' &&
                (src->s[j + 1] == '#' || src->s[j + 1] == '%' || src->s[j + 1] == '-')) {
                pt_push(dst, src, j);
                pt_push(dst, src, j + 1);
                i = j + 2;
                continue;
            }
        }
        pt_push(dst, src, i);
        i++;
    }
    return true;
}

/* /([#%-]})\n/g -> "$1" */
static bool pp_trim(ptext *src, ptext *dst) {
    if (!pt_alloc(dst, src->n)) return false;
    size_t i = 0;
    while (i < src->n) {
        char c = src->s[i];
        if ((c == '#' || c == '%' || c == '-') && i + 2 < src->n && src->s[i + 1] == '}' && src->s[i + 2] == '\n') {
            pt_push(dst, src, i);
            pt_push(dst, src, i + 1);
            i += 3;
            continue;
        }
        pt_push(dst, src, i);
        i++;
    }
    return true;
}

/* /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs: the tag goes; the
 * whitespace around it stays unless the tag has the matching '-'. */
static size_t gen_tag_at(const ptext *t, size_t j, bool *lstrip, bool *rstrip) {
    const char *e = t->s + t->n;
    size_t k = j;
    if (k + 1 >= t->n || t->s[k] != '{' || t->s[k + 1] != '%') return 0;
    k += 2;
    *lstrip = k < t->n && t->s[k] == '-';
    if (*lstrip) k++;
    size_t w;
    while ((w = tpl_space_at(t->s + k, e))) k += w;
    if (t->n - k >= 3 && !memcmp(t->s + k, "end", 3)) {
        if (t->n - k >= 13 && !memcmp(t->s + k + 3, "generation", 10)) k += 3;
    }
    if (t->n - k < 10 || memcmp(t->s + k, "generation", 10)) return 0;
    k += 10;
    while ((w = tpl_space_at(t->s + k, e))) k += w;
    *rstrip = k < t->n && t->s[k] == '-';
    if (*rstrip) k++;
    if (k + 1 >= t->n || t->s[k] != '%' || t->s[k + 1] != '}') return 0;
    return k + 2 - j;
}

static bool pp_generation(ptext *src, ptext *dst) {
    if (!pt_alloc(dst, src->n)) return false;
    const char *e = src->s + src->n;
    size_t i = 0;
    while (i < src->n) {
        size_t j = i, w;
        while ((w = tpl_space_at(src->s + j, e))) j += w;
        bool ls = false, rs = false;
        size_t tl = gen_tag_at(src, j, &ls, &rs);
        if (!tl) {
            /* no tag after this whitespace run: copy the run (or one byte) */
            size_t stop = j > i ? j : i + 1;
            while (i < stop) pt_push(dst, src, i++);
            continue;
        }
        if (!ls)
            while (i < j) pt_push(dst, src, i++);
        i = j + tl;
        size_t k = i;
        while ((w = tpl_space_at(src->s + k, e))) k += w;
        if (!rs)
            while (i < k) pt_push(dst, src, i++);
        i = k;
    }
    return true;
}

/* ---- lexer ---- */

typedef enum {
    T_TEXT, T_NUM, T_STR, T_IDENT, T_EQUALS, T_LPAREN, T_RPAREN, T_OPEN_STMT, T_CLOSE_STMT, T_OPEN_EXPR,
    T_CLOSE_EXPR, T_LBRACKET, T_RBRACKET, T_LBRACE, T_RBRACE, T_COMMA, T_DOT, T_COLON, T_PIPE, T_ADD, T_MUL,
    T_POW, T_CMP, T_UNARY, T_COMMENT,
} ttype;

typedef struct {
    uint8_t type;
    const char *v;
    size_t vn;
    size_t pos; /* index into the preprocessed text */
} token;

typedef struct parser {
    const char *src; /* original */
    size_t src_n;
    ptext pt;
    token *tok;
    size_t ntok, captok, cur;
    cst_template *t;
    jmp_buf jb;
    cst_status st;
    char *err;
    size_t errlen;
    int depth, loop_depth;
    /* calls to plain names, checked once every macro is known */
    struct {
        const char *name;
        size_t n;
        size_t pos;
    } * calls;
    size_t ncalls, capcalls;
    struct {
        const char *name;
        size_t n;
    } * macros;
    size_t nmacros, capmacros;
} parser;

static void pos_linecol(const parser *P, size_t pos, int *line, int *col) {
    size_t off = pos < P->pt.n ? P->pt.off[pos] : P->src_n;
    int l = 1, c = 1;
    for (size_t i = 0; i < off && i < P->src_n; i++) {
        if (P->src[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)P->src[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

__attribute__((format(printf, 4, 5), noreturn)) static void fail_at(parser *P, cst_status st, size_t pos,
                                                                    const char *fmt, ...) {
    int line, col;
    pos_linecol(P, pos, &line, &col);
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cst_errf(P->err, P->errlen, "line %d, column %d: %s", line, col, msg);
    P->st = st;
    longjmp(P->jb, 1);
}

static void *p_alloc(parser *P, size_t n) {
    void *p = tpl_arena_alloc(&P->t->arena, n);
    if (!p) {
        cst_errf(P->err, P->errlen, "out of memory while parsing the template");
        P->st = CST_ERR_NOMEM;
        longjmp(P->jb, 1);
    }
    return p;
}

static const char *p_strdup(parser *P, const char *s, size_t n) {
    char *d = p_alloc(P, n + 1);
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static void push_tok(parser *P, int type, const char *v, size_t vn, size_t pos) {
    if (P->ntok == P->captok) {
        size_t nc = P->captok ? P->captok * 2 : 256;
        token *nt = realloc(P->tok, nc * sizeof *nt);
        if (!nt) {
            cst_errf(P->err, P->errlen, "out of memory while parsing the template");
            P->st = CST_ERR_NOMEM;
            longjmp(P->jb, 1);
        }
        P->tok = nt;
        P->captok = nc;
    }
    P->tok[P->ntok++] = (token){(uint8_t)type, v, vn, pos};
}

static int last_type(const parser *P) { return P->ntok ? P->tok[P->ntok - 1].type : -1; }

static void strip_trailing_ws(parser *P) {
    if (!P->ntok) return;
    token *t = &P->tok[P->ntok - 1];
    if (t->type != T_TEXT) return;
    const char *s = t->v;
    size_t n = t->vn;
    tpl_trim(&s, &n, false, true);
    t->vn = n;
    if (!n) P->ntok--;
}

static inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
static inline bool is_word(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void lex(parser *P) {
    const char *s = P->pt.s;
    const size_t n = P->pt.n;
    const char *end = s + n;
    size_t i = 0;
    int curly = 0;
    static const struct {
        const char *seq;
        int type;
    } table[] = {
        {"{%", T_OPEN_STMT}, {"%}", T_CLOSE_STMT}, {"{{", T_OPEN_EXPR}, {"}}", T_CLOSE_EXPR}, {"(", T_LPAREN},
        {")", T_RPAREN},     {"{", T_LBRACE},      {"}", T_RBRACE},     {"[", T_LBRACKET},  {"]", T_RBRACKET},
        {",", T_COMMA},      {".", T_DOT},         {":", T_COLON},      {"|", T_PIPE},      {"<=", T_CMP},
        {">=", T_CMP},       {"==", T_CMP},        {"!=", T_CMP},       {"<", T_CMP},       {">", T_CMP},
        {"+", T_ADD},        {"-", T_ADD},         {"~", T_ADD},        {"**", T_POW},      {"*", T_MUL},
        {"//", T_MUL},       {"/", T_MUL},         {"%", T_MUL},        {"=", T_EQUALS},
    };
    while (i < n) {
        int last = last_type(P);
        if (last == -1 || last == T_CLOSE_STMT || last == T_CLOSE_EXPR || last == T_COMMENT) {
            size_t j = i;
            while (j < n && !(s[j] == '{' && j + 1 < n && (s[j + 1] == '%' || s[j + 1] == '{' || s[j + 1] == '#')))
                j++;
            if (j > i) {
                push_tok(P, T_TEXT, s + i, j - i, i);
                i = j;
                continue;
            }
        }
        if (s[i] == '{' && i + 1 < n && s[i + 1] == '#') {
            size_t start = i;
            i += 2;
            bool strip_before = i < n && s[i] == '-';
            if (strip_before) i++;
            size_t cstart = i;
            while (!(i + 1 < n && s[i] == '#' && s[i + 1] == '}')) {
                if (i + 2 >= n) fail_at(P, CST_ERR_BAD_FORMAT, start, "unterminated comment");
                i++;
            }
            bool strip_after = i > cstart && s[i - 1] == '-';
            if (strip_before) strip_trailing_ws(P);
            push_tok(P, T_COMMENT, NULL, 0, start);
            i += 2;
            if (strip_after) {
                size_t w;
                while ((w = tpl_space_at(s + i, end))) i += w;
            }
            continue;
        }
        if (n - i >= 3 && s[i] == '{' && s[i + 1] == '%' && s[i + 2] == '-') {
            strip_trailing_ws(P);
            push_tok(P, T_OPEN_STMT, s + i, 2, i);
            i += 3;
            continue;
        }
        if (n - i >= 3 && s[i] == '{' && s[i + 1] == '{' && s[i + 2] == '-') {
            strip_trailing_ws(P);
            push_tok(P, T_OPEN_EXPR, s + i, 2, i);
            curly = 0;
            i += 3;
            continue;
        }
        {
            size_t w;
            bool any = false;
            while ((w = tpl_space_at(s + i, end))) {
                i += w;
                any = true;
            }
            if (any && i >= n) fail_at(P, CST_ERR_BAD_FORMAT, i, "unexpected end of template inside a tag");
        }
        if (n - i >= 3 && s[i] == '-' && s[i + 1] == '%' && s[i + 2] == '}') {
            push_tok(P, T_CLOSE_STMT, s + i + 1, 2, i);
            i += 3;
            size_t w;
            while ((w = tpl_space_at(s + i, end))) i += w;
            continue;
        }
        if (n - i >= 3 && s[i] == '-' && s[i + 1] == '}' && s[i + 2] == '}') {
            push_tok(P, T_CLOSE_EXPR, s + i + 1, 2, i);
            i += 3;
            size_t w;
            while ((w = tpl_space_at(s + i, end))) i += w;
            continue;
        }
        char c = s[i];
        if (c == '-' || c == '+') {
            if (last == T_TEXT || last == -1) fail_at(P, CST_ERR_BAD_FORMAT, i, "unexpected character '%c'", c);
            if (last != T_IDENT && last != T_NUM && last != T_STR && last != T_RPAREN && last != T_RBRACKET) {
                size_t start = i++;
                while (i < n && is_digit(s[i])) i++;
                if (i >= n && i > start + 1) fail_at(P, CST_ERR_BAD_FORMAT, i, "unexpected end of template");
                if (i > start + 1 && i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
                    i++;
                    while (i < n && is_digit(s[i])) i++;
                    if (i >= n) fail_at(P, CST_ERR_BAD_FORMAT, i, "unexpected end of template");
                }
                push_tok(P, i > start + 1 ? T_NUM : T_UNARY, s + start, i - start, start);
                continue;
            }
        }
        bool matched = false;
        for (size_t k = 0; k < CST_ARRAY_LEN(table); k++) {
            size_t l = strlen(table[k].seq);
            if (table[k].type == T_CLOSE_EXPR && curly > 0) continue;
            if (n - i >= l && !memcmp(s + i, table[k].seq, l)) {
                push_tok(P, table[k].type, s + i, l, i);
                if (table[k].type == T_OPEN_EXPR) curly = 0;
                else if (table[k].type == T_LBRACE) curly++;
                else if (table[k].type == T_RBRACE) curly--;
                i += l;
                matched = true;
                break;
            }
        }
        if (matched) continue;
        if (c == '\'' || c == '"') {
            size_t start = i++;
            sbuf b = {0};
            while (true) {
                if (i >= n) {
                    free(b.p);
                    fail_at(P, CST_ERR_BAD_FORMAT, start, "unterminated string literal");
                }
                if (s[i] == c) break;
                if (s[i] == '\\') {
                    if (++i >= n) continue;
                    char e = s[i++];
                    if (e == 'x' || e == 'u') {
                        int len = e == 'x' ? 2 : 4;
                        uint32_t cp = 0;
                        bool ok = n - i >= (size_t)len;
                        for (int k = 0; ok && k < len; k++) {
                            int h = hexv(s[i + k]);
                            if (h < 0) ok = false;
                            cp = cp * 16 + (uint32_t)(h < 0 ? 0 : h);
                        }
                        if (!ok) {
                            free(b.p);
                            fail_at(P, CST_ERR_BAD_FORMAT, i - 2, "invalid \\%c escape", e);
                        }
                        i += (size_t)len;
                        /* a \uD8xx\uDCxx pair makes one code point */
                        if (cp >= 0xD800 && cp < 0xDC00 && n - i >= 6 && s[i] == '\\' && s[i + 1] == 'u') {
                            uint32_t lo = 0;
                            bool ok2 = true;
                            for (int k = 0; k < 4; k++) {
                                int h = hexv(s[i + 2 + k]);
                                if (h < 0) ok2 = false;
                                lo = lo * 16 + (uint32_t)(h < 0 ? 0 : h);
                            }
                            if (ok2 && lo >= 0xDC00 && lo < 0xE000) {
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                i += 6;
                            }
                        }
                        if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
                        tpl_utf8_encode(&b, cp);
                        continue;
                    }
                    const char *map = "n\nt\tr\rb\bf\fv\v''\"\"\\\\";
                    const char *m = NULL;
                    for (const char *q = map; *q; q += 2)
                        if (*q == e) m = q + 1;
                    if (!m) {
                        free(b.p);
                        fail_at(P, CST_ERR_BAD_FORMAT, i - 2, "unknown escape '\\%c' in string literal", e);
                    }
                    sb_putc(&b, *m);
                    continue;
                }
                sb_putc(&b, s[i++]);
            }
            if (b.oom) {
                free(b.p);
                fail_at(P, CST_ERR_NOMEM, start, "out of memory");
            }
            const char *v = p_strdup(P, b.p ? b.p : "", b.n);
            size_t vn = b.n;
            free(b.p);
            push_tok(P, T_STR, v, vn, start);
            i++;
            continue;
        }
        if (is_digit(c)) {
            size_t start = i;
            while (i < n && is_digit(s[i])) i++;
            if (last_type(P) != T_DOT && i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
                i++;
                while (i < n && is_digit(s[i])) i++;
            }
            if (i >= n) fail_at(P, CST_ERR_BAD_FORMAT, i, "unexpected end of template");
            push_tok(P, T_NUM, s + start, i - start, start);
            continue;
        }
        if (is_word(c)) {
            size_t start = i;
            while (i < n && is_word(s[i])) i++;
            if (i >= n) fail_at(P, CST_ERR_BAD_FORMAT, i, "unexpected end of template");
            push_tok(P, T_IDENT, s + start, i - start, start);
            continue;
        }
        if ((unsigned char)c >= 0x80) {
            size_t adv;
            uint32_t cp = tpl_utf8_decode(s, n, i, &adv);
            fail_at(P, CST_ERR_BAD_FORMAT, i, "unexpected character U+%04X", (unsigned)cp);
        }
        fail_at(P, CST_ERR_BAD_FORMAT, i, "unexpected character '%c'", c);
    }
}

/* ---- parser ---- */

static const token *peek(parser *P, size_t k) { return P->cur + k < P->ntok ? &P->tok[P->cur + k] : NULL; }
static bool is(parser *P, int type) {
    const token *t = peek(P, 0);
    return t && t->type == type;
}
static bool tok_is_ident(const token *t, const char *name) {
    return t && t->type == T_IDENT && t->vn == strlen(name) && !memcmp(t->v, name, t->vn);
}
static bool is_ident(parser *P, const char *name) { return tok_is_ident(peek(P, 0), name); }
static size_t cur_pos(parser *P) {
    const token *t = peek(P, 0);
    return t ? t->pos : P->pt.n;
}

static const char *tok_name(int type) {
    static const char *names[] = {"text", "number", "string", "identifier", "'='", "'('", "')'", "'{%'", "'%}'",
                                  "'{{'", "'}}'", "'['", "']'", "'{'", "'}'", "','", "'.'", "':'", "'|'",
                                  "operator", "operator", "'**'", "comparison", "unary operator", "comment"};
    return type >= 0 && type < (int)CST_ARRAY_LEN(names) ? names[type] : "?";
}

static const token *expect(parser *P, int type, const char *what) {
    const token *t = peek(P, 0);
    if (!t) fail_at(P, CST_ERR_BAD_FORMAT, P->pt.n, "expected %s, got end of template", what);
    if (t->type != type) {
        if (t->type == T_IDENT)
            fail_at(P, CST_ERR_BAD_FORMAT, t->pos, "expected %s, got '%.*s'", what, (int)CST_MIN(t->vn, 40), t->v);
        fail_at(P, CST_ERR_BAD_FORMAT, t->pos, "expected %s, got %s", what, tok_name(t->type));
    }
    P->cur++;
    return t;
}

static void enter(parser *P) {
    if (++P->depth > CST_TEMPLATE_MAX_NESTING)
        fail_at(P, CST_ERR_BAD_FORMAT, cur_pos(P), "nesting deeper than %d", CST_TEMPLATE_MAX_NESTING);
}
static void leave(parser *P) { P->depth--; }

static tnode *mk(parser *P, int kind, size_t pos) {
    tnode *x = p_alloc(P, sizeof *x);
    x->kind = (uint8_t)kind;
    pos_linecol(P, pos, &x->line, &x->col);
    return x;
}

/* a growable list of nodes in the arena */
typedef struct {
    const tnode **v;
    int n, cap;
} nlist;
static void nl_push(parser *P, nlist *l, const tnode *x) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 4;
        const tnode **nv = p_alloc(P, (size_t)nc * sizeof *nv);
        if (l->n) memcpy(nv, l->v, (size_t)l->n * sizeof *nv);
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = x;
}


static tnode *parse_expression(parser *P);
static tnode *parse_primary(parser *P);
static tnode *parse_unary(parser *P);

/* Operator chains (a + b + c ...) are built by loops, so bound their length:
 * the renderer recurses over the tree (and bounds its own depth too). */
static void check_chain(parser *P, tnode *x, int *depth) {
    if (++*depth > CST_TEMPLATE_MAX_NESTING)
        fail_at(P, CST_ERR_BAD_FORMAT, cur_pos(P), "expression chain longer than %d", CST_TEMPLATE_MAX_NESTING);
    (void)x;
}

static void parse_args(parser *P, nlist *out, bool params) {
    expect(P, T_LPAREN, "'('");
    bool saw_kw = false;
    while (!is(P, T_RPAREN)) {
        if (!peek(P, 0)) fail_at(P, CST_ERR_BAD_FORMAT, P->pt.n, "unclosed '(' in argument list");
        if (is(P, T_POW) || (is(P, T_MUL) && peek(P, 0)->vn == 1 && peek(P, 0)->v[0] == '*'))
            fail_at(P, CST_ERR_UNSUPPORTED, cur_pos(P), "argument unpacking (* / **) is not supported");
        size_t pos = cur_pos(P);
        tnode *a = parse_expression(P);
        if (is(P, T_EQUALS)) {
            P->cur++;
            if (a->kind != N_IDENT)
                fail_at(P, CST_ERR_BAD_FORMAT, pos,
                        params ? "expected a parameter name" : "expected a name before '=' in keyword argument");
            tnode *kw = mk(P, N_KWARG, pos);
            kw->s = a->s;
            kw->sn = a->sn;
            kw->a = parse_expression(P);
            a = kw;
            saw_kw = true;
        } else if (saw_kw) {
            fail_at(P, CST_ERR_BAD_FORMAT, pos,
                    params ? "parameter without default after one with a default"
                           : "positional argument after keyword argument");
        }
        if (params && a->kind != N_IDENT && a->kind != N_KWARG)
            fail_at(P, CST_ERR_BAD_FORMAT, pos, "expected a parameter name");
        nl_push(P, out, a);
        if (is(P, T_COMMA)) P->cur++;
    }
    P->cur++;
}

static void note_call(parser *P, const tnode *callee, size_t pos) {
    if (callee->kind == N_IDENT) {
        if (P->ncalls == P->capcalls) {
            size_t nc = P->capcalls ? P->capcalls * 2 : 16;
            void *np = realloc(P->calls, nc * sizeof *P->calls);
            if (!np) fail_at(P, CST_ERR_NOMEM, pos, "out of memory");
            P->calls = np;
            P->capcalls = nc;
        }
        P->calls[P->ncalls].name = callee->s;
        P->calls[P->ncalls].n = callee->sn;
        P->calls[P->ncalls].pos = pos;
        P->ncalls++;
    } else if (callee->kind == N_MEMBER && !callee->flag && callee->b->kind == N_STR) {
        if (!tpl_is_method(callee->b->s, callee->b->sn))
            fail_at(P, CST_ERR_UNSUPPORTED, pos, "unsupported method '%.*s()'", (int)CST_MIN(callee->b->sn, 40),
                    callee->b->s);
    }
}

/* member access, subscripts, slices and calls after a primary */
static tnode *parse_postfix(parser *P, tnode *x) {
    int depth = 0;
    while (true) {
        size_t pos = cur_pos(P);
        if (is(P, T_DOT)) {
            P->cur++;
            const token *t = peek(P, 0);
            tnode *m = mk(P, N_MEMBER, pos);
            m->a = x;
            if (t && t->type == T_IDENT) {
                tnode *name = mk(P, N_STR, t->pos);
                name->s = p_strdup(P, t->v, t->vn);
                name->sn = t->vn;
                m->b = name;
                P->cur++;
            } else if (t && t->type == T_NUM && !memchr(t->v, '.', t->vn)) {
                tnode *idx = parse_primary(P);
                m->b = idx;
                m->flag = 1; /* integer property: index like [n] */
            } else {
                fail_at(P, CST_ERR_BAD_FORMAT, pos, "expected a name or an integer after '.'");
            }
            x = m;
        } else if (is(P, T_LBRACKET)) {
            P->cur++;
            const tnode *parts[3] = {0};
            int np = 0;
            bool slice = false;
            while (!is(P, T_RBRACKET)) {
                if (!peek(P, 0)) fail_at(P, CST_ERR_BAD_FORMAT, pos, "unclosed '['");
                if (np >= 3) fail_at(P, CST_ERR_BAD_FORMAT, pos, "a slice takes at most 3 parts");
                if (is(P, T_COLON)) {
                    parts[np++] = NULL;
                    P->cur++;
                    slice = true;
                } else {
                    parts[np++] = parse_expression(P);
                    if (is(P, T_COLON)) {
                        P->cur++;
                        slice = true;
                    }
                }
            }
            if (np == 0) fail_at(P, CST_ERR_BAD_FORMAT, pos, "empty subscript '[]'");
            P->cur++;
            tnode *m = mk(P, N_MEMBER, pos);
            m->a = x;
            m->flag = 1;
            if (slice) {
                tnode *sl = mk(P, N_SLICE, pos);
                sl->a = parts[0];
                sl->b = np > 1 ? parts[1] : NULL;
                sl->c = np > 2 ? parts[2] : NULL;
                m->b = sl;
            } else {
                m->b = parts[0];
            }
            x = m;
        } else if (is(P, T_LPAREN)) {
            tnode *c = mk(P, N_CALL, pos);
            c->a = x;
            nlist args = {0};
            parse_args(P, &args, false);
            c->list = args.v;
            c->n = args.n;
            note_call(P, x, pos);
            x = c;
        } else {
            break;
        }
        check_chain(P, x, &depth);
    }
    return x;
}

static tnode *parse_primary(parser *P) {
    const token *t = peek(P, 0);
    if (!t) fail_at(P, CST_ERR_BAD_FORMAT, P->pt.n, "unexpected end of template in an expression");
    size_t pos = t->pos;
    P->cur++;
    switch (t->type) {
    case T_NUM: {
        char tmp[64];
        if (t->vn >= sizeof tmp) fail_at(P, CST_ERR_BAD_FORMAT, pos, "number literal too long");
        memcpy(tmp, t->v, t->vn);
        tmp[t->vn] = 0;
        if (memchr(tmp, '.', t->vn)) {
            tnode *x = mk(P, N_FLOAT, pos);
            x->f = strtod(tmp, NULL);
            return x;
        }
        char *e;
        errno = 0;
        long long v = strtoll(tmp, &e, 10);
        if (errno) {
            tnode *x = mk(P, N_FLOAT, pos);
            x->f = strtod(tmp, NULL);
            return x;
        }
        tnode *x = mk(P, N_INT, pos);
        x->i = v;
        return x;
    }
    case T_STR: {
        sbuf b = {0};
        sb_put(&b, t->v, t->vn);
        while (is(P, T_STR)) {
            sb_put(&b, peek(P, 0)->v, peek(P, 0)->vn);
            P->cur++;
        }
        if (b.oom) {
            free(b.p);
            fail_at(P, CST_ERR_NOMEM, pos, "out of memory");
        }
        tnode *x = mk(P, N_STR, pos);
        x->s = p_strdup(P, b.p ? b.p : "", b.n);
        x->sn = b.n;
        free(b.p);
        return x;
    }
    case T_IDENT: {
        tnode *x = mk(P, N_IDENT, pos);
        x->s = p_strdup(P, t->v, t->vn);
        x->sn = t->vn;
        return x;
    }
    case T_LPAREN: {
        enter(P);
        tnode *first = parse_expression(P);
        tnode *x = first;
        if (is(P, T_COMMA)) {
            nlist l = {0};
            nl_push(P, &l, first);
            while (is(P, T_COMMA)) {
                P->cur++;
                if (is(P, T_RPAREN)) break;
                nl_push(P, &l, parse_expression(P));
            }
            x = mk(P, N_TUPLE, pos);
            x->list = l.v;
            x->n = l.n;
        }
        expect(P, T_RPAREN, "')'");
        leave(P);
        return x;
    }
    case T_LBRACKET: {
        enter(P);
        nlist l = {0};
        while (!is(P, T_RBRACKET)) {
            if (!peek(P, 0)) fail_at(P, CST_ERR_BAD_FORMAT, pos, "unclosed '['");
            nl_push(P, &l, parse_expression(P));
            if (is(P, T_COMMA)) P->cur++;
        }
        P->cur++;
        leave(P);
        tnode *x = mk(P, N_LIST, pos);
        x->list = l.v;
        x->n = l.n;
        return x;
    }
    case T_LBRACE: {
        enter(P);
        nlist k = {0}, v = {0};
        while (!is(P, T_RBRACE)) {
            if (!peek(P, 0)) fail_at(P, CST_ERR_BAD_FORMAT, pos, "unclosed '{'");
            nl_push(P, &k, parse_expression(P));
            expect(P, T_COLON, "':' in a dict literal");
            nl_push(P, &v, parse_expression(P));
            if (is(P, T_COMMA)) P->cur++;
        }
        P->cur++;
        leave(P);
        tnode *x = mk(P, N_DICT, pos);
        x->list = k.v;
        x->n = k.n;
        x->list2 = v.v;
        x->n2 = v.n;
        return x;
    }
    default:
        fail_at(P, CST_ERR_BAD_FORMAT, pos, "unexpected %s in an expression", tok_name(t->type));
    }
}

static tnode *parse_unary(parser *P) {
    const token *t = peek(P, 0);
    if (t && (t->type == T_UNARY || t->type == T_ADD) && t->vn == 1 && (t->v[0] == '-' || t->v[0] == '+')) {
        enter(P);
        P->cur++;
        tnode *x = mk(P, N_UNARY, t->pos);
        x->op = t->v[0] == '-' ? OP_NEG : OP_POS;
        x->a = parse_unary(P);
        leave(P);
        return x;
    }
    return parse_postfix(P, parse_primary(P));
}

static tnode *parse_filter(parser *P) {
    tnode *x = parse_unary(P);
    int depth = 0;
    while (is(P, T_PIPE)) {
        size_t pos = cur_pos(P);
        P->cur++;
        const token *t = peek(P, 0);
        if (!t || t->type != T_IDENT) fail_at(P, CST_ERR_BAD_FORMAT, pos, "expected a filter name after '|'");
        P->cur++;
        int id = tpl_filter_id(t->v, t->vn);
        if (id < 0)
            fail_at(P, CST_ERR_UNSUPPORTED, t->pos, "unsupported filter '%.*s'", (int)CST_MIN(t->vn, 40), t->v);
        tnode *f = mk(P, N_FILTER, t->pos);
        f->a = x;
        f->s = p_strdup(P, t->v, t->vn);
        f->sn = t->vn;
        f->fid = id;
        if (is(P, T_LPAREN)) {
            nlist args = {0};
            parse_args(P, &args, false);
            f->list = args.v;
            f->n = args.n;
            f->flag = 1;
        }
        x = f;
        check_chain(P, x, &depth);
    }
    return x;
}

/* tests that take an argument accept "is name(arg)" and "is name arg" */
static bool test_takes_arg(const char *s, size_t n) {
    static const char *with[] = {"divisibleby", "equalto", "eq", "ne", "sameas", "lt", "le", "gt", "ge", "in",
                                 "greaterthan", "lessthan"};
    for (size_t i = 0; i < CST_ARRAY_LEN(with); i++)
        if (strlen(with[i]) == n && !memcmp(with[i], s, n)) return true;
    return false;
}

static tnode *parse_test(parser *P) {
    tnode *x = parse_filter(P);
    int depth = 0;
    while (is_ident(P, "is")) {
        size_t pos = cur_pos(P);
        P->cur++;
        bool neg = is_ident(P, "not");
        if (neg) P->cur++;
        const token *t = peek(P, 0);
        if (!t || t->type != T_IDENT) fail_at(P, CST_ERR_BAD_FORMAT, pos, "expected a test name after 'is'");
        P->cur++;
        int id = tpl_test_id(t->v, t->vn);
        if (id < 0) fail_at(P, CST_ERR_UNSUPPORTED, t->pos, "unsupported test '%.*s'", (int)CST_MIN(t->vn, 40), t->v);
        tnode *e = mk(P, N_TEST, t->pos);
        e->a = x;
        e->flag = neg;
        e->fid = id;
        e->s = p_strdup(P, t->v, t->vn);
        e->sn = t->vn;
        if (is(P, T_LPAREN)) {
            nlist args = {0};
            parse_args(P, &args, false);
            e->list = args.v;
            e->n = args.n;
        } else if (test_takes_arg(t->v, t->vn)) {
            const tnode **one = p_alloc(P, sizeof *one);
            enter(P);
            one[0] = parse_unary(P);
            leave(P);
            e->list = one;
            e->n = 1;
        }
        x = e;
        check_chain(P, x, &depth);
    }
    return x;
}

static tnode *bin(parser *P, int op, tnode *l, tnode *r, size_t pos) {
    tnode *x = mk(P, N_BIN, pos);
    x->op = (uint8_t)op;
    x->a = l;
    x->b = r;
    return x;
}

static tnode *parse_power(parser *P) {
    tnode *x = parse_test(P);
    int depth = 0;
    while (is(P, T_POW)) {
        size_t pos = cur_pos(P);
        P->cur++;
        x = bin(P, OP_POW, x, parse_test(P), pos);
        check_chain(P, x, &depth);
    }
    return x;
}

static tnode *parse_mul(parser *P) {
    tnode *x = parse_power(P);
    int depth = 0;
    while (is(P, T_MUL)) {
        const token *t = peek(P, 0);
        P->cur++;
        int op = t->vn == 2 ? OP_FLOORDIV : t->v[0] == '*' ? OP_MUL : t->v[0] == '/' ? OP_DIV : OP_MOD;
        x = bin(P, op, x, parse_power(P), t->pos);
        check_chain(P, x, &depth);
    }
    return x;
}

static tnode *parse_add(parser *P) {
    tnode *x = parse_mul(P);
    int depth = 0;
    while (is(P, T_ADD)) {
        const token *t = peek(P, 0);
        P->cur++;
        int op = t->v[0] == '+' ? OP_ADD : t->v[0] == '-' ? OP_SUB : OP_CONCAT;
        x = bin(P, op, x, parse_mul(P), t->pos);
        check_chain(P, x, &depth);
    }
    return x;
}

static tnode *parse_compare(parser *P) {
    tnode *x = parse_add(P);
    int depth = 0;
    while (true) {
        const token *t = peek(P, 0);
        int op;
        if (is_ident(P, "not") && tok_is_ident(peek(P, 1), "in")) {
            op = OP_NOTIN;
            P->cur += 2;
        } else if (is_ident(P, "in")) {
            op = OP_IN;
            P->cur++;
        } else if (is(P, T_CMP)) {
            P->cur++;
            op = t->v[0] == '=' ? OP_EQ : t->v[0] == '!' ? OP_NE : t->v[0] == '<' ? (t->vn == 2 ? OP_LE : OP_LT)
                                                                                 : (t->vn == 2 ? OP_GE : OP_GT);
        } else {
            break;
        }
        x = bin(P, op, x, parse_add(P), t->pos);
        check_chain(P, x, &depth);
    }
    return x;
}

static tnode *parse_not(parser *P) {
    if (is_ident(P, "not")) {
        size_t pos = cur_pos(P);
        enter(P);
        P->cur++;
        tnode *x = mk(P, N_UNARY, pos);
        x->op = OP_NOT;
        x->a = parse_not(P);
        leave(P);
        return x;
    }
    return parse_compare(P);
}

static tnode *parse_and(parser *P) {
    tnode *x = parse_not(P);
    int depth = 0;
    while (is_ident(P, "and")) {
        size_t pos = cur_pos(P);
        P->cur++;
        x = bin(P, OP_AND, x, parse_not(P), pos);
        check_chain(P, x, &depth);
    }
    return x;
}

static tnode *parse_or(parser *P) {
    tnode *x = parse_and(P);
    int depth = 0;
    while (is_ident(P, "or")) {
        size_t pos = cur_pos(P);
        P->cur++;
        x = bin(P, OP_OR, x, parse_and(P), pos);
        check_chain(P, x, &depth);
    }
    return x;
}

static tnode *parse_expression(parser *P) {
    enter(P);
    size_t pos = cur_pos(P);
    tnode *a = parse_or(P);
    if (is_ident(P, "if")) {
        P->cur++;
        tnode *t = mk(P, N_TERNARY, pos);
        t->b = a;
        t->a = parse_or(P);
        if (is_ident(P, "else")) {
            P->cur++;
            t->c = parse_expression(P);
        } else {
            t->flag = 1; /* "x if c": undefined when c is false */
        }
        a = t;
    }
    leave(P);
    return a;
}

/* "a, b" (a tuple) or one expression; primary_only for loop targets */
static tnode *parse_seq(parser *P, bool primary_only) {
    size_t pos = cur_pos(P);
    tnode *first = primary_only ? parse_primary(P) : parse_expression(P);
    if (!is(P, T_COMMA)) return first;
    nlist l = {0};
    nl_push(P, &l, first);
    while (is(P, T_COMMA)) {
        P->cur++;
        nl_push(P, &l, primary_only ? parse_primary(P) : parse_expression(P));
    }
    tnode *x = mk(P, N_TUPLE, pos);
    x->list = l.v;
    x->n = l.n;
    return x;
}

/* ---- statements ---- */

static bool is_stmt(parser *P, const char *name) {
    const token *t = peek(P, 0);
    return t && t->type == T_OPEN_STMT && tok_is_ident(peek(P, 1), name);
}

static tnode *parse_any(parser *P);

/* Parse statements until one of the names (NULL-terminated) opens a tag. */
static void parse_body(parser *P, nlist *out, const char *const *until, const char *block, size_t open_pos) {
    while (true) {
        if (!peek(P, 0)) {
            int line, col;
            pos_linecol(P, open_pos, &line, &col);
            fail_at(P, CST_ERR_BAD_FORMAT, P->pt.n, "missing {%% %s %%} for the '%s' opened at line %d", until[0],
                    block, line);
        }
        for (const char *const *u = until; *u; u++)
            if (is_stmt(P, *u)) return;
        tnode *x = parse_any(P);
        if (x) nl_push(P, out, x);
    }
}

static void expect_end(parser *P, const char *name) {
    expect(P, T_OPEN_STMT, "'{%'");
    if (!is_ident(P, name)) fail_at(P, CST_ERR_BAD_FORMAT, cur_pos(P), "expected '%s'", name);
    P->cur++;
    expect(P, T_CLOSE_STMT, "'%}'");
}

static tnode *parse_if_rest(parser *P, size_t pos) {
    enter(P);
    tnode *x = mk(P, N_IF, pos);
    x->a = parse_expression(P);
    expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const until[] = {"endif", "elif", "else", NULL};
    nlist body = {0}, alt = {0};
    parse_body(P, &body, until, "if", pos);
    if (is_stmt(P, "elif")) {
        size_t p2 = cur_pos(P);
        P->cur += 2;
        nl_push(P, &alt, parse_if_rest(P, p2));
    } else if (is_stmt(P, "else")) {
        P->cur += 2;
        expect(P, T_CLOSE_STMT, "'%}'");
        static const char *const until2[] = {"endif", NULL};
        parse_body(P, &alt, until2, "if", pos);
    }
    x->list = body.v;
    x->n = body.n;
    x->list2 = alt.v;
    x->n2 = alt.n;
    leave(P);
    return x;
}

static void check_target(parser *P, const tnode *x, bool allow_member, size_t pos) {
    if (x->kind == N_IDENT) return;
    if (x->kind == N_TUPLE) {
        for (int i = 0; i < x->n; i++)
            if (x->list[i]->kind != N_IDENT) fail_at(P, CST_ERR_BAD_FORMAT, pos, "can only unpack into names");
        return;
    }
    if (allow_member && x->kind == N_MEMBER && !x->flag && x->b->kind == N_STR) return;
    fail_at(P, CST_ERR_BAD_FORMAT, pos, "cannot assign to this expression");
}

static void note_macro(parser *P, const char *s, size_t n, size_t pos) {
    if (P->nmacros == P->capmacros) {
        size_t nc = P->capmacros ? P->capmacros * 2 : 8;
        void *np = realloc(P->macros, nc * sizeof *P->macros);
        if (!np) fail_at(P, CST_ERR_NOMEM, pos, "out of memory");
        P->macros = np;
        P->capmacros = nc;
    }
    P->macros[P->nmacros].name = s;
    P->macros[P->nmacros].n = n;
    P->nmacros++;
}

static tnode *parse_statement(parser *P) {
    size_t pos = cur_pos(P);
    P->cur++; /* {% */
    const token *t = peek(P, 0);
    if (!t) fail_at(P, CST_ERR_BAD_FORMAT, pos, "unexpected end of template after '{%%'");
    if (t->type != T_IDENT) fail_at(P, CST_ERR_BAD_FORMAT, t->pos, "expected a statement name after '{%%'");
#define NAME_IS(z) (t->vn == strlen(z) && !memcmp(t->v, z, t->vn))
    P->cur++;
    if (NAME_IS("set")) {
        enter(P);
        tnode *x = mk(P, N_SET, pos);
        x->a = parse_seq(P, false);
        check_target(P, x->a, true, pos);
        if (is(P, T_EQUALS)) {
            P->cur++;
            x->b = parse_seq(P, false);
            expect(P, T_CLOSE_STMT, "'%}'");
        } else {
            if (x->a->kind != N_IDENT) fail_at(P, CST_ERR_BAD_FORMAT, pos, "a block set needs a plain name");
            expect(P, T_CLOSE_STMT, "'=' or '%}'");
            static const char *const until[] = {"endset", NULL};
            nlist body = {0};
            parse_body(P, &body, until, "set", pos);
            x->list = body.v;
            x->n = body.n;
            expect_end(P, "endset");
        }
        leave(P);
        return x;
    }
    if (NAME_IS("if")) {
        tnode *x = parse_if_rest(P, pos);
        expect_end(P, "endif");
        return x;
    }
    if (NAME_IS("for")) {
        enter(P);
        tnode *x = mk(P, N_FOR, pos);
        x->a = parse_seq(P, true);
        check_target(P, x->a, false, pos);
        if (!is_ident(P, "in")) fail_at(P, CST_ERR_BAD_FORMAT, cur_pos(P), "expected 'in' in the for loop");
        P->cur++;
        tnode *it = parse_expression(P);
        if (it->kind == N_TERNARY && it->flag) { /* for x in xs if cond */
            x->b = it->b;
            x->c = it->a;
        } else {
            x->b = it;
        }
        if (is_ident(P, "recursive")) fail_at(P, CST_ERR_UNSUPPORTED, cur_pos(P), "recursive loops are not supported");
        expect(P, T_CLOSE_STMT, "'%}'");
        static const char *const until[] = {"endfor", "else", NULL};
        nlist body = {0}, alt = {0};
        P->loop_depth++;
        parse_body(P, &body, until, "for", pos);
        P->loop_depth--;
        if (is_stmt(P, "else")) {
            P->cur += 2;
            expect(P, T_CLOSE_STMT, "'%}'");
            static const char *const until2[] = {"endfor", NULL};
            parse_body(P, &alt, until2, "for", pos);
        }
        expect_end(P, "endfor");
        x->list = body.v;
        x->n = body.n;
        x->list2 = alt.v;
        x->n2 = alt.n;
        leave(P);
        return x;
    }
    if (NAME_IS("macro")) {
        enter(P);
        const token *nt = peek(P, 0);
        if (!nt || nt->type != T_IDENT) fail_at(P, CST_ERR_BAD_FORMAT, pos, "expected a macro name");
        P->cur++;
        tnode *x = mk(P, N_MACRO, pos);
        x->s = p_strdup(P, nt->v, nt->vn);
        x->sn = nt->vn;
        note_macro(P, x->s, x->sn, pos);
        nlist params = {0}, body = {0};
        parse_args(P, &params, true);
        expect(P, T_CLOSE_STMT, "'%}'");
        static const char *const until[] = {"endmacro", NULL};
        int ld = P->loop_depth;
        P->loop_depth = 0;
        parse_body(P, &body, until, "macro", pos);
        P->loop_depth = ld;
        expect_end(P, "endmacro");
        x->list = params.v;
        x->n = params.n;
        x->list2 = body.v;
        x->n2 = body.n;
        leave(P);
        return x;
    }
    if (NAME_IS("call")) {
        enter(P);
        tnode *x = mk(P, N_CALLBLOCK, pos);
        nlist params = {0}, body = {0};
        if (is(P, T_LPAREN)) parse_args(P, &params, true);
        const token *nt = peek(P, 0);
        if (!nt || nt->type != T_IDENT) fail_at(P, CST_ERR_BAD_FORMAT, pos, "expected a macro name after 'call'");
        tnode *callee = parse_primary(P);
        tnode *call = mk(P, N_CALL, nt->pos);
        call->a = callee;
        nlist args = {0};
        parse_args(P, &args, false);
        call->list = args.v;
        call->n = args.n;
        note_call(P, callee, nt->pos);
        expect(P, T_CLOSE_STMT, "'%}'");
        static const char *const until[] = {"endcall", NULL};
        int ld = P->loop_depth;
        P->loop_depth = 0;
        parse_body(P, &body, until, "call", pos);
        P->loop_depth = ld;
        expect_end(P, "endcall");
        x->a = call;
        x->list = params.v;
        x->n = params.n;
        x->list2 = body.v;
        x->n2 = body.n;
        leave(P);
        return x;
    }
    if (NAME_IS("filter")) {
        enter(P);
        const token *ft = peek(P, 0);
        if (!ft || ft->type != T_IDENT) fail_at(P, CST_ERR_BAD_FORMAT, pos, "expected a filter name");
        P->cur++;
        int id = tpl_filter_id(ft->v, ft->vn);
        if (id < 0)
            fail_at(P, CST_ERR_UNSUPPORTED, ft->pos, "unsupported filter '%.*s'", (int)CST_MIN(ft->vn, 40), ft->v);
        tnode *f = mk(P, N_FILTER, ft->pos);
        f->s = p_strdup(P, ft->v, ft->vn);
        f->sn = ft->vn;
        f->fid = id;
        if (is(P, T_LPAREN)) {
            nlist args = {0};
            parse_args(P, &args, false);
            f->list = args.v;
            f->n = args.n;
            f->flag = 1;
        }
        expect(P, T_CLOSE_STMT, "'%}'");
        tnode *x = mk(P, N_FILTERBLOCK, pos);
        x->a = f;
        static const char *const until[] = {"endfilter", NULL};
        nlist body = {0};
        parse_body(P, &body, until, "filter", pos);
        expect_end(P, "endfilter");
        x->list = body.v;
        x->n = body.n;
        leave(P);
        return x;
    }
    if (NAME_IS("break") || NAME_IS("continue")) {
        if (!P->loop_depth)
            fail_at(P, CST_ERR_BAD_FORMAT, pos, "'%.*s' outside a for loop", (int)t->vn, t->v);
        tnode *x = mk(P, NAME_IS("break") ? N_BREAK : N_CONTINUE, pos);
        expect(P, T_CLOSE_STMT, "'%}'");
        return x;
    }
    if (NAME_IS("do")) {
        tnode *x = mk(P, N_DO, pos);
        x->a = parse_expression(P);
        expect(P, T_CLOSE_STMT, "'%}'");
        return x;
    }
    static const char *const closers[] = {"endif", "elif", "else", "endfor", "endset", "endmacro",
                                          "endcall", "endfilter"};
    for (size_t i = 0; i < CST_ARRAY_LEN(closers); i++)
        if (NAME_IS(closers[i])) fail_at(P, CST_ERR_BAD_FORMAT, pos, "unexpected '%s'", closers[i]);
    fail_at(P, CST_ERR_UNSUPPORTED, t->pos, "unsupported statement '%.*s'", (int)CST_MIN(t->vn, 40), t->v);
#undef NAME_IS
}

static tnode *parse_any(parser *P) {
    const token *t = peek(P, 0);
    switch (t->type) {
    case T_COMMENT: P->cur++; return NULL;
    case T_TEXT: {
        P->cur++;
        tnode *x = mk(P, N_TEXT, t->pos);
        x->s = p_strdup(P, t->v, t->vn);
        x->sn = t->vn;
        return x;
    }
    case T_OPEN_STMT: return parse_statement(P);
    case T_OPEN_EXPR: {
        P->cur++;
        tnode *x = mk(P, N_OUTPUT, t->pos);
        x->a = parse_expression(P);
        expect(P, T_CLOSE_EXPR, "'}}'");
        return x;
    }
    default: fail_at(P, CST_ERR_BAD_FORMAT, t->pos, "unexpected %s", tok_name(t->type));
    }
}

cst_status cst_template_parse(const char *src, size_t len, cst_template **out, char *err, size_t errlen) {
    *out = NULL;
    if (!src && len) return CST_ERR_INVALID_ARG;
    if (len > MAX_SOURCE) {
        cst_errf(err, errlen, "template too large (%zu bytes)", len);
        return CST_ERR_INVALID_ARG;
    }
    parser *P = calloc(1, sizeof *P);
    cst_template *t = calloc(1, sizeof *t);
    ptext a = {0}, b = {0};
    if (!P || !t) {
        free(P);
        free(t);
        return CST_ERR_NOMEM;
    }
    P->src = src;
    P->src_n = len;
    P->t = t;
    P->err = err;
    P->errlen = errlen;
    P->st = CST_OK;
    if (setjmp(P->jb)) goto out;

    /* preprocess */
    if (!pt_alloc(&a, len)) goto oom;
    for (size_t i = 0; i < len; i++) {
        a.s[i] = src[i];
        a.off[i] = (uint32_t)i;
    }
    a.n = len;
    if (a.n && a.s[a.n - 1] == '\n') a.n--;
    if (!pp_lstrip(&a, &b)) goto oom;
    pt_free(&a);
    if (!pp_trim(&b, &a)) goto oom;
    pt_free(&b);
    if (!pp_generation(&a, &b)) goto oom;
    pt_free(&a);
    P->pt = b;
    b = (ptext){0};

    lex(P);
    nlist body = {0};
    while (P->cur < P->ntok) {
        tnode *x = parse_any(P);
        if (x) nl_push(P, &body, x);
    }
    t->body = body.v;
    t->n = body.n;
    for (size_t i = 0; i < P->ncalls; i++) {
        const char *nm = P->calls[i].name;
        size_t n = P->calls[i].n;
        bool ok = tpl_is_global_fn(nm, n) || (n == 6 && !memcmp(nm, "caller", 6));
        for (size_t k = 0; !ok && k < P->nmacros; k++)
            ok = P->macros[k].n == n && !memcmp(P->macros[k].name, nm, n);
        if (!ok) fail_at(P, CST_ERR_UNSUPPORTED, P->calls[i].pos, "unknown function '%.*s'", (int)CST_MIN(n, 40), nm);
    }
    goto out;
oom:
    cst_errf(err, errlen, "out of memory while parsing the template");
    P->st = CST_ERR_NOMEM;
out:;
    cst_status st = P->st;
    pt_free(&a);
    pt_free(&b);
    pt_free(&P->pt);
    free(P->tok);
    free(P->calls);
    free(P->macros);
    free(P);
    if (st != CST_OK) {
        cst_template_free(t);
        return st;
    }
    *out = t;
    return CST_OK;
}

void cst_template_free(cst_template *t) {
    if (!t) return;
    tpl_arena_free(&t->arena);
    free(t);
}
