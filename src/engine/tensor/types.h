/* types.h: tensor element types (numbered exactly as ggml/GGUF number them)
 * and their block layouts, declared once with static_asserts on size.
 * The layouts are those of ggml so that GGUF files interoperate both ways.
 */
#ifndef CST_TYPES_H
#define CST_TYPES_H

#include "../../core/half.h"
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cst_type {
    CST_TYPE_F32 = 0,
    CST_TYPE_F16 = 1,
    CST_TYPE_Q4_0 = 2,
    CST_TYPE_Q4_1 = 3,
    CST_TYPE_Q5_0 = 6,
    CST_TYPE_Q5_1 = 7,
    CST_TYPE_Q8_0 = 8,
    CST_TYPE_Q8_1 = 9,
    CST_TYPE_Q2_K = 10,
    CST_TYPE_Q3_K = 11,
    CST_TYPE_Q4_K = 12,
    CST_TYPE_Q5_K = 13,
    CST_TYPE_Q6_K = 14,
    CST_TYPE_Q8_K = 15,
    CST_TYPE_I8 = 24,
    CST_TYPE_I16 = 25,
    CST_TYPE_I32 = 26,
    CST_TYPE_I64 = 27,
    CST_TYPE_F64 = 28,
    CST_TYPE_BF16 = 30,
    CST_TYPE_COUNT = 40 /* upper bound on ggml type ids we accept in files */
} cst_type;

#define QK4_0 32
#define QK8_0 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef struct {
    cst_f16 d;
    uint8_t qs[QK4_0 / 2];
} block_q4_0;
static_assert(sizeof(block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 size");

typedef struct {
    cst_f16 d;
    int8_t qs[QK8_0];
} block_q8_0;
static_assert(sizeof(block_q8_0) == 2 + QK8_0, "block_q8_0 size");

typedef struct {
    cst_f16 d;    /* super-block scale for quantized scales */
    cst_f16 dmin; /* super-block scale for quantized mins */
    uint8_t scales[K_SCALE_SIZE]; /* scales and mins, 6 bits each */
    uint8_t qs[QK_K / 2];         /* 4-bit quants */
} block_q4_K;
static_assert(sizeof(block_q4_K) == 4 + K_SCALE_SIZE + QK_K / 2, "block_q4_K size");

typedef struct {
    cst_f16 d;
    cst_f16 dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8]; /* high bit */
    uint8_t qs[QK_K / 2]; /* low 4 bits */
} block_q5_K;
static_assert(sizeof(block_q5_K) == 4 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8, "block_q5_K size");

typedef struct {
    uint8_t ql[QK_K / 2];      /* lower 4 bits */
    uint8_t qh[QK_K / 4];      /* upper 2 bits */
    int8_t scales[QK_K / 16];  /* 8-bit scales */
    cst_f16 d;                 /* super-block scale */
} block_q6_K;
static_assert(sizeof(block_q6_K) == 2 + QK_K / 16 + 3 * QK_K / 4, "block_q6_K size");

typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16]; /* sum of quants in groups of 16 */
} block_q8_K;
static_assert(sizeof(block_q8_K) == 4 + QK_K + QK_K / 16 * 2, "block_q8_K size");

typedef struct cst_type_info {
    const char *name;  /* "F32", "Q4_K", ... ; NULL for unknown ids */
    int blck_size;     /* elements per block */
    size_t type_size;  /* bytes per block */
    bool supported;    /* we can compute with it (as weights) */
} cst_type_info;

/* Info for a type id; returns an entry with name == NULL for ids we do not know. */
const cst_type_info *cst_type_get_info(int type);
const char *cst_type_name(cst_type t); /* "?" if unknown */
bool cst_type_from_name(const char *name, cst_type *out); /* case-insensitive */
/* Bytes of a row of n elements (n must be a multiple of the block size). */
size_t cst_row_size(cst_type t, int64_t n);

#endif
