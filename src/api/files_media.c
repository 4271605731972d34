/* files_media.c: images in interaction input (§2.4). Resolves image blocks
 * (a Files API URI of the caller's, or inline base64 data) to bytes, checks
 * the type against the magic numbers, decodes them with the vision module's
 * limits and encodes them with the model's projector; embeddings are cached
 * by content hash (LRU, memory-bounded) so that a follow-up turn about the
 * same image does not encode it again. Also splits a rendered prompt at the
 * media markers and builds the token list with image blocks for the
 * scheduler (gemma3: <start_of_image> + n_tokens positions + <end_of_image>).
 */
#include "files.h"
#include "engine/vision/vision.h"

#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- marker ------------------------------------------------------------------ */

static pthread_once_t marker_once = PTHREAD_ONCE_INIT;
static char marker[64];

static void marker_init(void) {
    uint8_t r[8] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, r, sizeof r) != (ssize_t)sizeof r) memset(r, 0x5a, sizeof r);
        close(fd);
    }
    /* private-use code points around a random tag: never in ordinary text */
    snprintf(marker, sizeof marker, "\xEE\x80\x82" "cstimg%02x%02x%02x%02x%02x%02x%02x%02x\xEE\x80\x83", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7]);
}

const char *cst_media_marker(void) {
    pthread_once(&marker_once, marker_init);
    return marker;
}

/* ---- embedding cache ------------------------------------------------------------ */

typedef struct centry {
    cst_lru_node node;          /* first: LRU list, most recent first */
    uint8_t key[32];
    const void *proj;           /* the projector the rows came from */
    float *rows;
    size_t bytes;
    int n_tokens, n_embd;
    int refs;                   /* requests using rows */
} centry;

static struct {
    pthread_mutex_t mu;
    cst_lru lru;
    size_t bytes, n;
    uint64_t hits, misses;
    size_t budget; /* bytes (the server's --image-cache) */
} C = {.mu = PTHREAD_MUTEX_INITIALIZER, .budget = (size_t)256 << 20};

/* Under C.mu: drop unreferenced entries from the cold end until under budget. */
static void evict(size_t budget) {
    centry *e = (centry *)C.lru.tail;
    while (e && C.bytes > budget) {
        centry *p = (centry *)e->node.prev;
        if (e->refs == 0) {
            cst_lru_unlink(&C.lru, &e->node);
            C.bytes -= e->bytes;
            C.n--;
            free(e->rows);
            free(e);
        }
        e = p;
    }
}

static centry *cache_get(const uint8_t key[32], const void *proj) {
    pthread_mutex_lock(&C.mu);
    centry *e = (centry *)C.lru.head;
    while (e && !(e->proj == proj && !memcmp(e->key, key, 32))) e = (centry *)e->node.next;
    if (e) {
        e->refs++;
        cst_lru_touch(&C.lru, &e->node);
        C.hits++;
    } else {
        C.misses++;
    }
    pthread_mutex_unlock(&C.mu);
    return e;
}

/* Insert (or return the entry another request inserted meanwhile); the
 * caller's reference is counted. Takes ownership of rows. */
static centry *cache_put(const uint8_t key[32], const void *proj, float *rows, int n_tokens, int n_embd, size_t budget) {
    centry *ne = calloc(1, sizeof *ne);
    if (!ne) {
        free(rows);
        return NULL;
    }
    memcpy(ne->key, key, 32);
    ne->proj = proj;
    ne->rows = rows;
    ne->n_tokens = n_tokens;
    ne->n_embd = n_embd;
    ne->bytes = (size_t)n_tokens * (size_t)n_embd * sizeof(float) + sizeof *ne;
    ne->refs = 1;
    pthread_mutex_lock(&C.mu);
    for (centry *e = (centry *)C.lru.head; e; e = (centry *)e->node.next)
        if (e->proj == proj && !memcmp(e->key, key, 32)) { /* encoded twice concurrently: keep the first */
            e->refs++;
            pthread_mutex_unlock(&C.mu);
            free(ne->rows);
            free(ne);
            return e;
        }
    cst_lru_push_front(&C.lru, &ne->node);
    C.bytes += ne->bytes;
    C.n++;
    evict(budget);
    pthread_mutex_unlock(&C.mu);
    return ne;
}

