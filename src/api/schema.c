/* schema.c: JSON Schema -> grammar compiler and its cache (see schema.h).
 * One recursive walk over the schema emits grammar rules through the
 * builder; $ref targets are memoized by their pointer text (a rule id is
 * reserved before the target is compiled, so recursion closes on itself);
 * string patterns and formats go through one regex -> rules path.
 */
#include "schema.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *ref;
    int32_t rule;
} refmemo;

typedef struct {
    cst_gbuild *b;
    json_t *root;
    char *err;
    size_t errlen;
    bool failed;
    int depth, ref_depth;
    refmemo *refs;
    int n_refs, cap_refs;
    /* shared rules, -1 until first use */
    int32_t r_ws, r_any, r_string, r_chars, r_char, r_utf8, r_utf8_safe, r_number, r_int, r_digits;
} sc;

static int32_t fail(sc *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int32_t fail(sc *c, const char *path, const char *fmt, ...) {
    if (c->failed) return -1;
    c->failed = true;
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s", path, m);
    return -1;
}

static int32_t rule(sc *c) {
    int32_t r = cst_gb_rule(c->b);
    if (r < 0 && !c->failed) {
        c->failed = true;
        snprintf(c->err, c->errlen, "the schema is too large (more than %d grammar rules or %d elements)",
                 CST_GRAMMAR_MAX_RULES, CST_GRAMMAR_MAX_ELEMS);
    }
    return r;
}

static int32_t lit_rule(sc *c, const char *s) {
    int32_t r = rule(c);
    if (r >= 0) cst_gb_lit(c->b, r, s, strlen(s));
    return r;
}

/* ---- path helpers ---------------------------------------------------------- */
typedef struct {
    char s[512];
    size_t n;
} jpath;
#define CST_MIN_SZ(a, b) ((a) < (b) ? (a) : (b))

static size_t path_push(jpath *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(jpath *p, const char *fmt, ...) {
    size_t old = p->n;
    if (p->n < sizeof p->s - 1) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(p->s + p->n, sizeof p->s - p->n, fmt, ap);
        va_end(ap);
        if (k > 0) p->n = CST_MIN_SZ(p->n + (size_t)k, sizeof p->s - 1);
    }
    return old;
}
static void path_pop(jpath *p, size_t old) {
    p->n = old;
    p->s[old] = 0;
}

/* ---- shared JSON rules ------------------------------------------------------- */
static int32_t ws(sc *c) { /* "" | " " */
    if (c->r_ws < 0) {
        c->r_ws = rule(c);
        if (c->r_ws < 0) return -1;
        cst_gb_alt(c->b, c->r_ws);
        cst_gb_lit(c->b, c->r_ws, " ", 1);
    }
    return c->r_ws;
}

/* any valid UTF-8 multi-byte character */
static int32_t utf8(sc *c) {
    if (c->r_utf8 < 0) {
        int32_t r = c->r_utf8 = rule(c);
        if (r < 0) return -1;
        cst_gbuild *b = c->b;
        cst_gb_range(b, r, 0xC2, 0xDF), cst_gb_range(b, r, 0x80, 0xBF);
        cst_gb_alt(b, r), cst_gb_lit(b, r, "\xE0", 1), cst_gb_range(b, r, 0xA0, 0xBF), cst_gb_range(b, r, 0x80, 0xBF);
        cst_gb_alt(b, r), cst_gb_range(b, r, 0xE1, 0xEC), cst_gb_range(b, r, 0x80, 0xBF), cst_gb_range(b, r, 0x80, 0xBF);
        cst_gb_alt(b, r), cst_gb_lit(b, r, "\xED", 1), cst_gb_range(b, r, 0x80, 0x9F), cst_gb_range(b, r, 0x80, 0xBF);
        cst_gb_alt(b, r), cst_gb_range(b, r, 0xEE, 0xEF), cst_gb_range(b, r, 0x80, 0xBF), cst_gb_range(b, r, 0x80, 0xBF);
        cst_gb_alt(b, r), cst_gb_lit(b, r, "\xF0", 1), cst_gb_range(b, r, 0x90, 0xBF), cst_gb_range(b, r, 0x80, 0xBF),
            cst_gb_range(b, r, 0x80, 0xBF);
        cst_gb_alt(b, r), cst_gb_range(b, r, 0xF1, 0xF3), cst_gb_range(b, r, 0x80, 0xBF), cst_gb_range(b, r, 0x80, 0xBF),
            cst_gb_range(b, r, 0x80, 0xBF);
        cst_gb_alt(b, r), cst_gb_lit(b, r, "\xF4", 1), cst_gb_range(b, r, 0x80, 0x8F), cst_gb_range(b, r, 0x80, 0xBF),
            cst_gb_range(b, r, 0x80, 0xBF);
    }
    return c->r_utf8;
}

/* non-ASCII characters no regex class of ours could exclude: U+00C0..U+07FF
 * and U+4000..U+9FFF (no whitespace, no line terminators, not \w) */
static int32_t utf8_safe(sc *c) {
    if (c->r_utf8_safe < 0) {
        int32_t r = c->r_utf8_safe = rule(c);
        if (r < 0) return -1;
        cst_gb_range(c->b, r, 0xC3, 0xDF), cst_gb_range(c->b, r, 0x80, 0xBF);
        cst_gb_alt(c->b, r), cst_gb_range(c->b, r, 0xE4, 0xE9), cst_gb_range(c->b, r, 0x80, 0xBF),
            cst_gb_range(c->b, r, 0x80, 0xBF);
    }
    return c->r_utf8_safe;
}

/* one character inside a JSON string (decoded: any Unicode scalar but the
 * C0 controls are written raw; escapes \" \\ \/ \b \f \n \r \t) */
static int32_t jchar(sc *c) {
    if (c->r_char < 0) {
        int32_t r = c->r_char = rule(c);
        int32_t u = utf8(c);
        if (r < 0 || u < 0) return -1;
        cst_gb_range(c->b, r, 0x20, 0x21);
        cst_gb_alt(c->b, r), cst_gb_range(c->b, r, 0x23, 0x5B);
        cst_gb_alt(c->b, r), cst_gb_range(c->b, r, 0x5D, 0x7E);
        cst_gb_alt(c->b, r), cst_gb_lit(c->b, r, "\\", 1);
        uint8_t set[32] = {0};
        for (const char *e = "\"\\/bfnrt"; *e; e++) set[(uint8_t)*e >> 3] |= (uint8_t)(1u << (*e & 7));
        cst_gb_class(c->b, r, set);
        cst_gb_alt(c->b, r), cst_gb_ref(c->b, r, u);
    }
    return c->r_char;
}

static int32_t jchars(sc *c) { /* jchar* */
    if (c->r_chars < 0) {
        int32_t ch = jchar(c);
        int32_t r = c->r_chars = rule(c);
        if (r < 0 || ch < 0) return -1;
        cst_gb_alt(c->b, r), cst_gb_ref(c->b, r, ch), cst_gb_ref(c->b, r, r);
    }
    return c->r_chars;
}

static int32_t jstring(sc *c) {
    if (c->r_string < 0) {
        int32_t cs = jchars(c);
        int32_t r = c->r_string = rule(c);
        if (r < 0 || cs < 0) return -1;
        cst_gb_lit(c->b, r, "\"", 1), cst_gb_ref(c->b, r, cs), cst_gb_lit(c->b, r, "\"", 1);
    }
    return c->r_string;
}

static int32_t digits(sc *c) { /* [0-9]* */
    if (c->r_digits < 0) {
        int32_t r = c->r_digits = rule(c);
        if (r < 0) return -1;
        cst_gb_alt(c->b, r), cst_gb_range(c->b, r, '0', '9'), cst_gb_ref(c->b, r, r);
    }
    return c->r_digits;
}

/* [0-9]{0,k} */
static int32_t repeat(sc *c, int32_t a, long lo, long hi);
static int32_t digits_upto(sc *c, long k) {
    int32_t d = rule(c);
    if (d < 0) return -1;
    cst_gb_range(c->b, d, '0', '9');
    return repeat(c, d, 0, k);
}

/* -?(0|[1-9][0-9]{0,14}): at most 15 digits, so that every integer we
 * write is exact in a double (JavaScript's JSON.parse) */
#define INT_DIGITS 15
static int32_t jint(sc *c) {
    if (c->r_int < 0) {
        int32_t d = digits_upto(c, INT_DIGITS - 1);
        int32_t r = c->r_int = rule(c);
        if (r < 0 || d < 0) return -1;
        cst_gb_lit(c->b, r, "0", 1);
        cst_gb_alt(c->b, r), cst_gb_range(c->b, r, '1', '9'), cst_gb_ref(c->b, r, d);
        cst_gb_alt(c->b, r), cst_gb_lit(c->b, r, "-0", 2);
        cst_gb_alt(c->b, r), cst_gb_lit(c->b, r, "-", 1), cst_gb_range(c->b, r, '1', '9'), cst_gb_ref(c->b, r, d);
    }
    return c->r_int;
}

static int32_t jnumber(sc *c) { /* int (.digits+)? ([eE][+-]?digits+)? */
    if (c->r_number < 0) {
        int32_t i = jint(c), d = digits(c);
        int32_t frac = rule(c), exp = rule(c), sign = rule(c);
        int32_t r = c->r_number = rule(c);
        if (r < 0 || i < 0 || d < 0 || frac < 0 || exp < 0 || sign < 0) return -1;
        cst_gb_alt(c->b, frac), cst_gb_lit(c->b, frac, ".", 1), cst_gb_range(c->b, frac, '0', '9'), cst_gb_ref(c->b, frac, d);
        cst_gb_alt(c->b, sign), cst_gb_lit(c->b, sign, "+", 1);
        cst_gb_alt(c->b, sign), cst_gb_lit(c->b, sign, "-", 1);
        uint8_t e[32] = {0};
        e['e' >> 3] |= (uint8_t)(1u << ('e' & 7));
        e['E' >> 3] |= (uint8_t)(1u << ('E' & 7));
        int32_t d1 = digits_upto(c, 1); /* exponents of one or two digits: never an overflow */
        if (d1 < 0) return -1;
        cst_gb_alt(c->b, exp), cst_gb_class(c->b, exp, e), cst_gb_ref(c->b, exp, sign), cst_gb_range(c->b, exp, '0', '9'),
            cst_gb_ref(c->b, exp, d1);
        cst_gb_ref(c->b, r, i), cst_gb_ref(c->b, r, frac), cst_gb_ref(c->b, r, exp);
    }
    return c->r_number;
}

/* any JSON value */
static int32_t jany(sc *c) {
    if (c->r_any >= 0) return c->r_any;
    int32_t v = c->r_any = rule(c);
    int32_t obj = rule(c), mem = rule(c), arr = rule(c), el = rule(c);
    int32_t s = jstring(c), n = jnumber(c), w = ws(c);
    if (v < 0 || obj < 0 || mem < 0 || arr < 0 || el < 0 || s < 0 || n < 0 || w < 0) return -1;
    cst_gbuild *b = c->b;
    cst_gb_ref(b, v, s);
    cst_gb_alt(b, v), cst_gb_ref(b, v, n);
    cst_gb_alt(b, v), cst_gb_ref(b, v, obj);
    cst_gb_alt(b, v), cst_gb_ref(b, v, arr);
    cst_gb_alt(b, v), cst_gb_lit(b, v, "true", 4);
    cst_gb_alt(b, v), cst_gb_lit(b, v, "false", 5);
    cst_gb_alt(b, v), cst_gb_lit(b, v, "null", 4);
    /* mem ::= "" | "," ws string ":" ws value mem */
    cst_gb_alt(b, mem), cst_gb_lit(b, mem, ",", 1), cst_gb_ref(b, mem, w), cst_gb_ref(b, mem, s), cst_gb_lit(b, mem, ":", 1),
        cst_gb_ref(b, mem, w), cst_gb_ref(b, mem, v), cst_gb_ref(b, mem, mem);
    cst_gb_lit(b, obj, "{}", 2);
    cst_gb_alt(b, obj), cst_gb_lit(b, obj, "{", 1), cst_gb_ref(b, obj, s), cst_gb_lit(b, obj, ":", 1), cst_gb_ref(b, obj, w),
        cst_gb_ref(b, obj, v), cst_gb_ref(b, obj, mem), cst_gb_lit(b, obj, "}", 1);
    cst_gb_alt(b, el), cst_gb_lit(b, el, ",", 1), cst_gb_ref(b, el, w), cst_gb_ref(b, el, v), cst_gb_ref(b, el, el);
    cst_gb_lit(b, arr, "[]", 2);
    cst_gb_alt(b, arr), cst_gb_lit(b, arr, "[", 1), cst_gb_ref(b, arr, v), cst_gb_ref(b, arr, el), cst_gb_lit(b, arr, "]", 1);
    return v;
}

/* ======================================================================
 * Regex (the pattern subset) -> rules over JSON string contents
 * ====================================================================== */
typedef struct {
    uint8_t ascii[16]; /* bit per ASCII code */
    bool nonascii;     /* the safe non-ASCII letters (utf8_safe) */
} cset;

static void cs_add(cset *s, unsigned ch) {
    if (ch < 128) s->ascii[ch >> 3] |= (uint8_t)(1u << (ch & 7));
}
static bool cs_has(const cset *s, unsigned ch) { return ch < 128 && (s->ascii[ch >> 3] >> (ch & 7) & 1); }
static void cs_range(cset *s, unsigned lo, unsigned hi) {
    for (unsigned ch = lo; ch <= hi && ch < 128; ch++) cs_add(s, ch);
}
static void cs_negate(cset *s) {
    for (int i = 0; i < 16; i++) s->ascii[i] = (uint8_t)~s->ascii[i];
    s->nonascii = !s->nonascii;
}
static void cs_merge(cset *a, const cset *b) {
    for (int i = 0; i < 16; i++) a->ascii[i] |= b->ascii[i];
    a->nonascii |= b->nonascii;
}
static cset cs_class(char k) { /* \d \w \s and their negations */
    cset s = {0};
    char lk = (char)tolower((unsigned char)k);
    if (lk == 'd') cs_range(&s, '0', '9');
    else if (lk == 'w') cs_range(&s, '0', '9'), cs_range(&s, 'a', 'z'), cs_range(&s, 'A', 'Z'), cs_add(&s, '_');
    else cs_add(&s, ' '), cs_range(&s, 9, 13);
    if (isupper((unsigned char)k)) cs_negate(&s);
    return s;
}

static void next_alt(sc *c, int32_t r, bool *first) {
    if (!*first) cst_gb_alt(c->b, r);
    *first = false;
}

/* a rule matching one character of the set, as JSON string text */
static int32_t cs_rule(sc *c, const cset *s) {
    int32_t r = rule(c);
    if (r < 0) return -1;
    uint8_t plain[32] = {0};
    bool any_plain = false, first = true;
    for (unsigned ch = 0x20; ch < 0x7F; ch++)
        if (cs_has(s, ch) && ch != '"' && ch != '\\') {
            plain[ch >> 3] |= (uint8_t)(1u << (ch & 7));
            any_plain = true;
        }
    if (any_plain) next_alt(c, r, &first), cst_gb_class(c->b, r, plain);
    if (cs_has(s, '"')) next_alt(c, r, &first), cst_gb_lit(c->b, r, "\\\"", 2);
    if (cs_has(s, '\\')) next_alt(c, r, &first), cst_gb_lit(c->b, r, "\\\\", 2);
    for (unsigned ch = 0; ch < 0x20; ch++)
        if (cs_has(s, ch)) {
            char e[8];
            if (ch == '\n') snprintf(e, sizeof e, "\\n");
            else if (ch == '\t') snprintf(e, sizeof e, "\\t");
            else if (ch == '\r') snprintf(e, sizeof e, "\\r");
            else snprintf(e, sizeof e, "\\u%04x", ch);
            next_alt(c, r, &first), cst_gb_lit(c->b, r, e, strlen(e));
        }
    if (cs_has(s, 0x7F)) next_alt(c, r, &first), cst_gb_lit(c->b, r, "\x7f", 1);
    if (s->nonascii) {
        int32_t u = utf8_safe(c);
        if (u < 0) return -1;
        next_alt(c, r, &first), cst_gb_ref(c->b, r, u);
    }
    if (first) return fail(c, "pattern", "a character class that matches nothing");
    return r;
}

typedef struct {
    sc *c;
    const char *re;
    size_t i, n;
    const char *path;
} rx;

static int32_t rx_alt(rx *x, int depth, int *n_branches);

static int32_t rx_fail(rx *x, const char *what) {
    return fail(x->c, x->path, "pattern: %s at offset %zu of '%s'", what, x->i, x->re);
}

/* one (possibly multi-byte) literal character as JSON string text */
static int32_t rx_lit_cp(rx *x, unsigned cp) {
    if (cp < 128) {
        cset s = {0};
        cs_add(&s, cp);
        return cs_rule(x->c, &s);
    }
    char buf[4];
    size_t n;
    if (cp < 0x800) buf[0] = (char)(0xC0 | cp >> 6), buf[1] = (char)(0x80 | (cp & 63)), n = 2;
    else if (cp < 0x10000) {
        if (cp >= 0xD800 && cp <= 0xDFFF) return rx_fail(x, "a surrogate code point");
        buf[0] = (char)(0xE0 | cp >> 12), buf[1] = (char)(0x80 | (cp >> 6 & 63)), buf[2] = (char)(0x80 | (cp & 63)), n = 3;
    } else {
        buf[0] = (char)(0xF0 | cp >> 18), buf[1] = (char)(0x80 | (cp >> 12 & 63)), buf[2] = (char)(0x80 | (cp >> 6 & 63)),
        buf[3] = (char)(0x80 | (cp & 63)), n = 4;
    }
    int32_t r = rule(x->c);
    if (r >= 0) cst_gb_lit(x->c->b, r, buf, n);
    return r;
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* decode one UTF-8 character of the pattern */
static long rx_utf8(rx *x) {
    const uint8_t *s = (const uint8_t *)x->re + x->i;
    size_t left = x->n - x->i;
    unsigned cp;
    size_t k;
    if (s[0] < 0x80) cp = s[0], k = 1;
    else if ((s[0] & 0xE0) == 0xC0) cp = s[0] & 0x1F, k = 2;
    else if ((s[0] & 0xF0) == 0xE0) cp = s[0] & 0x0F, k = 3;
    else if ((s[0] & 0xF8) == 0xF0) cp = s[0] & 0x07, k = 4;
    else return -1;
    if (k > left) return -1;
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xC0) != 0x80) return -1;
        cp = cp << 6 | (s[j] & 63);
    }
    x->i += k;
    return (long)cp;
}

