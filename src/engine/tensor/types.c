/* types.c: the type table (names, block sizes, bytes per block). */
#include "types.h"

#include <strings.h>

static const cst_type_info type_table[CST_TYPE_COUNT] = {
    [CST_TYPE_F32] = {"F32", 1, 4, true},
    [CST_TYPE_F16] = {"F16", 1, 2, true},
    [CST_TYPE_Q4_0] = {"Q4_0", QK4_0, sizeof(block_q4_0), true},
    [CST_TYPE_Q4_1] = {"Q4_1", 32, 20, false},
    [CST_TYPE_Q5_0] = {"Q5_0", 32, 22, false},
    [CST_TYPE_Q5_1] = {"Q5_1", 32, 24, false},
    [CST_TYPE_Q8_0] = {"Q8_0", QK8_0, sizeof(block_q8_0), true},
    [CST_TYPE_Q8_1] = {"Q8_1", 32, 36, false},
    [CST_TYPE_Q2_K] = {"Q2_K", QK_K, 84, false},
    [CST_TYPE_Q3_K] = {"Q3_K", QK_K, 110, false},
    [CST_TYPE_Q4_K] = {"Q4_K", QK_K, sizeof(block_q4_K), true},
    [CST_TYPE_Q5_K] = {"Q5_K", QK_K, sizeof(block_q5_K), true},
    [CST_TYPE_Q6_K] = {"Q6_K", QK_K, sizeof(block_q6_K), true},
    [CST_TYPE_Q8_K] = {"Q8_K", QK_K, sizeof(block_q8_K), false},
    [16] = {"IQ2_XXS", 256, 66, false},
    [17] = {"IQ2_XS", 256, 74, false},
    [18] = {"IQ3_XXS", 256, 98, false},
    [19] = {"IQ1_S", 256, 50, false},
    [20] = {"IQ4_NL", 32, 18, false},
    [21] = {"IQ3_S", 256, 110, false},
    [22] = {"IQ2_S", 256, 82, false},
    [23] = {"IQ4_XS", 256, 136, false},
    [CST_TYPE_I8] = {"I8", 1, 1, false},
    [CST_TYPE_I16] = {"I16", 1, 2, false},
    [CST_TYPE_I32] = {"I32", 1, 4, false},
    [CST_TYPE_I64] = {"I64", 1, 8, false},
    [CST_TYPE_F64] = {"F64", 1, 8, false},
    [29] = {"IQ1_M", 256, 56, false},
    [CST_TYPE_BF16] = {"BF16", 1, 2, true},
    [34] = {"TQ1_0", 256, 54, false},
    [35] = {"TQ2_0", 256, 66, false},
    [39] = {"MXFP4", 32, 17, false},
};

static const cst_type_info unknown_type = {NULL, 0, 0, false};

const cst_type_info *cst_type_get_info(int type) {
    if (type < 0 || type >= CST_TYPE_COUNT || !type_table[type].name) return &unknown_type;
    return &type_table[type];
}

const char *cst_type_name(cst_type t) {
    const cst_type_info *ti = cst_type_get_info((int)t);
    return ti->name ? ti->name : "?";
}

bool cst_type_from_name(const char *name, cst_type *out) {
    for (int i = 0; i < CST_TYPE_COUNT; i++) {
        if (type_table[i].name && !strcasecmp(type_table[i].name, name)) {
            *out = (cst_type)i;
            return true;
        }
    }
    return false;
}

size_t cst_row_size(cst_type t, int64_t n) {
    const cst_type_info *ti = cst_type_get_info((int)t);
    if (!ti->name || ti->blck_size == 0) return 0;
    return ti->type_size * (size_t)(n / ti->blck_size);
}
