/* gguf.c: GGUF v2/v3 reader. Maps the file read-only (or takes a caller's
 * buffer), validates the whole header, KV section and tensor directory up
 * front against the real byte count, and builds small indexes (hash tables
 * for keys and tensor names, offset tables for string arrays) so that every
 * accessor afterwards is a bounds-safe lookup. The input is treated as hostile.
 */
#define _GNU_SOURCE
#include "gguf.h"
#include "../../core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_kv {
    cst_strv key;
    cst_gguf_type type;
    cst_gguf_type arr_type; /* arrays only */
    uint64_t arr_n;         /* arrays only */
    const uint8_t *val;     /* scalar value / first array element / string length prefix */
    uint64_t *str_off;      /* string arrays: offset of each element's length prefix in the buffer */
} gguf_kv;

struct cst_gguf {
    const uint8_t *base;
    size_t size;
    bool mapped;
    uint32_t version;
    size_t alignment;
    size_t data_off;
    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    cst_gguf_tensor *tensors;
    /* open-addressing hash tables of indexes (+1; 0 = empty) */
    uint32_t kv_hmask, t_hmask;
    int64_t *kv_hash;
    int64_t *t_hash;
};

/* ---- little-endian cursor ------------------------------------------- */
typedef struct cursor {
    const uint8_t *base;
    size_t size;
    size_t pos;
    char *err;
    size_t errlen;
} cursor;

static inline size_t cur_left(const cursor *c) { return c->size - c->pos; }

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static bool cur_u32(cursor *c, uint32_t *v, const char *what) {
    if (cur_left(c) < 4) {
        cst_errf(c->err, c->errlen, "truncated file: %s at byte %zu needs 4 bytes, file size %zu", what, c->pos, c->size);
        return false;
    }
    *v = (uint32_t)rd_le(c->base + c->pos, 4);
    c->pos += 4;
    return true;
}

static bool cur_u64(cursor *c, uint64_t *v, const char *what) {
    if (cur_left(c) < 8) {
        cst_errf(c->err, c->errlen, "truncated file: %s at byte %zu needs 8 bytes, file size %zu", what, c->pos, c->size);
        return false;
    }
    *v = rd_le(c->base + c->pos, 8);
    c->pos += 8;
    return true;
}

/* A length-prefixed string; the view points into the buffer. */
static bool cur_str(cursor *c, cst_strv *s, const char *what) {
    uint64_t n;
    size_t at = c->pos;
    if (!cur_u64(c, &n, what)) return false;
    if (n > cur_left(c)) {
        cst_errf(c->err, c->errlen, "%s: string at byte %zu has length %llu past end of file (size %zu)", what, at,
                 (unsigned long long)n, c->size);
        return false;
    }
    s->ptr = (const char *)(c->base + c->pos);
    s->len = (size_t)n;
    c->pos += (size_t)n;
    return true;
}