/* an escape after '\': a class (*is_set) or a code point */
static bool rx_escape(rx *x, cset *set, bool *is_set, unsigned *cp, bool in_class) {
    *is_set = false;
    if (x->i >= x->n) return rx_fail(x, "a trailing backslash"), false;
    char e = x->re[x->i++];
    switch (e) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
        *set = cs_class(e);
        *is_set = true;
        return true;
    case 'n': *cp = '\n'; return true;
    case 't': *cp = '\t'; return true;
    case 'r': *cp = '\r'; return true;
    case 'f': *cp = '\f'; return true;
    case 'v': *cp = '\v'; return true;
    case '0': *cp = 0; return true;
    case 'x':
    case 'u': {
        int nd = e == 'x' ? 2 : 4;
        unsigned v = 0;
        for (int k = 0; k < nd; k++) {
            int h = x->i < x->n ? hexval(x->re[x->i]) : -1;
            if (h < 0) return rx_fail(x, "a bad hex escape"), false;
            v = v << 4 | (unsigned)h;
            x->i++;
        }
        *cp = v;
        return true;
    }
    case 'b':
        if (in_class) {
            *cp = '\b';
            return true;
        }
        return rx_fail(x, "word boundaries (\\b) are not supported"), false;
    default:
        if (strchr("^$\\.*+?()[]{}|/-", e)) {
            *cp = (unsigned char)e;
            return true;
        }
        rx_fail(x, "this escape is not supported (back-references, \\B, \\p, ...)");
        return false;
    }
}

