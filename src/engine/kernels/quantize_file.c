/* quantize_file.c: rewrite a GGUF model with its 2-D weight matrices
 * converted to one type by the reference quantizers (llama-quantize --pure
 * semantics): token embedding and output included, 1-D tensors as F32, all
 * metadata copied, general.quantization_version and general.file_type set
 * last (as llama-quantize orders them). Used by `castor quantize`.
 */
#include "kernels.h"

#include "../../core/core.h"
#include "../gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const cst_gguf_tensor *src;
    cst_type dst_type;
    cst_pool *pool;
    /* per fill call */
    int64_t row0, n_rows;
    char *dst;
    float *scratch; /* n_threads rows of floats */
    bool ok;
} qjob;

static uint32_t ftype_of(cst_type t) {
    switch (t) {
    case CST_TYPE_F32: return 0;
    case CST_TYPE_F16: return 1;
    case CST_TYPE_Q4_0: return 2;
    case CST_TYPE_Q8_0: return 7;
    case CST_TYPE_Q4_K: return 15; /* Q4_K_M */
    case CST_TYPE_Q5_K: return 17; /* Q5_K_M */
    case CST_TYPE_Q6_K: return 18;
    case CST_TYPE_BF16: return 32;
    default: return 0;
    }
}

static void quant_rows(void *p, int ith, int nth) {
    qjob *j = p;
    const int64_t n = j->src->ne[0];
    const size_t src_rs = cst_row_size(j->src->type, n), dst_rs = cst_row_size(j->dst_type, n);
    const cst_kernel_traits *st = cst_kernel_traits_for(j->src->type);
    float *row = j->scratch + (size_t)ith * n;
    for (int64_t r = j->n_rows * ith / nth; r < j->n_rows * (ith + 1) / nth; r++) {
        const char *s = (const char *)j->src->data + (j->row0 + r) * src_rs;
        char *d = j->dst + r * dst_rs;
        if (j->src->type == j->dst_type) {
            memcpy(d, s, dst_rs);
            continue;
        }
        st->to_float(s, row, n);
        if (!cst_quantize_row_ref(j->dst_type, row, d, n)) j->ok = false;
    }
}

static bool fill_tensor(void *ctx, int64_t row0, int64_t n_rows, void *dst) {
    qjob *j = ctx;
    j->row0 = row0;
    j->n_rows = n_rows;
    j->dst = dst;
    j->ok = true;
    cst_pool_run(j->pool, quant_rows, j);
    return j->ok;
}

/* A tensor is quantized if it is a 2-D (or higher) matrix whose rows fit
 * TYPE's block size; everything else is written as F32. */
static cst_type pick_type(const cst_gguf_tensor *t, cst_type want) {
    const int bs = cst_type_get_info((int)want)->blck_size;
    if (t->n_dims >= 2 && t->ne[0] % bs == 0) return want;
    return CST_TYPE_F32;
}

cst_status cst_quantize_file(const char *in, const char *out, cst_type want, int n_threads, char *err,
                             size_t errlen) {
    if (!cst_kernel_traits_for(want) ||
        (want != CST_TYPE_F32 && want != CST_TYPE_F16 && want != CST_TYPE_BF16 && want != CST_TYPE_Q8_0 &&
         want != CST_TYPE_Q4_0 && want != CST_TYPE_Q4_K && want != CST_TYPE_Q5_K && want != CST_TYPE_Q6_K)) {
        cst_errf(err, errlen, "cannot quantize to %s", cst_type_name(want));
        return CST_ERR_UNSUPPORTED;
    }
    cst_status st;
    cst_gguf *g = NULL;
    cst_gguf_writer *w = NULL;
    cst_pool *pool = NULL;
    qjob *jobs = NULL;
    float *scratch = NULL;
    st = cst_gguf_open(in, &g, err, errlen);
    if (st != CST_OK) goto out;
    pool = cst_pool_new(n_threads);
    w = cst_gguf_writer_new();
    if (!pool || !w) {
        st = CST_ERR_NOMEM;
        cst_errf(err, errlen, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < cst_gguf_n_kv(g); i++) {
        cst_strv k = cst_gguf_key(g, i);
        if (cst_strv_eq(k, "general.file_type") || cst_strv_eq(k, "general.quantization_version")) continue;
        cst_gguf_copy_kv(w, g, i);
    }
    cst_gguf_set_u32(w, "general.quantization_version", 2); /* llama-quantize sets it for every type */
    cst_gguf_set_u32(w, "general.file_type", ftype_of(want));

    const int64_t n_tensors = cst_gguf_n_tensors(g);
    if (n_tensors < 0 || n_tensors > (1 << 24)) {
        st = CST_ERR_BAD_FORMAT;
        cst_errf(err, errlen, "bad tensor count");
        goto out;
    }
    int64_t max_row = 1;
    for (int64_t i = 0; i < n_tensors; i++) {
        const cst_gguf_tensor *t = cst_gguf_tensor_at(g, i);
        if (t->ne[0] > max_row) max_row = t->ne[0];
    }
    jobs = calloc((size_t)n_tensors + 1, sizeof *jobs);
    scratch = malloc(sizeof(float) * (size_t)max_row * (size_t)cst_pool_size(pool));
    if (!jobs || !scratch) {
        st = CST_ERR_NOMEM;
        cst_errf(err, errlen, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < n_tensors; i++) {
        const cst_gguf_tensor *t = cst_gguf_tensor_at(g, i);
        char name[512];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (!cst_kernel_traits_for(t->type)) {
            st = CST_ERR_UNSUPPORTED;
            cst_errf(err, errlen, "tensor '%s' has unsupported type %s", name, cst_type_name(t->type));
            goto out;
        }
        jobs[i] = (qjob){.src = t, .dst_type = pick_type(t, want), .pool = pool, .scratch = scratch};
        st = cst_gguf_add_tensor_fill(w, name, jobs[i].dst_type, t->n_dims, t->ne, fill_tensor, &jobs[i]);
        if (st != CST_OK) {
            cst_errf(err, errlen, "cannot add tensor '%s': %s", name, cst_status_str(st));
            goto out;
        }
    }
    st = cst_gguf_write(w, out, err, errlen);
out:
    free(scratch);
    free(jobs);
    cst_gguf_writer_free(w);
    cst_pool_free(pool);
    cst_gguf_close(g);
    return st;
}
