/* files_docs.c: documents in interaction input (§2.4). A document block
 * ({type:"document", data | uri, mime_type}) is resolved to bytes like an
 * image (cst_media_bytes), extracted by src/docs (text; a PDF's pages as text
 * and, on a model with a vision projector, as rendered PNGs), cached by
 * content hash, and expanded before chat rendering into a framed text block
 * (and one image block per PDF page), so the rest of the pipeline (template,
 * images, usage) sees plain text and images. The stored interaction keeps the
 * document block as sent. Framing: docs/internals/documents.md.
 */
#include "docs/docs.h"
#include "engine/vision/vision.h"
#include "files.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- cache: (sha256 of the bytes, mime, render side) -> extracted document ---- */

typedef struct dentry {
    cst_lru_node node; /* first: LRU, most recent first */
    uint8_t key[32];
    char mime[128];
    int side;
    cst_doc doc;
    size_t bytes;
} dentry;

static struct {
    pthread_mutex_t mu;
    cst_lru lru;
    size_t bytes, n;
    uint64_t hits, misses;
} D = {.mu = PTHREAD_MUTEX_INITIALIZER};

#define DOC_CACHE_BUDGET ((size_t)64 << 20)

/* a copy of the cached document into out, or false */
static bool doc_cache_get(const uint8_t key[32], const char *mime, int side, cst_doc *out) {
    bool ok = false;
    pthread_mutex_lock(&D.mu);
    for (dentry *e = (dentry *)D.lru.head; e; e = (dentry *)e->node.next)
        if (e->side == side && !memcmp(e->key, key, 32) && !strcasecmp(e->mime, mime)) {
            cst_lru_touch(&D.lru, &e->node);
            ok = cst_doc_copy(&e->doc, out) == CST_OK;
            break;
        }
    if (ok) D.hits++;
    else D.misses++;
    pthread_mutex_unlock(&D.mu);
    return ok;
}

static void doc_cache_put(const uint8_t key[32], const char *mime, int side, const cst_doc *doc) {
    size_t nb = cst_doc_bytes(doc) + sizeof(dentry);
    if (nb > DOC_CACHE_BUDGET / 4) return; /* one document never takes the cache */
    dentry *e = calloc(1, sizeof *e);
    if (!e) return;
    if (cst_doc_copy(doc, &e->doc)) {
        free(e);
        return;
    }
    memcpy(e->key, key, 32);
    snprintf(e->mime, sizeof e->mime, "%s", mime);
    e->side = side;
    e->bytes = nb;
    pthread_mutex_lock(&D.mu);
    cst_lru_push_front(&D.lru, &e->node);
    D.bytes += nb;
    D.n++;
    while (D.bytes > DOC_CACHE_BUDGET && D.lru.tail && D.lru.tail != &e->node) {
        dentry *t = (dentry *)D.lru.tail;
        cst_lru_unlink(&D.lru, &t->node);
        D.bytes -= t->bytes;
        D.n--;
        cst_doc_free(&t->doc);
        free(t);
    }
    pthread_mutex_unlock(&D.mu);
}

void cst_docs_cache_stats(uint64_t *hits, uint64_t *misses, uint64_t *bytes, uint64_t *entries) {
    pthread_mutex_lock(&D.mu);
    *hits = D.hits;
    *misses = D.misses;
    *bytes = D.bytes;
    *entries = D.n;
    pthread_mutex_unlock(&D.mu);
}

/* ---- expansion ------------------------------------------------------------------------------ */

static bool is_doc_block(json_t *b) {
    json_t *t = json_object_get(b, "type");
    return json_is_string(t) && !strcmp(json_string_value(t), "document");
}

size_t cst_docs_count(json_t *const *lists, size_t n_lists) {
    size_t k = 0;
    for (size_t l = 0; l < n_lists; l++) {
        size_t i, j;
        json_t *st, *b;
        json_array_foreach(lists[l], i, st) {
            json_t *c = json_object_get(st, "content");
            if (!json_is_array(c)) continue;
            json_array_foreach(c, j, b) k += is_doc_block(b);
        }
    }
    return k;
}

static json_t *text_block(const char *s, size_t n) {
    return json_pack("{s:s,s:s%}", "type", "text", "text", s, n);
}

