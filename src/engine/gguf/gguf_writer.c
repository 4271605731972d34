/* gguf_writer.c: builds a GGUF v3 file: KVs of every type (arrays and string
 * arrays included), then the tensor directory and the data section, each
 * tensor padded to the alignment. Tensor data is either copied at add time or
 * produced row-chunk by row-chunk at write time by a caller's fill callback.
 */
#define _GNU_SOURCE
#include "gguf.h"
#include "../../core/core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct wkv {
    char *key;
    cst_gguf_type type;
    cst_gguf_type arr_type;
    uint64_t n;           /* arrays: element count */
    uint8_t scalar[8];    /* scalars, little-endian */
    uint8_t *blob;        /* string bytes / numeric array bytes */
    size_t blob_len;
    char **strs;          /* string arrays */
    size_t *lens;
} wkv;

typedef struct wtensor {
    char *name;
    cst_type type;
    int n_dims;
    int64_t ne[CST_MAX_DIMS];
    size_t nbytes;
    void *data;           /* owned copy, or NULL with fill */
    cst_gguf_fill_fn fill;
    void *ctx;
    uint64_t offset;
} wtensor;

struct cst_gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    bool failed; /* an allocation failed or a tensor was rejected */
    char err[CST_ERRMSG_LEN];
};

cst_gguf_writer *cst_gguf_writer_new(void) { return calloc(1, sizeof(cst_gguf_writer)); }

static void kv_clear(wkv *kv) {
    free(kv->blob);
    if (kv->strs)
        for (uint64_t j = 0; j < kv->n; j++) free(kv->strs[j]);
    free(kv->strs);
    free(kv->lens);
    kv->blob = NULL;
    kv->strs = NULL;
    kv->lens = NULL;
    kv->blob_len = 0;
    kv->n = 0;
}

