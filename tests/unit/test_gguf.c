/* test_gguf.c: GGUF reader on the shared models, writer round trips, and
 * handcrafted malformed files (every one must fail cleanly with a message). */
#include "engine/gguf/gguf.h"
#include "test.h"

#include <dirent.h>
#include <stdlib.h>

TEST(opens_all_shared_models) {
    const char *dir = cst_test_shared("models");
    DIR *d = opendir(dir);
    if (!d) cst_test_skip("no %s", dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf")) continue;
        char path[4096], err[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        cst_gguf *g = NULL;
        cst_status st = cst_gguf_open(path, &g, err, sizeof err);
        ASSERT_MSG(st == CST_OK, "%s: %s", path, err);
        ASSERT(cst_gguf_version(g) >= 2);
        ASSERT(cst_gguf_n_kv(g) > 0);
        ASSERT(cst_gguf_find_key(g, "general.architecture") >= 0);
        for (int64_t i = 0; i < cst_gguf_n_tensors(g); i++) {
            const cst_gguf_tensor *t = cst_gguf_tensor_at(g, i);
            ASSERT(t && t->data);
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
            ASSERT(cst_gguf_find_tensor(g, name) == t);
        }
        cst_gguf_close(g);
        n++;
    }
    closedir(d);
    ASSERT(n >= 10);
}

static cst_gguf *open_ok(const char *path) {
    char err[512];
    FILE *f = fopen(path, "rb");
    if (!f) cst_test_skip("%s not found (set CST_SHARED)", path);
    fclose(f);
    cst_gguf *g = NULL;
    cst_status st = cst_gguf_open(path, &g, err, sizeof err);
    ASSERT_MSG(st == CST_OK, "%s: %s", path, err);
    return g;
}

static bool sv_eq(cst_strv s, const char *z) { return s.ptr && cst_strv_eq(s, z); }

TEST(reads_known_values) {
    cst_gguf *g = open_ok(cst_test_shared("models/stories260K.gguf"));
    ASSERT(sv_eq(cst_gguf_get_str(g, "general.architecture"), "llama"));
    ASSERT(cst_gguf_get_i64(g, "llama.block_count", -1) > 0);
    ASSERT(cst_gguf_get_i64(g, "no.such.key", -7) == -7);
    int64_t i = cst_gguf_find_key(g, "tokenizer.ggml.tokens");
    ASSERT(i >= 0);
    ASSERT_EQ(cst_gguf_kv_type(g, i), CST_GGUF_ARRAY);
    ASSERT_EQ(cst_gguf_arr_type(g, i), CST_GGUF_STRING);
    ASSERT(cst_gguf_arr_n(g, i) > 100);
    ASSERT(cst_gguf_arr_str(g, i, cst_gguf_arr_n(g, i)).ptr == NULL); /* out of range */
    const cst_gguf_tensor *t = cst_gguf_find_tensor(g, "token_embd.weight");
    ASSERT(t);
    ASSERT_EQ(t->ne[1], (int64_t)cst_gguf_arr_n(g, i));
    ASSERT(cst_gguf_find_tensor(g, "nope") == NULL);
    ASSERT(cst_gguf_tensor_at(g, -1) == NULL);
    ASSERT(cst_gguf_tensor_at(g, cst_gguf_n_tensors(g)) == NULL);
    cst_gguf_close(g);
}

/* ---- writer round trip ----------------------------------------------- */

TEST(writer_round_trip_all_types) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/rt.gguf", cst_test_tmpdir());
    cst_gguf_writer *w = cst_gguf_writer_new();
    cst_gguf_set_u8(w, "t.u8", 200);
    cst_gguf_set_i8(w, "t.i8", -100);
    cst_gguf_set_u16(w, "t.u16", 60000);
    cst_gguf_set_i16(w, "t.i16", -30000);
    cst_gguf_set_u32(w, "t.u32", 4000000000u);
    cst_gguf_set_i32(w, "t.i32", -2000000000);
    cst_gguf_set_f32(w, "t.f32", 1.5f);
    cst_gguf_set_bool(w, "t.bool", true);
    cst_gguf_set_str(w, "t.str", "hello \xc3\xa9");
    cst_gguf_set_u64(w, "t.u64", 18000000000000000000ull);
    cst_gguf_set_i64(w, "t.i64", -9000000000000000000ll);
    cst_gguf_set_f64(w, "t.f64", 0.1);
    cst_gguf_set_str(w, "t.replaced", "old");
    cst_gguf_set_str(w, "t.replaced", "new");
    int32_t ai[5] = {1, -2, 3, -4, 5};
    float af[3] = {0.5f, -1.25f, 3e10f};
    uint8_t ab[4] = {1, 0, 1, 1};
    int64_t al[2] = {INT64_MIN, INT64_MAX};
    double ad[2] = {1e300, -2.5};
    cst_gguf_set_arr(w, "a.i32", CST_GGUF_INT32, ai, 5);
    cst_gguf_set_arr(w, "a.f32", CST_GGUF_FLOAT32, af, 3);
    cst_gguf_set_arr(w, "a.bool", CST_GGUF_BOOL, ab, 4);
    cst_gguf_set_arr(w, "a.i64", CST_GGUF_INT64, al, 2);
    cst_gguf_set_arr(w, "a.f64", CST_GGUF_FLOAT64, ad, 2);
    cst_gguf_set_arr(w, "a.empty", CST_GGUF_UINT16, NULL, 0);
    const char *strs[4] = {"a", "", "long string with spaces", "\xe2\x96\x81x"};
    cst_gguf_set_arr_str(w, "a.str", strs, 4);
    cst_gguf_set_u32(w, "general.alignment", 64);

    float t1[3 * 5];
    for (int i = 0; i < 15; i++) t1[i] = (float)i * 0.5f - 3;
    int64_t ne1[2] = {5, 3};
    ASSERT_OK(cst_gguf_add_tensor(w, "t1", CST_TYPE_F32, 2, ne1, t1, sizeof t1));
    uint16_t t2[64];
    for (int i = 0; i < 64; i++) t2[i] = cst_f32_to_f16((float)i);
    int64_t ne2[3] = {8, 4, 2};
    ASSERT_OK(cst_gguf_add_tensor(w, "t2.f16", CST_TYPE_F16, 3, ne2, t2, sizeof t2));
    block_q8_0 q[2] = {0};
    q[0].d = cst_f32_to_f16(1.0f);
    q[1].qs[5] = -7;
    int64_t ne3[1] = {64};
    ASSERT_OK(cst_gguf_add_tensor(w, "t3.q8", CST_TYPE_Q8_0, 1, ne3, q, sizeof q));
    /* rejected adds */
    ASSERT(cst_gguf_write(w, path, err, sizeof err) == CST_OK);
    cst_gguf_writer_free(w);

    cst_gguf *g = open_ok(path);
    ASSERT_EQ(cst_gguf_version(g), 3);
    ASSERT_EQ(cst_gguf_alignment(g), 64);
    ASSERT_EQ(cst_gguf_n_kv(g), 21);
    int64_t v;
    double d;
    struct { const char *k; cst_gguf_type t; int64_t v; } ints[] = {
        {"t.u8", CST_GGUF_UINT8, 200}, {"t.i8", CST_GGUF_INT8, -100}, {"t.u16", CST_GGUF_UINT16, 60000},
        {"t.i16", CST_GGUF_INT16, -30000}, {"t.u32", CST_GGUF_UINT32, 4000000000ll}, {"t.i32", CST_GGUF_INT32, -2000000000},
        {"t.bool", CST_GGUF_BOOL, 1}, {"t.i64", CST_GGUF_INT64, -9000000000000000000ll}};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        int64_t i = cst_gguf_find_key(g, ints[k].k);
        ASSERT(i >= 0);
        ASSERT_EQ(cst_gguf_kv_type(g, i), ints[k].t);
        ASSERT(cst_gguf_kv_i64(g, i, &v));
        ASSERT_EQ(v, ints[k].v);
    }
    int64_t iu = cst_gguf_find_key(g, "t.u64");
    ASSERT(!cst_gguf_kv_i64(g, iu, &v)); /* does not fit */
    const uint8_t *raw = cst_gguf_kv_data(g, iu);
    uint64_t u = 0;
    for (int b = 0; b < 8; b++) u |= (uint64_t)raw[b] << (8 * b);
    ASSERT(u == 18000000000000000000ull);
    ASSERT(cst_gguf_kv_f64(g, cst_gguf_find_key(g, "t.f32"), &d) && d == 1.5);
    ASSERT_EQ(cst_gguf_kv_type(g, cst_gguf_find_key(g, "t.f64")), CST_GGUF_FLOAT64);
    ASSERT(cst_gguf_get_f64(g, "t.f64", 0) == 0.1);
    ASSERT(cst_gguf_get_bool(g, "t.bool", false));
    ASSERT(sv_eq(cst_gguf_get_str(g, "t.str"), "hello \xc3\xa9"));
    ASSERT(sv_eq(cst_gguf_get_str(g, "t.replaced"), "new"));
    ASSERT(cst_gguf_get_str(g, "t.u8").ptr == NULL);

    int64_t i = cst_gguf_find_key(g, "a.i32");
    ASSERT_EQ(cst_gguf_arr_type(g, i), CST_GGUF_INT32);
    ASSERT_EQ(cst_gguf_arr_n(g, i), 5);
    for (int j = 0; j < 5; j++) ASSERT(cst_gguf_arr_i64(g, i, j, &v) && v == ai[j]);
    ASSERT(!cst_gguf_arr_i64(g, i, 5, &v));
    ASSERT(!memcmp(cst_gguf_arr_data(g, i), ai, sizeof ai));
    i = cst_gguf_find_key(g, "a.f32");
    for (int j = 0; j < 3; j++) ASSERT(cst_gguf_arr_f64(g, i, j, &d) && d == (double)af[j]);
    i = cst_gguf_find_key(g, "a.bool");
    ASSERT_EQ(cst_gguf_arr_type(g, i), CST_GGUF_BOOL);
    ASSERT(!memcmp(cst_gguf_arr_data(g, i), ab, 4));
    i = cst_gguf_find_key(g, "a.i64");
    ASSERT(cst_gguf_arr_i64(g, i, 0, &v) && v == INT64_MIN);
    ASSERT(cst_gguf_arr_i64(g, i, 1, &v) && v == INT64_MAX);
    i = cst_gguf_find_key(g, "a.f64");
    ASSERT(cst_gguf_arr_f64(g, i, 0, &d) && d == 1e300);
    ASSERT(cst_gguf_arr_f64(g, i, 1, &d) && d == -2.5);
    i = cst_gguf_find_key(g, "a.empty");
    ASSERT_EQ(cst_gguf_arr_type(g, i), CST_GGUF_UINT16);
    ASSERT_EQ(cst_gguf_arr_n(g, i), 0);
    i = cst_gguf_find_key(g, "a.str");
    ASSERT_EQ(cst_gguf_arr_n(g, i), 4);
    for (int j = 0; j < 4; j++) ASSERT(cst_strv_eq(cst_gguf_arr_str(g, i, j), strs[j]));
    ASSERT(cst_gguf_arr_data(g, i) == NULL);

    ASSERT_EQ(cst_gguf_n_tensors(g), 3);
    const cst_gguf_tensor *t = cst_gguf_find_tensor(g, "t1");
    ASSERT(t && t->type == CST_TYPE_F32 && t->n_dims == 2 && t->ne[0] == 5 && t->ne[1] == 3 && t->ne[2] == 1);
    ASSERT(t->nbytes == sizeof t1 && !memcmp(t->data, t1, sizeof t1));
    ASSERT(t->offset % 64 == 0);
    t = cst_gguf_find_tensor(g, "t2.f16");
    ASSERT(t && t->type == CST_TYPE_F16 && t->n_dims == 3 && t->ne[2] == 2 && t->nbytes == sizeof t2);
    ASSERT(!memcmp(t->data, t2, sizeof t2));
    ASSERT(t->offset % 64 == 0);
    t = cst_gguf_find_tensor(g, "t3.q8");
    ASSERT(t && t->type == CST_TYPE_Q8_0 && t->nbytes == sizeof q && !memcmp(t->data, q, sizeof q));
    ASSERT(((uintptr_t)t->data - (uintptr_t)cst_gguf_tensor_at(g, 0)->data) % 64 == 0);
    cst_gguf_close(g);
}