static size_t scalar_size(cst_gguf_type t) {
    switch (t) {
    case CST_GGUF_UINT8: case CST_GGUF_INT8: case CST_GGUF_BOOL: return 1;
    case CST_GGUF_UINT16: case CST_GGUF_INT16: return 2;
    case CST_GGUF_UINT32: case CST_GGUF_INT32: case CST_GGUF_FLOAT32: return 4;
    case CST_GGUF_UINT64: case CST_GGUF_INT64: case CST_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static const char *type_name(cst_gguf_type t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < CST_GGUF_TYPE_COUNT ? names[t] : "?";
}

/* Printable, bounded copy of a view for error messages. */
static const char *show(cst_strv s, char *buf, size_t n) {
    size_t j = 0;
    for (size_t i = 0; i < s.len && j + 4 < n; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        buf[j++] = (ch >= 32 && ch < 127 && ch != '\'') ? (char)ch : '?';
    }
    if (s.len > 0 && j + 4 >= n && j < s.len) { buf[j++] = '.'; buf[j++] = '.'; buf[j++] = '.'; }
    buf[j] = 0;
    return buf;
}

static uint64_t hash_str(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool strv_eqv(cst_strv a, cst_strv b) { return a.len == b.len && (a.len == 0 || !memcmp(a.ptr, b.ptr, a.len)); }

static int64_t *hash_new(int64_t n, uint32_t *mask) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) cap <<= 1;
    *mask = (uint32_t)(cap - 1);
    return calloc(cap, sizeof(int64_t));
}

/* Insert index i under name s; returns the existing index on a duplicate, -1 otherwise. */
static int64_t hash_insert(int64_t *tab, uint32_t mask, cst_strv s, int64_t i, cst_strv (*name_of)(const cst_gguf *, int64_t),
                           const cst_gguf *g) {
    uint64_t h = hash_str(s.ptr, s.len) & mask;
    for (;;) {
        if (!tab[h]) {
            tab[h] = i + 1;
            return -1;
        }
        if (strv_eqv(name_of(g, tab[h] - 1), s)) return tab[h] - 1;
        h = (h + 1) & mask;
    }
}

static int64_t hash_find(const int64_t *tab, uint32_t mask, const char *z, cst_strv (*name_of)(const cst_gguf *, int64_t),
                         const cst_gguf *g) {
    if (!tab || !z) return -1;
    size_t n = strlen(z);
    uint64_t h = hash_str(z, n) & mask;
    for (;;) {
        if (!tab[h]) return -1;
        cst_strv s = name_of(g, tab[h] - 1);
        if (s.len == n && (n == 0 || !memcmp(s.ptr, z, n))) return tab[h] - 1;
        h = (h + 1) & mask;
    }
}

static cst_strv kv_name(const cst_gguf *g, int64_t i) { return g->kv[i].key; }
static cst_strv t_name(const cst_gguf *g, int64_t i) { return g->tensors[i].name; }

/* ---- parsing ----------------------------------------------------------- */

static cst_status parse_kv(cst_gguf *g, cursor *c, int64_t idx) {
    gguf_kv *kv = &g->kv[idx];
    char what[64], nb[96];
    snprintf(what, sizeof what, "key of KV %lld", (long long)idx);
    if (!cur_str(c, &kv->key, what)) return CST_ERR_BAD_FORMAT;
    if (kv->key.len == 0) {
        cst_errf(c->err, c->errlen, "KV %lld: empty key", (long long)idx);
        return CST_ERR_BAD_FORMAT;
    }
    show(kv->key, nb, sizeof nb);
    snprintf(what, sizeof what, "key '%.40s'", nb);
    uint32_t t;
    if (!cur_u32(c, &t, what)) return CST_ERR_BAD_FORMAT;
    if (t >= CST_GGUF_TYPE_COUNT) {
        cst_errf(c->err, c->errlen, "key '%s': unknown value type %u", nb, t);
        return CST_ERR_BAD_FORMAT;
    }
    kv->type = (cst_gguf_type)t;
    kv->val = c->base + c->pos;
    if (t == CST_GGUF_STRING) {
        cst_strv s;
        if (!cur_str(c, &s, what)) return CST_ERR_BAD_FORMAT;
        return CST_OK;
    }
    if (t != CST_GGUF_ARRAY) {
        size_t sz = scalar_size(kv->type);
        if (cur_left(c) < sz) {
            cst_errf(c->err, c->errlen, "key '%s': truncated %s value at byte %zu (file size %zu)", nb, type_name(kv->type), c->pos,
                     c->size);
            return CST_ERR_BAD_FORMAT;
        }
        c->pos += sz;
        return CST_OK;
    }
    uint32_t et;
    uint64_t n;
    if (!cur_u32(c, &et, what) || !cur_u64(c, &n, what)) return CST_ERR_BAD_FORMAT;
    if (et >= CST_GGUF_TYPE_COUNT) {
        cst_errf(c->err, c->errlen, "key '%s': array of unknown element type %u", nb, et);
        return CST_ERR_BAD_FORMAT;
    }
    if (et == CST_GGUF_ARRAY) {
        cst_errf(c->err, c->errlen, "key '%s': arrays of arrays are not supported", nb);
        return CST_ERR_UNSUPPORTED;
    }
    kv->arr_type = (cst_gguf_type)et;
    kv->arr_n = n;
    kv->val = c->base + c->pos;
    if (et == CST_GGUF_STRING) {
        /* each element needs at least its 8-byte length */
        if (n > cur_left(c) / 8) {
            cst_errf(c->err, c->errlen, "key '%s': string array of %llu elements cannot fit in the %zu bytes left", nb,
                     (unsigned long long)n, cur_left(c));
            return CST_ERR_BAD_FORMAT;
        }
        kv->str_off = malloc((size_t)(n ? n : 1) * sizeof(uint64_t));
        if (!kv->str_off) {
            cst_errf(c->err, c->errlen, "key '%s': out of memory for %llu strings", nb, (unsigned long long)n);
            return CST_ERR_NOMEM;
        }
        for (uint64_t j = 0; j < n; j++) {
            cst_strv s;
            kv->str_off[j] = c->pos;
            if (!cur_str(c, &s, what)) return CST_ERR_BAD_FORMAT;
        }
        return CST_OK;
    }
    size_t esz = scalar_size(kv->arr_type), total;
    if (n > SIZE_MAX || !cst_mul_ok((size_t)n, esz, &total) || total > cur_left(c)) {
        cst_errf(c->err, c->errlen, "key '%s': array of %llu %s elements runs past end of file (%zu bytes left)", nb,
                 (unsigned long long)n, type_name(kv->arr_type), cur_left(c));
        return CST_ERR_BAD_FORMAT;
    }
    c->pos += total;
    return CST_OK;
}

static cst_status parse_tensor(cst_gguf *g, cursor *c, int64_t idx) {
    cst_gguf_tensor *t = &g->tensors[idx];
    char what[64], nb[96];
    snprintf(what, sizeof what, "name of tensor %lld", (long long)idx);
    if (!cur_str(c, &t->name, what)) return CST_ERR_BAD_FORMAT;
    if (t->name.len == 0) {
        cst_errf(c->err, c->errlen, "tensor %lld: empty name", (long long)idx);
        return CST_ERR_BAD_FORMAT;
    }
    show(t->name, nb, sizeof nb);
    snprintf(what, sizeof what, "tensor '%.40s'", nb);
    uint32_t nd;
    if (!cur_u32(c, &nd, what)) return CST_ERR_BAD_FORMAT;
    if (nd < 1 || nd > CST_MAX_DIMS) {
        cst_errf(c->err, c->errlen, "tensor '%s': n_dims %u not in 1..%d", nb, nd, CST_MAX_DIMS);
        return CST_ERR_BAD_FORMAT;
    }
    t->n_dims = (int)nd;
    for (int d = 0; d < CST_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        if (!cur_u64(c, &v, what)) return CST_ERR_BAD_FORMAT;
        if (v == 0 || v > (uint64_t)INT64_MAX) {
            cst_errf(c->err, c->errlen, "tensor '%s': dimension %u is %lld (must be >= 1)", nb, d, (long long)v);
            return CST_ERR_BAD_FORMAT;
        }
        t->ne[d] = (int64_t)v;
    }
    int64_t nel = 1;
    for (int d = 0; d < CST_MAX_DIMS; d++) {
        if (__builtin_mul_overflow(nel, t->ne[d], &nel)) {
            cst_errf(c->err, c->errlen, "tensor '%s': element count overflows (shape %lld x %lld x %lld x %lld)", nb,
                     (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
            return CST_ERR_BAD_FORMAT;
        }
    }
    uint32_t ty;
    uint64_t off;
    if (!cur_u32(c, &ty, what) || !cur_u64(c, &off, what)) return CST_ERR_BAD_FORMAT;
    const cst_type_info *ti = cst_type_get_info((int)(ty > 0x7fffffff ? -1 : (int)ty));
    if (!ti->name || ti->blck_size <= 0) {
        cst_errf(c->err, c->errlen, "tensor '%s': unknown type id %u", nb, ty);
        return CST_ERR_BAD_FORMAT;
    }
    t->type = (cst_type)ty;
    if (t->ne[0] % ti->blck_size) {
        cst_errf(c->err, c->errlen, "tensor '%s': ne[0] = %lld is not a multiple of the %s block size %d", nb, (long long)t->ne[0],
                 ti->name, ti->blck_size);
        return CST_ERR_BAD_FORMAT;
    }
    size_t nbytes;
    if (!cst_mul_ok((size_t)(nel / ti->blck_size), ti->type_size, &nbytes)) {
        cst_errf(c->err, c->errlen, "tensor '%s': byte size overflows", nb);
        return CST_ERR_BAD_FORMAT;
    }
    t->nbytes = nbytes;
    t->offset = off;
    return CST_OK;
}

static cst_status parse(cst_gguf *g, char *err, size_t errlen) {
    cursor c = {g->base, g->size, 0, err, errlen};
    char nb[96];
    if (g->size < 4 || memcmp(g->base, GGUF_MAGIC, 4)) {
        cst_errf(err, errlen, "not a GGUF file (bad magic%s)", g->size < 4 ? ", file shorter than 4 bytes" : "");
        return CST_ERR_BAD_FORMAT;
    }
    c.pos = 4;
    uint32_t version;
    if (!cur_u32(&c, &version, "version")) return CST_ERR_BAD_FORMAT;
    if (version == 1) {
        cst_errf(err, errlen, "GGUF version 1 is not supported (only 2 and 3)");
        return CST_ERR_UNSUPPORTED;
    }
    if (version != 2 && version != 3) {
        if ((version & 0xffff) == 0 && (version >> 16) != 0)
            cst_errf(err, errlen, "GGUF file appears to be big-endian (version field 0x%08x); only little-endian is supported", version);
        else
            cst_errf(err, errlen, "unsupported GGUF version %u (only 2 and 3)", version);
        return CST_ERR_UNSUPPORTED;
    }
    g->version = version;
    uint64_t n_t, n_kv;
    if (!cur_u64(&c, &n_t, "tensor count") || !cur_u64(&c, &n_kv, "KV count")) return CST_ERR_BAD_FORMAT;
    /* minimal sizes: KV = 8 (len) + 1 (key) + 4 (type) + 1 (u8); tensor = 8 + 1 + 4 + 8 + 4 + 8 */
    if (n_kv > cur_left(&c) / 14) {
        cst_errf(err, errlen, "KV count %llu cannot fit in a file of %zu bytes", (unsigned long long)n_kv, g->size);
        return CST_ERR_BAD_FORMAT;
    }
    if (n_t > cur_left(&c) / 33) {
        cst_errf(err, errlen, "tensor count %llu cannot fit in a file of %zu bytes", (unsigned long long)n_t, g->size);
        return CST_ERR_BAD_FORMAT;
    }
    g->kv = calloc((size_t)(n_kv ? n_kv : 1), sizeof(gguf_kv));
    g->tensors = calloc((size_t)(n_t ? n_t : 1), sizeof(cst_gguf_tensor));
    g->kv_hash = hash_new((int64_t)n_kv, &g->kv_hmask);
    g->t_hash = hash_new((int64_t)n_t, &g->t_hmask);
    if (!g->kv || !g->tensors || !g->kv_hash || !g->t_hash) {
        cst_errf(err, errlen, "out of memory for %llu KVs and %llu tensors", (unsigned long long)n_kv, (unsigned long long)n_t);
        return CST_ERR_NOMEM;
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        cst_status st = parse_kv(g, &c, (int64_t)i);
        g->n_kv = (int64_t)i + 1; /* so that close frees str_off of this one */
        if (st != CST_OK) return st;
        int64_t dup = hash_insert(g->kv_hash, g->kv_hmask, g->kv[i].key, (int64_t)i, kv_name, g);
        if (dup >= 0) {
            cst_errf(err, errlen, "duplicate key '%s' (KV %lld and %llu)", show(g->kv[i].key, nb, sizeof nb), (long long)dup,
                     (unsigned long long)i);
            return CST_ERR_BAD_FORMAT;
        }
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = cst_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        if (g->kv[ai].type != CST_GGUF_UINT32) {
            cst_errf(err, errlen, "general.alignment has type %s (must be u32)", type_name(g->kv[ai].type));
            return CST_ERR_BAD_FORMAT;
        }
        uint32_t a = (uint32_t)rd_le(g->kv[ai].val, 4);
        if (a == 0 || (a & (a - 1))) {
            cst_errf(err, errlen, "general.alignment %u is not a power of two", a);
            return CST_ERR_BAD_FORMAT;
        }
        g->alignment = a;
    }
    for (uint64_t i = 0; i < n_t; i++) {
        cst_status st = parse_tensor(g, &c, (int64_t)i);
        if (st != CST_OK) return st;
        g->n_tensors = (int64_t)i + 1;
        int64_t dup = hash_insert(g->t_hash, g->t_hmask, g->tensors[i].name, (int64_t)i, t_name, g);
        if (dup >= 0) {
            cst_errf(err, errlen, "duplicate tensor name '%s' (tensors %lld and %llu)", show(g->tensors[i].name, nb, sizeof nb),
                     (long long)dup, (unsigned long long)i);
            return CST_ERR_BAD_FORMAT;
        }
    }
    /* data section starts at the next multiple of the alignment */
    size_t a = g->alignment, data_off = c.pos;
    if (data_off % a) data_off += a - data_off % a;
    if (data_off < c.pos || (n_t > 0 && data_off > g->size)) {
        cst_errf(err, errlen, "data section would start at byte %zu, past end of file (size %zu)", data_off, g->size);
        return CST_ERR_BAD_FORMAT;
    }
    g->data_off = data_off;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        cst_gguf_tensor *t = &g->tensors[i];
        show(t->name, nb, sizeof nb);
        if (t->offset % a) {
            cst_errf(err, errlen, "tensor '%s': offset %llu is not a multiple of the alignment %zu", nb, (unsigned long long)t->offset, a);
            return CST_ERR_BAD_FORMAT;
        }
        size_t avail = g->size - data_off;
        if (t->offset > avail || t->nbytes > avail - t->offset) {
            unsigned long long end = (unsigned long long)data_off + (unsigned long long)t->offset;
            if (end < data_off || __builtin_add_overflow(end, (unsigned long long)t->nbytes, &end))
                cst_errf(err, errlen, "tensor '%s': data offset %llu + %zu bytes overflows", nb, (unsigned long long)t->offset, t->nbytes);
            else
                cst_errf(err, errlen, "tensor '%s': data ends at byte %llu past end of file (size %zu)", nb, end, g->size);
            return CST_ERR_BAD_FORMAT;
        }
        t->data = g->base + data_off + t->offset;
    }
    return CST_OK;
}

static cst_status open_common(cst_gguf *g, cst_gguf **out, char *err, size_t errlen) {
    cst_status st = parse(g, err, errlen);
    if (st != CST_OK) {
        if (err && errlen && !err[0]) cst_errf(err, errlen, "invalid GGUF file");
        cst_gguf_close(g);
        return st;
    }
    *out = g;
    return CST_OK;
}

cst_status cst_gguf_open_buffer(const void *buf, size_t len, cst_gguf **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!out || (!buf && len)) {
        cst_errf(err, errlen, "invalid argument");
        return CST_ERR_INVALID_ARG;
    }
    *out = NULL;
    cst_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        cst_errf(err, errlen, "out of memory");
        return CST_ERR_NOMEM;
    }
    g->base = buf ? buf : (const uint8_t *)"";
    g->size = len;
    return open_common(g, out, err, errlen);
}