void cst_gguf_writer_free(cst_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        kv_clear(&w->kv[i]);
        free(w->kv[i].key);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

static void fail(cst_gguf_writer *w, const char *msg, const char *key) {
    if (!w->failed) cst_errf(w->err, sizeof w->err, "%s%s%s", msg, key ? ": " : "", key ? key : "");
    w->failed = true;
}

/* The slot for key (existing one cleared, or a new one); NULL on failure. */
static wkv *kv_slot(cst_gguf_writer *w, const char *key) {
    if (!w) return NULL;
    if (!key || !key[0]) {
        fail(w, "empty key", NULL);
        return NULL;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            kv_clear(&w->kv[i]);
            return &w->kv[i];
        }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *nk = realloc(w->kv, cap * sizeof *nk);
        if (!nk) {
            fail(w, "out of memory", key);
            return NULL;
        }
        w->kv = nk;
        w->cap_kv = cap;
    }
    wkv *kv = &w->kv[w->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->key = strdup(key);
    if (!kv->key) {
        fail(w, "out of memory", key);
        return NULL;
    }
    w->n_kv++;
    return kv;
}

static void set_scalar(cst_gguf_writer *w, const char *key, cst_gguf_type t, uint64_t bits, int n) {
    wkv *kv = kv_slot(w, key);
    if (!kv) return;
    kv->type = t;
    for (int i = 0; i < n; i++) kv->scalar[i] = (uint8_t)(bits >> (8 * i));
}

void cst_gguf_set_u32(cst_gguf_writer *w, const char *key, uint32_t v) { set_scalar(w, key, CST_GGUF_UINT32, v, 4); }
void cst_gguf_set_i32(cst_gguf_writer *w, const char *key, int32_t v) { set_scalar(w, key, CST_GGUF_INT32, (uint32_t)v, 4); }
void cst_gguf_set_u64(cst_gguf_writer *w, const char *key, uint64_t v) { set_scalar(w, key, CST_GGUF_UINT64, v, 8); }
void cst_gguf_set_f32(cst_gguf_writer *w, const char *key, float v) { set_scalar(w, key, CST_GGUF_FLOAT32, cst_f32_bits(v), 4); }
void cst_gguf_set_u8(cst_gguf_writer *w, const char *key, uint8_t v) { set_scalar(w, key, CST_GGUF_UINT8, v, 1); }
void cst_gguf_set_i8(cst_gguf_writer *w, const char *key, int8_t v) { set_scalar(w, key, CST_GGUF_INT8, (uint8_t)v, 1); }
void cst_gguf_set_u16(cst_gguf_writer *w, const char *key, uint16_t v) { set_scalar(w, key, CST_GGUF_UINT16, v, 2); }
void cst_gguf_set_i16(cst_gguf_writer *w, const char *key, int16_t v) { set_scalar(w, key, CST_GGUF_INT16, (uint16_t)v, 2); }
void cst_gguf_set_i64(cst_gguf_writer *w, const char *key, int64_t v) { set_scalar(w, key, CST_GGUF_INT64, (uint64_t)v, 8); }
void cst_gguf_set_f64(cst_gguf_writer *w, const char *key, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    set_scalar(w, key, CST_GGUF_FLOAT64, u, 8);
}
void cst_gguf_set_bool(cst_gguf_writer *w, const char *key, bool v) { set_scalar(w, key, CST_GGUF_BOOL, v ? 1 : 0, 1); }

static void set_strn(cst_gguf_writer *w, const char *key, const char *v, size_t n) {
    wkv *kv = kv_slot(w, key);
    if (!kv) return;
    kv->type = CST_GGUF_STRING;
    kv->blob = malloc(n ? n : 1);
    if (!kv->blob) {
        fail(w, "out of memory", key);
        return;
    }
    if (n) memcpy(kv->blob, v, n);
    kv->blob_len = n;
}

void cst_gguf_set_str(cst_gguf_writer *w, const char *key, const char *v) { set_strn(w, key, v ? v : "", v ? strlen(v) : 0); }

static size_t elem_size(cst_gguf_type t) {
    switch (t) {
    case CST_GGUF_UINT8: case CST_GGUF_INT8: case CST_GGUF_BOOL: return 1;
    case CST_GGUF_UINT16: case CST_GGUF_INT16: return 2;
    case CST_GGUF_UINT32: case CST_GGUF_INT32: case CST_GGUF_FLOAT32: return 4;
    case CST_GGUF_UINT64: case CST_GGUF_INT64: case CST_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

void cst_gguf_set_arr(cst_gguf_writer *w, const char *key, cst_gguf_type elem_type, const void *data, uint64_t n) {
    size_t esz = elem_size(elem_type), total;
    if (!w) return;
    if (!esz) {
        fail(w, "cst_gguf_set_arr: element type must be numeric or bool", key);
        return;
    }
    if (n > SIZE_MAX || !cst_mul_ok((size_t)n, esz, &total)) {
        fail(w, "array too large", key);
        return;
    }
    wkv *kv = kv_slot(w, key);
    if (!kv) return;
    kv->type = CST_GGUF_ARRAY;
    kv->arr_type = elem_type;
    kv->blob = malloc(total ? total : 1);
    if (!kv->blob) {
        fail(w, "out of memory", key);
        return;
    }
    if (total) memcpy(kv->blob, data, total); /* host is little-endian (x86-64) */
    kv->blob_len = total;
    kv->n = n;
}

static void set_arr_strn(cst_gguf_writer *w, const char *key, uint64_t n, const char *(*get)(const void *, uint64_t, size_t *),
                         const void *src) {
    wkv *kv = kv_slot(w, key);
    if (!kv) return;
    kv->type = CST_GGUF_ARRAY;
    kv->arr_type = CST_GGUF_STRING;
    kv->strs = calloc((size_t)(n ? n : 1), sizeof(char *));
    kv->lens = calloc((size_t)(n ? n : 1), sizeof(size_t));
    if (!kv->strs || !kv->lens) {
        fail(w, "out of memory", key);
        return;
    }
    for (uint64_t j = 0; j < n; j++) {
        size_t len;
        const char *s = get(src, j, &len);
        kv->strs[j] = malloc(len ? len : 1);
        if (!kv->strs[j]) {
            kv->n = j;
            fail(w, "out of memory", key);
            return;
        }
        if (len) memcpy(kv->strs[j], s, len);
        kv->lens[j] = len;
    }
    kv->n = n;
}

static const char *get_cstr(const void *src, uint64_t j, size_t *len) {
    const char *s = ((const char *const *)src)[j];
    if (!s) s = "";
    *len = strlen(s);
    return s;
}

void cst_gguf_set_arr_str(cst_gguf_writer *w, const char *key, const char *const *v, uint64_t n) {
    set_arr_strn(w, key, n, get_cstr, v);
}

typedef struct {
    const cst_gguf *g;
    int64_t i;
} arr_src;

static const char *get_gguf_str(const void *src, uint64_t j, size_t *len) {
    const arr_src *a = src;
    cst_strv s = cst_gguf_arr_str(a->g, a->i, j);
    *len = s.len;
    return s.ptr;
}

void cst_gguf_copy_kv(cst_gguf_writer *w, const cst_gguf *src, int64_t i) {
    if (!w || !src || i < 0 || i >= cst_gguf_n_kv(src)) return;
    cst_strv k = cst_gguf_key(src, i);
    char *key = strndup(k.ptr, k.len);
    if (!key) {
        fail(w, "out of memory", NULL);
        return;
    }
    cst_gguf_type t = cst_gguf_kv_type(src, i);
    if (t == CST_GGUF_STRING) {
        cst_strv s = cst_gguf_kv_str(src, i);
        set_strn(w, key, s.ptr, s.len);
    } else if (t == CST_GGUF_ARRAY) {
        cst_gguf_type et = cst_gguf_arr_type(src, i);
        uint64_t n = cst_gguf_arr_n(src, i);
        if (et == CST_GGUF_STRING) {
            arr_src a = {src, i};
            set_arr_strn(w, key, n, get_gguf_str, &a);
        } else {
            cst_gguf_set_arr(w, key, et, cst_gguf_arr_data(src, i), n);
        }
    } else {
        size_t esz = elem_size(t);
        const uint8_t *p = cst_gguf_kv_data(src, i);
        uint64_t bits = 0;
        for (size_t b = 0; p && b < esz; b++) bits |= (uint64_t)p[b] << (8 * b);
        set_scalar(w, key, t, bits, (int)esz);
    }
    free(key);
}

static cst_status add_tensor(cst_gguf_writer *w, const char *name, cst_type type, int n_dims, const int64_t *ne, wtensor **out) {
    if (!w) return CST_ERR_INVALID_ARG;
    if (w->failed) return CST_ERR_INVALID_ARG;
    if (!name || !name[0]) {
        fail(w, "tensor with empty name", NULL);
        return CST_ERR_INVALID_ARG;
    }
    const cst_type_info *ti = cst_type_get_info((int)type);
    if (!ti->name || ti->blck_size <= 0) {
        fail(w, "unknown tensor type", name);
        return CST_ERR_INVALID_ARG;
    }
    if (n_dims < 1 || n_dims > CST_MAX_DIMS || !ne) {
        fail(w, "n_dims must be 1..4", name);
        return CST_ERR_INVALID_ARG;
    }
    int64_t nel = 1;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] < 1 || __builtin_mul_overflow(nel, ne[d], &nel)) {
            fail(w, "bad tensor shape", name);
            return CST_ERR_INVALID_ARG;
        }
    if (ne[0] % ti->blck_size) {
        fail(w, "ne[0] is not a multiple of the type's block size", name);
        return CST_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) {
            fail(w, "duplicate tensor name", name);
            return CST_ERR_INVALID_ARG;
        }
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt) {
            fail(w, "out of memory", name);
            return CST_ERR_NOMEM;
        }
        w->t = nt;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) {
        fail(w, "out of memory", name);
        return CST_ERR_NOMEM;
    }
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < CST_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->nbytes = (size_t)(nel / ti->blck_size) * ti->type_size;
    w->n_t++;
    *out = t;
    return CST_OK;
}