TEST(writer_rejects_bad_tensors) {
    char err[512], path[4096];
    snprintf(path, sizeof path, "%s/bad.gguf", cst_test_tmpdir());
    float x[8] = {0};
    int64_t ne[2] = {8, 1}, ne0[2] = {0, 1}, neq[1] = {8};
    cst_gguf_writer *w = cst_gguf_writer_new();
    ASSERT(cst_gguf_add_tensor(w, "a", CST_TYPE_F32, 2, ne, x, sizeof x - 4) != CST_OK);
    cst_gguf_writer_free(w);
    w = cst_gguf_writer_new();
    ASSERT(cst_gguf_add_tensor(w, "a", CST_TYPE_F32, 2, ne0, x, 0) != CST_OK);
    cst_gguf_writer_free(w);
    w = cst_gguf_writer_new();
    ASSERT(cst_gguf_add_tensor(w, "a", CST_TYPE_Q8_0, 1, neq, x, 8) != CST_OK); /* 8 % 32 */
    cst_gguf_writer_free(w);
    w = cst_gguf_writer_new();
    ASSERT_OK(cst_gguf_add_tensor(w, "a", CST_TYPE_F32, 2, ne, x, sizeof x));
    ASSERT(cst_gguf_add_tensor(w, "a", CST_TYPE_F32, 2, ne, x, sizeof x) != CST_OK);
    ASSERT(cst_gguf_write(w, path, err, sizeof err) != CST_OK);
    ASSERT(err[0]);
    cst_gguf_writer_free(w);
}

