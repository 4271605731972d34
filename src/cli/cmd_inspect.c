/* cmd_inspect.c: `castor inspect MODEL [--json]`: prints a GGUF file's
 * version, alignment, every metadata KV (long arrays and strings abbreviated
 * in text mode), the tensor table and totals; --json prints one JSON object
 * with everything in full. Errors: message on stderr, exit 1.
 */
#include "cli.h"
#include "engine/gguf/gguf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARR_SHOW 8     /* array items shown in text mode */
#define STR_SHOW 120   /* string bytes shown in text mode */

static const char *gtype_name(cst_gguf_type t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < CST_GGUF_TYPE_COUNT ? names[t] : "?";
}

/* Quoted, escaped, possibly shortened string. */
static void print_str(FILE *f, cst_strv s, size_t max) {
    fputc('"', f);
    size_t n = s.len < max ? s.len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 32 || c == 127) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('"', f);
    if (n < s.len) fprintf(f, "... (%zu bytes)", s.len);
}

static void print_num(FILE *f, cst_gguf_type t, const cst_gguf *g, int64_t i, int64_t j) {
    int64_t v;
    double d;
    bool is_arr = j >= 0;
    if (t == CST_GGUF_FLOAT32 || t == CST_GGUF_FLOAT64) {
        if (is_arr ? cst_gguf_arr_f64(g, i, (uint64_t)j, &d) : cst_gguf_kv_f64(g, i, &d)) fprintf(f, "%.9g", d);
    } else if (t == CST_GGUF_BOOL) {
        if (is_arr ? cst_gguf_arr_i64(g, i, (uint64_t)j, &v) : cst_gguf_kv_i64(g, i, &v)) fputs(v ? "true" : "false", f);
    } else if (is_arr ? cst_gguf_arr_i64(g, i, (uint64_t)j, &v) : cst_gguf_kv_i64(g, i, &v)) {
        fprintf(f, "%lld", (long long)v);
    } else if (is_arr ? cst_gguf_arr_f64(g, i, (uint64_t)j, &d) : cst_gguf_kv_f64(g, i, &d)) {
        fprintf(f, "%.0f", d); /* u64 above INT64_MAX */
    }
}

static void shape_str(const cst_gguf_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int d = 0; d < t->n_dims && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? " x " : "", (long long)t->ne[d]);
}