cst_status cst_gguf_add_tensor(cst_gguf_writer *w, const char *name, cst_type type, int n_dims, const int64_t *ne, const void *data,
                               size_t nbytes) {
    wtensor *t;
    cst_status st = add_tensor(w, name, type, n_dims, ne, &t);
    if (st != CST_OK) return st;
    if (nbytes != t->nbytes || (!data && nbytes)) {
        w->n_t--;
        free(t->name);
        fail(w, "tensor data size does not match its type and shape", name);
        return CST_ERR_INVALID_ARG;
    }
    t->data = malloc(nbytes ? nbytes : 1);
    if (!t->data) {
        fail(w, "out of memory", name);
        return CST_ERR_NOMEM;
    }
    memcpy(t->data, data, nbytes);
    return CST_OK;
}

cst_status cst_gguf_add_tensor_fill(cst_gguf_writer *w, const char *name, cst_type type, int n_dims, const int64_t *ne,
                                    cst_gguf_fill_fn fill, void *ctx) {
    if (!fill) return CST_ERR_INVALID_ARG;
    wtensor *t;
    cst_status st = add_tensor(w, name, type, n_dims, ne, &t);
    if (st != CST_OK) return st;
    t->fill = fill;
    t->ctx = ctx;
    return CST_OK;
}

/* ---- output ------------------------------------------------------------- */

typedef struct {
    FILE *f;
    bool ok;
    uint64_t pos;
} out_t;