/* Copy every KV and tensor of a shared model, write, re-read, compare. */
TEST(writer_copies_shared_model) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/copy.gguf", cst_test_tmpdir());
    cst_gguf *a = open_ok(cst_test_shared("models/tiny-qwen3-Q4_K.gguf"));
    cst_gguf_writer *w = cst_gguf_writer_new();
    for (int64_t i = 0; i < cst_gguf_n_kv(a); i++) cst_gguf_copy_kv(w, a, i);
    for (int64_t i = 0; i < cst_gguf_n_tensors(a); i++) {
        const cst_gguf_tensor *t = cst_gguf_tensor_at(a, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        ASSERT_OK(cst_gguf_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes));
    }
    ASSERT_MSG(cst_gguf_write(w, path, err, sizeof err) == CST_OK, "%s", err);
    cst_gguf_writer_free(w);
    cst_gguf *b = open_ok(path);
    ASSERT_EQ(cst_gguf_n_kv(b), cst_gguf_n_kv(a));
    ASSERT_EQ(cst_gguf_n_tensors(b), cst_gguf_n_tensors(a));
    ASSERT_EQ(cst_gguf_alignment(b), cst_gguf_alignment(a));
    for (int64_t i = 0; i < cst_gguf_n_kv(a); i++) {
        cst_strv k = cst_gguf_key(a, i), k2 = cst_gguf_key(b, i);
        ASSERT(k.len == k2.len && !memcmp(k.ptr, k2.ptr, k.len));
        cst_gguf_type t = cst_gguf_kv_type(a, i);
        ASSERT_EQ(cst_gguf_kv_type(b, i), t);
        if (t == CST_GGUF_STRING) {
            cst_strv s = cst_gguf_kv_str(a, i), s2 = cst_gguf_kv_str(b, i);
            ASSERT(s.len == s2.len && !memcmp(s.ptr, s2.ptr, s.len));
        } else if (t == CST_GGUF_ARRAY) {
            ASSERT_EQ(cst_gguf_arr_type(b, i), cst_gguf_arr_type(a, i));
            uint64_t n = cst_gguf_arr_n(a, i);
            ASSERT_EQ(cst_gguf_arr_n(b, i), n);
            if (cst_gguf_arr_type(a, i) == CST_GGUF_STRING) {
                for (uint64_t j = 0; j < n; j++) {
                    cst_strv s = cst_gguf_arr_str(a, i, j), s2 = cst_gguf_arr_str(b, i, j);
                    ASSERT(s.len == s2.len && !memcmp(s.ptr, s2.ptr, s.len));
                }
            } else {
                for (uint64_t j = 0; j < n; j++) {
                    double x, y;
                    ASSERT(cst_gguf_arr_f64(a, i, j, &x) && cst_gguf_arr_f64(b, i, j, &y));
                    ASSERT(x == y || (x != x && y != y));
                }
            }
        } else {
            double x, y;
            ASSERT(cst_gguf_kv_f64(a, i, &x) && cst_gguf_kv_f64(b, i, &y) && x == y);
        }
    }
    for (int64_t i = 0; i < cst_gguf_n_tensors(a); i++) {
        const cst_gguf_tensor *t = cst_gguf_tensor_at(a, i), *u = cst_gguf_tensor_at(b, i);
        ASSERT(t->name.len == u->name.len && !memcmp(t->name.ptr, u->name.ptr, t->name.len));
        ASSERT(t->type == u->type && t->n_dims == u->n_dims && t->nbytes == u->nbytes);
        for (int d = 0; d < 4; d++) ASSERT_EQ(t->ne[d], u->ne[d]);
        ASSERT(!memcmp(t->data, u->data, t->nbytes));
    }
    cst_gguf_close(a);
    cst_gguf_close(b);
}

