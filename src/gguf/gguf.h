/*
 * gguf.h - bounded reader for GGUF files (ggml-org/ggml docs/gguf.md,
 * versions 2 and 3, little-endian) and split model sets.
 *
 * A GGUF file is a header (magic "GGUF", version, tensor count, metadata
 * count), typed key/value metadata, a tensor table (name, dimensions, ggml
 * type, offset) and, after padding to the alignment, the tensor data. The
 * reader reads only the header region, with pread, growing its window as the
 * parse needs more bytes (a multi-GB model costs a few MB), and never trusts a
 * count, length or offset: every one is checked against the bytes present, a
 * cap, and the file size. Failures return GENAI_ECORRUPT, GENAI_EUNSUPPORTED
 * or GENAI_ETOO_LARGE with a detail naming the field and its byte offset.
 *
 * Strings (keys, values, tensor names) are views into the retained header
 * bytes, valid until the file is freed. They are NOT NUL-terminated: print
 * them with "%.*s" and compare them with gguf_str_eq().
 */
#ifndef GENAI_GGUF_GGUF_H
#define GENAI_GGUF_GGUF_H

#include "genai.h"

#include <stddef.h>
#include <stdint.h>

/* Limits on untrusted input. A header past GGUF_MAX_META_BYTES is refused with
 * GENAI_ETOO_LARGE (the largest real vocabularies need a few tens of MB). */
#define GGUF_MAX_META_BYTES ((uint64_t)256 << 20)
#define GGUF_MAX_KV 65536u
#define GGUF_MAX_TENSORS (1u << 20)
#define GGUF_MAX_KEY_LEN 65535u /* spec: keys are at most 2^16 - 1 bytes */
/* ggml's default GGML_MAX_NAME is 64 (63 + NUL), but stable-diffusion.cpp builds
 * ggml with GGML_MAX_NAME=128 and its converted GGUFs carry names of ~80
 * bytes, so accept up to 127. */
#define GGUF_MAX_TENSOR_NAME 127u
#define GGUF_MAX_DIMS 4u /* ggml: GGML_MAX_DIMS */
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_SPLITS 4096u

/* Metadata value types (gguf.md "gguf_metadata_value_type"). */
enum gguf_vtype {
    GGUF_VAL_UINT8 = 0,
    GGUF_VAL_INT8 = 1,
    GGUF_VAL_UINT16 = 2,
    GGUF_VAL_INT16 = 3,
    GGUF_VAL_UINT32 = 4,
    GGUF_VAL_INT32 = 5,
    GGUF_VAL_FLOAT32 = 6,
    GGUF_VAL_BOOL = 7,
    GGUF_VAL_STRING = 8,
    GGUF_VAL_ARRAY = 9,
    GGUF_VAL_UINT64 = 10,
    GGUF_VAL_INT64 = 11,
    GGUF_VAL_FLOAT64 = 12,
    GGUF_VAL__COUNT
};

/* ggml tensor types stored in the tensor table (ggml.h enum ggml_type; gaps
 * are ids upstream removed from GGUF files). */
enum gguf_dtype {
    GGUF_DT_F32 = 0,
    GGUF_DT_F16 = 1,
    GGUF_DT_Q4_0 = 2,
    GGUF_DT_Q4_1 = 3,
    GGUF_DT_Q5_0 = 6,
    GGUF_DT_Q5_1 = 7,
    GGUF_DT_Q8_0 = 8,
    GGUF_DT_Q8_1 = 9,
    GGUF_DT_Q2_K = 10,
    GGUF_DT_Q3_K = 11,
    GGUF_DT_Q4_K = 12,
    GGUF_DT_Q5_K = 13,
    GGUF_DT_Q6_K = 14,
    GGUF_DT_Q8_K = 15,
    GGUF_DT_IQ2_XXS = 16,
    GGUF_DT_IQ2_XS = 17,
    GGUF_DT_IQ3_XXS = 18,
    GGUF_DT_IQ1_S = 19,
    GGUF_DT_IQ4_NL = 20,
    GGUF_DT_IQ3_S = 21,
    GGUF_DT_IQ2_S = 22,
    GGUF_DT_IQ4_XS = 23,
    GGUF_DT_I8 = 24,
    GGUF_DT_I16 = 25,
    GGUF_DT_I32 = 26,
    GGUF_DT_I64 = 27,
    GGUF_DT_F64 = 28,
    GGUF_DT_IQ1_M = 29,
    GGUF_DT_BF16 = 30,
    GGUF_DT_TQ1_0 = 34,
    GGUF_DT_TQ2_0 = 35,
    GGUF_DT_MXFP4 = 39,
    GGUF_DT_NVFP4 = 40,
    GGUF_DT_Q1_0 = 41,
};

