/* cmd_pull.c: `castor pull` (models from the Hugging Face hub with libcurl),
 * `castor ls`, `castor rm`, and the cache lookup `castor serve -m NAME` uses.
 *
 * A model is hf://OWNER/REPO/PATH.gguf, OWNER/REPO/PATH.gguf, or
 * OWNER/REPO:QUANT (the repo's one .gguf file whose name holds QUANT, case
 * insensitive, projector files aside). The repo's file listing
 * ($HF_ENDPOINT/api/models/OWNER/REPO/tree/main?recursive=true) gives the
 * file's size and its LFS SHA-256; the bytes come from
 * $HF_ENDPOINT/OWNER/REPO/resolve/main/PATH (redirects to a CDN followed;
 * $HF_TOKEN sent as a bearer token, never to another host) into
 * $CASTOR_HOME/models/OWNER/REPO/FILE.gguf.part, resumed with a Range request
 * when a part is there, checked against the SHA-256 (a mismatch deletes the
 * part), then renamed into place. $CASTOR_HOME defaults to ~/.cache/castor,
 * $HF_ENDPOINT to https://huggingface.co.
 */
#define _GNU_SOURCE 1
#include "api/api.h"
#include "castor.h"
#include "cli.h"
#include "core/core.h"
#include "core/sha256.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- cache ------------------------------------------------------------------ */

static void cache_root(char *out, size_t n) {
    const char *h = getenv("CASTOR_HOME");
    if (h && *h) snprintf(out, n, "%s/models", h);
    else snprintf(out, n, "%s/.cache/castor/models", getenv("HOME") ? getenv("HOME") : ".");
}

static int mkdirs(const char *path) {
    char p[8192];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) && errno != EEXIST) return -1;
        *s = '/';
    }
    return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

/* A model spec: owner, repo, and a path in the repo or a quant. */
typedef struct spec {
    char owner[256], repo[256], path[1024], quant[64];
} spec;

static bool parse_spec(const char *s, spec *sp, char *err, size_t errlen) {
    memset(sp, 0, sizeof *sp);
    if (!strncmp(s, "hf://", 5)) s += 5;
    const char *a = strchr(s, '/');
    if (!a || a == s) goto bad;
    snprintf(sp->owner, sizeof sp->owner, "%.*s", (int)(a - s), s);
    const char *r = a + 1;
    const char *b = r + strcspn(r, "/:");
    if (b == r) goto bad;
    snprintf(sp->repo, sizeof sp->repo, "%.*s", (int)(b - r), r);
    if (*b == ':') {
        if (!b[1] || strchr(b + 1, '/')) goto bad;
        snprintf(sp->quant, sizeof sp->quant, "%s", b + 1);
    } else if (*b == '/' && b[1]) {
        snprintf(sp->path, sizeof sp->path, "%s", b + 1);
        if (!ends_with(sp->path, ".gguf")) {
            snprintf(err, errlen, "'%s': the file must be a .gguf file", s);
            return false;
        }
    } else {
        goto bad;
    }
    if (strstr(sp->owner, "..") || strstr(sp->repo, "..") || strstr(sp->path, "..")) goto bad;
    return true;
bad:
    snprintf(err, errlen, "'%s': expected hf://OWNER/REPO/FILE.gguf or OWNER/REPO:QUANT", s);
    return false;
}

/* the .gguf files of dir (not .part), callback per file; returns the count */
typedef void (*file_fn)(void *ud, const char *rel, const char *full, off_t size);
static int walk(const char *root, const char *rel, file_fn fn, void *ud, int depth) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char r2[4096], full[8300];
        snprintf(r2, sizeof r2, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, r2);
        struct stat st;
        if (stat(full, &st)) continue;
        if (S_ISDIR(st.st_mode) && depth < 8) n += walk(root, r2, fn, ud, depth + 1);
        else if (S_ISREG(st.st_mode) && ends_with(e->d_name, ".gguf")) {
            if (fn) fn(ud, r2, full, st.st_size);
            n++;
        }
    }
    closedir(d);
    return n;
}