/* ---- malformed files ------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bbuf;

static void b_put(bbuf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void b_u32(bbuf *b, uint32_t v) { b_put(b, &v, 4); }
static void b_u64(bbuf *b, uint64_t v) { b_put(b, &v, 8); }
static void b_str(bbuf *b, const char *s) {
    b_u64(b, strlen(s));
    b_put(b, s, strlen(s));
}
static void b_hdr(bbuf *b, uint32_t version, uint64_t n_t, uint64_t n_kv) {
    b_put(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_t);
    b_u64(b, n_kv);
}
static void b_kv_u32(bbuf *b, const char *k, uint32_t v) {
    b_str(b, k);
    b_u32(b, CST_GGUF_UINT32);
    b_u32(b, v);
}
static void b_tensor(bbuf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) b_u64(b, ne[d]);
    b_u32(b, type);
    b_u64(b, off);
}
static void b_pad_data(bbuf *b, size_t align, size_t nbytes) {
    uint8_t z = 0;
    while (b->n % align) b_put(b, &z, 1);
    for (size_t i = 0; i < nbytes; i++) b_put(b, &z, 1);
}

static void expect_bad(bbuf *b, const char *want) {
    char err[512];
    err[0] = 0;
    cst_gguf *g = NULL;
    cst_status st = cst_gguf_open_buffer(b->p, b->n, &g, err, sizeof err);
    ASSERT_MSG(st != CST_OK, "accepted a bad file (expected error containing '%s')", want);
    ASSERT(g == NULL);
    ASSERT(err[0] != 0);
    ASSERT_MSG(!want || strstr(err, want), "error '%s' does not mention '%s'", err, want);
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void expect_good(bbuf *b) {
    char err[512];
    cst_gguf *g = NULL;
    cst_status st = cst_gguf_open_buffer(b->p, b->n, &g, err, sizeof err);
    ASSERT_MSG(st == CST_OK, "rejected a good file: %s", err);
    cst_gguf_close(g);
    free(b->p);
    memset(b, 0, sizeof *b);
}

TEST(malformed_header) {
    bbuf b = {0};
    b_put(&b, "GGUG", 4), b_u32(&b, 3), b_u64(&b, 0), b_u64(&b, 0);
    expect_bad(&b, "magic");
    b_put(&b, "GG", 2);
    expect_bad(&b, "magic");
    b_hdr(&b, 1, 0, 0);
    expect_bad(&b, "version 1");
    b_hdr(&b, 4, 0, 0);
    expect_bad(&b, "version 4");
    b_hdr(&b, 0x03000000, 0, 0);
    expect_bad(&b, "big-endian");
    b_hdr(&b, 3, 0, 0);
    expect_good(&b);
    b_hdr(&b, 2, 0, 0);
    expect_good(&b);
    b_hdr(&b, 3, 0, UINT64_MAX);
    expect_bad(&b, "KV count");
    b_hdr(&b, 3, 1ull << 40, 0);
    expect_bad(&b, "tensor count");
    b_hdr(&b, 3, 0, 1);
    b_kv_u32(&b, "a", 1);
    expect_good(&b);
    b_hdr(&b, 3, 0, 2); /* promised 2 KVs, has 1 + some slack */
    b_kv_u32(&b, "a", 1);
    b_u64(&b, 0);
    b_u64(&b, 0);
    expect_bad(&b, NULL);
}