static int32_t rx_class(rx *x) { /* after '[' */
    cset s = {0};
    bool neg = false;
    if (x->i < x->n && x->re[x->i] == '^') neg = true, x->i++;
    bool first = true;
    while (x->i < x->n && (x->re[x->i] != ']' || first)) {
        first = false;
        unsigned lo;
        bool is_set = false;
        cset sub;
        if (x->re[x->i] == '\\') {
            x->i++;
            if (!rx_escape(x, &sub, &is_set, &lo, true)) return -1;
        } else {
            long cp = rx_utf8(x);
            if (cp < 0) return rx_fail(x, "invalid UTF-8");
            lo = (unsigned)cp;
        }
        if (is_set) {
            cs_merge(&s, &sub);
            continue;
        }
        unsigned hi = lo;
        if (x->i + 1 < x->n && x->re[x->i] == '-' && x->re[x->i + 1] != ']') {
            x->i++;
            if (x->re[x->i] == '\\') {
                x->i++;
                if (!rx_escape(x, &sub, &is_set, &hi, true)) return -1;
                if (is_set) return rx_fail(x, "a class escape as a range end");
            } else {
                long cp = rx_utf8(x);
                if (cp < 0) return rx_fail(x, "invalid UTF-8");
                hi = (unsigned)cp;
            }
            if (hi < lo) return rx_fail(x, "a range out of order");
        }
        if (hi >= 128) return rx_fail(x, "non-ASCII characters in a class are not supported");
        cs_range(&s, lo, hi);
    }
    if (x->i >= x->n) return rx_fail(x, "an unterminated class");
    x->i++; /* ']' */
    if (neg) cs_negate(&s);
    return cs_rule(x->c, &s);
}

