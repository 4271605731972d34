/* pdf.c: PDF text and page images through MuPDF (Debian's libmupdf-dev).
 * Each document gets its own fz_context whose allocator counts bytes and
 * refuses past lim->mem_bytes, so a decompression bomb or a huge object graph
 * ends as an error, never as unbounded memory. MuPDF's messages go to our
 * callbacks (kept for the error text), never to stderr. */
#define _GNU_SOURCE
#include <mupdf/fitz.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "docs/docs.h"

typedef struct {
    size_t used, cap;
    bool over;         /* an allocation was refused by the cap */
    char last[200];    /* last MuPDF warning, for messages */
} pdf_heap;

/* a size header in front of every block */
#define HDR 16

static void *h_malloc(void *u, size_t n) {
    pdf_heap *h = u;
    if (n > h->cap || h->used > h->cap - n) {
        h->over = true;
        return NULL;
    }
    char *p = malloc(n + HDR);
    if (!p) return NULL;
    *(size_t *)p = n;
    h->used += n;
    return p + HDR;
}

static void h_free(void *u, void *q) {
    pdf_heap *h = u;
    if (!q) return;
    char *p = (char *)q - HDR;
    h->used -= *(size_t *)p;
    free(p);
}

static void *h_realloc(void *u, void *q, size_t n) {
    pdf_heap *h = u;
    if (!q) return h_malloc(u, n);
    if (n == 0) {
        h_free(u, q);
        return NULL;
    }
    char *p = (char *)q - HDR;
    size_t old = *(size_t *)p;
    if (n > old && (n - old > h->cap || h->used > h->cap - (n - old))) {
        h->over = true;
        return NULL;
    }
    char *np = realloc(p, n + HDR);
    if (!np) return NULL;
    *(size_t *)np = n;
    h->used = h->used - old + n;
    return np + HDR;
}

static void on_warning(void *u, const char *msg) {
    pdf_heap *h = u;
    snprintf(h->last, sizeof h->last, "%s", msg);
}

static void on_error(void *u, const char *msg) { on_warning(u, msg); }

static char *dup_text(fz_context *ctx, fz_buffer *buf, size_t *out_len) {
    unsigned char *data = NULL;
    size_t n = fz_buffer_storage(ctx, buf, &data);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    /* NULs (from broken ToUnicode maps) would cut the prompt: drop them */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (data[i]) s[k++] = (char)data[i];
    /* trailing blank lines of the page */
    while (k && (s[k - 1] == '\n' || s[k - 1] == ' ')) k--;
    s[k] = 0;
    *out_len = k;
    return s;
}

