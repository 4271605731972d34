/* docs.c: text documents (UTF-8 check, HTML to text), framing, copies.
 * PDF is in pdf.c. */
#define _GNU_SOURCE
#include "docs/docs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"

cst_doc_limits cst_doc_default_limits(void) {
    return (cst_doc_limits){.max_pages = 100, .max_pixels = 64u << 20, .mem_bytes = (size_t)256 << 20,
                            .render_side = 0};
}

/* mime without parameters, lower-cased into buf */
static const char *bare_mime(const char *mime, char *buf, size_t n) {
    size_t i = 0;
    for (; mime[i] && mime[i] != ';' && mime[i] != ' ' && i + 1 < n; i++)
        buf[i] = (char)((mime[i] >= 'A' && mime[i] <= 'Z') ? mime[i] + 32 : mime[i]);
    buf[i] = 0;
    return buf;
}

static bool is_text_mime(const char *m) {
    static const char *t[] = {"text/plain", "text/markdown", "text/csv", "text/html", "application/json"};
    for (size_t i = 0; i < CST_ARRAY_LEN(t); i++)
        if (!strcmp(m, t[i])) return true;
    return !strncmp(m, "text/x-", 7) && m[7];
}

bool cst_doc_readable(const char *mime) {
    char b[128];
    if (!mime) return false;
    bare_mime(mime, b, sizeof b);
    return is_text_mime(b) || !strcmp(b, "application/pdf");
}

size_t cst_utf8_check(const uint8_t *p, size_t len, bool *nul) {
    if (nul) *nul = false;
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        if (c == 0) {
            if (nul) *nul = true;
            return i;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) n = 3, cp = c & 0x07;
        else return i;
        if (len - i <= n) return i;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        /* overlong, surrogates, past U+10FFFF */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n + 1;
    }
    return len;
}

/* ---- HTML ------------------------------------------------------------------------------- */

static void put_utf8(cst_buf *b, uint32_t cp) {
    char o[4];
    size_t n;
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    if (cp < 0x80) o[0] = (char)cp, n = 1;
    else if (cp < 0x800) o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F)),
        n = 3;
    else
        o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    cst_buf_put(b, o, n);
}

static bool tag_is(const char *name, size_t n, const char *const *list, size_t cnt) {
    for (size_t i = 0; i < cnt; i++)
        if (strlen(list[i]) == n && !strncasecmp(name, list[i], n)) return true;
    return false;
}

/* whitespace collapsing: pending space / newline emitted before the next text */
typedef struct {
    cst_buf *b;
    int pend; /* 0 none, 1 space, 2 newline */
} hout;

static void h_text(hout *o, const char *s, size_t n) {
    if (o->pend && o->b->len) cst_buf_put(o->b, o->pend == 2 ? "\n" : " ", 1);
    o->pend = 0;
    cst_buf_put(o->b, s, n);
}