TEST(malformed_kvs) {
    bbuf b = {0};
    b_hdr(&b, 3, 0, 1);
    b_u64(&b, 1000), b_put(&b, "abcdefghijklmnop", 16);
    expect_bad(&b, "past end of file");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k"), b_u32(&b, CST_GGUF_STRING), b_u64(&b, UINT64_MAX);
    expect_bad(&b, "past end of file");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, ""), b_u32(&b, CST_GGUF_UINT32), b_u32(&b, 1);
    expect_bad(&b, "empty key");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k"), b_u32(&b, 13), b_u32(&b, 1);
    expect_bad(&b, "unknown value type 13");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k"), b_u32(&b, CST_GGUF_UINT64), b_u32(&b, 1);
    expect_bad(&b, "truncated");
    /* array count overflow: n * 4 wraps */
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "arr"), b_u32(&b, CST_GGUF_ARRAY), b_u32(&b, CST_GGUF_UINT32), b_u64(&b, 1ull << 62);
    b_u64(&b, 0);
    expect_bad(&b, "arr");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "arr"), b_u32(&b, CST_GGUF_ARRAY), b_u32(&b, CST_GGUF_FLOAT64), b_u64(&b, UINT64_MAX / 4);
    expect_bad(&b, "past end");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "sa"), b_u32(&b, CST_GGUF_ARRAY), b_u32(&b, CST_GGUF_STRING), b_u64(&b, 1ull << 61);
    b_u64(&b, 0);
    expect_bad(&b, "sa");
    b_hdr(&b, 3, 0, 1); /* string array whose second string runs off the end */
    b_str(&b, "sa"), b_u32(&b, CST_GGUF_ARRAY), b_u32(&b, CST_GGUF_STRING), b_u64(&b, 2);
    b_str(&b, "x"), b_u64(&b, 5), b_put(&b, "ab", 2);
    expect_bad(&b, "past end");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "nested"), b_u32(&b, CST_GGUF_ARRAY), b_u32(&b, CST_GGUF_ARRAY), b_u64(&b, 1);
    b_u32(&b, CST_GGUF_UINT8), b_u64(&b, 0);
    expect_bad(&b, "arrays of arrays");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k"), b_u32(&b, CST_GGUF_ARRAY), b_u32(&b, 77), b_u64(&b, 0);
    expect_bad(&b, "unknown element type");
    b_hdr(&b, 3, 0, 2);
    b_kv_u32(&b, "dup.key", 1), b_kv_u32(&b, "dup.key", 2);
    expect_bad(&b, "duplicate key 'dup.key'");
    /* alignment */
    b_hdr(&b, 3, 0, 1), b_kv_u32(&b, "general.alignment", 3);
    expect_bad(&b, "power of two");
    b_hdr(&b, 3, 0, 1), b_kv_u32(&b, "general.alignment", 0);
    expect_bad(&b, "power of two");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "general.alignment"), b_u32(&b, CST_GGUF_UINT64), b_u64(&b, 32);
    expect_bad(&b, "u32");
    b_hdr(&b, 3, 0, 1), b_kv_u32(&b, "general.alignment", 1u << 31);
    expect_good(&b);
}

