/* test_docs.c: the document module (src/docs): UTF-8 checks, HTML text,
 * framing, PDF text and page images through MuPDF, hostile PDFs. */
#include <stdlib.h>
#include <string.h>

#include "docs/docs.h"
#include "pdf_util.h"
#include "test.h"

TEST(docs_readable_types) {
    const char *yes[] = {"text/plain", "TEXT/Markdown", "text/csv", "text/html", "application/json",
                         "text/x-python", "text/x-c; charset=utf-8", "application/pdf"};
    const char *no[] = {"image/png", "audio/mpeg", "video/mp4", "application/zip", "text/x-", "text/rtf", "", NULL};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) ASSERT_MSG(cst_doc_readable(yes[i]), "%s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) ASSERT_MSG(!cst_doc_readable(no[i]), "%s", no[i] ? no[i] : "NULL");
}

TEST(docs_utf8_offsets) {
    bool nul;
    ASSERT_EQ(cst_utf8_check((const uint8_t *)"h\xc3\xa9llo", 6, &nul), 6);
    ASSERT_EQ(cst_utf8_check((const uint8_t *)"abc\xff", 4, &nul), 3);
    ASSERT(!nul);
    ASSERT_EQ(cst_utf8_check((const uint8_t *)"ab\0c", 4, &nul), 2);
    ASSERT(nul);
    ASSERT_EQ(cst_utf8_check((const uint8_t *)"a\xc0\x80", 3, &nul), 1);         /* overlong */
    ASSERT_EQ(cst_utf8_check((const uint8_t *)"a\xed\xa0\x80", 4, &nul), 1);     /* surrogate */
    ASSERT_EQ(cst_utf8_check((const uint8_t *)"ab\xe2\x82", 4, &nul), 2);        /* truncated */
    ASSERT_EQ(cst_utf8_check((const uint8_t *)"\xf0\x9f\x98\x80!", 5, &nul), 5); /* emoji */
    cst_doc d;
    char err[256];
    ASSERT_EQ(cst_doc_extract("abc\xff", 4, "text/plain", NULL, &d, err, sizeof err), CST_ERR_BAD_FORMAT);
    ASSERT_MSG(strstr(err, "byte offset 3"), "%s", err);
    ASSERT_EQ(cst_doc_extract("ab\0c", 4, "text/csv", NULL, &d, err, sizeof err), CST_ERR_BAD_FORMAT);
    ASSERT_MSG(strstr(err, "NUL byte at byte offset 2"), "%s", err);
    ASSERT_EQ(cst_doc_extract("x", 1, "audio/mpeg", NULL, &d, err, sizeof err), CST_ERR_UNSUPPORTED);
    ASSERT_MSG(strstr(err, "audio/mpeg") && strstr(err, "application/pdf"), "%s", err);
    /* BOM dropped, text kept byte for byte */
    ASSERT_EQ(cst_doc_extract("\xef\xbb\xbf" "a,b\n1,2\n", 11, "text/csv", NULL, &d, err, sizeof err), CST_OK);
    ASSERT_EQ(d.n_pages, 1);
    ASSERT(!d.paged);
    ASSERT_STREQ(d.pages[0].text, "a,b\n1,2\n");
    cst_doc_free(&d);
    /* over the size limit: refused from the length alone, before a byte is read */
    ASSERT_EQ(cst_doc_extract("x", CST_DOC_MAX_BYTES + 1, "text/plain", NULL, &d, err, sizeof err), CST_ERR_BAD_FORMAT);
    ASSERT_MSG(strstr(err, "over the limit of 67108864 bytes"), "%s", err);
    /* an empty text document is a valid one */
    ASSERT_EQ(cst_doc_extract("", 0, "text/plain", NULL, &d, err, sizeof err), CST_OK);
    ASSERT_STREQ(d.pages[0].text, "");
    cst_doc_free(&d);
}

