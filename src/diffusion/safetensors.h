/*
 * safetensors.h - bounded reader for safetensors files (huggingface/safetensors,
 * "Format" section of its README; the format has no version field).
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * UTF-8 JSON, then the byte buffer. The JSON is an object mapping each tensor
 * name to {"dtype": "F16", "shape": [d0, d1, ...], "data_offsets": [begin,
 * end]} (offsets relative to the byte buffer, shape row-major with the last
 * dimension contiguous), plus an optional "__metadata__" object of string to
 * string.
 *
 * The reader reads only the 8 + N header bytes, refuses N past
 * DM_ST_MAX_HEADER before allocating, and checks every entry: known dtype,
 * non-negative dimensions, element count x dtype size == end - begin without
 * overflow, begin <= end within the byte buffer (the file size), no two
 * tensors overlapping, metadata values strings. Failures return
 * GENAI_ECORRUPT (GENAI_ETOO_LARGE for a cap, GENAI_EUNSUPPORTED for an
 * unknown dtype) with a detail naming the tensor or field.
 *
 * Tensors are kept sorted by name (JSON object order carries no meaning).
 * All strings are NUL-terminated copies owned by the dm_st_file.
 */
#ifndef GENAI_DIFFUSION_SAFETENSORS_H
#define GENAI_DIFFUSION_SAFETENSORS_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

/* Caps on untrusted input. Real headers are a few hundred KiB (an SDXL
 * checkpoint with ~2,500 tensors is about 250 KiB of JSON); upstream's own
 * reader refuses headers past 100,000,000 bytes. */
#define DM_ST_MAX_HEADER ((uint64_t)100 << 20)
#define DM_ST_MAX_TENSORS (1u << 20)
#define DM_ST_MAX_DIMS 8u
#define DM_ST_MAX_NAME 1024u
#define DM_ST_MAX_META 4096u

/* Element types of the format (the dtype strings upstream's Rust enum
 * serialises). */
enum dm_st_dtype {
    DM_ST_BOOL,
    DM_ST_U8,
    DM_ST_I8,
    DM_ST_F8_E5M2,
    DM_ST_F8_E4M3,
    DM_ST_F8_E8M0,
    DM_ST_I16,
    DM_ST_U16,
    DM_ST_F16,
    DM_ST_BF16,
    DM_ST_I32,
    DM_ST_U32,
    DM_ST_F32,
    DM_ST_F64,
    DM_ST_I64,
    DM_ST_U64,
    DM_ST_F4,
    DM_ST_F6_E2M3,
    DM_ST_F6_E3M2,
    DM_ST_DTYPE__COUNT
};

typedef struct dm_st_tensor {
    char *name;
    enum dm_st_dtype dtype;
    uint32_t n_dims;                /* 0 for a scalar */
    uint64_t shape[DM_ST_MAX_DIMS]; /* as stored: shape[n_dims - 1] is contiguous */
    uint64_t n_elements;
    uint64_t begin, end; /* offsets into the byte buffer; end - begin = byte size */
} dm_st_tensor;

typedef struct dm_st_meta {
    char *key;
    char *value;
} dm_st_meta;

typedef struct dm_st_file dm_st_file;

/* Opens and checks path (header only). On success *out owns the result; free
 * it with dm_st_close(). Errors: negative errno (open, read), GENAI_ECORRUPT,
 * GENAI_ETOO_LARGE, GENAI_EUNSUPPORTED; the detail starts with the path. */
int dm_st_open(const char *path, dm_st_file **out, genai_error *err);

/* Same checks over a whole file image held in memory (len = file size). The
 * bytes are not retained. */
int dm_st_parse_buffer(const void *data, size_t len, dm_st_file **out, genai_error *err);

/* Releases everything. Accepts NULL. */
void dm_st_close(dm_st_file *f);

uint64_t dm_st_file_size(const dm_st_file *f);
/* Length N of the JSON header; the byte buffer starts at 8 + N. */
uint64_t dm_st_header_len(const dm_st_file *f);
/* Sum of the tensors' byte sizes. */
uint64_t dm_st_tensor_bytes(const dm_st_file *f);

/* Tensors sorted by name; i < dm_st_n_tensors(). */
size_t dm_st_n_tensors(const dm_st_file *f);
const dm_st_tensor *dm_st_tensor_at(const dm_st_file *f, size_t i);
/* Lookup by exact name (binary search); NULL when absent. */
const dm_st_tensor *dm_st_find(const dm_st_file *f, const char *name);

/* The __metadata__ entries in key order; NULL from dm_st_meta_get when absent. */
size_t dm_st_n_meta(const dm_st_file *f);
const dm_st_meta *dm_st_meta_at(const dm_st_file *f, size_t i);
const char *dm_st_meta_get(const dm_st_file *f, const char *key);

/* "F16", ...; "unknown" out of range. Static. */
const char *dm_st_dtype_name(enum dm_st_dtype t);
/* Parses a dtype string; 0 and *out on success, GENAI_EUNSUPPORTED otherwise. */
int dm_st_dtype_parse(const char *s, enum dm_st_dtype *out);
/* Bits per element (4, 6, 8, 16, 32 or 64); 0 out of range. */
unsigned dm_st_dtype_bits(enum dm_st_dtype t);

#endif