TEST(malformed_tensors) {
    bbuf b = {0};
    uint64_t ne2[2] = {4, 2};
    /* valid baseline: 2 tensors */
    b_hdr(&b, 3, 2, 0);
    b_tensor(&b, "a", 2, ne2, CST_TYPE_F32, 0);
    b_tensor(&b, "b", 2, ne2, CST_TYPE_F32, 32);
    b_pad_data(&b, 32, 64);
    expect_good(&b);
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "a", 2, ne2, CST_TYPE_F32, 16);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "not a multiple of the alignment");
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "blk.0.attn_q.weight", 2, ne2, CST_TYPE_F32, 32);
    b_pad_data(&b, 32, 40);
    expect_bad(&b, "tensor 'blk.0.attn_q.weight': data ends at byte");
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "a", 2, ne2, CST_TYPE_F32, UINT64_MAX - 31);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "tensor 'a'");
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "a", 0, ne2, CST_TYPE_F32, 0);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "n_dims 0");
    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "a", 5, ne5, CST_TYPE_F32, 0);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "n_dims 5");
    uint64_t nez[2] = {4, 0};
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "a", 2, nez, CST_TYPE_F32, 0);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "dimension 1");
    uint64_t neneg[2] = {4, (uint64_t)-3};
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "a", 2, neneg, CST_TYPE_F32, 0);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "dimension 1");
    uint64_t nebig[3] = {1ull << 32, 1ull << 32, 1ull << 32};
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "a", 3, nebig, CST_TYPE_F32, 0);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "overflow");
    uint64_t nebytes[2] = {1ull << 62, 1};
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "a", 2, nebytes, CST_TYPE_F32, 0);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "tensor 'a'");
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "weird", 2, ne2, 99, 0);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "tensor 'weird': unknown type id 99");
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "hole", 2, ne2, 4, 0); /* id 4 (old Q4_2) is not a type */
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "unknown type id 4");
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "q", 2, ne2, CST_TYPE_Q8_0, 0); /* ne0 4 not multiple of 32 */
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "block size");
    uint64_t ne32[1] = {32};
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "q41", 1, ne32, CST_TYPE_Q4_1, 0); /* known but unsupported: loads */
    b_pad_data(&b, 32, 32);
    expect_good(&b);
    b_hdr(&b, 3, 2, 0);
    b_tensor(&b, "same", 2, ne2, CST_TYPE_F32, 0);
    b_tensor(&b, "same", 2, ne2, CST_TYPE_F32, 32);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "duplicate tensor name 'same'");
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "", 2, ne2, CST_TYPE_F32, 0);
    b_pad_data(&b, 32, 64);
    expect_bad(&b, "empty name");
    /* alignment 64 with a tensor at 32 */
    b_hdr(&b, 3, 1, 1);
    b_kv_u32(&b, "general.alignment", 64);
    b_tensor(&b, "a", 2, ne2, CST_TYPE_F32, 32);
    b_pad_data(&b, 64, 128);
    expect_bad(&b, "alignment 64");
    /* header ends, but no room for the padded data section start */
    b_hdr(&b, 3, 1, 0);
    b_tensor(&b, "a", 1, ne2, CST_TYPE_F32, 0);
    expect_bad(&b, NULL);
}

/* A small valid file (with no trailing padding) truncated at every byte. */
TEST(truncated_at_every_byte) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/small.gguf", cst_test_tmpdir());
    cst_gguf_writer *w = cst_gguf_writer_new();
    cst_gguf_set_str(w, "general.architecture", "llama");
    cst_gguf_set_u32(w, "llama.block_count", 1);
    cst_gguf_set_f32(w, "x.f", 0.5f);
    const char *toks[3] = {"<s>", "a", "bc"};
    cst_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    float sc[3] = {0, 1, 2};
    cst_gguf_set_arr(w, "tokenizer.ggml.scores", CST_GGUF_FLOAT32, sc, 3);
    float data[16] = {0};
    int64_t ne[2] = {8, 2};
    ASSERT_OK(cst_gguf_add_tensor(w, "w1", CST_TYPE_F32, 2, ne, data, sizeof data));
    ASSERT_OK(cst_gguf_add_tensor(w, "w2", CST_TYPE_F32, 2, ne, data, sizeof data));
    ASSERT_MSG(cst_gguf_write(w, path, err, sizeof err) == CST_OK, "%s", err);
    cst_gguf_writer_free(w);
    FILE *f = fopen(path, "rb");
    ASSERT(f);
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ASSERT(n > 100 && n < sizeof buf);
    cst_gguf *g = NULL;
    ASSERT_OK(cst_gguf_open_buffer(buf, n, &g, err, sizeof err));
    cst_gguf_close(g);
    for (size_t k = 0; k < n; k++) {
        uint8_t *copy = malloc(k ? k : 1); /* exact-size heap copy so ASan sees overreads */
        memcpy(copy, buf, k);
        err[0] = 0;
        g = NULL;
        cst_status st = cst_gguf_open_buffer(copy, k, &g, err, sizeof err);
        ASSERT_MSG(st != CST_OK, "prefix of %zu/%zu bytes accepted", k, n);
        ASSERT(g == NULL && err[0]);
        free(copy);
    }
    /* and through the file path */
    f = fopen(path, "wb");
    fwrite(buf, 1, n - 1, f);
    fclose(f);
    ASSERT(cst_gguf_open(path, &g, err, sizeof err) != CST_OK && err[0] && strstr(err, path));
    ASSERT(cst_gguf_open("/nonexistent/x.gguf", &g, err, sizeof err) != CST_OK && err[0]);
}

/* ---- castor mkmodel output ------------------------------------------- */

static const char *castor_bin(void) {
    static char path[4096];
    const char *b = getenv("CST_BUILD");
    snprintf(path, sizeof path, "%s/castor", b ? b : ".");
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fclose(f);
    return path;
}

static void mkmodel(const char *args, const char *out) {
    const char *bin = castor_bin();
    if (!bin) cst_test_skip("castor binary not built (CST_BUILD)");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' mkmodel %s -o '%s' 2>/dev/null", bin, args, out);
    ASSERT_MSG(system(cmd) == 0, "failed: %s", cmd);
}