static void cache_release(centry *e, size_t budget) {
    if (!e) return;
    pthread_mutex_lock(&C.mu);
    e->refs--;
    evict(budget);
    pthread_mutex_unlock(&C.mu);
}

void cst_media_cache_stats(uint64_t *hits, uint64_t *misses, uint64_t *bytes, uint64_t *entries) {
    pthread_mutex_lock(&C.mu);
    *hits = C.hits;
    *misses = C.misses;
    *bytes = C.bytes;
    *entries = C.n;
    pthread_mutex_unlock(&C.mu);
}

static size_t cache_budget(const cst_server *s) {
    size_t b = s->p.image_cache_bytes ? s->p.image_cache_bytes : (size_t)256 << 20;
    pthread_mutex_lock(&C.mu);
    C.budget = b;
    pthread_mutex_unlock(&C.mu);
    return b;
}

/* ---- media list -------------------------------------------------------------------- */

void cst_media_clear(cst_media *m) {
    if (!m) return;
    /* the budget only matters for eviction; the default is fine here */
    for (size_t i = 0; i < m->n; i++) cache_release(m->img[i].entry, C.budget);
    free(m->img);
    free(m->embds);
    memset(m, 0, sizeof *m);
}

static bool is_image_block(json_t *b) {
    json_t *t = json_object_get(b, "type");
    return json_is_string(t) && !strcmp(json_string_value(t), "image");
}

/* Calls fn for each image block, in the order chat rendering visits them. */
typedef bool (*block_fn)(void *ud, json_t *block, size_t index);

static bool each_image(json_t *const *lists, size_t n_lists, block_fn fn, void *ud) {
    size_t k = 0;
    for (size_t l = 0; l < n_lists; l++) {
        size_t i;
        json_t *st;
        json_array_foreach(lists[l], i, st) {
            const char *type = json_string_value(json_object_get(st, "type"));
            if (!type || (strcmp(type, "user_input") && strcmp(type, "model_output"))) continue;
            json_t *c = json_object_get(st, "content");
            if (!json_is_array(c)) continue;
            size_t j;
            json_t *b;
            json_array_foreach(c, j, b) {
                if (!is_image_block(b)) continue;
                if (fn && !fn(ud, b, k)) return false;
                k++;
            }
        }
    }
    if (!fn) *(size_t *)ud = k;
    return true;
}

size_t cst_media_count(json_t *const *lists, size_t n_lists) {
    size_t n = 0;
    each_image(lists, n_lists, NULL, &n);
    return n;
}

/* ---- URIs ------------------------------------------------------------------------------ */

int cst_files_uri_id(const char *uri, const char *prefix, const char *const *hosts, char id[48]) {
    const char *p = NULL;
    if (!strncmp(uri, "files/", 6)) {
        p = uri + 6;
    } else {
        const char *rest = NULL;
        if (!strncasecmp(uri, "http://", 7)) rest = uri + 7;
        else if (!strncasecmp(uri, "https://", 8)) rest = uri + 8;
        if (!rest) return 0;
        size_t hl = strcspn(rest, "/?#");
        bool ours = false;
        for (size_t i = 0; hosts && hosts[i]; i++)
            if (strlen(hosts[i]) == hl && !strncasecmp(rest, hosts[i], hl)) ours = true;
        if (!ours) return 0;
        const char *path = rest + hl;
        size_t pl = prefix ? strlen(prefix) : 0;
        if (pl && !strncmp(path, prefix, pl)) path += pl;
        static const char *vs[] = {"/v1beta/files/", "/v1alpha/files/", "/v1/files/"};
        for (size_t i = 0; i < 3 && !p; i++)
            if (!strncmp(path, vs[i], strlen(vs[i]))) p = path + strlen(vs[i]);
        if (!p) return 0;
    }
    size_t n = strlen(p);
    if (n == 0 || n >= 48) return -1;
    memcpy(id, p, n + 1);
    return cst_files_valid_id(id) ? 1 : -1;
}

/* ---- decode memory budget ------------------------------------------------------------------ */

