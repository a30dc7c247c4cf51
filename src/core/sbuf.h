/*
 * sbuf.h - a growable, always NUL-terminated byte buffer.
 *
 * Used to build text (human output, JSON fragments, argv strings) without
 * fixed-size buffers. Once an append fails, the buffer is marked failed, later
 * appends do nothing and sbuf_error() returns -ENOMEM, so callers can check
 * once at the end. The memory belongs to the sbuf: release it with
 * sbuf_free(), or take it with sbuf_take() and mem_free() it.
 */
#ifndef GENAI_CORE_SBUF_H
#define GENAI_CORE_SBUF_H

#include "core/error.h"

#include <stddef.h>

typedef struct sbuf {
    char *data; /* NULL until the first append; then NUL-terminated */
    size_t len;
    size_t cap;
    int failed;
} sbuf;

#define SBUF_INIT                                                                                  \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

int sbuf_append(sbuf *b, const void *bytes, size_t n);
int sbuf_puts(sbuf *b, const char *s);
int sbuf_printf(sbuf *b, const char *fmt, ...) GX_PRINTF(2, 3);
/* The text so far ("" when nothing was appended). Valid until the next call. */
const char *sbuf_str(const sbuf *b);
/* 0, or -ENOMEM when any append failed. */
int sbuf_error(const sbuf *b);
void sbuf_reset(sbuf *b);
/* Returns the buffer (caller frees with mem_free; may be NULL) and resets b. */
char *sbuf_take(sbuf *b);
void sbuf_free(sbuf *b);

#endif