/* Same tensor names/types/shapes and the same key set as the shared tiny models. */
TEST(mkmodel_mirrors_tiny_models) {
    static const char *archs[] = {"llama", "qwen2", "qwen3", "gemma3"};
    for (int a = 0; a < 4; a++) {
        char ref[256], out[4096], args[512];
        snprintf(ref, sizeof ref, "models/tiny-%s-F32.gguf", archs[a]);
        snprintf(out, sizeof out, "%s/mk-%s.gguf", cst_test_tmpdir(), archs[a]);
        snprintf(args, sizeof args, "--arch %s --vocab-from '%s' --seed 7", archs[a], cst_test_shared(ref));
        mkmodel(args, out);
        cst_gguf *r = open_ok(cst_test_shared(ref)), *g = open_ok(out);
        ASSERT_EQ(cst_gguf_n_kv(g), cst_gguf_n_kv(r));
        for (int64_t i = 0; i < cst_gguf_n_kv(r); i++) {
            cst_strv k = cst_gguf_key(r, i);
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
            int64_t j = cst_gguf_find_key(g, key);
            ASSERT_MSG(j >= 0, "%s: key %s missing", archs[a], key);
            ASSERT_EQ(cst_gguf_kv_type(g, j), cst_gguf_kv_type(r, i));
            double x, y;
            if (strcmp(key, "general.name") && cst_gguf_kv_f64(r, i, &x)) {
                ASSERT(cst_gguf_kv_f64(g, j, &y));
                ASSERT_MSG(x == y, "%s: %s %g vs %g", archs[a], key, y, x);
            }
        }
        ASSERT_EQ(cst_gguf_n_tensors(g), cst_gguf_n_tensors(r));
        for (int64_t i = 0; i < cst_gguf_n_tensors(r); i++) {
            const cst_gguf_tensor *t = cst_gguf_tensor_at(r, i);
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
            const cst_gguf_tensor *u = cst_gguf_find_tensor(g, name);
            ASSERT_MSG(u, "%s: tensor %s missing", archs[a], name);
            ASSERT(u->type == t->type && u->n_dims == t->n_dims);
            for (int d = 0; d < 4; d++) ASSERT_EQ(u->ne[d], t->ne[d]);
        }
        /* weights look like the documented draws: embedding N(0, 0.1 or 0.01), norms around 1 */
        const cst_gguf_tensor *e = cst_gguf_find_tensor(g, "token_embd.weight");
        const float *x = e->data;
        int64_t n = e->ne[0] * e->ne[1];
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) s += x[i], s2 += (double)x[i] * x[i];
        double mean = s / n, sd = sqrt(s2 / n - mean * mean), want = a == 3 ? 0.01 : 0.1;
        ASSERT_NEAR(mean, 0, want * 0.02);
        ASSERT_NEAR(sd, want, want * 0.02);
        const cst_gguf_tensor *nw = cst_gguf_find_tensor(g, "blk.0.attn_norm.weight");
        s = 0;
        for (int64_t i = 0; i < nw->ne[0]; i++) s += ((const float *)nw->data)[i];
        ASSERT_NEAR(s / nw->ne[0], 1.0, 0.05);
        cst_gguf_close(r);
        cst_gguf_close(g);
    }
}