/* Pixel memory of the images being decoded, all requests together, so that
 * many requests with large images cannot add up to gigabytes. An image's
 * share is an upper estimate from its header: the decoder's RGBA buffer and
 * the RGB copy (7 bytes a pixel). */
static struct {
    pthread_mutex_t mu;
    size_t used;
} DB = {PTHREAD_MUTEX_INITIALIZER, 0};

/* Take need bytes of budget if there is room now; false when there is not
 * (never waits: an MHD worker serves other connections; the create retries,
 * parked, routes.c). */
static bool decode_take(size_t need, size_t budget) {
    pthread_mutex_lock(&DB.mu);
    const bool ok = DB.used + need <= budget;
    if (ok) DB.used += need;
    pthread_mutex_unlock(&DB.mu);
    return ok;
}

static void decode_give(size_t n) {
    if (!n) return;
    pthread_mutex_lock(&DB.mu);
    DB.used -= n;
    pthread_mutex_unlock(&DB.mu);
}

/* ---- prepare ------------------------------------------------------------------------------ */

typedef struct {
    cst_server *s;
    struct MHD_Connection *c;
    smodel *sm;
    const char *owner;
    cst_media *out;
    ekind *kind;
    char *err;
    size_t errlen;
} prep;

#define FAIL(k, ...)                                   \
    do {                                               \
        *p->kind = (k);                                \
        snprintf(p->err, p->errlen, __VA_ARGS__);      \
        goto fail;                                     \
    } while (0)

/* the hosts a URI of ours may name: the one the client used, our address */
static void our_hosts(cst_server *s, struct MHD_Connection *c, char hosts[4][300]) {
    const char *host = c ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host") : NULL;
    snprintf(hosts[0], 300, "%s", host && strlen(host) < 256 ? host : "");
    snprintf(hosts[1], 300, "%s:%d", s->host, s->port);
    snprintf(hosts[2], 300, "localhost:%d", s->port);
    snprintf(hosts[3], 300, "127.0.0.1:%d", s->port);
}

bool cst_media_bytes(cst_server *s, struct MHD_Connection *c, const char *owner, json_t *b, const char *what,
                     size_t max_len, uint8_t **out, size_t *out_len, char file_mime[128], ekind *kind, char *err,
                     size_t errlen) {
    uint8_t *bytes = NULL;
    size_t len = 0;
    file_mime[0] = 0;
    json_t *jd = json_object_get(b, "data"), *ju = json_object_get(b, "uri");
#define BFAIL(k, ...)                              \
    do {                                           \
        *kind = (k);                               \
        snprintf(err, errlen, __VA_ARGS__);        \
        return false;                              \
    } while (0)
    if (json_is_string(jd)) {
        bool oom = false;
        bytes = cst_b64_decode(json_string_value(jd), json_string_length(jd), &len, &oom);
        if (!bytes && oom) BFAIL(E_INTERNAL, "out of memory decoding %s", what);
        if (!bytes) BFAIL(E_INVALID, "%s: data is not valid base64", what);
        if (len == 0) {
            free(bytes);
            BFAIL(E_INVALID, "%s: data is empty", what);
        }
    } else if (json_is_string(ju)) {
        const char *uri = json_string_value(ju);
        char id[48], hs[4][300];
        our_hosts(s, c, hs);
        const char *hosts[5] = {hs[0], hs[1], hs[2], hs[3], NULL};
        int r = cst_files_uri_id(uri, s->prefix, hosts, id);
        if (r == 0)
            BFAIL(E_INVALID,
                  "%s: uri '%.300s' is not a file of this server (use the uri or name the Files API returned; "
                  "remote URLs are never fetched)",
                  what, uri);
        if (r < 0) BFAIL(E_NOT_FOUND, "%s: file '%.300s' not found", what, uri);
        cst_frec fr;
        cst_status st = cst_store_file_get(s->store, owner, id, &fr);
        if (st == CST_OK && fr.expires <= (int64_t)time(NULL)) {
            cst_frec_clear(&fr);
            st = CST_ERR_NOT_FOUND;
        }
        if (st == CST_ERR_NOT_FOUND) BFAIL(E_NOT_FOUND, "%s: file 'files/%s' not found", what, id);
        if (st) BFAIL(st == CST_ERR_STORE ? E_UNAVAILABLE : E_INTERNAL, "store: %s", s->store->err);
        snprintf(file_mime, 128, "%s", fr.mime);
        if (max_len && fr.size > 0 && (uint64_t)fr.size > (uint64_t)max_len) {
            int64_t fs = fr.size;
            cst_frec_clear(&fr);
            BFAIL(E_INVALID, "%s: file 'files/%s' is %lld bytes, over the limit of %zu bytes for this use", what, id,
                  (long long)fs, max_len);
        }
        /* the blob, from the store (a file on disk or rows in the database); NUL-terminated */
        len = (size_t)fr.size;
        bytes = malloc(len + 1);
        if (!bytes) {
            cst_frec_clear(&fr);
            BFAIL(E_INTERNAL, "out of memory reading %s", what);
        }
        size_t at = 0, got = 1;
        while (at < len && got > 0) {
            st = cst_store_blob_read(s->store, fr.sha256, (int64_t)at, bytes + at, len - at, &got);
            if (st) break;
            at += got;
        }
        cst_frec_clear(&fr);
        bytes[at] = 0;
        if (st || at != len) {
            free(bytes);
            if (st == CST_ERR_STORE) BFAIL(E_UNAVAILABLE, "store: %s", s->store->err);
            BFAIL(E_INTERNAL, "%s: the file's content is missing", what);
        }
    } else {
        BFAIL(E_INVALID, "%s: give data or uri", what);
    }
#undef BFAIL
    *out = bytes;
    *out_len = len;
    return true;
}