cst_status cst_pdf_extract(const void *bytes, size_t len, const cst_doc_limits *lim, cst_doc *out, char *err,
                           size_t errlen) {
    memset(out, 0, sizeof *out);
    pdf_heap heap = {.cap = lim->mem_bytes ? lim->mem_bytes : ((size_t)256 << 20)};
    fz_alloc_context alloc = {&heap, h_malloc, h_realloc, h_free};
    /* the resource store (fonts, images) lives inside the cap as well */
    fz_context *ctx = fz_new_context(&alloc, NULL, heap.cap / 4);
    if (!ctx) {
        snprintf(err, errlen, "the PDF reader could not start (memory limit %zu bytes)", heap.cap);
        return CST_ERR_NOMEM;
    }
    fz_set_warning_callback(ctx, on_warning, &heap);
    fz_set_error_callback(ctx, on_error, &heap);
    cst_status st = CST_OK;
    fz_buffer *buf = NULL;
    fz_stream *stm = NULL;
    fz_document *doc = NULL;
    fz_page *page = NULL;
    fz_stext_page *tp = NULL;
    fz_buffer *tb = NULL;
    fz_pixmap *pix = NULL;
    fz_buffer *png = NULL;
    volatile size_t at = 0; /* page being read (1-based in messages) */
    volatile int stage = 0; /* 0 open, 1 pages */
    uint64_t pixels = 0;
    fz_var(buf);
    fz_var(stm);
    fz_var(doc);
    fz_var(page);
    fz_var(tp);
    fz_var(tb);
    fz_var(pix);
    fz_var(png);
    fz_var(st);
    fz_try(ctx) {
        fz_register_document_handlers(ctx);
        if (len < 5 || memcmp(bytes, "%PDF-", 5)) {
            /* MuPDF would still try to repair; a file that does not even start
             * like a PDF is someone else's type */
            if (!memmem(bytes, len < 1024 ? len : 1024, "%PDF-", 5)) {
                snprintf(err, errlen, "the document is not a PDF (no %%PDF- header)");
                st = CST_ERR_BAD_FORMAT;
                fz_throw(ctx, FZ_ERROR_GENERIC, "not a PDF");
            }
        }
        buf = fz_new_buffer_from_shared_data(ctx, bytes, len);
        stm = fz_open_buffer(ctx, buf);
        doc = fz_open_document_with_stream(ctx, "application/pdf", stm);
        if (fz_needs_password(ctx, doc)) {
            snprintf(err, errlen, "the PDF is encrypted (password protected); send a decrypted copy");
            st = CST_ERR_BAD_FORMAT;
            fz_throw(ctx, FZ_ERROR_GENERIC, "encrypted");
        }
        int np = fz_count_pages(ctx, doc);
        if (np <= 0) {
            snprintf(err, errlen, "the PDF has no pages");
            st = CST_ERR_BAD_FORMAT;
            fz_throw(ctx, FZ_ERROR_GENERIC, "no pages");
        }
        if (lim->max_pages && (size_t)np > lim->max_pages) {
            snprintf(err, errlen, "the PDF has %d pages, over this server's limit of %zu pages (--pdf-max-pages)", np,
                     lim->max_pages);
            st = CST_ERR_BAD_FORMAT;
            fz_throw(ctx, FZ_ERROR_GENERIC, "too many pages");
        }
        out->pages = calloc((size_t)np, sizeof *out->pages);
        if (!out->pages) {
            st = CST_ERR_NOMEM;
            fz_throw(ctx, FZ_ERROR_GENERIC, "out of memory");
        }
        out->n_pages = (size_t)np;
        out->paged = true;
        stage = 1;
        for (int i = 0; i < np; i++) {
            at = (size_t)i + 1;
            cst_doc_page *pg = &out->pages[i];
            page = fz_load_page(ctx, doc, i);
            fz_stext_options opts = {.flags = FZ_STEXT_DEHYPHENATE};
            tp = fz_new_stext_page_from_page(ctx, page, &opts);
            tb = fz_new_buffer_from_stext_page(ctx, tp);
            pg->text = dup_text(ctx, tb, &pg->text_len);
            fz_drop_buffer(ctx, tb);
            tb = NULL;
            fz_drop_stext_page(ctx, tp);
            tp = NULL;
            if (!pg->text) {
                st = CST_ERR_NOMEM;
                fz_throw(ctx, FZ_ERROR_GENERIC, "out of memory");
            }
            if (lim->render_side > 0) {
                fz_rect r = fz_bound_page(ctx, page);
                float w = r.x1 - r.x0, h = r.y1 - r.y0;
                /* usable: sides of 0.5 to 1e5 points, neither thinner than a pixel at the render size */
                const bool sane = w > 0.5f && h > 0.5f && w <= 1e5f && h <= 1e5f;
                float zoom = sane ? (float)lim->render_side / (w > h ? w : h) : 0.0f;
                fz_matrix ctm = fz_scale(zoom, zoom);
                fz_irect ir = fz_round_rect(fz_transform_rect(r, ctm));
                if (!sane || ir.x1 <= ir.x0 || ir.y1 <= ir.y0) {
                    snprintf(err, errlen, "page %zu of the PDF has an unusable size (%gx%g points)", (size_t)at,
                             (double)w, (double)h);
                    st = CST_ERR_BAD_FORMAT;
                    fz_throw(ctx, FZ_ERROR_GENERIC, "page size");
                }
                uint64_t pw = (uint64_t)(ir.x1 - ir.x0), ph = (uint64_t)(ir.y1 - ir.y0);
                pixels += pw * ph;
                if (lim->max_pixels && pixels > lim->max_pixels) {
                    snprintf(err, errlen,
                             "rendering the PDF's pages takes over this server's budget of %llu pixels "
                             "(--pdf-max-pixels; page %zu of %d at %dx%d)",
                             (unsigned long long)lim->max_pixels, (size_t)at, np, (int)pw, (int)ph);
                    st = CST_ERR_BAD_FORMAT;
                    fz_throw(ctx, FZ_ERROR_GENERIC, "pixel budget");
                }
                pix = fz_new_pixmap_from_page(ctx, page, ctm, fz_device_rgb(ctx), 0);
                png = fz_new_buffer_from_pixmap_as_png(ctx, pix, fz_default_color_params);
                unsigned char *pd = NULL;
                size_t pl = fz_buffer_storage(ctx, png, &pd);
                if (!pl || !pd) {
                    snprintf(err, errlen, "page %zu of the PDF did not render to an image", (size_t)at);
                    st = CST_ERR_BAD_FORMAT;
                    fz_throw(ctx, FZ_ERROR_GENERIC, "empty image");
                }
                pg->png = malloc(pl);
                if (!pg->png) {
                    st = CST_ERR_NOMEM;
                    fz_throw(ctx, FZ_ERROR_GENERIC, "out of memory");
                }
                memcpy(pg->png, pd, pl);
                pg->png_len = pl;
                pg->width = fz_pixmap_width(ctx, pix);
                pg->height = fz_pixmap_height(ctx, pix);
                fz_drop_buffer(ctx, png);
                png = NULL;
                fz_drop_pixmap(ctx, pix);
                pix = NULL;
            }
            fz_drop_page(ctx, page);
            page = NULL;
        }
    }
    fz_always(ctx) {
        fz_drop_buffer(ctx, png);
        fz_drop_pixmap(ctx, pix);
        fz_drop_buffer(ctx, tb);
        fz_drop_stext_page(ctx, tp);
        fz_drop_page(ctx, page);
        fz_drop_document(ctx, doc);
        fz_drop_stream(ctx, stm);
        fz_drop_buffer(ctx, buf);
    }
    fz_catch(ctx) {
        if (st == CST_OK) { /* MuPDF's own error */
            st = CST_ERR_BAD_FORMAT;
            const char *why = heap.over ? "" : fz_caught_message(ctx);
            if (heap.over && stage)
                snprintf(err, errlen, "the PDF needs more than this server's %zu MiB to read page %zu", heap.cap >> 20,
                         (size_t)at);
            else if (heap.over) snprintf(err, errlen, "the PDF needs more than this server's %zu MiB to open", heap.cap >> 20);
            else if (stage)
                snprintf(err, errlen, "the PDF is damaged: page %zu cannot be read (%.200s)", (size_t)at, why);
            else snprintf(err, errlen, "the PDF is damaged and cannot be opened (%.200s)", why);
        }
    }
    fz_drop_context(ctx);
    if (st) cst_doc_free(out);
    return st;
}