static int32_t rx_atom(rx *x, int depth) {
    char ch = x->re[x->i];
    if (ch == '(') {
        x->i++;
        if (x->i < x->n && x->re[x->i] == '?') {
            if (x->i + 1 < x->n && x->re[x->i + 1] == ':') x->i += 2;
            else return rx_fail(x, "lookaround and named groups are not supported");
        }
        int nb;
        int32_t r = rx_alt(x, depth + 1, &nb);
        if (r < 0) return -1;
        if (x->i >= x->n || x->re[x->i] != ')') return rx_fail(x, "an unbalanced parenthesis");
        x->i++;
        return r;
    }
    if (ch == '[') {
        x->i++;
        return rx_class(x);
    }
    if (ch == '.') {
        x->i++;
        cset s = {0};
        cs_add(&s, '\n'), cs_add(&s, '\r');
        cs_negate(&s);
        return cs_rule(x->c, &s);
    }
    if (ch == '\\') {
        x->i++;
        cset s;
        bool is_set;
        unsigned cp;
        if (!rx_escape(x, &s, &is_set, &cp, false)) return -1;
        return is_set ? cs_rule(x->c, &s) : rx_lit_cp(x, cp);
    }
    if (ch == '^' || ch == '$') return rx_fail(x, "anchors are supported only at the start and the end");
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{') return rx_fail(x, "a quantifier without an operand");
    if (ch == ')') return rx_fail(x, "an unbalanced parenthesis");
    long cp = rx_utf8(x);
    if (cp < 0) return rx_fail(x, "invalid UTF-8");
    return rx_lit_cp(x, (unsigned)cp);
}

static bool rx_num(rx *x, long *v) {
    if (x->i >= x->n || !isdigit((unsigned char)x->re[x->i])) return false;
    long k = 0;
    while (x->i < x->n && isdigit((unsigned char)x->re[x->i])) {
        k = k * 10 + (x->re[x->i++] - '0');
        if (k > 100000) k = 100000;
    }
    *v = k;
    return true;
}

/* atom{lo,hi} (hi < 0: unbounded) as rules */
static int32_t repeat(sc *c, int32_t a, long lo, long hi) {
    int32_t r = rule(c);
    if (r < 0) return -1;
    for (long k = 0; k < lo; k++) cst_gb_ref(c->b, r, a);
    if (hi < 0) {
        int32_t star = rule(c);
        if (star < 0) return -1;
        cst_gb_alt(c->b, star), cst_gb_ref(c->b, star, a), cst_gb_ref(c->b, star, star);
        cst_gb_ref(c->b, r, star);
    } else if (hi > lo) { /* opt_k ::= "" | a opt_{k-1} */
        int32_t prev = -1;
        for (long k = 0; k < hi - lo; k++) {
            int32_t o = rule(c);
            if (o < 0) return -1;
            cst_gb_alt(c->b, o), cst_gb_ref(c->b, o, a);
            if (prev >= 0) cst_gb_ref(c->b, o, prev);
            prev = o;
        }
        cst_gb_ref(c->b, r, prev);
    }
    return r;
}

static int32_t rx_concat(rx *x, int depth) {
    int32_t r = rule(x->c);
    if (r < 0) return -1;
    while (x->i < x->n && x->re[x->i] != '|' && x->re[x->i] != ')') {
        if (x->re[x->i] == '$' && x->i + 1 == x->n && depth == 0) break; /* the end anchor */
        int32_t a = rx_atom(x, depth);
        if (a < 0) return -1;
        long lo = 1, hi = 1;
        if (x->i < x->n) {
            char q = x->re[x->i];
            if (q == '*') lo = 0, hi = -1, x->i++;
            else if (q == '+') lo = 1, hi = -1, x->i++;
            else if (q == '?') lo = 0, hi = 1, x->i++;
            else if (q == '{') {
                size_t save = x->i++;
                if (!rx_num(x, &lo)) {
                    x->i = save;
                    return rx_fail(x, "a malformed {n,m} quantifier");
                }
                hi = lo;
                if (x->i < x->n && x->re[x->i] == ',') {
                    x->i++;
                    if (!rx_num(x, &hi)) hi = -1;
                }
                if (x->i >= x->n || x->re[x->i] != '}') return rx_fail(x, "a malformed {n,m} quantifier");
                x->i++;
                if (lo > CST_SCHEMA_MAX_ITEMS || hi > CST_SCHEMA_MAX_ITEMS)
                    return rx_fail(x, "a repetition count above 1000");
                if (hi >= 0 && hi < lo) return rx_fail(x, "a {n,m} quantifier with m < n");
            }
            if (x->i < x->n && x->re[x->i] == '?' && !(lo == 1 && hi == 1)) x->i++; /* lazy: same language */
            if (x->i < x->n && strchr("*+?{", x->re[x->i]) && !(lo == 1 && hi == 1))
                return rx_fail(x, "a quantifier after a quantifier");
        }
        if (!(lo == 1 && hi == 1)) {
            a = repeat(x->c, a, lo, hi);
            if (a < 0) return -1;
        }
        cst_gb_ref(x->c->b, r, a);
    }
    return r;
}

static int32_t rx_alt(rx *x, int depth, int *n_branches) {
    if (depth > 32) return rx_fail(x, "groups nested too deeply");
    int32_t r = rule(x->c);
    if (r < 0) return -1;
    *n_branches = 0;
    for (;;) {
        int32_t k = rx_concat(x, depth);
        if (k < 0) return -1;
        if (*n_branches) cst_gb_alt(x->c->b, r);
        cst_gb_ref(x->c->b, r, k);
        (*n_branches)++;
        if (x->i < x->n && x->re[x->i] == '|') {
            x->i++;
            continue;
        }
        return r;
    }
}

/* The contents of a string matching re (unanchored ends match anything). */
static int32_t regex_rule(sc *c, const char *re, const char *path) {
    rx x = {c, re, 0, strlen(re), path};
    bool a0 = x.n && re[0] == '^';
    if (a0) x.i = 1;
    bool a1 = x.n > x.i && re[x.n - 1] == '$' && (x.n < 2 || re[x.n - 2] != '\\');
    int nb = 0;
    int32_t body = rx_alt(&x, 0, &nb);
    if (body < 0) return -1;
    if (a1 && x.i == x.n - 1) x.i++;
    if (x.i != x.n) return rx_fail(&x, x.re[x.i] == ')' ? "an unbalanced parenthesis" : "an unexpected character");
    if (nb > 1 && (a0 || a1)) return rx_fail(&x, "anchors around a top-level '|' (wrap the alternatives in a group)");
    int32_t r = rule(c), any = jchars(c);
    if (r < 0 || any < 0) return -1;
    if (!a0) cst_gb_ref(c->b, r, any);
    cst_gb_ref(c->b, r, body);
    if (!a1) cst_gb_ref(c->b, r, any);
    return r;
}

static int32_t quoted(sc *c, int32_t inner) {
    int32_t r = rule(c);
    if (r < 0 || inner < 0) return -1;
    cst_gb_lit(c->b, r, "\"", 1), cst_gb_ref(c->b, r, inner), cst_gb_lit(c->b, r, "\"", 1);
    return r;
}

static const struct {
    const char *name, *re;
} k_formats[] = {
    /* days 01-28 are valid in every month: a subset of the format */
    {"date", "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$"},
    {"time", "^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"},
    {"date-time", "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"},
    {"uuid", "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
    {"email", "^[a-z0-9]+(\\.[a-z0-9]+)*@[a-z0-9]+(-[a-z0-9]+)*(\\.[a-z0-9]+(-[a-z0-9]+)*)*\\.[a-z]{2,}$"},
};

/* ======================================================================
 * Integer ranges
 * ====================================================================== */
/* digits d..d of length n */
static void fill(char *s, int n, char d) {
    for (int i = 0; i < n; i++) s[i] = d;
    s[n] = 0;
}

/* decimal strings a <= b of equal length: a rule for every string in [a, b] */
static int32_t same_len(sc *c, const char *a, const char *b) {
    int32_t r = rule(c);
    if (r < 0) return -1;
    size_t n = strlen(a);
    if (n == 1) {
        cst_gb_range(c->b, r, (uint8_t)a[0], (uint8_t)b[0]);
        return r;
    }
    if (a[0] == b[0]) {
        int32_t t = same_len(c, a + 1, b + 1);
        if (t < 0) return -1;
        cst_gb_lit(c->b, r, a, 1), cst_gb_ref(c->b, r, t);
        return r;
    }
    char nines[24], zeros[24];
    fill(nines, (int)n - 1, '9');
    fill(zeros, (int)n - 1, '0');
    int32_t lo = same_len(c, a + 1, nines), hi = same_len(c, zeros, b + 1);
    if (lo < 0 || hi < 0) return -1;
    cst_gb_lit(c->b, r, a, 1), cst_gb_ref(c->b, r, lo);
    if (b[0] - a[0] > 1) {
        cst_gb_alt(c->b, r), cst_gb_range(c->b, r, (uint8_t)(a[0] + 1), (uint8_t)(b[0] - 1));
        for (size_t k = 1; k < n; k++) cst_gb_range(c->b, r, '0', '9');
    }
    cst_gb_alt(c->b, r), cst_gb_lit(c->b, r, b, 1), cst_gb_ref(c->b, r, hi);
    return r;
}

/* every integer in [lo, hi] (0 <= lo; unbounded: any larger) as digits */
static int32_t uint_range(sc *c, uint64_t lo, uint64_t hi, bool unbounded) {
    int32_t r = rule(c);
    if (r < 0) return -1;
    bool first = true;
    char a[24], b[24];
    int la = snprintf(a, sizeof a, "%" PRIu64, lo);
    int lb = unbounded ? la : snprintf(b, sizeof b, "%" PRIu64, hi);
    for (int L = la; L <= lb; L++) {
        char x[24], y[24];
        if (L == la) snprintf(x, sizeof x, "%s", a);
        else fill(x, L, '0'), x[0] = '1';
        if (!unbounded && L == lb) snprintf(y, sizeof y, "%s", b);
        else fill(y, L, '9');
        int32_t t = same_len(c, x, y);
        if (t < 0) return -1;
        if (!first) cst_gb_alt(c->b, r);
        first = false;
        cst_gb_ref(c->b, r, t);
    }
    if (unbounded && la < INT_DIGITS) { /* longer, up to INT_DIGITS digits */
        int32_t d = digits_upto(c, INT_DIGITS - la - 1);
        if (d < 0) return -1;
        cst_gb_alt(c->b, r), cst_gb_range(c->b, r, '1', '9');
        for (int k = 0; k < la; k++) cst_gb_range(c->b, r, '0', '9');
        cst_gb_ref(c->b, r, d);
    }
    return r;
}

#define BIG ((int64_t)1 << 53)
/* integers in [lo, hi]; has_lo/has_hi false: unbounded on that side */
static int32_t int_range(sc *c, bool has_lo, int64_t lo, bool has_hi, int64_t hi) {
    if (!has_lo && !has_hi) return jint(c);
    int32_t r = rule(c);
    if (r < 0) return -1;
    bool first = true;
    /* non-negative part */
    if (!has_hi || hi >= 0) {
        uint64_t l = has_lo && lo > 0 ? (uint64_t)lo : 0;
        int32_t t = uint_range(c, l, has_hi ? (uint64_t)hi : 0, !has_hi);
        if (t < 0) return -1;
        cst_gb_ref(c->b, r, t);
        first = false;
    }
    /* negative part: "-" then |n| for n in [lo, min(hi, -1)] */
    if (!has_lo || lo < 0) {
        uint64_t amin = has_hi && hi < -1 ? (uint64_t)(-hi) : 1;
        int32_t t = uint_range(c, amin, has_lo ? (uint64_t)(-lo) : 0, !has_lo);
        if (t < 0) return -1;
        if (!first) cst_gb_alt(c->b, r);
        cst_gb_lit(c->b, r, "-", 1), cst_gb_ref(c->b, r, t);
    }
    return r;
}

/* ======================================================================
 * Schemas
 * ====================================================================== */
static const char *const k_annotations[] = {"title", "description", "default", "examples", "$schema", "$id",
                                            "$comment", "deprecated", "readOnly", "writeOnly", "$anchor", "example",
                                            NULL};
static const char *const k_advisory[] = {"minLength", "maxLength", "minProperties", "maxProperties", "uniqueItems",
                                         "contains", "minContains", "maxContains", NULL};
static const char *const k_supported[] = {"type", "properties", "required", "additionalProperties", "enum", "const",
                                          "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "items",
                                          "prefixItems", "minItems", "maxItems", "minimum", "maximum",
                                          "exclusiveMinimum", "exclusiveMaximum", "pattern", "format", "nullable",
                                          "propertyOrdering", NULL};

static bool in(const char *const *l, const char *k) {
    for (; *l; l++)
        if (!strcmp(*l, k)) return true;
    return false;
}

static int32_t gen(sc *c, json_t *s, jpath *p);

/* JSON types a schema's values can have: bit per type */
enum { T_NULL = 1, T_BOOL = 2, T_INT = 4, T_NUM = 8, T_STR = 16, T_ARR = 32, T_OBJ = 64, T_ALL = 127 };
static unsigned type_bit(const char *t) {
    if (!strcmp(t, "null")) return T_NULL;
    if (!strcmp(t, "boolean")) return T_BOOL;
    if (!strcmp(t, "integer")) return T_INT;
    if (!strcmp(t, "number")) return T_NUM | T_INT;
    if (!strcmp(t, "string")) return T_STR;
    if (!strcmp(t, "array")) return T_ARR;
    if (!strcmp(t, "object")) return T_OBJ;
    return 0;
}
static unsigned value_bit(json_t *v) {
    switch (json_typeof(v)) {
    case JSON_NULL: return T_NULL;
    case JSON_TRUE: case JSON_FALSE: return T_BOOL;
    case JSON_INTEGER: return T_INT;
    case JSON_REAL: return T_NUM;
    case JSON_STRING: return T_STR;
    case JSON_ARRAY: return T_ARR;
    default: return T_OBJ;
    }
}

static json_t *resolve(sc *c, const char *ref, jpath *p) {
    if (!strcmp(ref, "#")) return c->root;
    if (strncmp(ref, "#/", 2)) {
        fail(c, p->s, "$ref '%s': only local references (#/$defs/..., #/definitions/..., #) are supported", ref);
        return NULL;
    }
    json_t *cur = c->root;
    const char *s = ref + 2;
    char tok[256];
    while (cur) {
        size_t n = 0;
        while (*s && *s != '/') {
            char ch = *s++;
            if (ch == '~' && (*s == '0' || *s == '1')) ch = *s++ == '0' ? '~' : '/';
            if (n < sizeof tok - 1) tok[n++] = ch;
        }
        tok[n] = 0;
        if (json_is_object(cur)) cur = json_object_get(cur, tok);
        else if (json_is_array(cur)) {
            char *end;
            long i = strtol(tok, &end, 10);
            cur = (*tok && !*end && i >= 0) ? json_array_get(cur, (size_t)i) : NULL;
        } else cur = NULL;
        if (!*s) break;
        s++;
    }
    if (!cur) fail(c, p->s, "$ref '%s' points to nothing", ref);
    return cur;
}

static unsigned types_of(sc *c, json_t *s, int depth) {
    if (depth > 32 || json_is_true(s)) return T_ALL;
    if (!json_is_object(s)) return 0;
    json_t *ref = json_object_get(s, "$ref");
    if (json_is_string(ref)) {
        jpath p = {.s = "", .n = 0};
        bool was = c->failed;
        json_t *t = resolve(c, json_string_value(ref), &p);
        c->failed = was;
        return t ? types_of(c, t, depth + 1) : T_ALL;
    }
    unsigned m = 0;
    json_t *v;
    if ((v = json_object_get(s, "const"))) m = value_bit(v);
    else if ((v = json_object_get(s, "enum")) && json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) m |= value_bit(e);
    } else if ((v = json_object_get(s, "type"))) {
        if (json_is_string(v)) m = type_bit(json_string_value(v));
        else if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) if (json_is_string(e)) m |= type_bit(json_string_value(e));
        }
    } else if ((v = json_object_get(s, "anyOf")) || (v = json_object_get(s, "oneOf"))) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) m |= types_of(c, e, depth + 1);
    } else if (json_object_get(s, "properties") || json_object_get(s, "allOf")) m = T_OBJ;
    else if (json_object_get(s, "items") || json_object_get(s, "prefixItems")) m = T_ARR;
    else m = T_ALL;
    if (json_is_true(json_object_get(s, "nullable"))) m |= T_NULL;
    return m;
}