cst_status cst_gguf_open(const char *path, cst_gguf **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!out || !path) {
        cst_errf(err, errlen, "invalid argument");
        return CST_ERR_INVALID_ARG;
    }
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cst_errf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? CST_ERR_NOT_FOUND : CST_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        cst_errf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return CST_ERR_IO;
    }
    size_t size = (size_t)sb.st_size;
    if (size < 4) {
        close(fd);
        cst_errf(err, errlen, "%s: not a GGUF file (only %zu bytes)", path, size);
        return CST_ERR_BAD_FORMAT;
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        cst_errf(err, errlen, "%s: mmap failed: %s", path, strerror(errno));
        return CST_ERR_IO;
    }
    cst_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(map, size);
        cst_errf(err, errlen, "out of memory");
        return CST_ERR_NOMEM;
    }
    g->base = map;
    g->size = size;
    g->mapped = true;
    cst_status st = open_common(g, out, err, errlen);
    if (st != CST_OK && err && errlen) {
        char tmp[CST_ERRMSG_LEN * 2];
        snprintf(tmp, sizeof tmp, "%s: %s", path, err);
        cst_errf(err, errlen, "%s", tmp);
    }
    return st;
}

void cst_gguf_close(cst_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_off);
    free(g->kv);
    free(g->tensors);
    free(g->kv_hash);
    free(g->t_hash);
    if (g->mapped) munmap((void *)g->base, g->size);
    free(g);
}

