/* gguf.h: GGUF v2/v3 reader (mmap, hostile-input safe) and writer.
 *
 * The reader maps the file read-only and validates everything up front:
 * counts, string lengths, array sizes, tensor shapes, types, offsets and the
 * data section bounds. After cst_gguf_open succeeds, every accessor is a
 * cheap lookup that cannot read out of bounds. Strings are returned as
 * non-owning views into the mapping (NOT NUL-terminated).
 *
 * The writer builds a file in memory-order: add KVs and tensors, then write.
 * Tests and benchmarks use it to generate fixtures.
 */
#ifndef CST_GGUF_H
#define CST_GGUF_H

#include "castor.h"
#include "../tensor/types.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cst_gguf_type {
    CST_GGUF_UINT8 = 0,
    CST_GGUF_INT8 = 1,
    CST_GGUF_UINT16 = 2,
    CST_GGUF_INT16 = 3,
    CST_GGUF_UINT32 = 4,
    CST_GGUF_INT32 = 5,
    CST_GGUF_FLOAT32 = 6,
    CST_GGUF_BOOL = 7,
    CST_GGUF_STRING = 8,
    CST_GGUF_ARRAY = 9,
    CST_GGUF_UINT64 = 10,
    CST_GGUF_INT64 = 11,
    CST_GGUF_FLOAT64 = 12,
    CST_GGUF_TYPE_COUNT
} cst_gguf_type;

typedef struct cst_strv { /* non-owning string view */
    const char *ptr;
    size_t len;
} cst_strv;

#define CST_MAX_DIMS 4

