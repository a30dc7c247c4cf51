/*
 * writer.h - builds GGUF version 3 files (little-endian) from metadata and
 * tensors: test fixtures, the corpus, genai-mkmodel and the benchmark.
 *
 * Usage: gguf_writer_new(), gguf_writer_add_*() in the order the entries
 * should appear, then gguf_writer_write() (a file) or gguf_writer_to_mem().
 * Tensor data is padded to the alignment (general.alignment when added, else
 * 32); tensors are laid out in the order they were added. The writer refuses
 * input the reader would refuse (GENAI_EBAD_ARG): duplicate keys or tensor
 * names, names too long, more than 4 dimensions, unknown ggml types, rows
 * that are not whole blocks.
 */
#ifndef GENAI_GGUF_WRITER_H
#define GENAI_GGUF_WRITER_H

#include "gguf/gguf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct gguf_writer gguf_writer;

/* A new, empty writer; free with gguf_writer_free(). 0 or -ENOMEM. */
int gguf_writer_new(gguf_writer **out);
/* Releases the writer and its copies of names and data. Accepts NULL. */
void gguf_writer_free(gguf_writer *w);

/* One scalar; value points to a native value of the type (uint8_t for bool,
 * float for FLOAT32, double for FLOAT64). Not for STRING or ARRAY. Adding
 * general.alignment (uint32, a power of two) sets the data alignment. */
int gguf_writer_add_scalar(gguf_writer *w, const char *key, enum gguf_vtype type,
                           const void *value);
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v);
/* An array of n native values of a fixed-size type (not STRING or ARRAY). */
int gguf_writer_add_array(gguf_writer *w, const char *key, enum gguf_vtype elem, const void *values,
                          uint64_t n);
/* An array of n NUL-terminated strings. */
int gguf_writer_add_str_array(gguf_writer *w, const char *key, const char *const *strs, uint64_t n);

/* A tensor of n_dims (1..4) dimensions ne[0..n_dims-1] (ne[0] contiguous).
 * data holds gguf row bytes for the whole tensor and is copied; NULL leaves
 * the region as zeros (a hole in a written file, so huge sparse fixtures
 * cost no disk). */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, const void *data);

/* Size of the file that would be written now. */
uint64_t gguf_writer_size(const gguf_writer *w);
/* Size of everything before the tensor data (header, metadata, table, padding). */
uint64_t gguf_writer_data_offset(const gguf_writer *w);

/* Writes the file (created or truncated, mode 0644). Negative errno or
 * -ENOMEM on failure; a partly written file is removed. */
int gguf_writer_write(const gguf_writer *w, const char *path, genai_error *err);
/* The file image in a new buffer (caller frees with mem_free). */
int gguf_writer_to_mem(const gguf_writer *w, uint8_t **out, size_t *len, genai_error *err);

#endif