/* ---- accessors ----------------------------------------------------------- */

uint32_t cst_gguf_version(const cst_gguf *g) { return g->version; }
size_t cst_gguf_alignment(const cst_gguf *g) { return g->alignment; }
size_t cst_gguf_file_size(const cst_gguf *g) { return g->size; }
int64_t cst_gguf_n_kv(const cst_gguf *g) { return g->n_kv; }
int64_t cst_gguf_n_tensors(const cst_gguf *g) { return g->n_tensors; }

int64_t cst_gguf_find_key(const cst_gguf *g, const char *key) { return hash_find(g->kv_hash, g->kv_hmask, key, kv_name, g); }

static const gguf_kv *kv_at(const cst_gguf *g, int64_t i) { return (i >= 0 && i < g->n_kv) ? &g->kv[i] : NULL; }

cst_strv cst_gguf_key(const cst_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : (cst_strv){NULL, 0};
}

cst_gguf_type cst_gguf_kv_type(const cst_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : CST_GGUF_TYPE_COUNT;
}

/* Numeric element at p of type t to i64 / f64. */
static bool num_i64(cst_gguf_type t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case CST_GGUF_UINT8: case CST_GGUF_BOOL: *out = p[0]; return true;
    case CST_GGUF_INT8: *out = (int8_t)p[0]; return true;
    case CST_GGUF_UINT16: *out = (uint16_t)rd_le(p, 2); return true;
    case CST_GGUF_INT16: *out = (int16_t)(uint16_t)rd_le(p, 2); return true;
    case CST_GGUF_UINT32: *out = (uint32_t)rd_le(p, 4); return true;
    case CST_GGUF_INT32: *out = (int32_t)(uint32_t)rd_le(p, 4); return true;
    case CST_GGUF_UINT64: {
        uint64_t v = rd_le(p, 8);
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
        return true;
    }
    case CST_GGUF_INT64: *out = (int64_t)rd_le(p, 8); return true;
    case CST_GGUF_FLOAT32: case CST_GGUF_FLOAT64: {
        double d = t == CST_GGUF_FLOAT32 ? (double)cst_bits_f32((uint32_t)rd_le(p, 4)) : 0;
        if (t == CST_GGUF_FLOAT64) {
            uint64_t u = rd_le(p, 8);
            memcpy(&d, &u, 8);
        }
        if (!isfinite(d) || d >= 9.2233720368547758e18 || d < -9.2233720368547758e18) return false;
        *out = (int64_t)d;
        return true;
    }
    default: return false;
    }
}

