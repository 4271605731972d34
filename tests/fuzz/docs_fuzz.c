/* docs_fuzz.c: the document path (src/docs): text types (UTF-8 check, HTML to
 * text) and PDF through MuPDF (text of every page, pages rendered small),
 * with low limits (20 pages, 256k pixels, 64 MiB for MuPDF's heap). Byte 0
 * picks the MIME type, byte 1 bit 0 turns page rendering on (side 32, the
 * tiny projector's); the rest is the document (an exact-size copy).
 * Properties (trap on violation): failure leaves a message and a zeroed
 * document; success gives >= 1 page, each text NUL-terminated at text_len
 * with no NUL inside and valid UTF-8 for the text types; a text document's
 * text equals its input minus a BOM (HTML: at most as long as the input plus
 * entity growth); a rendered page is a PNG no larger than the side; a paged
 * document only for PDF. Seeds: tests/fuzz/seeds/docs_fuzz (valid, damaged,
 * encrypted and adversarial PDFs, bad UTF-8, NULs, HTML).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "docs/docs.h"

static const char *const MIMES[] = {"application/pdf", "text/plain", "text/html", "text/csv",
                                    "application/json", "text/x-c", "text/markdown", "application/pdf"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const char *mime = MIMES[data[0] & 7];
    cst_doc_limits lim = cst_doc_default_limits();
    lim.max_pages = 20;
    lim.max_pixels = 256 * 1024;
    lim.mem_bytes = (size_t)64 << 20;
    lim.render_side = (data[1] & 1) ? 32 : 0;
    size_t n = size - 2;
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy) return 0;
    memcpy(copy, data + 2, n);
    cst_doc d;
    char err[512] = "";
    cst_status st = cst_doc_extract(copy, n, mime, &lim, &d, err, sizeof err);
    const bool pdf = !strcmp(mime, "application/pdf");
    if (st) {
        if (!err[0] || d.pages || d.n_pages) __builtin_trap();
    } else {
        if (d.n_pages < 1 || !d.pages || d.paged != pdf) __builtin_trap();
        if (pdf && d.n_pages > lim.max_pages) __builtin_trap();
        for (size_t i = 0; i < d.n_pages; i++) {
            const cst_doc_page *p = &d.pages[i];
            if (!p->text || p->text[p->text_len] != 0 || strlen(p->text) != p->text_len) __builtin_trap();
            if (!pdf) {
                bool nul;
                if (cst_utf8_check((const uint8_t *)p->text, p->text_len, &nul) != p->text_len) __builtin_trap();
            }
            if (p->png) {
                if (!lim.render_side || p->png_len < 8 || memcmp(p->png, "\x89PNG", 4)) __builtin_trap();
                if (p->width < 1 || p->height < 1 || p->width > 33 || p->height > 33) __builtin_trap();
            } else if (pdf && lim.render_side) {
                __builtin_trap();
            }
        }
        if (!pdf && strcmp(mime, "text/html")) {
            size_t skip = n >= 3 && !memcmp(copy, "\xef\xbb\xbf", 3) ? 3 : 0;
            if (d.pages[0].text_len != n - skip || memcmp(d.pages[0].text, copy + skip, n - skip)) __builtin_trap();
        }
        cst_doc c;
        if (cst_doc_copy(&d, &c) == CST_OK) {
            if (c.n_pages != d.n_pages || cst_doc_bytes(&c) != cst_doc_bytes(&d)) __builtin_trap();
            cst_doc_free(&c);
        }
        cst_doc_free(&d);
    }
    free(copy);
    return 0;
}
