/* value.c: the template value type (public constructors, owned trees), the
 * bump arena used by the parser and the renderer, and text helpers that
 * follow JavaScript's rules, since the reference renderer is JS: String(n)
 * for numbers, JSON.stringify for strings, the \s whitespace set for trim.
 */
#include "template_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- public values ---- */

static cst_tvalue *tv_new(int kind) {
    cst_tvalue *v = calloc(1, sizeof *v);
    if (v) v->kind = (uint8_t)kind;
    return v;
}

cst_tvalue *cst_tv_none(void) { return tv_new(CST_TV_NONE); }
cst_tvalue *cst_tv_bool(bool b) {
    cst_tvalue *v = tv_new(CST_TV_BOOL);
    if (v) v->u.b = b;
    return v;
}
cst_tvalue *cst_tv_int(int64_t i) {
    cst_tvalue *v = tv_new(CST_TV_INT);
    if (v) v->u.i = i;
    return v;
}
cst_tvalue *cst_tv_float(double f) {
    cst_tvalue *v = tv_new(CST_TV_FLOAT);
    if (v) v->u.f = f;
    return v;
}
cst_tvalue *cst_tv_string(const char *s, size_t len) {
    cst_tvalue *v = tv_new(CST_TV_STRING);
    if (!v) return NULL;
    char *p = malloc(len + 1);
    if (!p) {
        free(v);
        return NULL;
    }
    if (len) memcpy(p, s, len);
    p[len] = 0;
    v->u.s.p = p;
    v->u.s.n = len;
    return v;
}
cst_tvalue *cst_tv_cstr(const char *s) { return s ? cst_tv_string(s, strlen(s)) : cst_tv_none(); }
cst_tvalue *cst_tv_list(void) { return tv_new(CST_TV_LIST); }
cst_tvalue *cst_tv_dict(void) { return tv_new(CST_TV_DICT); }

void cst_tv_free(cst_tvalue *v) {
    if (!v) return;
    switch (v->kind) {
    case CST_TV_STRING: free((char *)v->u.s.p); break;
    case CST_TV_LIST:
        for (size_t i = 0; i < v->u.l.n; i++) cst_tv_free(v->u.l.v[i]);
        free(v->u.l.v);
        break;
    case CST_TV_DICT:
        for (size_t i = 0; i < v->u.d.n; i++) {
            free((char *)v->u.d.e[i].k);
            cst_tv_free(v->u.d.e[i].v);
        }
        free(v->u.d.e);
        break;
    default: break;
    }
    free(v);
}

cst_status cst_tv_list_push(cst_tvalue *list, cst_tvalue *item) {
    if (!item) return CST_ERR_NOMEM;
    if (!list || list->kind != CST_TV_LIST) {
        cst_tv_free(item);
        return CST_ERR_INVALID_ARG;
    }
    if (list->u.l.n == list->u.l.cap) {
        size_t nc = list->u.l.cap ? list->u.l.cap * 2 : 4;
        cst_tvalue **nv = realloc(list->u.l.v, nc * sizeof *nv);
        if (!nv) {
            cst_tv_free(item);
            return CST_ERR_NOMEM;
        }
        list->u.l.v = nv;
        list->u.l.cap = nc;
    }
    list->u.l.v[list->u.l.n++] = item;
    return CST_OK;
}

cst_status cst_tv_dict_set(cst_tvalue *dict, const char *key, size_t key_len, cst_tvalue *item) {
    if (!item) return CST_ERR_NOMEM;
    if (!dict || dict->kind != CST_TV_DICT || (!key && key_len)) {
        cst_tv_free(item);
        return CST_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < dict->u.d.n; i++) {
        tv_entry *e = &dict->u.d.e[i];
        if (e->kn == key_len && !memcmp(e->k, key, key_len)) {
            cst_tv_free(e->v);
            e->v = item;
            return CST_OK;
        }
    }
    if (dict->u.d.n == dict->u.d.cap) {
        size_t nc = dict->u.d.cap ? dict->u.d.cap * 2 : 4;
        tv_entry *ne = realloc(dict->u.d.e, nc * sizeof *ne);
        if (!ne) {
            cst_tv_free(item);
            return CST_ERR_NOMEM;
        }
        dict->u.d.e = ne;
        dict->u.d.cap = nc;
    }
    char *k = malloc(key_len + 1);
    if (!k) {
        cst_tv_free(item);
        return CST_ERR_NOMEM;
    }
    if (key_len) memcpy(k, key, key_len);
    k[key_len] = 0;
    dict->u.d.e[dict->u.d.n++] = (tv_entry){k, key_len, item};
    return CST_OK;
}

cst_status cst_tv_dict_setz(cst_tvalue *dict, const char *key, cst_tvalue *item) {
    return cst_tv_dict_set(dict, key, key ? strlen(key) : 0, item);
}