char *cst_html_text(const char *h, size_t len, size_t *out_len) {
    static const char *block[] = {"p",  "br", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr",
                                  "table", "section", "article", "header", "footer", "pre", "blockquote", "hr",
                                  "title", "dt", "dd", "body", "head", "html", "nav", "main", "form"};
    static const char *skip[] = {"script", "style", "noscript", "template"};
    cst_buf b = {0};
    hout o = {.b = &b};
    size_t i = 0;
    while (i < len) {
        char c = h[i];
        if (c == '<') {
            if (i + 3 < len && !strncmp(h + i, "<!--", 4)) {
                const char *e = memmem(h + i + 4, len - i - 4, "-->", 3);
                i = e ? (size_t)(e - h) + 3 : len;
                continue;
            }
            size_t j = i + 1;
            bool close = j < len && h[j] == '/';
            if (close) j++;
            size_t ns = j;
            while (j < len && ((h[j] >= 'a' && h[j] <= 'z') || (h[j] >= 'A' && h[j] <= 'Z') || (h[j] >= '0' && h[j] <= '9')))
                j++;
            size_t nl = j - ns;
            if (nl == 0 && !(j < len && (h[j] == '!' || h[j] == '?'))) { /* a lone '<' is text */
                h_text(&o, "<", 1);
                i++;
                continue;
            }
            /* end of the tag (quotes respected) */
            char q = 0;
            while (j < len && (q || h[j] != '>')) {
                if (q && h[j] == q) q = 0;
                else if (!q && (h[j] == '"' || h[j] == '\'')) q = h[j];
                j++;
            }
            i = j < len ? j + 1 : len;
            if (tag_is(h + ns, nl, block, CST_ARRAY_LEN(block))) {
                if (o.b->len) o.pend = 2;
            } /* inline tags join words as written */
            if (!close && tag_is(h + ns, nl, skip, CST_ARRAY_LEN(skip))) { /* drop up to </name> */
                size_t k = i;
                while (k < len) {
                    const char *e = memchr(h + k, '<', len - k);
                    if (!e) {
                        k = len;
                        break;
                    }
                    k = (size_t)(e - h);
                    if (k + 2 + nl <= len && h[k + 1] == '/' && !strncasecmp(h + k + 2, h + ns, nl)) break;
                    k++;
                }
                const char *gt = k < len ? memchr(h + k, '>', len - k) : NULL;
                i = gt ? (size_t)(gt - h) + 1 : len;
            }
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            if (!o.pend && o.b->len) o.pend = 1;
            i++;
            continue;
        }
        if (c == '&') {
            size_t j = i + 1;
            while (j < len && j - i < 12 && h[j] != ';' && h[j] != '<' && h[j] != '&' && h[j] != ' ') j++;
            if (j < len && h[j] == ';') {
                const char *e = h + i + 1;
                size_t en = j - i - 1;
                uint32_t cp = 0;
                if (en > 1 && e[0] == '#') {
                    bool hex = e[1] == 'x' || e[1] == 'X';
                    char tmp[16];
                    size_t tn = en - (hex ? 2 : 1);
                    if (tn > 0 && tn < sizeof tmp) {
                        memcpy(tmp, e + (hex ? 2 : 1), tn);
                        tmp[tn] = 0;
                        char *end;
                        unsigned long v = strtoul(tmp, &end, hex ? 16 : 10);
                        if (*end == 0) cp = v > 0x10FFFF ? 0xFFFD : (uint32_t)v;
                    }
                } else {
                    static const struct { const char *n; uint32_t cp; } ent[] = {
                        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", 0xA0},
                        {"copy", 0xA9}, {"mdash", 0x2014}, {"ndash", 0x2013}, {"hellip", 0x2026}};
                    for (size_t k = 0; k < CST_ARRAY_LEN(ent); k++)
                        if (strlen(ent[k].n) == en && !strncmp(e, ent[k].n, en)) cp = ent[k].cp;
                }
                if (cp) {
                    if (o.pend && o.b->len) cst_buf_put(o.b, o.pend == 2 ? "\n" : " ", 1);
                    o.pend = 0;
                    put_utf8(o.b, cp);
                    i = j + 1;
                    continue;
                }
            }
        }
        size_t j = i;
        while (j < len && h[j] != '<' && h[j] != '&' && h[j] != ' ' && h[j] != '\t' && h[j] != '\n' && h[j] != '\r' &&
               h[j] != '\f')
            j++;
        if (j == i) j++; /* a lone '&' */
        h_text(&o, h + i, j - i);
        i = j;
    }
    cst_buf_put(&b, "", 0);
    if (b.oom) {
        cst_buf_free(&b);
        return NULL;
    }
    *out_len = b.len;
    return b.p;
}

/* ---- extraction ----------------------------------------------------------------------------- */