/* the literal text of a JSON value (compact; the enum/const alternative) */
static int32_t literal(sc *c, json_t *v) {
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!t) return fail(c, "schema", "out of memory");
    int32_t r = lit_rule(c, t);
    free(t);
    return r;
}

static int32_t gen_object(sc *c, json_t *s, jpath *p) {
    json_t *props = json_object_get(s, "properties");
    json_t *req = json_object_get(s, "required");
    json_t *addl = json_object_get(s, "additionalProperties");
    json_t *order = json_object_get(s, "propertyOrdering");
    if (props && !json_is_object(props)) return fail(c, p->s, "properties: expected an object");
    if (req && !json_is_array(req)) return fail(c, p->s, "required: expected an array");
    if (order && !json_is_array(order)) return fail(c, p->s, "propertyOrdering: expected an array");
    if (addl && !json_is_boolean(addl) && !json_is_object(addl))
        return fail(c, p->s, "additionalProperties: expected a boolean or a schema");
    /* the ordered property list */
    size_t np = props ? json_object_size(props) : 0;
    size_t nr = req ? json_array_size(req) : 0;
    const char **names = calloc(np + nr + 1, sizeof *names);
    json_t **schemas = calloc(np + nr + 1, sizeof *schemas);
    bool *required = calloc(np + nr + 1, sizeof *required);
    int32_t out = -1;
    size_t n = 0;
    if (!names || !schemas || !required) {
        fail(c, p->s, "out of memory");
        goto done;
    }
    if (order) {
        size_t i;
        json_t *e;
        json_array_foreach(order, i, e) {
            if (!json_is_string(e) || !props || !json_object_get(props, json_string_value(e))) {
                fail(c, p->s, "propertyOrdering[%zu]: not a declared property", i);
                goto done;
            }
            bool dup = false;
            for (size_t k = 0; k < n; k++) dup |= !strcmp(names[k], json_string_value(e));
            if (dup) continue;
            names[n] = json_string_value(e);
            schemas[n++] = json_object_get(props, json_string_value(e));
        }
    }
    if (props) {
        const char *k;
        json_t *v;
        json_object_foreach(props, k, v) {
            bool dup = false;
            for (size_t j = 0; j < n; j++) dup |= !strcmp(names[j], k);
            if (dup) continue;
            names[n] = k;
            schemas[n++] = v;
        }
    }
    if (req) {
        size_t i;
        json_t *e;
        json_array_foreach(req, i, e) {
            if (!json_is_string(e)) {
                fail(c, p->s, "required[%zu]: expected a string", i);
                goto done;
            }
            size_t j;
            for (j = 0; j < n; j++)
                if (!strcmp(names[j], json_string_value(e))) break;
            if (j == n) { /* required but not declared: any value */
                names[n] = json_string_value(e);
                schemas[n++] = NULL;
            }
            required[j] = true;
        }
    }
    int32_t w = ws(c);
    if (w < 0) goto done;
    /* kv_i ::= "name" ":" ws value_i */
    int32_t *kv = calloc(n + 1, sizeof *kv);
    if (!kv) {
        fail(c, p->s, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push(p, ".properties.%s", names[i]);
        int32_t v = schemas[i] ? gen(c, schemas[i], p) : jany(c);
        path_pop(p, old);
        json_t *ks = json_string(names[i]);
        char *kt = ks ? json_dumps(ks, JSON_ENCODE_ANY) : NULL;
        json_decref(ks);
        kv[i] = v >= 0 && kt ? rule(c) : -1;
        if (kv[i] >= 0) cst_gb_lit(c->b, kv[i], kt, strlen(kt)), cst_gb_lit(c->b, kv[i], ":", 1),
                                  cst_gb_ref(c->b, kv[i], w), cst_gb_ref(c->b, kv[i], v);
        free(kt);
        if (kv[i] < 0) {
            if (!c->failed) fail(c, p->s, "out of memory");
            free(kv);
            goto done;
        }
    }
    /* the tail after the declared ones: additional properties when that is
     * a schema and nothing is declared, else nothing */
    int32_t tail_first = rule(c), tail_rest = rule(c);
    if (tail_first < 0 || tail_rest < 0) {
        free(kv);
        goto done;
    }
    if (n == 0 && json_is_object(addl)) {
        size_t old = path_push(p, ".additionalProperties");
        int32_t v = gen(c, addl, p), str = jstring(c);
        path_pop(p, old);
        int32_t pair = rule(c);
        if (v < 0 || str < 0 || pair < 0) {
            free(kv);
            goto done;
        }
        cst_gb_ref(c->b, pair, str), cst_gb_lit(c->b, pair, ":", 1), cst_gb_ref(c->b, pair, w), cst_gb_ref(c->b, pair, v);
        /* tail_rest ::= "" | "," ws pair tail_rest ; tail_first ::= "" | pair tail_rest */
        cst_gb_alt(c->b, tail_rest), cst_gb_lit(c->b, tail_rest, ",", 1), cst_gb_ref(c->b, tail_rest, w),
            cst_gb_ref(c->b, tail_rest, pair), cst_gb_ref(c->b, tail_rest, tail_rest);
        cst_gb_alt(c->b, tail_first), cst_gb_ref(c->b, tail_first, pair), cst_gb_ref(c->b, tail_first, tail_rest);
    }
    /* F_i: properties i.. with none emitted yet; R_i: after one was emitted */
    int32_t nf = tail_first, nrr = tail_rest;
    for (size_t i = n; i-- > 0;) {
        int32_t f = rule(c), r = rule(c);
        if (f < 0 || r < 0) {
            free(kv);
            goto done;
        }
        cst_gb_ref(c->b, f, kv[i]), cst_gb_ref(c->b, f, nrr);
        cst_gb_lit(c->b, r, ",", 1), cst_gb_ref(c->b, r, w), cst_gb_ref(c->b, r, kv[i]), cst_gb_ref(c->b, r, nrr);
        if (!required[i]) {
            cst_gb_alt(c->b, f), cst_gb_ref(c->b, f, nf);
            cst_gb_alt(c->b, r), cst_gb_ref(c->b, r, nrr);
        }
        nf = f, nrr = r;
    }
    free(kv);
    out = rule(c);
    if (out >= 0) cst_gb_lit(c->b, out, "{", 1), cst_gb_ref(c->b, out, nf), cst_gb_lit(c->b, out, "}", 1);
done:
    free(names);
    free(schemas);
    free(required);
    return c->failed ? -1 : out;
}

static bool get_count(sc *c, json_t *s, const char *k, jpath *p, long *out) {
    json_t *v = json_object_get(s, k);
    if (!v) return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0) return fail(c, p->s, "%s: expected a non-negative integer", k), false;
    if (json_integer_value(v) > CST_SCHEMA_MAX_ITEMS)
        return fail(c, p->s, "%s: %lld is above the limit of %d", k, (long long)json_integer_value(v), CST_SCHEMA_MAX_ITEMS),
               false;
    *out = (long)json_integer_value(v);
    return true;
}