cst_tv_kind cst_tv_kind_of(const cst_tvalue *v) {
    if (!v || v->kind > CST_TV_DICT) return CST_TV_UNDEFINED;
    return (cst_tv_kind)v->kind;
}
size_t cst_tv_len(const cst_tvalue *v) {
    if (!v) return 0;
    if (v->kind == CST_TV_LIST) return v->u.l.n;
    if (v->kind == CST_TV_DICT || v->kind == TV_NS) return v->u.d.n;
    if (v->kind == CST_TV_STRING) return v->u.s.n;
    return 0;
}
const cst_tvalue *cst_tv_list_at(const cst_tvalue *v, size_t i) {
    if (!v || v->kind != CST_TV_LIST || i >= v->u.l.n) return NULL;
    return v->u.l.v[i];
}
const cst_tvalue *cst_tv_dict_get(const cst_tvalue *v, const char *key) {
    if (!v || (v->kind != CST_TV_DICT && v->kind != TV_NS) || !key) return NULL;
    size_t kn = strlen(key);
    for (size_t i = 0; i < v->u.d.n; i++)
        if (v->u.d.e[i].kn == kn && !memcmp(v->u.d.e[i].k, key, kn)) return v->u.d.e[i].v;
    return NULL;
}
const char *cst_tv_str(const cst_tvalue *v, size_t *len) {
    if (!v || v->kind != CST_TV_STRING) return NULL;
    if (len) *len = v->u.s.n;
    return v->u.s.p;
}

/* ---- arena ---- */

struct tpl_arena_blk {
    tpl_arena_blk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *tpl_arena_alloc(tpl_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->limit && (a->used + n > a->limit || a->used + n < n)) {
        a->over = true;
        return NULL;
    }
    tpl_arena_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 60000 ? n : 65536 - sizeof(tpl_arena_blk);
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void tpl_arena_free(tpl_arena *a) {
    tpl_arena_blk *b = a->head;
    while (b) {
        tpl_arena_blk *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
    a->used = 0;
}

/* ---- sbuf ---- */

bool sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return false;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) {
            if (nc > SIZE_MAX / 2) {
                b->oom = true;
                return false;
            }
            nc *= 2;
        }
        char *np;
        if (b->ar) {
            np = tpl_arena_alloc(b->ar, nc);
            if (np && b->n) memcpy(np, b->p, b->n);
        } else {
            np = realloc(b->p, nc);
        }
        if (!np) {
            b->oom = true;
            return false;
        }
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}
bool sb_puts(sbuf *b, const char *s) { return sb_put(b, s, strlen(s)); }
bool sb_putc(sbuf *b, char c) { return sb_put(b, &c, 1); }

/* ---- numbers, as JavaScript's Number.prototype.toString ---- */

void tpl_fmt_number(sbuf *b, double d) {
    if (isnan(d)) {
        sb_puts(b, "NaN");
        return;
    }
    if (isinf(d)) {
        sb_puts(b, d < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (d == 0) {
        sb_putc(b, '0'); /* String(-0) is "0" */
        return;
    }
    /* shortest digits that round-trip */
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    /* tmp = [-]D[.DDD]e[+-]XX */
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int e10 = atoi(p + 1);
    int n = e10 + 1; /* value = 0.DIGITS * 10^n */
    if (neg) sb_putc(b, '-');
    if (nd <= n && n <= 21) {
        sb_put(b, digits, (size_t)nd);
        for (int i = nd; i < n; i++) sb_putc(b, '0');
    } else if (0 < n && n <= 21) {
        sb_put(b, digits, (size_t)n);
        sb_putc(b, '.');
        sb_put(b, digits + n, (size_t)(nd - n));
    } else if (-6 < n && n <= 0) {
        sb_puts(b, "0.");
        for (int i = 0; i < -n; i++) sb_putc(b, '0');
        sb_put(b, digits, (size_t)nd);
    } else {
        char ex[16];
        sb_putc(b, digits[0]);
        if (nd > 1) {
            sb_putc(b, '.');
            sb_put(b, digits + 1, (size_t)(nd - 1));
        }
        snprintf(ex, sizeof ex, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
        sb_puts(b, ex);
    }
}

void tpl_fmt_float_value(sbuf *b, double d) {
    if (d == 0 && signbit(d)) {
        sb_puts(b, "-0.0");
        return;
    }
    if (isfinite(d) && d == floor(d)) {
        /* toFixed(1): exponent form from 1e21 on */
        if (fabs(d) >= 1e21) {
            tpl_fmt_number(b, d);
            return;
        }
        char tmp[400];
        snprintf(tmp, sizeof tmp, "%.1f", d);
        sb_puts(b, tmp);
        return;
    }
    tpl_fmt_number(b, d);
}

/* ---- JSON.stringify(string) ---- */

void tpl_json_string(sbuf *b, const char *s, size_t n, bool ensure_ascii) {
    static const char hex[] = "0123456789abcdef";
    sb_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        char e[16];
        if (c == '"') sb_puts(b, "\\\"");
        else if (c == '\\') sb_puts(b, "\\\\");
        else if (c == '\n') sb_puts(b, "\\n");
        else if (c == '\r') sb_puts(b, "\\r");
        else if (c == '\t') sb_puts(b, "\\t");
        else if (c == '\b') sb_puts(b, "\\b");
        else if (c == '\f') sb_puts(b, "\\f");
        else if (c < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_puts(b, e);
        } else if (ensure_ascii && c >= 0x7f) {
            size_t adv;
            uint32_t cp = tpl_utf8_decode(s, n, i, &adv);
            uint32_t units[2];
            int nu = 0;
            if (cp >= 0x10000) {
                cp -= 0x10000;
                units[nu++] = 0xD800 + (cp >> 10);
                units[nu++] = 0xDC00 + (cp & 0x3FF);
            } else {
                units[nu++] = cp;
            }
            for (int k = 0; k < nu; k++) {
                char u[7] = {'\\', 'u', hex[(units[k] >> 12) & 15], hex[(units[k] >> 8) & 15],
                             hex[(units[k] >> 4) & 15], hex[units[k] & 15], 0};
                sb_puts(b, u);
            }
            i += adv;
            continue;
        } else sb_putc(b, (char)c);
        i++;
    }
    sb_putc(b, '"');
}

/* ---- UTF-8 ---- */

uint32_t tpl_utf8_decode(const char *s, size_t n, size_t i, size_t *adv) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[i];
    *adv = 1;
    if (c < 0x80) return c;
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (!len || i + (size_t)len > n) return 0xFFFD;
    uint32_t cp = c & (0x3F >> (len - 1));
    for (int k = 1; k < len; k++) {
        if ((u[i + k] & 0xC0) != 0x80) return 0xFFFD;
        cp = (cp << 6) | (u[i + k] & 0x3F);
    }
    *adv = (size_t)len;
    return cp;
}

size_t tpl_utf8_next(const char *s, size_t n, size_t i) {
    size_t adv;
    tpl_utf8_decode(s, n, i, &adv);
    return i + adv;
}

size_t tpl_utf8_len(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i = tpl_utf8_next(s, n, i)) c++;
    return c;
}