static bool prep_one(void *ud, json_t *b, size_t idx) {
    prep *p = ud;
    uint8_t *bytes = NULL;
    size_t len = 0;
    float *rows = NULL;
    cst_image img = {0};
    size_t held = 0; /* decode budget taken for img (given back once it is freed) */
    const char *given = json_string_value(json_object_get(b, "mime_type"));
    char what[32], fmime[128];
    snprintf(what, sizeof what, "image %zu", idx + 1);
    if (!cst_media_bytes(p->s, p->c, p->owner, b, what, 0, &bytes, &len, fmime, p->kind, p->err, p->errlen))
        return false;
    if (fmime[0] && strncasecmp(fmime, "image/", 6))
        FAIL(E_INVALID,
             "image %zu: the file has type '%s', which is not an image (a document type goes in a "
             "{\"type\": \"document\"} block; this server reads %s)",
             idx + 1, fmime, CST_READABLE_TYPES);
    if (fmime[0] && given && strcasecmp(given, fmime))
        FAIL(E_INVALID, "image %zu: mime_type '%s' does not match the file's type '%s'", idx + 1, given, fmime);
    const char *sniffed = cst_image_sniff_mime(bytes, len);
    if (given && !sniffed)
        FAIL(E_INVALID, "image %zu: mime_type '%s' is not supported (png, jpeg, webp, gif)", idx + 1, given);
    if (!sniffed) FAIL(E_INVALID, "image %zu: not an image of a supported type (png, jpeg, webp, gif)", idx + 1);
    if (given && strcasecmp(given, sniffed) && !(strcasecmp(given, "image/jpg") == 0 && !strcmp(sniffed, "image/jpeg")))
        FAIL(E_INVALID, "image %zu: mime_type '%s' does not match the bytes (%s)", idx + 1, given, sniffed);
    char hex[65];
    cst_sha256_hex(bytes, len, hex);
    uint8_t key[32];
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        key[i] = (uint8_t)v;
    }
    cst_vision *v = p->sm->vision;
    centry *e = cache_get(key, v);
    if (e) {
        cst_info("image cache hit (sha256 %.12s..., %d tokens)", hex, e->n_tokens);
    } else {
        char derr[256];
        int pw = 0, ph = 0;
        cst_status st = cst_image_probe(bytes, len, NULL, &pw, &ph, derr, sizeof derr);
        if (st) FAIL(E_INVALID, "image %zu: %s", idx + 1, derr);
        const size_t need = (size_t)pw * (size_t)ph * 7, budget = p->s->p.image_decode_bytes;
        if (budget && need > budget)
            FAIL(E_INVALID, "image %zu: %dx%d pixels need %zu MiB to decode, over the server's image decode memory of %zu MiB",
                 idx + 1, pw, ph, need >> 20, budget >> 20);
        if (budget && !decode_take(need, budget))
            FAIL(E_EXHAUSTED, "image %zu: the server is decoding other images (%zu MiB budget); retry later", idx + 1,
                 budget >> 20);
        held = budget ? need : 0;
        st = cst_image_decode(bytes, len, NULL, &img, derr, sizeof derr);
        if (st == CST_ERR_NOMEM) FAIL(E_INTERNAL, "out of memory decoding image %zu", idx + 1);
        if (st) FAIL(E_INVALID, "image %zu: %s", idx + 1, derr);
        const int nt = cst_vision_n_tokens(v), ne = cst_vision_n_embd(v);
        rows = malloc((size_t)nt * (size_t)ne * sizeof *rows);
        if (!rows) FAIL(E_INTERNAL, "out of memory encoding image %zu", idx + 1);
        double t0 = cst_time_now();
        pthread_mutex_lock(&p->sm->vision_mu);
        st = cst_vision_encode(v, &img, rows, p->sm->vision_pool, derr, sizeof derr);
        pthread_mutex_unlock(&p->sm->vision_mu);
        if (st) FAIL(E_INTERNAL, "image %zu: the vision encoder failed: %s", idx + 1, derr);
        cst_info("image encoded (%dx%d, sha256 %.12s..., %d tokens) in %.3f s", img.width, img.height, hex, nt,
                 cst_time_now() - t0);
        e = cache_put(key, v, rows, nt, ne, cache_budget(p->s));
        rows = NULL;
        if (!e) FAIL(E_INTERNAL, "out of memory caching image %zu", idx + 1);
    }
    cst_media *m = p->out;
    cst_media_img *ni = realloc(m->img, (m->n + 1) * sizeof *ni);
    if (!ni) {
        cache_release(e, cache_budget(p->s));
        FAIL(E_INTERNAL, "out of memory");
    }
    m->img = ni;
    cst_media_img *mi = &m->img[m->n++];
    memcpy(mi->sha, key, 32);
    mi->embd = e->rows;
    mi->entry = e;
    mi->n_tokens = e->n_tokens;
    mi->n_embd = e->n_embd;
    m->image_tokens += e->n_tokens;
    free(bytes);
    cst_image_free(&img);
    decode_give(held);
    return true;