/* the blocks one document becomes, appended to arr */
static bool expand_one(cst_server *s, struct MHD_Connection *c, smodel *sm, const char *owner, json_t *b, size_t idx,
                       json_t *arr, ekind *kind, char *err, size_t errlen) {
    char what[32], fmime[128];
    snprintf(what, sizeof what, "document %zu", idx + 1);
    const char *given = json_string_value(json_object_get(b, "mime_type"));
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (!cst_media_bytes(s, c, owner, b, what, CST_DOC_MAX_BYTES, &bytes, &len, fmime, kind, err, errlen))
        return false;
    bool ok = false;
    cst_doc doc = {0};
    char *hdr = NULL;
    const char *mime = fmime[0] ? fmime : given;
    *kind = E_INVALID;
    if (!mime) {
        snprintf(err, errlen, "%s: mime_type is required with inline data", what);
        goto out;
    }
    if (fmime[0] && given && strcasecmp(given, fmime)) {
        snprintf(err, errlen, "%s: mime_type '%s' does not match the file's type '%s'", what, given, fmime);
        goto out;
    }
    if (!cst_doc_readable(mime)) {
        snprintf(err, errlen, "%s: type '%s' cannot be read by this server's models (it reads %s)", what, mime,
                 CST_READABLE_TYPES);
        goto out;
    }
    cst_doc_limits lim = cst_doc_default_limits();
    if (s->p.pdf_max_pages) lim.max_pages = s->p.pdf_max_pages;
    if (s->p.pdf_max_pixels) lim.max_pixels = s->p.pdf_max_pixels;
    lim.render_side = sm->vision ? cst_vision_image_size(sm->vision) : 0;
    char hex[65];
    cst_sha256_hex(bytes, len, hex);
    uint8_t key[32];
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        key[i] = (uint8_t)v;
    }
    if (doc_cache_get(key, mime, lim.render_side, &doc)) {
        cst_info("document cache hit (sha256 %.12s..., %s, %zu pages)", hex, mime, doc.n_pages);
    } else {
        double t0 = cst_time_now();
        cst_status st = cst_doc_extract(bytes, len, mime, &lim, &doc, err + strlen(what) + 2,
                                        errlen > strlen(what) + 2 ? errlen - strlen(what) - 2 : 0);
        if (st) {
            memcpy(err, what, strlen(what));
            err[strlen(what)] = ':';
            err[strlen(what) + 1] = ' ';
            if (st == CST_ERR_NOMEM) *kind = E_INTERNAL;
            goto out;
        }
        cst_info("document extracted (sha256 %.12s..., %s, %zu pages%s) in %.3f s", hex, mime, doc.n_pages,
                 lim.render_side ? ", rendered" : "", cst_time_now() - t0);
        doc_cache_put(key, mime, lim.render_side, &doc);
    }
    /* the name the model sees: the file's display name, else its id, else "document N" */
    char name[300];
    snprintf(name, sizeof name, "%s", what);
    json_t *ju = json_object_get(b, "uri");
    if (json_is_string(ju)) {
        const char *u = json_string_value(ju), *f = strstr(u, "files/");
        snprintf(name, sizeof name, "%.290s", f ? f : u);
    }
    hdr = cst_doc_header(name, mime, doc.n_pages);
    if (!hdr) goto oom;
    cst_buf t = {0};
    cst_buf_put(&t, hdr, strlen(hdr));
    for (size_t i = 0; i < doc.n_pages; i++) {
        cst_doc_page *pg = &doc.pages[i];
        if (doc.paged) {
            char *pl = cst_doc_page_line(i + 1, doc.n_pages);
            if (!pl) t.oom = true;
            else cst_buf_put(&t, pl, strlen(pl));
            free(pl);
        }
        if (pg->png) { /* flush the text, then the page image (files_media.c encodes it, cached by hash) */
            if (t.oom || json_array_append_new(arr, text_block(t.p, t.len))) goto oom_buf;
            t.len = 0;
            char *b64 = malloc(4 * ((pg->png_len + 2) / 3) + 1);
            if (!b64) goto oom_buf;
            cst_b64_encode(pg->png, pg->png_len, b64);
            int r = json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "type", "image", "mime_type", "image/png",
                                                         "data", b64));
            free(b64);
            if (r) goto oom_buf;
            cst_buf_put(&t, "\n", 1);
        }
        cst_buf_put(&t, pg->text, pg->text_len);
        if (doc.paged && i + 1 < doc.n_pages) cst_buf_put(&t, "\n", 1);
    }
    cst_buf_put(&t, cst_doc_footer(), strlen(cst_doc_footer()));
    if (t.oom || json_array_append_new(arr, text_block(t.p, t.len))) goto oom_buf;
    cst_buf_free(&t);
    ok = true;
    goto out;
oom_buf:
    cst_buf_free(&t);
oom:
    *kind = E_INTERNAL;
    snprintf(err, errlen, "out of memory reading %s", what);
out:
    free(hdr);
    cst_doc_free(&doc);
    free(bytes);
    return ok;
}

bool cst_docs_expand(cst_server *s, struct MHD_Connection *c, smodel *sm, const char *owner, json_t *const *lists,
                     size_t n_lists, json_t **out, ekind *kind, char *err, size_t errlen) {
    size_t k = 0;
    for (size_t l = 0; l < n_lists; l++) out[l] = NULL;
    for (size_t l = 0; l < n_lists; l++) {
        out[l] = json_array();
        if (!out[l]) goto oom;
        size_t i;
        json_t *st;
        json_array_foreach(lists[l], i, st) {
            json_t *cont = json_object_get(st, "content");
            bool has = false;
            size_t j;
            json_t *b;
            if (json_is_array(cont)) json_array_foreach(cont, j, b) has |= is_doc_block(b);
            if (!has) {
                if (json_array_append(out[l], st)) goto oom;
                continue;
            }
            json_t *ns = json_copy(st), *nc = json_array();
            if (!ns || !nc || json_object_set_new(ns, "content", nc) || json_array_append_new(out[l], ns)) {
                json_decref(ns);
                goto oom;
            }
            json_array_foreach(cont, j, b) {
                if (!is_doc_block(b)) {
                    if (json_array_append(nc, b)) goto oom;
                    continue;
                }
                if (!expand_one(s, c, sm, owner, b, k++, nc, kind, err, errlen)) goto fail;
            }
        }
    }
    return true;
oom:
    *kind = E_INTERNAL;
    snprintf(err, errlen, "out of memory");
fail:
    for (size_t l = 0; l < n_lists; l++) {
        json_decref(out[l]);
        out[l] = NULL;
    }
    return false;
}
