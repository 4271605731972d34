/* pdf_util.h: minimal PDFs for tests: one Helvetica text line per page,
 * with a correct xref table. Returns malloc'd bytes. */
#ifndef CST_TEST_PDF_UTIL_H
#define CST_TEST_PDF_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *test_pdf(const char *const *pages, int n, size_t *out_len) {
    size_t cap = 4096 + (size_t)n * 512;
    for (int i = 0; i < n; i++) cap += strlen(pages[i]);
    char *b = malloc(cap);
    size_t *off = calloc((size_t)(4 + 2 * n), sizeof *off);
    size_t len = 0;
    int obj = 0;
#define PUT(...) (len += (size_t)snprintf(b + len, cap - len, __VA_ARGS__))
    PUT("%%PDF-1.4\n");
    off[++obj] = len; /* 1: catalog */
    PUT("1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n");
    off[++obj] = len; /* 2: pages */
    PUT("2 0 obj << /Type /Pages /Count %d /Kids [", n);
    for (int i = 0; i < n; i++) PUT(" %d 0 R", 4 + 2 * i);
    PUT(" ] >> endobj\n");
    off[++obj] = len; /* 3: font */
    PUT("3 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n");
    for (int i = 0; i < n; i++) {
        char content[1024];
        int cl = snprintf(content, sizeof content, "BT /F1 24 Tf 72 700 Td (%s) Tj ET", pages[i]);
        off[++obj] = len;
        PUT("%d 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            "/Contents %d 0 R >> endobj\n",
            obj, obj + 1);
        off[++obj] = len;
        PUT("%d 0 obj << /Length %d >> stream\n%s\nendstream endobj\n", obj, cl, content);
    }
    size_t xref = len;
    PUT("xref\n0 %d\n0000000000 65535 f \n", obj + 1);
    for (int i = 1; i <= obj; i++) PUT("%010zu 00000 n \n", off[i]);
    PUT("trailer << /Size %d /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", obj + 1, xref);
#undef PUT
    free(off);
    *out_len = len;
    return b;
}

#endif
