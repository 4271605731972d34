/* docs.h: documents as prompt text (and page images). A document's bytes and
 * MIME type go in; its UTF-8 text (per page for PDF) and, when asked, every PDF
 * page rendered as a PNG come out. Knows nothing of JSON, HTTP or models:
 * src/api and src/cli frame the result into a prompt (docs/internals/documents.md).
 */
#ifndef CST_DOCS_H
#define CST_DOCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "castor.h"

typedef struct cst_doc_limits {
    size_t max_pages;    /* a PDF with more pages is refused (0: no limit) */
    uint64_t max_pixels; /* rendered pixels over all pages (0: no limit) */
    size_t mem_bytes;    /* MuPDF's heap cap for one document */
    int render_side;     /* > 0: render each PDF page to fit a side x side square */
} cst_doc_limits;

cst_doc_limits cst_doc_default_limits(void); /* 100 pages, 64 Mpixel, 256 MiB, no rendering */

/* Documents larger than this are refused before they are read (a text that
 * long could never fit a context; callers check the size first). */
#define CST_DOC_MAX_BYTES ((size_t)64 << 20)

typedef struct cst_doc_page {
    char *text;      /* UTF-8, NUL-terminated, no NUL inside */
    size_t text_len;
    uint8_t *png;    /* rendered page (render_side > 0), else NULL */
    size_t png_len;
    int width, height;
} cst_doc_page;

typedef struct cst_doc {
    cst_doc_page *pages; /* a text document has one page */
    size_t n_pages;
    bool paged;          /* PDF: page separators apply */
} cst_doc;

/* The document kinds read here: text/plain, text/markdown, text/csv,
 * text/html, application/json, text/x-* and application/pdf (case-insensitive,
 * parameters such as "; charset=utf-8" ignored). */
bool cst_doc_readable(const char *mime);
/* What cst_doc_readable accepts, for messages. */
#define CST_DOC_TYPES "text/plain, text/markdown, text/csv, text/html, application/json, text/x-*, application/pdf"

/* Extract bytes of type mime into out. Errors (unsupported type, invalid
 * UTF-8 with its byte offset, NUL bytes, an encrypted / damaged PDF, a limit)
 * return CST_ERR_UNSUPPORTED (type) or CST_ERR_BAD_FORMAT (everything else)
 * with a message in err; CST_ERR_NOMEM only for our own allocations. */
cst_status cst_doc_extract(const void *bytes, size_t len, const char *mime, const cst_doc_limits *lim, cst_doc *out,
                           char *err, size_t errlen);
void cst_doc_free(cst_doc *d); /* NULL ok; leaves d zeroed */
/* Deep copy (for caches). */
cst_status cst_doc_copy(const cst_doc *src, cst_doc *dst);
size_t cst_doc_bytes(const cst_doc *d); /* memory held, for cache budgets */

/* UTF-8 check: returns the offset of the first invalid byte (or NUL), or
 * len when every byte is valid. *nul tells a NUL byte from bad UTF-8. */
size_t cst_utf8_check(const uint8_t *p, size_t len, bool *nul);

/* The text of an HTML document: tags dropped (script/style with their
 * content), block elements as line breaks, entities decoded, whitespace
 * collapsed. Returns malloc'd UTF-8 or NULL (out of memory). */
char *cst_html_text(const char *html, size_t len, size_t *out_len);

/* The framing a prompt uses (docs/internals/documents.md), malloc'd:
 *   <document name="NAME" type="MIME">\n ... \n</document>\n
 * with "--- page I of N ---" lines before each page of a paged document.
 * Page texts go between; images (when rendered) go right after a page line. */
char *cst_doc_header(const char *name, const char *mime, size_t n_pages);
char *cst_doc_page_line(size_t page, size_t n_pages);
const char *cst_doc_footer(void);

/* PDF (pdf.c, MuPDF). */
cst_status cst_pdf_extract(const void *bytes, size_t len, const cst_doc_limits *lim, cst_doc *out, char *err,
                           size_t errlen);

#endif
