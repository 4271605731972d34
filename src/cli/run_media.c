/* run_media.c: `castor run` with images and documents, as llama-mtmd-cli:
 *   castor run -m MODEL --mmproj PROJ --image FILE [--image FILE2 ...] -p PROMPT
 *   castor run -m MODEL [--mmproj PROJ] --file doc.pdf [-p PROMPT]
 * Without --chat, -p is the raw prompt (BOS added, special tokens parsed);
 * each "<__media__>" marks where the next --image goes (none: the images go
 * before the text). A --file document is framed as the server frames it
 * (docs/internals/documents.md) and goes before the prompt text; with a
 * projector every PDF page is also fed as an image (after its page line).
 * --chat renders the whole as one user message through the template.
 * Images: gemma3's <start_of_image>, the projector's rows (one non-causal
 * block), <end_of_image>, exactly as the server and llama.cpp build them.
 */
#define _GNU_SOURCE /* memmem */
#include "cli.h"
#include "core/core.h"
#include "core/pool.h"
#include "docs/docs.h"
#include "engine/engine.h"
#include "engine/vision/vision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char MARK[] = "\xEE\x80\x82" "cst-run-image" "\xEE\x80\x83";
#define MARK_LEN (sizeof MARK - 1)

typedef struct {
    uint8_t *bytes;
    size_t len;
    char what[300];
    bool owned;
} src_img;

static const char *mime_of(const char *path, const void *bytes, size_t len) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash)) {
        static const struct { const char *ext, *mime; } map[] = {
            {"txt", "text/plain"}, {"text", "text/plain"}, {"md", "text/markdown"}, {"markdown", "text/markdown"},
            {"csv", "text/csv"}, {"html", "text/html"}, {"htm", "text/html"}, {"json", "application/json"},
            {"pdf", "application/pdf"}, {"c", "text/x-c"}, {"h", "text/x-c"}, {"py", "text/x-python"},
            {"js", "text/x-javascript"}, {"sh", "text/x-shellscript"}, {"rs", "text/x-rust"}, {"go", "text/x-go"}};
        for (size_t i = 0; i < CST_ARRAY_LEN(map); i++)
            if (!strcasecmp(dot + 1, map[i].ext)) return map[i].mime;
    }
    if (len >= 5 && !memcmp(bytes, "%PDF-", 5)) return "application/pdf";
    return "text/plain";
}

static bool push(cst_token **t, size_t *n, size_t *cap, const cst_token *src, size_t k) {
    if (*n + k > *cap) {
        size_t nc = CST_MAX(*cap * 2, *n + k + 64);
        cst_token *nt = realloc(*t, nc * sizeof *nt);
        if (!nt) return false;
        *t = nt;
        *cap = nc;
    }
    memcpy(*t + *n, src, k * sizeof *src);
    *n += k;
    return true;
}

/* tokens of text[a,b) with the plain ranges clipped to it */
static cst_status tok_piece(const cst_vocab *v, const char *text, size_t a, size_t b, const size_t *rg, size_t nr,
                            bool add_special, cst_token **t, size_t *n, size_t *cap) {
    size_t *c = malloc((nr + 1) * 2 * sizeof *c), k = 0;
    if (!c) return CST_ERR_NOMEM;
    for (size_t i = 0; i < nr; i++) {
        size_t lo = CST_MAX(rg[2 * i], a), hi = CST_MIN(rg[2 * i + 1], b);
        if (lo < hi) {
            c[2 * k] = lo - a;
            c[2 * k + 1] = hi - a;
            k++;
        }
    }
    cst_token *o = NULL;
    size_t no = 0;
    cst_status st = CST_OK;
    if (b > a || add_special) st = cst_tokenize_plain_ranges(v, text + a, b - a, add_special, c, k, &o, &no);
    free(c);
    if (!st && !push(t, n, cap, o, no)) st = CST_ERR_NOMEM;
    free(o);
    return st;
}