static void put(out_t *o, const void *p, size_t n) {
    if (o->ok && n && fwrite(p, 1, n, o->f) != n) o->ok = false;
    o->pos += n;
}
static void put_u32(out_t *o, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    put(o, b, 4);
}
static void put_u64(out_t *o, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    put(o, b, 8);
}
static void put_str(out_t *o, const void *s, size_t n) {
    put_u64(o, n);
    put(o, s, n);
}
static void pad(out_t *o, size_t align) {
    static const uint8_t zeros[256];
    size_t n = (size_t)((align - o->pos % align) % align);
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        put(o, zeros, k);
        n -= k;
    }
}

cst_status cst_gguf_write(cst_gguf_writer *w, const char *path, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!w || !path) {
        cst_errf(err, errlen, "invalid argument");
        return CST_ERR_INVALID_ARG;
    }
    if (w->failed) {
        cst_errf(err, errlen, "%s", w->err);
        return CST_ERR_INVALID_ARG;
    }
    size_t align = 32;
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, "general.alignment")) {
            uint32_t a = (uint32_t)w->kv[i].scalar[0] | (uint32_t)w->kv[i].scalar[1] << 8 | (uint32_t)w->kv[i].scalar[2] << 16 |
                         (uint32_t)w->kv[i].scalar[3] << 24;
            if (w->kv[i].type != CST_GGUF_UINT32 || a == 0 || (a & (a - 1))) {
                cst_errf(err, errlen, "general.alignment must be a u32 power of two");
                return CST_ERR_INVALID_ARG;
            }
            align = a;
        }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off += w->t[i].nbytes;
        off += (align - off % align) % align;
    }
    out_t o = {fopen(path, "wb"), true, 0};
    if (!o.f) {
        cst_errf(err, errlen, "%s: %s", path, strerror(errno));
        return CST_ERR_IO;
    }
    setvbuf(o.f, NULL, _IOFBF, 1 << 20);
    put(&o, "GGUF", 4);
    put_u32(&o, 3);
    put_u64(&o, w->n_t);
    put_u64(&o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kv[i];
        put_str(&o, kv->key, strlen(kv->key));
        put_u32(&o, kv->type);
        if (kv->type == CST_GGUF_STRING) {
            put_str(&o, kv->blob, kv->blob_len);
        } else if (kv->type == CST_GGUF_ARRAY) {
            put_u32(&o, kv->arr_type);
            put_u64(&o, kv->n);
            if (kv->arr_type == CST_GGUF_STRING)
                for (uint64_t j = 0; j < kv->n; j++) put_str(&o, kv->strs[j], kv->lens[j]);
            else
                put(&o, kv->blob, kv->blob_len);
        } else {
            put(&o, kv->scalar, elem_size(kv->type));
        }
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&o, t->name, strlen(t->name));
        put_u32(&o, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(&o, (uint64_t)t->ne[d]);
        put_u32(&o, (uint32_t)t->type);
        put_u64(&o, t->offset);
    }
    pad(&o, align);
    cst_status st = CST_OK;
    void *buf = NULL;
    for (size_t i = 0; i < w->n_t && o.ok && st == CST_OK; i++) {
        const wtensor *t = &w->t[i];
        if (t->data) {
            put(&o, t->data, t->nbytes);
        } else {
            size_t row = cst_row_size(t->type, t->ne[0]);
            int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
            int64_t chunk = (int64_t)((4u << 20) / (row ? row : 1));
            if (chunk < 1) chunk = 1;
            if (chunk > rows) chunk = rows;
            void *nb = realloc(buf, (size_t)chunk * row);
            if (!nb) {
                cst_errf(err, errlen, "out of memory writing tensor '%s'", t->name);
                st = CST_ERR_NOMEM;
                break;
            }
            buf = nb;
            for (int64_t r = 0; r < rows && o.ok; r += chunk) {
                int64_t n = rows - r < chunk ? rows - r : chunk;
                if (!t->fill(t->ctx, r, n, buf)) {
                    cst_errf(err, errlen, "producing the data of tensor '%s' failed", t->name);
                    st = CST_ERR_INTERNAL;
                    break;
                }
                put(&o, buf, (size_t)n * row);
            }
        }
        pad(&o, align);
    }
    free(buf);
    if (fclose(o.f) != 0) o.ok = false;
    if (st == CST_OK && !o.ok) {
        cst_errf(err, errlen, "%s: write failed: %s", path, strerror(errno));
        st = CST_ERR_IO;
    }
    if (st != CST_OK) unlink(path);
    return st;
}