static int32_t gen_array(sc *c, json_t *s, jpath *p) {
    json_t *items = json_object_get(s, "items");
    json_t *pre = json_object_get(s, "prefixItems");
    if (items && !json_is_object(items) && !json_is_boolean(items))
        return fail(c, p->s, "items: expected a schema (an array of schemas is prefixItems)");
    if (pre && !json_is_array(pre)) return fail(c, p->s, "prefixItems: expected an array");
    long lo = 0, hi = -1;
    if (!get_count(c, s, "minItems", p, &lo) || !get_count(c, s, "maxItems", p, &hi)) return -1;
    long npre = pre ? (long)json_array_size(pre) : 0;
    if (npre > CST_SCHEMA_MAX_ITEMS) return fail(c, p->s, "prefixItems: more than %d entries", CST_SCHEMA_MAX_ITEMS);
    if (json_is_false(items)) hi = hi < 0 ? npre : (hi < npre ? hi : npre);
    if (hi >= 0 && hi < lo) return fail(c, p->s, "maxItems is below minItems: no array fits");
    int32_t it = -1;
    if (!json_is_false(items)) {
        size_t old = path_push(p, ".items");
        it = items ? gen(c, items, p) : jany(c);
        path_pop(p, old);
        if (it < 0) return -1;
    } else if (lo > npre) return fail(c, p->s, "minItems needs more items than prefixItems allows (items: false)");
    int32_t w = ws(c);
    if (w < 0) return -1;
    /* A_k: continue after k items. Built from the back. */
    long fixed = lo > npre ? lo : npre; /* positions with their own rule */
    long last = hi >= 0 ? hi : fixed;   /* A_last: the end (or the open tail) */
    int32_t next = rule(c);             /* A_last */
    if (next < 0) return -1;
    if (hi < 0) { /* open tail: "" | "," ws item A_last */
        cst_gb_alt(c->b, next), cst_gb_lit(c->b, next, ",", 1), cst_gb_ref(c->b, next, w), cst_gb_ref(c->b, next, it),
            cst_gb_ref(c->b, next, next);
        if (last == 0) { /* the first item has no comma: A_0 ::= "" | item A_tail */
            int32_t a0 = rule(c);
            if (a0 < 0) return -1;
            cst_gb_alt(c->b, a0), cst_gb_ref(c->b, a0, it), cst_gb_ref(c->b, a0, next);
            next = a0;
        }
    }
    for (long k = last - 1; k >= 0; k--) {
        int32_t el;
        if (k < npre) {
            size_t old = path_push(p, ".prefixItems[%ld]", k);
            el = gen(c, json_array_get(pre, (size_t)k), p);
            path_pop(p, old);
        } else el = it;
        int32_t a = rule(c);
        if (el < 0 || a < 0) return -1;
        if (k >= lo) cst_gb_alt(c->b, a); /* optional from here: first alternative is the end */
        if (k > 0) cst_gb_lit(c->b, a, ",", 1), cst_gb_ref(c->b, a, w);
        cst_gb_ref(c->b, a, el), cst_gb_ref(c->b, a, next);
        next = a;
    }
    int32_t r = rule(c);
    if (r < 0) return -1;
    cst_gb_lit(c->b, r, "[", 1), cst_gb_ref(c->b, r, next), cst_gb_lit(c->b, r, "]", 1);
    return r;
}

static bool bound(sc *c, json_t *s, const char *k, jpath *p, bool *has, double *v) {
    json_t *x = json_object_get(s, k);
    if (!x) return true;
    if (!json_is_number(x)) return fail(c, p->s, "%s: expected a number", k), false;
    *has = true;
    *v = json_number_value(x);
    return true;
}

static int32_t gen_integer(sc *c, json_t *s, jpath *p, bool is_number) {
    bool hl = false, hh = false, hxl = false, hxh = false;
    double lo = 0, hi = 0, xlo = 0, xhi = 0;
    if (!bound(c, s, "minimum", p, &hl, &lo) || !bound(c, s, "maximum", p, &hh, &hi) ||
        !bound(c, s, "exclusiveMinimum", p, &hxl, &xlo) || !bound(c, s, "exclusiveMaximum", p, &hxh, &xhi))
        return -1;
    if (!hl && !hh && !hxl && !hxh) return is_number ? jnumber(c) : jint(c);
    int64_t L = 0, H = 0;
    bool has_l = hl || hxl, has_h = hh || hxh;
    if (has_l) {
        double l = hl ? ceil(lo) : -INFINITY;
        if (hxl) l = fmax(l, floor(xlo) + 1);
        if (!(fabs(l) < (double)BIG)) return fail(c, p->s, "minimum: beyond +-2^53");
        L = (int64_t)l;
    }
    if (has_h) {
        double h = hh ? floor(hi) : INFINITY;
        if (hxh) h = fmin(h, ceil(xhi) - 1);
        if (!(fabs(h) < (double)BIG)) return fail(c, p->s, "maximum: beyond +-2^53");
        H = (int64_t)h;
    }
    if (has_l && has_h && L > H) return fail(c, p->s, "no integer lies between the minimum and the maximum");
    /* numbers with bounds: the integers in range, a subset of the valid values */
    return int_range(c, has_l, L, has_h, H);
}

static int32_t gen_string(sc *c, json_t *s, jpath *p) {
    json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
    if (pat && !json_is_string(pat)) return fail(c, p->s, "pattern: expected a string");
    if (fmt && !json_is_string(fmt)) return fail(c, p->s, "format: expected a string");
    if (pat && fmt) return fail(c, p->s, "pattern together with format is not supported");
    if (pat) {
        size_t old = path_push(p, ".pattern");
        int32_t r = quoted(c, regex_rule(c, json_string_value(pat), p->s));
        path_pop(p, old);
        return r;
    }
    if (fmt) {
        for (size_t i = 0; i < sizeof k_formats / sizeof *k_formats; i++)
            if (!strcmp(k_formats[i].name, json_string_value(fmt))) return quoted(c, regex_rule(c, k_formats[i].re, p->s));
        return fail(c, p->s, "format '%s' is not supported (date, date-time, time, uuid, email are)",
                    json_string_value(fmt));
    }
    return jstring(c);
}