fail:
    free(bytes);
    free(rows);
    cst_image_free(&img);
    decode_give(held);
    return false;
}

bool cst_media_prepare(cst_server *s, struct MHD_Connection *c, smodel *sm, const char *owner, json_t *const *lists,
                       size_t n_lists, cst_media *out, ekind *kind, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    prep p = {.s = s, .c = c, .sm = sm, .owner = owner, .out = out, .kind = kind, .err = err, .errlen = errlen};
    if (!sm->vision) {
        *kind = E_INVALID;
        snprintf(err, errlen, "internal: no vision projector");
        return false;
    }
    if (!each_image(lists, n_lists, prep_one, &p)) {
        cst_media_clear(out);
        return false;
    }
    return true;
}

/* ---- prompt tokens with image blocks ---------------------------------------------------- */

/* Tokenize text[a, b) with the plain ranges of cp that fall inside it; appends to *toks. */
static cst_status tok_segment(const cst_vocab *v, const chat_prompt *cp, size_t a, size_t b, bool add_special,
                              cst_token **toks, size_t *n, size_t *cap) {
    size_t *rg = malloc((cp->n_plain + 1) * 2 * sizeof *rg);
    if (!rg) return CST_ERR_NOMEM;
    size_t nr = 0;
    for (size_t i = 0; i < cp->n_plain; i++) {
        size_t lo = CST_MAX(cp->plain[2 * i], a), hi = CST_MIN(cp->plain[2 * i + 1], b);
        if (lo < hi) {
            rg[2 * nr] = lo - a;
            rg[2 * nr + 1] = hi - a;
            nr++;
        }
    }
    cst_token *t = NULL;
    size_t nt = 0;
    cst_status st = CST_OK;
    if (b > a || add_special) st = cst_tokenize_plain_ranges(v, cp->text + a, b - a, add_special, rg, nr, &t, &nt);
    free(rg);
    if (st) return st;
    if (*n + nt > *cap) {
        size_t nc = CST_MAX(*cap * 2, *n + nt + 16);
        cst_token *nb = realloc(*toks, nc * sizeof *nb);
        if (!nb) {
            free(t);
            return CST_ERR_NOMEM;
        }
        *toks = nb;
        *cap = nc;
    }
    if (nt) memcpy(*toks + *n, t, nt * sizeof *t);
    *n += nt;
    free(t);
    return CST_OK;
}

