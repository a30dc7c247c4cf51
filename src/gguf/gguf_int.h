/*
 * gguf_int.h - functions shared between the files of the gguf module only.
 */
#ifndef GENAI_GGUF_GGUF_INT_H
#define GENAI_GGUF_GGUF_INT_H

#include "gguf/gguf.h"

/* Records the shard index in every tensor of f (model.c, when it adopts f). */
void gguf_file_set_split(gguf_file *f, uint32_t split);

/* gguf_find_tensor() for a name given as bytes and length. */
const gguf_tensor *gguf_find_tensor_n(const gguf_file *f, const char *name, uint64_t len);

#endif