static int32_t gen_type(sc *c, json_t *s, const char *t, jpath *p) {
    if (!strcmp(t, "string")) return gen_string(c, s, p);
    if (!strcmp(t, "integer")) return gen_integer(c, s, p, false);
    if (!strcmp(t, "number")) return gen_integer(c, s, p, true);
    if (!strcmp(t, "boolean")) {
        int32_t r = lit_rule(c, "true");
        if (r >= 0) cst_gb_alt(c->b, r), cst_gb_lit(c->b, r, "false", 5);
        return r;
    }
    if (!strcmp(t, "null")) return lit_rule(c, "null");
    if (!strcmp(t, "object")) return gen_object(c, s, p);
    if (!strcmp(t, "array")) return gen_array(c, s, p);
    return fail(c, p->s, "type: '%s' is not a JSON Schema type", t);
}

/* allOf: every branch an object schema; merged into one object */
static int32_t gen_allof(sc *c, json_t *s, jpath *p) {
    json_t *all = json_object_get(s, "allOf");
    if (!json_is_array(all) || json_array_size(all) == 0) return fail(c, p->s, "allOf: expected a non-empty array");
    json_t *m = json_object(), *props = json_object(), *req = json_array();
    bool closed = false;
    int32_t r = -1;
    size_t nb = json_array_size(all);
    for (size_t i = 0; i <= nb; i++) {
        json_t *b = i < nb ? json_array_get(all, i) : s; /* the branches, then the schema itself */
        for (int hops = 0; i < nb && json_is_object(b) && json_object_get(b, "$ref") && hops < 16; hops++)
        {
            const char *rs = json_string_value(json_object_get(b, "$ref"));
            b = resolve(c, rs ? rs : "", p);
        }
        if (c->failed) goto done;
        if (!json_is_object(b)) {
            fail(c, p->s, "allOf[%zu]: only object schemas can be combined", i);
            goto done;
        }
        const char *k;
        json_t *v;
        json_object_foreach(b, k, v) {
            if (in(k_annotations, k) || in(k_advisory, k) || !strcmp(k, "$defs") || !strcmp(k, "definitions") ||
                (i == nb && !strcmp(k, "allOf")))
                continue;
            if (!strcmp(k, "type") && json_is_string(v) && !strcmp(json_string_value(v), "object")) continue;
            if (!strcmp(k, "properties") && json_is_object(v)) {
                const char *pk;
                json_t *pv;
                json_object_foreach(v, pk, pv) {
                    json_t *had = json_object_get(props, pk);
                    if (had && !json_equal(had, pv)) {
                        fail(c, p->s, "allOf: property '%s' is declared differently in two branches", pk);
                        goto done;
                    }
                    json_object_set(props, pk, pv);
                }
            } else if (!strcmp(k, "required") && json_is_array(v)) {
                json_array_extend(req, v);
            } else if (!strcmp(k, "additionalProperties") && json_is_boolean(v)) {
                closed |= json_is_false(v);
            } else {
                if (i < nb)
                    fail(c, p->s, "allOf[%zu]: keyword '%s' cannot be combined (only type object, properties, "
                                  "required, additionalProperties: false)", i, k);
                else fail(c, p->s, "allOf: keyword '%s' next to allOf is not supported", k);
                goto done;
            }
        }
    }
    json_object_set_new(m, "type", json_string("object"));
    json_object_set(m, "properties", props);
    json_object_set(m, "required", req);
    if (closed) json_object_set_new(m, "additionalProperties", json_false());
    r = gen_object(c, m, p);
done:
    json_decref(m);
    json_decref(props);
    json_decref(req);
    return c->failed ? -1 : r;
}

static int32_t gen(sc *c, json_t *s, jpath *p) {
    if (c->failed) return -1;
    if (json_is_true(s)) return jany(c);
    if (json_is_false(s)) return fail(c, p->s, "the schema false allows no value");
    if (!json_is_object(s)) return fail(c, p->s, "a schema must be an object or a boolean");
    if (++c->depth > CST_SCHEMA_MAX_DEPTH) {
        c->depth--;
        return fail(c, p->s, "schemas nested deeper than %d", CST_SCHEMA_MAX_DEPTH);
    }
    int32_t out = -1;
    /* every keyword known, or fail closed */
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v) {
        if (in(k_supported, k) || in(k_advisory, k) || in(k_annotations, k)) continue;
        size_t old = path_push(p, ".%s", k);
        fail(c, p->s, "unsupported JSON Schema keyword '%s'", k);
        path_pop(p, old);
        goto out;
    }
    json_t *ref = json_object_get(s, "$ref");
    json_t *type = json_object_get(s, "type");
    json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    json_t *any = json_object_get(s, "anyOf"), *one = json_object_get(s, "oneOf"), *all = json_object_get(s, "allOf");
    bool nullable = json_is_true(json_object_get(s, "nullable"));
    int32_t body = -1;
    if (ref) {
        if (!json_is_string(ref)) {
            fail(c, p->s, "$ref: expected a string");
            goto out;
        }
        json_object_foreach(s, k, v) if (in(k_supported, k) && strcmp(k, "$ref") && strcmp(k, "$defs") &&
                                         strcmp(k, "definitions") && strcmp(k, "nullable")) {
            fail(c, p->s, "keyword '%s' next to $ref is not supported", k);
            goto out;
        }
        const char *rs = json_string_value(ref);
        for (int i = 0; i < c->n_refs; i++)
            if (!strcmp(c->refs[i].ref, rs)) body = c->refs[i].rule;
        if (body < 0) {
            json_t *t = resolve(c, rs, p);
            if (!t) goto out;
            int32_t reserved = rule(c);
            if (reserved < 0) goto out;
            if (c->n_refs == c->cap_refs) {
                int nc = c->cap_refs ? c->cap_refs * 2 : 8;
                refmemo *nr = realloc(c->refs, (size_t)nc * sizeof *nr);
                if (!nr) {
                    fail(c, p->s, "out of memory");
                    goto out;
                }
                c->refs = nr, c->cap_refs = nc;
            }
            c->refs[c->n_refs].ref = strdup(rs);
            c->refs[c->n_refs++].rule = reserved;
            jpath q = {.n = 0};
            path_push(&q, "%s", rs);
            /* the target's nesting counts from itself; chains of references
             * have their own limit (the C stack) */
            if (++c->ref_depth > CST_SCHEMA_MAX_REF_CHAIN) {
                fail(c, p->s, "$ref chain longer than %d", CST_SCHEMA_MAX_REF_CHAIN);
                goto out;
            }
            const int saved_depth = c->depth;
            c->depth = 0;
            int32_t tr = gen(c, t, &q);
            c->depth = saved_depth;
            c->ref_depth--;
            if (tr < 0) {
                if (c->failed && !strstr(c->err, "(through $ref")) { /* say where the reference was */
                    char m[1100];
                    snprintf(m, sizeof m, "%s (through $ref at %s)", c->err, p->s);
                    snprintf(c->err, c->errlen, "%s", m);
                }
                goto out;
            }
            cst_gb_ref(c->b, reserved, tr);
            body = reserved;
        }
    } else if (en || cn) {
        unsigned tmask = T_ALL;
        if (type) {
            json_t *only = json_object(); /* types_of on just the type */
            json_object_set(only, "type", type);
            tmask = types_of(c, only, 0);
            json_decref(only);
        }
        if (cn) {
            if (!(value_bit(cn) & tmask)) {
                fail(c, p->s, "const: the value does not have the schema's type");
                goto out;
            }
            body = literal(c, cn);
        } else {
            if (!json_is_array(en) || json_array_size(en) == 0) {
                fail(c, p->s, "enum: expected a non-empty array");
                goto out;
            }
            body = rule(c);
            bool first = true;
            size_t i;
            json_t *e;
            json_array_foreach(en, i, e) {
                if (!(value_bit(e) & tmask)) continue;
                int32_t l = literal(c, e);
                if (l < 0 || body < 0) goto out;
                if (!first) cst_gb_alt(c->b, body);
                first = false;
                cst_gb_ref(c->b, body, l);
            }
            if (first) {
                fail(c, p->s, "enum: no value has the schema's type");
                goto out;
            }
        }
    } else if (any || one) {
        const char *kw = any ? "anyOf" : "oneOf";
        if (any && one) {
            fail(c, p->s, "anyOf together with oneOf is not supported");
            goto out;
        }
        json_t *arr = any ? any : one;
        if (!json_is_array(arr) || json_array_size(arr) == 0) {
            fail(c, p->s, "%s: expected a non-empty array", kw);
            goto out;
        }
        json_object_foreach(s, k, v) if (in(k_supported, k) && strcmp(k, kw) && strcmp(k, "$defs") &&
                                         strcmp(k, "definitions") && strcmp(k, "nullable")) {
            fail(c, p->s, "keyword '%s' next to %s is not supported (move it into the branches)", k, kw);
            goto out;
        }
        if (one) { /* as anyOf when the branches' JSON types are disjoint */
            unsigned seen = 0;
            size_t i;
            json_t *e;
            json_array_foreach(one, i, e) {
                unsigned t = types_of(c, e, 0);
                if (t & seen) {
                    fail(c, p->s, "oneOf[%zu]: branches that can match the same value are not supported (use anyOf)", i);
                    goto out;
                }
                seen |= t;
            }
        }
        body = rule(c);
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e) {
            size_t old = path_push(p, ".%s[%zu]", kw, i);
            int32_t b = gen(c, e, p);
            path_pop(p, old);
            if (b < 0 || body < 0) goto out;
            if (i) cst_gb_alt(c->b, body);
            cst_gb_ref(c->b, body, b);
        }
    } else if (all) {
        body = gen_allof(c, s, p);
    } else if (type) {
        if (json_is_string(type)) body = gen_type(c, s, json_string_value(type), p);
        else if (json_is_array(type) && json_array_size(type) > 0) {
            body = rule(c);
            size_t i;
            json_t *e;
            json_array_foreach(type, i, e) {
                if (!json_is_string(e)) {
                    fail(c, p->s, "type[%zu]: expected a string", i);
                    goto out;
                }
                int32_t b = gen_type(c, s, json_string_value(e), p);
                if (b < 0 || body < 0) goto out;
                if (i) cst_gb_alt(c->b, body);
                cst_gb_ref(c->b, body, b);
            }
        } else {
            fail(c, p->s, "type: expected a string or a non-empty array of strings");
            goto out;
        }
    } else if (json_object_get(s, "properties") || json_object_get(s, "required") ||
               json_object_get(s, "additionalProperties") || json_object_get(s, "propertyOrdering")) {
        body = gen_object(c, s, p);
    } else if (json_object_get(s, "items") || json_object_get(s, "prefixItems") || json_object_get(s, "minItems") ||
               json_object_get(s, "maxItems")) {
        body = gen_array(c, s, p);
    } else if (json_object_get(s, "pattern") || json_object_get(s, "format")) {
        body = gen_string(c, s, p);
    } else if (json_object_get(s, "minimum") || json_object_get(s, "maximum") ||
               json_object_get(s, "exclusiveMinimum") || json_object_get(s, "exclusiveMaximum")) {
        body = gen_integer(c, s, p, true);
    } else {
        body = jany(c);
    }
    if (body < 0) goto out;
    if (nullable) {
        out = rule(c);
        if (out >= 0) cst_gb_ref(c->b, out, body), cst_gb_alt(c->b, out), cst_gb_lit(c->b, out, "null", 4);
    } else {
        out = body;
    }