TEST(docs_html_text) {
    const char *h = "<!DOCTYPE html><html><head><title>T</title><style>p{color:red}</style>"
                    "<script>var x = '<p>no</p>';</script></head><body><h1>Big  news</h1>"
                    "<p>Fish &amp; chips &lt;3 &#233;&#x41;</p><!-- hidden --><p>a<b>b</b>c &bogus; 1 < 2</p></body></html>";
    size_t n;
    char *t = cst_html_text(h, strlen(h), &n);
    ASSERT(t);
    ASSERT_STREQ(t, "T\nBig news\nFish & chips <3 \xc3\xa9" "A\nabc &bogus; 1 < 2");
    ASSERT_EQ(n, strlen(t));
    free(t);
    cst_doc d;
    char err[256];
    ASSERT_EQ(cst_doc_extract("<p>x</p>", 8, "text/html", NULL, &d, err, sizeof err), CST_OK);
    ASSERT_STREQ(d.pages[0].text, "x");
    cst_doc_free(&d);
}

TEST(docs_framing) {
    char *h = cst_doc_header("my \"notes\".txt", "text/plain", 1);
    ASSERT_STREQ(h, "<document name=\"my _notes_.txt\" type=\"text/plain\">\n");
    free(h);
    char *p = cst_doc_page_line(2, 3);
    ASSERT_STREQ(p, "--- page 2 of 3 ---\n");
    free(p);
    ASSERT_STREQ(cst_doc_footer(), "\n</document>\n");
}

TEST(docs_pdf_text_pages) {
    const char *pages[] = {"Alpha page one", "Bravo page two", "Charlie page three"};
    size_t len;
    char *pdf = test_pdf(pages, 3, &len);
    cst_doc d;
    char err[256] = "";
    ASSERT_MSG(cst_doc_extract(pdf, len, "application/pdf", NULL, &d, err, sizeof err) == CST_OK, "%s", err);
    ASSERT_EQ(d.n_pages, 3);
    ASSERT(d.paged);
    for (int i = 0; i < 3; i++) {
        ASSERT_STREQ(d.pages[i].text, pages[i]);
        ASSERT(!d.pages[i].png);
    }
    /* rendered at a side of 64: the page's long side fits */
    cst_doc r;
    cst_doc_limits lim = cst_doc_default_limits();
    lim.render_side = 64;
    ASSERT_MSG(cst_doc_extract(pdf, len, "application/pdf", &lim, &r, err, sizeof err) == CST_OK, "%s", err);
    ASSERT_EQ(r.n_pages, 3);
    for (int i = 0; i < 3; i++) {
        ASSERT(r.pages[i].png && r.pages[i].png_len > 8 && !memcmp(r.pages[i].png, "\x89PNG", 4));
        ASSERT_EQ(r.pages[i].height, 64);
        ASSERT(r.pages[i].width >= 48 && r.pages[i].width <= 50); /* 612/792*64 */
    }
    cst_doc c;
    ASSERT_EQ(cst_doc_copy(&r, &c), CST_OK);
    ASSERT_EQ(c.pages[2].png_len, r.pages[2].png_len);
    ASSERT(!memcmp(c.pages[2].png, r.pages[2].png, r.pages[2].png_len));
    ASSERT(cst_doc_bytes(&c) > c.pages[0].png_len * 3);
    cst_doc_free(&c);
    cst_doc_free(&r);
    /* limits: pages and pixels, each named */
    lim.max_pages = 2;
    ASSERT_EQ(cst_doc_extract(pdf, len, "application/pdf", &lim, &r, err, sizeof err), CST_ERR_BAD_FORMAT);
    ASSERT_MSG(strstr(err, "3 pages") && strstr(err, "limit of 2 pages"), "%s", err);
    lim.max_pages = 10;
    lim.max_pixels = 64 * 49 * 2;
    ASSERT_EQ(cst_doc_extract(pdf, len, "application/pdf", &lim, &r, err, sizeof err), CST_ERR_BAD_FORMAT);
    ASSERT_MSG(strstr(err, "budget of 6272 pixels"), "%s", err);
    cst_doc_free(&d);
    free(pdf);
}

