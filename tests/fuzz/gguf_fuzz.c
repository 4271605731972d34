/* gguf_fuzz.c: libFuzzer target for the GGUF reader. Opens the input with
 * cst_gguf_open_buffer and, on success, walks every accessor (every KV,
 * every array element, every tensor and its data bytes) so that a reader
 * bug that lets an out-of-bounds view through shows up under ASan.
 * With GGUF_FUZZ_WRITE_SEEDS=DIR it instead writes a seed corpus of small
 * valid files made with the writer (used by scripts/fuzz.sh) and exits.
 */
#include "engine/gguf/gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink;

static void touch(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h = h * 31 + b[i];
    sink += h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* exact-size heap copy so that any overread is caught */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    char err[256];
    cst_gguf *g = NULL;
    cst_status st = cst_gguf_open_buffer(buf, size, &g, err, sizeof err);
    if (st != CST_OK) {
        if (g || !err[0]) __builtin_trap(); /* failures must leave a message and no handle */
        free(buf);
        return 0;
    }
    sink += cst_gguf_version(g) + cst_gguf_alignment(g) + cst_gguf_file_size(g);
    for (int64_t i = -1; i <= cst_gguf_n_kv(g); i++) {
        cst_strv k = cst_gguf_key(g, i);
        touch(k.ptr, k.len);
        if (i >= 0 && i < cst_gguf_n_kv(g)) {
            char key[512];
            size_t n = k.len < sizeof key - 1 ? k.len : sizeof key - 1;
            memcpy(key, k.ptr, n);
            key[n] = 0;
            int64_t j = cst_gguf_find_key(g, key);
            if (memchr(key, 0, n) == NULL && k.len < sizeof key && j != i) __builtin_trap();
            sink += (uint64_t)cst_gguf_get_i64(g, key, 0) + (cst_gguf_get_f64(g, key, 0) != 0) + cst_gguf_get_bool(g, key, false);
            cst_strv s = cst_gguf_get_str(g, key);
            touch(s.ptr, s.len);
        }
        int64_t iv;
        double dv;
        if (cst_gguf_kv_i64(g, i, &iv)) sink += (uint64_t)iv;
        if (cst_gguf_kv_f64(g, i, &dv)) sink += (uint64_t)(int64_t)(dv == dv ? 0 : 1);
        cst_strv s = cst_gguf_kv_str(g, i);
        touch(s.ptr, s.len);
        sink += cst_gguf_kv_type(g, i);
        const void *raw = cst_gguf_kv_data(g, i);
        if (raw) touch(raw, 1);
        cst_gguf_type et = cst_gguf_arr_type(g, i);
        uint64_t n = cst_gguf_arr_n(g, i);
        const void *ad = cst_gguf_arr_data(g, i);
        if (ad && n) {
            size_t esz = (et == CST_GGUF_UINT8 || et == CST_GGUF_INT8 || et == CST_GGUF_BOOL) ? 1
                       : (et == CST_GGUF_UINT16 || et == CST_GGUF_INT16) ? 2
                       : (et == CST_GGUF_UINT64 || et == CST_GGUF_INT64 || et == CST_GGUF_FLOAT64) ? 8 : 4;
            touch(ad, (size_t)n * esz);
        }
        for (uint64_t j = 0; j <= n && j < 100000; j++) {
            cst_strv e = cst_gguf_arr_str(g, i, j);
            touch(e.ptr, e.len);
            if (cst_gguf_arr_i64(g, i, j, &iv)) sink += (uint64_t)iv;
            if (cst_gguf_arr_f64(g, i, j, &dv)) sink += 1;
        }
    }
    sink += (uint64_t)cst_gguf_find_key(g, "general.architecture");
    for (int64_t i = -1; i <= cst_gguf_n_tensors(g); i++) {
        const cst_gguf_tensor *t = cst_gguf_tensor_at(g, i);
        if (!t) continue;
        touch(t->name.ptr, t->name.len);
        touch(t->data, t->nbytes);
        if (t->n_dims < 1 || t->n_dims > CST_MAX_DIMS) __builtin_trap();
        for (int d = 0; d < CST_MAX_DIMS; d++)
            if (t->ne[d] < 1) __builtin_trap();
        char name[512];
        if (t->name.len < sizeof name && !memchr(t->name.ptr, 0, t->name.len)) {
            memcpy(name, t->name.ptr, t->name.len);
            name[t->name.len] = 0;
            if (cst_gguf_find_tensor(g, name) != t) __builtin_trap();
        }
    }
    sink += cst_gguf_find_tensor(g, "token_embd.weight") != NULL;
    cst_gguf_close(g);
    free(buf);
    return 0;
}