typedef struct cst_gguf_tensor {
    cst_strv name;
    cst_type type;
    int n_dims;
    int64_t ne[CST_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint64_t offset;          /* relative to the data section */
    size_t nbytes;
    const void *data;         /* pointer into the mapping */
} cst_gguf_tensor;

typedef struct cst_gguf cst_gguf;

/* Open and validate. On failure returns an error status and, if err is not
 * NULL, writes a message naming what is wrong (e.g. "tensor 'blk.0.attn_q.weight':
 * data [..] past end of file"). */
cst_status cst_gguf_open(const char *path, cst_gguf **out, char *err, size_t errlen);
/* Same, over a caller-owned buffer (used by the fuzz target); the buffer must
 * outlive the handle. */
cst_status cst_gguf_open_buffer(const void *buf, size_t len, cst_gguf **out, char *err, size_t errlen);
void cst_gguf_close(cst_gguf *g); /* NULL ok */

uint32_t cst_gguf_version(const cst_gguf *g);
size_t cst_gguf_alignment(const cst_gguf *g);
size_t cst_gguf_file_size(const cst_gguf *g);

/* Metadata. Index-based access; find returns -1 when absent. */
int64_t cst_gguf_n_kv(const cst_gguf *g);
int64_t cst_gguf_find_key(const cst_gguf *g, const char *key);
cst_strv cst_gguf_key(const cst_gguf *g, int64_t i);
cst_gguf_type cst_gguf_kv_type(const cst_gguf *g, int64_t i);
/* Scalar value of any numeric/bool type converted (false if not numeric). */
bool cst_gguf_kv_i64(const cst_gguf *g, int64_t i, int64_t *out);
bool cst_gguf_kv_f64(const cst_gguf *g, int64_t i, double *out);
cst_strv cst_gguf_kv_str(const cst_gguf *g, int64_t i); /* {NULL,0} if not a string */
/* Raw little-endian bytes of a scalar (non-string, non-array) value; NULL otherwise. */
const void *cst_gguf_kv_data(const cst_gguf *g, int64_t i);
/* Arrays */
cst_gguf_type cst_gguf_arr_type(const cst_gguf *g, int64_t i); /* element type */
uint64_t cst_gguf_arr_n(const cst_gguf *g, int64_t i);
const void *cst_gguf_arr_data(const cst_gguf *g, int64_t i); /* numeric arrays: packed little-endian elements (may be unaligned) */
cst_strv cst_gguf_arr_str(const cst_gguf *g, int64_t i, uint64_t j); /* string arrays */
bool cst_gguf_arr_i64(const cst_gguf *g, int64_t i, uint64_t j, int64_t *out);
bool cst_gguf_arr_f64(const cst_gguf *g, int64_t i, uint64_t j, double *out);

/* Convenience lookups by key with a default. */
int64_t cst_gguf_get_i64(const cst_gguf *g, const char *key, int64_t dflt);
double cst_gguf_get_f64(const cst_gguf *g, const char *key, double dflt);
bool cst_gguf_get_bool(const cst_gguf *g, const char *key, bool dflt);
cst_strv cst_gguf_get_str(const cst_gguf *g, const char *key); /* {NULL,0} if absent */

/* Tensors */
int64_t cst_gguf_n_tensors(const cst_gguf *g);
const cst_gguf_tensor *cst_gguf_tensor_at(const cst_gguf *g, int64_t i);
const cst_gguf_tensor *cst_gguf_find_tensor(const cst_gguf *g, const char *name); /* NULL if absent */

static inline bool cst_strv_eq(cst_strv s, const char *z) {
    size_t n = 0;
    while (z[n]) n++;
    if (n != s.len) return false;
    for (size_t i = 0; i < n; i++)
        if (s.ptr[i] != z[i]) return false;
    return true;
}

/* ---- writer ---------------------------------------------------------- */
typedef struct cst_gguf_writer cst_gguf_writer;

cst_gguf_writer *cst_gguf_writer_new(void);
void cst_gguf_writer_free(cst_gguf_writer *w); /* NULL ok */
/* Values are copied. Setting an existing key replaces it. */
void cst_gguf_set_u32(cst_gguf_writer *w, const char *key, uint32_t v);
void cst_gguf_set_i32(cst_gguf_writer *w, const char *key, int32_t v);
void cst_gguf_set_u64(cst_gguf_writer *w, const char *key, uint64_t v);
void cst_gguf_set_f32(cst_gguf_writer *w, const char *key, float v);
void cst_gguf_set_bool(cst_gguf_writer *w, const char *key, bool v);
void cst_gguf_set_str(cst_gguf_writer *w, const char *key, const char *v);
void cst_gguf_set_u8(cst_gguf_writer *w, const char *key, uint8_t v);
void cst_gguf_set_i8(cst_gguf_writer *w, const char *key, int8_t v);
void cst_gguf_set_u16(cst_gguf_writer *w, const char *key, uint16_t v);
void cst_gguf_set_i16(cst_gguf_writer *w, const char *key, int16_t v);
void cst_gguf_set_i64(cst_gguf_writer *w, const char *key, int64_t v);
void cst_gguf_set_f64(cst_gguf_writer *w, const char *key, double v);
void cst_gguf_set_arr(cst_gguf_writer *w, const char *key, cst_gguf_type elem_type, const void *data, uint64_t n);
void cst_gguf_set_arr_str(cst_gguf_writer *w, const char *key, const char *const *v, uint64_t n);
/* Copy one KV (any type, arrays included) from a reader. */
void cst_gguf_copy_kv(cst_gguf_writer *w, const cst_gguf *src, int64_t i);
/* Tensor data is copied. ne as in cst_gguf_tensor; nbytes must match type and shape. */
cst_status cst_gguf_add_tensor(cst_gguf_writer *w, const char *name, cst_type type, int n_dims,
                               const int64_t *ne, const void *data, size_t nbytes);
/* A tensor whose data is produced at write time, n_rows rows (ne[1]*ne[2]*ne[3]
 * rows of cst_row_size(type, ne[0]) bytes) at a time, so that large files are
 * written without holding all weights in memory. ctx must stay valid until
 * cst_gguf_write returns; fill returns false to abort the write. */
typedef bool (*cst_gguf_fill_fn)(void *ctx, int64_t row0, int64_t n_rows, void *dst);
cst_status cst_gguf_add_tensor_fill(cst_gguf_writer *w, const char *name, cst_type type, int n_dims,
                                    const int64_t *ne, cst_gguf_fill_fn fill, void *ctx);
/* Writes GGUF v3 (alignment from a u32 general.alignment KV if set, else 32). */
cst_status cst_gguf_write(cst_gguf_writer *w, const char *path, char *err, size_t errlen);

#endif