static bool num_f64(cst_gguf_type t, const uint8_t *p, double *out) {
    if (t == CST_GGUF_FLOAT32) {
        *out = cst_bits_f32((uint32_t)rd_le(p, 4));
        return true;
    }
    if (t == CST_GGUF_FLOAT64) {
        uint64_t u = rd_le(p, 8);
        memcpy(out, &u, 8);
        return true;
    }
    if (t == CST_GGUF_UINT64) {
        *out = (double)rd_le(p, 8);
        return true;
    }
    int64_t v;
    if (!num_i64(t, p, &v)) return false;
    *out = (double)v;
    return true;
}

bool cst_gguf_kv_i64(const cst_gguf *g, int64_t i, int64_t *out) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && out && num_i64(kv->type, kv->val, out);
}

bool cst_gguf_kv_f64(const cst_gguf *g, int64_t i, double *out) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && out && num_f64(kv->type, kv->val, out);
}

static cst_strv str_at(const cst_gguf *g, size_t off) {
    /* validated at open: length prefix and bytes are inside the buffer */
    uint64_t n = rd_le(g->base + off, 8);
    return (cst_strv){(const char *)(g->base + off + 8), (size_t)n};
}

cst_strv cst_gguf_kv_str(const cst_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != CST_GGUF_STRING) return (cst_strv){NULL, 0};
    return str_at(g, (size_t)(kv->val - g->base));
}