/* ---- seed corpus ------------------------------------------------------ */

static int write_seed(cst_gguf_writer *w, const char *dir, const char *name) {
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cst_status st = cst_gguf_write(w, path, err, sizeof err);
    cst_gguf_writer_free(w);
    if (st != CST_OK) fprintf(stderr, "gguf_fuzz: writing seed %s: %s\n", path, err);
    return st == CST_OK ? 0 : 1;
}

static int write_seeds(const char *dir) {
    int bad = 0;
    float f[64];
    for (int i = 0; i < 64; i++) f[i] = (float)i * 0.25f - 4.0f;
    int64_t ne2[2] = {8, 2}, ne1[1] = {32}, ne256[1] = {256};

    /* 1: every scalar type, arrays, string arrays, two tensors */
    cst_gguf_writer *w = cst_gguf_writer_new();
    cst_gguf_set_str(w, "general.architecture", "llama");
    cst_gguf_set_u8(w, "a.u8", 1);
    cst_gguf_set_i8(w, "a.i8", -1);
    cst_gguf_set_u16(w, "a.u16", 2);
    cst_gguf_set_i16(w, "a.i16", -2);
    cst_gguf_set_u32(w, "llama.block_count", 1);
    cst_gguf_set_i32(w, "a.i32", -3);
    cst_gguf_set_f32(w, "a.f32", 0.5f);
    cst_gguf_set_bool(w, "a.bool", true);
    cst_gguf_set_u64(w, "a.u64", 4);
    cst_gguf_set_i64(w, "a.i64", -5);
    cst_gguf_set_f64(w, "a.f64", 0.25);
    const char *toks[4] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81hi"};
    cst_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    int32_t tt[4] = {2, 3, 3, 1};
    cst_gguf_set_arr(w, "tokenizer.ggml.token_type", CST_GGUF_INT32, tt, 4);
    cst_gguf_set_arr(w, "tokenizer.ggml.scores", CST_GGUF_FLOAT32, f, 4);
    cst_gguf_add_tensor(w, "token_embd.weight", CST_TYPE_F32, 2, ne2, f, 16 * sizeof(float));
    uint16_t h[32] = {0};
    cst_gguf_add_tensor(w, "output_norm.weight", CST_TYPE_F16, 1, ne1, h, sizeof h);
    bad |= write_seed(w, dir, "seed-all-types.gguf");

    /* 2: alignment 64, quantized tensors */
    w = cst_gguf_writer_new();
    cst_gguf_set_u32(w, "general.alignment", 64);
    block_q8_0 q8 = {0};
    cst_gguf_add_tensor(w, "blk.0.attn_q.weight", CST_TYPE_Q8_0, 1, ne1, &q8, sizeof q8);
    block_q4_K q4 = {0};
    cst_gguf_add_tensor(w, "blk.0.ffn_up.weight", CST_TYPE_Q4_K, 1, ne256, &q4, sizeof q4);
    block_q6_K q6 = {0};
    cst_gguf_add_tensor(w, "blk.0.ffn_down.weight", CST_TYPE_Q6_K, 1, ne256, &q6, sizeof q6);
    bad |= write_seed(w, dir, "seed-quant-align64.gguf");

    /* 3: metadata only */
    w = cst_gguf_writer_new();
    cst_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    const char *merges[3] = {"a b", "ab c", "\xc4\xa0 t"};
    cst_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 3);
    cst_gguf_set_arr(w, "empty", CST_GGUF_UINT8, NULL, 0);
    bad |= write_seed(w, dir, "seed-meta.gguf");

    /* 4: empty file (header only) */
    w = cst_gguf_writer_new();
    bad |= write_seed(w, dir, "seed-empty.gguf");

    /* 5: a 4-D tensor */
    w = cst_gguf_writer_new();
    int64_t ne4[4] = {2, 2, 2, 2};
    cst_gguf_add_tensor(w, "t4", CST_TYPE_F32, 4, ne4, f, 16 * sizeof(float));
    bad |= write_seed(w, dir, "seed-4d.gguf");
    return bad;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("GGUF_FUZZ_WRITE_SEEDS");
    if (dir && *dir) exit(write_seeds(dir));
    return 0;
}