typedef struct find_ctx {
    const char *owner_repo; /* "OWNER/REPO/" prefix or NULL */
    const char *quant;      /* substring of the file name, or NULL */
    const char *stem;       /* whole file stem, or NULL */
    int n;
    char found[4096];
} find_ctx;

static bool has_ci(const char *hay, const char *needle) { return strcasestr(hay, needle) != NULL; }

static void find_cb(void *ud, const char *rel, const char *full, off_t size) {
    (void)size;
    find_ctx *f = ud;
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    if (f->owner_repo && strncmp(rel, f->owner_repo, strlen(f->owner_repo))) return;
    if (f->quant && (!has_ci(base, f->quant) || has_ci(base, "mmproj"))) return;
    if (f->stem) {
        size_t n = strlen(f->stem);
        if (strncmp(base, f->stem, n) || strcmp(base + n, ".gguf")) return;
    }
    if (f->n++ == 0) snprintf(f->found, sizeof f->found, "%s", full);
}

bool cst_cli_resolve_model(const char *name, char *out, size_t n, char *err, size_t errlen) {
    struct stat st;
    if (!stat(name, &st)) {
        snprintf(out, n, "%s", name);
        return true;
    }
    char root[4096];
    cache_root(root, sizeof root);
    find_ctx f = {0};
    char prefix[600], stem[1024];
    spec sp;
    char perr[256];
    if (parse_spec(name, &sp, perr, sizeof perr)) {
        if (sp.quant[0]) {
            snprintf(prefix, sizeof prefix, "%s/%s/", sp.owner, sp.repo);
            f.owner_repo = prefix;
            f.quant = sp.quant;
        } else {
            char full[8192];
            const char *base = strrchr(sp.path, '/');
            snprintf(full, sizeof full, "%s/%s/%s/%s", root, sp.owner, sp.repo, base ? base + 1 : sp.path);
            if (!stat(full, &st)) {
                snprintf(out, n, "%s", full);
                return true;
            }
            snprintf(err, errlen, "'%s' is neither a file nor a pulled model (castor pull %s)", name, name);
            return false;
        }
    } else if (!strchr(name, '/')) {
        snprintf(stem, sizeof stem, "%s", name);
        if (ends_with(stem, ".gguf")) stem[strlen(stem) - 5] = 0;
        f.stem = stem;
    } else {
        snprintf(err, errlen, "'%s': no such file", name);
        return false;
    }
    walk(root, "", find_cb, &f, 0);
    if (f.n == 1) {
        snprintf(out, n, "%s", f.found);
        return true;
    }
    if (f.n > 1) snprintf(err, errlen, "'%s' matches %d pulled models; name one as OWNER/REPO/FILE.gguf (castor ls)", name, f.n);
    else snprintf(err, errlen, "'%s' is neither a file nor a pulled model (castor ls lists them)", name);
    return false;
}

/* ---- HTTP ---------------------------------------------------------------------- */

static void endpoint(char *out, size_t n) {
    const char *e = getenv("HF_ENDPOINT");
    snprintf(out, n, "%s", e && *e ? e : "https://huggingface.co");
    size_t l = strlen(out);
    while (l && out[l - 1] == '/') out[--l] = 0;
}

static struct curl_slist *auth_headers(void) {
    const char *t = getenv("HF_TOKEN");
    if (!t || !*t) return NULL;
    char h[4096];
    snprintf(h, sizeof h, "Authorization: Bearer %s", t);
    return curl_slist_append(NULL, h);
}

static size_t mem_write(char *p, size_t sz, size_t nm, void *ud) {
    cst_buf *b = ud;
    return cst_buf_put(b, p, sz * nm) ? sz * nm : 0;
}

static const char *http_hint(long code) {
    if (code == 401 || code == 403) return " (authentication required: set HF_TOKEN to a token with access)";
    if (code == 404) return " (not found: check the owner, repo and file names)";
    return "";
}

