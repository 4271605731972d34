/* mkmix.c: a Q4_K_M-style mix for benchmarks (a report tool, never a test).
 *
 * Takes two files of the same model, one all Q4_K and one all Q6_K (castor
 * mkmodel with the same preset and seed), and writes a file that uses the
 * Q6_K tensors where llama-quantize's Q4_K_M puts more bits: attn_v and
 * ffn_down of the "more bits" layers (the first and last eighth, and every
 * third layer between) and the output (token_embd when the output is tied),
 * the Q4_K tensors elsewhere; general.file_type = 15 (MOSTLY_Q4_K_M).
 *
 * Build (from the repo root, after building castor in build/):
 *   gcc -O2 -Iinclude -Isrc bench/mkmix.c build/libcst_gguf.a build/libcst_kernels.a build/libcst_core.a \
 *       -lpthread -lm -o bench/out/mkmix
 * Run: bench/out/mkmix Q4_K.gguf Q6_K.gguf OUT.gguf
 */
#include "engine/gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's use_more_bits(i, n) */
static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: mkmix Q4_K.gguf Q6_K.gguf OUT.gguf\n");
        return 2;
    }
    char err[256];
    cst_gguf *a = NULL, *b = NULL;
    if (cst_gguf_open(argv[1], &a, err, sizeof err) || cst_gguf_open(argv[2], &b, err, sizeof err)) {
        fprintf(stderr, "mkmix: %s\n", err);
        return 1;
    }
    const int n_layer = (int)cst_gguf_get_i64(a, "llama.block_count", 0);
    const int tied = cst_gguf_find_tensor(a, "output.weight") == NULL;
    cst_gguf_writer *w = cst_gguf_writer_new();
    for (int64_t i = 0; i < cst_gguf_n_kv(a); i++) cst_gguf_copy_kv(w, a, i);
    cst_gguf_set_u32(w, "general.file_type", 15);
    for (int64_t i = 0; i < cst_gguf_n_tensors(a); i++) {
        const cst_gguf_tensor *t = cst_gguf_tensor_at(a, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        int layer = -1;
        int six = 0;
        if (sscanf(name, "blk.%d.", &layer) == 1 && (strstr(name, ".attn_v.") || strstr(name, ".ffn_down.")))
            six = more_bits(layer, n_layer);
        if (!strcmp(name, "output.weight") || (tied && !strcmp(name, "token_embd.weight"))) six = 1;
        const cst_gguf_tensor *src = six ? cst_gguf_find_tensor(b, name) : t;
        if (!src) { /* (rows that do not fit 256-element blocks are Q8_0 in both files) */
            fprintf(stderr, "mkmix: %s: not in %s\n", name, argv[2]);
            return 1;
        }
        if (cst_gguf_add_tensor(w, name, src->type, src->n_dims, src->ne, src->data, src->nbytes)) {
            fprintf(stderr, "mkmix: cannot add %s\n", name);
            return 1;
        }
    }
    if (cst_gguf_write(w, argv[3], err, sizeof err)) {
        fprintf(stderr, "mkmix: %s\n", err);
        return 1;
    }
    cst_gguf_writer_free(w);
    cst_gguf_close(a);
    cst_gguf_close(b);
    return 0;
}