static bool push_tok(cst_token **toks, size_t *n, size_t *cap, cst_token t) {
    if (*n + 1 > *cap) {
        size_t nc = CST_MAX(*cap * 2, *n + 16);
        cst_token *nb = realloc(*toks, nc * sizeof *nb);
        if (!nb) return false;
        *toks = nb;
        *cap = nc;
    }
    (*toks)[(*n)++] = t;
    return true;
}

cst_status cst_media_tokens(const smodel *sm, cst_media *m, chat_prompt *cp, char *err, size_t errlen) {
    const char *mk = cst_media_marker();
    const size_t ml = strlen(mk);
    const cst_vocab *v = cst_model_vocab(sm->m);
    /* the markers, in order: exactly one per image */
    size_t *at = malloc((m->n + 1) * sizeof *at), k = 0;
    if (!at) return CST_ERR_NOMEM;
    for (const char *p = cp->text; (p = strstr(p, mk)); p += ml) {
        if (k == m->n) {
            k++;
            break;
        }
        at[k++] = (size_t)(p - cp->text);
    }
    if (k != m->n) {
        free(at);
        cst_errf(err, errlen, "the input contains a reserved character sequence (%zu image markers for %zu images)", k,
                 m->n);
        return CST_ERR_INVALID_ARG;
    }
    const bool gemma3 = sm->vision && !strcmp(cst_vision_projector(sm->vision), "gemma3");
    cst_token boi = gemma3 ? cst_vocab_find(v, "<start_of_image>", 16) : -1;
    cst_token eoi = gemma3 ? cst_vocab_find(v, "<end_of_image>", 14) : -1;
    bool add_special = true;
    const char *bos = sm->chat.bos_text;
    if (bos && *bos && !strncmp(cp->text, bos, strlen(bos))) add_special = false;
    cst_token *toks = NULL;
    size_t n = 0, cap = 0;
    cst_status st = CST_OK;
    free(m->embds);
    m->embds = calloc(m->n ? m->n : 1, sizeof *m->embds);
    if (!m->embds) st = CST_ERR_NOMEM;
    size_t from = 0;
    int32_t n_image = 0;
    for (size_t i = 0; i <= m->n && !st; i++) {
        size_t to = i < m->n ? at[i] : cp->text_len;
        st = tok_segment(v, cp, from, to, i == 0 && add_special, &toks, &n, &cap);
        if (st || i == m->n) break;
        const cst_media_img *im = &m->img[i];
        uint64_t h = 0;
        for (int b = 0; b < 8; b++) h = h << 8 | im->sha[b];
        const cst_token mtok = cst_embd_marker(h);
        if (boi >= 0 && !push_tok(&toks, &n, &cap, boi)) st = CST_ERR_NOMEM;
        m->embds[i] = (cst_req_embd){.pos = (int32_t)n, .n_rows = im->n_tokens, .rows = im->embd, .non_causal = gemma3};
        for (int j = 0; j < im->n_tokens && !st; j++)
            if (!push_tok(&toks, &n, &cap, mtok)) st = CST_ERR_NOMEM;
        if (eoi >= 0 && !st && !push_tok(&toks, &n, &cap, eoi)) st = CST_ERR_NOMEM;
        n_image += im->n_tokens;
        from = to + ml;
    }
    free(at);
    if (st) {
        free(toks);
        cst_errf(err, errlen, st == CST_ERR_NOMEM ? "out of memory" : "the input could not be tokenized");
        return st;
    }
    free(cp->toks);
    cp->toks = toks;
    cp->n_toks = n;
    cp->embds = m->embds;
    cp->n_embds = m->n;
    cp->n_image_tokens = n_image;
    return CST_OK;
}