static int print_text(const char *path, const cst_gguf *g) {
    printf("file: %s\n", path);
    printf("GGUF version %u, alignment %zu, file size %zu bytes\n", cst_gguf_version(g), cst_gguf_alignment(g), cst_gguf_file_size(g));
    int64_t n_kv = cst_gguf_n_kv(g);
    printf("\nmetadata (%lld keys):\n", (long long)n_kv);
    for (int64_t i = 0; i < n_kv; i++) {
        cst_strv k = cst_gguf_key(g, i);
        cst_gguf_type t = cst_gguf_kv_type(g, i);
        printf("  %-44.*s ", (int)k.len, k.ptr);
        if (t == CST_GGUF_ARRAY) {
            cst_gguf_type et = cst_gguf_arr_type(g, i);
            uint64_t n = cst_gguf_arr_n(g, i);
            printf("[%s x %llu] = [", gtype_name(et), (unsigned long long)n);
            uint64_t show = n < ARR_SHOW ? n : ARR_SHOW;
            for (uint64_t j = 0; j < show; j++) {
                if (j) fputs(", ", stdout);
                if (et == CST_GGUF_STRING) print_str(stdout, cst_gguf_arr_str(g, i, j), 40);
                else print_num(stdout, et, g, i, (int64_t)j);
            }
            if (show < n) printf(", ... %llu more", (unsigned long long)(n - show));
            fputs("]\n", stdout);
        } else if (t == CST_GGUF_STRING) {
            printf("%-8s = ", gtype_name(t));
            print_str(stdout, cst_gguf_kv_str(g, i), STR_SHOW);
            fputc('\n', stdout);
        } else {
            printf("%-8s = ", gtype_name(t));
            print_num(stdout, t, g, i, -1);
            fputc('\n', stdout);
        }
    }
    int64_t n_t = cst_gguf_n_tensors(g);
    printf("\ntensors (%lld):\n", (long long)n_t);
    printf("  %-5s %-40s %-6s %-24s %12s %12s\n", "#", "name", "type", "shape", "offset", "bytes");
    uint64_t total_bytes = 0, total_el = 0;
    uint64_t by_type_n[CST_TYPE_COUNT] = {0}, by_type_b[CST_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < n_t; i++) {
        const cst_gguf_tensor *t = cst_gguf_tensor_at(g, i);
        char shape[128];
        shape_str(t, shape, sizeof shape);
        printf("  %-5lld %-40.*s %-6s %-24s %12llu %12zu\n", (long long)i, (int)t->name.len, t->name.ptr, cst_type_name(t->type), shape,
               (unsigned long long)t->offset, t->nbytes);
        total_bytes += t->nbytes;
        total_el += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        if ((unsigned)t->type < CST_TYPE_COUNT) {
            by_type_n[t->type]++;
            by_type_b[t->type] += t->nbytes;
        }
    }
    printf("\ntotals: %lld tensors, %llu elements (%.2f M), %llu bytes (%.2f MiB)\n", (long long)n_t, (unsigned long long)total_el,
           total_el / 1e6, (unsigned long long)total_bytes, total_bytes / (1024.0 * 1024.0));
    for (int ty = 0; ty < CST_TYPE_COUNT; ty++)
        if (by_type_n[ty])
            printf("  %-6s %5llu tensors %14llu bytes\n", cst_type_name((cst_type)ty), (unsigned long long)by_type_n[ty],
                   (unsigned long long)by_type_b[ty]);
    return 0;
}

/* JSON string from bytes that may not be valid UTF-8 (invalid bytes become U+FFFD). */
static json_t *jstr(cst_strv s) {
    json_t *j = json_stringn(s.ptr ? s.ptr : "", s.len);
    if (j) return j;
    char *buf = malloc(s.len * 3 + 1);
    if (!buf) return json_null();
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)s.ptr;
    for (size_t i = 0; i < s.len;) {
        unsigned c = p[i];
        size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = need > 0 && i + need <= s.len;
        for (size_t q = 1; ok && q < need; q++) ok = (p[i + q] & 0xC0) == 0x80;
        if (ok && need > 1) ok = json_stringn((const char *)p + i, need) != NULL; /* overlong / surrogate check */
        if (ok) {
            memcpy(buf + k, p + i, need);
            k += need;
            i += need;
        } else {
            memcpy(buf + k, "\xef\xbf\xbd", 3);
            k += 3;
            i++;
        }
    }
    json_t *r = json_stringn(buf, k);
    free(buf);
    return r ? r : json_null();
}

static json_t *jnum(cst_gguf_type t, const cst_gguf *g, int64_t i, int64_t j) {
    int64_t v;
    double d;
    bool is_arr = j >= 0;
    if (t == CST_GGUF_FLOAT32 || t == CST_GGUF_FLOAT64) {
        if (!(is_arr ? cst_gguf_arr_f64(g, i, (uint64_t)j, &d) : cst_gguf_kv_f64(g, i, &d))) return json_null();
        return d == d && d - d == 0 ? json_real(d) : json_null(); /* NaN/inf are not JSON */
    }
    if (is_arr ? cst_gguf_arr_i64(g, i, (uint64_t)j, &v) : cst_gguf_kv_i64(g, i, &v))
        return t == CST_GGUF_BOOL ? json_boolean(v) : json_integer(v);
    if (is_arr ? cst_gguf_arr_f64(g, i, (uint64_t)j, &d) : cst_gguf_kv_f64(g, i, &d)) return json_real(d);
    return json_null();
}