/* A byte string inside the header copy; not NUL-terminated. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

/* One metadata entry. Scalars are decoded into 'v'; array elements stay in
 * the header bytes and are read with the gguf_kv_* getters. */
typedef struct gguf_kv {
    gguf_str key;
    enum gguf_vtype type;     /* value type */
    enum gguf_vtype arr_type; /* element type when type == GGUF_VAL_ARRAY */
    uint64_t n;               /* element count for arrays, 1 for scalars */
    union {
        uint64_t u64; /* unsigned integers and bool (0 or 1) */
        int64_t i64;  /* signed integers */
        double f64;   /* float32 and float64 */
        gguf_str str; /* string */
    } v;
    const uint8_t *data; /* arrays: the encoded elements */
    uint64_t data_len;   /* arrays: their size in bytes */
    uint64_t key_off;    /* byte offset of this entry in the file */
} gguf_kv;

/* One row of the tensor table. */
typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    uint32_t type;              /* enum gguf_dtype */
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous dimension; unused = 1 */
    uint64_t offset;            /* relative to the data section (as stored) */
    uint64_t file_offset;       /* absolute: data section start + offset */
    uint64_t n_elements;
    uint64_t n_bytes;
    uint64_t info_off; /* byte offset of this table row in the file */
    uint32_t split;    /* shard index within a gguf_model (0 for one file) */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and parses path (header region only). On success *out owns an open
 * parse result; free it with gguf_close(). Errors: negative errno (open, read),
 * GENAI_ECORRUPT, GENAI_EUNSUPPORTED, GENAI_ETOO_LARGE; the detail starts with
 * the path. */
int gguf_open(const char *path, gguf_file **out, genai_error *err);

/* Parses a GGUF image held in memory; len is taken as the file size. The
 * bytes are copied as needed, so data may be freed after the call. */
int gguf_parse_buffer(const void *data, size_t len, gguf_file **out, genai_error *err);

/* Releases everything the file owns. Accepts NULL. */
void gguf_close(gguf_file *f);

/* Header facts. */
uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
/* Offset of the tensor data section (= size of header, metadata, table, padding). */
uint64_t gguf_data_offset(const gguf_file *f);
/* Bytes of the file copied into memory (the header window). */
uint64_t gguf_meta_bytes(const gguf_file *f);
/* Heap bytes held by the parse result (window, tables, index). */
uint64_t gguf_heap_bytes(const gguf_file *f);
/* Sum of n_bytes over all tensors. */
uint64_t gguf_tensor_bytes(const gguf_file *f);

/* Metadata and tensor tables, in file order. Indexes must be < the counts. */
uint64_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i);
uint64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);

/* Lookups by exact name; NULL when absent. O(1) average (hash index). */
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* True when s holds exactly the bytes of the C string c. */
int gguf_str_eq(gguf_str s, const char *c);

/*
 * Typed access to a value: element i of an array, or the scalar (i must be
 * 0). Integers of any width convert when the value fits the output (bool reads
 * as 0/1); floats read as double from float32, float64 or integers. Failures:
 * GENAI_ECORRUPT with "key 'K': ..." when the type does not match, the index is
 * out of range or the value does not fit.
 */
