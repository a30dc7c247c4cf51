/*
 * gguf_testutil.h - helpers for the GGUF tests: a raw little-endian byte
 * builder (independent of src/gguf/writer.c, so that hand-made headers check
 * the reader against the format rather than against our own writer). The
 * temporary folders and files they use come from tests/testutil/testutil.h,
 * which this header includes.
 *
 * Helpers abort the test (cmocka assertion) on allocation failure; call them
 * outside mem_fail_after() windows.
 */
#ifndef GENAI_TESTS_GGUF_TESTUTIL_H
#define GENAI_TESTS_GGUF_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "testutil/testutil.h"

typedef struct tb {
    uint8_t *p;
    size_t len, cap;
} tb;

void tb_bytes(tb *b, const void *p, size_t n);
void tb_u32(tb *b, uint32_t v);
void tb_u64(tb *b, uint64_t v);
/* u64 length + bytes. */
void tb_str(tb *b, const char *s);
/* "GGUF", version, n_tensors, n_kv. */
void tb_header(tb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv);
void tb_kv_u32(tb *b, const char *key, uint32_t v);
void tb_kv_str(tb *b, const char *key, const char *v);
/* A tensor table row. */
void tb_tensor(tb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
               uint64_t offset);
/* Zero bytes up to a multiple of align, or n zero bytes. */
void tb_pad(tb *b, size_t align);
void tb_zeros(tb *b, size_t n);
void tb_free(tb *b);

#endif