void tpl_utf8_encode(sbuf *b, uint32_t cp) {
    char t[4];
    if (cp < 0x80) {
        t[0] = (char)cp;
        sb_put(b, t, 1);
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, t, 2);
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, t, 3);
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, t, 4);
    }
}

static bool js_space_cp(uint32_t c) {
    return c == ' ' || (c >= 9 && c <= 13) || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

size_t tpl_space_at(const char *p, const char *end) {
    if (p >= end) return 0;
    unsigned char c = (unsigned char)*p;
    if (c < 0x80) return (c == ' ' || (c >= 9 && c <= 13)) ? 1 : 0;
    size_t adv;
    uint32_t cp = tpl_utf8_decode(p, (size_t)(end - p), 0, &adv);
    return js_space_cp(cp) ? adv : 0;
}

size_t tpl_space_before(const char *start, const char *p) {
    if (p <= start) return 0;
    unsigned char c = (unsigned char)p[-1];
    if (c < 0x80) return (c == ' ' || (c >= 9 && c <= 13)) ? 1 : 0;
    const char *q = p - 1;
    while (q > start && p - q < 4 && ((unsigned char)*q & 0xC0) == 0x80) q--;
    size_t adv;
    uint32_t cp = tpl_utf8_decode(q, (size_t)(p - q), 0, &adv);
    return (q + adv == p && js_space_cp(cp)) ? adv : 0;
}

void tpl_trim(const char **s, size_t *n, bool left, bool right) {
    const char *p = *s, *e = *s + *n;
    size_t k;
    if (left)
        while ((k = tpl_space_at(p, e))) p += k;
    if (right)
        while ((k = tpl_space_before(p, e))) e -= k;
    *s = p;
    *n = (size_t)(e - p);
}

/* Simple case mapping: ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic. */
uint32_t tpl_case_map(uint32_t c, bool upper) {
    if (c < 0x80) {
        if (upper && c >= 'a' && c <= 'z') return c - 32;
        if (!upper && c >= 'A' && c <= 'Z') return c + 32;
        return c;
    }
    if (upper) {
        if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
        if (c == 0xFF) return 0x178;
        if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x178 &&
            c != 0x17F) {
            bool odd_lower = (c < 0x138) || (c > 0x148 && c < 0x178);
            if (odd_lower ? (c & 1) : !(c & 1)) return c - 1;
            return c;
        }
        if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
        if (c == 0x3C2) return 0x3A3;
        if (c >= 0x430 && c <= 0x44F) return c - 32;
        if (c >= 0x450 && c <= 0x45F) return c - 80;
        return c;
    }
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c == 0x178) return 0xFF;
    if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
        bool odd_lower = (c < 0x138) || (c > 0x148 && c < 0x178);
        if (odd_lower ? !(c & 1) : (c & 1)) return c + 1;
        return c;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}