int gguf_kv_u64(const gguf_kv *kv, uint64_t i, uint64_t *out, genai_error *err);
int gguf_kv_i64(const gguf_kv *kv, uint64_t i, int64_t *out, genai_error *err);
int gguf_kv_f64(const gguf_kv *kv, uint64_t i, double *out, genai_error *err);
/* String element i (O(i) for arrays: walk with gguf_str_iter instead). */
int gguf_kv_str(const gguf_kv *kv, uint64_t i, gguf_str *out, genai_error *err);
/* True for integer, bool and float values or arrays of them (not strings). */
int gguf_kv_is_numeric(const gguf_kv *kv);

/*
 * By-key getters over gguf_kv_* for scalars: GENAI_ENOT_FOUND when the key is
 * absent (the only code a caller treating the key as optional should ignore),
 * GENAI_ECORRUPT on a type or range mismatch. *out is written only on success.
 */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, genai_error *err);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, genai_error *err);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, genai_error *err);
int gguf_get_f64(const gguf_file *f, const char *key, double *out, genai_error *err);
int gguf_get_bool(const gguf_file *f, const char *key, int *out, genai_error *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, genai_error *err);

/* Sequential walk over a string array (validated during the parse, so it
 * cannot fail). Usage: init, then while (gguf_str_iter_next(&it, &s)) ... */
typedef struct gguf_str_iter {
    const uint8_t *p;
    uint64_t left;
} gguf_str_iter;
void gguf_str_iter_init(gguf_str_iter *it, const gguf_kv *kv);
/* 1 and *out set for the next element; 0 at the end. */
int gguf_str_iter_next(gguf_str_iter *it, gguf_str *out);

/* ggml type table: 0 and the block size (elements) and block bytes for a
 * known type; GENAI_EUNSUPPORTED for an unknown or removed id. */
int gguf_dtype_info(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
/* "f32", "q4_K", ...; "unknown" for unknown ids. Static string. */
const char *gguf_dtype_name(uint32_t type);
/* "uint8" ... "float64"; "unknown" for unknown ids. Static string. */
const char *gguf_vtype_name(uint32_t type);

/*
 * A model: one GGUF file, or every shard of a split set named
 * PREFIX-NNNNN-of-MMMMM.gguf (llama.cpp's llama_split_path) read as one.
 * Metadata comes from the first shard; tensors from all, in shard order.
 */
typedef struct gguf_model gguf_model;

/* Opens path; when its name follows the split pattern, or its metadata says
 * split.count > 1, opens every shard and checks that split.count, split.no
 * and split.tensors.count agree and tensor names are unique across shards.
 * Free with gguf_model_free(). */
int gguf_model_open(const char *path, gguf_model **out, genai_error *err);
/* Wraps one parsed file as a model, taking ownership of f (also on failure:
 * f is closed when the call fails). */
int gguf_model_from_file(gguf_file *f, gguf_model **out, genai_error *err);
/* Accepts NULL. */
void gguf_model_free(gguf_model *m);
uint32_t gguf_model_n_files(const gguf_model *m);
const gguf_file *gguf_model_file(const gguf_model *m, uint32_t i);
/* Total tensors over all shards; tensor i in shard order (split field set). */
uint64_t gguf_model_n_tensors(const gguf_model *m);
const gguf_tensor *gguf_model_tensor(const gguf_model *m, uint64_t i);
/* Sum of the file sizes of all shards. */
uint64_t gguf_model_file_bytes(const gguf_model *m);

/* Parses a shard file name "PREFIX-NNNNN-of-MMMMM.gguf": 1 with *no (1-based)
 * and *count set and *prefix_len = length of PREFIX; 0 when the name does not
 * follow the pattern. */
int gguf_split_name_parse(const char *path, size_t *prefix_len, uint32_t *no, uint32_t *count);

#endif