cst_status cst_doc_extract(const void *bytes, size_t len, const char *mime, const cst_doc_limits *lim, cst_doc *out,
                           char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    cst_doc_limits dl = lim ? *lim : cst_doc_default_limits();
    char m[128];
    bare_mime(mime ? mime : "", m, sizeof m);
    if (len > CST_DOC_MAX_BYTES) {
        snprintf(err, errlen, "the document is %zu bytes, over the limit of %zu bytes for a document", len,
                 (size_t)CST_DOC_MAX_BYTES);
        return CST_ERR_BAD_FORMAT;
    }
    if (!strcmp(m, "application/pdf")) return cst_pdf_extract(bytes, len, &dl, out, err, errlen);
    if (!is_text_mime(m)) {
        snprintf(err, errlen, "type '%s' is not a document type this server reads (%s)", mime ? mime : "", CST_DOC_TYPES);
        return CST_ERR_UNSUPPORTED;
    }
    const uint8_t *p = bytes;
    size_t n = len;
    if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) p += 3, n -= 3; /* BOM */
    bool nul = false;
    size_t bad = cst_utf8_check(p, n, &nul);
    if (bad < n) {
        size_t off = bad + (size_t)(p - (const uint8_t *)bytes);
        if (nul) snprintf(err, errlen, "the %s document has a NUL byte at byte offset %zu (text must be UTF-8)", m, off);
        else snprintf(err, errlen, "the %s document is not valid UTF-8 at byte offset %zu", m, off);
        return CST_ERR_BAD_FORMAT;
    }
    out->pages = calloc(1, sizeof *out->pages);
    if (!out->pages) return CST_ERR_NOMEM;
    out->n_pages = 1;
    cst_doc_page *pg = &out->pages[0];
    if (!strcmp(m, "text/html")) {
        pg->text = cst_html_text((const char *)p, n, &pg->text_len);
    } else {
        pg->text = malloc(n + 1);
        if (pg->text) {
            memcpy(pg->text, p, n);
            pg->text[n] = 0;
            pg->text_len = n;
        }
    }
    if (!pg->text) {
        cst_doc_free(out);
        return CST_ERR_NOMEM;
    }
    return CST_OK;
}

void cst_doc_free(cst_doc *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n_pages; i++) {
        free(d->pages[i].text);
        free(d->pages[i].png);
    }
    free(d->pages);
    memset(d, 0, sizeof *d);
}

cst_status cst_doc_copy(const cst_doc *s, cst_doc *d) {
    memset(d, 0, sizeof *d);
    d->paged = s->paged;
    if (!s->n_pages) return CST_OK;
    d->pages = calloc(s->n_pages, sizeof *d->pages);
    if (!d->pages) return CST_ERR_NOMEM;
    d->n_pages = s->n_pages;
    for (size_t i = 0; i < s->n_pages; i++) {
        const cst_doc_page *a = &s->pages[i];
        cst_doc_page *b = &d->pages[i];
        *b = (cst_doc_page){.text_len = a->text_len, .png_len = a->png_len, .width = a->width, .height = a->height};
        b->text = malloc(a->text_len + 1);
        if (b->text) memcpy(b->text, a->text, a->text_len + 1);
        if (a->png) {
            b->png = malloc(a->png_len);
            if (b->png) memcpy(b->png, a->png, a->png_len);
        }
        if (!b->text || (a->png && !b->png)) {
            cst_doc_free(d);
            return CST_ERR_NOMEM;
        }
    }
    return CST_OK;
}

size_t cst_doc_bytes(const cst_doc *d) {
    size_t n = sizeof *d + d->n_pages * sizeof *d->pages;
    for (size_t i = 0; i < d->n_pages; i++) n += d->pages[i].text_len + 1 + d->pages[i].png_len;
    return n;
}

/* ---- framing ---------------------------------------------------------------------------------- */

char *cst_doc_header(const char *name, const char *mime, size_t n_pages) {
    char *s = NULL;
    /* quotes and newlines in a name would break the frame */
    char nm[256];
    size_t k = 0;
    for (const char *p = name ? name : ""; *p && k + 1 < sizeof nm; p++)
        nm[k++] = (*p == '"' || *p == '\n' || *p == '\r' || *p == '<' || *p == '>') ? '_' : *p;
    nm[k] = 0;
    (void)n_pages;
    if (asprintf(&s, "<document name=\"%s\" type=\"%s\">\n", nm, mime) < 0) return NULL;
    return s;
}

char *cst_doc_page_line(size_t page, size_t n_pages) {
    char *s = NULL;
    if (asprintf(&s, "--- page %zu of %zu ---\n", page, n_pages) < 0) return NULL;
    return s;
}

const char *cst_doc_footer(void) { return "\n</document>\n"; }
