/*
 * types.c - the ggml tensor type table and metadata value type names.
 *
 * Block geometry is what ggml's type_traits (ggml/src/ggml.c) and gguf-py's
 * GGML_QUANT_SIZES give: a tensor row of ne[0] elements is ne[0] / block_elems
 * blocks of block_bytes each, and ne[0] must be a multiple of block_elems.
 * Removed ids (4, 5: Q4_2/Q4_3; 31-33 and 36-38: interleaved repacks that are
 * built at load time and never stored) are unknown here.
 */
#include "gguf/gguf.h"

#include <stddef.h>

struct dtype_row {
    const char *name;
    uint32_t block_elems;
    uint32_t block_bytes;
};

/* QK_K = 256 super-blocks; sizes from the block structs of ggml-common.h. */
static const struct dtype_row dtypes[] = {
    [GGUF_DT_F32] = {"f32", 1, 4},
    [GGUF_DT_F16] = {"f16", 1, 2},
    [GGUF_DT_Q4_0] = {"q4_0", 32, 18},
    [GGUF_DT_Q4_1] = {"q4_1", 32, 20},
    [GGUF_DT_Q5_0] = {"q5_0", 32, 22},
    [GGUF_DT_Q5_1] = {"q5_1", 32, 24},
    [GGUF_DT_Q8_0] = {"q8_0", 32, 34},
    [GGUF_DT_Q8_1] = {"q8_1", 32, 36},
    [GGUF_DT_Q2_K] = {"q2_K", 256, 84},
    [GGUF_DT_Q3_K] = {"q3_K", 256, 110},
    [GGUF_DT_Q4_K] = {"q4_K", 256, 144},
    [GGUF_DT_Q5_K] = {"q5_K", 256, 176},
    [GGUF_DT_Q6_K] = {"q6_K", 256, 210},
    [GGUF_DT_Q8_K] = {"q8_K", 256, 292},
    [GGUF_DT_IQ2_XXS] = {"iq2_xxs", 256, 66},
    [GGUF_DT_IQ2_XS] = {"iq2_xs", 256, 74},
    [GGUF_DT_IQ3_XXS] = {"iq3_xxs", 256, 98},
    [GGUF_DT_IQ1_S] = {"iq1_s", 256, 50},
    [GGUF_DT_IQ4_NL] = {"iq4_nl", 32, 18},
    [GGUF_DT_IQ3_S] = {"iq3_s", 256, 110},
    [GGUF_DT_IQ2_S] = {"iq2_s", 256, 82},
    [GGUF_DT_IQ4_XS] = {"iq4_xs", 256, 136},
    [GGUF_DT_I8] = {"i8", 1, 1},
    [GGUF_DT_I16] = {"i16", 1, 2},
    [GGUF_DT_I32] = {"i32", 1, 4},
    [GGUF_DT_I64] = {"i64", 1, 8},
    [GGUF_DT_F64] = {"f64", 1, 8},
    [GGUF_DT_IQ1_M] = {"iq1_m", 256, 56},
    [GGUF_DT_BF16] = {"bf16", 1, 2},
    [GGUF_DT_TQ1_0] = {"tq1_0", 256, 54},
    [GGUF_DT_TQ2_0] = {"tq2_0", 256, 66},
    [GGUF_DT_MXFP4] = {"mxfp4", 32, 17},
    [GGUF_DT_NVFP4] = {"nvfp4", 64, 36},
    [GGUF_DT_Q1_0] = {"q1_0", 128, 18},
};

int gguf_dtype_info(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes)
{
    if (type >= sizeof(dtypes) / sizeof(dtypes[0]) || dtypes[type].name == NULL)
        return GENAI_EUNSUPPORTED;
    if (block_elems != NULL)
        *block_elems = dtypes[type].block_elems;
    if (block_bytes != NULL)
        *block_bytes = dtypes[type].block_bytes;
    return 0;
}

const char *gguf_dtype_name(uint32_t type)
{
    if (type >= sizeof(dtypes) / sizeof(dtypes[0]) || dtypes[type].name == NULL)
        return "unknown";
    return dtypes[type].name;
}

const char *gguf_vtype_name(uint32_t type)
{
    static const char *const names[GGUF_VAL__COUNT] = {
        [GGUF_VAL_UINT8] = "uint8",     [GGUF_VAL_INT8] = "int8",     [GGUF_VAL_UINT16] = "uint16",
        [GGUF_VAL_INT16] = "int16",     [GGUF_VAL_UINT32] = "uint32", [GGUF_VAL_INT32] = "int32",
        [GGUF_VAL_FLOAT32] = "float32", [GGUF_VAL_BOOL] = "bool",     [GGUF_VAL_STRING] = "string",
        [GGUF_VAL_ARRAY] = "array",     [GGUF_VAL_UINT64] = "uint64", [GGUF_VAL_INT64] = "int64",
        [GGUF_VAL_FLOAT64] = "float64",
    };
    if (type >= GGUF_VAL__COUNT)
        return "unknown";
    return names[type];
}