int cst_run_media(cst_model *m, const cst_run_media_opts *o) {
    char err[CST_ERRMSG_LEN] = "";
    int rc = 1;
    cst_vision *vis = NULL;
    cst_pool *pool = NULL;
    cst_doc doc = {0};
    src_img *srcs = NULL;
    size_t n_src = 0;
    cst_buf user = {0}, docf = {0};
    char *fin = NULL, *fbytes = NULL;
    size_t flen = 0, fin_len = 0, *ranges = NULL, nr = 0;
    size_t doc_lo = 0, doc_hi = 0; /* the document's text in user (plain in raw mode) */
    cst_token *toks = NULL;
    size_t np = 0, cap = 0;
    cst_cli_embd *ib = NULL;
    size_t nib = 0;
    cst_ctx *ctx = NULL;
    const cst_vocab *v = cst_model_vocab(m);
    const char *text = o->text ? o->text : "";

    if (o->n_images && !o->mmproj) {
        fprintf(stderr, "castor run: --image needs --mmproj PROJ (the model's vision projector)\n");
        return 2;
    }
    if (o->mmproj) {
        cst_status st = cst_vision_load(o->mmproj, &vis, err, sizeof err);
        if (st) {
            fprintf(stderr, "castor run: --mmproj %s: %s\n", o->mmproj, err);
            return 1;
        }
        pool = cst_pool_new(o->n_threads > 0 ? o->n_threads : 0);
    }
    srcs = calloc((size_t)o->n_images + 1, sizeof *srcs);
    if (!srcs) goto oom;
    /* the document: framed text, page images as markers */
    if (o->file) {
        struct stat sb;
        if (stat(o->file, &sb) == 0 && (uint64_t)sb.st_size > (uint64_t)CST_DOC_MAX_BYTES) {
            fprintf(stderr, "castor run: %s is %lld bytes, over the limit of %zu bytes for a document\n", o->file,
                    (long long)sb.st_size, (size_t)CST_DOC_MAX_BYTES);
            rc = 2;
            goto out;
        }
        if (cst_read_file(o->file, &fbytes, &flen)) {
            fprintf(stderr, "castor run: cannot read --file %s\n", o->file);
            rc = 2;
            goto out;
        }
        const char *mime = o->file_type ? o->file_type : mime_of(o->file, fbytes, flen);
        cst_doc_limits lim = cst_doc_default_limits();
        lim.render_side = vis ? cst_vision_image_size(vis) : 0;
        cst_status st = cst_doc_extract(fbytes, flen, mime, &lim, &doc, err, sizeof err);
        if (st) {
            fprintf(stderr, "castor run: %s: %s\n", o->file, err);
            goto out;
        }
        const char *base = strrchr(o->file, '/');
        char *h = cst_doc_header(base ? base + 1 : o->file, mime, doc.n_pages);
        if (!h) goto oom;
        cst_buf_put(&docf, h, strlen(h));
        free(h);
        size_t n_pg_img = 0;
        for (size_t i = 0; i < doc.n_pages; i++) n_pg_img += doc.pages[i].png != NULL;
        src_img *ns = realloc(srcs, ((size_t)o->n_images + n_pg_img + 1) * sizeof *ns);
        if (!ns) goto oom;
        srcs = ns;
        for (size_t i = 0; i < doc.n_pages; i++) {
            cst_doc_page *pg = &doc.pages[i];
            if (doc.paged) {
                char *pl = cst_doc_page_line(i + 1, doc.n_pages);
                if (!pl) goto oom;
                cst_buf_put(&docf, pl, strlen(pl));
                free(pl);
            }
            if (pg->png) {
                cst_buf_put(&docf, MARK, MARK_LEN);
                cst_buf_put(&docf, "\n", 1);
            }
            cst_buf_put(&docf, pg->text, pg->text_len);
            if (doc.paged && i + 1 < doc.n_pages) cst_buf_put(&docf, "\n", 1);
        }
        cst_buf_put(&docf, cst_doc_footer(), strlen(cst_doc_footer()));
        if (docf.oom) goto oom;
    }
    /* -p with "<__media__>" -> our marker; count them */
    static const char media[] = "<__media__>";
    size_t n_marks = 0;
    for (const char *q = text; (q = strstr(q, media)); q += sizeof media - 1) n_marks++;
    if (n_marks && n_marks != (size_t)o->n_images) {
        fprintf(stderr, "castor run: the prompt has %zu <__media__> markers for %d --image files\n", n_marks,
                o->n_images);
        rc = 2;
        goto out;
    }
    size_t n_doc_img = 0;
    for (size_t i = 0; i < doc.n_pages; i++) n_doc_img += doc.pages[i].png != NULL;
    /* image order = marker order: [--image before the text], document pages, [--image at markers] */
    if (!n_marks)
        for (int i = 0; i < o->n_images; i++) cst_buf_put(&user, MARK, MARK_LEN);
    doc_lo = user.len;
    if (docf.len) cst_buf_put(&user, docf.p, docf.len);
    doc_hi = user.len;
    for (const char *q = text;;) {
        const char *e = strstr(q, media);
        cst_buf_put(&user, q, e ? (size_t)(e - q) : strlen(q));
        if (!e) break;
        cst_buf_put(&user, MARK, MARK_LEN);
        q = e + sizeof media - 1;
    }
    cst_buf_put(&user, "", 0);
    if (user.oom) goto oom;
    for (int i = 0; i < o->n_images; i++) {
        char *b = NULL;
        size_t l = 0;
        if (cst_read_file(o->images[i], &b, &l)) {
            fprintf(stderr, "castor run: cannot read --image %s\n", o->images[i]);
            rc = 2;
            goto out;
        }
        src_img si = {.bytes = (uint8_t *)b, .len = l, .owned = true};
        snprintf(si.what, sizeof si.what, "%s", o->images[i]);
        size_t at = n_marks ? n_doc_img + (size_t)i : (size_t)i;
        srcs[at] = si;
    }
    {
        size_t k = 0;
        for (size_t i = 0; i < doc.n_pages; i++)
            if (doc.pages[i].png) {
                size_t at = n_marks ? k : (size_t)o->n_images + k;
                srcs[at] = (src_img){.bytes = doc.pages[i].png, .len = doc.pages[i].png_len};
                snprintf(srcs[at].what, sizeof srcs[at].what, "page %zu of %s", i + 1, o->file);
                k++;
            }
    }
    n_src = (size_t)o->n_images + n_doc_img;
    /* render */
    bool add_special = true;
    if (o->chat) {
        rc = cst_run_chat_render(m, o->chat_tpl, user.p, &fin, &fin_len, &ranges, &nr, &add_special);
        if (rc) goto out;
        rc = 1;
    } else {
        fin = strdup(user.p);
        if (!fin) goto oom;
        fin_len = user.len;
        if (doc_hi > doc_lo) { /* the document is data: never special tokens */
            ranges = malloc(2 * sizeof *ranges);
            if (!ranges) goto oom;
            ranges[0] = doc_lo;
            ranges[1] = doc_hi;
            nr = 1;
        }
    }
    /* tokens: pieces between markers, image blocks at the markers */
    const bool gemma3 = vis && !strcmp(cst_vision_projector(vis), "gemma3");
    const cst_token boi = gemma3 ? cst_vocab_find(v, "<start_of_image>", 16) : -1;
    const cst_token eoi = gemma3 ? cst_vocab_find(v, "<end_of_image>", 14) : -1;
    ib = calloc(n_src + 1, sizeof *ib);
    if (!ib) goto oom;
    size_t from = 0;
    for (size_t i = 0;; i++) {
        const char *q = memmem(fin + from, fin_len - from, MARK, MARK_LEN);
        size_t to = q ? (size_t)(q - fin) : fin_len;
        cst_status st = tok_piece(v, fin, from, to, ranges, nr, i == 0 && add_special, &toks, &np, &cap);
        if (st) {
            fprintf(stderr, "castor run: cannot tokenize the prompt (%s)\n", cst_status_str(st));
            goto out;
        }
        if (!q) break;
        if (nib == n_src) {
            fprintf(stderr, "castor run: the prompt holds more image markers than images\n");
            goto out;
        }
        /* encode */
        src_img *si = &srcs[nib];
        cst_image img = {0};
        cst_status ds = cst_image_decode(si->bytes, si->len, NULL, &img, err, sizeof err);
        if (ds) {
            fprintf(stderr, "castor run: %s: %s\n", si->what, err);
            goto out;
        }
        const int nt = cst_vision_n_tokens(vis), ne = cst_vision_n_embd(vis);
        if (ne != cst_model_n_embd(m)) {
            cst_image_free(&img);
            fprintf(stderr, "castor run: the projector's width %d is not the model's %d\n", ne, cst_model_n_embd(m));
            goto out;
        }
        float *rows = malloc((size_t)nt * (size_t)ne * sizeof *rows);
        if (!rows) {
            cst_image_free(&img);
            goto oom;
        }
        double t0 = cst_time_now();
        ds = cst_vision_encode(vis, &img, rows, pool, err, sizeof err);
        cst_image_free(&img);
        if (ds) {
            free(rows);
            fprintf(stderr, "castor run: %s: the vision encoder failed: %s\n", si->what, err);
            goto out;
        }
        if (o->verbose) fprintf(stderr, "[image %s: %d tokens in %.3f s]\n", si->what, nt, cst_time_now() - t0);
        if (boi >= 0 && !push(&toks, &np, &cap, &boi, 1)) {
            free(rows);
            goto oom;
        }
        const cst_token mk = cst_embd_marker(0x1000u + nib);
        ib[nib] = (cst_cli_embd){.pos = (int32_t)np, .n_rows = nt, .rows = rows, .marker = mk};
        nib++;
        for (int j = 0; j < nt; j++)
            if (!push(&toks, &np, &cap, &mk, 1)) goto oom;
        if (eoi >= 0 && !push(&toks, &np, &cap, &eoi, 1)) goto oom;
        from = to + MARK_LEN;
    }
    if (nib != n_src) {
        fprintf(stderr, "castor run: %zu images but %zu places for them in the prompt\n", n_src, nib);
        goto out;
    }
    if (np == 0 || (nib && (size_t)ib[nib - 1].pos + (size_t)ib[nib - 1].n_rows == np)) {
        fprintf(stderr, "castor run: the prompt must end with text\n");
        goto out;
    }
    cst_ctx_params cp = cst_ctx_default_params();
    cp.n_ctx = o->n_ctx > 0 ? o->n_ctx : CST_MIN(cst_model_n_ctx_train(m), 4096);
    int32_t n_batch = (int32_t)CST_MIN(np, (size_t)512);
    for (size_t i = 0; i < nib; i++) n_batch = CST_MAX(n_batch, ib[i].n_rows);
    cp.n_batch = n_batch;
    cp.n_threads = o->n_threads;
    if (np >= (size_t)cp.n_ctx) {
        fprintf(stderr, "castor run: prompt of %zu tokens does not fit the context (%d)\n", np, cp.n_ctx);
        goto out;
    }
    cst_status st = cst_ctx_new(m, &cp, &ctx, err, sizeof err);
    if (st) {
        fprintf(stderr, "castor run: %s\n", err);
        goto out;
    }
    double t0 = cst_time_now();
    const float *lg = cst_cli_prefill(ctx, toks, np, ib, nib, n_batch);
    if (!lg) goto out;
    if (o->verbose)
        fprintf(stderr, "[prompt %zu positions (%zu images) in %.3f s]\n", np, nib, cst_time_now() - t0);
    rc = cst_cli_generate(ctx, lg, np, o->n_gen, o->json, &o->sp);
    goto out;
oom:
    fprintf(stderr, "castor run: out of memory\n");
    rc = 1;
out:
    cst_ctx_free(ctx);
    for (size_t i = 0; i < nib; i++) free(ib[i].rows);
    free(ib);
    free(toks);
    free(fin);
    free(ranges);
    cst_buf_free(&user);
    cst_buf_free(&docf);
    if (srcs)
        for (size_t i = 0; i < (size_t)o->n_images + 1; i++)
            if (srcs[i].owned) free(srcs[i].bytes);
    free(srcs);
    free(fbytes);
    cst_doc_free(&doc);
    cst_pool_free(pool);
    cst_vision_free(vis);
    return rc;
}
