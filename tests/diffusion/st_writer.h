/*
 * st_writer.h - writes safetensors files for the tests, the fuzz corpus and
 * fixtures: a JSON header built with jansson (tensors laid out one after the
 * other in the order added, header padded with spaces to a multiple of 8 as
 * upstream's writer does), then the data.
 *
 * Tensor data is never given: it is zeros. stw_write() makes the data region
 * a hole (ftruncate), so fixtures with real shapes cost no disk; stw_to_mem()
 * materialises it and is meant for small files.
 *
 * st_raw() builds a file image from hand-written header text, for headers
 * the writer would refuse to produce.
 */
#ifndef GENAI_TESTS_DIFFUSION_ST_WRITER_H
#define GENAI_TESTS_DIFFUSION_ST_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_writer st_writer;

/* NULL when out of memory. */
st_writer *stw_new(void);
void stw_free(st_writer *w);
/* One __metadata__ entry. 0 or -1. */
int stw_meta(st_writer *w, const char *key, const char *value);
/* A tensor of dtype ("F16", "F32", ...) and a row-major shape (torch order).
 * 0, or -1 for an unknown dtype, a repeated name or no memory. */
int stw_tensor(st_writer *w, const char *name, const char *dtype, uint32_t n_dims,
               const uint64_t *shape);
/* Writes the file (sparse data). 0 or -1. */
int stw_write(const st_writer *w, const char *path);
/* The whole file image (mem_free it). NULL on failure. */
uint8_t *stw_to_mem(const st_writer *w, size_t *len);

/* 8-byte length (declared_len, or strlen(header) when declared_len is
 * UINT64_MAX) + header + data_len zero bytes. Free with mem_free(). */
uint8_t *st_raw(const char *header, uint64_t declared_len, size_t data_len, size_t *len);

#endif