TEST(mkmodel_types_and_presets) {
    char out[4096], out2[4096];
    snprintf(out, sizeof out, "%s/mk-q.gguf", cst_test_tmpdir());
    snprintf(out2, sizeof out2, "%s/mk-q2.gguf", cst_test_tmpdir());
    const char *vocab = cst_test_shared("models/stories260K.gguf");
    static const char *types[] = {"F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"};
    static const cst_type ids[] = {CST_TYPE_F16, CST_TYPE_BF16, CST_TYPE_Q8_0, CST_TYPE_Q4_0, CST_TYPE_Q4_K, CST_TYPE_Q5_K, CST_TYPE_Q6_K};
    for (int k = 0; k < 7; k++) {
        char args[1024];
        snprintf(args, sizeof args, "--arch qwen2 --type %s --n-layer 1 --vocab-from '%s'", types[k], vocab);
        mkmodel(args, out);
        cst_gguf *g = open_ok(out);
        const cst_gguf_tensor *t = cst_gguf_find_tensor(g, "blk.0.ffn_down.weight");
        ASSERT(t && t->type == ids[k] && t->ne[0] == 768 && t->ne[1] == 256);
        ASSERT(cst_gguf_find_tensor(g, "token_embd.weight")->type == ids[k]);
        ASSERT(cst_gguf_find_tensor(g, "blk.0.attn_q.bias")->type == CST_TYPE_F32);
        ASSERT(cst_gguf_find_tensor(g, "output_norm.weight")->type == CST_TYPE_F32);
        ASSERT(cst_gguf_find_tensor(g, "blk.1.attn_q.weight") == NULL);
        cst_gguf_close(g);
    }
    /* same seed -> same bytes; other seed -> other weights */
    char args[1024];
    snprintf(args, sizeof args, "--arch llama --n-layer 1 --seed 3 --vocab-from '%s'", vocab);
    mkmodel(args, out);
    mkmodel(args, out2);
    cst_gguf *a = open_ok(out), *b = open_ok(out2);
    ASSERT(!memcmp(cst_gguf_find_tensor(a, "blk.0.attn_q.weight")->data, cst_gguf_find_tensor(b, "blk.0.attn_q.weight")->data,
                   cst_gguf_find_tensor(a, "blk.0.attn_q.weight")->nbytes));
    cst_gguf_close(b);
    snprintf(args, sizeof args, "--arch llama --n-layer 1 --seed 4 --vocab-from '%s'", vocab);
    mkmodel(args, out2);
    b = open_ok(out2);
    ASSERT(memcmp(cst_gguf_find_tensor(a, "blk.0.attn_q.weight")->data, cst_gguf_find_tensor(b, "blk.0.attn_q.weight")->data,
                  cst_gguf_find_tensor(a, "blk.0.attn_q.weight")->nbytes));
    cst_gguf_close(a);
    cst_gguf_close(b);
    /* presets (shrunk to 1 layer to stay small): shapes and keys of the real models */
    snprintf(args, sizeof args, "--preset qwen3-0.6b --n-layer 1 --type Q8_0 --vocab-from '%s'", vocab);
    mkmodel(args, out);
    cst_gguf *g = open_ok(out);
    ASSERT(sv_eq(cst_gguf_get_str(g, "general.architecture"), "qwen3"));
    ASSERT_EQ(cst_gguf_get_i64(g, "qwen3.embedding_length", 0), 1024);
    ASSERT_EQ(cst_gguf_get_i64(g, "qwen3.attention.key_length", 0), 128);
    ASSERT_EQ(cst_gguf_get_i64(g, "qwen3.attention.head_count_kv", 0), 8);
    ASSERT_EQ(cst_gguf_get_i64(g, "qwen3.feed_forward_length", 0), 3072);
    ASSERT_EQ(cst_gguf_get_i64(g, "qwen3.block_count", 0), 1);
    const cst_gguf_tensor *t = cst_gguf_find_tensor(g, "blk.0.attn_q.weight");
    ASSERT(t && t->ne[0] == 1024 && t->ne[1] == 16 * 128);
    t = cst_gguf_find_tensor(g, "blk.0.attn_k.weight");
    ASSERT(t && t->ne[1] == 8 * 128);
    ASSERT(cst_gguf_find_tensor(g, "blk.0.attn_q_norm.weight")->ne[0] == 128);
    ASSERT(cst_gguf_find_tensor(g, "output.weight") == NULL); /* tied */
    cst_gguf_close(g);
    /* smollm2: n_embd 576 is not a multiple of 256, so Q4_K rows of 576 fall back to Q8_0 */
    snprintf(args, sizeof args, "--preset smollm2-135m --n-layer 1 --type Q4_K --vocab-from '%s'", vocab);
    mkmodel(args, out);
    g = open_ok(out);
    ASSERT_EQ(cst_gguf_get_i64(g, "llama.attention.head_count", 0), 9);
    t = cst_gguf_find_tensor(g, "blk.0.attn_q.weight");
    ASSERT(t && t->ne[0] == 576 && t->ne[1] == 576 && t->type == CST_TYPE_Q8_0);
    t = cst_gguf_find_tensor(g, "blk.0.ffn_down.weight"); /* rows of 1536 = 6 x 256 */
    ASSERT(t && t->ne[0] == 1536 && t->type == CST_TYPE_Q4_K);
    cst_gguf_close(g);
    /* --n-vocab keeps the first N tokens; merges survive only when all their parts do */
    snprintf(args, sizeof args, "--n-layer 1 --n-vocab 3000 --vocab-from '%s'", cst_test_shared("models/vocab-llama3.gguf"));
    mkmodel(args, out);
    g = open_ok(out);
    ASSERT_EQ(cst_gguf_find_tensor(g, "token_embd.weight")->ne[1], 3000);
    int64_t ti = cst_gguf_find_key(g, "tokenizer.ggml.tokens"), mi = cst_gguf_find_key(g, "tokenizer.ggml.merges");
    ASSERT_EQ(cst_gguf_arr_n(g, ti), 3000);
    ASSERT_EQ(cst_gguf_arr_n(g, cst_gguf_find_key(g, "tokenizer.ggml.token_type")), 3000);
    ASSERT(mi >= 0 && cst_gguf_arr_n(g, mi) > 100);
    for (uint64_t j = 0; j < cst_gguf_arr_n(g, mi); j++) {
        cst_strv m = cst_gguf_arr_str(g, mi, j);
        char merged[512];
        size_t n = 0;
        for (size_t c = 0; c < m.len && n < sizeof merged; c++)
            if (m.ptr[c] != ' ') merged[n++] = m.ptr[c];
        bool found = false;
        for (uint64_t t2 = 0; t2 < 3000 && !found; t2++) {
            cst_strv tok = cst_gguf_arr_str(g, ti, t2);
            found = tok.len == n && !memcmp(tok.ptr, merged, n);
        }
        ASSERT_MSG(found, "merge %llu produces a token outside the kept vocabulary", (unsigned long long)j);
    }
    ASSERT_EQ(cst_gguf_find_key(g, "tokenizer.ggml.bos_token_id"), -1); /* 128000 is gone */
    cst_gguf_close(g);
    /* bad arguments fail with exit status != 0 */
    const char *bin = castor_bin();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' mkmodel --arch nope --vocab-from '%s' -o '%s' 2>/dev/null", bin, vocab, out);
    ASSERT(system(cmd) != 0);
    snprintf(cmd, sizeof cmd, "'%s' mkmodel --vocab-from /nonexistent.gguf -o '%s' 2>/dev/null", bin, out);
    ASSERT(system(cmd) != 0);
}