static int print_json(const char *path, const cst_gguf *g) {
    json_t *root = json_object();
    json_object_set_new(root, "file", json_string(path));
    json_object_set_new(root, "version", json_integer(cst_gguf_version(g)));
    json_object_set_new(root, "alignment", json_integer((json_int_t)cst_gguf_alignment(g)));
    json_object_set_new(root, "file_size", json_integer((json_int_t)cst_gguf_file_size(g)));
    json_t *meta = json_object(), *types = json_object();
    for (int64_t i = 0; i < cst_gguf_n_kv(g); i++) {
        cst_strv k = cst_gguf_key(g, i);
        cst_gguf_type t = cst_gguf_kv_type(g, i);
        json_t *v;
        char tname[32];
        if (t == CST_GGUF_ARRAY) {
            cst_gguf_type et = cst_gguf_arr_type(g, i);
            uint64_t n = cst_gguf_arr_n(g, i);
            v = json_array();
            for (uint64_t j = 0; j < n; j++)
                json_array_append_new(v, et == CST_GGUF_STRING ? jstr(cst_gguf_arr_str(g, i, j)) : jnum(et, g, i, (int64_t)j));
            snprintf(tname, sizeof tname, "array[%s]", gtype_name(et));
        } else {
            v = t == CST_GGUF_STRING ? jstr(cst_gguf_kv_str(g, i)) : jnum(t, g, i, -1);
            snprintf(tname, sizeof tname, "%s", gtype_name(t));
        }
        /* keys may not be valid UTF-8 / NUL-free: go through jstr */
        json_t *jk = jstr(k);
        const char *key = json_is_string(jk) ? json_string_value(jk) : "?";
        json_object_set_new(meta, key, v);
        json_object_set_new(types, key, json_string(tname));
        json_decref(jk);
    }
    json_object_set_new(root, "metadata", meta);
    json_object_set_new(root, "metadata_types", types);
    json_t *tens = json_array();
    uint64_t total_bytes = 0, total_el = 0;
    for (int64_t i = 0; i < cst_gguf_n_tensors(g); i++) {
        const cst_gguf_tensor *t = cst_gguf_tensor_at(g, i);
        json_t *o = json_object(), *shape = json_array();
        for (int d = 0; d < t->n_dims; d++) json_array_append_new(shape, json_integer(t->ne[d]));
        json_object_set_new(o, "name", jstr(t->name));
        json_object_set_new(o, "type", json_string(cst_type_name(t->type)));
        json_object_set_new(o, "shape", shape);
        json_object_set_new(o, "offset", json_integer((json_int_t)t->offset));
        json_object_set_new(o, "bytes", json_integer((json_int_t)t->nbytes));
        json_array_append_new(tens, o);
        total_bytes += t->nbytes;
        total_el += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    json_object_set_new(root, "tensors", tens);
    json_object_set_new(root, "n_tensors", json_integer(cst_gguf_n_tensors(g)));
    json_object_set_new(root, "n_elements", json_integer((json_int_t)total_el));
    json_object_set_new(root, "tensor_bytes", json_integer((json_int_t)total_bytes));
    int rc = json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) == 0 ? 0 : 1;
    fputc('\n', stdout);
    json_decref(root);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f, "usage: castor inspect MODEL.gguf [--json]\n"
               "  prints the GGUF version, alignment, metadata, tensor table and totals\n"
               "  --json  one JSON object with everything (arrays in full)\n");
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "castor inspect: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!path) path = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char err[512];
    cst_gguf *g = NULL;
    cst_status st = cst_gguf_open(path, &g, err, sizeof err);
    if (st != CST_OK) {
        fprintf(stderr, "castor inspect: %s\n", err);
        return 1;
    }
    int rc = json ? print_json(path, g) : print_text(path, g);
    cst_gguf_close(g);
    return rc;
}