const void *cst_gguf_kv_data(const cst_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && scalar_size(kv->type) ? kv->val : NULL;
}

cst_gguf_type cst_gguf_arr_type(const cst_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == CST_GGUF_ARRAY ? kv->arr_type : CST_GGUF_TYPE_COUNT;
}

uint64_t cst_gguf_arr_n(const cst_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == CST_GGUF_ARRAY ? kv->arr_n : 0;
}

const void *cst_gguf_arr_data(const cst_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != CST_GGUF_ARRAY || kv->arr_type == CST_GGUF_STRING) return NULL;
    return kv->val;
}

cst_strv cst_gguf_arr_str(const cst_gguf *g, int64_t i, uint64_t j) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != CST_GGUF_ARRAY || kv->arr_type != CST_GGUF_STRING || j >= kv->arr_n) return (cst_strv){NULL, 0};
    return str_at(g, (size_t)kv->str_off[j]);
}

bool cst_gguf_arr_i64(const cst_gguf *g, int64_t i, uint64_t j, int64_t *out) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || !out || kv->type != CST_GGUF_ARRAY || j >= kv->arr_n) return false;
    size_t esz = scalar_size(kv->arr_type);
    if (!esz) return false;
    return num_i64(kv->arr_type, kv->val + j * esz, out);
}