TEST(docs_pdf_hostile) {
    cst_doc d;
    char err[256];
    /* not a PDF */
    ASSERT_EQ(cst_doc_extract("hello", 5, "application/pdf", NULL, &d, err, sizeof err), CST_ERR_BAD_FORMAT);
    ASSERT_MSG(strstr(err, "not a PDF"), "%s", err);
    /* a header and garbage */
    const char *junk = "%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF";
    ASSERT_EQ(cst_doc_extract(junk, strlen(junk), "application/pdf", NULL, &d, err, sizeof err), CST_ERR_BAD_FORMAT);
    ASSERT(strlen(err) > 10);
    /* truncated halfway */
    const char *pages[] = {"one", "two"};
    size_t len;
    char *pdf = test_pdf(pages, 2, &len);
    for (size_t cut = 0; cut < len; cut += 37) {
        cst_status st = cst_doc_extract(pdf, cut, "application/pdf", NULL, &d, err, sizeof err);
        if (st == CST_OK) cst_doc_free(&d); /* MuPDF may repair what is left */
        else ASSERT_EQ(st, CST_ERR_BAD_FORMAT);
    }
    /* a memory cap too small to open it */
    cst_doc_limits lim = cst_doc_default_limits();
    lim.mem_bytes = 4096;
    ASSERT_EQ(cst_doc_extract(pdf, len, "application/pdf", &lim, &d, err, sizeof err) != CST_OK, 1);
    free(pdf);
    /* encrypted: a standard security handler in the trailer */
    const char *enc =
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Count 0 /Kids [] >> endobj\n"
        "3 0 obj << /Filter /Standard /V 1 /R 2 /O (0123456789abcdef0123456789abcdef) /U "
        "(0123456789abcdef0123456789abcdef) /P -4 >> endobj\n"
        "trailer << /Size 4 /Root 1 0 R /Encrypt 3 0 R /ID [(abcdefghijklmnop) (abcdefghijklmnop)] >>\n%%EOF\n";
    ASSERT_EQ(cst_doc_extract(enc, strlen(enc), "application/pdf", NULL, &d, err, sizeof err), CST_ERR_BAD_FORMAT);
    ASSERT_MSG(strstr(err, "encrypted") || strstr(err, "damaged") || strstr(err, "no pages"), "%s", err);
}

/* The hostile corpus (tests/fuzz/seeds/docs_fuzz, docs_seeds.mjs) replayed
 * in the ordinary builds (ASan+UBSan in make test) with the fuzz target's
 * limits: every input ends in a document or an error with a message. */
#include <dirent.h>
#include "core/core.h"

TEST(docs_hostile_corpus) {
    static const char *const mimes[] = {"application/pdf", "text/plain", "text/html", "text/csv",
                                        "application/json", "text/x-c", "text/markdown", "application/pdf"};
    const char *src = getenv("CST_SOURCE");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/seeds/docs_fuzz", src ? src : "..");
    DIR *d = opendir(dir);
    ASSERT_MSG(d, "no %s", dir);
    struct dirent *e;
    int n = 0, n_err = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *b = NULL;
        size_t len = 0;
        ASSERT(cst_read_file(path, &b, &len) == CST_OK && len >= 2);
        cst_doc_limits lim = cst_doc_default_limits();
        lim.max_pages = 20;
        lim.max_pixels = 256 * 1024;
        lim.mem_bytes = (size_t)64 << 20;
        lim.render_side = (b[1] & 1) ? 32 : 0;
        cst_doc doc;
        char err[512] = "";
        cst_status st = cst_doc_extract(b + 2, len - 2, mimes[b[0] & 7], &lim, &doc, err, sizeof err);
        if (st) {
            ASSERT_MSG(err[0] && !doc.pages, "%s: no message", e->d_name);
            n_err++;
        } else {
            ASSERT_MSG(doc.n_pages >= 1 && doc.n_pages <= 20, "%s: %zu pages", e->d_name, doc.n_pages);
            cst_doc_free(&doc);
        }
        if (getenv("CST_TEST_VERBOSE")) printf("      %-22s %s\n", e->d_name, st ? err : "ok");
        free(b);
        n++;
    }
    closedir(d);
    ASSERT(n >= 20);
    ASSERT(n_err >= 10); /* most of the corpus is refused */
}