out:
    c->depth--;
    return c->failed ? -1 : out;
}

static void sc_init(sc *c, json_t *root, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->b = cst_gb_new();
    c->root = root;
    c->err = err;
    c->errlen = errlen;
    c->r_ws = c->r_any = c->r_string = c->r_chars = c->r_char = c->r_utf8 = c->r_utf8_safe = c->r_number = c->r_int =
        c->r_digits = -1;
    if (!c->b) {
        c->failed = true;
        snprintf(err, errlen, "out of memory");
    }
}

static cst_grammar *sc_finish(sc *c, int32_t root, const char *path) {
    for (int i = 0; i < c->n_refs; i++) free(c->refs[i].ref);
    free(c->refs);
    if (c->failed || root < 0) {
        cst_gb_free(c->b);
        return NULL;
    }
    char m[300];
    cst_grammar *g = cst_gb_finish(c->b, root, m, sizeof m);
    if (!g) {
        if (strstr(m, "left-recursive"))
            snprintf(c->err, c->errlen, "%s: a recursive $ref (or a repeated pattern part) that can match without "
                                        "consuming input is not supported", path);
        else if (strstr(m, "never ends"))
            snprintf(c->err, c->errlen, "%s: the schema has no finite value (a required recursion never ends)", path);
        else snprintf(c->err, c->errlen, "%s: %s", path, m);
    }
    return g;
}

cst_grammar *cst_schema_compile(json_t *schema, const char *path, char *err, size_t errlen) {
    sc c;
    sc_init(&c, schema, err, errlen);
    jpath p = {.n = 0};
    path_push(&p, "%s", path ? path : "schema");
    int32_t root = -1;
    if (!c.failed) root = schema ? gen(&c, schema, &p) : jany(&c);
    return sc_finish(&c, root, p.s);
}

int32_t cst_schema_rule(cst_gbuild *b, json_t *schema, const char *path, char *err, size_t errlen) {
    sc c;
    sc_init(&c, schema, err, errlen);
    cst_gb_free(c.b); /* the caller's builder instead */
    c.b = b;
    c.failed = !b;
    if (!b) snprintf(err, errlen, "out of memory");
    jpath p = {.n = 0};
    path_push(&p, "%s", path ? path : "schema");
    int32_t root = -1;
    if (!c.failed) root = schema ? gen(&c, schema, &p) : jany(&c);
    for (int i = 0; i < c.n_refs; i++) free(c.refs[i].ref);
    free(c.refs);
    return c.failed ? -1 : root;
}

cst_grammar *cst_schema_regex(const char *re, char *err, size_t errlen) {
    sc c;
    sc_init(&c, NULL, err, errlen);
    int32_t root = c.failed ? -1 : regex_rule(&c, re, "pattern");
    return sc_finish(&c, root, "pattern");
}

/* ---- cache ---------------------------------------------------------------------- */
#define CACHE_N 64
typedef struct {
    char *canon;
    uint64_t hash;
    cst_grammar *g;
    uint64_t stamp;
} centry;
static centry g_cache[CACHE_N];
static uint64_t g_clock;
static pthread_mutex_t g_cache_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t fnv64(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

typedef struct {
    json_t *schema;
    const char *path;
} schema_job;

static cst_grammar *schema_build(void *ud, char *err, size_t errlen) {
    schema_job *j = ud;
    return cst_schema_compile(j->schema, j->path, err, errlen);
}

cst_grammar *cst_schema_get(json_t *schema, const char *path, bool *hit, char *err, size_t errlen) {
    char *canon = schema ? json_dumps(schema, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : strdup("*any*");
    schema_job j = {schema, path};
    cst_grammar *g = cst_grammar_cache_get(canon, schema_build, &j, hit, err, errlen);
    free(canon);
    return g;
}

cst_grammar *cst_grammar_cache_get(const char *key, cst_grammar *(*build)(void *ud, char *err, size_t errlen), void *ud,
                                   bool *hit, char *err, size_t errlen) {
    if (hit) *hit = false;
    char *canon = key ? strdup(key) : NULL;
    if (!canon) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* the path is part of error messages only: the key is the schema (or
     * whatever canonical text the caller's grammar is a function of) */
    const uint64_t h = fnv64(canon);
    pthread_mutex_lock(&g_cache_mu);
    for (int i = 0; i < CACHE_N; i++)
        if (g_cache[i].g && g_cache[i].hash == h && !strcmp(g_cache[i].canon, canon)) {
            g_cache[i].stamp = ++g_clock;
            cst_grammar *g = cst_grammar_ref(g_cache[i].g);
            pthread_mutex_unlock(&g_cache_mu);
            free(canon);
            if (hit) *hit = true;
            return g;
        }
    pthread_mutex_unlock(&g_cache_mu);
    cst_grammar *g = build(ud, err, errlen);
    if (!g) {
        free(canon);
        return NULL;
    }
    pthread_mutex_lock(&g_cache_mu);
    int v = 0;
    for (int i = 0; i < CACHE_N; i++) {
        if (!g_cache[i].g) {
            v = i;
            break;
        }
        if (g_cache[i].stamp < g_cache[v].stamp) v = i;
    }
    cst_grammar_unref(g_cache[v].g);
    free(g_cache[v].canon);
    g_cache[v] = (centry){canon, h, cst_grammar_ref(g), ++g_clock};
    pthread_mutex_unlock(&g_cache_mu);
    return g;
}

void cst_schema_cache_clear(void) {
    pthread_mutex_lock(&g_cache_mu);
    for (int i = 0; i < CACHE_N; i++) {
        cst_grammar_unref(g_cache[i].g);
        free(g_cache[i].canon);
        g_cache[i] = (centry){0};
    }
    pthread_mutex_unlock(&g_cache_mu);
}