/* GET url into b; returns the HTTP status (0: transport error, in err) */
static long http_get(const char *url, cst_buf *b, char *err, size_t errlen) {
    CURL *c = curl_easy_init();
    if (!c) return 0;
    struct curl_slist *h = auth_headers();
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "castor/" CST_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    long code = 0;
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    else snprintf(err, errlen, "%.1000s: %.900s", url, ebuf[0] ? ebuf : curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

/* ---- download ------------------------------------------------------------------ */

typedef struct dl {
    FILE *f;
    const char *part;
    CURL *c;
    curl_off_t offset;     /* bytes already in the part when the request began */
    curl_off_t total;      /* the file's size */
    bool checked;          /* the status was looked at (first body bytes) */
    bool tty;
    double t0, last;
    int last_pct;
} dl;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t file_write(char *p, size_t sz, size_t nm, void *ud) {
    dl *d = ud;
    if (!d->checked) {
        d->checked = true;
        long code = 0;
        curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &code);
        if (code == 200 && d->offset > 0) { /* the server ignored the Range: start over */
            if (!freopen(d->part, "wb", d->f)) return 0;
            d->offset = 0;
        } else if (code != 200 && code != 206) {
            return sz * nm; /* an error body: not written; the caller reports the status */
        }
    }
    long code = 0;
    curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200 && code != 206) return sz * nm;
    return fwrite(p, sz, nm, d->f) == nm ? sz * nm : 0;
}

static int progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal;
    (void)ultotal;
    (void)ulnow;
    dl *d = ud;
    const curl_off_t have = d->offset + dlnow;
    const double t = now_s();
    const int pct = d->total > 0 ? (int)(100.0 * (double)have / (double)d->total) : 0;
    const double mib = 1024.0 * 1024.0;
    if (d->tty) {
        if (t - d->last < 0.1 && have < d->total) return 0;
        d->last = t;
        char bar[31];
        const int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : ' ';
        bar[30] = 0;
        const double rate = t > d->t0 ? (double)dlnow / (t - d->t0) / mib : 0;
        fprintf(stderr, "\r[%s] %3d%% %.1f/%.1f MiB %.1f MiB/s ", bar, pct, have / mib, d->total / mib, rate);
    } else if (pct / 10 > d->last_pct / 10 || (t - d->last > 10 && have < d->total)) {
        d->last_pct = pct;
        d->last = t;
        fprintf(stderr, "castor pull: %d%% (%.1f of %.1f MiB)\n", pct, have / mib, d->total / mib);
    }
    return 0;
}

static bool sha256_file(const char *path, char hex[65]) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return false;
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return false;
    }
    void *p = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (st.st_size && p == MAP_FAILED) return false;
    cst_sha256_hex(p ? p : "", (size_t)st.st_size, hex);
    if (p) munmap(p, (size_t)st.st_size);
    return true;
}

/* the listing entry for sp (path given, or the quant picked) */
static json_t *pick_file(json_t *list, spec *sp, char *err, size_t errlen) {
    json_t *hit = NULL;
    int n = 0;
    char names[1024] = "";
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *path = json_string_value(json_object_get(e, "path"));
        if (!path || (type && strcmp(type, "file"))) continue;
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        bool ok = sp->path[0] ? !strcmp(path, sp->path)
                              : ends_with(base, ".gguf") && has_ci(base, sp->quant) && !has_ci(base, "mmproj");
        if (!ok) continue;
        if (n++ == 0) hit = e;
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", path);
    }
    if (n == 1) return hit;
    if (n == 0 && sp->path[0]) snprintf(err, errlen, "%s/%s has no file '%s'", sp->owner, sp->repo, sp->path);
    else if (n == 0) snprintf(err, errlen, "%s/%s has no .gguf file matching '%s'", sp->owner, sp->repo, sp->quant);
    else snprintf(err, errlen, "'%s' matches %d files of %s/%s (%s); name the file", sp->quant, n, sp->owner, sp->repo, names);
    return NULL;
}