bool cst_gguf_arr_f64(const cst_gguf *g, int64_t i, uint64_t j, double *out) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || !out || kv->type != CST_GGUF_ARRAY || j >= kv->arr_n) return false;
    size_t esz = scalar_size(kv->arr_type);
    if (!esz) return false;
    return num_f64(kv->arr_type, kv->val + j * esz, out);
}

int64_t cst_gguf_get_i64(const cst_gguf *g, const char *key, int64_t dflt) {
    int64_t v;
    return cst_gguf_kv_i64(g, cst_gguf_find_key(g, key), &v) ? v : dflt;
}

double cst_gguf_get_f64(const cst_gguf *g, const char *key, double dflt) {
    double v;
    return cst_gguf_kv_f64(g, cst_gguf_find_key(g, key), &v) ? v : dflt;
}

bool cst_gguf_get_bool(const cst_gguf *g, const char *key, bool dflt) {
    int64_t i = cst_gguf_find_key(g, key);
    const gguf_kv *kv = kv_at(g, i);
    if (!kv) return dflt;
    if (kv->type == CST_GGUF_BOOL) return kv->val[0] != 0;
    int64_t v;
    return num_i64(kv->type, kv->val, &v) ? v != 0 : dflt;
}

cst_strv cst_gguf_get_str(const cst_gguf *g, const char *key) { return cst_gguf_kv_str(g, cst_gguf_find_key(g, key)); }

const cst_gguf_tensor *cst_gguf_tensor_at(const cst_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const cst_gguf_tensor *cst_gguf_find_tensor(const cst_gguf *g, const char *name) {
    int64_t i = hash_find(g->t_hash, g->t_hmask, name, t_name, g);
    return i >= 0 ? &g->tensors[i] : NULL;
}
