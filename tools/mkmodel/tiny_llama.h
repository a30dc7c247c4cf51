/*
 * tiny_llama.h - builds a tiny random-weight llama-architecture GGUF model
 * that llama.cpp's llama-server can load and answer with (genai-mkmodel, and
 * the tests that check its shapes).
 */
#ifndef GENAI_TOOLS_MKMODEL_TINY_LLAMA_H
#define GENAI_TOOLS_MKMODEL_TINY_LLAMA_H

#include "gguf/writer.h"

#include <stdint.h>

/* Smallest vocabulary: <unk> <s> </s> and the 256 byte tokens. */
#define MKMODEL_MIN_VOCAB 259u
#define MKMODEL_MAX_VOCAB 1000000u

struct mkmodel_opts {
    uint32_t n_layer;
    uint32_t n_embd;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_ff;
    uint32_t n_ctx;
    uint32_t n_vocab;
    uint32_t type; /* GGUF_DT_F32 or GGUF_DT_F16 (norms stay F32) */
    uint64_t seed;
};

/* The ref-tiny shape of contracts/llama-server.md §2: 2 layers, n_embd 128,
 * 4 heads / 2 KV heads, n_ff 256, context 2048, vocabulary 312, F32. */
void mkmodel_defaults(struct mkmodel_opts *o);

/* GENAI_EBAD_ARG with a detail when the shape cannot make a llama model
 * (heads must divide n_embd into an even head size, KV heads divide heads,
 * vocabulary between MKMODEL_MIN_VOCAB and MKMODEL_MAX_VOCAB). */
int mkmodel_check(const struct mkmodel_opts *o, genai_error *err);

/* Builds the model into a new writer (caller frees with gguf_writer_free()). */
int mkmodel_build(const struct mkmodel_opts *o, gguf_writer **out, genai_error *err);

/* IEEE half-precision bits of f, rounded to nearest even. */
uint16_t mkmodel_f16(float f);

/* Text of vocabulary entry id for a vocabulary of any size, as written in
 * tokenizer.ggml.tokens, into buf (at least 32 bytes). */
const char *mkmodel_token(uint32_t id, char *buf, size_t cap);

#endif