static int pull(const char *name, bool force) {
    char err[2048] = "";
    spec sp;
    if (!parse_spec(name, &sp, err, sizeof err)) {
        fprintf(stderr, "castor pull: %s\n", err);
        return 2;
    }
    char ep[1024], url[4096];
    endpoint(ep, sizeof ep);
    snprintf(url, sizeof url, "%s/api/models/%s/%s/tree/main?recursive=true", ep, sp.owner, sp.repo);
    cst_buf b = {0};
    long code = http_get(url, &b, err, sizeof err);
    if (code != 200) {
        if (code) fprintf(stderr, "castor pull: listing %s/%s: HTTP %ld%s\n", sp.owner, sp.repo, code, http_hint(code));
        else fprintf(stderr, "castor pull: %s\n", err);
        cst_buf_free(&b);
        return 1;
    }
    json_t *list = json_loadb(b.p ? b.p : "", b.len, 0, NULL);
    cst_buf_free(&b);
    if (!json_is_array(list)) {
        fprintf(stderr, "castor pull: the hub's file listing of %s/%s is not a JSON array\n", sp.owner, sp.repo);
        json_decref(list);
        return 1;
    }
    json_t *ent = pick_file(list, &sp, err, sizeof err);
    if (!ent) {
        fprintf(stderr, "castor pull: %s\n", err);
        json_decref(list);
        return 1;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s", json_string_value(json_object_get(ent, "path")));
    json_t *lfs = json_object_get(ent, "lfs");
    const char *sha = json_string_value(json_object_get(lfs, "oid"));
    json_t *szj = json_object_get(lfs, "size");
    if (!szj) szj = json_object_get(ent, "size");
    const curl_off_t total = (curl_off_t)json_integer_value(szj);
    char want[65] = "";
    if (sha && strlen(sha) == 64) snprintf(want, sizeof want, "%s", sha);
    json_decref(list);
    if (!want[0]) {
        fprintf(stderr, "castor pull: %s has no LFS SHA-256 in the hub's listing; refusing an unchecked download\n", path);
        return 1;
    }
    char root[4096], dir[5000], dest[8192], part[8300];
    cache_root(root, sizeof root);
    snprintf(dir, sizeof dir, "%s/%s/%s", root, sp.owner, sp.repo);
    const char *base = strrchr(path, '/');
    snprintf(dest, sizeof dest, "%s/%s", dir, base ? base + 1 : path);
    snprintf(part, sizeof part, "%s.part", dest);
    struct stat st;
    if (!force && !stat(dest, &st) && st.st_size == total) {
        printf("%s\n", dest);
        fprintf(stderr, "castor pull: %s/%s/%s is already pulled\n", sp.owner, sp.repo, base ? base + 1 : path);
        return 0;
    }
    if (mkdirs(dir)) {
        fprintf(stderr, "castor pull: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    curl_off_t offset = !stat(part, &st) ? st.st_size : 0;
    if (offset > total) offset = 0;
    FILE *f = fopen(part, offset ? "ab" : "wb");
    if (!f) {
        fprintf(stderr, "castor pull: cannot write %s: %s\n", part, strerror(errno));
        return 1;
    }
    snprintf(url, sizeof url, "%s/%s/%s/resolve/main/%s", ep, sp.owner, sp.repo, path);
    fprintf(stderr, "castor pull: %s/%s/%s (%.1f MiB)%s\n", sp.owner, sp.repo, path, total / 1048576.0,
            offset ? ", resuming" : "");
    CURL *c = curl_easy_init();
    struct curl_slist *h = auth_headers();
    dl d = {.f = f, .part = part, .c = c, .offset = offset, .total = total, .tty = isatty(2), .t0 = now_s()};
    d.last_pct = offset && total ? (int)(100 * offset / total) : 0;
    char ebuf[CURL_ERROR_SIZE] = "", range[64];
    snprintf(range, sizeof range, "%lld-", (long long)offset);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (offset > 0 && offset < total) curl_easy_setopt(c, CURLOPT_RANGE, range);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, file_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "castor/" CST_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer fails after 60 s: run again to resume */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    CURLcode rc = CURLE_OK;
    if (offset < total) rc = curl_easy_perform(c);
    code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    const bool wok = fflush(f) == 0;
    fclose(f);
    if (d.tty) fputc('\n', stderr);
    if (offset < total && rc == CURLE_OK && code != 200 && code != 206) {
        fprintf(stderr, "castor pull: %s: HTTP %ld%s\n", url, code, http_hint(code));
        return 1;
    }
    if (rc != CURLE_OK || !wok) {
        stat(part, &st);
        fprintf(stderr, "castor pull: download interrupted at %lld of %lld bytes (%s); run the same command to resume\n",
                (long long)st.st_size, (long long)total, rc != CURLE_OK ? (ebuf[0] ? ebuf : curl_easy_strerror(rc)) : strerror(errno));
        return 1;
    }
    if (stat(part, &st) || st.st_size != total) {
        fprintf(stderr, "castor pull: got %lld of %lld bytes; run the same command to resume\n", (long long)st.st_size,
                (long long)total);
        return 1;
    }
    char got[65];
    if (!sha256_file(part, got)) {
        fprintf(stderr, "castor pull: cannot read %s\n", part);
        return 1;
    }
    if (strcmp(got, want)) {
        unlink(part);
        fprintf(stderr, "castor pull: SHA-256 mismatch for %s (got %s, the hub lists %s): refused and deleted\n", path,
                got, want);
        return 1;
    }
    if (rename(part, dest)) {
        fprintf(stderr, "castor pull: cannot rename %s: %s\n", part, strerror(errno));
        return 1;
    }
    fprintf(stderr, "castor pull: %s verified (sha256 %s)\n", dest, got);
    printf("%s\n", dest);
    return 0;
}

int cmd_pull(int argc, char **argv) {
    bool force = false;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: castor pull hf://OWNER/REPO/FILE.gguf | OWNER/REPO:QUANT [--force]\n"
                   "  downloads into $CASTOR_HOME/models (default ~/.cache/castor/models), resumable, SHA-256 checked\n"
                   "  env: HF_TOKEN (bearer token), HF_ENDPOINT (default https://huggingface.co), CASTOR_HOME\n");
            return 0;
        } else if (!strcmp(argv[i], "--force")) force = true;
        else if (!name) name = argv[i];
        else {
            fprintf(stderr, "castor pull: one model at a time\n");
            return 2;
        }
    }
    if (!name) {
        fprintf(stderr, "usage: castor pull hf://OWNER/REPO/FILE.gguf | OWNER/REPO:QUANT [--force]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = pull(name, force);
    curl_global_cleanup();
    return rc;
}

static void ls_cb(void *ud, const char *rel, const char *full, off_t size) {
    (void)ud;
    (void)full;
    printf("%-60s %10.1f MiB\n", rel, size / 1048576.0);
}

int cmd_ls(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: castor ls   (the models castor pull keeps in $CASTOR_HOME/models)\n");
        return 0;
    }
    char root[4096];
    cache_root(root, sizeof root);
    if (walk(root, "", ls_cb, NULL, 0) == 0) fprintf(stderr, "castor ls: no pulled models in %s\n", root);
    return 0;
}

int cmd_rm(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(argc == 2 ? stdout : stderr, "usage: castor rm NAME   (OWNER/REPO/FILE.gguf, OWNER/REPO:QUANT or FILE)\n");
        return argc == 2 ? 0 : 2;
    }
    char root[4096], path[4096], err[1024];
    cache_root(root, sizeof root);
    struct stat st;
    /* only pulled models: never a file named by a path outside the cache */
    if (!stat(argv[1], &st) && strncmp(argv[1], root, strlen(root))) {
        fprintf(stderr, "castor rm: '%s' is a file outside the model cache; not removed\n", argv[1]);
        return 1;
    }
    if (!cst_cli_resolve_model(argv[1], path, sizeof path, err, sizeof err)) {
        fprintf(stderr, "castor rm: %s\n", err);
        return 1;
    }
    char part[4200];
    snprintf(part, sizeof part, "%s.part", path);
    unlink(part);
    if (unlink(path)) {
        fprintf(stderr, "castor rm: %s: %s\n", path, strerror(errno));
        return 1;
    }
    /* drop the repo and owner folders when they are empty */
    char d[4096];
    snprintf(d, sizeof d, "%s", path);
    for (int i = 0; i < 2; i++) {
        char *s = strrchr(d, '/');
        if (!s) break;
        *s = 0;
        if (strlen(d) <= strlen(root) || rmdir(d)) break;
    }
    printf("removed %s\n", path);
    return 0;
}
